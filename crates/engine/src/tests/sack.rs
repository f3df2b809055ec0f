//! SACK: negotiation (RFC 2018 §2), the receiver's blocks (RFC 2018 §4) and
//! D-SACK (RFC 2883), and the sender's SACK-based loss recovery (RFC 6675).

use super::*;

/// A passive open from a peer that offers SACK: (connection, ISS, IRS).
pub(crate) fn sack_passive(h: &mut Harness) -> (SocketHandle, u32, u32) {
    let l = h.engine.listen(local(), 8).unwrap();
    h.port = LOCAL_PORT;
    let irs = 1000;
    h.send(
        Seg {
            seq: irs,
            mss: Some(1460),
            ..Seg::default()
        }
        .syn()
        .sack_ok(),
    );
    let synack = h.recv_one();
    assert!(synack.sack_permitted, "SYN-ACK offers SACK back");
    let iss = synack.seq;
    // A 50 ms round trip: SRTT bounds RACK's reordering window.
    h.advance(ms(50));
    h.send(h.peer(irs + 1, iss + 1));
    h.recv_none();
    let c = h.engine.accept(l).unwrap();
    assert!(h.engine.tcp_info(c).unwrap().sack);
    while h.engine.poll_event().is_some() {}
    (c, iss, irs)
}

/// Segment `i` (1460 bytes each) of `data`, as we send it.
fn seg(h: &Harness, iss: u32, irs: u32, data: &[u8], i: usize) -> Seg {
    let end = ((i + 1) * 1460).min(data.len());
    let s = h
        .ours(iss + 1 + (i * 1460) as u32, irs + 1)
        .data(&data[i * 1460..end]);
    if end == data.len() { s.psh() } else { s }
}

#[test]
fn sack_permitted_is_offered_and_echoed_only_when_offered() {
    let mut h = Harness::new();
    h.engine.connect(h.now, remote()).unwrap();
    assert!(h.recv_one().sack_permitted);
    // The harness's passive open: the peer does not offer SACK, nor do we.
    let mut h = Harness::new();
    let (_l, c, _, _) = h.established_passive();
    assert!(!h.engine.tcp_info(c).unwrap().sack);
    assert_eq!(
        h.engine.tcp_info(c).unwrap().wscale,
        None,
        "the peer offered no scaling"
    );
    // Switched off in the configuration: not offered, not used.
    let mut h = Harness::with_config(Config {
        sack: false,
        ..Config::default()
    });
    h.engine.connect(h.now, remote()).unwrap();
    assert!(!h.recv_one().sack_permitted);
    let mut h = Harness::with_config(Config {
        sack: false,
        ..Config::default()
    });
    h.engine.listen(local(), 8).unwrap();
    h.send(
        Seg {
            seq: 7,
            mss: Some(1460),
            ..Seg::default()
        }
        .syn()
        .sack_ok(),
    );
    assert!(!h.recv_one().sack_permitted);
}

#[test]
fn receiver_reports_the_newest_block_first_and_at_most_three() {
    let mut h = Harness::new();
    let (c, iss, irs) = sack_passive(&mut h);
    let base = irs + 1;
    // Segments of 100 bytes at 1000, 3000, 2000 and 4000 past RCV.NXT: each
    // out-of-order arrival is acknowledged at once, its block first.
    let mut expect: Vec<(u32, u32)> = Vec::new();
    for off in [1000u32, 3000, 2000, 4000] {
        h.send(h.peer(base + off, iss + 1).data(&pattern(0, 100)));
        let ack = h.recv_one();
        assert_eq!(ack.ack, Some(base));
        expect.insert(0, (base + off, base + off + 100));
        // Without timestamps four blocks would fit; smoltcp carries three.
        let want: Vec<_> = expect.iter().copied().take(3).collect();
        assert_eq!(ack.sack, want, "after the segment at +{off}");
    }
    // A segment extending the block at +2000: that block moves to the front,
    // grown.
    h.send(h.peer(base + 2100, iss + 1).data(&pattern(0, 100)));
    let ack = h.recv_one();
    assert_eq!(
        ack.sack,
        vec![
            (base + 2000, base + 2200),
            (base + 4000, base + 4100),
            (base + 3000, base + 3100)
        ]
    );
    // Filling the hole before +1000 delivers that block: it is no longer reported.
    h.send(h.peer(base, iss + 1).data(&pattern(0, 1000)));
    let ack = h.recv_one();
    assert_eq!(ack.ack, Some(base + 1100));
    assert_eq!(
        ack.sack,
        vec![
            (base + 2000, base + 2200),
            (base + 4000, base + 4100),
            (base + 3000, base + 3100)
        ]
    );
    assert_eq!(h.read(c).unwrap().len(), 1100);
}

