//! IPv4 fragmentation and reassembly (RFC 791 §2.3, §3.2; RFC 815; RFC 1122
//! §3.3.2), sans-IO.
//!
//! [`Reassembler`] gathers the fragments of datagrams addressed to us and gives
//! back each whole datagram once its last hole is filled. It keeps, per
//! datagram, the received pieces as a sorted list of disjoint intervals (the
//! equivalent of RFC 815's hole list: the holes are the gaps between pieces),
//! so a fragment costs O(log n) in the pieces of its own datagram and never
//! looks at other datagrams. Overlaps other than exact duplicates drop the
//! whole datagram (RFC 5722's rule, applied to IPv4 as Linux does). Memory
//! held by all partial datagrams together is bounded; the oldest go first.
//!
//! [`Fragmenter`] splits an outbound datagram larger than the MTU (RFC 791
//! §3.2, "Fragmentation").
//!
//! Header fields are read and written as bytes at their RFC 791 §3.1 offsets.

use std::collections::hash_map::Entry as MapEntry;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Duration;

use crate::Instant;

/// The least IPv4 header (RFC 791 §3.1: IHL is at least 5 words).
const MIN_HEADER: usize = 20;
/// The largest IPv4 datagram, header included (the 16-bit Total Length field).
const MAX_DATAGRAM: usize = 65535;
/// Flags byte (offset 6): More Fragments (RFC 791 §3.1).
const MF: u8 = 0x20;
/// Flags byte (offset 6): the flag bits (reserved, DF, MF) above the offset.
const FLAG_BITS: u8 = 0xe0;

/// Bytes charged to each partial datagram besides its payload, for the
/// bookkeeping it causes: the hash map slot holding its key and `Entry`
/// (about 120 bytes, up to twice that at the map's lowest load factor), its
/// place in the timeout queue (32 bytes, up to four times that with growth
/// and stale slots, see `Reassembler::trim`), and allocator slack. Its header
/// is charged separately when the offset-0 fragment arrives. Roughly what
/// Linux charges per queue (`sizeof(struct ipq)` plus slab slack). With it, a
/// flood of tiny first fragments of distinct datagrams fills `max_bytes` after
/// `max_bytes / (ENTRY_OVERHEAD + PIECE_OVERHEAD + 8)` datagrams, which also
/// caps how many partial datagrams are held.
pub(crate) const ENTRY_OVERHEAD: usize = 512;

/// Bytes charged to each held fragment besides its payload: its slot in the
/// B-tree of pieces (a 4-byte key and a 24-byte `Vec`; nodes of 11 slots at
/// least half full, so up to about 64 bytes a slot) and the allocator's header
/// and rounding for the payload's own allocation (16–24 bytes). Like Linux's
/// `skb->truesize`, it makes a flood of 8-byte fragments cost what it costs.
pub(crate) const PIECE_OVERHEAD: usize = 96;

/// Once this many stale slots sit in the timeout queue, and more than live
/// ones, the queue is compacted (amortized O(1) per removal).
const COMPACT_MIN: usize = 64;

/// Identifies the datagram a fragment belongs to: RFC 791 §2.3, "the
/// identification field ... together with the source and destination address,
/// and the protocol fields".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    src: [u8; 4],
    dst: [u8; 4],
    protocol: u8,
    id: u16,
}

/// One partial datagram.
#[derive(Debug)]
struct Entry {
    /// Tells this entry apart from an earlier one of the same key in `order`.
    serial: u64,
    /// The header of the offset-0 fragment as received; empty until it arrived.
    header: Vec<u8>,
    /// Payload pieces by their offset in the datagram's payload; disjoint.
    pieces: BTreeMap<u32, Vec<u8>>,
    /// Payload length, fixed by the fragment with MF clear (RFC 791 §3.2).
    total: Option<usize>,
    /// The end of the furthest piece.
    max_end: usize,
    /// Payload bytes held (the pieces are disjoint, so the datagram is whole
    /// when this equals `total`).
    received: usize,
    /// Bytes charged to this entry (see [`ENTRY_OVERHEAD`], [`PIECE_OVERHEAD`]).
    bytes: usize,
}

impl Entry {
    /// The quote for an ICMP time exceeded (RFC 792: "the internet header plus
    /// the first 64 bits of the original datagram's data"), if the offset-0
    /// fragment arrived.
    fn quote(&self) -> Option<Vec<u8>> {
        if self.header.is_empty() {
            return None;
        }
        let first = self.pieces.get(&0)?;
        let n = first.len().min(8);
        let mut quote = Vec::with_capacity(self.header.len() + n);
        quote.extend_from_slice(&self.header);
        quote.extend_from_slice(&first[..n]);
        Some(quote)
    }
}

/// A partial datagram's place in creation order, which is deadline order.
#[derive(Debug, Clone, Copy)]
struct Slot {
    deadline: Instant,
    key: Key,
    serial: u64,
}

/// Why [`Reassembler::push`] rejected a fragment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DropReason {
    /// The fragment alone is invalid: not a fragment at all, bad header
    /// lengths, an empty payload, an MF fragment whose payload is not a
    /// multiple of 8 bytes (RFC 791 §3.2), or an end beyond 65 535. Its
    /// datagram, if held, is dropped too. Counted in `malformed`.
    Malformed,
    /// The fragment lies beyond the end fixed by the last fragment, is a
    /// second last fragment with another end, or is a last fragment ending
    /// before data already held. The datagram is dropped. Counted in
    /// `malformed`.
    BeyondEnd,
    /// The fragment overlaps one held and is not its exact duplicate. The
    /// datagram is dropped. Counted in `overlaps`.
    Overlap,
    /// The datagram would exceed 65 535 bytes with its header. Dropped.
    /// Counted in `too_big`.
    TooBig,
    /// The fragment's datagram cannot fit in `max_bytes` even alone. The
    /// fragment and its datagram are dropped. Counted in `evicted`.
    Memory,
}

/// What [`Reassembler::push`] made of a fragment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Push {
    /// Held (or an exact duplicate, ignored); the datagram is not whole yet.
    Pending,
    /// The fragment completed its datagram: here it is, whole.
    Reassembled(Vec<u8>),
    /// The fragment was rejected.
    Dropped(DropReason),
}

/// Counters of a [`Reassembler`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ReassemblyStats {
    /// Calls to [`Reassembler::push`].
    pub fragments_received: u64,
    /// Datagrams reassembled.
    pub reassembled: u64,
    /// Partial datagrams dropped by [`Reassembler::expire`].
    pub timed_out: u64,
    /// Datagrams dropped for overlapping fragments.
    pub overlaps: u64,
    /// Datagrams dropped for memory: the oldest evicted to make room, and
    /// those (or lone fragments) that could not fit at all.
    pub evicted: u64,
    /// Fragments rejected as [`DropReason::Malformed`] or
    /// [`DropReason::BeyondEnd`].
    pub malformed: u64,
    /// Datagrams dropped for exceeding 65 535 bytes.
    pub too_big: u64,
}

/// The header fields of a fragment that reassembly needs.
struct Fragment<'a> {
    key: Key,
    header: &'a [u8],
    payload: &'a [u8],
    /// Payload offset in bytes.
    start: usize,
    more: bool,
}

