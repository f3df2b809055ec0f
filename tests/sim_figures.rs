//! Congestion and robustness figures: synack over the simulated network.
//!
//! Every scenario runs under paused tokio time with fixed seeds, so the figures
//! are the same on every run. Print them with
//! `cargo test --release --test sim_figures -- --nocapture`.
//!
//! 1. Utilisation: one flow, 100 Mbit/s, 40 ms RTT, one BDP of queue.
//! 2. Fairness: four flows through one 100 Mbit/s bottleneck, started 2 s apart;
//!    2b: two CUBIC against two NewReno flows there.
//! 3. Loss: 1 % random loss at 10 Mbit/s, 20 ms RTT, against the Mathis model.
//! 4. Stress: loss, duplication, reordering and corruption both ways.
//! 5. Determinism: two runs with one seed give byte-identical captures.
//! 6. Against a peer: scenarios 1 and 3 with smoltcp as the receiver.

#[path = "common/smol.rs"]
mod smol;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sha2::{Digest, Sha256};
use smol::{SmolConfig, SmolHost};
use synack::engine::CongestionAlgorithm;
use synack::net::{TcpListener, TcpStream};
use synack::{Config, Stack};
use synack_sim::{CaptureBuffer, CapturePoint, HostConfig, HostEnd, LinkConfig, Network};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Whether figures 1 and 6a assert their utilisation target (>= 90 %): met
/// since CUBIC, SACK and RACK-TLP landed.
const ENFORCE_CONGESTION_TARGETS: bool = true;

/// Whether figure 2 asserts Jain's index >= 0.95 over 10–30 s: met, 0.996
/// at figure 2's start times; over ten start skews of 0–9 ms (figure 2c)
/// CUBIC averages 0.979 with 9 of 10 runs at >= 0.95 (lowest 0.943), and
/// Linux's own CUBIC through the same bottleneck (figure 2L, real time)
/// gave 0.928–0.965, mean 0.946, in five runs. Two things got it there:
/// the receiver ACKs every second segment even within one receive batch
/// (before, one stretch ACK per batch starved HyStart++ of RTT samples and
/// the senders' ACK clock), and the dumbbell's random delay of up to one
/// packet time on each sender's uplink, against the phase effects of a
/// deterministic drop-tail simulation (see [`dumbbell`]); without it CUBIC
/// averaged 0.933 (3 of 10).
const ENFORCE_FAIRNESS_TARGET: bool = true;

const RECEIVER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 100);
const PORT: u16 = 5001;
const MSS_BYTES: f64 = 1460.0;

fn sender_addr(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(192, 0, 2, 1 + i as u8)
}

/// Socket buffers large enough that the window is never the limit.
fn big_buffers() -> Config {
    Config {
        send_buffer: 8 << 20,
        recv_buffer: 8 << 20,
        ..Config::default()
    }
}

fn stack(end: HostEnd, addr: Ipv4Addr, secret: u64) -> Stack {
    stack_ts(end, addr, secret, true)
}

/// A figure's stack, with or without RFC 7323 timestamps (without, as with a
/// Windows peer, RTT samples come from timing segments; issue 18).
fn stack_ts(end: HostEnd, addr: Ipv4Addr, secret: u64, timestamps: bool) -> Stack {
    Stack::builder(end, addr, 24)
        .config(Config {
            timestamps,
            ..big_buffers()
        })
        .secret([secret, !secret])
        .build()
}

/// A dumbbell: `senders` hosts and one receiver, every link with a quarter of
/// the RTT; the receiver's downlink (the router's port towards it) is the
/// bottleneck, with `rate`, `queue_bytes` and `loss`.
///
/// Each sender's uplink adds a random delay of up to one full-sized
/// packet's time at the bottleneck (120 µs at 100 Mbit/s; uniform, order
/// kept). Without it the simulation is too regular: flows' packets reach the
/// full drop-tail queue in the same phase every round, and which flow loses
/// is decided by that phase, not by chance in proportion to what it sends
/// (Floyd and Jacobson, "On Traffic Phase Effects in Packet-Switched
/// Gateways", 1992, whose remedy this is; ns-2's TCP `overhead_` does the
/// same). Real hosts and links supply that randomness themselves.
struct Dumbbell {
    net: Network,
    senders: Vec<HostEnd>,
    receiver: HostEnd,
}

