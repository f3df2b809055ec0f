//! Reading a TCP header (RFC 9293 §3.1) straight from the bytes into the
//! [`Segment`] the connection sees.
//!
//! smoltcp's `TcpRepr::parse` built a general representation (and walked
//! the options twice) for every segment, about 4 % of a bulk transfer's
//! instructions; it also refuses SYN+FIN and a RST beside SYN or FIN, which
//! RFC 9293 still processes. This reads the fields the engine uses once. It
//! takes what smoltcp takes and refuses what it refuses (the property test
//! below holds it to that), but for those control-bit combinations: a RST
//! with anything else is a RST (the RST check comes first in every state,
//! §3.10.7), and SYN+FIN is a SYN with [`Segment::syn_fin`] set.

use super::connection::{Ctl, Segment};
use crate::Seq;

const FIN: u8 = 0x01;
const SYN: u8 = 0x02;
const RST: u8 = 0x04;
const ACK: u8 = 0x10;
const URG: u8 = 0x20;

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Whether `tcp` holds a whole header: at least 20 bytes, a data offset of
/// at least five words and within the segment.
pub(crate) fn header_fits(tcp: &[u8]) -> bool {
    tcp.len() >= 20 && {
        let len = usize::from(tcp[12] >> 4) * 4;
        len >= 20 && len <= tcp.len()
    }
}