/// Reads a fragment's header. `None` if it is not a well-formed fragment.
fn parse(packet: &[u8]) -> Option<Fragment<'_>> {
    if packet.len() < MIN_HEADER || packet[0] >> 4 != 4 {
        return None;
    }
    let hl = usize::from(packet[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([packet[2], packet[3]]));
    if !(MIN_HEADER..=packet.len()).contains(&hl) || total != packet.len() {
        return None;
    }
    let more = packet[6] & MF != 0;
    let start = usize::from(u16::from_be_bytes([packet[6], packet[7]]) & 0x1fff) * 8;
    let key = Key {
        src: [packet[12], packet[13], packet[14], packet[15]],
        dst: [packet[16], packet[17], packet[18], packet[19]],
        protocol: packet[9],
        id: u16::from_be_bytes([packet[4], packet[5]]),
    };
    let (header, payload) = packet.split_at(hl);
    // Not a fragment, nothing in it, or (RFC 791 §3.2: every fragment but
    // the last carries a multiple of 8 octets) a ragged middle.
    if (!more && start == 0)
        || payload.is_empty()
        || (more && !payload.len().is_multiple_of(8))
        || start + payload.len() > MAX_DATAGRAM
    {
        return None;
    }
    Some(Fragment {
        key,
        header,
        payload,
        start,
        more,
    })
}

/// The Internet checksum of an IPv4 header (RFC 791 §3.1, RFC 1071).
fn header_checksum(header: &[u8]) -> u16 {
    crate::checksum::ipv4_sum(header)
}

/// Zeroes the header checksum, then fills it in if `fill`.
fn set_checksum(header: &mut [u8], fill: bool) {
    header[10] = 0;
    header[11] = 0;
    if fill {
        let sum = header_checksum(header);
        header[10..12].copy_from_slice(&sum.to_be_bytes());
    }
}

/// Reassembles IPv4 datagrams from their fragments (RFC 791 §3.2,
/// "Reassembly"; RFC 815; RFC 1122 §3.3.2).
///
/// - Fragments belong together by (source, destination, protocol,
///   identification) (RFC 791 §2.3).
/// - An exact duplicate of a held fragment (same range, same bytes) is
///   ignored. Any other overlap drops the whole datagram and forgets it
///   (RFC 5722 §4's rule applied to IPv4, as Linux does): later fragments of
///   it start a new partial datagram, which completes only if every piece
///   comes again and otherwise times out.
/// - The fragment with MF clear fixes the length; data beyond it, or another
///   last fragment with a different end, drops the datagram.
/// - Each partial datagram is dropped `timeout` after its first fragment
///   arrived (RFC 1122 §3.3.2: a fixed value, not the TTL).
/// - All partial datagrams together hold at most `max_bytes`, as charged
///   ([`ENTRY_OVERHEAD`] per datagram, payload plus [`PIECE_OVERHEAD`] per
///   fragment, plus the first fragment's header): the oldest are evicted to
///   make room.
#[derive(Debug)]
pub(crate) struct Reassembler {
    timeout: Duration,
    max_bytes: usize,
    entries: HashMap<Key, Entry>,
    /// Partial datagrams in creation order, hence deadline order. Slots whose
    /// entry is gone (completed or dropped) stay until they reach the front or
    /// the queue is compacted; the front slot is always live.
    order: VecDeque<Slot>,
    /// Slots in `order` whose entry is gone.
    stale: usize,
    next_serial: u64,
    memory: usize,
    stats: ReassemblyStats,
}

impl Reassembler {
    /// A reassembler dropping partial datagrams `timeout` after their first
    /// fragment (RFC 1122 §3.3.2 suggests 60 s to 120 s; the caller chooses)
    /// and holding at most `max_bytes` for all of them together, as charged
    /// (see the type's docs).
    pub(crate) fn new(timeout: Duration, max_bytes: usize) -> Reassembler {
        Reassembler {
            timeout,
            max_bytes,
            entries: HashMap::new(),
            order: VecDeque::new(),
            stale: 0,
            next_serial: 0,
            memory: 0,
            stats: ReassemblyStats::default(),
        }
    }

    /// Takes one fragment: a whole IPv4 datagram whose header the caller
    /// validated (version 4, IHL, total length equal to `packet.len()`, header
    /// checksum) with MF set or a nonzero fragment offset.
    ///
    /// Returns [`Push::Reassembled`] with the whole datagram once every piece
    /// arrived: the offset-0 fragment's header (options included) with MF
    /// cleared, offset 0, the total length set and the checksum recomputed,
    /// followed by the payload. Returns [`Push::Pending`] while holes remain
    /// (or for an exact duplicate), [`Push::Dropped`] if the fragment was
    /// rejected (see [`DropReason`] for what else that drops).
    pub(crate) fn push(&mut self, now: Instant, packet: &[u8]) -> Push {
        self.stats.fragments_received += 1;
        let Some(frag) = parse(packet) else {
            // A malformed fragment of a held datagram marks it corrupt (as
            // Linux's `ip_frag_queue` does); drop it if the key is readable.
            if packet.len() >= MIN_HEADER {
                let key = Key {
                    src: [packet[12], packet[13], packet[14], packet[15]],
                    dst: [packet[16], packet[17], packet[18], packet[19]],
                    protocol: packet[9],
                    id: u16::from_be_bytes([packet[4], packet[5]]),
                };
                self.remove(&key);
            }
            return self.reject(DropReason::Malformed);
        };
        let key = frag.key;
        let start = frag.start;
        let len = frag.payload.len();
        let end = start + len;
        let is_first = start == 0;
        let header_cost = if is_first { frag.header.len() } else { 0 };
        let cost = len + PIECE_OVERHEAD + header_cost;

        let Some(entry) = self.entries.get(&key) else {
            // A new partial datagram.
            if MIN_HEADER.max(header_cost) + end > MAX_DATAGRAM {
                return self.reject(DropReason::TooBig);
            }
            let charge = ENTRY_OVERHEAD + cost;
            if charge > self.max_bytes {
                return self.reject(DropReason::Memory);
            }
            self.make_room(charge, None);
            let serial = self.next_serial;
            self.next_serial += 1;
            let mut pieces = BTreeMap::new();
            pieces.insert(start as u32, frag.payload.to_vec());
            let entry = Entry {
                serial,
                header: if is_first {
                    frag.header.to_vec()
                } else {
                    Vec::new()
                },
                pieces,
                total: (!frag.more).then_some(end),
                max_end: end,
                received: len,
                bytes: charge,
            };
            self.entries.insert(key, entry);
            // RFC 1122 §3.3.2: the timer starts with the first fragment to
            // arrive. Deadlines never go backwards, even if `now` does, so
            // `order` stays sorted by deadline.
            let mut deadline = now + self.timeout;
            if let Some(last) = self.order.back() {
                deadline = deadline.max(last.deadline);
            }
            self.order.push_back(Slot {
                deadline,
                key,
                serial,
            });
            self.memory += charge;
            return Push::Pending;
        };

        // RFC 791 §3.2: the last fragment fixes the length; nothing may lie
        // beyond it, and it cannot change.
        let beyond = match entry.total {
            Some(total) => end > total || (!frag.more && end != total),
            None => !frag.more && entry.max_end > end,
        };
        if beyond {
            self.remove(&key);
            return self.reject(DropReason::BeyondEnd);
        }
        // Overlap (RFC 5722 §4 applied to IPv4): the piece with the greatest
        // start below our end is the only one that can overlap us, as the
        // held pieces are disjoint.
        let mut duplicate = false;
        if let Some((&s, held)) = entry.pieces.range(..end as u32).next_back() {
            let s = s as usize;
            if s + held.len() > start {
                if s == start && held.as_slice() == frag.payload {
                    duplicate = true;
                } else {
                    self.remove(&key);
                    return self.reject(DropReason::Overlap);
                }
            }
        }
        let header_len = if entry.header.is_empty() {
            MIN_HEADER.max(header_cost)
        } else {
            entry.header.len()
        };
        if header_len + entry.max_end.max(end) > MAX_DATAGRAM {
            self.remove(&key);
            return self.reject(DropReason::TooBig);
        }
        if !duplicate {
            if entry.bytes + cost > self.max_bytes {
                self.remove(&key);
                return self.reject(DropReason::Memory);
            }
            let serial = entry.serial;
            self.make_room(cost, Some((key, serial)));
        }
        let Some(entry) = self.entries.get_mut(&key) else {
            // Unreachable: `make_room` spares this entry.
            return self.reject(DropReason::Memory);
        };
        if !frag.more {
            entry.total = Some(end);
        }
        if !duplicate {
            entry.pieces.insert(start as u32, frag.payload.to_vec());
            if is_first {
                entry.header = frag.header.to_vec();
            }
            entry.max_end = entry.max_end.max(end);
            entry.received += len;
            entry.bytes += cost;
            self.memory += cost;
        }
        if entry.total != Some(entry.received) {
            return Push::Pending;
        }
        // Every hole is filled (RFC 815): the pieces are disjoint, lie within
        // the total, and add up to it.
        let Some(entry) = self.remove(&key) else {
            return Push::Pending;
        };
        self.stats.reassembled += 1;
        Push::Reassembled(Self::assemble(entry))
    }

