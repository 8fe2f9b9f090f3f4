//! ASCII text to PS/2 set-1 scancodes (US layout), for the `send-text` control command.

/// (unshifted char, shifted char, set-1 make code)
const KEYS: &[(char, char, u8)] = &[
    ('1', '!', 0x02),
    ('2', '@', 0x03),
    ('3', '#', 0x04),
    ('4', '$', 0x05),
    ('5', '%', 0x06),
    ('6', '^', 0x07),
    ('7', '&', 0x08),
    ('8', '*', 0x09),
    ('9', '(', 0x0a),
    ('0', ')', 0x0b),
    ('-', '_', 0x0c),
    ('=', '+', 0x0d),
    ('\t', '\t', 0x0f),
    ('q', 'Q', 0x10),
    ('w', 'W', 0x11),
    ('e', 'E', 0x12),
    ('r', 'R', 0x13),
    ('t', 'T', 0x14),
    ('y', 'Y', 0x15),
    ('u', 'U', 0x16),
    ('i', 'I', 0x17),
    ('o', 'O', 0x18),
    ('p', 'P', 0x19),
    ('[', '{', 0x1a),
    (']', '}', 0x1b),
    ('\n', '\n', 0x1c),
    ('a', 'A', 0x1e),
    ('s', 'S', 0x1f),
    ('d', 'D', 0x20),
    ('f', 'F', 0x21),
    ('g', 'G', 0x22),
    ('h', 'H', 0x23),
    ('j', 'J', 0x24),
    ('k', 'K', 0x25),
    ('l', 'L', 0x26),
    (';', ':', 0x27),
    ('\'', '"', 0x28),
    ('`', '~', 0x29),
    ('\\', '|', 0x2b),
    ('z', 'Z', 0x2c),
    ('x', 'X', 0x2d),
    ('c', 'C', 0x2e),
    ('v', 'V', 0x2f),
    ('b', 'B', 0x30),
    ('n', 'N', 0x31),
    ('m', 'M', 0x32),
    (',', '<', 0x33),
    ('.', '>', 0x34),
    ('/', '?', 0x35),
    (' ', ' ', 0x39),
];

const LSHIFT: u8 = 0x2a;

/// Make and break codes for `text`; `Err(c)` names the first character with no key.
pub fn text_to_set1(text: &str) -> Result<Vec<u8>, char> {
    let mut out = Vec::with_capacity(text.len() * 2);
    for c in text.chars() {
        let (code, shift) = KEYS
            .iter()
            .find_map(|&(lo, hi, code)| {
                if c == lo {
                    Some((code, false))
                } else if c == hi {
                    Some((code, true))
                } else {
                    None
                }
            })
            .ok_or(c)?;
        if shift {
            out.push(LSHIFT);
        }
        out.extend_from_slice(&[code, code | 0x80]);
        if shift {
            out.push(LSHIFT | 0x80);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_us_layout() {
        assert_eq!(text_to_set1("a").unwrap(), vec![0x1e, 0x9e]);
        assert_eq!(
            text_to_set1("A\n").unwrap(),
            vec![0x2a, 0x1e, 0x9e, 0xaa, 0x1c, 0x9c]
        );
        assert_eq!(text_to_set1("é"), Err('é'));
    }
}
