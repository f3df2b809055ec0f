//! ICMPv4 as a host speaks it (RFC 792, RFC 1122 §3.2.2): answer echo
//! requests, report unreachable ports and protocols, and pass errors about our
//! own TCP segments to the connection they concern (RFC 5927).

use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{
    Icmpv4DstUnreachable, Icmpv4Message, Icmpv4Packet, Icmpv4Repr, IpProtocol, Ipv4Packet, Ipv4Repr,
};

use crate::seq::Seq;
use crate::{Engine, Instant};

/// Most ICMP messages queued for sending; beyond this they are dropped.
const MAX_QUEUED: usize = 64;
/// RFC 1812 §4.3.2.8 / RFC 1122 §3.2.2: ICMP errors are rate-limited. Like Linux's
/// defaults: a burst of 50, refilled at 1000 per second.
const ERROR_BURST: u32 = 50;
const ERROR_REFILL: Duration = Duration::from_millis(1);
/// RFC 1812 §4.3.2.3: an error quotes as much of the offending datagram as keeps
/// the whole within 576 bytes.
const MAX_ERROR_LEN: usize = 576;

/// An ICMP error about a TCP segment we sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TcpIcmpError {
    /// Our end of the connection (the quoted segment's source).
    pub local: SocketAddrV4,
    /// The peer's end (the quoted segment's destination).
    pub remote: SocketAddrV4,
    /// The quoted segment's sequence number (RFC 5927 §4.1 checks it).
    pub seq: Seq,
    pub kind: IcmpErrorKind,
}

/// What an ICMP error says about the path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IcmpErrorKind {
    /// Protocol or port unreachable: a "hard" error (RFC 1122 §4.2.3.9).
    Refused,
    /// Network or host unreachable, or prohibited: a "soft" error.
    Unreachable,
    /// Fragmentation needed with DF set: the path MTU is this (RFC 1191).
    FragmentationNeeded(u16),
}

/// A token bucket for ICMP errors.
#[derive(Debug)]
struct RateLimiter {
    tokens: u32,
    last: Instant,
}

impl RateLimiter {
    fn allow(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last);
        let refill = (elapsed.as_nanos() / ERROR_REFILL.as_nanos()) as u64;
        if refill > 0 {
            self.tokens = (u64::from(self.tokens) + refill).min(u64::from(ERROR_BURST)) as u32;
            self.last = now;
        }
        if self.tokens == 0 {
            return false;
        }
        self.tokens -= 1;
        true
    }
}

/// What the ICMP layer decided about one inbound datagram.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum IcmpInput {
    /// Nothing to do (an echo reply, something malformed, an error about nobody).
    Ignored,
    /// An echo request was answered.
    Answered,
    /// An error about one of our TCP segments.
    TcpError(TcpIcmpError),
    /// An error about one of our UDP datagrams: our end, the peer's end, and
    /// what it says.
    UdpError(SocketAddrV4, SocketAddrV4, IcmpErrorKind),
    /// Malformed or a bad checksum.
    Malformed,
}

/// The ICMP layer's state: the messages waiting to go out and the rate limiter.
#[derive(Debug)]
pub(crate) struct Icmp {
    /// Messages to send: source, destination, ICMP message.
    out: VecDeque<(Ipv4Addr, Ipv4Addr, Vec<u8>)>,
    limiter: RateLimiter,
    /// Errors not sent because of the rate limit or a full queue.
    pub(crate) suppressed: u64,
}

impl Icmp {
    pub(crate) fn new() -> Icmp {
        Icmp {
            out: VecDeque::new(),
            limiter: RateLimiter {
                tokens: ERROR_BURST,
                last: Instant::ZERO,
            },
            suppressed: 0,
        }
    }

    /// Handles an inbound ICMP message from `src` to our address `dst`.
    pub(crate) fn input(
        &mut self,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        payload: &[u8],
        checksums: &ChecksumCapabilities,
    ) -> IcmpInput {
        let Ok(packet) = Icmpv4Packet::new_checked(payload) else {
            return IcmpInput::Malformed;
        };
        if checksums.icmpv4.rx() && !packet.verify_checksum() {
            return IcmpInput::Malformed;
        }
        match packet.msg_type() {
            Icmpv4Message::EchoRequest => self.echo(src, dst, &packet, checksums),
            Icmpv4Message::DstUnreachable => error_about(payload),
            // Echo replies, time exceeded and the rest: nothing to do.
            _ => IcmpInput::Ignored,
        }
    }

