//! Scripted-segment tests: an engine in a known state, a segment fed in at a
//! known time, the exact reply asserted. Time only moves when a test moves it.
//!
//! The harness lives here; the tests are split by topic:
//!
//! - `handshake`: opening connections;
//! - `data`: data and ACKs both ways, delayed ACK, sequence wrap-around,
//!   reassembly, windows and zero-window probing;
//! - `retransmit`: RTO timing, backoff and give-up, Karn's rule, fast retransmit;
//! - `close`: FIN in every order, half-close, TIME-WAIT, RST on close and abort;
//! - `reset`: RST and SYN handling (RFC 5961);
//! - `timestamps`: RFC 7323 timestamps, RTT from TSecr, PAWS;
//! - `options`: keepalive, user/connect timeouts, linger, quick ACK, challenge-ACK rate limit;
//! - `states`: simultaneous open, half-open connections, retransmission corner cases;
//! - `conformance`: smaller RFC 9293 §3.10 / RFC 1122 §4.2 rules (see docs/conformance.md);
//! - `lossy`: two engines over a lossy, reordering, duplicating link (proptest);
//! - `listener`: backlog and listener close;
//! - `malformed`: broken input, plus property tests;
//! - `icmp`: echo, unreachable errors, and ICMP errors about our segments;
//! - `sack`: SACK negotiation, the receiver's SACK and D-SACK blocks, and
//!   SACK-based loss recovery (RFC 2018, RFC 2883, RFC 6675);
//! - `rack`: RACK-TLP time-based loss detection and tail loss probes (RFC 8985);
//! - `cc`: congestion control choice, window validation and undo;
//! - `recovery`: two engines over a lossy, reordering in-test link with a
//!   simulated clock: bursts of loss, tail loss, reordering.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{
    IpAddress, IpProtocol, Ipv4Packet, Ipv4Repr, TcpControl, TcpPacket, TcpRepr, TcpSeqNumber,
    TcpTimestampRepr,
};

use super::*;

mod cc;
mod close;
mod conformance;
mod data;
mod handshake;
mod host;
mod icmp;
mod listener;
mod lossy;
mod malformed;
mod memory;
mod options;
mod rack;
mod recovery;
mod reset;
mod retransmit;
mod sack;
mod states;
mod syncookies;
mod timestamps;
mod udp;

pub(crate) const LOCAL_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
pub(crate) const REMOTE_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
pub(crate) const LOCAL_PORT: u16 = 80;
pub(crate) const REMOTE_PORT: u16 = 49500;

pub(crate) fn local() -> SocketAddrV4 {
    SocketAddrV4::new(LOCAL_IP, LOCAL_PORT)
}
pub(crate) fn remote() -> SocketAddrV4 {
    SocketAddrV4::new(REMOTE_IP, REMOTE_PORT)
}

pub(crate) fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

pub(crate) fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// The window field we advertise with `unread` bytes in the 64 KiB receive
/// buffer of [`Harness::new`] (unscaled: 65536 free is sent as 65535).
pub(crate) fn free(unread: usize) -> u16 {
    (64 * 1024 - unread).min(65535) as u16
}

/// `n` bytes of a recognisable pattern starting at `start`.
pub(crate) fn pattern(start: usize, n: usize) -> Vec<u8> {
    (start..start + n).map(|i| (i % 251) as u8).collect()
}

/// A segment as the test writes or reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Seg {
    pub src_port: u16,
    pub dst_port: u16,
    pub seq: u32,
    pub ack: Option<u32>,
    pub ctl: TcpControl,
    pub window: u16,
    pub mss: Option<u16>,
    pub wscale: Option<u8>,
    /// The PSH flag (only meaningful without SYN/FIN/RST: smoltcp carries it as a control).
    pub psh: bool,
    pub payload: Vec<u8>,
    /// The timestamps option (TSval, TSecr).
    pub ts: Option<(u32, u32)>,
    /// The SACK-permitted option (RFC 2018 §2).
    pub sack_permitted: bool,
    /// SACK blocks, in the order carried.
    pub sack: Vec<(u32, u32)>,
}

impl Default for Seg {
    fn default() -> Self {
        Seg {
            src_port: REMOTE_PORT,
            dst_port: LOCAL_PORT,
            seq: 0,
            ack: None,
            ctl: TcpControl::None,
            window: 65535,
            mss: None,
            wscale: None,
            psh: false,
            payload: Vec::new(),
            ts: None,
            sack_permitted: false,
            sack: Vec::new(),
        }
    }
}