#[test]
fn duplicates_are_reported_in_a_dsack_block_once() {
    let mut h = Harness::new();
    let (_c, iss, irs) = sack_passive(&mut h);
    let base = irs + 1;
    h.send(h.peer(base, iss + 1).data(&pattern(0, 100)));
    h.send(h.peer(base + 100, iss + 1).data(&pattern(100, 100)));
    let ack = h.recv_one();
    assert_eq!((ack.ack, ack.sack.clone()), (Some(base + 200), vec![]));
    // RFC 2883 §4.1.1: the whole segment again: a D-SACK for it, alone.
    h.send(h.peer(base, iss + 1).data(&pattern(0, 100)));
    let ack = h.recv_one();
    assert_eq!(ack.ack, Some(base + 200));
    assert_eq!(ack.sack, vec![(base, base + 100)]);
    // Partly old data: the old part is the D-SACK.
    h.send(h.peer(base + 150, iss + 1).data(&pattern(150, 100)));
    let ack = h.recv_one();
    assert_eq!(ack.ack, Some(base + 250));
    assert_eq!(ack.sack, vec![(base + 150, base + 200)]);
    // RFC 2883 §4.1.2: a duplicate of held out-of-order data: the D-SACK,
    // then the block that holds it.
    h.send(h.peer(base + 1000, iss + 1).data(&pattern(0, 300)));
    let ack = h.recv_one();
    assert_eq!(ack.sack, vec![(base + 1000, base + 1300)]);
    h.send(h.peer(base + 1100, iss + 1).data(&pattern(0, 100)));
    let ack = h.recv_one();
    assert_eq!(
        ack.sack,
        vec![(base + 1100, base + 1200), (base + 1000, base + 1300)]
    );
    // The D-SACK went out once: the next ACK has only the held block.
    h.send(h.peer(base + 2000, iss + 1).data(&pattern(0, 100)));
    let ack = h.recv_one();
    assert_eq!(
        ack.sack,
        vec![(base + 2000, base + 2100), (base + 1000, base + 1300)]
    );
}

#[test]
fn a_dsack_reports_the_first_duplicate_part_of_an_overlapping_segment() {
    let mut h = Harness::new();
    let (_c, iss, irs) = sack_passive(&mut h);
    let base = irs + 1;
    // Held out of order: +100..+200, +300..+400 (RCV.NXT at +0).
    for off in [100u32, 300] {
        h.send(
            h.peer(base + off, iss + 1)
                .data(&pattern(off as usize, 100)),
        );
        h.recv_one();
    }
    // A segment at +50..+250 overlaps the first held block in its middle:
    // the D-SACK is the overlap (RFC 2883 §4 rule 3), then the block that
    // now holds it (rule 4), then the other.
    h.send(h.peer(base + 50, iss + 1).data(&pattern(50, 200)));
    let ack = h.recv_one();
    assert_eq!(ack.ack, Some(base));
    assert_eq!(
        ack.sack,
        vec![
            (base + 100, base + 200),
            (base + 50, base + 250),
            (base + 300, base + 400)
        ]
    );
    // An exact duplicate of a held block: the D-SACK and the block are equal,
    // and both are sent.
    h.send(h.peer(base + 300, iss + 1).data(&pattern(300, 100)));
    let ack = h.recv_one();
    assert_eq!(
        ack.sack,
        vec![
            (base + 300, base + 400),
            (base + 300, base + 400),
            (base + 50, base + 250)
        ]
    );
    // A segment at RCV.NXT covering both held blocks: only the first
    // duplicate sequence (+50..+250) is reported (rule 1: one D-SACK block),
    // and nothing is held above the ACK any more.
    h.send(h.peer(base, iss + 1).data(&pattern(0, 450)));
    let ack = h.recv_one();
    assert_eq!(ack.ack, Some(base + 450));
    assert_eq!(ack.sack, vec![(base + 50, base + 250)]);
    // Data partly below RCV.NXT and partly over nothing held: the part below.
    h.send(h.peer(base + 400, iss + 1).data(&pattern(400, 100)));
    let ack = h.recv_one();
    assert_eq!(ack.ack, Some(base + 500));
    assert_eq!(ack.sack, vec![(base + 400, base + 450)]);
}

