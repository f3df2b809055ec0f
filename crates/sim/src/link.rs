//! One direction of a simulated link: its settings, counters and behaviour.
//!
//! A packet entering a link goes through, in order:
//! 1. the MTU check (longer packets are dropped, [`LinkStats::dropped_mtu`]);
//! 2. the queue: drop-tail when the packets waiting for the transmitter (the
//!    one being serialised included) would exceed the limit in packets or bytes
//!    ([`LinkStats::dropped_queue`]);
//! 3. the transmitter: serialisation takes `len * 8 / rate` seconds, one packet
//!    after another;
//! 4. the wire, once the last bit is out: random and Gilbert-Elliott loss,
//!    corruption (one bit flipped), duplication, then the one-way delay plus
//!    jitter, and for the packets picked for reordering an extra delay.
//!
//! Jitter alone never reorders (a packet never overtakes the one before it,
//! as on a real wire); only [`LinkConfig::reorder`] does.

use std::collections::VecDeque;
use std::time::Duration;

use crate::rng::Rng;

/// The Gilbert-Elliott model of bursty loss: a two-state Markov chain stepped
/// once per packet, with its own loss probability in each state.
///
/// The long-run loss rate is [`mean_loss`](GilbertElliott::mean_loss); the mean
/// length of a bad period is `1 / p_bad_to_good` packets.
///
/// ```
/// use synack_sim::GilbertElliott;
///
/// // Bad periods of 5 packets on average, entered once in 200 packets; all lost.
/// let ge = GilbertElliott::bursts(0.005, 0.2);
/// assert!((ge.mean_loss() - 0.005 / 0.205).abs() < 1e-12);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GilbertElliott {
    /// Probability of moving from the good to the bad state, per packet.
    pub p_good_to_bad: f64,
    /// Probability of moving from the bad to the good state, per packet.
    pub p_bad_to_good: f64,
    /// Loss probability in the good state.
    pub loss_good: f64,
    /// Loss probability in the bad state.
    pub loss_bad: f64,
}

impl GilbertElliott {
    /// The simple Gilbert model: no loss in the good state, every packet lost in the bad one.
    pub fn bursts(p_good_to_bad: f64, p_bad_to_good: f64) -> GilbertElliott {
        GilbertElliott {
            p_good_to_bad,
            p_bad_to_good,
            loss_good: 0.0,
            loss_bad: 1.0,
        }
    }

    /// The long-run fraction of packets lost.
    pub fn mean_loss(&self) -> f64 {
        let (p, r) = (self.p_good_to_bad, self.p_bad_to_good);
        if p + r <= 0.0 {
            return self.loss_good;
        }
        (r * self.loss_good + p * self.loss_bad) / (p + r)
    }
}

/// Settings of one direction of a link. Change them during a run with
/// [`Link::set_config`](crate::Link::set_config).
///
/// The default is a perfect link: no delay, unlimited rate, a queue of 1000
/// packets (Linux's default `txqueuelen`, only reached with a rate set), MTU
/// 65535, no impairments.
///
/// ```
/// use std::time::Duration;
/// use synack_sim::LinkConfig;
///
/// let bottleneck = LinkConfig::new()
///     .delay(Duration::from_millis(10))
///     .rate_bps(100_000_000)
///     .queue_bytes(500_000)
///     .loss(0.01);
/// assert_eq!(bottleneck.rate_bps, Some(100_000_000));
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinkConfig {
    /// One-way propagation delay.
    pub delay: Duration,
    /// Extra delay drawn uniformly from `[0, jitter]` for every packet.
    pub jitter: Duration,
    /// Transmission rate in bit/s; `None` sends every packet at once.
    pub rate_bps: Option<u64>,
    /// Most packets in the queue (the one being serialised included); `None`: no limit.
    pub queue_packets: Option<usize>,
    /// Most bytes in the queue (the packet being serialised included); `None`: no limit.
    pub queue_bytes: Option<usize>,
    /// Largest packet carried, bytes; longer ones are dropped and counted.
    pub mtu: usize,
    /// Probability that a packet is lost on the wire (independent per packet).
    pub loss: f64,
    /// Bursty loss, on top of [`loss`](LinkConfig::loss).
    pub gilbert_elliott: Option<GilbertElliott>,
    /// Probability that a packet arrives twice.
    pub duplicate: f64,
    /// Probability that a packet is held back by [`reorder_delay`](LinkConfig::reorder_delay),
    /// so later packets overtake it.
    pub reorder: f64,
    /// The extra delay of a reordered packet.
    pub reorder_delay: Duration,
    /// Probability that one bit of a packet is flipped. The sim corrupts packets
    /// after the sender computed its checksums, so the receiver must verify them:
    /// give hosts on such links no checksum offload (the default of [`HostConfig`](crate::HostConfig)).
    pub corrupt: f64,
}

