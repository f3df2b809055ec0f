//! The sans-IO protocol engine of synack: an IPv4 host (`ip/`: addresses,
//! loopback, routing, fragmentation and reassembly), TCP (`tcp/`), UDP
//! (`udp/`) and ICMP (`icmp/`) as a plain state machine.
//!
//! The engine does no I/O, reads no clock and knows nothing of tokio. The
//! caller feeds it packets and time and takes packets and events out:
//!
//! - [`Engine::handle_packet`]: one inbound IPv4 datagram;
//! - [`Engine::poll_transmit`]: the next outbound datagram, until `None`
//!   (datagrams to a local address are delivered inside on the way);
//! - [`Engine::poll_timeout`] / [`Engine::handle_timeout`]: the earliest timer
//!   deadline, and firing what is due;
//! - [`Engine::poll_event`]: readiness changes per socket;
//! - socket calls by [`SocketHandle`]: [`listen`](Engine::listen),
//!   [`accept`](Engine::accept), [`connect`](Engine::connect),
//!   [`send`](Engine::send), [`recv`](Engine::recv),
//!   [`shutdown`](Engine::shutdown), [`close`](Engine::close),
//!   [`abort`](Engine::abort); UDP by [`udp_bind`](Engine::udp_bind),
//!   [`udp_connect`](Engine::udp_connect), [`udp_send`](Engine::udp_send),
//!   [`udp_recv`](Engine::udp_recv); addresses by
//!   [`add_address`](Engine::add_address) and
//!   [`remove_address`](Engine::remove_address).
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
mod checksum;
mod config;
mod conn_opts;
mod error;
mod icmp;
mod ip;
mod isn;
mod seq;
mod socket_api;
mod sockets;
mod table_hash;
mod tcp;
mod time;
mod udp;

#[cfg(test)]
mod tests;

use std::collections::{HashMap, VecDeque};

use std::net::{Ipv4Addr, SocketAddrV4};
use table_hash::TableHash;

use smoltcp::phy::{Checksum, ChecksumCapabilities};
use synack_wheel::{Key, Wheel};
use tracing::{debug, trace};

pub use config::{Config, MemoryLimits, SynCookies};
pub use conn_opts::Keepalive;
pub use error::Error;
pub use ip::{Cidr, LOOPBACK_MTU};
pub use seq::Seq;
pub use socket_api::{Readiness, Reuse, SocketOptions};
pub use sockets::{Protocol, SocketState, SocketSummary};
pub use tcp::cc::CongestionAlgorithm;
pub use tcp::connection::{CaState, State, TcpInfo, Timer};
pub use time::Instant;
pub use udp::MAX_UDP_PAYLOAD;