/// The peer's ACK for `ack` with SACK `blocks`, to local port `port`, built
/// without borrowing the harness (for closures used beside `h.send`).
fn peer_sack(port: u16, irs: u32, ack: u32, blocks: &[(u32, u32)]) -> Seg {
    Seg {
        dst_port: port,
        seq: irs + 1,
        ack: Some(ack),
        ..Seg::default()
    }
    .sack(blocks)
}

/// Segment `i` in brief (see [`brief`]).
fn b(i: usize) -> (u32, usize, bool) {
    ((i * 1460) as u32, 1460, false)
}

/// Acknowledges whatever goes out until nothing does: (segments, ACKs) of the
/// clean-up.
fn drain(h: &mut Harness, irs: u32) {
    for _ in 0..100 {
        let out = h.recv_all();
        let Some(end) = out
            .iter()
            .map(|s| s.seq.wrapping_add(s.payload.len() as u32))
            .max_by(|a, b| (a.wrapping_sub(*b) as i32).cmp(&0))
        else {
            return;
        };
        h.advance(ms(10));
        h.send(h.peer(irs + 1, end));
    }
    panic!("transfer did not finish");
}

#[test]
fn sack_recovery_repairs_two_holes_in_one_round_without_a_timeout() {
    let mut h = Harness::new();
    let (c, iss, irs) = sack_passive(&mut h);
    let data = pattern(0, 20 * 1460);
    let base = iss + 1;
    let s = |i: usize| base + (i * 1460) as u32;
    assert_eq!(h.engine.send(h.now, c, &data), Ok(data.len()));
    let first = h.recv_all();
    assert_eq!(brief(&first, base), (0..10).map(b).collect::<Vec<_>>());
    assert_eq!(first[3], seg(&h, iss, irs, &data, 3));
    h.advance(ms(50));
    let port = h.port;
    let ack = |blocks: &[(u32, u32)]| peer_sack(port, irs, s(0), blocks);
    // Segments 0 and 5 are lost. (The ACKs come a millisecond apart.) The
    // first two SACKs (for 1, then 1–2) each
    // let one new segment out: SACKed data has left the network (limited
    // transmit, RFC 3042).
    h.advance(ms(1));
    h.send(ack(&[(s(1), s(2))]));
    assert_eq!(brief(&h.recv_all(), base), vec![b(10)]);
    assert_eq!(h.engine.tcp_info(c).unwrap().ca_state, CaState::Disorder);
    h.advance(ms(1));
    h.send(ack(&[(s(1), s(3))]));
    assert_eq!(brief(&h.recv_all(), base), vec![b(11)]);
    // The third duplicate starts recovery (RFC 6675 §5): segment 0 again, at once.
    h.advance(ms(1));
    h.send(ack(&[(s(1), s(4))]));
    assert_eq!(brief(&h.recv_all(), base), vec![b(0)]);
    let info = h.engine.tcp_info(c).unwrap();
    assert_eq!(info.ca_state, CaState::Recovery);
    assert_eq!(info.fast_retransmits, 1);
    // CUBIC: ssthresh = 0.7 · 10 segments (RFC 9438 §4.6). The window is
    // Proportional Rate Reduction's (RFC 6937 §3.1): pipe (8 segments, 4–11;
    // 0 is lost) + CEIL(prr_delivered · ssthresh / RecoverFS) − prr_out =
    // 11 680 + ⌈1 460 · 10 220 / 13 140⌉ − 0 = 12 816, RecoverFS being the
    // 12 segments outstanding less the 3 SACKed. The retransmission of 0
    // itself went out regardless (RFC 6675 §5 step 3).
    assert_eq!((info.cwnd, info.ssthresh), (12_816, 10_220));
    assert_eq!(info.sacked, 3 * 1460);
    // pipe = 8 segments not lost (4–11) + 1 retransmitted = 9 > 7: PRR
    // allows ⌈2 · 1 460 · 7/9⌉ − 1 460 = 812 bytes, less than a segment: nothing.
    h.advance(ms(1));
    h.send(ack(&[(s(1), s(5))]));
    h.recv_none();
    // Segment 6 is SACKed: segment 5, sent before it and more than RACK.rtt
    // ago, is lost (RFC 8985 §6.2; no reordering seen and in recovery, so
    // no reordering window). pipe = 5 + 1 = 6 < 7 segments: NextSeg rule 1
    // retransmits it without waiting for a partial ACK or more SACKs.
    h.advance(ms(1));
    h.send(ack(&[(s(6), s(7)), (s(1), s(5))]));
    assert_eq!(brief(&h.recv_all(), base), vec![b(5)]);
    // Each further SACKed segment lets one new segment out (rule 2).
    h.advance(ms(1));
    h.send(ack(&[(s(6), s(8)), (s(1), s(5))]));
    assert_eq!(brief(&h.recv_all(), base), vec![b(12)]);
    h.advance(ms(1));
    h.send(ack(&[(s(6), s(9)), (s(1), s(5))]));
    assert_eq!(brief(&h.recv_all(), base), vec![b(13)]);
    let info = h.engine.tcp_info(c).unwrap();
    assert_eq!((info.bytes_retrans, info.retrans), (2 * 1460, 2));
    // The retransmission of 0 arrives (a partial ACK, with 6–11 SACKed;
    // recovery goes on), then that of 5: everything up to the recovery point (SND.MAX at its
    // start, 12 segments) is acknowledged and recovery ends, cwnd = ssthresh.
    h.advance(ms(50));
    h.send(h.peer(irs + 1, s(5)).sack(&[(s(6), s(12))]));
    assert_eq!(h.engine.tcp_info(c).unwrap().ca_state, CaState::Recovery);
    h.recv_all();
    h.send(h.peer(irs + 1, s(12)));
    let info = h.engine.tcp_info(c).unwrap();
    assert_eq!((info.ca_state, info.cwnd), (CaState::Open, 10_220));
    drain(&mut h, irs);
    let info = h.engine.tcp_info(c).unwrap();
    assert_eq!((info.bytes_in_flight, info.timeouts), (0, 0));
    assert_eq!(info.bytes_acked, data.len() as u64);
    // TCP_INFO-style counters: everything delivered once, the two lost
    // segments counted, nothing SACKed or retransmitted outstanding.
    assert_eq!(info.delivered, data.len() as u64);
    assert_eq!(info.lost, 2 * 1460);
    assert_eq!((info.sacked, info.retrans), (0, 0));
    assert_eq!(info.state, Some(State::Established));
}

