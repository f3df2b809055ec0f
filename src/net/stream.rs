//! `TcpStream`: a connection on a [`Stack`], with tokio's and futures'
//! `AsyncRead` and `AsyncWrite`.

use std::future::poll_fn;
use std::io::{self, IoSlice, IoSliceMut};
use std::net::{SocketAddr, SocketAddrV4};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use std::time::Duration;

use synack_engine::{
    Engine, Error, Instant, Keepalive, Readiness, SocketHandle, SocketOptions, TcpInfo,
};
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf, Ready};

use crate::error::{ipv6_unsupported, to_io};
use crate::net::addr::{ToSocketAddrs, no_addresses, resolve};
use crate::net::split::{ReadHalf, WriteHalf, split};
use crate::net::split_owned::{OwnedReadHalf, OwnedWriteHalf, split_owned};
use crate::stack::{HandleRef, Stack, register};

/// Which tasks a call that would block waits with.
#[derive(Clone, Copy)]
pub(crate) enum Dir {
    Read,
    Write,
}

/// A TCP connection, like `tokio::net::TcpStream`.
///
/// Reads and writes copy bytes into and out of the connection's buffers in the
/// engine; `poll_flush` returns at once, as on a kernel socket, and
/// `poll_shutdown` queues a FIN without waiting for it to be acknowledged.
/// Dropping the stream closes it gracefully (or with a RST if received data
/// was left unread).
///
/// Readiness ([`ready`](TcpStream::ready), [`readable`](TcpStream::readable),
/// ...) is level-triggered: it reflects the connection's state at the moment
/// of the call, so a `try_read` after `readable()` only fails with
/// `WouldBlock` if another task took the data first.
///
/// ```
/// use std::net::Ipv4Addr;
/// use synack::{Stack, net::{TcpListener, TcpStream}};
/// use synack::device::{MemoryLink, MemoryLinkConfig};
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// let (a, b) = MemoryLink::pair(MemoryLinkConfig::default());
/// let server = Stack::new(a, Ipv4Addr::new(192, 0, 2, 1), 24);
/// let client = Stack::new(b, Ipv4Addr::new(192, 0, 2, 2), 24);
/// let listener = TcpListener::bind_on(&server, "192.0.2.1:7").await?;
/// tokio::spawn(async move {
///     let (mut s, _) = listener.accept().await.unwrap();
///     let mut buf = [0u8; 5];
///     s.read_exact(&mut buf).await.unwrap();
///     s.write_all(&buf).await.unwrap();
/// });
/// let _g = client.enter();
/// let mut c = TcpStream::connect("192.0.2.1:7").await?;
/// c.write_all(b"hello").await?;
/// let mut buf = [0u8; 5];
/// c.read_exact(&mut buf).await?;
/// assert_eq!(&buf, b"hello");
/// # Ok(())
/// # }
/// ```
pub struct TcpStream {
    handle: Arc<HandleRef>,
    socket: SocketHandle,
}

/// Maps a tokio interest and a socket's readiness to tokio's `Ready`.
pub(crate) fn to_ready(r: Readiness, interest: Interest) -> Ready {
    let mut ready = Ready::EMPTY;
    if interest.is_readable() {
        if r.readable {
            ready |= Ready::READABLE;
        }
        if r.read_closed {
            ready |= Ready::READ_CLOSED;
        }
    }
    if interest.is_writable() {
        if r.writable {
            ready |= Ready::WRITABLE;
        }
        if r.write_closed {
            ready |= Ready::WRITE_CLOSED;
        }
    }
    if interest.is_error() && r.error {
        ready |= Ready::ERROR;
    }
    ready
}

impl TcpStream {
    pub(crate) fn from_parts(handle: Arc<HandleRef>, socket: SocketHandle) -> TcpStream {
        TcpStream { handle, socket }
    }

