//! A small AML encoder: just the terms the DSDT needs (names, scopes, devices, packages,
//! buffers, integers, strings, resource templates).

/// Encodes a PkgLength for a body of `body_len` bytes (the length counts its own bytes).
pub fn pkg_length(body_len: usize) -> Vec<u8> {
    if body_len + 1 < 0x40 {
        return vec![(body_len + 1) as u8];
    }
    for n in 2..=4usize {
        let total = body_len + n;
        if total < 1 << (4 + 8 * (n - 1)) {
            let mut out = vec![(((n - 1) as u8) << 6) | (total & 0xf) as u8];
            for i in 0..n - 1 {
                out.push((total >> (4 + 8 * i)) as u8);
            }
            return out;
        }
    }
    // Callers build kilobytes at most; 2^28 bytes cannot happen.
    vec![0xff; 4]
}

/// A NameString: `\` root prefix, dot-separated segments padded to 4 chars with `_`.
pub fn name(path: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let rest = match path.strip_prefix('\\') {
        Some(r) => {
            out.push(b'\\');
            r
        }
        None => path,
    };
    let segs: Vec<&str> = rest.split('.').filter(|s| !s.is_empty()).collect();
    match segs.len() {
        0 => out.push(0),
        1 => {}
        2 => out.push(0x2e),
        n => {
            out.push(0x2f);
            out.push(n as u8);
        }
    }
    for s in segs {
        let mut seg = [b'_'; 4];
        for (d, c) in seg.iter_mut().zip(s.bytes()) {
            *d = c;
        }
        out.extend_from_slice(&seg);
    }
    out
}

pub fn integer(v: u64) -> Vec<u8> {
    match v {
        0 => vec![0x00],
        1 => vec![0x01],
        v if v <= 0xff => vec![0x0a, v as u8],
        v if v <= 0xffff => {
            let mut o = vec![0x0b];
            o.extend_from_slice(&(v as u16).to_le_bytes());
            o
        }
        v if v <= 0xffff_ffff => {
            let mut o = vec![0x0c];
            o.extend_from_slice(&(v as u32).to_le_bytes());
            o
        }
        v => {
            let mut o = vec![0x0e];
            o.extend_from_slice(&v.to_le_bytes());
            o
        }
    }
}

pub fn string(s: &str) -> Vec<u8> {
    let mut o = vec![0x0d];
    o.extend_from_slice(s.as_bytes());
    o.push(0);
    o
}

/// A compressed EISA ID such as `PNP0303`, as a DWord integer.
pub fn eisa_id(id: &str) -> Vec<u8> {
    let b = id.as_bytes();
    if b.len() != 7 {
        return integer(0);
    }
    let c = |i: usize| u16::from(b[i].wrapping_sub(0x40) & 0x1f);
    let vendor = (c(0) << 10) | (c(1) << 5) | c(2);
    let product = u16::from_str_radix(&id[3..], 16).unwrap_or(0);
    let bytes = [
        (vendor >> 8) as u8,
        vendor as u8,
        (product >> 8) as u8,
        product as u8,
    ];
    let mut o = vec![0x0c];
    o.extend_from_slice(&bytes);
    o
}

/// Name(path, value)
pub fn name_decl(path: &str, value: Vec<u8>) -> Vec<u8> {
    let mut o = vec![0x08];
    o.extend(name(path));
    o.extend(value);
    o
}

fn with_pkg(prefix: &[u8], body: Vec<u8>) -> Vec<u8> {
    let mut o = prefix.to_vec();
    o.extend(pkg_length(body.len()));
    o.extend(body);
    o
}

pub fn scope(path: &str, children: Vec<Vec<u8>>) -> Vec<u8> {
    let mut body = name(path);
    body.extend(children.concat());
    with_pkg(&[0x10], body)
}

pub fn device(path: &str, children: Vec<Vec<u8>>) -> Vec<u8> {
    let mut body = name(path);
    body.extend(children.concat());
    with_pkg(&[0x5b, 0x82], body)
}

pub fn package(elements: Vec<Vec<u8>>) -> Vec<u8> {
    let mut body = vec![elements.len() as u8];
    body.extend(elements.concat());
    with_pkg(&[0x12], body)
}

pub fn buffer(bytes: Vec<u8>) -> Vec<u8> {
    let mut body = integer(bytes.len() as u64);
    body.extend(bytes);
    with_pkg(&[0x11], body)
}

/// ResourceTemplate: the descriptors plus the end tag, as a Buffer.
pub fn resource_template(descriptors: Vec<Vec<u8>>) -> Vec<u8> {
    let mut bytes = descriptors.concat();
    bytes.extend_from_slice(&[0x79, 0x00]);
    buffer(bytes)
}

/// IO(Decode16, min, min, 1, len)
pub fn io_port(base: u16, len: u8) -> Vec<u8> {
    let b = base.to_le_bytes();
    vec![0x47, 0x01, b[0], b[1], b[0], b[1], 0x01, len]
}

