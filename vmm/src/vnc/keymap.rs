//! X11 keysyms to PS/2 scancode set 1 ("XT") for a US keyboard, plus QEMU's raw key numbers.
//!
//! A keysym names a character, not a key, so a capital letter or `!` needs Shift held in the
//! guest. [`KeyTranslator`] tracks which modifiers the client holds and wraps a key in a fake
//! Shift press/release when the character needs a shift state the client does not have.

/// One key as a set-1 scancode: `0x01..=0x7f` for plain keys, `0xE0xx` for extended keys, and
/// [`XtKey::PAUSE`] for the one key whose make code is a six-byte sequence.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct XtKey(pub u16);

impl XtKey {
    pub const LEFT_SHIFT: XtKey = XtKey(0x2a);
    pub const RIGHT_SHIFT: XtKey = XtKey(0x36);
    pub const LEFT_CTRL: XtKey = XtKey(0x1d);
    pub const LEFT_ALT: XtKey = XtKey(0x38);
    pub const DELETE: XtKey = XtKey(0xe053);
    /// Pause/Break: make is E1 1D 45 E1 9D C5, there is no break code.
    pub const PAUSE: XtKey = XtKey(0xe11d);

    pub fn is_extended(self) -> bool {
        self.0 & 0xff00 == 0xe000
    }

    /// The bytes the keyboard sends for a press (`down`) or release, as the guest sees them
    /// through an i8042 in translated mode (set 1).
    pub fn bytes(self, down: bool) -> Vec<u8> {
        if self == XtKey::PAUSE {
            return if down {
                vec![0xe1, 0x1d, 0x45, 0xe1, 0x9d, 0xc5]
            } else {
                Vec::new()
            };
        }
        let code = (self.0 & 0x7f) as u8 | if down { 0 } else { 0x80 };
        if self.is_extended() {
            vec![0xe0, code]
        } else {
            vec![code]
        }
    }

    /// Converts QEMU's key number (Extended Key Event): the 0xE0 prefix folded into bit 7.
    /// Returns `None` for numbers outside the XT range (0 and > 0xff).
    pub fn from_qemu(keycode: u32) -> Option<XtKey> {
        match keycode {
            0 => None,
            0xc6 => Some(XtKey::PAUSE),
            1..=0x7f => Some(XtKey(keycode as u16)),
            0x80..=0xff => Some(XtKey(0xe000 | (keycode as u16 & 0x7f))),
            _ => None,
        }
    }
}

/// Which shift state a keysym's character needs on a US layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shift {
    /// Not a character (or the same character either way).
    Any,
    Needed,
    Forbidden,
}

// Unshifted and shifted characters on the US layout's main block, by scancode.
const CHAR_KEYS: &[(u8, u8, u16)] = &[
    (b'1', b'!', 0x02),
    (b'2', b'@', 0x03),
    (b'3', b'#', 0x04),
    (b'4', b'$', 0x05),
    (b'5', b'%', 0x06),
    (b'6', b'^', 0x07),
    (b'7', b'&', 0x08),
    (b'8', b'*', 0x09),
    (b'9', b'(', 0x0a),
    (b'0', b')', 0x0b),
    (b'-', b'_', 0x0c),
    (b'=', b'+', 0x0d),
    (b'[', b'{', 0x1a),
    (b']', b'}', 0x1b),
    (b';', b':', 0x27),
    (b'\'', b'"', 0x28),
    (b'`', b'~', 0x29),
    (b'\\', b'|', 0x2b),
    (b',', b'<', 0x33),
    (b'.', b'>', 0x34),
    (b'/', b'?', 0x35),
];

const LETTERS: &[u8; 26] = b"qwertyuiopasdfghjklzxcvbnm";
const LETTER_CODES: [u16; 26] = [
    0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, // q..p
    0x1e, 0x1f, 0x20, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26, // a..l
    0x2c, 0x2d, 0x2e, 0x2f, 0x30, 0x31, 0x32, // z..m
];

