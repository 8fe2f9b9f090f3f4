//! Where Vireo keeps things, following the XDG base directory specification so that tests (and
//! users who want a second, separate set of machines) only have to change the environment.
//!
//! - `$XDG_CONFIG_HOME/vireo/machines/NAME.xml`: persistent definitions
//! - `$XDG_CONFIG_HOME/vireo/autostart/NAME.xml`: symlinks marking autostart (as libvirt does)
//! - `$XDG_CONFIG_HOME/vireo/nvram/NAME_VARS.fd`: the UEFI variable store of a machine whose
//!   document names none (libvirt's `/var/lib/libvirt/qemu/nvram`, its naming too)
//! - `$XDG_RUNTIME_DIR/vireo/NAME/`: one directory per running (or just stopped) machine
//! - `$XDG_RUNTIME_DIR/vireo/events.log`: the append-only event log clients follow
//! - `$XDG_DATA_HOME/vireo/images/`: disk images and generated initramfs images
//! - `$XDG_CACHE_HOME/vireo/`: caches (fetched kernels for tests)

use std::path::{Path, PathBuf};

/// The directories of one Vireo "connection".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    /// `$XDG_CONFIG_HOME/vireo`
    pub config: PathBuf,
    /// `$XDG_RUNTIME_DIR/vireo`
    pub runtime: PathBuf,
    /// `$XDG_DATA_HOME/vireo`
    pub data: PathBuf,
    /// `$XDG_CACHE_HOME/vireo`
    pub cache: PathBuf,
}

fn env_dir(var: &str) -> Option<PathBuf> {
    // The spec says relative values are invalid and must be ignored.
    std::env::var_os(var)
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
}

fn home() -> PathBuf {
    env_dir("HOME").unwrap_or_else(|| PathBuf::from("/"))
}

impl Paths {
    /// Reads the XDG variables, with the specification's fallbacks. Without `XDG_RUNTIME_DIR`,
    /// `/run/user/UID` is used when it exists, else `$TMPDIR/vireo-UID`.
    pub fn from_env() -> Paths {
        let config = env_dir("XDG_CONFIG_HOME").unwrap_or_else(|| home().join(".config"));
        let data = env_dir("XDG_DATA_HOME").unwrap_or_else(|| home().join(".local/share"));
        let cache = env_dir("XDG_CACHE_HOME").unwrap_or_else(|| home().join(".cache"));
        // SAFETY: getuid has no preconditions and cannot fail.
        let uid = unsafe { libc::getuid() };
        let runtime = env_dir("XDG_RUNTIME_DIR").unwrap_or_else(|| {
            let run = PathBuf::from(format!("/run/user/{uid}"));
            if run.is_dir() {
                run
            } else {
                std::env::temp_dir().join(format!("vireo-{uid}"))
            }
        });
        Paths::under(&config, &runtime, &data, &cache)
    }

    /// Explicit base directories (each gets a `vireo` subdirectory).
    pub fn under(config: &Path, runtime: &Path, data: &Path, cache: &Path) -> Paths {
        Paths {
            config: config.join("vireo"),
            runtime: runtime.join("vireo"),
            data: data.join("vireo"),
            cache: cache.join("vireo"),
        }
    }

    /// All four bases in one directory (`c`, `r`, `d`, `k`), as the tests lay out their homes.
    #[cfg(test)]
    pub(crate) fn all_under(dir: &Path) -> Paths {
        Paths::under(
            &dir.join("c"),
            &dir.join("r"),
            &dir.join("d"),
            &dir.join("k"),
        )
    }

    pub fn machines(&self) -> PathBuf {
        crate::store::Store::in_config(&self.config).machines_dir()
    }

    pub fn autostart(&self) -> PathBuf {
        crate::store::Store::in_config(&self.config).autostart_dir()
    }

    /// Where Vireo keeps the UEFI variable stores it makes (see [`nvram_store`]).
    pub fn nvram_dir(&self) -> PathBuf {
        self.config.join("nvram")
    }

    pub fn images(&self) -> PathBuf {
        self.data.join("images")
    }

