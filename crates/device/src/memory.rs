//! [`MemoryLink`]: two ends of an in-process wire.

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

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
    /// How many packets each direction holds before senders get `Pending`
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
    /// The default configuration: MTU 1500, 1024 packets per direction, checksum offload.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the MTU.
    pub fn with_mtu(mut self, mtu: usize) -> Self {
        self.mtu = mtu;
        self
    }

    /// Sets the per-direction queue limit, in packets.
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

/// Counters of one end of a [`MemoryLink`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LinkStats {
    /// Packets this end put on the wire.
    pub sent_packets: u64,
    /// Bytes of the packets this end put on the wire.
    pub sent_bytes: u64,
    /// Packets this end was given to send but dropped because they exceeded the MTU.
    pub dropped_packets: u64,
    /// Packets this end took off the wire.
    pub received_packets: u64,
    /// Bytes of the packets this end took off the wire.
    pub received_bytes: u64,
}

/// One direction of the wire: a queue shared by its sending and receiving end.
struct Channel {
    state: Mutex<ChannelState>,
    /// Empty buffers given back by the receiver, for the sender to reuse.
    pool: Mutex<Vec<Packet>>,
}

#[derive(Default)]
struct ChannelState {
    queue: VecDeque<Packet>,
    /// The receiver, waiting for a packet.
    rx_waker: Option<Waker>,
    /// The sender, waiting for room in the queue.
    tx_waker: Option<Waker>,
    sender_closed: bool,
    receiver_closed: bool,
    sent_packets: u64,
    sent_bytes: u64,
    dropped_packets: u64,
    received_packets: u64,
    received_bytes: u64,
}

impl Channel {
    fn new() -> Arc<Self> {
        Arc::new(Channel {
            state: Mutex::new(ChannelState::default()),
            pool: Mutex::new(Vec::new()),
        })
    }

    fn state(&self) -> MutexGuard<'_, ChannelState> {
        // A panic while holding the lock cannot leave the queue inconsistent:
        // keep going with whatever it holds.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn pool(&self) -> MutexGuard<'_, Vec<Packet>> {
        self.pool.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn register(slot: &mut Option<Waker>, cx: &Context<'_>) {
    match slot {
        Some(w) if w.will_wake(cx.waker()) => {}
        _ => *slot = Some(cx.waker().clone()),
    }
}

fn broken_pipe() -> io::Error {
    io::Error::new(
        io::ErrorKind::BrokenPipe,
        "the other end of the memory link is gone",
    )
}

/// One end of an in-process wire, made by [`MemoryLink::pair`].
///
/// Each direction is a bounded queue: [`poll_send`](Device::poll_send) returns
/// `Pending` when the queue is full, and the receiver wakes the sender when it makes
/// room. Buffers given back with [`recycle`](Device::recycle) on the receiving end
/// are handed out again by [`alloc`](Device::alloc) on the sending end, so a steady
/// flow allocates nothing per packet.
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
    /// The direction this end sends on.
    tx: Arc<Channel>,
    /// The direction this end receives from.
    rx: Arc<Channel>,
    config: MemoryLinkConfig,
}

impl MemoryLink {
    /// The most empty buffers kept for reuse in each direction.
    pub const POOL_BUFFERS: usize = 4096;

    /// Creates the two ends of a wire. What one end sends, the other receives.
    pub fn pair(config: MemoryLinkConfig) -> (MemoryLink, MemoryLink) {
        let config = MemoryLinkConfig {
            queue_packets: config.queue_packets.max(1),
            ..config
        };
        let a_to_b = Channel::new();
        let b_to_a = Channel::new();
        let a = MemoryLink {
            tx: a_to_b.clone(),
            rx: b_to_a.clone(),
            config,
        };
        let b = MemoryLink {
            tx: b_to_a,
            rx: a_to_b,
            config,
        };
        (a, b)
    }

    /// The configuration the link was made with.
    pub fn config(&self) -> &MemoryLinkConfig {
        &self.config
    }

    /// This end's counters.
    pub fn stats(&self) -> LinkStats {
        let (sent_packets, sent_bytes, dropped_packets) = {
            let tx = self.tx.state();
            (tx.sent_packets, tx.sent_bytes, tx.dropped_packets)
        };
        let rx = self.rx.state();
        LinkStats {
            sent_packets,
            sent_bytes,
            dropped_packets,
            received_packets: rx.received_packets,
            received_bytes: rx.received_bytes,
        }
    }

    /// How many packets wait in the queue towards this end.
    pub fn queued(&self) -> usize {
        self.rx.state().queue.len()
    }

