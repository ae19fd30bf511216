//! A per-thread copy of the cache entries a thread used last, so that a hit needs no locked
//! instruction besides the `HeaderValue` clone itself.
//!
//! The shared store stays the slot's `ArcSwapOption<Entry>`. Every write to it happens under
//! the slot's lock and is followed by publishing its version in the slot's `version` (the new
//! entry's, or a fresh one for an invalidation), so versions only grow. A thread keeps, per
//! slot it used recently, the last entry it loaded, and uses that copy only while the slot's
//! version is still the entry's: once a replacement or an invalidation has been published, no
//! thread serves the old entry again. The cost of a hit is a thread-local access and a plain
//! atomic load, instead of the `ArcSwap` load's store and compare-and-swap on its debt slot.
//!
//! After [`OWN_COPY_AFTER`] hits from one line, the thread makes its own copy of the header
//! (one allocation per thread per token) and clones that from then on: threads serving the
//! same token then each bump a reference count on their own cache line, instead of all of
//! them bouncing the shared header's count between cores.
//!
//! Lines are direct-mapped by slot id: a thread that alternates between more than [`LINES`]
//! audiences whose ids collide just takes the shared path for them (and, refilling its lines
//! before they reach the threshold, makes no copies). A line holds an `Arc<Entry>` and maybe a
//! copy of its header: a thread keeps at most [`LINES`] entries alive after they were
//! replaced, until it next uses those lines or exits.

use std::cell::{Cell, OnceCell, RefCell};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use http::HeaderValue;

use super::Entry;
use super::stats::StripedCounter;

/// Lines per thread.
pub(super) const LINES: usize = 16;

/// Hits from one line after which the thread serves its own copy of the header.
pub(super) const OWN_COPY_AFTER: u32 = 64;

/// Slot ids start at 1; 0 marks an empty line.
static NEXT_SLOT_ID: AtomicU64 = AtomicU64::new(1);

/// A process-unique id for a new slot (ids are never reused, so a line never matches a slot
/// that merely lives at the address of a dropped one).
pub(super) fn next_slot_id() -> u64 {
    NEXT_SLOT_ID.fetch_add(1, Ordering::Relaxed)
}

struct Line {
    slot: u64,
    entry: Option<Arc<Entry>>,
    /// Hits served from this line since it was filled, counted until the copy is made.
    hits: Cell<u32>,
    /// This thread's own copy of `entry`'s header.
    own: OnceCell<HeaderValue>,
}

/// A copy of `header` in storage of its own, already shared so that clones never allocate.
#[cold]
fn own_copy(header: &HeaderValue) -> HeaderValue {
    let Ok(mut own) = HeaderValue::from_bytes(header.as_bytes()) else {
        return header.clone();
    };
    own.set_sensitive(header.is_sensitive());
    drop(own.clone());
    own
}

/// A thread's lines, and its stripe of the hit counters (kept here too, so a hit makes one
/// thread-local access, not two).
struct Local {
    lines: RefCell<[Line; LINES]>,
    /// Assigned when the first line is filled; `usize::MAX` before.
    stripe: Cell<usize>,
}

thread_local! {
    static LOCAL: Local = const {
        Local {
            lines: RefCell::new(
                [const {
                    Line {
                        slot: 0,
                        entry: None,
                        hits: Cell::new(0),
                        own: OnceCell::new(),
                    }
                }; LINES],
            ),
            stripe: Cell::new(usize::MAX),
        }
    };
}

#[inline]
fn index(slot: u64) -> usize {
    // Truncation is the point: the low bits pick the line.
    (slot as usize) % LINES
}

/// A hit from this thread's copy of slot `slot`'s entry: the header to serve (the thread's own
/// copy once made), counted on `hits`, when the copy is still the slot's current entry
/// (`version` is the slot's published version, read by the caller just now) and still fresh
/// by the clock `now` reads. `None` sends the caller to the shared store.
///
/// The clone is the return value itself (no tuple around it), so it is written once into the
/// caller's slot: moving a header through a nested `Option` cost a store-forwarding stall.
#[inline]
pub(super) fn hit(
    slot: u64,
    version: u64,
    now: impl FnOnce() -> Duration,
    hits: &StripedCounter,
) -> Option<HeaderValue> {
    LOCAL
        .try_with(|local| {
            let lines = local.lines.try_borrow().ok()?;
            let line = &lines[index(slot)];
            let entry = line.entry.as_deref()?;
            if line.slot != slot || entry.version != version {
                return None;
            }
            let own = line.own.get();
            let header = own.unwrap_or(&entry.header).clone();
            // The clock is read after the clone: the clone's result is written to the stack
            // by an out-of-line call (the `Bytes` vtable) and then moved with wider loads than
            // its stores, which stalls until those stores drain; the clock read fills that
            // time (the hit went from 1.27x to 0.97x the floor in the interleaved bench).
            // Past `refresh_at` the clone is dropped again and the caller takes the shared
            // path, which serves the stale token and starts the refresh: only until that
            // refresh publishes a new version. Only hits count towards the thread's own copy,
            // so a stale entry never gets one.
            if now() >= entry.refresh_at {
                return None;
            }
            if own.is_none() {
                let n = line.hits.get() + 1;
                line.hits.set(n);
                if n >= OWN_COPY_AFTER {
                    line.own.get_or_init(|| own_copy(&entry.header));
                }
            }
            hits.incr_at(local.stripe.get());
            Some(header)
        })
        .ok()
        .flatten()
}

/// Remembers `entry`, just loaded from slot `slot`'s shared store. The entry the line held
/// before is dropped.
pub(super) fn remember(slot: u64, entry: Arc<Entry>) {
    let _ = LOCAL.try_with(|local| {
        if local.stripe.get() == usize::MAX {
            local.stripe.set(super::stats::stripe());
        }
        if let Ok(mut lines) = local.lines.try_borrow_mut() {
            let line = &mut lines[index(slot)];
            line.slot = slot;
            line.hits.set(0);
            line.own = OnceCell::new();
            // The old entry is dropped after the borrow ends (at the end of this closure), and
            // dropping an entry runs no code that touches this thread-local.
            line.entry = Some(entry);
        }
    });
}
