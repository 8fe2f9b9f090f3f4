//! Domain XML -> `vireo_vmm::config::VmConfig`.
//!
//! The rule: whatever the document asks for, the backend either does or the machine is refused
//! before start with one message that names the element (`devices/interface[1]@type='bridge': ...`).
//! Nothing is dropped silently. A few elements libvirt itself adds on define (emulator, pci-root
//! controllers, a ps2 keyboard, `memballoon model='none'`) describe nothing our backend would do
//! differently and are accepted; each such case is listed in [`accepted_without_effect`].

mod chardev;
mod cpu;
mod devices;
mod disk;
pub mod firmware;
mod graphics;
pub(crate) mod machine;
mod memory;
mod net;
mod os;
pub(crate) mod pci;
mod scsi;
pub mod uefi;

use crate::rundir::RunDir;
pub(crate) use scsi::VIRTIO_SCSI;
use std::path::{Path, PathBuf};
use vireo_domain::{Domain, Element, VirtType};
#[cfg(test)]
use vireo_vmm_api::config::{BackingConfig, DiskFormat, NetBackend};
use vireo_vmm_api::config::{SerialConfig, VmConfig};

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
        "devices/controller type='sata'|'ide' with no disk on it: no device",
        "devices/interface/target: the host-side device name libvirt reports; user networking has none",
        "devices/input type='keyboard' bus='ps2': the i8042 keyboard is always present",
        "devices/memballoon model='none': no device",
        "os/boot with os/kernel: the kernel is loaded directly, without firmware",
        "os/loader@readonly: a BIOS image is never written",
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
    /// A UEFI variable store that is not there yet: the start makes it before the helper runs
    /// (translation writes nothing, it also serves checks and plans).
    pub nvram_from_template: Option<NvramCopy>,
}

/// A UEFI variable store to make from its template (see [`crate::nvram`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NvramCopy {
    pub template: PathBuf,
    pub store: PathBuf,
}

