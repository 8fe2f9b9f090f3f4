//! `capabilities` and `domainCapabilities` documents, written by vireo-domain from the facts of
//! this host and of the vireo-vmm backend the driver would start.

use crate::translate::{machine, uefi, TranslateError};
use vireo_domain::{BackendFacts, BootDev, DiskBus, DiskDevice, HostCpu, VideoModel};
use vireo_vmm_api::config::Machine;

/// The backend as the driver runs it: the machine types translate accepts, direct kernel boot,
/// BIOS firmware boot when the default SeaBIOS image is there, UEFI on the pc machine when
/// OVMF is; disks on virtio and on virtio-scsi, CD-ROM drives on virtio-scsi, VNC; the video
/// models translate gives each machine a display for (Vireo's own machine lists virtio, the
/// model its new machines get, though it takes any as its linear framebuffer; pc the
/// standard VGA and ramfb).
pub fn backend_facts() -> BackendFacts {
    let emulator = crate::process::find_binary("vireo-vmm", "VIREO_VMM")
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "/usr/bin/vireo-vmm".into());
    let mut f = BackendFacts::vireo_kvm(&emulator);
    f.machines = crate::translate::machine::NAMES
        .iter()
        .map(|&m| m.to_owned())
        .collect();
    // libvirt's domain capabilities have no controller models (the 9.0 schema); `scsi` in the
    // bus list stands for virtio-scsi, the one SCSI controller the backend has.
    f.disk_buses = vec![DiskBus::Virtio, DiskBus::Scsi];
    f.disk_devices = vec![DiskDevice::Disk, DiskDevice::Cdrom];
    f.max_vcpus = u32::try_from(vireo_vmm_api::limits::MAX_VCPUS)
        .unwrap_or(u32::from(u8::MAX))
        .min(255);
    let dirs = crate::translate::firmware::search_dirs();
    if let Some(bios) = crate::translate::firmware::default_loader(&dirs) {
        f.loaders = vec![bios.display().to_string()];
        // What the firmware boots from: disks and CD-ROMs. Not the network: SeaBIOS finds no
        // PXE ROM for a virtio-mmio card, so `network` is refused until one is offered.
        f.boot_devices = vec![BootDev::Hd, BootDev::Cdrom];
    }
    f.efi_machines = vec![machine::name(Machine::Pc).to_owned()];
    f.video_models = vec![VideoModel::Virtio];
    f.machine_video_models = vec![(
        machine::name(Machine::Pc).to_owned(),
        vec![VideoModel::Vga, VideoModel::Ramfb],
    )];
    if let Some((code, _)) = uefi::default_pair(&uefi::search_dirs()) {
        f.efi_loaders = vec![code.display().to_string()];
    }
    f
}

/// The host `capabilities` XML.
pub fn capabilities() -> String {
    let cpu =
        HostCpu::detect().unwrap_or_else(|_| HostCpu::from_cpuinfo("", std::env::consts::ARCH));
    let uuid = std::fs::read_to_string("/etc/machine-id")
        .ok()
        .and_then(|m| crate::definition::canonical_uuid(m.trim()))
        .and_then(|u| vireo_domain::Uuid::parse(&u));
    vireo_domain::capabilities(uuid.as_ref(), &cpu, &backend_facts()).to_xml()
}

/// The `domainCapabilities` XML of `machine` (None: the default machine), under the name
/// translate knows the machine by (`pc` for `pc-i440fx-7.2`); a machine translate refuses is
/// refused here with the same words.
pub fn domain_capabilities(machine: Option<&str>) -> Result<String, TranslateError> {
    let name = match machine {
        Some(m) => Some(machine::name(machine::machine(Some(m))?)),
        None => None,
    };
    Ok(vireo_domain::domain_capabilities(&backend_facts(), name).to_xml())
}

#[cfg(test)]
mod tests {
    #[test]
    fn domain_capabilities_list_the_scsi_bus_and_cdrom_drives() {
        let xml = super::domain_capabilities(None).unwrap();
        let bus = xml.find("<enum name='bus'>").expect("a bus enum");
        let end = bus + xml[bus..].find("</enum>").expect("its end");
        assert!(xml[bus..end].contains("<value>scsi</value>"), "{xml}");
        assert!(xml[bus..end].contains("<value>virtio</value>"), "{xml}");
        assert!(!xml[bus..end].contains("sata"), "{xml}");
        assert!(xml.contains("<value>cdrom</value>"), "{xml}");
    }

    #[test]
    fn both_machine_types_are_listed_the_default_first() {
        let xml = super::capabilities();
        let vireo = xml.find(">vireo</machine>").expect("the vireo machine");
        let pc = xml.find(">pc</machine>").expect("the pc machine");
        assert!(vireo < pc, "{xml}");
        let dc = super::domain_capabilities(None).unwrap();
        assert!(dc.contains("<machine>vireo</machine>"), "{dc}");
        let pc = super::domain_capabilities(Some("pc-i440fx-7.2")).unwrap();
        assert!(pc.contains("<machine>pc</machine>"), "{pc}");
        let e = super::domain_capabilities(Some("q35")).unwrap_err();
        assert_eq!(e.path, "os/type@machine='q35'");
    }

    /// The `modelType` values of the machine's `<video>`.
    fn video_models(machine: Option<&str>) -> Vec<String> {
        let xml = super::domain_capabilities(machine).unwrap();
        let at = xml
            .find("<enum name='modelType'>")
            .expect("a modelType enum");
        let end = at + xml[at..].find("</enum>").expect("its end");
        xml[at..end]
            .split("<value>")
            .skip(1)
            .filter_map(|v| v.split_once("</value>").map(|(v, _)| v.to_owned()))
            .collect()
    }

    #[test]
    fn each_machine_lists_the_video_models_translate_gives_it() {
        assert_eq!(video_models(None), ["virtio"]);
        assert_eq!(video_models(Some("microvm")), ["virtio"]);
        for pc in ["pc", "pc-i440fx-7.2"] {
            assert_eq!(video_models(Some(pc)), ["vga", "ramfb"], "{pc}");
        }
    }
}
