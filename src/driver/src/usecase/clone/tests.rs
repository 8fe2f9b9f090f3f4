//! The clone rules on real files in a private set of XDG directories.

use super::*;
use crate::Paths;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;

struct Fixture {
    dir: PathBuf,
    conn: Connection,
    images: PathBuf,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A qcow2 header (version 3, 64 MiB, no backing file) and some data after it: enough for a
/// byte copy, which never reads it.
fn qcow2_bytes(backing: Option<&str>) -> Vec<u8> {
    let mut b = vec![0u8; 256 << 10];
    b[..4].copy_from_slice(b"QFI\xfb");
    b[7] = 3;
    b[24..32].copy_from_slice(&(64u64 << 20).to_be_bytes());
    if let Some(name) = backing {
        b[8..16].copy_from_slice(&512u64.to_be_bytes());
        b[16..20].copy_from_slice(&(name.len() as u32).to_be_bytes());
        b[512..512 + name.len()].copy_from_slice(name.as_bytes());
    }
    b[200_000..200_012].copy_from_slice(b"qcow2 clust!");
    b
}

/// Machine "a": a kernel outside the images directory, its initrd inside, a raw and a qcow2
/// disk of its own, a read-only ISO disk, a CD-ROM, a NIC, VNC on a fixed port and a serial log.
fn fixture(tag: &str) -> Fixture {
    let dir = std::env::temp_dir().join(format!("vireo-clone-{tag}-{}", Uuid::new_v4().unwrap()));
    let paths = Paths::all_under(&dir);
    let images = paths.images();
    std::fs::create_dir_all(&images).unwrap();
    let conn = Connection::with_paths(paths);
    std::fs::write(dir.join("vmlinuz"), b"kernel").unwrap();
    std::fs::write(images.join("a-initrd.img"), b"initramfs of a").unwrap();
    let raw = File::create(images.join("a.raw")).unwrap();
    raw.set_len(16 << 20).unwrap();
    raw.write_all_at(b"raw data", 5 << 20).unwrap();
    std::fs::write(images.join("a-data.qcow2"), qcow2_bytes(None)).unwrap();
    std::fs::write(dir.join("os.iso"), b"iso").unwrap();
    std::fs::write(dir.join("install.iso"), b"install").unwrap();
    let (d, i) = (dir.display(), images.display());
    conn.define_xml(&format!(
        "<domain type='kvm'>
  <name>a</name>
  <uuid>11111111-2222-4333-8444-555555555555</uuid>
  <title>Original A</title>
  <memory unit='MiB'>64</memory>
  <sysinfo type='smbios'><system><entry name='uuid'>11111111-2222-4333-8444-555555555555</entry></system></sysinfo>
  <os><type>hvm</type><kernel>{d}/vmlinuz</kernel><initrd>{i}/a-initrd.img</initrd></os>
  <devices>
    <disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='{i}/a.raw'/><target dev='vda' bus='virtio'/></disk>
    <disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='{i}/a-data.qcow2'/><target dev='vdb' bus='virtio'/></disk>
    <disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='{d}/os.iso'/><target dev='vdc' bus='virtio'/><readonly/></disk>
    <disk type='file' device='cdrom'><driver name='qemu' type='raw'/><source file='{d}/install.iso'/><target dev='sda' bus='sata'/></disk>
    <interface type='user'><mac address='52:54:00:00:00:01'/><target dev='vnet0'/></interface>
    <graphics type='vnc' port='5905' autoport='no' passwd='pw'><listen type='address' address='127.0.0.1'/></graphics>
    <serial type='file'><source path='{d}/a-serial.log'/><target port='0'/></serial>
  </devices>
</domain>
"
    ))
    .unwrap();
    Fixture { dir, conn, images }
}

fn keep_going() -> impl FnMut(&Progress<'_>) -> ControlFlow<()> {
    |_| ControlFlow::Continue(())
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn a_clone_copies_the_writable_disks_and_shares_the_rest() {
    let f = fixture("copy");
    let original_xml = f.conn.xml("a", true).unwrap();
    let before = |p: &str| std::fs::read(f.images.join(p)).unwrap();
    let (raw, qcow2) = (before("a.raw"), before("a-data.qcow2"));
    let mut seen: Vec<(usize, u64, u64, u64)> = Vec::new();
    let cloned = clone_machine(&f.conn, &CloneRequest::auto("a", None), &mut |p| {
        seen.push((p.index, p.copied, p.done, p.total));
        ControlFlow::Continue(())
    })
    .unwrap();
    assert_eq!(cloned.info.name, "a-clone");

    let i = &f.images;
    let copies: Vec<(String, PathBuf, PathBuf)> = cloned
        .copies
        .iter()
        .map(|c| (c.role.to_string(), c.source.clone(), c.destination.clone()))
        .collect();
    assert_eq!(
        copies,
        [
            ("disk vda".into(), i.join("a.raw"), i.join("a-clone.raw")),
            (
                "disk vdb".into(),
                i.join("a-data.qcow2"),
                i.join("a-clone-data.qcow2")
            ),
            (
                "initrd".into(),
                i.join("a-initrd.img"),
                i.join("a-clone-initrd.img")
            ),
        ]
    );
    let shared: Vec<(String, ShareReason)> = cloned
        .shared
        .iter()
        .map(|s| (s.role.to_string(), s.reason.clone()))
        .collect();
    assert_eq!(
        shared,
        [
            ("disk vdc".into(), ShareReason::ReadOnly),
            ("disk sda".into(), ShareReason::Cdrom),
            ("kernel".into(), ShareReason::NotVireoMade),
        ]
    );
    // The copies are the same bytes; the raw one stayed sparse; the originals are untouched.
    assert_eq!(std::fs::read(i.join("a-clone.raw")).unwrap(), raw);
    assert_eq!(std::fs::read(i.join("a-clone-data.qcow2")).unwrap(), qcow2);
    assert_eq!(before("a.raw"), raw);
    assert_eq!(before("a-data.qcow2"), qcow2);
    use std::os::unix::fs::MetadataExt;
    let used = std::fs::metadata(i.join("a-clone.raw")).unwrap().blocks() * 512;
    assert!(used < 4 << 20, "the 16 MiB raw copy takes {used} bytes");
    assert_eq!(f.conn.xml("a", true).unwrap(), original_xml);

    // Progress: every copy from 0 to its end, `done` never going back, ending at `total`.
    let total = (16 << 20) + qcow2.len() as u64 + "initramfs of a".len() as u64;
    assert!(seen.iter().all(|s| s.3 == total), "{seen:?}");
    assert!(seen.windows(2).all(|w| w[0].2 <= w[1].2), "{seen:?}");
    assert_eq!(seen.last().map(|s| s.2), Some(total));
    for index in 0..3 {
        let first = seen.iter().find(|s| s.0 == index);
        assert_eq!(first.map(|s| s.1), Some(0), "{seen:?}");
    }

    // The new definition: new name, UUID, MAC; the same declared formats; shared paths kept.
    let d = f.conn.store().load("a-clone").unwrap();
    let xml = d.to_xml();
    let uuid = d.uuid.clone().unwrap();
    assert_ne!(uuid, "11111111-2222-4333-8444-555555555555");
    assert!(
        xml.contains(&format!("<entry name='uuid'>{uuid}</entry>")),
        "{xml}"
    );
    assert_eq!(d.title, None);
    let devs = d.dom.devices().unwrap();
    let disks: Vec<(Option<String>, Option<ImageFormat>)> = devs
        .disks()
        .iter()
        .map(|d| (d.source(), d.format()))
        .collect();
    let s = |p: &Path| Some(p.display().to_string());
    assert_eq!(
        disks,
        [
            (s(&i.join("a-clone.raw")), Some(ImageFormat::Raw)),
            (s(&i.join("a-clone-data.qcow2")), Some(ImageFormat::Qcow2)),
            (s(&f.dir.join("os.iso")), Some(ImageFormat::Raw)),
            (s(&f.dir.join("install.iso")), Some(ImageFormat::Raw)),
        ]
    );
    let iface = &devs.interfaces()[0];
    let mac = iface.mac().unwrap();
    assert!(
        mac.starts_with("52:54:00:") && mac != "52:54:00:00:00:01",
        "{mac}"
    );
    assert!(iface.element().child("target").is_none(), "{xml}");
    let g = &devs.graphics()[0];
    assert_eq!((g.port(), g.autoport()), (Some(-1), Some(true)));
    assert_eq!(
        devs.serials()[0].source_path(),
        s(&f.dir.join("a-clone-serial.log"))
    );
    let os = d.dom.os().unwrap();
    assert_eq!(os.kernel(), s(&f.dir.join("vmlinuz")));
    assert_eq!(os.initrd(), s(&i.join("a-clone-initrd.img")));

    // A clone of the clone is numbered, not "a-clone-clone".
    let again = plan(&f.conn, &CloneRequest::auto("a-clone", None)).unwrap();
    assert_eq!(again.name, "a-clone1");
}

#[test]
fn a_given_destination_that_exists_is_refused_and_generated_ones_are_numbered() {
    let f = fixture("exists");
    let mine = f.dir.join("mine.raw");
    std::fs::write(&mine, b"precious").unwrap();
    let req = CloneRequest {
        original: "a".into(),
        name: Some("b".into()),
        files: vec![mine.clone()],
        auto_clone: true,
        ..CloneRequest::default()
    };
    let e = clone_machine(&f.conn, &req, &mut keep_going()).unwrap_err();
    assert!(
        matches!(&e, CloneError::DestinationExists(p) if *p == mine),
        "{e}"
    );
    assert!(e.to_string().contains(&mine.display().to_string()), "{e}");
    assert_eq!(std::fs::read(&mine).unwrap(), b"precious");
    assert!(f.conn.info("b").is_err());

    // Generated names step around existing files: b.raw is taken, so b-1.raw.
    std::fs::write(f.images.join("b.raw"), b"someone's").unwrap();
    let p = plan(&f.conn, &CloneRequest::auto("a", Some("b"))).unwrap();
    assert_eq!(p.copies[0].destination, f.images.join("b-1.raw"));
    assert_eq!(p.copies[1].destination, f.images.join("b-data.qcow2"));
}

#[test]
fn destinations_are_given_or_generated_never_guessed() {
    let f = fixture("needs");
    let with = |files: Vec<PathBuf>, auto: bool| CloneRequest {
        original: "a".into(),
        name: Some("b".into()),
        files,
        auto_clone: auto,
        ..CloneRequest::default()
    };
    let e = plan(&f.conn, &with(vec![], false)).unwrap_err();
    assert!(
        matches!(&e, CloneError::NeedsFile { role } if role.to_string() == "disk vda"),
        "{e}"
    );
    let e = plan(&f.conn, &with(vec![f.dir.join("x.raw")], false)).unwrap_err();
    assert!(
        matches!(&e, CloneError::NeedsFile { role } if role.to_string() == "disk vdb"),
        "{e}"
    );
    // Both given: the boot file still gets a generated name, as virt-clone's NVRAM does.
    let p = plan(
        &f.conn,
        &with(vec![f.dir.join("x.raw"), f.dir.join("y.qcow2")], false),
    )
    .unwrap();
    assert_eq!(p.copies[2].destination, f.images.join("b-initrd.img"));
    let e = plan(
        &f.conn,
        &with(
            vec![f.dir.join("x"), f.dir.join("y"), f.dir.join("z")],
            false,
        ),
    )
    .unwrap_err();
    assert!(
        matches!(
            e,
            CloneError::TooManyFiles {
                given: 3,
                wanted: 2
            }
        ),
        "{e}"
    );
    let e = plan(&f.conn, &with(vec![PathBuf::from("x.raw")], true)).unwrap_err();
    assert!(matches!(e, CloneError::RelativeDestination(_)), "{e}");
    let e = plan(&f.conn, &with(vec![f.dir.join("x"), f.dir.join("x")], true)).unwrap_err();
    assert!(matches!(e, CloneError::DuplicateDestination(_)), "{e}");
    let e = plan(&f.conn, &CloneRequest::auto("a", Some("a"))).unwrap_err();
    assert!(matches!(e, CloneError::NameTaken(_)), "{e}");
    let e = plan(&f.conn, &CloneRequest::auto("a", Some("x/y"))).unwrap_err();
    assert!(e.to_string().contains("domain/name"), "{e}");
    let e = plan(&f.conn, &CloneRequest::auto("nope", None)).unwrap_err();
    assert!(
        matches!(e, CloneError::Driver(DriverError::NotFound(_))),
        "{e}"
    );
    let mut skip = CloneRequest::auto("a", Some("b"));
    skip.skip_copy = vec!["vda".into()];
    let p = plan(&f.conn, &skip).unwrap();
    assert_eq!(p.copies.len(), 2);
    assert_eq!(p.shared[0].reason, ShareReason::Skipped);
    // Nothing was made by any of this.
    assert_eq!(
        files_in(&f.images),
        ["a-data.qcow2", "a-initrd.img", "a.raw"]
    );
}

#[test]
fn a_failed_or_cancelled_clone_removes_its_copies_and_defines_nothing() {
    let f = fixture("fail");
    // The second destination's directory does not exist: the first copy must go again.
    let req = CloneRequest {
        original: "a".into(),
        name: Some("b".into()),
        files: vec![f.dir.join("b.raw"), f.dir.join("missing/b.qcow2")],
        ..CloneRequest::default()
    };
    let e = clone_machine(&f.conn, &req, &mut keep_going()).unwrap_err();
    assert!(
        matches!(&e, CloneError::Io { path, .. } if path.ends_with("missing/b.qcow2")),
        "{e}"
    );
    assert!(
        !f.dir.join("b.raw").exists(),
        "the first copy was left behind"
    );
    assert!(f.conn.info("b").is_err());

    // Cancelled in the middle of the raw disk.
    let e = clone_machine(&f.conn, &CloneRequest::auto("a", Some("b")), &mut |p| {
        if p.copied > 0 && p.copied < p.copy.bytes {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    })
    .unwrap_err();
    assert!(matches!(e, CloneError::Cancelled), "{e}");
    assert_eq!(
        files_in(&f.images),
        ["a-data.qcow2", "a-initrd.img", "a.raw"]
    );
    assert!(f.conn.info("b").is_err());

    // A name taken between plan and execute: refused before anything is copied.
    let p = plan(&f.conn, &CloneRequest::auto("a", Some("b"))).unwrap();
    let other = f
        .conn
        .xml("a", true)
        .unwrap()
        .replace("<name>a</name>", "<name>b</name>");
    let other = other.replace(
        "11111111-2222-4333-8444-555555555555",
        "11111111-2222-4333-8444-666666666666",
    );
    f.conn.define_xml(&other).unwrap();
    let e = execute(&f.conn, &p, &mut keep_going()).unwrap_err();
    assert!(matches!(e, CloneError::NameTaken(_)), "{e}");
    assert_eq!(
        files_in(&f.images),
        ["a-data.qcow2", "a-initrd.img", "a.raw"]
    );
}

#[test]
fn a_disk_a_running_machine_writes_to_is_not_copied() {
    let f = fixture("busy");
    // What the helper of a running original holds on its writable disk.
    let disk = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(f.images.join("a.raw"))
        .unwrap();
    // SAFETY: flock is plain data; a valid descriptor and a pointer to a live flock.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = libc::F_WRLCK as i16;
    fl.l_whence = libc::SEEK_SET as i16;
    assert_eq!(
        unsafe { libc::fcntl(disk.as_raw_fd(), libc::F_OFD_SETLK, &fl) },
        0
    );
    let e = clone_machine(&f.conn, &CloneRequest::auto("a", None), &mut keep_going()).unwrap_err();
    assert!(
        matches!(&e, CloneError::ImageInUse(p) if p.ends_with("a.raw")),
        "{e}"
    );
    assert_eq!(
        files_in(&f.images),
        ["a-data.qcow2", "a-initrd.img", "a.raw"]
    );
    // Sharing that disk needs no lock.
    drop(disk);
}

#[test]
fn a_relative_qcow2_backing_name_keeps_the_copy_beside_its_image() {
    let f = fixture("backing");
    std::fs::write(f.images.join("a-data.qcow2"), qcow2_bytes(Some("base.raw"))).unwrap();
    let req = CloneRequest {
        original: "a".into(),
        name: Some("b".into()),
        files: vec![f.dir.join("b.raw"), f.dir.join("b.qcow2")],
        ..CloneRequest::default()
    };
    let e = plan(&f.conn, &req).unwrap_err();
    assert!(
        matches!(&e, CloneError::RelativeBacking { backing, .. } if backing == "base.raw"),
        "{e}"
    );
    // Generated destinations stay beside the source, so the backing name keeps working.
    let p = plan(&f.conn, &CloneRequest::auto("a", Some("b"))).unwrap();
    assert_eq!(p.copies[1].destination, f.images.join("b-data.qcow2"));
    // An absolute backing name goes anywhere.
    std::fs::write(
        f.images.join("a-data.qcow2"),
        qcow2_bytes(Some("/srv/base.raw")),
    )
    .unwrap();
    assert!(plan(&f.conn, &req).is_ok());
}

#[test]
fn preserve_data_uses_the_given_files_as_they_are() {
    let f = fixture("preserve");
    let (x, y) = (f.dir.join("x.raw"), f.dir.join("y.qcow2"));
    std::fs::write(&x, b"x").unwrap();
    let mut req = CloneRequest {
        original: "a".into(),
        name: Some("b".into()),
        files: vec![x.clone(), y.clone()],
        preserve_data: true,
        ..CloneRequest::default()
    };
    let e = plan(&f.conn, &req).unwrap_err();
    assert!(
        matches!(&e, CloneError::PreservedMissing { path, .. } if *path == y),
        "{e}"
    );
    std::fs::write(&y, b"y").unwrap();
    req.macs = vec!["52:54:00:12:34:56".into()];
    let done = clone_machine(&f.conn, &req, &mut keep_going()).unwrap();
    assert!(done.copies.is_empty());
    let d = f.conn.store().load("b").unwrap();
    let devs = d.dom.devices().unwrap();
    assert_eq!(devs.disks()[0].source(), Some(x.display().to_string()));
    assert_eq!(devs.disks()[1].source(), Some(y.display().to_string()));
    assert_eq!(
        devs.interfaces()[0].mac().as_deref(),
        Some("52:54:00:12:34:56")
    );
    // The boot files are shared too: nothing was copied at all.
    assert_eq!(
        d.dom.os().unwrap().initrd(),
        Some(f.images.join("a-initrd.img").display().to_string())
    );
    assert_eq!(std::fs::read(&x).unwrap(), b"x");
    req.name = Some("c".into());
    req.macs = vec!["01:00:00:00:00:01".into()];
    assert!(matches!(plan(&f.conn, &req), Err(CloneError::BadMac(_))));
}

#[test]
fn clone_names_follow_virt_clone() {
    let none = |_: &str| false;
    assert_eq!(clone_name("vm", none), "vm-clone");
    assert_eq!(clone_name("vm", |n| n == "vm-clone"), "vm-clone1");
    assert_eq!(
        clone_name("vm", |n| n == "vm-clone" || n == "vm-clone1"),
        "vm-clone2"
    );
    assert_eq!(clone_name("vm-clone", none), "vm-clone1");
    assert_eq!(clone_name("vm-clone3", none), "vm-clone4");
    assert_eq!(clone_name("vm-clone3", |n| n == "vm-clone4"), "vm-clone5");
    assert_eq!(clone_name("vm-cloned", none), "vm-cloned-clone");
}

#[test]
fn copies_are_named_after_the_new_machine() {
    let p = |s: &str| PathBuf::from(s);
    let d = |s: &str| derived_path(Path::new(s), "vm", "new");
    assert_eq!(d("/i/vm.qcow2"), p("/i/new.qcow2"));
    assert_eq!(d("/i/vm-initrd.img"), p("/i/new-initrd.img"));
    assert_eq!(d("/i/disk.raw"), p("/i/disk-clone.raw"));
    assert_eq!(d("/i/vmdisk.raw"), p("/i/vmdisk-clone.raw"));
    assert_eq!(d("/i/noext"), p("/i/noext-clone"));
    assert_eq!(d("/i/vm.longextension"), p("/i/vm.longextension-clone"));
    assert_eq!(d("/i.d/vm"), p("/i.d/new"));
    assert_eq!(
        free_path(p("/i/new.raw"), |q| q == Path::new("/i/new.raw")),
        p("/i/new-1.raw")
    );
}
