//! The typed VM configuration, and the checks the VMM makes on it before it touches KVM.
//!
//! The driver writes one JSON file per running machine and passes it with `--config`. The format
//! is versioned by [`VmConfig::version`]; this crate accepts exactly [`CONFIG_VERSION`] and refuses
//! unknown fields so that a newer driver talking to an older VMM fails loudly instead of silently
//! dropping a setting.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::{Path, PathBuf};

use crate::limits::{CMDLINE_MAX, MAX_DISPLAY_SIDE, MAX_MEMORY_MIB};
use crate::pci::{PciSlot, SlotError};
pub use crate::scsi::{ScsiControllerConfig, ScsiDeviceConfig, ScsiDeviceKind};

/// The configuration format this build understands.
pub const CONFIG_VERSION: u32 = 1;

fn default_version() -> u32 {
    CONFIG_VERSION
}
fn default_true() -> bool {
    true
}
fn default_width() -> u32 {
    1280
}
fn default_height() -> u32 {
    800
}

/// One virtual machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VmConfig {
    /// Format version, see [`CONFIG_VERSION`].
    #[serde(default = "default_version")]
    pub version: u32,
    /// Machine name, used in log lines only.
    pub name: String,
    /// The platform the devices sit on.
    #[serde(default, skip_serializing_if = "Machine::is_default")]
    pub machine: Machine,
    /// Guest RAM in MiB (must be at least 1).
    pub memory_mib: u64,
    /// Number of vCPUs (1..=KVM_CAP_MAX_VCPUS, also capped by [`crate::limits::MAX_VCPUS`]).
    pub vcpus: u8,
    /// Direct kernel boot: a bzImage (64-bit boot protocol) or an ELF vmlinux with a PVH note.
    /// Exactly one of `kernel` and `firmware` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel: Option<PathBuf>,
    /// Direct kernel boot of a bzImage whose compressed payload was decompressed ahead of time
    /// (by the driver, once per kernel): this ELF vmlinux is loaded at its physical addresses
    /// and entered through the 64-bit boot protocol with `kernel`'s setup header, so the guest
    /// skips its own decompression. The kernel then runs where it was linked (no KASLR).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel_unpacked: Option<PathBuf>,
    /// Firmware boot: the vCPUs start at the reset vector of a PC BIOS image, which finds the
    /// boot loader on the disks in `boot_order`. `initrd` and `cmdline` must then be empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firmware: Option<FirmwareConfig>,
    /// Optional initramfs (direct kernel boot only).
    #[serde(default)]
    pub initrd: Option<PathBuf>,
    /// Kernel command line (the VMM appends nothing it is not told to).
    #[serde(default)]
    pub cmdline: String,
    /// COM1 routing.
    #[serde(default)]
    pub serial: SerialConfig,
    /// Linear framebuffer + VNC server; `None` means headless.
    #[serde(default)]
    pub display: Option<DisplayConfig>,
    /// virtio-blk disks, in the order the guest sees them (vda, vdb, ...).
    #[serde(default)]
    pub disks: Vec<DiskConfig>,
    /// virtio-scsi controllers with their CD-ROM drives and disks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scsi: Vec<ScsiControllerConfig>,
    /// virtio-net interfaces.
    #[serde(default)]
    pub nets: Vec<NetConfig>,
    /// Input devices.
    #[serde(default)]
    pub input: InputConfig,
    /// virtio-rng fed from the host's getrandom.
    #[serde(default)]
    pub rng: bool,
    /// Accept writes to the boot-time marker (port 0x03f0 / MMIO 0xdf00_0000).
    #[serde(default = "default_true")]
    pub boot_marker: bool,
    /// CPU features the guest must not see, though the host has them (libvirt's
    /// `<cpu><feature policy='disable'>`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cpu_features_off: Vec<CpuFeature>,
    /// Where the `pc` machine's virtio devices sit on PCI bus 0; devices not listed get the
    /// lowest free slots ([`crate::pci::slots`]). Empty on microvm.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pci_slots: Vec<PciSlot>,
    /// Install the per-thread seccomp filters. Turning this off is for debugging only.
    #[serde(default = "default_true")]
    pub seccomp: bool,
}

