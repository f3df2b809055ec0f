//! A simulation harness in the manner of [turmoil](https://docs.rs/turmoil),
//! with real TCP underneath: every host runs its own synack [`Stack`] on a
//! [`synack_sim`] network, under paused tokio time.
//!
//! Declare servers with [`Sim::host`] (a factory, so the host can be crashed
//! and restarted) and test drivers with [`Sim::client`], then [`Sim::run`]
//! (or [`Sim::step`], one millisecond at a time). [`connections`] counts a
//! host's connections by state.
//! Hosts are numbered from `192.0.2.1` in order of declaration, and every
//! host's stack knows every name, so `TcpStream::connect("server:80")` works.
//! The router joining them is `.254` of the same /24 (`192.0.2.254`): it
//! answers a packet for an address no host has with ICMP host unreachable
//! (see [`Network::set_router_addr`](synack_sim::Network::set_router_addr)).
//! Inside a host's or client's future, [`synack::net`](crate::net) calls need
//! no stack argument: the host's stack is current whenever its tasks run.
//!
//! # Every host on its own runtime
//!
//! As in turmoil, each host (and each client) runs on a tokio runtime of its
//! own: current-thread, with paused time and a `LocalSet`, all driven from
//! the thread that calls [`Sim::run`]. Whatever a host spawns, with
//! `tokio::spawn`, `tokio::task::spawn_local` or [`synack::sim::spawn`](spawn),
//! runs on that runtime with the host's stack current: a task a library
//! spawns inside a host (hyper's connection tasks, a tonic channel dialing)
//! uses the host's stack, never another host's. [`crash`] drops the host's
//! runtime, so every task of the host ends with it, and [`bounce`] boots it
//! on a new one.
//!
//! # Faults
//!
//! From any client or host, during a run: [`partition`],
//! [`partition_unreachable`], [`partition_oneway`], [`repair`],
//! [`repair_oneway`], [`hold`] and [`release`] act on pairs of hosts; [`set_link`] changes a host's links; [`crash`] powers a host off (its
//! stack is dropped without a word on the wire, so its peers learn of it only
//! when they next send) and [`bounce`] boots it again with a new stack, which
//! answers the old connections' segments with resets.
//!
//! # Time and determinism
//!
//! Simulated time moves in [`TICK`]s of 1 ms (the resolution of tokio's
//! timers), every host's clock and the network's together: a step moves
//! them all to the tick's end, then runs what falls due at that instant on
//! every host, in rounds, host by host in order of declaration. A packet
//! that crosses a zero-delay path reaches a host whose turn has passed in
//! the next round, still at the same instant, and rounds go on while
//! packets move (up to 16). A packet due within a tick arrives at the
//! tick's end, as with one runtime's millisecond timers.
//!
//! Every random choice (links, initial sequence numbers) follows from the
//! seed, and hosts run in a fixed order, so a run with the same seed and the
//! same software is the same run: the same [`log`](Sim::log) and the same
//! packets ([`Sim::pcap`]).
//!
//! ```
//! use synack::net::{TcpListener, TcpStream};
//! use synack::sim::{Builder, LinkConfig};
//! use std::time::Duration;
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//!
//! let mut sim = Builder::new()
//!     .link(LinkConfig::new().delay(Duration::from_millis(10)))
//!     .build();
//! sim.host("server", || async {
//!     let listener = TcpListener::bind("0.0.0.0:7").await?;
//!     loop {
//!         let (mut s, _) = listener.accept().await?;
//!         tokio::spawn(async move {
//!             let (mut r, mut w) = s.split();
//!             tokio::io::copy(&mut r, &mut w).await
//!         });
//!     }
//! });
//! sim.client("client", async {
//!     let mut s = TcpStream::connect("server:7").await?;
//!     s.write_all(b"hello").await?;
//!     let mut buf = [0; 5];
//!     s.read_exact(&mut buf).await?;
//!     assert_eq!(&buf, b"hello");
//!     Ok(())
//! });
//! sim.run().unwrap();
//! ```

mod fabric;

use std::cell::{Cell, RefCell};
use std::error::Error;
use std::fmt;
use std::future::Future;
use std::io;
use std::net::Ipv4Addr;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};
use std::time::Duration;

use synack_engine::{Config, StateCounts};
use synack_sim::{HostConfig, Network};
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;

use crate::stack::Stack;
use fabric::{Cut, Fabric, SharedFabric, SimDevice};

pub use synack_sim::{CaptureBuffer, GilbertElliott, Link, LinkConfig, LinkStats, read_pcap};

/// What hosts and clients return: any error ends the run with it.
pub type Result<T = ()> = std::result::Result<T, Box<dyn Error>>;

type BoxFuture = Pin<Box<dyn Future<Output = Result>>>;
type Factory = Rc<dyn Fn() -> BoxFuture>;

/// Settings of a simulation; [`build`](Builder::build) makes the [`Sim`].
#[derive(Debug, Clone)]
pub struct Builder {
    seed: u64,
    duration: Duration,
    link: LinkConfig,
    config: Config,
    first_addr: Ipv4Addr,
    capture: bool,
}

