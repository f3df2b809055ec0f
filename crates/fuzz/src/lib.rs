//! The bodies of synack's fuzz targets, and the invariants they check after
//! every step.
//!
//! The cargo-fuzz crate in `fuzz/` is a thin shell around [`ingress`],
//! [`ingress_forged`], [`api`] (the engine, from the wire and from the
//! application), [`wire()`] and [`reassembly()`] (the parsers and the IP
//! reassembler, each against an independent reading) and [`stack()`] (two
//! `synack::Stack`s through the tokio API); the replay test of this crate
//! runs every file of `fuzz/corpus/` and `fuzz/regressions/` through the
//! same functions under `cargo test`, so a crash once found stays a test.
//!
//! A target panics when an invariant breaks (that is what the fuzzer looks
//! for), not only when the engine does:
//! - every datagram the engine emits is well-formed IPv4 with valid
//!   checksums, fits the MTU and comes from a local, non-loopback address
//!   (checked by [`wire::check_emitted`], not by the engine's own parser);
//! - after `handle_timeout(now)` and draining `poll_transmit`, no timer is
//!   still due (a driver would spin);
//! - the engine holds no more sockets than the application's handles, the
//!   listeners' queues and the closing connections allow.
//!
//! Inputs are a plain record format ([`Reader`]) rather than `arbitrary`'s:
//! records are easy to write from recorded traffic, so the seed corpus is
//! real handshakes, data and closes ([`seeds`]).

#![forbid(unsafe_code)]

mod datagram;
pub mod reassembly;
pub mod stack;
pub mod wire;

pub use datagram::wire;
pub use reassembly::reassembly;
pub use stack::stack;

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use synack_engine::{
    Config, CongestionAlgorithm, Engine, Instant, Interface, Keepalive, SocketHandle,
};
use wire::Segment;

/// The engine under test.
pub const LOCAL: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
/// Its peer (the fuzzer speaks as this host).
pub const PEER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
/// A host on the subnet that never answers.
pub const SILENT: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 9);
/// The device MTU of both engines.
pub const MTU: usize = 1500;
/// The listener's port on the engine under test.
pub const PORT: u16 = 80;
/// Its backlog.
pub const BACKLOG: usize = 4;
/// The most simulated time one input may cover.
const MAX_TIME: Duration = Duration::from_secs(4 * 3600);

/// Reads an input as records; past the end everything reads as zero and
/// [`Reader::done`] is true.
pub struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader over `data`.
    pub fn new(data: &'a [u8]) -> Reader<'a> {
        Reader { data, pos: 0 }
    }

    /// Whether the input is used up.
    pub fn done(&self) -> bool {
        self.pos >= self.data.len()
    }

    /// The next byte.
    pub fn u8(&mut self) -> u8 {
        let b = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        b
    }

    /// The next two bytes, big-endian.
    pub fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.u8(), self.u8()])
    }

    /// The next four bytes, big-endian.
    pub fn u32(&mut self) -> u32 {
        u32::from_be_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }

    /// Up to `n` of the next bytes (fewer at the end).
    pub fn bytes(&mut self, n: usize) -> &'a [u8] {
        let start = self.pos.min(self.data.len());
        let end = (start + n).min(self.data.len());
        self.pos = start + n;
        &self.data[start..end]
    }
}

/// Writes inputs in [`Reader`]'s format, for seeds.
#[derive(Debug, Default, Clone)]
pub struct Writer(pub Vec<u8>);

impl Writer {
    /// An `ingress` packet record.
    pub fn packet(&mut self, datagram: &[u8]) -> &mut Self {
        self.0.push(OP_PACKET);
        self.0
            .extend_from_slice(&(datagram.len() as u16).to_be_bytes());
        self.0.extend_from_slice(datagram);
        self
    }

    /// A record advancing time by `ms` milliseconds.
    pub fn advance(&mut self, ms: u16) -> &mut Self {
        self.0.push(OP_ADVANCE);
        self.0.extend_from_slice(&ms.to_be_bytes());
        self
    }
}

const OP_PACKET: u8 = 0;
const OP_ADVANCE: u8 = 2;

/// Advances `now` as a record says: milliseconds, or (high bit) seconds.
fn advance(now: &mut Instant, start: Instant, r: &mut Reader) {
    let v = r.u16();
    let d = if v & 0x8000 != 0 {
        Duration::from_secs(u64::from(v & 0x7fff))
    } else {
        Duration::from_millis(u64::from(v))
    };
    if now.saturating_duration_since(start) + d <= MAX_TIME {
        *now = *now + d;
    }
}

