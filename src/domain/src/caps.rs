//! `capabilities` and `domainCapabilities` documents for the Vireo KVM backend.
//!
//! Host facts come from /proc/cpuinfo ([`HostCpu::from_cpuinfo`]); what the backend can do
//! comes from the caller as [`BackendFacts`] (the driver fills it from vireo-vmm's abilities),
//! so nothing about the host or the backend is hard-coded here.

use crate::ids::Uuid;
use crate::tree::{Document, Element, Style};
use crate::values::{BootDev, DiskBus, DiskDevice, GraphicsType, VideoModel};

/// The host CPU as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HostCpu {
    /// libvirt architecture name (x86_64, aarch64, ...).
    pub arch: String,
    /// The kernel's model name (e.g. "AMD EPYC"); libvirt's CPU model names are not derivable
    /// from /proc/cpuinfo, so this is informative only.
    pub model: Option<String>,
    /// libvirt vendor name: Intel, AMD, ...
    pub vendor: Option<String>,
    pub family: Option<u32>,
    pub model_number: Option<u32>,
    pub stepping: Option<u32>,
    pub microcode: Option<u64>,
    pub sockets: u32,
    pub cores: u32,
    pub threads: u32,
    /// CPU flags, in libvirt's spelling where it differs from the kernel's.
    pub features: Vec<String>,
}

/// Kernel flag names that libvirt spells differently (x86 cpu_map).
const FLAG_NAMES: &[(&str, &str)] = &[
    ("pclmulqdq", "pclmuldq"),
    ("tsc_deadline_timer", "tsc-deadline"),
    ("lahf_lm", "lahf_lm"),
    ("pni", "pni"),
    ("sse4_1", "sse4_1"),
    ("sse4_2", "sse4_2"),
    ("avx512_bf16", "avx512-bf16"),
    ("avx512_vbmi2", "avx512vbmi2"),
    ("avx512_vnni", "avx512vnni"),
    ("avx512_bitalg", "avx512bitalg"),
    ("avx512_vpopcntdq", "avx512-vpopcntdq"),
    ("sha_ni", "sha-ni"),
    ("fsgsbase", "fsgsbase"),
    ("tsc_adjust", "tsc_adjust"),
];

impl HostCpu {
    /// Reads /proc/cpuinfo of this host (x86 layout; other layouts give fewer facts).
    pub fn detect() -> std::io::Result<HostCpu> {
        let text = std::fs::read_to_string("/proc/cpuinfo")?;
        Ok(Self::from_cpuinfo(&text, std::env::consts::ARCH))
    }

    /// Parses /proc/cpuinfo text. `arch` is the libvirt architecture name.
    pub fn from_cpuinfo(text: &str, arch: &str) -> HostCpu {
        let mut cpu = HostCpu {
            arch: arch.to_string(),
            sockets: 1,
            cores: 1,
            threads: 1,
            ..HostCpu::default()
        };
        let mut physical_ids = std::collections::BTreeSet::new();
        let mut siblings = None;
        let mut first = true;
        for block in text.split("\n\n") {
            for line in block.lines() {
                let Some((k, v)) = line.split_once(':') else {
                    continue;
                };
                let (k, v) = (k.trim(), v.trim());
                if k == "physical id" {
                    physical_ids.insert(v.to_string());
                }
                if !first {
                    continue;
                }
                match k {
                    "vendor_id" => {
                        cpu.vendor = Some(
                            match v {
                                "GenuineIntel" => "Intel",
                                "AuthenticAMD" => "AMD",
                                "HygonGenuine" => "Hygon",
                                "CentaurHauls" => "VIA",
                                other => other,
                            }
                            .to_string(),
                        )
                    }
                    "model name" => cpu.model = Some(v.to_string()).filter(|s| !s.is_empty()),
                    "cpu family" => cpu.family = v.parse().ok(),
                    "model" => cpu.model_number = v.parse().ok(),
                    "stepping" => cpu.stepping = v.parse().ok(),
                    "microcode" => {
                        cpu.microcode = v
                            .strip_prefix("0x")
                            .and_then(|h| u64::from_str_radix(h, 16).ok())
                            .or_else(|| v.parse().ok())
                    }
                    "cpu cores" => cpu.cores = v.parse().unwrap_or(1).max(1),
                    "siblings" => siblings = v.parse::<u32>().ok(),
                    "flags" | "Features" => {
                        cpu.features = v
                            .split_whitespace()
                            .map(|f| {
                                FLAG_NAMES
                                    .iter()
                                    .find(|(k, _)| *k == f)
                                    .map_or(f, |(_, l)| *l)
                                    .to_string()
                            })
                            .filter(|f| {
                                f.bytes()
                                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                            })
                            .collect()
                    }
                    _ => {}
                }
            }
            if block.lines().any(|l| l.starts_with("processor")) {
                first = false;
            }
        }
        cpu.sockets = u32::try_from(physical_ids.len()).unwrap_or(1).max(1);
        if let Some(s) = siblings {
            cpu.threads = (s / cpu.cores).max(1);
        }
        cpu
    }
}

