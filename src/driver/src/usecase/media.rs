//! CD-ROM media, with virsh's meanings (`change-media`, `domblklist`): insert, eject and
//! replace the medium of a drive in the running machine (`live`), in its definition (`config`),
//! or both; and the list of a machine's drives. Every front end calls these.
//!
//! Everything is checked before anything changes: the image, the drive, the drive's state in
//! each document the change applies to. A live change goes to the helper first (a tray the guest
//! locked refuses there, unless forced) and only then into the live XML; the definition is
//! rewritten through the store, atomically.

use crate::connection::{Connection, DriverError};
use crate::definition::Definition;
use crate::live;
use crate::store::StoreError;
use std::path::{Path, PathBuf};
use vireo_domain::{DiskDevice, DiskType, Domain};
use vireo_vmm_api::control::Command;

/// What to do to the drive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaAction {
    /// Put a medium into an empty drive.
    Insert(PathBuf),
    /// Take the medium out.
    Eject,
    /// Replace the medium whatever the drive holds; `None` ejects.
    Update(Option<PathBuf>),
}

impl MediaAction {
    /// The medium the drive holds afterwards.
    fn medium(&self) -> Option<&Path> {
        match self {
            MediaAction::Insert(p) | MediaAction::Update(Some(p)) => Some(p),
            MediaAction::Eject | MediaAction::Update(None) => None,
        }
    }
}

/// Where the change applies; neither flag is virsh's `--current`: the running machine if it
/// runs, else the definition.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct MediaScope {
    pub live: bool,
    pub config: bool,
}

/// Why a media change was refused; nothing changed.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    #[error(transparent)]
    Driver(#[from] DriverError),
    #[error("domain '{name}' has no disk with target '{target}'")]
    NoSuchTarget { name: String, target: String },
    #[error("disk '{target}' of domain '{name}' is not a CD-ROM drive: only a CD-ROM's medium can be changed")]
    NotCdrom { name: String, target: String },
    #[error("domain '{0}' is not running; use --config to change its definition")]
    NotRunning(String),
    #[error("domain '{0}' is transient: it has no definition to change (use --live)")]
    Transient(String),
    #[error("drive '{target}' already holds {}: eject it first, or use --update", medium.display())]
    Full { target: String, medium: PathBuf },
    #[error("drive '{target}' is empty: there is nothing to eject")]
    Empty { target: String },
    #[error("{}: {reason}", path.display())]
    Image { path: PathBuf, reason: String },
}

/// A drive as `domblklist` lists it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DriveEntry {
    /// `target dev` (`sda`, `vda`).
    pub target: String,
    /// `disk` or `cdrom`.
    pub device: String,
    /// `target bus`; empty when the document leaves it out.
    pub bus: String,
    /// The image; `None` for an empty drive.
    pub source: Option<PathBuf>,
    /// `disk@type`: `file`.
    pub kind: String,
}

/// The disks of `name`: of the running machine (its live XML), or of the definition when it
/// is off or `inactive`.
pub fn drives(
    conn: &Connection,
    name: &str,
    inactive: bool,
) -> Result<Vec<DriveEntry>, MediaError> {
    let dom = Definition::parse(&conn.xml(name, inactive)?).map_err(DriverError::from)?;
    let Some(devices) = dom.dom.devices() else {
        return Ok(Vec::new());
    };
    Ok(devices
        .disks()
        .iter()
        .map(|d| DriveEntry {
            target: d.target_dev().unwrap_or_default(),
            device: d.device().to_string(),
            bus: d.target_bus().map(|b| b.to_string()).unwrap_or_default(),
            source: d.source().map(PathBuf::from),
            kind: d.disk_type().unwrap_or(DiskType::File).to_string(),
        })
        .collect())
}