    /// Joins a complete entry's header and pieces into one datagram.
    fn assemble(entry: Entry) -> Vec<u8> {
        let hl = entry.header.len();
        let total = hl + entry.received;
        let mut datagram = Vec::with_capacity(total);
        datagram.extend_from_slice(&entry.header);
        for piece in entry.pieces.values() {
            datagram.extend_from_slice(piece);
        }
        // RFC 791 §3.2: the reassembled header is the first fragment's, with
        // MF cleared, offset zero and the whole length.
        datagram[2..4].copy_from_slice(&(total as u16).to_be_bytes());
        datagram[6] &= FLAG_BITS & !MF;
        datagram[7] = 0;
        set_checksum(&mut datagram[..hl], true);
        datagram
    }

    /// Counts a rejection.
    fn reject(&mut self, reason: DropReason) -> Push {
        let counter = match reason {
            DropReason::Malformed | DropReason::BeyondEnd => &mut self.stats.malformed,
            DropReason::Overlap => &mut self.stats.overlaps,
            DropReason::TooBig => &mut self.stats.too_big,
            DropReason::Memory => &mut self.stats.evicted,
        };
        *counter += 1;
        Push::Dropped(reason)
    }

    /// Removes an entry other than through its slot, which goes stale.
    fn remove(&mut self, key: &Key) -> Option<Entry> {
        let entry = self.entries.remove(key)?;
        self.memory -= entry.bytes;
        self.stale += 1;
        self.trim();
        Some(entry)
    }

    /// Pops stale slots off the front of `order` (so its front is live), and
    /// compacts it when stale slots outnumber live ones, so it holds at most
    /// about twice as many slots as there are entries.
    fn trim(&mut self) {
        while let Some(slot) = self.order.front() {
            if self.is_live(slot) {
                break;
            }
            self.order.pop_front();
            self.stale = self.stale.saturating_sub(1);
        }
        if self.stale > COMPACT_MIN && self.stale > self.entries.len() {
            let entries = &self.entries;
            self.order.retain(|slot| {
                entries
                    .get(&slot.key)
                    .is_some_and(|e| e.serial == slot.serial)
            });
            self.stale = 0;
        }
        // Give back what a past flood left behind.
        if self.entries.capacity() > 64 && self.entries.len() * 4 < self.entries.capacity() {
            self.entries.shrink_to(self.entries.len() * 2);
        }
        if self.order.capacity() > 64 && self.order.len() * 4 < self.order.capacity() {
            self.order.shrink_to(self.order.len() * 2);
        }
    }

    fn is_live(&self, slot: &Slot) -> bool {
        self.entries
            .get(&slot.key)
            .is_some_and(|e| e.serial == slot.serial)
    }

    /// Evicts the oldest partial datagrams, sparing `keep`, until `need` more
    /// bytes fit within `max_bytes`. The caller checked that `need` plus what
    /// `keep` holds fits, so this always succeeds.
    fn make_room(&mut self, need: usize, keep: Option<(Key, u64)>) {
        let mut kept = None;
        while self.memory + need > self.max_bytes {
            let Some(slot) = self.order.pop_front() else {
                break;
            };
            if keep == Some((slot.key, slot.serial)) {
                kept = Some(slot);
                continue;
            }
            match self.entries.entry(slot.key) {
                MapEntry::Occupied(e) if e.get().serial == slot.serial => {
                    self.memory -= e.remove().bytes;
                    self.stats.evicted += 1;
                }
                _ => self.stale = self.stale.saturating_sub(1),
            }
        }
        if let Some(slot) = kept {
            self.order.push_front(slot);
        }
        self.trim();
    }

    /// The earliest deadline of any partial datagram, in O(1).
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.order.front().map(|slot| slot.deadline)
    }

    /// Drops every partial datagram whose deadline is at or before `now`
    /// (RFC 1122 §3.3.2). For each one whose offset-0 fragment had arrived,
    /// returns that fragment's header and the first 8 bytes of its payload:
    /// the quote of an ICMP time exceeded, code 1, "fragment reassembly time
    /// exceeded" (RFC 792; RFC 1122 §3.3.2 says to send it only then).
    pub(crate) fn expire(&mut self, now: Instant) -> Vec<Vec<u8>> {
        let mut quotes = Vec::new();
        while let Some(slot) = self.order.front().copied() {
            if slot.deadline > now {
                break;
            }
            self.order.pop_front();
            match self.entries.entry(slot.key) {
                MapEntry::Occupied(e) if e.get().serial == slot.serial => {
                    let entry = e.remove();
                    self.memory -= entry.bytes;
                    self.stats.timed_out += 1;
                    quotes.extend(entry.quote());
                }
                _ => self.stale = self.stale.saturating_sub(1),
            }
        }
        self.trim();
        quotes
    }

    /// Bytes held now by all partial datagrams, as charged (see the type's
    /// docs); never more than `max_bytes`.
    pub(crate) fn memory(&self) -> usize {
        self.memory
    }

    /// Partial datagrams held now.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    #[cfg(test)]
    /// No partial datagram is held.
    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The counters.
    pub(crate) fn stats(&self) -> ReassemblyStats {
        self.stats
    }
}

/// Splits an IPv4 datagram larger than the MTU into fragments (RFC 791 §3.2,
/// "Fragmentation"; RFC 791 §2.3, "Fragmentation").
///
/// Each fragment but the last carries a multiple of 8 payload bytes; the first
/// carries every option, the others only those whose "copied" flag is set
/// (RFC 791 §3.1, "Options"), padded with End of Option List to a 32-bit
/// boundary; all but the last have MF set, the last keeps the datagram's MF
/// (so a fragment can be fragmented again); offsets count from the
/// datagram's own offset. Reserved and DF bits are copied as they are.
#[derive(Debug)]
pub(crate) struct Fragmenter {
    datagram: Vec<u8>,
    mtu: usize,
    /// The datagram's header length.
    hl: usize,
    /// The header of every fragment but the first: the fixed part and the
    /// copied options.
    later: [u8; 60],
    later_len: usize,
    /// Index in `datagram` of the next payload byte to send.
    pos: usize,
    /// The first fragment was written.
    started: bool,
}

