//! Debian's stock kernel under vireo-vmm, on real (nested) KVM through the rig. Slow (L1 is
//! QEMU TCG): run with `cargo test -p vireo-vmm --release --test rig_boot`.

mod l2;

use l2::L2;
use serde_json::json;

fn cpus_scenario(n: u8) -> String {
    format!(
        "n=$(grep -c ^processor /proc/cpuinfo)\n\
         if [ \"$n\" = {n} ]; then vireo_result cpus pass \"$n\"; else vireo_result cpus fail \"$n\"; fi\n\
         printf '\\102' | dd of=/dev/port bs=1 seek=1008 count=1 2>/dev/null\n\
         echo VIREO-SERIAL-OK\n"
    )
}

fn boots_with(n: u8) {
    let mut run = L2::new(&format!("smp{n}"), &cpus_scenario(n));
    run.vcpus = n;
    let out = run.run();
    let d = out.dump();
    assert!(
        out.serial.contains("VIREO-SERIAL-OK"),
        "initramfs output missing:\n{d}"
    );
    assert!(
        out.serial.contains("VIREO-RESULT name=cpus status=pass"),
        "wrong CPU count:\n{d}"
    );
    assert!(out.serial.contains("VIREO-DONE rc=0"), "{d}");
    // The kernel checks the CPU it was given as it boots. One seen here: "XSAVE consistency
    // problem" when KVM's XCR0 lagged behind the guest's (see cpu::setup_vcpu).
    let complaints: Vec<&str> = out
        .serial
        .lines()
        .filter(|l| {
            ["WARNING:", "BUG:", "Oops", "consistency problem"]
                .iter()
                .any(|w| l.contains(w))
        })
        .collect();
    assert!(
        complaints.is_empty(),
        "the guest kernel complained while booting: {complaints:#?}\n{d}"
    );
    assert_eq!(out.exit, Some(0), "guest poweroff must exit 0:\n{d}");
    assert!(
        out.stderr.contains("boot marker 0x42 at"),
        "boot marker not seen:\n{d}"
    );
    assert!(out.events().contains(&"poweroff".to_string()), "{d}");
}

/// Which first boots are run once more: those without a verdict, and triple faults the
/// scenario did not ask for; a wrong answer from a boot that ran is a failure, not a rerun.
#[test]
fn only_boots_the_rig_lost_are_run_again() {
    let outcome = |exit: Option<i32>, serial: &str, stderr: &str| l2::Outcome {
        exit,
        serial: serial.into(),
        stderr: stderr.into(),
        driver: Vec::new(),
        raw: String::new(),
    };
    let fault = "vireo-vmm: guest crashed: vCPU 1: triple fault (KVM_EXIT_SHUTDOWN) at rip 0xfff0";
    assert!(l2::lost_boot(&outcome(None, "boot", ""), false).is_some());
    assert!(l2::lost_boot(&outcome(Some(1), "", ""), false).is_some());
    assert!(l2::lost_boot(&outcome(Some(3), "[ 7.8] Asym", fault), false).is_some());
    assert!(l2::lost_boot(&outcome(Some(3), "TRIPLE", fault), true).is_none());
    assert!(l2::lost_boot(&outcome(Some(0), "VIREO-DONE rc=1", ""), false).is_none());
    assert!(l2::lost_boot(&outcome(Some(1), "panic", "vireo-vmm: error"), false).is_none());
}

#[test]
fn stock_kernel_boots_with_1_vcpu() {
    boots_with(1);
}

#[test]
fn stock_kernel_boots_with_2_vcpus() {
    boots_with(2);
}

#[test]
fn stock_kernel_boots_with_4_vcpus() {
    boots_with(4);
}

#[test]
fn keystroke_reaches_the_guest_shell_through_the_i8042() {
    let mut run = L2::new(
        "keys",
        "exec 3</dev/tty1\n\
         echo READY-FOR-KEYS\n\
         if read -t 90 line <&3; then echo \"TYPED:[$line]\"; fi\n\
         [ \"$line\" = 'echo hello' ] && vireo_result keys pass \"$line\" || vireo_result keys fail \"$line\"\n",
    );
    run.steps = vec![
        json!({"op": "wait_serial", "text": "READY-FOR-KEYS"}),
        json!({"op": "cmd", "execute": "send-text", "arguments": {"text": "echo hello\n"}}),
    ];
    let out = run.run();
    let d = out.dump();
    assert!(
        out.serial.contains("VIREO-RESULT name=keys status=pass"),
        "{d}"
    );
    assert_eq!(out.exit, Some(0), "{d}");
}

