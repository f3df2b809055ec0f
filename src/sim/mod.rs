//! A simulation harness in the manner of [turmoil](https://docs.rs/turmoil),
//! with real TCP underneath: every host runs its own synack [`Stack`] on a
//! [`synack_sim`] network, under paused tokio time.
//!
//! Declare servers with [`Sim::host`] (a factory, so the host can be crashed
//! and restarted) and test drivers with [`Sim::client`], then [`Sim::run`].
//! Hosts are numbered from `192.0.2.1` in order of declaration, and every
//! host's stack knows every name, so `TcpStream::connect("server:80")` works.
//! Inside a host's or client's future, [`synack::net`](crate::net) calls need
//! no stack argument: the host's stack is current whenever its futures are
//! polled.
//!
//! # Spawning inside a host
//!
//! A future given to `tokio::spawn` does not carry the host along: polled on
//! its own, it has no current stack and `synack::net` calls fail with
//! `NotFound`. Spawn with [`synack::sim::spawn`](spawn) instead; it scopes the
//! task to the current host, and [`crash`] ends it with the host.
//!
//! # Faults
//!
//! From any client or host, during a run: [`partition`], [`partition_oneway`],
//! [`repair`], [`repair_oneway`], [`hold`] and [`release`] act on pairs of
//! hosts; [`set_link`] changes a host's links; [`crash`] powers a host off (its
//! stack is dropped without a word on the wire, so its peers learn of it only
//! when they next send) and [`bounce`] boots it again with a new stack, which
//! answers the old connections' segments with resets.
//!
//! # Determinism
//!
//! [`Sim::run`] makes its own current-thread tokio runtime with paused time;
//! every random choice (links, initial sequence numbers) follows from the seed,
//! so a run with the same seed and the same software is the same run: the
//! same [`log`](Sim::log) and the same packets ([`Sim::pcap`]).
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
//!         synack::sim::spawn(async move {
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

use std::cell::RefCell;
use std::error::Error;
use std::fmt;
use std::future::Future;
use std::io;
use std::net::Ipv4Addr;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use synack_engine::Config;
use synack_sim::{HostConfig, Network};
use tokio::sync::mpsc;
use tokio::task::{AbortHandle, JoinHandle};

