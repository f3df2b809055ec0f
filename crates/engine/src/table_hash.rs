//! The hasher of the engine's lookup tables (connections by four-tuple,
//! listeners and UDP sockets by port).
//!
//! The standard library's SipHash-1-3 was about 4 % of the instructions of
//! a bulk transfer: two 12-byte addresses hashed for every segment. The keys
//! are chosen by whoever sends us packets, so the hash must stay keyed
//! (an attacker who could predict it would put every connection in one
//! bucket). This is the folded multiply of foldhash and wyhash (a 64×64 →
//! 128-bit product, its halves xored), keyed with two words drawn from the
//! engine's secret: a few instructions per word, and without the key the
//! bucket of a four-tuple is not predictable. It is not a cryptographic
//! MAC; SipHash still keys what must be unguessable (ISNs, SYN cookies).

use std::hash::{BuildHasher, Hasher};

/// Builds [`TableHasher`]s with the engine's keys.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TableHash {
    k0: u64,
    k1: u64,
}

impl TableHash {
    /// A builder keyed with `k0`, `k1` (random, per engine).
    pub(crate) fn new(k0: u64, k1: u64) -> TableHash {
        // An odd multiplier never maps distinct words to one product.
        TableHash { k0, k1: k1 | 1 }
    }
}

impl BuildHasher for TableHash {
    type Hasher = TableHasher;

    fn build_hasher(&self) -> TableHasher {
        TableHasher {
            acc: self.k0,
            k1: self.k1,
        }
    }
}

/// The 128-bit product of `a` and `b`, folded to 64 bits.
#[inline]
fn folded_multiply(a: u64, b: u64) -> u64 {
    let full = u128::from(a) * u128::from(b);
    (full as u64) ^ ((full >> 64) as u64)
}

/// A keyed hasher for short keys (addresses, ports).
#[derive(Debug, Clone)]
pub(crate) struct TableHasher {
    acc: u64,
    k1: u64,
}

impl TableHasher {
    #[inline]
    fn mix(&mut self, word: u64) {
        // Rotating keeps the high bits of the last product in play.
        self.acc = folded_multiply(self.acc ^ word, self.k1).rotate_left(23);
    }
}

impl Hasher for TableHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.mix(u64::from_le_bytes([
                c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7],
            ]));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut last = [0u8; 8];
            last[..rest.len()].copy_from_slice(rest);
            // The length keeps "ab" and "ab\0" apart.
            self.mix(u64::from_le_bytes(last) ^ ((rest.len() as u64) << 59));
        }
    }

    #[inline]
    fn write_u8(&mut self, n: u8) {
        self.mix(u64::from(n));
    }

    #[inline]
    fn write_u16(&mut self, n: u16) {
        self.mix(u64::from(n));
    }

    #[inline]
    fn write_u32(&mut self, n: u32) {
        self.mix(u64::from(n));
    }

    #[inline]
    fn write_u64(&mut self, n: u64) {
        self.mix(n);
    }

    #[inline]
    fn write_usize(&mut self, n: usize) {
        self.mix(n as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        folded_multiply(self.acc, self.k1 ^ 0x9e37_79b9_7f4a_7c15)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::net::{Ipv4Addr, SocketAddrV4};

    use super::*;

    fn tuple(port: u16) -> (SocketAddrV4, SocketAddrV4) {
        (
            SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 1), 80),
            SocketAddrV4::new(Ipv4Addr::new(198, 51, 100, 7), port),
        )
    }

    #[test]
    fn tuples_spread_over_the_buckets_and_keys_change_them() {
        // 65 536 four-tuples differing only in the peer's port: as a table of
        // 4 096 buckets indexes them (the low bits), none holds more than a
        // few dozen (16 on average).
        let a = TableHash::new(0x0123_4567_89ab_cdef, 0xfedc_ba98_7654_3210);
        let mut buckets = vec![0u32; 4096];
        for port in 0..=u16::MAX {
            buckets[(a.hash_one(tuple(port)) & 4095) as usize] += 1;
        }
        let worst = *buckets.iter().max().unwrap();
        assert!(worst < 48, "a bucket holds {worst}");
        // The top bits, which hashbrown's control bytes use, differ too.
        let tops: HashSet<u64> = (0..1024).map(|p| a.hash_one(tuple(p)) >> 57).collect();
        assert_eq!(tops.len(), 128);
        // Another key puts the same tuples elsewhere.
        let b = TableHash::new(0x1111, 0x2222);
        let same = (0..1024)
            .filter(|&p| a.hash_one(tuple(p)) == b.hash_one(tuple(p)))
            .count();
        assert_eq!(same, 0);
    }
}
