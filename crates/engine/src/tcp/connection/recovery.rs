//! Loss recovery of a connection: NewReno fast recovery without SACK
//! (RFC 6582), SACK-based recovery (RFC 6675) on the scoreboard of
//! `tcp/sack.rs`, the receiver's SACK and D-SACK blocks (RFC 2018, RFC 2883),
//! undoing spurious reductions on D-SACK (RFC 2883 §4), congestion window
//! validation (RFC 7661) and the round trips HyStart++ counts.
//!
//! These are `impl Tcb` methods called from the ACK, data, timeout and output
//! paths of `connection.rs`; the window arithmetic itself is the
//! [`CongestionControl`](crate::tcp::cc::CongestionControl)'s.

use tracing::debug;

/// The non-validated period (RFC 7661 §4.4): five minutes.
const NVP: std::time::Duration = std::time::Duration::from_secs(300);

use super::{Ctl, Outbound, Tcb};
use crate::seq::Seq;
use crate::tcp::cc::{AckEvent, CongestionAlgorithm, CongestionControl, initial_window};
use crate::tcp::rack::Rack;
use crate::tcp::sack::{DUP_THRESH, SackReporter, Scoreboard};
use crate::{Config, Instant, TcpInfo};

/// The loss-recovery state of a connection, as Linux's `tcpi_ca_state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CaState {
    /// Nothing amiss.
    #[default]
    Open,
    /// Duplicate ACKs or SACKs seen, not (yet) a loss.
    Disorder,
    /// Fast recovery after a detected loss (RFC 6582, RFC 6675).
    Recovery,
    /// After a retransmission timeout, until the data outstanding then is acknowledged.
    Loss,
}

/// The loss-recovery state of one connection.
#[derive(Debug)]
pub(crate) struct Recovery {
    /// We offer SACK (RFC 2018 §2).
    pub sack_ok: bool,
    /// Both sides offered it.
    pub sack_on: bool,
    scoreboard: Scoreboard,
    sack_rx: SackReporter,
    /// RFC 6675 HighRxt: the end of the highest retransmission.
    high_rxt: Seq,
    /// RFC 6675 RescueRxt.
    rescue_rxt: Option<Seq>,
    ca_state: CaState,
    /// In `Loss` until SND.UNA reaches this (SND.MAX at the timeout).
    loss_end: Seq,
    /// The window in fast recovery: without SACK, inflated by duplicate ACKs
    /// (RFC 6582 §3.2 steps 2, 3 and 5); with SACK, `pipe` plus what
    /// Proportional Rate Reduction allows (RFC 6937 §3). The controller's
    /// cwnd otherwise.
    recovery_cwnd: Option<usize>,
    /// Proportional Rate Reduction's counters during SACK recovery (RFC 6937).
    prr: Option<Prr>,
    /// The end of the current round trip (SND.MAX when it began).
    round_end: Seq,
    /// The most bytes in flight in this round trip and the one before (RFC 7661's pipeACK, roughly).
    flight_hwm: usize,
    last_round_hwm: usize,
    /// When the current non-validated period began (RFC 7661 §4.3: less
    /// than half of cwnd in use, or nothing in flight at all); `None` while
    /// the window is validated.
    nvp_since: Option<Instant>,
    /// The initial window in segments (RFC 6928), the floor at the end of a
    /// non-validated period.
    initial_segments: usize,
    /// Retransmitted segments of the last reduction not yet D-SACKed; when
    /// all are, the reduction was spurious (RFC 2883 §4). `None`: nothing to undo.
    undo_retrans: Option<u32>,
    delivered: u64,
    lost: u64,
    reordering: u32,
    spurious_undos: u64,
    tail_loss_probes: u64,

    // RACK-TLP (RFC 8985, tcp/rack.rs).
    rack: Rack,
    /// Every unSACKed byte below this was marked lost by RACK.
    rack_lost_end: Seq,
    /// RACK's reordering timer (§6.2 step 5).
    reo_timer: Option<Instant>,
    /// What the retransmission timer stands for now.
    timer_mode: TimerMode,
    /// A tail loss probe is to be sent (§7.3).
    tlp_pending: bool,
    /// The probe is out: TLP.end_seq, whether it was a retransmission, and
    /// whether a D-SACK showed it needless (§7.4).
    tlp_end: Option<Seq>,
    tlp_retrans: bool,
    tlp_dsacked: bool,
    /// The peer's longest delayed ACK, added to the PTO of a lone segment.
    max_ack_delay: std::time::Duration,

    /// F-RTO's progress after a timeout (RFC 5682).
    frto: Frto,
    /// An RTT sample from RACK's record of the last ACK.
    ack_rtt: Option<std::time::Duration>,

    // Pacing.
    pacing: bool,
    /// When the next paced segment may go.
    next_send: Option<Instant>,
}

/// Proportional Rate Reduction (RFC 6937 §3): in recovery the sender sends
/// ssthresh/RecoverFS of what is delivered, so the window comes down to
/// ssthresh smoothly across the round trip instead of stopping at once (RFC
/// 6675's cwnd = ssthresh) and then bursting; once `pipe` is below ssthresh
/// the slow-start reduction bound (PRR-SSRB) lets it grow back, by at most
/// what was delivered plus one segment per ACK.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Prr {
    /// RecoverFS: the bytes outstanding, not SACKed, when recovery began.
    recover_fs: usize,
    /// prr_delivered: bytes delivered (cumulatively ACKed or SACKed) since.
    delivered: usize,
    /// prr_out: bytes sent (retransmitted or new) since.
    out: usize,
}

impl Prr {
    /// sndcnt for an ACK that delivered `delivered_data` (already counted in
    /// `self.delivered`), with `pipe` bytes in the network (RFC 6937 §3.1).
    /// `safe`: the ACK advanced SND.UNA and showed no new loss; only then may
    /// the slow-start reduction bound add a segment (the SafeACK rule of
    /// draft-ietf-tcpm-prr-rfc6937bis, as Linux).
    fn sndcnt(
        &self,
        pipe: usize,
        ssthresh: usize,
        delivered_data: usize,
        mss: usize,
        safe: bool,
    ) -> usize {
        if pipe > ssthresh {
            // Proportional part: CEIL(prr_delivered · ssthresh / RecoverFS) − prr_out.
            let fs = self.recover_fs.max(1) as u128;
            let target = (self.delivered as u128 * ssthresh as u128).div_ceil(fs);
            (target as usize).saturating_sub(self.out)
        } else {
            // PRR-SSRB: MIN(ssthresh − pipe, MAX(prr_delivered − prr_out, DeliveredData) + MSS).
            let limit = self.delivered.saturating_sub(self.out).max(delivered_data)
                + if safe { mss } else { 0 };
            (ssthresh - pipe).min(limit)
        }
    }
}

