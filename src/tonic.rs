//! tonic over synack (feature `tonic`): [`TcpStream`] is tonic's
//! `Connected` (so `Request::remote_addr` and `local_addr` work), and
//! [`TcpIncoming`] turns a [`TcpListener`] into the stream of connections
//! `Server::builder().serve_with_incoming(..)` takes, as tonic's own
//! `TcpIncoming` does for tokio's listener.
//!
//! A tonic client dials through [`synack::hyper::Connector`](crate::hyper::Connector)
//! (the feature turns on `hyper` too):
//! `Endpoint::from_static("http://10.0.0.1:50051").connect_with_connector(Connector::new(&stack))`,
//! or `connect_with_connector_lazy`, whose channel dials from its own task.
//!
//! # Examples
//!
//! A server with tonic's health service and a client asking it, over one
//! stack's loopback (`tonic` with feature `transport`, and `tonic-health`):
//!
//! ```
//! # use std::net::Ipv4Addr;
//! use synack::{Stack, device::{MemoryLink, MemoryLinkConfig}, hyper::Connector, net::TcpListener};
//! use synack::tonic::TcpIncoming;
//! use tonic::transport::{Endpoint, Server};
//! use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let (a, _b) = MemoryLink::pair(MemoryLinkConfig::default());
//! let stack = Stack::new(a, Ipv4Addr::new(192, 0, 2, 1), 24);
//!
//! let (reporter, health) = tonic_health::server::health_reporter();
//! reporter.set_service_status("", tonic_health::ServingStatus::Serving).await;
//! let listener = TcpListener::bind_on(&stack, "127.0.0.1:50051").await?;
//! tokio::spawn(Server::builder().add_service(health).serve_with_incoming(TcpIncoming::new(listener)));
//!
//! let channel = Endpoint::from_static("http://127.0.0.1:50051")
//!     .connect_with_connector(Connector::new(&stack))
//!     .await?;
//! let reply = HealthClient::new(channel)
//!     .check(HealthCheckRequest { service: String::new() })
//!     .await?;
//! assert_eq!(reply.into_inner().status, 1); // SERVING
//! # Ok(())
//! # }
//! ```

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use ::tonic::transport::server::{Connected, TcpConnectInfo};
use futures::Stream;

use crate::net::{TcpListener, TcpStream};

impl Connected for TcpStream {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        TcpConnectInfo {
            local_addr: self.local_addr().ok(),
            remote_addr: self.peer_addr().ok(),
        }
    }
}

/// The connections a [`TcpListener`] accepts, as a `Stream` for tonic's
/// `Server::serve_with_incoming` (or anything else taking a stream of
/// connections).
///
/// A connection reset or aborted before it was accepted is skipped (tonic
/// would only log it); any other accept error is yielded. The stream never
/// ends on its own.
#[derive(Debug)]
pub struct TcpIncoming {
    listener: TcpListener,
    nodelay: Option<bool>,
}

impl TcpIncoming {
    /// Wraps a bound listener.
    pub fn new(listener: TcpListener) -> TcpIncoming {
        TcpIncoming {
            listener,
            nodelay: None,
        }
    }

    /// Sets `TCP_NODELAY` on every accepted stream (tonic's `TcpIncoming`
    /// has the same option; `None`, the default, leaves the stack's setting).
    pub fn with_nodelay(self, nodelay: Option<bool>) -> TcpIncoming {
        TcpIncoming { nodelay, ..self }
    }

    /// The listener's address.
    pub fn local_addr(&self) -> io::Result<std::net::SocketAddr> {
        self.listener.local_addr()
    }

    /// The listener back.
    pub fn into_inner(self) -> TcpListener {
        self.listener
    }
}

impl From<TcpListener> for TcpIncoming {
    fn from(listener: TcpListener) -> TcpIncoming {
        TcpIncoming::new(listener)
    }
}

impl Stream for TcpIncoming {
    type Item = io::Result<TcpStream>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            match ready!(self.listener.poll_accept(cx)) {
                Ok((stream, _)) => {
                    if let Some(nodelay) = self.nodelay
                        && let Err(e) = stream.set_nodelay(nodelay)
                    {
                        return Poll::Ready(Some(Err(e)));
                    }
                    return Poll::Ready(Some(Ok(stream)));
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
                    ) =>
                {
                    continue;
                }
                Err(e) => return Poll::Ready(Some(Err(e))),
            }
        }
    }
}
