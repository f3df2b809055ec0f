//! `TcpSocket`: a socket configured before it connects or listens, like tokio's.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Mutex;

use std::time::Duration;

use synack_engine::{Reuse, SocketOptions};

use crate::error::{ipv6_unsupported, to_io};
use crate::net::{TcpListener, TcpStream};
use crate::stack::Stack;

/// A TCP socket that has not yet been turned into a stream or a listener,
/// like `tokio::net::TcpSocket`: set options, optionally [`bind`](TcpSocket::bind),
/// then [`connect`](TcpSocket::connect) or [`listen`](TcpSocket::listen).
///
/// As on the kernel, `SO_REUSEADDR` is off until set: without it `bind` fails
/// with `AddrInUse` while any connection (TIME-WAIT included) still uses the
/// port, and two sockets may bind one port only if both set it. `bind`
/// reserves the port until the socket connects, listens or is dropped.
///
/// Buffer sizes read back as they were set (Linux reports twice the value).
/// With `SO_REUSEPORT` on all of them, several listeners share one port, and
/// its new connections are spread over them by a hash of the peer's address.
///
/// ```
/// use std::net::Ipv4Addr;
/// use synack::{Stack, net::TcpSocket};
/// use synack::device::{MemoryLink, MemoryLinkConfig};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// let (a, _b) = MemoryLink::pair(MemoryLinkConfig::default());
/// let stack = Stack::new(a, Ipv4Addr::new(192, 0, 2, 1), 24);
/// let _g = stack.enter();
/// let socket = TcpSocket::new_v4()?;
/// socket.set_reuseaddr(true)?;
/// socket.set_recv_buffer_size(64 * 1024)?;
/// socket.bind("192.0.2.1:8080".parse().unwrap())?;
/// let listener = socket.listen(128)?;
/// assert_eq!(listener.local_addr()?.port(), 8080);
/// # Ok(())
/// # }
/// ```
pub struct TcpSocket {
    stack: Stack,
    state: Mutex<SocketState>,
}

#[derive(Debug, Clone, Copy, Default)]
struct SocketState {
    opts: SocketOptions,
    /// The address `bind` reserved, and the sharing it reserved it with.
    bound: Option<(SocketAddrV4, Reuse)>,
}

impl TcpSocket {
    /// A new IPv4 socket on the current stack (see [`Stack::enter`]).
    ///
    /// # Errors
    ///
    /// `NotFound` without a current stack (and no default one).
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
    /// use synack::net::TcpSocket;
    ///
    /// let socket = TcpSocket::new_v4()?;
    /// assert_eq!(socket.local_addr()?, "0.0.0.0:0".parse().unwrap());
    /// # Ok(())
    /// # }
    /// ```
    pub fn new_v4() -> io::Result<TcpSocket> {
        Ok(TcpSocket::new_v4_on(&Stack::current()?))
    }

    /// A new IPv4 socket on a given stack; never fails.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::net::Ipv4Addr;
    /// use synack::{Stack, net::TcpSocket};
    /// use synack::device::{MemoryLink, MemoryLinkConfig};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let (a, _b) = MemoryLink::pair(MemoryLinkConfig::default());
    /// let stack = Stack::new(a, Ipv4Addr::new(192, 0, 2, 1), 24);
    /// let socket = TcpSocket::new_v4_on(&stack);
    /// socket.bind("192.0.2.1:0".parse().unwrap())?;
    /// assert_eq!(socket.local_addr()?.ip(), Ipv4Addr::new(192, 0, 2, 1));
    /// # Ok(())
    /// # }
    /// ```
    pub fn new_v4_on(stack: &Stack) -> TcpSocket {
        TcpSocket {
            stack: stack.clone(),
            state: Mutex::new(SocketState::default()),
        }
    }

