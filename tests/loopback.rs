//! One stack talking to itself: over 127.0.0.1, over `localhost` and over its
//! own address, with a device that counts what it is given and sees nothing;
//! several addresses, added and removed at run time.

use std::collections::VecDeque;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use synack::Stack;
use synack::device::{Capabilities, Device, MemoryLink, MemoryLinkConfig, Packet};
use synack::net::{TcpListener, TcpSocket, TcpStream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const A: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const B: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
const SECOND: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);

/// A device in front of a `MemoryLink` end that counts every packet the
/// stack hands it.
struct Counting {
    inner: MemoryLink,
    sent: Arc<AtomicUsize>,
}

impl Device for Counting {
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    fn poll_recv(
        &mut self,
        cx: &mut Context<'_>,
        out: &mut Vec<Packet>,
        max: usize,
    ) -> Poll<io::Result<usize>> {
        self.inner.poll_recv(cx, out, max)
    }
    fn poll_send(
        &mut self,
        cx: &mut Context<'_>,
        packets: &mut VecDeque<Packet>,
    ) -> Poll<io::Result<usize>> {
        let before = packets.len();
        let r = self.inner.poll_send(cx, packets);
        self.sent
            .fetch_add(before - packets.len(), Ordering::Relaxed);
        r
    }
}

