//! Selective acknowledgement (RFC 2018) both ways, with D-SACK (RFC 2883).
//!
//! - [`Scoreboard`]: the sender's record of SACKed ranges, and the queries of
//!   RFC 6675 §4 loss recovery on it: `IsLost`, `pipe` and the holes that
//!   `NextSeg` retransmits.
//! - [`SackReporter`]: the receiver's choice of blocks for each ACK: the most
//!   recently changed block first, then the other recent ones (RFC 2018 §4),
//!   a D-SACK block ahead of them all (RFC 2883 §4).

use crate::seq::Seq;

/// RFC 6675 §2: DupThresh, the number of duplicate ACKs (or discontiguous
/// SACKed ranges) that mark a loss.
pub(crate) const DUP_THRESH: usize = 3;

/// The most blocks a SACK option can carry (RFC 2018 §3: 40 option bytes).
pub(crate) const MAX_BLOCKS: usize = 4;

/// The sender's scoreboard: SACKed ranges above SND.UNA, sorted and disjoint.
#[derive(Debug, Clone, Default)]
pub(crate) struct Scoreboard {
    blocks: Vec<(Seq, Seq)>,
}

/// What the SACK blocks of one ACK did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct SackUpdate {
    /// Bytes SACKed for the first time.
    pub newly_sacked: usize,
    /// A D-SACK block (RFC 2883 §4): data the peer received twice.
    pub dsack: Option<(Seq, Seq)>,
}

/// Most ranges the scoreboard keeps; a peer reporting more is not believed
/// beyond this (memory stays bounded whatever the peer sends).
const MAX_SCOREBOARD: usize = 64;

impl Scoreboard {
    /// Forgets every block: the receiver reneged (RFC 2018 §8).
    pub(crate) fn clear(&mut self) {
        self.blocks.clear();
    }

