//! Configuration mechanism #1, ports 0xCF8-0xCFF: a dword address register at 0xCF8 (enable
//! bit, bus, device, function, register) and a data window at 0xCFC-0xCFF that reaches the
//! addressed function's configuration space. Only bus 0 exists; any other bus reads as
//! all-ones. Byte and word accesses to 0xCF8-0xCFB are not the address register (0xCF9 is
//! the chipset's reset control on a PC; `reset` handles it when the platform has one).

use super::root::{DevFn, PciRoot};
use crate::devices::bus::BusDevice;
use std::sync::{Arc, Mutex};

pub const BASE: u64 = 0xcf8;
pub const LEN: u64 = 8;

const ENABLE: u32 = 1 << 31;
/// Reset control (0xCF9): bit 2 starts a reset, bit 1 asks for a hard one.
const RESET_CONTROL: u64 = 1;
const RESET_START: u8 = 1 << 2;

pub struct ConfigIo {
    address: u32,
    root: Arc<Mutex<PciRoot>>,
    reset_control: u8,
    reset: Option<Box<dyn FnMut() + Send>>,
}

impl ConfigIo {
    pub fn new(root: Arc<Mutex<PciRoot>>) -> ConfigIo {
        ConfigIo {
            address: 0,
            root,
            reset_control: 0,
            reset: None,
        }
    }

    /// Called when the guest writes the reset bit of 0xCF9.
    pub fn with_reset(mut self, reset: Box<dyn FnMut() + Send>) -> ConfigIo {
        self.reset = Some(reset);
        self
    }

    /// The function and register the data window reaches now, if any: enabled, bus 0.
    fn target(&self, offset: u64) -> Option<(DevFn, usize)> {
        let bus = (self.address >> 16) & 0xff;
        if self.address & ENABLE == 0 || bus != 0 {
            return None;
        }
        let devfn = DevFn::from_raw(((self.address >> 8) & 0xff) as u8);
        let register = (self.address & 0xfc) as usize + (offset - 4) as usize;
        Some((devfn, register))
    }
}

impl BusDevice for ConfigIo {
    fn read(&mut self, _base: u64, offset: u64, data: &mut [u8]) {
        match (offset, data.len()) {
            (0, 4) => data.copy_from_slice(&self.address.to_le_bytes()),
            (RESET_CONTROL, 1) => data[0] = self.reset_control,
            (4..=7, _) => match self.target(offset) {
                Some((at, register)) => self
                    .root
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .config_read(at, register, data),
                None => data.fill(0xff),
            },
            _ => data.fill(0xff),
        }
    }

    fn write(&mut self, _base: u64, offset: u64, data: &[u8]) {
        match (offset, data) {
            (0, &[a, b, c, d]) => self.address = u32::from_le_bytes([a, b, c, d]) & !0x7f00_0003,
            (RESET_CONTROL, &[v]) => {
                // The reset bit reads back clear: the machine is reset by then.
                self.reset_control = v & 0x0a;
                if v & RESET_START != 0 {
                    if let Some(reset) = &mut self.reset {
                        reset();
                    }
                }
            }
            (4..=7, _) => {
                if let Some((at, register)) = self.target(offset) {
                    self.root
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .config_write(at, register, data);
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::bus::Bus;
    use crate::pci::i440fx::HostBridge;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn io() -> ConfigIo {
        let mut root = PciRoot::new(Arc::new(Bus::new()), Arc::new(Bus::new()));
        root.add(
            DevFn::new(0, 0).unwrap(),
            Arc::new(Mutex::new(HostBridge::new())),
        )
        .unwrap();
        ConfigIo::new(Arc::new(Mutex::new(root)))
    }

    fn select(io: &mut ConfigIo, device: u32, register: u32) {
        io.write(BASE, 0, &(ENABLE | device << 11 | register).to_le_bytes());
    }

    #[test]
    fn the_data_window_reaches_the_addressed_register_at_any_width() {
        let mut io = io();
        select(&mut io, 0, 0);
        let mut d = [0u8; 4];
        io.read(BASE, 4, &mut d);
        assert_eq!(u32::from_le_bytes(d), 0x1237_8086);
        let mut w = [0u8; 2];
        io.read(BASE, 6, &mut w);
        assert_eq!(u16::from_le_bytes(w), 0x1237);
        let mut b = [0u8; 1];
        io.read(BASE, 7, &mut b);
        assert_eq!(b, [0x12]);
        let mut a = [0u8; 4];
        io.read(BASE, 0, &mut a);
        assert_eq!(u32::from_le_bytes(a), ENABLE);
    }

    #[test]
    fn disabled_other_buses_and_empty_slots_read_as_all_ones() {
        let mut io = io();
        let mut d = [0u8; 4];
        io.write(BASE, 0, &0u32.to_le_bytes());
        io.read(BASE, 4, &mut d);
        assert_eq!(d, [0xff; 4]);
        io.write(BASE, 0, &(ENABLE | 1 << 16).to_le_bytes());
        io.read(BASE, 4, &mut d);
        assert_eq!(d, [0xff; 4]);
        select(&mut io, 5, 0);
        io.read(BASE, 4, &mut d);
        assert_eq!(d, [0xff; 4]);
        // A byte access at 0xCF8 is not the address register.
        io.write(BASE, 0, &[0]);
        let mut a = [0u8; 4];
        io.read(BASE, 0, &mut a);
        assert_eq!(u32::from_le_bytes(a), ENABLE | 5 << 11);
    }

    #[test]
    fn the_reset_bit_of_cf9_resets_the_machine() {
        let resets = Arc::new(AtomicUsize::new(0));
        let counted = resets.clone();
        let mut io = io().with_reset(Box::new(move || {
            counted.fetch_add(1, Ordering::SeqCst);
        }));
        io.write(BASE, RESET_CONTROL, &[0x02]);
        assert_eq!(resets.load(Ordering::SeqCst), 0);
        io.write(BASE, RESET_CONTROL, &[0x06]);
        assert_eq!(resets.load(Ordering::SeqCst), 1);
        let mut b = [0u8; 1];
        io.read(BASE, RESET_CONTROL, &mut b);
        assert_eq!(b, [0x02], "the reset bit reads back clear");
    }
}
