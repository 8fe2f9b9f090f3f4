//! Fuzzes ramfb's handling of the guest's `etc/ramfb` writes: a sequence of contents of any
//! length, against guest RAM in two regions with a hole between them. A content that parses
//! writes back to the same bytes; an accepted configuration lies wholly in guest RAM with a
//! stride that holds a row, and becomes the device's; a refused one leaves the previous in
//! place; the scanout's size follows, and reading any row never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vireo_vmm::devices::fw_cfg::FwCfgWriteHook;
use vireo_vmm::devices::ramfb::{config, Ramfb, BLANK_SIZE, CONFIG_SIZE};
use vireo_vmm::vnc::FramebufferSource;
use vireo_vmm_api::limits::MAX_DISPLAY_SIDE;
use vm_memory::{GuestAddress, GuestMemoryBackend, GuestMemoryMmap};

fuzz_target!(|data: &[u8]| {
    let Ok(mem) = GuestMemoryMmap::<()>::from_ranges(&[
        (GuestAddress(0x1000), 0x4_0000),
        (GuestAddress(0x8_0000), 0x4_0000),
    ]) else {
        return;
    };
    let mut fb = Ramfb::new(mem.clone());
    let mut rest = data;
    let mut hook = true;
    while let Some((&len, tail)) = rest.split_first() {
        // Mostly whole configurations, sometimes short or long ones.
        let n = if len & 0x80 == 0 { CONFIG_SIZE } else { usize::from(len & 0x3f) };
        let n = n.min(tail.len());
        let (content, next) = tail.split_at(n);
        rest = next;

        if let Ok(raw) = config::parse(content) {
            assert_eq!(&raw.to_bytes()[..], content);
        }
        let before = fb.config();
        let result = config::from_bytes(content, &mem);
        if hook {
            fb.written(content);
        } else {
            assert_eq!(fb.apply(content), result);
        }
        hook = !hook;
        match result {
            Ok(cfg) => {
                assert_eq!(fb.config(), Some(cfg));
                assert!((1..=MAX_DISPLAY_SIDE).contains(&cfg.width));
                assert!((1..=MAX_DISPLAY_SIDE).contains(&cfg.height));
                assert!(cfg.stride >= cfg.width * cfg.format.bytes_per_pixel());
                let span = usize::try_from(cfg.span()).expect("span fits");
                assert!(mem.check_range(GuestAddress(cfg.addr), span));
            }
            Err(_) => assert_eq!(fb.config(), before),
        }

        let (w, h) = fb.size();
        match fb.config() {
            Some(cfg) => assert_eq!((w, h), (cfg.width, cfg.height)),
            None => assert_eq!((w, h), BLANK_SIZE),
        }
        let mut rows = vec![false; h as usize];
        fb.take_dirty_rows(&mut rows);
        let mut row = vec![0u32; w as usize + 3];
        for y in [0, h / 2, h - 1, h, u32::MAX] {
            fb.read_pixels(0, y, &mut row);
            fb.read_pixels(w / 3, y, &mut row);
            fb.read_pixels(u32::MAX, y, &mut row[..1]);
        }
    }
});
