//! Per-connection options and their timers: keepalive (RFC 1122 §4.2.3.6), the
//! user timeout (RFC 9293 §3.8.3, RFC 5482), the connect timeout, linger,
//! quick ACKs, and the stack-wide challenge-ACK rate limit (RFC 5961 §7).

use super::*;

fn ka(idle: u64, interval: u64, count: u32) -> Keepalive {
    Keepalive {
        idle: secs(idle),
        interval: secs(interval),
        count,
    }
}

#[test]
fn keepalive_is_off_by_default_with_linux_like_settings() {
    let mut h = Harness::new();
    let (_l, c, _, _) = h.established_passive();
    assert_eq!(h.engine.keepalive(c), Ok(None));
    // RFC 1122 §4.2.3.6: off by default; nothing is ever sent on an idle connection.
    assert_eq!(h.engine.poll_timeout(), None);
    h.advance(secs(3 * 3600));
    h.recv_none();
    // The default idle time is at least two hours.
    let d = Keepalive::default();
    assert!(d.idle >= secs(7200));
    assert_eq!((d.idle, d.interval, d.count), (secs(7200), secs(75), 9));
    assert_eq!(
        h.engine
            .set_keepalive(h.now, c, Some(ka(0, 1, 1)))
            .unwrap_err(),
        Error::InvalidInput
    );
}

#[test]
fn keepalive_probes_after_idle_and_an_answer_restarts_the_idle_time() {
    let mut h = Harness::new();
    let (_l, c, iss, irs) = h.established_passive();
    let t0 = h.now;
    h.engine
        .set_keepalive(h.now, c, Some(ka(60, 10, 3)))
        .unwrap();
    assert_eq!(h.engine.keepalive(c), Ok(Some(ka(60, 10, 3))));
    // RFC 1122 §4.2.3.6: the probe is SEG.SEQ = SND.NXT-1, no data, so the peer
    // must answer with an ACK.
    assert_eq!(h.fire_one_at(t0 + secs(60)), h.ours(iss, irs + 1));
    h.advance(secs(1));
    h.send(h.peer(irs + 1, iss + 1));
    h.recv_none();
    let t1 = h.now;
    // The probe timer (interval) finds the connection alive and waits for a
    // full idle time from the answer.
    h.advance_to(t0 + secs(70));
    h.recv_none();
    assert_eq!(h.fire_one_at(t1 + secs(60)), h.ours(iss, irs + 1));
    assert_eq!(h.engine.state(c), Ok(State::Established));
}

#[test]
fn keepalive_gives_up_after_count_unanswered_probes() {
    let mut h = Harness::new();
    let (_l, c, iss, irs) = h.established_passive();
    let t0 = h.now;
    h.engine
        .set_keepalive(h.now, c, Some(ka(60, 10, 3)))
        .unwrap();
    let probe = h.ours(iss, irs + 1);
    assert_eq!(h.fire_one_at(t0 + secs(60)), probe);
    assert_eq!(h.fire_one_at(t0 + secs(70)), probe);
    assert_eq!(h.fire_one_at(t0 + secs(80)), probe);
    // The third went unanswered too: reset, and the connection times out.
    assert_eq!(
        h.fire_one_at(t0 + secs(90)),
        h.ours(iss + 1, irs + 1).rst().no_ack().win(0)
    );
    assert_eq!(h.engine.state(c), Ok(State::Closed));
    assert_eq!(h.read(c), Err(Error::TimedOut));
}

#[test]
fn keepalive_does_not_probe_while_data_is_in_flight() {
    let mut h = Harness::new();
    let (_l, c, iss, irs) = h.established_passive();
    let t0 = h.now;
    h.engine.set_keepalive(h.now, c, Some(ka(1, 1, 1))).unwrap();
    h.engine.send(h.now, c, b"data").unwrap();
    assert_eq!(h.recv_one(), h.ours(iss + 1, irs + 1).data(b"data").psh());
    // Only retransmissions (200 ms, 600 ms) before the keepalive timer at 1 s,
    // which sees data in flight and stays quiet.
    assert_eq!(h.fire_one_at(t0 + ms(200)).payload, b"data");
    assert_eq!(h.fire_one_at(t0 + ms(600)).payload, b"data");
    h.advance_to(t0 + secs(1));
    h.recv_none();
    assert_eq!(h.engine.state(c), Ok(State::Established));
}