#[test]
fn rescue_retransmission_repairs_a_lost_tail() {
    let mut h = Harness::new();
    let (c, iss, irs) = sack_passive(&mut h);
    let data = pattern(0, 6 * 1460);
    let base = iss + 1;
    let s = |i: usize| base + (i * 1460) as u32;
    assert_eq!(h.engine.send(h.now, c, &data), Ok(data.len()));
    assert_eq!(
        brief(&h.recv_all(), base),
        (0..6).map(b).collect::<Vec<_>>()
    );
    h.advance(ms(50));
    // Segments 0 and 5 (the last) are lost; 1–4 arrive.
    for k in 2..=3 {
        h.send(h.peer(irs + 1, s(0)).sack(&[(s(1), s(k))]));
        h.recv_none();
    }
    // The third duplicate: recovery, segment 0 again. pipe (segments 4 and
    // 5) is below ssthresh (7 segments), so Proportional Rate Reduction's
    // slow-start bound applies (RFC 6937 §3.1): one segment for the one
    // delivered, no more (the ACK did not advance SND.UNA, so no extra
    // segment: draft-ietf-tcpm-prr-rfc6937bis's SafeACK). That is the
    // retransmission.
    h.send(h.peer(irs + 1, s(0)).sack(&[(s(1), s(4))]));
    assert_eq!(brief(&h.recv_all(), base), vec![b(0)]);
    // Segment 4 arrives: one more segment may go. Nothing SACKed lies above
    // segment 5, so it is neither lost (IsLost) nor a rule 3 hole; the
    // rescue retransmission (NextSeg rule 4, RFC 6675 §4) sends it, once, so
    // the tail is repaired without a timeout.
    h.send(h.peer(irs + 1, s(0)).sack(&[(s(1), s(5))]));
    assert_eq!(brief(&h.recv_all(), base), vec![b(5)]);
    h.send(h.peer(irs + 1, s(6)));
    let info = h.engine.tcp_info(c).unwrap();
    assert_eq!(
        (
            info.ca_state,
            info.timeouts,
            info.bytes_in_flight,
            info.bytes_retrans
        ),
        (CaState::Open, 0, 0, 2 * 1460)
    );
}

