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
    /// Bytes mapped (page-rounded, at least stride * height).
    pub size: u64,
}

pub struct FramebufferMemory {
    region: MmapRegion,
    geometry: FramebufferGeometry,
    vm: Arc<VmFd>,
    slot: u32,
}

const PAGE: u64 = 4096;

impl FramebufferMemory {
    /// Maps `width x height x 4` bytes and registers them with KVM with dirty logging.
    pub fn new(vm: Arc<VmFd>, width: u32, height: u32) -> io::Result<FramebufferMemory> {
        let stride = width
            .checked_mul(4)
            .ok_or_else(|| io::Error::other("framebuffer too wide"))?;
        let bytes = u64::from(stride) * u64::from(height);
        let size = bytes.div_ceil(PAGE) * PAGE;
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
        let mut pages = Vec::new();
        for (i, word) in bitmap.iter().enumerate() {
            let mut w = *word;
            while w != 0 {
                let bit = w.trailing_zeros() as usize;
                pages.push(i * 64 + bit);
                w &= w - 1;
            }
        }
        Ok(pages)
    }
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
