//! Target `stack`: two [`Stack`]s over a [`MemoryLink`], driven through the
//! tokio-level API by an arbitrary script on a paused clock — the front
//! end's wakers, locks, driver tasks and handle drops, not only the engine.
//!
//! Checked, besides "no panic and no hang":
//! - every byte read is the byte its writer wrote at that offset of that
//!   connection (each direction carries a pattern keyed by its 4-tuple),
//!   never more than was written;
//! - end of stream comes only after the writer shut down or closed, and
//!   exactly after every byte it wrote;
//! - a UDP datagram arrives whole, from the other stack;
//! - once the script ends and every handle is dropped, both stacks are
//!   empty within two simulated hours: no connection is leaked.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::io::{self, ErrorKind};
use std::net::{Ipv4Addr, SocketAddr};
use std::rc::Rc;
use std::time::Duration;

use synack::net::{TcpListener, TcpStream, UdpSocket};
use synack::{Config, Keepalive, Stack};
use synack_device::{MemoryLink, MemoryLinkConfig};
use tokio::io::AsyncWriteExt;

use crate::Reader;

const ADDRS: [Ipv4Addr; 2] = [crate::LOCAL, crate::PEER];

/// One direction of a connection, shared by its writer and its reader.
#[derive(Debug, Default)]
struct Pipe {
    /// Bytes the writer has handed to its stack.
    written: Cell<u64>,
    /// The writer shut down or closed gracefully: EOF may follow `written`.
    finished: Cell<bool>,
    /// The side that made the pipe (the first of the two ends to appear).
    made_by: Cell<usize>,
}

/// The byte at `offset` of the direction `from` → `to`.
fn pattern(from: SocketAddr, to: SocketAddr, offset: u64) -> u8 {
    let k = u64::from(from.port()) << 16 | u64::from(to.port());
    let x = (offset ^ k.wrapping_mul(0x9e37_79b9_7f4a_7c15)).wrapping_mul(0xff51_afd7_ed55_8ccd);
    (x >> 56) as u8
}

/// A stream held by the script, with its two directions.
struct Conn {
    stream: TcpStream,
    /// The direction out, this end writing.
    out: Rc<Pipe>,
    /// The direction in, and how far this end has read it.
    rx: Rx,
    /// Shut down for writing.
    shut: bool,
}

/// The reading end of a direction (shared by a worker's reader and writer,
/// hence cells).
struct Rx {
    local: SocketAddr,
    peer: SocketAddr,
    inn: Rc<Pipe>,
    /// Bytes read so far.
    read: Cell<u64>,
    /// Seen EOF.
    eof: Cell<bool>,
    /// A call reported an error (a reset, a timeout): reported once, as the
    /// kernel does, after which reads see end of stream.
    errored: Cell<bool>,
}

impl Rx {
    /// A read or write on the socket failed: only the kinds a kernel socket
    /// gives are allowed, and any but `WouldBlock` is the socket's error,
    /// reported once (later reads may see end of stream).
    fn on_error(&self, e: &io::Error, call: &str) {
        assert!(
            matches!(
                e.kind(),
                ErrorKind::WouldBlock
                    | ErrorKind::ConnectionReset
                    | ErrorKind::ConnectionAborted
                    | ErrorKind::TimedOut
                    | ErrorKind::BrokenPipe
                    | ErrorKind::NotConnected
            ),
            "{call}: {e:?}"
        );
        if e.kind() != ErrorKind::WouldBlock {
            self.errored.set(true);
        }
    }
}

/// The pipes of connections one end has joined and the other not yet.
#[derive(Default)]
struct Pairing {
    open: HashMap<(SocketAddr, SocketAddr), Rc<Pipe>>,
}

impl Pairing {
    /// The pipe `from` → `to`, joined by `side`.
    fn join(&mut self, side: usize, from: SocketAddr, to: SocketAddr) -> Rc<Pipe> {
        match self.open.remove(&(from, to)) {
            // The other end made it: paired.
            Some(p) if p.made_by.get() != side => p,
            // None, or a stale one this side made for an older connection
            // of the same 4-tuple whose other end never appeared.
            _ => {
                let p = Rc::new(Pipe::default());
                p.made_by.set(side);
                self.open.insert((from, to), Rc::clone(&p));
                p
            }
        }
    }
}

type Arrivals = Rc<RefCell<Vec<(usize, TcpStream)>>>;

