//! [`MemoryLink`]: two ends of an in-process wire, with one queue or several.

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use crate::steer::queue_of_packet;
use crate::{Capabilities, ChecksumOffload, Device, Medium, Packet};

/// Configuration of a [`MemoryLink`] pair.
///
/// # Examples
///
/// ```
/// use synack_device::MemoryLinkConfig;
///
/// let config = MemoryLinkConfig::default().with_mtu(9000).with_queue_packets(64);
/// assert_eq!(config.mtu, 9000);
/// assert_eq!(config.queue_packets, 64);
/// assert!(config.checksum_offload);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryLinkConfig {
    /// The largest packet the link carries, in bytes (default 1500). Longer packets
    /// are dropped by the sender and counted in [`LinkStats::dropped_packets`].
    pub mtu: usize,
    /// How many packets each receive queue holds before senders get `Pending`
    /// (default 1024). At least 1 is used.
    pub queue_packets: usize,
    /// Whether both ends announce rx and tx checksum offload (default `true`): an
    /// in-memory wire never corrupts a packet, so the stack may skip checksums.
    pub checksum_offload: bool,
}

impl Default for MemoryLinkConfig {
    fn default() -> Self {
        MemoryLinkConfig {
            mtu: 1500,
            queue_packets: 1024,
            checksum_offload: true,
        }
    }
}

impl MemoryLinkConfig {
    /// The default configuration: MTU 1500, 1024 packets per queue, checksum offload.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the MTU.
    pub fn with_mtu(mut self, mtu: usize) -> Self {
        self.mtu = mtu;
        self
    }

    /// Sets the per-queue limit, in packets.
    pub fn with_queue_packets(mut self, queue_packets: usize) -> Self {
        self.queue_packets = queue_packets;
        self
    }

    /// Sets whether the link announces checksum offload.
    pub fn with_checksum_offload(mut self, checksum_offload: bool) -> Self {
        self.checksum_offload = checksum_offload;
        self
    }
}

/// Counters of one end (one queue) of a [`MemoryLink`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LinkStats {
    /// Packets this end put on the wire.
    pub sent_packets: u64,
    /// Bytes of the packets this end put on the wire.
    pub sent_bytes: u64,
    /// Packets this end was given to send but dropped: longer than the MTU,
    /// or steered to a queue of the other side that is gone.
    pub dropped_packets: u64,
    /// Packets this end took off the wire.
    pub received_packets: u64,
    /// Bytes of the packets this end took off the wire.
    pub received_bytes: u64,
}

/// One receive queue: filled by every sending end of the other side, emptied
/// by one receiving end.
///
/// The lock is taken once per batch, never per packet: buffers the receiver
/// is done with travel back to the senders in batches under the same lock
/// (`returned`), and each end keeps its own free list.
struct Channel {
    state: Mutex<ChannelState>,
    flags: Flags,
}

/// What senders read of a queue without its lock, in a cache line of its
/// own: with one queue per core, a core reads the other cores' flags, and
/// they must not share a line with a lock those cores take per batch.
#[repr(align(64))]
struct Flags {
    /// Whether `returned` may hold buffers, so an end whose free list ran
    /// dry does not take the lock for nothing.
    has_returned: AtomicBool,
    /// Whether the receiving end is gone (also in the state, under the lock).
    receiver_closed: AtomicBool,
}

#[derive(Default)]
struct ChannelState {
    queue: VecDeque<Packet>,
    /// The receiver, waiting for a packet.
    rx_waker: Option<Waker>,
    /// Senders waiting for room in the queue (one per sending end at most).
    tx_wakers: Vec<Waker>,
    /// Sending ends still alive.
    senders: usize,
    receiver_closed: bool,
    /// Empty buffers the receiver gave back, for whichever sender takes them.
    returned: Vec<Packet>,
}

impl Channel {
    fn new(senders: usize) -> Arc<Self> {
        Arc::new(Channel {
            state: Mutex::new(ChannelState {
                senders,
                ..ChannelState::default()
            }),
            flags: Flags {
                has_returned: AtomicBool::new(false),
                receiver_closed: AtomicBool::new(false),
            },
        })
    }

    fn state(&self) -> MutexGuard<'_, ChannelState> {
        // A panic while holding the lock cannot leave the queue inconsistent:
        // keep going with whatever it holds.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn register(slot: &mut Option<Waker>, cx: &Context<'_>) {
    match slot {
        Some(w) if w.will_wake(cx.waker()) => {}
        _ => *slot = Some(cx.waker().clone()),
    }
}

