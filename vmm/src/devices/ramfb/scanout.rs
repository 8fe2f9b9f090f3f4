//! ramfb as the VNC server's [`FramebufferSource`]: geometry from the guest's configuration,
//! pixels read from guest RAM through vm-memory's checked accessors and converted to xRGB.
//!
//! No dirty log: guest RAM is one KVM slot (two above 3 GiB), and logging it would mean
//! write-protecting all of it, splitting its huge pages for the whole firmware stage and
//! fetching a bitmap the size of RAM / 32 Ki on every scan, to save the compare of at most a
//! few MiB. Every row is reported dirty and the server compares against its shadow: at
//! 1024x768 XRGB8888 one scan reads, converts and compares 3 MiB, 1.4-2.4 ms optimised on the
//! 2-core build machine (`full_scan_cost_at_1024x768`). An unchanged screen backs the server
//! off to one scan a second (about 0.2 % of a core); a screen that keeps changing is scanned
//! every 15 ms (about 12 %).

use vm_memory::{Bytes, GuestAddress};

use super::Ramfb;
use crate::vnc::FramebufferSource;

/// What clients see before the guest configures ramfb: a black screen of this size (the VNC
/// server and its clients need a non-empty framebuffer from the first moment).
pub const BLANK_SIZE: (u32, u32) = (640, 480);

/// Pixels converted per read from guest memory (a stack buffer of at most 4 KiB).
const CHUNK_PIXELS: usize = 1024;

impl FramebufferSource for Ramfb {
    fn size(&self) -> (u32, u32) {
        self.config()
            .map(|c| (c.width, c.height))
            .unwrap_or(BLANK_SIZE)
    }

    fn take_dirty_rows(&self, rows: &mut [bool]) {
        // A configuration change at the same size (a new address or format) is covered too.
        rows.iter_mut().for_each(|r| *r = true);
    }

