//! A hierarchical hashed timing wheel.
//!
//! [`Wheel`] holds every timer of every TCP connection in synack
//! (retransmission, delayed ACK, TIME-WAIT, keep-alive, ...). Time is an
//! abstract `u64` tick count (the engine uses milliseconds); the wheel never
//! reads a clock, it only learns the time through [`Wheel::poll`].
//!
//! | operation | cost |
//! |---|---|
//! | [`insert`](Wheel::insert) | O(1) |
//! | [`cancel`](Wheel::cancel), [`reset`](Wheel::reset) | O(1), except as noted under "The earliest deadline" |
//! | [`poll`](Wheel::poll) | O(1) amortised per expired timer (a timer is moved at most 10 times before it fires) plus O(levels) to find the next occupied slot |
//! | [`next_deadline`](Wheel::next_deadline) | O(levels) |
//!
//! # Structure
//!
//! **Entries.** Timers live in a slab (`src/slab.rs`): a `Vec` of entries
//! with a free list and a generation counter per entry. A [`Key`] is
//! `(index, generation)`, so a key whose timer has fired or been cancelled is
//! recognised as stale even after the entry has been reused.
//!
//! **Levels and slots.** The wheel has 11 levels of 64 slots. A slot of
//! level `L` covers `64^L` ticks and the whole level covers `64^(L+1)`, so
//! level 0 has one slot per tick and level 10 (whose slot index is the top 4
//! bits of a `u64`) covers all of time. Tokio's wheel has 6 levels and
//! special-cases deadlines beyond them; with 11 levels *every* `u64`
//! deadline has a home, so there is no overflow list and no clamping, and
//! the extra levels cost nothing while empty. Each slot is an intrusive
//! doubly linked list threaded through the slab entries (`prev`/`next` as
//! `u32` indices), so an entry can be unlinked in O(1) from wherever it is.
//! Each level has a `u64` occupancy bitmap (bit `s` set iff slot `s` is
//! non-empty).
//!
//! **Placement.** The wheel keeps a cursor, `elapsed`: every timer with a
//! deadline before `elapsed` has been handed out, apart from the overdue
//! list below. A timer with deadline `d >= elapsed` goes to the level of the
//! most significant 6-bit digit in which `d` and `elapsed` differ (level 0 if
//! they differ only in the low 6 bits) and to the slot given by `d`'s digit
//! at that level. Hence every entry of level `L` agrees with `elapsed` on all
//! digits above `L` and has a larger digit `L` (or an equal one, at level 0).
//! Two facts follow, and the code leans on both:
//!
//! * all entries of level `L` are earlier than all entries of level `L + 1`,
//!   and within a level slot order is time order, so the earliest timers are
//!   in the lowest occupied slot of the lowest non-empty level;
//! * a level-0 slot holds entries of exactly one deadline, its start time.
//!
//! **Polling and cascading.** [`poll`](Wheel::poll) finds the lowest
//! occupied slot (one `trailing_zeros` on the first non-zero bitmap). If
//! that slot starts after the requested time, nothing is due: the cursor
//! jumps to the requested time (no occupied slot starts before it, so every
//! entry keeps its place) and `poll` returns `None`. Otherwise the cursor
//! moves to the slot's start; a level-0 slot is due in full, so one entry is
//! popped and returned; a higher-level slot is *cascaded*: each of its
//! entries is re-placed relative to the new cursor, which puts it on a
//! strictly lower level. A timer therefore moves at most 10 times in its
//! life, and `poll` never returns a timer early nor skips one.
//!
//! **Two clocks.** [`now`](Wheel::now) is the largest time ever passed to
//! `poll`; the cursor `elapsed <= now` only advances as far as `poll` has
//! actually drained. A timer inserted with `elapsed <= d <= now` (for example
//! between two `poll` calls of one drain) is placed in the wheel and found by
//! the next `poll`; a timer whose deadline is already before the cursor goes
//! to the *overdue list*, which `poll` empties first. Such deadlines are in
//! the past when inserted, so the list is normally empty or tiny.
//!
//! **The earliest deadline.** [`next_deadline`](Wheel::next_deadline) must be
//! exact and cheap enough to call after every packet. Every list caches its
//! earliest deadline and how many of its entries have it. Linking an entry
//! updates that cache in O(1), and so does unlinking one, except that when
//! the last entry holding the minimum leaves, the list's minimum becomes
//! unknown. That is harmless for every slot but the lowest occupied one,
//! which holds the earliest timers: whenever that one would be left unknown
//! (or becomes empty and the next slot's is unknown) it is rescanned at
//! once. This is the only scan the wheel does, and it only follows the
//! cancellation (or reset, or expiry) of all timers holding a slot's earliest
//! deadline. Level-0 slots hold a single deadline, so their cache is never
//! unknown, and cascading only fills empty lower slots, whose caches are
//! exact. `next_deadline` is thus the cached minimum of the lowest occupied
//! slot. The overdue list keeps the same cache; when it is unknown,
//! `next_deadline` scans the overdue list.
//!
//! # Example
//!
//! ```
//! use synack_wheel::Wheel;
//!
//! let mut wheel = Wheel::new();
//! let rto = wheel.insert(200, "retransmit");
//! let ack = wheel.insert(40, "delayed ack");
//! assert_eq!(wheel.next_deadline(), Some(40));
//!
//! // The ACK went out with data: the delayed-ACK timer is no longer needed.
//! assert_eq!(wheel.cancel(ack), Some("delayed ack"));
//! assert_eq!(wheel.next_deadline(), Some(200));
//!
//! assert_eq!(wheel.poll(199), None); // nothing is due yet
//! assert_eq!(wheel.poll(250), Some((rto, "retransmit")));
//! assert_eq!(wheel.poll(250), None);
//! assert!(wheel.is_empty());
//! assert_eq!(wheel.cancel(rto), None); // the key is stale now
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod slab;

