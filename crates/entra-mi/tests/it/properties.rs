//! Property tests of the four input-facing pieces the fuzz targets in `fuzz/` cover, small
//! enough to run on every `cargo test` (a few seconds in a debug build):
//!
//! * the token-response parser: never panics on arbitrary bytes or JSON objects of mixed field
//!   types; whatever it accepts has a lifetime in `(0, MAX_LIFETIME]` on both clocks; exact
//!   accept/refuse boundaries for `expires_in` and `expires_on`; every date format round-trips;
//!   a refusal never quotes the token;
//! * the `WWW-Authenticate` parser: never panics; Bearer challenges it is given (random order,
//!   case, spacing, quoting, escapes, other schemes around them) read back exactly;
//! * the Arc realm parser and key-file check: realms round-trip; a path is accepted exactly when
//!   it resolves to a readable, non-empty `.key` file of at most 4096 bytes directly inside the
//!   token directory, and never yields another file's content;
//! * routing: a match always has the route's scheme, host and port and extends its prefix by
//!   whole segments; it agrees with a reference matcher; look-alike hosts, user info, other
//!   ports and schemes never match; `match_uri` is never more permissive than `match_url`.
//!
//! Uses the hidden `entra_mi::__fuzz` wrappers (feature `fuzzing`) for the crate-private
//! parsers, and the fixture route table and reference matcher of `entra_mi::test_util`
//! (feature `test-util`) that the `routing` fuzz target uses too.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use entra_mi::__fuzz::{self, Clocks, MAX_LIFETIME};
use entra_mi::middleware::BearerChallenge;
use entra_mi::test_util::{
    FIXTURE_HOSTS, fixture_router, reference_is_dot_segment, reference_match,
    reference_prefix_matches, small_fixture_router,
};
use entra_mi::{Route, TokenRouter};
use http::header::WWW_AUTHENTICATE;
use http::{HeaderMap, HeaderValue};
use proptest::prelude::*;
use serde_json::{Value, json};

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------------------------------------
// Token responses
// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------
// WWW-Authenticate
// ---------------------------------------------------------------------------------------------

fn challenge_of(values: &[Vec<u8>]) -> Option<BearerChallenge> {
    let mut h = HeaderMap::new();
    for v in values {
        if let Ok(v) = HeaderValue::from_bytes(v) {
            h.append(WWW_AUTHENTICATE, v);
        }
    }
    BearerChallenge::from_headers(&h)
}

/// `s` as an RFC 9110 quoted string, escaping `"` and `\` (and, when `all`, every character).
fn quote(s: &str, all: bool) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        if all || c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// Printable ASCII, including `"`, `\`, `,` and `=`.
fn printable() -> impl Strategy<Value = String> {
    "[ -~]{0,24}"
}

fn claims_json() -> impl Strategy<Value = String> {
    prop::collection::btree_map("[a-z_]{1,8}", printable(), 0..4).prop_map(|m| {
        let obj: serde_json::Map<String, Value> =
            m.into_iter().map(|(k, v)| (k, Value::from(v))).collect();
        serde_json::to_string(&json!({ "access_token": obj })).unwrap()
    })
}

/// The claims parameter in base64 or base64url, padded or not, quoted or (unpadded) bare.
fn claims_param(claims: &str, alphabet: u8, quoted: bool, escape_all: bool) -> String {
    let enc = match alphabet % 4 {
        0 => STANDARD.encode(claims),
        1 => STANDARD_NO_PAD.encode(claims),
        2 => URL_SAFE.encode(claims),
        _ => URL_SAFE_NO_PAD.encode(claims),
    };
    if quoted || enc.ends_with('=') || enc.contains('/') || enc.contains('+') {
        quote(&enc, escape_all)
    } else {
        enc
    }
}

const SEPARATORS: &[&str] = &[", ", ",", " , ", ",\t", " ,, "];

