//! Injectable time: a monotonic clock, a wall clock, sleeping and jitter.
//!
//! Every time-dependent decision in this crate (cache freshness, retry delays, refresh jitter)
//! goes through a [`TimeSource`], so tests can step time instead of sleeping (see the
//! `test-util` feature) and the hot path can use a cheap clock.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// A boxed, `Send` future returned by [`Sleep::sleep`].
pub type SleepFuture = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// A caller's deadline ([`TokenRequest::with_deadline`](crate::TokenRequest::with_deadline))
/// as it runs down: the duration asked for, and when it ends on a time source's monotonic
/// clock.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Until {
    /// The deadline as the caller gave it.
    pub(crate) deadline: Duration,
    end: Duration,
}

impl Until {
    /// A request's `deadline`, starting now; `None` without one.
    pub(crate) fn start(deadline: Option<Duration>, time: &TimeSource) -> Option<Self> {
        deadline.map(|deadline| Until {
            deadline,
            end: time.monotonic().saturating_add(deadline),
        })
    }

    /// What is left of it (zero once it has passed).
    pub(crate) fn left(self, time: &TimeSource) -> Duration {
        self.end.saturating_sub(time.monotonic())
    }
}

/// A monotonic and a wall clock.
///
/// The monotonic reading is a [`Duration`] since an arbitrary, fixed origin; it never goes
/// backwards and is what the cache compares deadlines against. Implementations must be cheap:
/// [`Clock::monotonic`] is read once per cache hit.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// Time elapsed since this clock's origin; never decreases.
    fn monotonic(&self) -> Duration;
    /// The current wall-clock time.
    fn system_now(&self) -> SystemTime;
    /// The wall clock as time since the Unix epoch (zero before it). It may be coarse (a
    /// scheduler tick): the cache's hot path reads it once per hit to notice that the machine
    /// slept, which the monotonic clock of most platforms does not count. The default reads
    /// [`Clock::system_now`].
    fn wall(&self) -> Duration {
        self.system_now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
    }
}

/// Something that can wait for a while (a timer).
pub trait Sleep: Send + Sync + fmt::Debug + 'static {
    /// Returns a future that completes after `duration`.
    fn sleep(&self, duration: Duration) -> SleepFuture;
}

/// A source of random numbers in `[0, 1)` used to spread retries and refreshes.
pub trait Jitter: Send + Sync + fmt::Debug + 'static {
    /// A sample in `[0.0, 1.0)`.
    fn sample(&self) -> f64;
}

/// The system clock.
///
/// On Linux the monotonic reading comes from `CLOCK_MONOTONIC_COARSE` and the coarse wall
/// reading ([`Clock::wall`]) from `CLOCK_REALTIME_COARSE` (a few nanoseconds each through the
/// vDSO, resolution of one scheduler tick, ~1–4 ms — ample for token deadlines measured in
/// minutes); elsewhere from [`std::time::Instant`] and [`SystemTime`].
///
/// The monotonic clock stops while the machine is suspended (`CLOCK_MONOTONIC` on Linux,
/// `Instant` on macOS); the wall clock does not. The cache therefore judges freshness on both:
/// a laptop or VM that slept past a token's expiry never serves it.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

#[cfg(target_os = "linux")]
impl Clock for SystemClock {
    #[inline]
    fn monotonic(&self) -> Duration {
        let ts = rustix::time::clock_gettime(rustix::time::ClockId::MonotonicCoarse);
        // tv_sec and tv_nsec of CLOCK_MONOTONIC are never negative.
        Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
    }
    fn system_now(&self) -> SystemTime {
        SystemTime::now()
    }
    #[inline]
    fn wall(&self) -> Duration {
        let ts = rustix::time::clock_gettime(rustix::time::ClockId::RealtimeCoarse);
        // A clock set before 1970 reads as the epoch.
        Duration::new(u64::try_from(ts.tv_sec).unwrap_or(0), ts.tv_nsec as u32)
    }
}

