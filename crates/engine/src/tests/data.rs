//! Data and ACKs both ways (RFC 9293 §3.10.2, §3.10.7.4), the delayed ACK
//! (RFC 1122 §4.2.3.2, RFC 5681 §4.2), sequence wrap-around (§3.4),
//! reassembly, and flow control (§3.8.6).

use super::*;

#[test]
fn sent_data_goes_out_at_once_and_its_ack_stops_the_timer() {
    let mut h = Harness::new();
    let (_l, c, iss, irs) = h.established_passive();
    let t0 = h.now;
    assert_eq!(h.engine.send(h.now, c, b"hello"), Ok(5));
    assert_eq!(h.recv_one(), h.ours(iss + 1, irs + 1).data(b"hello").psh());
    // The handshake measured an RTT of 0: the RTO is the 200 ms floor.
    assert_eq!(h.engine.poll_timeout(), Some(t0 + ms(200)));
    assert_eq!(h.engine.tcp_info(c).unwrap().bytes_in_flight, 5);

    h.advance(ms(10));
    h.send(h.peer(irs + 1, iss + 6));
    h.recv_none();
    assert_eq!(h.engine.poll_timeout(), None);
    let info = h.engine.tcp_info(c).unwrap();
    assert_eq!((info.bytes_in_flight, info.bytes_acked), (0, 5));
    assert_eq!(h.engine.send_capacity(c), Ok(256 * 1024));
}

#[test]
fn large_write_is_cut_into_mss_segments_and_nagle_holds_the_runt() {
    let mut h = Harness::new();
    let (_l, c, iss, irs) = h.established_passive();
    let data = pattern(0, 3000);
    assert_eq!(h.engine.send(h.now, c, &data), Ok(3000));
    assert_eq!(
        h.recv_all(),
        vec![
            h.ours(iss + 1, irs + 1).data(&data[..1460]),
            h.ours(iss + 1461, irs + 1).data(&data[1460..2920]),
        ]
    );
    // The 80-byte tail waits while data is unacknowledged (RFC 896, RFC 9293 §3.7.4).
    h.advance(ms(10));
    h.send(h.peer(irs + 1, iss + 1461));
    h.recv_none();
    h.send(h.peer(irs + 1, iss + 2921));
    assert_eq!(
        h.recv_one(),
        h.ours(iss + 2921, irs + 1).data(&data[2920..]).psh()
    );
}

#[test]
fn nodelay_sends_the_runt_at_once() {
    let mut h = Harness::new();
    let (_l, c, iss, irs) = h.established_passive();
    h.engine.set_nodelay(c, true).unwrap();
    let data = pattern(0, 3000);
    assert_eq!(h.engine.send(h.now, c, &data), Ok(3000));
    assert_eq!(
        h.recv_all(),
        vec![
            h.ours(iss + 1, irs + 1).data(&data[..1460]),
            h.ours(iss + 1461, irs + 1).data(&data[1460..2920]),
            h.ours(iss + 2921, irs + 1).data(&data[2920..]).psh(),
        ]
    );
    assert_eq!(h.engine.send(h.now, c, b"x"), Ok(1));
    assert_eq!(h.recv_one(), h.ours(iss + 3001, irs + 1).data(b"x").psh());
}

#[test]
fn first_segment_gets_a_delayed_ack_after_40ms() {
    let mut h = Harness::new();
    let (_l, c, iss, irs) = h.established_passive();
    let t0 = h.now;
    h.send(h.peer(irs + 1, iss + 1).data(&pattern(0, 1000)));
    h.recv_none();
    assert_eq!(
        h.engine.poll_event(),
        Some(Event {
            handle: c,
            readable: true,
            writable: false
        })
    );
    // The ACK waits 40 ms and then advertises the buffer less the unread 1000 bytes.
    let ack = h.fire_one_at(t0 + ms(40));
    assert_eq!(ack, h.ours(iss + 1, irs + 1001).win(free(1000)));
    assert_eq!(h.read(c), Ok(pattern(0, 1000)));
    // Reading opened the window by less than an MSS: no window update (RFC 9293 §3.8.6.2.2).
    h.recv_none();
    assert_eq!(h.engine.poll_timeout(), None);
}

