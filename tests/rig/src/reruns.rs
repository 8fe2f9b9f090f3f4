//! The ledger of reruns. The rig reruns work that the nested rig (not the code under test) is
//! known to lose now and then: a command whose L1 died or stalled, a script whose L2 boot was
//! lost, an L2 boot that triple-faulted before its init. A rerun also hides a real bug that
//! strikes one time in three, so each one is written down: to the test's stderr, and as one
//! line in a ledger file that the suite reads at the end of a run and holds to a budget
//! (tests/suite.sh, `VIREO_RIG_RERUN_BUDGET`).
//!
//! A command rerun because L1 itself died or froze (its kernel panicked, its console fell
//! silent, its QEMU exited) is written as `L1-RERUN` and held to a budget of its own
//! (`VIREO_RIG_L1_RERUN_BUDGET`): nothing the tests run has booted when L1's kernel, under
//! QEMU's emulation, corrupts its stack, and those losses grow with the minutes L1 runs, not
//! with the boots. Lost L2 boots, where a bug of ours could hide, keep theirs.
//!
//! The ledger is `$VIREO_RIG_RERUN_LEDGER`, else `reruns.log` in [`crate::report::log_dir`].
//! Each line: the test (libtest names each test's thread after it), what was rerun, and why.

use std::cell::Cell;
use std::io::Write;
use std::path::PathBuf;

thread_local! {
    static EXPECTED: Cell<bool> = const { Cell::new(false) };
}

/// Where reruns are written down.
pub fn ledger() -> PathBuf {
    std::env::var_os("VIREO_RIG_RERUN_LEDGER")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::report::log_dir().join("reruns.log"))
}

/// Writes down one rerun of `what`, for `why`. Reruns that a test of the rerun machinery made on
/// purpose ([`expected_in_this_thread`]) are marked so and do not count against the budget.
pub fn note(what: &str, why: &str) {
    write_down("RERUN", what, why);
}

/// [`note`] for a command rerun because L1 itself failed under it (see the module's docs).
pub fn note_l1(what: &str, why: &str) {
    write_down("L1-RERUN", what, why);
}

fn write_down(counted_kind: &str, what: &str, why: &str) {
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("?");
    let expected = EXPECTED.with(Cell::get);
    let kind = if expected {
        "EXPECTED-RERUN"
    } else {
        counted_kind
    };
    let why = why.replace(['\n', '\t'], " ");
    eprintln!("vireo-rig: {kind} in {test}: {what} ({why})");
    let line = format!("{kind}\t{test}\t{what}\t{why}\n");
    let path = ledger();
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    // One write(2) of one line in append mode: lines from concurrent tests do not interleave.
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut f| f.write_all(line.as_bytes()));
    if let Err(e) = written {
        // The budget cannot be held without the ledger: fail the test rather than pass quietly.
        panic!(
            "vireo-rig: cannot write the rerun ledger {}: {e}",
            path.display()
        );
    }
}

/// Marks reruns made by this thread from now on as expected: for tests of the rerun itself.
pub fn expected_in_this_thread() {
    EXPECTED.with(|e| e.set(true));
}

/// The reruns in a ledger's text that count against the budget.
pub fn counted(ledger_text: &str) -> Vec<&str> {
    of_kind(ledger_text, "RERUN")
}

/// The reruns in a ledger's text that count against L1's budget.
pub fn counted_l1(ledger_text: &str) -> Vec<&str> {
    of_kind(ledger_text, "L1-RERUN")
}

fn of_kind<'a>(ledger_text: &'a str, kind: &str) -> Vec<&'a str> {
    ledger_text
        .lines()
        .filter(|l| {
            l.strip_prefix(kind)
                .is_some_and(|rest| rest.starts_with('\t'))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_reruns_are_written_down_but_not_counted() {
        let text =
            "RERUN\tt1\tscript\tlost\nEXPECTED-RERUN\tt2\tscript\ttest\nRERUN\tt3\tcmd\tL1\n";
        assert_eq!(counted(text).len(), 2);
        assert_eq!(counted("").len(), 0);
    }

    #[test]
    fn l1_failures_are_counted_apart_from_lost_boots() {
        let text = "L1-RERUN\tt1\tcmd\tpanic\nRERUN\tt2\tscript\tlost\nL1-RERUN\tt3\tcmd\tstall\n";
        assert_eq!(counted_l1(text).len(), 2);
        assert_eq!(counted(text).len(), 1);
    }
}
