//! Congestion control: the algorithm per stack and per socket, the initial
//! window (RFC 6928), window validation for application-limited senders
//! (RFC 7661), and undoing a spurious reduction on D-SACK (RFC 2883 §4).

use super::sack::sack_passive;
use super::*;

#[test]
fn cubic_is_the_default_and_each_socket_can_switch() {
    let mut h = Harness::new();
    assert_eq!(h.engine.config().congestion, CongestionAlgorithm::Cubic);
    let (l, c, _, _) = h.established_passive();
    assert_eq!(h.engine.congestion(c), Ok(CongestionAlgorithm::Cubic));
    let info = h.engine.tcp_info(c).unwrap();
    assert_eq!(info.congestion, CongestionAlgorithm::Cubic);
    // RFC 6928: ten segments.
    assert_eq!((info.cwnd, info.ssthresh), (14_600, usize::MAX));
    assert_eq!(
        h.engine.set_congestion(c, CongestionAlgorithm::NewReno),
        Ok(())
    );
    assert_eq!(h.engine.congestion(c), Ok(CongestionAlgorithm::NewReno));
    assert_eq!(h.engine.tcp_info(c).unwrap().cwnd, 14_600);
    // Misuse: a listener is not a connection; a stale handle is invalid.
    assert_eq!(
        h.engine.set_congestion(l, CongestionAlgorithm::Cubic),
        Err(Error::NotConnected)
    );
    h.engine.abort(h.now, c);
    assert_eq!(h.recv_one().ctl, TcpControl::Rst);
    assert_eq!(h.engine.congestion(c), Err(Error::InvalidHandle));
}

#[test]
fn the_stack_default_comes_from_the_config() {
    let mut h = Harness::newreno();
    let (_l, c, _, _) = h.established_passive();
    assert_eq!(h.engine.congestion(c), Ok(CongestionAlgorithm::NewReno));
}

/// One segment written, sent and acknowledged `rounds` times, 100 ms apart.
fn trickle(h: &mut Harness, c: SocketHandle, iss: u32, irs: u32, rounds: usize) {
    h.engine.set_nodelay(c, true).unwrap();
    let mut next = iss + 1;
    for i in 0..rounds {
        assert_eq!(h.engine.send(h.now, c, &pattern(i, 1460)), Ok(1460));
        let out = h.recv_one();
        assert_eq!((out.seq, out.payload.len()), (next, 1460));
        next += 1460;
        h.advance(ms(100));
        h.send(h.peer(irs + 1, next));
        h.recv_none();
    }
}

#[test]
fn an_application_limited_sender_does_not_grow_cwnd() {
    for alg in [CongestionAlgorithm::Cubic, CongestionAlgorithm::NewReno] {
        let mut h = Harness::with_config(Config {
            recv_buffer: 64 * 1024,
            congestion: alg,
            ..Config::default()
        });
        let (_l, c, iss, irs) = h.established_passive();
        // Fifty round trips, each using one segment of a ten-segment window:
        // RFC 7661 §4.3 holds cwnd (without it, slow start would add a
        // segment per ACK: 60 segments).
        trickle(&mut h, c, iss, irs, 50);
        let info = h.engine.tcp_info(c).unwrap();
        assert_eq!(info.cwnd, 14_600, "{alg:?}");
        assert_eq!(info.bytes_acked, 50 * 1460);
    }
}

/// Grows a NewReno sender's window to 40 segments by two slow-start rounds
/// (10 then 20 segments, each ACKed at once), leaving nothing in flight.
fn grown_to_40(h: &mut Harness) -> (SocketHandle, u32, u32) {
    let (_l, c, iss, irs) = h.established_passive();
    let mut next = iss + 1;
    for n in [10usize, 20] {
        let data = pattern(0, n * 1460);
        assert_eq!(h.engine.send(h.now, c, &data), Ok(data.len()));
        assert_eq!(h.recv_all().len(), n);
        h.advance(ms(100));
        next += (n * 1460) as u32;
        h.send(h.peer(irs + 1, next));
    }
    assert_eq!(h.engine.tcp_info(c).unwrap().cwnd, 40 * 1460);
    (c, next, irs)
}

