//! Cache counters.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

const STRIPES: usize = 64;

#[repr(align(128))]
#[derive(Default)]
struct Padded(AtomicU64);

/// A counter striped over cache lines, one stripe per thread (the first 64 threads each get their
/// own), so that counting a hit costs a plain load and store on a line no other thread writes —
/// no locked instruction on the hot path. Exact while at most 64 threads count; beyond that,
/// threads share stripes and a rare simultaneous increment may be lost (it is a statistic).
pub(crate) struct StripedCounter {
    stripes: [Padded; STRIPES],
}

impl Default for StripedCounter {
    fn default() -> Self {
        Self {
            stripes: std::array::from_fn(|_| Padded::default()),
        }
    }
}

thread_local! {
    static STRIPE: Cell<usize> = const { Cell::new(usize::MAX) };
}

static NEXT_STRIPE: AtomicUsize = AtomicUsize::new(0);

/// This thread's stripe.
#[inline]
pub(crate) fn stripe() -> usize {
    STRIPE.with(|s| {
        let v = s.get();
        if v != usize::MAX {
            return v;
        }
        let v = NEXT_STRIPE.fetch_add(1, Ordering::Relaxed) % STRIPES;
        s.set(v);
        v
    })
}

impl StripedCounter {
    #[inline]
    pub(crate) fn incr(&self) {
        self.incr_at(stripe());
    }

    /// Counts one on `stripe`: the calling thread's [`stripe`], which it kept.
    #[inline]
    pub(crate) fn incr_at(&self, stripe: usize) {
        let cell = &self.stripes[stripe % STRIPES].0;
        cell.store(
            cell.load(Ordering::Relaxed).wrapping_add(1),
            Ordering::Relaxed,
        );
    }

    pub(crate) fn sum(&self) -> u64 {
        self.stripes
            .iter()
            .map(|s| s.0.load(Ordering::Relaxed))
            .sum()
    }
}

#[derive(Default)]
pub(crate) struct Stats {
    pub(crate) hits: StripedCounter,
    pub(crate) stale_hits: StripedCounter,
    pub(crate) fetches: AtomicU64,
    pub(crate) failures: AtomicU64,
    pub(crate) waits: AtomicU64,
    pub(crate) invalidations: AtomicU64,
}

impl Stats {
    pub(crate) fn snapshot(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.sum(),
            stale_hits: self.stale_hits.sum(),
            fetches: self.fetches.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
            waits: self.waits.load(Ordering::Relaxed),
            invalidations: self.invalidations.load(Ordering::Relaxed),
        }
    }
}

/// A snapshot of a [`crate::TokenProvider`]'s counters, over all its audiences.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheStats {
    /// Requests served a fresh token from the cache.
    pub hits: u64,
    /// Requests served a still-valid token while a refresh was due (stale-while-revalidate).
    pub stale_hits: u64,
    /// Calls to the credential (each is one single-flight fetch).
    pub fetches: u64,
    /// Fetches that failed.
    pub failures: u64,
    /// Requests that had to wait for a fetch because no valid token was cached.
    pub waits: u64,
    /// Tokens dropped by `invalidate_if_current`.
    pub invalidations: u64,
}
