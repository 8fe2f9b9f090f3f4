//! Kernels unpacked ahead of time: a bzImage's compressed payload, decompressed once on the
//! host and kept in the cache, so that each start of a direct-boot machine loads the ready
//! kernel (`VmConfig::kernel_unpacked`) instead of having the guest decompress it again.
//! Decompressing Debian's 8 MiB xz payload costs a guest seconds under nested virtualization.
//!
//! A start never waits for it: the first start of a kernel boots it as it is, and the machine's
//! supervisor unpacks it in the background at the lowest CPU priority ([`unpack`]) for the
//! starts after. One unpack per kernel at a time (a lock beside the cache file).
//!
//! The payload is found through the setup header (boot protocol 2.08+: `payload_offset`,
//! `payload_length`), whose last four bytes are the decompressed size. Its compression is
//! named by its magic, as the kernel's own decompressor knows it; xz and gzip are unpacked
//! with Debian's `xz` and `gzip` (both in every installation), anything else is booted as it
//! is. The result must be an x86-64 ELF of exactly the size the trailer gives.

use std::hash::{Hash, Hasher};
use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Unpacked kernels kept; older ones are removed (each is tens of MiB).
const KEEP: usize = 4;
/// The largest decompressed kernel accepted (Debian's is about 60 MiB).
const MAX_UNPACKED: u64 = 512 << 20;

#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {reason}")]
    Bad { path: PathBuf, reason: String },
    #[error("{tool} could not unpack {path}: {reason}")]
    Tool {
        tool: &'static str,
        path: PathBuf,
        reason: String,
    },
}

fn bad(path: &Path, reason: impl Into<String>) -> UnpackError {
    UnpackError::Bad {
        path: path.to_owned(),
        reason: reason.into(),
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> UnpackError + '_ {
    move |source| UnpackError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The compressed payload of a bzImage and the size it decompresses to; `None` for a file that
/// is not a bzImage with a payload this module unpacks (an ELF vmlinux, an old protocol, an
/// unknown compression): such a kernel is booted as it is.
pub fn payload(image: &[u8]) -> Option<(&'static str, &[u8], u64)> {
    let u16_at = |o: usize| Some(u16::from_le_bytes(image.get(o..o + 2)?.try_into().ok()?));
    let u32_at = |o: usize| Some(u32::from_le_bytes(image.get(o..o + 4)?.try_into().ok()?));
    if image.get(0x202..0x206)? != b"HdrS" || u16_at(0x206)? < 0x208 {
        return None;
    }
    let setup_sects = match *image.get(0x1f1)? {
        0 => 4,
        n => usize::from(n),
    };
    let start = (setup_sects + 1)
        .checked_mul(512)?
        .checked_add(usize::try_from(u32_at(0x248)?).ok()?)?;
    let len = usize::try_from(u32_at(0x24c)?).ok()?;
    let data = image.get(start..start.checked_add(len)?)?;
    if data.len() < 8 {
        return None;
    }
    let (body, size) = data.split_at(data.len() - 4);
    let size = u64::from(u32::from_le_bytes(size.try_into().ok()?));
    let tool = if body.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        "xz"
    } else if body.starts_with(&[0x1f, 0x8b]) {
        "gzip"
    } else {
        return None;
    };
    Some((tool, body, size))
}

/// Where `kernel`'s unpacked payload is kept: named after the file's identity (path, size,
/// modification time, inode), so a replaced kernel is unpacked again.
fn cache_name(kernel: &Path, meta: &std::fs::Metadata) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (
        "vireo-unpacked-kernel-1",
        kernel,
        meta.len(),
        meta.mtime(),
        meta.mtime_nsec(),
    )
        .hash(&mut h);
    (meta.ino(), meta.dev()).hash(&mut h);
    format!("{:016x}.vmlinux", h.finish())
}

