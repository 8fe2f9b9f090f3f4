//! qcow2 images and their backing chains, opened only as the machine's definition declares.
//!
//! A qcow2 header is written by whoever made the image, and a downloaded image is made by anyone:
//! it can name a backing file or an external data file anywhere on the host (a private key as
//! the backing file, a shell profile as a read-write data file). imago would open those
//! implicitly. Here nothing is opened on the header's word: the header's references are only
//! compared with the declared chain, every declared layer is opened by us with its declared
//! format, read-only and under a shared lock, and imago gets `DenyImplicitOpenGate` as a safety
//! net. This is libvirt's rule: never probe, follow only what the definition says.
//!
//! External data files are refused even when declared: the guest would write to a second file
//! whose name only the header gives, and a self-contained copy (`qemu-img convert`) serves the
//! rare image that has one.

use std::io;
use std::path::{Path, PathBuf};

use imago::file::File as ImagoFile;
use imago::qcow2::Qcow2;
use imago::raw::Raw;
use imago::{DenyImplicitOpenGate, FormatAccess, FormatDriverBuilder, Storage, StorageOpenOptions};

use super::image::{lock_image, BackingLayer, DiskFormat, ImageError, ImageLock};

/// Opens the qcow2 image at `path` (read-write if `writable`) on top of the declared `chain`.
/// The locks of the backing layers are pushed to `locks`.
pub(super) fn open_qcow2(
    path: &Path,
    writable: bool,
    chain: &[BackingLayer],
    locks: &mut Vec<ImageLock>,
) -> Result<Qcow2<ImagoFile>, ImageError> {
    if writable {
        // A writable open already rewrites the header (imago clears the autoclear bits, which
        // include "raw external data"): an image that is refused must come out unchanged.
        let inspected = read_qcow2(path, open_file(path, false)?, false)?;
        check_references(path, &inspected, chain)?;
    }
    let mut q = read_qcow2(path, open_file(path, writable)?, writable)?;
    check_references(path, &q, chain)?;
    let backing = match chain.split_first() {
        None => None,
        Some((layer, rest)) => {
            Some(
                open_layer(layer, rest, locks).map_err(|source| ImageError::Backing {
                    path: path.to_path_buf(),
                    source: Box::new(source),
                })?,
            )
        }
    };
    q.set_backing(backing);
    q.set_data_file(None);
    // Both references are set, so this opens nothing; were one forgotten, it would fail here
    // instead of opening what the header names.
    q.open_implicit_dependencies_gated(DenyImplicitOpenGate::default())
        .map_err(qcow2_error(path))?;
    Ok(q)
}

/// Reads the header and tables of `file` through imago. imago's parser can panic on a crafted
/// header (0.2.6 does on a feature name table whose length leaves a one-byte entry); nothing of
/// the half-read image outlives the unwind, so such an image is refused like any unreadable one.
fn read_qcow2(
    path: &Path,
    file: ImagoFile,
    writable: bool,
) -> Result<Qcow2<ImagoFile>, ImageError> {
    // The VMM's panic hook ends the process on any panic; this one is a refusal.
    match crate::lifecycle::contain_panic(|| Qcow2::<ImagoFile>::open_image(file, writable)) {
        Ok(opened) => opened.map_err(qcow2_error(path)),
        Err(message) => Err(ImageError::Qcow2Reader {
            path: path.to_path_buf(),
            message,
        }),
    }
}

/// Opens one declared backing layer read-only, with the rest of the chain below it.
fn open_layer(
    layer: &BackingLayer,
    rest: &[BackingLayer],
    locks: &mut Vec<ImageLock>,
) -> Result<FormatAccess<ImagoFile>, ImageError> {
    locks.push(lock_image(&layer.path, false)?);
    match layer.format {
        DiskFormat::Raw => {
            if let Some(below) = rest.first() {
                return Err(ImageError::RawWithBacking {
                    path: layer.path.clone(),
                    declared: below.path.clone(),
                });
            }
            let raw = Raw::builder(open_file(&layer.path, false)?)
                .write(false)
                .open(DenyImplicitOpenGate::default())
                .map_err(|source| ImageError::Open {
                    path: layer.path.clone(),
                    source,
                })?;
            Ok(FormatAccess::new(raw))
        }
        DiskFormat::Qcow2 => Ok(FormatAccess::new(open_qcow2(
            &layer.path,
            false,
            rest,
            locks,
        )?)),
    }
}

/// Refuses an image whose header references anything the declaration does not match.
fn check_references(
    path: &Path,
    q: &Qcow2<ImagoFile>,
    chain: &[BackingLayer],
) -> Result<(), ImageError> {
    if q.requires_external_data_file() {
        return Err(ImageError::ExternalDataFile {
            path: path.to_path_buf(),
            named: q.implicit_external_data_file().cloned(),
        });
    }
    match (q.implicit_backing_file(), chain.first()) {
        (Some(named), None) => Err(ImageError::UndeclaredBacking {
            path: path.to_path_buf(),
            named: named.clone(),
            resolved: resolve(path, named),
            format: q.implicit_backing_format().cloned(),
        }),
        (None, Some(declared)) => Err(ImageError::BackingNotInImage {
            path: path.to_path_buf(),
            declared: declared.path.clone(),
        }),
        _ => Ok(()),
    }
}

/// Where a header's relative name points (for the message only: nothing is opened there).
fn resolve(image: &Path, named: &str) -> PathBuf {
    let n = Path::new(named);
    if n.is_absolute() {
        return n.to_path_buf();
    }
    image.parent().unwrap_or(Path::new("")).join(n)
}

fn open_file(path: &Path, writable: bool) -> Result<ImagoFile, ImageError> {
    ImagoFile::open(StorageOpenOptions::new().filename(path).write(writable)).map_err(|source| {
        ImageError::Open {
            path: path.to_path_buf(),
            source,
        }
    })
}

fn qcow2_error(path: &Path) -> impl Fn(io::Error) -> ImageError + '_ {
    move |source| ImageError::Qcow2 {
        path: path.to_path_buf(),
        source,
    }
}
