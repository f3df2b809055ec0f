//! The TUN device against the real Linux stack, inside a throwaway network namespace.
//!
//! Needs root, `/dev/net/tun` and `ip`; skips (printing why) otherwise.

#![cfg(all(target_os = "linux", feature = "tun"))]

mod common;

use std::future::poll_fn;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::time::Duration;

use common::netns::{self, NetNs};
use synack_device::{ChecksumOffload, Device, Medium, Packet, Tun};

const TIMEOUT: Duration = Duration::from_secs(5);
const LOCAL: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const PEER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
const PEER_PORT: u16 = 9999;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// A TUN interface name unique to this process and test.
fn tun_name(tag: char) -> String {
    // IFNAMSIZ: at most 15 characters; "synack-t" + pid (at most 7 digits).
    let name = format!("synack-{tag}{}", std::process::id());
    assert!(name.len() <= 15, "{name} too long");
    name
}

/// The parts of an IPv4/UDP packet the tests look at.
#[derive(Debug)]
struct Udp4 {
    src: Ipv4Addr,
    dst: Ipv4Addr,
    src_port: u16,
    dst_port: u16,
    payload: Vec<u8>,
}

fn parse_udp4(packet: &[u8]) -> Option<Udp4> {
    if packet.len() < 20 || packet[0] >> 4 != 4 || packet[9] != 17 {
        return None;
    }
    let ihl = usize::from(packet[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([packet[2], packet[3]]));
    if total != packet.len() || packet.len() < ihl + 8 {
        return None;
    }
    let udp = &packet[ihl..];
    let udp_len = usize::from(u16::from_be_bytes([udp[4], udp[5]]));
    if udp_len < 8 || udp_len > udp.len() {
        return None;
    }
    Some(Udp4 {
        src: Ipv4Addr::new(packet[12], packet[13], packet[14], packet[15]),
        dst: Ipv4Addr::new(packet[16], packet[17], packet[18], packet[19]),
        src_port: u16::from_be_bytes([udp[0], udp[1]]),
        dst_port: u16::from_be_bytes([udp[2], udp[3]]),
        payload: udp[8..udp_len].to_vec(),
    })
}

/// The Internet checksum of `bytes`.
fn checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = bytes
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Builds an IPv4/UDP packet into `buf` (IP header checksum set, UDP checksum 0 = none).
fn build_udp4(buf: &mut Packet, src: SocketAddr, dst: SocketAddr, payload: &[u8]) {
    let (SocketAddr::V4(src), SocketAddr::V4(dst)) = (src, dst) else {
        panic!("IPv4 only");
    };
    let total = u16::try_from(20 + 8 + payload.len()).expect("fits");
    buf.clear();
    buf.extend_from_slice(&[0x45, 0]);
    buf.extend_from_slice(&total.to_be_bytes());
    buf.extend_from_slice(&[0x12, 0x34, 0x40, 0x00, 64, 17, 0, 0]);
    buf.extend_from_slice(&src.ip().octets());
    buf.extend_from_slice(&dst.ip().octets());
    let sum = checksum(&buf[..20]);
    buf[10..12].copy_from_slice(&sum.to_be_bytes());
    buf.extend_from_slice(&src.port().to_be_bytes());
    buf.extend_from_slice(&dst.port().to_be_bytes());
    buf.extend_from_slice(&(total - 20).to_be_bytes());
    buf.extend_from_slice(&[0, 0]);
    buf.extend_from_slice(payload);
}

#[test]
fn checksum_of_a_known_header() {
    // Example header from RFC 1071 discussions / Wikipedia's IPv4 checksum article.
    let mut header = [
        0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8, 0x00,
        0x01, 0xc0, 0xa8, 0x00, 0xc7,
    ];
    assert_eq!(checksum(&header), 0xb861);
    header[10..12].copy_from_slice(&0xb861u16.to_be_bytes());
    assert_eq!(checksum(&header), 0);
}

/// Receives from the TUN until an IPv4/UDP packet to `PEER:PEER_PORT` shows up,
/// skipping anything else the kernel sends (IPv6 router solicitations, MLD...).
async fn recv_udp_to_peer(tun: &mut Tun) -> io::Result<(Packet, Udp4)> {
    loop {
        let mut out = Vec::new();
        let n = poll_fn(|cx| tun.poll_recv(cx, &mut out, 16)).await?;
        assert_eq!(n, out.len());
        assert!(n >= 1);
        let mut found = None;
        for packet in out {
            match parse_udp4(&packet) {
                Some(udp) if found.is_none() && udp.dst == PEER && udp.dst_port == PEER_PORT => {
                    found = Some((packet, udp));
                }
                _ => {
                    eprintln!("skipping a {}-byte packet from the kernel", packet.len());
                    tun.recycle(packet);
                }
            }
        }
        if let Some(found) = found {
            return Ok(found);
        }
    }
}

#[test]
fn tun_carries_udp_both_ways() {
    if let Err(reason) = netns::can_run() {
        netns::skip(&reason);
        return;
    }
    // Declared first, dropped last: the namespace outlives the TUN and the runtime.
    let ns = NetNs::new("tun").expect("creating a namespace");
    let rt = runtime();
    let name = tun_name('t');
    let mut tun = rt
        .block_on(async { Tun::create(&name, 1500) })
        .expect("creating the TUN");
    assert_eq!(tun.name(), name);
    assert_eq!(tun.mtu(), 1500);
    let caps = tun.capabilities();
    assert_eq!(caps.medium, Medium::Ip);
    assert_eq!(caps.mtu, 1500);
    assert_eq!(caps.checksum, ChecksumOffload::default());

    ns.move_link(&name)
        .expect("moving the TUN into the namespace");
    ns.addr_add(&name, "192.0.2.1/24")
        .expect("adding an address");
    ns.link_up(&name).expect("bringing the TUN up");
    let link = ns.ip(&["link", "show", &name]).unwrap();
    assert!(link.contains("UP"), "{link}");
    assert!(link.contains("mtu 1500"), "{link}");

    // Kernel -> TUN: a datagram sent from inside the namespace comes out of the TUN.
    let outbound = b"hello from the kernel".to_vec();
    let socket = ns.in_ns(|| {
        let socket = UdpSocket::bind((LOCAL, 0)).expect("binding in the namespace");
        socket
            .send_to(&outbound, (PEER, PEER_PORT))
            .expect("sending");
        socket
    });
    let local_port = socket.local_addr().unwrap().port();
    let (packet, udp) = rt
        .block_on(async { tokio::time::timeout(TIMEOUT, recv_udp_to_peer(&mut tun)).await })
        .expect("timed out waiting for the datagram on the TUN")
        .expect("poll_recv failed");
    assert_eq!(packet[0] >> 4, 4, "IPv4");
    assert_eq!(packet[9], 17, "UDP");
    assert_eq!(checksum(&packet[..20]), 0, "valid IPv4 header checksum");
    assert_eq!(udp.src, LOCAL);
    assert_eq!(udp.dst, PEER);
    assert_eq!(udp.src_port, local_port);
    assert_eq!(udp.dst_port, PEER_PORT);
    assert_eq!(udp.payload, outbound);
    tun.recycle(packet);

    // TUN -> kernel: a hand-built datagram written to the TUN reaches the socket.
    let inbound = b"hello from synack".to_vec();
    let mut reply = tun.alloc();
    assert!(reply.capacity() >= 1500);
    build_udp4(
        &mut reply,
        (PEER, PEER_PORT).into(),
        (LOCAL, local_port).into(),
        &inbound,
    );
    let mut queue = std::collections::VecDeque::from([reply]);
    let sent = rt
        .block_on(async {
            tokio::time::timeout(TIMEOUT, poll_fn(|cx| tun.poll_send(cx, &mut queue))).await
        })
        .expect("timed out sending")
        .expect("poll_send failed");
    assert_eq!(sent, 1);
    assert!(queue.is_empty());

    socket.set_read_timeout(Some(TIMEOUT)).unwrap();
    let mut buf = [0u8; 2048];
    let (len, from) = ns
        .in_ns(|| socket.recv_from(&mut buf))
        .expect("receiving in the namespace");
    assert_eq!(&buf[..len], &inbound[..]);
    assert_eq!(from, SocketAddr::from((PEER, PEER_PORT)));
    assert_eq!(tun.dropped_packets(), 0);

    // Oversize and empty packets are dropped, counted as sent, and never reach the kernel.
    let mut queue = std::collections::VecDeque::from([vec![0x45; 1501], Vec::new()]);
    let sent = rt
        .block_on(async { poll_fn(|cx| tun.poll_send(cx, &mut queue)).await })
        .unwrap();
    assert_eq!(sent, 2);
    assert_eq!(tun.dropped_packets(), 2);
}

#[test]
fn tun_reports_an_error_when_its_interface_is_deleted() {
    if let Err(reason) = netns::can_run() {
        netns::skip(&reason);
        return;
    }
    let ns = NetNs::new("tundel").expect("creating a namespace");
    let rt = runtime();
    let name = tun_name('d');
    let mut tun = rt
        .block_on(async { Tun::create(&name, 1500) })
        .expect("creating the TUN");
    ns.move_link(&name)
        .expect("moving the TUN into the namespace");

    let result = rt.block_on(async {
        let deleter = {
            let ns_name = ns.name().to_owned();
            let name = name.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(100)).await;
                let status = tokio::process::Command::new("ip")
                    .args(["-n", &ns_name, "link", "del", &name])
                    .status()
                    .await
                    .expect("running ip");
                assert!(status.success(), "ip link del failed");
            })
        };
        // Packets the kernel queued before (IPv6 chatter while the TUN was up in
        // the root namespace) come first; then the error.
        let drain = async {
            loop {
                let mut out = Vec::new();
                if let Err(e) = poll_fn(|cx| tun.poll_recv(cx, &mut out, 16)).await {
                    return e;
                }
                for packet in out {
                    tun.recycle(packet);
                }
            }
        };
        let result = tokio::time::timeout(TIMEOUT, drain).await;
        deleter.await.unwrap();
        result
    });
    let err = result.expect("poll_recv hung after the interface was deleted");
    eprintln!("poll_recv after deletion: {err} ({:?})", err.kind());

    let mut queue = std::collections::VecDeque::from([vec![0x45; 28]]);
    let sent = rt.block_on(async {
        tokio::time::timeout(TIMEOUT, poll_fn(|cx| tun.poll_send(cx, &mut queue))).await
    });
    let err = sent
        .expect("poll_send hung after the interface was deleted")
        .expect_err("poll_send should fail on a deleted interface");
    eprintln!("poll_send after deletion: {err} ({:?})", err.kind());
}

