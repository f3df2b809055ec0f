//! The timestamps option (RFC 7323 §3–§5): negotiation, the TSval clock, the
//! TS.Recent echo rules, RTT measurement from TSecr, PAWS, and the effective MSS.

use super::*;

/// The harness with timestamps on (the default configuration does so).
fn ts_harness() -> Harness {
    Harness::with_config(Config {
        recv_buffer: 64 * 1024,
        timestamps: true,
        ..base_config()
    })
}

/// Our TSval at `now` on the connection `local`–`remote`.
fn tsval(h: &Harness, local: SocketAddrV4, remote: SocketAddrV4) -> u32 {
    h.engine
        .secret
        .ts_offset(local, remote)
        .wrapping_add(h.now.as_millis() as u32)
}

/// A passive open with timestamps negotiated; the peer's SYN carries TSval
/// `peer_ts` and its ACK `peer_ts + 1`: (connection, ISS, IRS).
fn established_ts(h: &mut Harness, peer_ts: u32) -> (SocketHandle, u32, u32) {
    let l = h.engine.listen(local(), 8).unwrap();
    let irs = 1000;
    h.send(Seg {
        seq: irs,
        mss: Some(1460),
        ..Seg::default().syn().ts(peer_ts, 0)
    });
    let synack = h.recv_one();
    let iss = synack.seq;
    // RFC 7323 §3.2: the SYN-ACK carries the option, echoing the SYN's TSval.
    assert_eq!(
        synack,
        Seg {
            mss: Some(1460),
            ..h.ours(iss, irs + 1)
                .syn()
                .ts(tsval(h, local(), remote()), peer_ts)
        }
    );
    h.advance(ms(30));
    let echo = synack.ts.unwrap().0;
    h.send(h.peer(irs + 1, iss + 1).ts(peer_ts + 1, echo));
    h.recv_none();
    let c = h.engine.accept(l).unwrap();
    while h.engine.poll_event().is_some() {}
    (c, iss, irs)
}

#[test]
fn negotiated_on_passive_open_with_rtt_from_tsecr_and_smaller_mss() {
    let mut h = ts_harness();
    let (c, iss, irs) = established_ts(&mut h, 100);
    let info = h.engine.tcp_info(c).unwrap();
    assert!(info.timestamps, "TCP_INFO reports timestamps negotiated");
    // RFC 7323 §4: the ACK of the SYN-ACK echoed its TSval 30 ms ago.
    assert_eq!(info.srtt, Some(ms(30)));
    // RFC 7323 §3.2 / RFC 9293 §3.7.1: 12 option bytes less per segment.
    assert_eq!(info.snd_mss, 1448);
    // Every segment carries the option: a full write goes out as 1448-byte segments.
    h.engine.set_nodelay(c, true).unwrap();
    assert_eq!(h.engine.send(h.now, c, &pattern(0, 3000)), Ok(3000));
    let out = h.recv_all();
    let ts = Some((tsval(&h, local(), remote()), 101));
    assert_eq!(
        out,
        vec![
            Seg {
                ts,
                ..h.ours(iss + 1, irs + 1).data(&pattern(0, 1448))
            },
            Seg {
                ts,
                ..h.ours(iss + 1449, irs + 1).data(&pattern(1448, 1448))
            },
            Seg {
                ts,
                ..h.ours(iss + 2897, irs + 1).data(&pattern(2896, 104)).psh()
            },
        ]
    );
}

#[test]
fn syn_without_timestamps_turns_them_off_for_the_connection() {
    let mut h = ts_harness();
    let l = h.engine.listen(local(), 8).unwrap();
    h.send(Seg {
        seq: 1000,
        mss: Some(1460),
        ..Seg::default().syn()
    });
    let synack = h.recv_one();
    assert_eq!(synack.ts, None);
    h.send(h.peer(1001, synack.seq + 1));
    let c = h.engine.accept(l).unwrap();
    assert_eq!(h.engine.tcp_info(c).unwrap().snd_mss, 1460);
    assert!(!h.engine.tcp_info(c).unwrap().timestamps);
    assert_eq!(h.engine.send(h.now, c, b"x"), Ok(1));
    assert_eq!(h.recv_one(), h.ours(synack.seq + 1, 1001).data(b"x").psh());
}

