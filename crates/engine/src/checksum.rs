//! The Internet checksum (RFC 1071) of TCP segments and IPv4 headers, eight
//! bytes at a time.
//!
//! RFC 1071 §2 gives the two properties this uses: the one's-complement sum
//! is independent of byte order (sum the words in the machine's order, swap
//! the folded result once, §2(B)), and it may be computed in wider words
//! with the carries folded back at the end (§2(C), "parallel summation").
//! smoltcp's `checksum::data` adds one 16-bit word per step; this adds a
//! 64-bit word per step, with the end-around carry, which takes a quarter
//! of the instructions on a full-size segment (the segment is summed once
//! on the way out and once on the way in when checksums are not offloaded).

use std::net::Ipv4Addr;

/// The one's-complement sum of `data` as 16-bit words (a last odd byte
/// padded with zero, RFC 9293 §3.1), added to `acc`, in the machine's byte
/// order and not yet folded.
fn add(acc: u64, data: &[u8]) -> u64 {
    // Eight-byte words into a 128-bit accumulator: an add and an add-with-
    // carry each, no carry to fold per step; 2^64 words would be needed to
    // overflow it.
    let word = |c: &[u8]| u64::from_ne_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
    let mut wide = u128::from(acc);
    let mut blocks = data.chunks_exact(32);
    for b in &mut blocks {
        wide += u128::from(word(&b[..8]))
            + u128::from(word(&b[8..16]))
            + u128::from(word(&b[16..24]))
            + u128::from(word(&b[24..]));
    }
    let mut chunks = blocks.remainder().chunks_exact(8);
    for c in &mut chunks {
        wide += u128::from(word(c));
    }
    // Fold the 128 bits to 64 with the end-around carry.
    let (sum, carry) = (wide as u64).overflowing_add((wide >> 64) as u64);
    let mut acc = sum + u64::from(carry);
    let mut rest = chunks.remainder();
    if rest.len() >= 4 {
        let word = u32::from_ne_bytes([rest[0], rest[1], rest[2], rest[3]]);
        let (sum, carry) = acc.overflowing_add(u64::from(word));
        acc = sum + u64::from(carry);
        rest = &rest[4..];
    }
    if rest.len() >= 2 {
        let word = u16::from_ne_bytes([rest[0], rest[1]]);
        let (sum, carry) = acc.overflowing_add(u64::from(word));
        acc = sum + u64::from(carry);
        rest = &rest[2..];
    }
    if let [last] = rest {
        // The high byte of a big-endian word: [last, 0] in the machine's order.
        let word = u16::from_ne_bytes([*last, 0]);
        let (sum, carry) = acc.overflowing_add(u64::from(word));
        acc = sum + u64::from(carry);
    }
    acc
}

/// Folds a machine-order sum to the 16-bit one's-complement sum, as a
/// big-endian number.
fn fold(acc: u64) -> u16 {
    let mut s = (acc & 0xffff_ffff) + (acc >> 32);
    s = (s & 0xffff_ffff) + (s >> 32);
    let mut s = (s & 0xffff) + (s >> 16);
    s = (s & 0xffff) + (s >> 16);
    s = (s & 0xffff) + (s >> 16);
    u16::from_be(s as u16)
}

/// The sum of the TCP pseudo-header (RFC 9293 §3.1): source, destination,
/// zero, protocol 6, TCP length.
fn pseudo_header(src: Ipv4Addr, dst: Ipv4Addr, len: usize) -> u64 {
    let mut p = [0u8; 12];
    p[..4].copy_from_slice(&src.octets());
    p[4..8].copy_from_slice(&dst.octets());
    p[9] = 6;
    p[10..12].copy_from_slice(&(len as u16).to_be_bytes());
    add(0, &p)
}

