//! The south bridge of the `pc` platform, as QEMU shows it: PIIX3's ISA bridge at 00:01.0
//! (8086:7000) and PIIX4's power-management function at 00:01.3 (8086:7113).
//!
//! - The ISA bridge keeps the PIRQ route registers (0x60-0x63) firmware programs for PIC-mode
//!   interrupts; with the IOAPIC, ACPI's `_PRT` routes the PCI interrupt lines instead.
//! - The PM function places the ACPI power-management block where firmware puts it (PMBA at
//!   0x40, enabled by PMREGMISC bit 0 at 0x80): PM1a event and control registers (the
//!   machine's [`AcpiPm`]) at +0 and +4, the PM timer at +8, wherever the firmware puts it
//!   (the FADT names the same place: see [`crate::layout::PC_PM_BASE`]).

use std::sync::{Arc, Mutex};

use super::config::{BarWindow, ConfigSpace, Identity, Space};
use super::i440fx::VENDOR_INTEL;
use super::root::PciFunction;
use crate::devices::acpi_pm::AcpiPm;
use crate::devices::pm_timer::PmTimer;

pub const DEVICE_PIIX3_ISA: u16 = 0x7000;
pub const DEVICE_PIIX4_PM: u16 = 0x7113;

const PIRQ_ROUTE: usize = 0x60;
/// Each route register's reset value: routing disabled.
const PIRQ_DISABLED: u8 = 0x80;

/// PMBA (the PM block's I/O base, bit 0 reads as 1) and PMREGMISC (bit 0 enables the block).
pub(super) const PMBA: usize = 0x40;
pub(super) const PMREGMISC: usize = 0x80;
const SMBBA: usize = 0x90;
/// DEVACTB's top byte; bit 1 there is APMC_EN, "SMI on writes to the APM control port".
const DEVACTB_HIGH: usize = 0x5b;
const APMC_EN: u8 = 0x02;
const SMBHSTCFG: usize = 0xd2;
/// The PM block: 64 bytes of I/O space.
pub const PM_BLOCK_LEN: u64 = 64;
/// The window index the PM block has among the function's windows (after the six BARs).
const PM_WINDOW: usize = 6;
const PM_TIMER_OFFSET: u64 = 8;

/// PIIX3 function 0: the PCI-to-ISA bridge.
pub struct IsaBridge {
    config: ConfigSpace,
}

impl IsaBridge {
    pub fn new() -> IsaBridge {
        let mut config = ConfigSpace::new(Identity {
            vendor: VENDOR_INTEL,
            device: DEVICE_PIIX3_ISA,
            revision: 0,
            class: [0x06, 0x01, 0x00],
            subsystem_vendor: 0,
            subsystem: 0,
            interrupt_pin: 0,
            // Functions 1-3 (IDE, USB, PM) follow in the same device.
            multifunction: true,
        });
        for i in 0..4 {
            config.set8(PIRQ_ROUTE + i, PIRQ_DISABLED);
        }
        config.allow_writes(PIRQ_ROUTE, 4);
        IsaBridge { config }
    }

    /// The IRQ PIRQ `n` (0..4 for A..D) is routed to in PIC mode, if routing is enabled.
    pub fn pirq_route(&self, n: usize) -> Option<u8> {
        let v = self.config.get8(PIRQ_ROUTE + n.min(3));
        (n < 4 && v & PIRQ_DISABLED == 0).then_some(v & 0x0f)
    }
}

impl Default for IsaBridge {
    fn default() -> Self {
        IsaBridge::new()
    }
}

impl PciFunction for IsaBridge {
    fn config(&self) -> &ConfigSpace {
        &self.config
    }

    fn config_mut(&mut self) -> &mut ConfigSpace {
        &mut self.config
    }
}

/// PIIX4 function 3: ACPI power management.
pub struct PowerManagement {
    config: ConfigSpace,
    pm: Arc<Mutex<AcpiPm>>,
    timer: PmTimer,
}

impl PowerManagement {
    /// Serves `pm` (the machine's PM1 registers) and a PM timer in the block firmware places.
    pub fn new(pm: Arc<Mutex<AcpiPm>>) -> PowerManagement {
        let mut config = ConfigSpace::new(Identity {
            vendor: VENDOR_INTEL,
            device: DEVICE_PIIX4_PM,
            revision: 0x03,
            class: [0x06, 0x80, 0x00],
            subsystem_vendor: 0,
            subsystem: 0,
            interrupt_pin: 1,
            multifunction: false,
        });
        // Bit 0 of each base says "I/O space" and is read-only.
        config.set32(PMBA, 1);
        config.allow_writes(PMBA, 4);
        config.allow_writes(PMREGMISC, 1);
        // The machine has no SMM. SeaBIOS sets SMM up on PIIX4 unless APMC_EN is already on,
        // and would then wait forever for an SMI handler to run; QEMU shows it on for the
        // same reason whenever it runs without SMM.
        config.set8(DEVACTB_HIGH, APMC_EN);
        config.set32(SMBBA, 1);
        config.allow_writes(SMBBA, 4);
        config.allow_writes(SMBHSTCFG, 1);
        PowerManagement {
            config,
            pm,
            timer: PmTimer::new(),
        }
    }

