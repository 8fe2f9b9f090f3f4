//! Persistent machine definitions: one XML file per machine, written so that a crash or a kill at
//! any instant leaves either the old or the new definition, never a torn one.
//!
//! Every change takes an exclusive `flock` on `$XDG_CONFIG_HOME/vireo/store.lock` (so two
//! `vireoctl`s or the GUI and `vireoctl` cannot interleave their read-check-write), writes a temp
//! file in the same directory, fsyncs it, renames it over the definition and fsyncs the directory.
//! Temp files left by a killed writer are ignored by readers and removed by the next writer.

use crate::definition::{canonical_uuid, check_name, Definition};
use crate::paths::{ensure_private_dir, Paths};
use std::fs::File;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use vireo_domain::Errors;

/// Store failures.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("domain '{0}' is not defined")]
    NotFound(String),
    #[error("{file}: {source}")]
    Invalid { file: PathBuf, source: Errors },
    /// The file is not UTF-8 text (XML documents Vireo reads must be).
    #[error("{file}:{line}:{column}: not UTF-8 text (the byte at offset {offset})")]
    NotUtf8 {
        file: PathBuf,
        line: usize,
        column: usize,
        offset: usize,
    },
    #[error("{0}")]
    Domain(#[from] Errors),
    #[error("domain '{name}' already exists with uuid {uuid}")]
    NameTaken { name: String, uuid: String },
    #[error("domain '{other}' is already defined with uuid {uuid}")]
    UuidTaken { other: String, uuid: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Where the first byte that is not UTF-8 sits, as a line and column an editor can go to.
fn not_utf8(file: PathBuf, bytes: &[u8], offset: usize) -> StoreError {
    let before = &bytes[..offset.min(bytes.len())];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    StoreError::NotUtf8 {
        file,
        line,
        column: offset - line_start + 1,
        offset,
    }
}

/// An exclusive lock held until dropped.
pub(crate) struct FileLock {
    _file: File,
}

impl FileLock {
    pub(crate) fn exclusive(path: &Path) -> std::io::Result<FileLock> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)?;
        loop {
            // SAFETY: flock on a file descriptor we own.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } == 0 {
                return Ok(FileLock { _file: file });
            }
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }

    /// Whether some process holds the lock (a missing file is not held). Never creates the file,
    /// so probing a directory that is being removed leaves nothing behind.
    pub(crate) fn is_held(path: &Path) -> bool {
        let Ok(file) = std::fs::OpenOptions::new().write(true).open(path) else {
            return false;
        };
        // SAFETY: flock on a file descriptor we own; released when `file` is dropped.
        let r = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        r != 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EWOULDBLOCK)
    }

    /// `Ok(None)` if someone else holds it.
    pub(crate) fn try_exclusive(path: &Path) -> std::io::Result<Option<FileLock>> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)?;
        // SAFETY: flock on a file descriptor we own.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
            Ok(Some(FileLock { _file: file }))
        } else {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
                Ok(None)
            } else {
                Err(e)
            }
        }
    }
}

/// Writes `data` to `path` atomically (temp file, fsync, rename, fsync of the directory).
pub(crate) fn write_atomic(path: &Path, data: &[u8]) -> std::io::Result<()> {
    commit_temp(path, data, 0o666, |tmp| std::fs::rename(tmp, path))
}

/// Writes `data` to `path` (mode `mode`, before the umask) only if nothing is there: whole or
/// not at all, as [`write_atomic`], but linked to its name, which fails with `AlreadyExists`
/// instead of replacing a file made meanwhile.
pub(crate) fn write_new_atomic(path: &Path, data: &[u8], mode: u32) -> std::io::Result<()> {
    commit_temp(path, data, mode, |tmp| std::fs::hard_link(tmp, path))
}

/// Writes and syncs `data` in a temporary file beside `path`, gives it its name with
/// `commit`, syncs the directory; the temporary name is gone afterwards either way.
fn commit_temp(
    path: &Path,
    data: &[u8],
    mode: u32,
    commit: impl FnOnce(&Path) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let base = path
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{base}.tmp.{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        drop(f);
        commit(&tmp)?;
        File::open(dir)?.sync_all()
    })();
    // After a rename the name is already gone; after a link (or a failure) it is removed here.
    let _ = std::fs::remove_file(&tmp);
    result
}

/// The definition store of one [`Paths`].
#[derive(Debug, Clone)]
pub struct Store {
    machines: PathBuf,
    autostart: PathBuf,
    lock: PathBuf,
}

