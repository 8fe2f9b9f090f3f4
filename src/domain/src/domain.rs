//! [`Domain`]: the typed, editable view of a `<domain>` document.

use crate::devices::Devices;
use crate::error::{Error, ErrorKind};
use crate::order;
use crate::tree::{resolve_prefix, Document, Element, Style};
use crate::units::{format_size, parse_size, UnitError};
use crate::values::{
    BootDev, ClockOffset, CpuMode, Firmware, LifecycleAction, LifecycleEvent, OsType, VirtType,
};
use crate::view::{parse_uint, set_sub_attr, set_sub_text, sub_attr, sub_text, view};

/// Vireo's namespace for `<metadata>`.
pub const VIREO_NS: &str = "https://vireo.org/xmlns/vireo/1.0";
/// The prefix Vireo writes for [`VIREO_NS`] (readers match the URI, never the prefix).
pub const VIREO_PREFIX: &str = "vireo";

/// A libvirt domain document with typed accessors. Unknown content is kept as is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Domain {
    doc: Document,
}

impl Domain {
    /// Parses a domain document (well-formedness only; see [`Domain::validate`]).
    pub fn parse(xml: &str) -> Result<Self, Error> {
        Self::from_document(Document::parse(xml)?)
    }

    /// Reads and parses a domain file; errors name the file.
    pub fn load(path: &std::path::Path) -> Result<Self, Error> {
        let name = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|e| {
            Error::new(ErrorKind::Io(e.to_string()), "", None).in_file(name.clone())
        })?;
        Document::parse_bytes(&bytes)
            .and_then(Self::from_document)
            .map_err(|e| e.in_file(name))
    }

    /// Wraps a parsed document whose root must be `<domain>`.
    pub fn from_document(doc: Document) -> Result<Self, Error> {
        let root = doc.root();
        if root.name() != "domain" {
            return Err(Error::new(
                ErrorKind::WrongRoot {
                    expected: "domain".into(),
                    found: root.name().into(),
                },
                root.name(),
                Some(root.pos),
            ));
        }
        Ok(Domain { doc })
    }

    /// The serialized document: byte-identical to the input where nothing was edited.
    pub fn to_xml(&self) -> String {
        self.doc.to_xml()
    }

    pub fn document(&self) -> &Document {
        &self.doc
    }

    pub fn document_mut(&mut self) -> &mut Document {
        &mut self.doc
    }

    pub fn into_document(self) -> Document {
        self.doc
    }

    pub fn root(&self) -> &Element {
        self.doc.root()
    }

    fn style(&self) -> Style {
        self.doc.style()
    }

    fn text_field(&self, name: &str) -> Option<String> {
        sub_text(self.root(), name)
    }

    fn set_text_field(&mut self, name: &str, value: Option<&str>) {
        let style = self.style();
        set_sub_text(self.doc.root_mut(), name, value, order::DOMAIN, &style);
    }

    fn err_at(&self, child: &str, kind: ErrorKind) -> Error {
        let pos = self.root().child(child).map(|c| c.pos);
        Error::new(kind, format!("domain/{child}"), pos)
    }

    /// `domain@type` (kvm, qemu, test, ...).
    pub fn virt_type(&self) -> Option<VirtType> {
        self.root().attr("type").map(|v| VirtType::from(v.as_ref()))
    }

    pub fn set_virt_type(&mut self, t: &VirtType) {
        self.doc.root_mut().set_attr("type", t.as_str());
    }

    pub fn name(&self) -> Option<String> {
        self.text_field("name")
    }

    pub fn set_name(&mut self, name: &str) {
        self.set_text_field("name", Some(name));
    }

    /// The uuid text as written (see [`crate::ids::Uuid`] to check it).
    pub fn uuid(&self) -> Option<String> {
        self.text_field("uuid").map(|s| s.trim().to_string())
    }

    pub fn set_uuid(&mut self, uuid: &str) {
        self.set_text_field("uuid", Some(uuid));
    }

    pub fn title(&self) -> Option<String> {
        self.text_field("title")
    }

    pub fn set_title(&mut self, title: Option<&str>) {
        self.set_text_field("title", title);
    }

    pub fn description(&self) -> Option<String> {
        self.text_field("description")
    }

    pub fn set_description(&mut self, description: Option<&str>) {
        self.set_text_field("description", description);
    }

    fn size_field(&self, name: &str) -> Result<Option<u64>, Error> {
        let Some(e) = self.root().child(name) else {
            return Ok(None);
        };
        let unit = e.attr("unit");
        parse_size(&e.text(), unit.as_deref())
            .map(Some)
            .map_err(|err| {
                let attr = matches!(err, UnitError::UnknownUnit(_)).then_some("unit");
                let mut e2 = Error::new(
                    ErrorKind::InvalidValue {
                        field: name.into(),
                        value: match &err {
                            UnitError::UnknownUnit(u) => u.clone(),
                            _ => e.text(),
                        },
                        reason: err.to_string(),
                    },
                    format!("domain/{name}"),
                    Some(e.pos),
                );
                if let Some(a) = attr {
                    e2 = e2.with_attribute(a);
                }
                e2
            })
    }

    fn set_size_field(&mut self, name: &str, bytes: u64) {
        let style = self.style();
        let (value, unit) = format_size(bytes);
        let e = self
            .doc
            .root_mut()
            .ensure_child(name, order::DOMAIN, &style);
        e.set_attr("unit", unit);
        e.set_text(&value);
    }

    /// `<memory>` in bytes (any libvirt unit, default KiB).
    pub fn memory(&self) -> Result<Option<u64>, Error> {
        self.size_field("memory")
    }

    /// Writes `<memory>` (in KiB when `bytes` is a whole number of KiB).
    pub fn set_memory(&mut self, bytes: u64) {
        self.set_size_field("memory", bytes)
    }

    /// `<currentMemory>` in bytes.
    pub fn current_memory(&self) -> Result<Option<u64>, Error> {
        self.size_field("currentMemory")
    }

    pub fn set_current_memory(&mut self, bytes: Option<u64>) {
        match bytes {
            Some(b) => self.set_size_field("currentMemory", b),
            None => {
                self.doc.root_mut().remove_children_named("currentMemory");
            }
        }
    }

    /// `<vcpu>` count.
    pub fn vcpu(&self) -> Result<Option<u32>, Error> {
        let Some(text) = self.text_field("vcpu") else {
            return Ok(None);
        };
        parse_uint::<u32>(&text).map(Some).ok_or_else(|| {
            self.err_at(
                "vcpu",
                ErrorKind::InvalidValue {
                    field: "vcpu".into(),
                    value: text.clone(),
                    reason: "not an unsigned integer".into(),
                },
            )
        })
    }

    pub fn set_vcpu(&mut self, n: u32) {
        self.set_text_field("vcpu", Some(&n.to_string()));
    }

    /// `cpu@mode`.
    pub fn cpu_mode(&self) -> Option<CpuMode> {
        sub_attr(self.root(), "cpu", "mode").map(|m| CpuMode::from(m.as_str()))
    }

    pub fn set_cpu_mode(&mut self, mode: Option<&CpuMode>) {
        let style = self.style();
        set_sub_attr(
            self.doc.root_mut(),
            "cpu",
            "mode",
            mode.map(|m| m.as_str()),
            order::DOMAIN,
            &style,
        );
    }

    /// `<os>`, if present.
    pub fn os(&self) -> Option<Os<&Element>> {
        let style = self.style();
        self.root()
            .child("os")
            .map(|e| Os::wrap(e, style, "domain/os".into()))
    }

    /// `<os>`, created at its canonical place if missing.
    pub fn os_mut(&mut self) -> Os<&mut Element> {
        let style = self.style();
        let e = self
            .doc
            .root_mut()
            .ensure_child("os", order::DOMAIN, &style);
        Os::wrap(e, style, "domain/os".into())
    }

    /// Whether `<features><NAME/></features>` is present (acpi, apic, pae, ...).
    pub fn feature(&self, name: &str) -> bool {
        self.root()
            .child("features")
            .is_some_and(|f| f.child(name).is_some())
    }

    /// Adds or removes a feature flag; `<features>` is removed when it becomes empty.
    pub fn set_feature(&mut self, name: &str, on: bool) {
        let style = self.style();
        let root = self.doc.root_mut();
        if on {
            root.ensure_child("features", order::DOMAIN, &style)
                .ensure_child(name, order::FEATURES, &style);
        } else if let Some(f) = root.child_mut("features") {
            f.remove_children_named(name);
            if f.elements().next().is_none() {
                root.remove_children_named("features");
            }
        }
    }

    /// `clock@offset`.
    pub fn clock_offset(&self) -> Option<ClockOffset> {
        sub_attr(self.root(), "clock", "offset").map(|v| ClockOffset::from(v.as_str()))
    }

    pub fn set_clock_offset(&mut self, offset: &ClockOffset) {
        let style = self.style();
        set_sub_attr(
            self.doc.root_mut(),
            "clock",
            "offset",
            Some(offset.as_str()),
            order::DOMAIN,
            &style,
        );
    }

    /// `on_poweroff` / `on_reboot` / `on_crash`.
    pub fn lifecycle(&self, event: LifecycleEvent) -> Option<LifecycleAction> {
        self.text_field(event.element())
            .map(|t| LifecycleAction::from(t.trim()))
    }

    pub fn set_lifecycle(&mut self, event: LifecycleEvent, action: Option<&LifecycleAction>) {
        self.set_text_field(event.element(), action.map(|a| a.as_str()));
    }

    /// `<devices>`, if present.
    pub fn devices(&self) -> Option<Devices<&Element>> {
        let style = self.style();
        self.root()
            .child("devices")
            .map(|e| Devices::wrap(e, style, "domain/devices".into()))
    }

    /// `<devices>`, created at its canonical place if missing.
    pub fn devices_mut(&mut self) -> Devices<&mut Element> {
        let style = self.style();
        let e = self
            .doc
            .root_mut()
            .ensure_child("devices", order::DOMAIN, &style);
        Devices::wrap(e, style, "domain/devices".into())
    }

    /// The element in `<metadata>` whose namespace URI is `ns` (prefixes are not compared).
    pub fn metadata(&self, ns: &str) -> Option<&Element> {
        let root = self.root();
        let md = root.child("metadata")?;
        md.elements().find(|e| {
            let chain = [root, md, *e];
            resolve_prefix(&chain, e.prefix().unwrap_or("")).as_deref() == Some(ns)
        })
    }

    /// A value stored by Vireo: `<metadata><vireo:vm><vireo:KEY>VALUE</vireo:KEY>`.
    pub fn vireo_value(&self, key: &str) -> Option<String> {
        let root = self.root();
        let md = root.child("metadata")?;
        let vm = self.metadata(VIREO_NS)?;
        vm.elements()
            .find(|e| {
                let chain = [root, md, vm, *e];
                e.local_name() == key
                    && resolve_prefix(&chain, e.prefix().unwrap_or("")).as_deref() == Some(VIREO_NS)
            })
            .map(|e| e.text())
    }

    /// Stores (or with `None` removes) a Vireo value in `<metadata>` under [`VIREO_NS`].
    pub fn set_vireo_value(&mut self, key: &str, value: Option<&str>) {
        let style = self.style();
        let existing_prefix = self
            .metadata(VIREO_NS)
            .map(|vm| vm.prefix().map(str::to_string));
        let root = self.doc.root_mut();
        if existing_prefix.is_none() && value.is_none() {
            return;
        }
        let md = root.ensure_child("metadata", order::DOMAIN, &style);
        let (vm_name, prefix) = match existing_prefix {
            Some(p) => {
                let name = match &p {
                    Some(p) => format!("{p}:vm"),
                    None => "vm".to_string(),
                };
                (name, p)
            }
            None => {
                let name = format!("{VIREO_PREFIX}:vm");
                let vm = Element::new(name.clone())
                    .with_attr(&format!("xmlns:{VIREO_PREFIX}"), VIREO_NS);
                md.insert_ordered(vm, &[], &style);
                (name, Some(VIREO_PREFIX.to_string()))
            }
        };
        let Some(vm) = md.elements_mut().find(|e| e.name() == vm_name) else {
            return;
        };
        let key_name = match prefix {
            Some(p) => format!("{p}:{key}"),
            None => key.to_string(),
        };
        set_sub_text(vm, &key_name, value, &[], &style);
    }
}

