//! The domain XML the creation wizard defines, built from what the user chose with
//! `vireo-domain`'s `DomainBuilder` (through the driver's re-export), in the shape `vireoctl
//! create` writes, so both tools produce the same machines.

use std::path::PathBuf;
use vireo_driver::domain::{
    BootDev, DiskSpec, Domain, DomainBuilder, Element, ImageFormat, InterfaceSpec, InterfaceType,
};

/// Everything the wizard's pages collect.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MachineSpec {
    pub name: String,
    pub memory_mib: u32,
    pub vcpus: u32,
    pub kernel: PathBuf,
    pub initrd: Option<PathBuf>,
    pub cmdline: String,
    /// Disk image to attach (existing, or created by the wizard before defining).
    pub disk: Option<Disk>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disk {
    pub path: PathBuf,
    /// "qcow2" or "raw".
    pub format: String,
}

/// The image format a file name suggests (qemu-img's own probing is not safe for raw files
/// written by a guest, so the user's file name decides and the review shows it).
pub fn format_for(path: &std::path::Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()) {
        Some(e) if e.eq_ignore_ascii_case("qcow2") => "qcow2",
        _ => "raw",
    }
}

fn builder(spec: &MachineSpec) -> DomainBuilder {
    let mut b = DomainBuilder::new(&spec.name)
        .memory(u64::from(spec.memory_mib) << 20)
        .vcpus(spec.vcpus)
        .kernel(&spec.kernel.to_string_lossy())
        .serial_console(false)
        .inputs(false)
        .memballoon_none(false)
        .rng(false)
        .video(None)
        .interface(InterfaceSpec {
            iface_type: InterfaceType::User,
            mac: None,
            source: None,
            model: Some("virtio".into()),
            backend: None,
            port_forwards: Vec::new(),
        });
    if let Some(initrd) = &spec.initrd {
        b = b.initrd(&initrd.to_string_lossy());
    }
    if !spec.cmdline.trim().is_empty() {
        b = b.cmdline(spec.cmdline.trim());
    }
    if let Some(disk) = &spec.disk {
        b = b.disk(DiskSpec::file(
            &disk.path.to_string_lossy(),
            ImageFormat::from(disk.format.as_str()),
            "vda",
        ));
    }
    b
}

/// The builder validates; a spec it refuses (a name or size the form let through) is built
/// with placeholders and the user's values are then written through the typed views, so that
/// the driver's validation on define names the field (the wizard maps its path to the form).
fn build(spec: &MachineSpec) -> Option<Domain> {
    if let Ok(d) = builder(spec).build() {
        return Some(d);
    }
    let safe = MachineSpec {
        name: "machine".into(),
        memory_mib: spec.memory_mib.max(1),
        vcpus: spec.vcpus.max(1),
        disk: spec.disk.as_ref().map(|d| Disk {
            path: d.path.clone(),
            format: "raw".into(),
        }),
        ..spec.clone()
    };
    let mut d = builder(&safe).build().ok()?;
    d.set_name(&spec.name);
    d.set_memory(u64::from(spec.memory_mib) << 20);
    d.set_current_memory(Some(u64::from(spec.memory_mib) << 20));
    d.set_vcpu(spec.vcpus);
    if let (Some(disk), Some(mut view)) = (&spec.disk, d.devices_mut().disk_mut(0)) {
        view.set_driver(Some("qemu"), Some(&ImageFormat::from(disk.format.as_str())));
    }
    Some(d)
}

pub fn domain_xml(spec: &MachineSpec) -> String {
    let Some(mut d) = build(spec) else {
        // Unreachable with the placeholders above; an empty document is refused on define
        // with a parse error rather than defining something the user did not ask for.
        return String::new();
    };
    // libvirt adds the boot entry on define even for a kernel boot.
    d.os_mut().set_boot_devs(&[BootDev::Hd]);
    let mut devs = d.devices_mut();
    // Local clients only (the console uses the unix socket): no TCP port, no password.
    devs.add_new_machine_consoles(Some(
        Element::new("graphics")
            .with_attr("type", "vnc")
            .with_child(Element::new("listen").with_attr("type", "none")),
    ));
    d.to_xml()
}

/// Which wizard field a validation error (its XML path) concerns.
pub fn field_for_path(path: &str) -> &'static str {
    // The last element step: attributes (@unit) and positions ([2]) belong to it.
    let last = path
        .rsplit('/')
        .find(|s| !s.is_empty() && !s.starts_with('@'))
        .unwrap_or("");
    let last = last.split('[').next().unwrap_or("");
    match last {
        "name" => "name",
        "memory" | "currentMemory" => "memory",
        "vcpu" => "vcpus",
        "kernel" => "kernel",
        "initrd" => "initrd",
        "cmdline" => "cmdline",
        "source" | "disk" => "disk",
        _ => "",
    }
}

