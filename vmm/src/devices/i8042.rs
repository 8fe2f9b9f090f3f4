//! The i8042 keyboard controller with a PS/2 keyboard behind it, and its reset line.
//!
//! Scancodes come in through [`KeyboardInput`] (from the VNC server) as **set 1** (XT) bytes,
//! which is what a guest sees through the controller's default set-2-to-set-1 translation
//! (Linux keeps translation on). LED commands (0xED) are recorded and readable from the handle.
//! Writing 0xFE to the command port (pulse reset) ends the VM with a reboot request.

use crate::devices::bus::BusDevice;
use crate::devices::irq::IrqLine;
use crate::lifecycle::{ExitHandle, ExitReason};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

const STATUS_OBF: u8 = 0x01;
const STATUS_SYS: u8 = 0x04;
const STATUS_CMD: u8 = 0x08;
const STATUS_UNLOCKED: u8 = 0x10;

const CB_KBD_INT: u8 = 0x01;
const CB_SYS: u8 = 0x04;
const CB_KBD_DISABLE: u8 = 0x10;
const CB_AUX_DISABLE: u8 = 0x20;
const CB_XLATE: u8 = 0x40;

/// Bytes the guest has not read yet are dropped beyond this (a guest that never reads must not
/// grow our memory).
const QUEUE_MAX: usize = 256;

/// What the next data-port write means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pending {
    None,
    CommandByte,
    OutputPort,
    KbdEcho,
    AuxWrite,
    AuxEcho,
    Leds,
    ScancodeSet,
    Typematic,
}

/// The i8042 bus device (ports 0x60 and 0x64, registered at both with one instance).
pub struct I8042 {
    queue: VecDeque<u8>,
    command_byte: u8,
    pending: Pending,
    last_was_command: bool,
    kbd_enabled: bool,
    scanning: bool,
    leds: u8,
    irq: Option<IrqLine>,
    exit: ExitHandle,
}

impl I8042 {
    pub fn new(irq: Option<IrqLine>, exit: ExitHandle) -> I8042 {
        I8042 {
            queue: VecDeque::new(),
            command_byte: CB_KBD_INT | CB_SYS | CB_XLATE,
            pending: Pending::None,
            last_was_command: false,
            kbd_enabled: true,
            scanning: true,
            leds: 0,
            irq,
            exit,
        }
    }

    fn push(&mut self, b: u8) {
        if self.queue.len() < QUEUE_MAX {
            let was_empty = self.queue.is_empty();
            self.queue.push_back(b);
            if was_empty {
                self.raise();
            }
        }
    }

    fn raise(&self) {
        if self.command_byte & CB_KBD_INT != 0 {
            if let Some(irq) = &self.irq {
                let _ = irq.trigger();
            }
        }
    }

    fn status(&self) -> u8 {
        let mut s = STATUS_UNLOCKED;
        if !self.queue.is_empty() {
            s |= STATUS_OBF;
        }
        if self.command_byte & CB_SYS != 0 {
            s |= STATUS_SYS;
        }
        if self.last_was_command {
            s |= STATUS_CMD;
        }
        s
    }

    fn read_data(&mut self) -> u8 {
        let b = self.queue.pop_front().unwrap_or(0);
        if !self.queue.is_empty() {
            self.raise();
        }
        b
    }

    fn command(&mut self, cmd: u8) {
        self.last_was_command = true;
        match cmd {
            0x20 => {
                let cb = self.command_byte;
                self.push(cb)
            }
            0x60 => self.pending = Pending::CommandByte,
            0xa7 => self.command_byte |= CB_AUX_DISABLE,
            0xa8 => self.command_byte &= !CB_AUX_DISABLE,
            // No mouse: report the aux clock line stuck so the guest skips it.
            0xa9 => self.push(0x01),
            0xaa => {
                self.command_byte |= CB_SYS;
                self.push(0x55)
            }
            0xab => self.push(0x00),
            0xad => self.command_byte |= CB_KBD_DISABLE,
            0xae => self.command_byte &= !CB_KBD_DISABLE,
            0xc0 => self.push(0x00),
            0xd0 => self.push(0x01 | 0x02),
            0xd1 => self.pending = Pending::OutputPort,
            0xd2 => self.pending = Pending::KbdEcho,
            0xd3 => self.pending = Pending::AuxEcho,
            0xd4 => self.pending = Pending::AuxWrite,
            // Pulse output lines: bit 0 low is the CPU reset line.
            0xf0..=0xff if cmd & 1 == 0 => self.exit.request(ExitReason::Reboot),
            _ => {}
        }
    }

