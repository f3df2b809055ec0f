//! synack's TCP host behaviour against the Linux stack, over a TUN interface in
//! a throwaway network namespace (the setup of `interop_linux.rs`, cut down):
//!
//! - `window_scale_timestamps_and_zero_windows_both_ways`: the kernel connects
//!   to synack and synack to the kernel; on each connection a slow reader (synack
//!   on the first, the kernel on the second) lets the window fall to zero, and
//!   the transfer still completes intact. A pcap of the run
//!   ([`synack_device::Pcap`]) must show window scaling and timestamps
//!   negotiated in both SYNs of both connections, timestamps in every non-RST
//!   segment afterwards, and a zero window advertised by each receiver.
//! - `simultaneous_close_against_the_kernel`: both ends send their FIN before
//!   seeing the other's (a gate on synack's receive path holds the kernel's
//!   segments back until synack's FIN is out); both go through CLOSING to
//!   TIME-WAIT, no RST.
//!
//! The kernel has 192.0.2.1/24 on the TUN, synack 192.0.2.2/24. Each namespace
//! is deleted by its guard, also when a test panics. Needs root,
//! `/dev/net/tun` and `ip`; skips (printing why) otherwise.

#![cfg(all(target_os = "linux", feature = "tun"))]

mod common;

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use common::netns::{self, NetNs};
use synack::net::{TcpListener, TcpStream};
use synack::{Config, Stack, State};
use synack_device::{Capabilities, Device, Packet, Pcap, Tun};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const KERNEL: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const KERNEL_CIDR: &str = "192.0.2.1/24";
const SYNACK: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
const PREFIX_LEN: u8 = 24;
const MTU: usize = 1500;

/// Bytes each slow-reader transfer moves: several receive buffers' worth.
const TRANSFER: usize = 1 << 20;
/// Bound on every phase.
const TIMEOUT: Duration = Duration::from_secs(60);

const FIN: u8 = 0x01;
const SYN: u8 = 0x02;
const RST: u8 = 0x04;
const ACK: u8 = 0x10;

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[1] ^ seed)
        .collect()
}

/// A pcap file in the temporary directory, deleted when dropped.
struct TempFile(PathBuf);

