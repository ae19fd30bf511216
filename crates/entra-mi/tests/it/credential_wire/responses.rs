//! Every documented response shape, and the expiry rules.

use super::*;

/// Every documented shape of a success body parses to the right expiry.
#[tokio::test]
async fn every_response_shape_is_accepted() {
    let now = now_unix();
    let date_in_an_hour = {
        // MM/DD/YYYY hh:mm:ss AM +00:00, one hour ahead (to the second).
        let t = now + 3600;
        let days = t / 86400;
        let secs = t % 86400;
        let (y, m, d) = civil_from_days(days as i64);
        let (h, min, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
        let (h12, ampm) = match h {
            0 => (12, "AM"),
            1..=11 => (h, "AM"),
            12 => (12, "PM"),
            _ => (h - 12, "PM"),
        };
        (
            format!("{m:02}/{d:02}/{y} {h12:02}:{min:02}:{s:02} {ampm} +00:00"),
            format!("{m}/{d}/{y} {h:02}:{min:02}:{s:02} +00:00"),
            format!("{y}-{m:02}-{d:02}T{h:02}:{min:02}:{s:02}Z"),
        )
    };
    let bodies = [
        ("IMDS strings", imds_body(CANARY, now, 3600)),
        (
            "numbers",
            json!({"access_token": CANARY, "expires_in": 3600, "expires_on": now + 3600}),
        ),
        (
            "expires_on string only",
            json!({"access_token": CANARY, "expires_on": (now + 3600).to_string()}),
        ),
        (
            "expires_on number only",
            json!({"access_token": CANARY, "expires_on": now + 3600}),
        ),
        (
            "legacy date with AM/PM",
            json!({"access_token": CANARY, "expires_on": date_in_an_hour.0}),
        ),
        (
            "legacy date 24h",
            json!({"access_token": CANARY, "expires_on": date_in_an_hour.1}),
        ),
        (
            "RFC 3339",
            json!({"access_token": CANARY, "expires_on": date_in_an_hour.2}),
        ),
        (
            "empty expires_in, epoch expires_on",
            json!({"access_token": CANARY, "expires_in": "", "expires_on": (now + 3600).to_string()}),
        ),
        (
            "token_type missing",
            json!({"access_token": CANARY, "expires_in": "3600"}),
        ),
    ];
    for (name, body) in bodies {
        let server = RawServer::start(Reply::json(200, body)).await;
        let token = imds(&server)
            .get_token(&graph())
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let lifetime = token.expires_on_unix() as i64 - now_unix() as i64;
        assert!(
            (3590..=3601).contains(&lifetime),
            "{name}: lifetime {lifetime}"
        );
        assert_eq!(token.token_type(), "Bearer", "{name}");
    }
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Both expiry fields: the earlier deadline is kept, the server's `expires_on` is reported,
/// and `refresh_in` is honoured.
#[tokio::test]
async fn the_earlier_of_expires_in_and_expires_on_is_kept_and_refresh_in_honoured() {
    let now = now_unix();
    // The endpoint's clock is half an hour behind ours: its expires_on comes first.
    let body = json!({"access_token": CANARY, "expires_in": "3600", "expires_on": (now + 3600 - 1800).to_string(), "refresh_in": "1200"});
    let server = RawServer::start(Reply::json(200, body)).await;
    let token = imds(&server).get_token(&graph()).await.unwrap();
    assert_eq!(token.expires_on_unix(), now + 1800);
    let refresh = token
        .refresh_on()
        .unwrap()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!((1195..=1201).contains(&(refresh - now as i64)));
    // Behind a provider, the earlier deadline is the one the cache schedules by.
    let clock = ManualClock::with_wall_time(SystemTime::now());
    let provider = TokenProvider::builder(imds_with(&server, clock.time_source(0.0)))
        .time_source(clock.time_source(0.0))
        .build();
    let token = provider.token(&Audience::microsoft_graph()).await.unwrap();
    assert_eq!(token.expires_on_unix(), now + 1800);
    clock.advance(Duration::from_secs(1800 - 30));
    assert!(
        provider
            .cached_header(&Audience::microsoft_graph())
            .is_none(),
        "served past the earlier deadline"
    );
}

/// An `expires_on` already in the past is refused even when `expires_in` is present: the
/// token is never returned, cached or served.
#[tokio::test]
async fn an_already_expired_token_is_refused_even_with_expires_in() {
    let now = now_unix();
    // The endpoint's clock is two hours behind ours (or ours ahead): the token it hands out
    // expired an hour ago.
    let body = json!({"access_token": CANARY, "expires_in": "3600", "expires_on": (now + 3600 - 7200).to_string()});
    let server = RawServer::start(Reply::json(200, body)).await;
    let err = imds(&server).get_token(&graph()).await.unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(&err, Error::Source(family) if matches!(&**family, entra_mi::error::SourceError::Unavailable {
            reason: Unavailable::InvalidResponse { .. },
            ..
        })),
        "{err:?}"
    );
    assert!(text.contains("already-expired token"), "{text}");
    assert!(!text.contains(CANARY), "{text}");
    let provider = TokenProvider::new(imds(&server));
    assert!(provider.header(&Audience::microsoft_graph()).await.is_err());
    assert!(
        provider
            .cached_header(&Audience::microsoft_graph())
            .is_none()
    );
}

/// A bare `"86400"` in `expires_on` is no point in time and no documented lifetime: refused.
#[tokio::test]
async fn a_small_expires_on_without_an_agreeing_expires_in_is_refused() {
    let body = json!({"access_token": CANARY, "expires_on": "86400"});
    let server = RawServer::start(Reply::json(200, body)).await;
    let err = imds(&server).get_token(&graph()).await.unwrap_err();
    assert!(err.to_string().contains("before 2001"), "{err}");
}