fn register_in(list: &mut Vec<Waker>, cx: &Context<'_>) {
    if !list.iter().any(|w| w.will_wake(cx.waker())) {
        list.push(cx.waker().clone());
    }
}

fn broken_pipe() -> io::Error {
    io::Error::new(
        io::ErrorKind::BrokenPipe,
        "the other end of the memory link is gone",
    )
}

/// One end of an in-process wire, made by [`MemoryLink::pair`] (one queue
/// each way) or [`MemoryLink::multi_queue`] (several, as a multi-queue NIC).
///
/// Each receive queue is bounded: [`poll_send`](Device::poll_send) returns
/// `Pending` when the queue a packet is steered to is full, and the receiver
/// wakes the sender when it makes room. Buffers given back with
/// [`recycle`](Device::recycle) on the receiving end are handed out again by
/// [`alloc`](Device::alloc) on the sending side, so a steady flow allocates
/// nothing per packet; they travel back in batches, under the lock the queue
/// takes once per batch anyway, so no packet pays for a lock of its own.
///
/// When one end is dropped, the other end receives what is still queued and then
/// gets errors of kind `BrokenPipe`; its sends fail at once with `BrokenPipe`.
///
/// # Examples
///
/// One packet from one end to the other, its buffer given back afterwards:
///
/// ```
/// use std::collections::VecDeque;
/// use std::future::poll_fn;
/// use synack_device::{Device, MemoryLink, MemoryLinkConfig};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// let (mut a, mut b) = MemoryLink::pair(MemoryLinkConfig::default());
///
/// let mut packet = a.alloc();
/// packet.extend_from_slice(b"hello");
/// let mut outbox = VecDeque::from([packet]);
/// poll_fn(|cx| a.poll_send(cx, &mut outbox)).await?;
///
/// let mut inbox = Vec::new();
/// poll_fn(|cx| b.poll_recv(cx, &mut inbox, 16)).await?;
/// assert_eq!(inbox[0], b"hello");
/// b.recycle(inbox.pop().unwrap());
/// # Ok(())
/// # }
/// ```
pub struct MemoryLink {
    /// The other side's receive queues, in order: a packet goes to
    /// `tx[queue_of_packet(packet, tx.len())]`.
    tx: Vec<Arc<Channel>>,
    /// The queue this end receives from.
    rx: Arc<Channel>,
    config: MemoryLinkConfig,
    /// Which of its side's queues this end is.
    index: usize,
    /// Empty buffers for `alloc`, refilled from the other side's `returned`.
    free: Vec<Packet>,
    /// Buffers `recycle` took, going back to the senders at the next batch.
    give_back: Vec<Packet>,
    stats: LinkStats,
}

/// How many buffers an end's free list holds before it stops taking more.
const FREE_LIST: usize = 1024;

impl MemoryLink {
    /// The most empty buffers kept for reuse in each queue.
    pub const POOL_BUFFERS: usize = 4096;

    /// Creates the two ends of a wire. What one end sends, the other receives.
    pub fn pair(config: MemoryLinkConfig) -> (MemoryLink, MemoryLink) {
        let (mut a, mut b) = Self::multi_queue(config, 1, 1);
        (a.remove(0), b.remove(0))
    }

    /// Creates a wire with `a_queues` queues on one side and `b_queues` on
    /// the other, as a multi-queue NIC (RSS): each side is a list of ends,
    /// one per queue, that share the side's address and are driven
    /// separately, one stack per queue.
    ///
    /// A packet sent from any end of one side arrives at the end of the other
    /// side that [`queue_of_packet`](crate::queue_of_packet) picks: by a
    /// symmetric hash of its addresses and ports, so a connection's packets
    /// always reach the same queue, and with as many queues on both sides
    /// its packets both ways use the queues of the same index. Fragments and
    /// packets that are not TCP or UDP are steered by their addresses alone.
    ///
    /// # Panics
    ///
    /// If either count is zero.
    ///
    /// # Examples
    ///
    /// ```
    /// use synack_device::{MemoryLink, MemoryLinkConfig};
    ///
    /// let (server, client) = MemoryLink::multi_queue(MemoryLinkConfig::default(), 2, 1);
    /// assert_eq!((server.len(), client.len()), (2, 1));
    /// assert_eq!(server[1].queue_index(), 1);
    /// ```
    pub fn multi_queue(
        config: MemoryLinkConfig,
        a_queues: usize,
        b_queues: usize,
    ) -> (Vec<MemoryLink>, Vec<MemoryLink>) {
        assert!(
            a_queues > 0 && b_queues > 0,
            "a memory link needs at least one queue on each side"
        );
        let config = MemoryLinkConfig {
            queue_packets: config.queue_packets.max(1),
            ..config
        };
        // Every end of one side sends to every queue of the other.
        let a_rx: Vec<_> = (0..a_queues).map(|_| Channel::new(b_queues)).collect();
        let b_rx: Vec<_> = (0..b_queues).map(|_| Channel::new(a_queues)).collect();
        let end = |index: usize, rx: &Arc<Channel>, tx: &[Arc<Channel>]| MemoryLink {
            tx: tx.to_vec(),
            rx: rx.clone(),
            config,
            index,
            free: Vec::new(),
            give_back: Vec::new(),
            stats: LinkStats::default(),
        };
        let a = a_rx
            .iter()
            .enumerate()
            .map(|(i, rx)| end(i, rx, &b_rx))
            .collect();
        let b = b_rx
            .iter()
            .enumerate()
            .map(|(i, rx)| end(i, rx, &a_rx))
            .collect();
        (a, b)
    }

