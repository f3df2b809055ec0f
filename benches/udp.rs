//! UDP datagrams per second: the kernel's UDP through `tokio::net::UdpSocket`
//! over 127.0.0.1, synack between two stacks over a `MemoryLink` (default
//! `MemoryLinkConfig`: MTU 1500, 1024 packets per direction, checksum
//! offload; 192.0.2.1/24 and 192.0.2.2/24), and synack within one stack over
//! its loopback interface (127.0.0.1), all in the same run, with 64-byte and
//! 1400-byte payloads (1400 fits MTU 1500 unfragmented).
//!
//! ```sh
//! cargo bench --bench udp              # 5 rounds of 1 s per case after 0.2 s warm-up
//! cargo bench --bench udp -- --quick   # 3 rounds of 0.15 s, a smoke test (or SYNACK_BENCH_QUICK=1)
//! ```
//!
//! Two measurements, each on tokio current-thread and multi-thread with 2
//! workers:
//!
//! - Ping-pong: one datagram outstanding. An echo task answers each datagram
//!   with `send_to` back to its sender; the client `send_to`s one, awaits the
//!   reply with `recv_from`, and sends the next. The figure is round trips
//!   per second (two datagrams each). A lost datagram would stop the client
//!   until the end of the round: the rounds where the count stopped moving
//!   for more than 200 ms are counted as stalls.
//! - Flood: one way, measured at the receiver. The sender loops on `send_to`
//!   as fast as it completes (a full send buffer makes it wait; nothing else
//!   paces it); the receiver loops on `recv_from`. The figure is datagrams
//!   *received* per second in the measured time; beside it the sender's rate
//!   and the loss, (sent − received) ÷ sent over the whole round, after the
//!   sender stopped and the receiver drained what was queued. The receive
//!   queues are bounded, so what the receiver cannot keep up with is dropped
//!   and counted: synack's `Stats::udp_rx_dropped` (both stacks added), and
//!   for the kernel `RcvbufErrors` of `/proc/net/snmp` (system-wide: other
//!   UDP traffic on the machine would show there too). Both queues are
//!   212 992 bytes (synack's `Config::udp_recv_buffer`, the kernel's
//!   `net.core.rmem_default`, printed), but they count differently: synack
//!   charges each datagram its length + 64 bytes, the kernel its buffer's
//!   truesize (about 1 KiB for 64 bytes, 2.3 KiB for 1400), so synack's
//!   queue holds more datagrams.
//!
//! Cooperative scheduling: synack's sockets spend tokio's task budget as
//! tokio's own do (one unit per call that completes), so a flood sender over
//! synack's loopback, whose `send_to` never has to wait (the datagram is
//! delivered inside the call), still yields to its receiver on the
//! current-thread runtime.
//!
//! Every round builds fresh sockets (and, for synack, fresh stacks and link).
//! The cases are interleaved: each of the N rounds creates a runtime of each
//! flavour and runs every case once on it, the order of the three paths
//! rotated each round; the tables give the median over the rounds (and the
//! range), so a burst of noise from the rest of this 2-core machine lands in
//! one round of several cases rather than in all rounds of one. The
//! synack/kernel column compares medians from the same run. Any I/O error
//! panics; a benchmark prints, it does not assert: no target is set for UDP
//! yet, and the bench prints that beside the figures.

mod common;

use std::future::Future;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use synack::Stack;
use synack::device::{MemoryLink, MemoryLinkConfig};
use tokio::task::JoinHandle;

use common::Flavor;

const SERVER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const CLIENT: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
const SIZES: [usize; 2] = [64, 1400];
/// A ping-pong round whose count did not move for this long has stalled.
const STALL: Duration = Duration::from_millis(200);
/// The flood's receiver has drained once its count is still for this long.
const DRAIN_QUIET: Duration = Duration::from_millis(20);
const DRAIN_MAX: Duration = Duration::from_secs(2);
/// Targets for UDP, printed beside the figures: none set yet.
const TARGETS: &[&str] = &[];

#[derive(Clone, Copy, PartialEq, Debug)]
enum Path {
    Kernel,
    TwoStacks,
    Loopback,
}

