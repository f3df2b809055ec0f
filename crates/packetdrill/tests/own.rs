//! synack's own packetdrill scripts (`scripts/*.pkt`) under the `linux`
//! profile (synack's defaults): every one must pass.
//!
//! ```text
//! cargo test -p synack-packetdrill --test own -- --nocapture
//! ```
//!
//! One script with a log of every event and segment:
//!
//! ```text
//! PACKETDRILL_OWN=sack-recovery cargo test -p synack-packetdrill --test own one_script -- --nocapture
//! ```

use std::path::{Path, PathBuf};

use synack_packetdrill::{Outcome, Profile, parse, run_traced};

const SCRIPTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts");

/// Every `.pkt` file in `scripts/`, sorted.
fn scripts() -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(SCRIPTS)
        .expect("the scripts directory")
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "pkt"))
        .collect();
    out.sort();
    out
}

fn name(p: &Path) -> String {
    p.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Runs one script; the log too when `trace`.
fn run_one(path: &Path, trace: bool) -> Outcome {
    let profile = Profile::linux();
    let text = std::fs::read_to_string(path).expect("readable script");
    let script = match parse(&text, profile.defines) {
        Ok(s) => s,
        Err(e) => return Outcome::ParseError(e),
    };
    let (outcome, log) = run_traced(&script, &profile);
    if trace {
        for l in log {
            println!("{l}");
        }
    }
    outcome
}

#[test]
fn every_own_script_passes() {
    let all = scripts();
    assert!(!all.is_empty(), "no scripts in {SCRIPTS}");
    let mut failed = Vec::new();
    for path in &all {
        let outcome = run_one(path, false);
        println!("{:<8} {}", outcome.kind(), name(path));
        if outcome != Outcome::Pass {
            failed.push(format!("{}: {outcome}", name(path)));
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {} scripts did not pass:\n{}",
        failed.len(),
        all.len(),
        failed.join("\n")
    );
}

/// `PACKETDRILL_OWN=<name>`: that script with its log; without it, nothing.
#[test]
fn one_script() {
    let Ok(name) = std::env::var("PACKETDRILL_OWN") else {
        return;
    };
    let path = Path::new(SCRIPTS).join(format!("{name}.pkt"));
    let outcome = run_one(&path, true);
    println!("{name}: {outcome}");
}
