//! The sans-IO protocol engine of synack: IPv4 and TCP as a plain state machine.
//!
//! The engine does no I/O, reads no clock and knows nothing of tokio. The
//! caller feeds it packets and time and takes packets and events out:
//!
//! - [`Engine::handle_packet`]: one inbound IPv4 datagram;
//! - [`Engine::poll_transmit`]: the next outbound datagram, until `None`;
//! - [`Engine::poll_timeout`] / [`Engine::handle_timeout`]: the earliest timer
//!   deadline, and firing what is due;
//! - [`Engine::poll_event`]: readiness changes per socket;
//! - socket calls by [`SocketHandle`]: [`listen`](Engine::listen),
//!   [`accept`](Engine::accept), [`connect`](Engine::connect),
//!   [`send`](Engine::send), [`recv`](Engine::recv),
//!   [`shutdown`](Engine::shutdown), [`close`](Engine::close),
//!   [`abort`](Engine::abort).
//!
//! Connections are found by a hash of their 4-tuple and every timer of every
//! connection lives in one hierarchical timer wheel, so the cost per packet does
//! not grow with the number of sockets.
//!
//! ```
//! use std::net::{Ipv4Addr, SocketAddrV4};
//! use synack_engine::{Config, Engine, Instant, Interface};
//!
//! let iface = Interface::new(Ipv4Addr::new(192, 0, 2, 1), 24, 1500);
//! let mut engine = Engine::new(Config::default(), iface, [7, 11]);
//! let now = Instant::ZERO;
//! let conn = engine
//!     .connect(now, SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 2), 80))
//!     .unwrap();
//! let mut buf = [0u8; 1500];
//! let len = engine.poll_transmit(now, &mut buf).unwrap(); // the SYN
//! assert!(len >= 40);
//! assert!(engine.poll_timeout().is_some()); // its retransmission timer
//! # let _ = conn;
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod cc_api;
mod config;
mod conn_opts;
mod error;
mod icmp;
mod isn;
mod seq;
mod socket_api;
mod tcp;
mod time;

#[cfg(test)]
mod tests;

use std::collections::{HashMap, VecDeque};
use std::net::{Ipv4Addr, SocketAddrV4};

use smoltcp::phy::{Checksum, ChecksumCapabilities};
use smoltcp::wire::{
    Icmpv4DstUnreachable, IpAddress, IpProtocol, Ipv4Packet, Ipv4Repr, TcpControl, TcpPacket,
    TcpRepr, TcpSeqNumber, TcpTimestampRepr,
};
use synack_wheel::{Key, Wheel};
use tracing::{debug, trace};

pub use config::{Config, MemoryLimits, SynCookies};
pub use conn_opts::Keepalive;
pub use error::Error;
pub use seq::Seq;
pub use socket_api::{Readiness, Reuse, SocketOptions};
pub use tcp::cc::CongestionAlgorithm;
pub use tcp::connection::{CaState, State, TcpInfo, Timer};
pub use time::Instant;

use icmp::{Icmp, IcmpInput};
use isn::Secret;
use tcp::buffer::MemLevel;
use tcp::connection::{Ctl, EV_READ, EV_WRITE, Outbound, Segment, Tcb};
use tcp::connection::{offered_mss, syn_window, window_scale_for};
use tcp::listener::Listener;
use tcp::syncookie;

/// Names one socket (listener or connection) of an engine. Handles are never
/// reused for another socket: a stale handle gives [`Error::InvalidHandle`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SocketHandle {
    index: u32,
    generation: u32,
}

impl SocketHandle {
    /// A small number unique among the live sockets, for indexing side tables.
    pub fn index(self) -> usize {
        self.index as usize
    }
}

/// A readiness change the front end should act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event {
    /// The socket.
    pub handle: SocketHandle,
    /// Reading (or accepting) may make progress: data, EOF, error, or a new connection.
    pub readable: bool,
    /// Writing (or a pending connect) may make progress.
    pub writable: bool,
}

/// The interface the engine speaks on: its address and the device's properties.
#[derive(Debug, Clone, Copy)]
pub struct Interface {
    /// The stack's IPv4 address.
    pub addr: Ipv4Addr,
    /// The prefix length of its subnet.
    pub prefix_len: u8,
    /// The device MTU: the largest IP datagram.
    pub mtu: usize,
    /// The device verifies inbound checksums: skip verifying them.
    pub checksum_rx_offload: bool,
    /// The device fills outbound checksums: skip computing them.
    pub checksum_tx_offload: bool,
}

impl Interface {
    /// An interface with checksums done in software.
    pub fn new(addr: Ipv4Addr, prefix_len: u8, mtu: usize) -> Interface {
        Interface {
            addr,
            prefix_len,
            mtu,
            checksum_rx_offload: false,
            checksum_tx_offload: false,
        }
    }
}

