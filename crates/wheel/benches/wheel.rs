//! Timer-structure benchmark: `synack_wheel::Wheel` against
//! `std::collections::BinaryHeap` and `tokio_util::time::DelayQueue`.
//!
//! Run with `cargo bench -p synack-wheel --bench wheel`. For each N it
//! measures, in ns per timer:
//!
//! * insert: N timers with deadlines uniform in `[0, 10 000)` ticks
//!   (1 ms ticks, so 0..10 s), into an empty structure whose memory has
//!   been used once before (filled and cleared, untimed), so that first-touch
//!   page faults are not counted;
//! * cancel: cancel all N, in random order;
//! * expire: starting from N fresh timers, advance through time and expire
//!   all of them, event-driven: ask for the next deadline, move the clock
//!   there, drain everything due, repeat.
//!
//! Each cell is the best of several runs. Prints a markdown table.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::future::poll_fn;
use std::hint::black_box;
use std::time::{Duration, Instant};

use synack_wheel::{Key, Wheel};
use tokio_util::time::DelayQueue;

/// Deadlines are uniform in `0..RANGE` ticks.
const RANGE: u64 = 10_000;

/// xorshift64: deterministic and dependency-free.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The random input of one run: deadlines and a cancellation order.
struct Workload {
    deadlines: Vec<u64>,
    cancel_order: Vec<usize>,
}

impl Workload {
    fn new(n: usize, seed: u64) -> Self {
        let mut rng = Rng(seed | 1);
        let deadlines = (0..n).map(|_| rng.below(RANGE)).collect();
        let mut cancel_order: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            cancel_order.swap(i, rng.below(i as u64 + 1) as usize);
        }
        Workload {
            deadlines,
            cancel_order,
        }
    }
}

/// Nanoseconds per timer for (insert, cancel, expire).
type Costs = [f64; 3];

/// One implementation's benchmark.
type Bench<'a> = dyn Fn(&Workload) -> Costs + 'a;

fn per_op(elapsed: Duration, n: usize) -> f64 {
    elapsed.as_nanos() as f64 / n as f64
}

fn bench_wheel(w: &Workload) -> Costs {
    let n = w.deadlines.len();
    let mut wheel = Wheel::with_capacity(n);
    let mut keys: Vec<Key> = Vec::with_capacity(n);
    let fill = |wheel: &mut Wheel<usize>, keys: &mut Vec<Key>| {
        keys.clear();
        for (i, &deadline) in w.deadlines.iter().enumerate() {
            keys.push(wheel.insert(deadline, i));
        }
    };
    // Warm-up: touch all memory once.
    fill(&mut wheel, &mut keys);
    wheel.clear();

    let start = Instant::now();
    fill(&mut wheel, &mut keys);
    let insert = per_op(start.elapsed(), n);

    let start = Instant::now();
    for &i in &w.cancel_order {
        black_box(wheel.cancel(keys[i]));
    }
    let cancel = per_op(start.elapsed(), n);
    assert!(wheel.is_empty());

    fill(&mut wheel, &mut keys);
    let start = Instant::now();
    let mut expired = 0;
    while let Some(next) = wheel.next_deadline() {
        while let Some(entry) = wheel.poll(next) {
            black_box(entry);
            expired += 1;
        }
    }
    let expire = per_op(start.elapsed(), n);
    assert_eq!(expired, n);

    [insert, cancel, expire]
}

fn bench_heap(w: &Workload) -> Costs {
    let n = w.deadlines.len();
    // Min-heap of (deadline, timer id); `live[id]` is the lazy-deletion flag.
    let mut heap = BinaryHeap::with_capacity(n);
    let mut live = vec![false; n];
    let mut keys: Vec<u32> = Vec::with_capacity(n);
    let fill = |heap: &mut BinaryHeap<_>, live: &mut Vec<bool>, keys: &mut Vec<u32>| {
        keys.clear();
        for (i, &deadline) in w.deadlines.iter().enumerate() {
            heap.push(Reverse((deadline, i as u32)));
            live[i] = true;
            keys.push(i as u32);
        }
    };
    // Warm-up: touch all memory once.
    fill(&mut heap, &mut live, &mut keys);
    heap.clear();
    live.fill(false);

    let start = Instant::now();
    fill(&mut heap, &mut live, &mut keys);
    let insert = per_op(start.elapsed(), n);

    let start = Instant::now();
    for &i in &w.cancel_order {
        let id = keys[i] as usize;
        black_box(std::mem::replace(&mut live[id], false));
    }
    let cancel = per_op(start.elapsed(), n);

    // The tombstones would still be in the heap: start expiry afresh.
    heap.clear();
    fill(&mut heap, &mut live, &mut keys);
    let start = Instant::now();
    let mut expired = 0;
    while let Some(&Reverse((now, _))) = heap.peek() {
        while let Some(&Reverse((deadline, id))) = heap.peek() {
            if deadline > now {
                break;
            }
            heap.pop();
            if std::mem::replace(&mut live[id as usize], false) {
                black_box(id);
                expired += 1;
            }
        }
    }
    let expire = per_op(start.elapsed(), n);
    assert_eq!(expired, n);

    [insert, cancel, expire]
}

