//! Smaller rules of RFC 9293 §3.10 and RFC 1122 §4.2 that `docs/conformance.md`
//! maps here: RST in the closing states, a bad ACK in SYN-RECEIVED, what SYN-SENT
//! and LISTEN drop, data after a FIN, the default send MSS, ICMP messages that
//! must not abort, the TTL, datagrams to a broadcast address, and IP options.

use smoltcp::wire::{Icmpv4Packet, TcpPacket};

use super::*;

#[test]
fn rst_in_last_ack_closes() {
    let mut h = Harness::new();
    let (_l, c, iss, irs) = h.established_passive();
    h.send(h.peer(irs + 1, iss + 1).fin());
    h.recv_one();
    h.engine.close(h.now, c);
    assert_eq!(h.recv_one(), h.ours(iss + 1, irs + 2).fin());
    assert_eq!(h.engine.state(c), Ok(State::LastAck));
    // RFC 9293 §3.10.7.4 "second": CLOSING, LAST-ACK, TIME-WAIT: RST → CLOSED.
    h.send(h.peer(irs + 2, iss + 1).rst());
    h.recv_none();
    assert_eq!(h.engine.state(c), Err(Error::InvalidHandle));
    assert_eq!(h.engine.poll_timeout(), None);
}

#[test]
fn rst_in_closing_closes() {
    let mut h = Harness::new();
    let (_l, c, iss, irs) = h.established_passive();
    h.engine.shutdown(h.now, c).unwrap();
    assert_eq!(h.recv_one(), h.ours(iss + 1, irs + 1).fin());
    // Their FIN crosses ours: CLOSING.
    h.send(h.peer(irs + 1, iss + 1).fin());
    assert_eq!(h.recv_one(), h.ours(iss + 2, irs + 2));
    assert_eq!(h.engine.state(c), Ok(State::Closing));
    h.send(h.peer(irs + 2, iss + 1).rst());
    h.recv_none();
    assert_eq!(h.engine.state(c), Ok(State::Closed));
    assert_eq!(h.engine.poll_timeout(), None);
}

#[test]
fn rst_in_time_wait_closes() {
    let mut h = Harness::new();
    let (_l, c, iss, irs) = h.established_passive();
    h.engine.close(h.now, c);
    h.recv_one();
    h.send(h.peer(irs + 1, iss + 2).fin());
    h.recv_one();
    assert_eq!(h.engine.state(c), Ok(State::TimeWait));
    h.send(h.peer(irs + 2, iss + 2).rst());
    h.recv_none();
    assert_eq!(h.engine.state(c), Err(Error::InvalidHandle));
    assert_eq!(h.engine.socket_count(), 1);
}

#[test]
fn bad_ack_in_syn_received_gets_a_reset() {
    let mut h = Harness::new();
    let l = h.engine.listen(local(), 8).unwrap();
    h.send(Seg {
        seq: 1000,
        mss: Some(1460),
        ..Seg::default().syn()
    });
    let iss = h.recv_one().seq;
    // §3.10.7.4 "fifth", SYN-RECEIVED: an ACK outside SND.UNA < SEG.ACK =< SND.NXT
    // gets <SEQ=SEG.ACK><CTL=RST>.
    h.send(h.peer(1001, iss + 9));
    assert_eq!(h.recv_one(), h.ours(iss + 9, 0).rst().no_ack().win(0));
    assert_eq!(h.engine.accept(l), Err(Error::WouldBlock));
    // The right ACK still completes it.
    h.send(h.peer(1001, iss + 1));
    assert!(h.engine.accept(l).is_ok());
}

#[test]
fn data_after_the_peers_fin_is_ignored() {
    let mut h = Harness::new();
    let (_l, c, iss, irs) = h.established_passive();
    h.send(h.peer(irs + 1, iss + 1).data(b"end").fin());
    h.recv_one();
    assert_eq!(h.read(c), Ok(b"end".to_vec()));
    // §3.10.7.4 "seventh": in CLOSE-WAIT the text is ignored.
    h.send(h.peer(irs + 5, iss + 1).data(b"late"));
    assert_eq!(h.engine.recv_queue(c), Ok(0));
    assert_eq!(h.read(c), Ok(vec![]));
    assert_eq!(h.engine.state(c), Ok(State::CloseWait));
}

#[test]
fn syn_sent_drops_segments_without_syn_or_rst() {
    let mut h = Harness::new();
    let c = h.engine.connect(h.now, remote()).unwrap();
    let syn = h.recv_one();
    h.port = syn.src_port;
    // §3.10.7.3 "fifth": neither SYN nor RST: drop. An acceptable ACK alone...
    h.send(h.peer(5000, syn.seq + 1));
    // ... and data without ACK.
    h.send(h.peer(5000, 0).no_ack().data(b"x"));
    h.recv_none();
    assert_eq!(h.engine.state(c), Ok(State::SynSent));
}

