//! Packet devices for synack.
//!
//! A [`Device`] moves whole packets (IP datagrams or Ethernet frames) between
//! the stack and the outside world. It knows nothing about TCP. Every device is
//! poll-based (it takes a [`Context`] and registers its waker when it would
//! block) and batch-friendly (one call moves several packets).
//!
//! Implementations:
//! - [`MemoryLink`]: two ends of an in-process wire; the default for tests,
//!   examples and benchmarks.
#![cfg_attr(
    all(target_os = "linux", feature = "tun"),
    doc = "- [`Tun`] (Linux, feature `tun`): a TUN interface driven through tokio's `AsyncFd`."
)]
#![cfg_attr(
    not(all(target_os = "linux", feature = "tun")),
    doc = "- `Tun` (Linux, feature `tun`): a TUN interface driven through tokio's `AsyncFd`."
)]
//! - [`Pcap`]: wraps any device and writes every packet, both ways, to a pcap file.

#![warn(missing_docs)]

use std::collections::VecDeque;
use std::io;
use std::task::{Context, Poll};

mod memory;
mod pcap;
mod steer;
#[cfg(all(target_os = "linux", feature = "tun"))]
mod tun;

pub use memory::{LinkStats, MemoryLink, MemoryLinkConfig};
pub use pcap::{LINKTYPE_ETHERNET, LINKTYPE_RAW, PCAP_MAGIC, PCAP_SNAPLEN, Pcap, linktype};
pub use steer::{queue_of, queue_of_packet};
#[cfg(all(target_os = "linux", feature = "tun"))]
pub use tun::Tun;

/// One packet: the bytes of an IP datagram (medium [`Medium::Ip`]) or an
/// Ethernet frame (medium [`Medium::Ethernet`]).
pub type Packet = Vec<u8>;

/// What a device carries on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Medium {
    /// Raw IP datagrams, as a TUN device carries them.
    Ip,
    /// Ethernet frames, as a TAP device carries them.
    Ethernet,
}

/// Which checksums the device computes or verifies itself, so the stack may skip them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ChecksumOffload {
    /// The device verifies checksums of received packets: the stack need not.
    pub rx: bool,
    /// The device fills in checksums of sent packets: the stack need not.
    pub tx: bool,
}

/// What a device is and what it can do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// What the device carries.
    pub medium: Medium,
    /// The largest packet the device carries, in bytes, headers of the medium included
    /// (for [`Medium::Ip`], the IP MTU).
    pub mtu: usize,
    /// Which checksums the device takes care of.
    pub checksum: ChecksumOffload,
}

