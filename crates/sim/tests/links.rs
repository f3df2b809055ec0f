//! Behaviour of simulated links and the router, measured with raw packets.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::net::Ipv4Addr;
use std::task::{Context, Poll};
use std::time::Duration;

use synack_device::{Device, Packet};
use synack_sim::{
    CaptureBuffer, CapturePoint, GilbertElliott, HostConfig, HostEnd, LinkConfig, Network,
    read_pcap,
};

const A: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const B: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
const C: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 3);
const D: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 4);

/// An IPv4-looking packet of `len` bytes (at least 24) to `dst`, numbered `id`.
fn packet(dst: Ipv4Addr, id: u32, len: usize) -> Packet {
    let mut p = vec![0u8; len.max(24)];
    p[0] = 0x45;
    p[16..20].copy_from_slice(&dst.octets());
    p[20..24].copy_from_slice(&id.to_be_bytes());
    for (i, b) in p[24..].iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(31) ^ id as u8;
    }
    p
}

fn id(p: &[u8]) -> u32 {
    u32::from_be_bytes([p[20], p[21], p[22], p[23]])
}

fn send(end: &mut HostEnd, packets: Vec<Packet>) {
    let mut q: VecDeque<Packet> = packets.into();
    let n = q.len();
    let mut cx = Context::from_waker(std::task::Waker::noop());
    assert!(matches!(end.poll_send(&mut cx, &mut q), Poll::Ready(Ok(k)) if k == n));
    assert!(q.is_empty());
}

/// Receives everything that arrives until `until` of simulated time, with arrival times.
async fn recv_until(net: &Network, end: &mut HostEnd, until: Duration) -> Vec<(Duration, Packet)> {
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + until.saturating_sub(net.elapsed());
    loop {
        let mut batch = Vec::new();
        tokio::select! {
            biased;
            r = poll_fn(|cx| end.poll_recv(cx, &mut batch, 64)) => {
                r.unwrap();
                let at = net.elapsed();
                got.extend(batch.into_iter().map(|p| (at, p)));
            }
            () = tokio::time::sleep_until(deadline) => return got,
        }
    }
}

fn two_hosts(net: &Network, up: LinkConfig, down: LinkConfig) -> (HostEnd, HostEnd) {
    let a = net.add_host(HostConfig::new(A).uplink(up)).unwrap();
    let b = net.add_host(HostConfig::new(B).downlink(down)).unwrap();
    (a, b)
}

const MS: Duration = Duration::from_millis(1);

#[tokio::test(start_paused = true)]
async fn serialisation_delay_and_rate() {
    let net = Network::new(1);
    // 1250 bytes at 1 Mbit/s: 10 ms each.
    let link = LinkConfig::new().rate_bps(1_000_000).queue_packets(10_000);
    let (mut a, mut b) = two_hosts(&net, link, LinkConfig::new());
    send(&mut a, (0..10).map(|i| packet(B, i, 1250)).collect());
    let got = recv_until(&net, &mut b, 200 * MS).await;
    let times: Vec<Duration> = got.iter().map(|(t, _)| *t).collect();
    let want: Vec<Duration> = (1..=10).map(|k| k * 10 * MS).collect();
    assert_eq!(times, want);
    assert_eq!(
        got.iter().map(|(_, p)| id(p)).collect::<Vec<_>>(),
        (0..10).collect::<Vec<_>>()
    );

    // A long run delivers at the link rate: 1000 packets of 1000 bytes at 8 Mbit/s = 1 s.
    let net = Network::new(1);
    let link = LinkConfig::new().rate_bps(8_000_000).queue_packets(10_000);
    let (mut a, mut b) = two_hosts(&net, link, LinkConfig::new());
    send(&mut a, (0..1000).map(|i| packet(B, i, 1000)).collect());
    let got = recv_until(&net, &mut b, 3000 * MS).await;
    assert_eq!(got.len(), 1000);
    assert_eq!(got.last().unwrap().0, 1000 * MS);
    assert_eq!(got[0].0, MS);
    let stats = a.uplink().stats();
    assert_eq!(stats.delivered_bytes, 1_000_000);
    assert_eq!(stats.max_queue_packets, 1000);
}

