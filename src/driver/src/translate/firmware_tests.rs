//! Firmware boot: each rule of the boot order, the loader and the menu, and each refusal line.

use super::tests::Fixture;
use super::*;
use vireo_vmm_api::config::{BootDevice, DisplayModel, FirmwareConfig, Machine};

/// A machine without a kernel: `os` inside `<os>` after the type, `devices` as given.
pub(super) fn doc(os: &str, devices: &str) -> String {
    format!(
        "<domain type='kvm'><name>t</name><uuid>6695EB01-F6A4-4304-AAA9-F2B1B2A1C2D3</uuid>\
         <memory unit='MiB'>256</memory><vcpu>1</vcpu>\
         <os><type arch='x86_64' machine='pc'>hvm</type>{os}</os><devices>{devices}</devices></domain>"
    )
}

impl Fixture {
    fn firmware(&self, xml: &str) -> FirmwareConfig {
        let c = self.accepted(xml);
        assert_eq!(c.kernel, None);
        c.firmware.expect("a firmware boot")
    }
    fn disk(&self, file: &str, target: &str, extra: &str) -> String {
        format!(
            "<disk type='file' device='disk'><source file='{}'/><target dev='{target}' bus='virtio'/>{extra}</disk>",
            self.p(file)
        )
    }
    fn cdrom(&self, file: &str, target: &str, extra: &str) -> String {
        format!(
            "<disk type='file' device='cdrom'><source file='{}'/><target dev='{target}' bus='scsi'/><readonly/>{extra}</disk>",
            self.p(file)
        )
    }
}

#[test]
fn a_machine_without_a_kernel_boots_the_default_bios() {
    let f = Fixture::new();
    let fw = f.firmware(&doc("", ""));
    assert_eq!(f.run(&doc("", "")).unwrap().config.machine, Machine::Pc);
    assert_eq!(fw.loader, f.dir.join("fw/bios-256k.bin"));
    assert_eq!(fw.vga_rom, None, "no display, no VGA BIOS");
    assert_eq!(fw.boot_order, []);
    assert_eq!(fw.boot_menu_timeout_ms, None);
    // libvirt's QEMU driver gives SMBIOS type 1 the domain's UUID (-uuid) and nothing else.
    assert_eq!(
        fw.smbios.uuid.as_deref(),
        Some("6695eb01-f6a4-4304-aaa9-f2b1b2a1c2d3")
    );
    assert_eq!(fw.smbios.product, None);
    assert_eq!(fw.smbios.manufacturer, None);
    let t = f.run(&doc("<boot dev='hd'/>", "")).err();
    assert_eq!(
        t.map(|e| e.to_string()).as_deref(),
        Some("os/boot[1]@dev='hd': no disk to boot from (no devices/disk with device='disk')")
    );
}

#[test]
fn a_display_brings_the_vga_bios_and_a_scsi_cdrom_boots() {
    let f = Fixture::new();
    let devices = format!(
        "{}<graphics type='vnc'><listen type='none'/></graphics><video><model type='vga'/></video>",
        f.cdrom("cd.iso", "sda", "")
    );
    let xml = doc("<boot dev='cdrom'/>", &devices);
    let t = f.run(&xml).unwrap();
    assert!(t.config.disks.is_empty());
    assert_eq!(t.config.scsi.len(), 1, "the implicit controller");
    assert!(t.config.scsi[0].devices[0].kind.is_cdrom());
    let fw = f.firmware(&xml);
    assert_eq!(fw.vga_rom, Some(f.dir.join("fw/vgabios-stdvga.bin")));
    assert_eq!(fw.boot_order, [scsi(0, 0)]);
}