view!(
    /// `<os>`: boot configuration.
    Os
);

impl<E: AsRef<Element>> Os<E> {
    /// `os/type` text (hvm, ...).
    pub fn os_type(&self) -> Option<OsType> {
        sub_text(self.e(), "type").map(|t| OsType::from(t.trim()))
    }
    pub fn arch(&self) -> Option<String> {
        sub_attr(self.e(), "type", "arch")
    }
    pub fn machine(&self) -> Option<String> {
        sub_attr(self.e(), "type", "machine")
    }
    /// `os@firmware` (automatic firmware selection).
    pub fn firmware(&self) -> Option<Firmware> {
        self.e()
            .attr("firmware")
            .map(|f| Firmware::from(f.as_ref()))
    }
    /// `os/loader` path.
    pub fn loader(&self) -> Option<String> {
        sub_text(self.e(), "loader").map(|s| s.trim().to_string())
    }
    pub fn loader_readonly(&self) -> Option<bool> {
        sub_attr(self.e(), "loader", "readonly").map(|v| v == "yes")
    }
    pub fn loader_type(&self) -> Option<String> {
        sub_attr(self.e(), "loader", "type")
    }
    /// `os/nvram` path.
    pub fn nvram(&self) -> Option<String> {
        sub_text(self.e(), "nvram").map(|s| s.trim().to_string())
    }
    pub fn kernel(&self) -> Option<String> {
        sub_text(self.e(), "kernel")
    }
    pub fn initrd(&self) -> Option<String> {
        sub_text(self.e(), "initrd")
    }
    pub fn cmdline(&self) -> Option<String> {
        sub_text(self.e(), "cmdline")
    }
    /// `os/boot@dev` in order.
    pub fn boot_devs(&self) -> Vec<BootDev> {
        self.e()
            .children_named("boot")
            .filter_map(|b| b.attr("dev").map(|d| BootDev::from(d.as_ref())))
            .collect()
    }
    /// `os/bootmenu@enable`.
    pub fn bootmenu(&self) -> Option<bool> {
        sub_attr(self.e(), "bootmenu", "enable").map(|v| v == "yes")
    }
    /// `os/bootmenu@timeout` as written (milliseconds; libvirt allows 0..=65535).
    pub fn bootmenu_timeout(&self) -> Option<String> {
        sub_attr(self.e(), "bootmenu", "timeout")
    }
}