#[tokio::test(start_paused = true)]
async fn drop_tail_in_packets_and_bytes() {
    let net = Network::new(1);
    let link = LinkConfig::new().rate_bps(1_000_000).queue_packets(5);
    let (mut a, mut b) = two_hosts(&net, link, LinkConfig::new());
    send(&mut a, (0..20).map(|i| packet(B, i, 1000)).collect());
    let got = recv_until(&net, &mut b, 1000 * MS).await;
    assert_eq!(
        got.iter().map(|(_, p)| id(p)).collect::<Vec<_>>(),
        vec![0, 1, 2, 3, 4]
    );
    let s = a.uplink().stats();
    assert_eq!(
        (s.offered_packets, s.dropped_queue, s.delivered_packets),
        (20, 15, 5)
    );
    assert_eq!(s.dropped(), 15);

    // Bytes: 3000 bytes hold three packets of 1000 but not a fourth.
    let net = Network::new(1);
    let link = LinkConfig::new().rate_bps(1_000_000).queue_bytes(3500);
    let (mut a, mut b) = two_hosts(&net, link, LinkConfig::new());
    send(&mut a, (0..10).map(|i| packet(B, i, 1000)).collect());
    // Once the first packet is out (8 ms), there is room for one more.
    tokio::time::sleep(9 * MS).await;
    send(&mut a, vec![packet(B, 10, 1000), packet(B, 11, 1000)]);
    let got = recv_until(&net, &mut b, 1000 * MS).await;
    assert_eq!(
        got.iter().map(|(_, p)| id(p)).collect::<Vec<_>>(),
        vec![0, 1, 2, 10]
    );
    let s = a.uplink().stats();
    assert_eq!((s.dropped_queue, s.delivered_packets), (8, 4));
}

#[tokio::test(start_paused = true)]
async fn delay_and_jitter_bounds_keep_order() {
    let net = Network::new(3);
    let link = LinkConfig::new().delay(10 * MS).jitter(5 * MS);
    let (mut a, mut b) = two_hosts(&net, link, LinkConfig::new());
    let recv = tokio::spawn({
        let net = net.clone();
        async move { recv_until(&net, &mut b, 1200 * MS).await }
    });
    let mut sent_at = Vec::new();
    for i in 0..1000 {
        sent_at.push(net.elapsed());
        send(&mut a, vec![packet(B, i, 100)]);
        tokio::time::sleep(MS).await;
    }
    let got = recv.await.unwrap();
    assert_eq!(got.len(), 1000);
    let mut spread = Vec::new();
    for (i, (t, p)) in got.iter().enumerate() {
        assert_eq!(id(p) as usize, i, "jitter alone never reorders");
        let d = *t - sent_at[i];
        // Delivery happens on the next millisecond tick.
        assert!(d >= 10 * MS && d <= 16 * MS, "packet {i} took {d:?}");
        spread.push(d);
    }
    let min = spread.iter().min().unwrap();
    let max = spread.iter().max().unwrap();
    assert!(*max - *min >= 3 * MS, "jitter is applied: {min:?}..{max:?}");
}

/// Sends `n` numbered packets, one per millisecond, and returns what arrived.
async fn stream_through(
    net: &Network,
    a: &mut HostEnd,
    b: HostEnd,
    n: u32,
) -> Vec<(Duration, Packet)> {
    let recv = tokio::spawn({
        let net = net.clone();
        let mut b = b;
        let until = net.elapsed() + Duration::from_millis(u64::from(n) + 500);
        async move { recv_until(&net, &mut b, until).await }
    });
    for i in 0..n {
        send(a, vec![packet(B, i, 64)]);
        tokio::time::sleep(MS).await;
    }
    recv.await.unwrap()
}

#[tokio::test(start_paused = true)]
async fn random_loss_rate() {
    let net = Network::new(7);
    let (mut a, b) = two_hosts(&net, LinkConfig::new().loss(0.1), LinkConfig::new());
    let got = stream_through(&net, &mut a, b, 10_000).await;
    let s = a.uplink().stats();
    assert!(
        (900..1100).contains(&s.dropped_loss),
        "lost {}",
        s.dropped_loss
    );
    assert_eq!(got.len() as u64, 10_000 - s.dropped_loss);
    assert_eq!(s.delivered_packets, got.len() as u64);
}

