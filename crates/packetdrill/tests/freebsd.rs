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

use synack_packetdrill::{Expectation, Outcome, Profile, execute, parse};

const SUITE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/conformance/freebsd-tcp-testsuite"
);

const EXPECTATIONS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/expectations");

/// Groups every script of which must parse.
const PARSE_COVERED: &[&str] = &["snd-syn", "socket-api", "rcv-icmp", "state-event-engine"];

/// Groups the runner executes, with the report printed: all of them.
const RUN_GROUPS: &[&str] = &[
    "snd-syn",
    "socket-api",
    "rcv-icmp",
    "state-event-engine",
    "rcv-data-segments",
    "snippets",
    "fast-open",
    "tcp-over-udp",
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

/// A known, legitimate difference, in `expectations/<group>/<script>.txt`
/// (see [`Expectation`]).
fn expectation(g: &str, script: &str) -> Option<Expectation> {
    Expectation::read(
        &Path::new(EXPECTATIONS)
            .join(g)
            .join(format!("{script}.txt")),
    )
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
    // Failures by the shape of what happened instead, with an example.
    let mut failures: BTreeMap<String, (usize, String)> = BTreeMap::new();
    let mut regressions = Vec::new();
    // Scripts whose expectation file no longer describes what happens.
    let mut stale = Vec::new();
    let mut passing = Vec::new();
    for script in scripts(&suite) {
        let g = group(&suite, &script);
        if !RUN_GROUPS.contains(&g.as_str()) {
            continue;
        }
        let n = name(&script);
        let listed = PASSING.lines().any(|l| l.trim() == format!("{g}/{n}"));
        let expected = expectation(&g, &n);
        let text = std::fs::read_to_string(&script).expect("readable script");
        let tolerate = expected
            .as_ref()
            .filter(|e| e.differ)
            .map(|e| e.lines.clone())
            .unwrap_or_default();
        let (outcome, tolerated) = match parse(&text, profile.defines) {
            Ok(parsed) => {
                let r = execute(&parsed, &profile, &tolerate);
                (r.outcome, r.tolerated)
            }
            Err(e) => (Outcome::ParseError(e), Vec::new()),
        };
        let c = counts.entry(g.clone()).or_default();
        let label = match (&outcome, &expected) {
            (Outcome::Pass, None) => {
                c.pass += 1;
                passing.push(format!("{g}/{n}"));
                "pass".to_string()
            }
            (Outcome::Pass, Some(e)) => {
                let mut at: Vec<usize> = tolerated.iter().map(|f| f.line).collect();
                at.sort_unstable();
                at.dedup();
                let differences = tolerated
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ");
                if e.differ && at == e.lines {
                    c.expected += 1;
                    format!("expected difference: {differences} [{}]", e.reason)
                } else {
                    c.fail += 1;
                    stale.push(format!("{g}/{n}"));
                    format!(
                        "fail: differs at lines {at:?}, its expectation says {:?}: {differences}",
                        e.lines
                    )
                }
            }
            (Outcome::Fail(f), Some(e)) if !e.differ && f.line == e.lines[0] => {
                c.expected += 1;
                format!("expected difference: {f} [{}]", e.reason)
            }
            (Outcome::Fail(f), e) => {
                c.fail += 1;
                let shape: String = f
                    .actual
                    .chars()
                    .map(|ch| if ch.is_ascii_digit() { 'N' } else { ch })
                    .collect();
                let shape = shape
                    .replace("NN", "N")
                    .replace("NN", "N")
                    .replace("NN", "N");
                failures
                    .entry(shape)
                    .or_insert_with(|| (0, format!("{g}/{n}: {f}")))
                    .0 += 1;
                // An expectation no longer holds if a difference it
                // announces before the failure did not happen.
                let missing = e.as_ref().is_some_and(|e| {
                    !e.differ
                        || e.lines
                            .iter()
                            .any(|l| *l < f.line && !tolerated.iter().any(|t| t.line == *l))
                });
                if missing {
                    stale.push(format!("{g}/{n}"));
                }
                let after = if tolerated.is_empty() {
                    String::new()
                } else {
                    format!(" (after the expected differences at lines {tolerate:?})")
                };
                format!("fail: {f}{after}")
            }
            (Outcome::Unsupported(why), _) => {
                c.unsupported += 1;
                // Group reasons without their line numbers.
                let key = why
                    .split(" (line")
                    .next()
                    .unwrap_or(why)
                    .trim_end_matches(';')
                    .to_string();
                *reasons.entry(key).or_default() += 1;
                format!("unsupported: {why}")
            }
            (Outcome::ParseError(e), _) => {
                c.parse += 1;
                format!("parse error: {e}")
            }
        };
        if outcome == Outcome::Pass && expected.is_none() && !listed {
            println!("{g}/{n}: passes now: add it to expectations/passing.txt");
        }
        println!("{g}/{n}: {label}");
        if listed && (outcome != Outcome::Pass || expected.is_some()) {
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
    println!("\nfailures, by what happened instead (numbers elided), with an example:");
    let mut by_count: Vec<_> = failures.into_iter().collect();
    by_count.sort_by(|a, b| b.1.0.cmp(&a.1.0).then(a.0.cmp(&b.0)));
    for (shape, (n, example)) in by_count {
        println!("  {n:>4}  {shape}\n        e.g. {example}");
    }
    passing.sort();
    println!("\n{} passing:", passing.len());
    for p in &passing {
        println!("passing: {p}");
    }
    assert!(
        stale.is_empty(),
        "scripts whose expectation file no longer holds:\n{}",
        stale.join("\n")
    );
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
