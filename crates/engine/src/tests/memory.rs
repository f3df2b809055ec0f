//! Memory on demand: buffers allocated as data flows and given back when
//! empty, receive-window autotuning, send-buffer growth with the congestion
//! window, the stack-wide budget, and nothing held for ever (persist give-up,
//! orphan limits).

use super::*;
use crate::MemoryLimits;

/// The defaults (256 KiB maxima, 16 KiB / 64 KiB to start), plain segments.
fn defaults() -> Config {
    Config {
        timestamps: false,
        initial_quickacks: 0,
        ..Config::default()
    }
}

/// A passive open from `src_port` on listener `l`, with the peer offering
/// window scale 7 and a window of 64 KiB: (connection, our ISS, their ISS).
fn passive_from(h: &mut Harness, l: SocketHandle, src_port: u16) -> (SocketHandle, u32, u32) {
    h.port = LOCAL_PORT;
    let irs = 1000;
    h.send(Seg {
        src_port,
        seq: irs,
        ctl: TcpControl::Syn,
        mss: Some(1460),
        wscale: Some(7),
        ..Seg::default()
    });
    let synack = h.recv_one();
    let iss = synack.seq;
    h.send(Seg {
        src_port,
        ..h.peer(irs + 1, iss + 1).win(512)
    });
    h.recv_none();
    let c = h.engine.accept(l).unwrap();
    while h.engine.poll_event().is_some() {}
    (c, iss, irs)
}

#[test]
fn a_connection_holds_no_buffer_memory_until_data_flows() {
    let mut h = Harness::with_config(defaults());
    let l = h.engine.listen(local(), 8).unwrap();
    h.send(Seg {
        seq: 1000,
        ctl: TcpControl::Syn,
        mss: Some(1460),
        ..Seg::default()
    });
    let synack = h.recv_one();
    // An embryo in the SYN queue holds no payload memory.
    let stats = h.engine.stats();
    assert_eq!(stats.states.syn_received, 1);
    assert_eq!(stats.buffer_bytes, 0);
    let iss = synack.seq;
    h.port = LOCAL_PORT;
    h.send(h.peer(1001, iss + 1));
    let c = h.engine.accept(l).unwrap();
    assert_eq!(h.engine.stats().states.established, 1);
    assert_eq!(h.engine.stats().buffer_bytes, 0);
    // One byte in: a small buffer, given back once read.
    h.send(h.peer(1001, iss + 1).data(b"q"));
    let held = h.engine.stats().buffer_bytes;
    assert!(
        held > 0 && held <= 4096,
        "{held} bytes for one byte received"
    );
    assert_eq!(h.read(c), Ok(b"q".to_vec()));
    assert_eq!(h.engine.stats().buffer_bytes, 0);
    // One byte out: held until acknowledged.
    assert_eq!(h.engine.send(h.now, c, b"r"), Ok(1));
    h.recv_all();
    assert!(h.engine.stats().buffer_bytes > 0);
    h.send(h.peer(1002, iss + 2));
    assert_eq!(h.engine.stats().buffer_bytes, 0);
    // The receive window offered is the initial 64 KiB, not the 256 KiB maximum.
    assert_eq!(
        h.engine.tcp_info(c).unwrap().state,
        Some(State::Established)
    );
}

