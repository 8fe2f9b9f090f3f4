//! Puts the virtio devices a [`VmConfig`] asks for on a [`Vm`], on the machine's transport:
//! - microvm: one virtio-mmio slot each (which the core declares in the DSDT as LNRO0005), an
//!   irqfd line, one KVM ioeventfd per queue on QueueNotify with the queue index as datamatch,
//!   and the transport on the MMIO bus;
//! - pc: one PCI slot each on bus 0 (virtio-pci), MSI-X vectors through KVM's routing, an INTx
//!   line with resample for drivers without MSI-X, doorbells handed to KVM wherever the BAR is
//!   placed.
//!
//! Order (and so the guest's names): disks (vda, vdb, ...), virtio-scsi controllers, network
//! interfaces, rng, keyboard, tablet. Disk `i` sits in slot `i` and controller `c` in slot
//! `disks + c` (counted from the first virtio slot): the firmware's `bootorder` names devices
//! by slot ([`scsi_slot`]).

use std::sync::{Arc, Mutex, OnceLock};

use kvm_ioctls::{IoEventAddress, NoDatamatch};

use virtio_bindings::virtio_mmio::VIRTIO_MMIO_QUEUE_NOTIFY;

use super::block::image::{BackingLayer, DiskFormat as ImageFormat, ImageError, ImageOptions};
use super::block::Block;
use super::input::{InputHandle, InputKind, VirtioInput};
use super::mmio::MmioTransport;
use super::net::{Net, NetStats};
use super::passt::{Forward, ForwardProtocol, PasstError, PasstOptions};
use super::pci::VirtioPci;
use super::rng::Rng;
use super::scsi::bus::{BusUnit, ScsiBus};
use super::scsi::media::Drives;
use super::scsi::{GuestChangeHook, Scsi};
use super::{CloseError, Interrupt, IrqTrigger, VirtioDevice};
use crate::config::{DiskConfig, DiskFormat, NetBackend, Protocol, ScsiDeviceKind, VmConfig};
use crate::devices::bus::BusDevice;
use crate::devices::irq::IrqLine;
use crate::pci::root::DevFn;
use crate::scsi::{LogicalUnit, Medium};
use crate::vm::{Vm, VmError};
use vireo_vmm_api::pci::VirtioRef;

impl IrqTrigger for IrqLine {
    fn trigger(&self) -> std::io::Result<()> {
        IrqLine::trigger(self)
    }
}

impl BusDevice for MmioTransport {
    fn read(&mut self, _base: u64, offset: u64, data: &mut [u8]) {
        MmioTransport::read(self, offset, data);
    }

    fn write(&mut self, _base: u64, offset: u64, data: &[u8]) {
        MmioTransport::write(self, offset, data);
    }
}

/// Why a virtio device could not be attached. Each names the config entry.
#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    /// A disk image could not be opened or locked.
    #[error("disks[{index}]: {source}")]
    Disk {
        /// Index in `VmConfig::disks`.
        index: usize,
        /// Cause.
        #[source]
        source: ImageError,
    },
    /// A SCSI device's image could not be opened or locked.
    #[error("scsi[{controller}] `{id}`: {source}")]
    Scsi {
        /// Index in `VmConfig::scsi`.
        controller: usize,
        /// The device's id.
        id: String,
        /// Cause (boxed: the id makes this variant the largest).
        #[source]
        source: Box<ImageError>,
    },
    /// passt could not be started for an interface.
    #[error("nets[{index}]: {source}")]
    Net {
        /// Index in `VmConfig::nets`.
        index: usize,
        /// Cause.
        #[source]
        source: PasstError,
    },
    /// Creating an eventfd or the transport failed.
    #[error("{what}: {source}")]
    Io {
        /// Which device.
        what: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The VM refused the slot, ioeventfd or bus range.
    #[error("{what}: {source}")]
    Vm {
        /// Which device.
        what: String,
        /// Cause.
        #[source]
        source: VmError,
    },
}

/// A device's transport, kept to close the device when the VM ends.
pub enum Transport {
    Mmio(Arc<Mutex<MmioTransport>>),
    Pci(Arc<Mutex<VirtioPci>>),
}

impl Transport {
    /// See [`VirtioDevice::close`].
    pub fn close(&self) -> Result<(), CloseError> {
        match self {
            Transport::Mmio(t) => t.lock().unwrap_or_else(|e| e.into_inner()).close(),
            Transport::Pci(t) => t.lock().unwrap_or_else(|e| e.into_inner()).close(),
        }
    }
}

/// What stays reachable after attaching.
pub struct VirtioDevices {
    /// Keyboard / tablet input for the VNC server (empty if neither is configured).
    pub input: InputHandle,
    /// Counters of each network interface, in config order.
    pub net_stats: Vec<Arc<NetStats>>,
    /// The transports, in slot order (also on the MMIO bus or PCI bus 0).
    pub transports: Vec<Transport>,
    /// The SCSI units, for the control socket's media commands.
    pub drives: Drives,
}

