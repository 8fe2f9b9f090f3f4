//! CopyRect (1): the client copies a rectangle it already has, and scroll detection to find
//! when that pays.

use super::put_header;
use crate::vnc::proto::{encoding, Rect};

/// Appends a CopyRect rectangle: `dst` gets the pixels at (`src_x`, `src_y`).
pub fn encode(dst: Rect, src_x: u16, src_y: u16, out: &mut Vec<u8>) {
    put_header(out, dst, encoding::COPY_RECT);
    out.extend_from_slice(&src_x.to_be_bytes());
    out.extend_from_slice(&src_y.to_be_bytes());
}

/// A vertical scroll found between two frames: rows `dst_y..dst_y+h` of the new frame equal
/// rows `src_y..src_y+h` of the old one, over the full width.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Scroll {
    pub src_y: usize,
    pub dst_y: usize,
    pub h: usize,
}

fn row_hash(row: &[u32]) -> u64 {
    // FNV-1a over 32-bit words: quick, and a collision only costs a memcmp below.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &p in row {
        h ^= u64::from(p);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Looks for the vertical shift that explains most of the changed rows (a console or a
/// window scrolling). Only shifts of at most `max_shift` rows are tried, and a result must
/// cover at least `min_rows` rows of non-uniform content to be worth a CopyRect.
pub fn find_vertical_scroll(
    old: &[u32],
    new: &[u32],
    width: usize,
    height: usize,
    max_shift: usize,
    min_rows: usize,
) -> Option<Scroll> {
    if width == 0 || height < min_rows || old.len() < width * height || new.len() < width * height {
        return None;
    }
    let old_h: Vec<u64> = old.chunks_exact(width).take(height).map(row_hash).collect();
    let new_h: Vec<u64> = new.chunks_exact(width).take(height).map(row_hash).collect();
    // Uniform rows (blank lines) match anything and prove nothing.
    let uniform = |row: &[u32]| row.iter().all(|&p| p == row[0]);
    let mut best: Option<Scroll> = None;
    for shift in 1..=max_shift.min(height - 1) {
        for dir in [1isize, -1] {
            // new[y] == old[y + shift*dir]
            let mut y = 0usize;
            while y < height {
                let sy = y as isize + shift as isize * dir;
                if sy < 0 || sy as usize >= height || new_h[y] != old_h[sy as usize] {
                    y += 1;
                    continue;
                }
                let start = y;
                let mut informative = 0;
                while y < height {
                    let sy = y as isize + shift as isize * dir;
                    if sy < 0 || sy as usize >= height || new_h[y] != old_h[sy as usize] {
                        break;
                    }
                    let nrow = &new[y * width..(y + 1) * width];
                    if nrow != &old[sy as usize * width..(sy as usize + 1) * width] {
                        break;
                    }
                    if !uniform(nrow) {
                        informative += 1;
                    }
                    y += 1;
                }
                let len = y - start;
                let src = (start as isize + shift as isize * dir) as usize;
                if informative >= min_rows && best.is_none_or(|b| len > b.h) && src != start {
                    best = Some(Scroll {
                        src_y: src,
                        dst_y: start,
                        h: len,
                    });
                }
            }
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_console_scroll() {
        let (w, h) = (32, 64);
        let old: Vec<u32> = (0..w * h).map(|i| (i / w * 7 + i % 5) as u32).collect();
        let mut new = vec![0u32; w * h];
        // Scroll up by 16 rows: new[y] = old[y + 16].
        new[..w * (h - 16)].copy_from_slice(&old[16 * w..]);
        let s = find_vertical_scroll(&old, &new, w, h, 64, 8).unwrap();
        assert_eq!(
            s,
            Scroll {
                src_y: 16,
                dst_y: 0,
                h: 48
            }
        );
        assert_eq!(find_vertical_scroll(&old, &old.clone(), w, h, 64, 8), None);
    }
}
