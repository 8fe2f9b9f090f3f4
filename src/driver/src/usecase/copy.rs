//! Copying one image file for a clone: a sparse byte copy (holes and all-zero blocks stay
//! holes) into a file made for it, with progress and cancellation, under a shared lock on the
//! source so that the original cannot start writing to it meanwhile.
//!
//! The copy never interprets the image: raw or qcow2 alike, the bytes are the image. The only
//! header ever read is a declared qcow2's backing-file name ([`qcow2_backing_name`]), and only
//! to refuse a copy that would lose it; no path read from an image is ever opened.

use std::fs::File;
use std::io;
use std::ops::ControlFlow;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// Bytes read (and compared with zeros) at a time.
const CHUNK: usize = 1 << 20;

/// Why a copy stopped.
#[derive(Debug)]
pub(crate) enum CopyError {
    /// Reading the source.
    Read(io::Error),
    /// Writing the destination.
    Write(io::Error),
    /// The progress callback asked to stop.
    Cancelled,
}

/// Takes a shared OFD lock on `file` for as long as it stays open: the VMM takes an exclusive
/// one on a writable disk, so a running original makes this fail (`Ok(false)`), and an original
/// started during the copy fails to lock its disk instead of writing under our feet.
pub(crate) fn lock_shared(file: &File) -> io::Result<bool> {
    // SAFETY: flock is plain data; all zeros is a valid value.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = libc::F_RDLCK as i16;
    fl.l_whence = libc::SEEK_SET as i16;
    // SAFETY: a valid descriptor and a pointer to a live flock.
    let r = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_SETLK, &fl) };
    if r == 0 {
        return Ok(true);
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EAGAIN) | Some(libc::EACCES) => Ok(false),
        _ => Err(e),
    }
}

/// `lseek` with SEEK_DATA/SEEK_HOLE; `None` past the last data (ENXIO).
fn seek(file: &File, offset: u64, whence: i32) -> Result<Option<u64>, io::Error> {
    let off = i64::try_from(offset).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: plain syscall on a descriptor we own.
    let r = unsafe { libc::lseek(file.as_raw_fd(), off, whence) };
    if r >= 0 {
        return Ok(Some(r as u64));
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::ENXIO) => Ok(None),
        _ => Err(e),
    }
}

/// The next data region of `file` from `offset` on, as (start, end); all the rest when the
/// file system does not report holes.
fn next_data(file: &File, offset: u64, len: u64) -> Result<Option<(u64, u64)>, io::Error> {
    let start = match seek(file, offset, libc::SEEK_DATA) {
        Ok(Some(s)) if s < len => s,
        Ok(_) => return Ok(None),
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::EINVAL) | Some(libc::EOPNOTSUPP)
            ) =>
        {
            return Ok(Some((offset, len)))
        }
        Err(e) => return Err(e),
    };
    let end = match seek(file, start, libc::SEEK_HOLE) {
        Ok(Some(e)) => e.min(len),
        _ => len,
    };
    Ok(Some((start, end)))
}

/// Copies `src` (of `len` bytes) into the empty `dst`, leaving holes where the source has holes
/// or all-zero blocks. `done` is told the bytes covered so far after every block; it may stop
/// the copy. The destination is synced before this returns.
pub(crate) fn sparse_copy(
    src: &File,
    dst: &File,
    len: u64,
    done: &mut dyn FnMut(u64) -> ControlFlow<()>,
) -> Result<(), CopyError> {
    let mut buf = vec![0u8; CHUNK];
    let mut offset = 0u64;
    while offset < len {
        let Some((start, end)) = next_data(src, offset, len).map_err(CopyError::Read)? else {
            break;
        };
        let mut at = start;
        while at < end {
            let n = usize::try_from((end - at).min(CHUNK as u64)).unwrap_or(CHUNK);
            let block = &mut buf[..n];
            src.read_exact_at(block, at).map_err(CopyError::Read)?;
            if block.iter().any(|&b| b != 0) {
                dst.write_all_at(block, at).map_err(CopyError::Write)?;
            }
            at += n as u64;
            if done(at).is_break() {
                return Err(CopyError::Cancelled);
            }
        }
        offset = end;
    }
    // The length makes the trailing hole (and a source that is all hole).
    dst.set_len(len).map_err(CopyError::Write)?;
    if done(len).is_break() {
        return Err(CopyError::Cancelled);
    }
    dst.sync_all().map_err(CopyError::Write)
}

