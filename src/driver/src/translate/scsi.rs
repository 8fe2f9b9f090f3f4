//! Where each `<disk>` goes: virtio-blk, or a (target, LUN) on a virtio-scsi controller
//! (`<controller type='scsi' model='virtio-scsi'>`), decided from the document alone so that a
//! plan's boot order can be checked before any image exists.
//!
//! libvirt's rules: a `bus='scsi'` disk sits at its `<address type='drive'>` (controller, bus 0,
//! target, unit = LUN); without one, libvirt's assignment for virtio-scsi is controller 0,
//! target 0, unit = the index of the target name (`sda` 0, `sdb` 1). A scsi disk with no scsi
//! controller in the document gets an implicit virtio-scsi controller of index 0 (the driver
//! writes it into the definition on define; a document that has none still works). CD-ROM
//! drives exist only on virtio-scsi: on another bus they are refused with the way out.

use super::{attr_or_empty, dev_path, refuse, TranslateError};
use std::collections::{HashMap, HashSet};
use vireo_domain::{disk_name_index, Devices, DiskBus, DiskDevice, Element};
use vireo_vmm_api::config::BootDevice;
use vireo_vmm_api::scsi::{self as api, SCSI_MAX_DEVICES, SCSI_MAX_LUN, SCSI_MAX_TARGET};

/// The one SCSI controller model the backend has.
pub const VIRTIO_SCSI: &str = "virtio-scsi";

/// Where one `<disk>` is, in the VMM config's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Slot {
    /// `disks[index]`.
    Virtio(usize),
    /// `scsi[controller]` (position in the config), at target and LUN.
    Scsi {
        controller: usize,
        target: u16,
        lun: u16,
    },
}

impl Slot {
    pub(super) fn boot_device(self) -> BootDevice {
        match self {
            Slot::Virtio(index) => BootDevice::Disk { index },
            Slot::Scsi {
                controller,
                target,
                lun,
            } => BootDevice::Scsi {
                controller,
                target,
                lun,
            },
        }
    }
}

/// Every disk's slot (in document order) and the number of virtio-scsi controllers.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(super) struct Layout {
    pub slots: Vec<Slot>,
    pub controllers: usize,
}

/// The bus of a disk. An absent `target@bus` is virtio for a hard disk (Vireo's default since
/// its first release); for a CD-ROM it follows the target name as in libvirt (`sd*` scsi,
/// `vd*` virtio, anything else ide).
fn bus_of(device: &DiskDevice, bus: Option<DiskBus>, dev: &str) -> DiskBus {
    match bus {
        Some(b) => b,
        None if *device != DiskDevice::Cdrom => DiskBus::Virtio,
        None if dev.starts_with("sd") => DiskBus::Scsi,
        None if dev.starts_with("vd") => DiskBus::Virtio,
        None => DiskBus::Ide,
    }
}

/// The virtio-scsi controllers by their `index`, in document order; an implicit index 0 when
/// a scsi disk needs one and the document has none.
fn controllers(
    devices: &Devices<&Element>,
    any_scsi_disk: bool,
) -> Result<HashMap<u32, usize>, TranslateError> {
    let mut by_index = HashMap::new();
    let mut position = 0;
    for (i, c) in devices.controllers().iter().enumerate() {
        if c.controller_type().as_deref() != Some("scsi") {
            continue;
        }
        let path = dev_path("controller", i);
        match c.model().as_deref() {
            // No model: the hypervisor's default, which for Vireo is virtio-scsi.
            None | Some(VIRTIO_SCSI) => {}
            Some(m) => {
                return refuse(
                    format!("{path}@model='{m}'"),
                    "not supported by the Vireo backend (SCSI controllers are model='virtio-scsi')",
                )
            }
        }
        let Some(index) = c.index() else {
            return refuse(
                format!("{path}@index='{}'", attr_or_empty(c.element(), "index")),
                "must be a number",
            );
        };
        for child in c.element().elements() {
            if !matches!(child.name(), "address" | "alias") {
                return super::not_supported(format!("{path}/{}", child.name()));
            }
        }
        if by_index.insert(index, position).is_some() {
            return refuse(
                format!("{path}@index='{index}'"),
                "another scsi controller has this index",
            );
        }
        position += 1;
    }
    if by_index.is_empty() && any_scsi_disk {
        by_index.insert(0, 0);
    }
    Ok(by_index)
}

