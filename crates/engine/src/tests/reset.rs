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

/// FIN, SYN and RST bits of a TCP header.
const FIN: u8 = 0x01;
const SYN: u8 = 0x02;
const RST: u8 = 0x04;

#[test]
fn syn_fin_to_a_closed_port_is_reset_covering_both() {
    let mut h = Harness::new();
    // RFC 9293 §3.10.7.1: <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>, and SEG.LEN
    // counts the SYN, the text and the FIN (§3.4).
    h.send_with_flags(Seg::default().syn().data(b"abc"), FIN);
    let rst = h.recv_one();
    assert_eq!(rst.ctl, TcpControl::Rst);
    assert_eq!((rst.seq, rst.ack), (0, Some(5)));
    assert_eq!(h.engine.stats().rx_malformed, 0);
    assert_eq!(h.engine.stats().rx_no_socket, 1);
}

#[test]
fn syn_fin_to_a_listener_opens_nothing() {
    let mut h = Harness::new();
    let l = h.engine.listen(local(), 8).unwrap();
    h.send_with_flags(
        Seg {
            seq: 17,
            mss: Some(1460),
            ..Seg::default()
        }
        .syn(),
        FIN,
    );
    h.recv_none();
    assert_eq!(h.engine.accept(l), Err(Error::WouldBlock));
    // A SYN alone still opens.
    h.send(
        Seg {
            seq: 17,
            mss: Some(1460),
            ..Seg::default()
        }
        .syn(),
    );
    assert_eq!(h.recv_one().ack, Some(18));
}

#[test]
fn syn_fin_in_a_synchronized_state_is_a_syn() {
    let mut h = Harness::new();
    let (_l, c, iss, irs) = h.established_passive();
    // RFC 5961 §4: a challenge ACK, wherever the sequence number lies; the
    // FIN is not taken.
    for seq in [irs + 1, irs + 500] {
        h.send_with_flags(h.peer(seq, 0).no_ack().syn(), FIN);
        assert_eq!(h.recv_one(), h.ours(iss + 1, irs + 1));
    }
    assert_eq!(h.engine.state(c), Ok(State::Established));
    assert_eq!(h.engine.stats().rx_malformed, 0);
    // In TIME-WAIT it reopens nothing either (a SYN alone beyond the old
    // sequence space may, RFC 6191): a challenge ACK, TIME-WAIT stays.
    h.engine.shutdown(h.now, c).unwrap();
    assert_eq!(h.recv_one(), h.ours(iss + 1, irs + 1).fin());
    h.send(h.peer(irs + 1, iss + 2).fin());
    assert_eq!(h.recv_one(), h.ours(iss + 2, irs + 2));
    assert_eq!(h.engine.state(c), Ok(State::TimeWait));
    h.send_with_flags(h.peer(irs + 100_000, 0).no_ack().syn(), FIN);
    assert_eq!(h.recv_one(), h.ours(iss + 2, irs + 2));
    assert_eq!(h.engine.state(c), Ok(State::TimeWait));
}

#[test]
fn rst_beside_syn_or_fin_is_a_rst() {
    let mut h = Harness::new();
    let (_l, c, iss, irs) = h.established_passive();
    // RFC 9293 §3.10.7.4: the RST check comes before the SYN and FIN checks.
    // Not at RCV.NXT: a challenge ACK (RFC 5961 §3.2), nothing reset.
    h.send_with_flags(h.peer(irs + 10, iss + 1).fin(), RST);
    assert_eq!(h.recv_one(), h.ours(iss + 1, irs + 1));
    assert_eq!(h.engine.state(c), Ok(State::Established));
    // At RCV.NXT: reset, even with SYN set beside it.
    h.send_with_flags(h.peer(irs + 1, iss + 1).rst(), SYN);
    h.recv_none();
    assert_eq!(
        h.engine.recv(h.now, c, &mut [0; 8]),
        Err(Error::ConnectionReset)
    );
    // To a closed port a RST is never answered, whatever else is set.
    h.send_with_flags(h.peer(irs + 1, iss + 1).rst(), SYN | FIN);
    h.recv_none();
    assert_eq!(h.engine.stats().rx_malformed, 0);
}

#[test]
fn text_on_a_syn_ack_is_data() {
    let mut h = Harness::new();
    let c = h.engine.connect(h.now, remote()).unwrap();
    let syn = h.recv_one();
    h.port = syn.src_port;
    // RFC 9293 §3.10.7.3: after the SYN-ACK is taken, "continue processing
    // at the sixth step": the text is data, acknowledged at once.
    h.send(Seg {
        dst_port: syn.src_port,
        seq: 5000,
        ack: Some(syn.seq + 1),
        ctl: TcpControl::Syn,
        mss: Some(1460),
        payload: b"abc".to_vec(),
        ..Seg::default()
    });
    assert_eq!(h.recv_one(), h.ours(syn.seq + 1, 5004).win(free(3)));
    assert_eq!(h.read(c), Ok(b"abc".to_vec()));
}

#[test]
fn text_on_a_simultaneous_open_syn_waits_for_established() {
    let mut h = Harness::new();
    let c = h.engine.connect(h.now, remote()).unwrap();
    let syn = h.recv_one();
    h.port = syn.src_port;
    let iss = syn.seq;
    // The peer's SYN crosses ours, with text: RFC 9293 §3.10.7.3 queues it
    // "for processing after the ESTABLISHED state has been reached". The
    // SYN-ACK acknowledges the SYN alone.
    h.send(Seg {
        dst_port: syn.src_port,
        seq: 5000,
        ctl: TcpControl::Syn,
        mss: Some(1460),
        payload: b"abc".to_vec(),
        ..Seg::default()
    });
    let synack = h.recv_one();
    assert_eq!(
        (synack.ctl, synack.seq, synack.ack),
        (TcpControl::Syn, iss, Some(5001))
    );
    assert_eq!(h.engine.recv(h.now, c, &mut [0; 8]), Err(Error::WouldBlock));
    // The ACK of our SYN: established, and the text is there to read.
    h.send(h.peer(5004, iss + 1));
    assert_eq!(h.engine.state(c), Ok(State::Established));
    assert_eq!(h.read(c), Ok(b"abc".to_vec()));
    // Acknowledged with what we send next.
    assert_eq!(h.engine.send(h.now, c, b"ok"), Ok(2));
    assert_eq!(h.recv_one(), h.ours(iss + 1, 5004).data(b"ok").psh());
}
