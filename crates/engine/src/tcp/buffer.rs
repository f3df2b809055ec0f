//! Send and receive buffers: rings whose memory follows the data.
//!
//! A buffer has a *limit* (how many bytes it may hold now: the send room the
//! application sees, the receive window the peer is offered) and a *maximum*
//! (the configured size, where the limit stops growing). Neither costs memory:
//! the ring's storage is allocated when the first byte arrives, grows by
//! doubling as more is held at once (never past the limit), and is given back
//! whole when the buffer is empty and the connection asks for it
//! ([`SendBuffer::release`], [`RecvBuffer::release`]), as Linux frees a socket's
//! `sk_buff`s. A connection that never carries data never allocates; one that
//! carries a byte each way holds a few KiB, not the maximum.
//!
//! | operation | cost |
//! | --- | --- |
//! | write, read, insert | one copy of the bytes (two slices at the wrap) |
//! | growth | one copy of what is held, amortised over the doubling |
//! | release | one `free` |
//!
//! The receive side also reassembles: out-of-order bytes are written straight
//! into the ring at their place and their ranges kept in a small sorted list,
//! so a filled gap costs no extra copy. Memory per connection is bounded by the
//! two maxima.

/// The stack-wide memory level (see [`MemoryLimits`](crate::config::MemoryLimits)),
/// as each connection is told of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum MemLevel {
    /// Below the pressure mark: buffers grow as the flow needs.
    #[default]
    Normal,
    /// Under pressure: buffers do not grow; empty ones are freed at once.
    Pressure,
    /// Above the limit: no window beyond what was promised, no new data taken.
    High,
}

/// The smallest storage a ring allocates: a request/response exchange fits.
const MIN_ALLOC: usize = 2048;

/// How many released storages of [`MIN_ALLOC`] bytes a thread keeps for the
/// next ring that needs one (256 KiB at most).
const SPARE_SMALL: usize = 128;