/// Maps a keysym to its key and the shift state its character needs; `None` if the US
/// layout has no key for it.
pub fn keysym_to_xt(keysym: u32) -> Option<(XtKey, Shift)> {
    let any = |c: u16| Some((XtKey(c), Shift::Any));
    match keysym {
        0x20 => any(0x39),
        0x21..=0x7e => {
            let c = keysym as u8;
            if c.is_ascii_alphabetic() {
                let lower = c.to_ascii_lowercase();
                let i = LETTERS.iter().position(|&l| l == lower)?;
                let shift = if c.is_ascii_uppercase() {
                    Shift::Needed
                } else {
                    Shift::Forbidden
                };
                return Some((XtKey(LETTER_CODES[i]), shift));
            }
            CHAR_KEYS.iter().find_map(|&(plain, shifted, code)| {
                if c == plain {
                    Some((XtKey(code), Shift::Forbidden))
                } else if c == shifted {
                    Some((XtKey(code), Shift::Needed))
                } else {
                    None
                }
            })
        }
        0xff08 => any(0x0e),                          // BackSpace
        0xff09 => any(0x0f),                          // Tab
        0xfe20 => Some((XtKey(0x0f), Shift::Needed)), // ISO_Left_Tab
        0xff0d => any(0x1c),                          // Return
        0xff13 => Some((XtKey::PAUSE, Shift::Any)),
        0xff14 => any(0x46),   // Scroll_Lock
        0xff15 => any(0x54),   // Sys_Req
        0xff1b => any(0x01),   // Escape
        0xff50 => any(0xe047), // Home
        0xff51 => any(0xe04b), // Left
        0xff52 => any(0xe048), // Up
        0xff53 => any(0xe04d), // Right
        0xff54 => any(0xe050), // Down
        0xff55 => any(0xe049), // Prior
        0xff56 => any(0xe051), // Next
        0xff57 => any(0xe04f), // End
        0xff61 => any(0xe037), // Print
        0xff63 => any(0xe052), // Insert
        0xff67 => any(0xe05d), // Menu
        0xff7f => any(0x45),   // Num_Lock
        0xff8d => any(0xe01c), // KP_Enter
        0xff95 | 0xffb7 => any(0x47),
        0xff96 | 0xffb4 => any(0x4b),
        0xff97 | 0xffb8 => any(0x48),
        0xff98 | 0xffb6 => any(0x4d),
        0xff99 | 0xffb2 => any(0x50),
        0xff9a | 0xffb9 => any(0x49),
        0xff9b | 0xffb3 => any(0x51),
        0xff9c | 0xffb1 => any(0x4f),
        0xff9d | 0xffb5 => any(0x4c),
        0xff9e | 0xffb0 => any(0x52),
        0xff9f | 0xffae => any(0x53),
        0xffaa => any(0x37),                                     // KP_Multiply
        0xffab => any(0x4e),                                     // KP_Add
        0xffad => any(0x4a),                                     // KP_Subtract
        0xffaf => any(0xe035),                                   // KP_Divide
        0xffbe..=0xffc7 => any(0x3b + (keysym - 0xffbe) as u16), // F1..F10
        0xffc8 => any(0x57),                                     // F11
        0xffc9 => any(0x58),                                     // F12
        0xffe1 => any(0x2a),                                     // Shift_L
        0xffe2 => any(0x36),                                     // Shift_R
        0xffe3 => any(0x1d),                                     // Control_L
        0xffe4 => any(0xe01d),                                   // Control_R
        0xffe5 => any(0x3a),                                     // Caps_Lock
        0xffe7 | 0xffeb => any(0xe05b),                          // Meta_L, Super_L
        0xffe8 | 0xffec => any(0xe05c),                          // Meta_R, Super_R
        0xffe9 => any(0x38),                                     // Alt_L
        0xffea | 0xfe03 => any(0xe038),                          // Alt_R, ISO_Level3_Shift
        0xffff => any(0xe053),                                   // Delete
        _ => None,
    }
}

/// Per-client keyboard state: which shifts the client holds, so characters that need another
/// shift state can be wrapped in fake Shift presses.
#[derive(Debug, Default)]
pub struct KeyTranslator {
    left_shift: bool,
    right_shift: bool,
    /// Caps Lock as toggled by this client's presses (or set from the guest's LEDs).
    caps_lock: bool,
}

impl KeyTranslator {
    /// Translates one keysym event into (key, down) presses for the guest, in order.
    /// Sets Caps Lock from the guest's keyboard LEDs (bit 2).
    pub fn set_caps_lock(&mut self, on: bool) {
        self.caps_lock = on;
    }

