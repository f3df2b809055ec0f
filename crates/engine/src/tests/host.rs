//! The host around TCP: loopback delivery, several addresses, the source
//! address by route, and ephemeral ports per destination (ip/,
//! tcp/calls.rs).

use super::*;

const LO: Ipv4Addr = Ipv4Addr::LOCALHOST;
const SECOND_IP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);

fn engine() -> Engine {
    Engine::new(base_config(), Interface::new(LOCAL_IP, 24, 1500), [1, 2])
}

/// Runs the engine's output until it has nothing more: returns what went to
/// the device.
fn pump(e: &mut Engine, now: Instant) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 1500];
    while let Some(n) = e.poll_transmit(now, &mut buf) {
        out.push(buf[..n].to_vec());
    }
    out
}

/// A connection from a fresh socket to `to`, accepted by listener `l`, all
/// inside the host: (client, server).
fn loop_connect(e: &mut Engine, l: SocketHandle, to: SocketAddrV4) -> (SocketHandle, SocketHandle) {
    let now = Instant::ZERO;
    let c = e.connect(now, to).unwrap();
    let device = pump(e, now);
    assert!(device.is_empty(), "loopback traffic reached the device");
    assert_eq!(e.connect_result(c), Ok(true));
    let s = e.accept(l).unwrap();
    (c, s)
}

fn exchange(e: &mut Engine, c: SocketHandle, s: SocketHandle) {
    let now = Instant::ZERO;
    let data = pattern(0, 200_000);
    let mut sent = 0;
    let mut got = Vec::new();
    let mut buf = vec![0u8; 65536];
    while got.len() < data.len() {
        if sent < data.len() {
            sent += e.send(now, c, &data[sent..]).unwrap_or(0);
        }
        assert!(pump(e, now).is_empty());
        while let Ok(n) = e.recv(now, s, &mut buf) {
            got.extend_from_slice(&buf[..n]);
        }
        assert!(pump(e, now).is_empty());
    }
    assert_eq!(got, data);
}

#[test]
fn loopback_connection_never_touches_the_device() {
    let mut e = engine();
    let l = e
        .listen(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 80), 8)
        .unwrap();
    assert_eq!(e.local_addr(l).unwrap().ip(), &Ipv4Addr::UNSPECIFIED);
    let (c, s) = loop_connect(&mut e, l, SocketAddrV4::new(LO, 80));
    // Both ends on 127.0.0.1; each one's peer is the other.
    assert_eq!(e.local_addr(c).unwrap().ip(), &LO);
    assert_eq!(e.peer_addr(s).unwrap(), e.local_addr(c).unwrap());
    assert_eq!(e.peer_addr(c).unwrap(), e.local_addr(s).unwrap());
    exchange(&mut e, c, s);
    // The loopback MSS: 65535 − 40.
    assert_eq!(e.tcp_info(c).unwrap().snd_mss, 65495);
    e.close(Instant::ZERO, c);
    e.close(Instant::ZERO, s);
    assert!(pump(&mut e, Instant::ZERO).is_empty());
    let stats = e.stats();
    assert_eq!(stats.tx_packets, 0);
    assert_eq!(stats.rx_packets, 0);
    assert!(stats.loopback_packets > 10, "{stats:?}");
}

#[test]
fn connect_to_our_own_address_is_loopback() {
    let mut e = engine();
    let l = e
        .listen(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 80), 8)
        .unwrap();
    let (c, s) = loop_connect(&mut e, l, SocketAddrV4::new(LOCAL_IP, 80));
    // The source is the destination itself, as Linux picks it.
    assert_eq!(e.local_addr(c).unwrap().ip(), &LOCAL_IP);
    assert_eq!(e.local_addr(s).unwrap(), SocketAddrV4::new(LOCAL_IP, 80));
    exchange(&mut e, c, s);
    assert_eq!(e.stats().tx_packets, 0);
}

#[test]
fn a_listener_on_one_address_hears_only_that_address() {
    let mut e = engine();
    let l = e.listen(SocketAddrV4::new(LO, 81), 8).unwrap();
    // Through 127.0.0.1: accepted.
    let (c, _s) = loop_connect(&mut e, l, SocketAddrV4::new(LO, 81));
    assert!(e.state(c).is_ok());
    // Through our other address: refused, still inside the host.
    let c2 = e
        .connect(Instant::ZERO, SocketAddrV4::new(LOCAL_IP, 81))
        .unwrap();
    assert!(pump(&mut e, Instant::ZERO).is_empty());
    assert_eq!(e.connect_result(c2), Err(Error::ConnectionRefused));
}

