//! The wizard's mapping: from what its pages collect to the driver's description of a new
//! machine ([`vireo_driver::usecase::NewMachine`]), and from the driver's typed refusals back
//! to the field each belongs to. The machine's shape, its XML and every check are the driver's,
//! shared with `vireoctl create`, so both make the same machine from the same choices.

use std::path::{Path, PathBuf};
use vireo_driver::usecase::{
    self, DiskRequest, FirmwareBoot, HostKernel, Image, KernelBoot, NewImageAt, NewMachine, Part,
};
use vireo_driver::{osinfo, DriverError};

use super::new_machine::Source;

/// Everything the wizard's pages collect, as the widgets hold it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Form {
    pub source: Source,
    pub name: String,
    pub memory_mib: u32,
    pub vcpus: u32,
    pub kernel: String,
    pub initrd: String,
    pub cmdline: String,
    /// The disk image to import (the disk image source).
    pub disk: String,
    /// Size of the new disk in GiB (the kernel source; 0 for none).
    pub new_disk_gib: u32,
    /// The document (the XML source).
    pub xml: String,
    /// The operating system image: an ISO for the CD-ROM drive, or a disk image to import.
    pub image: String,
    /// The system detected (or chosen) for it, as libosinfo names it.
    pub os_id: Option<String>,
    /// UEFI rather than the BIOS (the operating system image source).
    pub uefi: bool,
}

fn path(text: &str) -> Option<PathBuf> {
    let t = text.trim();
    (!t.is_empty()).then(|| PathBuf::from(t))
}

/// The machine the form describes. A machine made from a kernel or a disk image starts at
/// once; an imported document is only defined.
pub fn describe(form: &Form) -> NewMachine {
    let boot = KernelBoot {
        kernel: path(&form.kernel).unwrap_or_default(),
        initrd: path(&form.initrd),
        cmdline: Some(form.cmdline.trim().to_owned()).filter(|c| !c.is_empty()),
    };
    let source = match form.source {
        Source::Kernel => usecase::Source::Kernel(boot),
        Source::DiskImage => {
            let disk = path(&form.disk).unwrap_or_default();
            usecase::Source::DiskImage {
                // The wizard has no format field: the file name the user picked pre-fills it.
                format: usecase::format_for_name(&disk),
                path: disk,
                boot,
            }
        }
        Source::Xml => usecase::Source::Xml(form.xml.clone()),
        Source::OsImage => {
            let image = path(&form.image).unwrap_or_default();
            let iso = usecase::is_iso_name(&image);
            usecase::Source::Firmware(FirmwareBoot {
                cdrom: iso.then(|| image.clone()),
                uefi: form.uefi,
                ..FirmwareBoot::default()
            })
        }
    };
    let mut m = NewMachine::new(form.name.trim(), source);
    m.memory_mib = u64::from(form.memory_mib);
    m.vcpus = form.vcpus;
    m.os = form.os_id.clone();
    if let (Source::OsImage, Some(image)) = (form.source, path(&form.image)) {
        if !usecase::is_iso_name(&image) {
            // A disk image boots as it is, from its own boot loader: imported, never copied.
            m.disks.push(DiskRequest::disk(Image::Existing {
                format: usecase::format_for_name(&image),
                path: image,
            }));
        }
    }
    // The installer's empty disk, or the kernel's.
    let iso = form.source == Source::OsImage && usecase::is_iso_name(Path::new(form.image.trim()));
    if (form.source == Source::Kernel || iso) && form.new_disk_gib > 0 {
        m.disks.push(DiskRequest::disk(Image::New {
            at: NewImageAt::ImagesDir,
            size_bytes: u64::from(form.new_disk_gib) << 30,
            format: usecase::DEFAULT_IMAGE_FORMAT,
        }));
    }
    m.start = form.source != Source::Xml;
    m
}

/// What the wizard shows and pre-fills for an operating system image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageProfile {
    /// An ISO (else a disk image, imported as it is and never looked into).
    pub iso: bool,
    /// The ISO is a live system (it runs without installing).
    pub live: bool,
    pub profile: osinfo::Profile,
    /// Why the generic profile was taken, for the log (the form says it in its own words).
    pub note: Option<String>,
}

