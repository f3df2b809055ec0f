//! `TcpStream`: a connection on a [`Stack`], with tokio's `AsyncRead` and `AsyncWrite`.

use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use synack_engine::{Error, SocketHandle, TcpInfo};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::error::to_io;
use crate::net::SocketAddrLike;
use crate::stack::{HandleRef, Stack};

/// A TCP connection, like `tokio::net::TcpStream`.
///
/// Reads and writes copy bytes into and out of the connection's buffers in the
/// engine; `poll_flush` returns at once, as on a kernel socket, and
/// `poll_shutdown` queues a FIN without waiting for it to be acknowledged.
/// Dropping the stream closes it gracefully (or with a RST if received data
/// was left unread).
///
/// ```
/// use std::net::Ipv4Addr;
/// use synack::{Stack, net::{TcpListener, TcpStream}};
/// use synack_device::{MemoryLink, MemoryLinkConfig};
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// let (a, b) = MemoryLink::pair(MemoryLinkConfig::default());
/// let server = Stack::new(a, Ipv4Addr::new(192, 0, 2, 1), 24);
/// let client = Stack::new(b, Ipv4Addr::new(192, 0, 2, 2), 24);
/// let listener = TcpListener::bind(&server, "192.0.2.1:7").await?;
/// tokio::spawn(async move {
///     let (mut s, _) = listener.accept().await.unwrap();
///     let mut buf = [0u8; 5];
///     s.read_exact(&mut buf).await.unwrap();
///     s.write_all(&buf).await.unwrap();
/// });
/// let mut c = TcpStream::connect(&client, "192.0.2.1:7").await?;
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

impl TcpStream {
    pub(crate) fn from_parts(handle: Arc<HandleRef>, socket: SocketHandle) -> TcpStream {
        TcpStream { handle, socket }
    }

    /// Opens a connection to `addr` (an IPv4 address with a port): the three-way
    /// handshake from an ephemeral port.
    ///
    /// Errors: `ConnectionRefused` if the peer answers with a RST, `TimedOut`
    /// after the SYN retries, `InvalidInput` for port 0 or an unspecified address.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future aborts the connection attempt.
    pub async fn connect(stack: &Stack, addr: impl Into<SocketAddrLike>) -> io::Result<TcpStream> {
        let remote = addr.into().resolve()?;
        let shared = stack.shared();
        let (socket, wake) = {
            let mut st = shared.lock();
            let now = shared.now();
            let socket = st.engine.connect(now, remote).map_err(to_io)?;
            (socket, st.after_call(now))
        };
        wake.run();
        // From here the stream owns the socket: dropping it (on error or
        // cancellation) closes the attempt.
        let stream = TcpStream::from_parts(stack.handle.clone(), socket);
        poll_fn(|cx| {
            let mut st = shared.lock();
            match st.engine.connect_result(socket) {
                Ok(true) => Poll::Ready(Ok(())),
                Ok(false) => {
                    st.wakers(socket).write = Some(cx.waker().clone());
                    Poll::Pending
                }
                Err(e) => Poll::Ready(Err(to_io(e))),
            }
        })
        .await?;
        Ok(stream)
    }

    /// The local address of the connection.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        let st = self.handle.shared.lock();
        st.engine
            .local_addr(self.socket)
            .map(SocketAddr::V4)
            .map_err(to_io)
    }

    /// The remote address of the connection.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        let st = self.handle.shared.lock();
        st.engine
            .peer_addr(self.socket)
            .map(SocketAddr::V4)
            .map_err(to_io)
    }

    /// Turns Nagle's algorithm off (`true`) or back on. It is on by default, as
    /// on a kernel socket.
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        let mut st = self.handle.shared.lock();
        st.engine.set_nodelay(self.socket, nodelay).map_err(to_io)
    }

    /// Whether Nagle's algorithm is off.
    pub fn nodelay(&self) -> io::Result<bool> {
        let st = self.handle.shared.lock();
        st.engine.nodelay(self.socket).map_err(to_io)
    }

    /// Statistics of the connection, like Linux's `TCP_INFO`.
    pub fn info(&self) -> io::Result<TcpInfo> {
        let st = self.handle.shared.lock();
        st.engine.tcp_info(self.socket).map_err(to_io)
    }

    /// The connection's state (RFC 9293 §3.3.2).
    pub fn state(&self) -> io::Result<synack_engine::State> {
        let st = self.handle.shared.lock();
        st.engine.state(self.socket).map_err(to_io)
    }

    /// The initial sequence numbers of the connection: ours (ISS) and the peer's (IRS).
    pub fn initial_sequence_numbers(&self) -> io::Result<(u32, u32)> {
        let st = self.handle.shared.lock();
        let (iss, irs) = st.engine.sequence_numbers(self.socket).map_err(to_io)?;
        Ok((iss.0, irs.0))
    }

    fn poll_read_priv(&self, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let shared = &self.handle.shared;
        let mut st = shared.lock();
        // Initialise only as much of the caller's buffer as there is data for.
        let ready = st.engine.recv_queue(self.socket).unwrap_or(0);
        let want = buf.remaining().min(ready.max(1));
        let now = shared.now();
        let dst = buf.initialize_unfilled_to(want);
        match st.engine.recv(now, self.socket, dst) {
            Ok(n) => {
                buf.advance(n);
                let wake = st.after_call(now);
                drop(st);
                wake.run();
                Poll::Ready(Ok(()))
            }
            Err(Error::WouldBlock) => {
                st.wakers(self.socket).read = Some(cx.waker().clone());
                Poll::Pending
            }
            Err(e) => Poll::Ready(Err(to_io(e))),
        }
    }

    fn poll_write_priv(&self, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let shared = &self.handle.shared;
        let mut st = shared.lock();
        let now = shared.now();
        match st.engine.send(now, self.socket, data) {
            Ok(n) => {
                let wake = st.after_call(now);
                drop(st);
                wake.run();
                Poll::Ready(Ok(n))
            }
            Err(Error::WouldBlock) => {
                st.wakers(self.socket).write = Some(cx.waker().clone());
                Poll::Pending
            }
            Err(e) => Poll::Ready(Err(to_io(e))),
        }
    }

    fn shutdown_priv(&self) -> io::Result<()> {
        let shared = &self.handle.shared;
        let wake = {
            let mut st = shared.lock();
            let now = shared.now();
            st.engine.shutdown(now, self.socket).map_err(to_io)?;
            st.after_call(now)
        };
        wake.run();
        Ok(())
    }
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