/// A stack on a counting device (its link's other end kept alive), and the count.
fn counted_stack() -> (Stack, Arc<AtomicUsize>, MemoryLink) {
    let (a, b) = MemoryLink::pair(MemoryLinkConfig::default());
    let sent = Arc::new(AtomicUsize::new(0));
    let stack = Stack::new(
        Counting {
            inner: a,
            sent: sent.clone(),
        },
        A,
        24,
    );
    (stack, sent, b)
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

/// Echoes one large message through a listener bound to `bind`, connecting
/// to `target`; returns the server side's (local, peer) addresses.
async fn echo(stack: &Stack, bind: &str, target: &str) -> io::Result<(SocketAddr, SocketAddr)> {
    let _guard = stack.enter();
    let listener = TcpListener::bind(bind).await?;
    let port = listener.local_addr()?.port();
    let target = format!("{target}:{port}");
    let server = async {
        let (mut s, peer) = listener.accept().await?;
        assert_eq!(s.peer_addr()?, peer);
        let mut buf = vec![0u8; 300_000];
        s.read_exact(&mut buf).await?;
        s.write_all(&buf).await?;
        io::Result::Ok((s.local_addr()?, peer))
    };
    let client = async {
        let mut c = TcpStream::connect(target.as_str()).await?;
        let data = pattern(300_000);
        let (mut r, mut w) = c.split();
        let write = async {
            w.write_all(&data).await?;
            io::Result::Ok(())
        };
        let read = async {
            let mut back = vec![0u8; data.len()];
            r.read_exact(&mut back).await?;
            io::Result::Ok(back)
        };
        let (wrote, back) = tokio::join!(write, read);
        wrote?;
        assert!(back? == data, "echo came back different");
        c.local_addr()
    };
    let (server, client) = tokio::join!(server, client);
    let (local, peer) = server?;
    assert_eq!(client?, peer);
    Ok((local, peer))
}

#[tokio::test]
async fn a_stack_talks_to_itself_over_127_0_0_1() -> io::Result<()> {
    let (stack, sent, _b) = counted_stack();
    let (local, peer) = echo(&stack, "127.0.0.1:0", "127.0.0.1").await?;
    assert_eq!(local.ip(), IpAddr::V4(Ipv4Addr::LOCALHOST));
    assert_eq!(peer.ip(), IpAddr::V4(Ipv4Addr::LOCALHOST));
    assert_eq!(
        sent.load(Ordering::Relaxed),
        0,
        "loopback reached the device"
    );
    let stats = stack.stats();
    assert_eq!(stats.tx_packets, 0);
    assert!(stats.loopback_packets > 0);
    Ok(())
}

#[tokio::test]
async fn localhost_and_the_wildcard_listener() -> io::Result<()> {
    let (stack, sent, _b) = counted_stack();
    // "localhost" is 127.0.0.1, as /etc/hosts says.
    let (local, _) = echo(&stack, "localhost:0", "localhost").await?;
    assert_eq!(local.ip(), IpAddr::V4(Ipv4Addr::LOCALHOST));
    // A listener on 0.0.0.0 reached through 127.0.0.1.
    let (local, _) = echo(&stack, "0.0.0.0:0", "127.0.0.1").await?;
    assert_eq!(local.ip(), IpAddr::V4(Ipv4Addr::LOCALHOST));
    // ... and through the stack's own address, from that address.
    let (local, peer) = echo(&stack, "0.0.0.0:0", "192.0.2.1").await?;
    assert_eq!((local.ip(), peer.ip()), (IpAddr::V4(A), IpAddr::V4(A)));
    assert_eq!(
        sent.load(Ordering::Relaxed),
        0,
        "loopback reached the device"
    );
    Ok(())
}

#[tokio::test]
async fn a_wildcard_listener_reports_the_wildcard() -> io::Result<()> {
    let (stack, _sent, _b) = counted_stack();
    let _guard = stack.enter();
    let l = TcpListener::bind("0.0.0.0:0").await?;
    assert!(l.local_addr()?.ip().is_unspecified());
    let s = TcpSocket::new_v4()?;
    s.bind("127.0.0.1:0".parse().unwrap())?;
    assert_eq!(s.local_addr()?.ip(), IpAddr::V4(Ipv4Addr::LOCALHOST));
    // A loopback-bound socket cannot reach another host (Linux: EINVAL).
    let err = s.connect((B, 80).into()).await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    Ok(())
}

#[tokio::test]
async fn a_closed_port_on_loopback_is_refused_at_once() {
    let (stack, sent, _b) = counted_stack();
    let err = TcpStream::connect_on(&stack, "127.0.0.1:9")
        .await
        .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
    assert_eq!(sent.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn addresses_are_added_and_removed_at_run_time() -> io::Result<()> {
    let (a, b) = MemoryLink::pair(MemoryLinkConfig::default());
    let server = Stack::builder(a, A, 24).address(SECOND, 24).build();
    assert_eq!(
        server.addresses(),
        vec![(IpAddr::V4(A), 24), (IpAddr::V4(SECOND), 24)]
    );
    let client = Stack::builder(b, B, 24)
        .address(Ipv4Addr::new(198, 51, 100, 2), 24)
        .build();
    let listener = TcpListener::bind_on(&server, "0.0.0.0:80").await?;
    // Through the second address: the client leaves from its own address
    // on that subnet.
    let (c, s) = tokio::join!(
        TcpStream::connect_on(&client, (SECOND, 80)),
        listener.accept()
    );
    let (mut c, (mut s, peer)) = (c?, s?);
    assert_eq!(s.local_addr()?.ip(), IpAddr::V4(SECOND));
    assert_eq!(peer.ip(), IpAddr::V4(Ipv4Addr::new(198, 51, 100, 2)));
    c.write_all(b"hi").await?;
    let mut buf = [0u8; 2];
    s.read_exact(&mut buf).await?;
    // Removing the address resets its connections, on both ends.
    server.remove_address(SECOND)?;
    let err = s.write_all(b"x").await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::ConnectionAborted);
    let n = c.read(&mut buf).await;
    assert_eq!(n.map_err(|e| e.kind()), Err(io::ErrorKind::ConnectionReset));
    assert_eq!(server.addresses(), vec![(IpAddr::V4(A), 24)]);
    assert_eq!(
        server.remove_address(SECOND).unwrap_err().kind(),
        io::ErrorKind::AddrNotAvailable
    );
    // Added back, it serves again.
    server.add_address(SECOND, 24)?;
    let (c, s) = tokio::join!(
        TcpStream::connect_on(&client, (SECOND, 80)),
        listener.accept()
    );
    assert!(c.is_ok() && s.is_ok());
    assert_eq!(
        server
            .add_address(Ipv4Addr::LOCALHOST, 8)
            .unwrap_err()
            .kind(),
        io::ErrorKind::InvalidInput
    );
    Ok(())
}

/// Runs `busy` (a loop of calls that are all ready at once, as over loopback)
/// beside a task that only records that it ran, on one thread: the loop must
/// let it run before its 1 000 calls are done, as a loop over tokio's own
/// sockets does (tokio's cooperative budget is 128 calls).
async fn yields_while_busy<F, Fut>(busy: F)
where
    F: FnOnce(Arc<AtomicUsize>) -> Fut,
    Fut: std::future::Future<Output = io::Result<usize>>,
{
    let ran = Arc::new(AtomicUsize::new(0));
    let other = tokio::spawn({
        let ran = ran.clone();
        async move { ran.store(1, Ordering::Relaxed) }
    });
    let calls = busy(ran).await.expect("busy loop");
    assert!(
        calls < 1000,
        "a task doing {calls} ready calls never let its neighbour run"
    );
    other.await.expect("neighbour");
}

#[tokio::test(flavor = "current_thread")]
async fn a_busy_udp_sender_over_loopback_yields_to_other_tasks() {
    let (stack, _sent, _peer) = counted_stack();
    let _guard = stack.enter();
    let to = synack::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let from = synack::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let target = to.local_addr().unwrap();
    yields_while_busy(|ran| async move {
        for i in 0..1000 {
            if ran.load(Ordering::Relaxed) == 1 {
                return Ok(i);
            }
            from.send_to(b"x", target).await?;
        }
        Ok(1000)
    })
    .await;
}

#[tokio::test(flavor = "current_thread")]
async fn a_busy_tcp_writer_and_reader_yield_to_other_tasks() -> io::Result<()> {
    let (stack, _sent, _peer) = counted_stack();
    let _guard = stack.enter();
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let mut client = TcpStream::connect(listener.local_addr()?).await?;
    let (mut server, _) = listener.accept().await?;
    // One-byte writes: each fits the send buffer at once.
    yields_while_busy(|ran| {
        let client = &mut client;
        async move {
            for i in 0..1000 {
                if ran.load(Ordering::Relaxed) == 1 {
                    return Ok(i);
                }
                client.write_all(b"x").await?;
            }
            Ok(1000)
        }
    })
    .await;
    // One-byte reads of data already there (1 000 bytes more than the loop
    // above wrote, so that no read has to wait).
    client.write_all(&[0u8; 1000]).await?;
    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    yields_while_busy(|ran| async move {
        let mut b = [0u8; 1];
        for i in 0..1000 {
            if ran.load(Ordering::Relaxed) == 1 {
                return Ok(i);
            }
            server.read_exact(&mut b).await?;
        }
        Ok(1000)
    })
    .await;
    Ok(())
}

#[tokio::test]
async fn connections_lists_every_socket_with_its_queues() -> io::Result<()> {
    use synack::{Protocol, SocketState, State};
    let (stack, _sent, _peer) = counted_stack();
    let _guard = stack.enter();
    let listener = TcpListener::bind("0.0.0.0:80").await?;
    let mut client = TcpStream::connect("127.0.0.1:80").await?;
    let (server, _) = listener.accept().await?;
    client.write_all(&[1u8; 3000]).await?;
    client.shutdown().await?;
    let udp = synack::net::UdpSocket::bind("127.0.0.1:0").await?;
    udp.connect("127.0.0.1:9").await?;
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;

    let all = stack.connections();
    let find = |local_port: u16, state: SocketState| {
        all.iter()
            .find(|s| s.local.port() == local_port && s.state == state)
            .unwrap_or_else(|| panic!("no {state} socket on port {local_port}: {all:#?}"))
    };
    let l = find(80, SocketState::Listen);
    assert_eq!((l.protocol, l.recv_q, l.remote), (Protocol::Tcp, 0, None));
    // The server's end: the client's 3 000 bytes unread, then its FIN.
    let s = find(80, SocketState::Tcp(State::CloseWait));
    assert_eq!(s.recv_q, 3000);
    assert_eq!(s.remote.map(SocketAddr::V4), Some(client.local_addr()?));
    assert_eq!(s.info.as_ref().unwrap().bytes_received, 3000);
    let c = find(
        client.local_addr()?.port(),
        SocketState::Tcp(State::FinWait2),
    );
    assert_eq!(c.send_q, 0, "all acknowledged");
    let u = find(udp.local_addr()?.port(), SocketState::Connected);
    assert_eq!((u.protocol, u.info.is_none()), (Protocol::Udp, true));
    assert_eq!(all.len(), 4);
    drop(server);
    Ok(())
}

#[tokio::test(flavor = "current_thread")]
async fn async_io_waits_for_the_next_event_instead_of_spinning() -> io::Result<()> {
    let (stack, _sent, _peer) = counted_stack();
    let _guard = stack.enter();
    let a = synack::net::UdpSocket::bind("127.0.0.1:0").await?;
    let b = synack::net::UdpSocket::bind("127.0.0.1:0").await?;
    b.send_to(b"x", a.local_addr()?).await?;
    // Readable, but `f` says WouldBlock every time: it must be asked again
    // only on a new event, not in a loop.
    let calls = std::cell::Cell::new(0u32);
    let r = tokio::time::timeout(
        std::time::Duration::from_millis(50),
        a.async_io(tokio::io::Interest::READABLE, || {
            calls.set(calls.get() + 1);
            Err::<(), _>(io::ErrorKind::WouldBlock.into())
        }),
    )
    .await;
    assert!(r.is_err(), "async_io returned");
    assert!(
        calls.get() <= 2,
        "f was called {} times in 50 ms",
        calls.get()
    );
    // A new datagram is an event: `f` runs again.
    let waiter = async {
        let mut n = 0;
        a.async_io(tokio::io::Interest::READABLE, || {
            n += 1;
            if n < 2 {
                Err(io::ErrorKind::WouldBlock.into())
            } else {
                Ok(n)
            }
        })
        .await
    };
    let sender = async {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        b.send_to(b"y", a.local_addr()?).await?;
        io::Result::Ok(())
    };
    let (n, sent) = tokio::join!(waiter, sender);
    sent?;
    assert_eq!(n?, 2);
    Ok(())
}