#[tokio::test(start_paused = true)]
async fn gilbert_elliott_rate_and_bursts() {
    let net = Network::new(11);
    let ge = GilbertElliott::bursts(0.01, 0.25);
    let (mut a, b) = two_hosts(
        &net,
        LinkConfig::new().gilbert_elliott(ge),
        LinkConfig::new(),
    );
    let n = 20_000;
    let got = stream_through(&net, &mut a, b, n).await;
    let lost = f64::from(n) - got.len() as f64;
    let rate = lost / f64::from(n);
    let expected = ge.mean_loss();
    assert!(
        (rate - expected).abs() < 0.25 * expected,
        "loss {rate} vs {expected}"
    );
    // Mean run of consecutive losses: 1 / p_bad_to_good = 4 packets.
    let mut received = vec![false; n as usize];
    for (_, p) in &got {
        received[id(p) as usize] = true;
    }
    let mut runs = Vec::new();
    let mut run = 0;
    for r in received {
        if r {
            if run > 0 {
                runs.push(run);
            }
            run = 0;
        } else {
            run += 1;
        }
    }
    let mean_run = runs.iter().sum::<u32>() as f64 / runs.len() as f64;
    assert!((3.0..5.0).contains(&mean_run), "mean burst {mean_run}");
    assert_eq!(a.uplink().stats().dropped_loss, lost as u64);
}

#[tokio::test(start_paused = true)]
async fn duplication() {
    let net = Network::new(5);
    let (mut a, b) = two_hosts(&net, LinkConfig::new().duplicate(0.1), LinkConfig::new());
    let got = stream_through(&net, &mut a, b, 5000).await;
    let s = a.uplink().stats();
    assert!(
        (400..600).contains(&s.duplicated),
        "duplicated {}",
        s.duplicated
    );
    assert_eq!(got.len() as u64, 5000 + s.duplicated);
    // Each copy follows its original at once.
    let dups = got.windows(2).filter(|w| w[0].1 == w[1].1).count();
    assert_eq!(dups as u64, s.duplicated);
}

#[tokio::test(start_paused = true)]
async fn reordering() {
    let net = Network::new(5);
    let link = LinkConfig::new().delay(5 * MS).reorder(0.05, 10 * MS);
    let (mut a, b) = two_hosts(&net, link, LinkConfig::new());
    let got = stream_through(&net, &mut a, b, 5000).await;
    assert_eq!(got.len(), 5000, "reordering loses nothing");
    let s = a.uplink().stats();
    assert!(
        (150..350).contains(&s.reordered),
        "reordered {}",
        s.reordered
    );
    // A packet held back arrives after packets sent after it.
    let ids: Vec<u32> = got.iter().map(|(_, p)| id(p)).collect();
    let mut late = 0;
    let mut highest = None;
    for &i in &ids {
        if highest.is_some_and(|h| i < h) {
            late += 1;
        }
        highest = highest.max(Some(i));
    }
    assert_eq!(late, s.reordered);
}

#[tokio::test(start_paused = true)]
async fn corruption_flips_one_bit() {
    let net = Network::new(9);
    let (mut a, b) = two_hosts(&net, LinkConfig::new().corrupt(0.2), LinkConfig::new());
    let got = stream_through(&net, &mut a, b, 2000).await;
    let s = a.uplink().stats();
    assert!(
        (300..500).contains(&s.corrupted),
        "corrupted {}",
        s.corrupted
    );
    // Corruption may hit the destination address (then the router drops the
    // packet) or the number; compare with what was sent by position.
    let router = net.router_stats();
    assert_eq!(got.len() as u64 + router.unroutable, 2000);
    // Nothing is reordered or lost: walk both in order, skipping what the router dropped.
    let mut flipped = 0;
    let mut next = 0u32;
    for (_, p) in &got {
        let distance = |i: u32| -> u32 {
            let want = packet(B, i, 64);
            want.iter().zip(p).map(|(x, y)| (x ^ y).count_ones()).sum()
        };
        while distance(next) > 1 {
            next += 1;
            assert!(next < 2000, "a received packet matches no sent one");
        }
        flipped += distance(next);
        next += 1;
    }
    assert_eq!(u64::from(flipped) + router.unroutable, s.corrupted);
}

#[tokio::test(start_paused = true)]
async fn mtu_drops_and_counts() {
    let net = Network::new(1);
    let (mut a, mut b) = two_hosts(&net, LinkConfig::new().mtu(1000), LinkConfig::new());
    send(
        &mut a,
        vec![packet(B, 0, 1000), packet(B, 1, 1001), packet(B, 2, 9000)],
    );
    let got = recv_until(&net, &mut b, 10 * MS).await;
    assert_eq!(got.len(), 1);
    assert_eq!(id(&got[0].1), 0);
    let s = a.uplink().stats();
    assert_eq!(
        (s.dropped_mtu, s.delivered_packets, s.offered_packets),
        (2, 1, 3)
    );
    assert_eq!(a.capabilities().mtu, 1500);
    assert!(!a.capabilities().checksum.rx);
}

