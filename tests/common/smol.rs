//! A smoltcp host: an independent TCP peer for interop tests.
//!
//! [`SmolHost`] runs a smoltcp [`Interface`] over any [`synack_device::Device`]
//! (medium IP) in a tokio task, and offers a small async socket API on top of it:
//! [`SmolHost::connect`], [`SmolHost::listen`] / [`SmolListener::accept`], and
//! [`SmolStream`] (`read`, `write_all`, `shutdown`, `close_and_wait`, ...; it also
//! implements tokio's `AsyncRead` / `AsyncWrite`).
//!
//! Design: the interface, its sockets and bookkeeping live in one
//! `Mutex<Inner>` shared by the interface task and the app-side handles; the
//! device lives in the task only. The task polls the device (registering its
//! waker), runs `Interface::poll`, flushes outbound packets with `poll_send`, wakes
//! every app future waiting on the host when anything may have changed, and then
//! sleeps until smoltcp's `poll_delay`, the device's wake-up, or an app operation
//! (which wakes the task after it touched a socket, e.g. to send a window update).
//! smoltcp's clock is tokio's clock (time elapsed since spawn), so paused-time
//! tests work.
//!
//! The task lives as long as any handle (host, listener, stream) does; when the
//! last one is dropped it stops and drops the device. If the device fails (e.g.
//! `BrokenPipe` because the other end of the link is gone), the task stops and
//! every pending or later operation that would block fails with that error.
//!
//! Only one smoltcp socket per accepted connection; a listener keeps `backlog`
//! listening sockets (default 1) and opens a new one after each accept.

#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::future::{Future, poll_fn};
use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use smoltcp::iface::{Config, Interface, PollResult, SocketHandle, SocketSet};
use smoltcp::phy::{self, Checksum, ChecksumCapabilities, DeviceCapabilities};
use smoltcp::socket::AnySocket;
use smoltcp::socket::tcp;
use smoltcp::wire::{HardwareAddress, IpAddress, IpCidr, IpEndpoint, IpListenEndpoint};
use synack_device::{Device, Medium, Packet};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// smoltcp's TCP states, as returned by [`SmolStream::state`].
pub type TcpState = tcp::State;

/// How many packets one `poll_recv` call may deliver.
const RX_BATCH: usize = 64;
/// How many packets smoltcp may queue for the device before it is flushed.
const TX_QUEUE_LIMIT: usize = 64;
/// How many rounds the task runs per wake-up before yielding to other tasks.
const ROUNDS_PER_POLL: usize = 16;
/// Retry delay when smoltcp asks to be polled "now" without having made progress
/// (a guard against busy-spinning).
const IDLE_RETRY: Duration = Duration::from_millis(1);
/// Retry delay when the device refuses packets (it also wakes us when it has room).
const BLOCKED_RETRY: Duration = Duration::from_millis(5);
/// First ephemeral port.
const EPHEMERAL_FIRST: u16 = 49152;

// ---------------------------------------------------------------------------------
// Configuration and statistics
// ---------------------------------------------------------------------------------

/// Configuration of a [`SmolHost`].
#[derive(Debug, Clone)]
pub struct SmolConfig {
    /// The host's IPv4 address.
    pub addr: Ipv4Addr,
    /// Prefix length of the host's subnet. A default route is also installed, so
    /// any destination is reachable (medium IP has no neighbours to resolve).
    pub prefix: u8,
    /// Receive buffer of every socket, in bytes (default 256 KiB).
    pub rx_buffer: usize,
    /// Send buffer of every socket, in bytes (default 256 KiB).
    pub tx_buffer: usize,
    /// Nagle's algorithm on new sockets (default: smoltcp's default, on).
    pub nagle: bool,
    /// Delayed-ACK timeout of new sockets (default: smoltcp's default, 10 ms).
    pub ack_delay: Option<Duration>,
    /// smoltcp's socket timeout (abort after this long without hearing from the
    /// peer while data or SYN/FIN is outstanding; default none).
    pub timeout: Option<Duration>,
    /// Keep-alive interval of new sockets (default none).
    pub keep_alive: Option<Duration>,
    /// Listening sockets a [`SmolListener`] keeps open (default 1).
    pub backlog: usize,
    /// Random seed of the interface (ISNs, ephemeral ports); default: a fresh one.
    pub seed: Option<u64>,
}

impl SmolConfig {
    /// The default configuration for a host at `addr`/`prefix`.
    pub fn new(addr: Ipv4Addr, prefix: u8) -> Self {
        SmolConfig {
            addr,
            prefix,
            rx_buffer: 256 * 1024,
            tx_buffer: 256 * 1024,
            nagle: true,
            ack_delay: Some(Duration::from_millis(10)),
            timeout: None,
            keep_alive: None,
            backlog: 1,
            seed: None,
        }
    }
}

