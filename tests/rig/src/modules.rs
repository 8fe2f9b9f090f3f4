//! Kernel modules of the rig's kernel, found and put in load order by the driver
//! ([`vireo_driver::modules`]), each handed out uncompressed so that its path can go straight
//! into an image ([`crate::initramfs`], `host_file`).

use crate::error::Result;
use std::path::{Path, PathBuf};
pub use vireo_driver::modules::Module;
use vireo_driver::modules::{IfAbsent, ModuleTree};

/// The modules of one kernel release.
pub struct ModuleIndex {
    tree: ModuleTree,
    cache: PathBuf,
}

impl ModuleIndex {
    /// Indexes `lib/modules/<release>`; uncompressed copies of compressed modules go under
    /// `cache`.
    pub fn new(modules_dir: &Path, cache: &Path) -> Result<Self> {
        Ok(ModuleIndex {
            tree: ModuleTree::open(modules_dir)?,
            cache: cache.to_owned(),
        })
    }

    /// The given modules plus everything they depend on, dependencies first. Built-in modules
    /// are left out (they need no loading); one the kernel lacks is an error.
    pub fn resolve(&self, names: &[&str]) -> Result<Vec<Module>> {
        self.tree
            .resolve(names, IfAbsent::Fail)?
            .into_iter()
            .map(|m| self.uncompressed(m))
            .collect()
    }

    fn uncompressed(&self, m: Module) -> Result<Module> {
        if m.path.extension().is_some_and(|e| e == "ko") {
            return Ok(m);
        }
        let path = self.cache.join(m.file_name());
        if !path.is_file() {
            crate::initramfs::write_atomic(&path, &m.read()?)?;
        }
        Ok(Module { path, ..m })
    }
}