/// The virtio-mmio slot of SCSI controller `controller` on a machine with `disks` virtio-blk
/// disks (see the module documentation).
pub fn scsi_slot(disks: usize, controller: usize) -> usize {
    disks + controller
}

fn image_options(d: &DiskConfig, read_only: bool) -> ImageOptions {
    let format = |f: DiskFormat| match f {
        DiskFormat::Raw => ImageFormat::Raw,
        DiskFormat::Qcow2 => ImageFormat::Qcow2,
    };
    ImageOptions {
        path: d.path.clone(),
        format: format(d.format),
        read_only: read_only || d.readonly || d.cdrom,
        shareable: d.shareable,
        backing: d
            .backing
            .iter()
            .map(|b| BackingLayer {
                path: b.path.clone(),
                format: format(b.format),
            })
            .collect(),
    }
}

/// Opens every unit of one controller: a CD-ROM's medium read-only whatever its config says.
fn scsi_bus(
    controller: usize,
    c: &crate::config::ScsiControllerConfig,
) -> Result<ScsiBus, AttachError> {
    let mut units = Vec::new();
    for dev in &c.devices {
        let err = |source| AttachError::Scsi {
            controller,
            id: dev.id.clone(),
            source: Box::new(source),
        };
        let unit = match &dev.kind {
            ScsiDeviceKind::Cdrom { medium } => {
                let medium = match medium {
                    Some(m) => Some(Medium::open(&image_options(m, true)).map_err(err)?),
                    None => None,
                };
                LogicalUnit::cdrom(medium)
            }
            ScsiDeviceKind::Disk { disk } => {
                let mut unit =
                    LogicalUnit::disk(Medium::open(&image_options(disk, false)).map_err(err)?);
                if let Some(serial) = &disk.serial {
                    unit.set_serial(serial);
                }
                unit
            }
        };
        units.push(BusUnit {
            id: dev.id.clone(),
            // The config checks target <= 255.
            target: u8::try_from(dev.target).unwrap_or(u8::MAX),
            lun: dev.lun,
            unit,
        });
    }
    Ok(ScsiBus::new(units))
}

/// How errors name `device`: its place in the config.
fn config_path(device: VirtioRef) -> String {
    match device {
        VirtioRef::Disk { index } => format!("disks[{index}]"),
        VirtioRef::Scsi { controller } => format!("scsi[{controller}]"),
        VirtioRef::Net { index } => format!("nets[{index}]"),
        VirtioRef::Rng => "rng".into(),
        VirtioRef::Keyboard => "input.keyboard".into(),
        VirtioRef::Tablet => "input.tablet".into(),
    }
}

fn attach_one(
    vm: &mut Vm,
    device: VirtioRef,
    dev: Box<dyn VirtioDevice>,
    out: &mut VirtioDevices,
) -> Result<(), AttachError> {
    let what = config_path(device);
    if vm.pc.is_some() {
        return attach_pci(vm, device, what, dev, out);
    }
    let vm_err = |source| AttachError::Vm {
        what: what.clone(),
        source,
    };
    let slot = vm.allocate_virtio_slot().map_err(vm_err)?;
    let irq = slot.irq.try_clone().map_err(|source| AttachError::Io {
        what: what.clone(),
        source,
    })?;
    let transport = MmioTransport::new(dev, vm.mem.clone(), Box::new(irq)).map_err(|source| {
        AttachError::Io {
            what: what.clone(),
            source,
        }
    })?;
    for (index, evt) in transport.queue_notifiers() {
        vm.register_ioevent(
            evt,
            slot.base + u64::from(VIRTIO_MMIO_QUEUE_NOTIFY),
            Some(index),
        )
        .map_err(vm_err)?;
    }
    let transport = Arc::new(Mutex::new(transport));
    vm.attach_virtio_mmio(&slot, transport.clone())
        .map_err(vm_err)?;
    out.transports.push(Transport::Mmio(transport));
    Ok(())
}