#[test]
fn the_receive_window_grows_with_what_the_application_reads_and_never_shrinks() {
    let mut h = Harness::with_config(defaults());
    let l = h.engine.listen(local(), 8).unwrap();
    let (c, iss, irs) = passive_from(&mut h, l, REMOTE_PORT);
    // RFC 7323 §2.3: the scale is chosen for the 256 KiB maximum, and the
    // window starts at the initial 64 KiB.
    let mut acks: Vec<Seg> = Vec::new();
    let mut seq = irs + 1;
    let mut send_round = |h: &mut Harness, acks: &mut Vec<Seg>, n: usize| {
        for _ in 0..n {
            h.send(h.peer(seq, iss + 1).data(&pattern(0, 1460)));
            seq += 1460;
            acks.extend(h.recv_all());
        }
    };
    let edge = |s: &Seg| s.ack.unwrap().wrapping_add(u32::from(s.window) << 3);
    send_round(&mut h, &mut acks, 4);
    assert_eq!(edge(&acks[0]), irs + 1 + 64 * 1024);
    // A reader that takes less than the initial window per round trip
    // (measured over at least 1 ms here) does not grow it.
    h.advance(ms(2));
    assert_eq!(h.read(c).map(|d| d.len()), Ok(4 * 1460));
    acks.extend(h.recv_all());
    let after_slow = edge(acks.last().unwrap());
    assert!(after_slow.wrapping_sub(irs + 1 + 4 * 1460) <= 64 * 1024);
    // A reader that takes 44 segments in a round trip grows it, up to the maximum.
    send_round(&mut h, &mut acks, 44);
    h.advance(ms(2));
    assert_eq!(h.read(c).map(|d| d.len()), Ok(44 * 1460));
    acks.extend(h.recv_all());
    let rcv_nxt = irs + 1 + 48 * 1460;
    assert_eq!(
        edge(acks.last().unwrap()).wrapping_sub(rcv_nxt),
        256 * 1024,
        "window after a fast reader"
    );
    // RFC 9293 §3.8.6.2.2, RFC 7323 §2.4: the right edge never moves left.
    let edges: Vec<u32> = acks.iter().map(edge).collect();
    for w in edges.windows(2) {
        assert!((w[1].wrapping_sub(w[0]) as i32) >= 0, "edges {edges:?}");
    }
}

#[test]
fn the_send_buffer_grows_with_the_congestion_window() {
    let mut h = Harness::with_config(defaults());
    let (_l, c, iss, irs) = h.established_passive();
    assert_eq!(h.engine.send_capacity(c), Ok(16 * 1024));
    let data = pattern(0, 64 * 1024);
    assert_eq!(h.engine.send(h.now, c, &data), Ok(16 * 1024));
    assert_eq!(h.engine.send(h.now, c, &data), Err(Error::WouldBlock));
    assert_eq!(h.recv_all().len(), 10);
    h.advance(ms(10));
    // The first ten segments are acknowledged one by one: the window grows in
    // slow start and the buffer follows it, to twice the window.
    for i in 1..=10u32 {
        h.send(h.peer(irs + 1, iss + 1 + i * 1460));
    }
    while h.engine.poll_event().is_some() {}
    let info = h.engine.tcp_info(c).unwrap();
    let unacked = 16 * 1024 - 10 * 1460;
    assert!(info.cwnd > 10 * 1460, "cwnd {}", info.cwnd);
    assert_eq!(
        h.engine.send_capacity(c),
        Ok(2 * info.cwnd - unacked),
        "room for twice the window"
    );
}

/// An established passive connection whose peer closed its window before
/// 4 bytes were written: they wait, and the persist timer probes.
fn stalled_by_zero_window(h: &mut Harness) -> (SocketHandle, u32, u32) {
    let (_l, c, iss, irs) = h.established_passive();
    h.send(h.peer(irs + 1, iss + 1).win(0));
    assert_eq!(h.engine.send(h.now, c, b"data"), Ok(4));
    (c, iss, irs)
}

#[test]
fn zero_window_probes_nobody_answers_end_the_connection() {
    let mut h = Harness::with_config(Config {
        data_retries: 3,
        ..base_config()
    });
    let (c, iss, irs) = stalled_by_zero_window(&mut h);
    h.recv_none();
    for _ in 0..3 {
        let t = h.engine.poll_timeout().unwrap();
        assert_eq!(h.fire_one_at(t), h.ours(iss, irs + 1));
    }
    // The peer answered none of the three: the next firing gives up.
    let t = h.engine.poll_timeout().unwrap();
    assert!(h.fire_at(t).is_empty());
    assert_eq!(h.engine.state(c), Ok(State::Closed));
    assert_eq!(h.engine.send(h.now, c, b"x"), Err(Error::TimedOut));
}

