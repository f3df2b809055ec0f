//! Malformed input: truncated packets, bad checksums, bad headers and
//! garbage are dropped and counted, never panic, and never disturb a
//! connection. Property tests feed arbitrary bytes and mutated segments to
//! engines in LISTEN and ESTABLISHED and check that whatever comes out is a
//! valid IPv4/TCP datagram.

use proptest::collection::vec;
use proptest::prelude::*;

use super::*;

/// Recomputes the IPv4 header checksum in place.
fn fix_ip_checksum(pkt: &mut [u8]) {
    Ipv4Packet::new_unchecked(&mut pkt[..]).fill_checksum();
}

/// Recomputes the TCP checksum in place (IPv4 header of 20 bytes).
fn fix_tcp_checksum(pkt: &mut [u8]) {
    let total = usize::from(Ipv4Packet::new_unchecked(&pkt[..]).total_len()).min(pkt.len());
    let (src, dst) = (IpAddress::Ipv4(REMOTE_IP), IpAddress::Ipv4(LOCAL_IP));
    TcpPacket::new_unchecked(&mut pkt[20..total]).fill_checksum(&src, &dst);
}

/// Sets the IPv4 total length, fixing the header checksum.
fn set_total_len(pkt: &mut [u8], len: usize) {
    Ipv4Packet::new_unchecked(&mut pkt[..]).set_total_len(len as u16);
    fix_ip_checksum(pkt);
}

/// A connection with some data received, so that damage would show.
fn connected() -> (Harness, SocketHandle, u32, u32) {
    let mut h = Harness::new();
    let (_l, c, iss, irs) = h.established_passive();
    (h, c, iss, irs)
}

/// Asserts the connection is intact: a good segment is still taken and ACKed.
fn still_works(h: &mut Harness, c: SocketHandle, iss: u32, irs: u32) {
    assert_eq!(h.engine.recv(h.now, c, &mut [0; 8]), Err(Error::WouldBlock));
    h.send(h.peer(irs + 1, iss + 1).data(b"hello"));
    h.send(h.peer(irs + 6, iss + 1).data(b"world"));
    assert_eq!(h.recv_one(), h.ours(iss + 1, irs + 11).win(free(10)));
    assert_eq!(h.read(c), Ok(b"helloworld".to_vec()));
}

#[test]
fn truncated_packets_are_dropped_and_counted() {
    let (mut h, c, iss, irs) = connected();
    let before = h.engine.stats();
    let pkt = build(
        &h.peer(irs + 1, iss + 1).data(b"hello"),
        REMOTE_IP,
        LOCAL_IP,
    );
    assert_eq!(pkt.len(), 45);
    // Shorter than the IPv4 header, or than its total length.
    for len in [0, 1, 19, 20, 39, 40, 44] {
        h.engine.handle_packet(h.now, &pkt[..len]);
    }
    // A consistent IPv4 header around a 10-byte TCP header.
    let mut short = pkt[..30].to_vec();
    set_total_len(&mut short, 30);
    h.engine.handle_packet(h.now, &short);
    // A TCP data offset beyond the datagram, and one below 5 words.
    for offset in [60u8, 16] {
        let mut p = pkt.clone();
        TcpPacket::new_unchecked(&mut p[20..]).set_header_len(offset);
        fix_tcp_checksum(&mut p);
        h.engine.handle_packet(h.now, &p);
    }
    // An IPv4 header length beyond the datagram, and one below 5 words.
    for ihl in [0x4f_u8, 0x44] {
        let mut p = pkt.clone();
        p[0] = ihl;
        h.engine.handle_packet(h.now, &p);
    }
    h.recv_none();
    let after = h.engine.stats();
    assert_eq!(after.rx_packets - before.rx_packets, 12);
    assert_eq!(after.rx_malformed - before.rx_malformed, 12);
    still_works(&mut h, c, iss, irs);
}

