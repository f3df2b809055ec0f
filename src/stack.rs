//! The stack: one engine and one device behind a lock, and the driver task
//! that moves packets between them.
//!
//! User calls lock the engine, copy bytes, and unlock; packets their calls
//! produce go straight to the device from the caller's task (no hop to the
//! driver). The driver handles inbound batches, timers and a device that
//! pushed back, and wakes exactly the tasks that engine events name.
//!
//! A device that says so ([`Device::receive_in_wake`], an in-process link)
//! has its wake-ups run the receiving stack's work on the waking thread,
//! once the waker holds no stack lock ([`DeviceWaker`]): a 1-byte request
//! goes from the writer's task through the other stack to its reader's
//! waker with no driver in between, which keeps a request/response
//! exchange on one worker of a multi-thread runtime. Bursts (more than
//! [`INLINE_BURST`] packets) still go to the receiver's driver, which
//! another worker can run beside the sender.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::io;
use std::marker::PhantomData;
use std::net::{IpAddr, Ipv4Addr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError, Weak};
use std::task::{Context, Poll, Waker};

use futures::task::AtomicWaker;

use synack_device::{Device, Packet};
use synack_engine::{Cidr, Config, Engine, Instant, Interface, SocketHandle, SocketSummary, Stats};

use crate::error::{ipv6_unsupported, to_io};
use tracing::{debug, warn};

/// Most packets taken from the device per call.
const RX_BATCH: usize = 64;
/// Most packets queued for a device that pushes back before the engine is asked for more.
const TX_QUEUE: usize = 64;
/// Logs the end of a device: its other end going away (`BrokenPipe`, as a
/// `MemoryLink` whose peer stack was dropped) is an orderly shutdown, anything
/// else a failure.
fn device_failed(e: &io::Error, direction: &str) {
    if e.kind() == io::ErrorKind::BrokenPipe {
        debug!(error = %e, direction, "device closed by its other end; the stack stops using it");
    } else {
        warn!(error = %e, direction, "device failed; the stack stops using it in this direction");
    }
}

/// Rounds of the driver loop before it yields to other tasks.
const DRIVER_ROUNDS: usize = 32;

/// The tasks waiting on one socket, by direction. Several tasks may wait on
/// one direction (a `readable()` in one task, a read in another); each is woken
/// once by the next event and registers again if it still waits.
#[derive(Default)]
pub(crate) struct SocketWakers {
    pub(crate) read: Vec<Waker>,
    pub(crate) write: Vec<Waker>,
}

/// Adds `waker` to `list` unless a waker for the same task is there already.
pub(crate) fn register(list: &mut Vec<Waker>, waker: &Waker) {
    if !list.iter().any(|w| w.will_wake(waker)) {
        list.push(waker.clone());
    }
}

/// Everything behind the stack's lock.
pub(crate) struct State {
    pub(crate) engine: Engine,
    device: Box<dyn Device>,
    wakers: Vec<SocketWakers>,
    tx: VecDeque<Packet>,
    rx: Vec<Packet>,
    spare: Option<Packet>,
    /// One MTU for the engine to write a segment into when the device's
    /// buffer is shorter (see `flush`); zeroed once, on first use.
    scratch: Vec<u8>,
    mtu: usize,
    device_dead: bool,
    /// The driver's waker, so a user call can let the device wake the driver.
    driver_waker: Option<Waker>,
    /// The waker every device call registers: a [`DeviceWaker`].
    device_waker: Waker,
    /// The deadline the driver sleeps until.
    driver_deadline: Option<Instant>,
    /// The driver's timer. A user call that makes an earlier deadline resets
    /// it here, rather than waking the driver to do so (a task switch, and on
    /// the multi-thread runtime often a cross-thread wake, per request).
    sleep: Pin<Box<tokio::time::Sleep>>,
    /// Whether the driver's waker is registered with `sleep` (its last poll
    /// of it was pending): only then does a reset wake the driver in time.
    sleep_waiting: bool,
    /// The stack's clock origin on tokio's clock (as `Shared::epoch`).
    epoch: tokio::time::Instant,
    /// User calls so far (locks taken through [`Shared::lock`]).
    calls: u64,
    /// `calls` at the last receive work done in a device wake-up.
    inline_seen: u64,
    /// Receive work done in wake-ups in a row with no user call between:
    /// a one-way stream (a flood of datagrams) whose reader does not keep
    /// pace, better left to the driver, which takes it in batches.
    inline_streak: u32,
}

/// What a user call must do once it has dropped the lock.
#[must_use]
pub(crate) struct Wake(Vec<Waker>);

thread_local! {
    /// Emptied lists of the [`Wake`]s run on this thread, for the next: a
    /// user call wakes a task or two, and allocating the list each time was
    /// an allocation per segment. A user call and the receive work its send
    /// runs inline each have one at once, hence a few.
    static WAKE_SPARE: RefCell<Vec<Vec<Waker>>> = const { RefCell::new(Vec::new()) };
}

/// Spare lists a thread keeps (see `WAKE_SPARE`).
const WAKE_SPARES: usize = 4;

impl Wake {
    pub(crate) fn new() -> Wake {
        Wake(
            WAKE_SPARE
                .with(|s| s.borrow_mut().pop())
                .unwrap_or_default(),
        )
    }

    pub(crate) fn run(mut self) {
        // A waker may run stack work inline (a `DeviceWaker`), with a
        // `Wake` of its own: no borrow of the spares is held meanwhile.
        for w in self.0.drain(..) {
            w.wake();
        }
        if self.0.capacity() > 0 {
            WAKE_SPARE.with(|s| {
                let mut s = s.borrow_mut();
                if s.len() < WAKE_SPARES {
                    s.push(self.0);
                }
            });
        }
    }
}

