//! Small legacy ports: port B (0x61), system control port A (0x92) and the boot-time marker
//! (port 0x3f0 / MMIO).

use crate::devices::bus::BusDevice;
use crate::lifecycle::{ExitHandle, ExitReason};
use crate::logcap::LineLimiter;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Port 0x61 (system control port B). KVM's in-kernel PIT normally answers this port
/// (KVM_PIT_SPEAKER_DUMMY); this is the fallback if it does not: bit 5 (PIT channel 2 output)
/// toggles on every read so the kernel's PIT calibration loop always makes progress, and bit 4
/// (refresh) toggles too.
#[derive(Default)]
pub struct PortB {
    value: u8,
    toggle: bool,
}

impl BusDevice for PortB {
    fn read(&mut self, _b: u64, _o: u64, data: &mut [u8]) {
        self.toggle = !self.toggle;
        let v = (self.value & 0x0f) | if self.toggle { 0x30 } else { 0x00 };
        data.fill(0);
        if let Some(d) = data.first_mut() {
            *d = v;
        }
    }
    fn write(&mut self, _b: u64, _o: u64, data: &[u8]) {
        if let Some(v) = data.first() {
            self.value = *v;
        }
    }
}

/// Port 0x92 (system control port A, "fast A20"). SeaBIOS reads it, sets bit 1 (A20 on) and
/// writes the byte back on every switch to protected mode: an unclaimed port read as all-ones
/// would make that write carry bit 0, which on a PC resets the machine. A20 is always on under
/// KVM, so bit 1 only reads back what was written; setting bit 0 resets, as on QEMU's PC.
pub struct PortA {
    value: u8,
    exit: ExitHandle,
}

const PORT_A_A20: u8 = 0x02;
const PORT_A_RESET: u8 = 0x01;

impl PortA {
    pub fn new(exit: ExitHandle) -> PortA {
        PortA {
            value: PORT_A_A20,
            exit,
        }
    }
}

impl BusDevice for PortA {
    fn read(&mut self, _b: u64, _o: u64, data: &mut [u8]) {
        data.fill(0);
        if let Some(d) = data.first_mut() {
            *d = self.value;
        }
    }
    fn write(&mut self, _b: u64, _o: u64, data: &[u8]) {
        let Some(&v) = data.first() else {
            return;
        };
        self.value = v & PORT_A_A20;
        if v & PORT_A_RESET != 0 {
            self.exit.request(ExitReason::Reboot);
        }
    }
}

/// One boot marker hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BootMark {
    pub value: u64,
    pub since_start: Duration,
}

/// Records guest writes to the boot marker with the time since the VMM process started.
pub struct BootMarker {
    start: Instant,
    marks: Arc<Mutex<Vec<BootMark>>>,
    notify: Option<Box<dyn Fn(BootMark) + Send>>,
    /// A guest may write the marker in a loop: its log lines are rate limited.
    lines: LineLimiter,
}

/// Marks beyond this are counted in the log but not kept (a guest writing in a loop).
const MAX_MARKS: usize = 64;

impl BootMarker {
    pub fn new(start: Instant, notify: Option<Box<dyn Fn(BootMark) + Send>>) -> BootMarker {
        BootMarker {
            start,
            marks: Arc::new(Mutex::new(Vec::new())),
            notify,
            lines: LineLimiter::standard("boot marker lines"),
        }
    }

    /// Shared list of marks, for `status`.
    pub fn marks(&self) -> Arc<Mutex<Vec<BootMark>>> {
        self.marks.clone()
    }
}

impl BusDevice for BootMarker {
    fn read(&mut self, _b: u64, _o: u64, data: &mut [u8]) {
        data.fill(0);
    }
    fn write(&mut self, _b: u64, _o: u64, data: &[u8]) {
        let mut v = [0u8; 8];
        let n = data.len().min(8);
        v[..n].copy_from_slice(&data[..n]);
        let mark = BootMark {
            value: u64::from_le_bytes(v),
            since_start: self.start.elapsed(),
        };
        self.lines.eprintln(format_args!(
            "vireo-vmm: boot marker {:#x} at {:.3} ms since start",
            mark.value,
            mark.since_start.as_secs_f64() * 1000.0
        ));
        {
            let mut marks = self.marks.lock().unwrap_or_else(|e| e.into_inner());
            if marks.len() < MAX_MARKS {
                marks.push(mark);
            }
        }
        if let Some(n) = &self.notify {
            n(mark);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_a_reads_a20_on_and_bit_0_resets() {
        let exit = ExitHandle::new().unwrap();
        let mut p = PortA::new(exit.clone());
        let mut b = [0xffu8];
        p.read(0x92, 0, &mut b);
        assert_eq!(b, [PORT_A_A20], "A20 on, reset bit clear");
        // What SeaBIOS's set_a20 does: read, clear or set bit 1, write back.
        p.write(0x92, 0, &[b[0] & !PORT_A_A20]);
        p.read(0x92, 0, &mut b);
        assert_eq!(b, [0]);
        p.write(0x92, 0, &[b[0] | PORT_A_A20]);
        assert_eq!(exit.reason(), None);
        p.write(0x92, 0, &[PORT_A_A20 | PORT_A_RESET]);
        assert_eq!(exit.reason(), Some(ExitReason::Reboot));
    }
}
