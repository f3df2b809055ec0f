//! UDP (RFC 768, RFC 1122 §4.1): datagram sockets bound to an address and
//! port, optionally connected to one peer.
//!
//! Each socket has a bounded receive queue (datagrams beyond it are dropped
//! and counted, as a kernel's `SO_RCVBUF`), and its sent datagrams wait in
//! the engine's output queue, bounded per socket by its send buffer. A
//! datagram for no socket is answered with ICMP port unreachable
//! (rate-limited, RFC 1122 §4.1.3.1); an ICMP error about a datagram a
//! connected socket sent to its peer is reported on its next call, as Linux
//! does (`ConnectionRefused` for port unreachable). Datagrams larger than the
//! route's MTU are fragmented (ip/frag.rs).

use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddrV4};

use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{Icmpv4DstUnreachable, IpAddress, IpProtocol, Ipv4Repr, UdpPacket};
use tracing::trace;

use crate::icmp::IcmpErrorKind;
use crate::tcp::connection::{EV_READ, EV_WRITE};
use crate::{Engine, Error, Instant, Socket, SocketHandle};

/// The UDP header.
pub(crate) const HEADER_LEN: usize = 8;

/// The largest UDP payload in an IPv4 datagram: 65 535 − 20 − 8.
pub const MAX_UDP_PAYLOAD: usize = 65535 - 20 - HEADER_LEN;

/// Bytes a queued datagram is charged beyond its payload, so a flood of tiny
/// datagrams also fills a receive buffer (the kernel charges its `skb`).
const DATAGRAM_OVERHEAD: usize = 64;

/// A received datagram waiting to be read.
#[derive(Debug)]
struct Datagram {
    from: SocketAddrV4,
    data: Vec<u8>,
}

/// One UDP socket.
#[derive(Debug)]
pub(crate) struct UdpSocket {
    /// The bound address: its IP may be the wildcard.
    pub(crate) local: SocketAddrV4,
    /// The peer of a connected socket: it sends there by default and hears
    /// only from there.
    pub(crate) remote: Option<SocketAddrV4>,
    rx: VecDeque<Datagram>,
    rx_bytes: usize,
    rx_limit: usize,
    /// Bytes of this socket's datagrams in the engine's output queue.
    tx_bytes: usize,
    tx_limit: usize,
    /// `SO_BROADCAST`: may send to a broadcast address.
    pub(crate) broadcast: bool,
    /// `IP_TTL`.
    pub(crate) ttl: u8,
    /// An ICMP error about what the connected socket sent, reported once.
    pub(crate) error: Option<Error>,
}

impl UdpSocket {
    pub(crate) fn readable(&self) -> bool {
        !self.rx.is_empty() || self.error.is_some()
    }

    pub(crate) fn writable(&self) -> bool {
        self.tx_bytes < self.tx_limit
    }

    /// Bytes charged to the receive and send buffers now.
    pub(crate) fn queued(&self) -> (usize, usize) {
        (self.rx_bytes, self.tx_bytes)
    }
}

/// A datagram waiting to go out.
#[derive(Debug)]
pub(crate) struct UdpOut {
    socket: SocketHandle,
    src: SocketAddrV4,
    dst: SocketAddrV4,
    ttl: u8,
    data: Vec<u8>,
}

impl Engine {
    fn udp(&self, h: SocketHandle) -> Result<&UdpSocket, Error> {
        match self.slot(h).and_then(|s| s.socket.as_ref()) {
            Some(Socket::Udp(u)) => Ok(u),
            Some(_) => Err(Error::InvalidInput),
            None => Err(Error::InvalidHandle),
        }
    }

    fn udp_mut(&mut self, h: SocketHandle) -> Result<&mut UdpSocket, Error> {
        match self.slot_mut(h).and_then(|s| s.socket.as_mut()) {
            Some(Socket::Udp(u)) => Ok(u),
            Some(_) => Err(Error::InvalidInput),
            None => Err(Error::InvalidHandle),
        }
    }

