//! Domain XML -> `vireo_vmm::config::VmConfig`.
//!
//! The rule: whatever the document asks for, the backend either does or the machine is refused
//! before start with one message that names the element (`devices/interface[1]@type='bridge': ...`).
//! Nothing is dropped silently. A few elements libvirt itself adds on define (emulator, pci-root
//! controllers, a ps2 keyboard, `memballoon model='none'`) describe nothing our backend would do
//! differently and are accepted; each such case is listed in [`accepted_without_effect`].

use crate::model::{to_kib, Domain};
use crate::rundir::RunDir;
use crate::xml::Element;
use std::path::{Path, PathBuf};
use vireo_vmm::config::{
    DiskConfig, DiskFormat, DisplayConfig, MacAddr, NetBackend, NetConfig, PortForward, Protocol,
    SerialConfig, VmConfig, VncConfig,
};

/// A refusal: the element path and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct TranslateError {
    pub path: String,
    pub message: String,
}

fn refuse<T>(path: impl Into<String>, message: impl Into<String>) -> Result<T, TranslateError> {
    Err(TranslateError {
        path: path.into(),
        message: message.into(),
    })
}

fn not_supported<T>(path: impl Into<String>) -> Result<T, TranslateError> {
    refuse(path, "not supported by the Vireo backend")
}

/// The documented list of things accepted although they change nothing (see module docs).
pub fn accepted_without_effect() -> &'static [&'static str] {
    &[
        "devices/emulator: Vireo always runs vireo-vmm",
        "devices/controller type='pci' model='pci-root'|'pcie-root', type='usb' model='none': no device",
        "devices/controller type='sata'|'ide': the bus of CD-ROMs, which are read-only virtio-blk here",
        "devices/interface/target: the host-side device name libvirt reports; user networking has none",
        "devices/input type='keyboard' bus='ps2': the i8042 keyboard is always present",
        "devices/memballoon model='none': no device",
        "os/boot, os/type@machine: the kernel is loaded directly",
        "pm with every state disabled",
    ]
}

/// The result: the VMM config plus human-readable notes (e.g. "autoport chose 5901").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Translated {
    pub config: VmConfig,
    /// The TCP port of the VNC server, if any.
    pub vnc_port: Option<u16>,
    pub notes: Vec<String>,
}

/// Indexed path like `devices/disk[2]`: the index counts elements of that name, from 1.
fn indexed<'a>(
    parent: &'a Element,
    name: &'a str,
) -> impl Iterator<Item = (String, &'a Element)> + 'a {
    parent
        .children_named(name)
        .enumerate()
        .map(move |(i, e)| (format!("devices/{name}[{}]", i + 1), e))
}

fn check_file(path: &str, file: &str) -> Result<PathBuf, TranslateError> {
    let p = Path::new(file);
    if !p.is_absolute() {
        return refuse(path, format!("{file}: must be an absolute path"));
    }
    match std::fs::metadata(p) {
        Err(e) => refuse(path, format!("{file}: {}", io_message(&e))),
        Ok(m) if !m.is_file() => refuse(path, format!("{file}: not a regular file")),
        Ok(_) => match std::fs::File::open(p) {
            Ok(_) => Ok(p.to_owned()),
            Err(e) => refuse(path, format!("{file}: {}", io_message(&e))),
        },
    }
}

/// The OS's message without Rust's " (os error N)" suffix, as virsh prints it.
fn io_message(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_owned(),
        None => s,
    }
}

fn yes(v: Option<&str>) -> bool {
    matches!(v, Some("yes") | Some("on"))
}

const TOP_LEVEL_OK: &[&str] = &[
    "name",
    "uuid",
    "title",
    "description",
    "metadata",
    "memory",
    "currentMemory",
    "vcpu",
    "os",
    "features",
    "clock",
    "on_poweroff",
    "on_reboot",
    "on_crash",
    "devices",
    "cpu",
    "pm",
];

