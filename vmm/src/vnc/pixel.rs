//! Pixel formats (RFC 6143 §7.4) and conversion from the guest's native xRGB8888.
//!
//! The framebuffer always holds 32-bit little-endian pixels with red at bit 16, green at bit 8
//! and blue at bit 0 (what vesafb is told in screen_info). Clients ask for any true-colour
//! format; conversion goes through three 256-entry tables so the per-pixel cost is three loads
//! and two ORs whatever the client wants.

/// A pixel format as carried by ServerInit and SetPixelFormat.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PixelFormat {
    pub bits_per_pixel: u8,
    pub depth: u8,
    pub big_endian: bool,
    pub true_colour: bool,
    pub red_max: u16,
    pub green_max: u16,
    pub blue_max: u16,
    pub red_shift: u8,
    pub green_shift: u8,
    pub blue_shift: u8,
}

/// Why a client's SetPixelFormat was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PixelFormatError {
    #[error("bits-per-pixel {0} is not 8, 16 or 32")]
    BitsPerPixel(u8),
    #[error("{channel} channel (max {max}, shift {shift}) does not fit in {bpp} bits per pixel")]
    Channel {
        channel: &'static str,
        max: u16,
        shift: u8,
        bpp: u8,
    },
}

impl PixelFormat {
    /// The server's native format, announced in ServerInit.
    pub const NATIVE: PixelFormat = PixelFormat {
        bits_per_pixel: 32,
        depth: 24,
        big_endian: false,
        true_colour: true,
        red_max: 255,
        green_max: 255,
        blue_max: 255,
        red_shift: 16,
        green_shift: 8,
        blue_shift: 0,
    };

    /// The 8-bit BGR233 format used with our fixed colour map when a client asks for
    /// colour-map mode (as QEMU does).
    pub const BGR233: PixelFormat = PixelFormat {
        bits_per_pixel: 8,
        depth: 8,
        big_endian: false,
        true_colour: true,
        red_max: 7,
        green_max: 7,
        blue_max: 3,
        red_shift: 0,
        green_shift: 3,
        blue_shift: 6,
    };

    /// Parses the 16-byte wire form.
    pub fn from_bytes(b: &[u8; 16]) -> PixelFormat {
        PixelFormat {
            bits_per_pixel: b[0],
            depth: b[1],
            big_endian: b[2] != 0,
            true_colour: b[3] != 0,
            red_max: u16::from_be_bytes([b[4], b[5]]),
            green_max: u16::from_be_bytes([b[6], b[7]]),
            blue_max: u16::from_be_bytes([b[8], b[9]]),
            red_shift: b[10],
            green_shift: b[11],
            blue_shift: b[12],
        }
    }

    /// The 16-byte wire form.
    pub fn to_bytes(&self) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[0] = self.bits_per_pixel;
        b[1] = self.depth;
        b[2] = self.big_endian as u8;
        b[3] = self.true_colour as u8;
        b[4..6].copy_from_slice(&self.red_max.to_be_bytes());
        b[6..8].copy_from_slice(&self.green_max.to_be_bytes());
        b[8..10].copy_from_slice(&self.blue_max.to_be_bytes());
        b[10] = self.red_shift;
        b[11] = self.green_shift;
        b[12] = self.blue_shift;
        b
    }

    /// Checks a true-colour format: each channel's bits must lie inside the pixel.
    pub fn validate(&self) -> Result<(), PixelFormatError> {
        let bpp = self.bits_per_pixel;
        if !matches!(bpp, 8 | 16 | 32) {
            return Err(PixelFormatError::BitsPerPixel(bpp));
        }
        if !self.true_colour {
            return Ok(());
        }
        for (channel, max, shift) in [
            ("red", self.red_max, self.red_shift),
            ("green", self.green_max, self.green_shift),
            ("blue", self.blue_max, self.blue_shift),
        ] {
            let bits = 16 - max.leading_zeros();
            if max == 0 || u32::from(shift) + bits > u32::from(bpp) {
                return Err(PixelFormatError::Channel {
                    channel,
                    max,
                    shift,
                    bpp,
                });
            }
        }
        Ok(())
    }

    /// Only a validated true-colour format has shifts inside the pixel; a colour-map format's
    /// are whatever the client sent, so shifts past 31 bits count as no bits.
    fn channel_mask(&self) -> u32 {
        let at = |max: u16, shift: u8| u32::from(max).checked_shl(u32::from(shift)).unwrap_or(0);
        at(self.red_max, self.red_shift)
            | at(self.green_max, self.green_shift)
            | at(self.blue_max, self.blue_shift)
    }
}