impl Default for Builder {
    fn default() -> Self {
        Builder::new()
    }
}

impl Builder {
    /// Seed 0, a 60 s limit, perfect links, the default engine configuration,
    /// addresses from `192.0.2.1`, no capture.
    pub fn new() -> Builder {
        Builder {
            seed: 0,
            duration: Duration::from_secs(60),
            link: LinkConfig::new(),
            config: Config::default(),
            first_addr: Ipv4Addr::new(192, 0, 2, 1),
            capture: false,
        }
    }

    /// The seed every random choice follows from.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// The most simulated time a run may take before [`Sim::run`] fails.
    pub fn duration(mut self, limit: Duration) -> Self {
        self.duration = limit;
        self
    }

    /// The settings of every host's uplink and downlink (each way of a path
    /// crosses two links: a 10 ms delay here is a 40 ms round trip).
    pub fn link(mut self, link: LinkConfig) -> Self {
        self.link = link;
        self
    }

    /// The engine configuration of every host's stack.
    pub fn tcp_config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// The first host's address; the others follow it in order of declaration,
    /// all in its /24 (and all hosts' stacks are on that /24). The router is
    /// `.254` of that /24, so the hosts must end by `.253`.
    pub fn first_addr(mut self, addr: Ipv4Addr) -> Self {
        self.first_addr = addr;
        self
    }

    /// Records every packet each host sends, as a pcap file per host ([`Sim::pcap`]).
    pub fn capture(mut self, on: bool) -> Self {
        self.capture = on;
        self
    }

    /// The simulation, with no hosts yet.
    pub fn build(self) -> Sim {
        Sim {
            builder: self,
            decls: Vec::new(),
            log: Vec::new(),
            captures: Vec::new(),
            running: None,
            elapsed: Duration::ZERO,
        }
    }
}

enum Software {
    Host(Factory),
    Client(Option<BoxFuture>),
}

struct Decl {
    name: String,
    software: Software,
}

/// A simulation: hosts, clients, and the network between them. See the [module docs](self).
pub struct Sim {
    builder: Builder,
    decls: Vec<Decl>,
    log: Vec<String>,
    captures: Vec<(String, CaptureBuffer)>,
    /// The run under way between steps.
    running: Option<Running>,
    /// How long the last run took.
    elapsed: Duration,
}

impl fmt::Debug for Sim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.decls.iter().map(|d| d.name.as_str()).collect();
        f.debug_struct("Sim")
            .field("builder", &self.builder)
            .field("hosts", &names)
            .finish()
    }
}

impl Sim {
    /// Declares a server host. `factory` makes its software: it is called at
    /// the start of the run and again at every [`bounce`]. A host's error ends
    /// the run; a host whose future returns `Ok` stays up with nothing running.
    pub fn host<F, Fut>(&mut self, name: &str, factory: F) -> &mut Self
    where
        F: Fn() -> Fut + 'static,
        Fut: Future<Output = Result> + 'static,
    {
        let factory: Factory = Rc::new(move || Box::pin(factory()) as BoxFuture);
        self.decls.push(Decl {
            name: name.to_ascii_lowercase(),
            software: Software::Host(factory),
        });
        self
    }

    /// Declares a client host running `future` once. The run ends when every
    /// client has returned `Ok`, or at the first error.
    pub fn client<Fut>(&mut self, name: &str, future: Fut) -> &mut Self
    where
        Fut: Future<Output = Result> + 'static,
    {
        self.decls.push(Decl {
            name: name.to_ascii_lowercase(),
            software: Software::Client(Some(Box::pin(future))),
        });
        self
    }

    /// The event log of the last run: one line per host start, crash, fault
    /// and finished client, stamped with simulated time.
    pub fn log(&self) -> &[String] {
        &self.log
    }

    /// The pcap file of every packet `host` sent in the last run (see
    /// [`Builder::capture`]), or `None` without capture or such a host.
    pub fn pcap(&self, host: &str) -> Option<Vec<u8>> {
        let host = host.to_ascii_lowercase();
        self.captures
            .iter()
            .find(|(n, _)| *n == host)
            .map(|(_, b)| b.contents())
    }

    /// The whole conversation of the last run in one pcap file: every packet
    /// each host sent (see [`Builder::capture`]), merged in simulated-time
    /// order (a tie keeps the order hosts were added in), as a tap at the
    /// router's ports would see it. Wireshark's "Follow TCP stream" then
    /// shows both halves of a connection. `None` without capture.
    pub fn pcap_all(&self) -> Option<Vec<u8>> {
        let files: Vec<Vec<u8>> = self.captures.iter().map(|(_, b)| b.contents()).collect();
        let header: Vec<u8> = files.first()?.get(..24)?.to_vec();
        let mut records: Vec<(u64, usize, Vec<u8>)> = Vec::new();
        for (i, f) in files.iter().enumerate() {
            // The sim wrote these files itself: they parse.
            for r in read_pcap(f).ok()? {
                records.push((r.micros, i, r.data));
            }
        }
        records.sort_by_key(|&(micros, host, _)| (micros, host));
        let mut out = header;
        for (micros, _, data) in records {
            let len = u32::try_from(data.len()).ok()?;
            out.extend_from_slice(&u32::try_from(micros / 1_000_000).ok()?.to_le_bytes());
            out.extend_from_slice(&((micros % 1_000_000) as u32).to_le_bytes());
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(&data);
        }
        Some(out)
    }

