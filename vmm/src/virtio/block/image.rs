//! Disk image backends (raw files and qcow2 through imago) and image locking.
//!
//! The format of every image, and of every layer of its backing chain, is the one the caller
//! declares: nothing here looks at an image's bytes to guess it. What a qcow2 header names (a
//! backing file, an external data file) is never opened on the header's word; see
//! [`super::chain`].
//!
//! Locking follows QEMU's idea with open-file-description locks (F_OFD_SETLK), which conflict
//! between any two opens, in this process or another: a writable, non-shareable disk takes a
//! write lock on the whole file; a shareable or read-only disk takes a read lock. So two running
//! VMs can use one image only when neither wants it exclusively, and a read-only user blocks an
//! exclusive writer (and the reverse). The whole-file range also covers the bytes QEMU locks, so
//! a QEMU holding the image conflicts with us the same way.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use imago::file::File as ImagoFile;
use imago::FormatAccess;

use super::chain;

/// The on-disk format of an image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiskFormat {
    /// A plain file (or an ISO), byte for byte.
    Raw,
    /// QEMU copy-on-write v2/v3.
    Qcow2,
}

/// Errors opening an image.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// open(2) or stat failed.
    #[error("cannot open disk image {path}: {source}")]
    Open {
        /// The image.
        path: PathBuf,
        /// Cause.
        #[source]
        source: io::Error,
    },
    /// Another open (this VM or another process) holds a conflicting lock.
    #[error("disk image {path} is in use by another virtual machine (or process); mark both disks shareable to allow this")]
    Locked {
        /// The image.
        path: PathBuf,
    },
    /// fcntl failed for another reason.
    #[error("cannot lock disk image {path}: {source}")]
    Lock {
        /// The image.
        path: PathBuf,
        /// Cause.
        #[source]
        source: io::Error,
    },
    /// imago refused the qcow2 image (imago's words can quote the header: kept on one line).
    #[error("cannot open qcow2 image {path}: {}", one_line(&.source.to_string()))]
    Qcow2 {
        /// The image.
        path: PathBuf,
        /// Cause.
        #[source]
        source: io::Error,
    },
    /// imago's qcow2 reader panicked on the image (a crafted or damaged header).
    #[error(
        "cannot open qcow2 image {path}: its header made the qcow2 reader fail ({})",
        one_line(.message)
    )]
    Qcow2Reader {
        /// The image.
        path: PathBuf,
        /// What the reader said.
        message: String,
    },
    /// The header names a backing file the definition does not declare.
    #[error(
        "disk image {path}: its qcow2 header names the backing file {}, which the machine's \
         definition does not declare, and Vireo opens no file just because an image names it: \
         if you trust that file, declare it in the disk's definition as <backingStore \
         type='file'><format type='{}'/><source file='{}'/></backingStore>",
        named_file(.named, .resolved, .format.as_deref()),
        suggested_format(.format.as_deref()), one_line(&.resolved.to_string_lossy())
    )]
    UndeclaredBacking {
        /// The image whose header names it.
        path: PathBuf,
        /// The name as the header spells it.
        named: String,
        /// Where that name points, relative to the image's directory.
        resolved: PathBuf,
        /// The backing format the header gives, if any.
        format: Option<String>,
    },
    /// The header asks for an external data file; those are never opened.
    #[error(
        "disk image {path}: its qcow2 header asks for the external data file {}, which Vireo \
         never opens (the guest would read and write that file); if you trust the image and \
         that file, make a self-contained copy with `qemu-img convert -O qcow2 {path} COPY.qcow2` \
         and use the copy",
        .named.as_deref().map_or("(unnamed)".into(), |n| format!("\"{}\"", one_line(n)))
    )]
    ExternalDataFile {
        /// The image.
        path: PathBuf,
        /// The data file's name as the header spells it.
        named: Option<String>,
    },
    /// The definition declares a backing file, the image's header names none.
    #[error(
        "disk image {path}: the machine's definition declares the backing file {declared}, but \
         the image's qcow2 header names no backing file; remove that <backingStore> from the \
         disk's definition (or write an empty <backingStore/>)"
    )]
    BackingNotInImage {
        /// The image.
        path: PathBuf,
        /// The declared backing file.
        declared: PathBuf,
    },
    /// A raw image has no header and so no backing file.
    #[error(
        "disk image {path} is raw, which cannot have a backing file, but the machine's \
         definition declares {declared} as its backing file"
    )]
    RawWithBacking {
        /// The raw image.
        path: PathBuf,
        /// The declared backing file.
        declared: PathBuf,
    },
    /// A layer of the declared backing chain could not be opened.
    #[error("backing file of {path}: {source}")]
    Backing {
        /// The image whose backing layer failed.
        path: PathBuf,
        /// Cause.
        #[source]
        source: Box<ImageError>,
    },
}

