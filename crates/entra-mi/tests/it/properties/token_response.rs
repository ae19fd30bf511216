//! Property tests of the token-response parser and the expiry rules.

use super::*;

const SENT_EPOCH: u64 = 1_700_000_000;
const LATENCY: Duration = Duration::from_millis(250);

fn clocks() -> Clocks {
    let sent_wall = UNIX_EPOCH + Duration::from_secs(SENT_EPOCH);
    Clocks {
        sent_wall,
        sent_monotonic: Duration::from_secs(1_000),
        received_wall: sent_wall + LATENCY,
        received_monotonic: Duration::from_secs(1_000) + LATENCY,
    }
}

fn parse(body: &[u8]) -> Result<__fuzz::ParsedToken, entra_mi::error::Unavailable> {
    __fuzz::parse_token(Some("application/json"), body, clocks())
}

/// What must hold of every token the parser accepts.
fn check_accepted(body: &[u8], parsed: &__fuzz::ParsedToken) {
    let c = clocks();
    let t = &parsed.token;
    let expected_secret = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => m
            .get("access_token")
            .and_then(Value::as_str)
            .map(str::to_owned),
        _ => None,
    };
    assert_eq!(expected_secret.as_deref(), Some(t.secret()));
    assert!(t.secret().bytes().all(|b| (0x21..0x7f).contains(&b)));
    assert!(!t.token_type().is_empty());
    let lifetime = t
        .expires_on()
        .duration_since(c.sent_wall)
        .expect("expires after the send");
    assert!(!lifetime.is_zero());
    let at = parsed.expires_at_monotonic.expect("monotonic deadline");
    assert!(at <= c.received_monotonic + MAX_LIFETIME);
    // The deadline scheduled by is the earliest the answer states: never after the reported
    // expiry (which is the server's own `expires_on` when it sent one).
    assert!(at > c.sent_monotonic);
    assert!(at - c.sent_monotonic <= lifetime);
    assert_eq!(
        t.refresh_on().is_some(),
        parsed.refresh_at_monotonic.is_some()
    );
    if let (Some(on), Some(r)) = (t.refresh_on(), parsed.refresh_at_monotonic) {
        assert!(on > c.sent_wall && on < t.expires_on());
        assert!(r > c.sent_monotonic && r < at);
    }
}

fn check_any(body: &[u8]) {
    if let Ok(p) = parse(body) {
        check_accepted(body, &p);
    }
}

/// A header-safe token long enough that no fixed message text can contain it.
fn secret() -> impl Strategy<Value = String> {
    "[A-Za-z0-9._~+/=-]{24,64}"
}

/// A value of any JSON kind, biased towards what a lifetime field could hold.
fn field_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        (0u64..2 * MAX_LIFETIME.as_secs()).prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::from)),
        (0.0f64..1e7).prop_map(Value::from),
        (0u64..2 * MAX_LIFETIME.as_secs()).prop_map(|n| Value::from(n.to_string())),
        (SENT_EPOCH - 100..SENT_EPOCH + 2 * MAX_LIFETIME.as_secs())
            .prop_map(|n| Value::from(n.to_string())),
        (SENT_EPOCH - 100..SENT_EPOCH + 2 * MAX_LIFETIME.as_secs()).prop_map(Value::from),
        " ?[0-9]{0,22} ?".prop_map(Value::from),
        "[0-9/: APMZT+.-]{0,32}".prop_map(Value::from),
        "\\PC{0,16}".prop_map(Value::from),
        Just(json!([1, "2"])),
        Just(json!({"a": 1})),
    ]
}

/// A JSON object with the fields the parser reads, each present or not, of any kind.
fn token_object() -> impl Strategy<Value = (Value, String)> {
    (
        secret(),
        prop::option::of(field_value()),
        prop::option::of(field_value()),
        prop::option::of(field_value()),
        prop::option::of(field_value()),
        prop::option::of(prop_oneof![
            Just(json!("Bearer")),
            Just(json!("pop")),
            Just(json!("")),
            Just(json!("Bear er")),
            Just(json!(7)),
        ]),
        any::<bool>(),
    )
        .prop_map(|(s, ei, eo, ri, junk, tt, token_ok)| {
            let mut m = serde_json::Map::new();
            m.insert(
                "access_token".into(),
                if token_ok { json!(s) } else { json!([s]) },
            );
            for (k, v) in [
                ("expires_in", ei),
                ("expires_on", eo),
                ("refresh_in", ri),
                ("ext_expires_in", junk),
                ("token_type", tt),
            ] {
                if let Some(v) = v {
                    m.insert(k.into(), v);
                }
            }
            (Value::Object(m), s)
        })
}

