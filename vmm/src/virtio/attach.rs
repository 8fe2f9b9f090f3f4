//! Puts the virtio devices a [`VmConfig`] asks for on a [`Vm`]: one virtio-mmio slot each (which
//! the core declares in the DSDT as LNRO0005), an irqfd line, one KVM ioeventfd per queue on
//! QueueNotify with the queue index as datamatch, and the transport on the MMIO bus.
//!
//! Order (and so the guest's names): disks (vda, vdb, ...), network interfaces, rng, keyboard,
//! tablet.

use std::sync::{Arc, Mutex};

use virtio_bindings::virtio_mmio::VIRTIO_MMIO_QUEUE_NOTIFY;

use super::block::image::{BackingLayer, DiskFormat as ImageFormat, ImageError, ImageOptions};
use super::block::Block;
use super::input::{InputHandle, InputKind, VirtioInput};
use super::mmio::MmioTransport;
use super::net::{Net, NetStats};
use super::passt::{Forward, ForwardProtocol, PasstError, PasstOptions};
use super::rng::Rng;
use super::{IrqTrigger, VirtioDevice};
use crate::config::{DiskFormat, NetBackend, Protocol, VmConfig};
use crate::devices::bus::BusDevice;
use crate::devices::irq::IrqLine;
use crate::vm::{Vm, VmError};

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

/// What stays reachable after attaching.
pub struct VirtioDevices {
    /// Keyboard / tablet input for the VNC server (empty if neither is configured).
    pub input: InputHandle,
    /// Counters of each network interface, in config order.
    pub net_stats: Vec<Arc<NetStats>>,
    /// The transports, in slot order (also on the MMIO bus).
    pub transports: Vec<Arc<Mutex<MmioTransport>>>,
}

fn attach_one(
    vm: &mut Vm,
    what: String,
    dev: Box<dyn VirtioDevice>,
    out: &mut VirtioDevices,
) -> Result<(), AttachError> {
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
    out.transports.push(transport);
    Ok(())
}

/// Attaches every virtio device of `vm.config`.
pub fn attach_all(vm: &mut Vm) -> Result<VirtioDevices, AttachError> {
    let config: VmConfig = vm.config.clone();
    let mut out = VirtioDevices {
        input: InputHandle::default(),
        net_stats: Vec::new(),
        transports: Vec::new(),
    };
    for (index, d) in config.disks.iter().enumerate() {
        let format = |f: DiskFormat| match f {
            DiskFormat::Raw => ImageFormat::Raw,
            DiskFormat::Qcow2 => ImageFormat::Qcow2,
        };
        let opts = ImageOptions {
            path: d.path.clone(),
            format: format(d.format),
            read_only: d.readonly || d.cdrom,
            shareable: d.shareable,
            backing: d
                .backing
                .iter()
                .map(|b| BackingLayer {
                    path: b.path.clone(),
                    format: format(b.format),
                })
                .collect(),
        };
        let serial = d.serial.clone().unwrap_or_default();
        let block =
            Block::new(&opts, &serial).map_err(|source| AttachError::Disk { index, source })?;
        attach_one(vm, format!("disks[{index}]"), Box::new(block), &mut out)?;
    }
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
        attach_one(vm, format!("nets[{index}]"), Box::new(net), &mut out)?;
    }
    if config.rng {
        attach_one(vm, "rng".into(), Box::new(Rng::new()), &mut out)?;
    }
    let io = |what: &str| {
        let what = what.to_string();
        move |source| AttachError::Io { what, source }
    };
    if config.input.keyboard {
        let kbd = VirtioInput::new(InputKind::Keyboard).map_err(io("input.keyboard"))?;
        out.input = out.input.clone().merge(kbd.handle());
        attach_one(vm, "input.keyboard".into(), Box::new(kbd), &mut out)?;
    }
    // Same rule as VmConfig::virtio_device_count: a tablet only makes sense with a display.
    if config.input.tablet && config.display.is_some() {
        let tablet = VirtioInput::new(InputKind::Tablet).map_err(io("input.tablet"))?;
        out.input = out.input.clone().merge(tablet.handle());
        attach_one(vm, "input.tablet".into(), Box::new(tablet), &mut out)?;
    }
    Ok(out)
}
