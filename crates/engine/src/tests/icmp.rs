//! ICMP: echo replies, unreachable errors for UDP and unknown protocols, and
//! ICMP errors about our own TCP segments (RFC 792, RFC 1122 §3.2.2, RFC 5927).

use smoltcp::wire::{Icmpv4DstUnreachable, Icmpv4Packet, Icmpv4Repr};

use super::*;

fn caps() -> ChecksumCapabilities {
    ChecksumCapabilities::default()
}

/// An IPv4 datagram from the remote host carrying `payload` of `protocol`.
fn datagram(protocol: IpProtocol, payload: &[u8]) -> Vec<u8> {
    let ip = Ipv4Repr {
        src_addr: REMOTE_IP,
        dst_addr: LOCAL_IP,
        next_header: protocol,
        payload_len: payload.len(),
        hop_limit: 64,
    };
    let mut buf = vec![0u8; 20 + payload.len()];
    ip.emit(&mut Ipv4Packet::new_unchecked(&mut buf[..]), &caps());
    buf[20..].copy_from_slice(payload);
    buf
}

fn icmp_message(repr: &Icmpv4Repr<'_>) -> Vec<u8> {
    let mut bytes = vec![0u8; repr.buffer_len()];
    repr.emit(&mut Icmpv4Packet::new_unchecked(&mut bytes[..]), &caps());
    bytes
}

/// An ICMP destination-unreachable from the remote host quoting `segment`,
/// a datagram we sent.
fn unreachable_about(segment: &[u8], reason: Icmpv4DstUnreachable, mtu: Option<u16>) -> Vec<u8> {
    let ip = Ipv4Packet::new_checked(segment).unwrap();
    let header = Ipv4Repr::parse(&ip, &caps()).unwrap();
    let quoted = &ip.payload()[..8];
    let mut bytes = icmp_message(&Icmpv4Repr::DstUnreachable {
        reason,
        header: Ipv4Repr {
            payload_len: 8,
            ..header
        },
        data: quoted,
    });
    if let Some(mtu) = mtu {
        bytes[6..8].copy_from_slice(&mtu.to_be_bytes());
        let mut p = Icmpv4Packet::new_unchecked(&mut bytes[..]);
        p.fill_checksum();
    }
    datagram(IpProtocol::Icmp, &bytes)
}

/// Every datagram the engine sends now, raw.
fn transmit_raw(h: &mut Harness) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 1500];
    while let Some(n) = h.engine.poll_transmit(h.now, &mut buf) {
        out.push(buf[..n].to_vec());
    }
    out
}

#[test]
fn echo_request_gets_echo_reply_with_same_data() {
    let mut h = Harness::new();
    let request = icmp_message(&Icmpv4Repr::EchoRequest {
        ident: 0x1234,
        seq_no: 7,
        data: b"ping payload",
    });
    h.engine
        .handle_packet(h.now, &datagram(IpProtocol::Icmp, &request));
    let out = transmit_raw(&mut h);
    assert_eq!(out.len(), 1);
    let ip = Ipv4Packet::new_checked(&out[0][..]).unwrap();
    let ip_repr = Ipv4Repr::parse(&ip, &caps()).unwrap();
    assert_eq!(
        (ip_repr.src_addr, ip_repr.dst_addr, ip_repr.next_header),
        (LOCAL_IP, REMOTE_IP, IpProtocol::Icmp)
    );
    let icmp = Icmpv4Packet::new_checked(ip.payload()).unwrap();
    assert_eq!(
        Icmpv4Repr::parse(&icmp, &caps()).unwrap(),
        Icmpv4Repr::EchoReply {
            ident: 0x1234,
            seq_no: 7,
            data: b"ping payload"
        }
    );
    assert_eq!(h.engine.stats().icmp_echo_replies, 1);
}

