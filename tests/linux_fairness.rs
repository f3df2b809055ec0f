//! Figure 2L: Linux's own TCP through figure 2's simulated bottleneck.
//!
//! The same dumbbell as figure 2 (`tests/sim_figures.rs`): four senders
//! started 2 s apart, 100 Mbit/s, 40 ms RTT, a drop-tail queue of one BDP,
//! 30 s, Jain's index over 10–30 s. Here the four senders and the receiver
//! are the kernel's TCP (CUBIC with its HyStart, or `SYNACK_LINUX_CC`), each host in a namespace of its own behind a TUN
//! interface, and the TUNs are joined by a `synack-sim` network running on
//! real time. It answers the question figure 2 raises: how fair is the
//! reference stack in exactly this scenario?
//!
//! Real time (about 36 s) and root (namespaces, TUN) are needed, so the test
//! is ignored by default; run it with
//! `cargo test --release --test linux_fairness -- --ignored --nocapture`.
//! Only 192.0.2.0/24 is used, inside namespaces the test makes and removes.

#![cfg(all(target_os = "linux", feature = "tun", feature = "sim"))]

mod common;

use std::collections::VecDeque;
use std::future::poll_fn;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::Poll;
use std::time::{Duration, Instant};

use common::netns::{self, NetNs};
use nix::sys::socket::{getsockopt, setsockopt, sockopt};
use std::ffi::OsString;
use synack_device::{Device, Tun};
use synack_sim::{HostConfig, LinkConfig, Network};

const FLOWS: usize = 4;
const RECEIVER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 100);
const PORT: u16 = 5001;
const RATE: u64 = 100_000_000;
const RTT: Duration = Duration::from_millis(40);
const STAGGER: Duration = Duration::from_secs(2);
const RUN: Duration = Duration::from_secs(30);
const WINDOW_START: Duration = Duration::from_secs(10);

fn sender_addr(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(192, 0, 2, 1 + i as u8)
}

/// Moves packets both ways between two devices until one of them fails.
async fn bridge(mut a: impl Device, mut b: impl Device) {
    let (mut from_a, mut from_b) = (Vec::new(), Vec::new());
    let (mut to_b, mut to_a) = (VecDeque::new(), VecDeque::new());
    poll_fn(|cx| {
        loop {
            let mut progress = false;
            match a.poll_recv(cx, &mut from_a, 64) {
                Poll::Ready(Ok(_)) => {
                    progress |= !from_a.is_empty();
                    to_b.extend(from_a.drain(..));
                }
                Poll::Ready(Err(_)) => return Poll::Ready(()),
                Poll::Pending => {}
            }
            match b.poll_recv(cx, &mut from_b, 64) {
                Poll::Ready(Ok(_)) => {
                    progress |= !from_b.is_empty();
                    to_a.extend(from_b.drain(..));
                }
                Poll::Ready(Err(_)) => return Poll::Ready(()),
                Poll::Pending => {}
            }
            if !to_b.is_empty() {
                match b.poll_send(cx, &mut to_b) {
                    Poll::Ready(Ok(n)) => progress |= n > 0,
                    Poll::Ready(Err(_)) => return Poll::Ready(()),
                    Poll::Pending => {}
                }
            }
            if !to_a.is_empty() {
                match a.poll_send(cx, &mut to_a) {
                    Poll::Ready(Ok(n)) => progress |= n > 0,
                    Poll::Ready(Err(_)) => return Poll::Ready(()),
                    Poll::Pending => {}
                }
            }
            if !progress {
                return Poll::Pending;
            }
        }
    })
    .await
}

/// The congestion control the kernel senders set on their sockets
/// (`TCP_CONGESTION`): `SYNACK_LINUX_CC`, or CUBIC (the host's default may
/// be another).
fn linux_cc() -> String {
    std::env::var("SYNACK_LINUX_CC").unwrap_or_else(|_| "cubic".to_owned())
}

/// A namespace with a TUN interface named after `tag`, holding `addr`/24.
fn host_ns(rt: &tokio::runtime::Runtime, tag: char, addr: Ipv4Addr) -> (NetNs, Tun) {
    let ns = NetNs::new("lf").expect("creating a network namespace");
    let name = netns::tun_name("lf", tag);
    let tun = ns
        .in_ns(|| {
            let _guard = rt.enter();
            Tun::create(&name, 1500)
        })
        .expect("creating the TUN inside the namespace");
    ns.addr_add(&name, &format!("{addr}/24"))
        .expect("adding the address");
    ns.link_up(&name).expect("bringing the TUN up");
    (ns, tun)
}

fn jain(rates: &[f64]) -> f64 {
    let sum: f64 = rates.iter().sum();
    let squares: f64 = rates.iter().map(|r| r * r).sum();
    sum * sum / (rates.len() as f64 * squares)
}

