//! Two synack stacks over an in-memory link: handshake, data both ways, close.

use std::net::Ipv4Addr;
use std::time::Duration;

use synack::Stack;
use synack::net::{TcpListener, TcpStream};
use synack_device::{MemoryLink, MemoryLinkConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const A: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const B: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);

fn pair(mtu: usize) -> (Stack, Stack) {
    let (a, b) = MemoryLink::pair(MemoryLinkConfig::default().with_mtu(mtu));
    (Stack::new(a, A, 24), Stack::new(b, B, 24))
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

#[tokio::test]
async fn echo_and_close() {
    let (sa, sb) = pair(1500);
    let listener = TcpListener::bind_on(&sa, (A, 7)).await.unwrap();
    let server = tokio::spawn(async move {
        let (mut s, peer) = listener.accept().await.unwrap();
        assert_eq!(peer.ip(), B);
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.unwrap();
        s.write_all(&buf).await.unwrap();
        s.shutdown().await.unwrap();
        buf.len()
    });
    let mut c = TcpStream::connect_on(&sb, (A, 7)).await.unwrap();
    c.write_all(b"hello, synack").await.unwrap();
    c.shutdown().await.unwrap();
    let mut back = Vec::new();
    c.read_to_end(&mut back).await.unwrap();
    assert_eq!(back, b"hello, synack");
    assert_eq!(server.await.unwrap(), 13);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_both_ways_multi_thread() {
    bulk(1500, 8 << 20).await;
}

#[tokio::test]
async fn bulk_both_ways_jumbo() {
    bulk(65535, 8 << 20).await;
}

async fn bulk(mtu: usize, len: usize) {
    let (sa, sb) = pair(mtu);
    let listener = TcpListener::bind_on(&sa, (A, 9000)).await.unwrap();
    let up = pattern(len, 1);
    let down = pattern(len, 2);
    let (up2, down2) = (up.clone(), down.clone());
    let server = tokio::spawn(async move {
        let (s, _) = listener.accept().await.unwrap();
        let (mut r, mut w) = tokio::io::split(s);
        let writer = tokio::spawn(async move {
            w.write_all(&down2).await.unwrap();
            w.shutdown().await.unwrap();
            w
        });
        let mut got = Vec::new();
        r.read_to_end(&mut got).await.unwrap();
        assert!(got == up2, "server received corrupted stream");
        let _w = writer.await.unwrap();
    });
    let c = TcpStream::connect_on(&sb, (A, 9000)).await.unwrap();
    let (mut r, mut w) = tokio::io::split(c);
    let writer = tokio::spawn(async move {
        w.write_all(&up).await.unwrap();
        w.shutdown().await.unwrap();
        w
    });
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(60), r.read_to_end(&mut got))
        .await
        .expect("transfer stalled")
        .unwrap();
    assert!(got == down, "client received corrupted stream");
    let _w = writer.await.unwrap();
    server.await.unwrap();
}

#[tokio::test]
async fn refused_and_addr_in_use() {
    let (sa, sb) = pair(1500);
    let err = TcpStream::connect_on(&sb, (A, 1)).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
    let _l = TcpListener::bind_on(&sa, (A, 80)).await.unwrap();
    let err = TcpListener::bind_on(&sa, (A, 80)).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse);
    let err = TcpListener::bind_on(&sa, (B, 80)).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::AddrNotAvailable);
}

/// Nobody answers: the SYN is retried with exponential backoff (1 s, 2 s, ...,
/// seven retries, the last RTO capped at 120 s) and the connect fails with
/// `TimedOut` after 247 s of (paused)
/// time: RFC 1122 §4.2.3.5 wants at least 3 minutes.
#[tokio::test(start_paused = true)]
async fn connect_to_silent_host_times_out() {
    let (a, _silent) = MemoryLink::pair(MemoryLinkConfig::default());
    let stack = Stack::new(a, B, 24);
    let start = tokio::time::Instant::now();
    let err = TcpStream::connect_on(&stack, (A, 80)).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_secs(247) && waited < Duration::from_secs(248),
        "gave up after {waited:?}"
    );
    // SYN plus seven retransmissions.
    assert_eq!(stack.stats().tx_packets, 8);
}

