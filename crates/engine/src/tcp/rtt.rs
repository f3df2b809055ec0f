//! Round-trip time estimation and the retransmission timeout (RFC 6298).

use std::time::Duration;

/// SRTT, RTTVAR and RTO of one connection, per RFC 6298 §2.
#[derive(Debug, Clone)]
pub(crate) struct RttEstimator {
    srtt: Option<Duration>,
    rttvar: Duration,
    rto: Duration,
    min_rto: Duration,
    max_rto: Duration,
    /// The largest SRTT so far, for tests that bound it by the path's RTT.
    #[cfg(test)]
    max_srtt: Duration,
}

/// RFC 6298 §2: the clock granularity G.
const GRANULARITY: Duration = Duration::from_millis(1);

/// RFC 6298 §5.7: the RTO once data flows after a retransmitted SYN.
const SYN_FALLBACK_RTO: Duration = Duration::from_secs(3);

impl RttEstimator {
    pub(crate) fn new(initial_rto: Duration, min_rto: Duration, max_rto: Duration) -> Self {
        RttEstimator {
            srtt: None,
            rttvar: Duration::ZERO,
            rto: initial_rto.clamp(min_rto, max_rto),
            min_rto,
            max_rto,
            #[cfg(test)]
            max_srtt: Duration::ZERO,
        }
    }

    /// Takes one RTT measurement R (RFC 6298 §2.2 and §2.3).
    pub(crate) fn sample(&mut self, r: Duration) {
        match self.srtt {
            None => {
                // §2.2: SRTT <- R, RTTVAR <- R/2.
                self.srtt = Some(r);
                self.rttvar = r / 2;
            }
            Some(srtt) => {
                // §2.3: RTTVAR <- 3/4 RTTVAR + 1/4 |SRTT - R|; SRTT <- 7/8 SRTT + 1/8 R.
                let delta = srtt.abs_diff(r);
                self.rttvar = (self.rttvar * 3 + delta) / 4;
                self.srtt = Some((srtt * 7 + r) / 8);
            }
        }
        let srtt = self.srtt.unwrap_or(r);
        #[cfg(test)]
        {
            self.max_srtt = self.max_srtt.max(srtt);
        }
        // RTO <- SRTT + max(G, K*RTTVAR), K = 4; §2.4 and §2.5 bound it.
        self.rto = (srtt + GRANULARITY.max(self.rttvar * 4)).clamp(self.min_rto, self.max_rto);
    }

    /// RFC 6298 §5.7: the SYN or SYN-ACK was retransmitted and no RTT was
    /// measured: the RTO for data is raised to 3 s if it is smaller.
    pub(crate) fn syn_fallback(&mut self) {
        if self.srtt.is_none() {
            self.rto = self.rto.max(SYN_FALLBACK_RTO).min(self.max_rto);
        }
    }

    /// The current retransmission timeout, before any backoff.
    #[cfg(test)]
    pub(crate) fn rto(&self) -> Duration {
        self.rto
    }

    /// The largest SRTT so far.
    #[cfg(test)]
    pub(crate) fn max_srtt(&self) -> Duration {
        self.max_srtt
    }

    /// The smoothed RTT, once measured.
    pub(crate) fn srtt(&self) -> Option<Duration> {
        self.srtt
    }

    /// The RTT variation.
    pub(crate) fn rttvar(&self) -> Duration {
        self.rttvar
    }

    /// The timeout after `backoff` doublings (RFC 6298 §5.5), capped at the maximum.
    pub(crate) fn backed_off(&self, backoff: u32) -> Duration {
        self.rto
            .checked_mul(1u32 << backoff.min(16))
            .unwrap_or(self.max_rto)
            .min(self.max_rto)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn first_and_later_samples_follow_rfc_6298() {
        let mut e = RttEstimator::new(ms(1000), ms(200), ms(120_000));
        assert_eq!(e.rto(), ms(1000));
        e.sample(ms(100));
        // SRTT 100, RTTVAR 50, RTO = 100 + 200 = 300.
        assert_eq!(e.srtt(), Some(ms(100)));
        assert_eq!(e.rto(), ms(300));
        e.sample(ms(200));
        // RTTVAR = (150 + 100)/4 = 62.5; SRTT = (700 + 200)/8 = 112.5; RTO = 362.5.
        assert_eq!(e.rto(), Duration::from_micros(362_500));
    }

    #[test]
    fn rto_respects_minimum_and_backoff_cap() {
        let mut e = RttEstimator::new(ms(1000), ms(200), ms(60_000));
        e.sample(ms(1));
        assert_eq!(e.rto(), ms(200));
        assert_eq!(e.backed_off(1), ms(400));
        assert_eq!(e.backed_off(30), ms(60_000));
    }
}
