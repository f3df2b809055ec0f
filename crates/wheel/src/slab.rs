//! The entry arena behind [`Wheel`](crate::Wheel).
//!
//! Every timer lives in one [`Entry`] of a `Vec`. Vacant entries form a LIFO
//! free list threaded through their `next` field, so insert and remove are
//! O(1) and never move other entries. Each entry carries a generation counter
//! that is bumped when the entry is freed; a [`Key`](crate::Key) stores the
//! generation it was issued with, which makes a stale key (its timer already
//! fired or was cancelled, the entry perhaps reused since) detectable.
//!
//! The arena knows nothing about the wheel: the `prev`/`next`/`list` fields
//! of an occupied entry are the intrusive list links that the wheel manages.

/// "No entry": the null link of the intrusive lists and of the free list.
pub(crate) const NIL: u32 = u32::MAX;

/// One timer, or a vacant place in the arena.
pub(crate) struct Entry<T> {
    /// The payload; `None` while the entry is vacant.
    pub(crate) value: Option<T>,
    /// Absolute deadline in ticks (meaningless while vacant).
    pub(crate) deadline: u64,
    /// Bumped every time the entry is freed.
    pub(crate) generation: u32,
    /// Previous entry in the same wheel list, or [`NIL`].
    pub(crate) prev: u32,
    /// Next entry in the same wheel list (or, while vacant, in the free
    /// list), or [`NIL`].
    pub(crate) next: u32,
    /// Which wheel list holds the entry (see `Wheel::lists`).
    pub(crate) list: u16,
}

/// A slab of [`Entry`]s with a free list and generation counters.
pub(crate) struct Slab<T> {
    entries: Vec<Entry<T>>,
    /// Head of the free list of vacant entries, or [`NIL`].
    free: u32,
    /// Number of occupied entries.
    len: usize,
}

impl<T> Slab<T> {
    /// An empty slab with room for `capacity` entries before reallocating.
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        Slab {
            entries: Vec::with_capacity(capacity),
            free: NIL,
            len: 0,
        }
    }

    /// Number of occupied entries.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Stores a new, unlinked entry and returns its index and generation.
    ///
    /// # Panics
    ///
    /// Panics if the slab would need more than `u32::MAX - 1` entries.
    pub(crate) fn insert(&mut self, deadline: u64, value: T) -> (u32, u32) {
        self.len += 1;
        if self.free != NIL {
            let index = self.free;
            let entry = &mut self.entries[index as usize];
            self.free = entry.next;
            entry.value = Some(value);
            entry.deadline = deadline;
            entry.prev = NIL;
            entry.next = NIL;
            return (index, entry.generation);
        }
        let index = u32::try_from(self.entries.len())
            .ok()
            .filter(|&index| index != NIL)
            .expect("synack-wheel: more than u32::MAX - 1 live timers");
        self.entries.push(Entry {
            value: Some(value),
            deadline,
            generation: 0,
            prev: NIL,
            next: NIL,
            list: 0,
        });
        (index, 0)
    }

    /// Frees an occupied entry (which the caller has already unlinked) and
    /// returns its payload. Its generation is bumped, invalidating old keys.
    pub(crate) fn remove(&mut self, index: u32) -> T {
        let free = self.free;
        let entry = &mut self.entries[index as usize];
        let value = entry.value.take().expect("removing a vacant entry");
        entry.generation = entry.generation.wrapping_add(1);
        entry.prev = NIL;
        entry.next = free;
        self.free = index;
        self.len -= 1;
        value
    }

    /// The occupied entry at `index` if its generation is `generation`.
    pub(crate) fn get(&self, index: u32, generation: u32) -> Option<&Entry<T>> {
        self.entries
            .get(index as usize)
            .filter(|entry| entry.generation == generation && entry.value.is_some())
    }

    /// Mutable variant of [`Slab::get`].
    pub(crate) fn get_mut(&mut self, index: u32, generation: u32) -> Option<&mut Entry<T>> {
        self.entries
            .get_mut(index as usize)
            .filter(|entry| entry.generation == generation && entry.value.is_some())
    }

    /// Drops every entry (and its payload); all outstanding keys become
    /// stale because generations keep counting.
    pub(crate) fn clear(&mut self) {
        self.free = NIL;
        for index in (0..self.entries.len()).rev() {
            let entry = &mut self.entries[index];
            if entry.value.take().is_some() {
                entry.generation = entry.generation.wrapping_add(1);
            }
            entry.prev = NIL;
            entry.next = self.free;
            // `index` fits: the slab never holds more than `u32::MAX - 1`.
            self.free = index as u32;
        }
        self.len = 0;
    }
}

impl<T> std::ops::Index<u32> for Slab<T> {
    type Output = Entry<T>;

    fn index(&self, index: u32) -> &Entry<T> {
        &self.entries[index as usize]
    }
}

impl<T> std::ops::IndexMut<u32> for Slab<T> {
    fn index_mut(&mut self, index: u32) -> &mut Entry<T> {
        &mut self.entries[index as usize]
    }
}
