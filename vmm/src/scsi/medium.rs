//! A medium for a SCSI unit: a locked image from the virtio-blk back ends (or any back end, for
//! tests and fuzzing), with the block-level reads the units share.

use std::io;
use std::path::{Path, PathBuf};

use crate::virtio::block::image::{DiskBackend, DiskImage, ImageError, ImageOptions};

use super::{Sense, MAX_TRANSFER_BYTES};

/// Where the bytes are: an opened image keeps its locks for as long as it lives.
enum Store {
    Image(DiskImage),
    Backend(Box<dyn DiskBackend>),
}

/// An image in a drive, or a disk's image: opened (and locked) by [`Medium::open`].
pub struct Medium {
    path: PathBuf,
    store: Store,
    read_only: bool,
}

impl Medium {
    /// Opens and locks `opts.path` as declared. A CD-ROM unit never writes to its medium,
    /// whatever `opts` says; open a CD-ROM's medium with [`Medium::open_cdrom`] so that the
    /// file is opened read-only under a shared lock as well.
    pub fn open(opts: &ImageOptions) -> Result<Medium, ImageError> {
        let image = DiskImage::open(opts)?;
        Ok(Medium {
            path: opts.path.clone(),
            store: Store::Image(image),
            read_only: opts.read_only,
        })
    }

    /// Opens and locks `opts.path` read-only (a shared lock), as a CD-ROM's medium.
    pub fn open_cdrom(opts: &ImageOptions) -> Result<Medium, ImageError> {
        let mut opts = opts.clone();
        opts.read_only = true;
        Medium::open(&opts)
    }

