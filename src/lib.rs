//! synack: a user-space TCP/IP stack for Tokio.
//!
//! A [`Stack`] runs real TCP — three-way handshake with RFC 6528 initial
//! sequence numbers, a reliable in-order byte stream, retransmission with
//! RFC 6298 timers, orderly teardown — over any packet [`Device`]: an
//! in-memory [`MemoryLink`](synack_device::MemoryLink), a Linux TUN
//! interface, or one of your own. Applications get [`net`]: `TcpListener`,
//! `TcpStream`, `TcpSocket` and the split halves with the names and signatures
//! of `tokio::net`'s, tokio's and futures' `AsyncRead`/`AsyncWrite`, and the
//! kernel's error kinds. As tokio code enters a runtime, synack code enters a
//! stack ([`Stack::enter`], or [`Stack::scope`] for spawned tasks), so that
//! `TcpStream::connect(addr)` needs no stack argument.
//!
//! [`sim`] runs many stacks on one simulated network, turmoil-style: hosts by
//! name, partitions, crashes and restarts, deterministic under a seed.
//!
//! The protocol lives in the sans-IO [`synack_engine`]; this crate is the thin
//! async front end that drives it.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(feature = "axum")]
pub mod axum;
mod error;
#[cfg(feature = "hyper")]
pub mod hyper;
pub mod net;
#[cfg(feature = "sim")]
pub mod sim;
mod stack;
#[cfg(feature = "tonic")]
pub mod tonic;

pub use stack::{EnterGuard, Scoped, Stack, StackBuilder};
pub use synack_device::{self as device, Device};
pub use synack_engine::{
    self as engine, Config, Keepalive, MemoryLimits, State, StateCounts, Stats, TcpInfo,
};