#[test]
fn second_full_segment_is_acked_at_once() {
    let mut h = Harness::new();
    let (_l, c, iss, irs) = h.established_passive();
    let t0 = h.now;
    h.send(h.peer(irs + 1, iss + 1).data(&pattern(0, 1460)));
    h.recv_none();
    assert_eq!(h.engine.poll_timeout(), Some(t0 + ms(40)));
    h.advance(ms(5));
    h.send(h.peer(irs + 1461, iss + 1).data(&pattern(1460, 1460)));
    assert_eq!(h.recv_one(), h.ours(iss + 1, irs + 2921).win(free(2920)));
    // The delayed ACK is cancelled: it has nothing left to say.
    assert_eq!(h.engine.poll_timeout(), None);
    h.advance(ms(100));
    h.recv_none();
    // The next segment starts a new count: delayed again.
    h.send(h.peer(irs + 2921, iss + 1).data(&pattern(2920, 1460)));
    h.recv_none();
    let t1 = h.now;
    let ack = h.fire_one_at(t1 + ms(40));
    assert_eq!(ack, h.ours(iss + 1, irs + 4381).win(free(4380)));
    assert_eq!(h.read(c), Ok(pattern(0, 4380)));
}

/// Segments the driver hands over together, with no chance to transmit in
/// between, still get an ACK for every second full segment (RFC 1122
/// §4.2.3.2, RFC 5681 §4.2), not one stretch ACK for the batch (RFC 2525
/// §2.13).
#[test]
fn a_batch_of_segments_gets_an_ack_for_every_second_one() {
    let mut h = Harness::new();
    let (_l, c, iss, irs) = h.established_passive();
    let data = pattern(0, 5 * 1460);
    for (i, chunk) in data.chunks(1460).enumerate() {
        h.send(h.peer(irs + 1 + (i * 1460) as u32, iss + 1).data(chunk));
    }
    assert_eq!(
        h.recv_all(),
        vec![
            h.ours(iss + 1, irs + 1 + 2920).win(free(2920)),
            h.ours(iss + 1, irs + 1 + 5840).win(free(5840)),
        ]
    );
    // The fifth segment waits for the delayed ACK, as on its own.
    let ack = h.fire_one_at(h.now + ms(40));
    assert_eq!(ack, h.ours(iss + 1, irs + 1 + 7300).win(free(7300)));
    assert_eq!(h.read(c), Ok(data));
}

/// With `coalesce_acks` (as Linux under GRO) a batch gets one ACK, sent
/// when the driver next asks for output.
#[test]
fn coalesce_acks_answers_a_batch_with_one_ack() {
    let mut h = Harness::with_config(Config {
        coalesce_acks: true,
        recv_buffer: 64 * 1024,
        ..base_config()
    });
    let (_l, c, iss, irs) = h.established_passive();
    let data = pattern(0, 4 * 1460);
    for (i, chunk) in data.chunks(1460).enumerate() {
        h.send(h.peer(irs + 1 + (i * 1460) as u32, iss + 1).data(chunk));
    }
    assert_eq!(
        h.recv_all(),
        vec![h.ours(iss + 1, irs + 1 + 5840).win(free(5840))]
    );
    assert_eq!(h.read(c), Ok(data));
}

/// A driver that keeps handing over segments without ever transmitting
/// cannot make the queue of owed ACKs grow without bound: past its limit an
/// owed ACK merges into the next one (counted), as a stretch ACK would.
#[test]
fn owed_acks_stay_bounded_when_the_driver_does_not_transmit() {
    let mut h = Harness::new();
    let (_l, c, iss, irs) = h.established_passive();
    h.send(h.peer(irs + 1, iss + 1).data(&[7u8; 100]));
    // Old duplicates, each owed an immediate ACK (RFC 9293 §3.10.7.4).
    for _ in 0..10_000 {
        h.send(h.peer(irs + 1, iss + 1).data(&[7u8; 100]));
    }
    assert!(h.engine.owed_acks.len() <= MAX_OWED_ACKS);
    // The first duplicate finds no ACK owed yet; past the limit, every other
    // one merges.
    assert_eq!(
        h.engine.stats().owed_acks_merged,
        10_000 - 1 - MAX_OWED_ACKS as u64
    );
    let acks = h.recv_all();
    assert!(acks.len() <= MAX_OWED_ACKS + 1, "{} ACKs", acks.len());
    assert!(acks.iter().all(|a| a.ack == Some(irs + 101)));
    assert_eq!(h.read(c), Ok(vec![7u8; 100]));
}

