//! Typed views of `<devices>` and the devices Vireo uses, plus constructors for new ones.

use crate::backing_store::BackingStore;
use crate::order;
use crate::tree::Element;
use crate::values::{
    ChardevType, DiskBus, DiskDevice, DiskType, GraphicsType, ImageFormat, InputBus, InputType,
    InterfaceType, MemballoonModel, PortProto, RngBackend, VideoModel,
};
use crate::view::{
    flag, parse_uint, set_flag, set_sub_attr, set_sub_text, sub_attr, sub_text, view,
};

mod pci;
pub use pci::PciAddress;

view!(
    /// `<devices>`.
    Devices
);

/// Path of the `index`-th (0-based) child named `name` under `parent`: `[n]` (1-based) is
/// added when the name repeats, as in `domain/devices/disk[2]`.
pub(crate) fn child_path(parent_path: &str, parent: &Element, name: &str, index: usize) -> String {
    indexed_path(
        parent_path,
        name,
        index,
        parent.children_named(name).count(),
    )
}

/// [`child_path`] when the number of same-named siblings is already known.
pub(crate) fn indexed_path(parent_path: &str, name: &str, index: usize, count: usize) -> String {
    if count > 1 {
        format!("{parent_path}/{name}[{}]", index + 1)
    } else {
        format!("{parent_path}/{name}")
    }
}

macro_rules! device_list {
    ($list:ident, $get:ident, $get_mut:ident, $remove:ident, $ty:ident, $tag:literal) => {
        impl<'a> Devices<&'a Element> {
            #[doc = concat!("All `<", $tag, ">` devices in document order.")]
            pub fn $list(&self) -> Vec<$ty<&'a Element>> {
                let e: &'a Element = self.el;
                e.children_named($tag)
                    .enumerate()
                    .map(|(i, d)| {
                        $ty::wrap(d, self.style.clone(), child_path(&self.path, e, $tag, i))
                    })
                    .collect()
            }
        }

        impl<E: AsRef<Element> + AsMut<Element>> Devices<E> {
            #[doc = concat!("The `index`-th `<", $tag, ">` for editing.")]
            pub fn $get_mut(&mut self, index: usize) -> Option<$ty<&mut Element>> {
                let path = child_path(&self.path, self.el.as_ref(), $tag, index);
                let style = self.style.clone();
                self.el
                    .as_mut()
                    .children_named_mut($tag)
                    .nth(index)
                    .map(|d| $ty::wrap(d, style, path))
            }

            #[doc = concat!("Removes the `index`-th `<", $tag, ">`.")]
            pub fn $remove(&mut self, index: usize) -> Option<Element> {
                self.el.as_mut().remove_child($tag, index)
            }
        }

        impl<'a> Devices<&'a Element> {
            #[doc = concat!("The `index`-th `<", $tag, ">`.")]
            pub fn $get(&self, index: usize) -> Option<$ty<&'a Element>> {
                self.$list().into_iter().nth(index)
            }
        }
    };
}

device_list!(disks, disk, disk_mut, remove_disk, Disk, "disk");
device_list!(
    interfaces,
    interface,
    interface_mut,
    remove_interface,
    Interface,
    "interface"
);
device_list!(
    graphics,
    graphic,
    graphics_mut,
    remove_graphics,
    Graphics,
    "graphics"
);
device_list!(
    serials,
    serial,
    serial_mut,
    remove_serial,
    Chardev,
    "serial"
);
device_list!(
    consoles,
    console,
    console_mut,
    remove_console,
    Chardev,
    "console"
);
device_list!(inputs, input, input_mut, remove_input, Input, "input");
device_list!(videos, video, video_mut, remove_video, Video, "video");
device_list!(rngs, rng, rng_mut, remove_rng, Rng, "rng");
device_list!(
    controllers,
    controller,
    controller_mut,
    remove_controller,
    Controller,
    "controller"
);
device_list!(
    memballoons,
    memballoon,
    memballoon_mut,
    remove_memballoon,
    Memballoon,
    "memballoon"
);

impl<E: AsRef<Element>> Devices<E> {
    /// How many child elements named `tag` (disk, interface, ...) there are.
    pub fn count(&self, tag: &str) -> usize {
        self.e().children_named(tag).count()
    }

    /// `<emulator>` path.
    pub fn emulator(&self) -> Option<String> {
        sub_text(self.e(), "emulator").map(|s| s.trim().to_string())
    }
}

impl<E: AsRef<Element> + AsMut<Element>> Devices<E> {
    pub fn set_emulator(&mut self, path: Option<&str>) {
        let (e, style) = self.em();
        set_sub_text(e, "emulator", path, order::DEVICES, style);
    }

