//! Loading the kernel, initrd and command line, and writing what the kernel reads at entry:
//! the zero page (bzImage, 64-bit boot protocol) or the PVH start_info (ELF vmlinux), the e820
//! map, an identity-mapped page table and a GDT.

pub mod firmware;
pub mod firmware_files;
pub mod zeropage;

use crate::layout;
use linux_loader::loader::elf::{Elf, PvhBootCapability};
use linux_loader::loader::KernelLoader;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

#[derive(Debug, thiserror::Error)]
pub enum BootError {
    #[error("kernel {path}: {reason}")]
    Kernel { path: String, reason: String },
    #[error("initrd {path}: {reason}")]
    Initrd { path: String, reason: String },
    #[error("guest memory: {0}")]
    Memory(#[from] vm_memory::GuestMemoryError),
}

/// How the vCPU 0 enters the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry {
    /// 64-bit boot protocol: long mode, paging on, RSI = zero page.
    Linux64 { rip: u64 },
    /// PVH: 32-bit protected mode, paging off, RBX = start_info.
    Pvh { rip: u64 },
}

/// What was loaded where.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub entry: Entry,
    pub kernel_end: u64,
    /// The bzImage's setup header bytes (from offset 0x1f1), for the zero page.
    pub setup_header: Option<Vec<u8>>,
    pub initrd: Option<(u64, u64)>,
    pub initrd_addr_max: u64,
}

const HDRS: u32 = 0x5372_6448; // "HdrS"

fn kerr(path: &Path, reason: impl Into<String>) -> BootError {
    BootError::Kernel {
        path: path.display().to_string(),
        reason: reason.into(),
    }
}

/// Loads an ELF vmlinux (needs a PVH note) or a bzImage (needs the 64-bit entry point). With
/// `unpacked`, the bzImage gives only its setup header, and `unpacked` (the bzImage's payload
/// decompressed ahead of time, an ELF vmlinux) is loaded at its physical addresses and entered
/// through the 64-bit boot protocol, as the bzImage's own decompressor would enter it.
pub fn load_kernel(
    mem: &GuestMemoryMmap,
    path: &Path,
    unpacked: Option<&Path>,
    mem_size: u64,
) -> Result<Loaded, BootError> {
    let mut f = File::open(path).map_err(|e| kerr(path, e.to_string()))?;
    let mut magic = [0u8; 4];
    f.read_exact(&mut magic)
        .map_err(|_| kerr(path, "not a Linux kernel (file too short)"))?;
    if magic == *b"\x7fELF" {
        if unpacked.is_some() {
            return Err(kerr(
                path,
                "an unpacked kernel goes with a bzImage, and this is an ELF vmlinux",
            ));
        }
        let r = Elf::load(mem, None, &mut f, Some(GuestAddress(layout::HIMEM_START)))
            .map_err(|e| kerr(path, format!("ELF load failed: {e}")))?;
        let rip = match r.pvh_boot_cap {
            PvhBootCapability::PvhEntryPresent(a) => a.0,
            _ => {
                return Err(kerr(
                    path,
                    "ELF vmlinux has no PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY)",
                ))
            }
        };
        return Ok(Loaded {
            entry: Entry::Pvh { rip },
            kernel_end: r.kernel_end,
            setup_header: None,
            initrd: None,
            initrd_addr_max: layout::MMIO_HOLE_START - 1,
        });
    }
    let bz = read_setup(&mut f, path)?;
    let low_ram_end = mem_size.min(layout::MMIO_HOLE_START);
    let too_small = |need: u64| {
        kerr(
            path,
            format!(
                "needs {} MiB of memory below 3 GiB to decompress, the VM has {} MiB",
                need >> 20,
                low_ram_end >> 20
            ),
        )
    };
    if let Some(vmlinux) = unpacked {
        let mut v = File::open(vmlinux).map_err(|e| kerr(vmlinux, e.to_string()))?;
        let r = Elf::load(mem, None, &mut v, Some(GuestAddress(layout::HIMEM_START)))
            .map_err(|e| kerr(vmlinux, format!("ELF load failed: {e}")))?;
        // The decompressed kernel still needs what its setup header asks for beyond its image
        // (page tables, brk); the header's init_size counts from the load address.
        let need = r.kernel_end.max(bz.load + bz.init_size);
        if need > low_ram_end {
            return Err(too_small(need));
        }
        return Ok(Loaded {
            entry: Entry::Linux64 {
                rip: r.kernel_load.0,
            },
            kernel_end: r.kernel_end,
            setup_header: Some(bz.header),
            initrd: None,
            initrd_addr_max: bz.initrd_addr_max,
        });
    }
    let need = bz.load + bz.pm_size.max(bz.init_size);
    if need > low_ram_end {
        return Err(too_small(need));
    }
    f.seek(SeekFrom::Start(bz.pm_offset))
        .map_err(|e| kerr(path, e.to_string()))?;
    mem.read_exact_volatile_from(GuestAddress(bz.load), &mut f, bz.pm_size as usize)
        .map_err(|e| kerr(path, format!("loading into guest memory: {e}")))?;
    Ok(Loaded {
        entry: Entry::Linux64 {
            rip: bz.load + 0x200,
        },
        kernel_end: bz.load + bz.pm_size,
        setup_header: Some(bz.header),
        initrd: None,
        initrd_addr_max: bz.initrd_addr_max,
    })
}