/// `coalesce_acks` merges in-order ACKs only: each out-of-order segment
/// still gets its duplicate ACK, as GRO never merges across a gap.
#[test]
fn coalesce_acks_still_sends_a_duplicate_ack_per_out_of_order_segment() {
    let mut h = Harness::with_config(Config {
        coalesce_acks: true,
        recv_buffer: 64 * 1024,
        ..base_config()
    });
    let (_l, _c, iss, irs) = h.established_passive();
    for i in 1..4u32 {
        h.send(h.peer(irs + 1 + i * 1000, iss + 1).data(&[1u8; 1000]));
    }
    let acks: Vec<Option<u32>> = h.recv_all().iter().map(|s| s.ack).collect();
    assert_eq!(acks, vec![Some(irs + 1); 3]);
}

/// Each out-of-order segment of a batch gets its own duplicate ACK (RFC
/// 5681 §4.2), so the sender's duplicate-ACK count is not at the mercy of
/// the receiver's batching; the segment that fills the gap is ACKed at once.
#[test]
fn a_batch_of_out_of_order_segments_gets_a_duplicate_ack_for_each() {
    let mut h = Harness::new();
    let (_l, c, iss, irs) = h.established_passive();
    let data = pattern(0, 4 * 1000);
    for i in 1..4 {
        let at = i * 1000;
        h.send(
            h.peer(irs + 1 + at as u32, iss + 1)
                .data(&data[at..at + 1000]),
        );
    }
    h.send(h.peer(irs + 1, iss + 1).data(&data[..1000]));
    let acks: Vec<Option<u32>> = h.recv_all().iter().map(|s| s.ack).collect();
    assert_eq!(
        acks,
        vec![
            Some(irs + 1),
            Some(irs + 1),
            Some(irs + 1),
            Some(irs + 4001)
        ]
    );
    assert_eq!(h.read(c), Ok(data));
}

#[test]
fn pending_ack_rides_on_outgoing_data() {
    let mut h = Harness::new();
    let (_l, c, iss, irs) = h.established_passive();
    h.send(h.peer(irs + 1, iss + 1).data(b"ping"));
    h.recv_none();
    assert_eq!(h.read(c), Ok(b"ping".to_vec()));
    h.advance(ms(10));
    assert_eq!(h.engine.send(h.now, c, b"pong"), Ok(4));
    assert_eq!(h.recv_one(), h.ours(iss + 1, irs + 5).data(b"pong").psh());
    // Only the retransmission timer is left; no separate ACK at 40 ms.
    assert_eq!(h.engine.poll_timeout(), Some(h.now + ms(200)));
    h.send(h.peer(irs + 5, iss + 5));
    assert_eq!(h.engine.poll_timeout(), None);
    h.advance(secs(1));
    h.recv_none();
}

#[test]
fn data_both_ways_on_an_active_open() {
    let mut h = Harness::new();
    let (c, iss, irs) = h.established_active();
    assert_eq!(h.engine.send(h.now, c, b"GET /"), Ok(5));
    assert_eq!(h.recv_one(), h.ours(iss + 1, irs + 1).data(b"GET /").psh());
    h.advance(ms(20));
    // The reply acknowledges our data and carries theirs.
    h.send(h.peer(irs + 1, iss + 6).data(b"200 OK"));
    h.recv_none();
    assert_eq!(h.read(c), Ok(b"200 OK".to_vec()));
    let ack = h.fire_one_at(h.now + ms(40));
    assert_eq!(ack, h.ours(iss + 6, irs + 7));
    let info = h.engine.tcp_info(c).unwrap();
    assert_eq!((info.bytes_acked, info.bytes_received), (5, 6));
}

#[test]
fn duplicate_segment_is_acked_at_once() {
    let mut h = Harness::new();
    let (_l, c, iss, irs) = h.established_passive();
    h.send(h.peer(irs + 1, iss + 1).data(b"abc"));
    h.recv_none();
    // The same segment again (our ACK was lost): entirely old, so ACK now (RFC 9293 §3.10.7.4).
    h.send(h.peer(irs + 1, iss + 1).data(b"abc"));
    assert_eq!(h.recv_one(), h.ours(iss + 1, irs + 4).win(65533));
    // A segment overlapping old and new data: only the new bytes are kept.
    h.send(h.peer(irs + 2, iss + 1).data(b"bcdef"));
    h.recv_none();
    assert_eq!(h.read(c), Ok(b"abcdef".to_vec()));
}

