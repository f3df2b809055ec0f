//! The IP layer (RFC 791, RFC 1122 §3): the host's addresses and its
//! loopback interface, input validation and demultiplexing to TCP and ICMP,
//! and output with its routing decision.
//!
//! The host has one device interface with any number of addresses, each with
//! its prefix, and a loopback interface: 127.0.0.0/8 and every address of the
//! host are delivered inside the engine, never on the device (RFC 1122
//! §3.2.1.3), with their own MTU and no checksums, as Linux's `lo`. The
//! routing decision is small: a local destination goes to loopback, anything
//! else to the device, from the address whose prefix holds the destination
//! (longest first) or else the first address.

pub(crate) mod frag;

use std::net::Ipv4Addr;

use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{Icmpv4DstUnreachable, IpProtocol, Ipv4Packet, Ipv4Repr};
use tracing::{debug, trace};

use crate::tcp::connection::{Ctl, Outbound, Tcb};
use crate::{Engine, Error, Instant, MAX_OWED_ACKS, Socket, State, tcp};

/// The largest datagram on the loopback interface. Linux's `lo` has an MTU of
/// 65 536; an IPv4 datagram's total length stops at 65 535.
pub const LOOPBACK_MTU: usize = 65535;

/// An address of the host with the length of its subnet prefix
/// (`192.0.2.1/24`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    /// The address.
    pub addr: Ipv4Addr,
    /// The prefix length, 0 to 32.
    pub prefix_len: u8,
}

impl Cidr {
    /// `addr/prefix_len`.
    pub const fn new(addr: Ipv4Addr, prefix_len: u8) -> Cidr {
        Cidr { addr, prefix_len }
    }

    fn mask(self) -> u32 {
        u32::MAX
            .checked_shl(32 - u32::from(self.prefix_len.min(32)))
            .unwrap_or(0)
    }

    /// Whether `ip` is on this subnet.
    pub fn contains(self, ip: Ipv4Addr) -> bool {
        ip.to_bits() & self.mask() == self.addr.to_bits() & self.mask()
    }

    /// The subnet's directed broadcast address, if it has one (not for /31
    /// and /32, RFC 3021).
    pub fn broadcast(self) -> Option<Ipv4Addr> {
        (self.prefix_len < 31).then(|| Ipv4Addr::from_bits(self.addr.to_bits() | !self.mask()))
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix_len)
    }
}

/// The host's addresses on its device interface, first one first.
#[derive(Debug, Clone, Default)]
pub(crate) struct Addresses {
    list: Vec<Cidr>,
}

impl Addresses {
    /// The addresses of an interface configured with `first` (none if it is
    /// unspecified).
    pub(crate) fn new(first: Cidr) -> Addresses {
        let list = if first.addr.is_unspecified() {
            Vec::new()
        } else {
            vec![first]
        };
        Addresses { list }
    }

    pub(crate) fn list(&self) -> &[Cidr] {
        &self.list
    }

    /// Whether a datagram to `ip` stays in the host: loopback or one of ours.
    #[inline]
    pub(crate) fn is_local(&self, ip: Ipv4Addr) -> bool {
        ip.is_loopback() || self.is_assigned(ip)
    }

    /// Whether `ip` is one of the device interface's addresses.
    #[inline]
    pub(crate) fn is_assigned(&self, ip: Ipv4Addr) -> bool {
        self.list.iter().any(|c| c.addr == ip)
    }

    /// Whether `ip` is a broadcast address for us: the limited broadcast or
    /// the directed broadcast of one of our subnets.
    pub(crate) fn is_broadcast(&self, ip: Ipv4Addr) -> bool {
        ip.is_broadcast() || self.list.iter().any(|c| c.broadcast() == Some(ip))
    }

    /// The source address for a datagram to `dst` (RFC 1122 §3.3.4.3, as
    /// Linux's route lookup picks it): 127.0.0.1 towards loopback, the
    /// destination itself if it is ours, else the address whose subnet holds
    /// `dst` (longest prefix), else the first address. `None` when the host
    /// has no address to reach `dst` from.
    pub(crate) fn source_for(&self, dst: Ipv4Addr) -> Option<Ipv4Addr> {
        if dst.is_loopback() {
            return Some(Ipv4Addr::LOCALHOST);
        }
        if self.is_assigned(dst) {
            return Some(dst);
        }
        self.list
            .iter()
            .filter(|c| c.contains(dst))
            .max_by_key(|c| c.prefix_len)
            .or(self.list.first())
            .map(|c| c.addr)
    }
}

/// Where a datagram goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Device,
    Loopback,
}

/// One outbound datagram built by [`Engine::transmit_one`]: its route and length.
type Built = (Route, usize);