use crate::stack::Stack;
use fabric::{Fabric, SharedFabric, SimDevice};

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
    /// all in its /24 (and all hosts' stacks are on that /24).
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

    /// Runs the simulation on a new current-thread tokio runtime with paused
    /// time, until every client has finished.
    ///
    /// Returns the first error: a client's or a host's (with its name), or
    /// `TimedOut` when simulated time passes the [duration
    /// limit](Builder::duration). Clients run once: a second run fails with
    /// `InvalidInput`, as does a run with two hosts of one name or more hosts
    /// than fit in the /24 of the [first address](Builder::first_addr).
    ///
    /// # Panics
    ///
    /// When called inside another tokio runtime.
    pub fn run(&mut self) -> Result {
        self.check()?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()?;
        let local = tokio::task::LocalSet::new();
        let (result, log) = local.block_on(&rt, self.run_inner());
        self.log = log;
        result
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
        // Every stack is on one /24 with the first address.
        let first = u32::from(self.builder.first_addr);
        let last = u64::from(first) + (self.decls.len() as u64).saturating_sub(1);
        if last >> 8 != u64::from(first >> 8) || last & 0xff == 0xff {
            return Err(invalid(format!(
                "{} hosts do not fit in the /24 from {}",
                self.decls.len(),
                self.builder.first_addr
            )));
        }
        Ok(())
    }

    async fn run_inner(&mut self) -> (Result, Vec<String>) {
        let b = &self.builder;
        let net = Network::new(b.seed);
        let first = u32::from(b.first_addr);
        let mut ends = Vec::new();
        self.captures.clear();
        for (i, d) in self.decls.iter().enumerate() {
            let addr = Ipv4Addr::from(first + i as u32);
            let config = HostConfig::new(addr).uplink(b.link).downlink(b.link);
            let end = match net.add_host(config) {
                Ok(end) => end,
                Err(e) => return (Err(e.into()), Vec::new()),
            };
            if b.capture {
                let buf = CaptureBuffer::new();
                let point = synack_sim::CapturePoint::Ingress;
                if let Err(e) = end.uplink().capture(point, buf.clone()) {
                    return (Err(e.into()), Vec::new());
                }
                self.captures.push((d.name.clone(), buf));
            }
            ends.push(end);
        }
        let addrs: Vec<Ipv4Addr> = ends.iter().map(|e| e.config().addr).collect();
        let (done_tx, mut done_rx) = mpsc::unbounded_channel();
        let world = Rc::new(World {
            fabric: Arc::new(Mutex::new(Fabric::new(ends))),
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
            start: tokio::time::Instant::now(),
            seed: b.seed,
            config: b.config.clone(),
            log: RefCell::new(Vec::new()),
            done: done_tx,
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

        let deadline = world.start + b.duration;
        let mut result = Ok(());
        while clients > 0 {
            let done = tokio::select! {
                d = done_rx.recv() => d,
                () = tokio::time::sleep_until(deadline) => {
                    let msg = format!("the simulation ran past its duration limit of {:?}", b.duration);
                    result = Err(io::Error::new(io::ErrorKind::TimedOut, msg).into());
                    break;
                }
            };
            // `world` holds a sender, so the channel stays open.
            let Some(done) = done else { break };
            let host = &world.hosts[done.host];
            if host.state.borrow().generation != done.generation {
                continue;
            }
            match done.result {
                Ok(()) if host.factory.is_none() => {
                    clients -= 1;
                    world.note(format!("client {} finished", host.name));
                }
                Ok(()) => world.note(format!("host {} software returned", host.name)),
                Err(e) => {
                    world.note(format!("{} failed: {e}", host.name));
                    result = Err(format!("{} failed: {e}", host.name).into());
                    break;
                }
            }
        }
        world.note(match &result {
            Ok(()) => "run finished".to_string(),
            Err(e) => format!("run ended: {e}"),
        });
        // Power everything off before the runtime goes, so no stack outlives it.
        for i in 0..world.hosts.len() {
            world.power_off(i);
        }
        WORLD.with(|w| w.borrow_mut().take());
        let log = world.log.take();
        (result, log)
    }
}

/// A finished host or client future.
struct Done {
    host: usize,
    generation: u64,
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
        let _ = self.done.send(Done {
            host: self.host,
            generation: self.generation,
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

#[derive(Default)]
struct Incarnation {
    /// Counts boots; the current incarnation's number.
    generation: u64,
    stack: Option<Stack>,
    tasks: Vec<AbortHandle>,
}

struct HostRec {
    name: String,
    addr: Ipv4Addr,
    factory: Option<Factory>,
    state: RefCell<Incarnation>,
}

/// The running simulation, current on the runtime's thread during [`Sim::run`].
struct World {
    fabric: SharedFabric,
    hosts: Vec<HostRec>,
    start: tokio::time::Instant,
    seed: u64,
    config: Config,
    log: RefCell<Vec<String>>,
    done: mpsc::UnboundedSender<Done>,
}

thread_local! {
    static WORLD: RefCell<Option<Rc<World>>> = const { RefCell::new(None) };
    /// The host whose future is being polled, innermost last.
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
        let t = self.start.elapsed();
        tracing::debug!(at = ?t, "sim: {what}");
        self.log
            .borrow_mut()
            .push(format!("{:>12.6} {what}", t.as_secs_f64()));
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

    /// Boots `host` with a new stack and runs its factory's software on it.
    fn boot(&self, host: usize) {
        if let Some(factory) = self.hosts[host].factory.clone() {
            self.boot_with(host, factory());
        }
    }

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
        let stack = builder.build();
        rec.state.borrow_mut().stack = Some(stack.clone());
        self.note(format!("boot {} at {}", rec.name, rec.addr));
        let report = Report {
            done: self.done.clone(),
            host,
            generation,
            sent: false,
        };
        let task = tokio::task::spawn_local(HostScoped {
            host,
            stack,
            fut: async move {
                let mut report = report;
                let result = fut.await;
                report.send(result);
            },
        });
        rec.state.borrow_mut().tasks.push(task.abort_handle());
    }

    /// Powers `host` off: its tasks end and its stack goes, without a packet.
    fn power_off(&self, host: usize) {
        fabric::lock(&self.fabric).set_live(host, None);
        let (tasks, stack) = {
            let mut st = self.hosts[host].state.borrow_mut();
            // What the old incarnation's futures still report is stale from now on.
            st.generation += 1;
            (std::mem::take(&mut st.tasks), st.stack.take())
        };
        for t in tasks {
            t.abort();
        }
        drop(stack);
    }
}

/// A future polled with its host's stack current; see [`spawn`].
#[pin_project::pin_project]
struct HostScoped<F> {
    host: usize,
    stack: Stack,
    #[pin]
    fut: F,
}

impl<F: Future> Future for HostScoped<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let _stack = this.stack.enter();
        CURRENT_HOST.with(|c| c.borrow_mut().push(*this.host));
        let out = this.fut.poll(cx);
        CURRENT_HOST.with(|c| c.borrow_mut().pop());
        out
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

/// Spawns `future` as a task of the current host, like `tokio::spawn` (but
/// `Send` is not needed): the host's stack is current whenever the task is
/// polled, and the task ends when the host crashes.
///
/// # Panics
///
/// Outside a host's or client's future during [`Sim::run`], as `tokio::spawn`
/// panics outside a runtime. On a host that has just crashed itself, the task
/// is spawned already aborted.
pub fn spawn<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    let (world, host) = match (world(), current_host()) {
        (Ok(w), Some(h)) => (w, h),
        _ => panic!("synack::sim::spawn called outside a simulated host"),
    };
    let rec = &world.hosts[host];
    let mut st = rec.state.borrow_mut();
    let Some(stack) = st.stack.clone() else {
        // The host crashed under the caller (it crashed itself): the task dies with it.
        let task = tokio::task::spawn_local(future);
        task.abort();
        return task;
    };
    let task = tokio::task::spawn_local(HostScoped {
        host,
        stack,
        fut: future,
    });
    st.tasks.retain(|t| !t.is_finished());
    st.tasks.push(task.abort_handle());
    task
}

/// The name of the host whose future is running, if any.
pub fn hostname() -> Option<String> {
    let world = world().ok()?;
    current_host().map(|h| world.hosts[h].name.clone())
}

/// Simulated time since the run began (zero outside a run).
pub fn elapsed() -> Duration {
    world().map(|w| w.start.elapsed()).unwrap_or_default()
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
pub fn partition(a: &str, b: &str) -> io::Result<()> {
    pair(a, b, "partition", |f, x, y| {
        f.set_cut(x, y, true);
        f.set_cut(y, x, true);
    })
}

/// Drops every packet from `from` to `to` (but not back) until [`repair_oneway`] or [`repair`].
pub fn partition_oneway(from: &str, to: &str) -> io::Result<()> {
    pair(from, to, "partition_oneway", |f, x, y| {
        f.set_cut(x, y, true)
    })
}

/// Ends a partition between `a` and `b`, both ways.
pub fn repair(a: &str, b: &str) -> io::Result<()> {
    pair(a, b, "repair", |f, x, y| {
        f.set_cut(x, y, false);
        f.set_cut(y, x, false);
    })
}

/// Ends a partition from `from` to `to`.
pub fn repair_oneway(from: &str, to: &str) -> io::Result<()> {
    pair(from, to, "repair_oneway", |f, x, y| f.set_cut(x, y, false))
}

/// Holds the packets `a` and `b` send each other from now on, until [`release`].
pub fn hold(a: &str, b: &str) -> io::Result<()> {
    pair(a, b, "hold", |f, x, y| {
        f.hold(x, y);
        f.hold(y, x);
    })
}

/// Stops holding packets between `a` and `b` and sends the held ones, in order.
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

/// Powers `host` off: its tasks end and its stack is dropped without sending
/// anything, so its connections vanish; packets sent to it are lost until
/// [`bounce`]. Crashing the calling host itself ends the caller at its next
/// await. Clients cannot be crashed (`InvalidInput`).
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

/// Restarts `host`: crashes it if it is up, then boots it with a new stack
/// (which answers segments of the old connections with resets) and runs its
/// factory again.
pub fn bounce(host: &str) -> io::Result<()> {
    crash(host)?;
    let world = world()?;
    world.boot(world.find(host)?);
    Ok(())
}
