//! Runs one test body on several networks: tokio::net over the kernel's
//! loopback, synack::net over a MemoryLink between two stacks, and synack::net
//! within one stack over its own loopback.

#![allow(dead_code)]

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr};

use futures::future::Either;
use synack::device::{MemoryLink, MemoryLinkConfig};
use synack::{Config, Scoped, Stack};

/// The server's address on the synack link.
pub const SERVER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
/// The client's address on the synack link.
pub const CLIENT: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);

/// Where a test body runs: which address the server listens on, and which
/// stack (if any) the server and client sides enter.
pub struct Env {
    /// The address the server binds and the client connects to.
    pub ip: IpAddr,
    /// A name the client can resolve to `ip`.
    pub name: &'static str,
    /// The address the client side binds to.
    pub client_ip: IpAddr,
    server: Option<Stack>,
    client: Option<Stack>,
}

impl Env {
    /// The kernel's loopback, for tokio::net.
    pub fn kernel() -> Env {
        Env {
            ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            name: "localhost",
            client_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            server: None,
            client: None,
        }
    }

    /// Two synack stacks on a MemoryLink, for synack::net. The client's host
    /// table names the server "server".
    pub fn synack() -> Env {
        Env::synack_with(Config::default())
    }

    /// [`synack`](Env::synack) with an engine configuration.
    pub fn synack_with(config: Config) -> Env {
        let (a, b) = MemoryLink::pair(MemoryLinkConfig::default());
        let server = Stack::builder(a, SERVER, 24).config(config.clone()).build();
        let client = Stack::builder(b, CLIENT, 24)
            .config(config)
            .host("server", SERVER)
            .build();
        Env {
            ip: IpAddr::V4(SERVER),
            name: "server",
            client_ip: IpAddr::V4(CLIENT),
            server: Some(server),
            client: Some(client),
        }
    }

    /// One synack stack talking to itself over 127.0.0.1, as a tokio test on
    /// the kernel's loopback does: server and client enter the same stack.
    pub fn synack_loopback() -> Env {
        let (a, _b) = MemoryLink::pair(MemoryLinkConfig::default());
        let stack = Stack::new(a, SERVER, 24);
        Env {
            ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            name: "localhost",
            client_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            server: Some(stack.clone()),
            client: Some(stack),
        }
    }

    /// Whether this is the kernel's network.
    pub fn is_kernel(&self) -> bool {
        self.server.is_none()
    }

    /// Runs `f` with the server's stack current.
    pub fn server<F: Future>(&self, f: F) -> Either<Scoped<F>, F> {
        scoped(&self.server, f)
    }

    /// Runs `f` with the client's stack current.
    pub fn client<F: Future>(&self, f: F) -> Either<Scoped<F>, F> {
        scoped(&self.client, f)
    }
}

fn scoped<F: Future>(stack: &Option<Stack>, f: F) -> Either<Scoped<F>, F> {
    match stack {
        Some(s) => Either::Left(s.scope(f)),
        None => Either::Right(f),
    }
}
