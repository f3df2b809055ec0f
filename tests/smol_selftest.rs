//! Self-test of the smoltcp test host (`tests/common/smol.rs`): two smoltcp hosts
//! over one in-memory wire exchange 8 MiB each way and close cleanly.
//!
//! Runs over synack's `MemoryLink` (the interop tests' setup) and over a small
//! in-file `Device` double (bounded queues, optional checksum offload), so the
//! harness is also checked independently of synack's own devices.

#[path = "common/smol.rs"]
mod smol;

use std::collections::VecDeque;
use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use smol::{SmolHost, SmolStream, TcpState};
use synack_device::{
    Capabilities, ChecksumOffload, Device, Medium, MemoryLink, MemoryLinkConfig, Packet,
};

// ---------------------------------------------------------------------------------
// An in-memory wire (test double)
// ---------------------------------------------------------------------------------

#[derive(Default)]
struct Pipe {
    queue: VecDeque<Packet>,
    rx_waker: Option<Waker>,
    tx_waker: Option<Waker>,
    closed: bool,
}

struct WireEnd {
    inbound: Arc<Mutex<Pipe>>,
    outbound: Arc<Mutex<Pipe>>,
    mtu: usize,
    limit: usize,
    checksum_offload: bool,
}

fn wire(mtu: usize, limit: usize, checksum_offload: bool) -> (WireEnd, WireEnd) {
    let a = Arc::new(Mutex::new(Pipe::default()));
    let b = Arc::new(Mutex::new(Pipe::default()));
    (
        WireEnd {
            inbound: a.clone(),
            outbound: b.clone(),
            mtu,
            limit,
            checksum_offload,
        },
        WireEnd {
            inbound: b,
            outbound: a,
            mtu,
            limit,
            checksum_offload,
        },
    )
}

fn register(slot: &mut Option<Waker>, cx: &Context<'_>) {
    match slot {
        Some(w) if w.will_wake(cx.waker()) => {}
        _ => *slot = Some(cx.waker().clone()),
    }
}

impl Device for WireEnd {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            medium: Medium::Ip,
            mtu: self.mtu,
            checksum: ChecksumOffload {
                rx: self.checksum_offload,
                tx: self.checksum_offload,
            },
        }
    }

    fn poll_recv(
        &mut self,
        cx: &mut Context<'_>,
        out: &mut Vec<Packet>,
        max: usize,
    ) -> Poll<io::Result<usize>> {
        let mut p = self.inbound.lock().unwrap();
        if p.queue.is_empty() {
            if p.closed {
                return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
            }
            register(&mut p.rx_waker, cx);
            return Poll::Pending;
        }
        let n = max.min(p.queue.len());
        out.extend(p.queue.drain(..n));
        if let Some(w) = p.tx_waker.take() {
            w.wake();
        }
        Poll::Ready(Ok(n))
    }

    fn poll_send(
        &mut self,
        cx: &mut Context<'_>,
        packets: &mut VecDeque<Packet>,
    ) -> Poll<io::Result<usize>> {
        let mut p = self.outbound.lock().unwrap();
        if p.closed {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        if packets.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let mut n = 0;
        while p.queue.len() < self.limit {
            let Some(pkt) = packets.pop_front() else {
                break;
            };
            n += 1;
            if pkt.len() <= self.mtu {
                p.queue.push_back(pkt);
            }
        }
        if n == 0 {
            register(&mut p.tx_waker, cx);
            return Poll::Pending;
        }
        if let Some(w) = p.rx_waker.take() {
            w.wake();
        }
        Poll::Ready(Ok(n))
    }
}

impl Drop for WireEnd {
    fn drop(&mut self) {
        for pipe in [&self.inbound, &self.outbound] {
            let mut p = pipe.lock().unwrap();
            p.closed = true;
            if let Some(w) = p.rx_waker.take() {
                w.wake();
            }
            if let Some(w) = p.tx_waker.take() {
                w.wake();
            }
        }
    }
}

// ---------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------

const A: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const B: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
const PORT: u16 = 7000;
const LEN: usize = 8 * 1024 * 1024;
const DEADLINE: Duration = Duration::from_secs(60);

/// Deterministic pseudo-random bytes (xorshift64*).
fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        v.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    v.truncate(len);
    v
}

/// Sends `data` in uneven chunks, then FIN; concurrently reads to EOF. Returns the
/// SHA-256 of what was received and its length.
async fn exchange(s: &SmolStream, data: &[u8]) -> io::Result<([u8; 32], usize)> {
    let send = async {
        let mut off = 0;
        let mut chunk = 1000;
        while off < data.len() {
            let end = (off + chunk).min(data.len());
            s.write_all(&data[off..end]).await?;
            off = end;
            chunk = chunk * 3 % 100_003 + 1;
        }
        s.flush().await?;
        s.shutdown().await
    };
    let recv = async {
        let mut h = Sha256::new();
        let mut buf = vec![0u8; 50_000];
        let mut total = 0;
        loop {
            let n = s.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
            total += n;
        }
        Ok::<_, io::Error>((h.finalize().into(), total))
    };
    let ((), got) = tokio::try_join!(send, recv)?;
    Ok(got)
}