/// The steps of F-RTO (RFC 5682 §2.1) after a retransmission timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Frto {
    /// Not running: conventional recovery.
    Off,
    /// The first segment was retransmitted; waiting for the first ACK.
    AwaitFirstAck { recover: Seq },
    /// Two new segments went out instead of retransmissions; waiting for
    /// the second ACK to tell a spurious timeout from a real one.
    AwaitSecondAck,
}

/// What the connection's retransmission timer is armed for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TimerMode {
    /// The RTO (RFC 6298).
    Rto,
    /// A tail loss probe (RFC 8985 §7.2).
    Probe,
    /// RACK's reordering window (RFC 8985 §6.2 step 5).
    Reorder,
}

impl Recovery {
    pub(crate) fn new(cfg: &Config, iss: Seq) -> Recovery {
        Recovery {
            sack_ok: cfg.sack,
            sack_on: false,
            scoreboard: Scoreboard::default(),
            sack_rx: SackReporter::default(),
            high_rxt: iss,
            rescue_rxt: None,
            ca_state: CaState::Open,
            loss_end: iss,
            recovery_cwnd: None,
            prr: None,
            round_end: iss,
            flight_hwm: 0,
            last_round_hwm: 0,
            nvp_since: None,
            initial_segments: cfg.initial_window_segments,
            undo_retrans: None,
            delivered: 0,
            lost: 0,
            reordering: DUP_THRESH as u32,
            spurious_undos: 0,
            tail_loss_probes: 0,
            rack: Rack::default(),
            rack_lost_end: iss,
            reo_timer: None,
            timer_mode: TimerMode::Rto,
            tlp_pending: false,
            tlp_end: None,
            tlp_retrans: false,
            tlp_dsacked: false,
            // RFC 8985 §7.2: WCDelAckT, 200 ms, unless the peer is known better.
            max_ack_delay: std::time::Duration::from_millis(200),
            ack_rtt: None,
            frto: Frto::Off,
            pacing: cfg.pacing,
            next_send: None,
        }
    }
}

impl Tcb {
    /// The congestion window in use: inflated during NewReno fast recovery.
    pub(crate) fn cwnd(&self) -> usize {
        self.rec.recovery_cwnd.unwrap_or_else(|| self.cc.cwnd())
    }

    /// RFC 7661 §4.4: once a non-validated period has lasted five minutes,
    /// the unused window is halved (down to the initial window) and ssthresh
    /// keeps three quarters of it; again for each further five minutes. Run
    /// on every ACK and before new data goes out, so a sender that comes back
    /// after a long idle spell does not burst its old window.
    pub(super) fn end_of_nvp(&mut self, now: Instant) {
        let Some(since) = self.rec.nvp_since else {
            return;
        };
        let floor = initial_window(self.snd_mss, self.rec.initial_segments);
        let mut since = since;
        while now.saturating_duration_since(since) >= NVP {
            since = since + NVP;
            if self.cc.cwnd() <= floor {
                since = now;
                break;
            }
            self.cc.end_of_nvp(floor);
            debug!(parent: &self.span, cwnd = self.cc.cwnd(), "end of a non-validated period");
        }
        self.rec.nvp_since = Some(since);
    }

    /// RFC 7661 §4.4.1: a loss during a non-validated period is answered
    /// from the volume in use (the most in flight over the last round trips,
    /// or at the loss), not from a window the sender was not filling; the
    /// period ends with it.
    fn limit_cwnd_in_nvp(&mut self, flight: usize) {
        if self.rec.nvp_since.take().is_some() {
            let used = self.rec.flight_hwm.max(self.rec.last_round_hwm).max(flight);
            self.cc.limit_cwnd(used);
        }
    }

    /// The congestion control algorithm in use.
    pub(crate) fn congestion(&self) -> CongestionAlgorithm {
        self.cc.algorithm()
    }

    /// Switches to another controller, which takes over the window.
    pub(crate) fn replace_controller(&mut self, mut cc: Box<dyn CongestionControl>) {
        cc.take_over(self.cc.cwnd(), self.cc.ssthresh());
        cc.set_paced(self.rec.pacing);
        self.cc = cc;
    }

    /// Bytes SACKed below SND.NXT: they have left the network, so they free
    /// window for what is sent from SND.NXT.
    pub(super) fn sacked_bytes(&self) -> usize {
        let below = (self.snd_nxt - self.snd_una).max(0) as usize;
        below
            - self
                .rec
                .scoreboard
                .unsacked_bytes(self.snd_una, self.snd_nxt)
                .min(below)
    }

    /// An RTT sample for the RTO estimator from the send time of the oldest
    /// segment the ACK being processed delivered (see [`Rack::seq_rtt`]);
    /// RACK follows the segments of SACK connections only.
    pub(super) fn segment_rtt(&self) -> Option<std::time::Duration> {
        if self.rec.sack_on {
            self.rec.rack.seq_rtt()
        } else {
            None
        }
    }

    /// Whether SACK-based recovery (RFC 6675) decides what to send.
    pub(super) fn sack_recovery(&self) -> bool {
        self.rec.sack_on && self.recover.is_some()
    }

    // ----- The ACK path -----

