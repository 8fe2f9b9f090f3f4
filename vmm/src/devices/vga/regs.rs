//! The VGA's register file behind ports 0x3B0..0x3DF (and BAR 2's copy at 0x400): misc output,
//! sequencer, graphics controller, attribute controller, CRT controller and the DAC palette.
//!
//! Registers hold what the guest writes and read it back; nothing here draws. The renderer
//! (`text.rs`) reads the few that decide the picture: the text geometry from the CRTC, the
//! character clock from the sequencer, colours through the attribute controller and the DAC.
//! Planes are not emulated: the legacy window 0xA0000..0xBFFFF is plain guest RAM, which is
//! what a text mode needs (characters and attributes interleaved at 0xB8000 as the CPU writes
//! them, the font where the BIOS and Linux load it, at 0xA0000 with 32 bytes a glyph).

/// Ports, as offsets from 0x3C0 (the colour CRTC at 0x3D4; monochrome software uses 0x3B4).
pub const PORT_BASE: u16 = 0x3b0;
pub const PORT_LEN: u16 = 0x30;

const ATTR_INDEX: u16 = 0x3c0;
const ATTR_READ: u16 = 0x3c1;
const MISC_WRITE: u16 = 0x3c2;
const SEQ_INDEX: u16 = 0x3c4;
const SEQ_DATA: u16 = 0x3c5;
const DAC_MASK: u16 = 0x3c6;
const DAC_READ_INDEX: u16 = 0x3c7;
const DAC_WRITE_INDEX: u16 = 0x3c8;
const DAC_DATA: u16 = 0x3c9;
const FEATURE_READ: u16 = 0x3ca;
const MISC_READ: u16 = 0x3cc;
const GC_INDEX: u16 = 0x3ce;
const GC_DATA: u16 = 0x3cf;
const CRTC_INDEX_MONO: u16 = 0x3b4;
const CRTC_DATA_MONO: u16 = 0x3b5;
const STATUS1_MONO: u16 = 0x3ba;
const CRTC_INDEX: u16 = 0x3d4;
const CRTC_DATA: u16 = 0x3d5;
const STATUS1: u16 = 0x3da;

/// Input status 1: display disabled (in a blanking interval) and vertical retrace.
const STATUS1_BLANK: u8 = 0x01;
const STATUS1_RETRACE: u8 = 0x08;

pub struct VgaRegs {
    pub misc: u8,
    pub seq: [u8; 8],
    seq_index: u8,
    pub gc: [u8; 16],
    gc_index: u8,
    pub attr: [u8; 32],
    /// The attribute controller's index register, with bit 5 (palette address source).
    attr_index: u8,
    /// Whether the next write to 0x3C0 is data (the index/data flip-flop).
    attr_data_next: bool,
    pub crtc: [u8; 64],
    crtc_index: u8,
    /// 256 entries of 6-bit red, green, blue.
    pub dac: [u8; 768],
    pub dac_mask: u8,
    dac_read: u16,
    dac_write: u16,
    /// 0 = write mode, 3 = read mode (what 0x3C7 reads).
    dac_state: u8,
    status_toggle: u8,
}

impl Default for VgaRegs {
    fn default() -> VgaRegs {
        VgaRegs::new()
    }
}

impl VgaRegs {
    pub fn new() -> VgaRegs {
        VgaRegs {
            misc: 0,
            seq: [0; 8],
            seq_index: 0,
            gc: [0; 16],
            gc_index: 0,
            attr: [0; 32],
            attr_index: 0,
            attr_data_next: false,
            crtc: [0; 64],
            crtc_index: 0,
            dac: [0; 768],
            dac_mask: 0xff,
            dac_read: 0,
            dac_write: 0,
            dac_state: 0,
            status_toggle: 0,
        }
    }

    /// Whether software addressing the CRTC at `port` reaches it: the misc register's I/O
    /// address select puts it at 0x3Dx (colour) or 0x3Bx (monochrome), never both.
    fn crtc_here(&self, port: u16) -> bool {
        let colour = self.misc & 1 != 0;
        colour == (port & 0xfff0 == 0x3d0)
    }

