//! Target `reassembly`: the fragments of one UDP datagram, cut, repeated,
//! overlapped, corrupted and interleaved with other datagrams' fragments
//! and with time passing, into a host that holds the datagram's port.
//!
//! Checked after every step, besides [`drain`]'s rules:
//! - the partial datagrams never hold more than
//!   [`Config::reassembly_memory`](synack_engine::Config::reassembly_memory);
//! - whatever the socket receives is the datagram, byte for byte, from its
//!   sender (other datagrams' fragments are for a port nobody holds), unless
//!   a corrupted fragment was sent;
//! - while the input stays within a model the engine's rules make exact
//!   (honest fragments of the one datagram, time short of the reassembly
//!   timeout, memory enough), the datagram is delivered exactly when its
//!   pieces, as the overlap rule keeps them, cover it: RFC 791 §3.2 and
//!   RFC 5722's rule, as the engine documents them.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use synack_engine::{Config, Instant};

use crate::datagram::UDP_PORT;
use crate::wire::{UDP, checksum, pseudo};
use crate::{LOCAL, PEER, Reader, drain, engine};

/// The sender's port.
const FROM_PORT: u16 = 7;

/// One fragment of `body` (the whole IP payload), at `start..end`.
fn fragment(
    id: u16,
    proto: u8,
    src: Ipv4Addr,
    body: &[u8],
    start: usize,
    end: usize,
    more: bool,
) -> Vec<u8> {
    let piece = &body[start..end];
    let total = (20 + piece.len()) as u16;
    let frag = (start / 8) as u16 | if more { 0x2000 } else { 0 };
    let mut d = vec![0x45, 0];
    d.extend_from_slice(&total.to_be_bytes());
    d.extend_from_slice(&id.to_be_bytes());
    d.extend_from_slice(&frag.to_be_bytes());
    d.extend_from_slice(&[64, proto, 0, 0]);
    d.extend_from_slice(&src.octets());
    d.extend_from_slice(&LOCAL.octets());
    let sum = checksum(&[&d[..20]]);
    d[10..12].copy_from_slice(&sum.to_be_bytes());
    d.extend_from_slice(piece);
    d
}

/// What the model knows of the engine's partial datagram.
#[derive(Debug, Default)]
struct Model {
    /// Pieces held, as byte ranges of the IP payload.
    held: Vec<(usize, usize)>,
    /// The end fixed by the last fragment, once held.
    end: Option<usize>,
    /// When the first held piece arrived.
    first_at: Option<Instant>,
    /// False once the input left what the model predicts exactly.
    exact: bool,
}

impl Model {
    /// An honest fragment `start..end` arrives at `now`; returns whether it
    /// completes the datagram.
    fn push(&mut self, now: Instant, start: usize, end: usize, more: bool, total: usize) -> bool {
        if self.held.contains(&(start, end)) {
            return false;
        }
        if self.held.iter().any(|&(a, b)| start < b && a < end) {
            // The overlap rule: the datagram is dropped and forgotten.
            *self = Model {
                exact: self.exact,
                ..Model::default()
            };
            return false;
        }
        if self.held.is_empty() {
            self.first_at = Some(now);
        }
        self.held.push((start, end));
        if !more {
            self.end = Some(end);
        }
        let mut pieces = self.held.clone();
        pieces.sort();
        let mut covered = 0;
        for (a, b) in pieces {
            if a != covered {
                return false;
            }
            covered = b;
        }
        if self.end == Some(total) && covered == total {
            *self = Model {
                exact: self.exact,
                ..Model::default()
            };
            return true;
        }
        false
    }
}

/// Target `reassembly`.
pub fn reassembly(data: &[u8]) {
    run(data);
}

