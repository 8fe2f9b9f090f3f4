//! The control socket's side of the SCSI units: `query-block`, `change-medium` and `eject`.
//!
//! These run on the control (main) thread, the only one whose seccomp filter lets a file be
//! opened: a new medium is opened and locked there, in the format the command names (never
//! one read from the file), and only then handed to the drive, between two guest commands.

use std::path::{Path, PathBuf};

use vireo_vmm_api::config::DiskFormat;
use vireo_vmm_api::control::{BlockInfo, DriveInfo};

use super::{lock, SharedBus};
use crate::scsi::{LogicalUnit, MediaError, Medium};
use crate::virtio::block::image::{DiskFormat as ImageFormat, ImageError, ImageOptions};

/// Every SCSI unit of the machine, by controller; cheap to clone. Without controllers it
/// lists nothing and knows no drive.
#[derive(Clone, Default)]
pub struct Drives {
    buses: Vec<SharedBus>,
}

/// Why a media command was refused: one line each, naming the drive or the file.
#[derive(Debug, thiserror::Error)]
pub enum MediaCommandError {
    #[error("no drive `{0}` on this machine")]
    NoSuchDrive(String),
    #[error("`{0}` is a disk, not a CD-ROM drive")]
    NotCdrom(String),
    #[error("the guest has locked the tray of `{0}`; use force to take the medium out anyway")]
    Locked(String),
    #[error("`{0}` is already empty")]
    AlreadyEmpty(String),
    #[error("{0}: the image must be given by an absolute path")]
    Relative(PathBuf),
    #[error("{0}: no such file")]
    Missing(PathBuf),
    #[error("{0}: is a directory, not an image")]
    Directory(PathBuf),
    #[error("{0}: not a regular file or block device")]
    NotAFile(PathBuf),
    #[error("{path}: not readable: {source}")]
    Unreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Image(ImageError),
}

impl Drives {
    pub fn new(buses: Vec<SharedBus>) -> Drives {
        Drives { buses }
    }

    /// `query-block`: every unit of every controller, in config order.
    pub fn query(&self) -> BlockInfo {
        let drives: Vec<DriveInfo> = self.buses.iter().flat_map(|b| lock(b).info()).collect();
        BlockInfo { drives }
    }

    /// Runs `f` on drive `id` under its controller's lock.
    fn with_unit<T>(
        &self,
        id: &str,
        f: impl FnOnce(&mut LogicalUnit) -> T,
    ) -> Result<T, MediaCommandError> {
        for b in &self.buses {
            let mut bus = lock(b);
            if let Some(u) = bus.unit_by_id(id) {
                return Ok(f(u));
            }
        }
        Err(MediaCommandError::NoSuchDrive(id.to_owned()))
    }

    fn cdrom(&self, id: &str) -> Result<(), MediaCommandError> {
        if self.with_unit(id, |u| u.info().cdrom)? {
            Ok(())
        } else {
            Err(MediaCommandError::NotCdrom(id.to_owned()))
        }
    }

    /// `change-medium`: opens `filename` as `format` (read-only) and puts it into CD-ROM
    /// drive `id`. Returns the medium's path, for the `medium-changed` event.
    pub fn change_medium(
        &self,
        id: &str,
        filename: &Path,
        format: DiskFormat,
        force: bool,
    ) -> Result<PathBuf, MediaCommandError> {
        self.cdrom(id)?;
        let medium = open_medium(filename, format)?;
        self.with_unit(id, |u| u.change_medium(medium, force))?
            .map_err(|e| media_error(id, e))?;
        Ok(filename.to_path_buf())
    }

    /// `eject`: takes the medium out of CD-ROM drive `id`.
    pub fn eject(&self, id: &str, force: bool) -> Result<(), MediaCommandError> {
        self.cdrom(id)?;
        self.with_unit(id, |u| u.eject(force))?
            .map_err(|e| media_error(id, e))
    }
}

fn media_error(id: &str, e: MediaError) -> MediaCommandError {
    let id = id.to_owned();
    match e {
        MediaError::Locked => MediaCommandError::Locked(id),
        MediaError::NotRemovable => MediaCommandError::NotCdrom(id),
        MediaError::AlreadyEmpty => MediaCommandError::AlreadyEmpty(id),
    }
}

