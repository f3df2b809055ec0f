//! Connection rate, like netperf's TCP_CRR: each client task loops on connect,
//! write 1 byte, read the 1-byte reply, read end of stream, close. synack ↔
//! synack over a `MemoryLink` (default `Config`, and 4 KiB socket buffers), the
//! kernel's TCP through `tokio::net` over 127.0.0.1, and smoltcp ↔ smoltcp over
//! a `MemoryLink`, all in the same run.
//!
//! ```sh
//! cargo bench --bench crr              # 5 rounds of 1 s per case, each after 0.5 s of warm-up
//! cargo bench --bench crr -- --quick   # 1 round of 0.3 s per case, a smoke test (or SYNACK_BENCH_QUICK=1)
//! ```
//!
//! Every case (stack × 1 or 4 client tasks × tokio current-thread or
//! multi-thread with 2 workers) gets a fresh server (for synack and smoltcp,
//! fresh stacks and link); the clock starts after the warm-up, and the figure is
//! the connections completed (reply and end of stream read) in the measured
//! time. The server accepts in a loop and spawns a task per connection, as an
//! HTTP server would: it reads the byte, writes it back and drops the stream.
//! Any error on either side, or a connection taking more than 10 s, panics.
//!
//! Who closes first, and TIME-WAIT: the server does (HTTP/1.0 style). Its FIN
//! follows the reply; the client reads the reply and end of stream and drops
//! its stream, so its connection goes CLOSE-WAIT → LAST-ACK → CLOSED and its
//! ephemeral port is free again one round trip later. TIME-WAIT (60 s in
//! synack and Linux, 10 s in smoltcp) is kept by the server, which has one
//! port and so no ports to run out of. The client's ephemeral range (synack:
//! 49152–65535, 16 384 ports; the kernel: `net.ipv4.ip_local_port_range`,
//! read and printed; smoltcp's `SmolHost`: 49152–65535) comes round again
//! after that many connections, and its SYN from a port already used meets the
//! server's TIME-WAIT entry for the same four-tuple: synack and Linux take it
//! as a new connection when its timestamp is newer (RFC 6191; their timestamp
//! offsets are per four-tuple or per address pair, so it is), so the figure
//! measures the stack and not port exhaustion. smoltcp has no such reuse (its
//! TIME-WAIT socket takes the SYN as an out-of-window segment), but at its
//! rate its client does not come round its range within a case. The bench
//! checks all this: it prints, per stack, the cases whose client went round
//! its whole range, how many connects failed with `AddrNotAvailable` (it
//! panics on any), and how many connections took longer than 100 ms (a
//! refused reuse would show there, as a SYN retransmitted after the 1 s
//! initial RTO, or as the 10 s stall).
//!
//! synack's rows also print `Stack::stats()` over the measured time:
//! connections established on each side (which must match the count), SYNs
//! dropped by the listener, segments answered with RST, challenge ACKs; and the
//! process's resident memory at the end of each case, which includes the
//! server's TIME-WAIT connections and their buffers.
//!
//! Memory: buffers are allocated as data flows, so a connection that carries
//! one byte each way holds a 2 KiB ring per direction while the byte is
//! held and none once it is read and acknowledged; the server's TIME-WAIT
//! connections hold no buffers. The default rows and the 4 KiB rows should
//! therefore match: buffer size no longer decides the connection rate (the
//! RSS columns: the process's at the end of the measured time, and its growth
//! during the case; freed memory stays with the allocator).
//!
//! smoltcp (0.14, the interop tests' `SmolHost`) has one socket per
//! connection: its listener keeps 8 listening sockets (more than the client
//! tasks, so a SYN always finds one) and opens a new one on each accept. A
//! connection's socket stays in the interface's socket set through the
//! server's TIME-WAIT, and smoltcp finds the socket for each packet by a linear
//! scan of the set, so its rate falls as TIME-WAIT sockets pile up during a
//! case (10 s of them). It runs with 256 KiB buffers like synack's default,
//! Nagle on and its 10 ms delayed ACK (no ACK waits on it in this exchange).
//!
//! The issue's targets are printed beside the figures (synack with defaults
//! at least 5× the kernel on current-thread, and within 10 % of synack with
//! 4 KiB buffers); a benchmark prints, it does not assert.

#[path = "../tests/common/smol.rs"]
mod smol;

