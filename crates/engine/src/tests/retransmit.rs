//! Retransmission: the RTO of RFC 6298 (initial value, measurement, backoff,
//! Karn's rule), giving up (RFC 9293 §3.8.3), and fast retransmit with
//! NewReno recovery (RFC 5681 §3.2, RFC 6582).

use super::*;

/// An active open whose SYN-ACK comes back after `rtt`: (connection, ISS, IRS).
fn active_with_rtt(h: &mut Harness, rtt: Duration) -> (SocketHandle, u32, u32) {
    let c = h.engine.connect(h.now, remote()).unwrap();
    let syn = h.recv_one();
    h.port = syn.src_port;
    h.advance(rtt);
    let irs = 5000;
    h.send(Seg {
        mss: Some(1460),
        ..h.peer(irs, syn.seq + 1).syn()
    });
    assert_eq!(h.recv_one(), h.ours(syn.seq + 1, irs + 1));
    assert_eq!(h.engine.connect_result(c), Ok(true));
    (c, syn.seq, irs)
}

/// The SYN we send to the remote from `port`.
fn our_syn(port: u16, iss: u32) -> Seg {
    Seg {
        src_port: port,
        dst_port: REMOTE_PORT,
        seq: iss,
        ack: None,
        ctl: TcpControl::Syn,
        window: 65535,
        mss: Some(1460),
        wscale: Some(1),
        psh: false,
        payload: vec![],
        ts: None,
        // RFC 2018 §2: SACK is offered by default.
        sack_permitted: true,
        sack: vec![],
    }
}

#[test]
fn syn_is_retransmitted_at_1_3_7_seconds_and_gives_up_after_syn_retries() {
    // RFC 1122 §4.2.3.5: a SYN is retransmitted for at least 3 minutes.
    let mut h = Harness::new();
    let t0 = h.now;
    let c = h.engine.connect(h.now, remote()).unwrap();
    let syn = h.recv_one();
    h.port = syn.src_port;
    assert_eq!(syn, our_syn(h.port, syn.seq));
    // RFC 6298 §2.1: initial RTO 1 s; §5.5: doubled on each expiry.
    let mut at = t0;
    for k in 0..7 {
        at = at + secs(1 << k);
        assert_eq!(h.fire_one_at(at), syn, "retransmission {}", k + 1);
        assert_eq!(h.engine.connect_result(c), Ok(false));
    }
    assert_eq!(at, t0 + secs(127));
    // syn_retries = 7: the eighth expiry (the RTO capped at `max_rto`, 120 s,
    // later) ends the attempt after 247 s: more than the 3 minutes RFC 1122
    // requires.
    while h.engine.poll_event().is_some() {}
    assert_eq!(h.engine.poll_timeout(), Some(t0 + secs(247)));
    assert_eq!(h.engine.connect_result(c), Ok(false));
    assert_eq!(h.fire_at(t0 + secs(247)), vec![]);
    assert_eq!(h.engine.connect_result(c), Err(Error::TimedOut));
    assert_eq!(h.engine.state(c), Ok(State::Closed));
    assert_eq!(
        h.engine.poll_event(),
        Some(Event {
            handle: c,
            readable: true,
            writable: true
        })
    );
    assert_eq!(h.engine.poll_timeout(), None);
    assert_eq!(h.engine.tcp_info(c).unwrap().timeouts, 8);
    h.engine.close(h.now, c);
    assert_eq!(h.engine.socket_count(), 0);
}

#[test]
fn syn_retries_is_configurable() {
    let mut h = Harness::with_config(Config {
        syn_retries: 2,
        initial_rto: ms(500),
        ..base_config()
    });
    let t0 = h.now;
    let c = h.engine.connect(h.now, remote()).unwrap();
    let syn = h.recv_one();
    assert_eq!(h.fire_one_at(t0 + ms(500)), syn);
    assert_eq!(h.fire_one_at(t0 + ms(1500)), syn);
    assert_eq!(h.fire_at(t0 + ms(3500)), vec![]);
    assert_eq!(h.engine.connect_result(c), Err(Error::TimedOut));
}

