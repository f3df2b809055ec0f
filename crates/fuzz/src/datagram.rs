//! Target `wire`: one datagram from the wire, checked against an
//! independent reading of it.
//!
//! The engine's parsers (smoltcp's wire formats, the fragment parser, its
//! own checks of addresses and lengths) decide where a datagram goes: which
//! drop counter it lands in, or which protocol takes it. This target reads
//! the same bytes with the fuzz crate's own parser and requires the engine
//! to agree: a datagram malformed at the IP layer is counted as malformed
//! and goes no further; one the engine hands up must be well-formed by our
//! reading too; what a UDP socket receives is exactly the datagram's
//! payload as its length field bounds it; an echo reply carries the
//! request's identifier, sequence number and data.
//!
//! Fix-up flags in the first byte let the fuzzer get past the outer checks
//! (version, lengths, addresses, checksums) and reach each protocol's.

use std::net::{Ipv4Addr, SocketAddrV4};

use synack_engine::{Engine, Instant, Stats};

use crate::wire::{ICMP, TCP, UDP, checksum, pseudo};
use crate::{LOCAL, PEER, PORT, Reader, drain, engine};

/// The UDP port the engine under test holds.
pub const UDP_PORT: u16 = 5000;

/// Where our own reading says a datagram must go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// Another IP version.
    NotIpv4,
    /// The IPv4 header or lengths do not hold.
    Malformed,
    /// The IPv4 header checksum is wrong.
    BadChecksum,
    /// An impossible source, or a loopback destination (RFC 1122 §3.2.1.3).
    Martian,
    /// Not addressed to this host.
    NotForUs,
    /// A fragment, for the reassembler.
    Fragment,
    /// Handed to the protocol layer.
    Up,
}

/// Our reading of the IP layer, for a host holding only `LOCAL` on a /24.
fn classify(d: &[u8]) -> Verdict {
    if d.first().is_some_and(|b| b >> 4 != 4) {
        return Verdict::NotIpv4;
    }
    if d.len() < 20 {
        return Verdict::Malformed;
    }
    let ihl = usize::from(d[0] & 0xf) * 4;
    let total = usize::from(u16::from_be_bytes([d[2], d[3]]));
    if ihl < 20 || ihl > d.len() || total < ihl || total > d.len() {
        return Verdict::Malformed;
    }
    if !cfg!(fuzzing) && checksum(&[&d[..ihl]]) != 0 {
        return Verdict::BadChecksum;
    }
    let src = Ipv4Addr::new(d[12], d[13], d[14], d[15]);
    let dst = Ipv4Addr::new(d[16], d[17], d[18], d[19]);
    if dst.octets()[0] == 127
        || src == Ipv4Addr::BROADCAST
        || (224..=239).contains(&src.octets()[0])
        || src.octets()[0] == 0 && src.octets()[1..] == [0, 0, 0]
        || src.octets()[0] == 127
        || src.octets()[0] >= 240
        || src == LOCAL
    {
        return Verdict::Martian;
    }
    let subnet_broadcast = Ipv4Addr::new(192, 0, 2, 255);
    let broadcast = (dst == subnet_broadcast || dst == Ipv4Addr::BROADCAST) && d[9] == UDP;
    if dst != LOCAL && !broadcast {
        return Verdict::NotForUs;
    }
    let more = d[6] & 0x20 != 0;
    let offset = u16::from_be_bytes([d[6] & 0x1f, d[7]]);
    if more || offset != 0 {
        return Verdict::Fragment;
    }
    Verdict::Up
}

/// The counters a datagram can land in, as one tuple.
fn drops(s: &Stats) -> [u64; 6] {
    [
        s.rx_not_ipv4,
        s.rx_malformed,
        s.rx_bad_checksum,
        s.rx_martian,
        s.rx_not_for_us,
        s.frag_received,
    ]
}

