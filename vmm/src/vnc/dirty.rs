//! Change tracking: a shadow copy of the framebuffer compared in 16x16 tiles, and per-client
//! maps of tiles still to send, merged into rectangles.

use super::proto::Rect;
use super::FramebufferSource;

/// Tile edge in pixels.
pub const TILE: usize = 16;

/// A read-only view of pixels, row-major.
#[derive(Clone, Copy)]
pub struct Frame<'a> {
    pub pixels: &'a [u32],
    pub width: usize,
    pub height: usize,
}

impl<'a> Frame<'a> {
    /// Row `y`, columns `x..x + w` (caller keeps them inside the frame).
    #[inline]
    pub fn row(&self, x: usize, y: usize, w: usize) -> &'a [u32] {
        let start = y * self.width + x;
        &self.pixels[start..start + w]
    }
}

/// One bit per tile.
#[derive(Clone, Debug, Default)]
pub struct TileMap {
    pub tiles_x: usize,
    pub tiles_y: usize,
    bits: Vec<bool>,
    count: usize,
}

impl TileMap {
    pub fn new(width: usize, height: usize) -> TileMap {
        let tiles_x = width.div_ceil(TILE);
        let tiles_y = height.div_ceil(TILE);
        TileMap {
            tiles_x,
            tiles_y,
            bits: vec![false; tiles_x * tiles_y],
            count: 0,
        }
    }

    pub fn any(&self) -> bool {
        self.count > 0
    }

    pub fn count(&self) -> usize {
        self.count
    }

    #[inline]
    pub fn set(&mut self, tx: usize, ty: usize) {
        let i = ty * self.tiles_x + tx;
        if let Some(b) = self.bits.get_mut(i) {
            if !*b {
                *b = true;
                self.count += 1;
            }
        }
    }

    pub fn get(&self, tx: usize, ty: usize) -> bool {
        self.bits
            .get(ty * self.tiles_x + tx)
            .copied()
            .unwrap_or(false)
    }

    /// Marks every tile touching the pixel rectangle (clipped to the map).
    pub fn mark_rect(&mut self, r: Rect) {
        if r.w == 0 || r.h == 0 {
            return;
        }
        let tx0 = usize::from(r.x) / TILE;
        let ty0 = usize::from(r.y) / TILE;
        let tx1 = ((usize::from(r.x) + usize::from(r.w)).div_ceil(TILE)).min(self.tiles_x);
        let ty1 = ((usize::from(r.y) + usize::from(r.h)).div_ceil(TILE)).min(self.tiles_y);
        for ty in ty0..ty1 {
            for tx in tx0..tx1 {
                self.set(tx, ty);
            }
        }
    }

    pub fn mark_all(&mut self) {
        self.bits.iter_mut().for_each(|b| *b = true);
        self.count = self.bits.len();
    }

    pub fn clear(&mut self) {
        self.bits.iter_mut().for_each(|b| *b = false);
        self.count = 0;
    }

    /// Adds every tile set in `other` (same geometry).
    pub fn merge(&mut self, other: &TileMap) {
        if other.count == 0 {
            return;
        }
        for (i, &b) in other.bits.iter().enumerate() {
            if b && !self.bits[i] {
                self.bits[i] = true;
                self.count += 1;
            }
        }
    }

    /// Takes all set tiles as rectangles in pixels (clipped to `width` x `height`): runs of
    /// tiles in a tile row, grown downwards while the rows below have the same run.
    pub fn take_rects(&mut self, width: usize, height: usize) -> Vec<Rect> {
        let mut out = Vec::new();
        if self.count == 0 {
            return out;
        }
        for ty in 0..self.tiles_y {
            let mut tx = 0;
            while tx < self.tiles_x {
                if !self.bits[ty * self.tiles_x + tx] {
                    tx += 1;
                    continue;
                }
                let start = tx;
                while tx < self.tiles_x && self.bits[ty * self.tiles_x + tx] {
                    tx += 1;
                }
                let end = tx;
                let mut rows = 1;
                'grow: while ty + rows < self.tiles_y {
                    let base = (ty + rows) * self.tiles_x;
                    if !self.bits[base + start..base + end].iter().all(|&b| b) {
                        break 'grow;
                    }
                    rows += 1;
                }
                for r in 0..rows {
                    let base = (ty + r) * self.tiles_x;
                    self.bits[base + start..base + end].fill(false);
                }
                self.count -= (end - start) * rows;
                let x = start * TILE;
                let y = ty * TILE;
                let w = (end * TILE).min(width).saturating_sub(x);
                let h = ((ty + rows) * TILE).min(height).saturating_sub(y);
                if w > 0 && h > 0 {
                    out.push(Rect {
                        x: x as u16,
                        y: y as u16,
                        w: w as u16,
                        h: h as u16,
                    });
                }
            }
        }
        out
    }
}