#[test]
fn user_timeout_ends_a_connection_whose_data_stays_unacknowledged() {
    let mut h = Harness::new();
    let (_l, c, iss, irs) = h.established_passive();
    assert_eq!(h.engine.user_timeout(c), Ok(None));
    h.engine.set_user_timeout(c, Some(secs(1))).unwrap();
    assert_eq!(h.engine.user_timeout(c), Ok(Some(secs(1))));
    let t0 = h.now;
    h.engine.send(h.now, c, b"data").unwrap();
    let seg = h.ours(iss + 1, irs + 1).data(b"data").psh();
    assert_eq!(h.recv_one(), seg);
    assert_eq!(h.fire_one_at(t0 + ms(200)), seg);
    assert_eq!(h.fire_one_at(t0 + ms(600)), seg);
    // The next RTO (1400 ms) is cut short at the user timeout, 1 s after the
    // data was first sent; the connection fails with no more retransmissions
    // (data_retries would allow 15).
    assert_eq!(h.fire_at(t0 + secs(1)), vec![]);
    assert_eq!(h.engine.state(c), Ok(State::Closed));
    assert_eq!(h.read(c), Err(Error::TimedOut));
}

#[test]
fn user_timeout_counts_from_the_last_progress() {
    let mut h = Harness::new();
    let (_l, c, iss, irs) = h.established_passive();
    h.engine.set_user_timeout(c, Some(secs(1))).unwrap();
    h.engine.set_nodelay(c, true).unwrap();
    let t0 = h.now;
    h.engine.send(h.now, c, b"ab").unwrap();
    h.recv_one();
    h.advance(ms(90));
    h.engine.send(h.now, c, b"cd").unwrap();
    h.recv_one();
    h.advance(ms(90));
    // The first two bytes are acknowledged at t0+180: the clock restarts.
    h.send(h.peer(irs + 1, iss + 3));
    let t1 = h.now;
    let next = h.engine.poll_timeout().unwrap();
    assert!(next < t1 + secs(1));
    assert_eq!(h.fire_one_at(next).payload, b"cd");
    let mut fired = h.now;
    while h.engine.state(c) == Ok(State::Established) {
        fired = h.engine.poll_timeout().unwrap();
        h.advance_to(fired);
        h.recv_all();
    }
    assert_eq!(fired, t1 + secs(1));
    assert!(fired > t0 + secs(1));
    assert_eq!(h.read(c), Err(Error::TimedOut));
}

#[test]
fn connect_timeout_from_config_and_per_socket() {
    let mut h = Harness::with_config(Config {
        connect_timeout: Some(ms(2500)),
        ..base_config()
    });
    let t0 = h.now;
    let c = h.engine.connect(h.now, remote()).unwrap();
    let syn = h.recv_one();
    assert_eq!(h.fire_one_at(t0 + secs(1)), syn);
    // The second retransmission would be at 3 s: the attempt ends at 2.5 s.
    assert_eq!(h.fire_at(t0 + ms(2500)), vec![]);
    assert_eq!(h.engine.connect_result(c), Err(Error::TimedOut));

    // Per socket, overriding the configuration.
    let t1 = h.now;
    let d = h.engine.connect(h.now, remote()).unwrap();
    h.recv_one();
    h.engine
        .set_connect_timeout(h.now, d, Some(ms(300)))
        .unwrap();
    assert_eq!(h.fire_at(t1 + ms(300)), vec![]);
    assert_eq!(h.engine.connect_result(d), Err(Error::TimedOut));
}

#[test]
fn connect_timeout_stops_once_established() {
    let mut h = Harness::with_config(Config {
        connect_timeout: Some(secs(5)),
        ..base_config()
    });
    let (c, _, _) = h.established_active();
    assert_eq!(h.engine.poll_timeout(), None);
    h.advance(secs(10));
    assert_eq!(h.engine.state(c), Ok(State::Established));
}

