//! Several cores sharing one server: one shard per core against one.
//!
//! ```sh
//! cargo bench --bench multicore              # 5 rounds of 1 s per case
//! cargo bench --bench multicore -- --quick   # 5 rounds of 0.2 s (or SYNACK_BENCH_QUICK=1)
//! ```
//!
//! Each case runs N threads (N = 1 or 2, this machine's cores), each with a
//! current-thread tokio runtime of its own, as a thread-per-core server runs:
//!
//! - **synack**: a server [`StackSet`] and a client `StackSet` of N shards
//!   each over one `MemoryLink::multi_queue(N, N)`; thread `i` builds and
//!   drives shard `i` of both, accepts on shard `i`'s listener and connects
//!   with `connect_on(i, ..)` (a local port that steers back to shard `i`),
//!   so a flow's packets never leave its thread. One address per side,
//!   flows spread by the link's hash of the 4-tuple, as RSS spreads them
//!   over a NIC's queues.
//! - **kernel**: `tokio::net` over 127.0.0.1, thread `i` serving its own
//!   port; the kernel's loopback does its TCP work on the sending thread.
//! - **tokio-smoltcp**: it has no sharding (one `Net` is one interface
//!   behind one lock), so thread `i` runs a pair of `Net`s of its own over
//!   a channel link, with addresses of its own: N independent hosts, the
//!   most it can do with N cores.
//!
//! Two more rows run the same per-shard work as tasks of one multi-thread
//! tokio runtime with 2 workers (synack: `StackSet::on_devices` on it; the
//! kernel: a port per task), as an application that does not pin threads
//! would; their 1-core figure is the thread-per-core one.
//!
//! Workloads, per thread: `crr`, 4 client tasks looping on connect, write 1
//! byte, read the reply and end of stream (the server closes first, as in
//! the `crr` bench; default `Config`); `bulk`, 4 flows in all (4 on one
//! thread, 2 on each of two), each client writing 64 KiB writes as fast as
//! it can and the server reading and counting (synack and tokio-smoltcp at
//! MTU 1500 with checksum offload; the kernel at its loopback's 65 536).
//! The figure is completed connections, or bytes received, per second over
//! the measured time after 0.3 s of warm-up; rounds are interleaved and the
//! table gives medians of 5 and the ratio of N = 2 to N = 1.
//!
//! The issue's target: two shards ≥ 1.8× one on both workloads. A
//! benchmark prints, it does not assert.

#[path = "common/tsmol.rs"]
mod tsmol;

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use synack::Stack;
use synack::device::{MemoryLink, MemoryLinkConfig};
use synack::net::TcpListener;
use synack::shard::StackSet;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

const SERVER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const CLIENT: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
const PORT: u16 = 5003;
const ROUNDS: usize = 5;
const WARM_UP: Duration = Duration::from_millis(300);
/// Client tasks per thread in `crr`.
const CRR_CLIENTS: usize = 4;
/// Bulk flows in all, spread over the threads.
const BULK_FLOWS: usize = 4;
const CHUNK: usize = 64 * 1024;

#[derive(Clone, Copy, PartialEq, Debug)]
enum Stackname {
    Synack,
    Kernel,
    TokioSmoltcp,
    /// synack's shards as tasks of one multi-thread runtime (2 workers).
    SynackMt,
    /// The kernel's per-port work as tasks of one multi-thread runtime.
    KernelMt,
}

impl Stackname {
    fn name(self) -> &'static str {
        match self {
            Stackname::Synack => "synack, StackSet over MemoryLink::multi_queue",
            Stackname::Kernel => "kernel TCP, loopback",
            Stackname::TokioSmoltcp => "tokio-smoltcp, a pair of Nets per thread",
            Stackname::SynackMt => {
                "synack, StackSet on tokio's multi-thread runtime (2 workers; 1 core: as above)"
            }
            Stackname::KernelMt => {
                "kernel TCP on tokio's multi-thread runtime (2 workers; 1 core: as above)"
            }
        }
    }
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Work {
    Crr,
    Bulk,
}