/// RFC 7661 §4.4: an idle sender keeps its window through the five-minute
/// non-validated period, then it is halved (down to the initial window) for
/// each period that ran out, with ssthresh keeping three quarters of it, so
/// a sender back from a long silence does not burst an old window.
#[test]
fn an_idle_window_is_kept_for_five_minutes_then_halved_per_period() {
    for (idle, segments, ssthresh) in [
        (secs(290), 40, usize::MAX),
        (secs(310), 20, usize::MAX),
        (secs(610), 10, usize::MAX),
    ] {
        let mut h = Harness::with_config(Config {
            recv_buffer: 64 * 1024,
            congestion: CongestionAlgorithm::NewReno,
            ..base_config()
        });
        let (c, next, _) = grown_to_40(&mut h);
        h.advance(idle);
        let data = pattern(0, 40 * 1460);
        assert_eq!(h.engine.send(h.now, c, &data), Ok(data.len()));
        let out = h.recv_all();
        assert_eq!(out.len(), segments, "after {idle:?}");
        assert_eq!(out[0].seq, next);
        let info = h.engine.tcp_info(c).unwrap();
        assert_eq!(
            (info.cwnd, info.ssthresh),
            (segments * 1460, ssthresh),
            "after {idle:?}"
        );
    }
}

/// A window validated once more (the sender fills half of it) ends the
/// period: later silence counts afresh.
#[test]
fn using_the_window_again_restarts_the_non_validated_period() {
    let mut h = Harness::with_config(Config {
        recv_buffer: 64 * 1024,
        congestion: CongestionAlgorithm::NewReno,
        ..base_config()
    });
    let (c, mut next, irs) = grown_to_40(&mut h);
    h.advance(secs(200));
    // 25 of 40 segments in flight: validated again.
    let data = pattern(0, 25 * 1460);
    assert_eq!(h.engine.send(h.now, c, &data), Ok(data.len()));
    assert_eq!(h.recv_all().len(), 25);
    h.advance(ms(100));
    next += 25 * 1460;
    h.send(h.peer(irs + 1, next));
    let cwnd = h.engine.tcp_info(c).unwrap().cwnd;
    assert!(cwnd >= 40 * 1460);
    // 200 s more: 400 s since the first silence began, 200 s since this one.
    h.advance(secs(200));
    assert_eq!(h.engine.send(h.now, c, &pattern(0, 1460)), Ok(1460));
    assert_eq!(h.recv_all().len(), 1);
    assert_eq!(h.engine.tcp_info(c).unwrap().cwnd, cwnd);
}

#[test]
fn a_sender_using_its_window_grows_it_in_slow_start() {
    // One ACK for a whole window of ten segments: NewReno's slow start adds
    // all ten (RFC 3465 without a limit L, as Linux); HyStart++ caps the
    // increase per ACK at L = 8 segments (RFC 9406 §4.2, unpaced).
    for (alg, cwnd) in [
        (CongestionAlgorithm::NewReno, 20 * 1460),
        (CongestionAlgorithm::Cubic, 18 * 1460),
    ] {
        let mut h = Harness::with_config(Config {
            recv_buffer: 64 * 1024,
            congestion: alg,
            ..Config::default()
        });
        let (_l, c, iss, irs) = h.established_passive();
        let data = pattern(0, 10 * 1460);
        assert_eq!(h.engine.send(h.now, c, &data), Ok(data.len()));
        assert_eq!(h.recv_all().len(), 10);
        h.advance(ms(100));
        h.send(h.peer(irs + 1, iss + 1 + 10 * 1460));
        assert_eq!(h.engine.tcp_info(c).unwrap().cwnd, cwnd, "{alg:?}");
    }
}

#[test]
fn dsack_of_a_needless_fast_retransmit_undoes_the_reduction() {
    let mut h = Harness::new();
    let (c, iss, irs) = sack_passive(&mut h);
    let base = iss + 1;
    let s = |i: usize| base + (i * 1460) as u32;
    let data = pattern(0, 10 * 1460);
    assert_eq!(h.engine.send(h.now, c, &data), Ok(data.len()));
    assert_eq!(h.recv_all().len(), 10);
    h.advance(ms(50));
    // Segment 0 is delayed, not lost: three SACKs start recovery anyway.
    for k in 2..=4 {
        h.send(h.peer(irs + 1, s(0)).sack(&[(s(1), s(k))]));
    }
    let out = h.recv_all();
    assert_eq!(brief(&out, base), vec![(0, 1460, false)]);
    let info = h.engine.tcp_info(c).unwrap();
    assert_eq!(
        (info.ca_state, info.cwnd, info.ssthresh),
        (CaState::Recovery, 10_220, 10_220)
    );
    // The original arrives: a cumulative ACK; then the retransmission does,
    // and the peer reports it as a duplicate (RFC 2883 §4.2).
    h.send(h.peer(irs + 1, s(10)));
    h.send(h.peer(irs + 1, s(10)).sack(&[(s(0), s(1))]));
    let info = h.engine.tcp_info(c).unwrap();
    // Every retransmission of the episode was needless: cwnd and ssthresh
    // are restored.
    assert_eq!(info.spurious_undos, 1);
    assert_eq!((info.cwnd, info.ssthresh), (14_600, usize::MAX));
    assert_eq!(info.ca_state, CaState::Open);
    assert!(info.reordering > 3);
}