    /// Adds a device element (built with the `new` constructors of the views, or by hand)
    /// after the last device of the same kind, in libvirt's device order.
    pub fn add(&mut self, device: Element) -> &mut Element {
        let (e, style) = self.em();
        let style = style.clone();
        e.insert_ordered(device, order::DEVICES, &style)
    }
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

view!(
    /// `<disk>`.
    Disk
);

/// What a new disk needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskSpec {
    pub disk_type: DiskType,
    pub device: DiskDevice,
    /// `driver@name` (qemu).
    pub driver_name: Option<String>,
    pub format: Option<ImageFormat>,
    /// File (type file) or device node (type block).
    pub source: Option<String>,
    pub target_dev: String,
    pub target_bus: Option<DiskBus>,
    pub readonly: bool,
    pub shareable: bool,
    pub serial: Option<String>,
    pub boot_order: Option<u32>,
}

impl DiskSpec {
    /// A virtio disk backed by a file.
    pub fn file(path: &str, format: ImageFormat, target_dev: &str) -> Self {
        DiskSpec {
            disk_type: DiskType::File,
            device: DiskDevice::Disk,
            driver_name: Some("qemu".into()),
            format: Some(format),
            source: Some(path.into()),
            target_dev: target_dev.into(),
            target_bus: Some(DiskBus::Virtio),
            readonly: false,
            shareable: false,
            serial: None,
            boot_order: None,
        }
    }

    /// The `<disk>` element.
    pub fn to_element(&self) -> Element {
        let mut d = Element::new("disk")
            .with_attr("type", self.disk_type.as_str())
            .with_attr("device", self.device.as_str());
        if self.driver_name.is_some() || self.format.is_some() {
            let mut drv = Element::new("driver");
            if let Some(n) = &self.driver_name {
                drv.set_attr("name", n);
            }
            if let Some(f) = &self.format {
                drv.set_attr("type", f.as_str());
            }
            d = d.with_child(drv);
        }
        if let Some(s) = &self.source {
            d = d.with_child(Element::new("source").with_attr(source_attr(&self.disk_type), s));
        }
        let mut t = Element::new("target").with_attr("dev", &self.target_dev);
        if let Some(b) = &self.target_bus {
            t.set_attr("bus", b.as_str());
        }
        d = d.with_child(t);
        if self.readonly {
            d = d.with_child(Element::new("readonly"));
        }
        if self.shareable {
            d = d.with_child(Element::new("shareable"));
        }
        if let Some(s) = &self.serial {
            d = d.with_child(Element::new("serial").with_text(s));
        }
        if let Some(o) = self.boot_order {
            d = d.with_child(Element::new("boot").with_attr("order", &o.to_string()));
        }
        d
    }
}

/// The `<source>` attribute that holds the path for a disk type.
fn source_attr(t: &DiskType) -> &'static str {
    match t {
        DiskType::Block => "dev",
        DiskType::Dir => "dir",
        DiskType::Network => "name",
        _ => "file",
    }
}

impl<E: AsRef<Element>> Disk<E> {
    pub fn disk_type(&self) -> Option<DiskType> {
        self.e().attr("type").map(|v| DiskType::from(v.as_ref()))
    }
    /// `disk@device`; libvirt's default is `disk`.
    pub fn device(&self) -> DiskDevice {
        self.e()
            .attr("device")
            .map_or(DiskDevice::Disk, |v| DiskDevice::from(v.as_ref()))
    }
    pub fn driver_name(&self) -> Option<String> {
        sub_attr(self.e(), "driver", "name")
    }
    pub fn format(&self) -> Option<ImageFormat> {
        sub_attr(self.e(), "driver", "type").map(|v| ImageFormat::from(v.as_str()))
    }
    /// The path the disk reads: `source@file`, `@dev`, `@dir` by type (file by default).
    pub fn source(&self) -> Option<String> {
        let t = self.disk_type().unwrap_or(DiskType::File);
        sub_attr(self.e(), "source", source_attr(&t))
    }
    pub fn target_dev(&self) -> Option<String> {
        sub_attr(self.e(), "target", "dev")
    }
    pub fn target_bus(&self) -> Option<DiskBus> {
        sub_attr(self.e(), "target", "bus").map(|v| DiskBus::from(v.as_str()))
    }
    pub fn readonly(&self) -> bool {
        flag(self.e(), "readonly")
    }
    pub fn shareable(&self) -> bool {
        flag(self.e(), "shareable")
    }
    pub fn serial(&self) -> Option<String> {
        sub_text(self.e(), "serial")
    }
    /// `boot@order`; `None` when absent or not a number (the validator reports the latter).
    pub fn boot_order(&self) -> Option<u32> {
        sub_attr(self.e(), "boot", "order").and_then(|v| parse_uint(&v))
    }
    /// `address type='drive'` (controller, bus, target, unit; an absent number is 0, as in
    /// libvirt); `None` when the disk has no address or one of another type. A number that does
    /// not parse is `Err` with the attribute's name and value.
    pub fn drive_address(&self) -> Option<Result<DriveAddress, (&'static str, String)>> {
        let a = self.e().child("address")?;
        if a.attr("type").as_deref() != Some("drive") {
            return None;
        }
        let num = |name: &'static str| -> Result<u32, (&'static str, String)> {
            match a.attr(name) {
                None => Ok(0),
                Some(v) => parse_uint(&v).ok_or((name, v.into_owned())),
            }
        };
        Some((|| {
            Ok(DriveAddress {
                controller: num("controller")?,
                bus: num("bus")?,
                target: num("target")?,
                unit: num("unit")?,
            })
        })())
    }
}

