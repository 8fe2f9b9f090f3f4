//! End to end through the nested-KVM rig (directly on a host with hardware KVM): the quick
//! machine made by `vireoctl create --quick` from Debian's stock kernel boots under vireo-vmm,
//! answers on its serial console and on its VNC screen (keys typed over RFB reach the shell on
//! the framebuffer console, whose output shows in the RFB frame and in `vireoctl screenshot`),
//! is suspended and resumed, reset, shut down gracefully on the ACPI power button, restarted by
//! on_reboot=restart after a guest reboot and by on_crash=restart after a kernel crash (reboot=t
//! turns the panic's restart into a triple fault, the VMM's "crash"), and is found again after
//! the vireoctl that started it was killed. The events of the whole run are checked in order.
//!
//! Every wait in the script is bounded and fails with the step and what was awaited; a stalled
//! L1 is the rig's to detect (command timeout + 60 s, then L1 is killed).
//!
//! Needs: `cargo build -p vireo-vmm --bins && cargo build --bin vireoctl` (the rig shares the
//! target dir with L1), QEMU, apt access for the kernel package (cached in ~/.cache/vireo-rig),
//! and /usr/bin/python3 for the VNC peer (tests/vireoctl_support/vnc_check.py).

mod vireoctl_support;

use std::time::{Duration, Instant};

