//! Closing: FIN in every order (RFC 9293 §3.6, Figures 12 and 13), half-close,
//! TIME-WAIT (§3.10.7.4, §3.10.8), and RST on close with unread data
//! (RFC 2525 §2.17) or abort (§3.10.5).

use super::*;

#[test]
fn we_close_first_fin_wait_1_fin_wait_2_time_wait_closed() {
    let mut h = Harness::new();
    let (_l, c, iss, irs) = h.established_passive();
    h.engine.close(h.now, c);
    assert_eq!(h.recv_one(), h.ours(iss + 1, irs + 1).fin());
    assert_eq!(h.engine.state(c), Ok(State::FinWait1));
    // The FIN is retransmitted like data.
    let t0 = h.now;
    assert_eq!(h.fire_one_at(t0 + ms(200)), h.ours(iss + 1, irs + 1).fin());
    h.advance(ms(10));
    h.send(h.peer(irs + 1, iss + 2));
    h.recv_none();
    assert_eq!(h.engine.state(c), Ok(State::FinWait2));
    // Closed by the application: FIN-WAIT-2 is bounded by fin_wait2_timeout.
    assert_eq!(h.engine.poll_timeout(), Some(h.now + secs(60)));
    h.advance(secs(5));
    h.send(h.peer(irs + 1, iss + 2).fin());
    // Their FIN is acknowledged at once.
    assert_eq!(h.recv_one(), h.ours(iss + 2, irs + 2));
    assert_eq!(h.engine.state(c), Ok(State::TimeWait));
    let t1 = h.now;
    assert_eq!(h.fire_at(t1 + secs(60)), vec![]);
    assert_eq!(h.engine.state(c), Err(Error::InvalidHandle));
    assert_eq!(h.engine.socket_count(), 1);
}

#[test]
fn they_close_first_close_wait_last_ack_closed() {
    let mut h = Harness::new();
    let (_l, c, iss, irs) = h.established_passive();
    h.send(h.peer(irs + 1, iss + 1).data(b"bye").fin());
    // A FIN is acknowledged at once.
    assert_eq!(h.recv_one(), h.ours(iss + 1, irs + 5).win(free(3)));
    assert_eq!(h.engine.state(c), Ok(State::CloseWait));
    assert_eq!(
        h.engine.poll_event(),
        Some(Event {
            handle: c,
            readable: true,
            writable: false
        })
    );
    assert_eq!(h.read(c), Ok(b"bye".to_vec()));
    // End of stream, again and again.
    assert_eq!(h.read(c), Ok(vec![]));
    assert_eq!(h.read(c), Ok(vec![]));
    // We can still send.
    assert_eq!(h.engine.send(h.now, c, b"ok"), Ok(2));
    assert_eq!(h.recv_one(), h.ours(iss + 1, irs + 5).data(b"ok").psh());
    h.send(h.peer(irs + 5, iss + 3));
    h.engine.close(h.now, c);
    assert_eq!(h.recv_one(), h.ours(iss + 3, irs + 5).fin());
    assert_eq!(h.engine.state(c), Ok(State::LastAck));
    h.send(h.peer(irs + 5, iss + 4));
    h.recv_none();
    // The ACK of our FIN ends it: no TIME-WAIT for the side that closed second.
    assert_eq!(h.engine.state(c), Err(Error::InvalidHandle));
    assert_eq!(h.engine.socket_count(), 1);
    assert_eq!(h.engine.poll_timeout(), None);
}

#[test]
fn last_ack_retransmits_fin_until_acked() {
    let mut h = Harness::new();
    let (_l, c, iss, irs) = h.established_passive();
    h.send(h.peer(irs + 1, iss + 1).fin());
    assert_eq!(h.recv_one(), h.ours(iss + 1, irs + 2));
    h.engine.close(h.now, c);
    let fin = h.ours(iss + 1, irs + 2).fin();
    assert_eq!(h.recv_one(), fin);
    let t0 = h.now;
    assert_eq!(h.fire_one_at(t0 + ms(200)), fin);
    assert_eq!(h.fire_one_at(t0 + ms(600)), fin);
    h.send(h.peer(irs + 2, iss + 2));
    assert_eq!(h.engine.socket_count(), 1);
}

