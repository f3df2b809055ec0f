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
const DEFAULT_BACKLOG: usize = 1024;

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
    /// `tokio::net::TcpListener::bind`: the stack's address or `0.0.0.0`, port
    /// 0 for a free port, a backlog of 1024, and `SO_REUSEADDR` (as tokio sets
    /// it), so a port that only old connections (TIME-WAIT) still use can be
    /// taken again. Each resolved address is tried in turn.
    ///
    /// Errors: `AddrInUse` if the port has a listener; `AddrNotAvailable` if the
    /// address is not the stack's; `EAFNOSUPPORT` for IPv6; `NotFound` without
    /// a current stack.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the listener is made within one poll; a dropped future holds none.
    pub async fn bind<A: ToSocketAddrs>(addr: A) -> io::Result<TcpListener> {
        let stack = Stack::current()?;
        TcpListener::bind_on(&stack, addr).await
    }

    /// [`bind`](TcpListener::bind) on a given stack.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the listener is made within one poll; a dropped future holds none.
    pub async fn bind_on<A: ToSocketAddrs>(stack: &Stack, addr: A) -> io::Result<TcpListener> {
        TcpListener::bind_with_backlog(stack, addr, DEFAULT_BACKLOG)
    }

    /// Like [`bind_on`](TcpListener::bind_on) with a given backlog: the most
    /// connections waiting in each of the SYN and accept queues. Beyond it,
    /// SYNs are dropped.
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
    /// # Cancel safety
    ///
    /// Cancel safe: if the future is dropped before it completes, no connection
    /// is taken from the queue.
    pub async fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        poll_fn(|cx| self.poll_accept(cx)).await
    }

    /// Polls for a new connection; registers the task's waker when none is ready.
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

    /// The IP time-to-live of the listener's packets (`IP_TTL`); accepted
    /// connections inherit it.
    pub fn ttl(&self) -> io::Result<u32> {
        let st = self.handle.shared.lock();
        st.engine.ttl(self.socket).map(u32::from).map_err(to_io)
    }

    /// Sets the IP time-to-live for connections accepted from now on: 1 to
    /// 255, else `InvalidInput`, as on Linux.
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        let ttl = u8::try_from(ttl).map_err(|_| to_io(Error::InvalidInput))?;
        let mut st = self.handle.shared.lock();
        st.engine.set_ttl(self.socket, ttl).map_err(to_io)
    }

    /// The local address the listener is bound to: `0.0.0.0` and the port if
    /// it was bound to the unspecified address, as on the kernel.
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