    pub fn read(&mut self, port: u16) -> u8 {
        match port {
            ATTR_INDEX => self.attr_index,
            ATTR_READ => self.attr[usize::from(self.attr_index & 0x1f)],
            MISC_WRITE => 0, // input status 0: no switch sense, no pending interrupt
            SEQ_INDEX => self.seq_index,
            SEQ_DATA => self.seq[usize::from(self.seq_index & 7)],
            DAC_MASK => self.dac_mask,
            DAC_READ_INDEX => self.dac_state,
            DAC_WRITE_INDEX => (self.dac_write / 3) as u8,
            DAC_DATA => {
                let v = self.dac[usize::from(self.dac_read)];
                self.dac_read = (self.dac_read + 1) % 768;
                v
            }
            FEATURE_READ => 0,
            MISC_READ => self.misc,
            GC_INDEX => self.gc_index,
            GC_DATA => self.gc[usize::from(self.gc_index & 15)],
            CRTC_INDEX | CRTC_INDEX_MONO if self.crtc_here(port) => self.crtc_index,
            CRTC_DATA | CRTC_DATA_MONO if self.crtc_here(port) => {
                self.crtc[usize::from(self.crtc_index & 63)]
            }
            STATUS1 | STATUS1_MONO if self.crtc_here(port) => {
                // Reading resets the attribute flip-flop. Software that waits for a retrace
                // (and then for its end) sees both, alternately.
                self.attr_data_next = false;
                self.status_toggle ^= STATUS1_RETRACE | STATUS1_BLANK;
                self.status_toggle
            }
            _ => 0xff,
        }
    }

    pub fn write(&mut self, port: u16, v: u8) {
        match port {
            ATTR_INDEX => {
                if self.attr_data_next {
                    let i = usize::from(self.attr_index & 0x1f);
                    if i < 0x15 {
                        self.attr[i] = v;
                    }
                } else {
                    self.attr_index = v & 0x3f;
                }
                self.attr_data_next = !self.attr_data_next;
            }
            MISC_WRITE => self.misc = v,
            SEQ_INDEX => self.seq_index = v,
            SEQ_DATA => self.seq[usize::from(self.seq_index & 7)] = v,
            DAC_MASK => self.dac_mask = v,
            DAC_READ_INDEX => {
                self.dac_read = u16::from(v) * 3;
                self.dac_state = 3;
            }
            DAC_WRITE_INDEX => {
                self.dac_write = u16::from(v) * 3;
                self.dac_state = 0;
            }
            DAC_DATA => {
                self.dac[usize::from(self.dac_write)] = v & 0x3f;
                self.dac_write = (self.dac_write + 1) % 768;
            }
            GC_INDEX => self.gc_index = v,
            GC_DATA => self.gc[usize::from(self.gc_index & 15)] = v,
            CRTC_INDEX | CRTC_INDEX_MONO if self.crtc_here(port) => self.crtc_index = v,
            CRTC_DATA | CRTC_DATA_MONO if self.crtc_here(port) => {
                let i = usize::from(self.crtc_index & 63);
                // CR11 bit 7 write-protects CR0-CR7 (except CR7's line-compare bit 4).
                let protected = self.crtc[0x11] & 0x80 != 0;
                match i {
                    0..=6 if protected => {}
                    7 if protected => self.crtc[7] = (self.crtc[7] & !0x10) | (v & 0x10),
                    _ => self.crtc[i] = v,
                }
            }
            _ => {}
        }
    }

    /// An access of `data.len()` bytes from `first`: one register port a byte, as `inw` from
    /// an index port reads the index and then the data.
    pub fn read_ports(&mut self, first: u16, data: &mut [u8]) {
        for (port, b) in (first..).zip(data.iter_mut()) {
            *b = self.read(port);
        }
    }

    /// The write twin of [`Self::read_ports`]: `outw(0x0101, 0x3C4)` writes sequencer index 1
    /// and then its data.
    pub fn write_ports(&mut self, first: u16, data: &[u8]) {
        for (port, b) in (first..).zip(data) {
            self.write(port, *b);
        }
    }

    /// The DAC entry `i` as 8-bit xRGB.
    pub fn dac_rgb(&self, i: u8) -> u32 {
        let i = usize::from(i & self.dac_mask) * 3;
        let c = |v: u8| u32::from((v << 2) | (v >> 4));
        c(self.dac[i]) << 16 | c(self.dac[i + 1]) << 8 | c(self.dac[i + 2])
    }

