//! End to end through the nested-KVM rig (directly on a host with hardware KVM): the quick
//! machine made by `vireoctl create --quick` from Debian's stock kernel boots under vireo-vmm,
//! answers on its serial console and on its VNC screen (keys typed over RFB reach the shell on
//! the framebuffer console, whose output shows in the RFB frame and in `vireoctl screenshot`),
//! is suspended and resumed, reset, shut down gracefully on the ACPI power button, restarted by
//! on_reboot=restart after a guest reboot and by on_crash=restart after a kernel crash (reboot=t
//! turns the panic's restart into a triple fault, the VMM's "crash"), and is found again after
//! the vireoctl that started it was killed. The events of the whole run are checked in order.
//!
//! Three more tests drive the remaining lifecycle paths with the same stock kernel, redefining the
//! actions between runs and chaining restarts so that each boot tests one trigger and action:
//! `vireoctl reboot`, guest power-off under on_poweroff restart / rename-restart / preserve,
//! guest reboot under on_reboot rename-restart / preserve / destroy, guest crashes under
//! on_crash rename-restart / preserve / destroy, the helper alone killed (shut off, crashed), and
//! a stale runtime directory after the helper and its supervisor were both killed.
//!
//! Every wait in the scripts is bounded and fails with the step and what was awaited; a stopped
//! L1 is the rig's to detect (no console heartbeat for 150 s, then L1 is killed and the script
//! runs once more on a fresh L1). Each script runs on an L1 of its own.
//!
//! Needs: `cargo build -p vireo-vmm --bins && cargo build --bin vireoctl` (the rig shares the
//! target dir with L1), QEMU, apt access for the kernel package (cached in ~/.cache/vireo-rig),
//! and /usr/bin/python3 for the VNC peer (tests/vireoctl_support/vnc_check.py).

mod vireoctl_support;

use vireoctl_support::rig_script::{lifecycle_events, run_in_rig, shell_helpers, EVENTS_AND_DONE};

fn script(vireoctl: &str, vmm: &str, kernel: &str, modules: &str, check: &str) -> String {
    let helpers = shell_helpers("q", vireoctl, vmm);
    format!(
        r#"{helpers}
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
# The first start's supervisor unpacked the bzImage in the background; this start loads it.
grep -q '"kernel_unpacked"' $R/config.json || fail "the second start did not load the unpacked kernel: $(grep -h kernel $R/vmm.log | tail -n 3)"
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
expect_crash
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
while ! grep -q '"supervisor_pid": [0-9]' $R/state.json 2>/dev/null; do
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
{EVENTS_AND_DONE}"#
    )
}

/// The events the script above causes, in order.
fn expected_events() -> Vec<String> {
    lifecycle_events(
        "q",
        &[
            "Defined Added",
            "Started Booted",
            "Suspended Paused",
            "Resumed Unpaused",
            "reboot", // vireoctl reset
            "Started Booted",
            "Shutdown Finished",
            "Stopped Shutdown",
            "Started Booted",
            "reboot", // the guest's reboot, on_reboot=restart
            "Started Booted",
            "Stopped Destroyed",
            "Defined Updated",
            "Started Booted",
            "Crashed Panicked", // on_crash=restart
            "Started Booted",
            "Stopped Destroyed",
            "Started Booted", // the starter was killed; the machine runs on
            "Stopped Destroyed",
        ],
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
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/vireoctl_support/vnc_check.py"
        ),
    );
    run_in_rig("vireoctl rig lifecycle", &s, &expected_events(), 2400);
}