#[test]
fn netns_guard_cleans_up_and_in_ns_enters_the_namespace() {
    if let Err(reason) = netns::can_run() {
        netns::skip(&reason);
        return;
    }
    let namespaces = || {
        std::process::Command::new("ip")
            .args(["netns", "list"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap()
    };
    let own_ns = || std::fs::read_link("/proc/thread-self/ns/net").unwrap();

    let ns = NetNs::new("guard").unwrap();
    let name = ns.name().to_owned();
    assert!(name.starts_with("synack-guard-"), "{name}");
    assert!(namespaces().contains(&name));
    assert_ne!(
        ns.in_ns(own_ns),
        own_ns(),
        "in_ns runs in another namespace"
    );
    assert_eq!(
        ns.in_ns(own_ns),
        ns.spawn_in_ns(own_ns).unwrap().join().unwrap()
    );
    // Only `lo` lives there, and it is up.
    let links = ns.ip(&["-br", "link"]).unwrap();
    assert!(
        links.trim().starts_with("lo") && links.lines().count() == 1,
        "{links}"
    );
    assert!(links.contains("UNKNOWN") || links.contains("UP"), "{links}");
    // Non-documentation addresses are refused.
    assert!(ns.addr_add("lo", "10.0.0.1/8").is_err());
    assert!(ns.addr_add("lo", "192.0.2.0/16").is_err());
    ns.addr_add("lo", "203.0.113.7/32").unwrap();
    // Errors carry the command's stderr.
    let err = ns.link_up("no-such-link").unwrap_err();
    assert!(err.to_string().contains("no-such-link"), "{err}");

    // Panics in `in_ns` propagate; the guard deletes the namespace on unwinding.
    let panicked = std::panic::catch_unwind(move || {
        let _ns = ns;
        _ns.in_ns(|| panic!("boom"));
    });
    assert!(panicked.is_err());
    assert!(!namespaces().contains(&name), "{name} left behind");
}

/// `Tun::multi_queue` under a `StackSet` as a server: the kernel's
/// connections spread over both queues by its flow hash, the set's one
/// accept loop takes them all, and every packet of a connection reaches the
/// shard that holds it.
#[test]
fn a_multi_queue_tun_carries_a_stack_set_server() {
    use std::io::{Read, Write};
    use synack::StackSet;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    if let Err(reason) = netns::can_run() {
        netns::skip(&reason);
        return;
    }
    let ns = NetNs::new("tmq").expect("creating a namespace");
    let rt = runtime();
    let name = tun_name('m');
    let tuns = rt
        .block_on(async { Tun::multi_queue(&name, 1500, 2) })
        .expect("creating a two-queue TUN");
    assert_eq!(tuns.len(), 2);
    ns.move_link(&name).expect("moving the TUN");
    ns.addr_add(&name, "192.0.2.1/24")
        .expect("adding an address");
    ns.link_up(&name).expect("bringing the TUN up");

    rt.block_on(async {
        let set = StackSet::on_devices(tuns, PEER, 24).expect("the stack set");
        let listener = set.bind((PEER, 7001)).await.expect("the set's listener");
        // kernel -> synack: the set's one accept loop takes them all.
        let client = ns
            .spawn_in_ns(|| {
                for k in 0..8u8 {
                    let mut s = std::net::TcpStream::connect_timeout(
                        &SocketAddr::from((PEER, 7001)),
                        TIMEOUT,
                    )
                    .expect("kernel connect");
                    s.set_read_timeout(Some(TIMEOUT)).unwrap();
                    s.write_all(&[k; 5]).unwrap();
                    let mut back = [0u8; 5];
                    s.read_exact(&mut back).expect("kernel read of the echo");
                    assert_eq!(back, [k; 5]);
                }
            })
            .expect("spawning the kernel client");
        for _ in 0..8 {
            let (mut s, _) = tokio::time::timeout(TIMEOUT, listener.accept())
                .await
                .expect("accept timed out")
                .unwrap();
            let mut b = [0u8; 5];
            s.read_exact(&mut b).await.unwrap();
            s.write_all(&b).await.unwrap();
        }
        tokio::task::spawn_blocking(move || client.join())
            .await
            .unwrap()
            .expect("kernel client panicked");
        let established: u64 = set
            .shards()
            .iter()
            .map(|s| s.stats().connections_established)
            .sum();
        assert_eq!(established, 8);
        for s in set.shards() {
            assert_eq!(
                s.stats().rx_no_socket,
                0,
                "a packet reached the wrong shard"
            );
        }
    });
}