fn pick<'a>(list: &[&'a str], i: usize) -> &'a str {
    list[i % list.len()]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn challenge_parser_never_panics(values in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..64), 0..4)) {
        let _ = challenge_of(&values);
    }

    #[test]
    fn challenge_parser_never_panics_on_challenge_like_text(
        values in prop::collection::vec("(Bearer|Basic|error|claims|realm|=|\"|\\\\|,| |[a-zA-Z0-9_+/-]{1,6}){0,24}", 0..3),
    ) {
        let values: Vec<Vec<u8>> = values.into_iter().map(String::into_bytes).collect();
        let _ = challenge_of(&values);
    }

    #[test]
    fn generated_bearer_challenges_read_back(
        claims in claims_json(),
        insufficient: bool,
        realm in printable(),
        description in printable(),
        decoy in printable(),
        alphabet: u8,
        quoted: bool,
        escape_all: bool,
        casing in 0usize..4,
        sep in 0usize..5,
        spaced: bool,
        before in prop::option::of(printable()),
        after: bool,
        order in Just(vec![0usize, 1, 2, 3, 4]).prop_shuffle(),
    ) {
        let bearer = pick(&["Bearer", "bearer", "BEARER", "bEaReR"], casing);
        let (error_name, claims_name) = [("error", "claims"), ("ERROR", "Claims"), ("Error", "CLAIMS"), ("error", "claims")][casing];
        let eq = if spaced { " = " } else { "=" };
        let error_value = if insufficient { "insufficient_claims" } else { "invalid_token" };
        let error_value = if quoted { quote(error_value, escape_all) } else { error_value.to_owned() };
        // A decoy inside a quoted string must never be read as parameters.
        let decoy = format!("{decoy}\", error=\"insufficient_claims\", claims=\"{}", STANDARD.encode("{}"));
        let params = [
            format!("realm{eq}{}", quote(&realm, escape_all)),
            format!("{error_name}{eq}{error_value}"),
            format!("{claims_name}{eq}{}", claims_param(&claims, alphabet, quoted, escape_all)),
            format!("error_description{eq}{}", quote(&description, escape_all)),
            format!("x_decoy{eq}{}", quote(&decoy, false)),
        ];
        let params: Vec<&str> = order.iter().map(|&i| params[i].as_str()).collect();
        let mut header = String::new();
        if let Some(b) = &before {
            header.push_str(&format!("Basic realm={}{}Negotiate YIIabc=={}", quote(b, false), pick(SEPARATORS, sep), pick(SEPARATORS, sep)));
        }
        header.push_str(bearer);
        header.push(' ');
        header.push_str(&params.join(pick(SEPARATORS, sep)));
        if after {
            header.push_str(", Basic realm=\"x\", error=\"invalid_token\"");
        }
        let expected = if insufficient {
            BearerChallenge::InsufficientClaims { claims: claims.clone() }
        } else {
            BearerChallenge::InvalidToken
        };
        prop_assert_eq!(challenge_of(&[header.clone().into_bytes()]), Some(expected.clone()), "{}", header);
        // With an `invalid_token` header next to it, in either order, a claims challenge wins.
        let other = br#"Bearer error="invalid_token""#.to_vec();
        prop_assert_eq!(challenge_of(&[other.clone(), header.clone().into_bytes()]), Some(expected.clone()));
        prop_assert_eq!(challenge_of(&[header.into_bytes(), other]), Some(expected));
    }

    #[test]
    fn other_schemes_and_errors_are_ignored(
        scheme in "(Basic|Digest|Negotiate|PoP|Bearerx|XBearer)",
        error in "(insufficient_scope|invalid_request|invalid_token_x|[a-z_]{0,12})",
        realm in printable(),
    ) {
        prop_assume!(error != "invalid_token" && error != "insufficient_claims");
        let foreign = format!("{scheme} realm={}, error=\"invalid_token\"", quote(&realm, false));
        let ours = format!("Bearer realm={}, error={}", quote(&realm, false), quote(&error, false));
        prop_assert_eq!(challenge_of(&[foreign.into_bytes(), ours.into_bytes()]), None);
    }
}

// ---------------------------------------------------------------------------------------------
// Azure Arc: realm and key-file path
// ---------------------------------------------------------------------------------------------