use std::fmt;

use slab::{NIL, Slab};

/// Bits of the deadline consumed per level.
const SLOT_BITS: u32 = 6;
/// Slots per level.
const SLOTS: usize = 1 << SLOT_BITS;
/// Levels: `ceil(64 / 6)`, enough for the whole `u64` range.
const LEVELS: usize = 11;
/// Index of the overdue list in `Wheel::lists`; lists `0..OVERDUE` are the
/// wheel slots, list `level * SLOTS + slot`.
const OVERDUE: usize = LEVELS * SLOTS;
/// Number of intrusive lists.
const LISTS: usize = OVERDUE + 1;

/// Handle to a timer in a [`Wheel`], returned by [`Wheel::insert`].
///
/// Keys are generational: once the timer has fired or been cancelled the key
/// is *stale*, and every method given a stale key treats it as absent
/// ([`Wheel::cancel`] returns `None`, [`Wheel::reset`] returns `false`, ...),
/// even if the wheel has since reused the timer's storage for another timer.
/// (The generation is a `u32` per storage slot, so a key could only be
/// confused with a new timer after 2^32 reuses of the same slot.)
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Key {
    index: u32,
    generation: u32,
}

/// One intrusive list (a wheel slot or the overdue list) with a cache of its
/// earliest deadline.
#[derive(Clone, Copy)]
struct List {
    /// First entry, or [`NIL`].
    head: u32,
    /// The earliest deadline in the list, if `min_count > 0`.
    min: u64,
    /// How many entries have deadline `min`; 0 if the list is empty or its
    /// minimum is unknown.
    min_count: u32,
}

const EMPTY: List = List {
    head: NIL,
    min: 0,
    min_count: 0,
};

/// A hierarchical hashed timing wheel holding timers with payloads of type
/// `T`.
///
/// See the [crate documentation](crate) for the structure and costs.
///
/// ```
/// use synack_wheel::Wheel;
///
/// let mut wheel = Wheel::with_capacity(16);
/// let a = wheel.insert(10, 'a');
/// let b = wheel.insert(5, 'b');
/// assert!(wheel.reset(a, 3)); // `a` now fires first
///
/// let mut fired = Vec::new();
/// while let Some((_, value)) = wheel.poll(10) {
///     fired.push(value);
/// }
/// assert_eq!(fired, ['a', 'b']);
/// assert!(!wheel.contains(b));
/// ```
pub struct Wheel<T> {
    /// Storage of all timers; also holds the list links.
    slab: Slab<T>,
    /// The wheel slots (`level * SLOTS + slot`) followed by the overdue list.
    lists: Box<[List]>,
    /// Per level, bit `s` is set iff slot `s` of that level is non-empty.
    occupied: [u64; LEVELS],
    /// Largest time passed to `poll`.
    now: u64,
    /// The cursor: every timer in the slots has `deadline >= elapsed`
    /// and sits at the level and slot computed from it (see the crate docs).
    elapsed: u64,
}

impl<T> Wheel<T> {
    /// An empty wheel whose current time is 0.
    pub fn new() -> Self {
        Self::with_capacity(0)
    }

    /// An empty wheel whose current time is 0, with room for `n` timers
    /// before it reallocates.
    pub fn with_capacity(n: usize) -> Self {
        Wheel {
            slab: Slab::with_capacity(n),
            lists: vec![EMPTY; LISTS].into_boxed_slice(),
            occupied: [0; LEVELS],
            now: 0,
            elapsed: 0,
        }
    }

    /// The current time: the largest `now` ever passed to [`Wheel::poll`]
    /// (0 for a new wheel).
    pub fn now(&self) -> u64 {
        self.now
    }

    /// Number of pending timers.
    pub fn len(&self) -> usize {
        self.slab.len()
    }

    /// Whether no timer is pending.
    pub fn is_empty(&self) -> bool {
        self.slab.len() == 0
    }

