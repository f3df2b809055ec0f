//! CUBIC (RFC 9438) with HyStart++ slow start (RFC 9406).
//!
//! The window grows along W_cubic(t) = C·(t − K)³ + W_max (§4.2) after a
//! reduction by β = 0.7 (§4.6), never slower than the Reno-friendly estimate
//! W_est (§4.3). Slow start leaves early, into Conservative Slow Start, when
//! the round's minimum RTT rises (RFC 9406 §4.2).

use std::time::Duration;

use super::{AckEvent, CongestionAlgorithm, CongestionControl, initial_window};
use crate::Instant;

/// RFC 9438 §5.1: C = 0.4 (segments / s³).
const C: f64 = 0.4;
/// RFC 9438 §5.1: β_cubic = 0.7.
const BETA: f64 = 0.7;
/// RFC 9438 §4.3: α_cubic = 3·(1 − β)/(1 + β).
const ALPHA: f64 = 3.0 * (1.0 - BETA) / (1.0 + BETA);

// RFC 9406 §4.3 constants.
const MIN_RTT_THRESH: Duration = Duration::from_millis(4);
const MAX_RTT_THRESH: Duration = Duration::from_millis(16);
const MIN_RTT_DIVISOR: u32 = 8;
const N_RTT_SAMPLE: u32 = 8;
const CSS_GROWTH_DIVISOR: f64 = 4.0;
const CSS_ROUNDS: u32 = 5;
/// RFC 9406 §4.3: L, the most an ACK may grow the window by, in segments,
/// when not paced (infinite when paced).
const L: usize = 8;

/// The phase of HyStart++ (RFC 9406 §4.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hystart {
    /// Standard slow start, watching the RTT.
    SlowStart,
    /// Conservative Slow Start after an RTT increase: its baseline RTT and rounds so far.
    Css { baseline: Duration, rounds: u32 },
    /// Slow start is over.
    Done,
}

#[derive(Debug, Clone, Copy)]
struct Saved {
    cwnd: f64,
    ssthresh: usize,
    w_max: f64,
    cwnd_prior: f64,
}

/// The CUBIC window of one connection. Windows are kept in bytes as `f64`
/// (fractional growth per ACK adds up); the RFC's formulas are in segments.
#[derive(Debug, Clone)]
pub(crate) struct Cubic {
    mss: usize,
    cwnd: f64,
    ssthresh: usize,
    /// W_max: the window before the last reduction, bytes.
    w_max: f64,
    /// The start of the current congestion-avoidance epoch and its K (seconds)
    /// and W_max origin (bytes).
    epoch: Option<(Instant, f64, f64)>,
    /// W_est, the Reno-friendly estimate (§4.3), bytes.
    w_est: f64,
    /// cwnd_prior: the window when ssthresh was last set (§4.6), bytes; once
    /// W_est reaches it, α_cubic becomes 1 (§4.3).
    cwnd_prior: f64,
    /// The smallest RTT seen, for the W_cubic(t + RTT) target.
    min_rtt: Option<Duration>,
    hystart: Hystart,
    /// The connection paces: no L limit in slow start.
    paced: bool,
    last_round_min_rtt: Option<Duration>,
    current_round_min_rtt: Option<Duration>,
    rtt_samples: u32,
    saved: Option<Saved>,
}

impl Cubic {
    pub(crate) fn new(mss: usize, initial_segments: usize) -> Self {
        Cubic {
            mss,
            cwnd: initial_window(mss, initial_segments) as f64,
            ssthresh: usize::MAX,
            w_max: 0.0,
            epoch: None,
            w_est: 0.0,
            cwnd_prior: 0.0,
            min_rtt: None,
            hystart: Hystart::SlowStart,
            paced: false,
            last_round_min_rtt: None,
            current_round_min_rtt: None,
            rtt_samples: 0,
            saved: None,
        }
    }

    fn mss_f(&self) -> f64 {
        self.mss as f64
    }