use icmp::Icmp;
use isn::Secret;
use tcp::buffer::MemLevel;
use tcp::connection::{EV_READ, EV_WRITE, Outbound, Tcb};
use tcp::listener::Listener;

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
    /// Packets dropped because they did not parse (truncated, bad header).
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
    /// Datagrams delivered inside the host over the loopback interface (to
    /// 127.0.0.0/8 or one of the host's addresses); not counted in
    /// `rx_packets` or `tx_packets`, which count the device's.
    pub loopback_packets: u64,
    /// Datagrams with a 127/8 address that would have left on the device,
    /// dropped (RFC 1122 §3.2.1.3).
    pub tx_martian: u64,
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
    /// UDP datagrams queued at a socket.
    pub udp_rx: u64,
    /// UDP datagrams sent (each counted once, however many fragments).
    pub udp_tx: u64,
    /// UDP datagrams dropped because the socket's receive buffer was full.
    pub udp_rx_dropped: u64,
    /// UDP datagrams for a port no socket holds (answered with ICMP port
    /// unreachable unless broadcast).
    pub udp_no_port: u64,
    /// IPv4 fragments received for us (RFC 791).
    pub frag_received: u64,
    /// Datagrams reassembled from fragments (RFC 1122 §3.3.2).
    pub frag_reassembled: u64,
    /// Partial datagrams dropped when their reassembly time ran out.
    pub frag_timeouts: u64,
    /// Fragments or partial datagrams dropped: overlapping (the RFC 5722
    /// rule, as Linux for IPv4), malformed, too large, or pushed out by the
    /// memory bound ([`Config::reassembly_memory`]).
    pub frag_dropped: u64,
    /// Bytes held now by partial datagrams.
    pub frag_memory: usize,
    /// Partial datagrams held now.
    pub frag_pending: usize,
    /// Datagrams larger than the device's MTU sent in fragments (RFC 791 §3.2).
    pub frag_created: u64,
    /// Connections whose 4-tuple a new connection of ours took over from
    /// TIME-WAIT ([`Config::tw_reuse`]).
    pub time_wait_reused: u64,
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
    Udp(Box<udp::UdpSocket>),
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
    /// The device interface's addresses (the IP layer, ip/).
    addrs: ip::Addresses,
    checksums: ChecksumCapabilities,
    /// Checksums on the loopback interface: none.
    lo_checksums: ChecksumCapabilities,
    /// Partial datagrams waiting for their other fragments (ip/frag.rs).
    reassembly: ip::frag::Reassembler,
    /// A datagram larger than the device's MTU going out in fragments.
    frag_out: Option<ip::frag::Fragmenter>,
    /// The last IP Identification given to a datagram that may be fragmented.
    ip_id: u16,
    /// Where loopback datagrams are built (one loopback MTU, allocated on
    /// first use).
    lo_buf: Vec<u8>,
    secret: Secret,
    slots: Vec<Slot>,
    free_slots: Vec<u32>,
    conns: HashMap<(SocketAddrV4, SocketAddrV4), SocketHandle, TableHash>,
    /// Listeners by port, with their addresses: per address one, or several
    /// that all set `SO_REUSEPORT`.
    listeners: HashMap<u16, Vec<(SocketHandle, Ipv4Addr)>, TableHash>,
    /// UDP sockets by port (udp/).
    udp_ports: HashMap<u16, Vec<SocketHandle>, TableHash>,
    /// UDP datagrams waiting to go out.
    udp_tx: VecDeque<udp::UdpOut>,
    /// RFC 6056's table of counters for the ephemeral port search
    /// (tcp/calls.rs), allocated on the first connect.
    port_perturb: Vec<u32>,
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
        checksums.udp = mode;
        let mut secret = Secret::new(secret);
        let (lo, hi) = config.ephemeral_ports;
        let span = u64::from(hi.saturating_sub(lo)) + 1;
        let next_port = lo.wrapping_add((secret.next_u64() % span) as u16);
        let ip_id = secret.next_u64() as u16;
        let table_hash = TableHash::new(secret.next_u64(), secret.next_u64());
        let reassembly =
            ip::frag::Reassembler::new(config.reassembly_timeout, config.reassembly_memory);
        let mem_limits = config
            .memory
            .unwrap_or_else(|| MemoryLimits::for_buffers(config.send_buffer, config.recv_buffer));
        Ok(Engine {
            mem_limits,
            mem_used: 0,
            mem_pressure: false,
            orphans: 0,
            config,
            addrs: ip::Addresses::new(ip::Cidr::new(iface.addr, iface.prefix_len)),
            iface,
            checksums,
            lo_checksums: ChecksumCapabilities::ignored(),
            lo_buf: Vec::new(),
            reassembly,
            frag_out: None,
            ip_id,
            secret,
            slots: Vec::new(),
            free_slots: Vec::new(),
            conns: HashMap::with_hasher(table_hash),
            listeners: HashMap::with_hasher(table_hash),
            port_perturb: Vec::new(),
            udp_ports: HashMap::with_hasher(table_hash),
            udp_tx: VecDeque::new(),
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
        let frag = self.reassembly.stats();
        stats.frag_received = frag.fragments_received;
        stats.frag_reassembled = frag.reassembled;
        stats.frag_timeouts = frag.timed_out;
        stats.frag_dropped = frag.overlaps + frag.evicted + frag.malformed + frag.too_big;
        stats.frag_memory = self.reassembly.memory();
        stats.frag_pending = self.reassembly.len();
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
            Some(Socket::Udp(_)) => Err(Error::InvalidInput),
            None => Err(Error::InvalidHandle),
        }
    }

    fn tcb_mut(&mut self, h: SocketHandle) -> Result<&mut Tcb, Error> {
        match self.slot_mut(h).and_then(|s| s.socket.as_mut()) {
            Some(Socket::Conn(tcb)) => Ok(tcb),
            Some(Socket::Listener(_)) => Err(Error::NotConnected),
            Some(Socket::Udp(_)) => Err(Error::InvalidInput),
            None => Err(Error::InvalidHandle),
        }
    }

    fn listener_mut(&mut self, h: SocketHandle) -> Result<&mut Listener, Error> {
        match self.slot_mut(h).and_then(|s| s.socket.as_mut()) {
            Some(Socket::Listener(l)) => Ok(l),
            Some(Socket::Conn(_) | Socket::Udp(_)) => Err(Error::InvalidInput),
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
            Some(Socket::Udp(u)) => self.udp_unlink(h, u.local.port()),
            Some(Socket::Listener(l)) => {
                let port = l.local.port();
                if let Some(group) = self.listeners.get_mut(&port) {
                    group.retain(|&(x, _)| x != h);
                    if group.is_empty() {
                        self.listeners.remove(&port);
                    }
                }
            }
            _ => {}
        }
        self.free_slots.push(h.index);
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
        if tcb.timers_dirty != 0 {
            let dirty = std::mem::take(&mut tcb.timers_dirty);
            for timer in Timer::ALL
                .into_iter()
                .filter(|&t| dirty & (1 << t as u8) != 0)
            {
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
        let wheel = self
            .wheel
            .next_deadline()
            .map(|tick| Instant::from_nanos(tick.saturating_mul(TICK_NANOS)));
        match (wheel, self.reassembly.poll_timeout()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Fires every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.reassembly.poll_timeout().is_some_and(|t| t <= now) {
            for quote in self.reassembly.expire(now) {
                let before = self.icmp.suppressed;
                self.icmp.reassembly_timeout(now, &quote);
                self.stats.icmp_suppressed += self.icmp.suppressed - before;
            }
        }
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
