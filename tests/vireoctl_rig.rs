//! End to end through the nested-KVM rig (directly on a host with hardware KVM): the quick
//! machine made by `vireoctl create --quick` from Debian's stock kernel boots under vireo-vmm,
//! answers on its serial console, shuts down gracefully on the ACPI power button, is restarted by
//! on_reboot=restart after a guest reboot and by on_crash=restart after a kernel crash (reboot=t
//! turns the panic's restart into a triple fault, the VMM's "crash"), and is found again after the
//! vireoctl that started it was killed.
//!
//! Needs: `cargo build -p vireo-vmm` (the rig shares the target dir with L1), QEMU, apt access
//! for the kernel package (cached in ~/.cache/vireo-rig).

mod vireoctl_support;

use std::time::{Duration, Instant};

fn script(vireoctl: &str, vmm: &str, kernel: &str, modules: &str) -> String {
    format!(
        r#"
set -u
X=/tmp/vireoctl-rig; rm -rf $X; mkdir -p $X
export XDG_CONFIG_HOME=$X/c XDG_RUNTIME_DIR=$X/r XDG_DATA_HOME=$X/d XDG_CACHE_HOME=$X/k VIREO_VMM={vmm}
V={vireoctl}
S=$X/r/vireo/q/serial.log
T0=$(date +%s)
step() {{ echo "STEP $* (+$(( $(date +%s) - T0 ))s)"; }}
fail() {{
    echo "FAIL: $*"
    for f in $X/r/vireo/*/vmm.log $X/r/vireo/*/serial.log; do [ -f "$f" ] && {{ echo "== $f"; tail -n 40 "$f"; }}; done
    $V event --all --timeout 0
    exit 1
}}
wait_serial() {{ # pattern seconds (wall clock: commands are slow under TCG)
    end=$(( $(date +%s) + $2 ))
    while [ $(date +%s) -lt $end ]; do
        grep -q "$1" "$S" 2>/dev/null && return 0
        sleep 0.2
    done
    return 1
}}
wait_state() {{ # state seconds
    end=$(( $(date +%s) + $2 ))
    while [ $(date +%s) -lt $end ]; do
        [ "$($V domstate --reason q 2>&1)" = "$1" ] && return 0
        sleep 0.2
    done
    echo "state: $($V domstate --reason q 2>&1)"; return 1
}}
type_line() {{ printf '%s\n' "$1" | $V console q >/dev/null || fail "console: $1"; }}

step create
$V create --quick --kernel {kernel} --modules {modules} --name q --memory 256 --network none --on-crash restart || fail "create --quick"
step start
$V start q || fail start
wait_serial "vireo-quick: ready" 180 || fail "no ready line on the serial console"
step serial
type_line 'echo MARK$((6*7))'
wait_serial MARK42 30 || fail "no answer over serial"

step shutdown
$V shutdown --timeout 120 q || fail "graceful shutdown"
[ "$($V domstate --reason q)" = "shut off (shutdown)" ] || fail "after shutdown: $($V domstate --reason q)"

step reboot
$V start q || fail "start 2"
wait_serial "vireo-quick: ready" 180 || fail "second boot"
: > "$S"
type_line 'reboot -f'
wait_serial "vireo-quick: ready" 180 || fail "not back after the guest's reboot"
wait_state "running (booted)" 30 || fail "not running after reboot"
$V event --all --domain q --timeout 0 | grep -q "event 'reboot'" || fail "no reboot event"

step crash
$V dumpxml q | sed 's/reboot=k/reboot=t/' > $X/q.xml
$V destroy q || fail destroy
$V define $X/q.xml || fail "define reboot=t"
$V start q || fail "start 3"
wait_serial "vireo-quick: ready" 180 || fail "third boot"
: > "$S"
type_line 'echo c > /proc/sysrq-trigger'
wait_serial "vireo-quick: ready" 180 || fail "not restarted after the crash"
$V event --all --domain q --timeout 0 | grep -q "Crashed Panicked" || fail "no crash event"
wait_state "running (booted)" 30 || fail "not running after crash restart"

step reattach
$V destroy q || fail "destroy 2"
: > "$S"
$V start q & P=$!
# Kill the starting vireoctl once its supervisor runs the helper (before that there is nothing
# to find again).
end=$(( $(date +%s) + 120 ))
while ! grep -q '"supervisor_pid": [0-9]' $X/r/vireo/q/state.json 2>/dev/null && [ $(date +%s) -lt $end ]; do sleep 0.1; done
kill -9 $P 2>/dev/null
wait_state "running (booted)" 120 || fail "not running after the starter was killed"
wait_serial "vireo-quick: ready" 180 || fail "boot after the starter was killed"
type_line 'echo AGAIN$((7*6))'
wait_serial AGAIN42 30 || fail "console after reattach"
$V destroy q || fail "destroy 3"
[ "$($V domstate --reason q)" = "shut off (destroyed)" ] || fail "after destroy"
$V event --all --domain q --timeout 0
step done
"#
    )
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
    );
    let start = Instant::now();
    let out = vireo_rig::run_command(&s, Duration::from_secs(1500))
        .unwrap_or_else(|e| panic!("rig: {e}"));
    let text: Vec<String> = out
        .lines
        .iter()
        .map(|l| format!("[{:7.1}] {}", l.at.as_secs_f64(), l.text))
        .collect();
    let steps: Vec<&String> = text.iter().filter(|l| l.contains("STEP ")).collect();
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
}
