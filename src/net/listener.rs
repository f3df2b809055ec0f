//! `TcpListener`: a listening socket on a [`Stack`].

use std::future::poll_fn;
use std::io;
use std::net::{SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::task::{Context, Poll};

use synack_engine::{Error, SocketHandle};

use crate::error::{ipv6_unsupported, to_io};
use crate::net::TcpStream;
use crate::stack::{HandleRef, Stack};

/// The backlog a listener gets from [`TcpListener::bind`], as tokio's does.
const DEFAULT_BACKLOG: usize = 1024;

/// A TCP socket server, listening for connections, like `tokio::net::TcpListener`.
///
/// ```
/// use std::net::Ipv4Addr;
/// use synack::{Stack, net::TcpListener};
/// use synack_device::{MemoryLink, MemoryLinkConfig};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// let (a, _b) = MemoryLink::pair(MemoryLinkConfig::default());
/// let stack = Stack::new(a, Ipv4Addr::new(192, 0, 2, 1), 24);
/// let listener = TcpListener::bind(&stack, "192.0.2.1:8080").await?;
/// assert_eq!(listener.local_addr()?.port(), 8080);
/// # Ok(())
/// # }
/// ```
pub struct TcpListener {
    handle: Arc<HandleRef>,
    socket: SocketHandle,
}

impl TcpListener {
    /// Listens on `addr` (the stack's address or `0.0.0.0`; port 0 picks a free
    /// port) with a backlog of 1024.
    ///
    /// Errors: `AddrInUse` if the port has a listener; `AddrNotAvailable` if the
    /// address is not the stack's, or is IPv6.
    pub async fn bind(stack: &Stack, addr: impl Into<SocketAddrLike>) -> io::Result<TcpListener> {
        TcpListener::bind_with_backlog(stack, addr, DEFAULT_BACKLOG)
    }

    /// Like [`bind`](TcpListener::bind) with a given backlog: the most connections
    /// waiting in each of the SYN and accept queues. Beyond it, SYNs are dropped.
    pub fn bind_with_backlog(
        stack: &Stack,
        addr: impl Into<SocketAddrLike>,
        backlog: usize,
    ) -> io::Result<TcpListener> {
        let addr = addr.into().resolve()?;
        let shared = stack.shared();
        let socket = shared.lock().engine.listen(addr, backlog).map_err(to_io)?;
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
        let shared = &self.handle.shared;
        let mut st = shared.lock();
        match st.engine.accept(self.socket) {
            Ok(conn) => {
                let peer = st.engine.peer_addr(conn).map_err(to_io)?;
                drop(st);
                let stream = TcpStream::from_parts(self.handle.clone(), conn);
                Poll::Ready(Ok((stream, SocketAddr::V4(peer))))
            }
            Err(Error::WouldBlock) => {
                st.wakers(self.socket).read = Some(cx.waker().clone());
                Poll::Pending
            }
            Err(e) => Poll::Ready(Err(to_io(e))),
        }
    }

    /// The local address the listener is bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        let st = self.handle.shared.lock();
        st.engine
            .local_addr(self.socket)
            .map(SocketAddr::V4)
            .map_err(to_io)
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

/// An address given to `bind` or `connect`: a `SocketAddr`, a `SocketAddrV4`,
/// an `(Ipv4Addr, u16)` pair, or a string such as `"192.0.2.1:80"`.
#[derive(Debug, Clone)]
pub struct SocketAddrLike(Result<SocketAddr, String>);

impl SocketAddrLike {
    pub(crate) fn resolve(self) -> io::Result<SocketAddrV4> {
        match self.0 {
            Ok(SocketAddr::V4(a)) => Ok(a),
            Ok(SocketAddr::V6(_)) => Err(ipv6_unsupported()),
            Err(s) => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("invalid socket address: {s:?}"),
            )),
        }
    }
}

impl From<SocketAddr> for SocketAddrLike {
    fn from(a: SocketAddr) -> Self {
        SocketAddrLike(Ok(a))
    }
}

impl From<SocketAddrV4> for SocketAddrLike {
    fn from(a: SocketAddrV4) -> Self {
        SocketAddrLike(Ok(SocketAddr::V4(a)))
    }
}

impl From<(std::net::Ipv4Addr, u16)> for SocketAddrLike {
    fn from((ip, port): (std::net::Ipv4Addr, u16)) -> Self {
        SocketAddrLike(Ok(SocketAddr::V4(SocketAddrV4::new(ip, port))))
    }
}

impl From<&str> for SocketAddrLike {
    fn from(s: &str) -> Self {
        SocketAddrLike(s.parse().map_err(|_| s.to_string()))
    }
}

impl From<String> for SocketAddrLike {
    fn from(s: String) -> Self {
        SocketAddrLike::from(s.as_str())
    }
}
