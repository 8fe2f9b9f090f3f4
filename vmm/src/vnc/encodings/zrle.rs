//! ZRLE (16): 64x64 tiles, each solid, packed-palette, RLE, palette-RLE or raw, whichever is
//! smallest, all through one zlib stream that lives as long as the connection.

use super::deflater::Deflater;
use super::palette::Palette;
use super::put_header;
use crate::vnc::dirty::Frame;
use crate::vnc::pixel::PixelWriter;
use crate::vnc::proto::{encoding, Rect};

const TILE: usize = 64;

/// Per-connection ZRLE state.
pub struct ZrleEncoder {
    z: Deflater,
    raw: Vec<u8>,
    tile: Vec<u32>,
    palette: Palette,
}

impl ZrleEncoder {
    pub fn new(level: u32) -> ZrleEncoder {
        ZrleEncoder {
            z: Deflater::new(level),
            raw: Vec::with_capacity(64 * 1024),
            tile: Vec::with_capacity(TILE * TILE),
            palette: Palette::new(127),
        }
    }

    /// Appends one ZRLE rectangle (header, length, zlib data).
    pub fn encode(&mut self, pw: &PixelWriter, fb: &Frame, r: Rect, out: &mut Vec<u8>) {
        self.raw.clear();
        let (x0, y0) = (usize::from(r.x), usize::from(r.y));
        let (x1, y1) = (x0 + usize::from(r.w), y0 + usize::from(r.h));
        let mut raw_tiles = 0usize;
        let mut ty = y0;
        while ty < y1 {
            let th = TILE.min(y1 - ty);
            let mut tx = x0;
            while tx < x1 {
                let tw = TILE.min(x1 - tx);
                self.tile.clear();
                for y in ty..ty + th {
                    self.tile.extend_from_slice(fb.row(tx, y, tw));
                }
                let before = self.raw.len();
                if encode_tile(pw, &self.tile, tw, th, &mut self.palette, &mut self.raw) == 0 {
                    raw_tiles += self.raw.len() - before;
                }
                tx += tw;
            }
            ty += th;
        }
        put_header(out, r, encoding::ZRLE);
        let len_at = out.len();
        out.extend_from_slice(&[0; 4]);
        // Mostly raw tiles: too many colours and too few runs, perhaps beyond zlib too.
        let noisy = raw_tiles * 10 >= self.raw.len() * 9;
        self.z.compress(&self.raw, out, noisy);
        let len = (out.len() - len_at - 4) as u32;
        out[len_at..len_at + 4].copy_from_slice(&len.to_be_bytes());
    }
}

fn run_len_bytes(len: usize) -> usize {
    (len - 1) / 255 + 1
}

fn put_run_len(out: &mut Vec<u8>, len: usize) {
    let mut rest = len - 1;
    while rest >= 255 {
        out.push(255);
        rest -= 255;
    }
    out.push(rest as u8);
}

/// Encodes one tile's pixels (row-major, `w` x `h`) into `out`; returns the subencoding.
pub(crate) fn encode_tile(
    pw: &PixelWriter,
    px: &[u32],
    w: usize,
    h: usize,
    pal: &mut Palette,
    out: &mut Vec<u8>,
) -> u8 {
    let cpx = pw.bytes_per_cpixel();
    let n = w * h;
    pal.reset();
    let mut overflow = false;
    let mut runs = 0usize;
    let mut run_bytes = 0usize;
    let mut singles = 0usize;
    let mut i = 0;
    while i < n {
        let p = px[i];
        let mut j = i + 1;
        while j < n && px[j] == p {
            j += 1;
        }
        let len = j - i;
        runs += 1;
        run_bytes += run_len_bytes(len);
        if len == 1 {
            singles += 1;
        }
        if !overflow && pal.insert(p).is_none() {
            overflow = true;
        }
        i = j;
    }
    let colours = pal.colours.len();
    if !overflow && colours == 1 {
        out.push(1);
        pw.put_cpixel(out, px[0]);
        return 1;
    }
    let raw_size = n * cpx;
    let plain_rle = runs * cpx + run_bytes;
    let mut best = (raw_size, 0u8);
    if plain_rle < best.0 {
        best = (plain_rle, 128);
    }
    if !overflow {
        let pal_rle = colours * cpx + runs + (run_bytes - singles);
        if pal_rle < best.0 {
            best = (pal_rle, 128 + colours as u8);
        }
        if colours <= 16 {
            let bits = bits_for(colours);
            let packed = colours * cpx + h * (w * bits).div_ceil(8);
            if packed < best.0 {
                best = (packed, colours as u8);
            }
        }
    }
    match best.1 {
        0 => {
            out.push(0);
            pw.put_cpixels(out, px);
        }
        128 => {
            out.push(128);
            let mut i = 0;
            while i < n {
                let p = px[i];
                let mut j = i + 1;
                while j < n && px[j] == p {
                    j += 1;
                }
                pw.put_cpixel(out, p);
                put_run_len(out, j - i);
                i = j;
            }
        }
        sub if sub > 128 => {
            out.push(sub);
            for &c in &pal.colours {
                pw.put_cpixel(out, c);
            }
            let mut i = 0;
            while i < n {
                let p = px[i];
                let mut j = i + 1;
                while j < n && px[j] == p {
                    j += 1;
                }
                let idx = pal.index(p) as u8;
                if j - i == 1 {
                    out.push(idx);
                } else {
                    out.push(idx | 0x80);
                    put_run_len(out, j - i);
                }
                i = j;
            }
        }
        sub => {
            out.push(sub);
            for &c in &pal.colours {
                pw.put_cpixel(out, c);
            }
            let bits = bits_for(colours);
            for row in px.chunks_exact(w) {
                let mut acc = 0u8;
                let mut used = 0;
                for &p in row {
                    acc = (acc << bits) | pal.index(p) as u8;
                    used += bits;
                    if used == 8 {
                        out.push(acc);
                        acc = 0;
                        used = 0;
                    }
                }
                if used > 0 {
                    out.push(acc << (8 - used));
                }
            }
        }
    }
    best.1
}

