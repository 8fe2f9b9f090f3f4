//! The machines view of the real `vireo` window under Xvfb, with the real driver (vireoctl as
//! supervisor, vireo-vmm) in an isolated XDG home. The guest is a tiny hand-written PVH program
//! on the local /dev/kvm that prints a line and echoes the serial port (no Linux boot here).
//! Screenshots: target/test-output/machines-*.png.

mod common;
mod painter_guest;
mod vireoctl_support;

use std::process::Command;
use std::thread::sleep;
use std::time::{Duration, Instant};

use common::{output_dir, Desktop, Image};
use painter_guest::{wait_orange, wait_orange_at};
use vireoctl_support::{domain_xml, guest, vireoctl, Home};

/// How long the machines view may take to show a change.
const VIEW_TIMEOUT: Duration = Duration::from_secs(20);

fn define_tiny(h: &Home, name: &str) {
    vireoctl_support::vmm();
    // CR LF, as a serial terminal expects (a bare LF only moves down); a word in bold red
    // (SGR 1;31) and a typo erased with backspace, as shells and init systems write them.
    let mut code = guest::print("hello from tiny\r\n\x1b[1;31mFAILED\x1b[0m tesz\x08t\r\n");
    code.extend(guest::echo_loop());
    let kernel = h.file(&format!("{name}.elf"), &guest::pvh_elf(&code));
    let serial = "    <serial type='pty'>\n      <target port='0'/>\n    </serial>\n";
    let xml = domain_xml(name, &kernel, serial, ("destroy", "restart", "destroy"));
    let file = h.file(&format!("{name}.xml"), xml.as_bytes());
    h.ok(&["define", file.to_str().unwrap()]);
}

fn launch(desktop: &Desktop, h: &Home) -> common::App {
    launch_with(desktop, h, &[])
}

