//! Undefining a machine, with or without its storage: the one rule for which image files go
//! with it, read through the domain's typed views (disks, os), never by searching the text.
//!
//! - [`StorageRemoval::VireoMade`]: the files Vireo made for the machine, that is, the disk
//!   images and boot files (kernel, initrd) inside [`Paths::images`](crate::Paths::images),
//!   minus any file another defined machine still uses. Files anywhere else are never touched.
//!   This is what the GUI's Delete offers and what `vireoctl undefine --remove-vireo-storage`
//!   does.
//! - [`StorageRemoval::All`]: virsh's `--remove-all-storage`: every disk image file of the
//!   machine, wherever it is and whoever else uses it (read-only images and CD-ROMs too), plus
//!   the Vireo-made boot files. As in virsh, storage goes only with a machine that is not running.
//!
//! Whatever the removal, a UEFI machine's variable store that Vireo made for it (its
//! `NAME_VARS.fd` in [`Paths::nvram_dir`](crate::Paths::nvram_dir)) goes with the definition,
//! as with libvirt's `--nvram`: nothing else would ever use it. A store the document names
//! elsewhere is the user's and stays; so does the store of a machine that runs on (as a
//! transient one), whose helper reopens it when the guest reboots.
//!
//! As virsh does, the definition goes first and the files after it; a file that cannot be
//! removed is reported ([`UndefineError::StorageLeft`]) with the machine already gone.

use crate::connection::DriverError;
use crate::definition::Definition;
use crate::state::DomainState;
use crate::Connection;
use std::path::{Component, Path, PathBuf};
use vireo_domain::{DiskType, Domain};

/// Which image files go with the definition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StorageRemoval {
    /// None (plain `undefine`).
    #[default]
    Keep,
    /// The files Vireo made for the machine that no other machine uses.
    VireoMade,
    /// virsh's `--remove-all-storage`: every disk image file (and the Vireo-made boot files).
    All,
}

/// Why a file that would have gone stays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeptReason {
    /// Another defined machine refers to it.
    UsedBy(String),
    /// Not a regular file (a device node, a directory): never removed.
    NotAFile,
}

/// A file left in place, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptImage {
    pub path: PathBuf,
    pub reason: KeptReason,
}