/// Engine-wide counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Packets handed to [`Engine::handle_packet`].
    pub rx_packets: u64,
    /// Packets produced by [`Engine::poll_transmit`].
    pub tx_packets: u64,
    /// Packets dropped because they did not parse (truncated, bad header, fragments).
    pub rx_malformed: u64,
    /// Datagrams of another IP version (IPv6 is not spoken yet; a TUN carries
    /// the kernel's router solicitations and the like), dropped.
    pub rx_not_ipv4: u64,
    /// Packets dropped for a bad IP or TCP checksum.
    pub rx_bad_checksum: u64,
    /// Packets for another address.
    pub rx_not_for_us: u64,
    /// Packets from an impossible source address (RFC 1122 §3.2.1.3).
    pub rx_martian: u64,
    /// Packets of a protocol the engine does not speak.
    pub rx_unknown_protocol: u64,
    /// Segments for no socket, answered with RST (RFC 9293 §3.10.7.1).
    pub rx_no_socket: u64,
    /// SYNs dropped because a listener's queues were full.
    pub syn_dropped: u64,
    /// RSTs not sent because too many were queued.
    pub rst_dropped: u64,
    /// ACKs owed at once within a receive batch that were merged into the
    /// next one because too many were queued already (the driver was not
    /// transmitting).
    pub owed_acks_merged: u64,
    /// Connections established (both directions).
    pub connections_established: u64,
    /// ICMP echo requests answered.
    pub icmp_echo_replies: u64,
    /// ICMP destination-unreachable errors sent (for UDP and unknown protocols).
    pub icmp_errors_sent: u64,
    /// ICMP messages not sent because of the rate limit or a full queue.
    pub icmp_suppressed: u64,
    /// ICMP errors received about our TCP segments.
    pub icmp_errors_received: u64,
    /// Challenge ACKs (RFC 5961) not sent because of the stack-wide rate limit (§7).
    pub challenge_acks_suppressed: u64,
    /// Challenge ACKs (RFC 5961) sent.
    pub challenge_acks_sent: u64,
    /// Bytes of socket buffer memory held now, all connections together.
    pub buffer_bytes: usize,
    /// Times the stack entered memory pressure (see [`MemoryLimits`]).
    pub memory_pressure_entered: u64,
    /// Data bytes dropped because memory was over the limit and they lay
    /// beyond the window already promised.
    pub dropped_for_memory: u64,
    /// Connections closed by the application still delivering or waiting
    /// (orphans), now.
    pub orphans: usize,
    /// Connections reset on close because [`Config::max_orphans`] was reached.
    pub orphans_reset: u64,
    /// Connections by state, now (listeners not counted).
    pub states: StateCounts,
    /// SYN-ACKs sent with a SYN cookie (RFC 4987 §3.6) instead of queueing the SYN.
    pub syncookies_sent: u64,
    /// ACKs that brought back a valid cookie and became a connection.
    pub syncookies_valid: u64,
    /// ACKs to a listener that had sent cookies, whose cookie was invalid or
    /// stale: dropped.
    pub syncookies_failed: u64,
}

/// How many connections are in each state (as `ss -s` counts them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StateCounts {
    /// SYN-SENT.
    pub syn_sent: usize,
    /// SYN-RECEIVED (embryos in listeners' SYN queues).
    pub syn_received: usize,
    /// ESTABLISHED.
    pub established: usize,
    /// FIN-WAIT-1.
    pub fin_wait1: usize,
    /// FIN-WAIT-2.
    pub fin_wait2: usize,
    /// CLOSE-WAIT.
    pub close_wait: usize,
    /// CLOSING.
    pub closing: usize,
    /// LAST-ACK.
    pub last_ack: usize,
    /// TIME-WAIT.
    pub time_wait: usize,
    /// CLOSED, not yet freed (a reset or failed connection whose handle is still held).
    pub closed: usize,
}

impl StateCounts {
    fn count(&mut self, state: State) {
        let n = match state {
            State::SynSent => &mut self.syn_sent,
            State::SynReceived => &mut self.syn_received,
            State::Established => &mut self.established,
            State::FinWait1 => &mut self.fin_wait1,
            State::FinWait2 => &mut self.fin_wait2,
            State::CloseWait => &mut self.close_wait,
            State::Closing => &mut self.closing,
            State::LastAck => &mut self.last_ack,
            State::TimeWait => &mut self.time_wait,
            State::Closed => &mut self.closed,
        };
        *n += 1;
    }

    /// Every connection counted.
    pub fn total(&self) -> usize {
        self.syn_sent
            + self.syn_received
            + self.established
            + self.fin_wait1
            + self.fin_wait2
            + self.close_wait
            + self.closing
            + self.last_ack
            + self.time_wait
            + self.closed
    }
}

enum Socket {
    Listener(Box<Listener>),
    Conn(Box<Tcb>),
}

struct Slot {
    generation: u32,
    socket: Option<Socket>,
    timer_keys: [Option<Key>; Timer::ALL.len()],
    in_tx_queue: bool,
    pending_events: u8,
    in_accept_queue: bool,
    /// Counted in [`Stats::connections_established`] already.
    counted: bool,
    /// Buffer memory of the connection as last counted in `Engine::mem_used`.
    mem: usize,
    /// Counted in `Engine::orphans`.
    orphan: bool,
    /// An embryo counted in its listener's `young`.
    young: bool,
}

/// A reply to a segment that matched no connection.
#[derive(Debug, Clone, Copy)]
struct Reply {
    local: SocketAddrV4,
    remote: SocketAddrV4,
    seq: Seq,
    ack: Option<Seq>,
}

/// Most RST replies queued at once; beyond this they are dropped (and counted).
const MAX_REPLIES: usize = 256;

/// Most cookie SYN-ACKs queued at once while the device pushes back; beyond
/// this a SYN is dropped (and counted in [`Stats::syn_dropped`]). A SYN-ACK
/// is about 100 bytes here, so a full queue holds under half a MiB.
const MAX_COOKIE_REPLIES: usize = 4096;

/// The least MTU an IPv4 interface may have (RFC 791: every host handles
/// 68-byte datagrams unfragmented).
pub const MIN_MTU: usize = 68;

/// Room for a pure ACK: IPv4 and TCP headers with the most options.
const OWED_ACK_BUF: usize = 20 + 60;

/// Most owed ACKs queued at once (a driver that stops transmitting while it
/// keeps receiving must not make the queue grow); beyond this an owed ACK
/// waits and merges into the next one, as before a stretch ACK. Also the most
/// emptied buffers kept for reuse.
const MAX_OWED_ACKS: usize = 256;

/// The timer wheel ticks in milliseconds.
const TICK_NANOS: u64 = 1_000_000;

