//! Drawing the legacy VGA modes from guest RAM: alphanumeric text (characters and attributes
//! in the legacy window, glyphs from plane 2 as the BIOS or Linux loaded them at 0xA0000) and
//! the 256-colour chain-4 modes (mode 13h). Planar 16-colour graphics are not drawn (black).
//!
//! The cursor is drawn steadily and blinking attributes do not blink: a screenshot shows
//! the same picture whenever it is taken.

use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use super::regs::VgaRegs;

/// The text buffer wraps within this (the 32 KiB window at 0xB8000 or 0xB0000).
const TEXT_WINDOW: u32 = 0x8000;
/// Plane 2 (the font) as loaded through the legacy window.
const FONT_BASE: u64 = 0xa_0000;
const GLYPH_STRIDE: u64 = 32;
const CHAIN4_BASE: u64 = 0xa_0000;
const CHAIN4_SIZE: u32 = 0x1_0000;

/// What the legacy VGA shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Legacy {
    Text {
        cols: u32,
        rows: u32,
        char_w: u32,
        char_h: u32,
    },
    Chain4 {
        width: u32,
        height: u32,
    },
    /// Planar graphics: drawn black at this size.
    Unsupported {
        width: u32,
        height: u32,
    },
}

impl Legacy {
    pub fn of(r: &VgaRegs) -> Legacy {
        let lines = r.vertical_display().clamp(1, 1200);
        if !r.graphics_mode() {
            let char_h = r.char_height();
            let cols = r.columns().clamp(1, 256);
            let rows = (lines / char_h).max(1);
            return Legacy::Text {
                cols,
                rows,
                char_w: r.char_width(),
                char_h,
            };
        }
        // CR9 bit 7 (and the max-scan-line field) double each line in the 200-line modes.
        let doubled = if r.crtc[9] & 0x80 != 0 || r.crtc[9] & 0x1f == 1 {
            2
        } else {
            1
        };
        let width = r.columns().clamp(1, 256) * 8 / if r.chain4_256() { 2 } else { 1 };
        let height = (lines / doubled).max(1);
        if r.chain4_256() {
            Legacy::Chain4 { width, height }
        } else {
            Legacy::Unsupported { width, height }
        }
    }

    pub fn size(&self) -> (u32, u32) {
        match *self {
            Legacy::Text {
                cols,
                rows,
                char_w,
                char_h,
            } => (cols * char_w, rows * char_h),
            Legacy::Chain4 { width, height } | Legacy::Unsupported { width, height } => {
                (width, height)
            }
        }
    }
}

/// Draws `out.len()` pixels of row `y` from column `x`.
pub fn draw_row(r: &VgaRegs, mem: &GuestMemoryMmap, mode: Legacy, x: u32, y: u32, out: &mut [u32]) {
    out.fill(0);
    match mode {
        Legacy::Text {
            cols,
            rows,
            char_w,
            char_h,
        } if y < rows * char_h => text_row(r, mem, (cols, char_w, char_h), x, y, out),
        Legacy::Chain4 { width, height } if y < height && x < width => {
            let pitch = r.row_pitch().max(1) * 4;
            let start = r.start_address() * 4;
            let n = out.len().min((width - x) as usize);
            let mut line = vec![0u8; n];
            let first = (start + y * pitch + x) % CHAIN4_SIZE;
            for (i, b) in line.iter_mut().enumerate() {
                let at = (first + i as u32) % CHAIN4_SIZE;
                *b = mem
                    .read_obj::<u8>(GuestAddress(CHAIN4_BASE + u64::from(at)))
                    .unwrap_or(0);
            }
            for (o, b) in out.iter_mut().zip(line) {
                *o = r.dac_rgb(b);
            }
        }
        _ => {}
    }
}

