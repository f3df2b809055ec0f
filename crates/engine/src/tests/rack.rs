//! RACK-TLP (RFC 8985): tail loss probes (§7) and time-based loss detection
//! with the reordering window (§6).

use super::sack::sack_passive;
use super::*;

/// Segment `i` (1460 bytes) in brief.
fn b(i: usize) -> (u32, usize, bool) {
    ((i * 1460) as u32, 1460, false)
}

#[test]
fn a_lost_tail_is_probed_after_two_srtt_and_repaired_without_a_timeout() {
    let mut h = Harness::new();
    let (c, iss, irs) = sack_passive(&mut h);
    let base = iss + 1;
    let s = |i: usize| base + (i * 1460) as u32;
    let data = pattern(0, 3 * 1460);
    assert_eq!(h.engine.send(h.now, c, &data), Ok(data.len()));
    let t0 = h.now;
    let sent = h.recv_all();
    assert_eq!(brief(&sent, base), vec![b(0), b(1), b(2)]);
    // All three are lost. §7.2: PTO = 2·SRTT = 100 ms (more than one segment
    // in flight), well before the 200 ms RTO; the probe is the last segment.
    assert_eq!(h.fire_at(t0 + ms(100)), vec![sent[2].clone()]);
    let info = h.engine.tcp_info(c).unwrap();
    assert_eq!((info.tail_loss_probes, info.timeouts), (1, 0));
    // §7.3: after the probe the RTO is restarted.
    assert_eq!(h.engine.poll_timeout(), Some(h.now + ms(200)));
    // The probe's ACK SACKs segment 2: RACK finds 0 and 1 lost (sent before
    // it, RACK.rtt ago) and recovery begins. Nothing is in flight, but
    // Proportional Rate Reduction sends one segment per segment delivered
    // (RFC 6937 §3.1, slow-start bound, without the extra segment as this ACK
    // shows new losses: draft-ietf-tcpm-prr-rfc6937bis's SafeACK, as Linux):
    // the first hole.
    h.advance(ms(50));
    h.send(h.peer(irs + 1, s(0)).sack(&[(s(2), s(3))]));
    assert_eq!(brief(&h.recv_all(), base), vec![b(0)]);
    assert_eq!(h.engine.tcp_info(c).unwrap().ca_state, CaState::Recovery);
    // Its ACK delivers one segment and advances SND.UNA with no new loss:
    // the second hole goes out.
    h.advance(ms(50));
    h.send(h.peer(irs + 1, s(1)).sack(&[(s(2), s(3))]));
    assert_eq!(brief(&h.recv_all(), base), vec![b(1)]);
    assert_eq!(h.engine.tcp_info(c).unwrap().ca_state, CaState::Recovery);
    h.advance(ms(50));
    h.send(h.peer(irs + 1, s(3)));
    let info = h.engine.tcp_info(c).unwrap();
    assert_eq!(
        (info.ca_state, info.timeouts, info.bytes_in_flight),
        (CaState::Open, 0, 0)
    );
    assert_eq!(h.engine.poll_timeout(), None);
}

/// RFC 8985 §7.2: with one segment in flight the PTO (2·SRTT + WCDelAckT)
/// would come after the RTO; it is cut to the RTO's expiry
/// (`PTO = TCP_RTO_expiration() - Now()` when later, as Linux's
/// `tcp_schedule_loss_probe`), so a probe goes out then instead of a
/// timeout, and the RTO restarts from it (§7.3) without a backoff or a
/// collapse of the window. Found by our packetdrill script
/// `tlp-single-segment`.
#[test]
fn a_single_segment_probe_is_cut_to_the_rto_expiry() {
    let mut h = Harness::new();
    let (c, iss, _irs) = sack_passive(&mut h);
    h.engine.set_nodelay(c, true).unwrap();
    assert_eq!(h.engine.send(h.now, c, b"hello"), Ok(5));
    let t0 = h.now;
    let sent = h.recv_one();
    assert_eq!(sent.seq, iss + 1);
    // One segment in flight: PTO = 2·SRTT + WCDelAckT (200 ms) = 300 ms,
    // later than the 200 ms RTO: the probe comes at 200 ms.
    assert_eq!(h.engine.poll_timeout(), Some(t0 + ms(200)));
    assert_eq!(h.fire_at(t0 + ms(200)), vec![sent.clone()]);
    let info = h.engine.tcp_info(c).unwrap();
    assert_eq!((info.tail_loss_probes, info.timeouts), (1, 0));
    // The RTO restarts from the probe; unanswered, it fires then.
    assert_eq!(h.engine.poll_timeout(), Some(t0 + ms(400)));
    assert_eq!(h.fire_at(t0 + ms(400)), vec![sent]);
    let info = h.engine.tcp_info(c).unwrap();
    assert_eq!((info.tail_loss_probes, info.timeouts), (1, 1));
}