/// The helpers of the lifecycle-action scripts below: [`shell_helpers`], and `acts` to redefine
/// the lifecycle actions (and the kernel's reboot method) between runs.
fn actions_prelude(name: &str, vireoctl: &str, vmm: &str, kernel: &str, modules: &str) -> String {
    let helpers = shell_helpers(name, vireoctl, vmm);
    format!(
        r#"{helpers}
# acts ON_POWEROFF ON_REBOOT ON_CRASH k|t: redefines the (shut off) machine; reboot=t turns the
# panic's restart into a triple fault, the VMM's crash, and `reboot -f` too.
acts() {{
    v 30 dumpxml $M | sed -e "s|<on_poweroff>[^<]*</on_poweroff>|<on_poweroff>$1</on_poweroff>|" \
        -e "s|<on_reboot>[^<]*</on_reboot>|<on_reboot>$2</on_reboot>|" \
        -e "s|<on_crash>[^<]*</on_crash>|<on_crash>$3</on_crash>|" \
        -e "s/reboot=[kt]/reboot=$4/" > $X/$M.xml
    grep -q "<on_poweroff>$1</on_poweroff>" $X/$M.xml && grep -q "<on_reboot>$2</on_reboot>" $X/$M.xml \
        && grep -q "<on_crash>$3</on_crash>" $X/$M.xml && grep -q "reboot=$4" $X/$M.xml \
        || fail "dumpxml of $M has no lifecycle actions / reboot= to replace"
    v 30 define $X/$M.xml || fail "define $*"
}}
# boot: start the machine and wait for the shell.
boot() {{
    [ -f "$S" ] && : > "$S"
    v 120 start $M || fail "start"
    wait_serial "vireo-quick: ready" 180 || fail "no ready line after the start"
    state_is "running (booted)"
}}
# after TRIGGER: the guest does TRIGGER; expect it back (a restart) with a fresh boot.
back_after() {{
    : > "$S"
    type_line "$1"
    wait_serial "vireo-quick: ready" 180 || fail "not back after '$1'"
    wait_state "running (booted)" 30 || fail "not running after '$1'"
}}
field() {{ sed -n "s/.*\"$1\": \([0-9][0-9]*\).*/\1/p" $R/state.json; }}
restarts() {{ v 30 dominfo $M | sed -n 's/^Restarts: *//p'; }}

step create
v 300 create --quick --kernel {kernel} --modules {modules} --name $M --memory 256 --network none || fail "create --quick"
"#
    )
}

/// `vireoctl reboot`, guest power-off under on_poweroff=restart, guest reboot under
/// on_reboot=rename-restart, and the clean-up of a stale runtime directory after both the
/// helper and its supervisor died.
fn restarts_script(vireoctl: &str, vmm: &str, kernel: &str, modules: &str) -> String {
    let prelude = actions_prelude("ra", vireoctl, vmm, kernel, modules);
    format!(
        r#"{prelude}
step vireoctl-reboot
acts restart rename-restart destroy k
boot
P1=$(field vmm_pid)
: > "$S"
v 120 reboot $M || fail "vireoctl reboot"
wait_serial "vireo-quick: ready" 180 || fail "no boot after vireoctl reboot"
state_is "running (booted)"
[ "$(field vmm_pid)" != "$P1" ] || fail "vireoctl reboot kept the helper $P1"
[ "$(restarts)" = 1 ] || fail "restarts after vireoctl reboot: '$(restarts)'"

step poweroff-restart
back_after 'poweroff -f'
[ "$(restarts)" = 2 ] || fail "restarts after the guest's poweroff: '$(restarts)'"

step reboot-rename-restart
back_after 'reboot -f'
grep -q "on_reboot rename-restart: restarted under the same name" $R/vmm.log || fail "no rename-restart note in vmm.log"

step stale
SUP=$(field supervisor_pid); VMM=$(field vmm_pid)
[ -n "$SUP" ] && [ -n "$VMM" ] || fail "no supervisor/helper pid in state.json"
kill -9 $SUP $VMM || fail "kill -9 $SUP $VMM"
wait_state "shut off (crashed)" 30 || fail "helper and supervisor killed: not seen as crashed"
[ ! -e $R/ctl ] || fail "the stale control socket $R/ctl was not removed"
{EVENTS_AND_DONE}"#
    )
}