/// Detects the system on `image`: an ISO's labels against Debian's osinfo-db (read once per
/// process); a disk image, or media the database does not know, gets the generic profile.
/// Never a refusal: any PC image may still boot. Reads the file and the database: call it
/// off the main thread.
pub fn detect_image(image: &Path) -> ImageProfile {
    let host = osinfo::HostLimits::here();
    let iso = usecase::is_iso_name(image);
    if !iso {
        return ImageProfile {
            iso,
            live: false,
            profile: osinfo::Profile::generic(&host),
            note: None,
        };
    }
    let choice = osinfo::OsChoice::Detect { require: false };
    let resolved = osinfo::shared_db()
        .map_err(|e| e.to_string())
        .and_then(|db| osinfo::resolve(db, &choice, Some(image), &host).map_err(|e| e.to_string()));
    match resolved {
        Ok(r) => ImageProfile {
            iso,
            live: r.live,
            profile: r.profile,
            note: r.note,
        },
        Err(why) => ImageProfile {
            iso,
            live: false,
            profile: osinfo::Profile::generic(&host),
            note: Some(why),
        },
    }
}

/// The quick machine: this computer's kernel, started at once.
pub fn describe_quick(name: &str, memory_mib: u32) -> NewMachine {
    let mut m = NewMachine::new(name, usecase::Source::HostKernel(HostKernel::default()));
    m.memory_mib = u64::from(memory_mib);
    m.start = true;
    m
}

