//! UDP sockets (udp/): binding, datagrams both ways over the device and over
//! loopback, checksums, port unreachable and its report to a connected
//! socket, bounded queues, broadcast, fragmentation.

use smoltcp::wire::{Icmpv4Message, Icmpv4Packet, UdpPacket};

use super::*;

const ANY: Ipv4Addr = Ipv4Addr::UNSPECIFIED;

fn engine() -> Engine {
    Engine::new(base_config(), Interface::new(LOCAL_IP, 24, 1500), [1, 2])
}

fn pump(e: &mut Engine, now: Instant) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 1500];
    while let Some(n) = e.poll_transmit(now, &mut buf) {
        out.push(buf[..n].to_vec());
    }
    out
}

/// A UDP datagram from `from` to `to` as the wire carries it.
fn datagram(from: SocketAddrV4, to: SocketAddrV4, data: &[u8], checksum: bool) -> Vec<u8> {
    let mut pkt = vec![0u8; 28 + data.len()];
    let caps = if checksum {
        ChecksumCapabilities::default()
    } else {
        let mut c = ChecksumCapabilities::default();
        c.udp = smoltcp::phy::Checksum::None;
        c
    };
    Engine::udp_emit(&caps, from, to, 64, data, &mut pkt);
    pkt
}

fn recv(e: &mut Engine, h: SocketHandle) -> Result<(Vec<u8>, SocketAddrV4), Error> {
    let mut buf = vec![0u8; 65536];
    let (n, from) = e.udp_recv(h, &mut buf, false)?;
    Ok((buf[..n].to_vec(), from))
}

#[test]
fn datagrams_both_ways_over_the_device() {
    let mut e = engine();
    let s = e.udp_bind(SocketAddrV4::new(ANY, 53)).unwrap();
    assert_eq!(e.local_addr(s), Ok(SocketAddrV4::new(ANY, 53)));
    assert_eq!(e.peer_addr(s), Err(Error::NotConnected));
    assert!(!e.is_readable(s));
    let peer = SocketAddrV4::new(REMOTE_IP, 5353);
    e.handle_packet(
        Instant::ZERO,
        &datagram(peer, SocketAddrV4::new(LOCAL_IP, 53), b"query", true),
    );
    // A zero checksum means none was computed (RFC 768): accepted.
    e.handle_packet(
        Instant::ZERO,
        &datagram(peer, SocketAddrV4::new(LOCAL_IP, 53), b"plain", false),
    );
    assert!(e.is_readable(s));
    assert_eq!(e.poll_event().map(|ev| ev.readable), Some(true));
    let mut small = [0u8; 3];
    // Peeking leaves it; a short buffer cuts the datagram.
    assert_eq!(e.udp_recv(s, &mut small, true), Ok((3, peer)));
    assert_eq!(e.udp_peek_len(s), Ok((5, peer)));
    assert_eq!(recv(&mut e, s), Ok((b"query".to_vec(), peer)));
    assert_eq!(recv(&mut e, s), Ok((b"plain".to_vec(), peer)));
    assert_eq!(recv(&mut e, s), Err(Error::WouldBlock));
    // The answer leaves from the address the query came to.
    assert_eq!(e.udp_send(Instant::ZERO, s, b"answer", Some(peer)), Ok(6));
    let out = pump(&mut e, Instant::ZERO);
    assert_eq!(out.len(), 1);
    let ip = Ipv4Packet::new_checked(&out[0][..]).unwrap();
    assert!(ip.verify_checksum());
    assert_eq!((ip.src_addr(), ip.dst_addr()), (LOCAL_IP, REMOTE_IP));
    let udp = UdpPacket::new_checked(ip.payload()).unwrap();
    assert!(udp.verify_checksum(&IpAddress::Ipv4(LOCAL_IP), &IpAddress::Ipv4(REMOTE_IP)));
    assert_eq!((udp.src_port(), udp.dst_port()), (53, 5353));
    assert_eq!(udp.payload(), b"answer");
    let stats = e.stats();
    assert_eq!((stats.udp_rx, stats.udp_tx), (2, 1));
}

#[test]
fn a_bad_checksum_is_dropped_and_counted() {
    let mut e = engine();
    let s = e.udp_bind(SocketAddrV4::new(ANY, 53)).unwrap();
    let mut pkt = datagram(remote(), SocketAddrV4::new(LOCAL_IP, 53), b"x", true);
    let last = pkt.len() - 1;
    pkt[last] ^= 0xff;
    e.handle_packet(Instant::ZERO, &pkt);
    assert_eq!(e.stats().rx_bad_checksum, 1);
    assert_eq!(recv(&mut e, s), Err(Error::WouldBlock));
    assert!(pump(&mut e, Instant::ZERO).is_empty());
}

