//! The framebuffer's guest memory: an anonymous mapping placed in the guest at
//! [`layout::FRAMEBUFFER_START`] as its own KVM memory slot with dirty-page logging.
//!
//! The VM builder creates it (it owns KVM slots); the framebuffer/VNC code
//! (`devices::framebuffer`) reads pixels through [`FramebufferMemory::read_into`] /
//! [`FramebufferMemory::volatile`] and asks which 4 KiB pages the guest wrote since the last
//! call with [`FramebufferMemory::take_dirty_pages`]. The pixel format is fixed: 32 bpp,
//! little-endian XRGB8888 (blue byte first), `stride = width * 4`, announced to the guest in
//! boot_params.screen_info as a VESA linear framebuffer.

use crate::layout;
use kvm_bindings::{kvm_userspace_memory_region, KVM_MEM_LOG_DIRTY_PAGES};
use kvm_ioctls::VmFd;
use std::io;
use std::sync::Arc;
use vm_memory::mmap::MmapRegion;
use vm_memory::{VolatileMemory, VolatileSlice};

/// Guest-visible geometry of the framebuffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FramebufferGeometry {
    pub width: u32,
    pub height: u32,
    /// Bytes per line.
    pub stride: u32,
    /// Guest physical base.
    pub base: u64,
    /// Bytes mapped: stride * height rounded up to 64 KiB, the unit of screen_info.lfb_size,
    /// so every byte the guest is told about is backed by the slot.
    pub size: u64,
}

pub struct FramebufferMemory {
    region: MmapRegion,
    geometry: FramebufferGeometry,
    vm: Arc<VmFd>,
    slot: u32,
}

/// The unit of boot_params.screen_info.lfb_size.
pub const LFB_UNIT: u64 = 64 << 10;

/// Bytes to map for `stride * height`: whole 64 KiB units (a multiple of the page size too).
pub fn mapped_size(stride: u32, height: u32) -> u64 {
    (u64::from(stride) * u64::from(height)).div_ceil(LFB_UNIT) * LFB_UNIT
}

impl FramebufferMemory {
    /// Maps `width x height x 4` bytes and registers them with KVM with dirty logging.
    pub fn new(vm: Arc<VmFd>, width: u32, height: u32) -> io::Result<FramebufferMemory> {
        let stride = width
            .checked_mul(4)
            .ok_or_else(|| io::Error::other("framebuffer too wide"))?;
        let size = mapped_size(stride, height);
        if size == 0 || size > layout::FRAMEBUFFER_MAX_SIZE {
            return Err(io::Error::other(format!(
                "framebuffer of {size} bytes does not fit the window"
            )));
        }
        let region = MmapRegion::new(size as usize).map_err(io::Error::other)?;
        let geometry = FramebufferGeometry {
            width,
            height,
            stride,
            base: layout::FRAMEBUFFER_START,
            size,
        };
        let mr = kvm_userspace_memory_region {
            slot: layout::FRAMEBUFFER_SLOT,
            flags: KVM_MEM_LOG_DIRTY_PAGES,
            guest_phys_addr: geometry.base,
            memory_size: size,
            userspace_addr: region.as_ptr() as u64,
        };
        // SAFETY: the region is a live anonymous mapping of `size` bytes owned by `self`, which
        // unregisters the slot in Drop before the mapping goes away.
        unsafe { vm.set_user_memory_region(mr) }.map_err(io::Error::from)?;
        Ok(FramebufferMemory {
            region,
            geometry,
            vm,
            slot: layout::FRAMEBUFFER_SLOT,
        })
    }

    pub fn geometry(&self) -> FramebufferGeometry {
        self.geometry
    }

    /// The whole framebuffer as volatile memory (the guest writes it concurrently).
    pub fn volatile(&self) -> VolatileSlice<'_, vm_memory::bitmap::BS<'_, ()>> {
        self.region.as_volatile_slice()
    }

