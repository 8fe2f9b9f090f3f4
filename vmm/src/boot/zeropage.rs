//! The bzImage zero page (struct boot_params), written by field offset so that no unsafe
//! byte-casting of C structs is needed. Offsets are those of Documentation/arch/x86/zero-page.rst.

use crate::devices::fbmem::FramebufferGeometry;
use crate::layout;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

const SETUP_HEADER: usize = 0x1f1;
const E820_ENTRIES: usize = 0x1e8;
const E820_TABLE: usize = 0x2d0;
const E820_MAX: usize = 128;
const ACPI_RSDP: usize = 0x070;

/// Fills and writes the zero page at [`layout::ZERO_PAGE`].
pub fn write(
    mem: &GuestMemoryMmap,
    setup_header: &[u8],
    mem_size: u64,
    cmdline_len: usize,
    initrd: Option<(u64, u64)>,
    rsdp: u64,
    fb: Option<FramebufferGeometry>,
) -> Result<(), vm_memory::GuestMemoryError> {
    let mut zp = vec![0u8; 4096];
    let hdr_end = (SETUP_HEADER + setup_header.len()).min(0x290);
    zp[SETUP_HEADER..hdr_end].copy_from_slice(&setup_header[..hdr_end - SETUP_HEADER]);
    let put32 =
        |zp: &mut [u8], off: usize, v: u32| zp[off..off + 4].copy_from_slice(&v.to_le_bytes());
    let put16 =
        |zp: &mut [u8], off: usize, v: u16| zp[off..off + 2].copy_from_slice(&v.to_le_bytes());
    zp[0x210] = 0xff; // type_of_loader: undefined
    zp[0x211] |= 0x80; // loadflags: CAN_USE_HEAP
    put16(&mut zp, 0x224, 0xfe00); // heap_end_ptr
    put32(&mut zp, 0x228, layout::CMDLINE as u32);
    put32(&mut zp, 0x238, cmdline_len as u32);
    put16(&mut zp, 0x1fa, 0xffff); // vid_mode: normal
    if let Some((addr, size)) = initrd {
        put32(&mut zp, 0x218, addr as u32);
        put32(&mut zp, 0x21c, size as u32);
        put32(&mut zp, 0x0c0, (addr >> 32) as u32);
        put32(&mut zp, 0x0c4, (size >> 32) as u32);
    }
    zp[ACPI_RSDP..ACPI_RSDP + 8].copy_from_slice(&rsdp.to_le_bytes());
    let map = layout::e820_map(mem_size);
    zp[E820_ENTRIES] = map.len().min(E820_MAX) as u8;
    for (i, (base, size, kind)) in map.iter().take(E820_MAX).enumerate() {
        let off = E820_TABLE + i * 20;
        zp[off..off + 8].copy_from_slice(&base.to_le_bytes());
        zp[off + 8..off + 16].copy_from_slice(&size.to_le_bytes());
        put32(&mut zp, off + 16, *kind as u32);
    }
    if let Some(fb) = fb {
        write_screen_info(&mut zp[..0x40], fb);
    }
    mem.write_slice(&zp, GuestAddress(layout::ZERO_PAGE))
}

/// screen_info for a VESA linear framebuffer (VIDEO_TYPE_VLFB), XRGB8888.
pub fn write_screen_info(si: &mut [u8], fb: FramebufferGeometry) {
    let put16 =
        |si: &mut [u8], off: usize, v: u16| si[off..off + 2].copy_from_slice(&v.to_le_bytes());
    let put32 =
        |si: &mut [u8], off: usize, v: u32| si[off..off + 4].copy_from_slice(&v.to_le_bytes());
    si[0x0f] = 0x23; // orig_video_isVGA = VIDEO_TYPE_VLFB
    put16(si, 0x12, fb.width as u16);
    put16(si, 0x14, fb.height as u16);
    put16(si, 0x16, 32);
    put32(si, 0x18, fb.base as u32);
    put32(si, 0x1c, fb.size.div_ceil(0x1_0000) as u32); // in 64 KiB units
    put16(si, 0x24, fb.stride as u16);
    si[0x26..0x2e].copy_from_slice(&[8, 16, 8, 8, 8, 0, 8, 24]);
    put32(si, 0x3a, (fb.base >> 32) as u32);
    // capabilities: VIDEO_CAPABILITY_64BIT_BASE only if needed
    if fb.base >> 32 != 0 {
        put32(si, 0x36, 2);
    }
}
