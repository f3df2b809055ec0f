//! The network: hosts, their links to one router, the event queue and the clock task.

use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeSet, BinaryHeap, HashMap, VecDeque};
use std::fmt;
use std::io::{self, Write};
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use synack_device::{Capabilities, ChecksumOffload, Device, Medium, Packet};
use tokio::sync::Notify;

use crate::capture::{Capture, CapturePoint};
use crate::link::{LinkConfig, LinkState, LinkStats};

/// Settings of a host joined to the router (see [`Network::add_host`]).
///
/// ```
/// use std::net::Ipv4Addr;
/// use std::time::Duration;
/// use synack_sim::{HostConfig, LinkConfig};
///
/// let host = HostConfig::new(Ipv4Addr::new(192, 0, 2, 1))
///     .uplink(LinkConfig::new().delay(Duration::from_millis(5)))
///     .downlink(LinkConfig::new().rate_bps(10_000_000).queue_packets(50));
/// assert_eq!(host.mtu, 1500);
/// assert!(!host.checksum_offload);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HostConfig {
    /// The host's IPv4 address: the router sends packets for it down its downlink.
    pub addr: Ipv4Addr,
    /// The MTU the host's device announces (default 1500). The links' own MTUs
    /// may be smaller, to make a path MTU black hole.
    pub mtu: usize,
    /// Whether the host's device announces checksum offload (default `false`).
    /// Leave it off on links that corrupt: the stack must compute and verify checksums.
    pub checksum_offload: bool,
    /// The link from the host to the router.
    pub uplink: LinkConfig,
    /// The router's output port towards the host: its queue and the link to the host.
    pub downlink: LinkConfig,
}

impl HostConfig {
    /// A host at `addr` with MTU 1500, no checksum offload and perfect links.
    pub fn new(addr: Ipv4Addr) -> HostConfig {
        HostConfig {
            addr,
            mtu: 1500,
            checksum_offload: false,
            uplink: LinkConfig::default(),
            downlink: LinkConfig::default(),
        }
    }

    /// Sets the device MTU.
    pub fn mtu(mut self, mtu: usize) -> Self {
        self.mtu = mtu;
        self
    }

    /// Sets whether the device announces checksum offload.
    pub fn checksum_offload(mut self, on: bool) -> Self {
        self.checksum_offload = on;
        self
    }

    /// Sets the link from the host to the router.
    pub fn uplink(mut self, link: LinkConfig) -> Self {
        self.uplink = link;
        self
    }

    /// Sets the router's output port towards the host.
    pub fn downlink(mut self, link: LinkConfig) -> Self {
        self.downlink = link;
        self
    }
}

/// Counters of the router.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RouterStats {
    /// Packets forwarded to an output port.
    pub forwarded: u64,
    /// Packets dropped because they were not IPv4 or no host has their destination.
    pub unroutable: u64,
    /// ICMP host unreachable messages sent (see [`Network::set_router_addr`]).
    pub icmp_unreachable: u64,
    /// Packets held now between pairs of hosts (see [`Network::hold`]).
    pub held: usize,
}

/// Where a link's packets go when they arrive.
#[derive(Debug, Clone, Copy)]
enum Sink {
    Router,
    Host(usize),
}

struct LinkEntry {
    state: LinkState,
    sink: Sink,
    captures: Vec<Capture>,
}

struct HostState {
    uplink: usize,
    downlink: usize,
    inbox: VecDeque<Packet>,
    waker: Option<Waker>,
    gone: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EventKind {
    /// The packet's last bit leaves the link's transmitter.
    Depart,
    /// The packet reaches the far end of the link.
    Arrive,
}

/// Events run in time order. At one instant, links take turns in an order
/// drawn from the seed and the instant (`tie`), and each link's own events
/// keep the order they were scheduled in (`seq`). So the order never depends
/// on which host's task happened to run first in a tick of tokio's clock:
/// before, an unrelated timer in that tick could reorder the router's
/// arrivals and change which flow a full queue dropped, and the host that
/// ran last in every tick lost at every overflow.
struct Event {
    at: u64,
    tie: u64,
    seq: u64,
    link: usize,
    kind: EventKind,
    packet: Packet,
}

impl PartialEq for Event {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.tie, self.seq) == (other.at, other.tie, other.seq)
    }
}
impl Eq for Event {}
impl PartialOrd for Event {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Event {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.at, self.tie, self.seq).cmp(&(other.at, other.tie, other.seq))
    }
}