thread_local! {
    /// Storages of [`MIN_ALLOC`] bytes that rings gave back. A request/
    /// response exchange empties its buffers after every message, and they
    /// are released at once (an idle connection holds none); allocating and
    /// zeroing them again was a quarter of the instructions of 1-byte round
    /// trips. A reused storage is not zeroed again (that was another 2 % of
    /// a round trip): a ring hands out only bytes written into it since it
    /// took the storage (`read_at` stays within `len`, a receive ring within
    /// the ranges it was given), so what an earlier connection left there is
    /// overwritten before anyone can see it, as in Linux's recycled
    /// `sk_buff`s.
    static SPARE: std::cell::RefCell<Vec<Vec<u8>>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// A storage of `size` bytes: a spare one if it is of the small size (with
/// what its last ring left in it), else a zeroed one.
fn storage(size: usize) -> Vec<u8> {
    if size == MIN_ALLOC
        && let Some(buf) = SPARE.with(|s| s.borrow_mut().pop())
    {
        return buf;
    }
    // `vec!` of zeros is `calloc`: fresh pages come zeroed by the kernel,
    // so only what is copied in is touched.
    vec![0u8; size]
}

/// Keeps a storage of the small size for reuse; drops any other.
fn give_back(buf: Vec<u8>) {
    if buf.len() == MIN_ALLOC {
        SPARE.with(|s| {
            let mut s = s.borrow_mut();
            if s.len() < SPARE_SMALL {
                s.push(buf);
            }
        });
    }
}

/// A byte ring whose storage grows on demand.
#[derive(Debug, Default)]
struct Ring {
    /// The storage; empty until the first byte. Its length is the ring's size.
    buf: Vec<u8>,
    head: usize,
    len: usize,
}

impl Ring {
    /// Bytes of storage allocated.
    fn allocated(&self) -> usize {
        self.buf.len()
    }

    /// Makes the storage hold at least `extent` bytes past the head (at most
    /// `max`: the caller never asks for more), keeping every byte in place
    /// relative to the head.
    fn reserve(&mut self, extent: usize, max: usize) {
        let size = self.buf.len();
        if extent <= size {
            return;
        }
        let new = extent
            .next_power_of_two()
            .max(MIN_ALLOC)
            .min(max.max(extent));
        let mut buf = storage(new);
        buf[..size - self.head].copy_from_slice(&self.buf[self.head..]);
        buf[size - self.head..size].copy_from_slice(&self.buf[..self.head]);
        give_back(std::mem::replace(&mut self.buf, buf));
        self.head = 0;
    }

    /// Gives the storage back; the ring must hold nothing.
    fn release(&mut self) {
        debug_assert_eq!(self.len, 0);
        give_back(std::mem::take(&mut self.buf));
        self.head = 0;
    }

    /// Writes `src` at `offset` bytes past the head (which may lie beyond `len`),
    /// wrapping. The caller reserved `offset + src.len()` first.
    fn write_at(&mut self, offset: usize, src: &[u8]) {
        let cap = self.buf.len();
        if src.is_empty() {
            return;
        }
        debug_assert!(offset + src.len() <= cap);
        let start = (self.head + offset) % cap;
        let first = src.len().min(cap - start);
        self.buf[start..start + first].copy_from_slice(&src[..first]);
        self.buf[..src.len() - first].copy_from_slice(&src[first..]);
    }

    /// Copies bytes starting `offset` past the head into `dst`.
    fn read_at(&self, offset: usize, dst: &mut [u8]) {
        let cap = self.buf.len();
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
        self.head = (self.head + n) % self.buf.len().max(1);
        self.len -= n;
        // The head is never rewound when the ring empties: a receive ring holds
        // out-of-order bytes past `len`, at places relative to the head.
    }
}

/// The send buffer: bytes the application wrote that the peer has not yet acknowledged.
#[derive(Debug)]
pub(crate) struct SendBuffer {
    ring: Ring,
    /// How much it may hold now (grows with the congestion window).
    limit: usize,
    max: usize,
}

impl SendBuffer {
    /// An empty buffer that may hold `limit` bytes now and grow to `max`.
    /// Allocates nothing.
    pub(crate) fn new(limit: usize, max: usize) -> SendBuffer {
        SendBuffer {
            ring: Ring::default(),
            limit: limit.min(max),
            max,
        }
    }

    /// Bytes held (sent and unacknowledged, plus not yet sent).
    pub(crate) fn len(&self) -> usize {
        self.ring.len
    }

    /// How many bytes it may hold now.
    pub(crate) fn capacity(&self) -> usize {
        self.limit
    }

    /// The configured size: where the limit stops growing.
    pub(crate) fn max(&self) -> usize {
        self.max
    }

    /// Raises the limit to `limit` (never past the maximum, never lowered).
    pub(crate) fn grow_to(&mut self, limit: usize) {
        self.limit = self.limit.max(limit.min(self.max));
    }

    pub(crate) fn free(&self) -> usize {
        self.limit.saturating_sub(self.len())
    }

    /// Bytes of memory the buffer holds.
    pub(crate) fn allocated(&self) -> usize {
        self.ring.allocated()
    }

    /// Gives the memory back if the buffer is empty; true if it did.
    pub(crate) fn release(&mut self) -> bool {
        if self.ring.len > 0 || self.ring.allocated() == 0 {
            return false;
        }
        self.ring.release();
        true
    }

    /// Appends as much of `data` as fits; returns how much did.
    pub(crate) fn write(&mut self, data: &[u8]) -> usize {
        let n = data.len().min(self.free());
        if n == 0 {
            return 0;
        }
        self.ring.reserve(self.ring.len + n, self.max);
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
    /// How much it may hold now: the window it backs (grows by autotuning).
    limit: usize,
    max: usize,
    /// Out-of-order ranges, as offsets past the end of the in-order bytes at the
    /// time of the last update: sorted, disjoint, not touching.
    ranges: Vec<(usize, usize)>,
}

impl RecvBuffer {
    /// An empty buffer that may hold `limit` bytes now and grow to `max`.
    /// Allocates nothing.
    pub(crate) fn new(limit: usize, max: usize) -> RecvBuffer {
        RecvBuffer {
            ring: Ring::default(),
            limit: limit.min(max),
            max,
            ranges: Vec::new(),
        }
    }

    /// How many bytes it may hold now.
    pub(crate) fn capacity(&self) -> usize {
        self.limit
    }

    /// The configured size: where the limit stops growing.
    pub(crate) fn max(&self) -> usize {
        self.max
    }

    /// Raises the limit to `limit` (never past the maximum, never lowered).
    pub(crate) fn grow_to(&mut self, limit: usize) {
        self.limit = self.limit.max(limit.min(self.max));
    }

    /// Bytes of memory the buffer holds.
    pub(crate) fn allocated(&self) -> usize {
        self.ring.allocated()
    }

    /// Gives the memory back if nothing is held (in order or out of order);
    /// true if it did.
    pub(crate) fn release(&mut self) -> bool {
        if self.ring.len > 0 || !self.ranges.is_empty() || self.ring.allocated() == 0 {
            return false;
        }
        self.ring.release();
        true
    }

    /// Whether nothing is held, in order or out of order.
    pub(crate) fn is_empty(&self) -> bool {
        self.ring.len == 0 && self.ranges.is_empty()
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
            self.ring.reserve(self.ring.len + end, self.max);
            self.ring.write_at(self.ring.len + start, data);
            return 0;
        }
        self.ring.reserve(self.ring.len + end, self.max);
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
    fn a_reused_storage_shows_nothing_of_its_last_ring() {
        // Both rings run on this thread, so the second takes the storage
        // the first gave back (not zeroed again).
        let secret = [0xa5u8; MIN_ALLOC];
        let mut a = RecvBuffer::new(MIN_ALLOC, MIN_ALLOC);
        assert_eq!(a.insert(0, &secret), MIN_ALLOC);
        let mut out = vec![0; MIN_ALLOC];
        assert_eq!(a.read(&mut out), MIN_ALLOC);
        assert!(a.release());
        let mut s = SendBuffer::new(MIN_ALLOC, MIN_ALLOC);
        assert_eq!(s.write(b"x"), 1);
        let mut seen = [0u8; 4];
        s.copy_out(0, &mut seen[..1]);
        assert_eq!(seen[0], b'x');
        assert_eq!(s.len(), 1);
        s.consume(1);
        assert!(s.release());
        // Out of order: the hole before it is not readable, peeked or read.
        let mut b = RecvBuffer::new(MIN_ALLOC, MIN_ALLOC);
        assert_eq!(b.insert(100, b"late"), 0);
        assert_eq!(b.allocated(), MIN_ALLOC);
        assert_eq!(
            (b.readable(), b.peek(&mut out), b.read(&mut out)),
            (0, 0, 0)
        );
        let early: Vec<u8> = (0..100u8).collect();
        assert_eq!(b.insert(0, &early), 104);
        let n = b.read(&mut out);
        assert_eq!(&out[..n], [&early[..], b"late"].concat().as_slice());
    }

    #[test]
    fn recv_buffer_keeps_held_ranges_when_drained() {
        let mut b = RecvBuffer::new(16, 16);
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
    fn storage_grows_with_what_is_held_keeps_order_and_is_given_back() {
        let mut b = SendBuffer::new(8192, 65536);
        assert_eq!(b.allocated(), 0);
        let data: Vec<u8> = (0..20000u32).map(|i| (i % 251) as u8).collect();
        assert_eq!(b.write(&data[..3000]), 3000);
        assert_eq!(b.allocated(), 4096);
        b.consume(2000);
        // Wraps inside the 4 KiB, then needs 6 000 bytes: grows, keeping order.
        assert_eq!(b.write(&data[3000..6000]), 3000);
        assert_eq!(b.allocated(), 4096);
        assert_eq!(b.write(&data[6000..8000]), 2000);
        assert_eq!(b.allocated(), 8192);
        let mut out = vec![0; 6000];
        b.copy_out(0, &mut out);
        assert_eq!(out, &data[2000..8000]);
        // The limit, not the storage, bounds what is taken; growing it lets more in.
        assert_eq!(b.write(&data[8000..]), 8192 - 6000);
        b.grow_to(1 << 30);
        assert_eq!(b.capacity(), 65536);
        assert!(!b.release(), "not empty");
        b.consume(b.len());
        assert!(b.release());
        assert_eq!(b.allocated(), 0);
    }

    #[test]
    fn out_of_order_bytes_grow_the_storage_to_their_place() {
        let mut b = RecvBuffer::new(16384, 16384);
        assert_eq!(b.insert(10000, b"late"), 0);
        assert_eq!(b.allocated(), 16384);
        assert!(!b.release(), "holds a range");
        assert_eq!(b.insert(0, &[7; 10000]), 10004);
        let mut out = vec![0; 10004];
        assert_eq!(b.read(&mut out), 10004);
        assert_eq!(&out[10000..], b"late");
        assert!(b.release());
        assert_eq!(b.allocated(), 0);
    }

    #[test]
    fn send_buffer_wraps() {
        let mut b = SendBuffer::new(8, 8);
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
        let mut b = RecvBuffer::new(16, 16);
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
        let mut b = RecvBuffer::new(8, 8);
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
        let mut b = RecvBuffer::new(1000, 1000);
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