    /// Adds a timer that fires at `deadline` carrying `value`. O(1).
    ///
    /// A deadline at or before [`now`](Wheel::now) is due at the next
    /// [`poll`](Wheel::poll).
    ///
    /// # Panics
    ///
    /// Panics if the wheel would hold more than `u32::MAX - 1` timers.
    pub fn insert(&mut self, deadline: u64, value: T) -> Key {
        let (index, generation) = self.slab.insert(deadline, value);
        self.place(index);
        Key { index, generation }
    }

    /// Removes a pending timer and returns its value, or `None` if `key` is
    /// stale. O(1).
    pub fn cancel(&mut self, key: Key) -> Option<T> {
        self.slab.get(key.index, key.generation)?;
        self.detach(key.index);
        Some(self.slab.remove(key.index))
    }

    /// Moves a pending timer to a new `deadline` (earlier or later), keeping
    /// its key and value. Returns `false`, doing nothing, if `key` is stale.
    /// O(1).
    pub fn reset(&mut self, key: Key, deadline: u64) -> bool {
        if self.slab.get(key.index, key.generation).is_none() {
            return false;
        }
        self.detach(key.index);
        self.slab[key.index].deadline = deadline;
        self.place(key.index);
        true
    }

    /// The deadline of a pending timer, or `None` if `key` is stale.
    pub fn deadline(&self, key: Key) -> Option<u64> {
        self.slab
            .get(key.index, key.generation)
            .map(|entry| entry.deadline)
    }

    /// Whether `key` refers to a pending timer.
    pub fn contains(&self, key: Key) -> bool {
        self.slab.get(key.index, key.generation).is_some()
    }

    /// The value of a pending timer, or `None` if `key` is stale.
    pub fn get(&self, key: Key) -> Option<&T> {
        self.slab
            .get(key.index, key.generation)
            .and_then(|entry| entry.value.as_ref())
    }

    /// Mutable access to the value of a pending timer, or `None` if `key` is
    /// stale.
    pub fn get_mut(&mut self, key: Key) -> Option<&mut T> {
        self.slab
            .get_mut(key.index, key.generation)
            .and_then(|entry| entry.value.as_mut())
    }

    /// The exact earliest deadline among the pending timers, or `None` if
    /// there are none. It is at or before [`now`](Wheel::now) if a due timer
    /// has not been polled yet.
    ///
    /// O(levels): a look at the occupancy bitmaps and the cached minimum of
    /// the lowest occupied slot (see the crate documentation). Only while
    /// timers inserted with deadlines already in the past wait for the next
    /// `poll` may this scan those timers.
    pub fn next_deadline(&self) -> Option<u64> {
        let overdue = &self.lists[OVERDUE];
        if overdue.head != NIL {
            // Overdue timers precede everything in the slots.
            return Some(match overdue.min_count {
                0 => self.scan_min(overdue.head).0,
                _ => overdue.min,
            });
        }
        let (level, slot) = self.lowest_occupied()?;
        let list = &self.lists[level * SLOTS + slot];
        debug_assert!(list.min_count > 0, "the lowest slot's minimum is known");
        Some(list.min)
    }

    /// Advances the time to `now` and removes and returns one timer whose
    /// deadline is `<= now`, or returns `None` when no timer is due.
    ///
    /// Time is monotonic: a `now` smaller than [`Wheel::now`] is treated as
    /// `Wheel::now()`. Call `poll` until it returns `None` to drain all due
    /// timers. Timers come out in deadline order, except that timers
    /// inserted with a deadline already behind the wheel's cursor come out
    /// first, in no particular order; timers with equal deadlines come out
    /// in no particular order.
    ///
    /// A call that reaches a higher-level slot cascades all of that slot's
    /// timers at once, so a single call can take time proportional to the
    /// slot's size; per timer the cost stays O(1) amortised.
    ///
    /// ```
    /// use synack_wheel::Wheel;
    ///
    /// let mut wheel = Wheel::new();
    /// wheel.insert(5, "a");
    /// wheel.insert(1 << 40, "far");
    /// assert_eq!(wheel.poll(4), None);
    /// assert_eq!(wheel.poll(5).map(|(_, v)| v), Some("a"));
    /// assert_eq!(wheel.poll(3), None); // time does not go backwards
    /// assert_eq!(wheel.now(), 5);
    /// assert_eq!(wheel.poll(u64::MAX).map(|(_, v)| v), Some("far"));
    /// ```
    pub fn poll(&mut self, now: u64) -> Option<(Key, T)> {
        self.now = self.now.max(now);
        let now = self.now;
        let overdue = self.lists[OVERDUE].head;
        if overdue != NIL {
            return Some(self.take(overdue));
        }
        while let Some((level, slot)) = self.lowest_occupied() {
            let start = slot_start(self.elapsed, level, slot);
            if start > now {
                break;
            }
            self.elapsed = start;
            let list = level * SLOTS + slot;
            if level == 0 {
                // Every entry of a level-0 slot has deadline `start`.
                return Some(self.take(self.lists[list].head));
            }
            self.cascade(list);
        }
        // No occupied slot starts at or before `now`, so every entry keeps
        // its level and slot when the cursor jumps to `now`.
        self.elapsed = now;
        None
    }