#[test]
fn listener_drops_what_is_neither_syn_ack_nor_rst() {
    let mut h = Harness::new();
    let l = h.engine.listen(local(), 8).unwrap();
    // §3.10.7.2 "fourth": "Any other control or text-bearing segment ... drop it".
    h.send(Seg::default().no_ack().data(b"hello"));
    h.send(Seg::default().no_ack().fin());
    h.recv_none();
    assert_eq!(h.engine.accept(l), Err(Error::WouldBlock));
    assert_eq!(h.engine.socket_count(), 1);
}

#[test]
fn send_mss_defaults_to_536_without_the_option() {
    let mut h = Harness::new();
    let l = h.engine.listen(local(), 8).unwrap();
    // RFC 1122 §4.2.2.6 / RFC 9293 §3.7.1: no MSS option means 536.
    h.send(Seg {
        seq: 1000,
        ..Seg::default().syn()
    });
    let iss = h.recv_one().seq;
    h.send(h.peer(1001, iss + 1));
    let c = h.engine.accept(l).unwrap();
    assert_eq!(h.engine.tcp_info(c).unwrap().snd_mss, 536);
    h.engine.send(h.now, c, &pattern(0, 1000)).unwrap();
    let out = h.recv_all();
    assert_eq!(out[0].payload.len(), 536);
}

/// An ICMP error of `icmp_type`/`code` quoting `datagram` (ours).
fn icmp_error_about(datagram: &[u8], icmp_type: u8, code: u8) -> Vec<u8> {
    let mut icmp = vec![icmp_type, code, 0, 0, 0, 0, 0, 0];
    icmp.extend_from_slice(&datagram[..28]);
    Icmpv4Packet::new_unchecked(&mut icmp[..]).fill_checksum();
    let ip = Ipv4Repr {
        src_addr: REMOTE_IP,
        dst_addr: LOCAL_IP,
        next_header: IpProtocol::Icmp,
        payload_len: icmp.len(),
        hop_limit: 64,
    };
    let mut buf = vec![0u8; 20 + icmp.len()];
    ip.emit(
        &mut Ipv4Packet::new_unchecked(&mut buf[..]),
        &ChecksumCapabilities::default(),
    );
    buf[20..].copy_from_slice(&icmp);
    buf
}

#[test]
fn source_quench_time_exceeded_and_parameter_problem_never_abort() {
    let mut h = Harness::new();
    let (_l, c, iss, irs) = h.established_passive();
    h.engine.send(h.now, c, b"data").unwrap();
    let mut buf = vec![0u8; 1500];
    let n = h.engine.poll_transmit(h.now, &mut buf).unwrap();
    let ours = buf[..n].to_vec();
    // RFC 1122 §4.2.3.9: Source Quench is ignored (RFC 6633); Time Exceeded and
    // Parameter Problem MUST NOT abort the connection.
    for (t, code) in [(4, 0), (11, 0), (12, 0)] {
        h.engine
            .handle_packet(h.now, &icmp_error_about(&ours, t, code));
        h.recv_none();
    }
    assert_eq!(h.engine.state(c), Ok(State::Established));
    h.send(h.peer(irs + 1, iss + 5));
    assert_eq!(h.engine.tcp_info(c).unwrap().bytes_acked, 4);
    // And no soft error surfaces later.
    assert_eq!(h.engine.send(h.now, c, b"more"), Ok(4));
}

#[test]
fn ttl_is_configurable() {
    let mut h = Harness::with_config(Config {
        ttl: 9,
        ..base_config()
    });
    h.engine.connect(h.now, remote()).unwrap();
    let mut buf = vec![0u8; 1500];
    let n = h.engine.poll_transmit(h.now, &mut buf).unwrap();
    // RFC 1122 §4.2.2.19: the TTL is the configured one.
    assert_eq!(Ipv4Packet::new_checked(&buf[..n]).unwrap().hop_limit(), 9);
}

#[test]
fn syn_to_a_broadcast_address_is_discarded_silently() {
    let mut h = Harness::new();
    h.engine.listen(local(), 8).unwrap();
    // RFC 1122 §4.2.3.10: a SYN to a broadcast or multicast address is dropped.
    for dst in [
        Ipv4Addr::new(192, 0, 2, 255),
        Ipv4Addr::BROADCAST,
        Ipv4Addr::new(224, 0, 0, 1),
    ] {
        let p = build(&Seg::default().syn(), REMOTE_IP, dst);
        h.engine.handle_packet(h.now, &p);
    }
    h.recv_none();
    assert_eq!(h.engine.stats().rx_not_for_us, 3);
    assert_eq!(h.engine.socket_count(), 1);
}

