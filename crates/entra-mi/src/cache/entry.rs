//! A cached token with its header and its deadlines on both clocks.

use std::time::Duration;

use http::HeaderValue;

use crate::token::AccessToken;

/// A cached token with its header and deadlines.
pub(super) struct Entry {
    pub(super) version: u64,
    pub(super) header: HeaderValue,
    pub(super) token: AccessToken,
    /// Fresh until then, on the monotonic clock…
    pub(super) refresh_at: Duration,
    /// … and until then on the wall clock (nanoseconds since the Unix epoch), which keeps
    /// counting while the machine sleeps.
    pub(super) refresh_at_wall: u64,
    /// Served (fresh or stale) until then, on the monotonic clock…
    pub(super) usable_until: Duration,
    /// … and on the wall clock.
    pub(super) usable_until_wall: u64,
}

impl Entry {
    /// Fresh at `now` (monotonic) and `wall` (nanoseconds since the epoch): both clocks must
    /// agree. The wall clock catches a suspended machine, the monotonic one a wall clock set
    /// back.
    pub(super) fn fresh(&self, now: Duration, wall: u64) -> bool {
        now < self.refresh_at && wall < self.refresh_at_wall
    }

    /// Still to be served at `now` and `wall` (fresh or stale).
    pub(super) fn usable(&self, now: Duration, wall: u64) -> bool {
        now < self.usable_until && wall < self.usable_until_wall
    }

    /// The wall-clock time (nanoseconds since the epoch) until which a thread's copy may serve
    /// this entry without looking at the monotonic clock: its fresh period measured from now
    /// on the monotonic clock, moved onto the wall clock read at the same moment, and never
    /// past the entry's own wall-clock refresh point.
    pub(super) fn fresh_until_wall(&self, now: Duration, wall: u64) -> u64 {
        let left = nanos(self.refresh_at.saturating_sub(now));
        wall.saturating_add(left).min(self.refresh_at_wall)
    }
}

pub(super) fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX - 1)
}