/// A CPU feature a config can take away from the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CpuFeature {
    /// The x2APIC mode of the local APIC (CPUID.1:ECX bit 21).
    X2apic,
}

/// The platform: which buses the devices sit on and what the firmware tables say.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Machine {
    /// No PCI: virtio-mmio devices declared in the DSDT, the PM block at a fixed port. Boots
    /// a Linux kernel directly in the least time, and SeaBIOS.
    #[default]
    Microvm,
    /// QEMU's `pc`: an i440FX host bridge and PIIX south bridge, virtio devices on PCI bus 0
    /// with MSI-X. What firmware and installers expect.
    Pc,
}

impl Machine {
    pub fn is_default(&self) -> bool {
        *self == Machine::default()
    }

    /// How many virtio devices the platform has room for.
    pub fn virtio_max(self) -> usize {
        match self {
            Machine::Microvm => crate::limits::VIRTIO_MMIO_MAX,
            Machine::Pc => crate::limits::PCI_VIRTIO_MAX,
        }
    }
}

/// A PC BIOS boot (SeaBIOS's `bios-256k.bin` or an image built like it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FirmwareConfig {
    /// The BIOS image: a multiple of 64 KiB, at most [`crate::limits::FIRMWARE_MAX_SIZE`].
    /// It is mapped read-only just below 4 GiB (the reset vector) and copied into writable RAM
    /// ending at 1 MiB, and reloaded from this file on every reset.
    pub loader: PathBuf,
    /// The VGA option ROM SeaBIOS runs when the machine has a display: for the linear
    /// display ramfb's (`vgaroms/vgabios-ramfb.bin` in fw_cfg), for the VGA model the VGA
    /// device's own (`pci1234,1111.rom`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vga_rom: Option<PathBuf>,
    /// The devices the firmware tries, first to last (its `bootorder` file). Devices not
    /// listed are tried after these, in the firmware's own order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub boot_order: Vec<BootDevice>,
    /// Show the firmware's boot menu, waiting this long for a key; `None` hides it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_menu_timeout_ms: Option<u32>,
    /// SMBIOS system information (type 1) the guest reads with dmidecode.
    #[serde(default)]
    pub smbios: SmbiosConfig,
    /// UEFI: `loader` is then the code half of a flash image pair (OVMF_CODE), mapped
    /// read-only to end at 4 GiB, and this is the machine's own variable store (made from the
    /// pair's OVMF_VARS template), a flash chip just below the code that keeps what the guest
    /// writes. The pc machine only: UEFI firmware needs PCI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nvram: Option<PathBuf>,
}

/// A bootable device, by its place in the config's own lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum BootDevice {
    /// `disks[index]`.
    Disk { index: usize },
    /// `nets[index]` (network boot).
    Net { index: usize },
    /// The device at `target`, `lun` on `scsi[controller]`.
    Scsi {
        controller: usize,
        target: u16,
        lun: u16,
    },
}

/// SMBIOS type 1 (System Information) strings and UUID.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmbiosConfig {
    /// The machine's UUID in its canonical 8-4-4-4-12 hex form.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uuid: Option<String>,
    /// Product name; the VMM uses the machine's `name` when this is not set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manufacturer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
}

impl SmbiosConfig {
    /// The UUID's 16 bytes in the order the text spells them (SMBIOS 2.6+ stores the first
    /// three fields little-endian; the table builder swaps them).
    pub fn uuid_bytes(&self) -> Option<Result<[u8; 16], String>> {
        self.uuid.as_deref().map(parse_uuid)
    }
}

fn parse_uuid(s: &str) -> Result<[u8; 16], String> {
    let groups: Vec<&str> = s.split('-').collect();
    let lens: Vec<usize> = groups.iter().map(|g| g.len()).collect();
    if lens != [8, 4, 4, 4, 12] {
        return Err(format!("`{s}` is not a UUID (8-4-4-4-12 hex digits)"));
    }
    let hex: String = groups.concat();
    let mut out = [0u8; 16];
    for (i, o) in out.iter_mut().enumerate() {
        *o = hex
            .get(2 * i..2 * i + 2)
            .and_then(|h| u8::from_str_radix(h, 16).ok())
            .ok_or_else(|| format!("`{s}` is not a UUID (8-4-4-4-12 hex digits)"))?;
    }
    Ok(out)
}

