//! RFC 9293 state-machine paths not covered elsewhere: simultaneous open
//! (§3.5 Figure 8, §3.10.7.3), RST in an actively opened SYN-RECEIVED,
//! half-open connections (§3.5.1 Figures 10 and 11), a bad ACK in SYN-SENT,
//! and two retransmission rules the lossy-link test found.

use super::*;

/// An active open whose SYN is out: (connection, our port, ISS).
fn syn_sent(h: &mut Harness) -> (SocketHandle, u32) {
    let c = h.engine.connect(h.now, remote()).unwrap();
    let syn = h.recv_one();
    h.port = syn.src_port;
    assert_eq!(h.engine.state(c), Ok(State::SynSent));
    (c, syn.seq)
}

/// Our SYN-ACK of a simultaneous open.
fn our_syn_ack(h: &Harness, iss: u32, ack: u32) -> Seg {
    Seg {
        mss: Some(1460),
        ..h.ours(iss, ack).syn()
    }
}

#[test]
fn simultaneous_open_crossing_syn_acks() {
    let mut h = Harness::new();
    let (c, iss) = syn_sent(&mut h);
    // §3.10.7.3 "fourth": a SYN without ACK in SYN-SENT: SYN-RECEIVED, and a
    // SYN-ACK with the same ISS.
    h.send(Seg {
        mss: Some(1460),
        ..h.peer(5000, 0).syn().no_ack()
    });
    assert_eq!(h.recv_one(), our_syn_ack(&h, iss, 5001));
    assert_eq!(h.engine.state(c), Ok(State::SynReceived));
    assert_eq!(h.engine.connect_result(c), Ok(false));
    // Figure 8 line 5: the peer's SYN-ACK (sent before ours arrived) completes it.
    h.send(Seg {
        mss: Some(1460),
        ..h.peer(5000, iss + 1).syn()
    });
    assert_eq!(h.recv_one(), h.ours(iss + 1, 5001));
    assert_eq!(h.engine.state(c), Ok(State::Established));
    assert_eq!(h.engine.connect_result(c), Ok(true));
    // Data flows.
    h.send(h.peer(5001, iss + 1).data(b"hi"));
    assert_eq!(h.read(c), Ok(b"hi".to_vec()));
}

#[test]
fn simultaneous_open_completed_by_a_plain_ack() {
    let mut h = Harness::new();
    let (c, iss) = syn_sent(&mut h);
    h.send(Seg {
        mss: Some(1460),
        ..h.peer(5000, 0).syn().no_ack()
    });
    assert_eq!(h.recv_one(), our_syn_ack(&h, iss, 5001));
    // The peer saw our SYN-ACK first and answers it with an ACK.
    h.send(h.peer(5001, iss + 1));
    h.recv_none();
    assert_eq!(h.engine.state(c), Ok(State::Established));
    // Its SYN retransmitted later is out of the window now: a duplicate ACK.
    h.send(Seg {
        mss: Some(1460),
        ..h.peer(5000, 0).syn().no_ack()
    });
    assert_eq!(h.recv_one(), h.ours(iss + 1, 5001));
}

/// Karn (RFC 6298 §3) in a simultaneous open: the SYN-ACK sends our SYN
/// again, so the ACK that completes the open, answering either, gives no RTT
/// sample (it gave one measured from the SYN: 320 ms on a 20 ms path).
#[test]
fn simultaneous_open_gives_no_rtt_sample_from_the_resent_syn() {
    let mut h = Harness::new();
    let (c, iss) = syn_sent(&mut h);
    h.advance(ms(300));
    h.send(Seg {
        mss: Some(1460),
        ..h.peer(5000, 0).syn().no_ack()
    });
    assert_eq!(h.recv_one(), our_syn_ack(&h, iss, 5001));
    h.advance(ms(20));
    h.send(h.peer(5001, iss + 1));
    assert_eq!(h.engine.state(c), Ok(State::Established));
    assert_eq!(h.engine.tcp_info(c).unwrap().srtt, None);
}

#[test]
fn simultaneous_open_syn_ack_is_retransmitted_then_gives_up() {
    let mut h = Harness::with_config(Config {
        syn_retries: 2,
        ..base_config()
    });
    let (c, iss) = syn_sent(&mut h);
    h.send(Seg {
        mss: Some(1460),
        ..h.peer(5000, 0).syn().no_ack()
    });
    let synack = our_syn_ack(&h, iss, 5001);
    assert_eq!(h.recv_one(), synack);
    // The SYN's retransmission timer (armed at t0 for 1 s) now resends the SYN-ACK.
    let t = h.engine.poll_timeout().unwrap();
    assert_eq!(h.fire_one_at(t), synack);
    let t2 = h.engine.poll_timeout().unwrap();
    assert_eq!(h.fire_one_at(t2), synack);
    let t3 = h.engine.poll_timeout().unwrap();
    assert_eq!(h.fire_at(t3), vec![]);
    assert_eq!(h.engine.connect_result(c), Err(Error::TimedOut));
}

#[test]
fn rst_in_actively_opened_syn_received_refuses_the_connection() {
    let mut h = Harness::new();
    let (c, iss) = syn_sent(&mut h);
    h.send(h.peer(5000, 0).syn().no_ack());
    assert_eq!(h.recv_one().ctl, TcpControl::Syn);
    // §3.10.7.4 "second", SYN-RECEIVED from an active open: connection refused.
    h.send(h.peer(5001, iss + 1).rst());
    h.recv_none();
    assert_eq!(h.engine.state(c), Ok(State::Closed));
    assert_eq!(h.engine.connect_result(c), Err(Error::ConnectionRefused));
}