/// Where a network's time comes from.
enum Clock {
    /// tokio's clock, from this instant: the clock task runs events as they fall due.
    Tokio(tokio::time::Instant),
    /// Nanoseconds set by [`Network::advance_to`]; no clock task.
    Manual(u64),
}

/// Everything behind the network's lock.
struct Net {
    clock: Clock,
    seed: u64,
    links: Vec<LinkEntry>,
    hosts: Vec<HostState>,
    routes: HashMap<Ipv4Addr, usize>,
    events: BinaryHeap<Reverse<Event>>,
    seq: u64,
    router: RouterStats,
    /// When the clock task will next look at the event queue.
    clock_deadline: Option<u64>,
    /// Hosts' receivers to wake once the lock is released.
    to_wake: Vec<Waker>,
    /// Empty packet buffers given back by hosts, handed out again by `alloc`.
    pool: Vec<Packet>,
    /// The router's own address and its subnet's prefix length; `None`: it
    /// has none and sends no ICMP.
    router_addr: Option<(Ipv4Addr, u8)>,
    /// Directed pairs (source, destination) whose packets are held.
    holds: BTreeSet<(Ipv4Addr, Ipv4Addr)>,
    /// Held packets, oldest first, with their source and destination.
    held: Vec<(Ipv4Addr, Ipv4Addr, Packet)>,
}

/// The most empty buffers the network keeps for reuse.
const POOL_BUFFERS: usize = 4096;

impl Net {
    /// Simulated nanoseconds since the network was made.
    fn now(&self) -> u64 {
        match self.clock {
            Clock::Tokio(epoch) => {
                let d = tokio::time::Instant::now().saturating_duration_since(epoch);
                u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
            }
            Clock::Manual(now) => now,
        }
    }

    fn schedule(&mut self, at: u64, link: usize, kind: EventKind, packet: Packet) {
        self.seq += 1;
        self.events.push(Reverse(Event {
            at,
            tie: crate::rng::mix(self.seed, &[at, link as u64]),
            seq: self.seq,
            link,
            kind,
            packet,
        }));
    }

    fn next_event(&self) -> Option<u64> {
        self.events.peek().map(|Reverse(e)| e.at)
    }

    /// Runs every event due at or before `now`, in time order.
    fn advance(&mut self, now: u64) {
        while self.next_event().is_some_and(|at| at <= now) {
            let Some(Reverse(ev)) = self.events.pop() else {
                break;
            };
            match ev.kind {
                EventKind::Depart => self.depart(ev.at, ev.link, ev.packet),
                EventKind::Arrive => self.arrive(ev.at, ev.link, ev.packet),
            }
        }
    }

    /// A packet enters `link` at `at` (unless its pair is held).
    fn ingress(&mut self, at: u64, link: usize, packet: Packet) {
        let entry = &mut self.links[link];
        for c in &mut entry.captures {
            if c.point == CapturePoint::Ingress {
                c.record(at, &packet);
            }
        }
        if !self.holds.is_empty()
            && let Some((src, dst)) = endpoints(&packet)
            && self.holds.contains(&(src, dst))
        {
            self.held.push((src, dst, packet));
            return;
        }
        let entry = &mut self.links[link];
        if let Ok(departs) = entry.state.enqueue(at, packet.len()) {
            self.schedule(departs, link, EventKind::Depart, packet);
        }
    }

    fn depart(&mut self, at: u64, link: usize, mut packet: Packet) {
        let outcome = self.links[link].state.wire(at, &mut packet);
        if let Some(arrival) = outcome.arrival {
            let copy = outcome.duplicate.then(|| packet.clone());
            self.schedule(arrival, link, EventKind::Arrive, packet);
            if let Some(copy) = copy {
                self.schedule(arrival, link, EventKind::Arrive, copy);
            }
        }
    }