impl Work {
    fn name(self) -> &'static str {
        match self {
            Work::Crr => "connect + 1 B + 1 B + close, 4 clients per thread (connections/s)",
            Work::Bulk => "bulk, 4 flows in all (Gbit/s)",
        }
    }
}

/// What every thread of a case shares: the count and the stop flag.
struct Shared {
    count: AtomicU64,
    stop: AtomicBool,
}

/// The server side of a crr connection: read the byte, write it back, close.
async fn serve_crr<S: AsyncRead + AsyncWrite + Unpin>(mut s: S) -> io::Result<()> {
    let mut b = [0u8; 1];
    s.read_exact(&mut b).await?;
    s.write_all(&b).await?;
    s.shutdown().await
}

/// The client side of a crr connection, on an open stream.
async fn client_crr<S: AsyncRead + AsyncWrite + Unpin>(mut s: S) -> io::Result<()> {
    s.write_all(&[7]).await?;
    let mut b = [0u8; 1];
    s.read_exact(&mut b).await?;
    let mut rest = [0u8; 1];
    if s.read(&mut rest).await? != 0 {
        return Err(io::Error::other("more than one byte came back"));
    }
    Ok(())
}

/// Reads a bulk flow to its end, counting bytes.
async fn sink<S: AsyncRead + Unpin>(mut s: S, shared: Arc<Shared>) -> io::Result<()> {
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = s.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        shared.count.fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// Writes a bulk flow until told to stop.
async fn source<S: AsyncWrite + Unpin>(mut s: S, shared: Arc<Shared>) -> io::Result<()> {
    let buf = vec![0x5au8; CHUNK];
    while !shared.stop.load(Ordering::Relaxed) {
        s.write_all(&buf).await?;
    }
    s.shutdown().await
}

/// The flows thread `i` of `n` runs in `bulk`.
fn flows_of(i: usize, n: usize) -> usize {
    BULK_FLOWS / n + usize::from(i < BULK_FLOWS % n)
}

/// Thread `i`'s work on synack: its shards, its listener, the client set.
async fn synack_thread(
    work: Work,
    i: usize,
    n: usize,
    clients: StackSet,
    listener: TcpListener,
    shared: Arc<Shared>,
) -> io::Result<()> {
    let server = {
        let shared = shared.clone();
        tokio::spawn(async move {
            loop {
                let (s, _) = listener.accept().await?;
                s.set_nodelay(true)?;
                match work {
                    Work::Crr => drop(tokio::spawn(serve_crr(s))),
                    Work::Bulk => drop(tokio::spawn(sink(s, shared.clone()))),
                }
            }
            #[allow(unreachable_code)]
            Ok::<(), io::Error>(())
        })
    };
    let mut tasks = Vec::new();
    match work {
        Work::Crr => {
            for _ in 0..CRR_CLIENTS {
                let (clients, shared) = (clients.clone(), shared.clone());
                tasks.push(tokio::spawn(async move {
                    while !shared.stop.load(Ordering::Relaxed) {
                        let s = clients.connect_on(i, (SERVER, PORT)).await?;
                        s.set_nodelay(true)?;
                        client_crr(s).await?;
                        shared.count.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok::<(), io::Error>(())
                }));
            }
        }
        Work::Bulk => {
            for _ in 0..flows_of(i, n) {
                let s = clients.connect_on(i, (SERVER, PORT)).await?;
                tasks.push(tokio::spawn(source(s, shared.clone())));
            }
        }
    }
    for t in tasks {
        t.await.expect("client task")?;
    }
    server.abort();
    Ok(())
}

/// Thread `i`'s work on the kernel: a listener on port `PORT + i`.
async fn kernel_thread(work: Work, i: usize, n: usize, shared: Arc<Shared>) -> io::Result<()> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, PORT + 100 + i as u16));
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let server = {
        let shared = shared.clone();
        tokio::spawn(async move {
            loop {
                let (s, _) = listener.accept().await?;
                s.set_nodelay(true)?;
                match work {
                    Work::Crr => drop(tokio::spawn(serve_crr(s))),
                    Work::Bulk => drop(tokio::spawn(sink(s, shared.clone()))),
                }
            }
            #[allow(unreachable_code)]
            Ok::<(), io::Error>(())
        })
    };
    let mut tasks = Vec::new();
    match work {
        Work::Crr => {
            for _ in 0..CRR_CLIENTS {
                let shared = shared.clone();
                tasks.push(tokio::spawn(async move {
                    while !shared.stop.load(Ordering::Relaxed) {
                        let s = tokio::net::TcpStream::connect(addr).await?;
                        s.set_nodelay(true)?;
                        client_crr(s).await?;
                        shared.count.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok::<(), io::Error>(())
                }));
            }
        }
        Work::Bulk => {
            for _ in 0..flows_of(i, n) {
                let s = tokio::net::TcpStream::connect(addr).await?;
                tasks.push(tokio::spawn(source(s, shared.clone())));
            }
        }
    }
    for t in tasks {
        t.await.expect("client task")?;
    }
    server.abort();
    Ok(())
}