impl State {
    pub(crate) fn wakers(&mut self, h: SocketHandle) -> &mut SocketWakers {
        let i = h.index();
        if self.wakers.len() <= i {
            self.wakers.resize_with(i + 1, SocketWakers::default);
        }
        &mut self.wakers[i]
    }

    /// Moves outbound packets from the engine to the device until either has
    /// nothing more (or the device pushes back, having registered `cx`).
    fn flush(&mut self, now: Instant) -> bool {
        let cx = &mut Context::from_waker(&self.device_waker);
        let mut progress = false;
        loop {
            while self.tx.len() < TX_QUEUE {
                // A buffer as the device's pool has it. One that is an MTU
                // long already (a full-size segment's, come back) takes the
                // segment straight; a shorter one gets it copied in from
                // the scratch buffer, so nothing is ever zero-filled but the
                // scratch, once (a small packet after a small packet used to
                // zero 1.4 KiB).
                let mut pkt = match self.spare.take() {
                    Some(p) => p,
                    None => self.device.alloc_reused(),
                };
                let sent = if pkt.len() >= self.mtu {
                    self.engine.poll_transmit(now, &mut pkt)
                } else {
                    if self.scratch.len() < self.mtu {
                        self.scratch = vec![0; self.mtu];
                    }
                    let sent = self.engine.poll_transmit(now, &mut self.scratch);
                    if let Some(n) = sent {
                        pkt.clear();
                        pkt.extend_from_slice(&self.scratch[..n]);
                    }
                    sent
                };
                match sent {
                    Some(n) => {
                        pkt.truncate(n);
                        self.tx.push_back(pkt);
                    }
                    None => {
                        self.spare = Some(pkt);
                        break;
                    }
                }
            }
            if self.tx.is_empty() || self.device_dead {
                self.tx.clear();
                return progress;
            }
            match self.device.poll_send(cx, &mut self.tx) {
                Poll::Ready(Ok(n)) => {
                    progress = true;
                    SENT.with(|s| s.set(s.get() + n));
                }
                Poll::Ready(Err(e)) => {
                    device_failed(&e, "send");
                    self.device_dead = true;
                }
                Poll::Pending => return progress,
            }
        }
    }

    /// Collects the wakers that engine events name.
    fn collect_events(&mut self, wake: &mut Wake) {
        while let Some(ev) = self.engine.poll_event() {
            let w = self.wakers(ev.handle);
            if ev.readable {
                wake.0.append(&mut w.read);
            }
            if ev.writable {
                wake.0.append(&mut w.write);
            }
        }
    }

    /// After a user call: send what it produced, report readiness, and make sure
    /// the driver wakes for any earlier timer.
    pub(crate) fn after_call(&mut self, now: Instant) -> Wake {
        let mut wake = Wake::new();
        self.flush(now);
        self.collect_events(&mut wake);
        self.arm_timer(&mut wake);
        wake
    }

    /// Makes sure the driver wakes for the engine's next deadline when it
    /// is earlier than the one the driver sleeps until: by resetting the
    /// driver's timer, or else by waking the driver.
    fn arm_timer(&mut self, wake: &mut Wake) {
        if let Some(next) = self.engine.poll_timeout()
            && self.driver_deadline.is_none_or(|d| next < d)
        {
            if self.sleep_waiting {
                // The timer wakes the driver at the new deadline.
                let at = self.epoch + std::time::Duration::from_nanos(next.as_nanos());
                self.sleep.as_mut().reset(at);
                self.driver_deadline = Some(next);
            } else if let Some(driver) = &self.driver_waker {
                wake.0.push(driver.clone());
            }
        }
    }

    /// One run of the driver: packets in, timers, packets out, events.
    /// Returns whether it made progress.
    fn drive(&mut self, now: Instant, wake: &mut Wake) -> bool {
        let received = self.receive(now);
        self.finish_round(now, wake) || received
    }

    /// Packets in from the device, into the engine: whether any came. When
    /// none is there, the device has registered the stack's waker.
    fn receive(&mut self, now: Instant) -> bool {
        if self.device_dead {
            return false;
        }
        let cx = &mut Context::from_waker(&self.device_waker);
        match self.device.poll_recv(cx, &mut self.rx, RX_BATCH) {
            Poll::Ready(Ok(_)) => {
                for pkt in self.rx.drain(..) {
                    self.engine.handle_packet(now, &pkt);
                    self.device.recycle(pkt);
                }
                true
            }
            Poll::Ready(Err(e)) => {
                device_failed(&e, "receive");
                self.device_dead = true;
                false
            }
            Poll::Pending => false,
        }
    }

    /// The rest of a driver's round after [`receive`](State::receive):
    /// timers, packets out, events. Returns whether packets went out.
    fn finish_round(&mut self, now: Instant, wake: &mut Wake) -> bool {
        self.engine.handle_timeout(now);
        let sent = self.flush(now);
        self.collect_events(wake);
        sent
    }
}

thread_local! {
    /// How many stack locks this thread holds: a device wake-up that comes
    /// while one is held (a user call sending, the driver flushing) is put
    /// off until none is, so no thread ever holds two stacks' locks.
    static HELD: Cell<usize> = const { Cell::new(0) };
    /// Device wake-ups put off until this thread holds no stack lock.
    static DEFERRED: RefCell<Vec<Arc<DeviceWaker>>> = const { RefCell::new(Vec::new()) };
    /// Whether this thread is running the put-off wake-ups already.
    static DRAINING: Cell<bool> = const { Cell::new(false) };
    /// Packets this thread's stack calls handed to devices since the last
    /// drain: a burst leaves the receivers' work to their drivers.
    static SENT: Cell<usize> = const { Cell::new(0) };
}