const GOOD: &str = "good-key-0123456789abcdef";
const OTHER: &str = "other-key-fedcba9876543210";
const FOREIGN: &[&str] = &[
    "outside-secret",
    "not-a-key",
    "in-a-dir",
    "in-a-subdirectory",
    "look-alike",
];

struct ArcFixture {
    root: PathBuf,
    tokens: PathBuf,
    rt: tokio::runtime::Runtime,
}

/// `<root>/tokens` holds two keys and every kind of file the check must refuse; `<root>` is
/// removed when the process exits only if the last test to use it removes it, so it is named
/// per process and small.
fn arc_fixture() -> &'static ArcFixture {
    static F: OnceLock<ArcFixture> = OnceLock::new();
    F.get_or_init(|| {
        let root = std::env::temp_dir().join(format!("entra-mi-props-arc-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let tokens = root.join("tokens");
        let outside = root.join("outside");
        for d in [
            tokens.clone(),
            tokens.join("dir.key"),
            tokens.join("sub"),
            outside.clone(),
            root.join("tokensx"),
        ] {
            std::fs::create_dir_all(d).unwrap();
        }
        let write = |p: PathBuf, content: &str| std::fs::write(p, content).unwrap();
        write(tokens.join("good.key"), &format!("{GOOD}\n"));
        write(tokens.join("other.key"), OTHER);
        write(tokens.join("notes.txt"), FOREIGN[1]);
        write(tokens.join("big.key"), &"k".repeat(5000));
        write(tokens.join("empty.key"), " \n");
        write(tokens.join("dir.key").join("inner.key"), FOREIGN[2]);
        write(tokens.join("sub").join("inner.key"), FOREIGN[3]);
        write(outside.join("secret.key"), FOREIGN[0]);
        write(root.join("tokensx").join("evil.key"), FOREIGN[4]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::symlink;
            symlink("good.key", tokens.join("link-in.key")).unwrap();
            symlink(outside.join("secret.key"), tokens.join("link-out.key")).unwrap();
            symlink("notes.txt", tokens.join("txt-link.key")).unwrap();
            symlink(&outside, tokens.join("dir-link")).unwrap();
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        ArcFixture { root, tokens, rt }
    })
}

/// Independently of the library: should `path` be accepted, and with which key?
fn arc_oracle(path: &str, tokens: &Path) -> Option<String> {
    let given = Path::new(path);
    let is_key = |p: &Path| p.extension().is_some_and(|e| e == "key");
    if !given.is_absolute() || !is_key(given) {
        return None;
    }
    let real = std::fs::canonicalize(given).ok()?;
    let dir = std::fs::canonicalize(tokens).ok()?;
    if real.parent() != Some(dir.as_path()) || !is_key(&real) {
        return None;
    }
    let meta = std::fs::metadata(&real).ok()?;
    if !meta.is_file() || meta.len() > __fuzz::ARC_MAX_KEY_FILE {
        return None;
    }
    let text = std::fs::read_to_string(&real).ok()?;
    let key = text.trim();
    (!key.is_empty()).then(|| key.to_owned())
}

const SEGMENTS: &[&str] = &[
    "tokens",
    "tokens",
    "outside",
    "tokensx",
    "sub",
    "dir.key",
    "dir-link",
    "..",
    ".",
    "",
    "good.key",
    "good.key",
    "other.key",
    "link-in.key",
    "link-out.key",
    "txt-link.key",
    "secret.key",
    "notes.txt",
    "big.key",
    "empty.key",
    "inner.key",
    "evil.key",
    "missing.key",
    "good.KEY",
    "good.key.bak",
];

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arc_realm_parser_never_panics(header in "\\PC{0,64}") {
        if let Ok(path) = __fuzz::arc_challenge_path(Some(&header)) {
            prop_assert!(!path.is_empty());
            prop_assert!(header.contains(path.as_str()));
            prop_assert!(header.trim_start().get(..5).is_some_and(|s| s.eq_ignore_ascii_case("basic")));
        }
    }

    #[test]
    fn arc_realm_round_trips(
        path in "/[a-zA-Z0-9._/-]{1,40}|C:\\\\[a-zA-Z0-9._\\\\ -]{0,30}[a-z]",
        scheme in "(Basic|basic|BASIC)",
        gap in "[ \t]{1,3}",
        quoted: bool,
        outer in "[ \t]{0,2}",
    ) {
        let realm = if quoted { format!("\"{path}\"") } else { path.clone() };
        let header = format!("{outer}{scheme}{gap}realm={realm}{outer}");
        prop_assert_eq!(__fuzz::arc_challenge_path(Some(&header)), Ok(path));
    }

    #[test]
    fn arc_key_path_is_accepted_exactly_inside_the_directory(
        picks in prop::collection::vec(0..SEGMENTS.len(), 1..6),
        trailing_slash: bool,
    ) {
        let f = arc_fixture();
        let rel: Vec<&str> = picks.iter().map(|&i| SEGMENTS[i]).collect();
        let mut path = format!("{}/{}", f.root.display(), rel.join("/"));
        if trailing_slash {
            path.push('/');
        }
        let result = f.rt.block_on(__fuzz::arc_read_key(&path, &f.tokens));
        let expected = arc_oracle(&path, &f.tokens);
        match &result {
            Ok(key) => {
                prop_assert!(key == GOOD || key == OTHER, "{path}");
                let real = std::fs::canonicalize(&path).unwrap();
                let dir = std::fs::canonicalize(&f.tokens).unwrap();
                prop_assert_eq!(real.parent(), Some(dir.as_path()));
            }
            Err(e) => {
                let message = format!("{e} {e:?}");
                for secret in [GOOD, OTHER].iter().chain(FOREIGN) {
                    prop_assert!(!message.contains(secret), "{message}");
                }
            }
        }
        prop_assert_eq!(result.ok(), expected, "{}", path);
    }

    #[test]
    fn arc_relative_paths_are_refused(rel in "[a-z./]{0,20}\\.key") {
        prop_assume!(!rel.starts_with('/'));
        let f = arc_fixture();
        prop_assert!(f.rt.block_on(__fuzz::arc_read_key(&rel, &f.tokens)).is_err());
    }
}

#[test]
fn arc_fixture_sanity() {
    // The property above only means something if both outcomes occur.
    let f = arc_fixture();
    let root = f.root.display();
    let read = |p: &str| f.rt.block_on(__fuzz::arc_read_key(p, &f.tokens));
    assert_eq!(read(&format!("{root}/tokens/good.key")).unwrap(), GOOD);
    assert_eq!(read(&format!("{root}/tokens/link-in.key")).unwrap(), GOOD);
    assert_eq!(
        read(&format!("{root}/tokens/sub/../other.key")).unwrap(),
        OTHER
    );
    for bad in [
        "tokens/link-out.key",
        "tokens/txt-link.key",
        "tokens/dir-link/secret.key",
        "tokens/../outside/secret.key",
        "tokensx/evil.key",
        "tokens/sub/inner.key",
        "tokens/notes.txt",
        "tokens/big.key",
        "tokens/empty.key",
        "tokens/dir.key",
    ] {
        assert!(read(&format!("{root}/{bad}")).is_err(), "{bad}");
    }
}

// ---------------------------------------------------------------------------------------------
// Routing
// ---------------------------------------------------------------------------------------------

fn scheme_of(r: &Route) -> &'static str {
    if r.is_https() { "https" } else { "http" }
}

