//! A downloaded qcow2 whose header names the user's own files (a private key as its backing file,
//! a shell profile as its read-write data file) through the real `vireoctl` and `vireo-vmm` on
//! the local /dev/kvm: start fails with one line naming the image and the file its header asked
//! for, and the user's files are never opened (inotify) and unchanged. A backing file the
//! definition declares is opened, and the machine runs.

mod vireoctl_support;

#[path = "../vmm/tests/inotify/mod.rs"]
mod inotify;

use inotify::Watch;
use std::path::Path;
use std::process::Command;
use vireoctl_support::{domain_xml, guest, Home};

fn qemu_img(dir: &Path, args: &[&str]) {
    let out = Command::new("qemu-img")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run qemu-img");
    assert!(
        out.status.success(),
        "qemu-img {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn disk(image: &Path, backing_store: &str) -> String {
    format!(
        "    <disk type='file' device='disk'>\n      <driver name='qemu' type='qcow2'/>\n      \
         <source file='{}'/>\n{backing_store}      <target dev='vda' bus='virtio'/>\n    </disk>\n",
        image.display()
    )
}

fn define(h: &Home, name: &str, devices: &str) {
    let k = h.file(&format!("{name}.elf"), &guest::pvh_elf(&guest::spin()));
    let x = h.file(
        &format!("{name}.xml"),
        domain_xml(name, &k, devices, ("destroy", "restart", "destroy")).as_bytes(),
    );
    h.ok(&["define", x.to_str().unwrap()]);
}

#[test]
fn a_crafted_qcow2_does_not_start_and_the_users_files_stay_untouched() {
    vireoctl_support::vmm();
    let h = Home::new("q2");
    let ssh = h.root.join(".ssh");
    std::fs::create_dir_all(&ssh).unwrap();
    let key = ssh.join("id_ed25519");
    let bashrc = h.root.join(".bashrc");
    let downloads = h.root.join("Downloads");
    std::fs::create_dir_all(&downloads).unwrap();
    // -u: qemu-img does not open the backing file either.
    qemu_img(
        &downloads,
        &[
            "create",
            "-q",
            "-f",
            "qcow2",
            "-u",
            "-F",
            "raw",
            "-b",
            key.to_str().unwrap(),
            "backing.qcow2",
            "1M",
        ],
    );
    qemu_img(
        &downloads,
        &[
            "create",
            "-q",
            "-f",
            "qcow2",
            "-o",
            &format!("data_file={},data_file_raw=on", bashrc.display()),
            "datafile.qcow2",
            "1M",
        ],
    );
    // The user's files, as they are before anything runs (qemu-img created the data file).
    let key_bytes = b"-----BEGIN OPENSSH PRIVATE KEY-----\nsecret\n".to_vec();
    let bashrc_bytes = b"alias ls='ls --color'\n".to_vec();
    std::fs::write(&key, &key_bytes).unwrap();
    std::fs::write(&bashrc, &bashrc_bytes).unwrap();

    let cases = [
        ("bk", downloads.join("backing.qcow2"), &key, "backing file"),
        (
            "df",
            downloads.join("datafile.qcow2"),
            &bashrc,
            "external data file",
        ),
    ];
    for (name, image, _, _) in &cases {
        define(&h, name, &disk(image, ""));
    }
    let watch = Watch::new(&[&key, &bashrc]);
    let mut starts = Vec::new();
    for (name, ..) in &cases {
        starts.push(h.run(&["start", name]));
    }
    // The promise first: the user's files were not touched.
    assert_eq!(watch.events(), Vec::<String>::new());
    assert_eq!(std::fs::read(&key).unwrap(), key_bytes, "the key changed");
    assert_eq!(
        std::fs::read(&bashrc).unwrap(),
        bashrc_bytes,
        "the profile changed"
    );
    for ((name, image, named, what), (code, out, err)) in cases.iter().zip(starts) {
        assert_eq!(code, 1, "{name} started:\n{out}{err}");
        let wanted = format!(
            "disk image {}: its qcow2 header {} the {what} \"{}\"",
            image.display(),
            if *what == "backing file" {
                "names"
            } else {
                "asks for"
            },
            named.display()
        );
        let lines: Vec<&str> = err.lines().filter(|l| l.contains(&wanted)).collect();
        assert_eq!(lines.len(), 1, "no single line says `{wanted}`:\n{err}");
        assert_eq!(
            h.ok(&["domstate", "--reason", name]).trim(),
            "shut off (failed)"
        );
    }
}

#[test]
fn a_declared_backing_file_is_opened_and_the_machine_runs() {
    vireoctl_support::vmm();
    let h = Home::new("q2ok");
    let base = h.file("base.raw", &[0x42; 1 << 20]);
    qemu_img(
        &h.root,
        &[
            "create",
            "-q",
            "-f",
            "qcow2",
            "-F",
            "raw",
            "-b",
            base.to_str().unwrap(),
            "top.qcow2",
        ],
    );
    let top = h.root.join("top.qcow2");
    let declared = format!(
        "      <backingStore type='file'>\n        <format type='raw'/>\n        \
         <source file='{}'/>\n        <backingStore/>\n      </backingStore>\n",
        base.display()
    );
    define(&h, "ok", &disk(&top, &declared));
    h.ok(&["start", "ok"]);
    assert_eq!(
        h.ok(&["domstate", "--reason", "ok"]).trim(),
        "running (booted)"
    );
    h.ok(&["destroy", "ok"]);
    assert_eq!(std::fs::read(&base).unwrap(), vec![0x42; 1 << 20]);
    // Without the declaration the same image does not start.
    define(&h, "undeclared", &disk(&top, ""));
    let (code, _, err) = h.run(&["start", "undeclared"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("which the machine's definition does not declare"),
        "{err}"
    );
}