#[tokio::test(start_paused = true)]
async fn router_fan_in_shares_one_bottleneck() {
    let net = Network::new(1);
    let fast = LinkConfig::new().delay(MS);
    // The receiver's port: 1 Mbit/s (8 ms per 1000-byte packet), 10 packets of queue.
    let port = LinkConfig::new().rate_bps(1_000_000).queue_packets(10);
    let mut senders: Vec<HostEnd> = [A, C, D]
        .into_iter()
        .map(|addr| net.add_host(HostConfig::new(addr).uplink(fast)).unwrap())
        .collect();
    let mut rx = net.add_host(HostConfig::new(B).downlink(port)).unwrap();
    for (k, s) in senders.iter_mut().enumerate() {
        send(
            s,
            (0..20)
                .map(|i| packet(B, 100 * k as u32 + i, 1000))
                .collect(),
        );
    }
    // A packet to nobody is counted by the router.
    send(
        &mut senders[0],
        vec![packet(Ipv4Addr::new(198, 51, 100, 9), 0, 100)],
    );
    let got = recv_until(&net, &mut rx, 1000 * MS).await;
    let port = rx.downlink().stats();
    assert_eq!(port.offered_packets, 60);
    assert_eq!(port.delivered_packets, 10);
    assert_eq!(port.dropped_queue, 50);
    assert_eq!(got.len(), 10);
    // Back to back at the port's rate: one every 8 ms.
    for w in got.windows(2) {
        assert_eq!(w[1].0 - w[0].0, 8 * MS);
    }
    let r = net.router_stats();
    assert_eq!((r.forwarded, r.unroutable), (60, 1));
    for s in &senders {
        assert_eq!(
            s.uplink().stats().delivered_packets,
            s.uplink().stats().offered_packets
        );
    }
}

#[tokio::test(start_paused = true)]
async fn settings_change_during_a_run() {
    let net = Network::new(1);
    let (mut a, b) = two_hosts(&net, LinkConfig::new(), LinkConfig::new());
    let up = a.uplink();
    let recv = tokio::spawn({
        let net = net.clone();
        let mut b = b;
        async move { recv_until(&net, &mut b, 400 * MS).await }
    });
    for i in 0..300 {
        match i {
            100 => up.set_config(LinkConfig::new().blackhole()),
            200 => up.set_config(LinkConfig::new()),
            _ => {}
        }
        send(&mut a, vec![packet(B, i, 64)]);
        tokio::time::sleep(MS).await;
    }
    let got: Vec<u32> = recv.await.unwrap().iter().map(|(_, p)| id(p)).collect();
    let want: Vec<u32> = (0..100).chain(200..300).collect();
    assert_eq!(got, want);
    assert_eq!(up.stats().dropped_loss, 100);
    assert!(up.config().loss == 0.0);
}

#[tokio::test(start_paused = true)]
async fn duplicate_address_is_refused() {
    let net = Network::new(1);
    let _a = net.add_host(HostConfig::new(A)).unwrap();
    let err = net.add_host(HostConfig::new(A)).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse);
    assert_eq!(
        net.uplink(B).unwrap_err().kind(),
        std::io::ErrorKind::NotFound
    );
}

/// A lossy, jittery, reordering, duplicating, corrupting exchange both ways, captured.
async fn capture_run(seed: u64) -> (Vec<u8>, Vec<u8>) {
    let net = Network::new(seed);
    let bad = LinkConfig::new()
        .delay(3 * MS)
        .jitter(2 * MS)
        .rate_bps(20_000_000)
        .queue_packets(20)
        .loss(0.05)
        .duplicate(0.05)
        .reorder(0.05, 4 * MS)
        .corrupt(0.05);
    let mut a = net
        .add_host(HostConfig::new(A).uplink(bad).downlink(bad))
        .unwrap();
    let mut b = net
        .add_host(HostConfig::new(B).uplink(bad).downlink(bad))
        .unwrap();
    let (cap_a, cap_b) = (CaptureBuffer::new(), CaptureBuffer::new());
    a.uplink()
        .capture(CapturePoint::Ingress, cap_a.clone())
        .unwrap();
    b.downlink()
        .capture(CapturePoint::Egress, cap_b.clone())
        .unwrap();
    for i in 0..500 {
        send(&mut a, vec![packet(B, i, 200 + (i as usize * 37) % 1200)]);
        send(&mut b, vec![packet(A, i, 64)]);
        tokio::time::sleep(MS).await;
        let mut sink = Vec::new();
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let _ = a.poll_recv(&mut cx, &mut sink, 64);
        let _ = b.poll_recv(&mut cx, &mut sink, 64);
    }
    tokio::time::sleep(100 * MS).await;
    (cap_a.contents(), cap_b.contents())
}