impl<E: AsRef<Element> + AsMut<Element>> Os<E> {
    /// Sets `os/type` text, arch and machine (`None` removes arch/machine).
    pub fn set_type(&mut self, os_type: &OsType, arch: Option<&str>, machine: Option<&str>) {
        let (e, style) = self.em();
        let t = e.ensure_child("type", order::OS, style);
        t.set_text(os_type.as_str());
        t.set_or_remove_attr("arch", arch);
        t.set_or_remove_attr("machine", machine);
    }
    pub fn set_firmware(&mut self, fw: Option<&Firmware>) {
        self.element_mut()
            .set_or_remove_attr("firmware", fw.map(|f| f.as_str()));
    }
    /// Sets `os/loader` (readonly, type pflash/rom) or removes it.
    pub fn set_loader(&mut self, path: Option<&str>, readonly: Option<bool>, kind: Option<&str>) {
        let (e, style) = self.em();
        match path {
            Some(p) => {
                let l = e.ensure_child("loader", order::OS, style);
                l.set_text(p);
                l.set_or_remove_attr("readonly", readonly.map(|r| if r { "yes" } else { "no" }));
                l.set_or_remove_attr("type", kind);
            }
            None => {
                e.remove_children_named("loader");
            }
        }
    }
    pub fn set_nvram(&mut self, path: Option<&str>) {
        let (e, style) = self.em();
        set_sub_text(e, "nvram", path, order::OS, style);
    }
    pub fn set_kernel(&mut self, path: Option<&str>) {
        let (e, style) = self.em();
        set_sub_text(e, "kernel", path, order::OS, style);
    }
    pub fn set_initrd(&mut self, path: Option<&str>) {
        let (e, style) = self.em();
        set_sub_text(e, "initrd", path, order::OS, style);
    }
    pub fn set_cmdline(&mut self, cmdline: Option<&str>) {
        let (e, style) = self.em();
        set_sub_text(e, "cmdline", cmdline, order::OS, style);
    }
    /// Sets `os/bootmenu` (`enable`, and `timeout` in milliseconds) or removes it.
    pub fn set_bootmenu(&mut self, enable: Option<bool>, timeout_ms: Option<u32>) {
        let (e, style) = self.em();
        match enable {
            Some(on) => {
                let b = e.ensure_child("bootmenu", order::OS, style);
                b.set_attr("enable", if on { "yes" } else { "no" });
                b.set_or_remove_attr("timeout", timeout_ms.map(|t| t.to_string()).as_deref());
            }
            None => {
                e.remove_children_named("bootmenu");
            }
        }
    }
    /// Replaces the `os/boot` list.
    pub fn set_boot_devs(&mut self, devs: &[BootDev]) {
        let (e, style) = self.em();
        e.remove_children_named("boot");
        for d in devs {
            e.insert_ordered(
                Element::new("boot").with_attr("dev", d.as_str()),
                order::OS,
                style,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::{DiskSpec, PortForward};
    use crate::values::{DiskBus, ImageFormat, InterfaceType};
    use crate::ErrorKind;

    const DOC: &str = "<?xml version='1.0'?>\n<!-- keep me -->\n<domain type='kvm' xmlns:qemu=\"http://libvirt.org/schemas/domain/qemu/1.0\">\n  <name>vm1</name>\n  <memory unit='GiB'>2</memory>\n  <vcpu>2</vcpu>\n  <os>\n    <type arch='x86_64' machine='pc'>hvm</type>\n    <boot dev='hd'/>\n    <boot dev='cdrom'/>\n  </os>\n  <devices>\n    <disk type='file' device='disk'>\n      <source file='/a.img'/>\n      <target dev='vda' bus='virtio'/>\n    </disk>\n    <disk type=\"block\" device=\"cdrom\">\n      <source dev=\"/dev/sr0\"/>\n      <target dev=\"hdc\"/>\n      <readonly/>\n    </disk>\n    <interface type='user'>\n      <mac address='52:54:00:aa:bb:cc'/>\n    </interface>\n    <unknown-device foo='bar'><x/></unknown-device>\n  </devices>\n  <qemu:commandline>\n    <qemu:arg value='-nodefaults'/>\n  </qemu:commandline>\n</domain>\n";

    fn dom() -> Domain {
        Domain::parse(DOC).expect("parse")
    }

    #[test]
    fn reads_typed_values() {
        let d = dom();
        assert_eq!(d.virt_type(), Some(VirtType::Kvm));
        assert_eq!(d.name().as_deref(), Some("vm1"));
        assert_eq!(d.memory().expect("mem"), Some(2 << 30));
        assert_eq!(d.current_memory().expect("cur"), None);
        assert_eq!(d.vcpu().expect("vcpu"), Some(2));
        let os = d.os().expect("os");
        assert_eq!(os.os_type(), Some(OsType::Hvm));
        assert_eq!(os.arch().as_deref(), Some("x86_64"));
        assert_eq!(os.machine().as_deref(), Some("pc"));
        assert_eq!(os.boot_devs(), vec![BootDev::Hd, BootDev::Cdrom]);
        let devs = d.devices().expect("devices");
        let disks = devs.disks();
        assert_eq!(disks.len(), 2);
        assert_eq!(disks[0].source().as_deref(), Some("/a.img"));
        assert_eq!(disks[1].source().as_deref(), Some("/dev/sr0"));
        assert_eq!(disks[1].device(), crate::values::DiskDevice::Cdrom);
        assert!(disks[1].readonly());
        assert_eq!(disks[1].path(), "domain/devices/disk[2]");
        assert_eq!(devs.interfaces()[0].iface_type(), Some(InterfaceType::User));
    }

    #[test]
    fn untouched_is_identical_and_edits_are_local() {
        let mut d = dom();
        assert_eq!(d.to_xml(), DOC);
        d.set_name("vm2");
        let expected = DOC.replace("<name>vm1</name>", "<name>vm2</name>");
        assert_eq!(d.to_xml(), expected);
        // A value-preserving edit of an attribute keeps its quotes.
        d.devices_mut()
            .disk_mut(1)
            .expect("disk")
            .set_target("hdc", None);
        assert_eq!(d.to_xml(), expected);
    }

    #[test]
    fn new_elements_take_canonical_places() {
        let mut d = dom();
        d.set_current_memory(Some(1 << 30));
        d.set_uuid("6695eb01-f6a4-8304-79aa-97f2502e193f");
        d.set_lifecycle(LifecycleEvent::Reboot, Some(&LifecycleAction::Destroy));
        d.set_clock_offset(&ClockOffset::Utc);
        d.os_mut().set_kernel(Some("/vmlinuz"));
        d.devices_mut().set_emulator(Some("/usr/bin/vireo-vmm"));
        d.devices_mut()
            .add(DiskSpec::file("/b.qcow2", ImageFormat::Qcow2, "vdb").to_element());
        let xml = d.to_xml();
        let order = |needle: &str| {
            xml.find(needle)
                .unwrap_or_else(|| panic!("{needle} missing in\n{xml}"))
        };
        assert!(order("<name>") < order("<uuid>"));
        assert!(order("<memory") < order("<currentMemory unit='KiB'>1048576</currentMemory>"));
        assert!(order("<currentMemory") < order("<vcpu>"));
        assert!(order("<type arch") < order("<kernel>/vmlinuz</kernel>"));
        assert!(order("<kernel>") < order("<boot dev='hd'/>"));
        assert!(order("</os>") < order("<clock offset='utc'/>"));
        assert!(order("<clock") < order("<on_reboot>destroy</on_reboot>"));
        assert!(order("<on_reboot>") < order("<devices>"));
        assert!(order("<devices>") < order("<emulator>"));
        assert!(order("<emulator>") < order("<disk type='file'"));
        assert!(order("/dev/sr0") < order("/b.qcow2"));
        assert!(order("/b.qcow2") < order("<interface"));
        assert!(xml.contains("\n    <disk type='file' device='disk'>\n      <driver name='qemu' type='qcow2'/>\n      <source file='/b.qcow2'/>\n      <target dev='vdb' bus='virtio'/>\n    </disk>\n    <interface"), "{xml}");
        assert!(xml.contains("<unknown-device foo='bar'><x/></unknown-device>"));
        assert!(xml.contains("<qemu:arg value='-nodefaults'/>"));
        assert!(xml.starts_with("<?xml version='1.0'?>\n<!-- keep me -->\n"));
        let back = Domain::parse(&xml).expect("reparse");
        assert_eq!(back.current_memory().expect("cur"), Some(1 << 30));
        assert_eq!(
            back.devices().expect("devs").disks()[2].target_bus(),
            Some(DiskBus::Virtio)
        );
    }

    #[test]
    fn removing_and_port_forwards() {
        let mut d = dom();
        {
            let mut devs = d.devices_mut();
            assert!(devs.remove_disk(0).is_some());
            let mut i = devs.interface_mut(0).expect("iface");
            i.add_port_forward(&PortForward::tcp(2222, 22));
        }
        let devs = d.devices().expect("devs");
        assert_eq!(devs.disks().len(), 1);
        assert_eq!(devs.disks()[0].path(), "domain/devices/disk");
        assert_eq!(
            devs.interfaces()[0].port_forwards(),
            vec![PortForward::tcp(2222, 22)]
        );
        let xml = d.to_xml();
        assert!(xml.contains("      <mac address='52:54:00:aa:bb:cc'/>\n      <portForward proto='tcp'>\n        <range start='2222' to='22'/>\n      </portForward>\n    </interface>"), "{xml}");
    }

    #[test]
    fn metadata_matches_namespace_not_prefix() {
        let xml = "<domain type='kvm'><name>a</name><metadata><v:vm xmlns:v='https://vireo.org/xmlns/vireo/1.0'><v:os>debian</v:os></v:vm><other:x xmlns:other='urn:other'/></metadata></domain>";
        let mut d = Domain::parse(xml).expect("parse");
        assert_eq!(d.vireo_value("os").as_deref(), Some("debian"));
        d.set_vireo_value("os", Some("fedora"));
        d.set_vireo_value("new", Some("1"));
        assert_eq!(d.vireo_value("os").as_deref(), Some("fedora"));
        assert_eq!(d.vireo_value("new").as_deref(), Some("1"));
        assert!(d.to_xml().contains("<v:new>1</v:new>"));
        assert!(d.to_xml().contains("<other:x xmlns:other='urn:other'/>"));
        let mut e = Domain::parse("<domain type='kvm'><name>a</name></domain>").expect("parse");
        assert_eq!(e.vireo_value("os"), None);
        e.set_vireo_value("os", Some("x"));
        assert_eq!(e.vireo_value("os").as_deref(), Some("x"));
        assert!(e
            .to_xml()
            .contains("xmlns:vireo='https://vireo.org/xmlns/vireo/1.0'"));
    }

    #[test]
    fn memory_errors_name_the_field() {
        let d =
            Domain::parse("<domain type='kvm'>\n  <memory unit='parsecs'>2</memory>\n</domain>")
                .expect("parse");
        let e = d.memory().expect_err("bad unit");
        assert_eq!(e.path, "domain/memory");
        assert_eq!(e.attribute.as_deref(), Some("unit"));
        assert_eq!(e.pos.map(|p| (p.line, p.column)), Some((2, 3)));
        assert!(e.to_string().contains("unknown unit 'parsecs'"), "{e}");
    }

    #[test]
    fn one_boot_order_either_under_os_or_per_device() {
        let doc = |os_boot: &str, disk_boot: &str| {
            format!(
                "<domain type='kvm'><name>a</name><memory>1</memory>\
                 <os><type>hvm</type>{os_boot}</os><devices>\
                 <disk type='file' device='disk'><source file='/a'/><target dev='vda'/>{disk_boot}</disk>\
                 </devices></domain>"
            )
        };
        let ok = |x: &str| Domain::parse(x).expect("parse").validate();
        assert!(ok(&doc("<boot dev='hd'/>", "")).is_ok());
        assert!(ok(&doc("", "<boot order='1'/>")).is_ok());
        let errs = ok(&doc(
            "<boot dev='cdrom'/><boot dev='hd'/>",
            "<boot order='1'/>",
        ))
        .expect_err("both");
        assert_eq!(
            errs.to_string(),
            "line 1, column 72: domain/os/boot[1]: per-device boot elements cannot be used \
             together with os/boot elements"
        );
        let d = Domain::parse(&doc("<bootmenu enable='yes' timeout='3000'/>", "")).expect("parse");
        let os = d.os().expect("os");
        assert_eq!(os.bootmenu(), Some(true));
        assert_eq!(os.bootmenu_timeout().as_deref(), Some("3000"));
        let mut d = Domain::parse(&doc("<boot dev='hd'/>", "")).expect("parse");
        d.os_mut().set_bootmenu(Some(true), Some(500));
        let xml = d.to_xml();
        let at = |s: &str| {
            xml.find(s)
                .unwrap_or_else(|| panic!("{s} missing in {xml}"))
        };
        assert!(at("<boot dev='hd'/>") < at("<bootmenu enable='yes' timeout='500'/>"));
        d.os_mut().set_bootmenu(Some(false), None);
        assert!(d.to_xml().contains("<bootmenu enable='no'/>"));
        d.os_mut().set_bootmenu(None, None);
        assert!(!d.to_xml().contains("bootmenu"));
    }

    #[test]
    fn validation_reports_everything_with_paths() {
        let xml = "<domain type='kvm'>
  <name>bad/name</name>
  <uuid>not-a-uuid</uuid>
  <memory unit='MiB'>512</memory>
  <currentMemory unit='GiB'>1</currentMemory>
  <vcpu>0</vcpu>
  <os><type>hvm</type></os>
  <on_reboot>coredump-restart</on_reboot>
  <devices>
    <disk type='file' device='disk'>
      <target dev='vda'/>
    </disk>
    <disk type='file' device='disk'>
      <target bus='virtio'/>
    </disk>
    <disk type='file' device='floppy'>
      <target dev='vda'/>
    </disk>
    <interface type='user'><mac address='01:00:5e:00:00:01'/></interface>
    <interface type='bogus'><mac address='zz'/></interface>
    <graphics type='vnc' port='70000'/>
    <input type='tablet' bus='ps3'/>
  </devices>
</domain>";
        let d = Domain::parse(xml).expect("parse");
        let errs = d.validate().expect_err("invalid");
        let msgs: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        let has = |s: &str| msgs.iter().any(|m| m.contains(s));
        assert!(
            has("domain/devices/disk[2]/target: missing attribute dev"),
            "{errs}"
        );
        assert!(
            has("line 14, column 7: domain/devices/disk[2]/target"),
            "{errs}"
        );
        assert!(has("domain/devices/disk[3]/target: duplicate disk target 'vda' (first used at domain/devices/disk[1]/target)"), "{errs}");
        assert!(has("domain/name: invalid value 'bad/name'"), "{errs}");
        assert!(has("domain/uuid"), "{errs}");
        assert!(has("domain/currentMemory: currentMemory (1073741824 bytes) is larger than memory (536870912 bytes)"), "{errs}");
        assert!(has("domain/vcpu"), "{errs}");
        assert!(has("domain/on_reboot"), "{errs}");
        assert!(
            has("domain/devices/interface[1]/mac: invalid value '01:00:5e:00:00:01'"),
            "{errs}"
        );
        assert!(
            has("domain/devices/interface[2]: invalid value 'bogus' for interface@type"),
            "{errs}"
        );
        assert!(
            has("domain/devices/interface[2]/mac: invalid value 'zz'"),
            "{errs}"
        );
        assert!(
            has("domain/devices/graphics: invalid value '70000' for graphics@port"),
            "{errs}"
        );
        assert!(
            has("domain/devices/input: invalid value 'ps3' for input@bus"),
            "{errs}"
        );
        // GUI mapping: kind + path + attribute.
        let mac = errs
            .iter()
            .find(|e| e.path == "domain/devices/interface[1]/mac")
            .expect("mac error");
        assert_eq!(
            mac.field(),
            ("domain/devices/interface[1]/mac", Some("address"))
        );
        assert!(matches!(mac.kind, ErrorKind::InvalidValue { .. }));
        // Document order.
        let lines: Vec<u32> = errs.iter().filter_map(|e| e.pos.map(|p| p.line)).collect();
        assert!(lines.windows(2).all(|w| w[0] <= w[1]), "{lines:?}");
    }

    #[test]
    fn device_setters() {
        let mut d = Domain::parse("<domain type='kvm'>\n  <devices>\n    <graphics type='vnc' socket='/s'/>\n    <serial type='pty'/>\n    <rng model='virtio'><backend model='egd'/></rng>\n  </devices>\n</domain>").expect("parse");
        {
            let mut devs = d.devices_mut();
            let mut g = devs.graphics_mut(0).expect("graphics");
            g.set_listen("127.0.0.1");
            g.set_port(Some(5901), Some(false));
            let mut s = devs.serial_mut(0).expect("serial");
            s.set_chardev_type(&crate::values::ChardevType::Tcp);
            s.set_tcp(Some("bind"), Some("127.0.0.1"), Some(4555));
            let mut r = devs.rng_mut(0).expect("rng");
            r.set_backend(&crate::values::RngBackend::Random, Some("/dev/urandom"));
        }
        let devs = d.devices().expect("devs");
        let g = &devs.graphics()[0];
        assert_eq!(g.listen().as_deref(), Some("127.0.0.1"));
        assert_eq!(g.socket(), None);
        assert_eq!((g.port(), g.autoport()), (Some(5901), Some(false)));
        let s = &devs.serials()[0];
        assert_eq!(s.service().as_deref(), Some("4555"));
        assert_eq!(devs.rngs()[0].source().as_deref(), Some("/dev/urandom"));
        let errs = d.validate().expect_err("no name/memory/os");
        assert!(errs.iter().all(|e| !e.path.contains("devices")), "{errs}");
        assert_eq!(errs.len(), 3, "{errs}");
    }

    #[test]
    fn load_names_the_file() {
        let dir = std::env::temp_dir().join(format!("vireo-domain-load-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("tmp");
        let p = dir.join("bad.xml");
        std::fs::write(&p, "<domain>\n  <name>x</nam>\n</domain>").expect("write");
        let e = Domain::load(&p).expect_err("malformed");
        let msg = e.to_string();
        assert!(
            msg.starts_with(&format!("{}: line 2, column ", p.display())),
            "{msg}"
        );
        assert!(msg.contains("domain/name"), "{msg}");
        let e = Domain::load(&dir.join("missing.xml")).expect_err("missing");
        assert!(matches!(e.kind, ErrorKind::Io(_)), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn wrong_root_is_an_error() {
        let e = Domain::parse("<network/>").expect_err("not a domain");
        assert!(matches!(e.kind, ErrorKind::WrongRoot { .. }));
    }
}
