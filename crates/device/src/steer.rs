//! Flow steering for multi-queue devices: which queue a packet belongs to.
//!
//! A multi-queue NIC spreads received packets over its queues by a hash of
//! each packet's flow (receive-side scaling), so that one core handles all
//! of a connection's packets. [`MemoryLink::multi_queue`](crate::MemoryLink::multi_queue)
//! does the same with [`queue_of_packet`], and a sharded host that opens
//! connections picks local ports with [`queue_of`] so that the replies come
//! back to the queue that sent the request.
//!
//! The hash is symmetric: swapping source and destination (addresses and
//! ports together) gives the same queue, so with as many queues on both
//! sides a connection uses the queues of the same index both ways. It is not
//! keyed: steering decides which core does the work, never what a packet
//! may do, and an attacker who sends many flows to one queue loads one core
//! of N, as with an RSS NIC whose key is known.

use std::net::{IpAddr, SocketAddr};

/// The queue, of `queues`, that a packet between `a` and `b` (in either
/// direction) is steered to; for TCP and UDP packets that are not fragments.
///
/// # Examples
///
/// ```
/// use std::net::SocketAddr;
/// use synack_device::queue_of;
///
/// let server: SocketAddr = "192.0.2.1:80".parse().unwrap();
/// let client: SocketAddr = "192.0.2.2:40000".parse().unwrap();
/// let q = queue_of(server, client, 4);
/// assert!(q < 4);
/// assert_eq!(q, queue_of(client, server, 4), "symmetric");
/// assert_eq!(queue_of(server, client, 1), 0);
/// ```
pub fn queue_of(a: SocketAddr, b: SocketAddr, queues: usize) -> usize {
    if queues <= 1 {
        return 0;
    }
    let (a_ip, b_ip) = (ip_bytes(a.ip()), ip_bytes(b.ip()));
    let h = pair_hash(a_ip.as_slice(), b_ip.as_slice());
    let h = mix(h, order(u64::from(a.port()), u64::from(b.port())));
    scale(h, queues)
}

/// The queue, of `queues`, that an IP datagram is steered to: by
/// [`queue_of`] its addresses and ports for TCP and UDP, by its addresses
/// alone for fragments (whose later pieces carry no ports), other
/// protocols, and anything too short to read. Never panics on any bytes.
///
/// # Examples
///
/// ```
/// use synack_device::queue_of_packet;
///
/// assert_eq!(queue_of_packet(&[], 1), 0);
/// assert!(queue_of_packet(&[0x45; 40], 3) < 3);
/// ```
pub fn queue_of_packet(packet: &[u8], queues: usize) -> usize {
    if queues <= 1 {
        return 0;
    }
    let Some(&first) = packet.first() else {
        return 0;
    };
    match first >> 4 {
        4 if packet.len() >= 20 => {
            let ihl = usize::from(first & 0x0f) * 4;
            let (src, dst) = (&packet[12..16], &packet[16..20]);
            let h = pair_hash(src, dst);
            let fragment = u16::from_be_bytes([packet[6], packet[7]]) & 0x3fff != 0;
            let protocol = packet[9];
            match ports(packet, ihl, protocol, fragment) {
                Some(p) => scale(mix(h, p), queues),
                None => scale(h, queues),
            }
        }
        6 if packet.len() >= 40 => {
            let (src, dst) = (&packet[8..24], &packet[24..40]);
            let h = pair_hash(src, dst);
            match ports(packet, 40, packet[6], false) {
                Some(p) => scale(mix(h, p), queues),
                None => scale(h, queues),
            }
        }
        _ => 0,
    }
}

/// The ports of a TCP or UDP header at `offset`, ordered, or `None`.
fn ports(packet: &[u8], offset: usize, protocol: u8, fragment: bool) -> Option<u64> {
    if fragment || !(protocol == 6 || protocol == 17) || offset < 20 {
        return None;
    }
    let p = packet.get(offset..offset + 4)?;
    let src = u16::from_be_bytes([p[0], p[1]]);
    let dst = u16::from_be_bytes([p[2], p[3]]);
    Some(order(u64::from(src), u64::from(dst)))
}