/// The buffer a datagram to `route` is built in: the caller's for the device,
/// the engine's own (allocated on first use) for loopback.
fn target<'a>(route: Route, buf: &'a mut [u8], lo: &'a mut Vec<u8>) -> &'a mut [u8] {
    match route {
        Route::Device => buf,
        Route::Loopback => {
            if lo.len() < LOOPBACK_MTU {
                lo.resize(LOOPBACK_MTU, 0);
            }
            &mut lo[..]
        }
    }
}

impl Engine {
    // ----- Addresses -----

    /// The addresses of the device interface, in the order they were added
    /// (the first is the default source address). The loopback interface's
    /// 127.0.0.0/8 is not listed.
    pub fn addresses(&self) -> &[Cidr] {
        self.addrs.list()
    }

    /// The first address of the device interface, or `0.0.0.0` if it has none.
    pub fn addr(&self) -> Ipv4Addr {
        self.addrs
            .list()
            .first()
            .map_or(Ipv4Addr::UNSPECIFIED, |c| c.addr)
    }

    /// The source address of a datagram or connection to `dst` when none is
    /// bound (RFC 1122 §3.3.4.3): 127.0.0.1 towards loopback, `dst` itself if
    /// it is ours, else the address whose subnet holds `dst` (longest
    /// prefix), else the first. `None` when the host has no address.
    pub fn source_for(&self, dst: Ipv4Addr) -> Option<Ipv4Addr> {
        self.addrs.source_for(dst)
    }

    /// Adds an address to the device interface (`ip addr add`).
    ///
    /// Errors: [`Error::InvalidInput`] for a prefix over 32 or an address no
    /// host may have (unspecified, loopback, multicast, broadcast, class E);
    /// [`Error::AddrInUse`] if the host has it already.
    pub fn add_address(&mut self, cidr: Cidr) -> Result<(), Error> {
        let a = cidr.addr;
        if cidr.prefix_len > 32
            || a.is_unspecified()
            || a.is_loopback()
            || a.is_multicast()
            || a.is_broadcast()
            || a.octets()[0] >= 240
        {
            return Err(Error::InvalidInput);
        }
        if self.addrs.is_assigned(a) {
            return Err(Error::AddrInUse);
        }
        self.addrs.list.push(cidr);
        Ok(())
    }

    /// Removes an address from the device interface (`ip addr del`). Its
    /// connections are reset (a RST to the peer, [`Error::ConnectionAborted`]
    /// to the application); listeners bound to it stay, and get nothing until
    /// the address comes back.
    ///
    /// Errors: [`Error::AddrNotAvailable`] if the host does not have it.
    pub fn remove_address(&mut self, now: Instant, addr: Ipv4Addr) -> Result<(), Error> {
        let Some(i) = self.addrs.list.iter().position(|c| c.addr == addr) else {
            return Err(Error::AddrNotAvailable);
        };
        self.addrs.list.remove(i);
        let mut gone: Vec<_> = self
            .conns
            .iter()
            .filter(|((local, _), _)| *local.ip() == addr)
            .map(|(_, &h)| h)
            .collect();
        gone.sort();
        debug!(%addr, connections = gone.len(), "address removed");
        for h in gone {
            if let Ok(tcb) = self.tcb_mut(h)
                && tcb.state != State::Closed
            {
                tcb.abort();
                tcb.error.get_or_insert(Error::ConnectionAborted);
            }
            self.after(now, h);
        }
        Ok(())
    }

    /// The largest datagram towards `dst`: the loopback MTU for a local
    /// destination, the device's otherwise.
    pub(crate) fn route_mtu(&self, dst: Ipv4Addr) -> usize {
        if self.addrs.is_local(dst) {
            LOOPBACK_MTU
        } else {
            self.iface.mtu
        }
    }

    // ----- Input -----

    /// Handles one inbound IPv4 datagram from the device. Anything malformed
    /// is dropped and counted.
    pub fn handle_packet(&mut self, now: Instant, packet: &[u8]) {
        self.stats.rx_packets += 1;
        self.input(now, packet, Route::Device);
    }