/// The stack's lock held, as [`Shared::lock`] returns it: counts the locks
/// the thread holds, and once it holds none, runs the device wake-ups that
/// came meanwhile.
pub(crate) struct StateGuard<'a> {
    guard: Option<MutexGuard<'a, State>>,
}

impl<'a> StateGuard<'a> {
    fn new(guard: MutexGuard<'a, State>) -> Self {
        HELD.with(|h| h.set(h.get() + 1));
        StateGuard { guard: Some(guard) }
    }
}

impl std::ops::Deref for StateGuard<'_> {
    type Target = State;
    fn deref(&self) -> &State {
        self.guard.as_ref().expect("held until dropped")
    }
}

impl std::ops::DerefMut for StateGuard<'_> {
    fn deref_mut(&mut self) -> &mut State {
        self.guard.as_mut().expect("held until dropped")
    }
}

impl Drop for StateGuard<'_> {
    fn drop(&mut self) {
        // Unlock first: the wake-ups run without this lock.
        drop(self.guard.take());
        let held = HELD.with(|h| {
            h.set(h.get() - 1);
            h.get()
        });
        if held == 0 && !std::thread::panicking() {
            run_deferred();
        }
    }
}

/// Most put-off device wake-ups one drain runs inline: one, the receiver of
/// what the call sent; the wake-ups its work makes in turn (the replies to
/// the sender) wake their stacks' drivers, so a call never runs a whole
/// exchange.
const INLINE_RUNS: usize = 1;
/// The most packets a drain's sends may have carried for their receiver's
/// work to run inline. A burst (a bulk write, a window opening) is left to
/// the receiver's driver, which on a multi-thread runtime another worker
/// runs beside the sender, and which takes the burst as one batch.
const INLINE_BURST: usize = 4;
/// Wake-ups in a row whose receive work runs inline with no user call of
/// the receiving stack between them; then the driver takes over until the
/// next user call (a stream of single packets, as a flood of small
/// datagrams, is cheaper in the driver's batches).
const INLINE_STREAK: u32 = 4;

/// Runs the device wake-ups put off while this thread held a stack lock.
fn run_deferred() {
    if DRAINING.with(|d| d.replace(true)) {
        // An outer drain on this thread picks up whatever comes.
        return;
    }
    let mut runs = if SENT.with(|s| s.replace(0)) > INLINE_BURST {
        INLINE_RUNS
    } else {
        0
    };
    while let Some(w) = DEFERRED.with(|d| d.borrow_mut().pop()) {
        w.queued.store(false, Ordering::Relaxed);
        if runs < INLINE_RUNS {
            runs += 1;
            w.run_inline();
        } else {
            w.driver.wake();
        }
    }
    DRAINING.with(|d| d.set(false));
}

/// The waker a stack registers with its device.
///
/// For a device whose wake-ups come from the code that sends to it
/// ([`Device::receive_in_wake`], as a `MemoryLink`'s), a wake-up runs the
/// stack's receive work right there, on the waking thread: packets in,
/// replies out, the readers woken. Between two stacks in one process that
/// halves the task switches of a packet exchange (the sender's task does
/// the receiver's stack work, as a kernel's loopback does in the sender's
/// system call), and on a multi-thread runtime it keeps a request and its
/// response on one worker. When the stack is busy (its lock held
/// elsewhere), or for any other device, the wake-up wakes the driver task.
pub(crate) struct DeviceWaker {
    shared: Weak<Shared>,
    /// The driver task, registered at each of its polls.
    driver: AtomicWaker,
    /// Whether to run the receive work in the wake-up.
    inline: bool,
    /// Whether it is in this thread's put-off list already.
    queued: AtomicBool,
}

impl std::task::Wake for DeviceWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if !self.inline {
            self.driver.wake();
            return;
        }
        if HELD.with(Cell::get) > 0 {
            if !self.queued.swap(true, Ordering::Relaxed) {
                DEFERRED.with(|d| d.borrow_mut().push(self.clone()));
            }
            return;
        }
        SENT.with(|s| s.set(0));
        self.run_inline();
        run_deferred();
    }
}

impl DeviceWaker {
    /// The stack's receive work, here and now if its lock is free.
    fn run_inline(&self) {
        let Some(shared) = self.shared.upgrade() else {
            return;
        };
        if shared.closed.load(Ordering::Acquire) {
            // Stopping is the driver's business.
            self.driver.wake();
            return;
        }
        let guard = match shared.state.try_lock() {
            Ok(g) => g,
            Err(TryLockError::Poisoned(e)) => e.into_inner(),
            Err(TryLockError::WouldBlock) => {
                self.driver.wake();
                return;
            }
        };
        let mut st = StateGuard::new(guard);
        if st.calls == st.inline_seen {
            st.inline_streak += 1;
        } else {
            st.inline_seen = st.calls;
            st.inline_streak = 0;
        }
        if st.driver_waker.is_none() || st.inline_streak >= INLINE_STREAK {
            // The driver has not run yet (or has stopped), or packets keep
            // coming while nobody reads: leave them to the driver.
            drop(st);
            self.driver.wake();
            return;
        }
        let mut wake = Wake::new();
        // One clock read for the run: its rounds follow each other within
        // microseconds.
        let now = shared.now();
        let mut progress = st.drive(now, &mut wake);
        let mut rounds = 1;
        while progress {
            if rounds >= DRIVER_ROUNDS {
                // More than a fair share: the driver goes on.
                self.driver.wake();
                break;
            }
            // After a round, at the same instant, only the device can have
            // more (timers were handled, output flushed or the device
            // registered for room): ask it alone, which registers this
            // waker when it has nothing. That saves a whole round (timer
            // scan, flush, events) per wake-up, the usual case.
            progress = st.receive(now);
            if progress {
                st.finish_round(now, &mut wake);
                rounds += 1;
            }
        }
        st.arm_timer(&mut wake);
        drop(st);
        wake.run();
    }
}