    fn arrive(&mut self, at: u64, link: usize, packet: Packet) {
        let entry = &mut self.links[link];
        entry.state.stats.delivered_packets += 1;
        entry.state.stats.delivered_bytes += packet.len() as u64;
        for c in &mut entry.captures {
            if c.point == CapturePoint::Egress {
                c.record(at, &packet);
            }
        }
        match entry.sink {
            Sink::Host(h) => {
                let host = &mut self.hosts[h];
                if host.gone {
                    return;
                }
                host.inbox.push_back(packet);
                if let Some(w) = host.waker.take() {
                    self.to_wake.push(w);
                }
            }
            Sink::Router => self.route(at, packet),
        }
    }

    fn route(&mut self, at: u64, packet: Packet) {
        let dst = (packet.len() >= 20 && packet[0] >> 4 == 4)
            .then(|| Ipv4Addr::new(packet[16], packet[17], packet[18], packet[19]));
        match dst.and_then(|d| self.routes.get(&d).copied()) {
            Some(h) => {
                self.router.forwarded += 1;
                let downlink = self.hosts[h].downlink;
                self.ingress(at, downlink, packet);
            }
            None => {
                tracing::trace!(?dst, "sim router: unroutable packet dropped");
                self.router.unroutable += 1;
                self.unreachable(at, &packet);
            }
        }
    }

    /// The router answers the source of `datagram` with ICMP host
    /// unreachable, if it has an address, the rules allow (see `icmp.rs`) and
    /// the source is a host it knows.
    fn unreachable(&mut self, at: u64, datagram: &[u8]) -> bool {
        let Some((addr, prefix_len)) = self.router_addr else {
            return false;
        };
        let broadcast =
            (prefix_len < 31).then(|| Ipv4Addr::from(u32::from(addr) | (u32::MAX >> prefix_len)));
        let Some(icmp) = crate::icmp::host_unreachable(addr, broadcast, datagram) else {
            return false;
        };
        let Some(&h) = endpoints(&icmp).and_then(|(_, dst)| self.routes.get(&dst)) else {
            return false;
        };
        self.router.icmp_unreachable += 1;
        let downlink = self.hosts[h].downlink;
        self.ingress(at, downlink, icmp);
        true
    }

    /// Starts holding `from` → `to`, packets in flight included: they leave
    /// the links' event queue and wait, in the order they were sent.
    fn hold(&mut self, from: Ipv4Addr, to: Ipv4Addr) {
        if !self.holds.insert((from, to)) {
            return;
        }
        let events = std::mem::take(&mut self.events).into_vec();
        let (mut caught, rest): (Vec<_>, Vec<_>) = events
            .into_iter()
            .partition(|Reverse(e)| endpoints(&e.packet) == Some((from, to)));
        self.events = rest.into();
        // The further along its way, the earlier a packet was sent: those
        // reaching the receiver first, then those still in its downlink's
        // queue, then those on and in the sender's uplink; each link in its
        // own order.
        let stage = |e: &Event| {
            let to_host = matches!(self.links[e.link].sink, Sink::Host(_));
            match (to_host, e.kind) {
                (true, EventKind::Arrive) => 0,
                (true, EventKind::Depart) => 1,
                (false, EventKind::Arrive) => 2,
                (false, EventKind::Depart) => 3,
            }
        };
        caught.sort_by_key(|Reverse(e)| (stage(e), e.at, e.tie, e.seq));
        // Nothing of this pair is held yet: a release takes all of it.
        self.held
            .extend(caught.into_iter().map(|Reverse(e)| (from, to, e.packet)));
    }

    /// Stops holding `from` → `to`; its held packets go on from the router.
    fn release(&mut self, at: u64, from: Ipv4Addr, to: Ipv4Addr) {
        self.holds.remove(&(from, to));
        let (go, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut self.held)
            .into_iter()
            .partition(|(s, d, _)| (*s, *d) == (from, to));
        self.held = keep;
        for (_, _, packet) in go {
            self.route(at, packet);
        }
    }