fn dumbbell(
    seed: u64,
    senders: usize,
    rate: u64,
    rtt: Duration,
    queue_bytes: usize,
    loss: f64,
) -> Dumbbell {
    let net = Network::new(seed);
    let leg = LinkConfig::new().delay(rtt / 4);
    let uplink = leg.jitter(packet_time(rate));
    let senders = (0..senders)
        .map(|i| {
            net.add_host(HostConfig::new(sender_addr(i)).uplink(uplink).downlink(leg))
                .expect("new address")
        })
        .collect();
    let bottleneck = leg.rate_bps(rate).queue_bytes(queue_bytes).loss(loss);
    let receiver = net
        .add_host(HostConfig::new(RECEIVER).uplink(leg).downlink(bottleneck))
        .expect("new address");
    Dumbbell {
        net,
        senders,
        receiver,
    }
}

/// How long a full-sized (1500-byte) packet takes at `rate`.
fn packet_time(rate: u64) -> Duration {
    Duration::from_nanos(1500 * 8 * 1_000_000_000 / rate)
}

fn bdp_bytes(rate: u64, rtt: Duration) -> usize {
    (rate as f64 * rtt.as_secs_f64() / 8.0) as usize
}

fn mbps(bytes: u64, over: Duration) -> f64 {
    bytes as f64 * 8.0 / over.as_secs_f64() / 1e6
}

/// What a sink has received on one connection.
#[derive(Default)]
struct Flow {
    bytes: AtomicU64,
    /// SHA-256 of the stream so far.
    hash: std::sync::Mutex<Sha256>,
}

impl Flow {
    fn received(&self, data: &[u8]) {
        self.hash.lock().unwrap().update(data);
        self.bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
    }

    fn load(&self, order: Ordering) -> u64 {
        self.bytes.load(order)
    }

    fn digest(&self) -> Vec<u8> {
        self.hash.lock().unwrap().clone().finalize().to_vec()
    }
}

/// Counts (and hashes) bytes received on each accepted connection, in accept order, of a synack listener.
async fn synack_sink(stack: &Stack, flows: usize) -> Vec<Arc<Flow>> {
    let counters: Vec<Arc<Flow>> = (0..flows).map(|_| Arc::default()).collect();
    let listener = TcpListener::bind_on(stack, SocketAddr::from((RECEIVER, PORT)))
        .await
        .expect("bind");
    let cs = counters.clone();
    tokio::spawn(async move {
        for counter in cs {
            let (mut s, _) = listener.accept().await.expect("accept");
            tokio::spawn(async move {
                let mut buf = vec![0u8; 256 * 1024];
                loop {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => counter.received(&buf[..n]),
                    };
                }
            });
        }
    });
    counters
}

/// Counts (and hashes) bytes received on each accepted connection of a smoltcp host.
fn smol_sink(host: &SmolHost, flows: usize) -> Vec<Arc<Flow>> {
    let counters: Vec<Arc<Flow>> = (0..flows).map(|_| Arc::default()).collect();
    let mut listener = host.listen(PORT).expect("smoltcp listen");
    let cs = counters.clone();
    tokio::spawn(async move {
        for counter in cs {
            let s = listener.accept().await.expect("smoltcp accept");
            tokio::spawn(async move {
                let mut buf = vec![0u8; 256 * 1024];
                loop {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => counter.received(&buf[..n]),
                    };
                }
            });
        }
    });
    counters
}

/// Sends without end (until the runtime stops) from `stack` to the receiver.
fn bulk_sender(stack: Stack, start_after: Duration) {
    tokio::spawn(async move {
        tokio::time::sleep(start_after).await;
        let mut s = TcpStream::connect_on(&stack, SocketAddr::from((RECEIVER, PORT)))
            .await
            .expect("connect");
        let chunk = vec![0x5au8; 64 * 1024];
        while s.write_all(&chunk).await.is_ok() {}
    });
}

/// Sends `len` bytes, closes, and waits for the receiver to close too (keeping
/// the stack alive until everything is delivered: dropping its last handle
/// stops its driver); returns the sender's stream info at the end.
fn sized_sender(stack: Stack, len: usize) -> tokio::task::JoinHandle<synack::TcpInfo> {
    tokio::spawn(async move {
        let mut s = TcpStream::connect_on(&stack, SocketAddr::from((RECEIVER, PORT)))
            .await
            .expect("connect");
        s.write_all(&pattern(len, len as u64)).await.expect("write");
        s.shutdown().await.expect("shutdown");
        let mut rest = [0u8; 64];
        while matches!(s.read(&mut rest).await, Ok(n) if n > 0) {}
        s.info().expect("info")
    })
}

fn values(counters: &[Arc<Flow>]) -> Vec<u64> {
    counters.iter().map(|c| c.load(Ordering::Relaxed)).collect()
}