#[test]
fn dsack_of_only_some_retransmissions_undoes_nothing() {
    let mut h = Harness::new();
    let (c, iss, irs) = sack_passive(&mut h);
    let base = iss + 1;
    let s = |i: usize| base + (i * 1460) as u32;
    let data = pattern(0, 10 * 1460);
    assert_eq!(h.engine.send(h.now, c, &data), Ok(data.len()));
    assert_eq!(h.recv_all().len(), 10);
    // Segments 0 and 1 lost: 2–9 SACKed; both are retransmitted.
    for k in 3..=5 {
        h.send(h.peer(irs + 1, s(0)).sack(&[(s(2), s(k))]));
    }
    let out = h.recv_all();
    assert_eq!(
        brief(&out, base),
        vec![(0, 1460, false), (1460, 1460, false)]
    );
    // Only segment 0's retransmission is reported as a duplicate: segment 1
    // really was lost, so the reduction stands.
    h.send(h.peer(irs + 1, s(10)).sack(&[(s(0), s(1))]));
    let info = h.engine.tcp_info(c).unwrap();
    assert_eq!(info.spurious_undos, 0);
    assert_eq!(info.ssthresh, 10_220);
}

#[test]
fn pacing_spreads_a_window_over_the_round_trip() {
    let mut h = Harness::with_config(Config {
        recv_buffer: 64 * 1024,
        pacing: true,
        ..Config::default()
    });
    // A passive open with a 50 ms round trip.
    let (c, iss, _irs) = sack_passive(&mut h);
    assert_eq!(h.engine.pacing(c), Ok(true));
    let info = h.engine.tcp_info(c).unwrap();
    // Slow start: 2 · cwnd / SRTT = 2 · 14 600 B / 50 ms = 584 000 B/s, one
    // 1460-byte segment every 2.5 ms.
    assert_eq!(info.pacing_rate, Some(584_000));
    let data = pattern(0, 10 * 1460);
    assert_eq!(h.engine.send(h.now, c, &data), Ok(data.len()));
    let t0 = h.now;
    assert_eq!(brief(&h.recv_all(), iss + 1), vec![(0, 1460, false)]);
    // The rest follow one by one on the wheel's millisecond ticks, with up
    // to a tick of credit: at 3, 5, 8, 10, … ms.
    let times = [3, 5, 8, 10, 13, 15, 18, 20, 23];
    for (i, t) in times.into_iter().enumerate() {
        let out = h.fire_at(t0 + ms(t));
        assert_eq!(
            brief(&out, iss + 1),
            vec![(((i + 1) * 1460) as u32, 1460, false)],
            "at {t} ms"
        );
    }
    // Switched off, the next window goes out at once.
    h.engine.set_pacing(c, false).unwrap();
    assert_eq!(h.engine.pacing(c), Ok(false));
    h.advance(ms(30));
    h.send(h.peer(1001, iss + 1 + 10 * 1460));
    assert_eq!(h.engine.send(h.now, c, &data), Ok(data.len()));
    assert_eq!(h.recv_all().len(), 10);
}

#[test]
fn a_spurious_timeout_is_undone_when_its_retransmission_comes_back_as_dsack() {
    let mut h = Harness::new();
    let (c, iss, irs) = sack_passive(&mut h);
    let base = iss + 1;
    let s = |i: usize| base + (i * 1460) as u32;
    let data = pattern(0, 2 * 1460);
    assert_eq!(h.engine.send(h.now, c, &data), Ok(data.len()));
    let t0 = h.now;
    assert_eq!(h.recv_all().len(), 2);
    // The path stalls for a while: the tail loss probe (2·SRTT) resends
    // segment 1, then the RTO (200 ms later) segment 0, cwnd one segment.
    assert_eq!(
        brief(&h.fire_at(t0 + ms(100)), base),
        vec![(1460, 1460, false)]
    );
    assert_eq!(
        brief(&h.fire_at(t0 + ms(300)), base),
        vec![(0, 1460, false)]
    );
    let info = h.engine.tcp_info(c).unwrap();
    assert_eq!(
        (info.ca_state, info.cwnd, info.ssthresh),
        (CaState::Loss, 1460, 10_220)
    );
    // Nothing was lost: the originals' ACK arrives, then the peer reports
    // the retransmission of 0 as a duplicate (RFC 2883 §4.3): the timeout
    // was spurious and the reduction is undone.
    h.send(h.peer(irs + 1, s(2)));
    h.send(h.peer(irs + 1, s(2)).sack(&[(s(0), s(1))]));
    let info = h.engine.tcp_info(c).unwrap();
    assert_eq!(info.spurious_undos, 1);
    assert_eq!((info.cwnd, info.ssthresh), (14_600, usize::MAX));
    assert_eq!(info.ca_state, CaState::Open);
    assert_eq!(info.timeouts, 1);
}

