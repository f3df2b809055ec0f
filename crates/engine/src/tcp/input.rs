//! TCP input (RFC 9293 §3.10.7): demultiplexing a segment to its
//! connection or listener, the listener's SYN handling and SYN cookies, and
//! the RST answer to a segment for no socket.

use std::net::{Ipv4Addr, SocketAddrV4};

use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::Ipv4Repr;
use tracing::trace;

use crate::checksum;
use crate::tcp::connection::{Ctl, Outbound, Segment, Tcb};
use crate::tcp::connection::{offered_mss, syn_window, window_scale_for};
use crate::tcp::{syncookie, wire};
use crate::{
    Config, Engine, Instant, MAX_COOKIE_REPLIES, MAX_OWED_ACKS, MAX_REPLIES, OWED_ACK_BUF, Reply,
    Seq, Socket, SocketHandle, SocketOptions, State, SynCookies, tcp,
};

impl Engine {
    /// A TCP segment in an IPv4 datagram for us (RFC 9293 §3.10.7): checked,
    /// parsed and handed to its connection or listener.
    pub(crate) fn tcp_input(
        &mut self,
        now: Instant,
        ip_repr: &Ipv4Repr,
        payload: &[u8],
        checksums: &ChecksumCapabilities,
    ) {
        if !wire::header_fits(payload) {
            self.stats.rx_malformed += 1;
            return;
        }
        if checksums.tcp.rx() && !checksum::tcp_ok(ip_repr.src_addr, ip_repr.dst_addr, payload) {
            self.stats.rx_bad_checksum += 1;
            return;
        }
        let Some((src_port, dst_port, seg)) = wire::parse(payload) else {
            self.stats.rx_malformed += 1;
            return;
        };
        let local = SocketAddrV4::new(ip_repr.dst_addr, dst_port);
        let remote = SocketAddrV4::new(ip_repr.src_addr, src_port);
        self.handle_segment(now, local, remote, &seg);
    }

    /// A segment to `local` from `remote`: to its connection, else to a
    /// listener, else answered with a RST.
    pub(crate) fn handle_segment(
        &mut self,
        now: Instant,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        seg: &Segment<'_>,
    ) {
        if let Some(&h) = self.conns.get(&(local, remote)) {
            // Only a SYN at a TIME-WAIT connection needs to know of a
            // listener: the lookup is not paid for every segment.
            let is_syn = seg.ctl == Ctl::Syn && seg.ack.is_none() && !seg.syn_fin;
            let has_listener = is_syn && self.find_listener(local, remote).is_some();
            let coalesce_acks = self.config.coalesce_acks;
            let owed_room = self.owed_acks.len() < MAX_OWED_ACKS;
            let tcb = self
                .tcb_mut(h)
                .expect("connection table names a live connection");
            // RFC 9293 §3.10.7.4 / RFC 6191: a new SYN may reuse a TIME-WAIT pair when
            // its timestamp (or else its sequence number) is beyond the old connection's.
            let reuse = tcb.state == State::TimeWait && has_listener && tcb.syn_may_reuse(seg);
            // A connection that ended (reset, timed out) while the application
            // still holds its handle is no connection to the peer: its segments
            // go to the listener or get a RST (RFC 9293 §3.10.7.1), so a peer
            // that restarted can connect again (§3.5.1, Figure 10).
            let dead = tcb.state == State::Closed;
            if !reuse && !dead {
                let span = tcb.span().clone();
                let _enter = span.enter();
                trace!(seq = %seg.seq, ack = ?seg.ack, ctl = ?seg.ctl, len = seg.payload.len(), "segment in");
                // An ACK still owed for earlier segments goes out before this
                // one changes what it would say (RFC 1122 §4.2.3.2, RFC 5681
                // §4.2): no stretch ACKs however large the driver's batches,
                // unless the configuration asks for them.
                // With `coalesce_acks` only duplicate ACKs (data held past a
                // gap) still go out one per segment, as GRO never merges
                // out-of-order segments.
                let owed = (!seg.payload.is_empty() || seg.ctl == Ctl::Fin)
                    && tcb.owes_ack()
                    && (!coalesce_acks || tcb.rcv_has_gaps());
                if owed && !owed_room {
                    self.stats.owed_acks_merged += 1;
                } else if owed && let Some(out) = tcb.take_owed_ack(now) {
                    trace!(seq = %out.seq, ack = ?out.ack, "owed ACK out");
                    let mut buf = self.spare_acks.pop().unwrap_or_default();
                    buf.resize(OWED_ACK_BUF.min(self.route_mtu(*remote.ip())), 0);
                    let tcb = self.tcb(h).expect("live connection");
                    let len = Self::emit_for(self.caps_to(*remote.ip()), tcb, &out, &mut buf);
                    buf.truncate(len);
                    self.owed_acks.push_back(buf);
                }
                let tcb = self
                    .tcb_mut(h)
                    .expect("connection table names a live connection");
                tcb.on_segment(now, seg);
                self.after(now, h);
                return;
            }
            if reuse {
                self.free_slot(h);
            }
        }
        if let Some(lh) = self.find_listener(local, remote) {
            self.listen_segment(now, lh, local, remote, seg);
            return;
        }
        self.stats.rx_no_socket += 1;
        self.reply_rst(local, remote, seg);
    }