/// What a Vireo backend (vireo-vmm on KVM) offers. Filled by the driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendFacts {
    /// Absolute path of the backend binary (libvirt's "emulator").
    pub emulator: String,
    /// Guest architecture (x86_64).
    pub arch: String,
    /// Domain type (kvm).
    pub domain_type: String,
    /// Machine type names; the first is the default.
    pub machines: Vec<String>,
    pub max_vcpus: u32,
    /// BIOS images the backend can load (empty: no BIOS, direct kernel boot at least).
    pub loaders: Vec<String>,
    /// UEFI code images (pflash) the backend boots, on the machines of `efi_machines`
    /// (empty: no UEFI).
    pub efi_loaders: Vec<String>,
    /// The machine types UEFI firmware runs on.
    pub efi_machines: Vec<String>,
    /// The `os/boot@dev` kinds the firmware really boots from (empty without firmware).
    pub boot_devices: Vec<BootDev>,
    pub disk_devices: Vec<DiskDevice>,
    pub disk_buses: Vec<DiskBus>,
    pub graphics: Vec<GraphicsType>,
    /// The video models (`video/model@type`) of the machines not in `machine_video_models`.
    pub video_models: Vec<VideoModel>,
    /// The machine types whose video models differ from `video_models`, with theirs.
    pub machine_video_models: Vec<(String, Vec<VideoModel>)>,
    /// rng backend models (random, builtin, ...); empty = no rng device.
    pub rng_backends: Vec<String>,
    pub host_passthrough: bool,
    pub acpi: bool,
    pub apic: bool,
}

impl BackendFacts {
    /// What vireo-vmm is planned to offer; the driver should build its own from the backend.
    pub fn vireo_kvm(emulator: &str) -> Self {
        BackendFacts {
            emulator: emulator.to_string(),
            arch: "x86_64".into(),
            domain_type: "kvm".into(),
            machines: vec!["vireo".into(), "pc".into()],
            max_vcpus: 64,
            loaders: Vec::new(),
            efi_loaders: Vec::new(),
            efi_machines: vec!["pc".into()],
            boot_devices: Vec::new(),
            disk_devices: vec![DiskDevice::Disk, DiskDevice::Cdrom],
            disk_buses: vec![DiskBus::Virtio],
            graphics: vec![GraphicsType::Vnc],
            video_models: vec![VideoModel::Virtio],
            machine_video_models: vec![("pc".into(), vec![VideoModel::Vga, VideoModel::Ramfb])],
            rng_backends: vec!["random".into()],
            host_passthrough: true,
            acpi: true,
            apic: true,
        }
    }