#[path = "common/tsmol.rs"]
mod tsmol;

mod common;

use std::future::Future;
use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use synack::device::{MemoryLink, MemoryLinkConfig};
use synack::{Config, Stack, Stats};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use common::Flavor;
use tokio::task::JoinHandle;

const SERVER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const CLIENT: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
const PORT: u16 = 5001;
/// The longest any one connection may take before the bench gives up.
const CONN_DEADLINE: Duration = Duration::from_secs(10);
/// Connections slower than this are counted (a refused TIME-WAIT reuse costs
/// a 1 s SYN retransmission).
const SLOW: Duration = Duration::from_millis(100);
/// Listening sockets smoltcp's listener keeps (at least the client tasks).
const SMOL_BACKLOG: usize = 8;
const SMALL_BUFFER: usize = 4096;
/// The ephemeral range of synack's default `Config` and of `SmolHost`, 49152–65535.
const EPHEMERAL_PORTS: u64 = 16384;

#[derive(Clone, Copy, PartialEq)]
enum Backend {
    /// synack ↔ synack; `small`: 4 KiB send and receive buffers, else the default.
    Synack {
        small: bool,
    },
    Kernel,
    Smoltcp,
    /// tokio-smoltcp 0.7 (smoltcp 0.14 behind tokio's traits), its defaults.
    TokioSmoltcp,
}

const SYNACK_DEFAULT: Backend = Backend::Synack { small: false };
const SYNACK_SMALL: Backend = Backend::Synack { small: true };

fn label(b: Backend) -> &'static str {
    match b {
        Backend::Synack { small: false } => "synack ↔ synack, default Config (256 KiB buffers)",
        Backend::Synack { small: true } => "synack ↔ synack, 4 KiB buffers",
        Backend::Kernel => "kernel TCP, loopback",
        Backend::Smoltcp => "smoltcp ↔ smoltcp (256 KiB buffers)",
        Backend::TokioSmoltcp => "tokio-smoltcp ↔ tokio-smoltcp (its defaults)",
    }
}

struct Timing {
    warmup: Duration,
    measure: Duration,
    /// Rounds of every case, interleaved; the table gives the median.
    rounds: usize,
}

/// State shared by one case's client and server tasks.
struct Shared {
    start: Instant,
    stop: AtomicBool,
    /// Connections completed by the clients.
    completed: AtomicU64,
    /// Client connects that failed with `AddrNotAvailable`.
    addr_not_available: AtomicU64,
    /// Connections slower than [`SLOW`], and the slowest, in µs.
    slow: AtomicU64,
    max_us: AtomicU64,
    /// The first error seen on either side.
    error: Mutex<Option<String>>,
    /// Close with `shutdown` before dropping (tokio-smoltcp: dropping its
    /// stream removes the socket at once, unsent data and FIN with it).
    shutdown_first: AtomicBool,
}

impl Shared {
    fn new() -> Shared {
        Shared {
            start: Instant::now(),
            stop: AtomicBool::new(false),
            completed: AtomicU64::new(0),
            addr_not_available: AtomicU64::new(0),
            slow: AtomicU64::new(0),
            max_us: AtomicU64::new(0),
            shutdown_first: AtomicBool::new(false),
            error: Mutex::new(None),
        }
    }

    fn fail(&self, what: String) {
        let mut e = self.error.lock().unwrap_or_else(|e| e.into_inner());
        if e.is_none() {
            *e = Some(format!(
                "{what} ({:.3} s into the case, after {} completed connections)",
                self.start.elapsed().as_secs_f64(),
                self.completed.load(Ordering::Relaxed)
            ));
        }
        self.stop.store(true, Ordering::Relaxed);
    }

