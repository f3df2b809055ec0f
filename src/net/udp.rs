//! `UdpSocket`: datagrams on a [`Stack`], name for name as
//! `tokio::net::UdpSocket`.

use std::future::poll_fn;
use std::io;
use std::net::{SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::task::{Context, Poll};

use synack_engine::{Engine, Error, Instant, SocketHandle};
use tokio::io::{Interest, ReadBuf, Ready};

use crate::error::{ipv6_unsupported, to_io};
use crate::net::addr::{ToSocketAddrs, no_addresses, resolve};
use crate::net::stream::{Dir, next_event, socket_io, to_ready};
use crate::stack::{HandleRef, Stack, register};

/// A UDP socket, like `tokio::net::UdpSocket`: bound to an address of its
/// stack (`0.0.0.0`, `127.0.0.1`, or one of the stack's), optionally
/// connected to one peer.
///
/// Each datagram is sent whole or not at all; one larger than the path's
/// MTU leaves in IPv4 fragments and is reassembled by the receiver. A
/// socket's receive queue is bounded ([`Config::udp_recv_buffer`](crate::Config::udp_recv_buffer),
/// 208 KiB by default, as Linux): datagrams beyond it are dropped and counted
/// in [`Stats::udp_rx_dropped`](crate::Stats::udp_rx_dropped). The socket is
/// `Send + Sync`: share it in an `Arc` to send and receive from several tasks.
///
/// ```
/// use std::net::Ipv4Addr;
/// use synack::Stack;
/// use synack::device::{MemoryLink, MemoryLinkConfig};
/// use synack::net::UdpSocket;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// let (a, _b) = MemoryLink::pair(MemoryLinkConfig::default());
/// let stack = Stack::new(a, Ipv4Addr::new(192, 0, 2, 1), 24);
/// let _guard = stack.enter();
/// let server = UdpSocket::bind("127.0.0.1:0").await?;
/// let client = UdpSocket::bind("127.0.0.1:0").await?;
/// client.connect(server.local_addr()?).await?;
/// client.send(b"ping").await?;
/// let mut buf = [0u8; 16];
/// let (n, from) = server.recv_from(&mut buf).await?;
/// assert_eq!((&buf[..n], from), (&b"ping"[..], client.local_addr()?));
/// # Ok(())
/// # }
/// ```
pub struct UdpSocket {
    handle: Arc<HandleRef>,
    socket: SocketHandle,
}

fn v4(addr: SocketAddr) -> io::Result<SocketAddrV4> {
    match addr {
        SocketAddr::V4(a) => Ok(a),
        SocketAddr::V6(_) => Err(ipv6_unsupported()),
    }
}

impl UdpSocket {
    /// Binds a socket to `addr` on the current stack (see [`Stack::enter`]).
    ///
    /// The address is `0.0.0.0`, a loopback address or one of the stack's; port
    /// 0 picks a free port. Each resolved address is tried in turn and the last
    /// error returned.
    ///
    /// # Errors
    ///
    /// - `AddrInUse` if a socket holds the address and port;
    /// - `AddrNotAvailable` for an address not the stack's;
    /// - `NotFound` without a current stack, or for a name not in the stack's
    ///   host table;
    /// - `InvalidInput` for a string that is no address;
    /// - `EAFNOSUPPORT` (kind `Uncategorized`) for IPv6.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the socket is made within one poll; a dropped future holds none.
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
    /// use synack::net::UdpSocket;
    /// let socket = UdpSocket::bind("127.0.0.1:0").await?;
    /// let addr = socket.local_addr()?;
    /// assert_ne!(addr.port(), 0);
    /// let err = UdpSocket::bind(addr).await.unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::AddrInUse);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn bind<A: ToSocketAddrs>(addr: A) -> io::Result<UdpSocket> {
        let stack = Stack::current()?;
        UdpSocket::bind_on(&stack, addr).await
    }

    /// [`bind`](UdpSocket::bind) on a given stack rather than the current one,
    /// with the same errors (but never `NotFound` for a missing current stack).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the socket is made within one poll; a dropped future holds none.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::net::Ipv4Addr;
    /// use synack::{Stack, net::UdpSocket};
    /// use synack::device::{MemoryLink, MemoryLinkConfig};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let (a, _b) = MemoryLink::pair(MemoryLinkConfig::default());
    /// let stack = Stack::new(a, Ipv4Addr::new(192, 0, 2, 1), 24);
    /// let socket = UdpSocket::bind_on(&stack, "192.0.2.1:5353").await?;
    /// assert_eq!(socket.local_addr()?, "192.0.2.1:5353".parse().unwrap());
    /// # Ok(())
    /// # }
    /// ```
    pub async fn bind_on<A: ToSocketAddrs>(stack: &Stack, addr: A) -> io::Result<UdpSocket> {
        let mut last = None;
        for addr in resolve(stack, &addr)? {
            let result = v4(addr).and_then(|a| {
                let shared = stack.shared();
                shared.lock().engine.udp_bind(a).map_err(to_io)
            });
            match result {
                Ok(socket) => {
                    return Ok(UdpSocket {
                        handle: stack.handle.clone(),
                        socket,
                    });
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(no_addresses))
    }

    /// The stack the socket lives on.
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
    /// use synack::net::UdpSocket;
    /// let socket = UdpSocket::bind("127.0.0.1:0").await?;
    /// let other = UdpSocket::bind_on(&socket.stack(), "127.0.0.1:0").await?;
    /// assert_ne!(other.local_addr()?, socket.local_addr()?);
    /// # Ok(())
    /// # }
    /// ```
    pub fn stack(&self) -> Stack {
        Stack {
            handle: self.handle.clone(),
        }
    }

    /// Runs `f` on the engine under the stack's lock; on `WouldBlock` the
    /// task of `cx` (if any) is registered for `dir` under the same lock.
    fn io<R>(
        &self,
        cx: Option<&mut Context<'_>>,
        dir: Dir,
        f: impl FnOnce(&mut Engine, Instant, SocketHandle) -> Result<R, Error>,
    ) -> Poll<io::Result<R>> {
        socket_io(&self.handle, self.socket, cx, dir, f, |_, _| {})
    }

    fn try_now<R>(
        &self,
        f: impl FnOnce(&mut Engine, Instant, SocketHandle) -> Result<R, Error>,
    ) -> io::Result<R> {
        match self.io(None, Dir::Read, f) {
            Poll::Ready(r) => r,
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }

    /// The address the socket is bound to, with the port chosen for port 0.
    /// After [`connect`](UdpSocket::connect) from `0.0.0.0`, the source address
    /// the route chose, as on Linux.
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
    /// use synack::net::UdpSocket;
    /// let socket = UdpSocket::bind("0.0.0.0:0").await?;
    /// assert!(socket.local_addr()?.ip().is_unspecified());
    /// socket.connect("127.0.0.1:9").await?;
    /// assert_eq!(socket.local_addr()?.ip().to_string(), "127.0.0.1");
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

    /// The peer of a connected socket.
    ///
    /// # Errors
    ///
    /// `NotConnected` if the socket is not connected.
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
    /// use synack::net::UdpSocket;
    /// let socket = UdpSocket::bind("127.0.0.1:0").await?;
    /// assert_eq!(socket.peer_addr().unwrap_err().kind(), ErrorKind::NotConnected);
    /// socket.connect("127.0.0.1:53").await?;
    /// assert_eq!(socket.peer_addr()?, "127.0.0.1:53".parse().unwrap());
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

    /// Connects the socket to `addr`: [`send`](UdpSocket::send) goes there, and
    /// only its datagrams are received from now on.
    ///
    /// No packet is sent. Each resolved address is tried in turn. A pending
    /// error is cleared. An ICMP port unreachable from the peer is reported by
    /// the next call as `ConnectionRefused`, as on Linux.
    ///
    /// # Errors
    ///
    /// `InvalidInput` for port 0, a multicast or unspecified address, or a
    /// non-loopback address from a socket bound to loopback; `PermissionDenied`
    /// for a broadcast address without [`set_broadcast`](UdpSocket::set_broadcast);
    /// `NetworkUnreachable` without a route; `EAFNOSUPPORT` for IPv6.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the socket is connected within one poll, or not at all.
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
    /// use synack::net::UdpSocket;
    /// let socket = UdpSocket::bind("127.0.0.1:0").await?;
    /// socket.connect("127.0.0.1:9").await?; // nothing listens there
    /// socket.send(b"anyone?").await?;
    /// let err = socket.recv(&mut [0u8; 8]).await.unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::ConnectionRefused);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn connect<A: ToSocketAddrs>(&self, addr: A) -> io::Result<()> {
        let mut last = None;
        for addr in resolve(&self.stack(), &addr)? {
            let result = v4(addr).and_then(|a| {
                let mut st = self.handle.shared.lock();
                st.engine.udp_connect(self.socket, a).map_err(to_io)
            });
            match result {
                Ok(()) => return Ok(()),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(no_addresses))
    }

    /// The readiness for `interest` now, or registers the task and waits.
    fn poll_ready(&self, cx: &mut Context<'_>, interest: Interest) -> Poll<Ready> {
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

    /// Waits for any of the readiness in `interest`: readable (a datagram or a
    /// pending error is queued), writable (room in the send buffer).
    ///
    /// Readiness is level-triggered: it reflects the socket at the moment of the
    /// call.
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
    /// use tokio::io::Interest;
    /// use synack::net::UdpSocket;
    ///
    /// let a = UdpSocket::bind("127.0.0.1:0").await?;
    /// let b = UdpSocket::bind("127.0.0.1:0").await?;
    /// b.send_to(b"x", a.local_addr()?).await?;
    /// let ready = a.ready(Interest::READABLE | Interest::WRITABLE).await?;
    /// assert!(ready.is_writable());
    /// a.readable().await?;
    /// assert!(a.ready(Interest::READABLE).await?.is_readable());
    /// # Ok(())
    /// # }
    /// ```
    pub async fn ready(&self, interest: Interest) -> io::Result<Ready> {
        Ok(poll_fn(|cx| self.poll_ready(cx, interest)).await)
    }

    /// Waits until a send would not block: there is room in the socket's send
    /// buffer.
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
    /// use synack::net::UdpSocket;
    ///
    /// let a = UdpSocket::bind("127.0.0.1:0").await?;
    /// let b = UdpSocket::bind("127.0.0.1:0").await?;
    /// a.connect(b.local_addr()?).await?;
    /// b.connect(a.local_addr()?).await?;
    /// a.writable().await?;
    /// assert_eq!(a.try_send(b"hi")?, 2);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn writable(&self) -> io::Result<()> {
        self.ready(Interest::WRITABLE).await.map(|_| ())
    }

    /// Polls for room to send; registers the task's waker when there is none
    /// (every task that polled is woken, not only the latest as with tokio).
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
    /// use synack::net::UdpSocket;
    ///
    /// let a = UdpSocket::bind("127.0.0.1:0").await?;
    /// let b = UdpSocket::bind("127.0.0.1:0").await?;
    /// a.connect(b.local_addr()?).await?;
    /// b.connect(a.local_addr()?).await?;
    /// poll_fn(|cx| a.poll_send_ready(cx)).await?;
    /// assert_eq!(a.try_send(b"hi")?, 2);
    /// # Ok(())
    /// # }
    /// ```
    pub fn poll_send_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_ready(cx, Interest::WRITABLE).map(|_| Ok(()))
    }

    /// Waits until a receive would not block: a datagram or a pending error is
    /// queued.
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
    /// use synack::net::UdpSocket;
    ///
    /// let a = UdpSocket::bind("127.0.0.1:0").await?;
    /// let b = UdpSocket::bind("127.0.0.1:0").await?;
    /// a.connect(b.local_addr()?).await?;
    /// b.connect(a.local_addr()?).await?;
    /// b.send(b"hello").await?;
    /// a.readable().await?;
    /// let mut buf = [0u8; 16];
    /// assert_eq!(a.try_recv(&mut buf)?, 5);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn readable(&self) -> io::Result<()> {
        self.ready(Interest::READABLE).await.map(|_| ())
    }

    /// Polls for a datagram (or an error) to receive; registers the task's waker
    /// when there is none.
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
    /// use synack::net::UdpSocket;
    ///
    /// let a = UdpSocket::bind("127.0.0.1:0").await?;
    /// let b = UdpSocket::bind("127.0.0.1:0").await?;
    /// a.connect(b.local_addr()?).await?;
    /// b.connect(a.local_addr()?).await?;
    /// b.send(b"x").await?;
    /// poll_fn(|cx| a.poll_recv_ready(cx)).await?;
    /// assert_eq!(a.try_recv(&mut [0u8; 4])?, 1);
    /// # Ok(())
    /// # }
    /// ```
    pub fn poll_recv_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_ready(cx, Interest::READABLE).map(|_| Ok(()))
    }

    /// Sends a datagram to the connected peer; returns its length.
    ///
    /// Each datagram is sent whole or not at all; it waits only while the
    /// socket's send buffer is full.
    ///
    /// # Errors
    ///
    /// `NotConnected` on a socket not connected; `EMSGSIZE` beyond 65 507
    /// bytes; a pending ICMP error (`ConnectionRefused`), once.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the datagram is sent whole or not at all.
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
    /// use synack::net::UdpSocket;
    ///
    /// let a = UdpSocket::bind("127.0.0.1:0").await?;
    /// let b = UdpSocket::bind("127.0.0.1:0").await?;
    /// assert_eq!(a.send(b"x").await.unwrap_err().kind(), ErrorKind::NotConnected);
    /// a.connect(b.local_addr()?).await?;
    /// assert_eq!(a.send(b"hello").await?, 5);
    /// let mut buf = [0u8; 16];
    /// let (n, from) = b.recv_from(&mut buf).await?;
    /// assert_eq!((&buf[..n], from), (&b"hello"[..], a.local_addr()?));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn send(&self, buf: &[u8]) -> io::Result<usize> {
        poll_fn(|cx| self.poll_send(cx, buf)).await
    }

    /// Polls to send a datagram to the connected peer: `Poll::Pending` (the task
    /// registered) while the send buffer is full; errors as
    /// [`send`](UdpSocket::send).
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
    /// use synack::net::UdpSocket;
    ///
    /// let a = UdpSocket::bind("127.0.0.1:0").await?;
    /// let b = UdpSocket::bind("127.0.0.1:0").await?;
    /// a.connect(b.local_addr()?).await?;
    /// b.connect(a.local_addr()?).await?;
    /// let n = poll_fn(|cx| a.poll_send(cx, b"ping")).await?;
    /// assert_eq!(n, 4);
    /// # Ok(())
    /// # }
    /// ```
    pub fn poll_send(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.io(Some(cx), Dir::Write, |e, now, h| {
            e.udp_send(now, h, buf, None)
        })
    }

    /// Sends a datagram to the connected peer if there is room now.
    ///
    /// # Errors
    ///
    /// `WouldBlock` when the send buffer is full; otherwise as
    /// [`send`](UdpSocket::send).
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
    /// use synack::net::UdpSocket;
    ///
    /// let a = UdpSocket::bind("127.0.0.1:0").await?;
    /// let b = UdpSocket::bind("127.0.0.1:0").await?;
    /// a.connect(b.local_addr()?).await?;
    /// b.connect(a.local_addr()?).await?;
    /// assert_eq!(a.try_send(b"now")?, 3);
    /// let mut buf = [0u8; 8];
    /// assert_eq!(b.recv(&mut buf).await?, 3);
    /// # Ok(())
    /// # }
    /// ```
    pub fn try_send(&self, buf: &[u8]) -> io::Result<usize> {
        self.try_now(|e, now, h| e.udp_send(now, h, buf, None))
    }

    /// Sends a datagram to `target` (resolved on the socket's stack; the first
    /// address is used), whether or not the socket is connected.
    ///
    /// # Errors
    ///
    /// `PermissionDenied` to a broadcast address without
    /// [`set_broadcast`](Self::set_broadcast); `EMSGSIZE` beyond 65 507 bytes
    /// (on Unix the raw OS error, of kind `Uncategorized`);
    /// `InvalidInput` for port 0, a multicast or unspecified address, or a
    /// non-loopback target from a socket bound to loopback;
    /// `NetworkUnreachable` without a route; `NotFound` for a name not in the
    /// host table; `EAFNOSUPPORT` for IPv6.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the datagram is sent whole or not at all.
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
    /// use synack::net::UdpSocket;
    ///
    /// let a = UdpSocket::bind("127.0.0.1:0").await?;
    /// let b = UdpSocket::bind("127.0.0.1:0").await?;
    /// assert_eq!(a.send_to(b"hi", b.local_addr()?).await?, 2);
    ///
    /// let too_big = vec![0u8; 65_508];
    /// assert!(a.send_to(&too_big, b.local_addr()?).await.is_err()); // EMSGSIZE
    /// # Ok(())
    /// # }
    /// ```
    pub async fn send_to<A: ToSocketAddrs>(&self, buf: &[u8], target: A) -> io::Result<usize> {
        let target = resolve(&self.stack(), &target)?
            .into_iter()
            .next()
            .ok_or_else(no_addresses)?;
        poll_fn(|cx| self.poll_send_to(cx, buf, target)).await
    }

    /// Polls to send a datagram to `target`: `Poll::Pending` (the task
    /// registered) while the send buffer is full; errors as
    /// [`send_to`](UdpSocket::send_to).
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
    /// use synack::net::UdpSocket;
    ///
    /// let a = UdpSocket::bind("127.0.0.1:0").await?;
    /// let b = UdpSocket::bind("127.0.0.1:0").await?;
    /// let to = b.local_addr()?;
    /// let n = poll_fn(|cx| a.poll_send_to(cx, b"ping", to)).await?;
    /// assert_eq!(n, 4);
    /// # Ok(())
    /// # }
    /// ```
    pub fn poll_send_to(
        &self,
        cx: &mut Context<'_>,
        buf: &[u8],
        target: SocketAddr,
    ) -> Poll<io::Result<usize>> {
        let target = match v4(target) {
            Ok(t) => t,
            Err(e) => return Poll::Ready(Err(e)),
        };
        self.io(Some(cx), Dir::Write, |e, now, h| {
            e.udp_send(now, h, buf, Some(target))
        })
    }

    /// Sends a datagram to `target` if there is room now.
    ///
    /// # Errors
    ///
    /// `WouldBlock` when the send buffer is full; otherwise as
    /// [`send_to`](UdpSocket::send_to).
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
    /// use synack::net::UdpSocket;
    ///
    /// let a = UdpSocket::bind("127.0.0.1:0").await?;
    /// let b = UdpSocket::bind("127.0.0.1:0").await?;
    /// assert_eq!(a.try_send_to(b"hi", b.local_addr()?)?, 2);
    /// let mut buf = [0u8; 8];
    /// assert_eq!(b.recv_from(&mut buf).await?, (2, a.local_addr()?));
    /// # Ok(())
    /// # }
    /// ```
    pub fn try_send_to(&self, buf: &[u8], target: SocketAddr) -> io::Result<usize> {
        let target = v4(target)?;
        self.try_now(|e, now, h| e.udp_send(now, h, buf, Some(target)))
    }

    /// Receives a datagram into `buf`: from the connected peer, or from anyone
    /// on a socket not connected. A datagram longer than `buf` is cut and the
    /// rest discarded, as on a kernel.
    ///
    /// # Errors
    ///
    /// A pending ICMP error about what the socket sent (`ConnectionRefused`),
    /// once.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: no datagram is taken unless the call completes.
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
    /// use synack::net::UdpSocket;
    ///
    /// let a = UdpSocket::bind("127.0.0.1:0").await?;
    /// let b = UdpSocket::bind("127.0.0.1:0").await?;
    /// a.connect(b.local_addr()?).await?;
    /// b.connect(a.local_addr()?).await?;
    /// b.send(b"hello world").await?;
    /// let mut buf = [0u8; 5];
    /// assert_eq!(a.recv(&mut buf).await?, 5);
    /// assert_eq!(&buf, b"hello"); // the rest of the datagram is gone
    /// # Ok(())
    /// # }
    /// ```
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        poll_fn(|cx| self.poll_recv_from_slice(cx, buf, false))
            .await
            .map(|(n, _)| n)
    }

    fn poll_recv_from_slice(
        &self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
        peek: bool,
    ) -> Poll<io::Result<(usize, SocketAddr)>> {
        self.io(Some(cx), Dir::Read, |e, _, h| {
            e.udp_recv(h, buf, peek)
                .map(|(n, from)| (n, SocketAddr::V4(from)))
        })
    }

    /// Polls to receive a datagram into `buf`, filling it as
    /// [`recv`](UdpSocket::recv) would; `Poll::Pending` (the task registered)
    /// when none is queued.
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
    /// use synack::net::UdpSocket;
    ///
    /// let a = UdpSocket::bind("127.0.0.1:0").await?;
    /// let b = UdpSocket::bind("127.0.0.1:0").await?;
    /// a.connect(b.local_addr()?).await?;
    /// b.connect(a.local_addr()?).await?;
    /// b.send(b"hi").await?;
    /// let mut storage = [0u8; 8];
    /// let mut buf = ReadBuf::new(&mut storage);
    /// poll_fn(|cx| a.poll_recv(cx, &mut buf)).await?;
    /// assert_eq!(buf.filled(), b"hi");
    /// # Ok(())
    /// # }
    /// ```
    pub fn poll_recv(&self, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        self.poll_recv_read_buf(cx, buf, false).map_ok(|_| ())
    }

    fn poll_recv_read_buf(
        &self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
        peek: bool,
    ) -> Poll<io::Result<SocketAddr>> {
        let dst = buf.initialize_unfilled();
        match self.poll_recv_from_slice(cx, dst, peek) {
            Poll::Ready(Ok((n, from))) => {
                buf.advance(n);
                Poll::Ready(Ok(from))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }

    /// Receives a datagram if one is queued, as [`recv`](UdpSocket::recv).
    ///
    /// # Errors
    ///
    /// `WouldBlock` when none is queued; a pending ICMP error, once.
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
    /// use synack::net::UdpSocket;
    ///
    /// let a = UdpSocket::bind("127.0.0.1:0").await?;
    /// let b = UdpSocket::bind("127.0.0.1:0").await?;
    /// a.connect(b.local_addr()?).await?;
    /// b.connect(a.local_addr()?).await?;
    /// let mut buf = [0u8; 8];
    /// assert_eq!(a.try_recv(&mut buf).unwrap_err().kind(), ErrorKind::WouldBlock);
    /// b.send(b"hi").await?;
    /// a.readable().await?;
    /// assert_eq!(a.try_recv(&mut buf)?, 2);
    /// # Ok(())
    /// # }
    /// ```
    pub fn try_recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.try_now(|e, _, h| e.udp_recv(h, buf, false))
            .map(|(n, _)| n)
    }

    /// Receives a datagram into the spare capacity of `buf` if one is queued,
    /// advancing it; else `WouldBlock`.
    ///
    /// Nothing grows: a datagram longer than the spare capacity (`chunk_mut`)
    /// is cut, so reserve room first.
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
    /// use synack::net::UdpSocket;
    ///
    /// let a = UdpSocket::bind("127.0.0.1:0").await?;
    /// let b = UdpSocket::bind("127.0.0.1:0").await?;
    /// a.connect(b.local_addr()?).await?;
    /// b.connect(a.local_addr()?).await?;
    /// b.send(b"hello").await?;
    /// a.readable().await?;
    /// let mut buf = Vec::with_capacity(1500);
    /// assert_eq!(a.try_recv_buf(&mut buf)?, 5);
    /// assert_eq!(buf, b"hello");
    /// # Ok(())
    /// # }
    /// ```
    pub fn try_recv_buf<B: bytes::BufMut>(&self, buf: &mut B) -> io::Result<usize> {
        self.try_recv_buf_from(buf).map(|(n, _)| n)
    }

    /// Waits for a datagram and receives it into the spare capacity of `buf`,
    /// as [`try_recv_buf`](UdpSocket::try_recv_buf).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a datagram is taken only in the poll that completes.
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
    /// use synack::net::UdpSocket;
    ///
    /// let a = UdpSocket::bind("127.0.0.1:0").await?;
    /// let b = UdpSocket::bind("127.0.0.1:0").await?;
    /// a.connect(b.local_addr()?).await?;
    /// b.connect(a.local_addr()?).await?;
    /// b.send(b"hello").await?;
    /// let mut buf = Vec::with_capacity(1500);
    /// assert_eq!(a.recv_buf(&mut buf).await?, 5);
    /// assert_eq!(buf, b"hello");
    /// # Ok(())
    /// # }
    /// ```
    pub async fn recv_buf<B: bytes::BufMut>(&self, buf: &mut B) -> io::Result<usize> {
        self.recv_buf_from(buf).await.map(|(n, _)| n)
    }

    /// [`try_recv_buf`](Self::try_recv_buf), with the sender.
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
    /// use synack::net::UdpSocket;
    ///
    /// let a = UdpSocket::bind("127.0.0.1:0").await?;
    /// let b = UdpSocket::bind("127.0.0.1:0").await?;
    /// b.send_to(b"hi", a.local_addr()?).await?;
    /// a.readable().await?;
    /// let mut buf = Vec::with_capacity(64);
    /// let (n, from) = a.try_recv_buf_from(&mut buf)?;
    /// assert_eq!((n, from), (2, b.local_addr()?));
    /// # Ok(())
    /// # }
    /// ```
    pub fn try_recv_buf_from<B: bytes::BufMut>(
        &self,
        buf: &mut B,
    ) -> io::Result<(usize, SocketAddr)> {
        // As tokio: into the spare capacity `chunk_mut` offers, not more.
        let room = buf.chunk_mut().len();
        let (n, from) = self.try_now(|e, _, h| {
            let (len, _) = e.udp_peek_len(h)?;
            let mut tmp = vec![0u8; len.min(room)];
            let (n, from) = e.udp_recv(h, &mut tmp, false)?;
            buf.put_slice(&tmp[..n]);
            Ok((n, from))
        })?;
        Ok((n, SocketAddr::V4(from)))
    }

    /// Waits for a datagram and receives it into the spare capacity of
    /// `buf`, with the sender.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a datagram is taken only in the poll that completes.
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
    /// use synack::net::UdpSocket;
    ///
    /// let a = UdpSocket::bind("127.0.0.1:0").await?;
    /// let b = UdpSocket::bind("127.0.0.1:0").await?;
    /// b.send_to(b"hi", a.local_addr()?).await?;
    /// let mut buf = Vec::with_capacity(64);
    /// let (n, from) = a.recv_buf_from(&mut buf).await?;
    /// assert_eq!((&buf[..n], from), (&b"hi"[..], b.local_addr()?));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn recv_buf_from<B: bytes::BufMut>(
        &self,
        buf: &mut B,
    ) -> io::Result<(usize, SocketAddr)> {
        loop {
            self.readable().await?;
            match self.try_recv_buf_from(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                r => return r,
            }
        }
    }

    /// Receives a datagram and its sender. A datagram longer than `buf` is cut
    /// and the rest discarded.
    ///
    /// # Errors
    ///
    /// A pending ICMP error about what a connected socket sent, once.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: no datagram is taken unless the call completes.
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
    /// use synack::net::UdpSocket;
    ///
    /// let a = UdpSocket::bind("127.0.0.1:0").await?;
    /// let b = UdpSocket::bind("127.0.0.1:0").await?;
    /// b.send_to(b"ping", a.local_addr()?).await?;
    /// let mut buf = [0u8; 16];
    /// let (n, from) = a.recv_from(&mut buf).await?;
    /// assert_eq!((&buf[..n], from), (&b"ping"[..], b.local_addr()?));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        poll_fn(|cx| self.poll_recv_from_slice(cx, buf, false)).await
    }

    /// Polls to receive a datagram into `buf`; returns its sender.
    /// `Poll::Pending` (the task registered) when none is queued.
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
    /// use synack::net::UdpSocket;
    ///
    /// let a = UdpSocket::bind("127.0.0.1:0").await?;
    /// let b = UdpSocket::bind("127.0.0.1:0").await?;
    /// b.send_to(b"hi", a.local_addr()?).await?;
    /// let mut storage = [0u8; 8];
    /// let mut buf = ReadBuf::new(&mut storage);
    /// let from = poll_fn(|cx| a.poll_recv_from(cx, &mut buf)).await?;
    /// assert_eq!((buf.filled(), from), (&b"hi"[..], b.local_addr()?));
    /// # Ok(())
    /// # }
    /// ```
    pub fn poll_recv_from(
        &self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<SocketAddr>> {
        self.poll_recv_read_buf(cx, buf, false)
    }

    /// Receives a datagram and its sender if one is queued.
    ///
    /// # Errors
    ///
    /// `WouldBlock` when none is queued; a pending ICMP error, once.
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
    /// use synack::net::UdpSocket;
    ///
    /// let a = UdpSocket::bind("127.0.0.1:0").await?;
    /// let b = UdpSocket::bind("127.0.0.1:0").await?;
    /// b.try_send_to(b"hi", a.local_addr()?)?;
    /// a.readable().await?;
    /// let mut buf = [0u8; 8];
    /// assert_eq!(a.try_recv_from(&mut buf)?, (2, b.local_addr()?));
    /// # Ok(())
    /// # }
    /// ```
    pub fn try_recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.try_now(|e, _, h| e.udp_recv(h, buf, false))
            .map(|(n, from)| (n, SocketAddr::V4(from)))
    }

    /// Copies the next datagram and its sender without taking it: the next
    /// receive returns it again. A datagram longer than `buf` is cut in the
    /// copy only.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: no datagram is taken.
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
    /// use synack::net::UdpSocket;
    ///
    /// let a = UdpSocket::bind("127.0.0.1:0").await?;
    /// let b = UdpSocket::bind("127.0.0.1:0").await?;
    /// b.send_to(b"hello", a.local_addr()?).await?;
    /// let mut buf = [0u8; 2];
    /// let (n, from) = a.peek_from(&mut buf).await?;
    /// assert_eq!((&buf[..n], from), (&b"he"[..], b.local_addr()?));
    /// let mut whole = [0u8; 16];
    /// assert_eq!(a.recv(&mut whole).await?, 5); // still all there
    /// # Ok(())
    /// # }
    /// ```
    pub async fn peek_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        poll_fn(|cx| self.poll_recv_from_slice(cx, buf, true)).await
    }

    /// Polls to copy the next datagram without taking it; returns its sender.
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
    /// use synack::net::UdpSocket;
    ///
    /// let a = UdpSocket::bind("127.0.0.1:0").await?;
    /// let b = UdpSocket::bind("127.0.0.1:0").await?;
    /// b.send_to(b"hi", a.local_addr()?).await?;
    /// let mut storage = [0u8; 8];
    /// let mut buf = ReadBuf::new(&mut storage);
    /// let from = poll_fn(|cx| a.poll_peek_from(cx, &mut buf)).await?;
    /// assert_eq!(from, b.local_addr()?);
    /// assert_eq!(a.try_recv(&mut [0u8; 8])?, 2); // not taken
    /// # Ok(())
    /// # }
    /// ```
    pub fn poll_peek_from(
        &self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<SocketAddr>> {
        self.poll_recv_read_buf(cx, buf, true)
    }

    /// Copies the next datagram and its sender without taking it, if one is
    /// queued.
    ///
    /// # Errors
    ///
    /// `WouldBlock` when none is queued; a pending ICMP error, once.
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
    /// use synack::net::UdpSocket;
    ///
    /// let a = UdpSocket::bind("127.0.0.1:0").await?;
    /// let b = UdpSocket::bind("127.0.0.1:0").await?;
    /// b.send_to(b"hi", a.local_addr()?).await?;
    /// a.readable().await?;
    /// let mut buf = [0u8; 8];
    /// assert_eq!(a.try_peek_from(&mut buf)?, (2, b.local_addr()?));
    /// assert_eq!(a.try_peek_from(&mut buf)?, (2, b.local_addr()?)); // again
    /// # Ok(())
    /// # }
    /// ```
    pub fn try_peek_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.try_now(|e, _, h| e.udp_recv(h, buf, true))
            .map(|(n, from)| (n, SocketAddr::V4(from)))
    }

    /// Waits for a datagram and returns its sender, without taking it.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: no datagram is taken.
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
    /// use synack::net::UdpSocket;
    ///
    /// let a = UdpSocket::bind("127.0.0.1:0").await?;
    /// let b = UdpSocket::bind("127.0.0.1:0").await?;
    /// b.send_to(b"hi", a.local_addr()?).await?;
    /// assert_eq!(a.peek_sender().await?, b.local_addr()?);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn peek_sender(&self) -> io::Result<SocketAddr> {
        poll_fn(|cx| self.poll_peek_sender(cx)).await
    }

    /// Polls for the sender of the next datagram, without taking it.
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
    /// use synack::net::UdpSocket;
    ///
    /// let a = UdpSocket::bind("127.0.0.1:0").await?;
    /// let b = UdpSocket::bind("127.0.0.1:0").await?;
    /// b.send_to(b"hi", a.local_addr()?).await?;
    /// let from = poll_fn(|cx| a.poll_peek_sender(cx)).await?;
    /// assert_eq!(from, b.local_addr()?);
    /// # Ok(())
    /// # }
    /// ```
    pub fn poll_peek_sender(&self, cx: &mut Context<'_>) -> Poll<io::Result<SocketAddr>> {
        self.io(Some(cx), Dir::Read, |e, _, h| {
            e.udp_peek_len(h).map(|(_, from)| SocketAddr::V4(from))
        })
    }

    /// The sender of the next datagram if one is queued, without taking it.
    ///
    /// # Errors
    ///
    /// `WouldBlock` when none is queued; a pending ICMP error, once.
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
    /// use synack::net::UdpSocket;
    ///
    /// let a = UdpSocket::bind("127.0.0.1:0").await?;
    /// let b = UdpSocket::bind("127.0.0.1:0").await?;
    /// assert_eq!(a.try_peek_sender().unwrap_err().kind(), ErrorKind::WouldBlock);
    /// b.send_to(b"hi", a.local_addr()?).await?;
    /// a.readable().await?;
    /// assert_eq!(a.try_peek_sender()?, b.local_addr()?);
    /// # Ok(())
    /// # }
    /// ```
    pub fn try_peek_sender(&self) -> io::Result<SocketAddr> {
        self.try_now(|e, _, h| e.udp_peek_len(h).map(|(_, from)| SocketAddr::V4(from)))
    }

    /// Runs `f` if the socket is ready for `interest`, else returns
    /// `WouldBlock` without calling it, like tokio's `try_io`.
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
    /// use synack::net::UdpSocket;
    ///
    /// let a = UdpSocket::bind("127.0.0.1:0").await?;
    /// let b = UdpSocket::bind("127.0.0.1:0").await?;
    /// let mut buf = [0u8; 8];
    /// let r = a.try_io(Interest::READABLE, || a.try_recv_from(&mut buf));
    /// assert_eq!(r.unwrap_err().kind(), ErrorKind::WouldBlock);
    /// b.send_to(b"hi", a.local_addr()?).await?;
    /// a.readable().await?;
    /// let (n, _) = a.try_io(Interest::READABLE, || a.try_recv_from(&mut buf))?;
    /// assert_eq!(n, 2);
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

    /// Waits for `interest` and runs `f`, again after each readiness change
    /// while it returns `WouldBlock`, like tokio's `async_io`.
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
    /// use synack::net::UdpSocket;
    ///
    /// let a = UdpSocket::bind("127.0.0.1:0").await?;
    /// let b = UdpSocket::bind("127.0.0.1:0").await?;
    /// b.send_to(b"hi", a.local_addr()?).await?;
    /// let mut buf = [0u8; 8];
    /// let (n, from) = a
    ///     .async_io(Interest::READABLE, || a.try_recv_from(&mut buf))
    ///     .await?;
    /// assert_eq!((n, from), (2, b.local_addr()?));
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
                    // Ready, yet `f` could not proceed: wait for the next
                    // event on the socket rather than spinning.
                    next_event(&self.handle, self.socket, interest).await;
                }
                r => return r,
            }
        }
    }

    /// `SO_BROADCAST`: whether the socket may send to a broadcast address; off
    /// on a new socket.
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
    /// use synack::net::UdpSocket;
    /// let socket = UdpSocket::bind("0.0.0.0:0").await?;
    /// assert!(!socket.broadcast()?);
    /// # Ok(())
    /// # }
    /// ```
    pub fn broadcast(&self) -> io::Result<bool> {
        let st = self.handle.shared.lock();
        st.engine.broadcast(self.socket).map_err(to_io)
    }

    /// Sets `SO_BROADCAST`: without it, sending to a broadcast address (the
    /// limited broadcast or a subnet's) fails with `PermissionDenied`.
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
    /// use synack::net::UdpSocket;
    /// let socket = UdpSocket::bind("0.0.0.0:0").await?;
    /// let err = socket.send_to(b"hello?", "192.0.2.255:9").await.unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::PermissionDenied);
    /// socket.set_broadcast(true)?;
    /// socket.send_to(b"hello?", "192.0.2.255:9").await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn set_broadcast(&self, on: bool) -> io::Result<()> {
        let mut st = self.handle.shared.lock();
        st.engine.set_broadcast(self.socket, on).map_err(to_io)
    }

    /// The IP time-to-live of the socket's datagrams (`IP_TTL`): the stack's
    /// default (64) until [`set_ttl`](UdpSocket::set_ttl).
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
    /// use synack::net::UdpSocket;
    /// let socket = UdpSocket::bind("127.0.0.1:0").await?;
    /// assert_eq!(socket.ttl()?, 64);
    /// # Ok(())
    /// # }
    /// ```
    pub fn ttl(&self) -> io::Result<u32> {
        let st = self.handle.shared.lock();
        st.engine.ttl(self.socket).map(u32::from).map_err(to_io)
    }

    /// Sets the IP time-to-live of the socket's datagrams.
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
    /// use synack::net::UdpSocket;
    /// let socket = UdpSocket::bind("127.0.0.1:0").await?;
    /// socket.set_ttl(8)?;
    /// assert_eq!(socket.ttl()?, 8);
    /// assert_eq!(socket.set_ttl(0).unwrap_err().kind(), ErrorKind::InvalidInput);
    /// # Ok(())
    /// # }
    /// ```
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        let ttl = u8::try_from(ttl).map_err(|_| to_io(Error::InvalidInput))?;
        let mut st = self.handle.shared.lock();
        st.engine.set_ttl(self.socket, ttl).map_err(to_io)
    }

    /// `SO_ERROR`: takes a pending error (an ICMP error about what a connected
    /// socket sent), so it is reported once; `Ok(None)` if there is none.
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
    /// use synack::net::UdpSocket;
    /// let socket = UdpSocket::bind("127.0.0.1:0").await?;
    /// socket.connect("127.0.0.1:9").await?; // nothing listens there
    /// socket.send(b"anyone?").await?;
    /// socket.readable().await?; // the ICMP port unreachable arrived
    /// let err = socket.take_error()?.expect("port unreachable");
    /// assert_eq!(err.kind(), ErrorKind::ConnectionRefused);
    /// assert!(socket.take_error()?.is_none());
    /// # Ok(())
    /// # }
    /// ```
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        let mut st = self.handle.shared.lock();
        let e = st.engine.take_error(self.socket).map_err(to_io)?;
        Ok(e.map(to_io))
    }
}

impl Drop for UdpSocket {
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

impl std::fmt::Debug for UdpSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UdpSocket")
            .field("local", &self.local_addr().ok())
            .field("peer", &self.peer_addr().ok())
            .finish()
    }
}
