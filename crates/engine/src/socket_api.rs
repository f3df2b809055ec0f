//! Socket options of the BSD socket API that the front end's `TcpSocket`,
//! `TcpListener` and `TcpStream` expose: per-socket buffer sizes chosen before
//! `connect`/`listen`, the IP time-to-live, `SO_REUSEADDR` semantics for
//! binding, `SO_ERROR`, and readiness split into its directions.
//!
//! Kept apart from the protocol code: these calls only read or set fields of a
//! listener or a TCB, and choose the [`Config`] a new connection starts from.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddrV4};

use crate::tcp::connection::Tcb;
use crate::{Config, Engine, Error, Socket, SocketHandle, State};

/// Options a socket carries from creation into `connect` or `listen`. A
/// listener hands them to every connection it accepts, as a kernel does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SocketOptions {
    /// Send buffer, bytes (`SO_SNDBUF`). `None`: [`Config::send_buffer`].
    pub send_buffer: Option<usize>,
    /// Receive buffer, bytes (`SO_RCVBUF`); also sets the window scale offered
    /// in the SYN (RFC 7323 §2.3). `None`: [`Config::recv_buffer`].
    pub recv_buffer: Option<usize>,
    /// IP time-to-live of the socket's packets (`IP_TTL`). `None`: [`Config::ttl`].
    pub ttl: Option<u8>,
    /// The type-of-service byte of the socket's packets (`IP_TOS`, RFC 1122
    /// §4.2.4.2), a listener's SYN-ACKs included; its two ECN bits are
    /// cleared (see [`Engine::set_tos`]).
    pub tos: u8,
    /// Nagle's algorithm off (`TCP_NODELAY`).
    pub nodelay: bool,
    /// `SO_REUSEADDR`: the socket may take a port that other sockets bound or
    /// connections (for instance one in TIME-WAIT) still use, if they set it
    /// too; a listener always conflicts. Accepted connections inherit it.
    pub reuseaddr: bool,
    /// `SO_REUSEPORT`: several listeners may share a port if all set it; the
    /// port's connections are spread over them by a hash of the peer's
    /// address. Accepted connections inherit it.
    pub reuseport: bool,
    /// `SO_KEEPALIVE` with its `TCP_KEEPIDLE`/`TCP_KEEPINTVL`/`TCP_KEEPCNT`
    /// settings; `None`: off (see [`Engine::set_keepalive`]).
    pub keepalive: Option<crate::Keepalive>,
    /// `SO_LINGER` (see [`Engine::set_linger`]): `Some(Duration::ZERO)` makes
    /// close reset the connection.
    pub linger: Option<std::time::Duration>,
}

impl SocketOptions {
    /// The sharing of the port these options allow.
    pub fn reuse(&self) -> Reuse {
        Reuse {
            addr: self.reuseaddr,
            port: self.reuseport,
        }
    }
}

/// How a socket lets others share its port: `SO_REUSEADDR` and `SO_REUSEPORT`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reuse {
    /// `SO_REUSEADDR`.
    pub addr: bool,
    /// `SO_REUSEPORT`.
    pub port: bool,
}

/// Readiness of a socket by direction, as `epoll` reports it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Readiness {
    /// A read (or an accept) would not block.
    pub readable: bool,
    /// The peer closed its direction (its FIN arrived) or the connection failed.
    pub read_closed: bool,
    /// A write would not block.
    pub writable: bool,
    /// Nothing more can be sent: the connection failed or is closed both ways.
    pub write_closed: bool,
    /// An error ended the connection and has not been taken yet (`SO_ERROR`).
    pub error: bool,
}

/// Ports reserved by [`Engine::bind`]: per port, how many sockets hold it,
/// how many of those set `SO_REUSEADDR` and how many `SO_REUSEPORT`.
#[derive(Debug, Default)]
pub(crate) struct BoundPorts(HashMap<u16, (u32, u32, u32)>);

impl BoundPorts {
    pub(crate) fn contains(&self, port: u16) -> bool {
        self.0.contains_key(&port)
    }

