//! What kind of KVM this host has, and so where rig-backed tests run.

use std::path::Path;

/// The host's KVM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostKvm {
    /// kvm_amd or kvm_intel is loaded and /dev/kvm exists: stock kernels boot here.
    Hardware(&'static str),
    /// /dev/kvm exists but is something else (e.g. kvm_pvm): fine for tiny guests only.
    Other(String),
    /// No /dev/kvm.
    None,
}

/// Looks at /sys/module and /dev/kvm.
pub fn detect() -> HostKvm {
    detect_in(Path::new("/"))
}

fn detect_in(root: &Path) -> HostKvm {
    let dev = root.join("dev/kvm").exists();
    for m in ["kvm_amd", "kvm_intel"] {
        if root.join("sys/module").join(m).exists() && dev {
            return HostKvm::Hardware(m);
        }
    }
    if !dev {
        return HostKvm::None;
    }
    let others = ["kvm_pvm"]
        .into_iter()
        .find(|m| root.join("sys/module").join(m).exists())
        .unwrap_or("unknown module");
    HostKvm::Other(others.to_owned())
}

/// Where a test that boots a real kernel runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// On this host, with its hardware KVM.
    Direct,
    /// Inside the rig's L1.
    Nested,
}

/// [`Mode::Direct`] on hardware KVM, [`Mode::Nested`] otherwise. `VIREO_RIG_MODE=direct|nested`
/// overrides (e.g. to exercise the rig on a machine that has hardware KVM).
pub fn mode() -> Mode {
    match std::env::var("VIREO_RIG_MODE").as_deref() {
        Ok("direct") => Mode::Direct,
        Ok("nested") => Mode::Nested,
        _ => match detect() {
            HostKvm::Hardware(_) => Mode::Direct,
            _ => Mode::Nested,
        },
    }
}

/// True when running under CI (`CI=true`): a missing rig prerequisite is then a failure.
pub fn in_ci() -> bool {
    matches!(std::env::var("CI").as_deref(), Ok("true") | Ok("1"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_from_a_fake_root() {
        let root = std::env::temp_dir().join(format!("vireo-rig-kvm-{}", std::process::id()));
        std::fs::create_dir_all(root.join("dev")).unwrap();
        std::fs::create_dir_all(root.join("sys/module/kvm_pvm")).unwrap();
        assert_eq!(detect_in(&root), HostKvm::None);
        std::fs::write(root.join("dev/kvm"), "").unwrap();
        assert_eq!(detect_in(&root), HostKvm::Other("kvm_pvm".into()));
        std::fs::create_dir_all(root.join("sys/module/kvm_amd")).unwrap();
        assert_eq!(detect_in(&root), HostKvm::Hardware("kvm_amd"));
        std::fs::remove_dir_all(&root).unwrap();
    }
}
