//! TCP sequence numbers: 32-bit, compared modulo 2^32 (RFC 9293 §3.4).

use std::fmt;
use std::ops::{Add, Sub};

/// A TCP sequence number. Comparison is circular: `a < b` means `b` lies in the
/// 2^31 numbers after `a`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Seq(pub u32);

impl Seq {
    /// `self < other` in sequence space.
    #[inline]
    pub fn lt(self, other: Seq) -> bool {
        (self.0.wrapping_sub(other.0) as i32) < 0
    }
    /// `self <= other` in sequence space.
    #[inline]
    pub fn le(self, other: Seq) -> bool {
        (self.0.wrapping_sub(other.0) as i32) <= 0
    }
    /// `self > other` in sequence space.
    #[inline]
    pub fn gt(self, other: Seq) -> bool {
        other.lt(self)
    }
    /// `self >= other` in sequence space.
    #[inline]
    pub fn ge(self, other: Seq) -> bool {
        other.le(self)
    }
    /// The later of two sequence numbers.
    #[inline]
    pub fn max(self, other: Seq) -> Seq {
        if self.lt(other) { other } else { self }
    }
    /// The earlier of two sequence numbers.
    #[inline]
    pub fn min(self, other: Seq) -> Seq {
        if self.lt(other) { self } else { other }
    }
    /// Whether `lo <= self < hi`.
    #[inline]
    pub fn in_range(self, lo: Seq, hi: Seq) -> bool {
        lo.le(self) && self.lt(hi)
    }
}

impl Add<u32> for Seq {
    type Output = Seq;
    #[inline]
    fn add(self, n: u32) -> Seq {
        Seq(self.0.wrapping_add(n))
    }
}

impl Add<usize> for Seq {
    type Output = Seq;
    #[inline]
    fn add(self, n: usize) -> Seq {
        Seq(self.0.wrapping_add(n as u32))
    }
}

impl Sub<u32> for Seq {
    type Output = Seq;
    #[inline]
    fn sub(self, n: u32) -> Seq {
        Seq(self.0.wrapping_sub(n))
    }
}

/// The distance from `rhs` forward to `self`, as a signed number (negative if `self` is earlier).
impl Sub<Seq> for Seq {
    type Output = i32;
    #[inline]
    fn sub(self, rhs: Seq) -> i32 {
        self.0.wrapping_sub(rhs.0) as i32
    }
}

impl fmt::Debug for Seq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Display for Seq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl From<smoltcp::wire::TcpSeqNumber> for Seq {
    fn from(s: smoltcp::wire::TcpSeqNumber) -> Seq {
        Seq(s.0 as u32)
    }
}

impl From<Seq> for smoltcp::wire::TcpSeqNumber {
    fn from(s: Seq) -> smoltcp::wire::TcpSeqNumber {
        smoltcp::wire::TcpSeqNumber(s.0 as i32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compares_across_wraparound() {
        let a = Seq(u32::MAX - 10);
        let b = a + 20u32;
        assert_eq!(b.0, 9);
        assert!(a.lt(b));
        assert!(b.gt(a));
        assert_eq!(b - a, 20);
        assert_eq!(a - b, -20);
        assert!(Seq(5).in_range(a, b));
        assert!(!b.in_range(a, b));
        assert_eq!(a.max(b), b);
    }
}