    fn error(&self) -> Option<String> {
        self.error.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// What one case measured.
struct Outcome {
    /// Connections completed in the measured time, and that time.
    conns: u64,
    secs: f64,
    /// All connections of the case, warm-up and wind-down included.
    total: u64,
    addr_not_available: u64,
    slow: u64,
    max_ms: f64,
    /// synack: (server, client) stats at the start and end of the measured time.
    stats: Option<[[Stats; 2]; 2]>,
    /// Process resident memory at the end of the measured time, and its growth
    /// since the case started, MiB.
    rss_mib: f64,
    rss_growth_mib: f64,
}

struct Row {
    backend: Backend,
    flavor: Flavor,
    clients: usize,
    /// Connections per second of each round.
    rates: Vec<f64>,
    /// The rounds together: the median round's count, time and stats;
    /// connections, failures and slow ones summed over the rounds; the
    /// slowest of all; the last round's memory.
    outcome: Outcome,
}

impl Row {
    /// The median of the rounds.
    fn rate(&self) -> f64 {
        let mut v = self.rates.clone();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    }

    fn range(&self) -> (f64, f64) {
        let min = self.rates.iter().copied().fold(f64::INFINITY, f64::min);
        let max = self.rates.iter().copied().fold(0.0, f64::max);
        (min, max)
    }
}

/// The rounds of one case as one [`Outcome`] (see [`Row::outcome`]).
fn merge(rounds: Vec<Outcome>) -> Outcome {
    let rate = |o: &Outcome| o.conns as f64 / o.secs;
    let mut order: Vec<usize> = (0..rounds.len()).collect();
    order.sort_by(|&a, &b| rate(&rounds[a]).total_cmp(&rate(&rounds[b])));
    let median = order[order.len() / 2];
    let total = rounds.iter().map(|o| o.total).sum();
    let addr_not_available = rounds.iter().map(|o| o.addr_not_available).sum();
    let slow = rounds.iter().map(|o| o.slow).sum();
    let max_ms = rounds.iter().map(|o| o.max_ms).fold(0.0, f64::max);
    let (rss_mib, rss_growth_mib) = rounds
        .last()
        .map_or((0.0, 0.0), |o| (o.rss_mib, o.rss_growth_mib));
    let m = rounds.into_iter().nth(median).expect("a round");
    Outcome {
        total,
        addr_not_available,
        slow,
        max_ms,
        rss_mib,
        rss_growth_mib,
        ..m
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // `cargo bench` passes `--bench`; other arguments are ignored too.
    let quick = args.iter().any(|a| a == "--quick")
        || std::env::var_os("SYNACK_BENCH_QUICK").is_some_and(|v| !v.is_empty() && v != "0");
    let timing = if quick {
        Timing {
            warmup: Duration::from_millis(100),
            measure: Duration::from_millis(300),
            rounds: 1,
        }
    } else {
        Timing {
            warmup: Duration::from_millis(500),
            measure: Duration::from_secs(1),
            rounds: 5,
        }
    };
    eprintln!(
        "crr: connect + 1-byte request + 1-byte reply + close; {} round(s) of {:.1} s per case, interleaved, each after {:.1} s of warm-up{}",
        timing.rounds,
        timing.measure.as_secs_f64(),
        timing.warmup.as_secs_f64(),
        if quick { " (quick)" } else { "" },
    );

    let backends = [
        SYNACK_DEFAULT,
        SYNACK_SMALL,
        Backend::Kernel,
        Backend::Smoltcp,
        Backend::TokioSmoltcp,
    ];
    let mut rows = Vec::new();
    for flavor in [Flavor::Current, Flavor::Multi] {
        let rt = flavor.runtime();
        let cases: Vec<(usize, Backend)> = [1, 4]
            .into_iter()
            .flat_map(|clients| backends.map(|b| (clients, b)))
            // tokio-smoltcp's listener is one listening socket: a connect
            // that arrives while it serves another is refused.
            .filter(|&(clients, b)| !(b == Backend::TokioSmoltcp && clients > 1))
            .collect();
        let mut rounds: Vec<Vec<Outcome>> = cases.iter().map(|_| Vec::new()).collect();
        // Interleaved: round 1 of every case, then round 2, ...
        for round in 1..=timing.rounds {
            for (&(clients, backend), outcomes) in cases.iter().zip(&mut rounds) {
                let o = rt.block_on(run_case(backend, clients, &timing));
                eprintln!(
                    "  round {round}: {:<50} {:<24} {clients} client(s) {:>9.0} conn/s  ({} in {:.2} s; {} in all; {} AddrNotAvailable; {} > 100 ms, slowest {:.1} ms; RSS {:.0} MiB, {:+.0} in the case)",
                    label(backend),
                    flavor.name(),
                    o.conns as f64 / o.secs,
                    o.conns,
                    o.secs,
                    o.total,
                    o.addr_not_available,
                    o.slow,
                    o.max_ms,
                    o.rss_mib,
                    o.rss_growth_mib,
                );
                outcomes.push(o);
            }
        }
        for (&(clients, backend), outcomes) in cases.iter().zip(rounds) {
            rows.push(Row {
                backend,
                flavor,
                clients,
                rates: outcomes.iter().map(|o| o.conns as f64 / o.secs).collect(),
                outcome: merge(outcomes),
            });
        }
    }
    print_tables(&rows, &timing);
}

fn print_tables(rows: &[Row], timing: &Timing) {
    let find = |r: &Row, b: Backend| {
        rows.iter()
            .find(|x| x.backend == b && x.flavor == r.flavor && x.clients == r.clients)
            .map(Row::rate)
            .filter(|&v| v > 0.0)
    };
    let ratio = |a: f64, b: Option<f64>| b.map_or("—".into(), |b| format!("{:.2}", a / b));
    println!();
    println!(
        "Connections per second (connect, 1-byte request, 1-byte reply, server closes first): median and range of {} round(s) of {:.1} s per case, interleaved, each on a fresh server after {:.1} s of warm-up; ratios of medians from the same run; connections, failures and slow ones over all rounds.",
        timing.rounds,
        timing.measure.as_secs_f64(),
        timing.warmup.as_secs_f64()
    );
    println!();
    println!(
        "| stack | runtime | clients | conn/s | range | /kernel | default/4 KiB | synack/smoltcp | synack/tokio-smoltcp | connections in all | AddrNotAvailable | > 100 ms (slowest ms) |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        let rate = r.rate();
        let vs_kernel = match r.backend {
            Backend::Kernel => "—".into(),
            _ => ratio(rate, find(r, Backend::Kernel)),
        };
        let (vs_small, vs_smol, vs_tsmol) = match r.backend {
            Backend::Synack { small: false } => (
                ratio(rate, find(r, SYNACK_SMALL)),
                ratio(rate, find(r, Backend::Smoltcp)),
                ratio(rate, find(r, Backend::TokioSmoltcp)),
            ),
            _ => ("—".into(), "—".into(), "—".into()),
        };
        let o = &r.outcome;
        let (min, max) = r.range();
        println!(
            "| {} | {} | {} | {:.0} | {min:.0} – {max:.0} | {vs_kernel} | {vs_small} | {vs_smol} | {vs_tsmol} | {} | {} | {} ({:.1}) |",
            label(r.backend),
            r.flavor.name(),
            r.clients,
            rate,
            o.total,
            o.addr_not_available,
            o.slow,
            o.max_ms,
        );
    }

    println!();
    println!("Targets (printed, not asserted):");
    println!();
    for r in rows.iter().filter(|r| r.backend == SYNACK_DEFAULT) {
        let rate = r.rate();
        let mut parts = Vec::new();
        if r.flavor == Flavor::Current
            && let Some(k) = find(r, Backend::Kernel)
        {
            let x = rate / k;
            parts.push(format!(
                "default/kernel {x:.2} (target ≥ 10): {}",
                if x >= 10.0 { "met" } else { "NOT met" }
            ));
        }
        if r.flavor == Flavor::Current
            && let Some(t) = find(r, Backend::TokioSmoltcp)
        {
            let x = rate / t;
            parts.push(format!(
                "default/tokio-smoltcp {x:.2} (target ≥ 2): {}",
                if x >= 2.0 { "met" } else { "NOT met" }
            ));
        }
        if let Some(s) = find(r, SYNACK_SMALL) {
            let x = rate / s;
            parts.push(format!(
                "default/4 KiB {x:.2} (target ≥ 0.90): {}",
                if x >= 0.9 { "met" } else { "NOT met" }
            ));
        }
        println!(
            "- {}, {} client(s): {}",
            r.flavor.name(),
            r.clients,
            parts.join("; ")
        );
    }

    println!();
    println!(
        "synack `Stack::stats()` over the measured time (server / client), and resident memory at its end:"
    );
    println!();
    println!(
        "| config | runtime | clients | conns counted | established (server / client) | SYNs dropped | RSTs sent for no socket | challenge ACKs | RSS MiB (growth in case) |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        let Backend::Synack { small } = r.backend else {
            continue;
        };
        let Some([[s0, c0], [s1, c1]]) = r.outcome.stats else {
            continue;
        };
        let d = |f: fn(&Stats) -> u64, a: &Stats, b: &Stats| f(b) - f(a);
        println!(
            "| {} | {} | {} | {} | {} / {} | {} / {} | {} / {} | {} / {} | {:.0} ({:+.0}) |",
            if small { "4 KiB buffers" } else { "default" },
            r.flavor.name(),
            r.clients,
            r.outcome.conns,
            d(|s| s.connections_established, &s0, &s1),
            d(|s| s.connections_established, &c0, &c1),
            d(|s| s.syn_dropped, &s0, &s1),
            d(|s| s.syn_dropped, &c0, &c1),
            d(|s| s.rx_no_socket, &s0, &s1),
            d(|s| s.rx_no_socket, &c0, &c1),
            d(|s| s.challenge_acks_sent, &s0, &s1),
            d(|s| s.challenge_acks_sent, &c0, &c1),
            r.outcome.rss_mib,
            r.outcome.rss_growth_mib,
        );
    }
    // How many ports each client has to connect from.
    let ports = |b: Backend| match b {
        Backend::Synack { .. } | Backend::Smoltcp => Some(EPHEMERAL_PORTS),
        // tokio-smoltcp hands out ports 10001..=60000 in turn.
        Backend::TokioSmoltcp => Some(50_000),
        Backend::Kernel => kernel_ephemeral_ports(),
    };
    println!();
    println!(
        "tokio-smoltcp runs with one client only: its listener is a single listening socket, so concurrent connects are refused (ConnectionAborted). It closes by `shutdown` before dropping a stream (dropping removes the socket at once, unsent data and FIN with it)."
    );
    println!();
    println!(
        "Cases whose client went round its whole ephemeral range, so that its SYNs reused four-tuples the server still held in TIME-WAIT (AddrNotAvailable in all cases: {}):",
        rows.iter()
            .map(|r| r.outcome.addr_not_available)
            .sum::<u64>()
    );
    println!();
    for b in [
        SYNACK_DEFAULT,
        SYNACK_SMALL,
        Backend::Kernel,
        Backend::Smoltcp,
        Backend::TokioSmoltcp,
    ] {
        let of: Vec<_> = rows.iter().filter(|r| r.backend == b).collect();
        let Some(n) = ports(b) else {
            println!("- {}: ephemeral range unknown", label(b));
            continue;
        };
        let wrapped = of.iter().filter(|r| r.outcome.total > n).count();
        let most = of.iter().map(|r| r.outcome.total).max().unwrap_or(0);
        println!(
            "- {}: {wrapped} of {} ({n} ports; at most {most} connections in a case)",
            label(b),
            of.len()
        );
    }
}

/// How many ports the kernel's `net.ipv4.ip_local_port_range` holds.
fn kernel_ephemeral_ports() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    let mut it = s.split_whitespace().map(|x| x.parse::<u64>().ok());
    let (lo, hi) = (it.next()??, it.next()??);
    Some(hi.checked_sub(lo)? + 1)
}

/// Resident memory of this process, MiB (from /proc/self/statm).
fn rss_mib() -> f64 {
    let pages = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .unwrap_or(0);
    (pages * page_size()) as f64 / (1 << 20) as f64
}

fn page_size() -> u64 {
    // SAFETY: sysconf only reads a system constant.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if n > 0 { n as u64 } else { 4096 }
}

/// A task that accepts on `$listener` for ever, serving each connection in a
/// task of its own; `$stream` takes the stream out of what `accept` returns.
macro_rules! accept_loop {
    ($listener:ident, $shared:ident, |$got:pat_param| $stream:expr) => {
        tokio::spawn({
            let shared = $shared.clone();
            #[allow(unused_mut)]
            let mut $listener = $listener;
            async move {
                loop {
                    match $listener.accept().await {
                        Ok($got) => {
                            tokio::spawn(serve($stream, shared.clone()));
                        }
                        Err(e) => return shared.fail(format!("server accept: {e}")),
                    }
                }
            }
        })
    };
}

/// One case: a fresh server, `clients` client tasks, warm-up, measurement.
async fn run_case(backend: Backend, clients: usize, timing: &Timing) -> Outcome {
    let rss_start = rss_mib();
    let shared = Arc::new(Shared::new());
    let what = format!("{} ({clients} client(s))", label(backend));
    let outcome = match backend {
        Backend::Synack { small } => {
            let config = if small {
                Config {
                    send_buffer: SMALL_BUFFER,
                    recv_buffer: SMALL_BUFFER,
                    ..Config::default()
                }
            } else {
                Config::default()
            };
            let (a, b) = MemoryLink::pair(MemoryLinkConfig::default());
            let server = Stack::builder(a, SERVER, 24).config(config.clone()).build();
            let client = Stack::builder(b, CLIENT, 24).config(config).build();
            let listener = synack::net::TcpListener::bind_on(&server, (SERVER, PORT))
                .await
                .unwrap_or_else(|e| panic!("{what}: listen: {e}"));
            let acceptor = accept_loop!(listener, shared, |(s, _)| s);
            let connect = {
                let client = client.clone();
                move || {
                    let client = client.clone();
                    async move { synack::net::TcpStream::connect_on(&client, (SERVER, PORT)).await }
                }
            };
            let probe = || Some([server.stats(), client.stats()]);
            let outcome = drive(&shared, clients, connect, probe, timing).await;
            stop(acceptor).await;
            outcome
        }
        Backend::Kernel => {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .unwrap_or_else(|e| panic!("{what}: listen: {e}"));
            let addr = listener.local_addr().expect("local_addr");
            let acceptor = accept_loop!(listener, shared, |(s, _)| s);
            let connect = move || tokio::net::TcpStream::connect(addr);
            let outcome = drive(&shared, clients, connect, || None, timing).await;
            stop(acceptor).await;
            outcome
        }
        Backend::Smoltcp => {
            let (a, b) = MemoryLink::pair(MemoryLinkConfig::default());
            let server = smol::SmolHost::spawn_with(
                a,
                smol::SmolConfig {
                    backlog: SMOL_BACKLOG,
                    ..smol::SmolConfig::new(SERVER, 24)
                },
            );
            let client = smol::SmolHost::spawn(b, CLIENT, 24);
            let listener = server
                .listen(PORT)
                .unwrap_or_else(|e| panic!("{what}: listen: {e}"));
            let acceptor = accept_loop!(listener, shared, |s| s);
            let connect = {
                let client = client.clone();
                move || {
                    let client = client.clone();
                    async move { client.connect(SocketAddrV4::new(SERVER, PORT)).await }
                }
            };
            let outcome = drive(&shared, clients, connect, || None, timing).await;
            stop(acceptor).await;
            drop((client, server));
            outcome
        }
        Backend::TokioSmoltcp => {
            shared.shutdown_first.store(true, Ordering::Relaxed);
            let (a, b) = tsmol::link_pair(1500, false);
            let server = tsmol::net(a, SERVER);
            let client = Arc::new(tsmol::net(b, CLIENT));
            let listener = server
                .tcp_bind(tsmol::addr(SERVER, PORT))
                .await
                .unwrap_or_else(|e| panic!("{what}: listen: {e}"));
            let acceptor = accept_loop!(listener, shared, |(s, _)| s);
            let connect = {
                let client = client.clone();
                move || {
                    let client = client.clone();
                    async move { client.tcp_connect(tsmol::addr(SERVER, PORT)).await }
                }
            };
            let outcome = drive(&shared, clients, connect, || None, timing).await;
            stop(acceptor).await;
            drop((client, server));
            outcome
        }
    };
    if let Some(e) = shared.error() {
        panic!("{what}: {e}");
    }
    Outcome {
        rss_growth_mib: outcome.rss_mib - rss_start,
        ..outcome
    }
}

async fn stop(task: JoinHandle<()>) {
    task.abort();
    let _ = task.await;
}

/// Runs `clients` client tasks through the warm-up and the measured time, then
/// stops them and waits for them. `probe` is read at the start and end of the
/// measured time.
async fn drive<S, F, Fut>(
    shared: &Arc<Shared>,
    clients: usize,
    connect: F,
    probe: impl Fn() -> Option<[Stats; 2]>,
    timing: &Timing,
) -> Outcome
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: Future<Output = io::Result<S>> + Send + 'static,
{
    let tasks: Vec<_> = (0..clients)
        .map(|_| tokio::spawn(client_loop(shared.clone(), connect.clone())))
        .collect();
    sleep_watching(shared, timing.warmup).await;
    let n0 = shared.completed.load(Ordering::Relaxed);
    let p0 = probe();
    let t0 = Instant::now();
    sleep_watching(shared, timing.measure).await;
    let n1 = shared.completed.load(Ordering::Relaxed);
    let secs = t0.elapsed().as_secs_f64();
    let p1 = probe();
    let rss_mib = rss_mib();
    shared.stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.expect("client task panicked");
    }
    Outcome {
        conns: n1 - n0,
        secs,
        total: shared.completed.load(Ordering::Relaxed),
        addr_not_available: shared.addr_not_available.load(Ordering::Relaxed),
        slow: shared.slow.load(Ordering::Relaxed),
        max_ms: shared.max_us.load(Ordering::Relaxed) as f64 / 1000.0,
        stats: p0.zip(p1).map(|(a, b)| [a, b]),
        rss_mib,
        rss_growth_mib: 0.0,
    }
}