/// The unpacked kernel for `kernel` if the cache has it (and marks it used).
pub fn cached(kernel: &Path, cache_dir: &Path) -> Option<PathBuf> {
    let meta = std::fs::metadata(kernel).ok()?;
    let target = cache_dir.join(cache_name(kernel, &meta));
    if !target.is_file() {
        return None;
    }
    // Mark it used, for the clean-up below.
    let _ = std::fs::File::options()
        .append(true)
        .open(&target)
        .and_then(|f| f.set_modified(std::time::SystemTime::now()));
    Some(target)
}

/// Unpacks `kernel` into `cache_dir` unless it is there already; `Ok(None)` when the kernel is
/// booted as it is (see [`payload`]) or another process is unpacking it right now.
pub fn unpack(kernel: &Path, cache_dir: &Path) -> Result<Option<PathBuf>, UnpackError> {
    if let Some(done) = cached(kernel, cache_dir) {
        return Ok(Some(done));
    }
    let meta = std::fs::metadata(kernel).map_err(io(kernel))?;
    let name = cache_name(kernel, &meta);
    let target = cache_dir.join(&name);
    let mut image = Vec::new();
    std::fs::File::open(kernel)
        .and_then(|mut f| f.read_to_end(&mut image))
        .map_err(io(kernel))?;
    let Some((tool, body, size)) = payload(&image) else {
        return Ok(None);
    };
    if size > MAX_UNPACKED {
        return Err(bad(
            kernel,
            format!("the payload says it unpacks to {size} bytes, more than {MAX_UNPACKED}"),
        ));
    }
    std::fs::create_dir_all(cache_dir).map_err(io(cache_dir))?;
    let lock_path = cache_dir.join(format!(".{name}.lock"));
    let Some(_lock) = crate::store::FileLock::try_exclusive(&lock_path).map_err(io(&lock_path))?
    else {
        return Ok(None);
    };
    if target.is_file() {
        return Ok(Some(target));
    }
    let tmp = cache_dir.join(format!(".{name}.tmp"));
    let result = decompress(tool, kernel, body, &tmp).and_then(|()| check_elf(&tmp, size));
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, &target).map_err(io(&target))?;
    clean(cache_dir, &target);
    Ok(Some(target))
}

fn decompress(
    tool: &'static str,
    kernel: &Path,
    body: &[u8],
    out: &Path,
) -> Result<(), UnpackError> {
    let file = std::fs::File::create(out).map_err(io(out))?;
    let mut cmd = Command::new(tool);
    // SAFETY: setpriority is async-signal-safe; it only lowers the child's own priority.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
            libc::setpriority(libc::PRIO_PROCESS, 0, 19);
            Ok(())
        });
    }
    let mut child = cmd
        .args(["--decompress", "--stdout"])
        .args(if tool == "xz" {
            &["--single-stream"][..]
        } else {
            &[]
        })
        .stdin(Stdio::piped())
        .stdout(file)
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| UnpackError::Tool {
            tool,
            path: kernel.to_owned(),
            reason: e.to_string(),
        })?;
    let fed = child
        .stdin
        .take()
        .map(|mut stdin| stdin.write_all(body))
        .unwrap_or(Ok(()));
    let output = child.wait_with_output().map_err(io(kernel))?;
    // gzip exits 2 for a warning ("trailing garbage ignored"); the size check below decides.
    let ok = output.status.success() || (tool == "gzip" && output.status.code() == Some(2));
    if !ok || fed.is_err() {
        return Err(UnpackError::Tool {
            tool,
            path: kernel.to_owned(),
            reason: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        });
    }
    Ok(())
}

fn check_elf(path: &Path, size: u64) -> Result<(), UnpackError> {
    let got = std::fs::metadata(path).map_err(io(path))?.len();
    if got != size {
        return Err(bad(
            path,
            format!("unpacked to {got} bytes, the payload says {size}"),
        ));
    }
    let mut head = [0u8; 20];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .map_err(io(path))?;
    if &head[..4] != b"\x7fELF" || head[4] != 2 || u16::from_le_bytes([head[18], head[19]]) != 62 {
        return Err(bad(path, "the payload is not an x86-64 ELF kernel"));
    }
    Ok(())
}

