//! The shell side of the vireoctl rig tests: the helpers every script starts with (an isolated
//! XDG home, bounded vireoctl calls and waits, steps, failures with the machine's logs), the
//! events-and-done ending, and the runner that checks a script's steps and events.

use std::time::{Duration, Instant};

/// Runs `script` in the rig and checks that it ran to `STEP done` and printed `expected` between
/// EVENTS-BEGIN and EVENTS-END, within `last_resort_secs`. Each script gets a fresh L1 (the
/// tests take turns on the rig's lock): a nested L1 that had run a dozen L2 machines was seen to
/// panic with a corrupted kernel stack or to freeze, so no L1 runs more than one script's boots.
pub fn run_in_rig(label: &str, script: &str, expected: &[String], last_resort_secs: u64) {
    let start = Instant::now();
    // The script's own bounds fail it well before `last_resort_secs`; that is the last resort
    // against a stalled L1 (the rig then kills L1 and runs the command once more on a fresh
    // one). A boot that triple-faults when the script did not crash the guest is the nested
    // rig's: QEMU's TCG emulation of SVM was caught running L2 on L1's state, with QEMU as the
    // L2 launcher too. The script then runs once more, on a fresh L1 (and the rerun counts
    // against the suite's budget).
    let out = vireo_rig::run_command_fresh_again_if_lost(
        script,
        Duration::from_secs(last_resort_secs),
        |out| {
            // Also from a script that passed: a crash that on_crash restarted away
            // leaves its events differing from the expected ones.
            out.lines
                .iter()
                .filter(|l| l.text.starts_with("UNEXPECTED-L2-CRASH"))
                .map(|l| l.text.clone())
                .collect()
        },
    )
    .unwrap_or_else(|e| panic!("{label}: rig: {e}"));
    let text: Vec<String> = out
        .lines
        .iter()
        .map(|l| format!("[{:7.1}] {}", l.at.as_secs_f64(), l.text))
        .collect();
    let steps: Vec<&String> = text
        .iter()
        .filter(|l| l.contains("STEP ") || l.contains("vnc-check:") || l.contains("-UNANSWERED "))
        .collect();
    eprintln!(
        "{label}: {:.0} s; steps: {steps:#?}",
        start.elapsed().as_secs_f64()
    );
    let report = || vireo_rig::report::digest_for_test(&text.join("\n"));
    assert_eq!(out.status, 0, "rig script failed:\n{}", report());
    assert!(
        text.iter().any(|l| l.contains("STEP done")),
        "the script stopped before STEP done:\n{}",
        report()
    );
    let events: Vec<String> = out
        .lines
        .iter()
        .map(|l| l.text.trim().to_owned())
        .skip_while(|l| l != "EVENTS-BEGIN")
        .take_while(|l| l != "EVENTS-END")
        .filter(|l| l.starts_with("event '"))
        .collect();
    let mut retried = Vec::new();
    for l in &out.lines {
        if let Some(rest) = l.text.strip_prefix(BOOT_RETRY) {
            vireo_rig::reruns::note("one L2 boot of the script", rest);
            if let Some(m) = rest.split_whitespace().next() {
                retried.push(m.to_owned());
            }
        }
    }
    let events = without_retried_boots(events, &retried);
    assert_eq!(events, expected, "{}", report());
}

/// The line a script prints when it started a machine once more after its boot was lost to
/// an unexpected crash (`booted`), followed by the machine's name.
pub const BOOT_RETRY: &str = "L2-BOOT-RETRY ";

/// `events` without, for each machine in `retried`, the crash and the start that a retried
/// boot (`booted`) added to them: its first "Crashed Panicked", "Stopped Crashed",
/// "Started Booted" in a row. Each retry is a rerun in the ledger, so the budget still sees it.
pub fn without_retried_boots(mut events: Vec<String>, retried: &[String]) -> Vec<String> {
    for m in retried {
        let lost = lifecycle_events(
            m,
            &["Crashed Panicked", "Stopped Crashed", "Started Booted"],
        );
        if let Some(at) = events
            .windows(lost.len())
            .position(|w| w == lost.as_slice())
        {
            events.drain(at..at + lost.len());
        }
    }
    events
}

