//! A machine definition: a `vireo-domain` [`Domain`] that passed its validation, plus the few
//! facts the store, the runtime and the clients read all the time (name, UUID, size, actions),
//! taken from the typed views once.
//!
//! Parsing and validation are `vireo-domain`'s: its errors (line, column, element path) reach
//! the user as they are. The driver adds only what its file layout needs ([`check_name`]) and
//! what libvirt does on define (a UUID and MACs when missing, [`Definition::ensure_uuid`],
//! [`Definition::ensure_macs`]; the implicit scsi controller,
//! [`Definition::ensure_scsi_controller`]; the PCI addresses of the `pc` machine's virtio
//! devices, [`Definition::ensure_pci_addresses`]). Everything else in the document is kept
//! verbatim.

use crate::state::LifecycleAction;
use vireo_domain::{Domain, Error, ErrorKind, Errors, LifecycleEvent, Mac, PciAddress, Uuid};

/// A validated domain document and the facts read from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Definition {
    pub dom: Domain,
    pub name: String,
    /// Canonical lower-case form, or `None` when the document has none yet.
    pub uuid: Option<String>,
    pub title: Option<String>,
    pub memory_kib: u64,
    pub vcpus: u32,
    pub on_poweroff: LifecycleAction,
    pub on_reboot: LifecycleAction,
    pub on_crash: LifecycleAction,
}

fn name_error(name: &str, reason: &str) -> Errors {
    Errors(vec![Error::new(
        ErrorKind::InvalidValue {
            field: "name".into(),
            value: name.into(),
            reason: reason.into(),
        },
        "domain/name",
        None,
    )])
}

/// Checks a machine name: what `vireo-domain` (libvirt) accepts, minus what would break the
/// store's file layout (`NAME.xml`; names starting with '.' are temp files; file name length).
pub fn check_name(name: &str) -> Result<(), Errors> {
    vireo_domain::check_name(name).map_err(|reason| name_error(name, reason))?;
    if name.starts_with('.') {
        return Err(name_error(name, "must not start with '.'"));
    }
    if name.len() > 200 {
        return Err(name_error(name, "longer than 200 bytes"));
    }
    Ok(())
}

/// The canonical (lower-case, dashed) form of a UUID written any way libvirt accepts.
pub fn canonical_uuid(s: &str) -> Option<String> {
    Uuid::parse(s).map(|u| u.to_string())
}

fn missing(path: &str, what: &str) -> Errors {
    Errors(vec![Error::new(
        ErrorKind::MissingElement(what.into()),
        path,
        None,
    )])
}

impl Definition {
    /// Parses and validates a domain document.
    pub fn parse(text: &str) -> Result<Definition, Errors> {
        let dom = Domain::parse(text).map_err(|e| Errors(vec![e]))?;
        Definition::from_domain(dom)
    }

    /// Validates a parsed document and reads its facts.
    pub fn from_domain(dom: Domain) -> Result<Definition, Errors> {
        dom.validate()?;
        let name = dom.name().unwrap_or_default();
        check_name(&name)?;
        let uuid = dom.uuid().as_deref().and_then(canonical_uuid);
        let title = dom.title();
        let one = |e: Error| Errors(vec![e]);
        let memory = dom
            .memory()
            .map_err(one)?
            .ok_or_else(|| missing("domain", "memory"))?;
        let vcpus = dom.vcpu().map_err(one)?.unwrap_or(1);
        // Validation refused unknown actions and coredump-* outside on_crash.
        let action = |ev: LifecycleEvent, default: LifecycleAction| {
            dom.lifecycle(ev)
                .filter(LifecycleAction::is_known)
                .unwrap_or(default)
        };
        let on_poweroff = action(LifecycleEvent::Poweroff, LifecycleAction::Destroy);
        let on_reboot = action(LifecycleEvent::Reboot, LifecycleAction::Restart);
        let on_crash = action(LifecycleEvent::Crash, LifecycleAction::Destroy);
        Ok(Definition {
            name,
            uuid,
            title,
            memory_kib: memory.div_ceil(1024),
            vcpus,
            on_poweroff,
            on_reboot,
            on_crash,
            dom,
        })
    }

