//! Where Vireo keeps things, following the XDG base directory specification so that tests (and
//! users who want a second, separate set of machines) only have to change the environment.
//!
//! - `$XDG_CONFIG_HOME/vireo/machines/NAME.xml`: persistent definitions
//! - `$XDG_CONFIG_HOME/vireo/autostart/NAME.xml`: symlinks marking autostart (as libvirt does)
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

    pub fn machines(&self) -> PathBuf {
        self.config.join("machines")
    }

    pub fn autostart(&self) -> PathBuf {
        self.config.join("autostart")
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

/// Creates a directory (and parents) with mode 0700 for the last component.
pub(crate) fn ensure_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}