    fn add_link(&mut self, config: LinkConfig, sink: Sink) -> usize {
        let index = self.links.len();
        // Each link draws from its own stream, so the impairments of one link
        // do not shift the random choices of another.
        let seed = self.seed ^ (index as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        self.links.push(LinkEntry {
            state: LinkState::new(config, seed),
            sink,
            captures: Vec::new(),
        });
        index
    }
}

/// The source and destination of an IPv4 packet, if it is one.
fn endpoints(p: &[u8]) -> Option<(Ipv4Addr, Ipv4Addr)> {
    (p.len() >= 20 && p[0] >> 4 == 4).then(|| {
        (
            Ipv4Addr::new(p[12], p[13], p[14], p[15]),
            Ipv4Addr::new(p[16], p[17], p[18], p[19]),
        )
    })
}

/// The part of a network every handle shares with the clock task.
struct Shared {
    net: Mutex<Net>,
    /// Wakes the clock task when an event earlier than its deadline appears.
    notify: Arc<Notify>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Net> {
        self.net.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on the network, then wakes whoever it made ready (outside the lock),
    /// and the clock task if the next event is now earlier than its deadline.
    fn with<R>(&self, f: impl FnOnce(&mut Net) -> R) -> R {
        let (r, wake, poke) = {
            let mut net = self.lock();
            let r = f(&mut net);
            let next = net.next_event();
            let poke = next.is_some_and(|n| net.clock_deadline.is_none_or(|d| n < d));
            if poke {
                net.clock_deadline = next;
            }
            (r, std::mem::take(&mut net.to_wake), poke)
        };
        for w in wake {
            w.wake();
        }
        if poke {
            self.notify.notify_one();
        }
        r
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        // Let the clock task notice that the network is gone.
        self.notify.notify_one();
    }
}

/// The task that runs events when they fall due and wakes the hosts they reach.
async fn clock(weak: Weak<Shared>, notify: Arc<Notify>) {
    loop {
        let next = {
            let Some(shared) = weak.upgrade() else {
                return;
            };
            let (wake, next) = {
                let mut net = shared.lock();
                let now = net.now();
                net.advance(now);
                let next = net.next_event();
                net.clock_deadline = next;
                let Clock::Tokio(epoch) = net.clock else {
                    return;
                };
                let at = next.map(|n| epoch + Duration::from_nanos(n));
                (std::mem::take(&mut net.to_wake), at)
            };
            for w in wake {
                w.wake();
            }
            next
        };
        match next {
            Some(at) => {
                tokio::select! {
                    biased;
                    () = notify.notified() => {}
                    () = tokio::time::sleep_until(at) => {}
                }
            }
            None => notify.notified().await,
        }
    }
}

/// A simulated network: hosts joined by one router, each over its own pair of links.
///
/// Packets a host sends go up its uplink to the router, which sends each to the
/// output port of the host with the packet's destination address: that port's
/// queue and link are the destination's downlink. Several flows towards one host
/// thus share one bottleneck queue.
///
/// Time is tokio's: run under `#[tokio::test(start_paused = true)]` and a long
/// transfer takes simulated seconds but little real time. Every random choice
/// comes from the seed, so with paused time a run is the same, packet for
/// packet, every time.
///
/// Making a network spawns its clock task on the current tokio runtime; the
/// task ends when the network, its hosts and links are all dropped.
#[derive(Clone)]
pub struct Network {
    shared: Arc<Shared>,
}

impl Network {
    /// An empty network whose random choices all follow from `seed`.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    pub fn new(seed: u64) -> Network {
        let network = Network::with_clock(seed, Clock::Tokio(tokio::time::Instant::now()));
        let shared = &network.shared;
        tokio::spawn(clock(Arc::downgrade(shared), shared.notify.clone()));
        network
    }

