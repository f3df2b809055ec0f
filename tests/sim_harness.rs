//! The `synack::sim` harness: hosts by name, faults, crashes and determinism.

use std::io;
use std::time::Duration;

use synack::net::{TcpListener, TcpStream};
use synack::sim::{self, Builder, LinkConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// An echo server on port 7 that serves each connection in its own task.
async fn echo_server() -> sim::Result {
    let listener = TcpListener::bind("0.0.0.0:7").await?;
    loop {
        let (mut s, _) = listener.accept().await?;
        sim::spawn(async move {
            let (mut r, mut w) = s.split();
            tokio::io::copy(&mut r, &mut w).await
        });
    }
}

/// Writes `msg` and reads the echo back.
async fn echo_once(s: &mut TcpStream, msg: &[u8]) -> io::Result<Vec<u8>> {
    s.write_all(msg).await?;
    let mut buf = vec![0; msg.len()];
    s.read_exact(&mut buf).await?;
    Ok(buf)
}

fn path() -> LinkConfig {
    LinkConfig::new().delay(Duration::from_millis(5))
}

#[test]
fn echo_by_name_with_many_clients() {
    let mut sim = Builder::new().seed(1).link(path()).build();
    sim.host("server", echo_server);
    for i in 0..8u8 {
        sim.client(&format!("client{i}"), async move {
            let mut s = TcpStream::connect("server:7").await?;
            assert_eq!(s.peer_addr()?, "192.0.2.1:7".parse()?);
            assert_eq!(sim::hostname().as_deref(), Some(&*format!("client{i}")));
            let msg = vec![i; 10_000 + usize::from(i) * 1000];
            assert_eq!(echo_once(&mut s, &msg).await?, msg);
            Ok(())
        });
    }
    sim.run().unwrap();
    let finished = sim.log().iter().filter(|l| l.contains("finished")).count();
    assert_eq!(finished, 9, "{:#?}", sim.log());
}

/// Every host runs on its own runtime, so however a task is spawned inside
/// a host it keeps the host's stack: a listener bound in a `tokio::spawn`ed
/// task is on the server, not on whichever host ran last.
#[test]
fn tokio_spawn_and_spawn_local_keep_the_host() {
    let mut sim = Builder::new().link(path()).build();
    sim.host("server", || async {
        // The whole server in a task given to `tokio::spawn` (Send), as a
        // library would spawn it.
        let server = tokio::spawn(async {
            let listener = TcpListener::bind("0.0.0.0:7").await?;
            assert_eq!(sim::hostname().as_deref(), Some("server"));
            loop {
                let (mut s, _) = listener.accept().await?;
                tokio::spawn(async move {
                    let (mut r, mut w) = s.split();
                    tokio::io::copy(&mut r, &mut w).await
                });
            }
            #[allow(unreachable_code)]
            io::Result::Ok(())
        });
        server.await??;
        Ok(())
    });
    sim.client("c", async {
        let local = tokio::task::spawn_local(async {
            assert_eq!(sim::hostname().as_deref(), Some("c"));
            TcpListener::bind("0.0.0.0:1").await
        });
        assert_eq!(local.await??.local_addr()?.ip().to_string(), "0.0.0.0");
        let sent = tokio::spawn(async {
            let mut s = TcpStream::connect("server:7").await?;
            assert_eq!(s.local_addr()?.ip().to_string(), "192.0.2.2");
            echo_once(&mut s, b"spawned").await
        });
        assert_eq!(sent.await??, b"spawned");
        let scoped = sim::spawn(async { TcpListener::bind("0.0.0.0:2").await });
        assert_eq!(scoped.await??.local_addr()?.port(), 2);
        Ok(())
    });
    sim.run().unwrap();
}

#[test]
fn partition_times_out_and_repair_heals() {
    let mut sim = Builder::new().seed(2).link(path()).build();
    sim.host("server", echo_server);
    sim.client("client", async {
        let mut s = TcpStream::connect("server:7").await?;
        assert_eq!(echo_once(&mut s, b"before").await?, b"before");

        sim::partition("client", "server")?;
        let attempt = tokio::time::timeout(Duration::from_secs(2), TcpStream::connect("server:7"));
        assert!(attempt.await.is_err(), "connected across a partition");
        // Data written on the old connection waits in the retransmission queue.
        s.write_all(b"during").await?;
        let mut buf = [0; 6];
        let read = tokio::time::timeout(Duration::from_secs(2), s.read_exact(&mut buf));
        assert!(read.await.is_err(), "echo came back across a partition");

        sim::repair("client", "server")?;
        tokio::time::timeout(Duration::from_secs(30), s.read_exact(&mut buf)).await??;
        assert_eq!(&buf, b"during");
        let mut fresh = TcpStream::connect("server:7").await?;
        assert_eq!(echo_once(&mut fresh, b"after").await?, b"after");
        Ok(())
    });
    sim.run().unwrap();
}

#[test]
fn oneway_partition_and_hold() {
    let mut sim = Builder::new().seed(3).link(path()).build();
    sim.host("server", echo_server);
    sim.client("client", async {
        let mut s = TcpStream::connect("server:7").await?;
        // Only the replies are cut: the request gets there, the echo does not.
        sim::partition_oneway("server", "client")?;
        s.write_all(b"ping").await?;
        let mut buf = [0; 4];
        let read = tokio::time::timeout(Duration::from_secs(1), s.read_exact(&mut buf));
        assert!(read.await.is_err());
        sim::repair_oneway("server", "client")?;
        tokio::time::timeout(Duration::from_secs(30), s.read_exact(&mut buf)).await??;
        assert_eq!(&buf, b"ping");

        // Held packets arrive on release, not before.
        sim::hold("client", "server")?;
        s.write_all(b"pong").await?;
        let read = tokio::time::timeout(Duration::from_millis(100), s.read_exact(&mut buf));
        assert!(read.await.is_err());
        sim::release("client", "server")?;
        tokio::time::timeout(Duration::from_secs(30), s.read_exact(&mut buf)).await??;
        assert_eq!(&buf, b"pong");
        Ok(())
    });
    sim.run().unwrap();
}

#[test]
fn set_link_shapes_a_host() {
    let mut sim = Builder::new().seed(5).link(path()).build();
    sim.host("server", echo_server);
    sim.client("client", async {
        let mut s = TcpStream::connect("server:7").await?;
        sim::set_link("server", path().blackhole())?;
        s.write_all(b"lost").await?;
        let mut buf = [0; 4];
        let read = tokio::time::timeout(Duration::from_secs(1), s.read_exact(&mut buf));
        assert!(read.await.is_err());
        let (up, down) = sim::links("server")?;
        assert!(down.stats().dropped() > 0);
        let slow = path().delay(Duration::from_millis(200));
        sim::set_link("server", slow)?;
        assert_eq!(up.config(), slow);
        tokio::time::timeout(Duration::from_secs(30), s.read_exact(&mut buf)).await??;
        assert_eq!(&buf, b"lost");
        Ok(())
    });
    sim.run().unwrap();
}

#[test]
fn crash_is_silent_and_bounce_resets() {
    let mut sim = Builder::new().seed(4).link(path()).build();
    sim.host("server", || async {
        // A slow boot: the port opens half a second after the host comes up.
        tokio::time::sleep(Duration::from_millis(500)).await;
        echo_server().await
    });
    sim.client("client", async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let mut s = TcpStream::connect("server:7").await?;
        assert_eq!(echo_once(&mut s, b"one").await?, b"one");

        sim::crash("server")?;
        // A crashed host says nothing: no reset, no refusal, just silence.
        s.write_all(b"two").await?;
        let mut buf = [0; 3];
        let read = tokio::time::timeout(Duration::from_secs(1), s.read_exact(&mut buf));
        assert!(read.await.is_err());
        let attempt = tokio::time::timeout(Duration::from_secs(1), TcpStream::connect("server:7"));
        assert!(attempt.await.is_err());

        sim::bounce("server")?;
        // The new stack is up but nothing listens yet: refused.
        let err = TcpStream::connect("server:7").await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
        // The old connection's retransmission meets the new stack: reset.
        let err = tokio::time::timeout(Duration::from_secs(60), s.read_exact(&mut buf))
            .await?
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionReset);
        // Once the server has booted, new connections work.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let mut s = TcpStream::connect("server:7").await?;
        assert_eq!(echo_once(&mut s, b"three").await?, b"three");
        Ok(())
    });
    sim.run().unwrap();
    let log = sim.log().join("\n");
    assert_eq!(log.matches("boot server").count(), 2, "{log}");
    assert!(log.contains("crash server"), "{log}");
}

