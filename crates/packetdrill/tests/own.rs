//! synack's own packetdrill scripts (`scripts/*.pkt`) under the `linux`
//! profile (synack's defaults): every one must pass, unless
//! `expectations/own/<name>.txt` records a difference between synack and
//! the RFC the script follows (same format as the FreeBSD suite's:
//! `expect: differ` with the lines tolerated, or `expect: fail` at one
//! line); then it must differ exactly so, and a difference that goes away
//! or moves fails the test.
//!
//! ```text
//! cargo test -p synack-packetdrill --test own -- --nocapture
//! ```
//!
//! One script with a log of every event and segment:
//!
//! ```text
//! PACKETDRILL_OWN=sack-recovery cargo test -p synack-packetdrill --test own one_script -- --ignored --nocapture
//! ```

use std::path::{Path, PathBuf};

use synack_packetdrill::{Expectation, Outcome, Profile, execute, parse, run_traced};

const SCRIPTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts");
const EXPECTATIONS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/expectations/own");

/// A recorded difference from the RFC (see [`Expectation`]).
fn expectation(name: &str) -> Option<Expectation> {
    Expectation::read(&Path::new(EXPECTATIONS).join(format!("{name}.txt")))
}

/// Checks a script's run against its expectation: `Ok` with a label, or
/// `Err` with why it is a failure.
fn judge(path: &Path) -> Result<String, String> {
    let profile = Profile::linux();
    let text = std::fs::read_to_string(path).expect("readable script");
    let script = parse(&text, profile.defines).map_err(|e| format!("parse error: {e}"))?;
    let Some(e) = expectation(&name(path)) else {
        let r = execute(&script, &profile, &[]);
        return match r.outcome {
            Outcome::Pass => Ok("pass".into()),
            other => Err(other.to_string()),
        };
    };
    let tolerate = if e.differ {
        e.lines.clone()
    } else {
        Vec::new()
    };
    let r = execute(&script, &profile, &tolerate);
    let mut at: Vec<usize> = r.tolerated.iter().map(|f| f.line).collect();
    at.sort_unstable();
    at.dedup();
    match r.outcome {
        Outcome::Pass if e.differ && at == e.lines => Ok(format!(
            "known difference: {} [{}]",
            r.tolerated
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "),
            e.reason
        )),
        Outcome::Fail(f) if !e.differ && f.line == e.lines[0] => {
            Ok(format!("known difference: {f} [{}]", e.reason))
        }
        other => Err(format!(
            "{other}, but its expectation says it differs at lines {:?} (differed at {at:?})",
            e.lines
        )),
    }
}

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
        match judge(path) {
            Ok(label) => println!("{}: {label}", name(path)),
            Err(why) => {
                println!("{}: FAILED: {why}", name(path));
                failed.push(format!("{}: {why}", name(path)));
            }
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

/// Every expectation file belongs to a script.
#[test]
fn every_expectation_has_its_script() {
    let dir = std::fs::read_dir(EXPECTATIONS).expect("the expectations/own directory");
    let mut n = 0;
    for entry in dir {
        n += 1;
        let path = entry.expect("directory entry").path();
        let script = Path::new(SCRIPTS).join(format!("{}.pkt", name(&path)));
        assert!(
            script.is_file(),
            "{} has no script {}",
            path.display(),
            script.display()
        );
    }
    assert!(n > 0, "no expectation files in {EXPECTATIONS}");
}

/// A debugging aid, ignored by default: `PACKETDRILL_OWN=<name>` runs that
/// script with its log (`-- --ignored --nocapture`) and fails as the main
/// test would. With `PACKETDRILL_TOLERATE_ALL=1` every mismatch is logged
/// and passed over instead (for writing a script: the log shows everything
/// the engine sent).
#[test]
#[ignore = "a debugging aid: PACKETDRILL_OWN=<name> ... one_script -- --ignored --nocapture"]
fn one_script() {
    let name = std::env::var("PACKETDRILL_OWN").expect("PACKETDRILL_OWN=<script name>");
    let path = Path::new(SCRIPTS).join(format!("{name}.pkt"));
    if std::env::var("PACKETDRILL_TOLERATE_ALL").is_ok() {
        let profile = Profile::linux();
        let text = std::fs::read_to_string(&path).expect("readable script");
        let script = parse(&text, profile.defines).expect("parses");
        let every: Vec<usize> = script.events.iter().map(|e| e.line).collect();
        let r = execute(&script, &profile, &every);
        for l in r.log {
            println!("{l}");
        }
        println!("{name}: {}", r.outcome);
        return;
    }
    let outcome = run_one(&path, true);
    println!("{name}: {outcome}");
    if let Err(why) = judge(&path) {
        panic!("{name}: {why}");
    }
}