/// The index libvirt reads from a disk target name (`sda` 0, `sdz` 25, `sdaa` 26, `hdc` 2):
/// the letters after the two-letter prefix (`sd`, `hd`, `vd`, `xvd` takes three), as a
/// bijective base-26 number. `None` for a name without a known prefix or with other characters.
pub fn disk_name_index(name: &str) -> Option<u32> {
    let letters = ["xvd", "sd", "hd", "vd", "fd", "ubd"]
        .iter()
        .find_map(|p| name.strip_prefix(p))?;
    if letters.is_empty() || letters.len() > 6 || !letters.bytes().all(|b| b.is_ascii_lowercase()) {
        return None;
    }
    let mut n: u32 = 0;
    for b in letters.bytes() {
        n = n * 26 + u32::from(b - b'a') + 1;
    }
    Some(n - 1)
}

/// A disk's `<address type='drive'>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DriveAddress {
    pub controller: u32,
    pub bus: u32,
    pub target: u32,
    pub unit: u32,
}

impl<'a> Disk<&'a Element> {
    /// The declared backing chain's first layer; `None` when the disk declares none.
    pub fn backing_store(&self) -> Option<BackingStore<&'a Element>> {
        BackingStore::first_under(self.el, &self.style, &self.path)
    }
}

impl<E: AsRef<Element> + AsMut<Element>> Disk<E> {
    pub fn set_disk_type(&mut self, t: &DiskType) {
        self.element_mut().set_attr("type", t.as_str());
    }
    pub fn set_device(&mut self, d: &DiskDevice) {
        self.element_mut().set_attr("device", d.as_str());
    }
    pub fn set_driver(&mut self, name: Option<&str>, format: Option<&ImageFormat>) {
        let (e, style) = self.em();
        set_sub_attr(e, "driver", "name", name, order::DISK, style);
        set_sub_attr(
            e,
            "driver",
            "type",
            format.map(|f| f.as_str()),
            order::DISK,
            style,
        );
    }
    pub fn set_source(&mut self, path: Option<&str>) {
        let t = self.disk_type().unwrap_or(DiskType::File);
        let (e, style) = self.em();
        set_sub_attr(e, "source", source_attr(&t), path, order::DISK, style);
    }
    pub fn set_target(&mut self, dev: &str, bus: Option<&DiskBus>) {
        let (e, style) = self.em();
        set_sub_attr(e, "target", "dev", Some(dev), order::DISK, style);
        set_sub_attr(
            e,
            "target",
            "bus",
            bus.map(|b| b.as_str()),
            order::DISK,
            style,
        );
    }
    pub fn set_readonly(&mut self, on: bool) {
        let (e, style) = self.em();
        set_flag(e, "readonly", on, order::DISK, style);
    }
    pub fn set_shareable(&mut self, on: bool) {
        let (e, style) = self.em();
        set_flag(e, "shareable", on, order::DISK, style);
    }
    pub fn set_serial(&mut self, serial: Option<&str>) {
        let (e, style) = self.em();
        set_sub_text(e, "serial", serial, order::DISK, style);
    }
    pub fn set_boot_order(&mut self, order_: Option<u32>) {
        let (e, style) = self.em();
        let v = order_.map(|o| o.to_string());
        set_sub_attr(e, "boot", "order", v.as_deref(), order::DISK, style);
    }
}

view!(
    /// `<interface>`.
    Interface
);

