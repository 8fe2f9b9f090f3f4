//! The install phase of a machine made to install a system from an ISO onto a new, empty disk
//! (the wizard's operating system image, `vireoctl create --cdrom ISO --disk size=N`). While
//! it lasts the machine boots from its CD-ROM, and its definition carries a mark naming that
//! drive. The guest's first reboot ends it, as GNOME Boxes and virt-install take an
//! installer's reboot to mean "installed": the supervisor ejects the ISO, puts the disk first
//! in the boot order and drops the mark, in the running machine and in its definition, before
//! the guest starts again, so the installed system boots and not the installer once more.
//! A power-off does not end it (the user may stop an installer halfway and start it again).

use crate::live::LiveError;
use crate::rundir::RunDir;
use crate::store::{Store, StoreError};
use vireo_domain::{BootDev, Domain};
use vireo_vmm_api::config::BootDevice;

/// The Vireo metadata key of the mark; its value is the drive's target (`sda`).
pub const MARK: &str = "install-cdrom";

/// The drive of a machine in its install phase.
pub fn installing(dom: &Domain) -> Option<String> {
    dom.vireo_value(MARK)
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
}

/// Marks `dom` as installing from the CD-ROM `target`.
pub fn mark(dom: &mut Domain, target: &str) {
    dom.set_vireo_value(MARK, Some(target));
}

/// What ending the install phase changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished {
    pub target: String,
    /// The medium taken out, if the drive still held one.
    pub ejected: Option<String>,
}

/// Ends the install phase of `dom`, if it is in one: the drive emptied, hard disks first in
/// the boot order (the CD-ROM stays listed after them, for a disc inserted later), the mark
/// gone.
pub fn finish(dom: &mut Domain) -> Option<Finished> {
    let target = installing(dom)?;
    let ejected = crate::live::disk_medium(dom, &target);
    crate::live::set_disk_medium(dom, &target, None);
    let order = dom.os().map(|o| o.boot_devs()).unwrap_or_default();
    if !order.is_empty() {
        let mut hd_first: Vec<BootDev> = order
            .iter()
            .filter(|d| **d == BootDev::Hd)
            .cloned()
            .collect();
        if hd_first.is_empty() {
            hd_first.push(BootDev::Hd);
        }
        hd_first.extend(order.into_iter().filter(|d| *d != BootDev::Hd));
        dom.os_mut().set_boot_devs(&hd_first);
    }
    dom.set_vireo_value(MARK, None);
    Some(Finished { target, ejected })
}

/// Ends the install phase of the running machine of `run` between two runs of its helper:
/// the live XML as [`finish`] says, and the config the next helper boots with (the drive
/// empty, the disks first in the firmware's boot order). `None`: it was not installing.
pub fn finish_live(run: &RunDir) -> Result<Option<Finished>, LiveError> {
    let xml_path = run.xml();
    let text = std::fs::read_to_string(&xml_path).map_err(|source| LiveError::Io {
        path: xml_path.clone(),
        source,
    })?;
    let dom = Domain::parse(&text).map_err(|e| LiveError::Unreadable {
        path: xml_path.clone(),
        message: e.to_string(),
    })?;
    if installing(&dom).is_none() {
        return Ok(None);
    }
    // One change of both files under the state lock: the XML as `finish` says, the config's
    // drive emptied as every eject empties it, the disks first in its boot order.
    crate::live::update(run, |dom, cfg| {
        let finished = finish(dom)?;
        crate::live::set_medium_in(dom, cfg, &finished.target, None);
        if let Some(fw) = cfg.firmware.as_mut() {
            let (disks, rest): (Vec<BootDevice>, Vec<BootDevice>) = fw
                .boot_order
                .iter()
                .cloned()
                .partition(|d| matches!(d, BootDevice::Disk { .. }));
            fw.boot_order = disks.into_iter().chain(rest).collect();
        }
        Some(finished)
    })
}