fn jain(xs: &[f64]) -> f64 {
    let sum: f64 = xs.iter().sum();
    let squares: f64 = xs.iter().map(|x| x * x).sum();
    sum * sum / (xs.len() as f64 * squares)
}

/// Held while a figure prints, so figures run in parallel do not interleave lines.
static PRINT: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn print_lock() -> std::sync::MutexGuard<'static, ()> {
    PRINT.lock().unwrap_or_else(|e| e.into_inner())
}

fn verdict(name: &str, ok: bool, target: &str) {
    if ok {
        println!("  {name}: target {target} met");
    } else {
        println!("  {name}: TARGET NOT MET ({target})");
    }
}

// ---------------------------------------------------------------------------------
// 1. Utilisation
// ---------------------------------------------------------------------------------

const UTIL_RATE: u64 = 100_000_000;
const UTIL_RTT: Duration = Duration::from_millis(40);
const UTIL_WARMUP: Duration = Duration::from_secs(5);
const UTIL_RUN: Duration = Duration::from_secs(25);

/// Runs one bulk flow from `sender` into `counters[0]`; returns the goodput after warm-up, Mbit/s.
async fn utilisation(sender: HostEnd, counters: &[Arc<Flow>]) -> f64 {
    bulk_sender(stack(sender, sender_addr(0), 1), Duration::ZERO);
    tokio::time::sleep(UTIL_WARMUP).await;
    let at_warmup = counters[0].load(Ordering::Relaxed);
    tokio::time::sleep(UTIL_RUN - UTIL_WARMUP).await;
    let at_end = counters[0].load(Ordering::Relaxed);
    mbps(at_end - at_warmup, UTIL_RUN - UTIL_WARMUP)
}

fn util_path(seed: u64) -> Dumbbell {
    dumbbell(
        seed,
        1,
        UTIL_RATE,
        UTIL_RTT,
        bdp_bytes(UTIL_RATE, UTIL_RTT),
        0.0,
    )
}

fn print_utilisation(peer: &str, goodput: f64, net: &Network) -> bool {
    let port = net.downlink(RECEIVER).unwrap().stats();
    let share = goodput / (UTIL_RATE as f64 / 1e6);
    let _print = print_lock();
    println!("\nFigure {peer}: 1 flow, 100 Mbit/s, 40 ms RTT, 1 BDP queue");
    println!(
        "  goodput {goodput:.1} Mbit/s from 5 s to 25 s = {:.1} % of the link rate; bottleneck dropped {} of {} packets",
        share * 100.0,
        port.dropped_queue,
        port.offered_packets
    );
    let ok = share >= 0.90;
    verdict("utilisation", ok, ">= 90 % of link rate");
    ok
}

#[tokio::test(start_paused = true)]
async fn figure_1_utilisation() {
    let Dumbbell {
        net,
        mut senders,
        receiver,
    } = util_path(1);
    let receiver = stack(receiver, RECEIVER, 2);
    let counters = synack_sink(&receiver, 1).await;
    let goodput = utilisation(senders.remove(0), &counters).await;
    let ok = print_utilisation("1 — utilisation, synack → synack", goodput, &net);
    assert!(goodput > 0.0, "the flow moved data");
    assert!(ok || !ENFORCE_CONGESTION_TARGETS, "utilisation target");
}

// ---------------------------------------------------------------------------------
// 2. Fairness
// ---------------------------------------------------------------------------------

/// One run of the fairness scenario: four flows through one 100 Mbit/s
/// bottleneck (40 ms RTT, one BDP of drop-tail queue), flow `i` using
/// `algorithm(i)` and starting at `i` · (2 s + `skew`), paced or not.
struct FairnessRun {
    /// Each flow's goodput over 10–30 s, Mbit/s.
    rates: Vec<f64>,
    index: f64,
    dropped: u64,
    offered: u64,
}

