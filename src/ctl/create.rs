//! `vireoctl create`: a new machine with virt-install's options, or the quick machine.
//!
//! Unlike virt-install, `create` only defines the machine (add `--start`); `--transient` starts
//! it without a definition. Kernel boot is the only boot method of the Vireo backend, so
//! `--import` (boot the given disks) is the only install mode and is accepted for compatibility.

use crate::ctl_exit::{fail, CtlResult, EXIT_ERROR, EXIT_INVALID, EXIT_OK, EXIT_USAGE};
use clap::Args;
use std::path::{Path, PathBuf};
use vireo_driver::domain::{
    BootDev, DiskBus, DiskDevice, DomainBuilder, Element, GraphicsSpec, GraphicsType, ImageFormat,
    InterfaceSpec, InterfaceType, LifecycleAction, PortForward, PortProto,
};
use vireo_driver::Connection;

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Machine name
    #[arg(long, required_unless_present = "quick")]
    pub name: Option<String>,
    /// Memory in MiB
    #[arg(long, default_value_t = 512)]
    pub memory: u64,
    /// Number of vCPUs
    #[arg(long, default_value_t = 1)]
    pub vcpus: u32,
    /// A disk: path=FILE[,size=GiB][,format=raw|qcow2][,bus=virtio][,readonly=on][,device=cdrom]
    /// (repeatable; a missing file with a size is created with qemu-img)
    #[arg(long)]
    pub disk: Vec<String>,
    /// Kernel boot: kernel=PATH[,initrd=PATH][,kernel_args=ARGS]
    #[arg(long)]
    pub boot: Option<String>,
    /// Network: user[,portforward=HOST:GUEST[/udp]]... or none (repeatable)
    #[arg(long)]
    pub network: Vec<String>,
    /// Graphics: vnc (local clients only, through a private socket), vnc,port=N|auto,password=PW
    /// (also a loopback TCP listener), vnc,socket=PATH, or none
    #[arg(long, default_value = "vnc")]
    pub graphics: String,
    /// Boot the given disks as they are (the only install mode of this backend)
    #[arg(long)]
    pub import: bool,
    /// Print the domain XML and do nothing else
    #[arg(long)]
    pub print_xml: bool,
    /// Start the machine without defining it
    #[arg(long)]
    pub transient: bool,
    /// Start the machine after defining it
    #[arg(long)]
    pub start: bool,
    /// Mark the machine for autostart
    #[arg(long)]
    pub autostart: bool,
    /// The quick machine: this computer's kernel with a generated busybox initramfs
    #[arg(long)]
    pub quick: bool,
    /// Kernel for --quick (default: $VIREO_QUICK_KERNEL, else the newest /boot/vmlinuz-*)
    #[arg(long, requires = "quick")]
    pub kernel: Option<PathBuf>,
    /// Module tree for --quick (default: lib/modules/VERSION beside the kernel's boot/)
    #[arg(long, requires = "quick")]
    pub modules: Option<PathBuf>,
    /// Static busybox for --quick (default: /bin/busybox)
    #[arg(long, requires = "quick")]
    pub busybox: Option<PathBuf>,
    /// Lifecycle actions, as in the domain XML
    #[arg(long, value_parser = ["destroy", "restart", "preserve", "rename-restart"])]
    pub on_poweroff: Option<String>,
    #[arg(long, value_parser = ["destroy", "restart", "preserve", "rename-restart"])]
    pub on_reboot: Option<String>,
    #[arg(long, value_parser = ["destroy", "restart", "preserve", "rename-restart", "coredump-destroy", "coredump-restart"])]
    pub on_crash: Option<String>,
}

/// `key=value,key=value` (the first bare word is returned as the kind).
fn opts(spec: &str) -> (Option<String>, Vec<(String, String)>) {
    let mut kind = None;
    let mut kv = Vec::new();
    for (i, part) in spec.split(',').enumerate() {
        match part.split_once('=') {
            Some((k, v)) => kv.push((k.trim().to_ascii_lowercase(), v.to_owned())),
            None if i == 0 => kind = Some(part.trim().to_owned()),
            None => kv.push((part.trim().to_ascii_lowercase(), String::new())),
        }
    }
    (kind, kv)
}

fn usage(msg: String) -> (u8, String) {
    (EXIT_USAGE, msg)
}

struct DiskSpec {
    path: PathBuf,
    size_gib: Option<f64>,
    format: String,
    readonly: bool,
    cdrom: bool,
}

