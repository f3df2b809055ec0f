//! A behaviour battery: every test body runs twice, on tokio::net over the
//! kernel's 127.0.0.1 and on synack::net over a MemoryLink between two
//! stacks, and asserts the same outcome on both.

mod dual;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

/// A waker that only records that it was woken.
struct WakeFlag(AtomicBool);

impl futures::task::ArcWake for WakeFlag {
    fn wake_by_ref(this: &Arc<Self>) {
        this.0.store(true, Ordering::SeqCst);
    }
}

fn wake_flag() -> (Arc<WakeFlag>, Waker) {
    let flag = Arc::new(WakeFlag(AtomicBool::new(false)));
    let waker = futures::task::waker(flag.clone());
    (flag, waker)
}

/// Polls `f` once with `waker` instead of the test task's own.
fn poll_with<F: Future + ?Sized>(f: Pin<&mut F>, waker: &Waker) -> Poll<F::Output> {
    f.poll(&mut Context::from_waker(waker))
}

/// Lets the runtime (and a synack stack's driver) run until `flag` is woken.
async fn until_woken(flag: &WakeFlag) {
    tokio::time::timeout(Duration::from_secs(5), async {
        while !flag.0.load(Ordering::SeqCst) {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the waker was never woken");
}

/// Whether `f` is still pending when polled once, right now, without giving
/// the runtime a turn in between.
async fn pending_now<F: Future>(f: F) -> bool {
    let mut f = std::pin::pin!(f);
    std::future::poll_fn(|cx| Poll::Ready(f.as_mut().poll(cx).is_pending())).await
}

use dual::Env;

/// `n` bytes of a recognisable pattern.
fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8).collect()
}

macro_rules! battery {
    ($module:ident, $($net:ident)::+, $env:expr) => {
        mod $module {
            use std::future::poll_fn;
            use std::io;
            use std::net::SocketAddr;
            use std::pin::pin;
            use std::sync::atomic::AtomicUsize;
            use tokio::io::Interest;

            use tokio::io::{AsyncReadExt, AsyncWriteExt};

            use $($net)::+::{TcpListener, TcpSocket, TcpStream};

            use super::*;

            fn env() -> Env {
                $env
            }

            async fn listener(env: &Env) -> io::Result<TcpListener> {
                env.server(TcpListener::bind((env.ip, 0))).await
            }

            /// A connected pair: (client, server).
            async fn pair(env: &Env) -> io::Result<(TcpStream, TcpStream)> {
                let l = listener(env).await?;
                let addr = l.local_addr()?;
                let (c, a) = tokio::join!(env.client(TcpStream::connect(addr)), l.accept());
                Ok((c?, a?.0))
            }

            #[tokio::test]
            async fn echo() -> io::Result<()> {
                let env = env();
                let (mut c, mut s) = pair(&env).await?;
                let server = async move {
                    let mut buf = [0u8; 11];
                    s.read_exact(&mut buf).await?;
                    s.write_all(&buf).await?;
                    io::Result::Ok(s)
                };
                let client = async {
                    c.write_all(b"hello world").await?;
                    let mut buf = [0u8; 11];
                    c.read_exact(&mut buf).await?;
                    io::Result::Ok(buf)
                };
                let (s, buf) = tokio::join!(server, client);
                s?;
                assert_eq!(&buf?, b"hello world");
                Ok(())
            }

            #[tokio::test]
            async fn half_close() -> io::Result<()> {
                let env = env();
                let (mut c, mut s) = pair(&env).await?;
                c.write_all(b"request").await?;
                c.shutdown().await?;
                let mut req = Vec::new();
                s.read_to_end(&mut req).await?;
                assert_eq!(req, b"request");
                // The other direction is still open.
                s.write_all(b"response").await?;
                drop(s);
                let mut resp = Vec::new();
                c.read_to_end(&mut resp).await?;
                assert_eq!(resp, b"response");
                // Writing after our own shutdown is a broken pipe.
                let err = c.write_all(b"more").await.unwrap_err();
                assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
                Ok(())
            }

            #[tokio::test]
            async fn peek_leaves_data() -> io::Result<()> {
                let env = env();
                let (mut c, s) = pair(&env).await?;
                s.try_write(b"hello").map(|_| ()).or_else(|e| {
                    if e.kind() == io::ErrorKind::WouldBlock { Ok(()) } else { Err(e) }
                })?;
                let mut buf = [0u8; 5];
                let n = c.peek(&mut buf).await?;
                assert!(n >= 1);
                let again = {
                    let mut b = [0u8; 5];
                    let m = c.peek(&mut b).await?;
                    b[..m.min(n)].to_vec()
                };
                assert_eq!(again, buf[..n].to_vec());
                let mut read = [0u8; 5];
                c.read_exact(&mut read).await?;
                assert_eq!(&read, b"hello");
                assert_eq!(&read[..n], &buf[..n]);
                Ok(())
            }

            #[tokio::test]
            async fn split_and_reunite() -> io::Result<()> {
                let env = env();
                let (c, mut s) = pair(&env).await?;
                // The server echoes with its borrowed halves.
                let echo = async move {
                    let (mut r, mut w) = s.split();
                    tokio::io::copy(&mut r, &mut w).await?;
                    w.shutdown().await?;
                    io::Result::Ok(())
                };
                let echo = tokio::spawn(echo);
                // The client writes from one task and reads in another.
                let (mut r, mut w) = c.into_split();
                let data = pattern(200_000);
                let up = data.clone();
                let writer = tokio::spawn(async move {
                    w.write_all(&up).await?;
                    io::Result::Ok(w)
                });
                let mut back = vec![0u8; data.len()];
                r.read_exact(&mut back).await?;
                assert!(back == data);
                let w = writer.await.map_err(io::Error::other)??;
                let mut c = r.reunite(w).map_err(|_| io::Error::other("reunite"))?;
                c.shutdown().await?;
                let mut rest = Vec::new();
                c.read_to_end(&mut rest).await?;
                assert!(rest.is_empty());
                echo.await.map_err(io::Error::other)??;
                Ok(())
            }

            #[tokio::test]
            async fn dropping_the_owned_write_half_sends_fin() -> io::Result<()> {
                let env = env();
                let (c, mut s) = pair(&env).await?;
                let (_r, mut w) = c.into_split();
                w.write_all(b"bye").await?;
                drop(w);
                let mut got = Vec::new();
                s.read_to_end(&mut got).await?;
                assert_eq!(got, b"bye");
                Ok(())
            }

            #[tokio::test]
            async fn try_read_try_write_with_readiness() -> io::Result<()> {
                let env = env();
                let (c, s) = pair(&env).await?;
                let mut buf = vec![0u8; 64 * 1024];
                assert_eq!(s.try_read(&mut buf).unwrap_err().kind(), io::ErrorKind::WouldBlock);
                // Fill every buffer on the way while the server does not read.
                let chunk = pattern(64 * 1024);
                let mut sent = 0usize;
                c.writable().await?;
                loop {
                    match c.try_write(&chunk[sent % chunk.len()..]) {
                        Ok(n) => sent += n,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) => return Err(e),
                    }
                }
                assert!(sent > 0);
                // Now the server drains it all; the client can write again.
                let mut got = 0usize;
                while got < sent {
                    s.readable().await?;
                    match s.try_read(&mut buf) {
                        Ok(0) => panic!("unexpected end of stream"),
                        Ok(n) => {
                            assert!(buf[..n].iter().zip(got..).all(|(&b, i)| b == (i % (64 * 1024) % 251) as u8));
                            got += n;
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                        Err(e) => return Err(e),
                    }
                }
                assert_eq!(got, sent);
                c.writable().await?;
                let n = loop {
                    match c.try_write(b"more") {
                        Ok(n) => break n,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => c.writable().await?,
                        Err(e) => return Err(e),
                    }
                };
                assert_eq!(n, 4);
                Ok(())
            }

            #[tokio::test]
            async fn drop_with_unread_data_resets_the_peer() -> io::Result<()> {
                let env = env();
                let (mut c, s) = pair(&env).await?;
                c.write_all(b"unread").await?;
                s.readable().await?;
                drop(s);
                // The RST arrives: readable (read-closed), then the read fails once.
                c.readable().await?;
                let mut buf = [0u8; 8];
                let err = c.read(&mut buf).await.unwrap_err();
                assert_eq!(err.kind(), io::ErrorKind::ConnectionReset);
                // Reported once; afterwards the stream is at its end.
                assert_eq!(c.read(&mut buf).await?, 0);
                let err = c.write_all(b"x").await.unwrap_err();
                assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
                Ok(())
            }

            #[tokio::test]
            async fn write_after_reset() -> io::Result<()> {
                let env = env();
                let (mut c, s) = pair(&env).await?;
                c.write_all(b"unread").await?;
                s.readable().await?;
                drop(s);
                c.readable().await?;
                let err = c.write_all(b"x").await.unwrap_err();
                assert!(
                    matches!(err.kind(), io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe),
                    "{err:?}"
                );
                Ok(())
            }

            #[tokio::test]
            async fn take_error_after_reset() -> io::Result<()> {
                let env = env();
                let (mut c, s) = pair(&env).await?;
                c.write_all(b"unread").await?;
                s.readable().await?;
                drop(s);
                c.readable().await?;
                let r = c.ready(tokio::io::Interest::ERROR).await?;
                assert!(r.is_error());
                let err = c.take_error()?.expect("SO_ERROR holds the reset");
                assert_eq!(err.kind(), io::ErrorKind::ConnectionReset);
                assert!(c.take_error()?.is_none());
                let mut buf = [0u8; 4];
                assert_eq!(c.read(&mut buf).await?, 0);
                Ok(())
            }

            #[tokio::test]
            async fn connect_to_a_closed_port_is_refused() -> io::Result<()> {
                let env = env();
                let addr = listener(&env).await?.local_addr()?;
                let err = env.client(TcpStream::connect(addr)).await.unwrap_err();
                assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
                Ok(())
            }

            #[tokio::test]
            async fn address_in_use() -> io::Result<()> {
                let env = env();
                let l = listener(&env).await?;
                let addr = l.local_addr()?;
                let err = env.server(TcpListener::bind(addr)).await.unwrap_err();
                assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
                // A TcpSocket with SO_REUSEADDR conflicts with a listener too.
                let sock = env.server(async { TcpSocket::new_v4() }).await?;
                sock.set_reuseaddr(true)?;
                let err = sock.bind(addr).unwrap_err();
                assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
                Ok(())
            }

            #[tokio::test]
            async fn reuseaddr_and_a_port_held_by_a_closing_connection() -> io::Result<()> {
                let env = env();
                let l = listener(&env).await?;
                let addr = l.local_addr()?;
                let (c, a) = tokio::join!(env.client(TcpStream::connect(addr)), l.accept());
                let mut c = c?;
                let (s, _) = a?;
                drop(l);
                // The server closes first: its connection lingers on the port.
                drop(s);
                let mut buf = Vec::new();
                c.read_to_end(&mut buf).await?;
                let plain = env.server(async { TcpSocket::new_v4() }).await?;
                assert!(!plain.reuseaddr()?);
                let err = plain.bind(addr).unwrap_err();
                assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
                let reuse = env.server(async { TcpSocket::new_v4() }).await?;
                reuse.set_reuseaddr(true)?;
                reuse.bind(addr)?;
                let l = reuse.listen(8)?;
                assert_eq!(l.local_addr()?, addr);
                // TcpListener::bind sets SO_REUSEADDR, as tokio's does.
                drop(l);
                let l = env.server(TcpListener::bind(addr)).await?;
                assert_eq!(l.local_addr()?, addr);
                Ok(())
            }

            #[tokio::test]
            async fn bind_reserves_the_port() -> io::Result<()> {
                let env = env();
                let socket = || env.server(async { TcpSocket::new_v4() });
                let a = socket().await?;
                a.bind(SocketAddr::new(env.ip, 0))?;
                let addr = a.local_addr()?;
                let b = socket().await?;
                assert_eq!(b.bind(addr).unwrap_err().kind(), io::ErrorKind::AddrInUse);
                drop(a);
                let c = socket().await?;
                c.bind(addr)?;
                drop(c);
                // Sockets that all set SO_REUSEADDR share the port until one listens.
                let d = socket().await?;
                d.set_reuseaddr(true)?;
                d.bind(addr)?;
                let e = socket().await?;
                e.set_reuseaddr(true)?;
                e.bind(addr)?;
                let _l = d.listen(8)?;
                assert_eq!(e.listen(8).unwrap_err().kind(), io::ErrorKind::AddrInUse);
                Ok(())
            }

            #[tokio::test]
            async fn reuseaddr_needs_the_connection_to_have_it_too() -> io::Result<()> {
                let env = env();
                let (c, _s) = pair(&env).await?;
                // The client's connection was made without SO_REUSEADDR.
                let sock = env.client(async { TcpSocket::new_v4() }).await?;
                sock.set_reuseaddr(true)?;
                let err = sock.bind(c.local_addr()?).unwrap_err();
                assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
                Ok(())
            }

            #[tokio::test]
            async fn listener_on_the_unspecified_address() -> io::Result<()> {
                let env = env();
                let l = env.server(TcpListener::bind("0.0.0.0:0")).await?;
                let any = l.local_addr()?;
                assert!(any.ip().is_unspecified());
                let addr = SocketAddr::new(env.ip, any.port());
                let (c, a) = tokio::join!(env.client(TcpStream::connect(addr)), l.accept());
                let (s, _) = a?;
                assert_eq!(s.local_addr()?, addr);
                assert_eq!(c?.peer_addr()?, addr);
                Ok(())
            }

            #[tokio::test]
            async fn accept_many() -> io::Result<()> {
                const N: usize = 32;
                let env = env();
                let l = listener(&env).await?;
                let addr = l.local_addr()?;
                let server = async {
                    let mut peers = Vec::new();
                    for _ in 0..N {
                        let (mut s, peer) = l.accept().await?;
                        let mut b = [0u8; 1];
                        s.read_exact(&mut b).await?;
                        s.write_all(&b).await?;
                        peers.push((peer, s));
                    }
                    io::Result::Ok(peers)
                };
                let clients = futures::future::try_join_all((0..N).map(|i| {
                    let env = &env;
                    async move {
                        let mut c = env.client(TcpStream::connect(addr)).await?;
                        c.write_all(&[i as u8]).await?;
                        let mut b = [0u8; 1];
                        c.read_exact(&mut b).await?;
                        assert_eq!(b[0], i as u8);
                        c.local_addr()
                    }
                }));
                let (peers, locals) = tokio::join!(server, clients);
                let mut peers: Vec<SocketAddr> = peers?.into_iter().map(|(p, _)| p).collect();
                let mut locals = locals?;
                peers.sort();
                locals.sort();
                assert_eq!(peers, locals);
                Ok(())
            }

            #[tokio::test]
            async fn large_transfer() -> io::Result<()> {
                let env = env();
                let (c, s) = pair(&env).await?;
                let data = pattern(4 << 20);
                let (mut cr, mut cw) = c.into_split();
                let (mut sr, mut sw) = s.into_split();
                let echo = async {
                    tokio::io::copy(&mut sr, &mut sw).await?;
                    sw.shutdown().await
                };
                let up = async {
                    cw.write_all(&data).await?;
                    cw.shutdown().await
                };
                let down = async {
                    let mut back = Vec::with_capacity(data.len());
                    cr.read_to_end(&mut back).await?;
                    io::Result::Ok(back)
                };
                let (e, u, back) = tokio::join!(echo, up, down);
                e?;
                u?;
                assert!(back? == data);
                Ok(())
            }

            #[tokio::test]
            async fn ipv6_on_an_ipv4_socket() -> io::Result<()> {
                let env = env();
                let sock = env.client(async { TcpSocket::new_v4() }).await?;
                let err = sock.bind("[::1]:0".parse().unwrap()).unwrap_err();
                assert_eq!(err.raw_os_error(), Some(libc::EAFNOSUPPORT));
                let sock = env.client(async { TcpSocket::new_v4() }).await?;
                let err = sock.connect("[::1]:9".parse().unwrap()).await.unwrap_err();
                assert_eq!(err.raw_os_error(), Some(libc::EAFNOSUPPORT));
                Ok(())
            }

            #[tokio::test]
            async fn invalid_ttl() -> io::Result<()> {
                let env = env();
                let (c, _s) = pair(&env).await?;
                for ttl in [0, 256] {
                    let err = c.set_ttl(ttl).unwrap_err();
                    assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "ttl {ttl}");
                }
                assert_eq!(c.ttl()?, 64);
                Ok(())
            }

            #[tokio::test]
            async fn socket_options_reach_the_connection() -> io::Result<()> {
                let env = env();
                let l = listener(&env).await?;
                let addr = l.local_addr()?;
                let sock = env.client(async { TcpSocket::new_v4() }).await?;
                sock.set_nodelay(true)?;
                sock.set_send_buffer_size(32 * 1024)?;
                let bound = SocketAddr::new(sock.local_addr()?.ip(), 0);
                sock.bind(bound)?;
                let port = sock.local_addr()?.port();
                assert_ne!(port, 0);
                let (c, a) = tokio::join!(sock.connect(addr), l.accept());
                let c = c?;
                let (_s, peer) = a?;
                assert!(c.nodelay()?);
                assert_eq!(c.local_addr()?.port(), port);
                assert_eq!(peer.port(), port);
                Ok(())
            }

            /// SO_REUSEPORT: two listeners that both set it share a port and
            /// between them accept every connection; a third without it gets
            /// `AddrInUse`.
            #[tokio::test]
            async fn reuseport_listeners_share_a_port() -> io::Result<()> {
                let env = env();
                let first = env.server(async { TcpSocket::new_v4() }).await?;
                first.set_reuseport(true)?;
                first.bind(SocketAddr::new(env.ip, 0))?;
                let addr = first.local_addr()?;
                let l1 = first.listen(64)?;
                let second = env.server(async { TcpSocket::new_v4() }).await?;
                second.set_reuseport(true)?;
                second.bind(addr)?;
                let l2 = second.listen(64)?;
                let third = env.server(async { TcpSocket::new_v4() }).await?;
                let err = third.bind(addr).unwrap_err();
                assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
                const N: usize = 16;
                let mut clients = Vec::new();
                for _ in 0..N {
                    clients.push(env.client(TcpStream::connect(addr)).await?);
                }
                // Every connection is accepted by one of the two.
                let mut accepted = 0;
                while accepted < N {
                    tokio::select! {
                        r = l1.accept() => { r?; }
                        r = l2.accept() => { r?; }
                    }
                    accepted += 1;
                }
                Ok(())
            }

            /// `set_zero_linger`: dropping the stream resets the connection, so
            /// the peer's read fails with `ConnectionReset` instead of EOF.
            #[tokio::test]
            async fn zero_linger_resets_on_drop() -> io::Result<()> {
                let env = env();
                let (c, mut s) = pair(&env).await?;
                assert_eq!(c.linger()?, None);
                c.set_zero_linger()?;
                assert_eq!(c.linger()?, Some(std::time::Duration::ZERO));
                drop(c);
                let mut buf = [0u8; 16];
                let err = env
                    .server(s.read(&mut buf))
                    .await
                    .expect_err("read after the peer's zero-linger close");
                assert_eq!(err.kind(), io::ErrorKind::ConnectionReset);
                Ok(())
            }

            /// `TCP_QUICKACK` reads back as set, and data still flows.
            #[tokio::test]
            async fn quickack_reads_back() -> io::Result<()> {
                let env = env();
                let (mut c, mut s) = pair(&env).await?;
                c.set_quickack(true)?;
                assert!(c.quickack()?);
                s.write_all(b"ping").await?;
                let mut buf = [0u8; 4];
                c.read_exact(&mut buf).await?;
                assert_eq!(&buf, b"ping");
                Ok(())
            }

            /// `SO_KEEPALIVE` and `SO_LINGER` on a `TcpSocket` read back as set.
            #[tokio::test]
            async fn socket_keepalive_and_linger() -> io::Result<()> {
                let env = env();
                let sock = env.client(async { TcpSocket::new_v4() }).await?;
                assert!(!sock.keepalive()?);
                sock.set_keepalive(true)?;
                assert!(sock.keepalive()?);
                assert_eq!(sock.linger()?, None);
                sock.set_zero_linger()?;
                assert_eq!(sock.linger()?, Some(std::time::Duration::ZERO));
                Ok(())
            }


            /// Every address form tokio's tests bind a listener with; each
            /// accepted stream's addresses mirror the client's, and the
            /// address `accept` returns is the stream's `peer_addr`.
            /// (tcp_accept::{ip_str, host_str, socket_addr, str_port_tuple,
            /// ip_port_tuple}, tcp_connect::connect_v4)
            #[tokio::test]
            async fn bind_takes_every_address_form() -> io::Result<()> {
                let env = env();
                let ip = env.ip;
                let ip_text = ip.to_string();
                let with_port = format!("{ip}:0");
                let mut listeners = Vec::new();
                listeners.push(env.server(TcpListener::bind(SocketAddr::new(ip, 0))).await?);
                listeners.push(env.server(TcpListener::bind(with_port.as_str())).await?);
                listeners.push(env.server(TcpListener::bind(with_port.clone())).await?);
                listeners.push(env.server(TcpListener::bind((ip_text.as_str(), 0))).await?);
                listeners.push(env.server(TcpListener::bind((ip, 0))).await?);
                // "localhost" is 127.0.0.1 on the kernel and on a synack
                // stack: reachable only where client and server share a host.
                if ip.is_loopback() {
                    listeners.push(env.server(TcpListener::bind("localhost:0")).await?);
                }
                for (form, l) in listeners.iter().enumerate() {
                    let addr = l.local_addr()?;
                    assert_ne!(addr.port(), 0, "form {form}");
                    let (c, a) = tokio::join!(env.client(TcpStream::connect(addr)), l.accept());
                    let c = c?;
                    let (s, from) = a?;
                    assert_eq!(from, s.peer_addr()?, "form {form}");
                    assert_eq!(c.local_addr()?, s.peer_addr()?, "form {form}");
                    assert_eq!(c.peer_addr()?, s.local_addr()?, "form {form}");
                }
                Ok(())
            }

            /// `poll_accept` is polled once to register, and after one
            /// connection exactly twice more (ready, then pending again): no
            /// spurious wake-up on the SYN or elsewhere. (tcp_accept::no_extra_poll)
            #[tokio::test]
            async fn accept_is_polled_only_when_a_connection_waits() -> io::Result<()> {
                let env = env();
                let l = listener(&env).await?;
                let addr = l.local_addr()?;
                let polls = Arc::new(AtomicUsize::new(0));
                let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
                let counted = polls.clone();
                let acceptor = tokio::spawn(async move {
                    loop {
                        let accepted = poll_fn(|cx| {
                            counted.fetch_add(1, Ordering::SeqCst);
                            l.poll_accept(cx)
                        })
                        .await;
                        if tx.send(accepted).is_err() {
                            return;
                        }
                    }
                });
                tokio::task::yield_now().await;
                assert_eq!(polls.load(Ordering::SeqCst), 1, "polled once to register");
                let _c = env.client(TcpStream::connect(addr)).await?;
                let (_s, _peer) = rx.recv().await.expect("the acceptor is running")?;
                assert_eq!(polls.load(Ordering::SeqCst), 3, "once ready, once pending again");
                acceptor.abort();
                Ok(())
            }

            /// Several `accept` futures waiting on one listener are all woken
            /// by a connection (each then finds out by polling). (tcp_accept::accept_many)
            #[tokio::test]
            async fn every_waiting_accept_is_woken() -> io::Result<()> {
                const WAITERS: usize = 16;
                let env = env();
                let l = listener(&env).await?;
                let addr = l.local_addr()?;
                let waiting: Vec<_> = (0..WAITERS)
                    .map(|_| {
                        let (flag, waker) = wake_flag();
                        let mut accept = Box::pin(l.accept());
                        assert!(poll_with(accept.as_mut(), &waker).is_pending());
                        (flag, accept)
                    })
                    .collect();
                let _c = env.client(TcpStream::connect(addr)).await?;
                for (flag, _) in &waiting {
                    until_woken(flag).await;
                }
                drop(waiting);
                Ok(())
            }

            /// Many small request/response rounds through `io::copy` over
            /// borrowed halves; the count `copy` returns is every byte.
            /// (tcp_echo::echo_server)
            #[tokio::test]
            async fn many_round_trips_through_copy() -> io::Result<()> {
                const ROUNDS: usize = 1000;
                const MSG: &[u8] = b"one round trip";
                let env = env();
                let (mut c, mut s) = pair(&env).await?;
                let server = async move {
                    let (mut r, mut w) = s.split();
                    tokio::io::copy(&mut r, &mut w).await
                    // `s` drops here: a FIN ends the client's read_to_end.
                };
                let client = async {
                    let mut back = [0u8; MSG.len()];
                    for round in 0..ROUNDS {
                        c.write_all(MSG).await?;
                        c.read_exact(&mut back).await?;
                        assert_eq!(&back[..], MSG, "round {round}");
                    }
                    c.shutdown().await?;
                    let mut rest = Vec::new();
                    c.read_to_end(&mut rest).await?;
                    assert!(rest.is_empty());
                    io::Result::Ok(())
                };
                let (copied, done) = tokio::join!(server, client);
                done?;
                assert_eq!(copied?, (ROUNDS * MSG.len()) as u64);
                Ok(())
            }

            /// Peeking through either kind of half leaves the data: two peeks
            /// agree and the read returns what they saw. `write` on a write
            /// half takes the whole short message.
            /// (tcp_into_split::split, tcp_split::split)
            #[tokio::test]
            async fn halves_peek_without_consuming() -> io::Result<()> {
                let env = env();
                let (c, mut s) = pair(&env).await?;
                let (mut cr, mut cw) = c.into_split();
                // Owned read half, fed by the server.
                assert_eq!(s.write(b"to owned").await?, 8);
                let mut first = [0u8; 32];
                let mut second = [0u8; 32];
                let n = cr.peek(&mut first).await?;
                let m = cr.peek(&mut second).await?;
                assert_eq!((n, &first[..n]), (m, &second[..m]));
                let mut read = [0u8; 32];
                let r = cr.read(&mut read).await?;
                assert_eq!(r, n);
                assert_eq!(&read[..r], b"to owned");
                // Borrowed read half, fed by the owned write half.
                assert_eq!(cw.write(b"to borrowed").await?, 11);
                let (mut sr, _sw) = s.split();
                let n = sr.peek(&mut first).await?;
                let m = sr.peek(&mut second).await?;
                assert_eq!((n, &first[..n]), (m, &second[..m]));
                let r = sr.read(&mut read).await?;
                assert_eq!(r, n);
                assert_eq!(&read[..r], b"to borrowed");
                Ok(())
            }

            /// Halves of two different streams do not reunite; the error hands
            /// them back, and the right pair then reunites.
            /// (tcp_into_split::reunite)
            #[tokio::test]
            async fn reunite_refuses_halves_of_another_stream() -> io::Result<()> {
                let env = env();
                let (one, _s1) = pair(&env).await?;
                let (two, _s2) = pair(&env).await?;
                let one_local = one.local_addr()?;
                let (r1, w1) = one.into_split();
                let (_r2, w2) = two.into_split();
                let err = r1.reunite(w2).expect_err("halves of two streams");
                let r1 = err.0;
                let one = r1.reunite(w1).map_err(|_| io::Error::other("reunite"))?;
                assert_eq!(one.local_addr()?, one_local);
                Ok(())
            }

            /// Dropping the owned write half while a read on the read half is
            /// pending: the peer reads end-of-stream and closes, and the pending
            /// read then ends with 0. (tcp_into_split::drop_write)
            #[tokio::test]
            async fn pending_read_ends_after_the_write_half_drops() -> io::Result<()> {
                let env = env();
                let (c, mut s) = pair(&env).await?;
                let (mut r, w) = c.into_split();
                let server = async move {
                    s.write_all(b"before").await?;
                    let mut buf = [0u8; 16];
                    let n = s.read(&mut buf).await?;
                    assert_eq!(n, 0, "the client's write half is gone");
                    drop(s);
                    io::Result::Ok(())
                };
                let client = async move {
                    let mut buf = [0u8; 16];
                    let n = r.read(&mut buf).await?;
                    assert_eq!(&buf[..n], b"before");
                    // Dropped from another task while the read below waits.
                    let dropper = tokio::spawn(async move {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        drop(w);
                    });
                    let n = r.read(&mut buf).await?;
                    assert_eq!(n, 0);
                    dropper.await.map_err(io::Error::other)?;
                    io::Result::Ok(())
                };
                let (a, b) = tokio::join!(server, client);
                a?;
                b?;
                Ok(())
            }

            /// `shutdown` is Ok however often it is called: before the peer
            /// answers, after the peer's own shutdown, after both FINs.
            /// `copy` of a stream shut at once moves 0 bytes.
            /// (tcp_shutdown::shutdown, tcp_shutdown::shutdown_multiple_calls)
            #[tokio::test]
            async fn shutdown_again_is_ok() -> io::Result<()> {
                let env = env();
                let (mut c, mut s) = pair(&env).await?;
                for _ in 0..3 {
                    c.shutdown().await?;
                }
                let copied = {
                    let (mut r, mut w) = s.split();
                    tokio::io::copy(&mut r, &mut w).await?
                };
                assert_eq!(copied, 0);
                s.shutdown().await?;
                s.shutdown().await?;
                let mut buf = [0u8; 1];
                assert_eq!(c.read(&mut buf).await?, 0);
                // Both directions closed (the client is in TIME-WAIT).
                c.shutdown().await?;
                Ok(())
            }

            /// `shutdown` after the peer's RST (zero linger): Ok, or
            /// `ConnectionReset` while the reset is still pending, as tokio's
            /// test allows; once a read has reported the reset, Ok (tokio maps
            /// the kernel's ENOTCONN to Ok). (tcp_shutdown::shutdown_after_tcp_reset)
            ///
            /// EXPECTED DIVERGENCE: synack's `poll_shutdown` returns the
            /// engine's `NotConnected` for a closed connection whose error was
            /// already taken; tokio's `shutdown_std` turns that into Ok.
            #[tokio::test]
            async fn shutdown_after_the_peer_reset() -> io::Result<()> {
                let env = env();
                let (mut c, s) = pair(&env).await?;
                s.set_zero_linger()?;
                drop(s);
                c.readable().await?;
                match c.shutdown().await {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {}
                    Err(e) => panic!("shutdown after a reset: {e:?}"),
                }
                let mut buf = [0u8; 1];
                match c.read(&mut buf).await {
                    Ok(0) => {}
                    Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {}
                    other => panic!("read after a reset: {other:?}"),
                }
                c.shutdown().await?;
                Ok(())
            }

            /// `SO_LINGER` on a stream round-trips: a time, zero, off.
            /// (tcp_stream::set_linger)
            #[tokio::test]
            #[allow(deprecated)] // tokio deprecates TcpStream::set_linger; synack does not
            async fn stream_linger_round_trips() -> io::Result<()> {
                let env = env();
                let (c, _s) = pair(&env).await?;
                assert_eq!(c.linger()?, None);
                c.set_linger(Some(Duration::from_secs(1)))?;
                assert_eq!(c.linger()?, Some(Duration::from_secs(1)));
                c.set_zero_linger()?;
                assert_eq!(c.linger()?, Some(Duration::ZERO));
                c.set_linger(None)?;
                assert_eq!(c.linger()?, None);
                Ok(())
            }

            /// Every `TcpSocket` option tokio's tests round-trip: off (or
            /// unset) at first, then reads back as set.
            /// (tcp_socket::{keepalive, reuseaddr, reuseport, nodelay, linger,
            /// send_buffer_size, recv_buffer_size, basic_linger})
            #[tokio::test]
            #[allow(deprecated)] // tokio deprecates TcpSocket::set_linger
            async fn socket_options_round_trip() -> io::Result<()> {
                const SET: u32 = 4096;
                let env = env();
                let sock = env.client(async { TcpSocket::new_v4() }).await?;
                assert!(!sock.keepalive()?);
                sock.set_keepalive(true)?;
                assert!(sock.keepalive()?);
                assert!(!sock.reuseaddr()?);
                sock.set_reuseaddr(true)?;
                assert!(sock.reuseaddr()?);
                assert!(!sock.reuseport()?);
                sock.set_reuseport(true)?;
                assert!(sock.reuseport()?);
                assert!(!sock.nodelay()?);
                sock.set_nodelay(true)?;
                assert!(sock.nodelay()?);
                assert_eq!(sock.linger()?, None);
                sock.set_linger(Some(Duration::from_secs(10)))?;
                assert_eq!(sock.linger()?, Some(Duration::from_secs(10)));
                // Linux reports twice the size set (room for its bookkeeping);
                // synack reports it as set. Both are at least what was asked.
                assert_ne!(sock.send_buffer_size()?, SET);
                sock.set_send_buffer_size(SET)?;
                let got = sock.send_buffer_size()?;
                assert!(got == SET || got == 2 * SET, "send buffer {got}");
                assert_ne!(sock.recv_buffer_size()?, SET);
                sock.set_recv_buffer_size(SET)?;
                let got = sock.recv_buffer_size()?;
                assert!(got == SET || got == 2 * SET, "recv buffer {got}");
                // TODO once synack has IP_TOS (tcp_socket::tos_v4):
                // assert_eq!(sock.tos_v4()?, 0);
                // sock.set_tos_v4(96)?;
                // assert_eq!(sock.tos_v4()?, 96);
                Ok(())
            }

            /// The readiness edges around filling and draining, three times:
            /// with `try_write`/`try_read`, the vectored pair, and
            /// `try_read_buf`. A `readable()` registered before data is woken
            /// by it; `writable()` waits once a write would block; the reader
            /// sees read-closed once the writer is gone.
            /// (tcp_stream::try_read_write, tcp_stream::try_read_buf)
            ///
            /// tokio's test also asserts `writable()` is still ready after
            /// every successful `try_write`: that is tokio's cached readiness
            /// (cleared only by a `WouldBlock`), not the socket's state, so a
            /// write that exactly fills a synack buffer would legitimately
            /// differ. Not asserted here.
            #[tokio::test]
            async fn readiness_edges_while_filling_and_draining() -> io::Result<()> {
                const DATA: &[u8] = &[7u8; 4000];
                let env = env();
                let (c, s) = pair(&env).await?;
                let (flag, waker) = wake_flag();
                // A fresh stream may already report read-ready on tokio (its
                // first readiness event is not the socket's state): only a
                // task that waited must be woken by the data.
                let mut readable = Box::pin(s.readable());
                let waited = poll_with(readable.as_mut(), &waker).is_pending();
                c.writable().await?;
                assert_eq!(c.try_write(DATA)?, DATA.len());
                if waited {
                    until_woken(&flag).await;
                }
                drop(readable);

                let slices: Vec<io::IoSlice<'_>> = DATA.chunks(10).map(io::IoSlice::new).collect();
                let mut unread = DATA.len();
                for round in 0..3 {
                    if round > 0 {
                        c.writable().await?;
                    }
                    loop {
                        let wrote = if round == 1 {
                            c.try_write_vectored(&slices)
                        } else {
                            c.try_write(DATA)
                        };
                        match wrote {
                            Ok(n) => unread += n,
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                            Err(e) => return Err(e),
                        }
                    }
                    assert!(pending_now(c.writable()).await, "round {round}: full, yet writable");
                    let mut got = 0;
                    let mut buf = vec![0u8; 64 * 1024];
                    while got < unread {
                        s.readable().await?;
                        let read = match round {
                            0 => s.try_read(&mut buf).inspect(|&n| {
                                assert!(buf[..n].iter().all(|&b| b == 7));
                            }),
                            1 => {
                                let r = {
                                    let mut bufs: Vec<io::IoSliceMut<'_>> =
                                        buf.chunks_mut(0x1000).map(io::IoSliceMut::new).collect();
                                    s.try_read_vectored(&mut bufs)
                                };
                                // The slices fill in order, so the bytes read are buf[..n].
                                r.inspect(|&n| assert!(buf[..n].iter().all(|&b| b == 7)))
                            }
                            _ => {
                                let mut v: Vec<u8> = Vec::with_capacity(64 * 1024);
                                let r = s.try_read_buf(&mut v);
                                if let Ok(n) = r {
                                    assert_eq!(v.len(), n);
                                    assert!(v.iter().all(|&b| b == 7));
                                }
                                r
                            }
                        };
                        match read {
                            Ok(0) => panic!("round {round}: unexpected end of stream"),
                            Ok(n) => got += n,
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                            Err(e) => return Err(e),
                        }
                    }
                    assert_eq!(got, unread, "round {round}");
                    unread = 0;
                }

                drop(c);
                tokio::time::timeout(Duration::from_secs(5), async {
                    loop {
                        let ready = s.ready(Interest::READABLE).await?;
                        if ready.is_read_closed() {
                            return io::Result::Ok(());
                        }
                        tokio::task::yield_now().await;
                    }
                })
                .await
                .expect("read-closed never seen")?;
                Ok(())
            }

            /// `poll_read_ready`: ready once data is in, pending again once
            /// drained to `WouldBlock`, ready again at the peer's close.
            /// (tcp_stream::poll_read_ready)
            ///
            /// tokio's test also asserts readiness right after a `read_exact`
            /// that took every byte: tokio's cached readiness again (the
            /// socket has nothing to read), so that step is left out.
            #[tokio::test]
            async fn poll_read_ready_follows_the_data() -> io::Result<()> {
                let env = env();
                let (mut c, mut s) = pair(&env).await?;
                // (tokio may report a fresh stream read-ready before any
                // data: its first readiness event; so that is not asserted.)
                c.write_all(b"ping").await?;
                poll_fn(|cx| s.poll_read_ready(cx)).await?;
                let mut ping = [0u8; 4];
                s.read_exact(&mut ping).await?;
                assert_eq!(&ping, b"ping");
                let mut buf = [0u8; 1024];
                loop {
                    match s.try_read(&mut buf) {
                        Ok(n) => assert!(n > 0),
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) => return Err(e),
                    }
                }
                let drained = poll_fn(|cx| Poll::Ready(s.poll_read_ready(cx).is_pending())).await;
                assert!(drained, "drained to WouldBlock, yet read-ready");
                drop(c);
                poll_fn(|cx| s.poll_read_ready(cx)).await?;
                Ok(())
            }

            /// `poll_write_ready`: ready on a fresh stream, pending once the
            /// buffers are full, ready again when the peer resets (it is
            /// dropped with unread data). (tcp_stream::poll_write_ready)
            #[tokio::test]
            async fn poll_write_ready_follows_the_room() -> io::Result<()> {
                let env = env();
                let (c, s) = pair(&env).await?;
                poll_fn(|cx| c.poll_write_ready(cx)).await?;
                let chunk = pattern(1 << 20);
                let mut sent = 0usize;
                loop {
                    match c.try_write(&chunk) {
                        Ok(n) => sent += n,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) => return Err(e),
                    }
                }
                assert!(sent > 0);
                let full = poll_fn(|cx| Poll::Ready(c.poll_write_ready(cx).is_pending())).await;
                assert!(full, "no room, yet write-ready");
                drop(s);
                poll_fn(|cx| c.poll_write_ready(cx)).await?;
                Ok(())
            }

            /// Readiness for data is not read-closed: no false positive.
            /// (tcp_stream::read_closed)
            #[tokio::test]
            async fn data_is_not_read_closed() -> io::Result<()> {
                let env = env();
                let (c, mut s) = pair(&env).await?;
                let mut ready = pin!(c.ready(Interest::READABLE));
                assert!(pending_now(ready.as_mut()).await);
                s.write_all(b"ping").await?;
                let r = ready.await?;
                assert!(r.is_readable());
                assert!(!r.is_read_closed());
                Ok(())
            }

            /// Room made by the reader is not write-closed: no false positive.
            /// (tcp_stream::write_closed)
            #[tokio::test]
            async fn room_is_not_write_closed() -> io::Result<()> {
                let env = env();
                let (c, s) = pair(&env).await?;
                let chunk = pattern(1 << 20);
                let mut sent = 0usize;
                loop {
                    match c.try_write(&chunk) {
                        Ok(n) => sent += n,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) => return Err(e),
                    }
                }
                let mut ready = pin!(c.ready(Interest::WRITABLE));
                assert!(pending_now(ready.as_mut()).await);
                let mut buf = vec![0u8; 1 << 20];
                let mut got = 0usize;
                while got < sent {
                    s.readable().await?;
                    loop {
                        match s.try_read(&mut buf) {
                            Ok(0) => panic!("unexpected end of stream"),
                            Ok(n) => got += n,
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                            Err(e) => return Err(e),
                        }
                    }
                }
                let r = ready.await?;
                assert!(r.is_writable());
                assert!(!r.is_write_closed());
                Ok(())
            }

            /// A connect-then-read-loop future stays small: the read buffer
            /// lives in the loop body, not in the readiness futures.
            /// (tcp_stream::buffer_not_included_in_future; never polled)
            #[test]
            fn a_read_loop_future_stays_small() {
                const N: usize = 4096;
                let fut = async {
                    let stream = TcpStream::connect("192.0.2.1:80").await.unwrap();
                    loop {
                        stream.readable().await.unwrap();
                        let mut buf = [0u8; N];
                        if stream.try_read(&mut buf[..]).unwrap() == 0 {
                            break;
                        }
                    }
                };
                let size = std::mem::size_of_val(&fut);
                assert!(size < 1000, "{size} bytes");
            }
        }
    };
}