/// Runs `engine`'s timers due at `now` and takes every datagram it has,
/// checking each; then checks that no timer is left due.
pub fn drain(engine: &mut Engine, now: Instant, out: &mut Vec<Vec<u8>>) {
    engine.handle_timeout(now);
    if let Some(t) = engine.poll_timeout() {
        assert!(
            t > now,
            "a timer at {t:?} is still due at {now:?} right after handle_timeout: {:#?}",
            engine.sockets()
        );
    }
    let locals: Vec<Ipv4Addr> = engine.addresses().iter().map(|c| c.addr).collect();
    // Room for more than the MTU, so an oversized datagram shows.
    let mut buf = [0u8; 2 * MTU];
    let mut count = 0;
    while let Some(n) = engine.poll_transmit(now, &mut buf) {
        let d = &buf[..n];
        if let Err(e) = wire::check_emitted(d, MTU, &locals) {
            panic!("emitted a bad datagram ({e}): {d:02x?}");
        }
        out.push(d.to_vec());
        count += 1;
        assert!(count < 1_000_000, "poll_transmit never returns None");
    }
    if let Some(t) = engine.poll_timeout() {
        assert!(
            t > now,
            "a timer at {t:?} is still due at {now:?} after handle_timeout and poll_transmit: \
             a driver would spin; sent {count}: {:#?}",
            engine.sockets()
        );
    }
}

/// The configuration of both engines: Linux-like defaults with small
/// buffers (a zero window comes sooner) and syn cookies on overflow.
pub(crate) fn config() -> Config {
    Config {
        send_buffer: 64 * 1024,
        recv_buffer: 64 * 1024,
        ..Config::default()
    }
}

pub(crate) fn engine(addr: Ipv4Addr, config: Config, secret: u64) -> Engine {
    Engine::new(config, Interface::new(addr, 24, MTU), [secret, !secret])
}

/// An engine with a listener and connections in many states, its frozen
/// peer, and what the engine last sent on each 4-tuple.
pub struct Scene {
    /// The engine under test, at [`LOCAL`].
    pub engine: Engine,
    /// The peer that brought the connections up, at [`PEER`]; frozen once
    /// the scene is set.
    pub peer: Engine,
    /// The clock.
    pub now: Instant,
    /// When the scene was set.
    pub start: Instant,
    /// The handles the application holds: the listener first.
    pub handles: Vec<SocketHandle>,
    /// The last segment the engine sent on each connection (by 4-tuple).
    pub learned: Vec<Segment>,
    /// What the peer has to say next, for seeds.
    pub peer_backlog: Vec<Vec<u8>>,
    /// Sockets once the scene was set.
    pub base_sockets: usize,
}