/// The driver task, and with it the device, goes away with the last handle.
#[tokio::test]
async fn stack_stops_when_last_handle_drops() {
    let (a, b) = MemoryLink::pair(MemoryLinkConfig::default());
    let stack = Stack::new(a, A, 24);
    let listener = TcpListener::bind_on(&stack, (A, 80)).await.unwrap();
    drop(stack);
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert!(!b.is_peer_closed(), "a listener still holds the stack");
    drop(listener);
    for _ in 0..100 {
        if b.is_peer_closed() {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("the driver kept the device after the last handle dropped");
}

/// A reader that stops reading drives the window to zero; the writer waits
/// (persist timer probing) and finishes once the reader resumes.
#[tokio::test(start_paused = true)]
async fn slow_reader_zero_window_then_resume() {
    let (sa, sb) = pair(1500);
    let listener = TcpListener::bind_on(&sa, (A, 5000)).await.unwrap();
    let len = 2 << 20; // far more than the 256 KiB buffers hold
    let data = pattern(len, 9);
    let expected = data.clone();
    let writer = tokio::spawn(async move {
        let mut c = TcpStream::connect_on(&sb, (A, 5000)).await.unwrap();
        c.write_all(&data).await.unwrap();
        c.shutdown().await.unwrap();
        let mut rest = Vec::new();
        c.read_to_end(&mut rest).await.unwrap();
        c.info().unwrap()
    });
    let (mut s, _) = listener.accept().await.unwrap();
    // Stall for a long while: buffers fill, the window closes.
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert!(!writer.is_finished());
    let mut got = Vec::new();
    s.read_to_end(&mut got).await.unwrap();
    assert!(got == expected, "stream corrupted");
    drop(s);
    let info = writer.await.unwrap();
    assert_eq!(info.bytes_retrans, 0, "a zero window is no loss: {info:?}");
}

/// A `MemoryLink` lets the sending task do the receiving stack's work
/// (`Device::receive_in_wake`): with both stacks busy on four workers, every
/// connection exchanging requests and bulk both ways at once, nothing
/// deadlocks, stalls or loses a byte.
#[test]
fn receive_work_in_the_senders_wake_ups_on_many_workers_loses_nothing() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (sa, sb) = pair(1500);
        let listener = TcpListener::bind_on(&sa, (A, 9)).await.unwrap();
        let server = tokio::spawn(async move {
            let mut tasks = Vec::new();
            for _ in 0..32 {
                let (s, _) = listener.accept().await.unwrap();
                tasks.push(tokio::spawn(async move {
                    let (mut r, mut w) = s.into_split();
                    tokio::io::copy(&mut r, &mut w).await.unwrap();
                    w.shutdown().await.unwrap();
                }));
            }
            for t in tasks {
                t.await.unwrap();
            }
        });
        let mut clients = Vec::new();
        for i in 0..32u8 {
            let sb = sb.clone();
            clients.push(tokio::spawn(async move {
                let s = TcpStream::connect_on(&sb, (A, 9)).await.unwrap();
                s.set_nodelay(true).unwrap();
                let (mut r, mut w) = s.into_split();
                if i % 2 == 0 {
                    // Request/response: one byte at a time.
                    for k in 0..200u8 {
                        w.write_all(&[k]).await.unwrap();
                        let mut b = [0; 1];
                        r.read_exact(&mut b).await.unwrap();
                        assert_eq!(b, [k]);
                    }
                    w.shutdown().await.unwrap();
                    let mut rest = Vec::new();
                    r.read_to_end(&mut rest).await.unwrap();
                    assert!(rest.is_empty());
                } else {
                    // Bulk both ways at once.
                    let data = pattern(300_000, i);
                    let expected = data.clone();
                    let writer = tokio::spawn(async move {
                        w.write_all(&data).await.unwrap();
                        w.shutdown().await.unwrap();
                    });
                    let mut back = Vec::new();
                    r.read_to_end(&mut back).await.unwrap();
                    writer.await.unwrap();
                    assert!(back == expected, "flow {i}: the echo differs");
                }
            }));
        }
        let all = async {
            for c in clients {
                c.await.unwrap();
            }
            server.await.unwrap();
        };
        tokio::time::timeout(Duration::from_secs(120), all)
            .await
            .expect("stalled");
    });
}