#[test]
fn bad_checksums_are_dropped_and_counted() {
    let (mut h, c, iss, irs) = connected();
    let pkt = build(
        &h.peer(irs + 1, iss + 1).data(b"hello"),
        REMOTE_IP,
        LOCAL_IP,
    );
    // A flipped payload byte: the TCP checksum fails.
    let mut p = pkt.clone();
    p[42] ^= 0x20;
    h.engine.handle_packet(h.now, &p);
    // A flipped sequence number byte.
    let mut p = pkt.clone();
    p[27] ^= 1;
    h.engine.handle_packet(h.now, &p);
    // A flipped TTL: the IPv4 header checksum fails.
    let mut p = pkt.clone();
    p[8] ^= 0xff;
    h.engine.handle_packet(h.now, &p);
    // A flipped checksum field itself.
    let mut p = pkt.clone();
    p[36] ^= 0x01;
    h.engine.handle_packet(h.now, &p);
    // A RST with a bad checksum must not reset anything.
    let mut p = build(&h.peer(irs + 1, iss + 1).rst(), REMOTE_IP, LOCAL_IP);
    p[30] ^= 0x80;
    h.engine.handle_packet(h.now, &p);
    h.recv_none();
    let stats = h.engine.stats();
    assert_eq!(stats.rx_bad_checksum, 5);
    assert_eq!(stats.rx_malformed, 0);
    assert_eq!(h.engine.state(c), Ok(State::Established));
    still_works(&mut h, c, iss, irs);
}

#[test]
fn checksums_are_not_checked_with_rx_offload() {
    let iface = Interface {
        checksum_rx_offload: true,
        ..Interface::new(LOCAL_IP, 24, 1500)
    };
    let mut h = Harness::new();
    h.engine = Engine::new(Config::default(), iface, [1, 2]);
    h.engine.listen(local(), 8).unwrap();
    let mut p = build(&Seg::default().syn(), REMOTE_IP, LOCAL_IP);
    p[36] ^= 0xff;
    h.engine.handle_packet(h.now, &p);
    assert_eq!(h.recv_one().ctl, TcpControl::Syn);
    assert_eq!(h.engine.stats().rx_bad_checksum, 0);
}

#[test]
fn bad_headers_are_dropped_and_counted() {
    let (mut h, c, iss, irs) = connected();
    let seg = h.peer(irs + 1, iss + 1).data(b"hello");
    let pkt = build(&seg, REMOTE_IP, LOCAL_IP);
    // Another destination address.
    h.engine
        .handle_packet(h.now, &build(&seg, REMOTE_IP, Ipv4Addr::new(192, 0, 2, 99)));
    // A protocol the engine does not speak (SCTP).
    let mut p = pkt.clone();
    Ipv4Packet::new_unchecked(&mut p[..]).set_next_header(IpProtocol::Unknown(132));
    fix_ip_checksum(&mut p);
    h.engine.handle_packet(h.now, &p);
    // IPv6 version nibble.
    let mut p = pkt.clone();
    p[0] = 0x65;
    h.engine.handle_packet(h.now, &p);
    // A fragment (more fragments set), and a later fragment: held for
    // reassembly (RFC 1122 §3.3.2), not malformed.
    let mut p = pkt.clone();
    Ipv4Packet::new_unchecked(&mut p[..]).set_more_frags(true);
    fix_ip_checksum(&mut p);
    h.engine.handle_packet(h.now, &p);
    let mut p = pkt.clone();
    Ipv4Packet::new_unchecked(&mut p[..]).set_frag_offset(8);
    fix_ip_checksum(&mut p);
    h.engine.handle_packet(h.now, &p);
    // Source port 0.
    let mut p = pkt.clone();
    TcpPacket::new_unchecked(&mut p[20..]).set_src_port(0);
    fix_tcp_checksum(&mut p);
    h.engine.handle_packet(h.now, &p);
    // An MSS option of the wrong length, and an option running past the header.
    for opts in [[2u8, 3, 5, 0], [8, 10, 0, 0]] {
        let mut p = pkt[..40].to_vec();
        p.extend_from_slice(&opts);
        p.extend_from_slice(b"hello");
        set_total_len(&mut p, 49);
        TcpPacket::new_unchecked(&mut p[20..]).set_header_len(24);
        fix_tcp_checksum(&mut p);
        h.engine.handle_packet(h.now, &p);
    }
    // The unknown protocol is answered with ICMP protocol unreachable (RFC
    // 1122 §3.2.2.1); nothing else is answered.
    let mut buf = vec![0u8; 1500];
    let n = h
        .engine
        .poll_transmit(h.now, &mut buf)
        .expect("ICMP protocol unreachable");
    let ip = Ipv4Packet::new_checked(&buf[..n]).unwrap();
    assert_eq!(ip.next_header(), IpProtocol::Icmp);
    assert_eq!(
        &ip.payload()[..2],
        &[3, 2],
        "destination unreachable, protocol"
    );
    h.recv_none();
    let stats = h.engine.stats();
    assert_eq!(stats.rx_not_for_us, 1);
    assert_eq!(stats.rx_unknown_protocol, 1);
    assert_eq!(stats.icmp_errors_sent, 1);
    assert_eq!(stats.rx_malformed, 3);
    assert_eq!(stats.frag_received, 2);
    assert_eq!(stats.rx_not_ipv4, 1);
    assert_eq!(stats.rx_bad_checksum, 0);
    still_works(&mut h, c, iss, irs);
}

