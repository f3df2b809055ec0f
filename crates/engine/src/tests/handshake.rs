//! Opening connections (RFC 9293 §3.5).

use super::*;

#[test]
fn handshake_passive() {
    let mut h = Harness::new();
    let l = h.engine.listen(local(), 8).unwrap();
    h.send(Seg {
        seq: 1000,
        ctl: TcpControl::Syn,
        mss: Some(1200),
        wscale: Some(7),
        ..Seg::default()
    });
    let synack = h.recv_one();
    assert_eq!(synack.ctl, TcpControl::Syn);
    assert_eq!(synack.ack, Some(1001));
    assert_eq!(synack.mss, Some(1460));
    // 64 KiB buffer: shift 1 is the smallest that fits.
    assert_eq!(synack.wscale, Some(1));
    assert_eq!(h.engine.accept(l), Err(Error::WouldBlock));
    h.send(Seg {
        seq: 1001,
        ack: Some(synack.seq + 1),
        ..Seg::default()
    });
    h.recv_none();
    let c = h.engine.accept(l).unwrap();
    assert_eq!(h.engine.state(c), Ok(State::Established));
    assert_eq!(h.engine.tcp_info(c).unwrap().snd_mss, 1200);
    assert_eq!(
        h.engine.sequence_numbers(c),
        Ok((Seq(synack.seq), Seq(1000)))
    );
}

#[test]
fn handshake_active() {
    let mut h = Harness::new();
    let c = h.engine.connect(h.now, remote()).unwrap();
    let syn = h.recv_one();
    assert_eq!(syn.ctl, TcpControl::Syn);
    assert_eq!(syn.ack, None);
    assert_eq!(syn.mss, Some(1460));
    assert_eq!(syn.dst_port, REMOTE_PORT);
    assert_eq!(h.engine.connect_result(c), Ok(false));
    h.send(Seg {
        dst_port: syn.src_port,
        seq: 7000,
        ack: Some(syn.seq + 1),
        ctl: TcpControl::Syn,
        mss: Some(1000),
        ..Seg::default()
    });
    let ack = h.recv_one();
    assert_eq!(ack.ctl, TcpControl::None);
    assert_eq!(ack.seq, syn.seq + 1);
    assert_eq!(ack.ack, Some(7001));
    assert_eq!(h.engine.connect_result(c), Ok(true));
    let ev = h.engine.poll_event().unwrap();
    assert!(ev.writable && ev.handle == c);
}

/// The window in the ACK that completes an active open is the receive buffer,
/// scaled, whatever half of the sequence space the peer's ISN lies in (the right
/// edge once started from sequence 0, which compares as "ahead" of an ISN in the
/// upper half and inflated the first window past the buffer).
#[test]
fn handshake_active_window_for_any_peer_isn() {
    for irs in [7000u32, 0x8000_0000, 0xdc90_0000, u32::MAX] {
        let mut h = Harness::new();
        h.engine.connect(h.now, remote()).unwrap();
        let syn = h.recv_one();
        let shift = syn.wscale.unwrap();
        h.send(Seg {
            dst_port: syn.src_port,
            seq: irs,
            ack: Some(syn.seq + 1),
            ctl: TcpControl::Syn,
            wscale: Some(3),
            ..Seg::default()
        });
        let ack = h.recv_one();
        assert_eq!(ack.ack, Some(irs.wrapping_add(1)));
        let buffer = 64 * 1024;
        assert_eq!(u32::from(ack.window) << shift, buffer, "peer ISN {irs:#x}");
    }
}