/// Where the 16550 on COM1 sends its output and takes its input from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SerialConfig {
    /// Append everything the guest writes to this file.
    #[serde(default)]
    pub log: Option<PathBuf>,
    /// Listen on this unix socket; a console client attaching gets the buffered backlog first,
    /// then live output, and what it writes goes to the guest.
    #[serde(default)]
    pub socket: Option<PathBuf>,
}

/// The guest's linear framebuffer and how it is served.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DisplayConfig {
    /// The display device; its size below is the linear framebuffer's, or the preferred
    /// mode the VGA device's EDID offers.
    #[serde(default, skip_serializing_if = "DisplayModel::is_default")]
    pub model: DisplayModel,
    #[serde(default = "default_width")]
    pub width: u32,
    #[serde(default = "default_height")]
    pub height: u32,
    #[serde(default)]
    pub vnc: VncConfig,
}

impl Default for DisplayConfig {
    fn default() -> Self {
        DisplayConfig {
            model: DisplayModel::default(),
            width: default_width(),
            height: default_height(),
            vnc: VncConfig::default(),
        }
    }
}

/// What shows the guest's screen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DisplayModel {
    /// A fixed-size linear framebuffer: announced to a directly booted kernel in
    /// boot_params.screen_info, or ramfb (fw_cfg) under firmware.
    #[default]
    Linear,
    /// QEMU's standard VGA (PCI 1234:1111 at 00:02.0, the pc machine only): legacy VGA text
    /// and ports for the BIOS, the Bochs VBE registers and a linear framebuffer BAR for boot
    /// loaders, OVMF and Linux's `bochs` DRM driver, and an EDID offering the display's size.
    /// Under SeaBIOS `vga_rom` is its option ROM (Debian: `vgabios-stdvga.bin`).
    Vga,
}

impl DisplayModel {
    pub fn is_default(&self) -> bool {
        *self == DisplayModel::default()
    }
}

/// RFB listeners. With neither set, the framebuffer exists but nobody can see it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VncConfig {
    /// Unix socket, created with mode 0600.
    #[serde(default)]
    pub unix_socket: Option<PathBuf>,
    /// TCP port, bound to 127.0.0.1 only.
    #[serde(default)]
    pub tcp_port: Option<u16>,
    /// VNC password (DES challenge; only the first 8 bytes count, as in every VNC server).
    #[serde(default)]
    pub password: Option<String>,
}

/// Disk image format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DiskFormat {
    #[default]
    Raw,
    Qcow2,
}

/// One virtio-blk disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiskConfig {
    pub path: PathBuf,
    #[serde(default)]
    pub format: DiskFormat,
    #[serde(default)]
    pub readonly: bool,
    /// Allow another VM that also says shareable to open the same image.
    #[serde(default)]
    pub shareable: bool,
    /// Serial / ID string shown to the guest (max 20 bytes, virtio-blk's limit).
    #[serde(default)]
    pub serial: Option<String>,
    /// CD-ROM style: read-only media (implies `readonly`).
    #[serde(default)]
    pub cdrom: bool,
    /// The backing chain the machine's definition declares, nearest layer first. Only these
    /// files are opened (read-only, shared lock); an image whose header names a backing file or
    /// an external data file that is not declared here is refused.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backing: Vec<BackingConfig>,
}

impl DiskConfig {
    /// A raw image the guest may write: no serial, no backing chain, not shared.
    pub fn raw(path: impl Into<PathBuf>) -> DiskConfig {
        DiskConfig {
            path: path.into(),
            format: DiskFormat::Raw,
            readonly: false,
            shareable: false,
            serial: None,
            cdrom: false,
            backing: Vec::new(),
        }
    }
}

/// One declared layer of a disk's backing chain. The format is never guessed from content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackingConfig {
    pub path: PathBuf,
    pub format: DiskFormat,
}

/// One virtio-net interface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetConfig {
    /// MAC address as `52:54:00:12:34:56`.
    pub mac: MacAddr,
    pub backend: NetBackend,
}

/// Network backends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum NetBackend {
    /// Unprivileged user-mode NAT (DHCP, DNS, outbound TCP/UDP) with host port forwards.
    UserNet {
        #[serde(default)]
        port_forwards: Vec<PortForward>,
    },
}

