//! FreeBSD's TCP test suite (freebsd-net/tcp-testsuite) against synack.
//!
//! The scripts are read from `../shared/conformance/freebsd-tcp-testsuite`
//! beside the repository (never copied into it). Run the report with
//!
//! ```text
//! cargo test -p synack-packetdrill --test freebsd -- --nocapture
//! ```
//!
//! `parse_every_script` parses all of them and fails on a parse error in a
//! group whose parsing is covered; `run_groups` runs the groups, prints a
//! line per script and counts per group (pass / fail / unsupported /
//! expected difference), and fails if a script listed in `PASSING` no longer
//! passes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use synack_packetdrill::{Outcome, Profile, parse, run_file};

const SUITE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/conformance/freebsd-tcp-testsuite"
);

const EXPECTATIONS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/expectations");

/// Groups every script of which must parse.
const PARSE_COVERED: &[&str] = &["snd-syn", "socket-api", "rcv-icmp", "state-event-engine"];

/// Groups the runner executes, with the report printed.
const RUN_GROUPS: &[&str] = &[
    "snd-syn",
    "socket-api",
    "rcv-icmp",
    "state-event-engine",
    "rcv-data-segments",
    "snippets",
];

/// Scripts that pass, one `group/name` a line: a regression from pass fails
/// the test. Regenerate with the `passing:` lines of the report.
const PASSING: &str = include_str!("../expectations/passing.txt");

fn suite() -> PathBuf {
    let dir = PathBuf::from(SUITE);
    assert!(
        dir.is_dir(),
        "the FreeBSD TCP test suite is missing: expected it at {} \
         (clone the repository with `../shared` beside it; see ../shared/conformance/README.md)",
        dir.display()
    );
    dir
}

/// Every `.pkt` file under `dir`, sorted.
fn scripts(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("readable suite directory") {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "pkt") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// The group of a script: the first folder under the suite.
fn group(suite: &Path, script: &Path) -> String {
    script
        .strip_prefix(suite)
        .ok()
        .and_then(|p| p.components().next())
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn name(script: &Path) -> String {
    script
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

#[test]
fn parse_every_script() {
    let suite = suite();
    let profile = Profile::freebsd();
    let mut per_group: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let mut covered_failures = Vec::new();
    for script in scripts(&suite) {
        let g = group(&suite, &script);
        let text = std::fs::read_to_string(&script).expect("readable script");
        let entry = per_group.entry(g.clone()).or_default();
        entry.0 += 1;
        if let Err(e) = parse(&text, profile.defines) {
            entry.1 += 1;
            println!("parse error: {}: {e}", script.display());
            if PARSE_COVERED.contains(&g.as_str()) {
                covered_failures.push(format!("{}: {e}", script.display()));
            }
        }
    }
    println!("\nparsing, per group: scripts / parse failures");
    let mut total = (0, 0);
    for (g, (n, f)) in &per_group {
        println!("  {g:<20} {n:>5} {f:>5}");
        total.0 += n;
        total.1 += f;
    }
    println!("  {:<20} {:>5} {:>5}", "all", total.0, total.1);
    assert!(
        covered_failures.is_empty(),
        "parse errors in covered groups:\n{}",
        covered_failures.join("\n")
    );
}

/// A known, legitimate difference: `expectations/<group>/<script>.txt`
/// holds `expect: fail`, `line: N` (the script line where synack's behaviour
/// departs) and the reason, with the RFC that allows synack's choice.
struct Expectation {
    line: usize,
    reason: String,
}

fn expectation(g: &str, script: &str) -> Option<Expectation> {
    let path = Path::new(EXPECTATIONS)
        .join(g)
        .join(format!("{script}.txt"));
    let text = std::fs::read_to_string(&path).ok()?;
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("expect: fail"), "{}", path.display());
    let line = lines
        .next()
        .and_then(|l| l.strip_prefix("line: "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("{}: second line must be `line: N`", path.display()));
    let reason = lines.collect::<Vec<_>>().join(" ");
    Some(Expectation { line, reason })
}

#[derive(Default)]
struct Counts {
    pass: usize,
    fail: usize,
    unsupported: usize,
    expected: usize,
    parse: usize,
}

#[test]
fn run_groups() {
    let suite = suite();
    let profile = Profile::freebsd();
    let mut counts: BTreeMap<String, Counts> = BTreeMap::new();
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    let mut regressions = Vec::new();
    let mut passing = Vec::new();
    for script in scripts(&suite) {
        let g = group(&suite, &script);
        if !RUN_GROUPS.contains(&g.as_str()) {
            continue;
        }
        let n = name(&script);
        let listed = PASSING.lines().any(|l| l.trim() == format!("{g}/{n}"));
        let outcome = run_file(&script, &profile);
        let c = counts.entry(g.clone()).or_default();
        let label = match &outcome {
            Outcome::Pass => {
                c.pass += 1;
                passing.push(format!("{g}/{n}"));
                "pass".to_string()
            }
            Outcome::Fail(f) => match expectation(&g, &n) {
                Some(e) if e.line == f.line => {
                    c.expected += 1;
                    format!("expected difference: {f} [{}]", e.reason)
                }
                Some(e) => {
                    c.fail += 1;
                    format!("fail (expected a difference at line {} only): {f}", e.line)
                }
                None => {
                    c.fail += 1;
                    format!("fail: {f}")
                }
            },
            Outcome::Unsupported(why) => {
                c.unsupported += 1;
                // Group reasons without their line numbers.
                let key = why.split(" (line").next().unwrap_or(why).to_string();
                *reasons.entry(key).or_default() += 1;
                format!("unsupported: {why}")
            }
            Outcome::ParseError(e) => {
                c.parse += 1;
                format!("parse error: {e}")
            }
        };
        if outcome == Outcome::Pass && expectation(&g, &n).is_some() {
            println!("{g}/{n}: passes now: remove its expectation file");
        }
        if outcome == Outcome::Pass && !listed {
            println!("{g}/{n}: passes now: add it to expectations/passing.txt");
        }
        println!("{g}/{n}: {label}");
        if listed && outcome != Outcome::Pass {
            regressions.push(format!("{g}/{n}: {outcome}"));
        }
    }
    println!("\nper group: pass / fail / unsupported / expected difference / parse error");
    for (g, c) in &counts {
        println!(
            "  {g:<20} {:>4} {:>4} {:>4} {:>4} {:>4}",
            c.pass, c.fail, c.unsupported, c.expected, c.parse
        );
    }
    println!("\nunsupported, by reason:");
    let mut by_count: Vec<_> = reasons.into_iter().collect();
    by_count.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    for (why, n) in by_count {
        println!("  {n:>4}  {why}");
    }
    passing.sort();
    println!("\n{} passing:", passing.len());
    for p in &passing {
        println!("passing: {p}");
    }
    assert!(
        regressions.is_empty(),
        "scripts that passed no longer do:\n{}",
        regressions.join("\n")
    );
}

/// One script with its log: `PACKETDRILL_SCRIPT=state-event-engine/.../x.pkt
/// cargo test -p synack-packetdrill --test freebsd one_script -- --nocapture`.
#[test]
fn one_script() {
    let Ok(rel) = std::env::var("PACKETDRILL_SCRIPT") else {
        return;
    };
    let path = suite().join(rel);
    let profile = Profile::freebsd();
    let text = std::fs::read_to_string(&path).expect("readable script");
    let script = parse(&text, profile.defines).expect("parses");
    let (outcome, log) = synack_packetdrill::run_traced(&script, &profile);
    for l in log {
        println!("{l}");
    }
    println!("{}: {outcome}", path.display());
}
