//! The one hasher of the crate's internal maps.

use std::hash::{BuildHasher, Hasher};

/// FxHash (rustc's hasher): the keys of the crate's maps (audiences, route hosts) come from the
/// application's own configuration, never from a peer, so a fast non-keyed hash is fine.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct FxBuild;

/// The hasher [`FxBuild`] builds.
pub(crate) struct FxHasher(u64);

impl BuildHasher for FxBuild {
    type Hasher = FxHasher;
    fn build_hasher(&self) -> FxHasher {
        FxHasher(0)
    }
}

impl FxHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }

    /// Adds `bytes` eight at a time: see [`for_each_word`].
    #[inline]
    fn add_bytes(&mut self, bytes: &[u8], mask: u64) {
        for_each_word(bytes, mask, |word| self.add(word));
    }
}

/// Calls `f` with `bytes` eight at a time as little-endian words (the last one padded with
/// zeros), each ORed with `mask`.
#[inline(always)]
fn for_each_word(bytes: &[u8], mask: u64, mut f: impl FnMut(u64)) {
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(c);
        f(u64::from_le_bytes(word) | mask);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut last = [0u8; 8];
        last[..rest.len()].copy_from_slice(rest);
        f(u64::from_le_bytes(last) | mask);
    }
}

/// Bit 5 of every byte: set, it lowercases ASCII letters.
const ASCII_CASE: u64 = 0x2020_2020_2020_2020;

/// The key under which an [`FxBuild`] map keeps `bytes` up to ASCII case (route hosts, which
/// are compared with `eq_ignore_ascii_case`).
///
/// It is the FxHash state over the words of `bytes`, with bit 5 of every byte set, short of its
/// last multiplication: the map's own hasher performs that one when it hashes the key
/// (`write_u64` on a fresh [`FxHasher`] is exactly that step), so the bytes are hashed once in
/// all and the map sees their FxHash. Setting bit 5 lowercases letters; it also maps a few
/// other bytes together (`@` and `` ` ``, for one), which can only make two keys collide, never
/// make two hosts compare equal.
#[inline]
pub(crate) fn key_ignoring_ascii_case(bytes: &[u8]) -> u64 {
    let mut h = FxHasher(0);
    let mut pending: Option<u64> = None;
    for_each_word(bytes, ASCII_CASE, |word| {
        if let Some(previous) = pending.replace(word) {
            h.add(previous);
        }
    });
    h.0.rotate_left(5) ^ pending.unwrap_or(0)
}

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        self.add_bytes(bytes, 0);
    }
    #[inline]
    fn write_u8(&mut self, b: u8) {
        self.add(u64::from(b));
    }
    #[inline]
    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The FxHash of `bytes` with bit 5 of every byte set, in one hasher.
    fn fx_lowercased(bytes: &[u8]) -> u64 {
        let mut h = FxBuild.build_hasher();
        h.add_bytes(bytes, ASCII_CASE);
        h.finish()
    }

    #[test]
    fn a_case_insensitive_key_hashes_to_the_fxhash_of_its_bytes() {
        for host in [
            &b"a"[..],
            b"graph.microsoft.com",
            b"12345678",
            b"123456789",
            b"management.azure.com",
            b"[::1]",
        ] {
            assert_eq!(
                FxBuild.hash_one(key_ignoring_ascii_case(host)),
                fx_lowercased(host),
                "{host:?}"
            );
        }
    }

    #[test]
    fn case_insensitive_keys_ignore_ascii_case_only() {
        let k = key_ignoring_ascii_case;
        assert_eq!(k(b"Graph.Microsoft.COM"), k(b"graph.microsoft.com"));
        assert_eq!(k(b"XN--BCHER-KVA.EXAMPLE"), k(b"xn--bcher-kva.example"));
        assert_ne!(k(b"graph.microsoft.com"), k(b"graph.microsoft.co"));
        assert_ne!(k(b"orders.example.com"), k(b"orders.example.org"));
        assert_ne!(k(b"api1.example.com"), k(b"api2.example.com"));
    }
}
