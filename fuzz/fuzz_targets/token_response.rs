//! The token-response parser every managed-identity source and the Entra token endpoint use,
//! on arbitrary bodies.
//!
//! Asserts, beyond "never panics":
//! * an accepted token's secret is the body's `access_token`, non-empty and header-safe, and
//!   its type is a valid scheme name;
//! * its lifetime is positive and at most `MAX_LIFETIME` (measured from the send, or from the
//!   receipt for an absolute `expires_on`), on both clocks, and the deadline scheduled by is
//!   never after the reported expiry;
//! * a refresh time, when set, lies strictly inside the lifetime on both clocks;
//! * a refusal never quotes a (long, header-safe) `access_token` from the body;
//! * `Retry-After` parsing of the same bytes never panics.
#![no_main]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use entra_mi::__fuzz::{self, Clocks, MAX_LIFETIME};
use libfuzzer_sys::fuzz_target;

/// 2023-11-14T22:13:20Z on the wall clock; the answer takes 250 ms on both clocks.
fn clocks() -> Clocks {
    let sent_wall = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let latency = Duration::from_millis(250);
    Clocks {
        sent_wall,
        sent_monotonic: Duration::from_secs(1_000),
        received_wall: sent_wall + latency,
        received_monotonic: Duration::from_secs(1_000) + latency,
    }
}

fn body_access_token(data: &[u8]) -> Option<String> {
    match serde_json::from_slice::<serde_json::Value>(data).ok()? {
        serde_json::Value::Object(map) => match map.get("access_token")? {
            serde_json::Value::String(s) => Some(s.clone()),
            _ => None,
        },
        _ => None,
    }
}

fn check(data: &[u8], content_type: Option<&str>) {
    let c = clocks();
    match __fuzz::parse_token(content_type, data, c) {
        Ok(parsed) => {
            let token = &parsed.token;
            let secret = token.secret();
            assert_eq!(body_access_token(data).as_deref(), Some(secret));
            assert!(!secret.is_empty());
            assert!(secret.bytes().all(|b| (0x21..0x7f).contains(&b)));
            let tt = token.token_type();
            assert!(!tt.is_empty());
            assert!(
                tt.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            );

            // Wall clock: the reported expiry (the server's own `expires_on` when it sent one,
            // however far off) is after the send.
            let expires_on = token.expires_on();
            let lifetime = expires_on
                .duration_since(c.sent_wall)
                .expect("an accepted token expires after the request was sent");
            assert!(!lifetime.is_zero());

            // Monotonic clock: the earliest deadline the answer states, never after the
            // reported expiry (the server's own `expires_on` when it sent one).
            let expires_at = parsed
                .expires_at_monotonic
                .expect("parsed tokens carry monotonic deadlines");
            assert!(expires_at > c.sent_monotonic);
            assert!(expires_at <= c.received_monotonic + MAX_LIFETIME);
            assert!(expires_at - c.sent_monotonic <= lifetime);

            // Refresh strictly inside the lifetime, on both clocks or neither.
            assert_eq!(
                token.refresh_on().is_some(),
                parsed.refresh_at_monotonic.is_some()
            );
            if let (Some(on), Some(at)) = (token.refresh_on(), parsed.refresh_at_monotonic) {
                assert!(on > c.sent_wall && on < expires_on);
                assert!(at > c.sent_monotonic && at < expires_at);
                assert_eq!(
                    on.duration_since(c.sent_wall).ok(),
                    Some(at - c.sent_monotonic)
                );
            }
            // The header value is the scheme and the secret (the parser refuses what a header
            // cannot carry, so a parsed token always has one).
            let header = token
                .header_value()
                .expect("a parsed token has a header value");
            assert!(header.is_sensitive());
            assert_eq!(header.as_bytes(), format!("{tt} {secret}").as_bytes());
        }
        Err(e) => {
            let message = e.to_string();
            // The fixed texts hold no run of 24 visible characters without a space.
            if let Some(secret) = body_access_token(data)
                && secret.len() >= 24
                && secret.bytes().all(|b| (0x21..0x7f).contains(&b))
            {
                assert!(
                    !message.contains(&secret),
                    "a refusal quotes the access token: {message}"
                );
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    check(data, Some("application/json; charset=utf-8"));
    // An HTML content type is refused whatever the body.
    assert!(__fuzz::parse_token(Some("text/html"), data, clocks()).is_err());
    if let Ok(text) = std::str::from_utf8(data) {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let _ = __fuzz::retry_after(text, now);
    }
});
