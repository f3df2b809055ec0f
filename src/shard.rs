//! One host on several cores: [`StackSet`], N stacks sharing one address over
//! a multi-queue device, and [`ShardedListener`], a listener on all of them.
//!
//! A multi-queue NIC spreads flows over its queues by a hash of each packet's
//! addresses and ports (receive-side scaling); a kernel then handles each
//! queue on its own core. `StackSet` does the same in user space: one
//! [`Stack`] per queue (a *shard*), each with the same address and its own
//! driver, tables and timers, so shards share nothing and never wait for one
//! another. A connection lives on the shard its packets are steered to:
//!
//! - connections *accepted* land on whichever shard the client's flow hashes
//!   to, so a [`ShardedListener`] listens on every shard (the same port) and
//!   [`accept`](ShardedListener::accept) takes from all of them;
//! - connections *opened* by [`StackSet::connect_on`] pick a local port whose
//!   flow hashes back to the shard that opens it
//!   ([`synack_device::queue_of`], the hash
//!   [`MemoryLink::multi_queue`](crate::device::MemoryLink::multi_queue)
//!   steers by), so the replies reach the stack that waits for them.
//!
//! For one shard per core, build each shard's stack on its own thread (a
//! current-thread runtime per thread, so each driver stays on its core) and
//! put the stacks together with [`StackSet::new`]; `benches/multicore.rs`
//! runs that way. [`StackSet::on_devices`] builds all shards on the current
//! runtime, for a multi-thread runtime to spread.
//!
//! UDP sockets, addresses and host names are per stack: use
//! [`StackSet::shards`] for them.
//!
//! Over a multi-queue TUN interface (`device::Tun::multi_queue`) the kernel
//! steers by a hash of its own: a `StackSet` there serves the connections
//! the kernel opens, but a connection a shard opens may get its replies on
//! another shard's queue, so `connect_on` is for devices that steer by
//! [`synack_device::queue_of`]. IP fragments are steered by their addresses
//! alone, so a fragmented TCP segment may reach a shard that does not hold
//! its connection.

use std::future::poll_fn;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::task::{Context, Poll};

use synack_device::{Device, queue_of};
use synack_engine::SocketOptions;

use crate::error::ipv6_unsupported;
use crate::net::{DEFAULT_BACKLOG, TcpListener, TcpStream, ToSocketAddrs, no_addresses, resolve};
use crate::stack::Stack;

/// N stacks with one address, one per queue of a multi-queue device: one
/// host whose work is spread over cores by a hash of each flow's addresses
/// and ports. See the [module documentation](self).
///
/// Cloning a `StackSet` is cheap and shares it.
///
/// # Examples
///
/// A two-shard server, a one-queue client; connections spread over the
/// shards and one accept loop takes them all:
///
/// ```
/// use std::net::Ipv4Addr;
/// use synack::Stack;
/// use synack::device::{MemoryLink, MemoryLinkConfig};
/// use synack::net::TcpStream;
/// use synack::shard::StackSet;
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// let (server_queues, mut client_queue) =
///     MemoryLink::multi_queue(MemoryLinkConfig::default(), 2, 1);
/// let server = StackSet::on_devices(server_queues, Ipv4Addr::new(192, 0, 2, 1), 24)?;
/// let client = Stack::new(client_queue.remove(0), Ipv4Addr::new(192, 0, 2, 2), 24);
///
/// let listener = server.bind("192.0.2.1:80").await?;
/// tokio::spawn(async move {
///     loop {
///         let (mut stream, _peer) = listener.accept().await?;
///         tokio::spawn(async move {
///             let mut byte = [0; 1];
///             stream.read_exact(&mut byte).await?;
///             stream.write_all(&byte).await
///         });
///     }
///     #[allow(unreachable_code)]
///     Ok::<_, std::io::Error>(())
/// });
///
/// for i in 0..8u8 {
///     let mut stream = TcpStream::connect_on(&client, "192.0.2.1:80").await?;
///     stream.write_all(&[i]).await?;
///     let mut reply = [0; 1];
///     stream.read_exact(&mut reply).await?;
///     assert_eq!(reply, [i]);
/// }
/// let per_shard: Vec<u64> = server
///     .shards()
///     .iter()
///     .map(|s| s.stats().connections_established)
///     .collect();
/// assert_eq!(per_shard.iter().sum::<u64>(), 8);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct StackSet {
    inner: Arc<Inner>,
}

struct Inner {
    shards: Vec<Stack>,
    /// Per shard: where the next steered port search starts, as an offset
    /// into the ephemeral range.
    cursors: Vec<Cursor>,
    /// Round-robin for [`StackSet::connect`].
    next: AtomicUsize,
}