/// A `<range>` of a `<portForward>`: host port(s) `start..=end` to guest port `to`, or an
/// excluded range.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PortRange {
    pub start: u16,
    pub end: Option<u16>,
    pub to: Option<u16>,
    pub exclude: bool,
}

/// A `<portForward>` of a user-mode (passt) interface (libvirt 9.0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortForward {
    pub proto: PortProto,
    pub address: Option<String>,
    pub dev: Option<String>,
    pub ranges: Vec<PortRange>,
}

impl PortForward {
    /// Forward host `host_port` to guest `guest_port` over TCP.
    pub fn tcp(host_port: u16, guest_port: u16) -> Self {
        PortForward {
            proto: PortProto::Tcp,
            address: None,
            dev: None,
            ranges: vec![PortRange {
                start: host_port,
                end: None,
                to: Some(guest_port),
                exclude: false,
            }],
        }
    }

    pub fn to_element(&self) -> Element {
        let mut e = Element::new("portForward").with_attr("proto", self.proto.as_str());
        if let Some(a) = &self.address {
            e.set_attr("address", a);
        }
        if let Some(d) = &self.dev {
            e.set_attr("dev", d);
        }
        for r in &self.ranges {
            let mut re = Element::new("range").with_attr("start", &r.start.to_string());
            if let Some(end) = r.end {
                re.set_attr("end", &end.to_string());
            }
            if let Some(to) = r.to {
                re.set_attr("to", &to.to_string());
            }
            if r.exclude {
                re.set_attr("exclude", "yes");
            }
            e = e.with_child(re);
        }
        e
    }

    fn from_element(e: &Element) -> Self {
        PortForward {
            proto: PortProto::from(e.attr("proto").as_deref().unwrap_or("")),
            address: e.attr("address").map(|v| v.into_owned()),
            dev: e.attr("dev").map(|v| v.into_owned()),
            ranges: e
                .children_named("range")
                .map(|r| {
                    let n = |a: &str| r.attr(a).and_then(|v| parse_uint::<u16>(&v));
                    PortRange {
                        start: n("start").unwrap_or(0),
                        end: n("end"),
                        to: n("to"),
                        exclude: r.attr("exclude").as_deref() == Some("yes"),
                    }
                })
                .collect(),
        }
    }
}

/// What a new interface needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceSpec {
    pub iface_type: InterfaceType,
    pub mac: Option<String>,
    /// network name, bridge name, or tap device, by type.
    pub source: Option<String>,
    pub model: Option<String>,
    /// `backend@type` (e.g. passt for user networking).
    pub backend: Option<String>,
    pub port_forwards: Vec<PortForward>,
}

impl InterfaceSpec {
    pub fn to_element(&self) -> Element {
        let mut e = Element::new("interface").with_attr("type", self.iface_type.as_str());
        if let Some(m) = &self.mac {
            e = e.with_child(Element::new("mac").with_attr("address", m));
        }
        if let (Some(s), Some(attr)) = (&self.source, iface_source_attr(&self.iface_type)) {
            e = e.with_child(Element::new("source").with_attr(attr, s));
        }
        for pf in &self.port_forwards {
            e = e.with_child(pf.to_element());
        }
        if let Some(m) = &self.model {
            e = e.with_child(Element::new("model").with_attr("type", m));
        }
        if let Some(b) = &self.backend {
            e = e.with_child(Element::new("backend").with_attr("type", b));
        }
        e
    }
}

fn iface_source_attr(t: &InterfaceType) -> Option<&'static str> {
    match t {
        InterfaceType::Network => Some("network"),
        InterfaceType::Bridge => Some("bridge"),
        InterfaceType::Direct => Some("dev"),
        InterfaceType::Mcast
        | InterfaceType::Server
        | InterfaceType::Client
        | InterfaceType::Udp => Some("address"),
        _ => None,
    }
}

impl<E: AsRef<Element>> Interface<E> {
    pub fn iface_type(&self) -> Option<InterfaceType> {
        self.e()
            .attr("type")
            .map(|v| InterfaceType::from(v.as_ref()))
    }
    pub fn mac(&self) -> Option<String> {
        sub_attr(self.e(), "mac", "address")
    }
    /// `model@type` (virtio, e1000, ...).
    pub fn model(&self) -> Option<String> {
        sub_attr(self.e(), "model", "type")
    }
    /// The network / bridge / device / address the interface attaches to, by type.
    pub fn source(&self) -> Option<String> {
        let t = self.iface_type()?;
        sub_attr(self.e(), "source", iface_source_attr(&t)?)
    }
    /// `source@port` (mcast, server, client, udp).
    pub fn source_port(&self) -> Option<u16> {
        sub_attr(self.e(), "source", "port").and_then(|p| parse_uint(&p))
    }
    pub fn backend(&self) -> Option<String> {
        sub_attr(self.e(), "backend", "type")
    }
    pub fn port_forwards(&self) -> Vec<PortForward> {
        self.e()
            .children_named("portForward")
            .map(PortForward::from_element)
            .collect()
    }
}

