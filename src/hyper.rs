//! hyper and hyper-util over synack (feature `hyper`): a [`Connector`] for
//! hyper-util's pooled `Client`, tonic's `Endpoint::connect_with_connector`
//! and anything else that takes a tower `Service<Uri>`, and hyper-util's
//! `Connection` for [`TcpStream`].
//!
//! A connector holds its [`Stack`], so it dials on that stack from whatever
//! task the client spawns, with no stack entered there.
//!
//! # Examples
//!
//! A pooled HTTP/1 client (hyper-util's `Client`, features `client-legacy`
//! and `http1`) talking to a server on the same stack over 127.0.0.1:
//!
//! ```
//! # use std::net::Ipv4Addr;
//! use http_body_util::{BodyExt, Empty};
//! use hyper::body::Bytes;
//! use hyper_util::client::legacy::Client;
//! use hyper_util::rt::TokioExecutor;
//! use synack::{Stack, device::{MemoryLink, MemoryLinkConfig}, hyper::Connector};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let (a, _b) = MemoryLink::pair(MemoryLinkConfig::default());
//! let stack = Stack::new(a, Ipv4Addr::new(192, 0, 2, 1), 24);
//! # let listener = synack::net::TcpListener::bind_on(&stack, "127.0.0.1:8080").await?;
//! # tokio::spawn(async move {
//! #     loop {
//! #         let (s, _) = listener.accept().await.unwrap();
//! #         tokio::spawn(hyper::server::conn::http1::Builder::new().serve_connection(
//! #             hyper_util::rt::TokioIo::new(s),
//! #             hyper::service::service_fn(|_req| async {
//! #                 Ok::<_, std::convert::Infallible>(hyper::Response::new(
//! #                     http_body_util::Full::new(Bytes::from_static(b"hello")),
//! #                 ))
//! #             }),
//! #         ));
//! #     }
//! # });
//! // ... a server listening on 127.0.0.1:8080 of `stack` ...
//! let client = Client::builder(TokioExecutor::new())
//!     .build::<_, Empty<Bytes>>(Connector::new(&stack));
//! let res = client.get("http://127.0.0.1:8080/".parse()?).await?;
//! let body = res.into_body().collect().await?.to_bytes();
//! assert_eq!(&body[..], b"hello");
//! # Ok(())
//! # }
//! ```

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use ::hyper::Uri;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::TokioIo;

use crate::Stack;
use crate::net::TcpStream;

/// A tower `Service<Uri>` that opens a [`TcpStream`] on its stack to the
/// URI's host and port, for hyper-util's pooled `Client` and tonic's
/// `Endpoint::connect_with_connector`.
///
/// The host is resolved through the stack's host table (see
/// [`Stack::add_host`]), so `http://db:5432` works in a simulation where `db`
/// is a host name; an IP literal is used as it is. Without a port in the URI,
/// `http` means 80 and `https` 443 (the connector speaks plain TCP: put a TLS
/// connector such as hyper-rustls's around it for https, as around
/// hyper-util's `HttpConnector`). Streams come with `TCP_NODELAY` on, as
/// hyper's `HttpConnector` sets for HTTP by default (change it with
/// [`set_nodelay`](Connector::set_nodelay)).
///
/// Errors are `io::Error`s with the kernel's kinds: `ConnectionRefused`,
/// `TimedOut` (the SYN retries, or [`set_connect_timeout`](Connector::set_connect_timeout)),
/// `InvalidInput` for a URI with no host or an unknown scheme and no port,
/// `NotFound` for an unknown host name.
#[derive(Clone, Debug)]
pub struct Connector {
    stack: Stack,
    nodelay: bool,
    connect_timeout: Option<Duration>,
}

impl Connector {
    /// A connector that dials on `stack`.
    pub fn new(stack: &Stack) -> Connector {
        Connector {
            stack: stack.clone(),
            nodelay: true,
            connect_timeout: None,
        }
    }

    /// `TCP_NODELAY` on the streams it opens (on by default).
    pub fn set_nodelay(&mut self, nodelay: bool) {
        self.nodelay = nodelay;
    }

    /// Gives up a connect after `timeout` with `TimedOut`; `None` (the
    /// default) leaves it to the stack's SYN retries.
    pub fn set_connect_timeout(&mut self, timeout: Option<Duration>) {
        self.connect_timeout = timeout;
    }

    /// The stack it dials on.
    pub fn stack(&self) -> &Stack {
        &self.stack
    }

    /// Opens a stream to `uri`'s host and port (what the service's `call`
    /// does, as a plain async method).
    pub async fn connect(&self, uri: &Uri) -> io::Result<TcpStream> {
        let (host, port) = host_port(uri)?;
        let connect = TcpStream::connect_on(&self.stack, (host.as_str(), port));
        let stream = match self.connect_timeout {
            Some(t) => tokio::time::timeout(t, connect).await.map_err(|_| {
                io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("connect to {host}:{port} timed out after {t:?}"),
                )
            })??,
            None => connect.await?,
        };
        stream.set_nodelay(self.nodelay)?;
        Ok(stream)
    }
}

/// The host (brackets of an IPv6 literal removed) and port of `uri`.
fn host_port(uri: &Uri) -> io::Result<(String, u16)> {
    let host = uri.host().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("URI {uri} has no host to connect to"),
        )
    })?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let port = match (uri.port_u16(), uri.scheme_str()) {
        (Some(p), _) => p,
        (None, Some("http") | Some("ws") | None) => 80,
        (None, Some("https") | Some("wss")) => 443,
        (None, Some(other)) => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("URI {uri}: no port, and scheme {other} has no default"),
            ));
        }
    };
    Ok((host.to_owned(), port))
}

impl tower_service::Service<Uri> for Connector {
    type Response = TokioIo<TcpStream>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<TokioIo<TcpStream>>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let this = self.clone();
        Box::pin(async move { this.connect(&uri).await.map(TokioIo::new) })
    }
}

/// The addresses of a connection a [`Connector`] opened, in hyper's
/// `Connected::extra`: read them from a response with
/// `res.extensions().get::<synack::hyper::ConnectionInfo>()`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionInfo {
    /// Our end of the connection.
    pub local_addr: SocketAddr,
    /// The server's end.
    pub remote_addr: SocketAddr,
}

impl Connection for TcpStream {
    fn connected(&self) -> Connected {
        let connected = Connected::new();
        match (self.local_addr(), self.peer_addr()) {
            (Ok(local_addr), Ok(remote_addr)) => connected.extra(ConnectionInfo {
                local_addr,
                remote_addr,
            }),
            _ => connected,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_and_ports_from_uris() {
        let hp = |s: &str| host_port(&s.parse::<Uri>().unwrap());
        assert_eq!(hp("http://a:81/x").unwrap(), ("a".into(), 81));
        assert_eq!(hp("http://a/").unwrap(), ("a".into(), 80));
        assert_eq!(hp("https://a/").unwrap(), ("a".into(), 443));
        assert_eq!(
            hp("http://[2001:db8::1]:8080/").unwrap(),
            ("2001:db8::1".into(), 8080)
        );
        assert_eq!(
            hp("gopher://a/").unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
        assert_eq!(hp("/path").unwrap_err().kind(), io::ErrorKind::InvalidInput);
    }
}