#[test]
fn answered_syn_retransmission_gives_no_rtt_sample_and_a_3s_rto() {
    let mut h = Harness::new();
    let t0 = h.now;
    let c = h.engine.connect(h.now, remote()).unwrap();
    let syn = h.recv_one();
    h.port = syn.src_port;
    let iss = syn.seq;
    assert_eq!(h.fire_one_at(t0 + secs(1)), syn);
    // The SYN-ACK comes 100 ms after the retransmission: ambiguous, so no sample (Karn).
    h.advance(ms(100));
    h.send(h.peer(5000, iss + 1).syn());
    assert_eq!(h.recv_one(), h.ours(iss + 1, 5001));
    let info = h.engine.tcp_info(c).unwrap();
    assert_eq!(info.srtt, None);
    // RFC 6298 §5.7: the SYN was retransmitted, so data starts with an RTO of 3 s.
    assert_eq!(info.rto, secs(3));
    assert_eq!(h.engine.send(h.now, c, b"x"), Ok(1));
    let data = h.recv_one();
    assert_eq!(data, h.ours(iss + 1, 5001).data(b"x").psh());
    assert_eq!(h.fire_one_at(h.now + secs(3)), data);
}

/// A listener gets a SYN (with `text`), loses its SYN-ACK, gets the SYN
/// again 850 ms later, before its 1 s timeout, and answers it with the same
/// SYN-ACK; the ACK completing the handshake comes 50 ms after that. Returns
/// the accepted connection's `TcpInfo`.
fn handshake_across_a_resent_syn_ack(h: &mut Harness, text: &[u8]) -> TcpInfo {
    let l = h.engine.listen(local(), 8).unwrap();
    let syn = Seg {
        seq: 1000,
        ctl: TcpControl::Syn,
        mss: Some(1460),
        payload: text.to_vec(),
        ..Seg::default()
    };
    h.send(syn.clone());
    let synack = h.recv_one();
    assert_eq!(synack.ctl, TcpControl::Syn);
    h.advance(ms(850));
    h.send(syn);
    let again = h.recv_one();
    assert_eq!((again.ctl, again.seq), (TcpControl::Syn, synack.seq));
    if text.is_empty() {
        assert_eq!(again, synack);
    }
    h.advance(ms(50));
    h.send(h.peer(1001, synack.seq + 1));
    let c = h.engine.accept(l).unwrap();
    h.engine.tcp_info(c).unwrap()
}

/// Karn's rule for the SYN-ACK (RFC 6298 §3): a retransmitted SYN that
/// arrives before our SYN-ACK's own timeout makes us send the SYN-ACK again,
/// so the ACK that completes the handshake is ambiguous and gives no sample.
/// (It gave one measured from the first SYN-ACK: here 900 ms on a 50 ms path.)
#[test]
fn syn_ack_resent_for_a_retransmitted_syn_gives_no_rtt_sample() {
    let mut h = Harness::new();
    let info = handshake_across_a_resent_syn_ack(&mut h, b"");
    assert_eq!(
        info.srtt, None,
        "a sample was taken across the resent SYN-ACK"
    );
    // RFC 6298 §5.7: no sample from the handshake after a retransmission: 3 s.
    assert_eq!(info.rto, secs(3));
}

/// The same with text on the SYN (RFC 9293 §3.10.7.3 allows it): the
/// retransmitted SYN then passes the window check and reaches the SYN
/// handling of synchronized states, which sent the SYN-ACK again without
/// taking the timing off it, so the completing ACK gave a sample across two
/// sendings. Found by the `api` fuzz target, whose debug-build Karn check
/// caught it (`fuzz/regressions/api/karn-sample-from-a-resent-timed-segment`).
#[test]
fn syn_ack_resent_for_a_retransmitted_syn_with_text_gives_no_rtt_sample() {
    let mut h = Harness::new();
    let info = handshake_across_a_resent_syn_ack(&mut h, b"hi");
    assert_eq!(
        info.srtt, None,
        "a sample was taken across the resent SYN-ACK"
    );
}

