//! Loss recovery end to end: two engines joined by an in-test link that
//! drops and delays chosen segments, on a simulated clock. Each transfer must
//! complete intact; the counts of retransmissions and timeouts show how well
//! recovery worked (run with `--nocapture` to see them).

use std::collections::BTreeMap;

use super::*;

const A_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const B_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
/// One-way delay of the link.
const DELAY: Duration = Duration::from_millis(10);
/// Time to put a full-sized packet on the wire from A: 100 Mbit/s, so that
/// segments arrive one by one, as on a real path.
const SERIALIZE: Duration = Duration::from_nanos(1500 * 8 * 10);

/// What the link does with one data segment from A to B.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Deliver,
    Drop,
    /// Delivered this much later than usual, overtaken by what follows
    /// (reordering).
    Delay(Duration),
    /// Held until this long after the start, then delivered in order (a
    /// stalled path).
    HoldUntil(Duration),
}

/// A data segment from A as the link sees it.
#[derive(Debug, Clone, Copy)]
struct DataSeg {
    /// Offset of its first byte in the stream.
    offset: usize,
    /// 0 for new data (beyond all sent before), then 1, 2, … for each
    /// retransmission of this offset.
    transmission: u32,
    /// When it was sent, since the start.
    at: Duration,
}

/// The outcome of one transfer.
#[derive(Debug, Default)]
struct Outcome {
    segments: u64,
    dropped: u64,
    info: TcpInfo,
    elapsed: Duration,
}

/// Sends `total` bytes from engine A to engine B over the link; `fate`
/// decides about each data segment from A. Panics if the transfer does not
/// finish within a simulated minute or the bytes differ.
fn transfer(config: Config, total: usize, mut fate: impl FnMut(DataSeg) -> Fate) -> Outcome {
    let mut a = Engine::new(config.clone(), Interface::new(A_IP, 24, 1500), [1, 1]);
    let mut b = Engine::new(config, Interface::new(B_IP, 24, 1500), [2, 2]);
    let start = Instant::from_millis(1_000);
    let mut now = start;
    let l = b.listen(SocketAddrV4::new(B_IP, 80), 8).unwrap();
    let ca = a.connect(now, SocketAddrV4::new(B_IP, 80)).unwrap();
    let (iss, _) = a.sequence_numbers(ca).unwrap();
    let data = pattern(0, total);
    let mut written = 0;
    let mut received = Vec::with_capacity(total);
    let mut cb = None;
    // In flight on the link: (arrival time, order) -> (to B?, packet).
    let mut link: BTreeMap<(Instant, u64), (bool, Vec<u8>)> = BTreeMap::new();
    let mut order = 0u64;
    let mut seen: BTreeMap<usize, u32> = BTreeMap::new();
    // The end of the data A has sent so far (stream offset).
    let mut sent_end = 0usize;
    // When A's side of the link is free again, and when the last packet
    // that keeps its place in the queue arrives at B.
    let mut wire_free = start;
    let mut last_to_b = start;
    let mut out = Outcome::default();
    let mut buf = vec![0u8; 1500];
    let mut rbuf = vec![0u8; 64 * 1024];
    let deadline = start + Duration::from_secs(60);
    loop {
        // The applications: A writes what fits, B reads what arrived.
        if a.connect_result(ca) == Ok(true)
            && written < total
            && let Ok(n) = a.send(now, ca, &data[written..])
        {
            written += n;
            if written == total {
                a.shutdown(now, ca).unwrap();
            }
        }
        if cb.is_none() {
            cb = b.accept(l).ok();
        }
        if let Some(c) = cb {
            loop {
                match b.recv(now, c, &mut rbuf) {
                    Ok(0) => {
                        assert_eq!(received.len(), total, "stream ended early");
                        assert!(received == data, "bytes differ");
                        out.info = a.tcp_info(ca).unwrap();
                        out.elapsed = now - start;
                        return out;
                    }
                    Ok(n) => received.extend_from_slice(&rbuf[..n]),
                    Err(_) => break,
                }
            }
        }
        // Both engines transmit onto the link.
        while let Some(n) = a.poll_transmit(now, &mut buf) {
            let p = buf[..n].to_vec();
            let seg = parse(&p);
            wire_free = wire_free.max(now) + SERIALIZE;
            let mut at = wire_free + DELAY;
            let mut in_order = true;
            if !seg.payload.is_empty() {
                let offset = seg.seq.wrapping_sub(iss.0.wrapping_add(1)) as usize;
                let new = offset >= sent_end;
                sent_end = sent_end.max(offset + seg.payload.len());
                let t = seen.entry(offset).or_insert(0);
                if !new {
                    *t += 1;
                }
                let ds = DataSeg {
                    offset,
                    transmission: if new { 0 } else { (*t).max(1) },
                    at: now - start,
                };
                out.segments += 1;
                match fate(ds) {
                    Fate::Deliver => {}
                    Fate::Drop => {
                        out.dropped += 1;
                        continue;
                    }
                    Fate::Delay(d) => {
                        at = at + d;
                        in_order = false;
                    }
                    Fate::HoldUntil(t) => at = at.max(start + t),
                }
            }
            if in_order {
                // A FIFO link: nothing overtakes, and packets leave it one
                // serialization time apart.
                at = at.max(last_to_b + SERIALIZE);
                last_to_b = at;
            }
            order += 1;
            link.insert((at, order), (true, p));
        }
        while let Some(n) = b.poll_transmit(now, &mut buf) {
            order += 1;
            link.insert((now + DELAY, order), (false, buf[..n].to_vec()));
        }
        // The clock moves to the next arrival or timer.
        let next_arrival = link.keys().next().map(|k| k.0);
        let next = [next_arrival, a.poll_timeout(), b.poll_timeout()]
            .into_iter()
            .flatten()
            .min()
            .expect("something is pending");
        assert!(next <= deadline, "transfer stalled: {:?}", a.tcp_info(ca));
        now = now.max(next);
        while let Some(entry) = link.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let (to_b, p) = entry.remove();
            if to_b {
                b.handle_packet(now, &p);
            } else {
                a.handle_packet(now, &p);
            }
        }
        a.handle_timeout(now);
        b.handle_timeout(now);
    }
}