/// Sleeps for `d`, waking every 50 ms to stop early if a task failed.
async fn sleep_watching(shared: &Shared, d: Duration) {
    let end = tokio::time::Instant::now() + d;
    while tokio::time::Instant::now() < end && !shared.stop.load(Ordering::Relaxed) {
        let next = (tokio::time::Instant::now() + Duration::from_millis(50)).min(end);
        tokio::time::sleep_until(next).await;
    }
}

/// One client: connections one after another until told to stop.
async fn client_loop<S, F, Fut>(shared: Arc<Shared>, connect: F)
where
    S: AsyncRead + AsyncWrite + Unpin,
    F: Fn() -> Fut,
    Fut: Future<Output = io::Result<S>>,
{
    while !shared.stop.load(Ordering::Relaxed) {
        let t = Instant::now();
        match tokio::time::timeout(
            CONN_DEADLINE,
            one_connection(connect(), shared.shutdown_first.load(Ordering::Relaxed)),
        )
        .await
        {
            Ok(Ok(())) => {
                let us = t.elapsed().as_micros() as u64;
                if us >= SLOW.as_micros() as u64 {
                    shared.slow.fetch_add(1, Ordering::Relaxed);
                }
                shared.max_us.fetch_max(us, Ordering::Relaxed);
                shared.completed.fetch_add(1, Ordering::Relaxed);
            }
            Ok(Err((step, e))) => {
                if e.kind() == io::ErrorKind::AddrNotAvailable {
                    shared.addr_not_available.fetch_add(1, Ordering::Relaxed);
                }
                return shared.fail(format!("client {step}: {e} (kind {:?})", e.kind()));
            }
            Err(_) => {
                return shared.fail(format!(
                    "client: a connection took more than {} s",
                    CONN_DEADLINE.as_secs()
                ));
            }
        }
    }
}

