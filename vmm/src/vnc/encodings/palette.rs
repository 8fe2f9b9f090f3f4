//! A small colour-to-index table for palette subencodings (ZRLE, Tight).

const SLOTS: usize = 1024;

/// Up to `limit` distinct colours with their indices in first-seen order.
pub struct Palette {
    keys: Vec<u32>,
    idx: Vec<u16>,
    stamp: Vec<u32>,
    generation: u32,
    pub colours: Vec<u32>,
    limit: usize,
}

impl Palette {
    pub fn new(limit: usize) -> Palette {
        Palette {
            keys: vec![0; SLOTS],
            idx: vec![0; SLOTS],
            stamp: vec![0; SLOTS],
            generation: 1,
            colours: Vec::with_capacity(limit),
            limit: limit.min(SLOTS / 2),
        }
    }

    pub fn reset(&mut self) {
        self.colours.clear();
        self.generation = self.generation.wrapping_add(1);
        if self.generation == 0 {
            self.stamp.iter_mut().for_each(|s| *s = 0);
            self.generation = 1;
        }
    }

    #[inline]
    fn slot(p: u32) -> usize {
        (p.wrapping_mul(0x9e37_79b1) >> 22) as usize & (SLOTS - 1)
    }

    /// Index of `p`, inserting it; `None` once more than `limit` colours were seen.
    #[inline]
    pub fn insert(&mut self, p: u32) -> Option<u16> {
        let mut s = Self::slot(p);
        loop {
            if self.stamp[s] != self.generation {
                if self.colours.len() >= self.limit {
                    return None;
                }
                self.stamp[s] = self.generation;
                self.keys[s] = p;
                let i = self.colours.len() as u16;
                self.idx[s] = i;
                self.colours.push(p);
                return Some(i);
            }
            if self.keys[s] == p {
                return Some(self.idx[s]);
            }
            s = (s + 1) & (SLOTS - 1);
        }
    }

    /// Index of a colour already inserted.
    #[inline]
    pub fn index(&self, p: u32) -> u16 {
        let mut s = Self::slot(p);
        for _ in 0..SLOTS {
            if self.stamp[s] == self.generation && self.keys[s] == p {
                return self.idx[s];
            }
            s = (s + 1) & (SLOTS - 1);
        }
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_overflows() {
        let mut p = Palette::new(3);
        assert_eq!(p.insert(5), Some(0));
        assert_eq!(p.insert(9), Some(1));
        assert_eq!(p.insert(5), Some(0));
        assert_eq!(p.insert(7), Some(2));
        assert_eq!(p.insert(8), None);
        assert_eq!(p.index(9), 1);
        p.reset();
        assert_eq!(p.insert(8), Some(0));
    }
}