/// The ports and the segment of a TCP header that [`header_fits`]; `None`
/// when it is malformed: a port of zero, or an option whose length is
/// wrong or runs past the header (an MSS, window scale or SACK-permitted
/// option of another length, a SACK option not 2 + 8·n bytes with n ≥ 1).
pub(crate) fn parse(tcp: &[u8]) -> Option<(u16, u16, Segment<'_>)> {
    let header_len = usize::from(tcp[12] >> 4) * 4;
    let (src_port, dst_port) = (be16(tcp, 0), be16(tcp, 2));
    if src_port == 0 || dst_port == 0 {
        return None;
    }
    let flags = tcp[13];
    let (ctl, syn_fin) = if flags & RST != 0 {
        (Ctl::Rst, false)
    } else if flags & SYN != 0 {
        (Ctl::Syn, flags & FIN != 0)
    } else if flags & FIN != 0 {
        (Ctl::Fin, false)
    } else {
        (Ctl::None, false)
    };
    let mut seg = Segment {
        seq: Seq(be32(tcp, 4)),
        ack: (flags & ACK != 0).then(|| Seq(be32(tcp, 8))),
        ctl,
        window: be16(tcp, 14),
        mss: None,
        window_scale: None,
        payload: &tcp[header_len..],
        timestamp: None,
        sack_permitted: false,
        sack_blocks: [None; 3],
        urgent: (flags & URG != 0).then(|| be16(tcp, 18)),
        syn_fin,
    };
    let mut opts = &tcp[20..header_len];
    while let Some(&kind) = opts.first() {
        match kind {
            // End of option list.
            0 => break,
            // No-operation.
            1 => {
                opts = &opts[1..];
                continue;
            }
            _ => {}
        }
        let len = usize::from(*opts.get(1)?);
        let data = opts.get(2..len)?;
        match (kind, len) {
            (2, 4) => seg.mss = Some(be16(data, 0)),
            (3, 3) => seg.window_scale = Some(data[0].min(14)), // RFC 7323 §2.3
            (4, 2) => seg.sack_permitted = true,
            (2..=4, _) => return None,
            (5, n) => {
                if n < 10 || (n - 2) % 8 != 0 {
                    return None;
                }
                // At most three blocks are kept (a fourth is rare: it fits
                // only without timestamps); the last SACK option counts.
                let mut blocks = [None; 3];
                for (i, b) in data.chunks_exact(8).take(3).enumerate() {
                    blocks[i] = Some((Seq(be32(b, 0)), Seq(be32(b, 4))));
                }
                seg.sack_blocks = blocks;
            }
            (8, 10) => seg.timestamp = Some((be32(data, 0), be32(data, 4))),
            // Unknown options (and timestamps of another length) are skipped.
            _ => {}
        }
        opts = &opts[len..];
    }
    Some((src_port, dst_port, seg))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use smoltcp::phy::ChecksumCapabilities;
    use smoltcp::wire::{IpAddress, TcpControl, TcpPacket, TcpRepr};

    use super::*;

    const A: IpAddress = IpAddress::v4(192, 0, 2, 1);
    const B: IpAddress = IpAddress::v4(192, 0, 2, 2);

    /// Options built from pieces the generator picks: well-formed ones of
    /// every kind, and broken lengths.
    fn option_bytes() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            Just(vec![0]),
            Just(vec![1]),
            any::<u16>().prop_map(|m| vec![2, 4, (m >> 8) as u8, m as u8]),
            any::<u8>().prop_map(|s| vec![3, 3, s]),
            Just(vec![4, 2]),
            (1usize..=4, any::<[u8; 32]>()).prop_map(|(n, b)| {
                let mut v = vec![5, (2 + 8 * n) as u8];
                v.extend_from_slice(&b[..8 * n]);
                v
            }),
            any::<[u8; 8]>().prop_map(|b| {
                let mut v = vec![8, 10];
                v.extend_from_slice(&b);
                v
            }),
            (any::<u8>(), any::<u8>(), any::<[u8; 6]>()).prop_map(|(k, l, b)| {
                let mut v = vec![k, l];
                v.extend_from_slice(&b);
                v
            }),
        ]
    }

    fn segment() -> impl Strategy<Value = Vec<u8>> {
        (
            any::<[u8; 20]>(),
            proptest::collection::vec(option_bytes(), 0..6),
            proptest::collection::vec(any::<u8>(), 0..40),
            any::<bool>(),
        )
            .prop_map(|(mut header, opts, payload, zero_port)| {
                let mut opts: Vec<u8> = opts.concat();
                opts.truncate(40);
                while !opts.len().is_multiple_of(4) {
                    opts.push(1);
                }
                header[12] = (((20 + opts.len()) / 4) as u8) << 4 | (header[12] & 0x0f);
                if zero_port {
                    header[2] = 0;
                    header[3] = 0;
                }
                let mut seg = header.to_vec();
                seg.extend_from_slice(&opts);
                seg.extend_from_slice(&payload);
                seg
            })
    }

    proptest! {
        /// What smoltcp's `TcpRepr::parse` takes, this takes with the same
        /// fields; what it refuses, this refuses, but for the control-bit
        /// combinations it has no representation for.
        #[test]
        fn reads_what_smoltcp_reads(bytes in segment()) {
            prop_assume!(header_fits(&bytes));
            let packet = TcpPacket::new_checked(&bytes[..]).unwrap();
            let theirs = TcpRepr::parse(&packet, &A, &B, &ChecksumCapabilities::ignored());
            let ours = parse(&bytes);
            let flags = bytes[13];
            let combined = flags & (SYN | FIN | RST) != 0
                && (flags & (SYN | FIN | RST)).count_ones() > 1;
            match theirs {
                Ok(r) => {
                    let (src, dst, s) = ours.expect("smoltcp took it");
                    prop_assert_eq!((src, dst), (r.src_port, r.dst_port));
                    prop_assert_eq!(s.seq, Seq::from(r.seq_number));
                    prop_assert_eq!(s.ack, r.ack_number.map(Seq::from));
                    let ctl = match r.control {
                        TcpControl::Syn => Ctl::Syn,
                        TcpControl::Fin => Ctl::Fin,
                        TcpControl::Rst => Ctl::Rst,
                        TcpControl::None | TcpControl::Psh => Ctl::None,
                    };
                    prop_assert_eq!(s.ctl, ctl);
                    prop_assert!(!s.syn_fin);
                    prop_assert_eq!(s.window, r.window_len);
                    prop_assert_eq!(s.mss, r.max_seg_size);
                    prop_assert_eq!(s.window_scale, r.window_scale);
                    prop_assert_eq!(s.sack_permitted, r.sack_permitted);
                    prop_assert_eq!(
                        s.sack_blocks,
                        r.sack_ranges.map(|b| b.map(|(l, r)| (Seq(l), Seq(r))))
                    );
                    prop_assert_eq!(s.timestamp, r.timestamp.map(|t| (t.tsval, t.tsecr)));
                    prop_assert_eq!(s.payload, r.payload);
                }
                Err(_) if combined => {
                    // The same, with one control: what the combination means.
                    if let Some((_, _, s)) = ours {
                        let want = if flags & RST != 0 { Ctl::Rst } else { Ctl::Syn };
                        prop_assert_eq!(s.ctl, want);
                        prop_assert_eq!(s.syn_fin, flags & RST == 0);
                    }
                }
                Err(_) => prop_assert!(ours.is_none(), "smoltcp refused it: {:02x?}", bytes),
            }
        }
    }
}