#[test]
fn simultaneous_close_goes_through_closing() {
    let mut h = Harness::new();
    let (_l, c, iss, irs) = h.established_passive();
    h.engine.shutdown(h.now, c).unwrap();
    assert_eq!(h.recv_one(), h.ours(iss + 1, irs + 1).fin());
    // Their FIN crosses ours: it does not acknowledge our FIN.
    h.send(h.peer(irs + 1, iss + 1).fin());
    assert_eq!(h.recv_one(), h.ours(iss + 2, irs + 2));
    assert_eq!(h.engine.state(c), Ok(State::Closing));
    // Our FIN is still retransmitted in CLOSING.
    let rtx_at = h.engine.poll_timeout().unwrap();
    assert_eq!(h.fire_one_at(rtx_at), h.ours(iss + 1, irs + 2).fin());
    // Their ACK of our FIN: TIME-WAIT.
    h.send(h.peer(irs + 2, iss + 2));
    h.recv_none();
    assert_eq!(h.engine.state(c), Ok(State::TimeWait));
    let t1 = h.now;
    assert_eq!(h.fire_at(t1 + secs(60)), vec![]);
    assert_eq!(h.engine.state(c), Ok(State::Closed));
    assert_eq!(h.read(c), Ok(vec![]));
    h.engine.close(h.now, c);
    h.recv_none();
    assert_eq!(h.engine.socket_count(), 1);
}

#[test]
fn fin_that_acknowledges_our_fin_goes_straight_to_time_wait() {
    let mut h = Harness::new();
    let (_l, c, iss, irs) = h.established_passive();
    h.engine.shutdown(h.now, c).unwrap();
    assert_eq!(h.recv_one(), h.ours(iss + 1, irs + 1).fin());
    h.send(h.peer(irs + 1, iss + 2).fin());
    assert_eq!(h.recv_one(), h.ours(iss + 2, irs + 2));
    assert_eq!(h.engine.state(c), Ok(State::TimeWait));
    assert_eq!(h.engine.poll_timeout(), Some(h.now + secs(60)));
}

#[test]
fn after_shutdown_we_still_receive() {
    let mut h = Harness::new();
    let (_l, c, iss, irs) = h.established_passive();
    assert_eq!(h.engine.send(h.now, c, b"req"), Ok(3));
    h.engine.shutdown(h.now, c).unwrap();
    // The FIN rides on the data (Nagle allows it: the stream is closing).
    assert_eq!(h.recv_one(), h.ours(iss + 1, irs + 1).data(b"req").fin());
    assert_eq!(h.engine.send(h.now, c, b"more"), Err(Error::BrokenPipe));
    h.send(h.peer(irs + 1, iss + 5));
    assert_eq!(h.engine.state(c), Ok(State::FinWait2));
    // Only shut down, not closed: FIN-WAIT-2 waits without a timeout.
    assert_eq!(h.engine.poll_timeout(), None);
    // Half-close: their data keeps coming and is acknowledged.
    h.send(h.peer(irs + 1, iss + 5).data(&pattern(0, 1460)));
    h.send(h.peer(irs + 1461, iss + 5).data(&pattern(1460, 1460)));
    assert_eq!(h.recv_one(), h.ours(iss + 5, irs + 2921).win(free(2920)));
    assert_eq!(h.read(c), Ok(pattern(0, 2920)));
    h.send(h.peer(irs + 2921, iss + 5).fin());
    assert_eq!(h.recv_one(), h.ours(iss + 5, irs + 2922));
    assert_eq!(h.engine.state(c), Ok(State::TimeWait));
    assert_eq!(h.read(c), Ok(vec![]));
}

