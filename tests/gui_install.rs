//! "Operating System Image" in the real `vireo` under Xvfb with the real driver in an isolated
//! XDG home and Debian's osinfo-db: an ISO whose volume ID is Debian 11's netinst (built here
//! with xorriso) is detected as Debian 11, the one page shows the system and its recommended
//! memory and disk, and Create defines a machine with a new disk, the CD-ROM first in the boot
//! order, the install mark and libosinfo's metadata; an ISO the database does not know gets the
//! generic machine. A stand-in for vireo-vmm ends each start at once (SeaBIOS does not run on
//! every KVM this suite runs on; the rig boots the real thing). Screenshots in English and
//! German: target/test-output/install-*.png.

mod common;
mod vireoctl_support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread::sleep;
use std::time::{Duration, Instant};

use common::{output_dir, Desktop, Image};
use vireoctl_support::{vireoctl, Home};

/// An ISO 9660 image labelled `volume_id`, made by xorriso from a one-file tree.
fn iso(h: &Home, name: &str, volume_id: &str) -> PathBuf {
    let tree = h.root.join(format!("{name}-tree"));
    std::fs::create_dir_all(&tree).unwrap();
    std::fs::write(tree.join("README.txt"), "not really an installer\n").unwrap();
    let out = h.root.join(name);
    let made = Command::new("xorriso")
        .args(["-as", "mkisofs", "-quiet", "-V", volume_id, "-o"])
        .arg(&out)
        .arg(&tree)
        .status()
        .expect("xorriso must be installed");
    assert!(made.success());
    out
}

/// A vireo-vmm that ends at once, as a guest that powered off.
fn quick_vmm(h: &Home) -> PathBuf {
    let vmm = h.file("fake-vmm", b"#!/bin/sh\nexit 0\n");
    assert!(Command::new("chmod")
        .arg("+x")
        .arg(&vmm)
        .status()
        .unwrap()
        .success());
    vmm
}

fn shot(desktop: &Desktop, window: &str, name: &str) -> PathBuf {
    let path = output_dir().join(format!("install-{name}.png"));
    Image::save_window(&desktop.display, window, &path);
    path
}

/// Waits until the wizard has filled its form from what it detected on `file` (its trace
/// line), and the frame after.
fn wait_detected(app: &common::App, file: &str) -> String {
    let log = app.wait_for_log(&format!("vireo-trace: detected {file} os="));
    sleep(Duration::from_millis(500));
    log
}

/// The machine's definition, once it exists.
fn wait_defined(h: &Home, name: &str) -> String {
    let start = Instant::now();
    loop {
        let (code, out, _) = h.run(&["dumpxml", "--inactive", name]);
        if code == 0 {
            return out;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{name} was never defined"
        );
        sleep(Duration::from_millis(200));
    }
}

fn qemu_img_virtual_size(path: &Path) -> u64 {
    let out = Command::new("qemu-img")
        .args(["info", "--output=json"])
        .arg(path)
        .output()
        .expect("qemu-img (qemu-utils) must be installed");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["virtual-size"].as_u64().unwrap()
}

