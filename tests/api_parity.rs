//! API parity with tokio::net: every body below is compiled twice, once with
//! `use tokio::net::...` and once with `use synack::net::...`, and run on the
//! kernel's loopback and on two synack stacks respectively. A method missing
//! from synack::net, or with another signature, fails the build; results are
//! bound to explicitly typed variables so that return types are checked too.

mod dual;

use dual::Env;

macro_rules! parity {
    ($module:ident, $($net:ident)::+, $env:expr) => {
        mod $module {
            #![allow(unused_imports)]

            use std::future::poll_fn;
            use std::io::{self, IoSlice, IoSliceMut};
            use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};

            use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest, ReadBuf, Ready};

            use $($net)::+::tcp::*;
            use $($net)::+::{lookup_host, TcpListener, TcpSocket, TcpStream, ToSocketAddrs};

            use super::*;

            fn env() -> Env {
                $env
            }

            fn v4(ip: IpAddr) -> Ipv4Addr {
                match ip {
                    IpAddr::V4(v4) => v4,
                    IpAddr::V6(_) => unreachable!("both networks are IPv4"),
                }
            }

            /// A connected pair: (client, server).
            async fn pair(env: &Env) -> io::Result<(TcpStream, TcpStream)> {
                let l = env.server(TcpListener::bind((env.ip, 0))).await?;
                let addr = l.local_addr()?;
                let (c, a) = tokio::join!(env.client(TcpStream::connect(addr)), l.accept());
                Ok((c?, a?.0))
            }

            #[tokio::test]
            async fn listener() -> io::Result<()> {
                let env = env();
                let l: TcpListener = env.server(TcpListener::bind((env.ip, 0))).await?;
                let addr: SocketAddr = l.local_addr()?;
                assert_eq!(addr.ip(), env.ip);
                let () = l.set_ttl(42)?;
                let ttl: u32 = l.ttl()?;
                assert_eq!(ttl, 42);
                let accept = poll_fn(|cx| l.poll_accept(cx));
                let (c, a) = tokio::join!(env.client(TcpStream::connect(addr)), accept);
                let c: TcpStream = c?;
                let (s, peer): (TcpStream, SocketAddr) = a?;
                assert_eq!(peer, c.local_addr()?);
                assert_eq!(s.ttl()?, 42, "accepted connections inherit the listener's TTL");
                let (c2, a2) = tokio::join!(env.client(TcpStream::connect(addr)), l.accept());
                assert_eq!(a2?.1, c2?.local_addr()?);
                Ok(())
            }

            #[tokio::test]
            async fn stream_options() -> io::Result<()> {
                let env = env();
                let (c, s) = pair(&env).await?;
                let local: SocketAddr = c.local_addr()?;
                let peer: SocketAddr = c.peer_addr()?;
                assert_eq!(local, s.peer_addr()?);
                assert_eq!(peer, s.local_addr()?);
                let err: Option<io::Error> = c.take_error()?;
                assert!(err.is_none());
                let nodelay: bool = c.nodelay()?;
                assert!(!nodelay);
                let () = c.set_nodelay(true)?;
                assert!(c.nodelay()?);
                let ttl: u32 = c.ttl()?;
                assert_eq!(ttl, 64);
                let () = c.set_ttl(7)?;
                assert_eq!(c.ttl()?, 7);
                let quickack: bool = c.quickack()?;
                let () = c.set_quickack(!quickack)?;
                assert_eq!(c.quickack()?, !quickack);
                let linger: Option<std::time::Duration> = c.linger()?;
                assert_eq!(linger, None);
                let () = c.set_zero_linger()?;
                assert_eq!(c.linger()?, Some(std::time::Duration::ZERO));
                Ok(())
            }

            #[tokio::test]
            async fn readiness_and_try_io() -> io::Result<()> {
                let env = env();
                let (c, s) = pair(&env).await?;
                let mut one = [0u8; 1];
                let e = s.try_read(&mut one).unwrap_err();
                assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
                let r: Ready = c.ready(Interest::READABLE | Interest::WRITABLE).await?;
                assert!(r.is_writable() && !r.is_readable());
                let () = c.writable().await?;
                let () = poll_fn(|cx| c.poll_write_ready(cx)).await?;
                let n: usize = c.try_write(b"ab")?;
                assert_eq!(n, 2);
                let n: usize = c.try_write_vectored(&[IoSlice::new(b"c"), IoSlice::new(b"de")])?;
                assert_eq!(n, 3);
                let n: usize = c.try_io(Interest::WRITABLE, || c.try_write(b"f"))?;
                assert_eq!(n, 1);

                let () = s.readable().await?;
                let () = poll_fn(|cx| s.poll_read_ready(cx)).await?;
                let mut peeked = [0u8; 1];
                let n: usize = s.peek(&mut peeked).await?;
                assert_eq!((n, peeked), (1, *b"a"));
                let n: usize = poll_fn(|cx| s.poll_peek(cx, &mut ReadBuf::new(&mut peeked))).await?;
                assert_eq!((n, peeked), (1, *b"a"));
                let n: usize = s.async_io(Interest::READABLE, || s.try_read(&mut one)).await?;
                assert_eq!((n, one), (1, *b"a"));
                let mut two = [0u8; 1];
                let n: usize = s
                    .async_io(Interest::READABLE, || {
                        s.try_read_vectored(&mut [IoSliceMut::new(&mut two)])
                    })
                    .await?;
                assert_eq!((n, two), (1, *b"b"));
                let n: usize = s
                    .async_io(Interest::READABLE, || {
                        s.try_io(Interest::READABLE, || s.try_read(&mut one))
                    })
                    .await?;
                assert_eq!((n, one), (1, *b"c"));
                let mut rest = Vec::new();
                while rest.len() < 3 {
                    let _: usize = s.async_io(Interest::READABLE, || s.try_read_buf(&mut rest)).await?;
                }
                assert_eq!(rest, b"def");
                Ok(())
            }

            #[tokio::test]
            async fn async_read_write() -> io::Result<()> {
                let env = env();
                let (mut c, mut s) = pair(&env).await?;
                assert!(tokio::io::AsyncWrite::is_write_vectored(&c));
                let mut sent = 0;
                while sent < 5 {
                    let bufs = [IoSlice::new(b"hel"), IoSlice::new(b"lo")];
                    let mut skip = sent;
                    let rest: Vec<IoSlice<'_>> = bufs
                        .iter()
                        .filter_map(|b| {
                            if skip >= b.len() {
                                skip -= b.len();
                                None
                            } else {
                                let s = IoSlice::new(&b[skip..]);
                                skip = 0;
                                Some(s)
                            }
                        })
                        .collect();
                    sent += c.write_vectored(&rest).await?;
                }
                c.flush().await?;
                c.shutdown().await?;
                let mut got = String::new();
                s.read_to_string(&mut got).await?;
                assert_eq!(got, "hello");
                Ok(())
            }

            #[tokio::test]
            async fn borrowed_halves() -> io::Result<()> {
                let env = env();
                let (mut c, mut s) = pair(&env).await?;
                {
                    let (r, mut w): (ReadHalf<'_>, WriteHalf<'_>) = s.split();
                    let _: &TcpStream = w.as_ref();
                    let _: SocketAddr = w.local_addr()?;
                    let _: SocketAddr = w.peer_addr()?;
                    let _: Ready = w.ready(Interest::WRITABLE).await?;
                    let () = w.writable().await?;
                    let n: usize = w.try_write(b"x")?;
                    let m: usize = w.try_write_vectored(&[IoSlice::new(b"y")])?;
                    assert_eq!(n + m, 2);
                    w.write_all(b"z").await?;
                    let _: &TcpStream = r.as_ref();
                    let _: SocketAddr = r.local_addr()?;
                    let _: SocketAddr = r.peer_addr()?;
                }
                let mut buf = [0u8; 3];
                c.read_exact(&mut buf).await?;
                assert_eq!(&buf, b"xyz");
                c.write_all(b"1234").await?;
                let (mut r, _w) = s.split();
                let _: Ready = r.ready(Interest::READABLE).await?;
                let () = r.readable().await?;
                let mut one = [0u8; 1];
                let n: usize = r.peek(&mut one).await?;
                assert_eq!(n, 1);
                let n: usize = poll_fn(|cx| r.poll_peek(cx, &mut ReadBuf::new(&mut one))).await?;
                assert_eq!((n, one), (1, *b"1"));
                let n: usize = r.try_read(&mut one)?;
                assert_eq!((n, one), (1, *b"1"));
                let mut got = Vec::new();
                while got.len() < 3 {
                    r.readable().await?;
                    let mut b = [0u8; 1];
                    match r.try_read_vectored(&mut [IoSliceMut::new(&mut b)]) {
                        Ok(n) => got.extend_from_slice(&b[..n]),
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                        Err(e) => return Err(e),
                    }
                    match r.try_read_buf(&mut got) {
                        Ok(_) => {}
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                        Err(e) => return Err(e),
                    }
                }
                assert_eq!(got, b"234");
                Ok(())
            }

            #[tokio::test]
            async fn owned_halves() -> io::Result<()> {
                let env = env();
                let (mut c, s) = pair(&env).await?;
                let (mut r, mut w): (OwnedReadHalf, OwnedWriteHalf) = s.into_split();
                let _: &TcpStream = r.as_ref();
                let _: &TcpStream = w.as_ref();
                let _: (SocketAddr, SocketAddr) = (r.local_addr()?, r.peer_addr()?);
                let _: (SocketAddr, SocketAddr) = (w.local_addr()?, w.peer_addr()?);
                let _: Ready = w.ready(Interest::WRITABLE).await?;
                let () = w.writable().await?;
                let n: usize = w.try_write(b"a")?;
                let m: usize = w.try_write_vectored(&[IoSlice::new(b"b")])?;
                assert_eq!(n + m, 2);
                w.write_all(b"c").await?;
                let mut buf = [0u8; 3];
                c.read_exact(&mut buf).await?;
                assert_eq!(&buf, b"abc");

                c.write_all(b"wxyz").await?;
                let _: Ready = r.ready(Interest::READABLE).await?;
                let () = r.readable().await?;
                let mut one = [0u8; 1];
                let n: usize = r.peek(&mut one).await?;
                assert_eq!(n, 1);
                let n: usize = poll_fn(|cx| r.poll_peek(cx, &mut ReadBuf::new(&mut one))).await?;
                assert_eq!((n, one), (1, *b"w"));
                let n: usize = r.try_read(&mut one)?;
                assert_eq!((n, one), (1, *b"w"));
                let mut got = Vec::new();
                while got.len() < 3 {
                    r.readable().await?;
                    let mut b = [0u8; 1];
                    match r.try_read_vectored(&mut [IoSliceMut::new(&mut b)]) {
                        Ok(n) => got.extend_from_slice(&b[..n]),
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                        Err(e) => return Err(e),
                    }
                    match r.try_read_buf(&mut got) {
                        Ok(_) => {}
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                        Err(e) => return Err(e),
                    }
                }
                assert_eq!(got, b"xyz");

                // Halves of different streams do not reunite; the error gives them back.
                let (c2, s2) = pair(&env).await?;
                let (r2, w2) = s2.into_split();
                let err: ReuniteError = r.reunite(w2).unwrap_err();
                let _: &dyn std::error::Error = &err;
                assert!(!err.to_string().is_empty());
                let ReuniteError(r, w2) = err;
                let err = w.reunite(r2).unwrap_err();
                let ReuniteError(r2, w) = err;
                let s: TcpStream = r.reunite(w).map_err(|_| io::Error::other("reunite"))?;
                let s2: TcpStream = w2.reunite(r2).map_err(|_| io::Error::other("reunite"))?;
                assert_eq!(s.peer_addr()?, c.local_addr()?);
                assert_eq!(s2.peer_addr()?, c2.local_addr()?);
                let (_r, w) = s2.into_split();
                let () = w.forget();
                Ok(())
            }

            #[tokio::test]
            async fn socket() -> io::Result<()> {
                let env = env();
                let _: io::Result<TcpSocket> = TcpSocket::new_v6();
                let sock: TcpSocket = env.server(async { TcpSocket::new_v4() }).await?;
                let unbound: SocketAddr = sock.local_addr()?;
                assert_eq!(unbound, SocketAddr::from(([0, 0, 0, 0], 0)));
                let () = sock.set_reuseaddr(true)?;
                let reuseaddr: bool = sock.reuseaddr()?;
                assert!(reuseaddr);
                let () = sock.set_reuseport(false)?;
                let reuseport: bool = sock.reuseport()?;
                assert!(!reuseport);
                let () = sock.set_send_buffer_size(64 * 1024)?;
                let n: u32 = sock.send_buffer_size()?;
                assert!(n >= 64 * 1024);
                let () = sock.set_recv_buffer_size(64 * 1024)?;
                let n: u32 = sock.recv_buffer_size()?;
                assert!(n >= 64 * 1024);
                let () = sock.set_nodelay(true)?;
                let nodelay: bool = sock.nodelay()?;
                assert!(nodelay);
                let () = sock.set_keepalive(true)?;
                let keepalive: bool = sock.keepalive()?;
                assert!(keepalive);
                let () = sock.set_zero_linger()?;
                let linger: Option<std::time::Duration> = sock.linger()?;
                assert_eq!(linger, Some(std::time::Duration::ZERO));
                let err: Option<io::Error> = sock.take_error()?;
                assert!(err.is_none());
                let () = sock.bind(SocketAddr::new(env.ip, 0))?;
                let bound = sock.local_addr()?;
                assert_eq!(bound.ip(), env.ip);
                assert_ne!(bound.port(), 0);
                let l: TcpListener = sock.listen(16)?;
                assert_eq!(l.local_addr()?, bound);

                let csock: TcpSocket = env.client(async { TcpSocket::new_v4() }).await?;
                csock.set_nodelay(true)?;
                let connect = env.client(csock.connect(bound));
                let (c, a) = tokio::join!(connect, l.accept());
                let c: TcpStream = c?;
                let (s, _) = a?;
                assert!(c.nodelay()?);
                assert!(s.nodelay()?, "accepted connections inherit TCP_NODELAY");
                Ok(())
            }

            fn to_addrs<A: ToSocketAddrs>(_: A) {}

            #[tokio::test]
            async fn addresses_and_lookup() -> io::Result<()> {
                // Every ToSocketAddrs type tokio takes.
                let v6 = std::net::SocketAddrV6::new(std::net::Ipv6Addr::LOCALHOST, 1, 0, 0);
                to_addrs(SocketAddr::V6(v6));
                to_addrs(v6);
                to_addrs((std::net::Ipv6Addr::LOCALHOST, 1));
                to_addrs(&&"x:1");

                let env = env();
                let l = env.server(TcpListener::bind((env.ip, 0))).await?;
                let addr = l.local_addr()?;
                let port = addr.port();
                let ip4 = v4(env.ip);
                let list = [addr];
                let text = format!("{}:{port}", env.name);
                for i in 0..10 {
                    let connect = async {
                        match i {
                            0 => TcpStream::connect(addr).await,
                            1 => TcpStream::connect(SocketAddrV4::new(ip4, port)).await,
                            2 => TcpStream::connect((env.ip, port)).await,
                            3 => TcpStream::connect((ip4, port)).await,
                            4 => TcpStream::connect((env.name, port)).await,
                            5 => TcpStream::connect((env.name.to_string(), port)).await,
                            6 => TcpStream::connect(text.as_str()).await,
                            7 => TcpStream::connect(text.clone()).await,
                            8 => TcpStream::connect(&list[..]).await,
                            _ => TcpStream::connect(&addr).await,
                        }
                    };
                    let (c, a) = tokio::join!(env.client(connect), l.accept());
                    assert_eq!(c?.peer_addr()?.port(), port, "form {i}");
                    a?;
                }
                let found: Vec<SocketAddr> = env
                    .client(async { lookup_host((env.name, port)).await.map(|i| i.collect()) })
                    .await?;
                assert!(found.contains(&addr), "{found:?}");
                Ok(())
            }
        }
    };
}

