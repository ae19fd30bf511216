//! Retry policies of the token sources.

use std::time::Duration;

/// How long a run of `410 Gone` answers from IMDS is retried at least ("IMDS is going through
/// updates; available within 70 s").
pub(crate) const GONE_MIN_RETRY: Duration = Duration::from_secs(70);

/// Retry settings of a credential.
///
/// Defaults: 5 retries, first delay 1 s doubling to at most 30 s (±20 % jitter), `Retry-After`
/// honoured up to the deadline, the whole fetch bounded by 100 s. IMDS additionally keeps
/// retrying `410 Gone` for at least 70 s.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryOptions {
    pub(crate) max_retries: u32,
    pub(crate) initial_delay: Duration,
    pub(crate) max_delay: Duration,
    pub(crate) deadline: Duration,
}

impl Default for RetryOptions {
    fn default() -> Self {
        Self {
            max_retries: 5,
            initial_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(30),
            deadline: Duration::from_secs(100),
        }
    }
}

impl RetryOptions {
    /// Retries after the first attempt (default 5). `0` disables retries, except that IMDS
    /// `410 Gone` is still retried for 70 s, within the deadline.
    pub fn max_retries(mut self, n: u32) -> Self {
        self.max_retries = n;
        self
    }

    /// The first delay, doubled on each retry (default 1 s).
    pub fn initial_delay(mut self, d: Duration) -> Self {
        self.initial_delay = d;
        self
    }

    /// The longest computed delay (default 30 s). A longer `Retry-After` is still honoured if
    /// it fits in the deadline.
    pub fn max_delay(mut self, d: Duration) -> Self {
        self.max_delay = d;
        self
    }

    /// Bound on one whole fetch, retries and delays included (default 100 s). A
    /// [`crate::TokenRequest::with_deadline`] shortens it for one request.
    pub fn deadline(mut self, d: Duration) -> Self {
        self.deadline = d;
        self
    }

    /// Delay before retry number `retry` (0-based), with `jitter` in `[0, 1)`.
    pub(crate) fn backoff(&self, retry: u32, jitter: f64) -> Duration {
        let factor = 2u32.saturating_pow(retry.min(20));
        let base = self
            .initial_delay
            .saturating_mul(factor)
            .min(self.max_delay);
        base.mul_f64(0.8 + 0.4 * jitter)
    }
}

/// Which answers a source retries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RetryClass {
    /// IMDS: 404, 408, 410, 429, 5xx, and transport failures.
    Imds,
    /// App Service and the other local managed-identity endpoints: 404, 408, 429, 500, 503,
    /// 504, and transport failures.
    ManagedIdentityDefault,
    /// Service Fabric: 429 and 5xx gateway statuses; never 404 (unknown code or no identity).
    ServiceFabric,
}

impl RetryClass {
    pub(crate) fn retries_status(self, status: u16) -> bool {
        match self {
            RetryClass::Imds => matches!(status, 404 | 408 | 410 | 429 | 500..=599),
            RetryClass::ManagedIdentityDefault => {
                matches!(status, 404 | 408 | 429 | 500 | 503 | 504)
            }
            RetryClass::ServiceFabric => matches!(status, 429 | 500 | 502 | 503 | 504),
        }
    }

    pub(crate) fn gone_min_retry(self) -> Option<Duration> {
        match self {
            RetryClass::Imds => Some(GONE_MIN_RETRY),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let o = RetryOptions::default();
        let d: Vec<u64> = (0..7).map(|r| o.backoff(r, 0.5).as_secs()).collect();
        assert_eq!(d, vec![1, 2, 4, 8, 16, 30, 30]);
        assert_eq!(o.backoff(0, 0.0), Duration::from_millis(800));
        assert!(o.backoff(0, 0.999) < Duration::from_millis(1200));
        assert_eq!(o.backoff(u32::MAX, 0.5), Duration::from_secs(30));
    }

    #[test]
    fn retried_statuses() {
        for s in [404, 408, 410, 429, 500, 502, 503, 504, 599] {
            assert!(RetryClass::Imds.retries_status(s), "{s}");
        }
        for s in [200, 400, 401, 403, 409] {
            assert!(!RetryClass::Imds.retries_status(s), "{s}");
        }
        assert!(!RetryClass::ManagedIdentityDefault.retries_status(410));
        assert!(!RetryClass::ManagedIdentityDefault.retries_status(502));
        assert!(RetryClass::ManagedIdentityDefault.retries_status(429));
        assert!(!RetryClass::ServiceFabric.retries_status(404));
        assert!(RetryClass::ServiceFabric.retries_status(429));
    }
}
