//! `synack::sim` as a whole host: UDP through the simulated network, the
//! router's ICMP host unreachable, partitions silent or not, holds that catch
//! packets in flight, connection counts by state, and `Sim::step`.

use std::cell::Cell;
use std::io;
use std::rc::Rc;
use std::time::Duration;

use synack::net::{TcpListener, TcpStream, UdpSocket};
use synack::sim::{self, Builder, LinkConfig};
use synack::{Config, Stack};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Three SYN retries: a connect gives up after 1 + 2 + 4 + 8 = 15 s.
fn quick_syn_give_up() -> Config {
    Config {
        syn_retries: 3,
        ..Config::default()
    }
}

fn icmp_errors() -> u64 {
    Stack::try_current()
        .expect("inside a simulated host")
        .stats()
        .icmp_errors_received
}

/// A server that accepts connections on port 80 and keeps them open, unread.
async fn keeper() -> sim::Result {
    let listener = TcpListener::bind("0.0.0.0:80").await?;
    let mut kept = Vec::new();
    loop {
        kept.push(listener.accept().await?.0);
    }
}

#[test]
fn connect_to_an_unknown_address_is_unreachable() {
    let mut sim = Builder::new()
        .link(LinkConfig::new().delay(Duration::from_millis(5)))
        .build();
    sim.client("client", async {
        let start = sim::elapsed();
        // 192.0.2.77: in the hosts' /24, but no host has it.
        let attempt = sim::spawn(TcpStream::connect("192.0.2.77:80"));
        tokio::time::sleep(Duration::from_millis(100)).await;
        // The router's answer reached the stack one round trip (20 ms) after the SYN.
        assert_eq!(icmp_errors(), 1);
        let err = attempt.await?.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::HostUnreachable, "{err}");
        // The first SYN's answer ends the attempt (RFC 5461, as Linux):
        // no retries, no waiting.
        assert_eq!(icmp_errors(), 1);
        assert!(sim::elapsed() - start < Duration::from_secs(1));
        Ok(())
    });
    sim.run().unwrap();
}

#[test]
fn partitions_are_silent_unless_asked_to_be_unreachable() {
    let mut sim = Builder::new()
        .seed(7)
        .link(LinkConfig::new().delay(Duration::from_millis(5)))
        .tcp_config(quick_syn_give_up())
        .build();
    sim.host("server", keeper);
    sim.client("client", async {
        TcpStream::connect("server:80").await?;

        sim::partition("client", "server")?;
        let err = TcpStream::connect("server:80").await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{err}");
        assert_eq!(icmp_errors(), 0, "a silent partition answered");

        sim::repair("client", "server")?;
        sim::partition_unreachable("client", "server")?;
        let attempt = sim::spawn(TcpStream::connect("server:80"));
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(icmp_errors(), 1);
        let err = attempt.await?.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::HostUnreachable, "{err}");

        // Repaired, the pair talks again.
        sim::repair("client", "server")?;
        TcpStream::connect("server:80").await?;
        Ok(())
    });
    sim.run().unwrap();
    let log = sim.log().join("\n");
    assert!(log.contains("partition_unreachable client server"), "{log}");
}

/// Writes a segment, holds the pair `hold_after` later, releases 3 s later:
/// returns when the server read it, after the release.
fn held_segment(hold_after: Duration) -> Duration {
    // 100 ms on every link: a segment takes 200 ms from host to host.
    let mut sim = Builder::new()
        .seed(8)
        .link(LinkConfig::new().delay(Duration::from_millis(100)))
        .build();
    let arrived = Rc::new(Cell::new(None));
    let seen = arrived.clone();
    sim.host("server", move || {
        let seen = seen.clone();
        async move {
            let listener = TcpListener::bind("0.0.0.0:80").await?;
            let (mut s, _) = listener.accept().await?;
            let mut buf = [0; 5];
            s.read_exact(&mut buf).await?;
            assert_eq!(&buf, b"hello");
            seen.set(Some(sim::elapsed()));
            std::future::pending().await
        }
    });
    let result = Rc::new(Cell::new(None));
    let out = result.clone();
    sim.client("client", async move {
        let mut s = TcpStream::connect("server:80").await?;
        s.write_all(b"hello").await?;
        tokio::time::sleep(hold_after).await;
        sim::hold("client", "server")?;
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert_eq!(arrived.get(), None, "a held segment arrived");
        let released = sim::elapsed();
        sim::release("client", "server")?;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let at = arrived.get().expect("the held segment never arrived");
        out.set(Some(at - released));
        Ok(())
    });
    sim.run().unwrap();
    result.get().unwrap()
}