#[test]
fn the_vga_bios_is_the_display_devices_own() {
    let f = Fixture::new();
    let rom = |xml: &str| {
        let t = f.run(xml).unwrap_or_else(|e| panic!("refused: {e}\n{xml}"));
        let model = t.config.display.as_ref().map(|d| d.model);
        (model, f.firmware(xml).vga_rom)
    };
    let stdvga = Some(f.dir.join("fw/vgabios-stdvga.bin"));
    let ramfb = Some(f.dir.join("fw/vgabios-ramfb.bin"));
    let screen = "<graphics type='vnc'><listen type='none'/></graphics>";
    let with = |model: &str| format!("{screen}<video><model type='{model}'/></video>");
    // pc: the standard VGA's ROM for vga, a video without a model and no video at all;
    // ramfb's for ramfb.
    for devices in [with("vga"), format!("{screen}<video/>"), screen.to_owned()] {
        assert_eq!(
            rom(&doc("", &devices)),
            (Some(DisplayModel::Vga), stdvga.clone()),
            "{devices}"
        );
    }
    assert_eq!(
        rom(&doc("", &with("ramfb"))),
        (Some(DisplayModel::Linear), ramfb.clone())
    );
    // Vireo's own machine: ramfb's, whatever the model.
    for model in ["vga", "virtio", "ramfb"] {
        let xml = doc("", &with(model)).replace(" machine='pc'", "");
        assert_eq!(
            rom(&xml),
            (Some(DisplayModel::Linear), ramfb.clone()),
            "{model}"
        );
    }
}

#[test]
fn os_boot_entries_pick_the_first_device_of_their_kind() {
    let f = Fixture::new();
    let devices = [
        f.disk("disk.img", "vda", ""),
        f.cdrom("cd.iso", "sda", ""),
        f.disk("disk.qcow2", "vdb", ""),
        f.cdrom("initrd", "sdb", ""),
    ]
    .concat();
    let order = |os: &str| f.firmware(&doc(os, &devices)).boot_order;
    let disk = |index| BootDevice::Disk { index };
    // The CD-ROMs are sda (LUN 0) and sdb (LUN 1) on the implicit controller.
    assert_eq!(
        order("<boot dev='cdrom'/><boot dev='hd'/>"),
        [scsi(0, 0), disk(0)]
    );
    assert_eq!(
        order("<boot dev='hd'/><boot dev='cdrom'/>"),
        [disk(0), scsi(0, 0)]
    );
    assert_eq!(order("<boot dev='hd'/><boot dev='hd'/>"), [disk(0)]);
    // Neither os/boot nor per-device order: libvirt's default, the first hard disk.
    assert_eq!(order(""), [disk(0)]);
    let only_cd = f.cdrom("cd.iso", "sda", "");
    assert_eq!(f.firmware(&doc("", &only_cd)).boot_order, []);
    // `hd` is the first hard disk of any bus.
    let scsi_disk = format!(
        "<disk type='file'><source file='{}'/><target dev='sdc' bus='scsi'/></disk>{}",
        f.p("disk.img"),
        f.disk("disk.qcow2", "vda", "")
    );
    assert_eq!(
        f.firmware(&doc("<boot dev='hd'/>", &scsi_disk)).boot_order,
        [scsi(0, 2)]
    );
}

/// The device at `lun` of target 0 on the first scsi controller.
fn scsi(controller: usize, lun: u16) -> BootDevice {
    BootDevice::Scsi {
        controller,
        target: 0,
        lun,
    }
}

#[test]
fn per_device_boot_order_decides_when_given() {
    let f = Fixture::new();
    let devices = [
        f.disk("disk.img", "vda", "<boot order='2'/>"),
        f.disk("disk.qcow2", "vdb", ""),
        f.cdrom("cd.iso", "sda", "<boot order='1'/>"),
    ]
    .concat();
    let fw = f.firmware(&doc("", &devices));
    assert_eq!(fw.boot_order, [scsi(0, 0), BootDevice::Disk { index: 0 }]);
}

#[test]
fn the_boot_menu_waits_as_asked() {
    let f = Fixture::new();
    let menu = |os: &str| f.firmware(&doc(os, "")).boot_menu_timeout_ms;
    assert_eq!(menu("<bootmenu enable='yes' timeout='3000'/>"), Some(3000));
    assert_eq!(
        menu("<bootmenu enable='yes'/>"),
        Some(2500),
        "SeaBIOS's own wait"
    );
    assert_eq!(menu("<bootmenu enable='no' timeout='3000'/>"), None);
}