/// The sans-IO TCP/IP engine. See the [crate docs](crate).
pub struct Engine {
    config: Config,
    iface: Interface,
    checksums: ChecksumCapabilities,
    secret: Secret,
    slots: Vec<Slot>,
    free_slots: Vec<u32>,
    conns: HashMap<(SocketAddrV4, SocketAddrV4), SocketHandle>,
    /// Listeners by port: one, or several that all set `SO_REUSEPORT`.
    listeners: HashMap<u16, Vec<SocketHandle>>,
    wheel: Wheel<(SocketHandle, Timer)>,
    tx_queue: VecDeque<SocketHandle>,
    replies: VecDeque<Reply>,
    /// SYN-ACKs carrying cookies, sent from no connection (bounded like `replies`).
    cookie_synacks: VecDeque<(SocketAddrV4, SocketAddrV4, Outbound)>,
    /// ACKs built while a batch of segments was handled, one per ACK owed
    /// before the next segment (see `take_owed_ack`), in order; sent first.
    owed_acks: VecDeque<Vec<u8>>,
    /// Emptied buffers of `owed_acks`, for reuse.
    spare_acks: Vec<Vec<u8>>,
    icmp: Icmp,
    events: VecDeque<SocketHandle>,
    stats: Stats,
    next_port: u16,
    /// RFC 5961 §7: the second the challenge-ACK count is for, and the count.
    challenge_window: (u64, u32),
    /// Ports bound by sockets that have not connected or listened yet.
    bound_ports: socket_api::BoundPorts,
    /// The memory budget in force.
    mem_limits: MemoryLimits,
    /// Buffer memory of all connections, bytes.
    mem_used: usize,
    /// In memory pressure (entered above `pressure`, left below `low`).
    mem_pressure: bool,
    /// Orphaned connections now.
    orphans: usize,
}

impl Engine {
    /// A new engine on `iface`. `secret` keys the initial sequence numbers
    /// (RFC 6528) and seeds the engine's other choices: give each stack a
    /// random one, or a fixed one for a reproducible simulation.
    ///
    /// # Panics
    ///
    /// If the interface's MTU is below 68 bytes (see [`try_new`](Engine::try_new)).
    pub fn new(config: Config, iface: Interface, secret: [u64; 2]) -> Engine {
        match Engine::try_new(config, iface, secret) {
            Ok(engine) => engine,
            Err(e) => panic!("synack: interface MTU {}: {e}", iface.mtu),
        }
    }

    /// Like [`new`](Engine::new), but an interface that cannot carry IPv4 is
    /// an error: [`Error::InvalidInput`] for an MTU below 68 bytes, the least
    /// every IPv4 host must handle (RFC 791), or above 65 535 (the largest
    /// datagram).
    pub fn try_new(config: Config, iface: Interface, secret: [u64; 2]) -> Result<Engine, Error> {
        if !(MIN_MTU..=65535).contains(&iface.mtu) {
            return Err(Error::InvalidInput);
        }
        let mut checksums = ChecksumCapabilities::default();
        let mode = match (iface.checksum_rx_offload, iface.checksum_tx_offload) {
            (false, false) => Checksum::Both,
            (true, false) => Checksum::Tx,
            (false, true) => Checksum::Rx,
            (true, true) => Checksum::None,
        };
        checksums.ipv4 = mode;
        checksums.tcp = mode;
        checksums.icmpv4 = mode;
        let mut secret = Secret::new(secret);
        let (lo, hi) = config.ephemeral_ports;
        let span = u64::from(hi.saturating_sub(lo)) + 1;
        let next_port = lo.wrapping_add((secret.next_u64() % span) as u16);
        let mem_limits = config
            .memory
            .unwrap_or_else(|| MemoryLimits::for_buffers(config.send_buffer, config.recv_buffer));
        Ok(Engine {
            mem_limits,
            mem_used: 0,
            mem_pressure: false,
            orphans: 0,
            config,
            iface,
            checksums,
            secret,
            slots: Vec::new(),
            free_slots: Vec::new(),
            conns: HashMap::new(),
            listeners: HashMap::new(),
            wheel: Wheel::new(),
            tx_queue: VecDeque::new(),
            replies: VecDeque::new(),
            cookie_synacks: VecDeque::new(),
            owed_acks: VecDeque::new(),
            spare_acks: Vec::new(),
            icmp: Icmp::new(),
            events: VecDeque::new(),
            stats: Stats::default(),
            next_port,
            challenge_window: (0, 0),
            bound_ports: socket_api::BoundPorts::default(),
        })
    }

    /// The interface the engine speaks on.
    pub fn interface(&self) -> &Interface {
        &self.iface
    }

    /// The engine's configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Engine-wide counters, with the buffer memory held and the connections
    /// by state now (counting them visits every socket).
    pub fn stats(&self) -> Stats {
        let mut stats = self.stats;
        stats.buffer_bytes = self.mem_used;
        stats.orphans = self.orphans;
        for slot in &self.slots {
            if let Some(Socket::Conn(tcb)) = &slot.socket {
                stats.states.count(tcb.state);
            }
        }
        stats
    }

    // ----- Sockets -----

    fn alloc_slot(&mut self, socket: Socket) -> SocketHandle {
        let index = match self.free_slots.pop() {
            Some(i) => i,
            None => {
                self.slots.push(Slot {
                    generation: 0,
                    socket: None,
                    timer_keys: [None; Timer::ALL.len()],
                    in_tx_queue: false,
                    pending_events: 0,
                    in_accept_queue: false,
                    counted: false,
                    mem: 0,
                    orphan: false,
                    young: false,
                });
                (self.slots.len() - 1) as u32
            }
        };
        let slot = &mut self.slots[index as usize];
        slot.socket = Some(socket);
        SocketHandle {
            index,
            generation: slot.generation,
        }
    }

