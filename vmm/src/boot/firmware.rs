//! Firmware boot: the BIOS image read from its file, copied into RAM ending at 1 MiB and mapped
//! read-only just below 4 GiB, where the vCPU's reset vector (0xFFFFFFF0) points.
//!
//! The RAM copy is needed because a PC BIOS shadows itself at 0xC0000..0xFFFFF by unlocking
//! the chipset's PAM registers; this machine has no PCI host bridge to unlock, so SeaBIOS must
//! find its image already in writable RAM there (see the firmware note).
//!
//! Reload on reset: no reset is handled inside this process. The i8042 reset line
//! (`devices::i8042`, command 0xFE), the FADT reset register (`devices::acpi_pm::ResetPort`,
//! 0xCF9) and the `reset` control command all end the VM with `ExitReason::Reboot` (exit
//! status 2, `lifecycle`), and the driver starts a fresh vireo-vmm, which reads the image from
//! its file again into fresh RAM: every boot starts from a clean image.

use crate::layout;
use kvm_bindings::{kvm_userspace_memory_region, KVM_MEM_READONLY};
use kvm_ioctls::{Cap, VmFd};
use std::io::Read;
use std::path::{Path, PathBuf};
use vireo_vmm_api::flash::{FLASH_BLOCK, FLASH_MAX};
use vireo_vmm_api::limits::{FIRMWARE_ALIGN, FIRMWARE_MAX_SIZE};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

/// Largest VGA option ROM taken (SeaBIOS's VGA ROMs are 30 to 40 KiB; the ROM area holds 128).
pub const VGA_ROM_MAX_SIZE: u64 = 128 << 10;

