//! [`DomainBuilder`]: new domain documents written the way libvirt formats them. It writes
//! what it is told and chooses nothing: the shape of a new Vireo machine (which devices, which
//! defaults) is one rule of the driver (`vireo_driver::usecase::shape`), not of this library.

use crate::devices::{ChardevSpec, DiskSpec, GraphicsSpec, InterfaceSpec, PortForward};
use crate::domain::{Domain, VIREO_NS, VIREO_PREFIX};
use crate::error::{Error, ErrorKind, Errors};
use crate::ids::{Mac, Uuid};
use crate::tree::{Document, Element, Style};
use crate::units::format_size;
use crate::values::{
    BootDev, ClockOffset, InputBus, InputType, InterfaceType, LifecycleAction, RngBackend,
    VideoModel, VirtType,
};
use crate::{Input, Rng, Video};

/// Builds a new domain from the name and the memory (libvirt requires both); everything else
/// is written only when set, so libvirt's own defaults apply to what is left out. Besides the
/// name: `domain@type` KVM, `os/type` hvm on x86_64, and a random v4 uuid unless one is given.
#[derive(Debug, Clone)]
pub struct DomainBuilder {
    name: String,
    uuid: Option<Uuid>,
    title: Option<String>,
    description: Option<String>,
    virt_type: VirtType,
    arch: String,
    machine: Option<String>,
    memory: Option<u64>,
    vcpus: Option<u32>,
    features: Vec<String>,
    clock: Option<ClockOffset>,
    boot: Vec<BootDev>,
    cpu_mode: Option<String>,
    emulator: Option<String>,
    kernel: Option<String>,
    initrd: Option<String>,
    cmdline: Option<String>,
    disks: Vec<DiskSpec>,
    interfaces: Vec<InterfaceSpec>,
    graphics: Vec<GraphicsSpec>,
    serial_console: bool,
    inputs: bool,
    video: Option<VideoModel>,
    /// [`Self::vnc_socket`] asked for the machine's default video head, decided on build,
    /// when the machine type is known.
    default_video: bool,
    rng: bool,
    memballoon_none: bool,
    lifecycle: Option<(LifecycleAction, LifecycleAction, LifecycleAction)>,
    metadata: Vec<(String, String)>,
}

impl DomainBuilder {
    pub fn new(name: &str) -> Self {
        DomainBuilder {
            name: name.to_string(),
            uuid: None,
            title: None,
            description: None,
            virt_type: VirtType::Kvm,
            arch: "x86_64".into(),
            machine: None,
            memory: None,
            vcpus: None,
            features: Vec::new(),
            clock: None,
            boot: Vec::new(),
            cpu_mode: None,
            emulator: None,
            kernel: None,
            initrd: None,
            cmdline: None,
            disks: Vec::new(),
            interfaces: Vec::new(),
            graphics: Vec::new(),
            serial_console: false,
            inputs: false,
            video: None,
            default_video: false,
            rng: false,
            memballoon_none: false,
            lifecycle: None,
            metadata: Vec::new(),
        }
    }

