//! Firmware boot: an `hvm` machine without `os/kernel` starts the PC BIOS (Debian's SeaBIOS
//! by default), or UEFI ([`super::uefi`]), which finds the boot loader on the disks and
//! CD-ROMs in libvirt's boot order.
//!
//! The boot order follows libvirt's QEMU driver: `os/boot@dev` entries give the first disk of
//! each kind (in document order, on any bus: `cdrom` is the first CD-ROM drive, `hd` the first
//! hard disk, virtio or scsi) its place, as libvirt's legacy-order-to-bootindex rule does;
//! or each device's `<boot order='N'/>` decides; the two never mix (a validation error, as in
//! libvirt); a document with neither boots from the first hard disk (libvirt's `<boot
//! dev='hd'/>` default). Devices not in the order are tried after it, in the firmware's own
//! order.

use super::scsi::{self, Layout};
use super::uefi::{self, Kind};
use super::{check_file, refuse, NvramCopy, Sources, TranslateError};
use std::path::{Path, PathBuf};
use vireo_domain::{BootDev, Devices, DiskDevice, Domain, Element, Os};
use vireo_vmm_api::config::{BootDevice, DisplayModel, FirmwareConfig, Machine, SmbiosConfig};
use vireo_vmm_api::limits;

/// Where Debian's `seabios` package puts its images (and QEMU's own copy of them).
pub const DEBIAN_FIRMWARE_DIRS: &[&str] = &["/usr/share/seabios", "/usr/share/qemu"];
/// The SeaBIOS build that boots on the Vireo machine (see the firmware notes: PS/2, ACPI
/// parsing, virtio over mmio).
pub const DEFAULT_BIOS: &str = "bios-256k.bin";
/// SeaVGABIOS for ramfb, the firmware-stage framebuffer of the linear display.
pub const VGA_ROM: &str = "vgabios-ramfb.bin";
/// SeaVGABIOS for the standard VGA (the display model `vga` of the pc machine): the VGA
/// device's own option ROM.
pub const STDVGA_ROM: &str = "vgabios-stdvga.bin";
/// SeaBIOS's own wait when the menu is on and no timeout is given (its DEFAULT_BOOTMENU_WAIT).
const SEABIOS_MENU_WAIT_MS: u32 = 2500;

/// The directories searched for the default BIOS and the VGA ROMs: `$VIREO_FIRMWARE_DIR` when
/// set (tests, or a SeaBIOS built elsewhere), else Debian's.
pub fn search_dirs() -> Vec<PathBuf> {
    match std::env::var_os("VIREO_FIRMWARE_DIR").filter(|d| !d.is_empty()) {
        Some(d) => vec![PathBuf::from(d)],
        None => DEBIAN_FIRMWARE_DIRS.iter().map(PathBuf::from).collect(),
    }
}

/// The default BIOS image, if the `seabios` package (or `$VIREO_FIRMWARE_DIR`) has one.
pub fn default_loader(dirs: &[PathBuf]) -> Option<PathBuf> {
    dirs.iter()
        .map(|d| d.join(DEFAULT_BIOS))
        .find(|p| p.is_file())
}

/// The `<os>` part of a firmware boot, resolved before the devices are translated.
pub(super) struct FirmwareOs {
    /// The BIOS image, or UEFI's code.
    loader: PathBuf,
    menu_timeout_ms: Option<u32>,
    dirs: Vec<PathBuf>,
    /// UEFI: the variable store, and the template to make it from when it is not there yet.
    nvram: Option<(PathBuf, Option<PathBuf>)>,
}

impl FirmwareOs {
    /// The store the start must make first, if any.
    pub(super) fn nvram_copy(&self) -> Option<NvramCopy> {
        let (store, template) = self.nvram.as_ref()?;
        Some(NvramCopy {
            template: template.clone()?,
            store: store.clone(),
        })
    }
}