fn config(sack: bool, congestion: CongestionAlgorithm) -> Config {
    Config {
        sack,
        congestion,
        ..Config::default()
    }
}

const TOTAL: usize = 2 << 20;

fn report(name: &str, o: &Outcome) {
    println!(
        "{name:<40} segments {:>5} dropped {:>4} retransmitted {:>4} timeouts {:>2} fast {:>2} undos {} probes {} time {:>5} ms",
        o.segments,
        o.dropped,
        o.info.bytes_retrans / 1460,
        o.info.timeouts,
        o.info.fast_retransmits,
        o.info.spurious_undos,
        o.info.tail_loss_probes,
        o.elapsed.as_millis()
    );
}

/// The four combinations of SACK on/off and NewReno/CUBIC.
fn variants() -> [(&'static str, Config); 4] {
    [
        ("sack cubic", config(true, CongestionAlgorithm::Cubic)),
        ("sack newreno", config(true, CongestionAlgorithm::NewReno)),
        ("nosack cubic", config(false, CongestionAlgorithm::Cubic)),
        (
            "nosack newreno",
            config(false, CongestionAlgorithm::NewReno),
        ),
    ]
}

#[test]
fn clean_link_transfers_without_retransmission() {
    for (name, cfg) in variants() {
        let o = transfer(cfg, TOTAL, |_| Fate::Deliver);
        report(&format!("clean / {name}"), &o);
        assert_eq!((o.info.bytes_retrans, o.info.timeouts), (0, 0), "{name}");
    }
}

#[test]
fn a_burst_of_loss_is_repaired_without_a_timeout() {
    // Twenty consecutive segments lost once, 500 KB into the stream.
    let burst = |d: DataSeg| {
        if d.transmission == 0 && (500_000..500_000 + 20 * 1460).contains(&d.offset) {
            Fate::Drop
        } else {
            Fate::Deliver
        }
    };
    for (name, cfg) in variants() {
        let o = transfer(cfg.clone(), TOTAL, burst);
        report(&format!("burst of 20 / {name}"), &o);
        assert_eq!(o.dropped, 20, "{name}");
        if cfg.sack {
            // RFC 6675: every hole is repaired in the first recovery round.
            assert_eq!(o.info.timeouts, 0, "{name}");
            assert_eq!(o.info.fast_retransmits, 1, "{name}");
            assert!(o.info.bytes_retrans <= 22 * 1460, "{name}: {:?}", o.info);
        } else {
            // NewReno repairs one hole per round trip; still no timeout.
            assert_eq!(o.info.timeouts, 0, "{name}");
        }
    }
}

#[test]
fn scattered_loss_is_repaired_with_few_timeouts() {
    // About 2% of first transmissions and retransmissions lost, from a
    // fixed pseudo-random sequence.
    for (name, cfg) in variants() {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let o = transfer(cfg.clone(), TOTAL, move |_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if x.is_multiple_of(50) {
                Fate::Drop
            } else {
                Fate::Deliver
            }
        });
        report(&format!("2% random / {name}"), &o);
        assert!(o.dropped > 10, "{name}");
        if cfg.sack {
            assert!(o.info.timeouts <= 2, "{name}: {:?}", o.info);
        }
    }
}

