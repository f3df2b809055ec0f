//! The router's ICMP: destination unreachable, code 1 (host unreachable).
//!
//! RFC 792 gives the format: type 3, code 1, a checksum, four unused bytes,
//! then the offending datagram's IP header and at least its first 8 bytes.
//! We quote as much of it as fits in 576 bytes (RFC 1812 §4.3.2.3), as Linux
//! does: a SYN or a short segment is quoted whole.
//!
//! RFC 1122 §3.2.2 and RFC 1812 §4.3.2.7 say when not to answer: about an
//! ICMP error, a datagram sent to a broadcast or multicast address, a
//! non-initial fragment, or one whose source is not a single host.

use std::net::Ipv4Addr;

use synack_device::Packet;

/// The longest ICMP error, IP header included (RFC 1812 §4.3.2.3).
const MAX_ERROR_LEN: usize = 576;

/// ICMP types that are queries, not errors (RFC 792, RFC 950): echo reply and
/// request, timestamp, information and address mask request and reply. An
/// unknown type is taken for an error, as Linux does.
const QUERY_TYPES: [u8; 8] = [0, 8, 13, 14, 15, 16, 17, 18];

/// The host unreachable message `router` sends to the source of `datagram`,
/// or `None` when the rules above forbid one. `broadcast` is the directed
/// broadcast address of the router's subnet, if it has one.
pub(crate) fn host_unreachable(
    router: Ipv4Addr,
    broadcast: Option<Ipv4Addr>,
    datagram: &[u8],
) -> Option<Packet> {
    if datagram.len() < 20 || datagram[0] >> 4 != 4 {
        return None;
    }
    let header_len = usize::from(datagram[0] & 0x0f) * 4;
    let total_len = usize::from(u16::from_be_bytes([datagram[2], datagram[3]]));
    if header_len < 20 || header_len > datagram.len() || total_len < header_len {
        return None;
    }
    let frag_offset = u16::from_be_bytes([datagram[6], datagram[7]]) & 0x1fff;
    let src = Ipv4Addr::new(datagram[12], datagram[13], datagram[14], datagram[15]);
    let dst = Ipv4Addr::new(datagram[16], datagram[17], datagram[18], datagram[19]);
    let not_one_host =
        |a: Ipv4Addr| a.is_unspecified() || a.is_broadcast() || a.is_multicast() || a.is_loopback();
    if frag_offset != 0
        || not_one_host(src)
        || Some(src) == broadcast
        || dst.is_broadcast()
        || dst.is_multicast()
        || Some(dst) == broadcast
    {
        return None;
    }
    if datagram[9] == 1 {
        // Only ICMP queries may provoke an error; never an error (RFC 1122 §3.2.2).
        let kind = datagram.get(header_len)?;
        if !QUERY_TYPES.contains(kind) {
            return None;
        }
    }
    let quoted = &datagram[..total_len.min(datagram.len()).min(MAX_ERROR_LEN - 28)];
    let len = 28 + quoted.len();
    let mut p = Vec::with_capacity(len);
    // IPv4 header: version 4, IHL 5, precedence "internetwork control" (RFC
    // 1812 §4.3.2.5), no fragmentation, TTL 64, protocol ICMP.
    p.extend_from_slice(&[0x45, 0xc0]);
    p.extend_from_slice(&(len as u16).to_be_bytes());
    p.extend_from_slice(&[0, 0, 0, 0, 64, 1, 0, 0]);
    p.extend_from_slice(&router.octets());
    p.extend_from_slice(&src.octets());
    let sum = checksum(&p[..20]);
    p[10..12].copy_from_slice(&sum.to_be_bytes());
    // ICMP: destination unreachable, host unreachable, checksum, unused.
    p.extend_from_slice(&[3, 1, 0, 0, 0, 0, 0, 0]);
    p.extend_from_slice(quoted);
    let sum = checksum(&p[20..]);
    p[22..24].copy_from_slice(&sum.to_be_bytes());
    Some(p)
}

