//! TCP sockets on a [`Stack`](crate::Stack), shaped like `tokio::net`.

mod listener;
mod stream;

pub use listener::{SocketAddrLike, TcpListener};
pub use stream::TcpStream;