/// Converts native pixels to one client's format and writes PIXEL, CPIXEL (ZRLE) and TPIXEL
/// (Tight) values.
#[derive(Clone)]
pub struct PixelWriter {
    format: PixelFormat,
    red: [u32; 256],
    green: [u32; 256],
    blue: [u32; 256],
    bytes: usize,
    /// Which bytes of the serialized 4-byte pixel make up a 3-byte CPIXEL, if it is compact.
    cpixel: Option<std::ops::Range<usize>>,
    /// Tight's 3-byte R,G,B form applies.
    tpixel24: bool,
    native: bool,
}

impl std::fmt::Debug for PixelWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PixelWriter")
            .field("format", &self.format)
            .finish()
    }
}

fn scale_table(max: u16, shift: u8) -> [u32; 256] {
    let mut t = [0u32; 256];
    for (v, slot) in t.iter_mut().enumerate() {
        let scaled = (v as u32 * u32::from(max) + 127) / 255;
        *slot = scaled.checked_shl(u32::from(shift)).unwrap_or(0);
    }
    t
}

impl PixelWriter {
    /// Builds the tables for a validated true-colour `format`.
    pub fn new(format: PixelFormat) -> PixelWriter {
        let bytes = usize::from(format.bits_per_pixel / 8).clamp(1, 4);
        let mask = format.channel_mask();
        let cpixel = if format.true_colour && format.bits_per_pixel == 32 && format.depth <= 24 {
            let low = mask & 0xff00_0000 == 0;
            let high = mask & 0x0000_00ff == 0;
            match (low, high, format.big_endian) {
                (true, _, false) => Some(0..3),
                (true, _, true) => Some(1..4),
                (false, true, false) => Some(1..4),
                (false, true, true) => Some(0..3),
                _ => None,
            }
        } else {
            None
        };
        let tpixel24 = format.true_colour
            && format.bits_per_pixel == 32
            && format.depth == 24
            && format.red_max == 255
            && format.green_max == 255
            && format.blue_max == 255;
        PixelWriter {
            format,
            red: scale_table(format.red_max, format.red_shift),
            green: scale_table(format.green_max, format.green_shift),
            blue: scale_table(format.blue_max, format.blue_shift),
            bytes,
            cpixel,
            tpixel24,
            native: format == PixelFormat::NATIVE,
        }
    }

    pub fn format(&self) -> &PixelFormat {
        &self.format
    }

    /// Bytes per PIXEL.
    pub fn bytes_per_pixel(&self) -> usize {
        self.bytes
    }

    /// Bytes per CPIXEL (ZRLE).
    pub fn bytes_per_cpixel(&self) -> usize {
        if self.cpixel.is_some() {
            3
        } else {
            self.bytes
        }
    }

    /// Bytes per TPIXEL (Tight).
    pub fn bytes_per_tpixel(&self) -> usize {
        if self.tpixel24 {
            3
        } else {
            self.bytes
        }
    }

    /// The client's value for a native pixel.
    #[inline]
    pub fn convert(&self, p: u32) -> u32 {
        if self.native {
            return p & 0x00ff_ffff;
        }
        self.red[((p >> 16) & 0xff) as usize]
            | self.green[((p >> 8) & 0xff) as usize]
            | self.blue[(p & 0xff) as usize]
    }

    #[inline]
    fn serialize(&self, v: u32) -> [u8; 4] {
        match (self.bytes, self.format.big_endian) {
            (4, false) => v.to_le_bytes(),
            (4, true) => v.to_be_bytes(),
            (2, false) => {
                let b = (v as u16).to_le_bytes();
                [b[0], b[1], 0, 0]
            }
            (2, true) => {
                let b = (v as u16).to_be_bytes();
                [b[0], b[1], 0, 0]
            }
            _ => [v as u8, 0, 0, 0],
        }
    }