    /// An empty network on a clock of its own, which only
    /// [`advance_to`](Network::advance_to) moves: for a harness that keeps
    /// time itself, such as one running each host on its own tokio runtime
    /// (whose clocks do not agree). Needs no tokio runtime; packets due are
    /// delivered when the clock is advanced (and zero-delay ones at once).
    ///
    /// ```
    /// use std::net::Ipv4Addr;
    /// use std::time::Duration;
    /// use synack_device::Device;
    /// use synack_sim::{HostConfig, LinkConfig, Network};
    ///
    /// let net = Network::manual(1);
    /// let slow = LinkConfig::new().delay(Duration::from_millis(10));
    /// let (a, b) = (Ipv4Addr::new(192, 0, 2, 1), Ipv4Addr::new(192, 0, 2, 2));
    /// let mut host_a = net.add_host(HostConfig::new(a).uplink(slow))?;
    /// let mut host_b = net.add_host(HostConfig::new(b))?;
    /// let mut packet = vec![0x45, 0, 0, 20, 0, 0, 0, 0, 64, 253, 0, 0];
    /// packet.extend_from_slice(&[192, 0, 2, 1, 192, 0, 2, 2]);
    /// let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    /// let _ = host_a.poll_send(&mut cx, &mut vec![packet.clone()].into());
    /// assert_eq!(net.next_event(), Some(Duration::from_millis(10)));
    ///
    /// let mut got = Vec::new();
    /// net.advance_to(Duration::from_millis(9));
    /// assert!(host_b.poll_recv(&mut cx, &mut got, 8).is_pending());
    /// net.advance_to(Duration::from_millis(10));
    /// let _ = host_b.poll_recv(&mut cx, &mut got, 8);
    /// assert_eq!(got, [packet]);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn manual(seed: u64) -> Network {
        Network::with_clock(seed, Clock::Manual(0))
    }

    fn with_clock(seed: u64, clock: Clock) -> Network {
        let notify = Arc::new(Notify::new());
        let shared = Arc::new(Shared {
            net: Mutex::new(Net {
                clock,
                seed,
                links: Vec::new(),
                hosts: Vec::new(),
                routes: HashMap::new(),
                events: BinaryHeap::new(),
                seq: 0,
                router: RouterStats::default(),
                clock_deadline: None,
                to_wake: Vec::new(),
                pool: Vec::new(),
                router_addr: None,
                holds: BTreeSet::new(),
                held: Vec::new(),
            }),
            notify,
        });
        Network { shared }
    }

    /// Moves a [manual](Network::manual) network's clock on to `to` (time
    /// since it was made) and runs every event due by then, waking the
    /// hosts that have packets. The clock never goes back: an earlier `to`
    /// only runs what is due.
    ///
    /// # Panics
    ///
    /// On a network made by [`new`](Network::new), whose clock is tokio's.
    pub fn advance_to(&self, to: Duration) {
        self.shared.with(|net| {
            let Clock::Manual(now) = &mut net.clock else {
                panic!("Network::advance_to on a network whose clock is tokio's");
            };
            *now = (*now).max(u64::try_from(to.as_nanos()).unwrap_or(u64::MAX));
            let now = *now;
            net.advance(now);
        });
    }

    /// When the next packet event (a departure or an arrival) is due, as
    /// time since the network was made; `None` when nothing is on its way.
    pub fn next_event(&self) -> Option<Duration> {
        self.shared.lock().next_event().map(Duration::from_nanos)
    }