/// Applies the fix-ups `flags` asks for.
fn fix(flags: u8, d: &mut [u8]) {
    if d.len() < 20 {
        return;
    }
    if flags & 1 != 0 {
        // Version 4, and a header length that fits.
        let ihl = (d[0] & 0xf).clamp(5, (d.len() / 4).min(15) as u8);
        d[0] = 0x40 | ihl;
    }
    if flags & 2 != 0 {
        d[12..16].copy_from_slice(&PEER.octets());
        d[16..20].copy_from_slice(&LOCAL.octets());
    }
    if flags & 4 != 0 {
        let total = d.len().min(65535) as u16;
        d[2..4].copy_from_slice(&total.to_be_bytes());
    }
    if flags & 8 != 0 {
        // Not a fragment.
        d[6] &= 0x40;
        d[7] = 0;
    }
    let ihl = usize::from(d[0] & 0xf) * 4;
    let total = usize::from(u16::from_be_bytes([d[2], d[3]]));
    if ihl < 20 || ihl > total || total > d.len() {
        return;
    }
    let (src, dst) = (
        Ipv4Addr::new(d[12], d[13], d[14], d[15]),
        Ipv4Addr::new(d[16], d[17], d[18], d[19]),
    );
    let proto = d[9];
    let body = &mut d[ihl..total];
    if flags & 16 != 0 {
        match proto {
            TCP if body.len() >= 20 => {
                body[16..18].fill(0);
                let sum = checksum(&[&pseudo(src, dst, TCP, body.len()), body]);
                body[16..18].copy_from_slice(&sum.to_be_bytes());
            }
            UDP if body.len() >= 8 => {
                body[6..8].fill(0);
                let ulen = usize::from(u16::from_be_bytes([body[4], body[5]]));
                if (8..=body.len()).contains(&ulen) {
                    let u = &mut body[..ulen];
                    let sum = checksum(&[&pseudo(src, dst, UDP, ulen), u]);
                    u[6..8].copy_from_slice(&sum.to_be_bytes());
                }
            }
            ICMP if body.len() >= 4 => {
                body[2..4].fill(0);
                let sum = checksum(&[body]);
                body[2..4].copy_from_slice(&sum.to_be_bytes());
            }
            _ => {}
        }
    }
    if flags & 32 != 0 {
        d[10..12].fill(0);
        let sum = checksum(&[&d[..ihl]]);
        d[10..12].copy_from_slice(&sum.to_be_bytes());
    }
}

fn host() -> (Engine, synack_engine::SocketHandle) {
    let mut e = engine(LOCAL, crate::config(), 7);
    e.listen(SocketAddrV4::new(LOCAL, PORT), crate::BACKLOG)
        .expect("listen");
    let u = e
        .udp_bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, UDP_PORT))
        .expect("bind");
    (e, u)
}

/// Target `wire`: a fix-up byte, then one datagram.
pub fn wire(data: &[u8]) {
    let mut r = Reader::new(data);
    let flags = r.u8();
    let mut d = r.bytes(data.len()).to_vec();
    fix(flags, &mut d);
    let (mut e, udp) = host();
    let now = Instant::from_millis(1_000);
    let before = e.stats();
    e.handle_packet(now, &d);
    let after = e.stats();
    let mut out = Vec::new();
    drain(&mut e, now, &mut out);
    let verdict = classify(&d);
    let delta: Vec<u64> = drops(&after)
        .iter()
        .zip(drops(&before))
        .map(|(a, b)| a - b)
        .collect();
    let expect_one = |i: usize| {
        let mut want = vec![0; 6];
        want[i] = 1;
        assert_eq!(
            delta, want,
            "our reading says {verdict:?}; the engine counted otherwise: {d:02x?}"
        );
    };
    match verdict {
        Verdict::NotIpv4 => expect_one(0),
        Verdict::Malformed => expect_one(1),
        Verdict::BadChecksum => expect_one(2),
        Verdict::Martian => expect_one(3),
        Verdict::NotForUs => expect_one(4),
        Verdict::Fragment => {
            // A fragment of no complete datagram: held or dropped, never
            // handed up.
            assert_eq!(&delta[..5], &[0; 5], "{d:02x?}");
            assert_eq!(after.udp_rx, before.udp_rx, "a lone fragment was delivered");
        }
        Verdict::Up => {
            // Malformed and bad-checksum counts may come from the protocol
            // layer: `up` checks those.
            for i in [0, 3, 4, 5] {
                assert_eq!(delta[i], 0, "counter {i} moved: {d:02x?}");
            }
            let ihl = usize::from(d[0] & 0xf) * 4;
            let total = usize::from(u16::from_be_bytes([d[2], d[3]]));
            up(&d, &d[ihl..total], &before, &after, &mut e, udp, &out);
        }
    }
    let fragmented = out.len() > 1
        && out
            .iter()
            .all(|f| f[6] & 0x20 != 0 || f[7] != 0 || f[6] & 0x1f != 0);
    assert!(
        out.len() <= 1 || fragmented,
        "one datagram in, {} out",
        out.len()
    );
}

