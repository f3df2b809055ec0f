//! [`Tun`]: a Linux TUN interface driven through tokio's `AsyncFd`.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tun_rs::{DeviceBuilder, SyncDevice};

use crate::{Capabilities, ChecksumOffload, Device, Medium, Packet};

/// The most empty buffers a [`Tun`] keeps for reuse.
const POOL_BUFFERS: usize = 1024;

/// Checks what creating an interface needs of the caller: a tokio runtime
/// (the descriptor registers with its reactor) and an MTU that fits; returns
/// the MTU as the kernel takes it.
fn creatable(call: &str, mtu: usize) -> io::Result<u16> {
    if tokio::runtime::Handle::try_current().is_err() {
        return Err(io::Error::other(format!(
            "{call} must be called within a tokio runtime"
        )));
    }
    u16::try_from(mtu).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("MTU {mtu} does not fit a TUN interface"),
        )
    })
}

/// A parked wait for the error readiness of the descriptor.
type ErrorWait = Pin<Box<dyn Future<Output = io::Result<()>> + Send>>;

/// A Linux TUN interface carrying raw IPv4/IPv6 packets (`IFF_TUN | IFF_NO_PI`).
///
/// The file descriptor is non-blocking and registered with tokio's reactor
/// through [`AsyncFd`], so a `Tun` must be created inside a tokio runtime with IO
/// enabled.
///
/// [`Tun::create`] brings the interface up (`IFF_UP`) and sets its MTU, but gives it
/// no address: configure addresses and routes with `ip` (or netlink). Moving the
/// interface to another network namespace (`ip link set NAME netns NS`) takes it
/// down again; bring it up there with `ip link set NAME up`.
///
/// The interface lives as long as this `Tun` (its file descriptor) does, unless it
/// was made persistent beforehand. If the interface is deleted under it (`ip link
/// del`, or its network namespace is destroyed), [`poll_recv`](Device::poll_recv)
/// and [`poll_send`](Device::poll_send) return an error instead of waiting forever.
///
/// Received and sent buffers are pooled: [`recycle`](Device::recycle) received
/// packets and build outbound ones in buffers from [`alloc`](Device::alloc).
/// Checksums are not offloaded: the kernel verifies what it receives.
///
/// # Examples
///
/// Not run here: creating an interface needs `CAP_NET_ADMIN`.
///
/// ```no_run
/// use synack_device::{Device, Tun};
///
/// # #[tokio::main]
/// # async fn main() -> std::io::Result<()> {
/// let tun = Tun::create("synack0", 1500)?;
/// assert_eq!(tun.capabilities().mtu, 1500);
/// // Then: ip addr add 192.0.2.1/24 dev synack0
/// # Ok(())
/// # }
/// ```
pub struct Tun {
    fd: Arc<AsyncFd<SyncDevice>>,
    /// Waits for `EPOLLERR`, the only event a TUN descriptor reports once its
    /// interface is gone (tokio's read and write readiness never fire then).
    error_wait: Option<ErrorWait>,
    name: String,
    mtu: usize,
    pool: Vec<Packet>,
    dropped_packets: u64,
    rx_dropped_packets: u64,
}

impl Tun {
    /// Creates the TUN interface `name`, or attaches to it if it exists (and is
    /// persistent and not in use), with the given MTU, and brings it up.
    ///
    /// Must be called inside a tokio runtime with IO enabled. Needs
    /// `CAP_NET_ADMIN` and access to `/dev/net/tun`.
    pub fn create(name: &str, mtu: usize) -> io::Result<Tun> {
        let mtu16 = creatable("Tun::create", mtu)?;
        let device = DeviceBuilder::new()
            .name(name)
            .mtu(mtu16)
            .enable(true)
            .build_sync()?;
        Tun::from_device(device, mtu)
    }

