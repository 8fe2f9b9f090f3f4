//! `<address type='pci'>` on the devices that become virtio-pci functions of the `pc` machine:
//! which element is which virtio device, the slots the document names (`cfg.pci_slots`), and the
//! slots define writes back into a document that names none, as libvirt does. The slot of a
//! device without an address is `vireo_vmm_api::pci::slots`'s, on both paths.
//!
//! An address that is all zero (`<address type='pci'/>`) is libvirt's "any slot": the device
//! is placed as if it had none, and define fills it in.

use super::scsi::{self, Layout, Slot};
use super::{dev_path, machine, refuse, TranslateError};
use std::path::PathBuf;
use vireo_domain::{Devices, Domain, Element, InputBus, InputType, PciAddress};
use vireo_vmm_api::config::{
    DiskConfig, DisplayConfig, MacAddr, Machine, NetBackend, NetConfig, ScsiControllerConfig,
    VmConfig,
};
use vireo_vmm_api::limits::PCI_FIRST_VIRTIO_SLOT;
use vireo_vmm_api::pci::{self as api, PciSlot, VirtioRef};

/// The highest device number of a PCI bus.
const LAST_SLOT: u32 = 0x1f;

/// The element a virtio device comes from: the `index`-th (0-based) `<tag>` of `<devices>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DeviceAt {
    pub tag: &'static str,
    pub index: usize,
}

impl DeviceAt {
    fn path(self) -> String {
        dev_path(self.tag, self.index)
    }

    fn element<'d>(self, devices: &'d Devices<&Element>) -> Option<&'d Element> {
        devices.element().children_named(self.tag).nth(self.index)
    }
}

/// Every element that asks for a virtio device, with that device, in the VMM's attach order
/// (`vireo_vmm_api::pci::devices`). From the document alone: define has no files to look at.
/// An implicit scsi controller has no element and is not listed; a second virtio keyboard is
/// listed with the same device as the first (they are one device). A tablet is a device only
/// with a display (`display`).
pub(super) fn virtio_elements(
    devices: &Devices<&Element>,
    layout: &Layout,
    display: bool,
) -> Vec<(VirtioRef, DeviceAt)> {
    let at = |tag, index| DeviceAt { tag, index };
    let mut out = Vec::new();
    for (i, slot) in layout.slots.iter().enumerate() {
        if let Slot::Virtio(index) = slot {
            out.push((VirtioRef::Disk { index: *index }, at("disk", i)));
        }
    }
    // The config's controllers are the document's scsi controllers in document order
    // (scsi::layout).
    let scsi = devices
        .controllers()
        .iter()
        .enumerate()
        .filter(|(_, c)| c.controller_type().as_deref() == Some("scsi"))
        .map(|(i, _)| i)
        .collect::<Vec<_>>();
    for (controller, i) in scsi.into_iter().enumerate().take(layout.controllers) {
        out.push((VirtioRef::Scsi { controller }, at("controller", i)));
    }
    for index in 0..devices.count("interface") {
        out.push((VirtioRef::Net { index }, at("interface", index)));
    }
    for (i, r) in devices.rngs().iter().enumerate() {
        if r.model().as_deref() == Some("virtio") {
            out.push((VirtioRef::Rng, at("rng", i)));
        }
    }
    let inputs = devices.inputs();
    for (i, input) in inputs.iter().enumerate() {
        if input.input_type() == Some(InputType::Keyboard) && input.bus() == Some(InputBus::Virtio)
        {
            out.push((VirtioRef::Keyboard, at("input", i)));
        }
    }
    for (i, input) in inputs.iter().enumerate() {
        let bus_ok = matches!(input.bus(), Some(InputBus::Usb | InputBus::Virtio) | None);
        if display && input.input_type() == Some(InputType::Tablet) && bus_ok {
            out.push((VirtioRef::Tablet, at("input", i)));
        }
    }
    out
}