    /// Whether a UDP socket holds `ip:port` (or overlaps it).
    fn udp_conflict(&self, ip: Ipv4Addr, port: u16) -> bool {
        self.udp_ports.get(&port).is_some_and(|group| {
            group.iter().any(|&h| {
                self.udp(h)
                    .is_ok_and(|u| Self::addrs_overlap(ip, *u.local.ip()))
            })
        })
    }

    /// A free UDP port from the ephemeral range.
    fn udp_ephemeral_port(&mut self) -> Result<u16, Error> {
        let (lo, hi) = self.config.ephemeral_ports;
        let span = u32::from(hi.saturating_sub(lo)) + 1;
        let start = self.secret.next_u64() as u32;
        (0..span)
            .map(|i| lo.wrapping_add((start.wrapping_add(i) % span) as u16))
            .find(|p| !self.udp_ports.contains_key(p))
            .ok_or(Error::AddrNotAvailable)
    }

    /// Opens a UDP socket bound to `local` (port 0: an ephemeral port; the
    /// address may be `0.0.0.0`, 127.0.0.0/8 or one of the host's).
    ///
    /// Errors: [`Error::AddrNotAvailable`] for an address not the host's (or
    /// no free port), [`Error::AddrInUse`] if a socket holds the address and
    /// port.
    pub fn udp_bind(&mut self, local: SocketAddrV4) -> Result<SocketHandle, Error> {
        self.check_local(local)?;
        let port = match local.port() {
            0 => self.udp_ephemeral_port()?,
            p if self.udp_conflict(*local.ip(), p) => return Err(Error::AddrInUse),
            p => p,
        };
        let socket = UdpSocket {
            local: SocketAddrV4::new(*local.ip(), port),
            remote: None,
            rx: VecDeque::new(),
            rx_bytes: 0,
            rx_limit: self.config.udp_recv_buffer,
            tx_bytes: 0,
            tx_limit: self.config.udp_send_buffer,
            broadcast: false,
            ttl: self.config.ttl,
            error: None,
        };
        let h = self.alloc_slot(Socket::Udp(Box::new(socket)));
        self.udp_ports.entry(port).or_default().push(h);
        Ok(h)
    }

    /// Checks a destination for a datagram from a socket bound to `local`
    /// and picks the source address (RFC 1122 §3.3.4.3).
    fn udp_route(
        &self,
        local: Ipv4Addr,
        broadcast_ok: bool,
        dst: SocketAddrV4,
    ) -> Result<Ipv4Addr, Error> {
        let ip = *dst.ip();
        if dst.port() == 0 || ip.is_unspecified() || ip.is_multicast() {
            return Err(Error::InvalidInput);
        }
        // RFC 1122 §4.1.3.5 / Linux: broadcast only with SO_BROADCAST (EACCES).
        if self.addrs.is_broadcast(ip) && !broadcast_ok {
            return Err(Error::PermissionDenied);
        }
        let src = if local.is_unspecified() {
            self.addrs.source_for(ip).ok_or(Error::NetworkUnreachable)?
        } else {
            local
        };
        if src.is_loopback() && !self.addrs.is_local(ip) {
            return Err(Error::InvalidInput);
        }
        Ok(src)
    }

    /// Connects a UDP socket to `remote`: it sends there by default and
    /// hears only from there. A socket bound to `0.0.0.0` takes the source
    /// address of the route, as Linux does.
    pub fn udp_connect(&mut self, h: SocketHandle, remote: SocketAddrV4) -> Result<(), Error> {
        let u = self.udp(h)?;
        let src = self.udp_route(*u.local.ip(), u.broadcast, remote)?;
        let u = self.udp_mut(h)?;
        u.local.set_ip(src);
        u.remote = Some(remote);
        u.error = None;
        Ok(())
    }