fn adopt(side: usize, stream: TcpStream, pairing: &mut Pairing) -> Option<Conn> {
    let (Ok(local), Ok(peer)) = (stream.local_addr(), stream.peer_addr()) else {
        return None;
    };
    let out = pairing.join(side, local, peer);
    let inn = pairing.join(side, peer, local);
    Some(Conn {
        stream,
        out,
        rx: Rx {
            local,
            peer,
            inn,
            read: Cell::new(0),
            eof: Cell::new(false),
            errored: Cell::new(false),
        },
        shut: false,
    })
}

/// Reads what is there from `c` and checks it.
fn check_read(c: &mut Conn, buf: &mut [u8], summary: &Cell<Summary>) {
    let res = c.stream.try_read(buf);
    check_read_result(&c.rx, res, buf, summary);
}

/// Checks what a read into `buf` gave.
fn check_read_result(rx: &Rx, res: io::Result<usize>, buf: &[u8], summary: &Cell<Summary>) {
    let mut sum = summary.get();
    let (local, peer, read, written) = (rx.local, rx.peer, rx.read.get(), rx.inn.written.get());
    match res {
        Ok(0) if !buf.is_empty() && rx.errored.get() => rx.eof.set(true),
        Ok(0) if !buf.is_empty() => {
            assert!(
                rx.inn.finished.get(),
                "EOF on {local} <- {peer} before its writer shut down or closed"
            );
            assert_eq!(
                read, written,
                "EOF on {local} <- {peer} after {read} of {written} bytes"
            );
            rx.eof.set(true);
            sum.eofs += 1;
        }
        Ok(n) => {
            sum.bytes_read += n as u64;
            for (i, &b) in buf[..n].iter().enumerate() {
                let at = read + i as u64;
                assert_eq!(
                    b,
                    pattern(peer, local, at),
                    "byte {at} of {peer} -> {local} differs"
                );
            }
            rx.read.set(read + n as u64);
            assert!(
                read + n as u64 <= written,
                "read {} bytes of {peer} -> {local}, only {written} written",
                read + n as u64
            );
        }
        Err(e) => rx.on_error(&e, "read"),
    }
    summary.set(sum);
}

/// A worker task given a connection: writes `n` bytes of its pattern with
/// `write`, shuts down, and meanwhile reads to the end with `read` — the
/// async paths (`poll_write`, `poll_read`, their wakers, a split stream),
/// not the `try_` calls. Reading and writing at once, as a real
/// application must (two workers each only writing would fill both windows
/// and wait for ever).
async fn worker(mut c: Conn, n: usize, summary: Rc<Cell<Summary>>) {
    use tokio::io::AsyncReadExt;
    let (local, peer) = (c.rx.local, c.rx.peer);
    let (out, rx) = (&c.out, &c.rx);
    let (mut rd, mut wr) = c.stream.split();
    let write = async {
        let start = out.written.get();
        let data: Vec<u8> = (0..n as u64)
            .map(|k| pattern(local, peer, start + k))
            .collect();
        let mut written = 0;
        while written < n {
            match wr.write(&data[written..]).await {
                Ok(0) => return,
                Ok(m) => {
                    written += m;
                    out.written.set(start + written as u64);
                }
                Err(_) => {
                    rx.errored.set(true);
                    return;
                }
            }
        }
        match wr.shutdown().await {
            Ok(()) => out.finished.set(true),
            Err(_) => rx.errored.set(true),
        }
    };
    let read = async {
        let mut buf = vec![0u8; 4096];
        while !rx.eof.get() {
            let res = rd.read(&mut buf).await;
            let failed = res.is_err();
            check_read_result(rx, res, &buf, &summary);
            if failed {
                return;
            }
        }
    };
    tokio::join!(write, read);
}

/// What a script did, for tests of the seeds.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// Bytes read and checked, all connections together.
    pub bytes_read: u64,
    /// Ends of stream seen after every byte.
    pub eofs: u32,
    /// UDP datagrams received and checked.
    pub datagrams: u32,
}

/// Target `stack`.
pub fn stack(data: &[u8]) {
    run(data);
}

/// The target's body.
pub fn run(data: &[u8]) -> Summary {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("runtime");
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, script(data))
}

