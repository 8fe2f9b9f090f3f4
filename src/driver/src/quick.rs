//! The quick machine: "boot this computer's kernel". Builds, without any download, a small
//! initramfs from the host's busybox (Debian's busybox-static) and the host kernel's virtio
//! modules, and writes the domain XML of a machine that boots the host kernel with it.

use crate::cpio::CpioWriter;
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum QuickError {
    #[error(
        "no kernel found in /boot (install a kernel, e.g. linux-image-amd64, or pass --kernel)"
    )]
    NoKernel,
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("no busybox found (install busybox-static, or pass --busybox)")]
    NoBusybox,
    #[error("{0}: busybox is dynamically linked; the initramfs needs a static one (Debian package busybox-static)")]
    DynamicBusybox(PathBuf),
    #[error("kernel module {name}: {message}")]
    Module { name: String, message: String },
}

/// A kernel and its module tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kernel {
    pub image: PathBuf,
    pub version: String,
    /// `lib/modules/VERSION` of that kernel, if found.
    pub modules: Option<PathBuf>,
}

/// The modules the quick machine wants (with their dependencies from modules.dep).
pub const WANTED_MODULES: &[&str] = &[
    "virtio_mmio",
    "virtio_blk",
    "virtio_net",
    "virtio_input",
    "virtio_rng",
    "evdev",
    "button",
];

fn version_of(image: &Path) -> Option<String> {
    image
        .file_name()?
        .to_str()?
        .strip_prefix("vmlinuz-")
        .map(str::to_owned)
}

fn modules_for(image: &Path, version: &str) -> Option<PathBuf> {
    // ROOT/boot/vmlinuz-V -> ROOT/lib/modules/V (works for / and for a `dpkg -x` tree).
    let root = image.parent()?.parent()?;
    [
        root.join("lib/modules").join(version),
        root.join("usr/lib/modules").join(version),
    ]
    .into_iter()
    .find(|p| p.is_dir())
}

/// Finds the kernel: `explicit`, else `$VIREO_QUICK_KERNEL`, else the newest `/boot/vmlinuz-*`.
pub fn find_kernel(explicit: Option<&Path>, modules: Option<&Path>) -> Result<Kernel, QuickError> {
    let image = match explicit
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os("VIREO_QUICK_KERNEL").map(PathBuf::from))
    {
        Some(p) => p,
        None => {
            let mut found: Vec<PathBuf> = std::fs::read_dir("/boot")
                .map_err(|_| QuickError::NoKernel)?
                .flatten()
                .map(|e| e.path())
                .filter(|p| version_of(p).is_some() && p.is_file())
                .collect();
            found.sort_by(|a, b| {
                version_cmp(
                    &version_of(a).unwrap_or_default(),
                    &version_of(b).unwrap_or_default(),
                )
            });
            found.pop().ok_or(QuickError::NoKernel)?
        }
    };
    let image = std::fs::canonicalize(&image).map_err(|e| QuickError::File {
        path: image.clone(),
        message: e.to_string(),
    })?;
    if !image.is_file() {
        return Err(QuickError::File {
            path: image,
            message: "not a regular file".into(),
        });
    }
    let version = version_of(&image).unwrap_or_default();
    let modules = match modules {
        Some(m) => Some(m.to_path_buf()),
        None => modules_for(&image, &version),
    };
    Ok(Kernel {
        image,
        version,
        modules,
    })
}

/// Compares dotted/dashed version strings numerically where both parts are numbers.
fn version_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    let split = |s: &str| {
        s.split(['.', '-', '+', '~'])
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let (x, y) = (split(a), split(b));
    for (p, q) in x.iter().zip(&y) {
        let o = match (p.parse::<u64>(), q.parse::<u64>()) {
            (Ok(m), Ok(n)) => m.cmp(&n),
            _ => p.cmp(q),
        };
        if o.is_ne() {
            return o;
        }
    }
    x.len().cmp(&y.len())
}