async fn fairness_run(
    skew: Duration,
    pacing: bool,
    algorithm: impl Fn(usize) -> CongestionAlgorithm,
) -> FairnessRun {
    const FLOWS: usize = 4;
    let rate = 100_000_000;
    let rtt = Duration::from_millis(40);
    let Dumbbell {
        net,
        senders,
        receiver,
    } = dumbbell(2, FLOWS, rate, rtt, bdp_bytes(rate, rtt), 0.0);
    let receiver = stack(receiver, RECEIVER, 100);
    let counters = synack_sink(&receiver, FLOWS).await;
    for (i, end) in senders.into_iter().enumerate() {
        let secret = 10 + i as u64;
        let config = Config {
            pacing,
            congestion: algorithm(i),
            ..big_buffers()
        };
        let stack = Stack::builder(end, sender_addr(i), 24)
            .config(config)
            .secret([secret, !secret])
            .build();
        bulk_sender(stack, (Duration::from_secs(2) + skew) * i as u32);
    }
    tokio::time::sleep(Duration::from_secs(10)).await;
    let at_10 = values(&counters);
    tokio::time::sleep(Duration::from_secs(20)).await;
    let at_30 = values(&counters);
    let rates: Vec<f64> = at_30
        .iter()
        .zip(&at_10)
        .map(|(b, a)| mbps(b - a, Duration::from_secs(20)))
        .collect();
    let port = net.downlink(RECEIVER).unwrap().stats();
    FairnessRun {
        index: jain(&rates),
        rates,
        dropped: port.dropped_queue,
        offered: port.offered_packets,
    }
}

#[tokio::test(start_paused = true)]
async fn figure_2_fairness() {
    let run = fairness_run(Duration::ZERO, false, |_| CongestionAlgorithm::Cubic).await;
    let total: f64 = run.rates.iter().sum();
    let _print = print_lock();
    println!(
        "\nFigure 2 — fairness: 4 flows started 2 s apart, 100 Mbit/s bottleneck, 40 ms RTT, 1 BDP queue, 30 s"
    );
    for (i, r) in run.rates.iter().enumerate() {
        println!("  flow {i}: {r:.1} Mbit/s over 10–30 s");
    }
    println!(
        "  total {total:.1} Mbit/s; Jain's index {:.3}; bottleneck dropped {} of {} packets",
        run.index, run.dropped, run.offered
    );
    verdict("fairness", run.index >= 0.95, "Jain's index >= 0.95");
    assert!(run.rates.iter().all(|r| *r > 0.0), "every flow moved data");
    assert!(
        run.index >= 0.95 || !ENFORCE_FAIRNESS_TARGET,
        "fairness target"
    );
}

/// Figure 2c: how much figure 2 depends on chance. The same scenario with
/// the flows' start times moved by a few milliseconds (flow `i` at
/// `i` · (2 s + skew), skew 0–9 ms): CUBIC unpaced (figure 2's setting),
/// CUBIC paced, and NewReno. Reported, not asserted: the spread is the
/// point. Figure 2L (`tests/linux_fairness.rs`) runs Linux's CUBIC through
/// the same bottleneck for comparison.
#[test]
fn figure_2c_fairness_sensitivity() {
    const SKEWS_MS: [u64; 10] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9];
    const VARIANTS: [(&str, bool, CongestionAlgorithm); 3] = [
        ("CUBIC        ", false, CongestionAlgorithm::Cubic),
        ("CUBIC, paced ", true, CongestionAlgorithm::Cubic),
        ("NewReno      ", false, CongestionAlgorithm::NewReno),
    ];
    let runs: Vec<(usize, u64, f64)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..VARIANTS.len())
            .flat_map(|v| SKEWS_MS.map(|skew| (v, skew)))
            .map(|(v, skew)| {
                scope.spawn(move || {
                    let (_, pacing, algorithm) = VARIANTS[v];
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .start_paused(true)
                        .build()
                        .expect("runtime");
                    let run =
                        rt.block_on(fairness_run(Duration::from_millis(skew), pacing, |_| {
                            algorithm
                        }));
                    assert!(run.rates.iter().all(|r| *r > 0.0), "every flow moved data");
                    (v, skew, run.index)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("run"))
            .collect()
    });
    let _print = print_lock();
    println!(
        "\nFigure 2c — fairness sensitivity: figure 2 with flow i started at i·(2 s + skew), skew 0–9 ms"
    );
    for (v, (label, ..)) in VARIANTS.iter().enumerate() {
        let of: Vec<(u64, f64)> = runs
            .iter()
            .filter(|r| r.0 == v)
            .map(|r| (r.1, r.2))
            .collect();
        let mean = of.iter().map(|r| r.1).sum::<f64>() / of.len() as f64;
        let min = of.iter().map(|r| r.1).fold(f64::INFINITY, f64::min);
        let met = of.iter().filter(|r| r.1 >= 0.95).count();
        let list: Vec<String> = of.iter().map(|(_, index)| format!("{index:.3}")).collect();
        println!(
            "  {label}: {}; mean {mean:.3}, min {min:.3}, {met} of {} at >= 0.95",
            list.join(" "),
            of.len()
        );
    }
}