impl Scene {
    /// Sets the scene (deterministic: fixed secrets, fixed steps):
    /// - a listener on port 80 with a backlog of 4;
    /// - an established connection with 20 000 bytes in flight whose ACKs
    ///   were lost (retransmission timer running);
    /// - one half-closed by the peer (CLOSE-WAIT) with urgent data queued;
    /// - one closed by the engine (TIME-WAIT, no handle);
    /// - one whose peer reads nothing: a zero window (persist timer);
    /// - a connect to a silent host (SYN-SENT);
    /// - an embryo: a SYN answered, the SYN-ACK lost (SYN-RECEIVED).
    pub fn new() -> Scene {
        let start = Instant::from_millis(1_000);
        let peer_config = Config {
            recv_buffer: 4096,
            recv_buffer_initial: 4096,
            ..config()
        };
        let mut s = Scene {
            engine: engine(LOCAL, config(), 1),
            peer: engine(PEER, peer_config, 2),
            now: start,
            start,
            handles: Vec::new(),
            learned: Vec::new(),
            peer_backlog: Vec::new(),
            base_sockets: 0,
        };
        let listener = s
            .engine
            .listen(SocketAddrV4::new(LOCAL, PORT), BACKLOG)
            .expect("listen");
        s.handles.push(listener);
        let remote = SocketAddrV4::new(LOCAL, PORT);
        let b: Vec<SocketHandle> = (0..4)
            .map(|_| s.peer.connect(s.now, remote).expect("peer connect"))
            .collect();
        s.pump(10, |_| false, |_| false);
        let mut a = Vec::new();
        while let Ok(h) = s.engine.accept(listener) {
            a.push(h);
        }
        assert_eq!(a.len(), 4, "the scene's connections");
        // Pair each accepted connection with its peer end, by port.
        let peer_of = |s: &Scene, h: SocketHandle| {
            let port = s.engine.peer_addr(h).expect("peer addr").port();
            *b.iter()
                .find(|&&p| s.peer.local_addr(p).map(|a| a.port()) == Ok(port))
                .expect("peer end")
        };
        let (a1, a2, a3, a4) = (a[0], a[1], a[2], a[3]);
        let (b2, b3) = (peer_of(&s, a2), peer_of(&s, a3));
        // a4: the peer reads nothing; its 4 KiB window fills.
        let _ = s.engine.send(s.now, a4, &[0x44; 20_000]);
        s.pump(20, |_| false, |_| false);
        // a2: the peer closes its side; urgent data goes the other way.
        let _ = s.peer.shutdown(s.now, b2);
        s.pump(5, |_| false, |_| false);
        let _ = s.engine.send_urgent(s.now, a2, b"!urgent");
        // a3: the engine closes first, then the peer: TIME-WAIT.
        s.engine.close(s.now, a3);
        s.pump(5, |_| false, |_| false);
        s.peer.close(s.now, b3);
        s.pump(5, |_| false, |_| false);
        // a1: data in flight, every ACK lost.
        let _ = s.engine.send(s.now, a1, &[0x11; 20_000]);
        s.pump(3, |_| false, |d| d.proto == wire::TCP);
        // SYN-SENT to a host that never answers.
        let silent = s
            .engine
            .connect(s.now, SocketAddrV4::new(SILENT, 81))
            .expect("connect");
        // An embryo: the SYN-ACK is lost.
        let _ = s.peer.connect(s.now, remote);
        s.pump(1, |d| d.flags & 0x12 == 0x12, |_| false);
        s.handles.extend([a1, a2, a4, silent]);
        s.base_sockets = s.engine.socket_count();
        // What the peer would send next, as seeds: data on the first
        // connection, a read that opens the zero window, and (a second on)
        // its retransmitted SYN and whatever its timers send.
        let (b1, b4) = (peer_of(&s, a1), peer_of(&s, a4));
        let _ = s.peer.send(s.now, b1, b"hello from the peer");
        let _ = s.peer.recv(s.now, b4, &mut [0u8; 4096]);
        let mut out = Vec::new();
        drain(&mut s.peer, s.now, &mut out);
        s.now = s.now + Duration::from_millis(1100);
        drain(&mut s.peer, s.now, &mut out);
        s.peer_backlog = out;
        s.start = s.now;
        s
    }

    /// Moves packets between the engine and its peer for `rounds` rounds of
    /// 1 ms, dropping those the filters pick (to the peer, to the engine).
    fn pump(
        &mut self,
        rounds: usize,
        drop_to_peer: impl Fn(&Segment) -> bool,
        drop_to_engine: impl Fn(&Segment) -> bool,
    ) {
        for _ in 0..rounds {
            let mut out = Vec::new();
            drain(&mut self.engine, self.now, &mut out);
            for d in out {
                let seg = wire::check_emitted(&d, MTU, &[LOCAL]).expect("checked");
                self.learn(&seg);
                if seg.dst == PEER && !drop_to_peer(&seg) {
                    self.peer.handle_packet(self.now, &d);
                }
            }
            let mut back = Vec::new();
            drain(&mut self.peer, self.now, &mut back);
            for d in back {
                let seg = wire::check_emitted(&d, MTU, &[PEER]).expect("checked");
                if !drop_to_engine(&seg) {
                    self.engine.handle_packet(self.now, &d);
                }
            }
            self.now = self.now + Duration::from_millis(1);
        }
    }

    /// Remembers the last TCP segment the engine sent on its 4-tuple.
    fn learn(&mut self, seg: &Segment) {
        if seg.proto != wire::TCP {
            return;
        }
        let key = |s: &Segment| (s.dst, s.ports);
        match self.learned.iter_mut().find(|l| key(l) == key(seg)) {
            Some(l) => *l = seg.clone(),
            None => self.learned.push(seg.clone()),
        }
    }

