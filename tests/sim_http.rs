//! The `sim_http` example as a test: hyper over synack in the simulation
//! harness, across a 50 ms, 1 % loss path, gets every response whole.

#[path = "../examples/sim_http.rs"]
mod example;

#[test]
fn hyper_over_a_lossy_simulated_path() {
    let mut lost = 0;
    for seed in 1..=3 {
        let (mut sim, outcome) = example::simulation(seed);
        sim.run().unwrap();
        let outcome = outcome.borrow();
        assert_eq!(outcome.fetched.len(), 14, "seed {seed}");
        for f in &outcome.fetched {
            assert_eq!(f.status, 200, "seed {seed}: {}", f.path);
            match f.path.strip_prefix("/size/") {
                Some(n) => {
                    assert_eq!(f.body.len(), n.parse::<usize>().unwrap());
                    assert!(f.body.iter().all(|&b| b == b'x'));
                }
                None => assert_eq!(f.body, format!("hello from {}", f.path)),
            }
            // Nothing comes back sooner than a round trip of the 50 ms path.
            assert!(f.latency.as_millis() >= 100, "seed {seed}: {f:?}");
        }
        lost += outcome.lost_packets;
    }
    assert!(lost > 0, "the links lost nothing: not the lossy path meant");
}