fn bench_delay_queue(w: &Workload, runtime: &tokio::runtime::Runtime) -> Costs {
    let n = w.deadlines.len();
    runtime.block_on(async {
        let mut queue = DelayQueue::with_capacity(n);
        let mut keys = Vec::with_capacity(n);
        let fill = |queue: &mut DelayQueue<usize>, keys: &mut Vec<_>| {
            keys.clear();
            for (i, &deadline) in w.deadlines.iter().enumerate() {
                keys.push(queue.insert(i, Duration::from_millis(deadline)));
            }
        };
        // Warm-up: touch all memory once.
        fill(&mut queue, &mut keys);
        queue.clear();

        let start = Instant::now();
        fill(&mut queue, &mut keys);
        let insert = per_op(start.elapsed(), n);

        let start = Instant::now();
        for &i in &w.cancel_order {
            black_box(queue.remove(&keys[i]));
        }
        let cancel = per_op(start.elapsed(), n);
        assert!(queue.is_empty());

        fill(&mut queue, &mut keys);
        // With the clock paused, awaiting a pending `poll_expired` makes the
        // runtime jump the clock straight to the next timer.
        let start = Instant::now();
        let mut expired = 0;
        while let Some(entry) = poll_fn(|cx| queue.poll_expired(cx)).await {
            black_box(entry);
            expired += 1;
        }
        let expire = per_op(start.elapsed(), n);
        assert_eq!(expired, n);

        [insert, cancel, expire]
    })
}

/// Element-wise minimum over `runs` runs.
fn best_of(runs: usize, mut run: impl FnMut(usize) -> Costs) -> Costs {
    let mut best = [f64::INFINITY; 3];
    for r in 0..runs {
        for (best, cost) in best.iter_mut().zip(run(r)) {
            *best = best.min(cost);
        }
    }
    best
}

fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("tokio runtime");

    println!("| impl | N | insert ns/op | cancel ns/op | expire ns/op |");
    println!("|---|---:|---:|---:|---:|");
    let total = Instant::now();
    for n in [1_000, 100_000, 1_000_000] {
        let runs = match n {
            1_000 => 50,
            100_000 => 10,
            _ => 3,
        };
        let workloads: Vec<Workload> = (0..runs)
            .map(|r| Workload::new(n, 0x2545_F491_4F6C_DD1D ^ ((r as u64 + 1) * 7919)))
            .collect();
        let impls: [(&str, &Bench); 3] = [
            ("synack_wheel::Wheel", &bench_wheel),
            ("BinaryHeap¹", &bench_heap),
            ("tokio_util DelayQueue²", &|w| {
                bench_delay_queue(w, &runtime)
            }),
        ];
        for (name, bench) in impls {
            let [insert, cancel, expire] = best_of(runs, |r| bench(&workloads[r]));
            println!(
                "| {name} | {} | {insert:.1} | {cancel:.1} | {expire:.1} |",
                thousands(n)
            );
        }
    }
    println!();
    println!(
        "Deadlines uniform in [0, {RANGE}) ticks (1 ms ticks: 0..10 s); cancel in random order; \
         expire event-driven (jump to the next deadline, drain, repeat); \
         each structure filled and cleared once before timing (no first-touch page faults). \
         Best of 50/10/3 runs for N = 1 000/100 000/1 000 000. Total {:.1} s.",
        total.elapsed().as_secs_f64()
    );
    println!();
    println!(
        "¹ `BinaryHeap<Reverse<(deadline, id)>>` with lazy deletion: cancel clears a per-timer \
         `live` flag in a `Vec<bool>` indexed by timer id (O(1)); the dead entry stays in the \
         heap (and in memory) until it reaches the top, where expiry pops and skips it. So its \
         cancel column omits the O(log n) pop a cancelled timer eventually costs."
    );
    println!(
        "² `tokio_util::time::DelayQueue<usize>` in a current-thread runtime with the clock \
         paused (`start_paused(true)`); expire awaits `poll_expired` and lets the paused \
         runtime auto-advance to each next deadline, so it includes the runtime's \
         park/timer-driver work per distinct deadline."
    );
}