    /// The configuration the link was made with.
    pub fn config(&self) -> &MemoryLinkConfig {
        &self.config
    }

    /// Which queue of its side this end is (0 for [`pair`](Self::pair)).
    pub fn queue_index(&self) -> usize {
        self.index
    }

    /// How many queues the other side has.
    pub fn peer_queues(&self) -> usize {
        self.tx.len()
    }

    /// This end's counters.
    pub fn stats(&self) -> LinkStats {
        self.stats
    }

    /// How many packets wait in the queue towards this end.
    pub fn queued(&self) -> usize {
        self.rx.state().queue.len()
    }

    /// Whether the other side has been dropped (every end of it).
    pub fn is_peer_closed(&self) -> bool {
        self.tx
            .iter()
            .all(|c| c.flags.receiver_closed.load(Ordering::Acquire))
    }

    fn pooled(&mut self) -> Option<Packet> {
        if let Some(p) = self.free.pop() {
            return Some(p);
        }
        // Empty: take a batch of what the other side gave back, from the
        // first of its queues that has some (one lock for the batch).
        // The queue of this end's own index first: with as many queues on
        // both sides, that is where its flows go.
        let n = self.tx.len();
        let channel = (0..n)
            .map(|k| &self.tx[(self.index + k) % n])
            .find(|c| c.flags.has_returned.load(Ordering::Relaxed))?;
        take_returned(&mut self.free, channel, &mut channel.state());
        self.free.pop()
    }
}

/// Hands an end's recycled buffers to `channel`, the queue it receives
/// from, for the other side's senders; `st` is that queue's state, locked.
fn give_back_into(give_back: &mut Vec<Packet>, channel: &Channel, st: &mut ChannelState) {
    if give_back.is_empty() {
        return;
    }
    let room = MemoryLink::POOL_BUFFERS.saturating_sub(st.returned.len());
    give_back.truncate(room);
    st.returned.append(give_back);
    if !st.returned.is_empty() {
        channel.flags.has_returned.store(true, Ordering::Relaxed);
    }
}

/// Refills an end's free list from buffers the other side gave back to
/// `channel`, one of its queues; `st` is that queue's state, locked.
fn take_returned(free: &mut Vec<Packet>, channel: &Channel, st: &mut ChannelState) {
    if free.len() < FREE_LIST / 2 && !st.returned.is_empty() {
        let n = st.returned.len().min(FREE_LIST - free.len());
        let from = st.returned.len() - n;
        free.extend(st.returned.drain(from..));
        if st.returned.is_empty() {
            channel.flags.has_returned.store(false, Ordering::Relaxed);
        }
    }
}

