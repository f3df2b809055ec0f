//! A tour of synack: two stacks in one process, joined by an in-memory link.
//!
//! ```sh
//! cargo run --release --example tour
//! cargo run --release --example tour -- --mtu 9000 --size 256 --pcap tour.pcap
//! ```
//!
//! The server stack is 192.0.2.1, the client stack 192.0.2.2. The client
//! connects, sends `--size` MiB (default 64) of a known pattern, and closes its
//! direction; the server checks every byte, answers with what it received, and
//! closes its own. The client's end of the link is wrapped in a [`Pcap`] whose
//! writer reads the capture as it streams by and keeps the handshake and the
//! teardown, so the tour can show the SYN, SYN-ACK and ACK as they went over the
//! wire and check them against both sides' initial sequence numbers.
//! `--pcap PATH` also writes the whole capture to PATH, for Wireshark or
//! `tcpdump -nr PATH`.
//!
//! Exits non-zero if anything did not go as TCP says it should.

use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, Write};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use smoltcp::wire::{IpProtocol, Ipv4Packet, TcpPacket};
use synack::device::{MemoryLink, MemoryLinkConfig, PCAP_MAGIC, Pcap};
use synack::net::{TcpListener, TcpStream};
use synack::{Stack, State, Stats, TcpInfo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;

const SERVER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const CLIENT: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
const PORT: u16 = 7;
/// Application buffer for reads and writes.
const CHUNK: usize = 64 * 1024;
/// Period of the data pattern: a prime, so no segment size lines up with it.
const PERIOD: usize = 1_000_003;
/// Upper bound on any one phase, generous enough for a debug build.
const DEADLINE: Duration = Duration::from_secs(120);

struct Options {
    mtu: usize,
    size: u64,
    pcap: Option<String>,
}

fn parse_args() -> Result<Options, String> {
    let mut opts = Options {
        mtu: 1500,
        size: 64 << 20,
        pcap: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--mtu" => {
                let v = value("--mtu")?;
                opts.mtu = v.parse().map_err(|_| format!("bad --mtu {v:?}"))?;
                if !(128..=65535).contains(&opts.mtu) {
                    return Err(format!("--mtu must be in 128..=65535, not {}", opts.mtu));
                }
            }
            "--size" => {
                let v = value("--size")?;
                let mib: u64 = v.parse().map_err(|_| format!("bad --size {v:?}"))?;
                opts.size = mib << 20;
            }
            "--pcap" => opts.pcap = Some(value("--pcap")?),
            "-h" | "--help" => {
                println!("usage: tour [--mtu N (1500)] [--size MiB (64)] [--pcap PATH]");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        }
    }
    Ok(opts)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    let opts = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("tour: {e}");
            return ExitCode::from(2);
        }
    };
    match run(opts).await {
        Ok(problems) if problems.is_empty() => {
            println!("\nall good.");
            ExitCode::SUCCESS
        }
        Ok(problems) => {
            eprintln!();
            for p in &problems {
                eprintln!("FAILED: {p}");
            }
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("\nFAILED: {e}");
            ExitCode::FAILURE
        }
    }
}

/// What the server task hands back.
struct Received {
    stream: TcpStream,
    bytes: u64,
    first_mismatch: Option<u64>,
    done: Instant,
}