/// The server's copy of the screen as last seen, and the tiles found changed by the last scan.
pub struct Shadow {
    pub width: usize,
    pub height: usize,
    pub pixels: Vec<u32>,
    dirty_rows: Vec<bool>,
    scratch: Vec<u32>,
}

impl Shadow {
    pub fn new(width: usize, height: usize) -> Shadow {
        Shadow {
            width,
            height,
            pixels: vec![0; width * height],
            dirty_rows: vec![false; height],
            scratch: vec![0; width],
        }
    }

    pub fn frame(&self) -> Frame<'_> {
        Frame {
            pixels: &self.pixels,
            width: self.width,
            height: self.height,
        }
    }

    /// Reads every row the source reports dirty, compares it with the shadow in tile-wide
    /// chunks, copies what differs and marks those tiles in `changed`.
    pub fn scan(&mut self, source: &dyn FramebufferSource, changed: &mut TileMap) {
        self.dirty_rows.iter_mut().for_each(|d| *d = false);
        source.take_dirty_rows(&mut self.dirty_rows);
        let w = self.width;
        for y in 0..self.height {
            if !self.dirty_rows[y] {
                continue;
            }
            source.read_pixels(0, y as u32, &mut self.scratch);
            let row = &mut self.pixels[y * w..(y + 1) * w];
            for (tx, (new, old)) in self
                .scratch
                .chunks(TILE)
                .zip(row.chunks_mut(TILE))
                .enumerate()
            {
                if new != old {
                    old.copy_from_slice(new);
                    changed.set(tx, y / TILE);
                }
            }
        }
    }

    /// Copies the tiles marked in `tiles` into `dst` (a buffer of the same geometry).
    pub fn copy_tiles_to(&self, dst: &mut [u32], tiles: &TileMap) {
        if !tiles.any() || dst.len() != self.pixels.len() {
            return;
        }
        for ty in 0..tiles.tiles_y {
            for tx in 0..tiles.tiles_x {
                if !tiles.get(tx, ty) {
                    continue;
                }
                let x0 = tx * TILE;
                let x1 = (x0 + TILE).min(self.width);
                for y in ty * TILE..((ty + 1) * TILE).min(self.height) {
                    let a = y * self.width;
                    dst[a + x0..a + x1].copy_from_slice(&self.pixels[a + x0..a + x1]);
                }
            }
        }
    }

    /// Reads the whole framebuffer.
    pub fn load_all(&mut self, source: &dyn FramebufferSource) {
        let mut rows = vec![false; self.height];
        source.take_dirty_rows(&mut rows);
        for y in 0..self.height {
            source.read_pixels(
                0,
                y as u32,
                &mut self.pixels[y * self.width..(y + 1) * self.width],
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vnc::MemFramebuffer;

    #[test]
    fn rects_cover_exactly_the_marked_tiles() {
        let mut m = TileMap::new(100, 50);
        m.mark_rect(Rect {
            x: 0,
            y: 0,
            w: 20,
            h: 20,
        });
        m.mark_rect(Rect {
            x: 90,
            y: 40,
            w: 10,
            h: 10,
        });
        let rects = m.take_rects(100, 50);
        assert_eq!(
            rects,
            [
                Rect {
                    x: 0,
                    y: 0,
                    w: 32,
                    h: 32
                },
                Rect {
                    x: 80,
                    y: 32,
                    w: 20,
                    h: 18
                }
            ]
        );
        assert!(!m.any());
        m.mark_all();
        assert_eq!(
            m.take_rects(100, 50),
            [Rect {
                x: 0,
                y: 0,
                w: 100,
                h: 50
            }]
        );
    }

    #[test]
    fn scan_finds_only_real_changes() {
        let fb = MemFramebuffer::new(64, 48);
        let mut sh = Shadow::new(64, 48);
        let mut changed = TileMap::new(64, 48);
        sh.scan(&fb, &mut changed);
        assert!(
            !changed.any(),
            "an all-black source matches the black shadow"
        );
        fb.fill_rect(17, 33, 2, 2, 0xffffff);
        sh.scan(&fb, &mut changed);
        assert_eq!(changed.count(), 1);
        assert!(changed.get(1, 2));
        // Rewriting the same pixels marks rows dirty but changes nothing.
        changed.clear();
        fb.fill_rect(17, 33, 2, 2, 0xffffff);
        sh.scan(&fb, &mut changed);
        assert!(!changed.any());
        assert_eq!(sh.pixels[33 * 64 + 17], 0xffffff);
    }
}