    /// W_cubic(t) in bytes (§4.2, eq. 1) for the epoch's K and W_max.
    fn w_cubic(&self, t: f64, k: f64, origin: f64) -> f64 {
        let d = t - k;
        (C * d * d * d) * self.mss_f() + origin
    }

    /// The multiplicative decrease of §4.6 with fast convergence (§4.7).
    fn reduce(&mut self) {
        self.saved = Some(Saved {
            cwnd: self.cwnd,
            ssthresh: self.ssthresh,
            w_max: self.w_max,
            cwnd_prior: self.cwnd_prior,
        });
        let cwnd = self.cwnd;
        self.cwnd_prior = cwnd;
        self.w_max = if cwnd < self.w_max {
            cwnd * (1.0 + BETA) / 2.0
        } else {
            cwnd
        };
        self.ssthresh = ((cwnd * BETA) as usize).max(2 * self.mss);
        self.epoch = None;
        self.hystart = Hystart::Done;
    }

    /// HyStart++ bookkeeping per ACK (RFC 9406 §4.2); returns the growth divisor.
    fn hystart_on_ack(&mut self, ev: &AckEvent) -> f64 {
        if ev.round_start {
            self.last_round_min_rtt = self.current_round_min_rtt.take();
            self.rtt_samples = 0;
            if let Hystart::Css { baseline, rounds } = self.hystart {
                if rounds + 1 >= CSS_ROUNDS {
                    // §4.2: CSS_ROUNDS rounds of CSS: on to congestion avoidance.
                    self.ssthresh = self.cwnd as usize;
                    self.hystart = Hystart::Done;
                } else {
                    self.hystart = Hystart::Css {
                        baseline,
                        rounds: rounds + 1,
                    };
                }
            }
        }
        if let Some(rtt) = ev.rtt {
            self.current_round_min_rtt =
                Some(self.current_round_min_rtt.map_or(rtt, |m| m.min(rtt)));
            self.rtt_samples += 1;
        }
        let enough = self.rtt_samples >= N_RTT_SAMPLE;
        match (
            self.hystart,
            self.current_round_min_rtt,
            self.last_round_min_rtt,
        ) {
            (Hystart::SlowStart, Some(cur), Some(last)) if enough => {
                let thresh = (last / MIN_RTT_DIVISOR).clamp(MIN_RTT_THRESH, MAX_RTT_THRESH);
                if cur >= last + thresh {
                    self.hystart = Hystart::Css {
                        baseline: cur,
                        rounds: 0,
                    };
                }
            }
            (Hystart::Css { baseline, .. }, Some(cur), _) if enough && cur < baseline => {
                // §4.2: the RTT increase was spurious: back to slow start.
                self.hystart = Hystart::SlowStart;
            }
            _ => {}
        }
        match self.hystart {
            Hystart::Css { .. } => CSS_GROWTH_DIVISOR,
            _ => 1.0,
        }
    }
}

impl CongestionControl for Cubic {
    fn algorithm(&self) -> CongestionAlgorithm {
        CongestionAlgorithm::Cubic
    }

    fn set_mss(&mut self, mss: usize) {
        if self.mss != mss && mss > 0 {
            let segs = (self.cwnd / self.mss_f()).max(1.0);
            self.cwnd = segs * mss as f64;
            self.mss = mss;
        }
    }