    /// Opens a connection to `addr` on the current stack (see [`Stack::enter`]),
    /// like `tokio::net::TcpStream::connect`, and waits for the handshake.
    ///
    /// Each resolved address is tried in turn, and the last error is returned if
    /// none answers. The source address and an ephemeral port are chosen by route.
    ///
    /// # Errors
    ///
    /// - `ConnectionRefused` if the peer answers with a RST (no listener);
    /// - `TimedOut` after the SYN retries;
    /// - `HostUnreachable` if an ICMP error ends the attempt;
    /// - `NetworkUnreachable` if no route leads to the address;
    /// - `InvalidInput` for port 0, a broadcast, multicast or unspecified
    ///   address, or a string that is no address;
    /// - `NotFound` without a current stack, or for a name not in the stack's
    ///   host table;
    /// - `EAFNOSUPPORT` (kind `Uncategorized`) for an IPv6 address.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: dropping the future aborts the connection attempt.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::net::Ipv4Addr;
    /// # use synack::{Stack, device::{MemoryLink, MemoryLinkConfig}};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// # let (a, _b) = MemoryLink::pair(MemoryLinkConfig::default());
    /// # let stack = Stack::new(a, Ipv4Addr::new(192, 0, 2, 1), 24);
    /// # let _guard = stack.enter();
    /// use std::io::ErrorKind;
    /// use synack::net::{TcpListener, TcpStream};
    ///
    /// let listener = TcpListener::bind("127.0.0.1:0").await?;
    /// let stream = TcpStream::connect(listener.local_addr()?).await?;
    /// assert_eq!(stream.peer_addr()?, listener.local_addr()?);
    ///
    /// // Nothing listens on port 9: the peer answers with a RST.
    /// let err = TcpStream::connect("127.0.0.1:9").await.unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::ConnectionRefused);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn connect<A: ToSocketAddrs>(addr: A) -> io::Result<TcpStream> {
        let stack = Stack::current()?;
        TcpStream::connect_on(&stack, addr).await
    }

    /// [`connect`](TcpStream::connect) on a given stack rather than the current
    /// one, with the same errors (but never `NotFound` for a missing current
    /// stack).
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: dropping the future aborts the connection attempt.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::net::Ipv4Addr;
    /// use synack::{Stack, net::{TcpListener, TcpStream}};
    /// use synack::device::{MemoryLink, MemoryLinkConfig};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let (a, b) = MemoryLink::pair(MemoryLinkConfig::default());
    /// let server = Stack::new(a, Ipv4Addr::new(192, 0, 2, 1), 24);
    /// let client = Stack::new(b, Ipv4Addr::new(192, 0, 2, 2), 24);
    /// let listener = TcpListener::bind_on(&server, "192.0.2.1:80").await?;
    /// let stream = TcpStream::connect_on(&client, "192.0.2.1:80").await?;
    /// assert_eq!(stream.local_addr()?.ip(), Ipv4Addr::new(192, 0, 2, 2));
    /// # drop(listener);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn connect_on<A: ToSocketAddrs>(stack: &Stack, addr: A) -> io::Result<TcpStream> {
        let addrs = resolve(stack, &addr)?;
        let mut last = None;
        for remote in addrs {
            let any = SocketAddrV4::new(std::net::Ipv4Addr::UNSPECIFIED, 0);
            match TcpStream::connect_from(stack, any, remote, SocketOptions::default()).await {
                Ok(s) => return Ok(s),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(no_addresses))
    }

    /// The three-way handshake from `local` (port 0: ephemeral) to `remote`.
    pub(crate) async fn connect_from(
        stack: &Stack,
        local: SocketAddrV4,
        remote: SocketAddr,
        opts: SocketOptions,
    ) -> io::Result<TcpStream> {
        let SocketAddr::V4(remote) = remote else {
            return Err(ipv6_unsupported());
        };
        let shared = stack.shared();
        let (socket, wake) = {
            let mut st = shared.lock();
            let now = shared.now();
            let socket = st
                .engine
                .connect_with(now, local, remote, opts)
                .map_err(to_io)?;
            (socket, st.after_call(now))
        };
        wake.run();
        // From here the stream owns the socket: dropping it (on error or
        // cancellation) closes the attempt.
        let stream = TcpStream::from_parts(stack.handle.clone(), socket);
        poll_fn(|cx| {
            // tokio's cooperative budget, as its connect spends it (waiting
            // for writability): a task opening connection after connection
            // yields now and then, so the accepting side keeps up (without
            // it an accept queue overflowed and SYNs were dropped).
            let coop = ready!(tokio::task::coop::poll_proceed(cx));
            let mut st = shared.lock();
            match st.engine.connect_result(socket) {
                Ok(true) => {
                    coop.made_progress();
                    Poll::Ready(Ok(()))
                }
                Ok(false) => {
                    register(&mut st.wakers(socket).write, cx.waker());
                    Poll::Pending
                }
                Err(e) => {
                    coop.made_progress();
                    // Reported here; SO_ERROR no longer holds it.
                    let _ = st.engine.take_error(socket);
                    Poll::Ready(Err(to_io(e)))
                }
            }
        })
        .await?;
        Ok(stream)
    }

    /// The stack this stream lives on, for instance to open more sockets beside
    /// it from a task that has no current stack.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::net::Ipv4Addr;
    /// # use synack::{Stack, device::{MemoryLink, MemoryLinkConfig}};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// # let (a, _b) = MemoryLink::pair(MemoryLinkConfig::default());
    /// # let stack = Stack::new(a, Ipv4Addr::new(192, 0, 2, 1), 24);
    /// # let _guard = stack.enter();
    /// use synack::net::{TcpListener, TcpStream};
    ///
    /// let listener = TcpListener::bind("127.0.0.1:0").await?;
    /// let stream = TcpStream::connect(listener.local_addr()?).await?;
    /// let stack = stream.stack();
    /// let second = TcpStream::connect_on(&stack, listener.local_addr()?).await?;
    /// assert_eq!(second.peer_addr()?, stream.peer_addr()?);
    /// # Ok(())
    /// # }
    /// ```
    pub fn stack(&self) -> Stack {
        Stack {
            handle: self.handle.clone(),
        }
    }

    /// Runs `f` on the engine under the stack's lock. On success the packets it
    /// produced are sent and waiting tasks woken; on `WouldBlock` the task of
    /// `cx` (if any) is registered for `dir` under the same lock, so no event
    /// can slip in between.
    fn io<R>(
        &self,
        cx: Option<&mut Context<'_>>,
        dir: Dir,
        f: impl FnOnce(&mut Engine, Instant, SocketHandle) -> Result<R, Error>,
    ) -> Poll<io::Result<R>> {
        self.io_unless(cx, dir, |_, _| false, f)
    }

    /// [`io`](TcpStream::io) for a read into a buffer that has room (`room`):
    /// a connection with nothing to read (and no end or error to report)
    /// registers the task at once. A read into no room goes to the engine,
    /// which answers it (`Ok(0)`, or the connection's error).
    fn io_read<R>(
        &self,
        cx: Option<&mut Context<'_>>,
        room: bool,
        f: impl FnOnce(&mut Engine, Instant, SocketHandle) -> Result<R, Error>,
    ) -> Poll<io::Result<R>> {
        self.io_unless(cx, Dir::Read, |e, h| room && e.recv_would_block(h), f)
    }

    fn io_unless<R>(
        &self,
        cx: Option<&mut Context<'_>>,
        dir: Dir,
        blocked: impl FnOnce(&Engine, SocketHandle) -> bool,
        f: impl FnOnce(&mut Engine, Instant, SocketHandle) -> Result<R, Error>,
    ) -> Poll<io::Result<R>> {
        socket_io_unless(&self.handle, self.socket, cx, dir, blocked, f, |e, h| {
            // An error that ended the connection is reported once, as the
            // kernel's `sock_error` does: later reads see end-of-stream and
            // writes `BrokenPipe`.
            let _ = e.take_error(h);
        })
    }

    /// [`io`](TcpStream::io) without a task: `WouldBlock` is returned.
    fn try_now<R>(
        &self,
        f: impl FnOnce(&mut Engine, Instant, SocketHandle) -> Result<R, Error>,
    ) -> io::Result<R> {
        match self.io(None, Dir::Read, f) {
            Poll::Ready(r) => r,
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }

    /// The local address of the connection: the source address chosen by
    /// route and the (ephemeral) port.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::net::Ipv4Addr;
    /// # use synack::{Stack, device::{MemoryLink, MemoryLinkConfig}};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// # let (a, _b) = MemoryLink::pair(MemoryLinkConfig::default());
    /// # let stack = Stack::new(a, Ipv4Addr::new(192, 0, 2, 1), 24);
    /// # let _guard = stack.enter();
    /// use synack::net::{TcpListener, TcpStream};
    ///
    /// let listener = TcpListener::bind("127.0.0.1:0").await?;
    /// let stream = TcpStream::connect(listener.local_addr()?).await?;
    /// let (peer, _) = listener.accept().await?;
    /// assert_eq!(stream.local_addr()?, peer.peer_addr()?);
    /// assert_eq!(stream.local_addr()?.ip().to_string(), "127.0.0.1");
    /// # Ok(())
    /// # }
    /// ```
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        let st = self.handle.shared.lock();
        st.engine
            .local_addr(self.socket)
            .map(SocketAddr::V4)
            .map_err(to_io)
    }

    /// The remote address of the connection; it stays available after the
    /// connection closes, as long as the stream lives.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::net::Ipv4Addr;
    /// # use synack::{Stack, device::{MemoryLink, MemoryLinkConfig}};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// # let (a, _b) = MemoryLink::pair(MemoryLinkConfig::default());
    /// # let stack = Stack::new(a, Ipv4Addr::new(192, 0, 2, 1), 24);
    /// # let _guard = stack.enter();
    /// use synack::net::{TcpListener, TcpStream};
    ///
    /// let listener = TcpListener::bind("127.0.0.1:0").await?;
    /// let stream = TcpStream::connect(listener.local_addr()?).await?;
    /// assert_eq!(stream.peer_addr()?, listener.local_addr()?);
    /// # Ok(())
    /// # }
    /// ```
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        let st = self.handle.shared.lock();
        st.engine
            .peer_addr(self.socket)
            .map(SocketAddr::V4)
            .map_err(to_io)
    }

    /// `SO_ERROR`: takes the error that ended the connection (a reset, a
    /// timeout), so it is reported once. After it, reads give end-of-stream and
    /// writes `BrokenPipe`. `Ok(None)` while the connection is healthy.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::net::Ipv4Addr;
    /// # use synack::{Stack, device::{MemoryLink, MemoryLinkConfig}};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// # let (a, _b) = MemoryLink::pair(MemoryLinkConfig::default());
    /// # let stack = Stack::new(a, Ipv4Addr::new(192, 0, 2, 1), 24);
    /// # let _guard = stack.enter();
    /// use std::io::ErrorKind;
    /// use synack::net::{TcpListener, TcpStream};
    ///
    /// let listener = TcpListener::bind("127.0.0.1:0").await?;
    /// let stream = TcpStream::connect(listener.local_addr()?).await?;
    /// let (peer, _) = listener.accept().await?;
    /// assert!(stream.take_error()?.is_none());
    ///
    /// peer.set_zero_linger()?;
    /// drop(peer); // RST
    /// stream.readable().await?;
    /// let err = stream.take_error()?.expect("reset");
    /// assert_eq!(err.kind(), ErrorKind::ConnectionReset);
    /// assert!(stream.take_error()?.is_none()); // reported once
    /// assert_eq!(stream.try_read(&mut [0u8; 8])?, 0);
    /// # Ok(())
    /// # }
    /// ```
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        let mut st = self.handle.shared.lock();
        let e = st.engine.take_error(self.socket).map_err(to_io)?;
        Ok(e.map(to_io))
    }

    /// The readiness for `interest` now, or registers the task and waits.
    pub(crate) fn poll_ready(&self, cx: &mut Context<'_>, interest: Interest) -> Poll<Ready> {
        let mut st = self.handle.shared.lock();
        let ready = to_ready(st.engine.readiness(self.socket), interest);
        if !ready.is_empty() {
            return Poll::Ready(ready);
        }
        let w = st.wakers(self.socket);
        if interest.is_readable() || interest.is_error() {
            register(&mut w.read, cx.waker());
        }
        if interest.is_writable() || interest.is_error() {
            register(&mut w.write, cx.waker());
        }
        Poll::Pending
    }

    /// Waits for any of the readiness in `interest`, like tokio's: readable,
    /// read-closed (the peer's FIN or an error), writable, write-closed, and
    /// for `Interest::ERROR` a pending error (`SO_ERROR`); an error wakes the
    /// tasks waiting in either direction.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::net::Ipv4Addr;
    /// # use synack::{Stack, net::{TcpListener, TcpStream}};
    /// # use synack::device::{MemoryLink, MemoryLinkConfig};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// # let (a, b) = MemoryLink::pair(MemoryLinkConfig::default());
    /// # let server = Stack::new(a, Ipv4Addr::new(192, 0, 2, 1), 24);
    /// # let client = Stack::new(b, Ipv4Addr::new(192, 0, 2, 2), 24);
    /// # let listener = TcpListener::bind_on(&server, "192.0.2.1:7").await?;
    /// # let (stream, accepted) =
    /// #     tokio::join!(TcpStream::connect_on(&client, "192.0.2.1:7"), listener.accept());
    /// # let (stream, (peer, _)) = (stream?, accepted?);
    /// use std::io::ErrorKind;
    /// use tokio::io::Interest;
    ///
    /// peer.try_write(b"ping")?;
    /// let mut buf = [0u8; 64];
    /// let n = loop {
    ///     let ready = stream.ready(Interest::READABLE).await?;
    ///     if ready.is_readable() {
    ///         match stream.try_read(&mut buf) {
    ///             Ok(n) => break n,
    ///             Err(e) if e.kind() == ErrorKind::WouldBlock => continue,
    ///             Err(e) => return Err(e),
    ///         }
    ///     }
    /// };
    /// assert_eq!(&buf[..n], b"ping");
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn ready(&self, interest: Interest) -> io::Result<Ready> {
        Ok(poll_fn(|cx| self.poll_ready(cx, interest)).await)
    }

    /// Waits until a read would not block: data has arrived, the peer closed its
    /// direction (FIN), or an error ended the connection.
    ///
    /// Usually followed by [`try_read`](TcpStream::try_read), which may still
    /// return `WouldBlock` if another task took the data first.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: only readiness is awaited.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::net::Ipv4Addr;
    /// # use synack::{Stack, device::{MemoryLink, MemoryLinkConfig}};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// # let (a, _b) = MemoryLink::pair(MemoryLinkConfig::default());
    /// # let stack = Stack::new(a, Ipv4Addr::new(192, 0, 2, 1), 24);
    /// # let _guard = stack.enter();
    /// use std::io::ErrorKind;
    /// use synack::net::{TcpListener, TcpStream};
    ///
    /// let listener = TcpListener::bind("127.0.0.1:0").await?;
    /// let stream = TcpStream::connect(listener.local_addr()?).await?;
    /// let (peer, _) = listener.accept().await?;
    /// peer.try_write(b"hello")?;
    /// let mut buf = [0u8; 16];
    /// let n = loop {
    ///     stream.readable().await?;
    ///     match stream.try_read(&mut buf) {
    ///         Ok(n) => break n,
    ///         Err(e) if e.kind() == ErrorKind::WouldBlock => continue,
    ///         Err(e) => return Err(e),
    ///     }
    /// };
    /// assert_eq!(&buf[..n], b"hello");
    /// # Ok(())
    /// # }
    /// ```
    pub async fn readable(&self) -> io::Result<()> {
        self.ready(Interest::READABLE).await.map(|_| ())
    }

    /// Waits until a write would not block: there is room in the send buffer,
    /// the sending direction is closed, or an error ended the connection.
    ///
    /// Usually followed by [`try_write`](TcpStream::try_write).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: only readiness is awaited.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::net::Ipv4Addr;
    /// # use synack::{Stack, device::{MemoryLink, MemoryLinkConfig}};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// # let (a, _b) = MemoryLink::pair(MemoryLinkConfig::default());
    /// # let stack = Stack::new(a, Ipv4Addr::new(192, 0, 2, 1), 24);
    /// # let _guard = stack.enter();
    /// use std::io::ErrorKind;
    /// use synack::net::{TcpListener, TcpStream};
    ///
    /// let listener = TcpListener::bind("127.0.0.1:0").await?;
    /// let stream = TcpStream::connect(listener.local_addr()?).await?;
    /// let n = loop {
    ///     stream.writable().await?;
    ///     match stream.try_write(b"hello") {
    ///         Ok(n) => break n,
    ///         Err(e) if e.kind() == ErrorKind::WouldBlock => continue,
    ///         Err(e) => return Err(e),
    ///     }
    /// };
    /// assert_eq!(n, 5);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn writable(&self) -> io::Result<()> {
        self.ready(Interest::WRITABLE).await.map(|_| ())
    }

    /// Polls for read readiness (see [`readable`](TcpStream::readable));
    /// registers the task's waker when not ready. Every task that polled is
    /// woken, not only the latest as with tokio. Never returns an error: an
    /// error that ended the connection makes the stream ready, and the read
    /// reports it.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::net::Ipv4Addr;
    /// # use synack::{Stack, device::{MemoryLink, MemoryLinkConfig}};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// # let (a, _b) = MemoryLink::pair(MemoryLinkConfig::default());
    /// # let stack = Stack::new(a, Ipv4Addr::new(192, 0, 2, 1), 24);
    /// # let _guard = stack.enter();
    /// use std::future::poll_fn;
    /// use synack::net::{TcpListener, TcpStream};
    ///
    /// let listener = TcpListener::bind("127.0.0.1:0").await?;
    /// let stream = TcpStream::connect(listener.local_addr()?).await?;
    /// let (peer, _) = listener.accept().await?;
    /// peer.try_write(b"x")?;
    /// poll_fn(|cx| stream.poll_read_ready(cx)).await?;
    /// assert_eq!(stream.try_read(&mut [0u8; 4])?, 1);
    /// # Ok(())
    /// # }
    /// ```
    pub fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_ready(cx, Interest::READABLE).map(|_| Ok(()))
    }

    /// Polls for write readiness (see [`writable`](TcpStream::writable));
    /// registers the task's waker when not ready. Never returns an error: an
    /// error that ended the connection makes the stream ready, and the write
    /// reports it.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::net::Ipv4Addr;
    /// # use synack::{Stack, device::{MemoryLink, MemoryLinkConfig}};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// # let (a, _b) = MemoryLink::pair(MemoryLinkConfig::default());
    /// # let stack = Stack::new(a, Ipv4Addr::new(192, 0, 2, 1), 24);
    /// # let _guard = stack.enter();
    /// use std::future::poll_fn;
    /// use synack::net::{TcpListener, TcpStream};
    ///
    /// let listener = TcpListener::bind("127.0.0.1:0").await?;
    /// let stream = TcpStream::connect(listener.local_addr()?).await?;
    /// poll_fn(|cx| stream.poll_write_ready(cx)).await?;
    /// assert_eq!(stream.try_write(b"abc")?, 3);
    /// # Ok(())
    /// # }
    /// ```
    pub fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_ready(cx, Interest::WRITABLE).map(|_| Ok(()))
    }

    /// Reads what is there without waiting, into `buf`, and returns how many
    /// bytes were read.
    ///
    /// `Ok(0)` means end of stream (the peer's FIN), or an empty `buf`.
    ///
    /// # Errors
    ///
    /// `WouldBlock` when nothing has arrived yet; the error that ended the
    /// connection (`ConnectionReset`, `TimedOut`, ...), once, after which reads
    /// give `Ok(0)`.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::net::Ipv4Addr;
    /// # use synack::{Stack, device::{MemoryLink, MemoryLinkConfig}};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// # let (a, _b) = MemoryLink::pair(MemoryLinkConfig::default());
    /// # let stack = Stack::new(a, Ipv4Addr::new(192, 0, 2, 1), 24);
    /// # let _guard = stack.enter();
    /// use std::io::ErrorKind;
    /// use synack::net::{TcpListener, TcpStream};
    ///
    /// let listener = TcpListener::bind("127.0.0.1:0").await?;
    /// let stream = TcpStream::connect(listener.local_addr()?).await?;
    /// let (peer, _) = listener.accept().await?;
    /// let mut buf = [0u8; 16];
    /// let err = stream.try_read(&mut buf).unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::WouldBlock);
    ///
    /// peer.try_write(b"abc")?;
    /// drop(peer); // FIN after the data
    /// stream.readable().await?;
    /// assert_eq!(stream.try_read(&mut buf)?, 3);
    /// stream.readable().await?;
    /// assert_eq!(stream.try_read(&mut buf)?, 0); // end of stream
    /// # Ok(())
    /// # }
    /// ```
    pub fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.try_now(|e, now, h| e.recv(now, h, buf))
    }

    /// [`try_read`](TcpStream::try_read) into several buffers in turn, moving
    /// to the next only once one is full; returns the total read.
    ///
    /// `Ok(0)` at end of stream; `WouldBlock` only if nothing was read.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::net::Ipv4Addr;
    /// # use synack::{Stack, device::{MemoryLink, MemoryLinkConfig}};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// # let (a, _b) = MemoryLink::pair(MemoryLinkConfig::default());
    /// # let stack = Stack::new(a, Ipv4Addr::new(192, 0, 2, 1), 24);
    /// # let _guard = stack.enter();
    /// use std::io::IoSliceMut;
    /// use synack::net::{TcpListener, TcpStream};
    ///
    /// let listener = TcpListener::bind("127.0.0.1:0").await?;
    /// let stream = TcpStream::connect(listener.local_addr()?).await?;
    /// let (peer, _) = listener.accept().await?;
    /// peer.try_write(b"hello world")?;
    /// stream.readable().await?;
    /// let (mut head, mut tail) = ([0u8; 5], [0u8; 16]);
    /// let mut bufs = [IoSliceMut::new(&mut head), IoSliceMut::new(&mut tail)];
    /// let n = stream.try_read_vectored(&mut bufs)?;
    /// assert_eq!(n, 11);
    /// assert_eq!(&head, b"hello");
    /// assert_eq!(&tail[..6], b" world");
    /// # Ok(())
    /// # }
    /// ```
    pub fn try_read_vectored(&self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        self.try_now(|e, now, h| read_vectored(e, now, h, bufs))
    }

    /// [`try_read`](TcpStream::try_read) into a `BufMut`, advancing it by the
    /// bytes read: at most what is there and what `buf` has room for (a `Vec`
    /// grows as needed).
    ///
    /// `Ok(0)` at end of stream (or when `buf` has no room); `WouldBlock` when
    /// nothing has arrived.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::net::Ipv4Addr;
    /// # use synack::{Stack, device::{MemoryLink, MemoryLinkConfig}};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// # let (a, _b) = MemoryLink::pair(MemoryLinkConfig::default());
    /// # let stack = Stack::new(a, Ipv4Addr::new(192, 0, 2, 1), 24);
    /// # let _guard = stack.enter();
    /// use synack::net::{TcpListener, TcpStream};
    ///
    /// let listener = TcpListener::bind("127.0.0.1:0").await?;
    /// let stream = TcpStream::connect(listener.local_addr()?).await?;
    /// let (peer, _) = listener.accept().await?;
    /// peer.try_write(b"hello")?;
    /// stream.readable().await?;
    /// let mut buf = Vec::with_capacity(1024);
    /// let n = stream.try_read_buf(&mut buf)?;
    /// assert_eq!(&buf[..n], b"hello");
    /// # Ok(())
    /// # }
    /// ```
    pub fn try_read_buf<B: bytes::BufMut>(&self, buf: &mut B) -> io::Result<usize> {
        self.try_now(|e, now, h| {
            let want = buf.remaining_mut().min(e.recv_queue(h)?.max(1));
            let mut tmp = vec![0u8; want];
            let n = e.recv(now, h, &mut tmp)?;
            buf.put_slice(&tmp[..n]);
            Ok(n)
        })
    }

    /// Writes what fits in the send buffer without waiting; returns how many
    /// bytes of `buf` were taken.
    ///
    /// # Errors
    ///
    /// `WouldBlock` when the send buffer is full; `BrokenPipe` after
    /// [`shutdown`](tokio::io::AsyncWriteExt::shutdown) or once the connection
    /// has closed; the error that ended the connection (`ConnectionReset`,
    /// `TimedOut`, ...), once, before that.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::net::Ipv4Addr;
    /// # use synack::{Stack, device::{MemoryLink, MemoryLinkConfig}};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// # let (a, _b) = MemoryLink::pair(MemoryLinkConfig::default());
    /// # let stack = Stack::new(a, Ipv4Addr::new(192, 0, 2, 1), 24);
    /// # let _guard = stack.enter();
    /// use std::io::ErrorKind;
    /// use tokio::io::AsyncWriteExt;
    /// use synack::net::{TcpListener, TcpStream};
    ///
    /// let listener = TcpListener::bind("127.0.0.1:0").await?;
    /// let mut stream = TcpStream::connect(listener.local_addr()?).await?;
    /// let (mut peer, _) = listener.accept().await?;
    /// assert_eq!(stream.try_write(b"hello")?, 5);
    /// stream.shutdown().await?;
    /// let err = stream.try_write(b"more").unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::BrokenPipe);
    /// # Ok(())
    /// # }
    /// ```
    pub fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        self.try_now(|e, now, h| e.send(now, h, buf))
    }

    /// [`try_write`](TcpStream::try_write) from several buffers in turn,
    /// stopping at the first that does not fit whole; returns the total taken.
    ///
    /// `WouldBlock` only if nothing was taken; other errors as `try_write`.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::net::Ipv4Addr;
    /// # use synack::{Stack, device::{MemoryLink, MemoryLinkConfig}};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// # let (a, _b) = MemoryLink::pair(MemoryLinkConfig::default());
    /// # let stack = Stack::new(a, Ipv4Addr::new(192, 0, 2, 1), 24);
    /// # let _guard = stack.enter();
    /// use std::io::IoSlice;
    /// use tokio::io::AsyncReadExt;
    /// use synack::net::{TcpListener, TcpStream};
    ///
    /// let listener = TcpListener::bind("127.0.0.1:0").await?;
    /// let mut stream = TcpStream::connect(listener.local_addr()?).await?;
    /// let (mut peer, _) = listener.accept().await?;
    /// let bufs = [IoSlice::new(b"hello "), IoSlice::new(b"world")];
    /// assert_eq!(stream.try_write_vectored(&bufs)?, 11);
    /// let mut got = [0u8; 11];
    /// peer.read_exact(&mut got).await?;
    /// assert_eq!(&got, b"hello world");
    /// # Ok(())
    /// # }
    /// ```
    pub fn try_write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.try_now(|e, now, h| write_vectored(e, now, h, bufs))
    }

    /// Runs `f` if the stream is ready for `interest`, else returns `WouldBlock`
    /// without calling it, like tokio's `try_io`.
    ///
    /// `f` would typically call [`try_read`](TcpStream::try_read) or
    /// [`try_write`](TcpStream::try_write); its result is returned as is.
    /// Readiness here is level-triggered, so nothing needs clearing when `f`
    /// returns `WouldBlock`.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::net::Ipv4Addr;
    /// # use synack::{Stack, device::{MemoryLink, MemoryLinkConfig}};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// # let (a, _b) = MemoryLink::pair(MemoryLinkConfig::default());
    /// # let stack = Stack::new(a, Ipv4Addr::new(192, 0, 2, 1), 24);
    /// # let _guard = stack.enter();
    /// use std::io::ErrorKind;
    /// use tokio::io::Interest;
    /// use synack::net::{TcpListener, TcpStream};
    ///
    /// let listener = TcpListener::bind("127.0.0.1:0").await?;
    /// let stream = TcpStream::connect(listener.local_addr()?).await?;
    /// let (peer, _) = listener.accept().await?;
    /// let mut buf = [0u8; 8];
    /// let err = stream.try_io(Interest::READABLE, || stream.try_read(&mut buf));
    /// assert_eq!(err.unwrap_err().kind(), ErrorKind::WouldBlock);
    ///
    /// peer.try_write(b"hi")?;
    /// stream.readable().await?;
    /// let n = stream.try_io(Interest::READABLE, || stream.try_read(&mut buf))?;
    /// assert_eq!(&buf[..n], b"hi");
    /// # Ok(())
    /// # }
    /// ```
    pub fn try_io<R>(
        &self,
        interest: Interest,
        f: impl FnOnce() -> io::Result<R>,
    ) -> io::Result<R> {
        let ready = {
            let st = self.handle.shared.lock();
            to_ready(st.engine.readiness(self.socket), interest)
        };
        if ready.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        f()
    }

    /// Waits for `interest` and runs `f`, again after each readiness event
    /// while it returns `WouldBlock`, like tokio's `async_io`; returns what `f`
    /// returns otherwise.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe if `f` is: between calls of `f` only readiness is awaited.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::net::Ipv4Addr;
    /// # use synack::{Stack, device::{MemoryLink, MemoryLinkConfig}};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// # let (a, _b) = MemoryLink::pair(MemoryLinkConfig::default());
    /// # let stack = Stack::new(a, Ipv4Addr::new(192, 0, 2, 1), 24);
    /// # let _guard = stack.enter();
    /// use tokio::io::Interest;
    /// use synack::net::{TcpListener, TcpStream};
    ///
    /// let listener = TcpListener::bind("127.0.0.1:0").await?;
    /// let stream = TcpStream::connect(listener.local_addr()?).await?;
    /// let (peer, _) = listener.accept().await?;
    /// let writer = tokio::spawn(async move { peer.try_write(b"late").map(|_| peer) });
    /// let mut buf = [0u8; 8];
    /// let n = stream
    ///     .async_io(Interest::READABLE, || stream.try_read(&mut buf))
    ///     .await?;
    /// assert_eq!(&buf[..n], b"late");
    /// # drop(writer.await.unwrap()?);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn async_io<R>(
        &self,
        interest: Interest,
        mut f: impl FnMut() -> io::Result<R>,
    ) -> io::Result<R> {
        loop {
            self.ready(interest).await?;
            match f() {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    // Ready, yet `f` could not proceed: wait for the next event.
                    next_event(&self.handle, self.socket, interest).await;
                }
                r => return r,
            }
        }
    }

    /// Polls for received bytes without taking them from the connection: they
    /// are copied into `buf` and a later read returns them again.
    ///
    /// `Poll::Ready(Ok(0))` at end of stream; `Poll::Pending` (the task
    /// registered) when nothing has arrived; the error that ended the connection
    /// once, as [`try_read`](TcpStream::try_read).
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::net::Ipv4Addr;
    /// # use synack::{Stack, device::{MemoryLink, MemoryLinkConfig}};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// # let (a, _b) = MemoryLink::pair(MemoryLinkConfig::default());
    /// # let stack = Stack::new(a, Ipv4Addr::new(192, 0, 2, 1), 24);
    /// # let _guard = stack.enter();
    /// use std::future::poll_fn;
    /// use tokio::io::ReadBuf;
    /// use synack::net::{TcpListener, TcpStream};
    ///
    /// let listener = TcpListener::bind("127.0.0.1:0").await?;
    /// let stream = TcpStream::connect(listener.local_addr()?).await?;
    /// let (peer, _) = listener.accept().await?;
    /// peer.try_write(b"peek")?;
    /// let mut storage = [0u8; 8];
    /// let mut buf = ReadBuf::new(&mut storage);
    /// let n = poll_fn(|cx| stream.poll_peek(cx, &mut buf)).await?;
    /// assert_eq!(buf.filled(), b"peek");
    /// assert_eq!(stream.try_read(&mut [0u8; 8])?, n); // still there
    /// # Ok(())
    /// # }
    /// ```
    pub fn poll_peek(
        &self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<usize>> {
        self.io(Some(cx), Dir::Read, |e, _now, h| {
            let ready = e.recv_queue(h)?;
            let dst = buf.initialize_unfilled_to(buf.remaining().min(ready.max(1)));
            let n = e.peek(h, dst)?;
            buf.advance(n);
            Ok(n)
        })
    }

    /// Receives bytes without taking them: waits for data, copies it into
    /// `buf`, and the next read returns it again.
    ///
    /// `Ok(0)` at end of stream; errors as [`try_read`](TcpStream::try_read).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: no data is taken.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::net::Ipv4Addr;
    /// # use synack::{Stack, device::{MemoryLink, MemoryLinkConfig}};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// # let (a, _b) = MemoryLink::pair(MemoryLinkConfig::default());
    /// # let stack = Stack::new(a, Ipv4Addr::new(192, 0, 2, 1), 24);
    /// # let _guard = stack.enter();
    /// use tokio::io::{AsyncReadExt, AsyncWriteExt};
    /// use synack::net::{TcpListener, TcpStream};
    ///
    /// let listener = TcpListener::bind("127.0.0.1:0").await?;
    /// let mut stream = TcpStream::connect(listener.local_addr()?).await?;
    /// let (mut peer, _) = listener.accept().await?;
    /// peer.write_all(b"GET /").await?;
    /// let mut head = [0u8; 3];
    /// let n = stream.peek(&mut head).await?;
    /// assert_eq!(&head[..n], b"GET");
    ///
    /// let mut all = [0u8; 5];
    /// stream.read_exact(&mut all).await?;
    /// assert_eq!(&all, b"GET /"); // the peeked bytes were not taken
    /// # Ok(())
    /// # }
    /// ```
    pub async fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        let mut buf = ReadBuf::new(buf);
        poll_fn(|cx| self.poll_peek(cx, &mut buf)).await
    }

    /// Turns Nagle's algorithm off (`true`) or back on (`TCP_NODELAY`). It is
    /// on by default, as on a kernel socket: small writes wait while earlier
    /// data is unacknowledged.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::net::Ipv4Addr;
    /// # use synack::{Stack, device::{MemoryLink, MemoryLinkConfig}};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// # let (a, _b) = MemoryLink::pair(MemoryLinkConfig::default());
    /// # let stack = Stack::new(a, Ipv4Addr::new(192, 0, 2, 1), 24);
    /// # let _guard = stack.enter();
    /// use synack::net::{TcpListener, TcpStream};
    ///
    /// let listener = TcpListener::bind("127.0.0.1:0").await?;
    /// let stream = TcpStream::connect(listener.local_addr()?).await?;
    /// stream.set_nodelay(true)?;
    /// assert!(stream.nodelay()?);
    /// # Ok(())
    /// # }
    /// ```
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        let mut st = self.handle.shared.lock();
        st.engine.set_nodelay(self.socket, nodelay).map_err(to_io)
    }

    /// Whether Nagle's algorithm is off (`TCP_NODELAY`); `false` for a new
    /// stream, or as inherited from a [`TcpSocket`](crate::net::TcpSocket) or the
    /// listener's socket.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::net::Ipv4Addr;
    /// # use synack::{Stack, device::{MemoryLink, MemoryLinkConfig}};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// # let (a, _b) = MemoryLink::pair(MemoryLinkConfig::default());
    /// # let stack = Stack::new(a, Ipv4Addr::new(192, 0, 2, 1), 24);
    /// # let _guard = stack.enter();
    /// use synack::net::{TcpListener, TcpStream};
    ///
    /// let listener = TcpListener::bind("127.0.0.1:0").await?;
    /// let stream = TcpStream::connect(listener.local_addr()?).await?;
    /// assert!(!stream.nodelay()?);
    /// # Ok(())
    /// # }
    /// ```
    pub fn nodelay(&self) -> io::Result<bool> {
        let st = self.handle.shared.lock();
        st.engine.nodelay(self.socket).map_err(to_io)
    }

    /// The IP time-to-live of the connection's packets (`IP_TTL`): the stack's
    /// default (64), or what the listener set for accepted connections.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::net::Ipv4Addr;
    /// # use synack::{Stack, device::{MemoryLink, MemoryLinkConfig}};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// # let (a, _b) = MemoryLink::pair(MemoryLinkConfig::default());
    /// # let stack = Stack::new(a, Ipv4Addr::new(192, 0, 2, 1), 24);
    /// # let _guard = stack.enter();
    /// use synack::net::{TcpListener, TcpStream};
    ///
    /// let listener = TcpListener::bind("127.0.0.1:0").await?;
    /// let stream = TcpStream::connect(listener.local_addr()?).await?;
    /// assert_eq!(stream.ttl()?, 64);
    /// # Ok(())
    /// # }
    /// ```
    pub fn ttl(&self) -> io::Result<u32> {
        let st = self.handle.shared.lock();
        st.engine.ttl(self.socket).map(u32::from).map_err(to_io)
    }

    /// Sets the IP time-to-live of the connection's packets from now on.
    ///
    /// # Errors
    ///
    /// `InvalidInput` for 0 or anything above 255, as on Linux.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::net::Ipv4Addr;
    /// # use synack::{Stack, device::{MemoryLink, MemoryLinkConfig}};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// # let (a, _b) = MemoryLink::pair(MemoryLinkConfig::default());
    /// # let stack = Stack::new(a, Ipv4Addr::new(192, 0, 2, 1), 24);
    /// # let _guard = stack.enter();
    /// use std::io::ErrorKind;
    /// use synack::net::{TcpListener, TcpStream};
    ///
    /// let listener = TcpListener::bind("127.0.0.1:0").await?;
    /// let stream = TcpStream::connect(listener.local_addr()?).await?;
    /// stream.set_ttl(32)?;
    /// assert_eq!(stream.ttl()?, 32);
    /// assert_eq!(stream.set_ttl(256).unwrap_err().kind(), ErrorKind::InvalidInput);
    /// # Ok(())
    /// # }
    /// ```
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        let ttl = u8::try_from(ttl).map_err(|_| to_io(Error::InvalidInput))?;
        let mut st = self.handle.shared.lock();
        st.engine.set_ttl(self.socket, ttl).map_err(to_io)
    }

    /// Whether `TCP_QUICKACK` is on: every data segment acknowledged at once
    /// instead of delayed (RFC 1122 §4.2.3.2). Off by default; the first
    /// segments of a connection are acknowledged at once anyway, as on Linux.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::net::Ipv4Addr;
    /// # use synack::{Stack, device::{MemoryLink, MemoryLinkConfig}};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// # let (a, _b) = MemoryLink::pair(MemoryLinkConfig::default());
    /// # let stack = Stack::new(a, Ipv4Addr::new(192, 0, 2, 1), 24);
    /// # let _guard = stack.enter();
    /// use synack::net::{TcpListener, TcpStream};
    ///
    /// let listener = TcpListener::bind("127.0.0.1:0").await?;
    /// let stream = TcpStream::connect(listener.local_addr()?).await?;
    /// assert!(!stream.quickack()?);
    /// # Ok(())
    /// # }
    /// ```
    pub fn quickack(&self) -> io::Result<bool> {
        let st = self.handle.shared.lock();
        st.engine.quickack(self.socket).map_err(to_io)
    }

    /// Turns `TCP_QUICKACK` on or off. Unlike Linux, where the kernel may turn
    /// it off again by itself, the setting stays until changed.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::net::Ipv4Addr;
    /// # use synack::{Stack, device::{MemoryLink, MemoryLinkConfig}};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// # let (a, _b) = MemoryLink::pair(MemoryLinkConfig::default());
    /// # let stack = Stack::new(a, Ipv4Addr::new(192, 0, 2, 1), 24);
    /// # let _guard = stack.enter();
    /// use synack::net::{TcpListener, TcpStream};
    ///
    /// let listener = TcpListener::bind("127.0.0.1:0").await?;
    /// let stream = TcpStream::connect(listener.local_addr()?).await?;
    /// stream.set_quickack(true)?;
    /// assert!(stream.quickack()?);
    /// # Ok(())
    /// # }
    /// ```
    pub fn set_quickack(&self, quickack: bool) -> io::Result<()> {
        let mut st = self.handle.shared.lock();
        st.engine.set_quickack(self.socket, quickack).map_err(to_io)
    }

    /// The `SO_LINGER` setting: `None` unless set here or on the
    /// [`TcpSocket`](crate::net::TcpSocket) (or listening socket) it came from.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::net::Ipv4Addr;
    /// # use synack::{Stack, device::{MemoryLink, MemoryLinkConfig}};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// # let (a, _b) = MemoryLink::pair(MemoryLinkConfig::default());
    /// # let stack = Stack::new(a, Ipv4Addr::new(192, 0, 2, 1), 24);
    /// # let _guard = stack.enter();
    /// use synack::net::{TcpListener, TcpStream};
    ///
    /// let listener = TcpListener::bind("127.0.0.1:0").await?;
    /// let stream = TcpStream::connect(listener.local_addr()?).await?;
    /// assert_eq!(stream.linger()?, None);
    /// # Ok(())
    /// # }
    /// ```
    pub fn linger(&self) -> io::Result<Option<Duration>> {
        let st = self.handle.shared.lock();
        st.engine.linger(self.socket).map_err(to_io)
    }

    /// Sets `SO_LINGER`. `Some(Duration::ZERO)` makes dropping the stream reset
    /// the connection (RST) at once; any other value closes gracefully, since
    /// the drop never blocks (tokio deprecates this for the kernel's blocking
    /// close; prefer [`set_zero_linger`](TcpStream::set_zero_linger)).
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::net::Ipv4Addr;
    /// # use synack::{Stack, device::{MemoryLink, MemoryLinkConfig}};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// # let (a, _b) = MemoryLink::pair(MemoryLinkConfig::default());
    /// # let stack = Stack::new(a, Ipv4Addr::new(192, 0, 2, 1), 24);
    /// # let _guard = stack.enter();
    /// use std::time::Duration;
    /// use synack::net::{TcpListener, TcpStream};
    ///
    /// let listener = TcpListener::bind("127.0.0.1:0").await?;
    /// let stream = TcpStream::connect(listener.local_addr()?).await?;
    /// stream.set_linger(Some(Duration::from_secs(1)))?;
    /// assert_eq!(stream.linger()?, Some(Duration::from_secs(1)));
    /// # Ok(())
    /// # }
    /// ```
    pub fn set_linger(&self, dur: Option<Duration>) -> io::Result<()> {
        let mut st = self.handle.shared.lock();
        st.engine.set_linger(self.socket, dur).map_err(to_io)
    }

    /// `SO_LINGER` of zero: dropping the stream sends RST and frees the
    /// connection at once, with no FIN and no TIME-WAIT.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::net::Ipv4Addr;
    /// # use synack::{Stack, device::{MemoryLink, MemoryLinkConfig}};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// # let (a, _b) = MemoryLink::pair(MemoryLinkConfig::default());
    /// # let stack = Stack::new(a, Ipv4Addr::new(192, 0, 2, 1), 24);
    /// # let _guard = stack.enter();
    /// use std::io::ErrorKind;
    /// use tokio::io::AsyncReadExt;
    /// use synack::net::{TcpListener, TcpStream};
    ///
    /// let listener = TcpListener::bind("127.0.0.1:0").await?;
    /// let mut stream = TcpStream::connect(listener.local_addr()?).await?;
    /// let (mut peer, _) = listener.accept().await?;
    /// stream.set_zero_linger()?;
    /// drop(stream);
    /// let err = peer.read(&mut [0u8; 8]).await.unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::ConnectionReset);
    /// # Ok(())
    /// # }
    /// ```
    pub fn set_zero_linger(&self) -> io::Result<()> {
        self.set_linger(Some(Duration::ZERO))
    }

    /// The keepalive settings, `None` when off, as it is by default
    /// (synack-specific: tokio reaches these through `socket2`).
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::net::Ipv4Addr;
    /// # use synack::{Stack, device::{MemoryLink, MemoryLinkConfig}};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// # let (a, _b) = MemoryLink::pair(MemoryLinkConfig::default());
    /// # let stack = Stack::new(a, Ipv4Addr::new(192, 0, 2, 1), 24);
    /// # let _guard = stack.enter();
    /// use synack::net::{TcpListener, TcpStream};
    ///
    /// let listener = TcpListener::bind("127.0.0.1:0").await?;
    /// let stream = TcpStream::connect(listener.local_addr()?).await?;
    /// assert_eq!(stream.keepalive()?, None);
    /// # Ok(())
    /// # }
    /// ```
    pub fn keepalive(&self) -> io::Result<Option<Keepalive>> {
        let st = self.handle.shared.lock();
        st.engine.keepalive(self.socket).map_err(to_io)
    }

    /// Turns keepalive (RFC 1122 §4.2.3.6) on with these idle, interval and
    /// count settings, or off with `None`. After `idle` without a segment from
    /// the peer, probes go every `interval`; after `count` unanswered the
    /// connection fails with `TimedOut`.
    ///
    /// # Errors
    ///
    /// `InvalidInput` for a zero idle time, interval or count.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::net::Ipv4Addr;
    /// # use synack::{Stack, device::{MemoryLink, MemoryLinkConfig}};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// # let (a, _b) = MemoryLink::pair(MemoryLinkConfig::default());
    /// # let stack = Stack::new(a, Ipv4Addr::new(192, 0, 2, 1), 24);
    /// # let _guard = stack.enter();
    /// use std::io::ErrorKind;
    /// use std::time::Duration;
    /// use synack::Keepalive;
    /// use synack::net::{TcpListener, TcpStream};
    ///
    /// let listener = TcpListener::bind("127.0.0.1:0").await?;
    /// let stream = TcpStream::connect(listener.local_addr()?).await?;
    /// let ka = Keepalive {
    ///     idle: Duration::from_secs(60),
    ///     interval: Duration::from_secs(10),
    ///     count: 3,
    /// };
    /// stream.set_keepalive(Some(ka))?;
    /// assert_eq!(stream.keepalive()?, Some(ka));
    ///
    /// let bad = Keepalive { count: 0, ..ka };
    /// let err = stream.set_keepalive(Some(bad)).unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::InvalidInput);
    /// # Ok(())
    /// # }
    /// ```
    pub fn set_keepalive(&self, keepalive: Option<Keepalive>) -> io::Result<()> {
        let shared = &self.handle.shared;
        let wake = {
            let mut st = shared.lock();
            let now = shared.now();
            st.engine
                .set_keepalive(now, self.socket, keepalive)
                .map_err(to_io)?;
            st.after_call(now)
        };
        wake.run();
        Ok(())
    }

    /// `TCP_USER_TIMEOUT` (RFC 5482): the connection fails with `TimedOut` when
    /// sent data stays unacknowledged this long. `None` (the default): the
    /// retry limits apply.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::net::Ipv4Addr;
    /// # use synack::{Stack, device::{MemoryLink, MemoryLinkConfig}};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// # let (a, _b) = MemoryLink::pair(MemoryLinkConfig::default());
    /// # let stack = Stack::new(a, Ipv4Addr::new(192, 0, 2, 1), 24);
    /// # let _guard = stack.enter();
    /// use synack::net::{TcpListener, TcpStream};
    ///
    /// let listener = TcpListener::bind("127.0.0.1:0").await?;
    /// let stream = TcpStream::connect(listener.local_addr()?).await?;
    /// assert_eq!(stream.user_timeout()?, None);
    /// # Ok(())
    /// # }
    /// ```
    pub fn user_timeout(&self) -> io::Result<Option<Duration>> {
        let st = self.handle.shared.lock();
        st.engine.user_timeout(self.socket).map_err(to_io)
    }

    /// Sets (or clears, with `None` or zero) `TCP_USER_TIMEOUT`.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::net::Ipv4Addr;
    /// # use synack::{Stack, device::{MemoryLink, MemoryLinkConfig}};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// # let (a, _b) = MemoryLink::pair(MemoryLinkConfig::default());
    /// # let stack = Stack::new(a, Ipv4Addr::new(192, 0, 2, 1), 24);
    /// # let _guard = stack.enter();
    /// use std::time::Duration;
    /// use synack::net::{TcpListener, TcpStream};
    ///
    /// let listener = TcpListener::bind("127.0.0.1:0").await?;
    /// let stream = TcpStream::connect(listener.local_addr()?).await?;
    /// stream.set_user_timeout(Some(Duration::from_secs(30)))?;
    /// assert_eq!(stream.user_timeout()?, Some(Duration::from_secs(30)));
    /// stream.set_user_timeout(Some(Duration::ZERO))?;
    /// assert_eq!(stream.user_timeout()?, None); // zero turns it off
    /// # Ok(())
    /// # }
    /// ```
    pub fn set_user_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        let mut st = self.handle.shared.lock();
        st.engine
            .set_user_timeout(self.socket, timeout)
            .map_err(to_io)
    }

    /// Splits the stream into a read half and a write half borrowing it, which
    /// can be used at the same time (in one task, or with scoped tasks).
    ///
    /// Zero cost: the halves are references. Shutting down the write half closes
    /// the stream's sending direction. For halves that move to other tasks, see
    /// [`into_split`](TcpStream::into_split).
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::net::Ipv4Addr;
    /// # use synack::{Stack, device::{MemoryLink, MemoryLinkConfig}};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// # let (a, _b) = MemoryLink::pair(MemoryLinkConfig::default());
    /// # let stack = Stack::new(a, Ipv4Addr::new(192, 0, 2, 1), 24);
    /// # let _guard = stack.enter();
    /// use tokio::io::{AsyncReadExt, AsyncWriteExt};
    /// use synack::net::{TcpListener, TcpStream};
    ///
    /// let listener = TcpListener::bind("127.0.0.1:0").await?;
    /// let mut stream = TcpStream::connect(listener.local_addr()?).await?;
    /// let (mut peer, _) = listener.accept().await?;
    /// let (mut rd, mut wr) = stream.split();
    /// let mut buf = [0u8; 4];
    /// // Write and read at once, in one task.
    /// let (sent, got) = tokio::join!(wr.write_all(b"ping"), async {
    ///     peer.write_all(b"pong").await?;
    ///     rd.read_exact(&mut buf).await
    /// });
    /// sent?;
    /// got?;
    /// assert_eq!(&buf, b"pong");
    /// # Ok(())
    /// # }
    /// ```
    pub fn split(&mut self) -> (ReadHalf<'_>, WriteHalf<'_>) {
        split(self)
    }

    /// Splits the stream into owned halves that can move to different tasks.
    /// Dropping the write half sends a FIN (unless it is
    /// [`forget`](OwnedWriteHalf::forget)-ed); [`reunite`](OwnedReadHalf::reunite)
    /// puts the stream back together.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::net::Ipv4Addr;
    /// # use synack::{Stack, net::{TcpListener, TcpStream}};
    /// # use synack::device::{MemoryLink, MemoryLinkConfig};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// # let (a, b) = MemoryLink::pair(MemoryLinkConfig::default());
    /// # let server = Stack::new(a, Ipv4Addr::new(192, 0, 2, 1), 24);
    /// # let client = Stack::new(b, Ipv4Addr::new(192, 0, 2, 2), 24);
    /// # let listener = TcpListener::bind_on(&server, "192.0.2.1:7").await?;
    /// # let (stream, accepted) =
    /// #     tokio::join!(TcpStream::connect_on(&client, "192.0.2.1:7"), listener.accept());
    /// # let (stream, (peer, _)) = (stream?, accepted?);
    /// use tokio::io::{AsyncReadExt, AsyncWriteExt};
    ///
    /// let (mut rd, mut wr) = stream.into_split();
    /// let writer = tokio::spawn(async move {
    ///     wr.write_all(b"hello").await?;
    ///     std::io::Result::Ok(wr) // dropping it instead would send a FIN
    /// });
    /// let mut peer = peer;
    /// let mut buf = [0u8; 5];
    /// peer.read_exact(&mut buf).await?;
    /// peer.write_all(&buf).await?;
    /// rd.read_exact(&mut buf).await?;
    /// assert_eq!(&buf, b"hello");
    /// let wr = writer.await.unwrap()?;
    /// let stream = rd.reunite(wr).expect("halves of one stream");
    /// # drop(stream);
    /// # Ok(())
    /// # }
    /// ```
    pub fn into_split(self) -> (OwnedReadHalf, OwnedWriteHalf) {
        split_owned(self)
    }

    /// Statistics of the connection, like Linux's `TCP_INFO`: round-trip
    /// times, congestion window, bytes and segments in and out.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::net::Ipv4Addr;
    /// # use synack::{Stack, device::{MemoryLink, MemoryLinkConfig}};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// # let (a, _b) = MemoryLink::pair(MemoryLinkConfig::default());
    /// # let stack = Stack::new(a, Ipv4Addr::new(192, 0, 2, 1), 24);
    /// # let _guard = stack.enter();
    /// use tokio::io::{AsyncReadExt, AsyncWriteExt};
    /// use synack::net::{TcpListener, TcpStream};
    ///
    /// let listener = TcpListener::bind("127.0.0.1:0").await?;
    /// let mut stream = TcpStream::connect(listener.local_addr()?).await?;
    /// let (mut peer, _) = listener.accept().await?;
    /// stream.write_all(b"hello").await?;
    /// peer.read_exact(&mut [0u8; 5]).await?;
    /// assert_eq!(peer.info()?.bytes_received, 5);
    /// assert!(stream.info()?.segs_out > 0);
    /// # Ok(())
    /// # }
    /// ```
    pub fn info(&self) -> io::Result<TcpInfo> {
        let st = self.handle.shared.lock();
        st.engine.tcp_info(self.socket).map_err(to_io)
    }

    /// The connection's state (RFC 9293 §3.3.2), a [`State`](crate::State).
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::net::Ipv4Addr;
    /// # use synack::{Stack, device::{MemoryLink, MemoryLinkConfig}};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// # let (a, _b) = MemoryLink::pair(MemoryLinkConfig::default());
    /// # let stack = Stack::new(a, Ipv4Addr::new(192, 0, 2, 1), 24);
    /// # let _guard = stack.enter();
    /// use synack::State;
    /// use synack::net::{TcpListener, TcpStream};
    ///
    /// let listener = TcpListener::bind("127.0.0.1:0").await?;
    /// let stream = TcpStream::connect(listener.local_addr()?).await?;
    /// assert_eq!(stream.state()?, State::Established);
    /// # Ok(())
    /// # }
    /// ```
    pub fn state(&self) -> io::Result<synack_engine::State> {
        let st = self.handle.shared.lock();
        st.engine.state(self.socket).map_err(to_io)
    }

    /// The initial sequence numbers of the connection: ours (ISS) and the
    /// peer's (IRS).
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::net::Ipv4Addr;
    /// # use synack::{Stack, device::{MemoryLink, MemoryLinkConfig}};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// # let (a, _b) = MemoryLink::pair(MemoryLinkConfig::default());
    /// # let stack = Stack::new(a, Ipv4Addr::new(192, 0, 2, 1), 24);
    /// # let _guard = stack.enter();
    /// use synack::net::{TcpListener, TcpStream};
    ///
    /// let listener = TcpListener::bind("127.0.0.1:0").await?;
    /// let stream = TcpStream::connect(listener.local_addr()?).await?;
    /// let (peer, _) = listener.accept().await?;
    /// let (iss, irs) = stream.initial_sequence_numbers()?;
    /// assert_eq!(peer.initial_sequence_numbers()?, (irs, iss));
    /// # Ok(())
    /// # }
    /// ```
    pub fn initial_sequence_numbers(&self) -> io::Result<(u32, u32)> {
        let st = self.handle.shared.lock();
        let (iss, irs) = st.engine.sequence_numbers(self.socket).map_err(to_io)?;
        Ok((iss.0, irs.0))
    }

    pub(crate) fn poll_read_priv(
        &self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.io_read(Some(cx), buf.remaining() > 0, |e, now, h| {
            // Initialise only as much of the caller's buffer as there is data for.
            let ready = e.recv_queue(h).unwrap_or(0);
            let want = buf.remaining().min(ready.max(1));
            let n = e.recv(now, h, buf.initialize_unfilled_to(want))?;
            buf.advance(n);
            Ok(())
        })
    }

    pub(crate) fn poll_read_slice(
        &self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        self.io_read(Some(cx), !buf.is_empty(), |e, now, h| e.recv(now, h, buf))
    }

    pub(crate) fn poll_read_vectored_priv(
        &self,
        cx: &mut Context<'_>,
        bufs: &mut [IoSliceMut<'_>],
    ) -> Poll<io::Result<usize>> {
        let room = bufs.iter().any(|b| !b.is_empty());
        self.io_read(Some(cx), room, |e, now, h| read_vectored(e, now, h, bufs))
    }

    pub(crate) fn poll_write_priv(
        &self,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.io(Some(cx), Dir::Write, |e, now, h| e.send(now, h, data))
    }

    pub(crate) fn poll_write_vectored_priv(
        &self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.io(Some(cx), Dir::Write, |e, now, h| {
            write_vectored(e, now, h, bufs)
        })
    }

    /// As tokio's (tokio-rs/tokio#4665): `NotConnected` (a connection
    /// the peer reset or that timed out) is `Ok`, so a shutdown does not
    /// race the connection's end.
    pub(crate) fn shutdown_priv(&self) -> io::Result<()> {
        match self.try_now(|e, now, h| e.shutdown(now, h)) {
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(()),
            r => r,
        }
    }
}

