//! The firmware fixtures and the screen reader against a reference machine: QEMU `-M pc` with
//! Debian's SeaBIOS and a ramfb display (TCG where the host has no hardware KVM; on the host,
//! not in the nested rig, since QEMU runs firmware under TCG as well as anywhere).
//!
//! - The boot ISO: GRUB's menu is read off QEMU's `screendump` (both entries, the first
//!   highlighted), a Down key moves the highlight (read again), Return boots the second entry,
//!   whose command line the guest prints, and the guest finds and reads the ISO it came from.
//! - The Debian disk is left to the firmware rig test and the firmware_boot bench (which boot
//!   it under both VMMs): a QEMU boot to multi-user here cost CI another two minutes.
//!
//! These prove the fixtures before any test of vireo-vmm relies on them: a failure here is the
//! fixture's, a failure only in the rig tests is the VMM's.

use std::path::Path;
use std::time::{Duration, Instant};
use vireo_rig::fixtures::{self, MenuTimeout, ISO_MENU_ENTRIES};
use vireo_rig::qemu_pc::{Disk, QemuPc};
use vireo_rig::screen_text::{read_screen, Font, Image, ScreenText};

fn scratch(name: &str) -> std::path::PathBuf {
    vireo_rig::report::log_dir().join(format!("firmware-qemu-{name}"))
}

/// Screendumps until `ok` holds for the text read (or `timeout` passes); returns the last.
fn screen_until(
    vm: &QemuPc,
    dir: &Path,
    font: &Font,
    timeout: Duration,
    ok: impl Fn(&ScreenText) -> bool,
) -> ScreenText {
    let end = Instant::now() + timeout;
    let mut n = 0;
    loop {
        n += 1;
        let shot = dir.join(format!("screen-{n}.ppm"));
        vm.screendump(&shot)
            .unwrap_or_else(|e| panic!("screendump: {e}"));
        let screen = read_screen(&Image::load(&shot).unwrap(), font);
        let _ = std::fs::remove_file(&shot);
        if ok(&screen) || Instant::now() > end {
            return screen;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn grub_menu_is_read_off_the_screen_and_the_second_entry_boots() {
    let t = Instant::now();
    let iso = fixtures::boot_iso(MenuTimeout::WaitForKey).unwrap_or_else(|e| panic!("ISO: {e}"));
    eprintln!("boot ISO: {:?} in {:?}", iso.provenance, t.elapsed());
    let font = Font::debian_seavgabios().unwrap();
    let dir = scratch("iso");
    let disk = Disk {
        path: iso.path.clone(),
        format: "raw",
        readonly: true,
    };
    let mut vm = QemuPc::start(&dir, &[disk], 512, false, &[]).unwrap();
    let grub = vm
        .wait_serial("VIREO-GRUB-MENU", Duration::from_secs(120))
        .unwrap_or_else(|e| panic!("{e}"));
    let [first, second] = ISO_MENU_ENTRIES;
    let menu = screen_until(&vm, &dir, &font, Duration::from_secs(60), |s| {
        s.is_highlighted(first) == Some(true) && s.is_highlighted(second) == Some(false)
    });
    let menu_seen = vm.started.elapsed();
    assert_eq!(
        (menu.is_highlighted(first), menu.is_highlighted(second)),
        (Some(true), Some(false)),
        "the GRUB menu with the first entry highlighted is not on the screen:\n{}",
        menu.text()
    );
    assert!(menu.find("GNU GRUB").is_some(), "{}", menu.text());
    vm.sendkey("down").unwrap();
    let moved = screen_until(&vm, &dir, &font, Duration::from_secs(30), |s| {
        s.is_highlighted(second) == Some(true)
    });
    assert_eq!(
        (moved.is_highlighted(first), moved.is_highlighted(second)),
        (Some(false), Some(true)),
        "Down did not move the highlight:\n{}",
        moved.text()
    );
    vm.sendkey("ret").unwrap();
    let init = vm
        .wait_serial("VIREO-ISO-ENTRY entry=second", Duration::from_secs(120))
        .unwrap_or_else(|e| panic!("the second entry did not boot: {e}"));
    vm.wait_serial("VIREO-ISO-READY", Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("{e}"));
    let serial = vm.serial_text();
    let want = format!("sha256={}", iso.marker_sha256);
    assert!(
        serial
            .lines()
            .any(|l| l.starts_with("VIREO-ISO-READ dev=/dev/vda") && l.contains(&want)),
        "the guest did not read its ISO on /dev/vda:\n{serial}"
    );
    eprintln!(
        "QEMU -M pc (TCG): GRUB on serial {grub:.1?}, menu read off the screen {menu_seen:.1?}, \
         second entry's init {init:.1?} (after the keys)\n{}",
        menu.text()
    );
    drop(vm);
    let _ = std::fs::remove_dir_all(dir);
}