    /// Creates the TUN interface `name` with `queues` queues
    /// (`IFF_MULTI_QUEUE`), one `Tun` per queue, for one stack per queue
    /// ([`StackSet`](https://docs.rs/synack/latest/synack/shard/struct.StackSet.html)
    /// in synack). Same requirements as [`create`](Tun::create).
    ///
    /// The kernel spreads what it sends over the queues by its own
    /// symmetric hash of each flow's addresses and ports, so every packet of
    /// a connection the kernel opens reaches one queue, whose stack answers
    /// on it: a sharded *server* works. A connection a stack opens gets its
    /// replies on the queue the kernel's hash picks, which need not be that
    /// stack's (the kernel's flow table is meant to follow the queue a flow
    /// last wrote to; on Linux 6.18 the replies did not): open outgoing
    /// connections from a stack on a single-queue device.
    ///
    /// # Errors
    ///
    /// `InvalidInput` for no queues, or as [`create`](Tun::create).
    pub fn multi_queue(name: &str, mtu: usize, queues: usize) -> io::Result<Vec<Tun>> {
        let mtu16 = creatable("Tun::multi_queue", mtu)?;
        if queues == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a TUN interface needs at least one queue",
            ));
        }
        let first = DeviceBuilder::new()
            .name(name)
            .mtu(mtu16)
            .multi_queue(true)
            .enable(true)
            .build_sync()?;
        let more = (1..queues)
            .map(|_| first.try_clone())
            .collect::<io::Result<Vec<_>>>()?;
        std::iter::once(first)
            .chain(more)
            .map(|d| Tun::from_device(d, mtu))
            .collect()
    }

    /// Wraps one open queue of an interface.
    fn from_device(device: SyncDevice, mtu: usize) -> io::Result<Tun> {
        device.set_nonblocking(true)?;
        let name = device.name()?;
        // SAFETY: `SyncDevice` owns its descriptor (opened by `build_sync`) and
        // closes it only when dropped; `as_raw_fd` always returns that descriptor.
        // The `AsyncFd` owns the device from here on and no `&mut SyncDevice` is
        // ever handed out, so the descriptor stays open and unchanged while registered.
        let fd = unsafe { AsyncFd::register(device) }.map_err(|e| e.into_parts().1)?;
        tracing::debug!(%name, mtu, "tun: created");
        Ok(Tun {
            fd: Arc::new(fd),
            error_wait: None,
            name,
            mtu,
            pool: Vec::new(),
            dropped_packets: 0,
            rx_dropped_packets: 0,
        })
    }

    /// The interface's name, as the kernel reports it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The MTU given to [`create`](Tun::create) (the largest packet sent or received).
    pub fn mtu(&self) -> usize {
        self.mtu
    }

    /// Outbound packets dropped so far: longer than the MTU, empty, or refused by
    /// the kernel as malformed.
    pub fn dropped_packets(&self) -> u64 {
        self.dropped_packets
    }

    /// Received packets dropped so far because they were longer than the MTU
    /// (possible only if the interface's MTU was raised after creation).
    pub fn rx_dropped_packets(&self) -> u64 {
        self.rx_dropped_packets
    }

    fn put_buffer(&mut self, mut buf: Packet) {
        if buf.capacity() >= self.mtu && self.pool.len() < POOL_BUFFERS {
            buf.clear();
            self.pool.push(buf);
        }
    }

    fn read_buffer(&mut self) -> Packet {
        let mut buf = self.pool.pop().unwrap_or_default();
        buf.resize(self.mtu, 0);
        buf
    }

    /// Polls for an error condition on the descriptor. The readiness is not
    /// cleared: the read or write that follows reports the error.
    fn poll_error(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let wait = self.error_wait.get_or_insert_with(|| {
            let fd = self.fd.clone();
            Box::pin(async move { fd.ready(Interest::ERROR).await.map(drop) })
        });
        let polled = wait.as_mut().poll(cx);
        if polled.is_ready() {
            self.error_wait = None;
        }
        polled
    }
}

impl fmt::Debug for Tun {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tun")
            .field("name", &self.name)
            .field("mtu", &self.mtu)
            .field("dropped_packets", &self.dropped_packets)
            .field("rx_dropped_packets", &self.rx_dropped_packets)
            .finish_non_exhaustive()
    }
}

/// What one read from the descriptor gave.
enum Read {
    Packet(Packet),
    /// Nothing (would block, interrupted, or a dropped packet); the buffer comes back.
    Nothing(Packet),
    WouldBlock(Packet),
    Failed(io::Error),
}

