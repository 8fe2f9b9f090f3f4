//! The i8042 keyboard controller with a PS/2 keyboard and mouse behind it, and its reset line.
//!
//! One output buffer (port 0x60) that the controller fills from its own replies, then the
//! keyboard's queue, then the mouse's, each only while its interface is enabled in the command
//! byte; status bit 5 (AUXB) says the byte is the mouse's. Filling it raises IRQ 1 or IRQ 12
//! only when the command byte enables that interrupt, as SeaBIOS and Linux expect.
//!
//! Scancodes come in through [`KeyboardInput`] (from the VNC server) as **set 1** (XT) bytes,
//! which is what a guest reads with the controller's set-2-to-set-1 translation on (command
//! byte bit 6, on by default; SeaBIOS and Linux keep it); with translation off the keyboard
//! sends set 2 ([`crate::devices::ps2`]). LED commands (0xED) are recorded and readable from
//! the handle. Writing 0xFE to the command port (pulse reset) ends the VM with a reboot
//! request, as does clearing bit 0 of the output port (0xD1).

use crate::devices::bus::BusDevice;
use crate::devices::irq::IrqLine;
use crate::devices::ps2::{Keyboard, Mouse, QUEUE_MAX};
use crate::lifecycle::{ExitHandle, ExitReason};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

const STATUS_OBF: u8 = 0x01;
const STATUS_SYS: u8 = 0x04;
const STATUS_CMD: u8 = 0x08;
const STATUS_UNLOCKED: u8 = 0x10;
const STATUS_AUXB: u8 = 0x20;

const CB_KBD_INT: u8 = 0x01;
const CB_AUX_INT: u8 = 0x02;
const CB_SYS: u8 = 0x04;
const CB_KBD_DISABLE: u8 = 0x10;
const CB_AUX_DISABLE: u8 = 0x20;
const CB_XLATE: u8 = 0x40;

/// What the next data-port write means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pending {
    None,
    CommandByte,
    OutputPort,
    KbdEcho,
    AuxWrite,
    AuxEcho,
}

/// The i8042 bus device (ports 0x60 and 0x64, registered at both with one instance).
pub struct I8042 {
    /// Controller replies, (byte, from the aux port): they go before the devices' bytes.
    replies: VecDeque<(u8, bool)>,
    /// The output buffer: (byte, from the aux port).
    out: Option<(u8, bool)>,
    /// What port 0x60 reads when the buffer is empty (real controllers repeat the last byte).
    last: u8,
    command_byte: u8,
    pending: Pending,
    last_was_command: bool,
    kbd: Keyboard,
    mouse: Mouse,
    irq: Option<IrqLine>,
    aux_irq: Option<IrqLine>,
    exit: ExitHandle,
}

impl I8042 {
    pub fn new(irq: Option<IrqLine>, exit: ExitHandle) -> I8042 {
        I8042 {
            replies: VecDeque::new(),
            out: None,
            last: 0,
            command_byte: CB_KBD_INT | CB_SYS | CB_XLATE,
            pending: Pending::None,
            last_was_command: false,
            kbd: Keyboard::default(),
            mouse: Mouse::default(),
            irq,
            aux_irq: None,
            exit,
        }
    }

    /// Connects the mouse's interrupt (IRQ 12). Without one the mouse still answers, for
    /// guests that poll it.
    pub fn set_aux_irq(&mut self, irq: IrqLine) {
        self.aux_irq = Some(irq);
    }

    fn translated(&self) -> bool {
        self.command_byte & CB_XLATE != 0
    }

    fn reply(&mut self, b: u8) {
        if self.replies.len() < QUEUE_MAX {
            self.replies.push_back((b, false));
        }
        self.refill();
    }

    /// Moves the next byte into the empty output buffer and raises its interrupt.
    fn refill(&mut self) {
        if self.out.is_some() {
            return;
        }
        let next = if let Some(r) = self.replies.pop_front() {
            Some(r)
        } else if self.command_byte & CB_KBD_DISABLE == 0 && !self.kbd.queue.is_empty() {
            self.kbd.queue.pop_front().map(|b| (b, false))
        } else if self.command_byte & CB_AUX_DISABLE == 0 {
            self.mouse.queue.pop_front().map(|b| (b, true))
        } else {
            None
        };
        self.out = next;
        self.raise();
    }

    /// Which interrupt the byte in the output buffer raises: `Some(false)` IRQ 1, `Some(true)`
    /// IRQ 12, `None` when the buffer is empty or the command byte masks it.
    fn pending_irq(&self) -> Option<bool> {
        match self.out {
            Some((_, false)) if self.command_byte & CB_KBD_INT != 0 => Some(false),
            Some((_, true)) if self.command_byte & CB_AUX_INT != 0 => Some(true),
            _ => None,
        }
    }

