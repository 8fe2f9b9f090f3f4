//! Deleting a machine whose disk image the creation wizard made, in the real `vireo` under
//! Xvfb with the real driver in an isolated XDG home: the question offers to delete the image
//! too; with that checked, the image goes with the machine once the Undo toast has expired, and
//! Undo keeps both. The guest is a tiny hand-written PVH program on the local /dev/kvm (it only
//! has to start). Screenshots: target/test-output/delete-images-*.png.

mod common;
mod vireoctl_support;

use std::thread::sleep;
use std::time::{Duration, Instant};

use common::{output_dir, Desktop, Image};
use vireoctl_support::{guest, vireoctl, Home};

fn launch(desktop: &Desktop, h: &Home) -> common::App {
    desktop.launch_with_driver(&h.root, &vireoctl(), &vireoctl_support::vmm(), &[])
}

/// Asks to delete "machine" and answers with the image box checked (Alt+I, the box's
/// mnemonic) or not, then Delete (Alt+D).
fn delete(desktop: &Desktop, app: &common::App, with_image: bool, shot: &str) {
    app.activate_win_with("machine-delete", "'machine'");
    let dialog = desktop.wait_for_window("Delete “machine”?");
    sleep(Duration::from_millis(500));
    let asked = output_dir().join(format!("{shot}.png"));
    Image::save_window(&desktop.display, &dialog, &asked);
    if with_image {
        desktop.press(&dialog, "alt+i");
        let checked = output_dir().join(format!("{shot}-checked.png"));
        Image::save_window(&desktop.display, &dialog, &checked);
        assert!(
            Image::differing_pixels(&asked, &checked) > 30,
            "Alt+I did not check the box: {}",
            checked.display()
        );
    }
    desktop.press(&dialog, "alt+d");
    desktop.wait_for_no_window("Delete “machine”?");
    app.wait_view("machine hidden", |s| !s.contains("'machine'"));
}

#[test]
fn deleting_offers_the_wizards_disk_image_and_undo_keeps_it() {
    let h = Home::new("guid");
    vireoctl_support::vmm();
    let mut code = guest::print("up\r\n");
    code.extend(guest::spin());
    let kernel = h.file("spin.elf", &guest::pvh_elf(&code));
    let desktop = Desktop::start("delete-images");
    let app = launch(&desktop, &h);
    desktop.wait_for_window("Vireo");

    // The wizard makes machine.qcow2 in the images directory and starts the machine.
    app.new_machine_from_kernel(&kernel);
    let wizard = desktop.wait_for_window("New Machine");
    desktop.press(&wizard, "Return");
    sleep(Duration::from_millis(500));
    desktop.press(&wizard, "Return");
    desktop.wait_for_no_window("New Machine");
    app.wait_view("machine running", |s| s.contains("'machine': 'running'"));
    let console = desktop.wait_for_window("machine – Console");
    desktop.press(&console, "ctrl+w");
    app.activate_win_with("machine-force-off", "'machine'");
    app.wait_view("machine off", |s| s.contains("'machine': 'shut off'"));
    let image = h.root.join("d/vireo/images/machine.qcow2");
    assert!(image.is_file(), "the wizard made no {}", image.display());

    // Undo: the machine comes back and nothing is removed, also after the toast's time.
    delete(&desktop, &app, true, "delete-images-dialog");
    desktop.screenshot("delete-images-toast");
    assert!(image.is_file(), "image removed before the toast expired");
    app.activate_win_with("machine-undelete", "'machine'");
    app.wait_view("machine back", |s| s.contains("'machine': 'shut off'"));
    sleep(Duration::from_secs(10));
    assert!(image.is_file(), "Undo did not keep {}", image.display());
    assert_eq!(h.ok(&["domstate", "machine"]).trim(), "shut off");

    // Checked, without Undo: both go once the toast has expired.
    delete(&desktop, &app, true, "delete-images-dialog-again");
    let start = Instant::now();
    while h.run(&["domstate", "machine"]).0 == 0 || image.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "machine or {} still there 20 s after Delete",
            image.display()
        );
        sleep(Duration::from_millis(200));
    }
    desktop.screenshot("delete-images-gone");
    assert!(app.quit().success());
}
