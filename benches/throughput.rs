//! Bulk throughput of one TCP flow: synack ↔ synack over a `MemoryLink`, next to
//! the kernel's TCP over loopback through `tokio::net`, smoltcp ↔ smoltcp over
//! the same `MemoryLink`, and tokio-smoltcp ↔ tokio-smoltcp (0.7, smoltcp behind
//! tokio's traits) over an in-memory channel link, in the same run.
//!
//! ```sh
//! cargo bench --bench throughput              # 1 GiB per flow
//! cargo bench --bench throughput -- --quick   # 16 MiB, a smoke test (or SYNACK_BENCH_QUICK=1)
//! cargo bench --bench throughput -- --verify  # also check every byte received
//! ```
//!
//! Each measurement is one connection moving the whole size one way: the sender
//! writes from a 64 KiB buffer and then shuts down; the receiver reads into a
//! 64 KiB buffer until end of stream. The clock runs from the sender's first
//! write (the connection is already established) to the receiver seeing end of
//! stream. Every case runs five times on a fresh connection (and, for synack,
//! fresh stacks and link), interleaved (round 1 of every case of a runtime,
//! then round 2, ...); the table gives the best and the median.
//!
//! synack runs with its default configuration (256 KiB socket buffers) on a
//! link with checksum offload (and once at MTU 1500 with checksums computed);
//! the kernel with its defaults on `lo`; tokio-smoltcp with its defaults, with
//! and without checksums.
//! smoltcp (0.14, the interop tests' `SmolHost`: one `Interface` per end, each in
//! a tokio task) runs with 256 KiB socket buffers too, Nagle on, and its
//! default 10 ms delayed ACK.
//! Runtimes: tokio multi-thread with 2 workers, and current-thread.

#[path = "../tests/common/smol.rs"]
mod smol;

#[path = "common/tsmol.rs"]
mod tsmol;

mod common;

use std::hint::black_box;
use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

use synack::device::{MemoryLink, MemoryLinkConfig};
use synack::{Config, Stack, State, TcpInfo};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use common::Flavor;

const SERVER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const CLIENT: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
/// Application buffer for every write and read.
const CHUNK: usize = 64 * 1024;
const REPS: usize = 5;
/// Longest any one flow may take before the benchmark gives up on it.
const DEADLINE: Duration = Duration::from_secs(60);

#[derive(Clone, Copy, PartialEq)]
enum Transport {
    Kernel,
    /// `coalesce`: `Config::coalesce_acks`, one ACK per received batch.
    /// `checksums`: computed and checked (else the link's offload).
    Synack {
        mtu: usize,
        coalesce: bool,
        checksums: bool,
    },
    Smoltcp {
        mtu: usize,
    },
    /// tokio-smoltcp 0.7 over an in-memory channel link.
    TokioSmoltcp {
        mtu: usize,
        checksums: bool,
    },
}

/// One run.
struct Sample {
    elapsed: Duration,
    /// The synack sender's counters once its FIN was acknowledged.
    info: Option<TcpInfo>,
}

struct Row {
    transport: Transport,
    flavor: Flavor,
    /// Gbit/s of each run.
    samples: Vec<f64>,
    /// synack only: retransmission timeouts and fast retransmits, over all runs.
    timeouts: u64,
    fast_retransmits: u64,
}

impl Row {
    fn sorted(&self) -> Vec<f64> {
        let mut s = self.samples.clone();
        s.sort_by(f64::total_cmp);
        s
    }
    fn best(&self) -> f64 {
        self.sorted().last().copied().unwrap_or(0.0)
    }
    fn median(&self) -> f64 {
        let s = self.sorted();
        s.get(s.len() / 2).copied().unwrap_or(0.0)
    }
}

struct Options {
    size: u64,
    verify: bool,
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // `cargo bench` passes `--bench`; other arguments are ignored too.
    let quick = args.iter().any(|a| a == "--quick")
        || std::env::var_os("SYNACK_BENCH_QUICK").is_some_and(|v| !v.is_empty() && v != "0");
    let opts = Options {
        size: if quick { 16 << 20 } else { 1 << 30 },
        verify: args.iter().any(|a| a == "--verify"),
    };
    eprintln!(
        "throughput: one flow of {} MiB, best and median of {REPS}{}{}",
        opts.size >> 20,
        if opts.verify { ", data verified" } else { "" },
        if quick { " (quick)" } else { "" },
    );