    pub fn uuid(mut self, uuid: Uuid) -> Self {
        self.uuid = Some(uuid);
        self
    }
    pub fn title(mut self, t: &str) -> Self {
        self.title = Some(t.into());
        self
    }
    pub fn description(mut self, d: &str) -> Self {
        self.description = Some(d.into());
        self
    }
    pub fn virt_type(mut self, t: VirtType) -> Self {
        self.virt_type = t;
        self
    }
    pub fn machine(mut self, m: &str) -> Self {
        self.machine = Some(m.into());
        self
    }
    /// Memory in bytes (written in KiB; libvirt rounds up to whole KiB).
    pub fn memory(mut self, bytes: u64) -> Self {
        self.memory = Some(bytes);
        self
    }
    pub fn vcpus(mut self, n: u32) -> Self {
        self.vcpus = Some(n);
        self
    }
    /// A `<features>` flag such as `acpi` or `apic`.
    pub fn feature(mut self, name: &str) -> Self {
        self.features.push(name.into());
        self
    }
    /// `clock@offset`.
    pub fn clock(mut self, offset: ClockOffset) -> Self {
        self.clock = Some(offset);
        self
    }
    /// An `os/boot@dev` entry (in boot order).
    pub fn boot(mut self, dev: BootDev) -> Self {
        self.boot.push(dev);
        self
    }
    /// `cpu mode` (e.g. host-passthrough).
    pub fn cpu_mode(mut self, mode: &str) -> Self {
        self.cpu_mode = Some(mode.into());
        self
    }
    /// The backend binary (`<emulator>`).
    pub fn emulator(mut self, path: &str) -> Self {
        self.emulator = Some(path.into());
        self
    }
    pub fn kernel(mut self, path: &str) -> Self {
        self.kernel = Some(path.into());
        self
    }
    pub fn initrd(mut self, path: &str) -> Self {
        self.initrd = Some(path.into());
        self
    }
    pub fn cmdline(mut self, cmdline: &str) -> Self {
        self.cmdline = Some(cmdline.into());
        self
    }
    pub fn disk(mut self, disk: DiskSpec) -> Self {
        self.disks.push(disk);
        self
    }
    pub fn interface(mut self, iface: InterfaceSpec) -> Self {
        self.interfaces.push(iface);
        self
    }
    /// User-mode networking with host-to-guest port forwards, virtio model. A MAC in QEMU's
    /// range is generated at build time. No `<backend type='passt'/>` is written: Debian's
    /// libvirt 9.0 patches passt out of the parser (Disable-passt-support.patch) and refuses
    /// it, while `<portForward>` on a plain user interface is accepted.
    pub fn user_network(self, forwards: Vec<PortForward>) -> Self {
        self.interface(InterfaceSpec {
            iface_type: InterfaceType::User,
            mac: None,
            source: None,
            model: Some("virtio".into()),
            backend: None,
            port_forwards: forwards,
        })
    }
    /// VNC on a unix socket, with a video head unless one is given ([`Self::video`]): libvirt's
    /// default for the machine type, `vga` on `pc` (and its versioned `pc-i440fx-*`), else
    /// `virtio`.
    pub fn vnc_socket(mut self, path: &str) -> Self {
        self.graphics.push(GraphicsSpec::vnc_socket(path));
        self.default_video = true;
        self
    }
    pub fn graphics(mut self, g: GraphicsSpec) -> Self {
        self.graphics.push(g);
        self
    }
    /// The video head (`None`: none), also instead of [`Self::vnc_socket`]'s default when told
    /// after it.
    pub fn video(mut self, model: Option<VideoModel>) -> Self {
        self.video = model;
        self.default_video = false;
        self
    }
    /// A pty serial port with `isa-serial` target and its console.
    pub fn serial_console(mut self, on: bool) -> Self {
        self.serial_console = on;
        self
    }
    /// Virtio tablet + keyboard.
    pub fn inputs(mut self, on: bool) -> Self {
        self.inputs = on;
        self
    }
    pub fn rng(mut self, on: bool) -> Self {
        self.rng = on;
        self
    }
    /// `<memballoon model='none'/>` (the backend has no balloon).
    pub fn memballoon_none(mut self, on: bool) -> Self {
        self.memballoon_none = on;
        self
    }
    pub fn lifecycle(
        mut self,
        poweroff: LifecycleAction,
        reboot: LifecycleAction,
        crash: LifecycleAction,
    ) -> Self {
        self.lifecycle = Some((poweroff, reboot, crash));
        self
    }
    /// A Vireo metadata value (`<vireo:KEY>` under [`VIREO_NS`]).
    pub fn metadata(mut self, key: &str, value: &str) -> Self {
        self.metadata.push((key.into(), value.into()));
        self
    }