    /// Runs the engine's timers, checks what it sends and learns from it;
    /// then checks the socket bound.
    fn settle(&mut self) {
        let mut out = Vec::new();
        drain(&mut self.engine, self.now, &mut out);
        for d in &out {
            if let Ok(seg) = wire::check_emitted(d, MTU, &[LOCAL]) {
                self.learn(&seg);
            }
        }
        // New sockets come only from SYNs to the listener: its accept queue
        // and SYN queue (embryos), each bounded by the backlog or by syn
        // cookies; and sockets only leave otherwise.
        let bound = self.base_sockets + 2 * BACKLOG + 2;
        let n = self.engine.socket_count();
        assert!(
            n <= bound,
            "{n} sockets, more than the {bound} the scene allows"
        );
    }

    /// An application step on one of the handles (reads keep windows moving).
    fn app(&mut self, r: &mut Reader) {
        let h = self.handles[usize::from(r.u8()) % self.handles.len()];
        let mut buf = [0u8; 4096];
        match r.u8() % 4 {
            0 => {
                let _ = self.engine.recv(self.now, h, &mut buf);
            }
            1 => {
                let n = usize::from(r.u16()) % 8192;
                let _ = self.engine.send(self.now, h, &vec![0x5a; n]);
            }
            2 => {
                let _ = self.engine.shutdown(self.now, h);
            }
            _ => {
                let _ = self.engine.accept(self.handles[0]);
            }
        }
    }
}

impl Default for Scene {
    fn default() -> Self {
        Scene::new()
    }
}

/// Target `ingress`: arbitrary datagrams into the [`Scene`]'s engine, with
/// time passing and application reads and writes between them.
///
/// Records: `0`/`1` a datagram (2-byte length, then the bytes), `2` time
/// passing ([`Writer::advance`]), `3` an application step.
pub fn ingress(data: &[u8]) {
    let mut s = Scene::new();
    let mut r = Reader::new(data);
    while !r.done() {
        match r.u8() % 4 {
            0 | 1 => {
                let len = usize::from(r.u16()) % 2048;
                let d = r.bytes(len);
                s.engine.handle_packet(s.now, d);
            }
            2 => advance(&mut s.now, s.start, &mut r),
            _ => s.app(&mut r),
        }
        s.settle();
    }
}

/// Target `ingress_forged`: segments aimed at the [`Scene`]'s live
/// 4-tuples, with sequence, acknowledgment and timestamp values near what
/// the engine last sent there (the fuzzer's deltas are small), SACK blocks
/// near what it has sent, any flags and options; ICMP errors quoting what
/// the engine sent; SYNs to the listener; time passing.
pub fn ingress_forged(data: &[u8]) {
    let mut s = Scene::new();
    let mut r = Reader::new(data);
    while !r.done() && !s.learned.is_empty() {
        match r.u8() % 6 {
            0..=2 => {
                let seg = s.learned[usize::from(r.u8()) % s.learned.len()].clone();
                let d = forge(&seg, &mut r);
                s.engine.handle_packet(s.now, &d);
            }
            3 => {
                let seg = s.learned[usize::from(r.u8()) % s.learned.len()].clone();
                let (kind, code, rest) = match r.u8() % 6 {
                    0 => (3, 4, u32::from(r.u16())), // fragmentation needed, next-hop MTU
                    1 => (3, 3, 0),                  // port unreachable
                    2 => (3, 1, 0),                  // host unreachable
                    3 => (11, 0, 0),                 // time exceeded
                    4 => (12, 0, u32::from(r.u8()) << 24), // parameter problem
                    _ => (r.u8(), r.u8(), r.u32()),
                };
                let from = if r.u8() & 1 == 0 {
                    seg.dst
                } else {
                    Ipv4Addr::new(192, 0, 2, 254)
                };
                let d = wire::icmp_error(from, LOCAL, kind, code, rest, &seg.head);
                s.engine.handle_packet(s.now, &d);
            }
            4 => advance(&mut s.now, s.start, &mut r),
            _ => s.app(&mut r),
        }
        s.settle();
    }
}