/// Checks one URL string against every routing property, on a table with a host index and
/// on a small one; returns the `match_url` route of the first.
fn check_routing(input: &str) -> Result<Option<Route>, TestCaseError> {
    check_routing_on(small_fixture_router(), input)?;
    check_routing_on(fixture_router(), input)
}

fn check_routing_on(router: &TokenRouter, input: &str) -> Result<Option<Route>, TestCaseError> {
    let url = url::Url::parse(input).ok();
    let hit = url
        .as_ref()
        .and_then(|u| router.match_url(u))
        .map(|b| b.route().clone());
    if let Some(u) = &url {
        prop_assert_eq!(
            hit.as_ref(),
            reference_match(router.routes(), u),
            "{}",
            input
        );
        if let Some(r) = &hit {
            prop_assert_eq!(u.scheme(), scheme_of(r));
            prop_assert_eq!(u.host_str(), Some(r.host()));
            prop_assert_eq!(u.port_or_known_default(), Some(r.port()));
            prop_assert!(u.username().is_empty() && u.password().is_none());
            prop_assert!(reference_prefix_matches(r.path_prefix(), u.path()));
        }
    }
    // On an input already in the URL parser's canonical form (up to the case of the scheme
    // and host) the request-URI matcher, which reads the authority and path as text, finds
    // what the URL matcher finds. (Elsewhere it may be stricter, never looser: the URL parser
    // drops an empty `:@`, resolves `..`, reads `127.0.0.1.` as an address, and so on.)
    if let (Some(url), Some(_)) = (&url, &hit)
        && let Ok(uri) = input.parse::<http::Uri>()
        && (url.as_str().eq_ignore_ascii_case(input)
            || url.as_str().eq_ignore_ascii_case(&format!("{input}/")))
    {
        prop_assert_eq!(
            router.match_uri(&uri).map(|b| b.route()),
            hit.as_ref(),
            "match_uri is less permissive on {}",
            input
        );
    }
    if let Ok(uri) = input.parse::<http::Uri>()
        && let Some(b) = router.match_uri(&uri)
    {
        let r = b.route();
        let authority = uri.authority().unwrap();
        prop_assert!(!authority.as_str().contains('@'), "{}", input);
        prop_assert!(authority.host().eq_ignore_ascii_case(r.host()));
        prop_assert!(reference_prefix_matches(r.path_prefix(), uri.path()));
        prop_assert_eq!(
            hit.as_ref(),
            Some(r),
            "match_uri is more permissive on {}",
            input
        );
    }
    Ok(hit)
}

