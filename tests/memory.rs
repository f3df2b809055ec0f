//! Memory on demand, seen from the front end: buffer memory follows the data,
//! `Stack::stats` reports it with connections by state, a stack whose last
//! handle is gone still delivers what its closed connections hold, and a
//! device MTU too small for IPv4 is an error, not a panic.

use std::io;
use std::net::Ipv4Addr;
use std::time::Duration;

use synack::Stack;
use synack::device::{MemoryLink, MemoryLinkConfig};
use synack::net::{TcpListener, TcpStream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const A: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const B: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

#[tokio::test]
async fn idle_connections_hold_no_buffer_memory() {
    let (a, b) = MemoryLink::pair(MemoryLinkConfig::default());
    let (sa, sb) = (Stack::new(a, A, 24), Stack::new(b, B, 24));
    let listener = TcpListener::bind_on(&sa, (A, 7)).await.unwrap();
    let mut kept = Vec::new();
    for _ in 0..200 {
        let c = TcpStream::connect_on(&sb, (A, 7)).await.unwrap();
        let (s, _) = listener.accept().await.unwrap();
        kept.push((c, s));
    }
    for stack in [&sa, &sb] {
        let stats = stack.stats();
        assert_eq!(stats.states.established, 200);
        assert_eq!(stats.buffer_bytes, 0, "no data, no buffers");
    }
    // A request and its response: small buffers while the bytes are held,
    // none once they are read and acknowledged.
    let (c, s) = &mut kept[0];
    c.write_all(b"ping").await.unwrap();
    let mut buf = [0u8; 4];
    s.read_exact(&mut buf).await.unwrap();
    s.write_all(b"pong").await.unwrap();
    c.read_exact(&mut buf).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(sa.stats().buffer_bytes, 0);
    assert_eq!(sb.stats().buffer_bytes, 0);
}

#[tokio::test]
async fn the_tail_is_delivered_after_the_last_handle_drops() {
    let (a, b) = MemoryLink::pair(MemoryLinkConfig::default());
    let server = Stack::new(a, A, 24);
    let listener = TcpListener::bind_on(&server, (A, 7)).await.unwrap();
    let data = pattern(4 << 20);
    let sent = data.clone();
    {
        // The client: its stack, stream and every handle go at the end of
        // this block, with most of the 4 MiB still in its send buffer.
        let client = Stack::new(b, B, 24);
        let mut c = TcpStream::connect_on(&client, (A, 7)).await.unwrap();
        tokio::spawn(async move {
            c.write_all(&sent).await.unwrap();
            c.shutdown().await.unwrap();
        });
    }
    let (mut s, _) = listener.accept().await.unwrap();
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut got))
        .await
        .expect("the orphan's data and FIN arrive")
        .unwrap();
    assert_eq!(got.len(), data.len());
    assert!(got == data);
}

#[tokio::test]
async fn a_device_mtu_too_small_for_ipv4_is_invalid_input() {
    let (a, _b) = MemoryLink::pair(MemoryLinkConfig::default().with_mtu(67));
    let err = Stack::try_new(a, A, 24).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    assert!(err.to_string().contains("MTU 67"), "{err}");
    // 68 bytes carry TCP with every option: a connection works, slowly.
    let (a, b) = MemoryLink::pair(MemoryLinkConfig::default().with_mtu(68));
    let (sa, sb) = (
        Stack::try_new(a, A, 24).unwrap(),
        Stack::try_new(b, B, 24).unwrap(),
    );
    let listener = TcpListener::bind_on(&sa, (A, 7)).await.unwrap();
    let mut c = TcpStream::connect_on(&sb, (A, 7)).await.unwrap();
    let (mut s, _) = listener.accept().await.unwrap();
    c.write_all(&pattern(1000)).await.unwrap();
    c.shutdown().await.unwrap();
    let mut got = Vec::new();
    s.read_to_end(&mut got).await.unwrap();
    assert_eq!(got, pattern(1000));
}

/// One 32 MiB flow over a link of `mtu`: the sender's send buffer and the
/// receiver's receive buffer (what each may hold) at the start and the end.
async fn long_flow(mtu: usize) -> ((usize, usize), (usize, usize)) {
    let (a, b) = MemoryLink::pair(MemoryLinkConfig::default().with_mtu(mtu));
    let (sa, sb) = (Stack::new(a, A, 24), Stack::new(b, B, 24));
    let listener = TcpListener::bind_on(&sa, (A, 7)).await.unwrap();
    let mut c = TcpStream::connect_on(&sb, (A, 7)).await.unwrap();
    let (mut s, _) = listener.accept().await.unwrap();
    let start = (c.info().unwrap().send_buffer, s.info().unwrap().recv_buffer);
    let writer = tokio::spawn(async move {
        let chunk = pattern(64 * 1024);
        for _ in 0..512 {
            c.write_all(&chunk).await.unwrap();
        }
        let info = c.info().unwrap();
        c.shutdown().await.unwrap();
        info
    });
    let mut got = Vec::new();
    s.read_to_end(&mut got).await.unwrap();
    assert_eq!(got.len(), 32 << 20);
    let end = (
        writer.await.unwrap().send_buffer,
        s.info().unwrap().recv_buffer,
    );
    (start, end)
}

#[tokio::test]
async fn autotuning_reaches_the_full_buffers_on_a_long_flow() {
    // MTU 9000: the buffers start at 4 segments (35 840 bytes) and the
    // initial 64 KiB window, and grow to the 256 KiB maxima.
    assert_eq!(
        long_flow(9000).await,
        ((4 * 8960, 64 * 1024), (256 * 1024, 256 * 1024))
    );
    // MTU 65535: four segments are all but the maximum from the start (a
    // 64 KiB window would hold one segment and stall the ACK clock).
    assert_eq!(
        long_flow(65535).await,
        ((4 * 65495, 4 * 65495), (256 * 1024, 256 * 1024))
    );
}
