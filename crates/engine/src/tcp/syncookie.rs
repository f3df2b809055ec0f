//! SYN cookies (RFC 4987 §3.6): a listener whose SYN queue is full answers a
//! SYN without keeping any state, encoding what it must remember in the
//! initial sequence number of its SYN-ACK, and builds the connection when the
//! ACK brings that number back.
//!
//! The encoding is Linux's (`net/ipv4/syncookies.c`):
//!
//! ```text
//! ISS = H(4-tuple, 0) + peer ISN + (minute << 24) + ((H(4-tuple, minute) + mss index) mod 2^24)
//! ```
//!
//! where `H` is the stack's keyed SipHash and `minute` a counter of minutes of
//! the engine's clock. A returning ACK (ACK = ISS + 1, SEQ = peer ISN + 1) is
//! valid if the minute it names is this one or the last (so a cookie lives
//! one to two minutes) and the 24 low bits give back an MSS index below 4:
//! a blind guess succeeds with odds of 2^-22 per try.
//!
//! Only two bits of MSS fit; the other options of the SYN (window scale,
//! SACK-permitted) ride in the low 6 bits of the SYN-ACK's TSval when the
//! peer offered timestamps, and come back in its TSecr. Without timestamps a
//! cookie connection has neither window scaling nor SACK, as on Linux.

use std::net::SocketAddrV4;

use crate::Instant;
use crate::isn::Secret;
use crate::seq::Seq;

/// The MSS values a cookie can name (Linux's `msstab`): the largest not above
/// the peer's is chosen.
pub(crate) const MSS_TABLE: [u16; 4] = [536, 1300, 1440, 1460];

/// Bits of the cookie below the minute counter.
const COOKIE_BITS: u32 = 24;
const COOKIE_MASK: u32 = (1 << COOKIE_BITS) - 1;

/// Minutes a cookie stays valid: the current one and the one before (Linux's
/// `MAX_SYNCOOKIE_AGE`).
const MAX_AGE: u32 = 2;

/// The low TSval bits that carry options.
const TS_MASK: u32 = 0x3f;
/// Window scale field meaning "the peer offered none".
const TS_NO_WSCALE: u32 = 0xf;
const TS_SACK: u32 = 0x10;

/// The minute counter of `now`.
fn minute(now: Instant) -> u32 {
    (now.as_nanos() / 60_000_000_000) as u32
}

/// The index in [`MSS_TABLE`] of the largest MSS not above `mss`.
pub(crate) fn mss_index(mss: u16) -> usize {
    MSS_TABLE.iter().rposition(|&m| m <= mss).unwrap_or(0)
}

/// The cookie (our ISS) for a SYN from `remote` with sequence number
/// `peer_isn`, remembering MSS index `mss_idx`.
pub(crate) fn make(
    secret: &Secret,
    now: Instant,
    local: SocketAddrV4,
    remote: SocketAddrV4,
    peer_isn: Seq,
    mss_idx: usize,
) -> Seq {
    let count = minute(now);
    let h0 = secret.cookie_hash(local, remote, 0, 0);
    let h1 = secret.cookie_hash(local, remote, count, 1);
    Seq(h0
        .wrapping_add(peer_isn.0)
        .wrapping_add(count << COOKIE_BITS)
        .wrapping_add(h1.wrapping_add(mss_idx as u32) & COOKIE_MASK))
}

/// Checks `cookie` (the ACK number less one) against the peer's ISN (the
/// sequence number less one): the MSS index it remembers, or `None`.
pub(crate) fn check(
    secret: &Secret,
    now: Instant,
    local: SocketAddrV4,
    remote: SocketAddrV4,
    peer_isn: Seq,
    cookie: Seq,
) -> Option<usize> {
    let count = minute(now);
    let rest = cookie
        .0
        .wrapping_sub(secret.cookie_hash(local, remote, 0, 0))
        .wrapping_sub(peer_isn.0);
    let diff = count.wrapping_sub(rest >> COOKIE_BITS) & (u32::MAX >> COOKIE_BITS);
    if diff >= MAX_AGE {
        return None;
    }
    let h1 = secret.cookie_hash(local, remote, count.wrapping_sub(diff), 1);
    let idx = (rest.wrapping_sub(h1) & COOKIE_MASK) as usize;
    (idx < MSS_TABLE.len()).then_some(idx)
}