battery!(tokio_net, tokio::net, Env::kernel());
battery!(synack_net, synack::net, Env::synack());
battery!(synack_loopback, synack::net, Env::synack_loopback());

/// Only on synack: no address the kernel test may use is silent, so the SYN
/// retries cannot be run out there.
mod synack_only {
    use std::io;
    use std::net::Ipv4Addr;

    use synack::Config;
    use synack::net::TcpStream;

    use super::Env;

    /// Nobody answers at 192.0.2.9: `TimedOut` after the SYN retries (two
    /// here), in paused time.
    #[tokio::test(start_paused = true)]
    async fn connect_to_an_unreachable_host_times_out() {
        let env = Env::synack_with(Config {
            syn_retries: 2,
            ..Config::default()
        });
        let err = env
            .client(TcpStream::connect((Ipv4Addr::new(192, 0, 2, 9), 80)))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    }

    /// One task opening connection after connection, an accept loop in
    /// another, on one thread: connect spends tokio's cooperative budget as
    /// accept does, so the acceptor keeps up and no SYN is dropped for a
    /// full accept queue (before, the connecting task never yielded while
    /// its handshakes completed, and at 100 000 connections ten thousand
    /// SYNs were dropped and retried for 40 s).
    #[tokio::test]
    async fn a_task_connecting_in_a_loop_leaves_room_for_the_acceptor() -> io::Result<()> {
        use futures::StreamExt;
        use futures::stream::FuturesUnordered;
        use synack::net::{TcpListener, TcpStream};

        let env = Env::synack_with(Config::default());
        let server = env
            .server(async { synack::Stack::try_current() })
            .await
            .unwrap();
        let client = env
            .client(async { synack::Stack::try_current() })
            .await
            .unwrap();
        let listener = TcpListener::bind_on(&server, (env.ip, 0)).await?;
        let addr = listener.local_addr()?;
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let acceptor = tokio::spawn(async move {
            while let Ok((s, _)) = listener.accept().await {
                if tx.send(s).is_err() {
                    break;
                }
            }
        });
        const N: usize = 6000;
        let mut opened = Vec::with_capacity(N);
        let mut in_flight = FuturesUnordered::new();
        let mut next = 0;
        while opened.len() < N {
            while next < N && in_flight.len() < 256 {
                in_flight.push(TcpStream::connect_on(&client, addr));
                next += 1;
            }
            opened.push(in_flight.next().await.expect("in flight")?);
        }
        assert_eq!(
            server.stats().syn_dropped,
            0,
            "SYNs dropped for a full accept queue"
        );
        // Every connection reaches the server's application (a dropped
        // handshake would leave this waiting: bounded, so it fails instead).
        let accept_all = async {
            for _ in 0..N {
                rx.recv().await.expect("acceptor running");
            }
        };
        tokio::time::timeout(std::time::Duration::from_secs(30), accept_all)
            .await
            .expect("every connection accepted");
        acceptor.abort();
        Ok(())
    }