#[test]
fn hold_catches_a_segment_in_flight() {
    // Released from the router, a segment crosses one downlink (100 ms), intact.
    // Held on the client's uplink:
    assert_eq!(
        held_segment(Duration::from_millis(10)),
        Duration::from_millis(100)
    );
    // Held on the server's downlink, the router having forwarded it:
    assert_eq!(
        held_segment(Duration::from_millis(150)),
        Duration::from_millis(100)
    );
}

#[test]
fn connections_by_state_before_and_after_a_close() {
    let mut sim = Builder::new()
        .link(LinkConfig::new().delay(Duration::from_millis(5)))
        .build();
    sim.host("server", keeper);
    sim.client("client", async {
        assert_eq!(sim::connections("client")?.total(), 0);
        let mut a = TcpStream::connect("server:80").await?;
        let _b = TcpStream::connect("server:80").await?;
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(sim::established("client")?, 2);
        assert_eq!(sim::established("server")?, 2);
        assert_eq!(sim::established("192.0.2.1")?, 2);

        a.shutdown().await?;
        tokio::time::sleep(Duration::from_millis(50)).await;
        let client = sim::connections("client")?;
        let server = sim::connections("server")?;
        assert_eq!((client.established, client.fin_wait2), (1, 1), "{client:?}");
        assert_eq!(
            (server.established, server.close_wait),
            (1, 1),
            "{server:?}"
        );

        sim::crash("server")?;
        assert_eq!(sim::connections("server")?.total(), 0);
        assert_eq!(
            sim::connections("nobody").unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
        Ok(())
    });
    sim.run().unwrap();
}

#[test]
fn step_advances_one_tick_and_reports_completion() {
    let mut sim = Builder::new()
        .link(LinkConfig::new().delay(Duration::from_millis(5)))
        .build();
    sim.host("server", keeper);
    sim.client("client", async {
        let _s = TcpStream::connect("server:80").await?;
        tokio::time::sleep(Duration::from_millis(100)).await;
        Ok(())
    });
    // Before the first step there is no run to look at.
    assert_eq!(
        sim.connections("server").unwrap_err().kind(),
        io::ErrorKind::NotFound
    );
    let mut steps = 0u32;
    let mut established_at = None;
    while !sim.step().unwrap() {
        steps += 1;
        assert_eq!(sim.elapsed(), sim::TICK * steps);
        if established_at.is_none() && sim.connections("server").unwrap().established == 1 {
            established_at = Some(sim.elapsed());
        }
    }
    // The client's connect returns after one round trip of 20 ms, the
    // server's end is established half a round trip later; the client then
    // sleeps 100 ms.
    assert_eq!(established_at, Some(Duration::from_millis(30)));
    assert_eq!(sim.elapsed(), Duration::from_millis(120));
    assert_eq!(steps, 119);
    let log = sim.log().join("\n");
    assert!(log.contains("0.120000 client client finished"), "{log}");
    // Over: a further step is a second run, refused as run refuses it.
    let err = sim.step().unwrap_err().to_string();
    assert!(err.contains("already run"), "{err}");

    // An error ends the stepping with it.
    let mut sim = Builder::new().build();
    sim.client("client", async {
        tokio::time::sleep(Duration::from_millis(2)).await;
        Err("broken".into())
    });
    assert!(!sim.step().unwrap());
    let err = sim.step().unwrap_err().to_string();
    assert!(err.contains("broken"), "{err}");
}

#[test]
fn faults_from_the_test_between_steps() {
    let mut sim = Builder::new()
        .link(LinkConfig::new().delay(Duration::from_millis(5)))
        .duration(Duration::from_secs(5))
        .build();
    sim.host("server", keeper);
    sim.client("client", async {
        let attempt = TcpStream::connect("server:80");
        let err = tokio::time::timeout(Duration::from_secs(2), attempt).await;
        assert!(err.is_err(), "connected across a partition");
        Ok(())
    });
    assert!(!sim.step().unwrap());
    sim::partition("client", "server").unwrap();
    sim::crash("server").unwrap();
    assert_eq!(sim.connections("server").unwrap().total(), 0);
    while !sim.step().unwrap() {}
    let log = sim.log().join("\n");
    assert!(log.contains("0.001000 partition client server"), "{log}");
    assert!(log.contains("0.001000 crash server"), "{log}");
}

#[test]
fn udp_through_the_simulated_network() {
    let mut sim = Builder::new()
        .seed(3)
        .link(LinkConfig::new().delay(Duration::from_millis(10)))
        .build();
    sim.host("dns", || async {
        let socket = UdpSocket::bind("0.0.0.0:53").await?;
        let mut buf = vec![0u8; 65536];
        loop {
            let (n, from) = socket.recv_from(&mut buf).await?;
            socket.send_to(&buf[..n], from).await?;
        }
    });
    sim.client("client", async {
        let socket = UdpSocket::bind("0.0.0.0:0").await?;
        socket.connect("dns:53").await?;
        // Small, and large enough to go in fragments on the 1500-byte links.
        for len in [12, 9000] {
            let query: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let start = sim::elapsed();
            socket.send(&query).await?;
            let mut buf = vec![0u8; 65536];
            let n = socket.recv(&mut buf).await?;
            assert_eq!(buf[..n], query[..]);
            // Two links each way, 10 ms each.
            assert!(sim::elapsed() - start >= Duration::from_millis(40));
        }
        // A partition drops datagrams silently: nothing comes back.
        sim::partition("client", "dns")?;
        socket.send(b"lost").await?;
        let mut buf = [0u8; 16];
        let r = tokio::time::timeout(Duration::from_secs(1), socket.recv(&mut buf)).await;
        assert!(r.is_err(), "a datagram crossed a partition");
        Ok(())
    });
    sim.run().unwrap();
}

/// A crash ends every task of the host, those given to `tokio::spawn` and
/// `spawn_local` included (they live on the host's runtime, which goes with
/// it); a bounce starts them afresh.
#[test]
fn a_crash_ends_every_task_of_the_host_however_spawned() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    let ticks = Arc::new(AtomicU64::new(0));
    let local_ticks = Rc::new(Cell::new(0u64));
    let mut sim = Builder::new().build();
    let (t, l) = (ticks.clone(), local_ticks.clone());
    sim.host("server", move || {
        let (t, l) = (t.clone(), l.clone());
        async move {
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    t.fetch_add(1, Ordering::Relaxed);
                }
            });
            tokio::task::spawn_local(async move {
                loop {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    l.set(l.get() + 1);
                }
            });
            std::future::pending().await
        }
    });
    let (t, l) = (ticks.clone(), local_ticks.clone());
    sim.client("client", async move {
        tokio::time::sleep(Duration::from_millis(105)).await;
        assert_eq!((t.load(Ordering::Relaxed), l.get()), (10, 10));
        sim::crash("server")?;
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!((t.load(Ordering::Relaxed), l.get()), (10, 10));
        sim::bounce("server")?;
        tokio::time::sleep(Duration::from_millis(55)).await;
        assert_eq!((t.load(Ordering::Relaxed), l.get()), (15, 15));
        Ok(())
    });
    sim.run().unwrap();
}

