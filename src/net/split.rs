//! `TcpStream::split`: read and write halves borrowing a stream, like tokio's.

use std::io::{self, IoSlice, IoSliceMut};
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf, Ready};

use crate::net::TcpStream;

/// The read half of a [`TcpStream`] borrowed by [`TcpStream::split`]: it
/// reads, peeks and waits for readiness while the
/// [`WriteHalf`] writes. Dropping it does nothing to the stream.
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
/// peer.write_all(b"hello").await?;
/// let mut buf = [0u8; 5];
/// rd.read_exact(&mut buf).await?;
/// assert_eq!(&buf, b"hello");
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct ReadHalf<'a>(&'a TcpStream);

/// The write half of a [`TcpStream`] borrowed by [`TcpStream::split`].
/// Shutting it down closes the stream's sending direction; dropping it does
/// not.
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
/// wr.write_all(b"last words").await?;
/// wr.shutdown().await?; // FIN after the data
/// let mut got = Vec::new();
/// peer.read_to_end(&mut got).await?;
/// assert_eq!(got, b"last words");
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct WriteHalf<'a>(&'a TcpStream);

pub(crate) fn split(stream: &mut TcpStream) -> (ReadHalf<'_>, WriteHalf<'_>) {
    (ReadHalf(&*stream), WriteHalf(&*stream))
}