    /// Removes every timer, making all keys stale. The current time is kept.
    pub fn clear(&mut self) {
        self.slab.clear();
        self.lists.fill(EMPTY);
        self.occupied = [0; LEVELS];
    }

    /// Links the unlinked entry `index` into the list its deadline calls for.
    fn place(&mut self, index: u32) {
        let deadline = self.slab[index].deadline;
        let list = if deadline < self.elapsed {
            OVERDUE
        } else {
            list_for(self.elapsed, deadline)
        };
        self.link(list, index);
    }

    /// Unlinks the entry `index`, keeping the minimum of the lowest occupied
    /// slot known. The entry stays allocated.
    fn detach(&mut self, index: u32) {
        let list = self.unlink(index);
        if list != OVERDUE && self.lists[list].min_count == 0 {
            // The list became empty or its minimum unknown: if the lowest
            // occupied slot's minimum is unknown now, find it.
            if let Some((level, slot)) = self.lowest_occupied() {
                let lowest = level * SLOTS + slot;
                if self.lists[lowest].min_count == 0 {
                    let (min, count) = self.scan_min(self.lists[lowest].head);
                    self.lists[lowest].min = min;
                    self.lists[lowest].min_count = count;
                }
            }
        }
    }

    /// Detaches and frees the entry `index`, returning its key and value.
    fn take(&mut self, index: u32) -> (Key, T) {
        self.detach(index);
        let generation = self.slab[index].generation;
        let value = self.slab.remove(index);
        (Key { index, generation }, value)
    }

    /// Re-places every entry of the slot `list` relative to the cursor,
    /// which has just moved to the slot's start. The slot is the lowest
    /// occupied one, so its entries land in empty lower slots.
    fn cascade(&mut self, list: usize) {
        let mut index = self.lists[list].head;
        self.lists[list] = EMPTY;
        self.occupied[list / SLOTS] &= !(1 << (list % SLOTS));
        while index != NIL {
            let next = self.slab[index].next;
            let deadline = self.slab[index].deadline;
            debug_assert!(deadline >= self.elapsed);
            let target = list_for(self.elapsed, deadline);
            debug_assert!(target / SLOTS < list / SLOTS, "cascading goes down");
            self.link(target, index);
            index = next;
        }
    }

    /// Pushes the unlinked entry `index` onto the front of `list`.
    fn link(&mut self, list: usize, index: u32) {
        let head = self.lists[list].head;
        let entry = &mut self.slab[index];
        entry.prev = NIL;
        entry.next = head;
        // `list < LISTS = 705` fits in a `u16`.
        entry.list = list as u16;
        let deadline = entry.deadline;
        if head != NIL {
            self.slab[head].prev = index;
        }
        let cache = &mut self.lists[list];
        cache.head = index;
        if head == NIL || (cache.min_count > 0 && deadline < cache.min) {
            (cache.min, cache.min_count) = (deadline, 1);
        } else if cache.min_count > 0 && deadline == cache.min {
            cache.min_count += 1;
        }
        if list != OVERDUE {
            self.occupied[list / SLOTS] |= 1 << (list % SLOTS);
        }
    }

    /// Removes the entry `index` from the list it is in and returns that
    /// list.
    fn unlink(&mut self, index: u32) -> usize {
        let entry = &self.slab[index];
        let (prev, next, deadline) = (entry.prev, entry.next, entry.deadline);
        let list = usize::from(entry.list);
        if prev == NIL {
            self.lists[list].head = next;
        } else {
            self.slab[prev].next = next;
        }
        if next != NIL {
            self.slab[next].prev = prev;
        }
        let cache = &mut self.lists[list];
        if cache.min_count > 0 && deadline == cache.min {
            cache.min_count -= 1;
        }
        if cache.head == NIL {
            debug_assert_eq!(cache.min_count, 0);
            if list != OVERDUE {
                self.occupied[list / SLOTS] &= !(1 << (list % SLOTS));
            }
        }
        list
    }

    /// The lowest occupied slot of the lowest non-empty level, which holds
    /// the earliest timers of the slots.
    fn lowest_occupied(&self) -> Option<(usize, usize)> {
        let (level, bits) = self
            .occupied
            .iter()
            .enumerate()
            .find(|&(_, &bits)| bits != 0)?;
        let slot = bits.trailing_zeros() as usize;
        debug_assert!(
            slot >= slot_of(self.elapsed, level),
            "an occupied slot lies behind the cursor"
        );
        Some((level, slot))
    }

    /// The minimum deadline in the list starting at `index` (non-empty) and
    /// how many entries have it.
    fn scan_min(&self, mut index: u32) -> (u64, u32) {
        let (mut min, mut count) = (u64::MAX, 0);
        while index != NIL {
            let entry = &self.slab[index];
            if entry.deadline < min {
                (min, count) = (entry.deadline, 1);
            } else if entry.deadline == min {
                count += 1;
            }
            index = entry.next;
        }
        debug_assert!(count > 0);
        (min, count)
    }
}