/// Over zero-delay links a whole exchange happens at one instant, as it
/// would on one runtime: the hosts run in rounds until no packet moves.
#[test]
fn a_zero_delay_exchange_takes_no_simulated_time() {
    let mut sim = Builder::new().build();
    sim.host("server", || async {
        let listener = TcpListener::bind("0.0.0.0:7").await?;
        let (mut s, _) = listener.accept().await?;
        let mut buf = [0; 5];
        s.read_exact(&mut buf).await?;
        s.write_all(&buf).await?;
        std::future::pending().await
    });
    sim.client("client", async {
        let mut s = TcpStream::connect("server:7").await?;
        s.write_all(b"hello").await?;
        let mut buf = [0; 5];
        s.read_exact(&mut buf).await?;
        assert_eq!(&buf, b"hello");
        assert_eq!(sim::elapsed(), Duration::ZERO);
        Ok(())
    });
    sim.run().unwrap();
}

/// A bounce from the test's thread between steps boots the host on a new
/// runtime, whose clock keeps step with the others'.
#[test]
fn bounce_from_the_test_between_steps() {
    let mut sim = Builder::new()
        .link(LinkConfig::new().delay(Duration::from_millis(5)))
        .build();
    sim.host("server", keeper);
    sim.client("client", async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let s = TcpStream::connect("server:80").await?;
        // SYN and SYN-ACK each cross two 5 ms links: 20 ms from 50 ms. The
        // bounce did not shift the server's clock.
        assert_eq!(sim::elapsed(), Duration::from_millis(70));
        drop(s);
        Ok(())
    });
    for _ in 0..10 {
        assert!(!sim.step().unwrap());
    }
    sim::bounce("server").unwrap();
    assert_eq!(sim.connections("server").unwrap().total(), 0);
    while !sim.step().unwrap() {}
    let log = sim.log().join("\n");
    assert_eq!(log.matches("boot server").count(), 2, "{log}");
    assert!(log.contains("0.010000 crash server"), "{log}");
}