/// One shard's port cursor, alone in its cache line: shards on different
/// cores connect at once, and a shared line would bounce between them.
#[repr(align(64))]
struct Cursor(AtomicU32);

impl StackSet {
    /// Puts stacks together as the shards of one host, shard `i` being the
    /// stack on queue `i` of the device (the order matters: it is the order
    /// of [`queue_of`]'s queues).
    ///
    /// # Errors
    ///
    /// `InvalidInput` if `stacks` is empty or the stacks' first addresses
    /// differ.
    pub fn new(stacks: Vec<Stack>) -> io::Result<StackSet> {
        let Some(first) = stacks.first() else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a stack set needs at least one stack",
            ));
        };
        let addr = first.addr();
        if let Some(other) = stacks.iter().find(|s| s.addr() != addr) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "the shards of a stack set share one address: {addr} and {}",
                    other.addr()
                ),
            ));
        }
        let seed = crate::stack::random_u64();
        let cursors = (0..stacks.len())
            .map(|i| Cursor(AtomicU32::new((seed >> (i % 4 * 16)) as u32 & 0xffff)))
            .collect();
        Ok(StackSet {
            inner: Arc::new(Inner {
                shards: stacks,
                cursors,
                next: AtomicUsize::new(0),
            }),
        })
    }

    /// One shard per device, all built on the current runtime with the
    /// default configuration: `devices[i]` is queue `i`, as
    /// [`MemoryLink::multi_queue`](crate::device::MemoryLink::multi_queue)
    /// returns them. For other settings, build the stacks with
    /// [`Stack::builder`] and use [`new`](Self::new).
    ///
    /// # Errors
    ///
    /// As [`new`](Self::new) and [`StackBuilder::try_build`](crate::StackBuilder::try_build).
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    pub fn on_devices<D: Device>(
        devices: Vec<D>,
        addr: Ipv4Addr,
        prefix_len: u8,
    ) -> io::Result<StackSet> {
        let stacks = devices
            .into_iter()
            .map(|d| Stack::try_new(d, addr, prefix_len))
            .collect::<io::Result<Vec<_>>>()?;
        StackSet::new(stacks)
    }

    /// The shards, in queue order.
    pub fn shards(&self) -> &[Stack] {
        &self.inner.shards
    }

    /// How many shards.
    pub fn len(&self) -> usize {
        self.inner.shards.len()
    }

    /// Always `false`: a set has at least one shard.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The shard whose queue carries a connection between `local` (an
    /// address of this host) and `remote`.
    pub fn shard_of(&self, local: SocketAddr, remote: SocketAddr) -> usize {
        queue_of(local, remote, self.len())
    }

    /// A listener on every shard, all on the same address and port (the
    /// port the first shard picks, for port 0). Errors as
    /// [`TcpListener::bind_on`].
    pub async fn bind<A: ToSocketAddrs>(&self, addr: A) -> io::Result<ShardedListener> {
        let addrs = resolve(&self.inner.shards[0], &addr)?;
        let mut last = None;
        for addr in addrs {
            match self.bind_all(addr) {
                Ok(l) => return Ok(l),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(no_addresses))
    }

    fn bind_all(&self, addr: SocketAddr) -> io::Result<ShardedListener> {
        // A port 0 picked by the first shard may be taken on another: try a
        // few.
        let mut last = None;
        for _ in 0..16 {
            let first =
                TcpListener::bind_with_backlog(&self.inner.shards[0], addr, DEFAULT_BACKLOG)?;
            let port = first.local_addr()?.port();
            let mut listeners = vec![first];
            let mut failed = None;
            for stack in &self.inner.shards[1..] {
                let at = SocketAddr::new(addr.ip(), port);
                match TcpListener::bind_with_backlog(stack, at, DEFAULT_BACKLOG) {
                    Ok(l) => listeners.push(l),
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                }
            }
            match failed {
                None => {
                    return Ok(ShardedListener {
                        listeners,
                        next: AtomicUsize::new(0),
                    });
                }
                Some(e) if addr.port() == 0 && e.kind() == io::ErrorKind::AddrInUse => {
                    last = Some(e);
                }
                Some(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(no_addresses))
    }

    /// Opens a connection from the next shard in turn: as
    /// [`connect_on`](Self::connect_on).
    pub async fn connect<A: ToSocketAddrs>(&self, addr: A) -> io::Result<TcpStream> {
        let shard = self.inner.next.fetch_add(1, Ordering::Relaxed) % self.len();
        self.connect_on(shard, addr).await
    }

    /// Opens a connection from shard `shard`, from a local port whose flow
    /// is steered back to that shard's queue, so the connection lives on
    /// the stack that opened it (and on the core that runs it).
    ///
    /// # Errors
    ///
    /// As [`TcpStream::connect_on`]; `InvalidInput` if there is no such
    /// shard; `AddrNotAvailable` when no port of the ephemeral range that
    /// steers to the shard is free for this destination.
    pub async fn connect_on<A: ToSocketAddrs>(
        &self,
        shard: usize,
        addr: A,
    ) -> io::Result<TcpStream> {
        let Some(stack) = self.inner.shards.get(shard) else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("no shard {shard} in a set of {}", self.len()),
            ));
        };
        let addrs = resolve(stack, &addr)?;
        let mut last = None;
        for remote in addrs {
            match self.connect_steered(shard, stack, remote).await {
                Ok(s) => return Ok(s),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(no_addresses))
    }

    async fn connect_steered(
        &self,
        shard: usize,
        stack: &Stack,
        remote: SocketAddr,
    ) -> io::Result<TcpStream> {
        let SocketAddr::V4(r) = remote else {
            return Err(ipv6_unsupported());
        };
        let opts = SocketOptions::default();
        let (src, (lo, hi)) = {
            let st = stack.shared().lock();
            (
                st.engine.source_for(*r.ip()),
                st.engine.config().ephemeral_ports,
            )
        };
        let Some(src) = src.filter(|s| self.len() > 1 && !s.is_loopback() && s != r.ip()) else {
            // One shard, or traffic that never crosses the device (loopback,
            // our own address): any port will do, as the stack picks it.
            let any = SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0);
            return TcpStream::connect_from(stack, any, remote, opts).await;
        };
        let span = u32::from(hi.saturating_sub(lo)) + 1;
        let cursor = &self.inner.cursors[shard].0;
        let start = cursor.load(Ordering::Relaxed);
        for k in 0..span {
            let offset = (start.wrapping_add(k)) % span;
            let port = lo + offset as u16;
            let local = SocketAddrV4::new(src, port);
            if queue_of(local.into(), remote, self.len()) != shard {
                continue;
            }
            cursor.store(offset + 1, Ordering::Relaxed);
            match TcpStream::connect_from(stack, local, remote, opts).await {
                Err(e) if e.kind() == io::ErrorKind::AddrInUse => continue,
                other => return other,
            }
        }
        Err(io::Error::new(
            io::ErrorKind::AddrNotAvailable,
            format!("no free port of {lo}-{hi} steers {remote} to shard {shard}"),
        ))
    }
}