fn script(vireoctl: &str, vmm: &str, kernel: &str, modules: &str, check: &str) -> String {
    format!(
        r#"
set -u
X=/tmp/vireoctl-rig; rm -rf $X; mkdir -p $X
export XDG_CONFIG_HOME=$X/c XDG_RUNTIME_DIR=$X/r XDG_DATA_HOME=$X/d XDG_CACHE_HOME=$X/k VIREO_VMM={vmm}
S=$X/r/vireo/q/serial.log
T0=$(date +%s)
STEP=init
step() {{ STEP=$1; echo "STEP $* (+$(( $(date +%s) - T0 ))s)"; }}
fail() {{
    echo "FAIL in step $STEP: $*"
    for f in $X/r/vireo/*/vmm.log $X/r/vireo/*/supervisor.log $X/r/vireo/*/serial.log; do [ -f "$f" ] && {{ echo "== $f"; tail -n 40 "$f"; }}; done
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
wait_serial() {{ # pattern seconds (wall clock: commands are slow under TCG)
    end=$(( $(date +%s) + $2 ))
    while [ $(date +%s) -lt $end ]; do
        grep -q "$1" "$S" 2>/dev/null && return 0
        sleep 0.2
    done
    echo "waited $2 s for '$1' on the serial console"; return 1
}}
wait_state() {{ # state seconds
    end=$(( $(date +%s) + $2 ))
    while [ $(date +%s) -lt $end ]; do
        [ "$(v 30 domstate --reason q 2>&1)" = "$1" ] && return 0
        sleep 0.2
    done
    echo "waited $2 s for state '$1', last: $(v 30 domstate --reason q 2>&1)"; return 1
}}
state_is() {{ [ "$(v 30 domstate --reason q 2>&1)" = "$1" ] || fail "state '$(v 30 domstate --reason q 2>&1)', expected '$1'"; }}
type_line() {{ printf '%s\n' "$1" | v 60 console q >/dev/null || fail "console: $1"; }}
check() {{ timeout -k 5 180 /usr/bin/python3 {check} "$@"; }}

step create
v 300 create --quick --kernel {kernel} --modules {modules} --name q --memory 256 --network none --on-crash restart || fail "create --quick"
step start
v 120 start q || fail start
wait_serial "vireo-quick: ready" 180 || fail "no ready line on the serial console"
step serial
type_line 'echo MARK$((6*7))'
wait_serial MARK42 60 || fail "no answer over serial"

step vnc
SOCK=$(v 30 vncsocket q) || fail "vncsocket"
v 60 screenshot q $X/before.png || fail "screenshot before typing"
# Typed over RFB into the shell on tty1 (the framebuffer console): a line to the serial port
# proves the keys arrived, 80 inverse-video blanks show on the screen.
check type "$SOCK" 'echo VNC$((6*7)) >/dev/ttyS0; printf "\033[7m%80s\033[0m\n" ""' || fail "typing over VNC"
wait_serial VNC42 60 || fail "keys typed over VNC did not reach the shell on the framebuffer console"
check frame "$SOCK" || fail "the VNC screen does not show the shell's output"
v 60 screenshot q $X/after.png || fail "screenshot after typing"
check png $X/before.png $X/after.png || fail "vireoctl screenshot does not show the shell's output"

step suspend
v 60 suspend q || fail suspend
state_is "paused (user)"
v 60 resume q || fail resume
state_is "running (unpaused)"
type_line 'echo RESUMED$((3*3))'
wait_serial RESUMED9 60 || fail "no answer over serial after resume"

step reset
: > "$S"
v 120 reset q || fail reset
wait_serial "vireo-quick: ready" 180 || fail "no boot after the reset"
wait_state "running (booted)" 30 || fail "not running after the reset"

step shutdown
v 150 shutdown --timeout 120 q || fail "graceful shutdown"
state_is "shut off (shutdown)"

step reboot
v 120 start q || fail "start 2"
wait_serial "vireo-quick: ready" 180 || fail "second boot"
: > "$S"
type_line 'reboot -f'
wait_serial "vireo-quick: ready" 180 || fail "not back after the guest's reboot"
wait_state "running (booted)" 30 || fail "not running after reboot"

step crash
v 30 dumpxml q | sed 's/reboot=k/reboot=t/' > $X/q.xml
grep -q reboot=t $X/q.xml || fail "dumpxml"
v 60 destroy q || fail destroy
v 30 define $X/q.xml || fail "define reboot=t"
v 120 start q || fail "start 3"
wait_serial "vireo-quick: ready" 180 || fail "third boot"
: > "$S"
type_line 'echo c > /proc/sysrq-trigger'
wait_serial "vireo-quick: ready" 180 || fail "not restarted after the crash"
wait_state "running (booted)" 30 || fail "not running after crash restart"

step reattach
v 60 destroy q || fail "destroy 2"
: > "$S"
{vireoctl} start q & P=$! # not through v(): the kill below must hit vireoctl itself
# Kill the starting vireoctl once its supervisor runs the helper (before that there is nothing
# to find again).
end=$(( $(date +%s) + 120 ))
while ! grep -q '"supervisor_pid": [0-9]' $X/r/vireo/q/state.json 2>/dev/null; do
    [ $(date +%s) -lt $end ] || fail "no supervisor within 120 s of the start"
    sleep 0.1
done
kill -9 $P 2>/dev/null
wait_state "running (booted)" 120 || fail "not running after the starter was killed"
wait_serial "vireo-quick: ready" 180 || fail "boot after the starter was killed"
type_line 'echo AGAIN$((7*6))'
wait_serial AGAIN42 60 || fail "console after reattach"
v 60 destroy q || fail "destroy 3"
state_is "shut off (destroyed)"
echo EVENTS-BEGIN
v 30 event --all --domain q --timeout 0
echo EVENTS-END
step done
"#
    )
}

/// The events the script above causes, in order.
fn expected_events() -> Vec<String> {
    let lc = |s: &str| format!("event 'lifecycle' for domain 'q': {s}");
    let reboot = "event 'reboot' for domain 'q'".to_string();
    vec![
        lc("Defined Added"),
        lc("Started Booted"),
        lc("Suspended Paused"),
        lc("Resumed Unpaused"),
        reboot.clone(), // vireoctl reset
        lc("Started Booted"),
        lc("Shutdown Finished"),
        lc("Stopped Shutdown"),
        lc("Started Booted"),
        reboot, // the guest's reboot, on_reboot=restart
        lc("Started Booted"),
        lc("Stopped Destroyed"),
        lc("Defined Updated"),
        lc("Started Booted"),
        lc("Crashed Panicked"), // on_crash=restart
        lc("Started Booted"),
        lc("Stopped Destroyed"),
        lc("Started Booted"), // the starter was killed; the machine runs on
        lc("Stopped Destroyed"),
    ]
}

#[test]
fn quick_machine_lifecycle_through_the_rig() {
    let k = vireo_rig::debian::kernel().unwrap_or_else(|e| panic!("rig kernel: {e}"));
    let vmm = vireoctl_support::vmm();
    let s = script(
        &vireoctl_support::vireoctl().display().to_string(),
        &vmm.display().to_string(),
        &k.vmlinuz.display().to_string(),
        &k.modules_dir.display().to_string(),
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/vireoctl_support/vnc_check.py"
        ),
    );
    let start = Instant::now();
    // The script's own bounds add up to less than this; it is the last resort.
    let out = vireo_rig::run_command(&s, Duration::from_secs(2400))
        .unwrap_or_else(|e| panic!("rig: {e}"));
    let text: Vec<String> = out
        .lines
        .iter()
        .map(|l| format!("[{:7.1}] {}", l.at.as_secs_f64(), l.text))
        .collect();
    let steps: Vec<&String> = text
        .iter()
        .filter(|l| l.contains("STEP ") || l.contains("vnc-check:"))
        .collect();
    eprintln!(
        "vireoctl rig lifecycle: {:.0} s; steps: {steps:#?}",
        start.elapsed().as_secs_f64()
    );
    assert_eq!(out.status, 0, "rig script failed:\n{}", text.join("\n"));
    assert!(
        text.iter().any(|l| l.contains("STEP done")),
        "{}",
        text.join("\n")
    );
    let events: Vec<String> = out
        .lines
        .iter()
        .map(|l| l.text.trim().to_owned())
        .skip_while(|l| l != "EVENTS-BEGIN")
        .take_while(|l| l != "EVENTS-END")
        .filter(|l| l.starts_with("event '"))
        .collect();
    assert_eq!(events, expected_events(), "{}", text.join("\n"));
}