/// The backing file name in a qcow2 header, if the file is qcow2 and names one. Read only to
/// refuse a copy into another directory when the name is relative (qcow2 resolves it against
/// the image's own directory, so the copy would lose its backing file or find another one).
pub(crate) fn qcow2_backing_name(path: &Path) -> io::Result<Option<String>> {
    let f = File::open(path)?;
    let mut head = [0u8; 20];
    if f.read_exact_at(&mut head, 0).is_err() || head[..4] != *b"QFI\xfb" {
        // Declared qcow2 but not one: the copy is the same bytes, and nothing to keep.
        return Ok(None);
    }
    let be64 = |b: &[u8]| b.iter().fold(0u64, |v, &x| (v << 8) | u64::from(x));
    let offset = be64(&head[8..16]);
    let size = be64(&head[16..20]);
    if offset == 0 || size == 0 {
        return Ok(None);
    }
    // QEMU refuses names longer than 1023 bytes; so does this.
    let size = usize::try_from(size.min(1023)).unwrap_or(1023);
    let mut name = vec![0u8; size];
    f.read_exact_at(&mut name, offset)?;
    Ok(Some(String::from_utf8_lossy(&name).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn dir(tag: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!(
            "vireo-copy-{tag}-{}",
            vireo_domain::Uuid::new_v4().unwrap()
        ));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn copies_bytes_and_keeps_holes_and_zero_blocks_sparse() {
        let d = dir("sparse");
        let src_path = d.join("a.raw");
        let src = File::create(&src_path).unwrap();
        // 8 MiB: data at 1 MiB, an allocated all-zero block at 3 MiB, data at the very end.
        src.set_len(8 << 20).unwrap();
        src.write_all_at(b"hello", 1 << 20).unwrap();
        src.write_all_at(&vec![0u8; 1 << 20], 3 << 20).unwrap();
        src.write_all_at(b"tail", (8 << 20) - 4).unwrap();
        src.sync_all().unwrap();
        let dst_path = d.join("b.raw");
        let dst = File::create(&dst_path).unwrap();
        let src = File::open(&src_path).unwrap();
        let mut seen = Vec::new();
        sparse_copy(&src, &dst, 8 << 20, &mut |n| {
            seen.push(n);
            ControlFlow::Continue(())
        })
        .unwrap();
        assert_eq!(
            std::fs::read(&src_path).unwrap(),
            std::fs::read(&dst_path).unwrap()
        );
        assert_eq!(seen.last(), Some(&(8 << 20)));
        assert!(seen.windows(2).all(|w| w[0] <= w[1]), "{seen:?}");
        // Two 1 MiB blocks with data at most (plus file system slack), not 8 MiB.
        let blocks = std::fs::metadata(&dst_path).unwrap().blocks() * 512;
        assert!(blocks <= 3 << 20, "the copy takes {blocks} bytes");
        let _ = std::fs::remove_dir_all(d);
    }

    #[test]
    fn a_cancelled_copy_says_so() {
        let d = dir("cancel");
        let src_path = d.join("a.raw");
        std::fs::write(&src_path, vec![1u8; 3 << 20]).unwrap();
        let dst = File::create(d.join("b.raw")).unwrap();
        let src = File::open(&src_path).unwrap();
        let r = sparse_copy(&src, &dst, 3 << 20, &mut |n| {
            if n >= 1 << 20 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        });
        assert!(matches!(r, Err(CopyError::Cancelled)));
        let _ = std::fs::remove_dir_all(d);
    }

    #[test]
    fn qcow2_backing_names_are_read_from_the_header_only() {
        let d = dir("qcow2");
        let mut head = vec![0u8; 512];
        head[..4].copy_from_slice(b"QFI\xfb");
        head[7] = 3; // version 3
        head[15] = 200; // backing name at offset 200
        head[19] = 8; // 8 bytes long
        head[200..208].copy_from_slice(b"base.raw");
        let with = d.join("with.qcow2");
        std::fs::write(&with, &head).unwrap();
        assert_eq!(
            qcow2_backing_name(&with).unwrap().as_deref(),
            Some("base.raw")
        );
        head[15] = 0;
        let without = d.join("without.qcow2");
        std::fs::write(&without, &head).unwrap();
        assert_eq!(qcow2_backing_name(&without).unwrap(), None);
        let raw = d.join("raw.img");
        std::fs::write(&raw, b"not an image").unwrap();
        assert_eq!(qcow2_backing_name(&raw).unwrap(), None);
        let _ = std::fs::remove_dir_all(d);
    }

    #[test]
    fn a_shared_lock_is_refused_while_someone_writes() {
        let d = dir("lock");
        let p = d.join("disk.raw");
        std::fs::write(&p, b"x").unwrap();
        let writer = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&p)
            .unwrap();
        // SAFETY: as in lock_shared, with an exclusive lock (what the VMM takes).
        let mut fl: libc::flock = unsafe { std::mem::zeroed() };
        fl.l_type = libc::F_WRLCK as i16;
        fl.l_whence = libc::SEEK_SET as i16;
        assert_eq!(
            unsafe { libc::fcntl(writer.as_raw_fd(), libc::F_OFD_SETLK, &fl) },
            0
        );
        let reader = File::open(&p).unwrap();
        assert!(!lock_shared(&reader).unwrap());
        drop(writer);
        assert!(lock_shared(&reader).unwrap());
        let _ = std::fs::remove_dir_all(d);
    }
}