/// Packet counters of a [`SmolHost`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SmolStats {
    /// Packets received from the device.
    pub rx_packets: u64,
    /// Bytes of packets received from the device.
    pub rx_bytes: u64,
    /// Packets handed to the device.
    pub tx_packets: u64,
    /// Bytes of packets handed to the device.
    pub tx_bytes: u64,
    /// Rounds of the interface task (device poll + `Interface::poll`): a measure
    /// of wake-ups, to check that an idle host does not spin.
    pub task_rounds: u64,
}

// ---------------------------------------------------------------------------------
// The phy adapter: synack Device -> smoltcp phy::Device
// ---------------------------------------------------------------------------------

/// Makes a [`synack_device::Device`] usable as a [`smoltcp::phy::Device`].
///
/// Received packets are pulled into a queue with [`SmolPhy::poll_recv`]; packets
/// smoltcp transmits are queued and pushed to the device with [`SmolPhy::flush`].
/// `transmit` refuses (returns `None`) once [`TX_QUEUE_LIMIT`] packets are queued.
pub struct SmolPhy<D> {
    device: D,
    caps: DeviceCapabilities,
    staging: Vec<Packet>,
    rx: VecDeque<Packet>,
    tx: VecDeque<Packet>,
    spent: Vec<Packet>,
    stats: SmolStats,
}

fn checksum_mode(rx_offloaded: bool, tx_offloaded: bool) -> Checksum {
    match (rx_offloaded, tx_offloaded) {
        (true, true) => Checksum::None,
        // The device verifies received checksums: compute on send only.
        (true, false) => Checksum::Tx,
        // The device fills in sent checksums: verify on receive only.
        (false, true) => Checksum::Rx,
        (false, false) => Checksum::Both,
    }
}

impl<D: Device> SmolPhy<D> {
    /// Wraps `device`, which must carry IP datagrams ([`Medium::Ip`]).
    ///
    /// # Panics
    /// If the device's medium is not IP.
    pub fn new(device: D) -> Self {
        let c = device.capabilities();
        assert_eq!(c.medium, Medium::Ip, "SmolPhy supports medium IP only");
        let mode = checksum_mode(c.checksum.rx, c.checksum.tx);
        let mut checksum = ChecksumCapabilities::default();
        checksum.ipv4 = mode;
        checksum.tcp = mode;
        checksum.udp = mode;
        checksum.icmpv4 = mode;
        let mut caps = DeviceCapabilities::default();
        caps.medium = phy::Medium::Ip;
        caps.max_transmission_unit = c.mtu;
        caps.max_burst_size = None;
        caps.checksum = checksum;
        SmolPhy {
            device,
            caps,
            staging: Vec::with_capacity(RX_BATCH),
            rx: VecDeque::new(),
            tx: VecDeque::new(),
            spent: Vec::new(),
            stats: SmolStats::default(),
        }
    }

    /// The wrapped device.
    pub fn device(&self) -> &D {
        &self.device
    }

    /// The wrapped device.
    pub fn device_mut(&mut self) -> &mut D {
        &mut self.device
    }

    /// Pulls up to [`RX_BATCH`] packets from the device into the receive queue.
    /// `Ok(0)` means none was ready (the waker is registered).
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> io::Result<usize> {
        self.staging.clear();
        match self.device.poll_recv(cx, &mut self.staging, RX_BATCH) {
            Poll::Pending => Ok(0),
            Poll::Ready(Err(e)) => Err(e),
            Poll::Ready(Ok(_)) => {
                let n = self.staging.len();
                for p in self.staging.drain(..) {
                    self.stats.rx_packets += 1;
                    self.stats.rx_bytes += p.len() as u64;
                    self.rx.push_back(p);
                }
                Ok(n)
            }
        }
    }

    /// Pushes queued outbound packets to the device. Returns `Ok(true)` if some are
    /// still queued because the device cannot take them now (its waker is
    /// registered), `Ok(false)` if the queue is empty.
    pub fn flush(&mut self, cx: &mut Context<'_>) -> io::Result<bool> {
        while !self.tx.is_empty() {
            let before = self.tx.len();
            match self.device.poll_send(cx, &mut self.tx) {
                Poll::Ready(Ok(_)) => {
                    if self.tx.len() >= before {
                        // Contract violation (nothing taken): don't spin here.
                        return Ok(true);
                    }
                }
                Poll::Ready(Err(e)) => return Err(e),
                Poll::Pending => return Ok(true),
            }
        }
        Ok(false)
    }

    /// Gives the buffers of packets smoltcp has consumed back to the device.
    pub fn recycle_spent(&mut self) {
        for p in self.spent.drain(..) {
            self.device.recycle(p);
        }
    }

    /// Packet counters.
    pub fn stats(&self) -> SmolStats {
        self.stats
    }
}

/// Receive token: one received packet.
pub struct SmolRxToken<'a> {
    packet: Packet,
    spent: &'a mut Vec<Packet>,
}

