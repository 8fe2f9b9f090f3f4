//! A guest that floods the serial port and the boot-time marker leaves its runtime directory
//! under the cap: the serial log rotates inside the VMM, and the VMM's stderr, copied into
//! `vmm.log` the way the supervisor copies it, stays bounded and rate limited.

mod tiny;

use serde_json::json;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tiny::{asm, Client};
use vireo_vmm::logcap::{self, backup_path, CappedLog, Limits};

/// Small enough that a few seconds of flooding rotate through every backup, even on a nested
/// KVM where a port write costs some 80 µs.
const MAX_SIZE: u64 = 2 * 1024;

fn dir_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum()
}

#[test]
fn serial_and_boot_marker_flood_stays_under_the_cap() {
    // loop: out 0x3f8, al; out 0x3f0, al; inc al; jmp loop
    let mut guest = asm::mov_dx(0x3f8);
    guest.extend(asm::OUT_DX_AL);
    guest.extend(asm::mov_dx(0x3f0));
    guest.extend(asm::OUT_DX_AL);
    guest.extend([0xfe, 0xc0, 0xeb, 0xf2]);

    let dir = tiny::tempdir("flood");
    // The kernel and the config live elsewhere, as the guest's files do not count.
    let files = tiny::tempdir("flood-files");
    let kernel = files.join("kernel.elf");
    std::fs::write(&kernel, tiny::pvh_elf(&guest)).unwrap();
    let cfg = json!({
        "version": 1, "name": "flood", "memory_mib": 16, "vcpus": 1,
        // Under seccomp: the serial log rotates on the sandboxed vCPU thread.
        "kernel": kernel, "cmdline": "", "boot_marker": true, "seccomp": true,
        "serial": {"log": dir.join("serial.log"), "socket": dir.join("serial")},
        "input": {"keyboard": false, "tablet": false},
    });
    std::fs::write(dir.join("config.json"), cfg.to_string()).unwrap();
    let control = dir.join("ctl");
    let mut child = Command::new(env!("CARGO_BIN_EXE_vireo-vmm"))
        .arg("--config")
        .arg(dir.join("config.json"))
        .arg("--control")
        .arg(&control)
        .env(logcap::MAX_SIZE_ENV, MAX_SIZE.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    // What the supervisor does with the helper's stderr.
    let vmm_limits = Limits {
        max_size: MAX_SIZE,
        ..logcap::VMM_LOG
    };
    let serial_limits = Limits {
        max_size: MAX_SIZE,
        ..logcap::SERIAL_LOG
    };
    let mut vmm_log = CappedLog::open(&dir.join("vmm.log"), vmm_limits).unwrap();
    let stderr = child.stderr.take().unwrap();
    let pump = std::thread::spawn(move || {
        use std::io::Write;
        logcap::pump(stderr, |line| vmm_log.write_all(line))
    });

    let mut c = Client::connect(&control, Duration::from_secs(10));
    // The logs' own limits, plus the configuration, which the guest cannot grow.
    let config_len = std::fs::metadata(dir.join("config.json")).unwrap().len();
    let cap = serial_limits.total() + vmm_limits.total() + config_len;
    assert!(cap <= logcap::rundir_cap(serial_limits, vmm_limits));
    let start = Instant::now();
    let mut peak = 0;
    // Past one rate-limit window, so the note of suppressed lines is due.
    while start.elapsed() < logcap::LINE_WINDOW + Duration::from_secs(1) {
        peak = peak.max(dir_size(&dir));
        std::thread::sleep(Duration::from_millis(50));
    }
    let status = c.execute("status", json!({}));
    assert_eq!(status["return"]["state"], "running", "{status}");
    c.execute("quit", json!({}));
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "vireo-vmm did not quit");
        std::thread::sleep(Duration::from_millis(10));
    }
    pump.join().unwrap().unwrap();
    let total = dir_size(&dir);
    let serial = dir.join("serial.log");
    let flooded = std::fs::metadata(backup_path(&serial, serial_limits.backups))
        .map(|m| m.len())
        .unwrap_or(0);
    let log = std::fs::read_to_string(dir.join("vmm.log")).unwrap_or_default();
    let listing: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (e.file_name(), e.metadata().unwrap().len())
        })
        .collect();
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&files);

    assert!(
        total <= cap && peak <= cap,
        "runtime directory holds {total} bytes (peak {peak}), cap {cap}: {listing:?}"
    );
    assert!(
        flooded > 0,
        "the guest did not write enough to rotate through every backup: {listing:?}"
    );
    assert!(
        log.contains("boot marker 0x0 at"),
        "first boot marker lines are logged: {log}"
    );
    assert!(
        log.lines().filter(|l| l.contains("boot marker 0x")).count()
            <= 3 * logcap::LINE_BURST as usize,
        "boot marker lines are not rate limited: {log}"
    );
    assert!(
        log.contains("more boot marker lines not logged"),
        "no note of suppressed lines: {log}"
    );
    assert!(log.contains("VM ended: quit"), "{log}");
}