impl Store {
    pub fn new(paths: &Paths) -> Store {
        Store::in_config(&paths.config)
    }

    /// The store of the configuration directory `config` (a [`Paths::config`]).
    pub fn in_config(config: &Path) -> Store {
        Store {
            machines: config.join("machines"),
            autostart: config.join("autostart"),
            lock: config.join("store.lock"),
        }
    }

    pub fn machines_dir(&self) -> PathBuf {
        self.machines.clone()
    }

    pub fn autostart_dir(&self) -> PathBuf {
        self.autostart.clone()
    }

    /// Path of a machine's definition file.
    pub fn file(&self, name: &str) -> PathBuf {
        self.machines.join(format!("{name}.xml"))
    }

    fn locked(&self) -> Result<FileLock, StoreError> {
        ensure_private_dir(&self.machines).map_err(io(&self.machines))?;
        ensure_private_dir(&self.autostart).map_err(io(&self.autostart))?;
        FileLock::exclusive(&self.lock).map_err(io(&self.lock))
    }

    /// Names of all defined machines, sorted.
    pub fn names(&self) -> Result<Vec<String>, StoreError> {
        let rd = match std::fs::read_dir(&self.machines) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io(&self.machines)(e)),
        };
        let mut names = Vec::new();
        for entry in rd {
            let entry = entry.map_err(io(&self.machines))?;
            let f = entry.file_name().to_string_lossy().into_owned();
            if f.starts_with('.') {
                continue;
            }
            if let Some(n) = f.strip_suffix(".xml") {
                names.push(n.to_owned());
            }
        }
        names.sort();
        Ok(names)
    }

    /// Loads one definition.
    pub fn load(&self, name: &str) -> Result<Definition, StoreError> {
        let file = self.file(name);
        if check_name(name).is_err() {
            return Err(StoreError::NotFound(name.to_owned()));
        }
        let bytes = match std::fs::read(&file) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StoreError::NotFound(name.to_owned()))
            }
            Err(e) => return Err(io(&file)(e)),
        };
        let text = match std::str::from_utf8(&bytes) {
            Ok(t) => t,
            Err(e) => return Err(not_utf8(file, &bytes, e.valid_up_to())),
        };
        Definition::parse(text).map_err(|source| StoreError::Invalid { file, source })
    }

    /// Loads every definition; a file that does not parse is reported, not skipped.
    pub fn load_all(&self) -> Result<Vec<Result<Definition, StoreError>>, StoreError> {
        Ok(self.names()?.into_iter().map(|n| self.load(&n)).collect())
    }

    /// Finds a definition by name or UUID.
    pub fn lookup(&self, name_or_uuid: &str) -> Result<Definition, StoreError> {
        match self.load(name_or_uuid) {
            Err(StoreError::NotFound(_)) => {}
            other => return other,
        }
        if let Some(u) = canonical_uuid(name_or_uuid) {
            for d in self.load_all()?.into_iter().flatten() {
                if d.uuid.as_deref() == Some(u.as_str()) {
                    return Ok(d);
                }
            }
        }
        Err(StoreError::NotFound(name_or_uuid.to_owned()))
    }

    /// Defines (creates or replaces) a machine from XML text. Returns the stored domain and
    /// whether it is new. As libvirt: an existing name keeps its UUID, a UUID in use by another
    /// name is refused, a missing UUID and missing MACs are generated, and a `pc` machine's
    /// virtio devices get the PCI addresses the VMM will give them.
    pub fn define(&self, xml: &str) -> Result<(Definition, bool), StoreError> {
        self.define_inner(xml, false)
    }

    /// Defines a new machine: as [`Store::define`], but a machine of that name (even one whose
    /// file no longer parses) is never replaced.
    pub fn define_new(&self, xml: &str) -> Result<Definition, StoreError> {
        self.define_inner(xml, true).map(|(d, _)| d)
    }

    fn define_inner(&self, xml: &str, only_new: bool) -> Result<(Definition, bool), StoreError> {
        let mut dom = Definition::parse(xml)?;
        let _lock = self.locked()?;
        self.clean_temp_files();
        let existing = match self.load(&dom.name) {
            Ok(d) => Some(d),
            Err(StoreError::NotFound(_)) => None,
            Err(e @ (StoreError::Invalid { .. } | StoreError::NotUtf8 { .. })) if only_new => {
                return Err(e)
            }
            // A broken file may be replaced.
            Err(StoreError::Invalid { .. } | StoreError::NotUtf8 { .. }) => None,
            Err(e) => return Err(e),
        };
        if let (true, Some(old)) = (only_new, &existing) {
            return Err(StoreError::NameTaken {
                name: dom.name.clone(),
                uuid: old.uuid.clone().unwrap_or_default(),
            });
        }
        if let (Some(old), Some(new)) = (&existing, &dom.uuid) {
            if let Some(old_uuid) = &old.uuid {
                if old_uuid != new {
                    return Err(StoreError::NameTaken {
                        name: dom.name.clone(),
                        uuid: old_uuid.clone(),
                    });
                }
            }
        }
        let generated = dom
            .ensure_uuid(existing.as_ref().and_then(|d| d.uuid.as_deref()))
            .and_then(|()| dom.ensure_macs());
        generated.map_err(io(Path::new("/dev/urandom")))?;
        dom.ensure_scsi_controller();
        dom.ensure_pci_addresses();
        if let Some(u) = &dom.uuid {
            if let Some(other) = self.uuid_user(u, &dom.name)? {
                return Err(StoreError::UuidTaken {
                    other,
                    uuid: u.clone(),
                });
            }
        }
        let file = self.file(&dom.name);
        write_atomic(&file, dom.to_xml().as_bytes()).map_err(io(&file))?;
        Ok((dom, existing.is_none()))
    }

    /// The other machine whose definition holds `uuid` (canonical form), if any. Only each
    /// file's top-level `<uuid>` is read: a file that does not parse that far holds none.
    fn uuid_user(&self, uuid: &str, except: &str) -> Result<Option<String>, StoreError> {
        for name in self.names()? {
            if name == except {
                continue;
            }
            let file = self.file(&name);
            let text = match std::fs::read_to_string(&file) {
                Ok(t) => t,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) if e.kind() == std::io::ErrorKind::InvalidData => continue,
                Err(e) => return Err(io(&file)(e)),
            };
            let found = vireo_domain::peek::peek_uuid(&text).map(|u| u.to_string());
            if found.as_deref() == Some(uuid) {
                return Ok(Some(name));
            }
        }
        Ok(None)
    }

    /// Removes a definition (and its autostart mark). A file that no longer parses (or is not
    /// even text) is removed too, so that the user can always get rid of it: then there is no
    /// definition to return.
    pub fn undefine(&self, name: &str) -> Result<Option<Definition>, StoreError> {
        let _lock = self.locked()?;
        let dom = match self.load(name) {
            Ok(d) => Some(d),
            Err(StoreError::Invalid { .. } | StoreError::NotUtf8 { .. })
                if self.file(name).exists() =>
            {
                None
            }
            Err(e) => return Err(e),
        };
        let file = self.file(name);
        std::fs::remove_file(&file).map_err(io(&file))?;
        File::open(&self.machines)
            .and_then(|d| d.sync_all())
            .map_err(io(&self.machines))?;
        let link = self.autostart.join(format!("{name}.xml"));
        match std::fs::remove_file(&link) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(&link)(e)),
            _ => {}
        }
        Ok(dom)
    }

    pub fn autostart(&self, name: &str) -> bool {
        let link = self.autostart.join(format!("{name}.xml"));
        std::fs::symlink_metadata(&link).is_ok() && self.file(name).exists()
    }

    pub fn set_autostart(&self, name: &str, on: bool) -> Result<(), StoreError> {
        let _lock = self.locked()?;
        self.load(name)?;
        let link = self.autostart.join(format!("{name}.xml"));
        let _ = std::fs::remove_file(&link);
        if on {
            std::os::unix::fs::symlink(self.file(name), &link).map_err(io(&link))?;
        }
        File::open(&self.autostart)
            .and_then(|d| d.sync_all())
            .map_err(io(&self.autostart))
    }

    fn clean_temp_files(&self) {
        let Ok(rd) = std::fs::read_dir(&self.machines) else {
            return;
        };
        for e in rd.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if n.starts_with('.') && n.contains(".tmp.") {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (Store, PathBuf) {
        let dir = std::env::temp_dir().join(format!(
            "vireo-store-test-{}",
            vireo_domain::Uuid::new_v4().unwrap()
        ));
        let p = Paths::all_under(&dir);
        (Store::new(&p), dir)
    }

    const A: &str = "<domain type='kvm'>\n  <name>a</name>\n  <memory>1024</memory>\n  <os>\n    <type>hvm</type>\n  </os>\n  <devices>\n    <interface type='user'/>\n  </devices>\n</domain>";

    #[test]
    fn define_list_undefine() {
        let (s, dir) = store();
        let (d, new) = s.define(A).unwrap();
        assert!(new);
        let uuid = d.uuid.clone().unwrap();
        let again = s.load("a").unwrap();
        assert_eq!(again.uuid.as_deref(), Some(uuid.as_str()));
        assert!(
            again.to_xml().contains("<mac address='52:54:00:"),
            "{}",
            again.to_xml()
        );
        // Redefining without a UUID keeps the old one.
        let (d2, new2) = s.define(A).unwrap();
        assert!(!new2);
        assert_eq!(d2.uuid, d.uuid);
        // Same UUID, other name: refused.
        let other = A.replace(
            "<name>a</name>",
            &format!("<name>b</name><uuid>{uuid}</uuid>"),
        );
        let e = s.define(&other).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("domain 'a' is already defined with uuid {uuid}")
        );
        // Same name, other UUID: refused.
        let other = A.replace(
            "<name>a</name>",
            "<name>a</name><uuid>00000000-0000-4000-8000-000000000001</uuid>",
        );
        assert!(matches!(
            s.define(&other),
            Err(StoreError::NameTaken { .. })
        ));
        assert_eq!(s.names().unwrap(), vec!["a".to_owned()]);
        assert_eq!(s.lookup(&uuid).unwrap().name, "a");
        s.set_autostart("a", true).unwrap();
        assert!(s.autostart("a"));
        s.undefine("a").unwrap();
        assert!(!s.autostart("a"));
        assert!(matches!(s.load("a"), Err(StoreError::NotFound(_))));
        assert!(matches!(s.undefine("a"), Err(StoreError::NotFound(_))));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn temp_files_are_invisible() {
        let (s, dir) = store();
        s.define(A).unwrap();
        std::fs::write(s.machines.join(".a.xml.tmp.1"), "<dom").unwrap();
        assert_eq!(s.names().unwrap(), vec!["a".to_owned()]);
        s.define(A).unwrap();
        assert!(!s.machines.join(".a.xml.tmp.1").exists());
        let _ = std::fs::remove_dir_all(dir);
    }

    /// The stored file is the user's document: quoting, comments, foreign metadata and
    /// elements no view models come back byte for byte; only the generated UUID is added.
    #[test]
    fn define_keeps_the_document_verbatim() {
        let (s, dir) = store();
        let src = "<?xml version=\"1.0\"?>\n<!-- mine -->\n<domain type=\"kvm\">\n  <name>v</name>\n  <metadata>\n    <x:note xmlns:x=\"urn:x\">keep &amp; me</x:note>\n  </metadata>\n  <memory unit=\"MiB\">64</memory>\n  <os>\n    <type arch=\"x86_64\">hvm</type>\n  </os>\n  <devices>\n    <watchdog model=\"i6300esb\"/>\n  </devices>\n</domain>\n";
        let (d, _) = s.define(src).unwrap();
        let uuid = d.uuid.clone().unwrap();
        let stored = std::fs::read_to_string(s.file("v")).unwrap();
        assert_eq!(
            stored,
            src.replace(
                "<name>v</name>\n",
                &format!("<name>v</name>\n  <uuid>{uuid}</uuid>\n")
            )
        );
        // Defining the stored document again changes nothing.
        s.define(&stored).unwrap();
        assert_eq!(std::fs::read_to_string(s.file("v")).unwrap(), stored);
        let _ = std::fs::remove_dir_all(dir);
    }

    /// A `pc` machine's virtio devices get the slots the VMM will use written back, as
    /// libvirt writes them; the images need not exist yet.
    #[test]
    fn define_writes_the_pci_slots_of_a_pc_machine() {
        let (s, dir) = store();
        let src = "<domain type='kvm'>\n  <name>p</name>\n  <memory>1024</memory>\n  <os>\n    <type machine='pc'>hvm</type>\n  </os>\n  <devices>\n    <disk type='file'>\n      <source file='/no/such/a.img'/>\n      <target dev='vda' bus='virtio'/>\n    </disk>\n    <disk type='file'>\n      <source file='/no/such/b.img'/>\n      <target dev='vdb' bus='virtio'/>\n      <address type='pci' domain='0x0000' bus='0x00' slot='0x03' function='0x0'/>\n    </disk>\n    <interface type='user'/>\n  </devices>\n</domain>\n";
        let slot = |n: &str| {
            format!("\n      <address type='pci' domain='0x0000' bus='0x00' slot='{n}' function='0x0'/>\n    </")
        };
        s.define(src).unwrap();
        let stored = std::fs::read_to_string(s.file("p")).unwrap();
        assert!(
            stored.contains(&format!(
                "<target dev='vda' bus='virtio'/>{}disk>",
                slot("0x04")
            )),
            "{stored}"
        );
        assert!(stored.contains(&slot("0x03")), "{stored}");
        assert!(
            stored.contains(&format!("{}interface>", slot("0x05"))),
            "{stored}"
        );
        assert_eq!(stored.matches("<address ").count(), 3, "{stored}");
        // Defining again, the stored document or the original, gives the same slots.
        s.define(&stored).unwrap();
        assert_eq!(std::fs::read_to_string(s.file("p")).unwrap(), stored);
        s.define(src).unwrap();
        let again = std::fs::read_to_string(s.file("p")).unwrap();
        let addresses = |x: &str| -> Vec<String> {
            x.lines()
                .filter(|l| l.contains("<address "))
                .map(str::to_owned)
                .collect()
        };
        assert_eq!(addresses(&again), addresses(&stored));
        let _ = std::fs::remove_dir_all(dir);
    }

    /// The mmio machine has no PCI bus; a document whose addresses the start would refuse is
    /// stored as given (the start says what is wrong).
    #[test]
    fn define_writes_no_pci_slots_for_microvm_or_a_refused_address() {
        let (s, dir) = store();
        let disk = "<disk type='file'><source file='/no/a.img'/><target dev='vda'/></disk>";
        for machine in ["", " machine='microvm'", " machine='vireo'"] {
            let xml = A
                .replace("<type>", &format!("<type{machine}>"))
                .replace("<devices>", &format!("<devices>{disk}"));
            s.define(&xml).unwrap();
            let stored = std::fs::read_to_string(s.file("a")).unwrap();
            assert!(!stored.contains("<address"), "{stored}");
        }
        let taken = "<disk type='file'><source file='/no/b.img'/><target dev='vdb'/>\
                     <address type='pci' slot='0x02'/></disk>";
        let xml = A
            .replace("<type>", "<type machine='pc'>")
            .replace("<devices>", &format!("<devices>{disk}{taken}"));
        s.define(&xml).unwrap();
        let stored = std::fs::read_to_string(s.file("a")).unwrap();
        assert_eq!(stored.matches("<address").count(), 1, "{stored}");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_file_that_is_not_utf8_is_named_and_can_be_replaced_or_removed() {
        let (s, dir) = store();
        s.define(A).unwrap();
        let file = s.file("a");
        std::fs::write(
            &file,
            b"<domain type='kvm'>\n  <name>a\xff</name>\n</domain>\n",
        )
        .unwrap();
        match s.load("a") {
            Err(StoreError::NotUtf8 { line, column, .. }) => assert_eq!((line, column), (2, 10)),
            other => panic!("expected NotUtf8, got {other:?}"),
        }
        assert!(s
            .load("a")
            .unwrap_err()
            .to_string()
            .contains(":2:10: not UTF-8"));
        // Redefining replaces it ...
        s.define(A).unwrap();
        assert_eq!(s.load("a").unwrap().name, "a");
        // ... and undefining removes it.
        std::fs::write(&file, b"\xfe\xff").unwrap();
        s.set_autostart("a", false).unwrap_err();
        assert!(s.undefine("a").unwrap().is_none());
        assert!(!file.exists());
        assert!(matches!(s.undefine("a"), Err(StoreError::NotFound(_))));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_file_that_no_longer_parses_can_be_undefined() {
        let (s, dir) = store();
        s.define(A).unwrap();
        s.set_autostart("a", true).unwrap();
        std::fs::write(s.file("a"), "<domain><name>a</name>").unwrap();
        assert!(matches!(s.load("a"), Err(StoreError::Invalid { .. })));
        assert!(s.undefine("a").unwrap().is_none());
        assert!(!s.file("a").exists());
        assert!(!s.autostart("a"));
        assert!(std::fs::symlink_metadata(s.autostart.join("a.xml")).is_err());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
