//! RST and SYN handling: to a closed port (RFC 9293 §3.10.7.1), in SYN-SENT
//! (§3.10.7.3), in synchronized states with RFC 5961's blind-attack defences
//! (§3.2 RST, §4 SYN, §5 ACK).

use super::*;

#[test]
fn rst_to_closed_port() {
    let mut h = Harness::new();
    h.send(Seg {
        seq: 100,
        ctl: TcpControl::Syn,
        ..Seg::default()
    });
    let rst = h.recv_one();
    assert_eq!(rst.ctl, TcpControl::Rst);
    assert_eq!((rst.seq, rst.ack), (0, Some(101)));
    // With an ACK: <SEQ=SEG.ACK><CTL=RST>.
    h.send(Seg {
        seq: 100,
        ack: Some(555),
        payload: b"hi".to_vec(),
        ..Seg::default()
    });
    let rst = h.recv_one();
    assert_eq!((rst.seq, rst.ack, rst.ctl), (555, None, TcpControl::Rst));
    // A RST is never answered.
    h.send(Seg {
        seq: 100,
        ctl: TcpControl::Rst,
        ..Seg::default()
    });
    h.recv_none();
    assert_eq!(h.engine.stats().rx_no_socket, 3);
}

#[test]
fn rst_in_established_resets_the_connection() {
    let mut h = Harness::new();
    let (_l, c, iss, irs) = h.established_passive();
    assert_eq!(h.engine.send(h.now, c, b"data"), Ok(4));
    h.recv_one();
    h.send(h.peer(irs + 1, iss + 1).rst());
    // A RST is never answered.
    h.recv_none();
    assert_eq!(h.engine.state(c), Ok(State::Closed));
    assert_eq!(
        h.engine.poll_event(),
        Some(Event {
            handle: c,
            readable: true,
            writable: true
        })
    );
    assert_eq!(
        h.engine.recv(h.now, c, &mut [0; 8]),
        Err(Error::ConnectionReset)
    );
    assert_eq!(h.engine.send(h.now, c, b"x"), Err(Error::ConnectionReset));
    // No retransmission of the data.
    assert_eq!(h.engine.poll_timeout(), None);
    h.engine.close(h.now, c);
    h.recv_none();
    assert_eq!(h.engine.socket_count(), 1);
}

#[test]
fn rst_without_ack_flag_at_rcv_nxt_resets_too() {
    let mut h = Harness::new();
    let (_l, c, _iss, irs) = h.established_passive();
    h.send(
        Seg {
            seq: irs + 1,
            ..Seg::default()
        }
        .rst(),
    );
    assert_eq!(
        h.engine.recv(h.now, c, &mut [0; 8]),
        Err(Error::ConnectionReset)
    );
}

#[test]
fn rst_in_syn_sent_with_acceptable_ack_refuses_the_connection() {
    let mut h = Harness::new();
    let c = h.engine.connect(h.now, remote()).unwrap();
    let syn = h.recv_one();
    h.port = syn.src_port;
    h.send(h.peer(0, syn.seq + 1).rst());
    h.recv_none();
    assert_eq!(h.engine.connect_result(c), Err(Error::ConnectionRefused));
    assert_eq!(h.engine.state(c), Ok(State::Closed));
    assert!(h.engine.is_writable(c));
    // The SYN is not retransmitted.
    assert_eq!(h.engine.poll_timeout(), None);
}

#[test]
fn rst_in_syn_sent_with_unacceptable_ack_or_no_ack_is_ignored() {
    let mut h = Harness::new();
    let c = h.engine.connect(h.now, remote()).unwrap();
    let syn = h.recv_one();
    h.port = syn.src_port;
    // ACK of something other than our SYN: RFC 9293 §3.10.7.3 says drop a RST.
    h.send(h.peer(0, syn.seq + 10).rst());
    h.send(h.peer(0, syn.seq).rst());
    // No ACK at all: dropped.
    h.send(h.peer(0, 0).no_ack().rst());
    h.recv_none();
    assert_eq!(h.engine.connect_result(c), Ok(false));
    // A bad ACK without RST gets a RST <SEQ=SEG.ACK>.
    h.send(h.peer(7, syn.seq + 10));
    assert_eq!(
        h.recv_one(),
        Seg {
            ack: None,
            ctl: TcpControl::Rst,
            window: 0,
            ..h.ours(syn.seq + 10, 0)
        }
    );
    assert_eq!(h.engine.connect_result(c), Ok(false));
    // The SYN is still retransmitted on time.
    assert_eq!(h.fire_one_at(h.now + secs(1)), syn);
}

