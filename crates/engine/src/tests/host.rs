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