/// The `<os>` of a machine without a kernel: the loader (and for UEFI the variable store),
/// the boot menu. `name`: the machine's.
pub(super) fn os(
    os: &Os<&Element>,
    kind: &Kind,
    machine: Machine,
    name: &str,
    sources: &Sources,
) -> Result<FirmwareOs, TranslateError> {
    for (child, what) in [("initrd", "an initrd"), ("cmdline", "a command line")] {
        if os.element().child(child).is_some() {
            return refuse(
                format!("os/{child}"),
                format!(
                    "{what} needs a kernel in os/kernel; under firmware boot the boot loader \
                     on the disk chooses it"
                ),
            );
        }
    }
    let is_uefi = matches!(kind, Kind::Uefi { .. });
    for el in os.element().elements() {
        match el.name() {
            "type" | "loader" | "boot" | "bootmenu" | "kernel" => {}
            "nvram" | "firmware" if is_uefi => {}
            other => return super::not_supported(format!("os/{other}")),
        }
    }
    let dirs = sources.firmware_dirs.clone();
    let mut nvram = None;
    let loader = match (kind, os.loader().filter(|l| !l.is_empty())) {
        (Kind::Uefi { at }, _) => {
            let u = uefi::os(
                os,
                at,
                machine,
                name,
                &sources.ovmf_dirs,
                &sources.nvram_dir,
            )?;
            nvram = Some((u.store, u.template));
            u.code
        }
        (Kind::Bios, Some(l)) => {
            let p = check_file("os/loader", &l)?;
            check_image("os/loader", &p)?;
            p
        }
        (Kind::Bios, None) => {
            let Some(p) = default_loader(&dirs) else {
                return refuse(
                    "os",
                    format!(
                        "no firmware to boot: {DEFAULT_BIOS} is not in {} (install the seabios \
                         package, or name a BIOS image in os/loader)",
                        list(&dirs)
                    ),
                );
            };
            check_image("os", &p)?;
            p
        }
    };
    let menu_timeout_ms = match os.bootmenu() {
        Some(true) => Some(match os.bootmenu_timeout() {
            None => SEABIOS_MENU_WAIT_MS,
            Some(t) => match t.trim().parse::<u32>() {
                Ok(ms) if ms <= 65535 => ms,
                _ => {
                    return refuse(
                        format!("os/bootmenu@timeout='{t}'"),
                        "must be a number of milliseconds from 0 to 65535",
                    )
                }
            },
        }),
        _ => None,
    };
    Ok(FirmwareOs {
        loader,
        menu_timeout_ms,
        dirs,
        nvram,
    })
}

