//! The machines view of the real `vireo` window under Xvfb, with the real driver (vireoctl as
//! supervisor, vireo-vmm) in an isolated XDG home. The guest is a tiny hand-written PVH program
//! on the local /dev/kvm that prints a line and echoes the serial port (no Linux boot here).
//! Screenshots: target/test-output/machines-*.png.

mod common;
mod vireoctl_support;

use std::process::Command;
use std::thread::sleep;
use std::time::{Duration, Instant};

use common::{output_dir, Desktop, Image};
use vireoctl_support::{domain_xml, guest, vireoctl, Home};

/// Waits until the window's `{name: state}` map satisfies `ok`.
fn wait_view(app: &common::App, what: &str, ok: impl Fn(&str) -> bool) -> String {
    let start = Instant::now();
    loop {
        let states = app.win_action_state("machine-states");
        if ok(&states) {
            return states;
        }
        if start.elapsed() > Duration::from_secs(20) {
            panic!(
                "the view never showed {what}; it shows {states}\n{}",
                app.log_text()
            );
        }
        sleep(Duration::from_millis(100));
    }
}

fn define_tiny(h: &Home, name: &str) {
    vireoctl_support::vmm();
    let mut code = guest::print("hello from tiny\n");
    code.extend(guest::echo_loop());
    let kernel = h.file(&format!("{name}.elf"), &guest::pvh_elf(&code));
    let serial = "    <serial type='pty'>\n      <target port='0'/>\n    </serial>\n";
    let xml = domain_xml(name, &kernel, serial, ("destroy", "restart", "destroy"));
    let file = h.file(&format!("{name}.xml"), xml.as_bytes());
    h.ok(&["define", file.to_str().unwrap()]);
}

fn launch(desktop: &Desktop, h: &Home) -> common::App {
    let root = h.root.display().to_string();
    let vireoctl = vireoctl().display().to_string();
    let vmm = vireoctl_support::vmm().display().to_string();
    desktop.launch(&[
        ("XDG_CONFIG_HOME", &format!("{root}/c")),
        ("XDG_RUNTIME_DIR", &format!("{root}/r")),
        ("XDG_DATA_HOME", &format!("{root}/d")),
        ("XDG_CACHE_HOME", &format!("{root}/k")),
        ("VIREO_SUPERVISOR", &vireoctl),
        ("VIREO_VMM", &vmm),
    ])
}

fn state(h: &Home, name: &str) -> String {
    h.ok(&["domstate", name]).trim().to_owned()
}