/// A segment from the peer's side of `seg`'s 4-tuple, its numbers near
/// what `seg` says the engine expects.
fn forge(seg: &Segment, r: &mut Reader) -> Vec<u8> {
    let delta = |r: &mut Reader| {
        let d = i32::from(r.u16() as i16);
        d << (r.u8() % 17)
    };
    let their_next = seg.ack; // what the engine expects from the peer
    let our_next = seg.seq.wrapping_add(seg.len as u32); // what it sent up to
    let seq = their_next.wrapping_add_signed(delta(r));
    let ack = our_next.wrapping_add_signed(delta(r));
    let flags = r.u8();
    let window = r.u16();
    let mut opts = Vec::new();
    for _ in 0..r.u8() % 5 {
        match r.u8() % 8 {
            0 => opts.extend_from_slice(&[2, 4, r.u8(), r.u8()]),
            1 => opts.extend_from_slice(&[3, 3, r.u8()]),
            2 => opts.extend_from_slice(&[4, 2]),
            3 => {
                let blocks = 1 + usize::from(r.u8() % 3);
                opts.extend_from_slice(&[5, 2 + 8 * blocks as u8]);
                for _ in 0..blocks {
                    let left = our_next.wrapping_add_signed(delta(r));
                    let right = left.wrapping_add(u32::from(r.u16()));
                    opts.extend_from_slice(&left.to_be_bytes());
                    opts.extend_from_slice(&right.to_be_bytes());
                }
            }
            4 => {
                let val = r.u32();
                let ecr = seg.tsval.unwrap_or(0).wrapping_add_signed(delta(r));
                opts.extend_from_slice(&[8, 10]);
                opts.extend_from_slice(&val.to_be_bytes());
                opts.extend_from_slice(&ecr.to_be_bytes());
            }
            5 => opts.push(1),
            6 => opts.push(0),
            _ => {
                let n = usize::from(r.u8() % 12);
                opts.extend_from_slice(r.bytes(n));
            }
        }
    }
    let len = usize::from(r.u16()) % 3000;
    let payload = r.bytes(len).to_vec();
    wire::tcp(
        (seg.dst, seg.ports.1),
        (seg.src, seg.ports.0),
        seq,
        ack,
        flags,
        window,
        &opts,
        &payload,
    )
}