    /// Runs the simulation, each host on its own current-thread tokio
    /// runtime with paused time, until every client has finished:
    /// [`step`](Sim::step) repeated.
    ///
    /// Returns the first error: a client's or a host's (with its name), or
    /// `TimedOut` when simulated time passes the [duration
    /// limit](Builder::duration). Clients run once: a second run fails with
    /// `InvalidInput`, as does a run with two hosts of one name or more hosts
    /// than fit in the /24 of the [first address](Builder::first_addr)
    /// (`.254` is the router's).
    ///
    /// # Panics
    ///
    /// When called inside a tokio runtime.
    pub fn run(&mut self) -> Result {
        while !self.step()? {}
        Ok(())
    }

    /// Advances the simulation by one tick, [`TICK`] (1 ms) of simulated
    /// time, and returns whether every client has finished.
    ///
    /// The first step starts the run (the network and the hosts, each on its
    /// own runtime). A step moves every host's clock on to the tick's end
    /// and then runs what falls due at that instant, on every host, in
    /// rounds (see the [module docs](self#time-and-determinism)). Between
    /// steps nothing runs and simulated time stands still, so a test can look
    /// at the hosts ([`Sim::connections`], [`Sim::elapsed`]) or break the
    /// network: the fault functions ([`partition`], [`hold`], [`set_link`],
    /// [`crash`], [`bounce`], ...) and [`connections`] work from the test's
    /// thread between steps; [`spawn`] does not (it needs a host). When it
    /// returns `Ok(true)` or an error, the run is over, as with
    /// [`run`](Sim::run): hosts are powered off and the [log](Sim::log) is
    /// complete.
    ///
    /// Errors are those of [`run`](Sim::run).
    ///
    /// ```
    /// use std::time::Duration;
    /// use synack::sim::Builder;
    ///
    /// let mut sim = Builder::new().build();
    /// sim.client("sleeper", async {
    ///     tokio::time::sleep(Duration::from_millis(3)).await;
    ///     Ok(())
    /// });
    /// assert!(!sim.step().unwrap());
    /// assert_eq!(sim.elapsed(), Duration::from_millis(1));
    /// assert!(!sim.step().unwrap());
    /// assert!(sim.step().unwrap());
    /// assert_eq!(sim.elapsed(), Duration::from_millis(3));
    /// ```
    ///
    /// # Panics
    ///
    /// When called inside a tokio runtime.
    pub fn step(&mut self) -> Result<bool> {
        if self.running.is_none() {
            self.start()?;
        }
        let Some(r) = self.running.as_mut() else {
            unreachable!("the run was just started");
        };
        let outcome = if r.clients > 0 {
            r.world.tick();
            r.world
                .take_stock(&mut r.done_rx, &mut r.clients, r.deadline)
        } else {
            // No client was declared: the run is over before it began.
            Some(Ok(()))
        };
        let Some(result) = outcome else {
            return Ok(false);
        };
        r.world.note(match &result {
            Ok(()) => "run finished".to_string(),
            Err(e) => format!("run ended: {e}"),
        });
        self.elapsed = r.world.now();
        self.log = r.world.log.take();
        // Powers everything off and drops the hosts' runtimes.
        self.running = None;
        result.map(|()| true)
    }

    /// Simulated time since the run began: of the run under way between
    /// [`step`](Sim::step)s, else of the last run (zero before any).
    pub fn elapsed(&self) -> Duration {
        match &self.running {
            Some(r) => r.world.now(),
            None => self.elapsed,
        }
    }

    /// `host`'s connections by state, between [`step`](Sim::step)s (see
    /// [`connections`]); `NotFound` when no run is under way or there is no
    /// such host.
    pub fn connections(&self, host: &str) -> io::Result<StateCounts> {
        match &self.running {
            Some(r) => r.world.connections(r.world.find(host)?),
            None => Err(io::Error::new(
                io::ErrorKind::NotFound,
                "no run is under way (step the simulation first)",
            )),
        }
    }

    fn check(&self) -> io::Result<()> {
        let invalid = |m: String| io::Error::new(io::ErrorKind::InvalidInput, m);
        for (i, d) in self.decls.iter().enumerate() {
            if self.decls[..i].iter().any(|e| e.name == d.name) {
                return Err(invalid(format!("two hosts are named {:?}", d.name)));
            }
            if matches!(d.software, Software::Client(None)) {
                return Err(invalid(format!("client {:?} has already run", d.name)));
            }
        }
        // Every stack is on one /24 with the first address; .254 is the router.
        let first = u32::from(self.builder.first_addr);
        let last = u64::from(first) + (self.decls.len() as u64).saturating_sub(1);
        if last >> 8 != u64::from(first >> 8) || last & 0xff >= 0xfe {
            return Err(invalid(format!(
                "{} hosts do not fit in the /24 from {} (.254 is the router)",
                self.decls.len(),
                self.builder.first_addr
            )));
        }
        Ok(())
    }

