//! Two engines over a simulated link that loses, reorders and duplicates
//! packets, on a simulated clock stepped through `poll_timeout` /
//! `handle_timeout`: for many random links and transfers, each side receives
//! exactly the other's byte stream, and both connections close and are freed.
//!
//! `LOSSY_TRACE=1` prints every packet and both connections' sequence
//! variables after each step, to debug a failing case.

use proptest::prelude::*;

use super::*;

const A_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const B_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);

/// A small deterministic generator (xorshift64*), seeded by proptest.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// A number in `0..n`.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    /// True with probability `percent`/100.
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// The properties of the simulated link.
#[derive(Debug, Clone, Copy)]
struct Link {
    loss: u64,
    dup: u64,
    /// Base one-way delay, ms.
    delay: u64,
    /// Extra random delay, ms: packets overtake each other.
    jitter: u64,
}

/// One endpoint: its engine, its connection, and the application's progress.
struct Host {
    engine: Engine,
    listener: Option<SocketHandle>,
    conn: Option<SocketHandle>,
    to_send: Vec<u8>,
    sent: usize,
    shut: bool,
    received: Vec<u8>,
    eof: bool,
    closed: bool,
    /// The handshake completed (later the connection may be CLOSED by a
    /// graceful close before the application has read everything).
    connected: bool,
    /// Reads only with this probability per step: a slow reader.
    read_chance: u64,
}

impl Host {
    fn new(ip: Ipv4Addr, config: Config, mtu: usize, seed: u64, data: Vec<u8>) -> Host {
        Host {
            engine: Engine::new(config, Interface::new(ip, 24, mtu), [seed, !seed]),
            listener: None,
            conn: None,
            to_send: data,
            sent: 0,
            shut: false,
            received: Vec::new(),
            eof: false,
            closed: false,
            connected: false,
            read_chance: 100,
        }
    }

    /// The application: accept, write what fits, read what is there, shut the
    /// sending side when all is written, and close once both directions are done.
    fn app(&mut self, now: Instant, rng: &mut Rng, force_read: bool) -> Result<(), String> {
        if self.conn.is_none()
            && let Some(l) = self.listener
            && let Ok(c) = self.engine.accept(l)
        {
            self.conn = Some(c);
        }
        let Some(c) = self.conn else {
            return Ok(());
        };
        if self.closed {
            return Ok(());
        }
        match self.engine.connect_result(c) {
            _ if self.connected => {}
            Ok(true) => self.connected = true,
            Ok(false) => return Ok(()),
            Err(e) => {
                return Err(format!(
                    "connection failed at {} ms: {e}; {:?} {:?}",
                    now.as_millis(),
                    self.engine.state(c),
                    self.engine.tcp_info(c)
                ));
            }
        }
        while self.sent < self.to_send.len() {
            let chunk = (1 + rng.below(20_000) as usize).min(self.to_send.len() - self.sent);
            match self
                .engine
                .send(now, c, &self.to_send[self.sent..self.sent + chunk])
            {
                Ok(n) => self.sent += n,
                Err(Error::WouldBlock) => break,
                Err(e) => return Err(format!("send: {e}")),
            }
        }
        if self.sent == self.to_send.len() && !self.shut {
            self.engine
                .shutdown(now, c)
                .map_err(|e| format!("shutdown: {e}"))?;
            self.shut = true;
        }
        if force_read || rng.chance(self.read_chance) {
            let mut buf = vec![0u8; 1 + rng.below(30_000) as usize];
            loop {
                match self.engine.recv(now, c, &mut buf) {
                    Ok(0) => {
                        self.eof = true;
                        break;
                    }
                    Ok(n) => self.received.extend_from_slice(&buf[..n]),
                    Err(Error::WouldBlock) => break,
                    Err(e) => return Err(format!("recv: {e}")),
                }
            }
        }
        if self.eof && self.shut {
            self.engine.close(now, c);
            self.closed = true;
        }
        Ok(())
    }
}