#[test]
fn zero_linger_close_resets_and_frees_at_once() {
    let mut h = Harness::new();
    let (_l, c, iss, irs) = h.established_passive();
    assert_eq!(h.engine.linger(c), Ok(None));
    h.engine.set_linger(c, Some(Duration::ZERO)).unwrap();
    assert_eq!(h.engine.linger(c), Ok(Some(Duration::ZERO)));
    h.engine.send(h.now, c, b"unsent?").unwrap();
    h.recv_one();
    h.engine.close(h.now, c);
    // RFC 9293 §3.10.5 ABORT: RST, no FIN, no TIME-WAIT.
    assert_eq!(h.recv_one(), h.ours(iss + 8, irs + 1).rst().no_ack().win(0));
    assert_eq!(h.engine.state(c), Err(Error::InvalidHandle));
    assert_eq!(h.engine.socket_count(), 1);
    assert_eq!(h.engine.poll_timeout(), None);
}

#[test]
fn nonzero_linger_closes_gracefully() {
    let mut h = Harness::new();
    let (_l, c, iss, irs) = h.established_passive();
    h.engine.set_linger(c, Some(secs(5))).unwrap();
    h.engine.close(h.now, c);
    assert_eq!(h.recv_one(), h.ours(iss + 1, irs + 1).fin());
    assert_eq!(h.engine.state(c), Ok(State::FinWait1));
}

#[test]
fn first_segments_are_acked_at_once_then_delayed() {
    let mut h = Harness::with_config(Config {
        recv_buffer: 64 * 1024,
        initial_quickacks: 2,
        ..base_config()
    });
    let (_l, _c, iss, irs) = h.established_passive();
    let mut seq = irs + 1;
    // Linux's quickack mode at connection start: the first segments are ACKed
    // at once, so the peer's slow start is not slowed by delayed ACKs.
    for n in 1..=2u32 {
        h.send(h.peer(seq, iss + 1).data(b"x"));
        seq += 1;
        assert_eq!(
            h.recv_one(),
            h.ours(iss + 1, seq).win(free(n as usize)),
            "segment {n}"
        );
    }
    // Then delayed ACKs (RFC 1122 §4.2.3.2).
    h.send(h.peer(seq, iss + 1).data(b"x"));
    h.recv_none();
    let t = h.now;
    assert_eq!(
        h.fire_one_at(t + ms(40)),
        h.ours(iss + 1, seq + 1).win(free(3))
    );
}

#[test]
fn quickack_switch_acks_every_segment_at_once() {
    let mut h = Harness::new();
    let (_l, c, iss, irs) = h.established_passive();
    assert_eq!(h.engine.quickack(c), Ok(false));
    h.engine.set_quickack(c, true).unwrap();
    assert_eq!(h.engine.quickack(c), Ok(true));
    for n in 1..=5u32 {
        h.send(h.peer(irs + n, iss + 1).data(b"y"));
        assert_eq!(
            h.recv_one(),
            h.ours(iss + 1, irs + n + 1).win(free(n as usize))
        );
    }
    h.engine.set_quickack(c, false).unwrap();
    h.send(h.peer(irs + 6, iss + 1).data(b"y"));
    h.recv_none();
}

#[test]
fn out_of_order_data_is_acked_at_once_even_with_delayed_acks() {
    let mut h = Harness::new();
    let (_l, _c, iss, irs) = h.established_passive();
    // RFC 5681 §4.2 / RFC 9293 §3.10.7.4: an out-of-order segment gets an
    // immediate duplicate ACK.
    h.send(h.peer(irs + 11, iss + 1).data(b"later"));
    assert_eq!(h.recv_one(), h.ours(iss + 1, irs + 1));
}

#[test]
fn challenge_acks_are_rate_limited_per_stack() {
    let mut h = Harness::with_config(Config {
        recv_buffer: 64 * 1024,
        challenge_ack_limit: 2,
        ..base_config()
    });
    let (_l, c, iss, irs) = h.established_passive();
    let challenge = h.ours(iss + 1, irs + 1);
    // RFC 5961 §3.2: an in-window RST not at RCV.NXT gets a challenge ACK...
    h.send(h.peer(irs + 100, iss + 1).rst());
    assert_eq!(h.recv_one(), challenge);
    // ... §4.2: so does a SYN in a synchronized state ...
    h.send(h.peer(irs + 50, 0).syn().no_ack());
    assert_eq!(h.recv_one(), challenge);
    // ... but §7: at most `challenge_ack_limit` per second, stack-wide.
    h.send(h.peer(irs + 200, iss + 1).rst());
    h.recv_none();
    assert_eq!(h.engine.stats().challenge_acks_suppressed, 1);
    assert_eq!(h.engine.stats().challenge_acks_sent, 2);
    // A new second, a new allowance.
    h.advance(secs(1));
    h.send(h.peer(irs + 300, iss + 1).rst());
    assert_eq!(h.recv_one(), challenge);
    assert_eq!(h.engine.state(c), Ok(State::Established));
}