    /// Starts a run: the network, every host booted on its own runtime, and
    /// what they do at time zero.
    fn start(&mut self) -> Result {
        self.check()?;
        if tokio::runtime::Handle::try_current().is_ok() {
            panic!("synack::sim: a simulation cannot run inside a tokio runtime");
        }
        self.log.clear();
        let b = &self.builder;
        let net = Network::manual(b.seed);
        let first = u32::from(b.first_addr);
        net.set_router_addr(Ipv4Addr::from(first | 0xfe), 24)?;
        let mut ends = Vec::new();
        self.captures.clear();
        for (i, d) in self.decls.iter().enumerate() {
            let addr = Ipv4Addr::from(first + i as u32);
            let config = HostConfig::new(addr).uplink(b.link).downlink(b.link);
            let end = net.add_host(config)?;
            if b.capture {
                let buf = CaptureBuffer::new();
                let point = synack_sim::CapturePoint::Ingress;
                end.uplink().capture(point, buf.clone())?;
                self.captures.push((d.name.clone(), buf));
            }
            ends.push(end);
        }
        let addrs: Vec<Ipv4Addr> = ends.iter().map(|e| e.config().addr).collect();
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        let world = Rc::new(World {
            fabric: Arc::new(Mutex::new(Fabric::new(net.clone(), ends))),
            net,
            hosts: self
                .decls
                .iter_mut()
                .zip(&addrs)
                .map(|(d, &addr)| HostRec {
                    name: d.name.clone(),
                    addr,
                    factory: match &mut d.software {
                        Software::Host(f) => Some(f.clone()),
                        Software::Client(_) => None,
                    },
                    state: RefCell::new(Incarnation::default()),
                })
                .collect(),
            now: Cell::new(Duration::ZERO),
            seed: b.seed,
            config: b.config.clone(),
            log: RefCell::new(Vec::new()),
            done: done_tx,
            graveyard: RefCell::new(Vec::new()),
        });
        WORLD.with(|w| *w.borrow_mut() = Some(world.clone()));
        let mut clients = 0;
        for (i, d) in self.decls.iter_mut().enumerate() {
            match &mut d.software {
                Software::Host(_) => world.boot(i),
                Software::Client(fut) => {
                    if let Some(fut) = fut.take() {
                        clients += 1;
                        world.boot_with(i, fut);
                    }
                }
            }
        }
        // What the hosts do at time zero.
        world.rounds();
        let deadline = self.builder.duration;
        self.running = Some(Running {
            world,
            done_rx,
            clients,
            deadline,
        });
        Ok(())
    }
}

/// The length of a [`Sim::step`]: one millisecond of simulated time (the
/// resolution of tokio's timers, and turmoil's default tick).
pub const TICK: Duration = Duration::from_millis(1);

/// At most this many rounds over the hosts at one instant (see [`World::rounds`]).
const MAX_ROUNDS: usize = 16;

/// Wakes a host's round when its runtime has nothing left to run and is
/// about to park (its `on_thread_park` hook), so the round ends there,
/// before the paused clock would move on.
#[derive(Default)]
struct Idle(Mutex<Option<Waker>>);