    /// An IPv6 socket: always fails, since synack speaks IPv4 only so far.
    ///
    /// # Errors
    ///
    /// Always `EAFNOSUPPORT`, the error a kernel without IPv6 gives (on Unix the
    /// raw OS error, of kind `Uncategorized`; elsewhere `Unsupported`).
    ///
    /// # Examples
    ///
    /// ```
    /// use synack::net::TcpSocket;
    ///
    /// assert!(TcpSocket::new_v6().is_err());
    /// ```
    pub fn new_v6() -> io::Result<TcpSocket> {
        Err(ipv6_unsupported())
    }

    fn state(&self) -> std::sync::MutexGuard<'_, SocketState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sets `SO_REUSEADDR`: lets [`bind`](TcpSocket::bind) and
    /// [`listen`](TcpSocket::listen) take a port that connections (for instance in
    /// TIME-WAIT) or other bound sockets still use, as long as they set it too.
    ///
    /// Only a listener on the port still conflicts (that takes
    /// [`set_reuseport`](TcpSocket::set_reuseport)). Never fails.
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
    /// use synack::net::TcpSocket;
    ///
    /// let a = TcpSocket::new_v4()?;
    /// a.set_reuseaddr(true)?;
    /// a.bind("127.0.0.1:0".parse().unwrap())?;
    ///
    /// // Both set SO_REUSEADDR: the second may bind the same port.
    /// let b = TcpSocket::new_v4()?;
    /// b.set_reuseaddr(true)?;
    /// b.bind(a.local_addr()?)?;
    ///
    /// // Without it, the port is taken.
    /// let c = TcpSocket::new_v4()?;
    /// assert_eq!(c.bind(a.local_addr()?).unwrap_err().kind(), ErrorKind::AddrInUse);
    /// # Ok(())
    /// # }
    /// ```
    pub fn set_reuseaddr(&self, reuseaddr: bool) -> io::Result<()> {
        self.state().opts.reuseaddr = reuseaddr;
        Ok(())
    }

    /// Whether `SO_REUSEADDR` is set; off on a new socket, as on the kernel.
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
    /// use synack::net::TcpSocket;
    ///
    /// let socket = TcpSocket::new_v4()?;
    /// assert!(!socket.reuseaddr()?);
    /// socket.set_reuseaddr(true)?;
    /// assert!(socket.reuseaddr()?);
    /// # Ok(())
    /// # }
    /// ```
    pub fn reuseaddr(&self) -> io::Result<bool> {
        Ok(self.state().opts.reuseaddr)
    }

    /// Sets `SO_REUSEPORT`: listeners that all set it may share a port.
    ///
    /// The port's new connections are spread over them by a hash of the peer's
    /// address, as Linux does. Never fails.
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
    /// use synack::net::TcpSocket;
    ///
    /// let first = TcpSocket::new_v4()?;
    /// first.set_reuseport(true)?;
    /// let first = first.listen(128)?;
    /// let addr = first.local_addr()?;
    ///
    /// let second = TcpSocket::new_v4()?;
    /// second.set_reuseport(true)?;
    /// second.bind(addr)?;
    /// let second = second.listen(128)?;
    /// assert_eq!(second.local_addr()?, addr);
    /// # Ok(())
    /// # }
    /// ```
    pub fn set_reuseport(&self, reuseport: bool) -> io::Result<()> {
        self.state().opts.reuseport = reuseport;
        Ok(())
    }

    /// Whether `SO_REUSEPORT` is set; off on a new socket.
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
    /// use synack::net::TcpSocket;
    ///
    /// let socket = TcpSocket::new_v4()?;
    /// assert!(!socket.reuseport()?);
    /// socket.set_reuseport(true)?;
    /// assert!(socket.reuseport()?);
    /// # Ok(())
    /// # }
    /// ```
    pub fn reuseport(&self) -> io::Result<bool> {
        Ok(self.state().opts.reuseport)
    }