    fn slot(&self, h: SocketHandle) -> Option<&Slot> {
        self.slots
            .get(h.index as usize)
            .filter(|s| s.generation == h.generation && s.socket.is_some())
    }

    fn slot_mut(&mut self, h: SocketHandle) -> Option<&mut Slot> {
        self.slots
            .get_mut(h.index as usize)
            .filter(|s| s.generation == h.generation && s.socket.is_some())
    }

    fn tcb(&self, h: SocketHandle) -> Result<&Tcb, Error> {
        match self.slot(h).and_then(|s| s.socket.as_ref()) {
            Some(Socket::Conn(tcb)) => Ok(tcb),
            Some(Socket::Listener(_)) => Err(Error::NotConnected),
            None => Err(Error::InvalidHandle),
        }
    }

    fn tcb_mut(&mut self, h: SocketHandle) -> Result<&mut Tcb, Error> {
        match self.slot_mut(h).and_then(|s| s.socket.as_mut()) {
            Some(Socket::Conn(tcb)) => Ok(tcb),
            Some(Socket::Listener(_)) => Err(Error::NotConnected),
            None => Err(Error::InvalidHandle),
        }
    }

    fn listener_mut(&mut self, h: SocketHandle) -> Result<&mut Listener, Error> {
        match self.slot_mut(h).and_then(|s| s.socket.as_mut()) {
            Some(Socket::Listener(l)) => Ok(l),
            Some(Socket::Conn(_)) => Err(Error::InvalidInput),
            None => Err(Error::InvalidHandle),
        }
    }

    fn free_slot(&mut self, h: SocketHandle) {
        let Some(slot) = self.slot_mut(h) else {
            return;
        };
        let keys = std::mem::take(&mut slot.timer_keys);
        let socket = slot.socket.take();
        slot.generation = slot.generation.wrapping_add(1);
        slot.in_tx_queue = false;
        slot.pending_events = 0;
        slot.in_accept_queue = false;
        slot.counted = false;
        let mem = std::mem::take(&mut slot.mem);
        let orphan = std::mem::take(&mut slot.orphan);
        slot.young = false;
        self.mem_used -= mem;
        self.orphans -= usize::from(orphan);
        for key in keys.into_iter().flatten() {
            self.wheel.cancel(key);
        }
        match socket {
            Some(Socket::Conn(tcb)) if self.conns.get(&(tcb.local, tcb.remote)) == Some(&h) => {
                self.conns.remove(&(tcb.local, tcb.remote));
            }
            Some(Socket::Listener(l)) => {
                let port = l.local.port();
                if let Some(group) = self.listeners.get_mut(&port) {
                    group.retain(|&x| x != h);
                    if group.is_empty() {
                        self.listeners.remove(&port);
                    }
                }
            }
            _ => {}
        }
        self.free_slots.push(h.index);
    }

