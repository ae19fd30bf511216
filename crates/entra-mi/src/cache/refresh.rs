//! What a finished fetch does to its slot: the refresh schedule of a new token, the back-off
//! after a failure, and the background refreshes (on demand and on a timer).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use super::entry::{Entry, nanos};
use super::slot::{FlightResult, NO_GATE, Slot, SlotState, lock};
use super::{Inner, Options};
use crate::error::Error;
use crate::token::AccessToken;

const TWO_HOURS: Duration = Duration::from_secs(2 * 3600);

/// A finished fetch's outcome, for the log line written once the slot's lock is released.
enum Logged {
    Cached {
        lifetime: Duration,
        refresh_in: Duration,
        same: bool,
        early_backoff: Option<Duration>,
        rejected_again: Option<Duration>,
    },
    Failed {
        error: Error,
        retry_in: Duration,
        still_valid: bool,
    },
}

/// Stores a fetched token or records a failure, ends the slot's flight, and returns what the
/// waiters get and when the slot is next due (its refresh point, or the end of its back-off).
pub(super) fn complete(
    inner: &Arc<Inner>,
    slot: &Arc<Slot>,
    result: Result<AccessToken, Error>,
) -> (FlightResult, Duration) {
    let time = &inner.time;
    let now = time.monotonic();
    let wall = time.wall_nanos();
    let wall_time = time.system_now();
    let audience = slot.request.audience();
    let credential = || inner.credential.name().to_owned();
    let checked = result.and_then(|token| {
        let remaining = token.remaining(time);
        if remaining.is_zero() {
            return Err(Error::from(crate::error::CredentialError::Failed {
                credential: credential(),
                message: format!("returned a token for {audience} that has already expired"),
            }));
        }
        let Some(header) = token.header_value() else {
            return Err(Error::from(crate::error::CredentialError::Failed {
                credential: credential(),
                message: format!(
                    "returned a token for {audience} whose value or type cannot be sent in an HTTP header"
                ),
            }));
        };
        Ok((token, header, now + remaining))
    });
    let mut st = lock(&slot.state);
    st.flight = None;
    let (outcome, logged, next_eager) = match checked {
        Ok((token, header, expires_at)) => {
            let (entry, logged) = store(
                inner,
                slot,
                &mut st,
                Clocks {
                    now,
                    wall,
                    wall_time,
                },
                token,
                header,
                expires_at,
            );
            let at = entry.refresh_at;
            (Ok(entry), logged, at)
        }
        Err(error) => {
            inner.stats.failures.fetch_add(1, Ordering::Relaxed);
            st.failures += 1;
            st.last_failure = Some((now, error.clone()));
            let backoff = failure_backoff(&inner.opts, st.failures, time.jitter());
            let next = now + backoff;
            slot.refresh_gate.store(nanos(next), Ordering::Release);
            let still_valid = slot
                .current
                .load()
                .as_deref()
                .is_some_and(|e| e.usable(now, wall));
            let logged = Logged::Failed {
                error: error.clone(),
                retry_in: backoff,
                still_valid,
            };
            (Err(error), logged, next)
        }
    };
    drop(st);
    log(&logged, audience);
    (outcome, next_eager)
}

/// One reading of the clocks.
#[derive(Clone, Copy)]
struct Clocks {
    now: Duration,
    wall: u64,
    wall_time: SystemTime,
}