    /// The listener a segment to `local` from `remote` meets: one bound to
    /// `local`'s address before one on the wildcard address (as Linux scores
    /// them). SO_REUSEPORT: the listeners of an address share its
    /// connections by a hash of the peer's address, so one peer's segments
    /// always meet the same listener (as Linux's `reuseport_select_sock`).
    fn find_listener(&self, local: SocketAddrV4, remote: SocketAddrV4) -> Option<SocketHandle> {
        let group = self.listeners.get(&local.port())?;
        if let [(h, ip)] = group[..] {
            // The common case: one listener on the port.
            return (ip == *local.ip() || ip.is_unspecified()).then_some(h);
        }
        let exact = group.iter().filter(|&&(_, ip)| ip == *local.ip()).count();
        let (n, want) = if exact > 0 {
            (exact, *local.ip())
        } else {
            let wild = group.iter().filter(|(_, ip)| ip.is_unspecified()).count();
            (wild, Ipv4Addr::UNSPECIFIED)
        };
        if n == 0 {
            return None;
        }
        let pick = reuseport_pick(remote, n);
        group
            .iter()
            .filter(|&&(_, ip)| ip == want)
            .nth(pick)
            .map(|&(h, _)| h)
    }

    /// RFC 9293 §3.10.7.2: a segment for a listener.
    fn listen_segment(
        &mut self,
        now: Instant,
        lh: SocketHandle,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        seg: &Segment<'_>,
    ) {
        match seg.ctl {
            Ctl::Rst => return,
            _ if seg.ack.is_some() => {
                if seg.ctl != Ctl::Syn && self.cookie_ack(now, lh, local, remote, seg) {
                    return;
                }
                self.reply_rst(local, remote, seg);
                return;
            }
            // A FIN beside the SYN: dropped, as Linux (`tcp_rcv_state_process`)
            // and FreeBSD by default (`net.inet.tcp.drop_synfin`) do.
            Ctl::Syn if seg.syn_fin => {
                trace!(%local, %remote, "SYN+FIN to a listener dropped");
                return;
            }
            Ctl::Syn => {}
            _ => return,
        }
        let mode = self.config.syn_cookies;
        let Ok(listener) = self.listener_mut(lh) else {
            return;
        };
        // A full accept queue drops the SYN, cookie or not (as Linux): the
        // application is not keeping up, and the client will retry.
        if listener.accept_queue.len() >= listener.backlog {
            self.stats.syn_dropped += 1;
            return;
        }
        let syn_queue_full = listener.syn_queue >= listener.backlog;
        let cookie = match mode {
            SynCookies::Off => false,
            SynCookies::OnOverflow => syn_queue_full,
            SynCookies::Always => true,
        };
        if cookie {
            listener.cookie_sent = Some(now);
            self.send_cookie(now, lh, local, remote, seg);
            return;
        }
        if syn_queue_full {
            self.stats.syn_dropped += 1;
            return;
        }
        listener.syn_queue += 1;
        let iss = self.secret.isn(now, local, remote);
        let (cfg, opts) = self.accept_config(lh);
        let tcb = Tcb::accept_syn(&cfg, local, remote, iss, self.route_mtu(*remote.ip()), seg);
        let h = self.add_child(now, lh, &cfg, &opts, tcb);
        if let Some(slot) = self.slot_mut(h) {
            slot.young = true;
        }
        if let Ok(l) = self.listener_mut(lh) {
            l.young += 1;
        }
        self.after(now, h);
    }