/// Finds a static busybox.
pub fn find_busybox(explicit: Option<&Path>) -> Result<PathBuf, QuickError> {
    let p = match explicit
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os("VIREO_BUSYBOX").map(PathBuf::from))
    {
        Some(p) => p,
        None => ["/bin/busybox", "/usr/bin/busybox"]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.is_file())
            .ok_or(QuickError::NoBusybox)?,
    };
    let data = std::fs::read(&p).map_err(|e| QuickError::File {
        path: p.clone(),
        message: e.to_string(),
    })?;
    if elf_has_interp(&data).ok_or_else(|| QuickError::File {
        path: p.clone(),
        message: "not a 64-bit ELF executable".into(),
    })? {
        return Err(QuickError::DynamicBusybox(p));
    }
    Ok(p)
}

/// Whether a 64-bit little-endian ELF has a PT_INTERP header (= dynamically linked).
fn elf_has_interp(d: &[u8]) -> Option<bool> {
    if d.len() < 64 || &d[..4] != b"\x7fELF" || d[4] != 2 || d[5] != 1 {
        return None;
    }
    let u16at = |o: usize| {
        d.get(o..o + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]) as usize)
    };
    let phoff = usize::try_from(u64::from_le_bytes(d.get(0x20..0x28)?.try_into().ok()?)).ok()?;
    let phentsize = u16at(0x36)?;
    let phnum = u16at(0x38)?;
    for i in 0..phnum {
        let off = phoff.checked_add(i.checked_mul(phentsize)?)?;
        let ty = u32::from_le_bytes(d.get(off..off + 4)?.try_into().ok()?);
        if ty == 3 {
            return Some(true);
        }
    }
    Some(false)
}

fn module_name(path: &str) -> String {
    let base = path.rsplit('/').next().unwrap_or(path);
    let base = base.split(".ko").next().unwrap_or(base);
    base.replace('-', "_")
}

fn walk_modules(dir: &Path, out: &mut BTreeMap<String, PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            walk_modules(&p, out);
        } else if p
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.contains(".ko"))
        {
            out.insert(module_name(&p.display().to_string()), p);
        }
    }
}

/// The `depends=` field of a module's .modinfo (NUL-separated `key=value` strings).
fn modinfo_depends(data: &[u8]) -> Vec<String> {
    data.split(|&b| b == 0)
        .filter_map(|f| f.strip_prefix(b"depends="))
        .flat_map(|v| {
            String::from_utf8_lossy(v)
                .split(',')
                .map(|s| s.trim().replace('-', "_"))
                .collect::<Vec<_>>()
        })
        .filter(|s| !s.is_empty())
        .collect()
}

/// Without modules.dep (an unpacked package has none): each module's own `depends=`.
fn resolve_by_modinfo(tree: &Path, wanted: &[&str]) -> Result<Vec<PathBuf>, QuickError> {
    let mut index = BTreeMap::new();
    walk_modules(tree, &mut index);
    if index.is_empty() {
        return Err(QuickError::File {
            path: tree.to_owned(),
            message: "no kernel modules in this tree".into(),
        });
    }
    fn visit(
        name: &str,
        index: &BTreeMap<String, PathBuf>,
        seen: &mut HashSet<String>,
        order: &mut Vec<PathBuf>,
    ) -> Result<(), QuickError> {
        if !seen.insert(name.to_owned()) {
            return Ok(());
        }
        // Not in the tree: built in (or absent from this kernel).
        let Some(path) = index.get(name) else {
            return Ok(());
        };
        for d in modinfo_depends(&read_module(path)?) {
            visit(&d, index, seen, order)?;
        }
        order.push(path.clone());
        Ok(())
    }
    let mut order = Vec::new();
    let mut seen = HashSet::new();
    for w in wanted {
        visit(w, &index, &mut seen, &mut order)?;
    }
    Ok(order)
}

