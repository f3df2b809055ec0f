//! TCP output: building a segment as an IPv4 datagram.

use std::net::SocketAddrV4;

use smoltcp::phy::{Checksum, ChecksumCapabilities};
use smoltcp::wire::{
    IpAddress, IpProtocol, Ipv4Packet, Ipv4Repr, TcpControl, TcpPacket, TcpRepr, TcpSeqNumber,
    TcpTimestampRepr,
};

use crate::Engine;
use crate::Seq;
use crate::checksum;
use crate::tcp::connection::{Ctl, Outbound, Tcb};

impl Engine {
    /// Builds segment `out` of connection `tcb` in `buf` (see [`emit_with`](Engine::emit_with)).
    pub(crate) fn emit_for(
        checksums: &ChecksumCapabilities,
        tcb: &Tcb,
        out: &Outbound,
        buf: &mut [u8],
    ) -> usize {
        Self::emit_with(
            checksums,
            tcb.ttl,
            tcb.local,
            tcb.remote,
            out,
            Some(tcb),
            buf,
        )
    }

    /// Builds the IPv4 datagram of `out` in `buf`: payload first, straight from the
    /// send buffer, then the headers, whose checksum covers it.
    pub(crate) fn emit_with(
        checksums: &ChecksumCapabilities,
        ttl: u8,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        out: &Outbound,
        tcb: Option<&Tcb>,
        buf: &mut [u8],
    ) -> usize {
        // Most segments carry no option but timestamps: their header is
        // written here, field by field, as smoltcp's `TcpRepr::emit` would
        // lay it out (the test below holds the two to the same bytes) at a
        // fifth of its instructions. The rest go through `TcpRepr`.
        let plain = is_plain(out);
        let mut repr = None;
        let mut four: Option<[(Seq, Seq); 4]> = None;
        let header_len = if plain {
            plain_header_len(out)
        } else {
            let (r, f) = options_repr(local, remote, out, buf.len());
            let len = r.header_len() + if f.is_some() { FOUR_BLOCKS_LEN } else { 0 };
            repr = Some(r);
            four = f;
            len
        };
        let ip_len = 20;
        let tcp_len = header_len + out.payload_len;
        let total = ip_len + tcp_len;
        let buf = &mut buf[..total];
        if let Some(tcb) = tcb
            && out.payload_len > 0
        {
            tcb.copy_payload(out, &mut buf[ip_len + header_len..]);
        }
        let ip_repr = Ipv4Repr {
            src_addr: *local.ip(),
            dst_addr: *remote.ip(),
            next_header: IpProtocol::Tcp,
            payload_len: tcp_len,
            hop_limit: ttl,
        };
        // Both checksums are filled in once, below, after every field is set.
        let mut no_sums = checksums.clone();
        no_sums.ipv4 = Checksum::None;
        no_sums.tcp = Checksum::None;
        ip_repr.emit(&mut Ipv4Packet::new_unchecked(&mut buf[..]), &no_sums);
        // RFC 1122 §4.2.4.2: the connection's TOS goes to IP unchanged.
        if let Some(tcb) = tcb
            && tcb.tos != 0
        {
            let mut ip = Ipv4Packet::new_unchecked(&mut buf[..]);
            ip.set_dscp(tcb.tos >> 2);
            ip.set_ecn(tcb.tos & 0x03);
        }
        if checksums.ipv4.tx() {
            checksum::ipv4_fill(&mut buf[..ip_len]);
        }
        match repr {
            None => emit_plain_header(local, remote, out, &mut buf[ip_len..ip_len + header_len]),
            Some(repr) => repr.emit(
                &mut TcpPacket::new_unchecked(&mut buf[ip_len..]),
                &IpAddress::Ipv4(*local.ip()),
                &IpAddress::Ipv4(*remote.ip()),
                &no_sums,
            ),
        }
        if let Some(blocks) = four {
            let tcp = &mut buf[ip_len..];
            let mut opts = [0u8; FOUR_BLOCKS_LEN];
            opts[..4].copy_from_slice(&[1, 1, 5, 34]);
            for (i, (l, r)) in blocks.iter().enumerate() {
                opts[4 + 8 * i..8 + 8 * i].copy_from_slice(&l.0.to_be_bytes());
                opts[8 + 8 * i..12 + 8 * i].copy_from_slice(&r.0.to_be_bytes());
            }
            tcp[20..20 + FOUR_BLOCKS_LEN].copy_from_slice(&opts);
            let mut tcp = TcpPacket::new_unchecked(tcp);
            tcp.set_header_len(header_len as u8);
        }
        if let Some(pointer) = out.urgent {
            // smoltcp's representation has no urgent pointer: set it on the packet.
            let mut tcp = TcpPacket::new_unchecked(&mut buf[ip_len..]);
            tcp.set_urg(true);
            tcp.set_urgent_at(pointer);
        }
        if checksums.tcp.tx() {
            checksum::tcp_fill(*local.ip(), *remote.ip(), &mut buf[ip_len..]);
        }
        total
    }
}

