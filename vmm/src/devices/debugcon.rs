//! The firmware's debug console (QEMU's `isa-debugcon` at port 0x402): SeaBIOS writes its log
//! there ("Booting from Hard Disk...", "No bootable device."), and those lines go to the VMM's
//! log, so a machine that does not boot says why in its log as well as on its screen.

use super::bus::BusDevice;

/// The port SeaBIOS's QEMU builds write to.
pub const PORT: u16 = 0x402;
/// What a read returns: SeaBIOS only writes to the port when it reads this back.
pub const READBACK: u8 = 0xe9;
/// Longer lines are cut: the text comes from the guest.
const LINE_MAX: usize = 240;

/// Collects bytes into lines and hands each finished line to a sink.
pub struct DebugCon {
    line: Vec<u8>,
    truncated: bool,
    sink: Box<dyn FnMut(&str) + Send>,
}

impl DebugCon {
    pub fn new(sink: Box<dyn FnMut(&str) + Send>) -> DebugCon {
        DebugCon {
            line: Vec::with_capacity(LINE_MAX),
            truncated: false,
            sink,
        }
    }

    /// A debug console whose lines go to the VMM's log with a `firmware:` prefix.
    pub fn to_log() -> DebugCon {
        DebugCon::new(Box::new(|line| crate::vmm_log!("firmware: {line}")))
    }

    fn push(&mut self, b: u8) {
        match b {
            b'\n' => self.flush(),
            b'\r' => {}
            // Control bytes and non-ASCII become `?`: the log is text for people.
            0x20..=0x7e | b'\t' => self.keep(b),
            _ => self.keep(b'?'),
        }
    }

    fn keep(&mut self, b: u8) {
        if self.line.len() < LINE_MAX {
            self.line.push(b);
        } else {
            self.truncated = true;
        }
    }

    fn flush(&mut self) {
        if self.line.is_empty() && !self.truncated {
            return;
        }
        let mut text = String::from_utf8_lossy(&self.line).into_owned();
        if self.truncated {
            text.push_str(" [...]");
        }
        (self.sink)(&text);
        self.line.clear();
        self.truncated = false;
    }
}

impl BusDevice for DebugCon {
    fn read(&mut self, _base: u64, _offset: u64, data: &mut [u8]) {
        data.fill(0);
        if let Some(d) = data.first_mut() {
            *d = READBACK;
        }
    }

    fn write(&mut self, _base: u64, _offset: u64, data: &[u8]) {
        // A wider write carries one byte in its low lane, as on the ISA port.
        if let Some(b) = data.first() {
            self.push(*b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    fn capture() -> (DebugCon, Arc<Mutex<Vec<String>>>) {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let l = lines.clone();
        let dev = DebugCon::new(Box::new(move |s| l.lock().unwrap().push(s.to_owned())));
        (dev, lines)
    }

    #[test]
    fn lines_reach_the_sink_cleaned_and_capped() {
        let (mut dev, lines) = capture();
        for b in b"SeaBIOS (version 1.16.2)\r\n\n\x1b[0mNo bootable device.\n" {
            dev.write(0, 0, &[*b]);
        }
        for _ in 0..1000 {
            dev.write(0, 0, b"x");
        }
        dev.write(0, 0, b"\n");
        let got = lines.lock().unwrap().clone();
        assert_eq!(got[0], "SeaBIOS (version 1.16.2)");
        assert_eq!(got[1], "?[0mNo bootable device.");
        assert_eq!(got[2].len(), LINE_MAX + " [...]".len());
        assert_eq!(got.len(), 3);
        let mut r = [0u8; 2];
        dev.read(0, 0, &mut r);
        assert_eq!(r, [READBACK, 0]);
    }
}