/// Removes all but the [`KEEP`] most recently used unpacked kernels, never `keep`.
fn clean(dir: &Path, keep: &Path) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut files: Vec<(std::time::SystemTime, PathBuf)> = rd
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "vmlinux") && p != keep)
        .filter_map(|p| Some((std::fs::metadata(&p).ok()?.modified().ok()?, p)))
        .collect();
    files.sort();
    let extra = (files.len() + 1).saturating_sub(KEEP);
    // The kept files' locks stay (they are empty); a removed file's lock goes with it.
    for (_, p) in files.into_iter().take(extra) {
        if let Some(name) = p.file_name() {
            let _ = std::fs::remove_file(dir.join(format!(".{}.lock", name.to_string_lossy())));
        }
        let _ = std::fs::remove_file(p);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A bzImage-shaped file around `payload` (compressed bytes + the 4-byte size trailer).
    fn bzimage(payload: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; 1024];
        f[0x1f1] = 1;
        f[0x202..0x206].copy_from_slice(b"HdrS");
        f[0x206..0x208].copy_from_slice(&0x020fu16.to_le_bytes());
        f[0x248..0x24c].copy_from_slice(&16u32.to_le_bytes());
        f[0x24c..0x250].copy_from_slice(&(payload.len() as u32).to_le_bytes());
        f.extend_from_slice(&[0u8; 16]);
        f.extend_from_slice(payload);
        f.extend_from_slice(&[0u8; 32]);
        f
    }

    fn elf(len: usize) -> Vec<u8> {
        let mut e = vec![0u8; len];
        e[..4].copy_from_slice(b"\x7fELF");
        e[4] = 2;
        e[18..20].copy_from_slice(&62u16.to_le_bytes());
        e
    }

    fn compressed(tool: &str, data: &[u8]) -> Vec<u8> {
        let mut child = Command::new(tool)
            .arg("-c")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(data).unwrap();
        let mut out = child.wait_with_output().unwrap().stdout;
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out
    }

    fn scratch(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("vireo-unpack-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn an_xz_or_gzip_payload_is_unpacked_once_and_kept() {
        for tool in ["xz", "gzip"] {
            let dir = scratch(tool);
            let kernel = dir.join("vmlinuz");
            let want = elf(100_000);
            std::fs::write(&kernel, bzimage(&compressed(tool, &want))).unwrap();
            let cache = dir.join("cache");
            let got = unpack(&kernel, &cache).unwrap().unwrap();
            assert_eq!(std::fs::read(&got).unwrap(), want, "{tool}");
            // Kept: the next start finds it without unpacking (the file is not rewritten).
            let before = std::fs::metadata(&got).unwrap().ino();
            assert_eq!(cached(&kernel, &cache), Some(got.clone()));
            assert_eq!(unpack(&kernel, &cache).unwrap().unwrap(), got);
            assert_eq!(std::fs::metadata(&got).unwrap().ino(), before);
            let _ = std::fs::remove_dir_all(&dir);
        }
    }

    #[test]
    fn a_replaced_kernel_is_unpacked_again() {
        let dir = scratch("replaced");
        let kernel = dir.join("vmlinuz");
        let cache = dir.join("cache");
        std::fs::write(&kernel, bzimage(&compressed("xz", &elf(5000)))).unwrap();
        let first = unpack(&kernel, &cache).unwrap().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let tmp = dir.join("new");
        std::fs::write(&tmp, bzimage(&compressed("xz", &elf(7000)))).unwrap();
        std::fs::rename(&tmp, &kernel).unwrap();
        let second = unpack(&kernel, &cache).unwrap().unwrap();
        assert_ne!(first, second);
        assert_eq!(std::fs::metadata(&second).unwrap().len(), 7000);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn what_is_not_a_known_payload_boots_as_it_is() {
        let dir = scratch("asis");
        let cache = dir.join("cache");
        let cases: [(&str, Vec<u8>); 4] = [
            ("elf", elf(4096)),
            ("short", vec![0u8; 100]),
            (
                "lz4",
                bzimage(&[0x02, 0x21, 0x4c, 0x18, 1, 2, 3, 4, 5, 6, 7, 8]),
            ),
            ("past-the-end", {
                let mut b = bzimage(&compressed("xz", &elf(100)));
                b[0x24c..0x250].copy_from_slice(&u32::MAX.to_le_bytes());
                b
            }),
        ];
        for (name, bytes) in cases {
            let k = dir.join(name);
            std::fs::write(&k, bytes).unwrap();
            assert!(unpack(&k, &cache).unwrap().is_none(), "{name}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_payload_that_lies_is_refused_and_leaves_nothing() {
        let dir = scratch("lies");
        let cache = dir.join("cache");
        let k = dir.join("vmlinuz");
        // The trailer claims another size than the data unpacks to.
        let mut p = compressed("xz", &elf(3000));
        let n = p.len();
        p[n - 4..].copy_from_slice(&2999u32.to_le_bytes());
        std::fs::write(&k, bzimage(&p)).unwrap();
        let e = unpack(&k, &cache).unwrap_err().to_string();
        assert!(
            e.contains("unpacked to 3000 bytes, the payload says 2999"),
            "{e}"
        );
        // Not an ELF.
        std::fs::write(&k, bzimage(&compressed("xz", &[7u8; 500]))).unwrap();
        let e = unpack(&k, &cache).unwrap_err().to_string();
        assert!(e.contains("not an x86-64 ELF"), "{e}");
        // Corrupt data: xz says why.
        let mut p = compressed("xz", &elf(3000));
        let n = p.len();
        p[n / 2] ^= 0xff;
        std::fs::write(&k, bzimage(&p)).unwrap();
        let e = unpack(&k, &cache).unwrap_err().to_string();
        assert!(e.starts_with("xz could not unpack"), "{e}");
        let left: Vec<_> = std::fs::read_dir(&cache)
            .unwrap()
            .flatten()
            .filter(|e| !e.file_name().to_string_lossy().ends_with(".lock"))
            .collect();
        assert!(left.is_empty(), "{left:?}");
        assert_eq!(cached(&k, &cache), None);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn one_unpack_at_a_time() {
        let dir = scratch("lock");
        let cache = dir.join("cache");
        let k = dir.join("vmlinuz");
        std::fs::write(&k, bzimage(&compressed("xz", &elf(2000)))).unwrap();
        std::fs::create_dir_all(&cache).unwrap();
        let meta = std::fs::metadata(&k).unwrap();
        let lock = cache.join(format!(".{}.lock", cache_name(&k, &meta)));
        let held = crate::store::FileLock::exclusive(&lock).unwrap();
        assert!(unpack(&k, &cache).unwrap().is_none());
        drop(held);
        assert!(unpack(&k, &cache).unwrap().is_some());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn only_the_most_recently_used_are_kept() {
        let dir = scratch("keep");
        let cache = dir.join("cache");
        let mut made = Vec::new();
        for i in 0..KEEP + 2 {
            let k = dir.join(format!("vmlinuz{i}"));
            std::fs::write(&k, bzimage(&compressed("xz", &elf(1000 + i)))).unwrap();
            made.push(unpack(&k, &cache).unwrap().unwrap());
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let left = std::fs::read_dir(&cache)
            .unwrap()
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "vmlinux"))
            .count();
        assert_eq!(left, KEEP);
        assert!(!made[0].exists() && !made[1].exists() && made[KEEP + 1].exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
