//! [`Pcap`]: a device wrapper that captures every packet to a pcap file.

use std::collections::VecDeque;
use std::fmt;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

use crate::{Capabilities, Device, Medium, Packet};

/// The magic number of a classic pcap file with microsecond timestamps.
pub const PCAP_MAGIC: u32 = 0xa1b2_c3d4;
/// The snapshot length written in the file header: longer packets are truncated.
pub const PCAP_SNAPLEN: u32 = 65535;
/// The pcap link type of raw IP packets ([`Medium::Ip`]).
pub const LINKTYPE_RAW: u32 = 101;
/// The pcap link type of Ethernet frames ([`Medium::Ethernet`]).
pub const LINKTYPE_ETHERNET: u32 = 1;

/// How many queued packets [`Pcap::poll_send`](Device::poll_send) offers the inner
/// device at a time (it keeps offering batches while the device takes them all).
const SEND_BATCH: usize = 64;

/// The pcap link type of a medium.
pub fn linktype(medium: Medium) -> u32 {
    match medium {
        Medium::Ip => LINKTYPE_RAW,
        Medium::Ethernet => LINKTYPE_ETHERNET,
    }
}

/// Wraps a device and writes every packet it receives or sends to a pcap file.
///
/// The file is a classic libpcap capture (magic `0xa1b2c3d4`, version 2.4,
/// little-endian, microsecond timestamps, snaplen 65535) with link type
/// `LINKTYPE_RAW` (101) for [`Medium::Ip`] devices and `LINKTYPE_ETHERNET` (1)
/// for [`Medium::Ethernet`] ones; Wireshark and `tcpdump -r` read it.
///
/// Timestamps are the tokio [`Instant`] elapsed since the `Pcap` was created,
/// added to a base time: the wall-clock time at creation, or the one given to
/// [`with_base_time`](Pcap::with_base_time), which makes captures taken under
/// paused tokio time deterministic.
///
/// Writes are buffered; the buffer is flushed by [`flush`](Pcap::flush),
/// [`into_inner`](Pcap::into_inner) and on drop. A write error does not disturb
/// the device: it is logged, capturing stops, and `flush` reports it.
///
/// # Examples
///
/// Capture one end of a [`MemoryLink`](crate::MemoryLink), send a packet
/// through it, and read the capture back:
///
/// ```
/// use std::collections::VecDeque;
/// use std::future::poll_fn;
/// use synack_device::{Device, MemoryLink, MemoryLinkConfig, PCAP_MAGIC, Pcap};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// let path = std::env::temp_dir().join(format!("synack-doc-{}.pcap", std::process::id()));
/// let (a, _b) = MemoryLink::pair(MemoryLinkConfig::default());
/// let mut a = Pcap::create(a, &path)?;
///
/// let mut outbox = VecDeque::from([b"hello".to_vec()]);
/// poll_fn(|cx| a.poll_send(cx, &mut outbox)).await?;
/// a.flush()?;
///
/// // A 24-byte file header, then one record: a 16-byte header and the packet.
/// let capture = std::fs::read(&path)?;
/// assert_eq!(capture[..4], PCAP_MAGIC.to_le_bytes());
/// assert_eq!(capture.len(), 24 + 16 + 5);
/// assert_eq!(&capture[40..], b"hello");
/// # std::fs::remove_file(&path)?;
/// # Ok(())
/// # }
/// ```
///
/// In an application, wrap the stack's device and open the file in Wireshark
/// afterwards: `Stack::new(Pcap::create(device, "x.pcap")?, addr, 24)`.
pub struct Pcap<D: Device> {
    inner: D,
    capture: Capture,
    /// Records of the packets offered to `poll_send`, built before the call
    /// (the inner device consumes the packets), written for those it took.
    scratch: Vec<u8>,
    /// End offset in `scratch` of each packet's record.
    ends: Vec<usize>,
    /// A batch of packets being offered to the inner device.
    staged: VecDeque<Packet>,
}

/// The writer side of a [`Pcap`]; flushes on drop.
struct Capture {
    writer: Option<BufWriter<Box<dyn Write + Send>>>,
    error: Option<io::Error>,
    start: Instant,
    base: Duration,
}

impl<D: Device> Pcap<D> {
    /// Wraps `device`, capturing to a new file at `path` (truncated if it exists).
    pub fn create(device: D, path: impl AsRef<Path>) -> io::Result<Pcap<D>> {
        let file = File::create(path)?;
        Self::with_writer(device, file)
    }

