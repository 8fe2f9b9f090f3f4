//! A writer for the "newc" cpio format, the one the Linux kernel unpacks as an initramfs.
//!
//! Written here rather than shelling out to `cpio` so the rig needs no extra host tool and the
//! archive's content (owners, times) is the same on every machine.

use std::io::{self, Write};

/// Unix file-type bits for the `mode` field.
pub const S_IFDIR: u32 = 0o040000;
pub const S_IFREG: u32 = 0o100000;
pub const S_IFLNK: u32 = 0o120000;
pub const S_IFCHR: u32 = 0o020000;

/// Streams newc entries to `W`. Call [`CpioWriter::finish`] to write the trailer.
pub struct CpioWriter<W: Write> {
    out: W,
    next_ino: u32,
    offset: u64,
}

impl<W: Write> CpioWriter<W> {
    pub fn new(out: W) -> Self {
        CpioWriter {
            out,
            // Inode numbers only need to be distinct inside one archive; the kernel uses them to
            // recognise hard links, which we never write.
            next_ino: 1,
            offset: 0,
        }
    }

    /// A directory. `name` is relative to the archive root ("bin", "lib/modules").
    pub fn dir(&mut self, name: &str, perm: u32) -> io::Result<()> {
        self.entry(name, S_IFDIR | (perm & 0o7777), 2, &[], (0, 0))
    }

    /// A regular file holding `data`.
    pub fn file(&mut self, name: &str, perm: u32, data: &[u8]) -> io::Result<()> {
        self.entry(name, S_IFREG | (perm & 0o7777), 1, data, (0, 0))
    }

    /// A symbolic link to `target`.
    pub fn symlink(&mut self, name: &str, target: &str) -> io::Result<()> {
        self.entry(name, S_IFLNK | 0o777, 1, target.as_bytes(), (0, 0))
    }

    /// A character device node.
    pub fn char_dev(&mut self, name: &str, perm: u32, major: u32, minor: u32) -> io::Result<()> {
        self.entry(name, S_IFCHR | (perm & 0o7777), 1, &[], (major, minor))
    }

    /// Writes the trailer entry and returns the underlying writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.entry("TRAILER!!!", 0, 1, &[], (0, 0))?;
        self.out.flush()?;
        Ok(self.out)
    }

    fn entry(
        &mut self,
        name: &str,
        mode: u32,
        nlink: u32,
        data: &[u8],
        rdev: (u32, u32),
    ) -> io::Result<()> {
        let name = name.trim_start_matches('/');
        if name.is_empty() || name.as_bytes().contains(&0) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("invalid cpio entry name {name:?}"),
            ));
        }
        let size = u32::try_from(data.len()).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{name}: {} bytes is too large for newc (4 GiB)", data.len()),
            )
        })?;
        let namesize = u32::try_from(name.len() + 1)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "cpio entry name too long"))?;
        let ino = if name == "TRAILER!!!" {
            0
        } else {
            self.next_ino += 1;
            self.next_ino
        };
        let header = format!(
            "070701{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}",
            ino, mode, 0, 0, nlink, 0, size, 0, 0, rdev.0, rdev.1, namesize, 0
        );
        self.put(header.as_bytes())?;
        self.put(name.as_bytes())?;
        self.put(&[0])?;
        self.pad()?;
        self.put(data)?;
        self.pad()
    }

    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.write_all(bytes)?;
        self.offset += bytes.len() as u64;
        Ok(())
    }

    fn pad(&mut self) -> io::Result<()> {
        let rem = (self.offset % 4) as usize;
        if rem != 0 {
            self.put(&[0u8; 4][..4 - rem])?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(buf: &[u8], at: usize, idx: usize) -> u32 {
        let start = at + 6 + idx * 8;
        let text = std::str::from_utf8(&buf[start..start + 8]).unwrap();
        u32::from_str_radix(text, 16).unwrap()
    }

    #[test]
    fn file_entry_layout_is_newc() {
        let mut w = CpioWriter::new(Vec::new());
        w.file("/init", 0o755, b"hello").unwrap();
        let buf = w.finish().unwrap();
        assert_eq!(&buf[..6], b"070701");
        assert_eq!(field(&buf, 0, 1), S_IFREG | 0o755);
        assert_eq!(field(&buf, 0, 6), 5);
        assert_eq!(field(&buf, 0, 11), 5); // "init\0"
                                           // Header (110) + name (5) padded to 116, then the data.
        assert_eq!(&buf[116..121], b"hello");
        // Data padded to 124, then the trailer header.
        assert_eq!(&buf[124..130], b"070701");
        assert_eq!(buf.len() % 4, 0);
        let trailer_name = &buf[124 + 110..124 + 110 + 10];
        assert_eq!(trailer_name, b"TRAILER!!!");
    }

    #[test]
    fn rejects_empty_names() {
        let mut w = CpioWriter::new(Vec::new());
        assert!(w.file("/", 0o644, b"").is_err());
    }

    #[test]
    fn busybox_cpio_reads_our_archive() {
        // Cross-check against an independent reader.
        let mut w = CpioWriter::new(Vec::new());
        w.dir("etc", 0o755).unwrap();
        w.file("etc/hello", 0o644, b"hi there\n").unwrap();
        w.symlink("etc/link", "hello").unwrap();
        let buf = w.finish().unwrap();
        let out = std::process::Command::new("busybox")
            .args(["cpio", "-t"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn();
        let mut child = out.expect("busybox (Debian busybox-static) is a rig prerequisite");
        child.stdin.take().unwrap().write_all(&buf).unwrap();
        let out = child.wait_with_output().unwrap();
        let listing = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            listing.lines().collect::<Vec<_>>(),
            ["etc", "etc/hello", "etc/link"]
        );
    }
}
