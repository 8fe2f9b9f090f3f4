//! The live state of a running machine that outlives a command: its live XML (`domain.xml`)
//! and the VMM config a restarted helper boots with (`config.json`), changed together under
//! the machine's state lock. A CD-ROM's medium is the one such state today: changed by a
//! client (`change-media --live`) or by the guest (its own eject, which the supervisor hears
//! as the helper's `medium-changed` event). Whoever records a change that makes a difference
//! announces it (a `disk-change` event), so each change is announced once.

use crate::definition::Definition;
use crate::events::{DiskChange, DiskChangeReason};
use crate::rundir::RunDir;
use crate::store::{write_atomic, FileLock};
use std::path::Path;
use vireo_domain::Domain;
use vireo_vmm_api::config::{DiskConfig, DiskFormat, ScsiDeviceKind, VmConfig};

/// Why the live files could not be changed.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    #[error("{path}: {source}")]
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Unreadable {
        path: std::path::PathBuf,
        message: String,
    },
}

/// Puts `medium` (or nothing) into the disk whose target is `target`, as libvirt writes it: a
/// `<source file=>`, or no `<source>` at all for an empty drive. Returns whether the disk is
/// there.
pub fn set_disk_medium(dom: &mut Domain, target: &str, medium: Option<&Path>) -> bool {
    let index = dom.devices().and_then(|d| {
        d.disks()
            .iter()
            .position(|disk| disk.target_dev().as_deref() == Some(target))
    });
    let Some(index) = index else {
        return false;
    };
    let mut devices = dom.devices_mut();
    let Some(mut disk) = devices.disk_mut(index) else {
        return false;
    };
    match medium {
        Some(p) => disk.set_source(Some(&p.to_string_lossy())),
        None => {
            disk.element_mut().remove_children_named("source");
        }
    }
    true
}

/// The format a CD-ROM's medium is opened with: the drive's declared one (raw when it says
/// none; never guessed from the image).
pub fn medium_format(dom: &Domain, target: &str) -> DiskFormat {
    let format = dom.devices().and_then(|d| {
        d.disks()
            .iter()
            .find(|disk| disk.target_dev().as_deref() == Some(target))
            .and_then(|disk| disk.format())
    });
    match format {
        Some(vireo_domain::ImageFormat::Qcow2) => DiskFormat::Qcow2,
        _ => DiskFormat::Raw,
    }
}

/// The medium of the disk whose target is `target`, as its `<source>` says it.
pub fn disk_medium(dom: &Domain, target: &str) -> Option<String> {
    dom.devices().and_then(|d| {
        d.disks()
            .into_iter()
            .find(|disk| disk.target_dev().as_deref() == Some(target))
            .and_then(|disk| disk.source())
    })
}

/// A medium as the events name it.
pub fn medium_name(medium: Option<&Path>) -> Option<String> {
    medium.map(|p| p.to_string_lossy().into_owned())
}

/// Records a running machine's new medium in drive `target` in its live XML and in the config
/// the helper restarts with (a guest reboot keeps the medium, as it does under QEMU). Returns
/// the medium the live XML had before.
pub fn set_medium(
    run: &RunDir,
    target: &str,
    medium: Option<&Path>,
) -> Result<Option<String>, LiveError> {
    update(run, |dom, cfg| set_medium_in(dom, cfg, target, medium))
}

/// [`set_medium`] on documents already read: the drive `target` of `dom` and of the config
/// holds `medium` (or nothing). Returns the medium `dom` had before.
pub fn set_medium_in(
    dom: &mut Domain,
    cfg: &mut VmConfig,
    target: &str,
    medium: Option<&Path>,
) -> Option<String> {
    let format = medium_format(dom, target);
    let before = disk_medium(dom, target);
    set_disk_medium(dom, target, medium);
    for dev in cfg.scsi.iter_mut().flat_map(|c| c.devices.iter_mut()) {
        if dev.id != target {
            continue;
        }
        if let ScsiDeviceKind::Cdrom { medium: m } = &mut dev.kind {
            *m = medium.map(|p| DiskConfig {
                path: p.to_owned(),
                format,
                readonly: true,
                shareable: false,
                serial: None,
                cdrom: true,
                backing: Vec::new(),
            });
        }
    }
    before
}