/// Translates a domain for a start in `run`. `pick_vnc_port` is asked for a free port when the
/// document says `autoport='yes'`.
pub fn translate(
    dom: &Domain,
    run: &RunDir,
    pick_vnc_port: &mut dyn FnMut() -> Option<u16>,
) -> Result<Translated, TranslateError> {
    let root = &dom.doc.root;
    let mut notes = Vec::new();
    match root.attr("type") {
        Some("kvm") => {}
        Some(t) => {
            return refuse(
                format!("domain@type='{t}'"),
                "only kvm domains are supported",
            )
        }
        None => return refuse("domain", "missing attribute type"),
    }
    for child in root.elements() {
        if !TOP_LEVEL_OK.contains(&child.name.as_str()) {
            return not_supported(child.name.clone());
        }
    }

    // os
    let os = match root.child("os") {
        Some(os) => os,
        None => {
            return refuse(
                "os",
                "Vireo boots only a kernel given in os/kernel (firmware boot is not supported)",
            )
        }
    };
    if let Some(t) = os.child("type") {
        let ty = t.text().trim().to_owned();
        if ty != "hvm" {
            return refuse(format!("os/type='{ty}'"), "only hvm guests are supported");
        }
        if let Some(a) = t.attr("arch") {
            if a != "x86_64" {
                return refuse(
                    format!("os/type@arch='{a}'"),
                    "only x86_64 guests are supported",
                );
            }
        }
    }
    if let Some(fw) = os.attr("firmware") {
        return refuse(
            format!("os@firmware='{fw}'"),
            "firmware boot is not supported (use os/kernel)",
        );
    }
    for el in os.elements() {
        match el.name.as_str() {
            "type" | "kernel" | "initrd" | "cmdline" | "boot" => {}
            "loader" | "nvram" => {
                return refuse(
                    format!("os/{}", el.name),
                    "firmware boot is not supported (use os/kernel)",
                )
            }
            other => return not_supported(format!("os/{other}")),
        }
    }
    let kernel = match os.child_text("kernel") {
        Some(k) if !k.is_empty() => check_file("os/kernel", &k)?,
        _ => {
            return refuse(
                "os",
                "Vireo boots only a kernel given in os/kernel (firmware boot is not supported)",
            )
        }
    };
    let initrd = match os.child_text("initrd") {
        Some(i) if !i.is_empty() => Some(check_file("os/initrd", &i)?),
        _ => None,
    };
    let cmdline = os.child_text("cmdline").unwrap_or_default();
    if cmdline.len() >= vireo_vmm::config::CMDLINE_MAX {
        return refuse(
            "os/cmdline",
            format!("longer than {} bytes", vireo_vmm::config::CMDLINE_MAX - 1),
        );
    }
    if !cmdline.is_ascii() {
        return refuse("os/cmdline", "must be ASCII");
    }

    // memory and vCPUs
    if let Some(cur) = root.child("currentMemory") {
        let kib =
            to_kib(&cur.text(), cur.attr("unit"), "currentMemory").map_err(|e| TranslateError {
                path: "currentMemory".into(),
                message: e.to_string(),
            })?;
        if kib != dom.memory_kib {
            return refuse(
                "currentMemory",
                "memory ballooning is not supported (make it equal to memory)",
            );
        }
    }
    let memory_mib = dom.memory_kib.div_ceil(1024);
    if memory_mib > vireo_vmm::config::MAX_MEMORY_MIB {
        return refuse(
            "memory",
            format!(
                "{memory_mib} MiB is more than {} MiB",
                vireo_vmm::config::MAX_MEMORY_MIB
            ),
        );
    }
    if dom.memory_kib % 1024 != 0 {
        notes.push(format!("memory rounded up to {memory_mib} MiB"));
    }
    if let Some(v) = root.child("vcpu") {
        if let Some(c) = v.attr("current") {
            if c.parse::<u32>().ok() != Some(dom.vcpus) {
                return refuse(
                    "vcpu@current",
                    "vCPU hotplug is not supported (current must equal the count)",
                );
            }
        }
        if let Some(p) = v.attr("placement") {
            if p != "static" {
                return refuse(
                    format!("vcpu@placement='{p}'"),
                    "only static placement is supported",
                );
            }
        }
        if v.attr("cpuset").is_some() {
            return not_supported("vcpu@cpuset");
        }
    }
    let vcpus = match u8::try_from(dom.vcpus) {
        Ok(n) => n,
        Err(_) => return refuse("vcpu", format!("{} vCPUs is more than 255", dom.vcpus)),
    };
    if let Some(cpu) = root.child("cpu") {
        if let Some(m) = cpu.attr("mode") {
            if !matches!(m, "host-passthrough" | "host-model" | "maximum") {
                return refuse(
                    format!("cpu@mode='{m}'"),
                    "only host-passthrough, host-model or maximum is supported",
                );
            }
        }
        for el in cpu.elements() {
            match el.name.as_str() {
                "topology" => {
                    let n = |a: &str| el.attr(a).and_then(|v| v.parse::<u32>().ok()).unwrap_or(1);
                    let product = n("sockets") * n("dies") * n("cores") * n("threads");
                    if product != dom.vcpus {
                        return refuse(
                            "cpu/topology",
                            format!("{product} CPUs in the topology, {} in vcpu", dom.vcpus),
                        );
                    }
                }
                other => return not_supported(format!("cpu/{other}")),
            }
        }
    }
    if let Some(f) = root.child("features") {
        for el in f.elements() {
            if !matches!(el.name.as_str(), "acpi" | "apic" | "pae") {
                return not_supported(format!("features/{}", el.name));
            }
        }
    }
    if let Some(c) = root.child("clock") {
        if let Some(o) = c.attr("offset") {
            if o != "utc" {
                return refuse(
                    format!("clock@offset='{o}'"),
                    "the guest clock is always UTC (use offset='utc')",
                );
            }
        }
    }
    if let Some(pm) = root.child("pm") {
        for el in pm.elements() {
            if el.attr("enabled") != Some("no") {
                return refuse(
                    format!("pm/{}", el.name),
                    "guest suspend is not supported (use enabled='no')",
                );
            }
        }
    }

    // The devices below are added as the XML asks for them; everything else keeps the VMM's
    // own headless defaults.
    let mut cfg = VmConfig {
        initrd,
        cmdline,
        serial: SerialConfig {
            log: Some(run.serial_log()),
            socket: None,
        },
        ..VmConfig::minimal(&dom.name, kernel, memory_mib, vcpus)
    };
    let mut vnc_port = None;
    let empty = Element::new("devices");
    let devices = root.child("devices").unwrap_or(&empty);
    let mut counts: std::collections::HashMap<&str, usize> = Default::default();
    for el in devices.elements() {
        let idx = counts.entry(el.name.as_str()).or_insert(0);
        *idx += 1;
        let path = format!("devices/{}[{}]", el.name, idx);
        match el.name.as_str() {
            "emulator" | "disk" | "interface" | "graphics" | "video" | "serial" | "console"
            | "input" | "rng" => {}
            "controller" => {
                let ok = matches!(
                    (el.attr("type"), el.attr("model")),
                    (Some("pci"), Some("pci-root") | Some("pcie-root"))
                        | (Some("sata" | "ide"), _)
                        | (Some("usb"), Some("none"))
                );
                if !ok {
                    return refuse(
                        format!("{path}@type='{}'", el.attr("type").unwrap_or("")),
                        "not supported by the Vireo backend (only pci-root, sata, ide and usb model='none')",
                    );
                }
            }
            "memballoon" => {
                if el.attr("model") != Some("none") {
                    return refuse(
                        format!("{path}@model='{}'", el.attr("model").unwrap_or("")),
                        "memory ballooning is not supported (use model='none')",
                    );
                }
            }
            other => return not_supported(format!("devices/{other}[{idx}]")),
        }
    }

    for (path, d) in indexed(devices, "disk") {
        cfg.disks.push(disk(&path, d)?);
    }
    if cfg
        .disks
        .iter()
        .filter(|d| !d.shareable && !d.readonly)
        .count()
        > 0
    {
        let mut seen = std::collections::HashSet::new();
        for (i, d) in cfg.disks.iter().enumerate() {
            if !seen.insert(d.path.clone()) {
                return refuse(
                    format!("devices/disk[{}]/source", i + 1),
                    format!("{} is used twice", d.path.display()),
                );
            }
        }
    }

    for (path, i) in indexed(devices, "interface") {
        cfg.nets.push(interface(&path, i, dom)?);
    }

    let mut graphics_seen = false;
    let mut vnc = VncConfig::default();
    for (path, g) in indexed(devices, "graphics") {
        if graphics_seen {
            return refuse(path, "only one graphics device is supported");
        }
        graphics_seen = true;
        match g.attr("type") {
            Some("vnc") => {}
            Some(t) => {
                return refuse(
                    format!("{path}@type='{t}'"),
                    "not supported by the Vireo backend (use type='vnc')",
                )
            }
            None => return refuse(path, "missing attribute type"),
        }
        vnc.unix_socket = Some(run.vnc());
        let listen = g.child("listen");
        let socket = g.attr("socket").or_else(|| {
            listen
                .filter(|l| l.attr("type") == Some("socket"))
                .and_then(|l| l.attr("socket"))
        });
        let listen_none = listen.is_some_and(|l| l.attr("type") == Some("none"));
        if let Some(s) = socket {
            if !Path::new(s).is_absolute() {
                return refuse(
                    format!("{path}@socket"),
                    format!("{s}: must be an absolute path"),
                );
            }
            vnc.unix_socket = Some(PathBuf::from(s));
        } else if !listen_none && listen.is_none_or(|l| l.attr("type") != Some("socket")) {
            for addr in [g.attr("listen"), listen.and_then(|l| l.attr("address"))]
                .into_iter()
                .flatten()
            {
                let loopback = addr
                    .parse::<std::net::IpAddr>()
                    .map(|a| a.is_loopback())
                    .unwrap_or(addr == "localhost");
                if !loopback {
                    return refuse(
                        format!("{path}@listen='{addr}'"),
                        "VNC listens on loopback only (use 127.0.0.1)",
                    );
                }
            }
            if let Some(l) = listen {
                if let Some(t) = l.attr("type") {
                    if t != "address" {
                        return refuse(
                            format!("{path}/listen@type='{t}'"),
                            "not supported (use address or socket)",
                        );
                    }
                }
            }
            let port = g
                .attr("port")
                .map(|p| p.parse::<i32>())
                .transpose()
                .map_err(|_| TranslateError {
                    path: format!("{path}@port"),
                    message: "not a number".into(),
                })?;
            let auto = yes(g.attr("autoport")) || port.is_none() || port == Some(-1);
            let chosen = if auto {
                match pick_vnc_port() {
                    Some(p) => {
                        notes.push(format!("VNC autoport: 127.0.0.1:{p}"));
                        p
                    }
                    None => {
                        return refuse(format!("{path}@autoport"), "no free TCP port in 5900..6000")
                    }
                }
            } else {
                match port.and_then(|p| u16::try_from(p).ok()).filter(|&p| p > 0) {
                    Some(p) => p,
                    None => return refuse(format!("{path}@port"), "must be 1..65535 or -1"),
                }
            };
            vnc.tcp_port = Some(chosen);
            vnc_port = Some(chosen);
        }
        if let Some(pw) = g.attr("passwd") {
            vnc.password = Some(pw.to_owned());
        }
        if vnc.tcp_port.is_some() && vnc.password.as_deref().is_none_or(str::is_empty) {
            return refuse(
                path,
                "a VNC TCP listener needs a password (add passwd='...', or use <listen type='none'/> for local clients only)",
            );
        }
        for c in g.elements() {
            if c.name != "listen" {
                return not_supported(format!("{path}/{}", c.name));
            }
        }
    }
    let mut display_size: Option<(u32, u32)> = None;
    let mut video_none = false;
    for (path, v) in indexed(devices, "video") {
        if path != "devices/video[1]" {
            return refuse(path, "only one video device is supported");
        }
        if let Some(m) = v.child("model") {
            match m.attr("type") {
                Some("none") => video_none = true,
                Some("vga" | "virtio" | "bochs" | "cirrus" | "qxl" | "ramfb") | None => {}
                Some(t) => {
                    return refuse(
                        format!("{path}/model@type='{t}'"),
                        "not supported (the guest gets a linear framebuffer)",
                    )
                }
            }
            if let Some(r) = m.child("resolution") {
                let x = r.attr("x").and_then(|x| x.parse().ok());
                let y = r.attr("y").and_then(|y| y.parse().ok());
                match (x, y) {
                    (Some(x), Some(y))
                        if (1..=vireo_vmm::config::MAX_DISPLAY_SIDE).contains(&x)
                            && (1..=vireo_vmm::config::MAX_DISPLAY_SIDE).contains(&y) =>
                    {
                        display_size = Some((x, y))
                    }
                    _ => {
                        return refuse(
                            format!("{path}/model/resolution"),
                            format!("x and y must be 1..{}", vireo_vmm::config::MAX_DISPLAY_SIDE),
                        )
                    }
                }
            }
        }
    }
    if video_none && graphics_seen {
        return refuse(
            "devices/video[1]/model@type='none'",
            "a graphics device needs a video device",
        );
    }
    if graphics_seen || (!video_none && devices.child("video").is_some()) {
        let mut d = DisplayConfig {
            vnc,
            ..DisplayConfig::default()
        };
        if let Some((w, h)) = display_size {
            d.width = w;
            d.height = h;
        }
        cfg.display = Some(d);
    }

    // Serial and console: both describe COM1 (libvirt mirrors the first serial as a console).
    let mut com1: Option<(String, &Element)> = None;
    for (path, s) in indexed(devices, "serial") {
        if let Some(t) = s.child("target") {
            if let Some(p) = t.attr("port") {
                if p != "0" {
                    return refuse(
                        format!("{path}/target@port='{p}'"),
                        "only one serial port (COM1, port 0) is supported",
                    );
                }
            }
        }
        if com1.is_some() {
            return refuse(path, "only one serial port is supported");
        }
        com1 = Some((path, s));
    }
    for (path, c) in indexed(devices, "console") {
        if let Some(t) = c.child("target").and_then(|t| t.attr("type")) {
            if t != "serial" {
                return refuse(
                    format!("{path}/target@type='{t}'"),
                    "not supported (only the serial console)",
                );
            }
        }
        if com1.is_none() {
            com1 = Some((path, c));
        } else if let Some((_, s)) = com1 {
            if s.attr("type") != c.attr("type") {
                return refuse(
                    format!("{path}@type"),
                    "the console must mirror the serial port",
                );
            }
        }
    }
    if let Some((path, s)) = com1 {
        match s.attr("type") {
            Some("pty") => cfg.serial.socket = Some(run.serial()),
            Some("file") => {
                let p = s.child("source").and_then(|x| x.attr("path"));
                match p {
                    Some(p) if Path::new(p).is_absolute() => {
                        cfg.serial.log = Some(PathBuf::from(p))
                    }
                    _ => {
                        return refuse(
                            format!("{path}/source@path"),
                            "a file serial needs an absolute path",
                        )
                    }
                }
            }
            Some("unix") => {
                let src = s.child("source");
                if src
                    .and_then(|x| x.attr("mode"))
                    .is_some_and(|m| m != "bind")
                {
                    return refuse(
                        format!("{path}/source@mode"),
                        "only mode='bind' is supported",
                    );
                }
                match src.and_then(|x| x.attr("path")) {
                    Some(p) if Path::new(p).is_absolute() => {
                        cfg.serial.socket = Some(PathBuf::from(p))
                    }
                    _ => {
                        return refuse(
                            format!("{path}/source@path"),
                            "a unix serial needs an absolute path",
                        )
                    }
                }
            }
            Some(t) => {
                return refuse(
                    format!("{path}@type='{t}'"),
                    "not supported by the Vireo backend (use pty, file or unix)",
                )
            }
            None => return refuse(path, "missing attribute type"),
        }
    }

    for (path, i) in indexed(devices, "input") {
        let bus = i.attr("bus");
        match (i.attr("type"), bus) {
            (Some("keyboard"), Some("ps2") | None) => {}
            (Some("keyboard"), Some("virtio")) => cfg.input.keyboard = true,
            (Some("tablet"), Some("usb" | "virtio") | None) => {
                if cfg.display.is_none() {
                    return refuse(path, "a tablet needs a graphics device");
                }
                cfg.input.tablet = true
            }
            (Some(t @ ("keyboard" | "tablet")), Some(b)) => {
                return refuse(
                    format!("{path}@bus='{b}'"),
                    format!("not supported for a {t} (use bus='virtio')"),
                )
            }
            (Some(t), _) => {
                return refuse(
                    format!("{path}@type='{t}'"),
                    "not supported by the Vireo backend (use keyboard or tablet)",
                )
            }
            (None, _) => return refuse(path, "missing attribute type"),
        }
    }

    for (path, r) in indexed(devices, "rng") {
        if cfg.rng {
            return refuse(path, "only one rng device is supported");
        }
        if r.attr("model") != Some("virtio") {
            return refuse(
                format!("{path}@model='{}'", r.attr("model").unwrap_or("")),
                "not supported (use model='virtio')",
            );
        }
        if let Some(b) = r.child("backend") {
            if b.attr("model") != Some("random") {
                return refuse(
                    format!("{path}/backend@model='{}'", b.attr("model").unwrap_or("")),
                    "not supported (use model='random')",
                );
            }
        }
        cfg.rng = true;
    }

    let n = cfg.virtio_device_count();
    if n > vireo_vmm::layout::VIRTIO_MMIO_MAX {
        return refuse(
            "devices",
            format!(
                "{n} virtio devices, at most {}",
                vireo_vmm::layout::VIRTIO_MMIO_MAX
            ),
        );
    }
    Ok(Translated {
        config: cfg,
        vnc_port,
        notes,
    })
}

