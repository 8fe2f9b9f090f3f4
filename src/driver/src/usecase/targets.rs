//! Disk target names (`vda`, `sdb`, ...): which one a new disk gets, for every front end.

use crate::connection::DriverError;
use vireo_domain::{DiskBus, Domain};

/// The buses Vireo puts new disks on: virtio for disks, virtio-scsi for CD-ROMs (as
/// virt-install does for a machine with virtio-scsi).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bus {
    Virtio,
    Scsi,
}

impl Bus {
    fn prefix(self) -> &'static str {
        match self {
            Bus::Virtio => "vd",
            Bus::Scsi => "sd",
        }
    }

    pub fn disk_bus(self) -> DiskBus {
        match self {
            Bus::Virtio => DiskBus::Virtio,
            Bus::Scsi => DiskBus::Scsi,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Bus::Virtio => "virtio",
            Bus::Scsi => "scsi",
        }
    }
}

/// The first target of `bus` no disk of `dom` uses, and its unit number (a for 0, b for 1, ...),
/// which is the LUN libvirt gives a virtio-scsi disk of that name.
pub fn free_target(dom: &Domain, bus: Bus) -> Result<(String, u32), DriverError> {
    let used: Vec<String> = dom
        .devices()
        .map(|d| d.disks().iter().filter_map(|d| d.target_dev()).collect())
        .unwrap_or_default();
    (b'a'..=b'z')
        .map(|c| {
            (
                format!("{}{}", bus.prefix(), c as char),
                u32::from(c - b'a'),
            )
        })
        .find(|(t, _)| !used.contains(t))
        .ok_or(DriverError::NoFreeTarget { bus: bus.name() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_disks_get_the_first_free_target() {
        let dom = Domain::parse(
            "<domain type='kvm'><name>a</name><memory>1</memory><devices>\
             <disk type='file'><target dev='vda'/></disk>\
             <disk type='file'><target dev='vdc'/></disk></devices></domain>",
        )
        .unwrap();
        assert_eq!(free_target(&dom, Bus::Virtio).unwrap(), ("vdb".into(), 1));
        assert_eq!(free_target(&dom, Bus::Scsi).unwrap(), ("sda".into(), 0));
    }

    #[test]
    fn a_full_bus_is_an_error() {
        let disks: String = (b'a'..=b'z')
            .map(|c| format!("<disk type='file'><target dev='vd{}'/></disk>", c as char))
            .collect();
        let dom = Domain::parse(&format!(
            "<domain type='kvm'><name>a</name><memory>1</memory><devices>{disks}</devices></domain>"
        ))
        .unwrap();
        assert!(matches!(
            free_target(&dom, Bus::Virtio),
            Err(DriverError::NoFreeTarget { bus: "virtio" })
        ));
    }
}