#[test]
fn a_probe_that_only_duplicates_causes_no_window_reduction() {
    let mut h = Harness::new();
    let (c, iss, irs) = sack_passive(&mut h);
    let base = iss + 1;
    let s = |i: usize| base + (i * 1460) as u32;
    let data = pattern(0, 3 * 1460);
    assert_eq!(h.engine.send(h.now, c, &data), Ok(data.len()));
    let t0 = h.now;
    assert_eq!(h.recv_all().len(), 3);
    // Only the ACKs were slow: the probe goes out, then everything is
    // acknowledged and the probe reported as a duplicate (§7.4.1).
    assert_eq!(h.fire_at(t0 + ms(100)).len(), 1);
    h.send(h.peer(irs + 1, s(3)));
    h.send(h.peer(irs + 1, s(3)).sack(&[(s(2), s(3))]));
    let info = h.engine.tcp_info(c).unwrap();
    assert_eq!(info.tail_loss_probes, 1);
    assert_eq!((info.cwnd, info.ssthresh), (14_600, usize::MAX));
}

#[test]
fn a_probe_that_repaired_a_loss_reduces_the_window() {
    let mut h = Harness::new();
    let (c, iss, irs) = sack_passive(&mut h);
    let base = iss + 1;
    let s = |i: usize| base + (i * 1460) as u32;
    let data = pattern(0, 3 * 1460);
    assert_eq!(h.engine.send(h.now, c, &data), Ok(data.len()));
    let t0 = h.now;
    assert_eq!(h.recv_all().len(), 3);
    // Segment 2 alone was lost; the probe repairs it: the ACK covers it with
    // no D-SACK. Only an ACK beyond the probe settles it (a D-SACK might
    // still follow, §7.4.2); then it counts as a loss.
    assert_eq!(h.fire_at(t0 + ms(100)).len(), 1);
    h.send(h.peer(irs + 1, s(3)));
    assert_eq!(h.engine.tcp_info(c).unwrap().ssthresh, usize::MAX);
    assert_eq!(h.engine.send(h.now, c, b"more"), Ok(4));
    assert_eq!(h.recv_one().seq, s(3));
    h.send(h.peer(irs + 1, s(3) + 4));
    let info = h.engine.tcp_info(c).unwrap();
    // The sender used 3 of its 10 segments, then 4 bytes: the loss came in
    // a non-validated period, so the reduction is taken from what was in
    // use, not from cwnd (RFC 7661 §4.4.1), and ssthresh bottoms out at two
    // segments (without RFC 7661: 0.7 · 14 600 = 10 220).
    assert_eq!((info.ssthresh, info.timeouts), (2 * 1460, 0));
}

#[test]
fn reordering_within_the_window_is_not_loss() {
    let mut h = Harness::new();
    let (c, iss, irs) = sack_passive(&mut h);
    let base = iss + 1;
    let s = |i: usize| base + (i * 1460) as u32;
    let data = pattern(0, 4 * 1460);
    assert_eq!(h.engine.send(h.now, c, &data), Ok(data.len()));
    let t0 = h.now;
    assert_eq!(h.recv_all().len(), 4);
    // Segment 1 arrives first, 50 ms later: 0 may just be late. RACK waits
    // RACK.rtt + reo_wnd (min RTT / 4 = 12.5 ms) from its transmission.
    h.advance(ms(50));
    h.send(h.peer(irs + 1, s(0)).sack(&[(s(1), s(2))]));
    h.recv_none();
    assert_eq!(h.engine.poll_timeout(), Some(t0 + ms(63)));
    // 0 arrives within the window: nothing was lost, and reordering is seen.
    h.advance(ms(5));
    h.send(h.peer(irs + 1, s(2)));
    h.send(h.peer(irs + 1, s(4)));
    let info = h.engine.tcp_info(c).unwrap();
    assert_eq!((info.bytes_retrans, info.fast_retransmits), (0, 0));
    assert_eq!(info.ca_state, CaState::Open);
}

