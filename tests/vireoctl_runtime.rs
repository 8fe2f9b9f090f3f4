//! Runtime tests: the real `vireoctl` starts the real `vireo-vmm` with tiny hand-written guests
//! on the local /dev/kvm (seconds, not minutes). They cover the supervisor, states and reasons,
//! lifecycle actions, events, the console, reattach and stale-file cleanup. Booting Linux is
//! the rig's job (tests/vireoctl_rig.rs).

mod vireoctl_support;

use std::io::{Read, Write};
use std::time::Duration;
use vireoctl_support::{domain_xml, guest, Home};

const T: Duration = Duration::from_secs(20);

fn define(h: &Home, name: &str, code: &[u8], devices: &str, actions: (&str, &str, &str)) {
    vireoctl_support::vmm();
    let k = h.file(&format!("{name}.elf"), &guest::pvh_elf(code));
    let x = h.file(
        &format!("{name}.xml"),
        domain_xml(name, &k, devices, actions).as_bytes(),
    );
    h.ok(&["define", x.to_str().unwrap()]);
}

fn pty() -> &'static str {
    "    <serial type='pty'>\n      <target port='0'/>\n    </serial>\n"
}

fn events(h: &Home, name: &str) -> Vec<String> {
    let out = h.ok(&["event", "--all", "--domain", name, "--timeout", "0"]);
    out.lines()
        .filter(|l| l.starts_with("event "))
        .map(str::to_owned)
        .collect()
}