fn disk(path: &str, d: &Element) -> Result<DiskConfig, TranslateError> {
    match d.attr("type") {
        Some("file") | None => {}
        Some(t) => {
            return refuse(
                format!("{path}@type='{t}'"),
                "not supported by the Vireo backend (use type='file')",
            )
        }
    }
    let cdrom = match d.attr("device") {
        Some("disk") | None => false,
        Some("cdrom") => true,
        Some(t) => {
            return refuse(
                format!("{path}@device='{t}'"),
                "not supported by the Vireo backend (use disk or cdrom)",
            )
        }
    };
    let mut format = DiskFormat::Raw;
    if let Some(drv) = d.child("driver") {
        if let Some(n) = drv.attr("name") {
            if n != "qemu" {
                return refuse(
                    format!("{path}/driver@name='{n}'"),
                    "only name='qemu' is supported",
                );
            }
        }
        format = match drv.attr("type") {
            Some("raw") | None => DiskFormat::Raw,
            Some("qcow2") => DiskFormat::Qcow2,
            Some(t) => {
                return refuse(
                    format!("{path}/driver@type='{t}'"),
                    "not supported (use raw or qcow2)",
                )
            }
        };
    }
    let target = d.child("target");
    if let Some(b) = target.and_then(|t| t.attr("bus")) {
        // A CD-ROM cannot be on virtio in libvirt's model; every disk is virtio-blk for us, so a
        // CD-ROM's bus is accepted and the disk is shown to the guest as read-only virtio-blk.
        if b != "virtio" && !cdrom {
            return refuse(
                format!("{path}/target@bus='{b}'"),
                "not supported by the Vireo backend (use bus='virtio')",
            );
        }
    }
    let file = match d.child("source").and_then(|s| s.attr("file")) {
        Some(f) => f,
        None if cdrom => {
            return refuse(
                format!("{path}/source"),
                "an empty CD-ROM drive is not supported",
            )
        }
        None => return refuse(format!("{path}/source"), "missing attribute file"),
    };
    let file = check_file(&format!("{path}/source@file"), file)?;
    for c in d.elements() {
        if !matches!(
            c.name.as_str(),
            "driver"
                | "source"
                | "target"
                | "readonly"
                | "shareable"
                | "serial"
                | "boot"
                | "alias"
                | "address"
        ) {
            return not_supported(format!("{path}/{}", c.name));
        }
    }
    let serial = d.child_text("serial");
    if let Some(s) = &serial {
        if s.len() > 20 {
            return refuse(
                format!("{path}/serial"),
                "longer than 20 bytes (virtio-blk's limit)",
            );
        }
    }
    Ok(DiskConfig {
        path: file,
        format,
        readonly: cdrom || d.child("readonly").is_some(),
        shareable: d.child("shareable").is_some(),
        serial,
        cdrom,
    })
}