#[test]
fn errors_end_the_run() {
    let mut sim = Builder::new().build();
    sim.host("server", || async { Err("no config file".into()) });
    sim.client("client", std::future::pending());
    let err = sim.run().unwrap_err().to_string();
    assert!(
        err.contains("server") && err.contains("no config file"),
        "{err}"
    );

    let mut sim = Builder::new().duration(Duration::from_secs(5)).build();
    sim.client("client", async {
        tokio::time::sleep(Duration::from_secs(10)).await;
        Ok(())
    });
    let err = sim.run().unwrap_err();
    let err = err.downcast_ref::<io::Error>().expect("an io::Error");
    assert_eq!(err.kind(), io::ErrorKind::TimedOut);

    let mut sim = Builder::new().build();
    sim.client("client", async { panic!("boom") });
    assert!(sim.run().unwrap_err().to_string().contains("panicked"));

    let mut sim = Builder::new().build();
    sim.client("client", async {
        let err = sim::crash("nobody").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        let err = sim::crash("client").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        Ok(())
    });
    sim.run().unwrap();
    assert_eq!(
        sim.run().unwrap_err().to_string(),
        "client \"client\" has already run"
    );
    assert_eq!(
        sim::partition("a", "b").unwrap_err().kind(),
        io::ErrorKind::NotFound
    );

    let mut sim = Builder::new()
        .first_addr("192.0.2.250".parse().unwrap())
        .build();
    for i in 0..6 {
        sim.client(&format!("c{i}"), async { Ok(()) });
    }
    assert!(sim.run().unwrap_err().to_string().contains("do not fit"));
    let mut sim = Builder::new().build();
    sim.client("x", async { Ok(()) })
        .client("X", async { Ok(()) });
    assert!(sim.run().unwrap_err().to_string().contains("two hosts"));
}

