//! The host bridge at 00:00.0: Intel's 440FX PMC (8086:1237), the one QEMU's `pc` machine
//! shows, which SeaBIOS and OVMF identify the platform by. Its registers that firmware writes
//! are kept and read back: PAM0-6 (0x59-0x5F, shadow RAM below 1 MiB) and SMRAM (0x72).
//!
//! The shadow area 0xC0000-0xFFFFF is guest RAM on this machine whatever PAM says. Reads come
//! from RAM in every PAM mode firmware leaves behind (SeaBIOS and OVMF both end with "read from
//! RAM"); the write protection SeaBIOS asks for when it locks its image is not enforced.

use super::config::{ConfigSpace, Identity};
use super::root::PciFunction;

pub const VENDOR_INTEL: u16 = 0x8086;
pub const DEVICE_I440FX: u16 = 0x1237;

const PAM0: usize = 0x59;
const PAM_COUNT: usize = 7;
const SMRAM: usize = 0x72;
/// SMRAM's default: the compatible SMRAM space (bits 1:0 = 2), closed and unlocked.
const SMRAM_DEFAULT: u8 = 0x02;

/// SMRAM's D_OPEN and D_LCK bits.
const SMRAM_OPEN: u8 = 0x40;
const SMRAM_LOCK: u8 = 0x10;

pub struct HostBridge {
    config: ConfigSpace,
    /// SMRAM as accepted: once D_LCK is set, the register holds until reset.
    smram: u8,
}

impl HostBridge {
    pub fn new() -> HostBridge {
        let mut config = ConfigSpace::new(Identity {
            vendor: VENDOR_INTEL,
            device: DEVICE_I440FX,
            revision: 0x02,
            class: [0x06, 0x00, 0x00],
            subsystem_vendor: 0,
            subsystem: 0,
            interrupt_pin: 0,
            multifunction: false,
        });
        config.allow_writes(PAM0, PAM_COUNT);
        config.set8(SMRAM, SMRAM_DEFAULT);
        config.allow_writes(SMRAM, 1);
        HostBridge {
            config,
            smram: SMRAM_DEFAULT,
        }
    }

    /// PAM register `n` (0..=6) as the guest left it.
    pub fn pam(&self, n: usize) -> Option<u8> {
        (n < PAM_COUNT).then(|| self.config.get8(PAM0 + n))
    }
}

impl Default for HostBridge {
    fn default() -> Self {
        HostBridge::new()
    }
}

impl PciFunction for HostBridge {
    fn config(&self) -> &ConfigSpace {
        &self.config
    }

    fn config_mut(&mut self) -> &mut ConfigSpace {
        &mut self.config
    }

    fn config_written(&mut self, offset: usize, len: usize) {
        if !(offset..offset + len).contains(&SMRAM) {
            return;
        }
        if self.smram & SMRAM_LOCK == 0 {
            self.smram = self.config.get8(SMRAM);
            if self.smram & SMRAM_LOCK != 0 {
                self.smram &= !SMRAM_OPEN;
            }
        }
        self.config.set8(SMRAM, self.smram);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn firmware_finds_the_bridge_and_its_pam_registers_keep_what_it_wrote() {
        let mut b = HostBridge::new();
        let mut id = [0u8; 4];
        b.config().read(0, &mut id);
        assert_eq!(u32::from_le_bytes(id), 0x1237_8086);
        let mut class = [0u8; 4];
        b.config().read(8, &mut class);
        assert_eq!(u32::from_le_bytes(class), 0x0600_0002);
        // SeaBIOS opens the F segment and the C-E segments for writing (0x33 = RAM read/write).
        b.config_mut().write(0x58, &[0x00, 0x30, 0x33, 0x33]);
        b.config_written(0x58, 4);
        assert_eq!(b.pam(0), Some(0x30));
        assert_eq!(b.pam(2), Some(0x33));
        assert_eq!(b.config().get8(0x58), 0, "0x58 is not writable");
        assert_eq!(b.pam(7), None);
        assert_eq!(b.config().get8(SMRAM), SMRAM_DEFAULT);
        b.config_mut().write(SMRAM, &[0x52]);
        b.config_written(SMRAM, 1);
        assert_eq!(b.config().get8(SMRAM), 0x12, "locking closes SMRAM");
        b.config_mut().write(SMRAM, &[0x42]);
        b.config_written(SMRAM, 1);
        assert_eq!(b.config().get8(SMRAM), 0x12, "and holds until reset");
    }
}