    let cases = [
        Transport::Kernel,
        Transport::Synack {
            mtu: 1500,
            coalesce: false,
            checksums: false,
        },
        Transport::Synack {
            mtu: 1500,
            coalesce: false,
            checksums: true,
        },
        Transport::Synack {
            mtu: 1500,
            coalesce: true,
            checksums: false,
        },
        Transport::Synack {
            mtu: 65535,
            coalesce: false,
            checksums: false,
        },
        Transport::Smoltcp { mtu: 1500 },
        Transport::Smoltcp { mtu: 65535 },
        Transport::TokioSmoltcp {
            mtu: 1500,
            checksums: false,
        },
        Transport::TokioSmoltcp {
            mtu: 1500,
            checksums: true,
        },
    ];
    let mut rows = Vec::new();
    for flavor in [Flavor::Multi, Flavor::Current] {
        let rt = flavor.runtime();
        let first = rows.len();
        rows.extend(cases.iter().map(|&transport| Row {
            transport,
            flavor,
            samples: Vec::new(),
            timeouts: 0,
            fast_retransmits: 0,
        }));
        // Interleaved: round 1 of every case, then round 2, ..., so a
        // neighbour's burst on this shared machine spreads over the cases
        // instead of sinking one.
        for _ in 0..REPS {
            for row in &mut rows[first..] {
                let transport = row.transport;
                let sample = rt
                    .block_on(run(transport, &opts))
                    .unwrap_or_else(|e| panic!("{} ({}): {e}", label(transport), flavor.name()));
                let elapsed = sample.elapsed;
                let gbit = opts.size as f64 * 8.0 / elapsed.as_secs_f64() / 1e9;
                let mut note = String::new();
                if let Some(i) = sample.info {
                    row.timeouts += i.timeouts;
                    row.fast_retransmits += i.fast_retransmits;
                    note = format!(
                        "  ({} segments, {} B retransmitted, {} RTO)",
                        i.segs_out, i.bytes_retrans, i.timeouts
                    );
                }
                eprintln!(
                    "  {:<38} {:<24} {:>7.3} s {gbit:>6.2} Gbit/s{note}",
                    label(transport),
                    flavor.name(),
                    elapsed.as_secs_f64()
                );
                row.samples.push(gbit);
            }
        }
    }
    print_table(&rows, &opts);
}

fn label(t: Transport) -> String {
    match t {
        Transport::Kernel => format!("kernel TCP, loopback (MTU {})", lo_mtu()),
        Transport::Synack {
            mtu,
            coalesce,
            checksums,
        } => format!(
            "synack ↔ synack, MemoryLink MTU {mtu}{}{}",
            if coalesce { ", coalesced ACKs" } else { "" },
            if checksums {
                ", checksums computed"
            } else {
                ""
            }
        ),
        Transport::Smoltcp { mtu } => format!("smoltcp ↔ smoltcp, MemoryLink MTU {mtu}"),
        Transport::TokioSmoltcp { mtu, checksums } => format!(
            "tokio-smoltcp ↔ tokio-smoltcp, channel link MTU {mtu}{}",
            if checksums {
                ", checksums computed"
            } else {
                ""
            }
        ),
    }
}

fn lo_mtu() -> String {
    std::fs::read_to_string("/sys/class/net/lo/mtu")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "?".into())
}

fn print_table(rows: &[Row], opts: &Options) {
    println!();
    println!(
        "One TCP flow, {} MiB, 64 KiB application reads and writes; Gbit/s of payload, best and median of {REPS} runs.",
        opts.size >> 20
    );
    println!();
    println!(
        "| flow | runtime | best Gbit/s | median Gbit/s | /kernel (best) | /kernel (median) | synack/smoltcp (median) | synack/tokio-smoltcp (median) | RTOs / fast retx |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|");
    for row in rows {
        let kernel = rows
            .iter()
            .find(|r| r.transport == Transport::Kernel && r.flavor == row.flavor);
        let ratio = |f: fn(&Row) -> f64| match (row.transport, kernel) {
            (Transport::Kernel, _) => "—".into(),
            (_, Some(k)) if f(k) > 0.0 => format!("{:.2}", f(row) / f(k)),
            _ => "—".into(),
        };
        // synack against smoltcp at the same MTU and runtime.
        let vs = |peer: Transport| {
            rows.iter()
                .find(|r| r.transport == peer && r.flavor == row.flavor)
                .filter(|r| r.median() > 0.0)
                .map(|r| format!("{:.2}", row.median() / r.median()))
                .unwrap_or_else(|| "—".into())
        };
        let (vs_smoltcp, vs_tsmol) = match row.transport {
            Transport::Synack { mtu, checksums, .. } => (
                vs(Transport::Smoltcp { mtu }),
                vs(Transport::TokioSmoltcp { mtu, checksums }),
            ),
            _ => ("—".into(), "—".into()),
        };
        let losses = match row.transport {
            Transport::Synack { .. } => format!("{} / {}", row.timeouts, row.fast_retransmits),
            _ => "—".into(),
        };
        println!(
            "| {} | {} | {:.2} | {:.2} | {} | {} | {vs_smoltcp} | {vs_tsmol} | {losses} |",
            label(row.transport),
            row.flavor.name(),
            row.best(),
            row.median(),
            ratio(Row::best),
            ratio(Row::median),
        );
    }
}

