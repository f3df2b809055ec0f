//! A UDP behaviour battery, the behaviours tokio's own `tests/udp.rs`
//! relies on: every body runs on tokio::net over the kernel's 127.0.0.1, on
//! synack::net over a MemoryLink between two stacks, and on synack::net
//! within one stack over its loopback, with the same assertions.
//!
//! The receiver ("server") binds `env.ip`, the sender ("client")
//! `env.client_ip`.

mod dual;

use std::net::SocketAddr;

use dual::Env;

const MSG: &[u8] = b"hello";

macro_rules! udp_battery {
    ($module:ident, $($net:ident)::+, $env:expr) => {
        mod $module {
            use std::future::poll_fn;
            use std::io;
            use std::sync::Arc;
            use std::time::Duration;

            use tokio::io::{Interest, ReadBuf};

            use $($net)::+::UdpSocket;

            use super::*;

            fn env() -> Env {
                $env
            }

            /// A receiver on the server side and a sender on the client side,
            /// both unconnected: (sender, receiver).
            async fn sockets(env: &Env) -> io::Result<(UdpSocket, UdpSocket)> {
                let receiver = env.server(UdpSocket::bind((env.ip, 0))).await?;
                let sender = env.client(UdpSocket::bind((env.client_ip, 0))).await?;
                Ok((sender, receiver))
            }

            /// The pair connected to each other.
            async fn connected(env: &Env) -> io::Result<(UdpSocket, UdpSocket)> {
                let (sender, receiver) = sockets(env).await?;
                sender.connect(receiver.local_addr()?).await?;
                receiver.connect(sender.local_addr()?).await?;
                Ok((sender, receiver))
            }

            /// `bind` to port 0 picks a port on the address asked for.
            #[tokio::test]
            async fn bind_picks_a_port() -> io::Result<()> {
                let env = env();
                let (sender, receiver) = sockets(&env).await?;
                let r = receiver.local_addr()?;
                let s = sender.local_addr()?;
                assert_eq!(r.ip(), env.ip);
                assert_eq!(s.ip(), env.client_ip);
                assert_ne!(r.port(), 0);
                assert_ne!(s.port(), 0);
                Ok(())
            }

            /// Connected sockets: `send` reaches `recv`, and `peer_addr`
            /// names the other side (unconnected, `NotConnected`).
            /// (udp::send_recv; peer_addr is beyond tokio's tests)
            #[tokio::test]
            async fn connected_send_and_recv() -> io::Result<()> {
                let env = env();
                let (sender, receiver) = sockets(&env).await?;
                let err = sender.peer_addr().unwrap_err();
                assert_eq!(err.kind(), io::ErrorKind::NotConnected);
                sender.connect(receiver.local_addr()?).await?;
                receiver.connect(sender.local_addr()?).await?;
                assert_eq!(sender.peer_addr()?, receiver.local_addr()?);
                assert_eq!(receiver.peer_addr()?, sender.local_addr()?);
                assert_eq!(sender.send(MSG).await?, MSG.len());
                let mut buf = [0u8; 32];
                let n = receiver.recv(&mut buf).await?;
                assert_eq!(&buf[..n], MSG);
                Ok(())
            }

            /// The same through `poll_send` and `poll_recv`. (udp::send_recv_poll)
            #[tokio::test]
            async fn connected_poll_send_and_poll_recv() -> io::Result<()> {
                let env = env();
                let (sender, receiver) = connected(&env).await?;
                let n = poll_fn(|cx| sender.poll_send(cx, MSG)).await?;
                assert_eq!(n, MSG.len());
                let mut buf = [0u8; 32];
                let mut read = ReadBuf::new(&mut buf);
                poll_fn(|cx| receiver.poll_recv(cx, &mut read)).await?;
                assert_eq!(read.filled(), MSG);
                Ok(())
            }

            /// A connected socket that sends to a closed port learns of it
            /// (ICMP port unreachable): its next `recv` fails with
            /// `ConnectionRefused`. (udp::send_to_recv_closed_returns_err)
            /// On synack this needs the server stack to answer with ICMP
            /// port unreachable and the client stack to hand the error to
            /// the connected socket.
            #[tokio::test]
            async fn recv_after_sending_to_a_closed_port_is_refused() -> io::Result<()> {
                let env = env();
                let (sender, receiver) = sockets(&env).await?;
                let gone = receiver.local_addr()?;
                drop(receiver);
                sender.connect(gone).await?;
                sender.send(MSG).await?;
                let mut buf = [0u8; 32];
                let err = tokio::time::timeout(Duration::from_secs(5), sender.recv(&mut buf))
                    .await
                    .expect("no error within 5 s")
                    .unwrap_err();
                assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
                Ok(())
            }

            /// `send_to` reaches `recv_from`, which names the sender.
            /// (udp::send_to_recv_from)
            #[tokio::test]
            async fn send_to_and_recv_from() -> io::Result<()> {
                let env = env();
                let (sender, receiver) = sockets(&env).await?;
                let n = sender.send_to(MSG, receiver.local_addr()?).await?;
                assert_eq!(n, MSG.len());
                let mut buf = [0u8; 32];
                let (n, from) = receiver.recv_from(&mut buf).await?;
                assert_eq!(&buf[..n], MSG);
                assert_eq!(from, sender.local_addr()?);
                Ok(())
            }

            /// `peek_from` twice sees the same datagram and sender; the
            /// `recv_from` after it still gets it. (udp::send_to_peek_from)
            #[tokio::test]
            async fn peek_from_leaves_the_datagram() -> io::Result<()> {
                let env = env();
                let (sender, receiver) = sockets(&env).await?;
                sender.send_to(MSG, receiver.local_addr()?).await?;
                let me = sender.local_addr()?;
                for _ in 0..2 {
                    let mut buf = [0u8; 32];
                    let (n, from) = receiver.peek_from(&mut buf).await?;
                    assert_eq!((&buf[..n], from), (MSG, me));
                }
                let mut buf = [0u8; 32];
                let (n, from) = receiver.recv_from(&mut buf).await?;
                assert_eq!((&buf[..n], from), (MSG, me));
                Ok(())
            }

            /// One socket shared by two tasks through an `Arc`: one sends to
            /// the socket's own address, the other receives. (udp::split)
            /// NEEDS LOOPBACK: a synack stack delivering to its own address.
            #[tokio::test]
            async fn shared_socket_sends_to_itself() -> io::Result<()> {
                let env = env();
                let socket = Arc::new(env.server(UdpSocket::bind((env.ip, 0))).await?);
                let me = socket.local_addr()?;
                let tx = socket.clone();
                let send = tokio::spawn(async move { tx.send_to(MSG, me).await });
                let mut buf = [0u8; 32];
                let (n, from) = socket.recv_from(&mut buf).await?;
                assert_eq!(&buf[..n], MSG);
                assert_eq!(from, me);
                send.await.map_err(io::Error::other)??;
                Ok(())
            }

            /// An echo server made of two tasks sharing one socket (one
            /// receives and queues, one sends back); a client gets its
            /// datagram back from the server's address. (udp::split_chan)
            #[tokio::test]
            async fn echo_through_a_shared_socket() -> io::Result<()> {
                let env = env();
                let server = Arc::new(env.server(UdpSocket::bind((env.ip, 0))).await?);
                let server_addr = server.local_addr()?;
                let (queue, mut queued) = tokio::sync::mpsc::channel::<(Vec<u8>, SocketAddr)>(64);
                let rx = server.clone();
                let receiving = tokio::spawn(async move {
                    let mut buf = [0u8; 64];
                    loop {
                        let (n, from) = rx.recv_from(&mut buf).await?;
                        if queue.send((buf[..n].to_vec(), from)).await.is_err() {
                            return io::Result::Ok(());
                        }
                    }
                });
                let sending = tokio::spawn(async move {
                    while let Some((data, to)) = queued.recv().await {
                        server.send_to(&data, to).await?;
                    }
                    io::Result::Ok(())
                });
                let client = env.client(UdpSocket::bind((env.client_ip, 0))).await?;
                for i in 0..8u8 {
                    let msg = [b'e', b'c', b'h', b'o', i];
                    client.send_to(&msg, server_addr).await?;
                    let mut buf = [0u8; 64];
                    let (n, from) = client.recv_from(&mut buf).await?;
                    assert_eq!(&buf[..n], &msg);
                    assert_eq!(from, server_addr);
                }
                receiving.abort();
                sending.abort();
                Ok(())
            }

            /// `try_send_to` on an unconnected socket, then `try_send` once it
            /// is connected, then `try_send` from a plain thread outside the
            /// runtime: every datagram reaches the receiver, which is
            /// connected to the sender. (udp::try_send_spawn)
            #[tokio::test]
            async fn try_send_before_and_after_connect() -> io::Result<()> {
                const MORE: &[u8] = b"world!";
                let env = env();
                let (sender, receiver) = sockets(&env).await?;
                let to = receiver.local_addr()?;
                receiver.connect(sender.local_addr()?).await?;
                sender.writable().await?;
                assert_eq!(sender.try_send_to(MSG, to)?, MSG.len());
                let mut buf = [0u8; 32];
                let n = receiver.recv(&mut buf).await?;
                assert_eq!(&buf[..n], MSG);
                sender.connect(to).await?;
                assert_eq!(sender.try_send(MORE)?, MORE.len());
                let n = receiver.recv(&mut buf).await?;
                assert_eq!(&buf[..n], MORE);
                // No runtime and no current stack on this thread.
                let sent = std::thread::spawn(move || sender.try_send(MSG))
                    .join()
                    .expect("the sending thread panicked")?;
                assert_eq!(sent, MSG.len());
                let n = receiver.recv(&mut buf).await?;
                assert_eq!(&buf[..n], MSG);
                Ok(())
            }

            /// Connected `try_send`/`try_recv` rounds, each waiting on
            /// `writable`/`readable` and retrying on `WouldBlock`.
            /// (udp::try_send_recv)
            #[tokio::test]
            async fn try_send_and_try_recv_rounds() -> io::Result<()> {
                let env = env();
                let (client, server) = connected(&env).await?;
                for round in 0..5u8 {
                    let msg = [b'r', b'o', b'u', b'n', b'd', round];
                    let sent = loop {
                        client.writable().await?;
                        match client.try_send(&msg) {
                            Ok(n) => break n,
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                            Err(e) => return Err(e),
                        }
                    };
                    assert_eq!(sent, msg.len());
                    let mut buf = [0u8; 512];
                    let got = loop {
                        server.readable().await?;
                        match server.try_recv(&mut buf) {
                            Ok(n) => break n,
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                            Err(e) => return Err(e),
                        }
                    };
                    assert_eq!(&buf[..got], &msg);
                }
                Ok(())
            }

            /// Unconnected `try_send_to`/`try_recv_from` rounds; the receiver
            /// learns the sender each time. (udp::try_send_to_recv_from)
            #[tokio::test]
            async fn try_send_to_and_try_recv_from_rounds() -> io::Result<()> {
                let env = env();
                let (client, server) = sockets(&env).await?;
                let to = server.local_addr()?;
                let me = client.local_addr()?;
                for round in 0..5u8 {
                    let msg = [b'r', b'o', b'u', b'n', b'd', round];
                    loop {
                        client.writable().await?;
                        match client.try_send_to(&msg, to) {
                            Ok(n) => {
                                assert_eq!(n, msg.len());
                                break;
                            }
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                            Err(e) => return Err(e),
                        }
                    }
                    let mut buf = [0u8; 512];
                    let (n, from) = loop {
                        server.readable().await?;
                        match server.try_recv_from(&mut buf) {
                            Ok(got) => break got,
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                            Err(e) => return Err(e),
                        }
                    };
                    assert_eq!((&buf[..n], from), (&msg[..], me));
                }
                Ok(())
            }

            /// Nothing queued: `try_recv_from` is `WouldBlock`; `ready` says
            /// writable, not readable; after a datagram, readable.
            /// (beyond tokio's udp.rs, which never calls `ready` or checks
            /// the empty case)
            #[tokio::test]
            async fn readiness_of_an_empty_and_a_fed_socket() -> io::Result<()> {
                let env = env();
                let (sender, receiver) = sockets(&env).await?;
                let mut buf = [0u8; 32];
                let err = receiver.try_recv_from(&mut buf).unwrap_err();
                assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
                let r = receiver.ready(Interest::READABLE | Interest::WRITABLE).await?;
                assert!(r.is_writable());
                assert!(!r.is_readable());
                sender.send_to(MSG, receiver.local_addr()?).await?;
                let r = receiver.ready(Interest::READABLE).await?;
                assert!(r.is_readable());
                let (n, _) = receiver.try_recv_from(&mut buf)?;
                assert_eq!(&buf[..n], MSG);
                Ok(())
            }

            /// Options read back as set, from their defaults: broadcast off,
            /// TTL 64, no pending error. (udp::broadcast, udp::ttl)
            #[tokio::test]
            async fn options_round_trip() -> io::Result<()> {
                let env = env();
                let socket = env.server(UdpSocket::bind((env.ip, 0))).await?;
                assert!(!socket.broadcast()?);
                socket.set_broadcast(true)?;
                assert!(socket.broadcast()?);
                assert_eq!(socket.ttl()?, 64);
                socket.set_ttl(40)?;
                assert_eq!(socket.ttl()?, 40);
                assert!(socket.take_error()?.is_none());
                Ok(())
            }
        }
    };
}

