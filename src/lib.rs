//! synack: a user-space TCP/IP stack for Tokio.
//!
//! Two hosts on an in-memory wire, an echo server on one and a client on the
//! other:
//!
//! ```
//! use std::net::Ipv4Addr;
//! use synack::Stack;
//! use synack::device::{MemoryLink, MemoryLinkConfig};
//! use synack::net::{TcpListener, TcpStream};
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! let (a, b) = MemoryLink::pair(MemoryLinkConfig::default());
//! let server = Stack::new(a, Ipv4Addr::new(192, 0, 2, 1), 24);
//! let client = Stack::new(b, Ipv4Addr::new(192, 0, 2, 2), 24);
//!
//! let listener = TcpListener::bind_on(&server, "192.0.2.1:7").await?;
//! tokio::spawn(async move {
//!     let (mut stream, _peer) = listener.accept().await?;
//!     let (mut r, mut w) = stream.split();
//!     tokio::io::copy(&mut r, &mut w).await
//! });
//!
//! // As `tokio::net` calls need an entered runtime, `synack::net` calls
//! // without a stack argument use the entered stack.
//! let _guard = client.enter();
//! let mut stream = TcpStream::connect("192.0.2.1:7").await?;
//! stream.write_all(b"hello").await?;
//! let mut buf = [0; 5];
//! stream.read_exact(&mut buf).await?;
//! assert_eq!(&buf, b"hello");
//! # Ok(())
//! # }
//! ```
//!
//! One stack also talks to itself, as a kernel does: traffic to `127.0.0.1`,
//! `localhost` or the stack's own addresses never touches the device.
//!
//! ```
//! use std::net::Ipv4Addr;
//! use synack::Stack;
//! use synack::device::{MemoryLink, MemoryLinkConfig};
//! use synack::net::{TcpListener, TcpStream, UdpSocket};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! let (device, _other_end) = MemoryLink::pair(MemoryLinkConfig::default());
//! let stack = Stack::new(device, Ipv4Addr::new(192, 0, 2, 1), 24);
//! let _guard = stack.enter();
//!
//! let listener = TcpListener::bind("127.0.0.1:0").await?;
//! let client = TcpStream::connect(listener.local_addr()?).await?;
//! let (_server, peer) = listener.accept().await?;
//! assert_eq!(peer, client.local_addr()?);
//!
//! let a = UdpSocket::bind("127.0.0.1:0").await?;
//! let b = UdpSocket::bind("127.0.0.1:0").await?;
//! a.send_to(b"ping", b.local_addr()?).await?;
//! let mut buf = [0; 16];
//! let (n, from) = b.recv_from(&mut buf).await?;
//! assert_eq!((&buf[..n], from), (&b"ping"[..], a.local_addr()?));
//! # Ok(())
//! # }
//! ```
//!
//! A [`Stack`] is a whole IPv4 host. It runs real TCP — three-way handshake
//! with RFC 6528 initial sequence numbers, a reliable in-order byte stream,
//! retransmission with RFC 6298 timers, orderly teardown — and around it UDP,
//! loopback (127.0.0.0/8 and the stack's own addresses, delivered inside the
//! stack), several addresses per stack, IP fragmentation and reassembly, and
//! ICMP (it answers pings, reports unreachable ports, and hands errors about
//! its own segments to the connection concerned). It runs over any packet
//! [`Device`]: an in-memory [`MemoryLink`](crate::device::MemoryLink), a
//! Linux TUN interface (`device::Tun`, feature `tun`), any device wrapped in
//! a [`Pcap`](crate::device::Pcap) capture, or one of your own.
//!
//! Applications get [`net`]: `TcpListener`, `TcpStream`, `TcpSocket`,
//! `UdpSocket` and the split halves with the names and signatures of
//! `tokio::net`'s, tokio's and futures' `AsyncRead`/`AsyncWrite`, and the
//! kernel's error kinds. As tokio code enters a runtime, synack code enters a
//! stack ([`Stack::enter`], or [`Stack::scope`] for spawned tasks), so that
//! `TcpStream::connect(addr)` needs no stack argument.
//!
//! # Which stack a call uses
//!
//! A call without a stack argument (`TcpStream::connect`, `TcpListener::bind`,
//! `UdpSocket::bind`, `TcpSocket::new_v4`, `lookup_host`) uses, in order:
//!
//! 1. the stack the running code entered ([`Stack::enter`], until its guard
//!    drops; the innermost wins) — [`Stack::scope`] enters one around every
//!    poll of a future, which is how a spawned task takes its stack along;
//! 2. else the process-wide default ([`Stack::set_default`]), which tasks
//!    that libraries spawn find too;
//! 3. else none: the call fails with `NotFound`, saying so.
//!
//! A guard is for the code that made it: entered in a task, for that task;
//! entered outside any task (`main`, a test's body), for that code. A task
//! spawned meanwhile on the same thread does not see it, even on a
//! current-thread runtime with the guard held across an `.await`, so a task
//! never silently takes another host's stack: it gets its stack from
//! `scope`, the default or an `_on(&stack, ..)` form, or fails with
//! `NotFound` saying so. In `synack::sim` every host runs on its own runtime
//! with its stack current for every task, so `tokio::spawn` and
//! `spawn_local` inside a host keep its stack. Streams and listeners keep
//! the stack they were made on, wherever they are used.
//!
//! `synack::sim` (feature `sim`) runs many stacks on one simulated network,
//! turmoil-style: hosts by name, partitions, crashes and restarts,
//! deterministic under a seed.
//!
//! The protocol lives in the sans-IO [`engine`]; this crate is the thin async
//! front end that drives it.
//!
//! # Feature flags
//!
//! - `tun` (default): `device::Tun`, a Linux TUN interface, for traffic with
//!   the kernel and real programs.
//! - `sim`: `synack::sim`, the simulation harness (it turns on tokio's
//!   `test-util` for paused time); off by default, for `[dev-dependencies]`.
//! - `axum`: `synack::axum` — `TcpListener` is an `axum::serve::Listener`;
//!   `PeerAddr` for `ConnectInfo`.
//! - `hyper`: `synack::hyper` — a `Connector` (a tower `Service<Uri>`) for
//!   hyper-util's pooled `Client` and tonic's `Endpoint`; hyper-util's
//!   `Connection` for `TcpStream`.
//! - `tonic`: `synack::tonic` — tonic's `Connected` for `TcpStream` and
//!   `TcpIncoming` for `serve_with_incoming` (turns on `hyper` too).
//!
//! docs.rs builds with every feature on.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(feature = "axum")]
pub mod axum;
mod error;
#[cfg(feature = "hyper")]
pub mod hyper;
pub mod net;
pub mod shard;
#[cfg(feature = "sim")]
pub mod sim;
mod stack;
#[cfg(feature = "tonic")]
pub mod tonic;

pub use shard::StackSet;
pub use stack::{EnterGuard, Scoped, Stack, StackBuilder};
#[doc(inline)]
pub use synack_device::{self as device, Device};
#[doc(inline)]
pub use synack_engine::{
    self as engine, Config, Keepalive, MemoryLimits, Protocol, SocketState, SocketSummary, State,
    StateCounts, Stats, TcpInfo,
};