/// Figure 2b: two CUBIC and two NewReno flows (chosen per stack through
/// `Config::congestion`) through the bottleneck of figure 2, started 2 s apart
/// in the order CUBIC, NewReno, CUBIC, NewReno. Reported only: RFC 9438 §5.2
/// expects CUBIC to take more than an equal share from Reno at this BDP.
#[tokio::test(start_paused = true)]
async fn figure_2b_cubic_against_newreno() {
    const FLOWS: usize = 4;
    let algorithm = |i: usize| {
        if i.is_multiple_of(2) {
            CongestionAlgorithm::Cubic
        } else {
            CongestionAlgorithm::NewReno
        }
    };
    let run = fairness_run(Duration::ZERO, false, algorithm).await;
    let rates = &run.rates;
    let total: f64 = rates.iter().sum();
    let share = |alg| {
        (0..FLOWS)
            .filter(|i| algorithm(*i) == alg)
            .map(|i| rates[i])
            .sum::<f64>()
    };
    let (cubic, newreno) = (
        share(CongestionAlgorithm::Cubic),
        share(CongestionAlgorithm::NewReno),
    );
    let _print = print_lock();
    println!(
        "\nFigure 2b — CUBIC against NewReno: flows 0, 2 CUBIC, 1, 3 NewReno, started 2 s apart, 100 Mbit/s, 40 ms RTT, 1 BDP queue, 30 s"
    );
    for (i, r) in rates.iter().enumerate() {
        println!(
            "  flow {i} ({:?}): {r:.1} Mbit/s over 10–30 s",
            algorithm(i)
        );
    }
    println!(
        "  CUBIC {cubic:.1} Mbit/s ({:.0} %), NewReno {newreno:.1} Mbit/s ({:.0} %); Jain's index {:.3}; bottleneck dropped {} of {} packets",
        cubic / total * 100.0,
        newreno / total * 100.0,
        run.index,
        run.dropped,
        run.offered
    );
    assert!(rates.iter().all(|r| *r > 0.0), "every flow moved data");
}

// ---------------------------------------------------------------------------------
// 3. Loss, against the Mathis model
// ---------------------------------------------------------------------------------

const LOSS_RATE: u64 = 10_000_000;
const LOSS_RTT: Duration = Duration::from_millis(20);
const LOSS_P: f64 = 0.01;
const LOSS_BYTES: usize = 8 << 20;

fn loss_path(seed: u64) -> Dumbbell {
    dumbbell(
        seed,
        1,
        LOSS_RATE,
        LOSS_RTT,
        bdp_bytes(LOSS_RATE, LOSS_RTT).max(20 * 1500),
        LOSS_P,
    )
}

/// The Mathis et al. (1997) bound: MSS/RTT · 1.22/√p, in Mbit/s.
fn mathis_mbps() -> f64 {
    MSS_BYTES * 8.0 / LOSS_RTT.as_secs_f64() * 1.22 / LOSS_P.sqrt() / 1e6
}

