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
