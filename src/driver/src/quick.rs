//! The quick machine: "boot this computer's kernel". Builds, without any download, a small
//! initramfs from the host's busybox (Debian's busybox-static) and the host kernel's virtio
//! modules, and writes the domain XML of a machine that boots the host kernel with it.

use crate::initramfs::{Initramfs, InitramfsError};
use crate::modules::{IfAbsent, ModuleError, ModuleTree};
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
    #[error(transparent)]
    Modules(#[from] ModuleError),
    #[error(transparent)]
    Initramfs(#[from] InitramfsError),
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

/// Resolves `wanted` to module files in load order (dependencies first), skipping built-ins and
/// modules this kernel does not have (see [`crate::modules`]).
pub fn resolve_modules(tree: &Path, wanted: &[&str]) -> Result<Vec<PathBuf>, QuickError> {
    Ok(ModuleTree::open(tree)?
        .resolve(wanted, IfAbsent::Skip)?
        .into_iter()
        .map(|m| m.path)
        .collect())
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
    let mut img = Initramfs::new();
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
        img.dir(d);
    }
    img.char_dev("dev/console", 0o600, 5, 1)
        .char_dev("dev/null", 0o666, 1, 3)
        .host_file("bin/busybox", 0o755, busybox)
        .symlink("bin/sh", "busybox")
        .init(INIT)
        .file("etc/udhcpc.sh", 0o755, UDHCPC)
        .file("etc/acpi/PWRF/00000080", 0o755, "#!/bin/sh\npoweroff\n");
    // INIT loads what this list names, in its order.
    let mut list = String::new();
    if let Some(tree) = &kernel.modules {
        let modules = ModuleTree::open(tree)?.resolve(WANTED_MODULES, IfAbsent::Skip)?;
        img.modules("lib/modules", &modules);
        for m in &modules {
            list.push_str(&m.file_name());
            list.push('\n');
        }
    }
    img.file("etc/vireo-modules", 0o644, list);
    Ok(img.to_bytes()?)
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

/// Where the quick machine `name` keeps its initramfs.
pub fn initrd_path(images: &Path, name: &str) -> PathBuf {
    images.join(format!("{name}-initrd.img"))
}

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
    let initrd = initrd_path(images, name);
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
    fn modules_resolve_to_files_dependencies_first() {
        let dir = std::env::temp_dir().join(format!(
            "vireo-quick-{}",
            vireo_domain::Uuid::new_v4().unwrap()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("modules.dep"),
            "kernel/virtio.ko.zst:\nkernel/virtio_mmio.ko.zst: kernel/virtio.ko.zst\n",
        )
        .unwrap();
        let order = resolve_modules(&dir, &["virtio_mmio", "not_here"]).unwrap();
        assert_eq!(
            order,
            [
                dir.join("kernel/virtio.ko.zst"),
                dir.join("kernel/virtio_mmio.ko.zst")
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