impl<E: AsRef<Element> + AsMut<Element>> Interface<E> {
    /// Changes `interface@type`; a `<source>` that belonged to the old type is removed.
    pub fn set_iface_type(&mut self, t: &InterfaceType) {
        if self.iface_type().as_ref() != Some(t) {
            self.element_mut().remove_children_named("source");
        }
        self.element_mut().set_attr("type", t.as_str());
    }
    pub fn set_mac(&mut self, mac: Option<&str>) {
        let (e, style) = self.em();
        set_sub_attr(e, "mac", "address", mac, order::INTERFACE, style);
    }
    pub fn set_model(&mut self, model: Option<&str>) {
        let (e, style) = self.em();
        set_sub_attr(e, "model", "type", model, order::INTERFACE, style);
    }
    pub fn set_source(&mut self, source: Option<&str>) {
        let Some(attr) = self.iface_type().as_ref().and_then(iface_source_attr) else {
            return;
        };
        let (e, style) = self.em();
        set_sub_attr(e, "source", attr, source, order::INTERFACE, style);
    }
    pub fn set_backend(&mut self, backend: Option<&str>) {
        let (e, style) = self.em();
        set_sub_attr(e, "backend", "type", backend, order::INTERFACE, style);
    }
    pub fn add_port_forward(&mut self, pf: &PortForward) {
        let (e, style) = self.em();
        e.insert_ordered(pf.to_element(), order::INTERFACE, style);
    }
    pub fn clear_port_forwards(&mut self) {
        self.element_mut().remove_children_named("portForward");
    }
}

view!(
    /// `<graphics>`.
    Graphics
);

/// What a new graphics device needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphicsSpec {
    pub graphics_type: GraphicsType,
    /// TCP port; `None` with `autoport` lets libvirt pick.
    pub port: Option<i32>,
    pub autoport: Option<bool>,
    /// `listen` address.
    pub listen: Option<String>,
    /// A unix socket (vnc/spice `listen type='socket'`).
    pub socket: Option<String>,
    pub passwd: Option<String>,
}

impl GraphicsSpec {
    /// VNC on a unix socket (what Vireo's GUI connects to).
    pub fn vnc_socket(path: &str) -> Self {
        GraphicsSpec {
            graphics_type: GraphicsType::Vnc,
            port: None,
            autoport: None,
            listen: None,
            socket: Some(path.into()),
            passwd: None,
        }
    }

    pub fn to_element(&self) -> Element {
        let mut g = Element::new("graphics").with_attr("type", self.graphics_type.as_str());
        if let Some(p) = self.port {
            g.set_attr("port", &p.to_string());
        }
        if let Some(a) = self.autoport {
            g.set_attr("autoport", yes_no(a));
        }
        if let Some(l) = &self.listen {
            g.set_attr("listen", l);
        }
        if let Some(p) = &self.passwd {
            g.set_attr("passwd", p);
        }
        if let Some(s) = &self.socket {
            g = g.with_child(
                Element::new("listen")
                    .with_attr("type", "socket")
                    .with_attr("socket", s),
            );
        } else if let Some(l) = &self.listen {
            g = g.with_child(
                Element::new("listen")
                    .with_attr("type", "address")
                    .with_attr("address", l),
            );
        }
        g
    }
}

impl<E: AsRef<Element>> Graphics<E> {
    pub fn graphics_type(&self) -> Option<GraphicsType> {
        self.e()
            .attr("type")
            .map(|v| GraphicsType::from(v.as_ref()))
    }
    pub fn port(&self) -> Option<i32> {
        self.e().attr("port").and_then(|p| p.trim().parse().ok())
    }
    pub fn autoport(&self) -> Option<bool> {
        self.e().attr("autoport").map(|v| v == "yes")
    }
    /// `graphics@listen`, else the first `listen@address`.
    pub fn listen(&self) -> Option<String> {
        self.e()
            .attr("listen")
            .map(|v| v.into_owned())
            .or_else(|| sub_attr(self.e(), "listen", "address"))
    }
    /// `graphics@socket` or a `listen type='socket'`.
    pub fn socket(&self) -> Option<String> {
        self.e().attr("socket").map(|v| v.into_owned()).or_else(|| {
            self.e()
                .children_named("listen")
                .find(|l| l.attr("type").as_deref() == Some("socket"))
                .and_then(|l| l.attr("socket").map(|v| v.into_owned()))
        })
    }
    pub fn passwd(&self) -> Option<String> {
        self.e().attr("passwd").map(|v| v.into_owned())
    }
}