    pub fn machine_runtime(&self, name: &str) -> PathBuf {
        self.runtime.join(name)
    }

    pub fn events_log(&self) -> PathBuf {
        self.runtime.join("events.log")
    }
}

/// The variable store Vireo makes for machine `name` in `nvram_dir` when its document names
/// none: `NAME_VARS.fd`, libvirt's name for it.
pub fn nvram_store(nvram_dir: &Path, name: &str) -> PathBuf {
    nvram_dir.join(format!("{name}_VARS.fd"))
}

/// Creates the runtime directory (0700) and checks that it and its parent are real directories
/// of ours that no one else can write: without `XDG_RUNTIME_DIR` or `/run/user/UID` the parent
/// is `$TMPDIR/vireo-UID`, a name anyone can create first in a shared /tmp, and whoever owns it
/// could swap our sockets and logs.
pub fn ensure_runtime_dir(dir: &Path) -> Result<(), RuntimeDirError> {
    ensure_private_dir(dir).map_err(|source| RuntimeDirError::Create {
        path: dir.to_owned(),
        source,
    })?;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let uid = unsafe { libc::geteuid() };
    for d in [Some(dir), dir.parent()].into_iter().flatten() {
        check_private(d, uid)?;
    }
    Ok(())
}

fn check_private(dir: &Path, uid: u32) -> Result<(), RuntimeDirError> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::symlink_metadata(dir).map_err(|source| RuntimeDirError::Create {
        path: dir.to_owned(),
        source,
    })?;
    let unsafe_dir = |why: String| RuntimeDirError::Unsafe {
        path: dir.to_owned(),
        why,
    };
    if !meta.file_type().is_dir() {
        return Err(unsafe_dir("it is not a directory (a symlink?)".into()));
    }
    if meta.uid() != uid {
        return Err(unsafe_dir(format!(
            "it belongs to uid {}, not to you (uid {uid})",
            meta.uid()
        )));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(unsafe_dir(format!(
            "others may write to it (mode {:o})",
            meta.mode() & 0o7777
        )));
    }
    Ok(())
}

/// Why the runtime directory cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeDirError {
    #[error("cannot create the runtime directory {path}: {source}")]
    Create {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("refusing to use the runtime directory {path}: {why}; remove it or set XDG_RUNTIME_DIR to a private directory")]
    Unsafe { path: PathBuf, why: String },
}

/// Creates a directory (and parents) with mode 0700 for the last component.
pub(crate) fn ensure_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

#[cfg(test)]
mod tests {
    use super::{ensure_runtime_dir, RuntimeDirError};
    use std::os::unix::fs::PermissionsExt;

    fn scratch(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("vireo-paths-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700)).unwrap();
        d
    }

    #[test]
    fn a_fresh_runtime_dir_is_made_private() {
        let base = scratch("fresh");
        let dir = base.join("vireo-1000/vireo");
        ensure_runtime_dir(&dir).unwrap();
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn a_parent_others_can_write_is_refused() {
        let base = scratch("planted");
        let parent = base.join("vireo-1000");
        std::fs::create_dir(&parent).unwrap();
        std::fs::set_permissions(&parent, std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = ensure_runtime_dir(&parent.join("vireo")).unwrap_err();
        assert!(matches!(err, RuntimeDirError::Unsafe { .. }), "{err}");
        assert!(err.to_string().contains("mode 777"), "{err}");
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn a_symlinked_runtime_dir_is_refused() {
        let base = scratch("symlink");
        let elsewhere = base.join("elsewhere");
        std::fs::create_dir(&elsewhere).unwrap();
        std::fs::set_permissions(&elsewhere, std::fs::Permissions::from_mode(0o700)).unwrap();
        std::os::unix::fs::symlink(&elsewhere, base.join("vireo")).unwrap();
        let err = ensure_runtime_dir(&base.join("vireo")).unwrap_err();
        assert!(err.to_string().contains("not a directory"), "{err}");
        std::fs::remove_dir_all(&base).unwrap();
    }
}