/// Where translation looks for the host's firmware, and where Vireo keeps the variable stores
/// it makes.
#[derive(Debug, Clone)]
struct Sources {
    /// SeaBIOS and its VGA ROM ([`firmware::search_dirs`]).
    firmware_dirs: Vec<PathBuf>,
    /// OVMF ([`uefi::search_dirs`]).
    ovmf_dirs: Vec<PathBuf>,
    /// [`crate::Paths::nvram_dir`].
    nvram_dir: PathBuf,
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

/// A value the typed view reads as "unknown" (`Other`), quoted for a refusal ('' when absent,
/// which validation refuses where the attribute is required).
fn attr_or_empty(e: &Element, name: &str) -> String {
    e.attr(name).map(|v| v.into_owned()).unwrap_or_default()
}

/// Translates a domain for a start in `run`; a UEFI machine without a store of its own naming
/// has it in `nvram_dir` ([`crate::Paths::nvram_dir`]). `pick_vnc_port` is asked for a free
/// port when the document says `autoport='yes'`. The document is read through `vireo-domain`'s typed views
/// and must have passed `Domain::validate` (the driver translates only a `Definition`, which
/// did): what validation already refuses (a missing required attribute, a value out of libvirt's
/// range) is not checked again here, only what the backend cannot do.
pub fn translate(
    dom: &Domain,
    run: &RunDir,
    nvram_dir: &Path,
    pick_vnc_port: &mut dyn FnMut() -> Option<u16>,
) -> Result<Translated, TranslateError> {
    let sources = Sources {
        firmware_dirs: firmware::search_dirs(),
        ovmf_dirs: uefi::search_dirs(),
        nvram_dir: nvram_dir.to_owned(),
    };
    translate_in(dom, run, pick_vnc_port, &sources)
}

/// [`translate`], with the firmware and the stores in `sources`.
fn translate_in(
    dom: &Domain,
    run: &RunDir,
    pick_vnc_port: &mut dyn FnMut() -> Option<u16>,
    sources: &Sources,
) -> Result<Translated, TranslateError> {
    let mut notes = Vec::new();
    let name = domain_level(dom)?;
    // Before the boot: UEFI needs the pc machine.
    let machine = machine::machine(dom.os().and_then(|o| o.machine()).as_deref())?;
    let boot = os::boot(dom, machine, &name, sources)?;
    let memory_mib = memory::memory_mib(dom, &mut notes)?;
    let vcpus = cpu::vcpus(dom)?;
    let cpu_features_off = cpu::features_off(dom)?;

    // The devices below are added as the XML asks for them; everything else keeps the VMM's
    // own headless defaults.
    let (mut cfg, firmware_os) = match boot {
        os::Boot::Kernel {
            kernel,
            initrd,
            cmdline,
        } => (
            VmConfig {
                initrd,
                cmdline,
                ..VmConfig::minimal(&name, kernel, memory_mib, vcpus)
            },
            None,
        ),
        os::Boot::Firmware(fw) => (
            VmConfig {
                kernel: None,
                ..VmConfig::minimal(&name, PathBuf::new(), memory_mib, vcpus)
            },
            Some(fw),
        ),
    };
    // Set before the devices: how many virtio devices fit depends on it.
    cfg.machine = machine;
    cfg.cpu_features_off = cpu_features_off;
    cfg.serial = SerialConfig {
        log: Some(run.serial_log()),
        socket: None,
    };
    let devices = dom.devices();
    let mut vnc_port = None;
    let mut layout = scsi::Layout::default();
    if let Some(devices) = &devices {
        devices::kinds(devices)?;
        layout = scsi::layout(devices, &name)?;
        (cfg.disks, cfg.scsi) = disk::disks(devices, &layout)?;
        cfg.nets = net::interfaces(dom, devices, &name)?;
        let display = graphics::display(devices, machine, run, pick_vnc_port, &mut notes)?;
        cfg.display = display.display;
        vnc_port = display.vnc_port;
        chardev::com1(devices, run, &mut cfg.serial)?;
        devices::inputs(devices, &mut cfg)?;
        devices::rng(devices, &mut cfg)?;
        devices::virtio_count(&cfg)?;
        pci::place(devices, &layout, &mut cfg)?;
    }
    let nvram_from_template = firmware_os.as_ref().and_then(|fw| fw.nvram_copy());
    if let Some(fw) = firmware_os {
        cfg.firmware = Some(firmware::config(
            dom,
            fw,
            devices.as_ref(),
            &layout,
            cfg.display.as_ref().map(|d| d.model),
        )?);
    }
    Ok(Translated {
        config: cfg,
        vnc_port,
        notes,
        nvram_from_template,
    })
}

/// The root: a kvm domain, only elements the backend knows, and its name.
fn domain_level(dom: &Domain) -> Result<String, TranslateError> {
    match dom.virt_type() {
        Some(VirtType::Kvm) => {}
        _ => {
            return refuse(
                format!("domain@type='{}'", attr_or_empty(dom.root(), "type")),
                "only kvm domains are supported",
            )
        }
    }
    for child in dom.root().elements() {
        if !TOP_LEVEL_OK.contains(&child.name()) {
            return not_supported(child.name());
        }
    }
    match dom.name() {
        Some(n) if !n.trim().is_empty() => Ok(n.trim().to_owned()),
        _ => refuse("domain", "missing element name"),
    }
}

/// A typed view's own error (a malformed size or count), at `field`.
fn view_error(field: &str, e: vireo_domain::Error) -> TranslateError {
    TranslateError {
        path: field.into(),
        message: e.kind.to_string(),
    }
}

/// Finds a free loopback TCP port for VNC in 5900..6000.
pub fn free_vnc_port() -> Option<u16> {
    (5900..6000).find(|&p| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok())
}

#[cfg(test)]
mod firmware_tests;
#[cfg(test)]
mod graphics_tests;
#[cfg(test)]
mod scsi_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod uefi_tests;
#[cfg(test)]
mod validation_tests;
