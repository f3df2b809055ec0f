//! `TcpListener`: a listening socket on a [`Stack`].

use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use synack_engine::{Error, SocketHandle, SocketOptions};

use crate::error::{ipv6_unsupported, to_io};
use crate::net::TcpStream;
use crate::net::addr::{ToSocketAddrs, no_addresses, resolve};
use crate::stack::{HandleRef, Stack, register};

/// The backlog a listener gets from [`TcpListener::bind`], as tokio's does.
pub(crate) const DEFAULT_BACKLOG: usize = 1024;

/// A TCP socket server, listening for connections, like `tokio::net::TcpListener`.
///
/// ```
/// use std::net::Ipv4Addr;
/// use synack::{Stack, net::TcpListener};
/// use synack::device::{MemoryLink, MemoryLinkConfig};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// let (a, _b) = MemoryLink::pair(MemoryLinkConfig::default());
/// let stack = Stack::new(a, Ipv4Addr::new(192, 0, 2, 1), 24);
/// let listener = TcpListener::bind_on(&stack, "192.0.2.1:8080").await?;
/// assert_eq!(listener.local_addr()?.port(), 8080);
/// # Ok(())
/// # }
/// ```
pub struct TcpListener {
    handle: Arc<HandleRef>,
    socket: SocketHandle,
}