    /// Wraps `device`, capturing to `writer`. The file header is written at once.
    pub fn with_writer(device: D, writer: impl Write + Send + 'static) -> io::Result<Pcap<D>> {
        let mut writer =
            BufWriter::with_capacity(64 * 1024, Box::new(writer) as Box<dyn Write + Send>);
        let mut header = [0u8; 24];
        header[0..4].copy_from_slice(&PCAP_MAGIC.to_le_bytes());
        header[4..6].copy_from_slice(&2u16.to_le_bytes());
        header[6..8].copy_from_slice(&4u16.to_le_bytes());
        // thiszone (4 bytes) and sigfigs (4 bytes) stay zero.
        header[16..20].copy_from_slice(&PCAP_SNAPLEN.to_le_bytes());
        header[20..24].copy_from_slice(&linktype(device.capabilities().medium).to_le_bytes());
        writer.write_all(&header)?;
        let base = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Ok(Pcap {
            inner: device,
            capture: Capture {
                writer: Some(writer),
                error: None,
                start: Instant::now(),
                base,
            },
            scratch: Vec::new(),
            ends: Vec::new(),
            staged: VecDeque::new(),
        })
    }

    /// Sets the time, since the Unix epoch, that stands for the moment the `Pcap`
    /// was created. Timestamps are this base plus the tokio time elapsed since then.
    pub fn with_base_time(mut self, since_epoch: Duration) -> Self {
        self.capture.base = since_epoch;
        self
    }

    /// The wrapped device.
    pub fn inner(&self) -> &D {
        &self.inner
    }

    /// The wrapped device, mutably. Packets moved through it directly are not captured.
    pub fn inner_mut(&mut self) -> &mut D {
        &mut self.inner
    }

    /// Flushes the capture and returns the wrapped device.
    pub fn into_inner(self) -> D {
        let Pcap {
            inner, mut capture, ..
        } = self;
        if let Err(e) = capture.flush() {
            tracing::warn!(error = %e, "pcap: flushing the capture failed");
        }
        inner
    }

    /// Writes buffered records out. Returns the error that stopped capturing, if any.
    pub fn flush(&mut self) -> io::Result<()> {
        self.capture.flush()
    }
}

impl Capture {
    fn timestamp(&self) -> Duration {
        self.base + self.start.elapsed()
    }

    fn write(&mut self, bytes: &[u8]) {
        if let Some(writer) = &mut self.writer
            && let Err(e) = writer.write_all(bytes)
        {
            self.fail(e);
        }
    }

    fn fail(&mut self, e: io::Error) {
        tracing::warn!(error = %e, "pcap: writing the capture failed; capturing stops");
        // Dropping a BufWriter flushes it; a failing writer would fail again.
        if let Some(writer) = self.writer.take() {
            let _ = writer.into_parts();
        }
        self.error = Some(e);
    }

    fn flush(&mut self) -> io::Result<()> {
        if let Some(writer) = &mut self.writer
            && let Err(e) = writer.flush()
        {
            let copy = io::Error::new(e.kind(), e.to_string());
            self.fail(e);
            return Err(copy);
        }
        match &self.error {
            Some(e) => Err(io::Error::new(e.kind(), e.to_string())),
            None => Ok(()),
        }
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        if let Some(writer) = &mut self.writer
            && let Err(e) = writer.flush()
        {
            tracing::warn!(error = %e, "pcap: flushing the capture failed");
        }
    }
}

/// Appends the record of one packet (header and captured bytes) to `buf`.
fn push_record(buf: &mut Vec<u8>, ts: Duration, packet: &[u8]) {
    let caplen = packet.len().min(PCAP_SNAPLEN as usize);
    let orig_len = u32::try_from(packet.len()).unwrap_or(u32::MAX);
    // pcap's seconds field is 32 bits: wraps in 2106.
    buf.extend_from_slice(&(ts.as_secs() as u32).to_le_bytes());
    buf.extend_from_slice(&ts.subsec_micros().to_le_bytes());
    buf.extend_from_slice(&(caplen as u32).to_le_bytes());
    buf.extend_from_slice(&orig_len.to_le_bytes());
    buf.extend_from_slice(&packet[..caplen]);
}

impl<D: Device> fmt::Debug for Pcap<D>
where
    D: fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pcap")
            .field("inner", &self.inner)
            .field("capturing", &self.capture.writer.is_some())
            .finish_non_exhaustive()
    }
}

