//! Listeners (RFC 9293 §3.10.7.2): the backlog, segments that match no
//! connection, SYN-ACK retransmission, and closing a listener.

use super::*;

/// A SYN from the remote's `port`.
fn syn_from(port: u16, seq: u32) -> Seg {
    Seg {
        src_port: port,
        seq,
        mss: Some(1460),
        ..Seg::default()
    }
    .syn()
}

/// Our SYN-ACK to the remote's `port`.
fn syn_ack_to(port: u16, iss: u32, ack: u32) -> Seg {
    Seg {
        src_port: LOCAL_PORT,
        dst_port: port,
        seq: iss,
        ack: Some(ack),
        ctl: TcpControl::Syn,
        window: 65535,
        mss: Some(1460),
        wscale: None,
        psh: false,
        payload: vec![],
        ts: None,
        ..Seg::default()
    }
}

/// A segment from the remote's `port` with an ACK.
fn from(port: u16, seq: u32, ack: u32) -> Seg {
    Seg {
        src_port: port,
        seq,
        ack: Some(ack),
        ..Seg::default()
    }
}

/// A RST <SEQ=seq><CTL=RST> (and ACK if given) to the remote's `port`.
fn rst_to(port: u16, seq: u32, ack: Option<u32>) -> Seg {
    Seg {
        src_port: LOCAL_PORT,
        dst_port: port,
        seq,
        ack,
        ctl: TcpControl::Rst,
        window: 0,
        ..Seg::default()
    }
}

/// Sends a SYN from `port` and completes the handshake; returns our ISS.
fn handshake(h: &mut Harness, port: u16, irs: u32) -> u32 {
    h.send(syn_from(port, irs));
    let synack = h.recv_one();
    assert_eq!(synack, syn_ack_to(port, synack.seq, irs + 1));
    h.send(from(port, irs + 1, synack.seq + 1));
    h.recv_none();
    synack.seq
}

#[test]
fn syns_beyond_the_backlog_are_dropped_silently() {
    // With SYN cookies off (Linux's tcp_syncookies = 0); tests/syncookies.rs
    // has the default.
    let mut h = Harness::with_config(Config {
        recv_buffer: 64 * 1024,
        syn_cookies: crate::SynCookies::Off,
        ..base_config()
    });
    let l = h.engine.listen(local(), 2).unwrap();
    h.send(syn_from(40001, 100));
    let sa1 = h.recv_one();
    assert_eq!(sa1, syn_ack_to(40001, sa1.seq, 101));
    h.send(syn_from(40002, 200));
    let sa2 = h.recv_one();
    assert_eq!(sa2, syn_ack_to(40002, sa2.seq, 201));
    // The SYN queue is full: no SYN-ACK, and no RST either (the client retries).
    h.send(syn_from(40003, 300));
    h.recv_none();
    assert_eq!(h.engine.stats().syn_dropped, 1);
    assert_eq!(h.engine.socket_count(), 3);
    // Both handshakes complete: the accept queue is full now.
    assert_eq!(h.engine.poll_event(), None);
    h.send(from(40001, 101, sa1.seq + 1));
    h.send(from(40002, 201, sa2.seq + 1));
    h.recv_none();
    let events: Vec<Event> = std::iter::from_fn(|| h.engine.poll_event()).collect();
    assert!(events.contains(&Event {
        handle: l,
        readable: true,
        writable: false
    }));
    assert!(h.engine.is_readable(l));
    h.send(syn_from(40003, 300));
    h.recv_none();
    assert_eq!(h.engine.stats().syn_dropped, 2);
    // Accepting one makes room: the client's next SYN is answered.
    let a = h.engine.accept(l).unwrap();
    assert_eq!(
        h.engine.peer_addr(a),
        Ok(SocketAddrV4::new(REMOTE_IP, 40001))
    );
    h.send(syn_from(40003, 300));
    let sa3 = h.recv_one();
    assert_eq!(sa3, syn_ack_to(40003, sa3.seq, 301));
    assert_eq!(h.engine.stats().rx_no_socket, 0);
}

#[test]
fn ack_to_a_listener_without_a_connection_gets_rst() {
    let mut h = Harness::new();
    h.engine.listen(local(), 8).unwrap();
    // RFC 9293 §3.10.7.2: an ACK in LISTEN gets <SEQ=SEG.ACK><CTL=RST>.
    h.send(from(40009, 5, 777));
    assert_eq!(h.recv_one(), rst_to(40009, 777, None));
    h.send(from(40009, 5, 778).data(b"data"));
    assert_eq!(h.recv_one(), rst_to(40009, 778, None));
    // A RST is ignored; so is anything else without SYN or ACK.
    h.send(from(40009, 5, 777).rst());
    h.send(from(40009, 5, 0).no_ack().rst());
    h.send(from(40009, 5, 0).no_ack().data(b"data"));
    h.send(from(40009, 5, 0).no_ack().fin());
    h.recv_none();
    assert_eq!(h.engine.socket_count(), 1);
    assert_eq!(h.engine.stats().rx_no_socket, 0);
}

