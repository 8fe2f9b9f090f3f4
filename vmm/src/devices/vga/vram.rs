//! The VGA's video memory: an anonymous mapping that is a dirty-logged KVM memory slot wherever
//! the guest puts BAR 0 (and no slot while the BAR is off), so the guest draws at memory speed
//! and the VNC server learns which lines changed from KVM's dirty log.

use std::io;
use std::sync::{Arc, Mutex, PoisonError};

use kvm_bindings::{kvm_userspace_memory_region, KVM_MEM_LOG_DIRTY_PAGES};
use kvm_ioctls::VmFd;
use vm_memory::mmap::MmapRegion;
use vm_memory::VolatileMemory;

use crate::layout;

pub struct Vram {
    region: MmapRegion,
    vm: Option<Arc<VmFd>>,
    /// The guest address of the slot, while there is one.
    base: Mutex<Option<u64>>,
}

impl Vram {
    /// `size` bytes of zeroed video memory; `vm` is `None` in unit tests (no slot is made).
    pub fn new(vm: Option<Arc<VmFd>>, size: usize) -> io::Result<Vram> {
        Ok(Vram {
            region: MmapRegion::new(size).map_err(io::Error::other)?,
            vm,
            base: Mutex::new(None),
        })
    }

    pub fn size(&self) -> u64 {
        self.region.size() as u64
    }

    /// Where the guest sees the memory now.
    pub fn base(&self) -> Option<u64> {
        *self.base.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Moves the slot to `base`, or removes it (`None`).
    pub fn place(&self, base: Option<u64>) -> io::Result<()> {
        let mut at = self.base.lock().unwrap_or_else(PoisonError::into_inner);
        if *at == base {
            return Ok(());
        }
        let Some(vm) = &self.vm else {
            *at = base;
            return Ok(());
        };
        if let Some(old) = at.take() {
            let gone = kvm_userspace_memory_region {
                slot: layout::FRAMEBUFFER_SLOT,
                flags: 0,
                guest_phys_addr: old,
                memory_size: 0,
                userspace_addr: 0,
            };
            // SAFETY: removing the slot (size 0) drops KVM's reference to our mapping.
            unsafe { vm.set_user_memory_region(gone) }.map_err(io::Error::from)?;
        }
        if let Some(new) = base {
            let region = kvm_userspace_memory_region {
                slot: layout::FRAMEBUFFER_SLOT,
                flags: KVM_MEM_LOG_DIRTY_PAGES,
                guest_phys_addr: new,
                memory_size: self.size(),
                userspace_addr: self.region.as_ptr() as u64,
            };
            // SAFETY: the region is a live mapping of `size` bytes owned by `self`, which
            // removes the slot in Drop before the mapping goes away.
            unsafe { vm.set_user_memory_region(region) }.map_err(io::Error::from)?;
            *at = Some(new);
        }
        Ok(())
    }

    /// Copies `dst.len()` bytes from `offset`; false when that is outside the memory.
    pub fn read(&self, offset: u64, dst: &mut [u8]) -> bool {
        let s = self.region.as_volatile_slice();
        let Ok(offset) = usize::try_from(offset) else {
            return false;
        };
        match s.subslice(offset, dst.len()) {
            Ok(sub) => {
                sub.copy_to(dst);
                true
            }
            Err(_) => false,
        }
    }

    /// Zeroes `len` bytes from the start (a mode set without NOCLEARMEM).
    pub fn clear(&self, len: u64) {
        let s = self.region.as_volatile_slice();
        let len = usize::try_from(len.min(self.size())).unwrap_or(0);
        if let Ok(sub) = s.subslice(0, len) {
            // Volatile writes: the guest may be running.
            let zero = [0u8; 4096];
            let mut at = 0;
            while at < len {
                let n = zero.len().min(len - at);
                if let Ok(part) = sub.subslice(at, n) {
                    part.copy_from(&zero[..n]);
                }
                at += n;
            }
        }
    }

    /// Writes `src` at `offset` (tests, and the host's own drawing).
    #[cfg(test)]
    pub fn write(&self, offset: usize, src: &[u8]) {
        let s = self.region.as_volatile_slice();
        if let Ok(sub) = s.subslice(offset, src.len()) {
            sub.copy_from(src);
        }
    }

    /// The 4 KiB pages written since the previous call; `None` without a slot or log (then
    /// everything counts as changed).
    pub fn take_dirty_pages(&self) -> Option<Vec<usize>> {
        let vm = self.vm.as_ref()?;
        self.base()?;
        let bitmap = vm
            .get_dirty_log(layout::FRAMEBUFFER_SLOT, self.region.size())
            .ok()?;
        Some(crate::devices::fbmem::dirty_pages(&bitmap))
    }
}

impl Drop for Vram {
    fn drop(&mut self) {
        let _ = self.place(None);
    }
}