/// Resolves `wanted` to module files in load order (dependencies first), skipping built-ins and
/// modules this kernel does not have. Uses modules.dep when the tree has one (an installed
/// kernel), else each module's own `depends=`.
pub fn resolve_modules(tree: &Path, wanted: &[&str]) -> Result<Vec<PathBuf>, QuickError> {
    let dep_file = tree.join("modules.dep");
    if !dep_file.is_file() {
        return resolve_by_modinfo(tree, wanted);
    }
    let text = std::fs::read_to_string(&dep_file).map_err(|e| QuickError::File {
        path: dep_file.clone(),
        message: e.to_string(),
    })?;
    let mut deps: BTreeMap<String, (String, Vec<String>)> = BTreeMap::new();
    for line in text.lines() {
        let Some((m, rest)) = line.split_once(':') else {
            continue;
        };
        deps.insert(
            module_name(m),
            (
                m.to_owned(),
                rest.split_whitespace().map(str::to_owned).collect(),
            ),
        );
    }
    let mut order = Vec::new();
    let mut seen = HashSet::new();
    fn visit(
        name: &str,
        deps: &BTreeMap<String, (String, Vec<String>)>,
        seen: &mut HashSet<String>,
        order: &mut Vec<String>,
    ) {
        if !seen.insert(name.to_owned()) {
            return;
        }
        if let Some((path, ds)) = deps.get(name) {
            // modules.dep lists direct and indirect deps, the deepest last.
            for d in ds.iter().rev() {
                visit(&module_name(d), deps, seen, order);
            }
            order.push(path.clone());
        }
    }
    for w in wanted {
        visit(w, &deps, &mut seen, &mut order);
    }
    Ok(order.into_iter().map(|p| tree.join(p)).collect())
}

/// Reads a module, decompressing .xz / .zst / .gz with the system tools (busybox insmod cannot).
fn read_module(path: &Path) -> Result<Vec<u8>, QuickError> {
    let name = path.display().to_string();
    let tool = if name.ends_with(".xz") {
        Some(("xz", "-dc"))
    } else if name.ends_with(".zst") {
        Some(("zstd", "-dcq"))
    } else if name.ends_with(".gz") {
        Some(("gzip", "-dc"))
    } else {
        None
    };
    match tool {
        None => std::fs::read(path).map_err(|e| QuickError::Module {
            name,
            message: e.to_string(),
        }),
        Some((t, arg)) => {
            let out = std::process::Command::new(t)
                .arg(arg)
                .arg(path)
                .output()
                .map_err(|e| QuickError::Module {
                    name: name.clone(),
                    message: format!("cannot run {t}: {e}"),
                })?;
            if !out.status.success() {
                return Err(QuickError::Module {
                    name,
                    message: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
                });
            }
            Ok(out.stdout)
        }
    }
}

/// The guest's /init.
pub const INIT: &str = r#"#!/bin/busybox sh
/bin/busybox mkdir -p /proc /sys /dev /tmp /root /sbin /usr/bin /usr/sbin /run /var/log
/bin/busybox --install -s /bin
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts && mount -t devpts devpts /dev/pts
for m in $(cat /etc/vireo-modules); do
    insmod "/lib/modules/$m" 2>/dev/null || echo "vireo-quick: module $m did not load"
done
hostname vireo-quick
ip link set lo up
for n in /sys/class/net/eth*; do
    [ -e "$n" ] && ip link set "${n##*/}" up && udhcpc -b -q -i "${n##*/}" -s /etc/udhcpc.sh >/dev/null 2>&1
done
# The power button (ACPI) powers the machine off cleanly.
acpid -c /etc/acpi
{
    echo "ttyS0::respawn:-/bin/sh"
    [ -e /dev/tty1 ] && echo "tty1::respawn:-/bin/sh"
    echo "::ctrlaltdel:/bin/reboot"
    echo "::shutdown:/bin/sync"
} > /etc/inittab
echo "vireo-quick: ready on $(uname -r)"
exec /bin/init
"#;

const UDHCPC: &str = r#"#!/bin/sh
case "$1" in
bound|renew)
    ip addr flush dev "$interface"
    ip addr add "$ip/${mask:-24}" dev "$interface"
    [ -n "$router" ] && ip route add default via "${router%% *}" dev "$interface"
    : > /etc/resolv.conf
    for d in $dns; do echo "nameserver $d" >> /etc/resolv.conf; done
    ;;
esac
"#;

