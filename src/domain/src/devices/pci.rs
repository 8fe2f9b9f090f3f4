//! `<address type='pci'>`: where a device sits on a PCI bus, read as libvirt reads it and
//! written as libvirt writes it.

use super::Devices;
use crate::order;
use crate::tree::Element;
use crate::view::parse_uint_any_base;

/// A device's `<address type='pci'>`. An absent number is 0, as in libvirt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PciAddress {
    pub domain: u32,
    pub bus: u32,
    pub slot: u32,
    pub function: u32,
    /// `multifunction='on'`: the slot holds more functions than this one.
    pub multifunction: bool,
}

impl PciAddress {
    /// Function 0 of `slot` on bus 0 of domain 0.
    pub fn slot(slot: u32) -> PciAddress {
        PciAddress {
            slot,
            ..PciAddress::default()
        }
    }

    /// The `<address>` of `device` when its type is pci; `None` when it has none or one of
    /// another type. An attribute that does not parse is `Err` with its name and value.
    pub fn of(device: &Element) -> Option<Result<PciAddress, (&'static str, String)>> {
        let a = device.child("address")?;
        if a.attr("type").as_deref() != Some("pci") {
            return None;
        }
        let num = |name: &'static str| -> Result<u32, (&'static str, String)> {
            match a.attr(name) {
                None => Ok(0),
                Some(v) => parse_uint_any_base(&v).ok_or((name, v.into_owned())),
            }
        };
        Some((|| {
            let multifunction = match a.attr("multifunction").as_deref() {
                None | Some("off") => false,
                Some("on") => true,
                Some(v) => return Err(("multifunction", v.to_owned())),
            };
            Ok(PciAddress {
                domain: num("domain")?,
                bus: num("bus")?,
                slot: num("slot")?,
                function: num("function")?,
                multifunction,
            })
        })())
    }

    /// libvirt's address still to be assigned (its `virPCIDeviceAddressIsEmpty`): no domain,
    /// bus or slot. The hypervisor driver picks the slot, as for a device without an address.
    pub fn is_unassigned(&self) -> bool {
        self.domain == 0 && self.bus == 0 && self.slot == 0
    }

    /// Sets the attributes libvirt formats, in its order and notation
    /// (`domain='0x0000' bus='0x00' slot='0x05' function='0x0'`).
    fn write_to(&self, e: &mut Element) {
        e.set_attr("type", "pci");
        e.set_attr("domain", &format!("{:#06x}", self.domain));
        e.set_attr("bus", &format!("{:#04x}", self.bus));
        e.set_attr("slot", &format!("{:#04x}", self.slot));
        e.set_attr("function", &format!("{:#x}", self.function));
        e.set_or_remove_attr("multifunction", self.multifunction.then_some("on"));
    }

    /// A new `<address type='pci' .../>`.
    pub fn to_element(&self) -> Element {
        let mut e = Element::new("address");
        self.write_to(&mut e);
        e
    }
}