#[test]
fn a_loader_in_the_document_is_used_and_checked() {
    let f = Fixture::new();
    std::fs::create_dir_all(f.dir.join("mine")).unwrap();
    let bios = f.dir.join("mine/bios.bin");
    std::fs::write(&bios, vec![0u8; 128 << 10]).unwrap();
    let loader = |attrs: &str, file: &str| format!("<loader{attrs}>{file}</loader>");
    let b = bios.display().to_string();
    for attrs in ["", " type='rom'", " readonly='yes' type='rom'"] {
        assert_eq!(f.firmware(&doc(&loader(attrs, &b), "")).loader, bios);
    }
    // The VGA BIOS comes from the searched directories when it is not beside the loader,
    // and from beside the loader when it is there.
    let screen = "<graphics type='vnc'><listen type='none'/></graphics>";
    let ramfb = format!("{screen}<video><model type='ramfb'/></video>");
    let fw = f.firmware(&doc(&loader("", &b), screen));
    assert_eq!(fw.vga_rom, Some(f.dir.join("fw/vgabios-stdvga.bin")));
    let fw = f.firmware(&doc(&loader("", &b), &ramfb));
    assert_eq!(fw.vga_rom, Some(f.dir.join("fw/vgabios-ramfb.bin")));
    for rom in ["vgabios-stdvga.bin", "vgabios-ramfb.bin"] {
        std::fs::write(f.dir.join("mine").join(rom), vec![0u8; 38 << 10]).unwrap();
    }
    let fw = f.firmware(&doc(&loader("", &b), screen));
    assert_eq!(fw.vga_rom, Some(f.dir.join("mine/vgabios-stdvga.bin")));
    let fw = f.firmware(&doc(&loader("", &b), &ramfb));
    assert_eq!(fw.vga_rom, Some(f.dir.join("mine/vgabios-ramfb.bin")));

    let refused = |os: &str| f.refused(&doc(os, ""));
    assert_eq!(
        refused(&loader("", "bios.bin")),
        "os/loader: bios.bin: must be an absolute path"
    );
    let missing = f.p("none.bin");
    assert_eq!(
        refused(&loader("", &missing)),
        format!("os/loader: {missing}: No such file or directory")
    );
    let dir = f.p("mine");
    assert_eq!(
        refused(&loader("", &dir)),
        format!("os/loader: {dir}: not a regular file")
    );
    let odd = f.p("vmlinuz");
    assert_eq!(
        refused(&loader("", &odd)),
        format!(
            "os/loader: {odd}: not a BIOS image (a file of 64 KiB to 256 KiB in 64 KiB steps \
             is needed, this one has 1 bytes)"
        )
    );
    let big = f.dir.join("mine/big.bin");
    std::fs::write(&big, vec![0u8; 512 << 10]).unwrap();
    assert!(
        refused(&loader("", &big.display().to_string())).ends_with("this one has 524288 bytes)")
    );
}

#[test]
fn missing_firmware_names_the_seabios_package() {
    let f = Fixture::new();
    let empty = f.dir.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let d = vireo_domain::Domain::parse(&doc("", "")).unwrap();
    let run = RunDir::new(f.dir.join("run"));
    let sources = |dirs: Vec<PathBuf>| Sources {
        firmware_dirs: dirs,
        ..f.sources()
    };
    let err = translate_in(
        &d,
        &run,
        &mut || None,
        &sources(vec![empty.clone(), f.dir.join("x")]),
    )
    .unwrap_err()
    .to_string();
    assert_eq!(
        err,
        format!(
            "os: no firmware to boot: bios-256k.bin is not in {} or {} (install the seabios \
             package, or name a BIOS image in os/loader)",
            empty.display(),
            f.dir.join("x").display()
        )
    );
    // A BIOS without its display's VGA BIOS beside it or in the searched directories: no
    // screen.
    std::fs::write(empty.join("bios-256k.bin"), vec![0u8; 256 << 10]).unwrap();
    let screen = "<graphics type='vnc'><listen type='none'/></graphics>";
    for (video, rom) in [
        ("", "vgabios-stdvga.bin"),
        ("<video><model type='vga'/></video>", "vgabios-stdvga.bin"),
        ("<video><model type='ramfb'/></video>", "vgabios-ramfb.bin"),
    ] {
        let d = vireo_domain::Domain::parse(&doc("", &format!("{screen}{video}"))).unwrap();
        let err = translate_in(&d, &run, &mut || None, &sources(vec![empty.clone()]))
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            format!(
                "devices/graphics[1]: the firmware's screen needs {rom}, which is not in {} \
                 (install the seabios package)",
                empty.display()
            ),
            "{video}"
        );
    }
    // Each display finds its own ROM: the ramfb one does not stand in for the VGA's.
    std::fs::write(empty.join("vgabios-ramfb.bin"), vec![0u8; 40 << 10]).unwrap();
    let d = vireo_domain::Domain::parse(&doc("", screen)).unwrap();
    let err = translate_in(&d, &run, &mut || None, &sources(vec![empty.clone()])).unwrap_err();
    assert!(err.message.contains("needs vgabios-stdvga.bin"), "{err}");
}