/// Receives into `bufs` in turn until one is not filled. `WouldBlock` only if
/// nothing was read.
/// Runs `f` on the engine under the stack's lock, for a socket's poll and
/// `try_` calls (TCP and UDP alike). Spends tokio's cooperative budget as
/// tokio's sockets do when there is a task (`cx`), so a loop whose every call
/// is ready still yields. On success the packets `f` produced are sent and
/// waiting tasks woken; on `WouldBlock` the task of `cx` (if any) is
/// registered for `dir` under the same lock, so no event can slip in
/// between; on another error `on_error` runs under the lock first.
pub(crate) fn socket_io<R>(
    handle: &HandleRef,
    socket: SocketHandle,
    cx: Option<&mut Context<'_>>,
    dir: Dir,
    f: impl FnOnce(&mut Engine, Instant, SocketHandle) -> Result<R, Error>,
    on_error: impl FnOnce(&mut Engine, SocketHandle),
) -> Poll<io::Result<R>> {
    socket_io_unless(handle, socket, cx, dir, |_, _| false, f, on_error)
}

/// [`socket_io`], but when `blocked` says (under the lock) that `f` would
/// only return `WouldBlock`, the task is registered without calling `f` or
/// reading the clock: a read that finds nothing costs no clock read and no
/// engine work (two clock reads of the ten in a 1-byte round trip).
pub(crate) fn socket_io_unless<R>(
    handle: &HandleRef,
    socket: SocketHandle,
    mut cx: Option<&mut Context<'_>>,
    dir: Dir,
    blocked: impl FnOnce(&Engine, SocketHandle) -> bool,
    f: impl FnOnce(&mut Engine, Instant, SocketHandle) -> Result<R, Error>,
    on_error: impl FnOnce(&mut Engine, SocketHandle),
) -> Poll<io::Result<R>> {
    let coop = match cx.as_deref_mut() {
        Some(cx) => Some(ready!(tokio::task::coop::poll_proceed(cx))),
        None => None,
    };
    let shared = &handle.shared;
    let mut st = shared.lock();
    let result = if blocked(&st.engine, socket) {
        Err(Error::WouldBlock)
    } else {
        let now = shared.now();
        f(&mut st.engine, now, socket).map(|r| (r, now))
    };
    match result {
        Ok((r, now)) => {
            let wake = st.after_call(now);
            drop(st);
            wake.run();
            if let Some(c) = &coop {
                c.made_progress();
            }
            Poll::Ready(Ok(r))
        }
        Err(Error::WouldBlock) => match cx {
            Some(cx) => {
                let w = st.wakers(socket);
                register(
                    match dir {
                        Dir::Read => &mut w.read,
                        Dir::Write => &mut w.write,
                    },
                    cx.waker(),
                );
                Poll::Pending
            }
            None => Poll::Ready(Err(io::ErrorKind::WouldBlock.into())),
        },
        Err(e) => {
            on_error(&mut st.engine, socket);
            if let Some(c) = &coop {
                c.made_progress();
            }
            Poll::Ready(Err(to_io(e)))
        }
    }
}

