//! The single flight: one fetch per slot at a time, which every caller without a valid token
//! joins and whose result they all get.
//!
//! Inside a tokio runtime the fetch runs on a spawned task, bounded by the provider's fetch
//! timeout, so a caller that is dropped does not cancel it. Outside one (another executor)
//! there is nothing to spawn on: the first caller runs the fetch in its own task, bounded only
//! by the credential's own timeouts, and concurrent callers still join it; if that caller is
//! dropped mid-fetch, a waiting caller starts the next one.
//!
//! A claims request (after a claims challenge) goes through the same flight: it waits for a
//! fetch already running to end, then runs as the slot's flight, so a plain fetch can never
//! replace the token that carries the claims.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::sync::watch;

use super::Inner;
use super::entry::nanos;
use super::refresh::{self, failure_backoff};
use super::slot::{FlightResult, GATE_IN_FLIGHT, NO_GATE, Slot, SlotState, lock};
use crate::credential::TokenRequest;
use crate::error::Error;

/// How many times a caller joins a flight that ended without a result (its task cancelled)
/// before it gives up with [`Error::FetchAborted`].
const JOIN_ATTEMPTS: usize = 3;

/// What a caller without a valid token does next.
enum Joined {
    /// The answer is known: a token that became valid meanwhile, or the last error.
    Ready(FlightResult),
    /// Wait for this flight's result.
    Flight(watch::Receiver<Option<FlightResult>>),
    /// A flight runs that cannot serve this caller (a claims request waits for it to end).
    Busy(watch::Receiver<Option<FlightResult>>),
    /// No runtime to spawn on: this caller runs the flight.
    Lead(Lead),
}

/// A flight the calling task runs itself.
struct Lead {
    guard: FlightGuard,
    tx: watch::Sender<Option<FlightResult>>,
    request: TokenRequest,
}

/// Waits for a valid token: joins the in-flight fetch or starts one. With `claims`, fetches a
/// token carrying them as the slot's next flight instead.
pub(super) async fn wait(
    inner: &Arc<Inner>,
    slot: &Arc<Slot>,
    claims: Option<&str>,
) -> FlightResult {
    for _ in 0..JOIN_ATTEMPTS * 2 {
        let (mut rx, busy) = match join_or_start(inner, slot, claims) {
            Joined::Ready(result) => return result,
            Joined::Lead(lead) => return lead.run().await,
            Joined::Flight(rx) => (rx, false),
            Joined::Busy(rx) => (rx, true),
        };
        inner.stats.waits.fetch_add(1, Ordering::Relaxed);
        let waited = rx.wait_for(Option::is_some).await.map(|v| v.clone());
        let outcome = match waited {
            Ok(value) => value,
            Err(_) => rx.borrow().clone(),
        };
        match outcome {
            // A claims request waited for another fetch to end: now its own turn.
            Some(_) if busy => {}
            Some(result) => return result,
            // The flight ended without a result: its task was cancelled (a runtime shutting
            // down, a leading caller dropped) or the credential panicked, which recorded a
            // failure the next join returns.
            None => {}
        }
    }
    Err(Error::from(crate::error::CredentialError::Aborted {
        audience: slot.request.audience().to_string(),
    }))
}

/// Under the slot lock: a token that became valid meanwhile, the in-flight fetch to join, the
/// last error (within the cold retry interval), or a new fetch.
fn join_or_start(inner: &Arc<Inner>, slot: &Arc<Slot>, claims: Option<&str>) -> Joined {
    let now = inner.time.monotonic();
    let wall = inner.time.wall_nanos();
    let mut st = lock(&slot.state);
    let current = slot.current.load_full();
    let request = match claims {
        Some(claims) => {
            if let Some(rx) = &st.flight {
                return Joined::Busy(rx.clone());
            }
            let mut request = slot.request.clone().with_claims(claims);
            if let Some(current) = &current {
                request = request.with_token_to_refresh(&current.token);
            }
            request
        }
        None => {
            if let Some(entry) = current
                && entry.usable(now, wall)
            {
                return Joined::Ready(Ok(entry));
            }
            if let Some(rx) = &st.flight {
                return Joined::Flight(rx.clone());
            }
            if let Some((at, error)) = &st.last_failure
                && now < *at + inner.opts.cold_retry_interval
            {
                return Joined::Ready(Err(error.clone()));
            }
            slot.request.clone()
        }
    };
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => Joined::Flight(begin_flight(inner, slot, &mut st, &runtime, request)),
        Err(_) => {
            let (guard, tx) = start(inner, slot, &mut st);
            Joined::Lead(Lead { guard, tx, request })
        }
    }
}

/// Marks a flight as running under the slot lock.
fn start(
    inner: &Arc<Inner>,
    slot: &Arc<Slot>,
    st: &mut SlotState,
) -> (FlightGuard, watch::Sender<Option<FlightResult>>) {
    let (tx, rx) = watch::channel(None);
    st.flight = Some(rx);
    slot.refresh_gate.store(GATE_IN_FLIGHT, Ordering::Release);
    inner.stats.fetches.fetch_add(1, Ordering::Relaxed);
    let guard = FlightGuard {
        inner: inner.clone(),
        slot: slot.clone(),
        done: false,
    };
    (guard, tx)
}