impl TcpListener {
    /// Listens on `addr` on the current stack (see [`Stack::enter`]), like
    /// `tokio::net::TcpListener::bind`.
    ///
    /// The address is the stack's own, a loopback address or `0.0.0.0`; port 0
    /// picks a free port (read it back with [`local_addr`](TcpListener::local_addr)).
    /// The listener gets a backlog of 1024 and `SO_REUSEADDR` (as tokio sets it),
    /// so a port that only old connections (TIME-WAIT) still use can be taken
    /// again. Each resolved address is tried in turn and the last error returned.
    ///
    /// # Errors
    ///
    /// - `AddrInUse` if another listener holds the port;
    /// - `AddrNotAvailable` if the address is not one of the stack's;
    /// - `NotFound` without a current stack, or for a name not in the stack's
    ///   host table;
    /// - `InvalidInput` for a string that is no address;
    /// - `EAFNOSUPPORT` for an IPv6 address (on Unix the raw OS error, of kind
    ///   `Uncategorized`; elsewhere `Unsupported`).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the listener is made within one poll; a dropped future holds none.
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
    /// use synack::net::TcpListener;
    ///
    /// let listener = TcpListener::bind("127.0.0.1:0").await?;
    /// let port = listener.local_addr()?.port();
    /// assert_ne!(port, 0);
    ///
    /// // A second listener on the same port is refused.
    /// let err = TcpListener::bind(("127.0.0.1", port)).await.unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::AddrInUse);
    ///
    /// // An address the stack does not have cannot be bound.
    /// let err = TcpListener::bind("198.51.100.7:80").await.unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::AddrNotAvailable);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn bind<A: ToSocketAddrs>(addr: A) -> io::Result<TcpListener> {
        let stack = Stack::current()?;
        TcpListener::bind_on(&stack, addr).await
    }

    /// [`bind`](TcpListener::bind) on a given stack rather than the current one,
    /// with the same defaults and errors (but never `NotFound` for a missing
    /// current stack).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the listener is made within one poll; a dropped future holds none.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::net::Ipv4Addr;
    /// use synack::{Stack, net::TcpListener};
    /// use synack::device::{MemoryLink, MemoryLinkConfig};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let (a, _b) = MemoryLink::pair(MemoryLinkConfig::default());
    /// let stack = Stack::new(a, Ipv4Addr::new(192, 0, 2, 1), 24);
    /// // No `stack.enter()` needed.
    /// let listener = TcpListener::bind_on(&stack, "0.0.0.0:8080").await?;
    /// assert_eq!(listener.local_addr()?, "0.0.0.0:8080".parse().unwrap());
    /// # Ok(())
    /// # }
    /// ```
    pub async fn bind_on<A: ToSocketAddrs>(stack: &Stack, addr: A) -> io::Result<TcpListener> {
        TcpListener::bind_with_backlog(stack, addr, DEFAULT_BACKLOG)
    }

    /// Like [`bind_on`](TcpListener::bind_on) with a given backlog: the most
    /// connections waiting in each of the SYN and accept queues.
    ///
    /// Beyond the backlog, new SYNs are dropped (the client retransmits them),
    /// as Linux does. Not `async`: the listener is made at once. Errors as for
    /// [`bind`](TcpListener::bind).
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
    /// let listener = TcpListener::bind_with_backlog(&stack, "127.0.0.1:0", 8)?;
    /// let stream = TcpStream::connect(listener.local_addr()?).await?;
    /// let (accepted, peer) = listener.accept().await?;
    /// assert_eq!(peer, stream.local_addr()?);
    /// # drop(accepted);
    /// # Ok(())
    /// # }
    /// ```
    pub fn bind_with_backlog<A: ToSocketAddrs>(
        stack: &Stack,
        addr: A,
        backlog: usize,
    ) -> io::Result<TcpListener> {
        let opts = SocketOptions {
            reuseaddr: true,
            ..SocketOptions::default()
        };
        let mut last = None;
        for addr in resolve(stack, &addr)? {
            match TcpListener::listen(stack, addr, backlog, opts) {
                Ok(l) => return Ok(l),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(no_addresses))
    }

    pub(crate) fn listen(
        stack: &Stack,
        addr: SocketAddr,
        backlog: usize,
        opts: SocketOptions,
    ) -> io::Result<TcpListener> {
        let SocketAddr::V4(addr) = addr else {
            return Err(ipv6_unsupported());
        };
        let shared = stack.shared();
        let socket = shared
            .lock()
            .engine
            .listen_with(addr, backlog, opts)
            .map_err(to_io)?;
        Ok(TcpListener {
            handle: stack.handle.clone(),
            socket,
        })
    }

    /// Accepts a new connection: the stream and the peer's address.
    ///
    /// Connections complete their handshake without waiting for `accept`; it takes
    /// the oldest from the accept queue, or waits for one.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: if the future is dropped before it completes, no connection
    /// is taken from the queue.
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
    /// # stack.set_default();
    /// use synack::net::{TcpListener, TcpStream};
    /// use tokio::io::{AsyncReadExt, AsyncWriteExt};
    ///
    /// let listener = TcpListener::bind("127.0.0.1:0").await?;
    /// let addr = listener.local_addr()?;
    /// let client = tokio::spawn(async move {
    ///     let mut stream = TcpStream::connect(addr).await?;
    ///     stream.write_all(b"hi").await?;
    ///     std::io::Result::Ok(stream.local_addr()?)
    /// });
    ///
    /// let (mut stream, peer) = listener.accept().await?;
    /// let mut buf = [0u8; 2];
    /// stream.read_exact(&mut buf).await?;
    /// assert_eq!(&buf, b"hi");
    /// assert_eq!(peer, client.await.unwrap()?);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        poll_fn(|cx| self.poll_accept(cx)).await
    }

    /// Polls for a new connection; registers the task's waker when none is ready.
    ///
    /// Returns `Poll::Pending` when the accept queue is empty: the task is woken
    /// when a connection arrives (every task that polled is woken, not only the
    /// latest as with tokio). Spends tokio's cooperative budget, so an accept loop under a
    /// flood of connections still lets other tasks run.
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
    /// let (_accepted, peer) = poll_fn(|cx| listener.poll_accept(cx)).await?;
    /// assert_eq!(peer, stream.local_addr()?);
    /// # Ok(())
    /// # }
    /// ```
    pub fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<(TcpStream, SocketAddr)>> {
        // tokio's cooperative budget, as tokio's listener spends it: an accept
        // loop under a SYN flood still lets its thread's other tasks run.
        let coop = ready!(tokio::task::coop::poll_proceed(cx));
        let shared = &self.handle.shared;
        let mut st = shared.lock();
        match st.engine.accept(self.socket) {
            Ok(conn) => {
                coop.made_progress();
                let peer = st.engine.peer_addr(conn).map_err(to_io)?;
                drop(st);
                let stream = TcpStream::from_parts(self.handle.clone(), conn);
                Poll::Ready(Ok((stream, SocketAddr::V4(peer))))
            }
            Err(Error::WouldBlock) => {
                register(&mut st.wakers(self.socket).read, cx.waker());
                Poll::Pending
            }
            Err(e) => {
                coop.made_progress();
                Poll::Ready(Err(to_io(e)))
            }
        }
    }

    /// The IP time-to-live of the listener's packets (`IP_TTL`), which the
    /// connections it accepts inherit; the stack's default (64) until
    /// [`set_ttl`](TcpListener::set_ttl).
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
    /// use synack::net::TcpListener;
    ///
    /// let listener = TcpListener::bind("127.0.0.1:0").await?;
    /// assert_eq!(listener.ttl()?, 64);
    /// # Ok(())
    /// # }
    /// ```
    pub fn ttl(&self) -> io::Result<u32> {
        let st = self.handle.shared.lock();
        st.engine.ttl(self.socket).map(u32::from).map_err(to_io)
    }

    /// Sets the IP time-to-live for connections accepted from now on.
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
    /// listener.set_ttl(100)?;
    /// assert_eq!(listener.set_ttl(0).unwrap_err().kind(), ErrorKind::InvalidInput);
    ///
    /// let _client = TcpStream::connect(listener.local_addr()?).await?;
    /// let (accepted, _) = listener.accept().await?;
    /// assert_eq!(accepted.ttl()?, 100);
    /// # Ok(())
    /// # }
    /// ```
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        let ttl = u8::try_from(ttl).map_err(|_| to_io(Error::InvalidInput))?;
        let mut st = self.handle.shared.lock();
        st.engine.set_ttl(self.socket, ttl).map_err(to_io)
    }

    /// The local address the listener is bound to, with the port chosen for
    /// port 0: `0.0.0.0` if it was bound to the unspecified address, as on the
    /// kernel.
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
    /// use std::net::{Ipv4Addr, SocketAddr};
    /// use synack::net::TcpListener;
    ///
    /// let listener = TcpListener::bind("0.0.0.0:0").await?;
    /// let addr = listener.local_addr()?;
    /// assert_eq!(addr.ip(), Ipv4Addr::UNSPECIFIED);
    /// assert_ne!(addr.port(), 0);
    /// # Ok(())
    /// # }
    /// ```
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        let st = self.handle.shared.lock();
        let addr = st.engine.local_addr(self.socket).map_err(to_io)?;
        Ok(SocketAddr::V4(addr))
    }
}

impl Drop for TcpListener {
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

impl std::fmt::Debug for TcpListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpListener")
            .field("local", &self.local_addr().ok())
            .finish()
    }
}