#[test]
fn answered_zero_window_probes_keep_the_connection() {
    let mut h = Harness::with_config(Config {
        data_retries: 3,
        ..base_config()
    });
    let (c, iss, irs) = stalled_by_zero_window(&mut h);
    for _ in 0..6 {
        let t = h.engine.poll_timeout().unwrap();
        assert_eq!(h.fire_one_at(t), h.ours(iss, irs + 1));
        h.send(h.peer(irs + 1, iss + 1).win(0));
    }
    // RFC 1122 §4.2.2.17: a receiver that answers may keep its window closed.
    assert_eq!(h.engine.state(c), Ok(State::Established));
}

#[test]
fn an_orphan_behind_a_zero_window_is_dropped_after_its_probes() {
    let mut h = Harness::with_config(Config {
        orphan_retries: 2,
        ..base_config()
    });
    let (c, iss, irs) = stalled_by_zero_window(&mut h);
    h.engine.close(h.now, c);
    assert_eq!(h.engine.stats().orphans, 1);
    let sockets = h.engine.socket_count();
    // Even answered, an orphan's probes are bounded (Linux's tcp_orphan_retries).
    for _ in 0..2 {
        let t = h.engine.poll_timeout().unwrap();
        assert_eq!(h.fire_one_at(t), h.ours(iss, irs + 1));
        h.send(h.peer(irs + 1, iss + 1).win(0));
    }
    let t = h.engine.poll_timeout().unwrap();
    assert!(h.fire_at(t).is_empty());
    assert_eq!(h.engine.socket_count(), sockets - 1);
    assert_eq!(h.engine.stats().orphans, 0);
    assert_eq!(h.engine.stats().buffer_bytes, 0);
}

#[test]
fn closing_past_max_orphans_resets_the_connection() {
    let mut h = Harness::with_config(Config {
        max_orphans: 1,
        ..base_config()
    });
    let l = h.engine.listen(local(), 8).unwrap();
    let (a, iss_a, irs_a) = passive_from(&mut h, l, REMOTE_PORT);
    let (b, _, _) = passive_from(&mut h, l, REMOTE_PORT + 1);
    h.port = LOCAL_PORT;
    h.engine.close(h.now, a);
    // The first orphan closes gracefully: its FIN.
    assert_eq!(h.recv_one(), h.ours(iss_a + 1, irs_a + 1).fin().win(8192));
    assert_eq!(h.engine.stats().orphans, 1);
    h.engine.close(h.now, b);
    // The second would be one orphan too many: reset.
    let rst = h.recv_one();
    assert_eq!((rst.ctl, rst.dst_port), (TcpControl::Rst, REMOTE_PORT + 1));
    let stats = h.engine.stats();
    assert_eq!((stats.orphans, stats.orphans_reset), (1, 1));
}