/// The slots the document names, checked: what `cfg.pci_slots` gets. `machine` refuses any
/// PCI address when it has no PCI bus.
fn named_slots(
    devices: &Devices<&Element>,
    list: &[(VirtioRef, DeviceAt)],
    machine: Machine,
) -> Result<Vec<PciSlot>, TranslateError> {
    let mut out = Vec::new();
    let mut taken: Vec<(u8, String)> = Vec::new();
    for (n, (device, at)) in list.iter().enumerate() {
        let Some(el) = at.element(devices) else {
            continue;
        };
        let Some(address) = PciAddress::of(el) else {
            continue;
        };
        let path = format!("{}/address", at.path());
        if machine != Machine::Pc {
            return refuse(path, "only machine='pc' has a PCI bus");
        }
        // The value as written, for the refusal's path.
        let written = |attr: &str| {
            el.child("address")
                .and_then(|a| a.attr(attr).map(|v| v.into_owned()))
                .unwrap_or_default()
        };
        let at_attr = |attr: &str| format!("{path}@{attr}='{}'", written(attr));
        let a = address.map_err(|(attr, _)| TranslateError {
            path: at_attr(attr),
            message: if attr == "multifunction" {
                "must be on or off".into()
            } else {
                "must be a number (decimal, or hexadecimal with 0x)".into()
            },
        })?;
        if a.function != 0 {
            return refuse(
                at_attr("function"),
                "each virtio device is function 0 of its own slot (use function='0x0')",
            );
        }
        if a.multifunction {
            return refuse(
                at_attr("multifunction"),
                "multifunction slots are not supported (each virtio device has its own slot)",
            );
        }
        if a.is_unassigned() {
            continue;
        }
        for (attr, v) in [("domain", a.domain), ("bus", a.bus)] {
            if v != 0 {
                return refuse(
                    at_attr(attr),
                    "the pc machine has one PCI bus: use domain='0x0000' bus='0x00'",
                );
            }
        }
        let slot = match u8::try_from(a.slot) {
            Ok(s) if s < PCI_FIRST_VIRTIO_SLOT => {
                return refuse(
                    at_attr("slot"),
                    "slots 0x00-0x02 are reserved for the host bridge, the PIIX functions and \
                     the display (use 0x03 to 0x1f)",
                )
            }
            Ok(s) if u32::from(s) <= LAST_SLOT => s,
            _ => {
                return refuse(
                    at_attr("slot"),
                    "above 0x1f, the last slot of a PCI bus (use 0x03 to 0x1f)",
                )
            }
        };
        if let Some((_, first)) = list[..n].iter().find(|(d, _)| d == device) {
            return refuse(
                path,
                format!(
                    "this is the same virtio device as {}: give the address there",
                    first.path()
                ),
            );
        }
        if let Some((_, other)) = taken.iter().find(|(s, _)| *s == slot) {
            return refuse(path, format!("PCI slot {slot:#04x} is taken by {other}"));
        }
        taken.push((slot, at.path()));
        out.push(PciSlot {
            device: *device,
            slot,
        });
    }
    Ok(out)
}

/// Fills `cfg.pci_slots` from the addresses of the devices' elements and checks the whole
/// placement the VMM will make. Runs after every device is in `cfg`.
pub(super) fn place(
    devices: &Devices<&Element>,
    layout: &Layout,
    cfg: &mut VmConfig,
) -> Result<(), TranslateError> {
    let list = virtio_elements(devices, layout, cfg.display.is_some());
    cfg.pci_slots = named_slots(devices, &list, cfg.machine)?;
    if cfg.machine == Machine::Pc {
        api::slots(cfg).map_err(|e| TranslateError {
            path: "devices".into(),
            message: e.to_string(),
        })?;
    }
    Ok(())
}

