//! The validator's clock: the wall clock for `exp`/`nbf`, a monotonic one for key refreshes.
//! Tests step a [`ManualClock`] instead of sleeping (feature `test-util`).

use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Where the time comes from.
#[derive(Clone, Debug, Default)]
pub(crate) enum Clock {
    /// `SystemTime::now()` and `Instant::now()`.
    #[default]
    System,
    /// A clock that moves only when a test says so.
    #[cfg(feature = "test-util")]
    Manual(ManualClock),
}

impl Clock {
    /// Seconds since the Unix epoch (negative before it).
    pub(crate) fn unix_secs(&self) -> i64 {
        match self {
            Clock::System => match SystemTime::now().duration_since(UNIX_EPOCH) {
                Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
                Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
            },
            #[cfg(feature = "test-util")]
            Clock::Manual(m) => m.unix_secs(),
        }
    }

    /// A monotonic reading: time since a fixed point of this process.
    pub(crate) fn monotonic(&self) -> Duration {
        match self {
            Clock::System => {
                static ORIGIN: OnceLock<Instant> = OnceLock::new();
                ORIGIN.get_or_init(Instant::now).elapsed()
            }
            #[cfg(feature = "test-util")]
            Clock::Manual(m) => m.monotonic(),
        }
    }
}

#[cfg(feature = "test-util")]
pub use manual::ManualClock;

#[cfg(feature = "test-util")]
mod manual {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
    use std::time::Duration;

    /// A clock for tests (feature `test-util`): it starts at the system's wall time and moves
    /// only by [`advance`](ManualClock::advance) (wall and monotonic time together) and
    /// [`set_unix_secs`](ManualClock::set_unix_secs) (the wall clock alone, like a clock
    /// correction). Clones share the time.
    #[derive(Clone, Debug)]
    pub struct ManualClock {
        unix: Arc<AtomicI64>,
        monotonic_ms: Arc<AtomicU64>,
    }

    impl Default for ManualClock {
        fn default() -> Self {
            Self::new()
        }
    }

    impl ManualClock {
        /// A clock at the current wall time.
        pub fn new() -> Self {
            ManualClock {
                unix: Arc::new(AtomicI64::new(super::Clock::System.unix_secs())),
                monotonic_ms: Arc::new(AtomicU64::new(0)),
            }
        }

        /// Moves both clocks forward by `d` (whole milliseconds; the wall clock in whole
        /// seconds of the total).
        pub fn advance(&self, d: Duration) {
            let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
            let before = self.monotonic_ms.fetch_add(ms, Ordering::SeqCst);
            let secs = (before % 1000 + ms) / 1000;
            self.unix
                .fetch_add(i64::try_from(secs).unwrap_or(i64::MAX), Ordering::SeqCst);
        }

        /// Sets the wall clock (seconds since the Unix epoch); the monotonic clock stays.
        pub fn set_unix_secs(&self, secs: i64) {
            self.unix.store(secs, Ordering::SeqCst);
        }

        /// The wall clock, in seconds since the Unix epoch.
        pub fn unix_secs(&self) -> i64 {
            self.unix.load(Ordering::SeqCst)
        }

        pub(crate) fn monotonic(&self) -> Duration {
            Duration::from_millis(self.monotonic_ms.load(Ordering::SeqCst))
        }
    }
}