#[tokio::test(start_paused = true)]
async fn same_seed_same_pcap_bytes() {
    let first = capture_run(1234).await;
    let second = capture_run(1234).await;
    assert_eq!(first, second);
    let other = capture_run(4321).await;
    assert_eq!(
        first.0, other.0,
        "what the sender sends does not depend on the seed"
    );
    assert_ne!(first.1, other.1, "what arrives does");
    let sent = read_pcap(&first.0).unwrap();
    assert_eq!(sent.len(), 500);
    assert_eq!(sent[0].micros, 0);
    let arrived = read_pcap(&first.1).unwrap();
    assert!(
        arrived.len() > 400 && arrived.len() < 550,
        "{}",
        arrived.len()
    );
    assert!(arrived.windows(2).all(|w| w[0].micros <= w[1].micros));
}

#[tokio::test(start_paused = true)]
async fn buffers_are_recycled() {
    let net = Network::new(1);
    let (mut a, mut b) = two_hosts(&net, LinkConfig::new(), LinkConfig::new());
    let mut p = a.alloc();
    assert!(p.is_empty() && p.capacity() >= 1500);
    p.extend_from_slice(&packet(B, 1, 100));
    let ptr = p.as_ptr();
    send(&mut a, vec![p]);
    let mut got = recv_until(&net, &mut b, 5 * MS).await;
    let (_, p) = got.pop().unwrap();
    assert_eq!(p.as_ptr(), ptr, "the packet is not copied on its way");
    b.recycle(p);
    let again = a.alloc();
    assert_eq!(again.as_ptr(), ptr, "alloc hands out the recycled buffer");
    assert!(again.is_empty());
    // Buffers too small for the MTU are not kept.
    b.recycle(Vec::with_capacity(10));
    assert_ne!(a.alloc().capacity(), 10);
}

/// Which packets a full queue keeps, when three hosts send bursts that
/// reach the router at the same instant, with the hosts sending in `order`.
async fn same_instant_survivors(order: [usize; 3]) -> Vec<u32> {
    let net = Network::new(7);
    let fast = LinkConfig::new().delay(MS);
    let port = LinkConfig::new().rate_bps(1_000_000).queue_packets(4);
    let mut senders: Vec<HostEnd> = [A, C, D]
        .into_iter()
        .map(|addr| net.add_host(HostConfig::new(addr).uplink(fast)).unwrap())
        .collect();
    let mut rx = net.add_host(HostConfig::new(B).downlink(port)).unwrap();
    for k in order {
        let burst = (0..5)
            .map(|i| packet(B, 100 * k as u32 + i, 1000))
            .collect();
        send(&mut senders[k], burst);
    }
    let got = recv_until(&net, &mut rx, 1000 * MS).await;
    got.iter().map(|(_, p)| id(p)).collect()
}

/// The router's order among packets that arrive at one instant comes from
/// the seed, not from which host's task happened to run first: the same
/// survivors whatever order the hosts sent in, and each host's own packets
/// in the order it sent them.
#[tokio::test(start_paused = true)]
async fn same_instant_arrivals_do_not_depend_on_which_host_sent_first() {
    let first = same_instant_survivors([0, 1, 2]).await;
    assert_eq!(first.len(), 4);
    for order in [[2, 1, 0], [1, 0, 2], [2, 0, 1]] {
        assert_eq!(
            same_instant_survivors(order).await,
            first,
            "order {order:?}"
        );
    }
    for host in 0..3u32 {
        let own: Vec<u32> = first.iter().copied().filter(|i| i / 100 == host).collect();
        assert!(own.is_sorted(), "host {host} out of order: {own:?}");
    }
}

