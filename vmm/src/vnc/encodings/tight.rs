//! Tight (7), lossless only: each 64x64 chunk goes out as a fill, a two-colour bitmap, an
//! indexed palette or full colour, the last three through their own persistent zlib streams
//! (0 full colour, 1 mono, 2 indexed). No JPEG: the guest's screen must arrive exactly.

use super::deflater::Deflater;
use super::palette::Palette;
use super::put_header;
use crate::vnc::dirty::Frame;
use crate::vnc::pixel::PixelWriter;
use crate::vnc::proto::{encoding, Rect};

/// Chunk size: wide strips keep the rectangle count (and the client's per-rectangle work)
/// low, while staying small enough that a palette usually fits.
const CHUNK_W: usize = 256;
const CHUNK_PIXELS: usize = 16 * 1024;
/// Below this many bytes Tight sends data without zlib (protocol rule).
const MIN_COMPRESS: usize = 12;
/// Tight's widest rectangle.
const MAX_WIDTH: usize = 2048;

const STREAM_FULL: u8 = 0;
const STREAM_MONO: u8 = 1;
const STREAM_INDEXED: u8 = 2;

/// Per-connection Tight state.
pub struct TightEncoder {
    streams: [Deflater; 3],
    chunk_w: usize,
    chunk_pixels: usize,
    chunk: Vec<u32>,
    data: Vec<u8>,
    palette: Palette,
}

impl TightEncoder {
    pub fn new(level: u32) -> TightEncoder {
        let mk = || Deflater::new(level);
        TightEncoder {
            streams: [mk(), mk(), mk()],
            chunk_w: CHUNK_W,
            chunk_pixels: CHUNK_PIXELS,
            chunk: Vec::with_capacity(CHUNK_PIXELS),
            data: Vec::with_capacity(CHUNK_PIXELS * 4),
            palette: Palette::new(256),
        }
    }

    /// Appends Tight rectangles covering `r`; returns how many.
    ///
    /// Neighbouring full-colour chunks of a band that zlib cannot shrink go out as one
    /// rectangle (up to Tight's 2048-pixel width): stored, they gain nothing from being
    /// apart, and each rectangle costs a header and the client's per-rectangle work.
    pub fn encode(&mut self, pw: &PixelWriter, fb: &Frame, r: Rect, out: &mut Vec<u8>) -> usize {
        let (x0, y0) = (usize::from(r.x), usize::from(r.y));
        let (x1, y1) = (x0 + usize::from(r.w), y0 + usize::from(r.h));
        let mut count = 0;
        let mut cy = y0;
        let max_w = self.chunk_w.min(usize::from(r.w)).max(1);
        let max_h = (self.chunk_pixels / max_w).max(1);
        while cy < y1 {
            let ch = max_h.min(y1 - cy);
            let mut cx = x0;
            // Full-colour chunks waiting to go out together: first column and width.
            let mut run: Option<(usize, usize)> = None;
            while cx < x1 {
                let cw = max_w.min(x1 - cx);
                self.chunk.clear();
                for y in cy..cy + ch {
                    self.chunk.extend_from_slice(fb.row(cx, y, cw));
                }
                let rect = Rect {
                    x: cx as u16,
                    y: cy as u16,
                    w: cw as u16,
                    h: ch as u16,
                };
                if self.encode_chunk(pw, rect, out) {
                    count += 1;
                } else if !self.streams[usize::from(STREAM_FULL)].storing() {
                    // Compressible full colour (a photo) deflates better in narrow chunks,
                    // whose rows lie closer together.
                    self.full_colour(pw, fb, (cx, cy, cw, ch), out);
                    count += 1;
                } else {
                    run = match run {
                        Some((rx, rw)) if rw + cw <= MAX_WIDTH => Some((rx, rw + cw)),
                        Some((rx, rw)) => {
                            self.full_colour(pw, fb, (rx, cy, rw, ch), out);
                            count += 1;
                            Some((cx, cw))
                        }
                        None => Some((cx, cw)),
                    };
                }
                cx += cw;
            }
            if let Some((rx, rw)) = run {
                self.full_colour(pw, fb, (rx, cy, rw, ch), out);
                count += 1;
            }
            cy += ch;
        }
        count
    }