    fn raise(&self) {
        let line = match self.pending_irq() {
            Some(false) => &self.irq,
            Some(true) => &self.aux_irq,
            None => return,
        };
        if let Some(irq) = line {
            let _ = irq.trigger();
        }
    }

    fn status(&self) -> u8 {
        let mut s = STATUS_UNLOCKED;
        if let Some((_, aux)) = self.out {
            s |= STATUS_OBF;
            if aux {
                s |= STATUS_AUXB;
            }
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
        if let Some((b, _)) = self.out.take() {
            self.last = b;
        }
        self.refill();
        self.last
    }

    fn command(&mut self, cmd: u8) {
        self.last_was_command = true;
        self.pending = Pending::None;
        match cmd {
            0x20 => self.reply(self.command_byte),
            // Other controller RAM bytes: nothing kept there.
            0x21..=0x3f => self.reply(0),
            0x60 => self.pending = Pending::CommandByte,
            0xa7 => self.command_byte |= CB_AUX_DISABLE,
            0xa8 => {
                self.command_byte &= !CB_AUX_DISABLE;
                self.refill()
            }
            // Interface tests: 0 = no clock or data line stuck.
            0xa9 | 0xab => self.reply(0x00),
            0xaa => {
                self.command_byte |= CB_SYS;
                self.reply(0x55)
            }
            0xad => self.command_byte |= CB_KBD_DISABLE,
            0xae => {
                self.command_byte &= !CB_KBD_DISABLE;
                self.refill()
            }
            0xc0 => self.reply(0x00),
            // Output port: reset line high (bit 0), A20 on (bit 1), buffer full bits.
            0xd0 => {
                let mut v = 0x03;
                match self.out {
                    Some((_, false)) => v |= 0x10,
                    Some((_, true)) => v |= 0x20,
                    None => {}
                }
                self.reply(v)
            }
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
                // A byte waiting for an interrupt that is now enabled gets it.
                self.raise();
                self.refill();
            }
            Pending::OutputPort => {
                if b & 1 == 0 {
                    self.exit.request(ExitReason::Reboot);
                }
            }
            Pending::KbdEcho => self.reply(b),
            Pending::AuxEcho => {
                if self.replies.len() < QUEUE_MAX {
                    self.replies.push_back((b, true));
                }
                self.refill()
            }
            Pending::AuxWrite => {
                // Talking to the mouse enables its interface, as on real controllers.
                self.command_byte &= !CB_AUX_DISABLE;
                self.mouse.write(b);
                self.refill()
            }
            Pending::None => {
                self.command_byte &= !CB_KBD_DISABLE;
                let translated = self.translated();
                self.kbd.write(b, translated);
                self.refill()
            }
        }
    }

    /// Queues set-1 scancodes as if typed; dropped while the keyboard does not scan.
    pub fn type_scancodes(&mut self, codes: &[u8]) {
        let translated = self.translated();
        self.kbd.type_set1(codes, translated);
        self.refill();
    }