#[test]
fn an_exact_listener_is_preferred_to_the_wildcard() {
    let mut e = engine();
    let wild = e.listen(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 82), 8);
    // The same port on a given address overlaps the wildcard: in use, as Linux.
    let wild = wild.unwrap();
    assert_eq!(
        e.listen(SocketAddrV4::new(LO, 82), 8),
        Err(Error::AddrInUse)
    );
    // With two addresses, each may have its own listener on a port.
    let a = e.listen(SocketAddrV4::new(LOCAL_IP, 83), 8).unwrap();
    let b = e.listen(SocketAddrV4::new(LO, 83), 8).unwrap();
    let (_, sa) = loop_connect(&mut e, a, SocketAddrV4::new(LOCAL_IP, 83));
    let (_, sb) = loop_connect(&mut e, b, SocketAddrV4::new(LO, 83));
    assert_eq!(e.local_addr(sa).unwrap().ip(), &LOCAL_IP);
    assert_eq!(e.local_addr(sb).unwrap().ip(), &LO);
    let (_, sw) = loop_connect(&mut e, wild, SocketAddrV4::new(LO, 82));
    assert_eq!(e.local_addr(sw).unwrap().ip(), &LO);
}

#[test]
fn a_loopback_source_reaches_only_the_host() {
    let mut e = engine();
    let from = SocketAddrV4::new(LO, 0);
    assert_eq!(
        e.connect_from(Instant::ZERO, from, remote()).err(),
        Some(Error::InvalidInput)
    );
    assert_eq!(
        e.bind(
            SocketAddrV4::new(Ipv4Addr::new(127, 1, 2, 3), 0),
            Reuse::default()
        )
        .map(|a| *a.ip()),
        Ok(Ipv4Addr::new(127, 1, 2, 3))
    );
    assert_eq!(
        e.bind(SocketAddrV4::new(REMOTE_IP, 0), Reuse::default()),
        Err(Error::AddrNotAvailable)
    );
}

#[test]
fn loopback_addresses_from_the_device_are_martians() {
    let mut e = engine();
    e.listen(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, LOCAL_PORT), 8)
        .unwrap();
    let syn = Seg::default().syn().no_ack();
    // To 127.0.0.1 from the wire (RFC 1122 §3.2.1.3).
    e.handle_packet(Instant::ZERO, &build(&syn, REMOTE_IP, LO));
    // From 127.0.0.1 on the wire.
    e.handle_packet(Instant::ZERO, &build(&syn, LO, LOCAL_IP));
    assert_eq!(e.stats().rx_martian, 2);
    assert!(pump(&mut e, Instant::ZERO).is_empty());
}

#[test]
fn a_second_address_serves_and_is_the_source_on_its_subnet() {
    let mut e = engine();
    assert_eq!(e.add_address(Cidr::new(SECOND_IP, 24)), Ok(()));
    assert_eq!(
        e.add_address(Cidr::new(SECOND_IP, 24)),
        Err(Error::AddrInUse)
    );
    assert_eq!(e.add_address(Cidr::new(LO, 8)), Err(Error::InvalidInput));
    assert_eq!(
        e.addresses(),
        &[Cidr::new(LOCAL_IP, 24), Cidr::new(SECOND_IP, 24)]
    );
    // A connect to a host on the second subnet leaves from the second address.
    let peer = SocketAddrV4::new(Ipv4Addr::new(198, 51, 100, 9), 80);
    let c = e.connect(Instant::ZERO, peer).unwrap();
    assert_eq!(e.local_addr(c).unwrap().ip(), &SECOND_IP);
    let out = pump(&mut e, Instant::ZERO);
    assert_eq!(out.len(), 1);
    assert_eq!(Ipv4Packet::new_unchecked(&out[0][..]).src_addr(), SECOND_IP);
    // Off both subnets: the first address.
    let far = SocketAddrV4::new(Ipv4Addr::new(203, 0, 113, 9), 80);
    let c2 = e.connect(Instant::ZERO, far).unwrap();
    assert_eq!(e.local_addr(c2).unwrap().ip(), &LOCAL_IP);
    // A wildcard listener answers on the second address, from it.
    e.listen(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 80), 8)
        .unwrap();
    pump(&mut e, Instant::ZERO);
    let syn = Seg::default().syn().no_ack();
    e.handle_packet(Instant::ZERO, &build(&syn, REMOTE_IP, SECOND_IP));
    let out = pump(&mut e, Instant::ZERO);
    assert_eq!(out.len(), 1);
    let ip = Ipv4Packet::new_unchecked(&out[0][..]);
    assert_eq!((ip.src_addr(), ip.dst_addr()), (SECOND_IP, REMOTE_IP));
    assert_eq!(parse(&out[0]).ctl, TcpControl::Syn);
}