    /// Whether nothing is SACKed.
    pub(crate) fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }

    /// The SACKed ranges, lowest first.
    #[cfg(test)]
    pub(crate) fn blocks(&self) -> &[(Seq, Seq)] {
        &self.blocks
    }

    /// Takes the blocks of an ACK for `ack` (the new SND.UNA) while data up to
    /// `snd_max` is outstanding. Blocks outside (SND.UNA, SND.MAX] are ignored,
    /// except that a first block below the ACK, or inside the second block, is
    /// a D-SACK (RFC 2883 §4).
    pub(crate) fn on_ack(&mut self, ack: Seq, snd_max: Seq, blocks: &[(Seq, Seq)]) -> SackUpdate {
        let mut update = SackUpdate::default();
        self.blocks.retain_mut(|b| {
            if b.0.lt(ack) {
                b.0 = ack;
            }
            b.0.lt(b.1)
        });
        for (i, &(left, right)) in blocks.iter().enumerate() {
            if !left.lt(right) || (right - left) as u32 > 1 << 30 {
                continue;
            }
            if i == 0 {
                let inside_second = blocks
                    .get(1)
                    .is_some_and(|&(l2, r2)| l2.le(left) && right.le(r2));
                if right.le(ack) || inside_second {
                    update.dsack = Some((left, right));
                    continue;
                }
            }
            let left = left.max(ack);
            let right = right.min(snd_max);
            if !left.lt(right) {
                continue;
            }
            update.newly_sacked += self.insert(left, right);
        }
        update
    }

    /// Adds [left, right), returning how many bytes were not SACKed before.
    fn insert(&mut self, left: Seq, right: Seq) -> usize {
        let i = self.blocks.partition_point(|b| b.1.lt(left));
        let mut j = i;
        let (mut l, mut r) = (left, right);
        let mut covered = 0usize;
        while j < self.blocks.len() && self.blocks[j].0.le(right) {
            let (bl, br) = self.blocks[j];
            covered += (br.min(right) - bl.max(left)).max(0) as usize;
            l = l.min(bl);
            r = r.max(br);
            j += 1;
        }
        if i == j && self.blocks.len() >= MAX_SCOREBOARD {
            return 0;
        }
        self.blocks.splice(i..j, [(l, r)]);
        ((right - left) as usize).saturating_sub(covered)
    }

    /// Bytes SACKed in all.
    pub(crate) fn sacked_bytes(&self) -> usize {
        self.blocks.iter().map(|b| (b.1 - b.0) as usize).sum()
    }

    /// The highest SACKed sequence number (the end of the last block).
    pub(crate) fn highest_sacked(&self) -> Option<Seq> {
        self.blocks.last().map(|b| b.1)
    }

    /// Whether all of [left, right) is SACKed.
    pub(crate) fn covers(&self, left: Seq, right: Seq) -> bool {
        self.blocks.iter().any(|b| b.0.le(left) && right.le(b.1))
    }

    /// The end of the SACKed block holding `seq`, if it is SACKed.
    pub(crate) fn sacked_end(&self, seq: Seq) -> Option<Seq> {
        self.blocks
            .iter()
            .find(|b| seq.in_range(b.0, b.1))
            .map(|b| b.1)
    }

    /// RFC 6675 §4 `IsLost`, for all sequence numbers at once: every unSACKed
    /// byte below the returned boundary has DupThresh discontiguous SACKed
    /// ranges, or more than (DupThresh − 1)·SMSS SACKed bytes, above it.
    pub(crate) fn lost_boundary(&self, snd_una: Seq, mss: usize) -> Seq {
        let mut bytes = 0usize;
        for (n, &(l, r)) in self.blocks.iter().rev().enumerate() {
            bytes += (r - l) as usize;
            if n + 1 >= DUP_THRESH || bytes > (DUP_THRESH - 1) * mss {
                return l;
            }
        }
        snd_una
    }

    /// The start of the first SACKed block above `seq`, if any.
    pub(crate) fn next_sacked_after(&self, seq: Seq) -> Option<Seq> {
        self.blocks.iter().find(|b| b.0.gt(seq)).map(|b| b.0)
    }

    /// The end of the highest unSACKed range below `top` that lies above
    /// `floor`: where a rescue retransmission (RFC 6675 §4, rule 4) ends.
    pub(crate) fn highest_unsacked(&self, floor: Seq, top: Seq) -> Option<Seq> {
        let mut t = top;
        for &(l, r) in self.blocks.iter().rev() {
            if r.ge(t) && l.lt(t) {
                t = l;
            } else if r.lt(t) {
                break;
            }
        }
        t.gt(floor).then_some(t)
    }

    /// UnSACKed bytes in [from, to).
    pub(crate) fn unsacked_bytes(&self, from: Seq, to: Seq) -> usize {
        if !from.lt(to) {
            return 0;
        }
        let sacked: usize = self
            .blocks
            .iter()
            .map(|&(l, r)| (r.min(to) - l.max(from)).max(0) as usize)
            .sum();
        ((to - from) as usize).saturating_sub(sacked)
    }

    /// RFC 6675 §4 `SetPipe`: the bytes presumed in the network. An unSACKed
    /// byte counts once if it is not lost, and once more if it was retransmitted
    /// (it is below `high_rxt`).
    pub(crate) fn pipe(&self, snd_una: Seq, snd_max: Seq, high_rxt: Seq, lost: Seq) -> usize {
        let lost = lost.max(snd_una).min(snd_max);
        let not_lost = self.unsacked_bytes(lost, snd_max);
        let retransmitted = self.unsacked_bytes(snd_una, high_rxt.max(snd_una).min(snd_max));
        not_lost + retransmitted
    }

    /// The first unSACKed range starting at or after `from` and before `limit`,
    /// at most `max` bytes long: (start, length).
    pub(crate) fn next_hole(&self, from: Seq, limit: Seq, max: usize) -> Option<(Seq, usize)> {
        let mut s = from;
        for &(l, r) in &self.blocks {
            if r.le(s) {
                continue;
            }
            if l.le(s) {
                s = r;
                continue;
            }
            // s is in a hole ending at l.
            let end = l.min(limit);
            return s.lt(end).then(|| (s, ((end - s) as usize).min(max)));
        }
        s.lt(limit).then(|| (s, ((limit - s) as usize).min(max)))
    }
}

