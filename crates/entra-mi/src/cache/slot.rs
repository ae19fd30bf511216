//! One audience's slot: the cached entry, its version, the refresh gate and the state behind
//! the slot's lock; and invalidation, which drops an entry an API rejected.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use tokio::sync::watch;

use super::Inner;
use super::entry::Entry;
use super::local::Lines;
use crate::credential::TokenRequest;
use crate::error::Error;

/// The refresh gate when nothing holds a refresh back.
pub(super) const NO_GATE: u64 = 0;
/// The refresh gate while a fetch runs.
pub(super) const GATE_IN_FLIGHT: u64 = u64::MAX;

/// What the waiters of a fetch get.
pub(super) type FlightResult = Result<Arc<Entry>, Error>;

/// The cache slot of one audience (and tenant).
pub(super) struct Slot {
    pub(super) request: TokenRequest,
    /// The per-thread copies of `current`.
    pub(super) lines: Lines,
    pub(super) current: ArcSwapOption<Entry>,
    /// The version of the last write to `current` (the stored entry's, or a new one for an
    /// invalidation), published after the write. Writes happen under `state`'s lock, so
    /// versions only grow. A per-thread copy of an entry is current while its version is this.
    pub(super) version: AtomicU64,
    /// Monotonic nanoseconds before which no background refresh starts; `GATE_IN_FLIGHT`
    /// while one runs.
    pub(super) refresh_gate: AtomicU64,
    pub(super) state: Mutex<SlotState>,
}

/// What the slot's lock guards. Nothing is logged while it is held: a `tracing` subscriber
/// that itself asks the cache for a token must not deadlock.
#[derive(Default)]
pub(super) struct SlotState {
    /// The entry invalidated last (a token an API rejected), until a different token is
    /// cached: tells whether the source handed back the token that was just rejected.
    pub(super) rejected: Option<Arc<Entry>>,
    /// How many times in a row the source handed back the rejected token.
    pub(super) rejected_again: u32,
    /// Monotonic time before which the re-served rejected token is not dropped again.
    pub(super) rejection_gate: Duration,
    /// The fetch in flight, if any: callers join it.
    pub(super) flight: Option<watch::Receiver<Option<FlightResult>>>,
    pub(super) failures: u32,
    pub(super) last_failure: Option<(Duration, Error)>,
    /// How many refreshes in a row returned a token already due for refresh.
    pub(super) early_streak: u32,
}

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Slot {
    pub(super) fn new(request: TokenRequest) -> Self {
        Slot {
            request,
            lines: Lines::default(),
            current: ArcSwapOption::empty(),
            version: AtomicU64::new(0),
            refresh_gate: AtomicU64::new(NO_GATE),
            state: Mutex::new(SlotState::default()),
        }
    }
}

/// What [`invalidate`] did.
enum Invalidated {
    NoMatch,
    Dropped,
    /// The token is the rejected one the source handed back; it is not dropped again before
    /// this much time has passed.
    HeldBack(Duration),
}

/// Drops the cached entry if `matches` says it is the one an API rejected. A token the source
/// handed back right after it was rejected is not dropped again until its back-off has passed
/// (30 s, doubling per re-served rejection to 5 min): managed-identity endpoints cache tokens,
/// so asking again at once returns it again, and a stream of `401`s would become a stream of
/// requests to an endpoint that throttles per machine.
pub(super) fn invalidate(inner: &Inner, slot: &Slot, matches: impl Fn(&Entry) -> bool) -> bool {
    let now = inner.time.monotonic();
    let outcome = {
        // Every write to `current` happens under the slot lock (see `Slot::version`).
        let mut st = lock(&slot.state);
        match slot.current.load_full() {
            Some(entry) if matches(&entry) => {
                let re_served = st
                    .rejected
                    .as_ref()
                    .is_some_and(|r| r.token.is_same_token(&entry.token));
                if re_served && now < st.rejection_gate {
                    Invalidated::HeldBack(st.rejection_gate - now)
                } else {
                    slot.current.store(None);
                    slot.version.store(entry.version + 1, Ordering::Release);
                    st.rejected = Some(entry);
                    // The token was rejected: the next caller fetches at once.
                    st.last_failure = None;
                    if st.flight.is_none() {
                        slot.refresh_gate.store(NO_GATE, Ordering::Release);
                    }
                    Invalidated::Dropped
                }
            }
            _ => Invalidated::NoMatch,
        }
    };
    let audience = slot.request.audience();
    match outcome {
        Invalidated::NoMatch => false,
        Invalidated::Dropped => {
            inner.stats.invalidations.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(audience = %audience, "cached token invalidated");
            true
        }
        Invalidated::HeldBack(left) => {
            tracing::debug!(
                audience = %audience,
                retry_in_s = left.as_secs(),
                "the token source handed back the token just rejected; it is kept until its back-off passes"
            );
            false
        }
    }
}