const PATHS: [Path; 3] = [Path::Kernel, Path::TwoStacks, Path::Loopback];

fn label(p: Path) -> &'static str {
    match p {
        Path::Kernel => "kernel UDP, 127.0.0.1",
        Path::TwoStacks => "synack ↔ synack, MemoryLink",
        Path::Loopback => "synack, one stack, 127.0.0.1",
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    PingPong,
    Flood,
}

struct Timing {
    warmup: Duration,
    measure: Duration,
    rounds: usize,
}

/// One round of one case.
#[derive(Clone, Copy, Default)]
struct Sample {
    /// Ping-pong: round trips per second. Flood: datagrams received per second.
    rate: f64,
    /// Flood: datagrams sent per second in the measured time.
    sent_rate: f64,
    /// Flood, the whole round: datagrams sent and received, and the
    /// receive-queue drops counted by the stack (kernel: system-wide).
    sent: u64,
    received: u64,
    drops: u64,
    /// Ping-pong: whether the round stalled.
    stalled: bool,
}

impl Sample {
    fn loss_pct(&self) -> f64 {
        if self.sent == 0 {
            return 0.0;
        }
        self.sent.saturating_sub(self.received) as f64 * 100.0 / self.sent as f64
    }
}

struct Case {
    mode: Mode,
    size: usize,
    flavor: Flavor,
    path: Path,
    samples: Vec<Sample>,
}

/// The two socket types, for the same loops.
trait Dgram: Send + Sync + 'static {
    fn send_to(&self, buf: &[u8], to: SocketAddr)
    -> impl Future<Output = io::Result<usize>> + Send;
    fn recv_from(
        &self,
        buf: &mut [u8],
    ) -> impl Future<Output = io::Result<(usize, SocketAddr)>> + Send;
    fn local_addr(&self) -> io::Result<SocketAddr>;
}

impl Dgram for tokio::net::UdpSocket {
    fn send_to(
        &self,
        buf: &[u8],
        to: SocketAddr,
    ) -> impl Future<Output = io::Result<usize>> + Send {
        tokio::net::UdpSocket::send_to(self, buf, to)
    }
    fn recv_from(
        &self,
        buf: &mut [u8],
    ) -> impl Future<Output = io::Result<(usize, SocketAddr)>> + Send {
        tokio::net::UdpSocket::recv_from(self, buf)
    }
    fn local_addr(&self) -> io::Result<SocketAddr> {
        tokio::net::UdpSocket::local_addr(self)
    }
}

impl Dgram for synack::net::UdpSocket {
    fn send_to(
        &self,
        buf: &[u8],
        to: SocketAddr,
    ) -> impl Future<Output = io::Result<usize>> + Send {
        synack::net::UdpSocket::send_to(self, buf, to)
    }
    fn recv_from(
        &self,
        buf: &mut [u8],
    ) -> impl Future<Output = io::Result<(usize, SocketAddr)>> + Send {
        synack::net::UdpSocket::recv_from(self, buf)
    }
    fn local_addr(&self) -> io::Result<SocketAddr> {
        synack::net::UdpSocket::local_addr(self)
    }
}

/// A counter on its own cache line: the sender and the receiver each write
/// one, on different workers.
#[repr(align(64))]
#[derive(Default)]
struct Counter(AtomicU64);