/// The part of a stack that every handle shares with the driver.
pub(crate) struct Shared {
    state: Mutex<State>,
    /// The waker the device calls, shared with [`State::device_waker`].
    device_waker: Arc<DeviceWaker>,
    epoch: tokio::time::Instant,
    closed: AtomicBool,
    /// Names [`ToSocketAddrs`](crate::net::ToSocketAddrs) resolves, lower-case.
    hosts: Mutex<HashMap<String, Ipv4Addr>>,
}

impl Shared {
    /// The stack's lock, for a user call.
    pub(crate) fn lock(&self) -> StateGuard<'_> {
        let mut st = self.lock_quiet();
        st.calls = st.calls.wrapping_add(1);
        st
    }

    /// The stack's lock, for the driver: not counted as a user call.
    fn lock_quiet(&self) -> StateGuard<'_> {
        StateGuard::new(self.state.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// The engine's time: nanoseconds of tokio time since the stack began.
    pub(crate) fn now(&self) -> Instant {
        let d = tokio::time::Instant::now().saturating_duration_since(self.epoch);
        Instant::from_nanos(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
    }

    fn to_tokio(&self, t: Instant) -> tokio::time::Instant {
        self.epoch + std::time::Duration::from_nanos(t.as_nanos())
    }
}

/// Held by every user-facing handle; the driver stops when the last one drops.
pub(crate) struct HandleRef {
    pub(crate) shared: Arc<Shared>,
}

impl Drop for HandleRef {
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::Release);
        let waker = self.shared.lock().driver_waker.clone();
        if let Some(w) = waker {
            w.wake();
        }
    }
}

/// A user-space TCP/IP stack on one device: a whole IPv4 host, with one or
/// more addresses on the device and a loopback interface (127.0.0.0/8 and
/// its own addresses are delivered inside the stack).
///
/// Creating a stack spawns its driver task on the current tokio runtime.
/// Cloning a `Stack` is cheap and shares it.
///
/// # When a stack stops
///
/// Once the `Stack` and every listener and stream made from it are dropped,
/// the driver keeps running only while connections the application closed
/// (orphans, as a kernel calls them) still have something to deliver: data
/// and a FIN not yet acknowledged, or a FIN-WAIT-2 waiting for the peer's FIN.
/// So `write_all(..)`, `shutdown()` and dropping everything still gets the
/// tail to the peer. Each orphan is bounded: by the retransmission give-up
/// ([`Config::data_retries`]), the zero-window probe limit
/// ([`Config::orphan_retries`]), and [`Config::fin_wait2_timeout`]. TIME-WAIT
/// is not waited for. The driver stops when the last orphan is done, when the
/// device has failed or its other end is gone, or when the runtime shuts down.
///
/// ```
/// use std::net::Ipv4Addr;
/// use synack::Stack;
/// use synack::device::{MemoryLink, MemoryLinkConfig};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let (a, _b) = MemoryLink::pair(MemoryLinkConfig::default());
/// let stack = Stack::new(a, Ipv4Addr::new(192, 0, 2, 1), 24);
/// assert_eq!(stack.addr(), Ipv4Addr::new(192, 0, 2, 1));
/// # }
/// ```
#[derive(Clone)]
pub struct Stack {
    pub(crate) handle: Arc<HandleRef>,
}

/// Builds a [`Stack`] with a non-default configuration.
pub struct StackBuilder {
    device: Box<dyn Device>,
    addr: Ipv4Addr,
    prefix_len: u8,
    /// Addresses beyond the first.
    more: Vec<(IpAddr, u8)>,
    config: Config,
    secret: Option<[u64; 2]>,
    hosts: HashMap<String, Ipv4Addr>,
}

impl StackBuilder {
    /// The engine configuration (buffer sizes, timeouts, ...).
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// A fixed secret for initial sequence numbers and other choices, for
    /// reproducible runs. By default it is random per stack (RFC 6528).
    pub fn secret(mut self, secret: [u64; 2]) -> Self {
        self.secret = Some(secret);
        self
    }

    /// One more address of the stack's device interface, with its prefix
    /// (any number may be added; the one given to [`Stack::builder`] is the
    /// first, the default source). Connections leave from the address whose
    /// subnet holds the destination; a listener on `0.0.0.0` hears them all.
    /// IPv6 addresses are not supported yet: [`try_build`](Self::try_build)
    /// fails with `Unsupported`.
    pub fn address(mut self, addr: impl Into<IpAddr>, prefix_len: u8) -> Self {
        self.more.push((addr.into(), prefix_len));
        self
    }

    /// Adds `name` → `addr` to the stack's host table, which resolves names
    /// given to [`net`](crate::net) functions (there is no DNS client).
    /// `"localhost"` resolves to 127.0.0.1, as in `/etc/hosts`.
    pub fn host(mut self, name: &str, addr: Ipv4Addr) -> Self {
        self.hosts.insert(name.to_ascii_lowercase(), addr);
        self
    }