/// One flow over the given transport; returns the time from the first write to
/// the receiver's end of stream.
async fn run(transport: Transport, opts: &Options) -> io::Result<Sample> {
    let flow = async {
        match transport {
            Transport::Kernel => kernel_flow(opts).await,
            Transport::Synack {
                mtu,
                coalesce,
                checksums,
            } => synack_flow(mtu, coalesce, checksums, opts).await,
            Transport::Smoltcp { mtu } => smoltcp_flow(mtu, opts).await,
            Transport::TokioSmoltcp { mtu, checksums } => tsmol_flow(mtu, checksums, opts).await,
        }
    };
    tokio::time::timeout(DEADLINE, flow)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "the flow stalled"))?
}

async fn kernel_flow(opts: &Options) -> io::Result<Sample> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let receiver = tokio::spawn({
        let verify = opts.verify;
        async move {
            let (s, _) = listener.accept().await?;
            receive(s, verify).await
        }
    });
    let size = opts.size;
    let sender = tokio::spawn(async move {
        let mut s = tokio::net::TcpStream::connect(addr).await?;
        Ok((send(&mut s, size).await?, None))
    });
    finish(sender, receiver, opts.size).await
}

async fn synack_flow(
    mtu: usize,
    coalesce: bool,
    checksums: bool,
    opts: &Options,
) -> io::Result<Sample> {
    let (a, b) = MemoryLink::pair(
        MemoryLinkConfig::default()
            .with_mtu(mtu)
            .with_checksum_offload(!checksums),
    );
    let config = Config {
        coalesce_acks: coalesce,
        ..Config::default()
    };
    let server = Stack::builder(a, SERVER, 24).config(config.clone()).build();
    let client = Stack::builder(b, CLIENT, 24).config(config).build();
    let listener = synack::net::TcpListener::bind_on(&server, (SERVER, 5001)).await?;
    let receiver = tokio::spawn({
        let verify = opts.verify;
        async move {
            let (s, _) = listener.accept().await?;
            receive(s, verify).await
        }
    });
    let size = opts.size;
    // The sender task gets its own handle: the stacks must outlive the streams,
    // since a stack stops (dropping unsent data) when its last handle goes.
    let sender = tokio::spawn({
        let client = client.clone();
        async move {
            let mut s = synack::net::TcpStream::connect_on(&client, (SERVER, 5001)).await?;
            let start = send(&mut s, size).await?;
            Ok((start, Some(settle(&s).await?)))
        }
    });
    let elapsed = finish(sender, receiver, opts.size).await;
    drop((client, server));
    elapsed
}

/// smoltcp ↔ smoltcp over the same link as synack's flow.
/// tokio-smoltcp closes by `shutdown`, which returns once the socket is
/// closed (after TIME-WAIT for the side that closed first), and dropping its
/// stream removes the socket with whatever it had not sent: both ends hand
/// their stream to a task that shuts it down, outside the timed part.
async fn tsmol_flow(mtu: usize, checksums: bool, opts: &Options) -> io::Result<Sample> {
    let (a, b) = tsmol::link_pair(mtu, checksums);
    let server = tsmol::net(a, SERVER);
    let client = tsmol::net(b, CLIENT);
    let mut listener = server.tcp_bind(tsmol::addr(SERVER, 5001)).await?;
    let receiver = tokio::spawn({
        let verify = opts.verify;
        async move {
            let (mut s, _) = listener.accept().await?;
            let got = receive(&mut s, verify).await;
            tokio::spawn(async move { s.shutdown().await });
            got
        }
    });
    let size = opts.size;
    let mut s = client.tcp_connect(tsmol::addr(SERVER, 5001)).await?;
    let sender = tokio::spawn(async move {
        let start = write_pattern(&mut s, size).await?;
        tokio::spawn(async move { s.shutdown().await });
        Ok((start, None))
    });
    let elapsed = finish(sender, receiver, opts.size).await;
    drop((client, server));
    elapsed
}

