//! `<disk>`: file-backed hard disks as virtio-blk or on virtio-scsi, and CD-ROM drives on
//! virtio-scsi (where they go is [`super::scsi::layout`]'s).

use super::scsi::{Layout, Slot};
use super::{check_file, dev_path, not_supported, refuse, TranslateError};
use vireo_domain::{Devices, Disk, DiskDevice, DiskType, Element, ImageFormat};
use vireo_vmm_api::config::{
    BackingConfig, DiskConfig, DiskFormat, ScsiControllerConfig, ScsiDeviceConfig, ScsiDeviceKind,
};

/// Every disk, virtio-blk ones in document order and the virtio-scsi controllers with theirs;
/// a writable disk's file may not be used twice.
pub(super) fn disks(
    devices: &Devices<&Element>,
    layout: &Layout,
) -> Result<(Vec<DiskConfig>, Vec<ScsiControllerConfig>), TranslateError> {
    let mut virtio = Vec::new();
    let mut scsi = vec![ScsiControllerConfig::default(); layout.controllers];
    let mut files: Vec<(usize, DiskConfig)> = Vec::new();
    for (i, (d, slot)) in devices.disks().iter().zip(&layout.slots).enumerate() {
        let image = disk(&dev_path("disk", i), d)?;
        if let Some(img) = &image {
            files.push((i, img.clone()));
        }
        match (*slot, image) {
            (Slot::Virtio(_), Some(img)) => virtio.push(img),
            // The layout refused a CD-ROM off virtio-scsi, and `disk` a disk without a file.
            (Slot::Virtio(_), None) => return refuse(dev_path("disk", i), "no image"),
            (
                Slot::Scsi {
                    controller,
                    target,
                    lun,
                },
                image,
            ) => {
                let kind = match (d.device(), image) {
                    (DiskDevice::Cdrom, medium) => ScsiDeviceKind::Cdrom { medium },
                    (_, Some(disk)) => ScsiDeviceKind::Disk { disk },
                    (_, None) => return refuse(dev_path("disk", i), "no image"),
                };
                scsi[controller].devices.push(ScsiDeviceConfig {
                    id: d.target_dev().unwrap_or_default(),
                    target,
                    lun,
                    kind,
                });
            }
        }
    }
    if files.iter().any(|(_, d)| !d.shareable && !d.readonly) {
        let mut seen = std::collections::HashSet::new();
        for (i, d) in &files {
            if !seen.insert(d.path.clone()) {
                return refuse(
                    format!("devices/disk[{}]/source", i + 1),
                    format!("{} is used twice", d.path.display()),
                );
            }
        }
    }
    Ok((virtio, scsi))
}

/// The image of one disk; `None` for an empty CD-ROM drive. The bus was checked by the layout.
fn disk(path: &str, d: &Disk<&Element>) -> Result<Option<DiskConfig>, TranslateError> {
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
    check_children(path, d)?;
    let file = match d.source() {
        Some(f) => f,
        None if cdrom => return Ok(None),
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
    let serial = d.serial().map(|s| s.trim().to_owned());
    if let Some(s) = &serial {
        if s.len() > 20 {
            return refuse(
                format!("{path}/serial"),
                "longer than 20 bytes (virtio-blk's limit)",
            );
        }
    }
    Ok(Some(DiskConfig {
        path: file,
        format,
        readonly: cdrom || d.readonly(),
        shareable: d.shareable(),
        serial,
        cdrom,
        backing,
    }))
}

/// Only the children the backend acts on (or that change nothing: alias, address).
fn check_children(path: &str, d: &Disk<&Element>) -> Result<(), TranslateError> {
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
    Ok(())
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
