//! When a token expires: `expires_in` and the many shapes of `expires_on`, checked against the
//! bounds of a token's lifetime and turned into deadlines on both clocks.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use super::body::kind;
use super::date::parse_date;
use crate::error::Unavailable;

/// Longest token lifetime accepted (managed-identity tokens live ~24 h).
pub(crate) const MAX_LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);

/// Epoch seconds below this (2001-01-01) in `expires_on` are a relative lifetime, as MSAL.NET
/// reads them.
const RELATIVE_CUTOFF: u64 = 978_307_200;

/// When the request that produced a response was sent, on both clocks.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SentAt {
    pub(crate) monotonic: Duration,
    pub(crate) wall: SystemTime,
}

/// How far apart a relative `expires_on` and `expires_in` may be and still agree: both count
/// whole seconds of one lifetime, rounded by the endpoint.
const RELATIVE_AGREEMENT: u64 = 5;

/// When a token expires: the expiry to report, and the deadline to schedule by.
pub(super) struct Expiry {
    /// The server's `expires_on` when it sent an absolute one; otherwise the send time plus
    /// the lifetime it gave.
    pub(super) expires_on_wall: SystemTime,
    /// The earliest deadline the answer states, on the monotonic clock.
    pub(super) expires_at_mono: Duration,
}

/// Reads the answer's expiry fields.
///
/// * `expires_in` counts from the moment the request was sent (the token was issued after
///   that); an absolute `expires_on` is a point in time, measured against the wall clock at
///   receipt. When both are present, the **earlier** deadline is kept: an endpoint's own cache
///   can make `expires_in` stale, and a skewed clock can make `expires_on` misleading.
/// * An absolute `expires_on` at or before the receipt is an already-expired token: refused.
/// * An `expires_on` before 2001 is no point in time; MSAL.NET reads such a number as a
///   relative lifetime, but no managed-identity source is documented to send one, so it is
///   read so only where `expires_in` states the same lifetime, and refused otherwise.
/// * Every stated lifetime must be positive and at most [`MAX_LIFETIME`]; the bounds are
///   checked before any clock arithmetic (`SystemTime + Duration` panics on overflow, and the
///   body chooses these numbers).
pub(super) fn expiry(
    expires_in: Option<u64>,
    expires_on: Option<ExpiresOn>,
    sent: SentAt,
    received_wall: SystemTime,
    received_mono: Duration,
) -> Result<Expiry, Unavailable> {
    let invalid = |problem: String| Unavailable::InvalidResponse { problem };
    // Each candidate: the field, the expiry to report, and the lifetime from the send (from
    // the receipt for an absolute `expires_on`, with the monotonic base to match).
    let from_in = expires_in.map(|secs| ("expires_in", None, sent.monotonic, secs));
    let from_on = match expires_on {
        None => None,
        Some(ExpiresOn::Relative(secs)) => {
            if expires_in.is_none_or(|e| e.abs_diff(secs) > RELATIVE_AGREEMENT) {
                return Err(invalid(format!(
                    "`expires_on` is {secs}, which as epoch seconds lies before 2001; it would be a relative lifetime only if `expires_in` stated the same, and {}",
                    if expires_in.is_some() {
                        "it states another"
                    } else {
                        "there is no `expires_in`"
                    }
                )));
            }
            Some(("expires_on", None, sent.monotonic, secs))
        }
        Some(ExpiresOn::Absolute(at)) => {
            let remaining = at.duration_since(received_wall).unwrap_or_default();
            if remaining.is_zero() {
                return Err(invalid(
                    "the endpoint returned an already-expired token: its `expires_on` is at or before the time the answer arrived (a badly set clock, on this machine or the endpoint's, is the usual cause)".into(),
                ));
            }
            // Whole seconds, rounded up: the absolute time is the deadline, never later.
            let secs = remaining.as_secs() + u64::from(remaining.subsec_nanos() > 0);
            Some(("expires_on", Some(at), received_mono, secs))
        }
    };
    // The earlier deadline wins; only it must be a sane lifetime (a far-off `expires_on` next
    // to a sane `expires_in` is the endpoint's clock running ahead).
    let deadline = |(_, _, base, secs): &(&str, Option<SystemTime>, Duration, u64)| {
        base.as_secs().saturating_add(*secs)
    };
    let earlier = match (from_in, from_on) {
        (None, None) => {
            return Err(invalid(
                "neither `expires_in` nor `expires_on` is present".into(),
            ));
        }
        (Some(a), None) | (None, Some(a)) => a,
        (Some(a), Some(b)) => {
            if deadline(&b) < deadline(&a) {
                b
            } else {
                a
            }
        }
    };
    let (field, _, base, secs) = earlier;
    if secs == 0 {
        return Err(invalid(format!(
            "`{field}` gives the token a lifetime of zero"
        )));
    }
    if secs > MAX_LIFETIME.as_secs() {
        return Err(invalid(format!(
            "`{field}` gives the token a lifetime of {secs} s, longer than the {} s any Entra token lives; the expiry is mis-stated",
            MAX_LIFETIME.as_secs()
        )));
    }
    // Bounded now, so the clock arithmetic below cannot overflow.
    let lifetime = Duration::from_secs(secs);
    let expires_at_mono = match earlier.1 {
        // An absolute expiry: exactly it, on the monotonic clock.
        Some(at) => base + at.duration_since(received_wall).unwrap_or_default(),
        None => base + lifetime,
    };
    // What to report: the server's absolute `expires_on` when it sent one, else the send time
    // plus the (earlier) lifetime.
    let expires_on_wall = match from_on {
        Some((_, Some(at), _, _)) => at,
        // Before 2001, so the sum cannot overflow.
        Some((_, None, _, on_secs)) => sent.wall + Duration::from_secs(on_secs),
        None => sent.wall + lifetime,
    };
    Ok(Expiry {
        expires_on_wall,
        expires_at_mono,
    })
}