fn parse_disk(spec: &str, default_path: &Path) -> Result<DiskSpec, (u8, String)> {
    let (kind, kv) = opts(spec);
    let mut d = DiskSpec {
        path: default_path.to_owned(),
        size_gib: None,
        format: String::new(),
        readonly: false,
        cdrom: false,
    };
    if let Some(k) = kind {
        d.path = PathBuf::from(k);
    }
    for (k, v) in kv {
        match k.as_str() {
            "path" => d.path = PathBuf::from(v),
            "size" => {
                d.size_gib = Some(v.parse().map_err(|_| {
                    usage(format!("--disk {spec}: size '{v}' is not a number of GiB"))
                })?)
            }
            "format" => d.format = v,
            "bus" if v == "virtio" => {}
            "bus" => {
                return Err(usage(format!(
                    "--disk {spec}: bus '{v}' is not supported (virtio only)"
                )))
            }
            "readonly" => d.readonly = matches!(v.as_str(), "on" | "yes" | "true" | ""),
            "device" if v == "cdrom" => d.cdrom = true,
            "device" if v == "disk" => {}
            _ => return Err(usage(format!("--disk {spec}: unknown option '{k}'"))),
        }
    }
    if d.format.is_empty() {
        d.format = if d.path.extension().is_some_and(|e| e == "qcow2") {
            "qcow2".into()
        } else {
            "raw".into()
        };
    }
    if d.format != "raw" && d.format != "qcow2" {
        return Err(usage(format!(
            "--disk {spec}: format '{}' is not supported (raw or qcow2)",
            d.format
        )));
    }
    if !d.path.is_absolute() {
        d.path = std::env::current_dir()
            .map(|c| c.join(&d.path))
            .unwrap_or(d.path);
    }
    Ok(d)
}

fn create_image(d: &DiskSpec) -> Result<(), (u8, String)> {
    let Some(size) = d.size_gib else {
        return Ok(());
    };
    if d.path.exists() {
        return Ok(());
    }
    if let Some(dir) = d.path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| (EXIT_ERROR, format!("{}: {e}", dir.display())))?;
    }
    let bytes = (size * 1024.0 * 1024.0 * 1024.0) as u64;
    let out = std::process::Command::new("qemu-img")
        .args(["create", "-q", "-f", &d.format])
        .arg(&d.path)
        .arg(bytes.to_string())
        .output()
        .map_err(|e| {
            (
                EXIT_ERROR,
                format!("cannot run qemu-img (package qemu-utils): {e}"),
            )
        })?;
    if !out.status.success() {
        return Err((
            EXIT_ERROR,
            format!(
                "qemu-img create {}: {}",
                d.path.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        ));
    }
    Ok(())
}

/// The `<graphics>` element `--graphics` asks for, or `None` for `--graphics none`.
fn graphics_element(a: &CreateArgs) -> Result<Option<Element>, (u8, String)> {
    let (gkind, gkv) = opts(&a.graphics);
    match gkind.as_deref() {
        Some("vnc") | None => {}
        Some("none") => return Ok(None),
        Some(k) => {
            return Err((
                EXIT_INVALID,
                format!("--graphics {k}: not supported by the Vireo backend (vnc or none)"),
            ))
        }
    }
    let mut port: Option<String> = None;
    let mut listen = "127.0.0.1".to_owned();
    let mut passwd = None;
    let mut socket = None;
    for (k, v) in gkv {
        match k.as_str() {
            "port" => port = Some(v),
            "listen" => listen = v,
            "password" | "passwd" => passwd = Some(v),
            "socket" => socket = Some(v),
            _ => return Err(usage(format!("--graphics: unknown option '{k}'"))),
        }
    }
    let tcp = port.is_some() || passwd.is_some() || listen != "127.0.0.1";
    let g = Element::new("graphics").with_attr("type", "vnc");
    if let Some(s) = socket {
        let mut spec = GraphicsSpec::vnc_socket(&s);
        spec.passwd = passwd;
        // libvirt writes the socket both as an attribute and as a listen element.
        let mut e = spec.to_element();
        e.set_attr("socket", &s);
        return Ok(Some(e));
    }
    if !tcp {
        // No network listener: Vireo's own clients (GUI, vireoctl) use the private socket in
        // the runtime directory. A TCP listener needs a password (the VMM insists).
        return Ok(Some(
            g.with_child(Element::new("listen").with_attr("type", "none")),
        ));
    }
    let Some(pw) = passwd else {
        return Err(usage("--graphics vnc,port=...: a TCP VNC listener needs password=... (without port= only local clients connect, through a private socket)".into()));
    };
    let (p, auto) = match port.as_deref() {
        None | Some("-1") | Some("auto") => (-1, true),
        Some(p) => (
            p.parse::<i32>()
                .map_err(|_| usage(format!("--graphics: port '{p}' is not a number")))?,
            false,
        ),
    };
    Ok(Some(
        GraphicsSpec {
            graphics_type: GraphicsType::Vnc,
            port: Some(p),
            autoport: Some(auto),
            listen: Some(listen),
            socket: None,
            passwd: Some(pw),
        }
        .to_element(),
    ))
}