/// Karn's rule on a path the RTO and fast recovery do not take: a tail loss
/// probe resends the timed segment, and the ACK covering it gives no RTT
/// sample (without timestamps, the timed segment is the only other source).
#[test]
fn a_probe_resending_the_timed_segment_gives_no_rtt_sample() {
    let mut h = Harness::new();
    let (c, iss, irs) = sack_passive(&mut h);
    let base = iss + 1;
    let s = |i: usize| base + (i * 1460) as u32;
    assert_eq!(h.engine.send(h.now, c, &pattern(0, 2 * 1460)), Ok(2 * 1460));
    assert_eq!(brief(&h.recv_all(), base), vec![b(0), b(1)]);
    // Segment 0's ACK after 50 ms: a clean sample, SRTT stays 50 ms.
    h.advance(ms(50));
    h.send(h.peer(irs + 1, s(1)));
    assert_eq!(h.engine.tcp_info(c).unwrap().srtt, Some(ms(50)));
    // Segment 2 goes out now and is the timed one (none was armed).
    assert_eq!(h.engine.send(h.now, c, &pattern(2 * 1460, 1460)), Ok(1460));
    let t2 = h.now;
    assert_eq!(brief(&h.recv_all(), base), vec![b(2)]);
    // Two segments in flight: PTO = 2·SRTT; the probe is segment 2 itself.
    let probe = h.fire_at(t2 + ms(100));
    assert_eq!(brief(&probe, base), vec![b(2)]);
    assert_eq!(h.engine.tcp_info(c).unwrap().tail_loss_probes, 1);
    // One ACK for everything 10 ms after the probe: ambiguous for segment 2
    // (its first sending was 110 ms ago), so no sample at all.
    h.advance(ms(10));
    h.send(h.peer(irs + 1, s(3)));
    let info = h.engine.tcp_info(c).unwrap();
    assert_eq!(info.bytes_in_flight, 0);
    assert_eq!(
        info.srtt,
        Some(ms(50)),
        "a sample was taken across the probe"
    );
}

/// RFC 6298 §5.3 and RFC 8985 §7.2 (Linux's FLAG_SET_XMIT_TIMER): the
/// probe and the RTO are scheduled anew on an ACK that delivers something.
/// The peer's own data segments, all acknowledging nothing new, must not
/// put them off: the probe still goes out two SRTTs after the tail.
#[test]
fn the_peers_data_acking_nothing_new_does_not_put_the_probe_off() {
    let mut h = Harness::new();
    let (c, iss, irs) = sack_passive(&mut h);
    let base = iss + 1;
    let data = pattern(0, 3 * 1460);
    assert_eq!(h.engine.send(h.now, c, &data), Ok(data.len()));
    let t0 = h.now;
    let sent = h.recv_all();
    assert_eq!(brief(&sent, base), vec![b(0), b(1), b(2)]);
    // The peer sends 100 bytes every 10 ms, each acknowledging nothing of ours.
    for k in 0..9u32 {
        h.advance_to(t0 + ms(10 * u64::from(k) + 5));
        h.send(h.peer(irs + 1 + 100 * k, base).data(&[7u8; 100]));
        let out = h.recv_all();
        assert!(
            out.iter().all(|s| s.payload.is_empty()),
            "only ACKs: {out:?}"
        );
    }
    // The probe is due where the tail's sending put it: 2·SRTT = 100 ms.
    let probe: Vec<Seg> = h
        .fire_at(t0 + ms(100))
        .into_iter()
        .filter(|s| !s.payload.is_empty())
        .collect();
    // The last segment again, acknowledging the peer's 900 bytes.
    assert_eq!(brief(&probe, base), vec![b(2)]);
    assert_eq!(probe[0].ack, Some(irs + 1 + 900));
    assert_eq!(h.engine.tcp_info(c).unwrap().tail_loss_probes, 1);
}