#[test]
fn removing_an_address_resets_its_connections() {
    let mut h = Harness::new();
    let (c, _, _) = h.established_active();
    h.engine.add_address(Cidr::new(SECOND_IP, 24)).unwrap();
    assert_eq!(
        h.engine.remove_address(h.now, REMOTE_IP),
        Err(Error::AddrNotAvailable)
    );
    h.engine.remove_address(h.now, LOCAL_IP).unwrap();
    assert_eq!(h.engine.addresses(), &[Cidr::new(SECOND_IP, 24)]);
    assert_eq!(h.engine.addr(), SECOND_IP);
    let out = h.recv_all();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].ctl, TcpControl::Rst);
    assert_eq!(h.engine.connect_result(c), Err(Error::ConnectionAborted));
    // The old address is no longer ours.
    let syn = Seg::default().syn().no_ack();
    h.engine
        .handle_packet(h.now, &build(&syn, REMOTE_IP, LOCAL_IP));
    assert_eq!(h.engine.stats().rx_not_for_us, 1);
}

#[test]
fn echo_is_answered_on_every_address() {
    let mut e = engine();
    e.add_address(Cidr::new(SECOND_IP, 24)).unwrap();
    for dst in [LOCAL_IP, SECOND_IP] {
        let repr = smoltcp::wire::Icmpv4Repr::EchoRequest {
            ident: 7,
            seq_no: 1,
            data: b"ping",
        };
        let mut pkt = vec![0u8; 20 + repr.buffer_len()];
        let ip = Ipv4Repr {
            src_addr: REMOTE_IP,
            dst_addr: dst,
            next_header: IpProtocol::Icmp,
            payload_len: repr.buffer_len(),
            hop_limit: 64,
        };
        let caps = ChecksumCapabilities::default();
        ip.emit(&mut Ipv4Packet::new_unchecked(&mut pkt[..]), &caps);
        repr.emit(
            &mut smoltcp::wire::Icmpv4Packet::new_unchecked(&mut pkt[20..]),
            &caps,
        );
        e.handle_packet(Instant::ZERO, &pkt);
        let out = pump(&mut e, Instant::ZERO);
        assert_eq!(out.len(), 1);
        let reply = Ipv4Packet::new_unchecked(&out[0][..]);
        assert_eq!((reply.src_addr(), reply.dst_addr()), (dst, REMOTE_IP));
        assert!(reply.verify_checksum());
    }
}

#[test]
fn ephemeral_ports_differ_per_destination_and_do_not_collide() {
    let mut e = engine();
    let mut cfg = base_config();
    cfg.ephemeral_ports = (50000, 50099);
    let mut e2 = Engine::new(cfg, Interface::new(LOCAL_IP, 24, 1500), [1, 2]);
    // All 100 ports towards one destination, then none.
    let dst = SocketAddrV4::new(REMOTE_IP, 80);
    let mut ports = std::collections::HashSet::new();
    for _ in 0..100 {
        let c = e2.connect(Instant::ZERO, dst).unwrap();
        assert!(ports.insert(e2.local_addr(c).unwrap().port()));
    }
    assert_eq!(
        e2.connect(Instant::ZERO, dst).err(),
        Some(Error::AddrNotAvailable)
    );
    // Another destination (or port) still has them all.
    let other = SocketAddrV4::new(REMOTE_IP, 81);
    assert!(e2.connect(Instant::ZERO, other).is_ok());
    // The first ports towards different destinations start at different
    // places of the range (a keyed hash per destination).
    let starts: std::collections::HashSet<u16> = (0..8)
        .map(|i| {
            let c = e
                .connect(Instant::ZERO, SocketAddrV4::new(REMOTE_IP, 1000 + i))
                .unwrap();
            e.local_addr(c).unwrap().port()
        })
        .collect();
    assert!(starts.len() >= 6, "{starts:?}");
}

/// Runs an active open and a close from our side to TIME-WAIT, with
/// timestamps: returns the connection's local port.
fn time_wait(h: &mut Harness, port_range: (u16, u16)) -> SocketHandle {
    let _ = port_range;
    let c = h.engine.connect(h.now, remote()).unwrap();
    let syn = h.recv_one();
    let ts = syn.ts.map(|(v, _)| v).unwrap();
    let mut synack = h.peer(5000, syn.seq + 1).syn().ts(100, ts);
    synack.src_port = REMOTE_PORT;
    synack.dst_port = syn.src_port;
    h.send(synack);
    h.recv_all();
    h.engine.close(h.now, c);
    let fin = h.recv_one();
    assert_eq!(fin.ctl, TcpControl::Fin);
    let mut finack = h.peer(5001, fin.seq + 1).fin().ts(101, ts);
    finack.dst_port = syn.src_port;
    h.send(finack);
    h.recv_all();
    c
}

