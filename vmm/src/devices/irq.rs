//! How devices raise interrupts.
//!
//! [`IrqLine`] is an edge-style line through an irqfd (KVM_IRQFD): `trigger()` is one write to
//! an eventfd, needs no lock on the VM and works from any thread. [`LevelIrq`] drives a
//! level-triggered line (the ACPI SCI) with KVM_IRQ_LINE.

use kvm_ioctls::VmFd;
use std::io;
use std::sync::Arc;
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

/// An interrupt line bound to a GSI through an irqfd.
#[derive(Debug)]
pub struct IrqLine {
    gsi: u32,
    evt: EventFd,
}

impl IrqLine {
    /// Creates an eventfd and registers it with KVM for `gsi`.
    pub fn new(vm: &VmFd, gsi: u32) -> io::Result<IrqLine> {
        let evt = EventFd::new(EFD_NONBLOCK)?;
        vm.register_irqfd(&evt, gsi).map_err(io::Error::from)?;
        Ok(IrqLine { gsi, evt })
    }

    /// Raises the interrupt once (the in-kernel IOAPIC treats it as an edge).
    pub fn trigger(&self) -> io::Result<()> {
        self.evt.write(1)
    }

    pub fn gsi(&self) -> u32 {
        self.gsi
    }

    /// The underlying eventfd, e.g. to hand to a worker thread.
    pub fn eventfd(&self) -> &EventFd {
        &self.evt
    }

    pub fn try_clone(&self) -> io::Result<IrqLine> {
        Ok(IrqLine {
            gsi: self.gsi,
            evt: self.evt.try_clone()?,
        })
    }
}

/// A level-triggered line driven with KVM_IRQ_LINE.
#[derive(Clone)]
pub struct LevelIrq {
    vm: Arc<VmFd>,
    gsi: u32,
}

impl LevelIrq {
    pub fn new(vm: Arc<VmFd>, gsi: u32) -> LevelIrq {
        LevelIrq { vm, gsi }
    }

    pub fn set(&self, level: bool) -> io::Result<()> {
        self.vm
            .set_irq_line(self.gsi, level)
            .map_err(io::Error::from)
    }
}
