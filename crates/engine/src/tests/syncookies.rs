//! SYN cookies (RFC 4987 §3.6) and half-open connections under pressure: a
//! listener whose SYN queue is full answers with cookies and keeps nothing;
//! the returning ACK makes the connection with the options the SYN offered.

use super::*;
use crate::SynCookies;

/// A SYN from the remote's `port`, with timestamps, window scale 7 and SACK
/// if `options`.
fn syn_from(port: u16, seq: u32, mss: u16, options: bool) -> Seg {
    Seg {
        src_port: port,
        seq,
        mss: Some(mss),
        wscale: options.then_some(7),
        sack_permitted: options,
        ts: options.then_some((1000, 0)),
        ..Seg::default()
    }
    .syn()
}

fn from(port: u16, seq: u32, ack: u32) -> Seg {
    Seg {
        src_port: port,
        seq,
        ack: Some(ack),
        ..Seg::default()
    }
}

/// A harness with timestamps and SACK on (the defaults) and a listener of
/// backlog 1 whose SYN queue is already full (an embryo from port 40000).
fn crowded() -> (Harness, SocketHandle) {
    let mut h = Harness::with_config(Config {
        initial_quickacks: 0,
        send_buffer_initial: 256 * 1024,
        ..Config::default()
    });
    let l = h.engine.listen(local(), 1).unwrap();
    h.send(syn_from(40000, 1, 1460, true));
    assert_eq!(h.recv_all().len(), 1);
    (h, l)
}

#[test]
fn a_full_syn_queue_answers_with_a_cookie_and_its_ack_makes_the_connection() {
    let (mut h, l) = crowded();
    let sockets = h.engine.socket_count();
    h.send(syn_from(40001, 5000, 1460, true));
    let sa = h.recv_one();
    // A SYN-ACK like any other, but nothing was kept.
    assert_eq!((sa.ctl, sa.ack), (TcpControl::Syn, Some(5001)));
    assert_eq!(
        (sa.mss, sa.wscale, sa.sack_permitted),
        (Some(1460), Some(3), true)
    );
    let (tsval, tsecr) = sa.ts.unwrap();
    assert_eq!(tsecr, 1000);
    assert_eq!(h.engine.socket_count(), sockets);
    assert_eq!(h.engine.stats().syncookies_sent, 1);
    // The ACK returns the cookie: an established connection to accept.
    h.send(from(40001, 5001, sa.seq + 1).ts(1001, tsval).win(512));
    h.recv_none();
    let c = h.engine.accept(l).unwrap();
    assert_eq!(h.engine.state(c), Ok(State::Established));
    assert_eq!(h.engine.stats().syncookies_valid, 1);
    // The options came back through the timestamp: SACK, the MSS less the
    // timestamp option, and window scale 7 (512 << 7 lets the whole
    // initial window go at once).
    let info = h.engine.tcp_info(c).unwrap();
    assert!(info.sack);
    assert_eq!(info.snd_mss, 1460 - 12);
    assert_eq!(h.engine.send(h.now, c, &pattern(0, 20_000)), Ok(20_000));
    let segs = h.recv_all();
    assert_eq!(segs.len(), 10, "the initial window, not 512 bytes");
    assert_eq!(segs[0].seq, sa.seq + 1);
}

#[test]
fn without_timestamps_a_cookie_keeps_only_the_mss() {
    let (mut h, l) = crowded();
    h.send(syn_from(40001, 5000, 1400, false));
    let sa = h.recv_one();
    // Nothing to carry window scale or SACK in: neither is offered.
    assert_eq!((sa.wscale, sa.sack_permitted, sa.ts), (None, false, None));
    h.send(from(40001, 5001, sa.seq + 1));
    let c = h.engine.accept(l).unwrap();
    let info = h.engine.tcp_info(c).unwrap();
    // 1400 is remembered as the largest table entry not above it.
    assert_eq!((info.snd_mss, info.sack), (1300, false));
    // Data in the ACK is delivered.
    h.send(from(40001, 5001, sa.seq + 1).data(b"hello"));
    assert_eq!(h.read(c), Ok(b"hello".to_vec()));
}

