//! The guest framebuffer as the VNC server sees it: pixels from the dirty-logged KVM slot
//! ([`FramebufferMemory`], created by the VM builder), and which rows the guest touched,
//! derived from KVM's dirty-page bitmap.
//!
//! The guest-physical placement, the KVM slot and boot_params.screen_info (VESA linear
//! framebuffer, orig_video_isVGA 0x23, XRGB8888, lfb_size in 64 KiB units) belong to
//! `devices::fbmem` and `boot::zeropage`; this file only reads.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::devices::fbmem::FramebufferMemory;
use crate::vnc::FramebufferSource;

const PAGE: usize = 4096;

/// [`FramebufferSource`] over the guest's framebuffer memory.
pub struct GuestFramebuffer {
    mem: Arc<FramebufferMemory>,
    dirty_log_failed: AtomicBool,
}

impl GuestFramebuffer {
    pub fn new(mem: Arc<FramebufferMemory>) -> GuestFramebuffer {
        GuestFramebuffer {
            mem,
            dirty_log_failed: AtomicBool::new(false),
        }
    }
}

/// Rows touched by the dirty 4 KiB `pages` of a framebuffer with `stride` bytes per row.
pub fn pages_to_rows(pages: &[usize], stride: usize, rows: &mut [bool]) {
    if stride == 0 {
        return;
    }
    for &p in pages {
        let first = p * PAGE / stride;
        let last = ((p + 1) * PAGE - 1) / stride;
        for r in rows.iter_mut().take(last + 1).skip(first) {
            *r = true;
        }
    }
}

impl FramebufferSource for GuestFramebuffer {
    fn size(&self) -> (u32, u32) {
        let g = self.mem.geometry();
        (g.width, g.height)
    }

    fn take_dirty_rows(&self, rows: &mut [bool]) {
        match self.mem.take_dirty_pages() {
            Ok(pages) => {
                let stride = self.mem.geometry().stride as usize;
                pages_to_rows(&pages, stride, rows);
            }
            Err(e) => {
                // Without the log, compare everything: slower, never wrong.
                if !self.dirty_log_failed.swap(true, Ordering::Relaxed) {
                    log::warn!("framebuffer: KVM dirty log unavailable ({e}); scanning all rows");
                }
                rows.iter_mut().for_each(|r| *r = true);
            }
        }
    }

    fn read_pixels(&self, x: u32, y: u32, out: &mut [u32]) {
        let g = self.mem.geometry();
        out.fill(0);
        if x >= g.width || y >= g.height {
            return;
        }
        let n = out.len().min((g.width - x) as usize);
        let offset = y as usize * g.stride as usize + x as usize * 4;
        let mut bytes = vec![0u8; n * 4];
        if self.mem.read_into(offset, &mut bytes).is_err() {
            return;
        }
        for (o, b) in out.iter_mut().zip(bytes.chunks_exact(4)) {
            *o = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_map_to_the_rows_they_touch() {
        // 1280 pixels * 4 = 5120 bytes a row: page 0 covers row 0, page 1 rows 0..=1.
        let mut rows = vec![false; 10];
        pages_to_rows(&[1], 5120, &mut rows);
        assert_eq!(&rows[..3], &[true, true, false]);
        let mut rows = vec![false; 10];
        pages_to_rows(&[0, 11], 5120, &mut rows);
        assert!(rows[0] && rows[8] && rows[9]);
        assert!(!rows[1] && !rows[7]);
        // Pages beyond the last row are ignored.
        pages_to_rows(&[1000], 5120, &mut rows);
    }
}