/// The digit of `time` at `level`.
fn slot_of(time: u64, level: usize) -> usize {
    ((time >> (level as u32 * SLOT_BITS)) as usize) & (SLOTS - 1)
}

/// The list (`level * SLOTS + slot`) for a timer with `deadline >= elapsed`:
/// the level is that of the most significant digit in which the two differ.
fn list_for(elapsed: u64, deadline: u64) -> usize {
    debug_assert!(deadline >= elapsed);
    let masked = (elapsed ^ deadline) | (SLOTS as u64 - 1);
    let level = ((u64::BITS - 1 - masked.leading_zeros()) / SLOT_BITS) as usize;
    level * SLOTS + slot_of(deadline, level)
}

/// Start time of slot `slot` of `level` in the block of that level that
/// contains `elapsed`.
fn slot_start(elapsed: u64, level: usize, slot: usize) -> u64 {
    let shift = level as u32 * SLOT_BITS;
    let block_shift = shift + SLOT_BITS;
    let block = if block_shift >= u64::BITS {
        0
    } else {
        elapsed >> block_shift << block_shift
    };
    block | ((slot as u64) << shift)
}

impl<T> Default for Wheel<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> fmt::Debug for Wheel<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Wheel")
            .field("now", &self.now)
            .field("len", &self.len())
            .field("next_deadline", &self.next_deadline())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl<T> Wheel<T> {
        /// Verifies every structural invariant; O(n).
        fn check(&self) {
            assert!(self.elapsed <= self.now);
            let mut total = 0;
            for list in 0..LISTS {
                let (mut index, mut prev, mut len) = (self.lists[list].head, NIL, 0);
                let (mut min, mut min_count) = (u64::MAX, 0);
                while index != NIL {
                    let entry = &self.slab[index];
                    assert!(entry.value.is_some());
                    assert_eq!(entry.prev, prev);
                    assert_eq!(usize::from(entry.list), list);
                    if list == OVERDUE {
                        assert!(entry.deadline < self.elapsed);
                    } else {
                        assert!(entry.deadline >= self.elapsed);
                        assert_eq!(list_for(self.elapsed, entry.deadline), list);
                    }
                    if entry.deadline < min {
                        (min, min_count) = (entry.deadline, 1);
                    } else if entry.deadline == min {
                        min_count += 1;
                    }
                    (prev, index, len) = (index, entry.next, len + 1);
                }
                let cache = self.lists[list];
                // The cache is exact or unknown, never wrong.
                if cache.min_count > 0 || len == 0 {
                    assert_eq!(cache.min_count, min_count, "min count of list {list}");
                }
                if cache.min_count > 0 {
                    assert_eq!(cache.min, min, "min of list {list}");
                }
                if list < SLOTS && len > 0 {
                    assert!(cache.min_count > 0, "level-0 slot {list} minimum unknown");
                }
                if list != OVERDUE {
                    let bit = self.occupied[list / SLOTS] >> (list % SLOTS) & 1;
                    assert_eq!(bit == 1, len > 0, "occupancy bit of list {list}");
                }
                total += len;
            }
            assert_eq!(total, self.len());
            if let Some((level, slot)) = self.lowest_occupied() {
                assert!(self.lists[level * SLOTS + slot].min_count > 0);
            }
        }
    }

    /// Drains everything due at `now`, checking that nothing is early.
    fn drain<T>(wheel: &mut Wheel<T>, now: u64) -> Vec<(Key, T)> {
        let mut out = Vec::new();
        while let Some((key, value)) = wheel.poll(now) {
            out.push((key, value));
        }
        out
    }

    fn values<T>(fired: Vec<(Key, T)>) -> Vec<T> {
        fired.into_iter().map(|(_, value)| value).collect()
    }

    /// A tiny deterministic PRNG for the bulk tests.
    fn xorshift(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    #[test]
    fn new_wheel_is_empty() {
        let mut wheel: Wheel<()> = Wheel::default();
        assert!(wheel.is_empty());
        assert_eq!(wheel.len(), 0);
        assert_eq!(wheel.now(), 0);
        assert_eq!(wheel.next_deadline(), None);
        assert!(wheel.poll(1_000).is_none());
        assert_eq!(wheel.now(), 1_000);
    }

    #[test]
    fn insert_and_poll() {
        let mut wheel = Wheel::new();
        let a = wheel.insert(3, "a");
        let b = wheel.insert(1, "b");
        let c = wheel.insert(2, "c");
        assert_eq!(wheel.len(), 3);
        assert_eq!(wheel.deadline(a), Some(3));
        assert!(wheel.poll(0).is_none());
        assert_eq!(wheel.poll(1), Some((b, "b")));
        assert!(wheel.poll(1).is_none());
        assert_eq!(drain(&mut wheel, 10), vec![(c, "c"), (a, "a")]);
        assert!(wheel.is_empty());
        assert!(!wheel.contains(a));
        assert_eq!(wheel.next_deadline(), None);
    }

    #[test]
    fn never_early_across_levels() {
        let deadlines = [1, 63, 64, 65, 4095, 4096, 4097, 262_143, 262_144, 1 << 30];
        let mut wheel = Wheel::new();
        for &deadline in &deadlines {
            wheel.insert(deadline, deadline);
        }
        for &deadline in &deadlines {
            assert!(wheel.poll(deadline - 1).is_none(), "{deadline} fired early");
            assert_eq!(values(drain(&mut wheel, deadline)), vec![deadline]);
        }
        assert!(wheel.is_empty());
    }

    #[test]
    fn cancel() {
        let mut wheel = Wheel::new();
        let a = wheel.insert(10, 'a');
        let b = wheel.insert(10, 'b');
        let far = wheel.insert(100_000, 'f');
        assert_eq!(wheel.cancel(a), Some('a'));
        assert_eq!(wheel.cancel(a), None);
        assert_eq!(wheel.cancel(far), Some('f'));
        assert_eq!(wheel.len(), 1);
        assert_eq!(drain(&mut wheel, 1 << 20), vec![(b, 'b')]);
        assert_eq!(wheel.cancel(b), None, "fired keys are stale");
    }

    #[test]
    fn stale_key_after_reuse() {
        let mut wheel = Wheel::new();
        let old = wheel.insert(5, 1);
        assert_eq!(wheel.cancel(old), Some(1));
        let new = wheel.insert(7, 2);
        assert_ne!(old, new);
        // The storage is reused, the old key must not reach the new timer.
        assert!(!wheel.contains(old));
        assert_eq!(wheel.cancel(old), None);
        assert!(!wheel.reset(old, 1));
        assert_eq!(wheel.deadline(old), None);
        assert_eq!(wheel.get(old), None);
        assert_eq!(wheel.get_mut(old), None);
        assert_eq!(wheel.deadline(new), Some(7));
        assert_eq!(wheel.poll(7), Some((new, 2)));
        // ... and after the slot is reused once more by an expiry.
        let newer = wheel.insert(9, 3);
        assert!(!wheel.contains(new));
        assert_eq!(wheel.cancel(new), None);
        assert_eq!(wheel.cancel(newer), Some(3));
    }

    #[test]
    fn reset_moves_entries() {
        let mut wheel = Wheel::new();
        let a = wheel.insert(100, 'a');
        let b = wheel.insert(50, 'b');
        assert!(wheel.reset(a, 10)); // earlier
        assert!(wheel.reset(b, 1 << 33)); // much later
        assert_eq!(wheel.deadline(a), Some(10));
        assert_eq!(wheel.next_deadline(), Some(10));
        assert_eq!(drain(&mut wheel, 1_000), vec![(a, 'a')]);
        assert!(!wheel.reset(a, 5), "stale key");
        assert!(wheel.reset(b, 2_000)); // earlier, from a high level
        assert!(drain(&mut wheel, 1_999).is_empty());
        assert_eq!(drain(&mut wheel, 2_000), vec![(b, 'b')]);
    }

    #[test]
    fn reset_to_the_past_fires_at_next_poll() {
        let mut wheel = Wheel::new();
        assert!(wheel.poll(1_000).is_none());
        let a = wheel.insert(5_000, 'a');
        assert!(wheel.reset(a, 3));
        assert_eq!(wheel.next_deadline(), Some(3));
        assert_eq!(wheel.poll(0), Some((a, 'a')));
    }

    #[test]
    fn get_and_get_mut() {
        let mut wheel = Wheel::new();
        let a = wheel.insert(5, 1);
        *wheel.get_mut(a).unwrap() += 41;
        assert_eq!(wheel.get(a), Some(&42));
        assert_eq!(wheel.poll(5), Some((a, 42)));
    }

    #[test]
    fn far_future_deadlines() {
        let deadlines = [
            1 << 36, // beyond the range of a 6-level wheel
            (1 << 36) + 1,
            1 << 42,
            (1 << 60) - 1,
            1 << 60,
            1 << 63,
            u64::MAX - 1,
            u64::MAX,
        ];
        let mut wheel = Wheel::new();
        let keys: Vec<Key> = deadlines.iter().map(|&d| wheel.insert(d, d)).collect();
        for (&key, &deadline) in keys.iter().zip(&deadlines) {
            assert_eq!(wheel.next_deadline(), Some(deadline));
            assert!(wheel.poll(deadline - 1).is_none(), "{deadline} fired early");
            assert_eq!(wheel.poll(deadline), Some((key, deadline)));
        }
        assert!(wheel.is_empty());
        assert_eq!(wheel.now(), u64::MAX);
        // At the end of time, everything is due immediately.
        let k = wheel.insert(u64::MAX, 0);
        assert_eq!(wheel.poll(0), Some((k, 0)));
    }

    #[test]
    fn far_future_after_a_jump() {
        let mut wheel = Wheel::new();
        assert!(wheel.poll((1 << 50) + 12_345).is_none());
        let base = wheel.now();
        let a = wheel.insert(base + (1 << 40), 'a');
        let b = wheel.insert(base + 1, 'b');
        assert_eq!(wheel.poll(base + 1), Some((b, 'b')));
        assert!(wheel.poll(base + (1 << 40) - 1).is_none());
        assert_eq!(wheel.next_deadline(), Some(base + (1 << 40)));
        assert_eq!(wheel.poll(u64::MAX), Some((a, 'a')));
    }

    #[test]
    fn deadline_equal_to_now() {
        let mut wheel = Wheel::new();
        assert!(wheel.poll(100).is_none());
        let a = wheel.insert(100, 'a');
        assert_eq!(wheel.next_deadline(), Some(100));
        assert_eq!(wheel.poll(100), Some((a, 'a')));
        let b = wheel.insert(0, 'b'); // in the past
        let c = wheel.insert(99, 'c'); // in the past
        assert_eq!(wheel.next_deadline(), Some(0));
        assert_eq!(wheel.len(), 2);
        let mut fired = values(drain(&mut wheel, 0));
        fired.sort();
        assert_eq!(fired, ['b', 'c']);
        assert!(!wheel.contains(b) && !wheel.contains(c));
        assert_eq!(wheel.now(), 100);
    }

    #[test]
    fn time_going_backwards_is_ignored() {
        let mut wheel = Wheel::new();
        let a = wheel.insert(50, 'a');
        let b = wheel.insert(70, 'b');
        assert_eq!(wheel.poll(60), Some((a, 'a')));
        assert!(wheel.poll(60).is_none());
        assert!(wheel.poll(10).is_none());
        assert_eq!(wheel.now(), 60);
        // An insert "due now" fires even though poll is given an older time.
        let c = wheel.insert(55, 'c');
        assert_eq!(wheel.poll(20), Some((c, 'c')));
        assert!(wheel.poll(20).is_none());
        assert_eq!(wheel.poll(70), Some((b, 'b')));
    }

    #[test]
    fn insert_during_a_drain() {
        // The cursor lags `now` in the middle of a drain; inserts with
        // deadlines between the two must still fire in that drain.
        let mut wheel = Wheel::new();
        wheel.insert(10, 10);
        wheel.insert(5_000, 5_000);
        assert_eq!(wheel.poll(10_000).map(|(_, v)| v), Some(10));
        wheel.insert(20, 20); // behind `now`, ahead of the cursor
        wheel.insert(7_000, 7_000);
        wheel.insert(9, 9); // behind the cursor: overdue
        wheel.insert(20_000, 20_000); // not due
        assert_eq!(wheel.next_deadline(), Some(9));
        assert_eq!(values(drain(&mut wheel, 10_000)), vec![9, 20, 5_000, 7_000]);
        assert_eq!(wheel.next_deadline(), Some(20_000));
    }

    #[test]
    fn next_deadline_is_exact_in_high_slots() {
        let mut wheel = Wheel::new();
        // All in one level-2 slot (ticks 4096..8192), none at lower levels.
        let k1 = wheel.insert(7_000, ());
        let k2 = wheel.insert(5_000, ());
        let k3 = wheel.insert(5_000, ());
        let k4 = wheel.insert(6_123, ());
        assert_eq!(wheel.next_deadline(), Some(5_000));
        wheel.cancel(k2);
        assert_eq!(wheel.next_deadline(), Some(5_000));
        wheel.cancel(k3);
        assert_eq!(wheel.next_deadline(), Some(6_123));
        assert!(wheel.reset(k4, 8_000));
        assert_eq!(wheel.next_deadline(), Some(7_000));
        wheel.cancel(k1);
        assert_eq!(wheel.next_deadline(), Some(8_000));
        assert!(wheel.poll(6_000).is_none());
        assert_eq!(wheel.next_deadline(), Some(8_000));
        assert!(wheel.reset(k4, 6_001));
        assert_eq!(wheel.next_deadline(), Some(6_001));
        assert_eq!(wheel.poll(7_000), Some((k4, ())));
        assert_eq!(wheel.next_deadline(), None);
    }

    #[test]
    fn next_deadline_after_a_slot_minimum_became_unknown() {
        let mut wheel = Wheel::new();
        let low = wheel.insert(5, ()); // level 0: the lowest slot
        let a = wheel.insert(100, ()); // level-1 slot 64..128
        wheel.insert(110, ());
        // The level-1 slot loses its minimum while it is not the lowest.
        wheel.cancel(a);
        wheel.insert(90, ());
        wheel.insert(100, ());
        assert_eq!(wheel.next_deadline(), Some(5));
        // Now it is the lowest: its minimum must be found again.
        wheel.cancel(low);
        assert_eq!(wheel.next_deadline(), Some(90));
        assert_eq!(values(drain(&mut wheel, 1_000)).len(), 3);
    }

    #[test]
    fn next_deadline_while_draining() {
        let mut wheel = Wheel::new();
        for d in [3, 3, 3, 64, 200, 5_000] {
            wheel.insert(d, d);
        }
        let mut expected = vec![3, 3, 3, 64, 200, 5_000].into_iter();
        let _ = expected.next();
        while let Some((_, d)) = wheel.poll(1_000) {
            assert!(d <= 1_000);
            assert_eq!(wheel.next_deadline(), expected.next());
        }
        assert_eq!(wheel.next_deadline(), Some(5_000));
    }

    #[test]
    fn clear_makes_keys_stale() {
        let mut wheel = Wheel::new();
        let a = wheel.insert(5, 'a');
        wheel.insert(1 << 20, 'b');
        assert!(wheel.poll(3).is_none());
        wheel.clear();
        assert!(wheel.is_empty());
        assert_eq!(wheel.next_deadline(), None);
        assert!(!wheel.contains(a));
        assert_eq!(wheel.now(), 3);
        let c = wheel.insert(4, 'c');
        assert!(!wheel.contains(a));
        assert_eq!(drain(&mut wheel, u64::MAX), vec![(c, 'c')]);
    }

    #[test]
    fn debug_output() {
        let mut wheel = Wheel::new();
        wheel.insert(9, ());
        let text = format!("{wheel:?}");
        assert!(text.contains("next_deadline: Some(9)"), "{text}");
    }

    #[test]
    fn bulk_expiry_is_ordered_and_complete() {
        let mut state = 0x9E37_79B9_7F4A_7C15;
        let mut wheel = Wheel::with_capacity(50_000);
        let mut expected = Vec::new();
        for _ in 0..50_000 {
            let deadline = xorshift(&mut state) % 1_000_000;
            wheel.insert(deadline, deadline);
            expected.push(deadline);
        }
        expected.sort_unstable();
        let mut fired = Vec::with_capacity(expected.len());
        let mut now = 0;
        while let Some(next) = wheel.next_deadline() {
            // Step in uneven increments, sometimes short of the deadline.
            now = (now + xorshift(&mut state) % 3_000).min(next + 5);
            while let Some((key, deadline)) = wheel.poll(now) {
                assert!(deadline <= now, "{deadline} fired early at {now}");
                assert!(!wheel.contains(key));
                fired.push(deadline);
            }
            if let Some(next) = wheel.next_deadline() {
                assert!(next > now);
            }
        }
        fired.sort_unstable();
        assert_eq!(fired, expected);
        assert!(wheel.is_empty());
    }

    #[test]
    fn bulk_poll_returns_deadline_order() {
        let mut state = 12345;
        let mut wheel = Wheel::new();
        for _ in 0..20_000 {
            let deadline = xorshift(&mut state) % (1 << 24);
            wheel.insert(deadline, deadline);
        }
        let fired = values(drain(&mut wheel, 1 << 24));
        assert_eq!(fired.len(), 20_000);
        assert!(fired.is_sorted());
    }

    #[test]
    fn slot_arithmetic() {
        assert_eq!(list_for(0, 0), 0);
        assert_eq!(list_for(0, 63), 63);
        assert_eq!(list_for(0, 64), SLOTS + 1);
        assert_eq!(list_for(63, 64), SLOTS + 1);
        assert_eq!(list_for(64, 127), 63);
        assert_eq!(list_for(0, u64::MAX), 10 * SLOTS + 15);
        assert_eq!(slot_start(0, 10, 15), 15 << 60);
        assert_eq!(slot_start(5_000, 1, 3), 4_096 + 3 * 64);
        assert_eq!(slot_start(u64::MAX, 0, 0), u64::MAX - 63);
    }

    #[test]
    fn invariants_hold_under_random_operations() {
        let mut state = 0xDEAD_BEEF_u64;
        let mut wheel = Wheel::new();
        let mut keys = Vec::new();
        for step in 0..20_000u64 {
            let now = wheel.now();
            let r = xorshift(&mut state);
            let distance = match r % 5 {
                0 => r >> 8 & 63,
                1 => r >> 8 & 4_095,
                2 => 1 << (r >> 8 & 63),
                3 => r >> 8 & ((1 << 30) - 1),
                _ => r,
            };
            match xorshift(&mut state) % 10 {
                0..=3 => keys.push(wheel.insert(now.saturating_add(distance), step)),
                4 => keys.push(wheel.insert(now.saturating_sub(distance % 100), step)),
                5 if !keys.is_empty() => {
                    let key = keys[(r % keys.len() as u64) as usize];
                    wheel.cancel(key);
                }
                6 if !keys.is_empty() => {
                    let key = keys[(r % keys.len() as u64) as usize];
                    wheel.reset(key, now.saturating_add(distance));
                }
                _ => {
                    let target = now.saturating_add(distance % 5_000);
                    for _ in 0..r % 8 {
                        if wheel.poll(target).is_none() {
                            break;
                        }
                        wheel.check();
                    }
                }
            }
            wheel.check();
            if wheel.len() > 300 {
                // Keep `check` cheap: drain a lot.
                drain(&mut wheel, now.saturating_add(1 << 40));
                wheel.check();
            }
        }
    }
}