    /// Builds and validates the document.
    pub fn build(self) -> Result<Domain, Errors> {
        let io_err = |what: &str, e: std::io::Error| {
            Errors(vec![Error::new(
                ErrorKind::Constraint(format!("cannot generate {what}: {e}")),
                "domain",
                None,
            )])
        };
        let uuid = match self.uuid {
            Some(u) => u,
            None => Uuid::new_v4().map_err(|e| io_err("a uuid", e))?,
        };
        let t = |n: &str, v: &str| Element::new(n).with_text(v);
        let mut d = Element::new("domain")
            .with_attr("type", self.virt_type.as_str())
            .with_child(t("name", &self.name))
            .with_child(t("uuid", &uuid.to_string()));
        if let Some(v) = &self.title {
            d = d.with_child(t("title", v));
        }
        if let Some(v) = &self.description {
            d = d.with_child(t("description", v));
        }
        if !self.metadata.is_empty() {
            let mut vm = Element::new(format!("{VIREO_PREFIX}:vm"))
                .with_attr(&format!("xmlns:{VIREO_PREFIX}"), VIREO_NS);
            for (k, v) in &self.metadata {
                vm = vm.with_child(t(&format!("{VIREO_PREFIX}:{k}"), v));
            }
            d = d.with_child(Element::new("metadata").with_child(vm));
        }
        let Some(memory) = self.memory else {
            return Err(Errors(vec![Error::new(
                ErrorKind::MissingElement("memory".into()),
                "domain",
                None,
            )]));
        };
        let (mem, unit) = format_size(memory);
        d = d
            .with_child(t("memory", &mem).with_attr("unit", unit))
            .with_child(t("currentMemory", &mem).with_attr("unit", unit));
        if let Some(n) = self.vcpus {
            d = d.with_child(t("vcpu", &n.to_string()).with_attr("placement", "static"));
        }

        let mut ty = t("type", "hvm").with_attr("arch", &self.arch);
        if let Some(m) = &self.machine {
            ty.set_attr("machine", m);
        }
        let mut os = Element::new("os").with_child(ty);
        for (n, v) in [
            ("kernel", &self.kernel),
            ("initrd", &self.initrd),
            ("cmdline", &self.cmdline),
        ] {
            if let Some(v) = v {
                os = os.with_child(t(n, v));
            }
        }
        for dev in &self.boot {
            os = os.with_child(Element::new("boot").with_attr("dev", dev.as_str()));
        }
        d = d.with_child(os);
        if !self.features.is_empty() {
            let mut f = Element::new("features");
            for name in &self.features {
                f = f.with_child(Element::new(name.as_str()));
            }
            d = d.with_child(f);
        }
        if let Some(m) = &self.cpu_mode {
            d = d.with_child(Element::new("cpu").with_attr("mode", m));
        }
        if let Some(c) = &self.clock {
            d = d.with_child(Element::new("clock").with_attr("offset", c.as_str()));
        }
        if let Some((poweroff, reboot, crash)) = &self.lifecycle {
            d = d
                .with_child(t("on_poweroff", poweroff.as_str()))
                .with_child(t("on_reboot", reboot.as_str()))
                .with_child(t("on_crash", crash.as_str()));
        }

        let mut devs = Element::new("devices");
        if let Some(e) = &self.emulator {
            devs = devs.with_child(t("emulator", e));
        }
        for disk in &self.disks {
            devs = devs.with_child(disk.to_element());
        }
        for iface in &self.interfaces {
            let mut iface = iface.clone();
            if iface.mac.is_none() {
                iface.mac = Some(
                    Mac::new_qemu()
                        .map_err(|e| io_err("a MAC address", e))?
                        .to_string(),
                );
            }
            devs = devs.with_child(iface.to_element());
        }
        if self.serial_console {
            devs = devs
                .with_child(
                    ChardevSpec {
                        target_model: Some("isa-serial".into()),
                        ..ChardevSpec::pty("serial", Some("isa-serial"), Some(0))
                    }
                    .to_element(),
                )
                .with_child(ChardevSpec::pty("console", Some("serial"), Some(0)).to_element());
        }
        if self.inputs {
            devs = devs
                .with_child(Input::new_element(
                    &InputType::Tablet,
                    Some(&InputBus::Virtio),
                ))
                .with_child(Input::new_element(
                    &InputType::Keyboard,
                    Some(&InputBus::Virtio),
                ));
        }
        for g in &self.graphics {
            devs = devs.with_child(g.to_element());
        }
        let video = self.video.clone().or_else(|| {
            self.default_video
                .then(|| default_video(self.machine.as_deref()))
        });
        if let Some(v) = &video {
            devs = devs.with_child(Video::new_element(v));
        }
        if self.memballoon_none {
            devs = devs.with_child(Element::new("memballoon").with_attr("model", "none"));
        }
        if self.rng {
            devs = devs.with_child(Rng::new_element(&RngBackend::Random, Some("/dev/urandom")));
        }
        d = d.with_child(devs);

        let domain = Domain::from_document(Document::new_formatted(d, &Style::default()))
            .map_err(|e| Errors(vec![e]))?;
        domain.validate()?;
        Ok(domain)
    }
}