/// "a, b or c" for a refusal.
pub(super) fn list(dirs: &[PathBuf]) -> String {
    let names: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
    match names.split_last() {
        None => String::new(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
    }
}

/// The VMM's rule for a BIOS image (whole 64 KiB segments up to the largest it maps), checked
/// here so that the refusal names the element instead of a config field.
fn check_image(path: &str, file: &Path) -> Result<(), TranslateError> {
    let size = std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
    if size == 0 || size % limits::FIRMWARE_ALIGN != 0 || size > limits::FIRMWARE_MAX_SIZE {
        return refuse(
            path,
            format!(
                "{}: not a BIOS image (a file of {} KiB to {} KiB in {} KiB steps is needed, \
                 this one has {size} bytes)",
                file.display(),
                limits::FIRMWARE_ALIGN >> 10,
                limits::FIRMWARE_MAX_SIZE >> 10,
                limits::FIRMWARE_ALIGN >> 10,
            ),
        );
    }
    Ok(())
}

/// The firmware's part of the VMM config, once the devices are known. `display`: the
/// machine's display device, if it has a screen, so the firmware gets that device's VGA ROM.
pub(super) fn config(
    dom: &Domain,
    fw: FirmwareOs,
    devices: Option<&Devices<&Element>>,
    layout: &Layout,
    display: Option<DisplayModel>,
) -> Result<FirmwareConfig, TranslateError> {
    // OVMF drives ramfb and the VGA itself; only SeaBIOS needs a VGA ROM.
    let vga_rom = match display {
        Some(model) if fw.nvram.is_none() => Some(vga_rom(model, &fw.loader, &fw.dirs)?),
        _ => None,
    };
    let os = dom.os();
    let boot_order = match &os {
        Some(os) => boot_order(os, devices, layout)?,
        None => Vec::new(),
    };
    Ok(FirmwareConfig {
        loader: fw.loader,
        vga_rom,
        boot_order,
        boot_menu_timeout_ms: fw.menu_timeout_ms,
        // The domain's UUID, as libvirt's QEMU driver passes it (`-uuid`). The strings stay
        // the VMM's defaults: manufacturer "Vireo" and the machine's name as product name, so
        // dmidecode in the guest tells which machine it runs in.
        smbios: SmbiosConfig {
            uuid: dom
                .uuid()
                .and_then(|u| vireo_domain::Uuid::parse(&u))
                .map(|u| u.to_string()),
            ..SmbiosConfig::default()
        },
        nvram: fw.nvram.map(|(store, _)| store),
    })
}

/// The VGA ROM of the display `model` (ramfb's for the linear display, the standard VGA's for
/// `Vga`) beside the loader, else in the searched directories.
fn vga_rom(
    model: DisplayModel,
    loader: &Path,
    dirs: &[PathBuf],
) -> Result<PathBuf, TranslateError> {
    let rom = match model {
        DisplayModel::Linear => VGA_ROM,
        DisplayModel::Vga => STDVGA_ROM,
    };
    let beside = loader.parent().map(Path::to_path_buf);
    let found = beside
        .iter()
        .chain(dirs)
        .map(|d| d.join(rom))
        .find(|p| p.is_file());
    match found {
        Some(p) => Ok(p),
        None => refuse(
            "devices/graphics[1]",
            format!(
                "the firmware's screen needs {rom}, which is not in {} (install the seabios \
                 package)",
                list(dirs)
            ),
        ),
    }
}

/// The boot order of a document that boots its firmware, checked without touching a file
/// (for a plan, before the images exist): each listed device is there and can boot; and the
/// firmware's own rules that need no file (UEFI on the pc machine, no Secure Boot).
pub(crate) fn check_boot_order(dom: &Domain) -> Result<(), TranslateError> {
    match dom.os() {
        Some(os) if os.kernel().is_none_or(|k| k.trim().is_empty()) => {
            if let Kind::Uefi { at } = uefi::kind(&os)? {
                let machine = super::machine::machine(os.machine().as_deref())?;
                uefi::check_document(&os, &at, machine)?;
            }
            let devices = dom.devices();
            let layout = match &devices {
                Some(d) => scsi::layout(d, &dom.name().unwrap_or_default())?,
                None => Layout::default(),
            };
            boot_order(&os, devices.as_ref(), &layout).map(drop)
        }
        _ => Ok(()),
    }
}

/// The first disk of `kind`, in document order (libvirt gives a legacy boot entry to that one).
fn first_of(devices: Option<&Devices<&Element>>, kind: DiskDevice) -> Option<usize> {
    devices?.disks().iter().position(|d| d.device() == kind)
}

/// The boot order, each entry the device its disk became (`layout`: a slot per disk).
fn boot_order(
    os: &Os<&Element>,
    devices: Option<&Devices<&Element>>,
    layout: &Layout,
) -> Result<Vec<BootDevice>, TranslateError> {
    let device = |index: usize| {
        layout
            .slots
            .get(index)
            .map_or(BootDevice::Disk { index }, |s| s.boot_device())
    };
    let mut per_device: Vec<(u32, usize)> = devices
        .map(|d| {
            d.disks()
                .iter()
                .enumerate()
                .filter_map(|(i, disk)| disk.boot_order().map(|o| (o, i)))
                .collect()
        })
        .unwrap_or_default();
    let listed: Vec<&Element> = os.element().children_named("boot").collect();
    if !per_device.is_empty() {
        // Validation refused a document with both (libvirt's rule); order values are unique.
        per_device.sort_unstable();
        return Ok(per_device
            .into_iter()
            .map(|(_, index)| device(index))
            .collect());
    }
    if listed.is_empty() {
        return Ok(first_of(devices, DiskDevice::Disk)
            .map(device)
            .into_iter()
            .collect());
    }
    let mut order = Vec::new();
    for (i, b) in listed.iter().enumerate() {
        let dev = b.attr("dev").map(|d| d.into_owned()).unwrap_or_default();
        let path = format!("os/boot[{}]@dev='{dev}'", i + 1);
        let index = match BootDev::from(dev.as_str()) {
            BootDev::Hd => first_of(devices, DiskDevice::Disk).ok_or_else(|| TranslateError {
                path: path.clone(),
                message: "no disk to boot from (no devices/disk with device='disk')".into(),
            })?,
            BootDev::Cdrom => {
                first_of(devices, DiskDevice::Cdrom).ok_or_else(|| TranslateError {
                    path: path.clone(),
                    message: "no CD-ROM to boot from (no devices/disk with device='cdrom')".into(),
                })?
            }
            BootDev::Network => {
                return refuse(
                    path,
                    "network boot is not supported yet (boot from hd or cdrom)",
                )
            }
            BootDev::Fd => {
                return refuse(
                    path,
                    "no floppy: the Vireo backend has no floppy drive (boot from hd or cdrom)",
                )
            }
            _ => return refuse(path, "not supported (use hd or cdrom)"),
        };
        let dev = device(index);
        if !order.contains(&dev) {
            order.push(dev);
        }
    }
    Ok(order)
}