#[test]
fn receive_side_sequence_wrap_with_cumulative_ack() {
    // Their ISS just below 2^32: the stream wraps after 999 bytes.
    let irs = u32::MAX - 999;
    let mut h = Harness::new();
    let (_l, c, iss, _) = h.established_passive_irs(irs);
    let seq = |off: u32| irs.wrapping_add(1).wrapping_add(off);
    let data = pattern(0, 4380);
    // The first segment spans the wrap: delayed ACK armed.
    h.send(h.peer(seq(0), iss + 1).data(&data[..1460]));
    h.recv_none();
    // The third arrives before the second: out of order across the wrap, ACKed at once.
    h.send(h.peer(seq(2920), iss + 1).data(&data[2920..]));
    assert_eq!(h.recv_one(), h.ours(iss + 1, seq(1460)).win(free(1460)));
    // The second fills the gap: one cumulative ACK covers all three.
    h.send(h.peer(seq(1460), iss + 1).data(&data[1460..2920]));
    assert_eq!(h.recv_one(), h.ours(iss + 1, seq(4380)).win(free(4380)));
    assert_eq!(seq(4380), 3381);
    assert_eq!(h.read(c), Ok(data));
    // And a FIN after the wrap.
    h.send(h.peer(seq(4380), iss + 1).fin());
    assert_eq!(h.recv_one(), h.ours(iss + 1, seq(4381)));
    assert_eq!(h.read(c), Ok(vec![]));
}

#[test]
fn send_side_sequence_wrap_with_cumulative_ack() {
    // Our ISS cannot be chosen, but it is a function of the clock (RFC 6528): set the
    // clock so that it is just below 2^32 and our stream wraps 2000 bytes in.
    let mut h = Harness::new();
    let iss = h.set_clock_for_iss(local(), remote(), u32::MAX - 2000);
    assert!(iss > u32::MAX - 2250);
    let (_l, c, got, irs) = h.established_passive();
    assert_eq!(got, iss);
    let seq = |off: u32| iss.wrapping_add(1).wrapping_add(off);
    let t0 = h.now;
    let data = pattern(0, 4380);
    assert_eq!(h.engine.send(h.now, c, &data), Ok(4380));
    assert_eq!(
        h.recv_all(),
        vec![
            h.ours(seq(0), irs + 1).data(&data[..1460]),
            h.ours(seq(1460), irs + 1).data(&data[1460..2920]),
            h.ours(seq(2920), irs + 1).data(&data[2920..]).psh(),
        ]
    );
    // The second segment straddles 2^32.
    assert!(seq(1460) > seq(2920));
    // An ACK of the first segment.
    h.advance(ms(10));
    h.send(h.peer(irs + 1, seq(1460)));
    assert_eq!(h.engine.tcp_info(c).unwrap().bytes_in_flight, 2920);
    // An ACK beyond what we sent (past the wrap) is answered and ignored (RFC 9293 §3.10.7.4).
    h.send(h.peer(irs + 1, seq(5000)));
    assert_eq!(h.recv_one(), h.ours(seq(4380), irs + 1));
    assert_eq!(h.engine.tcp_info(c).unwrap().bytes_in_flight, 2920);
    // The rest is lost; the RTO retransmits the straddling segment, intact.
    let rto_at = h.now + ms(200);
    let rtx = h.fire_one_at(rto_at);
    assert_eq!(rtx, h.ours(seq(1460), irs + 1).data(&data[1460..2920]));
    // One cumulative ACK past the wrap covers everything.
    h.send(h.peer(irs + 1, seq(4380)));
    h.recv_none();
    let info = h.engine.tcp_info(c).unwrap();
    assert_eq!((info.bytes_in_flight, info.bytes_acked), (0, 4380));
    assert_eq!(h.engine.poll_timeout(), None);
    assert!(h.now > t0);
}

