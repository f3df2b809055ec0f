//! `StackSet`: one host on several stacks over a multi-queue `MemoryLink`.

use std::io::ErrorKind;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use synack::Stack;
use synack::device::{MemoryLink, MemoryLinkConfig, queue_of};
use synack::net::{TcpListener, TcpStream};
use synack::shard::StackSet;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SERVER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const CLIENT: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);

fn sets(queues: usize) -> (StackSet, StackSet) {
    let (s, c) = MemoryLink::multi_queue(MemoryLinkConfig::default(), queues, queues);
    (
        StackSet::on_devices(s, SERVER, 24).unwrap(),
        StackSet::on_devices(c, CLIENT, 24).unwrap(),
    )
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// Connections each shard of `set` has established.
fn established(set: &StackSet) -> Vec<u64> {
    set.shards()
        .iter()
        .map(|s| s.stats().connections_established)
        .collect()
}

#[tokio::test]
async fn a_connection_opened_on_a_shard_lives_on_the_same_shard_at_both_ends() {
    let (server, client) = sets(3);
    let listener = server.bind((SERVER, 80)).await.unwrap();
    assert_eq!(listener.shards().len(), 3);
    for shard in [0, 1, 2, 2, 1, 0] {
        let before_client = established(&client);
        let before_server = established(&server);
        let mut stream = client.connect_on(shard, (SERVER, 80)).await.unwrap();
        let (mut accepted, peer) = listener.accept().await.unwrap();
        assert_eq!(peer, stream.local_addr().unwrap());
        let local = stream.local_addr().unwrap();
        assert_eq!(client.shard_of(local, stream.peer_addr().unwrap()), shard);
        // Exactly one connection more, on the shard asked for, on each side.
        let mut want = before_client.clone();
        want[shard] += 1;
        assert_eq!(established(&client), want);
        let mut want = before_server.clone();
        want[shard] += 1;
        assert_eq!(established(&server), want);

        stream.write_all(b"ping").await.unwrap();
        let mut buf = [0; 4];
        accepted.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"ping");
    }
    // Every shard took the packets of its own flows only: nothing reached a
    // shard that had no connection for it.
    for s in server.shards().iter().chain(client.shards()) {
        let stats = s.stats();
        assert_eq!(stats.rx_no_socket, 0);
        assert_eq!(stats.rst_dropped, 0);
    }
}