fn url_parts() -> impl Strategy<Value = (String, String, String, String, String, String)> {
    let hosts: Vec<String> = FIXTURE_HOSTS
        .iter()
        .flat_map(|h| {
            [
                (*h).to_owned(),
                h.to_ascii_uppercase(),
                format!("{h}.evil"),
                format!("evil{h}"),
                format!("{h}x"),
                format!("{h}."),
            ]
        })
        .collect();
    (
        prop::sample::select(vec!["https", "http", "HTTPS", "Http", "ftp", "ws"]),
        prop::sample::select(vec![
            "",
            "",
            "",
            "user@",
            "user:pw@",
            ":@",
            "graph.microsoft.com@",
        ]),
        prop::sample::select(hosts),
        prop::sample::select(vec![
            "", "", ":443", ":80", ":8443", ":9443", ":8080", ":0443", ":",
        ]),
        prop::collection::vec(
            prop::sample::select(vec![
                "api",
                "apix",
                "admin",
                "shop",
                "v6",
                "local",
                "x",
                "..",
                ".",
                "%2e",
                "%2E%2e",
                "",
                "v1.0",
                "%2f",
                "admin\\x",
                "api\\admin",
                "\\",
            ]),
            0..5,
        ),
        prop::sample::select(vec!["", "", "?q=1", "#frag", "?next=/api/admin"]),
    )
        .prop_map(|(s, u, h, p, segs, q)| {
            let path = segs.iter().map(|s| format!("/{s}")).collect::<String>();
            (
                s.to_owned(),
                u.to_owned(),
                h,
                p.to_owned(),
                path,
                q.to_owned(),
            )
        })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn routing_never_panics_on_arbitrary_text(input in "\\PC{0,64}") {
        check_routing(&input)?;
    }

    #[test]
    fn routing_matches_only_the_routes_own_origin((scheme, userinfo, host, port, path, query) in url_parts()) {
        let input = format!("{scheme}://{userinfo}{host}{port}{path}{query}");
        let hit = check_routing(&input)?;
        // Look-alikes (`host.evil`, `evilhost`, `hostx`, `host.`) and user info: nothing. The
        // parsed URL decides what the request really names: the URL standard reads `127.0.0.1.`
        // as `127.0.0.1` and drops an empty user info (`https://:@host/` is `https://host/`).
        let parsed = url::Url::parse(&input).ok();
        let own_host = parsed.as_ref().and_then(|u| u.host_str()).is_some_and(|h| FIXTURE_HOSTS.contains(&h));
        let user_info = parsed.as_ref().is_some_and(|u| !u.username().is_empty() || u.password().is_some());
        if !own_host || user_info || (!userinfo.is_empty() && userinfo != ":@") {
            prop_assert!(hit.is_none(), "{}", input);
        }
    }

    #[test]
    fn routing_prefixes_match_whole_segments(route_index in 0usize..9, tail in "[a-z0-9._~-]{1,8}", more in "(/[a-z0-9]{0,6}){0,3}") {
        let routes: Vec<&Route> = fixture_router().routes().collect();
        let r = routes[route_index % routes.len()];
        let origin = format!("{}://{}:{}", scheme_of(r), r.host(), r.port());
        // prefix + "x…": never this route (e.g. `/apix` is not `/api`).
        if !r.path_prefix().is_empty() && !reference_is_dot_segment(&tail) {
            let hit = check_routing(&format!("{origin}{}{tail}{more}", r.path_prefix()))?;
            prop_assert!(hit.as_ref() != Some(r));
        }
        // prefix + "/…": this route or a more specific one on the same origin.
        if !reference_is_dot_segment(&tail) {
            let hit = check_routing(&format!("{origin}{}/{tail}{more}", r.path_prefix()))?;
            let hit = hit.expect("a path under the prefix matches");
            prop_assert_eq!(hit.host(), r.host());
            prop_assert_eq!(hit.port(), r.port());
            prop_assert!(hit.path_prefix().starts_with(r.path_prefix()));
        }
    }
}