    /// Sets `SO_SNDBUF`: the send buffer, in bytes, of the connection this socket
    /// becomes (or of every connection the listener accepts).
    ///
    /// A size set here holds from the start with no growth (as Linux locks it);
    /// unset, the buffer starts small and grows with the congestion window up to
    /// [`Config::send_buffer`](crate::Config::send_buffer). Either way memory
    /// is taken only as data is written. 0 counts as 1; never fails.
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
    /// use synack::net::{TcpListener, TcpSocket};
    /// use tokio::io::AsyncWriteExt;
    ///
    /// let listener = TcpListener::bind("127.0.0.1:0").await?;
    /// let socket = TcpSocket::new_v4()?;
    /// socket.set_send_buffer_size(4096)?;
    /// let mut stream = socket.connect(listener.local_addr()?).await?;
    /// let (mut peer, _) = listener.accept().await?;
    /// let reader = tokio::spawn(async move {
    ///     let mut sink = Vec::new();
    ///     tokio::io::AsyncReadExt::read_to_end(&mut peer, &mut sink).await.map(|_| sink.len())
    /// });
    /// // More than the buffer holds is taken as the peer acknowledges it.
    /// stream.write_all(&[7u8; 10_000]).await?;
    /// stream.shutdown().await?;
    /// assert_eq!(reader.await.unwrap()?, 10_000);
    /// # Ok(())
    /// # }
    /// ```
    pub fn set_send_buffer_size(&self, size: u32) -> io::Result<()> {
        self.state().opts.send_buffer = Some(size.max(1) as usize);
        Ok(())
    }

    /// The send buffer size: as set with
    /// [`set_send_buffer_size`](TcpSocket::set_send_buffer_size), or else the
    /// stack's maximum ([`Config::send_buffer`](crate::Config::send_buffer)).
    /// Unlike Linux, it is not reported doubled.
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
    /// use synack::net::TcpSocket;
    ///
    /// let socket = TcpSocket::new_v4()?;
    /// assert_eq!(socket.send_buffer_size()?, 256 * 1024); // the default Config
    /// socket.set_send_buffer_size(32 * 1024)?;
    /// assert_eq!(socket.send_buffer_size()?, 32 * 1024);
    /// # Ok(())
    /// # }
    /// ```
    pub fn send_buffer_size(&self) -> io::Result<u32> {
        let set = self.state().opts.send_buffer;
        let n = set.unwrap_or_else(|| self.stack.config().send_buffer);
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }

    /// Sets `SO_RCVBUF`: the receive buffer, in bytes (and so the largest window
    /// offered), of the connection this socket becomes or the listener accepts.
    ///
    /// A size set here holds from the start with no autotuning (as Linux locks
    /// it); unset, the window starts at
    /// [`Config::recv_buffer_initial`](crate::Config::recv_buffer_initial) and
    /// grows with what the application reads, up to
    /// [`Config::recv_buffer`](crate::Config::recv_buffer). Either way memory
    /// is taken only as data arrives. 0 counts as 1; never fails.
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
    /// use synack::net::TcpSocket;
    ///
    /// let socket = TcpSocket::new_v4()?;
    /// socket.set_recv_buffer_size(16 * 1024)?;
    /// let listener = socket.listen(128)?;
    /// # drop(listener);
    /// # Ok(())
    /// # }
    /// ```
    pub fn set_recv_buffer_size(&self, size: u32) -> io::Result<()> {
        self.state().opts.recv_buffer = Some(size.max(1) as usize);
        Ok(())
    }

    /// The receive buffer size: as set with
    /// [`set_recv_buffer_size`](TcpSocket::set_recv_buffer_size), or else the
    /// stack's maximum ([`Config::recv_buffer`](crate::Config::recv_buffer)).
    /// Unlike Linux, it is not reported doubled.
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
    /// use synack::net::TcpSocket;
    ///
    /// let socket = TcpSocket::new_v4()?;
    /// assert_eq!(socket.recv_buffer_size()?, 256 * 1024); // the default Config
    /// socket.set_recv_buffer_size(64 * 1024)?;
    /// assert_eq!(socket.recv_buffer_size()?, 64 * 1024);
    /// # Ok(())
    /// # }
    /// ```
    pub fn recv_buffer_size(&self) -> io::Result<u32> {
        let set = self.state().opts.recv_buffer;
        let n = set.unwrap_or_else(|| self.stack.config().recv_buffer);
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }

