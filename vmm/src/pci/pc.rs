//! The `pc` machine's PCI side, assembled: bus 0 behind configuration mechanism #1 with the
//! i440FX host bridge at 00.0, PIIX3's ISA bridge at 01.0 and PIIX4's power management at
//! 01.3, then the virtio devices from [`PCI_FIRST_VIRTIO_SLOT`] where
//! [`vireo_vmm_api::pci::slots`] puts them; MSI routing and the INTx resampler the devices
//! signal through.
//!
//! The VMM plays firmware where a direct kernel boot has none: [`PcPlatform::program_as_firmware`]
//! turns the PM block on where SeaBIOS puts it (and the FADT says it is) and gives every BAR an
//! address the way firmware would, through the configuration ports' own probe-and-write
//! sequence, so a kernel finds the devices ready as it does after a BIOS. With firmware, the
//! chipset starts as after a reset and the firmware does both.

use std::io;
use std::sync::{Arc, Mutex};

use kvm_ioctls::VmFd;

use super::config::{BAR0, COMMAND, COMMAND_BUS_MASTER, COMMAND_IO, COMMAND_MEMORY};
use super::config_io::{self, ConfigIo};
use super::i440fx::HostBridge;
use super::piix::{IsaBridge, PowerManagement, PMBA, PMREGMISC};
use super::root::{DevFn, PciRoot, RootError, SharedFunction};
use crate::devices::acpi_pm::AcpiPm;
use crate::devices::bus::Bus;
use crate::devices::intx::Resampler;
use crate::devices::msi::MsiRouter;
use crate::layout;
use crate::lifecycle::{ExitHandle, ExitReason};
pub use vireo_vmm_api::limits::PCI_FIRST_VIRTIO_SLOT;

/// Where bus 0's functions sit.
pub const HOST_BRIDGE: DevFn = DevFn::from_raw(0);
pub const ISA_BRIDGE: DevFn = DevFn::from_raw(1 << 3);
pub const POWER_MANAGEMENT: DevFn = DevFn::from_raw(1 << 3 | 3);
/// The display, where QEMU's pc machine puts it (slot 2 is kept free for it).
pub const VGA_SLOT: DevFn = DevFn::from_raw(2 << 3);

#[derive(Debug, thiserror::Error)]
pub enum PcError {
    #[error("{0}")]
    Slot(#[from] RootError),
    #[error("the device has no PCI slot in the config's layout")]
    NoSlot,
    #[error("the PCI configuration ports: {0}")]
    Ports(crate::devices::bus::BusError),
    #[error("PCI interrupts: {0}")]
    Interrupts(io::Error),
    #[error("PCI BARs need {need:#x} bytes of 32-bit memory, the window has {have:#x}")]
    Window { need: u64, have: u64 },
}

/// The machine's PCI bus and what its functions need from the VM.
pub struct PcPlatform {
    pub root: Arc<Mutex<PciRoot>>,
    pub msi: Arc<MsiRouter>,
    pub intx: Resampler,
}

impl PcPlatform {
    /// Puts the chipset on bus 0 and the configuration ports on `pio`. `pm` is the machine's
    /// PM1 register block, served where PMBA says; a reset through 0xCF9 ends the VM with
    /// "reboot", as the fixed reset port of the other machine does.
    pub fn new(
        vm: Arc<VmFd>,
        pio: Arc<Bus>,
        mmio: Arc<Bus>,
        pm: Arc<Mutex<AcpiPm>>,
        exit: ExitHandle,
    ) -> Result<PcPlatform, PcError> {
        let root = Arc::new(Mutex::new(PciRoot::new(pio.clone(), mmio)));
        {
            let mut r = root.lock().unwrap_or_else(|e| e.into_inner());
            r.add(HOST_BRIDGE, Arc::new(Mutex::new(HostBridge::new())))?;
            r.add(ISA_BRIDGE, Arc::new(Mutex::new(IsaBridge::new())))?;
            // The PM block starts disabled, as after a reset: OVMF programs PMBA only while
            // PMREGMISC says the block is off, and keeps its own base otherwise.
            r.add(
                POWER_MANAGEMENT,
                Arc::new(Mutex::new(PowerManagement::new(pm))),
            )?;
        }
        let io = ConfigIo::new(root.clone())
            .with_reset(Box::new(move || exit.request(ExitReason::Reboot)));
        pio.insert(Arc::new(Mutex::new(io)), config_io::BASE, config_io::LEN)
            .map_err(PcError::Ports)?;
        Ok(PcPlatform {
            root,
            msi: MsiRouter::new(vm.clone()),
            intx: Resampler::new(vm).map_err(PcError::Interrupts)?,
        })
    }

    pub fn add(&mut self, at: DevFn, function: SharedFunction) -> Result<(), PcError> {
        self.root
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .add(at, function)?;
        Ok(())
    }

