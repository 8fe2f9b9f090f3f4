//! The numbers both sides check against: the driver refuses a definition beyond them, naming
//! the element, and the VMM refuses a config beyond them ([`crate::config::VmConfig::validate`])
//! and builds its guest address map from them (`vireo_vmm::layout`).

/// Hard cap on vCPUs (also bounded at run time by KVM_CAP_MAX_VCPUS); APIC IDs stay below 255.
pub const MAX_VCPUS: usize = 254;

/// Upper bound accepted for guest RAM (1 TiB); KVM and the host decide the real limit.
pub const MAX_MEMORY_MIB: u64 = 1 << 20;

/// Largest framebuffer side, in pixels.
pub const MAX_DISPLAY_SIDE: u32 = 4096;

/// Size of the guest's framebuffer window: width * height * 4 must fit in it.
pub const FRAMEBUFFER_MAX_SIZE: u64 = 32 << 20;

/// The standard VGA's video memory (`DisplayModel::Vga`): its framebuffer, width * height * 4,
/// must fit in it.
pub const VGA_VRAM_SIZE: u64 = 16 << 20;

/// The largest mode the standard VGA's VBE registers take (QEMU's limits too).
pub const VGA_MAX_WIDTH: u32 = 2560;
pub const VGA_MAX_HEIGHT: u32 = 1600;
const _: () = assert!(VGA_MAX_WIDTH as u64 * VGA_MAX_HEIGHT as u64 * 4 <= VGA_VRAM_SIZE);

/// Longest command line accepted (Linux's x86 COMMAND_LINE_SIZE).
pub const CMDLINE_MAX: usize = 2048;

/// virtio-mmio slots: one per free ISA/IOAPIC line (`vireo_vmm::layout::VIRTIO_GSIS`, whose
/// length is this constant, so the two cannot drift apart).
pub const VIRTIO_MMIO_MAX: usize = 17;

/// The PCI device number of the `pc` machine's first virtio device: 0 is the host bridge, 1
/// the PIIX functions, 2 the display's, as QEMU and libvirt lay out `pc`.
pub const PCI_FIRST_VIRTIO_SLOT: u8 = 3;
/// Device numbers on bus 0 run to 31, so the `pc` machine has room for this many virtio
/// devices.
pub const PCI_VIRTIO_MAX: usize = 32 - PCI_FIRST_VIRTIO_SLOT as usize;

/// A BIOS image's size step: firmware images are whole 64 KiB segments.
pub const FIRMWARE_ALIGN: u64 = 64 << 10;
/// The largest BIOS image: it is copied into RAM ending at 1 MiB, and the region below it
/// (from 0xC0000) is where the option ROMs and the VGA BIOS live.
pub const FIRMWARE_MAX_SIZE: u64 = 256 << 10;