    /// `SO_KEEPALIVE` alone takes the stack's settings (`Config::keepalive`),
    /// as a kernel socket takes its sysctls' (Linux's
    /// `net.ipv4.tcp_keepalive_*`); the default is Linux's.
    #[tokio::test]
    async fn keepalive_alone_takes_the_stacks_settings() -> io::Result<()> {
        use std::time::Duration;
        use synack::Keepalive;
        use synack::net::{TcpListener, TcpSocket};

        let ka = Keepalive {
            idle: Duration::from_secs(30),
            interval: Duration::from_secs(5),
            count: 3,
        };
        let env = Env::synack_with(Config {
            keepalive: ka,
            ..Config::default()
        });
        let listener = env.server(TcpListener::bind((env.ip, 0))).await?;
        let addr = listener.local_addr()?;
        let sock = env.client(async { TcpSocket::new_v4() }).await?;
        sock.set_keepalive(true)?;
        let (stream, accepted) = tokio::join!(env.client(sock.connect(addr)), listener.accept());
        let (stream, _accepted) = (stream?, accepted?);
        assert_eq!(stream.keepalive()?, Some(ka));
        assert_eq!(Config::default().keepalive, Keepalive::default());
        Ok(())
    }

    /// Without a current stack the stack-less calls fail, naming the fix.
    #[tokio::test]
    async fn no_current_stack() {
        let err = TcpStream::connect("192.0.2.1:80").await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        assert!(err.to_string().contains("enter"), "{err}");
    }

