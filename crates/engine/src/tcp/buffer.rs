//! Send and receive buffers: fixed-capacity rings, allocated once per connection.
//!
//! The receive side also reassembles: out-of-order bytes are written straight
//! into the ring at their place and their ranges kept in a small sorted list,
//! so a filled gap costs no extra copy. Memory per connection is bounded by the
//! two capacities.

/// A byte ring of fixed capacity.
#[derive(Debug)]
struct Ring {
    buf: Box<[u8]>,
    head: usize,
    len: usize,
}

impl Ring {
    fn new(capacity: usize) -> Ring {
        Ring {
            buf: vec![0; capacity].into_boxed_slice(),
            head: 0,
            len: 0,
        }
    }

    fn capacity(&self) -> usize {
        self.buf.len()
    }

    /// Writes `src` at `offset` bytes past the head (which may lie beyond `len`),
    /// wrapping. The caller keeps `offset + src.len() <= capacity`.
    fn write_at(&mut self, offset: usize, src: &[u8]) {
        let cap = self.capacity();
        debug_assert!(offset + src.len() <= cap);
        if src.is_empty() {
            return;
        }
        let start = (self.head + offset) % cap;
        let first = src.len().min(cap - start);
        self.buf[start..start + first].copy_from_slice(&src[..first]);
        self.buf[..src.len() - first].copy_from_slice(&src[first..]);
    }

    /// Copies bytes starting `offset` past the head into `dst`.
    fn read_at(&self, offset: usize, dst: &mut [u8]) {
        let cap = self.capacity();
        if dst.is_empty() {
            return;
        }
        let start = (self.head + offset) % cap;
        let first = dst.len().min(cap - start);
        dst[..first].copy_from_slice(&self.buf[start..start + first]);
        let rest = dst.len() - first;
        dst[first..].copy_from_slice(&self.buf[..rest]);
    }

    fn consume(&mut self, n: usize) {
        debug_assert!(n <= self.len);
        self.head = (self.head + n) % self.capacity().max(1);
        self.len -= n;
        // The head is never rewound when the ring empties: a receive ring holds
        // out-of-order bytes past `len`, at places relative to the head.
    }
}

/// The send buffer: bytes the application wrote that the peer has not yet acknowledged.
#[derive(Debug)]
pub(crate) struct SendBuffer {
    ring: Ring,
}

impl SendBuffer {
    pub(crate) fn new(capacity: usize) -> SendBuffer {
        SendBuffer {
            ring: Ring::new(capacity),
        }
    }

    /// Bytes held (sent and unacknowledged, plus not yet sent).
    pub(crate) fn len(&self) -> usize {
        self.ring.len
    }

    pub(crate) fn capacity(&self) -> usize {
        self.ring.capacity()
    }

    pub(crate) fn free(&self) -> usize {
        self.capacity() - self.len()
    }

    /// Appends as much of `data` as fits; returns how much did.
    pub(crate) fn write(&mut self, data: &[u8]) -> usize {
        let n = data.len().min(self.free());
        self.ring.write_at(self.ring.len, &data[..n]);
        self.ring.len += n;
        n
    }

    /// Copies `dst.len()` bytes starting `offset` bytes into the buffer.
    pub(crate) fn copy_out(&self, offset: usize, dst: &mut [u8]) {
        debug_assert!(offset + dst.len() <= self.len());
        self.ring.read_at(offset, dst);
    }

    /// Drops `n` acknowledged bytes from the front.
    pub(crate) fn consume(&mut self, n: usize) {
        self.ring.consume(n.min(self.ring.len));
    }
}

/// Most out-of-order ranges held at once; a segment that would need more is dropped
/// (the sender retransmits it), which bounds the bookkeeping per connection.
const MAX_RANGES: usize = 32;

/// The receive buffer: in-order bytes waiting for the application, then held
/// out-of-order ranges.
#[derive(Debug)]
pub(crate) struct RecvBuffer {
    ring: Ring,
    /// Out-of-order ranges, as offsets past the end of the in-order bytes at the
    /// time of the last update: sorted, disjoint, not touching.
    ranges: Vec<(usize, usize)>,
}

impl RecvBuffer {
    pub(crate) fn new(capacity: usize) -> RecvBuffer {
        RecvBuffer {
            ring: Ring::new(capacity),
            ranges: Vec::new(),
        }
    }

    pub(crate) fn capacity(&self) -> usize {
        self.ring.capacity()
    }

    /// In-order bytes ready for the application.
    pub(crate) fn readable(&self) -> usize {
        self.ring.len
    }

    /// Room past the in-order bytes: the receive window.
    pub(crate) fn window(&self) -> usize {
        self.capacity() - self.ring.len
    }

    /// Whether out-of-order bytes are held.
    pub(crate) fn has_gaps(&self) -> bool {
        !self.ranges.is_empty()
    }

    /// The held out-of-order ranges, as offsets past the in-order bytes
    /// (the receiver's SACK blocks, RFC 2018).
    pub(crate) fn ranges(&self) -> &[(usize, usize)] {
        &self.ranges
    }