    /// The video models of `machine` (None: the default machine's).
    pub fn video_models_of(&self, machine: Option<&str>) -> &[VideoModel] {
        machine
            .and_then(|m| self.machine_video_models.iter().find(|(n, _)| n == m))
            .map_or(&self.video_models, |(_, v)| v)
    }
}

fn word_size(arch: &str) -> &'static str {
    match arch {
        "i686" | "armv7l" | "armv6l" | "ppc" | "mips" | "mipsel" | "sparc" => "32",
        "s390" => "31",
        _ => "64",
    }
}

fn text(name: &str, t: &str) -> Element {
    Element::new(name).with_text(t)
}

fn supported(name: &str, yes: bool) -> Element {
    Element::new(name).with_attr("supported", if yes { "yes" } else { "no" })
}

fn enum_of<'a>(name: &str, values: impl IntoIterator<Item = &'a str>) -> Element {
    values
        .into_iter()
        .fold(Element::new("enum").with_attr("name", name), |e, v| {
            e.with_child(text("value", v))
        })
}

/// The `<capabilities>` document: the host CPU and one guest (hvm, the backend's arch and
/// domain type, its emulator and machines).
pub fn capabilities(host_uuid: Option<&Uuid>, cpu: &HostCpu, backend: &BackendFacts) -> Document {
    let mut c = Element::new("cpu").with_child(text("arch", &cpu.arch));
    if let Some(m) = &cpu.model {
        c = c.with_child(text("model", m));
    }
    if let Some(v) = &cpu.vendor {
        c = c.with_child(text("vendor", v));
    }
    if let Some(m) = cpu.microcode.filter(|m| *m > 0) {
        c = c.with_child(Element::new("microcode").with_attr("version", &m.to_string()));
    }
    if let (Some(f), Some(m), Some(s)) = (
        cpu.family.filter(|f| *f > 0),
        cpu.model_number,
        cpu.stepping,
    ) {
        c = c.with_child(
            Element::new("signature")
                .with_attr("family", &f.to_string())
                .with_attr("model", &m.to_string())
                .with_attr("stepping", &s.to_string()),
        );
    }
    c = c.with_child(
        Element::new("topology")
            .with_attr("sockets", &cpu.sockets.max(1).to_string())
            .with_attr("dies", "1")
            .with_attr("cores", &cpu.cores.max(1).to_string())
            .with_attr("threads", &cpu.threads.max(1).to_string()),
    );
    for f in &cpu.features {
        c = c.with_child(Element::new("feature").with_attr("name", f));
    }
    c = c.with_child(
        Element::new("pages")
            .with_attr("unit", "KiB")
            .with_attr("size", "4"),
    );
    let mut host = Element::new("host");
    if let Some(u) = host_uuid {
        host = host.with_child(text("uuid", &u.to_string()));
    }
    host = host.with_child(c);

    let mut arch = Element::new("arch")
        .with_attr("name", &backend.arch)
        .with_child(text("wordsize", word_size(&backend.arch)))
        .with_child(text("emulator", &backend.emulator));
    if let Some(l) = backend.loaders.first().or(backend.efi_loaders.first()) {
        arch = arch.with_child(text("loader", l));
    }
    for m in &backend.machines {
        arch = arch
            .with_child(text("machine", m).with_attr("maxCpus", &backend.max_vcpus.to_string()));
    }
    arch = arch.with_child(Element::new("domain").with_attr("type", &backend.domain_type));
    let toggle = |name: &str| {
        Element::new(name)
            .with_attr("default", "on")
            .with_attr("toggle", "no")
    };
    let mut features = Element::new("features");
    if backend.acpi {
        features = features.with_child(toggle("acpi"));
    }
    if backend.apic {
        features = features.with_child(toggle("apic"));
    }
    if !backend.boot_devices.is_empty() {
        // Per-device <boot order='N'/> is honoured.
        features = features.with_child(Element::new("deviceboot"));
    }
    let mut guest = Element::new("guest")
        .with_child(text("os_type", "hvm"))
        .with_child(arch);
    if features.elements().next().is_some() {
        guest = guest.with_child(features);
    }
    Document::new_formatted(
        Element::new("capabilities")
            .with_child(host)
            .with_child(guest),
        &Style::default(),
    )
}