    /// Whether a socket with `reuse` may share `port` with the holders: only
    /// if it and every holder set the same option.
    fn allows(&self, port: u16, reuse: Reuse) -> bool {
        match self.0.get(&port) {
            None => true,
            Some(&(holders, addr, port)) => {
                (reuse.addr && holders == addr) || (reuse.port && holders == port)
            }
        }
    }
}

impl Engine {
    /// The configuration a new connection with `opts` starts from.
    fn config_with(&self, opts: &SocketOptions) -> Config {
        let mut cfg = self.config.clone();
        // A size the socket sets is its size from the start, with no
        // autotuning (Linux's SOCK_SNDBUF_LOCK / SOCK_RCVBUF_LOCK); memory
        // is still allocated only as data flows.
        if let Some(n) = opts.send_buffer {
            cfg.send_buffer = n.max(1);
            cfg.send_buffer_initial = cfg.send_buffer;
        }
        if let Some(n) = opts.recv_buffer {
            cfg.recv_buffer = n.max(1);
            cfg.recv_buffer_initial = cfg.recv_buffer;
        }
        if let Some(ttl) = opts.ttl {
            cfg.ttl = ttl;
        }
        cfg
    }

    /// Whether `port` may be bound by a new socket, as Linux's `bind(2)`
    /// decides: if listeners have it, only when they and this socket all set
    /// `SO_REUSEPORT`; if other sockets bound it or connections use it
    /// (TIME-WAIT included), only when they and this one all set `reuseaddr`,
    /// or all `reuseport` (accepted connections inherit the listener's).
    pub fn port_free(&self, ip: Ipv4Addr, port: u16, reuse: Reuse) -> bool {
        if let Some(group) = self.listeners.get(&port) {
            let shared = group.iter().all(|&(l, addr)| {
                !Engine::addrs_overlap(ip, addr)
                    || matches!(
                        self.slot(l).and_then(|s| s.socket.as_ref()),
                        Some(Socket::Listener(x)) if x.options.reuseport
                    )
            });
            if !(reuse.port && shared) {
                return false;
            }
        }
        if !self.bound_ports.allows(port, reuse) {
            return false;
        }
        !self.conns.iter().any(|(&(local, _), &h)| {
            local.port() == port
                && Engine::addrs_overlap(ip, *local.ip())
                && !self
                    .tcb(h)
                    .is_ok_and(|t| (reuse.addr && t.reuseaddr) || (reuse.port && t.reuseport))
        })
    }

    /// `bind(2)`: reserves `local` for a socket that will connect or listen,
    /// choosing an ephemeral port for port 0, and returns the address. Give
    /// the reservation back with [`unbind`](Engine::unbind) just before
    /// [`listen_with`](Engine::listen_with) or
    /// [`connect_with`](Engine::connect_with), or when the socket goes.
    ///
    /// Errors: [`Error::AddrNotAvailable`] if the address is not the stack's (or
    /// no port is free), [`Error::AddrInUse`] if the port is taken (see
    /// [`port_free`](Engine::port_free)).
    pub fn bind(&mut self, local: SocketAddrV4, reuse: Reuse) -> Result<SocketAddrV4, Error> {
        self.check_local(local)?;
        let port = match local.port() {
            0 => self.ephemeral_port()?,
            p if !self.port_free(*local.ip(), p, reuse) => return Err(Error::AddrInUse),
            p => p,
        };
        let entry = self.bound_ports.0.entry(port).or_insert((0, 0, 0));
        entry.0 += 1;
        entry.1 += u32::from(reuse.addr);
        entry.2 += u32::from(reuse.port);
        Ok(SocketAddrV4::new(*local.ip(), port))
    }

