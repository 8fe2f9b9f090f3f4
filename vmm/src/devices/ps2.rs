//! The PS/2 devices behind the i8042: a keyboard and a mouse, each a command interpreter with
//! its own output queue. The controller ([`crate::devices::i8042`]) moves their bytes into its
//! one output buffer.
//!
//! Keys arrive as set-1 bytes (what a guest reads through the controller's translation, which
//! SeaBIOS and Linux both leave on). A guest that turns translation off reads set 2, converted
//! here byte by byte: the controller's translation is itself a byte map, so inverting it covers
//! E0/E1 sequences too. The mouse answers the standard PS/2 commands but never moves (pointing
//! comes through the virtio tablet).

use std::collections::VecDeque;

/// Bytes the guest has not read yet are dropped beyond this (a guest that never reads must not
/// grow our memory).
pub const QUEUE_MAX: usize = 256;

pub const ACK: u8 = 0xfa;
pub const RESEND: u8 = 0xfe;
pub const BAT_OK: u8 = 0xaa;

fn push(q: &mut VecDeque<u8>, b: u8) {
    if q.len() < QUEUE_MAX {
        q.push_back(b);
    }
}

/// Set-1 make code (index) to set-2 make code; 0 where no key has that code.
const SET1_TO_SET2: [u8; 128] = {
    let mut t = [0u8; 128];
    let pairs: [(usize, u8); 96] = [
        (0x01, 0x76),
        (0x02, 0x16),
        (0x03, 0x1e),
        (0x04, 0x26),
        (0x05, 0x25),
        (0x06, 0x2e),
        (0x07, 0x36),
        (0x08, 0x3d),
        (0x09, 0x3e),
        (0x0a, 0x46),
        (0x0b, 0x45),
        (0x0c, 0x4e),
        (0x0d, 0x55),
        (0x0e, 0x66),
        (0x0f, 0x0d),
        (0x10, 0x15),
        (0x11, 0x1d),
        (0x12, 0x24),
        (0x13, 0x2d),
        (0x14, 0x2c),
        (0x15, 0x35),
        (0x16, 0x3c),
        (0x17, 0x43),
        (0x18, 0x44),
        (0x19, 0x4d),
        (0x1a, 0x54),
        (0x1b, 0x5b),
        (0x1c, 0x5a),
        (0x1d, 0x14),
        (0x1e, 0x1c),
        (0x1f, 0x1b),
        (0x20, 0x23),
        (0x21, 0x2b),
        (0x22, 0x34),
        (0x23, 0x33),
        (0x24, 0x3b),
        (0x25, 0x42),
        (0x26, 0x4b),
        (0x27, 0x4c),
        (0x28, 0x52),
        (0x29, 0x0e),
        (0x2a, 0x12),
        (0x2b, 0x5d),
        (0x2c, 0x1a),
        (0x2d, 0x22),
        (0x2e, 0x21),
        (0x2f, 0x2a),
        (0x30, 0x32),
        (0x31, 0x31),
        (0x32, 0x3a),
        (0x33, 0x41),
        (0x34, 0x49),
        (0x35, 0x4a),
        (0x36, 0x59),
        (0x37, 0x7c),
        (0x38, 0x11),
        (0x39, 0x29),
        (0x3a, 0x58),
        (0x3b, 0x05),
        (0x3c, 0x06),
        (0x3d, 0x04),
        (0x3e, 0x0c),
        (0x3f, 0x03),
        (0x40, 0x0b),
        (0x41, 0x83),
        (0x42, 0x0a),
        (0x43, 0x01),
        (0x44, 0x09),
        (0x45, 0x77),
        (0x46, 0x7e),
        (0x47, 0x6c),
        (0x48, 0x75),
        (0x49, 0x7d),
        (0x4a, 0x7b),
        (0x4b, 0x6b),
        (0x4c, 0x73),
        (0x4d, 0x74),
        (0x4e, 0x79),
        (0x4f, 0x69),
        (0x50, 0x72),
        (0x51, 0x7a),
        (0x52, 0x70),
        (0x53, 0x71),
        (0x54, 0x84),
        (0x56, 0x61),
        (0x57, 0x78),
        (0x58, 0x07),
        // Windows keys and Menu (E0-prefixed), power/sleep/wake.
        (0x5b, 0x1f),
        (0x5c, 0x27),
        (0x5d, 0x2f),
        (0x5e, 0x37),
        (0x5f, 0x3f),
        (0x63, 0x5e),
        // Japanese and Brazilian keys.
        (0x70, 0x13),
        (0x73, 0x51),
        (0x79, 0x64),
    ];
    let mut i = 0;
    while i < pairs.len() {
        t[pairs[i].0] = pairs[i].1;
        i += 1;
    }
    t
};