#[test]
fn start_console_suspend_resume_destroy() {
    let h = Home::new("life");
    let mut code = guest::print("hello from tiny\n");
    code.extend(guest::echo_loop());
    define(&h, "t1", &code, pty(), ("destroy", "restart", "destroy"));
    h.ok(&["start", "t1"]);
    assert_eq!(
        h.ok(&["domstate", "--reason", "t1"]).trim(),
        "running (booted)"
    );
    let list = h.ok(&["list"]);
    assert!(list.contains("t1") && list.contains("running"), "{list}");
    // Starting twice is a state error (exit 5).
    assert_eq!(h.run(&["start", "t1"]).0, 5);

    // The console: the backlog, then our keystrokes echoed by the guest.
    let mut c = h
        .cmd()
        .args(["console", "t1"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin.as_mut().unwrap().write_all(b"ping-42").unwrap();
    drop(c.stdin.take());
    let mut out = String::new();
    c.stdout.as_mut().unwrap().read_to_string(&mut out).unwrap();
    assert!(c.wait().unwrap().success());
    assert!(out.contains("hello from tiny"), "console said: {out:?}");
    assert!(out.contains("ping-42"), "no echo: {out:?}");

    h.ok(&["suspend", "t1"]);
    assert_eq!(
        h.ok(&["domstate", "--reason", "t1"]).trim(),
        "paused (user)"
    );
    assert_eq!(
        h.run(&["suspend", "t1"]).0,
        0,
        "suspending a paused machine is harmless"
    );
    h.ok(&["resume", "t1"]);
    assert_eq!(
        h.ok(&["domstate", "--reason", "t1"]).trim(),
        "running (unpaused)"
    );
    assert_eq!(h.run(&["resume", "t1"]).0, 5);

    // A guest that ignores the power button: shutdown times out with exit 6.
    let (code, _, err) = h.run(&["shutdown", "--timeout", "1", "t1"]);
    assert_eq!(code, 6, "{err}");

    h.ok(&["destroy", "t1"]);
    assert_eq!(
        h.ok(&["domstate", "--reason", "t1"]).trim(),
        "shut off (destroyed)"
    );
    assert_eq!(h.run(&["destroy", "t1"]).0, 5);
    assert!(
        !h.runtime("t1").join("ctl").exists(),
        "control socket left behind"
    );
    let ev = events(&h, "t1");
    assert_eq!(
        ev,
        [
            "event 'lifecycle' for domain 't1': Defined Added",
            "event 'lifecycle' for domain 't1': Started Booted",
            "event 'lifecycle' for domain 't1': Suspended Paused",
            "event 'lifecycle' for domain 't1': Resumed Unpaused",
            "event 'lifecycle' for domain 't1': Stopped Destroyed",
        ]
    );
}

#[test]
fn guest_poweroff_reboot_and_crash_follow_the_actions() {
    let h = Home::new("act");
    // on_poweroff=destroy
    let mut c = guest::print("bye\n");
    c.extend(guest::poweroff());
    define(&h, "off", &c, pty(), ("destroy", "restart", "destroy"));
    h.ok(&["start", "off"]);
    h.wait_state("off", "shut off (shutdown)", T);
    // on_reboot=destroy: a guest reboot ends the machine.
    define(
        &h,
        "rb",
        &guest::reset(),
        "",
        ("destroy", "destroy", "destroy"),
    );
    h.ok(&["start", "rb"]);
    h.wait_state("rb", "shut off (shutdown)", T);
    // on_crash=destroy
    define(
        &h,
        "cr",
        &guest::triple_fault(0),
        "",
        ("destroy", "restart", "destroy"),
    );
    h.ok(&["start", "cr"]);
    h.wait_state("cr", "shut off (crashed)", T);
    // on_crash=preserve keeps the machine in crashed/panicked until destroyed.
    define(
        &h,
        "pr",
        &guest::triple_fault(0),
        "",
        ("destroy", "restart", "preserve"),
    );
    h.ok(&["start", "pr"]);
    h.wait_state("pr", "crashed (panicked)", T);
    h.ok(&["destroy", "pr"]);
    assert_eq!(
        h.ok(&["domstate", "--reason", "pr"]).trim(),
        "shut off (destroyed)"
    );
    // on_reboot=restart: restarted, and a guest that does nothing but reboot is stopped after
    // five fast restarts instead of looping forever.
    define(
        &h,
        "loop",
        &guest::reset(),
        "",
        ("destroy", "restart", "destroy"),
    );
    h.ok(&["start", "loop"]);
    h.wait_state("loop", "shut off (failed)", Duration::from_secs(40));
    let ev = events(&h, "loop");
    assert!(
        ev.iter().filter(|l| l.contains("event 'reboot'")).count() >= 4,
        "{ev:?}"
    );
    assert!(
        ev.iter().filter(|l| l.ends_with("Started Booted")).count() >= 5,
        "{ev:?}"
    );
    assert_eq!(
        ev.last().map(String::as_str),
        Some("event 'lifecycle' for domain 'loop': Stopped Failed")
    );
    // on_crash=coredump-restart restarts too (no dump), with a note in dominfo.
    define(
        &h,
        "cd",
        &guest::triple_fault(0),
        "",
        ("destroy", "restart", "coredump-restart"),
    );
    h.ok(&["start", "cd"]);
    h.wait_state("cd", "shut off (failed)", Duration::from_secs(40));
    let info = h.ok(&["dominfo", "cd"]);
    assert!(
        info.contains("Restarts:       4") || info.contains("Restarts:       5"),
        "{info}"
    );
    let ev = events(&h, "cd");
    assert!(
        ev.iter()
            .filter(|l| l.ends_with("Crashed Panicked"))
            .count()
            >= 5,
        "{ev:?}"
    );
}

#[test]
fn reboot_restarts_and_reattach_after_supervisor_death() {
    let h = Home::new("re");
    let mut code = guest::print("up\n");
    code.extend(guest::spin());
    define(&h, "r", &code, pty(), ("destroy", "destroy", "destroy"));
    h.ok(&["start", "r"]);
    let pid1 = h.ok(&["dominfo", "--json", "r"]);
    // vireoctl reboot restarts even with on_reboot=destroy (as virsh reboot does).
    h.ok(&["reboot", "r"]);
    assert_eq!(
        h.ok(&["domstate", "--reason", "r"]).trim(),
        "running (booted)"
    );
    let pid2 = h.ok(&["dominfo", "--json", "r"]);
    let p = |s: &str| {
        serde_json::from_str::<serde_json::Value>(s).unwrap()["pid"]
            .as_i64()
            .unwrap()
    };
    assert_ne!(p(&pid1), p(&pid2), "reboot did not start a fresh helper");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&pid2).unwrap()["restarts"],
        1
    );

    // The supervisor dies (kill -9): the machine keeps running, a new vireoctl finds it.
    let st: serde_json::Value =
        serde_json::from_slice(&std::fs::read(h.runtime("r").join("state.json")).unwrap()).unwrap();
    let sup = st["supervisor_pid"].as_i64().unwrap() as i32;
    unsafe { libc::kill(sup, libc::SIGKILL) };
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(h.ok(&["domstate", "r"]).trim(), "running");
    // Destroy without a supervisor is recorded by the client.
    h.ok(&["destroy", "r"]);
    assert_eq!(
        h.ok(&["domstate", "--reason", "r"]).trim(),
        "shut off (destroyed)"
    );

    // Helper and supervisor both killed: the next client sees a stale runtime dir, reports the
    // machine shut off and removes the sockets.
    h.ok(&["start", "r"]);
    let st: serde_json::Value =
        serde_json::from_slice(&std::fs::read(h.runtime("r").join("state.json")).unwrap()).unwrap();
    let (sup, vmm) = (
        st["supervisor_pid"].as_i64().unwrap() as i32,
        st["vmm_pid"].as_i64().unwrap() as i32,
    );
    unsafe {
        libc::kill(sup, libc::SIGKILL);
        libc::kill(vmm, libc::SIGKILL);
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        h.ok(&["domstate", "--reason", "r"]).trim(),
        "shut off (crashed)"
    );
    assert!(!h.runtime("r").join("ctl").exists());
    let ev = events(&h, "r");
    assert_eq!(
        ev.last().map(String::as_str),
        Some("event 'lifecycle' for domain 'r': Stopped Failed")
    );
    // And it starts again.
    h.ok(&["start", "r"]);
    h.ok(&["destroy", "r"]);
}