/// A host-to-guest port forward.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortForward {
    pub protocol: Protocol,
    /// Host address to bind (default 127.0.0.1).
    #[serde(default = "default_host_address")]
    pub host_address: std::net::IpAddr,
    pub host_port: u16,
    pub guest_port: u16,
}

fn default_host_address() -> std::net::IpAddr {
    std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
}

/// Input devices beyond the always-present i8042 keyboard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputConfig {
    /// virtio-input keyboard (the i8042 PS/2 keyboard exists regardless).
    #[serde(default)]
    pub keyboard: bool,
    /// virtio-input absolute tablet (the VNC pointer).
    #[serde(default = "default_true")]
    pub tablet: bool,
}

impl Default for InputConfig {
    fn default() -> Self {
        InputConfig {
            keyboard: false,
            tablet: true,
        }
    }
}

/// A MAC address; serialized as `aa:bb:cc:dd:ee:ff`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct MacAddr(pub [u8; 6]);

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

impl std::str::FromStr for MacAddr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let mut out = [0u8; 6];
        let parts: Vec<&str> = s.split(':').collect();
        if parts.len() != 6 {
            return Err(format!(
                "MAC address `{s}` must have 6 colon-separated bytes"
            ));
        }
        for (o, p) in out.iter_mut().zip(parts) {
            if p.len() != 2 {
                return Err(format!("MAC address `{s}`: `{p}` is not two hex digits"));
            }
            *o = u8::from_str_radix(p, 16)
                .map_err(|_| format!("MAC address `{s}`: `{p}` is not hex"))?;
        }
        Ok(MacAddr(out))
    }
}