#[test]
fn rst_in_window_but_not_at_rcv_nxt_gets_a_challenge_ack() {
    let mut h = Harness::new();
    let (_l, c, iss, irs) = h.established_passive();
    // RFC 5961 §3.2: in the window but not exactly RCV.NXT: challenge ACK, survive.
    h.send(h.peer(irs + 1000, iss + 1).rst());
    assert_eq!(h.recv_one(), h.ours(iss + 1, irs + 1));
    assert_eq!(h.engine.state(c), Ok(State::Established));
    h.send(h.peer(irs + 2, iss + 1).rst());
    assert_eq!(h.recv_one(), h.ours(iss + 1, irs + 1));
    // The connection still works.
    h.send(h.peer(irs + 1, iss + 1).data(b"still here"));
    assert_eq!(h.read(c), Ok(b"still here".to_vec()));
    // The peer answers the challenge with the exact RST: now it resets.
    h.send(h.peer(irs + 11, iss + 1).rst());
    h.recv_none();
    assert_eq!(
        h.engine.recv(h.now, c, &mut [0; 8]),
        Err(Error::ConnectionReset)
    );
}

#[test]
fn rst_outside_the_window_is_dropped_silently() {
    let mut h = Harness::new();
    let (_l, c, iss, irs) = h.established_passive();
    h.send(h.peer(irs + 1 + 70_000, iss + 1).rst());
    h.send(h.peer(irs, iss + 1).rst());
    h.send(h.peer(irs.wrapping_sub(100_000), iss + 1).rst());
    h.recv_none();
    assert_eq!(h.engine.state(c), Ok(State::Established));
}

#[test]
fn syn_in_established_gets_a_challenge_ack() {
    let mut h = Harness::new();
    let (_l, c, iss, irs) = h.established_passive();
    // RFC 5961 §4 / RFC 9293 §3.10.7.4: any SYN, in the window or not, gets a challenge ACK.
    h.send(h.peer(irs + 500, 0).no_ack().syn());
    assert_eq!(h.recv_one(), h.ours(iss + 1, irs + 1));
    h.send(h.peer(irs, 0).no_ack().syn());
    assert_eq!(h.recv_one(), h.ours(iss + 1, irs + 1));
    h.send(h.peer(irs.wrapping_add(1 << 30), iss + 1).syn());
    assert_eq!(h.recv_one(), h.ours(iss + 1, irs + 1));
    assert_eq!(h.engine.state(c), Ok(State::Established));
    // Data still flows both ways.
    assert_eq!(h.engine.send(h.now, c, b"ok"), Ok(2));
    assert_eq!(h.recv_one(), h.ours(iss + 1, irs + 1).data(b"ok").psh());
}

#[test]
fn ack_of_unsent_data_is_answered_and_dropped() {
    let mut h = Harness::new();
    let (_l, c, iss, irs) = h.established_passive();
    // RFC 9293 §3.10.7.4: SEG.ACK > SND.NXT: send an ACK, drop the segment (and its data).
    h.send(h.peer(irs + 1, iss + 100).data(b"x"));
    assert_eq!(h.recv_one(), h.ours(iss + 1, irs + 1));
    assert_eq!(h.engine.recv(h.now, c, &mut [0; 8]), Err(Error::WouldBlock));
}

#[test]
fn ack_too_old_gets_a_challenge_ack() {
    let mut h = Harness::new();
    let (_l, c, iss, irs) = h.established_passive();
    // RFC 5961 §5.2: SEG.ACK < SND.UNA - MAX.SND.WND: challenge ACK, drop.
    h.send(h.peer(irs + 1, iss.wrapping_sub(70_000)).data(b"x"));
    assert_eq!(h.recv_one(), h.ours(iss + 1, irs + 1));
    assert_eq!(h.engine.recv(h.now, c, &mut [0; 8]), Err(Error::WouldBlock));
    // An old ACK within MAX.SND.WND is fine: the data is taken.
    h.send(h.peer(irs + 1, iss.wrapping_sub(10)).data(b"y"));
    assert_eq!(h.read(c), Ok(b"y".to_vec()));
}

#[test]
fn segment_without_ack_flag_is_dropped_in_established() {
    let mut h = Harness::new();
    let (_l, c, _iss, irs) = h.established_passive();
    h.send(h.peer(irs + 1, 0).no_ack().data(b"x"));
    h.recv_none();
    assert_eq!(h.engine.recv(h.now, c, &mut [0; 8]), Err(Error::WouldBlock));
}

/// A connection reset while it waits in the accept queue is still handed
/// out by `accept`, and its first read reports the reset (as Linux: the
/// child's `sk_err` is ECONNRESET); once the error is taken (the front end
/// reports it once, as the kernel's `sock_error`) it reads as closed.
/// Reading it as a clean end of stream first would tell the application
/// that the peer finished when it aborted.
#[test]
fn rst_while_in_the_accept_queue_is_reported_by_the_first_read() {
    let mut h = Harness::new();
    let l = h.engine.listen(local(), 8).unwrap();
    h.port = LOCAL_PORT;
    h.send(Seg {
        seq: 1000,
        ctl: TcpControl::Syn,
        mss: Some(1460),
        ..Seg::default()
    });
    let iss = h.recv_one().seq;
    h.send(h.peer(1001, iss.wrapping_add(1)));
    h.recv_none();
    h.send(h.peer(1001, iss.wrapping_add(1)).rst());
    let c = h.engine.accept(l).unwrap();
    assert_eq!(h.read(c), Err(Error::ConnectionReset));
    assert_eq!(h.engine.take_error(c), Ok(Some(Error::ConnectionReset)));
    assert_eq!(h.read(c), Ok(Vec::new()));
}
