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

    /// Adds `bytes` eight at a time (little-endian, the last word padded with zeros), each
    /// word ORed with `mask` first.
    #[inline]
    fn add_bytes(&mut self, bytes: &[u8], mask: u64) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(c);
            self.add(u64::from_le_bytes(word) | mask);
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut last = [0u8; 8];
            last[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(last) | mask);
        }
    }
}

/// The FxHash of `bytes` ignoring ASCII case, for keys compared with `eq_ignore_ascii_case`
/// (route hosts). Bit 5 of every byte is set before hashing: that lowercases letters, and also
/// maps a few other bytes together (`@` and `` ` ``, for one), which can only make two keys
/// collide, never compare equal.
#[inline]
pub(crate) fn hash_ignoring_ascii_case(bytes: &[u8]) -> u64 {
    let mut h = FxHasher(0);
    h.add(bytes.len() as u64);
    h.add_bytes(bytes, 0x2020_2020_2020_2020);
    h.finish()
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

    #[test]
    fn the_case_insensitive_hash_ignores_ascii_case_only() {
        let h = hash_ignoring_ascii_case;
        assert_eq!(h(b"Graph.Microsoft.COM"), h(b"graph.microsoft.com"));
        assert_eq!(h(b"XN--BCHER-KVA.EXAMPLE"), h(b"xn--bcher-kva.example"));
        assert_ne!(h(b"graph.microsoft.com"), h(b"graph.microsoft.co"));
        assert_ne!(h(b"orders.example.com"), h(b"orders.example.org"));
        // Zero padding of the last word is not confused with a longer key.
        assert_ne!(h(b"a"), h(b"a\0"));
    }
}
