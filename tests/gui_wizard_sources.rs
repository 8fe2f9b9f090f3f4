//! The creation wizard's other sources in the real `vireo` under Xvfb with the real driver in
//! an isolated XDG home: "Existing Disk Image" (a qcow2 made with qemu-img, and the kernel to
//! boot it) and "Import Domain XML" with the document pasted into the text view (through the
//! X clipboard, as a user pastes), plus the review page's Copy button. The guest is a tiny
//! hand-written PVH program on the local /dev/kvm. Screenshots:
//! target/test-output/wizard-sources-*.png.

mod common;
mod vireoctl_support;

use std::process::{Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use common::{output_dir, Desktop, Image};
use vireoctl_support::{domain_xml, guest, vireoctl, Home};

fn launch(desktop: &Desktop, h: &Home) -> common::App {
    desktop.launch_with_driver(&h.root, &vireoctl(), &vireoctl_support::vmm(), &[])
}

fn shot(desktop: &Desktop, window: &str, name: &str) -> std::path::PathBuf {
    let path = output_dir().join(format!("wizard-sources-{name}.png"));
    Image::save_window(&desktop.display, window, &path);
    path
}

fn type_text(desktop: &Desktop, text: &str) {
    let ok = Command::new("xdotool")
        .args(["type", "--delay", "20", text])
        .env("DISPLAY", &desktop.display)
        .status()
        .expect("xdotool runs");
    assert!(ok.success());
}

#[test]
fn wizard_defines_an_existing_disk_image_machine() {
    let h = Home::new("guix");
    vireoctl_support::vmm();
    let mut code = guest::print("up\r\n");
    code.extend(guest::spin());
    let kernel = h.file("spin.elf", &guest::pvh_elf(&code));
    let image = h.root.join("old disk.qcow2");
    let made = Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2"])
        .arg(&image)
        .arg("64M")
        .status()
        .expect("qemu-img (qemu-utils) must be installed");
    assert!(made.success());
    let desktop = Desktop::start("wizard-disk");
    let app = launch(&desktop, &h);
    desktop.wait_for_window("Vireo");
    app.activate_win("new-machine");
    let wizard = desktop.wait_for_window("New Machine");
    sleep(Duration::from_millis(700));
    // The sources page's "Existing Disk Image" row (its mnemonic, Alt+E): the details page
    // with the disk field. The kernel field, then the disk field further down.
    desktop.press(&wizard, "alt+e");
    sleep(Duration::from_millis(700));
    desktop.click_in(&wizard, 200, 394);
    type_text(&desktop, &kernel.display().to_string());
    for _ in 0..5 {
        click_wheel(&desktop);
    }
    sleep(Duration::from_millis(500));
    desktop.click_in(&wizard, 200, 563);
    type_text(&desktop, &image.display().to_string());
    sleep(Duration::from_millis(300));
    shot(&desktop, &wizard, "disk-page");
    desktop.press(&wizard, "alt+n");
    sleep(Duration::from_millis(700));
    shot(&desktop, &wizard, "disk-review");

    // Copy (Alt+Y) puts the reviewed document on the clipboard.
    desktop.press(&wizard, "alt+y");
    let copied = wait_clipboard(&desktop, "<domain");
    let source = format!("<source file='{}'/>", image.display());
    assert!(
        copied.contains(&source) && copied.contains("type='qcow2'"),
        "the copied XML has no qcow2 disk {source}:\n{copied}"
    );
    shot(&desktop, &wizard, "copied");

    // Create: the machine is defined with the disk and started, and its console opens.
    desktop.press(&wizard, "Return");
    desktop.wait_for_no_window("New Machine");
    app.wait_view("machine running", |s| s.contains("'machine': 'running'"));
    desktop.wait_for_window("machine – Console");
    let stored = h.ok(&["dumpxml", "--inactive", "machine"]);
    assert!(
        stored.contains(&source) && stored.contains("type='qcow2'"),
        "{stored}"
    );
    assert_eq!(
        stored.trim(),
        copied.trim(),
        "the defined document is not the reviewed one"
    );
    app.activate_win_with("machine-force-off", "'machine'");
    app.wait_view("machine off", |s| s.contains("'machine': 'shut off'"));
    assert!(app.quit().success());
}

/// The X clipboard's text once it contains `needle` (xclip -o asks the owner, here vireo).
fn wait_clipboard(desktop: &Desktop, needle: &str) -> String {
    let start = Instant::now();
    loop {
        let out = Command::new("xclip")
            .args(["-o", "-selection", "clipboard"])
            .env("DISPLAY", &desktop.display)
            .stderr(Stdio::null())
            .output()
            .expect("xclip must be installed");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if text.contains(needle) {
            return text;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the clipboard never held {needle}: {text:?}"
        );
        sleep(Duration::from_millis(200));
    }
}

#[test]
fn wizard_imports_pasted_xml() {
    let h = Home::new("guiy");
    vireoctl_support::vmm();
    let kernel = h.file("spin.elf", &guest::pvh_elf(&guest::spin()));
    // Unknown content (another tool's metadata) must survive the paste and the define.
    let xml = domain_xml("pasted", &kernel, "", ("destroy", "restart", "destroy")).replace(
        "</domain>",
        "  <metadata>\n    <other:note xmlns:other='http://example.org/other'>kept</other:note>\n  </metadata>\n</domain>",
    );
    let desktop = Desktop::start("wizard-paste");
    let app = launch(&desktop, &h);
    desktop.wait_for_window("Vireo");
    app.activate_win("new-machine");
    let wizard = desktop.wait_for_window("New Machine");
    sleep(Duration::from_millis(700));
    desktop.press(&wizard, "alt+i");
    sleep(Duration::from_millis(700));
    let empty = shot(&desktop, &wizard, "xml-page");
    desktop.set_clipboard(&xml);
    desktop.click_in(&wizard, 280, 400);
    desktop.press(&wizard, "ctrl+v");
    sleep(Duration::from_millis(500));
    let pasted = shot(&desktop, &wizard, "xml-pasted");
    assert!(
        Image::differing_pixels(&empty, &pasted) > 2000,
        "nothing was pasted: {}",
        pasted.display()
    );
    desktop.press(&wizard, "alt+n");
    sleep(Duration::from_millis(700));
    shot(&desktop, &wizard, "xml-review");
    desktop.press(&wizard, "Return");
    desktop.wait_for_no_window("New Machine");
    app.wait_view("the pasted machine", |s| s.contains("'pasted': 'shut off'"));
    let stored = h.ok(&["dumpxml", "--inactive", "pasted"]);
    assert!(
        stored.contains("other:note") && stored.contains(&kernel.display().to_string()),
        "unknown content or kernel lost:\n{stored}"
    );
    assert!(app.quit().success());
}

/// One step of the mouse wheel down where the pointer is.
fn click_wheel(desktop: &Desktop) {
    let ok = Command::new("xdotool")
        .args(["click", "5"])
        .env("DISPLAY", &desktop.display)
        .status()
        .expect("xdotool runs");
    assert!(ok.success());
    sleep(Duration::from_millis(100));
}

/// The share of clearly red pixels (the error style) in a PNG.
fn red_share(png: &std::path::Path, geometry: &str) -> f64 {
    let out = Command::new("convert")
        .arg(png)
        .args([
            "-crop",
            geometry,
            "+repage",
            "-fx",
            "(r>0.6&&g<0.35&&b<0.35)?1:0",
        ])
        .args(["-format", "%[fx:mean]", "info:"])
        .output()
        .expect("ImageMagick convert runs");
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim()
        .parse()
        .unwrap_or_else(|_| panic!("convert said: {text}"))
}

/// A refusal of the driver's define lands beside its field: a name another machine already
/// has passes the form's own checks (it is a valid name) and is refused by the store; the
/// wizard goes back to the details with the name field marked, and the disk image it made for
/// the attempt is removed again.
#[test]
fn wizard_shows_the_drivers_refusal_beside_the_name() {
    let h = Home::new("guin");
    vireoctl_support::vmm();
    let kernel = h.file("spin.elf", &guest::pvh_elf(&guest::spin()));
    let xml = domain_xml("alpha", &kernel, "", ("destroy", "restart", "destroy"));
    let file = h.file("alpha.xml", xml.as_bytes());
    h.ok(&["define", file.to_str().unwrap()]);
    let before = h.ok(&["dumpxml", "--inactive", "alpha"]);
    let desktop = Desktop::start("wizard-refusal");
    let app = launch(&desktop, &h);
    desktop.wait_for_window("Vireo");
    app.new_machine_from_kernel(&kernel);
    let wizard = desktop.wait_for_window("New Machine");
    sleep(Duration::from_millis(700));
    let clean = shot(&desktop, &wizard, "refusal-details");
    desktop.click_in(&wizard, 200, 167); // the Name row
    desktop.press(&wizard, "ctrl+a");
    type_text(&desktop, "alpha");
    desktop.press(&wizard, "alt+n");
    sleep(Duration::from_millis(700));
    desktop.press(&wizard, "Return"); // Create
    sleep(Duration::from_millis(1500));
    let refused = shot(&desktop, &wizard, "refusal-name-taken");
    assert_eq!(
        desktop.windows_named("New Machine").len(),
        1,
        "the wizard closed although the driver refused"
    );
    // The message above the form and the Name row (below it, 490x50 at 34,174) in red.
    let whole = "560x620+0+0";
    let name_row = "490x50+34+174";
    assert!(
        red_share(&clean, whole) < 0.0005
            && red_share(&refused, whole) > 0.002
            && red_share(&refused, name_row) > 0.003,
        "no field marked in {} (red share {}, in the name row {})",
        refused.display(),
        red_share(&refused, whole),
        red_share(&refused, name_row)
    );
    assert_eq!(
        h.ok(&["dumpxml", "--inactive", "alpha"]),
        before,
        "the existing machine was changed"
    );
    let image = h.root.join("d/vireo/images/alpha.qcow2");
    assert!(
        !image.exists(),
        "the refused attempt left {}",
        image.display()
    );
    assert!(app.quit().success());
}
