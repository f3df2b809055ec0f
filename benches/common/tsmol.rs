//! tokio-smoltcp (0.7, on smoltcp 0.14) as a peer in the benchmarks: two
//! `Net`s joined by a pair of bounded channels, the way two synack stacks are
//! joined by a `MemoryLink` (1024 packets a direction, no loss).

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::{Sink, Stream};
use smoltcp::iface::Config;
use smoltcp::phy::{Checksum, ChecksumCapabilities, DeviceCapabilities, Medium};
use smoltcp::wire::{HardwareAddress, IpCidr};
use tokio::sync::mpsc;
use tokio_smoltcp::device::AsyncDevice;
use tokio_smoltcp::{Net, NetConfig};
use tokio_util::sync::PollSender;

/// One end of an in-memory IP link for tokio-smoltcp.
pub struct ChannelLink {
    rx: mpsc::Receiver<Vec<u8>>,
    tx: PollSender<Vec<u8>>,
    caps: DeviceCapabilities,
}

impl Stream for ChannelLink {
    type Item = io::Result<Vec<u8>>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx).map(|p| p.map(Ok))
    }
}

impl Sink<Vec<u8>> for ChannelLink {
    type Error = io::Error;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.tx.poll_reserve(cx).map_err(io::Error::other)
    }

    fn start_send(mut self: Pin<&mut Self>, packet: Vec<u8>) -> io::Result<()> {
        self.tx.send_item(packet).map_err(io::Error::other)
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl AsyncDevice for ChannelLink {
    fn capabilities(&self) -> &DeviceCapabilities {
        &self.caps
    }
}

/// Two linked ends with this MTU; `checksums`: computed and checked (else
/// offloaded, as the `MemoryLink` default).
pub fn link_pair(mtu: usize, checksums: bool) -> (ChannelLink, ChannelLink) {
    let mut caps = DeviceCapabilities::default();
    caps.medium = Medium::Ip;
    caps.max_transmission_unit = mtu;
    caps.checksum = ChecksumCapabilities::default();
    if !checksums {
        caps.checksum.ipv4 = Checksum::None;
        caps.checksum.tcp = Checksum::None;
        caps.checksum.udp = Checksum::None;
        caps.checksum.icmpv4 = Checksum::None;
    }
    let (a_tx, b_rx) = mpsc::channel(1024);
    let (b_tx, a_rx) = mpsc::channel(1024);
    let a = ChannelLink {
        rx: a_rx,
        tx: PollSender::new(a_tx),
        caps: caps.clone(),
    };
    let b = ChannelLink {
        rx: b_rx,
        tx: PollSender::new(b_tx),
        caps,
    };
    (a, b)
}

/// A tokio-smoltcp `Net` on `link` with address `ip`/24 (spawns its reactor:
/// call inside a runtime).
pub fn net(link: ChannelLink, ip: Ipv4Addr) -> Net {
    let config = NetConfig::new(
        Config::new(HardwareAddress::Ip),
        IpCidr::new(ip.into(), 24),
        vec![],
    );
    Net::new(link, config)
}

/// The socket address `ip:port` as tokio-smoltcp takes it.
pub fn addr(ip: Ipv4Addr, port: u16) -> SocketAddr {
    SocketAddr::from((ip, port))
}