#[test]
fn above_the_memory_limit_the_window_stays_where_it_was_promised() {
    let mut h = Harness::with_config(Config {
        memory: Some(MemoryLimits {
            low: 1,
            pressure: 2,
            high: 6000,
        }),
        ..defaults()
    });
    let l = h.engine.listen(local(), 8).unwrap();
    let (a, iss_a, irs_a) = passive_from(&mut h, l, REMOTE_PORT);
    let (b, iss_b, irs_b) = passive_from(&mut h, l, REMOTE_PORT + 1);
    let peer_b = |h: &Harness, seq: u32| Seg {
        src_port: REMOTE_PORT + 1,
        ..h.peer(seq, iss_b + 1)
    };
    // Connection a's unread 8 KiB take the stack over its limit.
    for i in 0..5u32 {
        h.send(
            h.peer(irs_a + 1 + i * 1460, iss_a + 1)
                .data(&pattern(0, 1460)),
        );
    }
    h.recv_all();
    assert!(h.engine.stats().buffer_bytes > 6000);
    // Connection b gets 23 segments: while the stack is over its limit, its
    // ACKs keep the right edge where the handshake put it.
    let edge = |s: &Seg| s.ack.unwrap().wrapping_add(u32::from(s.window) << 3);
    let mut edges = Vec::new();
    for i in 0..23u32 {
        h.send(peer_b(&h, irs_b + 1 + i * 1460).data(&pattern(0, 1460)));
        edges.extend(h.recv_all().iter().map(edge));
    }
    // The SYN-ACK promised 65 535 bytes (unscaled); scaled windows can only
    // say it to within 8 bytes, rounded down.
    let promised = irs_b + 1 + 65535;
    let kept = |e: u32| e <= promised && e > promised - 8;
    assert!(edges.iter().all(|&e| kept(e)), "edges {edges:?}");
    // Its reader takes the data: the window update opens no new window.
    assert_eq!(h.read(b).map(|d| d.len()), Ok(23 * 1460));
    let update = edge(&h.recv_one());
    assert!(
        kept(update),
        "window update to {update}, promised {promised}"
    );
    // Data up to the promise is taken; beyond it, dropped and counted.
    h.send(peer_b(&h, promised - 1000).data(&pattern(0, 1460)));
    assert_eq!(h.engine.stats().dropped_for_memory, 460);
    // Once a's reader drains it, memory is back under the limit.
    assert_eq!(h.read(a).map(|d| d.len()), Ok(5 * 1460));
    assert_eq!(h.engine.stats().memory_pressure_entered, 1);
}

#[test]
fn an_mtu_below_68_is_refused_and_68_carries_every_segment() {
    let iface = |mtu| Interface::new(LOCAL_IP, 24, mtu);
    let cfg = Config::default();
    assert_eq!(
        Engine::try_new(cfg.clone(), iface(67), [1, 2]).err(),
        Some(Error::InvalidInput)
    );
    assert!(Engine::try_new(cfg.clone(), iface(68), [1, 2]).is_ok());
    // RFC 791: 68 bytes carry IPv4 and TCP with every option we use.
    let mut h = Harness::with_mtu(cfg, 68);
    let out = |h: &mut Harness| {
        let mut segs = Vec::new();
        let mut buf = [0u8; 68];
        while let Some(n) = h.engine.poll_transmit(h.now, &mut buf) {
            segs.push(parse(&buf[..n]));
        }
        segs
    };
    let l = h.engine.listen(local(), 8).unwrap();
    h.send(Seg {
        seq: 1000,
        ctl: TcpControl::Syn,
        mss: Some(1460),
        wscale: Some(7),
        sack_permitted: true,
        ts: Some((1, 0)),
        ..Seg::default()
    });
    let synack = out(&mut h).pop().unwrap();
    // The MSS offered is the MTU less 40 bytes of headers.
    assert_eq!(synack.mss, Some(28));
    let iss = synack.seq;
    let tsval = synack.ts.unwrap().0;
    h.send(h.peer(1001, iss + 1).win(512).ts(2, tsval));
    let c = h.engine.accept(l).unwrap();
    // Data goes out in 16-byte segments (28 less 12 bytes of timestamps).
    assert_eq!(h.engine.send(h.now, c, &pattern(0, 100)), Ok(100));
    let segs = out(&mut h);
    assert!(!segs.is_empty() && segs.iter().all(|s| s.payload.len() <= 16));
    // Out-of-order data is answered with as many SACK blocks as fit: one.
    h.send(h.peer(1101, iss + 1).win(512).ts(3, tsval).data(b"late"));
    h.send(h.peer(1201, iss + 1).win(512).ts(3, tsval).data(b"later"));
    let acks = out(&mut h);
    assert_eq!(acks.last().unwrap().sack, vec![(1201, 1206)]);
}