#[test]
fn time_wait_tuples_are_reused_only_when_timestamps_make_it_safe() {
    let mut cfg = base_config();
    cfg.timestamps = true;
    cfg.ephemeral_ports = (50000, 50000);
    let mut h = Harness::with_config(cfg.clone());
    let _c = time_wait(&mut h, cfg.ephemeral_ports);
    assert_eq!(h.engine.stats().states.time_wait, 1);
    // At once: the peer's last timestamp is fresh, no reuse; the only port
    // is taken.
    assert_eq!(
        h.engine.connect(h.now, remote()).err(),
        Some(Error::AddrNotAvailable)
    );
    // A second later the 4-tuple may be taken over.
    h.advance(secs(1));
    let c2 = h.engine.connect(h.now, remote()).unwrap();
    assert_eq!(h.engine.local_addr(c2).unwrap().port(), 50000);
    assert_eq!(h.engine.stats().time_wait_reused, 1);
    assert_eq!(h.engine.stats().states.time_wait, 0);
    assert_eq!(h.recv_one().ctl, TcpControl::Syn);

    // Without the option, never.
    cfg.tw_reuse = false;
    let mut h = Harness::with_config(cfg.clone());
    time_wait(&mut h, cfg.ephemeral_ports);
    h.advance(secs(1));
    assert_eq!(
        h.engine.connect(h.now, remote()).err(),
        Some(Error::AddrNotAvailable)
    );
}

/// An ICMP echo request of `len` data bytes from the remote host, as one
/// IPv4 datagram (DF clear, identification 0x1234).
fn echo_request(len: usize) -> Vec<u8> {
    let data = pattern(0, len);
    let repr = smoltcp::wire::Icmpv4Repr::EchoRequest {
        ident: 9,
        seq_no: 3,
        data: &data,
    };
    let mut pkt = vec![0u8; 20 + repr.buffer_len()];
    let ip = Ipv4Repr {
        src_addr: REMOTE_IP,
        dst_addr: LOCAL_IP,
        next_header: IpProtocol::Icmp,
        payload_len: repr.buffer_len(),
        hop_limit: 64,
    };
    let caps = ChecksumCapabilities::default();
    let mut packet = Ipv4Packet::new_unchecked(&mut pkt[..]);
    ip.emit(&mut packet, &caps);
    packet.set_dont_frag(false);
    packet.set_ident(0x1234);
    packet.fill_checksum();
    repr.emit(
        &mut smoltcp::wire::Icmpv4Packet::new_unchecked(&mut pkt[20..]),
        &caps,
    );
    pkt
}

fn fragments(datagram: Vec<u8>, mtu: usize) -> Vec<Vec<u8>> {
    let mut f = crate::ip::frag::Fragmenter::new(datagram, mtu);
    let mut out = Vec::new();
    let mut buf = vec![0u8; mtu];
    while let Some(n) = f.next(&mut buf, true) {
        out.push(buf[..n].to_vec());
    }
    out
}

/// Reassembles what the engine sent with a fresh reassembler.
fn reassemble(packets: &[Vec<u8>]) -> Vec<u8> {
    let mut r = crate::ip::frag::Reassembler::new(secs(60), 1 << 20);
    let mut whole = None;
    for p in packets {
        if let crate::ip::frag::Push::Reassembled(d) = r.push(Instant::ZERO, p) {
            whole = Some(d);
        }
    }
    whole.expect("the fragments make a datagram")
}

