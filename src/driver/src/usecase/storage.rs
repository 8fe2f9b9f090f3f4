//! Disk images: the one place they are made (`qemu-img create`), the one rule a front end may
//! use to pre-fill a format, and the clean-up of images made for a machine that was not made.
//!
//! The policy: an image to create must not exist. An existing file is neither overwritten nor
//! silently taken over (it may be another machine's disk); the error names the path, and the
//! user attaches it as an existing disk or picks another name. The name is reserved with an
//! exclusive create before `qemu-img` runs, so two creators cannot both take it.

use super::machine::DiskFormat;
use super::place::Place;
use crate::connection::DriverError;
use std::path::{Path, PathBuf};

/// The format a front end may pre-fill for a file the user picked: `qcow2` for a `.qcow2`
/// name (any case), else `raw`. Only the name counts: what a file contains is never read,
/// because a guest can write any header into its raw disk.
pub fn format_for_name(path: &Path) -> DiskFormat {
    match path.extension().and_then(|e| e.to_str()) {
        Some(e) if e.eq_ignore_ascii_case("qcow2") => DiskFormat::Qcow2,
        _ => DiskFormat::Raw,
    }
}

/// Whether a file the user picked as an operating system image is an ISO (a disc for the
/// CD-ROM drive, `.iso` in any case) rather than a disk image to import; as for the format,
/// only the name counts.
pub fn is_iso_name(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("iso"))
}

/// The file name extension of a new image of `format` in the images directory.
pub(crate) fn extension(format: DiskFormat) -> &'static str {
    match format {
        DiskFormat::Raw => "img",
        DiskFormat::Qcow2 => "qcow2",
    }
}

/// Makes an empty image of `size_bytes` at `path`; `place` is the disk's place in the machine,
/// for the error. Refused if `path` exists.
pub(crate) fn create_image(
    path: &Path,
    size_bytes: u64,
    format: DiskFormat,
    place: &Place,
) -> Result<(), DriverError> {
    let io = |source| DriverError::Io {
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|source| DriverError::Io {
            path: dir.to_owned(),
            source,
        })?;
    }
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
    {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(DriverError::ImageExists {
                path: path.to_owned(),
                place: place.clone(),
            })
        }
        Err(e) => return Err(io(e)),
    }
    let failed = |message: String| {
        let _ = std::fs::remove_file(path);
        DriverError::ImageCreate {
            path: path.to_owned(),
            message,
            place: place.clone(),
        }
    };
    let out = std::process::Command::new("qemu-img")
        .args(["create", "-q", "-f", format.as_str()])
        .arg(path)
        .arg(size_bytes.to_string())
        .output()
        .map_err(|e| failed(format!("cannot run qemu-img (package qemu-utils): {e}")))?;
    if !out.status.success() {
        return Err(failed(
            String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        ));
    }
    Ok(())
}

/// Files made for a machine, removed again unless [`Made::keep`] is called.
#[derive(Debug, Default)]
pub(crate) struct Made(Vec<PathBuf>);

impl Made {
    pub(crate) fn push(&mut self, path: PathBuf) {
        self.0.push(path);
    }

    /// The machine exists: its files stay.
    pub(crate) fn keep(mut self) {
        self.0.clear();
    }
}

impl Drop for Made {
    fn drop(&mut self) {
        for p in self.0.drain(..).rev() {
            let _ = std::fs::remove_file(p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("vireo-storage-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn formats_come_from_the_name_never_from_the_content() {
        let d = dir("fmt");
        let q = d.join("a.qcow2");
        std::fs::write(&q, b"QFI\xfb\0\0\0\x03").unwrap();
        let r = d.join("b.img");
        std::fs::write(&r, [0u8; 512]).unwrap();
        // A raw disk whose guest wrote a qcow2 header stays raw.
        let disguised = d.join("c.img");
        std::fs::write(&disguised, b"QFI\xfb\0\0\0\x03").unwrap();
        assert_eq!(format_for_name(&q), DiskFormat::Qcow2);
        assert_eq!(format_for_name(&d.join("D.QCOW2")), DiskFormat::Qcow2);
        assert_eq!(format_for_name(&r), DiskFormat::Raw);
        assert_eq!(format_for_name(&disguised), DiskFormat::Raw);
        assert_eq!(format_for_name(&d.join("missing")), DiskFormat::Raw);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn images_are_made_once_and_never_over_a_file() {
        let d = dir("mk");
        let place = Place::new("domain/devices/disk/source", Some("file"));
        let p = d.join("sub/n.qcow2");
        create_image(&p, 1 << 20, DiskFormat::Qcow2, &place).expect("qemu-img (qemu-utils)");
        let head = std::fs::read(&p).unwrap();
        assert_eq!(&head[..4], b"QFI\xfb");
        let e = create_image(&p, 1 << 20, DiskFormat::Raw, &place).unwrap_err();
        assert!(
            matches!(&e, DriverError::ImageExists { path, .. } if path == &p),
            "{e}"
        );
        assert!(e.to_string().contains(&p.display().to_string()), "{e}");
        assert_eq!(
            std::fs::read(&p).unwrap(),
            head,
            "the existing file changed"
        );
        // A failed qemu-img leaves nothing behind.
        let bad = d.join("odd.qcow2");
        let e = create_image(&bad, u64::MAX, DiskFormat::Qcow2, &place).unwrap_err();
        assert!(matches!(e, DriverError::ImageCreate { .. }), "{e}");
        assert!(!bad.exists());
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn made_files_go_unless_kept() {
        let d = dir("made");
        let (a, b) = (d.join("a"), d.join("b"));
        std::fs::write(&a, b"").unwrap();
        std::fs::write(&b, b"").unwrap();
        let mut m = Made::default();
        m.push(a.clone());
        drop(m);
        assert!(!a.exists());
        let mut m = Made::default();
        m.push(b.clone());
        m.keep();
        assert!(b.exists());
        let _ = std::fs::remove_dir_all(&d);
    }
}