fn interface(path: &str, i: &Element, dom: &Domain) -> Result<NetConfig, TranslateError> {
    match i.attr("type") {
        Some("user") => {}
        Some(t) => {
            return refuse(
                format!("{path}@type='{t}'"),
                "not supported by the Vireo backend (use type='user')",
            )
        }
        None => return refuse(path, "missing attribute type"),
    }
    if let Some(m) = i.child("model").and_then(|m| m.attr("type")) {
        if m != "virtio" {
            return refuse(
                format!("{path}/model@type='{m}'"),
                "not supported (use virtio)",
            );
        }
    }
    let mac = match i.child("mac").and_then(|m| m.attr("address")) {
        Some(a) => a.parse::<MacAddr>().map_err(|e| TranslateError {
            path: format!("{path}/mac@address"),
            message: e,
        })?,
        None => {
            // Stable across starts for an old definition that has no MAC: derived from the UUID.
            let seed: Vec<u8> = dom.uuid.as_deref().unwrap_or(&dom.name).bytes().collect();
            let h = seed.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
                (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
            });
            MacAddr([0x52, 0x54, 0x00, (h >> 16) as u8, (h >> 8) as u8, h as u8])
        }
    };
    if mac.0[0] & 1 != 0 {
        return refuse(
            format!("{path}/mac@address"),
            format!("{mac} is a multicast address"),
        );
    }
    let mut port_forwards = Vec::new();
    for (j, pf) in i.children_named("portForward").enumerate() {
        let pfp = format!("{path}/portForward[{}]", j + 1);
        let protocol = match pf.attr("proto") {
            Some("tcp") => Protocol::Tcp,
            Some("udp") => Protocol::Udp,
            Some(p) => return refuse(format!("{pfp}@proto='{p}'"), "use tcp or udp"),
            None => return refuse(pfp, "missing attribute proto"),
        };
        if pf.attr("dev").is_some() {
            return not_supported(format!("{pfp}@dev"));
        }
        let host_address = match pf.attr("address") {
            None => std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
            Some(a) => a.parse().map_err(|_| TranslateError {
                path: format!("{pfp}@address"),
                message: format!("'{a}' is not an IP address"),
            })?,
        };
        for (k, r) in pf.children_named("range").enumerate() {
            let rp = format!("{pfp}/range[{}]", k + 1);
            if yes(r.attr("exclude")) {
                return not_supported(format!("{rp}@exclude"));
            }
            let num = |a: &str| -> Result<Option<u16>, TranslateError> {
                r.attr(a)
                    .map(|v| {
                        v.parse::<u16>()
                            .ok()
                            .filter(|&p| p > 0)
                            .ok_or_else(|| TranslateError {
                                path: format!("{rp}@{a}"),
                                message: format!("'{v}' is not a port"),
                            })
                    })
                    .transpose()
            };
            let start = num("start")?.ok_or_else(|| TranslateError {
                path: rp.clone(),
                message: "missing attribute start".into(),
            })?;
            let end = num("end")?.unwrap_or(start);
            let to = num("to")?.unwrap_or(start);
            if end < start || end - start > 256 {
                return refuse(
                    format!("{rp}@end"),
                    "must be >= start and span at most 256 ports",
                );
            }
            for off in 0..=(end - start) {
                let guest_port = to.checked_add(off).ok_or_else(|| TranslateError {
                    path: format!("{rp}@to"),
                    message: "range goes past 65535".into(),
                })?;
                port_forwards.push(PortForward {
                    protocol,
                    host_address,
                    host_port: start + off,
                    guest_port,
                });
            }
        }
    }
    for c in i.elements() {
        match c.name.as_str() {
            "mac" | "model" | "portForward" | "alias" | "address" | "target" => {}
            "backend" => {
                if let Some(t) = c.attr("type") {
                    if t != "passt" && t != "default" {
                        return refuse(format!("{path}/backend@type='{t}'"), "not supported");
                    }
                }
            }
            other => return not_supported(format!("{path}/{other}")),
        }
    }
    Ok(NetConfig {
        mac,
        backend: NetBackend::UserNet { port_forwards },
    })
}

/// Finds a free loopback TCP port for VNC in 5900..6000.
pub fn free_vnc_port() -> Option<u16> {
    (5900..6000).find(|&p| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok())
}

#[cfg(test)]
mod tests;