/// Builds the initramfs image bytes.
pub fn build_initramfs(busybox: &Path, kernel: &Kernel) -> Result<Vec<u8>, QuickError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |e: std::io::Error| QuickError::File {
            path: path.clone(),
            message: e.to_string(),
        }
    };
    let mut w = CpioWriter::new();
    let archive = Path::new("initramfs");
    for d in [
        "bin",
        "sbin",
        "dev",
        "etc",
        "etc/acpi",
        "etc/acpi/PWRF",
        "lib",
        "lib/modules",
        "proc",
        "sys",
        "tmp",
        "root",
    ] {
        w.dir(d).map_err(io(archive))?;
    }
    w.char_dev("dev/console", 0o600, 5, 1)
        .map_err(io(archive))?;
    w.char_dev("dev/null", 0o666, 1, 3).map_err(io(archive))?;
    let bb = std::fs::read(busybox).map_err(io(busybox))?;
    w.file("bin/busybox", 0o755, &bb).map_err(io(busybox))?;
    w.symlink("bin/sh", "busybox").map_err(io(archive))?;
    w.file("init", 0o755, INIT.as_bytes())
        .map_err(io(archive))?;
    w.file("etc/udhcpc.sh", 0o755, UDHCPC.as_bytes())
        .map_err(io(archive))?;
    w.file("etc/acpi/PWRF/00000080", 0o755, b"#!/bin/sh\npoweroff\n")
        .map_err(io(archive))?;
    let mut list = String::new();
    if let Some(tree) = &kernel.modules {
        for m in resolve_modules(tree, WANTED_MODULES)? {
            let data = read_module(&m)?;
            let name = format!("{}.ko", module_name(&m.display().to_string()));
            w.file(&format!("lib/modules/{name}"), 0o644, &data)
                .map_err(io(&m))?;
            list.push_str(&name);
            list.push('\n');
        }
    }
    w.file("etc/vireo-modules", 0o644, list.as_bytes())
        .map_err(io(archive))?;
    w.finish().map_err(io(archive))
}

/// What `create --quick` needs to write a machine.
#[derive(Debug, Clone)]
pub struct QuickMachine {
    pub kernel: Kernel,
    pub initrd: PathBuf,
    pub cmdline: String,
}

/// The quick machine's kernel command line.
pub const QUICK_CMDLINE: &str = "console=tty1 console=ttyS0 reboot=k panic=-1 quiet";

/// Builds the initramfs into `images/NAME-initrd.img` (atomically) and returns what to boot.
pub fn prepare(
    images: &Path,
    name: &str,
    kernel: Option<&Path>,
    modules: Option<&Path>,
    busybox: Option<&Path>,
) -> Result<QuickMachine, QuickError> {
    let kernel = find_kernel(kernel, modules)?;
    let bb = find_busybox(busybox)?;
    let img = build_initramfs(&bb, &kernel)?;
    crate::paths::ensure_private_dir(images).map_err(|e| QuickError::File {
        path: images.to_owned(),
        message: e.to_string(),
    })?;
    let initrd = images.join(format!("{name}-initrd.img"));
    crate::store::write_atomic(&initrd, &img).map_err(|e| QuickError::File {
        path: initrd.clone(),
        message: e.to_string(),
    })?;
    Ok(QuickMachine {
        kernel,
        initrd,
        cmdline: QUICK_CMDLINE.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_sort_numerically() {
        assert!(version_cmp("6.1.0-10-amd64", "6.1.0-9-amd64").is_gt());
        assert!(version_cmp("6.10.0", "6.9.1").is_gt());
    }

    #[test]
    fn modules_resolve_dependencies_first() {
        let dir = std::env::temp_dir().join(format!(
            "vireo-quick-{}",
            vireo_domain::Uuid::new_v4().unwrap()
        ));
        std::fs::create_dir_all(&dir).unwrap();
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
        let order = resolve_modules(&dir, &["virtio_mmio", "virtio_net", "not_here"]).unwrap();
        let names: Vec<String> = order
            .iter()
            .map(|p| module_name(&p.display().to_string()))
            .collect();
        assert_eq!(
            names,
            [
                "virtio",
                "virtio_ring",
                "virtio_mmio",
                "failover",
                "net_failover",
                "virtio_net"
            ]
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn host_busybox_is_static_and_initramfs_builds() {
        // busybox-static is a build requirement of this project (README set-up).
        let bb = find_busybox(None).expect("busybox-static must be installed");
        let k = Kernel {
            image: bb.clone(),
            version: "x".into(),
            modules: None,
        };
        let img = build_initramfs(&bb, &k).unwrap();
        assert!(img.len() > 500_000);
        assert_eq!(
            elf_has_interp(&std::fs::read("/proc/self/exe").unwrap()),
            Some(true)
        );
    }
}
