//! The shape of a new Vireo machine: every default of [`NewMachine`] and every element a new
//! machine gets, in one place, for `vireoctl create` and the GUI's wizard alike.
//!
//! What a new machine is (and why):
//! - KVM, x86_64, ACPI and APIC (the power button and SMP need them), UTC clock, and libvirt's
//!   lifecycle defaults (destroy on power-off, restart on reboot, destroy on crash);
//! - 512 MiB and one vCPU unless told otherwise (front ends may offer their own preference);
//! - the machine type the user names, else one chosen by how the machine boots
//!   (`default_machine`): a firmware boot (SeaBIOS or UEFI) gets `pc`, the machine that
//!   boots the most guests (installers, OS images and OVMF expect PCI and the standard VGA);
//!   a direct kernel boot gets Vireo's own virtio-mmio machine (no `machine` attribute), the
//!   quickest to boot a kernel;
//! - a direct kernel boot with libvirt's `<boot dev='hd'/>` beside it (libvirt adds it on
//!   define, so the document comes back from `virsh dumpxml` unchanged); or a firmware boot
//!   (Debian's SeaBIOS, which the document does not name, as virt-install leaves the BIOS to
//!   the hypervisor; or UEFI as `<os firmware='efi'>`, libvirt's firmware autoselection) with
//!   an `os/boot` list: an ISO given as the install medium first, then the first hard disk,
//!   then a CD-ROM ([`firmware_order`]); an ISO installing onto a new, empty disk marks the
//!   machine as installing ([`crate::install`]: its first reboot ejects the ISO);
//! - the operating system, when the user or the detection named one, in libosinfo's
//!   `<metadata>`;
//! - disks on virtio (`vda`, ...), CD-ROMs read-only on SATA (`sda`, ...) with the SATA
//!   controller and drive address libvirt would add;
//! - one user-mode network card (virtio) unless the user says none, as virt-install and
//!   virt-manager give every new machine a network;
//! - a pty serial port and its console, a PS/2 keyboard (the backend always has the i8042
//!   and libvirt lists it on x86), and, with a display, a virtio tablet, the VNC graphics and a
//!   video head; without a display the video head stays, as the guest's framebuffer. The head
//!   is the machine's display device: on `pc` the standard VGA (`vga`, libvirt's default
//!   there, with the 16 MiB of video memory libvirt writes for it), on Vireo's own machine
//!   `virtio` (any model is its linear framebuffer);
//! - a virtio RNG fed from the host's /dev/urandom, as virt-manager adds to every guest that
//!   supports it: a new guest otherwise waits for entropy at boot (key generation, TLS), and
//!   the device costs nothing.

use super::machine::{
    DiskFormat, FirmwareBoot, Graphics, KernelBoot, Lifecycle, Media, NewMachine, Nic, Source,
};
use super::targets::{self, Bus};
use crate::connection::DriverError;
use crate::translate::{machine, VIRTIO_SCSI};
use std::path::Path;
use vireo_domain::{
    BootDev, ChardevSpec, ClockOffset, Controller, DiskDevice, DiskSpec, Domain, DomainBuilder,
    Element, Error, ErrorKind, Errors, Firmware, GraphicsSpec, GraphicsType, Input, InputBus,
    InputType, InterfaceSpec, InterfaceType, LifecycleAction, VideoModel,
};
use vireo_vmm_api::config::Machine;
use vireo_vmm_api::limits::VGA_VRAM_SIZE;

/// Memory of a new machine when the user does not say.
pub const DEFAULT_MEMORY_MIB: u64 = 512;
/// vCPUs of a new machine when the user does not say.
pub const DEFAULT_VCPUS: u32 = 1;
/// Format of a new disk image when the user does not say.
pub const DEFAULT_IMAGE_FORMAT: DiskFormat = DiskFormat::Qcow2;

impl NewMachine {
    /// A machine named `name` booting from `source`, with the shipped defaults.
    pub fn new(name: &str, source: Source) -> NewMachine {
        NewMachine {
            name: name.to_owned(),
            title: None,
            uuid: None,
            memory_mib: DEFAULT_MEMORY_MIB,
            vcpus: DEFAULT_VCPUS,
            machine: None,
            source,
            os: None,
            disks: Vec::new(),
            networks: vec![Nic::default()],
            graphics: Graphics::default(),
            lifecycle: Lifecycle::default(),
            autostart: false,
            start: false,
            transient: false,
        }
    }
}

impl Default for Lifecycle {
    fn default() -> Lifecycle {
        Lifecycle {
            on_poweroff: LifecycleAction::Destroy,
            on_reboot: LifecycleAction::Restart,
            on_crash: LifecycleAction::Destroy,
        }
    }
}

