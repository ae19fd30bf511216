//! `Retry-After` (RFC 9110 §10.2.3): a delay in seconds or an HTTP date.

use std::time::{Duration, SystemTime};

use super::date::parse_http_date;

/// The longest `Retry-After` taken as given (about 31 years): longer ones are cut to it, so
/// adding the delay to a clock reading cannot overflow. Any caller deadline is far shorter.
const MAX_RETRY_AFTER_SECS: u64 = 1_000_000_000;

/// `Retry-After`: delay seconds or an HTTP date.
pub(crate) fn retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs.min(MAX_RETRY_AFTER_SECS)));
    }
    if let Ok(secs) = value.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0)
            .then(|| Duration::from_secs_f64(secs.min(MAX_RETRY_AFTER_SECS as f64)));
    }
    let at = parse_http_date(value)?;
    Some(
        at.duration_since(now)
            .unwrap_or(Duration::ZERO)
            .min(Duration::from_secs(MAX_RETRY_AFTER_SECS)),
    )
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use super::*;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        let now = at(784_111_777);
        assert_eq!(retry_after("30", now), Some(Duration::from_secs(30)));
        assert_eq!(retry_after(" 2 ", now), Some(Duration::from_secs(2)));
        assert_eq!(
            retry_after("Sun, 06 Nov 1994 08:49:57 GMT", now),
            Some(Duration::from_secs(20))
        );
        assert_eq!(
            retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after("soon", now), None);
        assert_eq!(retry_after("-3", now), None);
        // Absurd delays are cut, so adding one to a clock reading cannot overflow.
        let max = Duration::from_secs(1_000_000_000);
        assert_eq!(retry_after("18446744073709551615", now), Some(max));
        assert_eq!(retry_after("1e300", now), Some(max));
        assert_eq!(retry_after("Fri, 31 Dec 9999 23:59:59 GMT", now), Some(max));
    }
}