fn bits_for(colours: usize) -> usize {
    match colours {
        0..=2 => 1,
        3..=4 => 2,
        _ => 4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vnc::pixel::PixelFormat;

    /// Decodes one tile (uncompressed form) back to native pixels, for 3-byte CPIXELs of
    /// the native format.
    fn decode_tile(data: &[u8], w: usize, h: usize) -> (Vec<u32>, usize) {
        let cp = |b: &[u8]| u32::from_le_bytes([b[0], b[1], b[2], 0]);
        let n = w * h;
        let sub = data[0];
        let mut at = 1;
        let mut out = Vec::new();
        let read_len = |at: &mut usize| {
            let mut len = 1;
            loop {
                let b = data[*at];
                *at += 1;
                len += b as usize;
                if b != 255 {
                    return len;
                }
            }
        };
        match sub {
            0 => {
                for _ in 0..n {
                    out.push(cp(&data[at..]));
                    at += 3;
                }
            }
            1 => {
                out = vec![cp(&data[1..]); n];
                at = 4;
            }
            2..=16 => {
                let pal: Vec<u32> = (0..sub as usize).map(|i| cp(&data[1 + i * 3..])).collect();
                at += sub as usize * 3;
                let bits = bits_for(sub as usize);
                for _ in 0..h {
                    let mut bitpos = 0;
                    for _ in 0..w {
                        let byte = data[at + bitpos / 8];
                        let idx = (byte >> (8 - bits - bitpos % 8)) & ((1 << bits) - 1);
                        out.push(pal[idx as usize]);
                        bitpos += bits;
                    }
                    at += (w * bits).div_ceil(8);
                }
            }
            128 => {
                while out.len() < n {
                    let p = cp(&data[at..]);
                    at += 3;
                    let len = read_len(&mut at);
                    out.extend(std::iter::repeat_n(p, len));
                }
            }
            _ => {
                let ps = sub as usize - 128;
                let pal: Vec<u32> = (0..ps).map(|i| cp(&data[1 + i * 3..])).collect();
                at += ps * 3;
                while out.len() < n {
                    let b = data[at];
                    at += 1;
                    let len = if b & 0x80 != 0 { read_len(&mut at) } else { 1 };
                    out.extend(std::iter::repeat_n(pal[(b & 0x7f) as usize], len));
                }
            }
        }
        (out, at)
    }

    #[test]
    fn every_subencoding_round_trips() {
        let pw = PixelWriter::new(PixelFormat::NATIVE);
        let mut pal = Palette::new(127);
        let (w, h) = (37, 23);
        let cases: Vec<(Vec<u32>, Option<u8>)> = vec![
            (vec![0x123456; w * h], Some(1)),
            (
                (0..w * h)
                    .map(|i| if (i * 7) % 11 < 5 { 0 } else { 0xffffff })
                    .collect(),
                Some(2),
            ),
            (
                (0..w * h)
                    .map(|i| (i as u32).wrapping_mul(2_654_435_761) & 0xffffff)
                    .collect(),
                Some(0),
            ),
            (
                (0..w * h).map(|i| ((i / 40) as u32) * 0x010101).collect(),
                None,
            ),
            (
                (0..w * h)
                    .map(|i| ((i / 3) % 20) as u32 * 0x0a0a0a)
                    .collect(),
                None,
            ),
        ];
        for (px, want_sub) in cases {
            let mut out = Vec::new();
            encode_tile(&pw, &px, w, h, &mut pal, &mut out);
            if let Some(s) = want_sub {
                assert_eq!(out[0], s);
            }
            let (back, used) = decode_tile(&out, w, h);
            assert_eq!(used, out.len(), "subencoding {}", out[0]);
            assert_eq!(back, px, "subencoding {}", out[0]);
        }
    }
}
