//! A behaviour battery: every test body runs twice, on tokio::net over the
//! kernel's 127.0.0.1 and on synack::net over a MemoryLink between two
//! stacks, and asserts the same outcome on both.

mod dual;

use dual::Env;

/// `n` bytes of a recognisable pattern.
fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8).collect()
}

macro_rules! battery {
    ($module:ident, $($net:ident)::+, $env:expr) => {
        mod $module {
            use std::io;
            use std::net::SocketAddr;

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

    /// Without a current stack the stack-less calls fail, naming the fix.
    #[tokio::test]
    async fn no_current_stack() {
        let err = TcpStream::connect("192.0.2.1:80").await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        assert!(err.to_string().contains("enter"), "{err}");
    }

    /// Guards nest; the innermost stack is current.
    #[tokio::test]
    async fn enter_nests() {
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
