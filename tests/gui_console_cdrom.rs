//! The console's CD and DVD menu in the real `vireo` under Xvfb, on a running
//! machine of the real driver with a CD-ROM drive on virtio-scsi: the menu shows the disc and
//! offers Change CD… and Eject CD; Eject CD empties the drive of the running machine and of
//! its definition. The guest is the painter (a tiny PVH program on the local /dev/kvm).
//! Screenshots: target/test-output/console-cdrom-*.png.

mod common;
mod painter_guest;
mod vireoctl_support;

use std::thread::sleep;
use std::time::{Duration, Instant};

use common::Desktop;
use painter_guest::wait_orange;
use vireoctl_support::{domain_xml, guest, vireoctl, Home};

fn define(h: &Home, iso: &std::path::Path) {
    let kernel = h.file("painter.elf", &guest::pvh_elf(&painter_guest::code()));
    let devices = format!(
        "    <controller type='scsi' index='0' model='virtio-scsi'/>
    <disk type='file' device='cdrom'>
      <driver name='qemu' type='raw'/>
      <source file='{}'/>
      <target dev='sda' bus='scsi'/>
      <readonly/>
    </disk>
    <serial type='pty'>
      <target port='0'/>
    </serial>
    <graphics type='vnc'>
      <listen type='none'/>
    </graphics>
    <video>
      <model type='vga'>
        <resolution x='320' y='200'/>
      </model>
    </video>
",
        iso.display()
    );
    let xml = domain_xml(
        "painter",
        &kernel,
        &devices,
        ("destroy", "restart", "destroy"),
    );
    let file = h.file("painter.xml", xml.as_bytes());
    h.ok(&["define", file.to_str().unwrap()]);
}

fn wait_xml(h: &Home, args: &[&str], what: &str, ok: impl Fn(&str) -> bool) -> String {
    let start = Instant::now();
    loop {
        let xml = h.ok(args);
        if ok(&xml) {
            return xml;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "never {what}:\n{xml}"
        );
        sleep(Duration::from_millis(200));
    }
}

#[test]
fn the_console_menu_changes_the_disc_of_a_running_machine() {
    let h = Home::new("guicc");
    vireoctl_support::vmm();
    let iso = h.file("installer.iso", &vec![0u8; 32 * 2048]);
    define(&h, &iso);
    let desktop = Desktop::start("console-cdrom");
    let app = desktop.launch_with_driver(&h.root, &vireoctl(), &vireoctl_support::vmm(), &[]);
    desktop.wait_for_window("Vireo");
    app.activate_win_with("machine-start", "'painter'");
    app.wait_view("painter running", |s| s.contains("'painter': 'running'"));
    app.activate_win_with("machine-console", "'painter'");
    let console = desktop.wait_for_window("painter – Console");
    wait_orange(&desktop, &console, "console-cdrom-start");

    // The CD and DVD button follows the keyboard button at the start of the header.
    desktop.click_in(&console, 60, 23);
    sleep(Duration::from_millis(700));
    desktop.screenshot("console-cdrom-menu");
    // Change CD…, the first item under the disc's name, opens the image chooser.
    desktop.click_in(&console, 60, 103);
    let chooser = desktop.wait_for_window("Choose a CD or DVD Image");
    sleep(Duration::from_millis(500));
    desktop.press(&chooser, "Escape");
    desktop.wait_for_no_window("Choose a CD or DVD Image");
    // Eject CD, the second item.
    desktop.click_in(&console, 60, 23);
    sleep(Duration::from_millis(700));
    desktop.click_in(&console, 46, 135);
    sleep(Duration::from_millis(1000));
    desktop.screenshot("console-cdrom-ejected");
    wait_xml(&h, &["dumpxml", "painter"], "ejected live", |x| {
        !x.contains("installer.iso")
    });
    wait_xml(
        &h,
        &["dumpxml", "--inactive", "painter"],
        "ejected in the definition",
        |x| !x.contains("installer.iso") && x.contains("device='cdrom'"),
    );
    desktop.click_in(&console, 60, 23);
    sleep(Duration::from_millis(700));
    desktop.screenshot("console-cdrom-menu-empty");
    desktop.press(&console, "Escape");
    app.activate_win_with("machine-force-off", "'painter'");
    assert!(app.quit().success());
}
