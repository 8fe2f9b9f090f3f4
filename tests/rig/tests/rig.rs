//! The rig's own tests: they always go through L1 (even on a host with hardware KVM), so they
//! prove the rig itself. All tests share one L1 (booted by the first test that needs it).

use std::time::{Duration, Instant};
use vireo_rig::l2::{run_scenario_with, GuestImage, KernelForm, Launcher, Scenario};
use vireo_rig::{run_shared, timing, RigError};

fn in_l1(script: &str, timeout: Duration) -> vireo_rig::Result<vireo_rig::CmdOutput> {
    run_shared(script, timeout)
}

fn scenario(sc: &Scenario) -> vireo_rig::ScenarioReport {
    scenario_with(sc, &Launcher::Qemu)
}

fn scenario_with(sc: &Scenario, launcher: &Launcher) -> vireo_rig::ScenarioReport {
    let image = GuestImage::stock().expect("building the L2 guest image");
    let report = run_scenario_with(&image, sc, launcher, &mut |s, t| in_l1(s, t))
        .unwrap_or_else(|e| panic!("rig failure running scenario {}: {e}", sc.name));
    eprintln!("{}\n{}", report.timing_line(), timing::report());
    report
}

#[test]
fn l1_has_kvm_with_nested_paging() {
    let out = in_l1(
        "test -c /dev/kvm && echo kvm-device-present\n\
         dmesg | grep -o 'Nested Paging enabled'\n\
         grep -o -m1 svm /proc/cpuinfo",
        Duration::from_secs(60),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.status, 0, "output:\n{}", out.text());
    let text = out.text();
    assert!(text.contains("kvm-device-present"), "{text}");
    assert!(text.contains("Nested Paging enabled"), "{text}");
    assert!(text.contains("svm"), "{text}");
}

#[test]
fn command_status_and_output_come_back_in_order() {
    let out = in_l1(
        "echo first; echo second >&2; printf 'no newline'; exit 7",
        Duration::from_secs(60),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.status, 7);
    let lines: Vec<&str> = out.lines.iter().map(|l| l.text.as_str()).collect();
    assert_eq!(lines, ["first", "second", "no newline"]);
    assert!(out.lines.windows(2).all(|w| w[0].at <= w[1].at));
    let ok = in_l1("true", Duration::from_secs(60)).unwrap_or_else(|e| panic!("{e}"));
    assert!(ok.success());
}

#[test]
fn build_output_is_visible_in_l1_at_its_host_path() {
    let exe = std::env::current_exe().expect("current exe");
    let out = in_l1(
        &format!("test -x '{}' && echo visible", exe.display()),
        Duration::from_secs(60),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        out.status,
        0,
        "{} not visible in L1:\n{}",
        exe.display(),
        out.text()
    );
}

