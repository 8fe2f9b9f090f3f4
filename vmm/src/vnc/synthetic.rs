//! Synthetic screen contents for tests, benches and the demo server: a text-console-like
//! screen and noise. Deterministic from a seed so a test can recompute what it expects.

/// xorshift64*: tiny and good enough for pixels.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

const PALETTE: [u32; 6] = [0xaaaaaa, 0xffffff, 0x55ff55, 0x5555ff, 0xffff55, 0xff5555];

/// Fills `px` (`w` x `h`) like a desktop with a terminal: a grey-blue background, a window
/// with a title bar and border, and 8x16 "glyphs" (random bitmaps) in a few colours with
/// ragged line ends, as fbcon or an xterm would show.
pub fn text_like(px: &mut [u32], w: usize, h: usize, seed: u64) {
    let mut rng = Rng::new(seed);
    px.iter_mut().for_each(|p| *p = 0x3a4a6a);
    if w < 64 || h < 96 || px.len() < w * h {
        return;
    }
    let (wx0, wy0) = (w / 16, h / 16);
    let (wx1, wy1) = (w - w / 16, h - h / 16);
    for y in wy0..wy1 {
        for x in wx0..wx1 {
            px[y * w + x] = if y < wy0 + 24 {
                0xd0d0d0
            } else if x == wx0 || x == wx1 - 1 || y == wy1 - 1 {
                0x808080
            } else {
                0x000000
            };
        }
    }
    let cols = (wx1 - wx0 - 16) / 8;
    let rows = (wy1 - wy0 - 40) / 16;
    for row in 0..rows {
        let len = (rng.next_u64() % cols as u64) as usize;
        let colour = PALETTE[(rng.next_u64() % PALETTE.len() as u64) as usize];
        for col in 0..len {
            let glyph = rng.next_u64();
            if glyph % 7 == 0 {
                continue; // a space
            }
            let gx = wx0 + 8 + col * 8;
            let gy = wy0 + 32 + row * 16;
            for y in 2..14 {
                let bits = (glyph >> ((y % 8) * 8)) as u8 & 0x7e;
                for x in 0..8 {
                    if bits & (0x80 >> x) != 0 {
                        px[(gy + y) * w + gx + x] = colour;
                    }
                }
            }
        }
    }
}

/// Random pixels: the worst case for every lossless encoding.
pub fn noise(px: &mut [u32], seed: u64) {
    let mut rng = Rng::new(seed);
    for p in px.iter_mut() {
        *p = rng.next_u64() as u32 & 0x00ff_ffff;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_like_has_few_colours_and_is_deterministic() {
        let (w, h) = (320, 200);
        let mut a = vec![0; w * h];
        let mut b = vec![0; w * h];
        text_like(&mut a, w, h, 7);
        text_like(&mut b, w, h, 7);
        assert_eq!(a, b);
        let mut colours: Vec<u32> = a.clone();
        colours.sort_unstable();
        colours.dedup();
        assert!(colours.len() <= 10, "{}", colours.len());
        assert!(a.iter().filter(|&&p| p == 0).count() > w * h / 4);
    }
}
