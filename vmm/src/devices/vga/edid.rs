//! The monitor the VGA device reports (EDID 1.4, one 128-byte block, read through BAR 2):
//! its preferred mode is the machine's configured display size, so Linux's `bochs` DRM driver
//! and OVMF start the desktop at the size of the window showing it.

pub const EDID_SIZE: usize = 128;

/// Blanking of the preferred timing (CVT reduced-blanking proportions; nothing scans it out,
/// but drivers check that the numbers add up).
const H_BLANK: u32 = 160;
const H_SYNC_OFFSET: u32 = 48;
const H_SYNC_WIDTH: u32 = 32;
const V_BLANK: u32 = 35;
const V_SYNC_OFFSET: u32 = 3;
const V_SYNC_WIDTH: u32 = 6;
const REFRESH_HZ: u32 = 60;
/// Pixels per millimetre of the reported physical size (96 dpi).
const DOTS_PER_METRE: u32 = 3780;

/// The EDID block of a monitor whose preferred mode is `width` x `height` (each at most
/// 4095, the field width; larger values are clamped).
pub fn build(width: u32, height: u32) -> [u8; EDID_SIZE] {
    let w = width.clamp(1, 4095);
    let h = height.clamp(1, 4095);
    let mut e = [0u8; EDID_SIZE];
    e[0..8].copy_from_slice(&[0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0]);
    // Manufacturer "VIR" (three 5-bit letters, big-endian), product 1, no serial number.
    let id = |c: u8| u16::from(c - b'A' + 1);
    let maker = id(b'V') << 10 | id(b'I') << 5 | id(b'R');
    e[8..10].copy_from_slice(&maker.to_be_bytes());
    e[10..12].copy_from_slice(&1u16.to_le_bytes());
    e[16] = 1; // week 1
    e[17] = 36; // made in 2026 (years since 1990)
    e[18] = 1;
    e[19] = 4;
    e[20] = 0xa5; // digital, 8 bits a colour, DisplayPort
    let mm = |px: u32| px * 1000 / DOTS_PER_METRE;
    e[21] = u8::try_from(mm(w).div_ceil(10)).unwrap_or(u8::MAX);
    e[22] = u8::try_from(mm(h).div_ceil(10)).unwrap_or(u8::MAX);
    e[23] = 120; // gamma 2.2
    e[24] = 0x06; // RGB 4:4:4, sRGB, the preferred timing is the native mode
    e[25..35].copy_from_slice(&[0xee, 0x91, 0xa3, 0x54, 0x4c, 0x99, 0x26, 0x0f, 0x50, 0x54]);
    // Established timings: 640x480@60, 800x600@60, 1024x768@60.
    e[35] = 0x21;
    e[36] = 0x08;
    e[38..54].fill(0x01); // no standard timings
    detailed_timing(&mut e[54..72], w, h, mm(w), mm(h));
    descriptor(&mut e[72..90], 0xfc, b"Vireo");
    range_limits(&mut e[90..108]);
    descriptor(&mut e[108..126], 0x10, b"");
    e[126] = 0;
    let sum = e[..127].iter().fold(0u8, |s, b| s.wrapping_add(*b));
    e[127] = 0u8.wrapping_sub(sum);
    e
}

fn detailed_timing(d: &mut [u8], w: u32, h: u32, w_mm: u32, h_mm: u32) {
    let clock_10khz = (w + H_BLANK) * (h + V_BLANK) * REFRESH_HZ / 10_000;
    d[0..2].copy_from_slice(&u16::try_from(clock_10khz).unwrap_or(u16::MAX).to_le_bytes());
    let lo = |v: u32| (v & 0xff) as u8;
    let hi = |v: u32| ((v >> 8) & 0x0f) as u8;
    d[2] = lo(w);
    d[3] = lo(H_BLANK);
    d[4] = hi(w) << 4 | hi(H_BLANK);
    d[5] = lo(h);
    d[6] = lo(V_BLANK);
    d[7] = hi(h) << 4 | hi(V_BLANK);
    d[8] = lo(H_SYNC_OFFSET);
    d[9] = lo(H_SYNC_WIDTH);
    d[10] = ((V_SYNC_OFFSET & 0x0f) << 4 | (V_SYNC_WIDTH & 0x0f)) as u8;
    d[11] = 0;
    d[12] = lo(w_mm);
    d[13] = lo(h_mm);
    d[14] = hi(w_mm) << 4 | hi(h_mm);
    d[17] = 0x1e; // digital separate sync, both polarities positive
}

/// A display descriptor of `tag` with `text` (at most 13 bytes, ended by a newline and padded
/// with spaces, as the standard asks).
fn descriptor(d: &mut [u8], tag: u8, text: &[u8]) {
    d.fill(0);
    d[3] = tag;
    if tag == 0x10 {
        return; // dummy descriptor: all zero
    }
    let body = &mut d[5..18];
    body.fill(b' ');
    let n = text.len().min(12);
    body[..n].copy_from_slice(&text[..n]);
    body[n] = b'\n';
}

fn range_limits(d: &mut [u8]) {
    d.fill(0);
    d[3] = 0xfd;
    d[5] = 50; // vertical Hz
    d[6] = 125;
    d[7] = 30; // horizontal kHz
    d[8] = 160;
    d[9] = 30; // pixel clock, 10 MHz units
    d[10] = 0x01; // range limits only
    d[11] = 0x0a;
    d[12..18].fill(b' ');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_block_is_valid_and_prefers_the_configured_size() {
        let e = build(1280, 800);
        assert_eq!(&e[0..8], &[0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0]);
        assert_eq!(e.iter().fold(0u8, |s, b| s.wrapping_add(*b)), 0);
        let t = &e[54..72];
        let w = u32::from(t[2]) | u32::from(t[4] >> 4) << 8;
        let h = u32::from(t[5]) | u32::from(t[7] >> 4) << 8;
        assert_eq!((w, h), (1280, 800));
        let clock = u32::from(u16::from_le_bytes([t[0], t[1]]));
        // (1280+160) * (800+35) * 60 Hz = 72.1 MHz.
        assert_eq!(clock, 7214);
        assert_eq!(&e[72 + 5..72 + 11], b"Vireo\n");
        assert_eq!(e[24] & 0x02, 0x02, "preferred timing is native");
    }

    #[test]
    fn the_largest_sizes_fit_their_fields() {
        let e = build(2560, 1600);
        let t = &e[54..72];
        assert_eq!(u32::from(t[2]) | u32::from(t[4] >> 4) << 8, 2560);
        assert_eq!(u32::from(t[5]) | u32::from(t[7] >> 4) << 8, 1600);
        let e = build(100_000, 0);
        let t = &e[54..72];
        assert_eq!(u32::from(t[2]) | u32::from(t[4] >> 4) << 8, 4095);
        assert_eq!(u32::from(t[5]) | u32::from(t[7] >> 4) << 8, 1);
        assert_eq!(e.iter().fold(0u8, |s, b| s.wrapping_add(*b)), 0);
    }
}