/// Waits for the socket's next event of `interest` (one wake-up): what
/// `async_io` does when its closure says `WouldBlock` although the socket
/// was ready, instead of spinning.
pub(crate) async fn next_event(handle: &HandleRef, socket: SocketHandle, interest: Interest) {
    let mut registered = false;
    poll_fn(|cx| {
        if registered {
            return Poll::Ready(());
        }
        registered = true;
        let mut st = handle.shared.lock();
        let w = st.wakers(socket);
        if interest.is_readable() || interest.is_error() {
            register(&mut w.read, cx.waker());
        }
        if interest.is_writable() || interest.is_error() {
            register(&mut w.write, cx.waker());
        }
        Poll::Pending
    })
    .await
}

fn read_vectored(
    e: &mut Engine,
    now: Instant,
    h: SocketHandle,
    bufs: &mut [IoSliceMut<'_>],
) -> Result<usize, Error> {
    let mut total = 0;
    for b in bufs.iter_mut().filter(|b| !b.is_empty()) {
        match e.recv(now, h, b) {
            Ok(n) => {
                total += n;
                if n < b.len() {
                    break;
                }
            }
            Err(err) if total == 0 => return Err(err),
            Err(_) => break,
        }
    }
    Ok(total)
}

/// Sends `bufs` in turn until one does not fit. `WouldBlock` only if nothing
/// was taken.
fn write_vectored(
    e: &mut Engine,
    now: Instant,
    h: SocketHandle,
    bufs: &[IoSlice<'_>],
) -> Result<usize, Error> {
    let mut total = 0;
    for b in bufs.iter().filter(|b| !b.is_empty()) {
        match e.send(now, h, b) {
            Ok(n) => {
                total += n;
                if n < b.len() {
                    break;
                }
            }
            Err(err) if total == 0 => return Err(err),
            Err(_) => break,
        }
    }
    Ok(total)
}

impl AsyncRead for TcpStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.poll_read_priv(cx, buf)
    }
}