/// One `--network` option as an interface (`None` for `none`).
fn interface_spec(n: &str) -> Result<Option<InterfaceSpec>, (u8, String)> {
    let (kind, kv) = opts(n);
    match kind.as_deref() {
        Some("none") => return Ok(None),
        Some("user") => {}
        Some(k) => {
            return Err((
                EXIT_INVALID,
                format!(
                    "--network {n}: type '{k}' is not supported by the Vireo backend (use user)"
                ),
            ))
        }
        None if kv
            .iter()
            .any(|(k, _)| matches!(k.as_str(), "bridge" | "network" | "type")) =>
        {
            return Err((
                EXIT_INVALID,
                format!("--network {n}: not supported by the Vireo backend (use user)"),
            ))
        }
        None => return Err(usage(format!("--network {n}: say user or none"))),
    }
    let mut port_forwards = Vec::new();
    for (k, v) in &kv {
        if k != "portforward" {
            return Err(usage(format!("--network {n}: unknown option '{k}'")));
        }
        let (ports, proto) = v.split_once('/').unwrap_or((v, "tcp"));
        let proto = match proto {
            "tcp" => PortProto::Tcp,
            "udp" => PortProto::Udp,
            p => return Err(usage(format!("--network {n}: protocol '{p}' (tcp or udp)"))),
        };
        let (h, g) = ports
            .split_once(':')
            .ok_or_else(|| usage(format!("--network {n}: portforward is HOST:GUEST")))?;
        let port = |s: &str| {
            s.parse::<u16>()
                .ok()
                .filter(|&p| p > 0)
                .ok_or_else(|| usage(format!("--network {n}: bad port '{s}'")))
        };
        let mut pf = PortForward::tcp(port(h)?, port(g)?);
        pf.proto = proto;
        port_forwards.push(pf);
    }
    Ok(Some(InterfaceSpec {
        iface_type: InterfaceType::User,
        mac: None,
        source: None,
        model: Some("virtio".into()),
        backend: None,
        port_forwards,
    }))
}

fn action(s: Option<&str>, default: LifecycleAction) -> LifecycleAction {
    s.map_or(default, LifecycleAction::from)
}

/// Builds the document with `vireo-domain`'s [`DomainBuilder`], then adds through its views
/// what the builder does not choose the way `vireoctl create` does (boot entry, SATA CD-ROMs,
/// a pty serial console, the VNC graphics forms). The result is in the canonical form libvirt
/// itself writes, so that `virsh define` + `dumpxml` gives it back unchanged.
fn build_xml(
    a: &CreateArgs,
    name: &str,
    kernel: &str,
    initrd: Option<&str>,
    cmdline: Option<&str>,
    disks: &[DiskSpec],
) -> Result<String, (u8, String)> {
    let bytes = a
        .memory
        .checked_mul(1 << 20)
        .filter(|&b| b > 0)
        .ok_or_else(|| usage("--memory must be at least 1 MiB".into()))?;
    if a.vcpus == 0 {
        return Err(usage("--vcpus must be at least 1".into()));
    }
    let mut b = DomainBuilder::new(name)
        .memory(bytes)
        .vcpus(a.vcpus)
        .kernel(kernel)
        .serial_console(false)
        .inputs(false)
        .memballoon_none(false)
        .video(None)
        .rng(true)
        .lifecycle(
            action(a.on_poweroff.as_deref(), LifecycleAction::Destroy),
            action(a.on_reboot.as_deref(), LifecycleAction::Restart),
            action(a.on_crash.as_deref(), LifecycleAction::Destroy),
        );
    if let Some(i) = initrd {
        b = b.initrd(i);
    }
    if let Some(c) = cmdline {
        b = b.cmdline(c);
    }
    let nets: Vec<String> = if a.quick && a.network.is_empty() {
        vec!["user".into()]
    } else {
        a.network.clone()
    };
    for n in &nets {
        if let Some(spec) = interface_spec(n)? {
            b = b.interface(spec);
        }
    }
    let graphics = graphics_element(a)?;
    let invalid = |e: vireo_driver::domain::Errors| (EXIT_INVALID, e.to_string());
    let mut dom = b.build().map_err(invalid)?;
    // libvirt adds the boot entry on define even for a kernel boot.
    dom.os_mut().set_boot_devs(&[BootDev::Hd]);
    let mut devs = dom.devices_mut();
    let (mut vd, mut sd) = (b'a', b'a');
    for d in disks {
        let mut spec = vireo_driver::domain::DiskSpec::file(
            &d.path.display().to_string(),
            ImageFormat::from(d.format.as_str()),
            "",
        );
        let el = if d.cdrom {
            spec.device = DiskDevice::Cdrom;
            spec.target_dev = format!("sd{}", sd as char);
            spec.target_bus = Some(DiskBus::Sata);
            spec.readonly = true;
            // The address libvirt would assign; with it the document comes back unchanged.
            let unit = (sd - b'a').to_string();
            sd += 1;
            spec.to_element().with_child(
                Element::new("address")
                    .with_attr("type", "drive")
                    .with_attr("controller", "0")
                    .with_attr("bus", "0")
                    .with_attr("target", "0")
                    .with_attr("unit", &unit),
            )
        } else {
            spec.target_dev = format!("vd{}", vd as char);
            spec.readonly = d.readonly;
            vd += 1;
            spec.to_element()
        };
        if vd > b'z' || sd > b'z' {
            return Err(usage("too many disks".into()));
        }
        devs.add(el);
    }
    if sd > b'a' {
        devs.add(
            Element::new("controller")
                .with_attr("type", "sata")
                .with_attr("index", "0"),
        );
    }
    devs.add_new_machine_consoles(graphics);
    dom.validate().map_err(invalid)?;
    Ok(dom.to_xml())
}