/// Transmit token: appends one packet to the outbound queue.
pub struct SmolTxToken<'a, D> {
    device: &'a mut D,
    tx: &'a mut VecDeque<Packet>,
    stats: &'a mut SmolStats,
}

impl phy::RxToken for SmolRxToken<'_> {
    fn consume<R, F>(self, f: F) -> R
    where
        F: FnOnce(&[u8]) -> R,
    {
        let r = f(&self.packet);
        self.spent.push(self.packet);
        r
    }
}

impl<D: Device> phy::TxToken for SmolTxToken<'_, D> {
    fn consume<R, F>(self, len: usize, f: F) -> R
    where
        F: FnOnce(&mut [u8]) -> R,
    {
        let mut buf = self.device.alloc();
        buf.clear();
        buf.resize(len, 0);
        let r = f(&mut buf);
        self.stats.tx_packets += 1;
        self.stats.tx_bytes += buf.len() as u64;
        self.tx.push_back(buf);
        r
    }
}

impl<D: Device> phy::Device for SmolPhy<D> {
    type RxToken<'a>
        = SmolRxToken<'a>
    where
        Self: 'a;
    type TxToken<'a>
        = SmolTxToken<'a, D>
    where
        Self: 'a;

    fn receive(
        &mut self,
        _timestamp: smoltcp::time::Instant,
    ) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        let packet = self.rx.pop_front()?;
        Some((
            SmolRxToken {
                packet,
                spent: &mut self.spent,
            },
            SmolTxToken {
                device: &mut self.device,
                tx: &mut self.tx,
                stats: &mut self.stats,
            },
        ))
    }

    fn transmit(&mut self, _timestamp: smoltcp::time::Instant) -> Option<Self::TxToken<'_>> {
        if self.tx.len() >= TX_QUEUE_LIMIT {
            return None;
        }
        Some(SmolTxToken {
            device: &mut self.device,
            tx: &mut self.tx,
            stats: &mut self.stats,
        })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        self.caps.clone()
    }
}

// ---------------------------------------------------------------------------------
// Shared state
// ---------------------------------------------------------------------------------

struct Shared {
    inner: Mutex<Inner>,
    /// tokio time at spawn: smoltcp time 0.
    epoch: tokio::time::Instant,
    config: SmolConfig,
}

#[derive(Default)]
struct SockMeta {
    /// No handle refers to the socket any more: remove it once it is closed.
    orphaned: bool,
    /// The peer's FIN was seen (so a read after the socket is reset is EOF).
    peer_fin: bool,
    /// We closed the sending direction.
    local_fin: bool,
}

struct Inner {
    iface: Interface,
    sockets: SocketSet<'static>,
    metas: HashMap<SocketHandle, SockMeta>,
    /// App futures waiting for anything on this host; all are woken on any change.
    app_wakers: Vec<Waker>,
    /// The interface task.
    task_waker: Option<Waker>,
    /// Why the task stopped, if it did.
    dead: Option<(io::ErrorKind, String)>,
    /// All user handles are gone: the task should stop.
    stop: bool,
    listening_ports: Vec<u16>,
    next_port: u16,
    stats: SmolStats,
}

fn lock(m: &Mutex<Inner>) -> MutexGuard<'_, Inner> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    fn smol_now(&self, now: tokio::time::Instant) -> smoltcp::time::Instant {
        let us = now.saturating_duration_since(self.epoch).as_micros();
        smoltcp::time::Instant::from_micros(us as i64)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        lock(&self.inner)
    }

    fn new_socket(&self) -> tcp::Socket<'static> {
        let c = &self.config;
        let mut s = tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0u8; c.rx_buffer]),
            tcp::SocketBuffer::new(vec![0u8; c.tx_buffer]),
        );
        s.set_nagle_enabled(c.nagle);
        s.set_ack_delay(c.ack_delay.map(Into::into));
        s.set_timeout(c.timeout.map(Into::into));
        s.set_keep_alive(c.keep_alive.map(Into::into));
        s
    }
}

impl Inner {
    fn wake_task(&self) {
        if let Some(w) = &self.task_waker {
            w.wake_by_ref();
        }
    }

    fn register(&mut self, cx: &Context<'_>) {
        if !self.app_wakers.iter().any(|w| w.will_wake(cx.waker())) {
            self.app_wakers.push(cx.waker().clone());
        }
    }

    fn wake_apps(&mut self) {
        for w in self.app_wakers.drain(..) {
            w.wake();
        }
    }

