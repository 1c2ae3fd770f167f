//! What the public-corpus tests (x509-limbo, NIST PKITS, Wycheproof JOSE, OCSP vectors) share:
//! where a corpus is, the `[[exception]]` file that excuses knowing divergences, the tally of
//! outcomes with its summary, and running one vector with its panic caught.
//!
//! Every corpus test keeps the same rules. Without its corpus it says so loudly and passes,
//! having checked nothing, so a machine without the corpora still runs the rest of the suite.
//! Each check must reach the corpus's verdict or be listed, with a reason, in the test's
//! exceptions file. A listed check that agrees again, is skipped or has left the corpus is a
//! stale exception and fails the test, so the file never outlives what it excuses. What a test
//! may excuse at all (a fail-open, say) is the test's own rule, decided before it records.

use std::borrow::Borrow;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The environment variable naming the folder that holds the corpora, one subfolder each.
pub const TESTDATA_VAR: &str = "SPINEGATE_TESTDATA";

/// A corpus test's justified exceptions: the ids of checks that knowingly differ from the
/// corpus's verdict, each with a non-blank reason.
#[derive(Debug, Default)]
pub struct Exceptions {
    by_id: BTreeMap<String, String>,
}

/// The outcomes of a corpus run, as its summary line counts them. Lines are kept whole so a test
/// may add its own; [`Tally::print_findings`] prints them in the order pushed.
#[derive(Debug, Default)]
pub struct Tally {
    /// Checks that reached the corpus's verdict and are not listed.
    pub pass: usize,
    /// Listed checks that differ as their exception says: `<id>: expected …, got …`.
    pub divergent: Vec<String>,
    /// Unexplained outcomes, printed as they are: each starts with its kind (`FAIL`,
    /// `FAIL-OPEN`, `PANIC` …); [`Tally::fail`] adds `FAIL`.
    pub failures: Vec<String>,
    /// Exceptions that no longer excuse anything: `<id>: listed, but …`.
    pub stale: Vec<String>,
    /// Checks or corpus entries not run, by reason.
    pub skipped: BTreeMap<&'static str, usize>,
}

/// An exceptions file: `[[exception]]` tables with exactly `id` and `reason`; none at all is
/// allowed (a corpus the code under test fully agrees with).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExceptionsFile {
    #[serde(default)]
    exception: Vec<Exception>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Exception {
    id: String,
    reason: String,
}

impl Exceptions {
    /// Parses `text`, the exceptions file `file` (named in every message).
    ///
    /// # Panics
    /// On a malformed file, an unknown key, a blank reason or a repeated id: each fails the test
    /// that reads the file.
    #[track_caller]
    pub fn parse(file: &str, text: &str) -> Self {
        let parsed: ExceptionsFile = toml::from_str(text).unwrap_or_else(|e| panic!("{file}: {e}"));
        let mut by_id = BTreeMap::new();
        for Exception { id, reason } in parsed.exception {
            assert!(!reason.trim().is_empty(), "{file}: {id} has no reason");
            assert!(by_id.insert(id.clone(), reason).is_none(), "{file}: {id} is listed twice");
        }
        Self { by_id }
    }

    /// Whether check `id` is listed.
    pub fn contains(&self, id: &str) -> bool {
        self.by_id.contains_key(id)
    }

    /// The listed ids, in order.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.by_id.keys().map(String::as_str)
    }
}

impl Tally {
    /// Counts one check against the corpus's verdict: `agrees` whether it reached that verdict,
    /// `excepted` whether it is listed. Agreeing and unlisted is a pass; agreeing and listed, a
    /// stale exception; differing and listed, an expected divergence; differing and unlisted, a
    /// failure. `expected` and `got` are shown as they will be read in the lines.
    pub fn record(
        &mut self,
        check: &str,
        expected: impl fmt::Display,
        got: impl fmt::Display,
        agrees: bool,
        excepted: bool,
    ) {
        match (agrees, excepted) {
            (true, false) => self.pass += 1,
            (true, true) => self.stale.push(format!("{check}: listed, but now {got} as expected")),
            (false, true) => self.divergent.push(format!("{check}: expected {expected}, got {got}")),
            (false, false) => self.fail(format_args!("{check}: expected {expected}, got {got}")),
        }
    }