/// Target `api`: two engines joined by a wire that the input drops,
/// duplicates and reorders on, driven by interleaved application calls
/// (every socket call and option, TCP and UDP) and time passing.
pub fn api(data: &[u8]) {
    let mut r = Reader::new(data);
    let cc = |r: &mut Reader| {
        if r.u8() & 1 == 0 {
            CongestionAlgorithm::Cubic
        } else {
            CongestionAlgorithm::NewReno
        }
    };
    let mut configs = [config(), config()];
    for c in &mut configs {
        let flags = r.u8();
        c.timestamps = flags & 1 != 0;
        c.sack = flags & 2 != 0;
        c.window_scaling = flags & 4 != 0;
        c.pacing = flags & 8 != 0;
        c.congestion = cc(&mut r);
        c.recv_buffer = 1024 << (r.u8() % 8);
        c.send_buffer = 1024 << (r.u8() % 8);
    }
    let [ca, cb] = configs;
    let mut hosts = [engine(LOCAL, ca, 3), engine(PEER, cb, 4)];
    let addrs = [LOCAL, PEER];
    let start = Instant::from_millis(1_000);
    let mut now = start;
    let mut handles: [Vec<SocketHandle>; 2] = [Vec::new(), Vec::new()];
    let mut listeners: [Vec<SocketHandle>; 2] = [Vec::new(), Vec::new()];
    let mut wire: Vec<(usize, Vec<u8>)> = Vec::new();
    let mut buf = vec![0u8; 65_536];
    while !r.done() {
        let side = usize::from(r.u8() & 1);
        let other = 1 - side;
        let pick = |r: &mut Reader, v: &[SocketHandle]| {
            (!v.is_empty()).then(|| v[usize::from(r.u8()) % v.len()])
        };
        let e = &mut hosts[side];
        match r.u8() % 16 {
            0 => {
                let port = 80 + u16::from(r.u8() % 4);
                let backlog = usize::from(r.u8() % 8);
                if let Ok(h) = e.listen(SocketAddrV4::new(addrs[side], port), backlog) {
                    listeners[side].push(h);
                }
            }
            1 => {
                let port = 80 + u16::from(r.u8() % 4);
                if let Ok(h) = e.connect(now, SocketAddrV4::new(addrs[other], port)) {
                    handles[side].push(h);
                }
            }
            2 => {
                if let Some(l) = pick(&mut r, &listeners[side])
                    && let Ok(h) = e.accept(l)
                {
                    handles[side].push(h);
                }
            }
            3 => {
                if let Some(h) = pick(&mut r, &handles[side]) {
                    let n = usize::from(r.u16()) * 4;
                    let _ = e.send(now, h, &vec![0x33; n]);
                }
            }
            4 => {
                if let Some(h) = pick(&mut r, &handles[side]) {
                    let n = usize::from(r.u16()).min(buf.len());
                    let _ = e.recv(now, h, &mut buf[..n]);
                }
            }
            5 => {
                if let Some(h) = pick(&mut r, &handles[side]) {
                    let _ = e.shutdown(now, h);
                }
            }
            6 | 7 => {
                let all = if r.u8() & 1 == 0 {
                    &mut handles[side]
                } else {
                    &mut listeners[side]
                };
                if !all.is_empty() {
                    let h = all.remove(usize::from(r.u8()) % all.len());
                    if r.u8().is_multiple_of(4) {
                        e.abort(now, h);
                    } else {
                        e.close(now, h);
                    }
                }
            }
            8 => {
                if let Some(h) = pick(&mut r, &handles[side]) {
                    let v = r.u8();
                    let t = Duration::from_millis(u64::from(r.u16()));
                    let _ = match v % 8 {
                        0 => e.set_nodelay(h, v & 8 != 0),
                        1 => e.set_keepalive(
                            now,
                            h,
                            (v & 8 != 0).then_some(Keepalive {
                                idle: t,
                                interval: t / 2,
                                count: u32::from(v >> 4),
                            }),
                        ),
                        2 => e.set_linger(h, (v & 8 != 0).then_some(t)),
                        3 => e.set_user_timeout(h, Some(t)),
                        4 => e.set_congestion(h, cc(&mut r)),
                        5 => e.set_pacing(h, v & 8 != 0),
                        6 => e.set_quickack(h, v & 8 != 0),
                        _ => e.set_connect_timeout(now, h, (v & 8 != 0).then_some(t)),
                    };
                }
            }
            9 => {
                if let Some(h) = pick(&mut r, &handles[side]) {
                    let n = usize::from(r.u8());
                    let _ = e.send_urgent(now, h, &vec![0x21; n]);
                }
            }
            10 => {
                let port = 5000 + u16::from(r.u8() % 4);
                match e.udp_bind(SocketAddrV4::new(addrs[side], port)) {
                    Ok(h) => {
                        let n = usize::from(r.u16()) % 9000;
                        let to = SocketAddrV4::new(addrs[other], 5000 + u16::from(r.u8() % 4));
                        let _ = e.udp_send(now, h, &vec![0x77; n], Some(to));
                        handles[side].push(h);
                    }
                    Err(_) => {
                        if let Some(h) = pick(&mut r, &handles[side]) {
                            let _ = e.udp_recv(h, &mut buf, false);
                        }
                    }
                }
            }
            11 | 12 => advance(&mut now, start, &mut r),
            _ => {
                // The wire: deliver, drop, duplicate or hold back packets.
                let n = usize::from(r.u8() % 16) + 1;
                for _ in 0..n.min(wire.len()) {
                    let i = usize::from(r.u8()) % wire.len();
                    let (to, d) = wire.remove(i);
                    match r.u8() % 8 {
                        0 => {}
                        1 => {
                            hosts[to].handle_packet(now, &d);
                            hosts[to].handle_packet(now, &d);
                        }
                        2 => {
                            // Corrupted: one byte flipped, checksums left as they were.
                            let mut bad = d;
                            let at = usize::from(r.u16()) % bad.len();
                            bad[at] ^= r.u8() | 1;
                            hosts[to].handle_packet(now, &bad);
                        }
                        _ => hosts[to].handle_packet(now, &d),
                    }
                }
            }
        }
        for (i, e) in hosts.iter_mut().enumerate() {
            let mut out = Vec::new();
            drain(e, now, &mut out);
            // Bound the wire: the oldest are lost.
            wire.extend(out.into_iter().map(|d| (1 - i, d)));
            if wire.len() > 4096 {
                wire.drain(..wire.len() - 4096);
            }
        }
    }
}