#[test]
fn go_back_n_after_a_timeout_skips_sacked_data() {
    let mut h = Harness::new();
    let (c, iss, irs) = sack_passive(&mut h);
    let data = pattern(0, 4 * 1460);
    let base = iss + 1;
    let s = |i: usize| base + (i * 1460) as u32;
    assert_eq!(h.engine.send(h.now, c, &data), Ok(data.len()));
    assert_eq!(
        brief(&h.recv_all(), base),
        (0..4).map(b).collect::<Vec<_>>()
    );
    let t0 = h.now;
    // Only segment 2 arrives, after 50 ms.
    h.advance(ms(50));
    h.send(h.peer(irs + 1, s(0)).sack(&[(s(2), s(3))]));
    h.recv_none();
    // RACK (RFC 8985 §6.2): 0 and 1 were sent before 2; once RACK.rtt plus
    // the reordering window (min RTT / 4 = 12.5 ms) has passed they are
    // lost: at 62.5 ms, on the wheel's next millisecond tick. Recovery
    // begins without an ACK: Proportional Rate Reduction counts one segment
    // delivered (as Linux's `tcp_rack_reo_timeout`), so one segment goes,
    // the first hole (RFC 6937 §3.1, slow-start bound).
    assert_eq!(brief(&h.fire_at(t0 + ms(63)), base), vec![b(0)]);
    assert_eq!(h.engine.tcp_info(c).unwrap().ca_state, CaState::Recovery);
    // It is lost as well: the RTO (200 ms) fires and resends segment 0
    // alone (cwnd one segment).
    let rto = h.engine.poll_timeout().unwrap();
    assert_eq!(rto, h.now + ms(200));
    assert_eq!(brief(&h.fire_at(rto), base), vec![b(0)]);
    assert_eq!(h.engine.tcp_info(c).unwrap().ca_state, CaState::Loss);
    // Its ACK lets segments 1 and 3 follow, never the SACKed segment 2
    // (RFC 6675 §5.1).
    h.send(h.peer(irs + 1, s(1)).sack(&[(s(2), s(3))]));
    assert_eq!(brief(&h.recv_all(), base), vec![b(1), b(3)]);
    h.send(h.peer(irs + 1, s(4)));
    let info = h.engine.tcp_info(c).unwrap();
    assert_eq!(
        (info.ca_state, info.bytes_retrans),
        (CaState::Open, 4 * 1460)
    );
}

