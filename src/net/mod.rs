//! TCP and UDP sockets on a [`Stack`](crate::Stack), shaped like `tokio::net`: switch
//! `use tokio::net::{...}` to `use synack::net::{...}` and enter a stack
//! ([`Stack::enter`](crate::Stack::enter)).

mod addr;
mod listener;
mod socket;
mod split;
mod split_owned;
mod stream;
mod udp;

pub use addr::{ToSocketAddrs, lookup_host, lookup_host_on};
pub(crate) use addr::{no_addresses, resolve};
pub(crate) use listener::DEFAULT_BACKLOG;
pub use listener::TcpListener;
pub use socket::TcpSocket;
pub use stream::TcpStream;
pub use udp::UdpSocket;

/// The halves of a split [`TcpStream`], as `tokio::net::tcp`.
pub mod tcp {
    pub use super::split::{ReadHalf, WriteHalf};
    pub use super::split_owned::{OwnedReadHalf, OwnedWriteHalf, ReuniteError};
}
