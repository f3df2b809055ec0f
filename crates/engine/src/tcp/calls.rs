//! The TCP socket calls of the engine: listen, accept, connect, send,
//! receive, shutdown, close, and what a socket reports of itself.

use std::net::{Ipv4Addr, SocketAddrV4};

use tracing::debug;

use crate::tcp::connection::{Tcb, TcpInfo};
use crate::tcp::listener::Listener;
use crate::{Engine, Error, Instant, Seq, Socket, SocketHandle, State};

impl Engine {
    pub(crate) fn check_local(&self, local: SocketAddrV4) -> Result<(), Error> {
        if !local.ip().is_unspecified() && *local.ip() != self.iface.addr {
            return Err(Error::AddrNotAvailable);
        }
        Ok(())
    }

    /// Opens a listener on `local` (port 0 picks an ephemeral port) with room for
    /// `backlog` connections in each of its SYN and accept queues.
    ///
    /// Errors: [`Error::AddrInUse`] if the port has a listener,
    /// [`Error::AddrNotAvailable`] if the address is not the stack's.
    pub fn listen(&mut self, local: SocketAddrV4, backlog: usize) -> Result<SocketHandle, Error> {
        self.check_local(local)?;
        let port = match local.port() {
            0 => self.ephemeral_port(None)?,
            p if self.listeners.contains_key(&p) => return Err(Error::AddrInUse),
            p => p,
        };
        Ok(self.add_listener(port, backlog))
    }

    /// Makes a listener on our address and `port` (its checks done).
    pub(crate) fn add_listener(&mut self, port: u16, backlog: usize) -> SocketHandle {
        let local = SocketAddrV4::new(self.iface.addr, port);
        let backlog = backlog.clamp(1, self.config.max_backlog.max(1));
        let h = self.alloc_slot(Socket::Listener(Box::new(Listener::new(local, backlog))));
        self.listeners.entry(port).or_default().push(h);
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

    /// Finds a free ephemeral port: for a listener (`remote` None), one no listener
    /// uses; for a connection, one that makes a 4-tuple not in use.
    pub(crate) fn ephemeral_port(&mut self, remote: Option<SocketAddrV4>) -> Result<u16, Error> {
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
            let local = SocketAddrV4::new(self.iface.addr, port);
            match remote {
                Some(r) if self.conns.contains_key(&(local, r)) => continue,
                _ => return Ok(port),
            }
        }
        Err(Error::AddrNotAvailable)
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
        // multicast address (the limited broadcast, our subnet's, or class D).
        let mask = u32::MAX
            .checked_shl(32 - u32::from(self.iface.prefix_len.min(32)))
            .unwrap_or(0);
        let subnet_broadcast = self.iface.prefix_len < 31
            && remote.ip().to_bits() & mask == self.iface.addr.to_bits() & mask
            && remote.ip().to_bits() | mask == u32::MAX;
        if remote.port() == 0
            || remote.ip().is_unspecified()
            || remote.ip().is_broadcast()
            || remote.ip().is_multicast()
            || subnet_broadcast
        {
            return Err(Error::InvalidInput);
        }
        let port = match local.port() {
            0 => self.ephemeral_port(Some(remote))?,
            p => p,
        };
        let local = SocketAddrV4::new(self.iface.addr, port);
        if self.conns.contains_key(&(local, remote)) {
            return Err(Error::AddrInUse);
        }
        let iss = self.secret.isn(now, local, remote);
        let mut tcb = Tcb::connect(&self.config, local, remote, iss, self.iface.mtu);
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
            None => {}
        }
    }

    /// Aborts a connection: RST to the peer, and the handle is given up.
    pub fn abort(&mut self, now: Instant, h: SocketHandle) {
        if let Ok(tcb) = self.tcb_mut(h) {
            tcb.abort();
            tcb.error.get_or_insert(Error::ConnectionAborted);
            tcb.released = true;
            self.after(now, h);
        } else if self.listener_mut(h).is_ok() {
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
            None => Err(Error::InvalidHandle),
        }
    }

    /// The remote address of a connection.
    pub fn peer_addr(&self, h: SocketHandle) -> Result<SocketAddrV4, Error> {
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
            None => true,
        }
    }

    /// Whether a write on the connection would not block (or a connect has finished).
    pub fn is_writable(&self, h: SocketHandle) -> bool {
        match self.slot(h).and_then(|s| s.socket.as_ref()) {
            Some(Socket::Conn(tcb)) => tcb.writable(),
            _ => true,
        }
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
