//! A guest's disk writes survive the VMM's ordered exit without a FLUSH from the guest: the
//! real `vireo-vmm` (seccomp on, the default) runs a tiny guest that writes one sector into a
//! new cluster of a fresh qcow2 image and ends (poweroff, `quit`, reboot, crash). qcow2 keeps
//! its new L2 entry in memory until a flush, so without the exit flush `qemu-io` would read
//! zeroes there.

mod tiny;

use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use tiny::{asm, Vmm};

const T: Duration = Duration::from_secs(20);

/// The disk's virtio-mmio window: slot 0 (disks come first, and there is nothing else).
const BASE: u32 = 0xd800_0000;
/// Guest RAM for the queue and the request, clear of the code at 2 MiB.
const DESC: u32 = 0x30_0000;
const AVAIL: u32 = 0x30_1000;
const USED: u32 = 0x30_2000;
const HDR: u32 = 0x30_3000;
const STATUS: u32 = 0x30_3100;
const DATA: u32 = 0x30_4000;

/// Where the guest writes: 1 MiB in, a cluster the fresh image has not allocated.
const OFFSET: u64 = 1 << 20;
const PATTERN: u8 = 0xa5;

/// One 16-byte virtq descriptor.
fn desc(i: u32, addr: u32, len: u32, flags: u16, next: u16) -> Vec<u8> {
    let at = DESC + 16 * i;
    [
        asm::store(at, addr),
        asm::store(at + 4, 0),
        asm::store(at + 8, len),
        asm::store(at + 12, u32::from(flags) | (u32::from(next) << 16)),
    ]
    .concat()
}

/// Brings up the virtio-blk device (queue 0 of 8 entries), writes PATTERN to the sector at
/// OFFSET with one VIRTIO_BLK_T_OUT request (no FLUSH follows), waits for the used ring and
/// prints `s` and the request's status digit (`s0` is success).
fn write_sector() -> Vec<u8> {
    let reg = |off: u32, v: u32| asm::store(BASE + off, v);
    let sector = (OFFSET / 512) as u32;
    let mut fill = vec![0xbf]; // mov edi, DATA
    fill.extend(DATA.to_le_bytes());
    fill.push(0xb9); // mov ecx, 512
    fill.extend(512u32.to_le_bytes());
    fill.extend([0xb0, PATTERN, 0xfc, 0xf3, 0xaa]); // mov al, PATTERN; cld; rep stosb
    let mut wait_used = vec![0x0f, 0xb7, 0x05]; // movzx eax, word [USED + 2]
    wait_used.extend((USED + 2).to_le_bytes());
    wait_used.extend([0x83, 0xf8, 0x01, 0x75, 0xf4]); // cmp eax, 1; jne back to the movzx
    let mut status = asm::print("s");
    status.push(0xa0); // mov al, [STATUS]
    status.extend(STATUS.to_le_bytes());
    status.extend([0x04, b'0']); // add al, '0'
    status.extend(asm::OUT_DX_AL);
    [
        reg(0x70, 1),             // Status: ACKNOWLEDGE
        reg(0x70, 1 | 2),         // + DRIVER
        reg(0x24, 1),             // DriverFeaturesSel: bits 32..63
        reg(0x20, 1),             // VIRTIO_F_VERSION_1 (bit 32); nothing else, so no EVENT_IDX
        reg(0x70, 1 | 2 | 8),     // + FEATURES_OK
        reg(0x30, 0),             // QueueSel 0
        reg(0x38, 8),             // QueueNum
        reg(0x80, DESC),          // QueueDescLow
        reg(0x90, AVAIL),         // QueueDriverLow
        reg(0xa0, USED),          // QueueDeviceLow
        reg(0x44, 1),             // QueueReady
        reg(0x70, 1 | 2 | 8 | 4), // + DRIVER_OK: the worker starts
        fill,
        asm::store(HDR, 1), // VIRTIO_BLK_T_OUT
        asm::store(HDR + 4, 0),
        asm::store(HDR + 8, sector),
        asm::store(HDR + 12, 0),
        asm::store(STATUS, 0xff),
        desc(0, HDR, 16, 1, 1),     // header, NEXT
        desc(1, DATA, 512, 1, 2),   // data (device reads it), NEXT
        desc(2, STATUS, 1, 2, 0),   // status, WRITE
        asm::store(AVAIL + 4, 0),   // ring[0] = descriptor 0
        asm::store(AVAIL, 1 << 16), // flags 0, idx 1
        reg(0x50, 0),               // QueueNotify 0: the ioeventfd wakes the worker
        wait_used,
        status,
        asm::print("\n"),
    ]
    .concat()
}

