//! A listening socket: the SYN queue count and the accept queue (RFC 9293 §3.10.7.2).
//!
//! Connections in SYN-RECEIVED count against the SYN queue; once the handshake
//! completes they move to the accept queue until the application accepts them.
//! Both are bounded by the backlog. When the SYN queue is full, SYNs are
//! answered with cookies (tcp/syncookie.rs) unless [`Config::syn_cookies`] is
//! off, and then dropped; when the accept queue is full, SYNs are dropped
//! without an answer, as Linux does, so the client retries later.
//!
//! [`Config::syn_cookies`]: crate::Config::syn_cookies

use std::collections::VecDeque;
use std::net::SocketAddrV4;

use crate::{SocketHandle, SocketOptions};

#[derive(Debug)]
pub(crate) struct Listener {
    pub(crate) local: SocketAddrV4,
    pub(crate) backlog: usize,
    /// Connections of ours still in SYN-RECEIVED.
    pub(crate) syn_queue: usize,
    /// Established connections waiting for `accept`.
    pub(crate) accept_queue: VecDeque<SocketHandle>,
    /// Options the accepted connections inherit.
    pub(crate) options: SocketOptions,
    /// Embryos in the SYN queue whose SYN-ACK has not been retransmitted yet
    /// (Linux's "young" requests).
    pub(crate) young: usize,
    /// When the listener last answered a SYN with a cookie: ACKs are checked
    /// for cookies for two minutes after (Linux's `tcp_synq_no_recent_overflow`).
    pub(crate) cookie_sent: Option<crate::Instant>,
}

impl Listener {
    pub(crate) fn new(local: SocketAddrV4, backlog: usize) -> Listener {
        Listener {
            local,
            backlog: backlog.max(1),
            syn_queue: 0,
            accept_queue: VecDeque::new(),
            options: SocketOptions::default(),
            cookie_sent: None,
            young: 0,
        }
    }
}

impl Listener {
    /// SYN-ACK retransmissions left to an embryo that is about to retransmit
    /// for the first time or again, out of `retries` (Linux's
    /// `reqsk_timer_handler`): once the SYN queue is more than half full
    /// (of at least 8), half of it is kept for young embryos and old ones,
    /// which never got an ACK, get fewer tries, down to 2.
    pub(crate) fn synack_retries(&self, retries: u32) -> u32 {
        let mut max = retries;
        let qlen = self.syn_queue;
        if qlen * 2 > self.backlog.max(8) {
            let mut young = self.young * 2;
            while max > 2 {
                if qlen < young {
                    break;
                }
                max -= 1;
                young <<= 1;
            }
        }
        max
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn a_crowded_syn_queue_gives_old_embryos_fewer_synack_retries() {
        let mut l = Listener::new(SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 1), 80), 16);
        l.syn_queue = 8;
        l.young = 0;
        // Half full is not crowded.
        assert_eq!(l.synack_retries(5), 5);
        l.syn_queue = 9;
        // All old: down to 2.
        assert_eq!(l.synack_retries(5), 2);
        // Mostly young: the old keep their tries.
        l.young = 5;
        assert_eq!(l.synack_retries(5), 5);
        l.young = 3;
        assert_eq!(l.synack_retries(5), 4);
    }
}