#[test]
fn out_of_order_segment_gets_duplicate_ack_and_gap_fill_acks_both() {
    let mut h = Harness::new();
    let (_l, c, iss, irs) = h.established_passive();
    let data = pattern(0, 1500);
    // The second segment first: an immediate duplicate ACK for RCV.NXT (RFC 5681 §4.2).
    h.send(h.peer(irs + 1001, iss + 1).data(&data[1000..]));
    assert_eq!(h.recv_one(), h.ours(iss + 1, irs + 1));
    assert_eq!(
        h.engine.recv(h.now, c, &mut [0; 100]),
        Err(Error::WouldBlock)
    );
    assert_eq!(h.engine.poll_event(), None);
    // Again: another duplicate ACK.
    h.send(h.peer(irs + 1001, iss + 1).data(&data[1000..]));
    assert_eq!(h.recv_one(), h.ours(iss + 1, irs + 1));
    // The gap filled: an immediate ACK for both.
    h.send(h.peer(irs + 1, iss + 1).data(&data[..1000]));
    assert_eq!(h.recv_one(), h.ours(iss + 1, irs + 1501).win(free(1500)));
    assert_eq!(h.engine.poll_timeout(), None);
    assert_eq!(h.read(c), Ok(data));
}

#[test]
fn two_holes_are_filled_one_at_a_time() {
    let mut h = Harness::new();
    let (_l, c, iss, irs) = h.established_passive();
    let data = pattern(0, 500);
    let part = |i: usize| {
        h.peer(irs + 1 + 100 * i as u32, iss + 1)
            .data(&data[100 * i..100 * (i + 1)])
    };
    let (p1, p3, p0, p4, p2) = (part(1), part(3), part(0), part(4), part(2));
    h.send(p1);
    assert_eq!(h.recv_one(), h.ours(iss + 1, irs + 1));
    h.send(p3);
    assert_eq!(h.recv_one(), h.ours(iss + 1, irs + 1));
    // Filling the first hole acknowledges up to the second.
    h.send(p0);
    assert_eq!(h.recv_one(), h.ours(iss + 1, irs + 201).win(free(200)));
    h.send(p4);
    assert_eq!(h.recv_one(), h.ours(iss + 1, irs + 201).win(free(200)));
    h.send(p2);
    assert_eq!(h.recv_one(), h.ours(iss + 1, irs + 501).win(free(500)));
    assert_eq!(h.read(c), Ok(data));
}

#[test]
fn fin_ahead_of_missing_data_waits_for_the_gap() {
    let mut h = Harness::new();
    let (_l, c, iss, irs) = h.established_passive();
    h.send(h.peer(irs + 4, iss + 1).data(b"def").fin());
    assert_eq!(h.recv_one(), h.ours(iss + 1, irs + 1));
    assert_eq!(h.engine.state(c), Ok(State::Established));
    h.send(h.peer(irs + 1, iss + 1).data(b"abc"));
    // The data and the FIN are both acknowledged.
    assert_eq!(h.recv_one(), h.ours(iss + 1, irs + 8).win(free(6)));
    assert_eq!(h.engine.state(c), Ok(State::CloseWait));
    assert_eq!(h.read(c), Ok(b"abcdef".to_vec()));
    assert_eq!(h.read(c), Ok(vec![]));
}

/// A harness whose receive buffer is 4096 bytes (unscaled window 4096).
fn small_buffer() -> Harness {
    Harness::with_config(Config {
        recv_buffer: 4096,
        ..base_config()
    })
}