fn tool(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{cmd:?} failed: {text}");
    text
}

fn fresh_qcow2(dir: &Path) -> PathBuf {
    let img = dir.join("disk.qcow2");
    tool(
        Command::new("qemu-img")
            .args(["create", "-q", "-f", "qcow2"])
            .arg(&img)
            .arg("16M"),
    );
    img
}

/// The pattern is at OFFSET in the image as qemu reads it, and the image is consistent.
fn assert_written(img: &Path) {
    let read = tool(
        Command::new("qemu-io")
            .args(["-r", "-f", "qcow2", "-c"])
            .arg(format!("read -P {PATTERN:#x} {OFFSET} 512"))
            .arg(img),
    );
    assert!(
        read.contains("read 512/512") && !read.contains("Pattern verification failed"),
        "the guest's write is not in the image: {read}"
    );
    tool(
        Command::new("qemu-img")
            .args(["check", "-f", "qcow2"])
            .arg(img),
    );
}

/// Starts the guest `then` follows the write with, on a fresh qcow2 disk.
fn start(tag: &str, then: Vec<u8>) -> (Vmm, PathBuf) {
    let dir = tiny::tempdir(tag);
    let img = fresh_qcow2(&dir);
    let disk = img.clone();
    let vm = Vmm::start(tag, &[write_sector(), then].concat(), move |cfg| {
        cfg["disks"] = json!([{"path": disk, "format": "qcow2"}]);
    });
    // The image lives in its own directory; the Vmm removes its directory on drop.
    (vm, img)
}

fn check(vm: &mut Vmm, img: &Path, code: i32, ended: &str) {
    let (st, err) = vm.wait(T);
    assert_eq!(st.code(), Some(code), "stderr: {err}");
    assert!(err.contains(ended), "stderr: {err}");
    assert_eq!(
        String::from_utf8_lossy(&vm.serial()),
        "s0\n",
        "the guest's request did not succeed"
    );
    assert!(!err.contains("flush"), "stderr: {err}");
    assert_written(img);
    let _ = std::fs::remove_dir_all(img.parent().unwrap_or(img));
}

#[test]
fn a_write_without_flush_survives_poweroff() {
    let (mut vm, img) = start("flush-poweroff", asm::poweroff());
    check(&mut vm, &img, 0, "VM ended: poweroff");
}

#[test]
fn a_write_without_flush_survives_quit() {
    let (mut vm, img) = start("flush-quit", asm::spin());
    assert!(vm.wait_serial(b"s0\n", T), "{:?}", vm.serial());
    let mut c = vm.connect();
    let r = c.execute("quit", json!({}));
    assert_eq!(r["return"], json!({}), "{r}");
    check(&mut vm, &img, 0, "VM ended: quit");
}

#[test]
fn a_write_without_flush_survives_reboot() {
    // The driver starts a fresh process on the same image: it must see the write.
    let reset = [
        asm::mov_dx(0xcf9),
        asm::mov_al(6),
        asm::OUT_DX_AL.to_vec(),
        asm::hang(),
    ]
    .concat();
    let (mut vm, img) = start("flush-reboot", reset);
    check(&mut vm, &img, 2, "VM ended: reboot");
}

#[test]
fn a_write_without_flush_survives_a_guest_crash() {
    // ud2 with an empty IDT: a triple fault.
    let (mut vm, img) = start("flush-crash", vec![0x0f, 0x0b]);
    check(&mut vm, &img, 3, "guest crashed");
}
