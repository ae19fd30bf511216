//! A token endpoint's success answer → an [`AccessToken`]: the token, its type, its expiry
//! (see [`expiry`]) and `refresh_in`.

use std::time::{Duration, SystemTime};

use serde_json::{Map, Value};

use super::body::{json_object, kind};
use super::expiry::{SentAt, expiry, parse_expires_on};
use crate::error::Unavailable;
use crate::http::RawResponse;
use crate::token::{AccessToken, MonotonicDeadlines};

/// Turns a success body into an [`AccessToken`] with deadlines on the monotonic clock.
///
/// `expires_in` (relative to `sent`) and `expires_on` (epoch number or string, the legacy App
/// Service date strings, RFC 3339) are both read, and the earlier deadline is kept (see
/// [`expiry`]); an already-expired token is refused. `refresh_in` is honoured when it falls
/// within the lifetime. Lifetimes that are zero, negative or longer than
/// [`MAX_LIFETIME`](super::MAX_LIFETIME) are refused.
pub(crate) fn parse_token(
    response: &RawResponse,
    sent: SentAt,
    received_wall: SystemTime,
    received_mono: Duration,
) -> Result<AccessToken, Unavailable> {
    token_from_map(&json_object(response)?, sent, received_wall, received_mono)
}

/// [`parse_token`] of a body already read as a JSON object.
pub(crate) fn token_from_map(
    map: &Map<String, Value>,
    sent: SentAt,
    received_wall: SystemTime,
    received_mono: Duration,
) -> Result<AccessToken, Unavailable> {
    let invalid = |problem: String| Unavailable::InvalidResponse { problem };

    let secret = match map.get("access_token") {
        None => return Err(invalid("`access_token` is missing".into())),
        Some(Value::String(s)) if s.is_empty() => {
            return Err(invalid("`access_token` is empty".into()));
        }
        Some(Value::String(s)) => s,
        Some(other) => {
            return Err(invalid(format!(
                "`access_token` is {}, expected a string",
                kind(other)
            )));
        }
    };
    if !AccessToken::is_header_safe(secret) {
        return Err(invalid(
            "`access_token` contains characters that cannot be sent in an HTTP header".into(),
        ));
    }
    let token_type = match map.get("token_type") {
        None | Some(Value::Null) => "Bearer",
        Some(Value::String(s)) if s.is_empty() => "Bearer",
        Some(Value::String(s))
            if s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') =>
        {
            s
        }
        Some(Value::String(_)) => {
            return Err(invalid("`token_type` is not a valid scheme name".into()));
        }
        Some(other) => {
            return Err(invalid(format!(
                "`token_type` is {}, expected a string",
                kind(other)
            )));
        }
    };

    let expires_in = seconds_field(map, "expires_in").map_err(invalid)?;
    let refresh_in = seconds_field(map, "refresh_in").map_err(invalid)?;
    let expires_on = match map.get("expires_on") {
        None | Some(Value::Null) => None,
        Some(v) => Some(parse_expires_on(v).map_err(invalid)?),
    };
    let expiry = expiry(expires_in, expires_on, sent, received_wall, received_mono)?;
    let lifetime = expiry.expires_at_mono.saturating_sub(sent.monotonic);
    let refresh_at = refresh_in
        .map(Duration::from_secs)
        .filter(|r| !r.is_zero() && *r < lifetime);
    let mut token = AccessToken::new(secret.clone(), expiry.expires_on_wall)
        .with_token_type(token_type)
        .with_monotonic(MonotonicDeadlines {
            expires_at: expiry.expires_at_mono,
            refresh_at: refresh_at.map(|r| sent.monotonic + r),
        });
    if let Some(r) = refresh_at {
        token.set_refresh_on(sent.wall + r);
    }
    Ok(token)
}