impl<E: AsRef<Element> + AsMut<Element>> Graphics<E> {
    /// Listens on a TCP address (replaces socket or other listen settings). libvirt keeps
    /// `graphics@listen` and the first `<listen type='address'>` in step; so does this.
    pub fn set_listen(&mut self, address: &str) {
        let (e, style) = self.em();
        e.remove_attr("socket");
        e.remove_children_named("listen");
        e.set_attr("listen", address);
        e.insert_ordered(
            Element::new("listen")
                .with_attr("type", "address")
                .with_attr("address", address),
            order::GRAPHICS,
            style,
        );
    }
    pub fn set_port(&mut self, port: Option<i32>, autoport: Option<bool>) {
        let e = self.element_mut();
        e.set_or_remove_attr("port", port.map(|p| p.to_string()).as_deref());
        e.set_or_remove_attr("autoport", autoport.map(yes_no));
    }
    pub fn set_passwd(&mut self, passwd: Option<&str>) {
        self.element_mut().set_or_remove_attr("passwd", passwd);
    }
    /// Listens on a unix socket (replaces other listen settings).
    pub fn set_socket(&mut self, path: &str) {
        let (e, style) = self.em();
        e.remove_attr("listen");
        e.remove_attr("socket");
        e.remove_children_named("listen");
        e.insert_ordered(
            Element::new("listen")
                .with_attr("type", "socket")
                .with_attr("socket", path),
            order::GRAPHICS,
            style,
        );
    }
}

view!(
    /// `<serial>` or `<console>` (or any character device).
    Chardev
);

/// What a new serial or console needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChardevSpec {
    /// `serial` or `console`.
    pub kind: &'static str,
    pub chardev_type: ChardevType,
    /// file or unix socket path.
    pub path: Option<String>,
    /// tcp host and service.
    pub host: Option<String>,
    pub service: Option<u16>,
    /// unix/tcp `source@mode` (bind/connect).
    pub mode: Option<String>,
    /// `target@type` (isa-serial, serial, virtio) and `target@port`.
    pub target_type: Option<String>,
    pub target_port: Option<u32>,
    /// `target/model@name` (isa-serial, pci-serial, ...).
    pub target_model: Option<String>,
}

impl ChardevSpec {
    pub fn pty(kind: &'static str, target_type: Option<&str>, port: Option<u32>) -> Self {
        ChardevSpec {
            kind,
            chardev_type: ChardevType::Pty,
            path: None,
            host: None,
            service: None,
            mode: None,
            target_type: target_type.map(str::to_string),
            target_port: port,
            target_model: None,
        }
    }

    pub fn to_element(&self) -> Element {
        let mut c = Element::new(self.kind).with_attr("type", self.chardev_type.as_str());
        let mut src = Element::new("source");
        if let Some(m) = &self.mode {
            src.set_attr("mode", m);
        }
        if let Some(p) = &self.path {
            src.set_attr("path", p);
        }
        if let Some(h) = &self.host {
            src.set_attr("host", h);
        }
        if let Some(s) = self.service {
            src.set_attr("service", &s.to_string());
        }
        if !src.attributes().is_empty() {
            c = c.with_child(src);
        }
        if self.target_type.is_some() || self.target_port.is_some() {
            let mut t = Element::new("target");
            if let Some(tt) = &self.target_type {
                t.set_attr("type", tt);
            }
            if let Some(p) = self.target_port {
                t.set_attr("port", &p.to_string());
            }
            if let Some(m) = &self.target_model {
                t = t.with_child(Element::new("model").with_attr("name", m));
            }
            c = c.with_child(t);
        }
        c
    }
}

impl<E: AsRef<Element>> Chardev<E> {
    pub fn chardev_type(&self) -> Option<ChardevType> {
        self.e().attr("type").map(|v| ChardevType::from(v.as_ref()))
    }
    /// `source@path` (file, unix, pty, dev).
    pub fn source_path(&self) -> Option<String> {
        sub_attr(self.e(), "source", "path")
    }
    pub fn host(&self) -> Option<String> {
        sub_attr(self.e(), "source", "host")
    }
    pub fn service(&self) -> Option<String> {
        sub_attr(self.e(), "source", "service")
    }
    pub fn mode(&self) -> Option<String> {
        sub_attr(self.e(), "source", "mode")
    }
    pub fn target_type(&self) -> Option<String> {
        sub_attr(self.e(), "target", "type")
    }
    pub fn target_port(&self) -> Option<u32> {
        sub_attr(self.e(), "target", "port").and_then(|p| parse_uint(&p))
    }
}