#[test]
fn udp_gets_port_unreachable_and_other_protocols_protocol_unreachable() {
    let mut h = Harness::new();
    let udp = [
        0x30, 0x39, 0x00, 0x35, 0x00, 0x0c, 0x00, 0x00, b'h', b'i', b'!', b'!',
    ];
    let dgram = datagram(IpProtocol::Udp, &udp);
    h.engine.handle_packet(h.now, &dgram);
    h.engine
        .handle_packet(h.now, &datagram(IpProtocol::Unknown(253), b"experimental"));
    let out = transmit_raw(&mut h);
    assert_eq!(out.len(), 2);
    let reasons: Vec<_> = out
        .iter()
        .map(|pkt| {
            let ip = Ipv4Packet::new_checked(&pkt[..]).unwrap();
            let icmp = Icmpv4Packet::new_checked(ip.payload()).unwrap();
            match Icmpv4Repr::parse(&icmp, &caps()).unwrap() {
                Icmpv4Repr::DstUnreachable {
                    reason,
                    header,
                    data,
                } => {
                    assert_eq!((header.src_addr, header.dst_addr), (REMOTE_IP, LOCAL_IP));
                    // The quote is the original payload (RFC 792: at least 8 bytes).
                    assert!(data.len() >= 8);
                    reason
                }
                other => panic!("not an unreachable: {other:?}"),
            }
        })
        .collect();
    assert_eq!(
        reasons,
        [
            Icmpv4DstUnreachable::PortUnreachable,
            Icmpv4DstUnreachable::ProtoUnreachable
        ]
    );
    assert_eq!(h.engine.stats().icmp_errors_sent, 2);
}

#[test]
fn unreachable_errors_are_rate_limited() {
    let mut h = Harness::new();
    let dgram = datagram(IpProtocol::Udp, &[0x30, 0x39, 0x00, 0x35, 0, 8, 0, 0]);
    for _ in 0..200 {
        h.engine.handle_packet(h.now, &dgram);
    }
    let sent = transmit_raw(&mut h).len();
    // A burst of 50; the queue holds no more than that anyway.
    assert_eq!(sent, 50);
    assert_eq!(h.engine.stats().icmp_suppressed, 150);
    h.advance(ms(10));
    h.engine.handle_packet(h.now, &dgram);
    assert_eq!(transmit_raw(&mut h).len(), 1);
}

#[test]
fn icmp_errors_never_answer_icmp_errors() {
    let mut h = Harness::new();
    // An unknown protocol inside an ICMP error: ignored, not answered.
    let inner = datagram(IpProtocol::Unknown(253), b"12345678");
    let err = unreachable_about(&inner, Icmpv4DstUnreachable::PortUnreachable, None);
    h.engine.handle_packet(h.now, &err);
    assert!(transmit_raw(&mut h).is_empty());
}

#[test]
fn port_unreachable_during_connect_refuses() {
    let mut h = Harness::new();
    let c = h.engine.connect(h.now, remote()).unwrap();
    let syn = transmit_raw(&mut h).remove(0);
    h.engine.handle_packet(
        h.now,
        &unreachable_about(&syn, Icmpv4DstUnreachable::PortUnreachable, None),
    );
    assert_eq!(h.engine.connect_result(c), Err(Error::ConnectionRefused));
    assert_eq!(h.engine.stats().icmp_errors_received, 1);
}

#[test]
fn host_unreachable_fails_a_connect_at_once() {
    // RFC 5461, as Linux and the BSDs: the default.
    let mut h = Harness::new();
    let c = h.engine.connect(h.now, remote()).unwrap();
    let syn = transmit_raw(&mut h).remove(0);
    h.engine.handle_packet(
        h.now,
        &unreachable_about(&syn, Icmpv4DstUnreachable::HostUnreachable, None),
    );
    assert_eq!(h.engine.connect_result(c), Err(Error::HostUnreachable));
    h.recv_none();
}

#[test]
fn host_unreachable_during_connect_is_soft() {
    // RFC 1122 §4.2.3.9 read strictly: a soft error.
    let mut h = Harness::with_config(Config {
        syn_retries: 1,
        unreachable_fails_connect: false,
        ..base_config()
    });
    let c = h.engine.connect(h.now, remote()).unwrap();
    let syn = transmit_raw(&mut h).remove(0);
    h.engine.handle_packet(
        h.now,
        &unreachable_about(&syn, Icmpv4DstUnreachable::HostUnreachable, None),
    );
    // Soft: the attempt goes on, and the SYN is retried.
    assert_eq!(h.engine.connect_result(c), Ok(false));
    h.advance(secs(1));
    assert_eq!(h.recv_one().ctl, TcpControl::Syn);
    h.advance(secs(2));
    // Giving up reports what ICMP said rather than a bare timeout.
    assert_eq!(h.engine.connect_result(c), Err(Error::HostUnreachable));
}