/// A deterministic byte generator (xorshift64*).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

#[test]
fn random_garbage_is_dropped_and_counted() {
    let (mut h, c, iss, irs) = connected();
    let before = h.engine.stats();
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let n = 2000;
    for i in 0..n {
        let len = (rng.next() % 100) as usize;
        let mut p: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        // Half of them look like IPv4 from the peer to us, to get past the first checks.
        if i % 2 == 0 && len >= 20 {
            p[0] = 0x45;
            p[2..4].copy_from_slice(&(len as u16).to_be_bytes());
            p[6] = 0;
            p[7] = 0;
            p[9] = 6;
            p[12..16].copy_from_slice(&REMOTE_IP.octets());
            p[16..20].copy_from_slice(&LOCAL_IP.octets());
            fix_ip_checksum(&mut p);
        }
        h.engine.handle_packet(h.now, &p);
    }
    h.recv_none();
    let s = h.engine.stats();
    let dropped = s.rx_malformed
        + s.rx_not_ipv4
        + s.rx_bad_checksum
        + s.rx_not_for_us
        + s.rx_unknown_protocol;
    assert_eq!(s.rx_packets - before.rx_packets, n);
    assert_eq!(dropped, n);
    assert!(s.rx_malformed > 0 && s.rx_bad_checksum > 0);
    still_works(&mut h, c, iss, irs);
}

// ----- Property tests -----

/// What a property test does to an engine.
#[derive(Debug, Clone)]
enum Op {
    /// Raw bytes as a datagram.
    Bytes(Vec<u8>),
    /// A valid segment, mutated.
    Mutated(Mutated),
    /// Time passes (ms).
    Advance(u16),
    /// The application writes this many bytes.
    Send(u16),
    /// The application reads.
    Recv,
    /// The application shuts down, closes or aborts.
    Shutdown,
    Close,
    Abort,
}

#[derive(Debug, Clone)]
struct Mutated {
    /// Sequence number relative to the connection's RCV.NXT at the start (or absolute).
    seq: i32,
    /// Acknowledgement relative to our ISS + 1 (or absolute), if any.
    ack: Option<i32>,
    absolute: bool,
    ctl: TcpControl,
    psh: bool,
    window: u16,
    mss: Option<u16>,
    wscale: Option<u8>,
    payload: Vec<u8>,
    /// To port 80 (the listener or connection) or elsewhere.
    to_listener: bool,
    /// (index, xor) byte flips anywhere in the datagram.
    flips: Vec<(usize, u8)>,
    /// Cut the datagram to this length.
    truncate: Option<usize>,
    /// Recompute the checksums after mutating, so the damage reaches TCP.
    fix_checksums: bool,
    /// The timestamps option (TSval relative to the peer's first, TSecr absolute).
    ts: Option<(i32, u32)>,
}

fn ctl_strategy() -> impl Strategy<Value = TcpControl> {
    prop_oneof![
        4 => Just(TcpControl::None),
        1 => Just(TcpControl::Syn),
        1 => Just(TcpControl::Fin),
        1 => Just(TcpControl::Rst),
    ]
}

fn mutated_strategy() -> impl Strategy<Value = Mutated> {
    (
        (
            prop_oneof![3 => -3000i32..70_000, 1 => any::<i32>()],
            proptest::option::weighted(0.9, prop_oneof![3 => -3000i32..5000, 1 => any::<i32>()]),
            any::<bool>(),
            ctl_strategy(),
            any::<bool>(),
            prop_oneof![Just(0u16), Just(65535u16), any::<u16>()],
            proptest::option::of(any::<u16>()),
            proptest::option::of(any::<u8>()),
        ),
        (
            vec(any::<u8>(), 0..200),
            proptest::bool::weighted(0.9),
            vec((any::<usize>(), 1..=255u8), 0..3),
            proptest::option::weighted(0.1, any::<usize>()),
            proptest::bool::weighted(0.7),
            proptest::option::weighted(
                0.7,
                (
                    prop_oneof![3 => -100i32..100, 1 => any::<i32>()],
                    any::<u32>(),
                ),
            ),
        ),
    )
        .prop_map(
            |(
                (seq, ack, absolute, ctl, psh, window, mss, wscale),
                (payload, to_listener, flips, truncate, fix_checksums, ts),
            )| Mutated {
                seq,
                ack,
                absolute,
                ctl,
                psh,
                window,
                mss,
                wscale,
                payload,
                to_listener,
                flips,
                truncate,
                fix_checksums,
                ts,
            },
        )
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => vec(any::<u8>(), 0..120).prop_map(Op::Bytes),
        8 => mutated_strategy().prop_map(Op::Mutated),
        2 => (0u16..3000).prop_map(Op::Advance),
        1 => (0u16..5000).prop_map(Op::Send),
        1 => Just(Op::Recv),
        1 => Just(Op::Shutdown),
        1 => Just(Op::Close),
        1 => Just(Op::Abort),
    ]
}

