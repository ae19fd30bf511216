//! Tokens already verified, remembered by their exact bytes until they expire.
//!
//! A caller reuses its token until it nears expiry (managed-identity tokens live about 24 h),
//! so most requests carry a token already seen: this cache turns them into a lookup and a
//! string comparison instead of an RSA verification.
//!
//! Only tokens that passed every check of the validator enter, so an attacker cannot fill it.
//! The bucket is chosen by a keyed hash of the token's last 32 bytes (its signature's tail,
//! which is random), and a hit compares the **whole** token, never only the hash. The size
//! is bounded: a full shard first drops expired entries, then an arbitrary one.

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::claims::Claims;

const SHARDS: usize = 16;
const HASHED_TAIL: usize = 32;

struct Entry {
    token: Box<str>,
    claims: Claims,
    /// `exp` + clock skew: from this second on the token is expired.
    expired_from: i64,
    /// The key that verified it.
    kid: Box<str>,
}

/// What a lookup found.
pub(crate) enum Lookup {
    /// Verified before and not expired.
    Hit(Claims),
    /// Verified before, now expired (and forgotten).
    Expired(i64),
    /// Not seen (or forgotten).
    Miss,
}

/// The map's keys are already keyed hashes of the tokens: used as they are, not hashed again.
#[derive(Default)]
struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `u64` keys are hashed here; any other input still gets a usable hash.
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type Shard = HashMap<u64, Entry, BuildHasherDefault<Prehashed>>;

pub(crate) struct VerifiedCache {
    shards: Box<[Mutex<Shard>]>,
    per_shard: usize,
    hasher: RandomState,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl VerifiedCache {
    /// A cache of at most `capacity` tokens (0: none are remembered).
    pub(crate) fn new(capacity: usize) -> Self {
        let shards = if capacity == 0 {
            0
        } else {
            SHARDS.min(capacity)
        };
        VerifiedCache {
            shards: (0..shards).map(|_| Mutex::default()).collect(),
            per_shard: capacity.div_ceil(shards.max(1)),
            hasher: RandomState::new(),
        }
    }

    fn locate(&self, token: &str) -> Option<(u64, &Mutex<Shard>)> {
        if self.shards.is_empty() {
            return None;
        }
        let tail = &token.as_bytes()[token.len().saturating_sub(HASHED_TAIL)..];
        let hash = self.hasher.hash_one(tail);
        let shard = (hash >> 32) as usize % self.shards.len();
        Some((hash, &self.shards[shard]))
    }

    /// Looks `token` up at `now` (Unix seconds). Allocates nothing.
    pub(crate) fn get(&self, token: &str, now: i64) -> Lookup {
        let Some((hash, shard)) = self.locate(token) else {
            return Lookup::Miss;
        };
        let mut map = lock(shard);
        let Some(entry) = map.get(&hash) else {
            return Lookup::Miss;
        };
        if *entry.token != *token {
            return Lookup::Miss;
        }
        if now >= entry.expired_from {
            let exp = entry.expired_from;
            map.remove(&hash);
            return Lookup::Expired(exp);
        }
        Lookup::Hit(entry.claims.clone())
    }

    /// Remembers a verified token until `expired_from` (Unix seconds).
    pub(crate) fn insert(
        &self,
        token: &str,
        claims: &Claims,
        expired_from: i64,
        kid: &str,
        now: i64,
    ) {
        let Some((hash, shard)) = self.locate(token) else {
            return;
        };
        let mut map = lock(shard);
        if map.len() >= self.per_shard && !map.contains_key(&hash) {
            map.retain(|_, e| e.expired_from > now);
            if map.len() >= self.per_shard
                && let Some(victim) = map.keys().next().copied()
            {
                map.remove(&victim);
            }
        }
        map.insert(
            hash,
            Entry {
                token: token.into(),
                claims: claims.clone(),
                expired_from,
                kid: kid.into(),
            },
        );
    }

    /// Forgets the tokens verified by a key for which `dropped` holds.
    pub(crate) fn forget_keys(&self, dropped: impl Fn(&str) -> bool) {
        for shard in &self.shards {
            lock(shard).retain(|_, e| !dropped(&e.kid));
        }
    }

    /// Forgets every token.
    pub(crate) fn clear(&self) {
        for shard in &self.shards {
            lock(shard).clear();
        }
    }

    /// How many tokens are remembered.
    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|s| lock(s).len()).sum()
    }
}