#[test]
fn receive_window_is_the_free_buffer_space() {
    let mut h = small_buffer();
    let l = h.engine.listen(local(), 8).unwrap();
    h.send(
        Seg {
            seq: 1000,
            mss: Some(1460),
            ..Seg::default()
        }
        .syn(),
    );
    let synack = h.recv_one();
    assert_eq!((synack.window, synack.wscale), (4096, None));
    let (iss, irs) = (synack.seq, 1000);
    h.send(h.peer(irs + 1, iss + 1));
    let c = h.engine.accept(l).unwrap();

    h.send(h.peer(irs + 1, iss + 1).data(&pattern(0, 1460)));
    h.recv_none();
    h.send(h.peer(irs + 1461, iss + 1).data(&pattern(1460, 1460)));
    assert_eq!(h.recv_one(), h.ours(iss + 1, irs + 2921).win(4096 - 2920));
    // The rest of the window: now it is zero.
    h.send(h.peer(irs + 2921, iss + 1).data(&pattern(2920, 1176)));
    let ack = h.fire_one_at(h.now + ms(40));
    assert_eq!(ack, h.ours(iss + 1, irs + 4097).win(0));
    // Bytes beyond the window are not accepted; the zero-window probe gets an
    // ACK with the window still 0 (RFC 9293 §3.8.6.1).
    h.send(h.peer(irs + 4097, iss + 1).data(b"x"));
    assert_eq!(h.recv_one(), h.ours(iss + 1, irs + 4097).win(0));
    // So does a Linux-style probe, an empty segment one below RCV.NXT.
    h.send(h.peer(irs + 4096, iss + 1));
    assert_eq!(h.recv_one(), h.ours(iss + 1, irs + 4097).win(0));
    // Reading a little does not announce a tiny window (receiver SWS avoidance) ...
    assert_eq!(h.engine.recv(h.now, c, &mut [0; 1000]), Ok(1000));
    h.recv_none();
    // ... reading an MSS worth does, at once.
    assert_eq!(h.engine.recv(h.now, c, &mut [0; 1000]), Ok(1000));
    assert_eq!(h.recv_one(), h.ours(iss + 1, irs + 4097).win(2000));
    // The probe byte can come now.
    h.send(h.peer(irs + 4097, iss + 1).data(b"x"));
    h.recv_none();
    let ack = h.fire_one_at(h.now + ms(40));
    assert_eq!(ack, h.ours(iss + 1, irs + 4098).win(1999));
}

#[test]
fn zero_window_stops_sender_and_persist_timer_probes_with_backoff() {
    let mut h = Harness::new();
    let (_l, c, iss, irs) = h.established_passive();
    // The peer closes its window.
    h.send(h.peer(irs + 1, iss + 1).win(0));
    h.recv_none();
    let t0 = h.now;
    let data = pattern(0, 3000);
    assert_eq!(h.engine.send(h.now, c, &data), Ok(3000));
    // Nothing may be sent into a zero window.
    h.recv_none();
    // The persist timer probes at RTO (200 ms), then backs off: 400, 800, 1600 ms.
    let probe = h.ours(iss, irs + 1);
    let mut at = t0;
    for backoff in 0..4 {
        at = at + ms(200 << backoff);
        assert_eq!(h.fire_one_at(at), probe, "probe {backoff}");
        // The peer answers each probe: still zero.
        h.send(h.peer(irs + 1, iss + 1).win(0));
        h.recv_none();
    }
    // A window update restarts sending at once; the window allows two segments.
    h.advance(ms(100));
    h.send(h.peer(irs + 1, iss + 1).win(2920));
    assert_eq!(
        h.recv_all(),
        vec![
            h.ours(iss + 1, irs + 1).data(&data[..1460]),
            h.ours(iss + 1461, irs + 1).data(&data[1460..2920]),
        ]
    );
    // The probes' backoff does not inflate the RTO of the data (RFC 6298 §5: the RTO
    // only backs off when the retransmission timer expires).
    assert_eq!(h.engine.poll_timeout(), Some(h.now + ms(200)));
    // The ACK opens the window for the rest.
    h.send(h.peer(irs + 1, iss + 2921).win(2920));
    assert_eq!(
        h.recv_one(),
        h.ours(iss + 2921, irs + 1).data(&data[2920..]).psh()
    );
}

#[test]
fn zero_window_arms_the_persist_timer_only_when_data_waits() {
    let mut h = Harness::new();
    let (_l, c, iss, irs) = h.established_passive();
    let data = pattern(0, 2920);
    assert_eq!(h.engine.send(h.now, c, &data), Ok(2920));
    assert_eq!(h.recv_all().len(), 2);
    // The first segment is acknowledged with a zero window: the second is in flight.
    h.advance(ms(10));
    h.send(h.peer(irs + 1, iss + 1461).win(0));
    h.recv_none();
    h.send(h.peer(irs + 1, iss + 2921).win(0));
    // Everything is acknowledged; nothing waits: no probing.
    assert_eq!(h.engine.poll_timeout(), None);
    // New data into the zero window arms the persist timer.
    assert_eq!(h.engine.send(h.now, c, b"more"), Ok(4));
    h.recv_none();
    assert_eq!(h.fire_one_at(h.now + ms(200)), h.ours(iss + 2920, irs + 1));
    h.send(h.peer(irs + 1, iss + 2921).win(100));
    assert_eq!(
        h.recv_one(),
        h.ours(iss + 2921, irs + 1).data(b"more").psh()
    );
}

