//! Domain XML -> `vireo_vmm::config::VmConfig`.
//!
//! The rule: whatever the document asks for, the backend either does or the machine is refused
//! before start with one message that names the element (`devices/interface[1]@type='bridge': ...`).
//! Nothing is dropped silently. A few elements libvirt itself adds on define (emulator, pci-root
//! controllers, a ps2 keyboard, `memballoon model='none'`) describe nothing our backend would do
//! differently and are accepted; each such case is listed in [`accepted_without_effect`].

use crate::rundir::RunDir;
use std::path::{Path, PathBuf};
use vireo_domain::{
    ChardevType, ClockOffset, CpuMode, Disk, DiskDevice, DiskType, Domain, Element, GraphicsType,
    ImageFormat, InputBus, InputType, Interface, InterfaceType, OsType, PortProto, RngBackend,
    Uuid, VideoModel, VirtType,
};
use vireo_vmm::config::{
    BackingConfig, DiskConfig, DiskFormat, DisplayConfig, MacAddr, NetBackend, NetConfig,
    PortForward, Protocol, SerialConfig, VmConfig, VncConfig,
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

/// The path `devices/NAME[i]` (1-based) this module's refusals use.
fn dev_path(name: &str, index: usize) -> String {
    format!("devices/{name}[{}]", index + 1)
}

/// A value the typed view reads as "unknown" (`Other`), quoted for a refusal.
fn attr_or_empty(e: &Element, name: &str) -> String {
    e.attr(name).map(|v| v.into_owned()).unwrap_or_default()
}

/// Translates a domain for a start in `run`. `pick_vnc_port` is asked for a free port when the
/// document says `autoport='yes'`. The document is read through `vireo-domain`'s typed views;
/// it need not have been validated (a stored definition was, on define), so every value the
/// backend depends on is checked again here.
pub fn translate(
    dom: &Domain,
    run: &RunDir,
    pick_vnc_port: &mut dyn FnMut() -> Option<u16>,
) -> Result<Translated, TranslateError> {
    let root = dom.root();
    let mut notes = Vec::new();
    match dom.virt_type() {
        Some(VirtType::Kvm) => {}
        Some(t) => {
            return refuse(
                format!("domain@type='{t}'"),
                "only kvm domains are supported",
            )
        }
        None => return refuse("domain", "missing attribute type"),
    }
    for child in root.elements() {
        if !TOP_LEVEL_OK.contains(&child.name()) {
            return not_supported(child.name());
        }
    }
    let name = match dom.name() {
        Some(n) if !n.trim().is_empty() => n.trim().to_owned(),
        _ => return refuse("domain", "missing element name"),
    };

    // os
    let no_kernel = || {
        refuse(
            "os",
            "Vireo boots only a kernel given in os/kernel (firmware boot is not supported)",
        )
    };
    let Some(os) = dom.os() else {
        return no_kernel();
    };
    if let Some(ty) = os.os_type() {
        if ty != OsType::Hvm {
            return refuse(format!("os/type='{ty}'"), "only hvm guests are supported");
        }
    }
    if let Some(a) = os.arch() {
        if a != "x86_64" {
            return refuse(
                format!("os/type@arch='{a}'"),
                "only x86_64 guests are supported",
            );
        }
    }
    if let Some(fw) = os.firmware() {
        return refuse(
            format!("os@firmware='{fw}'"),
            "firmware boot is not supported (use os/kernel)",
        );
    }
    for el in os.element().elements() {
        match el.name() {
            "type" | "kernel" | "initrd" | "cmdline" | "boot" => {}
            "loader" | "nvram" => {
                return refuse(
                    format!("os/{}", el.name()),
                    "firmware boot is not supported (use os/kernel)",
                )
            }
            other => return not_supported(format!("os/{other}")),
        }
    }
    let kernel = match os.kernel().map(|k| k.trim().to_owned()) {
        Some(k) if !k.is_empty() => check_file("os/kernel", &k)?,
        _ => return no_kernel(),
    };
    let initrd = match os.initrd().map(|i| i.trim().to_owned()) {
        Some(i) if !i.is_empty() => Some(check_file("os/initrd", &i)?),
        _ => None,
    };
    let cmdline = os
        .cmdline()
        .map(|c| c.trim().to_owned())
        .unwrap_or_default();
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
    let size_error = |field: &str, e: vireo_domain::Error| TranslateError {
        path: field.into(),
        message: e.kind.to_string(),
    };
    let memory_kib = match dom.memory().map_err(|e| size_error("memory", e))? {
        Some(b) if b > 0 => b.div_ceil(1024),
        Some(_) => return refuse("memory", "must be greater than 0"),
        None => return refuse("domain", "missing element memory"),
    };
    if let Some(cur) = dom
        .current_memory()
        .map_err(|e| size_error("currentMemory", e))?
    {
        if cur.div_ceil(1024) != memory_kib {
            return refuse(
                "currentMemory",
                "memory ballooning is not supported (make it equal to memory)",
            );
        }
    }
    let memory_mib = memory_kib.div_ceil(1024);
    if memory_mib > vireo_vmm::config::MAX_MEMORY_MIB {
        return refuse(
            "memory",
            format!(
                "{memory_mib} MiB is more than {} MiB",
                vireo_vmm::config::MAX_MEMORY_MIB
            ),
        );
    }
    if memory_kib % 1024 != 0 {
        notes.push(format!("memory rounded up to {memory_mib} MiB"));
    }
    let vcpu_count = match dom.vcpu().map_err(|e| size_error("vcpu", e))? {
        None => 1,
        Some(0) => return refuse("vcpu", "must be greater than 0"),
        Some(n) => n,
    };
    if let Some(v) = root.child("vcpu") {
        if let Some(c) = v.attr("current") {
            if c.trim().parse::<u32>().ok() != Some(vcpu_count) {
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
    let vcpus = match u8::try_from(vcpu_count) {
        Ok(n) => n,
        Err(_) => return refuse("vcpu", format!("{vcpu_count} vCPUs is more than 255")),
    };
    if let Some(m) = dom.cpu_mode() {
        if !matches!(
            m,
            CpuMode::HostPassthrough | CpuMode::HostModel | CpuMode::Maximum
        ) {
            return refuse(
                format!("cpu@mode='{m}'"),
                "only host-passthrough, host-model or maximum is supported",
            );
        }
    }
    if let Some(cpu) = root.child("cpu") {
        for el in cpu.elements() {
            match el.name() {
                "topology" => {
                    let n = |a: &str| {
                        el.attr(a)
                            .and_then(|v| v.trim().parse::<u32>().ok())
                            .unwrap_or(1)
                    };
                    let product = n("sockets")
                        .saturating_mul(n("dies"))
                        .saturating_mul(n("cores"))
                        .saturating_mul(n("threads"));
                    if product != vcpu_count {
                        return refuse(
                            "cpu/topology",
                            format!("{product} CPUs in the topology, {vcpu_count} in vcpu"),
                        );
                    }
                }
                other => return not_supported(format!("cpu/{other}")),
            }
        }
    }
    if let Some(f) = root.child("features") {
        for el in f.elements() {
            if !matches!(el.name(), "acpi" | "apic" | "pae") {
                return not_supported(format!("features/{}", el.name()));
            }
        }
    }
    if let Some(o) = dom.clock_offset() {
        if o != ClockOffset::Utc {
            return refuse(
                format!("clock@offset='{o}'"),
                "the guest clock is always UTC (use offset='utc')",
            );
        }
    }
    if let Some(pm) = root.child("pm") {
        for el in pm.elements() {
            if el.attr("enabled").as_deref() != Some("no") {
                return refuse(
                    format!("pm/{}", el.name()),
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
        ..VmConfig::minimal(&name, kernel, memory_mib, vcpus)
    };
    let mut vnc_port = None;
    let Some(devices) = dom.devices() else {
        return Ok(Translated {
            config: cfg,
            vnc_port,
            notes,
        });
    };
    let mut counts: std::collections::HashMap<&str, usize> = Default::default();
    for el in devices.element().elements() {
        let idx = counts.entry(el.name()).or_insert(0);
        *idx += 1;
        let path = format!("devices/{}[{}]", el.name(), idx);
        match el.name() {
            "emulator" | "disk" | "interface" | "graphics" | "video" | "serial" | "console"
            | "input" | "rng" => {}
            "controller" => {
                let ok = matches!(
                    (el.attr("type").as_deref(), el.attr("model").as_deref()),
                    (Some("pci"), Some("pci-root") | Some("pcie-root"))
                        | (Some("sata" | "ide"), _)
                        | (Some("usb"), Some("none"))
                );
                if !ok {
                    return refuse(
                        format!("{path}@type='{}'", attr_or_empty(el, "type")),
                        "not supported by the Vireo backend (only pci-root, sata, ide and usb model='none')",
                    );
                }
            }
            "memballoon" => {
                if el.attr("model").as_deref() != Some("none") {
                    return refuse(
                        format!("{path}@model='{}'", attr_or_empty(el, "model")),
                        "memory ballooning is not supported (use model='none')",
                    );
                }
            }
            other => return not_supported(format!("devices/{other}[{idx}]")),
        }
    }

    for (i, d) in devices.disks().iter().enumerate() {
        cfg.disks.push(disk(&dev_path("disk", i), d)?);
    }
    if cfg.disks.iter().any(|d| !d.shareable && !d.readonly) {
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

    let mac_seed = dom
        .uuid()
        .and_then(|u| Uuid::parse(&u))
        .map(|u| u.to_string())
        .unwrap_or_else(|| name.clone());
    for (i, iface) in devices.interfaces().iter().enumerate() {
        cfg.nets
            .push(interface(&dev_path("interface", i), iface, &mac_seed)?);
    }

    let mut graphics_seen = false;
    let mut vnc = VncConfig::default();
    for (i, g) in devices.graphics().iter().enumerate() {
        let path = dev_path("graphics", i);
        if graphics_seen {
            return refuse(path, "only one graphics device is supported");
        }
        graphics_seen = true;
        match g.graphics_type() {
            Some(GraphicsType::Vnc) => {}
            Some(t) => {
                return refuse(
                    format!("{path}@type='{t}'"),
                    "not supported by the Vireo backend (use type='vnc')",
                )
            }
            None => return refuse(path, "missing attribute type"),
        }
        vnc.unix_socket = Some(run.vnc());
        let ge = g.element();
        let listen = ge.child("listen");
        let listen_type = listen.and_then(|l| l.attr("type"));
        let listen_none = listen_type.as_deref() == Some("none");
        if let Some(s) = g.socket() {
            if !Path::new(&s).is_absolute() {
                return refuse(
                    format!("{path}@socket"),
                    format!("{s}: must be an absolute path"),
                );
            }
            vnc.unix_socket = Some(PathBuf::from(s));
        } else if !listen_none && listen_type.as_deref() != Some("socket") {
            for addr in [ge.attr("listen"), listen.and_then(|l| l.attr("address"))]
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
            if let Some(t) = &listen_type {
                if t != "address" {
                    return refuse(
                        format!("{path}/listen@type='{t}'"),
                        "not supported (use address or socket)",
                    );
                }
            }
            // Read as text, not through `Graphics::port`, so that a malformed port is refused
            // rather than taken for "no port".
            let port = ge
                .attr("port")
                .map(|p| p.trim().parse::<i32>())
                .transpose()
                .map_err(|_| TranslateError {
                    path: format!("{path}@port"),
                    message: "not a number".into(),
                })?;
            let auto = g.autoport() == Some(true) || port.is_none() || port == Some(-1);
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
        if let Some(pw) = g.passwd() {
            vnc.password = Some(pw);
        }
        if vnc.tcp_port.is_some() && vnc.password.as_deref().is_none_or(str::is_empty) {
            return refuse(
                path,
                "a VNC TCP listener needs a password (add passwd='...', or use <listen type='none'/> for local clients only)",
            );
        }
        for c in ge.elements() {
            if c.name() != "listen" {
                return not_supported(format!("{path}/{}", c.name()));
            }
        }
    }
    let mut display_size: Option<(u32, u32)> = None;
    let mut video_none = false;
    let videos = devices.videos();
    for (i, v) in videos.iter().enumerate() {
        let path = dev_path("video", i);
        if i > 0 {
            return refuse(path, "only one video device is supported");
        }
        match v.model() {
            Some(VideoModel::None) => video_none = true,
            Some(
                VideoModel::Vga
                | VideoModel::Virtio
                | VideoModel::Bochs
                | VideoModel::Cirrus
                | VideoModel::Qxl
                | VideoModel::Ramfb,
            )
            | None => {}
            Some(t) => {
                return refuse(
                    format!("{path}/model@type='{t}'"),
                    "not supported (the guest gets a linear framebuffer)",
                )
            }
        }
        if let Some(r) = v
            .element()
            .child("model")
            .and_then(|m| m.child("resolution"))
        {
            let side = |a: &str| r.attr(a).and_then(|x| x.trim().parse::<u32>().ok());
            match (side("x"), side("y")) {
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
    if video_none && graphics_seen {
        return refuse(
            "devices/video[1]/model@type='none'",
            "a graphics device needs a video device",
        );
    }
    if graphics_seen || (!video_none && !videos.is_empty()) {
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
    let serials = devices.serials();
    let consoles = devices.consoles();
    let mut com1: Option<(String, &vireo_domain::Chardev<&Element>)> = None;
    for (i, s) in serials.iter().enumerate() {
        let path = dev_path("serial", i);
        if let Some(p) = s.element().child("target").and_then(|t| t.attr("port")) {
            if p.trim() != "0" {
                return refuse(
                    format!("{path}/target@port='{p}'"),
                    "only one serial port (COM1, port 0) is supported",
                );
            }
        }
        if com1.is_some() {
            return refuse(path, "only one serial port is supported");
        }
        com1 = Some((path, s));
    }
    for (i, c) in consoles.iter().enumerate() {
        let path = dev_path("console", i);
        if let Some(t) = c.target_type() {
            if t != "serial" {
                return refuse(
                    format!("{path}/target@type='{t}'"),
                    "not supported (only the serial console)",
                );
            }
        }
        match &com1 {
            None => com1 = Some((path, c)),
            Some((_, s)) if s.chardev_type() != c.chardev_type() => {
                return refuse(
                    format!("{path}@type"),
                    "the console must mirror the serial port",
                )
            }
            Some(_) => {}
        }
    }
    if let Some((path, s)) = com1 {
        match s.chardev_type() {
            Some(ChardevType::Pty) => cfg.serial.socket = Some(run.serial()),
            Some(ChardevType::File) => match s.source_path() {
                Some(p) if Path::new(&p).is_absolute() => cfg.serial.log = Some(PathBuf::from(p)),
                _ => {
                    return refuse(
                        format!("{path}/source@path"),
                        "a file serial needs an absolute path",
                    )
                }
            },
            Some(ChardevType::Unix) => {
                if s.mode().is_some_and(|m| m != "bind") {
                    return refuse(
                        format!("{path}/source@mode"),
                        "only mode='bind' is supported",
                    );
                }
                match s.source_path() {
                    Some(p) if Path::new(&p).is_absolute() => {
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

    for (i, input) in devices.inputs().iter().enumerate() {
        let path = dev_path("input", i);
        match (input.input_type(), input.bus()) {
            (Some(InputType::Keyboard), Some(InputBus::Ps2) | None) => {}
            (Some(InputType::Keyboard), Some(InputBus::Virtio)) => cfg.input.keyboard = true,
            (Some(InputType::Tablet), Some(InputBus::Usb | InputBus::Virtio) | None) => {
                if cfg.display.is_none() {
                    return refuse(path, "a tablet needs a graphics device");
                }
                cfg.input.tablet = true
            }
            (Some(t @ (InputType::Keyboard | InputType::Tablet)), Some(b)) => {
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

    for (i, r) in devices.rngs().iter().enumerate() {
        let path = dev_path("rng", i);
        if cfg.rng {
            return refuse(path, "only one rng device is supported");
        }
        if r.model().as_deref() != Some("virtio") {
            return refuse(
                format!("{path}@model='{}'", r.model().unwrap_or_default()),
                "not supported (use model='virtio')",
            );
        }
        if r.element().child("backend").is_some() && r.backend() != Some(RngBackend::Random) {
            return refuse(
                format!(
                    "{path}/backend@model='{}'",
                    r.backend().map(|b| b.to_string()).unwrap_or_default()
                ),
                "not supported (use model='random')",
            );
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

fn disk(path: &str, d: &Disk<&Element>) -> Result<DiskConfig, TranslateError> {
    match d.disk_type() {
        Some(DiskType::File) | None => {}
        Some(t) => {
            return refuse(
                format!("{path}@type='{t}'"),
                "not supported by the Vireo backend (use type='file')",
            )
        }
    }
    let cdrom = match d.device() {
        DiskDevice::Disk => false,
        DiskDevice::Cdrom => true,
        t => {
            return refuse(
                format!("{path}@device='{t}'"),
                "not supported by the Vireo backend (use disk or cdrom)",
            )
        }
    };
    if let Some(n) = d.driver_name() {
        if n != "qemu" {
            return refuse(
                format!("{path}/driver@name='{n}'"),
                "only name='qemu' is supported",
            );
        }
    }
    let format = match d.format() {
        Some(ImageFormat::Raw) | None => DiskFormat::Raw,
        Some(ImageFormat::Qcow2) => DiskFormat::Qcow2,
        Some(t) => {
            return refuse(
                format!("{path}/driver@type='{t}'"),
                "not supported (use raw or qcow2)",
            )
        }
    };
    if let Some(b) = d.target_bus() {
        // A CD-ROM cannot be on virtio in libvirt's model; every disk is virtio-blk for us, so a
        // CD-ROM's bus is accepted and the disk is shown to the guest as read-only virtio-blk.
        if b != vireo_domain::DiskBus::Virtio && !cdrom {
            return refuse(
                format!("{path}/target@bus='{b}'"),
                "not supported by the Vireo backend (use bus='virtio')",
            );
        }
    }
    let file = match d.source() {
        Some(f) => f,
        None if cdrom => {
            return refuse(
                format!("{path}/source"),
                "an empty CD-ROM drive is not supported",
            )
        }
        None => return refuse(format!("{path}/source"), "missing attribute file"),
    };
    let file = check_file(&format!("{path}/source@file"), &file)?;
    if d.element()
        .child("source")
        .and_then(|s| s.child("dataStore"))
        .is_some()
    {
        return refuse(
            format!("{path}/source/dataStore"),
            "external data files are not supported (make a self-contained copy with \
             qemu-img convert -O qcow2)",
        );
    }
    let backing = backing_chain(path, d, format)?;
    for c in d.element().elements() {
        if !matches!(
            c.name(),
            "driver"
                | "source"
                | "backingStore"
                | "target"
                | "readonly"
                | "shareable"
                | "serial"
                | "boot"
                | "alias"
                | "address"
        ) {
            return not_supported(format!("{path}/{}", c.name()));
        }
    }
    let serial = d.serial().map(|s| s.trim().to_owned());
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
        readonly: cdrom || d.readonly(),
        shareable: d.shareable(),
        serial,
        cdrom,
        backing,
    })
}

/// The declared `<backingStore>` chain, nearest layer first. Every layer says its format (libvirt's
/// rule: a format is never probed); an empty `<backingStore/>` ends the chain, and a disk that
/// declares none gets an empty chain: the VMM then refuses an image whose header names a backing
/// file.
fn backing_chain(
    path: &str,
    d: &Disk<&Element>,
    top_format: DiskFormat,
) -> Result<Vec<BackingConfig>, TranslateError> {
    let mut chain = Vec::new();
    let mut above = top_format;
    let mut here = format!("{path}/backingStore");
    let mut next = d.backing_store();
    while let Some(b) = next {
        if b.is_end() {
            break;
        }
        if above == DiskFormat::Raw {
            return refuse(here, "a raw image has no backing file");
        }
        match b.store_type() {
            Some(DiskType::File) => {}
            Some(t) => {
                return refuse(
                    format!("{here}@type='{t}'"),
                    "not supported by the Vireo backend (use type='file')",
                )
            }
            None => {
                return refuse(
                    here,
                    "missing attribute type (only an empty <backingStore/> may leave it out)",
                )
            }
        }
        let format = match b.format() {
            Some(ImageFormat::Raw) => DiskFormat::Raw,
            Some(ImageFormat::Qcow2) => DiskFormat::Qcow2,
            Some(t) => {
                return refuse(
                    format!("{here}/format@type='{t}'"),
                    "not supported (use raw or qcow2)",
                )
            }
            None => {
                return refuse(
                    format!("{here}/format"),
                    "missing: a backing file's format is never guessed from its content; \
                     add <format type='qcow2'/> or <format type='raw'/>",
                )
            }
        };
        let Some(file) = b.source() else {
            return refuse(format!("{here}/source"), "missing attribute file");
        };
        let file = check_file(&format!("{here}/source@file"), &file)?;
        for c in b.element().elements() {
            if !matches!(c.name(), "format" | "source" | "backingStore") {
                return not_supported(format!("{here}/{}", c.name()));
            }
        }
        chain.push(BackingConfig { path: file, format });
        above = format;
        here.push_str("/backingStore");
        next = b.backing_store();
    }
    Ok(chain)
}

/// `mac_seed` (the canonical UUID, else the name) gives an interface without a MAC a stable one.
fn interface(
    path: &str,
    i: &Interface<&Element>,
    mac_seed: &str,
) -> Result<NetConfig, TranslateError> {
    match i.iface_type() {
        Some(InterfaceType::User) => {}
        Some(t) => {
            return refuse(
                format!("{path}@type='{t}'"),
                "not supported by the Vireo backend (use type='user')",
            )
        }
        None => return refuse(path, "missing attribute type"),
    }
    if let Some(m) = i.model() {
        if m != "virtio" {
            return refuse(
                format!("{path}/model@type='{m}'"),
                "not supported (use virtio)",
            );
        }
    }
    let mac = match i.mac() {
        Some(a) => a.parse::<MacAddr>().map_err(|e| TranslateError {
            path: format!("{path}/mac@address"),
            message: e,
        })?,
        None => {
            // Stable across starts for an old definition that has no MAC: derived from the UUID.
            let h = mac_seed.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
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
    for (j, pf) in i.port_forwards().iter().enumerate() {
        let pfp = format!("{path}/portForward[{}]", j + 1);
        let protocol = match &pf.proto {
            PortProto::Tcp => Protocol::Tcp,
            PortProto::Udp => Protocol::Udp,
            PortProto::Other(p) if p.is_empty() => return refuse(pfp, "missing attribute proto"),
            PortProto::Other(p) => return refuse(format!("{pfp}@proto='{p}'"), "use tcp or udp"),
        };
        if pf.dev.is_some() {
            return not_supported(format!("{pfp}@dev"));
        }
        let host_address = match &pf.address {
            None => std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
            Some(a) => a.parse().map_err(|_| TranslateError {
                path: format!("{pfp}@address"),
                message: format!("'{a}' is not an IP address"),
            })?,
        };
        for (k, r) in pf.ranges.iter().enumerate() {
            let rp = format!("{pfp}/range[{}]", k + 1);
            if r.exclude {
                return not_supported(format!("{rp}@exclude"));
            }
            // The view reads a missing or malformed start as 0 (validation names which).
            if r.start == 0 {
                return refuse(format!("{rp}@start"), "missing or not a port (1..65535)");
            }
            let start = r.start;
            let end = r.end.unwrap_or(start);
            let to = r.to.unwrap_or(start);
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
    for c in i.element().elements() {
        match c.name() {
            "mac" | "model" | "portForward" | "alias" | "address" | "target" => {}
            "backend" => {
                if let Some(t) = i.backend() {
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