impl Default for LinkConfig {
    fn default() -> Self {
        LinkConfig {
            delay: Duration::ZERO,
            jitter: Duration::ZERO,
            rate_bps: None,
            queue_packets: Some(1000),
            queue_bytes: None,
            mtu: 65535,
            loss: 0.0,
            gilbert_elliott: None,
            duplicate: 0.0,
            reorder: 0.0,
            reorder_delay: Duration::ZERO,
            corrupt: 0.0,
        }
    }
}

impl LinkConfig {
    /// A perfect link (see [`Default`](#impl-Default-for-LinkConfig)).
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the one-way delay.
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// Sets the jitter: each packet gets an extra delay uniform in `[0, jitter]`
    /// (never overtaking the packet before it).
    ///
    /// Several flows through one drop-tail queue want a little of it on the
    /// senders' links, up to one packet's time at the bottleneck: without
    /// randomness the simulation repeats the same arrival phase every round
    /// and the queue keeps dropping the same flow (Floyd and Jacobson, "On
    /// Traffic Phase Effects in Packet-Switched Gateways", 1992).
    pub fn jitter(mut self, jitter: Duration) -> Self {
        self.jitter = jitter;
        self
    }

    /// Sets the rate in bit/s (0 is taken as unlimited).
    pub fn rate_bps(mut self, bps: u64) -> Self {
        self.rate_bps = (bps > 0).then_some(bps);
        self
    }

    /// Limits the queue to `packets` packets (and lifts a byte limit).
    pub fn queue_packets(mut self, packets: usize) -> Self {
        self.queue_packets = Some(packets);
        self.queue_bytes = None;
        self
    }

    /// Limits the queue to `bytes` bytes (and lifts a packet limit).
    pub fn queue_bytes(mut self, bytes: usize) -> Self {
        self.queue_bytes = Some(bytes);
        self.queue_packets = None;
        self
    }

    /// Sets the MTU.
    pub fn mtu(mut self, mtu: usize) -> Self {
        self.mtu = mtu;
        self
    }

    /// Sets the random loss probability.
    pub fn loss(mut self, p: f64) -> Self {
        self.loss = p;
        self
    }

    /// Adds bursty loss.
    pub fn gilbert_elliott(mut self, ge: GilbertElliott) -> Self {
        self.gilbert_elliott = Some(ge);
        self
    }

    /// Sets the duplication probability.
    pub fn duplicate(mut self, p: f64) -> Self {
        self.duplicate = p;
        self
    }

    /// Holds back a fraction `p` of the packets by `extra`, so later ones overtake them.
    pub fn reorder(mut self, p: f64, extra: Duration) -> Self {
        self.reorder = p;
        self.reorder_delay = extra;
        self
    }

    /// Sets the corruption probability (one bit flipped per corrupted packet).
    pub fn corrupt(mut self, p: f64) -> Self {
        self.corrupt = p;
        self
    }

    /// A link that loses every packet: one direction of a partition.
    pub fn blackhole(mut self) -> Self {
        self.loss = 1.0;
        self
    }

