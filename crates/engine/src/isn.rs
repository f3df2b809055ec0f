//! Initial sequence numbers per RFC 6528, and the engine's seeded randomness.
//!
//! RFC 6528 §3: `ISN = M + F(localip, localport, remoteip, remoteport, secretkey)`
//! where `M` is a timer that ticks every 4 microseconds and `F` a keyed hash.
//! `F` here is SipHash-2-4 keyed with a 128-bit secret chosen per stack.

use std::net::{Ipv4Addr, SocketAddrV4};

use crate::Instant;
use crate::seq::Seq;

/// SipHash-2-4 of a message of whole 64-bit words.
fn siphash24(k0: u64, k1: u64, words: &[u64]) -> u64 {
    let mut v0 = k0 ^ 0x736f6d6570736575;
    let mut v1 = k1 ^ 0x646f72616e646f6d;
    let mut v2 = k0 ^ 0x6c7967656e657261;
    let mut v3 = k1 ^ 0x7465646279746573;
    let round = |v0: &mut u64, v1: &mut u64, v2: &mut u64, v3: &mut u64| {
        *v0 = v0.wrapping_add(*v1);
        *v1 = v1.rotate_left(13) ^ *v0;
        *v0 = v0.rotate_left(32);
        *v2 = v2.wrapping_add(*v3);
        *v3 = v3.rotate_left(16) ^ *v2;
        *v0 = v0.wrapping_add(*v3);
        *v3 = v3.rotate_left(21) ^ *v0;
        *v2 = v2.wrapping_add(*v1);
        *v1 = v1.rotate_left(17) ^ *v2;
        *v2 = v2.rotate_left(32);
    };
    for &m in words {
        v3 ^= m;
        round(&mut v0, &mut v1, &mut v2, &mut v3);
        round(&mut v0, &mut v1, &mut v2, &mut v3);
        v0 ^= m;
    }
    let b = (words.len() as u64 * 8) << 56;
    v3 ^= b;
    round(&mut v0, &mut v1, &mut v2, &mut v3);
    round(&mut v0, &mut v1, &mut v2, &mut v3);
    v0 ^= b;
    v2 ^= 0xff;
    for _ in 0..4 {
        round(&mut v0, &mut v1, &mut v2, &mut v3);
    }
    v0 ^ v1 ^ v2 ^ v3
}

/// The per-stack secret and generators built on it.
#[derive(Debug, Clone)]
pub(crate) struct Secret {
    k0: u64,
    k1: u64,
    rng: u64,
}

impl Secret {
    pub(crate) fn new(seed: [u64; 2]) -> Secret {
        Secret {
            k0: seed[0],
            k1: seed[1],
            rng: siphash24(seed[0], seed[1], &[0x5eed]) | 1,
        }
    }

    /// The RFC 6528 initial sequence number for a connection.
    pub(crate) fn isn(&self, now: Instant, local: SocketAddrV4, remote: SocketAddrV4) -> Seq {
        let tuple = [
            (u64::from(local.ip().to_bits()) << 32) | u64::from(remote.ip().to_bits()),
            (u64::from(local.port()) << 16) | u64::from(remote.port()),
        ];
        let f = siphash24(self.k0, self.k1, &tuple) as u32;
        // M: a timer ticking every 4 µs.
        let m = (now.as_nanos() / 4_000) as u32;
        Seq(m.wrapping_add(f))
    }

    /// The per-connection offset of the timestamp clock (RFC 7323 §5.4, §7.1):
    /// a keyed hash of the 4-tuple, so TSval reveals no uptime and differs per
    /// connection (as Linux's `tsoffset`).
    pub(crate) fn ts_offset(&self, local: SocketAddrV4, remote: SocketAddrV4) -> u32 {
        let tuple = [
            (u64::from(local.ip().to_bits()) << 32) | u64::from(remote.ip().to_bits()),
            (u64::from(local.port()) << 16) | u64::from(remote.port()),
            0x7473, // "ts": a different message from the ISN's.
        ];
        siphash24(self.k0, self.k1, &tuple) as u32
    }

    /// RFC 6056 §3.3.4 (Algorithm 4, "double-hash port selection", as
    /// Linux's `__inet_hash_connect`): where the search for an ephemeral
    /// port towards `remote` from `local` starts (F), and which perturbation
    /// counter it uses (G). Keyed, so a peer cannot predict our ports.
    pub(crate) fn port_offsets(&self, local: Ipv4Addr, remote: SocketAddrV4) -> (u32, usize) {
        let words = [
            (u64::from(local.to_bits()) << 32) | u64::from(remote.ip().to_bits()),
            u64::from(remote.port()) | 0x7074_0000, // "pt"
        ];
        let f = siphash24(self.k0, self.k1, &words);
        let g = siphash24(self.k1, self.k0, &words);
        (f as u32, g as usize)
    }

    /// The keyed hash of a SYN cookie (tcp/syncookie.rs): the 4-tuple, the
    /// minute counter and which of the two hashes (`c`).
    pub(crate) fn cookie_hash(
        &self,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        count: u32,
        c: u32,
    ) -> u32 {
        let tuple = [
            (u64::from(local.ip().to_bits()) << 32) | u64::from(remote.ip().to_bits()),
            (u64::from(local.port()) << 16) | u64::from(remote.port()),
            0x636b_0000_0000_0000 | (u64::from(c) << 32) | u64::from(count), // "ck"
        ];
        siphash24(self.k0, self.k1, &tuple) as u32
    }

    /// A pseudo-random number from the seeded generator (xorshift64*).
    pub(crate) fn next_u64(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn siphash_matches_reference_vector() {
        // Reference: SipHash-2-4 with key 00..0f over the 8-byte message 00..07.
        let k0 = u64::from_le_bytes([0, 1, 2, 3, 4, 5, 6, 7]);
        let k1 = u64::from_le_bytes([8, 9, 10, 11, 12, 13, 14, 15]);
        let m = u64::from_le_bytes([0, 1, 2, 3, 4, 5, 6, 7]);
        assert_eq!(siphash24(k0, k1, &[m]), 0x93f5f5799a932462);
    }

    #[test]
    fn isn_depends_on_tuple_secret_and_clock() {
        let s = Secret::new([1, 2]);
        let a = SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 1), 1000);
        let b = SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 2), 80);
        let c = SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 2), 81);
        let t = Instant::from_millis(1);
        assert_ne!(s.isn(t, a, b), s.isn(t, a, c));
        assert_ne!(s.isn(t, a, b), Secret::new([3, 4]).isn(t, a, b));
        // M advances one per 4 µs.
        assert_eq!(
            s.isn(t + std::time::Duration::from_micros(8), a, b) - s.isn(t, a, b),
            2
        );
    }
}