impl Fragmenter {
    /// Prepares to fragment `datagram`, a whole IPv4 datagram (header and
    /// payload; DF clear, larger than `mtu`), for an `mtu` of at least 68
    /// bytes (RFC 791 §3.2: every module forwards 68 octets unfragmented).
    /// Does not copy the datagram. A datagram that fits the MTU comes out as
    /// one fragment, unchanged but for the checksum; one whose header cannot
    /// be read gives no fragments.
    pub(crate) fn new(datagram: Vec<u8>, mtu: usize) -> Fragmenter {
        let mut later = [0u8; 60];
        let valid = datagram.len() >= MIN_HEADER
            && (MIN_HEADER..=datagram.len()).contains(&(usize::from(datagram[0] & 0x0f) * 4));
        let (hl, later_len) = if valid {
            let hl = usize::from(datagram[0] & 0x0f) * 4;
            (hl, Self::copied_options(&datagram[..hl], &mut later))
        } else {
            (datagram.len(), 0)
        };
        Fragmenter {
            pos: hl,
            started: !valid,
            datagram,
            mtu,
            hl,
            later,
            later_len,
        }
    }

    /// Writes into `later` the header for fragments after the first: the fixed
    /// header, then only the options with the copied flag (the top bit of the
    /// option type, RFC 791 §3.1), padded to a multiple of 4 with zeros (End
    /// of Option List). Returns its length.
    fn copied_options(header: &[u8], later: &mut [u8; 60]) -> usize {
        later[..MIN_HEADER].copy_from_slice(&header[..MIN_HEADER]);
        let mut len = MIN_HEADER;
        let mut i = MIN_HEADER;
        while i < header.len() {
            match header[i] {
                // End of Option List.
                0 => break,
                // No Operation: one byte, not copied.
                1 => i += 1,
                kind => {
                    let Some(&size) = header.get(i + 1) else {
                        break;
                    };
                    let size = usize::from(size);
                    if size < 2 || i + size > header.len() {
                        break; // A malformed option ends the walk.
                    }
                    if kind & 0x80 != 0 {
                        later[len..len + size].copy_from_slice(&header[i..i + size]);
                        len += size;
                    }
                    i += size;
                }
            }
        }
        let padded = len.next_multiple_of(4);
        later[len..padded].fill(0);
        later[0] = (later[0] & 0xf0) | (padded / 4) as u8;
        padded
    }

    /// Writes the next fragment into `buf` and returns its length, or `None`
    /// when every fragment was written. `buf` should hold `mtu` bytes; a
    /// shorter one lowers the MTU for this fragment (and gives `None` if not
    /// even 8 payload bytes fit). Fills the header checksum if
    /// `fill_checksum`, else leaves it zero for the device to fill.
    pub(crate) fn next(&mut self, buf: &mut [u8], fill_checksum: bool) -> Option<usize> {
        if self.is_done() {
            return None;
        }
        let header = if self.started {
            &self.later[..self.later_len]
        } else {
            &self.datagram[..self.hl]
        };
        let hl = header.len();
        let limit = self.mtu.min(buf.len());
        let remaining = self.datagram.len() - self.pos;
        let last = hl + remaining <= limit;
        // RFC 791 §3.2: all but the last fragment carry a multiple of 8 bytes.
        let n = if last {
            remaining
        } else {
            limit.saturating_sub(hl) & !7
        };
        if n == 0 && !last {
            return None;
        }
        buf[..hl].copy_from_slice(header);
        buf[hl..hl + n].copy_from_slice(&self.datagram[self.pos..self.pos + n]);
        let flags = self.datagram[6];
        let base = u16::from_be_bytes([flags, self.datagram[7]]) & 0x1fff;
        let offset = base.wrapping_add(((self.pos - self.hl) / 8) as u16) & 0x1fff;
        let more = if last { flags & MF } else { MF };
        buf[2..4].copy_from_slice(&((hl + n) as u16).to_be_bytes());
        buf[6] = (flags & FLAG_BITS & !MF) | more | (offset >> 8) as u8;
        buf[7] = offset as u8;
        set_checksum(&mut buf[..hl], fill_checksum);
        self.pos += n;
        self.started = true;
        Some(hl + n)
    }

    /// Every fragment was written.
    pub(crate) fn is_done(&self) -> bool {
        self.started && self.pos >= self.datagram.len()
    }

