//! The guest's physical address map, I/O ports and interrupt lines.
//!
//! ```text
//! 0x0000_0000 ..0x0009_fc00  RAM (real-mode area; boot data below 0x20000)
//! 0x0009_fc00 ..0x000a_0000  reserved (EBDA)
//! 0x000e_0000 ..0x0010_0000  reserved: ACPI tables (RSDP at 0xe0000, found by the BIOS-area scan)
//! 0x0010_0000 ..MMIO_HOLE    RAM
//! 0xc000_0000 ..0x1_0000_0000  32-bit MMIO hole (never RAM, never in e820 RAM):
//!     0xd000_0000  framebuffer window, up to 32 MiB (its own KVM slot, dirty-logged)
//!     0xd800_0000  virtio-mmio devices, 4 KiB each, VIRTIO_MMIO_MAX of them
//!     0xdf00_0000  boot-time marker (MMIO), 4 KiB
//!     0xfec0_0000  IOAPIC
//!     0xfee0_0000  local APICs
//!     0xfeff_c000  KVM's identity-map page and TSS (4 pages)
//!     0xff80_0000  firmware boot only: the BIOS image, read-only (its size, ending at 4 GiB),
//!                  or UEFI's variable store and code (up to 8 MiB, ending at 4 GiB)
//! 0x1_0000_0000 ..           RAM above the hole, if memory_mib needs it
//! ```

/// The limits the driver checks too (`vireo-vmm-api`): defined there once.
pub use vireo_vmm_api::limits::{
    FRAMEBUFFER_MAX_SIZE, MAX_VCPUS, PCI_FIRST_VIRTIO_SLOT, VIRTIO_MMIO_MAX,
};

/// End of the low (real-mode) RAM; the EBDA follows.
pub const LOW_RAM_END: u64 = 0x9_fc00;
/// Start of the BIOS area reserved for the ACPI tables.
pub const ACPI_START: u64 = 0xe_0000;
/// Size of the ACPI area (up to 1 MiB).
pub const ACPI_SIZE: u64 = 0x2_0000;
/// Where RAM above the legacy area starts, and where the kernel is loaded.
pub const HIMEM_START: u64 = 0x10_0000;

/// Boot data (all below 0x20000, inside low RAM, so e820 reports them as RAM the kernel may
/// reclaim after boot).
pub const BOOT_GDT: u64 = 0x500;
pub const BOOT_IDT: u64 = 0x520;
pub const PVH_START_INFO: u64 = 0x6000;
pub const PVH_MEMMAP: u64 = 0x6040;
pub const ZERO_PAGE: u64 = 0x7000;
pub const PML4: u64 = 0x9000;
pub const PDPTE: u64 = 0xa000;
/// Four page directories (identity map of the first 4 GiB with 2 MiB pages).
pub const PDE: u64 = 0xb000;
pub const CMDLINE: u64 = 0x2_0000;
pub const BOOT_STACK: u64 = 0x8ff0;

/// Start of the 32-bit MMIO hole: RAM beyond this address continues at 4 GiB.
pub const MMIO_HOLE_START: u64 = 0xc000_0000;
pub const MMIO_HOLE_END: u64 = 0x1_0000_0000;

/// The linear framebuffer window.
pub const FRAMEBUFFER_START: u64 = 0xd000_0000;

/// virtio-mmio device `i` lives at `VIRTIO_MMIO_START + i * VIRTIO_MMIO_SIZE`.
pub const VIRTIO_MMIO_START: u64 = 0xd800_0000;
pub const VIRTIO_MMIO_SIZE: u64 = 0x1000;
/// GSIs for virtio-mmio devices, in slot order. ISA lines in use (0 timer, 1 keyboard, 2 cascade,
/// 4 COM1, 8 RTC, 9 SCI) are skipped. Its length is the slot count the driver checks against.
pub const VIRTIO_GSIS: [u32; VIRTIO_MMIO_MAX] = [
    5, 6, 7, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23,
];

/// Base of virtio-mmio slot `i`, `None` past the last slot.
pub fn virtio_mmio_slot(i: usize) -> Option<(u64, u32)> {
    VIRTIO_GSIS
        .get(i)
        .map(|gsi| (VIRTIO_MMIO_START + i as u64 * VIRTIO_MMIO_SIZE, *gsi))
}

/// Boot-time marker, MMIO flavour (Firecracker-style): any write logs the time since start.
pub const BOOT_MARKER_MMIO: u64 = 0xdf00_0000;
pub const BOOT_MARKER_MMIO_SIZE: u64 = 0x1000;

