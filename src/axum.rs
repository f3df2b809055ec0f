//! axum over synack (feature `axum`): [`TcpListener`] is an
//! `axum::serve::Listener`, so `axum::serve(listener, app)` takes a synack
//! listener as it takes tokio's, graceful shutdown included.
//!
//! The peer's address reaches handlers through `ConnectInfo` in one of two
//! ways (the orphan rule keeps synack from implementing axum's `Connected`
//! for `std::net::SocketAddr` with its own listener):
//!
//! - `ConnectInfo<synack::axum::PeerAddr>`, with
//!   `app.into_make_service_with_connect_info::<PeerAddr>()`; or
//! - `ConnectInfo<SocketAddr>` itself, by serving `listener.tap_io(..)`
//!   (axum's `ListenerExt`), for which axum has the implementation.
//!
//! # Examples
//!
//! ```
//! # use std::net::Ipv4Addr;
//! use axum::{Router, extract::ConnectInfo, routing::get};
//! use synack::{Stack, axum::PeerAddr, device::{MemoryLink, MemoryLinkConfig}, net::TcpListener};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! let (a, _b) = MemoryLink::pair(MemoryLinkConfig::default());
//! let stack = Stack::new(a, Ipv4Addr::new(192, 0, 2, 1), 24);
//! let _guard = stack.enter();
//!
//! let app = Router::new().route(
//!     "/",
//!     get(|ConnectInfo(peer): ConnectInfo<PeerAddr>| async move { format!("hello, {peer}") }),
//! );
//! let listener = TcpListener::bind("127.0.0.1:3000").await?;
//! let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
//! let server = tokio::spawn(
//!     axum::serve(listener, app.into_make_service_with_connect_info::<PeerAddr>())
//!         .with_graceful_shutdown(async move { let _ = stopped.await; })
//!         .into_future(),
//! );
//! # use tokio::io::{AsyncReadExt, AsyncWriteExt};
//! # let mut c = synack::net::TcpStream::connect("127.0.0.1:3000").await?;
//! # c.write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").await?;
//! # let mut reply = String::new();
//! # c.read_to_string(&mut reply).await?;
//! # assert!(reply.contains("hello, 127.0.0.1:"), "{reply}");
//! // ... requests to 127.0.0.1:3000 on `stack` ...
//! let _ = stop.send(());
//! server.await.unwrap()?;
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::ops::Deref;
use std::time::Duration;

use ::axum::extract::connect_info::Connected;
use ::axum::serve::{IncomingStream, Listener};

use crate::net::{TcpListener, TcpStream};

impl Listener for TcpListener {
    type Io = TcpStream;
    type Addr = SocketAddr;

    /// Accepts the next connection. Errors are handled as axum handles
    /// tokio's: one that concerns a single connection (reset or aborted
    /// before it was taken) is skipped; any other is logged and retried
    /// after a second.
    async fn accept(&mut self) -> (TcpStream, SocketAddr) {
        loop {
            match TcpListener::accept(self).await {
                Ok(accepted) => return accepted,
                Err(e) if is_connection_error(&e) => continue,
                Err(e) => {
                    tracing::error!("accept error: {e}; retrying in 1 s");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        TcpListener::local_addr(self)
    }
}

fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// The peer's address of a connection accepted by a synack [`TcpListener`],
/// for axum's `ConnectInfo`:
/// `app.into_make_service_with_connect_info::<PeerAddr>()`, then a handler
/// takes `ConnectInfo(peer): ConnectInfo<PeerAddr>`. It dereferences to the
/// `SocketAddr` and displays as it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerAddr(pub SocketAddr);

impl Deref for PeerAddr {
    type Target = SocketAddr;

    fn deref(&self) -> &SocketAddr {
        &self.0
    }
}

impl fmt::Display for PeerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl From<PeerAddr> for SocketAddr {
    fn from(p: PeerAddr) -> SocketAddr {
        p.0
    }
}

impl Connected<IncomingStream<'_, TcpListener>> for PeerAddr {
    fn connect_info(stream: IncomingStream<'_, TcpListener>) -> PeerAddr {
        PeerAddr(*stream.remote_addr())
    }
}