    /// How long the transmitter takes to send `len` bytes, in nanoseconds.
    pub fn serialisation_nanos(&self, len: usize) -> u64 {
        match self.rate_bps {
            None => 0,
            Some(bps) => {
                let ns = (len as u128 * 8 * 1_000_000_000).div_ceil(u128::from(bps));
                u64::try_from(ns).unwrap_or(u64::MAX)
            }
        }
    }
}

/// Counters of one direction of a link (for a router port: of its output queue and wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LinkStats {
    /// Packets that entered the link.
    pub offered_packets: u64,
    /// Bytes of the packets that entered the link.
    pub offered_bytes: u64,
    /// Packets that came out at the far end (duplicates included).
    pub delivered_packets: u64,
    /// Bytes of the packets that came out at the far end.
    pub delivered_bytes: u64,
    /// Packets dropped because the queue was full (drop-tail).
    pub dropped_queue: u64,
    /// Packets dropped because they were longer than the MTU.
    pub dropped_mtu: u64,
    /// Packets lost on the wire (random or Gilbert-Elliott loss).
    pub dropped_loss: u64,
    /// Extra copies made.
    pub duplicated: u64,
    /// Packets held back so that later ones overtook them.
    pub reordered: u64,
    /// Packets with a bit flipped.
    pub corrupted: u64,
    /// The longest the queue has been, in packets.
    pub max_queue_packets: u64,
}

impl LinkStats {
    /// All packets dropped, for any reason.
    pub fn dropped(&self) -> u64 {
        self.dropped_queue + self.dropped_mtu + self.dropped_loss
    }
}

/// What a packet leaving the wire becomes.
pub(crate) struct WireOutcome {
    /// When it arrives, or `None` when it is lost.
    pub(crate) arrival: Option<u64>,
    /// Whether a copy arrives too (right after it).
    pub(crate) duplicate: bool,
}

/// The running state of one direction of a link.
pub(crate) struct LinkState {
    pub(crate) config: LinkConfig,
    pub(crate) stats: LinkStats,
    rng: Rng,
    ge_bad: bool,
    /// Departure times and lengths of the packets in the queue, oldest first.
    queue: VecDeque<(u64, usize)>,
    queued_bytes: usize,
    /// When the transmitter is free.
    busy_until: u64,
    /// Arrival time of the last packet not picked for reordering.
    last_arrival: u64,
}

/// Why a packet did not get into a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    Mtu,
    Queue,
}

impl LinkState {
    pub(crate) fn new(config: LinkConfig, seed: u64) -> LinkState {
        LinkState {
            config,
            stats: LinkStats::default(),
            rng: Rng::new(seed),
            ge_bad: false,
            queue: VecDeque::new(),
            queued_bytes: 0,
            busy_until: 0,
            last_arrival: 0,
        }
    }

    /// A packet of `len` bytes enters the link at `now`: returns when its last
    /// bit leaves the transmitter, or why it was dropped.
    pub(crate) fn enqueue(&mut self, now: u64, len: usize) -> Result<u64, Refused> {
        self.stats.offered_packets += 1;
        self.stats.offered_bytes += len as u64;
        if len > self.config.mtu {
            self.stats.dropped_mtu += 1;
            return Err(Refused::Mtu);
        }
        while let Some(&(departs, l)) = self.queue.front() {
            if departs > now {
                break;
            }
            self.queue.pop_front();
            self.queued_bytes -= l;
        }
        let full_packets = self
            .config
            .queue_packets
            .is_some_and(|max| self.queue.len() >= max);
        let full_bytes = self
            .config
            .queue_bytes
            .is_some_and(|max| self.queued_bytes + len > max);
        // With an unlimited rate nothing ever waits, so no queue limit applies.
        if self.config.rate_bps.is_some() && (full_packets || full_bytes) {
            self.stats.dropped_queue += 1;
            return Err(Refused::Queue);
        }
        let departs = self.busy_until.max(now) + self.config.serialisation_nanos(len);
        self.busy_until = departs;
        if departs > now {
            self.queue.push_back((departs, len));
            self.queued_bytes += len;
            self.stats.max_queue_packets =
                self.stats.max_queue_packets.max(self.queue.len() as u64);
        }
        Ok(departs)
    }