/// `s` with control characters escaped, so that text from an image header stays on one line.
pub(crate) fn one_line(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// `"name"`, then where it points when that differs, and the format the header gives.
fn named_file(named: &str, resolved: &Path, format: Option<&str>) -> String {
    let mut out = format!("\"{}\" (", one_line(named));
    if Path::new(named) != resolved {
        out.push_str(&format!("{}, ", one_line(&resolved.to_string_lossy())));
    }
    match format {
        Some(f) => out.push_str(&format!("format {})", one_line(f))),
        None => out.push_str("no format given)"),
    }
    out
}

fn suggested_format(header: Option<&str>) -> &'static str {
    match header {
        Some("qcow2") => "qcow2",
        Some("raw") => "raw",
        _ => "raw or qcow2",
    }
}

/// How to open an image.
#[derive(Clone, Debug)]
pub struct ImageOptions {
    /// Path of the image file.
    pub path: PathBuf,
    /// Format, as declared (never detected).
    pub format: DiskFormat,
    /// Never write.
    pub read_only: bool,
    /// Other VMs may have it open at the same time.
    pub shareable: bool,
    /// The declared backing chain, nearest layer first; empty means the image must have none.
    pub backing: Vec<BackingLayer>,
}

/// One declared layer of a backing chain: opened read-only, under a shared lock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackingLayer {
    /// Path of the layer's file.
    pub path: PathBuf,
    /// Its format, as declared.
    pub format: DiskFormat,
}

/// Storage operations the block device needs.
pub trait DiskBackend: Send {
    /// Virtual disk size in bytes.
    fn size(&self) -> u64;
    /// Reads exactly `buf.len()` bytes at `offset`.
    fn read_at(&mut self, buf: &mut [u8], offset: u64) -> io::Result<()>;
    /// Writes all of `buf` at `offset`.
    fn write_at(&mut self, buf: &[u8], offset: u64) -> io::Result<()>;
    /// Makes completed writes durable.
    fn flush(&mut self) -> io::Result<()>;
    /// Frees the range; it then reads as zeroes.
    fn discard(&mut self, offset: u64, len: u64) -> io::Result<()>;
    /// Makes the range read as zeroes.
    fn write_zeroes(&mut self, offset: u64, len: u64) -> io::Result<()>;
}

/// A raw image file.
pub struct RawBackend {
    file: File,
    size: u64,
}

impl DiskBackend for RawBackend {
    fn size(&self) -> u64 {
        self.size
    }

    fn read_at(&mut self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.file.read_exact_at(buf, offset)
    }

    fn write_at(&mut self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.file.write_all_at(buf, offset)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.sync_data()
    }

    fn discard(&mut self, offset: u64, len: u64) -> io::Result<()> {
        fallocate(
            &self.file,
            libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
            offset,
            len,
        )
    }

    fn write_zeroes(&mut self, offset: u64, len: u64) -> io::Result<()> {
        match fallocate(
            &self.file,
            libc::FALLOC_FL_ZERO_RANGE | libc::FALLOC_FL_KEEP_SIZE,
            offset,
            len,
        ) {
            Ok(()) => Ok(()),
            Err(_) => {
                // Not every filesystem zeroes ranges; write the zeroes ourselves.
                let chunk = vec![0u8; 1 << 20];
                let mut done = 0u64;
                while done < len {
                    let n = (len - done).min(chunk.len() as u64) as usize;
                    self.file.write_all_at(&chunk[..n], offset + done)?;
                    done += n as u64;
                }
                Ok(())
            }
        }
    }
}

