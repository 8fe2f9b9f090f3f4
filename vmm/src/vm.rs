//! Building a VM from a [`VmConfig`] and running its vCPUs.
//!
//! Order: [`Vm::new`] creates KVM objects, guest RAM and the platform devices; optional
//! devices attach through the hook methods ([`Vm::allocate_virtio_slot`],
//! [`Vm::attach_virtio_mmio`], [`Vm::framebuffer`], [`Vm::add_control_handler`]); then
//! [`Vm::load`] loads the kernel and writes ACPI tables (which list the attached virtio
//! devices) and boot data; [`Vm::start`] spawns the vCPU threads.

use crate::acpi::{self, AcpiConfig, PcAcpi, VirtioMmioAcpi};
use crate::boot::firmware::{self, FirmwareError, FirmwareMapping};
use crate::boot::firmware_files::{self, FirmwareDisplay};
use crate::boot::{self, Entry};
use crate::config::{DisplayModel, Machine, VmConfig};
use crate::control::events::EventBus;
use crate::control::ControlHandler;
use crate::cpu;
use crate::devices::acpi_pm::{AcpiPm, ResetPort};
use crate::devices::bus::{Bus, BusDevice, SharedDevice};
use crate::devices::debugcon::{self, DebugCon};
use crate::devices::fbmem::{FramebufferGeometry, FramebufferMemory};
use crate::devices::fw_cfg::{self, FwCfg};
use crate::devices::i8042::{KeyboardInput, I8042};
use crate::devices::irq::{IrqLine, LevelIrq};
use crate::devices::legacy::{BootMark, BootMarker, PortA, PortB};
use crate::devices::pflash::Pflash;
use crate::devices::ramfb::Ramfb;
use crate::devices::rtc::Rtc;
use crate::devices::serial::{SerialDevice, SerialSink};
use crate::devices::vga::{StdVga, VBE_PORT, VBE_PORTS_LEN, VGA_PORT_BASE, VGA_PORT_LEN};
use crate::layout;
use crate::lifecycle::{ExitHandle, ExitReason};
use crate::pci::pc::{PcPlatform, VGA_SLOT};
use crate::vcpu::{RunControl, VcpuThread};
use crate::virtio::CloseError;
use kvm_bindings::{kvm_pit_config, kvm_userspace_memory_region, CpuId, KVM_PIT_SPEAKER_DUMMY};
use kvm_ioctls::{IoEventAddress, Kvm, NoDatamatch, VcpuFd, VmFd};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use vm_memory::{
    GuestAddress, GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion, MemoryRegionAddress,
};
use vmm_sys_util::eventfd::EventFd;

