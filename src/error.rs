//! The one place where engine errors become `io::Error`s, with the kinds a
//! kernel socket would give.

use std::io;

use synack_engine::Error;

/// Maps an engine error to the `io::Error` a kernel socket gives for the same situation.
pub(crate) fn to_io(e: Error) -> io::Error {
    let kind = match e {
        Error::WouldBlock => io::ErrorKind::WouldBlock,
        Error::InvalidHandle => io::ErrorKind::NotConnected,
        Error::InvalidInput => io::ErrorKind::InvalidInput,
        Error::AddrInUse => io::ErrorKind::AddrInUse,
        Error::AddrNotAvailable => io::ErrorKind::AddrNotAvailable,
        Error::ConnectionRefused => io::ErrorKind::ConnectionRefused,
        Error::ConnectionReset => io::ErrorKind::ConnectionReset,
        Error::ConnectionAborted => io::ErrorKind::ConnectionAborted,
        Error::TimedOut => io::ErrorKind::TimedOut,
        Error::BrokenPipe => io::ErrorKind::BrokenPipe,
        Error::HostUnreachable => io::ErrorKind::HostUnreachable,
        Error::NetworkUnreachable => io::ErrorKind::NetworkUnreachable,
        Error::NotConnected => io::ErrorKind::NotConnected,
        Error::PermissionDenied => io::ErrorKind::PermissionDenied,
        Error::MessageTooLong => {
            // The kernel's own error, so its kind matches a kernel socket's.
            #[cfg(unix)]
            return io::Error::from_raw_os_error(libc::EMSGSIZE);
            #[cfg(not(unix))]
            io::ErrorKind::InvalidInput
        }
    };
    io::Error::new(kind, e)
}

/// The error for an IPv6 address given to this IPv4-only stack: what the kernel
/// gives for an IPv6 address on an IPv4 socket, or for an IPv6 socket on a
/// kernel without IPv6 (`EAFNOSUPPORT`, "address family not supported").
pub(crate) fn ipv6_unsupported() -> io::Error {
    #[cfg(unix)]
    {
        io::Error::from_raw_os_error(libc::EAFNOSUPPORT)
    }
    #[cfg(not(unix))]
    {
        io::Error::new(io::ErrorKind::Unsupported, "synack speaks IPv4 only so far")
    }
}