/// RFC 2018 §3: four SACK blocks take all 40 bytes of option space (two
/// NOPs and a 34-byte SACK option, as Linux sends them).
const FOUR_BLOCKS_LEN: usize = 2 + 2 + 4 * 8;

/// A segment whose only option is timestamps (or none): no SYN options, no
/// SACK blocks.
fn is_plain(out: &Outbound) -> bool {
    out.ctl != Ctl::Syn
        && out.mss.is_none()
        && out.window_scale.is_none()
        && !out.sack_permitted
        && out.sack_blocks[0].is_none()
}

/// The header length of a plain segment: 20 bytes, and 12 for timestamps
/// (10 of the option, padded with two end-of-list bytes).
fn plain_header_len(out: &Outbound) -> usize {
    20 + if out.timestamp.is_some() { 12 } else { 0 }
}

/// Writes the TCP header of a plain segment into `tcp` (exactly its
/// header), checksum zero (RFC 9293 §3.1; RFC 7323 §3.2 for the option).
fn emit_plain_header(local: SocketAddrV4, remote: SocketAddrV4, out: &Outbound, tcp: &mut [u8]) {
    tcp[0..2].copy_from_slice(&local.port().to_be_bytes());
    tcp[2..4].copy_from_slice(&remote.port().to_be_bytes());
    tcp[4..8].copy_from_slice(&out.seq.0.to_be_bytes());
    tcp[8..12].copy_from_slice(&out.ack.map_or(0, |a| a.0).to_be_bytes());
    tcp[12] = ((tcp.len() / 4) as u8) << 4;
    let mut flags = match out.ctl {
        Ctl::Fin => 0x01,
        Ctl::Rst => 0x04,
        Ctl::None if out.psh => 0x08,
        Ctl::None | Ctl::Syn => 0,
    };
    if out.ack.is_some() {
        flags |= 0x10;
    }
    tcp[13] = flags;
    tcp[14..16].copy_from_slice(&out.window.to_be_bytes());
    tcp[16..20].fill(0);
    if let Some((tsval, tsecr)) = out.timestamp {
        tcp[20] = 8;
        tcp[21] = 10;
        tcp[22..26].copy_from_slice(&tsval.to_be_bytes());
        tcp[26..30].copy_from_slice(&tsecr.to_be_bytes());
        tcp[30..32].fill(0);
    }
}

