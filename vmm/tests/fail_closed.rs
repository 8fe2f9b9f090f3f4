//! The real `vireo-vmm` fails closed: a VMM thread that panics ends the whole process with the
//! internal-error status (4) and one line saying which thread and why, instead of leaving a VM
//! running without that thread. The panics come from the debug-build test hook
//! (`VIREO_VMM_TEST_PANIC` names the thread), so these tests need the debug binary that
//! `cargo test` builds.

mod tiny;

use serde_json::{json, Value};
use std::process::Command;
use std::time::Duration;
use tiny::{asm, pvh_elf, tempdir, Vmm};
use vireo_vmm::lifecycle::{EXIT_PANIC, PANIC_LINE_PREFIX, TEST_PANIC_ENV};

const T: Duration = Duration::from_secs(20);

/// Like `Vmm::start`, with the virtio-rng device and `env` added to the process environment
/// (the panic hook's test variable is always set or cleared explicitly).
fn start(tag: &str, code: &[u8], env: &[(&str, &str)]) -> Vmm {
    let dir = tempdir(tag);
    let kernel = dir.join("kernel.elf");
    std::fs::write(&kernel, pvh_elf(code)).unwrap();
    let serial_log = dir.join("serial.log");
    let cfg: Value = json!({
        "version": 1, "name": tag, "memory_mib": 16, "vcpus": 1,
        "kernel": kernel, "cmdline": "",
        "serial": {"log": serial_log},
        "input": {"keyboard": false, "tablet": false},
        "rng": true,
    });
    let mut all = vec![(TEST_PANIC_ENV, "")];
    all.extend_from_slice(env);
    Vmm::start_with_env(dir, cfg, serial_log, &all)
}

/// A minimal virtio-mmio driver for the rng at slot 0 (the only virtio device here): status
/// ACKNOWLEDGE, DRIVER, VERSION_1, FEATURES_OK, queue 0 (8 entries in free RAM), DRIVER_OK.
/// DRIVER_OK starts the device's worker thread, `virtio-rng`.
fn activate_rng() -> Vec<u8> {
    const BASE: u32 = 0xd800_0000;
    let reg = |off: u32, v: u32| asm::store(BASE + off, v);
    [
        reg(0x70, 1),             // Status: ACKNOWLEDGE
        reg(0x70, 1 | 2),         // + DRIVER
        reg(0x24, 1),             // DriverFeaturesSel: bits 32..63
        reg(0x20, 1),             // VIRTIO_F_VERSION_1 (bit 32)
        reg(0x70, 1 | 2 | 8),     // + FEATURES_OK
        reg(0x30, 0),             // QueueSel 0
        reg(0x38, 8),             // QueueNum
        reg(0x80, 0x30_0000),     // QueueDescLow
        reg(0x90, 0x30_1000),     // QueueDriverLow (avail)
        reg(0xa0, 0x30_2000),     // QueueDeviceLow (used)
        reg(0x44, 1),             // QueueReady
        reg(0x70, 1 | 2 | 8 | 4), // + DRIVER_OK
    ]
    .concat()
}