/// Runs the tour; returns the list of things that went wrong.
async fn run(opts: Options) -> io::Result<Vec<String>> {
    let mut problems = Vec::new();
    let pattern = pattern();

    // The wire, with a capture on the client's end.
    let (server_end, client_end) = MemoryLink::pair(MemoryLinkConfig::default().with_mtu(opts.mtu));
    let file = match &opts.pcap {
        Some(path) => Some(File::create(path)?),
        None => None,
    };
    let (capture_tx, capture_rx) = oneshot::channel();
    let client_end = Pcap::with_writer(client_end, Tap::new(file, capture_tx))?;
    let server = Stack::new(server_end, SERVER, 24);
    let client = Stack::new(client_end, CLIENT, 24);

    println!(
        "synack tour: two stacks over an in-memory link (MTU {})",
        opts.mtu
    );
    println!(
        "  server {SERVER}:{PORT}, client {CLIENT}; sending {} ...",
        mib(opts.size)
    );

    // 1. Handshake.
    let listener = TcpListener::bind_on(&server, (SERVER, PORT)).await?;
    let (pattern2, size) = (pattern.clone(), opts.size);
    let server_task = tokio::spawn(async move {
        let (stream, _peer) = listener.accept().await?;
        serve(stream, &pattern2, size).await
    });
    let t_connect = Instant::now();
    let mut conn = timeout("connect", TcpStream::connect_on(&client, (SERVER, PORT))).await??;
    let connect_time = t_connect.elapsed();
    let (client_iss, client_irs) = conn.initial_sequence_numbers()?;
    let local = match conn.local_addr()? {
        std::net::SocketAddr::V4(a) => a,
        other => {
            return Err(io::Error::other(format!(
                "unexpected local address {other}"
            )));
        }
    };

    // 2. Data, client to server, then close: the client's FIN follows the data;
    // the server answers with what it got and closes its direction in turn.
    let t0 = Instant::now();
    let sent = match tokio::time::timeout(DEADLINE, send(&mut conn, &pattern, opts.size)).await {
        Ok(sent) => sent?,
        Err(_) => {
            let info = conn.info()?;
            return Err(io::Error::other(format!("sending stalled: {info:?}")));
        }
    };
    conn.shutdown().await?;
    let mut reply = Vec::new();
    timeout("reading the reply", conn.read_to_end(&mut reply)).await??;
    let received = timeout("the server", server_task)
        .await?
        .map_err(io::Error::other)??;
    let elapsed = received.done.duration_since(t0);
    let (server_iss, server_irs) = received.stream.initial_sequence_numbers()?;

    // 3. Wait for the last ACK: the server leaves LAST-ACK for CLOSED, the
    // client (which closed first) sits in TIME-WAIT.
    let settled = Instant::now();
    while received.stream.state()? != State::Closed && settled.elapsed() < Duration::from_secs(2) {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let side = |stream: &TcpStream, stack: &Stack| -> io::Result<Side> {
        Ok(Side {
            info: stream.info()?,
            state: stream.state()?,
            stats: stack.stats(),
        })
    };
    let c = side(&conn, &client)?;
    let s = side(&received.stream, &server)?;

    // Let both stacks go; the client's capture is flushed as its device drops.
    drop((conn, received.stream, client, server));
    let wire = timeout("the capture", capture_rx)
        .await?
        .map_err(|_| io::Error::other("the capture was never closed"))?;

    // ---- Report ----
    println!("\n1. handshake (connect took {})", micros(connect_time));
    println!("  client ISS {client_iss:>10}   client IRS {client_irs:>10}");
    println!("  server ISS {server_iss:>10}   server IRS {server_irs:>10}");
    println!("  on the wire (pcap of the client's end):");
    let isn = Isn {
        client: client_iss,
        server: server_iss,
        local,
        wscale: match &wire.head[..] {
            [syn, syn_ack, ..] => syn.wscale.zip(syn_ack.wscale),
            _ => None,
        },
    };
    for seg in wire.head.iter().take(3) {
        println!("    {}", seg.show(&isn, wire.t0));
    }
    check_handshake(&wire, &isn, &mut problems);
    if client_irs != server_iss || server_irs != client_iss {
        problems.push(format!(
            "ISNs disagree: client (ISS {client_iss}, IRS {client_irs}), server (ISS {server_iss}, IRS {server_irs})"
        ));
    }
    if problems.is_empty() {
        println!(
            "  SYN.seq = client ISS, SYN-ACK.seq = server ISS, each ACK = the other's ISS + 1: ok"
        );
    }

    println!("\n2. transfer");
    let gbit = received.bytes as f64 * 8.0 / elapsed.as_secs_f64() / 1e9;
    println!(
        "  {} client -> server in {:.3} s: {gbit:.2} Gbit/s",
        mib(received.bytes),
        elapsed.as_secs_f64()
    );
    match received.first_mismatch {
        None if received.bytes == sent => println!("  every byte checked against the pattern: ok"),
        None => problems.push(format!("server got {} bytes of {sent}", received.bytes)),
        Some(at) => problems.push(format!("data corrupted at byte {at}")),
    }
    let expected_reply = reply_bytes(sent, true);
    if reply != expected_reply {
        problems.push(format!("bad reply from the server: {reply:?}"));
    }

    println!("\n3. close");
    for seg in &wire.tail {
        println!("    {}", seg.show(&isn, wire.t0));
    }
    if wire.tail_truncated {
        println!("    ...");
    }
    if c.state != State::TimeWait {
        problems.push(format!("client ended in {:?}, not TimeWait", c.state));
    }
    if s.state != State::Closed {
        problems.push(format!("server ended in {:?}, not Closed", s.state));
    }
    if wire.rsts > 0 {
        problems.push(format!("{} RST segments on the wire", wire.rsts));
    }

    println!("\n4. counters");
    print_sides(&c, &s);
    println!(
        "  capture: {} packets, {} of TCP payload{}",
        wire.packets,
        mib(wire.payload),
        opts.pcap
            .as_deref()
            .map(|p| format!(", written to {p}"))
            .unwrap_or_default()
    );
    if let Some(e) = &wire.file_error {
        problems.push(format!("writing the pcap file failed: {e}"));
    }
    if wire.unparsed > 0 {
        problems.push(format!(
            "{} captured packets are not IPv4/TCP",
            wire.unparsed
        ));
    }
    let buffer = synack::Config::default().recv_buffer as u32;
    for &(addr, _, max) in &wire.senders {
        let who = if addr == local { "client" } else { "server" };
        println!(
            "  largest window the {who} advertised: {max} bytes (its receive buffer: {buffer})"
        );
        if max > buffer {
            println!("  note: the {who} offered more window than it has buffer for");
        }
    }
    let retrans = c.info.bytes_retrans + s.info.bytes_retrans;
    if retrans > 0 {
        println!("  note: {retrans} bytes retransmitted on a link that loses nothing");
    }
    Ok(problems)
}

/// Server side: reads until EOF, checking the pattern, then replies and closes.
async fn serve(mut stream: TcpStream, pattern: &[u8], expected: u64) -> io::Result<Received> {
    let mut buf = vec![0u8; CHUNK];
    let mut bytes = 0u64;
    let mut first_mismatch = None;
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        let at = (bytes % PERIOD as u64) as usize;
        if first_mismatch.is_none() && buf[..n] != pattern[at..at + n] {
            let off = buf[..n]
                .iter()
                .zip(&pattern[at..at + n])
                .position(|(a, b)| a != b)
                .unwrap_or(0);
            first_mismatch = Some(bytes + off as u64);
        }
        bytes += n as u64;
    }
    let done = Instant::now();
    let ok = first_mismatch.is_none() && bytes == expected;
    stream.write_all(&reply_bytes(bytes, ok)).await?;
    stream.shutdown().await?;
    Ok(Received {
        stream,
        bytes,
        first_mismatch,
        done,
    })
}