    /// Starts the stack. Must be called within a tokio runtime.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime, or if the device's MTU cannot carry IPv4
    /// (below 68 bytes): [`try_build`](StackBuilder::try_build) returns that
    /// as an error instead.
    pub fn build(self) -> Stack {
        match self.try_build() {
            Ok(stack) => stack,
            Err(e) => panic!("synack: {e}"),
        }
    }

    /// Starts the stack, or fails with [`io::ErrorKind::InvalidInput`] if the
    /// device's MTU cannot carry IPv4: below 68 bytes, the least every IPv4
    /// link must carry (RFC 791), or above 65 535.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    pub fn try_build(self) -> io::Result<Stack> {
        let caps = self.device.capabilities();
        let iface = Interface {
            addr: self.addr,
            prefix_len: self.prefix_len,
            mtu: caps.mtu,
            checksum_rx_offload: caps.checksum.rx,
            checksum_tx_offload: caps.checksum.tx,
        };
        let secret = self.secret.unwrap_or_else(random_secret);
        let mut engine = Engine::try_new(self.config, iface, secret).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "device MTU {} cannot carry IPv4 (at least {} bytes, at most 65535)",
                    caps.mtu,
                    synack_engine::MIN_MTU
                ),
            )
        })?;
        for (addr, prefix_len) in self.more {
            let IpAddr::V4(ip) = addr else {
                return Err(ipv6_unsupported());
            };
            engine.add_address(Cidr::new(ip, prefix_len)).map_err(|e| {
                io::Error::new(to_io(e).kind(), format!("address {addr}/{prefix_len}: {e}"))
            })?;
        }
        let epoch = tokio::time::Instant::now();
        let inline = self.device.receive_in_wake();
        let shared = Arc::new_cyclic(|weak| {
            let device_waker = Arc::new(DeviceWaker {
                shared: weak.clone(),
                driver: AtomicWaker::new(),
                inline,
                queued: AtomicBool::new(false),
            });
            Shared {
                device_waker: device_waker.clone(),
                state: Mutex::new(State {
                    engine,
                    device: self.device,
                    wakers: Vec::new(),
                    tx: VecDeque::new(),
                    rx: Vec::with_capacity(RX_BATCH),
                    spare: None,
                    scratch: Vec::new(),
                    mtu: caps.mtu,
                    device_dead: false,
                    driver_waker: None,
                    device_waker: Waker::from(device_waker),
                    driver_deadline: None,
                    sleep: Box::pin(tokio::time::sleep_until(epoch)),
                    sleep_waiting: false,
                    calls: 0,
                    inline_seen: 0,
                    inline_streak: 0,
                    epoch,
                }),
                epoch,
                closed: AtomicBool::new(false),
                hosts: Mutex::new(self.hosts),
            }
        });
        tokio::spawn(Driver {
            shared: shared.clone(),
        });
        Ok(Stack {
            handle: Arc::new(HandleRef { shared }),
        })
    }
}

/// A random number from the standard library's per-process random hasher keys.
pub(crate) fn random_u64() -> u64 {
    random_secret()[0]
}

/// A random secret from the standard library's per-process random hasher keys.
fn random_secret() -> [u64; 2] {
    use std::hash::{BuildHasher, Hasher};
    let mut out = [0u64; 2];
    for (i, slot) in out.iter_mut().enumerate() {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_usize(i);
        *slot = h.finish();
    }
    out
}