pub const IOAPIC_START: u64 = 0xfec0_0000;
pub const APIC_START: u64 = 0xfee0_0000;

// I/O ports.
pub const COM1_PORT: u16 = 0x3f8;
pub const I8042_DATA_PORT: u16 = 0x60;
pub const PORT_B: u16 = 0x61;
pub const I8042_CMD_PORT: u16 = 0x64;
/// System control port A (fast A20 and reset).
pub const PORT_A: u16 = 0x92;
pub const RTC_PORT: u16 = 0x70;
/// Boot-time marker, port flavour (Firecracker's debug port).
pub const BOOT_MARKER_PORT: u16 = 0x3f0;
/// ACPI fixed-hardware register blocks.
pub const PM1A_EVT_PORT: u16 = 0x600;
pub const PM1_EVT_LEN: u8 = 4;
pub const PM1A_CNT_PORT: u16 = 0x604;
pub const PM1_CNT_LEN: u8 = 2;
/// FADT reset register (I/O) and the value that resets.
pub const RESET_PORT: u16 = 0xcf9;
/// The reset register sits inside PCI configuration mechanism #1 (0xcf8..0xd00), which has no
/// PCI behind it here; one device answers the whole block.
pub const PCI_CONFIG_PORT: u16 = 0xcf8;
pub const RESET_VALUE: u8 = 0x06;

// The `pc` machine (i440FX + PIIX, PCI bus 0).
/// The ACPI PM block (PM1 event at +0, control at +4, timer at +8): where PIIX4's PMBA points
/// and the FADT says it is. Firmware programs PMBA itself, after the FADT was built, so the
/// FADT names the address the firmware will choose: SeaBIOS moves the block to 0x600 when it
/// is handed ACPI tables (as it is here), OVMF puts it at 0xB000 (its PcdAcpiPmBaseAddress).
/// A direct kernel boot gets SeaBIOS's address from the VMM.
pub const PC_PM_BASE: u16 = 0x600;
pub const PC_PM_BASE_UEFI: u16 = 0xb000;
/// The PM timer's offset in the block.
pub const PC_PM_TIMER_OFFSET: u16 = 8;

/// The PM block's base on `pc` for a boot by UEFI firmware (`true`) or otherwise.
pub fn pc_pm_base(uefi: bool) -> u16 {
    if uefi {
        PC_PM_BASE_UEFI
    } else {
        PC_PM_BASE
    }
}
/// The 32-bit memory window PCI BARs may use, as the DSDT's `_CRS` tells the guest: the MMIO
/// hole up to the IOAPIC. Firmware assigns from its top down (SeaBIOS ends at the IOAPIC).
pub const PCI_MMIO32_START: u64 = MMIO_HOLE_START;
pub const PCI_MMIO32_END: u64 = IOAPIC_START;
/// Where the VMM assigns BARs itself (a direct kernel boot has no firmware to): above the
/// framebuffer and boot marker windows of the hole, below the IOAPIC.
pub const PCI_ASSIGN_START: u64 = 0xe000_0000;
pub const PCI_ASSIGN_END: u64 = IOAPIC_START;
/// I/O BARs the VMM assigns start here, above the chipset's ports (SeaBIOS starts at 0xc000).
pub const PCI_IO_ASSIGN_START: u16 = 0xc000;

/// The 64-bit memory window PCI BARs may use on the `pc` machine with `mem_size` bytes of RAM,
/// [start, end): from the first GiB boundary above RAM (and above 4 GiB) to 256 GiB, so that
/// it stays inside a 40-bit physical address space. UEFI firmware puts its 64-bit aperture
/// there (OVMF: 32 GiB aligned to its size above RAM). `None` when RAM reaches that far.
pub fn pci_mmio64_window(mem_size: u64) -> Option<(u64, u64)> {
    let ram_top = ram_regions(mem_size)
        .last()
        .map_or(0, |(base, size)| base + size)
        .max(MMIO_HOLE_END);
    let start = ram_top.checked_next_multiple_of(1 << 30)?;
    let end = PCI_MMIO64_END;
    (start < end).then_some((start, end))
}

/// Where the `pc` machine's 64-bit PCI window ends.
pub const PCI_MMIO64_END: u64 = 256 << 30;

/// The GSI of INTx pin `pin` (0 = INTA#) of PCI device `device` on the `pc` machine, which
/// the DSDT's `_PRT` tells the guest: the IOAPIC's PCI pins 16-23, rotated by device number as
/// the PCI bridge swizzle does, so neighbouring devices' INTA# do not share a line.
pub fn pci_intx_gsi(device: u8, pin: u8) -> u32 {
    16 + (u32::from(device) + u32::from(pin)) % 8
}