/// A packet on the wire: when it arrives, and at which host (true: A).
struct InFlight {
    at: Instant,
    order: u64,
    to_a: bool,
    packet: Vec<u8>,
}

#[allow(clippy::too_many_arguments)]
fn run(
    seed: u64,
    link: Link,
    a_data: Vec<u8>,
    b_data: Vec<u8>,
    a_cfg: Config,
    b_cfg: Config,
    mtu: usize,
    slow_reader: bool,
) -> Result<(), String> {
    let mut rng = Rng(seed | 1);
    let mut a = Host::new(A_IP, a_cfg, mtu, seed, a_data);
    let mut b = Host::new(B_IP, b_cfg, mtu, seed.rotate_left(17), b_data);
    if slow_reader {
        a.read_chance = 30;
        b.read_chance = 30;
    }
    let mut now = Instant::from_millis(1);
    a.listener = Some(
        a.engine
            .listen(SocketAddrV4::new(A_IP, 80), 4)
            .map_err(|e| e.to_string())?,
    );
    b.conn = Some(
        b.engine
            .connect(now, SocketAddrV4::new(A_IP, 80))
            .map_err(|e| e.to_string())?,
    );
    let mut wire: Vec<InFlight> = Vec::new();
    let mut order = 0u64;
    let mut buf = vec![0u8; 2048];
    let limit = now + Duration::from_secs(4 * 3600);
    for _step in 0..2_000_000u32 {
        // The applications, then whatever the engines want to send.
        let idle = wire.is_empty();
        a.app(now, &mut rng, idle)?;
        b.app(now, &mut rng, idle)?;
        for (from_a, host) in [(true, &mut a), (false, &mut b)] {
            while let Some(n) = host.engine.poll_transmit(now, &mut buf) {
                let lost = rng.chance(link.loss);
                if std::env::var_os("LOSSY_TRACE").is_some() {
                    let seg = parse(&buf[..n]);
                    eprintln!(
                        "{:>8} {} seq {} ack {:?} {:?} len {} win {} ts {:?}{}",
                        now.as_millis(),
                        if from_a { "A>B" } else { "B>A" },
                        seg.seq,
                        seg.ack,
                        seg.ctl,
                        seg.payload.len(),
                        seg.window,
                        seg.ts,
                        if lost { " LOST" } else { "" }
                    );
                }
                if lost {
                    continue;
                }
                let copies = if rng.chance(link.dup) { 2 } else { 1 };
                for _ in 0..copies {
                    let delay = link.delay + rng.below(link.jitter + 1);
                    order += 1;
                    wire.push(InFlight {
                        at: now + Duration::from_millis(delay),
                        order,
                        to_a: !from_a,
                        packet: buf[..n].to_vec(),
                    });
                }
            }
        }
        if std::env::var_os("LOSSY_TRACE").is_some() {
            for (name, host) in [("A", &a), ("B", &b)] {
                if let Some(c) = host.conn {
                    eprintln!("    {name} {:?}", host.engine.tcb(c).map(|t| t.summary()));
                }
            }
        }
        let done = a.closed
            && b.closed
            && a.engine.socket_count() == 1
            && b.engine.socket_count() == 0
            && wire.is_empty();
        if done {
            if a.received != b.to_send {
                return Err(format!(
                    "A received {} bytes, B sent {}",
                    a.received.len(),
                    b.to_send.len()
                ));
            }
            if b.received != a.to_send {
                return Err(format!(
                    "B received {} bytes, A sent {}",
                    b.received.len(),
                    a.to_send.len()
                ));
            }
            return Ok(());
        }
        // The next thing to happen: a packet arriving or a timer.
        let next = [
            wire.iter().map(|p| p.at).min(),
            a.engine.poll_timeout(),
            b.engine.poll_timeout(),
        ]
        .into_iter()
        .flatten()
        .min();
        let Some(next) = next else {
            if std::env::var_os("LOSSY_TRACE").is_some() {
                eprintln!(
                    "A: {:#?}",
                    a.conn.map(|c| a.engine.tcb(c).map(|t| t.summary()))
                );
                eprintln!(
                    "B: {:#?}",
                    b.conn.map(|c| b.engine.tcb(c).map(|t| t.summary()))
                );
            }
            return Err(format!(
                "stalled at {} ms: A sent {}/{} recv {} eof {} closed {}; B sent {}/{} recv {} eof {} closed {}; A {:?} B {:?}",
                now.as_millis(),
                a.sent,
                a.to_send.len(),
                a.received.len(),
                a.eof,
                a.closed,
                b.sent,
                b.to_send.len(),
                b.received.len(),
                b.eof,
                b.closed,
                a.conn.map(|c| a.engine.state(c)),
                b.conn.map(|c| b.engine.state(c)),
            ));
        };
        now = now.max(next);
        if now > limit {
            return Err("no completion within four hours of simulated time".into());
        }
        // Deliver what is due, in arrival order.
        wire.sort_by_key(|p| (p.at, p.order));
        let due = wire.iter().take_while(|p| p.at <= now).count();
        for p in wire.drain(..due).collect::<Vec<_>>() {
            if p.to_a {
                a.engine.handle_packet(now, &p.packet);
            } else {
                b.engine.handle_packet(now, &p.packet);
            }
        }
        a.engine.handle_timeout(now);
        b.engine.handle_timeout(now);
    }
    Err("too many steps".into())
}