    fn tcp(&mut self, h: SocketHandle) -> &mut tcp::Socket<'static> {
        self.sockets.get_mut::<tcp::Socket>(h)
    }

    fn dead_error(&self) -> Option<io::Error> {
        self.dead
            .as_ref()
            .map(|(k, m)| io::Error::new(*k, format!("smoltcp host stopped: {m}")))
    }

    /// Bookkeeping after the interface ran: note FINs, drop closed orphans.
    fn after_poll(&mut self) {
        let mut remove = Vec::new();
        for (h, meta) in self.metas.iter_mut() {
            let s = self.sockets.get::<tcp::Socket>(*h);
            let state = s.state();
            if matches!(
                state,
                tcp::State::CloseWait
                    | tcp::State::LastAck
                    | tcp::State::Closing
                    | tcp::State::TimeWait
            ) {
                meta.peer_fin = true;
            }
            if meta.orphaned && state == tcp::State::Closed {
                remove.push(*h);
            }
        }
        for h in remove {
            self.metas.remove(&h);
            self.sockets.remove(h);
        }
    }

    fn port_in_use(&self, port: u16) -> bool {
        self.listening_ports.contains(&port)
            || self.sockets.iter().any(|(_, s)| {
                tcp::Socket::downcast(s).is_some_and(|t| {
                    t.local_endpoint().is_some_and(|e| e.port == port)
                        || t.listen_endpoint().port == port
                })
            })
    }

    fn ephemeral_port(&mut self) -> io::Result<u16> {
        let span = (u16::MAX - EPHEMERAL_FIRST) as u32 + 1;
        for _ in 0..span {
            let p = self.next_port;
            self.next_port = if p == u16::MAX {
                EPHEMERAL_FIRST
            } else {
                p + 1
            };
            if !self.port_in_use(p) {
                return Ok(p);
            }
        }
        Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            "no free ephemeral port",
        ))
    }
}

fn endpoint_v4(e: Option<IpEndpoint>) -> Option<SocketAddrV4> {
    let e = e?;
    match e.addr {
        IpAddress::Ipv4(a) => Some(SocketAddrV4::new(a, e.port)),
        #[allow(unreachable_patterns)]
        _ => None,
    }
}

/// Keeps the interface task alive; every user handle holds one (through an Arc).
struct HostRef {
    shared: Arc<Shared>,
}

impl Drop for HostRef {
    fn drop(&mut self) {
        let mut g = self.shared.lock();
        g.stop = true;
        g.wake_task();
    }
}

// ---------------------------------------------------------------------------------
// The interface task
// ---------------------------------------------------------------------------------

struct Task<D> {
    shared: Arc<Shared>,
    phy: SmolPhy<D>,
    sleep: Pin<Box<tokio::time::Sleep>>,
    /// The deadline the sleep is armed for.
    armed: Option<tokio::time::Instant>,
    rounds: u64,
}

impl<D: Device> Task<D> {
    fn die(inner: &mut Inner, e: io::Error) -> Poll<()> {
        inner.dead = Some((e.kind(), e.to_string()));
        inner.wake_apps();
        Poll::Ready(())
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let shared = self.shared.clone();
        let mut g = shared.lock();
        let inner = &mut *g;
        if inner.stop {
            return Poll::Ready(());
        }
        match &inner.task_waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => inner.task_waker = Some(cx.waker().clone()),
        }

        for _ in 0..ROUNDS_PER_POLL {
            let tnow = tokio::time::Instant::now();
            let now = shared.smol_now(tnow);
            let timer_due = self.armed.is_some_and(|d| tnow >= d);

            let received = match self.phy.poll_recv(cx) {
                Ok(n) => n,
                Err(e) => return Self::die(inner, e),
            };
            let res = inner.iface.poll(now, &mut self.phy, &mut inner.sockets);
            self.phy.recycle_spent();
            let blocked = match self.phy.flush(cx) {
                Ok(b) => b,
                Err(e) => return Self::die(inner, e),
            };
            self.rounds += 1;
            inner.stats = SmolStats {
                task_rounds: self.rounds,
                ..self.phy.stats()
            };

            let progressed = res == PollResult::SocketStateChanged || received > 0;
            if progressed || timer_due {
                inner.after_poll();
                inner.wake_apps();
            }

            let delay = inner
                .iface
                .poll_delay(now, &inner.sockets)
                .map(Duration::from);
            if received > 0 {
                // There may be more packets, and the device waker is not registered.
                continue;
            }
            let deadline = match delay {
                Some(d) if d.is_zero() => {
                    if progressed && !blocked {
                        continue;
                    }
                    // smoltcp wants to run again but cannot make progress now
                    // (device full, or nothing happened): back off a little; the
                    // device wakes us when it has room.
                    Some(tnow + if blocked { BLOCKED_RETRY } else { IDLE_RETRY })
                }
                Some(d) => Some(tnow + d),
                None => None,
            };
            self.armed = deadline;
            if let Some(dl) = deadline {
                self.sleep.as_mut().reset(dl);
                if self.sleep.as_mut().poll(cx).is_ready() {
                    continue;
                }
            }
            return Poll::Pending;
        }
        // Out of budget: let other tasks run, then continue.
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

// ---------------------------------------------------------------------------------
// SmolHost
// ---------------------------------------------------------------------------------

/// A smoltcp TCP/IP host driving a [`synack_device::Device`] from a tokio task.
///
/// Cheap to clone; the task runs until the host, all its clones and all its
/// listeners and streams are dropped.
#[derive(Clone)]
pub struct SmolHost {
    host: Arc<HostRef>,
}

static SEED_COUNTER: AtomicU64 = AtomicU64::new(0);

fn fresh_seed(addr: Ipv4Addr) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(u32::from(addr));
    h.write_u64(SEED_COUNTER.fetch_add(1, Ordering::Relaxed));
    if let Ok(t) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        h.write_u128(t.as_nanos());
    }
    h.finish()
}