/// The server's answer: the byte count and whether the data checked out.
fn reply_bytes(bytes: u64, ok: bool) -> Vec<u8> {
    let mut r = bytes.to_be_bytes().to_vec();
    r.push(ok as u8);
    r
}

/// Client side: writes `size` bytes of the pattern in `CHUNK`-sized writes.
async fn send(stream: &mut TcpStream, pattern: &[u8], size: u64) -> io::Result<u64> {
    let mut sent = 0u64;
    while sent < size {
        let n = (size - sent).min(CHUNK as u64) as usize;
        let at = (sent % PERIOD as u64) as usize;
        stream.write_all(&pattern[at..at + n]).await?;
        sent += n as u64;
    }
    Ok(sent)
}

/// `PERIOD` pseudo-random bytes, plus one chunk repeated so that any chunk
/// starting within the period is one contiguous slice.
fn pattern() -> Vec<u8> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut p: Vec<u8> = (0..PERIOD)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 32) as u8
        })
        .collect();
    p.extend_from_within(..CHUNK);
    p
}

async fn timeout<F: Future>(what: &str, f: F) -> io::Result<F::Output> {
    tokio::time::timeout(DEADLINE, f)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, format!("{what} stalled")))
}

// ---------------------------------------------------------------------------
// Counters
// ---------------------------------------------------------------------------

