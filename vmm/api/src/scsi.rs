//! virtio-scsi controllers and what sits on them (CD-ROM drives and hard disks), as the driver
//! configures them and as the control socket names them.

use crate::config::DiskConfig;
use serde::{Deserialize, Serialize};

/// The highest SCSI target number a virtio-scsi controller addresses: the request's LUN field
/// carries the target in one byte.
pub const SCSI_MAX_TARGET: u16 = 255;
/// The highest LUN: virtio-scsi's flat (single-level) LUN addressing has 14 bits.
pub const SCSI_MAX_LUN: u16 = 16383;
/// Devices on one controller.
pub const SCSI_MAX_DEVICES: usize = 16;
/// The longest drive id (`sda`, `hdc`, a libvirt alias).
pub const SCSI_ID_MAX: usize = 64;

/// One virtio-scsi controller, one virtio device.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScsiControllerConfig {
    /// The devices on it, each at its own (target, LUN).
    #[serde(default)]
    pub devices: Vec<ScsiDeviceConfig>,
}

/// A device on a virtio-scsi controller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScsiDeviceConfig {
    /// The name the control socket's media commands use: libvirt's `target dev` (`sda`). Unique
    /// across the machine; ASCII letters, digits, `-`, `_` and `.`.
    pub id: String,
    /// The SCSI target (libvirt's `address target`; QEMU's scsi-id), 0..=[`SCSI_MAX_TARGET`].
    pub target: u16,
    /// The LUN on that target (libvirt's `address unit`), 0..=[`SCSI_MAX_LUN`]. libvirt puts
    /// every disk of a virtio-scsi controller on target 0 and counts them in LUNs.
    #[serde(default)]
    pub lun: u16,
    pub kind: ScsiDeviceKind,
}

/// What a SCSI target is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum ScsiDeviceKind {
    /// An MMC CD-ROM drive (peripheral type 5). `None` is an empty drive. A medium is always
    /// read-only, whatever its `readonly` says.
    Cdrom { medium: Option<DiskConfig> },
    /// A hard disk (peripheral type 0) on the same block back ends as virtio-blk.
    Disk { disk: DiskConfig },
}

impl ScsiDeviceKind {
    pub fn is_cdrom(&self) -> bool {
        matches!(self, ScsiDeviceKind::Cdrom { .. })
    }
}

/// Why a SCSI part of a config is refused (the caller adds where).
pub(crate) fn check_controllers(controllers: &[ScsiControllerConfig]) -> Result<(), String> {
    let mut ids = std::collections::HashSet::new();
    for (c, ctrl) in controllers.iter().enumerate() {
        if ctrl.devices.len() > SCSI_MAX_DEVICES {
            return Err(format!(
                "scsi[{c}]: {} devices, at most {SCSI_MAX_DEVICES}",
                ctrl.devices.len()
            ));
        }
        let mut targets = std::collections::HashSet::new();
        for (d, dev) in ctrl.devices.iter().enumerate() {
            let at = format!("scsi[{c}].devices[{d}]");
            check_id(&dev.id).map_err(|e| format!("{at}.id: {e}"))?;
            if !ids.insert(dev.id.as_str()) {
                return Err(format!("{at}.id: `{}` is used twice", dev.id));
            }
            if dev.target > SCSI_MAX_TARGET {
                return Err(format!(
                    "{at}.target: {} is above {SCSI_MAX_TARGET}",
                    dev.target
                ));
            }
            if dev.lun > SCSI_MAX_LUN {
                return Err(format!("{at}.lun: {} is above {SCSI_MAX_LUN}", dev.lun));
            }
            if !targets.insert((dev.target, dev.lun)) {
                return Err(format!(
                    "{at}: target {} LUN {} is used twice",
                    dev.target, dev.lun
                ));
            }
            let disk = match &dev.kind {
                ScsiDeviceKind::Cdrom { medium } => medium.as_ref(),
                ScsiDeviceKind::Disk { disk } => Some(disk),
            };
            if let Some(disk) = disk {
                if disk.path.as_os_str().is_empty() {
                    return Err(format!("{at}: path is empty"));
                }
            }
        }
    }
    Ok(())
}

/// A drive id as the control socket accepts it.
pub fn check_id(id: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > SCSI_ID_MAX {
        return Err(format!("must be 1..={SCSI_ID_MAX} bytes"));
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Err(format!(
            "`{id}` may hold only ASCII letters, digits, '-', '_' and '.'"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DiskFormat;
    use std::path::PathBuf;

    fn disk(path: &str) -> DiskConfig {
        DiskConfig {
            path: PathBuf::from(path),
            format: DiskFormat::Raw,
            readonly: true,
            shareable: false,
            serial: None,
            cdrom: true,
            backing: vec![],
        }
    }

    fn dev(id: &str, target: u16, kind: ScsiDeviceKind) -> ScsiDeviceConfig {
        ScsiDeviceConfig {
            id: id.into(),
            target,
            lun: 0,
            kind,
        }
    }

    #[test]
    fn the_json_names_each_kind() {
        let c = ScsiControllerConfig {
            devices: vec![
                dev("sda", 0, ScsiDeviceKind::Cdrom { medium: None }),
                dev(
                    "sdb",
                    1,
                    ScsiDeviceKind::Disk {
                        disk: disk("/x.img"),
                    },
                ),
            ],
        };
        let text = serde_json::to_string(&c).unwrap();
        assert!(
            text.contains(r#""kind":{"cdrom":{"medium":null}}"#),
            "{text}"
        );
        assert!(
            text.contains(r#""kind":{"disk":{"disk":{"path":"/x.img""#),
            "{text}"
        );
        let back: ScsiControllerConfig = serde_json::from_str(&text).unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn ids_and_targets_are_unique_and_bounded() {
        let empty = || ScsiDeviceKind::Cdrom { medium: None };
        let one = |devices| vec![ScsiControllerConfig { devices }];
        assert!(
            check_controllers(&one(vec![dev("sda", 0, empty()), dev("sdb", 1, empty())])).is_ok()
        );
        let e = check_controllers(&one(vec![dev("sda", 0, empty()), dev("sda", 1, empty())]));
        assert!(e
            .unwrap_err()
            .contains("devices[1].id: `sda` is used twice"));
        let e = check_controllers(&one(vec![dev("sda", 2, empty()), dev("sdb", 2, empty())]));
        assert!(e
            .unwrap_err()
            .contains("devices[1]: target 2 LUN 0 is used twice"));
        let mut lun1 = dev("sdb", 2, empty());
        lun1.lun = 1;
        assert!(check_controllers(&one(vec![dev("sda", 2, empty()), lun1.clone()])).is_ok());
        lun1.lun = 16384;
        assert!(check_controllers(&one(vec![lun1]))
            .unwrap_err()
            .contains("lun: 16384 is above"));
        let e = check_controllers(&one(vec![dev("sda", 256, empty())]));
        assert!(e.unwrap_err().contains("256 is above 255"));
        let e = check_controllers(&one(vec![dev("../x", 0, empty())]));
        assert!(e.unwrap_err().contains(".id: `../x` may hold only"));
        // Ids are unique across controllers too: the control socket names a drive by id alone.
        let two = vec![
            ScsiControllerConfig {
                devices: vec![dev("sda", 0, empty())],
            },
            ScsiControllerConfig {
                devices: vec![dev("sda", 0, empty())],
            },
        ];
        assert!(check_controllers(&two)
            .unwrap_err()
            .contains("scsi[1].devices[0].id"));
    }
}