#[tokio::test]
async fn one_accept_loop_takes_connections_from_every_shard() {
    let (queues, mut one) = MemoryLink::multi_queue(MemoryLinkConfig::default(), 4, 1);
    let server = StackSet::on_devices(queues, SERVER, 24).unwrap();
    let client = Stack::new(one.remove(0), CLIENT, 24);
    let listener = server.bind("0.0.0.0:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    assert_ne!(port, 0);
    for l in listener.shards() {
        assert_eq!(
            l.local_addr().unwrap().port(),
            port,
            "one port on every shard"
        );
    }
    let acceptor = tokio::spawn(async move {
        let mut got = 0;
        while got < 64 {
            let (mut s, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let mut buf = vec![0; 1000];
                s.read_exact(&mut buf).await.unwrap();
                s.write_all(&buf).await.unwrap();
            });
            got += 1;
        }
    });
    let mut tasks = Vec::new();
    for i in 0..64u8 {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let mut s = TcpStream::connect_on(&client, (SERVER, port))
                .await
                .unwrap();
            let data = pattern(1000, i);
            s.write_all(&data).await.unwrap();
            let mut back = vec![0; 1000];
            s.read_exact(&mut back).await.unwrap();
            assert_eq!(back, data);
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    acceptor.await.unwrap();
    let per_shard = established(&server);
    assert_eq!(per_shard.iter().sum::<u64>(), 64);
    assert!(per_shard.iter().all(|&n| n > 0), "{per_shard:?}");
}

#[tokio::test]
async fn bulk_both_ways_on_two_shards_arrives_intact() {
    let (server, client) = sets(2);
    let listener = server.bind((SERVER, 9)).await.unwrap();
    let len = 2 << 20;
    let mut clients = Vec::new();
    for i in 0..4u8 {
        let client = client.clone();
        clients.push(tokio::spawn(async move {
            let s = client.connect(SocketAddr::from((SERVER, 9))).await.unwrap();
            let (mut r, mut w) = s.into_split();
            let data = pattern(len, i);
            let writer = tokio::spawn(async move {
                w.write_all(&data).await.unwrap();
                w.shutdown().await.unwrap();
            });
            let mut back = Vec::new();
            r.read_to_end(&mut back).await.unwrap();
            writer.await.unwrap();
            assert_eq!(back, pattern(len, i));
        }));
    }
    for _ in 0..4 {
        let (s, _) = listener.accept().await.unwrap();
        tokio::spawn(async move {
            let (mut r, mut w) = s.into_split();
            tokio::io::copy(&mut r, &mut w).await.unwrap();
            w.shutdown().await.unwrap();
        });
    }
    for c in clients {
        tokio::time::timeout(Duration::from_secs(60), c)
            .await
            .unwrap()
            .unwrap();
    }
    // `connect` takes the shards in turn: two flows each.
    assert_eq!(established(&client), vec![2, 2]);
    assert_eq!(established(&server), vec![2, 2]);
}

#[test]
fn one_shard_per_thread_each_on_its_own_runtime() {
    let (s, c) = MemoryLink::multi_queue(MemoryLinkConfig::default(), 2, 2);
    let (tx, rx) = std::sync::mpsc::channel();
    let mut threads = Vec::new();
    for (i, (sd, cd)) in s.into_iter().zip(c).enumerate() {
        let tx = tx.clone();
        let (set_tx, set_rx) = std::sync::mpsc::channel::<(StackSet, TcpListener)>();
        threads.push((
            set_tx,
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async move {
                    let server = Stack::new(sd, SERVER, 24);
                    let client = Stack::new(cd, CLIENT, 24);
                    tx.send((i, server.clone(), client)).unwrap();
                    // Wait for the whole client set (for its port choice)
                    // and this shard's listener, without blocking the
                    // thread: the stacks' drivers run on it.
                    let (clients, listener) = loop {
                        match set_rx.try_recv() {
                            Ok(v) => break v,
                            Err(_) => tokio::time::sleep(Duration::from_millis(1)).await,
                        }
                    };
                    let serve = tokio::spawn(async move {
                        for _ in 0..20 {
                            let (mut s, _) = listener.accept().await.unwrap();
                            let mut b = [0; 1];
                            s.read_exact(&mut b).await.unwrap();
                            s.write_all(&b).await.unwrap();
                        }
                    });
                    for k in 0..20u8 {
                        let mut s = clients.connect_on(i, (SERVER, 80)).await.unwrap();
                        s.write_all(&[k]).await.unwrap();
                        let mut b = [0; 1];
                        s.read_exact(&mut b).await.unwrap();
                        assert_eq!(b, [k]);
                    }
                    serve.await.unwrap();
                    server.stats().connections_established
                })
            }),
        ));
    }
    drop(tx);
    let mut got: Vec<_> = rx.iter().take(2).collect();
    got.sort_by_key(|(i, _, _)| *i);
    let servers = StackSet::new(got.iter().map(|(_, s, _)| s.clone()).collect()).unwrap();
    let clients = StackSet::new(got.iter().map(|(_, _, c)| c.clone()).collect()).unwrap();
    // Bind from this thread: a listener is made at once, no runtime needed
    // beyond the stacks' own.
    let listeners = {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(servers.bind((SERVER, 80))).unwrap()
    };
    for ((set_tx, _), l) in threads.iter().zip(listeners.into_shards()) {
        set_tx.send((clients.clone(), l)).unwrap();
    }
    let counts: Vec<u64> = threads
        .into_iter()
        .map(|(_, t)| t.join().unwrap())
        .collect();
    // Each thread's 20 connections stayed on its own shard.
    assert_eq!(counts, vec![20, 20]);
}

#[tokio::test]
async fn misuse_gets_the_errors_a_user_expects() {
    let err = StackSet::new(Vec::new()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);

    let (a, _a) = MemoryLink::pair(MemoryLinkConfig::default());
    let (b, _b) = MemoryLink::pair(MemoryLinkConfig::default());
    let err =
        StackSet::new(vec![Stack::new(a, SERVER, 24), Stack::new(b, CLIENT, 24)]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);

    let (server, _client) = sets(2);
    let err = server.connect_on(2, (CLIENT, 80)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    // A port held on one shard cannot be bound on all.
    let _held = TcpListener::bind_on(&server.shards()[1], (SERVER, 81))
        .await
        .unwrap();
    let err = server.bind((SERVER, 81)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AddrInUse);
    // Nobody listens: refused, as on one stack.
    let err = server.connect_on(1, (CLIENT, 80)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused);
}

#[tokio::test]
async fn loopback_inside_a_shard_needs_no_steering() {
    let (server, _client) = sets(2);
    let listener = server.bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    for shard in 0..2 {
        let s = server.connect_on(shard, addr).await.unwrap();
        let (a, peer) = listener.shards()[shard].accept().await.unwrap();
        assert_eq!(peer, s.local_addr().unwrap());
        drop(a);
    }
}

#[test]
fn the_steering_hash_is_the_links() {
    let local: SocketAddr = (CLIENT, 50000).into();
    let remote: SocketAddr = (SERVER, 80).into();
    assert_eq!(queue_of(local, remote, 2), queue_of(remote, local, 2));
}
