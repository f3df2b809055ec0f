//! The engine's errors. The front end maps each to the `io::ErrorKind` a kernel
//! socket would give, in one place.

use std::fmt;

/// What went wrong with a socket call or a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Error {
    /// The call would block: no data, no room, no connection to accept yet.
    WouldBlock,
    /// The handle names no socket (closed already, or never opened).
    InvalidHandle,
    /// An argument is not acceptable (e.g. port 0 as a destination).
    InvalidInput,
    /// The local address and port are taken.
    AddrInUse,
    /// The local address is not the stack's, or no ephemeral port is free.
    AddrNotAvailable,
    /// The peer answered the SYN with a RST.
    ConnectionRefused,
    /// The peer reset an established connection.
    ConnectionReset,
    /// The connection was aborted locally.
    ConnectionAborted,
    /// Retransmissions went unanswered past the limit.
    TimedOut,
    /// The sending direction is closed.
    BrokenPipe,
    /// ICMP said the host or network cannot be reached.
    HostUnreachable,
    /// No route to the network (`ENETUNREACH`): the host has no address to
    /// send from.
    NetworkUnreachable,
    /// The socket is not connected.
    NotConnected,
    /// Not allowed: a broadcast without `SO_BROADCAST` (`EACCES`).
    PermissionDenied,
    /// A datagram too large for UDP over IPv4 (`EMSGSIZE`).
    MessageTooLong,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Error::WouldBlock => "operation would block",
            Error::InvalidHandle => "no such socket",
            Error::InvalidInput => "invalid argument",
            Error::AddrInUse => "address in use",
            Error::AddrNotAvailable => "address not available",
            Error::ConnectionRefused => "connection refused",
            Error::ConnectionReset => "connection reset by peer",
            Error::ConnectionAborted => "connection aborted",
            Error::TimedOut => "connection timed out",
            Error::BrokenPipe => "broken pipe",
            Error::HostUnreachable => "host unreachable",
            Error::NetworkUnreachable => "network unreachable",
            Error::NotConnected => "not connected",
            Error::PermissionDenied => "permission denied",
            Error::MessageTooLong => "message too long",
        })
    }
}

impl std::error::Error for Error {}