/// Checks `path` names something a disc image can be read from, then opens and locks it.
/// A FIFO or a socket would block the control loop in open(2): only regular files and block
/// devices (a host's own drive) get that far.
fn open_medium(path: &Path, format: DiskFormat) -> Result<Medium, MediaCommandError> {
    if !path.is_absolute() {
        return Err(MediaCommandError::Relative(path.to_path_buf()));
    }
    let meta = std::fs::metadata(path).map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound => MediaCommandError::Missing(path.to_path_buf()),
        _ => MediaCommandError::Unreadable {
            path: path.to_path_buf(),
            source,
        },
    })?;
    let ft = meta.file_type();
    if ft.is_dir() {
        return Err(MediaCommandError::Directory(path.to_path_buf()));
    }
    if !ft.is_file() && !std::os::unix::fs::FileTypeExt::is_block_device(&ft) {
        return Err(MediaCommandError::NotAFile(path.to_path_buf()));
    }
    let opts = ImageOptions {
        path: path.to_path_buf(),
        format: match format {
            DiskFormat::Raw => ImageFormat::Raw,
            DiskFormat::Qcow2 => ImageFormat::Qcow2,
        },
        read_only: true,
        shareable: false,
        backing: Vec::new(),
    };
    Medium::open(&opts).map_err(|e| match e {
        ImageError::Open { path, source }
            if source.kind() == std::io::ErrorKind::PermissionDenied =>
        {
            MediaCommandError::Unreadable { path, source }
        }
        other => MediaCommandError::Image(other),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::virtio::scsi::bus::{BusUnit, ScsiBus};
    use crate::virtio::scsi::tests::{MemDisk, Scratch};
    use std::sync::{Arc, Mutex};

    fn drives(dir: &Path) -> Drives {
        let disk =
            Medium::from_backend(dir.join("disk.img"), Box::new(MemDisk::new(1 << 20)), false);
        let units = vec![
            BusUnit {
                id: "sda".into(),
                target: 0,
                lun: 0,
                unit: LogicalUnit::cdrom(None),
            },
            BusUnit {
                id: "sdb".into(),
                target: 0,
                lun: 1,
                unit: LogicalUnit::disk(disk),
            },
        ];
        Drives::new(vec![
            Arc::new(Mutex::new(ScsiBus::default())),
            Arc::new(Mutex::new(ScsiBus::new(units))),
        ])
    }

    fn iso(dir: &Path, name: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, vec![0u8; 64 * 2048]).unwrap();
        p
    }

    #[test]
    fn media_go_in_and_out_and_query_block_shows_them() {
        let dir = Scratch::new("media");
        let d = drives(dir.path());
        let a = iso(dir.path(), "a.iso");
        let q = d.query();
        assert_eq!(q.drives.len(), 2);
        assert_eq!((q.drives[0].id.as_str(), q.drives[0].cdrom), ("sda", true));
        assert_eq!(q.drives[0].medium, None);
        assert_eq!((q.drives[1].id.as_str(), q.drives[1].cdrom), ("sdb", false));
        assert_eq!(
            d.change_medium("sda", &a, DiskFormat::Raw, false).unwrap(),
            a
        );
        assert_eq!(d.query().drives[0].medium, Some(a.clone()));
        let b = iso(dir.path(), "b.iso");
        d.change_medium("sda", &b, DiskFormat::Raw, false).unwrap();
        assert_eq!(d.query().drives[0].medium, Some(b));
        d.eject("sda", false).unwrap();
        assert_eq!(d.query().drives[0].medium, None);
        assert!(matches!(
            d.eject("sda", false),
            Err(MediaCommandError::AlreadyEmpty(_))
        ));
    }

    #[test]
    fn each_refusal_is_one_clear_line() {
        let dir = Scratch::new("media");
        let d = drives(dir.path());
        let a = iso(dir.path(), "a.iso");
        let msg = |r: Result<PathBuf, MediaCommandError>| r.unwrap_err().to_string();
        assert_eq!(
            msg(d.change_medium("sdz", &a, DiskFormat::Raw, false)),
            "no drive `sdz` on this machine"
        );
        assert_eq!(
            msg(d.change_medium("sdb", &a, DiskFormat::Raw, false)),
            "`sdb` is a disk, not a CD-ROM drive"
        );
        assert_eq!(
            d.eject("sdb", true).unwrap_err().to_string(),
            "`sdb` is a disk, not a CD-ROM drive"
        );
        let missing = dir.path().join("nope.iso");
        assert_eq!(
            msg(d.change_medium("sda", &missing, DiskFormat::Raw, false)),
            format!("{}: no such file", missing.display())
        );
        assert_eq!(
            msg(d.change_medium("sda", dir.path(), DiskFormat::Raw, false)),
            format!("{}: is a directory, not an image", dir.path().display())
        );
        assert_eq!(
            msg(d.change_medium("sda", Path::new("a.iso"), DiskFormat::Raw, false)),
            "a.iso: the image must be given by an absolute path"
        );
        // The format is the command's: a raw file named qcow2 is refused, not guessed.
        let e = msg(d.change_medium("sda", &a, DiskFormat::Qcow2, false));
        assert!(e.contains("qcow2"), "{e}");
        assert!(!e.contains('\n'), "{e}");
        // Nothing changed through all of that.
        assert_eq!(d.query().drives[0].medium, None);
        // A machine without SCSI controllers knows no drive.
        let none = Drives::default();
        assert!(none.query().drives.is_empty());
        assert_eq!(
            none.eject("sda", false).unwrap_err().to_string(),
            "no drive `sda` on this machine"
        );
    }

    #[test]
    fn an_unreadable_image_is_said_to_be_so() {
        // Root reads anything: the check only means something as another user.
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            return;
        }
        use std::os::unix::fs::PermissionsExt;
        let dir = Scratch::new("media");
        let d = drives(dir.path());
        let a = iso(dir.path(), "a.iso");
        std::fs::set_permissions(&a, std::fs::Permissions::from_mode(0o000)).unwrap();
        let e = d
            .change_medium("sda", &a, DiskFormat::Raw, false)
            .unwrap_err();
        assert!(matches!(e, MediaCommandError::Unreadable { .. }), "{e}");
    }
}