/// The `<domainCapabilities>` document for `machine` (None: the backend's default machine).
/// UEFI is listed for the machines it runs on only, and each machine's own video models.
pub fn domain_capabilities(backend: &BackendFacts, machine: Option<&str>) -> Document {
    let mut root = Element::new("domainCapabilities")
        .with_child(text("path", &backend.emulator))
        .with_child(text("domain", &backend.domain_type));
    let machine = machine.or(backend.machines.first().map(String::as_str));
    if let Some(m) = machine {
        root = root.with_child(text("machine", m));
    }
    root = root
        .with_child(text("arch", &backend.arch))
        .with_child(Element::new("vcpu").with_attr("max", &backend.max_vcpus.to_string()))
        .with_child(supported("iothreads", false));

    let has_bios = !backend.loaders.is_empty();
    let has_efi = !backend.efi_loaders.is_empty()
        && machine.is_some_and(|m| backend.efi_machines.iter().any(|e| e == m));
    let mut os = supported("os", true)
        .with_child(enum_of(
            "firmware",
            has_bios
                .then_some("bios")
                .into_iter()
                .chain(has_efi.then_some("efi")),
        ))
        // Not a libvirt enum (the schema allows any): the boot devices that really boot.
        .with_child(enum_of(
            "bootDevice",
            backend.boot_devices.iter().map(|d| d.as_str()),
        ));
    let mut loader = supported("loader", has_bios || has_efi);
    let efi_loaders = backend.efi_loaders.iter().filter(|_| has_efi);
    for l in backend.loaders.iter().chain(efi_loaders) {
        loader = loader.with_child(text("value", l));
    }
    if has_bios || has_efi {
        loader = loader
            .with_child(enum_of(
                "type",
                has_bios
                    .then_some("rom")
                    .into_iter()
                    .chain(has_efi.then_some("pflash")),
            ))
            .with_child(enum_of("readonly", ["yes"]));
        if has_efi {
            // Secure Boot needs SMM, which the backend does not have.
            loader = loader.with_child(enum_of("secure", ["no"]));
        }
    }
    os = os.with_child(loader);
    root = root.with_child(os);

    let cpu = Element::new("cpu")
        .with_child(
            supported("mode", backend.host_passthrough).with_attr("name", "host-passthrough"),
        )
        .with_child(supported("mode", false).with_attr("name", "maximum"))
        .with_child(supported("mode", false).with_attr("name", "host-model"))
        .with_child(supported("mode", false).with_attr("name", "custom"));
    root = root.with_child(cpu);
    root = root.with_child(supported("memoryBacking", false).with_child(enum_of("sourceType", [])));

    let disk = supported("disk", !backend.disk_buses.is_empty())
        .with_child(enum_of(
            "diskDevice",
            backend.disk_devices.iter().map(|d| d.as_str()),
        ))
        .with_child(enum_of(
            "bus",
            backend.disk_buses.iter().map(|b| b.as_str()),
        ))
        .with_child(enum_of("model", []));
    let graphics = supported("graphics", !backend.graphics.is_empty())
        .with_child(enum_of("type", backend.graphics.iter().map(|g| g.as_str())));
    let video_models = backend.video_models_of(machine);
    let video = supported("video", !video_models.is_empty()).with_child(enum_of(
        "modelType",
        video_models.iter().map(|v| v.as_str()),
    ));
    let hostdev = supported("hostdev", false)
        .with_child(enum_of("mode", []))
        .with_child(enum_of("startupPolicy", []))
        .with_child(enum_of("subsysType", []))
        .with_child(enum_of("capsType", []))
        .with_child(enum_of("pciBackend", []));
    let rng = supported("rng", !backend.rng_backends.is_empty())
        .with_child(enum_of(
            "model",
            (!backend.rng_backends.is_empty()).then_some("virtio"),
        ))
        .with_child(enum_of(
            "backendModel",
            backend.rng_backends.iter().map(String::as_str),
        ));
    let devices = Element::new("devices")
        .with_child(disk)
        .with_child(graphics)
        .with_child(video)
        .with_child(hostdev)
        .with_child(rng)
        .with_child(supported("filesystem", false).with_child(enum_of("driverType", [])))
        .with_child(supported("tpm", false))
        .with_child(supported("redirdev", false))
        .with_child(supported("channel", false));
    root = root.with_child(devices);

    let features = Element::new("features")
        .with_child(supported("gic", false))
        .with_child(supported("vmcoreinfo", false))
        .with_child(supported("genid", false))
        .with_child(supported("backingStoreInput", false))
        .with_child(supported("backup", false))
        .with_child(supported("sev", false))
        .with_child(supported("sgx", false));
    root = root.with_child(features);
    Document::new_formatted(root, &Style::default())
}