    fn check_local(&self, local: SocketAddrV4) -> Result<(), Error> {
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
    fn add_listener(&mut self, port: u16, backlog: usize) -> SocketHandle {
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
    fn ephemeral_port(&mut self, remote: Option<SocketAddrV4>) -> Result<u16, Error> {
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

    /// Connections the application closed that still have data or a FIN to
    /// deliver, or wait in FIN-WAIT-2 (TIME-WAIT not counted).
    pub fn orphans(&self) -> usize {
        self.orphans
    }

    /// How many sockets (listeners and connections, TIME-WAIT included) are live.
    pub fn socket_count(&self) -> usize {
        self.slots.len() - self.free_slots.len()
    }

    // ----- Bookkeeping after every change to a connection -----

    /// Brings the wheel, the event queue, the transmit queue and the listener
    /// queues up to date with what a connection now wants, and frees it if done.
    fn after(&mut self, now: Instant, h: SocketHandle) {
        self.update(now, h, true);
    }

    /// [`after`](Engine::after), optionally leaving the transmit queue alone (for a
    /// connection that was just asked and had nothing to send).
    fn update(&mut self, now: Instant, h: SocketHandle, may_queue: bool) {
        let Some(slot) = self
            .slots
            .get_mut(h.index as usize)
            .filter(|s| s.generation == h.generation)
        else {
            return;
        };
        let Some(Socket::Conn(tcb)) = slot.socket.as_mut() else {
            return;
        };
        // Timers.
        if tcb.timers_dirty {
            tcb.timers_dirty = false;
            for timer in Timer::ALL {
                let want = tcb.timers[timer as usize].map(|at| at.as_nanos().div_ceil(TICK_NANOS));
                let key = &mut slot.timer_keys[timer as usize];
                match (want, *key) {
                    (None, None) => {}
                    (None, Some(k)) => {
                        self.wheel.cancel(k);
                        *key = None;
                    }
                    (Some(tick), Some(k)) => {
                        if self.wheel.deadline(k) != Some(tick) && !self.wheel.reset(k, tick) {
                            *key = Some(self.wheel.insert(tick, (h, timer)));
                        }
                    }
                    (Some(tick), None) => *key = Some(self.wheel.insert(tick, (h, timer))),
                }
            }
        }
        // RFC 5961 §7: challenge ACKs are rate-limited across the whole stack.
        if tcb.challenge_pending {
            tcb.challenge_pending = false;
            let second = now.as_nanos() / 1_000_000_000;
            if self.challenge_window.0 != second {
                self.challenge_window = (second, 0);
            }
            if self.challenge_window.1 < self.config.challenge_ack_limit {
                self.challenge_window.1 += 1;
                self.stats.challenge_acks_sent += 1;
                tcb.send_challenge_ack();
            } else {
                trace!(parent: tcb.span(), "challenge ACK suppressed");
                self.stats.challenge_acks_suppressed += 1;
            }
        }
        // Readiness.
        if tcb.events != 0 {
            if slot.pending_events == 0 {
                self.events.push_back(h);
            }
            slot.pending_events |= tcb.events;
            tcb.events = 0;
        }
        if !slot.counted && tcb.state.is_synchronized() {
            slot.counted = true;
            self.stats.connections_established += 1;
        }
        // Memory: the stack-wide count and level (Linux's `tcp_mem`).
        let mem = tcb.mem_allocated();
        if mem != slot.mem {
            self.mem_used = self.mem_used - slot.mem + mem;
            slot.mem = mem;
            let limits = self.mem_limits;
            if self.mem_used > limits.pressure && !self.mem_pressure {
                self.mem_pressure = true;
                self.stats.memory_pressure_entered += 1;
                debug!(bytes = self.mem_used, "memory pressure");
            } else if self.mem_used < limits.low && self.mem_pressure {
                self.mem_pressure = false;
                debug!(bytes = self.mem_used, "memory pressure over");
            }
        }
        tcb.mem_level = if self.mem_used > self.mem_limits.high {
            MemLevel::High
        } else if self.mem_pressure {
            MemLevel::Pressure
        } else {
            MemLevel::Normal
        };
        if tcb.dropped_for_memory > 0 {
            self.stats.dropped_for_memory += std::mem::take(&mut tcb.dropped_for_memory);
        }
        let orphan = tcb.released && !matches!(tcb.state, State::TimeWait | State::Closed);
        if orphan != slot.orphan {
            slot.orphan = orphan;
            if orphan {
                self.orphans += 1;
            } else {
                self.orphans -= 1;
            }
        }
        // Transmission.
        if may_queue && !slot.in_tx_queue && tcb.wants_output() {
            slot.in_tx_queue = true;
            self.tx_queue.push_back(h);
        }
        let state = tcb.state;
        let parent = tcb.parent;
        let finished = tcb.is_finished();
        let in_accept_queue = slot.in_accept_queue;
        // The listener's queues.
        if let Some(p) = parent {
            if !in_accept_queue && state != State::SynReceived {
                if std::mem::take(&mut slot.young)
                    && let Ok(l) = self.listener_mut(p)
                {
                    l.young -= 1;
                }
                let established = state != State::Closed;
                match self.listener_mut(p) {
                    Ok(l) => {
                        l.syn_queue = l.syn_queue.saturating_sub(1);
                        if established {
                            l.accept_queue.push_back(h);
                            if let Some(s) = self.slot_mut(h) {
                                s.in_accept_queue = true;
                            }
                            self.raise(p, EV_READ);
                        }
                    }
                    Err(_) => {
                        // The listener is gone: nobody will accept this one.
                        if let Ok(tcb) = self.tcb_mut(h) {
                            tcb.abort();
                        }
                    }
                }
                if !established || self.slot(h).is_some_and(|s| !s.in_accept_queue) {
                    if let Ok(tcb) = self.tcb_mut(h) {
                        tcb.parent = None;
                        tcb.released = true;
                    }
                    self.after(now, h);
                }
            }
        } else if finished {
            self.free_slot(h);
        }
    }

    fn raise(&mut self, h: SocketHandle, bits: u8) {
        if let Some(slot) = self.slot_mut(h) {
            let was = slot.pending_events;
            slot.pending_events |= bits;
            if was == 0 {
                self.events.push_back(h);
            }
        }
    }

    // ----- Events and timers -----

    /// The next readiness change, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        while let Some(h) = self.events.pop_front() {
            let Some(slot) = self.slot_mut(h) else {
                continue;
            };
            let bits = std::mem::take(&mut slot.pending_events);
            if bits != 0 {
                return Some(Event {
                    handle: h,
                    readable: bits & EV_READ != 0,
                    writable: bits & EV_WRITE != 0,
                });
            }
        }
        None
    }

    /// The earliest timer deadline, if any timer is pending.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.wheel
            .next_deadline()
            .map(|tick| Instant::from_nanos(tick.saturating_mul(TICK_NANOS)))
    }