impl Idle {
    /// The runtime's park hook.
    fn parking(&self) {
        let waker = self.0.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Ready once the runtime has run everything it could at this instant.
    async fn settled(&self) {
        let mut armed = false;
        std::future::poll_fn(|cx| {
            let mut slot = self.0.lock().unwrap_or_else(|e| e.into_inner());
            if armed && slot.is_none() {
                return Poll::Ready(());
            }
            armed = true;
            *slot = Some(cx.waker().clone());
            Poll::Pending
        })
        .await;
        // Not left armed for a later step.
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take();
    }
}

/// A run under way: what lives from the first [`Sim::step`] to the last.
struct Running {
    world: Rc<World>,
    done_rx: mpsc::UnboundedReceiver<Done>,
    /// Clients still running.
    clients: usize,
    /// The duration limit, as simulated time since the start.
    deadline: Duration,
}

impl Drop for Running {
    fn drop(&mut self) {
        // Power everything off and drop every runtime, so no stack outlives the run.
        for i in 0..self.world.hosts.len() {
            self.world.power_off(i);
        }
        self.world.bury();
        WORLD.with(|w| w.borrow_mut().take());
    }
}

/// A finished host or client future.
struct Done {
    host: usize,
    generation: u64,
    /// When it finished.
    at: Duration,
    result: Result,
}

/// Sends a host's or client's result to the run loop, or its panic if it panics.
struct Report {
    done: mpsc::UnboundedSender<Done>,
    host: usize,
    generation: u64,
    sent: bool,
}

impl Report {
    fn send(&mut self, result: Result) {
        self.sent = true;
        let at = world().map(|w| w.now()).unwrap_or_default();
        let _ = self.done.send(Done {
            host: self.host,
            generation: self.generation,
            at,
            result,
        });
    }
}

impl Drop for Report {
    fn drop(&mut self) {
        // Dropped unsent: aborted by a crash, or unwinding from a panic.
        if !self.sent && std::thread::panicking() {
            self.send(Err("panicked".into()));
        }
    }
}

/// One boot of a host: its own tokio runtime (current-thread, paused time)
/// with a `LocalSet` for `spawn_local`, and its stack.
struct HostRt {
    // Dropped before the runtime it runs on (see `HostRt::drop`).
    local: Option<tokio::task::LocalSet>,
    rt: Option<tokio::runtime::Runtime>,
    stack: Stack,
    /// The runtime's clock at boot.
    epoch: tokio::time::Instant,
    /// Simulated time at boot.
    booted: Duration,
    /// Simulated time the runtime's clock shows.
    at: Duration,
    /// Told when the host crashes during its own step, to end the step at once.
    down: Arc<Notify>,
    idle: Arc<Idle>,
}

impl HostRt {
    /// Runs the host's runtime with its stack current and `host` as the
    /// current host: to `until` (simulated time, at which its clock then
    /// stands, before anything due then has run), or else for a round: until
    /// it has nothing left to run at its present instant.
    fn run(&mut self, host: usize, until: Option<Duration>) {
        let (Some(local), Some(rt)) = (&self.local, &self.rt) else {
            return;
        };
        let target = until.map(|t| self.epoch + t.saturating_sub(self.booted));
        let down = self.down.clone();
        let idle = self.idle.clone();
        let _stack = self.stack.enter_thread();
        CURRENT_HOST.with(|c| c.borrow_mut().push(host));
        local.block_on(rt, async move {
            let work = async {
                match target {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => idle.settled().await,
                }
            };
            tokio::select! {
                biased;
                () = down.notified() => {}
                () = work => {}
            }
        });
        CURRENT_HOST.with(|c| c.borrow_mut().pop());
        if let Some(t) = until {
            self.at = self.at.max(t);
        }
    }
}

impl Drop for HostRt {
    fn drop(&mut self) {
        // The host's tasks go first, inside their runtime's context, then the runtime.
        if let Some(rt) = self.rt.take() {
            let guard = rt.enter();
            drop(self.local.take());
            drop(guard);
            drop(rt);
        }
    }
}

#[derive(Default)]
struct Incarnation {
    /// Counts boots; the current incarnation's number.
    generation: u64,
    stack: Option<Stack>,
    /// The running incarnation's runtime; taken out while it is being run.
    rt: Option<HostRt>,
    /// Whether the runtime is out being run (a step is under way on it).
    stepping: bool,
    down: Option<Arc<Notify>>,
}

struct HostRec {
    name: String,
    addr: Ipv4Addr,
    factory: Option<Factory>,
    state: RefCell<Incarnation>,
}

/// The running simulation, current on the test's thread from the first
/// [`Sim::step`] to the last.
struct World {
    fabric: SharedFabric,
    net: Network,
    hosts: Vec<HostRec>,
    /// Simulated time since the start: the instant every host is at (or
    /// being brought to) and the network's clock.
    now: Cell<Duration>,
    seed: u64,
    config: Config,
    log: RefCell<Vec<String>>,
    done: mpsc::UnboundedSender<Done>,
    /// Runtimes of crashed hosts, dropped when no runtime is running.
    graveyard: RefCell<Vec<HostRt>>,
}

thread_local! {
    static WORLD: RefCell<Option<Rc<World>>> = const { RefCell::new(None) };
    /// The host whose runtime is running, innermost last.
    static CURRENT_HOST: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
}

/// SplitMix64: spreads the seed over the stacks' secrets.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl World {
    fn note(&self, what: String) {
        self.note_at(self.now(), what);
    }

    /// Simulated time since the start.
    fn now(&self) -> Duration {
        self.now.get()
    }

    /// Logs `what` as having happened at `at`.
    fn note_at(&self, at: Duration, what: String) {
        tracing::debug!(?at, "sim: {what}");
        self.log
            .borrow_mut()
            .push(format!("{:>12.6} {what}", at.as_secs_f64()));
    }