    /// Answers a SYN with a cookie SYN-ACK and keeps nothing (RFC 4987 §3.6;
    /// tcp/syncookie.rs). The peer's window scale and SACK-permitted ride in
    /// the timestamp if it offered timestamps; otherwise the connection will
    /// have neither, and the SYN-ACK offers neither.
    fn send_cookie(
        &mut self,
        now: Instant,
        lh: SocketHandle,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        seg: &Segment<'_>,
    ) {
        if self.cookie_synacks.len() >= MAX_COOKIE_REPLIES {
            self.stats.syn_dropped += 1;
            return;
        }
        let (cfg, _) = self.accept_config(lh);
        let mtu = self.route_mtu(*remote.ip());
        let mss_idx = syncookie::mss_index(seg.mss.unwrap_or(536));
        let iss = syncookie::make(&self.secret, now, local, remote, seg.seq, mss_idx);
        let peer_ts = seg.timestamp.filter(|_| cfg.timestamps);
        let opts = syncookie::TsOptions {
            wscale: seg
                .window_scale
                .filter(|_| peer_ts.is_some() && cfg.window_scaling),
            sack: peer_ts.is_some() && cfg.sack && seg.sack_permitted,
        };
        let timestamp = peer_ts.map(|(tsval, _)| {
            let clock = self
                .secret
                .ts_offset(local, remote)
                .wrapping_add(now.as_millis() as u32);
            (syncookie::encode_ts(clock, opts), tsval)
        });
        let out = Outbound {
            seq: iss,
            ack: Some(seg.seq + 1u32),
            ctl: Ctl::Syn,
            window: syn_window(&cfg, mtu),
            mss: Some(offered_mss(&cfg, mtu)),
            window_scale: opts.wscale.map(|_| window_scale_for(&cfg)),
            payload_offset: 0,
            payload_len: 0,
            psh: false,
            timestamp,
            sack_permitted: opts.sack,
            sack_blocks: [None; tcp::sack::MAX_BLOCKS],
            urgent: None,
        };
        self.stats.syncookies_sent += 1;
        self.cookie_synacks.push_back((local, remote, out));
    }

