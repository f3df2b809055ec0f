//! `TcpSocket`: a socket configured before it connects or listens, like tokio's.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Mutex;

use std::time::Duration;

use synack_engine::{Keepalive, Reuse, SocketOptions};

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
    /// `NotFound` without one.
    pub fn new_v4() -> io::Result<TcpSocket> {
        Ok(TcpSocket::new_v4_on(&Stack::current()?))
    }

    /// A new IPv4 socket on a given stack.
    pub fn new_v4_on(stack: &Stack) -> TcpSocket {
        TcpSocket {
            stack: stack.clone(),
            state: Mutex::new(SocketState::default()),
        }
    }

    /// An IPv6 socket: always fails with `EAFNOSUPPORT`, what a kernel
    /// without IPv6 gives, since synack speaks IPv4 only so far.
    pub fn new_v6() -> io::Result<TcpSocket> {
        Err(ipv6_unsupported())
    }

    fn state(&self) -> std::sync::MutexGuard<'_, SocketState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `SO_REUSEADDR`: lets `bind` and `listen` take a port that connections
    /// (for instance in TIME-WAIT) still use. Only another listener conflicts.
    pub fn set_reuseaddr(&self, reuseaddr: bool) -> io::Result<()> {
        self.state().opts.reuseaddr = reuseaddr;
        Ok(())
    }

    /// Whether `SO_REUSEADDR` is set.
    pub fn reuseaddr(&self) -> io::Result<bool> {
        Ok(self.state().opts.reuseaddr)
    }

    /// `SO_REUSEPORT`: listeners that all set it may share a port; the
    /// port's new connections are spread over them by a hash of the peer's
    /// address, as Linux does.
    pub fn set_reuseport(&self, reuseport: bool) -> io::Result<()> {
        self.state().opts.reuseport = reuseport;
        Ok(())
    }

    /// Whether `SO_REUSEPORT` is set.
    pub fn reuseport(&self) -> io::Result<bool> {
        Ok(self.state().opts.reuseport)
    }

    /// `SO_SNDBUF`: the send buffer of the connection this socket becomes
    /// (or of every connection the listener accepts), in bytes. A size set
    /// here holds from the start with no growth (as Linux locks it); unset,
    /// the buffer starts small and grows with the congestion window up to
    /// [`Config::send_buffer`](crate::Config::send_buffer). Either way memory
    /// is taken only as data is written.
    pub fn set_send_buffer_size(&self, size: u32) -> io::Result<()> {
        self.state().opts.send_buffer = Some(size.max(1) as usize);
        Ok(())
    }

    /// The send buffer size: as set, or the stack's maximum.
    pub fn send_buffer_size(&self) -> io::Result<u32> {
        let set = self.state().opts.send_buffer;
        let n = set.unwrap_or_else(|| self.stack.config().send_buffer);
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }

    /// `SO_RCVBUF`: the receive buffer (and so the largest window offered).
    /// A size set here holds from the start with no autotuning (as Linux locks
    /// it); unset, the window starts at
    /// [`Config::recv_buffer_initial`](crate::Config::recv_buffer_initial) and
    /// grows with what the application reads, up to
    /// [`Config::recv_buffer`](crate::Config::recv_buffer). Either way memory
    /// is taken only as data arrives.
    pub fn set_recv_buffer_size(&self, size: u32) -> io::Result<()> {
        self.state().opts.recv_buffer = Some(size.max(1) as usize);
        Ok(())
    }

    /// The receive buffer size: as set, or the stack's maximum.
    pub fn recv_buffer_size(&self) -> io::Result<u32> {
        let set = self.state().opts.recv_buffer;
        let n = set.unwrap_or_else(|| self.stack.config().recv_buffer);
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }

    /// `TCP_NODELAY` for the connection this socket becomes (or every
    /// connection the listener accepts).
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.state().opts.nodelay = nodelay;
        Ok(())
    }

    /// Whether `TCP_NODELAY` is set.
    pub fn nodelay(&self) -> io::Result<bool> {
        Ok(self.state().opts.nodelay)
    }

    /// `SO_KEEPALIVE` for the connection this socket becomes (or every
    /// connection the listener accepts), with Linux's default idle time,
    /// interval and count ([`Keepalive::default`]).
    pub fn set_keepalive(&self, keepalive: bool) -> io::Result<()> {
        self.state().opts.keepalive = keepalive.then(Keepalive::default);
        Ok(())
    }

    /// Whether `SO_KEEPALIVE` is set.
    pub fn keepalive(&self) -> io::Result<bool> {
        Ok(self.state().opts.keepalive.is_some())
    }

    /// Sets `SO_LINGER` (see [`TcpStream::set_linger`]).
    pub fn set_linger(&self, dur: Option<Duration>) -> io::Result<()> {
        self.state().opts.linger = dur;
        Ok(())
    }

    /// `SO_LINGER` of zero: closing the stream this socket becomes resets it.
    pub fn set_zero_linger(&self) -> io::Result<()> {
        self.set_linger(Some(Duration::ZERO))
    }

    /// The `SO_LINGER` setting.
    pub fn linger(&self) -> io::Result<Option<Duration>> {
        Ok(self.state().opts.linger)
    }

    /// The address bound, or `0.0.0.0:0` before [`bind`](TcpSocket::bind), as
    /// the kernel reports it.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        let bound = self.state().bound.map(|(a, _)| a);
        Ok(SocketAddr::V4(
            bound.unwrap_or(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0)),
        ))
    }

    /// `SO_ERROR`: a socket not yet connected has none.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        Ok(None)
    }

    /// Binds to `addr`: the stack's address or `0.0.0.0`, port 0 for an
    /// ephemeral port (chosen now, so `local_addr` shows it). The port stays
    /// reserved until the socket connects, listens or is dropped.
    ///
    /// Errors: `AddrInUse` (see [`set_reuseaddr`](TcpSocket::set_reuseaddr)),
    /// `AddrNotAvailable` for another address, `InvalidInput` if already
    /// bound, `EAFNOSUPPORT` for IPv6.
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

    /// Connects to `addr` from the bound address (or an ephemeral port),
    /// with the options set.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future aborts the connection attempt.
    pub async fn connect(self, addr: SocketAddr) -> io::Result<TcpStream> {
        let (local, opts) = self.release();
        TcpStream::connect_from(&self.stack, local, addr, opts).await
    }

    /// Listens on the bound address (or an ephemeral port) with room for
    /// `backlog` connections in each of the SYN and accept queues.
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
