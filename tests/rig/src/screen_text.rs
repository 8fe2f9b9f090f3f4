//! Reads the text on a screenshot of a BIOS text screen (SeaBIOS, GRUB's `console` terminal,
//! isolinux) by matching 8x16 glyphs against the VGA font of Debian's SeaVGABIOS, so a test can
//! assert what a boot menu says and which entry is highlighted; with Linux's font added, the
//! Linux console (fbcon) as well.
//!
//! # The font
//! SeaVGABIOS draws the INT 10h text modes it emulates in a linear framebuffer (ramfb,
//! bochs-display) with the standard VGA 8x16 font, which it carries in its ROM as 256 glyphs of
//! 16 bytes (one byte a scan line, most significant bit leftmost). [`Font::from_vgabios`] finds
//! that table by the known bitmap of `A`, takes the table start as that offset minus 0x41 * 16,
//! and accepts it only when `H`, `I`, the blank, the full block and two box-drawing glyphs sit at
//! their code points too; exactly one offset in the ROM must pass.
//!
//! # The Linux console
//! Linux's framebuffer console draws with the kernel's built-in VGA 8x16 font
//! (`lib/fonts/font_vga_8x16.c`), another copy of the same IBM design: in Debian bookworm's
//! kernel (6.1) 42 of its 256 glyphs differ from SeaVGABIOS's, among them `0 M T V W X Y Z f m v
//! w x | ~` and the backquote (its `0` has a dot, not a slash). They do not differ by a pixel or
//! two, so a cell is not matched to the nearest glyph: measured on a 1024x768 screenshot of the
//! console and on the kernel's whole table, Linux's glyphs lie 2 to 39 pixels (of 128) from
//! SeaVGABIOS's glyph of the same character, while distinct characters of SeaVGABIOS lie as
//! close as 1 (`I`/`l`, `-`/`─`) and 2 (`:`/`;`) apart; Linux's `M` is 4 pixels from
//! SeaVGABIOS's `N` and 19 from its `M`, its `Z` 4 from `2` and 8 from `Z`, its `0` 13 from `G`
//! and 20 from `0`. No bound on that distance reads them right without confusing characters.
//! Instead [`Font::with_linux_console`] reads the kernel's own table out of a kernel image (the
//! ELF `vmlinux`, or a bzImage whose xz payload `xz` unpacks), found the way the ROM's is, and
//! adds each of its glyphs that SeaVGABIOS draws otherwise, still matched exactly. It refuses a
//! glyph that SeaVGABIOS draws as a different character, so a cell never reads two ways.
//!
//! # Cell width
//! SeaVGABIOS's emulated text, and a real VGA set to 8-dot clocks, draw 8-pixel-wide cells
//! (640x400 for 80x25). A real VGA in mode 3 draws 9-dot cells (720x400): columns 0-7 are the
//! glyph, column 8 is the cell's background, except for the box-drawing codes 0xC0..=0xDF, where
//! it repeats column 7 so that lines join (the attribute controller's line-graphics enable, which
//! the BIOS sets). So a 9-pixel cell reads as the glyph of its first 8 columns when its 9th is
//! its background, or, for a box-drawing glyph, equals its 8th; any other 9th column is no match.
//!
//! # Reading a screen
//! A cell holds one or two colours. With one it is blank; with two, the pixels of either colour
//! form a glyph bitmap, looked up in the font (the other colour is the background). The text
//! grid starts at the top-left corner, with whichever cell width reads best there, when that
//! reads with few unmatched cells (SeaVGABIOS and a VGA draw there); otherwise at whichever
//! width and offset reads best, so a screen drawn at an offset (a text mode centred in a larger
//! framebuffer) reads too. Readings are ranked by the pixels they read as glyphs, then by the
//! fewest pixels in unmatched cells: pixels rather than cells, as a box line, which reads at
//! either width, is more cells at 8 pixels. A cell whose background is not the screen's (its
//! most common colour) is *highlighted*: GRUB marks the chosen menu entry that way. A cell that
//! matches no glyph exactly reads as U+FFFD.
//!
//! Screenshots: PNG (`vireoctl screenshot`: 8-bit RGB) and binary PPM (QEMU's `screendump`),
//! told apart by the file name's extension, never by content.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Glyph size of the VGA font; a screen's cells are [`CELL_WIDTHS`] wide.
pub const CELL_W: usize = 8;
pub const CELL_H: usize = 16;
/// The cell widths a text screen is drawn with (see the module documentation).
pub const CELL_WIDTHS: [usize; 2] = [CELL_W, CELL_W + 1];
/// The box-drawing codes whose 9th dot repeats the 8th.
const LINE_GRAPHICS: std::ops::RangeInclusive<u8> = 0xc0..=0xdf;

type Bitmap = [u8; CELL_H];

/// What can go wrong reading a font or a screenshot.
#[derive(Debug, thiserror::Error)]
pub enum ScreenError {
    #[error("reading {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: no VGA 8x16 font found ({why})")]
    NoFont { path: PathBuf, why: String },
    #[error("{path}: not a screenshot this reader knows ({why})")]
    BadImage { path: PathBuf, why: String },
    #[error("{path}: reading the Linux console's font: {why}")]
    BadKernel { path: PathBuf, why: String },
}