    /// Where the PM block decodes now, if it does.
    pub fn pm_base(&self) -> Option<u64> {
        let base = u64::from(self.config.get32(PMBA) & 0xffc0);
        (self.config.get8(PMREGMISC) & 1 != 0 && base != 0).then_some(base)
    }
}

impl PciFunction for PowerManagement {
    fn config(&self) -> &ConfigSpace {
        &self.config
    }

    fn config_mut(&mut self) -> &mut ConfigSpace {
        &mut self.config
    }

    fn config_written(&mut self, _offset: usize, _len: usize) {
        // Keep the bases' read-only bits: I/O space indicator set, reserved bits clear.
        let pmba = self.config.get32(PMBA);
        self.config.set32(PMBA, (pmba & 0xffc0) | 1);
        let smbba = self.config.get32(SMBBA);
        self.config.set32(SMBBA, (smbba & 0xfff0) | 1);
        let misc = self.config.get8(PMREGMISC);
        self.config.set8(PMREGMISC, misc & 1);
    }

    fn windows(&self) -> Vec<BarWindow> {
        self.pm_base()
            .map(|base| BarWindow {
                index: PM_WINDOW,
                space: Space::Io,
                base,
                size: PM_BLOCK_LEN,
            })
            .into_iter()
            .collect()
    }

    fn bar_read(&mut self, index: usize, offset: u64, data: &mut [u8]) {
        data.fill(0);
        if index != PM_WINDOW {
            return;
        }
        if (PM_TIMER_OFFSET..PM_TIMER_OFFSET + 4).contains(&offset) {
            self.timer.read(offset - PM_TIMER_OFFSET, data);
        } else if offset < PM_TIMER_OFFSET {
            self.pm
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .read_regs(offset, data);
        }
    }

    fn bar_write(&mut self, index: usize, offset: u64, data: &[u8]) {
        if index == PM_WINDOW && offset < PM_TIMER_OFFSET {
            self.pm
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .write_regs(offset, data);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::bus::Bus;
    use crate::lifecycle::{ExitHandle, ExitReason};
    use crate::pci::root::{DevFn, PciRoot};

    #[test]
    fn pirq_routes_start_disabled_and_keep_what_firmware_wrote() {
        let mut b = IsaBridge::new();
        assert_eq!(b.config().get8(0x0e), 0x80, "multifunction");
        assert_eq!(b.pirq_route(0), None);
        b.config_mut().write(0x60, &[10, 10, 11, 0x8b]);
        assert_eq!(b.pirq_route(0), Some(10));
        assert_eq!(b.pirq_route(2), Some(11));
        assert_eq!(b.pirq_route(3), None);
        assert_eq!(b.pirq_route(9), None);
    }

    #[test]
    fn the_pm_block_appears_where_firmware_puts_it() {
        let exit = ExitHandle::new().unwrap();
        let pm = Arc::new(Mutex::new(AcpiPm::new(None, exit.clone())));
        let pio = Arc::new(Bus::new());
        let mut root = PciRoot::new(pio.clone(), Arc::new(Bus::new()));
        let at = DevFn::new(1, 3).unwrap();
        root.add(at, Arc::new(Mutex::new(PowerManagement::new(pm.clone()))))
            .unwrap();
        let mut d = [0u8; 4];
        root.config_read(at, PMBA, &mut d);
        assert_eq!(u32::from_le_bytes(d), 1);
        // SeaBIOS skips its SMM setup when APMC_EN reads as set, and cannot clear it.
        root.config_write(at, 0x58, &0u32.to_le_bytes());
        root.config_read(at, 0x58, &mut d);
        assert_eq!(u32::from_le_bytes(d), 1 << 25);
        // SeaBIOS: PMBA = 0xb000 | 1, then PMREGMISC = 1.
        root.config_write(at, PMBA, &0xb001u32.to_le_bytes());
        assert!(!pio.read(0xb008, &mut d), "not before PMREGMISC enables it");
        root.config_write(at, PMREGMISC, &[0xff]);
        root.config_read(at, PMREGMISC, &mut d[..1]);
        assert_eq!(d[0], 1);
        assert!(pio.read(0xb008, &mut d));
        let t1 = u32::from_le_bytes(d);
        std::thread::sleep(std::time::Duration::from_millis(2));
        pio.read(0xb008, &mut d);
        assert_ne!(u32::from_le_bytes(d), t1, "the PM timer counts");
        pm.lock().unwrap().press_power_button();
        let mut sts = [0u8; 2];
        pio.read(0xb000, &mut sts);
        assert_eq!(u16::from_le_bytes(sts), 1 << 8);
        pio.write(0xb004, &((5u16 << 10) | (1 << 13)).to_le_bytes());
        assert_eq!(exit.reason(), Some(ExitReason::Poweroff));
        // Moved: the old block is gone.
        root.config_write(at, PMBA, &0x6000u32.to_le_bytes());
        assert!(!pio.read(0xb008, &mut d));
        assert!(pio.read(0x6008, &mut d));
        root.config_read(at, PMBA, &mut d);
        assert_eq!(u32::from_le_bytes(d), 0x6001);
    }
}