#[test]
fn after_their_fin_recv_returns_zero_and_we_can_still_send() {
    let mut h = Harness::new();
    let (c, iss, irs) = h.established_active();
    h.send(h.peer(irs + 1, iss + 1).fin());
    assert_eq!(h.recv_one(), h.ours(iss + 1, irs + 2));
    assert_eq!(h.engine.recv(h.now, c, &mut [0; 10]), Ok(0));
    assert!(h.engine.is_readable(c));
    let data = pattern(0, 3000);
    assert_eq!(h.engine.send(h.now, c, &data), Ok(3000));
    assert_eq!(
        h.recv_all(),
        vec![
            h.ours(iss + 1, irs + 2).data(&data[..1460]),
            h.ours(iss + 1461, irs + 2).data(&data[1460..2920]),
        ]
    );
    h.send(h.peer(irs + 2, iss + 2921));
    assert_eq!(
        h.recv_one(),
        h.ours(iss + 2921, irs + 2).data(&data[2920..]).psh()
    );
    h.engine.shutdown(h.now, c).unwrap();
    assert_eq!(h.recv_one(), h.ours(iss + 3001, irs + 2).fin());
    assert_eq!(h.engine.state(c), Ok(State::LastAck));
    h.send(h.peer(irs + 2, iss + 3002));
    assert_eq!(h.engine.state(c), Ok(State::Closed));
    assert_eq!(h.engine.recv(h.now, c, &mut [0; 10]), Ok(0));
}

#[test]
fn time_wait_lasts_two_msl() {
    let mut h = Harness::with_config(Config {
        msl: secs(10),
        recv_buffer: 64 * 1024,
        ..base_config()
    });
    let (_l, c, iss, irs) = h.established_passive();
    h.engine.close(h.now, c);
    assert_eq!(h.recv_one(), h.ours(iss + 1, irs + 1).fin());
    h.send(h.peer(irs + 1, iss + 2).fin());
    assert_eq!(h.recv_one(), h.ours(iss + 2, irs + 2));
    assert_eq!(h.engine.socket_count(), 2);
    let t0 = h.now;
    assert_eq!(h.fire_at(t0 + secs(20)), vec![]);
    assert_eq!(h.engine.socket_count(), 1);
}

#[test]
fn time_wait_reacks_a_retransmitted_fin_and_restarts_its_timer() {
    let mut h = Harness::new();
    let (_l, c, iss, irs) = h.established_passive();
    h.engine.close(h.now, c);
    assert_eq!(h.recv_one(), h.ours(iss + 1, irs + 1).fin());
    h.send(h.peer(irs + 1, iss + 2).fin());
    let ack = h.ours(iss + 2, irs + 2);
    assert_eq!(h.recv_one(), ack);
    let t0 = h.now;
    // Default MSL 30 s: TIME-WAIT is 60 s.
    assert_eq!(h.engine.poll_timeout(), Some(t0 + secs(60)));
    // Our ACK was lost; their FIN comes again 30 s later: re-ACK, restart 2·MSL.
    h.advance(secs(30));
    h.send(h.peer(irs + 1, iss + 2).fin());
    assert_eq!(h.recv_one(), ack);
    assert_eq!(h.engine.state(c), Ok(State::TimeWait));
    // Not gone at the old deadline, gone at the new one.
    assert_eq!(h.fire_at(t0 + secs(90)), vec![]);
    assert_eq!(h.engine.socket_count(), 1);
    assert_eq!(h.engine.state(c), Err(Error::InvalidHandle));
    // A segment for the old connection now meets no socket: RST.
    h.send(h.peer(irs + 1, iss + 2).fin());
    assert_eq!(
        h.recv_one(),
        Seg {
            src_port: LOCAL_PORT,
            seq: iss + 2,
            ack: None,
            ctl: TcpControl::Rst,
            window: 0,
            ..h.ours(0, 0)
        }
    );
}

#[test]
fn time_wait_acks_other_segments_without_restarting() {
    let mut h = Harness::new();
    let (_l, c, iss, irs) = h.established_passive();
    h.engine.close(h.now, c);
    h.recv_one();
    h.send(h.peer(irs + 1, iss + 2).fin());
    h.recv_one();
    let t0 = h.now;
    h.advance(secs(10));
    // Old data: acknowledged, the timer keeps its deadline.
    h.send(h.peer(irs, iss + 2).data(b"x"));
    assert_eq!(h.recv_one(), h.ours(iss + 2, irs + 2));
    assert_eq!(h.engine.poll_timeout(), Some(t0 + secs(60)));
}