#[test]
fn default_challenge_ack_limit_is_1000_per_second() {
    let mut h = Harness::new();
    assert_eq!(Config::default().challenge_ack_limit, 1000);
    let (_l, _c, iss, irs) = h.established_passive();
    for i in 0..1005u32 {
        h.send(h.peer(irs + 10 + i, iss + 1).rst());
        h.recv_all();
    }
    assert_eq!(h.engine.stats().challenge_acks_sent, 1000);
    assert_eq!(h.engine.stats().challenge_acks_suppressed, 5);
}

#[test]
fn user_timeout_bounds_a_zero_window_even_when_probes_are_answered() {
    let mut h = Harness::new();
    let (_l, c, iss, irs) = h.established_passive();
    h.engine.set_user_timeout(c, Some(secs(2))).unwrap();
    // The peer closes its window; our data waits.
    h.send(h.peer(irs + 1, iss + 1).win(0));
    let t0 = h.now;
    h.engine.send(h.now, c, b"data").unwrap();
    h.recv_none();
    // Probes at 200, 600, 1400 ms (backoff), each answered with a zero window.
    let probe = h.ours(iss, irs + 1);
    for at in [200, 600, 1400] {
        assert_eq!(h.fire_one_at(t0 + ms(at)), probe);
        h.send(h.peer(irs + 1, iss + 1).win(0));
    }
    assert_eq!(h.engine.state(c), Ok(State::Established));
    // The next probe time (3000 ms) is past the user timeout: give up there.
    assert_eq!(h.fire_at(t0 + ms(3000)), vec![]);
    assert_eq!(h.read(c), Err(Error::TimedOut));
}

#[test]
fn zero_window_without_user_timeout_is_probed_for_ever() {
    let mut h = Harness::new();
    let (_l, c, iss, irs) = h.established_passive();
    h.send(h.peer(irs + 1, iss + 1).win(0));
    h.engine.send(h.now, c, b"data").unwrap();
    // RFC 1122 §4.2.2.17: the window may stay zero indefinitely.
    for _ in 0..30 {
        let t = h.engine.poll_timeout().unwrap();
        assert_eq!(h.fire_one_at(t), h.ours(iss, irs + 1));
        h.send(h.peer(irs + 1, iss + 1).win(0));
    }
    assert_eq!(h.engine.state(c), Ok(State::Established));
}

#[test]
fn keepalive_with_user_timeout_gives_up_after_silence_not_count() {
    let mut h = Harness::new();
    let (_l, c, iss, irs) = h.established_passive();
    let t0 = h.now;
    h.engine
        .set_keepalive(h.now, c, Some(ka(60, 10, 100)))
        .unwrap();
    h.engine.set_user_timeout(c, Some(secs(75))).unwrap();
    let probe = h.ours(iss, irs + 1);
    assert_eq!(h.fire_one_at(t0 + secs(60)), probe);
    assert_eq!(h.fire_one_at(t0 + secs(70)), probe);
    // 80 s of silence ≥ the 75 s user timeout, a probe unanswered: reset (the
    // count of 100 does not matter).
    assert_eq!(
        h.fire_one_at(t0 + secs(80)),
        h.ours(iss + 1, irs + 1).rst().no_ack().win(0)
    );
    assert_eq!(h.read(c), Err(Error::TimedOut));
}

#[test]
fn user_timeout_also_bounds_the_handshake() {
    let mut h = Harness::new();
    let t0 = h.now;
    let c = h.engine.connect(h.now, remote()).unwrap();
    h.engine.set_user_timeout(c, Some(ms(2500))).unwrap();
    let syn = h.recv_one();
    assert_eq!(h.fire_one_at(t0 + secs(1)), syn);
    // The retransmission due at 3 s is cut short at 2.5 s (as Linux applies
    // TCP_USER_TIMEOUT to SYN retransmissions).
    assert_eq!(h.fire_at(t0 + ms(2500)), vec![]);
    assert_eq!(h.engine.connect_result(c), Err(Error::TimedOut));
}