#[test]
fn machines_are_shown_driven_and_deleted_with_undo() {
    let h = Home::new("guim");
    define_tiny(&h, "alpha");
    define_tiny(&h, "beta");
    let desktop = Desktop::start("machines");
    let app = launch(&desktop, &h);
    let window = desktop.wait_for_window("Vireo");
    wait_view(&app, "alpha and beta, off", |s| {
        s.contains("'alpha': 'shut off'") && s.contains("'beta': 'shut off'")
    });
    let grid = desktop.screenshot("machines-grid");
    assert!(Image::deviation(&grid) > 0.05);

    // Start through the window; the card follows the driver's events.
    app.activate_win_with("machine-start", "'alpha'");
    wait_view(&app, "alpha running", |s| s.contains("'alpha': 'running'"));
    assert_eq!(state(&h, "alpha"), "running");
    desktop.screenshot("machines-running");

    // A machine started elsewhere (vireoctl) shows up as running too: events, not reloads.
    h.ok(&["start", "beta"]);
    wait_view(&app, "beta running", |s| s.contains("'beta': 'running'"));

    app.activate_win_with("machine-pause", "'alpha'");
    wait_view(&app, "alpha paused", |s| s.contains("'alpha': 'paused'"));
    assert_eq!(state(&h, "alpha"), "paused");
    desktop.screenshot("machines-paused");
    app.activate_win_with("machine-resume", "'alpha'");
    wait_view(&app, "alpha running again", |s| {
        s.contains("'alpha': 'running'")
    });
    app.activate_win_with("machine-force-off", "'alpha'");
    wait_view(&app, "alpha off", |s| s.contains("'alpha': 'shut off'"));
    assert_eq!(state(&h, "alpha"), "shut off");
    h.ok(&["destroy", "beta"]);
    wait_view(&app, "beta off", |s| s.contains("'beta': 'shut off'"));

    // The driver's refusal reaches the user as a toast with its message.
    app.activate_win_with("machine-resume", "'alpha'");
    sleep(Duration::from_millis(700));
    desktop.screenshot("machines-error-toast");

    // List mode is a setting, kept in GSettings.
    sleep(Duration::from_secs(9)); // let the error toast go
    let before = desktop.screenshot("machines-grid-before-list");
    app.activate_win_with("view-mode", "'list'");
    sleep(Duration::from_millis(700));
    let list = desktop.screenshot("machines-list");
    assert!(
        Image::differing_pixels(&before, &list) > 1000,
        "list mode looks like the grid"
    );
    // The app runs with the driver home's XDG_CONFIG_HOME, so its keyfile lives there.
    sleep(Duration::from_millis(500));
    let keyfile =
        std::fs::read_to_string(h.root.join("c/glib-2.0/settings/keyfile")).unwrap_or_default();
    assert!(keyfile.contains("view-mode='list'"), "{keyfile}");
    app.activate_win_with("view-mode", "'grid'");

    // Search by name.
    app.activate_win("toggle-search");
    desktop.press(&window, "b");
    sleep(Duration::from_millis(500));
    desktop.screenshot("machines-search");
    desktop.press(&window, "Escape");

    // Delete: a question first, then the machine disappears at once but stays defined while
    // the Undo toast shows; Undo brings it back.
    app.activate_win_with("machine-delete", "'beta'");
    let dialog = desktop.wait_for_window("Delete “beta”?");
    desktop.screenshot("machines-delete-dialog");
    desktop.press(&dialog, "alt+d");
    wait_view(&app, "beta hidden", |s| !s.contains("'beta'"));
    desktop.screenshot("machines-delete-toast");
    assert_eq!(
        state(&h, "beta"),
        "shut off",
        "removed before the toast expired"
    );
    app.activate_win_with("machine-undelete", "'beta'");
    wait_view(&app, "beta back", |s| s.contains("'beta': 'shut off'"));
    sleep(Duration::from_secs(10));
    assert_eq!(
        state(&h, "beta"),
        "shut off",
        "undo did not keep the machine"
    );

    // Without Undo the machine is gone once the toast times out.
    app.activate_win_with("machine-delete", "'beta'");
    let dialog = desktop.wait_for_window("Delete “beta”?");
    desktop.press(&dialog, "alt+d");
    wait_view(&app, "beta hidden", |s| !s.contains("'beta'"));
    let start = Instant::now();
    while h.run(&["domstate", "beta"]).0 == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "beta still defined 20 s after Delete"
        );
        sleep(Duration::from_millis(200));
    }
    wait_view(&app, "only alpha", |s| {
        s.contains("'alpha'") && !s.contains("'beta'")
    });
    desktop.screenshot("machines-after-delete");
    eprintln!("screenshots in {}", output_dir().display());
    assert!(app.quit().success());
}

#[test]
fn wizard_imports_xml_and_defines_it() {
    let h = Home::new("guiw");
    vireoctl_support::vmm();
    let mut code = guest::print("hello from tiny\n");
    code.extend(guest::echo_loop());
    let kernel = h.file("w.elf", &guest::pvh_elf(&code));
    // Unknown content (a metadata element of another tool) must survive the import.
    let xml = domain_xml("imported", &kernel, "", ("destroy", "restart", "destroy")).replace(
        "</domain>",
        "  <metadata>\n    <other:note xmlns:other='http://example.org/other'>kept</other:note>\n  </metadata>\n</domain>",
    );
    let file = h.file("imported.xml", xml.as_bytes());
    let desktop = Desktop::start("wizard");
    let app = launch(&desktop, &h);
    desktop.wait_for_window("Vireo");
    app.activate_win("new-machine");
    let wizard = desktop.wait_for_window("New Machine");
    desktop.screenshot("wizard-source");
    desktop.press(&wizard, "Escape");
    desktop.wait_for_no_window("New Machine");

    app.activate_win_with("import-machine", &format!("'{}'", file.display()));
    let wizard = desktop.wait_for_window("New Machine");
    desktop.screenshot("wizard-import");
    desktop.press(&wizard, "Return");
    sleep(Duration::from_millis(500));
    desktop.screenshot("wizard-review");
    desktop.press(&wizard, "Return");
    desktop.wait_for_no_window("New Machine");
    wait_view(&app, "the imported machine", |s| {
        s.contains("'imported': 'shut off'")
    });
    desktop.screenshot("wizard-created");
    let stored = h.ok(&["dumpxml", "--inactive", "imported"]);
    assert!(
        stored.contains("other:note"),
        "unknown content lost:\n{stored}"
    );
    app.activate_win_with("machine-properties", "'imported'");
    sleep(Duration::from_millis(700));
    desktop.screenshot("machine-properties");
    assert!(app.quit().success());
}