    fn on_ack(&mut self, ev: &AckEvent) {
        if let Some(rtt) = ev.rtt {
            self.min_rtt = Some(self.min_rtt.map_or(rtt, |m| m.min(rtt)));
        }
        let divisor = if self.hystart != Hystart::Done && self.in_slow_start() {
            self.hystart_on_ack(ev)
        } else {
            1.0
        };
        if ev.app_limited {
            // RFC 7661 §4.3 (and RFC 9438 §5.8): no growth while the window
            // is not used; the epoch restarts when it is used again.
            self.epoch = None;
            return;
        }
        let acked = ev.acked as f64;
        if self.in_slow_start() {
            // RFC 9406 §4.2: at most L·SMSS per ACK, a quarter of it in CSS.
            let limit = if self.paced {
                f64::INFINITY
            } else {
                (L * self.mss) as f64
            };
            let inc = acked.min(limit) / divisor;
            self.cwnd = (self.cwnd + inc).min(self.ssthresh.max(self.cwnd as usize) as f64);
            return;
        }
        // Congestion avoidance (RFC 9438 §4.2–4.4).
        let (start, k, origin) = match self.epoch {
            Some(e) => e,
            None => {
                let origin = self.w_max.max(self.cwnd);
                let k = ((origin - self.cwnd) / self.mss_f() / C).cbrt();
                self.w_est = self.cwnd;
                self.epoch = Some((ev.now, k, origin));
                (ev.now, k, origin)
            }
        };
        let t = (ev.now - start).as_secs_f64();
        let rtt = self
            .min_rtt
            .unwrap_or(Duration::from_millis(100))
            .as_secs_f64();
        // §4.3: W_est grows by α_cubic segments per window acknowledged;
        // once it has reached cwnd_prior, α_cubic is 1 ("the sender SHOULD
        // set α_cubic to 1"), so it grows as fast as Reno from there.
        let alpha = if self.w_est >= self.cwnd_prior {
            1.0
        } else {
            ALPHA
        };
        self.w_est += alpha * acked / self.cwnd * self.mss_f();
        let cubic_now = self.w_cubic(t, k, origin);
        if cubic_now < self.w_est {
            // §4.3: the Reno-friendly region.
            self.cwnd = self.cwnd.max(self.w_est);
        } else {
            // §4.4/§4.5: towards W_cubic(t + RTT), at most 1.5·cwnd.
            let target = self
                .w_cubic(t + rtt, k, origin)
                .clamp(self.cwnd, 1.5 * self.cwnd);
            self.cwnd += (target - self.cwnd) / self.cwnd * acked;
        }
    }

    fn on_congestion_event(&mut self, _now: Instant, _in_flight: usize) {
        self.reduce();
        self.cwnd = self.ssthresh as f64;
    }

    fn on_recovery_end(&mut self, _now: Instant, limit: usize) {
        // Never above the window in use (after an undo ssthresh may be unset).
        let cwnd = (self.cwnd as usize)
            .min(self.ssthresh)
            .min(limit)
            .max(self.mss);
        self.cwnd = cwnd as f64;
    }

    fn on_rto(&mut self, _now: Instant, _in_flight: usize, first: bool) {
        // RFC 9438 §4.8: ssthresh as for a congestion event, cwnd one segment.
        if first {
            self.reduce();
        }
        self.epoch = None;
        self.cwnd = self.mss_f();
    }

    fn on_spurious(&mut self) {
        if let Some(s) = self.saved.take() {
            // RFC 9438 §4.9: restore the state before the reduction.
            self.cwnd = self.cwnd.max(s.cwnd);
            self.ssthresh = self.ssthresh.max(s.ssthresh);
            self.w_max = s.w_max;
            self.cwnd_prior = s.cwnd_prior;
            self.epoch = None;
        }
    }

    fn set_paced(&mut self, paced: bool) {
        self.paced = paced;
    }

    fn end_of_nvp(&mut self, floor: usize) {
        self.ssthresh = self.ssthresh.max(self.cwnd as usize / 4 * 3);
        self.cwnd = (self.cwnd / 2.0).max(floor as f64);
        self.epoch = None;
    }

    fn limit_cwnd(&mut self, limit: usize) {
        self.cwnd = self.cwnd.min(limit.max(self.mss) as f64);
    }

    fn take_over(&mut self, cwnd: usize, ssthresh: usize) {
        self.cwnd = cwnd.max(self.mss) as f64;
        self.ssthresh = ssthresh;
        self.w_max = self.cwnd;
        self.cwnd_prior = self.cwnd;
        self.epoch = None;
        if ssthresh != usize::MAX {
            self.hystart = Hystart::Done;
        }
    }

    fn cwnd(&self) -> usize {
        self.cwnd as usize
    }

