//! An iperf-like tool between two synack stacks joined by a `MemoryLink`, in
//! one process, or between synack and the kernel's TCP over a TUN interface
//! (`--tun`): bulk throughput, 1-byte request/response, or connect/request/
//! close, with a live progress line and a final line with the sender's
//! `TcpInfo`.
//!
//! ```sh
//! cargo run --release --example perf                      # bulk, 10 s, MTU 1500
//! cargo run --release --example perf -- --rr --secs 5     # 1-byte round trips
//! cargo run --release --example perf -- --crr --mt        # connections, 2 workers
//! cargo run --release --example perf -- --bytes 64M --checksums   # fixed size, checksums computed
//! # synack (client, 198.51.100.2) against the kernel (server, 198.51.100.1)
//! # over a TUN interface, as root, in a network namespace of its own:
//! ip netns add synperf
//! ip netns exec synperf cargo run --release --example perf -- --tun --rr
//! ip netns del synperf
//! ```
//!
//! Options: `--bulk` (default), `--rr`, `--crr`; `--secs N` (default 10) or,
//! for bulk, `--bytes N[K|M|G]` instead; `--mtu N` (default 1500);
//! `--checksums` to compute and verify checksums (the link announces offload
//! otherwise); `--mt` for tokio's multi-thread runtime with 2 workers
//! (default current-thread); `--quiet` for the final line alone; `--tun`
//! for the kernel as the server, over a TUN interface `synperf0` that the
//! tool creates (it needs `CAP_NET_ADMIN`, gives the kernel's side
//! 198.51.100.1/24 with `ip addr`, and the interface goes when the tool
//! exits; checksums are computed, as a TUN device offloads none).
//!
//! A fixed `--bytes` run is what `valgrind --tool=callgrind` counts
//! instructions of (see the README's benchmark section).

use std::io::{self, Write as _};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use synack::device::{MemoryLink, MemoryLinkConfig};
use synack::net::{TcpListener, TcpStream};
use synack::{Stack, TcpInfo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SERVER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const CLIENT: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
const PORT: u16 = 5201;
const CHUNK: usize = 64 * 1024;

#[derive(Clone, Copy, PartialEq, Debug)]
enum Mode {
    Bulk,
    Rr,
    Crr,
}

#[derive(Clone, Copy, Debug)]
struct Options {
    mode: Mode,
    secs: u64,
    bytes: Option<u64>,
    mtu: usize,
    checksums: bool,
    mt: bool,
    quiet: bool,
    tun: bool,
}

fn usage(why: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!(
            "{why}\nusage: perf [--bulk|--rr|--crr] [--secs N | --bytes N[K|M|G]] [--mtu N] [--checksums] [--mt] [--quiet] [--tun]"
        ),
    )
}

fn parse_size(s: &str) -> Option<u64> {
    let (digits, mult) = match s.as_bytes().last()? {
        b'K' | b'k' => (&s[..s.len() - 1], 1 << 10),
        b'M' | b'm' => (&s[..s.len() - 1], 1 << 20),
        b'G' | b'g' => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    digits.parse::<u64>().ok()?.checked_mul(mult)
}

fn options() -> io::Result<Options> {
    let mut o = Options {
        mode: Mode::Bulk,
        secs: 10,
        bytes: None,
        mtu: 1500,
        checksums: false,
        mt: false,
        quiet: false,
        tun: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .ok_or_else(|| usage(&format!("{name} needs a value")))
        };
        match a.as_str() {
            "--bulk" => o.mode = Mode::Bulk,
            "--rr" => o.mode = Mode::Rr,
            "--crr" => o.mode = Mode::Crr,
            "--secs" => {
                o.secs = value("--secs")?
                    .parse()
                    .map_err(|_| usage("--secs takes whole seconds"))?;
            }
            "--bytes" => {
                let v = value("--bytes")?;
                o.bytes =
                    Some(parse_size(&v).ok_or_else(|| usage("--bytes takes N, NK, NM or NG"))?);
            }
            "--mtu" => {
                o.mtu = value("--mtu")?
                    .parse()
                    .map_err(|_| usage("--mtu takes a number of bytes"))?;
                if !(576..=65535).contains(&o.mtu) {
                    return Err(usage("--mtu must be within 576..=65535"));
                }
            }
            "--checksums" => o.checksums = true,
            "--mt" => o.mt = true,
            "--quiet" => o.quiet = true,
            "--tun" => o.tun = true,
            "-h" | "--help" => return Err(usage("synack perf")),
            other => return Err(usage(&format!("unknown argument {other}"))),
        }
    }
    if o.bytes.is_some() && o.mode != Mode::Bulk {
        return Err(usage("--bytes is for --bulk"));
    }
    Ok(o)
}