#[derive(Debug, PartialEq)]
pub(super) enum ExpiresOn {
    Relative(u64),
    Absolute(SystemTime),
}

pub(super) fn parse_expires_on(v: &Value) -> Result<ExpiresOn, String> {
    let out_of_range = || "`expires_on` is a number out of range".to_owned();
    // `UNIX_EPOCH + Duration` panics past the platform's range (e.g. 2^63 s): checked.
    let from_secs = |secs: u64| {
        if secs < RELATIVE_CUTOFF {
            Ok(ExpiresOn::Relative(secs))
        } else {
            UNIX_EPOCH
                .checked_add(Duration::from_secs(secs))
                .map(ExpiresOn::Absolute)
                .ok_or_else(out_of_range)
        }
    };
    match v {
        Value::Number(n) => match n.as_u64() {
            Some(secs) => from_secs(secs),
            None if n.as_i64().is_some() => Err("`expires_on` is negative".into()),
            None => match n.as_f64() {
                Some(f) if (0.0..1e12).contains(&f) => from_secs(f as u64),
                _ => Err(out_of_range()),
            },
        },
        Value::String(s) => {
            let s = s.trim();
            if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
                return s
                    .parse::<u64>()
                    .map_err(|_| out_of_range())
                    .and_then(from_secs);
            }
            parse_date(s).map(ExpiresOn::Absolute).ok_or_else(|| {
                "`expires_on` is a string in no known format (epoch seconds, `MM/DD/YYYY hh:mm:ss [AM|PM] +00:00`, RFC 3339)".into()
            })
        }
        other => Err(format!(
            "`expires_on` is {}, expected a number or a string",
            kind(other)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn expires_on_shapes() {
        assert_eq!(
            parse_expires_on(&Value::from(1_700_000_000u64)),
            Ok(ExpiresOn::Absolute(at(1_700_000_000)))
        );
        assert_eq!(
            parse_expires_on(&Value::from("1700000000")),
            Ok(ExpiresOn::Absolute(at(1_700_000_000)))
        );
        assert_eq!(
            parse_expires_on(&Value::from("3599")),
            Ok(ExpiresOn::Relative(3599))
        );
        assert!(
            parse_expires_on(&Value::from(-5))
                .unwrap_err()
                .contains("negative")
        );
        assert!(
            parse_expires_on(&Value::from(true))
                .unwrap_err()
                .contains("boolean")
        );
        assert!(
            parse_expires_on(&Value::from("soon"))
                .unwrap_err()
                .contains("no known format")
        );
        // Found by the property tests: past the platform's `SystemTime` range, not a panic.
        for huge in [Value::from(1u64 << 63), Value::from(u64::MAX.to_string())] {
            assert!(
                parse_expires_on(&huge)
                    .unwrap_err()
                    .contains("out of range"),
                "{huge}"
            );
        }
    }
}