impl Mutated {
    fn packet(&self, rcv_base: u32, snd_base: u32) -> Vec<u8> {
        let (seq, ack) = if self.absolute {
            (self.seq as u32, self.ack.map(|a| a as u32))
        } else {
            (
                rcv_base.wrapping_add(self.seq as u32),
                self.ack.map(|a| snd_base.wrapping_add(a as u32)),
            )
        };
        let seg = Seg {
            src_port: REMOTE_PORT,
            dst_port: if self.to_listener { LOCAL_PORT } else { 8080 },
            seq,
            ack,
            ctl: self.ctl,
            window: self.window,
            mss: self.mss,
            wscale: self.wscale,
            psh: self.psh,
            payload: self.payload.clone(),
            ts: self
                .ts
                .map(|(tsval, tsecr)| (PEER_TS.wrapping_add(tsval as u32), tsecr)),
            ..Seg::default()
        };
        let mut p = build(&seg, REMOTE_IP, LOCAL_IP);
        for &(i, x) in &self.flips {
            let i = i % p.len();
            p[i] ^= x;
        }
        if let Some(t) = self.truncate {
            p.truncate(t % (p.len() + 1));
        }
        if self.fix_checksums && p.len() >= 20 {
            let ihl = usize::from(p[0] & 0x0f) * 4;
            if ihl >= 20 && ihl <= p.len() {
                Ipv4Packet::new_unchecked(&mut p[..]).fill_checksum();
                let total = usize::from(u16::from_be_bytes([p[2], p[3]])).min(p.len());
                if total >= ihl + 20 {
                    let (src, dst) = (IpAddress::Ipv4(REMOTE_IP), IpAddress::Ipv4(LOCAL_IP));
                    TcpPacket::new_unchecked(&mut p[ihl..total]).fill_checksum(&src, &dst);
                }
            }
        }
        p
    }
}

/// Drains the engine's output, checking every datagram is valid IPv4 from
/// us carrying valid TCP (or a valid ICMP error about a bad datagram), and
/// its events.
fn drain(h: &mut Harness) -> Result<(), TestCaseError> {
    let mut buf = vec![0u8; 1500];
    let mut n = 0;
    while let Some(len) = h.engine.poll_transmit(h.now, &mut buf) {
        prop_assert!(len <= 1500, "datagram of {} bytes", len);
        if let Ok(ip) = Ipv4Packet::new_checked(&buf[..len])
            && ip.next_header() == IpProtocol::Icmp
        {
            let caps = ChecksumCapabilities::default();
            prop_assert!(Ipv4Repr::parse(&ip, &caps).is_ok(), "bad IPv4 header");
            let icmp = smoltcp::wire::Icmpv4Packet::new_checked(ip.payload())
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            if icmp.msg_type() == smoltcp::wire::Icmpv4Message::TimeExceeded {
                // Reassembly time exceeded quotes a fragment's header, which
                // smoltcp's parser refuses: check it by hand.
                prop_assert!(icmp.verify_checksum(), "bad ICMP checksum");
                prop_assert_eq!(icmp.msg_code(), 1);
                let data = icmp.data();
                prop_assert!(data.len() >= 28, "quote of {} bytes", data.len());
                let q = Ipv4Packet::new_unchecked(data);
                prop_assert!(q.src_addr() == ip.dst_addr() && q.more_frags());
                prop_assert_eq!(q.frag_offset(), 0);
            } else {
                prop_assert!(
                    smoltcp::wire::Icmpv4Repr::parse(&icmp, &caps).is_ok(),
                    "invalid ICMP message {:02x?}",
                    &ip.payload()[..ip.payload().len().min(40)]
                );
            }
            let dst = ip.dst_addr();
            prop_assert!(dst != LOCAL_IP && !dst.is_broadcast(), "ICMP to {}", dst);
            n += 1;
            continue;
        }
        let seg = try_parse(&buf[..len]).map_err(TestCaseError::fail)?;
        let ip = Ipv4Packet::new_checked(&buf[..len]).unwrap();
        prop_assert_eq!(ip.src_addr(), LOCAL_IP);
        // A flipped bit may have changed the source address of what we were fed
        // (and the checksums been fixed after): the answer then goes there, but
        // never to ourselves or to a non-unicast address.
        let dst = ip.dst_addr();
        prop_assert!(
            dst != LOCAL_IP && !dst.is_broadcast() && !dst.is_multicast() && !dst.is_unspecified(),
            "reply to {}",
            dst
        );
        prop_assert!(seg.src_port != 0 && seg.dst_port != 0);
        n += 1;
        prop_assert!(n < 10_000, "endless output");
    }
    while h.engine.poll_event().is_some() {}
    Ok(())
}