/// The receiver's SACK state: which blocks to report next.
#[derive(Debug, Clone, Default)]
pub(crate) struct SackReporter {
    /// Blocks in the order last reported, most recent first.
    recent: Vec<(Seq, Seq)>,
    /// A duplicate to report once (RFC 2883).
    dsack: Option<(Seq, Seq)>,
}

impl SackReporter {
    /// Out-of-order data [left, right) arrived; it now belongs to the held block
    /// `block`, which goes first in the next ACK (RFC 2018 §4).
    pub(crate) fn on_out_of_order(&mut self, block: (Seq, Seq)) {
        self.recent.retain(|&(l, r)| r.lt(block.0) || block.1.lt(l));
        self.recent.insert(0, block);
        self.recent.truncate(MAX_BLOCKS);
    }

    /// Data [left, right) arrived a second time: report it as a D-SACK.
    pub(crate) fn on_duplicate(&mut self, left: Seq, right: Seq) {
        if left.lt(right) {
            self.dsack = Some((left, right));
        }
    }

    /// Whether a D-SACK is waiting to be sent.
    pub(crate) fn has_dsack(&self) -> bool {
        self.dsack.is_some()
    }

    /// The blocks for the next ACK, at most [`MAX_BLOCKS`]: the D-SACK first,
    /// then the held blocks (`held`, absolute and sorted), most recently
    /// reported first. Takes the D-SACK: it is sent once.
    pub(crate) fn blocks(
        &mut self,
        rcv_nxt: Seq,
        held: &[(Seq, Seq)],
    ) -> [Option<(Seq, Seq)>; MAX_BLOCKS] {
        let mut out = [None; MAX_BLOCKS];
        let mut n = 0;
        if let Some(d) = self.dsack.take() {
            out[0] = Some(d);
            n = 1;
        }
        // Recent blocks, re-read from what is held now (they may have grown
        // or been delivered).
        let mut recent = Vec::with_capacity(self.recent.len());
        for &(l, _) in &self.recent {
            if let Some(&b) = held.iter().find(|b| l.in_range(b.0, b.1))
                && b.0.gt(rcv_nxt)
                && !recent.contains(&b)
            {
                recent.push(b);
            }
        }
        self.recent = recent;
        // The D-SACK block may equal the block that follows it (RFC 2883 §4
        // rule 4: the block holding the duplicate comes second).
        let first = n;
        for &b in self.recent.iter().chain(held.iter().rev()) {
            if n == MAX_BLOCKS {
                break;
            }
            if !out[first..n].contains(&Some(b)) {
                out[n] = Some(b);
                n += 1;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(n: u32) -> Seq {
        Seq(n)
    }

    #[test]
    fn scoreboard_merges_blocks_and_counts_new_bytes() {
        let mut sb = Scoreboard::default();
        let u = sb.on_ack(s(100), s(1000), &[(s(300), s(400))]);
        assert_eq!(u.newly_sacked, 100);
        let u = sb.on_ack(s(100), s(1000), &[(s(350), s(500)), (s(600), s(700))]);
        assert_eq!(u.newly_sacked, 200);
        assert_eq!(sb.blocks(), &[(s(300), s(500)), (s(600), s(700))]);
        assert_eq!(sb.sacked_bytes(), 300);
        // Blocks beyond SND.MAX are clipped; the ACK drops blocks below it.
        sb.on_ack(s(550), s(1000), &[(s(900), s(1200))]);
        assert_eq!(sb.blocks(), &[(s(600), s(700)), (s(900), s(1000))]);
        assert_eq!(sb.highest_sacked(), Some(s(1000)));
    }

    #[test]
    fn dsack_is_the_first_block_below_the_ack_or_inside_the_second() {
        let mut sb = Scoreboard::default();
        let u = sb.on_ack(s(500), s(1000), &[(s(100), s(200))]);
        assert_eq!(u.dsack, Some((s(100), s(200))));
        assert!(sb.is_empty());
        let u = sb.on_ack(s(500), s(1000), &[(s(650), s(700)), (s(600), s(800))]);
        assert_eq!(u.dsack, Some((s(650), s(700))));
        assert_eq!(sb.blocks(), &[(s(600), s(800))]);
    }

    #[test]
    fn is_lost_needs_three_blocks_or_more_than_two_segments_above() {
        let mut sb = Scoreboard::default();
        let mss = 100;
        sb.on_ack(s(0), s(1000), &[(s(100), s(200))]);
        assert_eq!(sb.lost_boundary(s(0), mss), s(0));
        sb.on_ack(s(0), s(1000), &[(s(300), s(400))]);
        assert_eq!(sb.lost_boundary(s(0), mss), s(0));
        // Three discontiguous blocks: everything unSACKed below the lowest is lost.
        sb.on_ack(s(0), s(1000), &[(s(500), s(600))]);
        assert_eq!(sb.lost_boundary(s(0), mss), s(100));
        // A block of more than 2·SMSS: every hole below it (400–500 too) is lost.
        sb.on_ack(s(0), s(1000), &[(s(600), s(750))]);
        assert_eq!(
            sb.blocks(),
            &[(s(100), s(200)), (s(300), s(400)), (s(500), s(750))]
        );
        assert_eq!(sb.lost_boundary(s(0), mss), s(500));
    }

    #[test]
    fn pipe_counts_unsacked_not_lost_plus_retransmitted() {
        let mut sb = Scoreboard::default();
        sb.on_ack(s(0), s(1000), &[(s(100), s(400))]);
        let lost = sb.lost_boundary(s(0), 100);
        assert_eq!(lost, s(100));
        // 0–100 lost, not retransmitted; 400–1000 in flight.
        assert_eq!(sb.pipe(s(0), s(1000), s(0), lost), 600);
        // After retransmitting 0–100 it counts again.
        assert_eq!(sb.pipe(s(0), s(1000), s(100), lost), 700);
    }

    #[test]
    fn next_hole_skips_sacked_ranges() {
        let mut sb = Scoreboard::default();
        sb.on_ack(s(0), s(1000), &[(s(100), s(200)), (s(300), s(400))]);
        assert_eq!(sb.next_hole(s(0), s(1000), 1000), Some((s(0), 100)));
        assert_eq!(sb.next_hole(s(100), s(1000), 50), Some((s(200), 50)));
        assert_eq!(sb.next_hole(s(350), s(1000), 1000), Some((s(400), 600)));
        assert_eq!(sb.next_hole(s(350), s(400), 1000), None);
        assert_eq!(sb.sacked_end(s(150)), Some(s(200)));
        assert_eq!(sb.unsacked_bytes(s(0), s(1000)), 800);
    }

    #[test]
    fn reporter_puts_the_latest_block_first_and_dsack_ahead() {
        let mut r = SackReporter::default();
        let held = [(s(200), s(300)), (s(400), s(500))];
        r.on_out_of_order((s(400), s(500)));
        r.on_out_of_order((s(200), s(300)));
        let b = r.blocks(s(100), &held);
        assert_eq!(
            b,
            [Some((s(200), s(300))), Some((s(400), s(500))), None, None]
        );
        // A block grows: it keeps its place, with its new extent.
        let held = [(s(200), s(350)), (s(400), s(500)), (s(600), s(700))];
        r.on_out_of_order((s(600), s(700)));
        r.on_duplicate(s(50), s(100));
        let b = r.blocks(s(100), &held);
        assert_eq!(
            b,
            [
                Some((s(50), s(100))),
                Some((s(600), s(700))),
                Some((s(200), s(350))),
                Some((s(400), s(500)))
            ]
        );
        // The D-SACK went once.
        assert!(!r.has_dsack());
        let b = r.blocks(s(100), &held);
        assert_eq!(b[0], Some((s(600), s(700))));
    }
}