async fn script(data: &[u8]) -> Summary {
    let summary: Rc<Cell<Summary>> = Rc::default();
    let mut workers = Vec::new();
    let mut r = Reader::new(data);
    let mtu = [576, 1500, 9000, 65535][usize::from(r.u8() % 4)];
    let queue = 4 + usize::from(r.u8() % 64);
    let (a, b) = MemoryLink::pair(
        MemoryLinkConfig::default()
            .with_mtu(mtu)
            .with_queue_packets(queue),
    );
    let mut configs = [Config::default(), Config::default()];
    for c in &mut configs {
        let flags = r.u8();
        c.timestamps = flags & 1 != 0;
        c.sack = flags & 2 != 0;
        c.window_scaling = flags & 4 != 0;
        c.recv_buffer = 1024 << (r.u8() % 8);
        c.send_buffer = 1024 << (r.u8() % 8);
    }
    let [ca, cb] = configs;
    let stacks = [
        Stack::builder(a, ADDRS[0], 24)
            .config(ca)
            .secret([1, 2])
            .build(),
        Stack::builder(b, ADDRS[1], 24)
            .config(cb)
            .secret([3, 4])
            .build(),
    ];
    let mut listeners: Vec<(usize, Rc<TcpListener>)> = Vec::new();
    let mut conns: Vec<Conn> = Vec::new();
    let mut udps: Vec<(usize, UdpSocket)> = Vec::new();
    let arrivals: Arrivals = Rc::default();
    let mut pairing = Pairing::default();
    let mut buf = vec![0u8; 1 << 16];
    let mut tasks = Vec::new();
    let mut steps = 0;
    while !r.done() && steps < 400 {
        steps += 1;
        let side = usize::from(r.u8() & 1);
        let other = 1 - side;
        let op = r.u8();
        let pick = |r: &mut Reader, n: usize| (n > 0).then(|| usize::from(r.u8()) % n);
        match op % 18 {
            0 => {
                let port = 80 + u16::from(r.u8() % 4);
                if let Ok(l) = TcpListener::bind_on(&stacks[side], (ADDRS[side], port)).await {
                    listeners.push((side, Rc::new(l)));
                }
            }
            1 => {
                let port = 80 + u16::from(r.u8() % 4);
                let stack = stacks[side].clone();
                let arrivals = Rc::clone(&arrivals);
                tasks.push(tokio::task::spawn_local(async move {
                    if let Ok(s) = TcpStream::connect_on(&stack, (ADDRS[other], port)).await {
                        arrivals.borrow_mut().push((side, s));
                    }
                }));
            }
            2 => {
                if let Some(i) = pick(&mut r, listeners.len()) {
                    let (lside, l) = (listeners[i].0, Rc::clone(&listeners[i].1));
                    let arrivals = Rc::clone(&arrivals);
                    tasks.push(tokio::task::spawn_local(async move {
                        if let Ok((s, _)) = l.accept().await {
                            arrivals.borrow_mut().push((lside, s));
                        }
                    }));
                }
            }
            3 | 4 => {
                if let Some(i) = pick(&mut r, conns.len()) {
                    let n = usize::from(r.u16()).min(buf.len());
                    let c = &mut conns[i];
                    let start = c.out.written.get();
                    for (k, b) in buf[..n].iter_mut().enumerate() {
                        *b = pattern(c.rx.local, c.rx.peer, start + k as u64);
                    }
                    let res = c.stream.try_write(&buf[..n]);
                    match res {
                        Ok(m) => {
                            assert!(!c.shut, "a write after shutdown succeeded");
                            c.out.written.set(start + m as u64);
                        }
                        Err(e) => c.rx.on_error(&e, "try_write"),
                    }
                }
            }
            5 | 6 => {
                if let Some(i) = pick(&mut r, conns.len()) {
                    let n = usize::from(r.u16()).min(buf.len());
                    check_read(&mut conns[i], &mut buf[..n], &summary);
                }
            }
            7 => {
                // Wait until readable (or a while), then read.
                if let Some(i) = pick(&mut r, conns.len()) {
                    let wait = Duration::from_millis(u64::from(r.u8()) * 10);
                    let _ = tokio::time::timeout(wait, conns[i].stream.readable()).await;
                    check_read(&mut conns[i], &mut buf, &summary);
                }
            }
            8 => {
                if let Some(i) = pick(&mut r, conns.len()) {
                    let c = &mut conns[i];
                    match c.stream.shutdown().await {
                        Ok(()) => {
                            c.shut = true;
                            c.out.finished.set(true);
                        }
                        Err(_) => c.rx.errored.set(true),
                    }
                }
            }
            9 => {
                // Close: gracefully, or (zero linger) with a RST.
                if let Some(i) = pick(&mut r, conns.len()) {
                    let c = conns.swap_remove(i);
                    if r.u8().is_multiple_of(4) {
                        let _ = c.stream.set_zero_linger();
                    } else {
                        c.out.finished.set(true);
                    }
                }
            }
            10 => {
                if let Some(i) = pick(&mut r, conns.len()) {
                    let s = &conns[i].stream;
                    let v = r.u8();
                    let t = Duration::from_millis(u64::from(r.u16()));
                    let _ = match v % 5 {
                        0 => s.set_nodelay(v & 8 != 0),
                        1 => s.set_quickack(v & 8 != 0),
                        // In whole seconds, as the kernel's TCP_KEEPIDLE and
                        // TCP_KEEPINTVL: a millisecond keep-alive answered for
                        // simulated days makes an input run for seconds
                        // (libFuzzer's timeout found one).
                        2 => s.set_keepalive((v & 8 != 0).then_some(Keepalive {
                            idle: Duration::from_secs(t.as_millis() as u64 % 7200 + 1),
                            interval: Duration::from_secs(t.as_millis() as u64 % 75 + 1),
                            count: u32::from(v >> 4),
                        })),
                        3 => s.set_user_timeout((v & 8 != 0).then_some(t)),
                        _ => s.set_ttl(u32::from(v)),
                    };
                }
            }
            11 => {
                if let Some(i) = pick(&mut r, listeners.len()) {
                    listeners.swap_remove(i);
                }
            }
            12 => {
                // UDP: bind, or send to the other side, or receive.
                let port = 5000 + u16::from(r.u8() % 2);
                match UdpSocket::bind_on(&stacks[side], (ADDRS[side], port)).await {
                    Ok(u) => udps.push((side, u)),
                    Err(_) => {
                        if let Some(i) = pick(&mut r, udps.len()) {
                            let (uside, u) = &udps[i];
                            let n = usize::from(r.u16()) % 9000;
                            let seq = r.u8();
                            let d: Vec<u8> = (0..n).map(|k| seq.wrapping_add(k as u8)).collect();
                            let mut d = d;
                            d.insert(0, seq);
                            let to = SocketAddr::from((ADDRS[1 - uside], port));
                            let _ = u.try_send_to(&d, to);
                        }
                    }
                }
            }
            13 => {
                if let Some(i) = pick(&mut r, udps.len()) {
                    let (uside, u) = &udps[i];
                    while let Ok((n, from)) = u.try_recv_from(&mut buf) {
                        assert_eq!(from.ip(), ADDRS[1 - uside], "a datagram from elsewhere");
                        let mut sum = summary.get();
                        sum.datagrams += 1;
                        summary.set(sum);
                        if n > 0 {
                            let seq = buf[0];
                            for (k, &b) in buf[1..n].iter().enumerate() {
                                assert_eq!(b, seq.wrapping_add(k as u8), "a datagram changed");
                            }
                        }
                    }
                }
            }
            14 => {
                if let Some(i) = pick(&mut r, udps.len()) {
                    udps.swap_remove(i);
                }
            }
            15 => {
                // A worker task takes the connection over.
                if let Some(i) = pick(&mut r, conns.len()) {
                    let c = conns.swap_remove(i);
                    let n = usize::from(r.u16()) * 8;
                    workers.push(tokio::task::spawn_local(worker(c, n, Rc::clone(&summary))));
                }
            }
            _ => {
                // Time passes: the drivers, timers and spawned tasks run.
                let v = r.u16();
                let d = if v & 0x8000 != 0 {
                    Duration::from_secs(u64::from(v & 0x3ff))
                } else {
                    Duration::from_millis(u64::from(v))
                };
                tokio::time::sleep(d).await;
            }
        }
        tokio::task::yield_now().await;
        for (s, stream) in arrivals.borrow_mut().drain(..) {
            if let Some(c) = adopt(s, stream, &mut pairing) {
                conns.push(c);
            }
        }
    }
    // The end: every handle goes, and every connection must follow; the
    // workers finish (their peers shut down or close).
    for t in &tasks {
        t.abort();
    }
    for c in conns {
        // Dropped: a graceful close (FIN after the data) unless unread data
        // makes it a reset, which the worker at the other end sees as one.
        c.out.finished.set(true);
    }
    drop(listeners);
    drop(udps);
    arrivals.borrow_mut().clear();
    for _ in 0..24 {
        tokio::time::sleep(Duration::from_secs(300)).await;
        if stacks.iter().all(|s| s.connections().is_empty())
            && workers.iter().all(|w| w.is_finished())
        {
            break;
        }
    }
    for w in workers {
        assert!(
            w.is_finished(),
            "a worker task still runs two hours after the end: {:#?} {:#?}",
            stacks[0].connections(),
            stacks[1].connections()
        );
        if let Err(e) = w.await
            && e.is_panic()
        {
            std::panic::resume_unwind(e.into_panic());
        }
    }
    assert!(
        stacks.iter().all(|s| s.connections().is_empty()),
        "connections left two hours after every handle was dropped: {:#?} {:#?}",
        stacks[0].connections(),
        stacks[1].connections()
    );
    summary.get()
}