#[test]
fn rto_is_srtt_plus_four_rttvar_and_doubles_until_data_retries() {
    let mut h = Harness::new();
    let (c, iss, irs) = active_with_rtt(&mut h, ms(100));
    // RFC 6298 §2.2: SRTT = R = 100 ms, RTTVAR = R/2 = 50 ms, RTO = SRTT + 4 RTTVAR = 300 ms.
    let info = h.engine.tcp_info(c).unwrap();
    assert_eq!(
        (info.srtt, info.rttvar, info.rto),
        (Some(ms(100)), ms(50), ms(300))
    );

    h.advance(ms(1000));
    let t1 = h.now;
    assert_eq!(h.engine.send(h.now, c, b"hello"), Ok(5));
    let data = h.recv_one();
    assert_eq!(data, h.ours(iss + 1, irs + 1).data(b"hello").psh());
    // Retransmitted after 300 ms, then 600, 1200, ... capped at max_rto (120 s).
    let mut at = t1;
    for k in 0..15u32 {
        at = at + (ms(300) * (1 << k)).min(secs(120));
        assert_eq!(h.fire_one_at(at), data, "retransmission {}", k + 1);
        assert_eq!(h.engine.state(c), Ok(State::Established));
    }
    let info = h.engine.tcp_info(c).unwrap();
    assert_eq!((info.timeouts, info.bytes_retrans), (15, 75));
    assert_eq!(info.rto, secs(120));
    // data_retries = 15: the 16th expiry gives up, silently.
    at = at + secs(120);
    assert_eq!(h.fire_at(at), vec![]);
    assert_eq!(h.engine.state(c), Ok(State::Closed));
    assert_eq!(h.engine.recv(h.now, c, &mut [0; 10]), Err(Error::TimedOut));
    assert_eq!(h.engine.send(h.now, c, b"more"), Err(Error::TimedOut));
    assert_eq!(h.engine.poll_timeout(), None);
    // The application closes the dead handle; nothing is sent, the socket is freed.
    h.engine.close(h.now, c);
    h.recv_none();
    assert_eq!(h.engine.socket_count(), 0);
}

#[test]
fn data_retries_is_configurable() {
    let mut h = Harness::with_config(Config {
        data_retries: 2,
        ..base_config()
    });
    let (c, iss, irs) = active_with_rtt(&mut h, ms(100));
    let t1 = h.now;
    assert_eq!(h.engine.send(h.now, c, b"a"), Ok(1));
    let data = h.recv_one();
    assert_eq!(data, h.ours(iss + 1, irs + 1).data(b"a").psh());
    assert_eq!(h.fire_one_at(t1 + ms(300)), data);
    assert_eq!(h.fire_one_at(t1 + ms(900)), data);
    assert_eq!(h.fire_at(t1 + ms(2100)), vec![]);
    assert_eq!(h.engine.recv(h.now, c, &mut [0; 10]), Err(Error::TimedOut));
}

#[test]
fn rto_is_floored_at_min_rto() {
    let mut h = Harness::new();
    // RTT 20 ms: SRTT + 4 RTTVAR = 60 ms, below the 200 ms floor.
    let (c, iss, irs) = active_with_rtt(&mut h, ms(20));
    assert_eq!(h.engine.tcp_info(c).unwrap().rto, ms(200));
    assert_eq!(h.engine.send(h.now, c, b"x"), Ok(1));
    let data = h.recv_one();
    assert_eq!(data, h.ours(iss + 1, irs + 1).data(b"x").psh());
    let t = h.now;
    assert_eq!(h.fire_one_at(t + ms(200)), data);
    assert_eq!(h.fire_one_at(t + ms(600)), data);
}