    /// Queues one datagram: to `to`, or to the connected peer when `to` is
    /// `None`. Returns the bytes taken (all of `data`).
    ///
    /// Errors: [`Error::WouldBlock`] when the socket's send buffer is full;
    /// [`Error::NotConnected`] without `to` on an unconnected socket;
    /// [`Error::MessageTooLong`] beyond 65 507 bytes;
    /// [`Error::PermissionDenied`] to a broadcast address without
    /// `SO_BROADCAST`; [`Error::InvalidInput`] for port 0, a multicast or
    /// unspecified address; a pending ICMP error of a connected socket.
    pub fn udp_send(
        &mut self,
        now: Instant,
        h: SocketHandle,
        data: &[u8],
        to: Option<SocketAddrV4>,
    ) -> Result<usize, Error> {
        let _ = now;
        let u = self.udp(h)?;
        if data.len() > MAX_UDP_PAYLOAD {
            return Err(Error::MessageTooLong);
        }
        let dst = match (to, u.remote) {
            (Some(to), _) => to,
            (None, Some(remote)) => remote,
            (None, None) => return Err(Error::NotConnected),
        };
        let src = self.udp_route(*u.local.ip(), u.broadcast, dst)?;
        let (port, ttl) = (u.local.port(), u.ttl);
        let u = self.udp_mut(h)?;
        if let Some(e) = u.error.take() {
            return Err(e);
        }
        if !u.writable() {
            return Err(Error::WouldBlock);
        }
        u.tx_bytes += data.len() + DATAGRAM_OVERHEAD;
        self.udp_tx.push_back(UdpOut {
            socket: h,
            src: SocketAddrV4::new(src, port),
            dst,
            ttl,
            data: data.to_vec(),
        });
        Ok(data.len())
    }

    /// Takes (or, with `peek`, copies) the next datagram into `buf`: the
    /// bytes copied (a longer datagram is cut, and the rest lost unless
    /// peeking) and the sender.
    ///
    /// Errors: [`Error::WouldBlock`] when none is queued; a pending ICMP
    /// error of a connected socket (e.g. [`Error::ConnectionRefused`]),
    /// reported once.
    pub fn udp_recv(
        &mut self,
        h: SocketHandle,
        buf: &mut [u8],
        peek: bool,
    ) -> Result<(usize, SocketAddrV4), Error> {
        let u = self.udp_mut(h)?;
        if let Some(e) = u.error.take() {
            return Err(e);
        }
        let d = u.rx.front().ok_or(Error::WouldBlock)?;
        let n = d.data.len().min(buf.len());
        buf[..n].copy_from_slice(&d.data[..n]);
        let from = d.from;
        if !peek {
            let d = u.rx.pop_front().expect("front exists");
            u.rx_bytes -= d.data.len() + DATAGRAM_OVERHEAD;
        }
        Ok((n, from))
    }

    /// The size of the next datagram and its sender, without taking it; a
    /// pending ICMP error first, as [`udp_recv`](Engine::udp_recv).
    pub fn udp_peek_len(&mut self, h: SocketHandle) -> Result<(usize, SocketAddrV4), Error> {
        let u = self.udp_mut(h)?;
        if let Some(e) = u.error.take() {
            return Err(e);
        }
        let d = u.rx.front().ok_or(Error::WouldBlock)?;
        Ok((d.data.len(), d.from))
    }

    /// Sets `SO_BROADCAST`: whether the socket may send to a broadcast address.
    pub fn set_broadcast(&mut self, h: SocketHandle, on: bool) -> Result<(), Error> {
        self.udp_mut(h)?.broadcast = on;
        Ok(())
    }

    /// `SO_BROADCAST`.
    pub fn broadcast(&self, h: SocketHandle) -> Result<bool, Error> {
        Ok(self.udp(h)?.broadcast)
    }

    /// Sets a UDP socket's receive buffer (`SO_RCVBUF`), bytes.
    pub fn set_udp_recv_buffer(&mut self, h: SocketHandle, bytes: usize) -> Result<(), Error> {
        self.udp_mut(h)?.rx_limit = bytes.max(1);
        Ok(())
    }