parity!(tokio_net, tokio::net, Env::kernel());
parity!(synack_net, synack::net, Env::synack());

/// synack's stream and halves also implement futures' `AsyncRead`/`AsyncWrite`
/// (tokio's need a compat layer for that, so this part has no tokio twin).
mod futures_io {
    use std::io;

    use futures::io::{AsyncReadExt, AsyncWriteExt};
    use synack::net::{TcpListener, TcpStream};

    use super::Env;

    #[tokio::test]
    async fn stream_and_halves() -> io::Result<()> {
        let env = Env::synack();
        let l = env.server(TcpListener::bind((env.ip, 0))).await?;
        let addr = l.local_addr()?;
        let (c, a) = tokio::join!(env.client(TcpStream::connect(addr)), l.accept());
        let mut c = c?;
        let (s, _) = a?;
        AsyncWriteExt::write_all(&mut c, b"ping").await?;
        let (mut r, mut w) = s.into_split();
        let mut buf = [0u8; 4];
        AsyncReadExt::read_exact(&mut r, &mut buf).await?;
        assert_eq!(&buf, b"ping");
        AsyncWriteExt::write_all(&mut w, b"pong").await?;
        AsyncWriteExt::close(&mut w).await?;
        let mut got = Vec::new();
        AsyncReadExt::read_to_end(&mut c, &mut got).await?;
        assert_eq!(got, b"pong");
        let mut s = r.reunite(w).map_err(|_| io::Error::other("reunite"))?;
        let (mut br, _bw) = TcpStream::split(&mut s);
        AsyncWriteExt::close(&mut c).await?;
        let mut rest = Vec::new();
        AsyncReadExt::read_to_end(&mut br, &mut rest).await?;
        assert!(rest.is_empty());
        Ok(())
    }
}