    /// Stores `data` that starts `offset` bytes past the in-order bytes (offset 0 is
    /// the next expected byte). Data beyond the window is cut. Returns how many bytes
    /// became in-order (0 if the data was held out of order or dropped).
    pub(crate) fn insert(&mut self, offset: usize, data: &[u8]) -> usize {
        let window = self.window();
        if offset >= window || data.is_empty() {
            return 0;
        }
        let data = &data[..data.len().min(window - offset)];
        let (start, end) = (offset, offset + data.len());
        if start > 0 {
            if !self.add_range(start, end) {
                return 0;
            }
            self.ring.write_at(self.ring.len + start, data);
            return 0;
        }
        self.ring.write_at(self.ring.len, data);
        // The new bytes plus any held ranges they now reach become in-order.
        let mut advance = end;
        let mut merged = 0;
        for &(s, e) in &self.ranges {
            if s <= advance {
                advance = advance.max(e);
                merged += 1;
            } else {
                break;
            }
        }
        self.ranges.drain(..merged);
        for r in &mut self.ranges {
            r.0 -= advance;
            r.1 -= advance;
        }
        self.ring.len += advance;
        advance
    }

    /// Records `[start, end)` as held; false if that needs more than `MAX_RANGES`.
    fn add_range(&mut self, start: usize, end: usize) -> bool {
        // First range that ends at or after `start` (touching counts) .
        let i = self.ranges.partition_point(|&(_, e)| e < start);
        // Ranges from i that start at or before `end` merge with the new one.
        let mut j = i;
        let (mut s, mut e) = (start, end);
        while j < self.ranges.len() && self.ranges[j].0 <= end {
            s = s.min(self.ranges[j].0);
            e = e.max(self.ranges[j].1);
            j += 1;
        }
        if i == j && self.ranges.len() >= MAX_RANGES {
            return false;
        }
        self.ranges.splice(i..j, [(s, e)]);
        true
    }

    /// Copies in-order bytes into `dst` and frees their room; returns how many.
    pub(crate) fn read(&mut self, dst: &mut [u8]) -> usize {
        let n = self.peek(dst);
        self.ring.consume(n);
        n
    }

    /// Copies in-order bytes into `dst` without consuming them.
    pub(crate) fn peek(&self, dst: &mut [u8]) -> usize {
        let n = dst.len().min(self.ring.len);
        self.ring.read_at(0, &mut dst[..n]);
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recv_buffer_keeps_held_ranges_when_drained() {
        let mut b = RecvBuffer::new(16);
        assert_eq!(b.insert(0, b"abcd"), 4);
        assert_eq!(b.insert(2, b"gh"), 0);
        let mut out = [0; 4];
        // Reading every in-order byte must not move the held range.
        assert_eq!(b.read(&mut out), 4);
        assert_eq!(b.insert(0, b"ef"), 4);
        assert_eq!(b.read(&mut out), 4);
        assert_eq!(&out, b"efgh");
    }

    #[test]
    fn send_buffer_wraps() {
        let mut b = SendBuffer::new(8);
        assert_eq!(b.write(b"abcdef"), 6);
        b.consume(4);
        assert_eq!(b.write(b"ghijklmn"), 6);
        assert_eq!(b.len(), 8);
        let mut out = [0; 8];
        b.copy_out(0, &mut out);
        assert_eq!(&out, b"efghijkl");
        let mut out = [0; 3];
        b.copy_out(5, &mut out);
        assert_eq!(&out, b"jkl");
    }

    #[test]
    fn recv_buffer_reassembles_out_of_order() {
        let mut b = RecvBuffer::new(16);
        assert_eq!(b.insert(4, b"efgh"), 0);
        assert_eq!(b.insert(10, b"kl"), 0);
        assert_eq!(b.ranges(), &[(4, 8), (10, 12)]);
        assert_eq!(b.readable(), 0);
        assert_eq!(b.insert(0, b"abcd"), 8);
        assert_eq!(b.ranges(), &[(2, 4)]);
        assert_eq!(b.insert(0, b"ij"), 4);
        assert!(!b.has_gaps());
        let mut out = [0; 16];
        assert_eq!(b.read(&mut out), 12);
        assert_eq!(&out[..12], b"abcdefghijkl");
    }

    #[test]
    fn recv_buffer_cuts_at_window_and_merges_overlaps() {
        let mut b = RecvBuffer::new(8);
        assert_eq!(b.insert(2, b"cdefghij"), 0);
        assert_eq!(b.ranges(), &[(2, 8)]);
        assert_eq!(b.insert(1, b"bcd"), 0);
        assert_eq!(b.ranges(), &[(1, 8)]);
        assert_eq!(b.insert(8, b"x"), 0);
        assert_eq!(b.insert(0, b"a"), 8);
        assert_eq!(b.window(), 0);
        let mut out = [0; 3];
        assert_eq!(b.read(&mut out), 3);
        assert_eq!(&out, b"abc");
        assert_eq!(b.window(), 3);
    }

    #[test]
    fn recv_buffer_bounds_ranges() {
        let mut b = RecvBuffer::new(1000);
        for i in 0..MAX_RANGES {
            assert_eq!(b.insert(2 + i * 3, b"x"), 0);
        }
        assert_eq!(b.ranges().len(), MAX_RANGES);
        // A new disjoint range is refused; an adjacent one merges.
        b.insert(2 + MAX_RANGES * 3 + 5, b"y");
        assert_eq!(b.ranges().len(), MAX_RANGES);
        b.insert(3, b"z");
        assert_eq!(b.ranges()[0], (2, 4));
    }
}