#[test]
fn a_fragmented_echo_request_is_reassembled_and_answered_in_fragments() {
    let mut e = engine();
    let request = echo_request(4000);
    let mut frags = fragments(request.clone(), 1500);
    assert_eq!(frags.len(), 3);
    // Out of order, one duplicated (before the datagram completes: a copy
    // that comes after starts a new partial datagram, as on Linux).
    frags.reverse();
    frags.insert(2, frags[1].clone());
    for f in &frags {
        e.handle_packet(Instant::ZERO, f);
    }
    let stats = e.stats();
    assert_eq!(stats.frag_reassembled, 1);
    assert_eq!(stats.icmp_echo_replies, 1);
    assert_eq!(stats.frag_pending, 0);
    let out = pump(&mut e, Instant::ZERO);
    assert_eq!(out.len(), 3, "the reply goes in fragments");
    assert!(out.iter().all(|p| p.len() <= 1500));
    assert!(
        out.iter()
            .all(|p| Ipv4Packet::new_unchecked(&p[..]).verify_checksum())
    );
    let reply = reassemble(&out);
    let ip = Ipv4Packet::new_unchecked(&reply[..]);
    assert_eq!((ip.src_addr(), ip.dst_addr()), (LOCAL_IP, REMOTE_IP));
    let icmp = smoltcp::wire::Icmpv4Packet::new_unchecked(ip.payload());
    assert_eq!(icmp.msg_type(), smoltcp::wire::Icmpv4Message::EchoReply);
    assert!(icmp.verify_checksum());
    assert_eq!(icmp.data(), &request[28..], "the request's data, unchanged");
    assert_eq!(e.stats().frag_created, 1);
}

#[test]
fn a_fragmented_syn_reaches_its_listener() {
    let mut e = engine();
    e.listen(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, LOCAL_PORT), 8)
        .unwrap();
    let syn = Seg::default().syn().no_ack().data(&pattern(0, 100));
    let mut datagram = build(&syn, REMOTE_IP, LOCAL_IP);
    {
        let mut p = Ipv4Packet::new_unchecked(&mut datagram[..]);
        p.set_dont_frag(false);
        p.fill_checksum();
    }
    for f in fragments(datagram, 68) {
        e.handle_packet(Instant::ZERO, &f);
    }
    let out = pump(&mut e, Instant::ZERO);
    assert_eq!(out.len(), 1);
    let synack = parse(&out[0]);
    assert_eq!(synack.ctl, TcpControl::Syn);
    assert_eq!(synack.ack, Some(1));
}

#[test]
fn fragments_that_never_complete_time_out_with_an_icmp_error() {
    let mut e = engine();
    let frags = fragments(echo_request(3000), 1500);
    // The first fragment only: quoted in the error.
    e.handle_packet(Instant::ZERO, &frags[0]);
    // A last fragment of another datagram, without its first: no error.
    let mut other = fragments(echo_request(3000), 1500).pop().unwrap();
    Ipv4Packet::new_unchecked(&mut other[..]).set_ident(0x4321);
    Ipv4Packet::new_unchecked(&mut other[..]).fill_checksum();
    e.handle_packet(Instant::ZERO, &other);
    assert_eq!(e.stats().frag_pending, 2);
    assert!(e.stats().frag_memory > 0);
    let deadline = e.poll_timeout().expect("the reassembly timer");
    assert_eq!(deadline, Instant::ZERO + secs(60));
    e.handle_timeout(Instant::from_millis(59_999));
    assert_eq!(e.stats().frag_pending, 2);
    e.handle_timeout(deadline);
    let stats = e.stats();
    assert_eq!(
        (stats.frag_pending, stats.frag_timeouts, stats.frag_memory),
        (0, 2, 0)
    );
    let out = pump(&mut e, deadline);
    assert_eq!(out.len(), 1);
    let ip = Ipv4Packet::new_unchecked(&out[0][..]);
    assert_eq!(ip.dst_addr(), REMOTE_IP);
    let icmp = smoltcp::wire::Icmpv4Packet::new_unchecked(ip.payload());
    assert_eq!(icmp.msg_type(), smoltcp::wire::Icmpv4Message::TimeExceeded);
    assert_eq!(icmp.msg_code(), 1);
    assert!(icmp.verify_checksum());
    // The quote: the first fragment's header and 8 bytes.
    assert_eq!(&ip.payload()[8..], &frags[0][..28]);
    assert_eq!(e.poll_timeout(), None);
}

#[test]
fn overlapping_fragments_drop_the_datagram() {
    let mut e = engine();
    let frags = fragments(echo_request(3000), 1500);
    e.handle_packet(Instant::ZERO, &frags[0]);
    // The second fragment moved 8 bytes back: it overlaps the first.
    let mut bad = frags[1].clone();
    {
        let mut p = Ipv4Packet::new_unchecked(&mut bad[..]);
        let off = p.frag_offset();
        p.set_frag_offset(off - 8);
        p.fill_checksum();
    }
    e.handle_packet(Instant::ZERO, &bad);
    for f in &frags[1..] {
        e.handle_packet(Instant::ZERO, f);
    }
    let stats = e.stats();
    assert_eq!(stats.frag_reassembled, 0);
    assert!(stats.frag_dropped >= 1);
    assert_eq!(stats.icmp_echo_replies, 0);
    assert!(pump(&mut e, Instant::ZERO).is_empty());
}