/// Sends `LOSS_BYTES` from `sender`; waits until `counters[0]` has it all; returns (Mbit/s, duration).
async fn loss_transfer(
    net: &Network,
    sender: HostEnd,
    counters: &[Arc<Flow>],
    timestamps: bool,
) -> (f64, Duration, synack::TcpInfo) {
    let start = net.elapsed();
    let info = sized_sender(stack_ts(sender, sender_addr(0), 3, timestamps), LOSS_BYTES);
    let deadline = start + Duration::from_secs(600);
    while counters[0].load(Ordering::Relaxed) < LOSS_BYTES as u64 {
        assert!(
            net.elapsed() < deadline,
            "transfer did not complete in 600 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let took = net.elapsed() - start;
    let info = info.await.expect("sender");
    let sent = Sha256::digest(pattern(LOSS_BYTES, LOSS_BYTES as u64)).to_vec();
    assert_eq!(counters[0].digest(), sent, "the stream arrived intact");
    (mbps(LOSS_BYTES as u64, took), took, info)
}

fn print_loss(
    title: &str,
    goodput: f64,
    took: Duration,
    info: &synack::TcpInfo,
    net: &Network,
) -> bool {
    let model = mathis_mbps();
    let port = net.downlink(RECEIVER).unwrap().stats();
    let _print = print_lock();
    println!("\nFigure {title}: 8 MiB, 1 % random loss, 10 Mbit/s, 20 ms RTT");
    println!(
        "  {goodput:.2} Mbit/s in {:.1} s; Mathis model {model:.2} Mbit/s (ratio {:.2}); link rate 10 Mbit/s",
        took.as_secs_f64(),
        goodput / model
    );
    println!(
        "  lost on the wire {} of {} packets; sender: {} fast retransmits, {} timeouts, {} bytes retransmitted",
        port.dropped_loss,
        port.offered_packets,
        info.fast_retransmits,
        info.timeouts,
        info.bytes_retrans
    );
    // The model's bound, capped by the link itself.
    let expected = model.min(LOSS_RATE as f64 / 1e6);
    let ok = goodput >= expected / 2.0 && goodput <= expected * 2.0;
    verdict(
        "Mathis",
        ok,
        "within a factor of 2 of min(model, link rate)",
    );
    ok
}

#[tokio::test(start_paused = true)]
async fn figure_3_loss_mathis() {
    let Dumbbell {
        net,
        mut senders,
        receiver,
    } = loss_path(3);
    let receiver = stack(receiver, RECEIVER, 4);
    let counters = synack_sink(&receiver, 1).await;
    let (goodput, took, info) = loss_transfer(&net, senders.remove(0), &counters, true).await;
    let ok = print_loss("3 — loss, synack → synack", goodput, took, &info, &net);
    assert!(ok, "throughput within a factor of 2 of the Mathis model");
}

/// Figure 3 with timestamps off at both ends (issue 18): the sender times
/// segments itself, and must still be within a factor of 2 of the model.
#[tokio::test(start_paused = true)]
async fn figure_3t_loss_mathis_without_timestamps() {
    let Dumbbell {
        net,
        mut senders,
        receiver,
    } = loss_path(3);
    let receiver = stack_ts(receiver, RECEIVER, 4, false);
    let counters = synack_sink(&receiver, 1).await;
    let (goodput, took, info) = loss_transfer(&net, senders.remove(0), &counters, false).await;
    let title = "3t — loss, synack → synack, no timestamps";
    let ok = print_loss(title, goodput, took, &info, &net);
    assert!(ok, "throughput within a factor of 2 of the Mathis model");
}

// ---------------------------------------------------------------------------------
// 4. Stress
// ---------------------------------------------------------------------------------

fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = synack_sim::Rng::new(seed);
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        v.extend_from_slice(&rng.next_u64().to_le_bytes());
    }
    v.truncate(len);
    v
}

// This figure found an ACK war: after a timeout both ends rewound SND.NXT and
// sent pure ACKs with a sequence number the other had already passed; each
// dropped the other's ACK as unacceptable and answered with another, so neither
// SND.UNA moved and the RTO backed off past 60 s. Pure ACKs now carry SND.MAX.
#[tokio::test(start_paused = true)]
async fn figure_4_stress() {
    stress(stress_link(), true).await;
}

/// Figure 4 with timestamps off at both ends (issue 18): no PAWS to throw
/// out old duplicates, no TSecr for RTT samples.
#[tokio::test(start_paused = true)]
async fn figure_4t_stress_without_timestamps() {
    stress(stress_link(), false).await;
}

/// Figure 4's impairments, on the uplinks only: each direction crosses one
/// of them once.
fn stress_link() -> LinkConfig {
    LinkConfig::new()
        .delay(Duration::from_millis(10))
        .rate_bps(20_000_000)
        .queue_packets(100)
        .loss(0.10)
        .duplicate(0.05)
        .reorder(0.05, Duration::from_millis(15))
        .corrupt(0.01)
}

