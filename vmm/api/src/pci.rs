//! Where the `pc` machine's virtio devices sit on PCI bus 0: slots the config names, and the
//! rule for the rest. Both sides use [`slots`]: the VMM places the functions by it, firmware's
//! `bootorder` names them by it, and the driver writes the addresses it gives back into the
//! domain, as libvirt does, so a definition says where each device is.

use serde::{Deserialize, Serialize};

use crate::config::VmConfig;
use crate::limits::PCI_FIRST_VIRTIO_SLOT;

/// One virtio device of a config, by its place in the config's own lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum VirtioRef {
    /// `disks[index]`.
    Disk {
        index: usize,
    },
    /// `scsi[controller]`.
    Scsi {
        controller: usize,
    },
    /// `nets[index]`.
    Net {
        index: usize,
    },
    Rng,
    Keyboard,
    Tablet,
}

/// A device placed at PCI device number `slot` (function 0) of bus 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PciSlot {
    pub device: VirtioRef,
    pub slot: u8,
}

/// What is wrong with the config's `pci_slots`.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum SlotError {
    #[error("pci_slots[{index}]: slot {slot:#04x} is not free for a device: 0x00-0x02 are the chipset's and the display's, 0x1f is the last")]
    Reserved { index: usize, slot: u8 },
    #[error("pci_slots[{index}]: slot {slot:#04x} is already taken by {other:?}")]
    Taken {
        index: usize,
        slot: u8,
        other: VirtioRef,
    },
    #[error("pci_slots[{index}]: {device:?} is placed twice")]
    Twice { index: usize, device: VirtioRef },
    #[error("pci_slots[{index}]: the config has no {device:?}")]
    NoSuchDevice { index: usize, device: VirtioRef },
    #[error("pci_slots: only the pc machine has a PCI bus")]
    NoPciBus,
    #[error("{count} virtio devices do not fit PCI bus 0's free slots")]
    Full { count: usize },
}

/// The config's virtio devices in attach order (which is the guest's naming order: disks,
/// SCSI controllers, NICs, rng, keyboard, tablet).
pub fn devices(cfg: &VmConfig) -> Vec<VirtioRef> {
    let mut out: Vec<VirtioRef> = (0..cfg.disks.len())
        .map(|index| VirtioRef::Disk { index })
        .collect();
    out.extend((0..cfg.scsi.len()).map(|controller| VirtioRef::Scsi { controller }));
    out.extend((0..cfg.nets.len()).map(|index| VirtioRef::Net { index }));
    if cfg.rng {
        out.push(VirtioRef::Rng);
    }
    if cfg.input.keyboard {
        out.push(VirtioRef::Keyboard);
    }
    // A tablet only makes sense with a display (VmConfig::virtio_device_count says the same).
    if cfg.input.tablet && cfg.display.is_some() {
        out.push(VirtioRef::Tablet);
    }
    out
}

/// The slot of every virtio device, in attach order: the one `pci_slots` names, else the lowest
/// slot from [`PCI_FIRST_VIRTIO_SLOT`] that no device took.
pub fn slots(cfg: &VmConfig) -> Result<Vec<(VirtioRef, u8)>, SlotError> {
    let all = devices(cfg);
    let mut taken: [Option<VirtioRef>; 32] = [None; 32];
    for (index, p) in cfg.pci_slots.iter().enumerate() {
        if !all.contains(&p.device) {
            return Err(SlotError::NoSuchDevice {
                index,
                device: p.device,
            });
        }
        if cfg.pci_slots[..index].iter().any(|q| q.device == p.device) {
            return Err(SlotError::Twice {
                index,
                device: p.device,
            });
        }
        let Some(cell) = taken
            .get_mut(usize::from(p.slot))
            .filter(|_| p.slot >= PCI_FIRST_VIRTIO_SLOT)
        else {
            return Err(SlotError::Reserved {
                index,
                slot: p.slot,
            });
        };
        if let Some(other) = *cell {
            return Err(SlotError::Taken {
                index,
                slot: p.slot,
                other,
            });
        }
        *cell = Some(p.device);
    }
    let mut out = Vec::with_capacity(all.len());
    for d in all {
        let slot = match cfg.pci_slots.iter().find(|p| p.device == d) {
            Some(p) => p.slot,
            None => {
                let free = (PCI_FIRST_VIRTIO_SLOT..32)
                    .find(|&s| taken[usize::from(s)].is_none())
                    .ok_or(SlotError::Full {
                        count: out.len() + 1,
                    })?;
                taken[usize::from(free)] = Some(d);
                free
            }
        };
        out.push((d, slot));
    }
    Ok(out)
}

