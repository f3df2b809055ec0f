//! A deterministic simulated network for synack.
//!
//! Hosts join one router, each over an uplink (host → router) and a downlink
//! (the router's output port → host). Every link direction has:
//!
//! - a one-way delay and jitter;
//! - a rate in bit/s, with serialisation delay, and a drop-tail queue limited
//!   in packets or bytes;
//! - random loss and bursty [Gilbert-Elliott](GilbertElliott) loss;
//! - duplication, reordering and corruption (one bit flipped, after the sender
//!   computed its checksums, so hosts on such links must verify them: a
//!   [`HostConfig`] announces no checksum offload by default);
//! - an MTU (longer packets are dropped and counted);
//! - counters ([`LinkStats`]) and pcap capture ([`Link::capture`]).
//!
//! Settings can change during a run ([`Link::set_config`]), e.g.
//! [`LinkConfig::blackhole`] for one direction of a partition.
//!
//! The router can hold the packets between two hosts, those in flight
//! included ([`Network::hold`]), and, given an address
//! ([`Network::set_router_addr`]), answers packets for an address no host has
//! with ICMP host unreachable.
//!
//! Each host's end, a [`HostEnd`], is a [`synack_device::Device`], so a
//! `synack::Stack` (or any other stack on that trait) runs on it.
//!
//! All randomness comes from the seed given to [`Network::new`] (xoshiro256**,
//! one stream per link) and all time is tokio's: under
//! `#[tokio::test(start_paused = true)]` a run is the same, packet for packet,
//! every time, and a minute of simulated transfer takes seconds. (Paused tokio
//! timers have millisecond resolution: the simulator keeps exact nanosecond
//! times for queueing and serialisation, but hosts see packets delivered at
//! the next millisecond.)
//!
//! # Example
//!
//! Two synack stacks across a 10 Mbit/s, 20 ms-RTT path with 1 % loss:
//!
//! ```
//! use std::net::{Ipv4Addr, SocketAddr};
//! use std::time::Duration;
//! use synack::Stack;
//! use synack::net::{TcpListener, TcpStream};
//! use synack_sim::{HostConfig, LinkConfig, Network};
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> std::io::Result<()> {
//! let net = Network::new(42);
//! let path = LinkConfig::new()
//!     .delay(Duration::from_millis(5))
//!     .rate_bps(10_000_000)
//!     .queue_packets(100)
//!     .loss(0.01);
//! let (a, b) = (Ipv4Addr::new(192, 0, 2, 1), Ipv4Addr::new(192, 0, 2, 2));
//! let host_a = net.add_host(HostConfig::new(a).uplink(path).downlink(path))?;
//! let host_b = net.add_host(HostConfig::new(b).uplink(path).downlink(path))?;
//! let stack_a = Stack::new(host_a, a, 24);
//! let stack_b = Stack::new(host_b, b, 24);
//!
//! let listener = TcpListener::bind_on(&stack_b, SocketAddr::from((b, 80))).await?;
//! let server = tokio::spawn(async move {
//!     let (mut s, _) = listener.accept().await?;
//!     let mut data = Vec::new();
//!     s.read_to_end(&mut data).await?;
//!     std::io::Result::Ok(data.len())
//! });
//! let mut client = TcpStream::connect_on(&stack_a, SocketAddr::from((b, 80))).await?;
//! client.write_all(&vec![7u8; 100_000]).await?;
//! client.shutdown().await?;
//! assert_eq!(server.await.unwrap()?, 100_000);
//! assert!(net.uplink(a)?.stats().delivered_packets > 0);
//! # Ok(())
//! # }
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod capture;
mod icmp;
mod link;
mod network;
mod rng;

pub use capture::{CaptureBuffer, CapturePoint, PcapRecord, read_pcap};
pub use link::{GilbertElliott, LinkConfig, LinkStats};
pub use network::{HostConfig, HostEnd, Link, Network, RouterStats};
pub use rng::Rng;