    /// Does what firmware does before it boots an OS: turns the PM block on at
    /// [`layout::PC_PM_BASE`], where SeaBIOS puts it, and gives every BAR of every function an
    /// address: memory BARs, largest first, in the 32-bit window [`layout::PCI_ASSIGN_START`]
    /// .. [`layout::PCI_ASSIGN_END`], I/O BARs from [`layout::PCI_IO_ASSIGN_START`]; then
    /// decoding and bus mastering on. Only for a direct kernel boot: firmware does all this
    /// itself.
    pub fn program_as_firmware(&self) -> Result<(), PcError> {
        let mut root = self.root.lock().unwrap_or_else(|e| e.into_inner());
        let base = u32::from(layout::PC_PM_BASE) | 1;
        root.config_write(POWER_MANAGEMENT, PMBA, &base.to_le_bytes());
        root.config_write(POWER_MANAGEMENT, PMREGMISC, &[1]);
        let at: Vec<DevFn> = root.functions().map(|(at, _)| at).collect();
        let mut mem = Vec::new();
        let mut io = Vec::new();
        for &f in &at {
            for bar in probe(&mut root, f) {
                match bar.io {
                    true => io.push(bar),
                    false => mem.push(bar),
                }
            }
        }
        // Largest first keeps every BAR naturally aligned without gaps between them.
        mem.sort_by_key(|b| std::cmp::Reverse(b.size));
        io.sort_by_key(|b| std::cmp::Reverse(b.size));
        let have = layout::PCI_ASSIGN_END - layout::PCI_ASSIGN_START;
        let need: u64 = mem.iter().map(|b| b.size).sum();
        if need > have {
            return Err(PcError::Window { need, have });
        }
        place(&mut root, &mem, layout::PCI_ASSIGN_START);
        place(&mut root, &io, u64::from(layout::PCI_IO_ASSIGN_START));
        for &f in &at {
            if f == HOST_BRIDGE {
                continue;
            }
            let mut b = [0u8; 2];
            root.config_read(f, COMMAND, &mut b);
            let command = u16::from_le_bytes(b) | COMMAND_IO | COMMAND_MEMORY | COMMAND_BUS_MASTER;
            root.config_write(f, COMMAND, &command.to_le_bytes());
        }
        Ok(())
    }
}

/// One BAR found by the size probe.
struct ProbedBar {
    at: DevFn,
    index: usize,
    io: bool,
    wide: bool,
    size: u64,
}

fn read32(root: &PciRoot, at: DevFn, offset: usize) -> u32 {
    let mut b = [0u8; 4];
    root.config_read(at, offset, &mut b);
    u32::from_le_bytes(b)
}

fn write32(root: &mut PciRoot, at: DevFn, offset: usize, v: u32) {
    root.config_write(at, offset, &v.to_le_bytes());
}

/// The BARs of `at`, by writing all-ones and reading back what sticks (PCI's size probe).
fn probe(root: &mut PciRoot, at: DevFn) -> Vec<ProbedBar> {
    let mut out = Vec::new();
    let mut index = 0;
    while index < 6 {
        let offset = BAR0 + 4 * index;
        let old = read32(root, at, offset);
        write32(root, at, offset, u32::MAX);
        let low = read32(root, at, offset);
        write32(root, at, offset, old);
        if low == 0 {
            index += 1;
            continue;
        }
        let io = low & 1 != 0;
        let wide = !io && (low >> 1) & 3 == 2;
        let size = if io {
            // I/O decodes 16 bits; the upper half may read back as zero.
            u64::from((!(low & !3)).wrapping_add(1) & 0xffff)
        } else {
            let mut mask = u64::from(low & !0xf) | 0xffff_ffff_0000_0000;
            if wide {
                let old_high = read32(root, at, offset + 4);
                write32(root, at, offset + 4, u32::MAX);
                mask = (mask & 0xffff_ffff) | u64::from(read32(root, at, offset + 4)) << 32;
                write32(root, at, offset + 4, old_high);
            }
            (!mask).wrapping_add(1)
        };
        if size != 0 {
            out.push(ProbedBar {
                at,
                index,
                io,
                wide,
                size,
            });
        }
        index += if wide { 2 } else { 1 };
    }
    out
}

/// Gives `bars` (largest first) consecutive, naturally aligned addresses from `start`.
fn place(root: &mut PciRoot, bars: &[ProbedBar], start: u64) {
    let mut next = start;
    for bar in bars {
        next = next.next_multiple_of(bar.size);
        write_bar(root, bar, next);
        next += bar.size;
    }
}

fn write_bar(root: &mut PciRoot, bar: &ProbedBar, base: u64) {
    let offset = BAR0 + 4 * bar.index;
    write32(root, bar.at, offset, base as u32);
    if bar.wide {
        write32(root, bar.at, offset + 4, (base >> 32) as u32);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pci::config::{BarKind, ConfigSpace, Identity};
    use crate::pci::root::PciFunction;

    struct Dev(ConfigSpace);
    impl PciFunction for Dev {
        fn config(&self) -> &ConfigSpace {
            &self.0
        }
        fn config_mut(&mut self) -> &mut ConfigSpace {
            &mut self.0
        }
        fn bar_read(&mut self, index: usize, _offset: u64, data: &mut [u8]) {
            data.fill(index as u8);
        }
    }

    fn dev(bars: &[(usize, BarKind, u64)]) -> SharedFunction {
        let mut c = ConfigSpace::new(Identity {
            vendor: 0x1af4,
            device: 0x1042,
            revision: 1,
            class: [1, 0x80, 0],
            subsystem_vendor: 0x1af4,
            subsystem: 0x1100,
            interrupt_pin: 1,
            multifunction: false,
        });
        for &(i, k, s) in bars {
            c.add_bar(i, k, s).unwrap();
        }
        Arc::new(Mutex::new(Dev(c)))
    }

    fn platform() -> Option<(PcPlatform, Arc<Bus>, Arc<Bus>)> {
        let kvm = kvm_ioctls::Kvm::new().ok()?;
        let vm = Arc::new(kvm.create_vm().ok()?);
        vm.create_irq_chip().ok()?;
        let pio = Arc::new(Bus::new());
        let mmio = Arc::new(Bus::new());
        let exit = ExitHandle::new().unwrap();
        let pm = Arc::new(Mutex::new(AcpiPm::new(None, exit.clone())));
        let pc = PcPlatform::new(vm, pio.clone(), mmio.clone(), pm, exit).unwrap();
        Some((pc, pio, mmio))
    }

    #[test]
    fn the_chipset_answers_and_the_pm_block_sits_where_the_fadt_says() {
        let Some((pc, pio, _)) = platform() else {
            eprintln!("no /dev/kvm: skipped");
            return;
        };
        let cfg = |devfn: u32, reg: u32| {
            pio.write(0xcf8, &(0x8000_0000 | devfn << 8 | reg).to_le_bytes());
            let mut b = [0u8; 4];
            pio.read(0xcfc, &mut b);
            u32::from_le_bytes(b)
        };
        assert_eq!(cfg(0, 0), 0x1237_8086);
        assert_eq!(cfg(1 << 3, 0), 0x7000_8086);
        assert_eq!(cfg(1 << 3 | 3, 0), 0x7113_8086);
        assert_eq!(cfg(2 << 3, 0), 0xffff_ffff, "slot 2 is the display's");
        // Off until firmware (or the direct boot's stand-in) turns it on.
        assert_eq!(cfg(1 << 3 | 3, 0x80) & 1, 0, "PMREGMISC starts disabled");
        let mut t0 = [0u8; 4];
        assert!(!pio.read(u64::from(layout::PC_PM_BASE) + 8, &mut t0));
        pc.program_as_firmware().unwrap_or_else(|e| panic!("{e}"));
        // The PM timer counts at PM base + 8.
        let mut t1 = [0u8; 4];
        assert!(pio.read(u64::from(layout::PC_PM_BASE) + 8, &mut t0));
        std::thread::sleep(std::time::Duration::from_millis(2));
        pio.read(u64::from(layout::PC_PM_BASE) + 8, &mut t1);
        assert_ne!(t0, t1);
    }

    #[test]
    fn bars_get_aligned_addresses_in_the_window_and_decode() {
        let Some((mut pc, pio, mmio)) = platform() else {
            eprintln!("no /dev/kvm: skipped");
            return;
        };
        let a = DevFn::new(PCI_FIRST_VIRTIO_SLOT, 0).unwrap();
        pc.add(
            a,
            dev(&[
                (
                    1,
                    BarKind::Memory32 {
                        prefetchable: false,
                    },
                    0x1000,
                ),
                (4, BarKind::Memory64 { prefetchable: true }, 0x4000),
            ]),
        )
        .unwrap();
        let b = DevFn::new(9, 0).unwrap();
        pc.add(
            b,
            dev(&[
                (0, BarKind::Io, 0x20),
                (4, BarKind::Memory64 { prefetchable: true }, 0x4000),
            ]),
        )
        .unwrap();
        pc.program_as_firmware().unwrap();
        let root = pc.root.lock().unwrap();
        let mut seen = Vec::new();
        for at in [a, b] {
            for index in [1, 4] {
                let mut v = [0u8; 4];
                root.config_read(at, BAR0 + 4 * index, &mut v);
                let base = u64::from(u32::from_le_bytes(v) & !0xf);
                if base == 0 {
                    continue;
                }
                assert!((layout::PCI_ASSIGN_START..layout::PCI_ASSIGN_END).contains(&base));
                let size = if index == 4 { 0x4000 } else { 0x1000 };
                assert_eq!(base % size, 0, "{base:#x} aligned");
                let mut d = [0u8; 4];
                assert!(mmio.read(base, &mut d), "{base:#x} decodes");
                assert_eq!(d, [index as u8; 4]);
                seen.push(base);
            }
        }
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 3, "three distinct memory BARs: {seen:x?}");
        let mut v = [0u8; 4];
        root.config_read(b, BAR0, &mut v);
        let port = u64::from(u32::from_le_bytes(v) & !3);
        assert!(port >= u64::from(layout::PCI_IO_ASSIGN_START), "{port:#x}");
        let mut d = [0u8; 1];
        assert!(pio.read(port, &mut d));
    }
}
