//! The CMOS bytes a PC BIOS reads to learn the machine: memory sizes, CPU count, drives.
//!
//! SeaBIOS falls back on these when fw_cfg has no `etc/e820`, takes the CPU count from 0x5f
//! when fw_cfg does not give one, and skips floppy and ISA disk probing when 0x10 and 0x12
//! report none. The values follow the PC/AT layout QEMU's pc machine also uses.

use crate::layout;

pub const SHUTDOWN_STATUS: u8 = 0x0f;
pub const FLOPPY_TYPES: u8 = 0x10;
pub const DISK_TYPES: u8 = 0x12;
pub const EQUIPMENT: u8 = 0x14;
pub const BASE_MEM_LO: u8 = 0x15;
pub const BASE_MEM_HI: u8 = 0x16;
pub const EXT_MEM_LO: u8 = 0x17;
pub const EXT_MEM_HI: u8 = 0x18;
pub const DISK_EXT_0: u8 = 0x19;
pub const DISK_EXT_1: u8 = 0x1a;
pub const CHECKSUM_HI: u8 = 0x2e;
pub const CHECKSUM_LO: u8 = 0x2f;
pub const EXT_MEM2_LO: u8 = 0x30;
pub const EXT_MEM2_HI: u8 = 0x31;
pub const CENTURY: u8 = 0x32;
pub const MEM_ABOVE_16M_LO: u8 = 0x34;
pub const MEM_ABOVE_16M_HI: u8 = 0x35;
pub const BOOT_FLAG_1: u8 = 0x38;
pub const BOOT_FLAG_2: u8 = 0x3d;
pub const MEM_ABOVE_4G_LO: u8 = 0x5b;
pub const MEM_ABOVE_4G_MID: u8 = 0x5c;
pub const MEM_ABOVE_4G_HI: u8 = 0x5d;
pub const CPU_COUNT: u8 = 0x5f;

/// Equipment byte: math coprocessor present (bit 1) and a PS/2 mouse (bit 2); no floppy
/// drives (bit 0 clear); display bits 4-5 zero (EGA/VGA, which has its own BIOS).
const EQUIPMENT_FPU_MOUSE: u8 = 0x06;
/// Boot devices in BIOS boot flag nibbles: 2 = hard disk, 3 = CD-ROM. fw_cfg `bootorder`
/// overrides these for the devices it names.
const BOOT_HD_THEN_CD: u8 = 0x32;
/// Boot flag 1 bit 0: skip the boot-sector signature check on floppies (there are none).
const NO_FLOPPY_SIG_CHECK: u8 = 0x01;

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;
const GIB_4: u64 = 4 * 1024 * MIB;

/// Memory split the way the CMOS fields count it, from the guest's RAM layout.
fn memory_split(mem_size: u64) -> (u64, u64) {
    let mut below = 0;
    let mut above = 0;
    for (base, size) in layout::ram_regions(mem_size) {
        if base >= GIB_4 {
            above += size;
        } else {
            below += size;
        }
    }
    (below, above)
}

