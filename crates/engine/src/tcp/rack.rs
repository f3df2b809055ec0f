//! RACK-TLP (RFC 8985): time-based loss detection and tail loss probes.
//!
//! [`Rack`] keeps the transmission time of every segment in flight. A
//! segment is lost when a segment sent after it has been delivered (ACKed or
//! SACKed) and more than RACK.rtt + RACK.reo_wnd has passed since it was sent
//! (§6.2). Reordering widens the window (§6.2 step 4). [`Rack::pto`] is the
//! probe timeout of the tail loss probe (§7.2).

use std::collections::VecDeque;
use std::time::Duration;

use crate::Instant;
use crate::seq::Seq;

/// One transmitted segment.
#[derive(Debug, Clone, Copy)]
struct Sent {
    start: Seq,
    end: Seq,
    /// When it was last (re)transmitted.
    xmit: Instant,
    /// The order of that transmission among all of the connection's: what
    /// "sent after" means when two segments share a clock reading (a burst
    /// within one tick of a coarse clock). RFC 8985 §6.2's RACK_sent_after
    /// breaks such ties by sequence number, which gets a retransmission
    /// wrong: sent after new data in the same tick, it would count as sent
    /// before it, and be marked lost as soon as that data is SACKed.
    order: u64,
    retransmitted: bool,
    /// Delivered by a SACK.
    sacked: bool,
    /// Marked lost by RACK and not retransmitted since.
    lost: bool,
}

/// Most segments tracked; beyond this the oldest detail is dropped (the
/// scoreboard and the RTO still cover them).
const MAX_SENT: usize = 1 << 16;

/// The RACK state of one connection (RFC 8985 §5.2).
#[derive(Debug, Default)]
pub(crate) struct Rack {
    sent: VecDeque<Sent>,
    /// RACK.xmit_ts and the transmission order of the most recently sent
    /// delivered segment (in place of RACK.end_seq, see [`Sent::order`]).
    xmit_ts: Option<Instant>,
    xmit_order: u64,
    /// The order the next transmission gets.
    next_order: u64,
    /// RACK.rtt: the RTT of that segment.
    rtt: Duration,
    /// The minimum RTT seen.
    min_rtt: Option<Duration>,
    /// RACK.fack: the highest sequence number delivered.
    fack: Option<Seq>,
    /// RACK.reordering_seen.
    pub reordering_seen: bool,
    /// RACK.reo_wnd_mult (§6.2 step 4), raised by D-SACKs.
    reo_wnd_mult: u32,
    /// From the last ACK: the RTT of the oldest segment it acknowledged
    /// cumulatively that was neither retransmitted nor SACKed before (Linux's
    /// `seq_rtt_us`), for the RTO estimator.
    seq_rtt: Option<Duration>,
}

impl Rack {
    /// A segment [start, end) went out at `now`.
    pub(crate) fn on_sent(&mut self, start: Seq, end: Seq, now: Instant) {
        if !start.lt(end) {
            return;
        }
        let order = self.next_order;
        self.next_order += 1;
        let new = self.sent.back().is_none_or(|b| b.end.le(start));
        if new {
            if self.sent.len() >= MAX_SENT {
                self.sent.pop_front();
            }
            self.sent.push_back(Sent {
                start,
                end,
                xmit: now,
                order,
                retransmitted: false,
                sacked: false,
                lost: false,
            });
            return;
        }
        for s in self.sent.iter_mut() {
            if s.start.lt(end) && start.lt(s.end) {
                s.xmit = now;
                s.order = order;
                s.retransmitted = true;
                s.lost = false;
            }
        }
    }

    /// The highest segment sent: what a tail loss probe resends (§7.3).
    pub(crate) fn last_sent(&self) -> Option<(Seq, Seq)> {
        self.sent.back().map(|s| (s.start, s.end))
    }

