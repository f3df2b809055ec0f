//! The IP layer: the host's addresses, input validation and demultiplexing
//! to TCP, UDP and ICMP, and output with its routing decision.

use std::net::SocketAddrV4;

use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{
    Icmpv4DstUnreachable, IpAddress, IpProtocol, Ipv4Packet, Ipv4Repr, TcpControl, TcpPacket,
    TcpRepr,
};
use tracing::trace;

use crate::tcp::connection::{Ctl, Outbound, Segment, Tcb};
use crate::{Engine, Instant, MAX_OWED_ACKS, Seq, Socket, tcp};

impl Engine {
    // ----- Input -----

    /// Handles one inbound IPv4 datagram. Anything malformed is dropped and counted.
    pub fn handle_packet(&mut self, now: Instant, packet: &[u8]) {
        self.stats.rx_packets += 1;
        if packet.first().is_some_and(|b| b >> 4 != 4) {
            self.stats.rx_not_ipv4 += 1;
            return;
        }
        let Ok(ip) = Ipv4Packet::new_checked(packet) else {
            self.stats.rx_malformed += 1;
            return;
        };
        if self.checksums.ipv4.rx() && ip.version() == 4 && !ip.verify_checksum() {
            self.stats.rx_bad_checksum += 1;
            return;
        }
        let Ok(ip_repr) = Ipv4Repr::parse(&ip, &ChecksumCapabilities::ignored()) else {
            self.stats.rx_malformed += 1;
            return;
        };
        if ip_repr.dst_addr != self.iface.addr {
            self.stats.rx_not_for_us += 1;
            return;
        }
        // RFC 1122 §3.2.1.3: silently discard a datagram whose source is not one
        // host: broadcast, multicast, unspecified, loopback, class E, or our own.
        let src = ip_repr.src_addr;
        if src.is_broadcast()
            || src.is_multicast()
            || src.is_unspecified()
            || src.is_loopback()
            || src.octets()[0] >= 240
            || src == self.iface.addr
        {
            self.stats.rx_martian += 1;
            return;
        }
        match ip_repr.next_header {
            IpProtocol::Tcp => {}
            IpProtocol::Icmp => {
                self.handle_icmp(now, ip_repr.src_addr, ip.payload());
                return;
            }
            other => {
                // RFC 1122 §3.2.2.1 / §4.1.3.1: a host answers a datagram for a port
                // or protocol it does not serve with destination unreachable.
                self.stats.rx_unknown_protocol += 1;
                let reason = if other == IpProtocol::Udp {
                    Icmpv4DstUnreachable::PortUnreachable
                } else {
                    Icmpv4DstUnreachable::ProtoUnreachable
                };
                let before = self.icmp.suppressed;
                self.icmp.unreachable(now, packet, reason, &self.checksums);
                self.stats.icmp_suppressed += self.icmp.suppressed - before;
                return;
            }
        }
        let src = IpAddress::Ipv4(ip_repr.src_addr);
        let dst = IpAddress::Ipv4(ip_repr.dst_addr);
        let Ok(tcp) = TcpPacket::new_checked(ip.payload()) else {
            self.stats.rx_malformed += 1;
            return;
        };
        if self.checksums.tcp.rx() && !tcp.verify_checksum(&src, &dst) {
            self.stats.rx_bad_checksum += 1;
            return;
        }
        let Ok(repr) = TcpRepr::parse(&tcp, &src, &dst, &ChecksumCapabilities::ignored()) else {
            self.stats.rx_malformed += 1;
            return;
        };
        let seg = Segment {
            seq: repr.seq_number.into(),
            ack: repr.ack_number.map(Seq::from),
            ctl: match repr.control {
                TcpControl::Syn => Ctl::Syn,
                TcpControl::Fin => Ctl::Fin,
                TcpControl::Rst => Ctl::Rst,
                TcpControl::None | TcpControl::Psh => Ctl::None,
            },
            window: repr.window_len,
            mss: repr.max_seg_size,
            window_scale: repr.window_scale,
            payload: repr.payload,
            timestamp: repr.timestamp.map(|t| (t.tsval, t.tsecr)),
            sack_permitted: repr.sack_permitted,
            sack_blocks: repr
                .sack_ranges
                .map(|r| r.map(|(left, right)| (Seq(left), Seq(right)))),
            urgent: tcp.urg().then(|| tcp.urgent_at()),
        };
        let local = SocketAddrV4::new(ip_repr.dst_addr, repr.dst_port);
        let remote = SocketAddrV4::new(ip_repr.src_addr, repr.src_port);
        self.handle_segment(now, local, remote, &seg);
    }

    // ----- Output -----

    /// Writes the next outbound IPv4 datagram into `buf` and returns its length,
    /// or `None` when there is nothing to send. `buf` must hold at least one MTU.
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<usize> {
        if let Some(ack) = self.owed_acks.pop_front() {
            let len = ack.len();
            buf[..len].copy_from_slice(&ack);
            if self.spare_acks.len() < MAX_OWED_ACKS {
                self.spare_acks.push(ack);
            }
            self.stats.tx_packets += 1;
            return Some(len);
        }
        if let Some(r) = self.replies.pop_front() {
            let out = Outbound {
                seq: r.seq,
                ack: r.ack,
                ctl: Ctl::Rst,
                window: 0,
                mss: None,
                window_scale: None,
                payload_offset: 0,
                payload_len: 0,
                psh: false,
                timestamp: None,
                sack_permitted: false,
                sack_blocks: [None; tcp::sack::MAX_BLOCKS],
                urgent: None,
            };
            self.stats.tx_packets += 1;
            return Some(self.emit(r.local, r.remote, &out, None, buf));
        }
        if let Some((local, remote, out)) = self.cookie_synacks.pop_front() {
            self.stats.tx_packets += 1;
            return Some(self.emit(local, remote, &out, None, buf));
        }
        if let Some((dst, message)) = self.icmp.poll() {
            let ip = Ipv4Repr {
                src_addr: self.iface.addr,
                dst_addr: dst,
                next_header: IpProtocol::Icmp,
                payload_len: message.len(),
                hop_limit: self.config.ttl,
            };
            let total = 20 + message.len();
            let is_error = message.first() == Some(&3);
            buf[20..total].copy_from_slice(&message);
            ip.emit(
                &mut Ipv4Packet::new_unchecked(&mut buf[..total]),
                &self.checksums,
            );
            if is_error {
                self.stats.icmp_errors_sent += 1;
            }
            self.stats.tx_packets += 1;
            return Some(total);
        }
        while let Some(h) = self.tx_queue.pop_front() {
            let slot = match self.slots.get_mut(h.index as usize) {
                Some(s) if s.generation == h.generation => s,
                _ => continue,
            };
            slot.in_tx_queue = false;
            let Some(Socket::Conn(tcb)) = slot.socket.as_mut() else {
                continue;
            };
            let out = tcb.poll_output(now);
            let Some(out) = out else {
                // Nothing sendable now (window, Nagle): it is queued again when an
                // ACK, a timer or the application changes that.
                self.update(now, h, false);
                continue;
            };
            let tcb: &Tcb = tcb;
            trace!(parent: tcb.span(), seq = %out.seq, ack = ?out.ack, ctl = ?out.ctl, len = out.payload_len, "segment out");
            let mtu = self.iface.mtu.min(buf.len());
            let len = Self::emit_for(&self.checksums, tcb, &out, &mut buf[..mtu]);
            self.stats.tx_packets += 1;
            self.after(now, h);
            return Some(len);
        }
        None
    }
}