/// Guest power-off under on_poweroff rename-restart and preserve, guest reboot under on_reboot
/// preserve and destroy.
fn poweroff_reboot_script(vireoctl: &str, vmm: &str, kernel: &str, modules: &str) -> String {
    let prelude = actions_prelude("pr", vireoctl, vmm, kernel, modules);
    format!(
        r#"{prelude}
step poweroff-rename-restart
acts rename-restart preserve destroy k
boot
back_after 'poweroff -f'
grep -q "on_poweroff rename-restart: restarted under the same name" $R/vmm.log || fail "no rename-restart note in vmm.log"

step reboot-preserve
: > "$S"
type_line 'reboot -f'
wait_state "shut off (shutdown)" 120 || fail "not stopped by the guest's reboot"
[ -f $R/domain.xml ] && [ -f $R/serial.log ] || fail "on_reboot preserve removed the runtime files"

step poweroff-preserve
acts preserve destroy destroy k
boot
type_line 'poweroff -f'
wait_state "shut off (shutdown)" 120 || fail "not stopped by the guest's poweroff"
[ -f $R/domain.xml ] && [ -f $R/serial.log ] || fail "on_poweroff preserve removed the runtime files"

step reboot-destroy
boot
type_line 'reboot -f'
wait_state "shut off (shutdown)" 120 || fail "not stopped by the guest's reboot"
end=$(( $(date +%s) + 30 ))
while [ -e $R/domain.xml ]; do
    [ $(date +%s) -lt $end ] || fail "on_reboot destroy kept the runtime files for 30 s"
    sleep 0.2
done
{EVENTS_AND_DONE}"#
    )
}

/// Guest crashes under every on_crash action but restart (the lifecycle test has that one), and
/// the helper alone killed under a live supervisor.
fn crash_script(vireoctl: &str, vmm: &str, kernel: &str, modules: &str) -> String {
    let prelude = actions_prelude("cr", vireoctl, vmm, kernel, modules);
    format!(
        r#"{prelude}
step crash-rename-restart
acts destroy destroy rename-restart t
boot
expect_crash
back_after 'echo c > /proc/sysrq-trigger'
grep -q "on_crash rename-restart: restarted under the same name" $R/vmm.log || fail "no rename-restart note in vmm.log"

step helper-killed
VMM=$(field vmm_pid)
[ -n "$VMM" ] || fail "no helper pid in state.json"
kill -9 $VMM || fail "kill -9 $VMM"
wait_state "shut off (crashed)" 30 || fail "helper killed: not seen as crashed"

step crash-preserve
acts destroy destroy preserve t
boot
expect_crash
type_line 'echo c > /proc/sysrq-trigger'
wait_state "crashed (panicked)" 120 || fail "on_crash preserve: not crashed"
v 60 destroy $M || fail "destroy the crashed machine"
state_is "shut off (destroyed)"

step crash-destroy
acts destroy destroy destroy t
boot
expect_crash
type_line 'echo c > /proc/sysrq-trigger'
wait_state "shut off (crashed)" 120 || fail "on_crash destroy: not shut off (crashed)"
{EVENTS_AND_DONE}"#
    )
}

fn actions_test(
    label: &str,
    name: &str,
    make: fn(&str, &str, &str, &str) -> String,
    events: &[&str],
    last_resort_secs: u64,
) {
    let k = vireo_rig::debian::kernel().unwrap_or_else(|e| panic!("rig kernel: {e}"));
    let s = make(
        &vireoctl_support::vireoctl().display().to_string(),
        &vireoctl_support::vmm().display().to_string(),
        &k.vmlinuz.display().to_string(),
        &k.modules_dir.display().to_string(),
    );
    run_in_rig(label, &s, &lifecycle_events(name, events), last_resort_secs);
}

#[test]
fn vireoctl_reboot_restarts_and_stale_cleanup_through_the_rig() {
    actions_test(
        "vireoctl rig restarts",
        "ra",
        restarts_script,
        &[
            "Defined Added",
            "Defined Updated",
            "Started Booted",
            "reboot", // vireoctl reboot
            "Started Booted",
            "Shutdown Finished", // on_poweroff restart
            "Started Booted",
            "reboot", // on_reboot rename-restart
            "Started Booted",
            "Stopped Failed", // helper + supervisor killed, seen stale
        ],
        900,
    );
}

#[test]
fn guest_poweroff_and_reboot_actions_through_the_rig() {
    actions_test(
        "vireoctl rig poweroff/reboot actions",
        "pr",
        poweroff_reboot_script,
        &[
            "Defined Added",
            "Defined Updated",
            "Started Booted",
            "Shutdown Finished", // on_poweroff rename-restart
            "Started Booted",
            "Stopped Shutdown", // on_reboot preserve
            "Defined Updated",
            "Started Booted",
            "Shutdown Finished", // on_poweroff preserve
            "Stopped Shutdown",
            "Started Booted",
            "Stopped Shutdown", // on_reboot destroy
        ],
        900,
    );
}