    fn read_pixels(&self, x: u32, y: u32, out: &mut [u32]) {
        out.fill(0);
        let Some(cfg) = self.config() else {
            return;
        };
        if x >= cfg.width || y >= cfg.height {
            return;
        }
        let n = out.len().min((cfg.width - x) as usize);
        let bpp = cfg.format.bytes_per_pixel() as usize;
        // Inside the validated span, so no overflow; checked all the same.
        let Some(mut addr) = (u64::from(y) * u64::from(cfg.stride))
            .checked_add(u64::from(x) * bpp as u64)
            .and_then(|o| cfg.addr.checked_add(o))
        else {
            return;
        };
        let mut buf = [0u8; CHUNK_PIXELS * 4];
        for chunk in out[..n].chunks_mut(CHUNK_PIXELS) {
            let bytes = &mut buf[..chunk.len() * bpp];
            // The guest writes concurrently; vm-memory copies volatilely and checks bounds.
            if self.mem().read_slice(bytes, GuestAddress(addr)).is_err() {
                chunk.fill(0);
                return;
            }
            cfg.format.to_xrgb(bytes, chunk);
            addr += bytes.len() as u64;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::fw_cfg::FwCfgWriteHook;
    use crate::devices::ramfb::{PixelFormat, RawConfig};
    use crate::vnc::dirty::{Shadow, TileMap};
    use vm_memory::GuestMemoryMmap;

    fn ramfb() -> (Ramfb, GuestMemoryMmap) {
        let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 16 << 20)]).expect("memory");
        (Ramfb::new(mem.clone()), mem)
    }

    fn config(addr: u64, format: PixelFormat, w: u32, h: u32, stride: u32) -> [u8; 28] {
        RawConfig {
            addr,
            fourcc: format.fourcc(),
            flags: 0,
            width: w,
            height: h,
            stride,
        }
        .to_bytes()
    }

    #[test]
    fn blank_until_configured() {
        let (fb, mem) = ramfb();
        mem.write_slice(&[0xff; 4096], GuestAddress(0))
            .expect("write");
        assert_eq!(fb.size(), BLANK_SIZE);
        let mut row = vec![1u32; 640];
        fb.read_pixels(0, 0, &mut row);
        assert!(row.iter().all(|&p| p == 0));
    }

    #[test]
    fn guest_pixels_show_through_the_written_config() {
        let (mut fb, mem) = ramfb();
        let base = 0x10_0000;
        // 100x50 with padded rows; the pixel at (7, 3) is red, (99, 49) blue.
        let stride = 100 * 4 + 64;
        fb.written(&config(base, PixelFormat::Xrgb8888, 100, 50, stride));
        assert_eq!(fb.size(), (100, 50));
        let at = |x: u64, y: u64| GuestAddress(base + y * u64::from(stride) + x * 4);
        mem.write_slice(&0x00ff_0000u32.to_le_bytes(), at(7, 3))
            .expect("write");
        mem.write_slice(&0xff00_00ffu32.to_le_bytes(), at(99, 49))
            .expect("write");
        let mut rows = vec![false; 50];
        fb.take_dirty_rows(&mut rows);
        assert!(rows.iter().all(|&r| r));
        let mut row = vec![0u32; 100];
        fb.read_pixels(0, 3, &mut row);
        assert_eq!(row[7], 0xff_0000);
        assert_eq!(row.iter().filter(|&&p| p != 0).count(), 1);
        // An x offset, a read wider than the screen (zeros beyond), the top byte dropped.
        let mut tail = vec![7u32; 10];
        fb.read_pixels(95, 49, &mut tail);
        assert_eq!(tail, [0, 0, 0, 0, 0xff, 0, 0, 0, 0, 0]);
        // Outside the screen: zeros.
        fb.read_pixels(0, 50, &mut tail);
        assert!(tail.iter().all(|&p| p == 0));
        fb.read_pixels(100, 0, &mut tail);
        assert!(tail.iter().all(|&p| p == 0));

        // A new geometry and format at another address replaces it.
        let base2 = 0x40_0000;
        fb.written(&config(base2, PixelFormat::Rgb565, 2000, 3, 0));
        assert_eq!(fb.size(), (2000, 3));
        // Past one chunk of pixels: conversion continues at the right address.
        mem.write_slice(
            &0x001fu16.to_le_bytes(),
            GuestAddress(base2 + 2 * (2000 + 1500)),
        )
        .expect("write");
        let mut row = vec![0u32; 2000];
        fb.read_pixels(0, 1, &mut row);
        assert_eq!(row[1500], 0xff);
        assert_eq!(row.iter().filter(|&&p| p != 0).count(), 1);
        // Through the screendump path too.
        let (w, h, rgb) = crate::vnc::screendump::rgb(&fb);
        assert_eq!((w, h), (2000, 3));
        let i = (2000 + 1500) * 3;
        assert_eq!(&rgb[i..i + 3], &[0, 0, 0xff]);
    }

    #[test]
    fn a_config_in_the_last_bytes_of_ram_reads_to_the_end() {
        let (mut fb, mem) = ramfb();
        let end = 16u64 << 20;
        // 3 bytes a pixel, the last row unpadded, ending on RAM's last byte.
        let (w, h, stride) = (333u32, 7u32, 1024u32);
        let base = end - (u64::from(stride) * 6 + 333 * 3);
        fb.written(&config(base, PixelFormat::Rgb888, w, h, stride));
        assert_eq!(fb.size(), (333, 7));
        mem.write_slice(&[0x01, 0x02, 0x03], GuestAddress(end - 3))
            .expect("write");
        let mut row = vec![0u32; 333];
        fb.read_pixels(0, 6, &mut row);
        assert_eq!(row[332], 0x03_0201);
    }

    /// The cost of reporting every row: one server scan of an unchanged 1024x768 XRGB8888
    /// screen. Run with `--ignored --nocapture` (optimised for a meaningful figure:
    /// `--config 'profile.dev.package.vireo-vmm.opt-level=3'`).
    #[test]
    #[ignore = "measurement; prints a figure"]
    fn full_scan_cost_at_1024x768() {
        let (mut fb, mem) = ramfb();
        fb.written(&config(0x10_0000, PixelFormat::Xrgb8888, 1024, 768, 4096));
        let noise: Vec<u8> = (0..4096 * 768u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        mem.write_slice(&noise, GuestAddress(0x10_0000))
            .expect("write");
        let mut shadow = Shadow::new(1024, 768);
        let mut changed = TileMap::new(1024, 768);
        shadow.load_all(&fb);
        let runs = 200;
        let t = std::time::Instant::now();
        for _ in 0..runs {
            shadow.scan(&fb, &mut changed);
        }
        let per = t.elapsed() / runs;
        assert!(!changed.any(), "an unchanged screen must find no change");
        println!("ramfb: full scan of 1024x768 XRGB8888: {per:?} per scan");
    }
}