fn threads(pid: u32) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| {
            d.flatten()
                .filter_map(|t| std::fs::read_to_string(t.path().join("comm")).ok())
                .map(|c| c.trim().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn assert_panicked(st: std::process::ExitStatus, err: &str, thread: &str) {
    assert_eq!(st.code(), Some(EXIT_PANIC), "stderr: {err}");
    let line = err
        .lines()
        .find(|l| l.starts_with(PANIC_LINE_PREFIX))
        .unwrap_or_else(|| panic!("no panic line in stderr: {err}"));
    assert!(
        line.contains(&format!("thread '{thread}' panicked")) && line.contains("test hook"),
        "{line}"
    );
    // Nothing after it: the process ended there, nobody reported the VM as ending normally.
    assert!(!err.contains("VM ended"), "stderr: {err}");
}

#[test]
fn a_device_worker_that_panics_ends_the_vm_with_the_reason() {
    let guest = [activate_rng(), asm::print("up\n"), asm::spin()].concat();
    // Without the hook the guest gets its device going and runs on: the worker exists.
    let mut vm = start("rng-ok", &guest, &[]);
    assert!(vm.wait_serial(b"up\n", T), "guest never printed");
    let seen = threads(vm.child.id());
    assert!(seen.iter().any(|t| t == "virtio-rng"), "{seen:?}");
    let mut c = vm.connect();
    c.execute("quit", json!({}));
    let (st, err) = vm.wait(T);
    assert_eq!(st.code(), Some(0), "stderr: {err}");

    // The same guest with the worker made to panic as it starts: the whole VMM ends.
    let mut vm = start("rng-panic", &guest, &[(TEST_PANIC_ENV, "virtio-rng")]);
    let (st, err) = vm.wait(T);
    assert_panicked(st, &err, "virtio-rng");
}

#[test]
fn a_vcpu_that_panics_ends_the_vm_with_the_reason() {
    let guest = [asm::print("up\n"), asm::spin()].concat();
    let mut vm = start("vcpu-panic", &guest, &[(TEST_PANIC_ENV, "vcpu0")]);
    let (st, err) = vm.wait(T);
    assert_panicked(st, &err, "vcpu0");
}

/// The VMM's stderr is a pipe to its supervisor. When the supervisor is gone, writing a log line
/// fails (EPIPE); that must cost the line, not the machine (`eprintln!` would panic, and the
/// panic hook would then end the VM).
#[test]
fn a_vm_whose_log_reader_is_gone_keeps_running() {
    // Port 0x99 has no device: each write there is a log line.
    let stray = [tiny::asm::mov_dx(0x99), tiny::asm::mov_al(1), vec![0xee]].concat();
    // Waits until a byte arrives on COM1: the test sends one once it has closed the pipe.
    let wait_for_go = [tiny::asm::print("up\n"), tiny::asm::wait_serial_byte()].concat();
    let guest = [
        wait_for_go,
        stray.clone(),
        stray.clone(),
        stray,
        tiny::asm::print("still here\n"),
        asm::spin(),
    ]
    .concat();
    let mut vm = Vmm::start("orphan", &guest, |_| {});
    assert!(vm.wait_serial(b"up\n", T), "guest never printed");
    drop(vm.child.stderr.take());
    let mut console = std::os::unix::net::UnixStream::connect(vm.dir.join("console.sock")).unwrap();
    std::io::Write::write_all(&mut console, b"g").unwrap();
    assert!(
        vm.wait_serial(b"still here\n", Duration::from_secs(60)),
        "the guest stopped after its log reader went away: {:?}, serial {:?}",
        vm.child.try_wait(),
        String::from_utf8_lossy(&vm.serial())
    );
    assert_eq!(vm.child.try_wait().unwrap(), None, "the VMM ended");
    let mut c = vm.connect();
    c.execute("quit", json!({}));
    let (st, _) = vm.wait(T);
    assert_eq!(st.code(), Some(0));
}

/// The one panic the VMM turns into a refusal: imago's qcow2 reader panics on some malformed
/// headers; with the panic hook installed (the real binary) that must still be "this image is
/// refused" (exit 1, one line), not an internal error that ends the VM as a VMM bug.
#[test]
fn a_qcow2_header_that_breaks_the_reader_is_a_refusal_not_a_vmm_panic() {
    let dir = tiny::tempdir("reader-panic");
    let img = dir.join("broken.qcow2");
    let ok = Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2"])
        .arg(&img)
        .arg("1M")
        .status()
        .unwrap();
    assert!(ok.success());
    // A feature name table one byte longer than its 8 entries (see qcow2_references.rs).
    let mut bytes = std::fs::read(&img).unwrap();
    assert_eq!(&bytes[0x70..0x74], &[0x68, 0x03, 0xf8, 0x57]);
    bytes[0x74..0x78].copy_from_slice(&385u32.to_be_bytes());
    std::fs::write(&img, &bytes).unwrap();
    let guest = [asm::print("up\n"), asm::spin()].concat();
    let disk = img.clone();
    let mut vm = Vmm::start("reader-panic", &guest, move |cfg| {
        cfg["disks"] = json!([{"path": disk, "format": "qcow2"}]);
    });
    let (st, err) = vm.wait(T);
    assert_eq!(st.code(), Some(1), "stderr: {err}");
    assert!(!err.contains(PANIC_LINE_PREFIX), "stderr: {err}");
    assert!(
        err.contains("its header made the qcow2 reader fail"),
        "stderr: {err}"
    );
}