impl Seg {
    /// With this payload.
    pub fn data(mut self, payload: &[u8]) -> Seg {
        self.payload = payload.to_vec();
        self
    }
    /// With the PSH flag.
    pub fn psh(mut self) -> Seg {
        self.psh = true;
        self
    }
    /// With the FIN flag.
    pub fn fin(mut self) -> Seg {
        self.ctl = TcpControl::Fin;
        self
    }
    /// With the RST flag.
    pub fn rst(mut self) -> Seg {
        self.ctl = TcpControl::Rst;
        self
    }
    /// With the SYN flag.
    pub fn syn(mut self) -> Seg {
        self.ctl = TcpControl::Syn;
        self
    }
    /// With this window field.
    pub fn win(mut self, window: u16) -> Seg {
        self.window = window;
        self
    }
    /// With the timestamps option.
    pub fn ts(mut self, tsval: u32, tsecr: u32) -> Seg {
        self.ts = Some((tsval, tsecr));
        self
    }
    /// With these SACK blocks.
    pub fn sack(mut self, blocks: &[(u32, u32)]) -> Seg {
        self.sack = blocks.to_vec();
        self
    }
    /// With the SACK-permitted option.
    pub fn sack_ok(mut self) -> Seg {
        self.sack_permitted = true;
        self
    }
    /// Without the ACK flag.
    pub fn no_ack(mut self) -> Seg {
        self.ack = None;
        self
    }
}

pub(crate) struct Harness {
    pub engine: Engine,
    pub now: Instant,
    /// Our port on the connection under test (80 for passive opens).
    pub port: u16,
}

impl Harness {
    /// Default configuration but a 64 KiB receive buffer (so the window fits
    /// the 16-bit field unscaled when the peer does not scale).
    pub fn new() -> Harness {
        Harness::with_config(Config {
            recv_buffer: 64 * 1024,
            ..base_config()
        })
    }

    /// Like [`new`](Harness::new) with NewReno congestion control, whose
    /// window arithmetic (RFC 5681, RFC 6582) the older tests spell out.
    pub fn newreno() -> Harness {
        Harness::with_config(Config {
            recv_buffer: 64 * 1024,
            send_buffer_initial: 256 * 1024,
            congestion: CongestionAlgorithm::NewReno,
            ..Config::default()
        })
    }

    pub fn with_config(config: Config) -> Harness {
        Harness::with_mtu(config, 1500)
    }

    pub fn with_mtu(config: Config, mtu: usize) -> Harness {
        let iface = Interface::new(LOCAL_IP, 24, mtu);
        Harness {
            engine: Engine::new(config, iface, [1, 2]),
            now: Instant::from_millis(1_000),
            port: LOCAL_PORT,
        }
    }

    /// Moves the clock so that a connection between `local` and `remote`
    /// opened now gets an initial sequence number at most 249 below `iss`, and
    /// returns it: the ISN is the keyed hash of the 4-tuple plus a clock ticking
    /// every 4 µs (RFC 6528). The clock lands on a whole millisecond, the timer
    /// wheel's tick, so timer deadlines stay exact.
    pub fn set_clock_for_iss(
        &mut self,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        iss: u32,
    ) -> u32 {
        let f = self.engine.secret.isn(Instant::ZERO, local, remote).0;
        let m = iss.wrapping_sub(f);
        let m = m - m % 250;
        self.now = Instant::from_nanos(u64::from(m) * 4_000);
        assert_eq!(self.now.as_nanos() % 1_000_000, 0);
        let got = self.engine.secret.isn(self.now, local, remote).0;
        assert!(iss.wrapping_sub(got) < 250);
        got
    }

    pub fn advance(&mut self, d: Duration) {
        self.now = self.now + d;
        self.engine.handle_timeout(self.now);
    }

    pub fn advance_to(&mut self, t: Instant) {
        assert!(t >= self.now, "time runs forward");
        self.now = t;
        self.engine.handle_timeout(self.now);
    }

    /// Asserts that the next timer is due exactly at `t`, that nothing goes out
    /// a millisecond before, and fires it. Returns what goes out at `t`.
    pub fn fire_at(&mut self, t: Instant) -> Vec<Seg> {
        assert_eq!(
            self.engine.poll_timeout(),
            Some(t),
            "next timer at {} ms (now {} ms)",
            t.as_millis(),
            self.now.as_millis()
        );
        if t > self.now + ms(1) {
            self.advance_to(Instant::from_nanos(t.as_nanos() - 1_000_000));
            self.recv_none();
        }
        self.advance_to(t);
        self.recv_all()
    }