/// The slot of `device`, if the config has it.
pub fn slot_of(cfg: &VmConfig, device: VirtioRef) -> Option<u8> {
    slots(cfg)
        .ok()?
        .into_iter()
        .find(|(d, _)| *d == device)
        .map(|(_, s)| s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{DiskConfig, Machine};
    use std::path::PathBuf;

    fn cfg(disks: usize) -> VmConfig {
        let mut c = VmConfig::minimal("t", PathBuf::from("/k"), 64, 1);
        c.machine = Machine::Pc;
        c.disks = (0..disks)
            .map(|i| DiskConfig::raw(format!("/d{i}")))
            .collect();
        c.rng = true;
        c
    }

    #[test]
    fn unplaced_devices_take_the_lowest_free_slots_in_attach_order() {
        let mut c = cfg(2);
        assert_eq!(
            slots(&c).unwrap(),
            [
                (VirtioRef::Disk { index: 0 }, 3),
                (VirtioRef::Disk { index: 1 }, 4),
                (VirtioRef::Rng, 5)
            ]
        );
        c.pci_slots = vec![PciSlot {
            device: VirtioRef::Disk { index: 1 },
            slot: 3,
        }];
        assert_eq!(
            slots(&c).unwrap(),
            [
                (VirtioRef::Disk { index: 0 }, 4),
                (VirtioRef::Disk { index: 1 }, 3),
                (VirtioRef::Rng, 5)
            ]
        );
        assert_eq!(slot_of(&c, VirtioRef::Rng), Some(5));
        assert_eq!(slot_of(&c, VirtioRef::Keyboard), None);
    }

    #[test]
    fn collisions_reserved_slots_and_unknown_devices_are_refused() {
        let mut c = cfg(2);
        let at = |device, slot| PciSlot { device, slot };
        c.pci_slots = vec![at(VirtioRef::Disk { index: 0 }, 7), at(VirtioRef::Rng, 7)];
        assert_eq!(
            slots(&c),
            Err(SlotError::Taken {
                index: 1,
                slot: 7,
                other: VirtioRef::Disk { index: 0 }
            })
        );
        for s in [0, 1, 2, 32, 255] {
            c.pci_slots = vec![at(VirtioRef::Rng, s)];
            assert_eq!(slots(&c), Err(SlotError::Reserved { index: 0, slot: s }));
        }
        c.pci_slots = vec![at(VirtioRef::Net { index: 0 }, 9)];
        assert!(matches!(slots(&c), Err(SlotError::NoSuchDevice { .. })));
        c.pci_slots = vec![at(VirtioRef::Rng, 9), at(VirtioRef::Rng, 10)];
        assert!(matches!(slots(&c), Err(SlotError::Twice { index: 1, .. })));
    }

    #[test]
    fn a_full_bus_is_refused() {
        let c = cfg(usize::from(32 - PCI_FIRST_VIRTIO_SLOT));
        assert_eq!(slots(&c), Err(SlotError::Full { count: 30 }));
        let c = cfg(usize::from(31 - PCI_FIRST_VIRTIO_SLOT));
        assert_eq!(slots(&c).unwrap().last(), Some(&(VirtioRef::Rng, 31)));
    }
}
