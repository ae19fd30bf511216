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
//! Lines are direct-mapped by slot id: a thread that alternates between more than [`LINES`]
//! audiences whose ids collide just takes the shared path for them. A line holds an
//! `Arc<Entry>`: a thread keeps at most [`LINES`] entries alive after they were replaced, until
//! it next uses those lines or exits.

use std::cell::{Cell, RefCell};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::Entry;

/// Lines per thread.
pub(super) const LINES: usize = 16;

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
}

const EMPTY: Line = Line {
    slot: 0,
    entry: None,
};

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
            lines: RefCell::new([EMPTY; LINES]),
            stripe: Cell::new(usize::MAX),
        }
    };
}

#[inline]
fn index(slot: u64) -> usize {
    // Truncation is the point: the low bits pick the line.
    (slot as usize) % LINES
}

/// Calls `f` with this thread's copy of slot `slot`'s entry when it is still the slot's
/// current one (`version` is the slot's published version, read by the caller just now).
/// Returns `f`'s result with this thread's hit-counter stripe.
#[inline]
pub(super) fn with_entry<R>(
    slot: u64,
    version: u64,
    f: impl FnOnce(&Entry) -> R,
) -> Option<(R, usize)> {
    LOCAL
        .try_with(|local| {
            let lines = local.lines.try_borrow().ok()?;
            let line = &lines[index(slot)];
            match line.entry.as_deref() {
                Some(entry) if line.slot == slot && entry.version == version => {
                    Some((f(entry), local.stripe.get()))
                }
                _ => None,
            }
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
            // The old entry is dropped after the borrow ends (at the end of this closure), and
            // dropping an entry runs no code that touches this thread-local.
            line.entry = Some(entry);
        }
    });
}