#[test]
fn refusals_say_what_works() {
    let f = Fixture::new();
    let cases: Vec<(String, String)> = vec![
        (
            doc("<loader secure='yes'>/x.fd</loader>", ""),
            "os/loader@secure='yes': Secure Boot needs SMM (System Management Mode), which the \
             Vireo backend does not have (use secure='no' or leave it out)"
                .into(),
        ),
        (
            doc("<nvram>/var/lib/x_VARS.fd</nvram>", ""),
            "os/nvram: a variable store belongs to UEFI firmware (os firmware='efi', or a loader \
             with type='pflash')"
                .into(),
        ),
        (
            doc("", "").replace("<os>", "<os firmware='uefi'>"),
            "os@firmware='uefi': not supported (use bios, or efi for UEFI)".into(),
        ),
        (
            doc("<boot dev='fd'/>", ""),
            "os/boot[1]@dev='fd': no floppy: the Vireo backend has no floppy drive (boot from hd or cdrom)".into(),
        ),
        (
            doc("<boot dev='hd'/><boot dev='network'/>", &f.disk("disk.img", "vda", "")),
            "os/boot[2]@dev='network': network boot is not supported yet (boot from hd or cdrom)".into(),
        ),
        (
            doc("<boot dev='cdrom'/>", &f.disk("disk.img", "vda", "")),
            "os/boot[1]@dev='cdrom': no CD-ROM to boot from (no devices/disk with device='cdrom')".into(),
        ),
        (
            doc("", "<interface type='user'><boot order='1'/></interface>"),
            "devices/interface[1]/boot: network boot is not supported yet (boot from a disk or CD-ROM)".into(),
        ),
        (
            doc("<initrd>/boot/initrd.img</initrd>", ""),
            "os/initrd: an initrd needs a kernel in os/kernel; under firmware boot the boot loader on the disk chooses it".into(),
        ),
        (
            doc("<cmdline>quiet</cmdline>", ""),
            "os/cmdline: a command line needs a kernel in os/kernel; under firmware boot the boot loader on the disk chooses it".into(),
        ),
        (
            doc("<bootmenu enable='yes' timeout='70000'/>", ""),
            "os/bootmenu@timeout='70000': must be a number of milliseconds from 0 to 65535".into(),
        ),
        (
            doc("<smbios mode='host'/>", ""),
            "os/smbios: not supported by the Vireo backend".into(),
        ),
    ];
    for (xml, want) in cases {
        assert_eq!(f.refused(&xml), want, "{xml}");
    }
    // Direct kernel boot keeps refusing what belongs to firmware.
    assert_eq!(
        f.refused(&f.xml("kvm", "<nvram>/v.fd</nvram>", "", "")),
        "os/nvram: a variable store belongs to UEFI firmware (os firmware='efi', or a loader \
         with type='pflash')"
    );
}

#[test]
fn a_firmware_boot_takes_the_machine_type_too() {
    let f = Fixture::new();
    let without = doc("", "").replace(" machine='pc'", "");
    assert_eq!(f.run(&without).unwrap().config.machine, Machine::Microvm);
    let versioned = doc("", "").replace("machine='pc'", "machine='pc-i440fx-7.2'");
    assert_eq!(f.run(&versioned).unwrap().config.machine, Machine::Pc);
    assert_eq!(
        f.refused(&doc("", "").replace("machine='pc'", "machine='pc-q35-8.2'")),
        "os/type@machine='pc-q35-8.2': Vireo's PC platform is i440FX, it has no Q35 machine \
         (use machine='pc')"
    );
}