// Interrupt lines (GSI == ISA IRQ below 16).
pub const KEYBOARD_GSI: u32 = 1;
pub const COM1_GSI: u32 = 4;
pub const RTC_GSI: u32 = 8;
pub const SCI_GSI: u32 = 9;

/// KVM memory slots: RAM uses 0 and 1, the framebuffer `FRAMEBUFFER_SLOT`, a BIOS image's
/// (or UEFI's code's) read-only copy below 4 GiB (firmware boot) `FIRMWARE_SLOT`.
pub const RAM_SLOT_LOW: u32 = 0;
pub const RAM_SLOT_HIGH: u32 = 1;
pub const FRAMEBUFFER_SLOT: u32 = 2;
pub const FIRMWARE_SLOT: u32 = 3;
/// UEFI's variable store while it reads as an array (`devices::pflash`).
pub const FLASH_VARS_SLOT: u32 = 4;

/// KVM's own pages for real-mode emulation (identity-map page, then the 3-page TSS), where
/// QEMU puts them: below the 16 MiB of flash a firmware image may use, above the IOAPIC;
/// reserved in the firmware machine's e820 as QEMU does.
pub const KVM_IDENTITY_MAP: u64 = 0xfeff_c000;
pub const KVM_TSS: u64 = 0xfeff_d000;
pub const KVM_PRIVATE_SIZE: u64 = 0x4000;

/// RAM regions (guest address, size) for `mem_size` bytes of guest memory.
pub fn ram_regions(mem_size: u64) -> Vec<(u64, u64)> {
    if mem_size <= MMIO_HOLE_START {
        vec![(0, mem_size)]
    } else {
        vec![
            (0, MMIO_HOLE_START),
            (MMIO_HOLE_END, mem_size - MMIO_HOLE_START),
        ]
    }
}

/// e820 entry type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum E820Kind {
    Ram = 1,
    Reserved = 2,
}

/// The e820 map the guest is given: RAM minus the legacy holes; the device windows never appear
/// as RAM.
pub fn e820_map(mem_size: u64) -> Vec<(u64, u64, E820Kind)> {
    let mut out = vec![(0, LOW_RAM_END.min(mem_size), E820Kind::Ram)];
    out.push((LOW_RAM_END, 0xa_0000 - LOW_RAM_END, E820Kind::Reserved));
    out.push((ACPI_START, ACPI_SIZE, E820Kind::Reserved));
    for (base, size) in ram_regions(mem_size) {
        let start = base.max(HIMEM_START);
        let end = base + size;
        if end > start {
            out.push((start, end - start, E820Kind::Ram));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn e820_never_covers_device_windows() {
        for mib in [16u64, 256, 3072, 3073, 8192] {
            let map = e820_map(mib << 20);
            let ram: u64 = map
                .iter()
                .filter(|e| e.2 == E820Kind::Ram)
                .map(|e| e.1)
                .sum();
            assert_eq!(ram, (mib << 20) - HIMEM_START + LOW_RAM_END, "{mib} MiB");
            for (base, size, kind) in map {
                if kind == E820Kind::Ram {
                    let end = base + size;
                    assert!(
                        end <= MMIO_HOLE_START || base >= MMIO_HOLE_END,
                        "{base:#x}+{size:#x}"
                    );
                }
            }
        }
        const { assert!(FRAMEBUFFER_START >= MMIO_HOLE_START) };
        let (last, _) = virtio_mmio_slot(VIRTIO_MMIO_MAX - 1).unwrap();
        assert!(last + VIRTIO_MMIO_SIZE <= BOOT_MARKER_MMIO);
        assert!(virtio_mmio_slot(VIRTIO_MMIO_MAX).is_none());
    }

    #[test]
    fn the_64_bit_pci_window_starts_above_ram_on_a_gib() {
        assert_eq!(pci_mmio64_window(1 << 30), Some((1 << 32, PCI_MMIO64_END)));
        // 6 GiB of RAM: 3 GiB below the hole, 3 GiB from 4 GiB up to 7 GiB.
        assert_eq!(pci_mmio64_window(6 << 30), Some((7 << 30, PCI_MMIO64_END)));
        assert_eq!(
            pci_mmio64_window((6 << 30) + 1),
            Some((8 << 30, PCI_MMIO64_END))
        );
        assert_eq!(pci_mmio64_window(300 << 30), None);
    }
}
