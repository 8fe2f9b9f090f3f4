//! SMBIOS tables for firmware boot: type 0 (BIOS), type 1 (system: the machine's name and
//! UUID, what `dmidecode` and /sys/class/dmi/id show) and type 127, with a 2.1-style (32-bit)
//! entry point, as the two fw_cfg files `etc/smbios/smbios-tables` and
//! `etc/smbios/smbios-anchor`. SeaBIOS takes the anchor only if it is exactly the 31-byte
//! `_SM_` entry point and its table length equals the tables file's size; it then places the
//! tables itself and fixes the address and both checksums.

use crate::config::SmbiosConfig;

/// SMBIOS version 2.8: 2.6 and later store the UUID's first three fields little-endian, which is
/// how Linux prints /sys/class/dmi/id/product_uuid for them.
const MAJOR: u8 = 2;
const MINOR: u8 = 8;
/// Size of the 2.1 entry point.
pub const ANCHOR_SIZE: usize = 31;

const TYPE0_HANDLE: u16 = 0x0000;
const TYPE1_HANDLE: u16 = 0x0100;
const END_HANDLE: u16 = 0x7f00;

/// The two fw_cfg files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmbiosBlobs {
    pub tables: Vec<u8>,
    pub anchor: Vec<u8>,
}

/// What the tables describe besides [`SmbiosConfig`].
#[derive(Debug, Clone, Copy)]
pub struct SmbiosMachine<'a> {
    /// Product name when the config names none (the machine's name).
    pub name: &'a str,
    /// Size of the BIOS image, for type 0's ROM size.
    pub bios_size: u64,
}

/// One structure: formatted area, then its strings (each NUL-terminated) and a final NUL.
struct Structure {
    bytes: Vec<u8>,
    strings: Vec<String>,
}

impl Structure {
    fn new(kind: u8, len: u8, handle: u16) -> Structure {
        let mut bytes = vec![kind, len];
        bytes.extend(handle.to_le_bytes());
        Structure {
            bytes,
            strings: Vec::new(),
        }
    }

    /// Adds a string and returns its number for the formatted area (0: none). NULs and an
    /// empty string would end the string set early: they are dropped / left out.
    fn string(&mut self, s: Option<&str>) -> u8 {
        let Some(s) = s.map(|s| s.replace('\0', "")).filter(|s| !s.is_empty()) else {
            return 0;
        };
        // SMBIOS numbers strings with a byte; a table here has at most four.
        self.strings.push(s);
        self.strings.len() as u8
    }

    fn finish(mut self) -> Vec<u8> {
        if self.strings.is_empty() {
            self.bytes.extend([0, 0]);
        } else {
            for s in &self.strings {
                self.bytes.extend(s.as_bytes());
                self.bytes.push(0);
            }
            self.bytes.push(0);
        }
        self.bytes
    }
}

/// The UUID's bytes as SMBIOS 2.6+ stores them: the first three fields little-endian.
pub fn smbios_uuid(text_order: [u8; 16]) -> [u8; 16] {
    let mut u = text_order;
    u[0..4].reverse();
    u[4..6].reverse();
    u[6..8].reverse();
    u
}

fn type0(bios_size: u64) -> Vec<u8> {
    let mut s = Structure::new(0, 0x18, TYPE0_HANDLE);
    let vendor = s.string(Some("Vireo"));
    let version = s.string(Some(env!("CARGO_PKG_VERSION")));
    s.bytes.extend([vendor, version]);
    s.bytes.extend(0xe800u16.to_le_bytes()); // starting segment, as QEMU gives it
    s.bytes.push(0); // release date: none
                     // ROM size in 64 KiB units, minus one.
    let rom = (bios_size >> 16).clamp(1, 256) - 1;
    s.bytes.push(rom as u8);
    // Characteristics: "not supported" (bit 3), as a virtual machine's BIOS reports them.
    s.bytes.extend(8u64.to_le_bytes());
    // Extension byte 2: targeted content distribution (bit 2), virtual machine (bit 4).
    s.bytes.extend([0x00, 0x14]);
    s.bytes.extend([0, 0, 0xff, 0xff]); // BIOS release 0.0, no embedded controller
    s.finish()
}

fn type1(cfg: &SmbiosConfig, name: &str, uuid: [u8; 16]) -> Vec<u8> {
    let mut s = Structure::new(1, 0x1b, TYPE1_HANDLE);
    let manufacturer = s.string(Some(cfg.manufacturer.as_deref().unwrap_or("Vireo")));
    let product = s.string(Some(cfg.product.as_deref().unwrap_or(name)));
    let serial = s.string(cfg.serial.as_deref());
    s.bytes.extend([manufacturer, product, 0, serial]);
    s.bytes.extend(smbios_uuid(uuid));
    s.bytes.push(6); // woken by the power switch
    s.bytes.extend([0, 0]); // no SKU, no family
    s.finish()
}

fn type127() -> Vec<u8> {
    Structure::new(127, 4, END_HANDLE).finish()
}

fn checksum(bytes: &[u8]) -> u8 {
    bytes
        .iter()
        .fold(0u8, |a, b| a.wrapping_add(*b))
        .wrapping_neg()
}

