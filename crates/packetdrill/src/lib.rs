//! A packetdrill runner for synack (dev-only).
//!
//! [packetdrill](https://github.com/google/packetdrill) scripts are how TCP
//! stacks prove themselves: each script is a timeline of system calls, packets
//! injected into the stack and packets the stack must send. This crate reads
//! the TCP subset of the script language with its own parser ([`parse()`]) and
//! runs a script against [`synack_engine::Engine`] directly, in virtual time
//! ([`run()`]), with a [`Profile`] saying how to read another stack's settings
//! (FreeBSD's `sysctl` lines) and what not to check (FreeBSD's exact windows).
//!
//! Each script gives an [`Outcome`]: it passed, it failed at a given line with
//! what the engine did instead, or it is unsupported for a stated reason (IPv6,
//! UDP encapsulation, TCP-MD5, a FreeBSD-only socket option...). Nothing is
//! skipped silently.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod parse;
pub mod profile;
pub mod run;

pub use parse::{ParseError, Script, parse};
pub use profile::Profile;
pub use run::{Failure, Outcome, Run, execute, run, run_file, run_traced};