#[test]
fn guest_crash_actions_through_the_rig() {
    actions_test(
        "vireoctl rig crash actions",
        "cr",
        crash_script,
        &[
            "Defined Added",
            "Defined Updated",
            "Started Booted",
            "Crashed Panicked", // on_crash rename-restart
            "Started Booted",
            "Stopped Failed", // the helper alone killed
            "Defined Updated",
            "Started Booted",
            "Crashed Panicked", // on_crash preserve
            "Stopped Destroyed",
            "Defined Updated",
            "Started Booted",
            "Crashed Panicked", // on_crash destroy
            "Stopped Crashed",
        ],
        900,
    );
}

/// `vireoctl clone --auto-clone` of a quick machine with a qcow2 disk; the clone boots, reads
/// the original's data from its copy and writes its own, which lands in the copy, while the
/// original's image stays byte-for-byte what it was. One L2 boot.
fn clone_script(vireoctl: &str, vmm: &str, kernel: &str, modules: &str) -> String {
    let helpers = shell_helpers("qc", vireoctl, vmm);
    format!(
        r#"{helpers}
IMG=$X/d/vireo/images
step create
mkdir -p $IMG
printf 'ORIGINAL-DISK-DATA' > $X/seed.raw && truncate -s 16M $X/seed.raw || fail "seed image"
qemu-img convert -q -f raw -O qcow2 $X/seed.raw $IMG/$M.qcow2 || fail "qemu-img convert"
v 300 create --quick --kernel {kernel} --modules {modules} --name $M --memory 256 --network none --disk path=$IMG/$M.qcow2,format=qcow2 || fail "create --quick with a qcow2 disk"
SUM0=$(sha256sum < $IMG/$M.qcow2)

step clone
v 120 clone --original $M --auto-clone || fail "vireoctl clone"
C=$M-clone
[ -f $IMG/$C.qcow2 ] && [ -f $IMG/$C-initrd.img ] || fail "no copies: $(ls $IMG)"
v 30 dumpxml $C | grep -q "file='$IMG/$C.qcow2'" || fail "the clone does not use its copy"
v 30 dumpxml $C | grep -q "type='qcow2'" || fail "the clone lost the declared format"
cmp $IMG/$M.qcow2 $IMG/$C.qcow2 || fail "the copy differs from the original"

step boot-clone
# The helpers' machine is the clone from here on.
M=$C; R=$X/r/vireo/$M; S=$R/serial.log
v 120 start $M || fail "start the clone"
wait_serial "vireo-quick: ready" 180 || fail "the clone did not boot"
state_is "running (booted)"
type_line 'head -c 18 /dev/vda; echo; echo CLONE-WRITE-$((6*7)) | dd of=/dev/vda bs=512 seek=2048 2>/dev/null && sync && echo WROTE$((2*21))'
wait_serial ORIGINAL-DISK-DATA 60 || fail "the clone's disk does not hold the original's data"
wait_serial WROTE42 60 || fail "the clone could not write to its disk"
# Read back past the guest's page cache: the device gives the clone's write.
type_line 'echo 3 > /proc/sys/vm/drop_caches; dd if=/dev/vda bs=512 skip=2048 count=1 2>/dev/null | head -c 14 | sed s/WRITE/READ/'
wait_serial CLONE-READ-42 60 || fail "the clone's write does not read back from its disk"
v 150 shutdown --timeout 120 $M || fail "graceful shutdown of the clone"
state_is "shut off (shutdown)"

step check
[ "$(sha256sum < $IMG/qc.qcow2)" = "$SUM0" ] || fail "the original's disk image changed"
# The data cluster the clone wrote is in its copy's file (qcow2 stores data uncompressed).
grep -q CLONE-WRITE-42 $IMG/$C.qcow2 || fail "the clone's write is not in its image file"
qemu-img check -q $IMG/$C.qcow2 || fail "qemu-img check of the clone's image"
{EVENTS_AND_DONE}"#
    )
}

#[test]
fn a_clone_of_a_qcow2_machine_boots_and_leaves_the_original_untouched() {
    actions_test(
        "vireoctl rig clone",
        "qc-clone",
        clone_script,
        &[
            "Defined Added",
            "Started Booted",
            "Shutdown Finished",
            "Stopped Shutdown",
        ],
        900,
    );
}