#[test]
fn timestamps_off_in_config_are_neither_offered_nor_accepted() {
    let mut h = Harness::new();
    h.engine.listen(local(), 8).unwrap();
    h.send(Seg::default().syn().ts(5, 0));
    assert_eq!(h.recv_one().ts, None);
    let c = h.engine.connect(h.now, remote()).unwrap();
    let syn = h.recv_one();
    assert_eq!(syn.ts, None);
    let _ = c;
}

#[test]
fn active_open_offers_timestamps_and_echoes_the_syn_ack() {
    let mut h = ts_harness();
    let c = h.engine.connect(h.now, remote()).unwrap();
    let syn = h.recv_one();
    h.port = syn.src_port;
    let us = SocketAddrV4::new(LOCAL_IP, h.port);
    // RFC 7323 §3.2: offered in the SYN, TSecr zero.
    assert_eq!(syn.ts, Some((tsval(&h, us, remote()), 0)));
    h.advance(ms(12));
    h.send(Seg {
        mss: Some(1460),
        ..h.peer(5000, syn.seq + 1).syn().ts(777, syn.ts.unwrap().0)
    });
    assert_eq!(
        h.recv_one(),
        h.ours(syn.seq + 1, 5001).ts(tsval(&h, us, remote()), 777)
    );
    let info = h.engine.tcp_info(c).unwrap();
    assert_eq!(info.srtt, Some(ms(12)));
    assert_eq!(info.snd_mss, 1448);
}

#[test]
fn tsval_offset_is_per_connection_and_the_clock_ticks_in_milliseconds() {
    let h = ts_harness();
    let a = SocketAddrV4::new(REMOTE_IP, 1);
    let b = SocketAddrV4::new(REMOTE_IP, 2);
    // RFC 7323 §5.4, §7.1: a random offset per connection, from the stack secret.
    assert_ne!(tsval(&h, local(), a), tsval(&h, local(), b));
    let other = Engine::new(
        Config::default(),
        Interface::new(LOCAL_IP, 24, 1500),
        [9, 9],
    );
    assert_ne!(
        other.secret.ts_offset(local(), a),
        h.engine.secret.ts_offset(local(), a)
    );
}

#[test]
fn paws_drops_an_old_duplicate_and_acks_it() {
    let mut h = ts_harness();
    let (c, iss, irs) = established_ts(&mut h, 100);
    h.send(h.peer(irs + 1, iss + 1).data(b"new").ts(200, 0));
    h.advance(ms(40));
    let ts_now = tsval(&h, local(), remote());
    assert_eq!(
        h.recv_one(),
        h.ours(iss + 1, irs + 4).win(free(3)).ts(ts_now, 200)
    );
    // RFC 7323 §5.3 R1: in-window data with an older TSval is an old duplicate:
    // ACKed (echoing TS.Recent, unchanged) and dropped.
    h.send(h.peer(irs + 4, iss + 1).data(b"old").ts(150, 0));
    assert_eq!(
        h.recv_one(),
        h.ours(iss + 1, irs + 4).win(free(3)).ts(ts_now, 200)
    );
    assert_eq!(h.read(c), Ok(b"new".to_vec()));
    // An RST is not subject to PAWS (§5.3 R1) — nor needs a timestamp.
    h.send(h.peer(irs + 4, iss + 1).rst());
    assert_eq!(h.engine.state(c), Ok(State::Closed));
    assert_eq!(h.read(c), Err(Error::ConnectionReset));
}