impl Counter {
    fn add(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // `cargo bench` passes `--bench`; other arguments are ignored too.
    let quick = args.iter().any(|a| a == "--quick")
        || std::env::var_os("SYNACK_BENCH_QUICK").is_some_and(|v| !v.is_empty() && v != "0");
    let timing = if quick {
        Timing {
            warmup: Duration::from_millis(50),
            measure: Duration::from_millis(150),
            rounds: 3,
        }
    } else {
        Timing {
            warmup: Duration::from_millis(200),
            measure: Duration::from_secs(1),
            rounds: 5,
        }
    };
    eprintln!(
        "udp: ping-pong and flood, {} rounds of {:.2} s per case after {:.2} s warm-up{}",
        timing.rounds,
        timing.measure.as_secs_f64(),
        timing.warmup.as_secs_f64(),
        if quick { " (quick)" } else { "" },
    );

    let mut cases = Vec::new();
    for mode in [Mode::PingPong, Mode::Flood] {
        for size in SIZES {
            for flavor in [Flavor::Current, Flavor::Multi] {
                for path in PATHS {
                    cases.push(Case {
                        mode,
                        size,
                        flavor,
                        path,
                        samples: Vec::new(),
                    });
                }
            }
        }
    }
    for round in 0..timing.rounds {
        for flavor in [Flavor::Current, Flavor::Multi] {
            let rt = flavor.runtime();
            for mode in [Mode::PingPong, Mode::Flood] {
                for size in SIZES {
                    for k in 0..PATHS.len() {
                        let path = PATHS[(k + round) % PATHS.len()];
                        let s = rt.block_on(run_case(path, mode, size, &timing));
                        eprintln!(
                            "  round {round} {:<9} {:>4} B {:<24} {:<30} {:>10.0}/s{}",
                            match mode {
                                Mode::PingPong => "ping-pong",
                                Mode::Flood => "flood",
                            },
                            size,
                            flavor.name(),
                            label(path),
                            s.rate,
                            match mode {
                                Mode::PingPong if s.stalled => "  STALLED".to_string(),
                                Mode::PingPong => String::new(),
                                Mode::Flood => format!(
                                    "  (sent {:.0}/s; loss {:.1} %, {} queue drops)",
                                    s.sent_rate,
                                    s.loss_pct(),
                                    s.drops
                                ),
                            }
                        );
                        let c = cases
                            .iter_mut()
                            .find(|c| {
                                c.mode == mode
                                    && c.size == size
                                    && c.flavor == flavor
                                    && c.path == path
                            })
                            .expect("case");
                        c.samples.push(s);
                    }
                }
            }
        }
    }
    print_tables(&cases, &timing);
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn med(c: &Case, f: impl Fn(&Sample) -> f64) -> f64 {
    median(c.samples.iter().map(f).collect())
}

fn range(c: &Case) -> String {
    let lo = c
        .samples
        .iter()
        .map(|s| s.rate)
        .fold(f64::INFINITY, f64::min);
    let hi = c.samples.iter().map(|s| s.rate).fold(0.0, f64::max);
    format!("{} – {}", thousands(lo), thousands(hi))
}

/// 1234567.8 → "1 234 568", as the README's tables.
fn thousands(x: f64) -> String {
    let s = format!("{:.0}", x.max(0.0));
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(' ');
        }
        out.push(ch);
    }
    out
}

fn print_tables(cases: &[Case], timing: &Timing) {
    let kernel = |c: &Case| {
        cases
            .iter()
            .find(|k| {
                k.path == Path::Kernel
                    && k.mode == c.mode
                    && k.size == c.size
                    && k.flavor == c.flavor
            })
            .map(|k| med(k, |s| s.rate))
            .filter(|&v| v > 0.0)
    };
    let ratio = |c: &Case| match (c.path, kernel(c)) {
        (Path::Kernel, _) | (_, None) => "—".to_string(),
        (_, Some(k)) => format!("{:.2}", med(c, |s| s.rate) / k),
    };
    let head = format!(
        "median of {} rounds of {:.2} s after {:.2} s warm-up, interleaved; ratios from the same run",
        timing.rounds,
        timing.measure.as_secs_f64(),
        timing.warmup.as_secs_f64()
    );

    println!();
    println!(
        "Ping-pong, one datagram outstanding: round trips per second (2 datagrams each), {head}."
    );
    println!();
    println!(
        "| path | runtime | payload | round trips/s | range | synack/kernel | stalled rounds |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|");
    for c in cases.iter().filter(|c| c.mode == Mode::PingPong) {
        println!(
            "| {} | {} | {} B | {} | {} | {} | {} |",
            label(c.path),
            c.flavor.name(),
            c.size,
            thousands(med(c, |s| s.rate)),
            range(c),
            ratio(c),
            c.samples.iter().filter(|s| s.stalled).count(),
        );
    }

    println!();
    println!(
        "Flood, one way: datagrams received per second at the receiver, {head}; loss and queue drops over the whole round (median)."
    );
    println!();
    println!(
        "| path | runtime | payload | received/s | range | synack/kernel | sent/s | loss % | queue drops | received Mbit/s |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for c in cases.iter().filter(|c| c.mode == Mode::Flood) {
        let rate = med(c, |s| s.rate);
        println!(
            "| {} | {} | {} B | {} | {} | {} | {} | {:.1} | {} | {:.0} |",
            label(c.path),
            c.flavor.name(),
            c.size,
            thousands(rate),
            range(c),
            ratio(c),
            thousands(med(c, |s| s.sent_rate)),
            med(c, Sample::loss_pct),
            thousands(med(c, |s| s.drops as f64)),
            rate * c.size as f64 * 8.0 / 1e6,
        );
    }
    println!();
    println!(
        "Queue drops: synack `Stats::udp_rx_dropped` (both stacks); kernel `RcvbufErrors` from /proc/net/snmp (system-wide). Receive buffers: synack `Config::udp_recv_buffer` {} bytes; kernel net.core.rmem_default {}.",
        synack::Config::default().udp_recv_buffer,
        std::fs::read_to_string("/proc/sys/net/core/rmem_default")
            .map(|s| format!("{} bytes", s.trim()))
            .unwrap_or_else(|_| "unknown".into()),
    );
    println!();
    println!("Targets (printed, not asserted):");
    println!();
    if TARGETS.is_empty() {
        println!("- none set for UDP yet: the synack/kernel columns are the figures to read.");
    }
    for t in TARGETS {
        println!("- {t}");
    }
}

