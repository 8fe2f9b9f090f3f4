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
    /// Guest RAM in MiB (must be at least 1).
    pub memory_mib: u64,
    /// Number of vCPUs (1..=KVM_CAP_MAX_VCPUS, also capped by [`crate::limits::MAX_VCPUS`]).
    pub vcpus: u8,
    /// Kernel: a bzImage (64-bit boot protocol) or an ELF vmlinux with a PVH note.
    pub kernel: PathBuf,
    /// Optional initramfs.
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
    /// Install the per-thread seccomp filters. Turning this off is for debugging only.
    #[serde(default = "default_true")]
    pub seccomp: bool,
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
            width: default_width(),
            height: default_height(),
            vnc: VncConfig::default(),
        }
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
    #[error("too many virtio devices: {0} (at most {max})", max = crate::limits::VIRTIO_MMIO_MAX)]
    TooManyDevices(usize),
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
            memory_mib,
            vcpus,
            kernel,
            initrd: None,
            cmdline: String::new(),
            serial: SerialConfig::default(),
            display: None,
            disks: Vec::new(),
            nets: Vec::new(),
            input: InputConfig {
                keyboard: false,
                tablet: false,
            },
            rng: false,
            boot_marker: true,
            seccomp: true,
        }
    }

    /// Number of virtio-mmio devices this config asks for.
    pub fn virtio_device_count(&self) -> usize {
        self.disks.len()
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
        check_file(&self.kernel).map_err(|reason| ConfigError::Kernel {
            path: self.kernel.clone(),
            reason,
        })?;
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
        if n > crate::limits::VIRTIO_MMIO_MAX {
            return Err(ConfigError::TooManyDevices(n));
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
}
