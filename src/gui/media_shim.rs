//! A stand-in for the driver's media use case (`vireo_driver::usecase::media`) with its names,
//! so the GUI can be built and tested before the driver's lands: it changes the stored
//! definition of a machine that is off, and nothing else. Removed when the driver's is merged.
#![allow(dead_code)] // the driver's use case has more than the GUI calls

use std::path::PathBuf;
use vireo_driver::domain::{DiskDevice, Domain};
use vireo_driver::usecase;
use vireo_driver::{Connection, DriverError};

#[derive(Debug, Clone)]
pub enum MediaAction {
    Insert(PathBuf),
    Eject,
    Update(Option<PathBuf>),
}

#[derive(Debug, Default, Clone, Copy)]
pub struct MediaScope {
    pub live: bool,
    pub config: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    #[error(transparent)]
    Driver(#[from] DriverError),
    #[error("{0}")]
    Refused(String),
    #[error("the guest has locked the tray of {0}")]
    TrayLocked(String),
}

#[derive(Debug, Clone)]
pub struct DriveEntry {
    pub target: String,
    pub device: String,
    pub bus: String,
    pub source: Option<PathBuf>,
    pub kind: String,
}

pub fn change_media(
    conn: &Connection,
    name: &str,
    target: &str,
    action: MediaAction,
    _force: bool,
    scope: MediaScope,
) -> Result<(), MediaError> {
    if scope.live {
        return Err(MediaError::Refused(
            "changing the media of a running machine needs the driver's media support".into(),
        ));
    }
    let source = match action {
        MediaAction::Insert(p) | MediaAction::Update(Some(p)) => {
            if !p.is_file() {
                return Err(MediaError::Refused(format!("{}: not a file", p.display())));
            }
            Some(p)
        }
        MediaAction::Eject | MediaAction::Update(None) => None,
    };
    let target = target.to_owned();
    usecase::edit(conn, name, move |d: &mut Domain| {
        let index = d
            .devices()
            .map(|devs| devs.disks())
            .unwrap_or_default()
            .iter()
            .position(|disk| disk.target_dev().as_deref() == Some(target.as_str()))
            .ok_or_else(|| MediaError::Refused(format!("no drive {target}")))?;
        let mut devices = d.devices_mut();
        let mut disk = devices
            .disk_mut(index)
            .ok_or_else(|| MediaError::Refused(format!("no drive {target}")))?;
        if disk.device() != DiskDevice::Cdrom {
            return Err(MediaError::Refused(format!(
                "{target} is not a CD-ROM drive"
            )));
        }
        disk.set_source(source.as_deref().and_then(|p| p.to_str()));
        Ok(())
    })?;
    Ok(())
}

pub fn drives(
    conn: &Connection,
    name: &str,
    inactive: bool,
) -> Result<Vec<DriveEntry>, DriverError> {
    let xml = conn.xml(name, inactive)?;
    let dom = Domain::parse(&xml).map_err(|e| vireo_driver::domain::Errors(vec![e]))?;
    let disks = dom.devices().map(|d| d.disks()).unwrap_or_default();
    Ok(disks
        .iter()
        .map(|disk| DriveEntry {
            target: disk.target_dev().unwrap_or_default(),
            device: disk.device().as_str().to_owned(),
            bus: disk.target_bus().map(|b| b.to_string()).unwrap_or_default(),
            source: disk.source().map(PathBuf::from),
            kind: "file".into(),
        })
        .collect())
}