impl fmt::Debug for MemoryLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryLink")
            .field("config", &self.config)
            .field("index", &self.index)
            .field("peer_queues", &self.tx.len())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl Device for MemoryLink {
    fn capabilities(&self) -> Capabilities {
        let offload = self.config.checksum_offload;
        Capabilities {
            medium: Medium::Ip,
            mtu: self.config.mtu,
            checksum: ChecksumOffload {
                rx: offload,
                tx: offload,
            },
        }
    }

    fn poll_recv(
        &mut self,
        cx: &mut Context<'_>,
        out: &mut Vec<Packet>,
        max: usize,
    ) -> Poll<io::Result<usize>> {
        if max == 0 {
            return Poll::Ready(Ok(0));
        }
        let mut st = self.rx.state();
        give_back_into(&mut self.give_back, &self.rx, &mut st);
        let n = st.queue.len().min(max);
        if n == 0 {
            if st.senders == 0 {
                return Poll::Ready(Err(broken_pipe()));
            }
            register(&mut st.rx_waker, cx);
            return Poll::Pending;
        }
        out.reserve(n);
        let mut bytes = 0;
        for packet in st.queue.drain(..n) {
            bytes += packet.len() as u64;
            out.push(packet);
        }
        let wakers = std::mem::take(&mut st.tx_wakers);
        drop(st);
        self.stats.received_packets += n as u64;
        self.stats.received_bytes += bytes;
        for waker in wakers {
            waker.wake();
        }
        Poll::Ready(Ok(n))
    }

    fn poll_send(
        &mut self,
        cx: &mut Context<'_>,
        packets: &mut VecDeque<Packet>,
    ) -> Poll<io::Result<usize>> {
        if self.is_peer_closed() {
            return Poll::Ready(Err(broken_pipe()));
        }
        if packets.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let mtu = self.config.mtu;
        let limit = self.config.queue_packets;
        let queues = self.tx.len();
        let mut taken = 0;
        let mut blocked = false;
        while !packets.is_empty() && !blocked {
            // One lock for the run of packets steered to the same queue.
            let target = queue_of_packet(packets.front().expect("not empty"), queues);
            let channel = &self.tx[target];
            let mut st = channel.state();
            take_returned(&mut self.free, channel, &mut st);
            let mut queued = 0;
            while let Some(front) = packets.front() {
                if queues > 1 && queue_of_packet(front, queues) != target {
                    break;
                }
                let oversize = front.len() > mtu;
                if oversize || st.receiver_closed {
                    let packet = packets.pop_front().expect("front exists");
                    if oversize {
                        tracing::debug!(
                            len = packet.len(),
                            mtu,
                            "memory link: dropping oversize packet"
                        );
                    }
                    self.stats.dropped_packets += 1;
                    if self.free.len() < FREE_LIST && packet.capacity() >= mtu {
                        self.free.push(packet);
                    }
                    taken += 1;
                    continue;
                }
                if st.queue.len() >= limit {
                    register_in(&mut st.tx_wakers, cx);
                    blocked = true;
                    break;
                }
                let packet = packets.pop_front().expect("front exists");
                self.stats.sent_packets += 1;
                self.stats.sent_bytes += packet.len() as u64;
                st.queue.push_back(packet);
                taken += 1;
                queued += 1;
            }
            let waker = if queued > 0 { st.rx_waker.take() } else { None };
            drop(st);
            if let Some(waker) = waker {
                waker.wake();
            }
        }
        if taken == 0 {
            return Poll::Pending;
        }
        Poll::Ready(Ok(taken))
    }

    fn alloc(&mut self) -> Packet {
        match self.pooled() {
            Some(mut packet) => {
                packet.clear();
                packet
            }
            None => Vec::with_capacity(self.config.mtu),
        }
    }

    fn alloc_sized(&mut self, len: usize) -> Packet {
        // A pooled buffer keeps the length (and bytes) of the packet it last
        // carried: only what lies beyond that needs filling.
        let reused = self.pooled();
        let mut packet = reused.unwrap_or_else(|| Vec::with_capacity(self.config.mtu.max(len)));
        if packet.len() >= len {
            packet.truncate(len);
        } else {
            packet.resize(len, 0);
        }
        packet
    }

    fn alloc_reused(&mut self) -> Packet {
        self.pooled()
            .unwrap_or_else(|| Vec::with_capacity(self.config.mtu))
    }

    fn receive_in_wake(&self) -> bool {
        // Wake-ups come from the other side's sends (and receives, for a
        // full queue), made by whatever task drives that side.
        true
    }

    fn recycle(&mut self, packet: Packet) {
        // A received packet's buffer came from the other side's `alloc`: it
        // goes back with this end's next batch. Buffers smaller than the MTU
        // are not worth keeping.
        if packet.capacity() >= self.config.mtu && self.give_back.len() < MemoryLink::POOL_BUFFERS {
            self.give_back.push(packet);
        }
    }
}

