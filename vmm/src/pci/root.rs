//! PCI bus 0: the functions by device and function number, configuration accesses routed to
//! them, and each function's BAR windows kept on the VM's port and MMIO buses as the guest
//! programs its BARs and command register.

use super::config::{BarWindow, ConfigSpace, Space};
use crate::devices::bus::{Bus, BusDevice, SharedDevice};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// A PCI function: its configuration space and what its BARs decode.
pub trait PciFunction: Send {
    fn config(&self) -> &ConfigSpace;
    fn config_mut(&mut self) -> &mut ConfigSpace;
    /// A guest read of the configuration space; functions with registers computed on read
    /// (a window into a BAR) answer them here.
    fn config_read(&mut self, offset: usize, data: &mut [u8]) {
        self.config().read(offset, data);
    }
    /// A guest write to the configuration space, after `ConfigSpace::write` applied it; the
    /// function reacts to its own registers here (MSI-X enable, PAM, ...).
    fn config_written(&mut self, _offset: usize, _len: usize) {}
    /// The windows the function decodes now: its BARs, and for chipset functions the blocks
    /// their own registers place (with indexes past the six BARs).
    fn windows(&self) -> Vec<BarWindow> {
        self.config().windows()
    }
    fn bar_read(&mut self, _index: usize, _offset: u64, data: &mut [u8]) {
        data.fill(0xff);
    }
    fn bar_write(&mut self, _index: usize, _offset: u64, _data: &[u8]) {}
    /// `window` went on the bus (`mapped`) or off it. A function that hands addresses inside
    /// a BAR to KVM (ioeventfds for its doorbells) moves them here.
    fn window_moved(&mut self, _window: &BarWindow, _mapped: bool) {}
}

pub type SharedFunction = Arc<Mutex<dyn PciFunction>>;

/// A device and function number on bus 0 (device 0..=31, function 0..=7).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DevFn(u8);

impl DevFn {
    pub fn new(device: u8, function: u8) -> Option<DevFn> {
        (device < 32 && function < 8).then_some(DevFn(device << 3 | function))
    }

    pub const fn from_raw(devfn: u8) -> DevFn {
        DevFn(devfn)
    }

    pub fn device(self) -> u8 {
        self.0 >> 3
    }