#[test]
fn closed_handle_is_freed_only_after_time_wait() {
    let mut h = Harness::new();
    let (l, c, iss, irs) = h.established_passive();
    h.engine.close(h.now, l);
    assert_eq!(h.engine.socket_count(), 1);
    h.engine.shutdown(h.now, c).unwrap();
    h.recv_one();
    h.send(h.peer(irs + 1, iss + 2).fin());
    h.recv_one();
    assert_eq!(h.engine.state(c), Ok(State::TimeWait));
    // Closing the handle in TIME-WAIT: the socket stays until 2·MSL is over.
    h.engine.close(h.now, c);
    h.recv_none();
    assert_eq!(h.engine.socket_count(), 1);
    let t0 = h.now;
    assert_eq!(h.fire_at(t0 + secs(60)), vec![]);
    assert_eq!(h.engine.socket_count(), 0);
}

#[test]
fn fin_wait_2_of_a_closed_handle_times_out() {
    let mut h = Harness::new();
    let (_l, c, iss, irs) = h.established_passive();
    h.engine.close(h.now, c);
    assert_eq!(h.recv_one(), h.ours(iss + 1, irs + 1).fin());
    h.send(h.peer(irs + 1, iss + 2));
    assert_eq!(h.engine.state(c), Ok(State::FinWait2));
    let t0 = h.now;
    assert_eq!(h.fire_at(t0 + secs(60)), vec![]);
    assert_eq!(h.engine.socket_count(), 1);
}

/// The RST we send on the connection under test: <SEQ=seq><CTL=RST>, window 0.
fn our_rst(h: &Harness, seq: u32) -> Seg {
    Seg {
        ack: None,
        ctl: TcpControl::Rst,
        window: 0,
        ..h.ours(seq, 0)
    }
}

#[test]
fn close_with_unread_data_sends_rst() {
    let mut h = Harness::new();
    let (_l, c, iss, irs) = h.established_passive();
    assert_eq!(h.engine.send(h.now, c, b"hi"), Ok(2));
    assert_eq!(h.recv_one(), h.ours(iss + 1, irs + 1).data(b"hi").psh());
    h.send(h.peer(irs + 1, iss + 1).data(b"unread"));
    h.recv_none();
    // RFC 2525 §2.17: closing with unread data aborts (RFC 9293 §3.10.5: <SEQ=SND.NXT><CTL=RST>).
    h.engine.close(h.now, c);
    assert_eq!(h.recv_one(), our_rst(&h, iss + 3));
    assert_eq!(h.engine.socket_count(), 1);
    assert_eq!(h.engine.poll_timeout(), None);
    // Whatever comes next meets only the listener: an ACK there is reset (RFC 9293 §3.10.7.2).
    h.send(h.peer(irs + 7, iss + 3).data(b"more"));
    assert_eq!(h.recv_one(), our_rst(&h, iss + 3));
}

#[test]
fn close_after_reading_everything_is_graceful() {
    let mut h = Harness::new();
    let (_l, c, iss, irs) = h.established_passive();
    h.send(h.peer(irs + 1, iss + 1).data(b"read me"));
    assert_eq!(h.read(c), Ok(b"read me".to_vec()));
    h.engine.close(h.now, c);
    // The pending delayed ACK rides on the FIN.
    assert_eq!(h.recv_one(), h.ours(iss + 1, irs + 8).fin());
}

#[test]
fn data_arriving_after_close_resets() {
    let mut h = Harness::new();
    let (_l, c, iss, irs) = h.established_passive();
    h.engine.close(h.now, c);
    assert_eq!(h.recv_one(), h.ours(iss + 1, irs + 1).fin());
    h.send(h.peer(irs + 1, iss + 2));
    // Nobody can read this any more: RST (as Linux does for orphans).
    h.send(h.peer(irs + 1, iss + 2).data(b"late"));
    assert_eq!(
        h.recv_one(),
        Seg {
            ack: Some(irs + 1),
            ..our_rst(&h, iss + 2)
        }
    );
    assert_eq!(h.engine.socket_count(), 1);
}