    /// Two environments and a stack of each (the client's of the first,
    /// the server's of the second); the environments keep them running.
    async fn two_stacks() -> (Env, Env, synack::Stack, synack::Stack) {
        let a = Env::synack();
        let b = Env::synack_with(Config::default());
        let sa = a
            .client(async { synack::Stack::try_current() })
            .await
            .unwrap();
        let sb = b
            .server(async { synack::Stack::try_current() })
            .await
            .unwrap();
        (a, b, sa, sb)
    }

    /// Guards nest; the innermost stack is current.
    #[tokio::test]
    async fn enter_nests() {
        let (_a, _b, sa, sb) = two_stacks().await;
        {
            let _ga = sa.enter();
            assert_eq!(synack::Stack::try_current().unwrap().addr(), sa.addr());
            {
                let _gb = sb.enter();
                assert_eq!(synack::Stack::try_current().unwrap().addr(), sb.addr());
            }
            assert_eq!(synack::Stack::try_current().unwrap().addr(), sa.addr());
        }
        assert!(synack::Stack::try_current().is_none());
    }

    /// A guard is for the code that made it: a task spawned on the same
    /// thread while the test body holds a guard across an await does not
    /// silently take that stack (it would bind on the wrong host), and says why.
    #[tokio::test]
    async fn a_spawned_task_does_not_inherit_an_entered_stack() {
        let env = Env::synack();
        let server = env
            .server(async { synack::Stack::try_current() })
            .await
            .unwrap();
        let _guard = server.enter();
        let listener = synack::net::TcpListener::bind("0.0.0.0:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let spawned =
            tokio::spawn(async move { TcpStream::connect(("192.0.2.1", port)).await.map(drop) });
        let err = spawned.await.unwrap().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        assert!(err.to_string().contains("scope"), "{err}");
        // The body that entered it still sees it.
        assert_eq!(synack::Stack::try_current().unwrap().addr(), server.addr());
        // `scope` carries it into a task.
        let scoped = tokio::spawn(server.scope(async { synack::Stack::try_current() }));
        assert_eq!(scoped.await.unwrap().unwrap().addr(), server.addr());
    }

    /// Two tasks holding guards across awaits on one thread: each sees its
    /// own, and one task dropping its guard leaves the other's in place.
    #[tokio::test]
    async fn guards_of_interleaved_tasks_stay_apart() {
        let (_a, _b, sa, sb) = two_stacks().await;
        // Guards are not `Send`: tasks that hold one across an await are local.
        let local = tokio::task::LocalSet::new();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let first = local.spawn_local({
            let sa = sa.clone();
            async move {
                let guard = sa.enter();
                tokio::task::yield_now().await;
                let seen = synack::Stack::try_current().map(|s| s.addr());
                drop(guard);
                tx.send(()).unwrap();
                seen
            }
        });
        let second = local.spawn_local({
            let sb = sb.clone();
            async move {
                let _guard = sb.enter();
                rx.await.unwrap();
                synack::Stack::try_current().map(|s| s.addr())
            }
        });
        local.await;
        assert_eq!(first.await.unwrap(), Some(sa.addr()));
        assert_eq!(second.await.unwrap(), Some(sb.addr()));
        assert!(synack::Stack::try_current().is_none());
    }

    /// `Stack::scope` carries the stack into tasks spawned on a multi-thread
    /// runtime, whichever worker polls them.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn scope_across_spawned_tasks() {
        let env = Env::synack();
        let l = env
            .server(synack::net::TcpListener::bind((env.ip, 0)))
            .await
            .unwrap();
        let addr = l.local_addr().unwrap();
        let tasks: Vec<_> = (0..8)
            .map(|_| tokio::spawn(env.client(async move { TcpStream::connect(addr).await })))
            .collect();
        for _ in 0..8 {
            l.accept().await.unwrap();
        }
        for t in tasks {
            let c = t.await.unwrap().unwrap();
            assert_eq!(c.peer_addr().unwrap(), addr);
        }
    }

    /// A name missing from the host table.
    #[tokio::test]
    async fn unknown_name() {
        let env = Env::synack();
        let err = env
            .client(TcpStream::connect(("nowhere.example", 80)))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }
}