struct Side {
    info: TcpInfo,
    state: State,
    stats: Stats,
}

/// A row of the counters table: its name and how to get the value of one side.
type Row = (&'static str, fn(&Side) -> String);

fn print_sides(c: &Side, s: &Side) {
    let rows: [Row; 11] = [
        ("segments sent", |x| x.info.segs_out.to_string()),
        ("segments received", |x| x.info.segs_in.to_string()),
        ("payload bytes sent", |x| x.info.bytes_sent.to_string()),
        ("payload bytes received", |x| {
            x.info.bytes_received.to_string()
        }),
        ("bytes retransmitted", |x| x.info.bytes_retrans.to_string()),
        ("RTO fired / fast retx", |x| {
            format!("{} / {}", x.info.timeouts, x.info.fast_retransmits)
        }),
        ("srtt", |x| x.info.srtt.map(micros).unwrap_or("-".into())),
        ("cwnd", |x| format!("{} KiB", x.info.cwnd / 1024)),
        ("stack packets out", |x| x.stats.tx_packets.to_string()),
        ("stack packets in", |x| x.stats.rx_packets.to_string()),
        ("final state", |x| format!("{:?}", x.state)),
    ];
    println!("  {:<24}{:>14}{:>14}", "", "client", "server");
    for (name, f) in rows {
        println!("  {name:<24}{:>14}{:>14}", f(c), f(s));
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1 << 20) as f64)
}

fn micros(d: Duration) -> String {
    format!("{} µs", d.as_micros())
}

// ---------------------------------------------------------------------------
// The capture: a pcap writer that parses what it is given
// ---------------------------------------------------------------------------

/// What the capture showed.
#[derive(Default)]
struct Wire {
    /// The first packets.
    head: Vec<Seg>,
    /// The close: every FIN, the ACK of each FIN, data and RSTs sent after
    /// the first FIN (up to a limit); not the ACKs of data still in flight.
    tail: Vec<Seg>,
    tail_truncated: bool,
    /// The sequence number each FIN seen so far occupies, by sender, until
    /// its ACK is seen.
    fins: Vec<(SocketAddrV4, u32)>,
    /// Timestamp of the first packet.
    t0: Duration,
    packets: u64,
    payload: u64,
    rsts: u64,
    unparsed: u64,
    file_error: Option<io::Error>,
    /// Per sender: the window shift its SYN offered, and the largest window
    /// (in bytes, scaled once both SYNs offered scaling) it advertised after it.
    senders: Vec<(SocketAddrV4, Option<u8>, u32)>,
    /// Bytes not yet parsed (a record split across writes).
    pending: Vec<u8>,
    header_done: bool,
}

const HEAD: usize = 3;
const TAIL: usize = 12;

/// One captured TCP segment.
#[derive(Clone)]
struct Seg {
    ts: Duration,
    src: SocketAddrV4,
    dst: SocketAddrV4,
    syn: bool,
    ack: bool,
    fin: bool,
    rst: bool,
    seq: u32,
    ack_no: u32,
    len: usize,
    window: u16,
    mss: Option<u16>,
    wscale: Option<u8>,
    /// SACK permitted (RFC 2018), in a SYN.
    sack_ok: bool,
    /// The timestamps option (RFC 7323): TSval, TSecr.
    timestamp: Option<(u32, u32)>,
}

/// The `Write` given to [`Pcap`]: parses the records, optionally copies them to
/// a file, and hands the result over when the capture is dropped.
struct Tap {
    wire: Wire,
    file: Option<File>,
    done: Option<oneshot::Sender<Wire>>,
}

impl Tap {
    fn new(file: Option<File>, done: oneshot::Sender<Wire>) -> Tap {
        Tap {
            wire: Wire::default(),
            file,
            done: Some(done),
        }
    }
}