fn main() -> io::Result<()> {
    let o = options()?;
    let rt = if o.mt {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    };
    // The work runs as a spawned task: on the multi-thread runtime the
    // future `block_on` drives runs on this thread, outside the workers, and
    // every wake-up would cross threads.
    rt.block_on(async move { tokio::spawn(run(o)).await.map_err(io::Error::other)? })
}

/// A progress line on standard error, rewritten in place.
struct Progress {
    quiet: bool,
    start: Instant,
    next: Instant,
}

impl Progress {
    fn new(quiet: bool) -> Progress {
        let start = Instant::now();
        Progress {
            quiet,
            start,
            next: start + Duration::from_secs(1),
        }
    }

    /// Prints `line(elapsed)` once a second.
    fn tick(&mut self, line: impl FnOnce(Duration) -> String) {
        let now = Instant::now();
        if self.quiet || now < self.next {
            return;
        }
        self.next = now + Duration::from_secs(1);
        let mut err = io::stderr().lock();
        let _ = write!(err, "\r{}   ", line(now - self.start));
        let _ = err.flush();
    }

    fn done(&self) {
        if !self.quiet {
            eprintln!();
        }
    }
}

/// The server's listener: another synack stack's, or the kernel's.
enum Listener {
    Synack(TcpListener),
    Kernel(tokio::net::TcpListener),
}

/// A stream the server accepted.
trait Conn: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Conn for T {}

impl Listener {
    /// The next connection, with `TCP_NODELAY` set.
    async fn accept(&self) -> io::Result<Box<dyn Conn>> {
        Ok(match self {
            Listener::Synack(l) => {
                let (s, _) = l.accept().await?;
                s.set_nodelay(true)?;
                Box::new(s)
            }
            Listener::Kernel(l) => {
                let (s, _) = l.accept().await?;
                s.set_nodelay(true)?;
                Box::new(s)
            }
        })
    }
}

/// The kernel's side of the TUN interface.
#[cfg(all(target_os = "linux", feature = "tun"))]
const KERNEL: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
/// synack's side of the TUN interface.
#[cfg(all(target_os = "linux", feature = "tun"))]
const TUN_CLIENT: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 2);

/// synack on a new TUN interface, the kernel's side addressed and up, and
/// the kernel listening: (client stack, server address, listener).
#[cfg(all(target_os = "linux", feature = "tun"))]
async fn over_tun(o: &Options) -> io::Result<(Stack, Ipv4Addr, Listener)> {
    let tun = synack::device::Tun::create("synperf0", o.mtu).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("creating TUN interface synperf0 (needs CAP_NET_ADMIN): {e}"),
        )
    })?;
    let name = tun.name().to_string();
    let ip = |args: &[&str]| -> io::Result<()> {
        let status = std::process::Command::new("ip").args(args).status()?;
        if status.success() {
            Ok(())
        } else {
            Err(io::Error::other(format!("ip {} failed", args.join(" "))))
        }
    };
    ip(&["addr", "add", &format!("{KERNEL}/24"), "dev", &name])?;
    ip(&["link", "set", &name, "up"])?;
    let listener = tokio::net::TcpListener::bind((KERNEL, PORT)).await?;
    let client = Stack::new(tun, TUN_CLIENT, 24);
    Ok((client, KERNEL, Listener::Kernel(listener)))
}