    /// Gives back a reservation made by [`bind`](Engine::bind) with the same
    /// `reuse`.
    pub fn unbind(&mut self, port: u16, reuse: Reuse) {
        if let Some(entry) = self.bound_ports.0.get_mut(&port) {
            entry.0 = entry.0.saturating_sub(1);
            entry.1 = entry.1.saturating_sub(u32::from(reuse.addr));
            entry.2 = entry.2.saturating_sub(u32::from(reuse.port));
            if entry.0 == 0 {
                self.bound_ports.0.remove(&port);
            }
        }
    }

    /// [`listen`](Engine::listen) with socket options, which the connections it
    /// accepts inherit. Without `opts.reuseaddr` a port still used by a
    /// connection gives [`Error::AddrInUse`].
    pub fn listen_with(
        &mut self,
        local: SocketAddrV4,
        backlog: usize,
        opts: SocketOptions,
    ) -> Result<SocketHandle, Error> {
        if local.port() == 0 {
            let h = self.listen(local, backlog)?;
            self.listener_mut(h)?.options = opts;
            return Ok(h);
        }
        self.check_local(local)?;
        if !self.port_free(*local.ip(), local.port(), opts.reuse()) {
            return Err(Error::AddrInUse);
        }
        // Free: no listener on the port, or only SO_REUSEPORT ones and this
        // one sets it too.
        let h = self.add_listener(local, backlog);
        self.listener_mut(h)?.options = opts;
        Ok(h)
    }

    /// [`connect_from`](Engine::connect_from) with socket options.
    pub fn connect_with(
        &mut self,
        now: crate::Instant,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        opts: SocketOptions,
    ) -> Result<SocketHandle, Error> {
        // The TCB takes its buffers from the configuration when it is made.
        let cfg = self.config_with(&opts);
        let saved = std::mem::replace(&mut self.config, cfg);
        let result = self.connect_from(now, local, remote);
        self.config = saved;
        let h = result?;
        let tcb = self.tcb_mut(h)?;
        tcb.nodelay = opts.nodelay;
        tcb.reuseaddr = opts.reuseaddr;
        tcb.reuseport = opts.reuseport;
        // Keepalive arms itself once the connection is established.
        tcb.keepalive = opts.keepalive;
        tcb.linger = opts.linger;
        tcb.tos = opts.tos & !0x03;
        Ok(h)
    }

    /// The configuration for a connection accepted by listener `lh`, and the
    /// options it inherits (`TCP_NODELAY`, `SO_REUSEADDR`).
    pub(crate) fn accept_config(&self, lh: SocketHandle) -> (Config, SocketOptions) {
        match self.slot(lh).and_then(|s| s.socket.as_ref()) {
            Some(Socket::Listener(l)) => (self.config_with(&l.options), l.options),
            _ => (self.config.clone(), SocketOptions::default()),
        }
    }

    /// The IP time-to-live of a socket's packets (`IP_TTL`).
    pub fn ttl(&self, h: SocketHandle) -> Result<u8, Error> {
        match self.slot(h).and_then(|s| s.socket.as_ref()) {
            Some(Socket::Conn(tcb)) => Ok(tcb.ttl),
            Some(Socket::Listener(l)) => Ok(l.options.ttl.unwrap_or(self.config.ttl)),
            Some(Socket::Udp(u)) => Ok(u.ttl),
            None => Err(Error::InvalidHandle),
        }
    }

    /// Sets the IP time-to-live of a socket's packets; a listener's connections
    /// accepted afterwards inherit it. 0 is [`Error::InvalidInput`], as on Linux.
    pub fn set_ttl(&mut self, h: SocketHandle, ttl: u8) -> Result<(), Error> {
        if ttl == 0 {
            return Err(Error::InvalidInput);
        }
        match self.slot_mut(h).and_then(|s| s.socket.as_mut()) {
            Some(Socket::Conn(tcb)) => tcb.ttl = ttl,
            Some(Socket::Listener(l)) => l.options.ttl = Some(ttl),
            Some(Socket::Udp(u)) => u.ttl = ttl,
            None => return Err(Error::InvalidHandle),
        }
        Ok(())
    }

