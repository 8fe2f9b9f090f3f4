//! virtio-scsi: controllers, CD-ROM drives with and without a medium, scsi disks, addresses,
//! and each refusal with its element path.

use super::tests::{Fixture, SATA_CD};
use vireo_vmm_api::config::{DiskFormat, ScsiDeviceConfig, ScsiDeviceKind, VmConfig};
use vireo_vmm_api::pci::{PciSlot, VirtioRef};

impl Fixture {
    fn scsi(&self, devices: &str) -> VmConfig {
        self.accepted(&self.xml("kvm", "", "", devices))
    }
}

fn at(d: &ScsiDeviceConfig) -> (&str, u16, u16) {
    (d.id.as_str(), d.target, d.lun)
}

#[test]
fn cdrom_drives_and_disks_sit_where_libvirt_puts_them() {
    let f = Fixture::new();
    let devices = format!(
        "<disk type='file' device='cdrom'><driver name='qemu' type='raw'/><source file='{}'/>\
           <target dev='sda' bus='scsi'/><readonly/></disk>\
         <disk type='file' device='cdrom'><target dev='sdb' bus='scsi'/><readonly/></disk>\
         <disk type='file' device='disk'><driver name='qemu' type='qcow2' discard='unmap'/><source file='{}'/>\
           <target dev='sdc' bus='scsi'/><address type='drive' controller='1' bus='0' target='3' unit='2'/></disk>\
         <disk type='file' device='disk'><source file='{}'/><target dev='vda' bus='virtio'/><readonly/></disk>\
         <disk type='file' device='cdrom'><target dev='sdd'/></disk>\
         <controller type='scsi' index='0' model='virtio-scsi'/>\
         <controller type='scsi' index='1'><address type='pci' domain='0' bus='0' slot='4' function='0'/></controller>",
        f.p("cd.iso"),
        f.p("disk.qcow2"),
        f.p("disk.img")
    );
    // The controller's PCI address needs the pc machine: the mmio one has no PCI bus.
    let c = f.accepted(
        &f.xml("kvm", "", "", &devices)
            .replace("<type arch='x86_64'>", "<type arch='x86_64' machine='pc'>"),
    );
    assert_eq!(
        c.pci_slots,
        [PciSlot {
            device: VirtioRef::Scsi { controller: 1 },
            slot: 4
        }]
    );
    assert_eq!(c.disks.len(), 1, "only vda is virtio-blk");
    assert_eq!(c.disks[0].path, f.dir.join("disk.img"));
    assert_eq!(c.scsi.len(), 2);
    let first: Vec<_> = c.scsi[0].devices.iter().map(at).collect();
    // No address: controller 0, target 0, unit = the name's index; no bus: sd* is scsi.
    assert_eq!(first, [("sda", 0, 0), ("sdb", 0, 1), ("sdd", 0, 3)]);
    let ScsiDeviceKind::Cdrom { medium: Some(cd) } = &c.scsi[0].devices[0].kind else {
        panic!("{:?}", c.scsi[0]);
    };
    assert_eq!(cd.path, f.dir.join("cd.iso"));
    assert!(cd.readonly && cd.cdrom);
    assert_eq!(
        c.scsi[0].devices[1].kind,
        ScsiDeviceKind::Cdrom { medium: None },
        "an empty drive"
    );
    assert_eq!(at(&c.scsi[1].devices[0]), ("sdc", 3, 2));
    let ScsiDeviceKind::Disk { disk } = &c.scsi[1].devices[0].kind else {
        panic!("{:?}", c.scsi[1]);
    };
    assert_eq!(disk.format, DiskFormat::Qcow2);
    assert!(!disk.readonly && !disk.cdrom);
}

#[test]
fn a_scsi_disk_without_a_controller_gets_the_implicit_one() {
    let f = Fixture::new();
    let c = f.scsi(&format!(
        "<disk type='file'><source file='{}'/><target dev='sdb' bus='scsi'/><readonly/></disk>",
        f.p("disk.img")
    ));
    assert_eq!(c.scsi.len(), 1);
    assert_eq!(at(&c.scsi[0].devices[0]), ("sdb", 0, 1));
    let ScsiDeviceKind::Disk { disk } = &c.scsi[0].devices[0].kind else {
        panic!("{:?}", c.scsi);
    };
    assert!(disk.readonly);
    // A controller alone is an empty HBA; no scsi at all is no controller.
    assert_eq!(
        f.scsi("<controller type='scsi' index='0' model='virtio-scsi'/>")
            .scsi
            .len(),
        1
    );
    assert!(f.scsi("").scsi.is_empty());
}

#[test]
fn a_writable_file_is_not_used_twice_across_buses() {
    let f = Fixture::new();
    let xml = f.xml(
        "kvm",
        "",
        "",
        &format!(
            "<disk type='file'><source file='{0}'/><target dev='vda'/></disk>\
             <disk type='file'><source file='{0}'/><target dev='sda' bus='scsi'/></disk>",
            f.p("disk.img")
        ),
    );
    assert_eq!(
        f.refused(&xml),
        format!("devices/disk[2]/source: {} is used twice", f.p("disk.img"))
    );
}