#[test]
fn sack_blocks_on_data_segments_come_out_of_the_mss() {
    let mut h = Harness::new();
    let (c, iss, irs) = sack_passive(&mut h);
    let base = irs + 1;
    // Out-of-order data from the peer is held: one block to report.
    h.send(h.peer(base + 1000, iss + 1).data(&pattern(0, 100)));
    assert_eq!(h.recv_one().sack, vec![(base + 1000, base + 1100)]);
    // Our data segments carry the block too; RFC 6691: the 12 option bytes
    // (kind, length, one block, padding) come out of the 1460-byte MSS.
    let data = pattern(0, 3000);
    h.engine.set_nodelay(c, true).unwrap();
    assert_eq!(h.engine.send(h.now, c, &data), Ok(3000));
    let out = h.recv_all();
    assert_eq!(
        out.iter().map(|s| s.payload.len()).collect::<Vec<_>>(),
        vec![1448, 1448, 104]
    );
    for s in &out {
        assert_eq!(s.sack, vec![(base + 1000, base + 1100)]);
        assert!(build(s, LOCAL_IP, REMOTE_IP).len() <= 1500);
    }
}

#[test]
fn a_receiver_that_reneges_on_its_sacks_is_not_believed_again() {
    let mut h = Harness::new();
    let (c, iss, irs) = sack_passive(&mut h);
    let base = iss + 1;
    let s = |i: usize| base + (i * 1460) as u32;
    let data = pattern(0, 4 * 1460);
    assert_eq!(h.engine.send(h.now, c, &data), Ok(data.len()));
    assert_eq!(h.recv_all().len(), 4);
    h.advance(ms(10));
    h.send(h.peer(irs + 1, s(0)).sack(&[(s(1), s(4))]));
    assert_eq!(h.engine.tcp_info(c).unwrap().sacked, 3 * 1460);
    h.recv_all();
    // Segment 0 is acknowledged, but the peer has thrown 1–3 away: SND.UNA
    // is now inside a SACKed block (RFC 2018 §8). The blocks are forgotten,
    // so a timeout resends the data rather than skipping it.
    h.advance(ms(10));
    h.send(h.peer(irs + 1, s(1)));
    assert_eq!(h.engine.tcp_info(c).unwrap().sacked, 0);
}

/// Proportional Rate Reduction (RFC 6937 §3.1): while `pipe` is above
/// ssthresh, recovery sends ssthresh/RecoverFS of what each ACK delivers, so
/// the reduction is spread over the round trip instead of a silence followed
/// by one segment per ACK (RFC 6675 alone), and ends with about ssthresh in
/// flight.
#[test]
fn proportional_rate_reduction_spreads_the_reduction_over_the_round() {
    let mut h = Harness::new();
    let (c, iss, irs) = sack_passive(&mut h);
    let data = pattern(0, 80 * 1460);
    let base = iss + 1;
    let s = |i: usize| base + (i * 1460) as u32;
    assert_eq!(h.engine.send(h.now, c, &data), Ok(data.len()));
    assert_eq!(h.recv_all().len(), 10);
    // Slow start: one ACK per segment takes cwnd from 10 to 20 segments,
    // each ACK letting two segments out.
    h.advance(ms(50));
    let mut second = Vec::new();
    for i in 1..=10 {
        h.send(h.peer(irs + 1, s(i)));
        second.extend(h.recv_all());
    }
    assert_eq!(brief(&second, base), (10..30).map(b).collect::<Vec<_>>());
    assert_eq!(h.engine.tcp_info(c).unwrap().cwnd, 20 * 1460);
    // Segment 10 is lost; 11, 12, ... arrive and are SACKed one per ACK.
    h.advance(ms(50));
    let port = h.port;
    let sack_to = |k: usize| peer_sack(port, irs, s(10), &[(s(11), s(k))]);
    // Limited transmit (RFC 3042) for the first two.
    h.send(sack_to(12));
    assert_eq!(brief(&h.recv_all(), base), vec![b(30)]);
    h.send(sack_to(13));
    assert_eq!(brief(&h.recv_all(), base), vec![b(31)]);
    // The third starts recovery: ssthresh = 0.7 · 20 = 14 segments (CUBIC);
    // RecoverFS = 22 segments outstanding (10–31) less 2 SACKed before this
    // ACK = 20 segments... less the third, which this ACK delivers and PRR
    // counts as delivered: RecoverFS is taken after the SACK is processed,
    // 19 segments, and prr_delivered starts with this ACK's segment.
    h.send(sack_to(14));
    assert_eq!(brief(&h.recv_all(), base), vec![b(10)]);
    let info = h.engine.tcp_info(c).unwrap();
    assert_eq!(
        (info.ca_state, info.ssthresh),
        (CaState::Recovery, 14 * 1460)
    );
    // After n segments delivered in recovery, PRR has let out at most
    // ⌈n · 14/19⌉ segments' worth of bytes, in whole segments (and never
    // less than the retransmission, which goes regardless) while pipe is
    // above ssthresh; once pipe is down to ssthresh, one segment per segment
    // delivered keeps it there. New data, one segment per ACK at most, and
    // from the second ACK of recovery on (RFC 6675 alone would stay silent
    // until pipe fell below cwnd = ssthresh).
    let mut sent = 1;
    let mut next_new = 32;
    for n in 2..=19 {
        let k = 13 + n; // SACKed now: 11 .. k
        h.send(sack_to(k));
        let out = brief(&h.recv_all(), base);
        assert!(
            out.len() <= 1,
            "one segment per ACK at most, after {n}: {out:?}"
        );
        for seg in &out {
            assert_eq!(*seg, b(next_new));
            next_new += 1;
        }
        sent += out.len();
        let share = ((n * 14 * 1460).div_ceil(19) / 1460).max(1);
        assert!(
            sent <= share,
            "after {n} delivered: {sent} sent, share {share}"
        );
        if n == 3 {
            assert_eq!(sent, 2, "the reduction is proportional from the start");
        }
        let i = h.engine.tcp_info(c).unwrap();
        let pipe = i.bytes_in_flight - i.sacked;
        assert!(pipe >= i.ssthresh, "after {n} delivered: pipe {pipe}");
    }
    // The whole flight of the loss is delivered: ssthresh's worth was sent,
    // spread over the round instead of after a silence.
    assert_eq!(sent, 14);
    // The retransmission arrives: everything up to the recovery point is
    // acknowledged, recovery ends with cwnd = ssthresh and about ssthresh in
    // flight, so no burst follows.
    h.send(h.peer(irs + 1, s(32)));
    let info = h.engine.tcp_info(c).unwrap();
    assert_eq!((info.ca_state, info.cwnd), (CaState::Open, 14 * 1460));
    assert!(h.recv_all().len() <= 2);
}