/// A lossy, jittery run of several transfers; returns its log, pcaps and what the clients saw.
fn lossy_run(seed: u64) -> (Vec<String>, Vec<Vec<u8>>, Vec<String>) {
    let link = LinkConfig::new()
        .delay(Duration::from_millis(10))
        .jitter(Duration::from_millis(3))
        .rate_bps(5_000_000)
        .queue_packets(20)
        .loss(0.03);
    let mut sim = Builder::new().seed(seed).link(link).capture(true).build();
    sim.host("server", echo_server);
    let seen = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    for i in 0..3u8 {
        let seen = seen.clone();
        sim.client(&format!("c{i}"), async move {
            let mut s = TcpStream::connect("server:7").await?;
            let msg = vec![i; 200_000];
            assert_eq!(echo_once(&mut s, &msg).await?, msg);
            let info = s.info()?;
            seen.borrow_mut().push(format!(
                "c{i} at {:?}: {:?} bytes retransmitted",
                sim::elapsed(),
                info.bytes_retrans
            ));
            Ok(())
        });
    }
    sim.run().unwrap();
    let mut pcaps: Vec<Vec<u8>> = ["server", "c0", "c1", "c2"]
        .iter()
        .map(|h| sim.pcap(h).unwrap())
        .collect();
    pcaps.push(sim.pcap_all().unwrap());
    let seen = seen.borrow().clone();
    (sim.log().to_vec(), pcaps, seen)
}

#[test]
fn same_seed_same_run() {
    let a = lossy_run(11);
    let b = lossy_run(11);
    assert!(a.1.iter().all(|p| sim::read_pcap(p).unwrap().len() > 100));
    // The merged capture: every host's packets, in time order, both ways.
    let merged = sim::read_pcap(&a.1[4]).unwrap();
    let per_host: usize = a.1[..4]
        .iter()
        .map(|p| sim::read_pcap(p).unwrap().len())
        .sum();
    assert_eq!(merged.len(), per_host);
    assert!(merged.windows(2).all(|w| w[0].micros <= w[1].micros));
    let from = |ip: [u8; 4]| merged.iter().filter(|r| r.data[12..16] == ip).count();
    assert!(from([192, 0, 2, 1]) > 100 && from([192, 0, 2, 2]) > 30);
    assert_eq!(a.0, b.0);
    assert_eq!(a.2, b.2);
    assert!(a.1 == b.1, "the packet captures differ");
    let c = lossy_run(12);
    assert!(a.1 != c.1, "another seed made the same packets");
}