    /// An ACK arrived at `now`: everything below `una` is acknowledged and,
    /// if `any_sacked`, `is_sacked` tells which segments above it are SACKed
    /// (RFC 8985 §6.2 steps 1–3, RACK_update for each newly delivered
    /// segment). Returns an RTT sample from the newest delivered segment that
    /// was never retransmitted (Karn), if any.
    pub(crate) fn on_ack(
        &mut self,
        una: Seq,
        now: Instant,
        any_sacked: bool,
        is_sacked: impl Fn(Seq, Seq) -> bool,
    ) -> Option<Duration> {
        // Each newly delivered segment is taken into RACK's state as it is
        // found, in the order found (cumulatively acknowledged ones first);
        // the sample is the newest of those sent once. No list is built for
        // the cumulative ones (an allocation per ACK).
        let mut newest: Option<Instant> = None;
        // Linux's `tcp_clean_rtx_queue`: the oldest segment sent once, and no
        // sample at all if the ACK also covers a retransmission (after a
        // timeout the segments behind it would measure the whole outage).
        let (mut oldest, mut any_retransmitted) = (None, false);
        while let Some(front) = self.sent.front() {
            if front.end.le(una) {
                let s = self.sent.pop_front().expect("front exists");
                if !s.sacked {
                    if s.retransmitted {
                        any_retransmitted = true;
                    } else {
                        if oldest.is_none() {
                            oldest = Some(now - s.xmit);
                        }
                        newest = newest.max(Some(s.xmit));
                    }
                    self.update(s, now);
                }
            } else {
                break;
            }
        }
        if any_sacked {
            let mut sacked = Vec::new();
            for s in self.sent.iter_mut() {
                if !s.sacked && is_sacked(s.start, s.end) {
                    s.sacked = true;
                    sacked.push(*s);
                }
            }
            for s in sacked {
                if !s.retransmitted {
                    newest = newest.max(Some(s.xmit));
                }
                self.update(s, now);
            }
        }
        self.seq_rtt = oldest.filter(|_| !any_retransmitted);
        newest.map(|xmit| now - xmit)
    }

    /// RACK_update (§6.2 step 2) and reordering detection (step 3).
    fn update(&mut self, s: Sent, now: Instant) {
        let rtt = now - s.xmit;
        if s.retransmitted && self.min_rtt.is_some_and(|m| rtt < m) {
            // Probably the ACK of the original transmission: ambiguous.
            return;
        }
        self.min_rtt = Some(self.min_rtt.map_or(rtt, |m| m.min(rtt)));
        match self.fack {
            Some(f) if s.end.lt(f) && !s.retransmitted => self.reordering_seen = true,
            Some(f) if f.ge(s.end) => {}
            _ => self.fack = Some(s.end),
        }
        // RACK_sent_after(Segment.xmit_ts, Segment.end_seq, RACK.xmit_ts,
        // RACK.end_seq), by transmission order.
        if self.xmit_ts.is_none() || s.order > self.xmit_order {
            self.xmit_ts = Some(s.xmit);
            self.xmit_order = s.order;
            self.rtt = rtt;
        }
    }

    /// The RTT of the oldest segment the last ACK acknowledged cumulatively
    /// that was sent once and not SACKed before, measured on the stack's
    /// clock (microseconds and finer): Karn's rule holds, since a
    /// retransmitted segment gives none.
    pub(crate) fn seq_rtt(&self) -> Option<Duration> {
        self.seq_rtt
    }

    /// A D-SACK arrived: the reordering window grows (§6.2 step 4).
    pub(crate) fn on_dsack(&mut self) {
        self.reordering_seen = true;
        self.reo_wnd_mult = (self.reo_wnd_mult + 1).min(16);
    }

    /// RACK.reo_wnd (§6.2 step 4): zero while no reordering was seen and a
    /// loss is evident (in recovery, or DupThresh segments SACKed); else a
    /// quarter of the minimum RTT per multiple, at most SRTT.
    pub(crate) fn reo_wnd(
        &self,
        in_recovery: bool,
        sacked_segments: usize,
        srtt: Duration,
    ) -> Duration {
        if !self.reordering_seen && (in_recovery || sacked_segments >= super::sack::DUP_THRESH) {
            return Duration::ZERO;
        }
        let min_rtt = self.min_rtt.unwrap_or(srtt);
        (min_rtt / 4 * self.reo_wnd_mult.max(1)).min(srtt)
    }

