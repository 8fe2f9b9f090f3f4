//! vireo-vmm: Vireo's KVM backend, one process per running virtual machine.
//!
//! The driver writes a [`config::VmConfig`] as JSON and runs
//! `vireo-vmm --config FILE --control SOCKET`; the VM is then driven through the control
//! protocol documented in [`control`]. The exit status tells how it ended
//! ([`lifecycle::ExitReason::exit_code`]: 0 poweroff/quit, 1 error, 2 reboot, 3 crash).
//!
//! Everything the driver and this crate must agree on lives in `vireo-vmm-api` (vmm/api),
//! which the driver links instead of this crate: the config and its validation (re-exported
//! here as [`config`]), the limits [`layout`] is built from, the exit statuses
//! ([`lifecycle`]) and the control protocol's messages ([`control`] serves them).
//!
//! # Testing
//! - `cargo test -p vireo-vmm --lib --test tiny_guests`: unit tests and hand-assembled guests
//!   on the local /dev/kvm (seconds).
//! - `cargo test -p vireo-vmm --release --test rig_boot`: Debian's stock kernel in the nested
//!   rig (vireo-rig): 1/2/4 vCPUs, i8042 keystroke, ACPI power button, reboot, triple fault,
//!   pause/resume (about 17 minutes on the 2-core build machine).
//! - `cargo bench -p vireo-vmm --bench boot`: start-up, memory and boot-time figures beside QEMU.
//!
//! # Guest platform
//! x86-64, in-kernel irqchip (PIC + IOAPIC + LAPICs) and PIT, ACPI (RSDP/XSDT/FADT/MADT/DSDT,
//! [`acpi`]), 16550 on COM1, i8042 + PS/2 keyboard, CMOS RTC, ACPI PM1 registers, boot-time
//! marker. Addresses, ports and GSIs are all in [`layout`]. Two machines
//! ([`config::Machine`]): microvm, whose virtio devices are virtio-mmio declared in the
//! DSDT, and pc, i440FX + PIIX with the virtio devices on PCI bus 0 ([`pci::pc`]), which
//! SeaBIOS and UEFI firmware (OVMF, with its variable store on [`devices::pflash`]) boot on.
//!
//! # Hook points for other subsystems
//!
//! All of them are used between [`vm::Vm::new`] and [`vm::Vm::load`], from
//! [`vm::Vm::attach_optional_devices`] (add one call there per subsystem).
//!
//! - **Devices on a bus**: implement [`devices::bus::BusDevice`]
//!   (`fn read(&mut self, base: u64, offset: u64, data: &mut [u8])`,
//!   `fn write(&mut self, base: u64, offset: u64, data: &[u8])`); buses are
//!   `vm.pio_bus` / `vm.mmio_bus` ([`devices::bus::Bus::insert`]).
//! - **Interrupts**: [`devices::irq::IrqLine`] (irqfd on a GSI; `trigger()`, `eventfd()`,
//!   `try_clone()`); [`devices::irq::LevelIrq`] for level lines.
//! - **virtio-mmio**: `let slot = vm.allocate_virtio_slot()?` gives
//!   [`vm::VirtioSlot`] `{ index, base, size, gsi, irq: IrqLine }`; build the device with
//!   `slot.irq` and `vm.mem.clone()` (a `GuestMemoryMmap`), register queue-notify ioeventfds
//!   with `vm.register_ioevent(&evt, slot.base + 0x50, Some(queue_index))`, then
//!   `vm.attach_virtio_mmio(&slot, Arc::new(Mutex::new(dev)))`. Every allocated slot is
//!   declared in the DSDT as `LNRO0005` (window + edge interrupt), so Debian's kernel finds it
//!   once virtio_mmio.ko is loaded.
//! - **PCI** (the pc machine): `vm.pc` ([`pci::pc::PcPlatform`]) holds bus 0
//!   ([`pci::root::PciRoot`] over `vm.pio_bus` / `vm.mmio_bus`, reached through
//!   [`pci::config_io::ConfigIo`] at 0xCF8), the MSI router and the INTx resampler; a function
//!   implements [`pci::root::PciFunction`] and is added with `pc.add(devfn, function)`
//!   ([`virtio::pci::VirtioPci`] with MSI-X through a [`pci::msix::MsiSink`]; virtio devices
//!   take the slot [`vireo_vmm_api::pci::slots`] gives them).
//! - **Framebuffer**: `vm.framebuffer()?` returns
//!   `Option<Arc<`[`devices::fbmem::FramebufferMemory`]`>>` (created from `config.display`):
//!   a dirty-logged KVM slot at [`layout::FRAMEBUFFER_START`], XRGB8888, stride width*4;
//!   `geometry()`, `read_into(offset, &mut buf)`, `volatile()`, `take_dirty_pages()`. Its
//!   geometry is announced in boot_params.screen_info (VESA LFB) by this crate (bzImage boot
//!   only: the PVH start_info has no screen_info, so an ELF vmlinux gets no boot framebuffer).
//! - **Keyboard** (VNC): `vm.keyboard` is a cloneable [`devices::i8042::KeyboardInput`]:
//!   `push_scancodes(&[u8])` takes set-1 (XT) scancodes, `leds() -> u8` (1 scroll, 2 num,
//!   4 caps).
//! - **Control commands and events**: `vm.add_control_handler(Box<dyn`
//!   [`control::ControlHandler`]`>)` for commands such as `screendump` / `vnc-info`;
//!   `vm.events` ([`control::events::EventBus`], cloneable) `.emit(name, json)` pushes an
//!   event to every control client.
//! - **Lifecycle**: `vm.exit` ([`lifecycle::ExitHandle`]) ends the VM with a reason.
//! - **Threads**: worker threads call [`seccomp::apply_current`] with their
//!   [`seccomp::ThreadKind`] first thing.

/// `eprintln!` for the VMM's log lines. stderr is a pipe to the supervisor, which copies it into
/// the capped `vmm.log`; if the supervisor is gone, a write fails with EPIPE, and `eprintln!`
/// would then panic (and the panic hook end the VM). A machine outlives its supervisor: its log
/// lines are lost, not the machine.
#[macro_export]
macro_rules! vmm_log {
    ($($arg:tt)*) => {{
        let _ = ::std::io::Write::write_fmt(
            &mut ::std::io::stderr().lock(),
            ::std::format_args!("{}\n", ::std::format_args!($($arg)*)),
        );
    }};
}

pub mod acpi;
pub mod boot;
pub use vireo_vmm_api::config;
pub mod control;
pub mod cpu;
pub mod devices;
pub mod layout;
pub mod lifecycle;
pub mod pci;
/// Caps on what a guest can make the host write (shared with the driver).
pub use vireo_vmm_api::logcap;
pub mod random;
pub mod scsi;
pub mod seccomp;
pub mod smbios;
pub mod unix_socket;
pub mod vcpu;
pub mod virtio;
pub mod vm;
pub mod vnc;