/// Thread `i`'s work on tokio-smoltcp: a pair of `Net`s of its own.
async fn tsmol_thread(work: Work, i: usize, n: usize, shared: Arc<Shared>) -> io::Result<()> {
    let (a, b) = tsmol::link_pair(1500, false);
    let server_ip = Ipv4Addr::new(198, 51, 100, 1 + 2 * i as u8);
    let client_ip = Ipv4Addr::new(198, 51, 100, 2 + 2 * i as u8);
    let server_net = tsmol::net(a, server_ip);
    let client_net = Arc::new(tsmol::net(b, client_ip));
    let addr = tsmol::addr(server_ip, PORT);
    let mut listener = server_net.tcp_bind(addr).await?;
    let server = {
        let shared = shared.clone();
        tokio::spawn(async move {
            // Its listener is one socket: one connection at a time gets
            // accepted, as in the `crr` bench.
            loop {
                let (s, _) = listener.accept().await?;
                match work {
                    Work::Crr => drop(tokio::spawn(serve_crr(s))),
                    Work::Bulk => drop(tokio::spawn(sink(s, shared.clone()))),
                }
            }
            #[allow(unreachable_code)]
            Ok::<(), io::Error>(())
        })
    };
    let mut tasks = Vec::new();
    match work {
        Work::Crr => {
            // One client: tokio-smoltcp's single listening socket refuses
            // the SYNs of the others while it holds a connection.
            let (client_net, shared) = (client_net.clone(), shared.clone());
            tasks.push(tokio::spawn(async move {
                while !shared.stop.load(Ordering::Relaxed) {
                    let s = client_net.tcp_connect(addr).await?;
                    client_crr(s).await?;
                    shared.count.fetch_add(1, Ordering::Relaxed);
                }
                Ok::<(), io::Error>(())
            }));
        }
        Work::Bulk => {
            for _ in 0..flows_of(i, n) {
                let s = client_net.tcp_connect(addr).await?;
                tasks.push(tokio::spawn(source(s, shared.clone())));
            }
        }
    }
    for t in tasks {
        t.await.expect("client task")?;
    }
    server.abort();
    drop(server_net);
    Ok(())
}