/// The shell helpers of every script here: machine `$M` in its own XDG home `$X` (runtime
/// directory `$R`, serial log `$S`), `step`, `fail` (with the machine's logs and events), `v`
/// (vireoctl with a bound) and bounded waits that fail with the step.
pub fn shell_helpers(name: &str, vireoctl: &str, vmm: &str) -> String {
    format!(
        r#"
set -u
M={name}
X=/tmp/vireoctl-rig-$M; rm -rf $X; mkdir -p $X
export XDG_CONFIG_HOME=$X/c XDG_RUNTIME_DIR=$X/r XDG_DATA_HOME=$X/d XDG_CACHE_HOME=$X/k VIREO_VMM={vmm}
R=$X/r/vireo/$M
S=$R/serial.log
T0=$(date +%s)
STEP=init; C0=0; CX=0
# The guest's deaths the helper logged ("guest crashed: " and why). A step may cause some on
# purpose (expect_crash: triple faults); any other is the nested rig's (see run_in_rig): mostly
# triple faults, once L1's KVM failing to emulate an instruction in real mode (at 0x9e18 just
# after SeaBIOS jumped to GRUB's boot sector, on the bytes 0f da, MMX's pminub), and once a
# crash that on_crash restarted away left only its events behind, its kind unknown (a triple
# fault would have been seen). A helper that dies any other way is no guest's death: it fails.
crashes() {{ c=$(grep -c 'vireo-vmm: guest crashed: ' "$R/vmm.log" 2>/dev/null); echo "${{c:-0}}"; }}
# A step whose unexpected crash on_crash restarted away still says so, when the next
# step starts: its events would differ, and the boot was the nested rig's to lose.
unexpected() {{ [ $(( $(crashes) - C0 )) -gt $CX ]; }}
unexpected_crashes() {{
    unexpected && echo "UNEXPECTED-L2-CRASH in step $STEP: $(grep 'guest crashed: ' $R/vmm.log | tail -n 1)"
    return 0
}}
# booted FUNCTION [FROM_OFF]: FUNCTION boots $M (from shut off, or on from where FROM_OFF, which
# starts it, left it). A boot lost to an unexpected crash gets one more start
# (L2-BOOT-RETRY: the host writes it down as a rerun and leaves its crash and start out of the
# events), not a rerun of the whole script.
booted() {{
    "$1" && return 0
    unexpected || return 1
    echo "L2-BOOT-RETRY $M in step $STEP: $(grep 'guest crashed: ' $R/vmm.log | tail -n 1)"
    wait_state "shut off (crashed)" 60 || return 1
    C0=$(crashes)
    if [ $# -gt 1 ]; then "$2" || return 1; fi
    "$1"
}}
step() {{ unexpected_crashes; STEP=$1; C0=$(crashes); CX=0; echo "STEP $* (+$(( $(date +%s) - T0 ))s)"; }}
expect_crash() {{ CX=$((CX + 1)); }}
fail() {{
    echo "FAIL in step $STEP: $*"
    unexpected_crashes
    for f in $R/vmm.log $R/supervisor.log $R/serial.log $R/state.json; do [ -f "$f" ] && {{ echo "== $f"; tail -n 40 "$f"; }}; done
    timeout 20 {vireoctl} event --all --timeout 0
    exit 1
}}
# vireoctl with a bound: SECONDS ARGS... (exit 124 when it had to be killed)
v() {{
    t=$1; shift
    timeout -k 5 "$t" {vireoctl} "$@"; rc=$?
    [ $rc -eq 124 ] || [ $rc -eq 137 ] && echo "vireoctl $* did not finish within $t s"
    return $rc
}}
# pattern seconds (wall clock: commands are slow under TCG). A boot the nested rig lost (an
# unexpected crash) ends the wait early: nothing more will come.
wait_serial() {{
    end=$(( $(date +%s) + $2 )); n=0
    while [ $(date +%s) -lt $end ]; do
        grep -q "$1" "$S" 2>/dev/null && return 0
        n=$((n + 1))
        if [ $((n % 10)) -eq 0 ] && unexpected; then
            echo "stopped waiting for '$1' on the serial console: the machine triple-faulted"; return 1
        fi
        sleep 0.2
    done
    echo "waited $2 s for '$1' on the serial console"; return 1
}}
wait_state() {{ # state seconds
    end=$(( $(date +%s) + $2 ))
    while [ $(date +%s) -lt $end ]; do
        [ "$(v 30 domstate --reason $M 2>&1)" = "$1" ] && return 0
        sleep 0.2
    done
    echo "waited $2 s for state '$1', last: $(v 30 domstate --reason $M 2>&1)"; return 1
}}
state_is() {{ [ "$(v 30 domstate --reason $M 2>&1)" = "$1" ] || fail "state '$(v 30 domstate --reason $M 2>&1)', expected '$1'"; }}
type_line() {{ printf '%s\n' "$1" | v 60 console $M >/dev/null || fail "console: $1"; }}
"#
    )
}

/// The end of every script here: the machine's events, then the last step.
pub const EVENTS_AND_DONE: &str = r#"
echo "HELPER-ENDS: $(grep -e 'vireo-vmm ended: ' $R/vmm.log | sed 's/, decision.*//' | tail -n 12 | tr '\n' ';')"
echo EVENTS-BEGIN
v 30 event --all --domain $M --timeout 0
echo EVENTS-END
step done
"#;

/// The lines `vireoctl event` prints for machine `name`: "reboot" is the reboot event, anything
/// else a lifecycle event with that detail.
pub fn lifecycle_events(name: &str, spec: &[&str]) -> Vec<String> {
    spec.iter()
        .map(|s| match *s {
            "reboot" => format!("event 'reboot' for domain '{name}'"),
            s => format!("event 'lifecycle' for domain '{name}': {s}"),
        })
        .collect()
}