    /// Whether the other end has been dropped.
    pub fn is_peer_closed(&self) -> bool {
        self.tx.state().receiver_closed
    }
}

impl fmt::Debug for MemoryLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryLink")
            .field("config", &self.config)
            .field("stats", &self.stats())
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
        let sender = {
            let mut st = self.rx.state();
            let n = st.queue.len().min(max);
            if n == 0 {
                if st.sender_closed {
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
            st.received_packets += n as u64;
            st.received_bytes += bytes;
            (st.tx_waker.take(), n)
        };
        let (waker, n) = sender;
        if let Some(waker) = waker {
            waker.wake();
        }
        Poll::Ready(Ok(n))
    }

    fn poll_send(
        &mut self,
        cx: &mut Context<'_>,
        packets: &mut VecDeque<Packet>,
    ) -> Poll<io::Result<usize>> {
        let mtu = self.config.mtu;
        let limit = self.config.queue_packets;
        let mut oversize = Vec::new();
        let (taken, waker) = {
            let mut st = self.tx.state();
            if st.receiver_closed {
                return Poll::Ready(Err(broken_pipe()));
            }
            if packets.is_empty() {
                return Poll::Ready(Ok(0));
            }
            let mut taken = 0;
            let mut queued = 0;
            while let Some(front) = packets.front() {
                if front.len() > mtu {
                    let packet = packets.pop_front().expect("front exists");
                    tracing::debug!(
                        len = packet.len(),
                        mtu,
                        "memory link: dropping oversize packet"
                    );
                    st.dropped_packets += 1;
                    oversize.push(packet);
                    taken += 1;
                    continue;
                }
                if st.queue.len() >= limit {
                    break;
                }
                let packet = packets.pop_front().expect("front exists");
                st.sent_packets += 1;
                st.sent_bytes += packet.len() as u64;
                st.queue.push_back(packet);
                taken += 1;
                queued += 1;
            }
            if taken == 0 {
                register(&mut st.tx_waker, cx);
                return Poll::Pending;
            }
            let waker = if queued > 0 { st.rx_waker.take() } else { None };
            (taken, waker)
        };
        if let Some(waker) = waker {
            waker.wake();
        }
        for packet in oversize {
            self.tx_recycle(packet);
        }
        Poll::Ready(Ok(taken))
    }

    fn alloc(&mut self) -> Packet {
        let reused = self.tx.pool().pop();
        match reused {
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
        let reused = self.tx.pool().pop();
        let mut packet = reused.unwrap_or_else(|| Vec::with_capacity(self.config.mtu.max(len)));
        if packet.len() >= len {
            packet.truncate(len);
        } else {
            packet.resize(len, 0);
        }
        packet
    }

    fn recycle(&mut self, packet: Packet) {
        // A received packet's buffer came from the other end's `alloc`: give it
        // back to the pool of the direction it travelled.
        put_in_pool(&self.rx, packet, self.config.mtu);
    }
}

impl MemoryLink {
    /// Gives a buffer this end failed to send back to its own pool.
    fn tx_recycle(&self, packet: Packet) {
        put_in_pool(&self.tx, packet, self.config.mtu);
    }
}

/// Pools a buffer with its length and bytes as they are: `alloc` clears it,
/// `alloc_sized` fills only what lies beyond its old length.
fn put_in_pool(channel: &Channel, packet: Packet, mtu: usize) {
    if packet.capacity() < mtu {
        return;
    }
    let mut pool = channel.pool();
    if pool.len() < MemoryLink::POOL_BUFFERS {
        pool.push(packet);
    }
}

impl Drop for MemoryLink {
    fn drop(&mut self) {
        let rx_waker = {
            let mut st = self.tx.state();
            st.sender_closed = true;
            st.rx_waker.take()
        };
        let tx_waker = {
            let mut st = self.rx.state();
            st.receiver_closed = true;
            // Nobody will read these any more.
            st.queue.clear();
            st.tx_waker.take()
        };
        if let Some(waker) = rx_waker {
            waker.wake();
        }
        if let Some(waker) = tx_waker {
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
        let shortest = a.alloc_sized(20);
        assert_eq!((shortest.as_ptr(), shortest.len()), (ptr, 20));
        send_all(&mut a, vec![shortest]).await;
        let received = recv(&mut b, 1).await.unwrap().pop().unwrap();
        b.recycle(received);
        let empty = a.alloc();
        assert_eq!(empty.as_ptr(), ptr);
        assert!(empty.is_empty());
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
            buf = a.alloc();
            assert_eq!(buf.as_ptr(), ptr);
        }

        // Buffers smaller than the MTU are not pooled.
        b.recycle(buf);
        b.recycle(Vec::with_capacity(10));
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
}