    /// RFC 1122 §3.2.2.6: an echo request is answered from the address it
    /// was sent to, with its data unchanged.
    fn echo(
        &mut self,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        packet: &Icmpv4Packet<&[u8]>,
        checksums: &ChecksumCapabilities,
    ) -> IcmpInput {
        let Ok(Icmpv4Repr::EchoRequest {
            ident,
            seq_no,
            data,
        }) = Icmpv4Repr::parse(packet, &ChecksumCapabilities::ignored())
        else {
            return IcmpInput::Malformed;
        };
        let reply = Icmpv4Repr::EchoReply {
            ident,
            seq_no,
            data,
        };
        if self.out.len() >= MAX_QUEUED {
            self.suppressed += 1;
            return IcmpInput::Ignored;
        }
        let mut bytes = vec![0u8; reply.buffer_len()];
        reply.emit(&mut Icmpv4Packet::new_unchecked(&mut bytes[..]), checksums);
        self.out.push_back((dst, src, bytes));
        IcmpInput::Answered
    }

    /// Queues a destination-unreachable error about `datagram` (a whole IPv4
    /// datagram we received), if the rate limit allows. RFC 1122 §3.2.2: never
    /// about an ICMP error, a broadcast or multicast, or a non-initial fragment.
    pub(crate) fn unreachable(
        &mut self,
        now: Instant,
        datagram: &[u8],
        reason: Icmpv4DstUnreachable,
        checksums: &ChecksumCapabilities,
    ) {
        let Ok(ip) = Ipv4Packet::new_checked(datagram) else {
            return;
        };
        let src = ip.src_addr();
        if src.is_broadcast()
            || src.is_multicast()
            || src.is_unspecified()
            || ip.dst_addr().is_broadcast()
            || ip.dst_addr().is_multicast()
            || ip.frag_offset() != 0
        {
            return;
        }
        if ip.next_header() == IpProtocol::Icmp {
            let payload = ip.payload();
            // Only echo requests (type 8) may provoke an error; never an error.
            if payload.first() != Some(&8) {
                return;
            }
        }
        if self.out.len() >= MAX_QUEUED || !self.limiter.allow(now) {
            self.suppressed += 1;
            return;
        }
        let header_len = usize::from(ip.header_len());
        let quoted = &datagram[header_len..ip.total_len().min(datagram.len() as u16) as usize];
        let room = MAX_ERROR_LEN - 20 - 8 - header_len;
        let quoted = &quoted[..quoted.len().min(room)];
        let header = Ipv4Repr {
            src_addr: ip.src_addr(),
            dst_addr: ip.dst_addr(),
            next_header: ip.next_header(),
            payload_len: quoted.len(),
            hop_limit: ip.hop_limit(),
        };
        let repr = Icmpv4Repr::DstUnreachable {
            reason,
            header,
            data: quoted,
        };
        let mut bytes = vec![0u8; repr.buffer_len()];
        repr.emit(&mut Icmpv4Packet::new_unchecked(&mut bytes[..]), checksums);
        self.out.push_back((ip.dst_addr(), src, bytes));
    }

    /// Queues a time exceeded, code 1 ("fragment reassembly time exceeded",
    /// RFC 792), to the sender of a datagram whose fragments did not all
    /// arrive in time (RFC 1122 §3.3.2). `quote` is the first fragment's
    /// header and first 8 bytes of payload, quoted as received.
    pub(crate) fn reassembly_timeout(&mut self, now: Instant, quote: &[u8]) {
        let ip = Ipv4Packet::new_unchecked(quote);
        if quote.len() < 20 {
            return;
        }
        let src = ip.src_addr();
        if src.is_broadcast() || src.is_multicast() || src.is_unspecified() {
            return;
        }
        if self.out.len() >= MAX_QUEUED || !self.limiter.allow(now) {
            self.suppressed += 1;
            return;
        }
        let mut bytes = vec![0u8; 8 + quote.len()];
        bytes[0] = 11; // Time Exceeded
        bytes[1] = 1; // fragment reassembly time exceeded
        bytes[8..].copy_from_slice(quote);
        Icmpv4Packet::new_unchecked(&mut bytes[..]).fill_checksum();
        self.out.push_back((ip.dst_addr(), src, bytes));
    }