#[test]
fn a_forged_or_stale_cookie_is_dropped_and_counted() {
    let (mut h, l) = crowded();
    h.send(syn_from(40001, 5000, 1460, false));
    let sa = h.recv_one();
    // A guess is dropped without a RST: the listener has been sending cookies.
    h.send(from(40002, 7000, 123_456));
    h.recv_none();
    // The right cookie for another port, or another sequence number, fails too.
    h.send(from(40003, 5001, sa.seq + 1));
    h.send(from(40001, 9001, sa.seq + 1));
    h.recv_none();
    assert_eq!(h.engine.stats().syncookies_failed, 3);
    // Two minute ticks on, the genuine ACK is stale.
    h.advance(secs(119));
    h.send(from(40001, 5001, sa.seq + 1));
    assert_eq!(h.engine.stats().syncookies_failed, 4);
    assert_eq!(h.engine.accept(l), Err(Error::WouldBlock));
    assert_eq!(h.engine.stats().syncookies_valid, 0);
}

#[test]
fn always_mode_keeps_no_embryo_at_all() {
    let mut h = Harness::with_config(Config {
        syn_cookies: SynCookies::Always,
        timestamps: false,
        ..Config::default()
    });
    let l = h.engine.listen(local(), 8).unwrap();
    h.send(syn_from(40001, 5000, 1460, false));
    let sa = h.recv_one();
    assert_eq!(h.engine.stats().states.syn_received, 0);
    h.send(from(40001, 5001, sa.seq + 1));
    assert!(h.engine.accept(l).is_ok());
}

#[test]
fn cookies_off_drops_the_syn() {
    let mut h = Harness::with_config(Config {
        syn_cookies: SynCookies::Off,
        ..Config::default()
    });
    h.engine.listen(local(), 1).unwrap();
    h.send(syn_from(40000, 1, 1460, true));
    h.recv_one();
    h.send(syn_from(40001, 5000, 1460, true));
    h.recv_none();
    let stats = h.engine.stats();
    assert_eq!((stats.syn_dropped, stats.syncookies_sent), (1, 0));
}

#[test]
fn an_embryo_outliving_syn_received_timeout_is_dropped() {
    let mut h = Harness::with_config(Config {
        syn_received_timeout: Some(secs(2)),
        timestamps: false,
        ..Config::default()
    });
    let l = h.engine.listen(local(), 8).unwrap();
    h.send(syn_from(40001, 5000, 1460, false));
    let sa = h.recv_one();
    // The SYN-ACK is retransmitted at 1 s; at 2 s the embryo is gone.
    assert_eq!(h.fire_one_at(h.now + secs(1)), sa);
    h.advance(secs(1));
    h.recv_none();
    assert_eq!(h.engine.stats().states.syn_received, 0);
    assert_eq!(h.engine.socket_count(), 1);
    // Its place in the SYN queue is free again.
    h.send(syn_from(40002, 6000, 1460, false));
    assert_eq!(h.recv_one().ctl, TcpControl::Syn);
    assert_eq!(h.engine.stats().syncookies_sent, 0);
    let _ = l;
}

#[test]
fn old_embryos_of_a_crowded_listener_get_two_synack_retries() {
    let mut h = Harness::with_config(Config {
        syn_cookies: SynCookies::Off,
        timestamps: false,
        ..Config::default()
    });
    h.engine.listen(local(), 16).unwrap();
    // Ten embryos that never answer: the SYN queue is more than half full.
    for i in 0..10u16 {
        h.send(syn_from(41000 + i, 100, 1460, false));
    }
    assert_eq!(h.recv_all().len(), 10);
    let t0 = h.now;
    // Their SYN-ACKs go again at 1 s and 3 s, then they are dropped at 7 s
    // instead of retrying until 63 s.
    assert_eq!(h.fire_at(t0 + secs(1)).len(), 10);
    assert_eq!(h.fire_at(t0 + secs(3)).len(), 10);
    assert!(h.fire_at(t0 + secs(7)).is_empty());
    assert_eq!(h.engine.stats().states.syn_received, 0);
}