    /// LED bits as last set by the guest: bit 0 Scroll Lock, bit 1 Num Lock, bit 2 Caps Lock.
    pub fn leds(&self) -> u8 {
        self.kbd.leds()
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

    fn cmd(d: &mut I8042, c: u8) {
        d.write(0x64, 0, &[c]);
    }

    fn data(d: &mut I8042, b: u8) {
        d.write(0x60, 0, &[b]);
    }

    /// Everything in the output buffer, with the AUXB bit of each byte.
    fn drain(d: &mut I8042) -> Vec<(u8, bool)> {
        let mut out = Vec::new();
        while rd(d, 0x64) & STATUS_OBF != 0 {
            let aux = rd(d, 0x64) & STATUS_AUXB != 0;
            out.push((rd(d, 0x60), aux));
        }
        out
    }

    fn kbd(bytes: &[u8]) -> Vec<(u8, bool)> {
        bytes.iter().map(|b| (*b, false)).collect()
    }

    fn aux(bytes: &[u8]) -> Vec<(u8, bool)> {
        bytes.iter().map(|b| (*b, true)).collect()
    }

    #[test]
    fn reset_identify_leds_and_reset_line() {
        let exit = ExitHandle::new().unwrap();
        let mut d = I8042::new(None, exit.clone());
        cmd(&mut d, 0xaa);
        assert_eq!(rd(&mut d, 0x64) & STATUS_OBF, 1);
        assert_eq!(rd(&mut d, 0x60), 0x55);
        data(&mut d, 0xff);
        assert_eq!((rd(&mut d, 0x60), rd(&mut d, 0x60)), (0xfa, 0xaa));
        data(&mut d, 0xed);
        data(&mut d, 0x04);
        assert_eq!((rd(&mut d, 0x60), rd(&mut d, 0x60)), (0xfa, 0xfa));
        assert_eq!(d.leds(), 4);
        d.type_scancodes(&[0x1e, 0x9e]);
        assert_eq!((rd(&mut d, 0x60), rd(&mut d, 0x60)), (0x1e, 0x9e));
        assert_eq!(rd(&mut d, 0x64) & STATUS_OBF, 0);
        assert_eq!(exit.reason(), None);
        cmd(&mut d, 0xfe);
        assert_eq!(exit.reason(), Some(ExitReason::Reboot));
    }

    #[test]
    fn bios_style_init() {
        let exit = ExitHandle::new().unwrap();
        let mut d = I8042::new(None, exit.clone());
        // SeaBIOS: self test, keyboard interface test, mouse interface test.
        cmd(&mut d, 0xaa);
        cmd(&mut d, 0xab);
        cmd(&mut d, 0xa9);
        assert_eq!(drain(&mut d), kbd(&[0x55, 0x00, 0x00]));
        // Interrupts off, both interfaces disabled, translation on.
        cmd(&mut d, 0x60);
        data(&mut d, CB_SYS | CB_KBD_DISABLE | CB_AUX_DISABLE | CB_XLATE);
        cmd(&mut d, 0x20);
        assert_eq!(
            drain(&mut d),
            kbd(&[CB_SYS | CB_KBD_DISABLE | CB_AUX_DISABLE | CB_XLATE])
        );
        assert_eq!(d.pending_irq(), None);
        // Keys typed while the interface is disabled wait in the keyboard.
        d.type_scancodes(&[0x1c]);
        assert!(drain(&mut d).is_empty());
        cmd(&mut d, 0xae);
        assert_eq!(drain(&mut d), kbd(&[0x1c]));
        // Keyboard reset, ID through translation.
        data(&mut d, 0xff);
        data(&mut d, 0xf2);
        assert_eq!(drain(&mut d), kbd(&[0xfa, 0xaa, 0xfa, 0xab, 0x41]));
        // The mouse through 0xD4: reset, ID, sample rate, enable, disable.
        for b in [0xff, 0xf2, 0xf3, 100, 0xf4, 0xf5] {
            cmd(&mut d, 0xd4);
            data(&mut d, b);
        }
        assert_eq!(
            drain(&mut d),
            aux(&[0xfa, 0xaa, 0x00, 0xfa, 0x00, 0xfa, 0xfa, 0xfa, 0xfa])
        );
        // 0xA7 holds mouse bytes back; 0xA8 lets them out.
        cmd(&mut d, 0xa7);
        cmd(&mut d, 0x20);
        let cb = drain(&mut d);
        assert_eq!(cb.len(), 1);
        assert_ne!(cb[0].0 & CB_AUX_DISABLE, 0);
        d.mouse.write(0xf2);
        assert!(drain(&mut d).is_empty());
        cmd(&mut d, 0xa8);
        assert_eq!(drain(&mut d), aux(&[0xfa, 0x00]));
        // Write to the output buffers.
        cmd(&mut d, 0xd2);
        data(&mut d, 0x12);
        cmd(&mut d, 0xd3);
        data(&mut d, 0x34);
        assert_eq!(drain(&mut d), vec![(0x12, false), (0x34, true)]);
        assert_eq!(exit.reason(), None);
    }

    #[test]
    fn interrupts_follow_the_command_byte() {
        let exit = ExitHandle::new().unwrap();
        let mut d = I8042::new(None, exit);
        d.type_scancodes(&[0x1e]);
        assert_eq!(d.pending_irq(), Some(false), "IRQ 1 on by default");
        cmd(&mut d, 0x60);
        data(&mut d, CB_SYS | CB_XLATE);
        assert_eq!(d.pending_irq(), None, "byte waits, interrupt off");
        assert_eq!(drain(&mut d), kbd(&[0x1e]));
        cmd(&mut d, 0xd4);
        data(&mut d, 0xf2);
        assert_eq!(d.pending_irq(), None, "IRQ 12 off");
        cmd(&mut d, 0x60);
        data(&mut d, CB_SYS | CB_XLATE | CB_AUX_INT);
        assert_eq!(d.pending_irq(), Some(true));
        assert_eq!(drain(&mut d), aux(&[0xfa, 0x00]));
    }

    #[test]
    fn translation_off_gives_set_2() {
        let exit = ExitHandle::new().unwrap();
        let mut d = I8042::new(None, exit);
        cmd(&mut d, 0x60);
        data(&mut d, CB_SYS | CB_KBD_INT);
        data(&mut d, 0xf2);
        assert_eq!(drain(&mut d), kbd(&[0xfa, 0xab, 0x83]));
        d.type_scancodes(&[0x1e, 0x9e]);
        assert_eq!(drain(&mut d), kbd(&[0x1c, 0xf0, 0x1c]));
        // Set 1 asked for explicitly: set-1 bytes as they come.
        data(&mut d, 0xf0);
        data(&mut d, 0x01);
        d.type_scancodes(&[0x1e, 0x9e]);
        assert_eq!(drain(&mut d), kbd(&[0xfa, 0xfa, 0x1e, 0x9e]));
    }
}
