//! Datagrams read and written by hand, independently of the engine's own
//! parser and of smoltcp (whose `verify_checksum` is always true under
//! `--cfg fuzzing`).

use std::net::Ipv4Addr;

/// The Internet checksum (RFC 1071) of `parts` laid end to end.
pub fn checksum(parts: &[&[u8]]) -> u16 {
    let mut sum: u32 = 0;
    let mut odd: Option<u8> = None;
    for part in parts {
        for &b in *part {
            match odd.take() {
                Some(hi) => sum += u32::from(u16::from_be_bytes([hi, b])),
                None => odd = Some(b),
            }
        }
    }
    if let Some(hi) = odd {
        sum += u32::from(u16::from_be_bytes([hi, 0]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// The pseudo-header of a TCP or UDP checksum.
pub(crate) fn pseudo(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, len: usize) -> [u8; 12] {
    let mut p = [0u8; 12];
    p[..4].copy_from_slice(&src.octets());
    p[4..8].copy_from_slice(&dst.octets());
    p[9] = proto;
    p[10..].copy_from_slice(&(len as u16).to_be_bytes());
    p
}

/// TCP, UDP and ICMP protocol numbers.
pub const TCP: u8 = 6;
/// UDP's protocol number.
pub const UDP: u8 = 17;
/// ICMP's protocol number.
pub const ICMP: u8 = 1;

/// What an emitted datagram must be; the violated rule otherwise.
pub fn check_emitted(d: &[u8], mtu: usize, locals: &[Ipv4Addr]) -> Result<Segment, String> {
    if d.len() < 20 || d[0] >> 4 != 4 {
        return Err(format!("not IPv4: {} bytes", d.len()));
    }
    let ihl = usize::from(d[0] & 0xf) * 4;
    let total = usize::from(u16::from_be_bytes([d[2], d[3]]));
    if ihl < 20 || ihl > d.len() || total != d.len() {
        return Err(format!(
            "IPv4 lengths: ihl {ihl}, total {total}, datagram {}",
            d.len()
        ));
    }
    if d.len() > mtu {
        return Err(format!("{} bytes over an MTU of {mtu}", d.len()));
    }
    if checksum(&[&d[..ihl]]) != 0 {
        return Err("bad IPv4 header checksum".into());
    }
    let src = Ipv4Addr::new(d[12], d[13], d[14], d[15]);
    let dst = Ipv4Addr::new(d[16], d[17], d[18], d[19]);
    if !locals.contains(&src) {
        return Err(format!("source {src} is not a local address"));
    }
    if src.is_loopback() || dst.is_loopback() {
        return Err(format!("loopback traffic {src} -> {dst} on the device"));
    }
    let more_fragments = d[6] & 0x20 != 0;
    let offset = usize::from(u16::from_be_bytes([d[6] & 0x1f, d[7]])) * 8;
    let body = &d[ihl..];
    if more_fragments || offset != 0 {
        // A fragment: its transport header is not whole here.
        return Ok(Segment::other(src, dst, d[9]));
    }
    match d[9] {
        TCP => {
            if body.len() < 20 {
                return Err("TCP header cut short".into());
            }
            let off = usize::from(body[12] >> 4) * 4;
            if off < 20 || off > body.len() {
                return Err(format!("TCP data offset {off} in {} bytes", body.len()));
            }
            if checksum(&[&pseudo(src, dst, TCP, body.len()), body]) != 0 {
                return Err("bad TCP checksum".into());
            }
            Ok(Segment::tcp(src, dst, body, off))
        }
        UDP => {
            if body.len() < 8 || usize::from(u16::from_be_bytes([body[4], body[5]])) != body.len() {
                return Err("UDP length".into());
            }
            let sum = u16::from_be_bytes([body[6], body[7]]);
            if sum != 0 && checksum(&[&pseudo(src, dst, UDP, body.len()), body]) != 0 {
                return Err("bad UDP checksum".into());
            }
            Ok(Segment::other(src, dst, UDP))
        }
        ICMP => {
            if body.len() < 8 || checksum(&[body]) != 0 {
                return Err("bad ICMP message or checksum".into());
            }
            Ok(Segment::other(src, dst, ICMP))
        }
        p => Err(format!("protocol {p} emitted")),
    }
}

/// The fields of an emitted datagram a forger learns from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// Source address.
    pub src: Ipv4Addr,
    /// Destination address.
    pub dst: Ipv4Addr,
    /// IP protocol.
    pub proto: u8,
    /// TCP: source and destination port.
    pub ports: (u16, u16),
    /// TCP: sequence and acknowledgment numbers.
    pub seq: u32,
    /// TCP: the acknowledgment number.
    pub ack: u32,
    /// TCP: the flags byte.
    pub flags: u8,
    /// TCP: the payload length (SYN and FIN not counted).
    pub len: usize,
    /// TCP: the timestamp value, if the option is there.
    pub tsval: Option<u32>,
    /// The first 28 bytes of the IP datagram, for ICMP errors quoting it.
    pub head: Vec<u8>,
}

impl Segment {
    fn other(src: Ipv4Addr, dst: Ipv4Addr, proto: u8) -> Segment {
        Segment {
            src,
            dst,
            proto,
            ports: (0, 0),
            seq: 0,
            ack: 0,
            flags: 0,
            len: 0,
            tsval: None,
            head: Vec::new(),
        }
    }

    fn tcp(src: Ipv4Addr, dst: Ipv4Addr, t: &[u8], off: usize) -> Segment {
        let be16 = |i: usize| u16::from_be_bytes([t[i], t[i + 1]]);
        let be32 = |i: usize| u32::from_be_bytes([t[i], t[i + 1], t[i + 2], t[i + 3]]);
        let mut tsval = None;
        let mut i = 20;
        while i < off {
            match t[i] {
                0 => break,
                1 => i += 1,
                kind => {
                    let Some(&len) = t.get(i + 1) else { break };
                    let len = usize::from(len);
                    if len < 2 || i + len > off {
                        break;
                    }
                    if kind == 8 && len == 10 {
                        tsval = Some(be32(i + 2));
                    }
                    i += len;
                }
            }
        }
        let mut head = Vec::with_capacity(28);
        head.extend_from_slice(&[0x45, 0, 0, 0, 0, 0, 0, 0, 64, TCP, 0, 0]);
        head.extend_from_slice(&src.octets());
        head.extend_from_slice(&dst.octets());
        head.extend_from_slice(&t[..8]);
        let total = (20 + t.len()) as u16;
        head[2..4].copy_from_slice(&total.to_be_bytes());
        let sum = checksum(&[&head[..20]]);
        head[10..12].copy_from_slice(&sum.to_be_bytes());
        Segment {
            src,
            dst,
            proto: TCP,
            ports: (be16(0), be16(2)),
            seq: be32(4),
            ack: be32(8),
            flags: t[13],
            len: t.len() - off,
            tsval,
            head,
        }
    }
}

/// An IPv4 header (no options, DF set) around `body`.
pub fn ipv4(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, ttl: u8, body: &[u8]) -> Vec<u8> {
    let total = (20 + body.len()) as u16;
    let mut d = vec![0x45, 0];
    d.extend_from_slice(&total.to_be_bytes());
    d.extend_from_slice(&[0, 0, 0x40, 0, ttl, proto, 0, 0]);
    d.extend_from_slice(&src.octets());
    d.extend_from_slice(&dst.octets());
    let sum = checksum(&[&d[..20]]);
    d[10..12].copy_from_slice(&sum.to_be_bytes());
    d.extend_from_slice(body);
    d
}

/// A TCP segment in an IPv4 datagram, checksums right.
#[allow(clippy::too_many_arguments)]
pub fn tcp(
    src: (Ipv4Addr, u16),
    dst: (Ipv4Addr, u16),
    seq: u32,
    ack: u32,
    flags: u8,
    window: u16,
    options: &[u8],
    payload: &[u8],
) -> Vec<u8> {
    let mut opts = options.to_vec();
    opts.truncate(40);
    while !opts.len().is_multiple_of(4) {
        opts.push(1);
    }
    let mut t = Vec::with_capacity(20 + opts.len() + payload.len());
    t.extend_from_slice(&src.1.to_be_bytes());
    t.extend_from_slice(&dst.1.to_be_bytes());
    t.extend_from_slice(&seq.to_be_bytes());
    t.extend_from_slice(&ack.to_be_bytes());
    t.push(((20 + opts.len()) / 4) as u8 * 16);
    t.push(flags);
    t.extend_from_slice(&window.to_be_bytes());
    t.extend_from_slice(&[0, 0, 0, 0]);
    t.extend_from_slice(&opts);
    t.extend_from_slice(payload);
    let sum = checksum(&[&pseudo(src.0, dst.0, TCP, t.len()), &t]);
    t[16..18].copy_from_slice(&sum.to_be_bytes());
    ipv4(src.0, dst.0, TCP, 64, &t)
}

/// An ICMP error from `from` quoting `head` (RFC 792: the IP header and 8 bytes).
pub fn icmp_error(
    from: Ipv4Addr,
    to: Ipv4Addr,
    kind: u8,
    code: u8,
    rest: u32,
    head: &[u8],
) -> Vec<u8> {
    let mut m = vec![kind, code, 0, 0];
    m.extend_from_slice(&rest.to_be_bytes());
    m.extend_from_slice(head);
    let sum = checksum(&[&m]);
    m[2..4].copy_from_slice(&sum.to_be_bytes());
    ipv4(from, to, ICMP, 64, &m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_built_segment_passes_the_checks() {
        let a = Ipv4Addr::new(192, 0, 2, 1);
        let b = Ipv4Addr::new(192, 0, 2, 2);
        let d = tcp(
            (a, 80),
            (b, 1000),
            7,
            9,
            0x18,
            100,
            &[8, 10, 0, 0, 0, 5, 0, 0, 0, 6],
            b"hi",
        );
        let s = check_emitted(&d, 1500, &[a]).unwrap();
        assert_eq!(
            (s.ports, s.seq, s.ack, s.len, s.tsval),
            ((80, 1000), 7, 9, 2, Some(5))
        );
        assert!(check_emitted(&d, 40, &[a]).is_err(), "over the MTU");
        assert!(check_emitted(&d, 1500, &[b]).is_err(), "not a local source");
        let mut bad = d.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert_eq!(
            check_emitted(&bad, 1500, &[a]).unwrap_err(),
            "bad TCP checksum"
        );
        let icmp = icmp_error(b, a, 3, 3, 0, &s.head);
        assert_eq!(check_emitted(&icmp, 1500, &[b]).unwrap().proto, ICMP);
    }
}