    /// A medium over any back end (tests, fuzzing).
    pub fn from_backend(path: PathBuf, backend: Box<dyn DiskBackend>, read_only: bool) -> Medium {
        Medium {
            path,
            store: Store::Backend(backend),
            read_only,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn read_only(&self) -> bool {
        self.read_only
    }

    fn backend(&mut self) -> &mut dyn DiskBackend {
        match &mut self.store {
            Store::Image(image) => image.backend.as_mut(),
            Store::Backend(backend) => backend.as_mut(),
        }
    }

    pub(super) fn size(&self) -> u64 {
        match &self.store {
            Store::Image(image) => image.backend.size(),
            Store::Backend(backend) => backend.size(),
        }
    }

    /// Whole blocks of `block_size` bytes (a partial last block is not addressable).
    pub(super) fn blocks(&self, block_size: u64) -> u64 {
        self.size() / block_size
    }

    /// Checks that `count` blocks from `lba` lie on the medium (SBC: a transfer of 0 blocks at
    /// the block after the last is in range).
    pub(super) fn check_range(&self, lba: u64, count: u64, block_size: u64) -> Result<(), Sense> {
        match lba.checked_add(count) {
            Some(end) if end <= self.blocks(block_size) => Ok(()),
            _ => Err(Sense::LBA_OUT_OF_RANGE),
        }
    }

    /// Reads `count` blocks at `lba` for the guest, checking the range and the sizes before it
    /// allocates anything.
    pub(super) fn read_blocks(
        &mut self,
        lba: u64,
        count: u64,
        block_size: u64,
        max_in: usize,
    ) -> Result<Vec<u8>, Sense> {
        self.check_range(lba, count, block_size)?;
        let len = transfer_bytes(count, block_size, max_in)?;
        let mut buf = vec![0u8; len];
        // In range, so lba * block_size cannot overflow (it is below the medium's size).
        self.backend()
            .read_at(&mut buf, lba * block_size)
            .map_err(|_| Sense::READ_ERROR)?;
        Ok(buf)
    }

    pub(super) fn write_at(&mut self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.backend().write_at(buf, offset)
    }

    pub(super) fn flush(&mut self) -> io::Result<()> {
        self.backend().flush()
    }

    /// Frees the range so that it reads as zeroes; where the back end cannot free, it writes
    /// the zeroes (the unit promises zeroes after UNMAP).
    pub(super) fn discard(&mut self, offset: u64, len: u64) -> io::Result<()> {
        match self.backend().discard(offset, len) {
            Ok(()) => Ok(()),
            Err(_) => self.backend().write_zeroes(offset, len),
        }
    }

    pub(super) fn write_zeroes(&mut self, offset: u64, len: u64) -> io::Result<()> {
        self.backend().write_zeroes(offset, len)
    }
}

/// The byte length of `count` blocks, refused when it exceeds what one command may move or
/// what the guest has room for.
pub(super) fn transfer_bytes(count: u64, block_size: u64, room: usize) -> Result<usize, Sense> {
    let bytes = count
        .checked_mul(block_size)
        .and_then(|b| usize::try_from(b).ok())
        .ok_or(Sense::INVALID_FIELD)?;
    if bytes > MAX_TRANSFER_BYTES || bytes > room {
        return Err(Sense::INVALID_FIELD);
    }
    Ok(bytes)
}

/// An image held in memory (tests, fuzzing).
pub struct MemoryBackend {
    data: Vec<u8>,
}

impl MemoryBackend {
    pub fn new(data: Vec<u8>) -> MemoryBackend {
        MemoryBackend { data }
    }

    fn range(&self, offset: u64, len: usize) -> io::Result<std::ops::Range<usize>> {
        let start = usize::try_from(offset).map_err(|_| io::ErrorKind::InvalidInput)?;
        let end = start.checked_add(len).ok_or(io::ErrorKind::InvalidInput)?;
        if end > self.data.len() {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        Ok(start..end)
    }
}

impl DiskBackend for MemoryBackend {
    fn size(&self) -> u64 {
        self.data.len() as u64
    }

    fn read_at(&mut self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let r = self.range(offset, buf.len())?;
        buf.copy_from_slice(&self.data[r]);
        Ok(())
    }

    fn write_at(&mut self, buf: &[u8], offset: u64) -> io::Result<()> {
        let r = self.range(offset, buf.len())?;
        self.data[r].copy_from_slice(buf);
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }

    fn discard(&mut self, offset: u64, len: u64) -> io::Result<()> {
        self.write_zeroes(offset, len)
    }

    fn write_zeroes(&mut self, offset: u64, len: u64) -> io::Result<()> {
        let len = usize::try_from(len).map_err(|_| io::ErrorKind::InvalidInput)?;
        let r = self.range(offset, len)?;
        self.data[r].fill(0);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn medium(bytes: usize) -> Medium {
        Medium::from_backend(
            PathBuf::from("mem"),
            Box::new(MemoryBackend::new(vec![7; bytes])),
            false,
        )
    }

    #[test]
    fn ranges_are_checked_in_whole_blocks() {
        let m = medium(512 * 4 + 100);
        assert_eq!(m.blocks(512), 4);
        assert!(m.check_range(0, 4, 512).is_ok());
        assert!(m.check_range(4, 0, 512).is_ok());
        assert_eq!(m.check_range(4, 1, 512), Err(Sense::LBA_OUT_OF_RANGE));
        assert_eq!(
            m.check_range(u64::MAX, 2, 512),
            Err(Sense::LBA_OUT_OF_RANGE)
        );
    }

    #[test]
    fn reads_refuse_more_than_the_guest_has_room_for() {
        let mut m = medium(512 * 4);
        assert_eq!(m.read_blocks(0, 2, 512, 1023), Err(Sense::INVALID_FIELD));
        assert_eq!(m.read_blocks(0, 2, 512, 1024).unwrap(), vec![7; 1024]);
        assert_eq!(
            transfer_bytes(u64::MAX, 512, usize::MAX),
            Err(Sense::INVALID_FIELD)
        );
        assert_eq!(
            transfer_bytes((MAX_TRANSFER_BYTES / 512 + 1) as u64, 512, usize::MAX),
            Err(Sense::INVALID_FIELD)
        );
    }

    #[test]
    fn opening_a_missing_image_fails_with_its_path() {
        let opts = ImageOptions {
            path: PathBuf::from("/nonexistent/vireo-scsi-medium.iso"),
            format: crate::virtio::block::image::DiskFormat::Raw,
            read_only: false,
            shareable: false,
            backing: Vec::new(),
        };
        assert!(matches!(
            Medium::open_cdrom(&opts),
            Err(ImageError::Open { .. })
        ));
    }

    #[test]
    fn cdrom_media_open_read_only_files() {
        let dir = std::env::temp_dir().join(format!("vireo-scsi-medium-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("ro.iso");
        std::fs::write(&path, vec![1u8; 4096]).unwrap();
        let mut perms = std::fs::metadata(&path).unwrap().permissions();
        perms.set_readonly(true);
        std::fs::set_permissions(&path, perms).unwrap();
        let opts = ImageOptions {
            path: path.clone(),
            format: crate::virtio::block::image::DiskFormat::Raw,
            read_only: false,
            shareable: false,
            backing: Vec::new(),
        };
        let mut m = Medium::open_cdrom(&opts).unwrap();
        assert!(m.read_only());
        assert_eq!(m.path(), path);
        assert_eq!(m.read_blocks(1, 1, 2048, 2048).unwrap(), vec![1; 2048]);
        drop(m);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
