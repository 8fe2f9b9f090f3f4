//! The rig's error type: every failure names the step and the thing that went wrong.

use std::path::PathBuf;
use std::time::Duration;

/// Everything that can go wrong while preparing, booting or driving the rig.
#[derive(Debug, thiserror::Error)]
pub enum RigError {
    #[error("{what} failed on {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot run `{program}` ({why}): {source}; install it (Debian package `{package}`)")]
    MissingTool {
        program: String,
        package: &'static str,
        why: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("`{command}` failed with {status}: {stderr}")]
    ToolFailed {
        command: String,
        status: String,
        stderr: String,
    },
    #[error("apt could not provide Debian package {package}: {detail}")]
    Apt { package: String, detail: String },
    #[error(transparent)]
    Module(#[from] vireo_driver::modules::ModuleError),
    #[error(transparent)]
    Initramfs(#[from] vireo_driver::initramfs::InitramfsError),
    #[error("QEMU (L1) exited before the rig was ready: {status}; QEMU said: {stderr}\nlast console lines:\n{tail}")]
    L1Exited {
        status: String,
        stderr: String,
        tail: String,
    },
    #[error("L1 kernel panic: {line}\nlast console lines:\n{tail}")]
    L1Panic { line: String, tail: String },
    #[error("L1 could not provide KVM: {detail}\nlast console lines:\n{tail}")]
    L1NoKvm { detail: String, tail: String },
    #[error("L1 did not become ready within {timeout:?}; stalled after: {stage}\nlast console lines:\n{tail}")]
    L1BootTimeout {
        timeout: Duration,
        stage: String,
        tail: String,
    },
    #[error("command timed out after {timeout:?} in {place}; last output lines:\n{tail}")]
    CommandTimeout {
        place: String,
        timeout: Duration,
        tail: String,
    },
    #[error("L1's command agent did not acknowledge a command within {waited:?} (L1 killed); console:\n{tail}")]
    L1Unresponsive { waited: Duration, tail: String },
    #[error("L1 stopped: no heartbeat on its console for {silent:?} during a command (L1 killed); console:\n{tail}")]
    L1Silent { silent: Duration, tail: String },
    #[error("the rig is unusable: {0}")]
    Broken(String),
    #[error("L2 scenario {name:?}: {why}\nlast lines:\n{tail}")]
    Scenario {
        name: String,
        why: String,
        tail: String,
    },
    #[error("invalid rig configuration: {0}")]
    Config(String),
}

impl RigError {
    pub(crate) fn io(what: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        RigError::Io {
            what,
            path: path.into(),
            source,
        }
    }
}

/// The rig's result type.
pub type Result<T, E = RigError> = std::result::Result<T, E>;
