//! Port I/O and MMIO buses: devices register an address range, vCPU threads dispatch exits.
//!
//! Most ranges are registered while the VM is built, before vCPUs run; PCI BARs come and go
//! while the guest programs them. Lookups take a read lock only, and a device's access runs
//! after that lock is released, so a device may change the bus it sits on. Each device sits behind its own mutex, so two vCPUs touching different devices do
//! not contend.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};

/// A device on the PIO or MMIO bus. `base` is the start of the range it was registered at,
/// `offset` the distance of the access from it; `data.len()` is the access width (1, 2, 4 or
/// 8 bytes, as the guest chose: devices must not assume a width).
pub trait BusDevice: Send {
    fn read(&mut self, base: u64, offset: u64, data: &mut [u8]);
    fn write(&mut self, base: u64, offset: u64, data: &[u8]);
}

/// A shared device handle as stored on a bus.
pub type SharedDevice = Arc<Mutex<dyn BusDevice>>;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BusError {
    #[error("bus range {base:#x}+{len:#x} overlaps an existing device")]
    Overlap { base: u64, len: u64 },
    #[error("bus range {base:#x}+{len:#x} is empty or wraps around")]
    BadRange { base: u64, len: u64 },
}

struct Entry {
    len: u64,
    dev: SharedDevice,
}

/// An address space of devices (one for port I/O, one for MMIO).
#[derive(Default)]
pub struct Bus {
    ranges: RwLock<BTreeMap<u64, Entry>>,
}

impl Bus {
    pub fn new() -> Bus {
        Bus::default()
    }

    /// Registers `dev` for `[base, base + len)`.
    pub fn insert(&self, dev: SharedDevice, base: u64, len: u64) -> Result<(), BusError> {
        let end = base
            .checked_add(len)
            .filter(|_| len > 0)
            .ok_or(BusError::BadRange { base, len })?;
        let mut ranges = self.ranges.write().unwrap_or_else(|e| e.into_inner());
        if let Some((b, e)) = ranges.range(..end).next_back() {
            if b + e.len > base {
                return Err(BusError::Overlap { base, len });
            }
        }
        ranges.insert(base, Entry { len, dev });
        Ok(())
    }

    /// Removes the range registered at `base`; false when there is none.
    pub fn remove(&self, base: u64) -> bool {
        let mut ranges = self.ranges.write().unwrap_or_else(|e| e.into_inner());
        ranges.remove(&base).is_some()
    }

    fn find(&self, addr: u64, width: usize) -> Option<(u64, SharedDevice)> {
        let ranges = self.ranges.read().unwrap_or_else(|e| e.into_inner());
        let (base, e) = ranges.range(..=addr).next_back()?;
        let end = addr.checked_add(width as u64)?;
        if end <= base + e.len {
            Some((*base, e.dev.clone()))
        } else {
            None
        }
    }

    /// Dispatches a read; returns false (and fills `data` with 0xff, as open bus) when no
    /// device claims the whole access.
    pub fn read(&self, addr: u64, data: &mut [u8]) -> bool {
        match self.find(addr, data.len()) {
            Some((base, dev)) => {
                dev.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .read(base, addr - base, data);
                true
            }
            None => {
                data.fill(0xff);
                false
            }
        }
    }

    /// Dispatches a write; returns false when no device claims it (the write is dropped).
    pub fn write(&self, addr: u64, data: &[u8]) -> bool {
        match self.find(addr, data.len()) {
            Some((base, dev)) => {
                dev.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .write(base, addr - base, data);
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Echo(Vec<u8>);
    impl BusDevice for Echo {
        fn read(&mut self, _b: u64, offset: u64, data: &mut [u8]) {
            data.fill(offset as u8);
        }
        fn write(&mut self, _b: u64, _o: u64, data: &[u8]) {
            self.0.extend_from_slice(data);
        }
    }

    #[test]
    fn lookup_and_overlap() {
        let bus = Bus::new();
        let dev: SharedDevice = Arc::new(Mutex::new(Echo(Vec::new())));
        bus.insert(dev.clone(), 0x100, 0x10).unwrap();
        assert_eq!(
            bus.insert(dev.clone(), 0x108, 4),
            Err(BusError::Overlap {
                base: 0x108,
                len: 4
            })
        );
        assert_eq!(
            bus.insert(dev.clone(), 0xf8, 0x10),
            Err(BusError::Overlap {
                base: 0xf8,
                len: 0x10
            })
        );
        assert!(bus.insert(dev.clone(), 0x110, 1).is_ok());
        assert!(bus.insert(dev.clone(), u64::MAX, 2).is_err());
        let mut b = [0u8; 2];
        assert!(bus.read(0x103, &mut b));
        assert_eq!(b, [3, 3]);
        assert!(
            !bus.read(0x10f, &mut [0u8; 4]),
            "access straddling the end is not claimed"
        );
        assert!(!bus.write(0x200, &[1]));
        assert!(!bus.read(u64::MAX, &mut [0u8; 4]));
        assert!(bus.remove(0x100));
        assert!(!bus.remove(0x100));
        assert!(!bus.read(0x103, &mut b));
        assert!(
            bus.insert(dev, 0x108, 4).is_ok(),
            "the removed range is free"
        );
    }
}