#[test]
fn small_window_is_filled_when_nothing_is_in_flight() {
    let mut h = Harness::new();
    let (_l, c, iss, irs) = h.established_passive();
    // The peer offers 1000 bytes: less than an MSS and less than half its largest window.
    h.send(h.peer(irs + 1, iss + 1).win(1000));
    let data = pattern(0, 3000);
    assert_eq!(h.engine.send(h.now, c, &data), Ok(3000));
    // With nothing in flight, what fits goes out (or the connection would stall:
    // RFC 9293 §3.8.6.2.1's override), but no more.
    assert_eq!(h.recv_one(), h.ours(iss + 1, irs + 1).data(&data[..1000]));
    assert_eq!(h.engine.poll_timeout(), Some(h.now + ms(200)));
    h.advance(ms(10));
    h.send(h.peer(irs + 1, iss + 1001).win(1000));
    assert_eq!(
        h.recv_one(),
        h.ours(iss + 1001, irs + 1).data(&data[1000..2000])
    );
    // A full window update restarts sending at full size.
    h.advance(ms(10));
    h.send(h.peer(irs + 1, iss + 2001).win(65535));
    assert_eq!(
        h.recv_one(),
        h.ours(iss + 2001, irs + 1).data(&data[2000..]).psh()
    );
}

#[test]
fn windows_are_scaled_once_both_sides_offer_scaling() {
    let mut h = Harness::new();
    let l = h.engine.listen(local(), 8).unwrap();
    let irs = 1000;
    // The peer offers shift 2 and a window of 400 (never scaled in a SYN, RFC 7323 §2.2).
    h.send(
        Seg {
            seq: irs,
            mss: Some(1460),
            wscale: Some(2),
            window: 400,
            ..Seg::default()
        }
        .syn(),
    );
    let synack = h.recv_one();
    let iss = synack.seq;
    // Our SYN-ACK: shift 1 for the 64 KiB buffer, the window unscaled.
    assert_eq!((synack.window, synack.wscale), (65535, Some(1)));
    // The handshake's ACK carries window 365 << 2 = 1460: room for one segment.
    h.send(h.peer(irs + 1, iss + 1).win(365));
    let c = h.engine.accept(l).unwrap();
    // TCP_INFO's tcpi_snd_wscale and tcpi_rcv_wscale.
    assert_eq!(h.engine.tcp_info(c).unwrap().wscale, Some((2, 1)));
    let data = pattern(0, 4380);
    assert_eq!(h.engine.send(h.now, c, &data), Ok(4380));
    // Our windows are scaled down by our shift: 65536 >> 1.
    assert_eq!(
        h.recv_one(),
        h.ours(iss + 1, irs + 1).data(&data[..1460]).win(32768)
    );
    h.advance(ms(10));
    h.send(h.peer(irs + 1, iss + 1461).win(730));
    assert_eq!(
        h.recv_all(),
        vec![
            h.ours(iss + 1461, irs + 1)
                .data(&data[1460..2920])
                .win(32768),
            h.ours(iss + 2921, irs + 1)
                .data(&data[2920..])
                .psh()
                .win(32768),
        ]
    );
    // Received data shrinks the scaled window: (65536 - 1000) >> 1.
    h.send(h.peer(irs + 1, iss + 4381).data(&pattern(0, 1000)));
    let ack = h.fire_one_at(h.now + ms(40));
    assert_eq!(ack, h.ours(iss + 4381, irs + 1001).win(32268));
}

