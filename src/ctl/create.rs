//! `vireoctl create`: a new machine with virt-install's options, or the quick machine. This
//! file only maps the options to the driver's description of a new machine
//! ([`vireo_driver::usecase::NewMachine`]); the machine's shape, its disks and every check are
//! the driver's, shared with the GUI's wizard.
//!
//! Unlike virt-install, `create` only defines the machine (add `--start`); `--transient` starts
//! it without a definition. A machine boots its firmware (`--cdrom ISO`, `--import`, `--boot
//! hd,cdrom,menu=on`, `--boot uefi`, with virt-install's meanings) or a kernel directly
//! (`--boot kernel=`).
//! There is no separate install phase: an ISO stays in its CD-ROM drive, first in the boot
//! order, until the user changes the order.

use crate::ctl_exit::{fail, CtlResult, EXIT_INVALID, EXIT_OK, EXIT_USAGE};
use clap::Args;
use std::path::{Path, PathBuf};
use vireo_driver::domain::{BootDev, LifecycleAction, Mac, PortForward, PortProto, Uuid};
use vireo_driver::usecase::{
    self, DiskFormat, DiskRequest, FirmwareBoot, Graphics, HostKernel, Image, KernelBoot, Media,
    NewImageAt, NewMachine, Nic, Source,
};
use vireo_driver::Connection;

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Machine name
    #[arg(long, required_unless_present = "quick")]
    pub name: Option<String>,
    /// The machine's UUID (default: a random one)
    #[arg(long)]
    pub uuid: Option<String>,
    /// Metadata: title=TEXT
    #[arg(long)]
    pub metadata: Option<String>,
    /// Memory in MiB (default: what --osinfo's system recommends, capped at half of this
    /// computer's memory; else 512)
    #[arg(long)]
    pub memory: Option<u64>,
    /// Number of vCPUs (default: what --osinfo's system recommends, capped by this computer's
    /// processors; else 1)
    #[arg(long)]
    pub vcpus: Option<u32>,
    /// The operating system, from libosinfo's database (`vireoctl osinfo-query os`): NAME (a
    /// short id such as debian12, or an id), detect=on[,require=on|off] (from the --cdrom
    /// ISO's labels; without require=on an unknown ISO gets the generic machine), or generic.
    /// It is kept in the machine's metadata; its recommended memory and processors are the
    /// defaults, and a system that supports UEFI gets it unless --boot says otherwise
    #[arg(long, value_name = "SPEC")]
    pub osinfo: Option<String>,
    /// The machine type: pc (i440FX with PCI and the standard VGA, what installers, OS images
    /// and UEFI expect) or vireo (virtio-mmio, quickest to boot a kernel). Default: pc when
    /// the firmware boots the machine (--cdrom, --import, --boot hd|cdrom|menu=on|uefi, without
    /// kernel=), vireo for a direct kernel boot (--boot kernel=, --quick)
    #[arg(long, value_name = "NAME")]
    pub machine: Option<String>,
    /// A disk: path=FILE[,size=GiB][,format=raw|qcow2][,bus=virtio][,readonly=on][,device=cdrom]
    /// (repeatable). With size= a new image is made with qemu-img (in Vireo's images
    /// directory without path=); a file that exists is never overwritten. Without format= it
    /// is qcow2 for a .qcow2 name, else raw (never read from the file).
    #[arg(long)]
    pub disk: Vec<String>,
    /// An installer or live ISO in a CD-ROM drive, booted first by the machine's firmware
    #[arg(long, value_name = "PATH")]
    pub cdrom: Option<PathBuf>,
    /// How the machine boots. Firmware (SeaBIOS, or UEFI with uefi): a boot order of hd, cdrom
    /// (the first hard disk, the first CD-ROM), menu=on|off, bootmenu.timeout=MS, uefi (OVMF,
    /// on the pc machine), loader=PATH (another BIOS image, or with uefi another UEFI code
    /// image), e.g. hd,cdrom,menu=on or uefi. Or a kernel booted directly:
    /// kernel=PATH[,initrd=PATH][,kernel_args=ARGS]
    #[arg(long)]
    pub boot: Option<String>,
    /// Network: user[,mac=MAC][,portforward=HOST:GUEST[/udp]]... or none (repeatable;
    /// default: one user-mode network)
    #[arg(long)]
    pub network: Vec<String>,
    /// Graphics: vnc (local clients only, through a private socket), vnc,port=N|auto,password=PW
    /// (also a loopback TCP listener), vnc,socket=PATH, or none
    #[arg(long, default_value = "vnc")]
    pub graphics: String,
    /// Boot the first --disk as it is: the firmware starts its boot loader (or, with --boot
    /// kernel=, the kernel given starts with it as its first disk)
    #[arg(long, conflicts_with = "cdrom")]
    pub import: bool,
    /// Print the domain XML and do nothing else
    #[arg(long)]
    pub print_xml: bool,
    /// Start the machine without defining it
    #[arg(long, conflicts_with = "autostart")]
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