fn text_row(
    r: &VgaRegs,
    mem: &GuestMemoryMmap,
    (cols, char_w, char_h): (u32, u32, u32),
    x: u32,
    y: u32,
    out: &mut [u32],
) {
    let row = y / char_h;
    let line = y % char_h;
    let base = r.window_base();
    let start = r.start_address() + row * r.row_pitch();
    let mut cells = vec![0u8; cols as usize * 2];
    for (c, pair) in cells.chunks_exact_mut(2).enumerate() {
        let at = ((start + c as u32) * 2) % TEXT_WINDOW;
        if mem
            .read_slice(pair, GuestAddress(base + u64::from(at)))
            .is_err()
        {
            return;
        }
    }
    let cursor = r
        .cursor()
        .filter(|&(at, s, e)| at >= start && at < start + cols && (s..=e).contains(&line))
        .map(|(at, _, _)| at - start);
    let blink = r.blink_enabled();
    let line_graphics = r.line_graphics();
    let first_col = x / char_w;
    let mut px = first_col * char_w;
    let mut o = 0usize;
    for c in first_col..cols {
        let ch = cells[c as usize * 2];
        let attr = cells[c as usize * 2 + 1];
        let glyph_at =
            FONT_BASE + r.font_offset(attr) + u64::from(ch) * GLYPH_STRIDE + u64::from(line);
        let bits = mem.read_obj::<u8>(GuestAddress(glyph_at)).unwrap_or(0);
        let in_cursor = cursor == Some(c);
        let fg = r.dac_rgb(r.attr_colour(attr & 0x0f));
        let bg_index = if blink { (attr >> 4) & 7 } else { attr >> 4 };
        let bg = r.dac_rgb(r.attr_colour(bg_index));
        for dot in 0..char_w {
            let on = in_cursor
                || match dot {
                    0..=7 => bits & (0x80 >> dot) != 0,
                    _ => line_graphics && (0xc0..=0xdf).contains(&ch) && bits & 1 != 0,
                };
            if px >= x {
                if o >= out.len() {
                    return;
                }
                out[o] = if on { fg } else { bg };
                o += 1;
            }
            px += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode3() -> VgaRegs {
        let mut r = VgaRegs::new();
        r.misc = 0x67;
        r.seq[1] = 0x00;
        r.gc[6] = 0x0e;
        super::super::regs::mode_3_crtc(&mut r);
        r.crtc[0x0a] = 0x20;
        r.attr[0x10] = 0x0c;
        for i in 0..16 {
            r.attr[i] = i as u8;
        }
        // DAC 7 light grey, 1 blue, 0 black.
        r.dac[7 * 3..7 * 3 + 3].copy_from_slice(&[0x2a, 0x2a, 0x2a]);
        r.dac[3 + 2] = 0x2a;
        r
    }

    fn memory() -> GuestMemoryMmap {
        GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 1 << 20)]).expect("memory")
    }

    #[test]
    fn mode_3_is_80x25_with_9_dot_cells() {
        let r = mode3();
        let m = Legacy::of(&r);
        assert_eq!(m.size(), (720, 400));
        let mut r8 = mode3();
        r8.seq[1] = 0x01;
        assert_eq!(Legacy::of(&r8).size(), (640, 400));
    }

    #[test]
    fn a_character_draws_its_glyph_in_its_attribute_colours() {
        let r = mode3();
        let mem = memory();
        // 'A' grey on blue at row 1, column 2; its glyph's line 5 is 0b1100_0011.
        let cell = 0xb_8000 + (80 + 2) * 2;
        mem.write_slice(&[b'A', 0x17], GuestAddress(cell))
            .expect("cell");
        mem.write_obj(0xc3u8, GuestAddress(0xa_0000 + 0x41 * 32 + 5))
            .expect("glyph");
        let mut out = vec![0u32; 9];
        draw_row(&r, &mem, Legacy::of(&r), 18, 16 + 5, &mut out);
        let (g, b) = (0xaa_aa_aa, 0x00_00_aa);
        assert_eq!(out, vec![g, g, b, b, b, b, g, g, b]);
    }

    #[test]
    fn box_drawing_fills_the_ninth_dot_and_start_address_scrolls() {
        let mut r = mode3();
        let mem = memory();
        // Scrolled by one row: the cell at start 80 + column 0 shows on screen row 0.
        r.crtc[0x0d] = 80;
        mem.write_slice(&[0xc4, 0x07], GuestAddress(0xb_8000 + 80 * 2))
            .expect("cell");
        mem.write_obj(0xffu8, GuestAddress(0xa_0000 + 0xc4 * 32))
            .expect("glyph");
        let mut out = vec![0u32; 10];
        draw_row(&r, &mem, Legacy::of(&r), 0, 0, &mut out);
        assert!(out[..9].iter().all(|&p| p == 0xaa_aa_aa), "{out:x?}");
        assert_eq!(out[9], 0);
    }

    #[test]
    fn the_cursor_covers_its_scan_lines() {
        let mut r = mode3();
        let mem = memory();
        r.crtc[0x0a] = 14;
        r.crtc[0x0b] = 15;
        r.crtc[0x0f] = 3;
        mem.write_slice(&[b' ', 0x07], GuestAddress(0xb_8000 + 3 * 2))
            .expect("cell");
        let mut out = vec![0u32; 9];
        draw_row(&r, &mem, Legacy::of(&r), 27, 14, &mut out);
        assert!(out.iter().all(|&p| p == 0xaa_aa_aa));
        draw_row(&r, &mem, Legacy::of(&r), 27, 13, &mut out);
        assert!(out.iter().all(|&p| p == 0));
    }

    #[test]
    fn mode_13h_reads_bytes_through_the_palette() {
        let mut r = mode3();
        r.gc[6] = 0x05;
        r.gc[5] = 0x40;
        r.seq[4] = 0x0e;
        // Mode 3's timing, each line shown twice.
        r.crtc[9] = 0x41;
        let m = Legacy::of(&r);
        assert_eq!(
            m,
            Legacy::Chain4 {
                width: 320,
                height: 200
            }
        );
        let mem = memory();
        mem.write_slice(&[7, 1], GuestAddress(0xa_0000 + 320 + 10))
            .expect("pixels");
        let mut out = vec![0u32; 2];
        draw_row(&r, &mem, m, 10, 1, &mut out);
        assert_eq!(out, vec![0xaa_aa_aa, 0x00_00_aa]);
    }
}