/// RFC 2018 §3: without timestamps four SACK blocks fit in the 40 bytes of
/// options (two NOPs and a 34-byte option, as Linux sends them), and §4
/// asks for as many as fit: the ACK for a fourth out-of-order segment
/// reports all four, the newest first. Found by FreeBSD's packetdrill
/// scripts (`rcv-data-segments/overlapping-050-075` and others), which
/// expect the fourth block.
#[test]
fn four_sack_blocks_without_timestamps() {
    let mut h = Harness::new();
    let (_c, iss, irs) = sack_passive(&mut h);
    let at = |k: u32| irs + 1 + k;
    for k in [100, 300, 500] {
        h.send(h.peer(at(k), iss + 1).data(&[1; 100]));
        h.recv_all();
    }
    h.send(h.peer(at(700), iss + 1).data(&[1; 100]));
    let mut buf = vec![0u8; 1500];
    let n = h.engine.poll_transmit(h.now, &mut buf).expect("an ACK");
    let tcp = &buf[20..n];
    assert_eq!(
        usize::from(tcp[12] >> 4) * 4,
        20 + 36,
        "options: {:02x?}",
        &tcp[20..]
    );
    assert_eq!(&tcp[20..24], &[1, 1, 5, 34]);
    let block = |i: usize| {
        let b = &tcp[24 + 8 * i..32 + 8 * i];
        (
            u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
            u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
        )
    };
    assert_eq!(block(0), (at(700), at(800)), "the newest block first");
    let mut rest: Vec<(u32, u32)> = (1..4).map(block).collect();
    rest.sort();
    assert_eq!(
        rest,
        vec![(at(100), at(200)), (at(300), at(400)), (at(500), at(600))]
    );
    // The checksum covers the options written after smoltcp's header.
    let parsed = parse(&buf[..n]);
    assert_eq!(parsed.ack, Some(irs + 1));
}