    /// `SO_ERROR`: takes the error that ended the connection, if any, so it is
    /// reported once. Afterwards reads give end-of-stream and writes
    /// [`Error::BrokenPipe`], as on Linux.
    pub fn take_error(&mut self, h: SocketHandle) -> Result<Option<Error>, Error> {
        match self.slot_mut(h).and_then(|s| s.socket.as_mut()) {
            Some(Socket::Conn(tcb)) => Ok(tcb.error.take()),
            Some(Socket::Listener(_)) => Ok(None),
            Some(Socket::Udp(u)) => Ok(u.error.take()),
            None => Err(Error::InvalidHandle),
        }
    }

    /// Readiness of a socket by direction. A stale handle is ready and closed
    /// both ways, so a caller finds out by trying.
    pub fn readiness(&self, h: SocketHandle) -> Readiness {
        match self.slot(h).and_then(|s| s.socket.as_ref()) {
            Some(Socket::Conn(tcb)) => tcb_readiness(tcb),
            Some(Socket::Listener(l)) => Readiness {
                readable: !l.accept_queue.is_empty(),
                ..Readiness::default()
            },
            Some(Socket::Udp(u)) => Readiness {
                readable: u.readable(),
                writable: u.writable(),
                error: u.error.is_some(),
                ..Readiness::default()
            },
            None => Readiness {
                readable: true,
                read_closed: true,
                writable: true,
                write_closed: true,
                error: false,
            },
        }
    }
}

