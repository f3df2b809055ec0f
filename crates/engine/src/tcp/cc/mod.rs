//! Congestion control behind one trait: NewReno (RFC 5681, RFC 6582) and
//! CUBIC (RFC 9438, with HyStart++ of RFC 9406), chosen per stack
//! ([`Config::congestion`](crate::Config::congestion)) or per socket.
//!
//! The controller only does window arithmetic. Loss detection (duplicate
//! ACKs, SACK, RACK), recovery and the NewReno window inflation without SACK
//! live in the connection; it tells the controller about acknowledged data,
//! congestion events, timeouts and undone (spurious) reductions.

use std::time::Duration;

use crate::Instant;

mod cubic;
mod newreno;

pub(crate) use cubic::Cubic;
pub(crate) use newreno::NewReno;

/// A congestion control algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum CongestionAlgorithm {
    /// NewReno: slow start, AIMD with β = 1/2 (RFC 5681, RFC 6582).
    NewReno,
    /// CUBIC with HyStart++ (RFC 9438, RFC 9406), as Linux's default.
    #[default]
    Cubic,
}

/// What one ACK told the sender, as the controller sees it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AckEvent {
    /// Bytes newly acknowledged (cumulatively or by SACK).
    pub acked: usize,
    /// An RTT sample from this ACK, if it gave one.
    pub rtt: Option<Duration>,
    /// When the ACK arrived.
    pub now: Instant,
    /// The sender did not use the window it had (RFC 7661): the window must
    /// not grow on the strength of this ACK.
    pub app_limited: bool,
    /// This ACK ends a round trip (SND.UNA passed the end of the data sent
    /// when the previous round ended); HyStart++ works per round.
    pub round_start: bool,
}

/// A congestion controller: the window arithmetic of one connection.
pub(crate) trait CongestionControl: std::fmt::Debug + Send {
    /// Which algorithm this is.
    fn algorithm(&self) -> CongestionAlgorithm;
    /// The sender's MSS changed (after the handshake or on a path MTU change).
    fn set_mss(&mut self, mss: usize);
    /// New data was acknowledged outside loss recovery.
    fn on_ack(&mut self, ev: &AckEvent);
    /// Loss was detected (once per recovery episode): reduce the window.
    fn on_congestion_event(&mut self, now: Instant, in_flight: usize);
    /// Loss recovery ended: the window becomes at most `limit` (RFC 6582 §3.2
    /// step 4 limits it to FlightSize + SMSS; with SACK no limit applies).
    fn on_recovery_end(&mut self, now: Instant, limit: usize);
    /// A retransmission timeout: back to one segment (RFC 5681 §3.1, eq. 4).
    /// Unless `first` (the loss episode was already answered: a repeated
    /// timeout, or a timeout in fast recovery), ssthresh is held constant
    /// (RFC 5681 §3.1: "the value of ssthresh is held constant").
    fn on_rto(&mut self, now: Instant, in_flight: usize, first: bool);
    /// The last reduction was needless (a spurious retransmission): undo it.
    fn on_spurious(&mut self);
    /// Whether the connection paces its segments: HyStart++ then lets an ACK
    /// grow the window by all it acknowledges (RFC 9406 §4.3: "A paced TCP
    /// implementation SHOULD use L = infinity").
    fn set_paced(&mut self, _paced: bool) {}
    /// Takes over the window and threshold of another controller.
    fn take_over(&mut self, cwnd: usize, ssthresh: usize);
    /// RFC 7661 §4.4, the non-validated period (five minutes) ran out: ssthresh =
    /// max(ssthresh, 3/4·cwnd), cwnd = max(cwnd/2, `floor`) (the initial
    /// window).
    fn end_of_nvp(&mut self, floor: usize);
    /// Lowers cwnd to at most `limit` bytes (never below one segment) before
    /// a congestion event, so the reduction is taken from what the sender
    /// was really using (RFC 7661 §4.4.1, losses during the NVP).
    fn limit_cwnd(&mut self, limit: usize);
    /// The congestion window, bytes.
    fn cwnd(&self) -> usize;
    /// The slow-start threshold, bytes (`usize::MAX` until the first loss).
    fn ssthresh(&self) -> usize;
    /// Whether slow start is on (cwnd below ssthresh).
    fn in_slow_start(&self) -> bool {
        self.cwnd() < self.ssthresh()
    }
    /// The pacing rate in bytes per second for a smoothed RTT `srtt`: like
    /// Linux, twice cwnd per RTT in slow start and 1.2 times in avoidance, so
    /// pacing spreads a window out without limiting its growth.
    fn pacing_rate(&self, srtt: Option<Duration>) -> Option<u64> {
        let srtt = srtt?.max(Duration::from_micros(100));
        let factor = if self.in_slow_start() { 2.0 } else { 1.2 };
        Some((self.cwnd() as f64 * factor / srtt.as_secs_f64()) as u64)
    }
}

/// A new controller of `alg` for a sender with MSS `mss` and an initial window
/// of `initial_segments` segments (RFC 6928).
pub(crate) fn new_controller(
    alg: CongestionAlgorithm,
    mss: usize,
    initial_segments: usize,
) -> Box<dyn CongestionControl> {
    match alg {
        CongestionAlgorithm::NewReno => Box::new(NewReno::new(mss, initial_segments)),
        CongestionAlgorithm::Cubic => Box::new(Cubic::new(mss, initial_segments)),
    }
}

/// The initial window of RFC 6928 §2 for `segments` segments: the general
/// form of IW = min(10·MSS, max(2·MSS, 14600)).
pub(crate) fn initial_window(mss: usize, segments: usize) -> usize {
    segments.max(1) * mss
}

/// The state a reduction replaced, kept so that a spurious one can be undone
/// (RFC 5682 §3.1 step 3 / RFC 2883 §4).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Undo {
    /// The window and threshold before the reduction.
    pub prior: Option<(usize, usize)>,
}

impl Undo {
    /// Remembers (cwnd, ssthresh) before a reduction.
    pub fn save(&mut self, cwnd: usize, ssthresh: usize) {
        self.prior = Some((cwnd, ssthresh));
    }

    /// The values to restore: at least what they are now (as Linux's
    /// `tcp_undo_cwnd_reduction`), once.
    pub fn take(&mut self, cwnd: usize, ssthresh: usize) -> Option<(usize, usize)> {
        let (c, s) = self.prior.take()?;
        Some((
            cwnd.max(c),
            if s == usize::MAX { s } else { ssthresh.max(s) },
        ))
    }
}