/// The per-shard work of 2 shards as tasks of one multi-thread runtime with
/// 2 workers, as an application that does not pin threads runs them.
fn run_mt(stack: Stackname, work: Work, secs: Duration) -> f64 {
    let n = 2;
    let shared = Arc::new(Shared {
        count: AtomicU64::new(0),
        stop: AtomicBool::new(false),
    });
    let thread = {
        let shared = shared.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let all = async move {
                    let mut tasks = Vec::new();
                    if stack == Stackname::SynackMt {
                        let (s, c) = MemoryLink::multi_queue(MemoryLinkConfig::default(), n, n);
                        let servers = StackSet::on_devices(s, SERVER, 24)?;
                        let clients = StackSet::on_devices(c, CLIENT, 24)?;
                        let listener = servers.bind((SERVER, PORT)).await?;
                        for (i, l) in listener.into_shards().into_iter().enumerate() {
                            let task =
                                synack_thread(work, i, n, clients.clone(), l, shared.clone());
                            tasks.push(tokio::spawn(task));
                        }
                    } else {
                        for i in 0..n {
                            tasks.push(tokio::spawn(kernel_thread(work, i, n, shared.clone())));
                        }
                    }
                    for t in tasks {
                        t.await.expect("shard task")?;
                    }
                    io::Result::Ok(())
                };
                let all = tokio::spawn(tokio::time::timeout(
                    secs + WARM_UP + Duration::from_secs(30),
                    all,
                ));
                all.await.expect("the case panicked")
            })
        })
    };
    let rate = measure(&shared, secs);
    match thread.join().expect("thread panicked") {
        Ok(Ok(())) => {}
        Ok(Err(e)) => panic!("{} {:?}: {e}", stack.name(), work),
        Err(_) => panic!("{} {:?}: stuck", stack.name(), work),
    }
    rate
}

/// Counts through the warm-up and the measured time, then tells the work
/// to stop: the rate per second.
fn measure(shared: &Shared, secs: Duration) -> f64 {
    std::thread::sleep(WARM_UP);
    let start = shared.count.load(Ordering::Relaxed);
    let t0 = std::time::Instant::now();
    std::thread::sleep(secs);
    let end = shared.count.load(Ordering::Relaxed);
    let elapsed = t0.elapsed().as_secs_f64();
    shared.stop.store(true, Ordering::Relaxed);
    (end - start) as f64 / elapsed
}

/// One case: N threads for `secs` after the warm-up; the rate per second.
fn run(stack: Stackname, work: Work, n: usize, secs: Duration) -> f64 {
    if matches!(stack, Stackname::SynackMt | Stackname::KernelMt) {
        return run_mt(stack, work, secs);
    }
    let shared = Arc::new(Shared {
        count: AtomicU64::new(0),
        stop: AtomicBool::new(false),
    });
    let mut threads = Vec::new();
    // synack: thread i builds shard i of both sets and hands them over; the
    // listener and the client set come back once all are built.
    let (built_tx, built_rx) = std::sync::mpsc::channel();
    let mut handover = Vec::new();
    let mut queues: Vec<Option<(MemoryLink, MemoryLink)>> = if stack == Stackname::Synack {
        let (s, c) = MemoryLink::multi_queue(MemoryLinkConfig::default(), n, n);
        s.into_iter().zip(c).map(Some).collect()
    } else {
        Vec::new()
    };
    queues.resize_with(n, || None);
    for (i, devices) in queues.into_iter().enumerate() {
        let shared = shared.clone();
        let built_tx = built_tx.clone();
        let (give_tx, give_rx) = std::sync::mpsc::channel::<(StackSet, TcpListener)>();
        handover.push(give_tx);
        threads.push(std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let work_done = async {
                    match stack {
                        Stackname::Synack => {
                            let (sd, cd) = devices.expect("devices");
                            let server = Stack::new(sd, SERVER, 24);
                            let client = Stack::new(cd, CLIENT, 24);
                            built_tx.send((i, server.clone(), client.clone())).ok();
                            let (clients, listener) = loop {
                                match give_rx.try_recv() {
                                    Ok(v) => break v,
                                    Err(_) => tokio::time::sleep(Duration::from_millis(1)).await,
                                }
                            };
                            synack_thread(work, i, n, clients, listener, shared.clone()).await
                        }
                        Stackname::Kernel => kernel_thread(work, i, n, shared.clone()).await,
                        Stackname::TokioSmoltcp => tsmol_thread(work, i, n, shared.clone()).await,
                        Stackname::SynackMt | Stackname::KernelMt => {
                            unreachable!("run_mt runs the multi-thread rows")
                        }
                    }
                };
                tokio::time::timeout(secs + WARM_UP + Duration::from_secs(30), work_done).await
            })
        }));
    }
    drop(built_tx);
    if stack == Stackname::Synack {
        let mut built: Vec<_> = built_rx.iter().take(n).collect();
        built.sort_by_key(|(i, _, _)| *i);
        let servers =
            StackSet::new(built.iter().map(|(_, s, _)| s.clone()).collect()).expect("server set");
        let clients =
            StackSet::new(built.iter().map(|(_, _, c)| c.clone()).collect()).expect("client set");
        let listener = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
            .block_on(servers.bind((SERVER, PORT)))
            .expect("bind");
        for (give, l) in handover.iter().zip(listener.into_shards()) {
            give.send((clients.clone(), l)).expect("thread gone");
        }
    }
    let rate = measure(&shared, secs);
    for t in threads {
        match t.join().expect("thread panicked") {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("{} {:?} with {n} threads: {e}", stack.name(), work),
            Err(_) => panic!("{} {:?} with {n} threads: stuck", stack.name(), work),
        }
    }
    rate
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s[s.len() / 2]
}