/// The kernel's system-wide UDP `RcvbufErrors` (receive-queue drops).
fn kernel_rcvbuf_errors() -> u64 {
    let Ok(s) = std::fs::read_to_string("/proc/net/snmp") else {
        return 0;
    };
    let mut udp = s.lines().filter(|l| l.starts_with("Udp:"));
    let (Some(names), Some(values)) = (udp.next(), udp.next()) else {
        return 0;
    };
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(n, _)| *n == "RcvbufErrors")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0)
}

/// One round of one case: fresh sockets (and stacks), warm-up, measurement.
async fn run_case(path: Path, mode: Mode, size: usize, timing: &Timing) -> Sample {
    match path {
        Path::Kernel => {
            let a = tokio::net::UdpSocket::bind("127.0.0.1:0")
                .await
                .expect("bind");
            let b = tokio::net::UdpSocket::bind("127.0.0.1:0")
                .await
                .expect("bind");
            run(a, b, mode, size, timing, kernel_rcvbuf_errors).await
        }
        Path::TwoStacks => {
            let (la, lb) = MemoryLink::pair(MemoryLinkConfig::default());
            let client = Stack::new(la, CLIENT, 24);
            let server = Stack::new(lb, SERVER, 24);
            let a = synack::net::UdpSocket::bind_on(&client, (CLIENT, 0))
                .await
                .expect("bind");
            let b = synack::net::UdpSocket::bind_on(&server, (SERVER, 0))
                .await
                .expect("bind");
            let drops = || client.stats().udp_rx_dropped + server.stats().udp_rx_dropped;
            run(a, b, mode, size, timing, drops).await
        }
        Path::Loopback => {
            let (la, _lb) = MemoryLink::pair(MemoryLinkConfig::default());
            let stack = Stack::new(la, SERVER, 24);
            let a = synack::net::UdpSocket::bind_on(&stack, "127.0.0.1:0")
                .await
                .expect("bind");
            let b = synack::net::UdpSocket::bind_on(&stack, "127.0.0.1:0")
                .await
                .expect("bind");
            run(a, b, mode, size, timing, || stack.stats().udp_rx_dropped).await
        }
    }
}