    /// Appends a full-colour rectangle (`x`, `y`, `w`, `h`) read from `fb`.
    fn full_colour(
        &mut self,
        pw: &PixelWriter,
        fb: &Frame,
        (x, y, w, h): (usize, usize, usize, usize),
        out: &mut Vec<u8>,
    ) {
        let r = Rect {
            x: x as u16,
            y: y as u16,
            w: w as u16,
            h: h as u16,
        };
        put_header(out, r, encoding::TIGHT);
        out.push(STREAM_FULL << 4);
        self.data.clear();
        for row in y..y + h {
            pw.put_tpixels(&mut self.data, fb.row(x, row, w));
        }
        self.put_data(STREAM_FULL, out);
    }

    /// Appends the chunk in `self.chunk` as a fill, mono or indexed rectangle; false (and
    /// nothing appended) when it needs full colour.
    fn encode_chunk(&mut self, pw: &PixelWriter, r: Rect, out: &mut Vec<u8>) -> bool {
        let (w, h) = (usize::from(r.w), usize::from(r.h));
        let n = w * h;
        let tpx = pw.bytes_per_tpixel();
        self.palette.reset();
        let mut overflow = false;
        let mut last = None;
        for &p in &self.chunk {
            if last == Some(p) {
                continue;
            }
            last = Some(p);
            if self.palette.insert(p).is_none() {
                overflow = true;
                break;
            }
        }
        let colours = self.palette.colours.len();
        if overflow || (colours > 2 && colours * tpx + n >= n * tpx) {
            return false;
        }
        put_header(out, r, encoding::TIGHT);
        self.data.clear();
        if colours == 1 {
            out.push(0x80);
            pw.put_tpixel(out, self.chunk[0]);
            return true;
        }
        if colours == 2 {
            out.push(0x40 | (STREAM_MONO << 4));
            out.push(1); // palette filter
            out.push(1); // two colours
            for &c in &self.palette.colours {
                pw.put_tpixel(out, c);
            }
            let first = self.palette.colours[0];
            for row in self.chunk.chunks_exact(w) {
                let mut acc = 0u8;
                let mut used = 0;
                for &p in row {
                    acc = (acc << 1) | u8::from(p != first);
                    used += 1;
                    if used == 8 {
                        self.data.push(acc);
                        acc = 0;
                        used = 0;
                    }
                }
                if used > 0 {
                    self.data.push(acc << (8 - used));
                }
            }
            self.put_data(STREAM_MONO, out);
            return true;
        }
        out.push(0x40 | (STREAM_INDEXED << 4));
        out.push(1);
        out.push((colours - 1) as u8);
        for &c in &self.palette.colours {
            pw.put_tpixel(out, c);
        }
        for &p in &self.chunk {
            self.data.push(self.palette.index(p) as u8);
        }
        self.put_data(STREAM_INDEXED, out);
        true
    }

    fn put_data(&mut self, stream: u8, out: &mut Vec<u8>) {
        if self.data.len() < MIN_COMPRESS {
            out.extend_from_slice(&self.data);
            return;
        }
        // Compress into the tail of `out`, then insert the compact length before it.
        let len_at = out.len();
        out.extend_from_slice(&[0; 3]);
        let data_at = out.len();
        // Only full-colour chunks (photos, video, noise) can be beyond zlib's reach.
        self.streams[usize::from(stream)].compress(&self.data, out, stream == STREAM_FULL);
        let len = out.len() - data_at;
        let mut prefix = [0u8; 3];
        let used = compact_len(len, &mut prefix);
        out[len_at..len_at + used].copy_from_slice(&prefix[..used]);
        if used < 3 {
            out.drain(len_at + used..data_at);
        }
    }
}

/// Tight's compact length: 7, 7 and 8 bits in one to three bytes.
fn compact_len(len: usize, out: &mut [u8; 3]) -> usize {
    out[0] = (len & 0x7f) as u8;
    if len < 0x80 {
        return 1;
    }
    out[0] |= 0x80;
    out[1] = ((len >> 7) & 0x7f) as u8;
    if len < 0x4000 {
        return 2;
    }
    out[1] |= 0x80;
    out[2] = ((len >> 14) & 0xff) as u8;
    3
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_lengths() {
        let mut b = [0; 3];
        assert_eq!(compact_len(5, &mut b), 1);
        assert_eq!(b[0], 5);
        assert_eq!(compact_len(10000, &mut b), 2);
        assert_eq!(&b[..2], &[0x90, 0x4e]);
        assert_eq!(compact_len(100_000, &mut b), 3);
        assert_eq!(b, [0xa0, 0x8d, 0x06]);
    }
}