/// A passive open without SACK whose peer offers four segments of window;
/// `data` is written and the first four segments go out. Returns (connection,
/// ISS, IRS, the time they went out).
fn frto_setup(h: &mut Harness, data: &[u8]) -> (SocketHandle, u32, u32, Instant) {
    let (_l, c, iss, irs) = h.established_passive();
    h.send(h.peer(irs + 1, iss + 1).win(4 * 1460));
    assert_eq!(h.engine.send(h.now, c, data), Ok(data.len()));
    assert_eq!(
        brief(&h.recv_all(), iss + 1),
        (0..4).map(b).collect::<Vec<_>>()
    );
    (c, iss, irs, h.now)
}

fn b(i: usize) -> (u32, usize, bool) {
    ((i * 1460) as u32, 1460, false)
}

#[test]
fn frto_detects_a_spurious_timeout_and_undoes_it() {
    let mut h = Harness::new();
    let data = pattern(0, 8 * 1460);
    let (c, iss, irs, t0) = frto_setup(&mut h, &data);
    let s = |i: usize| iss + 1 + (i * 1460) as u32;
    // The path stalls: the RTO (200 ms) resends segment 0.
    assert_eq!(brief(&h.fire_at(t0 + ms(200)), iss + 1), vec![b(0)]);
    assert_eq!(h.engine.tcp_info(c).unwrap().cwnd, 1460);
    // RFC 5682 §2.1 step 2b: the first ACK acknowledges new data (the
    // originals of 0 and 1 arrived late): two new segments go out instead
    // of retransmissions.
    h.send(h.peer(irs + 1, s(2)).win(4 * 1460));
    assert_eq!(brief(&h.recv_all(), iss + 1), vec![b(4), b(5)]);
    // Step 3b: the second ACK acknowledges data never retransmitted: the
    // timeout was spurious; the window is restored and new data flows on.
    h.send(h.peer(irs + 1, s(4)).win(4 * 1460));
    let info = h.engine.tcp_info(c).unwrap();
    assert_eq!(info.spurious_undos, 1);
    assert_eq!((info.cwnd, info.ssthresh), (14_600, usize::MAX));
    assert_eq!(info.ca_state, CaState::Open);
    assert_eq!(brief(&h.recv_all(), iss + 1), vec![b(6), b(7)]);
    assert_eq!(h.engine.tcp_info(c).unwrap().bytes_retrans, 1460);
}

#[test]
fn frto_falls_back_to_go_back_n_when_the_timeout_was_real() {
    let mut h = Harness::new();
    let data = pattern(0, 8 * 1460);
    let (c, iss, irs, t0) = frto_setup(&mut h, &data);
    let s = |i: usize| iss + 1 + (i * 1460) as u32;
    assert_eq!(brief(&h.fire_at(t0 + ms(200)), iss + 1), vec![b(0)]);
    // Segments 1–3 were lost: the retransmission of 0 is acknowledged, two
    // new segments go out (step 2b; the peer's window now reaches them),
    // and they bring duplicate ACKs.
    h.send(h.peer(irs + 1, s(1)).win(5 * 1460));
    assert_eq!(brief(&h.recv_all(), iss + 1), vec![b(4), b(5)]);
    h.send(h.peer(irs + 1, s(1)).win(5 * 1460));
    // Step 3a: the timeout was real: go-back-N from segment 1 with the
    // reduced window (two segments after one ACK in slow start).
    assert_eq!(brief(&h.recv_all(), iss + 1), vec![b(1), b(2)]);
    let info = h.engine.tcp_info(c).unwrap();
    assert_eq!((info.spurious_undos, info.ssthresh), (0, 10_220));
}