/// 8 MiB each way at once over two uplinks with the `bad` settings; asserts
/// integrity and no stall longer than 60 s.
async fn stress(bad: LinkConfig, timestamps: bool) {
    const LEN: usize = 8 << 20;
    let net = Network::new(4);
    let clean = LinkConfig::new().delay(Duration::from_millis(10));
    let a = net
        .add_host(HostConfig::new(sender_addr(0)).uplink(bad).downlink(clean))
        .unwrap();
    let b = net
        .add_host(HostConfig::new(RECEIVER).uplink(bad).downlink(clean))
        .unwrap();
    let (up_link, down_link) = (a.uplink(), b.uplink());
    let sa = stack_ts(a, sender_addr(0), 5, timestamps);
    let client_stack = sa.clone();
    let sb = stack_ts(b, RECEIVER, 6, timestamps);
    let progress = Arc::new(AtomicU64::new(0));

    let up = pattern(LEN, 1);
    let down = pattern(LEN, 2);
    let (up_hash, down_hash) = (Sha256::digest(&up), Sha256::digest(&down));

    /// Writes `out` and reads to the end at once on one stream, counting received
    /// bytes in `progress`; whenever nothing happens for 5 s, leaves the stream's
    /// info in `stuck` for the stall report.
    async fn exchange(
        mut s: TcpStream,
        out: Vec<u8>,
        progress: Arc<AtomicU64>,
        stuck: Arc<std::sync::Mutex<Option<synack::TcpInfo>>>,
    ) -> Vec<u8> {
        use std::pin::Pin;
        use std::task::Poll;
        use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
        let (mut sent, mut shut, mut eof) = (0, false, false);
        let mut got = Vec::with_capacity(LEN);
        let mut buf = vec![0u8; 64 * 1024];
        while !(eof && shut) {
            let step = std::future::poll_fn(|cx| {
                let mut moved = false;
                if !shut {
                    let r = if sent < out.len() {
                        Pin::new(&mut s)
                            .poll_write(cx, &out[sent..])
                            .map_ok(|n| sent += n)
                    } else {
                        Pin::new(&mut s).poll_shutdown(cx).map_ok(|()| shut = true)
                    };
                    match r {
                        Poll::Ready(Ok(())) => moved = true,
                        Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                        Poll::Pending => {}
                    }
                }
                if !eof {
                    let mut rb = ReadBuf::new(&mut buf);
                    match Pin::new(&mut s).poll_read(cx, &mut rb) {
                        Poll::Ready(Ok(())) => {
                            let n = rb.filled().len();
                            eof = n == 0;
                            got.extend_from_slice(rb.filled());
                            progress.fetch_add(n as u64, Ordering::Relaxed);
                            moved = true;
                        }
                        Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                        Poll::Pending => {}
                    }
                }
                if moved {
                    Poll::Ready(Ok(()))
                } else {
                    Poll::Pending
                }
            });
            match tokio::time::timeout(Duration::from_secs(5), step).await {
                Ok(r) => r.expect("stream I/O"),
                Err(_) => *stuck.lock().unwrap() = s.info().ok(),
            }
        }
        got
    }

    let listener = TcpListener::bind_on(&sb, SocketAddr::from((RECEIVER, PORT)))
        .await
        .unwrap();
    let (server_stuck, client_stuck) = (Arc::default(), Arc::default());
    let (p, stuck) = (progress.clone(), Arc::clone(&server_stuck));
    let server = tokio::spawn(async move {
        let (s, _) = listener.accept().await.expect("accept");
        exchange(s, down, p, stuck).await
    });
    let (p, stuck) = (progress.clone(), Arc::clone(&client_stuck));
    let client = tokio::spawn(async move {
        let s = TcpStream::connect_on(&sa, SocketAddr::from((RECEIVER, PORT)))
            .await
            .expect("connect");
        exchange(s, up, p, stuck).await
    });

    // Watch for stalls: the longest stretch of simulated time without new bytes.
    let start = net.elapsed();
    let (mut last, mut last_change, mut longest) = (0, start, Duration::ZERO);
    while !(server.is_finished() && client.is_finished()) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = net.elapsed();
        let p = progress.load(Ordering::Relaxed);
        if p != last {
            last = p;
            last_change = now;
        }
        longest = longest.max(now - last_change);
        if longest > Duration::from_secs(60) {
            println!(
                "  STALL at {p} bytes received: client uplink {:?}; server uplink {:?}; client stack {:?}; server stack {:?}",
                up_link.stats(),
                down_link.stats(),
                client_stack.stats(),
                sb.stats()
            );
            println!("  client stream: {:?}", client_stuck.lock().unwrap());
            println!("  server stream: {:?}", server_stuck.lock().unwrap());
        }
        assert!(
            longest <= Duration::from_secs(60),
            "stalled for {longest:?} at {p} bytes"
        );
    }
    let took = net.elapsed() - start;
    let at_server = server.await.expect("server");
    let at_client = client.await.expect("client");
    let (us, ds) = (up_link.stats(), down_link.stats());
    let _print = print_lock();
    println!(
        "\nFigure 4{} — stress: 8 MiB each way, 10 % loss, 5 % duplication, 5 % reordering (+15 ms), 1 % corruption, both ways{}",
        if timestamps { "" } else { "t" },
        if timestamps { "" } else { ", no timestamps" }
    );
    println!(
        "  done in {:.1} s simulated; longest stall {:.2} s; up: lost {}, duplicated {}, reordered {}, corrupted {}; down: lost {}, duplicated {}, reordered {}, corrupted {}",
        took.as_secs_f64(),
        longest.as_secs_f64(),
        us.dropped_loss,
        us.duplicated,
        us.reordered,
        us.corrupted,
        ds.dropped_loss,
        ds.duplicated,
        ds.reordered,
        ds.corrupted
    );
    println!(
        "  checksum failures caught: client {}, server {}",
        client_stack.stats().rx_bad_checksum,
        sb.stats().rx_bad_checksum
    );
    assert_eq!(
        Sha256::digest(&at_server),
        up_hash,
        "client → server stream intact"
    );
    assert_eq!(
        Sha256::digest(&at_client),
        down_hash,
        "server → client stream intact"
    );
    assert!(
        us.corrupted > 0 && ds.corrupted > 0,
        "corruption was exercised"
    );
}