impl AsyncWrite for TcpStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_priv(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored_priv(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    /// Returns at once: bytes written are already in the connection's send
    /// buffer, as with a kernel socket.
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    /// Closes the sending direction: a FIN follows the data written so far.
    /// Returns without waiting for the peer.
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.shutdown_priv())
    }
}

impl futures::io::AsyncRead for TcpStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_read_slice(cx, buf)
    }

    fn poll_read_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &mut [IoSliceMut<'_>],
    ) -> Poll<io::Result<usize>> {
        self.poll_read_vectored_priv(cx, bufs)
    }
}

impl futures::io::AsyncWrite for TcpStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_priv(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored_priv(cx, bufs)
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    /// Closes the sending direction, as tokio's `poll_shutdown`.
    fn poll_close(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.shutdown_priv())
    }
}

impl Drop for TcpStream {
    fn drop(&mut self) {
        let shared = &self.handle.shared;
        let wake = {
            let mut st = shared.lock();
            let now = shared.now();
            st.engine.close(now, self.socket);
            *st.wakers(self.socket) = Default::default();
            st.after_call(now)
        };
        wake.run();
    }
}

impl std::fmt::Debug for TcpStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpStream")
            .field("local", &self.local_addr().ok())
            .field("peer", &self.peer_addr().ok())
            .finish()
    }
}
