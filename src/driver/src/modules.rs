//! Kernel modules for an initramfs: finds them in a module tree (`lib/modules/RELEASE`), orders
//! them dependencies first, and reads them uncompressed.
//!
//! Dependencies come from `modules.dep` where the tree has one (an installed kernel: depmod wrote
//! it), else from each module's own `.modinfo` (an unpacked package, which ships none because
//! depmod runs at install time). Busybox `insmod` reads neither compressed modules nor
//! dependencies, hence the decompression and the explicit order.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Debug, thiserror::Error)]
pub enum ModuleError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{dir}: no kernel modules in this tree")]
    NoModules { dir: PathBuf },
    #[error("kernel module {name} not found under {dir}")]
    NotFound { name: String, dir: PathBuf },
    #[error("kernel module {name} under {dir} depends on itself")]
    Circular { name: String, dir: PathBuf },
    #[error("kernel module {path} is not a valid ELF module: {why}")]
    Bad { path: PathBuf, why: String },
    #[error("cannot run `{program}` to decompress {path}: {source}; install it (Debian package `{package}`)")]
    MissingTool {
        program: &'static str,
        package: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("`{program}` could not decompress {path}: {stderr}")]
    Decompress {
        program: &'static str,
        path: PathBuf,
        stderr: String,
    },
}

/// Compressed module suffixes: the tool that decompresses each to stdout, and its package.
const COMPRESSED: &[(&str, &str, &str, &str)] = &[
    (".xz", "xz", "-dc", "xz-utils"),
    (".zst", "zstd", "-dcq", "zstd"),
    (".gz", "gzip", "-dc", "gzip"),
];

/// Module names as the kernel compares them: `kvm-amd` and `kvm_amd` are one module.
pub fn canonical(name: &str) -> String {
    name.trim().replace('-', "_")
}

/// The module a file holds, from its name: `.../kvm-amd.ko.xz` is `kvm_amd`; `None` for a file
/// that is no module.
pub fn name_of(file: &str) -> Option<String> {
    let base = file.rsplit('/').next().unwrap_or(file);
    let base = COMPRESSED
        .iter()
        .find_map(|(suffix, ..)| base.strip_suffix(suffix))
        .unwrap_or(base);
    base.strip_suffix(".ko")
        .filter(|n| !n.is_empty())
        .map(canonical)
}

/// One module of a tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Module {
    /// Canonical name, e.g. `kvm_amd`.
    pub name: String,
    /// Its file in the tree (may be compressed).
    pub path: PathBuf,
}

impl Module {
    /// Its name in an initramfs: `NAME.ko`.
    pub fn file_name(&self) -> String {
        format!("{}.ko", self.name)
    }

    /// Its bytes, uncompressed (by the system's xz, zstd or gzip).
    pub fn read(&self) -> Result<Vec<u8>, ModuleError> {
        read_module(&self.path)
    }
}