    /// Takes the SACK blocks of an acceptable ACK for `ack` (RFC 6675 §5,
    /// RFC 2883 §4). Returns the bytes newly SACKed.
    pub(super) fn on_sack_blocks(
        &mut self,
        now: Instant,
        ack: Seq,
        blocks: &[Option<(Seq, Seq)>; 3],
    ) -> usize {
        if !self.rec.sack_on {
            return 0;
        }
        let blocks: Vec<(Seq, Seq)> = blocks.iter().flatten().copied().collect();
        let una = ack.max(self.snd_una);
        let before = self.rec.scoreboard.sacked_bytes();
        let update = self.rec.scoreboard.on_ack(una, self.snd_max, &blocks);
        let after = self.rec.scoreboard.sacked_bytes();
        // Delivered: newly SACKed, plus newly cumulatively acknowledged bytes
        // that were not SACKed already.
        let trimmed = (before + update.newly_sacked).saturating_sub(after);
        let cum = (una - self.snd_una).max(0) as usize;
        self.rec.delivered += (update.newly_sacked + cum.saturating_sub(trimmed)) as u64;
        if let Some((left, right)) = update.dsack {
            self.on_dsack(left, right);
        }
        if self.rec.scoreboard.sacked_end(una).is_some() {
            // SND.UNA itself SACKed but not acknowledged: the receiver
            // dropped data it had SACKed (RFC 2018 §8): forget the blocks.
            debug!(parent: &self.span, "SACK reneging");
            self.rec.scoreboard.clear();
        }
        // RACK's view of what was delivered (RFC 8985 §6.2), and an RTT
        // sample per ACK for the controller.
        let any_sacked = !self.rec.scoreboard.is_empty();
        let scoreboard = &self.rec.scoreboard;
        self.rec.ack_rtt = self
            .rec
            .rack
            .on_ack(una, now, any_sacked, |l, r| scoreboard.covers(l, r));
        update.newly_sacked
    }