/// The Internet checksum (RFC 1071).
fn checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = bytes
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROUTER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 254);

    /// A datagram from 192.0.2.1 to 192.0.2.9 with `payload`.
    fn datagram(proto: u8, payload: &[u8]) -> Vec<u8> {
        let len = (20 + payload.len()) as u16;
        let mut p = vec![0x45, 0, 0, 0, 0, 1, 0x40, 0, 64, proto, 0, 0];
        p[2..4].copy_from_slice(&len.to_be_bytes());
        p.extend_from_slice(&[192, 0, 2, 1, 192, 0, 2, 9]);
        let sum = checksum(&p);
        p[10..12].copy_from_slice(&sum.to_be_bytes());
        p.extend_from_slice(payload);
        p
    }

    #[test]
    fn format_and_checksums() {
        let syn = datagram(6, &[7; 40]);
        let icmp = host_unreachable(ROUTER, None, &syn).unwrap();
        assert_eq!(icmp.len(), 28 + syn.len());
        assert_eq!(&icmp[12..16], &ROUTER.octets());
        assert_eq!(&icmp[16..20], &[192, 0, 2, 1]);
        assert_eq!((icmp[9], icmp[20], icmp[21]), (1, 3, 1));
        assert_eq!(checksum(&icmp[..20]), 0);
        assert_eq!(checksum(&icmp[20..]), 0);
        assert_eq!(&icmp[28..], &syn[..]);
    }

    #[test]
    fn long_datagrams_are_quoted_up_to_576_bytes() {
        let big = datagram(6, &[1; 1480]);
        let icmp = host_unreachable(ROUTER, None, &big).unwrap();
        assert_eq!(icmp.len(), 576);
        assert_eq!(&icmp[28..], &big[..548]);
        assert_eq!(checksum(&icmp[20..]), 0);
    }

    #[test]
    fn never_about_errors_broadcasts_or_later_fragments() {
        let echo = datagram(1, &[8, 0, 0, 0, 0, 1, 0, 1]);
        assert!(host_unreachable(ROUTER, None, &echo).is_some());
        let error = datagram(1, &[3, 1, 0, 0, 0, 0, 0, 0]);
        assert!(host_unreachable(ROUTER, None, &error).is_none());
        let unknown = datagram(1, &[200, 0, 0, 0]);
        assert!(host_unreachable(ROUTER, None, &unknown).is_none());

        let mut fragment = datagram(17, &[0; 16]);
        fragment[6..8].copy_from_slice(&[0x00, 0x10]);
        assert!(host_unreachable(ROUTER, None, &fragment).is_none());
        fragment[6..8].copy_from_slice(&[0x20, 0x00]); // first fragment: answered
        assert!(host_unreachable(ROUTER, None, &fragment).is_some());

        let mut bcast = datagram(17, &[0; 16]);
        bcast[16..20].copy_from_slice(&[192, 0, 2, 255]);
        assert!(host_unreachable(ROUTER, None, &bcast).is_some());
        let subnet = Some(Ipv4Addr::new(192, 0, 2, 255));
        assert!(host_unreachable(ROUTER, subnet, &bcast).is_none());
        bcast[16..20].copy_from_slice(&[255; 4]);
        assert!(host_unreachable(ROUTER, None, &bcast).is_none());
        let mut multicast = datagram(17, &[0; 16]);
        multicast[16..20].copy_from_slice(&[224, 0, 0, 1]);
        assert!(host_unreachable(ROUTER, None, &multicast).is_none());
        let mut anonymous = datagram(17, &[0; 16]);
        anonymous[12..16].copy_from_slice(&[0; 4]);
        assert!(host_unreachable(ROUTER, None, &anonymous).is_none());
        assert!(host_unreachable(ROUTER, None, &[0x45; 10]).is_none());
    }
}