fn text(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// How a new machine starts.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Start<'a> {
    Kernel(&'a KernelBoot),
    Firmware(&'a FirmwareBoot),
}

/// The `os/boot` list of a firmware machine: as given, or the install ISO first, then the
/// first hard disk, then the first CD-ROM of the machine's disks (libvirt boots the first
/// device of each kind it lists).
pub fn firmware_order(fw: &FirmwareBoot, disks: &[Media]) -> Vec<BootDev> {
    if !fw.order.is_empty() {
        return fw.order.clone();
    }
    let hd = disks.contains(&Media::Disk).then_some(BootDev::Hd);
    let cd = (fw.cdrom.is_some() || disks.contains(&Media::Cdrom)).then_some(BootDev::Cdrom);
    match fw.cdrom {
        Some(_) => cd.into_iter().chain(hd).collect(),
        None => hd.into_iter().chain(cd).collect(),
    }
}

/// The document of `m` starting as `start`, without its disks and consoles (see
/// [`attach_disk`] and [`add_consoles`]); `disks`: what the machine's disks will be, in
/// order. Invalid choices (a name, zero memory) are all reported at once, each with its
/// place.
pub(crate) fn document(
    m: &NewMachine,
    start: Start<'_>,
    disks: &[Media],
) -> Result<Domain, DriverError> {
    let memory = m.memory_mib.checked_mul(1 << 20).ok_or_else(|| {
        DriverError::Invalid(Errors(vec![Error::new(
            ErrorKind::InvalidValue {
                field: "memory".into(),
                value: format!("{} MiB", m.memory_mib),
                reason: "too large".into(),
            },
            "domain/memory",
            None,
        )]))
    })?;
    let mut b = DomainBuilder::new(&m.name)
        .memory(memory)
        .vcpus(m.vcpus)
        .feature("acpi")
        .feature("apic")
        .clock(ClockOffset::Utc)
        .lifecycle(
            m.lifecycle.on_poweroff.clone(),
            m.lifecycle.on_reboot.clone(),
            m.lifecycle.on_crash.clone(),
        )
        .rng(true);
    let machine = m
        .machine
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .or(default_machine(start));
    if let Some(t) = machine {
        b = b.machine(t);
    }
    match start {
        Start::Kernel(boot) => {
            b = b.kernel(&text(&boot.kernel)).boot(BootDev::Hd);
            if let Some(i) = &boot.initrd {
                b = b.initrd(&text(i));
            }
            if let Some(c) = boot
                .cmdline
                .as_deref()
                .map(str::trim)
                .filter(|c| !c.is_empty())
            {
                b = b.cmdline(c);
            }
        }
        Start::Firmware(fw) => {
            for dev in firmware_order(fw, disks) {
                b = b.boot(dev);
            }
        }
    }
    if let Some(u) = m.uuid {
        b = b.uuid(u);
    }
    if let Some(t) = m.title.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        b = b.title(t);
    }
    for nic in &m.networks {
        b = b.interface(InterfaceSpec {
            iface_type: InterfaceType::User,
            mac: nic.mac.map(|m| m.to_string()),
            source: None,
            model: Some("virtio".into()),
            backend: None,
            port_forwards: nic.port_forwards.clone(),
        });
    }
    let mut dom = b.build()?;
    if let Some(os) = m.os.as_deref().map(str::trim).filter(|o| !o.is_empty()) {
        dom.set_libosinfo_os(Some(os));
    }
    if let Start::Firmware(fw) = start {
        let mut os = dom.os_mut();
        match (&fw.loader, fw.uefi) {
            (Some(l), false) => os.set_loader(Some(&text(l)), None, None),
            // The code named is the firmware: libvirt's manual UEFI setup, which every libvirt
            // takes (firmware='efi' beside a loader path is newer).
            (Some(l), true) => os.set_loader(Some(&text(l)), Some(true), Some("pflash")),
            (None, true) => os.set_firmware(Some(&Firmware::Efi)),
            (None, false) => {}
        }
        os.set_bootmenu(fw.menu, fw.menu.and(fw.menu_timeout_ms));
    }
    Ok(dom)
}

/// The machine type a new machine gets when the user names none (`None`: no `machine`
/// attribute, Vireo's own virtio-mmio machine). A machine its firmware boots (SeaBIOS, or
/// UEFI, which needs PCI: OVMF finds its disks and screen there) gets `pc`, written as
/// `--machine pc` writes it, so it is the same machine: its virtio devices get their PCI
/// addresses when it is defined, and its video head is the standard VGA ([`add_consoles`]).
/// A direct kernel boot keeps Vireo's own machine, the quickest to boot a kernel.
fn default_machine(start: Start<'_>) -> Option<&'static str> {
    match start {
        Start::Firmware(_) => Some(FIRMWARE_MACHINE),
        Start::Kernel(_) => None,
    }
}

/// The machine type of a firmware boot when the user does not say.
const FIRMWARE_MACHINE: &str = "pc";

/// Adds a file-backed disk the way every new disk is added (by `create` and by a front end
/// attaching one to an existing machine): the first free target of its bus, the format as
/// given; a CD-ROM goes on virtio-scsi, with the controller when the machine has none (the
/// document virt-install writes). Returns the disk's index among `<disk>`s.
pub fn attach_disk(
    dom: &mut Domain,
    path: &Path,
    format: DiskFormat,
    media: Media,
    readonly: bool,
) -> Result<usize, DriverError> {
    let bus = match media {
        Media::Disk => Bus::Virtio,
        Media::Cdrom => Bus::Scsi,
    };
    let (target, unit) = targets::free_target(dom, bus)?;
    let mut spec = DiskSpec::file(&text(path), format.into(), &target);
    spec.target_bus = Some(bus.disk_bus());
    let element = match media {
        Media::Disk => {
            spec.readonly = readonly;
            spec.to_element()
        }
        Media::Cdrom => {
            spec.device = DiskDevice::Cdrom;
            spec.readonly = true;
            // The address libvirt assigns on virtio-scsi (target 0, the name's unit); with it
            // the document comes back from libvirt unchanged.
            spec.to_element().with_child(
                Element::new("address")
                    .with_attr("type", "drive")
                    .with_attr("controller", "0")
                    .with_attr("bus", "0")
                    .with_attr("target", "0")
                    .with_attr("unit", &unit.to_string()),
            )
        }
    };
    let has_scsi = dom.devices().is_some_and(|d| {
        d.controllers()
            .iter()
            .any(|c| c.controller_type().as_deref() == Some("scsi"))
    });
    let mut devices = dom.devices_mut();
    devices.add(element);
    if bus == Bus::Scsi && !has_scsi {
        devices.add(Controller::new_element("scsi", 0, Some(VIRTIO_SCSI)));
    }
    Ok(devices.count("disk").saturating_sub(1))
}

/// The consoles of a new machine: serial and console on a pty, a tablet when there is a
/// display, the PS/2 keyboard, the display and its video head (the machine's, see the module
/// docs).
pub(crate) fn add_consoles(dom: &mut Domain, graphics: &Graphics) {
    let display = graphics_element(graphics);
    let video = video_element(dom);
    let mut devs = dom.devices_mut();
    devs.add(ChardevSpec::pty("serial", None, Some(0)).to_element());
    devs.add(ChardevSpec::pty("console", Some("serial"), Some(0)).to_element());
    if display.is_some() {
        devs.add(Input::new_element(
            &InputType::Tablet,
            Some(&InputBus::Virtio),
        ));
    }
    devs.add(Input::new_element(
        &InputType::Keyboard,
        Some(&InputBus::Ps2),
    ));
    if let Some(g) = display {
        devs.add(g);
    }
    devs.add(video);
}

/// The video head of a new machine, as libvirt writes it back on define: on the pc machine
/// the standard VGA with its video memory, elsewhere virtio. A machine type translate
/// refuses gets virtio; its start names the machine.
fn video_element(dom: &Domain) -> Element {
    let named = dom.os().and_then(|o| o.machine());
    let model = match machine::machine(named.as_deref()) {
        Ok(Machine::Pc) => Element::new("model")
            .with_attr("type", VideoModel::Vga.as_str())
            .with_attr("vram", &(VGA_VRAM_SIZE >> 10).to_string()),
        _ => Element::new("model").with_attr("type", VideoModel::Virtio.as_str()),
    };
    Element::new("video").with_child(model.with_attr("heads", "1").with_attr("primary", "yes"))
}

/// The `<graphics>` element of a choice (`None` for no display).
fn graphics_element(g: &Graphics) -> Option<Element> {
    match g {
        Graphics::None => None,
        Graphics::Local => Some(
            Element::new("graphics")
                .with_attr("type", "vnc")
                .with_child(Element::new("listen").with_attr("type", "none")),
        ),
        Graphics::Socket { path, password } => {
            let path = text(path);
            let mut spec = GraphicsSpec::vnc_socket(&path);
            spec.passwd = password.clone();
            // libvirt writes the socket both as an attribute and as a listen element.
            let mut e = spec.to_element();
            e.set_attr("socket", &path);
            Some(e)
        }
        Graphics::Tcp {
            port,
            listen,
            password,
        } => Some(
            GraphicsSpec {
                graphics_type: GraphicsType::Vnc,
                port: Some(port.map_or(-1, i32::from)),
                autoport: Some(port.is_none()),
                listen: Some(listen.clone()),
                socket: None,
                passwd: Some(password.clone()),
            }
            .to_element(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn machine(graphics: Graphics) -> Domain {
        on_machine(None, graphics)
    }

    /// A new machine of type `machine` (None: the default).
    fn on_machine(machine: Option<&str>, graphics: Graphics) -> Domain {
        let mut m = NewMachine::new("m", Source::Kernel(KernelBoot::default()));
        m.graphics = graphics;
        m.machine = machine.map(str::to_owned);
        let boot = KernelBoot {
            kernel: "/k".into(),
            ..KernelBoot::default()
        };
        let mut d = document(&m, Start::Kernel(&boot), &[]).expect("valid");
        add_consoles(&mut d, &m.graphics);
        d
    }

    #[test]
    fn new_machine_consoles_have_a_tablet_only_with_a_display() {
        let xml = machine(Graphics::None).to_xml();
        assert!(xml.contains("<console type='pty'>"), "{xml}");
        assert!(xml.contains("<input type='keyboard' bus='ps2'/>"), "{xml}");
        assert!(!xml.contains("<input type='tablet'"), "{xml}");
        assert!(
            xml.contains("<model type='virtio' heads='1' primary='yes'/>"),
            "{xml}"
        );
        let d = machine(Graphics::Local);
        let xml = d.to_xml();
        let at = |needle: &str| {
            xml.find(needle)
                .unwrap_or_else(|| panic!("{needle} missing in\n{xml}"))
        };
        assert!(at("<input type='tablet' bus='virtio'/>") < at("<input type='keyboard'"));
        assert!(at("<graphics type='vnc'") < at("<video>"));
        d.validate().expect("valid");
    }

    #[test]
    fn the_video_head_is_the_machines_display_device() {
        let vga = "<model type='vga' vram='16384' heads='1' primary='yes'/>";
        let virtio = "<model type='virtio' heads='1' primary='yes'/>";
        for (machine, want) in [
            (None, virtio),
            (Some("vireo"), virtio),
            (Some("microvm"), virtio),
            (Some("pc"), vga),
            (Some("pc-i440fx-7.2"), vga),
            (Some("q35"), virtio),
        ] {
            for graphics in [Graphics::None, Graphics::Local] {
                let d = on_machine(machine, graphics);
                let xml = d.to_xml();
                assert!(xml.contains(want), "{machine:?}: {xml}");
                d.validate().expect("valid");
            }
        }
    }

    #[test]
    fn every_new_machine_has_network_and_entropy() {
        let xml = machine(Graphics::Local).to_xml();
        assert!(xml.contains("<interface type='user'>"), "{xml}");
        assert!(xml.contains("<rng model='virtio'>"), "{xml}");
        assert!(xml.contains("<boot dev='hd'/>"), "{xml}");
    }

    #[test]
    fn disks_and_cdroms_get_their_targets_and_one_controller() {
        let mut d = machine(Graphics::None);
        let p = Path::new;
        assert_eq!(
            attach_disk(&mut d, p("/a.qcow2"), DiskFormat::Qcow2, Media::Disk, false).unwrap(),
            0
        );
        attach_disk(&mut d, p("/c1.iso"), DiskFormat::Raw, Media::Cdrom, false).unwrap();
        attach_disk(&mut d, p("/b.img"), DiskFormat::Raw, Media::Disk, true).unwrap();
        attach_disk(&mut d, p("/c2.iso"), DiskFormat::Raw, Media::Cdrom, false).unwrap();
        let devs = d.devices().unwrap();
        let targets: Vec<_> = devs.disks().iter().filter_map(|d| d.target_dev()).collect();
        assert_eq!(targets, ["vda", "sda", "vdb", "sdb"]);
        assert!(devs.disks()[2].readonly() && devs.disks()[3].readonly());
        assert_eq!(devs.count("controller"), 1);
        let c = &devs.controllers()[0];
        assert_eq!(c.controller_type().as_deref(), Some("scsi"));
        assert_eq!(c.model().as_deref(), Some("virtio-scsi"));
        assert_eq!(
            devs.disks()[3].target_bus(),
            Some(vireo_domain::DiskBus::Scsi)
        );
        d.validate().expect("valid");
    }
}