fn gib(spec: &str, v: &str) -> Result<u64, (u8, String)> {
    v.parse::<f64>()
        .ok()
        .filter(|g| g.is_finite() && *g > 0.0)
        .map(|g| (g * f64::from(1u32 << 30)).ceil() as u64)
        .ok_or_else(|| usage(format!("--disk {spec}: size '{v}' is not a number of GiB")))
}

fn absolute(p: PathBuf, cwd: &Path) -> PathBuf {
    if p.is_absolute() {
        p
    } else {
        cwd.join(p)
    }
}

/// One `--disk` option.
fn disk_request(spec: &str, cwd: &Path) -> Result<DiskRequest, (u8, String)> {
    let (kind, kv) = opts(spec);
    let mut path = kind.filter(|k| !k.is_empty()).map(PathBuf::from);
    let (mut size, mut format, mut readonly, mut media) = (None, None, false, Media::Disk);
    for (k, v) in kv {
        match k.as_str() {
            "path" => path = Some(PathBuf::from(v)),
            "size" => size = Some(gib(spec, &v)?),
            "format" => {
                format = Some(DiskFormat::parse(&v).ok_or_else(|| {
                    usage(format!(
                        "--disk {spec}: format '{v}' is not supported (raw or qcow2)"
                    ))
                })?)
            }
            "bus" if v == "virtio" => {}
            "bus" => {
                return Err(usage(format!(
                    "--disk {spec}: bus '{v}' is not supported (virtio only)"
                )))
            }
            "readonly" => readonly = matches!(v.as_str(), "on" | "yes" | "true" | ""),
            "device" if v == "cdrom" => media = Media::Cdrom,
            "device" if v == "disk" => {}
            _ => return Err(usage(format!("--disk {spec}: unknown option '{k}'"))),
        }
    }
    let path = path.map(|p| absolute(p, cwd));
    // The file name pre-fills the format the user did not give.
    let format_of = |p: &Path| format.unwrap_or_else(|| usecase::format_for_name(p));
    let image = match (path, size) {
        (Some(path), None) => Image::Existing {
            format: format_of(&path),
            path,
        },
        (Some(path), Some(size_bytes)) => Image::New {
            format: format_of(&path),
            at: NewImageAt::Path(path),
            size_bytes,
        },
        (None, Some(size_bytes)) => Image::New {
            at: NewImageAt::ImagesDir,
            size_bytes,
            format: format.unwrap_or(usecase::DEFAULT_IMAGE_FORMAT),
        },
        (None, None) => {
            return Err(usage(format!(
                "--disk {spec}: say path=FILE, or size=GiB for a new image"
            )))
        }
    };
    Ok(DiskRequest {
        image,
        media,
        readonly,
    })
}

