//! The ACPI power-management timer: a 24-bit counter at 3.579545 MHz that firmware and
//! kernels calibrate against (OVMF's timer library on the PC platform reads nothing else). It
//! counts from the host's monotonic clock, so it never runs backwards and keeps counting while
//! the guest is paused, as the wall clock does.

use std::time::Instant;

pub const FREQUENCY_HZ: u64 = 3_579_545;
/// The counter's width: 24 bits (the FADT's TMR_VAL_EXT flag stays clear).
pub const MASK: u32 = 0x00ff_ffff;

pub struct PmTimer {
    start: Instant,
}

impl PmTimer {
    pub fn new() -> PmTimer {
        PmTimer {
            start: Instant::now(),
        }
    }

    /// The counter now.
    pub fn value(&self) -> u32 {
        let ns = self.start.elapsed().as_nanos();
        ((ns * u128::from(FREQUENCY_HZ) / 1_000_000_000) as u32) & MASK
    }

    /// A guest read of the 4-byte register at `offset` (0..4), any width.
    pub fn read(&self, offset: u64, data: &mut [u8]) {
        crate::virtio::read_config_bytes(&self.value().to_le_bytes(), offset, data);
    }
}

impl Default for PmTimer {
    fn default() -> Self {
        PmTimer::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn it_counts_at_the_acpi_rate_in_24_bits() {
        let t = PmTimer::new();
        let a = t.value();
        std::thread::sleep(Duration::from_millis(20));
        let b = t.value();
        let ticks = u64::from(b.wrapping_sub(a) & MASK);
        // 20 ms is 71,591 ticks; the sleep may run long on a loaded machine, never short.
        assert!((71_000..400_000).contains(&ticks), "{ticks} ticks in 20 ms");
        let mut d = [0u8; 4];
        t.read(0, &mut d);
        assert_eq!(d[3], 0, "24 bits");
        let mut past = [0xaa; 2];
        t.read(3, &mut past);
        assert_eq!(past, [0, 0]);
    }
}
