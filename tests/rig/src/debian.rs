//! Debian packages the rig boots: fetched with `apt-get download`, unpacked with `dpkg -x`,
//! cached under `${XDG_CACHE_HOME:-$HOME/.cache}/vireo-rig` (outside the work tree).
//!
//! The kernel is Debian bookworm's stock `linux-image-6.1.0-N-amd64`, the one the meta package
//! `linux-image-amd64` points at (override with `VIREO_RIG_KERNEL_PACKAGE`). L1 and L2 run the
//! same kernel.

use crate::error::{Result, RigError};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The rig's cache directory (created on demand).
pub fn cache_dir() -> Result<PathBuf> {
    let base = match std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
            Some(home) => PathBuf::from(home).join(".cache"),
            None => {
                return Err(RigError::Config(
                    "neither XDG_CACHE_HOME nor HOME is set: no place for the rig's cache".into(),
                ))
            }
        },
    };
    let dir = base.join("vireo-rig");
    std::fs::create_dir_all(&dir).map_err(|e| RigError::io("creating cache dir", &dir, e))?;
    Ok(dir)
}

/// An unpacked Debian kernel package.
#[derive(Debug, Clone)]
pub struct DebianKernel {
    /// Package name, e.g. `linux-image-6.1.0-56-amd64`.
    pub package: String,
    /// Kernel release, e.g. `6.1.0-56-amd64` (the directory name under lib/modules).
    pub release: String,
    /// The bzImage.
    pub vmlinuz: PathBuf,
    /// `lib/modules/<release>` of the unpacked package.
    pub modules_dir: PathBuf,
}

/// Fetches (once) and returns the stock Debian kernel.
pub fn kernel() -> Result<DebianKernel> {
    let package = match std::env::var("VIREO_RIG_KERNEL_PACKAGE") {
        Ok(p) if !p.is_empty() => p,
        _ => current_kernel_package()?,
    };
    let root = fetch_and_unpack(&package)?;
    let modules_root = root.join("lib/modules");
    let release = only_subdir(&modules_root)?;
    let vmlinuz = root.join("boot").join(format!("vmlinuz-{release}"));
    if !vmlinuz.is_file() {
        return Err(RigError::Apt {
            package,
            detail: format!("{} is missing from the unpacked package", vmlinuz.display()),
        });
    }
    Ok(DebianKernel {
        package,
        modules_dir: modules_root.join(&release),
        release,
        vmlinuz,
    })
}

/// Fetches (once) Debian's `busybox-static` and returns the path of its static busybox.
pub fn busybox() -> Result<PathBuf> {
    let root = fetch_and_unpack("busybox-static")?;
    let path = root.join("bin/busybox");
    if !path.is_file() {
        return Err(RigError::Apt {
            package: "busybox-static".into(),
            detail: format!("{} is missing from the unpacked package", path.display()),
        });
    }
    Ok(path)
}

/// Resolves the versioned kernel package that `linux-image-amd64` depends on.
fn current_kernel_package() -> Result<String> {
    let record = |list_missing: bool| -> Result<Option<String>> {
        let out = run_tool(
            Command::new("apt-cache").args(["depends", "linux-image-amd64"]),
            "apt",
            "looking up the current Debian kernel package",
        );
        let out = match out {
            Ok(o) => o,
            Err(e) if list_missing => return Err(e),
            Err(_) => return Ok(None),
        };
        Ok(out
            .lines()
            .filter_map(|l| l.trim().strip_prefix("Depends:"))
            .map(str::trim)
            .find(|p| p.starts_with("linux-image-") && p.ends_with("-amd64"))
            .map(str::to_owned))
    };
    if let Some(p) = record(false)? {
        return Ok(p);
    }
    // apt-cache knows nothing before the first `apt-get update` on a fresh machine.
    run_tool(
        Command::new("apt-get").args(["update", "-qq"]),
        "apt",
        "refreshing Debian package lists",
    )?;
    record(true)?.ok_or_else(|| RigError::Apt {
        package: "linux-image-amd64".into(),
        detail: "apt-cache depends linux-image-amd64 names no linux-image-*-amd64 package".into(),
    })
}

/// Downloads and unpacks `package` into the cache unless that was done before.
pub fn fetch_and_unpack(package: &str) -> Result<PathBuf> {
    if package.is_empty()
        || !package
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
    {
        return Err(RigError::Config(format!(
            "bad Debian package name {package:?}"
        )));
    }
    let cache = cache_dir()?;
    let root = cache.join("pkg").join(package);
    let stamp = root.join(".vireo-unpacked");
    if stamp.is_file() {
        return Ok(root);
    }
    // Scratch names of our own: several test binaries, and several tests of one, may fetch at
    // the same time.
    let dl = crate::scratch_name(&cache.join("deb").join(package));
    let _ = std::fs::remove_dir_all(&dl);
    std::fs::create_dir_all(&dl).map_err(|e| RigError::io("creating download dir", &dl, e))?;
    let download = |dl: &Path| {
        run_tool(
            Command::new("apt-get")
                .arg("download")
                .arg(package)
                .current_dir(dl),
            "apt",
            "downloading Debian packages",
        )
    };
    if let Err(first) = download(&dl) {
        // A fresh machine has no package lists yet; refresh once and retry.
        run_tool(
            Command::new("apt-get").args(["update", "-qq"]),
            "apt",
            "refreshing Debian package lists",
        )?;
        download(&dl).map_err(|e| RigError::Apt {
            package: package.into(),
            detail: format!("{e} (before apt-get update: {first})"),
        })?;
    }
    let deb = std::fs::read_dir(&dl)
        .map_err(|e| RigError::io("listing downloads", &dl, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .ok_or_else(|| RigError::Apt {
            package: package.into(),
            detail: format!("apt-get download left no .deb in {}", dl.display()),
        })?;
    let tmp = crate::scratch_name(&cache.join("pkg").join(package));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(|e| RigError::io("creating unpack dir", &tmp, e))?;
    run_tool(
        Command::new("dpkg").arg("-x").arg(&deb).arg(&tmp),
        "dpkg",
        "unpacking Debian packages",
    )?;
    std::fs::write(tmp.join(".vireo-unpacked"), package)
        .map_err(|e| RigError::io("writing unpack stamp", &tmp, e))?;
    let _ = std::fs::remove_dir_all(&dl);
    if let Err(e) = std::fs::rename(&tmp, &root) {
        let _ = std::fs::remove_dir_all(&tmp);
        // Another process finished the same unpack first: use its result.
        if !stamp.is_file() {
            return Err(RigError::io("moving unpacked package", &root, e));
        }
    }
    Ok(root)
}

fn only_subdir(dir: &Path) -> Result<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map_err(|e| RigError::io("listing kernel modules", dir, e))?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    match names.as_slice() {
        [one] => Ok(one.clone()),
        _ => Err(RigError::Config(format!(
            "expected exactly one kernel release under {}, found {names:?}",
            dir.display()
        ))),
    }
}

/// Runs a host tool, mapping "not installed" and "failed" to clear errors. Returns stdout.
pub(crate) fn run_tool(
    cmd: &mut Command,
    package: &'static str,
    why: &'static str,
) -> Result<String> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    let out = cmd.output().map_err(|source| RigError::MissingTool {
        program: program.clone(),
        package,
        why,
        source,
    })?;
    if !out.status.success() {
        let args: Vec<String> = cmd
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        return Err(RigError::ToolFailed {
            command: format!("{program} {}", args.join(" ")),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