/// The wizard field (its key in the details page) a refusal belongs to, from the parts of
/// the machine the driver names; `None` when no field shows it.
pub fn field_for(source: Source, error: &DriverError) -> Option<&'static str> {
    error.parts().into_iter().find_map(|part| match part {
        Part::Name => Some("name"),
        Part::Memory => Some("memory"),
        Part::Vcpus => Some("vcpus"),
        Part::Kernel => Some("kernel"),
        Part::Initrd => Some("initrd"),
        Part::Cmdline => Some("cmdline"),
        Part::Disk(_) if source == Source::DiskImage => Some("disk"),
        // The one disk Vireo makes for an operating system image is the installer's new one.
        Part::Disk(_)
            if source == Source::OsImage
                && matches!(
                    error,
                    DriverError::ImageExists { .. } | DriverError::ImageCreate { .. }
                ) =>
        {
            Some("new-disk")
        }
        Part::Disk(_) if source == Source::OsImage => Some("image"),
        Part::Disk(_) => Some("new-disk"),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use vireo_driver::domain::{Mac, Uuid};
    use vireo_driver::{Connection, Paths};

    /// A connection on directories that do not exist: planning reads, never writes.
    fn nowhere() -> Connection {
        let root = std::path::Path::new("/golden");
        Connection::with_paths(Paths::under(
            &root.join("config"),
            &root.join("runtime"),
            &root.join("data"),
            &root.join("cache"),
        ))
    }

    fn form() -> Form {
        Form {
            source: Source::Kernel,
            name: "a<b".into(),
            memory_mib: 512,
            vcpus: 2,
            kernel: "/boot/vmlinuz".into(),
            initrd: "/boot/initrd.img".into(),
            cmdline: "console=ttyS0 x='1'".into(),
            ..Form::default()
        }
    }

    fn disk_form() -> Form {
        Form {
            source: Source::DiskImage,
            disk: "/tmp/d.qcow2".into(),
            ..form()
        }
    }

    /// The document only: the start check, which reads the (made-up) files, is left out.
    fn xml(form: &Form) -> Result<String, DriverError> {
        let mut m = describe(form);
        m.start = false;
        usecase::plan(&nowhere(), &m).map(|p| p.xml)
    }

    #[test]
    fn the_driver_accepts_the_document_and_reads_back_the_choices() {
        let mut f = disk_form();
        f.name = "wiz".into();
        let xml = xml(&f).expect("plan");
        let d = vireo_driver::Definition::parse(&xml).expect("driver parses wizard XML");
        assert_eq!(d.name, "wiz");
        assert_eq!((d.memory_kib, d.vcpus), (512 * 1024, 2));
        assert!(
            xml.contains("<cmdline>console=ttyS0 x='1'</cmdline>"),
            "{xml}"
        );
        assert!(xml.contains("<source file='/tmp/d.qcow2'/>"));
        assert!(xml.contains("<driver name='qemu' type='qcow2'/>"), "{xml}");
    }

    #[test]
    fn names_are_escaped() {
        assert!(xml(&form()).unwrap().contains("<name>a&lt;b</name>"));
    }

    #[test]
    fn refused_values_reach_their_fields() {
        let mut f = form();
        f.name = "bad/name".into();
        f.memory_mib = 0;
        let e = xml(&f).expect_err("invalid");
        let parts = e.parts();
        assert!(
            parts.contains(&Part::Name) && parts.contains(&Part::Memory),
            "{e}"
        );
        assert_eq!(field_for(Source::Kernel, &e), Some("name"));
        f.name = "wiz".into();
        assert_eq!(
            field_for(Source::Kernel, &xml(&f).unwrap_err()),
            Some("memory")
        );
        f.memory_mib = 512;
        f.vcpus = 0;
        assert_eq!(
            field_for(Source::Kernel, &xml(&f).unwrap_err()),
            Some("vcpus")
        );
    }

    #[test]
    fn driver_errors_map_to_fields() {
        use vireo_driver::store::StoreError;
        let taken = DriverError::Store(StoreError::NameTaken {
            name: "wiz".into(),
            uuid: "u".into(),
        });
        assert_eq!(field_for(Source::Kernel, &taken), Some("name"));
        assert_eq!(
            field_for(Source::Kernel, &DriverError::NotFound("x".into())),
            None
        );
        let exists = DriverError::ImageExists {
            path: "/x".into(),
            place: usecase::Place::new("domain/devices/disk/source", Some("file")),
        };
        assert_eq!(field_for(Source::Kernel, &exists), Some("new-disk"));
        assert_eq!(field_for(Source::DiskImage, &exists), Some("disk"));
        assert_eq!(field_for(Source::OsImage, &exists), Some("new-disk"));
        let missing = DriverError::Unsupported {
            error: vireo_driver::translate::TranslateError {
                path: "devices/disk[2]/source@file".into(),
                message: "no such file".into(),
            },
            place: usecase::Place::new("domain/devices/disk[2]/source", Some("file")),
        };
        assert_eq!(field_for(Source::OsImage, &missing), Some("image"));
    }

    #[test]
    fn a_kernel_machine_gets_a_new_disk_in_the_images_directory() {
        let mut f = form();
        f.name = "wiz".into();
        f.new_disk_gib = 3;
        let mut m = describe(&f);
        assert!(m.start);
        m.start = false;
        let plan = usecase::plan(&nowhere(), &m).unwrap();
        assert_eq!(
            plan.images[0].path,
            PathBuf::from("/golden/data/vireo/images/wiz.qcow2")
        );
        assert_eq!(plan.images[0].size_bytes, 3 << 30);
    }

    #[test]
    fn an_operating_system_disk_image_is_imported_and_boots_its_own_loader() {
        let f = Form {
            source: Source::OsImage,
            name: "appliance".into(),
            memory_mib: 1024,
            vcpus: 1,
            image: "/images/appliance.QCOW2".into(),
            new_disk_gib: 20,
            uefi: true,
            ..Form::default()
        };
        let m = describe(&f);
        assert!(m.start);
        let doc = xml(&f).unwrap();
        assert!(doc.contains("<os firmware='efi'>"), "{doc}");
        assert!(
            doc.contains("<source file='/images/appliance.QCOW2'/>"),
            "{doc}"
        );
        assert!(doc.contains("type='qcow2'"), "{doc}");
        assert!(!doc.contains("device='cdrom'"), "{doc}");
        assert!(!doc.contains("install-cdrom"), "{doc}");
        // No new disk beside the image: the image is the system's disk.
        let plan = usecase::plan(&nowhere(), &{
            let mut m = describe(&f);
            m.start = false;
            m
        })
        .unwrap();
        assert!(plan.images.is_empty());
        // A live ISO without a disk is tried, not installed.
        let live = Form {
            image: "/images/live.iso".into(),
            new_disk_gib: 0,
            uefi: false,
            ..f
        };
        let doc = xml(&live).unwrap();
        assert!(
            doc.contains("device='cdrom'") && !doc.contains("device='disk'"),
            "{doc}"
        );
        assert!(!doc.contains("install-cdrom"), "{doc}");
    }

    #[test]
    fn a_kernel_that_is_not_there_is_refused_before_the_review() {
        let mut f = form();
        f.name = "wiz".into();
        f.kernel = "/nonexistent/vmlinuz".into();
        f.new_disk_gib = 3;
        let e = usecase::plan(&nowhere(), &describe(&f)).unwrap_err();
        assert_eq!(field_for(Source::Kernel, &e), Some("kernel"), "{e}");
    }

    #[test]
    fn libvirt_gives_it_back_unchanged() {
        let dir = std::env::temp_dir().join(format!("vireo-wizard-virsh-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("d.xml");
        let mut f = disk_form();
        f.name = "wiz".into();
        let xml = xml(&f).unwrap();
        std::fs::write(&file, &xml).unwrap();
        let out = std::process::Command::new("virsh")
            .args(["-q", "-c", "test:///default"])
            .arg(format!("define {}; dumpxml wiz", file.display()))
            .output()
            .expect("virsh (libvirt-clients) must be installed");
        let _ = std::fs::remove_dir_all(&dir);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // The test driver names the interface's host side; everything else is ours. libvirt
        // writes an apostrophe in text as &apos;, vireo-domain as itself (same text).
        let back: String = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.trim_start().starts_with("<target dev='testnet"))
            .map(|l| format!("{}\n", l.replace("&apos;", "'")))
            .collect();
        assert_eq!(back, xml);
    }

    #[test]
    fn libvirt_schema_accepts_it() {
        // virt-xml-validate is part of the build requirements (libvirt-clients).
        let dir = std::env::temp_dir().join(format!("vireo-wizard-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("d.xml");
        let mut f = disk_form();
        f.name = "wiz".into();
        std::fs::write(&file, xml(&f).unwrap()).unwrap();
        let out = std::process::Command::new("virt-xml-validate")
            .arg(&file)
            .arg("domain")
            .output()
            .expect("virt-xml-validate (libvirt-clients) must be installed");
        let _ = std::fs::remove_dir_all(&dir);
        assert!(
            out.status.success(),
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The golden files of `vireoctl create` (tests/golden/create): the wizard, given the same
    /// choices, plans the same document byte for byte. The UUID and MAC are set on the
    /// description the form maps to, as `--uuid` and `mac=` set them on the command line; the
    /// start (not part of the document) is left out, as the golden files name no real files.
    #[test]
    fn the_wizard_makes_the_golden_machines_of_vireoctl_create() {
        let golden = |case: &str| {
            let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("tests/golden/create")
                .join(format!("{case}.xml"));
            std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        };
        let cases = [
            (
                "kernel-boot",
                Form {
                    source: Source::Kernel,
                    name: "kernel-boot".into(),
                    memory_mib: 1024,
                    vcpus: 2,
                    kernel: "/golden/vmlinuz".into(),
                    initrd: "/golden/initrd.img".into(),
                    cmdline: "console=ttyS0 quiet".into(),
                    ..Form::default()
                },
            ),
            (
                "disk-import-qcow2",
                Form {
                    source: Source::DiskImage,
                    name: "disk-import-qcow2".into(),
                    memory_mib: 512,
                    vcpus: 1,
                    kernel: "/golden/vmlinuz".into(),
                    cmdline: "root=/dev/vda1 console=ttyS0".into(),
                    disk: "/golden/disk.qcow2".into(),
                    ..Form::default()
                },
            ),
            (
                "created-disk",
                Form {
                    source: Source::Kernel,
                    name: "created-disk".into(),
                    memory_mib: 2048,
                    vcpus: 2,
                    kernel: "/golden/vmlinuz".into(),
                    new_disk_gib: 20,
                    ..Form::default()
                },
            ),
            (
                // The operating system image source with a detected installer ISO.
                "osinfo-install",
                Form {
                    source: Source::OsImage,
                    name: "osinfo-install".into(),
                    memory_mib: 1024,
                    vcpus: 1,
                    image: "/golden/debian-11.5.0-amd64-netinst.iso".into(),
                    os_id: Some("http://debian.org/debian/11".into()),
                    new_disk_gib: 10,
                    ..Form::default()
                },
            ),
        ];
        for (case, form) in cases {
            let mut m = describe(&form);
            m.uuid = Uuid::parse("6695eb01-f6a4-4304-aaa9-f2b1b2a1c2d3");
            m.networks[0].mac = Mac::parse("52:54:00:12:34:56");
            m.start = false;
            let plan = usecase::plan(&nowhere(), &m).unwrap_or_else(|e| panic!("{case}: {e}"));
            assert_eq!(plan.xml, golden(case), "{case}");
        }
    }
}