    pub fn function(self) -> u8 {
        self.0 & 7
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RootError {
    #[error("PCI slot {0:02x}.{1} is taken")]
    SlotTaken(u8, u8),
}

/// The bus-device face of one BAR: accesses on the port or MMIO bus go to the function.
struct BarAccess {
    function: SharedFunction,
    index: usize,
}

impl BusDevice for BarAccess {
    fn read(&mut self, _base: u64, offset: u64, data: &mut [u8]) {
        self.function
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .bar_read(self.index, offset, data);
    }

    fn write(&mut self, _base: u64, offset: u64, data: &[u8]) {
        self.function
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .bar_write(self.index, offset, data);
    }
}

struct Slot {
    function: SharedFunction,
    /// The windows on the buses now.
    mapped: Vec<BarWindow>,
}

/// Bus 0 and the address spaces its BARs appear in.
pub struct PciRoot {
    slots: BTreeMap<DevFn, Slot>,
    pio: Arc<Bus>,
    mmio: Arc<Bus>,
}

impl PciRoot {
    pub fn new(pio: Arc<Bus>, mmio: Arc<Bus>) -> PciRoot {
        PciRoot {
            slots: BTreeMap::new(),
            pio,
            mmio,
        }
    }

    pub fn add(&mut self, at: DevFn, function: SharedFunction) -> Result<(), RootError> {
        if self.slots.contains_key(&at) {
            return Err(RootError::SlotTaken(at.device(), at.function()));
        }
        self.slots.insert(
            at,
            Slot {
                function,
                mapped: Vec::new(),
            },
        );
        self.remap(at);
        Ok(())
    }

    /// The functions, in slot order.
    pub fn functions(&self) -> impl Iterator<Item = (DevFn, &SharedFunction)> {
        self.slots.iter().map(|(at, s)| (*at, &s.function))
    }

    /// A configuration read; an empty slot reads as all-ones (no device).
    pub fn config_read(&self, at: DevFn, offset: usize, data: &mut [u8]) {
        match self.slots.get(&at) {
            Some(s) => s
                .function
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .config_read(offset, data),
            None => data.fill(0xff),
        }
    }

    pub fn config_write(&mut self, at: DevFn, offset: usize, data: &[u8]) {
        let Some(s) = self.slots.get(&at) else {
            return;
        };
        {
            let mut f = s.function.lock().unwrap_or_else(|e| e.into_inner());
            f.config_mut().write(offset, data);
            f.config_written(offset, data.len());
        }
        self.remap(at);
    }

    /// Brings the buses in line with what the function decodes now. A window that would
    /// overlap another device's stays off the bus (as on real hardware, where two decoders on
    /// one address give garbage, the guest's mistake must not take a platform device away).
    fn remap(&mut self, at: DevFn) {
        let Some(slot) = self.slots.get_mut(&at) else {
            return;
        };
        let want = slot
            .function
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .windows();
        for w in slot.mapped.iter().filter(|w| !want.contains(w)) {
            bus_of(&self.pio, &self.mmio, w.space).remove(w.base);
            slot.function
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .window_moved(w, false);
        }
        slot.mapped.retain(|w| want.contains(w));
        for w in want {
            if slot.mapped.contains(&w) {
                continue;
            }
            let access: SharedDevice = Arc::new(Mutex::new(BarAccess {
                function: slot.function.clone(),
                index: w.index,
            }));
            match bus_of(&self.pio, &self.mmio, w.space).insert(access, w.base, w.size) {
                Ok(()) => {
                    slot.mapped.push(w);
                    slot.function
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .window_moved(&w, true);
                }
                Err(e) => crate::vmm_log!(
                    "vireo-vmm: PCI {:02x}.{} BAR {} not mapped: {e}",
                    at.device(),
                    at.function(),
                    w.index
                ),
            }
        }
    }
}

fn bus_of<'a>(pio: &'a Bus, mmio: &'a Bus, space: Space) -> &'a Bus {
    match space {
        Space::Io => pio,
        Space::Memory => mmio,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pci::config::{BarKind, Identity, COMMAND, COMMAND_IO, COMMAND_MEMORY};

    struct Regs {
        config: ConfigSpace,
        written: Vec<(usize, u64, Vec<u8>)>,
    }

    impl PciFunction for Regs {
        fn config(&self) -> &ConfigSpace {
            &self.config
        }
        fn config_mut(&mut self) -> &mut ConfigSpace {
            &mut self.config
        }
        fn bar_read(&mut self, index: usize, offset: u64, data: &mut [u8]) {
            data.fill((index as u8) << 4 | offset as u8);
        }
        fn bar_write(&mut self, index: usize, offset: u64, data: &[u8]) {
            self.written.push((index, offset, data.to_vec()));
        }
    }

    fn function() -> Arc<Mutex<Regs>> {
        let mut config = ConfigSpace::new(Identity {
            vendor: 0x1af4,
            device: 0x1041,
            revision: 1,
            class: [2, 0, 0],
            subsystem_vendor: 0x1af4,
            subsystem: 0x1100,
            interrupt_pin: 1,
            multifunction: false,
        });
        config.add_bar(0, BarKind::Io, 0x20).unwrap();
        config
            .add_bar(1, BarKind::Memory64 { prefetchable: true }, 0x4000)
            .unwrap();
        Arc::new(Mutex::new(Regs {
            config,
            written: Vec::new(),
        }))
    }

    fn w32(root: &mut PciRoot, at: DevFn, offset: usize, v: u32) {
        root.config_write(at, offset, &v.to_le_bytes());
    }

    #[test]
    fn empty_slots_read_as_all_ones_and_slots_are_unique() {
        let mut root = PciRoot::new(Arc::new(Bus::new()), Arc::new(Bus::new()));
        let at = DevFn::new(3, 0).unwrap();
        root.add(at, function()).unwrap();
        assert_eq!(root.add(at, function()), Err(RootError::SlotTaken(3, 0)));
        let mut b = [0; 4];
        root.config_read(DevFn::new(4, 0).unwrap(), 0, &mut b);
        assert_eq!(b, [0xff; 4]);
        root.config_read(at, 0, &mut b);
        assert_eq!(u32::from_le_bytes(b), 0x1041_1af4);
        assert!(DevFn::new(32, 0).is_none() && DevFn::new(0, 8).is_none());
    }

    #[test]
    fn bars_appear_move_and_leave_the_buses_as_the_guest_programs_them() {
        let pio = Arc::new(Bus::new());
        let mmio = Arc::new(Bus::new());
        let mut root = PciRoot::new(pio.clone(), mmio.clone());
        let at = DevFn::new(2, 0).unwrap();
        let f = function();
        root.add(at, f.clone()).unwrap();
        w32(&mut root, at, 0x10, 0xc000);
        w32(&mut root, at, 0x14, 0xfe00_0000);
        w32(&mut root, at, 0x18, 0x1);
        let mut b = [0u8; 1];
        assert!(!pio.read(0xc001, &mut b), "decoding is still off");
        root.config_write(at, COMMAND, &(COMMAND_IO | COMMAND_MEMORY).to_le_bytes());
        assert!(pio.read(0xc001, &mut b));
        assert_eq!(b, [0x01]);
        let mut d = [0u8; 4];
        assert!(mmio.read(0x1_fe00_0010, &mut d));
        assert_eq!(d, [0x10; 4]);
        assert!(mmio.write(0x1_fe00_0008, &[7, 7]));
        assert_eq!(f.lock().unwrap().written, [(1, 8, vec![7, 7])]);
        // Moved: the old address is free, the new one decodes.
        w32(&mut root, at, 0x10, 0xd000);
        assert!(!pio.read(0xc001, &mut b));
        assert!(pio.read(0xd01f, &mut b));
        // A size probe takes the window off; the restored value brings it back.
        w32(&mut root, at, 0x10, 0xffff_ffff);
        assert!(!pio.read(0xd000, &mut b));
        w32(&mut root, at, 0x10, 0xd000);
        assert!(pio.read(0xd000, &mut b));
        root.config_write(at, COMMAND, &0u16.to_le_bytes());
        assert!(!pio.read(0xd000, &mut b) && !mmio.read(0x1_fe00_0000, &mut d));
    }

    #[test]
    fn a_window_over_another_device_stays_off_the_bus() {
        let pio = Arc::new(Bus::new());
        let mmio = Arc::new(Bus::new());
        let other: SharedDevice = function_access();
        pio.insert(other, 0x3f8, 8).unwrap();
        let mut root = PciRoot::new(pio.clone(), mmio);
        let at = DevFn::new(2, 0).unwrap();
        root.add(at, function()).unwrap();
        w32(&mut root, at, 0x10, 0x3e0);
        root.config_write(at, COMMAND, &COMMAND_IO.to_le_bytes());
        let mut b = [0u8; 1];
        assert!(pio.read(0x3f8, &mut b));
        assert_eq!(b, [0xaa], "the platform device keeps its ports");
        assert!(
            !pio.read(0x3e0, &mut b),
            "the overlapping window is not half mapped"
        );
        w32(&mut root, at, 0x10, 0xc000);
        assert!(pio.read(0xc000, &mut b));
    }

    fn function_access() -> SharedDevice {
        struct Fixed;
        impl BusDevice for Fixed {
            fn read(&mut self, _b: u64, _o: u64, data: &mut [u8]) {
                data.fill(0xaa);
            }
            fn write(&mut self, _b: u64, _o: u64, _d: &[u8]) {}
        }
        Arc::new(Mutex::new(Fixed))
    }
}
