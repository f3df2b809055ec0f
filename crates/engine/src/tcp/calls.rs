//! The TCP socket calls of the engine: listen, accept, connect, send,
//! receive, shutdown, close, and what a socket reports of itself.

use std::net::{Ipv4Addr, SocketAddrV4};

use tracing::debug;

use crate::tcp::connection::{Tcb, TcpInfo};
use crate::tcp::listener::Listener;
use crate::{Engine, Error, Instant, Seq, Socket, SocketHandle, State};

/// Counters of the ephemeral port search (RFC 6056 §3.3.4's table `G`).
const PERTURB_TABLE: usize = 4096;

impl Engine {
    /// `bind(2)`'s address check: the unspecified address, 127.0.0.0/8 or
    /// one of the host's addresses (else [`Error::AddrNotAvailable`]).
    pub(crate) fn check_local(&self, local: SocketAddrV4) -> Result<(), Error> {
        if !local.ip().is_unspecified() && !self.addrs.is_local(*local.ip()) {
            return Err(Error::AddrNotAvailable);
        }
        Ok(())
    }

    /// Whether a listener on `ip` would take segments a listener on `other`
    /// takes: the same address, or either is the wildcard.
    pub(crate) fn addrs_overlap(ip: Ipv4Addr, other: Ipv4Addr) -> bool {
        ip == other || ip.is_unspecified() || other.is_unspecified()
    }

    /// Whether a listener holds `ip:port` (or overlaps it).
    pub(crate) fn listener_conflict(&self, ip: Ipv4Addr, port: u16) -> bool {
        self.listeners
            .get(&port)
            .is_some_and(|group| group.iter().any(|&(_, l)| Self::addrs_overlap(ip, l)))
    }

    /// Opens a listener on `local` (port 0 picks an ephemeral port) with room for
    /// `backlog` connections in each of its SYN and accept queues. A listener
    /// on `0.0.0.0` takes connections to every address of the host,
    /// 127.0.0.0/8 included; one on a given address only those to it, and is
    /// preferred to the wildcard for them.
    ///
    /// Errors: [`Error::AddrInUse`] if a listener holds the address and
    /// port, [`Error::AddrNotAvailable`] if the address is not the host's.
    pub fn listen(&mut self, local: SocketAddrV4, backlog: usize) -> Result<SocketHandle, Error> {
        self.check_local(local)?;
        let port = match local.port() {
            0 => self.ephemeral_port()?,
            p if self.listener_conflict(*local.ip(), p) => return Err(Error::AddrInUse),
            p => p,
        };
        Ok(self.add_listener(SocketAddrV4::new(*local.ip(), port), backlog))
    }

    /// Makes a listener on `local` (its checks done).
    pub(crate) fn add_listener(&mut self, local: SocketAddrV4, backlog: usize) -> SocketHandle {
        let backlog = backlog.clamp(1, self.config.max_backlog.max(1));
        let h = self.alloc_slot(Socket::Listener(Box::new(Listener::new(local, backlog))));
        self.listeners
            .entry(local.port())
            .or_default()
            .push((h, *local.ip()));
        h
    }

    /// Takes the next established connection from a listener's accept queue, or
    /// [`Error::WouldBlock`] when there is none.
    pub fn accept(&mut self, listener: SocketHandle) -> Result<SocketHandle, Error> {
        let l = self.listener_mut(listener)?;
        let h = l.accept_queue.pop_front().ok_or(Error::WouldBlock)?;
        if let Some(slot) = self.slot_mut(h) {
            slot.in_accept_queue = false;
        }
        if let Ok(tcb) = self.tcb_mut(h) {
            tcb.parent = None;
        }
        Ok(h)
    }

    /// Finds an ephemeral port for a listener or a bound socket: one no
    /// listener, bound socket or connection uses.
    pub(crate) fn ephemeral_port(&mut self) -> Result<u16, Error> {
        let (lo, hi) = self.config.ephemeral_ports;
        let span = u32::from(hi.saturating_sub(lo)) + 1;
        for _ in 0..span {
            let port = self.next_port;
            self.next_port = if port >= hi || port < lo {
                lo
            } else {
                port + 1
            };
            if port < lo
                || port > hi
                || self.listeners.contains_key(&port)
                || self.bound_ports.contains(port)
            {
                continue;
            }
            return Ok(port);
        }
        Err(Error::AddrNotAvailable)
    }