#[test]
fn paws_forgets_ts_recent_after_24_days_idle() {
    let mut h = ts_harness();
    let (c, iss, irs) = established_ts(&mut h, 1_000_000);
    h.advance(Duration::from_secs(24 * 24 * 3600 + 1));
    // RFC 7323 §5.5: TS.Recent is invalid after 24 days: an older TSval passes
    // and becomes TS.Recent.
    h.send(h.peer(irs + 1, iss + 1).data(b"late").ts(5, 0));
    h.advance(ms(40));
    assert_eq!(
        h.recv_one(),
        h.ours(iss + 1, irs + 5)
            .win(free(4))
            .ts(tsval(&h, local(), remote()), 5)
    );
    assert_eq!(h.read(c), Ok(b"late".to_vec()));
}

#[test]
fn ts_recent_is_updated_only_up_to_last_ack_sent() {
    let mut h = ts_harness();
    let (c, iss, irs) = established_ts(&mut h, 100);
    // Out of order: beyond Last.ACK.sent, so TS.Recent stays 101 (§4.3 (2)).
    h.send(h.peer(irs + 11, iss + 1).data(b"later").ts(300, 0));
    let ts_now = tsval(&h, local(), remote());
    assert_eq!(h.recv_one(), h.ours(iss + 1, irs + 1).ts(ts_now, 101));
    // The gap is filled by an older-looking retransmission (sent earlier): it
    // starts at Last.ACK.sent, so its TSval is taken and echoed.
    h.send(h.peer(irs + 1, iss + 1).data(b"0123456789").ts(250, 0));
    assert_eq!(
        h.recv_one(),
        h.ours(iss + 1, irs + 16).win(free(15)).ts(ts_now, 250)
    );
    assert_eq!(h.read(c), Ok(b"0123456789later".to_vec()));
}

#[test]
fn segment_without_timestamp_is_dropped_once_negotiated() {
    let mut h = ts_harness();
    let (c, iss, irs) = established_ts(&mut h, 100);
    // RFC 7323 §3.2: SHOULD silently drop; never abort.
    h.send(h.peer(irs + 1, iss + 1).data(b"bare"));
    h.advance(ms(100));
    h.recv_none();
    assert_eq!(h.engine.recv_queue(c), Ok(0));
    assert_eq!(h.engine.state(c), Ok(State::Established));
}

#[test]
fn rtt_sampled_from_retransmission_echo_resets_backoff() {
    let mut h = ts_harness();
    let (c, iss, irs) = established_ts(&mut h, 100);
    assert_eq!(h.engine.tcp_info(c).unwrap().rto, ms(200));
    h.engine.send(h.now, c, b"abc").unwrap();
    let first = h.recv_one();
    assert_eq!(first.payload, b"abc");
    let t0 = h.now;
    // RTO after 200 ms: the retransmission carries a newer TSval.
    let rtx = h.fire_one_at(t0 + ms(200));
    assert_eq!(rtx.payload, b"abc");
    assert_eq!(rtx.ts.unwrap().0, first.ts.unwrap().0 + 200);
    assert_eq!(h.engine.tcp_info(c).unwrap().rto, ms(400));
    h.advance(ms(50));
    // The ACK echoes the retransmission's TSval: a valid 50 ms sample (RFC 7323
    // §4.2: no Karn ambiguity), which also ends the backoff.
    h.send(h.peer(irs + 1, iss + 4).ts(102, rtx.ts.unwrap().0));
    let info = h.engine.tcp_info(c).unwrap();
    // SRTT 30 then 50: 7/8·30 + 1/8·50 = 32.5 ms.
    assert_eq!(info.srtt, Some(Duration::from_micros(32_500)));
    assert_eq!(info.rto, ms(200));
}