impl Write for Tap {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Some(f) = &mut self.file
            && let Err(e) = f.write_all(buf)
        {
            self.wire.file_error = Some(e);
            self.file = None;
        }
        self.wire.feed(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for Tap {
    fn drop(&mut self) {
        if let Some(f) = &mut self.file
            && let Err(e) = f.flush()
        {
            self.wire.file_error = Some(e);
        }
        if let Some(done) = self.done.take() {
            let _ = done.send(std::mem::take(&mut self.wire));
        }
    }
}

impl Wire {
    fn feed(&mut self, buf: &[u8]) {
        if self.pending.is_empty() {
            let used = self.records(buf);
            self.pending.extend_from_slice(&buf[used..]);
        } else {
            let mut data = std::mem::take(&mut self.pending);
            data.extend_from_slice(buf);
            let used = self.records(&data);
            data.drain(..used);
            self.pending = data;
        }
    }

    /// Parses the complete records at the start of `data`; returns the bytes used.
    fn records(&mut self, data: &[u8]) -> usize {
        let u32_at = |at: usize| u32::from_le_bytes(data[at..at + 4].try_into().unwrap());
        let mut at = 0;
        if !self.header_done {
            if data.len() < 24 {
                return 0;
            }
            assert_eq!(u32_at(0), PCAP_MAGIC, "not a pcap stream");
            self.header_done = true;
            at = 24;
        }
        while data.len() - at >= 16 {
            let caplen = u32_at(at + 8) as usize;
            if data.len() - at - 16 < caplen {
                break;
            }
            let ts = Duration::from_secs(u32_at(at).into())
                + Duration::from_micros(u32_at(at + 4).into());
            self.packet(ts, &data[at + 16..at + 16 + caplen]);
            at += 16 + caplen;
        }
        at
    }

    fn packet(&mut self, ts: Duration, data: &[u8]) {
        if self.packets == 0 {
            self.t0 = ts;
        }
        self.packets += 1;
        let Some(seg) = Seg::parse(ts, data) else {
            self.unparsed += 1;
            return;
        };
        self.payload += seg.len as u64;
        if seg.syn {
            self.senders.push((seg.src, seg.wscale, 0));
        } else {
            let both = self.senders.len() == 2 && self.senders.iter().all(|s| s.1.is_some());
            if let Some(s) = self.senders.iter_mut().find(|s| s.0 == seg.src) {
                let shift = if both { s.1.unwrap_or(0) } else { 0 };
                s.2 = s.2.max(u32::from(seg.window) << shift);
            }
        }
        self.rsts += seg.rst as u64;
        if self.head.len() < HEAD {
            self.head.push(seg.clone());
        }
        let closing = !self.tail.is_empty();
        let acks_a_fin = seg.ack
            && self
                .fins
                .iter()
                .any(|&(from, fin_seq)| from == seg.dst && seg.ack_no == fin_seq.wrapping_add(1));
        if seg.fin || (closing && (acks_a_fin || seg.len > 0 || seg.rst)) {
            if seg.fin {
                self.fins
                    .push((seg.src, seg.seq.wrapping_add(seg.len as u32)));
            }
            if acks_a_fin {
                self.fins.retain(|&(from, fin_seq)| {
                    !(from == seg.dst && seg.ack_no == fin_seq.wrapping_add(1))
                });
            }
            if self.tail.len() < TAIL {
                self.tail.push(seg);
            } else {
                self.tail_truncated = true;
            }
        }
    }
}

impl Seg {
    fn parse(ts: Duration, data: &[u8]) -> Option<Seg> {
        let ip = Ipv4Packet::new_checked(data).ok()?;
        if ip.next_header() != IpProtocol::Tcp {
            return None;
        }
        let tcp = TcpPacket::new_checked(ip.payload()).ok()?;
        let opts = tcp.options_summary().ok()?;
        Some(Seg {
            ts,
            src: SocketAddrV4::new(ip.src_addr(), tcp.src_port()),
            dst: SocketAddrV4::new(ip.dst_addr(), tcp.dst_port()),
            syn: tcp.syn(),
            ack: tcp.ack(),
            fin: tcp.fin(),
            rst: tcp.rst(),
            seq: tcp.seq_number().0 as u32,
            ack_no: tcp.ack_number().0 as u32,
            len: tcp.payload().len(),
            window: tcp.window_len(),
            mss: opts.max_segment_size,
            wscale: opts.window_scale,
            sack_ok: opts.sack_permitted,
            timestamp: opts.timestamp,
        })
    }

    fn flags(&self) -> String {
        let mut f: Vec<&str> = Vec::new();
        if self.syn {
            f.push("SYN");
        }
        if self.fin {
            f.push("FIN");
        }
        if self.rst {
            f.push("RST");
        }
        if self.ack {
            f.push("ACK");
        }
        f.join("-")
    }

    /// One line, tcpdump-like, with sequence numbers also shown relative to the ISNs.
    fn show(&self, isn: &Isn, t0: Duration) -> String {
        let from_client = self.src == isn.local;
        let (mine, theirs) = if from_client {
            (("client", isn.client), ("server", isn.server))
        } else {
            (("server", isn.server), ("client", isn.client))
        };
        let rel = |(who, base): (&str, u32), n: u32| match n.wrapping_sub(base) {
            0 => format!("{who} ISS"),
            d => format!("{who} ISS+{d}"),
        };
        let mut line = format!(
            "{:>9} {:<8} {:<21} > {:<21} seq={:<10} ({})",
            format!("+{}µs", self.ts.saturating_sub(t0).as_micros()),
            self.flags(),
            self.src.to_string(),
            self.dst.to_string(),
            self.seq,
            rel(mine, self.seq),
        );
        if self.ack {
            let _ = write!(line, " ack={} ({})", self.ack_no, rel(theirs, self.ack_no));
        }
        if self.len > 0 {
            let _ = write!(line, " len={}", self.len);
        }
        // Window scaling applies once both SYNs carried the option (RFC 7323 §2.2).
        let shift = match (self.syn, isn.wscale) {
            (false, Some((c, s))) => u32::from(if from_client { c } else { s }),
            _ => 0,
        };
        let _ = write!(line, " win={}", u32::from(self.window) << shift);
        if let Some(mss) = self.mss {
            let _ = write!(line, " mss={mss}");
        }
        if let Some(ws) = self.wscale {
            let _ = write!(line, " wscale={ws}");
        }
        if self.sack_ok {
            line.push_str(" sackOK");
        }
        if let Some((tsval, tsecr)) = self.timestamp
            && self.syn
        {
            let _ = write!(line, " TS val {tsval} ecr {tsecr}");
        }
        line
    }
}

/// What the captured segments are checked against.
struct Isn {
    client: u32,
    server: u32,
    /// The client's address: tells the direction of a segment.
    local: SocketAddrV4,
    /// The window shifts of client and server, if both SYNs offered scaling.
    wscale: Option<(u8, u8)>,
}

fn check_handshake(wire: &Wire, isn: &Isn, problems: &mut Vec<String>) {
    let [syn, syn_ack, ack] = match &wire.head[..] {
        [a, b, c] => [a, b, c],
        _ => {
            problems.push(format!("captured only {} packets", wire.head.len()));
            return;
        }
    };
    let mut expect = |what: &str, ok: bool| {
        if !ok {
            problems.push(format!("handshake: {what}"));
        }
    };
    expect(
        "first packet is a SYN from the client",
        syn.syn && !syn.ack && syn.src == isn.local,
    );
    expect("SYN.seq is the client's ISS", syn.seq == isn.client);
    expect(
        "second packet is a SYN-ACK",
        syn_ack.syn && syn_ack.ack && syn_ack.dst == isn.local,
    );
    expect("SYN-ACK.seq is the server's ISS", syn_ack.seq == isn.server);
    expect(
        "SYN-ACK.ack is the client's ISS + 1",
        syn_ack.ack_no == isn.client.wrapping_add(1),
    );
    expect(
        "third packet is an ACK from the client",
        ack.ack && !ack.syn && ack.src == isn.local,
    );
    expect(
        "ACK.seq is the client's ISS + 1",
        ack.seq == isn.client.wrapping_add(1),
    );
    expect(
        "ACK.ack is the server's ISS + 1",
        ack.ack_no == isn.server.wrapping_add(1),
    );
}