impl<D: Device> Device for Pcap<D> {
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    fn poll_recv(
        &mut self,
        cx: &mut Context<'_>,
        out: &mut Vec<Packet>,
        max: usize,
    ) -> Poll<io::Result<usize>> {
        let before = out.len();
        let result = self.inner.poll_recv(cx, out, max);
        if let Poll::Ready(Ok(_)) = result
            && self.capture.writer.is_some()
            && out.len() > before
        {
            let ts = self.capture.timestamp();
            self.scratch.clear();
            for packet in &out[before..] {
                push_record(&mut self.scratch, ts, packet);
            }
            let scratch = std::mem::take(&mut self.scratch);
            self.capture.write(&scratch);
            self.scratch = scratch;
        }
        result
    }

    fn poll_send(
        &mut self,
        cx: &mut Context<'_>,
        packets: &mut VecDeque<Packet>,
    ) -> Poll<io::Result<usize>> {
        if self.capture.writer.is_none() || packets.is_empty() {
            return self.inner.poll_send(cx, packets);
        }
        // The inner device consumes what it takes, so records are built before the
        // call, for a bounded batch at a time (a long queue the device can take
        // little of is not copied over and over), and written for what it took.
        let ts = self.capture.timestamp();
        let mut total = 0;
        loop {
            if packets.is_empty() {
                return Poll::Ready(Ok(total));
            }
            let batch = packets.len().min(SEND_BATCH);
            self.scratch.clear();
            self.ends.clear();
            for packet in packets.iter().take(batch) {
                push_record(&mut self.scratch, ts, packet);
                self.ends.push(self.scratch.len());
            }
            let (result, taken) = if batch == packets.len() {
                let result = self.inner.poll_send(cx, packets);
                (result, batch - packets.len())
            } else {
                self.staged.extend(packets.drain(..batch));
                let result = self.inner.poll_send(cx, &mut self.staged);
                let taken = batch - self.staged.len();
                while let Some(packet) = self.staged.pop_back() {
                    packets.push_front(packet);
                }
                (result, taken)
            };
            if taken > 0 {
                let end = self.ends[taken - 1];
                let scratch = std::mem::take(&mut self.scratch);
                self.capture.write(&scratch[..end]);
                self.scratch = scratch;
            }
            total += taken;
            match result {
                Poll::Ready(Ok(_)) if taken == batch => continue,
                Poll::Ready(Ok(_)) => return Poll::Ready(Ok(total)),
                _ if total > 0 => return Poll::Ready(Ok(total)),
                other => return other,
            }
        }
    }

    fn alloc(&mut self) -> Packet {
        self.inner.alloc()
    }

    fn alloc_sized(&mut self, len: usize) -> Packet {
        self.inner.alloc_sized(len)
    }

    fn alloc_reused(&mut self) -> Packet {
        self.inner.alloc_reused()
    }

    fn recycle(&mut self, packet: Packet) {
        self.inner.recycle(packet)
    }