    #[cfg(test)]
    /// Gives back the datagram's buffer, for reuse.
    pub(crate) fn into_buffer(self) -> Vec<u8> {
        self.datagram
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SRC: [u8; 4] = [192, 0, 2, 1];
    const DST: [u8; 4] = [192, 0, 2, 2];
    const T60: Duration = Duration::from_secs(60);

    impl Reassembler {
        /// Checks every internal invariant.
        fn check(&self) {
            let sum: usize = self.entries.values().map(|e| e.bytes).sum();
            assert_eq!(sum, self.memory, "memory is the sum of the entries");
            assert!(self.memory <= self.max_bytes, "within the bound");
            assert_eq!(self.entries.is_empty(), self.memory == 0);
            let live = self.order.iter().filter(|s| self.is_live(s)).count();
            assert_eq!(live, self.entries.len(), "each entry has one live slot");
            assert_eq!(self.order.len() - live, self.stale, "stale counted");
            if let Some(front) = self.order.front() {
                assert!(self.is_live(front), "front is live");
            }
            assert!(self.order.len() <= 2 * self.entries.len() + COMPACT_MIN + 1);
            let slots = self.order.iter().collect::<Vec<_>>();
            assert!(slots.windows(2).all(|w| w[0].deadline <= w[1].deadline));
            for entry in self.entries.values() {
                let mut pos = 0;
                let mut received = 0;
                let mut bytes = ENTRY_OVERHEAD + entry.header.len();
                for (&s, piece) in &entry.pieces {
                    assert!(s as usize >= pos, "disjoint");
                    pos = s as usize + piece.len();
                    received += piece.len();
                    bytes += piece.len() + PIECE_OVERHEAD;
                }
                assert_eq!(pos, entry.max_end);
                assert_eq!(received, entry.received);
                assert_eq!(bytes, entry.bytes);
                assert!(entry.total.is_none_or(|t| t >= pos && t > received));
                assert_eq!(entry.header.is_empty(), !entry.pieces.contains_key(&0));
            }
        }
    }

    /// A header-valid datagram: `options` (a multiple of 4 bytes), then
    /// `payload`.
    fn datagram(id: u16, protocol: u8, options: &[u8], payload: &[u8]) -> Vec<u8> {
        assert!(options.len().is_multiple_of(4) && options.len() <= 40);
        let hl = MIN_HEADER + options.len();
        let total = hl + payload.len();
        let mut d = vec![0u8; total];
        d[0] = 0x40 | (hl / 4) as u8;
        d[1] = 0x10; // DSCP/ECN: kept through reassembly.
        d[2..4].copy_from_slice(&(total as u16).to_be_bytes());
        d[4..6].copy_from_slice(&id.to_be_bytes());
        d[8] = 64;
        d[9] = protocol;
        d[12..16].copy_from_slice(&SRC);
        d[16..20].copy_from_slice(&DST);
        d[MIN_HEADER..hl].copy_from_slice(options);
        d[hl..].copy_from_slice(payload);
        set_checksum(&mut d[..hl], true);
        d
    }

    fn payload(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31) ^ (i >> 8) as u8 ^ seed)
            .collect()
    }

    /// A fragment of `id` carrying `payload` at byte `start`, header `options`.
    fn fragment(id: u16, start: usize, more: bool, options: &[u8], payload: &[u8]) -> Vec<u8> {
        let mut f = datagram(id, 17, options, payload);
        let hl = MIN_HEADER + options.len();
        let units = (start / 8) as u16;
        f[6] = (if more { MF } else { 0 }) | (units >> 8) as u8;
        f[7] = units as u8;
        set_checksum(&mut f[..hl], true);
        f
    }

    /// Splits `data` (a whole datagram's payload, id `id`) at the `cuts`
    /// (multiples of 8) into fragments with 20-byte headers.
    fn split(id: u16, data: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
        let mut bounds = vec![0];
        bounds.extend_from_slice(cuts);
        bounds.push(data.len());
        bounds
            .windows(2)
            .map(|w| fragment(id, w[0], w[1] != data.len(), &[], &data[w[0]..w[1]]))
            .collect()
    }

    fn fragment_all(datagram: &[u8], mtu: usize, fill: bool) -> Vec<Vec<u8>> {
        let mut f = Fragmenter::new(datagram.to_vec(), mtu);
        let mut buf = vec![0u8; mtu];
        let mut out = Vec::new();
        while let Some(n) = f.next(&mut buf, fill) {
            out.push(buf[..n].to_vec());
        }
        assert!(f.is_done());
        assert_eq!(f.into_buffer(), datagram, "the buffer comes back unchanged");
        out
    }

    /// Feeds `frags` in order; the last must complete, the others pend.
    fn feed(r: &mut Reassembler, frags: &[Vec<u8>]) -> Vec<u8> {
        let (last, rest) = frags.split_last().unwrap();
        for f in rest {
            assert_eq!(r.push(Instant::ZERO, f), Push::Pending);
            r.check();
        }
        let Push::Reassembled(d) = r.push(Instant::ZERO, last) else {
            panic!("not reassembled");
        };
        r.check();
        d
    }

    /// A header-valid whole datagram: every reassembled one must be.
    fn assert_valid(d: &[u8]) {
        assert!(d.len() >= MIN_HEADER);
        assert_eq!(d[0] >> 4, 4);
        let hl = usize::from(d[0] & 0x0f) * 4;
        assert!(hl >= MIN_HEADER && hl <= d.len());
        assert_eq!(usize::from(u16::from_be_bytes([d[2], d[3]])), d.len());
        assert_eq!(d[6] & (MF | 0x1f), 0, "MF clear");
        assert_eq!(d[7], 0, "offset zero");
        assert_eq!(header_checksum(&d[..hl]), 0, "checksum valid");
    }

    #[test]
    fn in_order() {
        let data = payload(100, 1);
        let whole = datagram(7, 17, &[], &data);
        let mut r = Reassembler::new(T60, 1 << 20);
        let got = feed(&mut r, &split(7, &data, &[24, 48, 96]));
        assert_eq!(got, whole);
        assert!(r.is_empty());
        assert_eq!(r.memory(), 0);
        assert_eq!(r.poll_timeout(), None);
        let s = r.stats();
        assert_eq!((s.fragments_received, s.reassembled), (4, 1));
    }

    #[test]
    fn reversed() {
        let data = payload(203, 2);
        let whole = datagram(8, 17, &[], &data);
        let mut frags = split(8, &data, &[8, 64, 72, 200]);
        frags.reverse();
        let mut r = Reassembler::new(T60, 1 << 20);
        assert_eq!(feed(&mut r, &frags), whole);
        assert_eq!(r.len(), 0);
    }

    #[test]
    fn shuffled() {
        let data = payload(77, 3);
        let whole = datagram(9, 17, &[], &data);
        let frags = split(9, &data, &[16, 40, 64]);
        // All 24 orders of four fragments.
        let mut order = [0usize, 1, 2, 3];
        let mut seen = 0;
        permute(&mut order, 0, &mut |p| {
            let mut r = Reassembler::new(T60, 1 << 20);
            let in_order: Vec<_> = p.iter().map(|&i| frags[i].clone()).collect();
            assert_eq!(feed(&mut r, &in_order), whole, "order {p:?}");
            seen += 1;
        });
        assert_eq!(seen, 24);
        // Larger, pseudo-random orders.
        let data = payload(1000, 4);
        let whole = datagram(10, 17, &[], &data);
        let cuts: Vec<usize> = (1..20).map(|i| i * 48).collect();
        let mut frags = split(10, &data, &cuts);
        let mut seed = 12345u64;
        for _ in 0..20 {
            for i in (1..frags.len()).rev() {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                frags.swap(i, (seed >> 33) as usize % (i + 1));
            }
            let mut r = Reassembler::new(T60, 1 << 20);
            assert_eq!(feed(&mut r, &frags), whole);
        }
    }

    fn permute(v: &mut [usize; 4], k: usize, f: &mut dyn FnMut(&[usize; 4])) {
        if k == v.len() {
            return f(v);
        }
        for i in k..v.len() {
            v.swap(k, i);
            permute(v, k + 1, f);
            v.swap(k, i);
        }
    }

    #[test]
    fn duplicated_fragments() {
        let data = payload(120, 5);
        let whole = datagram(11, 17, &[], &data);
        let frags = split(11, &data, &[40, 80]);
        let mut r = Reassembler::new(T60, 1 << 20);
        for f in [&frags[1], &frags[0], &frags[1], &frags[0], &frags[0]] {
            assert_eq!(r.push(Instant::ZERO, f), Push::Pending);
            r.check();
        }
        assert_eq!(r.push(Instant::ZERO, &frags[2]), Push::Reassembled(whole));
        assert_eq!(r.stats().overlaps, 0);
        // A late duplicate starts a new partial datagram, which times out.
        assert_eq!(r.push(Instant::ZERO, &frags[1]), Push::Pending);
        assert_eq!(r.len(), 1);
    }

    #[test]
    fn exact_duplicate_accepted() {
        let data = payload(64, 6);
        let frags = split(12, &data, &[32]);
        let mut r = Reassembler::new(T60, 1 << 20);
        assert_eq!(r.push(Instant::ZERO, &frags[0]), Push::Pending);
        let held = r.memory();
        assert_eq!(held, ENTRY_OVERHEAD + 20 + 32 + PIECE_OVERHEAD);
        // Same range and bytes; a different header (TTL) does not matter.
        let mut dup = frags[0].clone();
        dup[8] = 3;
        set_checksum(&mut dup[..20], true);
        assert_eq!(r.push(Instant::from_millis(5), &dup), Push::Pending);
        assert_eq!(r.memory(), held, "nothing more held");
        assert_eq!(r.len(), 1);
        let Push::Reassembled(d) = r.push(Instant::ZERO, &frags[1]) else {
            panic!()
        };
        assert_eq!(d, datagram(12, 17, &[], &data), "the first header kept");
        let s = r.stats();
        assert_eq!((s.overlaps, s.malformed, s.reassembled), (0, 0, 1));
    }

    /// Holds `held`, then pushes `new`: must drop the whole datagram.
    fn assert_overlap_drops(held: &[(usize, usize, bool)], new: (usize, usize, u8)) {
        let data = payload(256, 7);
        let mut r = Reassembler::new(T60, 1 << 20);
        for &(s, e, more) in held {
            let f = fragment(13, s, more, &[], &data[s..e]);
            assert_eq!(r.push(Instant::ZERO, &f), Push::Pending);
        }
        // Another datagram, which must not be touched.
        r.push(Instant::ZERO, &fragment(99, 0, true, &[], &data[..8]));
        let other = ENTRY_OVERHEAD + 20 + 8 + PIECE_OVERHEAD;
        let (s, e, flip) = new;
        let mut bytes = data[s..e].to_vec();
        bytes[0] ^= flip;
        let f = fragment(13, s, true, &[], &bytes);
        assert_eq!(
            r.push(Instant::ZERO, &f),
            Push::Dropped(DropReason::Overlap)
        );
        r.check();
        assert_eq!(r.stats().overlaps, 1);
        assert_eq!((r.len(), r.memory()), (1, other), "nothing of it kept");
        // What comes later starts afresh; the pieces dropped do not count.
        let last = fragment(13, 248, false, &[], &data[248..]);
        assert_eq!(r.push(Instant::ZERO, &last), Push::Pending);
        assert_eq!(r.len(), 2);
        r.check();
    }

    #[test]
    fn overlap_partial() {
        assert_overlap_drops(&[(0, 16, true), (32, 48, true)], (8, 24, 0));
        assert_overlap_drops(&[(16, 32, true)], (24, 40, 0));
        assert_overlap_drops(&[(16, 32, true)], (8, 24, 0));
    }

    #[test]
    fn overlap_containment() {
        // The new fragment contains a held one, and the reverse.
        assert_overlap_drops(&[(16, 24, true)], (8, 32, 0));
        assert_overlap_drops(&[(8, 40, true)], (16, 24, 0));
        // Same start, longer or shorter.
        assert_overlap_drops(&[(8, 16, true)], (8, 24, 0));
        assert_overlap_drops(&[(8, 24, true)], (8, 16, 0));
    }

    #[test]
    fn overlap_same_range_different_bytes() {
        assert_overlap_drops(&[(0, 8, true), (8, 16, true)], (8, 16, 0xff));
    }

    #[test]
    fn timed_out() {
        let data = payload(48, 8);
        let mut r = Reassembler::new(T60, 1 << 20);
        let t0 = Instant::from_millis(1000);
        // Datagram 1: offset 0 arrives, at t0.
        let first = fragment(1, 0, true, &[], &data[..24]);
        r.push(t0, &first);
        // Datagram 2: only a later fragment, at t0 + 1 s.
        r.push(
            t0 + Duration::from_secs(1),
            &fragment(2, 24, false, &[], &data[24..]),
        );
        // A later fragment of 1 does not move its deadline.
        r.push(
            t0 + Duration::from_secs(30),
            &fragment(1, 32, false, &[], &data[32..]),
        );
        assert_eq!(r.poll_timeout(), Some(t0 + T60));
        assert!(r.expire(t0 + (T60 - Duration::from_nanos(1))).is_empty());
        assert_eq!(r.len(), 2);
        let quotes = r.expire(t0 + T60);
        let mut quote = first[..20].to_vec();
        quote.extend_from_slice(&data[..8]);
        assert_eq!(quotes, vec![quote], "header and 8 payload bytes");
        assert_eq!(r.len(), 1);
        assert_eq!(r.poll_timeout(), Some(t0 + T60 + Duration::from_secs(1)));
        // No offset-0 fragment: no quote, but dropped all the same.
        assert!(r.expire(t0 + Duration::from_secs(100)).is_empty());
        assert_eq!((r.len(), r.memory(), r.poll_timeout()), (0, 0, None));
        assert_eq!(r.stats().timed_out, 2);
        r.check();
    }

    #[test]
    fn quote_keeps_options() {
        // The quote is the offset-0 fragment's whole header, options too.
        let opts = [0x94, 4, 0, 0]; // Router Alert, copied.
        let f = fragment(3, 0, true, &opts, &payload(16, 1));
        let mut r = Reassembler::new(T60, 1 << 20);
        r.push(Instant::ZERO, &f);
        let quotes = r.expire(Instant::ZERO + T60);
        assert_eq!(quotes, vec![f[..32].to_vec()]);
    }

    #[test]
    fn past_fixed_end() {
        let data = payload(64, 9);
        let mut r = Reassembler::new(T60, 1 << 20);
        r.push(Instant::ZERO, &fragment(4, 0, true, &[], &data[..16]));
        r.push(Instant::ZERO, &fragment(4, 32, false, &[], &data[32..40]));
        // Beyond the end, with MF set.
        let beyond = fragment(4, 40, true, &[], &data[40..48]);
        assert_eq!(
            r.push(Instant::ZERO, &beyond),
            Push::Dropped(DropReason::BeyondEnd)
        );
        assert_eq!((r.len(), r.memory()), (0, 0));
        // A second, different last fragment.
        r.push(Instant::ZERO, &fragment(5, 32, false, &[], &data[32..40]));
        let other_end = fragment(5, 16, false, &[], &data[16..24]);
        assert_eq!(
            r.push(Instant::ZERO, &other_end),
            Push::Dropped(DropReason::BeyondEnd)
        );
        // A last fragment ending before data held.
        r.push(Instant::ZERO, &fragment(6, 32, true, &[], &data[32..40]));
        let short = fragment(6, 8, false, &[], &data[8..24]);
        assert_eq!(
            r.push(Instant::ZERO, &short),
            Push::Dropped(DropReason::BeyondEnd)
        );
        assert_eq!(r.len(), 0);
        assert_eq!(r.stats().malformed, 3);
        r.check();
    }

    #[test]
    fn mf_fragment_not_multiple_of_8() {
        let data = payload(64, 10);
        let mut r = Reassembler::new(T60, 1 << 20);
        r.push(Instant::ZERO, &fragment(4, 16, true, &[], &data[16..24]));
        let ragged = fragment(4, 0, true, &[], &data[..12]);
        assert_eq!(
            r.push(Instant::ZERO, &ragged),
            Push::Dropped(DropReason::Malformed)
        );
        assert_eq!(r.len(), 0, "its datagram is dropped too");
        // Other malformed inputs: not a fragment, empty, bad lengths.
        let whole = datagram(4, 17, &[], &data);
        assert_eq!(
            r.push(Instant::ZERO, &whole),
            Push::Dropped(DropReason::Malformed)
        );
        let empty = fragment(4, 8, true, &[], &[]);
        assert_eq!(
            r.push(Instant::ZERO, &empty),
            Push::Dropped(DropReason::Malformed)
        );
        let mut bad_len = fragment(4, 8, true, &[], &data[..8]);
        bad_len.push(0);
        assert_eq!(
            r.push(Instant::ZERO, &bad_len),
            Push::Dropped(DropReason::Malformed)
        );
        for garbage in [&[][..], &[0x45; 10][..], &[0x4f; 20][..]] {
            assert_eq!(
                r.push(Instant::ZERO, garbage),
                Push::Dropped(DropReason::Malformed)
            );
        }
        assert_eq!(r.stats().malformed, 7);
        assert_eq!(r.stats().fragments_received, 8);
        r.check();
    }

    #[test]
    fn too_big() {
        let mut r = Reassembler::new(T60, 1 << 20);
        let data = payload(64, 11);
        // Offset 65 512 with 24 bytes ends beyond 65 535: malformed.
        let over = fragment(1, 65512, false, &[], &data[..24]);
        assert_eq!(
            r.push(Instant::ZERO, &over),
            Push::Dropped(DropReason::Malformed)
        );
        // Ends at 65 528: no room for even a 20-byte header.
        let f = fragment(1, 65512, false, &[], &data[..16]);
        assert_eq!(r.push(Instant::ZERO, &f), Push::Dropped(DropReason::TooBig));
        // Ends at 65 504: fits a 20-byte header, but the first fragment
        // brings 40 bytes of header.
        let f = fragment(2, 65496, false, &[], &data[..8]);
        assert_eq!(r.push(Instant::ZERO, &f), Push::Pending);
        let opts = [1u8; 20];
        let first = fragment(2, 0, true, &opts, &data[..8]);
        assert_eq!(
            r.push(Instant::ZERO, &first),
            Push::Dropped(DropReason::TooBig)
        );
        assert_eq!(r.len(), 0);
        // And the other way round.
        assert_eq!(r.push(Instant::ZERO, &first), Push::Pending);
        assert_eq!(r.push(Instant::ZERO, &f), Push::Dropped(DropReason::TooBig));
        let s = r.stats();
        assert_eq!((s.too_big, s.malformed), (3, 1));
        assert_eq!((r.len(), r.memory()), (0, 0));
        // Exactly 65 535 is fine.
        let data = payload(65515, 12);
        let whole = datagram(3, 17, &[], &data);
        let frags = split(3, &data, &[32000, 65000]);
        assert_eq!(feed(&mut r, &frags), whole);
    }

    #[test]
    fn memory_bound_evicts_oldest() {
        let one = ENTRY_OVERHEAD + 20 + 8 + PIECE_OVERHEAD;
        let mut r = Reassembler::new(T60, 3 * one + 50);
        let data = payload(16, 13);
        for id in 0..3 {
            let t = Instant::from_millis(id.into());
            assert_eq!(
                r.push(t, &fragment(id, 0, true, &[], &data[..8])),
                Push::Pending
            );
        }
        assert_eq!((r.len(), r.memory()), (3, 3 * one));
        // A fourth evicts the oldest.
        r.push(
            Instant::from_millis(3),
            &fragment(3, 0, true, &[], &data[..8]),
        );
        assert_eq!((r.len(), r.memory(), r.stats().evicted), (3, 3 * one, 1));
        assert_eq!(r.poll_timeout(), Some(Instant::from_millis(1) + T60));
        r.check();
        // Datagram 0 was forgotten: its last piece does not complete it.
        let last0 = fragment(0, 8, false, &[], &data[8..]);
        assert_eq!(r.push(Instant::from_millis(4), &last0), Push::Pending);
        assert_eq!(r.stats().evicted, 2, "and it evicted datagram 1");
        // Growing datagram 2 (the oldest now) spares it and evicts the next.
        let last2 = fragment(2, 8, false, &[], &data[8..]);
        assert_eq!(
            r.push(Instant::from_millis(5), &last2),
            Push::Reassembled(datagram(2, 17, &[], &data))
        );
        assert_eq!((r.len(), r.stats().evicted), (1, 3));
        r.check();
        // A fragment that cannot fit even alone.
        let big = fragment(9, 0, true, &[], &payload(4000, 1));
        assert_eq!(
            r.push(Instant::ZERO, &big),
            Push::Dropped(DropReason::Memory)
        );
        r.check();
        // A datagram growing past the bound alone is dropped whole.
        let mut r = Reassembler::new(T60, 3 * one);
        let data = payload(1600, 1);
        let mut dropped = false;
        for i in 0..200 {
            let f = fragment(5, i * 8, true, &[], &data[i * 8..i * 8 + 8]);
            match r.push(Instant::ZERO, &f) {
                Push::Pending => {}
                Push::Dropped(DropReason::Memory) => {
                    dropped = true;
                    break;
                }
                other => panic!("{other:?}"),
            }
            assert!(r.memory() <= 3 * one);
        }
        assert!(dropped);
        assert_eq!((r.len(), r.memory()), (0, 0));
    }

    #[test]
    fn tiny_first_fragment_flood_is_bounded() {
        let max = 100_000;
        let mut r = Reassembler::new(T60, max);
        let data = payload(8, 1);
        for id in 0..10_000u16 {
            r.push(Instant::ZERO, &fragment(id, 0, true, &[], &data));
            assert!(r.memory() <= max);
        }
        assert_eq!(r.len(), max / (ENTRY_OVERHEAD + 20 + 8 + PIECE_OVERHEAD));
        r.check();
        // Stale slots and capacity do not pile up as entries churn.
        assert!(r.order.len() <= 2 * r.len() + COMPACT_MIN + 1);
        let quotes = r.expire(Instant::ZERO + T60);
        assert_eq!(
            quotes.len(),
            max / (ENTRY_OVERHEAD + 20 + 8 + PIECE_OVERHEAD)
        );
        assert!(r.order.capacity() <= 2 * COMPACT_MIN);
        r.check();
    }

    #[test]
    fn overhead_covers_the_structures() {
        use std::mem::size_of;
        // A map slot at worst about half used, queue slots up to four per entry.
        assert!(2 * size_of::<(Key, Entry)>() + 4 * size_of::<Slot>() <= ENTRY_OVERHEAD);
        assert!(2 * size_of::<(u32, Vec<u8>)>() + 16 <= PIECE_OVERHEAD);
    }

    #[test]
    fn round_trip_sizes_and_mtus() {
        let options: [&[u8]; 3] = [
            &[],
            &[0x94, 4, 0, 0],                                        // copied
            &[0x07, 7, 4, 0, 0, 0, 0, 0x83, 7, 4, 1, 2, 3, 4, 1, 0], // RR, LSRR, NOP, EOL
        ];
        for mtu in [68, 576, 1500] {
            for opts in options {
                let mut sizes: Vec<usize> = (0..3000).step_by(37).collect();
                sizes.extend([1, 7, 8, 9, 47, 48, 49, 556, 1479, 1480, 1481]);
                sizes.push(65515 - opts.len());
                for (i, &len) in sizes.iter().enumerate() {
                    let whole = datagram(i as u16, 17, opts, &payload(len, i as u8));
                    let frags = fragment_all(&whole, mtu, true);
                    assert!(frags.iter().all(|f| f.len() <= mtu));
                    if whole.len() <= mtu {
                        assert_eq!(frags, vec![whole.clone()], "fits: sent as it is");
                        continue;
                    }
                    let mut r = Reassembler::new(T60, 1 << 24);
                    // In order, then reversed: byte-identical to the original,
                    // as it was not a fragment and its checksum was valid.
                    assert_eq!(feed(&mut r, &frags), whole, "mtu {mtu} len {len}");
                    if frags.len() > 1 {
                        let rev: Vec<_> = frags.iter().rev().cloned().collect();
                        assert_eq!(feed(&mut r, &rev), whole);
                    }
                }
            }
        }
    }

    #[test]
    fn fragmenter_fields() {
        let opts = [0x94, 4, 0, 0];
        let data = payload(1000, 3);
        let mut whole = datagram(0x1234, 6, &opts, &data);
        whole[6] = 0x80; // The reserved bit is copied as it is.
        set_checksum(&mut whole[..24], true);
        for fill in [true, false] {
            let frags = fragment_all(&whole, 300, fill);
            assert_eq!(frags.len(), 4);
            let mut next = 0;
            for (i, f) in frags.iter().enumerate() {
                let last = i == frags.len() - 1;
                let hl = usize::from(f[0] & 0x0f) * 4;
                assert_eq!(hl, 24);
                assert_eq!(usize::from(u16::from_be_bytes([f[2], f[3]])), f.len());
                assert_eq!(&f[4..6], &whole[4..6], "identification");
                assert_eq!(f[6] & 0x80, 0x80);
                assert_eq!(f[6] & MF != 0, !last);
                let off = usize::from(u16::from_be_bytes([f[6], f[7]]) & 0x1fff) * 8;
                assert_eq!(off, next);
                let len = f.len() - hl;
                assert!(last || (len.is_multiple_of(8) && len == (300 - 24) & !7));
                assert_eq!(&f[hl..], &data[off..off + len]);
                next += len;
                if fill {
                    assert_eq!(header_checksum(&f[..hl]), 0);
                } else {
                    assert_eq!(&f[10..12], &[0, 0]);
                }
            }
            assert_eq!(next, data.len());
        }
    }

    #[test]
    fn fragmenter_small_datagram_and_refragmenting() {
        // Fits: one fragment, the datagram itself.
        let whole = datagram(1, 17, &[], &payload(30, 0));
        assert_eq!(fragment_all(&whole, 68, true), vec![whole.clone()]);
        // A middle fragment (MF set, offset 80) split again: the pieces keep
        // MF and count from offset 80.
        let frag = fragment(2, 80, true, &[], &payload(96, 0));
        let pieces = fragment_all(&frag, 68, true);
        assert_eq!(pieces.len(), 2);
        for (i, p) in pieces.iter().enumerate() {
            assert_ne!(p[6] & MF, 0);
            let off = usize::from(u16::from_be_bytes([p[6], p[7]]) & 0x1fff) * 8;
            assert_eq!(off, 80 + 48 * i);
        }
        // The last fragment of a datagram split again: only its last piece
        // has MF clear.
        let frag = fragment(2, 80, false, &[], &payload(60, 0));
        let pieces = fragment_all(&frag, 68, true);
        assert_eq!(pieces.len(), 2);
        assert_ne!(pieces[0][6] & MF, 0);
        assert_eq!(pieces[1][6] & MF, 0);
        // A buffer too small for 8 payload bytes gives nothing.
        let whole = datagram(3, 17, &[], &payload(100, 0));
        let mut f = Fragmenter::new(whole, 68);
        assert_eq!(f.next(&mut [0u8; 27], true), None);
        assert!(!f.is_done());
        assert_eq!(f.next(&mut [0u8; 68], true), Some(68));
        // Garbage gives nothing.
        let mut f = Fragmenter::new(vec![0x4f; 10], 68);
        assert!(f.is_done());
        assert_eq!(f.next(&mut [0u8; 68], true), None);
    }

    #[test]
    fn options_copying_rule() {
        // NOP, Record Route (not copied), LSRR (copied), Timestamp (not
        // copied), Router Alert (copied), EOL and padding.
        let rr = [0x07, 7, 4, 0, 0, 0, 0];
        let lsrr = [0x83, 7, 4, 10, 0, 0, 1];
        let ts = [0x44, 8, 5, 0, 0, 0, 0, 0];
        let ra = [0x94, 4, 0, 0];
        let mut opts = vec![1];
        opts.extend_from_slice(&rr);
        opts.extend_from_slice(&lsrr);
        opts.extend_from_slice(&ts);
        opts.extend_from_slice(&ra);
        opts.push(0);
        opts.resize(opts.len().next_multiple_of(4), 0);
        let data = payload(400, 5);
        let whole = datagram(77, 17, &opts, &data);
        let frags = fragment_all(&whole, 128, true);
        assert!(frags.len() > 2);
        assert_eq!(frags[0][0], whole[0], "the first fragment has every option");
        assert_eq!(&frags[0][20..20 + opts.len()], &whole[20..20 + opts.len()]);
        let mut later = lsrr.to_vec();
        later.extend_from_slice(&ra);
        later.resize(12, 0);
        for f in &frags[1..] {
            assert_eq!(usize::from(f[0] & 0x0f) * 4, 32);
            assert_eq!(&f[20..32], &later[..]);
            assert_eq!(header_checksum(&f[..32]), 0);
        }
        // Reassembly keeps the first fragment's options.
        let mut r = Reassembler::new(T60, 1 << 20);
        assert_eq!(feed(&mut r, &frags), whole);
        // No copied option: later fragments get a bare 20-byte header.
        let mut opts = rr.to_vec();
        opts.push(1);
        let whole = datagram(78, 17, &opts, &data);
        let frags = fragment_all(&whole, 128, true);
        assert!(frags[1..].iter().all(|f| f[0] == 0x45));
    }

    #[derive(Debug, Clone)]
    enum Op {
        /// A fragment of one of a few datagrams, from random pieces.
        Fragment {
            id: u16,
            units: u16,
            len: usize,
            more: bool,
            seed: u8,
            options: bool,
        },
        /// A whole datagram fragmented and pushed, shuffled.
        Whole {
            len: usize,
            mtu: usize,
            rotate: usize,
        },
        Garbage(Vec<u8>),
        Advance(u64),
        /// The caller's clock going back (it should not, but must not hurt).
        Rewind(u64),
        Expire,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (0u16..4, 0u16..40, 0usize..80, any::<bool>(), 0u8..3, any::<bool>())
                .prop_map(|(id, units, len, more, seed, options)| {
                    Op::Fragment { id, units, len, more, seed, options }
                }),
            2 => (0usize..2500, prop_oneof![Just(68), Just(576), Just(1500)], 0usize..50)
                .prop_map(|(len, mtu, rotate)| Op::Whole { len, mtu, rotate }),
            1 => proptest::collection::vec(any::<u8>(), 0..48).prop_map(Op::Garbage),
            2 => (0u64..15_000).prop_map(Op::Advance),
            1 => (0u64..5_000).prop_map(Op::Rewind),
            1 => Just(Op::Expire),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn random_fragment_streams(
            max_bytes in 1000usize..60_000,
            ops in proptest::collection::vec(op(), 0..40),
        ) {
            let timeout = Duration::from_secs(10);
            let mut r = Reassembler::new(timeout, max_bytes);
            let mut now = Instant::ZERO;
            let mut next_id = 1000u16;
            for op in ops {
                let before = r.len();
                match op {
                    Op::Fragment { id, units, len, more, seed, options } => {
                        let start = usize::from(units) * 8;
                        // Bytes depend on the position, so overlapping
                        // fragments of the same seed agree.
                        let all = payload(start + len, seed);
                        let opts: &[u8] = if options { &[1, 1, 1, 0] } else { &[] };
                        let f = fragment(id, start, more, opts, &all[start..]);
                        match r.push(now, &f) {
                            Push::Reassembled(d) => {
                                assert_valid(&d);
                                prop_assert!(r.len() < before);
                            }
                            Push::Pending => prop_assert!(r.len() <= before + 1),
                            Push::Dropped(_) => prop_assert!(r.len() <= before),
                        }
                    }
                    Op::Whole { len, mtu, rotate } => {
                        next_id += 1;
                        let whole = datagram(next_id, 6, &[], &payload(len, next_id as u8));
                        let mut frags = fragment_all(&whole, mtu, true);
                        let n = frags.len();
                        frags.rotate_left(rotate % n);
                        let mut got = None;
                        let mut memory = false;
                        for f in &frags {
                            match r.push(now, f) {
                                Push::Reassembled(d) => got = Some(d),
                                Push::Dropped(reason) if n == 1 => {
                                    prop_assert_eq!(reason, DropReason::Malformed);
                                }
                                Push::Dropped(reason) => {
                                    prop_assert_eq!(reason, DropReason::Memory);
                                    memory = true;
                                }
                                Push::Pending => {}
                            }
                            prop_assert!(r.memory() <= max_bytes);
                        }
                        if n == 1 {
                            // Not a fragment: rejected.
                            prop_assert!(got.is_none());
                        } else if !memory {
                            prop_assert_eq!(got, Some(whole));
                        }
                    }
                    Op::Garbage(bytes) => {
                        prop_assert!(!matches!(r.push(now, &bytes), Push::Reassembled(_)));
                    }
                    Op::Advance(ms) => now = now + Duration::from_millis(ms),
                    Op::Rewind(ms) => {
                        now = Instant::from_nanos(now.as_nanos().saturating_sub(ms * 1_000_000));
                    }
                    Op::Expire => {
                        for quote in r.expire(now) {
                            prop_assert!(quote.len() >= MIN_HEADER);
                            let hl = usize::from(quote[0] & 0x0f) * 4;
                            prop_assert_eq!(quote.len(), hl + 8);
                            prop_assert_eq!(u16::from_be_bytes([quote[6], quote[7]]) & 0x1fff, 0);
                        }
                        if let Some(t) = r.poll_timeout() {
                            prop_assert!(t > now);
                        }
                    }
                }
                prop_assert!(r.memory() <= max_bytes);
                prop_assert_eq!(r.is_empty(), r.poll_timeout().is_none());
                prop_assert!(r.len() * (ENTRY_OVERHEAD + PIECE_OVERHEAD) <= r.memory());
                r.check();
            }
        }
    }
}