#[test]
fn reordering_is_not_mistaken_for_loss_for_long() {
    // Every 50th segment delayed 3 ms: overtaken by the 25 or so sent after
    // it (120 µs apart at 100 Mbit/s).
    for (name, cfg) in variants() {
        let o = transfer(cfg.clone(), TOTAL, |d| {
            if d.transmission == 0 && (d.offset / 1460) % 50 == 25 {
                Fate::Delay(Duration::from_millis(3))
            } else {
                Fate::Deliver
            }
        });
        report(&format!("reordering / {name}"), &o);
        assert_eq!(o.info.timeouts, 0, "{name}");
        if cfg.sack {
            // The needless retransmissions come back as D-SACKs and most
            // window reductions are undone.
            assert!(
                o.info.spurious_undos * 4 >= o.info.fast_retransmits * 3,
                "{name}: {:?}",
                o.info
            );
        }
    }
}

#[test]
fn tail_loss_is_repaired() {
    // The last three segments of the stream lost once.
    let tail_start = TOTAL - 3 * 1460;
    for (name, cfg) in variants() {
        let o = transfer(cfg.clone(), TOTAL, |d| {
            if d.transmission == 0 && d.offset >= tail_start {
                Fate::Drop
            } else {
                Fate::Deliver
            }
        });
        report(&format!("tail loss / {name}"), &o);
        assert_eq!(o.dropped, 3, "{name}");
        if cfg.sack {
            // RFC 8985 §7: the probe brings a SACK, RACK finds the rest lost.
            assert_eq!(
                (o.info.timeouts, o.info.tail_loss_probes),
                (0, 1),
                "{name}: {:?}",
                o.info
            );
        } else {
            assert!(o.info.timeouts <= 1, "{name}: {:?}", o.info);
        }
    }
}

#[test]
fn a_stalled_path_causes_a_timeout_that_is_undone() {
    // From 150 ms into the transfer the path stalls for 400 ms: whatever A
    // sends meanwhile is held and arrives, in order, from 560 ms on. The RTO fires though
    // nothing is lost; F-RTO (without SACK) or D-SACK (with it) finds the
    // timeout spurious and restores the window.
    //
    // A send buffer larger than the peer's window, so that new data waits
    // when the stall ends (F-RTO sends new data to tell).
    let stall = Duration::from_millis(150)..Duration::from_millis(550);
    for (name, cfg) in variants() {
        let cfg = Config {
            send_buffer: 1 << 20,
            ..cfg
        };
        let o = transfer(cfg, TOTAL, |d| {
            if stall.contains(&d.at) {
                Fate::HoldUntil(Duration::from_millis(560))
            } else {
                Fate::Deliver
            }
        });
        report(&format!("stall / {name}"), &o);
        assert!(o.info.timeouts >= 1, "{name}: {:?}", o.info);
        assert!(o.info.spurious_undos >= 1, "{name}: {:?}", o.info);
        // F-RTO sent new data rather than resending the held window.
        assert!(o.info.bytes_retrans <= 2 * 1460, "{name}: {:?}", o.info);
    }
}