    pub fn keysym(&mut self, keysym: u32, down: bool) -> Vec<(XtKey, bool)> {
        let Some((key, mut shift)) = keysym_to_xt(keysym) else {
            return Vec::new();
        };
        if key == XtKey(0x3a) && down {
            self.caps_lock = !self.caps_lock;
        }
        // With Caps Lock on, a letter's case comes out inverted by Shift.
        let is_letter = (0x41..=0x5a).contains(&keysym) || (0x61..=0x7a).contains(&keysym);
        if is_letter && self.caps_lock {
            shift = match shift {
                Shift::Needed => Shift::Forbidden,
                Shift::Forbidden => Shift::Needed,
                Shift::Any => Shift::Any,
            };
        }
        match key {
            XtKey::LEFT_SHIFT => self.left_shift = down,
            XtKey::RIGHT_SHIFT => self.right_shift = down,
            _ => {}
        }
        if !down {
            return vec![(key, false)];
        }
        let held = self.left_shift || self.right_shift;
        match shift {
            Shift::Needed if !held => vec![
                (XtKey::LEFT_SHIFT, true),
                (key, true),
                (XtKey::LEFT_SHIFT, false),
            ],
            Shift::Forbidden if held => {
                let mut out = Vec::with_capacity(5);
                if self.left_shift {
                    out.push((XtKey::LEFT_SHIFT, false));
                }
                if self.right_shift {
                    out.push((XtKey::RIGHT_SHIFT, false));
                }
                out.push((key, true));
                if self.left_shift {
                    out.push((XtKey::LEFT_SHIFT, true));
                }
                if self.right_shift {
                    out.push((XtKey::RIGHT_SHIFT, true));
                }
                out
            }
            _ => vec![(key, true)],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn letters_digits_and_specials() {
        assert_eq!(
            keysym_to_xt(b'a' as u32),
            Some((XtKey(0x1e), Shift::Forbidden))
        );
        assert_eq!(
            keysym_to_xt(b'A' as u32),
            Some((XtKey(0x1e), Shift::Needed))
        );
        assert_eq!(
            keysym_to_xt(b'm' as u32),
            Some((XtKey(0x32), Shift::Forbidden))
        );
        assert_eq!(
            keysym_to_xt(b'1' as u32),
            Some((XtKey(0x02), Shift::Forbidden))
        );
        assert_eq!(
            keysym_to_xt(b'!' as u32),
            Some((XtKey(0x02), Shift::Needed))
        );
        assert_eq!(keysym_to_xt(0xff0d), Some((XtKey(0x1c), Shift::Any)));
        assert_eq!(keysym_to_xt(0xffc9), Some((XtKey(0x58), Shift::Any)));
        assert_eq!(keysym_to_xt(0xffbe), Some((XtKey(0x3b), Shift::Any)));
        assert_eq!(keysym_to_xt(0xffff), Some((XtKey::DELETE, Shift::Any)));
        assert_eq!(keysym_to_xt(0x20ac), None);
    }

    #[test]
    fn every_printable_ascii_has_a_key() {
        for c in 0x20u32..0x7f {
            assert!(keysym_to_xt(c).is_some(), "{:?}", c as u8 as char);
        }
    }

    #[test]
    fn bytes_of_keys() {
        assert_eq!(XtKey(0x1e).bytes(true), [0x1e]);
        assert_eq!(XtKey(0x1e).bytes(false), [0x9e]);
        assert_eq!(XtKey::DELETE.bytes(true), [0xe0, 0x53]);
        assert_eq!(XtKey::DELETE.bytes(false), [0xe0, 0xd3]);
        assert_eq!(XtKey::PAUSE.bytes(false), Vec::<u8>::new());
        assert_eq!(XtKey::from_qemu(0x9c), Some(XtKey(0xe01c)));
        assert_eq!(XtKey::from_qemu(0x1c), Some(XtKey(0x1c)));
        assert_eq!(XtKey::from_qemu(0x100), None);
    }

    #[test]
    fn fake_shift_for_shifted_characters() {
        let mut t = KeyTranslator::default();
        assert_eq!(
            t.keysym(b'!' as u32, true),
            [
                (XtKey::LEFT_SHIFT, true),
                (XtKey(0x02), true),
                (XtKey::LEFT_SHIFT, false)
            ]
        );
        assert_eq!(t.keysym(b'!' as u32, false), [(XtKey(0x02), false)]);
        // Client holds shift: '!' goes straight through, '1' gets shift lifted around it.
        t.keysym(0xffe1, true);
        assert_eq!(t.keysym(b'!' as u32, true), [(XtKey(0x02), true)]);
        assert_eq!(
            t.keysym(b'1' as u32, true),
            [
                (XtKey::LEFT_SHIFT, false),
                (XtKey(0x02), true),
                (XtKey::LEFT_SHIFT, true)
            ]
        );
        t.keysym(0xffe1, false);
        assert_eq!(t.keysym(b'1' as u32, true), [(XtKey(0x02), true)]);
        // Capitals: shift added; with Caps Lock on, none needed, and lower case needs shift.
        assert_eq!(
            t.keysym(b'H' as u32, true),
            [
                (XtKey::LEFT_SHIFT, true),
                (XtKey(0x23), true),
                (XtKey::LEFT_SHIFT, false)
            ]
        );
        t.keysym(0xffe5, true);
        t.keysym(0xffe5, false);
        assert_eq!(t.keysym(b'H' as u32, true), [(XtKey(0x23), true)]);
        assert_eq!(
            t.keysym(b'h' as u32, true),
            [
                (XtKey::LEFT_SHIFT, true),
                (XtKey(0x23), true),
                (XtKey::LEFT_SHIFT, false)
            ]
        );
    }
}