/// The slot the VMM will give each virtio device of `dom` whose element has no PCI address
/// yet (or libvirt's all-zero one), by element: what define writes back. Empty for a machine
/// without a PCI bus, and for a document whose devices or addresses translate would refuse:
/// that one is stored as given, and its start says what is wrong. An input that is not on the
/// virtio bus (a USB tablet is a virtio device to Vireo) keeps its document's shape.
pub(crate) fn unaddressed_slots(dom: &Domain) -> Vec<(DeviceAt, u8)> {
    let on_pc = machine::machine(dom.os().and_then(|o| o.machine()).as_deref());
    if on_pc != Ok(Machine::Pc) {
        return Vec::new();
    }
    let Some(devices) = dom.devices() else {
        return Vec::new();
    };
    let name = dom.name().unwrap_or_default();
    let Ok(layout) = scsi::layout(&devices, name.trim()) else {
        return Vec::new();
    };
    let display = devices.count("graphics") > 0;
    let list = virtio_elements(&devices, &layout, display);
    let Ok(named) = named_slots(&devices, &list, Machine::Pc) else {
        return Vec::new();
    };
    let cfg = shape(&layout, &list, display, named);
    let Ok(slots) = api::slots(&cfg) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (device, slot) in slots {
        // The first element of a device is the one translate reads the address of.
        let Some((_, at)) = list.iter().find(|(d, _)| *d == device) else {
            continue;
        };
        let Some(el) = at.element(&devices) else {
            continue;
        };
        let unaddressed = match PciAddress::of(el) {
            Some(Ok(a)) => a.is_unassigned(),
            Some(Err(_)) => false,
            None => el.child("address").is_none(),
        };
        let input_off_virtio = at.tag == "input"
            && el.attr("bus").map(|b| InputBus::from(b.as_ref())) != Some(InputBus::Virtio);
        if unaddressed && !input_off_virtio {
            out.push((*at, slot));
        }
    }
    out
}

/// A config with the document's virtio devices (placeholders: only their number and kind
/// count) and `pci_slots`, for `vireo_vmm_api::pci::slots` to place.
fn shape(
    layout: &Layout,
    list: &[(VirtioRef, DeviceAt)],
    display: bool,
    pci_slots: Vec<PciSlot>,
) -> VmConfig {
    let has = |d: VirtioRef| list.iter().any(|(x, _)| *x == d);
    let disk = DiskConfig::raw(PathBuf::new());
    let net = NetConfig {
        mac: MacAddr([0x52, 0x54, 0, 0, 0, 0]),
        backend: NetBackend::UserNet {
            port_forwards: Vec::new(),
        },
    };
    let virtio_disks = layout
        .slots
        .iter()
        .filter(|s| matches!(s, Slot::Virtio(_)))
        .count();
    let nets = list
        .iter()
        .filter(|(d, _)| matches!(d, VirtioRef::Net { .. }))
        .count();
    let mut cfg = VmConfig::minimal("", PathBuf::new(), 1, 1);
    cfg.machine = Machine::Pc;
    cfg.disks = vec![disk; virtio_disks];
    cfg.scsi = vec![ScsiControllerConfig::default(); layout.controllers];
    cfg.nets = vec![net; nets];
    cfg.rng = has(VirtioRef::Rng);
    cfg.input.keyboard = has(VirtioRef::Keyboard);
    cfg.input.tablet = has(VirtioRef::Tablet);
    cfg.display = display.then(DisplayConfig::default);
    cfg.pci_slots = pci_slots;
    cfg
}

#[cfg(test)]
mod tests {
    use super::super::tests::Fixture;
    use super::*;
    use crate::definition::Definition;

    fn pc(xml: &str) -> String {
        xml.replace("<type arch='x86_64'>", "<type arch='x86_64' machine='pc'>")
    }

    fn address(slot: &str) -> String {
        format!("<address type='pci' domain='0x0000' bus='0x00' slot='{slot}' function='0x0'/>")
    }

    impl Fixture {
        fn disk_at(&self, attrs: &str) -> String {
            format!(
                "<disk type='file'><source file='{}'/><readonly/><address type='pci' {attrs}/></disk>",
                self.p("disk.img")
            )
        }
        fn on_pc(&self, devices: &str) -> Result<VmConfig, TranslateError> {
            let t = self.run(&pc(&self.xml("kvm", "", "", devices)))?;
            t.config
                .validate()
                .expect("the VMM takes what translate gives");
            Ok(t.config)
        }
    }

