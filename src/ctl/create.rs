//! `vireoctl create`: a new machine with virt-install's options, or the quick machine.
//!
//! Unlike virt-install, `create` only defines the machine (add `--start`); `--transient` starts
//! it without a definition. Kernel boot is the only boot method of the Vireo backend, so
//! `--import` (boot the given disks) is the only install mode and is accepted for compatibility.

use crate::ctl_exit::{fail, CtlResult, EXIT_ERROR, EXIT_INVALID, EXIT_OK, EXIT_USAGE};
use clap::Args;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
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

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('\'', "&apos;")
        .replace('"', "&quot;")
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

fn random_mac() -> String {
    let b = vireo_driver::model::random_bytes::<3>();
    format!("52:54:00:{:02x}:{:02x}:{:02x}", b[0], b[1], b[2])
}

/// Builds the XML in the canonical form libvirt itself writes (element order, quoting), so that
/// `virsh define` + `dumpxml` gives it back unchanged.
fn build_xml(
    a: &CreateArgs,
    name: &str,
    kernel: &str,
    initrd: Option<&str>,
    cmdline: Option<&str>,
    disks: &[DiskSpec],
) -> Result<String, (u8, String)> {
    let uuid = vireo_driver::model::random_uuid();
    let kib = a
        .memory
        .checked_mul(1024)
        .filter(|&k| k > 0)
        .ok_or_else(|| usage("--memory must be at least 1 MiB".into()))?;
    if a.vcpus == 0 {
        return Err(usage("--vcpus must be at least 1".into()));
    }
    let mut x = String::new();
    let _ = writeln!(x, "<domain type='kvm'>");
    let _ = writeln!(x, "  <name>{}</name>", esc(name));
    let _ = writeln!(x, "  <uuid>{uuid}</uuid>");
    let _ = writeln!(x, "  <memory unit='KiB'>{kib}</memory>");
    let _ = writeln!(x, "  <currentMemory unit='KiB'>{kib}</currentMemory>");
    let _ = writeln!(x, "  <vcpu placement='static'>{}</vcpu>", a.vcpus);
    let _ = writeln!(x, "  <os>");
    let _ = writeln!(x, "    <type arch='x86_64'>hvm</type>");
    let _ = writeln!(x, "    <kernel>{}</kernel>", esc(kernel));
    if let Some(i) = initrd {
        let _ = writeln!(x, "    <initrd>{}</initrd>", esc(i));
    }
    if let Some(c) = cmdline {
        let _ = writeln!(x, "    <cmdline>{}</cmdline>", esc(c));
    }
    let _ = writeln!(x, "    <boot dev='hd'/>");
    let _ = writeln!(x, "  </os>");
    let _ = writeln!(x, "  <features>\n    <acpi/>\n    <apic/>\n  </features>");
    let _ = writeln!(x, "  <clock offset='utc'/>");
    let _ = writeln!(
        x,
        "  <on_poweroff>{}</on_poweroff>",
        a.on_poweroff.as_deref().unwrap_or("destroy")
    );
    let _ = writeln!(
        x,
        "  <on_reboot>{}</on_reboot>",
        a.on_reboot.as_deref().unwrap_or("restart")
    );
    let _ = writeln!(
        x,
        "  <on_crash>{}</on_crash>",
        a.on_crash.as_deref().unwrap_or("destroy")
    );
    let _ = writeln!(x, "  <devices>");
    let mut vd = b'a';
    let mut sd = b'a';
    for d in disks {
        let dev = if d.cdrom { "cdrom" } else { "disk" };
        let _ = writeln!(x, "    <disk type='file' device='{dev}'>");
        let _ = writeln!(x, "      <driver name='qemu' type='{}'/>", d.format);
        let _ = writeln!(
            x,
            "      <source file='{}'/>",
            esc(&d.path.display().to_string())
        );
        if d.cdrom {
            let _ = writeln!(x, "      <target dev='sd{}' bus='sata'/>", sd as char);
            let _ = writeln!(x, "      <readonly/>");
            // The address libvirt would assign; with it the document comes back unchanged.
            let _ = writeln!(
                x,
                "      <address type='drive' controller='0' bus='0' target='0' unit='{}'/>",
                sd - b'a'
            );
            sd += 1;
        } else {
            let _ = writeln!(x, "      <target dev='vd{}' bus='virtio'/>", vd as char);
            vd += 1;
        }
        if d.readonly && !d.cdrom {
            let _ = writeln!(x, "      <readonly/>");
        }
        let _ = writeln!(x, "    </disk>");
        if vd > b'z' || sd > b'z' {
            return Err(usage("too many disks".into()));
        }
    }
    if sd > b'a' {
        let _ = writeln!(x, "    <controller type='sata' index='0'/>");
    }
    let nets: Vec<&String> = if a.network.is_empty() && !a.quick {
        Vec::new()
    } else {
        a.network.iter().collect()
    };
    let default_user = String::from("user");
    let nets = if a.quick && a.network.is_empty() {
        vec![&default_user]
    } else {
        nets
    };
    for n in nets {
        let (kind, kv) = opts(n);
        match kind.as_deref() {
            Some("none") => continue,
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
        let _ = writeln!(x, "    <interface type='user'>");
        let _ = writeln!(x, "      <mac address='{}'/>", random_mac());
        for (k, v) in &kv {
            if k != "portforward" {
                return Err(usage(format!("--network {n}: unknown option '{k}'")));
            }
            let (ports, proto) = v.split_once('/').unwrap_or((v, "tcp"));
            let (h, g) = ports
                .split_once(':')
                .ok_or_else(|| usage(format!("--network {n}: portforward is HOST:GUEST")))?;
            let h: u16 = h
                .parse()
                .map_err(|_| usage(format!("--network {n}: bad port '{h}'")))?;
            let g: u16 = g
                .parse()
                .map_err(|_| usage(format!("--network {n}: bad port '{g}'")))?;
            let _ = writeln!(x, "      <portForward proto='{proto}'>");
            let _ = writeln!(x, "        <range start='{h}' to='{g}'/>");
            let _ = writeln!(x, "      </portForward>");
        }
        let _ = writeln!(x, "      <model type='virtio'/>");
        let _ = writeln!(x, "    </interface>");
    }
    let _ = writeln!(
        x,
        "    <serial type='pty'>\n      <target port='0'/>\n    </serial>"
    );
    let _ = writeln!(
        x,
        "    <console type='pty'>\n      <target type='serial' port='0'/>\n    </console>"
    );
    let (gkind, gkv) = opts(&a.graphics);
    let vnc = match gkind.as_deref() {
        Some("vnc") => true,
        Some("none") => false,
        Some(k) => {
            return Err((
                EXIT_INVALID,
                format!("--graphics {k}: not supported by the Vireo backend (vnc or none)"),
            ))
        }
        None => true,
    };
    if vnc {
        let _ = writeln!(x, "    <input type='tablet' bus='virtio'/>");
    }
    let _ = writeln!(x, "    <input type='keyboard' bus='ps2'/>");
    if vnc {
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
        let pw = passwd
            .map(|p| format!(" passwd='{}'", esc(&p)))
            .unwrap_or_default();
        if !tcp && socket.is_none() {
            // No network listener: Vireo's own clients (GUI, vireoctl) use the private socket in
            // the runtime directory. A TCP listener needs a password (the VMM insists).
            let _ = writeln!(
                x,
                "    <graphics type='vnc'>\n      <listen type='none'/>\n    </graphics>"
            );
        } else if let Some(s) = socket {
            let _ = writeln!(x, "    <graphics type='vnc' socket='{0}'{pw}>\n      <listen type='socket' socket='{0}'/>\n    </graphics>", esc(&s));
        } else {
            if pw.is_empty() {
                return Err(usage("--graphics vnc,port=...: a TCP VNC listener needs password=... (without port= only local clients connect, through a private socket)".into()));
            }
            let (p, auto) = match port.as_deref() {
                None | Some("-1") | Some("auto") => ("-1".to_owned(), "yes"),
                Some(p) => (p.to_owned(), "no"),
            };
            let _ = writeln!(
                x,
                "    <graphics type='vnc' port='{p}' autoport='{auto}' listen='{0}'{pw}>\n      <listen type='address' address='{0}'/>\n    </graphics>",
                esc(&listen)
            );
        }
    }
    let _ = writeln!(
        x,
        "    <video>\n      <model type='virtio' heads='1' primary='yes'/>\n    </video>"
    );
    let _ = writeln!(x, "    <rng model='virtio'>\n      <backend model='random'>/dev/urandom</backend>\n    </rng>");
    let _ = writeln!(x, "  </devices>");
    let _ = writeln!(x, "</domain>");
    Ok(x)
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