/// Starts a flight for `request` on `runtime`; returns the receiver of its result.
fn begin_flight(
    inner: &Arc<Inner>,
    slot: &Arc<Slot>,
    st: &mut SlotState,
    runtime: &tokio::runtime::Handle,
    request: TokenRequest,
) -> watch::Receiver<Option<FlightResult>> {
    let (guard, tx) = start(inner, slot, st);
    let rx = tx.subscribe();
    runtime.spawn(run_flight(guard, tx, request));
    rx
}

/// The spawned fetch, bounded by the provider's fetch timeout (or the request's deadline, if
/// that is longer).
async fn run_flight(
    mut guard: FlightGuard,
    tx: watch::Sender<Option<FlightResult>>,
    request: TokenRequest,
) {
    let inner = guard.inner.clone();
    let timeout = request.deadline().map_or(inner.opts.fetch_timeout, |d| {
        d.max(inner.opts.fetch_timeout)
    });
    let result = tokio::select! {
        result = inner.credential.get_token(&request) => result,
        () = inner.time.sleep(timeout) => Err(Error::from(crate::error::DeadlineError::FetchTimeout {
            credential: inner.credential.name().to_owned(),
            audience: request.audience().to_string(),
            timeout,
        })),
    };
    let outcome = complete(&inner, &guard.slot, result);
    guard.done = true;
    let _ = tx.send(Some(outcome));
}

impl Lead {
    async fn run(mut self) -> FlightResult {
        let inner = self.guard.inner.clone();
        let result = inner.credential.get_token(&self.request).await;
        let outcome = complete(&inner, &self.guard.slot, result);
        self.guard.done = true;
        let _ = self.tx.send(Some(outcome.clone()));
        outcome
    }
}

/// Ends a flight that stops without completing. A panicking credential counts as a failure
/// (with its back-off, so a credential that panics every time is not asked again at once); a
/// cancelled one (its runtime shut down, or the caller that ran it was dropped) lets the next
/// caller start a new fetch.
struct FlightGuard {
    inner: Arc<Inner>,
    slot: Arc<Slot>,
    done: bool,
}

impl Drop for FlightGuard {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let panicked = std::thread::panicking();
        let now = self.inner.time.monotonic();
        {
            let mut st = lock(&self.slot.state);
            st.flight = None;
            if panicked {
                st.failures += 1;
                st.last_failure = Some((
                    now,
                    Error::from(crate::error::CredentialError::Aborted {
                        audience: self.slot.request.audience().to_string(),
                    }),
                ));
                let backoff =
                    failure_backoff(&self.inner.opts, st.failures, self.inner.time.jitter());
                self.slot
                    .refresh_gate
                    .store(nanos(now + backoff), Ordering::Release);
            } else {
                self.slot.refresh_gate.store(NO_GATE, Ordering::Release);
            }
        }
        if panicked {
            self.inner.stats.failures.fetch_add(1, Ordering::Relaxed);
        }
        tracing::warn!(
            audience = %self.slot.request.audience(),
            panicked,
            "token fetch ended without a result"
        );
    }
}

/// Stores the result of a fetch (see [`refresh::complete`]) and, for an eager provider,
/// schedules the slot's next refresh.
fn complete(
    inner: &Arc<Inner>,
    slot: &Arc<Slot>,
    result: Result<crate::token::AccessToken, Error>,
) -> FlightResult {
    let (outcome, next) = refresh::complete(inner, slot, result);
    if inner.opts.eager {
        schedule_eager(inner, slot, next);
    }
    outcome
}

/// Eager mode: a timer task that refreshes the slot at `at` (monotonic), without traffic.
fn schedule_eager(inner: &Arc<Inner>, slot: &Arc<Slot>, at: Duration) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let weak_inner: Weak<Inner> = Arc::downgrade(inner);
    let weak_slot: Weak<Slot> = Arc::downgrade(slot);
    let delay = at.saturating_sub(inner.time.monotonic());
    let sleep = inner.time.sleep(delay);
    runtime.spawn(async move {
        sleep.await;
        let (Some(inner), Some(slot)) = (weak_inner.upgrade(), weak_slot.upgrade()) else {
            return;
        };
        // The timer has run its course, so it is at least `at`: the coarse clock can read up
        // to a tick behind the timer's, and the refresh must not then be judged not yet due
        // and dropped (nothing would schedule it again).
        let now = inner.time.monotonic().max(at);
        refresh_now(&inner, &slot, now);
    });
}

/// Starts a background fetch if the slot is due (stale, expired or empty) and none runs.
pub(super) fn refresh_now(inner: &Arc<Inner>, slot: &Arc<Slot>, now: Duration) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let wall = inner.time.wall_nanos();
    let started = {
        let mut st = lock(&slot.state);
        if st.flight.is_some() || nanos(now) < slot.refresh_gate.load(Ordering::Acquire) {
            return;
        }
        let due = slot
            .current
            .load()
            .as_deref()
            .is_none_or(|e| !e.fresh(now, wall));
        if due {
            let request = slot.request.clone();
            drop(begin_flight(inner, slot, &mut st, &runtime, request));
        }
        due
    };
    if started {
        tracing::debug!(audience = %slot.request.audience(), "token due for refresh; refreshing in the background");
    }
}