/// Changes a machine's live XML and config together, under the state lock; `f`'s
/// result is returned.
pub fn update<T>(
    run: &RunDir,
    f: impl FnOnce(&mut Domain, &mut VmConfig) -> T,
) -> Result<T, LiveError> {
    let _lock = FileLock::exclusive(&run.state_lock()).map_err(|source| LiveError::Io {
        path: run.state_lock(),
        source,
    })?;
    let xml_path = run.xml();
    let text = std::fs::read_to_string(&xml_path).map_err(|source| LiveError::Io {
        path: xml_path.clone(),
        source,
    })?;
    let mut def = Definition::parse(&text).map_err(|e| LiveError::Unreadable {
        path: xml_path.clone(),
        message: e.to_string(),
    })?;
    let cfg_path = run.config();
    let bytes = std::fs::read(&cfg_path).map_err(|source| LiveError::Io {
        path: cfg_path.clone(),
        source,
    })?;
    let mut cfg: VmConfig = serde_json::from_slice(&bytes).map_err(|e| LiveError::Unreadable {
        path: cfg_path.clone(),
        message: e.to_string(),
    })?;
    let out = f(&mut def.dom, &mut cfg);
    let json = serde_json::to_vec_pretty(&cfg).map_err(|e| LiveError::Unreadable {
        path: cfg_path.clone(),
        message: e.to_string(),
    })?;
    write_atomic(&xml_path, def.to_xml().as_bytes()).map_err(|source| LiveError::Io {
        path: xml_path,
        source,
    })?;
    write_atomic(&cfg_path, &json).map_err(|source| LiveError::Io {
        path: cfg_path,
        source,
    })?;
    Ok(out)
}