impl SmolHost {
    /// Starts a host at `addr`/`prefix` on `device` (medium IP), with default
    /// settings. Must be called inside a tokio runtime.
    pub fn spawn<D: Device>(device: D, addr: Ipv4Addr, prefix: u8) -> SmolHost {
        Self::spawn_with(device, SmolConfig::new(addr, prefix))
    }

    /// Starts a host with the given configuration. Must be called inside a tokio
    /// runtime.
    pub fn spawn_with<D: Device>(device: D, config: SmolConfig) -> SmolHost {
        let epoch = tokio::time::Instant::now();
        let mut phy = SmolPhy::new(device);
        let seed = config.seed.unwrap_or_else(|| fresh_seed(config.addr));
        let mut iface_config = Config::new(HardwareAddress::Ip);
        iface_config.random_seed = seed;
        let mut iface = Interface::new(iface_config, &mut phy, smoltcp::time::Instant::ZERO);
        iface.update_ip_addrs(|addrs| {
            addrs
                .push(IpCidr::new(IpAddress::Ipv4(config.addr), config.prefix))
                .expect("address table full");
        });
        // Medium IP: the gateway is never resolved; this only makes every
        // destination routable.
        iface
            .routes_mut()
            .add_default_ipv4_route(config.addr)
            .expect("route table full");
        let span = (u16::MAX - EPHEMERAL_FIRST) as u64 + 1;
        let next_port = EPHEMERAL_FIRST + ((seed >> 17) % span) as u16;
        let shared = Arc::new(Shared {
            inner: Mutex::new(Inner {
                iface,
                sockets: SocketSet::new(Vec::new()),
                metas: HashMap::new(),
                app_wakers: Vec::new(),
                task_waker: None,
                dead: None,
                stop: false,
                listening_ports: Vec::new(),
                next_port,
                stats: SmolStats::default(),
            }),
            epoch,
            config,
        });
        let mut task = Task {
            shared: shared.clone(),
            phy,
            sleep: Box::pin(tokio::time::sleep_until(epoch)),
            armed: None,
            rounds: 0,
        };
        tokio::spawn(async move { poll_fn(move |cx| task.poll(cx)).await });
        SmolHost {
            host: Arc::new(HostRef { shared }),
        }
    }

    /// The host's address.
    pub fn addr(&self) -> Ipv4Addr {
        self.host.shared.config.addr
    }

    /// The host's configuration.
    pub fn config(&self) -> &SmolConfig {
        &self.host.shared.config
    }

    /// Packet counters of the host's device.
    pub fn stats(&self) -> SmolStats {
        self.host.shared.lock().stats
    }

    /// Why the interface task stopped, if it stopped because of a device error.
    pub fn error(&self) -> Option<io::Error> {
        self.host.shared.lock().dead_error()
    }

    /// How many sockets the host has (listening, open, or closing but not yet
    /// reclaimed).
    pub fn socket_count(&self) -> usize {
        self.host.shared.lock().metas.len()
    }