/// Which wizard field a driver message concerns. The driver passes vireo-domain's errors on
/// as they are (`line 3, column 5: domain/memory: invalid value ...`, one per line), so the
/// element path is found wherever it stands in the first line, not only at its start.
pub fn field_for_message(message: &str) -> &'static str {
    let first = message.lines().next().unwrap_or("");
    first
        .split(": ")
        .find(|part| part.starts_with("domain/") || part.starts_with("/domain/"))
        .map(field_for_path)
        .unwrap_or("")
}

/// Which wizard field a refusal of the driver's define concerns: a name another machine has
/// (the store's refusal names no element), or the element path in a validation message.
pub fn field_for_error(error: &vireo_driver::DriverError) -> &'static str {
    match error {
        vireo_driver::DriverError::Store(vireo_driver::store::StoreError::NameTaken { .. }) => {
            "name"
        }
        e => field_for_message(&e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> MachineSpec {
        MachineSpec {
            name: "a<b".into(),
            memory_mib: 512,
            vcpus: 2,
            kernel: "/boot/vmlinuz".into(),
            initrd: Some("/boot/initrd.img".into()),
            cmdline: "console=ttyS0 x='1'".into(),
            disk: Some(Disk {
                path: "/tmp/d.qcow2".into(),
                format: "qcow2".into(),
            }),
        }
    }

    #[test]
    fn the_driver_accepts_the_document_and_reads_back_the_choices() {
        let mut s = spec();
        s.name = "wiz".into();
        let xml = domain_xml(&s);
        let d = vireo_driver::Definition::parse(&xml).expect("driver parses wizard XML");
        assert_eq!(d.name, "wiz");
        assert_eq!((d.memory_kib, d.vcpus), (512 * 1024, 2));
        assert!(
            xml.contains("<cmdline>console=ttyS0 x='1'</cmdline>"),
            "{xml}"
        );
        assert!(xml.contains("<source file='/tmp/d.qcow2'/>"));
    }

    #[test]
    fn names_are_escaped() {
        assert!(domain_xml(&spec()).contains("<name>a&lt;b</name>"));
    }

    #[test]
    fn refused_values_still_reach_the_driver_with_their_path() {
        let mut s = spec();
        s.name = "bad/name".into();
        s.memory_mib = 0;
        let xml = domain_xml(&s);
        let errs = vireo_driver::Definition::parse(&xml).expect_err("invalid");
        let fields: Vec<&str> = errs.iter().map(|e| field_for_path(&e.path)).collect();
        assert!(
            fields.contains(&"name") && fields.contains(&"memory"),
            "{errs}"
        );
    }

    #[test]
    fn libvirt_gives_it_back_unchanged() {
        let dir = std::env::temp_dir().join(format!("vireo-wizard-virsh-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("d.xml");
        let mut s = spec();
        s.name = "wiz".into();
        let xml = domain_xml(&s);
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
        let mut s = spec();
        s.name = "wiz".into();
        std::fs::write(&file, domain_xml(&s)).unwrap();
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

    #[test]
    fn driver_messages_map_to_fields() {
        let mut s = spec();
        s.name = "wiz".into();
        s.memory_mib = 0;
        let e = vireo_driver::Definition::parse(&domain_xml(&s)).expect_err("memory 0");
        assert_eq!(field_for_message(&e.to_string()), "memory", "{e}");
        assert_eq!(field_for_message("domain/vcpu: invalid"), "vcpus");
        assert_eq!(field_for_message("something else"), "");
    }

    #[test]
    fn driver_errors_map_to_fields() {
        use vireo_driver::store::StoreError;
        use vireo_driver::DriverError;
        let taken = DriverError::Store(StoreError::NameTaken {
            name: "wiz".into(),
            uuid: "u".into(),
        });
        assert_eq!(field_for_error(&taken), "name");
        let mut s = spec();
        s.name = "wiz".into();
        s.vcpus = 0;
        let e = vireo_driver::Definition::parse(&domain_xml(&s)).expect_err("vcpu 0");
        let e = DriverError::from(vireo_driver::store::StoreError::Domain(e));
        assert_eq!(field_for_error(&e), "vcpus", "{e}");
    }

    #[test]
    fn error_paths_map_to_fields() {
        assert_eq!(field_for_path("/domain/name"), "name");
        assert_eq!(field_for_path("/domain/memory/@unit"), "memory");
        assert_eq!(field_for_path("/domain/os/kernel"), "kernel");
        assert_eq!(field_for_path("/domain/devices"), "");
    }
}