udp_battery!(tokio_net, tokio::net, Env::kernel());
udp_battery!(synack_net, synack::net, Env::synack());
udp_battery!(synack_loopback, synack::net, Env::synack_loopback());

/// The rest of tokio's udp.rs behaviours: the `poll_*_from` and `*peek*`
/// families, the `*_buf` receives, the `poll_*_ready` pair. (Multicast and
/// TOS options are not in synack yet: see the README's status table.)
macro_rules! udp_battery_more {
    ($module:ident, $($net:ident)::+, $env:expr) => {
        mod $module {
            use std::future::poll_fn;
            use std::io;

            use tokio::io::ReadBuf;

            use $($net)::+::UdpSocket;

            use super::*;

            fn env() -> Env {
                $env
            }

            async fn sockets(env: &Env) -> io::Result<(UdpSocket, UdpSocket)> {
                let receiver = env.server(UdpSocket::bind((env.ip, 0))).await?;
                let sender = env.client(UdpSocket::bind((env.client_ip, 0))).await?;
                Ok((sender, receiver))
            }

            /// poll_send_to, poll_peek_from (twice), poll_recv_from.
            /// (udp::send_to_recv_from_poll, udp::send_to_peek_from_poll)
            #[tokio::test]
            async fn poll_send_to_peek_from_and_recv_from() -> io::Result<()> {
                let env = env();
                let (sender, receiver) = sockets(&env).await?;
                let to = receiver.local_addr()?;
                let me = sender.local_addr()?;
                poll_fn(|cx| sender.poll_send_to(cx, MSG, to)).await?;
                for _ in 0..2 {
                    let mut buf = [0u8; 32];
                    let mut read = ReadBuf::new(&mut buf);
                    let from = poll_fn(|cx| receiver.poll_peek_from(cx, &mut read)).await?;
                    assert_eq!((read.filled(), from), (MSG, me));
                }
                let mut buf = [0u8; 32];
                let mut read = ReadBuf::new(&mut buf);
                let from = poll_fn(|cx| receiver.poll_recv_from(cx, &mut read)).await?;
                assert_eq!((read.filled(), from), (MSG, me));
                Ok(())
            }

            /// try_peek_from (after readable), then peek_sender,
            /// poll_peek_sender, try_peek_sender all name the sender and leave
            /// the datagram for try_recv_from. (udp::send_to_try_peek_from,
            /// udp::peek_sender, udp::poll_peek_sender, udp::try_peek_sender)
            #[tokio::test]
            async fn peeks_leave_the_datagram() -> io::Result<()> {
                let env = env();
                let (sender, receiver) = sockets(&env).await?;
                let me = sender.local_addr()?;
                sender.send_to(MSG, receiver.local_addr()?).await?;
                let mut buf = [0u8; 32];
                let (n, from) = loop {
                    match receiver.try_peek_from(&mut buf) {
                        Ok(got) => break got,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => receiver.readable().await?,
                        Err(e) => return Err(e),
                    }
                };
                assert_eq!((&buf[..n], from), (MSG, me));
                assert_eq!(receiver.peek_sender().await?, me);
                assert_eq!(poll_fn(|cx| receiver.poll_peek_sender(cx)).await?, me);
                assert_eq!(receiver.try_peek_sender()?, me);
                let (n, from) = receiver.try_recv_from(&mut buf)?;
                assert_eq!((&buf[..n], from), (MSG, me));
                Ok(())
            }

            /// recv_buf / recv_buf_from / try_recv_buf / try_recv_buf_from
            /// into a Vec, with poll_send_ready / poll_recv_ready.
            /// (udp::recv_buf, udp::recv_buf_from, udp::try_recv_buf,
            /// udp::try_recv_buf_from, udp::poll_ready)
            #[tokio::test]
            async fn receives_into_a_bufmut() -> io::Result<()> {
                let env = env();
                let (sender, receiver) = sockets(&env).await?;
                let to = receiver.local_addr()?;
                let me = sender.local_addr()?;
                sender.send_to(MSG, to).await?;
                let mut v = Vec::with_capacity(32);
                let (n, from) = receiver.recv_buf_from(&mut v).await?;
                assert_eq!((n, &v[..], from), (MSG.len(), MSG, me));
                for _ in 0..3 {
                    poll_fn(|cx| sender.poll_send_ready(cx)).await?;
                    sender.try_send_to(MSG, to)?;
                    let (n, from) = loop {
                        poll_fn(|cx| receiver.poll_recv_ready(cx)).await?;
                        let mut v = Vec::with_capacity(512);
                        match receiver.try_recv_buf_from(&mut v) {
                            Ok((n, from)) => {
                                assert_eq!(&v[..n], MSG);
                                break (n, from);
                            }
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                            Err(e) => return Err(e),
                        }
                    };
                    assert_eq!((n, from), (MSG.len(), me));
                }
                sender.connect(to).await?;
                receiver.connect(me).await?;
                sender.send(MSG).await?;
                let mut v = Vec::with_capacity(32);
                assert_eq!(receiver.recv_buf(&mut v).await?, MSG.len());
                assert_eq!(&v[..], MSG);
                sender.send(MSG).await?;
                let mut v = Vec::with_capacity(32);
                let n = loop {
                    receiver.readable().await?;
                    match receiver.try_recv_buf(&mut v) {
                        Ok(n) => break n,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                        Err(e) => return Err(e),
                    }
                };
                assert_eq!(&v[..n], MSG);
                Ok(())
            }
        }
    };
}

udp_battery_more!(tokio_net_more, tokio::net, Env::kernel());
udp_battery_more!(synack_net_more, synack::net, Env::synack());
udp_battery_more!(synack_loopback_more, synack::net, Env::synack_loopback());