/// The slot of every disk, checked against the controllers and each other. `machine` names
/// the machine in the way out of a refused CD-ROM.
pub(super) fn layout(devices: &Devices<&Element>, machine: &str) -> Result<Layout, TranslateError> {
    let disks = devices.disks();
    let buses: Vec<DiskBus> = disks
        .iter()
        .map(|d| {
            bus_of(
                &d.device(),
                d.target_bus(),
                &d.target_dev().unwrap_or_default(),
            )
        })
        .collect();
    let by_index = controllers(devices, buses.contains(&DiskBus::Scsi))?;
    let mut slots = Vec::with_capacity(disks.len());
    let mut virtio = 0;
    let mut taken: HashSet<(usize, u16, u16)> = HashSet::new();
    let mut per_controller = vec![0usize; by_index.len()];
    for (i, (d, bus)) in disks.iter().zip(buses).enumerate() {
        let path = dev_path("disk", i);
        let dev = d.target_dev().unwrap_or_default();
        let cdrom = d.device() == DiskDevice::Cdrom;
        if bus != DiskBus::Scsi {
            if cdrom {
                return refuse(
                    format!("{path}/target@bus='{bus}'"),
                    format!(
                        "a CD-ROM drive on the {bus} bus is not supported; Vireo's CD-ROM \
                         drives are on bus='scsi' (virtio-scsi): change the target to \
                         <target dev='sda' bus='scsi'/> and remove its <address> with \
                         'vireoctl edit {machine}'"
                    ),
                );
            }
            if bus != DiskBus::Virtio {
                return refuse(
                    format!("{path}/target@bus='{bus}'"),
                    "not supported by the Vireo backend (use bus='virtio' or bus='scsi')",
                );
            }
            slots.push(Slot::Virtio(virtio));
            virtio += 1;
            continue;
        }
        api::check_id(&dev).map_err(|e| TranslateError {
            path: format!("{path}/target@dev='{dev}'"),
            message: format!("not usable as a drive name: {e}"),
        })?;
        let (controller, target, unit) = match d.drive_address() {
            Some(Ok(a)) => {
                if a.bus != 0 {
                    return refuse(
                        format!("{path}/address@bus='{}'", a.bus),
                        "a virtio-scsi controller has one bus, 0",
                    );
                }
                (a.controller, a.target, a.unit)
            }
            Some(Err((attr, value))) => {
                return refuse(
                    format!("{path}/address@{attr}='{value}'"),
                    "must be a number",
                )
            }
            None => {
                if let Some(a) = d.element().child("address") {
                    return refuse(
                        format!("{path}/address@type='{}'", attr_or_empty(a, "type")),
                        "a scsi disk's address is type='drive'",
                    );
                }
                let Some(unit) = disk_name_index(&dev) else {
                    return refuse(
                        format!("{path}/target@dev='{dev}'"),
                        "gives no unit number (name it sda, sdb, ..., or add \
                         <address type='drive' controller='0' bus='0' target='0' unit='N'/>)",
                    );
                };
                (0, 0, unit)
            }
        };
        let Some(&position) = by_index.get(&controller) else {
            return refuse(
                format!("{path}/address@controller='{controller}'"),
                format!("there is no <controller type='scsi' index='{controller}'>"),
            );
        };
        let target = u16::try_from(target)
            .ok()
            .filter(|t| *t <= SCSI_MAX_TARGET)
            .ok_or_else(|| TranslateError {
                path: format!("{path}/address@target='{target}'"),
                message: format!("above {SCSI_MAX_TARGET}, the highest virtio-scsi target"),
            })?;
        let lun = u16::try_from(unit)
            .ok()
            .filter(|u| *u <= SCSI_MAX_LUN)
            .ok_or_else(|| TranslateError {
                path: format!("{path}/address@unit='{unit}'"),
                message: format!("above {SCSI_MAX_LUN}, the highest virtio-scsi LUN"),
            })?;
        if !taken.insert((position, target, lun)) {
            return refuse(
                path,
                format!(
                    "scsi controller {controller} target {target} unit {lun} holds another disk"
                ),
            );
        }
        per_controller[position] += 1;
        if per_controller[position] > SCSI_MAX_DEVICES {
            return refuse(
                path,
                format!("more than {SCSI_MAX_DEVICES} disks on scsi controller {controller}"),
            );
        }
        slots.push(Slot::Scsi {
            controller: position,
            target,
            lun,
        });
    }
    Ok(Layout {
        slots,
        controllers: by_index.len(),
    })
}