/// Set-1 bytes to set 2: prefixes stay, a break (bit 7) becomes F0 before the make code. Codes
/// no set-2 key has are dropped.
pub fn set1_to_set2(codes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(codes.len() * 2);
    for &c in codes {
        match c {
            0xe0 | 0xe1 => out.push(c),
            _ => {
                let make = SET1_TO_SET2[usize::from(c & 0x7f)];
                if make == 0 {
                    continue;
                }
                if c & 0x80 != 0 {
                    out.push(0xf0);
                }
                out.push(make);
            }
        }
    }
    out
}

/// What the next byte written to a device means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KbdArg {
    None,
    Leds,
    ScancodeSet,
    Typematic,
}

/// A PS/2 keyboard (MF2, ID AB 83).
pub struct Keyboard {
    pub queue: VecDeque<u8>,
    arg: KbdArg,
    scanning: bool,
    set: u8,
    leds: u8,
}

impl Default for Keyboard {
    fn default() -> Self {
        Keyboard {
            queue: VecDeque::new(),
            arg: KbdArg::None,
            scanning: true,
            set: 2,
            leds: 0,
        }
    }
}

impl Keyboard {
    /// A byte from the host (through the controller). `translated`: the controller translates
    /// to set 1, which changes the ID the guest reads.
    pub fn write(&mut self, b: u8, translated: bool) {
        match std::mem::replace(&mut self.arg, KbdArg::None) {
            KbdArg::Leds => {
                self.leds = b & 7;
                return push(&mut self.queue, ACK);
            }
            KbdArg::ScancodeSet => {
                push(&mut self.queue, ACK);
                match b {
                    0 => push(&mut self.queue, self.set),
                    1..=3 => self.set = b,
                    _ => {}
                }
                return;
            }
            KbdArg::Typematic => return push(&mut self.queue, ACK),
            KbdArg::None => {}
        }
        match b {
            0xed => self.expect(KbdArg::Leds),
            0xee => push(&mut self.queue, 0xee),
            0xf0 => self.expect(KbdArg::ScancodeSet),
            0xf2 => {
                push(&mut self.queue, ACK);
                push(&mut self.queue, 0xab);
                // What a translating controller makes of the keyboard's 0x83.
                push(&mut self.queue, if translated { 0x41 } else { 0x83 });
            }
            0xf3 => self.expect(KbdArg::Typematic),
            0xf4 => {
                self.scanning = true;
                push(&mut self.queue, ACK)
            }
            // Disable (F5) and set defaults (F6): F5 also stops scanning.
            0xf5 | 0xf6 => {
                self.queue.clear();
                self.scanning = b == 0xf6;
                self.set = 2;
                push(&mut self.queue, ACK)
            }
            // Typematic/make/break modes (set 3): acknowledged, nothing to change.
            0xf7..=0xfd => push(&mut self.queue, ACK),
            0xfe => push(&mut self.queue, RESEND),
            0xff => {
                *self = Keyboard {
                    leds: self.leds,
                    ..Keyboard::default()
                };
                push(&mut self.queue, ACK);
                push(&mut self.queue, BAT_OK)
            }
            _ => push(&mut self.queue, RESEND),
        }
    }