impl ReadHalf<'_> {
    /// Polls for received bytes without taking them; see [`TcpStream::poll_peek`].
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
    /// let mut stream = TcpStream::connect(listener.local_addr()?).await?;
    /// let (mut peer, _) = listener.accept().await?;
    /// let (mut rd, mut wr) = stream.split();
    /// peer.try_write(b"hi")?;
    /// let mut storage = [0u8; 8];
    /// let mut buf = ReadBuf::new(&mut storage);
    /// poll_fn(|cx| rd.poll_peek(cx, &mut buf)).await?;
    /// assert_eq!(buf.filled(), b"hi");
    /// # Ok(())
    /// # }
    /// ```
    pub fn poll_peek(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<usize>> {
        self.0.poll_peek(cx, buf)
    }

    /// Receives bytes without taking them: the next read returns them again;
    /// `Ok(0)` at end of stream. See [`TcpStream::peek`].
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
    /// use tokio::io::AsyncReadExt;
    /// use synack::net::{TcpListener, TcpStream};
    ///
    /// let listener = TcpListener::bind("127.0.0.1:0").await?;
    /// let mut stream = TcpStream::connect(listener.local_addr()?).await?;
    /// let (mut peer, _) = listener.accept().await?;
    /// let (mut rd, mut wr) = stream.split();
    /// peer.try_write(b"abc")?;
    /// let mut buf = [0u8; 8];
    /// let n = rd.peek(&mut buf).await?;
    /// assert_eq!(&buf[..n], b"abc");
    /// assert_eq!(rd.read(&mut buf).await?, n); // the same bytes again
    /// # Ok(())
    /// # }
    /// ```
    pub async fn peek(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.peek(buf).await
    }

    /// Waits for any of the readiness in `interest`; see [`TcpStream::ready`].
    /// The read half may wait for writability too: readiness is the stream's.
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
    /// use synack::net::{TcpListener, TcpStream};
    ///
    /// let listener = TcpListener::bind("127.0.0.1:0").await?;
    /// let mut stream = TcpStream::connect(listener.local_addr()?).await?;
    /// let (mut peer, _) = listener.accept().await?;
    /// let (mut rd, mut wr) = stream.split();
    /// peer.try_write(b"x")?;
    /// let ready = rd.ready(Interest::READABLE).await?;
    /// assert!(ready.is_readable());
    /// # Ok(())
    /// # }
    /// ```
    pub async fn ready(&self, interest: Interest) -> io::Result<Ready> {
        self.0.ready(interest).await
    }

    /// Waits until a read would not block (data, end of stream, or an error);
    /// see [`TcpStream::readable`].
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
    /// use synack::net::{TcpListener, TcpStream};
    ///
    /// let listener = TcpListener::bind("127.0.0.1:0").await?;
    /// let mut stream = TcpStream::connect(listener.local_addr()?).await?;
    /// let (mut peer, _) = listener.accept().await?;
    /// let (mut rd, mut wr) = stream.split();
    /// peer.try_write(b"hello")?;
    /// rd.readable().await?;
    /// let mut buf = [0u8; 8];
    /// assert_eq!(rd.try_read(&mut buf)?, 5);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn readable(&self) -> io::Result<()> {
        self.0.readable().await
    }

    /// Reads what is there without waiting: `Ok(0)` at end of stream,
    /// `WouldBlock` when nothing has arrived, the error that ended the
    /// connection once. See [`TcpStream::try_read`].
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
    /// let mut stream = TcpStream::connect(listener.local_addr()?).await?;
    /// let (mut peer, _) = listener.accept().await?;
    /// let (mut rd, mut wr) = stream.split();
    /// let mut buf = [0u8; 8];
    /// assert_eq!(rd.try_read(&mut buf).unwrap_err().kind(), ErrorKind::WouldBlock);
    /// drop(peer); // FIN
    /// rd.readable().await?;
    /// assert_eq!(rd.try_read(&mut buf)?, 0);
    /// # Ok(())
    /// # }
    /// ```
    pub fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.try_read(buf)
    }

    /// Reads into several buffers in turn without waiting; see
    /// [`TcpStream::try_read_vectored`].
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
    /// let mut stream = TcpStream::connect(listener.local_addr()?).await?;
    /// let (mut peer, _) = listener.accept().await?;
    /// let (mut rd, mut wr) = stream.split();
    /// peer.try_write(b"abcdef")?;
    /// rd.readable().await?;
    /// let (mut a, mut b) = ([0u8; 2], [0u8; 8]);
    /// let n = rd.try_read_vectored(&mut [IoSliceMut::new(&mut a), IoSliceMut::new(&mut b)])?;
    /// assert_eq!((n, &a, &b[..4]), (6, b"ab", &b"cdef"[..]));
    /// # Ok(())
    /// # }
    /// ```
    pub fn try_read_vectored(&self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        self.0.try_read_vectored(bufs)
    }

    /// Reads into a `BufMut` without waiting, advancing it; see
    /// [`TcpStream::try_read_buf`].
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
    /// let mut stream = TcpStream::connect(listener.local_addr()?).await?;
    /// let (mut peer, _) = listener.accept().await?;
    /// let (mut rd, mut wr) = stream.split();
    /// peer.try_write(b"hello")?;
    /// rd.readable().await?;
    /// let mut buf = Vec::with_capacity(64);
    /// rd.try_read_buf(&mut buf)?;
    /// assert_eq!(buf, b"hello");
    /// # Ok(())
    /// # }
    /// ```
    pub fn try_read_buf<B: bytes::BufMut>(&self, buf: &mut B) -> io::Result<usize> {
        self.0.try_read_buf(buf)
    }

    /// The remote address of the connection, as [`TcpStream::peer_addr`].
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
    /// let mut stream = TcpStream::connect(listener.local_addr()?).await?;
    /// let (mut peer, _) = listener.accept().await?;
    /// let (mut rd, mut wr) = stream.split();
    /// assert_eq!(rd.peer_addr()?, listener.local_addr()?);
    /// # Ok(())
    /// # }
    /// ```
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.0.peer_addr()
    }

    /// The local address of the connection, as [`TcpStream::local_addr`].
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
    /// let mut stream = TcpStream::connect(listener.local_addr()?).await?;
    /// let (mut peer, _) = listener.accept().await?;
    /// let (mut rd, mut wr) = stream.split();
    /// assert_eq!(rd.local_addr()?, peer.peer_addr()?);
    /// # Ok(())
    /// # }
    /// ```
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.local_addr()
    }
}