    /// Sets `TCP_NODELAY` (Nagle's algorithm off) for the connection this socket
    /// becomes, or every connection the listener accepts. Never fails.
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
    /// use synack::net::{TcpListener, TcpSocket};
    ///
    /// let listener = TcpListener::bind("127.0.0.1:0").await?;
    /// let socket = TcpSocket::new_v4()?;
    /// socket.set_nodelay(true)?;
    /// let stream = socket.connect(listener.local_addr()?).await?;
    /// assert!(stream.nodelay()?);
    /// # Ok(())
    /// # }
    /// ```
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.state().opts.nodelay = nodelay;
        Ok(())
    }

    /// Whether `TCP_NODELAY` is set; off on a new socket.
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
    /// use synack::net::TcpSocket;
    ///
    /// let socket = TcpSocket::new_v4()?;
    /// assert!(!socket.nodelay()?);
    /// # Ok(())
    /// # }
    /// ```
    pub fn nodelay(&self) -> io::Result<bool> {
        Ok(self.state().opts.nodelay)
    }

    /// Sets `SO_KEEPALIVE` for the connection this socket becomes (or every
    /// connection the listener accepts), with the stack's idle time,
    /// interval and count ([`Config::keepalive`](crate::Config::keepalive),
    /// by default Linux's: [`Keepalive::default`](crate::Keepalive::default)). Never fails; other settings
    /// go through [`TcpStream::set_keepalive`] once connected.
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
    /// use synack::Keepalive;
    /// use synack::net::{TcpListener, TcpSocket};
    ///
    /// let listener = TcpListener::bind("127.0.0.1:0").await?;
    /// let socket = TcpSocket::new_v4()?;
    /// socket.set_keepalive(true)?;
    /// let stream = socket.connect(listener.local_addr()?).await?;
    /// assert_eq!(stream.keepalive()?, Some(Keepalive::default()));
    /// # Ok(())
    /// # }
    /// ```
    pub fn set_keepalive(&self, keepalive: bool) -> io::Result<()> {
        let defaults = self.stack.config().keepalive;
        self.state().opts.keepalive = keepalive.then_some(defaults);
        Ok(())
    }

    /// Whether `SO_KEEPALIVE` is set; off on a new socket.
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
    /// use synack::net::TcpSocket;
    ///
    /// let socket = TcpSocket::new_v4()?;
    /// socket.set_keepalive(true)?;
    /// assert!(socket.keepalive()?);
    /// # Ok(())
    /// # }
    /// ```
    pub fn keepalive(&self) -> io::Result<bool> {
        Ok(self.state().opts.keepalive.is_some())
    }

    /// Sets `SO_LINGER` for the stream this socket becomes (see
    /// [`TcpStream::set_linger`]): only `Some(Duration::ZERO)` changes what
    /// dropping the stream does. Never fails.
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
    /// use synack::net::TcpSocket;
    ///
    /// let socket = TcpSocket::new_v4()?;
    /// socket.set_linger(Some(Duration::from_secs(5)))?;
    /// assert_eq!(socket.linger()?, Some(Duration::from_secs(5)));
    /// # Ok(())
    /// # }
    /// ```
    pub fn set_linger(&self, dur: Option<Duration>) -> io::Result<()> {
        self.state().opts.linger = dur;
        Ok(())
    }

    /// Sets `SO_LINGER` to zero: dropping the stream this socket becomes resets
    /// the connection (RST) instead of closing it with a FIN.
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
    /// use synack::net::{TcpListener, TcpSocket};
    /// use tokio::io::AsyncReadExt;
    ///
    /// let listener = TcpListener::bind("127.0.0.1:0").await?;
    /// let socket = TcpSocket::new_v4()?;
    /// socket.set_zero_linger()?;
    /// let stream = socket.connect(listener.local_addr()?).await?;
    /// let (mut peer, _) = listener.accept().await?;
    /// drop(stream); // RST, not FIN
    /// let err = peer.read(&mut [0u8; 8]).await.unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::ConnectionReset);
    /// # Ok(())
    /// # }
    /// ```
    pub fn set_zero_linger(&self) -> io::Result<()> {
        self.set_linger(Some(Duration::ZERO))
    }

    /// The `SO_LINGER` setting; `None` on a new socket.
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
    /// use synack::net::TcpSocket;
    ///
    /// let socket = TcpSocket::new_v4()?;
    /// assert_eq!(socket.linger()?, None);
    /// socket.set_zero_linger()?;
    /// assert_eq!(socket.linger()?, Some(Duration::ZERO));
    /// # Ok(())
    /// # }
    /// ```
    pub fn linger(&self) -> io::Result<Option<Duration>> {
        Ok(self.state().opts.linger)
    }

    /// The address bound, with the port chosen for port 0, or `0.0.0.0:0`
    /// before [`bind`](TcpSocket::bind), as the kernel reports it.
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
    /// use synack::net::TcpSocket;
    ///
    /// let socket = TcpSocket::new_v4()?;
    /// assert_eq!(socket.local_addr()?, "0.0.0.0:0".parse().unwrap());
    /// socket.bind("127.0.0.1:0".parse().unwrap())?;
    /// let addr = socket.local_addr()?;
    /// assert_eq!(addr.ip().to_string(), "127.0.0.1");
    /// assert_ne!(addr.port(), 0);
    /// # Ok(())
    /// # }
    /// ```
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        let bound = self.state().bound.map(|(a, _)| a);
        Ok(SocketAddr::V4(
            bound.unwrap_or(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0)),
        ))
    }

    /// `SO_ERROR`: always `Ok(None)`, since a socket not yet connected has no
    /// error to report.
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
    /// use synack::net::TcpSocket;
    ///
    /// let socket = TcpSocket::new_v4()?;
    /// assert!(socket.take_error()?.is_none());
    /// # Ok(())
    /// # }
    /// ```
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        Ok(None)
    }

    /// Binds to `addr`: the stack's address, a loopback address or `0.0.0.0`;
    /// port 0 for an ephemeral port, chosen now so
    /// [`local_addr`](TcpSocket::local_addr) shows it.
    ///
    /// The port stays reserved until the socket connects, listens or is dropped.
    ///
    /// # Errors
    ///
    /// - `AddrInUse` if a listener, a bound socket or a connection (TIME-WAIT
    ///   included) holds the port (see [`set_reuseaddr`](TcpSocket::set_reuseaddr));
    /// - `AddrNotAvailable` for an address not the stack's;
    /// - `InvalidInput` if the socket is already bound;
    /// - `EAFNOSUPPORT` (kind `Uncategorized`) for an IPv6 address.
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
    /// use synack::net::TcpSocket;
    ///
    /// let socket = TcpSocket::new_v4()?;
    /// socket.bind("127.0.0.1:0".parse().unwrap())?;
    /// let again = socket.bind("127.0.0.1:0".parse().unwrap());
    /// assert_eq!(again.unwrap_err().kind(), ErrorKind::InvalidInput);
    ///
    /// let other = TcpSocket::new_v4()?;
    /// let err = other.bind("198.51.100.7:0".parse().unwrap()).unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::AddrNotAvailable);
    /// # Ok(())
    /// # }
    /// ```
    pub fn bind(&self, addr: SocketAddr) -> io::Result<()> {
        let SocketAddr::V4(addr) = addr else {
            return Err(ipv6_unsupported());
        };
        let mut state = self.state();
        if state.bound.is_some() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the socket is already bound",
            ));
        }
        let reuse = state.opts.reuse();
        let mut st = self.stack.shared().lock();
        let addr = st.engine.bind(addr, reuse).map_err(to_io)?;
        state.bound = Some((addr, reuse));
        Ok(())
    }

    /// Connects to `addr` from the bound address (or an ephemeral port), with
    /// the options set, and waits for the handshake.
    ///
    /// # Errors
    ///
    /// As [`TcpStream::connect`]: `ConnectionRefused` if the peer answers with a
    /// RST, `TimedOut` after the SYN retries, `InvalidInput` for port 0 or a
    /// broadcast, multicast or unspecified address, `NetworkUnreachable` with no
    /// route, `AddrInUse` if the bound address already has a connection to
    /// `addr`, `EAFNOSUPPORT` for IPv6.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: dropping the future aborts the connection attempt (and
    /// the socket, which `connect` consumed, is gone).
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
    /// use synack::net::{TcpListener, TcpSocket};
    ///
    /// let listener = TcpListener::bind("127.0.0.1:0").await?;
    /// let socket = TcpSocket::new_v4()?;
    /// socket.bind("127.0.0.1:0".parse().unwrap())?;
    /// let from = socket.local_addr()?;
    /// let stream = socket.connect(listener.local_addr()?).await?;
    /// assert_eq!(stream.local_addr()?, from);
    ///
    /// // No listener on the port: the peer answers with a RST.
    /// let port = listener.local_addr()?.port();
    /// drop(listener);
    /// let err = TcpSocket::new_v4()?
    ///     .connect(([127, 0, 0, 1], port).into())
    ///     .await
    ///     .unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::ConnectionRefused);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn connect(self, addr: SocketAddr) -> io::Result<TcpStream> {
        let (local, opts) = self.release();
        TcpStream::connect_from(&self.stack, local, addr, opts).await
    }

    /// Listens on the bound address (or an ephemeral port on `0.0.0.0` if
    /// unbound) with room for `backlog` connections in each of the SYN and
    /// accept queues; the connections accepted inherit the options set.
    ///
    /// # Errors
    ///
    /// `AddrInUse` if another listener holds the port (unless all set
    /// [`set_reuseport`](TcpSocket::set_reuseport)) or, without
    /// [`set_reuseaddr`](TcpSocket::set_reuseaddr), a connection still uses it.
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
    /// use synack::net::{TcpSocket, TcpStream};
    ///
    /// let socket = TcpSocket::new_v4()?;
    /// socket.set_nodelay(true)?;
    /// socket.bind("127.0.0.1:0".parse().unwrap())?;
    /// let listener = socket.listen(64)?;
    /// let _client = TcpStream::connect(listener.local_addr()?).await?;
    /// let (accepted, _) = listener.accept().await?;
    /// assert!(accepted.nodelay()?); // inherited from the listening socket
    /// # Ok(())
    /// # }
    /// ```
    pub fn listen(self, backlog: u32) -> io::Result<TcpListener> {
        let (local, opts) = self.release();
        TcpListener::listen(&self.stack, SocketAddr::V4(local), backlog as usize, opts)
    }

    /// Gives the port reservation back, for `connect` or `listen` to take the
    /// address (or because the socket goes): the local address and options.
    fn release(&self) -> (SocketAddrV4, SocketOptions) {
        let mut state = self.state();
        let local = match state.bound.take() {
            Some((addr, reuse)) => {
                let mut st = self.stack.shared().lock();
                st.engine.unbind(addr.port(), reuse);
                addr
            }
            None => SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0),
        };
        (local, state.opts)
    }
}

impl Drop for TcpSocket {
    fn drop(&mut self) {
        self.release();
    }
}

impl std::fmt::Debug for TcpSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpSocket")
            .field("state", &*self.state())
            .finish()
    }
}