    /// Appends one PIXEL.
    #[inline]
    pub fn put(&self, out: &mut Vec<u8>, p: u32) {
        let b = self.serialize(self.convert(p));
        out.extend_from_slice(&b[..self.bytes]);
    }

    /// Appends a row of PIXELs.
    pub fn put_row(&self, out: &mut Vec<u8>, row: &[u32]) {
        if self.native {
            put_bulk::<4>(out, row, |p| (p & 0x00ff_ffff).to_le_bytes());
            return;
        }
        for &p in row {
            self.put(out, p);
        }
    }

    /// Appends one CPIXEL.
    #[inline]
    pub fn put_cpixel(&self, out: &mut Vec<u8>, p: u32) {
        let b = self.serialize(self.convert(p));
        match &self.cpixel {
            Some(r) => out.extend_from_slice(&b[r.clone()]),
            None => out.extend_from_slice(&b[..self.bytes]),
        }
    }

    /// Appends one TPIXEL.
    #[inline]
    pub fn put_tpixel(&self, out: &mut Vec<u8>, p: u32) {
        if self.tpixel24 {
            out.extend_from_slice(&[(p >> 16) as u8, (p >> 8) as u8, p as u8]);
        } else {
            self.put(out, p);
        }
    }

    /// Appends CPIXELs for `px`.
    pub fn put_cpixels(&self, out: &mut Vec<u8>, px: &[u32]) {
        if self.native {
            put_bulk::<3>(out, px, |p| [p as u8, (p >> 8) as u8, (p >> 16) as u8]);
            return;
        }
        for &p in px {
            self.put_cpixel(out, p);
        }
    }

    /// Appends TPIXELs for `px`.
    pub fn put_tpixels(&self, out: &mut Vec<u8>, px: &[u32]) {
        if self.tpixel24 {
            put_bulk::<3>(out, px, |p| [(p >> 16) as u8, (p >> 8) as u8, p as u8]);
            return;
        }
        for &p in px {
            self.put_tpixel(out, p);
        }
    }

    /// The 256-entry colour map matching [`PixelFormat::BGR233`], as SetColourMapEntries wants
    /// it (16-bit intensities).
    pub fn bgr233_colour_map() -> Vec<[u16; 3]> {
        (0u32..256)
            .map(|i| {
                let r = i & 7;
                let g = (i >> 3) & 7;
                let b = (i >> 6) & 3;
                [
                    (r * 65535 / 7) as u16,
                    (g * 65535 / 7) as u16,
                    (b * 65535 / 3) as u16,
                ]
            })
            .collect()
    }
}

