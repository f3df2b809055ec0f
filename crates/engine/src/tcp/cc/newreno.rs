//! NewReno (RFC 5681 §3.1, RFC 6582): slow start counting bytes acknowledged
//! (RFC 3465), one SMSS per window in congestion avoidance, and half the
//! flight on loss. The window inflation of fast recovery without SACK
//! (RFC 6582 §3.2 steps 2–5) is done by the connection on top of this.

use super::{AckEvent, CongestionAlgorithm, CongestionControl, Undo, initial_window};
use crate::Instant;

/// The NewReno window of one connection.
#[derive(Debug, Clone)]
pub(crate) struct NewReno {
    mss: usize,
    cwnd: usize,
    ssthresh: usize,
    /// Bytes acknowledged towards the next congestion-avoidance increase.
    acked_in_ca: usize,
    undo: Undo,
}

impl NewReno {
    pub(crate) fn new(mss: usize, initial_segments: usize) -> Self {
        NewReno {
            mss,
            cwnd: initial_window(mss, initial_segments),
            ssthresh: usize::MAX,
            acked_in_ca: 0,
            undo: Undo::default(),
        }
    }

    /// RFC 5681 §3.1 eq. 4: ssthresh = max(FlightSize / 2, 2·SMSS).
    fn reduce(&mut self, in_flight: usize) {
        self.undo.save(self.cwnd, self.ssthresh);
        self.ssthresh = (in_flight / 2).max(2 * self.mss);
        self.acked_in_ca = 0;
    }
}

impl CongestionControl for NewReno {
    fn algorithm(&self) -> CongestionAlgorithm {
        CongestionAlgorithm::NewReno
    }

    fn set_mss(&mut self, mss: usize) {
        if self.mss != mss && mss > 0 {
            self.cwnd = (self.cwnd / self.mss.max(1)).max(1) * mss;
            self.mss = mss;
        }
    }

    fn on_ack(&mut self, ev: &AckEvent) {
        if ev.app_limited {
            // RFC 7661 §4.3: no growth while the window is not being used.
            return;
        }
        if self.cwnd < self.ssthresh {
            // Slow start counting bytes acknowledged (RFC 3465). Like Linux, no
            // per-ACK limit L: a stretch ACK for a batch of segments (a receiver
            // that coalesces ACKs, as under GRO) grows the window by all of them,
            // capped at ssthresh.
            self.cwnd = (self.cwnd + ev.acked).min(self.ssthresh.max(self.cwnd));
        } else {
            // Congestion avoidance: one SMSS per window of acknowledged data.
            self.acked_in_ca += ev.acked;
            if self.acked_in_ca >= self.cwnd {
                self.acked_in_ca -= self.cwnd;
                self.cwnd += self.mss;
            }
        }
    }

    fn on_congestion_event(&mut self, _now: Instant, in_flight: usize) {
        self.reduce(in_flight);
        self.cwnd = self.ssthresh;
    }

    fn on_recovery_end(&mut self, _now: Instant, limit: usize) {
        // Never above the window in use (after an undo ssthresh may be unset).
        self.cwnd = self.cwnd.min(self.ssthresh).min(limit).max(self.mss);
        self.acked_in_ca = 0;
    }

    fn on_rto(&mut self, _now: Instant, in_flight: usize, first: bool) {
        if first {
            self.reduce(in_flight);
        }
        self.acked_in_ca = 0;
        self.cwnd = self.mss;
    }

    fn on_spurious(&mut self) {
        if let Some((c, s)) = self.undo.take(self.cwnd, self.ssthresh) {
            self.cwnd = c;
            self.ssthresh = s;
        }
    }

    fn end_of_nvp(&mut self, floor: usize) {
        self.ssthresh = self.ssthresh.max(self.cwnd / 4 * 3);
        self.cwnd = (self.cwnd / 2).max(floor);
        self.acked_in_ca = 0;
    }

    fn limit_cwnd(&mut self, limit: usize) {
        self.cwnd = self.cwnd.min(limit.max(self.mss));
    }

    fn take_over(&mut self, cwnd: usize, ssthresh: usize) {
        self.cwnd = cwnd.max(self.mss);
        self.ssthresh = ssthresh;
        self.acked_in_ca = 0;
    }

    fn cwnd(&self) -> usize {
        self.cwnd
    }

    fn ssthresh(&self) -> usize {
        self.ssthresh
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ack(acked: usize) -> AckEvent {
        AckEvent {
            acked,
            rtt: None,
            now: Instant::ZERO,
            app_limited: false,
            round_start: false,
        }
    }

    #[test]
    fn slow_start_then_avoidance() {
        let mut c = NewReno::new(1000, 10);
        assert_eq!(c.cwnd(), 10_000);
        c.on_ack(&ack(1000));
        assert_eq!(c.cwnd(), 11_000);
        c.on_rto(Instant::ZERO, 20_000, true);
        assert_eq!((c.cwnd(), c.ssthresh()), (1000, 10_000));
        // A repeated timeout holds ssthresh (RFC 5681 §3.1).
        c.on_rto(Instant::ZERO, 1_000, false);
        assert_eq!((c.cwnd(), c.ssthresh()), (1000, 10_000));
        for _ in 0..9 {
            c.on_ack(&ack(1000));
        }
        assert_eq!(c.cwnd(), 10_000);
        // In avoidance, a whole window of ACKs adds one segment.
        for _ in 0..10 {
            c.on_ack(&ack(1000));
        }
        assert_eq!(c.cwnd(), 11_000);
    }

    #[test]
    fn congestion_event_halves_the_flight_and_recovery_end_limits_the_window() {
        let mut c = NewReno::new(1000, 10);
        c.on_congestion_event(Instant::ZERO, 10_000);
        assert_eq!((c.cwnd(), c.ssthresh()), (5_000, 5_000));
        c.on_recovery_end(Instant::ZERO, 3_000);
        assert_eq!(c.cwnd(), 3_000);
    }

    #[test]
    fn app_limited_acks_do_not_grow_the_window() {
        let mut c = NewReno::new(1000, 10);
        c.on_ack(&AckEvent {
            app_limited: true,
            ..ack(5000)
        });
        assert_eq!(c.cwnd(), 10_000);
    }

    #[test]
    fn spurious_reduction_is_undone_once() {
        let mut c = NewReno::new(1000, 10);
        c.on_ack(&ack(10_000));
        c.on_rto(Instant::ZERO, 20_000, true);
        assert_eq!((c.cwnd(), c.ssthresh()), (1000, 10_000));
        c.on_spurious();
        assert_eq!((c.cwnd(), c.ssthresh()), (20_000, usize::MAX));
        c.on_congestion_event(Instant::ZERO, 20_000);
        c.on_spurious();
        c.on_spurious();
        assert_eq!((c.cwnd(), c.ssthresh()), (20_000, usize::MAX));
    }
}