    /// Gives the document a UUID if it has none (as libvirt does on define): `uuid` if given
    /// (the one an earlier definition of the same name had), else a random one.
    pub fn ensure_uuid(&mut self, uuid: Option<&str>) -> std::io::Result<()> {
        if self.uuid.is_some() {
            return Ok(());
        }
        let u = match uuid {
            Some(u) => u.to_owned(),
            None => Uuid::new_v4()?.to_string(),
        };
        self.dom.set_uuid(&u);
        self.uuid = Some(u);
        Ok(())
    }

    /// Gives every `<interface>` without a MAC a random one in QEMU's 52:54:00 range (as
    /// libvirt does on define), so the guest sees the same NIC on every boot.
    pub fn ensure_macs(&mut self) -> std::io::Result<()> {
        let n = self.dom.devices().map_or(0, |d| d.count("interface"));
        let mut devices = self.dom.devices_mut();
        for i in 0..n {
            if let Some(mut iface) = devices.interface_mut(i) {
                if iface.mac().is_none() {
                    iface.set_mac(Some(&Mac::new_qemu()?.to_string()));
                }
            }
        }
        Ok(())
    }

    /// Adds the virtio-scsi controller of index 0 when a `bus='scsi'` disk has no scsi
    /// controller (libvirt adds implicit controllers on define), so the document says what the
    /// machine has. Returns whether it added one.
    pub fn ensure_scsi_controller(&mut self) -> bool {
        let Some(devices) = self.dom.devices() else {
            return false;
        };
        let scsi_disk = devices
            .disks()
            .iter()
            .any(|d| d.target_bus() == Some(vireo_domain::DiskBus::Scsi));
        let has_controller = devices
            .controllers()
            .iter()
            .any(|c| c.controller_type().as_deref() == Some("scsi"));
        if !scsi_disk || has_controller {
            return false;
        }
        self.dom
            .devices_mut()
            .add(vireo_domain::Controller::new_element(
                "scsi",
                0,
                Some("virtio-scsi"),
            ));
        true
    }

    /// Writes the PCI address the VMM will use into every virtio device of a `pc` machine
    /// that has none (as libvirt does on define), so the document says where each device is
    /// and a device keeps its slot when others are added. Runs after
    /// [`Definition::ensure_scsi_controller`]: an added controller is a device too. Returns
    /// whether it wrote any.
    pub fn ensure_pci_addresses(&mut self) -> bool {
        let slots = crate::translate::pci::unaddressed_slots(&self.dom);
        if slots.is_empty() {
            return false;
        }
        let mut devices = self.dom.devices_mut();
        for (at, slot) in &slots {
            devices.set_pci_address(at.tag, at.index, &PciAddress::slot(u32::from(*slot)));
        }
        true
    }

