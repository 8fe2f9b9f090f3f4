//! An initramfs builder on [`crate::cpio`]: parent directories made implicitly, files from
//! memory or from the host, busybox with its applet links, kernel modules ([`crate::modules`])
//! uncompressed. The quick machine's image and the test rig's guests are built with it.
//!
//! Host files and modules are read when the archive is made ([`Initramfs::to_bytes`]), so
//! errors reading them surface there.

use crate::cpio::CpioWriter;
use crate::modules::{Module, ModuleError};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The version of the bytes this builder makes of given entries. Caches of built images key on
/// it (the rig's do), so it changes whenever those bytes do.
pub const FORMAT: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum InitramfsError {
    #[error("initramfs entry {name:?}: {source}")]
    Entry {
        name: String,
        #[source]
        source: std::io::Error,
    },
    #[error("reading {path} for the initramfs: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot run {busybox} to list its applets: {source}")]
    BusyboxRun {
        busybox: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{busybox} could not list its applets ({status}): {stderr}")]
    BusyboxList {
        busybox: PathBuf,
        status: String,
        stderr: String,
    },
    #[error(transparent)]
    Module(#[from] ModuleError),
}

#[derive(Debug, Clone)]
enum Data {
    Bytes(Vec<u8>),
    Host(PathBuf),
    Module(Module),
}

#[derive(Debug, Clone)]
enum Entry {
    Dir(String),
    File(String, u32, Data),
    Symlink(String, String),
    CharDev(String, u32, u32, u32),
}

/// Collects entries in order; [`Initramfs::to_bytes`] makes the newc archive.
#[derive(Debug, Clone, Default)]
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

    /// A directory and its parents (each once, however often named).
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

    fn add(&mut self, path: &str, entry: impl FnOnce(String) -> Entry) -> &mut Self {
        let path = clean(path);
        if let Some((parent, _)) = path.rsplit_once('/') {
            self.dir(parent);
        }
        self.entries.push(entry(path));
        self
    }

    /// A file with the given content and permission bits.
    pub fn file(&mut self, path: &str, mode: u32, data: impl Into<Vec<u8>>) -> &mut Self {
        let data = Data::Bytes(data.into());
        self.add(path, |p| Entry::File(p, mode, data))
    }

    /// A file copied from the host when the archive is made.
    pub fn host_file(&mut self, path: &str, mode: u32, host: impl Into<PathBuf>) -> &mut Self {
        let data = Data::Host(host.into());
        self.add(path, |p| Entry::File(p, mode, data))
    }

    pub fn symlink(&mut self, path: &str, target: &str) -> &mut Self {
        self.add(path, |p| Entry::Symlink(p, target.to_owned()))
    }

    pub fn char_dev(&mut self, path: &str, mode: u32, major: u32, minor: u32) -> &mut Self {
        self.add(path, |p| Entry::CharDev(p, mode, major, minor))
    }

    /// `/init`, run by the kernel as PID 1.
    pub fn init(&mut self, script: &str) -> &mut Self {
        self.file("init", 0o755, script)
    }

    /// The usual skeleton: /dev/console (so init has a stdout before devtmpfs), mount points.
    pub fn skeleton(&mut self) -> &mut Self {
        for d in [
            "dev", "proc", "sys", "tmp", "run", "root", "etc", "bin", "sbin",
        ] {
            self.dir(d);
        }
        self.char_dev("dev/console", 0o600, 5, 1);
        self.char_dev("dev/null", 0o666, 1, 3)
    }

    /// Busybox at /bin/busybox with a link for each applet it lists.
    pub fn busybox(&mut self, host_busybox: &Path) -> Result<&mut Self, InitramfsError> {
        let list = applets(host_busybox, "--list-full")?;
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
    /// that survive a `switch_root` (once `/<dir>` is copied into the new root).
    pub fn busybox_in(
        &mut self,
        host_busybox: &Path,
        dir: &str,
    ) -> Result<&mut Self, InitramfsError> {
        let dir = clean(dir);
        let list = applets(host_busybox, "--list")?;
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

    /// Each module, uncompressed, as `DIR/NAME.ko`, in the given (load) order. Where an init
    /// finds the order is the caller's layout.
    pub fn modules(&mut self, dir: &str, modules: &[Module]) -> &mut Self {
        let dir = clean(dir);
        for m in modules {
            let data = Data::Module(m.clone());
            self.add(&format!("{dir}/{}", m.file_name()), |p| {
                Entry::File(p, 0o644, data)
            });
        }
        self
    }

    /// The archive.
    pub fn to_bytes(&self) -> Result<Vec<u8>, InitramfsError> {
        let mut w = CpioWriter::new();
        let entry = |name: &str| {
            let name = name.to_owned();
            move |source| InitramfsError::Entry { name, source }
        };
        for e in &self.entries {
            match e {
                Entry::Dir(p) => w.dir(p).map_err(entry(p))?,
                Entry::File(p, mode, data) => {
                    let host;
                    let bytes = match data {
                        Data::Bytes(b) => b,
                        Data::Host(h) => {
                            host = std::fs::read(h).map_err(|source| InitramfsError::Read {
                                path: h.clone(),
                                source,
                            })?;
                            &host
                        }
                        Data::Module(m) => {
                            host = m.read()?;
                            &host
                        }
                    };
                    w.file(p, *mode, bytes).map_err(entry(p))?
                }
                Entry::Symlink(p, target) => w.symlink(p, target).map_err(entry(p))?,
                Entry::CharDev(p, mode, major, minor) => {
                    w.char_dev(p, *mode, *major, *minor).map_err(entry(p))?
                }
            }
        }
        w.finish().map_err(entry("TRAILER!!!"))
    }
}

fn applets(busybox: &Path, how: &str) -> Result<String, InitramfsError> {
    let out =
        Command::new(busybox)
            .arg(how)
            .output()
            .map_err(|source| InitramfsError::BusyboxRun {
                busybox: busybox.to_owned(),
                source,
            })?;
    if !out.status.success() {
        return Err(InitramfsError::BusyboxList {
            busybox: busybox.to_owned(),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(i: &Initramfs) -> Vec<&str> {
        i.entries
            .iter()
            .map(|e| match e {
                Entry::Dir(p)
                | Entry::File(p, ..)
                | Entry::Symlink(p, _)
                | Entry::CharDev(p, ..) => p.as_str(),
            })
            .collect()
    }

    #[test]
    fn parents_are_created_once_and_first() {
        let mut i = Initramfs::new();
        i.file("a/b/c", 0o644, "x")
            .file("/a/b/d", 0o644, "y")
            .dir("a/e/");
        assert_eq!(names(&i), ["a", "a/b", "a/b/c", "a/b/d", "a/e"]);
    }

    /// The same entries make the same bytes as the writer given them by hand.
    #[test]
    fn archive_is_the_entries_in_order() {
        let host = std::env::temp_dir().join(format!(
            "vireo-initramfs-{}",
            vireo_domain::Uuid::new_v4().unwrap()
        ));
        std::fs::write(&host, b"from the host").unwrap();
        let mut i = Initramfs::new();
        i.char_dev("dev/null", 0o666, 1, 3)
            .host_file("etc/h", 0o600, &host)
            .symlink("bin/sh", "busybox")
            .init("#!/bin/sh\n");
        let mut w = CpioWriter::new();
        w.dir("dev").unwrap();
        w.char_dev("dev/null", 0o666, 1, 3).unwrap();
        w.dir("etc").unwrap();
        w.file("etc/h", 0o600, b"from the host").unwrap();
        w.dir("bin").unwrap();
        w.symlink("bin/sh", "busybox").unwrap();
        w.file("init", 0o755, b"#!/bin/sh\n").unwrap();
        assert_eq!(i.to_bytes().unwrap(), w.finish().unwrap());
        std::fs::remove_file(&host).unwrap();
        let err = i.to_bytes().unwrap_err();
        assert!(
            matches!(err, InitramfsError::Read { ref path, .. } if *path == host),
            "{err}"
        );
    }

    #[test]
    fn busybox_gets_a_link_for_each_applet() {
        let bb = crate::quick::find_busybox(None).expect("busybox-static is a build requirement");
        let mut i = Initramfs::new();
        i.busybox(&bb).unwrap().busybox_in(&bb, "/.tools/").unwrap();
        let n = names(&i);
        assert!(n.contains(&"bin/busybox"), "{n:?}");
        assert!(n.contains(&"bin/sh"), "{n:?}");
        assert!(n.contains(&".tools/busybox"), "{n:?}");
        assert!(n.contains(&".tools/bin/sh"), "{n:?}");
        assert!(!n.contains(&".tools/bin/busybox"), "{n:?}");
    }
}