impl Stack {
    /// A stack on `device` with address `addr/prefix_len` and the default configuration.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    pub fn new(device: impl Device, addr: Ipv4Addr, prefix_len: u8) -> Stack {
        Stack::builder(device, addr, prefix_len).build()
    }

    /// Like [`new`](Stack::new), but a device whose MTU cannot carry IPv4 is an
    /// [`io::ErrorKind::InvalidInput`] error (see [`StackBuilder::try_build`]).
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    pub fn try_new(device: impl Device, addr: Ipv4Addr, prefix_len: u8) -> io::Result<Stack> {
        Stack::builder(device, addr, prefix_len).try_build()
    }

    /// A builder for a stack with another configuration.
    pub fn builder(device: impl Device, addr: Ipv4Addr, prefix_len: u8) -> StackBuilder {
        StackBuilder {
            device: Box::new(device),
            addr,
            prefix_len,
            more: Vec::new(),
            config: Config::default(),
            secret: None,
            hosts: HashMap::new(),
        }
    }

    /// The stack's first IPv4 address (its default source address), or
    /// `0.0.0.0` if every address was removed.
    pub fn addr(&self) -> Ipv4Addr {
        self.shared().lock().engine.addr()
    }

    /// Every address of the stack's device interface with its prefix length,
    /// first one first. The loopback interface (127.0.0.0/8) is always
    /// there and not listed.
    pub fn addresses(&self) -> Vec<(IpAddr, u8)> {
        let st = self.shared().lock();
        st.engine
            .addresses()
            .iter()
            .map(|c| (IpAddr::V4(c.addr), c.prefix_len))
            .collect()
    }

    /// Adds an address to the device interface at run time (`ip addr add`).
    ///
    /// Errors: `AddrInUse` if the stack has it; `InvalidInput` for an
    /// address no host may have (loopback, multicast, broadcast,
    /// unspecified) or a prefix over 32; `Unsupported` for IPv6.
    pub fn add_address(&self, addr: impl Into<IpAddr>, prefix_len: u8) -> io::Result<()> {
        let IpAddr::V4(ip) = addr.into() else {
            return Err(ipv6_unsupported());
        };
        let mut st = self.shared().lock();
        st.engine
            .add_address(Cidr::new(ip, prefix_len))
            .map_err(to_io)
    }

    /// Removes an address from the device interface (`ip addr del`): its
    /// connections are reset (the peer gets a RST, the application
    /// `ConnectionAborted`), as Linux does. `AddrNotAvailable` if the stack
    /// does not have it.
    pub fn remove_address(&self, addr: impl Into<IpAddr>) -> io::Result<()> {
        let IpAddr::V4(ip) = addr.into() else {
            return Err(io::ErrorKind::AddrNotAvailable.into());
        };
        let shared = self.shared();
        let wake = {
            let mut st = shared.lock();
            let now = shared.now();
            st.engine.remove_address(now, ip).map_err(to_io)?;
            st.after_call(now)
        };
        wake.run();
        Ok(())
    }

    /// The engine configuration the stack was built with.
    pub fn config(&self) -> Config {
        self.shared().lock().engine.config().clone()
    }

    /// Counters of the whole stack: packets in and out, drops by reason,
    /// buffer memory in use ([`Stats::buffer_bytes`]) and connections by
    /// state ([`Stats::states`]).
    pub fn stats(&self) -> Stats {
        self.shared().lock().engine.stats()
    }

    /// Every socket of the stack, as `ss -tuai` lists a host's: listeners,
    /// connections (TIME-WAIT and orphans too) and UDP sockets, each with its
    /// state, addresses, queues and, for TCP connections, its
    /// [`TcpInfo`](crate::TcpInfo). A snapshot: taken under the stack's lock
    /// at the call.
    ///
    /// ```
    /// # use std::net::Ipv4Addr;
    /// use synack::{Stack, SocketState, State, device::{MemoryLink, MemoryLinkConfig}};
    /// use synack::net::{TcpListener, TcpStream};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let (a, _b) = MemoryLink::pair(MemoryLinkConfig::default());
    /// let stack = Stack::new(a, Ipv4Addr::new(192, 0, 2, 1), 24);
    /// let listener = TcpListener::bind_on(&stack, "127.0.0.1:80").await?;
    /// let _client = TcpStream::connect_on(&stack, "127.0.0.1:80").await?;
    /// let _server = listener.accept().await?;
    /// for s in stack.connections() {
    ///     println!("{:<8} {:>6} {:>6} {:<21} {:?}", s.state, s.recv_q, s.send_q, s.local, s.remote);
    /// }
    /// let states: Vec<SocketState> = stack.connections().iter().map(|s| s.state).collect();
    /// assert_eq!(states.iter().filter(|s| **s == SocketState::Tcp(State::Established)).count(), 2);
    /// assert!(states.contains(&SocketState::Listen));
    /// # Ok(())
    /// # }
    /// ```
    pub fn connections(&self) -> Vec<SocketSummary> {
        self.shared().lock().engine.sockets()
    }

    /// Adds `name` → `addr` to the host table (see [`StackBuilder::host`]),
    /// replacing an earlier entry for the name.
    pub fn add_host(&self, name: &str, addr: Ipv4Addr) {
        let mut hosts = self
            .shared()
            .hosts
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        hosts.insert(name.to_ascii_lowercase(), addr);
    }

    /// Looks `name` up: `"localhost"` (and `*.localhost`, RFC 6761 §6.3) is
    /// 127.0.0.1 unless the host table says otherwise; anything else comes
    /// from the host table.
    pub(crate) fn resolve_host(&self, name: &str) -> Option<Ipv4Addr> {
        let name = name.to_ascii_lowercase();
        let name = name.strip_suffix('.').unwrap_or(&name);
        let hosts = self
            .shared()
            .hosts
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(&ip) = hosts.get(name) {
            return Some(ip);
        }
        if name == "localhost" || name.ends_with(".localhost") {
            return Some(Ipv4Addr::LOCALHOST);
        }
        None
    }

    /// Makes this the current stack of the calling code until the guard
    /// drops, much as tokio's `Runtime::enter` does for the runtime:
    /// `synack::net` calls
    /// without a stack argument ([`TcpStream::connect`](crate::net::TcpStream::connect),
    /// [`TcpListener::bind`](crate::net::TcpListener::bind),
    /// [`TcpSocket::new_v4`](crate::net::TcpSocket::new_v4),
    /// [`lookup_host`](crate::net::lookup_host)) use it. Guards nest: the
    /// innermost wins, and dropping it brings back the one before.
    ///
    /// The guard is for one thread (it is not `Send`) and for the task that
    /// made it: entered inside a tokio task, the stack is current for that
    /// task only; entered outside any task (in `main`, a test's body, a
    /// `block_on`), for that code only. Other tasks the thread polls
    /// meanwhile do not see it, even with the guard held across an
    /// `.await` on a current-thread runtime: a task spawned with
    /// `tokio::spawn` never silently takes a stack from whatever ran before
    /// it on its thread. Give such a task its stack with
    /// [`scope`](Stack::scope), which enters the stack around every poll, or
    /// set a process-wide [default](Stack::set_default).
    ///
    /// Without a current stack those calls fail with an `io::Error` of kind
    /// `NotFound` saying so, rather than panicking as tokio does without a runtime.
    ///
    /// ```
    /// use std::net::Ipv4Addr;
    /// use synack::{Stack, net::TcpListener};
    /// use synack::device::{MemoryLink, MemoryLinkConfig};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let (a, _b) = MemoryLink::pair(MemoryLinkConfig::default());
    /// let stack = Stack::new(a, Ipv4Addr::new(192, 0, 2, 1), 24);
    /// let _guard = stack.enter();
    /// let listener = TcpListener::bind("0.0.0.0:8080").await?;
    /// assert_eq!(listener.local_addr()?, "0.0.0.0:8080".parse().unwrap());
    /// # Ok(())
    /// # }
    /// ```
    pub fn enter(&self) -> EnterGuard<'_> {
        self.enter_as(Owner::Task(tokio::task::try_id()))
    }

    /// Makes this stack current for everything polled on this thread until
    /// the guard drops, every task included: for the simulation, which runs
    /// each host's whole runtime with its stack current.
    #[cfg_attr(not(feature = "sim"), allow(dead_code))]
    pub(crate) fn enter_thread(&self) -> EnterGuard<'_> {
        self.enter_as(Owner::Thread)
    }

    fn enter_as(&self, owner: Owner) -> EnterGuard<'_> {
        let token = CURRENT.with(|c| {
            let mut c = c.borrow_mut();
            c.next_token += 1;
            let token = c.next_token;
            c.entries.push(Entry {
                stack: self.clone(),
                owner,
                token,
            });
            token
        });
        EnterGuard {
            token,
            _stack: PhantomData,
        }
    }

    /// The stack calls without a stack argument use: the one the running code
    /// entered (see [`enter`](Stack::enter); the innermost wins), else the
    /// process-wide default (see [`set_default`](Stack::set_default)), else none.
    pub fn try_current() -> Option<Stack> {
        CURRENT
            .with(|c| c.borrow().visible().cloned())
            .or_else(Stack::default_stack)
    }

    /// Makes this stack the process-wide default: calls without a stack
    /// argument (`TcpStream::connect`, `TcpListener::bind`, `UdpSocket::bind`,
    /// `lookup_host`) use it on any thread and in any task where no stack is
    /// entered — tasks that libraries spawn (a tonic channel dialing from its
    /// own task, hyper's connection tasks) included. Returns the default it
    /// replaces.
    ///
    /// A stack entered with [`enter`](Stack::enter) or [`scope`](Stack::scope)
    /// wins over the default. The default holds a handle, so the stack runs
    /// until [`clear_default`](Stack::clear_default) (and its last other
    /// handle) lets it go. In a program with one stack this is all it needs;
    /// with several (a simulation, a test with a client and a server stack),
    /// give each task its stack with `scope` or the `_on(&stack, ..)` forms:
    /// the default is one for the whole process.
    ///
    /// ```
    /// # use std::net::Ipv4Addr;
    /// use synack::{Stack, device::{MemoryLink, MemoryLinkConfig}, net::TcpListener};
    ///
    /// # #[tokio::main]
    /// # async fn main() -> std::io::Result<()> {
    /// let (a, _b) = MemoryLink::pair(MemoryLinkConfig::default());
    /// let stack = Stack::new(a, Ipv4Addr::new(192, 0, 2, 1), 24);
    /// stack.set_default();
    /// // A task nobody entered a stack in still finds it.
    /// let port = tokio::spawn(async {
    ///     TcpListener::bind("127.0.0.1:0").await.map(|l| l.local_addr().unwrap().port())
    /// })
    /// .await
    /// .unwrap()?;
    /// assert_ne!(port, 0);
    /// Stack::clear_default();
    /// # Ok(())
    /// # }
    /// ```
    pub fn set_default(&self) -> Option<Stack> {
        DEFAULT
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .replace(self.clone())
    }

    /// Removes the process-wide default stack (see
    /// [`set_default`](Stack::set_default)) and returns it.
    pub fn clear_default() -> Option<Stack> {
        DEFAULT.write().unwrap_or_else(|e| e.into_inner()).take()
    }

    /// The process-wide default stack, if one is set.
    pub fn default_stack() -> Option<Stack> {
        DEFAULT.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The current stack, or the error `synack::net` calls give without one.
    pub(crate) fn current() -> io::Result<Stack> {
        Stack::try_current().ok_or_else(|| {
            if CURRENT.with(|c| !c.borrow().entries.is_empty()) {
                return io::Error::new(
                    io::ErrorKind::NotFound,
                    "no synack Stack is current in this task: the stack entered on this \
                     thread belongs to other code (an `enter()` guard is for the task that \
                     made it, and a spawned task does not inherit it): run the task in \
                     `stack.scope(...)`, set a default with `stack.set_default()`, or use \
                     the `_on(&stack, ..)` forms",
                );
            }
            io::Error::new(
                io::ErrorKind::NotFound,
                "no synack Stack is current on this thread and no default is set: call \
                 `stack.enter()` (or run the task in `stack.scope(...)`), set one for the \
                 process with `stack.set_default()`, or use the `_on(&stack, ..)` forms",
            )
        })
    }

    /// Wraps `fut` so that this stack is current whenever it is polled, on
    /// whichever thread: for tasks handed to `tokio::spawn`.
    ///
    /// ```
    /// use std::net::Ipv4Addr;
    /// use synack::{Stack, net::TcpListener};
    /// use synack::device::{MemoryLink, MemoryLinkConfig};
    ///
    /// # #[tokio::main]
    /// # async fn main() {
    /// let (a, _b) = MemoryLink::pair(MemoryLinkConfig::default());
    /// let stack = Stack::new(a, Ipv4Addr::new(192, 0, 2, 1), 24);
    /// let task = tokio::spawn(stack.scope(async {
    ///     TcpListener::bind("0.0.0.0:9").await.map(|l| l.local_addr().unwrap())
    /// }));
    /// assert_eq!(task.await.unwrap().unwrap().port(), 9);
    /// # }
    /// ```
    pub fn scope<F: Future>(&self, fut: F) -> Scoped<F> {
        Scoped {
            stack: self.clone(),
            fut,
        }
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.handle.shared
    }
}