/// `--graphics`.
fn graphics(spec: &str) -> Result<Graphics, (u8, String)> {
    let (gkind, gkv) = opts(spec);
    match gkind.as_deref() {
        Some("vnc") | None => {}
        Some("none") => return Ok(Graphics::None),
        Some(k) => {
            return Err((
                EXIT_INVALID,
                format!("--graphics {k}: not supported by the Vireo backend (vnc or none)"),
            ))
        }
    }
    let mut port: Option<String> = None;
    let mut listen = "127.0.0.1".to_owned();
    let mut password = None;
    let mut socket = None;
    for (k, v) in gkv {
        match k.as_str() {
            "port" => port = Some(v),
            "listen" => listen = v,
            "password" | "passwd" => password = Some(v),
            "socket" => socket = Some(v),
            _ => return Err(usage(format!("--graphics: unknown option '{k}'"))),
        }
    }
    if let Some(s) = socket {
        return Ok(Graphics::Socket {
            path: PathBuf::from(s),
            password,
        });
    }
    if port.is_none() && password.is_none() && listen == "127.0.0.1" {
        // No network listener: Vireo's own clients (GUI, vireoctl) use the private socket in
        // the runtime directory. A TCP listener needs a password (the VMM insists).
        return Ok(Graphics::Local);
    }
    let Some(password) = password else {
        return Err(usage("--graphics vnc,port=...: a TCP VNC listener needs password=... (without port= only local clients connect, through a private socket)".into()));
    };
    let port = match port.as_deref() {
        None | Some("-1") | Some("auto") => None,
        Some(p) => Some(
            p.parse::<u16>()
                .map_err(|_| usage(format!("--graphics: port '{p}' is not a number")))?,
        ),
    };
    Ok(Graphics::Tcp {
        port,
        listen,
        password,
    })
}

/// One `--network` option as a network card (`None` for `none`).
fn nic(n: &str) -> Result<Option<Nic>, (u8, String)> {
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
    let mut card = Nic::default();
    for (k, v) in &kv {
        if k == "mac" {
            card.mac = Some(
                Mac::parse(v)
                    .ok_or_else(|| usage(format!("--network {n}: '{v}' is not a MAC address")))?,
            );
            continue;
        }
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
        card.port_forwards.push(pf);
    }
    Ok(Some(card))
}

/// What `--boot` says: a kernel booted directly, or the firmware's boot order and menu.
#[derive(Debug, Default)]
struct BootOption {
    kernel: Option<KernelBoot>,
    firmware: FirmwareBoot,
}

/// `on`/`off` as virt-install spells them.
fn on_off(spec: &str, key: &str, v: &str) -> Result<bool, (u8, String)> {
    match v {
        "on" | "yes" | "true" => Ok(true),
        "off" | "no" | "false" => Ok(false),
        _ => Err(usage(format!("--boot {spec}: {key}={v} is on or off"))),
    }
}

/// `--boot`: `hd,cdrom,menu=on,...` for the firmware, or `kernel=PATH[,initrd=..][,kernel_args=..]`.
fn boot_option(spec: &str, cwd: &Path) -> Result<BootOption, (u8, String)> {
    let (_, kv) = opts(&format!(",{spec}"));
    let (mut k, mut i, mut c) = (None, None, None);
    let mut fw = FirmwareBoot::default();
    for (key, v) in kv {
        match (key.as_str(), v.as_str()) {
            ("kernel", _) => k = Some(v),
            ("initrd", _) => i = Some(v),
            ("kernel_args" | "cmdline", _) => c = Some(v),
            ("hd" | "cdrom" | "network" | "fd", "") => fw.order.push(BootDev::from(key.as_str())),
            ("menu" | "bootmenu.enable" | "bootmenu", _) => fw.menu = Some(on_off(spec, &key, &v)?),
            ("bootmenu.timeout", _) => {
                fw.menu_timeout_ms = Some(v.parse().map_err(|_| {
                    usage(format!(
                        "--boot {spec}: bootmenu.timeout={v} is not milliseconds"
                    ))
                })?)
            }
            ("loader", _) => fw.loader = Some(absolute(v.into(), cwd)),
            ("uefi", "") | ("firmware", "efi") => fw.uefi = true,
            ("firmware", "bios") => {}
            ("", "") => {}
            (other, _) => {
                return Err(usage(format!(
                    "--boot: '{other}' is not supported (hd, cdrom, menu=, bootmenu.timeout=, \
                     uefi, loader=; or kernel=, initrd=, kernel_args=)"
                )))
            }
        }
    }
    let kernel = match k {
        Some(k) => {
            if fw != FirmwareBoot::default() {
                return Err(usage(format!(
                    "--boot {spec}: kernel= boots the kernel directly; a boot order, menu=, \
                     uefi and loader= belong to firmware boot"
                )));
            }
            Some(KernelBoot {
                kernel: absolute(k.into(), cwd),
                initrd: i.map(|i| absolute(i.into(), cwd)),
                cmdline: c,
            })
        }
        None if i.is_some() || c.is_some() => {
            return Err(usage(format!(
                "--boot {spec}: initrd= and kernel_args= need kernel=PATH"
            )))
        }
        None => None,
    };
    Ok(BootOption {
        kernel,
        firmware: fw,
    })
}