/// Paints the top rows of a 320x200 framebuffer orange, says "F" on COM1, then copies every
/// i8042 scancode to COM1 (so keys typed in the console show up in the serial log).
fn painter() -> Vec<u8> {
    let mut g = vec![0xbf, 0x00, 0x00, 0x00, 0xd0]; // mov edi, 0xd0000000 (framebuffer)
    g.push(0xb9);
    g.extend((320u32 * 100).to_le_bytes()); // mov ecx, 320*100
    g.push(0xb8);
    g.extend(0x00ff_8000u32.to_le_bytes()); // mov eax, orange
    g.extend([0xf3, 0xab]); // rep stosd
    g.extend(guest::print("F"));
    // wait: in al, 0x64; test al, 1; jz wait; in al, 0x60; mov dx, 0x3f8; out dx, al; jmp wait
    g.extend([0xe4, 0x64, 0xa8, 0x01, 0x74, 0xfa, 0xe4, 0x60]);
    g.extend([0x66, 0xba, 0xf8, 0x03, 0xee, 0xeb, 0xf1]);
    g
}

fn region_mean(png: &std::path::Path, geometry: &str) -> (f64, f64, f64) {
    let out = Command::new("convert")
        .arg(png)
        .args(["-crop", geometry, "+repage", "-format"])
        .arg("%[fx:mean.r] %[fx:mean.g] %[fx:mean.b]")
        .arg("info:")
        .output()
        .expect("ImageMagick convert runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let v: Vec<f64> = text
        .split_whitespace()
        .filter_map(|s| s.parse().ok())
        .collect();
    assert_eq!(v.len(), 3, "convert said: {text}");
    (v[0], v[1], v[2])
}

fn wait_orange(desktop: &Desktop, window: &str, name: &str) {
    let shot = output_dir().join(format!("{name}.png"));
    let start = Instant::now();
    loop {
        Image::save_window(&desktop.display, window, &shot);
        // 800x600 window, 320x200 guest scaled by 2.5: the top half of the guest is orange.
        let (r, g, b) = region_mean(&shot, "600x150+100+90");
        if r > 0.9 && (g - 0.5).abs() < 0.08 && b < 0.1 {
            return;
        }
        if start.elapsed() > Duration::from_secs(30) {
            panic!(
                "{} shows no orange guest paint ({r}, {g}, {b})",
                shot.display()
            );
        }
        sleep(Duration::from_millis(500));
    }
}

#[test]
fn machine_console_shows_the_guest_and_follows_a_restart() {
    let h = Home::new("guic");
    vireoctl_support::vmm();
    let kernel = h.file("painter.elf", &guest::pvh_elf(&painter()));
    let devices = "    <serial type='pty'>\n      <target port='0'/>\n    </serial>\n    <graphics type='vnc'>\n      <listen type='none'/>\n    </graphics>\n    <video>\n      <model type='vga'>\n        <resolution x='320' y='200'/>\n      </model>\n    </video>\n";
    let xml = domain_xml(
        "painter",
        &kernel,
        devices,
        ("destroy", "restart", "destroy"),
    );
    let file = h.file("painter.xml", xml.as_bytes());
    h.ok(&["define", file.to_str().unwrap()]);
    let desktop = Desktop::start("machine-console");
    let app = launch(&desktop, &h);
    desktop.wait_for_window("Vireo");
    app.activate_win_with("machine-start", "'painter'");
    wait_view(&app, "painter running", |s| {
        s.contains("'painter': 'running'")
    });
    app.activate_win_with("machine-console", "'painter'");
    let console = desktop.wait_for_window("painter – Console");
    wait_orange(&desktop, &console, "machine-console");

    // A key typed into the console reaches the guest's keyboard controller: 'a' is set-1
    // scancode 0x1e, which the guest copies to its serial port.
    desktop.press(&console, "a");
    let log = h.root.join("r/vireo/painter/serial.log");
    let start = Instant::now();
    loop {
        let bytes = std::fs::read(&log).unwrap_or_default();
        if bytes.contains(&0x1e) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "scancode 0x1e never reached the guest; serial: {bytes:?}"
        );
        sleep(Duration::from_millis(200));
    }

    // Off and on again: the console waits, then shows the new run.
    app.activate_win_with("machine-force-off", "'painter'");
    wait_view(&app, "painter off", |s| s.contains("'painter': 'shut off'"));
    sleep(Duration::from_millis(800));
    desktop.screenshot("machine-console-waiting");
    app.activate_win_with("machine-start", "'painter'");
    wait_view(&app, "painter running again", |s| {
        s.contains("'painter': 'running'")
    });
    wait_orange(&desktop, &console, "machine-console-reconnected");

    // The card's thumbnail comes from the driver's screendump every 5 s.
    // Out of the way (no window manager here), so the main window's card shows.
    let moved = Command::new("xdotool")
        .args(["windowmove", &console, "520", "180"])
        .env("DISPLAY", &desktop.display)
        .status()
        .unwrap();
    assert!(moved.success());
    sleep(Duration::from_secs(6));
    desktop.screenshot("machines-thumbnail");
    app.activate_win_with("machine-force-off", "'painter'");
    wait_view(&app, "painter off", |s| s.contains("'painter': 'shut off'"));
    assert!(app.quit().success());
}