    /// Like [`fire_at`](Harness::fire_at), expecting exactly one segment.
    pub fn fire_one_at(&mut self, t: Instant) -> Seg {
        let mut all = self.fire_at(t);
        assert_eq!(all.len(), 1, "expected one segment at {t:?}, got {all:#?}");
        all.pop().unwrap()
    }

    /// Feeds a segment from the remote host.
    pub fn send(&mut self, seg: Seg) {
        let packet = build(&seg, REMOTE_IP, LOCAL_IP);
        self.engine.handle_packet(self.now, &packet);
    }

    /// Feeds a segment from the remote host with control bits added to its
    /// header (`0x01` FIN, `0x02` SYN, `0x04` RST): the combinations `Seg`
    /// cannot carry (smoltcp's representation holds one control).
    pub fn send_with_flags(&mut self, seg: Seg, flags: u8) {
        let mut packet = build(&seg, REMOTE_IP, LOCAL_IP);
        packet[33] |= flags;
        let (src, dst) = (IpAddress::Ipv4(REMOTE_IP), IpAddress::Ipv4(LOCAL_IP));
        TcpPacket::new_unchecked(&mut packet[20..]).fill_checksum(&src, &dst);
        self.engine.handle_packet(self.now, &packet);
    }

    /// Every segment the engine wants to send now.
    pub fn recv_all(&mut self) -> Vec<Seg> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; 1500];
        while let Some(n) = self.engine.poll_transmit(self.now, &mut buf) {
            out.push(parse(&buf[..n]));
        }
        out
    }

    /// Exactly one segment.
    pub fn recv_one(&mut self) -> Seg {
        let mut all = self.recv_all();
        assert_eq!(all.len(), 1, "expected one segment, got {all:#?}");
        all.pop().unwrap()
    }

    pub fn recv_none(&mut self) {
        let all = self.recv_all();
        assert!(all.is_empty(), "expected no segment, got {all:#?}");
    }

    /// A segment from the peer to the connection under test, with an ACK.
    pub fn peer(&self, seq: u32, ack: u32) -> Seg {
        Seg {
            dst_port: self.port,
            seq,
            ack: Some(ack),
            ..Seg::default()
        }
    }

    /// A segment we are expected to send on the connection under test: an ACK
    /// with the full 64 KiB window (65535 unscaled) unless changed.
    pub fn ours(&self, seq: u32, ack: u32) -> Seg {
        Seg {
            src_port: self.port,
            dst_port: REMOTE_PORT,
            seq,
            ack: Some(ack),
            ..Seg::default()
        }
    }

    /// Reads everything readable (at most 1 MiB).
    pub fn read(&mut self, c: SocketHandle) -> Result<Vec<u8>, Error> {
        let mut buf = vec![0u8; 1 << 20];
        let n = self.engine.recv(self.now, c, &mut buf)?;
        buf.truncate(n);
        Ok(buf)
    }

    /// A listener on port 80 that has accepted a connection from the remote:
    /// returns (listener, connection, our ISS, their ISS).
    pub fn established_passive(&mut self) -> (SocketHandle, SocketHandle, u32, u32) {
        self.established_passive_irs(1000)
    }

    /// Like [`established_passive`](Harness::established_passive) with the
    /// peer's initial sequence number chosen.
    pub fn established_passive_irs(&mut self, irs: u32) -> (SocketHandle, SocketHandle, u32, u32) {
        let l = self.engine.listen(local(), 8).unwrap();
        self.port = LOCAL_PORT;
        self.send(Seg {
            seq: irs,
            ctl: TcpControl::Syn,
            mss: Some(1460),
            ..Seg::default()
        });
        let synack = self.recv_one();
        let iss = synack.seq;
        self.send(self.peer(irs.wrapping_add(1), iss.wrapping_add(1)));
        self.recv_none();
        let c = self.engine.accept(l).unwrap();
        assert_eq!(self.engine.state(c), Ok(State::Established));
        while self.engine.poll_event().is_some() {}
        (l, c, iss, irs)
    }

    /// An active open to the remote, established: (connection, our ISS, their ISS).
    pub fn established_active(&mut self) -> (SocketHandle, u32, u32) {
        let c = self.engine.connect(self.now, remote()).unwrap();
        let syn = self.recv_one();
        self.port = syn.src_port;
        let iss = syn.seq;
        let irs = 5000;
        self.send(Seg {
            src_port: REMOTE_PORT,
            dst_port: syn.src_port,
            seq: irs,
            ack: Some(iss + 1),
            ctl: TcpControl::Syn,
            mss: Some(1460),
            ..Seg::default()
        });
        let ack = self.recv_one();
        assert_eq!(ack, self.ours(iss + 1, irs + 1));
        while self.engine.poll_event().is_some() {}
        (c, iss, irs)
    }
}

