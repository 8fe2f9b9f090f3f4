//! The rig's guest images on the driver's initramfs builder ([`vireo_driver::initramfs`]): the
//! rig's module layout, atomic writes into the shared cache, and per-run archives appended to a
//! cached base.
//!
//! Linux unpacks concatenated archives one after the other, later entries replacing earlier
//! ones, so a large base image can be built once and a small per-run archive appended
//! ([`concat()`]).

use crate::error::{Result, RigError};
use crate::modules::Module;
use std::ops::{Deref, DerefMut};
use std::path::Path;

/// Where [`Initramfs::modules`] puts modules, and the file naming their load order (module
/// names, one a line: what the rig's init scripts read).
pub const MODULE_DIR: &str = "lib/vireo-modules";
pub const MODULE_ORDER: &str = "etc/vireo/modules";

/// The driver's builder (every method of it works here) with the rig's module layout and
/// [`Initramfs::write`].
#[derive(Debug, Clone, Default)]
pub struct Initramfs(vireo_driver::initramfs::Initramfs);

impl Deref for Initramfs {
    type Target = vireo_driver::initramfs::Initramfs;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl DerefMut for Initramfs {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl Initramfs {
    pub fn new() -> Self {
        Self::default()
    }

    /// Modules under [`MODULE_DIR`] and their names, in the given (load) order, in
    /// [`MODULE_ORDER`].
    pub fn modules(&mut self, modules: &[Module]) -> &mut Self {
        self.0.modules(MODULE_DIR, modules);
        let order: String = modules.iter().map(|m| format!("{}\n", m.name)).collect();
        self.0.file(MODULE_ORDER, 0o644, order);
        self
    }

    /// Writes the archive to `path` (atomically: a reader never sees half an archive).
    pub fn write(&self, path: &Path) -> Result<()> {
        write_atomic(path, &self.0.to_bytes()?)
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
    fn modules_go_where_the_init_scripts_look() {
        let dir = std::env::temp_dir().join(format!("vireo-rig-initramfs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (a, b) = (dir.join("kvm-amd.ko"), dir.join("kvm.ko"));
        std::fs::write(&a, b"amd").unwrap();
        std::fs::write(&b, b"kvm").unwrap();
        let mods = [
            Module {
                name: "kvm".into(),
                path: b,
            },
            Module {
                name: "kvm_amd".into(),
                path: a,
            },
        ];
        let mut img = Initramfs::new();
        img.modules(&mods);
        let mut want = vireo_driver::initramfs::Initramfs::new();
        want.file("lib/vireo-modules/kvm.ko", 0o644, "kvm")
            .file("lib/vireo-modules/kvm_amd.ko", 0o644, "amd")
            .file("etc/vireo/modules", 0o644, "kvm\nkvm_amd\n");
        assert_eq!(img.to_bytes().unwrap(), want.to_bytes().unwrap());
        let out = dir.join("out.cpio");
        img.write(&out).unwrap();
        concat(&[&out, &out], &dir.join("twice.cpio")).unwrap();
        assert_eq!(
            std::fs::read(dir.join("twice.cpio")).unwrap().len(),
            2 * std::fs::read(&out).unwrap().len()
        );
        let _ = std::fs::remove_dir_all(dir);
    }
}
