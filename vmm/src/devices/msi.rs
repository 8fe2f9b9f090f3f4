//! MSI delivery through KVM: each vector gets a GSI of its own with an irqfd, and that GSI's
//! route carries the message (address and data) the guest programmed. Sending a vector is one
//! eventfd write, from any thread, with no lock on the VM.
//!
//! KVM_SET_GSI_ROUTING replaces the whole routing table, so every change writes back the
//! routes KVM installs for the PIC and IOAPIC pins when the irqchip is created, beside the MSI
//! routes of every vector that has a message.

use std::collections::BTreeMap;
use std::io;
use std::sync::{Arc, Mutex};

use kvm_bindings::{
    kvm_irq_routing_entry, KvmIrqRouting, KVM_IRQCHIP_IOAPIC, KVM_IRQCHIP_PIC_MASTER,
    KVM_IRQCHIP_PIC_SLAVE, KVM_IRQ_ROUTING_IRQCHIP, KVM_IRQ_ROUTING_MSI,
};
use kvm_ioctls::VmFd;
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use crate::pci::msix::{MsiMessage, MsiSink};

/// The IOAPIC's pins: GSIs below this are KVM's default routes; MSI vectors start here.
pub const IOAPIC_PINS: u32 = 24;
/// KVM's limit on GSI numbers in the routing table.
const MAX_ROUTES: u32 = kvm_bindings::KVM_MAX_IRQ_ROUTES as u32;

struct Table {
    messages: BTreeMap<u32, MsiMessage>,
    next_gsi: u32,
}

/// The VM's GSI routing table.
pub struct MsiRouter {
    vm: Arc<VmFd>,
    table: Mutex<Table>,
}

impl MsiRouter {
    pub fn new(vm: Arc<VmFd>) -> Arc<MsiRouter> {
        Arc::new(MsiRouter {
            vm,
            table: Mutex::new(Table {
                messages: BTreeMap::new(),
                next_gsi: IOAPIC_PINS,
            }),
        })
    }

    /// `count` vectors for one function: a GSI and an irqfd each, no route until the guest
    /// programs one.
    pub fn vectors(self: &Arc<Self>, count: u16) -> io::Result<MsiVectors> {
        let first = {
            let mut t = self.table.lock().unwrap_or_else(|e| e.into_inner());
            let first = t.next_gsi;
            let end = first
                .checked_add(u32::from(count))
                .filter(|&end| end <= MAX_ROUTES)
                .ok_or_else(|| io::Error::other(format!("no GSIs left for {count} MSI vectors")))?;
            t.next_gsi = end;
            first
        };
        let mut lines = Vec::with_capacity(usize::from(count));
        for gsi in first..first + u32::from(count) {
            let evt = EventFd::new(EFD_NONBLOCK)?;
            self.vm.register_irqfd(&evt, gsi).map_err(io::Error::from)?;
            lines.push((gsi, evt));
        }
        Ok(MsiVectors {
            router: self.clone(),
            lines,
        })
    }

    fn set(&self, gsi: u32, message: Option<MsiMessage>) -> io::Result<()> {
        let mut t = self.table.lock().unwrap_or_else(|e| e.into_inner());
        match message {
            Some(m) => t.messages.insert(gsi, m),
            None => t.messages.remove(&gsi),
        };
        let mut entries = default_routes();
        entries.extend(t.messages.iter().map(|(&gsi, m)| msi_route(gsi, m)));
        let routing = KvmIrqRouting::from_entries(&entries)
            .map_err(|e| io::Error::other(format!("GSI routing table: {e:?}")))?;
        self.vm.set_gsi_routing(&routing).map_err(io::Error::from)
    }
}

/// The routes KVM sets up with the irqchip: GSIs 0-15 to the PIC pin and the IOAPIC pin of the
/// same number, 16-23 to the IOAPIC only.
fn default_routes() -> Vec<kvm_irq_routing_entry> {
    let mut out = Vec::new();
    for gsi in 0..IOAPIC_PINS {
        if gsi < 16 {
            let chip = if gsi < 8 {
                KVM_IRQCHIP_PIC_MASTER
            } else {
                KVM_IRQCHIP_PIC_SLAVE
            };
            out.push(irqchip_route(gsi, chip, gsi % 8));
        }
        out.push(irqchip_route(gsi, KVM_IRQCHIP_IOAPIC, gsi));
    }
    out
}