/// The SYN's options a cookie carries in the timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TsOptions {
    /// The peer's window scale, if it offered one.
    pub wscale: Option<u8>,
    /// The peer offered SACK.
    pub sack: bool,
}

/// The TSval of a cookie SYN-ACK at timestamp clock `ts_now`: the clock with
/// its 6 low bits replaced by `opts`, never ahead of the clock (Linux's
/// `cookie_init_timestamp`).
pub(crate) fn encode_ts(ts_now: u32, opts: TsOptions) -> u32 {
    let mut bits = opts.wscale.map_or(TS_NO_WSCALE, |w| u32::from(w.min(14)));
    if opts.sack {
        bits |= TS_SACK;
    }
    let ts = (ts_now & !TS_MASK) | bits;
    if (ts.wrapping_sub(ts_now) as i32) > 0 {
        ts.wrapping_sub(TS_MASK + 1)
    } else {
        ts
    }
}

/// The options carried back in a TSecr, or `None` if they cannot be ours.
pub(crate) fn decode_ts(tsecr: u32) -> Option<TsOptions> {
    let w = tsecr & 0xf;
    let wscale = match w {
        TS_NO_WSCALE => None,
        0..=14 => Some(w as u8),
        _ => return None,
    };
    Some(TsOptions {
        wscale,
        sack: tsecr & TS_SACK != 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;
    use std::time::Duration;

    fn addrs() -> (SocketAddrV4, SocketAddrV4) {
        (
            SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 1), 80),
            SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 2), 40000),
        )
    }

    #[test]
    fn a_cookie_gives_back_its_mss_for_one_to_two_minutes() {
        let s = Secret::new([7, 9]);
        let (l, r) = addrs();
        let t = Instant::from_millis(3_600_000 + 59_000);
        for idx in 0..4 {
            let c = make(&s, t, l, r, Seq(12345), idx);
            assert_eq!(check(&s, t, l, r, Seq(12345), c), Some(idx));
            // The next minute still; two minutes on, no longer.
            assert_eq!(
                check(&s, t + Duration::from_secs(2), l, r, Seq(12345), c),
                Some(idx)
            );
            assert_eq!(
                check(&s, t + Duration::from_secs(61), l, r, Seq(12345), c),
                None
            );
        }
    }

    #[test]
    fn a_forged_or_misdirected_cookie_is_refused() {
        let s = Secret::new([7, 9]);
        let (l, r) = addrs();
        let t = Instant::from_millis(1_000);
        let c = make(&s, t, l, r, Seq(1), 3);
        let other = SocketAddrV4::new(*r.ip(), r.port() + 1);
        assert_eq!(check(&s, t, l, other, Seq(1), c), None);
        assert_eq!(check(&s, t, l, r, Seq(1001), c), None);
        assert_eq!(check(&Secret::new([1, 1]), t, l, r, Seq(1), c), None);
        // Of a million guesses, hardly any pass (2^-22 each).
        let passed = (0..1_000_000u32)
            .filter(|&g| check(&s, t, l, r, Seq(1), Seq(g.wrapping_mul(2_654_435_761))).is_some())
            .count();
        assert!(passed <= 5, "{passed} guesses passed");
    }

    #[test]
    fn the_mss_table_rounds_down() {
        assert_eq!(mss_index(1460), 3);
        assert_eq!(mss_index(1400), 1);
        assert_eq!(mss_index(9000), 3);
        assert_eq!(mss_index(100), 0);
    }

    #[test]
    fn options_survive_the_timestamp_and_it_never_runs_ahead() {
        for opts in [
            TsOptions {
                wscale: Some(7),
                sack: true,
            },
            TsOptions {
                wscale: None,
                sack: false,
            },
            TsOptions {
                wscale: Some(0),
                sack: true,
            },
        ] {
            for now in [0u32, 5, 1_000_003, u32::MAX] {
                let ts = encode_ts(now, opts);
                assert!((now.wrapping_sub(ts) as i32) >= 0 && now.wrapping_sub(ts) < 64);
                assert_eq!(decode_ts(ts), Some(opts));
            }
        }
        assert_eq!(
            decode_ts(0x0e | 0x40),
            Some(TsOptions {
                wscale: Some(14),
                sack: false
            })
        );
    }
}