    /// A D-SACK for [left, right): if it covers data we retransmitted, one
    /// retransmission was needless; when all of the last episode's were, the
    /// reduction is undone (RFC 2883 §4, as Linux's `tcp_try_undo_dsack`).
    fn on_dsack(&mut self, left: Seq, right: Seq) {
        debug!(parent: &self.span, %left, %right, "D-SACK");
        self.rec.rack.on_dsack();
        if let Some(end) = self.rec.tlp_end
            && right.le(end)
            && self.rec.tlp_retrans
            && end.le(right + (self.snd_mss as u32))
        {
            // RFC 8985 §7.4.1: the probe itself was a duplicate: no loss.
            self.rec.tlp_dsacked = true;
        }
        if !left.lt(self.rec.high_rxt.max(self.snd_una)) {
            return;
        }
        // A needless retransmission means the network reordered (or delayed)
        // the original: count it as reordering seen.
        self.rec.reordering = self.rec.reordering.max(DUP_THRESH as u32 + 1);
        if let Some(n) = self.rec.undo_retrans.as_mut() {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.rec.undo_retrans = None;
                self.undo_reduction();
            }
        }
    }

    /// Undoes the last window reduction as spurious.
    fn undo_reduction(&mut self) {
        debug!(parent: &self.span, "spurious retransmission: window reduction undone");
        self.cc.on_spurious();
        self.rec.recovery_cwnd = None;
        self.rec.prr = None;
        self.rec.spurious_undos += 1;
        // As Linux's undo: recovery (or loss) is over; what is still missing
        // is found again by duplicate ACKs, SACKs or the timer.
        self.recover = None;
        self.rtx_pending = false;
        self.dup_acks = 0;
        self.rec.rescue_rxt = None;
        self.rec.ca_state = if self.rec.scoreboard.is_empty() {
            CaState::Open
        } else {
            CaState::Disorder
        };
    }

    /// The congestion-control part of a new cumulative ACK (RFC 5681, RFC 6582,
    /// RFC 6675), after SND.UNA moved to `ack`.
    pub(super) fn on_ack_recovery(
        &mut self,
        now: Instant,
        ack: Seq,
        acked: usize,
        data_acked: usize,
        rtt: Option<std::time::Duration>,
    ) {
        if !self.rec.sack_on {
            self.rec.delivered += data_acked as u64;
        }
        if self.rec.high_rxt.lt(self.snd_una) {
            self.rec.high_rxt = self.snd_una;
        }
        if self.rec.rack_lost_end.lt(self.snd_una) {
            self.rec.rack_lost_end = self.snd_una;
        }
        let round_start = ack.ge(self.rec.round_end);
        if round_start {
            self.rec.last_round_hwm = self.rec.flight_hwm;
            self.rec.flight_hwm = self.flight();
            self.rec.round_end = self.snd_max;
        }
        match self.recover {
            Some(recover) if ack.lt(recover) => {
                if !self.rec.sack_on {
                    // RFC 6582 §3.2 step 5, partial ACK: deflate by the amount
                    // acknowledged, add back one SMSS if that was at least one
                    // SMSS, and retransmit the next hole at once.
                    let mss = self.snd_mss;
                    if let Some(w) = self.rec.recovery_cwnd.as_mut() {
                        *w = w.saturating_sub(acked);
                        if acked >= mss {
                            *w += mss;
                        }
                        *w = (*w).max(mss);
                    }
                    self.rtx_pending = true;
                }
                // With SACK (RFC 6675 §5) recovery just goes on; `pipe` falls.
            }
            Some(_) => {
                // A full ACK ends recovery: RFC 6582 §3.2 step 4 (option 2,
                // cwnd = min(ssthresh, FlightSize + SMSS)) without SACK; with
                // SACK cwnd is ssthresh already (RFC 6675 §5).
                self.recover = None;
                let limit = if self.rec.sack_on {
                    usize::MAX
                } else {
                    self.flight().max(self.snd_mss) + self.snd_mss
                };
                self.cc.on_recovery_end(now, limit);
                self.rec.recovery_cwnd = None;
                self.rec.prr = None;
                self.rec.rescue_rxt = None;
                self.rec.ca_state = CaState::Open;
            }
            None => {
                match self.rec.ca_state {
                    CaState::Loss if ack.ge(self.rec.loss_end) => self.rec.ca_state = CaState::Open,
                    CaState::Disorder if self.rec.scoreboard.is_empty() => {
                        self.rec.ca_state = CaState::Open;
                    }
                    _ => {}
                }
                // RFC 7661 §4.3: the window grows only while it is used; a
                // sender limited by the application or by the peer's window
                // keeps cwnd at (about) twice what it has in flight.
                let used = self.rec.flight_hwm.max(self.rec.last_round_hwm);
                let app_limited = used.saturating_mul(2) < self.cc.cwnd();
                // RFC 7661 §4.3: the non-validated period runs while the
                // window is not used; a window in use validates it, and with
                // nothing left in flight a new idle period starts.
                if !app_limited {
                    self.rec.nvp_since = None;
                }
                if app_limited || self.snd_una == self.snd_max {
                    self.rec.nvp_since.get_or_insert(now);
                }
                self.end_of_nvp(now);
                let rtt = rtt.or(self.rec.ack_rtt.take());
                self.cc.on_ack(&AckEvent {
                    acked,
                    rtt,
                    now,
                    app_limited,
                    round_start,
                });
            }
        }
    }

    /// A duplicate ACK (RFC 5681 §3.2; with SACK, RFC 6675 §5): the third, or
    /// SACKs that make SND.UNA lost, start fast retransmit.
    pub(super) fn on_dup_ack(&mut self, now: Instant) {
        self.dup_acks += 1;
        if self.recover.is_some() {
            if !self.rec.sack_on
                && let Some(w) = self.rec.recovery_cwnd.as_mut()
            {
                // RFC 6582 §3.2 step 3: each further duplicate inflates cwnd.
                *w += self.snd_mss;
            }
            return;
        }
        if self.rec.ca_state == CaState::Loss {
            // After a timeout the retransmissions are under way already
            // (RFC 6582 §3.2 step 1 keeps "recover" at SND.MAX for this).
            return;
        }
        // With SACK, RACK (RFC 8985 §6.2, in `after_ack_recovery`) detects
        // losses by time, not by counting duplicates.
        let start = !self.rec.sack_on && self.dup_acks as usize == DUP_THRESH;
        if start {
            self.enter_recovery(now);
        } else {
            self.rec.ca_state = CaState::Disorder;
        }
    }

    /// Fast retransmit and the start of fast recovery (RFC 6582 §3.2 step 2,
    /// RFC 6675 §5 steps 1–3).
    fn enter_recovery(&mut self, now: Instant) {
        debug!(parent: &self.span, snd_una = %self.snd_una, sack = self.rec.sack_on, "fast retransmit");
        self.info.fast_retransmits += 1;
        let flight = self.flight();
        self.limit_cwnd_in_nvp(flight);
        self.cc.on_congestion_event(now, flight);
        self.recover = Some(self.snd_max);
        self.rec.ca_state = CaState::Recovery;
        self.rec.undo_retrans = Some(0);
        self.rec.tlp_end = None;
        self.rec.tlp_pending = false;
        self.rtx_pending = true;
        self.rtt_timing = None;
        if self.rec.sack_on {
            self.rec.high_rxt = self.snd_una;
            self.rec.rescue_rxt = None;
            self.snd_nxt = self.snd_max;
            // RFC 6937 §3: RecoverFS, less what the receiver holds already
            // (its delivery was counted when it was SACKed).
            let recover_fs = flight.saturating_sub(self.rec.scoreboard.sacked_bytes());
            self.rec.prr = Some(Prr {
                recover_fs,
                delivered: 0,
                out: 0,
            });
            self.rec.recovery_cwnd = Some(self.sack_pipe());
        } else {
            // RFC 6582 §3.2 step 2: cwnd = ssthresh + 3·SMSS.
            self.rec.recovery_cwnd = Some(self.cc.cwnd() + DUP_THRESH * self.snd_mss);
        }
    }

    /// Whether a timeout starts a new loss episode: not when the window was
    /// already reduced for this one (a repeated timeout, or one during fast
    /// recovery), as Linux's `tcp_enter_loss`.
    pub(super) fn rto_is_first(&self) -> bool {
        !matches!(self.rec.ca_state, CaState::Recovery | CaState::Loss)
    }

    /// Loss-recovery bookkeeping of a retransmission timeout (RFC 6298 §5.4,
    /// RFC 6675 §5.1): the controller has reduced the window already.
    pub(super) fn on_rto_recovery(&mut self, _now: Instant) {
        // F-RTO (RFC 5682 §2.1 step 1) after the first timeout of an episode
        // (with SACK too, as Linux's default; D-SACK undo works as well).
        self.rec.frto = if self.rto_is_first() {
            Frto::AwaitFirstAck {
                recover: self.snd_max,
            }
        } else {
            Frto::Off
        };
        let top = self.snd_max.min(self.data_end());
        self.rec.lost += self.rec.scoreboard.unsacked_bytes(self.snd_una, top) as u64;
        if self.rec.ca_state != CaState::Loss {
            self.rec.undo_retrans = Some(0);
        }
        self.rec.ca_state = CaState::Loss;
        self.rec.loss_end = self.snd_max;
        // RFC 8985 §6.3: the timeout marks everything outstanding lost, so
        // a reordering deadline computed before it stands for nothing now
        // (left, it would later arm the timer in the past).
        self.rec.reo_timer = None;
        self.rec.recovery_cwnd = None;
        self.rec.prr = None;
        self.rec.high_rxt = self.snd_una;
        self.rec.rescue_rxt = None;
        self.rec.tlp_end = None;
        self.rec.tlp_pending = false;
    }

    // ----- F-RTO (RFC 5682) -----

    /// F-RTO's steps 2 and 3 on an acceptable ACK after a timeout.
    fn frto_on_ack(&mut self, advanced: bool, dup: bool) {
        match self.rec.frto {
            Frto::Off => {}
            Frto::AwaitFirstAck { recover } => {
                // Step 2: a duplicate ACK, or one for everything outstanding,
                // decides nothing: conventional recovery (step 2a).
                if dup || self.snd_una.ge(recover) {
                    self.rec.frto = Frto::Off;
                    return;
                }
                if !advanced {
                    return;
                }
                // Step 2b: new data acknowledged, not the retransmission
                // alone perhaps: send two new segments instead of going back.
                // Without new data to send, or room in the peer's window,
                // the recommended action is conventional recovery.
                let data_end = self.data_end();
                let wnd_end = self.snd_una + self.snd_wnd as usize;
                if self.snd_max.lt(data_end) && self.snd_max.lt(wnd_end) {
                    self.snd_nxt = self.snd_max;
                    self.rec.recovery_cwnd = Some(self.flight() + 2 * self.snd_mss);
                    self.rec.frto = Frto::AwaitSecondAck;
                } else {
                    self.rec.frto = Frto::Off;
                }
            }
            Frto::AwaitSecondAck => {
                if !(dup || advanced) {
                    return;
                }
                self.rec.frto = Frto::Off;
                self.rec.recovery_cwnd = None;
                self.rec.prr = None;
                if advanced {
                    // Step 3b: data never retransmitted was acknowledged: the
                    // timeout was spurious (RFC 5682 §2.1); undo the reduction
                    // (the response of RFC 4015 §4).
                    debug!(parent: &self.span, "F-RTO: spurious timeout");
                    self.rec.undo_retrans = None;
                    self.undo_reduction();
                    self.rec.ca_state = CaState::Open;
                } else {
                    // Step 3a: a duplicate ACK: the timeout was real; go back
                    // to the first unacknowledged segment.
                    debug!(parent: &self.span, "F-RTO: timeout was real");
                    self.snd_nxt = self.snd_una;
                }
            }
        }
    }

    // ----- RACK-TLP (RFC 8985) -----

    /// The lowest sequence number not (yet) presumed lost: RFC 6675's IsLost
    /// and RACK's marks together.
    fn lost_boundary(&self) -> Seq {
        let sack = self
            .rec
            .scoreboard
            .lost_boundary(self.snd_una, self.snd_mss);
        sack.max(self.rec.rack_lost_end).min(self.snd_max)
    }

    /// After an acceptable ACK: RACK's loss detection (RFC 8985 §6.2) and
    /// re-arming the loss-detection timer. `delivered` says whether the ACK
    /// acknowledged or SACKed anything new.
    pub(super) fn after_ack_recovery(
        &mut self,
        now: Instant,
        ack: Seq,
        old_una: Seq,
        dup: bool,
        delivered: bool,
    ) {
        self.frto_on_ack(self.snd_una.gt(old_una), dup);
        if !self.rec.sack_on || !self.state.is_synchronized() {
            return;
        }
        self.tlp_process_ack(now, ack, dup);
        if self.rec.scoreboard.is_empty() && self.rec.ca_state == CaState::Open {
            // Nothing SACKed: all that was delivered was acknowledged in
            // order, so nothing sent before it can be outstanding.
            self.rec.reo_timer = None;
        } else {
            self.rack_detect(now);
        }
        // RFC 6298 §5.3: the timer restarts on an ACK that acknowledges new
        // data, and a probe is scheduled anew on one that delivers something
        // (RFC 8985 §7.2; Linux's FLAG_SET_XMIT_TIMER). An ACK that delivers
        // nothing, as the peer's data segments repeating one acknowledgment
        // number, may bring the timer earlier (a reordering deadline) but
        // never later: a peer sending data without acknowledging ours would
        // otherwise put the probe and the retransmission off for as long as
        // its data flows.
        self.rearm_loss_timer(now, delivered);
    }

    /// RFC 8985 §7.4: did the probe repair a loss? Not if it came back as a
    /// D-SACK, or was new data; yes once the ACK passes it, or a duplicate
    /// ACK without SACK information answers it.
    fn tlp_process_ack(&mut self, now: Instant, ack: Seq, dup: bool) {
        let Some(end) = self.rec.tlp_end else {
            return;
        };
        if !ack.ge(end) {
            return;
        }
        if !self.rec.tlp_retrans || self.rec.tlp_dsacked {
            self.rec.tlp_end = None;
            return;
        }
        let repaired = ack.gt(end) || (dup && self.rec.scoreboard.is_empty());
        if repaired {
            self.rec.tlp_end = None;
            if self.recover.is_none() {
                debug!(parent: &self.span, "tail loss probe repaired a loss");
                self.limit_cwnd_in_nvp(self.flight());
                self.cc.on_congestion_event(now, self.flight());
                self.rec.undo_retrans = None;
            }
        }
    }

    /// RACK_detect_loss and what follows: lost segments are retransmitted, in
    /// fast recovery (started here if need be).
    fn rack_detect(&mut self, now: Instant) {
        if self.snd_una == self.snd_max {
            self.rec.reo_timer = None;
            return;
        }
        let in_recovery = matches!(self.rec.ca_state, CaState::Recovery | CaState::Loss);
        let sacked_segments = self.rec.scoreboard.sacked_bytes() / self.snd_mss.max(1);
        let srtt = self.rtt.srtt().unwrap_or(std::time::Duration::from_secs(1));
        let reo_wnd = self.rec.rack.reo_wnd(in_recovery, sacked_segments, srtt);
        let (lost, timer) = self.rec.rack.detect_loss(now, reo_wnd);
        self.rec.reo_timer = timer;
        if lost.is_empty() {
            return;
        }
        for &(left, right) in &lost {
            let unsacked = self.rec.scoreboard.unsacked_bytes(left, right);
            self.rec.lost += unsacked as u64;
            if self.rec.rack_lost_end.lt(right) {
                self.rec.rack_lost_end = right;
            }
            if left.lt(self.rec.high_rxt) && left.ge(self.snd_una) {
                // A retransmission lost again: NextSeg may send it once more.
                self.rec.high_rxt = left;
            }
        }
        debug!(parent: &self.span, segments = lost.len(), "RACK: lost");
        if self.recover.is_none() && self.rec.ca_state != CaState::Loss {
            self.enter_recovery(now);
        }
    }

    /// Arms the retransmission timer for the earliest of the RTO, RACK's
    /// reordering timer and a tail loss probe (RFC 8985 §6.2, §7.2). Unless
    /// `may_postpone`, a timer already armed is only ever brought earlier.
    fn rearm_loss_timer(&mut self, now: Instant, may_postpone: bool) {
        use super::Timer;
        if self.snd_una == self.snd_max {
            self.rec.timer_mode = TimerMode::Rto;
            return;
        }
        let rto_at = match (self.rec.timer_mode, self.timers[Timer::Retransmit as usize]) {
            (TimerMode::Rto, Some(at)) => at,
            _ => now + self.rtt.backed_off(self.backoff),
        };
        let (mut at, mut mode) = (rto_at, TimerMode::Rto);
        // A reordering deadline already passed was computed for segments
        // the last detection saw (RFC 8985 §6.2); one later than `now` only
        // is armed, so the timer never stands in the past.
        if let Some(t) = self.rec.reo_timer
            && t > now
            && t < at
        {
            (at, mode) = (t, TimerMode::Reorder);
        }
        // §7.2: a probe is scheduled in the open state, one at a time, and
        // never after the RTO would fire ("If Now() + PTO >
        // TCP_RTO_expiration(): PTO = TCP_RTO_expiration() - Now()", as
        // Linux's `tcp_schedule_loss_probe`): at the RTO's time a probe goes
        // out instead, and the RTO is restarted (§7.3) without a backoff.
        if self.rec.ca_state == CaState::Open && self.rec.tlp_end.is_none() && self.backoff == 0 {
            let one = self.flight() <= self.snd_mss;
            let pto = (now + Rack::pto(self.rtt.srtt(), one, self.rec.max_ack_delay)).min(rto_at);
            if pto <= at {
                (at, mode) = (pto, TimerMode::Probe);
            }
        }
        if !may_postpone && self.timers[Timer::Retransmit as usize].is_some_and(|armed| at > armed)
        {
            return;
        }
        self.rec.timer_mode = mode;
        self.set_timer(Timer::Retransmit, Some(at));
    }

    /// The retransmission timer fired: handles a probe or reordering timeout
    /// and returns true, or returns false for a real RTO.
    pub(super) fn on_loss_timer(&mut self, now: Instant) -> bool {
        let mode = std::mem::replace(&mut self.rec.timer_mode, TimerMode::Rto);
        match mode {
            TimerMode::Rto => false,
            TimerMode::Reorder => {
                self.rack_detect(now);
                // As Linux's `tcp_rack_reo_timeout`: PRR as if one segment
                // had been delivered (no ACK came), not a safe ACK.
                self.prr_on_ack(self.snd_mss, false);
                self.rearm_loss_timer(now, true);
                if !self.timer_armed(super::Timer::Retransmit) {
                    self.set_timer(
                        super::Timer::Retransmit,
                        Some(now + self.rtt.backed_off(self.backoff)),
                    );
                }
                true
            }
            TimerMode::Probe => {
                // §7.3: send one probe, then restart the RTO.
                self.rec.tlp_pending = true;
                self.set_timer(
                    super::Timer::Retransmit,
                    Some(now + self.rtt.backed_off(self.backoff)),
                );
                true
            }
        }
    }

    /// Whether a probe waits to go out.
    pub(super) fn rec_tlp_pending(&self) -> bool {
        self.rec.tlp_pending
    }

    /// Whether loss recovery has something to send.
    pub(super) fn recovery_wants_output(&self) -> bool {
        self.sack_recovery() || self.rec.tlp_pending
    }

    /// The tail loss probe (RFC 8985 §7.3): a new segment if the peer's
    /// window allows, else the last segment sent again.
    pub(super) fn tlp_output(&mut self, now: Instant) -> Option<Outbound> {
        self.rec.tlp_pending = false;
        let data_end = self.data_end();
        let mss = self.seg_max();
        let wnd_end = self.snd_una + self.snd_wnd as usize;
        let avail = (data_end - self.snd_max).max(0) as usize;
        let usable = (wnd_end - self.snd_max).max(0) as usize;
        let out = if self.snd_nxt == self.snd_max && avail > 0 && usable > 0 {
            let seq = self.snd_max;
            let len = avail.min(usable).min(mss);
            let out = self.data_segment(seq, len);
            self.on_sent(now, seq, len, out.ctl == Ctl::Fin);
            self.rec.tlp_retrans = false;
            out
        } else {
            let top = self.snd_max.min(data_end);
            if !self.snd_una.lt(top) {
                return None;
            }
            // The last segment as it was sent, if known.
            let start = match self.rec.rack.last_sent() {
                Some((start, end)) if end == top && start.lt(end) => start,
                _ => Seq(top.0.wrapping_sub(mss as u32)),
            }
            .max(self.snd_una);
            let len = ((top - start) as usize).min(mss);
            self.rec.tlp_retrans = true;
            self.retransmit(now, start, len)
        };
        debug!(parent: &self.span, seq = %out.seq, len = out.payload_len, "tail loss probe");
        self.rec.tail_loss_probes += 1;
        self.rec.tlp_end = Some(self.snd_max);
        self.rec.tlp_dsacked = false;
        Some(out)
    }

    // ----- Pacing -----

    /// Whether pacing lets a segment go now; if not, the pacing timer is
    /// armed for when it may.
    pub(super) fn pacing_allows(&mut self, now: Instant) -> bool {
        match self.rec.next_send {
            Some(at) if self.rec.pacing && at > now => {
                self.set_timer(super::Timer::Pacing, Some(at));
                false
            }
            _ => true,
        }
    }

    /// Schedules the next paced segment after `len` bytes went out: one
    /// segment's time at the controller's pacing rate later. Up to one timer
    /// tick (1 ms) of credit is kept, so the wheel's granularity does not
    /// slow a fast sender down.
    fn pace(&mut self, now: Instant, len: usize) {
        if !self.rec.pacing || len == 0 {
            return;
        }
        let Some(rate) = self.cc.pacing_rate(self.rtt.srtt()).filter(|&r| r > 0) else {
            return;
        };
        let gap =
            std::time::Duration::from_nanos((len as u64).saturating_mul(1_000_000_000) / rate);
        let credit = Instant::from_nanos(now.as_nanos().saturating_sub(1_000_000));
        let base = self.rec.next_send.unwrap_or(now).max(credit);
        self.rec.next_send = Some(base + gap);
    }

    /// Turns pacing on or off.
    pub(crate) fn set_pacing(&mut self, on: bool) {
        self.rec.pacing = on;
        self.cc.set_paced(on);
        if !on {
            self.rec.next_send = None;
            self.set_timer(super::Timer::Pacing, None);
        }
    }

    /// Whether pacing is on.
    pub(crate) fn pacing(&self) -> bool {
        self.rec.pacing
    }

    // ----- The output path -----

    /// Counts a retransmission of `len` bytes towards the undo decision.
    pub(super) fn on_retransmitted(&mut self, len: usize) {
        if len == 0 {
            return;
        }
        if !self.rec.sack_on {
            // Without SACK every retransmission is of a presumed loss.
            self.rec.lost += len as u64;
        }
        if let Some(n) = self.rec.undo_retrans.as_mut() {
            *n += 1;
        }
        let end = self.snd_una + len;
        if self.rec.high_rxt.lt(end) && !self.rec.sack_on {
            self.rec.high_rxt = end;
        }
    }

    /// Bookkeeping after a segment of `len` bytes went out through the
    /// ordinary path (new data, or go-back-N after a timeout).
    pub(super) fn on_sent_recovery(
        &mut self,
        now: Instant,
        seq: Seq,
        len: usize,
        retransmission: bool,
    ) {
        self.rec.flight_hwm = self.rec.flight_hwm.max(self.flight());
        self.pace(now, len);
        if self.rec.sack_on {
            self.rec.rack.on_sent(seq, seq + len, now);
            self.rearm_loss_timer(now, true);
        }
        if retransmission && len > 0 {
            if let Some(n) = self.rec.undo_retrans.as_mut() {
                *n += 1;
            }
            let end = self.snd_nxt;
            if self.rec.high_rxt.lt(end) {
                self.rec.high_rxt = end;
            }
        }
    }

    /// After a timeout, SND.NXT steps over data the peer SACKed (RFC 6675 §5.1).
    pub(super) fn skip_sacked(&mut self) {
        if !self.rec.sack_on || !self.snd_nxt.lt(self.snd_max) {
            return;
        }
        if let Some(end) = self.rec.scoreboard.sacked_end(self.snd_nxt) {
            let data_end = self.data_end();
            self.snd_nxt = end.min(data_end.max(self.snd_nxt));
        }
    }

    /// How many bytes from `seq` may go out before reaching a SACKed block.
    pub(super) fn unsacked_run(&self, seq: Seq) -> usize {
        if !self.rec.sack_on || !seq.lt(self.snd_max) {
            return usize::MAX;
        }
        match self.rec.scoreboard.next_sacked_after(seq) {
            Some(l) => (l - seq).max(0) as usize,
            None => usize::MAX,
        }
    }

    /// Retransmits [seq, seq + len).
    fn retransmit(&mut self, now: Instant, seq: Seq, len: usize) -> Outbound {
        let out = self.data_segment(seq, len);
        self.karn_resent(seq);
        self.rec.rack.on_sent(seq, seq + len, now);
        self.info.bytes_sent += len as u64;
        self.info.bytes_retrans += len as u64;
        self.on_retransmitted(len);
        if !self.timer_armed(super::Timer::Retransmit) {
            self.set_timer(
                super::Timer::Retransmit,
                Some(now + self.rtt.backed_off(self.backoff)),
            );
        }
        out
    }

    /// The next segment of SACK-based recovery: RFC 6675 §5 step (C) with
    /// `NextSeg` of §4, or `None` when `pipe` fills the window.
    pub(super) fn sack_output(&mut self, now: Instant) -> Option<Outbound> {
        let out = self.sack_next(now)?;
        if let Some(prr) = self.rec.prr.as_mut() {
            prr.out += out.payload_len;
        }
        Some(out)
    }

    /// `pipe` of RFC 6675 §4 now.
    fn sack_pipe(&self) -> usize {
        let top = self.snd_max.min(self.data_end());
        let lost = self.lost_boundary();
        self.rec
            .scoreboard
            .pipe(self.snd_una, top, self.rec.high_rxt, lost)
    }

    /// Proportional Rate Reduction on an ACK in SACK recovery (RFC 6937 §3.1):
    /// `delivered_data` bytes were delivered by it; the window becomes `pipe`
    /// plus sndcnt. `safe` as for [`Prr::sndcnt`].
    pub(super) fn prr_on_ack(&mut self, delivered_data: usize, safe: bool) {
        if !self.sack_recovery() {
            return;
        }
        let pipe = self.sack_pipe();
        let ssthresh = self.cc.ssthresh();
        let mss = self.snd_mss;
        let Some(prr) = self.rec.prr.as_mut() else {
            return;
        };
        prr.delivered += delivered_data;
        let sndcnt = prr.sndcnt(pipe, ssthresh, delivered_data, mss, safe);
        self.rec.recovery_cwnd = Some(pipe + sndcnt);
    }

    /// Bytes delivered to the peer so far (cumulatively ACKed or SACKed) and
    /// bytes marked lost so far.
    pub(super) fn delivered_and_lost(&self) -> (u64, u64) {
        (self.rec.delivered, self.rec.lost)
    }

    /// The next segment of [`sack_output`](Self::sack_output).
    fn sack_next(&mut self, now: Instant) -> Option<Outbound> {
        let data_end = self.data_end();
        let top = self.snd_max.min(data_end);
        let mss = self.seg_max();
        if self.rtx_pending {
            // §5 step 3: the first segment presumed lost goes out at once.
            self.rtx_pending = false;
            if let Some((s, len)) = self.rec.scoreboard.next_hole(self.snd_una, top, mss) {
                self.rec.high_rxt = self.rec.high_rxt.max(s + len);
                return Some(self.retransmit(now, s, len));
            }
        }
        let lost = self.lost_boundary();
        let pipe = self
            .rec
            .scoreboard
            .pipe(self.snd_una, top, self.rec.high_rxt, lost);
        // §5 step (C): send while cwnd − pipe ≥ 1 SMSS.
        if self.cwnd().saturating_sub(pipe) < mss {
            return None;
        }
        let from = self.rec.high_rxt.max(self.snd_una);
        // NextSeg rule 1: the first lost hole above HighRxt.
        if let Some((s, len)) = self.rec.scoreboard.next_hole(from, lost.min(top), mss) {
            self.rec.high_rxt = s + len;
            return Some(self.retransmit(now, s, len));
        }
        // Rule 2: new data, if the receiver's window allows.
        if self.snd_max.lt(data_end) {
            let wnd_end = self.snd_una + self.snd_wnd as usize;
            let usable = (wnd_end - self.snd_max).max(0) as usize;
            let avail = (data_end - self.snd_max) as usize;
            let len = avail.min(usable).min(mss);
            if len > 0 && (len == mss || len == avail) {
                let seq = self.snd_max;
                self.snd_nxt = seq;
                let out = self.data_segment(seq, len);
                self.on_sent(now, seq, len, out.ctl == Ctl::Fin);
                return Some(out);
            }
        }
        // Rule 3: an unSACKed, not yet lost hole above HighRxt, below the
        // highest SACKed byte (rule 1.b).
        let sacked_top = self.rec.scoreboard.highest_sacked().unwrap_or(self.snd_una);
        if let Some((s, len)) = self
            .rec
            .scoreboard
            .next_hole(from, sacked_top.min(top), mss)
        {
            self.rec.high_rxt = s + len;
            return Some(self.retransmit(now, s, len));
        }
        // Rule 4: one rescue retransmission per recovery, of the highest
        // outstanding unSACKed data; HighRxt stays.
        if self.rec.rescue_rxt.is_none_or(|r| self.snd_una.gt(r))
            && let Some(end) = self.rec.scoreboard.highest_unsacked(self.snd_una, top)
            && end.gt(self.rec.high_rxt)
        {
            self.rec.rescue_rxt = self.recover;
            let start = Seq(end.0.wrapping_sub(mss as u32)).max(self.snd_una);
            let len = (end - start) as usize;
            return Some(self.retransmit(now, start, len));
        }
        None
    }

    /// The most payload a segment may carry: the MSS less the SACK blocks it
    /// will report (RFC 6691: options come out of the MSS, so a segment never
    /// outgrows the path).
    pub(super) fn seg_max(&self) -> usize {
        if !self.rec.sack_on {
            return self.snd_mss;
        }
        let blocks = (self.rcv_buf.ranges().len() + usize::from(self.rec.sack_rx.has_dsack()))
            .min(crate::tcp::sack::MAX_BLOCKS - 1);
        let reserve = if blocks == 0 { 0 } else { 4 + 8 * blocks };
        self.snd_mss.saturating_sub(reserve).max(1)
    }

    /// Adds SACK blocks to an outbound ACK (RFC 2018 §4: in every ACK while
    /// out-of-order data is held), a D-SACK first (RFC 2883).
    pub(super) fn add_sack_blocks(&mut self, out: &mut Outbound) {
        if !self.rec.sack_on
            || out.ack.is_none()
            || matches!(out.ctl, Ctl::Syn | Ctl::Rst)
            || (!self.rcv_buf.has_gaps() && !self.rec.sack_rx.has_dsack())
        {
            return;
        }
        let rcv_nxt = self.rcv_nxt;
        let held: Vec<(Seq, Seq)> = self
            .rcv_buf
            .ranges()
            .iter()
            .map(|&(a, b)| (rcv_nxt + a, rcv_nxt + b))
            .collect();
        out.sack_blocks = self.rec.sack_rx.blocks(rcv_nxt, &held);
        // Never more than fit beside the payload within the MSS.
        let room = self.snd_mss.saturating_sub(out.payload_len);
        let fit = room.saturating_sub(4) / 8;
        for b in out.sack_blocks.iter_mut().skip(fit) {
            *b = None;
        }
    }

    // ----- The receive path -----

    /// Data `offset` bytes past RCV.NXT is about to be stored: the first part
    /// of it already held out of order is a duplicate to report (RFC 2883 §4:
    /// one D-SACK block, for the first duplicate contiguous sequence of the
    /// segment; FreeBSD's `tcp_reass` and Linux's `tcp_data_queue_ofo` report
    /// the lowest overlap too). The caller skips this when the segment's front
    /// was already below RCV.NXT: that part is lower and was reported.
    pub(super) fn sack_before_insert(&mut self, offset: usize, len: usize) {
        if !self.rec.sack_on || len == 0 {
            return;
        }
        let end = offset + len;
        if let Some(&(a, b)) = self
            .rcv_buf
            .ranges()
            .iter()
            .find(|&&(a, b)| a < end && offset < b)
        {
            let left = self.rcv_nxt + a.max(offset);
            let right = self.rcv_nxt + b.min(end);
            self.rec.sack_rx.on_duplicate(left, right);
        }
    }

    /// Out-of-order data was stored: its block is reported first (RFC 2018 §4).
    pub(super) fn sack_after_insert(&mut self, offset: usize, len: usize) {
        if !self.rec.sack_on || len == 0 || offset == 0 {
            return;
        }
        if let Some(&(a, b)) = self
            .rcv_buf
            .ranges()
            .iter()
            .find(|&&(a, b)| a <= offset && offset < b)
        {
            self.rec
                .sack_rx
                .on_out_of_order((self.rcv_nxt + a, self.rcv_nxt + b));
        }
    }

    /// `len` bytes from `seq` arrived that were all received before.
    pub(super) fn sack_duplicate(&mut self, seq: Seq, len: usize) {
        if self.rec.sack_on && len > 0 {
            self.rec.sack_rx.on_duplicate(seq, seq + len);
            self.ack_now = true;
        }
    }

    // ----- Statistics -----

    /// `info` with the loss-recovery fields filled in.
    pub(super) fn recovery_info(&self, info: TcpInfo) -> TcpInfo {
        let rtx_end = self.rec.high_rxt.max(self.snd_una).min(self.snd_max);
        let retrans = self
            .rec
            .scoreboard
            .unsacked_bytes(self.snd_una, rtx_end)
            .div_ceil(self.snd_mss.max(1));
        TcpInfo {
            ca_state: self.rec.ca_state,
            delivered: self.rec.delivered,
            lost: self.rec.lost,
            sacked: self.rec.scoreboard.sacked_bytes(),
            reordering: self.rec.reordering,
            retrans: retrans as u32,
            pacing_rate: self.cc.pacing_rate(self.rtt.srtt()),
            congestion: self.cc.algorithm(),
            sack: self.rec.sack_on,
            spurious_undos: self.rec.spurious_undos,
            tail_loss_probes: self.rec.tail_loss_probes,
            ..info
        }
    }
}