/// The description of the machine the options ask for (relative paths are taken from `cwd`).
fn describe(a: &CreateArgs, cwd: &Path) -> Result<NewMachine, (u8, String)> {
    let mut disks = a
        .disk
        .iter()
        .map(|d| disk_request(d, cwd))
        .collect::<Result<Vec<_>, _>>()?;
    let boot = a.boot.as_deref().map(|b| boot_option(b, cwd)).transpose()?;
    let source = if a.quick {
        if a.boot.is_some() || a.cdrom.is_some() {
            return Err(usage(
                "--quick builds its own boot; leave out --boot and --cdrom".into(),
            ));
        }
        Source::HostKernel(HostKernel {
            kernel: a.kernel.clone(),
            modules: a.modules.clone(),
            busybox: a.busybox.clone(),
        })
    } else if let Some(BootOption {
        kernel: Some(boot), ..
    }) = boot
    {
        if a.cdrom.is_some() {
            return Err(usage(
                "--cdrom boots through the firmware, --boot kernel= boots a kernel directly: \
                 give one (an ISO for the kernel's use goes in --disk PATH,device=cdrom)"
                    .into(),
            ));
        }
        match disks.first() {
            Some(DiskRequest {
                image: Image::Existing { path, format },
                media: Media::Disk,
                readonly: false,
            }) if a.import => {
                let source = Source::DiskImage {
                    path: path.clone(),
                    format: *format,
                    boot,
                };
                disks.remove(0);
                source
            }
            _ => Source::Kernel(boot),
        }
    } else {
        if a.import && disks.is_empty() {
            return Err(usage("--import boots the first --disk: give one".into()));
        }
        if boot.is_none() && a.cdrom.is_none() && !a.import {
            return Err(usage(
                "say how the machine boots: --cdrom ISO, --import (the first --disk has a boot \
                 loader), --boot hd,cdrom (firmware), --boot kernel=PATH, or --quick"
                    .into(),
            ));
        }
        Source::Firmware(FirmwareBoot {
            cdrom: a.cdrom.clone().map(|p| absolute(p, cwd)),
            ..boot.map(|b| b.firmware).unwrap_or_default()
        })
    };
    let name = a.name.as_deref().unwrap_or("quick");
    let mut m = NewMachine::new(name, source);
    m.disks = disks;
    m.memory_mib = a.memory.unwrap_or(usecase::DEFAULT_MEMORY_MIB);
    m.vcpus = a.vcpus.unwrap_or(usecase::DEFAULT_VCPUS);
    m.machine = a.machine.clone();
    if let Some(u) = &a.uuid {
        m.uuid = Some(Uuid::parse(u).ok_or_else(|| usage(format!("--uuid {u}: not a UUID")))?);
    }
    if let Some(meta) = &a.metadata {
        for (k, v) in opts(&format!(",{meta}")).1 {
            match k.as_str() {
                "title" => m.title = Some(v),
                "" => {}
                other => {
                    return Err(usage(format!(
                        "--metadata: '{other}' is not supported (title=)"
                    )))
                }
            }
        }
    }
    if !a.network.is_empty() {
        m.networks = Vec::new();
        for n in &a.network {
            m.networks.extend(nic(n)?);
        }
    }
    m.graphics = graphics(&a.graphics)?;
    let action = |s: &Option<String>, default: &LifecycleAction| {
        s.as_deref().map_or(default.clone(), LifecycleAction::from)
    };
    m.lifecycle.on_poweroff = action(&a.on_poweroff, &m.lifecycle.on_poweroff);
    m.lifecycle.on_reboot = action(&a.on_reboot, &m.lifecycle.on_reboot);
    m.lifecycle.on_crash = action(&a.on_crash, &m.lifecycle.on_crash);
    m.autostart = a.autostart;
    m.start = a.start;
    m.transient = a.transient;
    Ok(m)
}