impl<E: AsRef<Element> + AsMut<Element>> Devices<E> {
    /// Gives the `index`-th (0-based) `<tag>` device the address `a`: a pci `<address>` it
    /// has is rewritten in place, a device without one gets one at libvirt's place. Returns
    /// false, changing nothing, when there is no such device, its address is of another type,
    /// or `tag` is a device kind without an `<address>` place ([`order::device_children`]).
    pub fn set_pci_address(&mut self, tag: &str, index: usize, a: &PciAddress) -> bool {
        let Some(children) = order::device_children(tag) else {
            return false;
        };
        let (e, style) = self.em();
        let Some(device) = e.children_named_mut(tag).nth(index) else {
            return false;
        };
        match device.child_mut("address") {
            Some(old) if old.attr("type").as_deref() == Some("pci") => a.write_to(old),
            Some(_) => return false,
            None => {
                device.insert_ordered(a.to_element(), children, style);
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Domain;

    fn dom(devices: &str) -> Domain {
        Domain::parse(&format!(
            "<domain type='kvm'><name>a</name><memory>1</memory><devices>{devices}</devices></domain>"
        ))
        .unwrap()
    }

    fn first(d: &Domain, tag: &str) -> Option<Result<PciAddress, (&'static str, String)>> {
        PciAddress::of(d.devices().unwrap().element().child(tag).unwrap())
    }

    #[test]
    fn numbers_read_as_libvirt_reads_them() {
        let d = dom(
            "<disk><address type='pci' domain='0x0000' bus='0' slot='0x1f' function='07'/></disk>\
             <interface><address type='pci' slot='010' multifunction='on'/></interface>\
             <rng><address type='pci' slot='9a'/></rng>\
             <input><address type='pci' multifunction='yes'/></input>\
             <controller><address type='drive' unit='1'/></controller>",
        );
        assert_eq!(
            first(&d, "disk"),
            Some(Ok(PciAddress {
                slot: 0x1f,
                function: 7,
                ..PciAddress::default()
            }))
        );
        assert_eq!(
            first(&d, "interface"),
            Some(Ok(PciAddress {
                slot: 8,
                multifunction: true,
                ..PciAddress::default()
            })),
            "a leading 0 is octal, as strtoul reads it"
        );
        assert_eq!(first(&d, "rng"), Some(Err(("slot", "9a".into()))));
        assert_eq!(
            first(&d, "input"),
            Some(Err(("multifunction", "yes".into())))
        );
        assert_eq!(first(&d, "controller"), None);
        for bad in ["", "0x", "-1", "+3", "08", "0x1g", "4294967296"] {
            assert_eq!(parse_uint_any_base(bad), None, "{bad:?}");
        }
        assert_eq!(parse_uint_any_base(" 0X1F "), Some(31));
        assert_eq!(parse_uint_any_base("0"), Some(0));
        assert!(PciAddress::default().is_unassigned());
        assert!(PciAddress {
            function: 3,
            ..PciAddress::default()
        }
        .is_unassigned());
        assert!(!PciAddress::slot(3).is_unassigned());
    }

    #[test]
    fn addresses_are_written_at_libvirts_place_and_as_libvirt_writes_them() {
        let mut d = dom("<disk type='file'><target dev='vda'/><boot order='1'/></disk>\
             <interface type='user'><mac address='52:54:00:00:00:01'/><model type='virtio'/></interface>\
             <controller type='scsi' index='0'><address type='pci'/></controller>\
             <rng model='virtio'><address type='virtio-mmio'/></rng>\
             <input type='keyboard' bus='virtio'><alias name='k'/></input>");
        let mut devs = d.devices_mut();
        assert!(devs.set_pci_address("disk", 0, &PciAddress::slot(3)));
        assert!(devs.set_pci_address("interface", 0, &PciAddress::slot(0x1f)));
        assert!(devs.set_pci_address("controller", 0, &PciAddress::slot(4)));
        assert!(
            !devs.set_pci_address("rng", 0, &PciAddress::slot(5)),
            "not pci"
        );
        assert!(devs.set_pci_address("input", 0, &PciAddress::slot(6)));
        assert!(
            !devs.set_pci_address("disk", 1, &PciAddress::slot(7)),
            "no such disk"
        );
        assert!(!devs.set_pci_address("graphics", 0, &PciAddress::slot(7)));
        let xml = d.to_xml();
        // The compact test document gets indented new children; compare without it.
        let flat: String = xml.lines().map(str::trim).collect();
        for want in [
            "<boot order='1'/><address type='pci' domain='0x0000' bus='0x00' slot='0x03' function='0x0'/></disk>",
            "<model type='virtio'/><address type='pci' domain='0x0000' bus='0x00' slot='0x1f' function='0x0'/></interface>",
            "<controller type='scsi' index='0'><address type='pci' domain='0x0000' bus='0x00' slot='0x04' function='0x0'/></controller>",
            "<rng model='virtio'><address type='virtio-mmio'/></rng>",
            "<alias name='k'/><address type='pci' domain='0x0000' bus='0x00' slot='0x06' function='0x0'/></input>",
        ] {
            assert!(flat.contains(want), "{want}\n{xml}");
        }
        let back = Domain::parse(&xml).unwrap();
        assert_eq!(first(&back, "disk"), Some(Ok(PciAddress::slot(3))));
    }
}