/// The peer's first TSval when timestamps are negotiated.
const PEER_TS: u32 = 0x8000_0000;

fn run_ops(established: bool, ops: Vec<Op>) -> Result<(), TestCaseError> {
    run_ops_with(established, false, ops)
}

/// [`run_ops`], optionally on a connection with timestamps negotiated (RFC 7323).
fn run_ops_with(established: bool, timestamps: bool, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let mut h = Harness::with_config(Config {
        recv_buffer: 64 * 1024,
        timestamps,
        ..base_config()
    });
    let (c, iss, irs) = if established && timestamps {
        let l = h.engine.listen(local(), 8).unwrap();
        h.send(Seg {
            seq: 1000,
            mss: Some(1460),
            ..Seg::default().syn().ts(PEER_TS, 0)
        });
        let synack = h.recv_one();
        let ours = synack.ts.expect("timestamps negotiated").0;
        h.send(h.peer(1001, synack.seq + 1).ts(PEER_TS, ours));
        let c = h.engine.accept(l).unwrap();
        (Some(c), synack.seq, 1000)
    } else if established {
        let (_l, c, iss, irs) = h.established_passive();
        (Some(c), iss, irs)
    } else {
        h.engine.listen(local(), 4).unwrap();
        (None, 0, 1000)
    };
    let (rcv_base, snd_base) = (irs.wrapping_add(1), iss.wrapping_add(1));
    for op in ops {
        match op {
            Op::Bytes(b) => h.engine.handle_packet(h.now, &b),
            Op::Mutated(m) => h.engine.handle_packet(h.now, &m.packet(rcv_base, snd_base)),
            Op::Advance(ms) => h.advance(Duration::from_millis(u64::from(ms))),
            Op::Send(n) => {
                if let Some(c) = c {
                    let _ = h.engine.send(h.now, c, &pattern(0, usize::from(n)));
                }
            }
            Op::Recv => {
                if let Some(c) = c {
                    let _ = h.engine.recv(h.now, c, &mut [0; 3000]);
                }
            }
            Op::Shutdown => {
                if let Some(c) = c {
                    let _ = h.engine.shutdown(h.now, c);
                }
            }
            Op::Close => {
                if let Some(c) = c {
                    h.engine.close(h.now, c);
                }
            }
            Op::Abort => {
                if let Some(c) = c {
                    h.engine.abort(h.now, c);
                }
            }
        }
        drain(&mut h)?;
    }
    // Let every timer run out: nothing may panic, and the output stays valid.
    for _ in 0..200 {
        let Some(t) = h.engine.poll_timeout() else {
            break;
        };
        h.advance_to(t.max(h.now));
        drain(&mut h)?;
    }
    let s = h.engine.stats();
    prop_assert!(s.rx_malformed + s.rx_bad_checksum + s.rx_not_for_us <= s.rx_packets);
    Ok(())
}

proptest! {
    // 256 cases unless PROPTEST_CASES says otherwise.
    #![proptest_config(ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn arbitrary_bytes_never_panic(
        established in any::<bool>(),
        packets in vec(vec(any::<u8>(), 0..120), 1..10),
    ) {
        run_ops(established, packets.into_iter().map(Op::Bytes).collect())?;
    }

    #[test]
    fn mutated_segments_in_listen_never_panic(ops in vec(op_strategy(), 1..12)) {
        run_ops(false, ops)?;
    }

    #[test]
    fn mutated_segments_in_established_never_panic(ops in vec(op_strategy(), 1..12)) {
        run_ops(true, ops)?;
    }

    #[test]
    fn mutated_segments_with_timestamps_never_panic(
        established in any::<bool>(),
        ops in vec(op_strategy(), 1..12),
    ) {
        run_ops_with(established, true, ops)?;
    }
}