/// `a` is the client (ping-pong) or the sender (flood); `b` the echo
/// server or the receiver.
async fn run<S: Dgram>(
    a: S,
    b: S,
    mode: Mode,
    size: usize,
    timing: &Timing,
    drops: impl Fn() -> u64,
) -> Sample {
    let to_b = b.local_addr().expect("local_addr");
    let (a, b) = (Arc::new(a), Arc::new(b));
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(Counter::default());
    let received = Arc::new(Counter::default());
    let drops0 = drops();
    let tasks: [JoinHandle<()>; 2] = match mode {
        Mode::PingPong => [
            tokio::spawn(echo(b)),
            tokio::spawn(ping(a, to_b, size, stop.clone(), received.clone())),
        ],
        Mode::Flood => [
            tokio::spawn(sink(b, received.clone())),
            tokio::spawn(flood(a, to_b, size, stop.clone(), sent.clone())),
        ],
    };
    tokio::time::sleep(timing.warmup).await;
    let (s0, r0, t0) = (sent.get(), received.get(), Instant::now());
    // Watch the count while measuring, for ping-pong stalls.
    let end = t0 + timing.measure;
    let (mut last, mut last_move, mut stalled) = (r0, t0, false);
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        tokio::time::sleep((end - now).min(Duration::from_millis(20))).await;
        let r = received.get();
        let now = Instant::now();
        if r != last {
            (last, last_move) = (r, now);
        } else if now - last_move > STALL {
            stalled = true;
        }
    }
    let (s1, r1, secs) = (sent.get(), received.get(), t0.elapsed().as_secs_f64());
    stop.store(true, Ordering::Relaxed);
    let [server, client] = tasks;
    // The client or sender ends at its next turn (a ping-pong client waiting
    // for a lost reply would not: abort it then).
    let mut client = client;
    match tokio::time::timeout(Duration::from_secs(1), &mut client).await {
        Ok(Err(e)) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Ok(_) => {}
        Err(_) => {
            stalled = true;
            client.abort();
        }
    }
    // Let the receiver take what is still queued.
    let drain_end = Instant::now() + DRAIN_MAX;
    let (mut last, mut last_move) = (received.get(), Instant::now());
    while mode == Mode::Flood && Instant::now() < drain_end && last_move.elapsed() < DRAIN_QUIET {
        tokio::time::sleep(Duration::from_millis(2)).await;
        let r = received.get();
        if r != last {
            (last, last_move) = (r, Instant::now());
        }
    }
    server.abort();
    if let Err(e) = server.await
        && e.is_panic()
    {
        std::panic::resume_unwind(e.into_panic());
    }
    Sample {
        rate: (r1 - r0) as f64 / secs,
        sent_rate: (s1 - s0) as f64 / secs,
        sent: sent.get(),
        received: received.get(),
        drops: drops() - drops0,
        stalled,
    }
}

/// Echoes every datagram to its sender.
async fn echo<S: Dgram>(s: Arc<S>) {
    let mut buf = vec![0u8; 2048];
    loop {
        let (n, from) = s.recv_from(&mut buf).await.expect("echo recv_from");
        s.send_to(&buf[..n], from).await.expect("echo send_to");
    }
}

/// One datagram out, its echo back, again until told to stop.
async fn ping<S: Dgram>(
    s: Arc<S>,
    to: SocketAddr,
    size: usize,
    stop: Arc<AtomicBool>,
    done: Arc<Counter>,
) {
    let payload = vec![0x5au8; size];
    let mut buf = vec![0u8; 2048];
    while !stop.load(Ordering::Relaxed) {
        s.send_to(&payload, to).await.expect("client send_to");
        let (n, _) = s.recv_from(&mut buf).await.expect("client recv_from");
        if n != size {
            panic!("echo of {n} bytes for {size}");
        }
        done.add();
    }
}

/// Sends as fast as `send_to` completes until told to stop.
async fn flood<S: Dgram>(
    s: Arc<S>,
    to: SocketAddr,
    size: usize,
    stop: Arc<AtomicBool>,
    sent: Arc<Counter>,
) {
    let payload = vec![0x5au8; size];
    while !stop.load(Ordering::Relaxed) {
        s.send_to(&payload, to).await.expect("flood send_to");
        sent.add();
    }
}

/// Receives and counts.
async fn sink<S: Dgram>(s: Arc<S>, received: Arc<Counter>) {
    let mut buf = vec![0u8; 2048];
    loop {
        s.recv_from(&mut buf).await.expect("sink recv_from");
        received.add();
    }
}