impl Serialize for MacAddr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for MacAddr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Why a configuration was refused. Every variant names the field.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("cannot read config {path}: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("config {path}: {reason}")]
    Parse { path: PathBuf, reason: String },
    #[error("version: this vireo-vmm understands config version {CONFIG_VERSION}, not {0}")]
    Version(u32),
    #[error("memory_mib: must be between 1 and {MAX_MEMORY_MIB}, got {0}")]
    Memory(u64),
    #[error("vcpus: must be between 1 and {max}, got {got}")]
    Vcpus { got: u32, max: u32 },
    #[error("kernel: {path}: {reason}")]
    Kernel { path: PathBuf, reason: String },
    #[error("firmware: {0}")]
    Firmware(String),
    #[error("firmware.loader: {path}: {reason}")]
    Loader { path: PathBuf, reason: String },
    #[error("kernel, firmware: {0}")]
    BootMethod(&'static str),
    #[error("initrd: {path}: {reason}")]
    Initrd { path: PathBuf, reason: String },
    #[error("cmdline: {0}")]
    Cmdline(String),
    #[error("display: {0}")]
    Display(String),
    #[error("disks[{index}]: {reason}")]
    Disk { index: usize, reason: String },
    #[error("nets[{index}]: {reason}")]
    Net { index: usize, reason: String },
    /// Says which controller and device itself.
    #[error("{0}")]
    Scsi(String),
    #[error("too many virtio devices: {got} (at most {max} on this machine type)")]
    TooManyDevices { got: usize, max: usize },
    #[error("{0}")]
    PciSlots(#[from] SlotError),
    #[error("firmware: {0}")]
    Flash(#[from] crate::flash::FlashError),
}

impl VmConfig {
    /// Reads and validates a JSON config file.
    pub fn from_file(path: &Path) -> Result<VmConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        let cfg: VmConfig = serde_json::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// A minimal headless configuration, handy for tests and examples.
    pub fn minimal(name: &str, kernel: PathBuf, memory_mib: u64, vcpus: u8) -> VmConfig {
        VmConfig {
            version: CONFIG_VERSION,
            name: name.to_owned(),
            machine: Machine::Microvm,
            memory_mib,
            vcpus,
            kernel: Some(kernel),
            kernel_unpacked: None,
            firmware: None,
            initrd: None,
            cmdline: String::new(),
            serial: SerialConfig::default(),
            display: None,
            disks: Vec::new(),
            scsi: Vec::new(),
            nets: Vec::new(),
            input: InputConfig {
                keyboard: false,
                tablet: false,
            },
            rng: false,
            boot_marker: true,
            pci_slots: Vec::new(),
            cpu_features_off: Vec::new(),
            seccomp: true,
        }
    }

    /// A minimal headless firmware-boot configuration.
    pub fn minimal_firmware(
        name: &str,
        firmware: FirmwareConfig,
        memory_mib: u64,
        vcpus: u8,
    ) -> VmConfig {
        let mut cfg = VmConfig::minimal(name, PathBuf::new(), memory_mib, vcpus);
        cfg.kernel = None;
        cfg.firmware = Some(firmware);
        cfg
    }

    /// Number of virtio-mmio devices this config asks for.
    pub fn virtio_device_count(&self) -> usize {
        self.disks.len()
            + self.scsi.len()
            + self.nets.len()
            + usize::from(self.rng)
            + usize::from(self.input.keyboard)
            + usize::from(self.input.tablet && self.display.is_some())
    }

    /// Checks everything that can be checked without KVM (the vCPU limit against
    /// KVM_CAP_MAX_VCPUS is checked again when the VM is created). Files must exist and be
    /// readable; the kernel's format is checked by the loader.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.version != CONFIG_VERSION {
            return Err(ConfigError::Version(self.version));
        }
        if self.memory_mib == 0 || self.memory_mib > MAX_MEMORY_MIB {
            return Err(ConfigError::Memory(self.memory_mib));
        }
        let max = crate::limits::MAX_VCPUS as u32;
        if self.vcpus == 0 || u32::from(self.vcpus) > max {
            return Err(ConfigError::Vcpus {
                got: self.vcpus.into(),
                max,
            });
        }
        match (&self.kernel, &self.firmware) {
            (Some(kernel), None) => check_file(kernel).map_err(|reason| ConfigError::Kernel {
                path: kernel.clone(),
                reason,
            })?,
            (None, Some(fw)) => self.validate_firmware(fw)?,
            (Some(_), Some(_)) => {
                return Err(ConfigError::BootMethod(
                    "both set; a machine boots either a kernel directly or its firmware",
                ))
            }
            (None, None) => {
                return Err(ConfigError::BootMethod(
                    "neither set; give a kernel for direct boot or a firmware image",
                ))
            }
        }
        if let Some(vmlinux) = &self.kernel_unpacked {
            if self.kernel.is_none() {
                return Err(ConfigError::BootMethod(
                    "kernel_unpacked is set without a kernel; it goes with a bzImage",
                ));
            }
            check_file(vmlinux).map_err(|reason| ConfigError::Kernel {
                path: vmlinux.clone(),
                reason,
            })?;
        }
        if let Some(initrd) = &self.initrd {
            check_file(initrd).map_err(|reason| ConfigError::Initrd {
                path: initrd.clone(),
                reason,
            })?;
        }
        if self.cmdline.len() >= CMDLINE_MAX {
            return Err(ConfigError::Cmdline(format!(
                "{} bytes, at most {} allowed",
                self.cmdline.len(),
                CMDLINE_MAX - 1
            )));
        }
        if self.cmdline.bytes().any(|b| b == 0 || !b.is_ascii()) {
            return Err(ConfigError::Cmdline(
                "must be ASCII without NUL bytes".into(),
            ));
        }
        if let Some(d) = &self.display {
            if d.width == 0
                || d.height == 0
                || d.width > MAX_DISPLAY_SIDE
                || d.height > MAX_DISPLAY_SIDE
            {
                return Err(ConfigError::Display(format!(
                    "{}x{} is outside 1x1..{MAX_DISPLAY_SIDE}x{MAX_DISPLAY_SIDE}",
                    d.width, d.height
                )));
            }
            let bytes = u64::from(d.width) * u64::from(d.height) * 4;
            if bytes > crate::limits::FRAMEBUFFER_MAX_SIZE {
                return Err(ConfigError::Display(format!(
                    "{}x{} needs {bytes} bytes, the framebuffer window holds {}",
                    d.width,
                    d.height,
                    crate::limits::FRAMEBUFFER_MAX_SIZE
                )));
            }
            if d.model == DisplayModel::Vga && self.machine != Machine::Pc {
                return Err(ConfigError::Display(
                    "model vga: the VGA device sits on PCI, which only the pc machine has".into(),
                ));
            }
            if d.model == DisplayModel::Vga
                && (d.width > crate::limits::VGA_MAX_WIDTH
                    || d.height > crate::limits::VGA_MAX_HEIGHT)
            {
                return Err(ConfigError::Display(format!(
                    "{}x{}: the VGA's modes go up to {}x{}",
                    d.width,
                    d.height,
                    crate::limits::VGA_MAX_WIDTH,
                    crate::limits::VGA_MAX_HEIGHT
                )));
            }
            if d.vnc.tcp_port == Some(0) {
                return Err(ConfigError::Display("vnc.tcp_port: 0 is not a port".into()));
            }
        }
        for (index, disk) in self.disks.iter().enumerate() {
            if disk.path.as_os_str().is_empty() {
                return Err(ConfigError::Disk {
                    index,
                    reason: "path is empty".into(),
                });
            }
            if let Some(s) = &disk.serial {
                if s.len() > 20 {
                    return Err(ConfigError::Disk {
                        index,
                        reason: format!("serial `{s}` is longer than 20 bytes"),
                    });
                }
            }
        }
        crate::scsi::check_controllers(&self.scsi).map_err(ConfigError::Scsi)?;
        for (index, net) in self.nets.iter().enumerate() {
            if net.mac.0[0] & 1 != 0 {
                return Err(ConfigError::Net {
                    index,
                    reason: format!("mac {} is a multicast address", net.mac),
                });
            }
            let NetBackend::UserNet { port_forwards } = &net.backend;
            for (j, pf) in port_forwards.iter().enumerate() {
                if pf.host_port == 0 || pf.guest_port == 0 {
                    return Err(ConfigError::Net {
                        index,
                        reason: format!("port_forwards[{j}]: port 0 is not allowed"),
                    });
                }
            }
        }
        let n = self.virtio_device_count();
        if n > self.machine.virtio_max() {
            return Err(ConfigError::TooManyDevices {
                got: n,
                max: self.machine.virtio_max(),
            });
        }
        match self.machine {
            Machine::Pc => {
                crate::pci::slots(self)?;
            }
            Machine::Microvm if !self.pci_slots.is_empty() => {
                return Err(SlotError::NoPciBus.into());
            }
            Machine::Microvm => {}
        }
        Ok(())
    }
}

impl VmConfig {
    fn validate_firmware(&self, fw: &FirmwareConfig) -> Result<(), ConfigError> {
        if let Some(nvram) = &fw.nvram {
            if self.machine != Machine::Pc {
                return Err(ConfigError::Firmware(
                    "nvram: UEFI firmware runs on the pc machine only".into(),
                ));
            }
            crate::flash::check_pair(&fw.loader, nvram)?;
            return self.validate_firmware_common(fw);
        }
        let meta = std::fs::metadata(&fw.loader).map_err(|e| ConfigError::Loader {
            path: fw.loader.clone(),
            reason: e.to_string(),
        })?;
        let size = meta.len();
        if !meta.is_file()
            || size == 0
            || size % crate::limits::FIRMWARE_ALIGN != 0
            || size > crate::limits::FIRMWARE_MAX_SIZE
        {
            return Err(ConfigError::Loader {
                path: fw.loader.clone(),
                reason: format!(
                    "not a BIOS image: a file of 64 KiB to {} KiB in 64 KiB steps is needed, \
                     this is {size} bytes",
                    crate::limits::FIRMWARE_MAX_SIZE >> 10
                ),
            });
        }
        self.validate_firmware_common(fw)
    }

    fn validate_firmware_common(&self, fw: &FirmwareConfig) -> Result<(), ConfigError> {
        if let Some(rom) = &fw.vga_rom {
            check_file(rom).map_err(|reason| {
                ConfigError::Firmware(format!("vga_rom: {}: {reason}", rom.display()))
            })?;
        }
        if self.initrd.is_some() || !self.cmdline.is_empty() {
            return Err(ConfigError::Firmware(
                "initrd and cmdline belong to direct kernel boot; the boot loader chooses them \
                 under firmware boot"
                    .into(),
            ));
        }
        for (i, dev) in fw.boot_order.iter().enumerate() {
            let ok = match *dev {
                BootDevice::Disk { index } => index < self.disks.len(),
                BootDevice::Net { index } => index < self.nets.len(),
                BootDevice::Scsi {
                    controller,
                    target,
                    lun,
                } => self
                    .scsi
                    .get(controller)
                    .is_some_and(|c| c.devices.iter().any(|d| d.target == target && d.lun == lun)),
            };
            if !ok {
                return Err(ConfigError::Firmware(format!(
                    "boot_order[{i}]: {dev:?} does not exist"
                )));
            }
            if fw.boot_order[..i].contains(dev) {
                return Err(ConfigError::Firmware(format!(
                    "boot_order[{i}]: {dev:?} is listed twice"
                )));
            }
        }
        if let Some(Err(e)) = fw.smbios.uuid_bytes() {
            return Err(ConfigError::Firmware(format!("smbios.uuid: {e}")));
        }
        Ok(())
    }
}

fn check_file(path: &Path) -> Result<(), String> {
    let meta = std::fs::metadata(path).map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    std::fs::File::open(path).map_err(|e| e.to_string())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_full_config() {
        let json = r#"{
            "version": 1, "name": "t", "memory_mib": 256, "vcpus": 2,
            "kernel": "/k", "initrd": "/i", "cmdline": "console=ttyS0",
            "serial": {"log": "/tmp/l", "socket": "/tmp/s"},
            "display": {"width": 800, "height": 600, "vnc": {"unix_socket": "/tmp/v", "tcp_port": 5901, "password": "pw"}},
            "disks": [{"path": "/d.qcow2", "format": "qcow2", "readonly": true, "serial": "abc"}],
            "nets": [{"mac": "52:54:00:12:34:56", "backend": {"user_net": {"port_forwards": [
                {"protocol": "tcp", "host_port": 2222, "guest_port": 22}]}}}],
            "input": {"keyboard": true, "tablet": true}, "rng": true, "boot_marker": true, "seccomp": false
        }"#;
        let cfg: VmConfig = serde_json::from_str(json).unwrap();
        assert_eq!(cfg.nets[0].mac.0, [0x52, 0x54, 0, 0x12, 0x34, 0x56]);
        assert_eq!(cfg.disks[0].format, DiskFormat::Qcow2);
        assert_eq!(cfg.virtio_device_count(), 5);
        let back = serde_json::to_string(&cfg).unwrap();
        assert_eq!(serde_json::from_str::<VmConfig>(&back).unwrap(), cfg);
    }

    #[test]
    fn a_backing_layer_needs_its_format() {
        let json = r#"{"path": "/top.qcow2", "format": "qcow2",
            "backing": [{"path": "/base.qcow2", "format": "qcow2"}, {"path": "/iso", "format": "raw"}]}"#;
        let d: DiskConfig = serde_json::from_str(json).unwrap();
        assert_eq!(d.backing.len(), 2);
        assert_eq!(d.backing[1].format, DiskFormat::Raw);
        let no_format = r#"{"path": "/top.qcow2", "format": "qcow2", "backing": [{"path": "/b"}]}"#;
        assert!(serde_json::from_str::<DiskConfig>(no_format).is_err());
        // A disk without a chain serializes as before.
        let old: DiskConfig = serde_json::from_str(r#"{"path": "/d"}"#).unwrap();
        assert!(!serde_json::to_string(&old).unwrap().contains("backing"));
    }

    #[test]
    fn refuses_unknown_fields_and_bad_values() {
        let bad = r#"{"name":"t","memory_mib":1,"vcpus":1,"kernel":"/k","bogus":1}"#;
        assert!(serde_json::from_str::<VmConfig>(bad).is_err());
        let mut cfg = VmConfig::minimal("t", "/nonexistent/kernel".into(), 0, 1);
        assert_eq!(cfg.validate(), Err(ConfigError::Memory(0)));
        cfg.memory_mib = 64;
        cfg.vcpus = 0;
        assert!(matches!(
            cfg.validate(),
            Err(ConfigError::Vcpus { got: 0, .. })
        ));
        cfg.vcpus = 1;
        let err = cfg.validate().unwrap_err();
        assert!(
            err.to_string().starts_with("kernel: /nonexistent/kernel:"),
            "{err}"
        );
        assert!("52:54:00:12:34".parse::<MacAddr>().is_err());
    }

    /// A fresh directory for one test's files (removed by the test's end only on success;
    /// the system's temp cleaning takes the rest).
    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("vireo-api-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn firmware_config(loader: PathBuf) -> VmConfig {
        VmConfig::minimal_firmware(
            "fw",
            FirmwareConfig {
                loader,
                vga_rom: None,
                boot_order: vec![BootDevice::Disk { index: 0 }],
                boot_menu_timeout_ms: Some(3000),
                smbios: SmbiosConfig {
                    uuid: Some("c7a5fdbd-cdaf-9455-926a-d65c16db1809".into()),
                    ..SmbiosConfig::default()
                },
                nvram: None,
            },
            64,
            1,
        )
    }

    #[test]
    fn firmware_boot_round_trips_and_needs_no_kernel() {
        let dir = scratch("fw-ok");
        let bios = dir.join("bios.bin");
        std::fs::write(&bios, vec![0u8; 256 << 10]).unwrap();
        let mut cfg = firmware_config(bios.clone());
        cfg.disks.push(DiskConfig {
            path: "/d.iso".into(),
            format: DiskFormat::Raw,
            readonly: true,
            shareable: false,
            serial: None,
            cdrom: true,
            backing: Vec::new(),
        });
        let json = serde_json::to_string(&cfg).unwrap();
        assert!(!json.contains("\"kernel\""), "{json}");
        assert!(
            json.contains(r#""boot_order":[{"disk":{"index":0}}]"#),
            "{json}"
        );
        assert_eq!(serde_json::from_str::<VmConfig>(&json).unwrap(), cfg);
        cfg.validate().unwrap();
        assert_eq!(
            cfg.firmware.as_ref().unwrap().smbios.uuid_bytes(),
            Some(Ok([
                0xc7, 0xa5, 0xfd, 0xbd, 0xcd, 0xaf, 0x94, 0x55, 0x92, 0x6a, 0xd6, 0x5c, 0x16, 0xdb,
                0x18, 0x09
            ]))
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn firmware_boot_refuses_what_it_cannot_do() {
        let dir = scratch("fw-bad");
        let bios = dir.join("bios.bin");
        std::fs::write(&bios, vec![0u8; 256 << 10]).unwrap();
        // The boot order names a disk that is not there.
        let cfg = firmware_config(bios.clone());
        let err = cfg.validate().unwrap_err().to_string();
        assert!(err.starts_with("firmware: boot_order[0]"), "{err}");
        // A loader that is no BIOS image.
        let odd = dir.join("odd.bin");
        std::fs::write(&odd, b"not a bios").unwrap();
        let mut cfg = firmware_config(odd.clone());
        cfg.firmware.as_mut().unwrap().boot_order.clear();
        let err = cfg.validate().unwrap_err().to_string();
        assert!(
            err.starts_with(&format!(
                "firmware.loader: {}: not a BIOS image",
                odd.display()
            )),
            "{err}"
        );
        // Missing loader.
        let mut cfg = firmware_config(dir.join("missing.bin"));
        cfg.firmware.as_mut().unwrap().boot_order.clear();
        assert!(matches!(cfg.validate(), Err(ConfigError::Loader { .. })));
        // Both boot methods, or neither.
        let mut cfg = firmware_config(bios.clone());
        cfg.firmware.as_mut().unwrap().boot_order.clear();
        cfg.kernel = Some(bios.clone());
        assert!(matches!(cfg.validate(), Err(ConfigError::BootMethod(_))));
        cfg.kernel = None;
        cfg.firmware = None;
        assert!(matches!(cfg.validate(), Err(ConfigError::BootMethod(_))));
        // A command line belongs to the boot loader.
        let mut cfg = firmware_config(bios);
        cfg.firmware.as_mut().unwrap().boot_order.clear();
        cfg.cmdline = "quiet".into();
        assert!(matches!(cfg.validate(), Err(ConfigError::Firmware(_))));
        cfg.cmdline.clear();
        cfg.firmware.as_mut().unwrap().smbios.uuid = Some("not-a-uuid".into());
        let err = cfg.validate().unwrap_err().to_string();
        assert!(err.starts_with("firmware: smbios.uuid"), "{err}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