#[test]
fn ip_options_are_ignored() {
    let mut h = Harness::new();
    h.engine.listen(local(), 8).unwrap();
    // RFC 1122 §4.2.3.8: IP options TCP does not understand are ignored: a SYN
    // with a header of 24 bytes (four NOP options) is answered normally.
    let plain = build(
        &Seg {
            seq: 1000,
            mss: Some(1460),
            ..Seg::default().syn()
        },
        REMOTE_IP,
        LOCAL_IP,
    );
    let mut p = plain[..20].to_vec();
    p.extend_from_slice(&[1, 1, 1, 1]);
    p.extend_from_slice(&plain[20..]);
    p[0] = 0x46;
    let total = (p.len() as u16).to_be_bytes();
    p[2..4].copy_from_slice(&total);
    Ipv4Packet::new_unchecked(&mut p[..]).fill_checksum();
    h.engine.handle_packet(h.now, &p);
    let synack = h.recv_one();
    assert_eq!((synack.ctl, synack.ack), (TcpControl::Syn, Some(1001)));
}

#[test]
fn segment_straddling_rcv_nxt_delivers_only_the_new_part() {
    let mut h = Harness::new();
    let (_l, c, iss, irs) = h.established_passive();
    h.send(h.peer(irs + 1, iss + 1).data(b"hello"));
    // §3.10.7.4 "seventh"/"first": the overlap is trimmed, the rest taken.
    h.send(h.peer(irs + 3, iss + 1).data(b"lloworld"));
    assert_eq!(h.recv_one(), h.ours(iss + 1, irs + 11).win(free(10)));
    assert_eq!(h.read(c), Ok(b"helloworld".to_vec()));
}

#[test]
fn close_in_syn_received_sends_the_fin_once_established() {
    let mut h = Harness::new();
    let c = h.engine.connect(h.now, remote()).unwrap();
    let syn = h.recv_one();
    h.port = syn.src_port;
    let iss = syn.seq;
    // Simultaneous open: SYN-RECEIVED.
    h.send(h.peer(5000, 0).syn().no_ack());
    assert_eq!(h.recv_one().ctl, TcpControl::Syn);
    assert_eq!(h.engine.state(c), Ok(State::SynReceived));
    // §3.10.4 CLOSE in SYN-RECEIVED: the FIN is queued until ESTABLISHED ...
    h.engine.shutdown(h.now, c).unwrap();
    h.recv_none();
    // ... and goes out with the handshake's end: FIN-WAIT-1.
    h.send(h.peer(5001, iss + 1));
    assert_eq!(h.recv_one(), h.ours(iss + 1, 5001).fin());
    assert_eq!(h.engine.state(c), Ok(State::FinWait1));
}

#[test]
fn send_in_closing_states_is_refused() {
    let mut h = Harness::new();
    let (_l, c, iss, irs) = h.established_passive();
    h.engine.shutdown(h.now, c).unwrap();
    h.recv_one();
    h.send(h.peer(irs + 1, iss + 1).fin());
    h.recv_one();
    assert_eq!(h.engine.state(c), Ok(State::Closing));
    // §3.10.2 SEND in CLOSING, LAST-ACK, TIME-WAIT: "connection closing".
    assert_eq!(h.engine.send(h.now, c, b"x"), Err(Error::BrokenPipe));
    h.send(h.peer(irs + 2, iss + 2));
    assert_eq!(h.engine.state(c), Ok(State::TimeWait));
    assert_eq!(h.engine.send(h.now, c, b"x"), Err(Error::BrokenPipe));
}

#[test]
fn tos_is_set_per_connection_and_passed_to_ip() {
    let mut h = Harness::new();
    let (_l, c, _iss, _irs) = h.established_passive();
    let tos_of = |h: &mut Harness| {
        let mut buf = vec![0u8; 1500];
        let n = h.engine.poll_transmit(h.now, &mut buf).unwrap();
        // try_parse verifies the IP checksum over the changed header.
        try_parse(&buf[..n]).unwrap();
        buf[1]
    };
    assert_eq!(h.engine.tos(c), Ok(0));
    // RFC 1122 §4.2.4.2: the application sets it (ECN bits are the stack's) ...
    h.engine.set_tos(c, 0xb9).unwrap();
    assert_eq!(h.engine.tos(c), Ok(0xb8));
    h.engine.send(h.now, c, b"x").unwrap();
    assert_eq!(tos_of(&mut h), 0xb8);
    // ... and may change it during the connection.
    h.engine.set_tos(c, 0x20).unwrap();
    h.engine.abort(h.now, c);
    assert_eq!(tos_of(&mut h), 0x20);
}