/// An address's bytes, as they stand in a header.
enum IpBytes {
    V4([u8; 4]),
    V6([u8; 16]),
}

impl IpBytes {
    fn as_slice(&self) -> &[u8] {
        match self {
            IpBytes::V4(b) => b,
            IpBytes::V6(b) => b,
        }
    }
}

fn ip_bytes(ip: IpAddr) -> IpBytes {
    match ip {
        IpAddr::V4(v4) => IpBytes::V4(v4.octets()),
        IpAddr::V6(v6) => IpBytes::V6(v6.octets()),
    }
}

/// A hash of two addresses that does not depend on their order.
fn pair_hash(a: &[u8], b: &[u8]) -> u64 {
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    let mut h = 0x9e37_79b9_7f4a_7c15u64;
    for chunk in lo.chunks(8).chain(hi.chunks(8)) {
        let mut word = [0u8; 8];
        word[..chunk.len()].copy_from_slice(chunk);
        h = mix(h, u64::from_le_bytes(word));
    }
    h
}

/// Two ports as one word, the smaller first.
fn order(a: u64, b: u64) -> u64 {
    (a.min(b) << 16) | a.max(b)
}

/// One round of a folded 128-bit multiply.
fn mix(h: u64, v: u64) -> u64 {
    let m = u128::from(h ^ v) * 0x2d35_8dcc_aa6c_78a5u128;
    (m as u64) ^ ((m >> 64) as u64)
}

/// `h` onto `0..queues`, by its high bits.
fn scale(h: u64, queues: usize) -> usize {
    ((u128::from(h) * queues as u128) >> 64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp_v4(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, frag: u16) -> Vec<u8> {
        let mut p = vec![0u8; 40];
        p[0] = 0x45;
        p[6..8].copy_from_slice(&frag.to_be_bytes());
        p[9] = 6;
        p[12..16].copy_from_slice(&src);
        p[16..20].copy_from_slice(&dst);
        p[20..22].copy_from_slice(&sport.to_be_bytes());
        p[22..24].copy_from_slice(&dport.to_be_bytes());
        p
    }

    #[test]
    fn a_packet_goes_where_queue_of_says_both_ways() {
        let a: SocketAddr = "192.0.2.1:80".parse().unwrap();
        for port in 30000..30200u16 {
            let b = SocketAddr::from(([192, 0, 2, 2], port));
            for queues in 1..6 {
                let q = queue_of(a, b, queues);
                let out = tcp_v4([192, 0, 2, 1], [192, 0, 2, 2], 80, port, 0x4000);
                let back = tcp_v4([192, 0, 2, 2], [192, 0, 2, 1], port, 80, 0);
                assert_eq!(queue_of_packet(&out, queues), q);
                assert_eq!(queue_of_packet(&back, queues), q);
            }
        }
    }

    #[test]
    fn flows_spread_over_the_queues() {
        let a: SocketAddr = "192.0.2.1:80".parse().unwrap();
        let mut counts = [0usize; 4];
        for port in 1024..5120u16 {
            counts[queue_of(a, SocketAddr::from(([192, 0, 2, 2], port)), 4)] += 1;
        }
        for c in counts {
            assert!((800..1250).contains(&c), "{counts:?}");
        }
    }

    #[test]
    fn fragments_are_steered_by_addresses_alone() {
        let first = tcp_v4([192, 0, 2, 1], [192, 0, 2, 2], 80, 1234, 0x2000);
        let mut later = tcp_v4([192, 0, 2, 1], [192, 0, 2, 2], 0, 0, 0x0010);
        later[9] = 6;
        for queues in 2..8 {
            assert_eq!(
                queue_of_packet(&first, queues),
                queue_of_packet(&later, queues)
            );
        }
    }

    #[test]
    fn any_bytes_are_steered_somewhere() {
        for len in 0..64 {
            for first in [0x00, 0x45, 0x4f, 0x60, 0xff] {
                let mut p = vec![0xa5u8; len];
                if let Some(b) = p.first_mut() {
                    *b = first;
                }
                assert!(queue_of_packet(&p, 3) < 3);
            }
        }
    }
}
