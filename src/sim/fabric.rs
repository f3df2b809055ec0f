//! The harness's layer over the simulated network: per-pair partitions,
//! and power (a crashed host's old stack talks to nobody). Holds are the
//! network's own ([`Network::hold`]), as they reach packets in flight.

use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use synack_device::{Capabilities, Device, Packet};
use synack_sim::{HostEnd, Network};

/// What a partition does to the packets it cuts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cut {
    /// Dropped without a word, as by a cable cut.
    Silent,
    /// Dropped, the sender told by the router: ICMP host unreachable.
    Unreachable,
}

/// State every host's device shares.
pub(crate) struct Fabric {
    net: Network,
    ends: Vec<HostEnd>,
    addrs: Vec<Ipv4Addr>,
    /// The incarnation whose stack may use each host's end; `None` while the host is down.
    live: Vec<Option<u64>>,
    /// Directed pairs (from, to) whose packets are dropped.
    cut: BTreeMap<(usize, usize), Cut>,
    /// Packets live hosts have handed to the network, cut ones included.
    sent: u64,
}

impl Fabric {
    pub(crate) fn new(net: Network, ends: Vec<HostEnd>) -> Fabric {
        let addrs = ends.iter().map(|e| e.config().addr).collect();
        let live = vec![None; ends.len()];
        Fabric {
            net,
            ends,
            addrs,
            live,
            cut: BTreeMap::new(),
            sent: 0,
        }
    }

    fn host_of(&self, addr: Ipv4Addr) -> Option<usize> {
        self.addrs.iter().position(|a| *a == addr)
    }

    /// Powers `host` on as incarnation `generation`, or off with `None`.
    /// Packets waiting for the host are lost; those it sent, held ones
    /// included, are on their way and still arrive.
    pub(crate) fn set_live(&mut self, host: usize, generation: Option<u64>) {
        self.live[host] = generation;
        let mut cx = Context::from_waker(Waker::noop());
        let mut sink = Vec::new();
        while let Poll::Ready(Ok(n)) = self.ends[host].poll_recv(&mut cx, &mut sink, 64) {
            if n == 0 {
                break;
            }
            sink.clear();
        }
    }

    /// Cuts the direction `from` → `to` (`Some`), or repairs it.
    pub(crate) fn set_cut(&mut self, from: usize, to: usize, cut: Option<Cut>) {
        match cut {
            Some(c) => self.cut.insert((from, to), c),
            None => self.cut.remove(&(from, to)),
        };
    }

    /// Starts holding the direction `from` → `to`, packets in flight included.
    pub(crate) fn hold(&mut self, from: usize, to: usize) {
        self.net.hold(self.addrs[from], self.addrs[to]);
    }

    /// Stops holding `from` → `to`; what was held goes on, in order.
    pub(crate) fn release(&mut self, from: usize, to: usize) {
        self.net.release(self.addrs[from], self.addrs[to]);
    }

    /// The uplink and downlink of `host`.
    pub(crate) fn links(&self, host: usize) -> (synack_sim::Link, synack_sim::Link) {
        (self.ends[host].uplink(), self.ends[host].downlink())
    }

    /// How many packets live hosts have sent: a harness sees from it
    /// whether anything moved.
    pub(crate) fn sent(&self) -> u64 {
        self.sent
    }

    pub(crate) fn capabilities(&self, host: usize) -> Capabilities {
        self.ends[host].capabilities()
    }
}

/// The source and destination of an IPv4 packet, if it is one.
fn endpoints(p: &[u8]) -> Option<(Ipv4Addr, Ipv4Addr)> {
    (p.len() >= 20 && p[0] >> 4 == 4).then(|| {
        (
            Ipv4Addr::new(p[12], p[13], p[14], p[15]),
            Ipv4Addr::new(p[16], p[17], p[18], p[19]),
        )
    })
}

/// A shared fabric.
pub(crate) type SharedFabric = Arc<Mutex<Fabric>>;

pub(crate) fn lock(f: &SharedFabric) -> MutexGuard<'_, Fabric> {
    f.lock().unwrap_or_else(|e| e.into_inner())
}

/// The device one incarnation of a host's stack runs on.
pub(crate) struct SimDevice {
    pub(crate) fabric: SharedFabric,
    pub(crate) host: usize,
    pub(crate) generation: u64,
    pub(crate) caps: Capabilities,
}

impl Device for SimDevice {
    fn capabilities(&self) -> Capabilities {
        self.caps
    }

    fn poll_recv(
        &mut self,
        cx: &mut Context<'_>,
        out: &mut Vec<Packet>,
        max: usize,
    ) -> Poll<io::Result<usize>> {
        let mut f = lock(&self.fabric);
        if f.live[self.host] != Some(self.generation) {
            // A crashed incarnation hears nothing, ever.
            return Poll::Pending;
        }
        let start = out.len();
        loop {
            match f.ends[self.host].poll_recv(cx, out, max) {
                Poll::Ready(Ok(_)) => {}
                other => return other,
            }
            // Packets already in flight when a pair was cut are lost too.
            let mut i = start;
            while i < out.len() {
                let from = endpoints(&out[i]).and_then(|(src, _)| f.host_of(src));
                if from.is_some_and(|from| f.cut.contains_key(&(from, self.host))) {
                    out.remove(i);
                } else {
                    i += 1;
                }
            }
            if out.len() > start {
                return Poll::Ready(Ok(out.len() - start));
            }
        }
    }

    fn poll_send(
        &mut self,
        cx: &mut Context<'_>,
        packets: &mut VecDeque<Packet>,
    ) -> Poll<io::Result<usize>> {
        let n = packets.len();
        let mut f = lock(&self.fabric);
        if f.live[self.host] != Some(self.generation) {
            // Whatever a crashed incarnation says goes nowhere.
            packets.clear();
            return Poll::Ready(Ok(n));
        }
        f.sent += n as u64;
        let mut pass = VecDeque::with_capacity(n);
        for p in packets.drain(..) {
            let to = endpoints(&p).and_then(|(_, dst)| f.host_of(dst));
            match to.and_then(|to| f.cut.get(&(self.host, to))) {
                Some(Cut::Silent) => {
                    tracing::trace!(from = self.host, ?to, "sim: packet dropped by a partition");
                }
                Some(Cut::Unreachable) => {
                    // Answered at once, as by the first router of the path.
                    f.net.answer_unreachable(&p);
                }
                None => pass.push_back(p),
            }
        }
        let host = self.host;
        let _ = f.ends[host].poll_send(cx, &mut pass);
        Poll::Ready(Ok(n))
    }
}