/// Scan lines of the glyphs that identify and then confirm the VGA font.
const ANCHOR: (u8, Bitmap) = (
    b'A',
    [
        0, 0, 0x10, 0x38, 0x6c, 0xc6, 0xc6, 0xfe, 0xc6, 0xc6, 0xc6, 0xc6, 0, 0, 0, 0,
    ],
);
const CONFIRM: [(u8, Bitmap); 6] = [
    (
        b'H',
        [
            0, 0, 0xc6, 0xc6, 0xc6, 0xc6, 0xfe, 0xc6, 0xc6, 0xc6, 0xc6, 0xc6, 0, 0, 0, 0,
        ],
    ),
    (
        b'I',
        [
            0, 0, 0x3c, 0x18, 0x18, 0x18, 0x18, 0x18, 0x18, 0x18, 0x18, 0x3c, 0, 0, 0, 0,
        ],
    ),
    (b' ', [0; CELL_H]),
    (0xdb, [0xff; CELL_H]),
    (0xb3, [0x18; CELL_H]),
    (0xc4, [0, 0, 0, 0, 0, 0, 0, 0xff, 0, 0, 0, 0, 0, 0, 0, 0]),
];

/// Code page 437 from 0x80 up, as the VGA font draws it.
const CP437_HIGH: &str = "ÇüéâäàåçêëèïîìÄÅÉæÆôöòûùÿÖÜ¢£¥₧ƒáíóúñÑªº¿⌐¬½¼¡«»\
░▒▓│┤╡╢╖╕╣║╗╝╜╛┐└┴┬├─┼╞╟╚╔╩╦╠═╬╧╨╤╥╙╘╒╓╫╪┘┌█▄▌▐▀\
αßΓπΣσµτΦΘΩδ∞φε∩≡±≥≤⌠⌡÷≈°∙·√ⁿ²■\u{a0}";
/// The control-code glyphs the boot loaders use (arrows, triangles); others stay unread.
const CP437_LOW: [(u8, char); 8] = [
    (0x10, '►'),
    (0x11, '◄'),
    (0x18, '↑'),
    (0x19, '↓'),
    (0x1a, '→'),
    (0x1b, '←'),
    (0x1e, '▲'),
    (0x1f, '▼'),
];

/// The character code point `code` stands for in code page 437.
fn cp437(code: u8) -> Option<char> {
    match code {
        0x20..=0x7e => Some(code as char),
        0x80..=0xff => CP437_HIGH.chars().nth(usize::from(code - 0x80)),
        _ => CP437_LOW
            .iter()
            .find(|(c, _)| *c == code)
            .map(|(_, ch)| *ch),
    }
}

/// The VGA 8x16 font: 256 glyphs and a reverse index from bitmap to code point.
#[derive(Debug, Clone)]
pub struct Font {
    glyphs: Vec<Bitmap>,
    index: HashMap<Bitmap, u8>,
}

impl Font {
    /// Reads the font out of a SeaVGABIOS ROM such as `/usr/share/seabios/vgabios-ramfb.bin`.
    pub fn from_vgabios(path: &Path) -> Result<Font, ScreenError> {
        let rom = std::fs::read(path).map_err(|source| ScreenError::Io {
            path: path.to_owned(),
            source,
        })?;
        Font::from_rom(&rom).map_err(|why| ScreenError::NoFont {
            path: path.to_owned(),
            why,
        })
    }

    /// Debian's SeaVGABIOS for ramfb, the display firmware boots show.
    pub fn debian_seavgabios() -> Result<Font, ScreenError> {
        Font::from_vgabios(Path::new("/usr/share/seabios/vgabios-ramfb.bin"))
    }

    /// Finds the font table in ROM bytes (see the module documentation).
    pub fn from_rom(rom: &[u8]) -> Result<Font, String> {
        find_table(rom).map(Font::from_table)
    }

    /// Adds the glyphs of the Linux console's font, read out of the kernel image at `kernel`:
    /// an ELF `vmlinux`, or a bzImage with an xz payload (see the module documentation).
    pub fn with_linux_console(self, kernel: &Path) -> Result<Font, ScreenError> {
        let bad = |why: String| ScreenError::BadKernel {
            path: kernel.to_owned(),
            why,
        };
        let bytes = std::fs::read(kernel).map_err(|source| ScreenError::Io {
            path: kernel.to_owned(),
            source,
        })?;
        let vmlinux = if bytes.starts_with(ELF_MAGIC) {
            bytes
        } else {
            unpack_bzimage(&bytes).map_err(bad)?
        };
        self.with_linux_font(&vmlinux).map_err(bad)
    }

    /// Adds the glyphs of the VGA 8x16 table found in `image` (an uncompressed kernel) that
    /// differ from this font's; refused when one of them is this font's glyph of another
    /// character.
    pub fn with_linux_font(mut self, image: &[u8]) -> Result<Font, String> {
        let table = find_table(image).map_err(|why| format!("no VGA 8x16 font found ({why})"))?;
        let table = Font::from_table(table);
        for code in index_order() {
            let (Some(ch), bits) = (cp437(code), table.glyph(code)) else {
                continue;
            };
            if bits == self.glyph(code) {
                continue;
            }
            match self.index.get(&bits).copied().and_then(cp437) {
                Some(other) if other != ch => {
                    return Err(format!(
                        "its glyph of {ch:?} (0x{code:02x}) is the glyph of {other:?} already"
                    ))
                }
                Some(_) => {}
                None => {
                    self.index.insert(bits, code);
                }
            }
        }
        Ok(self)
    }

    /// A font from a 4096-byte table (256 glyphs of 16 scan lines).
    fn from_table(table: &[u8]) -> Font {
        let glyphs: Vec<Bitmap> = table
            .chunks_exact(CELL_H)
            .map(|g| {
                let mut b = [0u8; CELL_H];
                b.copy_from_slice(g);
                b
            })
            .collect();
        let mut index = HashMap::new();
        for code in index_order() {
            if cp437(code).is_some() {
                index.entry(glyphs[usize::from(code)]).or_insert(code);
            }
        }
        Font { glyphs, index }
    }