#[test]
fn wizard_goes_from_a_kernel_file_to_a_running_machine() {
    let h = Home::new("guik");
    vireoctl_support::vmm();
    let kernel = h.file("painter.elf", &guest::pvh_elf(&painter()));
    let desktop = Desktop::start("wizard-kernel");
    let app = launch(&desktop, &h);
    desktop.wait_for_window("Vireo");

    // A kernel that does not exist is refused beside its field; the wizard stays open.
    app.activate_win_with("new-machine-from-kernel", "'/nonexistent/vmlinuz'");
    let wizard = desktop.wait_for_window("New Machine");
    desktop.press(&wizard, "Return");
    sleep(Duration::from_millis(500));
    desktop.screenshot("wizard-field-error");
    assert_eq!(desktop.windows_named("New Machine").len(), 1);
    desktop.press(&wizard, "Escape");
    desktop.wait_for_no_window("New Machine");

    app.activate_win_with(
        "new-machine-from-kernel",
        &format!("'{}'", kernel.display()),
    );
    let wizard = desktop.wait_for_window("New Machine");
    desktop.screenshot("wizard-details");
    desktop.press(&wizard, "Return");
    sleep(Duration::from_millis(500));
    desktop.screenshot("wizard-kernel-review");
    desktop.press(&wizard, "Return");
    desktop.wait_for_no_window("New Machine");
    wait_view(&app, "the new machine running", |s| {
        s.contains("'machine': 'running'")
    });
    assert_eq!(state(&h, "machine"), "running");
    let console = desktop.wait_for_window("machine – Console");
    sleep(Duration::from_secs(2));
    Image::save_window(
        &desktop.display,
        &console,
        &output_dir().join("wizard-kernel-console.png"),
    );
    let xml = h.ok(&["dumpxml", "machine"]);
    assert!(xml.contains(&kernel.display().to_string()), "{xml}");
    // The new disk (the preferences' default size) was made with qemu-img before defining.
    let disk = h.root.join("d/vireo/images/machine.qcow2");
    assert!(xml.contains(&disk.display().to_string()), "{xml}");
    let info = Command::new("qemu-img")
        .args(["info", "-U"]) // the running machine holds the image's lock
        .arg(&disk)
        .output()
        .unwrap();
    let info = String::from_utf8_lossy(&info.stdout);
    assert!(
        info.contains("file format: qcow2") && info.contains("virtual size: 20 GiB"),
        "{info}"
    );
    app.activate_win_with("machine-force-off", "'machine'");
    wait_view(&app, "machine off", |s| s.contains("'machine': 'shut off'"));
    assert!(app.quit().success());
}

#[test]
fn serial_console_shows_output_and_types_into_the_guest() {
    let h = Home::new("guis");
    define_tiny(&h, "echo");
    let desktop = Desktop::start("serial-console");
    let app = launch(&desktop, &h);
    desktop.wait_for_window("Vireo");
    app.activate_win_with("machine-start", "'echo'");
    wait_view(&app, "echo running", |s| s.contains("'echo': 'running'"));
    app.activate_win_with("machine-serial", "'echo'");
    let window = desktop.wait_for_window("echo – Serial Console");
    sleep(Duration::from_millis(500));
    let typed = Command::new("xdotool")
        .args(["type", "--delay", "30", "ping-42"])
        .env("DISPLAY", &desktop.display)
        .status()
        .unwrap();
    assert!(typed.success());
    // The guest echoes what it receives; its output is also in the serial log.
    let log = h.root.join("r/vireo/echo/serial.log");
    let start = Instant::now();
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("ping-42") {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "the guest never echoed the typed text; serial: {text:?}"
        );
        sleep(Duration::from_millis(200));
    }
    sleep(Duration::from_millis(300));
    Image::save_window(
        &desktop.display,
        &window,
        &output_dir().join("serial-console.png"),
    );
    app.activate_win_with("machine-force-off", "'echo'");
    wait_view(&app, "echo off", |s| s.contains("'echo': 'shut off'"));
    assert!(app.quit().success());
}