    /// The DAC index the attribute controller makes of a 4-bit text colour.
    pub fn attr_colour(&self, c: u8) -> u8 {
        let pal = self.attr[usize::from(c & 0x0f)];
        let mode = self.attr[0x10];
        let select = self.attr[0x14];
        if mode & 0x80 != 0 {
            (select & 0x0f) << 4 | (pal & 0x0f)
        } else {
            (select & 0x0c) << 4 | (pal & 0x3f)
        }
    }

    /// Graphics controller Miscellaneous register bit 0: graphics (true) or text.
    pub fn graphics_mode(&self) -> bool {
        self.gc[6] & 1 != 0
    }

    /// Mode 13h and its kin: 256 colours, chain-4 (one byte a pixel, linear at 0xA0000).
    pub fn chain4_256(&self) -> bool {
        self.gc[5] & 0x40 != 0 && self.seq[4] & 0x08 != 0
    }

    /// Where the legacy window decodes: GC Miscellaneous bits 2-3.
    pub fn window_base(&self) -> u64 {
        match (self.gc[6] >> 2) & 3 {
            0 | 1 => 0xa_0000,
            2 => 0xb_0000,
            _ => 0xb_8000,
        }
    }

    /// Scan lines shown (CR12 with its overflow bits in CR7), at least 1.
    pub fn vertical_display(&self) -> u32 {
        let c = &self.crtc;
        let end = u32::from(c[0x12]) | u32::from(c[7] & 0x02) << 7 | u32::from(c[7] & 0x40) << 3;
        end + 1
    }

    /// Characters per row (CR1 + 1).
    pub fn columns(&self) -> u32 {
        u32::from(self.crtc[1]) + 1
    }

    /// Scan lines per character row (CR9 bits 0-4, plus one).
    pub fn char_height(&self) -> u32 {
        u32::from(self.crtc[9] & 0x1f) + 1
    }

    /// Dots per character: 8 with sequencer Clocking Mode bit 0, else 9.
    pub fn char_width(&self) -> u32 {
        if self.seq[1] & 1 != 0 {
            8
        } else {
            9
        }
    }

    /// The first character shown (CR0C:CR0D), in characters.
    pub fn start_address(&self) -> u32 {
        u32::from(self.crtc[0x0c]) << 8 | u32::from(self.crtc[0x0d])
    }

    /// Characters from one row's start to the next's (CR13 counts words of two).
    pub fn row_pitch(&self) -> u32 {
        u32::from(self.crtc[0x13]) * 2
    }

    /// The cursor's character and its first and last scan line, if it is shown.
    pub fn cursor(&self) -> Option<(u32, u32, u32)> {
        let start = self.crtc[0x0a];
        let end = u32::from(self.crtc[0x0b] & 0x1f);
        if start & 0x20 != 0 || u32::from(start & 0x1f) > end {
            return None;
        }
        let at = u32::from(self.crtc[0x0e]) << 8 | u32::from(self.crtc[0x0f]);
        Some((at, u32::from(start & 0x1f), end))
    }

    /// Glyph offset in plane 2 of character map A (sequencer Character Map Select), which
    /// attribute bit 3 does not redirect unless map B differs.
    pub fn font_offset(&self, attr: u8) -> u64 {
        let sel = self.seq[3];
        let a = (sel >> 2 & 3) | (sel >> 3 & 4);
        let b = (sel & 3) | (sel >> 2 & 4);
        let map = if attr & 0x08 != 0 { a } else { b };
        // Maps 0-3 start at 0, 16K, 32K, 48K; 4-7 at 8K, 24K, 40K, 56K.
        let m = u64::from(map);
        (m & 3) * 0x4000 + (m >> 2) * 0x2000
    }

    /// Attribute Mode Control: bit 3 makes attribute bit 7 blink instead of brightening the
    /// background; bit 2 repeats the 8th column into the 9th for 0xC0-0xDF.
    pub fn blink_enabled(&self) -> bool {
        self.attr[0x10] & 0x08 != 0
    }

    pub fn line_graphics(&self) -> bool {
        self.attr[0x10] & 0x04 != 0
    }
}