/// Converts pixels through a fixed-size stack buffer and appends it in one copy: the
/// conversion loop has no length checks or capacity growth in it, so it vectorizes.
#[inline]
fn put_bulk<const N: usize>(out: &mut Vec<u8>, px: &[u32], f: impl Fn(u32) -> [u8; N]) {
    const STEP: usize = 64;
    out.reserve(px.len() * N);
    let mut buf = [0u8; 64 * 4];
    for part in px.chunks(STEP) {
        let dst = &mut buf[..part.len() * N];
        for (d, &p) in dst.chunks_exact_mut(N).zip(part) {
            d.copy_from_slice(&f(p));
        }
        out.extend_from_slice(dst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the rfb_client fuzzer: a colour-map format validates whatever its shifts, and
    /// building a writer for it shifted by 249 bits.
    #[test]
    fn colour_map_format_with_wild_shifts_builds_a_writer() {
        let mut wire = [0u8; 16];
        wire[0] = 8;
        wire[1] = 8;
        wire[4..10].copy_from_slice(&[0, 0xf9, 0xff, 0, 0, 0]);
        wire[10] = 249;
        wire[11] = 40;
        wire[12] = 32;
        let pf = PixelFormat::from_bytes(&wire);
        assert!(pf.validate().is_ok());
        let w = PixelWriter::new(pf);
        let mut out = Vec::new();
        w.put(&mut out, 0x123456);
        w.put_cpixel(&mut out, 0x123456);
        w.put_tpixel(&mut out, 0x123456);
        assert!(!out.is_empty());
    }

    #[test]
    fn native_is_identity_little_endian() {
        let w = PixelWriter::new(PixelFormat::NATIVE);
        let mut out = Vec::new();
        w.put(&mut out, 0xff12_3456);
        assert_eq!(out, [0x56, 0x34, 0x12, 0x00]);
        assert_eq!(w.bytes_per_cpixel(), 3);
        assert_eq!(w.bytes_per_tpixel(), 3);
        out.clear();
        w.put_cpixel(&mut out, 0x0012_3456);
        assert_eq!(out, [0x56, 0x34, 0x12]);
        out.clear();
        w.put_tpixel(&mut out, 0x0012_3456);
        assert_eq!(out, [0x12, 0x34, 0x56]);
    }

    #[test]
    fn bulk_writers_match_one_at_a_time() {
        let px: Vec<u32> = (0..1000u32).map(|i| i.wrapping_mul(0x9e37_79b1)).collect();
        let rgb565 = PixelFormat {
            bits_per_pixel: 16,
            depth: 16,
            red_max: 31,
            green_max: 63,
            blue_max: 31,
            red_shift: 11,
            green_shift: 5,
            blue_shift: 0,
            ..PixelFormat::NATIVE
        };
        for f in [PixelFormat::NATIVE, rgb565, PixelFormat::BGR233] {
            let w = PixelWriter::new(f);
            let (mut one, mut bulk) = (Vec::new(), Vec::new());
            for &p in &px {
                w.put(&mut one, p);
            }
            w.put_row(&mut bulk, &px);
            assert_eq!(one, bulk, "{f:?} PIXEL");
            let (mut one, mut bulk) = (Vec::new(), Vec::new());
            for &p in &px {
                w.put_cpixel(&mut one, p);
            }
            w.put_cpixels(&mut bulk, &px);
            assert_eq!(one, bulk, "{f:?} CPIXEL");
            let (mut one, mut bulk) = (Vec::new(), Vec::new());
            for &p in &px {
                w.put_tpixel(&mut one, p);
            }
            w.put_tpixels(&mut bulk, &px);
            assert_eq!(one, bulk, "{f:?} TPIXEL");
        }
    }

    #[test]
    fn rgb565_big_endian() {
        let f = PixelFormat {
            bits_per_pixel: 16,
            depth: 16,
            big_endian: true,
            true_colour: true,
            red_max: 31,
            green_max: 63,
            blue_max: 31,
            red_shift: 11,
            green_shift: 5,
            blue_shift: 0,
        };
        f.validate().unwrap();
        let w = PixelWriter::new(f);
        let mut out = Vec::new();
        w.put(&mut out, 0x00ff_0000);
        assert_eq!(out, [0xf8, 0x00]);
        out.clear();
        w.put(&mut out, 0x0000_00ff);
        assert_eq!(out, [0x00, 0x1f]);
    }

    #[test]
    fn cpixel_high_bytes() {
        // Red at 24, green at 16, blue at 8: the low byte is unused.
        let f = PixelFormat {
            red_shift: 24,
            green_shift: 16,
            blue_shift: 8,
            ..PixelFormat::NATIVE
        };
        let w = PixelWriter::new(f);
        let mut out = Vec::new();
        w.put_cpixel(&mut out, 0x0011_2233);
        assert_eq!(out, [0x33, 0x22, 0x11]);
    }

    #[test]
    fn rejects_bad_formats() {
        let mut f = PixelFormat::NATIVE;
        f.bits_per_pixel = 24;
        assert!(f.validate().is_err());
        let mut f = PixelFormat::NATIVE;
        f.red_shift = 30;
        assert!(f.validate().is_err());
        let mut f = PixelFormat::NATIVE;
        f.green_max = 0;
        assert!(f.validate().is_err());
        PixelFormat::BGR233.validate().unwrap();
    }
}