/// What [`undefine`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Undefined {
    pub name: String,
    pub removed: Vec<PathBuf>,
    pub kept: Vec<KeptImage>,
    /// The machine's own UEFI variable store, removed.
    pub nvram_removed: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum UndefineError {
    #[error(transparent)]
    Driver(#[from] DriverError),
    /// Storage is removed only with a machine that is not running (as virsh does).
    #[error("domain '{name}' is {state}: its storage can be removed only when it is shut off")]
    Active { name: String, state: DomainState },
    /// The definition is gone; these files could not be removed.
    #[error("domain '{name}' has been undefined, but {} could not be removed: {}", .left.len(), left_list(.left))]
    StorageLeft {
        name: String,
        left: Vec<(PathBuf, std::io::Error)>,
    },
}

fn left_list(left: &[(PathBuf, std::io::Error)]) -> String {
    left.iter()
        .map(|(p, e)| format!("{}: {e}", p.display()))
        .collect::<Vec<_>>()
        .join("; ")
}

/// `path` when it names a file inside `images`: absolute, without `..`, under the directory
/// (component-wise, so `images2/x` is not in `images`).
pub fn in_images(path: &str, images: &Path) -> Option<PathBuf> {
    let p = Path::new(path.trim());
    let plain = p.is_absolute() && p.components().all(|c| !matches!(c, Component::ParentDir));
    (plain && p.starts_with(images) && p != images).then(|| p.components().collect())
}

fn push_unique(list: &mut Vec<PathBuf>, p: PathBuf) {
    if !list.contains(&p) {
        list.push(p);
    }
}

/// The boot files (kernel, initrd) of `dom`, in document order.
fn boot_files(dom: &Domain) -> Vec<String> {
    dom.os()
        .map(|os| [os.kernel(), os.initrd()].into_iter().flatten().collect())
        .unwrap_or_default()
}

/// The files of `type='file'` disks (any device: disks, CD-ROMs, read-only or not).
fn disk_files(dom: &Domain) -> Vec<String> {
    let Some(devices) = dom.devices() else {
        return Vec::new();
    };
    devices
        .disks()
        .iter()
        .filter(|d| matches!(d.disk_type(), None | Some(DiskType::File)))
        .filter_map(|d| d.source())
        .filter(|s| !s.trim().is_empty())
        .collect()
}

/// The files inside `images` that the machine's boot files and disks name: the ones Vireo made
/// for it (the wizard's disks, the quick machine's initramfs, a clone's copies). Boot files come
/// first, then disks, each once.
pub fn vireo_images(dom: &Domain, images: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for f in boot_files(dom).into_iter().chain(disk_files(dom)) {
        if let Some(p) = in_images(&f, images) {
            push_unique(&mut found, p);
        }
    }
    found
}

/// virsh's `--remove-all-storage` list: the Vireo-made boot files and every disk image file.
pub fn all_images(dom: &Domain, images: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for f in boot_files(dom) {
        if let Some(p) = in_images(&f, images) {
            push_unique(&mut found, p);
        }
    }
    // A relative path would be resolved against whatever directory the caller runs in.
    for f in disk_files(dom) {
        let p = Path::new(f.trim());
        if p.is_absolute() {
            push_unique(&mut found, p.components().collect());
        }
    }
    found
}

/// Every file another defined machine names (boot files, disk sources), with its name.
fn used_by_others(conn: &Connection, name: &str) -> Result<Vec<(PathBuf, String)>, DriverError> {
    let mut used = Vec::new();
    // A definition that does not parse cannot be read for its files; it is skipped here as
    // everywhere it cannot be used.
    for other in conn.store().load_all()?.into_iter().flatten() {
        if other.name == name {
            continue;
        }
        for f in boot_files(&other.dom)
            .into_iter()
            .chain(disk_files(&other.dom))
        {
            let p: PathBuf = Path::new(f.trim()).components().collect();
            used.push((p, other.name.clone()));
        }
    }
    Ok(used)
}

/// What [`undefine`] with `removal` would remove from the stored definition `d`, and what it
/// would keep (and why). The GUI shows this list before it asks.
pub fn storage_plan(
    conn: &Connection,
    d: &Definition,
    removal: StorageRemoval,
) -> Result<(Vec<PathBuf>, Vec<KeptImage>), DriverError> {
    let images = conn.paths().images();
    let candidates = match removal {
        StorageRemoval::Keep => return Ok((Vec::new(), Vec::new())),
        StorageRemoval::VireoMade => vireo_images(&d.dom, &images),
        StorageRemoval::All => all_images(&d.dom, &images),
    };
    let others = match removal {
        StorageRemoval::VireoMade => used_by_others(conn, &d.name)?,
        _ => Vec::new(),
    };
    let mut remove = Vec::new();
    let mut kept = Vec::new();
    for p in candidates {
        if let Some((_, by)) = others.iter().find(|(o, _)| *o == p) {
            kept.push(KeptImage {
                path: p,
                reason: KeptReason::UsedBy(by.clone()),
            });
            continue;
        }
        match std::fs::symlink_metadata(&p) {
            // A symlink goes as a link; its target stays.
            Ok(m) if m.is_file() || m.file_type().is_symlink() => remove.push(p),
            Ok(_) => kept.push(KeptImage {
                path: p,
                reason: KeptReason::NotAFile,
            }),
            // Already gone: nothing to remove, nothing to report.
            Err(_) => {}
        }
    }
    Ok((remove, kept))
}

/// Removes the definition of `name` and, with `removal`, its storage. Without storage removal a
/// running machine keeps running as a transient one (as libvirt); with it, a running machine is
/// refused.
pub fn undefine(
    conn: &Connection,
    name: &str,
    removal: StorageRemoval,
) -> Result<Undefined, UndefineError> {
    let d = match conn.store().lookup(name) {
        Ok(d) => d,
        // A definition that no longer parses (or is not text) can still go, but only alone:
        // what storage it had cannot be told.
        Err(
            crate::store::StoreError::Invalid { .. } | crate::store::StoreError::NotUtf8 { .. },
        ) if removal == StorageRemoval::Keep => {
            conn.undefine(name)?;
            return Ok(Undefined {
                name: name.to_owned(),
                removed: Vec::new(),
                kept: Vec::new(),
                nvram_removed: None,
            });
        }
        Err(e) => return Err(DriverError::from(e).into()),
    };
    let (state, _) = conn.state(&d.name)?;
    if removal != StorageRemoval::Keep && state.is_active() {
        return Err(UndefineError::Active {
            name: d.name.clone(),
            state,
        });
    }
    let (remove, kept) = storage_plan(conn, &d, removal)?;
    let nvram =
        crate::nvram::own_store(&d.dom, &conn.paths().nvram_dir()).filter(|_| !state.is_active());
    conn.undefine(&d.name)?;
    let mut removed = Vec::new();
    let mut left = Vec::new();
    for p in remove {
        match std::fs::remove_file(&p) {
            Ok(()) => removed.push(p),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => left.push((p, e)),
        }
    }
    let mut nvram_removed = None;
    if let Some(p) = nvram {
        match std::fs::remove_file(&p) {
            Ok(()) => nvram_removed = Some(p),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => left.push((p, e)),
        }
    }
    if !left.is_empty() {
        return Err(UndefineError::StorageLeft { name: d.name, left });
    }
    Ok(Undefined {
        name: d.name,
        removed,
        kept,
        nvram_removed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Paths;

    #[test]
    fn vireo_images_are_the_files_under_the_images_dir() {
        let xml = "<domain><os><kernel>/boot/vmlinuz</kernel>\
            <initrd>/home/u/.local/share/vireo/images/q-initrd.img</initrd></os>\
            <devices><disk><source file='/home/u/.local/share/vireo/images/q.qcow2'/></disk>\
            <disk><source file=\"/srv/other.raw\"/></disk>\
            <disk><source file='/home/u/.local/share/vireo/images/../x.raw'/></disk>\
            <disk><source file='/home/u/.local/share/vireo/images/q.qcow2'/></disk>\
            </devices></domain>";
        let dom = Domain::parse(xml).unwrap();
        let found = vireo_images(&dom, Path::new("/home/u/.local/share/vireo/images"));
        assert_eq!(
            found,
            [
                PathBuf::from("/home/u/.local/share/vireo/images/q-initrd.img"),
                PathBuf::from("/home/u/.local/share/vireo/images/q.qcow2"),
            ]
        );
    }

    #[test]
    fn only_paths_inside_the_directory_count() {
        let images = Path::new("/d/vireo/images");
        assert!(in_images("/d/vireo/images/a.raw", images).is_some());
        assert!(in_images("/d/vireo/images/sub/a.raw", images).is_some());
        assert_eq!(
            in_images("/d/vireo/images/./a.raw", images),
            Some(PathBuf::from("/d/vireo/images/a.raw"))
        );
        for outside in [
            "/d/vireo/images2/a.raw",
            "/d/vireo/images/../a.raw",
            "/d/vireo/images/sub/../../a.raw",
            "d/vireo/images/a.raw",
            "/d/vireo/images",
            "/d/vireo/images/",
            "/etc/passwd",
            "",
        ] {
            assert_eq!(in_images(outside, images), None, "{outside}");
        }
    }

    #[test]
    fn block_and_network_disks_are_never_storage_files() {
        let xml = "<domain><devices>\
            <disk type='block'><source dev='/dev/sda'/></disk>\
            <disk type='network'><source name='pool/vol'/></disk>\
            <disk type='file' device='cdrom'><source file='/srv/os.iso'/><readonly/></disk>\
            <disk><source file='/srv/data.raw'/></disk>\
            </devices></domain>";
        let dom = Domain::parse(xml).unwrap();
        assert_eq!(
            all_images(&dom, Path::new("/d/vireo/images")),
            [PathBuf::from("/srv/os.iso"), PathBuf::from("/srv/data.raw")]
        );
        assert!(vireo_images(&dom, Path::new("/d/vireo/images")).is_empty());
    }

    fn conn(tag: &str) -> (Connection, PathBuf) {
        let dir = std::env::temp_dir().join(format!(
            "vireo-undefine-{tag}-{}",
            vireo_domain::Uuid::new_v4().unwrap()
        ));
        let p = Paths::all_under(&dir);
        std::fs::create_dir_all(p.images()).unwrap();
        (Connection::with_paths(p), dir)
    }

    fn machine(name: &str, kernel: &Path, initrd: &Path, disks: &[&Path]) -> String {
        let disks: String = disks
            .iter()
            .enumerate()
            .map(|(i, p)| {
                format!(
                    "<disk type='file' device='disk'><source file='{}'/><target dev='vd{}'/></disk>",
                    p.display(),
                    char::from(b'a' + i as u8)
                )
            })
            .collect();
        format!(
            "<domain type='kvm'><name>{name}</name><memory>65536</memory><os><type>hvm</type>\
             <kernel>{}</kernel><initrd>{}</initrd></os><devices>{disks}</devices></domain>",
            kernel.display(),
            initrd.display()
        )
    }

    #[test]
    fn undefine_removes_exactly_the_vireo_made_files_no_other_machine_uses() {
        let (c, dir) = conn("vireo");
        let images = c.paths().images();
        let kernel = dir.join("vmlinuz");
        let initrd = images.join("a-initrd.img");
        let own = images.join("a.qcow2");
        let shared = images.join("shared.raw");
        let outside = dir.join("mine.raw");
        // Looks inside the images directory through "..", and is not.
        let escape = PathBuf::from(format!("{}/../escape.raw", images.display()));
        for f in [&kernel, &initrd, &own, &shared, &outside] {
            std::fs::write(f, b"x").unwrap();
        }
        std::fs::write(c.paths().data.join("escape.raw"), b"x").unwrap();
        c.define_xml(&machine(
            "a",
            &kernel,
            &initrd,
            &[&own, &shared, &outside, &escape],
        ))
        .unwrap();
        c.define_xml(&machine("b", &kernel, &dir.join("b-initrd"), &[&shared]))
            .unwrap();

        let d = c.store().lookup("a").unwrap();
        let (remove, kept) = storage_plan(&c, &d, StorageRemoval::VireoMade).unwrap();
        assert_eq!(remove, [initrd.clone(), own.clone()]);
        assert_eq!(
            kept,
            [KeptImage {
                path: shared.clone(),
                reason: KeptReason::UsedBy("b".into())
            }]
        );
        let done = undefine(&c, "a", StorageRemoval::VireoMade).unwrap();
        assert_eq!(done.removed, [initrd.clone(), own.clone()]);
        assert!(!initrd.exists() && !own.exists());
        for stays in [&kernel, &shared, &outside] {
            assert!(stays.exists(), "{} was removed", stays.display());
        }
        assert!(c.paths().data.join("escape.raw").exists());
        assert!(matches!(c.info("a"), Err(DriverError::NotFound(_))));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_uefi_machine_takes_its_own_variable_store_along_and_no_other() {
        let (c, dir) = conn("nvram");
        let nvram = c.paths().nvram_dir();
        std::fs::create_dir_all(&nvram).unwrap();
        let own = crate::paths::nvram_store(&nvram, "u");
        let users = dir.join("u_VARS.fd");
        let others = crate::paths::nvram_store(&nvram, "v");
        for f in [&own, &users, &others] {
            std::fs::write(f, b"vars").unwrap();
        }
        let uefi = |name: &str, nvram: &str| {
            format!(
                "<domain type='kvm'><name>{name}</name><memory>65536</memory>\
                 <os firmware='efi'><type machine='pc'>hvm</type>{nvram}</os></domain>"
            )
        };
        c.define_xml(&uefi("u", "")).unwrap();
        let done = undefine(&c, "u", StorageRemoval::Keep).unwrap();
        assert_eq!(done.nvram_removed, Some(own.clone()));
        assert!(done.removed.is_empty());
        assert!(!own.exists());
        // A store the document names elsewhere is the user's.
        let named = format!("<nvram>{}</nvram>", users.display());
        c.define_xml(&uefi("u", &named)).unwrap();
        std::fs::write(&own, b"vars").unwrap();
        let done = undefine(&c, "u", StorageRemoval::VireoMade).unwrap();
        assert_eq!(done.nvram_removed, None);
        assert!(users.exists() && own.exists() && others.exists());
        // Without UEFI there is no store to remove.
        c.define_xml(&machine("u", &dir.join("k"), &dir.join("i"), &[]))
            .unwrap();
        assert_eq!(
            undefine(&c, "u", StorageRemoval::Keep)
                .unwrap()
                .nvram_removed,
            None
        );
        assert!(own.exists() && others.exists());
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn remove_all_storage_has_virshs_meaning() {
        let (c, dir) = conn("all");
        let images = c.paths().images();
        let kernel = dir.join("vmlinuz");
        let initrd = images.join("a-initrd.img");
        let outside = dir.join("mine.raw");
        let shared = images.join("shared.raw");
        for f in [&kernel, &initrd, &outside, &shared] {
            std::fs::write(f, b"x").unwrap();
        }
        c.define_xml(&machine("a", &kernel, &initrd, &[&outside, &shared]))
            .unwrap();
        c.define_xml(&machine("b", &kernel, &initrd, &[&shared]))
            .unwrap();
        let done = undefine(&c, "a", StorageRemoval::All).unwrap();
        assert_eq!(
            done.removed,
            [initrd.clone(), outside.clone(), shared.clone()]
        );
        assert!(
            kernel.exists(),
            "a boot file outside the images directory went"
        );
        // A plain undefine keeps everything.
        std::fs::write(&outside, b"x").unwrap();
        c.define_xml(&machine("a", &kernel, &kernel, &[&outside]))
            .unwrap();
        let done = undefine(&c, "a", StorageRemoval::Keep).unwrap();
        assert!(done.removed.is_empty());
        assert!(outside.exists());
        let _ = std::fs::remove_dir_all(dir);
    }
}