#[test]
fn pure_ack_carries_timestamps_but_rst_does_not() {
    let mut h = ts_harness();
    let (c, iss, irs) = established_ts(&mut h, 100);
    h.send(h.peer(irs + 1, iss + 1).data(b"hi").ts(120, 0));
    h.advance(ms(40));
    let ack = h.recv_one();
    assert_eq!(ack.ts, Some((tsval(&h, local(), remote()), 120)));
    // Unread data at close: a RST, without the option.
    h.engine.close(h.now, c);
    let rst = h.recv_one();
    assert_eq!(rst, h.ours(iss + 1, irs + 3).rst().no_ack().win(0));
    assert_eq!(rst.ts, None);
}

/// A passive connection with timestamps closed by us first, now in TIME-WAIT
/// with TS.Recent = `recent`: (our ISS, IRS).
fn time_wait_ts(h: &mut Harness, recent: u32) -> (u32, u32) {
    let (c, iss, irs) = established_ts(h, recent - 1);
    h.engine.close(h.now, c);
    let fin = h.recv_one();
    assert_eq!(fin.ctl, TcpControl::Fin);
    h.send(h.peer(irs + 1, iss + 2).fin().ts(recent, fin.ts.unwrap().0));
    h.recv_one();
    assert_eq!(h.engine.state(c), Ok(State::TimeWait));
    (iss, irs)
}

#[test]
fn syn_with_newer_timestamp_reuses_time_wait_even_with_an_old_sequence_number() {
    let mut h = ts_harness();
    let (_iss, irs) = time_wait_ts(&mut h, 100);
    h.advance(secs(1));
    // RFC 6191 §2: TSval beyond TS.Recent: a new connection, although its
    // sequence number is below the old RCV.NXT.
    h.send(Seg {
        seq: irs.wrapping_sub(5000),
        mss: Some(1460),
        ..Seg::default().syn().ts(5000, 0)
    });
    let synack = h.recv_one();
    assert_eq!(
        (synack.ctl, synack.ack),
        (TcpControl::Syn, Some(irs.wrapping_sub(4999)))
    );
    assert_eq!(synack.ts.unwrap().1, 5000);
}

#[test]
fn syn_with_older_timestamp_does_not_reuse_time_wait() {
    let mut h = ts_harness();
    let (iss, irs) = time_wait_ts(&mut h, 100);
    h.advance(secs(1));
    // A higher sequence number but an old TSval: PAWS drops it in TIME-WAIT,
    // with an ACK (RFC 7323 §5.3 R1), no new connection.
    h.send(Seg {
        seq: irs + 100_000,
        mss: Some(1460),
        ..Seg::default().syn().ts(50, 0)
    });
    let ack = h.recv_one();
    assert_eq!(
        (ack.ctl, ack.seq, ack.ack),
        (TcpControl::None, iss + 2, Some(irs + 2))
    );
    assert_eq!(h.engine.socket_count(), 2);
}

/// RTT samples come from the stack's own clock, not the TSval's milliseconds
/// (as Linux's `tcp_ack_update_rtt`): an ACK 300 µs after the data moves
/// SRTT by a 300 µs sample, where the TSecr would read 0 ms.
#[test]
fn rtt_samples_have_microsecond_resolution_with_timestamps_on() {
    let mut h = ts_harness();
    let (c, iss, irs) = established_ts(&mut h, 100);
    assert_eq!(h.engine.tcp_info(c).unwrap().srtt, Some(ms(30)));
    h.engine.set_nodelay(c, true).unwrap();
    assert_eq!(h.engine.send(h.now, c, &pattern(0, 1000)), Ok(1000));
    let out = h.recv_one();
    let echo = out.ts.unwrap().0;
    h.advance(Duration::from_micros(300));
    h.send(h.peer(irs + 1, iss + 1 + 1000).ts(102, echo));
    let info = h.engine.tcp_info(c).unwrap();
    // RFC 6298 §2.3: SRTT = 7/8 · 30 ms + 1/8 · 0.3 ms.
    assert_eq!(
        info.srtt,
        Some(Duration::from_micros(26_287) + Duration::from_nanos(500))
    );
}