/// The defaults, less the options that add to every exchange (timestamps,
/// quick ACKs at connection start), so the basic tests script plain segments.
/// The tests of those options turn them on. The send buffer has its full
/// size from the start (as after `SO_SNDBUF`), so a test can write many
/// segments at once; `tests/memory.rs` tests its growth with the window.
pub(crate) fn base_config() -> Config {
    Config {
        timestamps: false,
        initial_quickacks: 0,
        send_buffer_initial: 256 * 1024,
        ..Config::default()
    }
}

pub(crate) fn build(seg: &Seg, src: Ipv4Addr, dst: Ipv4Addr) -> Vec<u8> {
    let repr = TcpRepr {
        src_port: seg.src_port,
        dst_port: seg.dst_port,
        control: match seg.ctl {
            TcpControl::None if seg.psh => TcpControl::Psh,
            c => c,
        },
        seq_number: TcpSeqNumber(seg.seq as i32),
        ack_number: seg.ack.map(|a| TcpSeqNumber(a as i32)),
        window_len: seg.window,
        window_scale: seg.wscale,
        max_seg_size: seg.mss,
        sack_permitted: seg.sack_permitted,
        sack_ranges: [0, 1, 2].map(|i| seg.sack.get(i).copied()),
        timestamp: seg.ts.map(|(v, e)| TcpTimestampRepr::new(v, e)),
        payload: &seg.payload,
    };
    let ip = Ipv4Repr {
        src_addr: src,
        dst_addr: dst,
        next_header: IpProtocol::Tcp,
        payload_len: repr.buffer_len(),
        hop_limit: 64,
    };
    let mut buf = vec![0u8; ip.buffer_len() + repr.buffer_len()];
    let caps = ChecksumCapabilities::default();
    ip.emit(&mut Ipv4Packet::new_unchecked(&mut buf[..]), &caps);
    repr.emit(
        &mut TcpPacket::new_unchecked(&mut buf[20..]),
        &IpAddress::Ipv4(src),
        &IpAddress::Ipv4(dst),
        &caps,
    );
    buf
}

/// Parses an outbound datagram, verifying both checksums; `Err` says what is wrong.
pub(crate) fn try_parse(packet: &[u8]) -> Result<Seg, String> {
    let caps = ChecksumCapabilities::default();
    let ip = Ipv4Packet::new_checked(packet).map_err(|e| format!("IPv4 header: {e}"))?;
    if usize::from(ip.total_len()) != packet.len() {
        return Err(format!(
            "IPv4 total length {} of {}",
            ip.total_len(),
            packet.len()
        ));
    }
    let ip_repr = Ipv4Repr::parse(&ip, &caps).map_err(|e| format!("IPv4: {e}"))?;
    if ip_repr.next_header != IpProtocol::Tcp {
        return Err("not TCP".into());
    }
    let tcp = TcpPacket::new_checked(ip.payload()).map_err(|e| format!("TCP header: {e}"))?;
    let repr = TcpRepr::parse(
        &tcp,
        &IpAddress::Ipv4(ip_repr.src_addr),
        &IpAddress::Ipv4(ip_repr.dst_addr),
        &caps,
    )
    .map_err(|e| format!("TCP: {e}"))?;
    Ok(Seg {
        src_port: repr.src_port,
        dst_port: repr.dst_port,
        seq: repr.seq_number.0 as u32,
        ack: repr.ack_number.map(|a| a.0 as u32),
        ctl: match repr.control {
            TcpControl::Psh => TcpControl::None,
            c => c,
        },
        window: repr.window_len,
        mss: repr.max_seg_size,
        wscale: repr.window_scale,
        psh: repr.control == TcpControl::Psh,
        payload: repr.payload.to_vec(),
        ts: repr.timestamp.map(|t| (t.tsval, t.tsecr)),
        sack_permitted: repr.sack_permitted,
        sack: repr.sack_ranges.iter().flatten().copied().collect(),
    })
}

/// Segments in brief, for readable assertions: (sequence number less `base`, payload length, FIN).
pub(crate) fn brief(segs: &[Seg], base: u32) -> Vec<(u32, usize, bool)> {
    segs.iter()
        .map(|s| {
            (
                s.seq.wrapping_sub(base),
                s.payload.len(),
                s.ctl == TcpControl::Fin,
            )
        })
        .collect()
}

pub(crate) fn parse(packet: &[u8]) -> Seg {
    try_parse(packet).unwrap_or_else(|e| panic!("invalid outbound packet: {e}"))
}