    #[test]
    fn named_slots_reach_the_config_and_the_rest_take_the_free_ones() {
        let f = Fixture::new();
        let img = f.p("disk.img");
        let devices = format!(
            "<disk type='file'><source file='{img}'/><readonly/><target dev='vda'/>{}</disk>\
             <disk type='file'><source file='{img}'/><readonly/><target dev='vdb'/></disk>\
             <disk type='file' device='cdrom'><target dev='sda' bus='scsi'/></disk>\
             <controller type='scsi' index='0' model='virtio-scsi'><address type='pci' slot='7'/></controller>\
             <interface type='user'>{}</interface>\
             <input type='keyboard' bus='virtio'>{}</input>\
             <input type='tablet' bus='usb'/>\
             <graphics type='vnc'><listen type='none'/></graphics>\
             <rng model='virtio'><backend model='random'>/dev/urandom</backend><address type='pci'/></rng>",
            address("0x05"),
            address("0x1f"),
            address("0x03"),
        );
        let cfg = f.on_pc(&devices).unwrap();
        let at = |device, slot| PciSlot { device, slot };
        assert_eq!(
            cfg.pci_slots,
            [
                at(VirtioRef::Disk { index: 0 }, 5),
                at(VirtioRef::Scsi { controller: 0 }, 7),
                at(VirtioRef::Net { index: 0 }, 0x1f),
                at(VirtioRef::Keyboard, 3),
            ],
            "an all-zero address is libvirt's 'any slot'"
        );
        assert_eq!(
            api::slots(&cfg).unwrap(),
            [
                (VirtioRef::Disk { index: 0 }, 5),
                (VirtioRef::Disk { index: 1 }, 4),
                (VirtioRef::Scsi { controller: 0 }, 7),
                (VirtioRef::Net { index: 0 }, 0x1f),
                (VirtioRef::Rng, 6),
                (VirtioRef::Keyboard, 3),
                (VirtioRef::Tablet, 8),
            ]
        );
        // Other address types keep their meaning (none, for a virtio device).
        let mmio = f.disk_at("").replace("type='pci'", "type='virtio-mmio'");
        assert!(f.on_pc(&mmio).unwrap().pci_slots.is_empty());
        let microvm = f.run(&f.xml("kvm", "", "", &mmio)).unwrap();
        assert!(microvm.config.pci_slots.is_empty());
    }

    #[test]
    fn each_unusable_address_is_refused_at_its_attribute() {
        let f = Fixture::new();
        let one_bus = "the pc machine has one PCI bus: use domain='0x0000' bus='0x00'";
        let reserved = "slots 0x00-0x02 are reserved for the host bridge, the PIIX functions \
                        and the display (use 0x03 to 0x1f)";
        let past = "above 0x1f, the last slot of a PCI bus (use 0x03 to 0x1f)";
        let number = "must be a number (decimal, or hexadecimal with 0x)";
        for (attrs, want) in [
            (
                "domain='0x0001' slot='0x05'",
                format!("@domain='0x0001': {one_bus}"),
            ),
            ("bus='1' slot='0x05'", format!("@bus='1': {one_bus}")),
            (
                "slot='0x05' function='0x1'",
                "@function='0x1': each virtio device is function 0 of its own slot (use \
                 function='0x0')"
                    .into(),
            ),
            (
                "slot='0x05' multifunction='on'",
                "@multifunction='on': multifunction slots are not supported (each virtio \
                 device has its own slot)"
                    .into(),
            ),
            (
                "slot='0x05' multifunction='yes'",
                "@multifunction='yes': must be on or off".into(),
            ),
            ("slot='0x01'", format!("@slot='0x01': {reserved}")),
            ("slot='2'", format!("@slot='2': {reserved}")),
            ("slot='0x20'", format!("@slot='0x20': {past}")),
            (
                "slot='0x100000000'",
                format!("@slot='0x100000000': {number}"),
            ),
            ("slot='five'", format!("@slot='five': {number}")),
            (
                "slot='0x05' function='-1'",
                format!("@function='-1': {number}"),
            ),
        ] {
            let e = f.on_pc(&f.disk_at(attrs)).unwrap_err();
            assert_eq!(
                e.to_string(),
                format!("devices/disk[1]/address{want}"),
                "{attrs}"
            );
        }
        let keyboards = format!(
            "<input type='keyboard' bus='virtio'/><input type='keyboard' bus='virtio'>{}</input>",
            address("0x09")
        );
        assert_eq!(
            f.on_pc(&keyboards).unwrap_err().to_string(),
            "devices/input[2]/address: this is the same virtio device as devices/input[1]: give \
             the address there"
        );
    }

