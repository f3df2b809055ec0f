//! 1-byte request/response on one connection: synack ↔ synack over a
//! `MemoryLink`, tokio-smoltcp ↔ tokio-smoltcp over an in-memory channel
//! link, and the kernel's TCP over loopback through `tokio::net`, each
//! through its async API, in the same run.
//!
//! ```sh
//! cargo bench --bench rr              # 5 rounds of 1 s per case
//! cargo bench --bench rr -- --quick   # 5 rounds of 0.2 s (or SYNACK_BENCH_QUICK=1)
//! ```
//!
//! A round trip is: the client writes one byte, the server reads it and
//! writes it back, the client reads it. Both ends set `TCP_NODELAY` (where
//! the stack has it). Each case runs on a fresh runtime and fresh stacks;
//! the connection is set up before the clock starts. Rounds are interleaved
//! (round 1 of every case, then round 2, ...) so a slow spell of the machine
//! spreads over all cases; the table gives the median and the range of the
//! round trips per second, and the ratios of the medians.

#[path = "common/tsmol.rs"]
mod tsmol;

mod common;

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use synack::Stack;
use synack::device::{MemoryLink, MemoryLinkConfig};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use common::Flavor;

const SERVER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const CLIENT: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
const PORT: u16 = 5002;
const ROUNDS: usize = 5;

#[derive(Clone, Copy, PartialEq)]
enum Transport {
    Kernel,
    Synack,
    TokioSmoltcp,
}

impl Transport {
    fn name(self) -> &'static str {
        match self {
            Transport::Kernel => "kernel TCP, loopback",
            Transport::Synack => "synack ↔ synack, MemoryLink",
            Transport::TokioSmoltcp => "tokio-smoltcp ↔ tokio-smoltcp, channel link",
        }
    }
}

/// Ping-pongs one byte on `(client, server)` for `secs`: round trips per second.
async fn ping_pong<C, S>(mut client: C, mut server: S, secs: Duration) -> io::Result<f64>
where
    C: AsyncRead + AsyncWrite + Unpin,
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let echo = tokio::spawn(async move {
        let mut b = [0u8; 1];
        while server.read(&mut b).await? == 1 {
            server.write_all(&b).await?;
        }
        io::Result::Ok(())
    });
    let mut b = [7u8; 1];
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < secs {
        client.write_all(&b).await?;
        client.read_exact(&mut b).await?;
        n += 1;
    }
    let rate = n as f64 / start.elapsed().as_secs_f64();
    // The echo task is done with: how each stack closes is not measured.
    echo.abort();
    drop(client);
    Ok(rate)
}

async fn kernel(secs: Duration) -> io::Result<f64> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (client, accepted) = tokio::join!(tokio::net::TcpStream::connect(addr), listener.accept());
    let (client, (server, _)) = (client?, accepted?);
    client.set_nodelay(true)?;
    server.set_nodelay(true)?;
    ping_pong(client, server, secs).await
}

async fn synack(secs: Duration) -> io::Result<f64> {
    let (a, b) = MemoryLink::pair(MemoryLinkConfig::default());
    let server_stack = Stack::new(a, SERVER, 24);
    let client_stack = Stack::new(b, CLIENT, 24);
    let listener = synack::net::TcpListener::bind_on(&server_stack, (SERVER, PORT)).await?;
    let (client, accepted) = tokio::join!(
        synack::net::TcpStream::connect_on(&client_stack, (SERVER, PORT)),
        listener.accept()
    );
    let (client, (server, _)) = (client?, accepted?);
    client.set_nodelay(true)?;
    server.set_nodelay(true)?;
    let rate = ping_pong(client, server, secs).await;
    drop((client_stack, server_stack));
    rate
}

