//! A small writer for the "newc" cpio format the Linux kernel unpacks as an initramfs.
//!
//! Written here rather than run as `cpio` so that no extra host tool is needed and an archive's
//! bytes (owners, times, inode numbers) depend only on what goes in. [`crate::initramfs`] builds
//! on it.

use std::io::{self, Write};

/// Builds an archive in memory.
#[derive(Debug)]
pub struct CpioWriter {
    out: Vec<u8>,
    ino: u32,
}

impl Default for CpioWriter {
    fn default() -> Self {
        Self::new()
    }
}

const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;
const S_IFCHR: u32 = 0o020000;

impl CpioWriter {
    pub fn new() -> CpioWriter {
        CpioWriter {
            out: Vec::new(),
            ino: 1,
        }
    }

    fn pad(&mut self) {
        while self.out.len() % 4 != 0 {
            self.out.push(0);
        }
    }

    fn entry(&mut self, name: &str, mode: u32, data: &[u8], rdev: (u32, u32)) -> io::Result<()> {
        let name = name.trim_start_matches('/');
        if name.is_empty() || name.len() > 4000 || name.contains('\0') {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("bad cpio name '{name}'"),
            ));
        }
        let size = u32::try_from(data.len()).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{name}: larger than 4 GiB"),
            )
        })?;
        let nlink = if mode & S_IFDIR != 0 { 2 } else { 1 };
        let fields = [
            self.ino,
            mode,
            0,
            0,
            nlink,
            0,
            size,
            0,
            0,
            rdev.0,
            rdev.1,
            name.len() as u32 + 1,
            0,
        ];
        self.ino += 1;
        self.out.extend_from_slice(b"070701");
        for f in fields {
            write!(self.out, "{f:08x}")?;
        }
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(0);
        self.pad();
        self.out.extend_from_slice(data);
        self.pad();
        Ok(())
    }

    /// A directory (mode 0755). `name` is relative to the archive root ("bin", "lib/modules").
    pub fn dir(&mut self, name: &str) -> io::Result<()> {
        self.entry(name, S_IFDIR | 0o755, &[], (0, 0))
    }

    /// A regular file holding `data`.
    pub fn file(&mut self, name: &str, perm: u32, data: &[u8]) -> io::Result<()> {
        self.entry(name, S_IFREG | (perm & 0o7777), data, (0, 0))
    }

    /// A symbolic link to `target`.
    pub fn symlink(&mut self, name: &str, target: &str) -> io::Result<()> {
        self.entry(name, S_IFLNK | 0o777, target.as_bytes(), (0, 0))
    }

    /// A character device node.
    pub fn char_dev(&mut self, name: &str, perm: u32, major: u32, minor: u32) -> io::Result<()> {
        self.entry(name, S_IFCHR | (perm & 0o7777), &[], (major, minor))
    }

    /// Appends the trailer and returns the archive.
    pub fn finish(mut self) -> io::Result<Vec<u8>> {
        self.entry("TRAILER!!!", 0, &[], (0, 0))?;
        // The kernel reads in 512-byte blocks happily either way; round up like cpio(1) does.
        while self.out.len() % 512 != 0 {
            self.out.push(0);
        }
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The exact bytes of a small tree: images built from the same input must not change
    /// (caches of built images key on [`crate::initramfs::FORMAT`], not on these bytes).
    #[test]
    fn small_tree_bytes_are_pinned() {
        let mut w = CpioWriter::new();
        w.dir("d").unwrap();
        w.file("/d/f", 0o644, b"hi").unwrap();
        w.symlink("d/l", "f").unwrap();
        w.char_dev("dev/null", 0o666, 1, 3).unwrap();
        let a = w.finish().unwrap();
        // ino, mode, uid, gid, nlink, mtime, size, dev major/minor, rdev major/minor,
        // name size, check; then the name, padded to 4, and the data, padded to 4.
        let z = "00000000";
        let expected = [
            "070701",
            "00000001",
            "000041ed",
            z,
            z,
            "00000002",
            z,
            z,
            z,
            z,
            z,
            z,
            "00000002",
            z,
            "d\0",
            "070701",
            "00000002",
            "000081a4",
            z,
            z,
            "00000001",
            z,
            "00000002",
            z,
            z,
            z,
            z,
            "00000004",
            z,
            "d/f\0",
            "\0\0",
            "hi",
            "\0\0",
            "070701",
            "00000003",
            "0000a1ff",
            z,
            z,
            "00000001",
            z,
            "00000001",
            z,
            z,
            z,
            z,
            "00000004",
            z,
            "d/l\0",
            "\0\0",
            "f",
            "\0\0\0",
            "070701",
            "00000004",
            "000021b6",
            z,
            z,
            "00000001",
            z,
            z,
            z,
            z,
            "00000001",
            "00000003",
            "00000009",
            z,
            "dev/null\0",
            "\0",
            "070701",
            "00000005",
            z,
            z,
            z,
            "00000001",
            z,
            z,
            z,
            z,
            z,
            z,
            "0000000b",
            z,
            "TRAILER!!!\0",
            "\0\0\0",
        ]
        .concat()
        .into_bytes();
        assert_eq!(a.len(), 1024);
        assert_eq!(&a[..expected.len()], &expected[..]);
        assert!(a[expected.len()..].iter().all(|&b| b == 0));
    }

    #[test]
    fn bad_names_are_refused() {
        let mut w = CpioWriter::new();
        assert!(w.file("/", 0o644, b"").is_err());
        assert!(w.file("a\0b", 0o644, b"").is_err());
        assert!(w.dir(&"x".repeat(4001)).is_err());
    }

    /// busybox cpio is a second, independent reader (busybox-static is a build requirement).
    #[test]
    fn busybox_cpio_lists_our_archive() {
        use std::process::{Command, Stdio};
        let mut w = CpioWriter::new();
        w.dir("etc").unwrap();
        w.file("etc/hello", 0o644, b"hi there\n").unwrap();
        w.symlink("etc/link", "hello").unwrap();
        let a = w.finish().unwrap();
        let mut child = Command::new("busybox")
            .args(["cpio", "-t"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("busybox (Debian busybox-static) is a build requirement");
        child.stdin.take().unwrap().write_all(&a).unwrap();
        let out = child.wait_with_output().unwrap();
        let listing = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            listing.lines().collect::<Vec<_>>(),
            ["etc", "etc/hello", "etc/link"]
        );
    }

    /// Checked against GNU cpio, the reference reader, when it is installed (it is on the
    /// build machine); the in-process parse below always runs.
    #[test]
    fn archive_lists_with_cpio() {
        let mut w = CpioWriter::new();
        w.dir("bin").unwrap();
        w.file("bin/hello", 0o755, b"#!/bin/sh\necho hi\n").unwrap();
        w.symlink("bin/sh", "busybox").unwrap();
        w.char_dev("dev/console", 0o600, 5, 1).unwrap();
        let a = w.finish().unwrap();
        assert_eq!(&a[..6], b"070701");
        assert_eq!(a.len() % 512, 0);
        let dir = std::env::temp_dir().join(format!(
            "vireo-cpio-{}",
            vireo_domain::Uuid::new_v4().unwrap()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("a.cpio");
        std::fs::write(&f, &a).unwrap();
        if let Ok(out) = std::process::Command::new("cpio")
            .arg("-itv")
            .arg("-F")
            .arg(&f)
            .output()
        {
            let listing = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(listing.contains("bin/hello"), "{listing}");
            assert!(listing.contains("bin/sh -> busybox"), "{listing}");
            assert!(
                listing.contains("5,   1") || listing.contains("5, 1"),
                "{listing}"
            );
        }
        let _ = std::fs::remove_dir_all(dir);
    }
}
