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
        // and the datagram (`buf` is one MTU) still holds: three beside
        // timestamps, four without (40 bytes of options: two NOPs and a
        // 34-byte SACK option, as Linux sends them). smoltcp emits at most
        // three; a fourth means writing the options here.
        const FOUR_BLOCKS_LEN: usize = 2 + 2 + 4 * 8;
        let mut four: Option<[(Seq, Seq); 4]> = None;
        if out.sack_blocks[0].is_some() && !out.sack_permitted {
            let used = repr.header_len() - 20;
            let room = buf
                .len()
                .saturating_sub(20 + repr.header_len() + out.payload_len);
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
        let header_len = repr.header_len() + if four.is_some() { FOUR_BLOCKS_LEN } else { 0 };
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
        repr.emit(
            &mut TcpPacket::new_unchecked(&mut buf[ip_len..]),
            &IpAddress::Ipv4(*local.ip()),
            &IpAddress::Ipv4(*remote.ip()),
            &no_sums,
        );
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
