//! Firmware machines through `vireoctl`, without booting a guest: `create --cdrom` and its
//! document, the VMM config the driver writes for it (captured by a stand-in for vireo-vmm),
//! the capabilities, and the one-line refusals of bad firmware input. Booting SeaBIOS is the
//! rig's (real-mode firmware does not run on every KVM this runs on).

mod vireoctl_support;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use vireoctl_support::Home;

/// A firmware directory standing in for Debian's seabios package.
fn firmware_dir(h: &Home) -> PathBuf {
    let dir = h.root.join("seabios");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("bios-256k.bin"), vec![0u8; 256 << 10]).unwrap();
    std::fs::write(dir.join("vgabios-ramfb.bin"), vec![0u8; 40 << 10]).unwrap();
    std::fs::write(dir.join("vgabios-stdvga.bin"), vec![0u8; 40 << 10]).unwrap();
    dir
}

/// vireoctl in `h` with the firmware of `fw` (and extra environment).
fn ctl(h: &Home, fw: &Path, env: &[(&str, &Path)], args: &[&str]) -> (i32, String, String) {
    let mut c = h.cmd();
    c.env("VIREO_FIRMWARE_DIR", fw);
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `vireoctl create --cdrom` (with `more` options) of a machine `name` with a new disk; then
/// its start with a stand-in for vireo-vmm that keeps the config it is given and ends at once
/// (a guest that ran and stopped, for the driver): the config is what the driver would have
/// booted. Returns the stored document, the ISO's path and the config.
fn create_cdrom_and_start(
    h: &Home,
    fw: &Path,
    name: &str,
    more: &[&str],
) -> (String, String, Value) {
    let iso = h.file(&format!("{name}.iso"), &vec![0u8; 1 << 20]);
    let iso_s = iso.to_str().unwrap();
    let mut args = vec![
        "create", "--name", name, "--cdrom", iso_s, "--disk", "size=1",
    ];
    args.extend_from_slice(more);
    let (code, out, err) = ctl(h, fw, &[], &args);
    assert_eq!(
        (code, out.as_str()),
        (0, format!("Domain '{name}' defined\n").as_str()),
        "{err}"
    );
    let xml = h.ok(&["dumpxml", name]);
    assert!(
        xml.contains(&format!("<source file='{iso_s}'/>")) && xml.contains("device='cdrom'"),
        "{xml}"
    );
    let kept = h.root.join(format!("{name}.json"));
    let vmm = h.file(
        &format!("fake-vmm-{name}"),
        format!("#!/bin/sh\ncp \"$2\" '{}'\nexit 3\n", kept.display()).as_bytes(),
    );
    Command::new("chmod").arg("+x").arg(&vmm).status().unwrap();
    let (_, _, err) = ctl(h, fw, &[("VIREO_VMM", &vmm)], &["start", name]);
    assert!(kept.exists(), "the driver never ran the VMM: {err}");
    let cfg: Value = serde_json::from_slice(&std::fs::read(&kept).unwrap()).unwrap();
    (xml, iso_s.to_owned(), cfg)
}

/// The `<os>` element of `xml`, on one line.
fn os_of(xml: &str) -> String {
    let from = xml.find("<os>").unwrap();
    let to = xml.find("</os>").unwrap() + 5;
    xml[from..to]
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// What every firmware machine made with `--cdrom` and a new disk is configured with: SeaBIOS,
/// the CD-ROM drive first in the boot order, the machine's UUID, a display.
fn assert_seabios_boots_the_cdrom_first(fw: &Path, xml: &str, iso: &str, cfg: &Value) {
    let uuid = xml
        .split("<uuid>")
        .nth(1)
        .and_then(|r| r.split("</uuid>").next())
        .unwrap();
    assert_eq!(cfg.get("kernel"), None, "{cfg:#}");
    let f = &cfg["firmware"];
    assert_eq!(f["loader"], fw.join("bios-256k.bin").to_str().unwrap());
    // The CD-ROM drive (sda: LUN 0 of target 0 on the virtio-scsi controller) first, then the
    // hard disk (the only virtio-blk disk).
    assert_eq!(
        f["boot_order"],
        serde_json::json!([
            {"scsi": {"controller": 0, "target": 0, "lun": 0}},
            {"disk": {"index": 0}}
        ])
    );
    assert_eq!(f["smbios"]["uuid"], uuid);
    assert_eq!(cfg["disks"].as_array().map(Vec::len), Some(1), "{cfg:#}");
    let drive = &cfg["scsi"][0]["devices"][0];
    assert_eq!(drive["id"], "sda");
    let medium = &drive["kind"]["cdrom"]["medium"];
    assert_eq!(medium["path"], iso);
    assert_eq!(medium["cdrom"], true);
    assert_eq!(medium["readonly"], true);
    assert!(cfg["display"].is_object(), "a display, as every machine");
}

/// A machine the firmware boots is on the pc machine unless the user names one, exactly as
/// `--machine pc` makes it: PCI addresses written on define, the standard VGA with its ROM.
#[test]
fn create_cdrom_defines_a_firmware_machine_and_the_driver_configures_seabios() {
    let h = Home::new("fwcd");
    let fw = firmware_dir(&h);
    let (xml, iso, cfg) = create_cdrom_and_start(&h, &fw, "live", &[]);
    assert_eq!(
        os_of(&xml),
        "<os> <type arch='x86_64' machine='pc'>hvm</type> <boot dev='cdrom'/> <boot dev='hd'/> \
         </os>"
    );
    assert!(xml.contains("<address type='pci'"), "{xml}");
    assert!(xml.contains("<model type='vga' vram='16384'"), "{xml}");
    assert_seabios_boots_the_cdrom_first(&fw, &xml, &iso, &cfg);
    assert_eq!(cfg["machine"], "pc", "{cfg:#}");
    assert_eq!(cfg["display"]["model"], "vga", "{cfg:#}");
    assert_eq!(
        cfg["firmware"]["vga_rom"],
        fw.join("vgabios-stdvga.bin").to_str().unwrap()
    );
    let (named, _, named_cfg) = create_cdrom_and_start(&h, &fw, "named", &["--machine", "pc"]);
    let addresses = |x: &str| -> Vec<String> {
        x.lines()
            .filter(|l| l.contains("<address ") || l.contains("<type ") || l.contains("<model "))
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(
        addresses(&named),
        addresses(&xml),
        "the same as --machine pc"
    );
    assert_eq!(named_cfg["pci_slots"], cfg["pci_slots"]);
}

/// `--machine vireo` still gives a firmware boot Vireo's own machine: no PCI, the linear
/// framebuffer with ramfb's VGA ROM.
#[test]
fn create_cdrom_on_the_vireo_machine_configures_seabios_with_ramfb() {
    let h = Home::new("fwcdv");
    let fw = firmware_dir(&h);
    let (xml, iso, cfg) = create_cdrom_and_start(&h, &fw, "live", &["--machine", "vireo"]);
    assert_eq!(
        os_of(&xml),
        "<os> <type arch='x86_64' machine='vireo'>hvm</type> <boot dev='cdrom'/> \
         <boot dev='hd'/> </os>"
    );
    assert!(!xml.contains("<address type='pci'"), "{xml}");
    assert_seabios_boots_the_cdrom_first(&fw, &xml, &iso, &cfg);
    assert_eq!(cfg.get("machine"), None, "{cfg:#}");
    assert_eq!(cfg["display"].get("model"), None, "{cfg:#}");
    assert_eq!(
        cfg["firmware"]["vga_rom"],
        fw.join("vgabios-ramfb.bin").to_str().unwrap()
    );
}

#[test]
fn capabilities_list_the_firmware_found() {
    let h = Home::new("fwcaps");
    let fw = firmware_dir(&h);
    let bios = fw.join("bios-256k.bin");
    let (_, caps, _) = ctl(&h, &fw, &[], &["capabilities"]);
    assert!(
        caps.contains(&format!("<loader>{}</loader>", bios.display())),
        "{caps}"
    );
    assert!(caps.contains("<deviceboot/>"), "{caps}");
    let (_, dc, _) = ctl(&h, &fw, &[], &["domcapabilities"]);
    for want in [
        format!("<value>{}</value>", bios.display()),
        "<enum name='firmware'>\n      <value>bios</value>\n    </enum>".into(),
        "<enum name='bootDevice'>\n      <value>hd</value>\n      <value>cdrom</value>\n    </enum>"
            .into(),
        "<enum name='bus'>\n        <value>virtio</value>\n        <value>scsi</value>\n      </enum>"
            .into(),
    ] {
        assert!(dc.contains(&want), "{want} missing in\n{dc}");
    }
    // Without SeaBIOS: no firmware, honestly.
    let empty = h.root.join("none");
    std::fs::create_dir_all(&empty).unwrap();
    let (_, dc, _) = ctl(&h, &empty, &[], &["domcapabilities"]);
    assert!(dc.contains("<loader supported='no'/>"), "{dc}");
    assert!(dc.contains("<enum name='firmware'/>"), "{dc}");
}

#[test]
fn bad_firmware_input_is_one_line_naming_the_file_or_element() {
    let h = Home::new("fwbad");
    let fw = firmware_dir(&h);
    let disk = h.file("d.img", &vec![0u8; 1 << 20]);
    let not_bios = h.file("not-bios.bin", b"MZ");
    let define = |name: &str, os: &str, devices: &str| {
        let xml = format!(
            "<domain type='kvm'><name>{name}</name><memory unit='MiB'>64</memory>\
             <os><type arch='x86_64'>hvm</type>{os}</os><devices>{devices}</devices></domain>"
        );
        let f = h.file(&format!("{name}.xml"), xml.as_bytes());
        h.ok(&["define", f.to_str().unwrap()]);
    };
    let hd = format!(
        "<disk type='file' device='disk'><source file='{}'/><target dev='vda' bus='virtio'/></disk>",
        disk.display()
    );
    define(
        "odd",
        &format!("<loader type='rom'>{}</loader>", not_bios.display()),
        &hd,
    );
    define("gone", "<loader>/nonexistent/bios.bin</loader>", &hd);
    define("nocd", "<boot dev='cdrom'/>", &hd);
    define("plain", "", &hd);
    let empty = h.root.join("none");
    std::fs::create_dir_all(&empty).unwrap();
    let cases: [(&str, &Path, String); 4] = [
        (
            "odd",
            &fw,
            format!(
                "error: os/loader: {}: not a BIOS image (a file of 64 KiB to 256 KiB in 64 KiB \
                 steps is needed, this one has 2 bytes)\n",
                not_bios.display()
            ),
        ),
        (
            "gone",
            &fw,
            "error: os/loader: /nonexistent/bios.bin: No such file or directory\n".into(),
        ),
        (
            "nocd",
            &fw,
            "error: os/boot[1]@dev='cdrom': no CD-ROM to boot from (no devices/disk with \
             device='cdrom')\n"
                .into(),
        ),
        (
            "plain",
            &empty,
            format!(
                "error: os: no firmware to boot: bios-256k.bin is not in {} (install the seabios \
                 package, or name a BIOS image in os/loader)\n",
                empty.display()
            ),
        ),
    ];
    for (name, dir, want) in cases {
        let (code, _, err) = ctl(&h, dir, &[], &["start", name]);
        assert_ne!(code, 0, "{name} started");
        assert_eq!(err, want, "{name}");
    }
}

/// An ISO 9660 image of `size` bytes whose primary volume descriptor carries `volume_id`: all
/// that detection reads.
fn labelled_iso(h: &Home, name: &str, volume_id: &str) -> PathBuf {
    let mut iso = vec![0u8; 64 << 10];
    let pvd = &mut iso[16 * 2048..17 * 2048];
    pvd[0] = 1;
    pvd[1..6].copy_from_slice(b"CD001");
    pvd[6] = 1;
    pvd[8..40].fill(b' ');
    pvd[8..13].copy_from_slice(b"LINUX");
    pvd[40..72].fill(b' ');
    pvd[40..40 + volume_id.len()].copy_from_slice(volume_id.as_bytes());
    for range in [318..446, 446..574, 574..702] {
        pvd[range].fill(b' ');
    }
    // 32 blocks of 2048 bytes, both byte orders.
    pvd[80..84].copy_from_slice(&32u32.to_le_bytes());
    pvd[84..88].copy_from_slice(&32u32.to_be_bytes());
    pvd[128..130].copy_from_slice(&2048u16.to_le_bytes());
    pvd[130..132].copy_from_slice(&2048u16.to_be_bytes());
    h.file(name, &iso)
}

/// The install flow without a guest: `create --cdrom ISO --disk size=N --osinfo detect=on`
/// finds the system by the ISO's volume ID and marks the machine as installing; a stand-in
/// for vireo-vmm then "reboots" while the ISO is in its config (the installer's reboot) and
/// powers off once it is not. The supervisor must have ejected the ISO and put the disk
/// first, in the config of the second run and in the definition, and the system stays in the
/// metadata. An unknown ISO gets the generic machine and a note, not a refusal.
#[test]
fn an_installers_reboot_leaves_a_machine_that_boots_its_disk_with_the_iso_ejected() {
    let h = Home::new("fw-install");
    let fw = firmware_dir(&h);
    let db = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/osinfo");
    let iso = labelled_iso(&h, "debian.iso", "Debian 11.5.0 amd64 n");
    let iso_s = iso.to_str().unwrap();
    let (code, out, err) = ctl(
        &h,
        &fw,
        &[("OSINFO_SYSTEM_DIR", &db)],
        &[
            "create",
            "--name",
            "inst",
            "--cdrom",
            iso_s,
            "--disk",
            "size=1",
            "--osinfo",
            "detect=on,require=on",
        ],
    );
    assert_eq!(
        (code, out.as_str()),
        (0, "Domain 'inst' defined\n"),
        "{err}"
    );
    let xml = h.ok(&["dumpxml", "inst"]);
    assert!(
        xml.contains("<libosinfo:os id='http://debian.org/debian/11'/>"),
        "{xml}"
    );
    assert!(
        xml.contains("<vireo:install-cdrom>sda</vireo:install-cdrom>"),
        "{xml}"
    );
    assert!(xml.contains("<memory unit='KiB'>1048576</memory>"), "{xml}");
    assert_eq!(
        os_of(&xml),
        "<os> <type arch='x86_64' machine='pc'>hvm</type> <boot dev='cdrom'/> <boot dev='hd'/> </os>"
    );
    let runs = h.root.join("runs");
    let vmm = h.file(
        "fake-vmm-install",
        format!(
            "#!/bin/sh\ncp \"$2\" '{runs}'.$(wc -l < '{runs}' 2>/dev/null || echo 0)\n\
             echo run >> '{runs}'\ngrep -q debian.iso \"$2\" && exit 2\nexit 0\n",
            runs = runs.display()
        )
        .as_bytes(),
    );
    Command::new("chmod").arg("+x").arg(&vmm).status().unwrap();
    let (code, _, err) = ctl(&h, &fw, &[("VIREO_VMM", &vmm)], &["start", "inst"]);
    assert_eq!(code, 0, "{err}");
    h.wait_state(
        "inst",
        "shut off (shutdown)",
        std::time::Duration::from_secs(20),
    );
    let count = std::fs::read_to_string(&runs).unwrap().lines().count();
    assert_eq!(count, 2, "the installer, then the installed system");
    let second: Value =
        serde_json::from_slice(&std::fs::read(format!("{}.1", runs.display())).unwrap()).unwrap();
    assert_eq!(
        second["firmware"]["boot_order"],
        serde_json::json!([
            {"disk": {"index": 0}},
            {"scsi": {"controller": 0, "target": 0, "lun": 0}}
        ])
    );
    assert_eq!(
        second["scsi"][0]["devices"][0]["kind"]["cdrom"]["medium"],
        Value::Null
    );
    let xml = h.ok(&["dumpxml", "inst"]);
    assert!(!xml.contains("install-cdrom"), "{xml}");
    assert!(!xml.contains(iso_s), "the ISO is ejected: {xml}");
    assert!(
        xml.contains("<libosinfo:os id='http://debian.org/debian/11'/>"),
        "{xml}"
    );
    assert_eq!(
        os_of(&xml),
        "<os> <type arch='x86_64' machine='pc'>hvm</type> <boot dev='hd'/> <boot dev='cdrom'/> </os>"
    );

    let other = labelled_iso(&h, "other.iso", "HOMEBREW_OS");
    let (code, _, err) = ctl(
        &h,
        &fw,
        &[("OSINFO_SYSTEM_DIR", &db)],
        &[
            "create",
            "--name",
            "other",
            "--cdrom",
            other.to_str().unwrap(),
            "--osinfo",
            "detect=on",
            "--print-xml",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        err,
        "vireoctl: --osinfo detect=on: the osinfo database knows no medium labelled \
         'HOMEBREW_OS'; a generic machine is made\n"
    );
    let (code, _, err) = ctl(
        &h,
        &fw,
        &[("OSINFO_SYSTEM_DIR", &db)],
        &[
            "create",
            "--name",
            "other",
            "--cdrom",
            other.to_str().unwrap(),
            "--osinfo",
            "detect=on,require=on",
        ],
    );
    assert_ne!(code, 0);
    assert_eq!(
        err,
        "error: the system could not be detected: the osinfo database knows no medium \
         labelled 'HOMEBREW_OS'\n"
    );
}

/// `create --cdrom ISO --disk size=N --start`: the start check, made before the new disk
/// exists, excuses that disk wherever the CD-ROM puts it in the document.
#[test]
fn create_start_with_a_new_disk_beside_the_cdrom_is_not_refused_for_the_disk_to_come() {
    let h = Home::new("fw-start-new");
    let fw = firmware_dir(&h);
    let iso = labelled_iso(&h, "any.iso", "ANY");
    let vmm = h.file("fake-vmm-ends", b"#!/bin/sh\nexit 0\n");
    Command::new("chmod").arg("+x").arg(&vmm).status().unwrap();
    let (code, out, err) = ctl(
        &h,
        &fw,
        &[("VIREO_VMM", &vmm)],
        &[
            "create",
            "--name",
            "s",
            "--cdrom",
            iso.to_str().unwrap(),
            "--disk",
            "size=1",
            "--start",
        ],
    );
    assert_eq!(
        (code, out.as_str()),
        (0, "Domain 's' defined\nDomain 's' started\n"),
        "{err}"
    );
}