fn irqchip_route(gsi: u32, irqchip: u32, pin: u32) -> kvm_irq_routing_entry {
    let mut e = kvm_irq_routing_entry {
        gsi,
        type_: KVM_IRQ_ROUTING_IRQCHIP,
        ..Default::default()
    };
    e.u.irqchip.irqchip = irqchip;
    e.u.irqchip.pin = pin;
    e
}

fn msi_route(gsi: u32, m: &MsiMessage) -> kvm_irq_routing_entry {
    let mut e = kvm_irq_routing_entry {
        gsi,
        type_: KVM_IRQ_ROUTING_MSI,
        ..Default::default()
    };
    e.u.msi.address_lo = m.address as u32;
    e.u.msi.address_hi = (m.address >> 32) as u32;
    e.u.msi.data = m.data;
    e
}

/// One function's vectors, as its MSI-X table delivers them.
pub struct MsiVectors {
    router: Arc<MsiRouter>,
    lines: Vec<(u32, EventFd)>,
}

impl MsiVectors {
    /// The GSI of each vector, in vector order.
    pub fn gsis(&self) -> Vec<u32> {
        self.lines.iter().map(|(gsi, _)| *gsi).collect()
    }
}

impl MsiSink for MsiVectors {
    fn route(&self, vector: u16, message: Option<MsiMessage>) {
        let Some((gsi, _)) = self.lines.get(usize::from(vector)) else {
            return;
        };
        if let Err(e) = self.router.set(*gsi, message) {
            crate::vmm_log!("vireo-vmm: MSI vector {vector} (GSI {gsi}): routing failed: {e}");
        }
    }

    fn send(&self, vector: u16) -> io::Result<()> {
        match self.lines.get(usize::from(vector)) {
            Some((_, evt)) => evt.write(1),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_get_their_own_gsis_and_routes_are_accepted_by_kvm() {
        let kvm = kvm_ioctls::Kvm::new().expect("/dev/kvm");
        let vm = Arc::new(kvm.create_vm().expect("create a VM"));
        vm.create_irq_chip().expect("irqchip");
        let router = MsiRouter::new(vm);
        let a = router.vectors(2).unwrap();
        let b = router.vectors(3).unwrap();
        assert_eq!(a.gsis(), [24, 25]);
        assert_eq!(b.gsis(), [26, 27, 28]);
        let m = MsiMessage {
            address: 0xfee0_0000,
            data: 0x4041,
        };
        router.set(25, Some(m)).unwrap();
        router.set(27, Some(m)).unwrap();
        router.set(25, None).unwrap();
        a.route(1, Some(m));
        a.send(1).unwrap();
        a.send(9).unwrap();
        assert_eq!(router.table.lock().unwrap().messages.len(), 2);
        assert!(
            router.vectors(MAX_ROUTES as u16).is_err(),
            "past KVM's GSI limit"
        );
    }

    #[test]
    fn the_default_routes_are_kvms() {
        let r = default_routes();
        assert_eq!(r.len(), 16 * 2 + 8);
        let chip = |e: &kvm_irq_routing_entry| {
            assert_eq!(e.type_, KVM_IRQ_ROUTING_IRQCHIP);
            // SAFETY: an irqchip route (checked above) has the irqchip member.
            unsafe { (e.gsi, e.u.irqchip.irqchip, e.u.irqchip.pin) }
        };
        let routes: Vec<(u32, u32, u32)> = r.iter().map(chip).collect();
        assert!(routes.contains(&(9, KVM_IRQCHIP_PIC_SLAVE, 1)));
        assert!(routes.contains(&(2, KVM_IRQCHIP_PIC_MASTER, 2)));
        assert!(routes.contains(&(23, KVM_IRQCHIP_IOAPIC, 23)));
        assert!(!routes
            .iter()
            .any(|&(gsi, c, _)| gsi >= 16 && c != KVM_IRQCHIP_IOAPIC));
    }
}