fn fallocate(file: &File, mode: i32, offset: u64, len: u64) -> io::Result<()> {
    let off = i64::try_from(offset).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let len = i64::try_from(len).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: plain syscall on an fd we own; no memory is passed.
    let r = unsafe { libc::fallocate(file.as_raw_fd(), mode, off, len) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// A qcow2 image through imago's synchronous API, with its declared backing chain.
pub struct Qcow2Backend {
    pub(super) access: FormatAccess<ImagoFile>,
}

impl DiskBackend for Qcow2Backend {
    fn size(&self) -> u64 {
        self.access.size()
    }

    fn read_at(&mut self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.access.read(buf, offset)
    }

    fn write_at(&mut self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.access.write(buf, offset)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.access.flush()?;
        self.access.sync()
    }

    fn discard(&mut self, offset: u64, len: u64) -> io::Result<()> {
        self.access.discard_to_zero(offset, len)
    }

    fn write_zeroes(&mut self, offset: u64, len: u64) -> io::Result<()> {
        self.access.write_zeroes(offset, len)
    }
}

/// An OFD lock held for as long as this value lives.
pub struct ImageLock {
    _file: File,
}

/// Takes the lock described in the module documentation.
pub fn lock_image(path: &Path, exclusive: bool) -> Result<ImageLock, ImageError> {
    let file = OpenOptions::new()
        .read(true)
        .write(exclusive)
        .open(path)
        .map_err(|source| ImageError::Open {
            path: path.to_path_buf(),
            source,
        })?;
    // SAFETY: flock is plain data; zeroed is a valid value.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = if exclusive {
        libc::F_WRLCK as i16
    } else {
        libc::F_RDLCK as i16
    };
    fl.l_whence = libc::SEEK_SET as i16;
    fl.l_start = 0;
    fl.l_len = 0;
    // SAFETY: valid fd and a pointer to a live flock.
    let r = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_SETLK, &fl) };
    if r < 0 {
        let e = io::Error::last_os_error();
        return Err(match e.raw_os_error() {
            Some(libc::EAGAIN) | Some(libc::EACCES) => ImageError::Locked {
                path: path.to_path_buf(),
            },
            _ => ImageError::Lock {
                path: path.to_path_buf(),
                source: e,
            },
        });
    }
    Ok(ImageLock { _file: file })
}

/// An opened, locked image.
pub struct DiskImage {
    /// The storage.
    pub backend: Box<dyn DiskBackend>,
    /// The format it was opened as.
    pub format: DiskFormat,
    _lock: ImageLock,
    /// Shared locks on the backing layers, held as long as the image is open.
    _backing_locks: Vec<ImageLock>,
}

impl DiskImage {
    /// Locks and opens an image and its declared backing chain.
    pub fn open(opts: &ImageOptions) -> Result<DiskImage, ImageError> {
        let path = opts.path.as_path();
        let exclusive = !opts.read_only && !opts.shareable;
        let lock = lock_image(path, exclusive)?;
        let mut backing_locks = Vec::new();
        let backend: Box<dyn DiskBackend> = match opts.format {
            DiskFormat::Raw => {
                if let Some(b) = opts.backing.first() {
                    return Err(ImageError::RawWithBacking {
                        path: path.to_path_buf(),
                        declared: b.path.clone(),
                    });
                }
                let file = OpenOptions::new()
                    .read(true)
                    .write(!opts.read_only)
                    .open(path)
                    .map_err(|source| ImageError::Open {
                        path: path.to_path_buf(),
                        source,
                    })?;
                let size = raw_size(&file).map_err(|source| ImageError::Open {
                    path: path.to_path_buf(),
                    source,
                })?;
                Box::new(RawBackend { file, size })
            }
            DiskFormat::Qcow2 => {
                let q =
                    chain::open_qcow2(path, !opts.read_only, &opts.backing, &mut backing_locks)?;
                Box::new(Qcow2Backend {
                    access: FormatAccess::new(q),
                })
            }
        };
        Ok(DiskImage {
            backend,
            format: opts.format,
            _lock: lock,
            _backing_locks: backing_locks,
        })
    }
}

fn raw_size(file: &File) -> io::Result<u64> {
    use std::io::{Seek, SeekFrom};
    // Seeking to the end works for regular files and block devices alike.
    let mut f = file;
    f.seek(SeekFrom::End(0))
}