#[test]
fn a_closed_port_is_answered_with_port_unreachable() {
    let mut e = engine();
    let pkt = datagram(remote(), SocketAddrV4::new(LOCAL_IP, 9), b"hello", true);
    e.handle_packet(Instant::ZERO, &pkt);
    let out = pump(&mut e, Instant::ZERO);
    assert_eq!(out.len(), 1);
    let ip = Ipv4Packet::new_checked(&out[0][..]).unwrap();
    assert_eq!(ip.dst_addr(), REMOTE_IP);
    let icmp = Icmpv4Packet::new_checked(ip.payload()).unwrap();
    assert_eq!(
        (icmp.msg_type(), icmp.msg_code()),
        (Icmpv4Message::DstUnreachable, 3)
    );
    assert_eq!(e.stats().udp_no_port, 1);
    // Never for a broadcast (RFC 1122 §3.2.2).
    let bcast = datagram(
        remote(),
        SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 255), 9),
        b"b",
        true,
    );
    e.handle_packet(Instant::ZERO, &bcast);
    assert!(pump(&mut e, Instant::ZERO).is_empty());
}

#[test]
fn loopback_datagrams_and_refused_on_a_connected_socket() {
    let mut e = engine();
    let a = e
        .udp_bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0))
        .unwrap();
    let b = e.udp_bind(SocketAddrV4::new(ANY, 0)).unwrap();
    let a_addr = e.local_addr(a).unwrap();
    let b_port = e.local_addr(b).unwrap().port();
    let to_b = SocketAddrV4::new(Ipv4Addr::LOCALHOST, b_port);
    e.udp_send(Instant::ZERO, a, &pattern(0, 60_000), Some(to_b))
        .unwrap();
    assert!(pump(&mut e, Instant::ZERO).is_empty(), "loopback only");
    // 60 000 bytes in one datagram: loopback's MTU holds it unfragmented.
    assert_eq!(recv(&mut e, b), Ok((pattern(0, 60_000), a_addr)));
    assert_eq!(e.stats().frag_created, 0);
    // Connected to a port nobody holds: the ICMP error comes back through
    // loopback and the next call reports it, once.
    e.udp_connect(a, SocketAddrV4::new(Ipv4Addr::LOCALHOST, 9))
        .unwrap();
    assert_eq!(
        e.peer_addr(a),
        Ok(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 9))
    );
    e.udp_send(Instant::ZERO, a, b"anyone?", None).unwrap();
    assert!(pump(&mut e, Instant::ZERO).is_empty());
    assert!(e.readiness(a).error);
    assert_eq!(recv(&mut e, a), Err(Error::ConnectionRefused));
    assert_eq!(recv(&mut e, a), Err(Error::WouldBlock));
    // Connected, it hears only its peer.
    e.udp_connect(b, a_addr).unwrap();
    let c = e
        .udp_bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0))
        .unwrap();
    e.udp_send(Instant::ZERO, c, b"stranger", Some(to_b))
        .unwrap();
    e.udp_send(Instant::ZERO, a, b"friend", Some(to_b)).unwrap();
    pump(&mut e, Instant::ZERO);
    assert_eq!(recv(&mut e, b), Ok((b"friend".to_vec(), a_addr)));
    assert_eq!(recv(&mut e, b), Err(Error::WouldBlock));
}

#[test]
fn binding_rules() {
    let mut e = engine();
    let a = e.udp_bind(SocketAddrV4::new(ANY, 7)).unwrap();
    assert_eq!(
        e.udp_bind(SocketAddrV4::new(LOCAL_IP, 7)),
        Err(Error::AddrInUse)
    );
    assert_eq!(
        e.udp_bind(SocketAddrV4::new(REMOTE_IP, 0)),
        Err(Error::AddrNotAvailable)
    );
    // TCP and UDP ports are separate.
    assert!(e.listen(SocketAddrV4::new(ANY, 7), 1).is_ok());
    e.close(Instant::ZERO, a);
    assert!(e.udp_bind(SocketAddrV4::new(LOCAL_IP, 7)).is_ok());
    let (lo, hi) = e.config().ephemeral_ports;
    let p = e.udp_bind(SocketAddrV4::new(ANY, 0)).unwrap();
    assert!((lo..=hi).contains(&e.local_addr(p).unwrap().port()));
    // Sends that cannot go.
    let to_nobody = SocketAddrV4::new(REMOTE_IP, 0);
    assert_eq!(
        e.udp_send(Instant::ZERO, p, b"x", Some(to_nobody)),
        Err(Error::InvalidInput)
    );
    assert_eq!(
        e.udp_send(Instant::ZERO, p, b"x", None),
        Err(Error::NotConnected)
    );
    let big = vec![0u8; MAX_UDP_PAYLOAD + 1];
    assert_eq!(
        e.udp_send(Instant::ZERO, p, &big, Some(remote())),
        Err(Error::MessageTooLong)
    );
    let lo_bound = e
        .udp_bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0))
        .unwrap();
    assert_eq!(
        e.udp_send(Instant::ZERO, lo_bound, b"x", Some(remote())),
        Err(Error::InvalidInput)
    );
}