impl Tun {
    fn classify_read(&mut self, result: io::Result<usize>, mut buf: Packet) -> Read {
        match result {
            Ok(len) if len <= buf.len() => {
                buf.truncate(len);
                Read::Packet(buf)
            }
            Ok(len) => {
                // The kernel truncates a packet longer than the buffer but reports
                // its full length (the interface's MTU was raised behind our back).
                tracing::warn!(len, mtu = self.mtu, "tun: dropping truncated packet");
                self.rx_dropped_packets += 1;
                Read::Nothing(buf)
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Read::Nothing(buf),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Read::WouldBlock(buf),
            Err(e) => {
                self.put_buffer(buf);
                Read::Failed(e)
            }
        }
    }

    /// `Ready(Ok(n))` if packets were moved already (the error comes on the next
    /// call), else `otherwise`.
    fn ready_or(n: usize, otherwise: Poll<io::Result<usize>>) -> Poll<io::Result<usize>> {
        if n > 0 { Poll::Ready(Ok(n)) } else { otherwise }
    }
}

impl Device for Tun {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            medium: Medium::Ip,
            mtu: self.mtu,
            checksum: ChecksumOffload::default(),
        }
    }

    fn poll_recv(
        &mut self,
        cx: &mut Context<'_>,
        out: &mut Vec<Packet>,
        max: usize,
    ) -> Poll<io::Result<usize>> {
        let mut n = 0;
        let mut spare: Option<Packet> = None;
        let result = 'outer: loop {
            if n >= max {
                break Poll::Ready(Ok(n));
            }
            let fd = self.fd.clone();
            let mut guard = match fd.poll_read_ready(cx) {
                Poll::Ready(Ok(guard)) => guard,
                Poll::Ready(Err(e)) => break Self::ready_or(n, Poll::Ready(Err(e))),
                Poll::Pending if n > 0 => break Poll::Ready(Ok(n)),
                Poll::Pending => match self.poll_error(cx) {
                    Poll::Pending => break Poll::Pending,
                    Poll::Ready(Err(e)) => break Poll::Ready(Err(e)),
                    Poll::Ready(Ok(())) => {
                        // The descriptor reports an error: a read returns it.
                        let mut buf = spare.take().unwrap_or_else(|| self.read_buffer());
                        let result = fd.get_ref().recv(&mut buf);
                        match self.classify_read(result, buf) {
                            Read::Packet(packet) => {
                                out.push(packet);
                                n += 1;
                                continue;
                            }
                            Read::Nothing(buf) => {
                                spare = Some(buf);
                                continue;
                            }
                            // Not an error after all; the read waker is registered.
                            Read::WouldBlock(buf) => {
                                spare = Some(buf);
                                break Poll::Pending;
                            }
                            Read::Failed(e) => break Poll::Ready(Err(e)),
                        }
                    }
                },
            };
            while n < max {
                let mut buf = spare.take().unwrap_or_else(|| self.read_buffer());
                match guard.try_io(|fd| fd.get_ref().recv(&mut buf)) {
                    Ok(result) => match self.classify_read(result, buf) {
                        Read::Packet(packet) => {
                            out.push(packet);
                            n += 1;
                        }
                        Read::Nothing(buf) | Read::WouldBlock(buf) => spare = Some(buf),
                        Read::Failed(e) => break 'outer Self::ready_or(n, Poll::Ready(Err(e))),
                    },
                    Err(_would_block) => {
                        // Readiness is cleared: poll again to register the waker.
                        spare = Some(buf);
                        break;
                    }
                }
            }
        };
        if let Some(buf) = spare {
            self.put_buffer(buf);
        }
        result
    }

    fn poll_send(
        &mut self,
        cx: &mut Context<'_>,
        packets: &mut VecDeque<Packet>,
    ) -> Poll<io::Result<usize>> {
        let mut n = 0;
        loop {
            // Packets that cannot go out are dropped without asking the kernel.
            while let Some(front) = packets.front() {
                if front.len() <= self.mtu && !front.is_empty() {
                    break;
                }
                tracing::debug!(len = front.len(), mtu = self.mtu, "tun: dropping packet");
                let packet = packets.pop_front().expect("front exists");
                self.dropped_packets += 1;
                self.put_buffer(packet);
                n += 1;
            }
            if packets.is_empty() {
                return Poll::Ready(Ok(n));
            }
            let fd = self.fd.clone();
            let mut guard = match fd.poll_write_ready(cx) {
                Poll::Ready(Ok(guard)) => guard,
                Poll::Ready(Err(e)) => return Self::ready_or(n, Poll::Ready(Err(e))),
                Poll::Pending if n > 0 => return Poll::Ready(Ok(n)),
                Poll::Pending => {
                    return match self.poll_error(cx) {
                        Poll::Pending => Poll::Pending,
                        Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                        Poll::Ready(Ok(())) => {
                            // The descriptor reports an error: a write returns it.
                            let front = packets.front().expect("not empty");
                            match fd.get_ref().send(front) {
                                Ok(_) => {
                                    let packet = packets.pop_front().expect("not empty");
                                    self.put_buffer(packet);
                                    Poll::Ready(Ok(1))
                                }
                                Err(e) if e.kind() == io::ErrorKind::WouldBlock => Poll::Pending,
                                Err(e) => Poll::Ready(Err(e)),
                            }
                        }
                    };
                }
            };
            while let Some(front) = packets.front() {
                if front.len() > self.mtu || front.is_empty() {
                    break;
                }
                match guard.try_io(|fd| fd.get_ref().send(front)) {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Ok(Err(e)) if e.kind() == io::ErrorKind::InvalidInput => {
                        // EINVAL: the kernel refused the packet (not IPv4/IPv6).
                        tracing::debug!(error = %e, "tun: kernel refused a packet; dropped");
                        self.dropped_packets += 1;
                    }
                    Ok(Err(e)) => return Self::ready_or(n, Poll::Ready(Err(e))),
                    Err(_would_block) => break,
                }
                let packet = packets.pop_front().expect("front exists");
                self.put_buffer(packet);
                n += 1;
            }
        }
    }

    fn alloc(&mut self) -> Packet {
        self.pool
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(self.mtu))
    }

    fn recycle(&mut self, packet: Packet) {
        self.put_buffer(packet);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_send() {
        fn assert_send<T: Send + 'static>() {}
        assert_send::<Tun>();
    }

    #[test]
    fn create_outside_a_runtime_is_an_error() {
        let err = Tun::create("synack-nort", 1500).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::Other);
    }

    #[tokio::test]
    async fn oversize_mtu_is_refused() {
        let err = Tun::create("synack-big", 70_000).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }
}