/// Ends the install phase in the definition of the machine whose UUID is `uuid` (the
/// definition may have been replaced or removed meanwhile: then nothing is changed).
pub fn finish_definition(
    store: &Store,
    name: &str,
    uuid: Option<&str>,
) -> Result<Option<Finished>, StoreError> {
    let mut def = match store.load(name) {
        Ok(d) => d,
        Err(StoreError::NotFound(_)) => return Ok(None),
        Err(e) => return Err(e),
    };
    if def.uuid.as_deref() != uuid {
        return Ok(None);
    }
    let Some(finished) = finish(&mut def.dom) else {
        return Ok(None);
    };
    store.define(&def.to_xml())?;
    Ok(Some(finished))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;

    const INSTALLING: &str = "<domain type='kvm'><name>i</name>\
        <metadata><vireo:vm xmlns:vireo='https://vireo.org/xmlns/vireo/1.0'>\
        <vireo:install-cdrom>sda</vireo:install-cdrom></vireo:vm></metadata>\
        <os><type arch='x86_64' machine='pc'>hvm</type><boot dev='cdrom'/><boot dev='hd'/></os>\
        <devices><disk type='file' device='disk'><source file='/i/d.qcow2'/><target dev='vda' bus='virtio'/></disk>\
        <disk type='file' device='cdrom'><source file='/i/debian.iso'/><target dev='sda' bus='scsi'/><readonly/></disk>\
        </devices></domain>";

    #[test]
    fn finishing_ejects_boots_the_disk_first_and_drops_the_mark() {
        let mut d = Domain::parse(INSTALLING).unwrap();
        assert_eq!(installing(&d).as_deref(), Some("sda"));
        let f = finish(&mut d).unwrap();
        assert_eq!(f.target, "sda");
        assert_eq!(f.ejected.as_deref(), Some("/i/debian.iso"));
        assert_eq!(installing(&d), None);
        assert_eq!(
            d.os().unwrap().boot_devs(),
            vec![BootDev::Hd, BootDev::Cdrom]
        );
        assert_eq!(crate::live::disk_medium(&d, "sda"), None);
        assert_eq!(
            crate::live::disk_medium(&d, "vda").as_deref(),
            Some("/i/d.qcow2")
        );
        // Once is enough: a second reboot changes nothing.
        let after = d.to_xml();
        assert_eq!(finish(&mut d), None);
        assert_eq!(d.to_xml(), after);
    }

    #[test]
    fn marking_round_trips() {
        let mut d = Domain::parse("<domain type='kvm'><name>m</name></domain>").unwrap();
        assert_eq!(installing(&d), None);
        mark(&mut d, "sdb");
        assert_eq!(installing(&d).as_deref(), Some("sdb"));
    }

    /// The supervisor ends the phase between two runs of the helper: a stand-in for vireo-vmm
    /// "reboots" while the ISO is in its config and powers off once it is not.
    #[test]
    fn an_installers_reboot_ejects_the_iso_and_the_disk_boots_next_here_and_in_the_definition() {
        use vireo_vmm_api::config::{
            BootDevice, FirmwareConfig, ScsiControllerConfig, ScsiDeviceConfig, ScsiDeviceKind,
            VmConfig,
        };
        let dir = std::env::temp_dir().join(format!(
            "vireo-install-{}",
            vireo_domain::Uuid::new_v4().unwrap()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let run = RunDir::new(dir);
        let xml = "<domain type='kvm'><name>inst</name>\
            <uuid>0b6f3c1e-5d4a-4c1b-9a7e-2f1d3c4b5a69</uuid><memory unit='MiB'>64</memory>\
            <metadata><vireo:vm xmlns:vireo='https://vireo.org/xmlns/vireo/1.0'>\
            <vireo:install-cdrom>sda</vireo:install-cdrom></vireo:vm></metadata>\
            <os><type arch='x86_64'>hvm</type><boot dev='cdrom'/><boot dev='hd'/></os>\
            <devices><disk type='file' device='disk'><source file='/i/d.qcow2'/>\
            <target dev='vda' bus='virtio'/></disk>\
            <disk type='file' device='cdrom'><source file='/i/setup.iso'/>\
            <target dev='sda' bus='scsi'/><readonly/></disk></devices></domain>";
        let config_dir = run.dir.join("config");
        let store = crate::store::Store::in_config(&config_dir);
        store.define(xml).unwrap();
        std::fs::write(run.xml(), store.load("inst").unwrap().to_xml()).unwrap();
        let fw = FirmwareConfig {
            loader: "/bios.bin".into(),
            vga_rom: None,
            boot_order: Vec::new(),
            boot_menu_timeout_ms: None,
            smbios: Default::default(),
            nvram: None,
        };
        let mut cfg = VmConfig::minimal_firmware("inst", fw, 64, 1);
        cfg.scsi = vec![ScsiControllerConfig {
            devices: vec![ScsiDeviceConfig {
                id: "sda".into(),
                target: 0,
                lun: 0,
                kind: ScsiDeviceKind::Cdrom { medium: None },
            }],
        }];
        if let Some(fw) = cfg.firmware.as_mut() {
            fw.boot_order = vec![
                BootDevice::Scsi {
                    controller: 0,
                    target: 0,
                    lun: 0,
                },
                BootDevice::Disk { index: 0 },
            ];
        }
        std::fs::write(run.config(), serde_json::to_vec(&cfg).unwrap()).unwrap();
        crate::live::set_medium(&run, "sda", Some(Path::new("/i/setup.iso"))).unwrap();
        // The "installer" reboots while it boots from the ISO; the installed system powers off.
        let fake = run.dir.join("fake-vmm");
        std::fs::write(
            &fake,
            format!(
                "#!/bin/sh\necho run >> {runs}\nif grep -q setup.iso \"$2\"; then exit 2; fi\n\
                 grep -A3 boot_order \"$2\" | grep -q disk || exit 1\nexit 0\n",
                runs = run.dir.join("runs").display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
        let code = crate::supervisor::supervise(&crate::supervisor::SuperviseArgs {
            rundir: run.dir.clone(),
            events: run.dir.join("events.log"),
            vmm: fake,
            unpack_kernel: None,
            kernel_cache: None,
            config_dir: Some(config_dir),
        });
        assert_eq!(
            code,
            0,
            "{}",
            std::fs::read_to_string(run.log()).unwrap_or_default()
        );
        let runs = std::fs::read_to_string(run.dir.join("runs")).unwrap();
        assert_eq!(
            runs.lines().count(),
            2,
            "installer, then the installed system"
        );
        let defined = store.load("inst").unwrap();
        assert_eq!(installing(&defined.dom), None);
        assert_eq!(crate::live::disk_medium(&defined.dom, "sda"), None);
        assert_eq!(
            defined.dom.os().unwrap().boot_devs(),
            vec![vireo_domain::BootDev::Hd, vireo_domain::BootDev::Cdrom]
        );
        let events = std::fs::read_to_string(run.dir.join("events.log")).unwrap();
        assert!(
            events.contains("\"old_source\":\"/i/setup.iso\""),
            "the ejected ISO is named: {events}"
        );
        assert!(events.contains("installed"), "{events}");
        assert!(events.contains("Updated"), "{events}");
        let _ = std::fs::remove_dir_all(&run.dir);
    }
}