    /// An ACK for no connection reached listener `lh`: if it brings back a
    /// valid cookie, the connection is made (and the ACK handed to it) and
    /// true returned. An invalid cookie at a listener that sent cookies in the
    /// last two minutes (or always does) is dropped and counted, also true;
    /// otherwise false, and the caller answers with a RST as usual.
    fn cookie_ack(
        &mut self,
        now: Instant,
        lh: SocketHandle,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        seg: &Segment<'_>,
    ) -> bool {
        let mode = self.config.syn_cookies;
        let Ok(listener) = self.listener_mut(lh) else {
            return false;
        };
        let recent = listener
            .cookie_sent
            .is_some_and(|t| now - t < std::time::Duration::from_secs(120));
        if mode == SynCookies::Off || (mode == SynCookies::OnOverflow && !recent) {
            return false;
        }
        let full = listener.accept_queue.len() >= listener.backlog;
        let Some(ack) = seg.ack else {
            return false;
        };
        let peer_isn = seg.seq - 1u32;
        let cookie = ack - 1u32;
        let checked = syncookie::check(&self.secret, now, local, remote, peer_isn, cookie);
        let (cfg, opts) = self.accept_config(lh);
        let ts_opts = match seg.timestamp {
            Some((_, tsecr)) if cfg.timestamps => syncookie::decode_ts(tsecr),
            _ => Some(syncookie::TsOptions {
                wscale: None,
                sack: false,
            }),
        };
        let (Some(mss_idx), Some(ts_opts)) = (checked, ts_opts) else {
            trace!(%local, %remote, "invalid SYN cookie");
            self.stats.syncookies_failed += 1;
            return true;
        };
        if full {
            self.stats.syn_dropped += 1;
            return true;
        }
        let syn = Segment {
            seq: peer_isn,
            ack: None,
            ctl: Ctl::Syn,
            window: seg.window,
            mss: Some(syncookie::MSS_TABLE[mss_idx]),
            window_scale: ts_opts.wscale,
            payload: &[],
            timestamp: seg.timestamp,
            sack_permitted: ts_opts.sack,
            sack_blocks: [None; 3],
            urgent: None,
            syn_fin: false,
        };
        let tcb = Tcb::from_cookie(
            &cfg,
            local,
            remote,
            cookie,
            self.route_mtu(*remote.ip()),
            &syn,
        );
        let h = self.add_child(now, lh, &cfg, &opts, tcb);
        if let Ok(tcb) = self.tcb_mut(h) {
            let span = tcb.span().clone();
            let _enter = span.enter();
            tcb.on_segment(now, seg);
        }
        if let Ok(l) = self.listener_mut(lh) {
            l.syn_queue += 1;
        }
        self.stats.syncookies_valid += 1;
        self.after(now, h);
        true
    }

    /// Files a new passive connection of listener `lh`: it inherits the
    /// listener's socket options (nodelay, reuse, keepalive, linger, TOS, as
    /// Linux copies them to the child), its clocks start, and it joins the table.
    fn add_child(
        &mut self,
        now: Instant,
        lh: SocketHandle,
        cfg: &Config,
        opts: &SocketOptions,
        mut tcb: Tcb,
    ) -> SocketHandle {
        tcb.nodelay = opts.nodelay;
        tcb.reuseaddr = opts.reuseaddr;
        tcb.reuseport = opts.reuseport;
        tcb.keepalive = opts.keepalive;
        tcb.linger = opts.linger;
        tcb.tos = opts.tos & !0x03;
        let (local, remote) = (tcb.local, tcb.remote);
        tcb.start(now, cfg, self.secret.ts_offset(local, remote));
        tcb.parent = Some(lh);
        let h = self.alloc_slot(Socket::Conn(Box::new(tcb)));
        self.conns.insert((local, remote), h);
        h
    }

    /// RFC 9293 §3.10.7.1: the answer to a segment for no connection.
    fn reply_rst(&mut self, local: SocketAddrV4, remote: SocketAddrV4, seg: &Segment<'_>) {
        if seg.ctl == Ctl::Rst {
            return;
        }
        if self.replies.len() >= MAX_REPLIES {
            self.stats.rst_dropped += 1;
            return;
        }
        let reply = match seg.ack {
            Some(ack) => Reply {
                local,
                remote,
                seq: ack,
                ack: None,
            },
            // RFC 9293 §3.10.7.1: <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>.
            None => Reply {
                local,
                remote,
                seq: Seq(0),
                ack: Some(seg.seq + seg.len()),
            },
        };
        self.replies.push_back(reply);
    }
}

/// Which of `n` SO_REUSEPORT listeners takes a connection from `remote`: a
/// fixed mix of the peer's address and port (splitmix64's finaliser).
fn reuseport_pick(remote: SocketAddrV4, n: usize) -> usize {
    let mut x = (u64::from(u32::from(*remote.ip())) << 16) | u64::from(remote.port());
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^= x >> 31;
    (x % n as u64) as usize
}