/// connect, write one byte, read the reply, read end of stream, drop (after
/// `shutdown` if `shutdown_first`).
async fn one_connection<S>(
    connect: impl Future<Output = io::Result<S>>,
    shutdown_first: bool,
) -> Result<(), (&'static str, io::Error)>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut s = connect.await.map_err(|e| ("connect", e))?;
    s.write_all(b"x").await.map_err(|e| ("write", e))?;
    let mut b = [0u8; 1];
    s.read_exact(&mut b).await.map_err(|e| ("read", e))?;
    if &b != b"x" {
        return Err(("read", io::Error::other("wrong reply byte")));
    }
    match s.read(&mut b).await {
        Ok(0) => {}
        Ok(_) => return Err(("read EOF", io::Error::other("data after the reply"))),
        Err(e) => return Err(("read EOF", e)),
    }
    if shutdown_first {
        s.shutdown().await.map_err(|e| ("shutdown", e))?;
    }
    Ok(())
}

/// The server's side of one connection: read the byte, write it back, close
/// (first: the server keeps TIME-WAIT).
async fn serve<S: AsyncRead + AsyncWrite + Unpin>(mut s: S, shared: Arc<Shared>) {
    let mut b = [0u8; 1];
    let r = async {
        s.read_exact(&mut b).await?;
        s.write_all(&b).await?;
        if shared.shutdown_first.load(Ordering::Relaxed) {
            s.shutdown().await?;
        }
        Ok::<_, io::Error>(())
    }
    .await;
    if let Err(e) = r {
        shared.fail(format!("server: {e} (kind {:?})", e.kind()));
    }
}
