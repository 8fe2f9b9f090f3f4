//! An initramfs builder on top of [`crate::cpio`]: directories are created implicitly, files
//! come from memory or from the host, busybox gets its applet links, modules get a load order.
//!
//! Linux unpacks concatenated archives one after the other, later entries replacing earlier
//! ones, so a large base image can be built once and a small per-run archive appended
//! ([`concat()`]).

use crate::cpio::CpioWriter;
use crate::error::{Result, RigError};
use crate::modules::Module;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

enum Data {
    Bytes(Vec<u8>),
    Host(PathBuf),
}

enum Entry {
    Dir(String),
    File(String, u32, Data),
    Symlink(String, String),
    CharDev(String, u32, u32, u32),
}

/// Where [`Initramfs::modules`] puts modules, and the file naming their load order.
pub const MODULE_DIR: &str = "lib/vireo-modules";
pub const MODULE_ORDER: &str = "etc/vireo/modules";

/// Collects entries; [`Initramfs::write`] turns them into a newc archive.
#[derive(Default)]
pub struct Initramfs {
    entries: Vec<Entry>,
    dirs: BTreeSet<String>,
}

fn clean(path: &str) -> String {
    path.trim_matches('/').to_owned()
}

impl Initramfs {
    pub fn new() -> Self {
        Self::default()
    }

    /// A directory (and its parents).
    pub fn dir(&mut self, path: &str) -> &mut Self {
        let path = clean(path);
        let mut so_far = String::new();
        for part in path.split('/').filter(|p| !p.is_empty()) {
            if !so_far.is_empty() {
                so_far.push('/');
            }
            so_far.push_str(part);
            if self.dirs.insert(so_far.clone()) {
                self.entries.push(Entry::Dir(so_far.clone()));
            }
        }
        self
    }

    fn parent(&mut self, path: &str) {
        if let Some((parent, _)) = path.rsplit_once('/') {
            self.dir(parent);
        }
    }

    /// A file with the given content and permission bits.
    pub fn file(&mut self, path: &str, mode: u32, data: impl Into<Vec<u8>>) -> &mut Self {
        let path = clean(path);
        self.parent(&path);
        self.entries
            .push(Entry::File(path, mode, Data::Bytes(data.into())));
        self
    }

    /// A file copied from the host when the archive is written.
    pub fn host_file(&mut self, path: &str, mode: u32, host: impl Into<PathBuf>) -> &mut Self {
        let path = clean(path);
        self.parent(&path);
        self.entries
            .push(Entry::File(path, mode, Data::Host(host.into())));
        self
    }

    pub fn symlink(&mut self, path: &str, target: &str) -> &mut Self {
        let path = clean(path);
        self.parent(&path);
        self.entries.push(Entry::Symlink(path, target.to_owned()));
        self
    }

    pub fn char_dev(&mut self, path: &str, mode: u32, major: u32, minor: u32) -> &mut Self {
        let path = clean(path);
        self.parent(&path);
        self.entries.push(Entry::CharDev(path, mode, major, minor));
        self
    }

    /// The usual skeleton: /dev/console (so init has a stdout before devtmpfs), mount points.
    pub fn skeleton(&mut self) -> &mut Self {
        for d in [
            "dev", "proc", "sys", "tmp", "run", "root", "etc", "bin", "sbin",
        ] {
            self.dir(d);
        }
        self.char_dev("dev/console", 0o600, 5, 1);
        self.char_dev("dev/null", 0o666, 1, 3);
        self
    }

    /// Busybox at /bin/busybox with a symlink for each applet it lists.
    pub fn busybox(&mut self, host_busybox: &Path) -> Result<&mut Self> {
        let list = crate::debian::run_tool(
            Command::new(host_busybox).arg("--list-full"),
            "busybox-static",
            "listing busybox applets",
        )?;
        self.host_file("bin/busybox", 0o755, host_busybox);
        for applet in list.lines().map(str::trim).filter(|l| !l.is_empty()) {
            if applet == "bin/busybox" || applet.contains("..") {
                continue;
            }
            self.symlink(applet, "/bin/busybox");
        }
        Ok(self)
    }