    /// Copies `dst.len()` bytes starting at byte `offset` of the framebuffer.
    pub fn read_into(&self, offset: usize, dst: &mut [u8]) -> io::Result<()> {
        let s = self.volatile();
        let sub = s.subslice(offset, dst.len()).map_err(io::Error::other)?;
        sub.copy_to(dst);
        Ok(())
    }

    /// Indices of the 4 KiB pages written since the previous call (KVM_GET_DIRTY_LOG, which
    /// also resets the log).
    pub fn take_dirty_pages(&self) -> io::Result<Vec<usize>> {
        let bitmap = self
            .vm
            .get_dirty_log(self.slot, self.geometry.size as usize)
            .map_err(io::Error::from)?;
        Ok(dirty_pages(&bitmap))
    }
}

/// The indices of the pages set in a KVM dirty-page bitmap (one bit a page, 64 a word).
pub fn dirty_pages(bitmap: &[u64]) -> Vec<usize> {
    let mut pages = Vec::new();
    for (i, word) in bitmap.iter().enumerate() {
        let mut w = *word;
        while w != 0 {
            pages.push(i * 64 + w.trailing_zeros() as usize);
            w &= w - 1;
        }
    }
    pages
}

impl Drop for FramebufferMemory {
    fn drop(&mut self) {
        let mr = kvm_userspace_memory_region {
            slot: self.slot,
            flags: 0,
            guest_phys_addr: self.geometry.base,
            memory_size: 0,
            userspace_addr: 0,
        };
        // SAFETY: removing a slot (size 0) makes KVM drop its reference to our mapping.
        let _ = unsafe { self.vm.set_user_memory_region(mr) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapping_covers_every_announced_64k_unit() {
        for (w, h) in [
            (1280, 800),
            (800, 600),
            (640, 480),
            (1024, 768),
            (1, 1),
            (8192, 1024),
        ] {
            let stride = w * 4;
            let size = mapped_size(stride, h);
            // boot::zeropage announces size.div_ceil(64 KiB) units.
            let announced = size.div_ceil(LFB_UNIT) * LFB_UNIT;
            assert_eq!(
                size % LFB_UNIT,
                0,
                "{w}x{h}: {size} is not whole 64 KiB units"
            );
            assert_eq!(
                announced, size,
                "{w}x{h}: lfb_size would announce unbacked bytes"
            );
            assert!(
                size >= u64::from(stride) * u64::from(h),
                "{w}x{h}: too small"
            );
            assert!(
                size - u64::from(stride) * u64::from(h) < LFB_UNIT,
                "{w}x{h}: too big"
            );
        }
        // 800x600x4 = 1 920 000 bytes = 29.3 units: 30 units mapped, not 469 pages.
        assert_eq!(mapped_size(3200, 600), 30 * LFB_UNIT);
        // The largest allowed framebuffer still fits the window after rounding.
        assert!(mapped_size(4096 * 4, 2048) <= layout::FRAMEBUFFER_MAX_SIZE);
    }

    #[test]
    fn kvm_slot_and_dirty_log_cover_the_rounded_size() {
        // The real slot on the local /dev/kvm: the dirty bitmap spans the rounded size, and a
        // write into the last (padding) page of the slot is seen through the mapping.
        let Ok(kvm) = kvm_ioctls::Kvm::new() else {
            panic!("/dev/kvm is needed for this test");
        };
        let vm = Arc::new(kvm.create_vm().expect("KVM_CREATE_VM"));
        let fb = FramebufferMemory::new(vm, 800, 600).expect("framebuffer slot");
        let g = fb.geometry();
        assert_eq!(g.size, 30 * LFB_UNIT);
        assert_eq!(fb.volatile().len() as u64, g.size);
        let mut last = [0u8; 4];
        fb.read_into(g.size as usize - 4, &mut last)
            .expect("last bytes are mapped");
        assert!(fb.take_dirty_pages().expect("dirty log").is_empty());
    }
}