    /// Joins a host to the router and returns its end, a [`Device`] for a stack.
    ///
    /// Fails with `AddrInUse` if a host already has the address.
    pub fn add_host(&self, config: HostConfig) -> io::Result<HostEnd> {
        let shared = self.shared.clone();
        self.shared.with(|net| {
            if net.routes.contains_key(&config.addr) {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!("a host with address {} is already joined", config.addr),
                ));
            }
            if net.router_addr.is_some_and(|(a, _)| a == config.addr) {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!("{} is the router's address", config.addr),
                ));
            }
            let h = net.hosts.len();
            let uplink = net.add_link(config.uplink, Sink::Router);
            let downlink = net.add_link(config.downlink, Sink::Host(h));
            net.hosts.push(HostState {
                uplink,
                downlink,
                inbox: VecDeque::new(),
                waker: None,
                gone: false,
            });
            net.routes.insert(config.addr, h);
            Ok(HostEnd {
                shared,
                host: h,
                config,
            })
        })
    }

    /// The link from the host at `addr` to the router; `NotFound` if there is no such host.
    pub fn uplink(&self, addr: Ipv4Addr) -> io::Result<Link> {
        self.host_link(addr, true)
    }

    /// The router's output port towards the host at `addr`; `NotFound` if there is no such host.
    pub fn downlink(&self, addr: Ipv4Addr) -> io::Result<Link> {
        self.host_link(addr, false)
    }

    fn host_link(&self, addr: Ipv4Addr, up: bool) -> io::Result<Link> {
        let net = self.shared.lock();
        let h =
            net.routes.get(&addr).copied().ok_or_else(|| {
                io::Error::new(io::ErrorKind::NotFound, format!("no host at {addr}"))
            })?;
        let host = &net.hosts[h];
        Ok(Link {
            shared: self.shared.clone(),
            index: if up { host.uplink } else { host.downlink },
        })
    }

    /// The router's counters.
    pub fn router_stats(&self) -> RouterStats {
        let net = self.shared.lock();
        RouterStats {
            held: net.held.len(),
            ..net.router
        }
    }

    /// Gives the router the address `addr` on a subnet of `prefix_len` bits,
    /// from which it answers packets for an address no host has with ICMP
    /// destination unreachable, code 1 (host unreachable, RFC 792).
    ///
    /// A new network's router has no address and drops such packets
    /// silently. With one, it quotes the offending datagram's header and as
    /// much of its data as fits in 576 bytes (RFC 1812 §4.3.2.3), fills both
    /// checksums (a host with checksum offload skips verifying them), and
    /// answers every such packet (no rate limit), except an ICMP error, a
    /// non-initial fragment, or one sent to a broadcast or multicast
    /// address or from an address that is not one host's (RFC 1122 §3.2.2,
    /// RFC 1812 §4.3.2.7). The answer crosses the sender's downlink.
    ///
    /// Fails with `AddrInUse` if a host has `addr`, `InvalidInput` if
    /// `prefix_len` is over 32.
    ///
    /// ```
    /// use std::net::Ipv4Addr;
    /// use synack_sim::Network;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> std::io::Result<()> {
    /// let net = Network::new(1);
    /// assert_eq!(net.router_addr(), None);
    /// net.set_router_addr(Ipv4Addr::new(192, 0, 2, 254), 24)?;
    /// assert_eq!(net.router_addr(), Some(Ipv4Addr::new(192, 0, 2, 254)));
    /// # Ok(())
    /// # }
    /// ```
    pub fn set_router_addr(&self, addr: Ipv4Addr, prefix_len: u8) -> io::Result<()> {
        let mut net = self.shared.lock();
        if prefix_len > 32 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("a prefix of {prefix_len} bits"),
            ));
        }
        if net.routes.contains_key(&addr) {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!("a host has address {addr}"),
            ));
        }
        net.router_addr = Some((addr, prefix_len));
        Ok(())
    }

    /// The router's address, if it has one (see [`set_router_addr`](Network::set_router_addr)).
    pub fn router_addr(&self) -> Option<Ipv4Addr> {
        self.shared.lock().router_addr.map(|(a, _)| a)
    }

    /// Has the router answer `datagram`'s source with ICMP host unreachable,
    /// now, as it answers a packet for an unknown address (see
    /// [`set_router_addr`](Network::set_router_addr)): for a harness that
    /// drops packets on its own, such as a partition that should be noticed.
    ///
    /// Returns whether a message was sent: not without a router address, nor
    /// when the rules forbid one or the source is no host's.
    pub fn answer_unreachable(&self, datagram: &[u8]) -> bool {
        self.shared.with(|net| {
            let now = net.now();
            net.advance(now);
            let sent = net.unreachable(now, datagram);
            net.advance(now);
            sent
        })
    }

    /// Holds the packets from `from` to `to` until [`release`](Network::release):
    /// those already on their way (in the sender's uplink or the receiver's
    /// downlink, queued or on the wire) and those sent from now on. Nothing
    /// held is lost, and the order is kept.
    ///
    /// One direction only: hold both for a pair. Packets already delivered to
    /// the receiver (waiting for its stack to read them) are not recalled.
    ///
    /// ```
    /// use std::net::Ipv4Addr;
    /// use std::time::Duration;
    /// use synack_sim::{HostConfig, LinkConfig, Network};
    /// use synack_device::Device;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> std::io::Result<()> {
    /// let net = Network::new(1);
    /// let slow = LinkConfig::new().delay(Duration::from_millis(100));
    /// let (a, b) = (Ipv4Addr::new(192, 0, 2, 1), Ipv4Addr::new(192, 0, 2, 2));
    /// let mut host_a = net.add_host(HostConfig::new(a).uplink(slow))?;
    /// let mut host_b = net.add_host(HostConfig::new(b))?;
    /// let mut packet = vec![0x45, 0, 0, 20, 0, 0, 0, 0, 64, 253, 0, 0];
    /// packet.extend_from_slice(&[192, 0, 2, 1, 192, 0, 2, 2]);
    /// let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    /// let _ = host_a.poll_send(&mut cx, &mut vec![packet.clone()].into());
    ///
    /// tokio::time::sleep(Duration::from_millis(10)).await;
    /// net.hold(a, b); // caught on the uplink
    /// tokio::time::sleep(Duration::from_secs(1)).await;
    /// assert_eq!(net.router_stats().held, 1);
    /// net.release(a, b);
    /// let mut got = Vec::new();
    /// let _ = host_b.poll_recv(&mut cx, &mut got, 8);
    /// assert_eq!(got, [packet]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn hold(&self, from: Ipv4Addr, to: Ipv4Addr) {
        self.shared.with(|net| {
            let now = net.now();
            net.advance(now);
            net.hold(from, to);
        });
    }

    /// Stops holding `from` → `to` (see [`hold`](Network::hold)). The held
    /// packets go on, in order, from the router: they cross the receiver's
    /// downlink (its delay and queue) from now.
    pub fn release(&self, from: Ipv4Addr, to: Ipv4Addr) {
        self.shared.with(|net| {
            let now = net.now();
            net.advance(now);
            net.release(now, from, to);
            net.advance(now);
        });
    }

    /// Simulated time since the network was made.
    pub fn elapsed(&self) -> Duration {
        Duration::from_nanos(self.shared.lock().now())
    }
}