#[cfg(not(target_os = "linux"))]
impl Clock for SystemClock {
    #[inline]
    fn monotonic(&self) -> Duration {
        use std::sync::OnceLock;
        use std::time::Instant;
        static ORIGIN: OnceLock<Instant> = OnceLock::new();
        ORIGIN.get_or_init(Instant::now).elapsed()
    }
    fn system_now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// Sleeping on the tokio timer.
#[derive(Debug, Default, Clone, Copy)]
pub struct TokioSleep;

impl Sleep for TokioSleep {
    fn sleep(&self, duration: Duration) -> SleepFuture {
        Box::pin(tokio::time::sleep(duration))
    }
}

/// Uniform random jitter from a fast, non-cryptographic generator.
#[derive(Debug, Default, Clone, Copy)]
pub struct RandomJitter;

impl Jitter for RandomJitter {
    fn sample(&self) -> f64 {
        fastrand::f64()
    }
}

/// The clock, timer and jitter a credential or cache uses. Cheap to clone.
#[derive(Clone, Debug)]
pub struct TimeSource {
    /// True when `clock` is [`SystemClock`]: the hot path then reads it without dynamic
    /// dispatch.
    system_clock: bool,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) sleep: Arc<dyn Sleep>,
    pub(crate) jitter: Arc<dyn Jitter>,
}

impl Default for TimeSource {
    fn default() -> Self {
        Self::system()
    }
}

impl TimeSource {
    /// The real clock, the tokio timer and random jitter.
    pub fn system() -> Self {
        Self {
            system_clock: true,
            clock: Arc::new(SystemClock),
            sleep: Arc::new(TokioSleep),
            jitter: Arc::new(RandomJitter),
        }
    }

    /// A time source from its three parts.
    pub fn new(clock: Arc<dyn Clock>, sleep: Arc<dyn Sleep>, jitter: Arc<dyn Jitter>) -> Self {
        Self {
            system_clock: false,
            clock,
            sleep,
            jitter,
        }
    }

    /// The monotonic clock reading.
    #[inline]
    pub fn monotonic(&self) -> Duration {
        if self.system_clock {
            SystemClock.monotonic()
        } else {
            self.clock.monotonic()
        }
    }

    /// The wall-clock time.
    pub fn system_now(&self) -> SystemTime {
        self.clock.system_now()
    }

    /// The (possibly coarse) wall clock in nanoseconds since the Unix epoch: what the cache's
    /// hot path compares against a token's wall-clock refresh point.
    #[inline]
    pub(crate) fn wall_nanos(&self) -> u64 {
        let wall = if self.system_clock {
            SystemClock.wall()
        } else {
            self.clock.wall()
        };
        u64::try_from(wall.as_nanos()).unwrap_or(u64::MAX)
    }

    /// Waits for `duration` on this source's timer.
    pub fn sleep(&self, duration: Duration) -> SleepFuture {
        self.sleep.sleep(duration)
    }

    /// A jitter sample in `[0, 1)`.
    pub fn jitter(&self) -> f64 {
        self.jitter.sample().clamp(0.0, 0.999_999)
    }
}

#[cfg(feature = "test-util")]
#[cfg_attr(docsrs, doc(cfg(feature = "test-util")))]
pub use manual::{FixedJitter, InstantSleep, ManualClock};

#[cfg(feature = "test-util")]
mod manual {
    use super::*;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
    use tokio::sync::oneshot;

    /// A clock that only moves when told to, and a timer driven by it.
    ///
    /// [`Sleep::sleep`] on a `ManualClock` completes when [`ManualClock::advance`] moves the
    /// clock past the sleep's deadline. Both readings start at a fixed origin (monotonic 1000 s,
    /// wall 2026-01-01T00:00:00Z) unless set otherwise.
    #[derive(Clone, Debug)]
    pub struct ManualClock {
        inner: Arc<ManualInner>,
    }

    #[derive(Debug)]
    struct ManualInner {
        mono_nanos: AtomicU64,
        /// How far the wall clock was moved on its own (suspends forward, settings back), in
        /// nanoseconds.
        wall_shift_nanos: AtomicI64,
        wall_origin: SystemTime,
        mono_origin: Duration,
        sleepers: Mutex<Vec<(Duration, oneshot::Sender<()>)>>,
    }

    impl Default for ManualClock {
        fn default() -> Self {
            Self::new()
        }
    }

    impl ManualClock {
        /// A clock at monotonic 1000 s and wall time 2026-01-01T00:00:00Z.
        pub fn new() -> Self {
            Self::with_wall_time(SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_600))
        }

        /// A clock whose wall reading starts at `wall`.
        pub fn with_wall_time(wall: SystemTime) -> Self {
            let mono_origin = Duration::from_secs(1000);
            Self {
                inner: Arc::new(ManualInner {
                    mono_nanos: AtomicU64::new(mono_origin.as_nanos() as u64),
                    wall_shift_nanos: AtomicI64::new(0),
                    wall_origin: wall,
                    mono_origin,
                    sleepers: Mutex::new(Vec::new()),
                }),
            }
        }