    /// Sets a UDP socket's send buffer (`SO_SNDBUF`), bytes.
    pub fn set_udp_send_buffer(&mut self, h: SocketHandle, bytes: usize) -> Result<(), Error> {
        self.udp_mut(h)?.tx_limit = bytes.max(1);
        Ok(())
    }

    /// A UDP socket's (receive, send) buffer sizes.
    pub fn udp_buffers(&self, h: SocketHandle) -> Result<(usize, usize), Error> {
        let u = self.udp(h)?;
        Ok((u.rx_limit, u.tx_limit))
    }

    /// Removes a closed UDP socket from the port table.
    pub(crate) fn udp_unlink(&mut self, h: SocketHandle, port: u16) {
        if let Some(group) = self.udp_ports.get_mut(&port) {
            group.retain(|&x| x != h);
            if group.is_empty() {
                self.udp_ports.remove(&port);
            }
        }
    }

    // ----- Input -----

    /// A UDP datagram for us (RFC 768, RFC 1122 §4.1.3): checked and queued
    /// at its socket, or answered with port unreachable.
    pub(crate) fn udp_input(
        &mut self,
        now: Instant,
        ip_repr: &Ipv4Repr,
        packet: &[u8],
        payload: &[u8],
        checksums: &ChecksumCapabilities,
        broadcast: bool,
    ) {
        let (src, dst) = (
            IpAddress::Ipv4(ip_repr.src_addr),
            IpAddress::Ipv4(ip_repr.dst_addr),
        );
        let Ok(udp) = UdpPacket::new_checked(payload) else {
            self.stats.rx_malformed += 1;
            return;
        };
        // RFC 768: a zero checksum means the sender computed none.
        if checksums.udp.rx() && !udp.verify_checksum(&src, &dst) {
            self.stats.rx_bad_checksum += 1;
            return;
        }
        let from = SocketAddrV4::new(ip_repr.src_addr, udp.src_port());
        let to = SocketAddrV4::new(ip_repr.dst_addr, udp.dst_port());
        let data = udp.payload();
        let Some(group) = self.udp_ports.get(&to.port()) else {
            self.udp_unreachable(now, packet, broadcast);
            return;
        };
        let mut targets: Vec<SocketHandle> = Vec::new();
        if broadcast {
            // Every socket on the port that hears the wildcard.
            targets.extend(group.iter().copied().filter(|&h| {
                self.udp(h).is_ok_and(|u| {
                    (u.local.ip().is_unspecified() || *u.local.ip() == *to.ip())
                        && u.remote.is_none_or(|r| r == from)
                })
            }));
        } else {
            // The best match (as Linux's `compute_score`): a connected
            // socket's peer must be the sender; an exact address and a
            // connection each count.
            let best = group
                .iter()
                .filter_map(|&h| {
                    let u = self.udp(h).ok()?;
                    let ip = *u.local.ip();
                    if !(ip == *to.ip() || ip.is_unspecified()) {
                        return None;
                    }
                    match u.remote {
                        Some(r) if r != from => None,
                        r => Some((
                            usize::from(ip == *to.ip()) + 2 * usize::from(r.is_some()),
                            h,
                        )),
                    }
                })
                .max_by_key(|&(score, _)| score);
            targets.extend(best.map(|(_, h)| h));
        }
        if targets.is_empty() {
            self.udp_unreachable(now, packet, broadcast);
            return;
        }
        for h in targets {
            let Ok(u) = self.udp_mut(h) else {
                continue;
            };
            let cost = data.len() + DATAGRAM_OVERHEAD;
            if u.rx_bytes + cost > u.rx_limit {
                self.stats.udp_rx_dropped += 1;
                continue;
            }
            u.rx_bytes += cost;
            u.rx.push_back(Datagram {
                from,
                data: data.to_vec(),
            });
            self.stats.udp_rx += 1;
            self.raise(h, EV_READ);
        }
    }

