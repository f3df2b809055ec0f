//! Model-based property test: the wheel against a `BTreeSet`/`HashMap` model.
//!
//! Random sequences of inserts (deadlines at every magnitude, including 0,
//! `64^k` boundaries, the past and `u64::MAX`), cancels and resets of live and
//! stale keys, full drains and partial drains are applied to both. After every
//! step `len()` and `next_deadline()` must agree with the model; every timer a
//! drain returns must be due and known to the model (none early, none
//! invented), and when `poll` says nothing is due the model must agree (none
//! lost).

use std::collections::{BTreeSet, HashMap};

use proptest::prelude::*;
use synack_wheel::{Key, Wheel};

#[derive(Clone, Debug)]
enum Op {
    /// Insert at `now + offset`.
    Insert(u64),
    /// Insert at `now - back` (a deadline in the past).
    InsertPast(u64),
    /// Cancel the `n % issued`-th key ever issued (live or stale).
    Cancel(usize),
    /// Reset the `n % issued`-th key ever issued to `now + offset`.
    Reset(usize, u64),
    /// Advance to `now + delta` and drain everything due.
    Advance(u64),
    /// Advance to `now + delta` but pop at most `n` timers.
    PollSome(u64, usize),
    /// Poll with a time before `now`.
    PollBackwards(u64, usize),
}

/// Distances at every magnitude the wheel distinguishes.
fn distance() -> impl Strategy<Value = u64> {
    prop_oneof![
        3 => Just(0u64),
        6 => 1..64u64,
        4 => 64..4_096u64,
        4 => (1..=10u32, -2i64..=2).prop_map(|(k, d)| 64u64.pow(k).saturating_add_signed(d)),
        2 => (0..64u32).prop_map(|bit| 1u64 << bit),
        2 => 4_096..(1u64 << 40),
        1 => any::<u64>(),
    ]
}

/// Time steps: mostly small, sometimes across level boundaries, rarely huge.
fn delta() -> impl Strategy<Value = u64> {
    prop_oneof![
        2 => Just(0u64),
        8 => 1..128u64,
        4 => 128..10_000u64,
        2 => (1..=7u32, -1i64..=1).prop_map(|(k, d)| 64u64.pow(k).saturating_add_signed(d)),
        1 => (1u64 << 20)..(1u64 << 44),
    ]
}

fn op(distance: BoxedStrategy<u64>) -> impl Strategy<Value = Op> {
    prop_oneof![
        10 => distance.clone().prop_map(Op::Insert),
        1 => (0..200u64).prop_map(Op::InsertPast),
        4 => any::<usize>().prop_map(Op::Cancel),
        4 => (any::<usize>(), distance).prop_map(|(n, d)| Op::Reset(n, d)),
        4 => delta().prop_map(Op::Advance),
        2 => (delta(), 0..5usize).prop_map(|(d, n)| Op::PollSome(d, n)),
        1 => (0..100u64, 0..3usize).prop_map(|(d, n)| Op::PollBackwards(d, n)),
    ]
}

/// The reference: a map from key to (deadline, value) and an ordered set.
#[derive(Default)]
struct Model {
    live: HashMap<Key, (u64, u64)>,
    /// `(deadline, value)`; values are unique.
    order: BTreeSet<(u64, u64)>,
}

impl Model {
    fn insert(&mut self, key: Key, deadline: u64, value: u64) {
        assert!(
            self.live.insert(key, (deadline, value)).is_none(),
            "key reused"
        );
        self.order.insert((deadline, value));
    }

    fn remove(&mut self, key: Key) -> Option<(u64, u64)> {
        let (deadline, value) = self.live.remove(&key)?;
        self.order.remove(&(deadline, value));
        Some((deadline, value))
    }

    fn min(&self) -> Option<u64> {
        self.order.first().map(|&(deadline, _)| deadline)
    }
}