    /// A second busybox at `/<dir>/busybox` with every applet linked in `/<dir>/bin`: tools
    /// that survive a `switch_root` (copy `/<dir>` into the new root first).
    pub fn busybox_in(&mut self, host_busybox: &Path, dir: &str) -> Result<&mut Self> {
        let dir = clean(dir);
        let list = crate::debian::run_tool(
            Command::new(host_busybox).arg("--list"),
            "busybox-static",
            "listing busybox applets",
        )?;
        self.host_file(&format!("{dir}/busybox"), 0o755, host_busybox);
        let target = format!("/{dir}/busybox");
        for applet in list.lines().map(str::trim) {
            if applet.is_empty() || applet.contains('/') || applet == "busybox" {
                continue;
            }
            self.symlink(&format!("{dir}/bin/{applet}"), &target);
        }
        Ok(self)
    }

    /// Modules under [`MODULE_DIR`] and their names, in the given (load) order, in
    /// [`MODULE_ORDER`], one a line.
    pub fn modules(&mut self, modules: &[Module]) -> &mut Self {
        let mut order = String::new();
        for m in modules {
            self.host_file(&format!("{MODULE_DIR}/{}.ko", m.name), 0o644, &m.path);
            order.push_str(&m.name);
            order.push('\n');
        }
        self.file(MODULE_ORDER, 0o644, order)
    }

    /// `/init`, run by the kernel as PID 1.
    pub fn init(&mut self, script: &str) -> &mut Self {
        self.file("init", 0o755, script)
    }

    /// The archive as bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut w = CpioWriter::new(Vec::new());
        let wrap = |name: &str, e: std::io::Error| RigError::Initramfs {
            name: name.to_owned(),
            why: e.to_string(),
        };
        for entry in &self.entries {
            match entry {
                Entry::Dir(p) => w.dir(p, 0o755).map_err(|e| wrap(p, e))?,
                Entry::File(p, mode, Data::Bytes(b)) => {
                    w.file(p, *mode, b).map_err(|e| wrap(p, e))?
                }
                Entry::File(p, mode, Data::Host(h)) => {
                    let b = std::fs::read(h)
                        .map_err(|e| RigError::io("reading initramfs file", h, e))?;
                    w.file(p, *mode, &b).map_err(|e| wrap(p, e))?
                }
                Entry::Symlink(p, t) => w.symlink(p, t).map_err(|e| wrap(p, e))?,
                Entry::CharDev(p, mode, ma, mi) => {
                    w.char_dev(p, *mode, *ma, *mi).map_err(|e| wrap(p, e))?
                }
            }
        }
        w.finish().map_err(|e| wrap("TRAILER!!!", e))
    }

    /// Writes the archive to `path` (atomically: a reader never sees half an archive).
    pub fn write(&self, path: &Path) -> Result<()> {
        write_atomic(path, &self.to_bytes()?)
    }
}

/// Concatenates archives into one initrd file (for launchers that take a single -initrd).
pub fn concat(parts: &[&Path], out: &Path) -> Result<()> {
    let mut all = Vec::new();
    for p in parts {
        let mut b = std::fs::read(p).map_err(|e| RigError::io("reading initramfs", p, e))?;
        all.append(&mut b);
    }
    write_atomic(out, &all)
}

pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| RigError::io("creating directory", dir, e))?;
    }
    let tmp = crate::scratch_name(path);
    std::fs::write(&tmp, bytes).map_err(|e| RigError::io("writing file", &tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| RigError::io("renaming file", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parents_are_created_once_and_first() {
        let mut i = Initramfs::new();
        i.file("a/b/c", 0o644, "x").file("a/b/d", 0o644, "y");
        let names: Vec<&str> = i
            .entries
            .iter()
            .map(|e| match e {
                Entry::Dir(p)
                | Entry::File(p, ..)
                | Entry::Symlink(p, _)
                | Entry::CharDev(p, ..) => p.as_str(),
            })
            .collect();
        assert_eq!(names, ["a", "a/b", "a/b/c", "a/b/d"]);
    }
}