/// Builds both files. A UUID the config cannot give (none, or one the validation let through
/// unparsed) is left all-zero, which SMBIOS reads as "not present".
pub fn build(cfg: &SmbiosConfig, machine: SmbiosMachine<'_>) -> SmbiosBlobs {
    let uuid = cfg.uuid_bytes().and_then(Result::ok).unwrap_or([0; 16]);
    let structures = [
        type0(machine.bios_size),
        type1(cfg, machine.name, uuid),
        type127(),
    ];
    let max = structures.iter().map(Vec::len).max().unwrap_or(0);
    let tables: Vec<u8> = structures.concat();
    let mut a = Vec::with_capacity(ANCHOR_SIZE);
    a.extend(b"_SM_");
    a.push(0); // checksum
    a.push(ANCHOR_SIZE as u8);
    a.extend([MAJOR, MINOR]);
    a.extend((max.min(usize::from(u16::MAX)) as u16).to_le_bytes());
    a.push(0); // entry point revision
    a.extend([0; 5]);
    a.extend(b"_DMI_");
    a.push(0); // intermediate checksum
    a.extend((tables.len().min(usize::from(u16::MAX)) as u16).to_le_bytes());
    a.extend(0u32.to_le_bytes()); // table address: the firmware's choice
    a.extend((structures.len() as u16).to_le_bytes());
    a.push((MAJOR << 4) | MINOR);
    a[0x15] = checksum(&a[0x10..]);
    a[4] = checksum(&a);
    SmbiosBlobs { tables, anchor: a }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Splits a table blob into (type, handle, formatted area, strings).
    fn decode(mut t: &[u8]) -> Vec<(u8, u16, Vec<u8>, Vec<String>)> {
        let mut out = Vec::new();
        while !t.is_empty() {
            let len = usize::from(t[1]);
            let area = t[..len].to_vec();
            let mut rest = &t[len..];
            let mut strings = Vec::new();
            if rest[0] == 0 && rest[1] == 0 {
                rest = &rest[2..];
            } else {
                while rest[0] != 0 {
                    let end = rest.iter().position(|&b| b == 0).unwrap();
                    strings.push(String::from_utf8(rest[..end].to_vec()).unwrap());
                    rest = &rest[end + 1..];
                }
                rest = &rest[1..];
            }
            out.push((
                area[0],
                u16::from_le_bytes([area[2], area[3]]),
                area,
                strings,
            ));
            t = rest;
        }
        out
    }

    fn cfg() -> SmbiosConfig {
        SmbiosConfig {
            uuid: Some("c7a5fdbd-cdaf-9455-926a-d65c16db1809".into()),
            product: None,
            manufacturer: None,
            serial: Some("S-1\0".into()),
        }
    }

    #[test]
    fn type1_carries_name_serial_and_the_uuid_in_smbios_order() {
        let b = build(
            &cfg(),
            SmbiosMachine {
                name: "debian12",
                bios_size: 256 << 10,
            },
        );
        let s = decode(&b.tables);
        assert_eq!(
            s.iter().map(|x| (x.0, x.1)).collect::<Vec<_>>(),
            [(0, 0), (1, 0x100), (127, 0x7f00)]
        );
        let (_, _, area, strings) = &s[1];
        assert_eq!(area.len(), 0x1b);
        assert_eq!(strings, &["Vireo", "debian12", "S-1"]);
        assert_eq!(&area[4..8], &[1, 2, 0, 3]);
        // Linux prints product_uuid from these bytes as c7a5fdbd-cdaf-9455-926a-d65c16db1809.
        assert_eq!(
            &area[8..24],
            &[
                0xbd, 0xfd, 0xa5, 0xc7, 0xaf, 0xcd, 0x55, 0x94, 0x92, 0x6a, 0xd6, 0x5c, 0x16, 0xdb,
                0x18, 0x09
            ]
        );
        let (_, _, t0, t0s) = &s[0];
        assert_eq!(t0s[0], "Vireo");
        assert_eq!(t0[9], 3, "256 KiB ROM");
        assert!(s[2].2.len() == 4 && s[2].3.is_empty());
    }

    #[test]
    fn anchor_is_what_seabios_accepts() {
        let mut c = cfg();
        c.product = Some("Product".into());
        c.uuid = None;
        let b = build(
            &c,
            SmbiosMachine {
                name: "x",
                bios_size: 128 << 10,
            },
        );
        let a = &b.anchor;
        assert_eq!(a.len(), ANCHOR_SIZE);
        assert_eq!(&a[..4], b"_SM_");
        assert_eq!(&a[0x10..0x15], b"_DMI_");
        assert_eq!(a.iter().fold(0u8, |x, y| x.wrapping_add(*y)), 0);
        assert_eq!(a[0x10..].iter().fold(0u8, |x, y| x.wrapping_add(*y)), 0);
        assert_eq!(
            usize::from(u16::from_le_bytes([a[0x16], a[0x17]])),
            b.tables.len()
        );
        assert_eq!(u16::from_le_bytes([a[0x1c], a[0x1d]]), 3);
        assert_eq!((a[6], a[7], a[0x1e]), (2, 8, 0x28));
        let s = decode(&b.tables);
        assert_eq!(s.len(), 3);
        let max = u16::from_le_bytes([a[8], a[9]]) as usize;
        assert!(max >= 0x1b && max <= b.tables.len());
        assert_eq!(s[1].3, ["Vireo", "Product", "S-1"]);
        assert_eq!(&s[1].2[8..24], &[0; 16], "no UUID: all zero");
    }
}