/// The `TcpRepr` of a segment with SYN options or SACK blocks, and the four
/// SACK blocks to write by hand when they fit (smoltcp emits at most three).
/// `room` is the length of the buffer (one MTU).
fn options_repr(
    local: SocketAddrV4,
    remote: SocketAddrV4,
    out: &Outbound,
    room: usize,
) -> (TcpRepr<'static>, Option<[(Seq, Seq); 4]>) {
    let mut repr = TcpRepr {
        src_port: local.port(),
        dst_port: remote.port(),
        control: match out.ctl {
            Ctl::Syn => TcpControl::Syn,
            Ctl::Fin => TcpControl::Fin,
            Ctl::Rst => TcpControl::Rst,
            Ctl::None if out.psh => TcpControl::Psh,
            Ctl::None => TcpControl::None,
        },
        seq_number: TcpSeqNumber::from(out.seq),
        ack_number: out.ack.map(TcpSeqNumber::from),
        window_len: out.window,
        window_scale: out.window_scale,
        max_seg_size: out.mss,
        sack_permitted: out.sack_permitted,
        sack_ranges: [None; 3],
        timestamp: out
            .timestamp
            .map(|(tsval, tsecr)| TcpTimestampRepr::new(tsval, tsecr)),
        payload: &[],
    };
    // RFC 2018 §3: as many SACK blocks as the option space left allows
    // and the datagram (one MTU) still holds: three beside timestamps,
    // four without.
    let mut four = None;
    if out.sack_blocks[0].is_some() && !out.sack_permitted {
        let used = repr.header_len() - 20;
        let room = room.saturating_sub(20 + repr.header_len() + out.payload_len);
        let fit = (40usize.saturating_sub(used).min(room).saturating_sub(2) / 8).min(4);
        if let [Some(a), Some(b), Some(c), Some(d)] = out.sack_blocks
            && fit == 4
            && used == 0
            && room >= FOUR_BLOCKS_LEN
        {
            four = Some([a, b, c, d]);
        } else {
            for (slot, block) in repr.sack_ranges.iter_mut().zip(out.sack_blocks).take(fit) {
                *slot = block.map(|(l, r)| (l.0, r.0));
            }
        }
    }
    (repr, four)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outbound(ctl: Ctl, psh: bool, ack: bool, ts: bool, urgent: bool) -> Outbound {
        Outbound {
            seq: Seq(0xfedc_ba98),
            ack: ack.then_some(Seq(0x0123_4567)),
            ctl,
            window: 0xbeef,
            mss: None,
            window_scale: None,
            payload_offset: 0,
            payload_len: 0,
            psh,
            timestamp: ts.then_some((0x1111_2222, 0x3333_4444)),
            sack_permitted: false,
            sack_blocks: [None; crate::tcp::sack::MAX_BLOCKS],
            urgent: urgent.then_some(7),
        }
    }

    /// The hand-written header of a plain segment is byte for byte what
    /// smoltcp's `TcpRepr::emit` writes, and a buffer's earlier bytes
    /// never show through.
    #[test]
    fn plain_headers_are_what_smoltcp_would_write() {
        let local = SocketAddrV4::new([192, 0, 2, 1].into(), 40000);
        let remote = SocketAddrV4::new([192, 0, 2, 2].into(), 80);
        let caps = ChecksumCapabilities::default();
        let mut cases = 0;
        for ctl in [Ctl::None, Ctl::Fin, Ctl::Rst] {
            for bits in 0..16u8 {
                let [psh, ack, ts, urgent] = [1, 2, 4, 8].map(|b| bits & b != 0);
                let out = outbound(ctl, psh, ack, ts, urgent);
                assert!(is_plain(&out));
                let mut fresh = vec![0u8; 1500];
                let mut stale = vec![0xffu8; 1500];
                let n = Engine::emit_with(&caps, 64, local, remote, &out, None, &mut fresh);
                assert_eq!(
                    Engine::emit_with(&caps, 64, local, remote, &out, None, &mut stale),
                    n
                );
                // smoltcp's way, into a zeroed buffer, the IP header as ours.
                let (repr, four) = options_repr(local, remote, &out, 1500);
                assert!(four.is_none());
                assert_eq!(repr.header_len(), plain_header_len(&out));
                let mut theirs = fresh[..n].to_vec();
                theirs[20..].fill(0);
                let mut tcp = TcpPacket::new_unchecked(&mut theirs[20..]);
                repr.emit(
                    &mut tcp,
                    &IpAddress::Ipv4(*local.ip()),
                    &IpAddress::Ipv4(*remote.ip()),
                    &caps,
                );
                if let Some(p) = out.urgent {
                    tcp.set_urg(true);
                    tcp.set_urgent_at(p);
                    tcp.fill_checksum(
                        &IpAddress::Ipv4(*local.ip()),
                        &IpAddress::Ipv4(*remote.ip()),
                    );
                }
                assert_eq!(&fresh[..n], &theirs[..], "{out:?}");
                assert_eq!(&stale[..n], &theirs[..], "{out:?}");
                cases += 1;
            }
        }
        assert_eq!(cases, 48);
    }
}