    /// RFC 1122 §4.1.3.1: port unreachable for a datagram no socket takes
    /// (never for a broadcast, §3.2.2).
    fn udp_unreachable(&mut self, now: Instant, packet: &[u8], broadcast: bool) {
        self.stats.udp_no_port += 1;
        if broadcast {
            return;
        }
        trace!("UDP datagram for no socket");
        let before = self.icmp.suppressed;
        self.icmp.unreachable(
            now,
            packet,
            Icmpv4DstUnreachable::PortUnreachable,
            &self.checksums,
        );
        self.stats.icmp_suppressed += self.icmp.suppressed - before;
    }

    /// An ICMP error about a datagram we sent from `local` to `remote`:
    /// reported to the socket connected there (Linux reports errors to
    /// unconnected sockets only with `IP_RECVERR`).
    pub(crate) fn udp_icmp_error(
        &mut self,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        kind: IcmpErrorKind,
    ) {
        let error = match kind {
            IcmpErrorKind::Refused => Error::ConnectionRefused,
            IcmpErrorKind::Unreachable => Error::HostUnreachable,
            // The datagram was fragmented locally already; nothing to report.
            IcmpErrorKind::FragmentationNeeded(_) => return,
        };
        let Some(group) = self.udp_ports.get(&local.port()) else {
            return;
        };
        let hit: Vec<SocketHandle> = group
            .iter()
            .copied()
            .filter(|&h| {
                self.udp(h).is_ok_and(|u| {
                    u.remote == Some(remote)
                        && (u.local.ip().is_unspecified() || *u.local.ip() == *local.ip())
                })
            })
            .collect();
        for h in hit {
            if let Ok(u) = self.udp_mut(h) {
                u.error = Some(error);
            }
            self.raise(h, EV_READ | EV_WRITE);
        }
    }

    // ----- Output -----

    /// Takes the next queued datagram, releasing its room in its socket's
    /// send buffer: (source, destination, TTL, payload).
    pub(crate) fn udp_next(&mut self) -> Option<(SocketAddrV4, SocketAddrV4, u8, Vec<u8>)> {
        let d = self.udp_tx.pop_front()?;
        if let Ok(u) = self.udp_mut(d.socket) {
            let was_full = !u.writable();
            u.tx_bytes -= d.data.len() + DATAGRAM_OVERHEAD;
            if was_full && u.writable() {
                self.raise(d.socket, EV_WRITE);
            }
        }
        self.stats.udp_tx += 1;
        Some((d.src, d.dst, d.ttl, d.data))
    }

    /// Writes the IPv4 datagram of a UDP payload into `buf` (which must hold
    /// it): header, UDP header, payload, checksums as `caps` asks.
    pub(crate) fn udp_emit(
        caps: &ChecksumCapabilities,
        src: SocketAddrV4,
        dst: SocketAddrV4,
        ttl: u8,
        data: &[u8],
        buf: &mut [u8],
    ) -> usize {
        let udp_len = HEADER_LEN + data.len();
        let total = 20 + udp_len;
        let ip = Ipv4Repr {
            src_addr: *src.ip(),
            dst_addr: *dst.ip(),
            next_header: IpProtocol::Udp,
            payload_len: udp_len,
            hop_limit: ttl,
        };
        ip.emit(
            &mut smoltcp::wire::Ipv4Packet::new_unchecked(&mut buf[..total]),
            caps,
        );
        let mut udp = UdpPacket::new_unchecked(&mut buf[20..total]);
        udp.set_src_port(src.port());
        udp.set_dst_port(dst.port());
        udp.set_len(udp_len as u16);
        udp.set_checksum(0);
        udp.payload_mut()[..data.len()].copy_from_slice(data);
        if caps.udp.tx() {
            udp.fill_checksum(&IpAddress::Ipv4(*src.ip()), &IpAddress::Ipv4(*dst.ip()));
        }
        total
    }
}