impl std::fmt::Debug for StackSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StackSet")
            .field("shards", &self.len())
            .finish_non_exhaustive()
    }
}

/// A listener on every shard of a [`StackSet`], made by
/// [`StackSet::bind`]: one accept loop takes connections from all shards,
/// or [`into_shards`](Self::into_shards) gives each shard's listener to the
/// thread that runs the shard.
pub struct ShardedListener {
    listeners: Vec<TcpListener>,
    /// The shard the next poll looks at first, so no shard starves another.
    next: AtomicUsize,
}

impl ShardedListener {
    /// Accepts a connection from whichever shard has one, taking turns.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`TcpListener::accept`].
    pub async fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        poll_fn(|cx| self.poll_accept(cx)).await
    }

    /// Polls every shard's listener for a connection, starting after the
    /// shard the last one came from; registers the task's waker with all of
    /// them when none has one.
    pub fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<(TcpStream, SocketAddr)>> {
        let n = self.listeners.len();
        let start = self.next.load(Ordering::Relaxed);
        for k in 0..n {
            let i = (start + k) % n;
            if let Poll::Ready(r) = self.listeners[i].poll_accept(cx) {
                self.next.store((i + 1) % n, Ordering::Relaxed);
                return Poll::Ready(r);
            }
        }
        Poll::Pending
    }

    /// The address the listeners are bound to (the same on every shard).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listeners[0].local_addr()
    }

    /// Each shard's listener, in shard order.
    pub fn shards(&self) -> &[TcpListener] {
        &self.listeners
    }

    /// The listeners, one per shard in shard order, for an accept loop per
    /// shard on the thread that runs it.
    pub fn into_shards(self) -> Vec<TcpListener> {
        self.listeners
    }
}

impl std::fmt::Debug for ShardedListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShardedListener")
            .field("local_addr", &self.local_addr().ok())
            .field("shards", &self.listeners.len())
            .finish()
    }
}