#[test]
fn retransmitted_syn_gets_the_same_syn_ack() {
    let mut h = Harness::new();
    h.engine.listen(local(), 8).unwrap();
    h.send(syn_from(40001, 100));
    let sa = h.recv_one();
    h.advance(ms(300));
    h.send(syn_from(40001, 100));
    assert_eq!(h.recv_one(), sa);
    assert_eq!(h.engine.socket_count(), 2);
}

#[test]
fn syn_ack_is_retransmitted_with_backoff_then_the_embryo_is_dropped() {
    let mut h = Harness::with_config(Config {
        recv_buffer: 64 * 1024,
        syn_cookies: crate::SynCookies::Off,
        ..base_config()
    });
    let l = h.engine.listen(local(), 1).unwrap();
    let t0 = h.now;
    h.send(syn_from(40001, 100));
    let sa = h.recv_one();
    // The SYN queue (backlog 1) is full.
    h.send(syn_from(40002, 200));
    h.recv_none();
    let mut at = t0;
    // synack_retries = 5 (Linux's tcp_synack_retries).
    for k in 0..5 {
        at = at + secs(1 << k);
        assert_eq!(h.fire_one_at(at), sa, "retransmission {}", k + 1);
    }
    // Given up at 63 s, silently; the SYN queue has room again.
    assert_eq!(h.fire_at(t0 + secs(63)), vec![]);
    assert_eq!(h.engine.socket_count(), 1);
    assert_eq!(h.engine.accept(l), Err(Error::WouldBlock));
    h.send(syn_from(40002, 200));
    let sa2 = h.recv_one();
    assert_eq!(sa2, syn_ack_to(40002, sa2.seq, 201));
}

#[test]
fn rst_in_syn_received_drops_the_embryo() {
    let mut h = Harness::new();
    let l = h.engine.listen(local(), 1).unwrap();
    h.send(syn_from(40001, 100));
    let sa = h.recv_one();
    h.send(from(40001, 101, sa.seq + 1).rst());
    h.recv_none();
    assert_eq!(h.engine.socket_count(), 1);
    assert_eq!(h.engine.poll_timeout(), None);
    assert_eq!(h.engine.accept(l), Err(Error::WouldBlock));
    // Its place in the SYN queue is free.
    h.send(syn_from(40002, 200));
    assert_eq!(h.recv_all().len(), 1);
}

#[test]
fn closing_the_listener_resets_the_connections_it_had_not_handed_out() {
    let mut h = Harness::new();
    let l = h.engine.listen(local(), 8).unwrap();
    let iss_a = handshake(&mut h, 40001, 100);
    let a = h.engine.accept(l).unwrap();
    let iss_b = handshake(&mut h, 40002, 200);
    let iss_c = handshake(&mut h, 40003, 300);
    // D is still in SYN-RECEIVED.
    h.send(syn_from(40004, 400));
    let sa_d = h.recv_one();
    assert_eq!(h.engine.socket_count(), 5);

    h.engine.close(h.now, l);
    // RFC 9293 §3.10.5 ABORT for each: <SEQ=SND.NXT><CTL=RST>.
    assert_eq!(
        h.recv_all(),
        vec![
            rst_to(40002, iss_b + 1, None),
            rst_to(40003, iss_c + 1, None),
            rst_to(40004, sa_d.seq + 1, None),
        ]
    );
    // Only the accepted connection is left, and no SYN-ACK is retransmitted.
    assert_eq!(h.engine.socket_count(), 1);
    assert_eq!(h.engine.poll_timeout(), None);
    h.advance(secs(10));
    h.recv_none();
    // The accepted one is unaffected.
    assert_eq!(h.engine.state(a), Ok(State::Established));
    assert_eq!(h.engine.send(h.now, a, b"hi"), Ok(2));
    assert_eq!(
        h.recv_one(),
        Seg {
            src_port: LOCAL_PORT,
            dst_port: 40001,
            seq: iss_a + 1,
            ack: Some(101),
            psh: true,
            payload: b"hi".to_vec(),
            ..Seg::default()
        }
    );
    // D's ACK finds no connection and no listener.
    h.send(from(40004, 401, sa_d.seq + 1));
    assert_eq!(h.recv_one(), rst_to(40004, sa_d.seq + 1, None));
    // Nor does a new SYN.
    h.send(syn_from(40005, 500));
    assert_eq!(h.recv_one(), rst_to(40005, 0, Some(501)));
    assert_eq!(h.engine.stats().rx_no_socket, 2);
    // The port can be listened on again, and the reset clients can come back:
    // nothing of their old connections is left to swallow their SYNs.
    let l2 = h.engine.listen(local(), 8).unwrap();
    assert_ne!(l2, l);
    assert_eq!(h.engine.accept(l), Err(Error::InvalidHandle));
    for (port, irs) in [(40002, 2000), (40004, 4000)] {
        h.send(syn_from(port, irs));
        let sa = h.recv_one();
        assert_eq!(sa, syn_ack_to(port, sa.seq, irs + 1));
    }
}

#[test]
fn listen_on_a_port_in_use_fails() {
    let mut h = Harness::new();
    h.engine.listen(local(), 8).unwrap();
    assert_eq!(h.engine.listen(local(), 8), Err(Error::AddrInUse));
    assert_eq!(
        h.engine
            .listen(SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 81), 8),
        Err(Error::AddrNotAvailable)
    );
}