/// The target's body; returns how many times the datagram was delivered.
pub fn run(data: &[u8]) -> u32 {
    let mut r = Reader::new(data);
    let len = usize::from(r.u16()) % 12_000;
    let seed = r.u8();
    let id = r.u16();
    let payload: Vec<u8> = (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect();
    let mut body = Vec::with_capacity(8 + len);
    body.extend_from_slice(&FROM_PORT.to_be_bytes());
    body.extend_from_slice(&UDP_PORT.to_be_bytes());
    body.extend_from_slice(&((8 + len) as u16).to_be_bytes());
    body.extend_from_slice(&[0, 0]);
    body.extend_from_slice(&payload);
    let sum = checksum(&[&pseudo(PEER, LOCAL, UDP, body.len()), &body]);
    body[6..8].copy_from_slice(&sum.to_be_bytes());
    let total = body.len();

    let memory = 1usize << (10 + r.u8() % 14);
    let timeout = Duration::from_millis(100 + u64::from(r.u16()));
    let config = Config {
        reassembly_memory: memory,
        reassembly_timeout: timeout,
        ..crate::config()
    };
    let mut e = engine(LOCAL, config, 11);
    let udp = e
        .udp_bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, UDP_PORT))
        .expect("bind");
    let start_at = Instant::from_millis(1_000);
    let mut now = start_at;
    // Room for the datagram and every piece the input could cut, as the
    // engine charges them (its overheads are below these).
    let pieces = total.div_ceil(8);
    let mut model = Model {
        exact: memory >= 1024 + 60 + total + 128 * pieces,
        ..Model::default()
    };
    let mut tainted = false;
    let mut expected = 0u32;
    let mut delivered = 0u32;
    let mut buf = vec![0u8; 65_536];
    while !r.done() {
        match r.u8() % 8 {
            0..=3 => {
                // An honest fragment: 8-byte aligned, the last one ragged.
                let start = 8 * (usize::from(r.u16()) % pieces.max(1));
                let span = 8 * (1 + usize::from(r.u8() % 185));
                let end = (start + span).min(total);
                if start >= end {
                    continue;
                }
                let more = end < total;
                let d = fragment(id, UDP, PEER, &body, start, end, more);
                e.handle_packet(now, &d);
                if start == 0 && !more {
                    // The whole datagram, no fragment: delivered as it is,
                    // the partial one untouched.
                    expected += 1;
                } else if model.push(now, start, end, more, total) {
                    expected += 1;
                }
            }
            4 => {
                // A corrupted one: its bytes differ from the datagram's.
                let start = 8 * (usize::from(r.u16()) % pieces.max(1));
                let end = (start + 8 * (1 + usize::from(r.u8() % 185))).min(total);
                if start >= end {
                    continue;
                }
                let mut bad = body.clone();
                let at = start + usize::from(r.u16()) % (end - start);
                bad[at] ^= r.u8() | 1;
                e.handle_packet(now, &fragment(id, UDP, PEER, &bad, start, end, end < total));
                tainted = true;
                model.exact = false;
            }
            5 => {
                // Another datagram's fragment: another identification,
                // protocol or source; any offset, length and flag. Its
                // first bytes name a port nobody holds.
                let kind = r.u8();
                let (oid, proto, src) = match kind % 3 {
                    0 => (id ^ (r.u16() | 1), UDP, PEER),
                    1 => (id, 253, PEER),
                    _ => (id, UDP, Ipv4Addr::new(192, 0, 2, 3 + kind % 200)),
                };
                let at = 8 * usize::from(r.u16() % 8192);
                let n = usize::from(r.u16() % 1480) + 1;
                let mut other = vec![0u8; at + n];
                other[..4.min(at + n)].copy_from_slice(&[0, 9, 0x13, 0x89][..4.min(at + n)]);
                let more = kind & 0x80 != 0;
                let n = if more { n.div_ceil(8) * 8 } else { n };
                other.resize(at + n, 0x5a);
                let d = fragment(oid, proto, src, &other, at, at + n, more);
                e.handle_packet(now, &d);
                model.exact = false;
            }
            6 => {
                // Time passes: milliseconds, or (high bit) seconds.
                let v = r.u16();
                let step = if v & 0x8000 != 0 {
                    Duration::from_secs(u64::from(v & 0xff))
                } else {
                    Duration::from_millis(u64::from(v))
                };
                now = now + step;
                if let Some(first) = model.first_at {
                    let age = now.saturating_duration_since(first);
                    if age + Duration::from_millis(2) >= timeout {
                        // At or past the deadline the model cannot say
                        // which side of it the engine counts.
                        model.exact = false;
                    }
                }
            }
            _ => {
                // The datagram whole (not a fragment): always delivered.
                let mut d = fragment(id, UDP, PEER, &body, 0, total, false);
                d[6] = 0x40;
                d[10..12].fill(0);
                let sum = checksum(&[&d[..20]]);
                d[10..12].copy_from_slice(&sum.to_be_bytes());
                e.handle_packet(now, &d);
                expected += 1;
            }
        }
        let mut out = Vec::new();
        drain(&mut e, now, &mut out);
        let s = e.stats();
        assert!(
            s.frag_memory <= memory,
            "partial datagrams hold {} bytes, over the bound of {memory}",
            s.frag_memory
        );
        while let Ok((n, from)) = e.udp_recv(udp, &mut buf, false) {
            assert_eq!(*from.ip(), PEER, "a datagram from elsewhere");
            if !tainted {
                assert_eq!(from.port(), FROM_PORT, "a datagram from another port");
                assert_eq!(n, len, "a datagram of another length");
                assert!(buf[..n] == payload[..], "the datagram's bytes differ");
            }
            delivered += 1;
        }
        if model.exact && !tainted {
            assert_eq!(
                delivered, expected,
                "the datagram was delivered {delivered} times, {expected} by the rules: {model:?}"
            );
        }
    }
    delivered
}