/// Hinnant's `civil_from_days`: the inverse of what the library uses to read dates.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// `epoch` written in one of the date formats the sources send, in the zone `offset_min`
/// minutes east of UTC.
fn format_date(epoch: u64, offset_min: i64, style: u8, pad: bool) -> String {
    let local = epoch as i64 + offset_min * 60;
    let (y, mo, d) = civil_from_days(local.div_euclid(86_400));
    let s = local.rem_euclid(86_400);
    let (h, mi, sec) = (s / 3600, s / 60 % 60, s % 60);
    let sign = if offset_min < 0 { '-' } else { '+' };
    let (oh, om) = (offset_min.abs() / 60, offset_min.abs() % 60);
    match style % 4 {
        // Legacy App Service / Azure ML: `MM/DD/YYYY hh:mm:ss AM|PM +hh:mm`.
        0 => {
            let h12 = if h % 12 == 0 { 12 } else { h % 12 };
            let ampm = if h < 12 { "AM" } else { "PM" };
            if pad {
                format!("{mo:02}/{d:02}/{y} {h12:02}:{mi:02}:{sec:02} {ampm} {sign}{oh:02}:{om:02}")
            } else {
                format!("{mo}/{d}/{y} {h12}:{mi:02}:{sec:02} {ampm} {sign}{oh:02}{om:02}")
            }
        }
        // The same on a 24-hour clock.
        1 => format!("{mo:02}/{d:02}/{y} {h:02}:{mi:02}:{sec:02} {sign}{oh:02}:{om:02}"),
        // RFC 3339 with an offset and maybe fractional seconds.
        2 => {
            let frac = if pad { ".123456" } else { "" };
            format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{sec:02}{frac}{sign}{oh:02}:{om:02}")
        }
        // RFC 3339 in UTC, or the space-separated form.
        _ => {
            let (y, mo, d) = civil_from_days(epoch as i64 / 86_400);
            let s = epoch % 86_400;
            let (h, mi, sec) = (s / 3600, s / 60 % 60, s % 60);
            if pad {
                format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{sec:02}Z")
            } else {
                format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{sec:02}")
            }
        }
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn token_parser_never_panics_on_bytes(body in prop::collection::vec(any::<u8>(), 0..256)) {
        check_any(&body);
    }

    #[test]
    fn token_parser_never_panics_on_json_ish_text(body in "[{}\\[\\]\":,0-9a-z_ .eE+-]{0,96}") {
        check_any(body.as_bytes());
    }

    /// Date-shaped `expires_on` strings with any characters where the offset and the fields
    /// go (a multi-byte character in an offset once sliced a string mid-character).
    #[test]
    fn expires_on_dates_with_any_characters_never_panic(
        date in "[0-9]{1,2}/[0-9]{1,2}/[0-9]{4} [0-9]{1,2}:[0-9]{2}:[0-9]{2}( [AP]M)? [+-]\\PC{0,6}|[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,6})?[+-]\\PC{0,6}|\\PC{0,12}[/:+-]\\PC{0,12}"
    ) {
        let body = serde_json::to_vec(&json!({"access_token": "t", "expires_on": date})).unwrap();
        check_any(&body);
    }

    #[test]
    fn accepted_tokens_are_bounded_and_refusals_never_quote_them((obj, s) in token_object()) {
        let body = serde_json::to_vec(&obj).unwrap();
        match parse(&body) {
            Ok(p) => check_accepted(&body, &p),
            Err(e) => prop_assert!(!e.to_string().contains(&s), "{e}"),
        }
    }

    #[test]
    fn expires_in_is_accepted_exactly_within_bounds(secs in 0u64..3 * MAX_LIFETIME.as_secs(), as_text: bool) {
        let v = if as_text { json!(secs.to_string()) } else { json!(secs) };
        let body = serde_json::to_vec(&json!({"access_token": "t", "expires_in": v})).unwrap();
        let ok = secs > 0 && secs <= MAX_LIFETIME.as_secs();
        let result = parse(&body);
        prop_assert_eq!(result.is_ok(), ok);
        if let Ok(p) = result {
            check_accepted(&body, &p);
            prop_assert_eq!(p.token.expires_on(), clocks().sent_wall + Duration::from_secs(secs));
        }
    }

    #[test]
    fn expires_on_epoch_is_accepted_exactly_within_bounds(
        epoch in SENT_EPOCH - 3600..SENT_EPOCH + 2 * MAX_LIFETIME.as_secs(),
        as_text: bool,
    ) {
        let v = if as_text { json!(epoch.to_string()) } else { json!(epoch) };
        let body = serde_json::to_vec(&json!({"access_token": "t", "expires_on": v})).unwrap();
        let at = UNIX_EPOCH + Duration::from_secs(epoch);
        let received = clocks().received_wall;
        let ok = at > received && at.duration_since(received).unwrap() <= MAX_LIFETIME;
        let result = parse(&body);
        prop_assert_eq!(result.is_ok(), ok);
        if let Ok(p) = result {
            check_accepted(&body, &p);
            prop_assert_eq!(p.token.expires_on(), at);
        }
    }

    /// An `expires_on` before 2001 is no point in time: alone it is refused, and with
    /// `expires_in` it is read as a lifetime only where the two agree.
    #[test]
    fn a_small_expires_on_is_a_lifetime_only_where_expires_in_agrees(
        secs in 0u64..2 * MAX_LIFETIME.as_secs(),
        expires_in in proptest::option::of(0u64..2 * MAX_LIFETIME.as_secs()),
        near: i8,
    ) {
        let expires_in = expires_in.map(|e| if near % 2 == 0 { secs.saturating_add_signed(i64::from(near % 7)) } else { e });
        let mut body = json!({"access_token": "t", "expires_on": secs.to_string()});
        if let Some(e) = expires_in {
            body["expires_in"] = json!(e);
        }
        let body = serde_json::to_vec(&body).unwrap();
        let in_bounds = |s: u64| s > 0 && s <= MAX_LIFETIME.as_secs();
        let ok = expires_in.is_some_and(|e| e.abs_diff(secs) <= 5 && in_bounds(e) && in_bounds(secs));
        let result = parse(&body);
        prop_assert_eq!(result.is_ok(), ok, "{:?}", result.as_ref().err());
        if let Ok(p) = result {
            check_accepted(&body, &p);
            let e = expires_in.unwrap();
            prop_assert_eq!(
                p.expires_at_monotonic.unwrap() - clocks().sent_monotonic,
                Duration::from_secs(e.min(secs))
            );
        }
    }

    /// With both fields, the earlier deadline is kept, the server's `expires_on` reported, and
    /// an `expires_on` at or before the receipt refused whatever `expires_in` says.
    #[test]
    fn both_fields_keep_the_earlier_deadline(
        expires_in in 1u64..MAX_LIFETIME.as_secs(),
        on_ahead in -7200i64..MAX_LIFETIME.as_secs() as i64,
    ) {
        let received = clocks().received_wall.duration_since(UNIX_EPOCH).unwrap().as_secs_f64();
        let on = SENT_EPOCH.saturating_add_signed(on_ahead);
        let body = serde_json::to_vec(&json!({"access_token": "t", "expires_in": expires_in, "expires_on": on})).unwrap();
        let result = parse(&body);
        if (on as f64) <= received {
            let err = result.map(|_| ()).unwrap_err().to_string();
            prop_assert!(err.contains("already-expired token"), "{}", err);
        } else {
            let p = result.unwrap();
            check_accepted(&body, &p);
            prop_assert_eq!(p.token.expires_on(), UNIX_EPOCH + Duration::from_secs(on));
            let by_on = on - SENT_EPOCH;
            prop_assert_eq!(
                p.expires_at_monotonic.unwrap() - clocks().sent_monotonic,
                Duration::from_secs(expires_in.min(by_on))
            );
        }
    }

    #[test]
    fn every_date_format_round_trips(
        ahead in 1u64..MAX_LIFETIME.as_secs() - 1,
        offset_quarters in -56i64..=56,
        style: u8,
        pad: bool,
    ) {
        let epoch = SENT_EPOCH + 1 + ahead;
        let date = format_date(epoch, offset_quarters * 15, style, pad);
        let body = serde_json::to_vec(&json!({"access_token": "t", "expires_on": date})).unwrap();
        let p = parse(&body).map_err(|e| TestCaseError::fail(format!("{date}: {e}")))?;
        prop_assert_eq!(p.token.expires_on(), UNIX_EPOCH + Duration::from_secs(epoch), "{}", date);
        check_accepted(&body, &p);
    }

    #[test]
    fn refresh_in_is_kept_only_inside_the_lifetime(life in 1u64..100_000, refresh in 0u64..200_000) {
        let body = serde_json::to_vec(&json!({"access_token": "t", "expires_in": life, "refresh_in": refresh})).unwrap();
        let p = parse(&body).unwrap();
        check_accepted(&body, &p);
        prop_assert_eq!(p.token.refresh_on().is_some(), refresh > 0 && refresh < life);
    }

    #[test]
    fn retry_after_never_panics(value in "\\PC{0,40}", delay in any::<u64>()) {
        let now = UNIX_EPOCH + Duration::from_secs(SENT_EPOCH);
        let _ = __fuzz::retry_after(&value, now);
        // Delays are taken as given up to about 31 years and cut there (so that adding one to a
        // clock reading cannot overflow).
        prop_assert_eq!(
            __fuzz::retry_after(&delay.to_string(), now),
            Some(Duration::from_secs(delay.min(1_000_000_000)))
        );
    }
}