fn tcb_readiness(tcb: &Tcb) -> Readiness {
    let failed = tcb.error.is_some();
    // RFC 9293 §3.3.2: the states after the peer's FIN.
    let peer_fin = matches!(
        tcb.state,
        State::CloseWait | State::LastAck | State::Closing | State::TimeWait | State::Closed
    );
    let both_closed = matches!(
        tcb.state,
        State::LastAck | State::Closing | State::TimeWait | State::Closed
    );
    Readiness {
        readable: tcb.readable(),
        read_closed: failed || peer_fin,
        writable: tcb.writable(),
        write_closed: failed || both_closed,
        error: failed,
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, SocketAddrV4};

    use smoltcp::wire::{Ipv4Packet, TcpControl};

    use crate::tests::*;
    use crate::{Error, Reuse, SocketOptions, State};

    const NONE: Reuse = Reuse {
        addr: false,
        port: false,
    };
    const ADDR: Reuse = Reuse {
        addr: true,
        port: false,
    };

    /// SO_REUSEPORT: listeners that all set it share a port and its
    /// connections (each peer always meets the same listener); one without it
    /// cannot join, nor can a plain `bind`.
    #[test]
    fn reuseport_listeners_share_a_port_and_its_connections() {
        let mut h = Harness::new();
        let rp = SocketOptions {
            reuseport: true,
            ..SocketOptions::default()
        };
        let l1 = h.engine.listen_with(local(), 64, rp).unwrap();
        let l2 = h.engine.listen_with(local(), 64, rp).unwrap();
        assert_eq!(
            h.engine.listen_with(local(), 64, opts()),
            Err(Error::AddrInUse)
        );
        assert_eq!(h.engine.bind(local(), ADDR), Err(Error::AddrInUse));
        let port_only = Reuse {
            addr: false,
            port: true,
        };
        assert!(h.engine.port_free(*local().ip(), LOCAL_PORT, port_only));
        // 32 peers connect: every handshake completes on one of the two.
        let mut per_listener = [0usize; 2];
        for i in 0..32u16 {
            let syn = Seg {
                src_port: 40000 + i,
                seq: 1000,
                ctl: TcpControl::Syn,
                ..Seg::default()
            };
            h.send(syn);
            let synack = h.recv_one();
            assert_eq!(synack.ctl, TcpControl::Syn);
            h.send(Seg {
                src_port: 40000 + i,
                seq: 1001,
                ack: Some(synack.seq + 1),
                ..Seg::default()
            });
            h.recv_none();
            let got: Vec<usize> = [l1, l2]
                .iter()
                .enumerate()
                .filter(|(_, l)| h.engine.accept(**l).is_ok())
                .map(|(k, _)| k)
                .collect();
            assert_eq!(got.len(), 1, "connection {i} accepted once");
            per_listener[got[0]] += 1;
        }
        assert!(
            per_listener.iter().all(|&n| n > 0),
            "both listeners get connections: {per_listener:?}"
        );
        // Closing one leaves the other with the port.
        h.engine.close(h.now, l1);
        h.send(Seg {
            src_port: 41000,
            seq: 5000,
            ctl: TcpControl::Syn,
            ..Seg::default()
        });
        assert_eq!(h.recv_one().ctl, TcpControl::Syn);
        assert_eq!(h.engine.stats().rx_no_socket, 0);
        let _ = l2;
    }

    fn opts() -> SocketOptions {
        SocketOptions::default()
    }

    /// The TTL field of every datagram the engine wants to send now.
    fn ttls(h: &mut Harness) -> Vec<u8> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; 1500];
        while let Some(n) = h.engine.poll_transmit(h.now, &mut buf) {
            out.push(Ipv4Packet::new_checked(&buf[..n]).unwrap().hop_limit());
        }
        out
    }

    #[test]
    fn recv_buffer_chooses_window_and_scale_of_the_syn() {
        let mut h = Harness::new();
        let o = SocketOptions {
            recv_buffer: Some(8 * 1024),
            ..opts()
        };
        h.engine
            .connect_with(
                h.now,
                SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0),
                remote(),
                o,
            )
            .unwrap();
        let syn = h.recv_one();
        assert_eq!(syn.ctl, TcpControl::Syn);
        assert_eq!(syn.window, 8 * 1024);
        assert_eq!(syn.wscale, Some(0));
    }

    #[test]
    fn send_buffer_bounds_what_send_takes() {
        let mut h = Harness::new();
        let l = h
            .engine
            .listen_with(
                local(),
                8,
                SocketOptions {
                    send_buffer: Some(1000),
                    ..opts()
                },
            )
            .unwrap();
        h.send(Seg {
            seq: 1000,
            ctl: TcpControl::Syn,
            mss: Some(1460),
            ..Seg::default()
        });
        let iss = h.recv_one().seq;
        h.send(h.peer(1001, iss + 1));
        let c = h.engine.accept(l).unwrap();
        assert_eq!(h.engine.send(h.now, c, &[7u8; 5000]), Ok(1000));
        assert_eq!(h.engine.send(h.now, c, &[7u8; 10]), Err(Error::WouldBlock));
    }

    #[test]
    fn a_size_the_socket_sets_holds_from_the_start_without_autotuning() {
        // The stack's defaults start at 16 KiB and grow; SO_SNDBUF fixes it.
        let mut h = Harness::with_config(crate::Config {
            timestamps: false,
            ..crate::Config::default()
        });
        let l = h
            .engine
            .listen_with(
                local(),
                8,
                SocketOptions {
                    send_buffer: Some(100_000),
                    ..opts()
                },
            )
            .unwrap();
        h.send(Seg {
            seq: 1000,
            ctl: TcpControl::Syn,
            mss: Some(1460),
            ..Seg::default()
        });
        let iss = h.recv_one().seq;
        h.send(h.peer(1001, iss + 1));
        let c = h.engine.accept(l).unwrap();
        assert_eq!(h.engine.send_capacity(c), Ok(100_000));
        assert_eq!(h.engine.stats().buffer_bytes, 0);
    }

    /// `IP_TOS` on a listener marks its SYN-ACKs and the connections it
    /// accepts (as Linux copies it to the child); the ECN bits stay clear.
    /// Found by FreeBSD's packetdrill script
    /// `socket-api/socket-api-setsockopt-tos-passive-ipv4`.
    #[test]
    fn tos_of_a_listener_marks_its_syn_acks_and_children() {
        let mut h = Harness::new();
        let l = h.engine.listen(local(), 8).unwrap();
        h.engine.set_tos(l, 0x23).unwrap();
        assert_eq!(h.engine.tos(l), Ok(0x20));
        h.send(Seg {
            seq: 1000,
            ctl: TcpControl::Syn,
            mss: Some(1460),
            ..Seg::default()
        });
        let mut buf = vec![0u8; 1500];
        let n = h.engine.poll_transmit(h.now, &mut buf).expect("a SYN-ACK");
        let ip = Ipv4Packet::new_checked(&buf[..n]).unwrap();
        assert_eq!((ip.dscp() << 2) | ip.ecn(), 0x20);
        let iss = parse(&buf[..n]).seq;
        h.send(h.peer(1001, iss.wrapping_add(1)));
        let c = h.engine.accept(l).unwrap();
        assert_eq!(h.engine.tos(c), Ok(0x20));
        // Through connect_with's options too.
        let o = SocketOptions {
            tos: 0x10,
            ..opts()
        };
        let c = h
            .engine
            .connect_with(h.now, SocketAddrV4::new(LOCAL_IP, 0), remote(), o)
            .unwrap();
        assert_eq!(h.engine.tos(c), Ok(0x10));
    }

    #[test]
    fn ttl_per_socket_and_inherited_from_the_listener() {
        let mut h = Harness::new();
        let l = h.engine.listen(local(), 8).unwrap();
        assert_eq!(h.engine.ttl(l), Ok(64));
        h.engine.set_ttl(l, 9).unwrap();
        assert_eq!(h.engine.set_ttl(l, 0), Err(Error::InvalidInput));
        h.send(Seg {
            seq: 1000,
            ctl: TcpControl::Syn,
            mss: Some(1460),
            ..Seg::default()
        });
        assert_eq!(ttls(&mut h), vec![9]);
        let c = h.engine.connect(h.now, remote()).unwrap();
        assert_eq!(ttls(&mut h), vec![64]);
        h.engine.set_ttl(c, 3).unwrap();
        assert_eq!(h.engine.ttl(c), Ok(3));
    }

    #[test]
    fn reuseaddr_lets_a_listener_take_a_port_in_time_wait() {
        let mut h = Harness::new();
        let o = SocketOptions {
            reuseaddr: true,
            ..opts()
        };
        let l = h.engine.listen_with(local(), 8, o).unwrap();
        let irs = 1000;
        h.send(Seg {
            seq: irs,
            ctl: TcpControl::Syn,
            mss: Some(1460),
            ..Seg::default()
        });
        let iss = h.recv_one().seq;
        h.send(h.peer(irs + 1, iss + 1));
        let c = h.engine.accept(l).unwrap();
        // We close first: FIN, the peer ACKs and sends its FIN: TIME-WAIT.
        h.engine.close(h.now, c);
        let fin = h.recv_one();
        assert_eq!(fin.ctl, TcpControl::Fin);
        h.send(h.peer(irs + 1, iss + 2).fin());
        h.recv_one();
        h.engine.close(h.now, l);
        let tw = h.engine.conns.get(&(local(), remote())).copied().unwrap();
        assert_eq!(h.engine.state(tw), Ok(State::TimeWait));

        assert!(!h.engine.port_free(*local().ip(), LOCAL_PORT, NONE));
        assert_eq!(h.engine.bind(local(), NONE), Err(Error::AddrInUse));
        assert_eq!(
            h.engine.listen_with(local(), 8, opts()),
            Err(Error::AddrInUse)
        );
        assert_eq!(h.engine.bind(local(), ADDR), Ok(local()));
        let l2 = h.engine.listen_with(local(), 8, o).unwrap();
        // A listener always conflicts, with or without the option.
        assert_eq!(h.engine.listen_with(local(), 8, o), Err(Error::AddrInUse));
        assert_eq!(h.engine.bind(local(), ADDR), Err(Error::AddrInUse));
        h.engine.close(h.now, l2);
    }

    #[test]
    fn bind_picks_an_ephemeral_port_and_checks_the_address() {
        let mut h = Harness::new();
        let any = SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0);
        let got = h.engine.bind(any, NONE).unwrap();
        let (lo, hi) = h.engine.config().ephemeral_ports;
        assert!((lo..=hi).contains(&got.port()));
        // A listener on port 0 does not get the reserved port.
        let l = h.engine.listen(any, 8).unwrap();
        assert_ne!(h.engine.local_addr(l).unwrap().port(), got.port());
        let other = SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 77), 80);
        assert_eq!(h.engine.bind(other, NONE), Err(Error::AddrNotAvailable));
    }

    #[test]
    fn take_error_reports_a_reset_once_then_eof_and_broken_pipe() {
        let mut h = Harness::new();
        let (_l, c, iss, irs) = h.established_passive();
        assert_eq!(h.engine.take_error(c), Ok(None));
        h.send(h.peer(irs + 1, iss + 1).rst());
        let r = h.engine.readiness(c);
        assert!(r.readable && r.read_closed && r.writable && r.write_closed && r.error);
        assert_eq!(h.engine.take_error(c), Ok(Some(Error::ConnectionReset)));
        assert!(!h.engine.readiness(c).error);
        assert_eq!(h.engine.take_error(c), Ok(None));
        assert_eq!(h.read(c), Ok(vec![]));
        assert_eq!(h.engine.send(h.now, c, b"x"), Err(Error::BrokenPipe));
    }

    #[test]
    fn readiness_by_direction() {
        let mut h = Harness::new();
        let (l, c, iss, irs) = h.established_passive();
        assert!(!h.engine.readiness(l).readable);
        let r = h.engine.readiness(c);
        assert!(!r.readable && !r.read_closed && r.writable && !r.write_closed);
        h.send(h.peer(irs + 1, iss + 1).data(b"hi"));
        assert!(h.engine.readiness(c).readable);
        h.send(h.peer(irs + 3, iss + 1).fin());
        let r = h.engine.readiness(c);
        assert!(r.readable && r.read_closed && r.writable && !r.write_closed);
    }

    #[test]
    fn bind_reserves_the_port_until_unbind() {
        let mut h = Harness::new();
        assert_eq!(h.engine.bind(local(), NONE), Ok(local()));
        assert_eq!(h.engine.bind(local(), ADDR), Err(Error::AddrInUse));
        assert_eq!(
            h.engine.listen_with(local(), 8, opts()),
            Err(Error::AddrInUse)
        );
        h.engine.unbind(LOCAL_PORT, NONE);
        // Both with SO_REUSEADDR: they share it, as on Linux.
        assert_eq!(h.engine.bind(local(), ADDR), Ok(local()));
        assert_eq!(h.engine.bind(local(), ADDR), Ok(local()));
        assert_eq!(h.engine.bind(local(), NONE), Err(Error::AddrInUse));
        h.engine.unbind(LOCAL_PORT, ADDR);
        h.engine.unbind(LOCAL_PORT, ADDR);
        assert!(h.engine.port_free(*local().ip(), LOCAL_PORT, NONE));
    }

    #[test]
    fn reuseaddr_needs_every_connection_on_the_port_to_have_it() {
        let mut h = Harness::new();
        let c = h.engine.connect(h.now, remote()).unwrap();
        let mine = h.engine.local_addr(c).unwrap();
        assert_eq!(h.engine.bind(mine, ADDR), Err(Error::AddrInUse));
        let o = SocketOptions {
            reuseaddr: true,
            ..opts()
        };
        let other = SocketAddrV4::new(REMOTE_IP, REMOTE_PORT + 1);
        let any = SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0);
        let c2 = h.engine.connect_with(h.now, any, other, o).unwrap();
        let theirs = h.engine.local_addr(c2).unwrap();
        assert_eq!(h.engine.bind(theirs, NONE), Err(Error::AddrInUse));
        assert_eq!(h.engine.bind(theirs, ADDR), Ok(theirs));
    }
}
