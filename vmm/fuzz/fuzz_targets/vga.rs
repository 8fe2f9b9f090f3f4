//! Fuzzes the standard VGA as a guest drives it: any sequence of accesses of 1-4 bytes to its
//! VGA ports, its VBE ports and its MMIO BAR (EDID, VGA and VBE registers, QEMU's extension),
//! with the legacy window's RAM filled from the input, and the screen drawn between them.
//! The card never panics, its size stays inside what a VNC client can take, and every row it
//! draws has exactly the pixels asked for.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vireo_vmm::devices::bus::BusDevice;
use vireo_vmm::devices::vga::StdVga;
use vireo_vmm::pci::root::PciFunction;
use vireo_vmm::vnc::FramebufferSource;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

fuzz_target!(|data: &[u8]| {
    let Ok(mem) = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 1 << 20)]) else {
        return;
    };
    // The first 4 KiB of input: text, attributes and font bytes in the legacy window.
    let (window, ops) = data.split_at(data.len().min(4096));
    for (i, chunk) in window.chunks(512).enumerate() {
        let _ = mem.write_slice(chunk, GuestAddress(0xa_0000 + i as u64 * 0x4000));
        let _ = mem.write_slice(chunk, GuestAddress(0xb_8000 + i as u64 * 512));
    }
    let Ok(card) = StdVga::new(None, mem, 1024, 768) else {
        return;
    };
    let Ok(mut function) = card.function() else {
        return;
    };
    let mut vga = card.vga_ports();
    let mut vbe = card.vbe_ports();
    for (n, op) in ops.chunks(5).enumerate() {
        let [kind, a, b, c, d] = match *op {
            [k, a, b, c, d] => [k, a, b, c, d],
            _ => break,
        };
        let len = [1usize, 2, 4, 1][usize::from(kind >> 6)];
        let value = [b, c, d, a];
        let write = kind & 1 != 0;
        match kind >> 1 & 3 {
            0 => {
                let offset = u64::from(a % 0x30);
                if write {
                    vga.write(0x3b0, offset, &value[..len]);
                } else {
                    vga.read(0x3b0, offset, &mut vec![0; len]);
                }
            }
            1 => {
                let offset = u64::from(a % 3);
                if write {
                    vbe.write(0x1ce, offset, &value[..len.min(2)]);
                } else {
                    vbe.read(0x1ce, offset, &mut vec![0; len.min(2)]);
                }
            }
            _ => {
                let offset = (u64::from(a) << 8 | u64::from(b)) % 0x1100;
                if write {
                    function.bar_write(2, offset, &value[..len]);
                } else {
                    function.bar_read(2, offset, &mut vec![0; len]);
                }
            }
        }
        if n % 16 == 15 {
            draw(&card, c, d);
        }
    }
    draw(&card, 0, 0);
});

fn draw(card: &StdVga, x: u8, y: u8) {
    let (w, h) = card.size();
    assert!((1..=4096).contains(&w) && (1..=4096).contains(&h), "{w}x{h}");
    let mut rows = vec![false; h as usize];
    card.take_dirty_rows(&mut rows);
    for row in [0, u32::from(y) % h, h - 1] {
        let x = u32::from(x) % w;
        let mut out = vec![0xdead_beefu32; (w - x) as usize + 3];
        card.read_pixels(x, row, &mut out);
        // Past the right edge the row reads as black.
        assert!(out[(w - x) as usize..].iter().all(|&p| p == 0));
    }
}
