//! Disk image backends (raw files and qcow2 through imago) and image locking.
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
use imago::qcow2::Qcow2;
use imago::{FormatAccess, FormatDriverBuilder, PermissiveImplicitOpenGate};

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
    /// imago refused the qcow2 image.
    #[error("cannot open qcow2 image {path}: {source}")]
    Qcow2 {
        /// The image.
        path: PathBuf,
        /// Cause.
        #[source]
        source: io::Error,
    },
}

/// How to open an image.
#[derive(Clone, Debug)]
pub struct ImageOptions {
    /// Path of the image file.
    pub path: PathBuf,
    /// Format, or `None` to detect from the qcow2 magic.
    pub format: Option<DiskFormat>,
    /// Never write.
    pub read_only: bool,
    /// Other VMs may have it open at the same time.
    pub shareable: bool,
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

/// A qcow2 image through imago's synchronous API (backing files are opened read-only by imago).
pub struct Qcow2Backend {
    access: FormatAccess<ImagoFile>,
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

/// Reads the first bytes to tell qcow2 from raw.
pub fn detect_format(path: &Path) -> Result<DiskFormat, ImageError> {
    let file = File::open(path).map_err(|source| ImageError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    let mut magic = [0u8; 4];
    match file.read_exact_at(&mut magic, 0) {
        Ok(()) if magic == *b"QFI\xfb" => Ok(DiskFormat::Qcow2),
        _ => Ok(DiskFormat::Raw),
    }
}

/// An opened, locked image.
pub struct DiskImage {
    /// The storage.
    pub backend: Box<dyn DiskBackend>,
    /// The format it was opened as.
    pub format: DiskFormat,
    _lock: ImageLock,
}

impl DiskImage {
    /// Locks and opens an image.
    pub fn open(opts: &ImageOptions) -> Result<DiskImage, ImageError> {
        let path = opts.path.as_path();
        let exclusive = !opts.read_only && !opts.shareable;
        let lock = lock_image(path, exclusive)?;
        let format = match opts.format {
            Some(f) => f,
            None => detect_format(path)?,
        };
        let backend: Box<dyn DiskBackend> = match format {
            DiskFormat::Raw => {
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
                let q = Qcow2::<ImagoFile>::builder_path(path)
                    .write(!opts.read_only)
                    .open(PermissiveImplicitOpenGate::default())
                    .map_err(|source| ImageError::Qcow2 {
                        path: path.to_path_buf(),
                        source,
                    })?;
                Box::new(Qcow2Backend {
                    access: FormatAccess::new(q),
                })
            }
        };
        Ok(DiskImage {
            backend,
            format,
            _lock: lock,
        })
    }
}

fn raw_size(file: &File) -> io::Result<u64> {
    use std::io::{Seek, SeekFrom};
    // Seeking to the end works for regular files and block devices alike.
    let mut f = file;
    f.seek(SeekFrom::End(0))
}