/// RFC 9293 §3.8.6.2.2: the receiver reopens its window in steps of
/// min(Fr * RCV.BUFF, Eff.snd.MSS), Fr = 1/2. With a receive buffer smaller
/// than a segment (1 024 bytes, MSS 1 460), a full window read by the
/// application must be announced at once; waiting for a whole MSS of room
/// would wait for ever, and a peer that had stopped probing (an orphan that
/// gave up in LAST-ACK) would leave this end in FIN-WAIT-2 for ever. Found
/// by the `stack` fuzz target (`fuzz/regressions/stack/`: a 32 KiB buffer
/// under a 64 KiB MTU's segment size).
#[test]
fn a_buffer_under_one_segment_still_announces_its_reopened_window() {
    let mut h = Harness::with_config(Config {
        recv_buffer: 1024,
        ..base_config()
    });
    let (_l, c, iss, irs) = h.established_passive();
    h.send(h.peer(irs + 1, iss + 1).data(&[5; 1024]));
    let mut acks = h.recv_all();
    if acks.is_empty() {
        // A delayed ACK.
        acks = h.fire_at(h.now + ms(40));
    }
    let last = acks.last().expect("the data is acknowledged");
    assert_eq!((last.ack, last.window), (Some(irs + 1 + 1024), 0));
    assert_eq!(h.read(c).unwrap().len(), 1024);
    let update = h.recv_one();
    assert_eq!((update.ack, update.window), (Some(irs + 1 + 1024), 1024));
}

/// `recv_would_block` (the front end's way to park a reader without a call)
/// agrees with what a receive says, through data, FIN and a reset.
#[test]
fn recv_would_block_says_what_a_receive_would() {
    fn agrees(h: &mut Harness, c: SocketHandle) -> bool {
        let mut buf = [0u8; 16];
        let blocked = matches!(h.engine.peek(c, &mut buf), Err(Error::WouldBlock));
        assert_eq!(h.engine.recv_would_block(c), blocked);
        blocked
    }
    let mut h = Harness::new();
    let (l, c, iss, irs) = h.established_passive();
    assert!(
        !h.engine.recv_would_block(l),
        "a listener: the call answers"
    );
    assert!(agrees(&mut h, c), "established, nothing to read");
    h.send(h.peer(irs + 1, iss + 1).data(b"ab"));
    assert!(!agrees(&mut h, c), "data to read");
    assert_eq!(h.read(c).unwrap(), b"ab");
    assert!(agrees(&mut h, c));
    h.send(h.peer(irs + 3, iss + 1).fin());
    assert!(!agrees(&mut h, c), "end of stream: reads return 0");

    let mut h = Harness::new();
    let (_l, c, iss, irs) = h.established_passive();
    h.send(h.peer(irs + 1, iss + 1).rst());
    assert!(!agrees(&mut h, c), "reset: the error is reported");

    let mut h = Harness::new();
    let c = h.engine.connect(h.now, remote()).unwrap();
    assert!(agrees(&mut h, c), "SYN-SENT: reads wait");
    h.engine.close(h.now, c);
    assert!(
        !h.engine.recv_would_block(c),
        "a stale handle: the call answers"
    );
}

/// A bare FIN at RCV.NXT is taken even when the window is zero, as Linux
/// takes it (it needs no buffer space): dropped, it would be acknowledged
/// only when the window opens and the peer resends it, and a peer whose
/// user timeout runs out first leaves this end waiting for ever (the fuzz
/// target `stack` found that). Data at a zero window is still dropped.
#[test]
fn a_bare_fin_is_taken_at_a_zero_window() {
    let mut h = Harness::new();
    let (_l, c, iss, irs) = h.established_passive();
    // Fill the 64 KiB buffer, unread.
    let data = pattern(0, 65536);
    for (i, chunk) in data.chunks(1460).enumerate() {
        h.send(h.peer(irs + 1 + (i * 1460) as u32, iss + 1).data(chunk));
    }
    let _ = h.recv_all();
    let end = irs + 1 + 65536;
    // A byte more is out of the window: dropped, answered with an ACK.
    h.send(h.peer(end, iss + 1).data(b"x"));
    assert_eq!(h.recv_one(), h.ours(iss + 1, end).win(0));
    // The bare FIN is taken and acknowledged at once.
    h.send(h.peer(end, iss + 1).fin());
    assert_eq!(h.recv_one(), h.ours(iss + 1, end + 1).win(0));
    assert_eq!(h.engine.tcp_info(c).unwrap().state, Some(State::CloseWait));
    assert_eq!(h.read(c), Ok(data));
    let mut buf = [0u8; 8];
    assert_eq!(h.engine.recv(h.now, c, &mut buf), Ok(0));
}