    fn find(&self, name: &str) -> io::Result<usize> {
        let name = name.to_ascii_lowercase();
        let by_addr = name.parse::<Ipv4Addr>().ok();
        self.hosts
            .iter()
            .position(|h| h.name == name || Some(h.addr) == by_addr)
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("no simulated host {name:?}"),
                )
            })
    }

    /// `host`'s connections by state; none while it is down.
    fn connections(&self, host: usize) -> io::Result<StateCounts> {
        let st = self.hosts[host].state.borrow();
        Ok(st
            .stack
            .as_ref()
            .map(|s| s.stats().states)
            .unwrap_or_default())
    }

    /// One [`TICK`]: every host's clock (and the network's) moves on to the
    /// tick's end; then what falls due then runs.
    fn tick(&self) {
        let end = self.now() + TICK;
        // Hosts run what is left of this instant, then their clocks move on.
        // A host booted meanwhile (a bounce) starts at this instant, and is
        // brought along too.
        for _ in 0..=self.hosts.len() {
            let mut behind = false;
            for i in 0..self.hosts.len() {
                behind |= self.run_host(i, Some(end));
            }
            if !behind {
                break;
            }
        }
        self.now.set(end);
        self.net.advance_to(end);
        self.rounds();
    }

    /// Runs every host at the present instant, in rounds: a packet one host
    /// sends over a zero-delay path reaches a host whose round has passed in
    /// the next round, at the same instant. Rounds go on while packets move,
    /// up to [`MAX_ROUNDS`]; what is still left runs before the clocks next
    /// move on.
    fn rounds(&self) {
        for _ in 0..MAX_ROUNDS {
            let before = (fabric::lock(&self.fabric).sent(), self.boots());
            for i in 0..self.hosts.len() {
                self.run_host(i, None);
            }
            if (fabric::lock(&self.fabric).sent(), self.boots()) == before {
                break;
            }
        }
    }

    /// The sum of every host's boot count: changes when any host boots.
    fn boots(&self) -> u64 {
        self.hosts.iter().map(|h| h.state.borrow().generation).sum()
    }

    /// Runs `host`'s runtime (see [`HostRt::run`]) if it is up and behind
    /// `until`; returns whether it ran.
    fn run_host(&self, host: usize, until: Option<Duration>) -> bool {
        let (mut hrt, generation) = {
            let mut st = self.hosts[host].state.borrow_mut();
            if st
                .rt
                .as_ref()
                .is_none_or(|r| until.is_some_and(|t| r.at >= t))
            {
                return false;
            }
            let Some(hrt) = st.rt.take() else {
                return false;
            };
            st.stepping = true;
            (hrt, st.generation)
        };
        hrt.run(host, until);
        {
            let mut st = self.hosts[host].state.borrow_mut();
            st.stepping = false;
            if st.generation == generation {
                st.rt = Some(hrt);
            } else {
                // It crashed during its own step.
                self.graveyard.borrow_mut().push(hrt);
            }
        }
        self.bury();
        true
    }

    /// Drops the runtimes of crashed hosts, unless a runtime is running
    /// (a runtime cannot be dropped inside another).
    fn bury(&self) {
        if CURRENT_HOST.with(|c| c.borrow().is_empty()) {
            let dead = std::mem::take(&mut *self.graveyard.borrow_mut());
            drop(dead);
        }
    }

    /// Takes stock of the finished futures after a tick; returns the run's
    /// outcome once it is over.
    fn take_stock(
        &self,
        done_rx: &mut mpsc::UnboundedReceiver<Done>,
        clients: &mut usize,
        deadline: Duration,
    ) -> Option<Result> {
        // `self` holds a sender, so the channel stays open.
        while let Ok(done) = done_rx.try_recv() {
            let host = &self.hosts[done.host];
            if host.state.borrow().generation != done.generation {
                continue;
            }
            match done.result {
                Ok(()) if host.factory.is_none() => {
                    *clients -= 1;
                    self.note_at(done.at, format!("client {} finished", host.name));
                }
                Ok(()) => self.note_at(done.at, format!("host {} software returned", host.name)),
                Err(e) => {
                    self.note_at(done.at, format!("{} failed: {e}", host.name));
                    return Some(Err(format!("{} failed: {e}", host.name).into()));
                }
            }
        }
        if *clients == 0 {
            return Some(Ok(()));
        }
        if self.now() >= deadline {
            let msg = format!("the simulation ran past its duration limit of {deadline:?}");
            return Some(Err(io::Error::new(io::ErrorKind::TimedOut, msg).into()));
        }
        None
    }

    /// Boots `host` with a new stack and runs its factory's software on it.
    fn boot(&self, host: usize) {
        if let Some(factory) = self.hosts[host].factory.clone() {
            self.boot_with(host, factory());
        }
    }

    /// Boots `host` on a new runtime of its own, with a new stack, running
    /// `fut`. The runtime's first step runs it.
    fn boot_with(&self, host: usize, fut: BoxFuture) {
        let rec = &self.hosts[host];
        let generation = {
            let mut st = rec.state.borrow_mut();
            st.generation += 1;
            st.generation
        };
        let caps = {
            let mut f = fabric::lock(&self.fabric);
            f.set_live(host, Some(generation));
            f.capabilities(host)
        };
        let idle = Arc::new(Idle::default());
        let hook = idle.clone();
        let rt = match tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .on_thread_park(move || hook.parking())
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                let _ = self.done.send(Done {
                    host,
                    generation,
                    at: self.now(),
                    result: Err(format!("cannot make a runtime: {e}").into()),
                });
                return;
            }
        };
        let device = SimDevice {
            fabric: self.fabric.clone(),
            host,
            generation,
            caps,
        };
        let secret = [
            mix(self.seed ^ mix(host as u64)),
            mix(self.seed.rotate_left(17) ^ mix(generation)),
        ];
        let mut builder = Stack::builder(device, rec.addr, 24)
            .config(self.config.clone())
            .secret(secret);
        for h in &self.hosts {
            builder = builder.host(&h.name, h.addr);
        }
        let (stack, epoch) = {
            // The stack's driver task and clock are the new runtime's.
            let _rt = rt.enter();
            (builder.build(), tokio::time::Instant::now())
        };
        self.note(format!("boot {} at {}", rec.name, rec.addr));
        let report = Report {
            done: self.done.clone(),
            host,
            generation,
            sent: false,
        };
        let local = tokio::task::LocalSet::new();
        local.spawn_local(async move {
            let mut report = report;
            let result = fut.await;
            report.send(result);
        });
        let down = Arc::new(Notify::new());
        let mut st = rec.state.borrow_mut();
        st.stack = Some(stack.clone());
        st.down = Some(down.clone());
        st.rt = Some(HostRt {
            local: Some(local),
            rt: Some(rt),
            stack,
            epoch,
            booted: self.now(),
            at: self.now(),
            down,
            idle,
        });
    }

    /// Powers `host` off: it goes silent at once and its runtime (its tasks,
    /// its stack) is dropped as soon as no runtime is running.
    fn power_off(&self, host: usize) {
        fabric::lock(&self.fabric).set_live(host, None);
        let (rt, stack, down) = {
            let mut st = self.hosts[host].state.borrow_mut();
            // What the old incarnation's futures still report is stale from now on.
            st.generation += 1;
            (st.rt.take(), st.stack.take(), st.down.take())
        };
        if let Some(down) = down {
            // If it is the host being run, its step ends.
            down.notify_one();
        }
        drop(stack);
        if let Some(rt) = rt {
            self.graveyard.borrow_mut().push(rt);
        }
        self.bury();
    }
}