fn read_module(path: &Path) -> Result<Vec<u8>, ModuleError> {
    let name = path.to_string_lossy();
    let Some(&(_, program, arg, package)) = COMPRESSED
        .iter()
        .find(|(suffix, ..)| name.ends_with(suffix))
    else {
        return std::fs::read(path).map_err(|source| ModuleError::Io {
            path: path.to_owned(),
            source,
        });
    };
    let out = Command::new(program)
        .arg(arg)
        .arg(path)
        .output()
        .map_err(|source| ModuleError::MissingTool {
            program,
            package,
            path: path.to_owned(),
            source,
        })?;
    if !out.status.success() {
        return Err(ModuleError::Decompress {
            program,
            path: path.to_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(out.stdout)
}

/// What a wanted module that the kernel neither has as a file nor builds in means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IfAbsent {
    /// Nothing: this kernel does without it (the quick machine takes what the host has).
    Skip,
    /// An error: the image needs it (the rig's guests).
    Fail,
}

/// The modules of one kernel release and their dependencies.
#[derive(Debug, Clone)]
pub struct ModuleTree {
    dir: PathBuf,
    files: BTreeMap<String, PathBuf>,
    /// From modules.dep: each module's dependencies in load order. `None`: read `.modinfo`.
    deps: Option<BTreeMap<String, Vec<String>>>,
    /// From modules.builtin: compiled into the kernel, nothing to load.
    builtin: BTreeSet<String>,
}

impl ModuleTree {
    /// Indexes `lib/modules/RELEASE` (of a host or of an unpacked package).
    pub fn open(dir: &Path) -> Result<ModuleTree, ModuleError> {
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| ModuleError::Io { path, source }
        };
        let builtin_file = dir.join("modules.builtin");
        let builtin = match std::fs::read_to_string(&builtin_file) {
            Ok(text) => text.lines().filter_map(name_of).collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeSet::new(),
            Err(e) => return Err(io(&builtin_file)(e)),
        };
        let mut files = BTreeMap::new();
        let dep_file = dir.join("modules.dep");
        let deps = if dep_file.is_file() {
            let text = std::fs::read_to_string(&dep_file).map_err(io(&dep_file))?;
            let mut deps = BTreeMap::new();
            for line in text.lines() {
                let Some((file, rest)) = line.split_once(':') else {
                    continue;
                };
                let Some(name) = name_of(file) else {
                    continue;
                };
                files.insert(name.clone(), dir.join(file));
                // Each line lists direct and indirect dependencies, the deepest last.
                deps.insert(
                    name,
                    rest.split_whitespace().rev().filter_map(name_of).collect(),
                );
            }
            Some(deps)
        } else {
            walk(dir, &mut files)?;
            if files.is_empty() {
                return Err(ModuleError::NoModules {
                    dir: dir.to_owned(),
                });
            }
            None
        };
        Ok(ModuleTree {
            dir: dir.to_owned(),
            files,
            deps,
            builtin,
        })
    }

    /// `wanted` and everything they depend on, dependencies first, each once; built-in modules
    /// are left out (nothing to load).
    pub fn resolve(&self, wanted: &[&str], absent: IfAbsent) -> Result<Vec<Module>, ModuleError> {
        let mut order = Vec::new();
        let mut done = BTreeSet::new();
        let mut visiting = BTreeSet::new();
        for name in wanted {
            self.visit(
                &canonical(name),
                absent,
                &mut order,
                &mut done,
                &mut visiting,
            )?;
        }
        Ok(order)
    }

    fn visit(
        &self,
        name: &str,
        absent: IfAbsent,
        order: &mut Vec<Module>,
        done: &mut BTreeSet<String>,
        visiting: &mut BTreeSet<String>,
    ) -> Result<(), ModuleError> {
        if done.contains(name) || self.builtin.contains(name) {
            return Ok(());
        }
        let Some(path) = self.files.get(name) else {
            return match absent {
                IfAbsent::Skip => Ok(()),
                IfAbsent::Fail => Err(ModuleError::NotFound {
                    name: name.to_owned(),
                    dir: self.dir.clone(),
                }),
            };
        };
        if !visiting.insert(name.to_owned()) {
            return Err(ModuleError::Circular {
                name: name.to_owned(),
                dir: self.dir.clone(),
            });
        }
        let deps = match &self.deps {
            Some(deps) => deps.get(name).cloned().unwrap_or_default(),
            None => depends(&read_module(path)?, path)?,
        };
        for dep in deps {
            self.visit(&dep, absent, order, done, visiting)?;
        }
        visiting.remove(name);
        done.insert(name.to_owned());
        order.push(Module {
            name: name.to_owned(),
            path: path.clone(),
        });
        Ok(())
    }
}

/// Every module file below `dir`, by name (directories in name order, so a name found twice
/// always resolves to the same file).
fn walk(dir: &Path, out: &mut BTreeMap<String, PathBuf>) -> Result<(), ModuleError> {
    let io = |source| ModuleError::Io {
        path: dir.to_owned(),
        source,
    };
    let mut entries = std::fs::read_dir(dir)
        .map_err(io)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(io)?;
    entries.sort();
    for path in entries {
        if path.is_dir() {
            walk(&path, out)?;
        } else if let Some(name) = path.to_str().and_then(name_of) {
            out.insert(name, path);
        }
    }
    Ok(())
}

/// The modules a module needs loaded first: the `depends=` of its `.modinfo`, in its order.
fn depends(elf: &[u8], path: &Path) -> Result<Vec<String>, ModuleError> {
    Ok(modinfo(elf, path)?
        .into_iter()
        .filter(|(k, _)| k == "depends")
        .flat_map(|(_, v)| v.split(',').map(canonical).collect::<Vec<_>>())
        .filter(|d| !d.is_empty())
        .collect())
}

/// The key=value pairs of a module's `.modinfo` section (`path` only names it in errors).
pub fn modinfo(elf: &[u8], path: &Path) -> Result<Vec<(String, String)>, ModuleError> {
    let bad = |why: &str| ModuleError::Bad {
        path: path.to_owned(),
        why: why.to_owned(),
    };
    let u16_at = |off: usize| -> Result<u16, ModuleError> {
        elf.get(off..off + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
            .ok_or_else(|| bad("truncated ELF header"))
    };
    let u64_at = |off: usize| -> Result<u64, ModuleError> {
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
    // (name offset, file offset, size) of section i.
    let section = |i: usize| -> Result<(u32, usize, usize), ModuleError> {
        let base = i
            .checked_mul(shentsize)
            .and_then(|o| o.checked_add(shoff))
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
    let slice = |off: usize, size: usize| -> Result<&[u8], ModuleError> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "vireo-modules-{tag}-{}",
            vireo_domain::Uuid::new_v4().unwrap()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// The smallest ELF64 a module reader accepts: a section name table and a `.modinfo`.
    fn fake_module(modinfo: &str) -> Vec<u8> {
        let shstrtab = b"\0.shstrtab\0.modinfo\0";
        let mut elf = vec![0u8; 64];
        elf[..6].copy_from_slice(&[0x7f, b'E', b'L', b'F', 2, 1]);
        let strtab_at = elf.len();
        elf.extend_from_slice(shstrtab);
        let info_at = elf.len();
        elf.extend_from_slice(modinfo.as_bytes());
        let shoff = elf.len();
        let mut section = |name: u32, off: usize, size: usize| {
            let mut sh = [0u8; 64];
            sh[..4].copy_from_slice(&name.to_le_bytes());
            sh[0x18..0x20].copy_from_slice(&(off as u64).to_le_bytes());
            sh[0x20..0x28].copy_from_slice(&(size as u64).to_le_bytes());
            elf.extend_from_slice(&sh);
        };
        section(0, 0, 0);
        section(1, strtab_at, shstrtab.len());
        section(11, info_at, modinfo.len());
        elf[0x28..0x30].copy_from_slice(&(shoff as u64).to_le_bytes());
        elf[0x3a..0x3c].copy_from_slice(&64u16.to_le_bytes());
        elf[0x3c..0x3e].copy_from_slice(&3u16.to_le_bytes());
        elf[0x3e..0x40].copy_from_slice(&1u16.to_le_bytes());
        elf
    }

    fn names(mods: &[Module]) -> Vec<&str> {
        mods.iter().map(|m| m.name.as_str()).collect()
    }

    #[test]
    fn names_come_from_file_names() {
        assert_eq!(
            name_of("kernel/arch/x86/kvm/kvm-amd.ko.xz").as_deref(),
            Some("kvm_amd")
        );
        assert_eq!(name_of("virtio_net.ko").as_deref(), Some("virtio_net"));
        assert_eq!(name_of("a/evdev.ko.zst").as_deref(), Some("evdev"));
        assert_eq!(name_of("modules.builtin.modinfo"), None);
        assert_eq!(name_of("x.ko.sig"), None);
    }

    #[test]
    fn modules_dep_orders_dependencies_first() {
        let dir = scratch("dep");
        std::fs::write(
            dir.join("modules.dep"),
            "kernel/drivers/virtio/virtio.ko.xz:\n\
             kernel/drivers/virtio/virtio_ring.ko.xz:\n\
             kernel/drivers/virtio/virtio_mmio.ko.xz: kernel/drivers/virtio/virtio_ring.ko.xz kernel/drivers/virtio/virtio.ko.xz\n\
             kernel/drivers/net/virtio_net.ko.xz: kernel/drivers/net/net_failover.ko.xz kernel/net/core/failover.ko.xz\n\
             kernel/drivers/net/net_failover.ko.xz: kernel/net/core/failover.ko.xz\n\
             kernel/net/core/failover.ko.xz:\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("modules.builtin"),
            "kernel/drivers/input/evdev.ko\n",
        )
        .unwrap();
        let tree = ModuleTree::open(&dir).unwrap();
        let order = tree
            .resolve(
                &["virtio_mmio", "virtio-net", "evdev", "not_here"],
                IfAbsent::Skip,
            )
            .unwrap();
        assert_eq!(
            names(&order),
            [
                "virtio",
                "virtio_ring",
                "virtio_mmio",
                "failover",
                "net_failover",
                "virtio_net"
            ]
        );
        assert_eq!(
            order[0].path,
            dir.join("kernel/drivers/virtio/virtio.ko.xz")
        );
        // A built-in module is never missing; an absent one is, when the image needs it.
        assert!(tree.resolve(&["evdev"], IfAbsent::Fail).unwrap().is_empty());
        let err = tree.resolve(&["not_here"], IfAbsent::Fail).unwrap_err();
        assert!(
            matches!(err, ModuleError::NotFound { ref name, .. } if name == "not_here"),
            "{err}"
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    /// An unpacked package: no modules.dep, dependencies from each module's `.modinfo`, modules
    /// compressed in every way a kernel ships them (the system's xz, zstd and gzip).
    #[test]
    fn modinfo_orders_and_compressed_modules_read_back() {
        let dir = scratch("modinfo");
        let sub = dir.join("kernel/drivers");
        std::fs::create_dir_all(&sub).unwrap();
        let a = fake_module("license=GPL\0depends=b,c-d\0name=a\0");
        let b = fake_module("depends=\0name=b\0");
        let c = fake_module("depends=b\0name=c_d\0");
        std::fs::write(sub.join("a.ko"), &a).unwrap();
        for (file, data, tool) in [("b.ko", &b, "xz"), ("c-d.ko", &c, "zstd")] {
            std::fs::write(sub.join(file), data).unwrap();
            let st = Command::new(tool)
                .arg("-q")
                .arg(sub.join(file))
                .status()
                .unwrap();
            assert!(st.success(), "{tool} is a build requirement");
        }
        let tree = ModuleTree::open(&dir).unwrap();
        let order = tree.resolve(&["a"], IfAbsent::Fail).unwrap();
        assert_eq!(names(&order), ["b", "c_d", "a"]);
        assert_eq!(order[0].path, sub.join("b.ko.xz"));
        assert_eq!(order[1].path, sub.join("c-d.ko.zst"));
        assert_eq!(order[0].read().unwrap(), b);
        assert_eq!(order[1].read().unwrap(), c);
        assert_eq!(order[2].read().unwrap(), a);
        assert_eq!(order[2].file_name(), "a.ko");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn circular_and_broken_modules_are_errors() {
        let dir = scratch("bad");
        std::fs::write(dir.join("a.ko"), fake_module("depends=b\0")).unwrap();
        std::fs::write(dir.join("b.ko"), fake_module("depends=a\0")).unwrap();
        std::fs::write(dir.join("c.ko"), b"not an ELF file").unwrap();
        let tree = ModuleTree::open(&dir).unwrap();
        let err = tree.resolve(&["a"], IfAbsent::Fail).unwrap_err();
        assert!(matches!(err, ModuleError::Circular { .. }), "{err}");
        let err = tree.resolve(&["c"], IfAbsent::Fail).unwrap_err();
        assert!(matches!(err, ModuleError::Bad { .. }), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
        let empty = scratch("empty");
        let err = ModuleTree::open(&empty).unwrap_err();
        assert!(matches!(err, ModuleError::NoModules { .. }), "{err}");
        let _ = std::fs::remove_dir_all(empty);
    }

    #[test]
    fn modinfo_reads_its_section_and_refuses_truncated_files() {
        let elf = fake_module("depends=x,y\0vermagic=6.1\0");
        let p = Path::new("m.ko");
        assert_eq!(
            modinfo(&elf, p).unwrap(),
            [
                ("depends".to_owned(), "x,y".to_owned()),
                ("vermagic".to_owned(), "6.1".to_owned())
            ]
        );
        assert!(modinfo(&elf[..40], p).is_err());
        let mut cut = elf.clone();
        cut.truncate(elf.len() - 48);
        assert!(modinfo(&cut, p).is_err());
    }
}
