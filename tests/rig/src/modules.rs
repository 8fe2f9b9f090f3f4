//! Kernel modules from the unpacked Debian package: find them by name, read their
//! dependencies from the ELF `.modinfo` section and return them in load order.
//!
//! The package ships no `modules.dep` (depmod runs at install time), so the dependency graph is
//! read from the modules themselves. Busybox `insmod` reads neither `.ko.xz` nor dependencies,
//! hence the decompression and the explicit order.

use crate::error::{Result, RigError};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A module ready for `insmod`: uncompressed, in the rig cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Module {
    /// Canonical name (dashes turned into underscores), e.g. `kvm_amd`.
    pub name: String,
    /// Path of the uncompressed `.ko`.
    pub path: PathBuf,
}

/// Index of the modules of one kernel release.
pub struct ModuleIndex {
    dir: PathBuf,
    by_name: BTreeMap<String, PathBuf>,
    builtin: BTreeSet<String>,
    cache: PathBuf,
}

/// Module names as the kernel compares them: `kvm-amd` and `kvm_amd` are one module.
pub fn canonical(name: &str) -> String {
    name.trim().replace('-', "_")
}

impl ModuleIndex {
    /// Indexes `lib/modules/<release>`; uncompressed copies go under `cache`.
    pub fn new(modules_dir: &Path, cache: &Path) -> Result<Self> {
        let mut by_name = BTreeMap::new();
        let mut stack = vec![modules_dir.join("kernel")];
        while let Some(dir) = stack.pop() {
            let entries =
                std::fs::read_dir(&dir).map_err(|e| RigError::io("listing modules", &dir, e))?;
            for entry in entries {
                let entry = entry.map_err(|e| RigError::io("listing modules", &dir, e))?;
                let path = entry.path();
                if path.is_dir() {
                    stack.push(path);
                    continue;
                }
                let Some(file) = path.file_name().and_then(|f| f.to_str()) else {
                    continue;
                };
                let stem = file
                    .strip_suffix(".ko.xz")
                    .or_else(|| file.strip_suffix(".ko"));
                if let Some(stem) = stem {
                    by_name.insert(canonical(stem), path.clone());
                }
            }
        }
        let builtin = std::fs::read_to_string(modules_dir.join("modules.builtin"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.rsplit('/').next())
            .filter_map(|f| f.strip_suffix(".ko"))
            .map(canonical)
            .collect();
        Ok(ModuleIndex {
            dir: modules_dir.to_owned(),
            by_name,
            builtin,
            cache: cache.to_owned(),
        })
    }

    /// The given modules plus everything they depend on, dependencies first. Built-in modules
    /// are left out (they need no loading).
    pub fn resolve(&self, names: &[&str]) -> Result<Vec<Module>> {
        let mut order = Vec::new();
        let mut done = BTreeSet::new();
        let mut visiting = BTreeSet::new();
        for name in names {
            self.visit(&canonical(name), &mut order, &mut done, &mut visiting)?;
        }
        Ok(order)
    }

    fn visit(
        &self,
        name: &str,
        order: &mut Vec<Module>,
        done: &mut BTreeSet<String>,
        visiting: &mut BTreeSet<String>,
    ) -> Result<()> {
        if done.contains(name) || self.builtin.contains(name) {
            return Ok(());
        }
        if !visiting.insert(name.to_owned()) {
            return Err(RigError::BadModule {
                path: self.dir.join(name),
                why: "circular module dependency".into(),
            });
        }
        let src = self
            .by_name
            .get(name)
            .ok_or_else(|| RigError::ModuleNotFound {
                name: name.to_owned(),
                dir: self.dir.clone(),
            })?;
        let path = self.uncompressed(name, src)?;
        let bytes = std::fs::read(&path).map_err(|e| RigError::io("reading module", &path, e))?;
        for dep in modinfo(&bytes, &path)?
            .into_iter()
            .filter_map(|(k, v)| (k == "depends").then_some(v))
            .flat_map(|v| v.split(',').map(canonical).collect::<Vec<_>>())
            .filter(|d| !d.is_empty())
        {
            self.visit(&dep, order, done, visiting)?;
        }
        visiting.remove(name);
        done.insert(name.to_owned());
        order.push(Module {
            name: name.to_owned(),
            path,
        });
        Ok(())
    }

    fn uncompressed(&self, name: &str, src: &Path) -> Result<PathBuf> {
        if src.extension().is_some_and(|e| e == "ko") {
            return Ok(src.to_owned());
        }
        let out = self.cache.join(format!("{name}.ko"));
        if out.is_file() {
            return Ok(out);
        }
        std::fs::create_dir_all(&self.cache)
            .map_err(|e| RigError::io("creating module cache", &self.cache, e))?;
        let out_tmp = crate::scratch_name(&out);
        let file = std::fs::File::create(&out_tmp)
            .map_err(|e| RigError::io("creating module file", &out_tmp, e))?;
        let status = Command::new("xz")
            .arg("-dc")
            .arg(src)
            .stdout(file)
            .status()
            .map_err(|source| RigError::MissingTool {
                program: "xz".into(),
                package: "xz-utils",
                why: "decompressing kernel modules",
                source,
            })?;
        if !status.success() {
            return Err(RigError::ToolFailed {
                command: format!("xz -dc {}", src.display()),
                status: status.to_string(),
                stderr: String::new(),
            });
        }
        std::fs::rename(&out_tmp, &out).map_err(|e| RigError::io("storing module", &out, e))?;
        Ok(out)
    }
}

/// The key=value pairs of a module's `.modinfo` section.
pub fn modinfo(elf: &[u8], path: &Path) -> Result<Vec<(String, String)>> {
    let bad = |why: &str| RigError::BadModule {
        path: path.to_owned(),
        why: why.to_owned(),
    };
    let u16_at = |off: usize| -> Result<u16> {
        elf.get(off..off + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
            .ok_or_else(|| bad("truncated ELF header"))
    };
    let u64_at = |off: usize| -> Result<u64> {
        elf.get(off..off + 8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes)
            .ok_or_else(|| bad("truncated ELF header"))
    };
    if elf.get(..6) != Some(&[0x7f, b'E', b'L', b'F', 2, 1][..]) {
        return Err(bad("not a little-endian ELF64 file"));
    }
    let shoff = usize::try_from(u64_at(0x28)?).map_err(|_| bad("section table offset"))?;
    let shentsize = usize::from(u16_at(0x3a)?);
    let shnum = usize::from(u16_at(0x3c)?);
    let shstrndx = usize::from(u16_at(0x3e)?);
    if shentsize < 64 {
        return Err(bad("section header entry too small"));
    }
    let section = |i: usize| -> Result<(u32, usize, usize)> {
        let base = shoff
            .checked_add(
                i.checked_mul(shentsize)
                    .ok_or_else(|| bad("section index"))?,
            )
            .ok_or_else(|| bad("section offset"))?;
        let name = elf
            .get(base..base + 4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_le_bytes)
            .ok_or_else(|| bad("truncated section table"))?;
        let off = usize::try_from(u64_at(base + 0x18)?).map_err(|_| bad("section offset"))?;
        let size = usize::try_from(u64_at(base + 0x20)?).map_err(|_| bad("section size"))?;
        Ok((name, off, size))
    };
    let slice = |off: usize, size: usize| -> Result<&[u8]> {
        off.checked_add(size)
            .and_then(|end| elf.get(off..end))
            .ok_or_else(|| bad("section outside the file"))
    };
    let (_, stroff, strsize) = section(shstrndx)?;
    let strtab = slice(stroff, strsize)?;
    for i in 0..shnum {
        let (name, off, size) = section(i)?;
        let name = strtab
            .get(name as usize..)
            .and_then(|s| s.split(|b| *b == 0).next())
            .unwrap_or_default();
        if name == b".modinfo" {
            return Ok(slice(off, size)?
                .split(|b| *b == 0)
                .filter_map(|kv| {
                    let kv = String::from_utf8_lossy(kv);
                    kv.split_once('=')
                        .map(|(k, v)| (k.to_owned(), v.to_owned()))
                })
                .collect());
        }
    }
    Err(bad("no .modinfo section"))
}