    pub fn to_xml(&self) -> String {
        self.dom.to_xml()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_defaults() {
        let d = Definition::parse(
            "<domain type='kvm'><name>a</name><memory unit='MiB'>64</memory><os><type>hvm</type></os><on_crash>coredump-restart</on_crash></domain>",
        )
        .unwrap();
        assert_eq!(d.memory_kib, 65536);
        assert_eq!(d.vcpus, 1);
        assert_eq!(d.on_reboot, LifecycleAction::Restart);
        assert_eq!(d.on_crash, LifecycleAction::CoredumpRestart);
    }

    #[test]
    fn errors_are_vireo_domains_with_position_and_path() {
        let e = Definition::parse("<domain type='kvm'><name>a/b</name><memory>1</memory><os><type>hvm</type></os></domain>")
            .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("line 1, column 20: domain/name: invalid value 'a/b'"),
            "{e}"
        );
        let e = Definition::parse(
            "<domain type='kvm'>\n  <name>a</name>\n  <memory>1</memory>\n  <uuid>zz</uuid>\n  <os><type>hvm</type></os>\n</domain>",
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("line 4, column 3: domain/uuid: invalid value 'zz'"),
            "{e}"
        );
        let e = Definition::parse(
            "<domain type='kvm'><name>a</name><memory>1</memory><os><type>hvm</type></os><on_reboot>coredump-destroy</on_reboot></domain>",
        )
        .unwrap_err();
        assert!(e.to_string().contains("domain/on_reboot"), "{e}");
        let e = Definition::parse("<domain type='kvm'>\n  <name>x</nme>\n</domain>").unwrap_err();
        assert!(e.to_string().starts_with("line 2, column "), "{e}");
        assert!(Definition::parse("").is_err());
        let e = Definition::parse("<domain type='kvm'><name>.a</name><memory>1</memory><os><type>hvm</type></os></domain>")
            .unwrap_err();
        assert!(e.to_string().contains("must not start with '.'"), "{e}");
    }

    #[test]
    fn ensure_uuid_and_macs_keep_the_rest() {
        let src = "<domain type='kvm'>\n  <name>a</name>\n  <!-- keep -->\n  <memory>1024</memory>\n  <os><type>hvm</type></os>\n  <devices>\n    <interface type='user'/>\n    <interface type='user'><mac address='52:54:00:00:00:01'/></interface>\n  </devices>\n</domain>\n";
        let mut d = Definition::parse(src).unwrap();
        d.ensure_uuid(Some("6695eb01-f6a4-4304-aaa9-f2b1b2a1c2d3"))
            .unwrap();
        d.ensure_macs().unwrap();
        let xml = d.to_xml();
        assert!(
            xml.contains("<name>a</name>\n  <uuid>6695eb01-f6a4-4304-aaa9-f2b1b2a1c2d3</uuid>"),
            "{xml}"
        );
        assert!(xml.contains("<!-- keep -->"), "{xml}");
        assert!(xml.contains("<mac address='52:54:00:00:00:01'/>"), "{xml}");
        let again = Definition::parse(&xml).unwrap();
        let devs = again.dom.devices().unwrap();
        let macs: Vec<_> = devs.interfaces().iter().map(|i| i.mac()).collect();
        assert!(macs[0]
            .as_deref()
            .is_some_and(|m| m.starts_with("52:54:00:")));
        assert_eq!(again.uuid, d.uuid);
    }

    #[test]
    fn a_scsi_disk_brings_its_controller_once() {
        let mut d = Definition::parse(
            "<domain type='kvm'><name>a</name><memory>1024</memory><os><type>hvm</type></os><devices>\
             <disk type='file' device='cdrom'><target dev='sda' bus='scsi'/></disk>\
             <interface type='user'/></devices></domain>",
        )
        .unwrap();
        assert!(d.ensure_scsi_controller());
        assert!(
            d.to_xml().contains(
                "</disk>\n  <controller type='scsi' index='0' model='virtio-scsi'/><interface"
            ),
            "{}",
            d.to_xml()
        );
        assert!(!d.ensure_scsi_controller(), "added twice");
        let mut virtio = Definition::parse(
            "<domain type='kvm'><name>a</name><memory>1024</memory><os><type>hvm</type></os><devices>\
             <disk type='file'><target dev='vda'/></disk></devices></domain>",
        )
        .unwrap();
        assert!(!virtio.ensure_scsi_controller());
    }

    #[test]
    fn uuid_forms() {
        assert_eq!(
            canonical_uuid("6695EB01F6A44304AAA9F2B1B2A1C2D3").as_deref(),
            Some("6695eb01-f6a4-4304-aaa9-f2b1b2a1c2d3")
        );
    }
}