fn config(rng: &mut Rng) -> Config {
    let bufs = [4 * 1024, 16 * 1024, 64 * 1024, 256 * 1024];
    Config {
        recv_buffer: bufs[rng.below(4) as usize],
        send_buffer: bufs[rng.below(4) as usize],
        timestamps: rng.chance(75),
        window_scaling: rng.chance(75),
        // A lost handshake is not what this test is after: at 30% loss seven
        // lost SYNs (or SYN-ACKs) in a row happen once in a few thousand runs.
        syn_retries: 12,
        // Likewise sixteen lost round trips of one segment (1 in 10^7 at 20%
        // loss each way, but there are many segments in many runs).
        data_retries: 30,
        ..Config::default()
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        // 64 per run; `PROPTEST_CASES=N` for a longer soak.
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(64),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn streams_arrive_intact_over_a_lossy_reordering_duplicating_link(
        seed in any::<u64>(),
        loss in 0u64..20,
        dup in 0u64..10,
        delay in 1u64..30,
        jitter in 0u64..40,
        a_len in 0usize..150_000,
        b_len in 0usize..150_000,
        mtu_pick in 0usize..3,
        slow_reader in any::<bool>(),
    ) {
        let mut rng = Rng(seed ^ 0x9e37_79b9_7f4a_7c15 | 1);
        let a_data: Vec<u8> = (0..a_len).map(|_| rng.next() as u8).collect();
        let b_data: Vec<u8> = (0..b_len).map(|_| rng.next() as u8).collect();
        let a_cfg = config(&mut rng);
        let b_cfg = config(&mut rng);
        let mtu = [576, 1280, 1500][mtu_pick];
        let link = Link { loss, dup, delay, jitter };
        let result = run(seed, link, a_data, b_data, a_cfg, b_cfg, mtu, slow_reader);
        prop_assert!(result.is_ok(), "{:?} with {:?}", result, link);
    }
}

#[test]
fn clean_link_transfers_both_ways() {
    let mut rng = Rng(42);
    let a: Vec<u8> = (0..100_000).map(|_| rng.next() as u8).collect();
    let b: Vec<u8> = (0..70_000).map(|_| rng.next() as u8).collect();
    let link = Link {
        loss: 0,
        dup: 0,
        delay: 5,
        jitter: 0,
    };
    run(
        7,
        link,
        a,
        b,
        Config::default(),
        Config::default(),
        1500,
        false,
    )
    .unwrap();
}