    fn data(&mut self, b: u8) {
        self.last_was_command = false;
        match std::mem::replace(&mut self.pending, Pending::None) {
            Pending::CommandByte => {
                self.command_byte = b;
                return;
            }
            Pending::OutputPort => {
                if b & 1 == 0 {
                    self.exit.request(ExitReason::Reboot);
                }
                return;
            }
            Pending::KbdEcho => return self.push(b),
            // The aux port has no device: swallow writes, no reply (Linux then times out).
            Pending::AuxWrite | Pending::AuxEcho => return,
            Pending::Leds => {
                self.leds = b & 7;
                return self.push(0xfa);
            }
            Pending::ScancodeSet => {
                self.push(0xfa);
                if b == 0 {
                    self.push(0x02);
                }
                return;
            }
            Pending::Typematic => return self.push(0xfa),
            Pending::None => {}
        }
        // A byte for the keyboard itself.
        match b {
            0xed => {
                self.pending = Pending::Leds;
                self.push(0xfa)
            }
            0xee => self.push(0xee),
            0xf0 => {
                self.pending = Pending::ScancodeSet;
                self.push(0xfa)
            }
            0xf2 => {
                self.push(0xfa);
                self.push(0xab);
                // 0x41 is what a translating controller makes of the keyboard's 0x83.
                let id = if self.command_byte & CB_XLATE != 0 {
                    0x41
                } else {
                    0x83
                };
                self.push(id);
            }
            0xf3 => {
                self.pending = Pending::Typematic;
                self.push(0xfa)
            }
            0xf4 => {
                self.scanning = true;
                self.push(0xfa)
            }
            0xf5 => {
                self.scanning = false;
                self.push(0xfa)
            }
            0xf6 => {
                self.scanning = true;
                self.push(0xfa)
            }
            0xff => {
                self.queue.clear();
                self.scanning = true;
                self.push(0xfa);
                self.push(0xaa)
            }
            _ => self.push(0xfa),
        }
        self.kbd_enabled = true;
    }

    /// Queues set-1 scancodes as if typed; dropped while the guest disabled the keyboard.
    pub fn type_scancodes(&mut self, codes: &[u8]) {
        if self.command_byte & CB_KBD_DISABLE != 0 || !self.scanning || !self.kbd_enabled {
            return;
        }
        for &c in codes {
            self.push(c);
        }
    }

    /// LED bits as last set by the guest: bit 0 Scroll Lock, bit 1 Num Lock, bit 2 Caps Lock.
    pub fn leds(&self) -> u8 {
        self.leds
    }
}

impl BusDevice for I8042 {
    fn read(&mut self, base: u64, offset: u64, data: &mut [u8]) {
        let v = match base + offset {
            0x60 => self.read_data(),
            0x64 => self.status(),
            _ => 0xff,
        };
        data.fill(0);
        if let Some(d) = data.first_mut() {
            *d = v;
        }
    }

    fn write(&mut self, base: u64, offset: u64, data: &[u8]) {
        let Some(&b) = data.first() else { return };
        match base + offset {
            0x60 => self.data(b),
            0x64 => self.command(b),
            _ => {}
        }
    }
}

/// Cloneable, thread-safe handle to the keyboard for input sources (the VNC server).
#[derive(Clone)]
pub struct KeyboardInput {
    dev: Arc<Mutex<I8042>>,
}

impl KeyboardInput {
    pub fn new(dev: Arc<Mutex<I8042>>) -> KeyboardInput {
        KeyboardInput { dev }
    }

    /// Types set-1 scancode bytes (make codes, break codes = make | 0x80, 0xE0 prefixes).
    pub fn push_scancodes(&self, codes: &[u8]) {
        self.dev
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .type_scancodes(codes);
    }

    /// LED bits: 1 Scroll Lock, 2 Num Lock, 4 Caps Lock.
    pub fn leds(&self) -> u8 {
        self.dev.lock().unwrap_or_else(|e| e.into_inner()).leds()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rd(d: &mut I8042, port: u64) -> u8 {
        let mut b = [0u8];
        d.read(port, 0, &mut b);
        b[0]
    }

    #[test]
    fn reset_identify_leds_and_reset_line() {
        let exit = ExitHandle::new().unwrap();
        let mut d = I8042::new(None, exit.clone());
        d.write(0x64, 0, &[0xaa]);
        assert_eq!(rd(&mut d, 0x64) & STATUS_OBF, 1);
        assert_eq!(rd(&mut d, 0x60), 0x55);
        d.write(0x60, 0, &[0xff]);
        assert_eq!((rd(&mut d, 0x60), rd(&mut d, 0x60)), (0xfa, 0xaa));
        d.write(0x60, 0, &[0xed]);
        d.write(0x60, 0, &[0x04]);
        assert_eq!((rd(&mut d, 0x60), rd(&mut d, 0x60)), (0xfa, 0xfa));
        assert_eq!(d.leds(), 4);
        d.type_scancodes(&[0x1e, 0x9e]);
        assert_eq!((rd(&mut d, 0x60), rd(&mut d, 0x60)), (0x1e, 0x9e));
        assert_eq!(rd(&mut d, 0x64) & STATUS_OBF, 0);
        assert_eq!(exit.reason(), None);
        d.write(0x64, 0, &[0xfe]);
        assert_eq!(exit.reason(), Some(ExitReason::Reboot));
    }
}