/// The seed corpus: inputs written from real traffic, so the fuzzer starts
/// from deep states. Returns (target, name, input).
pub fn seeds() -> Vec<(&'static str, String, Vec<u8>)> {
    let mut out = Vec::new();
    let s = Scene::new();
    // The peer's own next words: ACKs, window updates, retransmissions.
    let mut w = Writer::default();
    for d in &s.peer_backlog {
        w.packet(d);
    }
    w.advance(200).advance(0x8000 | 2);
    out.push(("ingress", "peer-backlog".to_string(), w.0.clone()));
    for (i, d) in s.peer_backlog.iter().enumerate() {
        let mut w = Writer::default();
        w.packet(d).advance(1000);
        out.push(("ingress", format!("peer-{i}"), w.0));
    }
    // A new handshake and data from a fresh peer port.
    let mut fresh = engine(PEER, config(), 9);
    let now = s.now;
    let h = fresh
        .connect(now, SocketAddrV4::new(LOCAL, PORT))
        .expect("connect");
    let _ = fresh.send(now, h, b"GET / HTTP/1.1\r\n\r\n");
    let mut pkts = Vec::new();
    drain(&mut fresh, now, &mut pkts);
    let mut w = Writer::default();
    for d in &pkts {
        w.packet(d);
    }
    out.push(("ingress", "fresh-syn".to_string(), w.0));
    // Forged: zero deltas (an exact ACK), a SACK block, an ICMP frag-needed,
    // a RST at the expected sequence number, time passing.
    let forged: [(&str, Vec<u8>); 5] = [
        (
            "exact-ack",
            vec![0, 0, 0, 0, 0, 0, 0, 0x10, 0xff, 0xff, 0, 0, 0],
        ),
        (
            "sack",
            vec![
                1, 0, 0, 0, 0, 0, 0, 0x10, 0x10, 0, 1, 3, 0, 0, 0, 0, 0x05, 0xb4, 0, 0,
            ],
        ),
        ("frag-needed", vec![3, 1, 0, 0x02, 0x40, 0]),
        ("rst", vec![2, 2, 0, 0, 0, 0, 0, 0x04, 0, 0, 0, 0, 0]),
        ("time", vec![4, 0x80, 0x05, 4, 0x00, 0x64]),
    ];
    for (name, v) in forged {
        out.push(("ingress_forged", name.to_string(), v));
    }
    // api: both sides with timestamps and SACK, a listener, a connect, data,
    // deliveries, a close.
    let mut v = vec![0x0f, 0, 3, 3, 0x0f, 1, 3, 3];
    v.extend_from_slice(&[0, 0, 0, 2]); // A listens on 80, backlog 2
    v.extend_from_slice(&[1, 1, 0]); // B connects to 80
    for _ in 0..6 {
        v.extend_from_slice(&[0, 13, 15, 0, 3, 1, 3, 2, 3, 3, 3]); // deliver
        v.extend_from_slice(&[1, 13, 15, 0, 3, 1, 3, 2, 3, 3, 3]);
    }
    v.extend_from_slice(&[0, 2, 0]); // A accepts
    v.extend_from_slice(&[1, 3, 0, 0x10, 0]); // B sends 16 KiB
    for _ in 0..10 {
        v.extend_from_slice(&[0, 11, 0, 1]);
        v.extend_from_slice(&[1, 13, 15, 0, 3, 1, 3, 2, 3, 3, 3]);
        v.extend_from_slice(&[0, 13, 15, 0, 3, 1, 3, 2, 3, 3, 3]);
        v.extend_from_slice(&[0, 4, 0, 0x40, 0]);
    }
    v.extend_from_slice(&[1, 6, 0, 0, 1]); // B closes
    out.push(("api", "connect-send-close".to_string(), v));
    // wire: no fix-ups, one well-formed datagram of each kind.
    let syn = wire::tcp(
        (PEER, 40_000),
        (LOCAL, PORT),
        1,
        0,
        0x02,
        65_535,
        &[
            2, 4, 5, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7,
        ],
        &[],
    );
    let mut udp = Vec::new();
    udp.extend_from_slice(&53u16.to_be_bytes());
    udp.extend_from_slice(&datagram::UDP_PORT.to_be_bytes());
    udp.extend_from_slice(&13u16.to_be_bytes());
    udp.extend_from_slice(&[0, 0, b'h', b'e', b'l', b'l', b'o']);
    let sum = wire::checksum(&[&wire::pseudo(PEER, LOCAL, wire::UDP, udp.len()), &udp]);
    udp[6..8].copy_from_slice(&sum.to_be_bytes());
    let mut echo = vec![8, 0, 0, 0, 0x12, 0x34, 0, 1, b'p', b'i', b'n', b'g'];
    let sum = wire::checksum(&[&echo]);
    echo[2..4].copy_from_slice(&sum.to_be_bytes());
    let mut frag = wire::ipv4(PEER, LOCAL, wire::UDP, 64, &udp[..8]);
    frag[6] = 0x20;
    frag[10..12].fill(0);
    let sum = wire::checksum(&[&frag[..20]]);
    frag[10..12].copy_from_slice(&sum.to_be_bytes());
    let datagrams = [
        ("tcp-syn", syn),
        ("udp", wire::ipv4(PEER, LOCAL, wire::UDP, 64, &udp)),
        ("icmp-echo", wire::ipv4(PEER, LOCAL, wire::ICMP, 64, &echo)),
        ("fragment", frag),
    ];
    for (name, d) in datagrams {
        let mut v = vec![0];
        v.extend_from_slice(&d);
        out.push(("wire", name.to_string(), v));
    }
    // reassembly: 3 000 bytes (a datagram of 3 008, 376 pieces of 8) with
    // 60 s to complete and 4 MiB, cut in three: in order, reversed, with an
    // overlap, with a corrupted piece, and left to time out.
    let head = [0x0b, 0xb8, 7, 0x00, 0x01, 12, 0xea, 0x5f];
    let piece = |start: u16, pieces_of_8: u8| {
        let mut v = vec![0];
        v.extend_from_slice(&start.to_be_bytes());
        v.push(pieces_of_8 - 1);
        v
    };
    let cuts = [piece(0, 185), piece(185, 185), piece(370, 184)];
    let reassembly: [(&str, Vec<Vec<u8>>); 5] = [
        ("in-order", cuts.to_vec()),
        ("reversed", cuts.iter().rev().cloned().collect()),
        (
            "overlap",
            vec![
                cuts[0].clone(),
                piece(100, 185),
                cuts[1].clone(),
                cuts[2].clone(),
            ],
        ),
        (
            "corrupt",
            vec![
                cuts[0].clone(),
                vec![4, 0, 185, 184, 0, 9, 0x40],
                cuts[2].clone(),
            ],
        ),
        (
            "timeout",
            vec![
                cuts[0].clone(),
                vec![6, 0x80, 61],
                cuts[1].clone(),
                cuts[2].clone(),
            ],
        ),
    ];
    // stack: A listens on 80, B connects, A accepts; each writes 3 000
    // bytes, reads, shuts down and reads the EOF; a UDP datagram each way.
    let sleep = |ms: u8| [0, 16, 0, ms];
    let mut v = vec![1, 32, 7, 5, 5, 7, 5, 5];
    v.extend_from_slice(&[0, 0, 0]); // A: listen on 80
    v.extend_from_slice(&[1, 1, 0]); // B: connect to A:80
    v.extend_from_slice(&[0, 2, 0]); // A: accept on listener 0
    v.extend_from_slice(&sleep(50));
    for c in 0..2 {
        v.extend_from_slice(&[0, 3, c, 0x0b, 0xb8]); // write 3 000 bytes
    }
    v.extend_from_slice(&sleep(100));
    for c in 0..2 {
        v.extend_from_slice(&[0, 5, c, 0x10, 0]); // read up to 4 KiB
        v.extend_from_slice(&[0, 8, c]); // shut down
    }
    v.extend_from_slice(&sleep(100));
    for c in 0..2 {
        v.extend_from_slice(&[0, 7, c, 10]); // wait, read: EOF
    }
    v.extend_from_slice(&[0, 12, 0]); // A: UDP on 5000
    v.extend_from_slice(&[1, 12, 0]); // B: UDP on 5000
    v.extend_from_slice(&[0, 12, 0, 0, 0, 200, 9]); // send 200 bytes to B
    v.extend_from_slice(&[1, 12, 0, 1, 0, 100, 3]); // send 100 bytes to A
    v.extend_from_slice(&sleep(10));
    v.extend_from_slice(&[0, 13, 0, 1, 13, 1]); // both receive
    out.push(("stack", "echo-close-udp".to_string(), v));
    // stack: the same connection handed to a worker task at each end, each
    // writing 16 000 bytes while reading the other's to the end.
    let mut v = vec![1, 32, 7, 5, 5, 7, 5, 5];
    v.extend_from_slice(&[0, 0, 0, 1, 1, 0, 0, 2, 0]); // listen, connect, accept
    v.extend_from_slice(&sleep(50));
    v.extend_from_slice(&[0, 15, 0, 0x07, 0xd0]); // a worker takes one end
    v.extend_from_slice(&[1, 15, 0, 0x07, 0xd0]); // and one the other
    v.extend_from_slice(&sleep(200));
    out.push(("stack", "workers".to_string(), v));
    for (name, ops) in reassembly {
        let mut v = head.to_vec();
        v.extend(ops.concat());
        out.push(("reassembly", name.to_string(), v));
    }
    out
}
