//! Each target on pseudo-random inputs grown from its seeds (a few
//! thousand, in seconds): a mutation-free taste of what the fuzzer does,
//! so a target whose own checks are wrong fails under `cargo test`.

/// xorshift64*: a fixed sequence, so a failure repeats.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// Runs `target` on `n` inputs: random bytes, and seeds with bytes
/// flipped, cut or appended.
fn run(name: &str, target: fn(&[u8]), n: usize) {
    let seeds: Vec<Vec<u8>> = synack_fuzz::seeds()
        .into_iter()
        .filter(|(t, _, _)| *t == name)
        .map(|(_, _, d)| d)
        .collect();
    let mut rng = Rng(0x5eed_0000 ^ name.len() as u64);
    for i in 0..n {
        let input = if seeds.is_empty() || i % 2 == 0 {
            let len = (rng.next() % 300) as usize;
            rng.bytes(len)
        } else {
            let mut d = seeds[i % seeds.len()].clone();
            for _ in 0..1 + rng.next() % 4 {
                match rng.next() % 3 {
                    0 if !d.is_empty() => {
                        let at = (rng.next() as usize) % d.len();
                        d[at] ^= rng.next() as u8 | 1;
                    }
                    1 if !d.is_empty() => {
                        let at = (rng.next() as usize) % d.len();
                        d.truncate(at.max(1));
                    }
                    _ => {
                        let n = (rng.next() % 16) as usize;
                        let more = rng.bytes(n);
                        d.extend_from_slice(&more);
                    }
                }
            }
            d
        };
        if std::panic::catch_unwind(|| target(&input)).is_err() {
            panic!("{name} fails on input {i}: {input:02x?}");
        }
    }
}

#[test]
fn wire_holds_on_random_inputs() {
    run("wire", synack_fuzz::wire, 20_000);
}

#[test]
fn reassembly_holds_on_random_inputs() {
    run("reassembly", synack_fuzz::reassembly, 2_000);
}

/// The reassembly seeds do what their names say: a datagram cut in three
/// arrives once in any order; never when a piece overlaps, the pieces
/// outlive the timeout, or a piece is corrupted (IP cannot tell, UDP's
/// checksum does: outside `cargo fuzz`, whose smoltcp accepts any checksum).
#[test]
fn reassembly_seeds_deliver_as_named() {
    for (t, name, data) in synack_fuzz::seeds() {
        if t != "reassembly" {
            continue;
        }
        let want = match name.as_str() {
            "in-order" | "reversed" => 1,
            "overlap" | "timeout" | "corrupt" => 0,
            other => panic!("no expectation for seed {other}"),
        };
        assert_eq!(synack_fuzz::reassembly::run(&data), want, "seed {name}");
    }
}

#[test]
fn stack_holds_on_random_inputs() {
    run("stack", synack_fuzz::stack, 300);
}

/// The stack seeds move what their comments say: 3 000 bytes each way
/// with both ends of stream and a datagram each way; 16 000 bytes each way
/// between two worker tasks, with both ends of stream.
#[test]
fn stack_seeds_move_their_data() {
    for (t, name, data) in synack_fuzz::seeds() {
        if t != "stack" {
            continue;
        }
        let want = match name.as_str() {
            "echo-close-udp" => (6000, 2, 2),
            "workers" => (32_000, 2, 0),
            other => panic!("no expectation for seed {other}"),
        };
        let s = synack_fuzz::stack::run(&data);
        assert_eq!((s.bytes_read, s.eofs, s.datagrams), want, "seed {name}");
    }
}