    #[test]
    fn the_mmio_machine_refuses_any_pci_address() {
        let f = Fixture::new();
        for devices in [
            f.disk_at("slot='0x05'"),
            f.disk_at(""),
            format!("<interface type='user'>{}</interface>", address("0x05")),
        ] {
            let e = f.refused(&f.xml("kvm", "", "", &devices));
            let tag = if devices.starts_with("<disk") {
                "disk"
            } else {
                "interface"
            };
            assert_eq!(
                e,
                format!("devices/{tag}[1]/address: only machine='pc' has a PCI bus"),
                "{devices}"
            );
        }
    }

    #[test]
    fn a_taken_slot_names_the_device_that_has_it() {
        let f = Fixture::new();
        let two = format!("{}{}", f.disk_at("slot='0x05'"), f.disk_at("slot='5'"));
        assert_eq!(
            f.on_pc(&two).unwrap_err().to_string(),
            "devices/disk[2]/address: PCI slot 0x05 is taken by devices/disk[1]"
        );
        let net = format!(
            "{}<interface type='user'>{}</interface>",
            f.disk_at("slot='0x05'"),
            address("0x05")
        );
        assert_eq!(
            f.on_pc(&net).unwrap_err().to_string(),
            "devices/interface[1]/address: PCI slot 0x05 is taken by devices/disk[1]"
        );
    }

    /// What define writes, by element: the VMM's own placement, whatever the kind of device.
    #[test]
    fn define_places_what_the_vmm_will_place() {
        let mut d = Definition::parse(&format!(
            "<domain type='kvm'><name>p</name><memory>1024</memory>\
             <os><type machine='pc-i440fx-7.2'>hvm</type></os><devices>\
             <disk type='file'><source file='/no/such.img'/><target dev='vda'/></disk>\
             <disk type='file' device='cdrom'><target dev='sda' bus='scsi'/></disk>\
             <disk type='file'><source file='/no/other.img'/><target dev='vdb'/>{}</disk>\
             <interface type='user'><address type='pci'/></interface>\
             <input type='keyboard' bus='ps2'/><input type='tablet' bus='usb'/>\
             <input type='keyboard' bus='virtio'/><graphics type='vnc'/>\
             <rng model='virtio'><backend model='random'/></rng></devices></domain>",
            address("0x04")
        ))
        .unwrap();
        assert!(d.ensure_scsi_controller());
        let at = |tag, index| DeviceAt { tag, index };
        assert_eq!(
            unaddressed_slots(&d.dom),
            [
                (at("disk", 0), 3),
                (at("controller", 0), 5),
                (at("interface", 0), 6),
                (at("rng", 0), 7),
                (at("input", 2), 8),
            ],
            "the USB tablet takes slot 9 without an address in the document"
        );
        assert!(d.ensure_pci_addresses());
        assert!(unaddressed_slots(&d.dom).is_empty());
        assert!(!d.ensure_pci_addresses(), "written once");
        let devices = d.dom.devices().unwrap();
        let slot_of = |tag, index| {
            let e = at(tag, index).element(&devices).unwrap();
            PciAddress::of(e).map(|a| a.unwrap().slot)
        };
        assert_eq!(
            slot_of("interface", 0),
            Some(6),
            "libvirt's 'any slot' filled in"
        );
        assert_eq!(slot_of("input", 1), None);
        assert_eq!(slot_of("input", 0), None);
    }
}