#[cfg(not(all(target_os = "linux", feature = "tun")))]
async fn over_tun(_o: &Options) -> io::Result<(Stack, Ipv4Addr, Listener)> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "--tun needs Linux and synack's `tun` feature",
    ))
}

async fn run(o: Options) -> io::Result<()> {
    let (client, server_ip, listener) = if o.tun {
        over_tun(&o).await?
    } else {
        let link = MemoryLinkConfig::default()
            .with_mtu(o.mtu)
            .with_checksum_offload(!o.checksums);
        let (a, b) = MemoryLink::pair(link);
        let server = Stack::new(a, SERVER, 24);
        let client = Stack::new(b, CLIENT, 24);
        let listener = TcpListener::bind_on(&server, (SERVER, PORT)).await?;
        (client, SERVER, Listener::Synack(listener))
    };
    let what = match o.mode {
        Mode::Bulk => "bulk",
        Mode::Rr => "rr",
        Mode::Crr => "crr",
    };
    let runtime = if o.mt {
        "multi-thread, 2 workers"
    } else {
        "current-thread"
    };
    let checks = if o.checksums || o.tun {
        "checksums computed"
    } else {
        "checksum offload"
    };
    let peer = if o.tun {
        "synack -> the kernel over TUN"
    } else {
        "synack -> synack over a MemoryLink"
    };
    if !o.quiet {
        eprintln!(
            "synack perf: {what}, {peer}, MTU {}, {checks}, {runtime}",
            o.mtu
        );
    }
    let server = (server_ip, PORT);
    match o.mode {
        Mode::Bulk => bulk(o, &client, server, listener).await,
        Mode::Rr => rr(o, &client, server, listener).await,
        Mode::Crr => crr(o, &client, server, listener).await,
    }
}

fn info_line(i: &TcpInfo) -> String {
    let srtt = i.srtt.map_or_else(
        || "-".to_string(),
        |d| format!("{:.0} µs", d.as_secs_f64() * 1e6),
    );
    format!(
        "sender: segs_out {} retransmitted bytes {} timeouts {} fast retransmits {} srtt {srtt} cwnd {} B ({} segments of {})",
        i.segs_out,
        i.bytes_retrans,
        i.timeouts,
        i.fast_retransmits,
        i.cwnd,
        i.cwnd / i.snd_mss.max(1),
        i.snd_mss
    )
}

async fn bulk(
    o: Options,
    client: &Stack,
    server: (Ipv4Addr, u16),
    listener: Listener,
) -> io::Result<()> {
    let receiver = tokio::spawn(async move {
        let mut s = listener.accept().await?;
        let mut buf = vec![0u8; CHUNK];
        let mut total = 0u64;
        loop {
            let n = s.read(&mut buf).await?;
            if n == 0 {
                return io::Result::Ok(total);
            }
            total += n as u64;
        }
    });
    let mut s = TcpStream::connect_on(client, server).await?;
    let buf: Vec<u8> = (0..CHUNK).map(|i| (i % 251) as u8).collect();
    let deadline = Duration::from_secs(o.secs);
    let mut progress = Progress::new(o.quiet);
    let start = Instant::now();
    let mut sent = 0u64;
    loop {
        let n = match o.bytes {
            Some(total) if sent >= total => break,
            Some(total) => (total - sent).min(CHUNK as u64) as usize,
            None if start.elapsed() >= deadline => break,
            None => CHUNK,
        };
        s.write_all(&buf[..n]).await?;
        sent += n as u64;
        progress.tick(|t| {
            format!(
                "{:>5.1} s  {:>8.2} Gbit/s  {:>10} MiB",
                t.as_secs_f64(),
                sent as f64 * 8.0 / t.as_secs_f64() / 1e9,
                sent >> 20
            )
        });
    }
    s.shutdown().await?;
    let received = receiver.await.map_err(io::Error::other)??;
    let elapsed = start.elapsed();
    progress.done();
    if received != sent {
        return Err(io::Error::other(format!(
            "sent {sent} bytes, the receiver read {received}"
        )));
    }
    let info = s.info()?;
    println!(
        "bulk: {received} bytes in {:.3} s = {:.2} Gbit/s; {}",
        elapsed.as_secs_f64(),
        received as f64 * 8.0 / elapsed.as_secs_f64() / 1e9,
        info_line(&info)
    );
    Ok(())
}