impl std::fmt::Debug for Stack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stack").field("addr", &self.addr()).finish()
    }
}

/// How far off the driver's timer is armed when the engine has no deadline.
const IDLE_TIMER: std::time::Duration = std::time::Duration::from_secs(3600);

/// The driver task: sleeps until the device has packets, a timer is due, or a
/// user call wakes it.
struct Driver {
    shared: Arc<Shared>,
}

impl Future for Driver {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let shared = self.shared.clone();
        let mut wake = Wake::new();
        let closed = shared.closed.load(Ordering::Acquire);
        let result = {
            let mut st = shared.lock_quiet();
            if st
                .driver_waker
                .as_ref()
                .is_none_or(|w| !w.will_wake(cx.waker()))
            {
                st.driver_waker = Some(cx.waker().clone());
            }
            shared.device_waker.driver.register(cx.waker());
            if closed && (st.engine.orphans() == 0 || st.device_dead) {
                // Last handle gone and nothing left to deliver (or no device
                // left to deliver it on): send what is queued, then stop.
                let now = shared.now();
                st.flush(now);
                st.driver_waker = None;
                Poll::Ready(())
            } else {
                let mut rounds = 0;
                loop {
                    let now = shared.now();
                    let progress = st.drive(now, &mut wake);
                    if !wake.0.is_empty() {
                        // Wake the tasks this round made ready now rather
                        // than after the last round, and let them take the
                        // lock meanwhile (on another worker, or after us).
                        drop(st);
                        std::mem::replace(&mut wake, Wake::new()).run();
                        st = shared.lock_quiet();
                    }
                    let deadline = st.engine.poll_timeout();
                    st.driver_deadline = deadline;
                    // With no deadline the timer is still armed, far off, so
                    // that a user call can bring it forward (`after_call`).
                    let at = deadline.map_or_else(
                        || tokio::time::Instant::now() + IDLE_TIMER,
                        |d| shared.to_tokio(d),
                    );
                    let stale = deadline.is_some() || st.sleep.deadline() < at - IDLE_TIMER / 2;
                    if stale && st.sleep.deadline() != at {
                        st.sleep.as_mut().reset(at);
                    }
                    let fired = st.sleep.as_mut().poll(cx).is_ready();
                    st.sleep_waiting = !fired;
                    if fired && deadline.is_some() && rounds < DRIVER_ROUNDS {
                        rounds += 1;
                        continue;
                    }
                    rounds += 1;
                    if closed && (st.engine.orphans() == 0 || st.device_dead) {
                        // The last orphan is done: one more poll stops the driver.
                        cx.waker().wake_by_ref();
                        break Poll::Pending;
                    }
                    if !progress {
                        break Poll::Pending;
                    }
                    if rounds >= DRIVER_ROUNDS {
                        cx.waker().wake_by_ref();
                        break Poll::Pending;
                    }
                }
            }
        };
        wake.run();
        result
    }
}