async fn tokio_smoltcp(secs: Duration) -> io::Result<f64> {
    let (a, b) = tsmol::link_pair(1500, false);
    let server_net = tsmol::net(a, SERVER);
    let client_net = tsmol::net(b, CLIENT);
    let mut listener = server_net.tcp_bind(tsmol::addr(SERVER, PORT)).await?;
    let server_addr: SocketAddr = tsmol::addr(SERVER, PORT);
    let (client, accepted) = tokio::join!(client_net.tcp_connect(server_addr), listener.accept());
    let (client, (server, _)) = (client?, accepted?);
    let rate = ping_pong(client, server, secs).await;
    drop((client_net, server_net));
    rate
}

fn run(t: Transport, flavor: Flavor, secs: Duration) -> f64 {
    let rt = flavor.runtime();
    // A spawned task, as a server's: on the multi-thread runtime the future
    // `block_on` drives runs outside the workers, every wake-up a thread hop.
    let r = rt.block_on(async move {
        let run = async move {
            match t {
                Transport::Kernel => kernel(secs).await,
                Transport::Synack => synack(secs).await,
                Transport::TokioSmoltcp => tokio_smoltcp(secs).await,
            }
        };
        tokio::spawn(tokio::time::timeout(secs + Duration::from_secs(30), run))
            .await
            .expect("the case panicked")
    });
    match r {
        Ok(Ok(rate)) => rate,
        Ok(Err(e)) => panic!("{} on {}: {e}", t.name(), flavor.name()),
        Err(_) => panic!("{} on {}: no progress within 30 s", t.name(), flavor.name()),
    }
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s[s.len() / 2]
}

/// `n` with thin spaces between thousands.
fn grouped(n: f64) -> String {
    let s = format!("{:.0}", n);
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick")
        || std::env::var_os("SYNACK_BENCH_QUICK").is_some();
    let secs = if quick {
        Duration::from_millis(200)
    } else {
        Duration::from_secs(1)
    };
    let cases: Vec<(Transport, Flavor)> = [Flavor::Current, Flavor::Multi]
        .into_iter()
        .flat_map(|f| {
            [
                Transport::Kernel,
                Transport::Synack,
                Transport::TokioSmoltcp,
            ]
            .into_iter()
            .map(move |t| (t, f))
        })
        .collect();
    let mut samples = vec![Vec::new(); cases.len()];
    for round in 0..ROUNDS {
        for (i, &(t, f)) in cases.iter().enumerate() {
            let rate = run(t, f, secs);
            eprintln!(
                "round {}: {} on {}: {:.0}/s",
                round + 1,
                t.name(),
                f.name(),
                rate
            );
            samples[i].push(rate);
        }
    }
    let med = |t: Transport, f: Flavor| {
        let i = cases.iter().position(|&c| c == (t, f)).expect("case");
        median(&samples[i])
    };
    println!(
        "\n1-byte request/response, one connection: round trips per second, median and range of {ROUNDS} rounds of {:.1} s\n",
        secs.as_secs_f64()
    );
    println!(
        "| stack | runtime | round trips/s | range | /kernel | synack/tokio-smoltcp | mt ÷ ct |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|");
    for (i, &(t, f)) in cases.iter().enumerate() {
        let m = median(&samples[i]);
        let lo = samples[i].iter().copied().fold(f64::INFINITY, f64::min);
        let hi = samples[i].iter().copied().fold(0.0, f64::max);
        let vs_kernel = if t == Transport::Kernel {
            "—".to_string()
        } else {
            format!("{:.2}", m / med(Transport::Kernel, f))
        };
        let vs_smol = if t == Transport::Synack {
            format!("{:.2}", m / med(Transport::TokioSmoltcp, f))
        } else {
            "—".to_string()
        };
        let mt_ct = if f == Flavor::Multi {
            format!("{:.2}", m / med(t, Flavor::Current))
        } else {
            "—".to_string()
        };
        println!(
            "| {} | {} | {} | {} – {} | {vs_kernel} | {vs_smol} | {mt_ct} |",
            t.name(),
            f.name(),
            grouped(m),
            grouped(lo),
            grouped(hi)
        );
    }
    println!(
        "\nTargets (issue 15): synack ≥ 3× the kernel on the current-thread runtime; multi-thread ≥ 0.9× current-thread."
    );
}