#[test]
fn broadcast_needs_so_broadcast_and_is_heard_by_the_wildcard() {
    let mut e = engine();
    let s = e.udp_bind(SocketAddrV4::new(ANY, 67)).unwrap();
    let bcast = SocketAddrV4::new(Ipv4Addr::BROADCAST, 68);
    assert_eq!(
        e.udp_send(Instant::ZERO, s, b"discover", Some(bcast)),
        Err(Error::PermissionDenied)
    );
    e.set_broadcast(s, true).unwrap();
    assert_eq!(e.broadcast(s), Ok(true));
    assert_eq!(
        e.udp_send(Instant::ZERO, s, b"discover", Some(bcast)),
        Ok(8)
    );
    let out = pump(&mut e, Instant::ZERO);
    assert_eq!(
        Ipv4Packet::new_unchecked(&out[0][..]).dst_addr(),
        Ipv4Addr::BROADCAST
    );
    // A subnet broadcast arrives at the wildcard socket.
    let pkt = datagram(
        remote(),
        SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 255), 67),
        b"offer",
        true,
    );
    e.handle_packet(Instant::ZERO, &pkt);
    assert_eq!(recv(&mut e, s), Ok((b"offer".to_vec(), remote())));
}

#[test]
fn a_full_receive_queue_drops_and_counts() {
    let mut cfg = base_config();
    cfg.udp_recv_buffer = 4096;
    let mut e = Engine::new(cfg, Interface::new(LOCAL_IP, 24, 1500), [1, 2]);
    let s = e.udp_bind(SocketAddrV4::new(ANY, 53)).unwrap();
    for i in 0..10u8 {
        let pkt = datagram(remote(), SocketAddrV4::new(LOCAL_IP, 53), &[i; 1000], true);
        e.handle_packet(Instant::ZERO, &pkt);
    }
    let stats = e.stats();
    assert_eq!(stats.udp_rx, 3);
    assert_eq!(stats.udp_rx_dropped, 7);
    // The first ones were kept, in order.
    for i in 0..3u8 {
        assert_eq!(recv(&mut e, s).unwrap().0, vec![i; 1000]);
    }
}

#[test]
fn a_full_send_buffer_blocks_until_the_device_takes_it() {
    let mut cfg = base_config();
    cfg.udp_send_buffer = 3000;
    let mut e = Engine::new(cfg, Interface::new(LOCAL_IP, 24, 1500), [1, 2]);
    let s = e.udp_bind(SocketAddrV4::new(ANY, 0)).unwrap();
    let mut sent = 0;
    while e
        .udp_send(Instant::ZERO, s, &[1; 1000], Some(remote()))
        .is_ok()
    {
        sent += 1;
    }
    assert_eq!(sent, 3);
    assert!(!e.is_writable(s));
    while e.poll_event().is_some() {}
    let mut buf = vec![0u8; 1500];
    e.poll_transmit(Instant::ZERO, &mut buf).unwrap();
    assert!(e.is_writable(s));
    let ev = e.poll_event().expect("writable again");
    assert!(ev.writable && ev.handle == s);
}

#[test]
fn large_datagrams_go_in_fragments_and_come_back_whole() {
    let mut e = engine();
    let s = e.udp_bind(SocketAddrV4::new(ANY, 4000)).unwrap();
    let data = pattern(0, 4000);
    let peer = SocketAddrV4::new(REMOTE_IP, 4000);
    e.udp_send(Instant::ZERO, s, &data, Some(peer)).unwrap();
    let out = pump(&mut e, Instant::ZERO);
    assert_eq!(out.len(), 3);
    assert!(out.iter().all(|p| p.len() <= 1500));
    assert_eq!(e.stats().frag_created, 1);
    // Fed back in with the addresses swapped (the pseudo-header sum, and so
    // the UDP checksum computed over the whole datagram, stays valid), they
    // make the datagram again.
    for p in &out {
        let mut p = p.clone();
        let mut ip = Ipv4Packet::new_unchecked(&mut p[..]);
        ip.set_src_addr(REMOTE_IP);
        ip.set_dst_addr(LOCAL_IP);
        ip.fill_checksum();
        e.handle_packet(Instant::ZERO, &p);
    }
    assert_eq!(recv(&mut e, s), Ok((data.clone(), peer)));
    // A datagram the peer fragmented to 576 bytes arrives whole too.
    let whole = datagram(remote(), SocketAddrV4::new(LOCAL_IP, 4000), &data, true);
    let mut whole = whole;
    {
        let mut ip = Ipv4Packet::new_unchecked(&mut whole[..]);
        ip.set_dont_frag(false);
        ip.set_ident(77);
        ip.fill_checksum();
    }
    let mut f = crate::ip::frag::Fragmenter::new(whole, 576);
    let mut buf = vec![0u8; 576];
    while let Some(n) = f.next(&mut buf, true) {
        e.handle_packet(Instant::ZERO, &buf[..n]);
    }
    assert_eq!(recv(&mut e, s), Ok((data, remote())));
}
