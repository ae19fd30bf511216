//! Per-thread copies of a slot's entry, so that a hit needs no locked instruction besides the
//! `HeaderValue` clone itself.
//!
//! The shared store stays the slot's `ArcSwapOption<Entry>`. Every write to it happens under
//! the slot's lock and is followed by publishing its version in the slot's `version` (the new
//! entry's, or a fresh one for an invalidation), so versions only grow. Each thread that used
//! the slot keeps, in the slot's [`Lines`], the last entry it loaded, and uses that copy only
//! while the slot's version is still the entry's: once a replacement or an invalidation has
//! been published, no thread serves the old entry again. The cost of a hit is a thread-id read
//! (a thread-local without a destructor), one load of the thread's bucket and a plain atomic
//! load, instead of the `ArcSwap` load's store and compare-and-swap on its debt slot. A copy is
//! judged fresh on the coarse wall clock alone (one vDSO read, like the coarse monotonic clock
//! it replaces), against the fresh period moved onto the wall clock when the copy was made:
//! the wall clock keeps counting while the machine is suspended, and a wall clock set back
//! since the thread's last hit sends it to the shared path, which judges on both clocks.
//!
//! The copies live in the slot (`thread_local::ThreadLocal`), not in a `thread_local!` of
//! ours: a thread-local with a destructor is reached through `LocalKey::try_with`, whose
//! closure made the hit too large for the compiler to inline into its caller's loop.
//!
//! After [`OWN_COPY_AFTER`] hits from one copy, the thread makes its own copy of the header
//! (one allocation per thread per token) and clones that from then on: threads serving the
//! same token then each bump a reference count on their own cache line, instead of all of
//! them bouncing the shared header's count between cores.
//!
//! A thread's line holds an `Arc<Entry>`: it keeps the entry it used last alive after it was
//! replaced, until it next uses the slot or the slot is dropped. A line outlives its thread
//! (thread ids are reused, and the next thread with the id starts from the line, which it
//! only serves while the version matches).
//!
//! A line is aligned to 128 bytes: `ThreadLocal` keeps the lines of consecutive thread ids next
//! to each other, and a hit writes its line (the `RefCell`'s borrow flag), so unpadded lines of
//! two threads could share a cache line (or an adjacent pair, which x86 prefetches together)
//! and bounce it between their cores on every hit. Memory: `ThreadLocal` keeps a bucket per
//! power-of-two range of thread ids that used the slot, so a slot holds 256 bytes (the line and
//! `ThreadLocal`'s flag) per thread id up to the highest id that used it (256 KiB for a
//! thousand threads), plus the own header copies.

use std::cell::{Cell, OnceCell, RefCell};
use std::sync::Arc;

use http::HeaderValue;
use thread_local::ThreadLocal;

use super::entry::Entry;
use super::stats::StripedCounter;

/// Hits from one copy after which the thread serves its own copy of the header.
const OWN_COPY_AFTER: u32 = 64;

/// Marks the start of this thread's teardown, for [`Lines::remember`]: `thread_local` releases
/// the thread's id in a thread-local destructor of its own, after which making a line would
/// allocate a new id and panic (a panic in a thread-local destructor aborts the process). This
/// one is registered after that guard, and thread-local destructors run last-registered first,
/// so it runs before it. (A thread whose first use of the cache comes in its teardown, after
/// the guard that another user of `thread_local` registered has run, is not covered: the same
/// limit as every user of `thread_local`.)
struct Teardown;

impl Drop for Teardown {
    fn drop(&mut self) {
        TORN_DOWN.set(true);
    }
}

thread_local! {
    static TORN_DOWN: Cell<bool> = const { Cell::new(false) };
    static TEARDOWN: Teardown = const { Teardown };
}

/// A slot's per-thread lines.
#[derive(Default)]
pub(super) struct Lines(ThreadLocal<Line>);

/// One thread's copy of the slot's entry, on cache lines of its own (see the module docs).
#[repr(align(128))]
struct Line {
    copy: RefCell<Option<Held>>,
    /// The thread's stripe of the hit counters.
    stripe: usize,
}