/// [`attach_one`] on the `pc` machine: the device as a virtio-pci function in its slot
/// ([`vireo_vmm_api::pci::slots`], which the config's validation has checked).
fn attach_pci(
    vm: &mut Vm,
    device: VirtioRef,
    what: String,
    dev: Box<dyn VirtioDevice>,
    out: &mut VirtioDevices,
) -> Result<(), AttachError> {
    let io_err = |source| AttachError::Io {
        what: what.clone(),
        source,
    };
    let vm_fd = vm.vm_fd.clone();
    let mem = vm.mem.clone();
    let Some(pc) = vm.pc.as_mut() else {
        return Err(io_err(std::io::Error::other("the machine has no PCI bus")));
    };
    let pci_err = |e: crate::pci::pc::PcError| AttachError::Vm {
        what: what.clone(),
        source: VmError::Device(e.to_string()),
    };
    let at = vireo_vmm_api::pci::slot_of(&vm.config, device)
        .and_then(|slot| DevFn::new(slot, 0))
        .ok_or(crate::pci::pc::PcError::NoSlot)
        .map_err(pci_err)?;
    let vectors = u16::try_from(dev.queue_max_sizes().len() + 1).unwrap_or(u16::MAX);
    let msi = pc.msi.vectors(vectors).map_err(io_err)?;
    // The resampler asks the device's ISR, which exists once the transport does.
    let isr: Arc<OnceLock<Arc<Interrupt>>> = Arc::new(OnceLock::new());
    let pending = isr.clone();
    let intx = pc
        .intx
        .line(
            crate::layout::pci_intx_gsi(at.device(), 0),
            Box::new(move || pending.get().is_some_and(|i| i.status() != 0)),
        )
        .map_err(io_err)?;
    let doorbells = Box::new(
        move |evt: &vmm_sys_util::eventfd::EventFd, addr: u64, on: bool| {
            let a = IoEventAddress::Mmio(addr);
            match on {
                true => vm_fd.register_ioevent(evt, &a, NoDatamatch),
                false => vm_fd.unregister_ioevent(evt, &a, NoDatamatch),
            }
            .map_err(std::io::Error::from)
        },
    );
    let function = VirtioPci::new(dev, mem, Box::new(intx), Box::new(msi))
        .map_err(io_err)?
        .with_doorbells(doorbells);
    let _ = isr.set(function.interrupt());
    let function = Arc::new(Mutex::new(function));
    pc.add(at, function.clone()).map_err(pci_err)?;
    out.transports.push(Transport::Pci(function));
    Ok(())
}

/// Attaches every virtio device of `vm.config`.
pub fn attach_all(vm: &mut Vm) -> Result<VirtioDevices, AttachError> {
    let config: VmConfig = vm.config.clone();
    let mut out = VirtioDevices {
        input: InputHandle::default(),
        net_stats: Vec::new(),
        transports: Vec::new(),
        drives: Drives::default(),
    };
    for (index, d) in config.disks.iter().enumerate() {
        let opts = image_options(d, false);
        let serial = d.serial.clone().unwrap_or_default();
        let block =
            Block::new(&opts, &serial).map_err(|source| AttachError::Disk { index, source })?;
        attach_one(vm, VirtioRef::Disk { index }, Box::new(block), &mut out)?;
    }
    let mut buses = Vec::new();
    for (index, c) in config.scsi.iter().enumerate() {
        let events = vm.events.clone();
        let hook: GuestChangeHook = Arc::new(move |c: super::scsi::bus::GuestChange| {
            events.emit(vireo_vmm_api::control::Event::MediumChanged {
                id: c.id,
                medium: c.medium,
            })
        });
        let device = VirtioRef::Scsi { controller: index };
        let scsi = Scsi::new(scsi_bus(index, c)?, &config_path(device), Some(hook));
        buses.push(scsi.bus());
        attach_one(vm, device, Box::new(scsi), &mut out)?;
    }
    out.drives = Drives::new(buses);
    for (index, n) in config.nets.iter().enumerate() {
        let NetBackend::UserNet { port_forwards } = &n.backend;
        let opts = PasstOptions {
            forwards: port_forwards
                .iter()
                .map(|f| Forward {
                    protocol: match f.protocol {
                        Protocol::Tcp => ForwardProtocol::Tcp,
                        Protocol::Udp => ForwardProtocol::Udp,
                    },
                    host_address: f.host_address,
                    host_port: f.host_port,
                    guest_port: f.guest_port,
                })
                .collect(),
            ..PasstOptions::default()
        };
        let net =
            Net::with_passt(n.mac.0, &opts).map_err(|source| AttachError::Net { index, source })?;
        out.net_stats.push(net.stats());
        attach_one(vm, VirtioRef::Net { index }, Box::new(net), &mut out)?;
    }
    if config.rng {
        attach_one(vm, VirtioRef::Rng, Box::new(Rng::new()), &mut out)?;
    }
    let io = |what: &str| {
        let what = what.to_string();
        move |source| AttachError::Io { what, source }
    };
    if config.input.keyboard {
        let kbd = VirtioInput::new(InputKind::Keyboard).map_err(io("input.keyboard"))?;
        out.input = out.input.clone().merge(kbd.handle());
        attach_one(vm, VirtioRef::Keyboard, Box::new(kbd), &mut out)?;
    }
    // Same rule as VmConfig::virtio_device_count: a tablet only makes sense with a display.
    if config.input.tablet && config.display.is_some() {
        let tablet = VirtioInput::new(InputKind::Tablet).map_err(io("input.tablet"))?;
        out.input = out.input.clone().merge(tablet.handle());
        attach_one(vm, VirtioRef::Tablet, Box::new(tablet), &mut out)?;
    }
    Ok(out)
}