/// Follows the helper's events on a thread of its own until the helper ends, recording each
/// medium change (the guest's eject included) with [`set_medium`]. `changed` hears each change
/// not yet recorded by the client that made it (so, but for a client that died halfway, the
/// guest's), `log` what failed.
pub fn watch_media(
    run: &RunDir,
    changed: impl Fn(DiskChange) + Send + 'static,
    log: impl Fn(&str) + Send + 'static,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let run = run.clone();
    std::thread::Builder::new()
        .name("media-events".into())
        .spawn(move || {
            let followed = crate::control::follow_events(&run.control(), |event| {
                if let vireo_vmm_api::control::Event::MediumChanged { id, medium } = event {
                    // A client's change in flight is recorded (and announced) by the client.
                    let held = FileLock::exclusive(&run.media_lock());
                    if let Err(e) = &held {
                        log(&format!("{}: {e}", run.media_lock().display()));
                    }
                    match set_medium(&run, &id, medium.as_deref()) {
                        Ok(before) => {
                            let after = medium_name(medium.as_deref());
                            if before != after {
                                // Only an eject can come from the guest.
                                let reason = if after.is_none() {
                                    DiskChangeReason::GuestEject
                                } else {
                                    DiskChangeReason::Changed
                                };
                                changed(DiskChange {
                                    target: id,
                                    old_source: before,
                                    new_source: after,
                                    reason,
                                });
                            }
                        }
                        Err(e) => log(&format!("cannot record the new medium of {id}: {e}")),
                    }
                }
            });
            if let Err(e) = followed {
                log(&format!("cannot follow the helper's events: {e}"));
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use vireo_vmm_api::config::{ScsiControllerConfig, ScsiDeviceConfig};

    /// A runtime directory with a live XML (drive sda holding /a.iso) and its config.
    fn run_dir(tag: &str) -> RunDir {
        let dir = std::env::temp_dir().join(format!("vireo-live-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let run = RunDir::new(&dir);
        std::fs::write(
            run.xml(),
            "<domain type='kvm'><name>m</name><memory>1024</memory><os><type>hvm</type></os>\
             <devices><disk type='file' device='cdrom'><driver name='qemu' type='raw'/>\
             <source file='/a.iso'/><target dev='sda' bus='scsi'/><readonly/></disk>\
             <controller type='scsi' index='0' model='virtio-scsi'/></devices></domain>",
        )
        .unwrap();
        let mut cfg = VmConfig::minimal("m", "/k".into(), 64, 1);
        cfg.scsi = vec![ScsiControllerConfig {
            devices: vec![ScsiDeviceConfig {
                id: "sda".into(),
                target: 0,
                lun: 0,
                kind: ScsiDeviceKind::Cdrom { medium: None },
            }],
        }];
        std::fs::write(run.config(), serde_json::to_vec(&cfg).unwrap()).unwrap();
        run
    }

    fn medium_in_config(run: &RunDir) -> Option<std::path::PathBuf> {
        let cfg: VmConfig = serde_json::from_slice(&std::fs::read(run.config()).unwrap()).unwrap();
        match &cfg.scsi[0].devices[0].kind {
            ScsiDeviceKind::Cdrom { medium } => medium.as_ref().map(|m| m.path.clone()),
            k => panic!("{k:?}"),
        }
    }

    #[test]
    fn a_new_medium_reaches_the_live_xml_and_the_restart_config() {
        let run = run_dir("set");
        set_medium(&run, "sda", Some(Path::new("/b.iso"))).unwrap();
        let xml = std::fs::read_to_string(run.xml()).unwrap();
        assert!(xml.contains("<source file='/b.iso'/>"), "{xml}");
        assert_eq!(medium_in_config(&run), Some("/b.iso".into()));
        set_medium(&run, "sda", None).unwrap();
        let xml = std::fs::read_to_string(run.xml()).unwrap();
        assert!(
            !xml.contains("<source"),
            "an empty drive has no source: {xml}"
        );
        assert!(
            xml.contains("<driver name='qemu' type='raw'/><target dev='sda'"),
            "{xml}"
        );
        assert_eq!(medium_in_config(&run), None);
        let _ = std::fs::remove_dir_all(&run.dir);
    }

    #[test]
    fn the_guests_eject_heard_from_the_helper_empties_the_live_drive() {
        let run = run_dir("watch");
        let listener = std::os::unix::net::UnixListener::bind(run.control()).unwrap();
        let helper = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            s.write_all(b"{\"vireo\":{\"name\":\"m\",\"protocol\":1,\"vmm\":\"0.1.0\"}}\n")
                .unwrap();
            s.write_all(b"{\"data\":{\"id\":\"sda\",\"medium\":null},\"event\":\"medium-changed\",\"timestamp\":{\"microseconds\":1,\"seconds\":2}}\n").unwrap();
        });
        let logged = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let l2 = logged.clone();
        let changes = std::sync::Arc::new(std::sync::Mutex::new(Vec::<DiskChange>::new()));
        let c2 = changes.clone();
        let watcher = watch_media(
            &run,
            move |c| c2.lock().unwrap().push(c),
            move |m| l2.lock().unwrap().push(m.to_owned()),
        )
        .unwrap();
        helper.join().unwrap();
        watcher.join().unwrap();
        assert_eq!(*logged.lock().unwrap(), Vec::<String>::new());
        let xml = std::fs::read_to_string(run.xml()).unwrap();
        assert!(!xml.contains("/a.iso"), "{xml}");
        assert_eq!(
            *changes.lock().unwrap(),
            [DiskChange {
                target: "sda".into(),
                old_source: Some("/a.iso".into()),
                new_source: None,
                reason: DiskChangeReason::GuestEject,
            }]
        );
        let _ = std::fs::remove_dir_all(&run.dir);
    }

    #[test]
    fn a_change_a_client_recorded_is_not_announced_again() {
        let run = run_dir("client");
        let listener = std::os::unix::net::UnixListener::bind(run.control()).unwrap();
        // The client holds the media lock from its command until it has recorded the change.
        let client = FileLock::exclusive(&run.media_lock()).unwrap();
        let (accepted_tx, accepted_rx) = std::sync::mpsc::channel();
        let helper = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            s.write_all(b"{\"vireo\":{\"name\":\"m\",\"protocol\":1,\"vmm\":\"0.1.0\"}}\n")
                .unwrap();
            s.write_all(b"{\"data\":{\"id\":\"sda\",\"medium\":\"/b.iso\"},\"event\":\"medium-changed\",\"timestamp\":{\"microseconds\":1,\"seconds\":2}}\n").unwrap();
            accepted_tx.send(()).unwrap();
        });
        let changes = std::sync::Arc::new(std::sync::Mutex::new(Vec::<DiskChange>::new()));
        let c2 = changes.clone();
        let watcher = watch_media(&run, move |c| c2.lock().unwrap().push(c), |_| {}).unwrap();
        accepted_rx.recv().unwrap();
        // What the client does while the watcher waits for the lock.
        std::thread::sleep(std::time::Duration::from_millis(100));
        assert_eq!(
            set_medium(&run, "sda", Some(Path::new("/b.iso"))).unwrap(),
            Some("/a.iso".into())
        );
        drop(client);
        helper.join().unwrap();
        watcher.join().unwrap();
        assert_eq!(*changes.lock().unwrap(), []);
        assert_eq!(medium_in_config(&run), Some("/b.iso".into()));
        let _ = std::fs::remove_dir_all(&run.dir);
    }
}
