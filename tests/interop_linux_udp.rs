//! synack's UDP against the Linux kernel's, over a TUN interface inside a
//! throwaway network namespace (see `interop_linux.rs` for the set-up: the
//! kernel has 192.0.2.1/24 on the TUN, synack 192.0.2.2/24 on its other end).
//!
//! Datagrams both ways between a kernel `std::net::UdpSocket` and a synack
//! `UdpSocket`: a small one, and one of 4 000 bytes that must travel in
//! fragments on the 1 500-byte link (fragmented by the kernel one way and
//! reassembled by synack; fragmented by synack the other way and reassembled
//! by the kernel). Then each side's port unreachable reaches the other's
//! connected socket as `ConnectionRefused`.
//!
//! Needs root, `/dev/net/tun` and `ip`; skips (printing why) otherwise.

#![cfg(all(target_os = "linux", feature = "tun"))]

mod common;

use std::io;
use std::net::Ipv4Addr;
use std::time::Duration;

use common::netns::{self, NetNs};
use synack::Stack;
use synack::net::UdpSocket;
use synack_device::Tun;

const KERNEL: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const SYNACK: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
const MTU: usize = 1500;
const BIG: usize = 4000;

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(7) ^ seed).collect()
}

#[test]
fn udp_both_ways_with_fragments_and_port_unreachable() {
    let Some(ns) = netns::start("udp") else {
        return;
    };
    let rt = netns::runtime();
    rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(60), body(&ns))
            .await
            .expect("the UDP interop test timed out")
    });
}

/// Runs a blocking kernel-socket step on another thread.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f)
        .await
        .expect("the kernel side panicked")
}

async fn body(ns: &NetNs) {
    let name = netns::tun_name("su", 'u');
    let rt = tokio::runtime::Handle::current();
    let tun = ns
        .in_ns(|| {
            let _guard = rt.enter();
            Tun::create(&name, MTU)
        })
        .expect("creating the TUN inside the namespace");
    ns.addr_add(&name, "192.0.2.1/24")
        .expect("adding the kernel's address");
    ns.link_up(&name).expect("bringing the TUN up");
    let stack = Stack::new(tun, SYNACK, 24);

    // The kernel's socket, made inside the namespace.
    let kernel = ns
        .in_ns(|| std::net::UdpSocket::bind((KERNEL, 0)))
        .expect("binding the kernel's UDP socket");
    kernel
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let kernel_addr = kernel.local_addr().unwrap();
    let ours = UdpSocket::bind_on(&stack, (SYNACK, 7000)).await.unwrap();
    let ours_addr = ours.local_addr().unwrap();

    // Kernel → synack: small, then big (the kernel fragments it).
    let small = pattern(100, 1);
    let big = pattern(BIG, 2);
    let k = kernel.try_clone().unwrap();
    let (s, b) = (small.clone(), big.clone());
    blocking(move || {
        k.send_to(&s, ours_addr).unwrap();
        k.send_to(&b, ours_addr).unwrap();
    })
    .await;
    let mut buf = vec![0u8; 65536];
    for want in [&small, &big] {
        let (n, from) = ours.recv_from(&mut buf).await.unwrap();
        assert_eq!(from, kernel_addr);
        assert!(buf[..n] == want[..], "kernel → synack: {n} bytes differ");
    }
    let stats = stack.stats();
    println!(
        "synack reassembled {} datagram(s) from {} fragments",
        stats.frag_reassembled, stats.frag_received
    );
    assert!(stats.frag_reassembled >= 1, "{stats:?}");

    // synack → kernel: small, then big (synack fragments it).
    ours.send_to(&small, kernel_addr).await.unwrap();
    ours.send_to(&big, kernel_addr).await.unwrap();
    let k = kernel.try_clone().unwrap();
    let got = blocking(move || {
        let mut got = Vec::new();
        let mut buf = vec![0u8; 65536];
        for _ in 0..2 {
            let (n, from) = k.recv_from(&mut buf).unwrap();
            got.push((buf[..n].to_vec(), from));
        }
        got
    })
    .await;
    let from_ours = ours_addr;
    assert_eq!(got[0], (small.clone(), from_ours));
    assert!(
        got[1].0 == big && got[1].1 == from_ours,
        "synack → kernel: the big datagram differs"
    );
    assert!(stack.stats().frag_created >= 1);

    // A synack socket connected to a kernel port nobody holds: the kernel's
    // port unreachable makes its next call ConnectionRefused.
    let closed = ns
        .in_ns(|| std::net::UdpSocket::bind((KERNEL, 0)))
        .unwrap()
        .local_addr()
        .unwrap(); // bound, then dropped: closed now
    let lonely = UdpSocket::bind_on(&stack, (SYNACK, 0)).await.unwrap();
    lonely.connect(closed).await.unwrap();
    lonely.send(b"anyone?").await.unwrap();
    let err = tokio::time::timeout(Duration::from_secs(5), lonely.recv(&mut buf))
        .await
        .expect("no answer from the kernel within 5 s")
        .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);

    // And the other way: a kernel socket connected to a synack port nobody
    // holds gets synack's port unreachable.
    let k = kernel.try_clone().unwrap();
    let err = blocking(move || {
        k.connect((SYNACK, 7999)).unwrap();
        k.send(b"anyone?").unwrap();
        let mut buf = [0u8; 16];
        k.recv(&mut buf).unwrap_err()
    })
    .await;
    assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused, "{err}");
    assert!(stack.stats().udp_no_port >= 1);
}