fn world() -> io::Result<Rc<World>> {
    WORLD.with(|w| w.borrow().clone()).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            "no simulation is running on this thread (call this from a host or client of Sim::run)",
        )
    })
}

fn current_host() -> Option<usize> {
    CURRENT_HOST.with(|c| c.borrow().last().copied())
}

/// Spawns `future` as a task of the current host: the same as
/// `tokio::task::spawn_local` there (so `Send` is not needed). Every host
/// runs on its own runtime, so `tokio::spawn` and `spawn_local` inside a
/// host keep its stack too; this is for code that wants to say so.
///
/// # Panics
///
/// Outside a host's or client's task during a run, as `tokio::spawn`
/// panics outside a runtime.
pub fn spawn<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    if current_host().is_none() {
        panic!("synack::sim::spawn called outside a simulated host");
    }
    tokio::task::spawn_local(future)
}

/// The name of the host whose task is running, if any.
pub fn hostname() -> Option<String> {
    let world = world().ok()?;
    current_host().map(|h| world.hosts[h].name.clone())
}

/// Simulated time since the run began (zero outside a run).
pub fn elapsed() -> Duration {
    world().map(|w| w.now()).unwrap_or_default()
}

/// The connections of `host` by state, now (listeners not counted; a host
/// that is down has none). `host` is a name or an address.
///
/// Callable from any host or client during a run, and from the test between
/// [`Sim::step`]s (as is [`Sim::connections`]). turmoil's
/// `established_tcp_stream_count` is [`established`].
///
/// ```
/// use synack::net::{TcpListener, TcpStream};
/// use synack::sim::{self, Builder};
///
/// let mut sim = Builder::new().build();
/// sim.client("client", async {
///     let listener = TcpListener::bind("0.0.0.0:80").await?;
///     let s = TcpStream::connect("client:80").await?;
///     let (_t, _) = listener.accept().await?;
///     let counts = sim::connections("client")?;
///     assert_eq!(counts.established, 2); // both ends, over loopback
///     drop(s);
///     Ok(())
/// });
/// sim.run().unwrap();
/// ```
pub fn connections(host: &str) -> io::Result<StateCounts> {
    let world = world()?;
    world.connections(world.find(host)?)
}

/// How many of `host`'s connections are ESTABLISHED (see [`connections`]).
pub fn established(host: &str) -> io::Result<usize> {
    connections(host).map(|c| c.established)
}

fn pair(a: &str, b: &str, what: &str, f: impl FnOnce(&mut Fabric, usize, usize)) -> io::Result<()> {
    let world = world()?;
    let (x, y) = (world.find(a)?, world.find(b)?);
    f(&mut fabric::lock(&world.fabric), x, y);
    world.note(format!(
        "{what} {} {}",
        world.hosts[x].name, world.hosts[y].name
    ));
    Ok(())
}

/// Drops every packet between `a` and `b`, both ways, including those already
/// on the wire, until [`repair`]. Hosts are named by name or address.
///
/// The cut is silent, as a pulled cable and as turmoil's `partition`: the
/// senders hear nothing and learn of it only by timeouts (a connect gives up
/// after its SYN retries). For a partition the senders are told of, see
/// [`partition_unreachable`].
pub fn partition(a: &str, b: &str) -> io::Result<()> {
    pair(a, b, "partition", |f, x, y| {
        f.set_cut(x, y, Some(Cut::Silent));
        f.set_cut(y, x, Some(Cut::Silent));
    })
}