        /// Moves both readings forward by `by` and wakes the sleeps that are now due.
        pub fn advance(&self, by: Duration) {
            let now = Duration::from_nanos(
                self.inner
                    .mono_nanos
                    .fetch_add(by.as_nanos() as u64, Ordering::SeqCst)
                    + by.as_nanos() as u64,
            );
            let due: Vec<_> = {
                let mut sleepers = self
                    .inner
                    .sleepers
                    .lock()
                    .unwrap_or_else(|e| e.into_inner());
                let (due, keep) = sleepers.drain(..).partition(|(at, _)| *at <= now);
                *sleepers = keep;
                due
            };
            for (_, tx) in due {
                let _ = tx.send(());
            }
        }

        /// Models a suspend of the machine for `by`: the wall clock moves forward, the
        /// monotonic clock (and so every sleep on it) does not, as `CLOCK_MONOTONIC` on Linux
        /// and `Instant` on macOS stand still while the machine sleeps.
        pub fn suspend(&self, by: Duration) {
            self.inner
                .wall_shift_nanos
                .fetch_add(by.as_nanos() as i64, Ordering::SeqCst);
        }

        /// Sets the wall clock back by `by` (an administrator or a time service correcting it);
        /// the monotonic clock is unaffected.
        pub fn set_wall_back(&self, by: Duration) {
            self.inner
                .wall_shift_nanos
                .fetch_sub(by.as_nanos() as i64, Ordering::SeqCst);
        }

        /// How many sleeps are waiting for the clock to move (sleeps whose future was dropped
        /// do not count).
        pub fn pending_sleeps(&self) -> usize {
            let mut sleepers = self
                .inner
                .sleepers
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            sleepers.retain(|(_, tx)| !tx.is_closed());
            sleepers.len()
        }

        /// A [`TimeSource`] whose clock and timer are this clock, with the given jitter.
        pub fn time_source(&self, jitter: f64) -> TimeSource {
            TimeSource::new(
                Arc::new(self.clone()),
                Arc::new(self.clone()),
                Arc::new(FixedJitter(jitter)),
            )
        }

        /// A [`TimeSource`] whose sleeps complete at once after advancing this clock by their
        /// duration (for retry tests), with the given jitter.
        pub fn instant_time_source(&self, jitter: f64) -> (TimeSource, InstantSleep) {
            let sleep = InstantSleep {
                clock: self.clone(),
                slept: Arc::new(Mutex::new(Vec::new())),
            };
            (
                TimeSource::new(
                    Arc::new(self.clone()),
                    Arc::new(sleep.clone()),
                    Arc::new(FixedJitter(jitter)),
                ),
                sleep,
            )
        }
    }

    impl Clock for ManualClock {
        fn monotonic(&self) -> Duration {
            Duration::from_nanos(self.inner.mono_nanos.load(Ordering::SeqCst))
        }
        fn system_now(&self) -> SystemTime {
            let wall = self.inner.wall_origin + (self.monotonic() - self.inner.mono_origin);
            let shift = self.inner.wall_shift_nanos.load(Ordering::SeqCst);
            let by = Duration::from_nanos(shift.unsigned_abs());
            if shift >= 0 { wall + by } else { wall - by }
        }
    }

    impl Sleep for ManualClock {
        fn sleep(&self, duration: Duration) -> SleepFuture {
            let deadline = self.monotonic() + duration;
            if duration.is_zero() {
                return Box::pin(std::future::ready(()));
            }
            let (tx, rx) = oneshot::channel();
            self.inner
                .sleepers
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push((deadline, tx));
            Box::pin(async move {
                let _ = rx.await;
            })
        }
    }

    /// A timer whose sleeps complete at once, advancing a [`ManualClock`] by their duration and
    /// recording it.
    #[derive(Clone, Debug)]
    pub struct InstantSleep {
        clock: ManualClock,
        slept: Arc<Mutex<Vec<Duration>>>,
    }

    impl InstantSleep {
        /// Every sleep requested so far, in order.
        pub fn sleeps(&self) -> Vec<Duration> {
            self.slept.lock().unwrap_or_else(|e| e.into_inner()).clone()
        }

        /// The sum of every sleep requested so far.
        pub fn total(&self) -> Duration {
            self.sleeps().iter().sum()
        }
    }

    impl Sleep for InstantSleep {
        fn sleep(&self, duration: Duration) -> SleepFuture {
            self.slept
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(duration);
            self.clock.advance(duration);
            Box::pin(std::future::ready(()))
        }
    }

    /// Jitter that always returns the same sample.
    #[derive(Clone, Copy, Debug)]
    pub struct FixedJitter(pub f64);

    impl Jitter for FixedJitter {
        fn sample(&self) -> f64 {
            self.0
        }
    }
}