impl TempFile {
    fn new(test: &str) -> TempFile {
        TempFile(
            std::env::temp_dir().join(format!("synack-host-{}-{test}.pcap", std::process::id())),
        )
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Holds back inbound packets while `hold` is set (the stack sees none), then
/// hands them over in order.
struct Gate<D> {
    inner: D,
    hold: Arc<AtomicBool>,
    waker: Arc<Mutex<Option<Waker>>>,
    held: VecDeque<Packet>,
}

/// The switch of a [`Gate`].
#[derive(Clone)]
struct GateSwitch {
    hold: Arc<AtomicBool>,
    waker: Arc<Mutex<Option<Waker>>>,
}

impl GateSwitch {
    fn close(&self) {
        self.hold.store(true, Ordering::SeqCst);
    }
    fn open(&self) {
        self.hold.store(false, Ordering::SeqCst);
        if let Some(w) = self.waker.lock().unwrap().take() {
            w.wake();
        }
    }
}

impl<D: Device> Gate<D> {
    fn new(inner: D) -> (Gate<D>, GateSwitch) {
        let hold = Arc::new(AtomicBool::new(false));
        let waker = Arc::new(Mutex::new(None));
        let switch = GateSwitch {
            hold: hold.clone(),
            waker: waker.clone(),
        };
        (
            Gate {
                inner,
                hold,
                waker,
                held: VecDeque::new(),
            },
            switch,
        )
    }
}

impl<D: Device> Device for Gate<D> {
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    fn poll_recv(
        &mut self,
        cx: &mut Context<'_>,
        out: &mut Vec<Packet>,
        max: usize,
    ) -> Poll<io::Result<usize>> {
        if self.hold.load(Ordering::SeqCst) {
            *self.waker.lock().unwrap() = Some(cx.waker().clone());
            loop {
                let mut got = Vec::new();
                match self.inner.poll_recv(cx, &mut got, 64) {
                    Poll::Ready(Ok(_)) => self.held.extend(got),
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => return Poll::Pending,
                }
            }
        }
        if !self.held.is_empty() {
            let n = self.held.len().min(max);
            out.extend(self.held.drain(..n));
            return Poll::Ready(Ok(n));
        }
        self.inner.poll_recv(cx, out, max)
    }

    fn poll_send(
        &mut self,
        cx: &mut Context<'_>,
        packets: &mut VecDeque<Packet>,
    ) -> Poll<io::Result<usize>> {
        self.inner.poll_send(cx, packets)
    }

    fn alloc(&mut self) -> Packet {
        self.inner.alloc()
    }

    fn recycle(&mut self, packet: Packet) {
        self.inner.recycle(packet)
    }
}

/// Creates the TUN inside `ns`, gives the kernel its address, and starts synack
/// on it with a pcap capture to `pcap` behind a [`Gate`].
fn setup(ns: &NetNs, tag: char, pcap: &Path, config: Config) -> (Stack, GateSwitch) {
    let name = netns::tun_name("sh", tag);
    let rt = tokio::runtime::Handle::current();
    let tun = ns
        .in_ns(|| {
            let _guard = rt.enter();
            Tun::create(&name, MTU)
        })
        .expect("creating the TUN inside the namespace");
    ns.addr_add(&name, KERNEL_CIDR)
        .expect("adding the kernel's address");
    ns.link_up(&name).expect("bringing the TUN up");
    let (gate, switch) = Gate::new(Pcap::create(tun, pcap).expect("creating the pcap file"));
    let stack = Stack::builder(gate, SYNACK, PREFIX_LEN)
        .config(config)
        .build();
    (stack, switch)
}

/// Runs `f` on a thread inside the namespace; the future yields its result.
fn ns_thread<T: Send + 'static>(
    ns: &NetNs,
    f: impl FnOnce() -> T + Send + 'static,
) -> impl std::future::Future<Output = T> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    ns.spawn_in_ns(move || {
        let _ = tx.send(std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)));
    })
    .expect("spawning a thread in the namespace");
    async move {
        match tokio::time::timeout(TIMEOUT, rx).await {
            Ok(Ok(Ok(v))) => v,
            Ok(Ok(Err(panic))) => std::panic::resume_unwind(panic),
            Ok(Err(_)) => panic!("the namespace thread ended without a result"),
            Err(_) => panic!("the namespace thread took more than {TIMEOUT:?}"),
        }
    }
}

async fn within<T>(what: &str, fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(TIMEOUT, fut)
        .await
        .unwrap_or_else(|_| panic!("{what}: no result within {TIMEOUT:?}"))
}

// ----- Reading the pcap -----

/// One TCP segment from the capture.
#[derive(Debug, Clone)]
struct Seg {
    /// synack sent it.
    out: bool,
    src_port: u16,
    dst_port: u16,
    flags: u8,
    seq: u32,
    ack: u32,
    window: u16,
    len: usize,
    wscale: Option<u8>,
    ts: Option<(u32, u32)>,
}

impl Seg {
    fn synack_port(&self) -> u16 {
        if self.out {
            self.src_port
        } else {
            self.dst_port
        }
    }
}