/// Like [`partition`], but the router answers every packet the cut drops
/// with ICMP destination unreachable, code 1 (host unreachable), from its
/// address (`.254` of the hosts' /24), as a router that lost its route to
/// the other side does. turmoil has no such mode.
///
/// The answer comes at once, down the sender's downlink (as from the first
/// router on the path); packets already on the wire when the cut is made
/// are still lost silently. What a stack does with the message is its own
/// affair: RFC 1122 §4.2.3.9 makes it a soft error for an established
/// connection, while synack, as Linux, fails a connect on the first answer
/// to its SYN (RFC 5461).
///
/// ```
/// use std::io;
/// use std::time::Duration;
/// use synack::net::{TcpListener, TcpStream};
/// use synack::sim::{self, Builder};
///
/// let mut sim = Builder::new().build();
/// sim.host("server", || async {
///     let _listener = TcpListener::bind("0.0.0.0:80").await?;
///     std::future::pending().await
/// });
/// sim.client("client", async {
///     sim::partition_unreachable("client", "server")?;
///     let err = TcpStream::connect("server:80").await.unwrap_err();
///     assert_eq!(err.kind(), io::ErrorKind::HostUnreachable);
///     assert!(sim::elapsed() < Duration::from_secs(1));
///     Ok(())
/// });
/// sim.run().unwrap();
/// ```
pub fn partition_unreachable(a: &str, b: &str) -> io::Result<()> {
    pair(a, b, "partition_unreachable", |f, x, y| {
        f.set_cut(x, y, Some(Cut::Unreachable));
        f.set_cut(y, x, Some(Cut::Unreachable));
    })
}

/// Drops every packet from `from` to `to` (but not back), silently, until
/// [`repair_oneway`] or [`repair`].
pub fn partition_oneway(from: &str, to: &str) -> io::Result<()> {
    pair(from, to, "partition_oneway", |f, x, y| {
        f.set_cut(x, y, Some(Cut::Silent))
    })
}

/// Ends a partition between `a` and `b`, both ways (silent or not).
pub fn repair(a: &str, b: &str) -> io::Result<()> {
    pair(a, b, "repair", |f, x, y| {
        f.set_cut(x, y, None);
        f.set_cut(y, x, None);
    })
}

/// Ends a partition from `from` to `to`.
pub fn repair_oneway(from: &str, to: &str) -> io::Result<()> {
    pair(from, to, "repair_oneway", |f, x, y| f.set_cut(x, y, None))
}

/// Holds the packets `a` and `b` send each other, both ways, until
/// [`release`]: those sent from now on and those already on their way
/// (queued in a link or on the wire), as turmoil's `hold` holds messages in
/// flight. Nothing is lost, and the order is kept. A packet already
/// delivered to a host, waiting for its stack to read it, is not recalled.
pub fn hold(a: &str, b: &str) -> io::Result<()> {
    pair(a, b, "hold", |f, x, y| {
        f.hold(x, y);
        f.hold(y, x);
    })
}

/// Stops holding packets between `a` and `b` and sends the held ones on, in
/// order, from the router: each crosses its receiver's downlink from now.
pub fn release(a: &str, b: &str) -> io::Result<()> {
    pair(a, b, "release", |f, x, y| {
        f.release(x, y);
        f.release(y, x);
    })
}

/// Gives `host`'s uplink and downlink the settings `link` from now on.
///
/// The network is a star: each host reaches a router over its own pair of
/// links, so this shapes all of `host`'s traffic. A path between two hosts
/// crosses the sender's uplink and the receiver's downlink.
pub fn set_link(host: &str, link: LinkConfig) -> io::Result<()> {
    let world = world()?;
    let h = world.find(host)?;
    let (up, down) = fabric::lock(&world.fabric).links(h);
    up.set_config(link);
    down.set_config(link);
    world.note(format!("set_link {}", world.hosts[h].name));
    Ok(())
}

/// The uplink (host → router) and downlink (router → host) of `host`, to read
/// their counters or change one direction.
pub fn links(host: &str) -> io::Result<(Link, Link)> {
    let world = world()?;
    let h = world.find(host)?;
    Ok(fabric::lock(&world.fabric).links(h))
}

/// Powers `host` off: its runtime goes, with every task of the host however
/// spawned, and its stack is dropped without sending anything, so its
/// connections vanish; packets sent to it are lost until [`bounce`].
/// Crashing the calling host itself ends its step: the caller runs on to its
/// next await, and nothing it sends leaves the host. Clients cannot be
/// crashed (`InvalidInput`).
pub fn crash(host: &str) -> io::Result<()> {
    let world = world()?;
    let h = world.find(host)?;
    if world.hosts[h].factory.is_none() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{host:?} is a client; only hosts can crash"),
        ));
    }
    world.power_off(h);
    world.note(format!("crash {}", world.hosts[h].name));
    Ok(())
}

/// Restarts `host`: crashes it if it is up, then boots it on a new runtime
/// with a new stack (which answers segments of the old connections with
/// resets) and runs its factory again.
pub fn bounce(host: &str) -> io::Result<()> {
    crash(host)?;
    let world = world()?;
    world.boot(world.find(host)?);
    Ok(())
}