    /// Validates a datagram from `via` and hands it to its protocol.
    fn input(&mut self, now: Instant, packet: &[u8], via: Route) {
        if packet.first().is_some_and(|b| b >> 4 != 4) {
            self.stats.rx_not_ipv4 += 1;
            return;
        }
        let Ok(ip) = Ipv4Packet::new_checked(packet) else {
            self.stats.rx_malformed += 1;
            return;
        };
        let checksums = match via {
            Route::Device => self.checksums.clone(),
            Route::Loopback => ChecksumCapabilities::ignored(),
        };
        if checksums.ipv4.rx()
            && ip.version() == 4
            && !crate::checksum::ipv4_ok(&packet[..usize::from(ip.header_len())])
        {
            self.stats.rx_bad_checksum += 1;
            return;
        }
        let (src, dst) = (ip.src_addr(), ip.dst_addr());
        if via == Route::Device {
            // RFC 1122 §3.2.1.3: 127/8 never appears on a wire; a datagram
            // whose source is not one host (broadcast, multicast, unspecified,
            // loopback, class E, or our own address) is silently discarded.
            if dst.is_loopback()
                || src.is_broadcast()
                || src.is_multicast()
                || src.is_unspecified()
                || src.is_loopback()
                || src.octets()[0] >= 240
                || self.addrs.is_assigned(src)
            {
                self.stats.rx_martian += 1;
                return;
            }
        }
        // A broadcast to us is for UDP only.
        let broadcast = self.addrs.is_broadcast(dst)
            && ip.next_header() == IpProtocol::Udp
            && via == Route::Device;
        if !self.addrs.is_local(dst) && !broadcast {
            self.stats.rx_not_for_us += 1;
            return;
        }
        // RFC 1122 §3.3.2: a host MUST reassemble. The whole datagram comes
        // back through here, no longer a fragment.
        if ip.more_frags() || ip.frag_offset() != 0 {
            let datagram = &packet[..usize::from(ip.total_len())];
            if let frag::Push::Reassembled(whole) = self.reassembly.push(now, datagram) {
                self.input(now, &whole, via);
            }
            return;
        }
        let Ok(ip_repr) = Ipv4Repr::parse(&ip, &ChecksumCapabilities::ignored()) else {
            self.stats.rx_malformed += 1;
            return;
        };
        match ip_repr.next_header {
            IpProtocol::Tcp => self.tcp_input(now, &ip_repr, ip.payload(), &checksums),
            IpProtocol::Icmp => self.handle_icmp(now, src, dst, ip.payload(), &checksums),
            IpProtocol::Udp => {
                self.udp_input(now, &ip_repr, packet, ip.payload(), &checksums, broadcast)
            }
            _ => {
                // RFC 1122 §3.2.2.1: a host answers a datagram for a protocol
                // it does not serve with destination unreachable.
                self.stats.rx_unknown_protocol += 1;
                let reason = Icmpv4DstUnreachable::ProtoUnreachable;
                let before = self.icmp.suppressed;
                self.icmp.unreachable(now, packet, reason, &self.checksums);
                self.stats.icmp_suppressed += self.icmp.suppressed - before;
            }
        }
    }

    // ----- Output -----

    /// Writes the next outbound IPv4 datagram for the device into `buf` and
    /// returns its length, or `None` when there is nothing to send. `buf`
    /// must hold at least one MTU.
    ///
    /// Datagrams to a local address (127.0.0.0/8 or one of the host's) never
    /// come out here: they are delivered inside the engine on the way, which
    /// is why a stack talking only to itself must still call this.
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<usize> {
        let mut lo = std::mem::take(&mut self.lo_buf);
        let sent = loop {
            match self.transmit_one(now, buf, &mut lo) {
                None => break None,
                Some((Route::Device, n)) => {
                    // RFC 1122 §3.2.1.3: nothing from or to 127/8 leaves the host.
                    let ip = Ipv4Packet::new_unchecked(&buf[..n]);
                    if ip.src_addr().is_loopback() || ip.dst_addr().is_loopback() {
                        self.stats.tx_martian += 1;
                        continue;
                    }
                    self.stats.tx_packets += 1;
                    break Some(n);
                }
                Some((Route::Loopback, n)) => {
                    self.stats.loopback_packets += 1;
                    self.input(now, &lo[..n], Route::Loopback);
                }
            }
        };
        self.lo_buf = lo;
        sent
    }

    fn route(&self, dst: Ipv4Addr) -> Route {
        if self.addrs.is_local(dst) {
            Route::Loopback
        } else {
            Route::Device
        }
    }

