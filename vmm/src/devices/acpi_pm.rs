//! ACPI fixed hardware: PM1a event block (status/enable), PM1a control block, and the FADT
//! reset register.
//!
//! The SCI is a level line: high while any enabled status bit is set. A power button press
//! (control command `power-down`) sets PWRBTN_STS; the guest's ACPI button driver then shuts
//! down and writes SLP_TYP=5|SLP_EN to PM1a_CNT, which ends the VM as powered off.

use crate::devices::bus::BusDevice;
use crate::devices::irq::LevelIrq;
use crate::layout;
use crate::lifecycle::{ExitHandle, ExitReason};

const PWRBTN: u16 = 1 << 8;
const SCI_EN: u16 = 1;
const SLP_EN: u16 = 1 << 13;
/// Status bits we ever set (timer and others don't exist here).
const STS_MASK: u16 = PWRBTN | (1 << 15);

pub struct AcpiPm {
    sts: u16,
    en: u16,
    cnt: u16,
    sci: Option<LevelIrq>,
    exit: ExitHandle,
}

impl AcpiPm {
    pub fn new(sci: Option<LevelIrq>, exit: ExitHandle) -> AcpiPm {
        AcpiPm {
            sts: 0,
            en: 0,
            cnt: SCI_EN,
            sci,
            exit,
        }
    }

    fn update_sci(&self) {
        if let Some(sci) = &self.sci {
            let level = self.sts & self.en & STS_MASK != 0;
            if let Err(e) = sci.set(level) {
                crate::vmm_log!("vireo-vmm: ACPI SCI: {e}");
            }
        }
    }

    /// Presses the (fixed-feature) power button.
    pub fn press_power_button(&mut self) {
        self.sts |= PWRBTN;
        self.update_sci();
    }

    /// Whether the guest has enabled the power button event (its ACPI driver is listening).
    pub fn power_button_enabled(&self) -> bool {
        self.en & PWRBTN != 0
    }

    fn reg_bytes(&self) -> [u8; 6] {
        let s = self.sts.to_le_bytes();
        let e = self.en.to_le_bytes();
        let c = self.cnt.to_le_bytes();
        [s[0], s[1], e[0], e[1], c[0], c[1]]
    }

    fn write_byte(&mut self, idx: u64, v: u8) {
        match idx {
            // Status: write 1 to clear.
            0 => self.sts &= !u16::from(v),
            1 => self.sts &= !(u16::from(v) << 8),
            2 => self.en = (self.en & 0xff00) | u16::from(v),
            3 => self.en = (self.en & 0x00ff) | (u16::from(v) << 8),
            4 => self.cnt = (self.cnt & 0xff00) | u16::from(v) | SCI_EN,
            5 => {
                let cnt = (self.cnt & 0x00ff) | (u16::from(v) << 8);
                if cnt & SLP_EN != 0 {
                    let slp_typ = (cnt >> 10) & 7;
                    if slp_typ == crate::acpi::S5_SLP_TYP {
                        self.exit.request(ExitReason::Poweroff);
                    } else {
                        crate::vmm_log!("vireo-vmm: guest asked for sleep state SLP_TYP={slp_typ}, not supported; ignored");
                    }
                }
                self.cnt = cnt & !SLP_EN;
            }
            _ => {}
        }
    }
}

impl AcpiPm {
    /// Reads the registers from byte `start` of the block (PM1a_EVT at 0, PM1a_CNT at 4);
    /// bytes past them read as 0.
    pub fn read_regs(&self, start: u64, data: &mut [u8]) {
        crate::virtio::read_config_bytes(&self.reg_bytes(), start, data);
    }

    pub fn write_regs(&mut self, start: u64, data: &[u8]) {
        // Handle the control byte carrying SLP_EN last so SLP_TYP in the low byte is in place.
        for (i, v) in data.iter().enumerate() {
            self.write_byte(start.saturating_add(i as u64), *v);
        }
        self.update_sci();
    }
}

impl BusDevice for AcpiPm {
    fn read(&mut self, base: u64, offset: u64, data: &mut [u8]) {
        self.read_regs((base - u64::from(layout::PM1A_EVT_PORT)) + offset, data);
    }

    fn write(&mut self, base: u64, offset: u64, data: &[u8]) {
        self.write_regs((base - u64::from(layout::PM1A_EVT_PORT)) + offset, data);
    }
}

/// The FADT reset register (port 0xcf9): writing the reset value reboots. Registered over the
/// whole 0xcf8..0xd00 block, whose other ports (PCI configuration) float high.
pub struct ResetPort {
    exit: ExitHandle,
}

impl ResetPort {
    pub fn new(exit: ExitHandle) -> ResetPort {
        ResetPort { exit }
    }
}

impl BusDevice for ResetPort {
    fn read(&mut self, base: u64, offset: u64, data: &mut [u8]) {
        // Open bus for the PCI configuration ports (no PCI), 0 for the reset register.
        let reset = base + offset == u64::from(layout::RESET_PORT) && data.len() == 1;
        data.fill(if reset { 0 } else { 0xff });
    }
    fn write(&mut self, base: u64, offset: u64, data: &[u8]) {
        if base + offset == u64::from(layout::RESET_PORT) && data.len() == 1 && data[0] & 0x04 != 0
        {
            self.exit.request(ExitReason::Reboot);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s5_write_powers_off_and_status_is_write_one_to_clear() {
        let exit = ExitHandle::new().unwrap();
        let mut pm = AcpiPm::new(None, exit.clone());
        let base = u64::from(layout::PM1A_EVT_PORT);
        pm.press_power_button();
        let mut sts = [0u8; 2];
        pm.read(base, 0, &mut sts);
        assert_eq!(u16::from_le_bytes(sts), PWRBTN);
        pm.write(base, 0, &PWRBTN.to_le_bytes());
        pm.read(base, 0, &mut sts);
        assert_eq!(sts, [0, 0]);
        let mut cnt = [0u8; 2];
        pm.read(base, 4, &mut cnt);
        assert_eq!(u16::from_le_bytes(cnt) & SCI_EN, SCI_EN);
        pm.write(base, 4, &((3u16 << 10) | SLP_EN).to_le_bytes());
        assert_eq!(exit.reason(), None, "S3 is not poweroff");
        pm.write(base, 4, &((5u16 << 10) | SLP_EN).to_le_bytes());
        assert_eq!(exit.reason(), Some(ExitReason::Poweroff));
    }
}
