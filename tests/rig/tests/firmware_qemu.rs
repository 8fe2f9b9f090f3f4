//! The firmware fixtures and the screen reader against a reference machine: QEMU `-M pc` with
//! Debian's SeaBIOS and a ramfb display (TCG where the host has no hardware KVM; on the host,
//! not in the nested rig, since QEMU runs firmware under TCG as well as anywhere).
//!
//! - The boot ISO, in a CD-ROM drive on virtio-scsi (as `vireoctl create --cdrom` attaches it):
//!   GRUB's menu is read off QEMU's `screendump` (both entries, the first highlighted), a Down
//!   key moves the highlight (read again), Return boots the second entry, whose command line
//!   the guest prints, and the guest finds and reads the ISO it came from on /dev/sr0.
//! - The El Torito-only ISO in the same drive, behind an empty disk first in the boot order:
//!   SeaBIOS tries the disk, falls through to the CD (its debug console says both) and GRUB
//!   prints the line it read off the disc (about 5 s under TCG).
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

/// QEMU arguments for a virtio-scsi controller with `iso` in its CD-ROM drive, at `bootindex`
/// (after the machine's disks, which take the indexes from 0).
fn scsi_cdrom(iso: &Path, bootindex: usize) -> Vec<String> {
    vec![
        "-device".into(),
        "virtio-scsi-pci,id=scsi0".into(),
        "-drive".into(),
        format!(
            "file={},if=none,id=cd,format=raw,readonly=on,media=cdrom",
            iso.display()
        ),
        "-device".into(),
        format!("scsi-cd,drive=cd,bus=scsi0.0,bootindex={bootindex}"),
    ]
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
    let mut vm = QemuPc::start(&dir, &[], 512, false, &scsi_cdrom(&iso.path, 0)).unwrap();
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
            .any(|l| l.starts_with("VIREO-ISO-READ dev=/dev/sr0") && l.contains(&want)),
        "the guest did not read its ISO on /dev/sr0:\n{serial}"
    );
    eprintln!(
        "QEMU -M pc (TCG): GRUB on serial {grub:.1?}, menu read off the screen {menu_seen:.1?}, \
         second entry's init {init:.1?} (after the keys)\n{}",
        menu.text()
    );
    drop(vm);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn the_el_torito_iso_boots_from_the_cd_rom_drive_after_an_empty_disk() {
    let media = fixtures::cd_media().unwrap_or_else(|e| panic!("CD media: {e}"));
    let dir = scratch("eltorito");
    let empty = scratch("eltorito-empty.raw");
    std::fs::write(&empty, vec![0u8; 1 << 20]).unwrap();
    let disk = Disk {
        path: empty.clone(),
        format: "raw",
        readonly: true,
    };
    let mut extra = scsi_cdrom(&media.eltorito.path, 1);
    // SeaBIOS's debug console, where it says what it boots from.
    let firmware_log = dir.join("firmware.log");
    extra.extend([
        "-debugcon".into(),
        format!("file:{}", firmware_log.display()),
        "-global".into(),
        "isa-debugcon.iobase=0x402".into(),
    ]);
    let mut vm = QemuPc::start(&dir, &[disk], 256, false, &extra).unwrap();
    let read = vm
        .wait_serial(&media.eltorito.marker, Duration::from_secs(120))
        .unwrap_or_else(|e| panic!("the El Torito ISO did not boot: {e}"));
    let serial = vm.serial_text();
    assert!(serial.contains(fixtures::ELTORITO_GRUB), "{serial}");
    drop(vm);
    let log = String::from_utf8_lossy(&std::fs::read(&firmware_log).unwrap()).into_owned();
    let at = |s: &str| {
        log.find(s)
            .unwrap_or_else(|| panic!("{s:?} is not in SeaBIOS's log:\n{log}"))
    };
    assert!(
        at("Booting from Hard Disk") < at("Boot failed: not a bootable disk")
            && at("Boot failed: not a bootable disk") < at("Booting from DVD/CD"),
        "SeaBIOS did not try the disk before the CD:\n{log}"
    );
    eprintln!("QEMU -M pc (TCG): El Torito ISO's GRUB read its disc {read:.1?} after the start");
    let _ = std::fs::remove_dir_all(dir);
    let _ = std::fs::remove_file(empty);
}
