//! UUIDs and MAC addresses as libvirt reads them.

use std::fmt;
use std::io::Read;

/// A 16-byte UUID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Uuid(pub [u8; 16]);

impl Uuid {
    /// Parses like libvirt's virUUIDParse: 32 hex digits, `-` allowed between byte pairs,
    /// surrounding blanks allowed.
    pub fn parse(s: &str) -> Option<Uuid> {
        let t = s.trim_matches(|c: char| c == ' ' || c == '\t' || c == '\n' || c == '\r');
        let mut out = [0u8; 16];
        let mut chars = t.chars().peekable();
        for byte in out.iter_mut() {
            while chars.peek() == Some(&'-') {
                chars.next();
            }
            let hi = chars.next()?.to_digit(16)?;
            let lo = chars.next()?.to_digit(16)?;
            *byte = u8::try_from(hi * 16 + lo).ok()?;
        }
        chars.next().is_none().then_some(Uuid(out))
    }

    /// A random (version 4) UUID from the kernel's random source.
    pub fn new_v4() -> std::io::Result<Uuid> {
        let mut b = [0u8; 16];
        std::fs::File::open("/dev/urandom")?.read_exact(&mut b)?;
        b[6] = (b[6] & 0x0f) | 0x40;
        b[8] = (b[8] & 0x3f) | 0x80;
        Ok(Uuid(b))
    }
}

impl fmt::Display for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// A MAC address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Mac(pub [u8; 6]);

impl Mac {
    /// Parses `xx:xx:xx:xx:xx:xx` (1 or 2 hex digits per byte, as libvirt accepts).
    pub fn parse(s: &str) -> Option<Mac> {
        let mut out = [0u8; 6];
        let mut parts = s.split(':');
        for b in out.iter_mut() {
            let p = parts.next()?;
            if p.is_empty() || p.len() > 2 || !p.bytes().all(|c| c.is_ascii_hexdigit()) {
                return None;
            }
            *b = u8::from_str_radix(p, 16).ok()?;
        }
        parts.next().is_none().then_some(Mac(out))
    }

    /// libvirt refuses multicast addresses for interfaces.
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 1 == 1
    }

    /// A random address in QEMU's 52:54:00 range.
    pub fn new_qemu() -> std::io::Result<Mac> {
        let mut b = [0u8; 3];
        std::fs::File::open("/dev/urandom")?.read_exact(&mut b)?;
        Ok(Mac([0x52, 0x54, 0x00, b[0], b[1], b[2]]))
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_forms() {
        let u = Uuid::parse("c7a5fdbd-edaf-9455-926a-d65c16db1809").expect("dashed");
        assert_eq!(u.to_string(), "c7a5fdbd-edaf-9455-926a-d65c16db1809");
        assert_eq!(Uuid::parse(" c7a5fdbdedaf9455926ad65c16db1809\n"), Some(u));
        assert_eq!(Uuid::parse("c7a5fdbd-edaf-9455-926a-d65c16db180"), None);
        assert_eq!(Uuid::parse("c7a5fdbd-edaf-9455-926a-d65c16db18090"), None);
        assert_eq!(Uuid::parse("g7a5fdbd-edaf-9455-926a-d65c16db1809"), None);
        assert_eq!(Uuid::parse(""), None);
    }

    #[test]
    fn uuid_v4_bits() {
        let u = Uuid::new_v4().expect("urandom");
        assert_eq!(u.0[6] >> 4, 4);
        assert_eq!(u.0[8] >> 6, 2);
        assert_ne!(u, Uuid::new_v4().expect("urandom"));
    }

    #[test]
    fn mac_forms() {
        let m = Mac::parse("52:54:00:ab:cd:ef").expect("mac");
        assert_eq!(m.to_string(), "52:54:00:ab:cd:ef");
        assert!(!m.is_multicast());
        assert!(Mac::parse("01:00:5e:00:00:01").is_some_and(|m| m.is_multicast()));
        assert_eq!(Mac::parse("52:54:00:ab:cd"), None);
        assert_eq!(Mac::parse("52:54:00:ab:cd:ef:00"), None);
        assert_eq!(Mac::parse("52-54-00-ab-cd-ef"), None);
        assert_eq!(Mac::parse("52:54:00:ab:cd:xg"), None);
        assert_eq!(
            Mac::parse("5:4:0:a:c:e"),
            Some(Mac([5, 4, 0, 0xa, 0xc, 0xe]))
        );
        assert!(Mac::new_qemu().is_ok_and(|m| m.0[..3] == [0x52, 0x54, 0]));
    }
}