/// A real IPv4 header (checksum filled) from `src` to `dst` carrying `payload` as `proto`.
fn ip(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, payload: &[u8]) -> Packet {
    let len = (20 + payload.len()) as u16;
    let mut p = vec![0x45, 0, 0, 0, 0, 7, 0x40, 0, 64, proto, 0, 0];
    p[2..4].copy_from_slice(&len.to_be_bytes());
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    let sum = inet_checksum(&p);
    p[10..12].copy_from_slice(&sum.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

fn inet_checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = bytes
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[tokio::test(start_paused = true)]
async fn router_answers_unknown_addresses_once_it_has_an_address() {
    let net = Network::new(1);
    let link = LinkConfig::new().delay(10 * MS);
    let (mut a, _b) = two_hosts(&net, link, link);
    let nobody = Ipv4Addr::new(192, 0, 2, 77);
    let syn = ip(A, nobody, 6, &[0x30; 40]);

    // No address: silent, as before.
    send(&mut a, vec![syn.clone()]);
    assert!(recv_until(&net, &mut a, 100 * MS).await.is_empty());
    assert_eq!(net.router_stats().unroutable, 1);

    let router = Ipv4Addr::new(192, 0, 2, 254);
    net.set_router_addr(router, 24).unwrap();
    let err = net.add_host(HostConfig::new(router)).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse);
    send(&mut a, vec![syn.clone()]);
    let got = recv_until(&net, &mut a, 300 * MS).await;
    assert_eq!(got.len(), 1);
    let (at, icmp) = &got[0];
    // Up to the router (10 ms) and back down A's perfect downlink.
    assert_eq!(*at, 100 * MS + 10 * MS);
    assert_eq!(&icmp[12..16], &router.octets());
    assert_eq!(&icmp[16..20], &A.octets());
    assert_eq!((icmp[9], icmp[20], icmp[21]), (1, 3, 1));
    assert_eq!(inet_checksum(&icmp[..20]), 0);
    assert_eq!(inet_checksum(&icmp[20..]), 0);
    assert_eq!(&icmp[28..], &syn[..], "a short datagram is quoted whole");
    assert_eq!(net.router_stats().icmp_unreachable, 1);

    // Never about an ICMP error, nor a broadcast.
    let error = ip(A, nobody, 1, &icmp[20..]);
    let bcast = ip(A, Ipv4Addr::new(192, 0, 2, 255), 17, &[0; 8]);
    send(&mut a, vec![error, bcast]);
    assert!(recv_until(&net, &mut a, 500 * MS).await.is_empty());
    assert_eq!(net.router_stats().icmp_unreachable, 1);
    assert_eq!(net.router_stats().unroutable, 4);
}

#[tokio::test(start_paused = true)]
async fn hold_catches_packets_in_flight_and_keeps_their_order() {
    let net = Network::new(3);
    // 1 ms per packet on the uplink: some queued, some on the wire when held.
    let up = LinkConfig::new().delay(50 * MS).rate_bps(8 * 1250 * 1000);
    let down = LinkConfig::new().delay(50 * MS);
    let (mut a, mut b) = two_hosts(&net, up, down);
    let from_a = |i| {
        let mut p = packet(B, i, 1250);
        p[12..16].copy_from_slice(&A.octets());
        p
    };
    send(&mut a, (0..150).map(from_a).collect());
    // Packet i leaves the transmitter at i + 1 ms, reaches the router 50 ms
    // later and B 50 ms after that. At 120 ms: 0-19 have reached B, 20-69
    // are on B's downlink, 70-119 on the uplink's wire, 120-149 queued.
    tokio::time::sleep(120 * MS).await;
    net.hold(A, B);
    send(&mut a, vec![from_a(150)]);
    assert_eq!(net.router_stats().held, 131);
    let before = recv_until(&net, &mut b, 1000 * MS).await;
    assert_eq!(before.len(), 20);
    assert!(before.iter().all(|(at, _)| *at <= 120 * MS));
    net.release(A, B);
    let after = recv_until(&net, &mut b, 2000 * MS).await;
    assert!(after.iter().all(|(at, _)| *at == 1050 * MS));
    let ids: Vec<u32> = before.iter().chain(&after).map(|(_, p)| id(p)).collect();
    assert_eq!(ids, (0..151).collect::<Vec<_>>());
    assert!(after.iter().all(|(_, p)| *p == from_a(id(p))));
    assert_eq!(net.router_stats().held, 0);
}