    /// Fires every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        let tick = now.as_nanos() / TICK_NANOS;
        while let Some((key, (h, timer))) = self.wheel.poll(tick) {
            let Some(slot) = self.slot_mut(h) else {
                continue;
            };
            if slot.timer_keys[timer as usize] != Some(key) {
                continue;
            }
            slot.timer_keys[timer as usize] = None;
            let embryo = match slot.socket.as_ref() {
                Some(Socket::Conn(tcb))
                    if timer == Timer::Retransmit && tcb.state == State::SynReceived =>
                {
                    tcb.parent.map(|p| (p, std::mem::take(&mut slot.young)))
                }
                _ => None,
            };
            if let Some((p, was_young)) = embryo {
                // An embryo's SYN-ACK goes again: it is old now, and a
                // crowded listener gives it fewer tries.
                let retries = self.config.synack_retries;
                let limit = self.listener_mut(p).ok().map(|l| {
                    if was_young {
                        l.young -= 1;
                    }
                    l.synack_retries(retries)
                });
                if let (Some(limit), Ok(tcb)) = (limit, self.tcb_mut(h)) {
                    tcb.synack_retries = tcb.synack_retries.min(limit);
                }
            }
            let Some(slot) = self.slot_mut(h) else {
                continue;
            };
            if let Some(Socket::Conn(tcb)) = slot.socket.as_mut() {
                let span = tcb.span().clone();
                let _enter = span.enter();
                tcb.on_timer(now, timer);
            }
            self.after(now, h);
        }
    }

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

    fn handle_icmp(&mut self, now: Instant, src: Ipv4Addr, payload: &[u8]) {
        let suppressed = self.icmp.suppressed;
        match self.icmp.input(src, payload, &self.checksums) {
            IcmpInput::Answered => self.stats.icmp_echo_replies += 1,
            IcmpInput::Malformed => self.stats.rx_malformed += 1,
            IcmpInput::Ignored => {}
            IcmpInput::TcpError(e) => {
                self.stats.icmp_errors_received += 1;
                if *e.local.ip() != self.iface.addr {
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

    fn handle_segment(
        &mut self,
        now: Instant,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        seg: &Segment<'_>,
    ) {
        if let Some(&h) = self.conns.get(&(local, remote)) {
            let has_listener = self.listeners.contains_key(&local.port());
            let coalesce_acks = self.config.coalesce_acks;
            let owed_room = self.owed_acks.len() < MAX_OWED_ACKS;
            let tcb = self
                .tcb_mut(h)
                .expect("connection table names a live connection");
            // RFC 9293 §3.10.7.4 / RFC 6191: a new SYN may reuse a TIME-WAIT pair when
            // its timestamp (or else its sequence number) is beyond the old connection's.
            let reuse = tcb.state == State::TimeWait
                && seg.ctl == Ctl::Syn
                && seg.ack.is_none()
                && tcb.syn_may_reuse(seg)
                && has_listener;
            // A connection that ended (reset, timed out) while the application
            // still holds its handle is no connection to the peer: its segments
            // go to the listener or get a RST (RFC 9293 §3.10.7.1), so a peer
            // that restarted can connect again (§3.5.1, Figure 10).
            let dead = tcb.state == State::Closed;
            if !reuse && !dead {
                let span = tcb.span().clone();
                let _enter = span.enter();
                trace!(seq = %seg.seq, ack = ?seg.ack, ctl = ?seg.ctl, len = seg.payload.len(), "segment in");
                // An ACK still owed for earlier segments goes out before this
                // one changes what it would say (RFC 1122 §4.2.3.2, RFC 5681
                // §4.2): no stretch ACKs however large the driver's batches,
                // unless the configuration asks for them.
                // With `coalesce_acks` only duplicate ACKs (data held past a
                // gap) still go out one per segment, as GRO never merges
                // out-of-order segments.
                let owed = (!seg.payload.is_empty() || seg.ctl == Ctl::Fin)
                    && tcb.owes_ack()
                    && (!coalesce_acks || tcb.rcv_has_gaps());
                if owed && !owed_room {
                    self.stats.owed_acks_merged += 1;
                } else if owed && let Some(out) = tcb.take_owed_ack(now) {
                    trace!(seq = %out.seq, ack = ?out.ack, "owed ACK out");
                    let mut buf = self.spare_acks.pop().unwrap_or_default();
                    buf.resize(OWED_ACK_BUF.min(self.iface.mtu), 0);
                    let tcb = self.tcb(h).expect("live connection");
                    let len = Self::emit_for(&self.checksums, tcb, &out, &mut buf);
                    buf.truncate(len);
                    self.owed_acks.push_back(buf);
                }
                let tcb = self
                    .tcb_mut(h)
                    .expect("connection table names a live connection");
                tcb.on_segment(now, seg);
                self.after(now, h);
                return;
            }
            if reuse {
                self.free_slot(h);
            }
        }
        if let Some(group) = self.listeners.get(&local.port()) {
            // SO_REUSEPORT: the listeners of a port share its connections by
            // a hash of the peer's address, so one peer's segments always meet
            // the same listener (as Linux's `reuseport_select_sock`).
            let lh = match group.len() {
                1 => group[0],
                n => group[reuseport_pick(remote, n)],
            };
            self.listen_segment(now, lh, local, remote, seg);
            return;
        }
        self.stats.rx_no_socket += 1;
        self.reply_rst(local, remote, seg);
    }

    /// RFC 9293 §3.10.7.2: a segment for a listener.
    fn listen_segment(
        &mut self,
        now: Instant,
        lh: SocketHandle,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        seg: &Segment<'_>,
    ) {
        match seg.ctl {
            Ctl::Rst => return,
            _ if seg.ack.is_some() => {
                if seg.ctl != Ctl::Syn && self.cookie_ack(now, lh, local, remote, seg) {
                    return;
                }
                self.reply_rst(local, remote, seg);
                return;
            }
            Ctl::Syn => {}
            _ => return,
        }
        let mode = self.config.syn_cookies;
        let Ok(listener) = self.listener_mut(lh) else {
            return;
        };
        // A full accept queue drops the SYN, cookie or not (as Linux): the
        // application is not keeping up, and the client will retry.
        if listener.accept_queue.len() >= listener.backlog {
            self.stats.syn_dropped += 1;
            return;
        }
        let syn_queue_full = listener.syn_queue >= listener.backlog;
        let cookie = match mode {
            SynCookies::Off => false,
            SynCookies::OnOverflow => syn_queue_full,
            SynCookies::Always => true,
        };
        if cookie {
            listener.cookie_sent = Some(now);
            self.send_cookie(now, lh, local, remote, seg);
            return;
        }
        if syn_queue_full {
            self.stats.syn_dropped += 1;
            return;
        }
        listener.syn_queue += 1;
        let iss = self.secret.isn(now, local, remote);
        let (cfg, opts) = self.accept_config(lh);
        let tcb = Tcb::accept_syn(&cfg, local, remote, iss, self.iface.mtu, seg);
        let h = self.add_child(now, lh, &cfg, &opts, tcb);
        if let Some(slot) = self.slot_mut(h) {
            slot.young = true;
        }
        if let Ok(l) = self.listener_mut(lh) {
            l.young += 1;
        }
        self.after(now, h);
    }

    /// Answers a SYN with a cookie SYN-ACK and keeps nothing (RFC 4987 §3.6;
    /// tcp/syncookie.rs). The peer's window scale and SACK-permitted ride in
    /// the timestamp if it offered timestamps; otherwise the connection will
    /// have neither, and the SYN-ACK offers neither.
    fn send_cookie(
        &mut self,
        now: Instant,
        lh: SocketHandle,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        seg: &Segment<'_>,
    ) {
        if self.cookie_synacks.len() >= MAX_COOKIE_REPLIES {
            self.stats.syn_dropped += 1;
            return;
        }
        let (cfg, _) = self.accept_config(lh);
        let mss_idx = syncookie::mss_index(seg.mss.unwrap_or(536));
        let iss = syncookie::make(&self.secret, now, local, remote, seg.seq, mss_idx);
        let peer_ts = seg.timestamp.filter(|_| cfg.timestamps);
        let opts = syncookie::TsOptions {
            wscale: seg
                .window_scale
                .filter(|_| peer_ts.is_some() && cfg.window_scaling),
            sack: peer_ts.is_some() && cfg.sack && seg.sack_permitted,
        };
        let timestamp = peer_ts.map(|(tsval, _)| {
            let clock = self
                .secret
                .ts_offset(local, remote)
                .wrapping_add(now.as_millis() as u32);
            (syncookie::encode_ts(clock, opts), tsval)
        });
        let out = Outbound {
            seq: iss,
            ack: Some(seg.seq + 1u32),
            ctl: Ctl::Syn,
            window: syn_window(&cfg, self.iface.mtu),
            mss: Some(offered_mss(&cfg, self.iface.mtu)),
            window_scale: opts.wscale.map(|_| window_scale_for(&cfg)),
            payload_offset: 0,
            payload_len: 0,
            psh: false,
            timestamp,
            sack_permitted: opts.sack,
            sack_blocks: [None; tcp::sack::MAX_BLOCKS],
            urgent: None,
        };
        self.stats.syncookies_sent += 1;
        self.cookie_synacks.push_back((local, remote, out));
    }

    /// An ACK for no connection reached listener `lh`: if it brings back a
    /// valid cookie, the connection is made (and the ACK handed to it) and
    /// true returned. An invalid cookie at a listener that sent cookies in the
    /// last two minutes (or always does) is dropped and counted, also true;
    /// otherwise false, and the caller answers with a RST as usual.
    fn cookie_ack(
        &mut self,
        now: Instant,
        lh: SocketHandle,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        seg: &Segment<'_>,
    ) -> bool {
        let mode = self.config.syn_cookies;
        let Ok(listener) = self.listener_mut(lh) else {
            return false;
        };
        let recent = listener
            .cookie_sent
            .is_some_and(|t| now - t < std::time::Duration::from_secs(120));
        if mode == SynCookies::Off || (mode == SynCookies::OnOverflow && !recent) {
            return false;
        }
        let full = listener.accept_queue.len() >= listener.backlog;
        let Some(ack) = seg.ack else {
            return false;
        };
        let peer_isn = seg.seq - 1u32;
        let cookie = ack - 1u32;
        let checked = syncookie::check(&self.secret, now, local, remote, peer_isn, cookie);
        let (cfg, opts) = self.accept_config(lh);
        let ts_opts = match seg.timestamp {
            Some((_, tsecr)) if cfg.timestamps => syncookie::decode_ts(tsecr),
            _ => Some(syncookie::TsOptions {
                wscale: None,
                sack: false,
            }),
        };
        let (Some(mss_idx), Some(ts_opts)) = (checked, ts_opts) else {
            trace!(%local, %remote, "invalid SYN cookie");
            self.stats.syncookies_failed += 1;
            return true;
        };
        if full {
            self.stats.syn_dropped += 1;
            return true;
        }
        let syn = Segment {
            seq: peer_isn,
            ack: None,
            ctl: Ctl::Syn,
            window: seg.window,
            mss: Some(syncookie::MSS_TABLE[mss_idx]),
            window_scale: ts_opts.wscale,
            payload: &[],
            timestamp: seg.timestamp,
            sack_permitted: ts_opts.sack,
            sack_blocks: [None; 3],
            urgent: None,
        };
        let tcb = Tcb::from_cookie(&cfg, local, remote, cookie, self.iface.mtu, &syn);
        let h = self.add_child(now, lh, &cfg, &opts, tcb);
        if let Ok(tcb) = self.tcb_mut(h) {
            let span = tcb.span().clone();
            let _enter = span.enter();
            tcb.on_segment(now, seg);
        }
        if let Ok(l) = self.listener_mut(lh) {
            l.syn_queue += 1;
        }
        self.stats.syncookies_valid += 1;
        self.after(now, h);
        true
    }

    /// Files a new passive connection of listener `lh`: it inherits the
    /// listener's socket options (nodelay, reuse, keepalive, linger, as Linux
    /// copies them to the child), its clocks start, and it joins the table.
    fn add_child(
        &mut self,
        now: Instant,
        lh: SocketHandle,
        cfg: &Config,
        opts: &SocketOptions,
        mut tcb: Tcb,
    ) -> SocketHandle {
        tcb.nodelay = opts.nodelay;
        tcb.reuseaddr = opts.reuseaddr;
        tcb.reuseport = opts.reuseport;
        tcb.keepalive = opts.keepalive;
        tcb.linger = opts.linger;
        let (local, remote) = (tcb.local, tcb.remote);
        tcb.start(now, cfg, self.secret.ts_offset(local, remote));
        tcb.parent = Some(lh);
        let h = self.alloc_slot(Socket::Conn(Box::new(tcb)));
        self.conns.insert((local, remote), h);
        h
    }

    /// RFC 9293 §3.10.7.1: the answer to a segment for no connection.
    fn reply_rst(&mut self, local: SocketAddrV4, remote: SocketAddrV4, seg: &Segment<'_>) {
        if seg.ctl == Ctl::Rst {
            return;
        }
        if self.replies.len() >= MAX_REPLIES {
            self.stats.rst_dropped += 1;
            return;
        }
        let reply = match seg.ack {
            Some(ack) => Reply {
                local,
                remote,
                seq: ack,
                ack: None,
            },
            None => {
                let len =
                    seg.payload.len() as u32 + u32::from(matches!(seg.ctl, Ctl::Syn | Ctl::Fin));
                Reply {
                    local,
                    remote,
                    seq: Seq(0),
                    ack: Some(seg.seq + len),
                }
            }
        };
        self.replies.push_back(reply);
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

    fn emit(
        &self,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        out: &Outbound,
        tcb: Option<&Tcb>,
        buf: &mut [u8],
    ) -> usize {
        Self::emit_with(
            &self.checksums,
            self.config.ttl,
            local,
            remote,
            out,
            tcb,
            buf,
        )
    }

    /// Builds segment `out` of connection `tcb` in `buf` (see [`emit_with`](Engine::emit_with)).
    fn emit_for(
        checksums: &ChecksumCapabilities,
        tcb: &Tcb,
        out: &Outbound,
        buf: &mut [u8],
    ) -> usize {
        Self::emit_with(
            checksums,
            tcb.ttl,
            tcb.local,
            tcb.remote,
            out,
            Some(tcb),
            buf,
        )
    }

    /// Builds the IPv4 datagram of `out` in `buf`: payload first, straight from the
    /// send buffer, then the headers, whose checksum covers it.
    fn emit_with(
        checksums: &ChecksumCapabilities,
        ttl: u8,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        out: &Outbound,
        tcb: Option<&Tcb>,
        buf: &mut [u8],
    ) -> usize {
        let mut repr = TcpRepr {
            src_port: local.port(),
            dst_port: remote.port(),
            control: match out.ctl {
                Ctl::Syn => TcpControl::Syn,
                Ctl::Fin => TcpControl::Fin,
                Ctl::Rst => TcpControl::Rst,
                Ctl::None if out.psh => TcpControl::Psh,
                Ctl::None => TcpControl::None,
            },
            seq_number: TcpSeqNumber::from(out.seq),
            ack_number: out.ack.map(TcpSeqNumber::from),
            window_len: out.window,
            window_scale: out.window_scale,
            max_seg_size: out.mss,
            sack_permitted: out.sack_permitted,
            sack_ranges: [None; 3],
            timestamp: out
                .timestamp
                .map(|(tsval, tsecr)| TcpTimestampRepr::new(tsval, tsecr)),
            payload: &[],
        };
        // RFC 2018 §3: as many SACK blocks as the option space left allows
        // (three beside timestamps; smoltcp emits at most three), and the
        // datagram (`buf` is one MTU) still holds.
        if out.sack_blocks[0].is_some() && !out.sack_permitted {
            let used = repr.header_len() - 20;
            let room = buf
                .len()
                .saturating_sub(20 + repr.header_len() + out.payload_len);
            let fit = (40usize.saturating_sub(used).min(room).saturating_sub(2) / 8).min(3);
            for (slot, block) in repr.sack_ranges.iter_mut().zip(out.sack_blocks).take(fit) {
                *slot = block.map(|(l, r)| (l.0, r.0));
            }
        }
        let ip_len = 20;
        let tcp_len = repr.header_len() + out.payload_len;
        let total = ip_len + tcp_len;
        let buf = &mut buf[..total];
        if let Some(tcb) = tcb
            && out.payload_len > 0
        {
            tcb.copy_payload(out, &mut buf[ip_len + repr.header_len()..]);
        }
        let ip_repr = Ipv4Repr {
            src_addr: *local.ip(),
            dst_addr: *remote.ip(),
            next_header: IpProtocol::Tcp,
            payload_len: tcp_len,
            hop_limit: ttl,
        };
        ip_repr.emit(&mut Ipv4Packet::new_unchecked(&mut buf[..]), checksums);
        // RFC 1122 §4.2.4.2: the connection's TOS goes to IP unchanged.
        if let Some(tcb) = tcb
            && tcb.tos != 0
        {
            let mut ip = Ipv4Packet::new_unchecked(&mut buf[..]);
            ip.set_dscp(tcb.tos >> 2);
            ip.set_ecn(tcb.tos & 0x03);
            if checksums.ipv4.tx() {
                ip.fill_checksum();
            }
        }
        repr.emit(
            &mut TcpPacket::new_unchecked(&mut buf[ip_len..]),
            &IpAddress::Ipv4(*local.ip()),
            &IpAddress::Ipv4(*remote.ip()),
            checksums,
        );
        if let Some(pointer) = out.urgent {
            // smoltcp's representation has no urgent pointer: set it on the packet.
            let mut tcp = TcpPacket::new_unchecked(&mut buf[ip_len..]);
            tcp.set_urg(true);
            tcp.set_urgent_at(pointer);
            if checksums.tcp.tx() {
                tcp.fill_checksum(
                    &IpAddress::Ipv4(*local.ip()),
                    &IpAddress::Ipv4(*remote.ip()),
                );
            }
        }
        total
    }
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("iface", &self.iface)
            .field("sockets", &self.socket_count())
            .field("stats", &self.stats)
            .finish()
    }
}

/// Which of `n` SO_REUSEPORT listeners takes a connection from `remote`: a
/// fixed mix of the peer's address and port (splitmix64's finaliser).
fn reuseport_pick(remote: SocketAddrV4, n: usize) -> usize {
    let mut x = (u64::from(u32::from(*remote.ip())) << 16) | u64::from(remote.port());
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^= x >> 31;
    (x % n as u64) as usize
}
