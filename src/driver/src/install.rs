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
    let Some(target) = installing(&dom) else {
        return Ok(None);
    };
    // The medium first, through the path every eject takes (live XML and config together).
    let ejected = crate::live::set_medium(run, &target, None)?;
    crate::live::update(run, |dom, cfg| {
        let finished = finish(dom).map(|f| Finished { ejected, ..f });
        if let Some(fw) = cfg.firmware.as_mut() {
            let (disks, rest): (Vec<BootDevice>, Vec<BootDevice>) = fw
                .boot_order
                .iter()
                .cloned()
                .partition(|d| matches!(d, BootDevice::Disk { .. }));
            fw.boot_order = disks.into_iter().chain(rest).collect();
        }
        finished
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
}