#[test]
fn transient_machines_vanish_and_refusals_come_before_start() {
    let h = Home::new("tr");
    vireoctl_support::vmm();
    let mut code = guest::print("t\n");
    code.extend(guest::spin());
    let k = h.file("t.elf", &guest::pvh_elf(&code));
    let (c, out, err) = h.run(&[
        "create",
        "--name",
        "tt",
        "--memory",
        "16",
        "--boot",
        &format!("kernel={}", k.display()),
        "--graphics",
        "none",
        "--transient",
    ]);
    assert_eq!(c, 0, "{out}{err}");
    let list = h.ok(&["list", "--all"]);
    assert!(
        list.contains("tt") && list.contains("running") && list.contains(" no"),
        "{list}"
    );
    h.ok(&["destroy", "tt"]);
    assert_eq!(
        h.run(&["domstate", "tt"]).0,
        3,
        "a stopped transient machine is gone"
    );
    assert!(!h.runtime("tt").exists());

    // A definition the backend cannot run is refused by start, with the element named.
    let bad = h.file(
        "bad.xml",
        domain_xml(
            "bad",
            &k,
            "    <interface type='bridge'>\n      <source bridge='br0'/>\n    </interface>\n",
            ("destroy", "restart", "destroy"),
        )
        .as_bytes(),
    );
    h.ok(&["define", bad.to_str().unwrap()]);
    let (c, _, err) = h.run(&["start", "bad"]);
    assert_eq!(c, 4);
    assert!(err.contains("devices/interface[1]@type='bridge': not supported by the Vireo backend (use type='user')"), "{err}");
    assert_eq!(h.ok(&["domstate", "bad"]).trim(), "shut off");
    // A kernel the helper cannot load: start fails with the helper's words, state failed.
    let junk = h.file("junk.bin", b"not a kernel at all");
    let j = h.file(
        "junk.xml",
        domain_xml("junk", &junk, "", ("destroy", "restart", "destroy")).as_bytes(),
    );
    h.ok(&["define", j.to_str().unwrap()]);
    let (c, _, err) = h.run(&["start", "junk"]);
    assert_eq!(c, 1, "{err}");
    assert!(err.contains("failed to start"), "{err}");
    assert_eq!(
        h.ok(&["domstate", "--reason", "junk"]).trim(),
        "shut off (failed)"
    );
}

#[test]
fn vnc_display_and_screenshot() {
    let h = Home::new("vnc");
    let mut code = guest::print("v\n");
    code.extend(guest::spin());
    let dev = "    <graphics type='vnc' port='-1' autoport='yes' passwd='secret'/>\n    <video>\n      <model type='virtio'>\n        <resolution x='640' y='480'/>\n      </model>\n    </video>\n";
    define(&h, "v", &code, dev, ("destroy", "restart", "destroy"));
    h.ok(&["start", "v"]);
    let d = h.ok(&["vncdisplay", "v"]);
    assert!(d.trim().starts_with("127.0.0.1:"), "{d}");
    let n: u16 = d.trim().trim_start_matches("127.0.0.1:").parse().unwrap();
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", 5900 + n)).is_ok(),
        "nothing listens on {d}"
    );
    let sock = h.ok(&["vncsocket", "v"]);
    assert!(
        std::os::unix::net::UnixStream::connect(sock.trim()).is_ok(),
        "no VNC unix socket at {sock}"
    );
    let shot = h.root.join("shot.png");
    let (c, _, err) = h.run(&["screenshot", "v", shot.to_str().unwrap()]);
    // The VNC helper adds `screendump`; an older helper must say so clearly (exit 7).
    if c == 7 {
        assert!(
            err.contains("not supported by this helper version"),
            "{err}"
        );
    } else {
        assert_eq!(c, 0, "{err}");
        let png = std::fs::read(&shot).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        // IHDR: width and height as the video resolution asked.
        assert_eq!(&png[16..24], &[0, 0, 2, 128, 0, 0, 1, 224]);
    }
    h.ok(&["destroy", "v"]);
}

