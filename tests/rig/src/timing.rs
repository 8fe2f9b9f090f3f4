//! The timing breakdown: every phase the rig measures (L1 boot, L2 boot, each scenario, each
//! command) is recorded here; the runner prints it, tests can read it.

use std::sync::Mutex;
use std::time::Duration;

static RECORDS: Mutex<Vec<(String, Duration)>> = Mutex::new(Vec::new());

/// Records that `what` took `took`.
pub fn record(what: impl Into<String>, took: Duration) {
    RECORDS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push((what.into(), took));
}

/// Everything recorded so far in this process, in order.
pub fn all() -> Vec<(String, Duration)> {
    RECORDS.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

/// A printable table of [`all`].
pub fn report() -> String {
    let mut out = String::from("vireo-rig timing breakdown:\n");
    for (what, took) in all() {
        out.push_str(&format!("  {:>8.2} s  {what}\n", took.as_secs_f64()));
    }
    out
}

/// The breakdown in a few lines: L1 boots, each L2 boot and scenario, the L1 commands in sum,
/// and how often the rig had to recover (agent resends and queries, fresh L1s).
pub fn summary() -> String {
    summarize(&all())
}

fn summarize(records: &[(String, Duration)]) -> String {
    let secs = |d: &Duration| format!("{:.1} s", d.as_secs_f64());
    let pick = |prefix: &str| -> Vec<(&str, &Duration)> {
        records
            .iter()
            .filter_map(|(w, d)| w.strip_prefix(prefix).map(|rest| (rest, d)))
            .collect()
    };
    let mut out = String::from("vireo-rig timing summary:\n");
    let boots = pick("L1 boot");
    let list = |v: &[(&str, &Duration)]| -> String {
        v.iter()
            .map(|(w, d)| {
                let w = w.trim();
                let w = w
                    .strip_prefix('(')
                    .and_then(|w| w.strip_suffix(')'))
                    .unwrap_or(w);
                format!("{w}: {}", secs(d))
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    out.push_str(&format!("  L1 boots: {} ({})\n", boots.len(), list(&boots)));
    let l2 = pick("L2 boot ");
    if !l2.is_empty() {
        out.push_str(&format!("  L2 boots: {}\n", list(&l2)));
    }
    let runs = pick("L2 run total ");
    if !runs.is_empty() {
        out.push_str(&format!(
            "  scenarios (boot + script + power-off): {}\n",
            list(&runs)
        ));
    }
    let cmds = pick("L1 command");
    if !cmds.is_empty() {
        let total: Duration = cmds.iter().map(|(_, d)| **d).sum();
        let longest = cmds.iter().map(|(_, d)| **d).max().unwrap_or_default();
        out.push_str(&format!(
            "  L1 commands: {}, {} in all, longest {}\n",
            cmds.len(),
            secs(&total),
            secs(&longest)
        ));
    }
    let recoveries = pick("agent recovery: ").len();
    let fresh = records
        .iter()
        .filter(|(w, _)| w.ends_with("command retried"))
        .count();
    out.push_str(&format!(
        "  recoveries: {recoveries} by the agent protocol, {fresh} on a fresh L1\n"
    ));
    out
}

/// Prints [`summary`] to stderr when the process exits (once per process, from the first
/// call): a test binary has no other place to print what its tests measured all together.
pub fn print_summary_at_exit() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    extern "C" fn at_exit() {
        let text = summary();
        // Plain write(2): std's stderr may already be torn down while exit handlers run.
        // SAFETY: writes from a valid buffer of the given length.
        unsafe { libc::write(2, text.as_ptr().cast(), text.len()) };
    }
    ONCE.call_once(|| {
        // SAFETY: registers a plain function with no preconditions.
        unsafe { libc::atexit(at_exit) };
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_groups_boots_scenarios_commands_and_recoveries() {
        let d = Duration::from_millis;
        let r = |w: &str, ms| (w.to_owned(), d(ms));
        let s = summarize(&[
            r("L1 boot (attempt 1)", 9_900),
            r("L1 command", 1_000),
            r("L1 command", 20_000),
            r("agent recovery: resend (damaged)", 0),
            r("L2 boot (stock via qemu)", 12_340),
            r("L2 scenario (stock)", 700),
            r("L2 run total (stock, 1 attempt(s))", 25_000),
            r("L1 stall, command retried", 0),
        ]);
        assert_eq!(
            s,
            "vireo-rig timing summary:\n  \
             L1 boots: 1 (attempt 1: 9.9 s)\n  \
             L2 boots: stock via qemu: 12.3 s\n  \
             scenarios (boot + script + power-off): stock, 1 attempt(s): 25.0 s\n  \
             L1 commands: 2, 21.0 s in all, longest 20.0 s\n  \
             recoveries: 1 by the agent protocol, 1 on a fresh L1\n"
        );
    }
}