    /// The next ICMP message to send: source, destination and message bytes.
    pub(crate) fn poll(&mut self) -> Option<(Ipv4Addr, Ipv4Addr, Vec<u8>)> {
        self.out.pop_front()
    }
}

impl Engine {
    /// An ICMP message from `src` to our address `dst`.
    pub(crate) fn handle_icmp(
        &mut self,
        now: Instant,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        payload: &[u8],
        checksums: &ChecksumCapabilities,
    ) {
        let suppressed = self.icmp.suppressed;
        match self.icmp.input(src, dst, payload, checksums) {
            IcmpInput::Answered => self.stats.icmp_echo_replies += 1,
            IcmpInput::Malformed => self.stats.rx_malformed += 1,
            IcmpInput::Ignored => {}
            IcmpInput::UdpError(local, remote, kind) => {
                self.stats.icmp_errors_received += 1;
                if self.addrs.is_local(*local.ip()) {
                    self.udp_icmp_error(local, remote, kind);
                }
            }
            IcmpInput::TcpError(e) => {
                self.stats.icmp_errors_received += 1;
                if !self.addrs.is_local(*e.local.ip()) {
                    return;
                }
                if let Some(&h) = self.conns.get(&(e.local, e.remote)) {
                    if let Ok(tcb) = self.tcb_mut(h) {
                        tcb.on_icmp_error(e.seq, e.kind);
                    }
                    self.after(now, h);
                }
            }
        }
        self.stats.icmp_suppressed += self.icmp.suppressed - suppressed;
    }
}

/// A destination unreachable about one of our datagrams. The quote is read
/// by hand: RFC 792 asks for only the IP header and 8 bytes of the
/// datagram, which smoltcp's parser refuses (it wants the whole datagram
/// the quoted header announces), and those 8 bytes hold the ports and, for
/// TCP, the sequence number: all we need (RFC 5927 §4.1).
fn error_about(raw: &[u8]) -> IcmpInput {
    let packet = Icmpv4Packet::new_unchecked(raw);
    let quote = packet.data();
    let Some(&first) = quote.first() else {
        return IcmpInput::Malformed;
    };
    let ihl = usize::from(first & 0x0f) * 4;
    if first >> 4 != 4 || ihl < 20 || quote.len() < ihl + 8 {
        return IcmpInput::Malformed;
    }
    let proto = IpProtocol::from(quote[9]);
    if !matches!(proto, IpProtocol::Tcp | IpProtocol::Udp) {
        return IcmpInput::Ignored;
    }
    let ip = |at: usize| Ipv4Addr::new(quote[at], quote[at + 1], quote[at + 2], quote[at + 3]);
    let data = &quote[ihl..ihl + 8];
    let kind = match Icmpv4DstUnreachable::from(packet.msg_code()) {
        Icmpv4DstUnreachable::ProtoUnreachable | Icmpv4DstUnreachable::PortUnreachable => {
            IcmpErrorKind::Refused
        }
        Icmpv4DstUnreachable::FragRequired => {
            // RFC 1191 §4: the next-hop MTU is in the low 16 bits of the
            // otherwise unused field.
            IcmpErrorKind::FragmentationNeeded(u16::from_be_bytes([raw[6], raw[7]]))
        }
        _ => IcmpErrorKind::Unreachable,
    };
    let local = SocketAddrV4::new(ip(12), u16::from_be_bytes([data[0], data[1]]));
    let remote = SocketAddrV4::new(ip(16), u16::from_be_bytes([data[2], data[3]]));
    if proto == IpProtocol::Udp {
        return IcmpInput::UdpError(local, remote, kind);
    }
    IcmpInput::TcpError(TcpIcmpError {
        local,
        remote,
        seq: Seq(u32::from_be_bytes([data[4], data[5], data[6], data[7]])),
        kind,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limiter_bursts_then_refills() {
        let mut r = RateLimiter {
            tokens: ERROR_BURST,
            last: Instant::ZERO,
        };
        let t = Instant::from_millis(5);
        for _ in 0..ERROR_BURST {
            assert!(r.allow(t));
        }
        assert!(!r.allow(t));
        assert!(r.allow(t + Duration::from_millis(2)));
        assert!(r.allow(t + Duration::from_millis(2)));
        assert!(!r.allow(t + Duration::from_millis(2)));
    }
}