#[cfg(test)]
mod tests {
    use super::*;

    const CPUINFO: &str = "processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: 17\nmodel name\t: AMD EPYC\nstepping\t: 1\nmicrocode\t: 0x1000065\nphysical id\t: 0\nsiblings\t: 2\ncpu cores\t: 2\nflags\t\t: fpu vme sse4_2 pclmulqdq avx512_bf16 tsc_deadline_timer\n\nprocessor\t: 1\nvendor_id\t: AuthenticAMD\nphysical id\t: 0\n";

    #[test]
    fn cpuinfo_facts() {
        let c = HostCpu::from_cpuinfo(CPUINFO, "x86_64");
        assert_eq!(c.vendor.as_deref(), Some("AMD"));
        assert_eq!(c.model.as_deref(), Some("AMD EPYC"));
        assert_eq!(
            (c.family, c.model_number, c.stepping),
            (Some(25), Some(17), Some(1))
        );
        assert_eq!(c.microcode, Some(0x1000065));
        assert_eq!((c.sockets, c.cores, c.threads), (1, 2, 1));
        assert_eq!(
            c.features,
            [
                "fpu",
                "vme",
                "sse4_2",
                "pclmuldq",
                "avx512-bf16",
                "tsc-deadline"
            ]
        );
    }

    #[test]
    fn documents_contain_backend_facts() {
        let b = BackendFacts::vireo_kvm("/usr/libexec/vireo-vmm");
        let caps = capabilities(None, &HostCpu::from_cpuinfo(CPUINFO, "x86_64"), &b).to_xml();
        assert!(
            caps.contains("<emulator>/usr/libexec/vireo-vmm</emulator>"),
            "{caps}"
        );
        assert!(caps.contains("<domain type='kvm'/>"), "{caps}");
        assert!(caps.contains("<os_type>hvm</os_type>"), "{caps}");
        assert!(
            caps.contains(
                "<machine maxCpus='64'>vireo</machine>\n      <machine maxCpus='64'>pc</machine>"
            ),
            "{caps}"
        );
        let dc = domain_capabilities(&b, None).to_xml();
        assert!(dc.contains("<machine>vireo</machine>"), "{dc}");
        let pc = domain_capabilities(&b, Some("pc")).to_xml();
        assert!(pc.contains("<machine>pc</machine>"), "{pc}");
        assert!(dc.contains("<value>virtio</value>"), "{dc}");
        assert!(dc.contains("<loader supported='no'"), "{dc}");
        assert!(dc.contains("<enum name='bootDevice'/>"), "{dc}");
        assert!(!caps.contains("deviceboot"), "{caps}");
    }

