//! `TcpStream::into_split`: owned read and write halves, like tokio's.

use std::error::Error;
use std::fmt;
use std::io::{self, IoSlice, IoSliceMut};
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf, Ready};

use crate::net::TcpStream;

/// The read half of a [`TcpStream`] from [`TcpStream::into_split`]: it
/// reads, peeks and waits for readiness, and can move to another task.
///
/// The connection is closed when both halves are gone (or
/// [reunited](OwnedReadHalf::reunite) and the stream dropped).
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
/// let stream = TcpStream::connect(listener.local_addr()?).await?;
/// let (mut peer, _) = listener.accept().await?;
/// let (mut rd, mut wr) = stream.into_split();
/// let reader = tokio::spawn(async move {
///     let mut got = Vec::new();
///     rd.read_to_end(&mut got).await.map(|_| got)
/// });
/// peer.write_all(b"to the reader task").await?;
/// drop(peer); // FIN: the reader's read_to_end ends
/// assert_eq!(reader.await.unwrap()?, b"to the reader task");
/// # drop(wr);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct OwnedReadHalf {
    inner: Arc<TcpStream>,
}

/// The write half of a [`TcpStream`] from [`TcpStream::into_split`].
///
/// Dropping it closes the sending direction (a FIN), as tokio's does, unless
/// it is [`forget`](OwnedWriteHalf::forget)-ed.
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
/// let stream = TcpStream::connect(listener.local_addr()?).await?;
/// let (mut peer, _) = listener.accept().await?;
/// let (mut rd, mut wr) = stream.into_split();
/// drop(wr); // FIN
/// assert_eq!(peer.read(&mut [0u8; 8]).await?, 0); // end of stream
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct OwnedWriteHalf {
    inner: Arc<TcpStream>,
    shutdown_on_drop: bool,
}

/// The halves given to `reunite` came from different streams; here they are
/// back, unchanged.
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
/// use synack::net::tcp::ReuniteError;
/// use synack::net::{TcpListener, TcpStream};
///
/// let listener = TcpListener::bind("127.0.0.1:0").await?;
/// let stream = TcpStream::connect(listener.local_addr()?).await?;
/// let (mut peer, _) = listener.accept().await?;
/// let (mut rd, mut wr) = stream.into_split();
/// let other = TcpStream::connect(listener.local_addr()?).await?;
/// let (_other_rd, other_wr) = other.into_split();
/// let ReuniteError(rd, _other_wr) = rd.reunite(other_wr).unwrap_err();
/// let stream = rd.reunite(wr).expect("now the right pair");
/// # drop(stream);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct ReuniteError(pub OwnedReadHalf, pub OwnedWriteHalf);

impl fmt::Display for ReuniteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "tried to reunite halves that are not from the same socket"
        )
    }
}

impl Error for ReuniteError {}

pub(crate) fn split_owned(stream: TcpStream) -> (OwnedReadHalf, OwnedWriteHalf) {
    let inner = Arc::new(stream);
    (
        OwnedReadHalf {
            inner: inner.clone(),
        },
        OwnedWriteHalf {
            inner,
            shutdown_on_drop: true,
        },
    )
}

fn reunite(read: OwnedReadHalf, mut write: OwnedWriteHalf) -> Result<TcpStream, ReuniteError> {
    if !Arc::ptr_eq(&read.inner, &write.inner) {
        return Err(ReuniteError(read, write));
    }
    write.shutdown_on_drop = false;
    drop(write);
    Ok(Arc::try_unwrap(read.inner).expect("both halves were given, so no other reference"))
}