#[test]
fn event_loop_prints_events_in_order_as_they_happen() {
    let h = Home::new("ev");
    let mut code = guest::print("e\n");
    code.extend(guest::spin());
    let k = h.file("e.elf", &guest::pvh_elf(&code));
    let x = h.file(
        "e.xml",
        domain_xml("e", &k, "", ("destroy", "restart", "destroy")).as_bytes(),
    );
    vireoctl_support::vmm();
    let mut watcher = h
        .cmd()
        .args(["event", "--loop", "--domain", "e", "--timeout", "30"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The watcher follows the log from its end: give it time to open it.
    std::thread::sleep(Duration::from_millis(500));
    h.ok(&["define", x.to_str().unwrap()]);
    h.ok(&["start", "e"]);
    h.ok(&["suspend", "e"]);
    h.ok(&["resume", "e"]);
    h.ok(&["destroy", "e"]);
    h.ok(&["undefine", "e"]);
    std::thread::sleep(Duration::from_millis(500));
    unsafe { libc::kill(watcher.id() as i32, libc::SIGTERM) };
    let mut out = String::new();
    watcher
        .stdout
        .as_mut()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    let _ = watcher.wait();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        [
            "event 'lifecycle' for domain 'e': Defined Added",
            "event 'lifecycle' for domain 'e': Started Booted",
            "event 'lifecycle' for domain 'e': Suspended Paused",
            "event 'lifecycle' for domain 'e': Resumed Unpaused",
            "event 'lifecycle' for domain 'e': Stopped Destroyed",
            "event 'lifecycle' for domain 'e': Undefined Removed",
        ]
    );
}

/// The lifecycle actions the test above leaves out (on_poweroff restart / rename-restart /
/// preserve, on_reboot preserve / rename-restart, on_crash rename-restart) and `vireoctl reset`.
#[test]
fn remaining_lifecycle_actions_and_reset() {
    let h = Home::new("act2");
    let lc = |name: &str, rest: &str| format!("event 'lifecycle' for domain '{name}': {rest}");
    let reboot = |name: &str| format!("event 'reboot' for domain '{name}'");
    let bye = || {
        let mut c = guest::print("bye\n");
        c.extend(guest::poweroff());
        c
    };

    // on_poweroff restart and rename-restart (same name here, with a note): started again after
    // each power-off; a guest that does nothing else is stopped after five fast restarts.
    for (name, action) in [("pwr", "restart"), ("pwn", "rename-restart")] {
        define(&h, name, &bye(), pty(), (action, "destroy", "destroy"));
        h.ok(&["start", name]);
        h.wait_state(name, "shut off (failed)", Duration::from_secs(40));
        let ev = events(&h, name);
        assert_eq!(
            ev[..5],
            [
                lc(name, "Defined Added"),
                lc(name, "Started Booted"),
                lc(name, "Shutdown Finished"),
                lc(name, "Started Booted"),
                lc(name, "Shutdown Finished"),
            ],
            "{ev:?}"
        );
        assert_eq!(ev.last(), Some(&lc(name, "Stopped Failed")), "{ev:?}");
    }

    // on_poweroff preserve: shut off, the runtime files (live XML, serial log) kept for
    // inspection; destroy (the default) removes them. The machine starts again afterwards.
    define(&h, "pwp", &bye(), pty(), ("preserve", "destroy", "destroy"));
    h.ok(&["start", "pwp"]);
    h.wait_state("pwp", "shut off (shutdown)", T);
    assert!(h.runtime("pwp").join("domain.xml").exists());
    assert_eq!(
        events(&h, "pwp"),
        [
            lc("pwp", "Defined Added"),
            lc("pwp", "Started Booted"),
            lc("pwp", "Shutdown Finished"),
            lc("pwp", "Stopped Shutdown"),
        ]
    );
    define(&h, "pwd", &bye(), pty(), ("destroy", "destroy", "destroy"));
    h.ok(&["start", "pwd"]);
    h.wait_state("pwd", "shut off (shutdown)", T);
    // The supervisor records the state first, then removes the files and exits.
    let t0 = std::time::Instant::now();
    while h.runtime("pwd").join("domain.xml").exists() && t0.elapsed() < T {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!h.runtime("pwd").join("domain.xml").exists());
    h.ok(&["start", "pwp"]);
    h.wait_state("pwp", "shut off (shutdown)", T);

    // on_reboot preserve: the guest's reboot stops the machine, files kept.
    define(
        &h,
        "rbp",
        &guest::reset(),
        "",
        ("destroy", "preserve", "destroy"),
    );
    h.ok(&["start", "rbp"]);
    h.wait_state("rbp", "shut off (shutdown)", T);
    assert!(h.runtime("rbp").join("domain.xml").exists());
    assert_eq!(
        events(&h, "rbp").last(),
        Some(&lc("rbp", "Stopped Shutdown"))
    );
    // on_reboot rename-restart: restarted like restart.
    define(
        &h,
        "rbn",
        &guest::reset(),
        "",
        ("destroy", "rename-restart", "destroy"),
    );
    h.ok(&["start", "rbn"]);
    h.wait_state("rbn", "shut off (failed)", Duration::from_secs(40));
    let ev = events(&h, "rbn");
    assert!(
        ev.iter().filter(|l| **l == reboot("rbn")).count() >= 4,
        "{ev:?}"
    );
    // on_crash rename-restart: restarted after each crash.
    define(
        &h,
        "crn",
        &guest::triple_fault(0),
        "",
        ("destroy", "restart", "rename-restart"),
    );
    h.ok(&["start", "crn"]);
    h.wait_state("crn", "shut off (failed)", Duration::from_secs(40));
    let ev = events(&h, "crn");
    assert_eq!(
        ev[..4],
        [
            lc("crn", "Defined Added"),
            lc("crn", "Started Booted"),
            lc("crn", "Crashed Panicked"),
            lc("crn", "Started Booted"),
        ],
        "{ev:?}"
    );

    // reset: a fresh helper at once (the VMM's `reset` command ends the old one with the
    // reboot reason), running (booted) again, counted as a restart, announced as a reboot.
    let mut code = guest::print("up\n");
    code.extend(guest::spin());
    define(&h, "rs", &code, pty(), ("destroy", "destroy", "destroy"));
    h.ok(&["start", "rs"]);
    let info = |h: &Home| -> serde_json::Value {
        serde_json::from_str(&h.ok(&["dominfo", "--json", "rs"])).unwrap()
    };
    let before = info(&h);
    h.ok(&["reset", "rs"]);
    assert_eq!(
        h.ok(&["domstate", "--reason", "rs"]).trim(),
        "running (booted)"
    );
    let after = info(&h);
    assert_ne!(before["pid"], after["pid"], "reset kept the old helper");
    assert_eq!(after["restarts"], 1);
    h.ok(&["destroy", "rs"]);
    assert_eq!(
        events(&h, "rs"),
        [
            lc("rs", "Defined Added"),
            lc("rs", "Started Booted"),
            reboot("rs"),
            // Each helper that comes up is announced, a restarted one too.
            lc("rs", "Started Booted"),
            lc("rs", "Stopped Destroyed"),
        ]
    );
}

/// The rig test's VNC peer (tests/vireoctl_support/vnc_check.py) against the real VNC server:
/// it speaks RFB over the private socket, types, reads a whole frame, and fails on a blank
/// screen (this tiny guest draws nothing), so a pass in the rig means something.
#[test]
fn vnc_checker_speaks_rfb_and_refuses_a_blank_screen() {
    let h = Home::new("vcheck");
    let mut code = guest::print("v\n");
    code.extend(guest::spin());
    let dev = "    <graphics type='vnc'>\n      <listen type='none'/>\n    </graphics>\n    <video>\n      <model type='virtio'>\n        <resolution x='640' y='480'/>\n      </model>\n    </video>\n";
    define(&h, "vc", &code, dev, ("destroy", "restart", "destroy"));
    h.ok(&["start", "vc"]);
    let sock = h.ok(&["vncsocket", "vc"]);
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/vireoctl_support/vnc_check.py"
    );
    let run = |args: &[&str]| {
        let out = std::process::Command::new("python3")
            .arg(script)
            .args(args)
            .output()
            .expect("python3 must be installed");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, out) = run(&["type", sock.trim(), "echo hi"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("typed 8 keys") && out.contains("(640x480)"),
        "{out}"
    );
    let (code, out) = run(&["frame", sock.trim(), "2"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("640x480") && out.contains("FAIL: the screen is (nearly) blank"),
        "{out}"
    );
    let a = h.root.join("a.png");
    h.ok(&["screenshot", "vc", a.to_str().unwrap()]);
    let (code, out) = run(&["png", a.to_str().unwrap(), a.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("FAIL: the screenshot is (nearly) blank"),
        "{out}"
    );
    h.ok(&["destroy", "vc"]);
}

/// mov dword [addr], value (32-bit mode, absolute address).
fn store(addr: u32, value: u32) -> Vec<u8> {
    let mut v = vec![0xc7, 0x05];
    v.extend(addr.to_le_bytes());
    v.extend(value.to_le_bytes());
    v
}

/// Drives the virtio-rng at the first virtio-mmio slot to DRIVER_OK (queue 0 in free RAM),
/// which starts its worker thread `virtio-rng` in the helper.
fn activate_rng() -> Vec<u8> {
    const BASE: u32 = 0xd800_0000;
    let reg = |off: u32, v: u32| store(BASE + off, v);
    [
        reg(0x70, 1),             // Status: ACKNOWLEDGE
        reg(0x70, 1 | 2),         // + DRIVER
        reg(0x24, 1),             // DriverFeaturesSel: bits 32..63
        reg(0x20, 1),             // VIRTIO_F_VERSION_1
        reg(0x70, 1 | 2 | 8),     // + FEATURES_OK
        reg(0x30, 0),             // QueueSel 0
        reg(0x38, 8),             // QueueNum
        reg(0x80, 0x30_0000),     // QueueDescLow
        reg(0x90, 0x30_1000),     // QueueDriverLow
        reg(0xa0, 0x30_2000),     // QueueDeviceLow
        reg(0x44, 1),             // QueueReady
        reg(0x70, 1 | 2 | 8 | 4), // + DRIVER_OK
    ]
    .concat()
}

#[test]
fn a_helper_thread_that_panics_stops_the_machine_as_crashed_with_the_reason() {
    // The helper's debug-build test hook makes the named thread panic; the supervisor must not
    // leave the machine "running" without it, nor apply on_crash=restart to a helper fault.
    let h = Home::new("panic");
    let code = [activate_rng(), guest::print("up\n"), guest::spin()].concat();
    let rng = "    <rng model='virtio'>\n      <backend model='random'>/dev/urandom</backend>\n    </rng>\n";
    define(&h, "pw", &code, rng, ("destroy", "restart", "restart"));
    let start = |h: &Home, name: &str, thread: &str| {
        let out = h
            .cmd()
            // vireo_vmm::lifecycle::TEST_PANIC_ENV
            .env("VIREO_VMM_TEST_PANIC", thread)
            .args(["start", name])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    start(&h, "pw", "virtio-rng");
    h.wait_state("pw", "shut off (crashed)", T);
    let ev = events(&h, "pw");
    assert_eq!(
        ev.last().map(String::as_str),
        Some("event 'lifecycle' for domain 'pw': Stopped Failed"),
        "{ev:?}"
    );
    assert!(!ev.iter().any(|l| l.contains("Crashed Panicked")), "{ev:?}");
    // The events log (JSON lines) carries the reason with the Stopped event.
    let log = std::fs::read_to_string(h.root.join("r/vireo/events.log")).unwrap();
    let stopped = log
        .lines()
        .rfind(|l| l.contains("\"domain\":\"pw\"") && l.contains("\"stopped\""))
        .unwrap_or_else(|| panic!("no Stopped event: {log}"));
    let stopped: serde_json::Value = serde_json::from_str(stopped).unwrap();
    let message = stopped["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("thread 'virtio-rng' panicked") && message.contains("test hook"),
        "{stopped}"
    );
    let info = h.ok(&["dominfo", "pw"]);
    assert!(info.contains("thread 'virtio-rng' panicked"), "{info}");

    // A vCPU thread, panicking on the guest's first port write.
    define(&h, "pv", &code, rng, ("destroy", "restart", "destroy"));
    start(&h, "pv", "vcpu0");
    h.wait_state("pv", "shut off (crashed)", T);
    let log = std::fs::read_to_string(h.root.join("r/vireo/events.log")).unwrap();
    assert!(log.contains("thread 'vcpu0' panicked"), "{log}");
}