fn launch_with(desktop: &Desktop, h: &Home, extra: &[(&str, &str)]) -> common::App {
    desktop.launch_with_driver(&h.root, &vireoctl(), &vireoctl_support::vmm(), extra)
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
    app.wait_view_within(VIEW_TIMEOUT, "alpha and beta, off", |s| {
        s.contains("'alpha': 'shut off'") && s.contains("'beta': 'shut off'")
    });
    let grid = desktop.screenshot("machines-grid");
    assert!(Image::deviation(&grid) > 0.05);

    // Start through alpha's card menu with real clicks (the menu is built when it opens);
    // the card follows the driver's events.
    desktop.click(218, 230, 1);
    let menu = desktop.screenshot("machines-card-menu");
    assert!(
        Image::differing_pixels(&grid, &menu) > 1000,
        "the card's menu did not open"
    );
    desktop.click(215, 291, 1); // its first item, Start (below the button's tooltip)
    app.wait_view_within(VIEW_TIMEOUT, "alpha running", |s| {
        s.contains("'alpha': 'running'")
    });
    assert_eq!(state(&h, "alpha"), "running");
    desktop.screenshot("machines-running");

    // A machine started elsewhere (vireoctl) shows up as running too: events, not reloads.
    h.ok(&["start", "beta"]);
    app.wait_view_within(VIEW_TIMEOUT, "beta running", |s| {
        s.contains("'beta': 'running'")
    });

    app.activate_win_with("machine-pause", "'alpha'");
    app.wait_view_within(VIEW_TIMEOUT, "alpha paused", |s| {
        s.contains("'alpha': 'paused'")
    });
    assert_eq!(state(&h, "alpha"), "paused");
    desktop.screenshot("machines-paused");
    app.activate_win_with("machine-resume", "'alpha'");
    app.wait_view_within(VIEW_TIMEOUT, "alpha running again", |s| {
        s.contains("'alpha': 'running'")
    });
    app.activate_win_with("machine-force-off", "'alpha'");
    app.wait_view_within(VIEW_TIMEOUT, "alpha off", |s| {
        s.contains("'alpha': 'shut off'")
    });
    assert_eq!(state(&h, "alpha"), "shut off");
    h.ok(&["destroy", "beta"]);
    app.wait_view_within(VIEW_TIMEOUT, "beta off", |s| {
        s.contains("'beta': 'shut off'")
    });

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
    app.wait_view_within(VIEW_TIMEOUT, "beta hidden", |s| !s.contains("'beta'"));
    desktop.screenshot("machines-delete-toast");
    assert_eq!(
        state(&h, "beta"),
        "shut off",
        "removed before the toast expired"
    );
    app.activate_win_with("machine-undelete", "'beta'");
    app.wait_view_within(VIEW_TIMEOUT, "beta back", |s| {
        s.contains("'beta': 'shut off'")
    });
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
    app.wait_view_within(VIEW_TIMEOUT, "beta hidden", |s| !s.contains("'beta'"));
    let start = Instant::now();
    while h.run(&["domstate", "beta"]).0 == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "beta still defined 20 s after Delete"
        );
        sleep(Duration::from_millis(200));
    }
    app.wait_view_within(VIEW_TIMEOUT, "only alpha", |s| {
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
    app.wait_view_within(VIEW_TIMEOUT, "the imported machine", |s| {
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

#[test]
fn machine_console_shows_the_guest_and_follows_a_restart() {
    let h = Home::new("guic");
    vireoctl_support::vmm();
    painter_guest::define(&h);
    let desktop = Desktop::start("machine-console");
    let app = launch(&desktop, &h);
    desktop.wait_for_window("Vireo");
    app.activate_win_with("machine-start", "'painter'");
    app.wait_view_within(VIEW_TIMEOUT, "painter running", |s| {
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
    app.wait_view_within(VIEW_TIMEOUT, "painter off", |s| {
        s.contains("'painter': 'shut off'")
    });
    sleep(Duration::from_millis(800));
    desktop.screenshot("machine-console-waiting");
    app.activate_win_with("machine-start", "'painter'");
    app.wait_view_within(VIEW_TIMEOUT, "painter running again", |s| {
        s.contains("'painter': 'running'")
    });
    wait_orange(&desktop, &console, "machine-console-reconnected");

    // Restart (the driver's reboot: a fresh helper with a new VNC socket). The console must
    // follow again: keys typed into it reach the new guest ('b' is set-1 scancode 0x30; the
    // key is pressed until it arrives, since the old session may still be closing).
    app.activate_win_with("machine-restart", "'painter'");
    let start = Instant::now();
    loop {
        desktop.press(&console, "b");
        let bytes = std::fs::read(&log).unwrap_or_default();
        if bytes.contains(&0x30) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no key reached the restarted guest; serial: {bytes:?}\n{}",
            app.log_text()
        );
        sleep(Duration::from_millis(700));
    }
    wait_orange(&desktop, &console, "machine-console-restarted");

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
    app.wait_view_within(VIEW_TIMEOUT, "painter off", |s| {
        s.contains("'painter': 'shut off'")
    });
    assert!(app.quit().success());
}

#[test]
fn wizard_goes_from_a_kernel_file_to_a_running_machine() {
    let h = Home::new("guik");
    vireoctl_support::vmm();
    let kernel = h.file("painter.elf", &guest::pvh_elf(&painter_guest::code()));
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

    app.new_machine_from_kernel(&kernel);
    let wizard = desktop.wait_for_window("New Machine");
    desktop.screenshot("wizard-details");
    desktop.press(&wizard, "Return");
    sleep(Duration::from_millis(500));
    desktop.screenshot("wizard-kernel-review");
    desktop.press(&wizard, "Return");
    desktop.wait_for_no_window("New Machine");
    app.wait_view_within(VIEW_TIMEOUT, "the new machine running", |s| {
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
    app.wait_view_within(VIEW_TIMEOUT, "machine off", |s| {
        s.contains("'machine': 'shut off'")
    });
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
    app.wait_view_within(VIEW_TIMEOUT, "echo running", |s| {
        s.contains("'echo': 'running'")
    });
    // The serial console is a page of the machine's console window.
    app.activate_win_with("machine-serial", "'echo'");
    let window = desktop.wait_for_window("echo – Console");
    sleep(Duration::from_millis(800));
    let focused = Command::new("xdotool")
        .args(["windowfocus", "--sync", &window])
        .env("DISPLAY", &desktop.display)
        .status()
        .unwrap();
    assert!(focused.success());
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
    let shot = output_dir().join("serial-console.png");
    Image::save_window(&desktop.display, &window, &shot);
    // The second line's first word is drawn red (the terminal's SGR colours): some clearly red
    // pixels in the text area's top left, none in the first line.
    let red = |geometry: &str| -> f64 {
        let out = Command::new("convert")
            .arg(&shot)
            .args(["-crop", geometry, "+repage", "-fx"])
            .arg("(r>0.55&&g<0.3&&b<0.3)?1:0")
            .args(["-format", "%[fx:mean]", "info:"])
            .output()
            .expect("ImageMagick convert runs");
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or(-1.0)
    };
    assert!(
        red("80x16+8+80") > 0.02,
        "no red word in {}",
        shot.display()
    );
    assert!(
        red("120x14+8+60") == 0.0,
        "red in the first line of {}",
        shot.display()
    );

    // Off and on again: the page attaches to the new run's console socket by itself, and
    // typed text reaches the new guest (typed until it arrives: the page retries every 2 s).
    app.activate_win_with("machine-force-off", "'echo'");
    app.wait_view_within(VIEW_TIMEOUT, "echo off", |s| {
        s.contains("'echo': 'shut off'")
    });
    sleep(Duration::from_millis(800));
    Image::save_window(
        &desktop.display,
        &window,
        &output_dir().join("serial-console-waiting.png"),
    );
    app.activate_win_with("machine-start", "'echo'");
    app.wait_view_within(VIEW_TIMEOUT, "echo running again", |s| {
        s.contains("'echo': 'running'")
    });
    let start = Instant::now();
    loop {
        let focused = Command::new("xdotool")
            .args(["windowfocus", "--sync", &window])
            .env("DISPLAY", &desktop.display)
            .status()
            .unwrap();
        assert!(focused.success());
        let typed = Command::new("xdotool")
            .args(["type", "--delay", "30", "again-7"])
            .env("DISPLAY", &desktop.display)
            .status()
            .unwrap();
        assert!(typed.success());
        sleep(Duration::from_millis(500));
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("again-7") {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the serial page did not follow the restart; serial: {text:?}\n{}",
            app.log_text()
        );
        sleep(Duration::from_millis(1000));
    }
    sleep(Duration::from_millis(300));
    Image::save_window(
        &desktop.display,
        &window,
        &output_dir().join("serial-console-restarted.png"),
    );
    app.activate_win_with("machine-force-off", "'echo'");
    app.wait_view_within(VIEW_TIMEOUT, "echo off", |s| {
        s.contains("'echo': 'shut off'")
    });
    assert!(app.quit().success());
}

/// Counts the user's clicks in a test: each one is a real pointer click (XTEST) at a point of
/// a window, followed by a screenshot of the screen it led to.
struct Clicks<'a> {
    desktop: &'a Desktop,
    count: u32,
}

impl Clicks<'_> {
    fn click(&mut self, window: &str, dx: u32, dy: u32, shot: &str) {
        self.desktop.click_in(window, dx, dy);
        self.count += 1;
        self.desktop
            .screenshot(&format!("quick-{}-{shot}", self.count));
    }
}

/// Issue #8's promise: from an empty window to a running machine's console in at most three
/// clicks with the quick machine. Every click is a real pointer click on the widget's place
/// in the window (the "+" at the start of the header bar, then the first row of the wizard's
/// sources); nothing is activated behind the user's back.
///
/// The quick machine boots this computer's kernel (here Debian's stock kernel, fetched into
/// the rig's cache as the rig does, passed as VIREO_QUICK_KERNEL since a container has no
/// /boot). The stock kernel does NOT boot on this machine's paravirtual /dev/kvm (see
/// shared/notes), so the guest's screen stays black: the test checks that the machine is
/// defined and running (its helper started, its VNC socket exists) and that the console window
/// opened and connected (the guest's black screen replaced the light status page). The stock
/// kernel's boot itself is covered by the driver's rig tests.
#[test]
fn quick_machine_console_is_three_clicks_from_an_empty_window() {
    let kernel = vireo_rig::debian::kernel().unwrap_or_else(|e| panic!("Debian kernel: {e}"));
    let h = Home::new("guiq");
    vireoctl_support::vmm();
    let desktop = Desktop::start("quick-clicks");
    let kernel_path = kernel.vmlinuz.display().to_string();
    let app = launch_with(&desktop, &h, &[("VIREO_QUICK_KERNEL", &kernel_path)]);
    let main = desktop.wait_for_window("Vireo");
    app.wait_view_within(VIEW_TIMEOUT, "no machines", |s| {
        s == "{}" || s == "@a{ss} {}"
    });
    desktop.screenshot("quick-0-empty");
    let mut clicks = Clicks {
        desktop: &desktop,
        count: 0,
    };

    // 1: the "+" button, first in the header bar (6 px padding, a 34 px button, 47 px bar).
    clicks.click(&main, 6 + 17, 23, "wizard");
    let wizard = desktop.wait_for_window("New Machine");
    sleep(Duration::from_millis(700)); // the sources page slides in
    desktop.screenshot("quick-1-wizard");

    // 2: "This Computer's Kernel", the second row of the sources, below "Operating System
    // Image" (header 47 px, page margin 24 px, the group's title 36 px, rows 64 px high).
    let (_, _, width, _) = desktop.window_geometry(&wizard);
    clicks.click(&wizard, width / 2, 47 + 24 + 36 + 64 + 30, "creating");

    // The wizard defines and starts the machine, closes and opens its console: no more clicks.
    let console = desktop.wait_for_window("quick – Console");
    assert!(
        clicks.count <= 3,
        "the console took {} clicks",
        clicks.count
    );
    assert_eq!(state(&h, "quick"), "running");
    let xml = h.ok(&["dumpxml", "quick"]);
    assert!(xml.contains(&kernel_path), "not the given kernel:\n{xml}");
    let socket = h.ok(&["vncsocket", "quick"]);
    assert!(
        std::path::Path::new(socket.trim()).exists(),
        "no VNC socket at {socket}"
    );

    // Connected: the status page ("Connecting…", light) gives way to the guest's screen, which
    // stays black here because the stock kernel cannot run on this /dev/kvm.
    let shot = output_dir().join("quick-console.png");
    let start = Instant::now();
    loop {
        Image::save_window(&desktop.display, &console, &shot);
        let (r, g, b) = Image::region_mean(&shot, "600x300+100+150");
        if r + g + b < 0.05 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{} never showed the guest's (black) screen: mean ({r}, {g}, {b})\n{}",
            shot.display(),
            app.log_text()
        );
        sleep(Duration::from_millis(500));
    }
    desktop.screenshot(&format!("quick-{}-console", clicks.count));
    eprintln!(
        "quick machine console after {} clicks; screenshots quick-*.png in {}",
        clicks.count,
        output_dir().display()
    );
    app.activate_win_with("machine-force-off", "'quick'");
    app.wait_view_within(VIEW_TIMEOUT, "quick off", |s| {
        s.contains("'quick': 'shut off'")
    });
    assert!(app.quit().success());
}

/// The wizard's and the console's screens in German (LANGUAGE=de), as screenshots to look at:
/// de-wizard-*.png, de-console-*.png. The German window titles show the translation loaded.
/// The guest is the tiny painter on the local /dev/kvm (orange top half, serial echo).
#[test]
fn german_wizard_and_console_screens() {
    let h = Home::new("guide");
    vireoctl_support::vmm();
    let mut code = guest::print("Hallo vom seriellen Port\r\n");
    code.extend(painter_guest::code());
    let kernel = h.file("painter.elf", &guest::pvh_elf(&code));
    let desktop = Desktop::start("german-screens");
    let app = launch_with(&desktop, &h, &[("LANGUAGE", "de")]);
    desktop.wait_for_window("Vireo");
    app.activate_win("new-machine");
    let wizard = desktop.wait_for_window("Neue Maschine");
    sleep(Duration::from_millis(700));
    Image::save_window(
        &desktop.display,
        &wizard,
        &output_dir().join("de-wizard-source.png"),
    );
    desktop.press(&wizard, "Escape");
    desktop.wait_for_no_window("Neue Maschine");
    app.new_machine_from_kernel(&kernel);
    let wizard = desktop.wait_for_window("Neue Maschine");
    sleep(Duration::from_millis(700));
    Image::save_window(
        &desktop.display,
        &wizard,
        &output_dir().join("de-wizard-details.png"),
    );
    desktop.press(&wizard, "Return");
    sleep(Duration::from_millis(700));
    Image::save_window(
        &desktop.display,
        &wizard,
        &output_dir().join("de-wizard-review.png"),
    );
    desktop.press(&wizard, "Return");
    desktop.wait_for_no_window("Neue Maschine");
    let console = desktop.wait_for_window("machine – Konsole");
    // The wizard's machine has a 1280x800 screen: the painter's 32,000 pixels are its top 25
    // rows, a strip about 15 px high at the top of the picture.
    wait_orange_at(&desktop, &console, "de-console-screen", "600x8+100+80");
    // The scaling menu, opened with a real click on its header button.
    desktop.click(658, 27, 1);
    sleep(Duration::from_millis(500));
    desktop.screenshot("de-console-scaling-menu");
    desktop.press(&console, "Escape");
    // The serial page (the machine's menu opens the console on it).
    app.activate_win_with("machine-serial", "'machine'");
    sleep(Duration::from_secs(2));
    let windows = desktop.windows_named("machine – Konsole");
    assert_eq!(windows.len(), 2, "no second console for the serial page");
    let serial = windows
        .iter()
        .find(|w| **w != console)
        .expect("a console window besides the first");
    Image::save_window(
        &desktop.display,
        serial,
        &output_dir().join("de-console-serial.png"),
    );
    let log =
        std::fs::read_to_string(h.root.join("r/vireo/machine/serial.log")).unwrap_or_default();
    assert!(log.contains("Hallo vom seriellen Port"), "{log:?}");
    app.activate_win_with("machine-force-off", "'machine'");
    app.wait_view_within(VIEW_TIMEOUT, "machine off", |s| {
        s.contains("'machine': 'shut off'")
    });
    assert!(app.quit().success());
}

/// Many machines: the window's first frame already shows them (not "No Virtual Machines"
/// fading to the grid), and the keyboard reaches and opens the last one of a grid that makes
/// cards only for what is on screen.
#[test]
fn many_machines_are_in_the_first_frame_and_the_keyboard_reaches_the_last() {
    const COUNT: usize = 300;
    let h = Home::new("guimany");
    let kernel = h.file("vmlinuz", b"not booted by this test");
    // Through the driver in this process: three hundred vireoctl runs would take a while.
    let conn = vireo_driver::Connection::with_paths(vireo_driver::Paths::under(
        &h.root.join("c"),
        &h.root.join("r"),
        &h.root.join("d"),
        &h.root.join("k"),
    ));
    for i in 0..COUNT {
        let xml = domain_xml(
            &format!("m{i:03}"),
            &kernel,
            "",
            ("destroy", "restart", "destroy"),
        );
        conn.define_xml(&xml).unwrap();
    }
    let desktop = Desktop::start("many");
    let app = launch_with(&desktop, &h, &[("VIREO_TRACE_STARTUP", "1")]);
    let window = desktop.wait_for_window("Vireo");
    let log = app.wait_for_log(&format!("vireo-trace: machines-frame {COUNT}"));
    assert!(
        log.contains(&format!("vireo-trace: first-frame machines {COUNT}")),
        "the first frame did not show the machines:\n{log}"
    );
    desktop.screenshot("machines-many");

    // Into the grid (past the header bar's three buttons), to its end, and open it.
    for _ in 0..4 {
        desktop.press(&window, "Tab");
    }
    desktop.press(&window, "End");
    sleep(Duration::from_millis(500));
    desktop.screenshot("machines-many-end");
    desktop.press(&window, "Return");
    desktop.wait_for_window(&format!("Properties of “m{:03}”", COUNT - 1));
    assert!(app.quit().success());
}