/// What a bzImage's setup header says, checked.
struct Setup {
    /// The header bytes from offset 0x1f1, for the zero page.
    header: Vec<u8>,
    /// Where the protected-mode part starts in the file, and its size.
    pm_offset: u64,
    pm_size: u64,
    init_size: u64,
    initrd_addr_max: u64,
    /// Where the protected-mode part is loaded.
    load: u64,
}

fn read_setup(f: &mut File, path: &Path) -> Result<Setup, BootError> {
    let len = f
        .seek(SeekFrom::End(0))
        .map_err(|e| kerr(path, e.to_string()))?;
    let mut head = [0u8; 0x290];
    f.seek(SeekFrom::Start(0))
        .map_err(|e| kerr(path, e.to_string()))?;
    f.read_exact(&mut head).map_err(|_| {
        kerr(
            path,
            "not a Linux kernel (no ELF header, too short for a bzImage)",
        )
    })?;
    let u16_at = |o: usize| u16::from_le_bytes([head[o], head[o + 1]]);
    let u32_at = |o: usize| u32::from_le_bytes([head[o], head[o + 1], head[o + 2], head[o + 3]]);
    if u32_at(0x202) != HDRS {
        return Err(kerr(
            path,
            "not a Linux kernel (neither ELF nor bzImage: no \"HdrS\" signature)",
        ));
    }
    let version = u16_at(0x206);
    if version < 0x20c {
        return Err(kerr(
            path,
            format!("boot protocol {version:#x} too old (need 2.12+ for the 64-bit entry)"),
        ));
    }
    let xloadflags = u16_at(0x236);
    if xloadflags & 1 == 0 {
        return Err(kerr(
            path,
            "bzImage has no 64-bit entry point (XLF_KERNEL_64 clear)",
        ));
    }
    let mut setup_sects = u64::from(head[0x1f1]);
    if setup_sects == 0 {
        setup_sects = 4;
    }
    let pm_offset = (setup_sects + 1) * 512;
    if pm_offset >= len {
        return Err(kerr(path, "bzImage truncated (setup larger than the file)"));
    }
    let hdr_len = (0x202 + usize::from(head[0x201])).min(0x290) - 0x1f1;
    Ok(Setup {
        header: head[0x1f1..0x1f1 + hdr_len].to_vec(),
        pm_offset,
        pm_size: len - pm_offset,
        init_size: u64::from(u32_at(0x260)),
        initrd_addr_max: u64::from(u32_at(0x22c)),
        load: layout::HIMEM_START,
    })
}