    /// Builds the next datagram, for the device in `buf` or for loopback in
    /// `lo`.
    fn transmit_one(&mut self, now: Instant, buf: &mut [u8], lo: &mut Vec<u8>) -> Option<Built> {
        if let Some(f) = self.frag_out.as_mut() {
            let mtu = self.iface.mtu.min(buf.len());
            if let Some(n) = f.next(&mut buf[..mtu], self.checksums.ipv4.tx()) {
                if f.is_done() {
                    self.frag_out = None;
                }
                return Some((Route::Device, n));
            }
            self.frag_out = None;
        }
        if let Some(ack) = self.owed_acks.pop_front() {
            let len = ack.len();
            let dst = Ipv4Packet::new_unchecked(&ack[..]).dst_addr();
            let route = self.route(dst);
            target(route, buf, lo)[..len].copy_from_slice(&ack);
            if self.spare_acks.len() < MAX_OWED_ACKS {
                self.spare_acks.push(ack);
            }
            return Some((route, len));
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
            let route = self.route(*r.remote.ip());
            let caps = self.caps(route);
            let len = Self::emit_with(
                caps,
                self.config.ttl,
                r.local,
                r.remote,
                &out,
                None,
                target(route, buf, lo),
            );
            return Some((route, len));
        }
        if let Some((local, remote, out)) = self.cookie_synacks.pop_front() {
            let route = self.route(*remote.ip());
            let caps = self.caps(route);
            let len = Self::emit_with(
                caps,
                self.config.ttl,
                local,
                remote,
                &out,
                None,
                target(route, buf, lo),
            );
            return Some((route, len));
        }
        if let Some((src, dst, message)) = self.icmp.poll() {
            let route = self.route(dst);
            let ip = Ipv4Repr {
                src_addr: src,
                dst_addr: dst,
                next_header: IpProtocol::Icmp,
                payload_len: message.len(),
                hop_limit: self.config.ttl,
            };
            let total = 20 + message.len();
            let is_error = matches!(message.first(), Some(&3) | Some(&11));
            if is_error {
                self.stats.icmp_errors_sent += 1;
            }
            if route == Route::Device && total > self.iface.mtu.min(buf.len()) {
                // An echo reply to a large (reassembled) request goes out in
                // fragments, as the request came.
                let mut datagram = vec![0u8; total];
                datagram[20..].copy_from_slice(&message);
                let mut packet = Ipv4Packet::new_unchecked(&mut datagram[..]);
                ip.emit(&mut packet, &ChecksumCapabilities::ignored());
                packet.set_dont_frag(false);
                packet.set_ident(self.next_ip_id());
                self.frag_out = Some(frag::Fragmenter::new(datagram, self.iface.mtu));
                self.stats.frag_created += 1;
                return self.transmit_one(now, buf, lo);
            }
            let out = target(route, buf, lo);
            out[20..total].copy_from_slice(&message);
            ip.emit(
                &mut Ipv4Packet::new_unchecked(&mut out[..total]),
                self.caps(route),
            );
            return Some((route, total));
        }
        if let Some((src, dst, ttl, data)) = self.udp_next() {
            let route = self.route(*dst.ip());
            let total = 20 + crate::udp::HEADER_LEN + data.len();
            if route == Route::Device && total > self.iface.mtu.min(buf.len()) {
                // RFC 791 §3.2: too large for the link, it goes in fragments.
                // The UDP checksum covers the whole datagram, so it is
                // computed here even where the device would fill it.
                let mut datagram = vec![0u8; total];
                Self::udp_emit(
                    &ChecksumCapabilities::default(),
                    src,
                    dst,
                    ttl,
                    &data,
                    &mut datagram,
                );
                let mut packet = Ipv4Packet::new_unchecked(&mut datagram[..]);
                packet.set_dont_frag(false);
                packet.set_ident(self.next_ip_id());
                self.frag_out = Some(frag::Fragmenter::new(datagram, self.iface.mtu));
                self.stats.frag_created += 1;
                return self.transmit_one(now, buf, lo);
            }
            let len = Self::udp_emit(
                self.caps(route),
                src,
                dst,
                ttl,
                &data,
                target(route, buf, lo),
            );
            return Some((route, len));
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
            let (route, mtu, caps) = if self.addrs.is_local(*tcb.remote.ip()) {
                (Route::Loopback, LOOPBACK_MTU, &self.lo_checksums)
            } else {
                (Route::Device, self.iface.mtu, &self.checksums)
            };
            let out_buf = target(route, buf, lo);
            let mtu = mtu.min(out_buf.len());
            let len = Self::emit_for(caps, tcb, &out, &mut out_buf[..mtu]);
            self.after(now, h);
            return Some((route, len));
        }
        None
    }

    /// The Identification of the next datagram that may be fragmented (RFC
    /// 791 §3.2; RFC 6864: unique per source, destination and protocol
    /// while it may be alive, which a counter from a random start gives).
    pub(crate) fn next_ip_id(&mut self) -> u16 {
        self.ip_id = self.ip_id.wrapping_add(1);
        self.ip_id
    }

    /// The checksum work for a route: none on loopback.
    fn caps(&self, route: Route) -> &ChecksumCapabilities {
        match route {
            Route::Loopback => &self.lo_checksums,
            Route::Device => &self.checksums,
        }
    }

    /// The checksum work for a datagram to `dst`.
    pub(crate) fn caps_to(&self, dst: Ipv4Addr) -> &ChecksumCapabilities {
        self.caps(self.route(dst))
    }
}