#[test]
fn karns_rule_no_sample_from_a_retransmission_and_backoff_kept_until_a_valid_one() {
    let mut h = Harness::new();
    let (c, iss, irs) = active_with_rtt(&mut h, ms(100));
    let t1 = h.now;
    assert_eq!(h.engine.send(h.now, c, b"a"), Ok(1));
    let a = h.recv_one();
    assert_eq!(h.fire_one_at(t1 + ms(300)), a);
    // The ACK 50 ms after the retransmission may be for either copy: no sample.
    h.advance(ms(50));
    h.send(h.peer(irs + 1, iss + 2));
    let info = h.engine.tcp_info(c).unwrap();
    assert_eq!((info.srtt, info.rttvar), (Some(ms(100)), ms(50)));
    // Karn: the backed-off RTO (600 ms) stays until a valid sample (RFC 6298 §5.5, §2.3).
    assert_eq!(info.rto, ms(600));
    // New data is timed; its ACK after 200 ms is a valid sample.
    let t2 = h.now;
    assert_eq!(h.engine.send(h.now, c, b"b"), Ok(1));
    assert_eq!(h.recv_one(), h.ours(iss + 2, irs + 1).data(b"b").psh());
    assert_eq!(h.engine.poll_timeout(), Some(t2 + ms(600)));
    h.advance(ms(200));
    h.send(h.peer(irs + 1, iss + 3));
    // RFC 6298 §2.3: RTTVAR = 3/4·50 + 1/4·|100 − 200| = 62.5 ms,
    // SRTT = 7/8·100 + 1/8·200 = 112.5 ms, RTO = 112.5 + 250 = 362.5 ms.
    let info = h.engine.tcp_info(c).unwrap();
    assert_eq!(info.srtt, Some(Duration::from_micros(112_500)));
    assert_eq!(info.rttvar, Duration::from_micros(62_500));
    assert_eq!(info.rto, Duration::from_micros(362_500));
}

#[test]
fn rto_resends_one_segment_then_goes_back_n_as_acks_return() {
    let mut h = Harness::newreno();
    let (c, iss, irs) = active_with_rtt(&mut h, ms(100));
    let data = pattern(0, 4380);
    assert_eq!(h.engine.send(h.now, c, &data), Ok(4380));
    let segs = h.recv_all();
    assert_eq!(segs.len(), 3);
    let t1 = h.now;
    // RFC 5681 §3.1: after the RTO, cwnd is one segment: only the first is resent.
    assert_eq!(h.fire_one_at(t1 + ms(300)), segs[0]);
    let info = h.engine.tcp_info(c).unwrap();
    assert_eq!((info.cwnd, info.ssthresh), (1460, 2920));
    // Its ACK grows cwnd to two segments (slow start): the other two follow.
    h.advance(ms(100));
    h.send(h.peer(irs + 1, iss + 1461));
    assert_eq!(h.recv_all(), segs[1..].to_vec());
    assert_eq!(h.engine.tcp_info(c).unwrap().bytes_retrans, 4380);
    h.send(h.peer(irs + 1, iss + 4381));
    assert_eq!(h.engine.poll_timeout(), None);
}