/// The medium image: an absolute path to a regular file this user can read. Its format is the
/// drive's (raw unless the definition says otherwise), never guessed from the content.
fn check_image(path: &Path) -> Result<(), MediaError> {
    let bad = |reason: String| MediaError::Image {
        path: path.to_owned(),
        reason,
    };
    if !path.is_absolute() {
        return Err(bad("must be an absolute path".into()));
    }
    let meta = std::fs::metadata(path).map_err(|e| bad(io_message(&e)))?;
    if meta.is_dir() {
        return Err(bad("is a directory, not a CD-ROM image".into()));
    }
    if !meta.is_file() {
        return Err(bad("not a regular file".into()));
    }
    std::fs::File::open(path).map_err(|e| bad(io_message(&e)))?;
    Ok(())
}

/// The OS's message without Rust's " (os error N)".
fn io_message(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_owned(),
        None => s,
    }
}

/// Checks that `action` may be done to drive `target` as `dom` describes it.
fn check_drive(
    dom: &Domain,
    name: &str,
    target: &str,
    action: &MediaAction,
) -> Result<(), MediaError> {
    let disk = dom.devices().and_then(|d| {
        d.disks()
            .into_iter()
            .find(|disk| disk.target_dev().as_deref() == Some(target))
            .map(|disk| (disk.device(), disk.source()))
    });
    let Some((device, source)) = disk else {
        return Err(MediaError::NoSuchTarget {
            name: name.to_owned(),
            target: target.to_owned(),
        });
    };
    if device != DiskDevice::Cdrom {
        return Err(MediaError::NotCdrom {
            name: name.to_owned(),
            target: target.to_owned(),
        });
    }
    match (action, source) {
        (MediaAction::Insert(_), Some(medium)) => Err(MediaError::Full {
            target: target.to_owned(),
            medium: medium.into(),
        }),
        (MediaAction::Eject, None) => Err(MediaError::Empty {
            target: target.to_owned(),
        }),
        _ => Ok(()),
    }
}

/// Changes the medium of CD-ROM drive `target` of machine `name` (virsh's `change-media`).
/// `force`: also when the guest locked the tray.
pub fn change_media(
    conn: &Connection,
    name: &str,
    target: &str,
    action: MediaAction,
    force: bool,
    scope: MediaScope,
) -> Result<(), MediaError> {
    if let Some(p) = action.medium() {
        check_image(p)?;
    }
    let info = conn.info(name)?;
    let name = info.name.as_str();
    let running = info.state.is_active();
    let (live, config) = match (scope.live, scope.config) {
        (false, false) => (running, !running),
        both => both,
    };
    if live && !running {
        return Err(MediaError::NotRunning(name.to_owned()));
    }
    let definition = if config {
        match conn.store().lookup(name) {
            Ok(d) => Some(d),
            Err(StoreError::NotFound(_)) => return Err(MediaError::Transient(name.to_owned())),
            Err(e) => return Err(DriverError::from(e).into()),
        }
    } else {
        None
    };
    let running_now = if live {
        let (d, run, _) = conn.running(name)?;
        check_drive(&d.dom, name, target, &action)?;
        Some((d, run))
    } else {
        None
    };
    if let Some(d) = &definition {
        check_drive(&d.dom, name, target, &action)?;
    }
    if let Some((d, run)) = running_now {
        let command = match action.medium() {
            Some(p) => Command::ChangeMedium {
                id: target.to_owned(),
                filename: p.to_owned(),
                format: live::medium_format(&d.dom, target),
                force,
            },
            None if matches!(action, MediaAction::Update(None))
                && check_drive(&d.dom, name, target, &MediaAction::Eject).is_err() =>
            {
                // Updating an empty drive to empty: nothing to tell the helper.
                return finish_config(conn, definition, target, &action);
            }
            None => Command::Eject {
                id: target.to_owned(),
                force,
            },
        };
        conn.control(name, &run, command)?;
        live::set_medium(&run, target, action.medium()).map_err(|e| DriverError::Io {
            path: run.xml(),
            source: std::io::Error::other(e.to_string()),
        })?;
    }
    finish_config(conn, definition, target, &action)
}

/// Writes the new medium into the definition, if the change applies to it.
fn finish_config(
    conn: &Connection,
    definition: Option<Definition>,
    target: &str,
    action: &MediaAction,
) -> Result<(), MediaError> {
    if let Some(mut d) = definition {
        live::set_disk_medium(&mut d.dom, target, action.medium());
        conn.define_xml(&d.to_xml())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
