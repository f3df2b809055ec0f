//! pcap capture of a link, with timestamps in simulated time.

use std::fmt;
use std::io::{self, Write};
use std::sync::{Arc, Mutex};

use synack_device::{LINKTYPE_RAW, PCAP_MAGIC, PCAP_SNAPLEN};

/// Where on a link packets are captured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CapturePoint {
    /// Every packet offered to the link, at the moment it enters (as `tcpdump` on
    /// the sender's interface sees it), dropped ones included.
    Ingress,
    /// Every packet the link delivers, at the moment it arrives (as `tcpdump` on
    /// the receiver's interface sees it): corrupted bits and duplicates included.
    Egress,
}

/// A pcap file being written: classic format, microsecond timestamps counted
/// from the network's creation (the Unix epoch in the file), link type raw IP.
pub(crate) struct Capture {
    pub(crate) point: CapturePoint,
    writer: Option<Box<dyn Write + Send>>,
    error: Option<io::Error>,
}

impl Capture {
    pub(crate) fn new(
        point: CapturePoint,
        mut writer: Box<dyn Write + Send>,
    ) -> io::Result<Capture> {
        let mut header = [0u8; 24];
        header[0..4].copy_from_slice(&PCAP_MAGIC.to_le_bytes());
        header[4..6].copy_from_slice(&2u16.to_le_bytes());
        header[6..8].copy_from_slice(&4u16.to_le_bytes());
        header[16..20].copy_from_slice(&PCAP_SNAPLEN.to_le_bytes());
        header[20..24].copy_from_slice(&LINKTYPE_RAW.to_le_bytes());
        writer.write_all(&header)?;
        Ok(Capture {
            point,
            writer: Some(writer),
            error: None,
        })
    }

    /// Writes one record; after an error, capturing stops and the error is kept.
    pub(crate) fn record(&mut self, at_nanos: u64, packet: &[u8]) {
        let Some(w) = self.writer.as_mut() else {
            return;
        };
        let micros = at_nanos / 1000;
        let incl = packet.len().min(PCAP_SNAPLEN as usize);
        let mut head = [0u8; 16];
        head[0..4].copy_from_slice(&((micros / 1_000_000) as u32).to_le_bytes());
        head[4..8].copy_from_slice(&((micros % 1_000_000) as u32).to_le_bytes());
        head[8..12].copy_from_slice(&(incl as u32).to_le_bytes());
        head[12..16].copy_from_slice(&(packet.len() as u32).to_le_bytes());
        let result = w
            .write_all(&head)
            .and_then(|()| w.write_all(&packet[..incl]));
        if let Err(e) = result {
            tracing::warn!(error = %e, "sim capture: write failed, capture stopped");
            self.error = Some(e);
            self.writer = None;
        }
    }

    /// Flushes the writer; reports (once) an earlier write error.
    pub(crate) fn flush(&mut self) -> io::Result<()> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        match self.writer.as_mut() {
            Some(w) => w.flush(),
            None => Ok(()),
        }
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        if let Some(w) = self.writer.as_mut()
            && let Err(e) = w.flush()
        {
            tracing::warn!(error = %e, "sim capture: flush failed");
        }
    }
}

/// A growable in-memory buffer to capture into: clone it, give one clone to
/// [`Link::capture`](crate::Link::capture), read the bytes from the other.
///
/// ```
/// use std::io::Write;
/// use synack_sim::CaptureBuffer;
///
/// let buf = CaptureBuffer::new();
/// let mut writer = buf.clone();
/// writer.write_all(b"abc").unwrap();
/// assert_eq!(buf.contents(), b"abc");
/// ```
#[derive(Clone, Default)]
pub struct CaptureBuffer(Arc<Mutex<Vec<u8>>>);

impl CaptureBuffer {
    /// An empty buffer.
    pub fn new() -> CaptureBuffer {
        CaptureBuffer::default()
    }

    /// A copy of everything written so far.
    pub fn contents(&self) -> Vec<u8> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// How many bytes have been written.
    pub fn len(&self) -> usize {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether nothing has been written.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Write for CaptureBuffer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl fmt::Debug for CaptureBuffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CaptureBuffer")
            .field("len", &self.len())
            .finish()
    }
}

/// One packet record read back from a pcap file written by the sim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PcapRecord {
    /// Simulated time of the record, in microseconds since the network began.
    pub micros: u64,
    /// The captured bytes (an IPv4 datagram).
    pub data: Vec<u8>,
}

/// Parses a classic little-endian microsecond pcap file (as the sim writes) into
/// its records. Returns `InvalidData` for anything else or a truncated file.
pub fn read_pcap(bytes: &[u8]) -> io::Result<Vec<PcapRecord>> {
    let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_string());
    if bytes.len() < 24 || bytes[0..4] != PCAP_MAGIC.to_le_bytes() {
        return Err(bad("not a little-endian microsecond pcap file"));
    }
    let mut out = Vec::new();
    let mut rest = &bytes[24..];
    while !rest.is_empty() {
        if rest.len() < 16 {
            return Err(bad("truncated record header"));
        }
        let word = |i: usize| u32::from_le_bytes([rest[i], rest[i + 1], rest[i + 2], rest[i + 3]]);
        let (sec, usec, incl) = (word(0), word(4), word(8) as usize);
        if rest.len() < 16 + incl {
            return Err(bad("truncated record"));
        }
        out.push(PcapRecord {
            micros: u64::from(sec) * 1_000_000 + u64::from(usec),
            data: rest[16..16 + incl].to_vec(),
        });
        rest = &rest[16 + incl..];
    }
    Ok(out)
}
