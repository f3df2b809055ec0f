//! The TCP timestamps option (RFC 7323 §3–§5): the TSval clock, the TS.Recent
//! echo rules, RTT samples from TSecr, and PAWS.

use std::time::Duration;

use crate::Instant;
use crate::seq::Seq;

/// The bytes the option takes in every segment once negotiated: kind, length,
/// TSval, TSecr, padded to 12 (RFC 7323 Appendix A layout, as Linux sends it).
pub(crate) const OPTION_LEN: usize = 12;

/// RFC 7323 §5.5: TS.Recent older than this is no longer trusted by PAWS.
const PAWS_IDLE: Duration = Duration::from_secs(24 * 24 * 3600);

/// The timestamps state of one connection.
#[derive(Debug, Clone)]
pub(crate) struct Timestamps {
    /// Timestamps are sent in every non-RST segment: in SYN-SENT, offered; after
    /// the handshake, negotiated (both SYNs carried the option, RFC 7323 §3.2).
    pub(crate) on: bool,
    /// The random offset added to the clock (RFC 7323 §5.4, §7.1).
    offset: u32,
    /// TS.Recent: the TSval to echo (RFC 7323 §4.3).
    pub(crate) recent: u32,
    /// When TS.Recent was last set, for the 24-day rule (RFC 7323 §5.5).
    recent_age: Instant,
    /// Last.ACK.sent: the ACK field of the last segment sent (RFC 7323 §4.3).
    pub(crate) last_ack_sent: Seq,
    /// The TSval of the last retransmission timeout: echoes older than this
    /// give no RTT sample (see [`Timestamps::rtt_sample`]).
    rtx_floor: Option<u32>,
}

impl Timestamps {
    /// When TS.Recent was last set.
    pub(crate) fn recent_age(&self) -> Instant {
        self.recent_age
    }

    pub(crate) fn new(enabled: bool, offset: u32) -> Timestamps {
        Timestamps {
            on: enabled,
            offset,
            recent: 0,
            recent_age: Instant::ZERO,
            last_ack_sent: Seq(0),
            rtx_floor: None,
        }
    }

    /// Sets the clock offset and dates TS.Recent from the connection's creation.
    pub(crate) fn start(&mut self, now: Instant, offset: u32) {
        self.offset = offset;
        self.recent_age = now;
    }

    /// TSval for a segment sent at `now`: a millisecond clock plus the offset
    /// (RFC 7323 §5.4: between 1 ms and 1 s per tick).
    pub(crate) fn tsval(&self, now: Instant) -> u32 {
        self.offset.wrapping_add(now.as_millis() as u32)
    }

    /// The option of the peer's SYN (or SYN-ACK): negotiated only if both sent it
    /// (RFC 7323 §3.2); its TSval is the first TS.Recent.
    pub(crate) fn on_syn(&mut self, now: Instant, seg: Option<(u32, u32)>, rcv_nxt: Seq) {
        match seg {
            Some((tsval, _)) if self.on => {
                self.recent = tsval;
                self.recent_age = now;
                self.last_ack_sent = rcv_nxt;
            }
            _ => self.on = false,
        }
    }

    /// RFC 7323 §5.3 R1 (PAWS): whether a segment with `tsval` is an old
    /// duplicate to reject. TS.Recent idle for more than 24 days is invalid and
    /// rejects nothing (§5.5).
    pub(crate) fn paws_rejects(&self, now: Instant, tsval: u32) -> bool {
        (tsval.wrapping_sub(self.recent) as i32) < 0 && now - self.recent_age <= PAWS_IDLE
    }

    /// RFC 7323 §4.3 (2) / §5.3 R3: an acceptable segment updates TS.Recent if
    /// its TSval is not older and it starts at or before Last.ACK.sent. After 24
    /// days idle any TSval is taken (§5.5).
    pub(crate) fn update_recent(&mut self, now: Instant, seq: Seq, tsval: u32) {
        let newer = (tsval.wrapping_sub(self.recent) as i32) >= 0;
        let stale = now - self.recent_age > PAWS_IDLE;
        if (newer || stale) && seq.le(self.last_ack_sent) {
            self.recent = tsval;
            self.recent_age = now;
        }
    }

    /// A retransmission timeout at `now` (see [`Timestamps::rtt_sample`]).
    pub(crate) fn on_rto(&mut self, now: Instant) {
        self.rtx_floor = Some(self.tsval(now));
    }

    /// RFC 7323 §4.1: an RTT sample from the TSecr of an ACK that acknowledges
    /// new data; none if the echo is zero or from the future (bogus).
    ///
    /// The Karn-equivalent rule: an echo of a TSval from before the last
    /// retransmission timeout gives no sample. Such an echo comes when ACKs were
    /// lost too: the peer, seeing only old retransmissions, keeps echoing the
    /// TS.Recent of the last in-order segment (§4.3), and the "sample" would
    /// span the whole outage and inflate the RTO to its maximum. The backed-off
    /// RTO stays until a fresh echo gives a valid sample (RFC 6298 §5.7).
    pub(crate) fn rtt_sample(&self, now: Instant, tsecr: u32) -> Option<Duration> {
        if tsecr == 0 {
            return None;
        }
        if let Some(floor) = self.rtx_floor
            && (tsecr.wrapping_sub(floor) as i32) < 0
        {
            return None;
        }
        let elapsed = self.tsval(now).wrapping_sub(tsecr) as i32;
        u64::try_from(elapsed).ok().map(Duration::from_millis)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paws_compares_modulo_2_32_and_expires_after_24_days() {
        let mut ts = Timestamps::new(true, 7);
        ts.on_syn(Instant::from_millis(5), Some((u32::MAX - 1, 0)), Seq(100));
        assert!(ts.on);
        // Past the wrap is newer; before is older.
        assert!(!ts.paws_rejects(Instant::from_millis(6), 3));
        assert!(ts.paws_rejects(Instant::from_millis(6), u32::MAX - 5));
        let later = Instant::from_millis(5) + PAWS_IDLE + Duration::from_millis(1);
        assert!(!ts.paws_rejects(later, u32::MAX - 5));
        // A stale TS.Recent is replaced by an older TSval.
        ts.update_recent(later, Seq(100), 10);
        assert_eq!(ts.recent, 10);
        // Not beyond Last.ACK.sent.
        ts.update_recent(later, Seq(101), 20);
        assert_eq!(ts.recent, 10);
    }

    #[test]
    fn rtt_sample_from_echo() {
        let ts = Timestamps::new(true, 1000);
        let now = Instant::from_millis(500);
        assert_eq!(
            ts.rtt_sample(now, 1000 + 480),
            Some(Duration::from_millis(20))
        );
        assert_eq!(ts.rtt_sample(now, 0), None);
        assert_eq!(ts.rtt_sample(now, 1000 + 600), None);
    }

    #[test]
    fn echo_from_before_a_timeout_gives_no_sample() {
        let mut ts = Timestamps::new(true, 0);
        ts.on_rto(Instant::from_millis(1000));
        let now = Instant::from_millis(1100);
        assert_eq!(ts.rtt_sample(now, 900), None);
        assert_eq!(ts.rtt_sample(now, 1000), Some(Duration::from_millis(100)));
    }

    #[test]
    fn syn_without_option_turns_timestamps_off() {
        let mut ts = Timestamps::new(true, 0);
        ts.on_syn(Instant::ZERO, None, Seq(1));
        assert!(!ts.on);
        let mut ts = Timestamps::new(false, 0);
        ts.on_syn(Instant::ZERO, Some((1, 0)), Seq(1));
        assert!(!ts.on);
    }
}