#[test]
fn syn_ack_with_a_bad_ack_in_syn_sent_gets_a_reset() {
    let mut h = Harness::new();
    let (c, iss) = syn_sent(&mut h);
    // §3.10.7.3 "first": SEG.ACK =< ISS or > SND.NXT: <SEQ=SEG.ACK><CTL=RST>.
    h.send(h.peer(5000, iss + 7).syn());
    assert_eq!(h.recv_one(), h.ours(iss + 7, 0).rst().no_ack().win(0));
    h.send(h.peer(5000, iss).syn());
    assert_eq!(h.recv_one(), h.ours(iss, 0).rst().no_ack().win(0));
    // The attempt goes on.
    assert_eq!(h.engine.state(c), Ok(State::SynSent));
}

#[test]
fn half_open_peer_restarted_is_detected_and_reset() {
    // §3.5.1 Figure 10: the peer crashed and, restarted, opens again from the
    // same port. Its SYN reaches our ESTABLISHED connection.
    let mut h = Harness::new();
    let (l, c, iss, irs) = h.established_passive();
    h.send(Seg {
        mss: Some(1460),
        ..h.peer(90_000, 0).syn().no_ack()
    });
    // RFC 5961 §4.2: a challenge ACK, not a reset...
    assert_eq!(h.recv_one(), h.ours(iss + 1, irs + 1));
    assert_eq!(h.engine.state(c), Ok(State::Established));
    // ... whose ACK the peer, in SYN-SENT, finds unacceptable: it resets with
    // SEQ = our ACK, exactly RCV.NXT, which we accept.
    h.send(h.peer(irs + 1, 0).rst().no_ack());
    h.recv_none();
    assert_eq!(h.engine.state(c), Ok(State::Closed));
    assert_eq!(h.read(c), Err(Error::ConnectionReset));
    // Its retransmitted SYN now reaches the listener: a new connection.
    h.send(Seg {
        mss: Some(1460),
        ..h.peer(90_000, 0).syn().no_ack()
    });
    let synack = h.recv_one();
    assert_eq!((synack.ctl, synack.ack), (TcpControl::Syn, Some(90_001)));
    h.send(h.peer(90_001, synack.seq + 1));
    assert!(h.engine.accept(l).is_ok());
}

#[test]
fn half_open_we_restarted_data_for_no_connection_gets_a_reset() {
    // §3.5.1 Figure 11: we lost the connection; the peer's data gets
    // <SEQ=SEG.ACK><CTL=RST> (§3.10.7.1), which tells it.
    let mut h = Harness::new();
    h.send(h.peer(300, 100).data(b"still there?"));
    assert_eq!(h.recv_one(), h.ours(100, 0).rst().no_ack().win(0));
    assert_eq!(h.engine.stats().rx_no_socket, 1);
}

#[test]
fn pure_ack_after_a_timeout_carries_snd_max() {
    let mut h = Harness::new();
    let (_l, c, iss, irs) = h.established_passive();
    h.engine.set_nodelay(c, true).unwrap();
    h.engine.send(h.now, c, &pattern(0, 3000)).unwrap();
    assert_eq!(h.recv_all().len(), 3);
    let t0 = h.now;
    // RTO: only the first segment again; SND.NXT is back at SND.UNA + 1460.
    let rtx = h.fire_one_at(t0 + ms(200));
    assert_eq!((rtx.seq, rtx.payload.len()), (iss + 1, 1460));
    // The peer had everything but its ACKs were lost; its data (with an old
    // ACK) is acknowledged from SND.MAX, the highest sequence number sent, so
    // the peer (RCV.NXT = iss+3001) finds our ACK in its window. (The
    // congestion window of one segment, in flight, holds back more data.)
    h.send(h.peer(irs + 1, iss + 1).data(b"x"));
    h.recv_none();
    let t = h.now;
    let ack = h.fire_one_at(t + ms(40));
    assert_eq!(ack, h.ours(iss + 3001, irs + 2).win(free(1)));
}

#[test]
fn timeout_retransmits_the_first_segment_into_a_closed_window() {
    let mut h = Harness::new();
    let (_l, c, iss, irs) = h.established_passive();
    h.engine.send(h.now, c, b"abc").unwrap();
    assert_eq!(h.recv_one(), h.ours(iss + 1, irs + 1).data(b"abc").psh());
    let t0 = h.now;
    // A reordered old segment closes the window while "abc" is in flight.
    h.send(h.peer(irs + 1, iss + 1).win(0));
    h.recv_none();
    // The timeout resends it anyway (the persist timer does not run with data
    // in flight), so the peer's answer brings the real window.
    assert_eq!(
        h.fire_one_at(t0 + ms(200)),
        h.ours(iss + 1, irs + 1).data(b"abc").psh()
    );
    h.send(h.peer(irs + 1, iss + 4));
    assert_eq!(h.engine.tcp_info(c).unwrap().bytes_in_flight, 0);
}

#[test]
fn open_to_a_broadcast_or_multicast_address_is_refused() {
    // RFC 1122 §4.2.3.10: an OPEN to a broadcast or multicast address MUST be rejected.
    let mut h = Harness::new();
    for ip in [
        Ipv4Addr::BROADCAST,
        Ipv4Addr::new(192, 0, 2, 255),
        Ipv4Addr::new(224, 0, 0, 1),
        Ipv4Addr::UNSPECIFIED,
    ] {
        assert_eq!(
            h.engine.connect(h.now, SocketAddrV4::new(ip, 80)),
            Err(Error::InvalidInput),
            "{ip}"
        );
    }
    assert!(
        h.engine
            .connect(h.now, SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 254), 80))
            .is_ok()
    );
    h.recv_one();
}