impl<E: AsRef<Element> + AsMut<Element>> Chardev<E> {
    pub fn set_chardev_type(&mut self, t: &ChardevType) {
        self.element_mut().set_attr("type", t.as_str());
    }
    /// Sets the tcp source (`mode` bind/connect, host, service); `None` removes each.
    pub fn set_tcp(&mut self, mode: Option<&str>, host: Option<&str>, service: Option<u16>) {
        let (e, style) = self.em();
        set_sub_attr(e, "source", "mode", mode, order::CHARDEV, style);
        set_sub_attr(e, "source", "host", host, order::CHARDEV, style);
        let svc = service.map(|s| s.to_string());
        set_sub_attr(
            e,
            "source",
            "service",
            svc.as_deref(),
            order::CHARDEV,
            style,
        );
    }
    pub fn set_source_path(&mut self, path: Option<&str>) {
        let (e, style) = self.em();
        set_sub_attr(e, "source", "path", path, order::CHARDEV, style);
    }
    pub fn set_target(&mut self, target_type: Option<&str>, port: Option<u32>) {
        let (e, style) = self.em();
        set_sub_attr(e, "target", "type", target_type, order::CHARDEV, style);
        let p = port.map(|p| p.to_string());
        set_sub_attr(e, "target", "port", p.as_deref(), order::CHARDEV, style);
    }
}

view!(
    /// `<input>`.
    Input
);

impl Input<&Element> {
    /// A new `<input type=.. bus=..>`.
    pub fn new_element(t: &InputType, bus: Option<&InputBus>) -> Element {
        let mut e = Element::new("input").with_attr("type", t.as_str());
        if let Some(b) = bus {
            e.set_attr("bus", b.as_str());
        }
        e
    }
}

impl<E: AsRef<Element>> Input<E> {
    pub fn input_type(&self) -> Option<InputType> {
        self.e().attr("type").map(|v| InputType::from(v.as_ref()))
    }
    pub fn bus(&self) -> Option<InputBus> {
        self.e().attr("bus").map(|v| InputBus::from(v.as_ref()))
    }
}

impl<E: AsRef<Element> + AsMut<Element>> Input<E> {
    pub fn set_input_type(&mut self, t: &InputType) {
        self.element_mut().set_attr("type", t.as_str());
    }
    pub fn set_bus(&mut self, bus: Option<&InputBus>) {
        self.element_mut()
            .set_or_remove_attr("bus", bus.map(|b| b.as_str()));
    }
}

view!(
    /// `<video>`.
    Video
);

impl Video<&Element> {
    pub fn new_element(model: &VideoModel) -> Element {
        Element::new("video").with_child(Element::new("model").with_attr("type", model.as_str()))
    }
}

impl<E: AsRef<Element>> Video<E> {
    pub fn model(&self) -> Option<VideoModel> {
        sub_attr(self.e(), "model", "type").map(|v| VideoModel::from(v.as_str()))
    }
    /// `model@vram` in KiB.
    pub fn vram(&self) -> Option<u64> {
        sub_attr(self.e(), "model", "vram").and_then(|v| parse_uint(&v))
    }
    pub fn heads(&self) -> Option<u32> {
        sub_attr(self.e(), "model", "heads").and_then(|v| parse_uint(&v))
    }
}

impl<E: AsRef<Element> + AsMut<Element>> Video<E> {
    pub fn set_model(&mut self, model: &VideoModel) {
        let (e, style) = self.em();
        set_sub_attr(
            e,
            "model",
            "type",
            Some(model.as_str()),
            order::SIMPLE_DEVICE,
            style,
        );
    }
}

view!(
    /// `<rng>`.
    Rng
);

impl Rng<&Element> {
    /// `<rng model='virtio'><backend model='random'>/dev/urandom</backend></rng>`.
    pub fn new_element(backend: &RngBackend, source: Option<&str>) -> Element {
        let mut b = Element::new("backend").with_attr("model", backend.as_str());
        if let Some(s) = source {
            b = b.with_text(s);
        }
        Element::new("rng")
            .with_attr("model", "virtio")
            .with_child(b)
    }
}

