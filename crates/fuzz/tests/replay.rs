//! Every input of the fuzz corpus (`fuzz/corpus/TARGET/`) and every crash
//! ever found (`fuzz/regressions/TARGET/`) through its target, under
//! `cargo test`: a crash once found stays a test. Also checks that the
//! committed seeds are the ones [`synack_fuzz::seeds`] writes.

use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

/// Every target.
const TARGETS: [&str; 6] = [
    "ingress",
    "ingress_forged",
    "api",
    "wire",
    "reassembly",
    "stack",
];

fn target(name: &str) -> fn(&[u8]) {
    match name {
        "ingress" => synack_fuzz::ingress,
        "ingress_forged" => synack_fuzz::ingress_forged,
        "api" => synack_fuzz::api,
        "wire" => synack_fuzz::wire,
        "reassembly" => synack_fuzz::reassembly,
        "stack" => synack_fuzz::stack,
        other => panic!("no target {other:?}"),
    }
}

/// Runs every file under `fuzz/<kind>/<target>/`; returns how many ran.
fn replay(kind: &str) -> usize {
    let mut ran = 0;
    for t in TARGETS {
        let dir = fuzz_dir().join(kind).join(t);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut files: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        files.sort();
        for f in files {
            let data = std::fs::read(&f).unwrap();
            let run = target(t);
            if std::panic::catch_unwind(|| run(&data)).is_err() {
                panic!("{} fails its target {t}", f.display());
            }
            ran += 1;
        }
    }
    ran
}

#[test]
fn the_corpus_runs_clean() {
    let n = replay("corpus");
    assert!(
        n >= 10,
        "only {n} corpus inputs: run `cargo test -p synack-fuzz -- --ignored write_seeds`"
    );
}

#[test]
fn every_crash_found_stays_fixed() {
    let n = replay("regressions");
    println!("{n} regression inputs replayed");
}

#[test]
fn the_seeds_are_committed() {
    for (t, name, data) in synack_fuzz::seeds() {
        let path = fuzz_dir()
            .join("corpus")
            .join(t)
            .join(format!("seed-{name}"));
        let committed = std::fs::read(&path).unwrap_or_default();
        assert_eq!(
            committed,
            data,
            "{} differs from what seeds() writes: run `cargo test -p synack-fuzz -- --ignored write_seeds`",
            path.display()
        );
    }
}

/// Writes the seed corpus into `fuzz/corpus/` (run after changing the scene
/// or the record format).
#[test]
#[ignore]
fn write_seeds() {
    for (t, name, data) in synack_fuzz::seeds() {
        let dir = fuzz_dir().join("corpus").join(t);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("seed-{name}")), data).unwrap();
    }
}