    fn receive_in_wake(&self) -> bool {
        self.inner.receive_in_wake()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{MemoryLink, MemoryLinkConfig};
    use std::future::poll_fn;
    use std::sync::{Arc, Mutex};

    /// A `Write` sink the test can read back while the `Pcap` still holds it.
    #[derive(Clone, Default)]
    struct SharedSink(Arc<Mutex<Vec<u8>>>);

    impl Write for SharedSink {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    struct Record {
        ts_sec: u32,
        ts_usec: u32,
        orig_len: u32,
        data: Vec<u8>,
    }

    fn u32_at(b: &[u8], at: usize) -> u32 {
        u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
    }

    /// Parses a capture: returns the link type and the records.
    fn parse(bytes: &[u8]) -> (u32, Vec<Record>) {
        assert!(bytes.len() >= 24, "no header");
        assert_eq!(u32_at(bytes, 0), PCAP_MAGIC);
        assert_eq!(&bytes[0..4], &[0xd4, 0xc3, 0xb2, 0xa1]);
        assert_eq!(u16::from_le_bytes([bytes[4], bytes[5]]), 2);
        assert_eq!(u16::from_le_bytes([bytes[6], bytes[7]]), 4);
        assert_eq!(u32_at(bytes, 8), 0);
        assert_eq!(u32_at(bytes, 12), 0);
        assert_eq!(u32_at(bytes, 16), 65535);
        let linktype = u32_at(bytes, 20);
        let mut records = Vec::new();
        let mut at = 24;
        while at < bytes.len() {
            let incl = u32_at(bytes, at + 8) as usize;
            records.push(Record {
                ts_sec: u32_at(bytes, at),
                ts_usec: u32_at(bytes, at + 4),
                orig_len: u32_at(bytes, at + 12),
                data: bytes[at + 16..at + 16 + incl].to_vec(),
            });
            at += 16 + incl;
        }
        assert_eq!(at, bytes.len(), "trailing garbage");
        (linktype, records)
    }

    #[tokio::test(start_paused = true)]
    async fn captures_both_directions() {
        let (a, mut b) = MemoryLink::pair(MemoryLinkConfig::default().with_queue_packets(2));
        let sink = SharedSink::default();
        let mut a = Pcap::with_writer(a, sink.clone())
            .unwrap()
            .with_base_time(Duration::from_secs(1_700_000_000));
        assert_eq!(a.capabilities(), a.inner().capabilities());

        tokio::time::advance(Duration::from_millis(1500)).await;
        // Three packets offered, two fit: only those two are captured now.
        let mut queue = VecDeque::from([vec![0x45; 20], vec![0x46; 40], vec![0x47; 60]]);
        let sent = poll_fn(|cx| a.poll_send(cx, &mut queue)).await.unwrap();
        assert_eq!(sent, 2);
        let mut got = Vec::new();
        poll_fn(|cx| b.poll_recv(cx, &mut got, 8)).await.unwrap();

        tokio::time::advance(Duration::from_micros(250)).await;
        let sent = poll_fn(|cx| a.poll_send(cx, &mut queue)).await.unwrap();
        assert_eq!(sent, 1);

        let mut reply = VecDeque::from([vec![0x60; 80]]);
        poll_fn(|cx| b.poll_send(cx, &mut reply)).await.unwrap();
        let mut inbox = Vec::new();
        poll_fn(|cx| a.poll_recv(cx, &mut inbox, 8)).await.unwrap();
        assert_eq!(inbox, vec![vec![0x60; 80]]);

        a.flush().unwrap();
        let (linktype, records) = parse(&sink.0.lock().unwrap());
        assert_eq!(linktype, LINKTYPE_RAW);
        assert_eq!(records.len(), 4);
        let expected: [&[u8]; 4] = [&[0x45; 20], &[0x46; 40], &[0x47; 60], &[0x60; 80]];
        for (record, bytes) in records.iter().zip(expected) {
            assert_eq!(record.data, bytes);
            assert_eq!(record.orig_len as usize, bytes.len());
        }
        assert_eq!(
            (records[0].ts_sec, records[0].ts_usec),
            (1_700_000_001, 500_000)
        );
        assert_eq!(
            (records[1].ts_sec, records[1].ts_usec),
            (1_700_000_001, 500_000)
        );
        assert_eq!(
            (records[2].ts_sec, records[2].ts_usec),
            (1_700_000_001, 500_250)
        );
        assert_eq!(
            (records[3].ts_sec, records[3].ts_usec),
            (1_700_000_001, 500_250)
        );
    }

    #[tokio::test]
    async fn pending_send_captures_nothing_and_drop_flushes() {
        let (a, _b) = MemoryLink::pair(MemoryLinkConfig::default().with_queue_packets(1));
        let sink = SharedSink::default();
        let mut a = Pcap::with_writer(a, sink.clone()).unwrap();
        let mut queue = VecDeque::from([vec![1; 10], vec![2; 10]]);
        poll_fn(|cx| a.poll_send(cx, &mut queue)).await.unwrap();
        let mut cx = Context::from_waker(std::task::Waker::noop());
        assert!(a.poll_send(&mut cx, &mut queue).is_pending());
        // Buffered: nothing reached the sink yet.
        assert!(sink.0.lock().unwrap().is_empty());
        drop(a);
        let (_, records) = parse(&sink.0.lock().unwrap());
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].data, vec![1; 10]);
    }

    #[tokio::test]
    async fn into_inner_flushes_and_returns_the_device() {
        let (a, _b) = MemoryLink::pair(MemoryLinkConfig::default());
        let sink = SharedSink::default();
        let mut a = Pcap::with_writer(a, sink.clone()).unwrap();
        let mut queue = VecDeque::from([vec![9; 3]]);
        poll_fn(|cx| a.poll_send(cx, &mut queue)).await.unwrap();
        let link = a.into_inner();
        assert_eq!(link.stats().sent_packets, 1);
        let (_, records) = parse(&sink.0.lock().unwrap());
        assert_eq!(records.len(), 1);
    }