impl fmt::Debug for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let net = self.shared.lock();
        f.debug_struct("Network")
            .field("hosts", &net.hosts.len())
            .field("pending_events", &net.events.len())
            .field("router", &net.router)
            .finish()
    }
}

/// A handle to one direction of a link: read its counters, change its settings,
/// capture its packets.
#[derive(Clone)]
pub struct Link {
    shared: Arc<Shared>,
    index: usize,
}

impl Link {
    /// The link's current settings.
    pub fn config(&self) -> LinkConfig {
        self.shared.lock().links[self.index].state.config
    }

    /// Changes the link's settings from now on. Packets already queued keep the
    /// departure time they were given; packets not yet on the wire meet the new
    /// loss, corruption, duplication, reordering and delay.
    pub fn set_config(&self, config: LinkConfig) {
        self.shared.with(|net| {
            let now = net.now();
            net.advance(now);
            net.links[self.index].state.config = config;
        });
    }

    /// The link's counters.
    pub fn stats(&self) -> LinkStats {
        self.shared.lock().links[self.index].state.stats
    }

    /// Starts writing the packets seen at `point` to `writer` as a pcap file
    /// (raw IPv4, microsecond timestamps of simulated time since the network
    /// began, so captures under paused time are byte-for-byte reproducible).
    ///
    /// Writes are not buffered here: wrap a file in a `BufWriter` and call
    /// [`flush_captures`](Link::flush_captures) when done (dropping the network
    /// also flushes). Fails if the file header cannot be written.
    pub fn capture(
        &self,
        point: CapturePoint,
        writer: impl Write + Send + 'static,
    ) -> io::Result<()> {
        let capture = Capture::new(point, Box::new(writer))?;
        self.shared.lock().links[self.index].captures.push(capture);
        Ok(())
    }