/// The CRT controller's timing of mode 3 (80x25 text, 16 scan lines a row, 400 lines), as
/// the BIOS programs it.
#[cfg(test)]
pub(super) fn mode_3_crtc(r: &mut VgaRegs) {
    r.crtc[1] = 0x4f;
    r.crtc[7] = 0x1f;
    r.crtc[9] = 0x4f;
    r.crtc[0x12] = 0x8f;
    r.crtc[0x13] = 0x28;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_data_pairs_read_back() {
        let mut r = VgaRegs::new();
        r.write(MISC_WRITE, 0x67);
        r.write(SEQ_INDEX, 1);
        r.write(SEQ_DATA, 0x01);
        r.write(GC_INDEX, 6);
        r.write(GC_DATA, 0x0e);
        r.write(CRTC_INDEX, 0x0e);
        r.write(CRTC_DATA, 0x12);
        assert_eq!(r.read(MISC_READ), 0x67);
        r.write(SEQ_INDEX, 1);
        assert_eq!(r.read(SEQ_DATA), 1);
        assert_eq!(r.char_width(), 8);
        assert_eq!(r.window_base(), 0xb_8000);
        r.write(CRTC_INDEX, 0x0e);
        assert_eq!(r.read(CRTC_DATA), 0x12);
        // Colour addressing: the monochrome CRTC ports decode nothing.
        r.write(CRTC_INDEX_MONO, 0x0e);
        assert_eq!(r.read(CRTC_DATA_MONO), 0xff);
    }

    #[test]
    fn the_attribute_flip_flop_alternates_and_status_resets_it() {
        let mut r = VgaRegs::new();
        r.misc = 1;
        r.read(STATUS1);
        r.write(ATTR_INDEX, 0x10);
        r.write(ATTR_INDEX, 0x0c);
        assert_eq!(r.attr[0x10], 0x0c);
        // An index write, then a status read in between: the next write is an index again.
        r.write(ATTR_INDEX, 0x31);
        r.read(STATUS1);
        r.write(ATTR_INDEX, 0x32);
        assert_eq!(r.read(ATTR_INDEX), 0x32);
        r.write(ATTR_INDEX, 0x3f);
        assert_eq!(r.attr[0x12], 0x3f);
    }

    #[test]
    fn the_dac_autoincrements_and_widens_to_eight_bits() {
        let mut r = VgaRegs::new();
        r.write(DAC_WRITE_INDEX, 7);
        for v in [0x3f, 0x20, 0x00, 0x01] {
            r.write(DAC_DATA, v);
        }
        assert_eq!(r.dac_rgb(7), 0xff_82_00);
        r.write(DAC_READ_INDEX, 7);
        assert_eq!(r.read(DAC_READ_INDEX), 3);
        assert_eq!([r.read(DAC_DATA), r.read(DAC_DATA)], [0x3f, 0x20]);
        // Index 255's last component wraps to entry 0.
        r.write(DAC_WRITE_INDEX, 255);
        for _ in 0..4 {
            r.write(DAC_DATA, 0x3f);
        }
        assert_eq!(r.dac[0], 0x3f);
    }

    #[test]
    fn protected_crtc_registers_ignore_writes() {
        let mut r = VgaRegs::new();
        r.misc = 1;
        r.write(CRTC_INDEX, 0x11);
        r.write(CRTC_DATA, 0x80);
        r.write(CRTC_INDEX, 1);
        r.write(CRTC_DATA, 0x4f);
        assert_eq!(r.columns(), 1);
        r.write(CRTC_INDEX, 0x11);
        r.write(CRTC_DATA, 0x00);
        r.write(CRTC_INDEX, 1);
        r.write(CRTC_DATA, 0x4f);
        assert_eq!(r.columns(), 80);
    }

    #[test]
    fn text_geometry_of_mode_3() {
        let mut r = VgaRegs::new();
        mode_3_crtc(&mut r);
        r.crtc[0x0a] = 0x0d;
        r.crtc[0x0b] = 0x0e;
        r.crtc[0x0f] = 81;
        assert_eq!(r.columns(), 80);
        assert_eq!(r.vertical_display(), 400);
        assert_eq!(r.char_height(), 16);
        assert_eq!(r.row_pitch(), 80);
        assert_eq!(r.cursor(), Some((81, 13, 14)));
        r.crtc[0x0a] |= 0x20;
        assert_eq!(r.cursor(), None);
    }
}
