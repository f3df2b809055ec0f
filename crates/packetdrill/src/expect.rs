//! Expectation files: a recorded, legitimate difference between synack and
//! what a script expects (see the crate docs).

use std::path::Path;

/// A known difference, read from `<script>.txt`:
///
/// - `expect: differ`, `line: N [M ...]`, the reason: the script runs with
///   those lines tolerated (the rest is still checked) and must differ at
///   exactly those lines;
/// - `expect: fail`, `line: N`, the reason: the difference makes the rest of
///   the script meaningless; the script must fail at line N.
///
/// The reason names the RFC that allows synack's choice, or that synack
/// departs from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expectation {
    /// `expect: differ`: tolerate the lines and go on.
    pub differ: bool,
    /// The script lines where synack differs.
    pub lines: Vec<usize>,
    /// Why, with the RFC.
    pub reason: String,
}

impl Expectation {
    /// Reads the expectation file at `path`, or `None` if there is none.
    ///
    /// # Panics
    ///
    /// On a file that is not in the format above (a test's setup error).
    pub fn read(path: &Path) -> Option<Expectation> {
        let text = std::fs::read_to_string(path).ok()?;
        let mut lines = text.lines();
        let differ = match lines.next() {
            Some("expect: differ") => true,
            Some("expect: fail") => false,
            other => panic!("{}: unknown expectation {other:?}", path.display()),
        };
        let at: Vec<usize> = lines
            .next()
            .and_then(|l| l.strip_prefix("line: "))
            .map(|l| {
                l.split_whitespace()
                    .filter_map(|n| n.parse().ok())
                    .collect()
            })
            .unwrap_or_default();
        assert!(
            !at.is_empty() && (differ || at.len() == 1),
            "{}: second line must be `line: N` (`line: N M ...` for `expect: differ`)",
            path.display()
        );
        Some(Expectation {
            differ,
            lines: at,
            reason: lines.collect::<Vec<_>>().join(" "),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_both_kinds() {
        let dir = std::env::temp_dir().join(format!("synack-expect-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("a.txt");
        std::fs::write(&f, "expect: differ\nline: 3 7\nRFC 9293 says so.\n").unwrap();
        assert_eq!(
            Expectation::read(&f),
            Some(Expectation {
                differ: true,
                lines: vec![3, 7],
                reason: "RFC 9293 says so.".into()
            })
        );
        assert_eq!(Expectation::read(&dir.join("none.txt")), None);
        std::fs::write(&f, "expect: fail\nline: 3 7\nno\n").unwrap();
        assert!(std::panic::catch_unwind(|| Expectation::read(&f)).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