async fn rr(
    o: Options,
    client: &Stack,
    server: (Ipv4Addr, u16),
    listener: Listener,
) -> io::Result<()> {
    let echo = tokio::spawn(async move {
        let mut s = listener.accept().await?;
        let mut b = [0u8; 1];
        while s.read(&mut b).await? == 1 {
            s.write_all(&b).await?;
        }
        io::Result::Ok(())
    });
    let mut s = TcpStream::connect_on(client, server).await?;
    s.set_nodelay(true)?;
    let deadline = Duration::from_secs(o.secs);
    let mut progress = Progress::new(o.quiet);
    let start = Instant::now();
    let mut n = 0u64;
    let mut b = [7u8; 1];
    while start.elapsed() < deadline {
        s.write_all(&b).await?;
        s.read_exact(&mut b).await?;
        n += 1;
        progress.tick(|t| {
            format!(
                "{:>5.1} s  {:>10.0} round trips/s",
                t.as_secs_f64(),
                n as f64 / t.as_secs_f64()
            )
        });
    }
    let elapsed = start.elapsed();
    let info = s.info()?;
    s.shutdown().await?;
    echo.await.map_err(io::Error::other)??;
    progress.done();
    println!(
        "rr: {n} round trips in {:.3} s = {:.0} /s; {}",
        elapsed.as_secs_f64(),
        n as f64 / elapsed.as_secs_f64(),
        info_line(&info)
    );
    Ok(())
}

async fn crr(
    o: Options,
    client: &Stack,
    server: (Ipv4Addr, u16),
    listener: Listener,
) -> io::Result<()> {
    // The server closes first, so TIME-WAIT stays on its side (as a web
    // server's would); the client's ports come round and reuse it (RFC 6191).
    let acceptor = tokio::spawn(async move {
        loop {
            let mut s = listener.accept().await?;
            tokio::spawn(async move {
                let mut b = [0u8; 1];
                if s.read_exact(&mut b).await.is_ok() {
                    let _ = s.write_all(&b).await;
                }
            });
        }
        #[allow(unreachable_code)]
        io::Result::Ok(())
    });
    let deadline = Duration::from_secs(o.secs);
    let mut progress = Progress::new(o.quiet);
    let start = Instant::now();
    let mut n = 0u64;
    let mut last = None;
    while start.elapsed() < deadline {
        let mut s = TcpStream::connect_on(client, server).await?;
        let mut b = [7u8; 1];
        s.write_all(&b).await?;
        s.read_exact(&mut b).await?;
        let mut rest = [0u8; 1];
        if s.read(&mut rest).await? != 0 {
            return Err(io::Error::other("the server sent more than one byte"));
        }
        last = Some(s.info()?);
        n += 1;
        progress.tick(|t| {
            format!(
                "{:>5.1} s  {:>10.0} connections/s",
                t.as_secs_f64(),
                n as f64 / t.as_secs_f64()
            )
        });
    }
    let elapsed = start.elapsed();
    acceptor.abort();
    progress.done();
    println!(
        "crr: {n} connections in {:.3} s = {:.0} /s; last {}",
        elapsed.as_secs_f64(),
        n as f64 / elapsed.as_secs_f64(),
        last.as_ref().map_or_else(String::new, info_line)
    );
    Ok(())
}