// ---------------------------------------------------------------------------------
// 5. Determinism
// ---------------------------------------------------------------------------------

/// One whole synack transfer over a lossy, jittery path, captured at both ends.
fn captured_run(seed: u64) -> (Vec<u8>, Vec<u8>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let net = Network::new(seed);
        let path = LinkConfig::new()
            .delay(Duration::from_millis(5))
            .jitter(Duration::from_millis(2))
            .rate_bps(20_000_000)
            .queue_packets(50)
            .loss(0.01)
            .reorder(0.01, Duration::from_millis(3));
        let a = net
            .add_host(HostConfig::new(sender_addr(0)).uplink(path).downlink(path))
            .unwrap();
        let b = net
            .add_host(HostConfig::new(RECEIVER).uplink(path).downlink(path))
            .unwrap();
        let (sent, received) = (CaptureBuffer::new(), CaptureBuffer::new());
        a.uplink()
            .capture(CapturePoint::Ingress, sent.clone())
            .unwrap();
        b.downlink()
            .capture(CapturePoint::Egress, received.clone())
            .unwrap();
        let sa = stack(a, sender_addr(0), 7);
        let sb = stack(b, RECEIVER, 8);
        let counters = synack_sink(&sb, 1).await;
        let len = 2 << 20;
        sized_sender(sa, len).await.expect("sender");
        while counters[0].load(Ordering::Relaxed) < len as u64 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        (sent.contents(), received.contents())
    })
}

#[test]
fn figure_5_determinism() {
    let first = captured_run(5);
    let second = captured_run(5);
    let other = captured_run(6);
    let _print = print_lock();
    println!(
        "\nFigure 5 — determinism: 2 MiB over a lossy, jittery path, seed 5 twice and seed 6: captures of {} and {} bytes; identical: {}; seed 6 differs: {}",
        first.0.len(),
        first.1.len(),
        first == second,
        first != other
    );
    assert!(
        first.0 == second.0,
        "sender-side captures are byte-identical"
    );
    assert!(
        first.1 == second.1,
        "receiver-side captures are byte-identical"
    );
    assert!(first != other, "another seed gives another run");
}

// ---------------------------------------------------------------------------------
// 6. Against a peer: smoltcp as the receiver
// ---------------------------------------------------------------------------------

fn smol_receiver(end: HostEnd) -> SmolHost {
    let mut config = SmolConfig::new(RECEIVER, 24);
    config.rx_buffer = 8 << 20;
    config.seed = Some(9);
    SmolHost::spawn_with(end, config)
}

#[tokio::test(start_paused = true)]
async fn figure_6a_utilisation_smoltcp_receiver() {
    let Dumbbell {
        net,
        mut senders,
        receiver,
    } = util_path(61);
    let host = smol_receiver(receiver);
    let counters = smol_sink(&host, 1);
    let goodput = utilisation(senders.remove(0), &counters).await;
    let ok = print_utilisation("6a — utilisation, synack → smoltcp", goodput, &net);
    assert!(
        host.error().is_none(),
        "smoltcp host failed: {:?}",
        host.error()
    );
    assert!(goodput > 0.0, "the flow moved data");
    assert!(ok || !ENFORCE_CONGESTION_TARGETS, "utilisation target");
}

#[tokio::test(start_paused = true)]
async fn figure_6b_loss_smoltcp_receiver() {
    let Dumbbell {
        net,
        mut senders,
        receiver,
    } = loss_path(62);
    let host = smol_receiver(receiver);
    let counters = smol_sink(&host, 1);
    let (goodput, took, info) = loss_transfer(&net, senders.remove(0), &counters, true).await;
    print_loss("6b — loss, synack → smoltcp", goodput, took, &info, &net);
    assert!(
        host.error().is_none(),
        "smoltcp host failed: {:?}",
        host.error()
    );
    assert_eq!(
        counters[0].load(Ordering::Relaxed),
        LOSS_BYTES as u64,
        "every byte arrived"
    );
}