impl OwnedReadHalf {
    /// Puts the stream back together from its two halves; no FIN is sent.
    ///
    /// # Errors
    ///
    /// [`ReuniteError`], holding both halves, if `other` is the write half of
    /// another stream.
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
    /// let (mut peer, _) = listener.accept().await?;
    /// let (mut rd, mut wr) = stream.into_split();
    /// let stream = rd.reunite(wr).expect("halves of one stream");
    /// assert_eq!(stream.peer_addr()?, listener.local_addr()?);
    /// # Ok(())
    /// # }
    /// ```
    pub fn reunite(self, other: OwnedWriteHalf) -> Result<TcpStream, ReuniteError> {
        reunite(self, other)
    }

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
    /// let stream = TcpStream::connect(listener.local_addr()?).await?;
    /// let (mut peer, _) = listener.accept().await?;
    /// let (mut rd, mut wr) = stream.into_split();
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
        self.inner.poll_peek(cx, buf)
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
    /// let stream = TcpStream::connect(listener.local_addr()?).await?;
    /// let (mut peer, _) = listener.accept().await?;
    /// let (mut rd, mut wr) = stream.into_split();
    /// peer.try_write(b"abc")?;
    /// let mut buf = [0u8; 8];
    /// let n = rd.peek(&mut buf).await?;
    /// assert_eq!(&buf[..n], b"abc");
    /// assert_eq!(rd.read(&mut buf).await?, n); // the same bytes again
    /// # Ok(())
    /// # }
    /// ```
    pub async fn peek(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.peek(buf).await
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
    /// let stream = TcpStream::connect(listener.local_addr()?).await?;
    /// let (mut peer, _) = listener.accept().await?;
    /// let (mut rd, mut wr) = stream.into_split();
    /// peer.try_write(b"x")?;
    /// let ready = rd.ready(Interest::READABLE).await?;
    /// assert!(ready.is_readable());
    /// # Ok(())
    /// # }
    /// ```
    pub async fn ready(&self, interest: Interest) -> io::Result<Ready> {
        self.inner.ready(interest).await
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
    /// let stream = TcpStream::connect(listener.local_addr()?).await?;
    /// let (mut peer, _) = listener.accept().await?;
    /// let (mut rd, mut wr) = stream.into_split();
    /// peer.try_write(b"hello")?;
    /// rd.readable().await?;
    /// let mut buf = [0u8; 8];
    /// assert_eq!(rd.try_read(&mut buf)?, 5);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn readable(&self) -> io::Result<()> {
        self.inner.readable().await
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
    /// let stream = TcpStream::connect(listener.local_addr()?).await?;
    /// let (mut peer, _) = listener.accept().await?;
    /// let (mut rd, mut wr) = stream.into_split();
    /// let mut buf = [0u8; 8];
    /// assert_eq!(rd.try_read(&mut buf).unwrap_err().kind(), ErrorKind::WouldBlock);
    /// drop(peer); // FIN
    /// rd.readable().await?;
    /// assert_eq!(rd.try_read(&mut buf)?, 0);
    /// # Ok(())
    /// # }
    /// ```
    pub fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.try_read(buf)
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
    /// let stream = TcpStream::connect(listener.local_addr()?).await?;
    /// let (mut peer, _) = listener.accept().await?;
    /// let (mut rd, mut wr) = stream.into_split();
    /// peer.try_write(b"abcdef")?;
    /// rd.readable().await?;
    /// let (mut a, mut b) = ([0u8; 2], [0u8; 8]);
    /// let n = rd.try_read_vectored(&mut [IoSliceMut::new(&mut a), IoSliceMut::new(&mut b)])?;
    /// assert_eq!((n, &a, &b[..4]), (6, b"ab", &b"cdef"[..]));
    /// # Ok(())
    /// # }
    /// ```
    pub fn try_read_vectored(&self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        self.inner.try_read_vectored(bufs)
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
    /// let stream = TcpStream::connect(listener.local_addr()?).await?;
    /// let (mut peer, _) = listener.accept().await?;
    /// let (mut rd, mut wr) = stream.into_split();
    /// peer.try_write(b"hello")?;
    /// rd.readable().await?;
    /// let mut buf = Vec::with_capacity(64);
    /// rd.try_read_buf(&mut buf)?;
    /// assert_eq!(buf, b"hello");
    /// # Ok(())
    /// # }
    /// ```
    pub fn try_read_buf<B: bytes::BufMut>(&self, buf: &mut B) -> io::Result<usize> {
        self.inner.try_read_buf(buf)
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
    /// let stream = TcpStream::connect(listener.local_addr()?).await?;
    /// let (mut peer, _) = listener.accept().await?;
    /// let (mut rd, mut wr) = stream.into_split();
    /// assert_eq!(rd.peer_addr()?, listener.local_addr()?);
    /// # Ok(())
    /// # }
    /// ```
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.inner.peer_addr()
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
    /// let stream = TcpStream::connect(listener.local_addr()?).await?;
    /// let (mut peer, _) = listener.accept().await?;
    /// let (mut rd, mut wr) = stream.into_split();
    /// assert_eq!(rd.local_addr()?, peer.peer_addr()?);
    /// # Ok(())
    /// # }
    /// ```
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

impl OwnedWriteHalf {
    /// Puts the stream back together from its two halves; no FIN is sent.
    ///
    /// # Errors
    ///
    /// [`ReuniteError`], holding both halves, if `other` is the read half of
    /// another stream.
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
    /// let (mut peer, _) = listener.accept().await?;
    /// let (mut rd, mut wr) = stream.into_split();
    /// let stream = wr.reunite(rd).expect("halves of one stream");
    /// assert_eq!(stream.state()?, State::Established);
    /// # Ok(())
    /// # }
    /// ```
    pub fn reunite(self, other: OwnedReadHalf) -> Result<TcpStream, ReuniteError> {
        reunite(other, self)
    }

    /// Drops the half without closing the sending direction: no FIN is sent,
    /// and the read half still works. The connection closes when the read half
    /// goes too.
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
    /// let (mut peer, _) = listener.accept().await?;
    /// let (mut rd, mut wr) = stream.into_split();
    /// wr.forget();
    /// assert_eq!(rd.as_ref().state()?, State::Established); // no FIN sent
    /// # Ok(())
    /// # }
    /// ```
    pub fn forget(mut self) {
        self.shutdown_on_drop = false;
        drop(self);
    }

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
    /// let stream = TcpStream::connect(listener.local_addr()?).await?;
    /// let (mut peer, _) = listener.accept().await?;
    /// let (mut rd, mut wr) = stream.into_split();
    /// let ready = wr.ready(Interest::WRITABLE).await?;
    /// assert!(ready.is_writable());
    /// # Ok(())
    /// # }
    /// ```
    pub async fn ready(&self, interest: Interest) -> io::Result<Ready> {
        self.inner.ready(interest).await
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
    /// let stream = TcpStream::connect(listener.local_addr()?).await?;
    /// let (mut peer, _) = listener.accept().await?;
    /// let (mut rd, mut wr) = stream.into_split();
    /// wr.writable().await?;
    /// assert_eq!(wr.try_write(b"hello")?, 5);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn writable(&self) -> io::Result<()> {
        self.inner.writable().await
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
    /// let stream = TcpStream::connect(listener.local_addr()?).await?;
    /// let (mut peer, _) = listener.accept().await?;
    /// let (mut rd, mut wr) = stream.into_split();
    /// assert_eq!(wr.try_write(b"bye")?, 3);
    /// wr.shutdown().await?; // FIN
    /// assert_eq!(wr.try_write(b"more").unwrap_err().kind(), ErrorKind::BrokenPipe);
    /// # Ok(())
    /// # }
    /// ```
    pub fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        self.inner.try_write(buf)
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
    /// let stream = TcpStream::connect(listener.local_addr()?).await?;
    /// let (mut peer, _) = listener.accept().await?;
    /// let (mut rd, mut wr) = stream.into_split();
    /// let n = wr.try_write_vectored(&[IoSlice::new(b"ab"), IoSlice::new(b"cd")])?;
    /// assert_eq!(n, 4);
    /// # Ok(())
    /// # }
    /// ```
    pub fn try_write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.inner.try_write_vectored(bufs)
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
    /// let stream = TcpStream::connect(listener.local_addr()?).await?;
    /// let (mut peer, _) = listener.accept().await?;
    /// let (mut rd, mut wr) = stream.into_split();
    /// assert_eq!(wr.peer_addr()?, listener.local_addr()?);
    /// # Ok(())
    /// # }
    /// ```
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.inner.peer_addr()
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
    /// let stream = TcpStream::connect(listener.local_addr()?).await?;
    /// let (mut peer, _) = listener.accept().await?;
    /// let (mut rd, mut wr) = stream.into_split();
    /// assert_eq!(wr.local_addr()?, peer.peer_addr()?);
    /// # Ok(())
    /// # }
    /// ```
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

impl Drop for OwnedWriteHalf {
    fn drop(&mut self) {
        if self.shutdown_on_drop {
            // As tokio: a FIN when the write half goes; errors are not reported.
            let _ = self.inner.shutdown_priv();
        }
    }
}

impl AsyncRead for OwnedReadHalf {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.inner.poll_read_priv(cx, buf)
    }
}

impl futures::io::AsyncRead for OwnedReadHalf {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        self.inner.poll_read_slice(cx, buf)
    }

    fn poll_read_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &mut [IoSliceMut<'_>],
    ) -> Poll<io::Result<usize>> {
        self.inner.poll_read_vectored_priv(cx, bufs)
    }
}

impl AsRef<TcpStream> for OwnedReadHalf {
    fn as_ref(&self) -> &TcpStream {
        &self.inner
    }
}

impl AsyncWrite for OwnedWriteHalf {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.inner.poll_write_priv(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.inner.poll_write_vectored_priv(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    /// Closes the sending direction of the whole stream: a FIN follows the data.
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.inner.shutdown_priv())
    }
}

impl futures::io::AsyncWrite for OwnedWriteHalf {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.inner.poll_write_priv(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.inner.poll_write_vectored_priv(cx, bufs)
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    /// Closes the sending direction of the whole stream, as `poll_shutdown`.
    fn poll_close(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.inner.shutdown_priv())
    }
}

impl AsRef<TcpStream> for OwnedWriteHalf {
    fn as_ref(&self) -> &TcpStream {
        &self.inner
    }
}
