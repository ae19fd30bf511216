//! The validator's clock: the wall clock for `exp`/`nbf`, a monotonic one for key refreshes.
//! Tests step a [`ManualClock`] instead of sleeping (feature `test-util`).

use std::time::Duration;

/// Where the time comes from.
#[derive(Clone, Debug, Default)]
pub(crate) enum Clock {
    /// The system's wall and monotonic clocks (coarse ones on Linux; see `system`).
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
            Clock::System => system::unix_secs(),
            #[cfg(feature = "test-util")]
            Clock::Manual(m) => m.unix_secs(),
        }
    }

    /// A monotonic reading: time since a fixed point of this process (or of the machine).
    pub(crate) fn monotonic(&self) -> Duration {
        match self {
            Clock::System => system::monotonic(),
            #[cfg(feature = "test-util")]
            Clock::Manual(m) => m.monotonic(),
        }
    }
}

/// The system's clocks. On Linux, `CLOCK_REALTIME_COARSE` and `CLOCK_MONOTONIC_COARSE`: a few
/// nanoseconds each through the vDSO (the precise clocks take about 20 ns on a virtual
/// machine, and a remembered token is answered in little more than two such reads), with the
/// resolution of a scheduler tick (1–4 ms) — ample for `exp`/`nbf` in whole seconds and key
/// refreshes hours apart. Elsewhere `SystemTime` and `Instant`.
#[cfg(target_os = "linux")]
mod system {
    use std::time::Duration;

    use rustix::time::{ClockId, clock_gettime};

    pub(super) fn unix_secs() -> i64 {
        clock_gettime(ClockId::RealtimeCoarse).tv_sec
    }

    pub(super) fn monotonic() -> Duration {
        let ts = clock_gettime(ClockId::MonotonicCoarse);
        // CLOCK_MONOTONIC never reads negative.
        Duration::new(
            u64::try_from(ts.tv_sec).unwrap_or(0),
            u32::try_from(ts.tv_nsec).unwrap_or(0),
        )
    }
}

#[cfg(not(target_os = "linux"))]
mod system {
    use std::sync::OnceLock;
    use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

    pub(super) fn unix_secs() -> i64 {
        match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
        }
    }

    pub(super) fn monotonic() -> Duration {
        static ORIGIN: OnceLock<Instant> = OnceLock::new();
        ORIGIN.get_or_init(Instant::now).elapsed()
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

#[cfg(test)]
mod tests {
    use std::time::{SystemTime, UNIX_EPOCH};

    use super::Clock;

    #[test]
    fn the_system_clocks_read_the_system_time() {
        let precise = || {
            i64::try_from(
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap()
                    .as_secs(),
            )
            .unwrap()
        };
        let before = precise();
        let coarse = Clock::System.unix_secs();
        let after = precise();
        // A coarse reading lags the precise clock by at most a scheduler tick.
        assert!(
            (before - 1..=after).contains(&coarse),
            "{before} {coarse} {after}"
        );
        let a = Clock::System.monotonic();
        std::thread::sleep(std::time::Duration::from_millis(30));
        let b = Clock::System.monotonic();
        assert!(b > a, "{a:?} {b:?}");
    }
}
