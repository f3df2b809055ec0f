//! Every socket of an engine, as `ss -tuai` lists a host's: protocol, state,
//! addresses, queues and, for TCP connections, their [`TcpInfo`].

use core::fmt;
use std::net::SocketAddrV4;

use crate::tcp::connection::{State, TcpInfo};
use crate::{Engine, Socket, SocketHandle};

/// A socket's transport protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// TCP (a listener or a connection).
    Tcp,
    /// UDP.
    Udp,
}

/// A socket's state, with `ss`'s names when displayed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SocketState {
    /// A TCP listener (`LISTEN`).
    Listen,
    /// A TCP connection in this state (RFC 9293 §3.3.2).
    Tcp(State),
    /// A UDP socket with no peer (`UNCONN`).
    Unconnected,
    /// A UDP socket connected to a peer (`ESTAB`, as `ss` shows it).
    Connected,
}

impl fmt::Display for SocketState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SocketState::Listen => "LISTEN",
            SocketState::Unconnected => "UNCONN",
            SocketState::Connected => "ESTAB",
            SocketState::Tcp(s) => match s {
                State::SynSent => "SYN-SENT",
                State::SynReceived => "SYN-RECV",
                State::Established => "ESTAB",
                State::FinWait1 => "FIN-WAIT-1",
                State::FinWait2 => "FIN-WAIT-2",
                State::CloseWait => "CLOSE-WAIT",
                State::Closing => "CLOSING",
                State::LastAck => "LAST-ACK",
                State::TimeWait => "TIME-WAIT",
                State::Closed => "CLOSE",
            },
        })
    }
}

/// One socket of an engine, as `ss` shows it.
#[derive(Debug, Clone)]
pub struct SocketSummary {
    /// The socket's handle.
    pub handle: SocketHandle,
    /// TCP or UDP.
    pub protocol: Protocol,
    /// Its state.
    pub state: SocketState,
    /// The local address (its IP may be the wildcard for listeners and
    /// unconnected UDP sockets).
    pub local: SocketAddrV4,
    /// The peer, for a connection or a connected UDP socket.
    pub remote: Option<SocketAddrV4>,
    /// `ss`'s Recv-Q: a connection's bytes not yet read by the application;
    /// a listener's connections waiting for `accept`; a UDP socket's queued
    /// datagrams in bytes, each charged its length + 64 as against its
    /// receive buffer.
    pub recv_q: usize,
    /// `ss`'s Send-Q: a connection's bytes in its send buffer (sent and not
    /// yet acknowledged, or not yet sent); a listener's backlog; a UDP
    /// socket's bytes waiting to go out.
    pub send_q: usize,
    /// A connection whose application handle is gone, which the engine still
    /// finishes (delivering data, FIN, TIME-WAIT).
    pub orphan: bool,
    /// A TCP connection's statistics (`ss -i`).
    pub info: Option<TcpInfo>,
}

impl Engine {
    /// Every socket, in handle order: listeners, connections (TIME-WAIT and
    /// orphans included) and UDP sockets, with their queues and, for
    /// connections, [`TcpInfo`]. A SYN answered with a cookie has no socket
    /// and is not listed (as under Linux).
    pub fn sockets(&self) -> Vec<SocketSummary> {
        let mut out = Vec::new();
        for (index, slot) in self.slots.iter().enumerate() {
            let Some(socket) = slot.socket.as_ref() else {
                continue;
            };
            let handle = SocketHandle {
                index: index as u32,
                generation: slot.generation,
            };
            out.push(match socket {
                Socket::Listener(l) => SocketSummary {
                    handle,
                    protocol: Protocol::Tcp,
                    state: SocketState::Listen,
                    local: l.local,
                    remote: None,
                    recv_q: l.accept_queue.len(),
                    send_q: l.backlog,
                    orphan: false,
                    info: None,
                },
                Socket::Conn(tcb) => SocketSummary {
                    handle,
                    protocol: Protocol::Tcp,
                    state: SocketState::Tcp(tcb.state),
                    local: tcb.local,
                    remote: Some(tcb.remote),
                    recv_q: tcb.recv_queue(),
                    send_q: tcb.send_queue(),
                    orphan: slot.orphan,
                    info: Some(tcb.tcp_info()),
                },
                Socket::Udp(u) => {
                    let (rx, tx) = u.queued();
                    SocketSummary {
                        handle,
                        protocol: Protocol::Udp,
                        state: if u.remote.is_some() {
                            SocketState::Connected
                        } else {
                            SocketState::Unconnected
                        },
                        local: u.local,
                        remote: u.remote,
                        recv_q: rx,
                        send_q: tx,
                        orphan: false,
                        info: None,
                    }
                }
            });
        }
        out
    }
}