#[test]
fn icmp_error_with_sequence_number_out_of_flight_is_ignored() {
    let mut h = Harness::new();
    let c = h.engine.connect(h.now, remote()).unwrap();
    let mut syn = transmit_raw(&mut h).remove(0);
    // Quote a sequence number we never sent (RFC 5927 §4.1).
    let seq = u32::from_be_bytes(syn[24..28].try_into().unwrap()).wrapping_add(1000);
    syn[24..28].copy_from_slice(&seq.to_be_bytes());
    h.engine.handle_packet(
        h.now,
        &unreachable_about(&syn, Icmpv4DstUnreachable::PortUnreachable, None),
    );
    assert_eq!(h.engine.connect_result(c), Ok(false));
}

#[test]
fn icmp_never_resets_an_established_connection() {
    let mut h = Harness::new();
    let (c, iss, irs) = h.established_active();
    assert_eq!(h.engine.send(h.now, c, b"data"), Ok(4));
    let out = transmit_raw(&mut h).remove(0);
    h.engine.handle_packet(
        h.now,
        &unreachable_about(&out, Icmpv4DstUnreachable::PortUnreachable, None),
    );
    assert_eq!(h.engine.state(c), Ok(State::Established));
    h.send(h.peer(irs + 1, iss + 5));
    assert_eq!(h.engine.send(h.now, c, b"more"), Ok(4));
}

#[test]
fn fragmentation_needed_lowers_the_mss_and_resends() {
    let mut h = Harness::new();
    let (c, iss, _irs) = h.established_active();
    let data = pattern(0, 1460);
    assert_eq!(h.engine.send(h.now, c, &data), Ok(1460));
    let out = transmit_raw(&mut h).remove(0);
    assert_eq!(out.len(), 1500);
    h.engine.handle_packet(
        h.now,
        &unreachable_about(&out, Icmpv4DstUnreachable::FragRequired, Some(1000)),
    );
    assert_eq!(h.engine.tcp_info(c).unwrap().snd_mss, 960);
    let resent = h.recv_all();
    assert_eq!(resent[0].seq, iss + 1);
    assert_eq!(resent[0].payload.len(), 960);
    assert_eq!(resent[1].seq, iss + 1 + 960);
    assert_eq!(resent[1].payload.len(), 500);
}

#[test]
fn datagrams_from_impossible_sources_are_dropped_silently() {
    let mut h = Harness::new();
    let request = icmp_message(&Icmpv4Repr::EchoRequest {
        ident: 1,
        seq_no: 1,
        data: b"x",
    });
    for src in [
        Ipv4Addr::new(127, 0, 0, 1),
        Ipv4Addr::new(224, 0, 0, 1),
        Ipv4Addr::new(255, 255, 255, 255),
        Ipv4Addr::new(240, 0, 2, 2),
        Ipv4Addr::UNSPECIFIED,
        LOCAL_IP,
    ] {
        let mut dgram = datagram(IpProtocol::Icmp, &request);
        let mut ip = Ipv4Packet::new_unchecked(&mut dgram[..]);
        ip.set_src_addr(src);
        ip.fill_checksum();
        h.engine.handle_packet(h.now, &dgram);
        // Nor does a SYN from there get a RST.
        h.engine
            .handle_packet(h.now, &build(&Seg::default().syn(), src, LOCAL_IP));
    }
    assert!(transmit_raw(&mut h).is_empty());
    assert_eq!(h.engine.stats().rx_martian, 12);
}

/// An error as routers send it (RFC 792): the offending datagram's header
/// unchanged, its total length the whole segment's, and only 8 bytes of it.
#[test]
fn a_minimal_quote_of_a_full_segment_is_understood() {
    let mut h = Harness::new();
    let (c, _, _) = h.established_active();
    h.engine.send(h.now, c, &pattern(0, 1400)).unwrap();
    let seg = transmit_raw(&mut h).remove(0);
    assert!(seg.len() > 1000);
    let mut msg = vec![3u8, 4, 0, 0, 0, 0];
    msg.extend_from_slice(&1000u16.to_be_bytes());
    msg.extend_from_slice(&seg[..28]);
    Icmpv4Packet::new_unchecked(&mut msg[..]).fill_checksum();
    h.engine
        .handle_packet(h.now, &datagram(IpProtocol::Icmp, &msg));
    assert_eq!(h.engine.stats().icmp_errors_received, 1);
    let mss = h.engine.tcp_info(c).unwrap().snd_mss;
    assert!(mss <= 1000 - 40, "path MTU 1000 gives MSS {mss}");
}