    #[test]
    fn video_models_are_the_machines_own() {
        let b = BackendFacts::vireo_kvm("/usr/libexec/vireo-vmm");
        let models = |machine: Option<&str>| {
            let dc = domain_capabilities(&b, machine).to_xml();
            let at = dc.find("<video supported='yes'>").expect("video");
            let end = at + dc[at..].find("</video>").expect("its end");
            dc[at..end].to_owned()
        };
        let virtio = "<enum name='modelType'>\n        <value>virtio</value>\n      </enum>";
        assert!(models(None).contains(virtio), "{}", models(None));
        assert!(models(Some("vireo")).contains(virtio));
        let pc = models(Some("pc"));
        assert!(
            pc.contains(
                "<enum name='modelType'>\n        <value>vga</value>\n        \
                 <value>ramfb</value>\n      </enum>"
            ),
            "{pc}"
        );
    }

    #[test]
    fn firmware_shows_its_loader_and_boot_devices() {
        let mut b = BackendFacts::vireo_kvm("/usr/libexec/vireo-vmm");
        b.loaders = vec!["/usr/share/seabios/bios-256k.bin".into()];
        b.boot_devices = vec![BootDev::Hd, BootDev::Cdrom];
        let caps = capabilities(None, &HostCpu::from_cpuinfo(CPUINFO, "x86_64"), &b).to_xml();
        assert!(
            caps.contains("<emulator>/usr/libexec/vireo-vmm</emulator>\n      <loader>/usr/share/seabios/bios-256k.bin</loader>"),
            "{caps}"
        );
        assert!(caps.contains("<deviceboot/>"), "{caps}");
        let dc = domain_capabilities(&b, None).to_xml();
        for want in [
            "<enum name='firmware'>\n      <value>bios</value>",
            "<loader supported='yes'>\n      <value>/usr/share/seabios/bios-256k.bin</value>",
            "<enum name='type'>\n        <value>rom</value>\n      </enum>",
            "<enum name='bootDevice'>\n      <value>hd</value>\n      <value>cdrom</value>\n    </enum>",
        ] {
            assert!(dc.contains(want), "{want} missing in\n{dc}");
        }
        assert!(!dc.contains("efi") && !dc.contains("secure"), "{dc}");
    }

    #[test]
    fn uefi_shows_on_the_machines_it_runs_on() {
        let mut b = BackendFacts::vireo_kvm("/usr/libexec/vireo-vmm");
        b.loaders = vec!["/usr/share/seabios/bios-256k.bin".into()];
        b.efi_loaders = vec!["/usr/share/OVMF/OVMF_CODE_4M.fd".into()];
        let pc = domain_capabilities(&b, Some("pc")).to_xml();
        for want in [
            "<enum name='firmware'>\n      <value>bios</value>\n      <value>efi</value>\n    </enum>",
            "<value>/usr/share/seabios/bios-256k.bin</value>\n      \
             <value>/usr/share/OVMF/OVMF_CODE_4M.fd</value>",
            "<enum name='type'>\n        <value>rom</value>\n        <value>pflash</value>\n      </enum>",
            "<enum name='readonly'>\n        <value>yes</value>\n      </enum>",
            "<enum name='secure'>\n        <value>no</value>\n      </enum>",
        ] {
            assert!(pc.contains(want), "{want} missing in\n{pc}");
        }
        // The default machine (vireo) has no PCI bus for OVMF: BIOS only.
        let dc = domain_capabilities(&b, None).to_xml();
        assert!(
            !dc.contains("efi") && !dc.contains("OVMF") && !dc.contains("pflash"),
            "{dc}"
        );
        // UEFI without a BIOS.
        b.loaders.clear();
        let pc = domain_capabilities(&b, Some("pc")).to_xml();
        assert!(pc.contains("<loader supported='yes'>"), "{pc}");
        assert!(
            pc.contains("<enum name='firmware'>\n      <value>efi</value>\n    </enum>"),
            "{pc}"
        );
    }
}
