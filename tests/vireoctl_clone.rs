//! `vireoctl clone` and `vireoctl undefine` with storage, through the real binary in an
//! isolated XDG home: a machine with a raw and a qcow2 disk, a read-only ISO, a CD-ROM and a
//! Vireo-made initrd is cloned with virt-clone's flags; the clone's disks are copies, the rest
//! is shared, and the original is untouched; a running original is refused (a tiny guest on the
//! local /dev/kvm); undefine removes exactly the files each flag says.

mod vireoctl_support;

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use vireoctl_support::{domain_xml, guest, Home};

struct Original {
    images: PathBuf,
    kernel: PathBuf,
    iso: PathBuf,
    cdrom: PathBuf,
}

fn qemu_img(args: &[&str]) {
    let out = Command::new("qemu-img")
        .args(args)
        .output()
        .expect("qemu-img (qemu-utils) must be installed");
    assert!(
        out.status.success(),
        "qemu-img {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Machine `web`: its kernel outside the images directory, its initrd inside, a raw and a
/// qcow2 disk of its own (with data), a read-only ISO disk and a CD-ROM, a NIC.
fn original(h: &Home) -> Original {
    let images = h.root.join("d/vireo/images");
    std::fs::create_dir_all(&images).unwrap();
    let kernel = h.file("vmlinuz", &guest::pvh_elf(&guest::spin()));
    std::fs::write(images.join("web-initrd.img"), b"initramfs").unwrap();
    let raw = std::fs::File::create(images.join("web.raw")).unwrap();
    raw.set_len(64 << 20).unwrap();
    raw.write_all_at(b"RAW-MARK", 40 << 20).unwrap();
    let seed = h.file(
        "seed.raw",
        &[b"QCOW2-MARK".as_slice(), &[0u8; 4086]].concat(),
    );
    let qcow2 = images.join("web-data.qcow2");
    qemu_img(&[
        "convert",
        "-q",
        "-f",
        "raw",
        "-O",
        "qcow2",
        seed.to_str().unwrap(),
        qcow2.to_str().unwrap(),
    ]);
    let iso = h.file("os.iso", b"iso");
    let cdrom = h.file("install.iso", b"install");
    let devices = format!(
        "    <disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='{}'/><target dev='vda' bus='virtio'/></disk>
    <disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='{}'/><target dev='vdb' bus='virtio'/></disk>
    <disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='{}'/><target dev='vdc' bus='virtio'/><readonly/></disk>
    <disk type='file' device='cdrom'><driver name='qemu' type='raw'/><source file='{}'/><target dev='sda' bus='scsi'/><readonly/></disk>
    <interface type='user'><mac address='52:54:00:aa:bb:cc'/></interface>
",
        images.join("web.raw").display(),
        qcow2.display(),
        iso.display(),
        cdrom.display()
    );
    let xml = domain_xml("web", &kernel, &devices, ("destroy", "restart", "destroy")).replace(
        "</kernel>",
        &format!(
            "</kernel>\n    <initrd>{}</initrd>",
            images.join("web-initrd.img").display()
        ),
    );
    let f = h.file("web.xml", xml.as_bytes());
    h.ok(&["define", f.to_str().unwrap()]);
    Original {
        images,
        kernel,
        iso,
        cdrom,
    }
}

fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn clone_copies_disks_shares_the_rest_and_undefine_removes_what_it_says() {
    let h = Home::new("cl");
    let o = original(&h);
    let i = &o.images;
    let before: Vec<Vec<u8>> = ["web.raw", "web-data.qcow2", "web-initrd.img"]
        .iter()
        .map(|f| read(&i.join(f)))
        .collect();
    let xml_before = h.ok(&["dumpxml", "web"]);

    // virt-clone's demand: a destination per copied disk, or --auto-clone.
    let (code, _, err) = h.run(&["clone", "--original", "web", "--name", "web2"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("disk vda: no destination"), "{err}");
    // A given destination that exists is refused, named, and left alone.
    let mine = h.file("mine.raw", b"precious");
    let (code, _, err) = h.run(&[
        "clone",
        "-o",
        "web",
        "-n",
        "web2",
        "-f",
        mine.to_str().unwrap(),
        "--auto-clone",
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!("{}: already exists", mine.display())),
        "{err}"
    );
    assert_eq!(read(&mine), b"precious");
    assert_eq!(
        h.run(&["dominfo", "web2"]).0,
        3,
        "a refused clone was defined"
    );
    // --print-xml plans and prints, and makes nothing.
    let printed = h.ok(&["clone", "-o", "web", "--auto-clone", "--print-xml"]);
    assert!(printed.contains("<name>web-clone</name>"), "{printed}");
    assert!(!i.join("web-clone.raw").exists());

    let out = h.ok(&["clone", "--original", "web", "--auto-clone"]);
    assert_eq!(out.trim(), "Clone 'web-clone' created successfully.");
    // The copies hold the same bytes; the originals (and their definition) are untouched.
    let copies = [
        "web-clone.raw",
        "web-clone-data.qcow2",
        "web-clone-initrd.img",
    ];
    for (copy, bytes) in copies.iter().zip(&before) {
        assert!(read(&i.join(copy)) == *bytes, "{copy} differs");
    }
    for (f, bytes) in ["web.raw", "web-data.qcow2", "web-initrd.img"]
        .iter()
        .zip(&before)
    {
        assert!(read(&i.join(f)) == *bytes, "{f} changed");
    }
    assert_eq!(h.ok(&["dumpxml", "web"]), xml_before);
    qemu_img(&[
        "check",
        "-q",
        i.join("web-clone-data.qcow2").to_str().unwrap(),
    ]);

    let xml = h.ok(&["dumpxml", "web-clone"]);
    for shared in [&o.kernel, &o.iso, &o.cdrom] {
        assert!(xml.contains(&shared.display().to_string()), "{xml}");
    }
    for copy in copies {
        assert!(xml.contains(&i.join(copy).display().to_string()), "{xml}");
    }
    assert!(xml.contains("<driver name='qemu' type='qcow2'/>"), "{xml}");
    assert!(!xml.contains("52:54:00:aa:bb:cc"), "{xml}");
    let uuid = |x: &str| {
        x.split("<uuid>")
            .nth(1)
            .and_then(|r| r.split("</uuid>").next())
            .map(str::to_owned)
    };
    assert!(
        uuid(&xml).is_some() && uuid(&xml) != uuid(&xml_before),
        "{xml}"
    );
    // A clone of the clone is numbered as virt-clone numbers it.
    assert_eq!(
        h.ok(&["clone", "-o", "web-clone", "--auto-clone", "-q"])
            .trim(),
        "Clone 'web-clone1' created successfully."
    );

    // The Vireo-made files of web-clone go; the shared ISO and kernel stay.
    let out = h.ok(&["undefine", "web-clone", "--remove-vireo-storage"]);
    assert!(
        out.starts_with("Domain 'web-clone' has been undefined\n"),
        "{out}"
    );
    for copy in copies {
        assert!(!i.join(copy).exists(), "{copy} stayed: {out}");
    }
    for stays in [&o.kernel, &o.iso, &o.cdrom] {
        assert!(stays.exists(), "{} went", stays.display());
    }
    // virsh's --remove-all-storage: every disk image of web, the ISOs too, but not a boot file
    // outside the images directory.
    let out = h.ok(&["undefine", "web", "--remove-all-storage"]);
    for gone in [
        i.join("web.raw"),
        i.join("web-data.qcow2"),
        i.join("web-initrd.img"),
        o.iso.clone(),
        o.cdrom.clone(),
    ] {
        assert!(!gone.exists(), "{} stayed: {out}", gone.display());
        assert!(
            out.contains(&format!("Image '{}' removed.", gone.display())),
            "{out}"
        );
    }
    assert!(o.kernel.exists());
    // A plain undefine keeps everything.
    h.ok(&["undefine", "web-clone1"]);
    assert!(i.join("web-clone1.raw").exists());
}

#[test]
fn a_running_original_is_not_cloned_and_its_storage_stays() {
    let h = Home::new("clr");
    vireoctl_support::vmm();
    let o = original(&h);
    h.ok(&["start", "web"]);
    let (code, _, err) = h.run(&["clone", "-o", "web", "--auto-clone"]);
    assert_eq!(code, 5, "{err}");
    assert!(
        err.contains("domain 'web' is running: shut it off first"),
        "{err}"
    );
    assert!(!o.images.join("web-clone.raw").exists());
    assert_eq!(h.run(&["dominfo", "web-clone"]).0, 3);
    // Storage goes only with a machine that is shut off (as in virsh).
    let (code, _, err) = h.run(&["undefine", "web", "--remove-vireo-storage"]);
    assert_eq!(code, 5, "{err}");
    assert_eq!(h.ok(&["domstate", "web"]).trim(), "running");
    // With --preserve-data nothing is copied, so a running original may be cloned.
    let (x, y) = (h.file("x.raw", b"x"), h.file("y.qcow2", b"y"));
    h.ok(&[
        "clone",
        "-o",
        "web",
        "-n",
        "tmpl",
        "--preserve-data",
        "-f",
        x.to_str().unwrap(),
        "-f",
        y.to_str().unwrap(),
    ]);
    assert!(h
        .ok(&["dumpxml", "tmpl"])
        .contains(&x.display().to_string()));
    h.ok(&["destroy", "web"]);
    assert_eq!(
        h.ok(&["clone", "-o", "web", "--auto-clone", "-q"]).trim(),
        "Clone 'web-clone' created successfully."
    );
}

#[test]
fn clone_has_a_man_page_and_completions() {
    let h = Home::new("clm");
    let dir = h.root.join("man");
    h.ok(&["man", "--dir", dir.to_str().unwrap()]);
    let page = read(&dir.join("vireoctl-clone.1"));
    let page = String::from_utf8_lossy(&page);
    assert!(page.contains("auto\\-clone"), "{page}");
    let bash = h.ok(&["completions", "bash"]);
    assert!(bash.contains("--auto-clone") && bash.contains("--remove-all-storage"));
}
