//! Clone… in the real `vireo` under Xvfb with the real driver in an isolated XDG home: the
//! dialog suggests virt-clone's `NAME-clone`, lists what it copies and what it shares, puts a
//! taken name's refusal on the name, and with a free name copies the disks (with a progress
//! bar) and defines the clone, which the main window then shows. No machine runs.
//! Screenshots: target/test-output/clone-*.png.

mod common;
mod vireoctl_support;

use std::os::unix::fs::FileExt;
use std::thread::sleep;
use std::time::Duration;

use common::{output_dir, tool, Desktop, Image};
use vireoctl_support::{domain_xml, guest, vireoctl, Home};

/// "machine": a raw disk with 192 MiB of data (so the copy takes long enough to be seen), a
/// qcow2-declared disk and a read-only ISO, all but the ISO in the images directory.
fn define_machine(h: &Home) -> std::path::PathBuf {
    let images = h.root.join("d/vireo/images");
    std::fs::create_dir_all(&images).unwrap();
    let raw = std::fs::File::create(images.join("machine.raw")).unwrap();
    let block = vec![0xa5u8; 1 << 20];
    for i in 0..192u64 {
        raw.write_all_at(&block, i << 20).unwrap();
    }
    std::fs::write(images.join("machine-data.qcow2"), b"QFI\xfbnot really").unwrap();
    let iso = h.file("os.iso", b"iso");
    let kernel = h.file("vmlinuz", &guest::pvh_elf(&guest::spin()));
    let devices = format!(
        "    <disk type='file'><driver name='qemu' type='raw'/><source file='{}'/><target dev='vda'/></disk>
    <disk type='file'><driver name='qemu' type='qcow2'/><source file='{}'/><target dev='vdb'/></disk>
    <disk type='file'><driver name='qemu' type='raw'/><source file='{}'/><target dev='vdc'/><readonly/></disk>
    <interface type='user'/>
",
        images.join("machine.raw").display(),
        images.join("machine-data.qcow2").display(),
        iso.display()
    );
    let xml = domain_xml(
        "machine",
        &kernel,
        &devices,
        ("destroy", "restart", "destroy"),
    );
    let f = h.file("machine.xml", xml.as_bytes());
    h.ok(&["define", f.to_str().unwrap()]);
    images
}

/// Replaces the name in the focused dialog's entry.
fn type_name(desktop: &Desktop, dialog: &str, name: &str) {
    desktop.press(dialog, "ctrl+a");
    let out = tool(
        "xdotool",
        &["type", "--delay", "40", name],
        Some(&desktop.display),
    );
    assert!(out.status.success(), "xdotool type");
    sleep(Duration::from_millis(1200));
}

#[test]
fn clone_dialog_suggests_a_name_refuses_a_taken_one_and_copies() {
    let h = Home::new("gcl");
    let images = define_machine(&h);
    let desktop = Desktop::start("clone");
    let app = desktop.launch_with_driver(&h.root, &vireoctl(), &vireoctl_support::vmm(), &[]);
    desktop.wait_for_window("Vireo");
    app.wait_view("machine", |s| s.contains("'machine': 'shut off'"));

    app.activate_win_with("machine-clone", "'machine'");
    let dialog = desktop.wait_for_window("Clone “machine”");
    sleep(Duration::from_millis(1500));
    let asked = output_dir().join("clone-dialog.png");
    Image::save_window(&desktop.display, &dialog, &asked);

    // A taken name: refused on the spot, on the name, and Return does nothing.
    type_name(&desktop, &dialog, "machine");
    let taken = output_dir().join("clone-dialog-name-taken.png");
    Image::save_window(&desktop.display, &dialog, &taken);
    assert!(
        Image::differing_pixels(&asked, &taken) > 200,
        "a taken name changed nothing: {}",
        taken.display()
    );
    desktop.press(&dialog, "Return");
    sleep(Duration::from_millis(500));
    assert!(!desktop.windows_named("Clone “machine”").is_empty());

    // A free name: Return clones; the progress shows while 192 MiB are copied.
    type_name(&desktop, &dialog, "copy");
    desktop.press(&dialog, "Return");
    sleep(Duration::from_millis(300));
    if !desktop.windows_named("Clone “machine”").is_empty() {
        Image::save_window(
            &desktop.display,
            &dialog,
            &output_dir().join("clone-dialog-progress.png"),
        );
    }
    desktop.wait_for_no_window("Clone “machine”");
    app.wait_view("the clone", |s| s.contains("'copy': 'shut off'"));
    desktop.screenshot("clone-done");

    let read = |f: &str| std::fs::read(images.join(f)).unwrap();
    assert!(read("copy.raw") == read("machine.raw"), "copy.raw differs");
    assert_eq!(read("copy-data.qcow2"), read("machine-data.qcow2"));
    let xml = h.ok(&["dumpxml", "copy"]);
    assert!(
        xml.contains(&images.join("copy.raw").display().to_string()),
        "{xml}"
    );
    assert!(
        xml.contains(&h.root.join("os.iso").display().to_string()),
        "{xml}"
    );
    assert!(app.quit().success());
}