/// The framework integrations (features `axum`, `hyper`, `tonic`): the same
/// body with tokio's types and with synack's — axum serves the listener,
/// hyper's client talks over a stream, and the stream is tonic's `Connected`
/// and hyper-util's `Connection` — so code written for one compiles for the
/// other.
macro_rules! framework_parity {
    ($module:ident, $($net:ident)::+, $env:expr) => {
        mod $module {
            use std::net::SocketAddr;

            use axum::extract::ConnectInfo;
            use axum::serve::ListenerExt;
            use http_body_util::{BodyExt, Empty};
            use hyper::body::Bytes;
            use hyper_util::client::legacy::connect::Connection;
            use hyper_util::rt::TokioIo;
            use tonic::transport::server::{Connected, TcpConnectInfo};

            use $($net)::+::{TcpListener, TcpStream};

            use super::Env;

            fn connected_info<T: Connected<ConnectInfo = TcpConnectInfo>>(s: &T) -> TcpConnectInfo {
                s.connect_info()
            }

            fn connection<T: Connection>(s: &T) -> bool {
                !s.connected().is_proxied()
            }

            #[tokio::test]
            async fn axum_hyper_tonic() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
                let env = $env;
                let listener = env.server(TcpListener::bind((env.ip, 0))).await?;
                let addr = listener.local_addr()?;
                let app = axum::Router::new().route(
                    "/",
                    axum::routing::get(|ConnectInfo(p): ConnectInfo<SocketAddr>| async move {
                        p.to_string()
                    }),
                );
                let listener = listener.tap_io(|_s: &mut TcpStream| {});
                tokio::spawn(
                    axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
                        .into_future(),
                );
                let stream: TcpStream = env.client(TcpStream::connect(addr)).await?;
                let info: TcpConnectInfo = connected_info(&stream);
                assert_eq!(info.remote_addr, Some(addr));
                assert!(connection(&stream));
                let local = stream.local_addr()?;
                let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
                tokio::spawn(conn);
                let res = send
                    .send_request(
                        hyper::Request::get("/").header("host", "x").body(Empty::<Bytes>::new())?,
                    )
                    .await?;
                let body = res.into_body().collect().await?.to_bytes();
                assert_eq!(body, local.to_string().as_bytes());
                Ok(())
            }
        }
    };
}

framework_parity!(tokio_frameworks, tokio::net, Env::kernel());
framework_parity!(synack_frameworks, synack::net, Env::synack());