/// Every host of the routes, in lower, upper and mixed case, through both matchers on both
/// tables: `match_uri` finds the route `match_url` finds (the small table's first-byte filter
/// must compare case-insensitively).
#[test]
fn both_matchers_find_routes_for_hosts_in_any_case() {
    let mut matched = 0;
    for router in [fixture_router(), small_fixture_router()] {
        for r in router.routes() {
            let scheme = scheme_of(r);
            let default = if r.is_https() { 443 } else { 80 };
            let port = if r.port() == default {
                String::new()
            } else {
                format!(":{}", r.port())
            };
            let host = r.host();
            let mixed: String = host
                .chars()
                .enumerate()
                .map(|(i, c)| {
                    if i % 2 == 0 {
                        c.to_ascii_uppercase()
                    } else {
                        c
                    }
                })
                .collect();
            for h in [host.to_owned(), host.to_ascii_uppercase(), mixed] {
                let input = format!("{scheme}://{h}{port}{}/x", r.path_prefix());
                let url = url::Url::parse(&input).unwrap();
                let uri: http::Uri = input.parse().unwrap();
                let by_url = router.match_url(&url).map(|b| b.route());
                assert_eq!(by_url, Some(r), "{input}");
                assert_eq!(router.match_uri(&uri).map(|b| b.route()), by_url, "{input}");
                matched += 1;
            }
        }
    }
    assert_eq!(matched, 3 * (9 + 7));
}

/// A raw backslash in the path: URL parsers read it as `/` (so `match_url` sees
/// `/api/admin/x`), while `match_uri` reads the text; it must then give no token rather than the
/// `/api` route's. Found by the `routing` fuzz target.
#[test]
fn a_backslash_in_a_request_uri_path_gets_no_token() {
    for input in [
        "https://orders.example.com/api/admin\\x",
        "https://orders.example.com/api\\admin/x",
        "https://graph.microsoft.com/v1.0\\me",
    ] {
        let uri: http::Uri = input.parse().unwrap();
        assert!(fixture_router().match_uri(&uri).is_none(), "{input}");
        assert!(small_fixture_router().match_uri(&uri).is_none(), "{input}");
    }
    let url = url::Url::parse("https://orders.example.com/api\\admin/x").unwrap();
    assert_eq!(url.path(), "/api/admin/x");
    assert_eq!(
        fixture_router()
            .match_url(&url)
            .map(|b| b.route().path_prefix()),
        Some("/api/admin")
    );
}