#[test]
fn third_duplicate_ack_triggers_fast_retransmit_and_newreno_recovery() {
    let mut h = Harness::newreno();
    let (_l, c, iss, irs) = h.established_passive();
    let data = pattern(0, 12 * 1460);
    let seg = |i: usize| {
        let s = h
            .ours(iss + 1 + (i * 1460) as u32, irs + 1)
            .data(&data[i * 1460..(i + 1) * 1460]);
        if i == 11 { s.psh() } else { s }
    };
    let segs: Vec<Seg> = (0..12).map(seg).collect();
    assert_eq!(h.engine.send(h.now, c, &data), Ok(data.len()));
    // The initial window is ten segments (RFC 6928).
    assert_eq!(h.recv_all(), segs[..10].to_vec());
    h.advance(ms(10));
    // Segment 0 was lost: the peer acknowledges nothing new, three times.
    let dup = h.peer(irs + 1, iss + 1);
    h.send(dup.clone());
    h.send(dup.clone());
    h.recv_none();
    h.send(dup.clone());
    assert_eq!(h.recv_one(), segs[0]);
    let info = h.engine.tcp_info(c).unwrap();
    assert_eq!(info.fast_retransmits, 1);
    // RFC 6582 §3.2 step 2: ssthresh = FlightSize/2, cwnd = ssthresh + 3 SMSS.
    assert_eq!((info.ssthresh, info.cwnd), (7300, 7300 + 3 * 1460));
    // Step 3: each further duplicate inflates cwnd by one SMSS; once it exceeds
    // the flight, new data goes out.
    h.send(dup.clone());
    h.send(dup.clone());
    h.recv_none();
    h.send(dup.clone());
    assert_eq!(h.recv_one(), segs[10]);
    // Step 5: a partial ACK (up to the next hole) retransmits that hole at once.
    h.send(h.peer(irs + 1, iss + 1 + 2920));
    assert_eq!(h.recv_all(), vec![segs[2].clone(), segs[11].clone()]);
    assert_eq!(h.engine.tcp_info(c).unwrap().fast_retransmits, 1);
    // Step 4: the full ACK ends recovery.
    h.send(h.peer(irs + 1, iss + 1 + 12 * 1460));
    h.recv_none();
    let info = h.engine.tcp_info(c).unwrap();
    assert_eq!(
        (info.ssthresh, info.cwnd, info.bytes_in_flight),
        (7300, 2920, 0)
    );
    assert_eq!(info.bytes_retrans, 2 * 1460);
    assert_eq!(info.timeouts, 0);
    // No retransmission timer; the emptied 32 KiB send buffer keeps its
    // memory for a second, then gives it back.
    assert_eq!(h.engine.poll_timeout(), Some(h.now + ms(1000)));
    assert!(h.engine.stats().buffer_bytes >= 12 * 1460);
    h.advance(ms(1000));
    assert_eq!(h.engine.stats().buffer_bytes, 0);
    assert_eq!(h.engine.poll_timeout(), None);
}

#[test]
fn acks_with_data_or_a_new_window_are_not_duplicates() {
    let mut h = Harness::new();
    let (_l, c, iss, irs) = h.established_passive();
    let data = pattern(0, 4 * 1460);
    assert_eq!(h.engine.send(h.now, c, &data), Ok(data.len()));
    assert_eq!(h.recv_all().len(), 4);
    // RFC 5681 §2: a duplicate ACK carries no data and does not change the window.
    h.send(h.peer(irs + 1, iss + 1).win(60000));
    h.send(h.peer(irs + 1, iss + 1).win(50000));
    h.send(h.peer(irs + 1, iss + 1).data(b"x"));
    h.send(h.peer(irs + 2, iss + 1).win(50000));
    // Only the data is answered (a delayed ACK); no fast retransmit.
    h.recv_none();
    assert_eq!(h.engine.tcp_info(c).unwrap().fast_retransmits, 0);
}

#[test]
fn answered_syn_ack_retransmission_also_gives_a_3s_rto() {
    let mut h = Harness::new();
    let l = h.engine.listen(local(), 8).unwrap();
    let t0 = h.now;
    h.send(
        Seg {
            seq: 1000,
            mss: Some(1460),
            ..Seg::default()
        }
        .syn(),
    );
    let synack = h.recv_one();
    assert_eq!(h.fire_one_at(t0 + secs(1)), synack);
    h.advance(ms(50));
    h.send(h.peer(1001, synack.seq + 1));
    let c = h.engine.accept(l).unwrap();
    let info = h.engine.tcp_info(c).unwrap();
    assert_eq!((info.srtt, info.rto), (None, secs(3)));
}