    /// The bitmap of code point `code`.
    pub fn glyph(&self, code: u8) -> Bitmap {
        self.glyphs[usize::from(code)]
    }

    /// The code point drawn as `bits`; it has a character.
    fn code_of(&self, bits: &Bitmap) -> Option<u8> {
        self.index.get(bits).copied()
    }

    #[cfg(test)]
    fn lookup(&self, bits: &Bitmap) -> Option<char> {
        self.code_of(bits).and_then(cp437)
    }
}

/// The code points in the order the index takes them: printable ASCII first, so that a bitmap
/// drawn at several code points reads as ASCII.
fn index_order() -> impl Iterator<Item = u8> {
    (0x20u8..=0x7e)
        .chain(0x80..=0xff)
        .chain(0x00..0x20)
        .chain(std::iter::once(0x7f))
}

/// The start of the one 256-glyph table in `bytes` (see the module documentation).
fn find_table(bytes: &[u8]) -> Result<&[u8], String> {
    let (code, anchor) = ANCHOR;
    let table_len = 256 * CELL_H;
    let back = usize::from(code) * CELL_H;
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(at) = find(&bytes[from..], &anchor).map(|i| i + from) {
        from = at + 1;
        let Some(start) = at.checked_sub(back) else {
            continue;
        };
        let Some(table) = bytes.get(start..start + table_len) else {
            continue;
        };
        let confirmed = CONFIRM.iter().all(|(c, bits)| {
            let o = usize::from(*c) * CELL_H;
            table[o..o + CELL_H] == bits[..]
        });
        if confirmed {
            found.push(start);
        }
    }
    match found.as_slice() {
        [start] => Ok(&bytes[*start..*start + table_len]),
        [] => Err("no table whose A, H, I, blank, block and box glyphs match".into()),
        more => Err(format!("{} candidate tables at {more:?}", more.len())),
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    // Testing the first byte first keeps a kernel image (tens of MB) quick to search.
    let first = needle.first()?;
    hay.windows(needle.len())
        .position(|w| w[0] == *first && w == needle)
}

const ELF_MAGIC: &[u8] = b"\x7fELF";

/// The ELF `vmlinux` in a bzImage's xz payload, unpacked by `xz`.
fn unpack_bzimage(bzimage: &[u8]) -> Result<Vec<u8>, String> {
    use std::io::{Read, Write};
    use std::process::{Command, Stdio};
    let at = find(bzimage, &[0xfd, b'7', b'z', b'X', b'Z', 0])
        .ok_or("neither an ELF vmlinux nor a bzImage with an xz payload")?;
    let mut child = Command::new("xz")
        .args(["-dc", "--single-stream"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("running xz (xz-utils): {e}"))?;
    let mut vmlinux = Vec::new();
    let (mut stdin, mut stdout) = (child.stdin.take(), child.stdout.take());
    std::thread::scope(|s| {
        // xz stops at the end of the stream; the bytes after it are the bzImage's trailer, and
        // a write cut short by that is no error.
        s.spawn(|| stdin.take().map(|mut i| i.write_all(&bzimage[at..])));
        stdout.take().map(|mut o| o.read_to_end(&mut vmlinux))
    })
    .transpose()
    .map_err(|e| format!("reading xz's output: {e}"))?;
    let out = child
        .wait_with_output()
        .map_err(|e| format!("waiting for xz: {e}"))?;
    if !out.status.success() || !vmlinux.starts_with(ELF_MAGIC) {
        return Err(format!(
            "xz -dc --single-stream on its xz payload: {}, {} bytes{}; {}",
            out.status,
            vmlinux.len(),
            if vmlinux.starts_with(ELF_MAGIC) {
                ""
            } else {
                ", not ELF"
            },
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(vmlinux)
}

/// An RGB picture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    pub width: usize,
    pub height: usize,
    /// 3 bytes a pixel, rows top to bottom.
    pub rgb: Vec<u8>,
}

impl Image {
    /// Loads a `.png` (8-bit RGB or RGBA) or `.ppm` (binary P6, maxval 255) file.
    pub fn load(path: &Path) -> Result<Image, ScreenError> {
        let bad = |why: String| ScreenError::BadImage {
            path: path.to_owned(),
            why,
        };
        let ext = path
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase());
        let bytes = std::fs::read(path).map_err(|source| ScreenError::Io {
            path: path.to_owned(),
            source,
        })?;
        match ext.as_deref() {
            Some("ppm") => parse_ppm(&bytes).map_err(bad),
            Some("png") => parse_png(&bytes).map_err(bad),
            other => Err(bad(format!("extension {other:?}: expected .png or .ppm"))),
        }
    }
}

fn parse_ppm(bytes: &[u8]) -> Result<Image, String> {
    // Header: "P6", width, height, maxval, separated by whitespace (and # comments), then
    // exactly one whitespace byte before the pixels.
    let mut fields = Vec::new();
    let mut i = 0;
    while fields.len() < 4 {
        while i < bytes.len() && (bytes[i].is_ascii_whitespace() || bytes[i] == b'#') {
            if bytes[i] == b'#' {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            } else {
                i += 1;
            }
        }
        let start = i;
        while i < bytes.len() && !bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        if start == i {
            return Err("PPM header ends early".into());
        }
        fields.push(String::from_utf8_lossy(&bytes[start..i]).into_owned());
    }
    if fields[0] != "P6" {
        return Err(format!("PPM magic {:?}, expected P6", fields[0]));
    }
    let num = |s: &str| {
        s.parse::<usize>()
            .map_err(|_| format!("PPM header field {s:?}"))
    };
    let (width, height, maxval) = (num(&fields[1])?, num(&fields[2])?, num(&fields[3])?);
    if maxval != 255 {
        return Err(format!("PPM maxval {maxval}, expected 255"));
    }
    let len = width
        .checked_mul(height)
        .and_then(|n| n.checked_mul(3))
        .ok_or("PPM size overflows")?;
    let data = bytes
        .get(i + 1..i + 1 + len)
        .ok_or_else(|| format!("PPM holds fewer than the {len} pixel bytes it announces"))?;
    Ok(Image {
        width,
        height,
        rgb: data.to_vec(),
    })
}

fn parse_png(bytes: &[u8]) -> Result<Image, String> {
    let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    let mut reader = decoder.read_info().map_err(|e| e.to_string())?;
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).map_err(|e| e.to_string())?;
    if info.bit_depth != png::BitDepth::Eight {
        return Err(format!("PNG bit depth {:?}, expected 8", info.bit_depth));
    }
    let (width, height) = (info.width as usize, info.height as usize);
    let step = match info.color_type {
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        other => return Err(format!("PNG colour type {other:?}, expected RGB or RGBA")),
    };
    let mut rgb = Vec::with_capacity(width * height * 3);
    for row in buf[..info.buffer_size()].chunks_exact(info.line_size) {
        for px in row[..width * step].chunks_exact(step) {
            rgb.extend_from_slice(&px[..3]);
        }
    }
    Ok(Image { width, height, rgb })
}

/// One character cell as read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cell {
    /// The character, U+FFFD when the cell matched no glyph.
    pub ch: char,
    /// The cell's background differs from the screen's.
    pub highlighted: bool,
}

/// The text grid read from a screen.
#[derive(Debug, Clone)]
pub struct ScreenText {
    /// Pixel position of the grid's top-left cell.
    pub origin: (usize, usize),
    /// Pixel width of a cell: 8, or 9 for a VGA's 9-dot text.
    pub cell_width: usize,
    pub cols: usize,
    pub rows: usize,
    /// The screen's background colour (its most common one).
    pub background: [u8; 3],
    cells: Vec<Cell>,
}

/// Reads the text of `img` with `font`.
pub fn read_screen(img: &Image, font: &Font) -> ScreenText {
    let px = Pixels::of(img);
    let background = most_common(&px);
    let read = |width, origin| read_at(&px, font, background, width, origin);
    // SeaVGABIOS and a VGA draw from the top-left corner: when that grid reads (nearly) cleanly
    // at either width, it is the one, which keeps a 1024x768 screen at two passes (a picture
    // beside the text leaves a few unmatched cells); otherwise every origin is tried.
    let at_zero = CELL_WIDTHS
        .map(|w| read(w, (0, 0)))
        .into_iter()
        .reduce(Reading::better)
        .expect("two widths");
    if at_zero.unknown * 4 <= at_zero.score {
        return at_zero.text;
    }
    CELL_WIDTHS
        .into_iter()
        .flat_map(|w| (0..CELL_H).flat_map(move |oy| (0..w).map(move |ox| (w, (ox, oy)))))
        .filter(|&(_, origin)| origin != (0, 0))
        .map(|(w, origin)| read(w, origin))
        .fold(at_zero, Reading::better)
        .text
}

/// The picture as one `u32` a pixel, for fast comparisons.
struct Pixels {
    width: usize,
    height: usize,
    px: Vec<u32>,
}

impl Pixels {
    fn of(img: &Image) -> Pixels {
        let px = img
            .rgb
            .chunks_exact(3)
            .map(|p| u32::from_be_bytes([0, p[0], p[1], p[2]]))
            .collect();
        Pixels {
            width: img.width,
            height: img.height,
            px,
        }
    }

    /// The `width` pixels from (x, y) rightwards.
    fn row(&self, x: usize, y: usize, width: usize) -> &[u32] {
        let o = y * self.width + x;
        &self.px[o..o + width]
    }
}

fn rgb_of(c: u32) -> [u8; 3] {
    let [_, r, g, b] = c.to_be_bytes();
    [r, g, b]
}

fn most_common(px: &Pixels) -> u32 {
    let mut counts: HashMap<u32, usize> = HashMap::new();
    for p in &px.px {
        *counts.entry(*p).or_default() += 1;
    }
    counts
        .into_iter()
        .max_by_key(|(c, n)| (*n, *c))
        .map(|(c, _)| c)
        .unwrap_or(0)
}

/// One reading of the grid: the text, the number of non-blank glyphs read (the score) and of
/// cells that matched nothing.
struct Reading {
    text: ScreenText,
    score: usize,
    unknown: usize,
}

impl Reading {
    /// The better of two readings: more pixels read as glyphs, then fewer in unmatched cells;
    /// `self` on a tie.
    fn better(self, other: Reading) -> Reading {
        let rank = |r: &Reading| {
            let w = r.text.cell_width;
            (r.score * w, std::cmp::Reverse(r.unknown * w))
        };
        if rank(&other) > rank(&self) {
            other
        } else {
            self
        }
    }
}

fn read_at(
    px: &Pixels,
    font: &Font,
    background: u32,
    width: usize,
    origin: (usize, usize),
) -> Reading {
    let cols = px.width.saturating_sub(origin.0) / width;
    let rows = px.height.saturating_sub(origin.1) / CELL_H;
    let mut cells = Vec::with_capacity(cols * rows);
    let (mut score, mut unknown) = (0, 0);
    for r in 0..rows {
        for c in 0..cols {
            let cell = read_cell(
                px,
                font,
                background,
                width,
                (origin.0 + c * width, origin.1 + r * CELL_H),
            );
            match cell.ch {
                ' ' => {}
                '\u{fffd}' => unknown += 1,
                _ => score += 1,
            }
            cells.push(cell);
        }
    }
    Reading {
        text: ScreenText {
            origin,
            cell_width: width,
            cols,
            rows,
            background: rgb_of(background),
            cells,
        },
        score,
        unknown,
    }
}

const UNKNOWN: Cell = Cell {
    ch: '\u{fffd}',
    highlighted: false,
};

/// Reads the `width`-pixel cell at (x0, y0).
fn read_cell(
    px: &Pixels,
    font: &Font,
    background: u32,
    width: usize,
    (x0, y0): (usize, usize),
) -> Cell {
    let row = |y| px.row(x0, y0 + y, width);
    let first = px.px[y0 * px.width + x0];
    let mut second = None;
    for y in 0..CELL_H {
        for &p in row(y) {
            if p == first || second == Some(p) {
                continue;
            }
            if second.is_some() {
                return UNKNOWN;
            }
            second = Some(p);
        }
    }
    let Some(second) = second else {
        return Cell {
            ch: ' ',
            highlighted: first != background,
        };
    };
    let bits_of = |ink: u32| {
        let mut bits = [0u8; CELL_H];
        for (y, line) in bits.iter_mut().enumerate() {
            for (x, &p) in row(y)[..CELL_W].iter().enumerate() {
                if p == ink {
                    *line |= 0x80 >> x;
                }
            }
        }
        bits
    };
    // A 9-dot cell's last column is its background, or repeats the 8th for box drawing.
    let ninth_fits = |code: u8, paper: u32| {
        let column = |x: usize| (0..CELL_H).map(move |y| row(y)[x]);
        width == CELL_W
            || column(CELL_W).all(|p| p == paper)
            || (LINE_GRAPHICS.contains(&code) && column(CELL_W).eq(column(CELL_W - 1)))
    };
    // The ink is the colour that is not the screen's background when one of them is; a
    // highlighted cell has neither, and then the font decides.
    let tries = if second == background {
        [(first, second), (second, first)]
    } else {
        [(second, first), (first, second)]
    };
    for (ink, paper) in tries {
        let code = font.code_of(&bits_of(ink));
        if let Some(ch) = code.filter(|&c| ninth_fits(c, paper)).and_then(cp437) {
            return Cell {
                ch,
                highlighted: paper != background,
            };
        }
    }
    UNKNOWN
}

impl ScreenText {
    pub fn cell(&self, row: usize, col: usize) -> Option<Cell> {
        (row < self.rows && col < self.cols).then(|| self.cells[row * self.cols + col])
    }

    /// The rows as text, trailing blanks removed.
    pub fn lines(&self) -> Vec<String> {
        (0..self.rows)
            .map(|r| {
                let s: String = self.cells[r * self.cols..(r + 1) * self.cols]
                    .iter()
                    .map(|c| c.ch)
                    .collect();
                s.trim_end().to_owned()
            })
            .collect()
    }

    /// All rows that hold anything, one a line.
    pub fn text(&self) -> String {
        self.lines()
            .into_iter()
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Where `needle` first appears (row, column), scanning rows top to bottom.
    pub fn find(&self, needle: &str) -> Option<(usize, usize)> {
        let width = needle.chars().count();
        self.lines().iter().enumerate().find_map(|(r, line)| {
            let chars: Vec<char> = line.chars().collect();
            (0..chars.len().saturating_sub(width) + 1)
                .find(|&c| chars[c..].iter().take(width).copied().eq(needle.chars()))
                .map(|c| (r, c))
        })
    }

    /// Whether the text `needle` is on screen and every one of its cells is highlighted
    /// (`None` when it is not on screen).
    pub fn is_highlighted(&self, needle: &str) -> Option<bool> {
        let (r, c) = self.find(needle)?;
        Some((c..c + needle.chars().count()).all(|col| {
            self.cell(r, col)
                .map(|cell| cell.highlighted)
                .unwrap_or(false)
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn font() -> Font {
        Font::debian_seavgabios().expect("Debian's seabios package (vgabios-ramfb.bin)")
    }

    /// Draws `rows` of text into a framebuffer at `origin` in `cell_w`-pixel cells (9: as a
    /// VGA draws mode 3); a row starting with '>' is drawn in inverse colours over the whole
    /// width, as GRUB draws its chosen entry.
    fn render(
        font: &Font,
        size: (usize, usize),
        origin: (usize, usize),
        cell_w: usize,
        rows: &[&str],
    ) -> Image {
        render_with(&|code| font.glyph(code), size, origin, cell_w, rows)
    }

    /// [`render`] with the glyphs `glyph` gives.
    fn render_with(
        glyph: &dyn Fn(u8) -> Bitmap,
        size: (usize, usize),
        origin: (usize, usize),
        cell_w: usize,
        rows: &[&str],
    ) -> Image {
        let (bg, fg) = ([0u8, 0, 0], [0xaa, 0xaa, 0xaa]);
        let mut img = Image {
            width: size.0,
            height: size.1,
            rgb: bg.repeat(size.0 * size.1),
        };
        for (r, row) in rows.iter().enumerate() {
            let (inverse, text) = match row.strip_prefix('>') {
                Some(t) => (true, t),
                None => (false, *row),
            };
            let (ink, paper) = if inverse { (bg, fg) } else { (fg, bg) };
            let cols = (size.0 - origin.0) / cell_w;
            for c in 0..cols {
                let code = text
                    .chars()
                    .nth(c)
                    .map(|ch| {
                        (0..=255u8)
                            .find(|&k| cp437(k) == Some(ch))
                            .expect("a CP437 character")
                    })
                    .unwrap_or(b' ');
                if !inverse && code == b' ' {
                    continue;
                }
                let g = glyph(code);
                for (y, bits) in g.iter().enumerate() {
                    for x in 0..cell_w {
                        // The 9th dot repeats the 8th for box drawing, else it is the paper.
                        let dot = if x == 8 && LINE_GRAPHICS.contains(&code) {
                            7
                        } else {
                            x
                        };
                        let on = dot < 8 && bits & (0x80 >> dot) != 0;
                        let o =
                            ((origin.1 + r * CELL_H + y) * size.0 + origin.0 + c * cell_w + x) * 3;
                        img.rgb[o..o + 3].copy_from_slice(if on { &ink } else { &paper });
                    }
                }
            }
        }
        img
    }

    #[test]
    fn the_font_is_found_in_debians_seavgabios_and_nowhere_else() {
        let f = font();
        assert_eq!(f.glyph(b'A'), ANCHOR.1);
        assert_eq!(f.lookup(&f.glyph(b'g')), Some('g'));
        assert_eq!(f.lookup(&f.glyph(0xc9)), Some('╔'));
        // A ROM without the table, and one with two copies, are refused.
        assert!(Font::from_rom(&[0u8; 8192]).is_err());
        let rom = std::fs::read("/usr/share/seabios/vgabios-ramfb.bin").unwrap();
        let start = find(&rom, &ANCHOR.1).unwrap() - 0x41 * CELL_H;
        let table = &rom[start..start + 4096];
        assert!(Font::from_rom(&[table, table].concat())
            .unwrap_err()
            .contains("2 candidate"));
    }

    #[test]
    fn a_menu_reads_back_with_its_highlighted_entry() {
        let f = font();
        let rows = [
            "  GNU GRUB  version 2.06-13+deb12u2",
            "",
            " ╔════════════════════════════════╗",
            " ║ Vireo ISO first entry          ║",
            ">║ Vireo ISO second entry        ",
            " ╚════════════════════════════════╝",
            "   Use the ↑ and ↓ keys to select which entry is highlighted.",
        ];
        // At the origin and displaced, as a text mode centred in a larger framebuffer is.
        for origin in [(0, 0), (3, 11)] {
            let img = render(&f, (640, 200), origin, CELL_W, &rows);
            let s = read_screen(&img, &f);
            assert_eq!((s.origin, s.cell_width), (origin, CELL_W));
            let lines = s.lines();
            assert_eq!(lines[0], rows[0]);
            assert_eq!(lines[2], rows[2]);
            assert_eq!(lines[6], rows[6]);
            assert_eq!(s.is_highlighted("Vireo ISO first entry"), Some(false));
            assert_eq!(s.is_highlighted("Vireo ISO second entry"), Some(true));
            assert_eq!(s.is_highlighted("no such entry"), None);
            assert_eq!(s.find("second"), Some((4, 12)));
        }
    }

    /// A GRUB menu in a box of 0xDA ┌, 0xC4 ─ (line graphics) and 0xBF ┐, 0xB3 │ (not), its
    /// first entry highlighted (a row starting with '>', see `render`).
    fn boxed_menu() -> Vec<String> {
        let bar = "─".repeat(40);
        vec![
            "  GNU GRUB  version 2.12".into(),
            String::new(),
            format!(" ┌{bar}┐"),
            format!("> │Vireo ISO first entry{:19}│", ""),
            format!(" │Vireo ISO second entry{:18}│", ""),
            format!(" └{bar}┘"),
            "  Use the ↑ and ↓ keys to select which entry is highlighted.".into(),
        ]
    }

    #[test]
    fn a_vga_9_dot_screen_reads_as_its_8_dot_twin_does() {
        let f = font();
        let rows = boxed_menu();
        let rows: Vec<&str> = rows.iter().map(String::as_str).collect();
        let want: Vec<&str> = rows.iter().map(|r| r.trim_start_matches('>')).collect();
        // A VGA's mode 3 (720x400), the same in 8-dot cells (640x400), and a 9-dot screen at an
        // offset in a larger picture.
        for (size, origin, cell_w) in [
            ((720, 400), (0, 0), 9),
            ((640, 400), (0, 0), 8),
            ((740, 130), (5, 7), 9),
        ] {
            let s = read_screen(&render(&f, size, origin, cell_w, &rows), &f);
            let what = format!("{cell_w}-dot cells at {origin:?}");
            assert_eq!((s.origin, s.cell_width), (origin, cell_w), "{what}");
            assert_eq!(s.cols, (size.0 - origin.0) / cell_w, "{what}");
            assert_eq!(s.lines()[..want.len()], want, "{what}");
            assert_eq!(s.is_highlighted("GNU GRUB"), Some(false), "{what}");
            assert_eq!(
                s.is_highlighted("Vireo ISO first entry"),
                Some(true),
                "{what}"
            );
            assert_eq!(
                s.is_highlighted("Vireo ISO second entry"),
                Some(false),
                "{what}"
            );
            // The highlight spans the row, box and blanks included.
            let last = s.cols - 1;
            for col in [0, 1, last] {
                assert_eq!(s.cell(3, col).map(|c| c.highlighted), Some(true), "{what}");
            }
        }
    }

    #[test]
    fn a_9_dot_screen_of_little_but_box_lines_reads_at_9() {
        // At 8 pixels its lines read as more cells than at 9 (the title does not read): the
        // readings are ranked by pixels.
        let f = font();
        let bar = "─".repeat(78);
        let rows = [
            " GNU GRUB".to_string(),
            format!("┌{bar}┐"),
            format!("└{bar}┘"),
        ];
        let rows: Vec<&str> = rows.iter().map(String::as_str).collect();
        let s = read_screen(&render(&f, (720, 400), (0, 0), 9, &rows), &f);
        assert_eq!(s.cell_width, 9);
        assert_eq!(s.lines()[..3], rows);
    }

    #[test]
    fn a_9th_dot_no_vga_draws_is_no_match() {
        let f = font();
        let mut rows = boxed_menu();
        rows.push("▒▒".into());
        let rows: Vec<&str> = rows.iter().map(String::as_str).collect();
        let mut img = render(&f, (720, 400), (0, 0), 9, &rows);
        let (ink, paper) = ([0xaa, 0xaa, 0xaa], [0, 0, 0]);
        // Paints the 9th dot of the (plain) cell at row, col where `on` says, as ink.
        let mut ninth = |row: usize, col: usize, on: &dyn Fn(usize) -> bool| {
            for y in 0..CELL_H {
                let o = ((row * CELL_H + y) * 720 + col * 9 + 8) * 3;
                img.rgb[o..o + 3].copy_from_slice(if on(y) { &ink } else { &paper });
            }
        };
        // 'G' with an inked 9th column; ▒ (0xB1, no line graphics) with its 8th dot repeated.
        ninth(0, 2, &|_| true);
        let shade = f.glyph(0xb1);
        assert!(shade.iter().any(|b| b & 1 != 0));
        ninth(7, 1, &|y| shade[y] & 1 != 0);
        // ─ (0xC4) with a blank 9th dot, as a VGA draws it with line graphics off: it reads.
        ninth(2, 5, &|_| false);
        let s = read_screen(&img, &f);
        assert_eq!(s.cell_width, 9);
        assert_eq!(s.lines()[0], "  \u{fffd}NU GRUB  version 2.12");
        assert_eq!(s.lines()[2], rows[2]);
        assert_eq!(s.lines()[7], "▒\u{fffd}");
    }

    /// A console font's variant of SeaVGABIOS's glyph (one pixel to the right), standing in
    /// for the glyphs Linux draws differently (Debian bookworm's `0` and `M` are 20 and 19
    /// pixels from SeaVGABIOS's, its `M` only 4 from SeaVGABIOS's `N`).
    fn variant(f: &Font, code: u8) -> Bitmap {
        f.glyph(code).map(|line| line >> 1)
    }

    fn distance(a: &Bitmap, b: &Bitmap) -> u32 {
        a.iter().zip(b).map(|(x, y)| (x ^ y).count_ones()).sum()
    }

    /// A kernel-like image: SeaVGABIOS's table with `changes` made, between other bytes.
    fn kernel_image(f: &Font, changes: &[(u8, Bitmap)]) -> Vec<u8> {
        let mut image = ELF_MAGIC.to_vec();
        image.extend((0..5000u32).map(|i| (i * 7 % 253) as u8));
        for code in 0..=255u8 {
            let bits = changes
                .iter()
                .find(|(c, _)| *c == code)
                .map_or(f.glyph(code), |(_, b)| *b);
            image.extend_from_slice(&bits);
        }
        image.extend_from_slice(&[0x55; 3000]);
        image
    }

    #[test]
    fn the_linux_consoles_glyphs_read_once_its_font_is_added() {
        let f = font();
        let changes = [(b'0', variant(&f, b'0')), (b'M', variant(&f, b'M'))];
        for (_, bits) in &changes {
            assert_eq!(
                f.lookup(bits),
                None,
                "a variant that is another glyph tests nothing"
            );
        }
        let linux = |code: u8| {
            changes
                .iter()
                .find(|(c, _)| *c == code)
                .map_or(f.glyph(code), |(_, b)| *b)
        };
        let rows = ["[   10.000] MODE 0 NOW", "VIREO-TTY0-LINE"];
        let img = render_with(&linux, (320, 48), (0, 0), CELL_W, &rows);
        // SeaVGABIOS's font alone reads neither, nor guesses.
        let plain = read_screen(&img, &f).lines();
        assert_eq!(
            plain[0],
            "[   1\u{fffd}.\u{fffd}\u{fffd}\u{fffd}] \u{fffd}ODE \u{fffd} NOW"
        );
        let both = f
            .clone()
            .with_linux_font(&kernel_image(&f, &changes))
            .unwrap();
        let s = read_screen(&img, &both);
        assert_eq!(s.lines()[..2], rows);
        // SeaVGABIOS's own glyphs still read, the confusable ones apart.
        let bios_rows = ["O0Q l1I 8B MN Z2 :; -\u{2500}", "MODE 0"];
        let bios = read_screen(&render(&f, (320, 48), (0, 0), CELL_W, &bios_rows), &both);
        assert_eq!(bios.lines()[..2], bios_rows);
    }

    #[test]
    fn a_glyph_off_by_a_few_pixels_is_no_match() {
        // Matching stays exact: the pixels that tell I from l (1) and : from ; (2) are fewer
        // than a fuzzy match would forgive (Linux's M is 4 from SeaVGABIOS's N).
        let f = font();
        for (a, b, d) in [
            (b'I', b'l', 1),
            (b':', b';', 2),
            (b'O', b'Q', 8),
            (b'8', b'B', 16),
        ] {
            assert_eq!(distance(&f.glyph(a), &f.glyph(b)), d);
        }
        // A g with three pixels flipped, and an x drawn as a cell far from every glyph, among
        // text that reads.
        let mut g = f.glyph(b'g');
        g[5] ^= 0x81;
        g[9] ^= 0x01;
        let far: Bitmap = [
            0x5a, 0xc3, 0x3c, 0xa5, 0x0f, 0x96, 0x69, 0xf0, 0x5a, 0xc3, 0x3c, 0xa5, 0x0f, 0x96,
            0x69, 0xf0,
        ];
        assert!((0..=255).all(|c| distance(&far, &f.glyph(c)) >= 30));
        let off = |code: u8| match code {
            b'g' => g,
            b'x' => far,
            _ => f.glyph(code),
        };
        let row = "a g, an x and plenty of other text";
        let s = read_screen(&render_with(&off, (320, 16), (0, 0), CELL_W, &[row]), &f);
        assert_eq!(s.origin, (0, 0));
        assert_eq!(s.lines()[0], row.replace(['g', 'x'], "\u{fffd}"));
    }

    #[test]
    fn a_linux_font_that_makes_a_glyph_read_two_ways_is_refused() {
        let f = font();
        // Its l is SeaVGABIOS's I.
        let err = f
            .clone()
            .with_linux_font(&kernel_image(&f, &[(b'l', f.glyph(b'I'))]))
            .unwrap_err();
        assert!(err.contains("'l'") && err.contains("'I'"), "{err}");
        // An image without the table, and one with two, are refused too.
        assert!(f.clone().with_linux_font(&[0; 8192]).is_err());
        let image = kernel_image(&f, &[]);
        let twice = [&image[..], &image[..]].concat();
        assert!(f
            .clone()
            .with_linux_font(&twice)
            .unwrap_err()
            .contains("2 candidate"));
    }

    #[test]
    fn a_kernel_is_read_as_vmlinux_or_as_a_bzimage_with_an_xz_payload() {
        use std::io::Write;
        let f = font();
        let dir = std::env::temp_dir().join(format!("vireo-screen-kernel-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let m = variant(&f, b'M');
        let vmlinux = kernel_image(&f, &[(b'M', m)]);
        let elf = dir.join("vmlinux");
        std::fs::write(&elf, &vmlinux).unwrap();
        let mut xz = std::process::Command::new("xz")
            .args(["-c", "-0"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("xz (xz-utils)");
        xz.stdin.take().unwrap().write_all(&vmlinux).unwrap();
        let payload = xz.wait_with_output().unwrap().stdout;
        // A setup header before the payload, a trailer after it.
        let bzimage = [&[0x4d, 0x5a, 1, 2, 3][..], &payload, &[9; 64]].concat();
        let bz = dir.join("vmlinuz");
        std::fs::write(&bz, bzimage).unwrap();
        for kernel in [&elf, &bz] {
            let both = f.clone().with_linux_console(kernel).unwrap();
            assert_eq!(both.lookup(&m), Some('M'), "{}", kernel.display());
            assert_eq!(both.lookup(&f.glyph(b'N')), Some('N'));
        }
        let junk = dir.join("junk");
        std::fs::write(&junk, [0u8; 100]).unwrap();
        assert!(matches!(
            f.clone().with_linux_console(&junk),
            Err(ScreenError::BadKernel { .. })
        ));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_blank_screen_reads_as_nothing_and_noise_as_unknown() {
        let f = font();
        let img = render(&f, (64, 32), (0, 0), CELL_W, &[]);
        let s = read_screen(&img, &f);
        assert_eq!(s.text(), "");
        let mut noisy = img.clone();
        for (i, b) in noisy.rgb.iter_mut().enumerate().take(8 * 3 * 16 * 8) {
            *b = (i * 37 % 251) as u8;
        }
        assert!(read_screen(&noisy, &f).text().contains('\u{fffd}'));
    }

    #[test]
    fn ppm_and_png_load_alike_and_the_extension_decides() {
        let dir = std::env::temp_dir().join(format!("vireo-screen-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let img = Image {
            width: 3,
            height: 2,
            rgb: (0..18).collect(),
        };
        let ppm = dir.join("s.ppm");
        let mut bytes = b"P6\n# comment\n3 2\n255\n".to_vec();
        bytes.extend_from_slice(&img.rgb);
        std::fs::write(&ppm, &bytes).unwrap();
        assert_eq!(Image::load(&ppm).unwrap(), img);
        let png_path = dir.join("s.png");
        {
            let file = std::fs::File::create(&png_path).unwrap();
            let mut enc = png::Encoder::new(file, 3, 2);
            enc.set_color(png::ColorType::Rgb);
            enc.set_depth(png::BitDepth::Eight);
            enc.write_header()
                .unwrap()
                .write_image_data(&img.rgb)
                .unwrap();
        }
        assert_eq!(Image::load(&png_path).unwrap(), img);
        // The same PPM bytes under another name are not read as PPM.
        let other = dir.join("s.img");
        std::fs::write(&other, &bytes).unwrap();
        assert!(matches!(
            Image::load(&other),
            Err(ScreenError::BadImage { .. })
        ));
        std::fs::write(&ppm, b"P6\n3 2\n255\n\0\0").unwrap();
        assert!(Image::load(&ppm).is_err());
        let _ = std::fs::remove_dir_all(dir);
    }
}