    /// Counts one check not run for reason `label`; a listed one is a stale exception, since a
    /// skipped check cannot diverge.
    pub fn skip(&mut self, check: &str, label: &'static str, excepted: bool) {
        self.count_skipped(label, 1);
        if excepted {
            self.stale.push(format!("{check}: listed, but skipped ({label})"));
        }
    }

    /// Counts `count` corpus entries not run for reason `label`, which no exception can name.
    pub fn count_skipped(&mut self, label: &'static str, count: usize) {
        *self.skipped.entry(label).or_default() += count;
    }

    /// An unexplained outcome, printed as `FAIL <line>`.
    pub fn fail(&mut self, line: impl fmt::Display) {
        self.failures.push(format!("FAIL {line}"));
    }

    /// Marks as stale every listed id that no check used (`seen` holds the ids of every check
    /// run or skipped), saying `<id>: listed, but <why>`.
    pub fn stale_unless_seen<S: Borrow<str> + Ord>(&mut self, exceptions: &Exceptions, seen: &BTreeSet<S>, why: &str) {
        for id in exceptions.ids().filter(|id| !seen.contains(*id)) {
            self.stale.push(format!("{id}: listed, but {why}"));
        }
    }

    /// Prints each expected divergence, failure and stale exception on its own line.
    pub fn print_findings(&self) {
        for line in &self.divergent {
            println!("expected divergence: {line}");
        }
        for line in &self.failures {
            println!("{line}");
        }
        for line in &self.stale {
            println!("STALE exception: {line}");
        }
    }

    /// The summary line: `<corpus>: N pass, N fail, N expected-divergence (exceptions), N skipped
    /// (<reason>: N, …)`.
    pub fn summary(&self, corpus: &str) -> String {
        format!(
            "{corpus}: {} pass, {} fail, {} expected-divergence (exceptions), {} skipped ({})",
            self.pass,
            self.failures.len(),
            self.divergent.len(),
            self.skipped.values().sum::<usize>(),
            counts(&self.skipped)
        )
    }

    /// Fails the test if any outcome is unexplained or any exception stale, as
    /// `N unexplained <unexplained> and N stale exceptions (listed above)`.
    #[track_caller]
    pub fn assert_clean(&self, unexplained: &str) {
        assert!(
            self.failures.is_empty() && self.stale.is_empty(),
            "{} unexplained {unexplained} and {} stale exceptions (listed above)",
            self.failures.len(),
            self.stale.len()
        );
    }
}

/// Where corpus `name` is: `$SPINEGATE_TESTDATA/<name>`, else `shared/testdata/<name>` beside
/// the workspace. Whether it is there is the test's to check, by the file it cannot run without.
pub fn dir(name: &str) -> PathBuf {
    let testdata = match std::env::var_os(TESTDATA_VAR) {
        Some(dir) => PathBuf::from(dir),
        // Every crate of the workspace sits one folder below its root; the corpora sit beside it.
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("..").join("shared").join("testdata"),
    };
    testdata.join(name)
}

/// Says, on stderr, that the corpus is not at `missing` and no `what` (`"PKITS case"`) was
/// checked. The test then returns and passes, so this line is all that shows it checked nothing.
pub fn announce_missing(missing: &Path, what: &str) {
    eprintln!("SKIPPED: corpus not found at {}; no {what} was checked", missing.display());
}

/// `label: N, …` for each reason, or `none`.
pub fn counts(by_label: &BTreeMap<&str, usize>) -> String {
    if by_label.is_empty() {
        return "none".to_owned();
    }
    by_label.iter().map(|(label, n)| format!("{label}: {n}")).collect::<Vec<_>>().join(", ")
}