#[derive(Debug, thiserror::Error)]
pub enum VmError {
    #[error(
        "cannot open /dev/kvm: permission denied; add this user to the `kvm` group \
         (`sudo usermod -aG kvm $USER`, then log in again) or ask your administrator"
    )]
    KvmPermission,
    #[error("cannot open /dev/kvm: it does not exist; KVM is not available on this host (enable virtualization in the firmware and load kvm_intel or kvm_amd)")]
    KvmMissing,
    #[error("cannot open /dev/kvm: {0}")]
    KvmOpen(kvm_ioctls::Error),
    #[error("vcpus: {got} requested, this host's KVM allows at most {max} (KVM_CAP_MAX_VCPUS)")]
    TooManyVcpus { got: u8, max: usize },
    #[error("memory_mib: cannot allocate {mib} MiB of guest memory: {reason}")]
    Memory { mib: u64, reason: String },
    #[error("KVM: {what}: {err}")]
    Kvm {
        what: &'static str,
        err: kvm_ioctls::Error,
    },
    #[error("{0}")]
    Boot(#[from] boot::BootError),
    #[error("{0}")]
    Acpi(#[from] acpi::AcpiError),
    #[error("{0}")]
    Cpu(#[from] cpu::CpuError),
    #[error("{0}")]
    Firmware(#[from] FirmwareError),
    #[error("device setup: {0}")]
    Device(String),
    #[error("no free virtio-mmio slot (at most {})", layout::VIRTIO_MMIO_MAX)]
    NoVirtioSlot,
}

fn kvm_err(what: &'static str) -> impl FnOnce(kvm_ioctls::Error) -> VmError {
    move |err| VmError::Kvm { what, err }
}

fn dev_err(what: &str) -> impl FnOnce(std::io::Error) -> VmError + '_ {
    move |e| VmError::Device(format!("{what}: {e}"))
}

/// A virtio-mmio slot handed to a virtio device before it is attached.
#[derive(Debug)]
pub struct VirtioSlot {
    pub index: usize,
    /// Guest physical base of the 4 KiB register window.
    pub base: u64,
    pub size: u64,
    pub gsi: u32,
    /// The device's interrupt (irqfd on `gsi`).
    pub irq: IrqLine,
}

/// A VM being built and then run.
pub struct Vm {
    pub config: VmConfig,
    pub kvm: Kvm,
    pub vm_fd: Arc<VmFd>,
    pub mem: GuestMemoryMmap,
    pub pio_bus: Arc<Bus>,
    pub mmio_bus: Arc<Bus>,
    pub exit: ExitHandle,
    pub events: EventBus,
    pub acpi: AcpiConfig,
    /// The PS/2 keyboard, for input sources (VNC).
    pub keyboard: KeyboardInput,
    pub pm: Arc<Mutex<AcpiPm>>,
    pub serial: Arc<Mutex<SerialDevice>>,
    pub framebuffer_mem: Option<Arc<FramebufferMemory>>,
    /// The firmware-stage display, made by [`Vm::ramfb`].
    ramfb: Option<Ramfb>,
    /// The standard VGA of a pc machine whose display model is `vga`.
    pub vga: Option<StdVga>,
    /// The virtio devices, attached by [`Vm::attach_optional_devices`]; its `input`
    /// is the virtio keyboard/tablet handle for the VNC server.
    pub virtio: Option<crate::virtio::attach::VirtioDevices>,
    pub boot_marks: Arc<Mutex<Vec<BootMark>>>,
    pub control_handlers: Vec<Box<dyn ControlHandler>>,
    pub start: Instant,
    pub run: Arc<RunControl>,
    vcpu_fds: Vec<VcpuFd>,
    cpuid: CpuId,
    entry: Option<Entry>,
    /// Firmware boot: the BIOS image's read-only copy below 4 GiB, mapped while the VM lives.
    firmware: Option<FirmwareMapping>,
    /// The `pc` machine's PCI bus; `None` on microvm.
    pub pc: Option<PcPlatform>,
    /// UEFI's variable store and its file, synced when the VM ends.
    pflash: Option<(std::path::PathBuf, Arc<Mutex<Pflash>>)>,
}

fn open_kvm() -> Result<Kvm, VmError> {
    Kvm::new().map_err(|e| match e.errno() {
        libc::EACCES | libc::EPERM => VmError::KvmPermission,
        libc::ENOENT | libc::ENXIO | libc::ENODEV => VmError::KvmMissing,
        _ => VmError::KvmOpen(e),
    })
}

impl Vm {
    /// Creates the VM, its memory and platform devices. `start` is when the process started
    /// (boot-marker times are relative to it).
    pub fn new(config: VmConfig, start: Instant) -> Result<Vm, VmError> {
        let kvm = open_kvm()?;
        let max = kvm.get_max_vcpus();
        if usize::from(config.vcpus) > max {
            return Err(VmError::TooManyVcpus {
                got: config.vcpus,
                max,
            });
        }
        let vm_fd = Arc::new(kvm.create_vm().map_err(kvm_err("KVM_CREATE_VM"))?);
        vm_fd
            .set_tss_address(layout::KVM_TSS as usize)
            .map_err(kvm_err("KVM_SET_TSS_ADDR"))?;
        let _ = vm_fd.set_identity_map_address(layout::KVM_IDENTITY_MAP);
        vm_fd
            .create_irq_chip()
            .map_err(kvm_err("KVM_CREATE_IRQCHIP"))?;
        let pit = kvm_pit_config {
            flags: KVM_PIT_SPEAKER_DUMMY,
            ..Default::default()
        };
        vm_fd.create_pit2(pit).map_err(kvm_err("KVM_CREATE_PIT2"))?;
        pit_without_reinjection(&vm_fd)?;

        let mem_size = config.memory_mib << 20;
        let ranges: Vec<(GuestAddress, usize)> = layout::ram_regions(mem_size)
            .into_iter()
            .map(|(b, s)| (GuestAddress(b), s as usize))
            .collect();
        let mem = GuestMemoryMmap::<()>::from_ranges(&ranges).map_err(|e| VmError::Memory {
            mib: config.memory_mib,
            reason: e.to_string(),
        })?;
        for (slot, region) in mem.iter().enumerate() {
            let host = region
                .get_host_address(MemoryRegionAddress(0))
                .map_err(|e| VmError::Memory {
                    mib: config.memory_mib,
                    reason: e.to_string(),
                })?;
            let mr = kvm_userspace_memory_region {
                slot: slot as u32,
                flags: 0,
                guest_phys_addr: region.start_addr().0,
                memory_size: region.len(),
                userspace_addr: host as u64,
            };
            // Transparent huge pages for guest RAM (hosts default to THP on madvise only):
            // far fewer nested page faults and TLB misses. A refusal only costs speed.
            // SAFETY: advisory call on a mapping we own, for exactly its length.
            unsafe {
                libc::madvise(host.cast(), region.len() as usize, libc::MADV_HUGEPAGE);
            }
            // SAFETY: the region belongs to `mem`, which lives as long as the VM (the Vm owns
            // both and the process exits with them).
            unsafe { vm_fd.set_user_memory_region(mr) }
                .map_err(kvm_err("KVM_SET_USER_MEMORY_REGION"))?;
        }

        let exit = ExitHandle::new().map_err(dev_err("exit eventfd"))?;
        let events = EventBus::new();
        let pio_bus = Arc::new(Bus::new());
        let mmio_bus = Arc::new(Bus::new());

        // COM1
        let log = match &config.serial.log {
            Some(p) => Some(
                crate::logcap::CappedLog::open(p, crate::logcap::limits(crate::logcap::SERIAL_LOG))
                    .map_err(|e| VmError::Device(format!("serial.log {}: {e}", p.display())))?,
            ),
            None => None,
        };
        let mut sink = SerialSink::new(log);
        sink.echo_stderr = std::env::var_os("VIREO_VMM_SERIAL_STDERR").is_some();
        let serial_irq = IrqLine::new(&vm_fd, layout::COM1_GSI).map_err(dev_err("COM1 irqfd"))?;
        let serial = Arc::new(Mutex::new(SerialDevice::new(serial_irq, sink)));
        insert(&pio_bus, serial.clone(), layout::COM1_PORT.into(), 8)?;

        // i8042 (one instance at both ports)
        let kbd_irq = IrqLine::new(&vm_fd, layout::KEYBOARD_GSI).map_err(dev_err("i8042 irqfd"))?;
        let i8042 = Arc::new(Mutex::new(I8042::new(Some(kbd_irq), exit.clone())));
        insert(&pio_bus, i8042.clone(), layout::I8042_DATA_PORT.into(), 1)?;
        insert(&pio_bus, i8042.clone(), layout::I8042_CMD_PORT.into(), 1)?;
        let keyboard = KeyboardInput::new(i8042);

        insert(
            &pio_bus,
            Arc::new(Mutex::new(PortB::default())),
            layout::PORT_B.into(),
            1,
        )?;
        insert(
            &pio_bus,
            Arc::new(Mutex::new(PortA::new(exit.clone()))),
            layout::PORT_A.into(),
            1,
        )?;
        let rtc_irq = IrqLine::new(&vm_fd, layout::RTC_GSI).map_err(dev_err("RTC irqfd"))?;
        let rtc = Rtc::with_memory(mem_size, config.vcpus)
            .with_interrupt(Box::new(rtc_irq))
            .map_err(dev_err("RTC timer thread"))?;
        insert(
            &pio_bus,
            Arc::new(Mutex::new(rtc)),
            layout::RTC_PORT.into(),
            2,
        )?;

        let pm = Arc::new(Mutex::new(AcpiPm::new(
            Some(LevelIrq::new(vm_fd.clone(), layout::SCI_GSI)),
            exit.clone(),
        )));
        let pc = match config.machine {
            Machine::Microvm => {
                insert(&pio_bus, pm.clone(), layout::PM1A_EVT_PORT.into(), 6)?;
                insert(
                    &pio_bus,
                    Arc::new(Mutex::new(ResetPort::new(exit.clone()))),
                    layout::PCI_CONFIG_PORT.into(),
                    8,
                )?;
                None
            }
            Machine::Pc => Some(
                PcPlatform::new(
                    vm_fd.clone(),
                    pio_bus.clone(),
                    mmio_bus.clone(),
                    pm.clone(),
                    exit.clone(),
                )
                .map_err(|e| VmError::Device(e.to_string()))?,
            ),
        };
        let ev = events.clone();
        let marker = BootMarker::new(
            start,
            Some(Box::new(move |m: BootMark| {
                ev.emit(vireo_vmm_api::control::Event::BootMarker {
                    value: m.value,
                    ms: m.since_start.as_secs_f64() * 1000.0,
                })
            })),
        );
        let boot_marks = marker.marks();
        if config.boot_marker {
            let marker = Arc::new(Mutex::new(marker));
            insert(&pio_bus, marker.clone(), layout::BOOT_MARKER_PORT.into(), 1)?;
            insert(
                &mmio_bus,
                marker,
                layout::BOOT_MARKER_MMIO,
                layout::BOOT_MARKER_MMIO_SIZE,
            )?;
        }

        let mut vcpu_fds = Vec::new();
        for id in 0..config.vcpus {
            vcpu_fds.push(
                vm_fd
                    .create_vcpu(u64::from(id))
                    .map_err(kvm_err("KVM_CREATE_VCPU"))?,
            );
        }
        let mut cpuid = cpu::supported_cpuid(&kvm).map_err(kvm_err("KVM_GET_SUPPORTED_CPUID"))?;
        cpu::disable_features(&mut cpuid, &config.cpu_features_off);
        let run = Arc::new(RunControl::new(usize::from(config.vcpus)));
        let acpi = AcpiConfig {
            vcpus: config.vcpus,
            virtio_mmio: Vec::new(),
            pc: match config.machine {
                Machine::Pc => Some(PcAcpi {
                    pm_base: layout::pc_pm_base(
                        config.firmware.as_ref().is_some_and(|f| f.nvram.is_some()),
                    ),
                    mmio64: layout::pci_mmio64_window(mem_size),
                }),
                Machine::Microvm => None,
            },
        };

        Ok(Vm {
            config,
            kvm,
            vm_fd,
            mem,
            pio_bus,
            mmio_bus,
            exit,
            events,
            acpi,
            keyboard,
            pm,
            serial,
            framebuffer_mem: None,
            ramfb: None,
            vga: None,
            virtio: None,
            boot_marks,
            control_handlers: Vec::new(),
            start,
            run,
            vcpu_fds,
            cpuid,
            entry: None,
            firmware: None,
            pc,
            pflash: None,
        })
    }

    // ---- Hook points for optional devices (see the crate docs) ----

    /// Reserves the next virtio-mmio window and GSI and creates its irqfd.
    pub fn allocate_virtio_slot(&mut self) -> Result<VirtioSlot, VmError> {
        let index = self.acpi.virtio_mmio.len();
        let (base, gsi) = layout::virtio_mmio_slot(index).ok_or(VmError::NoVirtioSlot)?;
        let irq = IrqLine::new(&self.vm_fd, gsi).map_err(dev_err("virtio irqfd"))?;
        // Reserve now so a second allocation gets the next slot even before attach.
        self.acpi.virtio_mmio.push(VirtioMmioAcpi {
            base,
            size: layout::VIRTIO_MMIO_SIZE,
            gsi,
        });
        Ok(VirtioSlot {
            index,
            base,
            size: layout::VIRTIO_MMIO_SIZE,
            gsi,
            irq,
        })
    }

    /// Puts a virtio-mmio device on the MMIO bus at its slot (it then appears in the DSDT).
    pub fn attach_virtio_mmio(
        &mut self,
        slot: &VirtioSlot,
        dev: SharedDevice,
    ) -> Result<(), VmError> {
        self.mmio_bus
            .insert(dev, slot.base, slot.size)
            .map_err(|e| VmError::Device(e.to_string()))
    }

    /// Registers an ioeventfd: a guest write to MMIO `addr` (e.g. QueueNotify at base + 0x50)
    /// signals `evt` inside KVM without a userspace exit; `datamatch` restricts it to one
    /// value (the queue index).
    pub fn register_ioevent(
        &self,
        evt: &EventFd,
        addr: u64,
        datamatch: Option<u32>,
    ) -> Result<(), VmError> {
        let a = IoEventAddress::Mmio(addr);
        match datamatch {
            Some(v) => self.vm_fd.register_ioevent(evt, &a, v),
            None => self.vm_fd.register_ioevent(evt, &a, NoDatamatch),
        }
        .map_err(kvm_err("KVM_IOEVENTFD"))
    }

    /// Creates the framebuffer memory slot (dirty-logged) from `config.display`, once. Its
    /// geometry goes into boot_params.screen_info when the kernel is loaded.
    pub fn framebuffer(&mut self) -> Result<Option<Arc<FramebufferMemory>>, VmError> {
        if self.framebuffer_mem.is_none() {
            if let Some(d) = &self.config.display {
                let fb = FramebufferMemory::new(self.vm_fd.clone(), d.width, d.height)
                    .map_err(dev_err("framebuffer"))?;
                self.framebuffer_mem = Some(Arc::new(fb));
            }
        }
        Ok(self.framebuffer_mem.clone())
    }

    /// The ramfb device of a firmware-booted machine with a display, created once: fw_cfg
    /// calls it (as its `etc/ramfb` write hook) and the VNC server scans it out. `None` for a
    /// direct kernel boot (its display is [`Vm::framebuffer`]) or a machine without display.
    pub fn ramfb(&mut self) -> Option<Ramfb> {
        let linear = self
            .config
            .display
            .as_ref()
            .is_some_and(|d| d.model == DisplayModel::Linear);
        if self.ramfb.is_none() && self.config.firmware.is_some() && linear {
            self.ramfb = Some(Ramfb::new(self.mem.clone()));
        }
        self.ramfb.clone()
    }

    /// Adds control commands (e.g. `screendump`, `vnc-info`).
    pub fn add_control_handler(&mut self, h: Box<dyn ControlHandler>) {
        self.control_handlers.push(h);
    }

    /// Attaches the optional devices the config asks for. Each subsystem adds one call here.
    pub fn attach_optional_devices(&mut self) -> Result<(), VmError> {
        // Framebuffer memory is created here so screen_info is right even before the VNC
        // server exists; the VNC code takes it with `vm.framebuffer()`. A firmware-booted
        // machine's screen is ramfb, in guest RAM, so it gets no framebuffer slot; the VGA
        // has its own video memory.
        match self.config.display.as_ref().map(|d| d.model) {
            Some(DisplayModel::Vga) => self.attach_vga()?,
            Some(DisplayModel::Linear) if self.config.firmware.is_none() => {
                self.framebuffer()?;
            }
            _ => {}
        }
        let virtio =
            crate::virtio::attach::attach_all(self).map_err(|e| VmError::Device(e.to_string()))?;
        self.virtio = Some(virtio);
        if let Some(pc) = &mut self.pc {
            pc.intx.start().map_err(dev_err("INTx resampler thread"))?;
        }
        let input = self.virtio.as_ref().map(|v| v.input.clone());
        crate::vnc::guest::attach(self, input)?;
        Ok(())
    }

    /// The standard VGA at 00:02.0 (where QEMU's pc machine has it), its ports on the port bus.
    fn attach_vga(&mut self) -> Result<(), VmError> {
        let (Some(d), Some(pc)) = (&self.config.display, &mut self.pc) else {
            return Err(VmError::Device(
                "the VGA display needs the pc machine's PCI bus".into(),
            ));
        };
        let vga = StdVga::new(
            Some(self.vm_fd.clone()),
            self.mem.clone(),
            d.width,
            d.height,
        )
        .map_err(dev_err("VGA video memory"))?;
        let function = vga
            .function()
            .map_err(|e| VmError::Device(format!("VGA: {e}")))?;
        pc.add(VGA_SLOT, Arc::new(Mutex::new(function)))
            .map_err(|e| VmError::Device(format!("VGA: {e}")))?;
        insert(
            &self.pio_bus,
            Arc::new(Mutex::new(vga.vga_ports())),
            VGA_PORT_BASE.into(),
            VGA_PORT_LEN.into(),
        )?;
        insert(
            &self.pio_bus,
            Arc::new(Mutex::new(vga.vbe_ports())),
            VBE_PORT.into(),
            VBE_PORTS_LEN.into(),
        )?;
        self.vga = Some(vga);
        Ok(())
    }

    /// What a directly booted kernel is told about its screen: the linear framebuffer, or the
    /// VGA in a linear mode of the configured size (the mode firmware would have set).
    fn boot_screen(&self) -> Option<FramebufferGeometry> {
        if let Some(fb) = &self.framebuffer_mem {
            return Some(fb.geometry());
        }
        let (vga, d) = (self.vga.as_ref()?, self.config.display.as_ref()?);
        let (w, h) = (u16::try_from(d.width).ok()?, u16::try_from(d.height).ok()?);
        let base = vga.set_boot_mode(w, h)?;
        let stride = d.width * 4;
        Some(FramebufferGeometry {
            width: d.width,
            height: d.height,
            stride,
            base,
            size: crate::devices::fbmem::mapped_size(stride, d.height),
        })
    }

    /// Loads kernel, initrd and command line; writes ACPI tables, boot data and vCPU state.
    pub fn load(&mut self) -> Result<(), VmError> {
        let mem_size = self.config.memory_mib << 20;
        let Some(kernel) = self.config.kernel.clone() else {
            return self.load_firmware();
        };
        let mut loaded = boot::load_kernel(
            &self.mem,
            &kernel,
            self.config.kernel_unpacked.as_deref(),
            mem_size,
        )?;
        if let Some(initrd) = &self.config.initrd {
            boot::load_initrd(&self.mem, initrd, &mut loaded, mem_size)?;
        }
        boot::write_cmdline(&self.mem, &self.config.cmdline)?;
        if let Some(pc) = &self.pc {
            pc.program_as_firmware()
                .map_err(|e| VmError::Device(e.to_string()))?;
        }
        boot::write_boot_structures(&self.mem)?;
        let rsdp = acpi::write_tables(&self.mem, &self.acpi)?;
        match (&loaded.entry, &loaded.setup_header) {
            (Entry::Linux64 { .. }, Some(hdr)) => {
                let fb = self.boot_screen();
                boot::zeropage::write(
                    &self.mem,
                    hdr,
                    mem_size,
                    self.config.cmdline.len() + 1,
                    loaded.initrd,
                    rsdp,
                    fb,
                )
                .map_err(boot::BootError::from)?;
            }
            _ => boot::write_pvh_start_info(&self.mem, mem_size, loaded.initrd, rsdp)?,
        }
        for (id, vcpu) in self.vcpu_fds.iter().enumerate() {
            cpu::setup_vcpu(vcpu, id as u8, self.config.vcpus, &self.cpuid, loaded.entry)?;
        }
        self.entry = Some(loaded.entry);
        Ok(())
    }

    /// Firmware boot: fw_cfg on the port bus, the BIOS image in place, vCPUs in their reset
    /// state. ACPI reaches the firmware as fw_cfg files (the linker/loader), which it places
    /// itself; nothing is written at the direct boot's ACPI area.
    fn load_firmware(&mut self) -> Result<(), VmError> {
        let Some(fw) = self.config.firmware.clone() else {
            return Err(VmError::Device(
                "the config names neither a kernel nor a firmware".into(),
            ));
        };
        let image = match &fw.nvram {
            Some(_) => firmware::read_flash_code(&fw.loader)?,
            None => firmware::read_image(&fw.loader)?,
        };
        // SeaBIOS shows its screen through a VGA ROM and has none without one; OVMF drives
        // ramfb and the VGA itself.
        let rom = match (&fw.vga_rom, fw.nvram.is_some()) {
            (Some(rom), false) => Some(firmware::read_vga_rom(rom)?),
            _ => None,
        };
        let uefi = fw.nvram.is_some();
        let display = match (self.vga.is_some(), self.ramfb()) {
            (true, _) if rom.is_some() || uefi => Some(FirmwareDisplay::Vga { rom }),
            (false, Some(dev)) if rom.is_some() || uefi => {
                Some(FirmwareDisplay::Ramfb(firmware_files::Ramfb {
                    vga_rom: rom,
                    hook: Box::new(dev),
                }))
            }
            _ => None,
        };
        let acpi = acpi::loader::build(&self.acpi)?;
        let items =
            firmware_files::fw_cfg_builder(&self.config, &fw, image.len() as u64, &acpi, display)
                .map_err(FirmwareError::from)?;
        let dev = Arc::new(Mutex::new(FwCfg::new(items, self.mem.clone())));
        insert(
            &self.pio_bus,
            dev.clone(),
            fw_cfg::SELECTOR_PORT.into(),
            fw_cfg::PORTS_LEN,
        )?;
        insert(&self.pio_bus, dev, fw_cfg::DMA_PORT.into(), fw_cfg::DMA_LEN)?;
        insert(
            &self.pio_bus,
            Arc::new(Mutex::new(DebugCon::to_log())),
            debugcon::PORT.into(),
            1,
        )?;
        self.firmware = Some(match &fw.nvram {
            Some(nvram) => self.map_flash(&image, nvram)?,
            None => firmware::map_image(&self.vm_fd, &self.mem, &image)?,
        });
        for (id, vcpu) in self.vcpu_fds.iter().enumerate() {
            cpu::setup_vcpu_firmware(vcpu, id as u8, self.config.vcpus, &self.cpuid)?;
        }
        Ok(())
    }

    /// UEFI: the code read-only ending at 4 GiB, the variable store as a flash chip below it.
    fn map_flash(
        &mut self,
        code: &[u8],
        nvram: &std::path::Path,
    ) -> Result<FirmwareMapping, VmError> {
        let err = |source| {
            VmError::Firmware(FirmwareError::Nvram {
                path: nvram.to_owned(),
                source,
            })
        };
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(nvram)
            .map_err(err)?;
        let vars = Pflash::new(file).map_err(err)?;
        let code_base = layout::MMIO_HOLE_END - code.len() as u64;
        let vars_base = code_base - vars.len();
        let len = vars.len();
        let host = vars.host_address();
        let vm_fd = self.vm_fd.clone();
        let flags = firmware::read_only_flag(&vm_fd);
        // Without read-only memory a slot would take the guest's writes silently: the store
        // then stays MMIO only, slower but right.
        let vars = if flags != 0 {
            vars.with_array_slot(Box::new(move |on| {
                let region = kvm_userspace_memory_region {
                    slot: layout::FLASH_VARS_SLOT,
                    flags,
                    guest_phys_addr: vars_base,
                    memory_size: if on { len } else { 0 },
                    userspace_addr: host,
                };
                // SAFETY: `host` is the chip's own mapping of `len` bytes, which lives as long
                // as the chip, and the chip (which owns this closure) lives as long as the VM.
                unsafe { vm_fd.set_user_memory_region(region) }.map_err(std::io::Error::from)
            }))
            .map_err(err)?
        } else {
            vars
        };
        let vars = Arc::new(Mutex::new(vars));
        insert(&self.mmio_bus, vars.clone(), vars_base, len)?;
        self.pflash = Some((nvram.to_owned(), vars));
        Ok(firmware::map_read_only(&self.vm_fd, code, code_base)?)
    }

    /// Closes every virtio device as the VM ends ([`crate::virtio::VirtioDevice::close`]):
    /// each disk stops its worker, flushes its image and closes it, as QEMU flushes and closes
    /// every block device on exit. Without this nothing would: vCPU threads hold the buses (and
    /// so the devices) until the process is gone, and a qcow2 image keeps the mappings of newly
    /// written clusters in memory until a flush. Call on the main thread (its seccomp filter
    /// allows the writes, syncs and closes) with the vCPUs paused. Returns what failed.
    pub fn close_devices(&self) -> Vec<CloseError> {
        let mut failed: Vec<CloseError> = self
            .virtio
            .iter()
            .flat_map(|v| &v.transports)
            .filter_map(|t| t.close().err())
            .collect();
        if let Some((path, vars)) = &self.pflash {
            let flushed = vars.lock().unwrap_or_else(|e| e.into_inner()).flush();
            if let Err(source) = flushed {
                failed.push(CloseError::Flush {
                    device: path.display().to_string(),
                    source,
                });
            }
        }
        failed
    }

    /// Spawns one thread per vCPU.
    pub fn start(&mut self) -> Result<Vec<VcpuThread>, VmError> {
        crate::vcpu::install_kick_handler()
            .map_err(|e| VmError::Device(format!("signal handler: {e}")))?;
        let mut threads = Vec::new();
        for (id, fd) in std::mem::take(&mut self.vcpu_fds).into_iter().enumerate() {
            let t = crate::vcpu::spawn(
                id as u8,
                fd,
                self.pio_bus.clone(),
                self.mmio_bus.clone(),
                self.exit.clone(),
                self.run.clone(),
                self.config.seccomp,
            )
            .map_err(dev_err("vCPU thread"))?;
            threads.push(t);
        }
        Ok(threads)
    }
}

/// Why the VM ended, once its devices are closed. A device that could not flush may have lost
/// writes the guest saw complete, so a poweroff, quit, reboot or crash becomes an error (exit
/// status 1): the driver then reports the machine as failed with the log's reason, and does not
/// take the end for a clean poweroff, nor boot a fresh process (reboot, on_crash restart) on an
/// image that may lack those writes. An error stays the error it was.
pub fn exit_after_close(reason: ExitReason, failed: &[CloseError]) -> ExitReason {
    if failed.is_empty() || matches!(reason, ExitReason::Error(_)) {
        return reason;
    }
    let ended = match &reason {
        ExitReason::Crash(r) => format!("guest crashed ({r})"),
        other => format!("VM ended: {}", other.kind().as_str()),
    };
    let why: Vec<String> = failed.iter().map(ToString::to_string).collect();
    ExitReason::Error(format!("{ended}, but {}", why.join("; ")))
}

/// In its default (reinject) mode KVM's PIT holds every tick back until the guest has
/// acknowledged the one before. One tick lost on its way in (nested virtualization was seen to
/// lose one while firmware sat in `sti; hlt`) then stops the timer for good, and SeaBIOS and GRUB,
/// which halt until the next timer interrupt while they wait for a disk or a key, sleep forever.
/// Without reinjection a lost tick is one tick late, as QEMU's `lost_tick_policy=discard`.
fn pit_without_reinjection(vm_fd: &VmFd) -> Result<(), VmError> {
    const KVMIO: u32 = 0xae;
    vmm_sys_util::ioctl_io_nr!(KVM_REINJECT_CONTROL, KVMIO, 0x71);
    if !vm_fd.check_extension(kvm_ioctls::Cap::ReinjectControl) {
        return Ok(());
    }
    let control = kvm_bindings::kvm_reinject_control {
        pit_reinject: 0,
        ..Default::default()
    };
    // SAFETY: the ioctl reads a kvm_reinject_control that lives across the call; the return
    // value is checked.
    let ret =
        unsafe { vmm_sys_util::ioctl::ioctl_with_ref(vm_fd, KVM_REINJECT_CONTROL(), &control) };
    if ret < 0 {
        return Err(kvm_err("KVM_REINJECT_CONTROL")(kvm_ioctls::Error::last()));
    }
    Ok(())
}

fn insert<D: BusDevice + 'static>(
    bus: &Bus,
    dev: Arc<Mutex<D>>,
    base: u64,
    len: u64,
) -> Result<(), VmError> {
    bus.insert(dev, base, len)
        .map_err(|e| VmError::Device(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::{EXIT_CRASH, EXIT_ERROR, EXIT_POWEROFF, EXIT_REBOOT};

    fn flush_failed() -> CloseError {
        CloseError::Flush {
            device: "/images/a.qcow2".into(),
            source: std::io::Error::from_raw_os_error(libc::EIO),
        }
    }

    #[test]
    fn closed_devices_leave_the_exit_reason_alone() {
        for r in [
            ExitReason::Poweroff,
            ExitReason::Quit,
            ExitReason::Reboot,
            ExitReason::Crash("triple fault".into()),
            ExitReason::Error("KVM_RUN failed".into()),
        ] {
            assert_eq!(exit_after_close(r.clone(), &[]), r);
        }
    }

    #[test]
    fn a_failed_flush_turns_every_end_into_an_error() {
        for (r, code) in [
            (ExitReason::Poweroff, EXIT_POWEROFF),
            (ExitReason::Quit, EXIT_POWEROFF),
            (ExitReason::Reboot, EXIT_REBOOT),
            (ExitReason::Crash("triple fault".into()), EXIT_CRASH),
        ] {
            assert_eq!(r.exit_code(), code);
            let after = exit_after_close(r.clone(), &[flush_failed()]);
            assert_eq!(after.exit_code(), EXIT_ERROR, "{r:?}");
            let ExitReason::Error(detail) = after else {
                panic!("{r:?} stayed {after:?}");
            };
            assert!(
                detail.contains("/images/a.qcow2") && detail.contains("flush"),
                "{detail}"
            );
        }
        let crash = exit_after_close(ExitReason::Crash("triple fault".into()), &[flush_failed()]);
        assert!(
            matches!(&crash, ExitReason::Error(d) if d.contains("triple fault")),
            "{crash:?}"
        );
        // An error keeps its own reason.
        let e = ExitReason::Error("KVM_RUN failed".into());
        assert_eq!(exit_after_close(e.clone(), &[flush_failed()]), e);
    }
}