struct Held {
    entry: Arc<Entry>,
    /// The wall clock (nanoseconds since the epoch) until which this copy is fresh: see
    /// `Entry::fresh_until_wall`.
    fresh_until: u64,
    /// The wall clock at the last hit (or when the copy was made): a reading below it means
    /// the wall clock was set back, and the copy is not trusted until the shared path has
    /// judged the entry on both clocks again.
    last_wall: Cell<u64>,
    /// Hits served from this copy, counted until the own header is made.
    hits: Cell<u32>,
    /// This thread's own copy of `entry`'s header.
    own: OnceCell<HeaderValue>,
}

/// A copy of `header` (an `Authorization` value, so marked sensitive like it) in storage of its
/// own, already shared so that clones never allocate.
#[cold]
fn own_copy(header: &HeaderValue) -> HeaderValue {
    let Some(own) = crate::http::sensitive_header(header.as_bytes()) else {
        return header.clone();
    };
    drop(own.clone());
    own
}

impl Held {
    /// Counts a hit towards the own header, and makes it at the threshold.
    #[inline]
    fn count(&self) {
        let n = self.hits.get() + 1;
        self.hits.set(n);
        if n >= OWN_COPY_AFTER {
            self.own.get_or_init(|| own_copy(&self.entry.header));
        }
    }
}

impl Lines {
    /// A hit from this thread's copy: the header to serve (the thread's own copy once made),
    /// counted on `hits`, when the copy is still the slot's current entry (`version` is the
    /// slot's published version, read by the caller just now) and still fresh by the wall
    /// clock `wall` reads (nanoseconds since the epoch), which has not gone back since the last
    /// hit. `None` sends the caller to the shared store.
    ///
    /// The clone is the return value itself (no tuple around it), so it is written once into
    /// the caller's slot: moving a header through a nested `Option` cost a store-forwarding
    /// stall.
    #[inline(always)]
    pub(super) fn hit(
        &self,
        version: u64,
        wall: impl FnOnce() -> u64,
        hits: &StripedCounter,
    ) -> Option<HeaderValue> {
        let line = self.0.get()?;
        let copy = line.copy.try_borrow().ok()?;
        let copy = copy.as_ref()?;
        if copy.entry.version != version {
            return None;
        }
        let own = copy.own.get();
        let header = own.unwrap_or(&copy.entry.header).clone();
        // The clock is read after the clone: the clone's result is written to the stack by an
        // out-of-line call (the `Bytes` vtable) and then moved with wider loads than its
        // stores, which stalls until those stores drain; the clock read fills that time.
        // Past the fresh period the clone is dropped again and the caller takes the shared
        // path, which serves the stale token and starts the refresh: only until that refresh
        // publishes a new version. Only hits count towards the thread's own copy, so a stale
        // entry never gets one.
        let wall = wall();
        if wall >= copy.fresh_until || wall < copy.last_wall.get() {
            return None;
        }
        copy.last_wall.set(wall);
        if own.is_none() {
            copy.count();
        }
        hits.incr_at(line.stripe);
        Some(header)
    }

    /// Remembers `entry`, just loaded from the slot's shared store and judged fresh at the
    /// wall-clock reading `wall`, as this thread's copy, fresh until `fresh_until` on the wall
    /// clock. The entry the line held before is dropped.
    pub(super) fn remember(&self, entry: Arc<Entry>, fresh_until: u64, wall: u64) {
        let line = match self.0.get() {
            Some(line) => line,
            // A thread in its teardown makes no line (it is served from the shared store).
            None if TORN_DOWN.get() => return,
            None => {
                let line = self.0.get_or(|| Line {
                    copy: RefCell::new(None),
                    stripe: super::stats::stripe(),
                });
                // Registered after `thread_local`'s own guard (which `get_or` registered if
                // nothing had before), so it is torn down first.
                let _ = TEARDOWN.try_with(|_| ());
                line
            }
        };
        if let Ok(mut copy) = line.copy.try_borrow_mut() {
            // The old entry is dropped with the borrow still held: dropping an entry runs no
            // code that touches these lines.
            *copy = Some(Held {
                entry,
                fresh_until,
                last_wall: Cell::new(wall),
                hits: Cell::new(0),
                own: OnceCell::new(),
            });
        }
    }
}