/// The process-wide default stack; see [`Stack::set_default`].
static DEFAULT: std::sync::RwLock<Option<Stack>> = std::sync::RwLock::new(None);

thread_local! {
    /// The stacks entered on this thread.
    static CURRENT: RefCell<Entered> = const {
        RefCell::new(Entered {
            entries: Vec::new(),
            next_token: 0,
        })
    };
}

/// Whom an entered stack is current for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owner {
    /// The tokio task that entered it, or code outside any task (`None`).
    Task(Option<tokio::task::Id>),
    /// Everything polled on the thread.
    Thread,
}

struct Entry {
    stack: Stack,
    owner: Owner,
    /// Names the entry for its guard.
    token: u64,
}

/// The stacks entered on one thread, innermost last.
struct Entered {
    entries: Vec<Entry>,
    next_token: u64,
}

impl Entered {
    /// The innermost stack entered for the code running now.
    fn visible(&self) -> Option<&Stack> {
        let me = Owner::Task(tokio::task::try_id());
        self.entries
            .iter()
            .rev()
            .find(|e| e.owner == Owner::Thread || e.owner == me)
            .map(|e| &e.stack)
    }

    /// Ends the entry `token`, and those its owner entered after it (guards
    /// dropped out of order); other owners' entries stay.
    fn leave(&mut self, token: u64) {
        let Some(at) = self.entries.iter().position(|e| e.token == token) else {
            return;
        };
        let owner = self.entries[at].owner;
        let mut index = 0;
        self.entries.retain(|e| {
            let i = index;
            index += 1;
            i < at || e.owner != owner
        });
    }
}

/// Keeps a stack current for the code that entered it; see [`Stack::enter`].
#[must_use = "the stack is current only while the guard lives"]
pub struct EnterGuard<'a> {
    token: u64,
    /// Borrows the stack, and is neither `Send` nor `Sync`: it belongs to its thread.
    _stack: PhantomData<(&'a Stack, *const ())>,
}

impl Drop for EnterGuard<'_> {
    fn drop(&mut self) {
        // Guards dropped out of order also end the ones their owner entered after them.
        CURRENT.with(|c| c.borrow_mut().leave(self.token));
    }
}

impl std::fmt::Debug for EnterGuard<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnterGuard")
            .field("token", &self.token)
            .finish()
    }
}

/// A future with a stack current around each poll; see [`Stack::scope`].
#[pin_project::pin_project]
#[derive(Debug)]
pub struct Scoped<F> {
    stack: Stack,
    #[pin]
    fut: F,
}

impl<F: Future> Future for Scoped<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let _guard = this.stack.enter();
        this.fut.poll(cx)
    }
}