#[test]
fn rst_carrying_data_is_accepted() {
    let mut h = Harness::new();
    let (_l, c, iss, irs) = h.established_passive();
    // RFC 1122 §4.2.2.12: a RST may carry data (a diagnostic); it resets as usual.
    h.send(h.peer(irs + 1, iss + 1).rst().data(b"gone away"));
    h.recv_none();
    assert_eq!(h.engine.state(c), Ok(State::Closed));
    assert_eq!(h.read(c), Err(Error::ConnectionReset));
}

/// The urgent pointer of an outbound datagram, if URG is set.
fn urgent_of(packet: &[u8]) -> Option<u16> {
    let tcp = TcpPacket::new_checked(&packet[20..]).unwrap();
    tcp.urg().then(|| tcp.urgent_at())
}

/// The next outbound datagram, raw, checked to parse (checksums included).
fn next_raw(h: &mut Harness) -> Vec<u8> {
    let mut buf = vec![0u8; 1500];
    let n = h.engine.poll_transmit(h.now, &mut buf).unwrap();
    try_parse(&buf[..n]).unwrap();
    buf.truncate(n);
    buf
}

#[test]
fn send_urgent_sets_urg_and_points_after_the_urgent_data() {
    let mut h = Harness::new();
    let (_l, c, iss, irs) = h.established_passive();
    h.engine.set_nodelay(c, true).unwrap();
    assert_eq!(h.engine.send_urgent(h.now, c, b"abc"), Ok(3));
    let p = next_raw(&mut h);
    assert_eq!(parse(&p), h.ours(iss + 1, irs + 1).data(b"abc").psh());
    // RFC 9293 §3.8.5 (MUST-62): the pointer is the octet after the urgent data.
    assert_eq!(urgent_of(&p), Some(3));
    // Data beyond the mark goes without URG.
    h.engine.send(h.now, c, b"de").unwrap();
    assert_eq!(urgent_of(&next_raw(&mut h)), None);
    // A retransmission from before the mark carries it again.
    let t = h.engine.poll_timeout().unwrap();
    h.advance_to(t);
    let p = next_raw(&mut h);
    assert_eq!(parse(&p).payload, b"abcde");
    assert_eq!(urgent_of(&p), Some(3));
    // Once the urgent data is acknowledged the mark is gone.
    h.send(h.peer(irs + 1, iss + 6));
    h.engine.send(h.now, c, b"f").unwrap();
    assert_eq!(urgent_of(&next_raw(&mut h)), None);
}

/// A segment from the peer with URG and `pointer`.
fn with_urgent(seg: &Seg, pointer: u16) -> Vec<u8> {
    let mut p = build(seg, REMOTE_IP, LOCAL_IP);
    let mut t = TcpPacket::new_unchecked(&mut p[20..]);
    t.set_urg(true);
    t.set_urgent_at(pointer);
    t.fill_checksum(&IpAddress::Ipv4(REMOTE_IP), &IpAddress::Ipv4(LOCAL_IP));
    p
}

#[test]
fn received_urgent_data_is_reported_and_stays_in_the_stream() {
    let mut h = Harness::new();
    let (_l, c, iss, irs) = h.established_passive();
    assert_eq!(h.engine.urgent_mark(c), Ok(None));
    let seg = h.peer(irs + 1, iss + 1).data(b"xyz!");
    h.engine.handle_packet(h.now, &with_urgent(&seg, 4));
    // RFC 9293 §3.8.5 (MUST-32, MUST-33): the application is told, and learns
    // how much urgent data there is.
    assert_eq!(
        h.engine.poll_event(),
        Some(Event {
            handle: c,
            readable: true,
            writable: false
        })
    );
    assert_eq!(h.engine.urgent_mark(c), Ok(Some(4)));
    let mut two = [0u8; 2];
    assert_eq!(h.engine.recv(h.now, c, &mut two), Ok(2));
    assert_eq!(&two, b"xy");
    assert_eq!(h.engine.urgent_mark(c), Ok(Some(2)));
    assert_eq!(h.read(c), Ok(b"z!".to_vec()));
    assert_eq!(h.engine.urgent_mark(c), Ok(None));
    // MUST-31: urgent data of any length: the pointer may reach far beyond
    // the segment.
    let seg = h.peer(irs + 5, iss + 1).data(b"ab");
    h.engine.handle_packet(h.now, &with_urgent(&seg, 1000));
    assert_eq!(h.engine.urgent_mark(c), Ok(Some(1000)));
}