impl<E: AsRef<Element>> Rng<E> {
    pub fn model(&self) -> Option<String> {
        self.e().attr("model").map(|v| v.into_owned())
    }
    pub fn backend(&self) -> Option<RngBackend> {
        sub_attr(self.e(), "backend", "model").map(|v| RngBackend::from(v.as_str()))
    }
    /// The backend's source (e.g. `/dev/urandom`).
    pub fn source(&self) -> Option<String> {
        sub_text(self.e(), "backend")
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    }
}

impl<E: AsRef<Element> + AsMut<Element>> Rng<E> {
    /// Sets the backend model and source (e.g. random, /dev/urandom).
    pub fn set_backend(&mut self, backend: &RngBackend, source: Option<&str>) {
        let (e, style) = self.em();
        let b = e.ensure_child("backend", order::RNG, style);
        b.set_attr("model", backend.as_str());
        b.set_text(source.unwrap_or(""));
    }
}

view!(
    /// `<controller>`.
    Controller
);

impl Controller<&Element> {
    /// `<controller type=T index=N [model=M]/>`.
    pub fn new_element(controller_type: &str, index: u32, model: Option<&str>) -> Element {
        let mut e = Element::new("controller")
            .with_attr("type", controller_type)
            .with_attr("index", &index.to_string());
        if let Some(m) = model {
            e.set_attr("model", m);
        }
        e
    }
}

impl<E: AsRef<Element>> Controller<E> {
    /// `controller@type` (scsi, sata, pci, usb, ...).
    pub fn controller_type(&self) -> Option<String> {
        self.e().attr("type").map(|v| v.into_owned())
    }
    /// `controller@index`; `None` when absent or not a number.
    pub fn index(&self) -> Option<u32> {
        self.e().attr("index").and_then(|v| parse_uint(&v))
    }
    pub fn model(&self) -> Option<String> {
        self.e().attr("model").map(|v| v.into_owned())
    }
}

view!(
    /// `<memballoon>`.
    Memballoon
);

impl<E: AsRef<Element>> Memballoon<E> {
    pub fn model(&self) -> Option<MemballoonModel> {
        self.e()
            .attr("model")
            .map(|v| MemballoonModel::from(v.as_ref()))
    }
}

impl<E: AsRef<Element> + AsMut<Element>> Memballoon<E> {
    pub fn set_model(&mut self, model: &MemballoonModel) {
        self.element_mut().set_attr("model", model.as_str());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Domain;

    #[test]
    fn disk_names_count_as_libvirt_counts_them() {
        assert_eq!(disk_name_index("sda"), Some(0));
        assert_eq!(disk_name_index("sdz"), Some(25));
        assert_eq!(disk_name_index("sdaa"), Some(26));
        assert_eq!(disk_name_index("hdc"), Some(2));
        assert_eq!(disk_name_index("xvdb"), Some(1));
        assert_eq!(disk_name_index("sd"), None);
        assert_eq!(disk_name_index("sdA"), None);
        assert_eq!(disk_name_index("nvme0n1"), None);
    }

    #[test]
    fn controllers_and_drive_addresses_read_as_written() {
        let dom = Domain::parse(
            "<domain type='kvm'><name>a</name><memory>1</memory><devices>\
             <disk type='file' device='cdrom'><target dev='sdb' bus='scsi'/>\
             <address type='drive' controller='1' bus='0' target='2' unit='3'/></disk>\
             <disk type='file'><target dev='sdc' bus='scsi'/><address type='drive' unit='x'/></disk>\
             <disk type='file'><target dev='vda'/><address type='pci' bus='0'/></disk>\
             <controller type='scsi' index='1' model='virtio-scsi'/><controller type='sata'/>\
             </devices></domain>",
        )
        .unwrap();
        let devs = dom.devices().unwrap();
        let disks = devs.disks();
        assert_eq!(
            disks[0].drive_address(),
            Some(Ok(DriveAddress {
                controller: 1,
                bus: 0,
                target: 2,
                unit: 3
            }))
        );
        assert_eq!(disks[1].drive_address(), Some(Err(("unit", "x".into()))));
        assert_eq!(disks[2].drive_address(), None);
        let c = devs.controllers();
        assert_eq!(c[0].controller_type().as_deref(), Some("scsi"));
        assert_eq!(
            (c[0].index(), c[0].model().as_deref()),
            (Some(1), Some("virtio-scsi"))
        );
        assert_eq!((c[1].index(), c[1].model()), (None, None));
        assert_eq!(c[1].path(), "domain/devices/controller[2]");
        let e = Controller::new_element("scsi", 0, Some("virtio-scsi"));
        assert_eq!(
            (e.attr("type"), e.attr("index"), e.attr("model")),
            (
                Some("scsi".into()),
                Some("0".into()),
                Some("virtio-scsi".into())
            )
        );
    }
}