/// Runs `f`, turning a panic into its message: a panic on a corpus input is a finding to report
/// with the vector's id, not a reason to stop checking the others. The caller vouches that
/// nothing `f` borrows is used after a panic except to read it, which makes the
/// [`AssertUnwindSafe`] sound.
pub fn guarded<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    panic::catch_unwind(AssertUnwindSafe(f)).map_err(|payload| {
        payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "non-string panic payload".to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO: &str = "
        # a comment
        [[exception]]
        id = \"a\"
        reason = \"known\"

        [[exception]]
        id = \"b\"
        reason = \"also known\"
    ";

    #[test]
    fn exceptions_are_read_by_id() {
        let exceptions = Exceptions::parse("x.toml", TWO);
        assert!(exceptions.contains("a") && exceptions.contains("b") && !exceptions.contains("c"));
        assert_eq!(exceptions.ids().collect::<Vec<_>>(), ["a", "b"]);
    }

    #[test]
    fn an_exceptions_file_without_exceptions_is_empty() {
        assert_eq!(Exceptions::parse("x.toml", "# none yet\n").ids().count(), 0);
    }

    #[test]
    #[should_panic(expected = "x.toml: a has no reason")]
    fn a_blank_reason_is_refused() {
        Exceptions::parse("x.toml", "[[exception]]\nid = \"a\"\nreason = \" \"\n");
    }

    #[test]
    #[should_panic(expected = "x.toml: a is listed twice")]
    fn a_repeated_id_is_refused() {
        Exceptions::parse("x.toml", &format!("{TWO}[[exception]]\nid = \"a\"\nreason = \"again\"\n"));
    }

    #[test]
    #[should_panic(expected = "unknown field `severity`")]
    fn an_unknown_key_is_refused() {
        Exceptions::parse("x.toml", "[[exception]]\nid = \"a\"\nreason = \"r\"\nseverity = \"low\"\n");
    }

    #[test]
    fn record_sorts_by_agreement_and_listing() {
        let mut tally = Tally::default();
        tally.record("p", "Good", "Good", true, false);
        tally.record("s", "Good", "Good", true, true);
        tally.record("d", "Good", "Revoked", false, true);
        tally.record("f", "Good", "Revoked", false, false);
        assert_eq!(tally.pass, 1);
        assert_eq!(tally.stale, ["s: listed, but now Good as expected"]);
        assert_eq!(tally.divergent, ["d: expected Good, got Revoked"]);
        assert_eq!(tally.failures, ["FAIL f: expected Good, got Revoked"]);
    }

    #[test]
    fn listed_checks_that_are_skipped_or_unseen_are_stale() {
        let exceptions = Exceptions::parse("x.toml", TWO);
        let mut tally = Tally::default();
        tally.skip("a", "crl", exceptions.contains("a"));
        tally.count_skipped("crl", 2);
        tally.stale_unless_seen(&exceptions, &BTreeSet::from(["a"]), "not in the corpus");
        assert_eq!(tally.skipped, BTreeMap::from([("crl", 3)]));
        assert_eq!(tally.stale, ["a: listed, but skipped (crl)", "b: listed, but not in the corpus"]);
    }

    #[test]
    fn summary_counts_every_outcome() {
        let mut tally = Tally::default();
        assert_eq!(tally.summary("c"), "c: 0 pass, 0 fail, 0 expected-divergence (exceptions), 0 skipped (none)");
        tally.record("p", "Good", "Good", true, false);
        tally.record("d", "Good", "Revoked", false, true);
        tally.count_skipped("crl", 2);
        tally.count_skipped("policy", 1);
        assert_eq!(
            tally.summary("c"),
            "c: 1 pass, 0 fail, 1 expected-divergence (exceptions), 3 skipped (crl: 2, policy: 1)"
        );
    }

    #[test]
    #[should_panic(expected = "1 unexplained c failures and 0 stale exceptions (listed above)")]
    fn an_unexplained_failure_fails_the_run() {
        let mut tally = Tally::default();
        tally.fail("x");
        tally.assert_clean("c failures");
    }

    #[test]
    fn guarded_returns_the_value_or_the_panic_message() {
        assert_eq!(guarded(|| 7), Ok(7));
        assert_eq!(guarded(|| -> u8 { panic!("static") }), Err("static".to_owned()));
        assert_eq!(guarded(|| -> u8 { panic!("formatted {}", 1) }), Err("formatted 1".to_owned()));
    }
}
