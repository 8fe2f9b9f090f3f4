//! The domain XML the creation wizard defines, built from what the user chose. Plain text with
//! escaping, in the shape `vireoctl create` writes, so both tools produce the same machines.

use std::fmt::Write as _;
use std::path::PathBuf;

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

fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\'' => out.push_str("&apos;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

/// The image format a file name suggests (qemu-img's own probing is not safe for raw files
/// written by a guest, so the user's file name decides and the review shows it).
pub fn format_for(path: &std::path::Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()) {
        Some(e) if e.eq_ignore_ascii_case("qcow2") => "qcow2",
        _ => "raw",
    }
}

pub fn domain_xml(spec: &MachineSpec) -> String {
    let mut x = String::new();
    let _ = writeln!(x, "<domain type='kvm'>");
    let _ = writeln!(x, "  <name>{}</name>", esc(&spec.name));
    let _ = writeln!(x, "  <memory unit='MiB'>{}</memory>", spec.memory_mib);
    let _ = writeln!(x, "  <vcpu>{}</vcpu>", spec.vcpus);
    let _ = writeln!(x, "  <os>");
    let _ = writeln!(x, "    <type arch='x86_64'>hvm</type>");
    let _ = writeln!(
        x,
        "    <kernel>{}</kernel>",
        esc(&spec.kernel.to_string_lossy())
    );
    if let Some(initrd) = &spec.initrd {
        let _ = writeln!(x, "    <initrd>{}</initrd>", esc(&initrd.to_string_lossy()));
    }
    if !spec.cmdline.trim().is_empty() {
        let _ = writeln!(x, "    <cmdline>{}</cmdline>", esc(spec.cmdline.trim()));
    }
    let _ = writeln!(x, "  </os>");
    let _ = writeln!(x, "  <on_poweroff>destroy</on_poweroff>");
    let _ = writeln!(x, "  <on_reboot>restart</on_reboot>");
    let _ = writeln!(x, "  <on_crash>destroy</on_crash>");
    let _ = writeln!(x, "  <devices>");
    if let Some(disk) = &spec.disk {
        let _ = writeln!(x, "    <disk type='file' device='disk'>");
        let _ = writeln!(
            x,
            "      <driver name='qemu' type='{}'/>",
            esc(&disk.format)
        );
        let _ = writeln!(
            x,
            "      <source file='{}'/>",
            esc(&disk.path.to_string_lossy())
        );
        let _ = writeln!(x, "      <target dev='vda' bus='virtio'/>");
        let _ = writeln!(x, "    </disk>");
    }
    let _ = writeln!(x, "    <interface type='user'>");
    let _ = writeln!(x, "      <model type='virtio'/>");
    let _ = writeln!(x, "    </interface>");
    let _ = writeln!(
        x,
        "    <serial type='pty'>\n      <target port='0'/>\n    </serial>"
    );
    let _ = writeln!(
        x,
        "    <console type='pty'>\n      <target type='serial' port='0'/>\n    </console>"
    );
    let _ = writeln!(x, "    <input type='tablet' bus='virtio'/>");
    let _ = writeln!(x, "    <input type='keyboard' bus='ps2'/>");
    let _ = writeln!(
        x,
        // Local clients only (the console uses the unix socket): no TCP port, no password.
        "    <graphics type='vnc'>\n      <listen type='none'/>\n    </graphics>"
    );
    let _ = writeln!(
        x,
        "    <video>\n      <model type='virtio' heads='1' primary='yes'/>\n    </video>"
    );
    let _ = writeln!(x, "  </devices>");
    let _ = writeln!(x, "</domain>");
    x
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
        let d = vireo_driver::model::Domain::parse(&xml).expect("driver parses wizard XML");
        assert_eq!(d.name, "wiz");
        assert!(xml.contains("<cmdline>console=ttyS0 x=&apos;1&apos;</cmdline>"));
        assert!(xml.contains("<source file='/tmp/d.qcow2'/>"));
    }

    #[test]
    fn names_are_escaped() {
        assert!(domain_xml(&spec()).contains("<name>a&lt;b</name>"));
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
    fn error_paths_map_to_fields() {
        assert_eq!(field_for_path("/domain/name"), "name");
        assert_eq!(field_for_path("/domain/memory/@unit"), "memory");
        assert_eq!(field_for_path("/domain/os/kernel"), "kernel");
        assert_eq!(field_for_path("/domain/devices"), "");
    }
}