async fn smoltcp_flow(mtu: usize, opts: &Options) -> io::Result<Sample> {
    let (a, b) = MemoryLink::pair(MemoryLinkConfig::default().with_mtu(mtu));
    let server = smol::SmolHost::spawn(a, SERVER, 24);
    let client = smol::SmolHost::spawn(b, CLIENT, 24);
    let mut listener = server.listen(5001)?;
    let receiver = tokio::spawn({
        let verify = opts.verify;
        async move {
            let s = listener.accept().await?;
            receive(s, verify).await
        }
    });
    let size = opts.size;
    let sender = tokio::spawn({
        let client = client.clone();
        async move {
            let mut s = client.connect(SocketAddrV4::new(SERVER, 5001)).await?;
            let start = send(&mut s, size).await?;
            // Outside the timed part: let smoltcp deliver the rest and the FIN.
            s.flush().await?;
            Ok((start, None))
        }
    });
    let elapsed = finish(sender, receiver, opts.size).await;
    drop((client, server));
    elapsed
}

type Task<T> = tokio::task::JoinHandle<io::Result<T>>;

/// Waits for both ends and checks the byte count.
async fn finish(
    sender: Task<(Instant, Option<TcpInfo>)>,
    receiver: Task<(u64, Instant)>,
    size: u64,
) -> io::Result<Sample> {
    let (start, info) = joined(sender).await?;
    let (got, end) = joined(receiver).await?;
    if got != size {
        return Err(io::Error::other(format!("received {got} bytes of {size}")));
    }
    Ok(Sample {
        elapsed: end.duration_since(start),
        info,
    })
}

/// After the sender's FIN: waits (outside the timed part) until everything is
/// acknowledged, and returns the sender's counters.
async fn settle(s: &synack::net::TcpStream) -> io::Result<TcpInfo> {
    let t = Instant::now();
    while !matches!(
        s.state()?,
        State::FinWait2 | State::TimeWait | State::Closed
    ) && t.elapsed() < Duration::from_secs(5)
    {
        tokio::time::sleep(Duration::from_micros(100)).await;
    }
    s.info()
}

async fn joined<T>(task: Task<T>) -> io::Result<T> {
    task.await.map_err(io::Error::other)?
}

/// The byte at offset `i` of the stream.
fn pattern_byte(i: usize) -> u8 {
    (i as u8).wrapping_mul(31) ^ (i >> 8) as u8
}

/// Writes `size` bytes in 64 KiB writes, then shuts down; returns when it started.
async fn send(s: &mut (impl AsyncWrite + Unpin), size: u64) -> io::Result<Instant> {
    let start = write_pattern(s, size).await?;
    s.shutdown().await?;
    Ok(start)
}

/// Writes `size` bytes of the pattern in 64 KiB writes; returns when it started.
async fn write_pattern(s: &mut (impl AsyncWrite + Unpin), size: u64) -> io::Result<Instant> {
    let buf: Vec<u8> = (0..CHUNK).map(pattern_byte).collect();
    let start = Instant::now();
    let mut left = size;
    while left > 0 {
        let n = left.min(CHUNK as u64) as usize;
        s.write_all(&buf[..n]).await?;
        left -= n as u64;
    }
    Ok(start)
}

/// Reads to end of stream in 64 KiB reads; returns the byte count and when it ended.
async fn receive(mut s: impl AsyncRead + Unpin, verify: bool) -> io::Result<(u64, Instant)> {
    let mut buf = vec![0u8; CHUNK];
    // Twice the period, so any read of up to CHUNK bytes compares against one slice.
    let expected: Vec<u8> = (0..2 * CHUNK).map(pattern_byte).collect();
    let mut total = 0u64;
    loop {
        let n = s.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        if verify {
            let at = (total % CHUNK as u64) as usize;
            if buf[..n] != expected[at..at + n] {
                return Err(io::Error::other(format!(
                    "data corrupted in bytes {total}..{}",
                    total + n as u64
                )));
            }
        }
        total += n as u64;
        black_box(&buf);
    }
    Ok((total, Instant::now()))
}