/// Every IPv4/TCP segment of a classic pcap file with raw-IP link type.
fn read_pcap(path: &Path) -> Vec<Seg> {
    let data = std::fs::read(path).expect("reading the pcap file");
    assert!(data.len() >= 24, "pcap file without header");
    assert_eq!(
        u32::from_le_bytes(data[0..4].try_into().unwrap()),
        0xa1b2_c3d4
    );
    assert_eq!(u32::from_le_bytes(data[20..24].try_into().unwrap()), 101);
    let mut segs = Vec::new();
    let mut at = 24;
    while at + 16 <= data.len() {
        let caplen = u32::from_le_bytes(data[at + 8..at + 12].try_into().unwrap()) as usize;
        let p = &data[at + 16..(at + 16 + caplen).min(data.len())];
        at += 16 + caplen;
        if p.len() < 40 || p[0] >> 4 != 4 || p[9] != 6 {
            continue;
        }
        let ihl = usize::from(p[0] & 0x0f) * 4;
        let total = usize::from(u16::from_be_bytes([p[2], p[3]])).min(p.len());
        let t = &p[ihl..total];
        let doff = usize::from(t[12] >> 4) * 4;
        if doff < 20 || doff > t.len() {
            continue;
        }
        let (mut wscale, mut ts) = (None, None);
        let o = &t[20..doff];
        let mut i = 0;
        while i < o.len() {
            match o[i] {
                0 => break,
                1 => i += 1,
                kind => {
                    let Some(&len) = o.get(i + 1) else { break };
                    let len = usize::from(len);
                    if len < 2 || i + len > o.len() {
                        break;
                    }
                    let b = &o[i + 2..i + len];
                    match (kind, b.len()) {
                        (3, 1) => wscale = Some(b[0]),
                        (8, 8) => {
                            ts = Some((
                                u32::from_be_bytes(b[0..4].try_into().unwrap()),
                                u32::from_be_bytes(b[4..8].try_into().unwrap()),
                            ))
                        }
                        _ => {}
                    }
                    i += len;
                }
            }
        }
        let src = Ipv4Addr::new(p[12], p[13], p[14], p[15]);
        segs.push(Seg {
            out: src == SYNACK,
            src_port: u16::from_be_bytes([t[0], t[1]]),
            dst_port: u16::from_be_bytes([t[2], t[3]]),
            seq: u32::from_be_bytes(t[4..8].try_into().unwrap()),
            ack: u32::from_be_bytes(t[8..12].try_into().unwrap()),
            flags: t[13],
            window: u16::from_be_bytes([t[14], t[15]]),
            len: t.len() - doff,
            wscale,
            ts,
        });
    }
    segs
}

/// Checks one connection (synack's `port`) in the capture: both SYNs offer
/// window scaling and timestamps, every later non-RST segment carries
/// timestamps, and `zero_window_from_synack` / the kernel advertised a zero window.
fn check_connection(segs: &[Seg], port: u16, zero_from_synack: bool) {
    let conn: Vec<&Seg> = segs.iter().filter(|s| s.synack_port() == port).collect();
    assert!(
        !conn.is_empty(),
        "no segment of synack port {port} captured"
    );
    for out in [true, false] {
        let who = if out { "synack" } else { "kernel" };
        let syn = conn
            .iter()
            .find(|s| s.out == out && s.flags & SYN != 0)
            .unwrap_or_else(|| panic!("no SYN from {who} on port {port}"));
        assert!(
            syn.wscale.is_some(),
            "{who}'s SYN offers no window scale: {syn:?}"
        );
        assert!(
            syn.ts.is_some(),
            "{who}'s SYN offers no timestamps: {syn:?}"
        );
        if syn.flags & ACK != 0 {
            // RFC 7323 §3.2: the SYN-ACK echoes the SYN's TSval.
            let other = conn
                .iter()
                .find(|s| s.out != out && s.flags & SYN != 0)
                .unwrap();
            assert_eq!(syn.ts.unwrap().1, other.ts.unwrap().0, "TSecr of {syn:?}");
        }
        let missing: Vec<&&Seg> = conn
            .iter()
            .filter(|s| s.out == out && s.flags & (SYN | RST) == 0 && s.ts.is_none())
            .collect();
        assert!(
            missing.is_empty(),
            "{who} sent {} segments without timestamps on port {port}, e.g. {:?}",
            missing.len(),
            missing.first()
        );
        let rsts = conn.iter().filter(|s| s.flags & RST != 0).count();
        assert_eq!(rsts, 0, "RST on port {port}");
    }
    // The receiver of the slow-reader transfer closed its window at some point.
    let zero = conn
        .iter()
        .any(|s| s.out == zero_from_synack && s.flags & (SYN | RST) == 0 && s.window == 0);
    assert!(
        zero,
        "no zero window from the {} on port {port}",
        if zero_from_synack { "synack" } else { "kernel" }
    );
    let data: usize = conn
        .iter()
        .filter(|s| s.out != zero_from_synack)
        .map(|s| s.len)
        .sum();
    assert!(
        data >= TRANSFER,
        "only {data} bytes captured on port {port}"
    );
}