    /// The ephemeral port of a connection from `local` to `remote` (RFC 6056
    /// §3.3.4, Algorithm 4, as Linux's `__inet_hash_connect`): the search
    /// starts at a keyed hash of the addresses and the remote port, moved on
    /// by a counter the hash also picks, so the ports towards one busy
    /// destination do not use up those for the others, and a peer cannot
    /// predict them. A port is taken if its 4-tuple is free, or held by a
    /// TIME-WAIT connection that timestamps make safe to reuse
    /// ([`Config::tw_reuse`](crate::Config::tw_reuse), RFC 6191).
    fn connect_port(
        &mut self,
        now: Instant,
        local: Ipv4Addr,
        remote: SocketAddrV4,
    ) -> Result<u16, Error> {
        let (lo, hi) = self.config.ephemeral_ports;
        let span = u32::from(hi.saturating_sub(lo)) + 1;
        let (f, g) = self.secret.port_offsets(local, remote);
        if self.port_perturb.is_empty() {
            self.port_perturb = vec![0; PERTURB_TABLE];
        }
        let index = g % PERTURB_TABLE;
        let start = f.wrapping_add(self.port_perturb[index]);
        for i in 0..span {
            let port = lo.wrapping_add((start.wrapping_add(i) % span) as u16);
            if self.listeners.contains_key(&port) || self.bound_ports.contains(port) {
                continue;
            }
            let tuple = (SocketAddrV4::new(local, port), remote);
            match self.conns.get(&tuple) {
                None => {}
                Some(&h) if self.tw_reuse_ok(now, h) => {
                    self.free_slot(h);
                    self.stats.time_wait_reused += 1;
                }
                Some(_) => continue,
            }
            self.port_perturb[index] = self.port_perturb[index].wrapping_add(i + 1);
            return Ok(port);
        }
        Err(Error::AddrNotAvailable)
    }

    /// Whether connection `h`, in TIME-WAIT, may give its 4-tuple to a new
    /// connection of ours.
    fn tw_reuse_ok(&self, now: Instant, h: SocketHandle) -> bool {
        self.config.tw_reuse && self.tcb(h).is_ok_and(|t| t.tw_reusable(now))
    }