/// A field holding whole seconds as a number or a digit string. Absent, null or `""` ⇒ None.
fn seconds_field(map: &Map<String, Value>, name: &str) -> Result<Option<u64>, String> {
    match map.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => s
            .trim()
            .parse::<u64>()
            .map(Some)
            .map_err(|_| format!("`{name}` is a string that is not a whole number of seconds")),
        Some(Value::Number(n)) => {
            if let Some(v) = n.as_u64() {
                Ok(Some(v))
            } else if n.as_i64().is_some() {
                Err(format!("`{name}` is negative"))
            } else {
                match n.as_f64() {
                    Some(f) if f >= 0.0 && f.is_finite() && f < 1e12 => Ok(Some(f as u64)),
                    _ => Err(format!("`{name}` is a number out of range")),
                }
            }
        }
        Some(other) => Err(format!(
            "`{name}` is {}, expected a number or a string of digits",
            kind(other)
        )),
    }
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use super::*;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    /// Found by the property tests: a body's huge `expires_in` / `expires_on` used to overflow
    /// `SystemTime + Duration` (a panic) before the lifetime bound was checked.
    #[test]
    fn huge_lifetimes_are_refused_not_a_panic() {
        let sent = SentAt {
            monotonic: Duration::from_secs(1_000),
            wall: at(1_700_000_000),
        };
        for body in [
            r#"{"access_token":"t","expires_in":18446744073709551615}"#,
            r#"{"access_token":"t","expires_in":"9223372036854775808"}"#,
            r#"{"access_token":"t","expires_on":9223372036854775808}"#,
            r#"{"access_token":"t","expires_on":"18446744073709551615"}"#,
        ] {
            let response = RawResponse {
                status: 200,
                content_type: Some("application/json".into()),
                retry_after: None,
                www_authenticate: None,
                body: bytes::Bytes::from(body),
            };
            let err = parse_token(&response, sent, sent.wall, sent.monotonic)
                .map(|_| ())
                .unwrap_err();
            assert!(
                matches!(err, Unavailable::InvalidResponse { .. }),
                "{body}: {err}"
            );
        }
    }

    fn parse_at(body: &str, sent: SentAt) -> Result<AccessToken, Unavailable> {
        let response = RawResponse {
            status: 200,
            content_type: Some("application/json".into()),
            retry_after: None,
            www_authenticate: None,
            body: bytes::Bytes::from(body.to_owned()),
        };
        parse_token(&response, sent, sent.wall, sent.monotonic)
    }

    fn sent_at(wall: u64) -> SentAt {
        SentAt {
            monotonic: Duration::from_secs(1_000),
            wall: at(wall),
        }
    }

    /// Both fields: the earlier deadline is scheduled, the server's `expires_on` reported.
    #[test]
    fn both_fields_keep_the_earlier_deadline_and_report_the_servers_expiry() {
        let now = 1_700_000_000;
        let sent = sent_at(now);
        // expires_on earlier than expires_in (an endpoint clock behind ours, or a cached token).
        let body = format!(
            r#"{{"access_token":"t","expires_in":"3600","expires_on":"{}"}}"#,
            now + 1800
        );
        let t = parse_at(&body, sent).unwrap();
        assert_eq!(t.expires_on(), at(now + 1800));
        assert_eq!(
            t.monotonic.unwrap().expires_at,
            Duration::from_secs(1_000 + 1800)
        );
        // expires_in earlier (an endpoint's cache made it stale, or its clock is ahead): the
        // deadline is expires_in's, the reported expiry still the server's own value.
        let body = format!(
            r#"{{"access_token":"t","expires_in":1200,"expires_on":{}}}"#,
            now + 3600
        );
        let t = parse_at(&body, sent).unwrap();
        assert_eq!(t.expires_on(), at(now + 3600));
        assert_eq!(
            t.monotonic.unwrap().expires_at,
            Duration::from_secs(1_000 + 1200)
        );
    }

    #[test]
    fn an_already_expired_expires_on_is_refused_even_with_expires_in() {
        let now = 1_700_000_000;
        for expires_on in [now - 3600, now - 1, now] {
            let body = format!(
                r#"{{"access_token":"t","expires_in":"3600","expires_on":"{expires_on}"}}"#
            );
            let err = parse_at(&body, sent_at(now)).map(|_| ()).unwrap_err();
            let text = err.to_string();
            assert!(matches!(err, Unavailable::InvalidResponse { .. }), "{text}");
            assert!(text.contains("already-expired token"), "{text}");
            assert!(text.contains("clock"), "{text}");
        }
    }

    #[test]
    fn a_small_expires_on_is_a_lifetime_only_when_expires_in_agrees() {
        let sent = sent_at(1_700_000_000);
        for body in [
            r#"{"access_token":"t","expires_on":"86400"}"#,
            r#"{"access_token":"t","expires_on":3599}"#,
            r#"{"access_token":"t","expires_in":600,"expires_on":"3600"}"#,
        ] {
            let err = parse_at(body, sent).map(|_| ()).unwrap_err();
            assert!(err.to_string().contains("before 2001"), "{body}: {err}");
        }
        let t = parse_at(
            r#"{"access_token":"t","expires_in":"3599","expires_on":"3600"}"#,
            sent,
        )
        .unwrap();
        assert_eq!(
            t.monotonic.unwrap().expires_at,
            Duration::from_secs(1_000 + 3599)
        );
        assert_eq!(t.expires_on(), at(1_700_000_000 + 3600));
    }

    #[test]
    fn an_offset_with_multibyte_characters_is_a_refused_expires_on() {
        let sent = SentAt {
            monotonic: Duration::from_secs(1_000),
            wall: at(1_700_000_000),
        };
        let response = RawResponse {
            status: 200,
            content_type: Some("application/json".into()),
            retry_after: None,
            www_authenticate: None,
            body: bytes::Bytes::from(
                r#"{"access_token":"t","expires_on":"1/1/2030 0:00:00 +1é1"}"#,
            ),
        };
        let err = parse_token(&response, sent, sent.wall, sent.monotonic)
            .map(|_| ())
            .unwrap_err();
        assert!(err.to_string().contains("expires_on"), "{err}");
    }
}