/// The platform bytes (index, value) for `mem_size` bytes of RAM and `vcpus` CPUs,
/// including the checksum over 0x10..=0x2d.
pub fn platform_bytes(mem_size: u64, vcpus: u8) -> Vec<(u8, u8)> {
    let (below_4g, above_4g) = memory_split(mem_size);
    // Conventional memory: the BIOS carves its EBDA out of the top itself.
    let base_kib = (below_4g / KIB).min(640) as u16;
    // Memory above 1 MiB in KiB, as 16 bits can hold it (about 64 MiB at most).
    let ext_kib = (below_4g.saturating_sub(MIB) / KIB).min(0xffff) as u16;
    // Memory above 16 MiB, below the 32-bit hole, in 64 KiB units.
    let above_16m = (below_4g.saturating_sub(16 * MIB) / (64 * KIB)).min(0xffff) as u16;
    // Memory above 4 GiB in 64 KiB units: 24 bits (up to 1 TiB).
    let above_4g = (above_4g / (64 * KIB)).min(0xff_ffff) as u32;
    let [b_lo, b_hi] = base_kib.to_le_bytes();
    let [e_lo, e_hi] = ext_kib.to_le_bytes();
    let [m_lo, m_hi] = above_16m.to_le_bytes();
    let [h_lo, h_mid, h_hi, _] = above_4g.to_le_bytes();
    let mut out = vec![
        (SHUTDOWN_STATUS, 0),
        (FLOPPY_TYPES, 0),
        (DISK_TYPES, 0),
        (EQUIPMENT, EQUIPMENT_FPU_MOUSE),
        (BASE_MEM_LO, b_lo),
        (BASE_MEM_HI, b_hi),
        (EXT_MEM_LO, e_lo),
        (EXT_MEM_HI, e_hi),
        (DISK_EXT_0, 0),
        (DISK_EXT_1, 0),
        (EXT_MEM2_LO, e_lo),
        (EXT_MEM2_HI, e_hi),
        (MEM_ABOVE_16M_LO, m_lo),
        (MEM_ABOVE_16M_HI, m_hi),
        (BOOT_FLAG_1, NO_FLOPPY_SIG_CHECK),
        (BOOT_FLAG_2, BOOT_HD_THEN_CD),
        (MEM_ABOVE_4G_LO, h_lo),
        (MEM_ABOVE_4G_MID, h_mid),
        (MEM_ABOVE_4G_HI, h_hi),
        (CPU_COUNT, vcpus.saturating_sub(1)),
    ];
    let sum: u16 = out
        .iter()
        .filter(|(i, _)| (0x10..=0x2d).contains(i))
        .map(|(_, v)| u16::from(*v))
        .sum();
    let [s_lo, s_hi] = sum.to_le_bytes();
    out.push((CHECKSUM_HI, s_hi));
    out.push((CHECKSUM_LO, s_lo));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(bytes: &[(u8, u8)], i: u8) -> u8 {
        bytes.iter().find(|(j, _)| *j == i).map_or(0, |(_, v)| *v)
    }

    fn word(bytes: &[(u8, u8)], lo: u8) -> u32 {
        u32::from(get(bytes, lo)) | u32::from(get(bytes, lo + 1)) << 8
    }

    #[test]
    fn small_machine() {
        let b = platform_bytes(256 * MIB, 2);
        assert_eq!(word(&b, BASE_MEM_LO), 640);
        assert_eq!(word(&b, EXT_MEM_LO), 0xffff, "capped");
        assert_eq!(word(&b, EXT_MEM2_LO), 0xffff);
        assert_eq!(word(&b, MEM_ABOVE_16M_LO), (240 * MIB / (64 * KIB)) as u32);
        assert_eq!(get(&b, MEM_ABOVE_4G_LO), 0);
        assert_eq!(get(&b, MEM_ABOVE_4G_MID), 0);
        assert_eq!(get(&b, MEM_ABOVE_4G_HI), 0);
        assert_eq!(get(&b, CPU_COUNT), 1);
        assert_eq!(get(&b, FLOPPY_TYPES), 0);
        assert_eq!(get(&b, DISK_TYPES), 0);
        assert_eq!(get(&b, EQUIPMENT) & 0x01, 0, "no floppy drive");
        let sum: u32 = (0x10..=0x2d).map(|i| u32::from(get(&b, i))).sum();
        assert_eq!(
            u32::from(get(&b, CHECKSUM_HI)) << 8 | u32::from(get(&b, CHECKSUM_LO)),
            sum
        );
    }

    #[test]
    fn tiny_machine_counts_kib() {
        let b = platform_bytes(16 * MIB, 1);
        assert_eq!(word(&b, EXT_MEM_LO), 15 * 1024);
        assert_eq!(word(&b, MEM_ABOVE_16M_LO), 0);
        assert_eq!(get(&b, CPU_COUNT), 0);
    }

    #[test]
    fn memory_above_the_hole_goes_to_the_4g_field() {
        // 5 GiB: 3 GiB below the hole, 2 GiB above 4 GiB.
        let b = platform_bytes(5 * 1024 * MIB, 4);
        let below_16m_units = (layout::MMIO_HOLE_START - 16 * MIB) / (64 * KIB);
        assert_eq!(u64::from(word(&b, MEM_ABOVE_16M_LO)), below_16m_units);
        let above = u64::from(get(&b, MEM_ABOVE_4G_LO))
            | u64::from(get(&b, MEM_ABOVE_4G_MID)) << 8
            | u64::from(get(&b, MEM_ABOVE_4G_HI)) << 16;
        assert_eq!(above * 64 * KIB, 2 * 1024 * MIB);
        assert_eq!(get(&b, CPU_COUNT), 3);
    }
}
