//! The runtime directory of one machine, `$XDG_RUNTIME_DIR/vireo/NAME/`: everything a client
//! needs to find a running machine again after it restarted. File names are short because unix
//! socket paths are limited to 107 bytes.

use std::path::{Path, PathBuf};

use crate::state::{DomainState, Reason, StateRecord};
use crate::store::FileLock;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunDir {
    pub dir: PathBuf,
}

impl RunDir {
    pub fn new(dir: impl Into<PathBuf>) -> RunDir {
        RunDir { dir: dir.into() }
    }
    /// The VMM's control socket.
    pub fn control(&self) -> PathBuf {
        self.dir.join("ctl")
    }
    /// The VNC unix socket (the GUI connects here).
    pub fn vnc(&self) -> PathBuf {
        self.dir.join("vnc")
    }
    /// The serial console socket (`vireoctl console` attaches here).
    pub fn serial(&self) -> PathBuf {
        self.dir.join("serial")
    }
    /// What the guest wrote to its serial port, newest part; older parts are `serial.log.1`,
    /// `.2`, ... (capped: [`vireo_vmm_api::logcap::SERIAL_LOG`]).
    pub fn serial_log(&self) -> PathBuf {
        self.dir.join("serial.log")
    }
    /// The VMM configuration the helper was started with.
    pub fn config(&self) -> PathBuf {
        self.dir.join("config.json")
    }
    /// The live domain XML (the definition the machine was started from).
    pub fn xml(&self) -> PathBuf {
        self.dir.join("domain.xml")
    }
    /// State and reason, see [`crate::state::StateRecord`].
    pub fn state(&self) -> PathBuf {
        self.dir.join("state.json")
    }
    /// Held (flock) by the supervisor for its whole life: if it can be taken, nobody supervises.
    pub fn supervisor_lock(&self) -> PathBuf {
        self.dir.join("supervisor.lock")
    }
    /// Serializes read-modify-write of `state.json`.
    pub fn state_lock(&self) -> PathBuf {
        self.dir.join("state.lock")
    }
    /// Held by a client from its media command to the helper until the change is in the live
    /// XML, so the supervisor, hearing the helper's `medium-changed`, finds it recorded and
    /// knows the change was not the guest's.
    pub fn media_lock(&self) -> PathBuf {
        self.dir.join("media.lock")
    }
    /// What a client asked the supervisor to do next (destroy, reboot) when it ends the helper.
    pub fn intent(&self) -> PathBuf {
        self.dir.join("intent")
    }
    /// stdout/stderr of the supervisor and of the helper, newest part; older parts are
    /// `vmm.log.1`, ... (capped: [`vireo_vmm_api::logcap::VMM_LOG`]).
    pub fn log(&self) -> PathBuf {
        self.dir.join("vmm.log")
    }
    pub fn path(&self) -> &Path {
        &self.dir
    }
}

/// The machine's state record and files, read and written under their locks: the supervisor,
/// every client call and the stats all go through these.
impl RunDir {
    /// Reads state.json, applies `f`, writes it back atomically, under the state lock.
    pub fn update_state(&self, f: impl FnOnce(&mut StateRecord)) -> std::io::Result<StateRecord> {
        let _l = FileLock::exclusive(&self.state_lock())?;
        let mut rec = self
            .read_state()
            .unwrap_or_else(|| StateRecord::new(DomainState::NoState, Reason::Unknown));
        f(&mut rec);
        rec.since_ms = crate::state::now_ms();
        let json = serde_json::to_vec_pretty(&rec).map_err(std::io::Error::other)?;
        crate::store::write_atomic(&self.state(), &json)?;
        Ok(rec)
    }

    pub fn read_state(&self) -> Option<StateRecord> {
        let text = std::fs::read(self.state()).ok()?;
        serde_json::from_slice(&text).ok()
    }

    /// Removes what only a live helper needs. Transient machines lose the whole directory.
    pub fn cleanup(&self, transient: bool) {
        if transient {
            // Gone at once: moved aside (lock file included), then removed. Removed in place, the
            // lock file could go before the rest, and a client that saw "nobody supervises" would
            // still find the directory.
            let aside = self
                .dir
                .parent()
                .zip(self.dir.file_name())
                .map(|(parent, name)| {
                    let mut hidden = std::ffi::OsString::from(".");
                    hidden.push(name);
                    hidden.push(format!(".gone.{}", std::process::id()));
                    parent.join(hidden)
                });
            match aside {
                Some(a) if std::fs::rename(&self.dir, &a).is_ok() => {
                    let _ = std::fs::remove_dir_all(a);
                }
                _ => {
                    let _ = std::fs::remove_dir_all(&self.dir);
                }
            }
            return;
        }
        for f in [
            self.control(),
            self.vnc(),
            self.serial(),
            self.config(),
            self.xml(),
            self.intent(),
        ] {
            let _ = std::fs::remove_file(f);
        }
    }
}