#[test]
fn window_scale_timestamps_and_zero_windows_both_ways() {
    let Some(ns) = netns::start("hostws") else {
        return;
    };
    // Small kernel buffers so its window closes soon (per-namespace sysctl).
    let _ = ns.exec(["sysctl", "-qw", "net.ipv4.tcp_rmem=4096 32768 65536"]);
    let pcap = TempFile::new("wsts");
    let rt = netns::runtime();
    let (passive_port, active_port) = rt.block_on(async {
        let config = Config {
            recv_buffer: 128 * 1024,
            ..Config::default()
        };
        let (stack, _gate) = setup(&ns, 'w', &pcap.0, config);

        // 1. The kernel connects and sends; synack reads slowly.
        let listener = TcpListener::bind_on(&stack, SocketAddrV4::new(SYNACK, 7000))
            .await
            .unwrap();
        let sent = pattern(TRANSFER, 1);
        let to_send = sent.clone();
        let kernel = ns_thread(&ns, move || {
            let mut s = std::net::TcpStream::connect_timeout(
                &SocketAddr::from(SocketAddrV4::new(SYNACK, 7000)),
                TIMEOUT,
            )
            .expect("kernel connect");
            s.set_write_timeout(Some(TIMEOUT)).unwrap();
            s.write_all(&to_send).expect("kernel write");
            s.shutdown(Shutdown::Write).unwrap();
            let mut rest = Vec::new();
            s.set_read_timeout(Some(TIMEOUT)).unwrap();
            s.read_to_end(&mut rest).expect("kernel read to EOF");
            rest.len()
        });
        let (mut conn, _) = within("accept", listener.accept()).await.unwrap();
        let passive_port = conn.local_addr().unwrap().port();
        // Not reading: the kernel fills the window.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut got = Vec::new();
        let mut buf = vec![0u8; 8192];
        loop {
            let n = within("synack read", conn.read(&mut buf)).await.unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        assert!(
            got == sent,
            "synack received {} bytes, not what was sent",
            got.len()
        );
        conn.shutdown().await.unwrap();
        assert_eq!(kernel.await, 0);

        // 2. synack connects and sends; the kernel reads slowly.
        let (port_tx, port_rx) = mpsc::channel();
        let expected = pattern(TRANSFER, 2);
        let check = expected.clone();
        let kernel = ns_thread(&ns, move || {
            let l = std::net::TcpListener::bind(SocketAddrV4::new(KERNEL, 7001)).unwrap();
            port_tx.send(()).unwrap();
            let (mut s, _) = l.accept().expect("kernel accept");
            s.set_read_timeout(Some(TIMEOUT)).unwrap();
            std::thread::sleep(Duration::from_millis(300));
            let mut got = Vec::new();
            let mut buf = vec![0u8; 4096];
            loop {
                let n = s.read(&mut buf).expect("kernel read");
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
                std::thread::sleep(Duration::from_micros(300));
            }
            s.shutdown(Shutdown::Write).unwrap();
            got == check
        });
        port_rx
            .recv_timeout(TIMEOUT)
            .expect("kernel listener ready");
        let mut conn = within(
            "connect",
            TcpStream::connect_on(&stack, SocketAddrV4::new(KERNEL, 7001)),
        )
        .await
        .unwrap();
        let active_port = conn.local_addr().unwrap().port();
        within("synack write", conn.write_all(&expected))
            .await
            .unwrap();
        conn.shutdown().await.unwrap();
        let mut rest = Vec::new();
        within("synack read to EOF", conn.read_to_end(&mut rest))
            .await
            .unwrap();
        assert!(rest.is_empty());
        assert!(kernel.await, "the kernel received other bytes than sent");
        (passive_port, active_port)
    });
    // Dropping the runtime drops the stack's driver and so the pcap writer,
    // which flushes the capture.
    drop(rt);
    let segs = read_pcap(&pcap.0);
    check_connection(&segs, passive_port, true);
    check_connection(&segs, active_port, false);
}

#[test]
fn simultaneous_close_against_the_kernel() {
    let Some(ns) = netns::start("hostsc") else {
        return;
    };
    let pcap = TempFile::new("simclose");
    let rt = netns::runtime();
    let port = rt.block_on(async {
        let (stack, gate) = setup(&ns, 's', &pcap.0, Config::default());
        let (ready_tx, ready_rx) = mpsc::channel();
        let (close_tx, close_rx) = mpsc::channel::<()>();
        let kernel = ns_thread(&ns, move || {
            let l = std::net::TcpListener::bind(SocketAddrV4::new(KERNEL, 7002)).unwrap();
            ready_tx.send(()).unwrap();
            let (mut s, _) = l.accept().expect("kernel accept");
            s.set_read_timeout(Some(TIMEOUT)).unwrap();
            let mut b = [0u8; 5];
            s.read_exact(&mut b).expect("kernel read");
            s.write_all(b"world").unwrap();
            close_rx.recv_timeout(TIMEOUT).unwrap();
            // The kernel's FIN, held back from synack by the gate.
            s.shutdown(Shutdown::Write).unwrap();
            ready_tx.send(()).unwrap();
            let mut rest = Vec::new();
            s.read_to_end(&mut rest).expect("kernel read to EOF");
            rest.len()
        });
        ready_rx.recv_timeout(TIMEOUT).unwrap();
        let mut conn = within(
            "connect",
            TcpStream::connect_on(&stack, SocketAddrV4::new(KERNEL, 7002)),
        )
        .await
        .unwrap();
        let port = conn.local_addr().unwrap().port();
        conn.write_all(b"hello").await.unwrap();
        let mut b = [0u8; 5];
        within("read", conn.read_exact(&mut b)).await.unwrap();
        assert_eq!(&b, b"world");
        // synack stops hearing the kernel; the kernel sends its FIN.
        gate.close();
        close_tx.send(()).unwrap();
        ready_rx.recv_timeout(TIMEOUT).unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        // Our FIN goes out before we have seen theirs.
        conn.shutdown().await.unwrap();
        assert_eq!(conn.state().unwrap(), State::FinWait1);
        tokio::time::sleep(Duration::from_millis(100)).await;
        gate.open();
        let mut rest = Vec::new();
        within("read to EOF", conn.read_to_end(&mut rest))
            .await
            .unwrap();
        assert!(rest.is_empty());
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while conn.state().unwrap() != State::TimeWait && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(conn.state().unwrap(), State::TimeWait);
        assert_eq!(kernel.await, 0);
        // The kernel's side of a simultaneous close is TIME-WAIT too.
        let ss = ns.exec(["ss", "-tanH", "state", "time-wait"]).unwrap();
        let ss = String::from_utf8_lossy(&ss.stdout).to_string();
        println!("kernel sockets in TIME-WAIT: {ss}");
        assert!(
            ss.contains(&format!("192.0.2.2:{port}")),
            "the kernel is not in TIME-WAIT: {ss:?}"
        );
        port
    });
    drop(rt);
    let segs = read_pcap(&pcap.0);
    let conn: Vec<&Seg> = segs.iter().filter(|s| s.synack_port() == port).collect();
    assert_eq!(
        conn.iter().filter(|s| s.flags & RST != 0).count(),
        0,
        "RST seen"
    );
    let ours = conn
        .iter()
        .find(|s| s.out && s.flags & FIN != 0)
        .expect("synack's FIN");
    let theirs = conn
        .iter()
        .find(|s| !s.out && s.flags & FIN != 0)
        .expect("the kernel's FIN");
    // The FINs crossed: neither acknowledges the other's FIN.
    assert_eq!(ours.ack, theirs.seq, "synack's FIN acks the kernel's FIN");
    assert_eq!(
        theirs.ack,
        ours.seq.wrapping_add(ours.len as u32),
        "kernel FIN acks ours"
    );
}