#[test]
fn an_iso_osinfo_knows_becomes_an_installing_machine_in_one_page() {
    let h = Home::new("guio");
    let vmm = quick_vmm(&h);
    let debian = iso(
        &h,
        "debian-11.5.0-amd64-netinst.iso",
        "Debian 11.5.0 amd64 n",
    );
    let desktop = Desktop::start("install-known");
    let app =
        desktop.launch_with_driver(&h.root, &vireoctl(), &vmm, &[("VIREO_TRACE_WIZARD", "1")]);
    desktop.wait_for_window("Vireo");
    app.activate_win_with("new-machine-from-image", &format!("'{}'", debian.display()));
    let wizard = desktop.wait_for_window("New Machine");
    let log = wait_detected(&app, "debian-11.5.0-amd64-netinst.iso");
    assert!(
        log.contains("detected debian-11.5.0-amd64-netinst.iso os=http://debian.org/debian/11"),
        "{log}"
    );
    shot(&desktop, &wizard, "detected");
    desktop.press(&wizard, "alt+c");
    desktop.wait_for_no_window("New Machine");
    let xml = wait_defined(&h, "debian11");
    assert!(
        xml.contains("<libosinfo:os id='http://debian.org/debian/11'/>"),
        "{xml}"
    );
    assert!(
        xml.contains("<vireo:install-cdrom>sda</vireo:install-cdrom>"),
        "{xml}"
    );
    // Debian 11's recommendation in osinfo-db: 1 GiB of memory, 20 GiB of disk.
    assert!(xml.contains("<memory unit='KiB'>1048576</memory>"), "{xml}");
    let boot: Vec<&str> = xml
        .lines()
        .filter(|l| l.contains("<boot dev="))
        .map(str::trim)
        .collect();
    assert_eq!(boot, ["<boot dev='cdrom'/>", "<boot dev='hd'/>"], "{xml}");
    assert!(
        xml.contains(&format!("<source file='{}'/>", debian.display())),
        "{xml}"
    );
    let disk = h.root.join("d/vireo/images/debian11.qcow2");
    assert!(
        xml.contains(&format!("<source file='{}'/>", disk.display())),
        "{xml}"
    );
    assert_eq!(qemu_img_virtual_size(&disk), 20 << 30);
    // Create started the machine (the stand-in ended at once) and opened its console.
    desktop.wait_for_window("debian11 – Console");
    // The card says the machine is still installing; the details name the system.
    app.wait_view("debian11 off", |s| s.contains("'debian11': 'shut off'"));
    sleep(Duration::from_millis(500));
    let main = desktop.wait_for_window("Vireo");
    shot(&desktop, &main, "card");
    app.activate_win_with("machine-properties", "'debian11'");
    let details = desktop.wait_for_window("Properties of “debian11”");
    sleep(Duration::from_millis(1500));
    shot(&desktop, &details, "details");
    assert!(app.quit().success());
}

#[test]
fn an_unknown_iso_gets_the_generic_machine_and_german_screens_read_right() {
    let h = Home::new("giou");
    let vmm = quick_vmm(&h);
    let unknown = iso(&h, "homebrew.iso", "HOMEBREW_OS_1");
    let desktop = Desktop::start("install-unknown");
    let app = desktop.launch_with_driver(
        &h.root,
        &vireoctl(),
        &vmm,
        &[("LANGUAGE", "de"), ("VIREO_TRACE_WIZARD", "1")],
    );
    desktop.wait_for_window("Vireo");
    app.activate_win("new-machine");
    let wizard = desktop.wait_for_window("Neue Maschine");
    sleep(Duration::from_millis(700));
    shot(&desktop, &wizard, "de-sources");
    desktop.press(&wizard, "Escape");
    desktop.wait_for_no_window("Neue Maschine");
    app.activate_win_with(
        "new-machine-from-image",
        &format!("'{}'", unknown.display()),
    );
    let wizard = desktop.wait_for_window("Neue Maschine");
    let log = wait_detected(&app, "homebrew.iso");
    assert!(log.contains("detected homebrew.iso os=generic"), "{log}");
    shot(&desktop, &wizard, "de-unknown");
    // "Erstellen": the German Create.
    desktop.press(&wizard, "alt+e");
    desktop.wait_for_no_window("Neue Maschine");
    let xml = wait_defined(&h, "machine");
    assert!(
        !xml.contains("libosinfo"),
        "no system for an unknown disc: {xml}"
    );
    assert!(
        xml.contains("<vireo:install-cdrom>sda</vireo:install-cdrom>"),
        "{xml}"
    );
    let disk = h.root.join("d/vireo/images/machine.qcow2");
    assert_eq!(qemu_img_virtual_size(&disk), 20 << 30, "the generic disk");
    // The card and the details, in German.
    desktop.wait_for_window("machine – Konsole");
    app.wait_view("machine off", |s| s.contains("'machine': 'shut off'"));
    sleep(Duration::from_millis(500));
    let main = desktop.wait_for_window("Vireo");
    shot(&desktop, &main, "de-card");
    app.activate_win_with("machine-properties", "'machine'");
    let details = desktop.wait_for_window("Eigenschaften von „machine“");
    sleep(Duration::from_millis(1500));
    shot(&desktop, &details, "de-details");
    assert!(app.quit().success());
}