/// Places the initrd as high as allowed: below initrd_addr_max and the MMIO hole, page-aligned,
/// above the kernel.
pub fn load_initrd(
    mem: &GuestMemoryMmap,
    path: &Path,
    loaded: &mut Loaded,
    mem_size: u64,
) -> Result<(), BootError> {
    let ierr = |reason: String| BootError::Initrd {
        path: path.display().to_string(),
        reason,
    };
    let mut f = File::open(path).map_err(|e| ierr(e.to_string()))?;
    let size = f.metadata().map_err(|e| ierr(e.to_string()))?.len();
    let top = (loaded.initrd_addr_max.saturating_add(1)).min(mem_size.min(layout::MMIO_HOLE_START));
    let start = top
        .checked_sub(size)
        .map(|a| a & !0xfff)
        .filter(|a| *a >= loaded.kernel_end);
    let Some(start) = start else {
        return Err(ierr(format!(
            "{} MiB do not fit between the kernel end ({:#x}) and {:#x}; give the VM more memory",
            size >> 20,
            loaded.kernel_end,
            top
        )));
    };
    mem.read_exact_volatile_from(GuestAddress(start), &mut f, size as usize)
        .map_err(|e| ierr(format!("loading into guest memory: {e}")))?;
    loaded.initrd = Some((start, size));
    Ok(())
}

/// Writes the command line (NUL-terminated) at [`layout::CMDLINE`].
pub fn write_cmdline(mem: &GuestMemoryMmap, cmdline: &str) -> Result<(), BootError> {
    let mut bytes = cmdline.as_bytes().to_vec();
    bytes.push(0);
    mem.write_slice(&bytes, GuestAddress(layout::CMDLINE))?;
    Ok(())
}

/// GDT entries: null, 32-bit code (0x08), 64-bit code (0x10), data (0x18), TSS (0x20).
pub const GDT: [u64; 5] = [
    0,
    0x00cf_9b00_0000_ffff,
    0x00af_9b00_0000_ffff,
    0x00cf_9300_0000_ffff,
    0x008f_8b00_0000_ffff,
];

/// Writes the GDT, an empty IDT and the identity page tables (first 4 GiB, 2 MiB pages).
pub fn write_boot_structures(mem: &GuestMemoryMmap) -> Result<(), BootError> {
    for (i, e) in GDT.iter().enumerate() {
        mem.write_obj(*e, GuestAddress(layout::BOOT_GDT + i as u64 * 8))?;
    }
    mem.write_obj(0u64, GuestAddress(layout::BOOT_IDT))?;
    mem.write_obj(layout::PDPTE | 0x03, GuestAddress(layout::PML4))?;
    for i in 0..4u64 {
        let pd = layout::PDE + i * 0x1000;
        mem.write_obj(pd | 0x03, GuestAddress(layout::PDPTE + i * 8))?;
        for j in 0..512u64 {
            let addr = (i << 30) | (j << 21);
            mem.write_obj(addr | 0x83, GuestAddress(pd + j * 8))?;
        }
    }
    Ok(())
}

/// PVH start_info + memory map + module list.
pub fn write_pvh_start_info(
    mem: &GuestMemoryMmap,
    mem_size: u64,
    initrd: Option<(u64, u64)>,
    rsdp: u64,
) -> Result<(), BootError> {
    let map = layout::e820_map(mem_size);
    let modlist = layout::PVH_START_INFO + 0x800;
    let mut si = [0u8; 56];
    si[0..4].copy_from_slice(&0x336e_c578u32.to_le_bytes());
    si[4..8].copy_from_slice(&1u32.to_le_bytes());
    if let Some((addr, size)) = initrd {
        si[12..16].copy_from_slice(&1u32.to_le_bytes());
        si[16..24].copy_from_slice(&modlist.to_le_bytes());
        let mut m = [0u8; 32];
        m[0..8].copy_from_slice(&addr.to_le_bytes());
        m[8..16].copy_from_slice(&size.to_le_bytes());
        mem.write_slice(&m, GuestAddress(modlist))?;
    }
    si[24..32].copy_from_slice(&layout::CMDLINE.to_le_bytes());
    si[32..40].copy_from_slice(&rsdp.to_le_bytes());
    si[40..48].copy_from_slice(&layout::PVH_MEMMAP.to_le_bytes());
    si[48..52].copy_from_slice(&(map.len() as u32).to_le_bytes());
    mem.write_slice(&si, GuestAddress(layout::PVH_START_INFO))?;
    for (i, (base, size, kind)) in map.iter().enumerate() {
        let mut e = [0u8; 24];
        e[0..8].copy_from_slice(&base.to_le_bytes());
        e[8..16].copy_from_slice(&size.to_le_bytes());
        e[16..20].copy_from_slice(&(*kind as u32).to_le_bytes());
        mem.write_slice(&e, GuestAddress(layout::PVH_MEMMAP + i as u64 * 24))?;
    }
    Ok(())
}