pub fn create(a: CreateArgs, conn: &Connection) -> CtlResult {
    let name = a.name.clone().unwrap_or_else(|| "quick".into());
    let images = conn.paths().images();
    let (kernel, initrd, cmdline) = if a.quick {
        if a.boot.is_some() {
            return Err(usage(
                "--quick builds its own boot; leave out --boot".into(),
            ));
        }
        let q = if a.print_xml {
            // Do not write anything for --print-xml: only find what would be used.
            let k = vireo_driver::quick::find_kernel(a.kernel.as_deref(), a.modules.as_deref())
                .map_err(|e| (EXIT_ERROR, e.to_string()))?;
            vireo_driver::quick::find_busybox(a.busybox.as_deref())
                .map_err(|e| (EXIT_ERROR, e.to_string()))?;
            vireo_driver::quick::QuickMachine {
                kernel: k,
                initrd: images.join(format!("{name}-initrd.img")),
                cmdline: vireo_driver::quick::QUICK_CMDLINE.into(),
            }
        } else {
            vireo_driver::quick::prepare(
                &images,
                &name,
                a.kernel.as_deref(),
                a.modules.as_deref(),
                a.busybox.as_deref(),
            )
            .map_err(|e| (EXIT_ERROR, e.to_string()))?
        };
        (
            q.kernel.image.display().to_string(),
            Some(q.initrd.display().to_string()),
            Some(q.cmdline),
        )
    } else {
        let boot = a.boot.as_deref().ok_or_else(|| {
            usage(
                "--boot kernel=PATH is required (the Vireo backend boots a kernel; or use --quick)"
                    .into(),
            )
        })?;
        let (_, kv) = opts(&format!(",{boot}"));
        let (mut k, mut i, mut c) = (None, None, None);
        for (key, v) in kv {
            match key.as_str() {
                "kernel" => k = Some(v),
                "initrd" => i = Some(v),
                "kernel_args" | "cmdline" => c = Some(v),
                "" => {}
                other => {
                    return Err(usage(format!(
                        "--boot: '{other}' is not supported (kernel=, initrd=, kernel_args=)"
                    )))
                }
            }
        }
        let k = k.ok_or_else(|| usage("--boot needs kernel=PATH".into()))?;
        let abs = |p: String| -> String {
            if Path::new(&p).is_absolute() {
                p
            } else {
                std::env::current_dir()
                    .map(|d| d.join(&p).display().to_string())
                    .unwrap_or(p)
            }
        };
        (abs(k), i.map(abs), c)
    };
    let mut disks = Vec::new();
    for (n, spec) in a.disk.iter().enumerate() {
        let default = images.join(if n == 0 {
            format!("{name}.qcow2")
        } else {
            format!("{name}-{n}.qcow2")
        });
        disks.push(parse_disk(spec, &default)?);
    }
    let xml = build_xml(
        &a,
        &name,
        &kernel,
        initrd.as_deref(),
        cmdline.as_deref(),
        &disks,
    )?;
    if a.print_xml {
        print!("{xml}");
        return Ok(EXIT_OK);
    }
    for d in &disks {
        create_image(d)?;
    }
    if a.transient {
        let info = conn.create_transient(&xml).map_err(fail)?;
        println!("Domain '{}' created and started (transient)", info.name);
        return Ok(EXIT_OK);
    }
    let info = conn.define_xml(&xml).map_err(fail)?;
    println!("Domain '{}' defined", info.name);
    if a.autostart {
        conn.set_autostart(&info.name, true).map_err(fail)?;
    }
    if a.start {
        conn.start(&info.name).map_err(fail)?;
        println!("Domain '{}' started", info.name);
    }
    Ok(EXIT_OK)
}