#[test]
fn acpi_power_button_shuts_the_guest_down() {
    // The guest's part of a graceful shutdown: wait for the ACPI power button's input event,
    // then power off (what systemd-logind / acpid do on a full system).
    let mut run = L2::new(
        "pwrbtn",
        "insmod /lib/vireo-extra/button.ko\n\
         ev=''; for i in /sys/class/input/input*; do\n\
           if grep -q 'Power Button' $i/name; then ev=/dev/input/$(ls $i | grep ^event); fi; done\n\
         vireo_wait_for \"$ev\" 10\n\
         echo READY-FOR-BUTTON $ev\n\
         dd if=$ev bs=24 count=1 of=/dev/null 2>/dev/null && vireo_result button pass \"$ev\"\n\
         poweroff -f\n",
    );
    run.extra_modules = vec!["button"];
    run.steps = vec![
        json!({"op": "wait_serial", "text": "READY-FOR-BUTTON /dev/input/event"}),
        json!({"op": "cmd", "execute": "power-down"}),
    ];
    let out = run.run();
    let d = out.dump();
    assert!(
        out.serial.contains("VIREO-RESULT name=button status=pass"),
        "{d}"
    );
    assert_eq!(out.exit, Some(0), "power-down must end as poweroff:\n{d}");
    let ev = out.events();
    assert!(
        ev.contains(&"state-changed".into()) && ev.contains(&"poweroff".into()),
        "{d}"
    );
}

#[test]
fn guest_reboot_is_reported_as_reboot() {
    let out = L2::new("reboot", "echo REBOOTING\nreboot -f\n").run();
    let d = out.dump();
    assert!(out.serial.contains("REBOOTING"), "{d}");
    assert_eq!(out.exit, Some(2), "{d}");
    assert!(out.events().contains(&"reboot".into()), "{d}");
}

#[test]
fn forced_triple_fault_is_reported_as_crash() {
    // reboot=t: the kernel reboots by loading an empty IDT and faulting, i.e. a triple fault.
    let mut run = L2::new("triple", "echo TRIPLE\nreboot -f\n");
    run.cmdline_extra = "reboot=t".into();
    run.triple_fault_expected = true;
    let out = run.run();
    let d = out.dump();
    assert_eq!(out.exit, Some(3), "{d}");
    assert!(out.stderr.contains("triple fault"), "{d}");
    assert!(out.events().contains(&"crash".into()), "{d}");
}

#[test]
fn pause_stops_guest_time_and_resume_restarts_it() {
    let mut run = L2::new(
        "pause",
        "echo UPTIME-A $(cut -d' ' -f1 /proc/uptime)\n\
         sleep 3\n\
         echo UPTIME-B $(cut -d' ' -f1 /proc/uptime)\n",
    );
    run.steps = vec![
        json!({"op": "wait_serial", "text": "UPTIME-A"}),
        json!({"op": "cmd", "execute": "pause"}),
        json!({"op": "sleep", "s": 8}),
        json!({"op": "cmd", "execute": "status"}),
        json!({"op": "cmd", "execute": "resume"}),
        json!({"op": "wait_serial", "text": "UPTIME-B"}),
    ];
    let out = run.run();
    let d = out.dump();
    let up = |tag: &str| -> f64 {
        out.serial
            .lines()
            .find_map(|l| l.trim().strip_prefix(tag))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {tag} line:\n{d}"))
    };
    let guest = up("UPTIME-B ") - up("UPTIME-A ");
    let t = |op: &str, cmd: &str| {
        out.step(op, "execute", cmd)
            .and_then(|s| s["t"].as_f64())
            .unwrap()
    };
    let paused_for = t("cmd", "resume") - t("cmd", "pause");
    let status = out.step("cmd", "execute", "status").unwrap();
    assert_eq!(status["reply"]["return"]["state"], "paused", "{d}");
    assert!(paused_for >= 8.0, "{d}");
    // The guest slept 3 s of its own time; with the clock stopped while paused, it sees far
    // less than the 8 s of host time that passed.
    assert!(
        guest >= 2.9 && guest < 3.0 + paused_for - 4.0,
        "guest saw {guest:.2} s, host paused {paused_for:.2} s:\n{d}"
    );
    assert!(
        out.serial.contains("VIREO-DONE rc=0"),
        "guest did not finish after resume:\n{d}"
    );
    assert_eq!(out.exit, Some(0), "{d}");
}