#[test]
#[ignore = "real time (36 s) and root: run with --ignored"]
fn figure_2l_linux_fairness_through_the_simulated_bottleneck() {
    if let Err(reason) = netns::can_run() {
        netns::skip(&reason);
        return;
    }
    let rt = netns::runtime();
    let (receiver_ns, receiver_tun) = host_ns(&rt, 'r', RECEIVER);
    let senders: Vec<(NetNs, Tun)> = (0..FLOWS)
        .map(|i| host_ns(&rt, char::from(b'a' + i as u8), sender_addr(i)))
        .collect();
    let cc = linux_cc();

    // Figure 2's dumbbell, on real time.
    let net = {
        let _guard = rt.enter();
        Network::new(2)
    };
    let leg = LinkConfig::new().delay(RTT / 4);
    // As figure 2's dumbbell: up to one packet time (120 µs) of random delay
    // on each sender's uplink against phase effects.
    let uplink = leg.jitter(Duration::from_nanos(1500 * 8 * 1_000_000_000 / RATE));
    let bdp = (RATE as f64 * RTT.as_secs_f64() / 8.0) as usize;
    let bottleneck = leg.rate_bps(RATE).queue_bytes(bdp);
    let receiver_end = net
        .add_host(HostConfig::new(RECEIVER).uplink(leg).downlink(bottleneck))
        .expect("receiver joins");
    rt.spawn(bridge(receiver_tun, receiver_end));
    let mut namespaces = vec![receiver_ns];
    for (i, (ns, tun)) in senders.into_iter().enumerate() {
        let end = net
            .add_host(HostConfig::new(sender_addr(i)).uplink(uplink).downlink(leg))
            .expect("sender joins");
        rt.spawn(bridge(tun, end));
        namespaces.push(ns);
    }

    // The receiver: counts what each sender delivers.
    let counters: Arc<Vec<AtomicU64>> = Arc::new((0..FLOWS).map(|_| AtomicU64::new(0)).collect());
    let listener = namespaces[0].in_ns(|| TcpListener::bind((RECEIVER, PORT)).expect("bind"));
    let sink = counters.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let Ok(SocketAddr::V4(peer)) = stream.peer_addr() else {
                continue;
            };
            let flow = usize::from(peer.ip().octets()[3]) - 1;
            let sink = sink.clone();
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 256 * 1024];
                while let Ok(n) = stream.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    sink[flow].fetch_add(n as u64, Ordering::Relaxed);
                }
            });
        }
    });

    // The senders: bulk data from 2 s apart until the run ends.
    let start = Instant::now();
    let end = start + RUN;
    let threads: Vec<_> = namespaces[1..]
        .iter()
        .enumerate()
        .map(|(i, ns)| {
            ns.spawn_in_ns(move || {
                std::thread::sleep(STAGGER * i as u32);
                let mut stream =
                    TcpStream::connect((RECEIVER, PORT)).expect("kernel sender connects");
                let cc = OsString::from(linux_cc());
                setsockopt(&stream, sockopt::TcpCongestion, &cc)
                    .unwrap_or_else(|e| panic!("TCP_CONGESTION {cc:?}: {e}"));
                let set = getsockopt(&stream, sockopt::TcpCongestion).expect("TCP_CONGESTION");
                assert_eq!(set, cc, "the socket uses the asked-for algorithm");
                stream
                    .set_write_timeout(Some(Duration::from_secs(1)))
                    .expect("timeout");
                let chunk = vec![0x5au8; 64 * 1024];
                while Instant::now() < end {
                    match stream.write(&chunk) {
                        Ok(_) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                        Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
                        Err(e) => panic!("sender {i}: {e}"),
                    }
                }
            })
            .expect("spawning a sender")
        })
        .collect();

    let snapshot = |counters: &[AtomicU64]| -> Vec<u64> {
        counters.iter().map(|c| c.load(Ordering::Relaxed)).collect()
    };
    std::thread::sleep((start + WINDOW_START).saturating_duration_since(Instant::now()));
    let at_10 = snapshot(&counters);
    std::thread::sleep(end.saturating_duration_since(Instant::now()));
    let at_30 = snapshot(&counters);
    for t in threads {
        t.join().expect("sender thread");
    }
    let span = (RUN - WINDOW_START).as_secs_f64();
    let rates: Vec<f64> = at_30
        .iter()
        .zip(&at_10)
        .map(|(b, a)| (b - a) as f64 * 8.0 / span / 1e6)
        .collect();
    let port = net.downlink(RECEIVER).expect("receiver's port").stats();
    println!(
        "\nFigure 2L — Linux ({cc}) through figure 2's bottleneck: 4 flows started 2 s apart, 100 Mbit/s, 40 ms RTT, 1 BDP queue, 30 s (real time)"
    );
    for (i, r) in rates.iter().enumerate() {
        println!("  flow {i}: {r:.1} Mbit/s over 10–30 s");
    }
    println!(
        "  total {:.1} Mbit/s; Jain's index {:.3}; bottleneck dropped {} of {} packets",
        rates.iter().sum::<f64>(),
        jain(&rates),
        port.dropped_queue,
        port.offered_packets
    );
    assert!(
        rates.iter().all(|r| *r > 0.0),
        "every kernel flow moved data"
    );
    drop(net);
    rt.shutdown_timeout(Duration::from_secs(1));
    drop(namespaces);
}
