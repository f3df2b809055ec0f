//! A packetdrill runner for synack (dev-only).
//!
//! [packetdrill](https://github.com/google/packetdrill) scripts are how TCP
//! stacks prove themselves: each script is a timeline of system calls, packets
//! injected into the stack and packets the stack must send. This crate reads
//! the TCP subset of the script language with its own parser ([`parse()`]) and
//! runs a script against [`synack_engine::Engine`] directly, in virtual time
//! ([`run()`]), with a [`Profile`] saying how to read another stack's settings
//! (FreeBSD's or Linux's `sysctl` lines) and what not to check (FreeBSD's
//! exact windows).
//!
//! Each script gives an [`Outcome`]: it passed, it failed at a given line with
//! what the engine did instead, or it is unsupported for a stated reason (IPv6,
//! UDP encapsulation, TCP-MD5, a FreeBSD-only socket option...). Nothing is
//! skipped silently.
//!
//! # The FreeBSD suite
//!
//! `tests/freebsd.rs` runs freebsd-net's tcp-testsuite, read from
//! `../shared/conformance/freebsd-tcp-testsuite` beside the repository (the
//! scripts are never copied here). The report, a line per script and counts
//! per group:
//!
//! ```text
//! cargo test -p synack-packetdrill --test freebsd -- --nocapture
//! ```
//!
//! One script with a log of every event and segment:
//!
//! ```text
//! PACKETDRILL_SCRIPT=state-event-engine/rcv-rst-closing/rcv-rst-closing-left-edge-secure-ipv4.pkt \
//!     cargo test -p synack-packetdrill --test freebsd one_script -- --nocapture
//! ```
//!
//! `expectations/passing.txt` lists the scripts that pass: one that stops
//! passing fails the test (the report says which scripts pass and are not
//! listed yet). `expectations/<group>/<script>.txt` records a legitimate
//! difference between synack and FreeBSD, with the RFC that allows
//! synack's choice:
//!
//! ```text
//! expect: differ
//! line: 59 62
//! RFC 9293 §3.10.7.4 ...
//! ```
//!
//! `differ` runs the script with those lines tolerated (the segment sent
//! instead is taken as the line's; the rest of the script is still
//! checked); `expect: fail` with one line stops there, for a difference after
//! which the script means nothing. Either way the file must hold exactly: a
//! difference that goes away, or moves, fails the test.
//!
//! # Our own scripts
//!
//! `scripts/*.pkt` are synack's own scripts for what FreeBSD's suite does not
//! cover (SACK recovery, RACK-TLP, congestion control, challenge ACKs,
//! keep-alive, zero-window probing, delayed ACK, Nagle), each with a header
//! saying what the RFC requires and what synack does. `tests/own.rs` runs
//! them under [`Profile::linux`] (synack's defaults, windows checked) and
//! requires each to pass, unless `expectations/own/<name>.txt` records a
//! difference from the RFC (same format as above):
//!
//! ```text
//! cargo test -p synack-packetdrill --test own -- --nocapture
//! PACKETDRILL_OWN=sack-recovery cargo test -p synack-packetdrill --test own one_script -- --ignored --nocapture
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod expect;
pub mod parse;
pub mod profile;
pub mod run;

pub use expect::Expectation;
pub use parse::{ParseError, Script, parse};
pub use profile::Profile;
pub use run::{Failure, Outcome, Run, execute, run, run_file, run_traced};