impl WriteHalf<'_> {
    /// Waits for any of the readiness in `interest`; see [`TcpStream::ready`].
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
    /// use synack::net::{TcpListener, TcpStream};
    ///
    /// let listener = TcpListener::bind("127.0.0.1:0").await?;
    /// let mut stream = TcpStream::connect(listener.local_addr()?).await?;
    /// let (mut peer, _) = listener.accept().await?;
    /// let (mut rd, mut wr) = stream.split();
    /// let ready = wr.ready(Interest::WRITABLE).await?;
    /// assert!(ready.is_writable());
    /// # Ok(())
    /// # }
    /// ```
    pub async fn ready(&self, interest: Interest) -> io::Result<Ready> {
        self.0.ready(interest).await
    }

    /// Waits until a write would not block (room in the send buffer, or an
    /// error); see [`TcpStream::writable`].
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
    /// use synack::net::{TcpListener, TcpStream};
    ///
    /// let listener = TcpListener::bind("127.0.0.1:0").await?;
    /// let mut stream = TcpStream::connect(listener.local_addr()?).await?;
    /// let (mut peer, _) = listener.accept().await?;
    /// let (mut rd, mut wr) = stream.split();
    /// wr.writable().await?;
    /// assert_eq!(wr.try_write(b"hello")?, 5);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn writable(&self) -> io::Result<()> {
        self.0.writable().await
    }

    /// Writes what fits in the send buffer without waiting: `WouldBlock` when it
    /// is full, `BrokenPipe` once the sending direction is shut down. See
    /// [`TcpStream::try_write`].
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
    /// let (mut rd, mut wr) = stream.split();
    /// assert_eq!(wr.try_write(b"bye")?, 3);
    /// wr.shutdown().await?; // FIN
    /// assert_eq!(wr.try_write(b"more").unwrap_err().kind(), ErrorKind::BrokenPipe);
    /// # Ok(())
    /// # }
    /// ```
    pub fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        self.0.try_write(buf)
    }

    /// Writes from several buffers in turn without waiting; see
    /// [`TcpStream::try_write_vectored`].
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
    /// use synack::net::{TcpListener, TcpStream};
    ///
    /// let listener = TcpListener::bind("127.0.0.1:0").await?;
    /// let mut stream = TcpStream::connect(listener.local_addr()?).await?;
    /// let (mut peer, _) = listener.accept().await?;
    /// let (mut rd, mut wr) = stream.split();
    /// let n = wr.try_write_vectored(&[IoSlice::new(b"ab"), IoSlice::new(b"cd")])?;
    /// assert_eq!(n, 4);
    /// # Ok(())
    /// # }
    /// ```
    pub fn try_write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.0.try_write_vectored(bufs)
    }

    /// The remote address of the connection, as [`TcpStream::peer_addr`].
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
    /// let mut stream = TcpStream::connect(listener.local_addr()?).await?;
    /// let (mut peer, _) = listener.accept().await?;
    /// let (mut rd, mut wr) = stream.split();
    /// assert_eq!(wr.peer_addr()?, listener.local_addr()?);
    /// # Ok(())
    /// # }
    /// ```
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.0.peer_addr()
    }

    /// The local address of the connection, as [`TcpStream::local_addr`].
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
    /// let mut stream = TcpStream::connect(listener.local_addr()?).await?;
    /// let (mut peer, _) = listener.accept().await?;
    /// let (mut rd, mut wr) = stream.split();
    /// assert_eq!(wr.local_addr()?, peer.peer_addr()?);
    /// # Ok(())
    /// # }
    /// ```
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.local_addr()
    }
}

impl AsyncRead for ReadHalf<'_> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.0.poll_read_priv(cx, buf)
    }
}

impl futures::io::AsyncRead for ReadHalf<'_> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        self.0.poll_read_slice(cx, buf)
    }

    fn poll_read_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &mut [IoSliceMut<'_>],
    ) -> Poll<io::Result<usize>> {
        self.0.poll_read_vectored_priv(cx, bufs)
    }
}

impl AsRef<TcpStream> for ReadHalf<'_> {
    fn as_ref(&self) -> &TcpStream {
        self.0
    }
}

impl AsyncWrite for WriteHalf<'_> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.0.poll_write_priv(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.0.poll_write_vectored_priv(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    /// Closes the sending direction of the whole stream: a FIN follows the data.
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.0.shutdown_priv())
    }
}

impl futures::io::AsyncWrite for WriteHalf<'_> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.0.poll_write_priv(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.0.poll_write_vectored_priv(cx, bufs)
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    /// Closes the sending direction of the whole stream, as `poll_shutdown`.
    fn poll_close(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.0.shutdown_priv())
    }
}

impl AsRef<TcpStream> for WriteHalf<'_> {
    fn as_ref(&self) -> &TcpStream {
        self.0
    }
}