impl Drop for MemoryLink {
    fn drop(&mut self) {
        for channel in &self.tx {
            let waker = {
                let mut st = channel.state();
                st.senders -= 1;
                if st.senders == 0 {
                    st.rx_waker.take()
                } else {
                    None
                }
            };
            if let Some(waker) = waker {
                waker.wake();
            }
        }
        let wakers = {
            let mut st = self.rx.state();
            st.receiver_closed = true;
            self.rx.flags.receiver_closed.store(true, Ordering::Release);
            // Nobody will read these any more.
            st.queue.clear();
            st.returned.clear();
            self.rx.flags.has_returned.store(false, Ordering::Relaxed);
            std::mem::take(&mut st.tx_wakers)
        };
        for waker in wakers {
            waker.wake();
        }
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use std::future::poll_fn;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    /// A waker that counts how often it was woken.
    #[derive(Default)]
    struct CountingWaker(AtomicUsize);

    impl Wake for CountingWaker {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
        fn wake_by_ref(self: &Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    impl CountingWaker {
        fn count(&self) -> usize {
            self.0.load(Ordering::SeqCst)
        }
    }

    fn packet(link: &mut MemoryLink, bytes: &[u8]) -> Packet {
        let mut p = link.alloc();
        p.extend_from_slice(bytes);
        p
    }

    /// The receiving end's next poll, as its driver makes: buffers it
    /// recycled travel back to the sending side with it.
    fn settle(link: &mut MemoryLink) {
        let mut cx = Context::from_waker(Waker::noop());
        assert!(link.poll_recv(&mut cx, &mut Vec::new(), 1).is_pending());
    }

    async fn send_all(link: &mut MemoryLink, packets: Vec<Packet>) {
        let mut queue: VecDeque<Packet> = packets.into();
        while !queue.is_empty() {
            poll_fn(|cx| link.poll_send(cx, &mut queue)).await.unwrap();
        }
    }

    async fn recv(link: &mut MemoryLink, max: usize) -> io::Result<Vec<Packet>> {
        let mut out = Vec::new();
        poll_fn(|cx| link.poll_recv(cx, &mut out, max)).await?;
        Ok(out)
    }

    #[test]
    fn is_send() {
        fn assert_send<T: Send + 'static>() {}
        assert_send::<MemoryLink>();
    }

    #[tokio::test]
    async fn round_trip_both_ways() {
        let (mut a, mut b) = MemoryLink::pair(MemoryLinkConfig::default());
        let p = packet(&mut a, b"ping");
        send_all(&mut a, vec![p]).await;
        assert_eq!(recv(&mut b, 8).await.unwrap(), vec![b"ping".to_vec()]);

        let p = packet(&mut b, b"pong");
        send_all(&mut b, vec![p]).await;
        assert_eq!(recv(&mut a, 8).await.unwrap(), vec![b"pong".to_vec()]);

        let sa = a.stats();
        assert_eq!((sa.sent_packets, sa.sent_bytes), (1, 4));
        assert_eq!((sa.received_packets, sa.received_bytes), (1, 4));
        assert_eq!(sa.dropped_packets, 0);
        let caps = a.capabilities();
        assert_eq!(caps.medium, Medium::Ip);
        assert_eq!(caps.mtu, 1500);
        assert_eq!(caps.checksum, ChecksumOffload { rx: true, tx: true });
    }

    #[tokio::test]
    async fn batching_respects_max_and_wakes_once_per_call() {
        let (mut a, mut b) = MemoryLink::pair(MemoryLinkConfig::default());
        let counter = Arc::new(CountingWaker::default());
        let waker = Waker::from(counter.clone());
        let mut cx = Context::from_waker(&waker);

        // The receiver waits with the counting waker.
        let mut out = Vec::new();
        assert!(b.poll_recv(&mut cx, &mut out, 4).is_pending());

        let mut queue: VecDeque<Packet> = (0..10u8).map(|i| vec![i; 10]).collect();
        let sent = a.poll_send(&mut Context::from_waker(Waker::noop()), &mut queue);
        assert!(matches!(sent, Poll::Ready(Ok(10))));
        assert!(queue.is_empty());
        assert_eq!(counter.count(), 1, "one wake per poll_send call");

        assert!(matches!(
            b.poll_recv(&mut cx, &mut out, 4),
            Poll::Ready(Ok(4))
        ));
        assert!(matches!(
            b.poll_recv(&mut cx, &mut out, 4),
            Poll::Ready(Ok(4))
        ));
        assert!(matches!(
            b.poll_recv(&mut cx, &mut out, 4),
            Poll::Ready(Ok(2))
        ));
        assert!(b.poll_recv(&mut cx, &mut out, 4).is_pending());
        let expected: Vec<Packet> = (0..10u8).map(|i| vec![i; 10]).collect();
        assert_eq!(out, expected, "in order");
        assert_eq!(b.stats().received_packets, 10);
    }

    #[tokio::test]
    async fn backpressure_pending_then_woken() {
        let config = MemoryLinkConfig::default().with_queue_packets(2);
        let (mut a, mut b) = MemoryLink::pair(config);
        let counter = Arc::new(CountingWaker::default());
        let waker = Waker::from(counter.clone());
        let mut cx = Context::from_waker(&waker);

        let mut queue: VecDeque<Packet> = (0..3u8).map(|i| vec![i]).collect();
        assert!(matches!(
            a.poll_send(&mut cx, &mut queue),
            Poll::Ready(Ok(2))
        ));
        assert_eq!(queue.len(), 1);
        assert!(a.poll_send(&mut cx, &mut queue).is_pending());
        assert_eq!(queue.len(), 1);
        assert_eq!(counter.count(), 0);

        let got = recv(&mut b, 1).await.unwrap();
        assert_eq!(got, vec![vec![0u8]]);
        assert_eq!(counter.count(), 1, "the blocked sender is woken");

        assert!(matches!(
            a.poll_send(&mut cx, &mut queue),
            Poll::Ready(Ok(1))
        ));
        assert!(queue.is_empty());

        // Real tasks: a sender blocked on a full queue finishes once the receiver drains.
        let sender = tokio::spawn(async move {
            let packets = (0..100u8).map(|i| vec![i]).collect();
            send_all(&mut a, packets).await;
            a
        });
        let mut got = Vec::new();
        while got.len() < 102 {
            got.extend(recv(&mut b, 16).await.unwrap());
        }
        let a = sender.await.unwrap();
        assert_eq!(got.len(), 102);
        assert_eq!(
            &got[2..],
            &(0..100u8).map(|i| vec![i]).collect::<Vec<_>>()[..]
        );
        assert_eq!(a.stats().sent_packets, 103);
    }

    #[tokio::test]
    async fn receiver_is_woken_by_send() {
        let (mut a, mut b) = MemoryLink::pair(MemoryLinkConfig::default());
        let receiver = tokio::spawn(async move { recv(&mut b, 8).await.unwrap() });
        tokio::task::yield_now().await;
        send_all(&mut a, vec![b"x".to_vec()]).await;
        assert_eq!(receiver.await.unwrap(), vec![b"x".to_vec()]);
    }

    #[tokio::test]
    async fn alloc_sized_hands_out_a_recycled_buffer_of_the_length_asked() {
        let (mut a, mut b) = MemoryLink::pair(MemoryLinkConfig::default());
        // Fresh: zero-filled to the length.
        let first = a.alloc_sized(1500);
        assert_eq!(first.len(), 1500);
        assert!(first.iter().all(|&x| x == 0));
        let ptr = first.as_ptr();
        let mut p = first;
        p.truncate(40);
        p.fill(7);
        send_all(&mut a, vec![p]).await;
        let received = recv(&mut b, 1).await.unwrap().pop().unwrap();
        b.recycle(received);
        settle(&mut b);
        // Recycled: the same buffer, of the length asked for, whatever the
        // earlier packet left in it; `alloc` still hands out an empty one.
        let again = a.alloc_sized(1500);
        assert_eq!((again.as_ptr(), again.len()), (ptr, 1500));
        assert_eq!(&again[..40], &[7; 40][..]);
        let mut shorter = again;
        shorter.truncate(60);
        send_all(&mut a, vec![shorter]).await;
        let received = recv(&mut b, 1).await.unwrap().pop().unwrap();
        b.recycle(received);
        settle(&mut b);
        let shortest = a.alloc_sized(20);
        assert_eq!((shortest.as_ptr(), shortest.len()), (ptr, 20));
        send_all(&mut a, vec![shortest]).await;
        let received = recv(&mut b, 1).await.unwrap().pop().unwrap();
        b.recycle(received);
        settle(&mut b);
        let empty = a.alloc();
        assert_eq!(empty.as_ptr(), ptr);
        assert!(empty.is_empty());
    }

    #[tokio::test]
    async fn alloc_reused_hands_out_a_recycled_buffer_as_it_came_back() {
        let (mut a, mut b) = MemoryLink::pair(MemoryLinkConfig::default());
        // Nothing recycled yet: an empty buffer with room for one MTU.
        let first = a.alloc_reused();
        assert!(first.is_empty() && first.capacity() >= 1500);
        let ptr = first.as_ptr();
        let mut p = first;
        p.extend_from_slice(&[9; 60]);
        send_all(&mut a, vec![p]).await;
        let received = recv(&mut b, 1).await.unwrap().pop().unwrap();
        b.recycle(received);
        settle(&mut b);
        // Back: the same allocation, with the length and bytes it carried.
        let again = a.alloc_reused();
        assert_eq!((again.as_ptr(), again.len()), (ptr, 60));
        assert!(again.iter().all(|&x| x == 9));
    }

    #[tokio::test]
    async fn recycling_reuses_the_same_allocation() {
        let (mut a, mut b) = MemoryLink::pair(MemoryLinkConfig::default());
        let first = packet(&mut a, b"data");
        assert!(first.capacity() >= 1500);
        let ptr = first.as_ptr();
        send_all(&mut a, vec![first]).await;
        let mut got = recv(&mut b, 1).await.unwrap();
        let received = got.pop().unwrap();
        assert_eq!(received.as_ptr(), ptr, "no copy on the wire");
        b.recycle(received);
        settle(&mut b);

        let again = a.alloc();
        assert_eq!(again.as_ptr(), ptr, "alloc hands out the recycled buffer");
        assert!(again.is_empty());
        assert!(again.capacity() >= 1500);

        // The pool of the other direction is untouched.
        let other = b.alloc();
        assert_ne!(other.as_ptr(), ptr);

        // Steady flow: one buffer goes round and round.
        let mut buf = again;
        for i in 0..50u8 {
            buf.push(i);
            send_all(&mut a, vec![buf]).await;
            let p = recv(&mut b, 1).await.unwrap().pop().unwrap();
            assert_eq!(p.as_ptr(), ptr);
            b.recycle(p);
            settle(&mut b);
            buf = a.alloc();
            assert_eq!(buf.as_ptr(), ptr);
        }

        // Buffers smaller than the MTU are not pooled.
        b.recycle(buf);
        b.recycle(Vec::with_capacity(10));
        settle(&mut b);
        let pooled = a.alloc();
        assert_eq!(pooled.as_ptr(), ptr);
        let fresh = a.alloc();
        assert_ne!(fresh.as_ptr(), ptr);
        assert!(fresh.capacity() >= 1500);
    }

    #[tokio::test]
    async fn peer_drop_breaks_the_pipe_after_draining() {
        let (mut a, mut b) = MemoryLink::pair(MemoryLinkConfig::default());
        send_all(&mut a, vec![b"last".to_vec()]).await;
        assert!(!b.is_peer_closed());
        drop(a);
        assert!(b.is_peer_closed());
        assert_eq!(recv(&mut b, 8).await.unwrap(), vec![b"last".to_vec()]);
        let err = recv(&mut b, 8).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);

        let mut queue = VecDeque::from([b"x".to_vec()]);
        let err = poll_fn(|cx| b.poll_send(cx, &mut queue)).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
        assert_eq!(queue.len(), 1);
    }

    #[tokio::test]
    async fn peer_drop_wakes_waiting_tasks() {
        // A receiver waiting for packets notices the drop.
        let (a, mut b) = MemoryLink::pair(MemoryLinkConfig::default());
        let receiver = tokio::spawn(async move { recv(&mut b, 8).await });
        tokio::task::yield_now().await;
        drop(a);
        let err = receiver.await.unwrap().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);

        // A sender blocked on a full queue notices the drop.
        let (mut a, b) = MemoryLink::pair(MemoryLinkConfig::default().with_queue_packets(1));
        let sender = tokio::spawn(async move {
            let mut queue = VecDeque::from([vec![1], vec![2]]);
            loop {
                if let Err(e) = poll_fn(|cx| a.poll_send(cx, &mut queue)).await {
                    return e;
                }
            }
        });
        tokio::task::yield_now().await;
        drop(b);
        let err = sender.await.unwrap();
        assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
    }

    #[tokio::test]
    async fn oversize_packets_are_dropped_and_counted() {
        let config = MemoryLinkConfig::default()
            .with_mtu(100)
            .with_queue_packets(1);
        let (mut a, mut b) = MemoryLink::pair(config);
        let mut queue = VecDeque::from([vec![0; 101], vec![1; 100], vec![2; 200], vec![3; 5]]);
        let mut cx = Context::from_waker(Waker::noop());
        // The oversize packets are taken even though only one fits in the queue.
        assert!(matches!(
            a.poll_send(&mut cx, &mut queue),
            Poll::Ready(Ok(3))
        ));
        assert_eq!(queue.len(), 1);
        let stats = a.stats();
        assert_eq!(stats.dropped_packets, 2);
        assert_eq!((stats.sent_packets, stats.sent_bytes), (1, 100));
        assert_eq!(recv(&mut b, 8).await.unwrap(), vec![vec![1; 100]]);
        // A queue holding only oversize packets never blocks.
        let mut queue = VecDeque::from([vec![0; 101]]);
        assert!(matches!(
            a.poll_send(&mut cx, &mut queue),
            Poll::Ready(Ok(1))
        ));
        assert_eq!(a.stats().dropped_packets, 3);
    }

    #[tokio::test]
    async fn empty_send_and_zero_max() {
        let (mut a, mut b) = MemoryLink::pair(MemoryLinkConfig::default());
        let mut cx = Context::from_waker(Waker::noop());
        assert!(matches!(
            a.poll_send(&mut cx, &mut VecDeque::new()),
            Poll::Ready(Ok(0))
        ));
        assert!(matches!(
            b.poll_recv(&mut cx, &mut Vec::new(), 0),
            Poll::Ready(Ok(0))
        ));
        assert!(b.poll_recv(&mut cx, &mut Vec::new(), 1).is_pending());
    }

    fn tcp(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16) -> Packet {
        let mut p = vec![0u8; 40];
        p[0] = 0x45;
        p[9] = 6;
        p[12..16].copy_from_slice(&src);
        p[16..20].copy_from_slice(&dst);
        p[20..22].copy_from_slice(&sport.to_be_bytes());
        p[22..24].copy_from_slice(&dport.to_be_bytes());
        p
    }

    #[tokio::test]
    async fn multi_queue_steers_each_flow_to_one_queue_both_ways() {
        let (mut servers, mut clients) = MemoryLink::multi_queue(MemoryLinkConfig::default(), 3, 3);
        let server = crate::queue_of;
        let mut per_queue = [0usize; 3];
        for port in 40000..40030u16 {
            let q = server(
                ([192, 0, 2, 1], 80).into(),
                ([192, 0, 2, 2], port).into(),
                3,
            );
            per_queue[q] += 1;
            // Sent from client end 0 (any end may send): it arrives at server end q.
            let p = tcp([192, 0, 2, 2], [192, 0, 2, 1], port, 80);
            send_all(&mut clients[0], vec![p.clone()]).await;
            for (i, end) in servers.iter_mut().enumerate() {
                assert_eq!(end.queued(), usize::from(i == q), "port {port}");
            }
            assert_eq!(recv(&mut servers[q], 8).await.unwrap(), vec![p]);
            // The reply, from server end q, arrives at client end q.
            let r = tcp([192, 0, 2, 1], [192, 0, 2, 2], 80, port);
            send_all(&mut servers[q], vec![r.clone()]).await;
            assert_eq!(recv(&mut clients[q], 8).await.unwrap(), vec![r]);
        }
        assert!(per_queue.iter().all(|&n| n > 0), "{per_queue:?}");
        let sent: u64 = servers.iter().map(|e| e.stats().sent_packets).sum();
        assert_eq!(sent, 30);
    }

    #[tokio::test]
    async fn multi_queue_pipe_breaks_when_the_whole_other_side_is_gone() {
        let (mut servers, mut clients) = MemoryLink::multi_queue(MemoryLinkConfig::default(), 2, 1);
        let mut client = clients.pop().unwrap();
        // A flow steered to a queue whose end is gone is dropped and counted.
        let gone = servers.remove(1);
        drop(gone);
        assert!(!client.is_peer_closed());
        let to_gone = (1000..u16::MAX)
            .map(|port| tcp([192, 0, 2, 2], [192, 0, 2, 1], port, 80))
            .find(|p| crate::queue_of_packet(p, 2) == 1)
            .unwrap();
        let mut queue = VecDeque::from([to_gone]);
        let mut cx = Context::from_waker(Waker::noop());
        assert!(matches!(
            client.poll_send(&mut cx, &mut queue),
            Poll::Ready(Ok(1))
        ));
        assert_eq!(client.stats().dropped_packets, 1);
        // The client end still hears from the server end that is left.
        let p = tcp([192, 0, 2, 1], [192, 0, 2, 2], 80, 5);
        send_all(&mut servers[0], vec![p.clone()]).await;
        drop(servers);
        assert!(client.is_peer_closed());
        assert_eq!(recv(&mut client, 8).await.unwrap(), vec![p]);
        let err = recv(&mut client, 8).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
    }
}