/// Pops from the wheel at `now` up to `limit` times, checking each timer
/// against the model; returns how many were popped.
fn pop_checked(wheel: &mut Wheel<u64>, model: &mut Model, now: u64, limit: usize) -> usize {
    let effective_now = now.max(wheel.now());
    for popped in 0..limit {
        match wheel.poll(now) {
            Some((key, value)) => {
                let Some((deadline, expected)) = model.remove(key) else {
                    panic!("poll returned unknown or already removed key {key:?}");
                };
                assert_eq!(value, expected, "wrong value for {key:?}");
                assert!(
                    deadline <= effective_now,
                    "timer due at {deadline} fired early at {effective_now}"
                );
                assert!(!wheel.contains(key));
            }
            None => {
                if let Some(min) = model.min() {
                    assert!(
                        min > effective_now,
                        "timer due at {min} lost: poll({effective_now}) returned None"
                    );
                }
                return popped;
            }
        }
    }
    limit
}

fn run(ops: Vec<Op>) {
    let mut wheel = Wheel::new();
    let mut model = Model::default();
    let mut issued: Vec<Key> = Vec::new();
    let mut next_value = 0u64;

    for op in ops {
        let now = wheel.now();
        match op {
            Op::Insert(offset) | Op::InsertPast(offset) => {
                let deadline = match op {
                    Op::Insert(_) => now.saturating_add(offset),
                    _ => now.saturating_sub(offset),
                };
                next_value += 1;
                let key = wheel.insert(deadline, next_value);
                model.insert(key, deadline, next_value);
                issued.push(key);
                assert_eq!(wheel.deadline(key), Some(deadline));
            }
            Op::Cancel(n) if !issued.is_empty() => {
                let key = issued[n % issued.len()];
                let expected = model.remove(key).map(|(_, value)| value);
                assert_eq!(wheel.cancel(key), expected);
                assert!(!wheel.contains(key));
            }
            Op::Reset(n, offset) if !issued.is_empty() => {
                let key = issued[n % issued.len()];
                let deadline = now.saturating_add(offset);
                let live = model.remove(key);
                assert_eq!(wheel.reset(key, deadline), live.is_some());
                if let Some((_, value)) = live {
                    model.insert(key, deadline, value);
                    assert_eq!(wheel.deadline(key), Some(deadline));
                } else {
                    assert_eq!(wheel.deadline(key), None);
                }
            }
            Op::Cancel(_) | Op::Reset(..) => {}
            Op::Advance(delta) => {
                let target = now.saturating_add(delta);
                pop_checked(&mut wheel, &mut model, target, usize::MAX);
                assert_eq!(wheel.now(), target);
                assert!(wheel.poll(target).is_none());
                // Everything left is in the future.
                if let Some(next) = wheel.next_deadline() {
                    assert!(next > target);
                }
            }
            Op::PollSome(delta, limit) => {
                pop_checked(&mut wheel, &mut model, now.saturating_add(delta), limit);
            }
            Op::PollBackwards(back, limit) => {
                pop_checked(&mut wheel, &mut model, now.saturating_sub(back), limit);
                assert_eq!(wheel.now(), now, "time went backwards");
            }
        }
        assert_eq!(wheel.len(), model.live.len());
        assert_eq!(wheel.is_empty(), model.live.is_empty());
        assert_eq!(wheel.next_deadline(), model.min());
    }

    // Every key ever issued agrees with the model.
    for &key in &issued {
        let expected = model.live.get(&key);
        assert_eq!(wheel.contains(key), expected.is_some());
        assert_eq!(wheel.deadline(key), expected.map(|&(d, _)| d));
        assert_eq!(wheel.get(key), expected.map(|(_, v)| v));
    }

    // Finally drain to the end of time: exactly the model's entries remain.
    pop_checked(&mut wheel, &mut model, u64::MAX, usize::MAX);
    assert!(model.live.is_empty());
    assert!(wheel.is_empty());
    assert_eq!(wheel.next_deadline(), None);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Deadlines and time steps at every magnitude.
    #[test]
    fn matches_model(ops in prop::collection::vec(op(distance().boxed()), 1..200)) {
        run(ops);
    }

    /// Dense deadlines: many timers share slots and deadlines.
    #[test]
    fn matches_model_dense(ops in prop::collection::vec(op((0..300u64).boxed()), 1..200)) {
        run(ops);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// Longer histories, so that the wheel holds more timers at once.
    #[test]
    fn matches_model_long(ops in prop::collection::vec(op(distance().boxed()), 500..2_000)) {
        run(ops);
    }
}