/// The protocol layer: TCP, UDP and ICMP datagrams the engine took.
fn up(
    d: &[u8],
    body: &[u8],
    before: &Stats,
    after: &Stats,
    e: &mut Engine,
    udp: synack_engine::SocketHandle,
    out: &[Vec<u8>],
) {
    let src = Ipv4Addr::new(d[12], d[13], d[14], d[15]);
    let dst = Ipv4Addr::new(d[16], d[17], d[18], d[19]);
    let malformed = after.rx_malformed - before.rx_malformed;
    let bad_sum = after.rx_bad_checksum - before.rx_bad_checksum;
    match d[9] {
        TCP => {
            let off = body.get(12).map_or(0, |b| usize::from(b >> 4) * 4);
            if body.len() < 20 || off < 20 || off > body.len() {
                assert_eq!(malformed, 1, "a TCP header cut short was taken: {d:02x?}");
            } else if !cfg!(fuzzing) && checksum(&[&pseudo(src, dst, TCP, body.len()), body]) != 0 {
                assert_eq!(bad_sum, 1, "a bad TCP checksum was taken: {d:02x?}");
            } else {
                assert_eq!(bad_sum, 0, "a good TCP checksum was refused: {d:02x?}");
            }
        }
        UDP => {
            let ulen = body
                .get(4..6)
                .map_or(0, |b| usize::from(u16::from_be_bytes([b[0], b[1]])));
            let delivered = after.udp_rx - before.udp_rx;
            if body.len() < 8 || ulen < 8 || ulen > body.len() {
                assert_eq!(malformed, 1, "a UDP datagram with a bad length was taken");
                return;
            }
            let sum = u16::from_be_bytes([body[6], body[7]]);
            let good = cfg!(fuzzing)
                || sum == 0
                || checksum(&[&pseudo(src, dst, UDP, ulen), &body[..ulen]]) == 0;
            if !good {
                assert_eq!(bad_sum, 1, "a bad UDP checksum was taken");
                assert_eq!(delivered, 0);
                return;
            }
            let port = u16::from_be_bytes([body[2], body[3]]);
            if port != UDP_PORT {
                assert_eq!(
                    delivered, 0,
                    "delivered to port {port}, which no socket holds"
                );
                return;
            }
            assert_eq!(
                delivered, 1,
                "a good datagram for the bound port was not queued"
            );
            let mut buf = vec![0u8; 65_536];
            let (n, from) = e.udp_recv(udp, &mut buf, false).expect("queued");
            assert_eq!(&buf[..n], &body[8..ulen], "the payload differs");
            assert_eq!(
                from,
                SocketAddrV4::new(src, u16::from_be_bytes([body[0], body[1]]))
            );
        }
        ICMP => {
            let replies = after.icmp_echo_replies - before.icmp_echo_replies;
            if replies == 0 {
                return;
            }
            assert!(
                body.len() >= 8 && body[0] == 8,
                "a reply to no echo request"
            );
            // The reply, put back together if the engine had to fragment it
            // (a request near the MTU with IP options has a larger reply).
            let mut pieces: Vec<(usize, &[u8])> = out
                .iter()
                .map(|f| {
                    let ihl = usize::from(f[0] & 0xf) * 4;
                    assert_eq!(&f[16..20], &d[12..16], "the reply goes back to the sender");
                    let at = usize::from(u16::from_be_bytes([f[6] & 0x1f, f[7]])) * 8;
                    (at, &f[ihl..])
                })
                .collect();
            pieces.sort();
            let mut m = Vec::new();
            for (at, p) in pieces {
                assert_eq!(at, m.len(), "the reply's fragments leave a hole or overlap");
                m.extend_from_slice(p);
            }
            assert_eq!(m[0], 0, "the reply's type");
            assert_eq!(&m[4..], &body[4..], "identifier, sequence or data differ");
        }
        _ => {
            assert_eq!(
                malformed + bad_sum,
                0,
                "protocol {} refused as malformed",
                d[9]
            );
        }
    }
}