/// Moves the pointer to (x, y) in small steps, as a hand drags (GTK starts a drag only after
/// the pointer has moved past a threshold with the button down).
fn drag_to(desktop: &Desktop, from: (u32, u32), to: (u32, u32)) {
    let steps = 20;
    for i in 1..=steps {
        let x = from.0 as i64 + (to.0 as i64 - from.0 as i64) * i / steps;
        let y = from.1 as i64 + (to.1 as i64 - from.1 as i64) * i / steps;
        let out = common::tool(
            "xdotool",
            &["mousemove", &x.to_string(), &y.to_string()],
            Some(&desktop.display),
        );
        assert!(out.status.success(), "xdotool mousemove");
        sleep(Duration::from_millis(50));
    }
}

/// A file dragged from another program (the stand-in for a file manager: a GTK window that
/// offers the ISO as a file list) and dropped on the main window opens the wizard on it, with
/// the system detected.
#[test]
fn dropping_an_iso_on_the_window_opens_the_wizard_on_it() {
    let h = Home::new("giod");
    let vmm = quick_vmm(&h);
    let debian = iso(
        &h,
        "debian-11.5.0-amd64-netinst.iso",
        "Debian 11.5.0 amd64 n",
    );
    let desktop = Desktop::start("install-drop");
    let app =
        desktop.launch_with_driver(&h.root, &vireoctl(), &vmm, &[("VIREO_TRACE_WIZARD", "1")]);
    let main = desktop.wait_for_window("Vireo");
    let source = vireoctl().with_file_name("vireo-drag-source");
    assert!(
        source.is_file(),
        "{} is missing: build it first (cargo build --workspace --bins)",
        source.display()
    );
    let mut dragger = Command::new(&source)
        .arg(&debian)
        .env("DISPLAY", &desktop.display)
        .env("GSETTINGS_BACKEND", "memory")
        .spawn()
        .expect("the drag source starts");
    let drag = desktop.wait_for_window("Drag Source");
    // Side by side: the source to the right of Vireo's window.
    let (_, _, main_w, main_h) = desktop.window_geometry(&main);
    let moved = common::tool(
        "xdotool",
        &[
            "windowmove",
            "--sync",
            &drag,
            &(main_w + 40).to_string(),
            "40",
        ],
        Some(&desktop.display),
    );
    assert!(moved.status.success(), "xdotool windowmove");
    sleep(Duration::from_millis(500));
    let (dx, dy, dw, dh) = desktop.window_geometry(&drag);
    let (mx, my, _, _) = desktop.window_geometry(&main);
    let from = (dx + dw / 2, dy + dh / 2);
    let to = (mx + main_w / 2, my + main_h / 2);
    let out = common::tool(
        "xdotool",
        &[
            "mousemove",
            "--sync",
            &from.0.to_string(),
            &from.1.to_string(),
        ],
        Some(&desktop.display),
    );
    assert!(out.status.success());
    let out = common::tool("xdotool", &["mousedown", "1"], Some(&desktop.display));
    assert!(out.status.success());
    drag_to(&desktop, from, to);
    sleep(Duration::from_millis(300));
    let out = common::tool("xdotool", &["mouseup", "1"], Some(&desktop.display));
    assert!(out.status.success());
    let wizard = desktop.wait_for_window("New Machine");
    let log = wait_detected(&app, "debian-11.5.0-amd64-netinst.iso");
    assert!(log.contains("os=http://debian.org/debian/11"), "{log}");
    shot(&desktop, &wizard, "dropped");
    let _ = dragger.kill();
    let _ = dragger.wait();
    assert!(app.quit().success());
}