    /// RACK_detect_loss (§6.2 step 5): marks lost every segment sent before
    /// the most recently delivered one and outstanding for longer than
    /// RACK.rtt + `reo_wnd`. Returns the newly lost ranges and when to look
    /// again (the reordering timer), if a segment may yet be lost.
    pub(crate) fn detect_loss(
        &mut self,
        now: Instant,
        reo_wnd: Duration,
    ) -> (Vec<(Seq, Seq)>, Option<Instant>) {
        let mut lost = Vec::new();
        let mut timer: Option<Instant> = None;
        if self.xmit_ts.is_none() {
            return (lost, None);
        }
        for s in self.sent.iter_mut() {
            if s.sacked || s.lost {
                continue;
            }
            // Sent before the most recently sent delivered segment.
            if s.order >= self.xmit_order {
                continue;
            }
            let deadline = s.xmit + self.rtt + reo_wnd;
            if deadline <= now {
                s.lost = true;
                lost.push((s.start, s.end));
            } else {
                timer = Some(timer.map_or(deadline, |t| t.max(deadline)));
            }
        }
        (lost, timer)
    }

    /// The probe timeout (§7.2): 2·SRTT, plus the peer's worst-case delayed
    /// ACK when only one segment is in flight; 1 s without an RTT sample.
    pub(crate) fn pto(
        srtt: Option<Duration>,
        one_segment: bool,
        max_ack_delay: Duration,
    ) -> Duration {
        match srtt {
            Some(srtt) => {
                let mut pto = srtt * 2;
                if one_segment {
                    pto += max_ack_delay;
                }
                pto.max(Duration::from_millis(10))
            }
            None => Duration::from_secs(1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Instant {
        Instant::from_millis(n)
    }

    fn us(n: u64) -> Instant {
        Instant::from_nanos(n * 1000)
    }

    #[test]
    fn seq_rtt_is_the_oldest_segment_sent_once_in_microseconds() {
        let mut r = Rack::default();
        r.on_sent(Seq(0), Seq(100), us(0));
        r.on_sent(Seq(100), Seq(200), us(40));
        r.on_sent(Seq(200), Seq(300), us(80));
        // Both first segments acknowledged at 250 µs: the oldest measures.
        r.on_ack(Seq(200), us(250), false, |_, _| false);
        assert_eq!(r.seq_rtt(), Some(Duration::from_micros(250)));
        // An ACK that delivers nothing new gives no sample.
        r.on_ack(Seq(200), us(260), false, |_, _| false);
        assert_eq!(r.seq_rtt(), None);
        // The third is retransmitted; the ACK covering it and a segment sent
        // once after it gives none (Karn; it would span the wait).
        r.on_sent(Seq(300), Seq(400), us(90));
        r.on_sent(Seq(200), Seq(300), us(1000));
        r.on_ack(Seq(400), us(1100), false, |_, _| false);
        assert_eq!(r.seq_rtt(), None);
    }

    #[test]
    fn a_segment_sent_before_a_delivered_one_is_lost_after_rtt_plus_reo_wnd() {
        let mut r = Rack::default();
        for i in 0..4u32 {
            r.on_sent(Seq(i * 100), Seq(i * 100 + 100), ms(u64::from(i)));
        }
        // At 50 ms, segment 2 is SACKed (RTT 48 ms): 0 and 1 were sent before it.
        let rtt = r.on_ack(Seq(0), ms(50), true, |s, e| s == Seq(200) && e == Seq(300));
        assert_eq!(rtt, Some(Duration::from_millis(48)));
        let (lost, timer) = r.detect_loss(ms(50), Duration::from_millis(5));
        assert!(lost.is_empty());
        // Segment 0: sent at 0, + 48 + 5 = 53 ms; segment 1 at 54 ms.
        assert_eq!(timer, Some(ms(54)));
        let (lost, _) = r.detect_loss(ms(53), Duration::from_millis(5));
        assert_eq!(lost, vec![(Seq(0), Seq(100))]);
        let (lost, timer) = r.detect_loss(ms(54), Duration::from_millis(5));
        assert_eq!((lost, timer), (vec![(Seq(100), Seq(200))], None));
        // Segment 3 was sent after the delivered one: never lost by RACK yet.
    }

    #[test]
    fn a_retransmission_in_the_same_tick_as_newer_data_counts_as_sent_after_it() {
        let mut r = Rack::default();
        for i in 0..3u32 {
            r.on_sent(Seq(i * 100), Seq(i * 100 + 100), ms(0));
        }
        // At 50 ms segment 0 is retransmitted and segment 3 sent, in that
        // order, in one tick of the clock.
        r.on_sent(Seq(0), Seq(100), ms(50));
        r.on_sent(Seq(300), Seq(400), ms(50));
        // Segment 3 is SACKed at 100 ms: the retransmission went out before
        // it and is lost once RACK.rtt (50 ms) has passed since: at once.
        r.on_ack(Seq(0), ms(100), true, |s, e| s == Seq(300) && e == Seq(400));
        let (lost, _) = r.detect_loss(ms(100), Duration::ZERO);
        assert!(lost.contains(&(Seq(0), Seq(100))));
        // The other way round: segment 4 goes, then segment 0 again, in one tick.
        let mut r = Rack::default();
        for i in 0..4u32 {
            r.on_sent(Seq(i * 100), Seq(i * 100 + 100), ms(0));
        }
        r.on_sent(Seq(400), Seq(500), ms(50));
        r.on_sent(Seq(0), Seq(100), ms(50));
        // SACKing segment 4 says nothing of the later retransmission (RFC
        // 8985's tie-break by sequence number would call it lost).
        r.on_ack(Seq(0), ms(100), true, |s, e| s == Seq(400) && e == Seq(500));
        let (lost, _) = r.detect_loss(ms(100), Duration::ZERO);
        assert!(!lost.contains(&(Seq(0), Seq(100))), "{lost:?}");
        // Segments 1–3, sent at 0, are lost.
        assert_eq!(lost.len(), 3);
    }

    #[test]
    fn reordering_is_seen_when_an_older_segment_is_delivered_later() {
        let mut r = Rack::default();
        for i in 0..3u32 {
            r.on_sent(Seq(i * 100), Seq(i * 100 + 100), ms(0));
        }
        // No reordering seen: a quarter of the (S)RTT, but none once a loss is evident.
        assert_eq!(
            r.reo_wnd(false, 0, Duration::from_millis(40)),
            Duration::from_millis(10)
        );
        assert_eq!(
            r.reo_wnd(true, 0, Duration::from_millis(40)),
            Duration::ZERO
        );
        assert_eq!(
            r.reo_wnd(false, 3, Duration::from_millis(40)),
            Duration::ZERO
        );
        r.on_ack(Seq(0), ms(40), true, |s, _| s == Seq(200));
        assert!(!r.reordering_seen);
        r.on_ack(Seq(100), ms(41), true, |s, _| s == Seq(200));
        assert!(r.reordering_seen);
        assert_eq!(
            r.reo_wnd(true, 3, Duration::from_millis(40)),
            Duration::from_millis(10)
        );
        r.on_dsack();
        r.on_dsack();
        assert_eq!(
            r.reo_wnd(true, 3, Duration::from_millis(40)),
            Duration::from_millis(20)
        );
    }

    #[test]
    fn pto_is_two_srtt_plus_delayed_ack_for_a_single_segment() {
        let d = Duration::from_millis;
        assert_eq!(Rack::pto(Some(d(50)), false, d(200)), d(100));
        assert_eq!(Rack::pto(Some(d(50)), true, d(200)), d(300));
        assert_eq!(Rack::pto(None, false, d(200)), Duration::from_secs(1));
    }
}