    fn expect(&mut self, arg: KbdArg) {
        self.arg = arg;
        push(&mut self.queue, ACK)
    }

    /// Queues set-1 scancodes as typed, in the form the guest reads them.
    pub fn type_set1(&mut self, codes: &[u8], translated: bool) {
        if !self.scanning {
            return;
        }
        if translated || self.set == 1 {
            for &c in codes {
                push(&mut self.queue, c);
            }
        } else {
            for c in set1_to_set2(codes) {
                push(&mut self.queue, c);
            }
        }
    }

    pub fn leds(&self) -> u8 {
        self.leds
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MouseArg {
    None,
    SampleRate,
    Resolution,
}

/// A standard PS/2 mouse (ID 00) that never moves.
pub struct Mouse {
    pub queue: VecDeque<u8>,
    arg: MouseArg,
    streaming: bool,
    remote: bool,
    wrap: bool,
    scaling_2to1: bool,
    resolution: u8,
    sample_rate: u8,
}

impl Default for Mouse {
    fn default() -> Self {
        Mouse {
            queue: VecDeque::new(),
            arg: MouseArg::None,
            streaming: false,
            remote: false,
            wrap: false,
            scaling_2to1: false,
            resolution: 2,
            sample_rate: 100,
        }
    }
}

impl Mouse {
    pub fn write(&mut self, b: u8) {
        if self.wrap && b != 0xec && b != 0xff {
            // Wrap (echo) mode: everything comes back.
            return push(&mut self.queue, b);
        }
        match std::mem::replace(&mut self.arg, MouseArg::None) {
            MouseArg::SampleRate => {
                self.sample_rate = b;
                return push(&mut self.queue, ACK);
            }
            MouseArg::Resolution => {
                self.resolution = b & 3;
                return push(&mut self.queue, ACK);
            }
            MouseArg::None => {}
        }
        match b {
            0xe6 | 0xe7 => {
                self.scaling_2to1 = b == 0xe7;
                push(&mut self.queue, ACK)
            }
            0xe8 => {
                self.arg = MouseArg::Resolution;
                push(&mut self.queue, ACK)
            }
            0xe9 => {
                push(&mut self.queue, ACK);
                let status = (u8::from(self.remote) << 6)
                    | (u8::from(self.streaming) << 5)
                    | (u8::from(self.scaling_2to1) << 4);
                push(&mut self.queue, status);
                push(&mut self.queue, self.resolution);
                push(&mut self.queue, self.sample_rate);
            }
            0xea => {
                self.remote = false;
                push(&mut self.queue, ACK)
            }
            // Read data: one packet, no buttons, no movement (bit 3 is always one).
            0xeb => {
                push(&mut self.queue, ACK);
                for v in [0x08, 0, 0] {
                    push(&mut self.queue, v);
                }
            }
            0xec => {
                self.wrap = false;
                push(&mut self.queue, ACK)
            }
            0xee => {
                self.wrap = true;
                push(&mut self.queue, ACK)
            }
            0xf0 => {
                self.remote = true;
                push(&mut self.queue, ACK)
            }
            0xf2 => {
                push(&mut self.queue, ACK);
                push(&mut self.queue, 0x00)
            }
            0xf3 => {
                self.arg = MouseArg::SampleRate;
                push(&mut self.queue, ACK)
            }
            0xf4 => {
                self.streaming = true;
                push(&mut self.queue, ACK)
            }
            0xf5 => {
                self.streaming = false;
                push(&mut self.queue, ACK)
            }
            0xf6 => {
                *self = Mouse {
                    queue: std::mem::take(&mut self.queue),
                    ..Mouse::default()
                };
                push(&mut self.queue, ACK)
            }
            0xff => {
                *self = Mouse::default();
                push(&mut self.queue, ACK);
                push(&mut self.queue, BAT_OK);
                push(&mut self.queue, 0x00)
            }
            _ => push(&mut self.queue, RESEND),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(q: &mut VecDeque<u8>) -> Vec<u8> {
        q.drain(..).collect()
    }

    #[test]
    fn set1_to_set2_covers_prefixes_and_breaks() {
        // a down, a up
        assert_eq!(set1_to_set2(&[0x1e, 0x9e]), [0x1c, 0xf0, 0x1c]);
        // Up arrow down/up: E0 48 / E0 C8
        assert_eq!(
            set1_to_set2(&[0xe0, 0x48, 0xe0, 0xc8]),
            [0xe0, 0x75, 0xe0, 0xf0, 0x75]
        );
        // Pause
        assert_eq!(
            set1_to_set2(&[0xe1, 0x1d, 0x45, 0xe1, 0x9d, 0xc5]),
            [0xe1, 0x14, 0x77, 0xe1, 0xf0, 0x14, 0xf0, 0x77]
        );
        assert_eq!(set1_to_set2(&[0x41]), [0x83], "F7");
        assert!(set1_to_set2(&[0x7f]).is_empty());
        // Every key has its own set-2 code.
        let mut seen = std::collections::HashSet::new();
        for (i, &v) in SET1_TO_SET2.iter().enumerate() {
            assert!(
                v == 0 || seen.insert(v),
                "set-1 {i:#x} duplicates set-2 {v:#x}"
            );
        }
    }

    #[test]
    fn keyboard_commands() {
        let mut k = Keyboard::default();
        k.write(0xff, true);
        assert_eq!(drain(&mut k.queue), [ACK, BAT_OK]);
        k.write(0xf2, false);
        assert_eq!(drain(&mut k.queue), [ACK, 0xab, 0x83]);
        k.write(0xf2, true);
        assert_eq!(drain(&mut k.queue), [ACK, 0xab, 0x41]);
        k.write(0xf0, true);
        k.write(0x00, true);
        assert_eq!(drain(&mut k.queue), [ACK, ACK, 2]);
        k.write(0xf0, true);
        k.write(0x01, true);
        k.write(0xf0, true);
        k.write(0x00, true);
        assert_eq!(drain(&mut k.queue), [ACK, ACK, ACK, ACK, 1]);
        k.write(0xee, true);
        assert_eq!(drain(&mut k.queue), [0xee]);
        k.write(0xed, true);
        k.write(0x02, true);
        assert_eq!(drain(&mut k.queue), [ACK, ACK]);
        assert_eq!(k.leds(), 2);
        k.write(0xf3, true);
        k.write(0x20, true);
        assert_eq!(drain(&mut k.queue), [ACK, ACK]);
        k.write(0xf5, true);
        k.type_set1(&[0x1e], true);
        assert_eq!(drain(&mut k.queue), [ACK], "disabled: no keys");
        k.write(0xf4, true);
        k.type_set1(&[0x1e, 0x9e], false);
        assert_eq!(
            drain(&mut k.queue),
            [ACK, 0x1c, 0xf0, 0x1c],
            "F5 reset set 2"
        );
        k.write(0x42, true);
        assert_eq!(drain(&mut k.queue), [RESEND]);
    }

    #[test]
    fn mouse_commands() {
        let mut m = Mouse::default();
        m.write(0xff);
        assert_eq!(drain(&mut m.queue), [ACK, BAT_OK, 0x00]);
        m.write(0xf2);
        assert_eq!(drain(&mut m.queue), [ACK, 0x00]);
        m.write(0xf3);
        m.write(200);
        m.write(0xe8);
        m.write(3);
        m.write(0xf4);
        m.write(0xe9);
        assert_eq!(
            drain(&mut m.queue),
            [ACK, ACK, ACK, ACK, ACK, ACK, 0x20, 3, 200]
        );
        m.write(0xf5);
        m.write(0xeb);
        assert_eq!(drain(&mut m.queue), [ACK, ACK, 0x08, 0, 0]);
        m.write(0xee);
        m.write(0x12);
        m.write(0xec);
        assert_eq!(drain(&mut m.queue), [ACK, 0x12, ACK]);
        m.write(0x01);
        assert_eq!(drain(&mut m.queue), [RESEND]);
    }
}