#[test]
fn command_timeout_kills_the_command_and_l1_survives() {
    let start = Instant::now();
    let err = in_l1(
        "echo before; sleep 301 & sleep 302; echo never",
        Duration::from_secs(5),
    )
    .expect_err("a 300 s sleep must hit a 5 s timeout");
    assert!(matches!(err, RigError::CommandTimeout { .. }), "{err}");
    assert!(err.to_string().contains("before"), "{err}");
    assert!(
        start.elapsed() < Duration::from_secs(60),
        "took {:?}",
        start.elapsed()
    );
    // The whole process group is gone: no sleep left behind.
    let out = in_l1(
        "pgrep -a -f 'sleep 30[12]' || echo none",
        Duration::from_secs(60),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(out.text().contains("none"), "left over:\n{}", out.text());
}

#[test]
fn stock_debian_kernel_boots_as_l2_and_reports() {
    let sc = Scenario::new(
        "stock-boot",
        "vireo_check uname uname -r\n\
         vireo_check kvm-clock grep -q kvm-clock /sys/devices/system/clocksource/clocksource0/available_clocksource\n\
         echo hello-from-l2\n",
    )
    .expect_pass("uname")
    .expect_pass("kvm-clock")
    .kernel_form(KernelForm::BzImage);
    let report = scenario(&sc);
    report.check().unwrap_or_else(|e| panic!("{e}"));
    let uname = report
        .results
        .iter()
        .find(|r| r.name == "uname")
        .expect("uname result");
    assert!(uname.detail.contains("-amd64"), "{}", uname.detail);
    assert!(report.output.iter().any(|l| l.text == "hello-from-l2"));
    assert!(report.l2_boot.is_some());
}

#[test]
fn failing_scenario_is_reported_as_failing() {
    let sc = Scenario::new(
        "must-fail",
        "vireo_check works true\nvireo_check broken false\nexit 3\n",
    )
    .expect_pass("works")
    .expect_pass("never-reported");
    let report = scenario(&sc);
    assert!(!report.passed());
    assert_eq!(report.done_rc, Some(3));
    let err = report.check().expect_err("must fail").to_string();
    assert!(err.contains("result broken failed"), "{err}");
    assert!(err.contains("never-reported"), "{err}");
    assert!(err.contains("rc=3"), "{err}");
}

#[test]
fn hung_l2_is_caught_by_the_watchdog() {
    let sc = Scenario::new("hangs", "echo about-to-hang\nsleep 100000\n")
        .timeout(Duration::from_secs(20))
        .memory_mib(256);
    let mut sc = sc;
    sc.attempts = 1;
    let report = scenario(&sc);
    assert_eq!(report.done_rc, None);
    let err = report.check().expect_err("a hang must fail").to_string();
    assert!(err.contains("never reported VIREO-DONE"), "{err}");
    // The launcher's own watchdog (20 s) ended it, not the outer one (20 + 30 s).
    assert!(
        report.total < Duration::from_secs(20 + 15),
        "took {:?}",
        report.total
    );
}

#[test]
fn stock_debian_kernel_boots_under_vireo_vmm() {
    // Needs `cargo build -p vireo-vmm` into the same target dir first (or VIREO_VMM=path):
    // building from inside a running `cargo test` could wait forever on cargo's lock.
    let launcher = Launcher::parse("vmm").unwrap_or_else(|e| panic!("{e}"));
    let sc = Scenario::new(
        "vmm-boot",
        "vireo_check uname uname -r\n\
         vireo_check cpus grep -c ^processor /proc/cpuinfo\n\
         echo hello-from-vireo-vmm\n",
    )
    .expect_pass("uname")
    .expect_pass("cpus");
    let report = scenario_with(&sc, &launcher);
    report.check().unwrap_or_else(|e| panic!("{e}"));
    assert!(report
        .output
        .iter()
        .any(|l| l.text == "hello-from-vireo-vmm"));
    assert_eq!(report.launcher, "vireo-vmm");
}

fn own_config() -> vireo_rig::RigConfig {
    let mut cfg = vireo_rig::RigConfig::from_env().unwrap_or_else(|e| panic!("{e}"));
    cfg.boot_attempts = 1;
    cfg.smp = 1;
    cfg
}

#[test]
fn missing_qemu_is_a_clear_error() {
    let mut cfg = own_config();
    cfg.qemu = Some("/nonexistent/qemu-system-x86_64".into());
    let err = vireo_rig::Rig::boot(&cfg)
        .err()
        .expect("booting without QEMU must fail");
    let msg = err.to_string();
    assert!(matches!(err, RigError::MissingTool { .. }), "{msg}");
    assert!(msg.contains("qemu-system-x86"), "{msg}");
}

#[test]
fn l1_boot_timeout_reports_where_it_stalled() {
    let mut cfg = own_config();
    cfg.boot_timeout = Duration::from_millis(1500);
    let start = Instant::now();
    let err = vireo_rig::Rig::boot(&cfg)
        .err()
        .expect("1.5 s is too short for L1");
    assert!(matches!(err, RigError::L1BootTimeout { .. }), "{err}");
    assert!(err.to_string().contains("stalled after"), "{err}");
    assert!(
        start.elapsed() < Duration::from_secs(30),
        "took {:?}",
        start.elapsed()
    );
}

#[test]
fn cpu_without_svm_is_reported_as_kvm_amd_refused() {
    let mut cfg = own_config();
    cfg.cpu = "qemu64,-svm".into();
    let err = vireo_rig::Rig::boot(&cfg)
        .err()
        .expect("L1 without SVM must not be ready");
    let msg = err.to_string();
    assert!(matches!(err, RigError::L1NoKvm { .. }), "{msg}");
    assert!(msg.contains("insmod kvm_amd failed"), "{msg}");
}

#[test]
fn cpu_without_npt_is_reported_as_no_nested_paging() {
    let mut cfg = own_config();
    // qemu64 has SVM but no NPT: kvm_amd loads, nested paging is off, the rig refuses.
    cfg.cpu = "qemu64".into();
    let err = vireo_rig::Rig::boot(&cfg)
        .err()
        .expect("L1 without NPT must not be ready");
    let msg = err.to_string();
    assert!(matches!(err, RigError::L1NoKvm { .. }), "{msg}");
    assert!(msg.contains("without nested paging"), "{msg}");
}

#[test]
fn long_scripts_arrive_intact() {
    // Far more than the tty's 4 KiB line buffer.
    let mut script = String::from("n=0\n");
    for i in 0..600 {
        script.push_str(&format!(
            "n=$((n + 1)) # padding to make the line longer: {i:05}\n"
        ));
    }
    script.push_str("echo count=$n\n");
    assert!(script.len() > 30_000);
    let out = in_l1(&script, Duration::from_secs(120)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.status, 0, "{}", out.text());
    assert!(out.text().contains("count=600"), "{}", out.text());
}

#[test]
fn direct_mode_runs_on_this_host_with_status_and_timeout() {
    let out = vireo_rig::run_direct("echo on-host; exit 4", Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.status, 4);
    assert_eq!(out.text(), "on-host\n");
    let start = Instant::now();
    let err = vireo_rig::run_direct("sleep 303 & sleep 304", Duration::from_secs(1))
        .expect_err("must time out");
    assert!(matches!(err, RigError::CommandTimeout { .. }), "{err}");
    assert!(start.elapsed() < Duration::from_secs(10));
}

#[test]
fn user_namespaces_and_passt_work_in_l1() {
    // L1's command root is a real root (switch_root), not a chroot: the kernel refuses user
    // namespaces to chrooted processes, and passt sandboxes itself in one (after dropping from
    // root to nobody). This starts passt in socket mode, connects, and sees it exit cleanly.
    let out = in_l1(
        r#"unshare -U true && echo userns-ok
unshare -Ur sh -c 'echo "userns-uid=$(id -u)"'
s=/tmp/rig-passt-$$.sock; rm -f $s
passt -f -e -1 -s $s >/tmp/rig-passt-$$.log 2>&1 & p=$!
i=0; while [ ! -S $s ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done
[ -S $s ] && echo passt-listening
perl -MIO::Socket::UNIX -e '$c = IO::Socket::UNIX->new(Peer => $ARGV[0]) or die "connect: $!"; print "passt-accepted\n"; close $c' $s
i=0; while kill -0 $p 2>/dev/null && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done
if kill -0 $p 2>/dev/null; then echo passt-still-running; kill $p; else wait $p; echo "passt-exit=$?"; fi
grep -v syslog /tmp/rig-passt-$$.log | tail -n 20
rm -f $s /tmp/rig-passt-$$.log
"#,
        Duration::from_secs(120),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let text = out.text();
    for want in [
        "userns-ok",
        "userns-uid=0",
        "passt-listening",
        "passt-accepted",
        "passt-exit=0",
    ] {
        assert!(text.lines().any(|l| l == want), "no {want:?} in:\n{text}");
    }
}

fn in_l1_with_fault(
    script: &str,
    timeout: Duration,
    fault: vireo_rig::Fault,
) -> vireo_rig::Result<vireo_rig::CmdOutput> {
    vireo_rig::with_shared(|r| r.run_with_fault(script, timeout, fault))
}

#[test]
fn damaged_or_cut_commands_are_resent_within_seconds() {
    use vireo_rig::Fault;
    for fault in [Fault::DamagedCopy, Fault::CutCopy] {
        let start = Instant::now();
        let out = in_l1_with_fault(
            "echo intact-a\necho intact-b\nexit 6",
            Duration::from_secs(60),
            fault,
        )
        .unwrap_or_else(|e| panic!("{fault:?}: {e}"));
        assert_eq!(out.status, 6, "{fault:?}: {}", out.text());
        assert_eq!(out.text(), "intact-a\nintact-b\n", "{fault:?}");
        // A resend, not a fresh L1 (which takes 60 s + a boot).
        assert!(
            start.elapsed() < Duration::from_secs(40),
            "{fault:?} took {:?}",
            start.elapsed()
        );
        assert!(vireo_rig::with_shared(|r| Ok(r.is_alive())).unwrap_or(false));
    }
}

#[test]
fn lost_acknowledgement_resends_without_running_twice() {
    let dir = format!("/tmp/rig-lost-start-{}", std::process::id());
    let out = in_l1_with_fault(
        &format!("mkdir -p {dir}; echo run >> {dir}/runs; sleep 12; echo slow-done"),
        Duration::from_secs(60),
        vireo_rig::Fault::LostStart,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.status, 0, "{}", out.text());
    assert_eq!(out.text(), "slow-done\n");
    // The resent copy reached the agent after the first one ran: answered, not run again.
    let runs = in_l1(
        &format!("sleep 1; cat {dir}/runs; rm -r {dir}"),
        Duration::from_secs(60),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(runs.text(), "run\n", "ran more than once");
}

#[test]
fn lost_exit_report_is_asked_for_again() {
    let start = Instant::now();
    let out = in_l1_with_fault(
        "echo finished; exit 5",
        Duration::from_secs(3),
        vireo_rig::Fault::LostExit,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.status, 5);
    assert_eq!(out.text(), "finished\n");
    assert!(
        start.elapsed() < Duration::from_secs(45),
        "took {:?}",
        start.elapsed()
    );
}

#[test]
fn a_stopped_l1_is_caught_by_its_heartbeat() {
    let mut rig = vireo_rig::Rig::boot(&own_config()).unwrap_or_else(|e| panic!("{e}"));
    rig.set_heartbeat_limit(Duration::from_secs(25));
    // A quiet command longer than the limit: the heartbeat keeps it alive.
    let out = rig
        .run("sleep 40; echo slept", Duration::from_secs(120))
        .unwrap_or_else(|e| panic!("a quiet 40 s command in a live L1: {e}"));
    assert!(out.text().contains("slept"), "{}", out.text());
    // L1 frozen from outside (SIGSTOP on its QEMU) during a long command: caught by the lost
    // heartbeat, well before the command's own 600 s timeout.
    let pid = rig.qemu_pid() as i32;
    let stopper = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(5));
        // SAFETY: kill(2) on our own child process; no memory is touched.
        unsafe { libc::kill(pid, libc::SIGSTOP) };
    });
    let start = Instant::now();
    let err = rig
        .run("sleep 500", Duration::from_secs(600))
        .expect_err("a stopped L1 cannot finish a command");
    stopper.join().unwrap();
    assert!(matches!(err, RigError::L1Silent { .. }), "{err}");
    assert!(
        start.elapsed() < Duration::from_secs(60),
        "took {:?}",
        start.elapsed()
    );
    assert!(!rig.is_alive());
}

#[test]
fn a_killed_qemu_cannot_make_the_agents_tty_non_blocking() {
    // QEMU's -serial stdio sets O_NONBLOCK on its stdout and never clears it when killed. File
    // status flags belong to the open file description: each command opens ttyS1 itself, so
    // the agent's own descriptor (PID 1, fd 3) stays blocking and its replies cannot be lost
    // to EAGAIN (the cause of the old agent stalls).
    let out = in_l1(
        "nb() { f=$(awk '/^flags/ {print $2}' \"$1\"); [ $((f & 04000)) -ne 0 ]; }\n\
         qemu-system-x86_64 -M pc -accel tcg -m 64 -nodefaults -display none -serial stdio </dev/null & q=$!\n\
         i=0; until nb /proc/$q/fdinfo/1 || [ $i -ge 120 ]; do sleep 0.5; i=$((i+1)); done\n\
         nb /proc/$q/fdinfo/1 && echo qemu-set-nonblock\n\
         kill -9 $q; wait $q\n\
         nb /proc/$$/fdinfo/1 && echo command-stdout-left-nonblocking\n\
         nb /proc/1/fdinfo/3 || echo agent-tty-blocking\n",
        Duration::from_secs(120),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let text = out.text();
    for want in [
        "qemu-set-nonblock",
        "command-stdout-left-nonblocking",
        "agent-tty-blocking",
    ] {
        assert!(text.lines().any(|l| l == want), "no {want:?} in:\n{text}");
    }
    let next =
        in_l1("echo next-command-fine", Duration::from_secs(60)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(next.text(), "next-command-fine\n");
}

#[test]
fn orphans_dying_while_the_agent_reads_cost_no_resend() {
    // Orphans of a command are reparented to L1's PID 1. When the agent itself was PID 1, the
    // SIGCHLD of one dying while the agent sat in busybox `read` dropped the bytes of the line
    // read so far (a lost BEGIN line meant a command never acknowledged). Now PID 1 only reaps.
    vireo_rig::with_shared(|r| {
        let before = r.recoveries();
        let mut script = String::new();
        for j in 0..20 {
            script.push_str(&format!("echo line-{j} >/dev/null\n"));
        }
        script.push_str("echo ok");
        for _ in 0..4 {
            let out = r.run(
                "i=0; while [ $i -lt 40 ]; do i=$((i + 1)); t=$((i / 10)).$((i % 10)); \
                 ( (sleep $t; sleep $t) >/dev/null 2>&1 & ); done; echo spawned",
                Duration::from_secs(60),
            )?;
            assert_eq!(out.text(), "spawned\n");
            for _ in 0..8 {
                assert_eq!(r.run(&script, Duration::from_secs(60))?.text(), "ok\n");
            }
        }
        assert_eq!(r.recoveries(), before, "the agent had to recover");
        Ok(())
    })
    .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn a_lost_l2_boot_reruns_the_script_on_a_fresh_l1() {
    let script = "cat /proc/sys/kernel/random/boot_id; cat /proc/sys/kernel/random/uuid";
    let seen = std::cell::RefCell::new(Vec::new());
    vireo_rig::reruns::expected_in_this_thread();
    let out = vireo_rig::run_command_fresh_again_if_lost(script, Duration::from_secs(120), |out| {
        seen.borrow_mut().push(out.text());
        if seen.borrow().len() == 1 {
            vec!["VMM-EXIT test 3 (made up)".to_owned()]
        } else {
            Vec::new()
        }
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let seen = seen.into_inner();
    assert_eq!(seen.len(), 1, "`lost` is asked about the first run only");
    let first: Vec<&str> = seen[0].lines().collect();
    let second: Vec<String> = out.lines.iter().map(|l| l.text.clone()).collect();
    assert_eq!((first.len(), second.len()), (2, 2), "{first:?} {second:?}");
    assert_ne!(first[1], second[1], "the result is the second run's");
    if vireo_rig::kvm::mode() == vireo_rig::kvm::Mode::Nested {
        assert_ne!(first[0], second[0], "the second run had an L1 of its own");
    }
}