    #[tokio::test]
    async fn long_queues_are_offered_in_batches_and_captured_in_order() {
        let (a, mut b) = MemoryLink::pair(MemoryLinkConfig::default().with_queue_packets(150));
        let sink = SharedSink::default();
        let mut a = Pcap::with_writer(a, sink.clone()).unwrap();
        let all: Vec<Packet> = (0..200u32).map(|i| i.to_be_bytes().to_vec()).collect();
        let mut queue: VecDeque<Packet> = all.iter().cloned().collect();
        let mut cx = Context::from_waker(std::task::Waker::noop());
        assert!(matches!(
            a.poll_send(&mut cx, &mut queue),
            Poll::Ready(Ok(150))
        ));
        assert_eq!(queue.len(), 50);
        assert_eq!(queue.front().unwrap(), &all[150]);
        assert!(a.poll_send(&mut cx, &mut queue).is_pending());
        let mut got = Vec::new();
        while got.len() < 150 {
            poll_fn(|cx| b.poll_recv(cx, &mut got, 1000)).await.unwrap();
        }
        assert!(matches!(
            a.poll_send(&mut cx, &mut queue),
            Poll::Ready(Ok(50))
        ));
        while got.len() < 200 {
            poll_fn(|cx| b.poll_recv(cx, &mut got, 1000)).await.unwrap();
        }
        assert_eq!(got, all);
        a.flush().unwrap();
        let (_, records) = parse(&sink.0.lock().unwrap());
        let captured: Vec<Packet> = records.into_iter().map(|r| r.data).collect();
        assert_eq!(captured, all);
    }

    #[test]
    fn long_packets_are_truncated_to_the_snaplen() {
        let mut buf = Vec::new();
        push_record(&mut buf, Duration::from_secs(1), &vec![7; 70_000]);
        assert_eq!(u32_at(&buf, 8), 65535);
        assert_eq!(u32_at(&buf, 12), 70_000);
        assert_eq!(buf.len(), 16 + 65535);
    }

    #[test]
    fn write_errors_stop_capturing_without_failing_the_device() {
        struct Broken;
        impl Write for Broken {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::Error::other("disk full"))
            }
            fn flush(&mut self) -> io::Result<()> {
                Err(io::Error::other("disk full"))
            }
        }
        let (a, mut b) = MemoryLink::pair(MemoryLinkConfig::default());
        let mut a = Pcap::with_writer(a, Broken).unwrap();
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let mut queue = VecDeque::from([vec![1; 10]]);
        assert!(matches!(
            a.poll_send(&mut cx, &mut queue),
            Poll::Ready(Ok(1))
        ));
        assert!(a.flush().is_err());
        // Still forwarding, and still reporting the failure.
        let mut queue = VecDeque::from([vec![2; 10]]);
        assert!(matches!(
            a.poll_send(&mut cx, &mut queue),
            Poll::Ready(Ok(1))
        ));
        assert!(a.flush().is_err());
        let mut out = Vec::new();
        assert!(matches!(
            b.poll_recv(&mut cx, &mut out, 8),
            Poll::Ready(Ok(2))
        ));
    }

    /// If tcpdump is installed, check that it reads a capture.
    #[tokio::test]
    async fn tcpdump_reads_the_capture_if_installed() {
        let Ok(output) = std::process::Command::new("tcpdump")
            .arg("--version")
            .output()
        else {
            eprintln!("tcpdump not installed; skipping");
            return;
        };
        if !output.status.success() {
            return;
        }
        let path =
            std::env::temp_dir().join(format!("synack-pcap-test-{}.pcap", std::process::id()));
        let (a, _b) = MemoryLink::pair(MemoryLinkConfig::default());
        let mut a = Pcap::create(a, &path).unwrap();
        // An IPv4/UDP packet 192.0.2.1:1234 -> 192.0.2.2:9999, payload "hi".
        let packet = vec![
            0x45, 0, 0, 30, 0, 0, 0x40, 0, 64, 17, 0, 0, 192, 0, 2, 1, 192, 0, 2, 2, 0x04, 0xd2,
            0x27, 0x0f, 0, 10, 0, 0, b'h', b'i',
        ];
        let mut queue = VecDeque::from([packet]);
        poll_fn(|cx| a.poll_send(cx, &mut queue)).await.unwrap();
        drop(a);
        let output = std::process::Command::new("tcpdump")
            .args(["-n", "-r"])
            .arg(&path)
            .output()
            .unwrap();
        let _ = std::fs::remove_file(&path);
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "tcpdump failed: {output:?}");
        assert!(
            stdout.contains("192.0.2.1.1234 > 192.0.2.2.9999"),
            "{stdout}"
        );
    }
}
