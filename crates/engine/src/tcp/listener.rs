//! A listening socket: the SYN queue count and the accept queue (RFC 9293 §3.10.7.2).
//!
//! Connections in SYN-RECEIVED count against the SYN queue; once the handshake
//! completes they move to the accept queue until the application accepts them.
//! Both are bounded by the backlog; when either is full, SYNs are dropped
//! without an answer, as Linux does, so the client retries later.

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
}

impl Listener {
    pub(crate) fn new(local: SocketAddrV4, backlog: usize) -> Listener {
        Listener {
            local,
            backlog: backlog.max(1),
            syn_queue: 0,
            accept_queue: VecDeque::new(),
            options: SocketOptions::default(),
        }
    }

    /// Whether a new SYN may be taken.
    pub(crate) fn has_room(&self) -> bool {
        self.syn_queue < self.backlog && self.accept_queue.len() < self.backlog
    }
}
