//! Congestion control: slow start, congestion avoidance, fast retransmit and
//! NewReno fast recovery (RFC 5681, RFC 6582), with the initial window of RFC 6928.

/// The congestion state of one connection.
#[derive(Debug, Clone)]
pub(crate) struct NewReno {
    mss: usize,
    /// The congestion window, bytes.
    pub(crate) cwnd: usize,
    /// The slow-start threshold, bytes.
    pub(crate) ssthresh: usize,
    /// Bytes acknowledged towards the next congestion-avoidance increase.
    acked_in_ca: usize,
}

impl NewReno {
    pub(crate) fn new(mss: usize, initial_segments: usize) -> Self {
        NewReno {
            mss,
            // RFC 6928: IW = min(10*MSS, max(2*MSS, 14600)) for 10 segments; general form here.
            cwnd: initial_segments.max(1) * mss,
            ssthresh: usize::MAX,
            acked_in_ca: 0,
        }
    }

    pub(crate) fn set_mss(&mut self, mss: usize) {
        if self.mss != mss {
            self.cwnd = self.cwnd / self.mss.max(1) * mss;
            self.mss = mss;
        }
    }

    /// New data acknowledged outside recovery (RFC 5681 §3.1).
    pub(crate) fn on_ack(&mut self, acked: usize) {
        if self.cwnd < self.ssthresh {
            // Slow start counting bytes acknowledged (RFC 3465). Like Linux, no
            // per-ACK limit L: a stretch ACK for a batch of segments (the receiver
            // coalesces ACKs per batch) grows the window by all of them, capped at
            // ssthresh.
            self.cwnd = (self.cwnd + acked).min(self.ssthresh.max(self.cwnd));
        } else {
            // Congestion avoidance: one SMSS per window of acknowledged data.
            self.acked_in_ca += acked;
            if self.acked_in_ca >= self.cwnd {
                self.acked_in_ca -= self.cwnd;
                self.cwnd += self.mss;
            }
        }
    }

    /// Entering fast recovery after three duplicate ACKs (RFC 6582 §3.2 step 2).
    pub(crate) fn on_fast_retransmit(&mut self, flight: usize) {
        self.ssthresh = (flight / 2).max(2 * self.mss);
        self.cwnd = self.ssthresh + 3 * self.mss;
    }

    /// A further duplicate ACK during recovery inflates the window (step 3).
    pub(crate) fn on_dup_ack_in_recovery(&mut self) {
        self.cwnd += self.mss;
    }

    /// A partial ACK during recovery (RFC 6582 §3.2 step 5): deflate by the amount
    /// acknowledged, add back one SMSS if that was at least one SMSS.
    pub(crate) fn on_partial_ack(&mut self, acked: usize) {
        self.cwnd = self.cwnd.saturating_sub(acked);
        if acked >= self.mss {
            self.cwnd += self.mss;
        }
        self.cwnd = self.cwnd.max(self.mss);
    }

    /// A full ACK ends recovery (step 4): cwnd = min(ssthresh, flight + SMSS).
    pub(crate) fn on_recovery_end(&mut self, flight: usize) {
        self.cwnd = self.ssthresh.min(flight.max(self.mss) + self.mss);
        self.acked_in_ca = 0;
    }

    /// A retransmission timeout (RFC 5681 §3.1, eq. 4): one segment, halve ssthresh.
    pub(crate) fn on_rto(&mut self, flight: usize) {
        self.ssthresh = (flight / 2).max(2 * self.mss);
        self.cwnd = self.mss;
        self.acked_in_ca = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slow_start_then_avoidance() {
        let mut c = NewReno::new(1000, 10);
        assert_eq!(c.cwnd, 10_000);
        c.on_ack(1000);
        assert_eq!(c.cwnd, 11_000);
        c.on_rto(20_000);
        assert_eq!((c.cwnd, c.ssthresh), (1000, 10_000));
        for _ in 0..9 {
            c.on_ack(1000);
        }
        assert_eq!(c.cwnd, 10_000);
        // In avoidance, a whole window of ACKs adds one segment.
        for _ in 0..10 {
            c.on_ack(1000);
        }
        assert_eq!(c.cwnd, 11_000);
    }

    #[test]
    fn fast_recovery_inflates_and_deflates() {
        let mut c = NewReno::new(1000, 10);
        c.on_fast_retransmit(10_000);
        assert_eq!((c.cwnd, c.ssthresh), (8_000, 5_000));
        c.on_dup_ack_in_recovery();
        assert_eq!(c.cwnd, 9_000);
        c.on_partial_ack(2_000);
        assert_eq!(c.cwnd, 8_000);
        c.on_recovery_end(3_000);
        assert_eq!(c.cwnd, 4_000);
    }
}