/// Whether the checksum of a TCP `segment` (header and text) from `src` to
/// `dst` is right: the sum over pseudo-header and segment is all ones.
/// Always, in a fuzzing build (as smoltcp's checks), so the fuzzers' inputs
/// reach what lies past the checksum.
pub(crate) fn tcp_ok(src: Ipv4Addr, dst: Ipv4Addr, segment: &[u8]) -> bool {
    cfg!(fuzzing) || fold(add(pseudo_header(src, dst, segment.len()), segment)) == 0xffff
}

/// Fills in the checksum of a TCP `segment` (at least a 20-byte header).
pub(crate) fn tcp_fill(src: Ipv4Addr, dst: Ipv4Addr, segment: &mut [u8]) {
    segment[16] = 0;
    segment[17] = 0;
    let sum = !fold(add(pseudo_header(src, dst, segment.len()), segment));
    segment[16..18].copy_from_slice(&sum.to_be_bytes());
}

/// Whether an IPv4 `header` (its whole length, options too) has a right
/// checksum (RFC 791 §3.1). Always, in a fuzzing build, as [`tcp_ok`].
pub(crate) fn ipv4_ok(header: &[u8]) -> bool {
    cfg!(fuzzing) || fold(add(0, header)) == 0xffff
}

/// The checksum to put in an IPv4 `header` whose checksum field is zero.
pub(crate) fn ipv4_sum(header: &[u8]) -> u16 {
    !fold(add(0, header))
}

/// Fills in the checksum of an IPv4 `header`.
pub(crate) fn ipv4_fill(header: &mut [u8]) {
    header[10] = 0;
    header[11] = 0;
    let sum = ipv4_sum(header);
    header[10..12].copy_from_slice(&sum.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use smoltcp::wire::{IpAddress, TcpPacket};

    use super::*;

    const A: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
    const B: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);

    #[test]
    fn rfc_1071_example() {
        // RFC 1071 §3: the bytes 00 01 f2 03 f4 f5 f6 f7 sum to ddf2.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(add(0, &data)), 0xddf2);
        // Every length from 0 to 9 bytes, against the word-by-word sum.
        for n in 0..=data.len() {
            let mut slow = 0u32;
            for w in data[..n].chunks(2) {
                slow += u32::from(w[0]) << 8 | w.get(1).copied().map_or(0, u32::from);
            }
            while slow > 0xffff {
                slow = (slow & 0xffff) + (slow >> 16);
            }
            assert_eq!(u32::from(fold(add(0, &data[..n]))), slow, "{n} bytes");
        }
    }

    #[test]
    fn ipv4_headers_agree_with_smoltcp() {
        use smoltcp::wire::Ipv4Packet;
        // A 20-byte header and one with 8 bytes of options.
        for len in [20usize, 28] {
            let mut h: Vec<u8> = (0..len as u8).map(|i| i.wrapping_mul(37)).collect();
            h[0] = 0x40 | (len / 4) as u8;
            ipv4_fill(&mut h);
            assert!(ipv4_ok(&h));
            assert!(Ipv4Packet::new_unchecked(&h[..]).verify_checksum());
            h[3] ^= 1;
            assert!(!ipv4_ok(&h));
        }
    }

    proptest! {
        /// Our checksum is smoltcp's, for any segment of any length
        /// (odd ones too), and it verifies what either filled in.
        #[test]
        fn agrees_with_smoltcp(mut seg in proptest::collection::vec(any::<u8>(), 20..1600)) {
            tcp_fill(A, B, &mut seg);
            let ours = [seg[16], seg[17]];
            prop_assert!(tcp_ok(A, B, &seg));
            let mut packet = TcpPacket::new_unchecked(&mut seg[..]);
            prop_assert!(packet.verify_checksum(&IpAddress::Ipv4(A), &IpAddress::Ipv4(B)));
            packet.fill_checksum(&IpAddress::Ipv4(A), &IpAddress::Ipv4(B));
            prop_assert_eq!([seg[16], seg[17]], ours);
            // One flipped bit is caught.
            let i = seg.len() / 2;
            seg[i] ^= 0x10;
            prop_assert!(!tcp_ok(A, B, &seg));
        }
    }
}