    /// A packet leaves the transmitter at `now`: applies the wire's impairments
    /// (flipping a bit of `packet` if it is corrupted).
    pub(crate) fn wire(&mut self, now: u64, packet: &mut [u8]) -> WireOutcome {
        let c = self.config;
        let mut lost = self.rng.chance(c.loss);
        if let Some(ge) = c.gilbert_elliott {
            let flip = if self.ge_bad {
                ge.p_bad_to_good
            } else {
                ge.p_good_to_bad
            };
            if self.rng.chance(flip) {
                self.ge_bad = !self.ge_bad;
            }
            let p = if self.ge_bad {
                ge.loss_bad
            } else {
                ge.loss_good
            };
            lost |= self.rng.chance(p);
        }
        if lost {
            self.stats.dropped_loss += 1;
            return WireOutcome {
                arrival: None,
                duplicate: false,
            };
        }
        if !packet.is_empty() && self.rng.chance(c.corrupt) {
            let bit = self.rng.below(packet.len() as u64 * 8);
            packet[(bit / 8) as usize] ^= 1 << (bit % 8);
            self.stats.corrupted += 1;
        }
        let duplicate = self.rng.chance(c.duplicate);
        if duplicate {
            self.stats.duplicated += 1;
        }
        let jitter = u64::try_from(c.jitter.as_nanos()).unwrap_or(u64::MAX);
        let delay = u64::try_from(c.delay.as_nanos()).unwrap_or(u64::MAX);
        let base = now
            .saturating_add(delay)
            .saturating_add(self.rng.below(jitter.saturating_add(1)));
        let arrival = if self.rng.chance(c.reorder) {
            self.stats.reordered += 1;
            let extra = u64::try_from(c.reorder_delay.as_nanos()).unwrap_or(u64::MAX);
            base.saturating_add(extra)
        } else {
            let at = base.max(self.last_arrival);
            self.last_arrival = at;
            at
        };
        WireOutcome {
            arrival: Some(arrival),
            duplicate,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialisation_time() {
        let c = LinkConfig::new().rate_bps(10_000_000);
        // 1250 bytes = 10 000 bits at 10 Mbit/s: 1 ms.
        assert_eq!(c.serialisation_nanos(1250), 1_000_000);
        assert_eq!(LinkConfig::new().serialisation_nanos(1500), 0);
        assert_eq!(LinkConfig::new().rate_bps(0).rate_bps, None);
    }

    #[test]
    fn gilbert_mean() {
        let ge = GilbertElliott {
            p_good_to_bad: 0.1,
            p_bad_to_good: 0.3,
            loss_good: 0.01,
            loss_bad: 0.5,
        };
        assert!((ge.mean_loss() - (0.3 * 0.01 + 0.1 * 0.5) / 0.4).abs() < 1e-12);
        let stuck = GilbertElliott::bursts(0.0, 0.0);
        assert_eq!(stuck.mean_loss(), 0.0);
    }

    #[test]
    fn queue_limits_need_a_rate() {
        let mut l = LinkState::new(LinkConfig::new().queue_packets(1), 1);
        for _ in 0..10 {
            assert_eq!(l.enqueue(0, 100), Ok(0));
        }
        let mut l = LinkState::new(LinkConfig::new().queue_packets(1).rate_bps(8_000), 1);
        assert_eq!(l.enqueue(0, 1), Ok(1_000_000));
        assert_eq!(l.enqueue(0, 1), Err(Refused::Queue));
        assert_eq!(l.enqueue(1_000_000, 1), Ok(2_000_000));
    }
}