    /// Opens a connection to `remote` from an ephemeral port and waits until it is
    /// established. Fails with `ConnectionRefused` if the peer resets it.
    ///
    /// smoltcp retries the SYN indefinitely (unless [`SmolConfig::timeout`] is
    /// set): wrap this in `tokio::time::timeout` when the peer may be absent.
    pub async fn connect(&self, remote: SocketAddrV4) -> io::Result<SmolStream> {
        let shared = &self.host.shared;
        let stream = {
            let mut g = shared.lock();
            if let Some(e) = g.dead_error() {
                return Err(e);
            }
            let port = g.ephemeral_port()?;
            let mut sock = shared.new_socket();
            let remote_ep = IpEndpoint::new(IpAddress::Ipv4(*remote.ip()), remote.port());
            sock.connect(g.iface.context(), remote_ep, port)
                .map_err(|e| {
                    io::Error::new(io::ErrorKind::InvalidInput, format!("connect: {e}"))
                })?;
            let handle = g.sockets.add(sock);
            g.metas.insert(handle, SockMeta::default());
            g.wake_task();
            SmolStream {
                host: self.host.clone(),
                handle,
                local: SocketAddrV4::new(shared.config.addr, port),
                remote,
            }
        };
        // If this future is dropped before the handshake completes, the stream's
        // Drop aborts the attempt.
        poll_fn(|cx| {
            let mut g = shared.lock();
            let state = g.tcp(stream.handle).state();
            match state {
                tcp::State::SynSent | tcp::State::SynReceived => {
                    if let Some(e) = g.dead_error() {
                        return Poll::Ready(Err(e));
                    }
                    g.register(cx);
                    Poll::Pending
                }
                tcp::State::Closed => Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::ConnectionRefused,
                    format!("smoltcp: connection to {remote} refused or timed out"),
                ))),
                _ => Poll::Ready(Ok(())),
            }
        })
        .await?;
        Ok(stream)
    }

    /// Listens on `port` (any local address), keeping [`SmolConfig::backlog`]
    /// listening sockets.
    pub fn listen(&self, port: u16) -> io::Result<SmolListener> {
        let shared = &self.host.shared;
        let mut g = shared.lock();
        if let Some(e) = g.dead_error() {
            return Err(e);
        }
        if port == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "listen on port 0",
            ));
        }
        if g.listening_ports.contains(&port) {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!("smoltcp: already listening on port {port}"),
            ));
        }
        g.listening_ports.push(port);
        let mut listener = SmolListener {
            host: self.host.clone(),
            port,
            pending: Vec::new(),
        };
        for _ in 0..shared.config.backlog.max(1) {
            let h = listener.open_one(&mut g)?;
            listener.pending.push(h);
        }
        g.wake_task();
        drop(g);
        Ok(listener)
    }
}

// ---------------------------------------------------------------------------------
// SmolListener
// ---------------------------------------------------------------------------------

/// A listening port of a [`SmolHost`].
pub struct SmolListener {
    host: Arc<HostRef>,
    port: u16,
    /// Listening sockets not yet accepted, oldest first.
    pending: Vec<SocketHandle>,
}

impl SmolListener {
    fn open_one(&self, g: &mut Inner) -> io::Result<SocketHandle> {
        let mut sock = self.host.shared.new_socket();
        sock.listen(IpListenEndpoint::from(self.port))
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("listen: {e}")))?;
        let h = g.sockets.add(sock);
        g.metas.insert(h, SockMeta::default());
        Ok(h)
    }

    /// The listening port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Waits for a connection to be established and returns it. A new listening
    /// socket takes the accepted one's place.
    pub async fn accept(&mut self) -> io::Result<SmolStream> {
        poll_fn(|cx| self.poll_accept(cx)).await
    }

    /// Poll version of [`accept`](Self::accept).
    pub fn poll_accept(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<SmolStream>> {
        let shared = self.host.shared.clone();
        let mut g = shared.lock();
        let ready = self.pending.iter().position(|h| {
            !matches!(
                g.sockets.get::<tcp::Socket>(*h).state(),
                tcp::State::Listen | tcp::State::SynReceived
            )
        });
        let Some(i) = ready else {
            if let Some(e) = g.dead_error() {
                return Poll::Ready(Err(e));
            }
            g.register(cx);
            return Poll::Pending;
        };
        let handle = self.pending.remove(i);
        let replacement = self.open_one(&mut g)?;
        self.pending.push(replacement);
        g.wake_task();
        let s = g.tcp(handle);
        let local = endpoint_v4(s.local_endpoint())
            .unwrap_or_else(|| SocketAddrV4::new(shared.config.addr, self.port));
        let remote = endpoint_v4(s.remote_endpoint())
            .unwrap_or_else(|| SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0));
        Poll::Ready(Ok(SmolStream {
            host: self.host.clone(),
            handle,
            local,
            remote,
        }))
    }
}

impl Drop for SmolListener {
    fn drop(&mut self) {
        let mut g = self.host.shared.lock();
        g.listening_ports.retain(|p| *p != self.port);
        for h in self.pending.drain(..) {
            let s = g.tcp(h);
            if s.state() == tcp::State::Listen {
                g.sockets.remove(h);
                g.metas.remove(&h);
            } else {
                // A half-open connection nobody will accept: reset it.
                s.abort();
                if let Some(m) = g.metas.get_mut(&h) {
                    m.orphaned = true;
                }
            }
        }
        g.wake_task();
    }
}

// ---------------------------------------------------------------------------------
// SmolStream
// ---------------------------------------------------------------------------------

/// A TCP connection of a [`SmolHost`].
///
/// Methods take `&self`, so one task may read while another writes (e.g. with
/// `tokio::join!`). Dropping the stream closes it gracefully (FIN) if it is still
/// open; the socket is reclaimed once it reaches CLOSED.
pub struct SmolStream {
    host: Arc<HostRef>,
    handle: SocketHandle,
    local: SocketAddrV4,
    remote: SocketAddrV4,
}

impl std::fmt::Debug for SmolStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmolStream")
            .field("local", &self.local)
            .field("remote", &self.remote)
            .field("state", &self.state())
            .finish()
    }
}

impl SmolStream {
    fn shared(&self) -> &Shared {
        &self.host.shared
    }