fn show(work: Work, rate: f64) -> String {
    match work {
        Work::Crr => format!("{rate:.0}"),
        Work::Bulk => format!("{:.2}", rate * 8.0 / 1e9),
    }
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick")
        || std::env::var_os("SYNACK_BENCH_QUICK").is_some();
    let secs = if quick {
        Duration::from_millis(200)
    } else {
        Duration::from_secs(1)
    };
    let stacks = [
        Stackname::Synack,
        Stackname::Kernel,
        Stackname::TokioSmoltcp,
        Stackname::SynackMt,
        Stackname::KernelMt,
    ];
    // The multi-thread rows run 2 shards only: their 1-core figure is the
    // thread-per-core one.
    let base = |stack| match stack {
        Stackname::SynackMt => Stackname::Synack,
        Stackname::KernelMt => Stackname::Kernel,
        other => other,
    };
    let mut cases = Vec::new();
    for work in [Work::Crr, Work::Bulk] {
        for stack in stacks {
            for n in [1, 2] {
                if n == 1 && base(stack) != stack {
                    continue;
                }
                cases.push((work, stack, n));
            }
        }
    }
    let mut samples = vec![Vec::new(); cases.len()];
    for round in 0..ROUNDS {
        for (k, &(work, stack, n)) in cases.iter().enumerate() {
            let rate = run(stack, work, n, secs);
            eprintln!(
                "round {}: {:?} {} with {n} thread(s): {}",
                round + 1,
                work,
                stack.name(),
                show(work, rate)
            );
            samples[k].push(rate);
        }
    }
    let med = |work: Work, stack: Stackname, n: usize| {
        let k = cases
            .iter()
            .position(|&c| c == (work, stack, n))
            .expect("case");
        median(&samples[k])
    };
    println!(
        "\nOne server on 1 and 2 cores, a thread per core: medians of {ROUNDS} rounds of {:.1} s\n",
        secs.as_secs_f64()
    );
    println!("| workload | stack | 1 core | 2 cores | 2 ÷ 1 | 2 cores: synack ÷ this |");
    println!("|---|---|---:|---:|---:|---:|");
    for work in [Work::Crr, Work::Bulk] {
        for stack in stacks {
            let one = med(work, base(stack), 1);
            let two = med(work, stack, 2);
            let vs = if base(stack) == Stackname::Synack {
                "—".to_string()
            } else {
                let ours = if stack == Stackname::KernelMt {
                    Stackname::SynackMt
                } else {
                    Stackname::Synack
                };
                format!("{:.2}", med(work, ours, 2) / two)
            };
            println!(
                "| {} | {} | {} | {} | {:.2} | {vs} |",
                work.name(),
                stack.name(),
                show(work, one),
                show(work, two),
                two / one
            );
        }
    }
    println!(
        "\nTarget (issue 15): synack on two shards ≥ 1.8× one, on both workloads (a thread per core)."
    );
}