    /// Flushes this link's captures; reports the first write error any of them met.
    pub fn flush_captures(&self) -> io::Result<()> {
        let mut net = self.shared.lock();
        let mut result = Ok(());
        for c in &mut net.links[self.index].captures {
            if let Err(e) = c.flush()
                && result.is_ok()
            {
                result = Err(e);
            }
        }
        result
    }
}

impl fmt::Debug for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let net = self.shared.lock();
        let l = &net.links[self.index];
        f.debug_struct("Link")
            .field("config", &l.state.config)
            .field("stats", &l.state.stats)
            .finish()
    }
}

/// A host's end of the network: the [`Device`] a stack runs on.
///
/// Sending never blocks: packets go into the uplink, whose queue drops what does
/// not fit. Receiving returns the packets the downlink has delivered by now.
/// Buffers given back with [`recycle`](Device::recycle) go to a pool the whole
/// network shares, and [`alloc`](Device::alloc) hands them out again.
pub struct HostEnd {
    shared: Arc<Shared>,
    host: usize,
    config: HostConfig,
}

impl HostEnd {
    /// The host's settings as it was joined (its links may have changed since).
    pub fn config(&self) -> &HostConfig {
        &self.config
    }

    /// The link from this host to the router.
    pub fn uplink(&self) -> Link {
        let index = self.shared.lock().hosts[self.host].uplink;
        Link {
            shared: self.shared.clone(),
            index,
        }
    }

    /// The router's output port towards this host.
    pub fn downlink(&self) -> Link {
        let index = self.shared.lock().hosts[self.host].downlink;
        Link {
            shared: self.shared.clone(),
            index,
        }
    }
}

impl fmt::Debug for HostEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HostEnd")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Device for HostEnd {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            medium: Medium::Ip,
            mtu: self.config.mtu,
            checksum: ChecksumOffload {
                rx: self.config.checksum_offload,
                tx: self.config.checksum_offload,
            },
        }
    }

    fn poll_recv(
        &mut self,
        cx: &mut Context<'_>,
        out: &mut Vec<Packet>,
        max: usize,
    ) -> Poll<io::Result<usize>> {
        if max == 0 {
            return Poll::Ready(Ok(0));
        }
        let host = self.host;
        self.shared.with(|net| {
            let now = net.now();
            net.advance(now);
            let h = &mut net.hosts[host];
            let n = h.inbox.len().min(max);
            if n == 0 {
                match &h.waker {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    _ => h.waker = Some(cx.waker().clone()),
                }
                return Poll::Pending;
            }
            out.extend(h.inbox.drain(..n));
            Poll::Ready(Ok(n))
        })
    }

    fn poll_send(
        &mut self,
        _cx: &mut Context<'_>,
        packets: &mut VecDeque<Packet>,
    ) -> Poll<io::Result<usize>> {
        let host = self.host;
        let n = packets.len();
        self.shared.with(|net| {
            let now = net.now();
            net.advance(now);
            let uplink = net.hosts[host].uplink;
            for packet in packets.drain(..) {
                net.ingress(now, uplink, packet);
            }
            // Zero-delay paths deliver at once.
            net.advance(now);
        });
        Poll::Ready(Ok(n))
    }

    fn alloc(&mut self) -> Packet {
        let reused = self.shared.lock().pool.pop();
        reused.unwrap_or_else(|| Vec::with_capacity(self.config.mtu))
    }

    fn recycle(&mut self, mut packet: Packet) {
        if packet.capacity() < self.config.mtu {
            return;
        }
        packet.clear();
        let mut net = self.shared.lock();
        if net.pool.len() < POOL_BUFFERS {
            net.pool.push(packet);
        }
    }
}

impl Drop for HostEnd {
    fn drop(&mut self) {
        let host = self.host;
        self.shared.with(|net| {
            let h = &mut net.hosts[host];
            h.gone = true;
            h.inbox.clear();
            h.waker = None;
        });
    }
}