    /// The local address.
    pub fn local_addr(&self) -> SocketAddrV4 {
        self.local
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> SocketAddrV4 {
        self.remote
    }

    /// The socket's TCP state.
    pub fn state(&self) -> TcpState {
        self.shared().lock().tcp(self.handle).state()
    }

    /// Bytes queued for sending and not yet acknowledged.
    pub fn send_queue(&self) -> usize {
        self.shared().lock().tcp(self.handle).send_queue()
    }

    /// Bytes received and not yet read.
    pub fn recv_queue(&self) -> usize {
        self.shared().lock().tcp(self.handle).recv_queue()
    }

    /// Runs `f` on the smoltcp socket (e.g. to change its options), then wakes the
    /// interface task.
    pub fn with_socket<R>(&self, f: impl FnOnce(&mut tcp::Socket<'static>) -> R) -> R {
        let mut g = self.shared().lock();
        let r = f(g.tcp(self.handle));
        g.wake_task();
        g.wake_apps();
        r
    }

    /// Reads into `buf`. Returns 0 at end of stream (the peer's FIN) or if `buf` is
    /// empty; fails with `ConnectionReset` if the connection was reset or timed out.
    pub fn poll_read(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let mut g = self.shared().lock();
        let inner = &mut *g;
        let sock = inner.sockets.get_mut::<tcp::Socket>(self.handle);
        match sock.recv_slice(buf) {
            Ok(0) if !buf.is_empty() => {}
            Ok(n) => {
                // Freed receive space: the task may need to send a window update.
                inner.wake_task();
                return Poll::Ready(Ok(n));
            }
            Err(tcp::RecvError::Finished) => return Poll::Ready(Ok(0)),
            Err(tcp::RecvError::InvalidState) => {
                let state = sock.state();
                let meta = inner.metas.get(&self.handle);
                if meta.is_some_and(|m| m.peer_fin) {
                    return Poll::Ready(Ok(0));
                }
                if !matches!(state, tcp::State::SynSent | tcp::State::SynReceived) {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::ConnectionReset,
                        format!(
                            "smoltcp: read on a connection in state {state} (reset or timed out)"
                        ),
                    )));
                }
            }
        }
        if let Some(e) = inner.dead_error() {
            return Poll::Ready(Err(e));
        }
        inner.register(cx);
        Poll::Pending
    }

    /// Writes some of `buf` into the send buffer, returning how much was taken.
    /// Fails with `BrokenPipe` after [`shutdown`](Self::shutdown) and
    /// `ConnectionReset` if the connection was reset or timed out.
    pub fn poll_write(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let mut g = self.shared().lock();
        let inner = &mut *g;
        let local_fin = inner.metas.get(&self.handle).is_some_and(|m| m.local_fin);
        let sock = inner.sockets.get_mut::<tcp::Socket>(self.handle);
        if !sock.may_send() {
            let state = sock.state();
            if matches!(state, tcp::State::SynSent | tcp::State::SynReceived) {
                // Not yet established (cannot happen for streams we hand out).
            } else if local_fin {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::BrokenPipe,
                    "smoltcp: write after shutdown",
                )));
            } else {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::ConnectionReset,
                    format!("smoltcp: write on a connection in state {state} (reset or timed out)"),
                )));
            }
        } else if buf.is_empty() {
            return Poll::Ready(Ok(0));
        } else if sock.can_send() {
            match sock.send_slice(buf) {
                Ok(n) if n > 0 => {
                    inner.wake_task();
                    return Poll::Ready(Ok(n));
                }
                Ok(_) => {}
                Err(e) => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::ConnectionReset,
                        format!("smoltcp: send: {e}"),
                    )));
                }
            }
        }
        if let Some(e) = inner.dead_error() {
            return Poll::Ready(Err(e));
        }
        inner.register(cx);
        Poll::Pending
    }

    /// Waits until everything written has been acknowledged by the peer.
    pub fn poll_flush_acked(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut g = self.shared().lock();
        let inner = &mut *g;
        let sock = inner.sockets.get_mut::<tcp::Socket>(self.handle);
        if sock.send_queue() == 0 {
            return Poll::Ready(Ok(()));
        }
        let state = sock.state();
        if state == tcp::State::Closed {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "smoltcp: connection closed with unacknowledged data",
            )));
        }
        if let Some(e) = inner.dead_error() {
            return Poll::Ready(Err(e));
        }
        inner.register(cx);
        Poll::Pending
    }

    /// Reads into `buf`; 0 at end of stream.
    pub async fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        poll_fn(|cx| self.poll_read(cx, buf)).await
    }

    /// Reads exactly `buf.len()` bytes; `UnexpectedEof` if the stream ends first.
    pub async fn read_exact(&self, buf: &mut [u8]) -> io::Result<()> {
        let mut done = 0;
        while done < buf.len() {
            let n = self.read(&mut buf[done..]).await?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("smoltcp: EOF after {done} of {} bytes", buf.len()),
                ));
            }
            done += n;
        }
        Ok(())
    }

    /// Reads until end of stream, appending to `out`; returns the number of bytes read.
    pub async fn read_to_end(&self, out: &mut Vec<u8>) -> io::Result<usize> {
        let mut buf = vec![0u8; 64 * 1024];
        let mut total = 0;
        loop {
            let n = self.read(&mut buf).await?;
            if n == 0 {
                return Ok(total);
            }
            out.extend_from_slice(&buf[..n]);
            total += n;
        }
    }

    /// Writes all of `buf` into the send buffer (not waiting for acknowledgements;
    /// see [`flush`](Self::flush)).
    pub async fn write_all(&self, mut buf: &[u8]) -> io::Result<()> {
        while !buf.is_empty() {
            let n = poll_fn(|cx| self.poll_write(cx, buf)).await?;
            buf = &buf[n..];
        }
        Ok(())
    }

    /// Waits until everything written has been acknowledged by the peer.
    pub async fn flush(&self) -> io::Result<()> {
        poll_fn(|cx| self.poll_flush_acked(cx)).await
    }

    /// Closes the sending direction: a FIN follows the data already written.
    /// Completes at once (it does not wait for the FIN to be acknowledged; see
    /// [`close_and_wait`](Self::close_and_wait)); reading is still possible.
    pub async fn shutdown(&self) -> io::Result<()> {
        self.shutdown_now()
    }

    /// Synchronous [`shutdown`](Self::shutdown).
    pub fn shutdown_now(&self) -> io::Result<()> {
        let mut g = self.shared().lock();
        if let Some(m) = g.metas.get_mut(&self.handle) {
            m.local_fin = true;
        }
        g.tcp(self.handle).close();
        g.wake_task();
        g.wake_apps();
        Ok(())
    }

    /// Sends a RST and closes the connection at once.
    pub fn abort(&self) {
        let mut g = self.shared().lock();
        if let Some(m) = g.metas.get_mut(&self.handle) {
            m.local_fin = true;
        }
        g.tcp(self.handle).abort();
        g.wake_task();
        g.wake_apps();
    }

    /// Closes the sending direction (if not done yet) and waits until the
    /// connection is fully closed: state CLOSED or TIME-WAIT (both FINs sent and
    /// acknowledged).
    ///
    /// Incoming data is not read: if the peer still sends more than the receive
    /// buffer holds, its FIN cannot arrive and this waits forever. Read to EOF
    /// first, and bound the wait with `tokio::time::timeout`.
    pub async fn close_and_wait(&self) -> io::Result<()> {
        self.shutdown_now()?;
        poll_fn(|cx| {
            let mut g = self.shared().lock();
            let state = g.tcp(self.handle).state();
            if matches!(state, tcp::State::Closed | tcp::State::TimeWait) {
                return Poll::Ready(Ok(()));
            }
            if let Some(e) = g.dead_error() {
                return Poll::Ready(Err(e));
            }
            g.register(cx);
            Poll::Pending
        })
        .await
    }

    /// Waits until the socket reaches `pred`-satisfying state; returns that state.
    pub async fn wait_state(&self, mut pred: impl FnMut(TcpState) -> bool) -> io::Result<TcpState> {
        poll_fn(|cx| {
            let mut g = self.shared().lock();
            let state = g.tcp(self.handle).state();
            if pred(state) {
                return Poll::Ready(Ok(state));
            }
            if let Some(e) = g.dead_error() {
                return Poll::Ready(Err(e));
            }
            g.register(cx);
            Poll::Pending
        })
        .await
    }
}

impl Drop for SmolStream {
    fn drop(&mut self) {
        let mut g = self.host.shared.lock();
        let inner = &mut *g;
        let s = inner.sockets.get_mut::<tcp::Socket>(self.handle);
        match s.state() {
            tcp::State::Closed => {
                inner.sockets.remove(self.handle);
                inner.metas.remove(&self.handle);
            }
            tcp::State::SynSent | tcp::State::SynReceived => {
                s.abort();
                if let Some(m) = inner.metas.get_mut(&self.handle) {
                    m.orphaned = true;
                }
            }
            _ => {
                s.close();
                if let Some(m) = inner.metas.get_mut(&self.handle) {
                    m.orphaned = true;
                }
            }
        }
        inner.wake_task();
    }
}

impl AsyncRead for SmolStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let n = match SmolStream::poll_read(&self, cx, buf.initialize_unfilled()) {
            Poll::Ready(Ok(n)) => n,
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Pending => return Poll::Pending,
        };
        buf.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for SmolStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        SmolStream::poll_write(&self, cx, buf)
    }

    /// Waits until all written data is acknowledged.
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_flush_acked(cx)
    }

    /// Sends FIN (after the queued data); does not wait.
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.shutdown_now())
    }
}