    /// Starts an active open to `remote` from an ephemeral port (RFC 9293 §3.10.1).
    /// The SYN goes out with the next [`poll_transmit`](Engine::poll_transmit);
    /// the handle becomes writable when the connection is established or failed
    /// (see [`connect_result`](Engine::connect_result)).
    pub fn connect(&mut self, now: Instant, remote: SocketAddrV4) -> Result<SocketHandle, Error> {
        self.connect_from(now, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0), remote)
    }

    /// Like [`connect`](Engine::connect), from a given local address and port
    /// (port 0: ephemeral).
    pub fn connect_from(
        &mut self,
        now: Instant,
        local: SocketAddrV4,
        remote: SocketAddrV4,
    ) -> Result<SocketHandle, Error> {
        self.check_local(local)?;
        // RFC 1122 §4.2.3.10 / RFC 9293 §3.9.1.1: no OPEN to a broadcast or
        // multicast address (the limited broadcast, our subnets', or class D).
        let dst = *remote.ip();
        if remote.port() == 0
            || dst.is_unspecified()
            || dst.is_multicast()
            || self.addrs.is_broadcast(dst)
        {
            return Err(Error::InvalidInput);
        }
        // The source address by route (RFC 1122 §3.3.4.3).
        let src = match *local.ip() {
            ip if ip.is_unspecified() => self
                .addrs
                .source_for(dst)
                .ok_or(Error::NetworkUnreachable)?,
            ip => ip,
        };
        // A loopback source reaches only the host itself (Linux: EINVAL).
        if src.is_loopback() && !self.addrs.is_local(dst) {
            return Err(Error::InvalidInput);
        }
        let port = match local.port() {
            0 => self.connect_port(now, src, remote)?,
            p => p,
        };
        let local = SocketAddrV4::new(src, port);
        if let Some(&old) = self.conns.get(&(local, remote)) {
            if !self.tw_reuse_ok(now, old) {
                return Err(Error::AddrInUse);
            }
            self.free_slot(old);
            self.stats.time_wait_reused += 1;
        }
        let iss = self.secret.isn(now, local, remote);
        let mut tcb = Tcb::connect(&self.config, local, remote, iss, self.route_mtu(dst));
        tcb.start(now, &self.config, self.secret.ts_offset(local, remote));
        let h = self.alloc_slot(Socket::Conn(Box::new(tcb)));
        self.conns.insert((local, remote), h);
        self.after(now, h);
        Ok(h)
    }

    /// The outcome of a connect so far: `Ok(true)` established, `Ok(false)` still
    /// in progress, or the error that ended it (e.g. [`Error::ConnectionRefused`]).
    pub fn connect_result(&self, h: SocketHandle) -> Result<bool, Error> {
        let tcb = self.tcb(h)?;
        if let Some(e) = tcb.error {
            return Err(e);
        }
        Ok(match tcb.state {
            State::SynSent | State::SynReceived => false,
            State::Closed => return Err(Error::NotConnected),
            _ => true,
        })
    }

    /// Copies as much of `data` as fits into the connection's send buffer.
    /// [`Error::WouldBlock`] when it is full or the handshake is not done;
    /// [`Error::BrokenPipe`] after [`shutdown`](Engine::shutdown).
    pub fn send(&mut self, now: Instant, h: SocketHandle, data: &[u8]) -> Result<usize, Error> {
        let n = self.tcb_mut(h)?.send(now, data)?;
        self.after(now, h);
        Ok(n)
    }

    /// Copies received bytes into `buf`. `Ok(0)` is the end of the stream (the
    /// peer's FIN); [`Error::WouldBlock`] when nothing is there yet.
    pub fn recv(&mut self, now: Instant, h: SocketHandle, buf: &mut [u8]) -> Result<usize, Error> {
        let n = self.tcb_mut(h)?.recv(now, buf, false)?;
        self.after(now, h);
        Ok(n)
    }

    /// Like [`recv`](Engine::recv) but leaves the bytes in the buffer.
    pub fn peek(&mut self, h: SocketHandle, buf: &mut [u8]) -> Result<usize, Error> {
        self.tcb_mut(h)?.recv(Instant::ZERO, buf, true)
    }

    /// Closes the sending direction: a FIN follows the data already written.
    pub fn shutdown(&mut self, now: Instant, h: SocketHandle) -> Result<(), Error> {
        self.tcb_mut(h)?.shutdown_write()?;
        self.after(now, h);
        Ok(())
    }

    /// Gives the handle up. A connection closes gracefully (FIN after the data),
    /// or with a RST if received data was left unread (RFC 2525 §2.17); it lives
    /// on in the engine until the close completes. A listener closes at once and
    /// resets the connections it had not handed out.
    pub fn close(&mut self, now: Instant, h: SocketHandle) {
        let too_many_orphans = self.orphans >= self.config.max_orphans;
        match self.slot_mut(h).and_then(|s| s.socket.as_mut()) {
            Some(Socket::Conn(tcb)) => {
                if too_many_orphans {
                    // Linux's `tcp_max_orphans`: too many closed connections
                    // still hold memory; this one is reset instead of joining them.
                    debug!(parent: tcb.span(), "too many orphans: reset");
                    tcb.abort();
                    tcb.released = true;
                    self.stats.orphans_reset += 1;
                } else {
                    tcb.release(now);
                }
                self.after(now, h);
            }
            Some(Socket::Listener(l)) => {
                let mut pending: Vec<_> = l.accept_queue.drain(..).collect();
                // The embryonic connections (SYN-RECEIVED) are not handed out either:
                // reset them too rather than let them retransmit SYN-ACKs for a
                // listener that is gone (RFC 9293 §3.10.5, ABORT in SYN-RECEIVED).
                let mut embryos: Vec<_> = self
                    .conns
                    .values()
                    .copied()
                    .filter(|&c| !pending.contains(&c))
                    .filter(|&c| self.tcb(c).is_ok_and(|t| t.parent == Some(h)))
                    .collect();
                embryos.sort();
                pending.extend(embryos);
                self.free_slot(h);
                for c in pending {
                    // Detach them from the listener, or `after` would wait for it
                    // to take them and never free them.
                    if let Some(slot) = self.slot_mut(c) {
                        slot.in_accept_queue = false;
                    }
                    if let Ok(tcb) = self.tcb_mut(c) {
                        tcb.abort();
                        tcb.released = true;
                        tcb.parent = None;
                    }
                    self.after(now, c);
                }
            }
            // A UDP socket goes at once; its datagrams already queued still
            // go out, as a kernel's already in the device queue.
            Some(Socket::Udp(_)) => self.free_slot(h),
            None => {}
        }
    }

    /// Aborts a connection: RST to the peer, and the handle is given up.
    /// A listener or UDP socket is closed.
    pub fn abort(&mut self, now: Instant, h: SocketHandle) {
        if let Ok(tcb) = self.tcb_mut(h) {
            tcb.abort();
            tcb.error.get_or_insert(Error::ConnectionAborted);
            tcb.released = true;
            self.after(now, h);
        } else {
            self.close(now, h);
        }
    }

    /// Turns Nagle's algorithm off (`true`) or on (RFC 896).
    pub fn set_nodelay(&mut self, h: SocketHandle, nodelay: bool) -> Result<(), Error> {
        self.tcb_mut(h)?.nodelay = nodelay;
        Ok(())
    }

    /// Whether Nagle's algorithm is off.
    pub fn nodelay(&self, h: SocketHandle) -> Result<bool, Error> {
        Ok(self.tcb(h)?.nodelay)
    }

    /// The local address of a socket.
    pub fn local_addr(&self, h: SocketHandle) -> Result<SocketAddrV4, Error> {
        match self.slot(h).and_then(|s| s.socket.as_ref()) {
            Some(Socket::Conn(tcb)) => Ok(tcb.local),
            Some(Socket::Listener(l)) => Ok(l.local),
            Some(Socket::Udp(u)) => Ok(u.local),
            None => Err(Error::InvalidHandle),
        }
    }

    /// The remote address of a connection (or a connected UDP socket:
    /// [`Error::NotConnected`] if it is not).
    pub fn peer_addr(&self, h: SocketHandle) -> Result<SocketAddrV4, Error> {
        if let Some(Socket::Udp(u)) = self.slot(h).and_then(|s| s.socket.as_ref()) {
            return u.remote.ok_or(Error::NotConnected);
        }
        Ok(self.tcb(h)?.remote)
    }

    /// The state of a connection.
    pub fn state(&self, h: SocketHandle) -> Result<State, Error> {
        Ok(self.tcb(h)?.state)
    }

    /// Whether a read on the connection (or an accept on the listener) would not block.
    pub fn is_readable(&self, h: SocketHandle) -> bool {
        match self.slot(h).and_then(|s| s.socket.as_ref()) {
            Some(Socket::Conn(tcb)) => tcb.readable(),
            Some(Socket::Listener(l)) => !l.accept_queue.is_empty(),
            Some(Socket::Udp(u)) => u.readable(),
            None => true,
        }
    }

    /// Whether a write on the connection would not block (or a connect has finished).
    pub fn is_writable(&self, h: SocketHandle) -> bool {
        match self.slot(h).and_then(|s| s.socket.as_ref()) {
            Some(Socket::Conn(tcb)) => tcb.writable(),
            Some(Socket::Udp(u)) => u.writable(),
            _ => true,
        }
    }

    /// Whether [`recv`](Engine::recv) into a non-empty buffer would return
    /// [`Error::WouldBlock`] now: a connection with nothing to read, no FIN
    /// received and no error to report. `false` for any other socket or a
    /// stale handle (the call itself says what it is). It reads no clock and
    /// changes nothing, so a front end can park a reader without a call.
    pub fn recv_would_block(&self, h: SocketHandle) -> bool {
        self.tcb(h).is_ok_and(|t| t.recv_would_block())
    }

    /// Bytes that can be read now without blocking.
    pub fn recv_queue(&self, h: SocketHandle) -> Result<usize, Error> {
        Ok(self.tcb(h)?.recv_queue())
    }

    /// Room in the send buffer.
    pub fn send_capacity(&self, h: SocketHandle) -> Result<usize, Error> {
        Ok(self.tcb(h)?.send_capacity())
    }

    /// Statistics of a connection.
    pub fn tcp_info(&self, h: SocketHandle) -> Result<TcpInfo, Error> {
        Ok(self.tcb(h)?.tcp_info())
    }

    /// The initial send and receive sequence numbers (ISS, IRS) of a connection.
    pub fn sequence_numbers(&self, h: SocketHandle) -> Result<(Seq, Seq), Error> {
        let tcb = self.tcb(h)?;
        Ok((tcb.iss, tcb.irs))
    }
}