fn sha(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

// The exchange itself, shared by the tests: hosts A (client) and B (server).
async fn run_exchange<D: Device>(wa: D, wb: D, len: usize, label: &str) {
    let host_a = SmolHost::spawn(wa, A, 24);
    let host_b = SmolHost::spawn(wb, B, 24);
    let data_a = Arc::new(pattern(len, 0xA));
    let data_b = Arc::new(pattern(len, 0xB));
    // SHA-256 is slow in debug builds: hash the sent data on blocking threads
    // while the transfer runs.
    let expect_a = tokio::task::spawn_blocking({
        let d = data_a.clone();
        move || sha(&d)
    });
    let expect_b = tokio::task::spawn_blocking({
        let d = data_b.clone();
        move || sha(&d)
    });
    let mut listener = host_b.listen(PORT).expect("listen");
    let started = Instant::now();

    let server = {
        let data_b = data_b.clone();
        tokio::spawn(async move {
            let s = listener.accept().await?;
            assert_eq!(s.peer_addr().ip(), &A);
            assert_eq!(s.local_addr(), SocketAddrV4::new(B, PORT));
            let got = exchange(&s, &data_b).await?;
            s.close_and_wait().await?;
            Ok::<_, io::Error>((got, s.state()))
        })
    };
    let client = {
        let host_a = host_a.clone();
        let data_a = data_a.clone();
        tokio::spawn(async move {
            let s = host_a.connect(SocketAddrV4::new(B, PORT)).await?;
            assert_eq!(s.state(), TcpState::Established);
            assert_eq!(s.local_addr().ip(), &A);
            let got = exchange(&s, &data_a).await?;
            s.close_and_wait().await?;
            Ok::<_, io::Error>((got, s.state()))
        })
    };

    let (server, client) = tokio::time::timeout(DEADLINE, async {
        (
            server.await.expect("server panicked"),
            client.await.expect("client panicked"),
        )
    })
    .await
    .expect("exchange timed out");
    let ((b_got, b_len), b_state) = server.expect("server failed");
    let ((a_got, a_len), a_state) = client.expect("client failed");
    let elapsed = started.elapsed();

    assert_eq!(a_len, len, "A received a wrong length");
    assert_eq!(b_len, len, "B received a wrong length");
    assert_eq!(a_got, expect_b.await.unwrap(), "A received corrupted data");
    assert_eq!(b_got, expect_a.await.unwrap(), "B received corrupted data");
    for st in [a_state, b_state] {
        assert!(
            matches!(st, TcpState::Closed | TcpState::TimeWait),
            "not closed cleanly: {st}"
        );
    }
    assert!(host_a.error().is_none() && host_b.error().is_none());
    let (sa, sb) = (host_a.stats(), host_b.stats());
    eprintln!(
        "smol selftest ({label}): 2 x {} MiB in {elapsed:?}; \
         A tx {} rx {} packets {} rounds, B tx {} rx {} packets {} rounds",
        len >> 20,
        sa.tx_packets,
        sa.rx_packets,
        sa.task_rounds,
        sb.tx_packets,
        sb.rx_packets,
        sb.task_rounds
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smol_to_smol_8mib_each_way_memory_link() {
    // The interop tests' setup: synack's MemoryLink with its defaults (MTU 1500,
    // checksum offload, so packets carry no valid checksums).
    let (wa, wb) = MemoryLink::pair(MemoryLinkConfig::default());
    run_exchange(wa, wb, LEN, "MemoryLink default, multi-thread").await;
}

#[tokio::test(flavor = "current_thread")]
async fn smol_to_smol_checksums_backpressure_current_thread() {
    // No checksum offload: smoltcp computes and verifies every checksum; a tiny
    // queue exercises device backpressure (poll_send returning Pending). 2 MiB:
    // SHA-256 dominates in debug builds.
    let (wa, wb) = wire(1500, 8, false);
    run_exchange(
        wa,
        wb,
        2 << 20,
        "in-file wire, no offload, queue 8, current-thread",
    )
    .await;
}

#[tokio::test(flavor = "current_thread")]
async fn smol_to_smol_jumbo_memory_link() {
    let (wa, wb) = MemoryLink::pair(MemoryLinkConfig::default().with_mtu(65535));
    run_exchange(wa, wb, 2 << 20, "MemoryLink MTU 65535, current-thread").await;
}

#[tokio::test(start_paused = true)]
async fn smol_to_smol_paused_time() {
    // smoltcp's clock follows tokio's, so a paused clock works (timers auto-advance).
    let (wa, wb) = wire(1500, 64, true);
    let host_a = SmolHost::spawn(wa, A, 24);
    let host_b = SmolHost::spawn(wb, B, 24);
    let data_a = Arc::new(pattern(1 << 20, 1));
    let data_b = Arc::new(pattern(1 << 20, 2));
    let mut listener = host_b.listen(PORT).unwrap();
    let db = data_b.clone();
    let server = tokio::spawn(async move {
        let s = listener.accept().await?;
        let got = exchange(&s, &db).await?;
        s.close_and_wait().await?;
        Ok::<_, io::Error>(got)
    });
    let s = host_a.connect(SocketAddrV4::new(B, PORT)).await.unwrap();
    let got_a = exchange(&s, &data_a).await.unwrap();
    s.close_and_wait().await.unwrap();
    let got_b = server.await.unwrap().unwrap();
    assert_eq!(got_a, (sha(&data_b), data_b.len()));
    assert_eq!(got_b, (sha(&data_a), data_a.len()));
}

#[tokio::test(flavor = "current_thread")]
async fn idle_hosts_do_not_spin() {
    let (wa, wb) = wire(1500, 64, true);
    let host_a = SmolHost::spawn(wa, A, 24);
    let host_b = SmolHost::spawn(wb, B, 24);
    let mut listener = host_b.listen(PORT).unwrap();
    let (sa, sb) = tokio::join!(
        host_a.connect(SocketAddrV4::new(B, PORT)),
        listener.accept()
    );
    let (sa, sb) = (sa.unwrap(), sb.unwrap());
    sa.write_all(b"ping").await.unwrap();
    let mut buf = [0u8; 4];
    sb.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"ping");
    // Let delayed ACKs go out, then measure an idle stretch.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (ra, rb) = (host_a.stats().task_rounds, host_b.stats().task_rounds);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (da, db) = (
        host_a.stats().task_rounds - ra,
        host_b.stats().task_rounds - rb,
    );
    assert!(
        da <= 5 && db <= 5,
        "idle hosts ran {da} and {db} rounds in 500 ms"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn errors_refused_reset_shutdown_and_link_down() {
    let (wa, wb) = wire(1500, 64, true);
    let host_a = SmolHost::spawn(wa, A, 24);
    let host_b = SmolHost::spawn(wb, B, 24);

    // Nobody listens: the peer answers the SYN with RST.
    let e = host_a.connect(SocketAddrV4::new(B, 9)).await.unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused);

    let mut listener = host_b.listen(PORT).unwrap();
    assert_eq!(
        host_b.listen(PORT).err().map(|e| e.kind()),
        Some(io::ErrorKind::AddrInUse)
    );

    // Write after shutdown; EOF on the other side; the peer can still send back.
    let (sa, sb) = tokio::join!(
        host_a.connect(SocketAddrV4::new(B, PORT)),
        listener.accept()
    );
    let (sa, sb) = (sa.unwrap(), sb.unwrap());
    sa.write_all(b"hello").await.unwrap();
    sa.shutdown().await.unwrap();
    assert_eq!(
        sa.write_all(b"more").await.unwrap_err().kind(),
        io::ErrorKind::BrokenPipe
    );
    let mut got = Vec::new();
    sb.read_to_end(&mut got).await.unwrap();
    assert_eq!(got, b"hello");
    assert_eq!(sb.read(&mut [0u8; 8]).await.unwrap(), 0, "EOF again");
    sb.write_all(b"bye").await.unwrap();
    sb.close_and_wait().await.unwrap();
    let mut got = Vec::new();
    sa.read_to_end(&mut got).await.unwrap();
    assert_eq!(got, b"bye");
    sa.close_and_wait().await.unwrap();
    // A did the active close, so A waits in TIME-WAIT; B is CLOSED.
    assert_eq!(sa.state(), TcpState::TimeWait);
    assert_eq!(sb.state(), TcpState::Closed);

    drop((sa, sb));

    // Abort: the peer's read fails with ConnectionReset.
    let (sa, sb) = tokio::join!(
        host_a.connect(SocketAddrV4::new(B, PORT)),
        listener.accept()
    );
    let (sa, sb) = (sa.unwrap(), sb.unwrap());
    sa.abort();
    assert_eq!(
        sb.read(&mut [0u8; 8]).await.unwrap_err().kind(),
        io::ErrorKind::ConnectionReset
    );
    drop((sa, sb));

    // The link goes down (host A and all its handles dropped, so its task stops
    // before sending the FIN the stream's drop queued): B's pending read fails with
    // the device's BrokenPipe.
    let (sa, sb) = tokio::join!(
        host_a.connect(SocketAddrV4::new(B, PORT)),
        listener.accept()
    );
    let (sa, sb) = (sa.unwrap(), sb.unwrap());
    let reader = tokio::spawn(async move {
        let r = sb.read(&mut [0u8; 8]).await;
        (r.map_err(|e| e.kind()), sb)
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    drop(sa);
    drop(host_a);
    let (r, _sb) = tokio::time::timeout(Duration::from_secs(5), reader)
        .await
        .expect("read did not fail after the link went down")
        .unwrap();
    assert_eq!(r, Err(io::ErrorKind::BrokenPipe));
    assert_eq!(
        host_b.error().map(|e| e.kind()),
        Some(io::ErrorKind::BrokenPipe)
    );
}