/// What the system's profile decides where the options leave it open: the metadata, memory
/// and vCPUs, and UEFI for a firmware boot whose --boot does not say.
fn apply_profile(a: &CreateArgs, m: &mut NewMachine, p: &vireo_driver::osinfo::Profile) {
    m.os = p.os_id.clone();
    if a.memory.is_none() {
        m.memory_mib = p.memory_mib;
    }
    if a.vcpus.is_none() {
        m.vcpus = p.vcpus;
    }
    if let (Source::Firmware(fw), None) = (&mut m.source, &a.boot) {
        fw.uefi = p.uefi;
    }
}

pub fn create(a: CreateArgs, conn: &Connection) -> CtlResult {
    let cwd = std::env::current_dir().unwrap_or_default();
    let mut m = describe(&a, &cwd)?;
    if let Some(spec) = &a.osinfo {
        let choice = crate::osinfo::choice(spec).map_err(usage)?;
        let resolved = crate::osinfo::resolve(&choice, a.cdrom.as_deref())?;
        if let Some(note) = &resolved.note {
            eprintln!("vireoctl: --osinfo {spec}: {note}");
        }
        apply_profile(&a, &mut m, &resolved.profile);
    }
    let plan = usecase::plan(conn, &m).map_err(fail)?;
    if a.print_xml {
        print!("{}", plan.xml);
        return Ok(EXIT_OK);
    }
    let made = usecase::create(conn, &plan).map_err(fail)?;
    let name = &made.info.name;
    if plan.transient {
        println!("Domain '{name}' created and started (transient)");
        return Ok(EXIT_OK);
    }
    println!("Domain '{name}' defined");
    if let Some(e) = made.autostart_error {
        return Err(fail(e));
    }
    if let Some(e) = made.start_error {
        return Err(fail(e));
    }
    if plan.start {
        println!("Domain '{name}' started");
    }
    Ok(EXIT_OK)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        a: CreateArgs,
    }

    fn describe_args(args: &[&str]) -> Result<NewMachine, (u8, String)> {
        let cli = Cli::try_parse_from(std::iter::once("create").chain(args.iter().copied()))
            .map_err(|e| (EXIT_USAGE, e.to_string()))?;
        describe(&cli.a, Path::new("/here"))
    }

    #[test]
    fn import_makes_the_first_existing_disk_the_source() {
        let m = describe_args(&[
            "--name",
            "i",
            "--import",
            "--boot",
            "kernel=k",
            "--disk",
            "path=d.qcow2",
            "--disk",
            "size=2,format=raw",
        ])
        .unwrap();
        assert_eq!(
            m.source,
            Source::DiskImage {
                path: "/here/d.qcow2".into(),
                format: DiskFormat::Qcow2,
                boot: KernelBoot {
                    kernel: "/here/k".into(),
                    ..KernelBoot::default()
                },
            }
        );
        assert_eq!(
            m.disks,
            [DiskRequest::disk(Image::New {
                at: NewImageAt::ImagesDir,
                size_bytes: 2 << 30,
                format: DiskFormat::Raw,
            })]
        );
        assert_eq!(m.networks, [Nic::default()], "one network unless told");
    }

    #[test]
    fn firmware_boots_map_as_virt_install_says_them() {
        let m = describe_args(&["--name", "l", "--cdrom", "live.iso", "--disk", "size=1"]).unwrap();
        assert_eq!(
            m.source,
            Source::Firmware(FirmwareBoot {
                cdrom: Some("/here/live.iso".into()),
                ..FirmwareBoot::default()
            })
        );
        assert_eq!(m.disks.len(), 1, "the ISO is the firmware's, not a --disk");
        assert_eq!(m.graphics, Graphics::Local, "a display, as every machine");
        let m = describe_args(&["--name", "i", "--import", "--disk", "d.qcow2"]).unwrap();
        assert_eq!(m.source, Source::Firmware(FirmwareBoot::default()));
        assert_eq!(m.disks.len(), 1, "the imported disk stays the first disk");
        let m = describe_args(&[
            "--name",
            "b",
            "--disk",
            "d.img",
            "--boot",
            "hd,cdrom,menu=on,bootmenu.timeout=3000,loader=bios.bin",
        ])
        .unwrap();
        assert_eq!(
            m.source,
            Source::Firmware(FirmwareBoot {
                order: vec![BootDev::Hd, BootDev::Cdrom],
                menu: Some(true),
                menu_timeout_ms: Some(3000),
                loader: Some("/here/bios.bin".into()),
                cdrom: None,
                uefi: false,
            })
        );
        // virt-install's UEFI; the driver chooses the pc machine for it, as for every
        // firmware boot without --machine.
        for spec in ["uefi", "hd,uefi", "firmware=efi"] {
            let m = describe_args(&["--name", "u", "--import", "--disk", "d.img", "--boot", spec])
                .unwrap();
            let Source::Firmware(fw) = &m.source else {
                panic!("{spec}: {:?}", m.source)
            };
            assert!(fw.uefi, "{spec}");
            assert_eq!(m.machine, None, "{spec}");
        }
        let m = describe_args(&["--name", "p", "--import", "--disk", "d", "--machine", "pc"]);
        assert_eq!(m.unwrap().machine.as_deref(), Some("pc"));
        let refused = |args: &[&str]| describe_args(args).unwrap_err();
        assert_eq!(
            refused(&["--name", "x", "--disk", "d.img"]).1,
            "say how the machine boots: --cdrom ISO, --import (the first --disk has a boot \
             loader), --boot hd,cdrom (firmware), --boot kernel=PATH, or --quick"
        );
        assert_eq!(
            refused(&["--name", "x", "--import"]).1,
            "--import boots the first --disk: give one"
        );
        assert_eq!(
            refused(&["--name", "x", "--cdrom", "a.iso", "--boot", "kernel=/k"]).0,
            EXIT_USAGE
        );
        assert_eq!(
            refused(&["--name", "x", "--boot", "kernel=/k,hd"]).1,
            "--boot kernel=/k,hd: kernel= boots the kernel directly; a boot order, menu=, uefi \
             and loader= belong to firmware boot"
        );
        assert_eq!(
            refused(&["--name", "x", "--boot", "kernel=/k,uefi"]).0,
            EXIT_USAGE
        );
        assert_eq!(
            refused(&["--name", "x", "--cdrom", "a.iso", "--import", "--disk", "d"]).0,
            EXIT_USAGE
        );
    }

    #[test]
    fn options_map_to_the_description() {
        let m = describe_args(&[
            "--name",
            "n",
            "--boot",
            "kernel=/k",
            "--network",
            "none",
            "--graphics",
            "none",
            "--on-crash",
            "preserve",
            "--uuid",
            "6695eb01-f6a4-4304-aaa9-f2b1b2a1c2d3",
        ])
        .unwrap();
        assert!(m.networks.is_empty());
        assert_eq!(m.graphics, Graphics::None);
        assert_eq!(m.lifecycle.on_crash, LifecycleAction::Preserve);
        assert_eq!(m.lifecycle.on_reboot, LifecycleAction::Restart);
        assert!(m.uuid.is_some());
        assert_eq!(
            describe_args(&["--name", "n", "--boot", "kernel=/k", "--disk", "format=raw"])
                .unwrap_err()
                .0,
            EXIT_USAGE
        );
    }
}