/// IRQNoFlags() { irq } (ISA: edge, active high)
pub fn irq_no_flags(irq: u8) -> Vec<u8> {
    let mask = (1u16 << (irq & 15)).to_le_bytes();
    vec![0x22, mask[0], mask[1]]
}

/// Memory32Fixed(ReadWrite, base, len)
pub fn memory32_fixed(base: u32, len: u32) -> Vec<u8> {
    let mut o = vec![0x86, 9, 0, 1];
    o.extend_from_slice(&base.to_le_bytes());
    o.extend_from_slice(&len.to_le_bytes());
    o
}

/// Interrupt(ResourceConsumer, Edge, ActiveHigh, Exclusive) { gsi }
pub fn interrupt_edge(gsi: u32) -> Vec<u8> {
    let mut o = vec![0x89, 6, 0, 0b0000_0011, 1];
    o.extend_from_slice(&gsi.to_le_bytes());
    o
}

/// The general flags of a bridge's address-space windows: producer, positive decode, minimum
/// and maximum fixed.
const WINDOW_FLAGS: u8 = 0b1100;

/// WordBusNumber(ResourceProducer, MinFixed, MaxFixed, PosDecode, 0, first, last, 0, count)
pub fn word_bus_number(first: u16, last: u16) -> Vec<u8> {
    word_space(2, 0, first, last)
}

/// WordIO(ResourceProducer, MinFixed, MaxFixed, PosDecode, EntireRange, 0, min, max, 0, len)
pub fn word_io(min: u16, max: u16) -> Vec<u8> {
    word_space(1, 0b11, min, max)
}

fn word_space(kind: u8, type_flags: u8, min: u16, max: u16) -> Vec<u8> {
    let mut o = vec![0x88, 13, 0, kind, WINDOW_FLAGS, type_flags];
    for v in [0, min, max, 0, max.wrapping_sub(min).wrapping_add(1)] {
        o.extend_from_slice(&v.to_le_bytes());
    }
    o
}

/// DWordMemory(ResourceProducer, PosDecode, MinFixed, MaxFixed, NonCacheable, ReadWrite, 0,
/// min, max, 0, len)
pub fn dword_memory(min: u32, max: u32) -> Vec<u8> {
    let mut o = vec![0x87, 23, 0, 0, WINDOW_FLAGS, 0b01];
    for v in [0, min, max, 0, max.wrapping_sub(min).wrapping_add(1)] {
        o.extend_from_slice(&v.to_le_bytes());
    }
    o
}

/// QWordMemory(ResourceProducer, PosDecode, MinFixed, MaxFixed, Cacheable, ReadWrite, 0,
/// min, max, 0, len)
pub fn qword_memory(min: u64, max: u64) -> Vec<u8> {
    let mut o = vec![0x8a, 43, 0, 0, WINDOW_FLAGS, 0b11];
    for v in [0, min, max, 0, max.wrapping_sub(min).wrapping_add(1)] {
        o.extend_from_slice(&v.to_le_bytes());
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings_match_the_spec_examples() {
        assert_eq!(eisa_id("PNP0303"), vec![0x0c, 0x41, 0xd0, 0x03, 0x03]);
        assert_eq!(pkg_length(10), vec![11]);
        // 0x40 bytes of body + 2 length bytes = 0x42: 0b01 << 6 | 0x2, then 0x4.
        assert_eq!(pkg_length(0x40), vec![0x42, 0x04]);
        assert_eq!(pkg_length(0x1000), vec![0x83, 0x00, 0x01]);
        assert_eq!(name("\\_SB_.COM1"), b"\\\x2e_SB_COM1".to_vec());
        assert_eq!(name("_S5"), b"_S5_".to_vec());
        assert_eq!(integer(0x1234), vec![0x0b, 0x34, 0x12]);
        let dev = device("KBD", vec![name_decl("_HID", eisa_id("PNP0303"))]);
        assert_eq!(dev[0..2], [0x5b, 0x82]);
        assert_eq!(dev[2] as usize, dev.len() - 2);
    }

    #[test]
    fn address_space_descriptors_have_their_spec_lengths() {
        // Each descriptor's length field counts the bytes after the 3-byte header.
        for d in [
            word_bus_number(0, 0xff),
            word_io(0, 0xcf7),
            dword_memory(0xc000_0000, 0xfebf_ffff),
            qword_memory(1 << 35, (1 << 36) - 1),
        ] {
            assert_eq!(usize::from(u16::from_le_bytes([d[1], d[2]])), d.len() - 3);
        }
        let bus = word_bus_number(0, 0xff);
        assert_eq!(&bus[bus.len() - 2..], &0x100u16.to_le_bytes());
        let mem = dword_memory(0xc000_0000, 0xfebf_ffff);
        assert_eq!(&mem[mem.len() - 4..], &0x3ec0_0000u32.to_le_bytes());
    }
}