#[test]
fn refusals_name_the_element() {
    let f = Fixture::new();
    let img = f.p("disk.img");
    let disk = |target: &str, extra: &str| {
        format!("<disk type='file'><source file='{img}'/>{target}{extra}</disk>")
    };
    let cases: Vec<(String, String)> = vec![
        ("<disk type='file' device='cdrom'><source file='/x.iso'/><target dev='sda' bus='sata'/></disk>".into(),
            format!("devices/disk[1]/target@bus='sata': {SATA_CD}")),
        ("<disk type='file' device='cdrom'><target dev='hdc' bus='ide'/></disk>".into(),
            "devices/disk[1]/target@bus='ide': a CD-ROM drive on the ide bus is not supported; \
             Vireo's CD-ROM drives are on bus='scsi' (virtio-scsi): change the target to \
             <target dev='sda' bus='scsi'/> and remove its <address> with 'vireoctl edit t'".into()),
        ("<disk type='file' device='cdrom'><target dev='hdc'/></disk>".into(),
            "devices/disk[1]/target@bus='ide': a CD-ROM drive on the ide bus".into()),
        ("<disk type='file' device='cdrom'><target dev='vdb' bus='virtio'/></disk>".into(),
            "devices/disk[1]/target@bus='virtio': a CD-ROM drive on the virtio bus".into()),
        ("<disk type='file' device='cdrom'><target dev='sda' bus='usb'/></disk>".into(),
            "devices/disk[1]/target@bus='usb': a CD-ROM drive on the usb bus".into()),
        ("<disk type='file' device='cdrom'><target dev='sda' bus='scsi'/></disk><controller type='scsi' index='0' model='lsilogic'/>".into(),
            "devices/controller[1]@model='lsilogic': not supported by the Vireo backend (SCSI controllers are model='virtio-scsi')".into()),
        ("<controller type='scsi' index='0' model='virtio-scsi'/><controller type='scsi' index='0'/>".into(),
            "devices/controller[2]@index='0': another scsi controller has this index".into()),
        ("<controller type='scsi' index='0' model='virtio-scsi'><driver queues='4'/></controller>".into(),
            "devices/controller[1]/driver: not supported by the Vireo backend".into()),
        (disk("<target dev='sda' bus='scsi'/>", "<address type='drive' controller='1' bus='0' target='0' unit='0'/>"),
            "devices/disk[1]/address@controller='1': there is no <controller type='scsi' index='1'>".into()),
        (disk("<target dev='sda' bus='scsi'/>", "<address type='drive' controller='0' bus='1' target='0' unit='0'/>"),
            "devices/disk[1]/address@bus='1': a virtio-scsi controller has one bus, 0".into()),
        (disk("<target dev='sda' bus='scsi'/>", "<address type='drive' target='256'/>"),
            "devices/disk[1]/address@target='256': above 255, the highest virtio-scsi target".into()),
        (disk("<target dev='sda' bus='scsi'/>", "<address type='drive' unit='16384'/>"),
            "devices/disk[1]/address@unit='16384': above 16383, the highest virtio-scsi LUN".into()),
        (disk("<target dev='sda' bus='scsi'/>", "<address type='drive' unit='one'/>"),
            "devices/disk[1]/address@unit='one': must be a number".into()),
        (disk("<target dev='sda' bus='scsi'/>", "<address type='pci' slot='3'/>"),
            "devices/disk[1]/address@type='pci': a scsi disk's address is type='drive'".into()),
        (disk("<target dev='cd0' bus='scsi'/>", ""),
            "devices/disk[1]/target@dev='cd0': gives no unit number (name it sda, sdb, ..., or add \
             <address type='drive' controller='0' bus='0' target='0' unit='N'/>)".into()),
        (format!("{}<disk type='file' device='cdrom'><target dev='sdb' bus='scsi'/><address type='drive' unit='0'/></disk>",
                 disk("<target dev='sda' bus='scsi'/>", "")),
            "devices/disk[2]: scsi controller 0 target 0 unit 0 holds another disk".into()),
        ("<disk type='file'><target dev='sda' bus='scsi'/></disk>".into(),
            "devices/disk[1]/source: missing attribute file".into()),
        ("<disk type='file' device='cdrom'><source file='/no/such.iso'/><target dev='sda' bus='scsi'/></disk>".into(),
            "devices/disk[1]/source@file: /no/such.iso: No such file or directory".into()),
        (format!("<disk type='file' device='cdrom'><source file='{}'/><target dev='sda' bus='scsi'/></disk>", f.dir.display()),
            format!("devices/disk[1]/source@file: {}: not a regular file", f.dir.display())),
    ];
    for (devices, want) in cases {
        let got = f.dev(&devices);
        assert!(
            got.starts_with(&want),
            "for {devices}\n got: {got}\nwant: {want}"
        );
    }
    let many: String = (0..17)
        .map(|i| {
            format!(
                "<disk type='file' device='cdrom'><target dev='sd{}' bus='scsi'/></disk>",
                (b'a' + i) as char
            )
        })
        .collect();
    assert_eq!(
        f.dev(&many),
        "devices/disk[17]: more than 16 disks on scsi controller 0"
    );
}
