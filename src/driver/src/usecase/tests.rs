//! Whole create and edit flows through the use-case layer, in a private set of directories.

use super::*;
use crate::connection::{Connection, DriverError};
use std::path::{Path, PathBuf};
use vireo_domain::{Mac, Uuid};

struct Home {
    dir: PathBuf,
    conn: Connection,
}

impl Home {
    fn new(tag: &str) -> Home {
        let dir = std::env::temp_dir().join(format!("vireo-uc-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let paths = crate::Paths::all_under(&dir);
        Home {
            conn: Connection::with_paths(paths),
            dir,
        }
    }

    fn file(&self, name: &str) -> PathBuf {
        let p = self.dir.join(name);
        std::fs::write(&p, b"k").unwrap();
        p
    }

    fn images(&self) -> PathBuf {
        self.conn.paths().images()
    }
}

impl Drop for Home {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn kernel_machine(name: &str, kernel: &Path) -> NewMachine {
    NewMachine::new(
        name,
        Source::Kernel(KernelBoot {
            kernel: kernel.to_owned(),
            ..KernelBoot::default()
        }),
    )
}

fn new_disk(gib: u64) -> DiskRequest {
    DiskRequest::disk(Image::New {
        at: NewImageAt::ImagesDir,
        size_bytes: gib << 30,
        format: DEFAULT_IMAGE_FORMAT,
    })
}

#[test]
fn a_plan_writes_nothing_and_is_what_create_defines() {
    let h = Home::new("plan");
    let mut m = kernel_machine("p", &h.file("vmlinuz"));
    m.disks.push(new_disk(1));
    m.uuid = Uuid::parse("6695eb01-f6a4-4304-aaa9-f2b1b2a1c2d3");
    m.networks[0].mac = Mac::parse("52:54:00:12:34:56");
    let plan = plan(&h.conn, &m).expect("plan");
    assert!(!h.images().exists(), "planning wrote something");
    assert_eq!(plan.images.len(), 1);
    assert_eq!(plan.images[0].path, h.images().join("p.qcow2"));
    assert_eq!(plan.images[0].place.part(), Part::Disk(0));
    // The same description plans the same document.
    assert_eq!(super::plan(&h.conn, &m).unwrap().xml, plan.xml);
    let made = create(&h.conn, &plan).expect("create");
    assert!(made.start_error.is_none() && made.autostart_error.is_none());
    assert_eq!(h.conn.xml("p", true).unwrap(), plan.xml);
    assert!(h.images().join("p.qcow2").is_file());
    // Planned again: the name is taken now.
    let e = super::plan(&h.conn, &m).unwrap_err();
    assert_eq!(e.parts(), vec![Part::Name], "{e}");
}

#[test]
fn invalid_choices_are_all_reported_with_their_parts() {
    let h = Home::new("bad");
    let mut m = kernel_machine("bad/name", Path::new("/k"));
    m.memory_mib = 0;
    m.vcpus = 0;
    let e = plan(&h.conn, &m).unwrap_err();
    let parts = e.parts();
    for p in [Part::Name, Part::Memory, Part::Vcpus] {
        assert!(parts.contains(&p), "{p:?} not in {parts:?}: {e}");
    }
    m.name = ".hidden".into();
    m.memory_mib = 64;
    m.vcpus = 1;
    assert_eq!(plan(&h.conn, &m).unwrap_err().parts(), vec![Part::Name]);
}

#[test]
fn an_existing_image_file_is_refused_and_kept() {
    let h = Home::new("exists");
    std::fs::create_dir_all(h.images()).unwrap();
    let old = h.images().join("e.qcow2");
    std::fs::write(&old, b"someone's data").unwrap();
    let mut m = kernel_machine("e", &h.file("vmlinuz"));
    m.disks.push(new_disk(1));
    let e = plan(&h.conn, &m).unwrap_err();
    assert!(
        matches!(&e, DriverError::ImageExists { path, .. } if *path == old),
        "{e}"
    );
    assert_eq!(e.parts(), vec![Part::Disk(0)]);
    assert_eq!(std::fs::read(&old).unwrap(), b"someone's data");
}

#[test]
fn images_made_for_a_machine_that_is_not_made_are_removed() {
    let h = Home::new("undo");
    // To start at once, and its kernel is there when planned (the disk to make is not, and
    // that is no refusal), but gone when made: the start check refuses before define.
    let kernel = h.file("vmlinuz-u");
    let mut m = kernel_machine("u", &kernel);
    m.disks.push(new_disk(1));
    m.start = true;
    let p = plan(&h.conn, &m).expect("plan");
    std::fs::remove_file(&kernel).unwrap();
    assert_eq!(
        plan(&h.conn, &m).unwrap_err().parts(),
        vec![Part::Kernel],
        "a plan checks what it can"
    );
    let e = create(&h.conn, &p).unwrap_err();
    assert_eq!(e.parts(), vec![Part::Kernel], "{e}");
    assert!(!h.images().join("u.qcow2").exists());
    assert!(h.conn.xml("u", true).is_err());
    // Another machine took the name between plan and create: define refuses, image removed.
    let mut m = kernel_machine("v", &h.file("vmlinuz"));
    m.disks.push(new_disk(1));
    let p = plan(&h.conn, &m).expect("plan");
    let other = plan(&h.conn, &kernel_machine("v", &h.file("vmlinuz"))).unwrap();
    create(&h.conn, &other).expect("the other one");
    let e = create(&h.conn, &p).unwrap_err();
    assert_eq!(e.parts(), vec![Part::Name], "{e}");
    assert!(!h.images().join("v.qcow2").exists());
}

#[test]
fn an_imported_disk_is_the_first_disk_with_the_given_format() {
    let h = Home::new("import");
    let k = h.file("vmlinuz");
    let mut m = NewMachine::new(
        "i",
        Source::DiskImage {
            path: h.dir.join("old.img"),
            format: DiskFormat::Qcow2,
            boot: KernelBoot {
                kernel: k,
                ..KernelBoot::default()
            },
        },
    );
    m.disks.push(DiskRequest {
        image: Image::Existing {
            path: "/seed.iso".into(),
            format: DiskFormat::Raw,
        },
        media: Media::Cdrom,
        readonly: false,
    });
    let xml = plan(&h.conn, &m).unwrap().xml;
    let d = vireo_domain::Domain::parse(&xml).unwrap();
    let devs = d.devices().unwrap();
    let disks = devs.disks();
    assert_eq!(
        disks[0].source(),
        Some(h.dir.join("old.img").display().to_string())
    );
    assert_eq!(disks[0].format(), Some(vireo_domain::ImageFormat::Qcow2));
    assert_eq!(disks[1].target_dev().as_deref(), Some("sda"));
}

fn firmware_machine(fw: FirmwareBoot, disks: Vec<DiskRequest>) -> NewMachine {
    let mut m = NewMachine::new("fw", Source::Firmware(fw));
    m.disks = disks;
    m
}

/// The `<os>` element of a plan's document, on one line.
fn os_of(xml: &str) -> String {
    let from = xml.find("<os>").or_else(|| xml.find("<os ")).expect("os");
    let to = xml.find("</os>").expect("/os") + 5;
    xml[from..to]
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn an_iso_is_a_cdrom_after_the_disks_and_boots_first() {
    let h = Home::new("iso");
    let iso = h.file("debian.iso");
    let fw = FirmwareBoot {
        cdrom: Some(iso.clone()),
        ..FirmwareBoot::default()
    };
    let p = plan(&h.conn, &firmware_machine(fw.clone(), vec![new_disk(1)])).unwrap();
    assert_eq!(
        os_of(&p.xml),
        "<os> <type arch='x86_64' machine='pc'>hvm</type> <boot dev='cdrom'/> <boot dev='hd'/> </os>"
    );
    let d = vireo_domain::Domain::parse(&p.xml).unwrap();
    let devs = d.devices().unwrap();
    let disks = devs.disks();
    assert_eq!(disks[0].target_dev().as_deref(), Some("vda"));
    assert_eq!(disks[1].device(), vireo_domain::DiskDevice::Cdrom);
    assert_eq!(disks[1].source(), Some(iso.display().to_string()));
    assert!(disks[1].readonly());
    assert_eq!(p.images.len(), 1);
    // A live ISO alone: only the CD-ROM is listed (a listed device must be there).
    let p = plan(&h.conn, &firmware_machine(fw, vec![])).unwrap();
    assert_eq!(
        os_of(&p.xml),
        "<os> <type arch='x86_64' machine='pc'>hvm</type> <boot dev='cdrom'/> </os>"
    );
    assert!(
        p.xml.contains("<graphics type='vnc'>"),
        "a display, as every machine"
    );
}

#[test]
fn an_imported_disk_boots_first_and_the_order_and_menu_are_as_given() {
    let h = Home::new("import");
    let img = h.file("debian.qcow2");
    let disk = DiskRequest::disk(Image::Existing {
        path: img,
        format: DiskFormat::Qcow2,
    });
    let seed = DiskRequest {
        image: Image::Existing {
            path: h.file("seed.iso"),
            format: DiskFormat::Raw,
        },
        media: Media::Cdrom,
        readonly: true,
    };
    let import = firmware_machine(FirmwareBoot::default(), vec![disk.clone(), seed.clone()]);
    assert_eq!(
        os_of(&plan(&h.conn, &import).unwrap().xml),
        "<os> <type arch='x86_64' machine='pc'>hvm</type> <boot dev='hd'/> <boot dev='cdrom'/> </os>"
    );
    let fw = FirmwareBoot {
        order: vec![vireo_domain::BootDev::Cdrom, vireo_domain::BootDev::Hd],
        menu: Some(true),
        menu_timeout_ms: Some(5000),
        ..FirmwareBoot::default()
    };
    let given = firmware_machine(fw, vec![disk.clone(), seed]);
    assert_eq!(
        os_of(&plan(&h.conn, &given).unwrap().xml),
        "<os> <type arch='x86_64' machine='pc'>hvm</type> <boot dev='cdrom'/> <boot dev='hd'/> \
         <bootmenu enable='yes' timeout='5000'/> </os>"
    );
    // A listed device that the machine does not have is refused where it is listed.
    let fw = FirmwareBoot {
        order: vec![vireo_domain::BootDev::Hd, vireo_domain::BootDev::Cdrom],
        ..FirmwareBoot::default()
    };
    let e = plan(&h.conn, &firmware_machine(fw, vec![disk])).unwrap_err();
    assert_eq!(
        e.to_string(),
        "os/boot[2]@dev='cdrom': no CD-ROM to boot from (no devices/disk with device='cdrom')"
    );
    assert_eq!(e.places(), [Place::new("domain/os/boot[2]", Some("dev"))]);
    // Nothing to boot at all.
    let e = plan(&h.conn, &firmware_machine(FirmwareBoot::default(), vec![])).unwrap_err();
    assert!(
        e.to_string()
            .contains("nothing to boot: the firmware needs a disk or a CD-ROM"),
        "{e}"
    );
}

#[test]
fn a_uefi_machine_is_firmware_efi_on_the_pc_machine() {
    let h = Home::new("uefi");
    let iso = h.file("debian.iso");
    let fw = FirmwareBoot {
        cdrom: Some(iso),
        uefi: true,
        ..FirmwareBoot::default()
    };
    let p = plan(&h.conn, &firmware_machine(fw.clone(), vec![new_disk(1)])).unwrap();
    assert_eq!(
        os_of(&p.xml),
        "<os firmware='efi'> <type arch='x86_64' machine='pc'>hvm</type> <boot dev='cdrom'/> \
         <boot dev='hd'/> </os>"
    );
    // A code image of the user's: libvirt's manual UEFI setup.
    let own = FirmwareBoot {
        loader: Some("/opt/fw/OVMF_CODE_4M.fd".into()),
        ..fw.clone()
    };
    assert_eq!(
        os_of(&plan(&h.conn, &firmware_machine(own, vec![])).unwrap().xml),
        "<os> <type arch='x86_64' machine='pc'>hvm</type> <loader readonly='yes' \
         type='pflash'>/opt/fw/OVMF_CODE_4M.fd</loader> <boot dev='cdrom'/> </os>"
    );
    // A machine type the user names is kept; one without PCI is refused for UEFI.
    let mut m = firmware_machine(fw.clone(), vec![]);
    m.machine = Some("pc-i440fx-7.2".into());
    assert!(plan(&h.conn, &m)
        .unwrap()
        .xml
        .contains("<type arch='x86_64' machine='pc-i440fx-7.2'>hvm</type>"));
    m.machine = Some("vireo".into());
    let e = plan(&h.conn, &m).unwrap_err();
    assert_eq!(
        e.to_string(),
        "os@firmware='efi': UEFI firmware needs the pc machine: OVMF finds its disks and \
         screen on its PCI bus (use <type machine='pc'>)"
    );
    assert_eq!(e.places(), [Place::new("domain/os", Some("firmware"))]);
}

#[test]
fn the_machine_type_is_the_users_or_the_default() {
    let h = Home::new("machine");
    let kernel = h.file("vmlinuz");
    let mut m = kernel_machine("k", &kernel);
    assert!(plan(&h.conn, &m)
        .unwrap()
        .xml
        .contains("<type arch='x86_64'>hvm</type>"));
    m.machine = Some("pc".into());
    assert!(plan(&h.conn, &m)
        .unwrap()
        .xml
        .contains("<type arch='x86_64' machine='pc'>hvm</type>"));
    // A firmware boot is on pc unless the user names a machine: the same document as with
    // machine pc named (the video head the standard VGA), and Vireo's own machine when named.
    let mut bios = firmware_machine(FirmwareBoot::default(), vec![new_disk(1)]);
    bios.uuid = Uuid::parse("6695eb01-f6a4-4304-aaa9-f2b1b2a1c2d3");
    bios.networks[0].mac = Mac::parse("52:54:00:12:34:56");
    let defaulted = plan(&h.conn, &bios).unwrap().xml;
    assert!(
        defaulted.contains("<type arch='x86_64' machine='pc'>hvm</type>"),
        "{defaulted}"
    );
    assert!(
        defaulted.contains("<model type='vga' vram='16384' heads='1' primary='yes'/>"),
        "{defaulted}"
    );
    bios.machine = Some("pc".into());
    assert_eq!(plan(&h.conn, &bios).unwrap().xml, defaulted);
    for named in ["vireo", "microvm"] {
        bios.machine = Some(named.into());
        let xml = plan(&h.conn, &bios).unwrap().xml;
        assert!(
            xml.contains(&format!("<type arch='x86_64' machine='{named}'>hvm</type>")),
            "{xml}"
        );
        assert!(
            xml.contains("<model type='virtio' heads='1' primary='yes'/>"),
            "{xml}"
        );
    }
    // Defined, the defaulted machine's virtio devices get their PCI addresses, as a named pc
    // machine's do; a named vireo machine has no PCI bus.
    let pci = |name: &str, machine: Option<&str>| {
        let mut m = firmware_machine(
            FirmwareBoot::default(),
            vec![DiskRequest::disk(Image::Existing {
                path: h.file(&format!("{name}.img")),
                format: DiskFormat::Raw,
            })],
        );
        m.name = name.into();
        m.machine = machine.map(str::to_owned);
        create(&h.conn, &plan(&h.conn, &m).unwrap()).unwrap();
        let xml = h.conn.xml(name, true).unwrap();
        xml.lines()
            .filter(|l| l.contains("<address type='pci'"))
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let defaulted = pci("fw-default", None);
    assert!(!defaulted.is_empty());
    assert_eq!(defaulted, pci("fw-pc", Some("pc")));
    assert_eq!(pci("fw-vireo", Some("vireo")), Vec::<String>::new());
}

#[test]
fn an_xml_source_is_defined_as_written_and_never_replaces_a_machine() {
    let h = Home::new("xml");
    let text = "<domain type='kvm'>\n  <name>x</name>\n  <!-- mine -->\n  <memory>65536</memory>\n  <os><type>hvm</type></os>\n</domain>\n";
    let m = NewMachine::new("", Source::Xml(text.into()));
    let p = plan(&h.conn, &m).unwrap();
    assert_eq!((p.name.as_str(), p.xml.as_str()), ("x", text));
    create(&h.conn, &p).unwrap();
    assert!(h.conn.xml("x", true).unwrap().contains("<!-- mine -->"));
    let e = plan(&h.conn, &m).unwrap_err();
    assert_eq!(e.parts(), vec![Part::Name]);
}

#[test]
fn the_quick_machine_plans_without_writing() {
    let h = Home::new("quick");
    let k = h.file("vmlinuz-6.1.0-test");
    let mut m = NewMachine::new(
        "q",
        Source::HostKernel(HostKernel {
            kernel: Some(k.clone()),
            ..HostKernel::default()
        }),
    );
    m.networks.clear();
    // busybox-static is a build requirement of this project (README set-up).
    let p = plan(&h.conn, &m).expect("plan");
    assert!(!h.images().exists());
    let initrd = h.images().join("q-initrd.img");
    assert_eq!(p.quick.as_ref().map(|q| &q.initrd), Some(&initrd));
    assert!(p
        .xml
        .contains(&format!("<initrd>{}</initrd>", initrd.display())));
    assert!(p.xml.contains(crate::quick::QUICK_CMDLINE));
    let mut to_start = m.clone();
    to_start.start = true;
    plan(&h.conn, &to_start).expect("the initramfs still to build is no refusal");
    create(&h.conn, &p).expect("create");
    assert!(initrd.is_file());
}

/// A machine `m` made by `create`, booting `kernel`, not started.
fn made(h: &Home, kernel: &Path) {
    let mut m = kernel_machine("m", kernel);
    m.networks.clear();
    create(&h.conn, &plan(&h.conn, &m).unwrap()).unwrap();
}

fn edit_with(h: &Home, f: impl FnOnce(&mut vireo_domain::Domain)) -> Result<Edited, DriverError> {
    edit(
        &h.conn,
        "m",
        |d: &mut vireo_domain::Domain| -> Result<(), DriverError> {
            f(d);
            Ok(())
        },
    )
}

#[test]
fn an_edit_that_would_stop_a_machine_from_starting_is_refused() {
    let h = Home::new("ed-break");
    made(&h, &h.file("vmlinuz"));
    let stored = h.conn.xml("m", true).unwrap();
    let e = edit_with(&h, |d| d.os_mut().set_kernel(Some("/nonexistent/k"))).unwrap_err();
    assert_eq!(e.parts(), vec![Part::Kernel], "{e}");
    let e = edit_with(&h, |d| d.set_vcpu(0)).unwrap_err();
    assert_eq!(e.parts(), vec![Part::Vcpus], "{e}");
    let e = edit_xml(&h.conn, "m", &stored.replace("</name>", "</nam>")).unwrap_err();
    assert!(matches!(e, DriverError::Invalid(_)), "{e}");
    assert_eq!(
        h.conn.xml("m", true).unwrap(),
        stored,
        "a refused edit was stored"
    );
    assert!(edit_with(&h, |d| d.set_title(Some("T"))).unwrap().changed);
    let same = edit_xml(&h.conn, "m", &h.conn.xml("m", true).unwrap()).unwrap();
    assert!(!same.changed);
}

#[test]
fn a_machine_that_never_started_here_stays_editable_but_gets_no_new_refusal() {
    let h = Home::new("ed-never");
    let kernel = h.file("vmlinuz");
    made(&h, &kernel);
    std::fs::remove_file(&kernel).unwrap();
    edit_with(&h, |d| d.set_title(Some("Imported"))).unwrap();
    edit_with(&h, |d| d.os_mut().set_cmdline(Some("ü"))).unwrap();
    // With the kernel back, the stored command line is the refusal, and a fix of the kernel
    // alone is refused until the command line is right too.
    let k = h.file("vmlinuz2").display().to_string();
    let e = edit_with(&h, |d| d.os_mut().set_kernel(Some(&k))).unwrap_err();
    assert_eq!(e.parts(), vec![Part::Cmdline], "{e}");
    edit_with(&h, |d| {
        d.os_mut().set_kernel(Some(&k));
        d.os_mut().set_cmdline(Some("console=ttyS0"));
    })
    .unwrap();
}