#[derive(Debug, thiserror::Error)]
pub enum FirmwareError {
    #[error("firmware.loader: {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "firmware.loader: {path}: not a BIOS image: a file of 64 KiB to {} KiB in 64 KiB \
         steps is needed, this is {size} bytes", FIRMWARE_MAX_SIZE >> 10
    )]
    Size { path: PathBuf, size: u64 },
    #[error("firmware.vga_rom: {path}: {reason}")]
    VgaRom { path: PathBuf, reason: String },
    #[error(
        "firmware.loader: {path}: {size} bytes is not a UEFI code image of whole 4 KiB blocks \
         up to {} KiB", FLASH_MAX >> 10
    )]
    Flash { path: PathBuf, size: u64 },
    #[error("firmware.nvram: {path}: {source}")]
    Nvram {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("firmware: copying the image into guest RAM: {0}")]
    Memory(#[from] vm_memory::GuestMemoryError),
    #[error("firmware: mapping the image below 4 GiB: {0}")]
    Map(#[source] std::io::Error),
    #[error("KVM: KVM_SET_USER_MEMORY_REGION (firmware): {0}")]
    Kvm(#[source] kvm_ioctls::Error),
    #[error("firmware: fw_cfg: {0}")]
    FwCfg(#[from] crate::devices::fw_cfg::FwCfgError),
}

/// Reads at most `max` bytes of `path`; more is an error (the file may have grown since the
/// config was validated).
fn read_capped(path: &Path, max: u64) -> Result<Vec<u8>, std::io::Error> {
    let f = std::fs::File::open(path)?;
    if !f.metadata()?.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    let mut data = Vec::new();
    f.take(max + 1).read_to_end(&mut data)?;
    Ok(data)
}

/// The BIOS image, its size checked again (the config's check ran before this read).
pub fn read_image(path: &Path) -> Result<Vec<u8>, FirmwareError> {
    let data = read_capped(path, FIRMWARE_MAX_SIZE).map_err(|source| FirmwareError::Read {
        path: path.into(),
        source,
    })?;
    let size = data.len() as u64;
    if size == 0 || size % FIRMWARE_ALIGN != 0 || size > FIRMWARE_MAX_SIZE {
        return Err(FirmwareError::Size {
            path: path.into(),
            size,
        });
    }
    Ok(data)
}

/// The VGA option ROM offered through fw_cfg.
pub fn read_vga_rom(path: &Path) -> Result<Vec<u8>, FirmwareError> {
    let err = |reason: String| FirmwareError::VgaRom {
        path: path.into(),
        reason,
    };
    let data = read_capped(path, VGA_ROM_MAX_SIZE).map_err(|e| err(e.to_string()))?;
    if data.is_empty() || data.len() as u64 > VGA_ROM_MAX_SIZE {
        return Err(err(format!(
            "an option ROM of 1 byte to {} KiB is needed",
            VGA_ROM_MAX_SIZE >> 10
        )));
    }
    Ok(data)
}

/// Guest address of the read-only copy: it ends at 4 GiB.
pub fn high_base(size: u64) -> u64 {
    layout::MMIO_HOLE_END - size
}

/// Guest address of the RAM copy: it ends at 1 MiB.
pub fn low_base(size: u64) -> u64 {
    layout::HIMEM_START - size
}

/// The host memory behind the read-only copy; KVM reads it for as long as the VM lives.
pub struct FirmwareMapping {
    addr: *mut libc::c_void,
    len: usize,
}

// SAFETY: the mapping is plain memory owned by this value; nothing aliases it mutably.
unsafe impl Send for FirmwareMapping {}
unsafe impl Sync for FirmwareMapping {}

impl Drop for FirmwareMapping {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly the mapping created in `map_image`.
        unsafe {
            libc::munmap(self.addr, self.len);
        }
    }
}

/// Copies `image` into RAM ending at 1 MiB and maps it read-only ending at 4 GiB in its own
/// KVM slot ([`layout::FIRMWARE_SLOT`]). Guest writes there exit as MMIO and are dropped.
/// Without KVM_CAP_READONLY_MEM the slot is writable: the guest can then change only its own
/// copy, which the next boot reloads anyway.
pub fn map_image(
    vm_fd: &VmFd,
    mem: &GuestMemoryMmap,
    image: &[u8],
) -> Result<FirmwareMapping, FirmwareError> {
    let size = image.len() as u64;
    mem.write_slice(image, GuestAddress(low_base(size)))?;
    map_read_only(vm_fd, image, high_base(size))
}

/// UEFI's code half, read from its file (the pair was checked with the config; sizes are
/// checked again against what was read).
pub fn read_flash_code(path: &Path) -> Result<Vec<u8>, FirmwareError> {
    let data = read_capped(path, FLASH_MAX).map_err(|source| FirmwareError::Read {
        path: path.into(),
        source,
    })?;
    if data.is_empty() || data.len() as u64 % FLASH_BLOCK != 0 || data.len() as u64 > FLASH_MAX {
        return Err(FirmwareError::Flash {
            path: path.into(),
            size: data.len() as u64,
        });
    }
    Ok(data)
}

/// KVM_MEM_READONLY where this KVM has read-only memory slots, else 0.
pub fn read_only_flag(vm_fd: &VmFd) -> u32 {
    if vm_fd.check_extension(Cap::ReadonlyMem) {
        KVM_MEM_READONLY
    } else {
        0
    }
}

/// Maps a copy of `image` read-only at guest address `base` in the firmware's KVM slot.
pub fn map_read_only(
    vm_fd: &VmFd,
    image: &[u8],
    base: u64,
) -> Result<FirmwareMapping, FirmwareError> {
    let size = image.len() as u64;
    // SAFETY: a fresh anonymous private mapping; the result is checked below.
    let addr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            image.len(),
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if addr == libc::MAP_FAILED {
        return Err(FirmwareError::Map(std::io::Error::last_os_error()));
    }
    let mapping = FirmwareMapping {
        addr,
        len: image.len(),
    };
    // SAFETY: `addr` is a writable mapping of exactly `image.len()` bytes.
    unsafe {
        std::ptr::copy_nonoverlapping(image.as_ptr(), addr.cast::<u8>(), image.len());
    }
    // SAFETY: the same mapping; from now on the host only reads it too.
    if unsafe { libc::mprotect(addr, image.len(), libc::PROT_READ) } != 0 {
        return Err(FirmwareError::Map(std::io::Error::last_os_error()));
    }
    let region = kvm_userspace_memory_region {
        slot: layout::FIRMWARE_SLOT,
        flags: read_only_flag(vm_fd),
        guest_phys_addr: base,
        memory_size: size,
        userspace_addr: addr as u64,
    };
    // SAFETY: the mapping lives in the returned value, which the Vm keeps as long as the VM.
    unsafe { vm_fd.set_user_memory_region(region) }.map_err(FirmwareError::Kvm)?;
    Ok(mapping)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(tag: &str, content: &[u8]) -> PathBuf {
        let p = std::env::temp_dir().join(format!("vireo-fw-{tag}-{}.bin", std::process::id()));
        std::fs::write(&p, content).unwrap();
        p
    }

    #[test]
    fn image_sizes_are_checked_at_read_time() {
        let ok = scratch("ok", &vec![0x90; 256 << 10]);
        assert_eq!(read_image(&ok).unwrap().len(), 256 << 10);
        let odd = scratch("odd", &vec![0; 1000]);
        assert!(matches!(
            read_image(&odd),
            Err(FirmwareError::Size { size: 1000, .. })
        ));
        let big = scratch("big", &vec![0; 320 << 10]);
        let err = read_image(&big).unwrap_err().to_string();
        assert!(err.contains("not a BIOS image"), "{err}");
        let missing = std::env::temp_dir().join("vireo-fw-none/bios.bin");
        assert!(matches!(
            read_image(&missing),
            Err(FirmwareError::Read { .. })
        ));
        assert!(matches!(
            read_vga_rom(&big),
            Err(FirmwareError::VgaRom { .. })
        ));
        assert_eq!(read_vga_rom(&odd).unwrap().len(), 1000);
        for p in [ok, odd, big] {
            std::fs::remove_file(p).unwrap();
        }
        assert_eq!(high_base(256 << 10), 0xfffc_0000);
        assert_eq!(low_base(256 << 10), 0xc_0000);
    }
}