/// Under the slot's lock: the new token's refresh point, stored.
fn store(
    inner: &Inner,
    slot: &Slot,
    st: &mut SlotState,
    clocks: Clocks,
    mut token: AccessToken,
    header: http::HeaderValue,
    expires_at: Duration,
) -> (Arc<Entry>, Logged) {
    let Clocks {
        now,
        wall,
        wall_time,
    } = clocks;
    let opts = &inner.opts;
    let time = &inner.time;
    let lifetime = expires_at - now;
    // At most a tenth of the lifetime, but at least 1 s (or half of a shorter lifetime):
    // `expires_in` counts whole seconds from when the endpoint answered, so an expiry computed
    // from it can be up to a second late.
    let buffer = opts
        .expiry_buffer
        .min(lifetime / 10)
        .max(Duration::from_secs(1).min(lifetime / 2));
    let usable_until = expires_at - buffer;
    let source_refresh = token.monotonic.and_then(|m| m.refresh_at).or_else(|| {
        token
            .refresh_on()
            .map(|r| now + r.duration_since(wall_time).unwrap_or_default())
    });
    let planned = match source_refresh {
        Some(r) => r,
        None if lifetime >= TWO_HOURS => now + lifetime / 2,
        None => expires_at - Duration::from_secs(300).min(lifetime / 2),
    };
    let jitter = opts.max_jitter.min(lifetime / 10).mul_f64(time.jitter());
    let mut refresh_at = planned.saturating_sub(jitter).min(usable_until).max(now);
    let same = slot
        .current
        .load()
        .as_deref()
        .is_some_and(|p| p.token.is_same_token(&token));
    // The endpoint returned the token already held (managed-identity endpoints cache tokens),
    // or one that is already due: keep it, and push the next attempt back by a growing backoff
    // instead of asking again at once.
    let min_gap = Duration::from_secs(1).min(lifetime / 4);
    let early_backoff = if same || refresh_at <= now + min_gap {
        st.early_streak += 1;
        let backoff = failure_backoff(opts, st.early_streak, time.jitter());
        refresh_at = refresh_at.max(now + backoff).min(usable_until);
        Some(refresh_at - now)
    } else {
        st.early_streak = 0;
        None
    };
    // The source handed back the token an API just rejected: it stays in service (it is the
    // only one there is), and is not dropped again before the back-off passes.
    let re_served = st
        .rejected
        .as_ref()
        .is_some_and(|r| r.token.is_same_token(&token));
    let rejected_again = if re_served {
        st.rejected_again += 1;
        let backoff = failure_backoff(opts, st.rejected_again, time.jitter());
        st.rejection_gate = now + backoff;
        Some(backoff)
    } else {
        st.rejected = None;
        st.rejected_again = 0;
        st.rejection_gate = Duration::ZERO;
        None
    };
    token.set_refresh_on(wall_time + (refresh_at - now));
    // Promote the header's bytes to shared storage now, so clones on the hot path are a
    // reference-count increment and never allocate.
    drop(header.clone());
    let version = slot.version.load(Ordering::Relaxed) + 1;
    let entry = Arc::new(Entry {
        version,
        header,
        token,
        refresh_at,
        refresh_at_wall: wall.saturating_add(nanos(refresh_at - now)),
        usable_until,
        usable_until_wall: wall.saturating_add(nanos(usable_until - now)),
    });
    slot.current.store(Some(entry.clone()));
    slot.version.store(version, Ordering::Release);
    st.failures = 0;
    st.last_failure = None;
    slot.refresh_gate.store(NO_GATE, Ordering::Release);
    let logged = Logged::Cached {
        lifetime,
        refresh_in: refresh_at - now,
        same,
        early_backoff,
        rejected_again,
    };
    (entry, logged)
}

fn log(logged: &Logged, audience: &crate::audience::Audience) {
    match logged {
        Logged::Cached {
            lifetime,
            refresh_in,
            same,
            early_backoff,
            rejected_again,
        } => {
            if let Some(next) = early_backoff {
                tracing::debug!(
                    audience = %audience,
                    same_token = same,
                    next_attempt_in_s = next.as_secs(),
                    "the refresh returned a token that is already due; the next attempt backs off"
                );
            }
            if let Some(backoff) = rejected_again {
                tracing::warn!(
                    audience = %audience,
                    retry_in_s = backoff.as_secs(),
                    "the token source handed back the token an API just rejected; it is not dropped again before the back-off passes"
                );
            }
            tracing::debug!(
                audience = %audience,
                expires_in_s = lifetime.as_secs(),
                refresh_in_s = refresh_in.as_secs(),
                same_token = same,
                "token cached"
            );
        }
        Logged::Failed {
            error,
            retry_in,
            still_valid: true,
        } => tracing::warn!(
            audience = %audience,
            error = %error,
            retry_in_s = retry_in.as_secs(),
            "token refresh failed; the cached token stays in service"
        ),
        Logged::Failed { error, .. } => {
            tracing::warn!(audience = %audience, error = %error, "token fetch failed");
        }
    }
}

/// The wait after `consecutive` failures: the base doubling per failure up to the cap, plus up
/// to a fifth of it in jitter.
pub(super) fn failure_backoff(opts: &Options, consecutive: u32, jitter: f64) -> Duration {
    let exp = consecutive.saturating_sub(1).min(16);
    let base = opts
        .failure_backoff
        .saturating_mul(1 << exp)
        .min(opts.max_failure_backoff.max(opts.failure_backoff));
    base + base.mul_f64(0.2 * jitter)
}