/// A packet device: the stack's only way to the outside world.
///
/// The stack's driver calls [`poll_recv`](Device::poll_recv) and
/// [`poll_send`](Device::poll_send) from one task; a device returns
/// `Poll::Pending` only after registering the context's waker, to be woken when
/// it can make progress again.
///
/// # Examples
///
/// A device of your own: this one drops whatever is sent and never receives
/// anything (a stack on it still talks to itself over loopback).
///
/// ```
/// use std::collections::VecDeque;
/// use std::io;
/// use std::task::{Context, Poll};
/// use synack_device::{Capabilities, ChecksumOffload, Device, Medium, Packet};
///
/// struct Sink;
///
/// impl Device for Sink {
///     fn capabilities(&self) -> Capabilities {
///         Capabilities {
///             medium: Medium::Ip,
///             mtu: 1500,
///             checksum: ChecksumOffload::default(),
///         }
///     }
///
///     fn poll_recv(
///         &mut self,
///         _cx: &mut Context<'_>,
///         _out: &mut Vec<Packet>,
///         _max: usize,
///     ) -> Poll<io::Result<usize>> {
///         // Nothing ever arrives, so there is no one to wake.
///         Poll::Pending
///     }
///
///     fn poll_send(
///         &mut self,
///         _cx: &mut Context<'_>,
///         packets: &mut VecDeque<Packet>,
///     ) -> Poll<io::Result<usize>> {
///         let n = packets.len();
///         packets.clear();
///         Poll::Ready(Ok(n))
///     }
/// }
///
/// assert_eq!(Sink.capabilities().mtu, 1500);
/// ```
pub trait Device: Send + 'static {
    /// What the device is and what it can do. Constant for the device's life.
    fn capabilities(&self) -> Capabilities;

    /// Receives packets, appending at most `max` of them to `out`.
    ///
    /// Returns `Ready(Ok(n))` with `n >= 1` packets appended, `Pending` when none
    /// is ready (the waker is registered), or an error. A device whose other end
    /// is gone returns `Ready(Err)` with kind `BrokenPipe`.
    fn poll_recv(
        &mut self,
        cx: &mut Context<'_>,
        out: &mut Vec<Packet>,
        max: usize,
    ) -> Poll<io::Result<usize>>;

    /// Sends packets from the front of `packets`, removing those it sent.
    ///
    /// Returns `Ready(Ok(n))` with `n >= 1` packets taken (or `n == 0` when
    /// `packets` was empty), `Pending` when the device can take none now (the
    /// waker is registered and woken when it can), or an error. A packet longer
    /// than the MTU is dropped and counted as sent, as a NIC would.
    fn poll_send(
        &mut self,
        cx: &mut Context<'_>,
        packets: &mut VecDeque<Packet>,
    ) -> Poll<io::Result<usize>>;

    /// An empty buffer for an outbound packet, with capacity for at least one MTU.
    ///
    /// Devices that recycle buffers hand out one they got back; the default allocates.
    fn alloc(&mut self) -> Packet {
        Vec::with_capacity(self.capabilities().mtu)
    }

    /// A buffer of exactly `len` bytes for an outbound packet that the caller
    /// overwrites: its contents are unspecified (a device that recycles
    /// buffers may leave an earlier packet's bytes in it, so it need not
    /// zero them), for a writer that needs the room before it knows the
    /// packet's length (the stack itself uses
    /// [`alloc_reused`](Device::alloc_reused), which zeroes nothing).
    ///
    /// The default takes [`alloc`](Device::alloc)'s buffer and zero-fills it.
    fn alloc_sized(&mut self, len: usize) -> Packet {
        let mut packet = self.alloc();
        packet.clear();
        packet.resize(len, 0);
        packet
    }

    /// A buffer for an outbound packet as the device's pool has it: the
    /// length and bytes its last packet left (a device that does not
    /// recycle hands out [`alloc`](Device::alloc)'s empty one). The caller
    /// overwrites what it uses and truncates to that; nothing is zeroed.
    /// The stack writes a segment straight into it when it is one MTU long
    /// already (a full-size segment's buffer coming back), and otherwise
    /// copies the segment in from a scratch buffer of its own, so that a
    /// small packet after a small packet costs no zero-fill of the MTU.
    ///
    /// The default is [`alloc`](Device::alloc).
    fn alloc_reused(&mut self) -> Packet {
        self.alloc()
    }

    /// Gives back the buffer of a received packet once the stack is done with it,
    /// so the device can reuse it. The default drops it.
    fn recycle(&mut self, packet: Packet) {
        drop(packet);
    }

    /// Whether the stack may do its receive work inside this device's
    /// wake-ups, on whichever thread wakes it, rather than in its driver
    /// task. Default `false`.
    ///
    /// A device woken by the code that sends to it (an in-process link such
    /// as [`MemoryLink`]) says `true`: the sender's task then runs the
    /// receiving stack's work when that stack is idle, as a kernel's
    /// loopback runs the receiver's TCP in the sender's system call, which
    /// saves two task switches per packet exchange. A device woken by an I/O
    /// reactor, a timer or another runtime's task (a TUN device, a
    /// simulated network with its own clock) keeps the default.
    fn receive_in_wake(&self) -> bool {
        false
    }
}

impl<D: Device + ?Sized> Device for Box<D> {
    fn capabilities(&self) -> Capabilities {
        (**self).capabilities()
    }
    fn poll_recv(
        &mut self,
        cx: &mut Context<'_>,
        out: &mut Vec<Packet>,
        max: usize,
    ) -> Poll<io::Result<usize>> {
        (**self).poll_recv(cx, out, max)
    }
    fn poll_send(
        &mut self,
        cx: &mut Context<'_>,
        packets: &mut VecDeque<Packet>,
    ) -> Poll<io::Result<usize>> {
        (**self).poll_send(cx, packets)
    }
    fn alloc(&mut self) -> Packet {
        (**self).alloc()
    }
    fn alloc_sized(&mut self, len: usize) -> Packet {
        (**self).alloc_sized(len)
    }
    fn alloc_reused(&mut self) -> Packet {
        (**self).alloc_reused()
    }
    fn recycle(&mut self, packet: Packet) {
        (**self).recycle(packet)
    }
    fn receive_in_wake(&self) -> bool {
        (**self).receive_in_wake()
    }
}