#[test]
fn abort_sends_rst_and_frees_the_socket() {
    let mut h = Harness::new();
    let (_l, c, iss, irs) = h.established_passive();
    assert_eq!(h.engine.send(h.now, c, &pattern(0, 5000)), Ok(5000));
    assert_eq!(h.recv_all().len(), 3);
    h.engine.abort(h.now, c);
    assert_eq!(h.recv_one(), our_rst(&h, iss + 1 + 4380));
    assert_eq!(h.engine.socket_count(), 1);
    assert_eq!(h.engine.poll_timeout(), None);
    assert_eq!(
        h.engine.recv(h.now, c, &mut [0; 4]),
        Err(Error::InvalidHandle)
    );
    let _ = irs;
}

#[test]
fn abort_in_syn_sent_sends_nothing() {
    let mut h = Harness::new();
    let c = h.engine.connect(h.now, remote()).unwrap();
    h.recv_one();
    h.engine.abort(h.now, c);
    h.recv_none();
    assert_eq!(h.engine.socket_count(), 0);
    assert_eq!(h.engine.poll_timeout(), None);
}

#[test]
fn syn_beyond_the_old_sequence_reuses_a_time_wait_pair() {
    let mut h = Harness::new();
    let (_l, c, iss, irs) = h.established_passive();
    h.engine.close(h.now, c);
    assert_eq!(h.recv_one(), h.ours(iss + 1, irs + 1).fin());
    h.send(h.peer(irs + 1, iss + 2).fin());
    assert_eq!(h.recv_one(), h.ours(iss + 2, irs + 2));
    assert_eq!(h.engine.state(c), Ok(State::TimeWait));
    h.advance(secs(1));
    // An old SYN (not beyond RCV.NXT) only gets the TIME-WAIT's ACK.
    h.send(h.peer(irs, 0).no_ack().syn());
    assert_eq!(h.recv_one(), h.ours(iss + 2, irs + 2));
    assert_eq!(h.engine.state(c), Ok(State::TimeWait));
    // A new SYN beyond it starts a new connection (RFC 9293 §3.10.7.4, RFC 6191).
    let new_irs = irs + 100_000;
    h.send(
        Seg {
            seq: new_irs,
            mss: Some(1460),
            ..Seg::default()
        }
        .syn(),
    );
    let synack = h.recv_one();
    assert_eq!(
        (synack.ctl, synack.ack),
        (TcpControl::Syn, Some(new_irs + 1))
    );
    assert_eq!(h.engine.state(c), Err(Error::InvalidHandle));
    assert_eq!(h.engine.socket_count(), 2);
}

/// A FIN beyond a hole is an out-of-order segment: it is kept for later
/// (RFC 9293 §3.10.7.4) and answered at once with a duplicate ACK (RFC 5681
/// §4.2, SHOULD), as an out-of-order data segment is; once the hole is
/// filled, the FIN is taken with it. Found by FreeBSD's packetdrill script
/// `rcv-data-segments/reordering-5F4321`.
#[test]
fn an_out_of_order_fin_gets_an_immediate_duplicate_ack() {
    let mut h = Harness::new();
    let (_l, c, iss, irs) = h.established_passive();
    h.send(h.peer(irs + 1 + 100, iss + 1).fin());
    let dup = h.recv_one();
    assert_eq!((dup.seq, dup.ack), (iss + 1, Some(irs + 1)));
    assert_eq!(h.engine.state(c), Ok(State::Established));
    h.send(h.peer(irs + 1, iss + 1).data(&[7; 100]));
    let ack = h.recv_one();
    assert_eq!(ack.ack, Some(irs + 1 + 100 + 1));
    assert_eq!(h.engine.state(c), Ok(State::CloseWait));
}