/// libvirt's video model for a new machine of type `machine` (None: the hypervisor's
/// default): the standard VGA on the i440FX `pc`, virtio elsewhere.
fn default_video(machine: Option<&str>) -> VideoModel {
    let pc = machine.is_some_and(|m| {
        let m = m.trim();
        m == "pc" || m.strip_prefix("pc-i440fx-").is_some_and(|v| !v.is_empty())
    });
    if pc {
        VideoModel::Vga
    } else {
        VideoModel::Virtio
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::values::ImageFormat;

    #[test]
    fn builds_a_valid_kvm_machine() {
        let d = DomainBuilder::new("demo")
            .memory(2 << 30)
            .vcpus(2)
            .kernel("/boot/vmlinuz")
            .initrd("/boot/initrd.img")
            .cmdline("console=ttyS0 root=/dev/vda")
            .disk(DiskSpec::file(
                "/var/lib/vireo/demo.qcow2",
                ImageFormat::Qcow2,
                "vda",
            ))
            .user_network(vec![PortForward::tcp(2222, 22)])
            .vnc_socket("/run/vireo/demo.vnc")
            .metadata("os-id", "debian12")
            .build()
            .expect("valid");
        assert_eq!(d.name().as_deref(), Some("demo"));
        assert_eq!(d.memory().expect("memory"), Some(2 << 30));
        assert_eq!(d.vcpu().expect("vcpu"), Some(2));
        assert_eq!(d.vireo_value("os-id").as_deref(), Some("debian12"));
        assert!(d.uuid().and_then(|u| Uuid::parse(&u)).is_some());
        let devs = d.devices().expect("devices");
        assert_eq!(
            devs.interfaces()[0].port_forwards(),
            vec![PortForward::tcp(2222, 22)]
        );
        assert_eq!(
            devs.graphics()[0].socket().as_deref(),
            Some("/run/vireo/demo.vnc")
        );
        let xml = d.to_xml();
        assert!(
            xml.starts_with("<domain type='kvm'>\n  <name>demo</name>\n"),
            "{xml}"
        );
        assert!(xml.contains("\n    <disk type='file' device='disk'>\n      <driver name='qemu' type='qcow2'/>\n"), "{xml}");
        // Round trip through the parser is lossless.
        assert_eq!(Domain::parse(&xml).expect("reparse").to_xml(), xml);
    }

    #[test]
    fn a_vnc_socket_brings_the_machines_video_head() {
        let video = |machine: Option<&str>, given: Option<VideoModel>| {
            let mut b = DomainBuilder::new("v").memory(64 << 20);
            if let Some(g) = given {
                b = b.video(Some(g));
            }
            b = b.vnc_socket("/run/v.sock");
            // Told after the socket: the default follows the machine all the same.
            if let Some(m) = machine {
                b = b.machine(m);
            }
            let d = b.build().expect("valid");
            let devs = d.devices().expect("devices");
            devs.videos().iter().map(|v| v.model()).collect::<Vec<_>>()
        };
        assert_eq!(video(None, None), [Some(VideoModel::Virtio)]);
        assert_eq!(video(Some("vireo"), None), [Some(VideoModel::Virtio)]);
        assert_eq!(video(Some("pc"), None), [Some(VideoModel::Vga)]);
        assert_eq!(video(Some("pc-i440fx-7.2"), None), [Some(VideoModel::Vga)]);
        assert_eq!(
            video(Some("pc"), Some(VideoModel::Ramfb)),
            [Some(VideoModel::Ramfb)]
        );
        assert_eq!(video(None, Some(VideoModel::Vga)), [Some(VideoModel::Vga)]);
        // No video, told after the socket.
        let d = DomainBuilder::new("v")
            .memory(64 << 20)
            .machine("pc")
            .vnc_socket("/run/v.sock")
            .video(None)
            .build()
            .expect("valid");
        assert_eq!(d.devices().expect("devices").count("video"), 0);
    }

    #[test]
    fn it_writes_only_what_it_is_told() {
        let xml = DomainBuilder::new("bare")
            .uuid(Uuid::parse("0b6c4bfe-4a6e-4cf5-8d5a-3f5c1c0f0b01").expect("uuid"))
            .memory(64 << 20)
            .build()
            .expect("valid")
            .to_xml();
        assert_eq!(
            xml,
            "<domain type='kvm'>\n  <name>bare</name>\n  \
             <uuid>0b6c4bfe-4a6e-4cf5-8d5a-3f5c1c0f0b01</uuid>\n  \
             <memory unit='KiB'>65536</memory>\n  <currentMemory unit='KiB'>65536</currentMemory>\n  \
             <os>\n    <type arch='x86_64'>hvm</type>\n  </os>\n  <devices/>\n</domain>\n"
        );
        let errs = DomainBuilder::new("m").build().expect_err("no memory");
        assert_eq!(errs.0[0].path, "domain", "{errs}");
    }

    #[test]
    fn invalid_builds_are_refused() {
        let errs = DomainBuilder::new("bad/name")
            .vcpus(0)
            .memory(0)
            .build()
            .expect_err("invalid");
        let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
        assert!(paths.contains(&"domain/name"), "{errs}");
        assert!(paths.contains(&"domain/vcpu"), "{errs}");
        assert!(paths.contains(&"domain/memory"), "{errs}");
    }
}