    fn ssthresh(&self) -> usize {
        self.ssthresh
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ack(now: Instant, acked: usize, rtt: Option<Duration>, round_start: bool) -> AckEvent {
        AckEvent {
            acked,
            rtt,
            now,
            app_limited: false,
            round_start,
        }
    }

    #[test]
    fn slow_start_growth_per_ack_is_limited_to_l_segments_unless_paced() {
        // RFC 9406 §4.3: L = 8 without pacing, infinity with it.
        let mut c = Cubic::new(1000, 10);
        c.on_ack(&ack(Instant::ZERO, 20_000, None, false));
        assert_eq!(c.cwnd(), 10_000 + 8_000);
        let mut c = Cubic::new(1000, 10);
        c.set_paced(true);
        c.on_ack(&ack(Instant::ZERO, 20_000, None, false));
        assert_eq!(c.cwnd(), 10_000 + 20_000);
    }

    #[test]
    fn reduction_is_beta_0_7_with_fast_convergence() {
        let mut c = Cubic::new(1000, 10);
        c.on_congestion_event(Instant::ZERO, 10_000);
        assert_eq!((c.cwnd(), c.ssthresh()), (7_000, 7_000));
        assert_eq!(c.w_max, 10_000.0);
        // A second loss below W_max: W_max = cwnd·(1 + β)/2 (§4.7).
        c.on_congestion_event(Instant::ZERO, 7_000);
        assert_eq!(c.cwnd(), 4_900);
        assert!((c.w_max - 5_950.0).abs() < 1e-6);
    }

    #[test]
    fn avoidance_follows_the_cubic_curve_back_to_w_max_at_k() {
        let mut c = Cubic::new(1000, 100);
        // W_max = 100 segments; after the reduction cwnd = 70 segments, and
        // K = cbrt(30 / 0.4) = 4.217 s.
        c.on_congestion_event(Instant::ZERO, 100_000);
        // A long RTT, so the cubic curve leads the Reno-friendly estimate.
        let rtt = Duration::from_millis(100);
        let mut now = Instant::from_millis(1);
        c.on_ack(&ack(now, 1000, Some(rtt), false));
        let (_, k, _) = c.epoch.unwrap();
        assert!((k - 4.217).abs() < 0.01, "K = {k}");
        // A window's worth of ACKs every RTT for K seconds.
        while now < Instant::from_millis(4_217) {
            now = now + rtt;
            let w = c.cwnd();
            for _ in 0..w / 1000 {
                c.on_ack(&ack(now, 1000, Some(rtt), false));
            }
        }
        // The window is back near W_max: the plateau of the curve.
        let w = c.cwnd();
        assert!((98_000..=102_000).contains(&w), "cwnd {w}");
        // Well past K, it probes beyond W_max (convex region).
        for _ in 0..300 {
            now = now + rtt;
            let w = c.cwnd();
            for _ in 0..w / 1000 {
                c.on_ack(&ack(now, 1000, Some(rtt), false));
            }
        }
        assert!(c.cwnd() > 110_000, "cwnd {}", c.cwnd());
    }

    /// One RTT of 1 ms in which every segment of the window is acknowledged.
    fn one_round(c: &mut Cubic, now: &mut Instant) {
        *now = *now + Duration::from_millis(1);
        for _ in 0..c.cwnd() / 1000 {
            c.on_ack(&ack(*now, 1000, Some(Duration::from_millis(1)), false));
        }
    }

    #[test]
    fn reno_friendly_region_grows_at_least_like_aimd() {
        let mut c = Cubic::new(1000, 10);
        // A small W_max: the cubic curve is flat, W_est leads.
        c.on_congestion_event(Instant::ZERO, 10_000);
        let start = c.cwnd();
        let mut now = Instant::ZERO;
        for _ in 0..5 {
            one_round(&mut c, &mut now);
        }
        // Below cwnd_prior, α_cubic = 0.53 segments per RTT: about 2.6
        // segments in 5 RTTs, where NewReno's one per RTT would give 5.
        let grown = c.cwnd() - start;
        assert!((2_000..3_300).contains(&grown), "grew {grown}");
    }

    #[test]
    fn reno_friendly_alpha_becomes_one_once_w_est_reaches_cwnd_prior() {
        // RFC 9438 §4.3: "Once W_est has grown to reach the cwnd at the time
        // of most recently setting ssthresh -- that is, W_est >= cwnd_prior --
        // the sender SHOULD set α_cubic to 1".
        let mut c = Cubic::new(1000, 10);
        c.on_congestion_event(Instant::ZERO, 10_000);
        assert_eq!(c.cwnd_prior, 10_000.0);
        let mut now = Instant::ZERO;
        let mut rounds = 0;
        while c.cwnd() < 10_000 {
            one_round(&mut c, &mut now);
            rounds += 1;
            assert!(rounds < 20, "W_est never reached cwnd_prior");
        }
        // From here on, one segment per RTT (as Reno): 10 in 10 RTTs, not 5.3.
        let start = c.cwnd();
        for _ in 0..10 {
            one_round(&mut c, &mut now);
        }
        let grown = c.cwnd() - start;
        assert!((9_000..11_500).contains(&grown), "grew {grown}");
    }

    #[test]
    fn undo_restores_cwnd_prior() {
        let mut c = Cubic::new(1000, 10);
        c.on_congestion_event(Instant::ZERO, 10_000);
        c.on_congestion_event(Instant::ZERO, 7_000);
        assert_eq!(c.cwnd_prior, 7_000.0);
        c.on_spurious();
        assert_eq!(c.cwnd_prior, 10_000.0);
    }

    #[test]
    fn hystart_enters_css_on_rtt_increase_and_leaves_slow_start_after_five_rounds() {
        let mut c = Cubic::new(1000, 10);
        let mut now = Instant::ZERO;
        let round = |c: &mut Cubic, rtt_ms: u64, now: &mut Instant| {
            *now = *now + Duration::from_millis(rtt_ms);
            for i in 0..10 {
                c.on_ack(&ack(
                    *now,
                    1000,
                    Some(Duration::from_millis(rtt_ms)),
                    i == 0,
                ));
            }
        };
        round(&mut c, 100, &mut now);
        round(&mut c, 100, &mut now);
        assert_eq!(c.hystart, Hystart::SlowStart);
        assert_eq!(c.cwnd(), 30_000);
        // 100 ms + max(4, min(100/8, 16)) = 112.5 ms: 120 ms is an increase.
        round(&mut c, 120, &mut now);
        assert!(matches!(c.hystart, Hystart::Css { .. }));
        let before = c.cwnd();
        round(&mut c, 120, &mut now);
        // CSS grows a quarter as fast.
        assert_eq!(c.cwnd(), before + 10 * 250);
        for _ in 0..4 {
            round(&mut c, 120, &mut now);
        }
        assert_eq!(c.hystart, Hystart::Done);
        assert!(c.ssthresh() < usize::MAX);
        assert!(!c.in_slow_start());
    }

    #[test]
    fn css_returns_to_slow_start_when_the_rtt_falls_back() {
        let mut c = Cubic::new(1000, 10);
        let mut now = Instant::ZERO;
        for (i, rtt) in [100u64, 100, 120, 90].into_iter().enumerate() {
            now = now + Duration::from_millis(rtt);
            for j in 0..10 {
                c.on_ack(&ack(now, 1000, Some(Duration::from_millis(rtt)), j == 0));
            }
            if i == 2 {
                assert!(matches!(c.hystart, Hystart::Css { .. }));
            }
        }
        assert_eq!(c.hystart, Hystart::SlowStart);
    }

    #[test]
    fn undo_restores_window_and_w_max() {
        let mut c = Cubic::new(1000, 10);
        c.on_rto(Instant::ZERO, 10_000, true);
        c.on_rto(Instant::ZERO, 1_000, false);
        assert_eq!((c.cwnd(), c.ssthresh()), (1000, 7000));
        assert_eq!((c.cwnd(), c.ssthresh()), (1000, 7000));
        c.on_spurious();
        assert_eq!((c.cwnd(), c.ssthresh()), (10_000, usize::MAX));
    }
}
