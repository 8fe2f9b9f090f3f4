//! [`Connection`]: the driver's public API, what the GUI and `vireoctl` call.
//!
//! All calls block (the GUI runs them off its main thread) and return [`DriverError`]. Machines
//! are named by name (a UUID works wherever a name does). State is read fresh from the runtime
//! directory on every call, so two clients always agree and a restarted client sees machines that
//! kept running ("reattach" is simply: look again).

use crate::control::{self, ControlError};
use crate::definition::Definition;
use crate::events::{self, Event, Subscription};
use crate::paths::{ensure_private_dir, Paths};
use crate::process;
use crate::rundir::RunDir;
use crate::state::{DomainState, EventKind, Intent, Reason, StateRecord};
use crate::store::{FileLock, Store, StoreError};
use crate::translate::{self, TranslateError};
use crate::usecase::Place;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use vireo_domain::Domain;
use vireo_vmm_api::control::{Command, Done};

/// Everything that can go wrong, typed so callers can react (and `vireoctl` can pick an exit code).
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    #[error("domain '{0}' not found")]
    NotFound(String),
    #[error("{0}")]
    Invalid(#[from] vireo_domain::Errors),
    #[error("{0}")]
    Store(StoreError),
    /// The document asks for something the backend cannot do (checked before start); `place`
    /// is where, in the common path format (see [`crate::usecase::place`]).
    #[error("{error}")]
    Unsupported { error: TranslateError, place: Place },
    #[error("domain '{0}' is already running")]
    AlreadyRunning(String),
    #[error("domain '{0}' is not running")]
    NotRunning(String),
    #[error("domain '{name}' is not paused")]
    NotPaused { name: String },
    #[error("domain '{name}': {what} did not finish within {secs} s")]
    Timeout {
        name: String,
        what: String,
        secs: u64,
    },
    #[error("domain '{name}' failed to start: {message}")]
    StartFailed { name: String, message: String },
    #[error("domain '{name}': {source}")]
    Control { name: String, source: ControlError },
    #[error("domain '{name}': {what} is not supported by this helper version")]
    NotSupported { name: String, what: String },
    #[error("cannot find {0} (set {1} or install it next to vireoctl or in PATH)")]
    MissingBinary(&'static str, &'static str),
    #[error(transparent)]
    NotEnoughMemory(#[from] crate::host::NotEnoughMemory),
    #[error(transparent)]
    RuntimeDir(#[from] crate::paths::RuntimeDirError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A disk image to create is there already: it is neither overwritten nor taken over.
    #[error("{path}: a file of that name exists already (attach it as an existing disk, or choose another name)")]
    ImageExists { path: PathBuf, place: Place },
    /// `qemu-img create` failed, or could not be run.
    #[error("cannot create the disk image {path}: {message}")]
    ImageCreate {
        path: PathBuf,
        message: String,
        place: Place,
    },
    /// The quick machine's kernel, modules or busybox.
    #[error("{0}")]
    Quick(#[from] crate::quick::QuickError),
    /// A way of making machines that Vireo does not offer yet.
    #[error("{0} is not supported yet")]
    NotYetSupported(&'static str),
    /// Every target name of a bus (`vda`..`vdz`) is in use.
    #[error("no free disk target on the {bus} bus (a to z are in use)")]
    NoFreeTarget { bus: &'static str },
    /// A UEFI machine's variable store could not be made from its template at start.
    #[error(transparent)]
    Nvram(#[from] crate::nvram::NvramError),
}

impl DriverError {
    /// A start check's refusal of `dom`, with its place in the common format.
    pub(crate) fn unsupported(dom: &Domain, error: TranslateError) -> DriverError {
        DriverError::Unsupported {
            place: Place::of_start_check(dom, &error.path),
            error,
        }
    }
}

impl From<StoreError> for DriverError {
    fn from(e: StoreError) -> DriverError {
        match e {
            StoreError::NotFound(n) => DriverError::NotFound(n),
            StoreError::Domain(d) => DriverError::Invalid(d),
            e => DriverError::Store(e),
        }
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> DriverError + '_ {
    move |source| DriverError::Io {
        path: path.to_owned(),
        source,
    }
}

pub type Result<T> = std::result::Result<T, DriverError>;

/// A machine as a list or info call sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MachineInfo {
    pub name: String,
    pub uuid: Option<String>,
    pub title: Option<String>,
    pub state: DomainState,
    pub reason: Reason,
    /// Has a definition in the store (else transient).
    pub persistent: bool,
    pub autostart: bool,
    pub memory_kib: u64,
    pub vcpus: u32,
    /// The helper process while running.
    pub pid: Option<i32>,
    /// Loopback TCP VNC port, if any.
    pub vnc_port: Option<u16>,
    /// Restarts done by on_reboot / on_crash in this run.
    pub restarts: u32,
    /// Why the last run ended, when there is something to say.
    pub message: Option<String>,
    /// The operating system's libosinfo id, from the definition's `<metadata>`.
    pub os: Option<String>,
    /// Installing from a CD-ROM until the installer's first reboot ([`crate::install`]).
    pub installing: bool,
}

/// Default time `start` waits for the helper's control socket. A helper that fails ends and
/// is reported at once; this bounds only a helper that hangs. Generous because loading the
/// kernel and a large initramfs took 26 s in the nested rig at load 10 (debug build, TCG).
pub const START_TIMEOUT: Duration = Duration::from_secs(90);

/// A handle on the machines of one set of XDG directories.
#[derive(Debug, Clone)]
pub struct Connection {
    paths: Paths,
    store: Store,
}

impl Connection {
    /// The user's machines (XDG variables from the environment).
    pub fn open() -> Connection {
        Connection::with_paths(Paths::from_env())
    }

    pub fn with_paths(paths: Paths) -> Connection {
        Connection {
            store: Store::new(&paths),
            paths,
        }
    }

    pub fn paths(&self) -> &Paths {
        &self.paths
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    fn run(&self, name: &str) -> RunDir {
        RunDir::new(self.paths.machine_runtime(name))
    }

    fn emit(&self, name: &str, uuid: Option<&str>, kind: EventKind, detail: &str) {
        // An event that cannot be logged must not fail the operation that already happened.
        let _ = events::append(
            &self.paths.events_log(),
            &Event::new(name, uuid, kind, detail),
        );
    }

    /// The runtime record of `name`, after reconciling it with reality: a record that says
    /// "active" while neither supervisor nor helper lives is stale and gets cleaned up.
    fn live_record(&self, name: &str) -> Option<StateRecord> {
        let run = self.run(name);
        let rec = run.read_state()?;
        if !rec.state.is_active() && rec.state != DomainState::NoState {
            return Some(rec);
        }
        let supervised = FileLock::is_held(&run.supervisor_lock());
        if supervised || settled_without_helper(rec.state) {
            return Some(rec);
        }
        let helper_alive = match (rec.vmm_pid, rec.vmm_start) {
            (Some(p), Some(t)) => process::is_our_process(p, t, "vireo-vmm"),
            _ => false,
        };
        if helper_alive {
            // The supervisor died (killed) but the machine runs: report it; lifecycle actions
            // will not be applied for this run.
            return Some(rec);
        }
        if rec.state == DomainState::NoState
            && FileLock::is_held(&self.paths.runtime.join(".start.lock"))
            && crate::state::now_ms().saturating_sub(rec.since_ms) < 60_000
        {
            // A start in progress whose supervisor has not locked yet.
            return Some(rec);
        }
        // Stale: the helper died with its supervisor. Record it and clean up.
        let was_active = rec.state.is_active();
        let uuid = std::fs::read_to_string(run.xml())
            .ok()
            .and_then(|t| Definition::parse(&t).ok())
            .and_then(|d| d.uuid);
        // The supervisor records how the machine ended and only then lets go of its lock, so it
        // may have finished between our first read and the lock probe. Decide staleness again
        // under the state lock, on the record as it is now, or a clean shutdown reads as a crash.
        let mut ended_meanwhile = false;
        let rec = run
            .update_state(|r| {
                // A crash preserved meanwhile counts too: the supervisor of an on_crash=preserve
                // machine writes "crashed" and exits, and a stale read from before that must not
                // turn the preserved crash into "shut off".
                if settled_without_helper(r.state) {
                    ended_meanwhile = true;
                    return;
                }
                r.state = DomainState::Shutoff;
                r.reason = Reason::Crashed;
                r.vmm_pid = None;
                r.vmm_start = None;
                r.supervisor_pid = None;
                r.message = Some(
                    "the helper and its supervisor were gone; runtime files cleaned up".into(),
                );
            })
            .ok()?;
        if ended_meanwhile {
            return Some(rec);
        }
        if was_active {
            self.emit(name, uuid.as_deref(), EventKind::Stopped, "Failed");
        }
        run.cleanup(rec.transient);
        if rec.transient {
            return None;
        }
        Some(rec)
    }

    fn transient_names(&self) -> Vec<String> {
        let Ok(rd) = std::fs::read_dir(&self.paths.runtime) else {
            return Vec::new();
        };
        let mut v: Vec<String> = rd
            .flatten()
            .filter(|e| e.path().is_dir())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with('.'))
            .filter(|n| self.store.load(n).is_err())
            .collect();
        v.sort();
        v
    }

    /// The domain a machine runs from (live XML) or would start from (definition).
    fn domain(&self, name: &str) -> Result<(Definition, bool)> {
        let stored = match self.store.lookup(name) {
            Ok(d) => Some(d),
            Err(StoreError::NotFound(_)) => None,
            Err(e) => return Err(e.into()),
        };
        let real = stored
            .as_ref()
            .map(|d| d.name.clone())
            .unwrap_or_else(|| name.to_owned());
        let run = self.run(&real);
        if let Some(rec) = self.live_record(&real) {
            if rec.state.is_active() || rec.state == DomainState::NoState {
                if let Ok(t) = std::fs::read_to_string(run.xml()) {
                    if let Ok(d) = Definition::parse(&t) {
                        return Ok((d, stored.is_some()));
                    }
                }
            }
        }
        match stored {
            Some(d) => Ok((d, true)),
            None => Err(DriverError::NotFound(name.to_owned())),
        }
    }

    fn info_of(&self, dom: &Definition, persistent: bool) -> MachineInfo {
        let rec = self.live_record(&dom.name);
        let (state, reason) = match &rec {
            Some(r) if r.state == DomainState::NoState => (DomainState::Shutoff, Reason::Unknown),
            Some(r) => (r.state, r.reason),
            None => (DomainState::Shutoff, Reason::Unknown),
        };
        let active = state.is_active();
        MachineInfo {
            name: dom.name.clone(),
            uuid: dom.uuid.clone(),
            title: dom.title.clone(),
            state,
            reason,
            persistent,
            autostart: persistent && self.store.autostart(&dom.name),
            memory_kib: dom.memory_kib,
            vcpus: dom.vcpus,
            pid: rec.as_ref().filter(|_| active).and_then(|r| r.vmm_pid),
            vnc_port: rec.as_ref().filter(|_| active).and_then(|r| r.vnc_port),
            restarts: rec.as_ref().map(|r| r.restarts).unwrap_or(0),
            message: rec.and_then(|r| r.message),
            os: dom.dom.libosinfo_os(),
            installing: crate::install::installing(&dom.dom).is_some(),
        }
    }

    /// Every machine: defined ones and running transient ones, sorted by name. A definition file
    /// that does not parse is an error naming the file (never silently hidden).
    pub fn list(&self) -> Result<Vec<MachineInfo>> {
        let mut out = Vec::new();
        for d in self.store.load_all()? {
            let d = d?;
            out.push(self.info_of(&d, true));
        }
        for n in self.transient_names() {
            if let Ok((d, false)) = self.domain(&n) {
                let info = self.info_of(&d, false);
                if info.state.is_active() {
                    out.push(info);
                }
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    pub fn info(&self, name: &str) -> Result<MachineInfo> {
        let (d, persistent) = self.domain(name)?;
        Ok(self.info_of(&d, persistent))
    }

    pub fn state(&self, name: &str) -> Result<(DomainState, Reason)> {
        let i = self.info(name)?;
        Ok((i.state, i.reason))
    }

    /// The XML: the live document while running (unless `inactive`), else the definition.
    pub fn xml(&self, name: &str, inactive: bool) -> Result<String> {
        if inactive {
            return Ok(self.store.lookup(name)?.to_xml());
        }
        Ok(self.domain(name)?.0.to_xml())
    }

    /// Defines or redefines a machine from XML; returns its info.
    pub fn define_xml(&self, xml: &str) -> Result<MachineInfo> {
        self.define(xml, false)
    }

    /// Defines a new machine from XML: refused with [`StoreError::NameTaken`] if a machine of
    /// that name exists (it is never replaced).
    pub fn define_new_xml(&self, xml: &str) -> Result<MachineInfo> {
        self.define(xml, true)
    }

    fn define(&self, xml: &str, only_new: bool) -> Result<MachineInfo> {
        let (d, new) = if only_new {
            (self.store.define_new(xml)?, true)
        } else {
            self.store.define(xml)?
        };
        self.emit(
            &d.name,
            d.uuid.as_deref(),
            EventKind::Defined,
            if new { "Added" } else { "Updated" },
        );
        Ok(self.info_of(&d, true))
    }

    /// Removes a definition. A running machine keeps running as a transient one (as libvirt).
    pub fn undefine(&self, name: &str) -> Result<()> {
        // A definition that no longer parses is removed under the name it was stored as.
        let uuid = self.store.undefine(name)?.and_then(|d| d.uuid);
        if let Some(rec) = self.live_record(name) {
            if rec.state.is_active() {
                // Without the mark the machine would outlive its definition as if it had one:
                // the user must hear of it (the definition itself is gone already).
                let run = self.run(name);
                run.update_state(|r| r.transient = true)
                    .map_err(io(&run.state()))?;
            } else {
                let _ = std::fs::remove_dir_all(self.run(name).dir);
            }
        }
        self.emit(name, uuid.as_deref(), EventKind::Undefined, "Removed");
        Ok(())
    }

    pub fn autostart(&self, name: &str) -> Result<bool> {
        let d = self.store.lookup(name)?;
        Ok(self.store.autostart(&d.name))
    }

    pub fn set_autostart(&self, name: &str, on: bool) -> Result<()> {
        let d = self.store.lookup(name)?;
        Ok(self.store.set_autostart(&d.name, on)?)
    }

    /// Starts every autostart machine that is not running (the GUI calls this at login/launch).
    pub fn start_autostart(&self) -> Vec<(String, Result<()>)> {
        let names = self.store.names().unwrap_or_default();
        names
            .into_iter()
            .filter(|n| self.store.autostart(n))
            .filter(|n| self.state(n).map(|(s, _)| !s.is_active()).unwrap_or(false))
            .map(|n| {
                let r = self.start(&n);
                (n, r)
            })
            .collect()
    }

    /// Checks that a document would start (translation) without starting it.
    pub fn check_startable(&self, xml: &str) -> Result<Vec<String>> {
        let d = Definition::parse(xml)?;
        self.start_check(&d)
    }

    /// The start check of a definition: the backend's notes, or its refusal (the backend's, or
    /// this computer's when the machine asks for more memory than it has).
    pub(crate) fn start_check(&self, d: &Definition) -> Result<Vec<String>> {
        let tmp = RunDir::new(self.paths.machine_runtime(&d.name));
        let tr = translate::translate(&d.dom, &tmp, &self.paths.nvram_dir(), &mut || Some(5900))
            .map_err(|e| DriverError::unsupported(&d.dom, e))?;
        crate::host::check_memory(tr.config.memory_mib, crate::host::total_memory_mib())?;
        Ok(tr.notes)
    }

    /// Starts a defined machine and waits until its helper is ready.
    pub fn start(&self, name: &str) -> Result<()> {
        let d = self.store.lookup(name)?;
        self.launch(d, false, START_TIMEOUT)
    }

    /// Starts a machine without defining it (libvirt's `create`): it disappears when it stops.
    pub fn create_transient(&self, xml: &str) -> Result<MachineInfo> {
        let mut d = Definition::parse(xml)?;
        if self.store.load(&d.name).is_ok() {
            return Err(DriverError::Store(StoreError::NameTaken {
                name: d.name.clone(),
                uuid: self
                    .store
                    .load(&d.name)
                    .ok()
                    .and_then(|x| x.uuid)
                    .unwrap_or_default(),
            }));
        }
        d.ensure_uuid(None)
            .and_then(|()| d.ensure_macs())
            .map_err(io(Path::new("/dev/urandom")))?;
        d.ensure_scsi_controller();
        d.ensure_pci_addresses();
        let name = d.name.clone();
        self.launch(d, true, START_TIMEOUT)?;
        self.info(&name)
    }

    fn launch(&self, d: Definition, transient: bool, timeout: Duration) -> Result<()> {
        let vmm = process::find_binary("vireo-vmm", "VIREO_VMM")
            .ok_or(DriverError::MissingBinary("vireo-vmm", "VIREO_VMM"))?;
        let sup = process::find_binary("vireoctl", "VIREO_SUPERVISOR").ok_or(
            DriverError::MissingBinary("vireoctl (the supervisor)", "VIREO_SUPERVISOR"),
        )?;
        crate::paths::ensure_runtime_dir(&self.paths.runtime)?;
        // One starter at a time per connection: the check-then-spawn below must not interleave.
        let lock_path = self.paths.runtime.join(".start.lock");
        let _lock = FileLock::exclusive(&lock_path).map_err(io(&lock_path))?;
        let run = self.run(&d.name);
        // We hold the start lock: a record still "starting" with no supervisor is left over
        // from a starter that was killed, not a start in progress.
        let leftover = run.read_state().is_some_and(|r| {
            r.state == DomainState::NoState && !FileLock::is_held(&run.supervisor_lock())
        });
        if !leftover {
            if let Some(rec) = self.live_record(&d.name) {
                if rec.state.is_active() || rec.state == DomainState::NoState {
                    return Err(DriverError::AlreadyRunning(d.name.clone()));
                }
            }
        }
        // The supervisor of the last run records "shut off" before it removes its runtime files
        // and exits: a start in that instant would have its new files removed. Let it finish.
        if !Self::wait_unsupervised(&run, Duration::from_secs(10)) {
            return Err(DriverError::Timeout {
                name: d.name.clone(),
                what: "the end of the previous run's supervisor".into(),
                secs: 10,
            });
        }
        let _ = std::fs::remove_dir_all(&run.dir);
        ensure_private_dir(&run.dir).map_err(io(&run.dir))?;
        let nvram_dir = self.paths.nvram_dir();
        let mut tr =
            match translate::translate(&d.dom, &run, &nvram_dir, &mut translate::free_vnc_port) {
                Ok(t) => t,
                Err(e) => {
                    let _ = std::fs::remove_dir_all(&run.dir);
                    return Err(DriverError::unsupported(&d.dom, e));
                }
            };
        if let Err(e) =
            crate::host::check_memory(tr.config.memory_mib, crate::host::total_memory_mib())
        {
            let _ = std::fs::remove_dir_all(&run.dir);
            return Err(e.into());
        }
        // The first start of a UEFI machine makes its variable store, as late as possible so
        // that a start refused above leaves no file behind.
        if let Some(copy) = &tr.nvram_from_template {
            if let Err(e) = crate::nvram::make_store(copy) {
                let _ = std::fs::remove_dir_all(&run.dir);
                return Err(e.into());
            }
        }
        let write = |p: PathBuf, data: &[u8]| {
            crate::store::write_atomic(&p, data).map_err(|e| DriverError::Io {
                path: p.clone(),
                source: e,
            })
        };
        // A kernel unpacked by an earlier start's supervisor loads ready; else the supervisor
        // unpacks it in the background for the next start.
        let kernel_cache = self.paths.cache.join("kernels");
        let mut unpack_later = None;
        if let Some(kernel) = &tr.config.kernel {
            tr.config.kernel_unpacked = crate::unpack::cached(kernel, &kernel_cache);
            if tr.config.kernel_unpacked.is_none() {
                unpack_later = Some(kernel.clone());
            }
        }
        let cfg = serde_json::to_vec_pretty(&tr.config).map_err(|e| DriverError::Io {
            path: run.config(),
            source: std::io::Error::other(e),
        })?;
        write(run.config(), &cfg)?;
        write(run.xml(), d.to_xml().as_bytes())?;
        run.update_state(|r| {
            *r = StateRecord::new(DomainState::NoState, Reason::Unknown);
            r.transient = transient;
            r.vnc_port = tr.vnc_port;
        })
        .map_err(io(&run.state()))?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(run.log())
            .map_err(io(&run.log()))?;
        let log2 = log.try_clone().map_err(io(&run.log()))?;
        let mut cmd = std::process::Command::new(&sup);
        cmd.arg("__supervise")
            .arg("--rundir")
            .arg(&run.dir)
            .arg("--events")
            .arg(self.paths.events_log())
            .arg("--vmm")
            .arg(&vmm);
        if !transient {
            cmd.arg("--config-dir").arg(&self.paths.config);
        }
        if let Some(kernel) = &unpack_later {
            cmd.arg("--unpack-kernel")
                .arg(kernel)
                .arg("--kernel-cache")
                .arg(&kernel_cache);
        }
        cmd.stdin(std::process::Stdio::null())
            .stdout(log)
            .stderr(log2);
        process::spawn_detached(&mut cmd).map_err(io(&sup))?;
        let start = Instant::now();
        loop {
            std::thread::sleep(Duration::from_millis(20));
            let rec = run.read_state();
            match rec {
                // A guest may already have run and ended (e.g. powered off at once): it did
                // start. Only a helper that never got going is a failed start.
                Some(r) if r.state != DomainState::NoState && r.reason != Reason::Failed => {
                    return Ok(())
                }
                Some(r) if r.state != DomainState::NoState => {
                    return Err(DriverError::StartFailed {
                        name: d.name.clone(),
                        message: r
                            .message
                            .unwrap_or_else(|| format!("{} ({})", r.state, r.reason)),
                    })
                }
                // A transient machine's directory goes when it stops: it ran and ended.
                None if !run.dir.exists() && transient => return Ok(()),
                None if !run.dir.exists() => {
                    return Err(DriverError::StartFailed {
                        name: d.name.clone(),
                        message: "the runtime directory disappeared".into(),
                    })
                }
                _ => {}
            }
            if start.elapsed() > timeout {
                return Err(DriverError::Timeout {
                    name: d.name.clone(),
                    what: "start".into(),
                    secs: timeout.as_secs(),
                });
            }
        }
    }

    /// The runtime record of a running machine, or `NotRunning`.
    pub(crate) fn running(&self, name: &str) -> Result<(Definition, RunDir, StateRecord)> {
        let (d, _) = self.domain(name)?;
        let run = self.run(&d.name);
        match self.live_record(&d.name) {
            Some(r) if r.state.is_active() => Ok((d, run, r)),
            _ => Err(DriverError::NotRunning(d.name.clone())),
        }
    }

    /// Sends one of the commands that only act (their return is `{}`).
    pub(crate) fn control(&self, name: &str, run: &RunDir, command: Command) -> Result<()> {
        // A screendump encodes the whole screen as PNG, which takes seconds in a debug build
        // under nested virtualization; everything else is answered at once.
        let slow = matches!(command, Command::Screendump { .. });
        let timeout = Duration::from_secs(if slow { 60 } else { 10 });
        control::request::<Done>(&run.control(), command, timeout).map_err(|e| match e {
            ControlError::Unknown(what) => DriverError::NotSupported {
                name: name.to_owned(),
                what,
            },
            source => DriverError::Control {
                name: name.to_owned(),
                source,
            },
        })?;
        Ok(())
    }

    fn set_intent(run: &RunDir, intent: Intent) -> Result<()> {
        let text = serde_json::to_string(&intent).unwrap_or_default();
        crate::store::write_atomic(&run.intent(), text.as_bytes()).map_err(io(&run.intent()))
    }

    /// Waits until the run that had `restarts` restarts ends or restarts.
    fn wait_run_change(&self, name: &str, restarts: u32, timeout: Duration) -> bool {
        self.watch_run_change(name, restarts, timeout, |_| {})
    }

    /// [`Self::wait_run_change`], calling `each` with every record read while the run goes on.
    fn watch_run_change(
        &self,
        name: &str,
        restarts: u32,
        timeout: Duration,
        mut each: impl FnMut(&StateRecord),
    ) -> bool {
        let start = Instant::now();
        while start.elapsed() < timeout {
            match self.live_record(name) {
                None => return true,
                Some(r)
                    if !r.state.is_active()
                        || r.restarts != restarts
                        || r.state == DomainState::Crashed =>
                {
                    return true
                }
                Some(r) => each(&r),
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// Asks the guest to power off (ACPI power button) and waits up to `timeout` for it to stop.
    /// A zero timeout only sends the request.
    pub fn shutdown(&self, name: &str, timeout: Duration) -> Result<()> {
        let (d, run, rec) = self.running(name)?;
        self.control(&d.name, &run, Command::PowerDown)?;
        if timeout.is_zero() {
            return Ok(());
        }
        if self.wait_run_change(&d.name, rec.restarts, timeout) {
            if !self
                .live_record(&d.name)
                .is_some_and(|r| r.state.is_active())
            {
                Self::wait_unsupervised(&run, Duration::from_secs(5));
            }
            Ok(())
        } else {
            Err(DriverError::Timeout {
                name: d.name,
                what: "shutdown".into(),
                secs: timeout.as_secs(),
            })
        }
    }

    /// Stops the machine at once (the helper is killed).
    pub fn destroy(&self, name: &str) -> Result<()> {
        let (d, run, rec) = self.running(name)?;
        // A preserved crashed machine has no helper any more; its supervisor is on its way out.
        if rec.state == DomainState::Crashed {
            Self::wait_unsupervised(&run, Duration::from_secs(5));
        }
        let supervised = FileLock::is_held(&run.supervisor_lock());
        if supervised {
            Self::set_intent(&run, Intent::Destroy)?;
            // Done when the supervisor has recorded the end and cleaned up (it then exits).
            if self.kill_until_run_change(&d.name, rec.restarts, Duration::from_secs(15))
                && Self::wait_unsupervised(&run, Duration::from_secs(5))
            {
                return Ok(());
            }
            return Err(DriverError::Timeout {
                name: d.name,
                what: "destroy".into(),
                secs: 20,
            });
        }
        Self::kill_helper(&rec);
        // Nobody supervises (its supervisor was killed, or the machine is preserved after a
        // crash): record the end ourselves.
        let rec = run
            .update_state(|r| {
                r.state = DomainState::Shutoff;
                r.reason = Reason::Destroyed;
                r.vmm_pid = None;
                r.vmm_start = None;
                r.supervisor_pid = None;
            })
            .map_err(io(&run.state()))?;
        self.emit(&d.name, d.uuid.as_deref(), EventKind::Stopped, "Destroyed");
        run.cleanup(rec.transient);
        Ok(())
    }

    fn kill_helper(rec: &StateRecord) {
        if let (Some(p), Some(t)) = (rec.vmm_pid, rec.vmm_start) {
            if process::is_our_process(p, t, "vireo-vmm") {
                process::signal(p, libc::SIGKILL);
            }
        }
    }

    /// Kills the helper of the run that had `restarts` restarts until that run ends or
    /// restarts; `false` on timeout. The record is read again each time round: a supervisor that
    /// is still starting its helper names it only after the spawn, so the helper of the first
    /// read may be none or an old one.
    fn kill_until_run_change(&self, name: &str, restarts: u32, timeout: Duration) -> bool {
        let mut killed = None;
        self.watch_run_change(name, restarts, timeout, |live| {
            if live.vmm_pid.is_some() && live.vmm_pid != killed {
                Self::kill_helper(live);
                killed = live.vmm_pid;
            }
        })
    }

    /// Waits until no supervisor holds the machine's lock; `false` on timeout.
    fn wait_unsupervised(run: &RunDir, timeout: Duration) -> bool {
        let start = Instant::now();
        while FileLock::is_held(&run.supervisor_lock()) {
            if start.elapsed() > timeout {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        true
    }

    /// Restarts the machine with a fresh helper (the guest sees a reboot), whatever on_reboot says.
    pub fn reboot(&self, name: &str) -> Result<()> {
        let (d, run, rec) = self.running(name)?;
        Self::set_intent(&run, Intent::Reboot)?;
        if self.control(&d.name, &run, Command::Reset).is_err() {
            Self::kill_helper(&rec);
        }
        if self.wait_run_change(&d.name, rec.restarts, Duration::from_secs(15)) {
            // Wait for the new helper to be ready so the caller can use it at once.
            let start = Instant::now();
            while start.elapsed() < START_TIMEOUT {
                match self.live_record(&d.name) {
                    Some(r) if r.state == DomainState::Running && r.restarts != rec.restarts => {
                        return Ok(())
                    }
                    Some(r) if !r.state.is_active() => {
                        return Err(DriverError::StartFailed {
                            name: d.name,
                            message: r.message.unwrap_or_default(),
                        })
                    }
                    None => return Err(DriverError::NotRunning(d.name)),
                    _ => std::thread::sleep(Duration::from_millis(50)),
                }
            }
        }
        Err(DriverError::Timeout {
            name: d.name,
            what: "reboot".into(),
            secs: START_TIMEOUT.as_secs(),
        })
    }

    /// A hard reset, the same as [`Connection::reboot`] here. Both send the VMM's `reset`
    /// control command, which ends the helper's run loop with the reboot reason (the VMM has no
    /// in-place CPU and device reset); the supervisor then starts a fresh helper from the same
    /// config, so the guest cold-boots, the record reads running (booted) with one more restart,
    /// and a reboot event is sent. A helper that does not answer is killed instead.
    pub fn reset(&self, name: &str) -> Result<()> {
        self.reboot(name)
    }

    pub fn suspend(&self, name: &str) -> Result<()> {
        let (d, run, rec) = self.running(name)?;
        if rec.state == DomainState::Paused {
            return Ok(());
        }
        self.control(&d.name, &run, Command::Pause)?;
        run.update_state(|r| {
            r.state = DomainState::Paused;
            r.reason = Reason::User;
        })
        .map_err(io(&run.state()))?;
        self.emit(&d.name, d.uuid.as_deref(), EventKind::Suspended, "Paused");
        Ok(())
    }

    pub fn resume(&self, name: &str) -> Result<()> {
        let (d, run, rec) = self.running(name)?;
        if rec.state != DomainState::Paused {
            return Err(DriverError::NotPaused { name: d.name });
        }
        self.control(&d.name, &run, Command::Resume)?;
        run.update_state(|r| {
            r.state = DomainState::Running;
            r.reason = Reason::Unpaused;
        })
        .map_err(io(&run.state()))?;
        self.emit(&d.name, d.uuid.as_deref(), EventKind::Resumed, "Unpaused");
        Ok(())
    }

    /// Writes the guest's screen to `file` as PNG (the helper's `screendump`).
    pub fn screenshot(&self, name: &str, file: &Path) -> Result<()> {
        let (d, run, _) = self.running(name)?;
        let abs = if file.is_absolute() {
            file.to_owned()
        } else {
            std::env::current_dir().map_err(io(file))?.join(file)
        };
        self.control(&d.name, &run, Command::Screendump { filename: abs })
    }

    /// The VNC unix socket of a running machine with a display.
    pub fn vnc_socket(&self, name: &str) -> Result<PathBuf> {
        self.vnc_endpoint(name).map(|(socket, _)| socket)
    }

    /// The VNC socket of a running machine and the password its server asks for (the domain's
    /// `passwd`, if any): the owner's console needs both, as virt-manager reads `passwd` from
    /// the definition.
    pub fn vnc_endpoint(&self, name: &str) -> Result<(PathBuf, Option<String>)> {
        let (d, run, _) = self.running(name)?;
        let cfg: Option<vireo_vmm_api::config::VmConfig> = std::fs::read(run.config())
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        match cfg.and_then(|c| c.display).map(|x| x.vnc) {
            Some(vireo_vmm_api::config::VncConfig {
                unix_socket: Some(socket),
                password,
                ..
            }) => Ok((socket, password)),
            _ => Err(DriverError::NotSupported {
                name: d.name,
                what: "VNC (no graphics device)".into(),
            }),
        }
    }

    /// `virsh vncdisplay`: `127.0.0.1:N` for a TCP server (N = port - 5900), else None.
    pub fn vnc_display(&self, name: &str) -> Result<Option<String>> {
        let (_, _, rec) = self.running(name)?;
        Ok(rec.vnc_port.map(|p| {
            if p >= 5900 {
                format!("127.0.0.1:{}", p - 5900)
            } else {
                format!("127.0.0.1::{p}")
            }
        }))
    }

    /// The serial console socket of a running machine.
    pub fn console_socket(&self, name: &str) -> Result<PathBuf> {
        let (d, run, _) = self.running(name)?;
        let cfg: Option<vireo_vmm_api::config::VmConfig> = std::fs::read(run.config())
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        match cfg.and_then(|c| c.serial.socket) {
            Some(p) => Ok(p),
            None => Err(DriverError::NotSupported {
                name: d.name,
                what: "console (no pty serial device)".into(),
            }),
        }
    }

    /// The serial log of a machine (kept after it stops).
    pub fn serial_log(&self, name: &str) -> PathBuf {
        self.run(name).serial_log()
    }

    /// Events from now on, in order, on a std channel (the GUI bridges it to its main loop).
    pub fn subscribe(&self) -> Subscription {
        events::subscribe(&self.paths.events_log())
    }
}

/// A record that stands without a helper or supervisor: the machine ended (shut off), or it
/// crashed and is preserved (on_crash=preserve keeps "crashed" with no helper, by design).
fn settled_without_helper(state: DomainState) -> bool {
    (!state.is_active() && state != DomainState::NoState) || state == DomainState::Crashed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_preserved_crash_and_an_ended_machine_stand_without_a_helper() {
        assert!(settled_without_helper(DomainState::Crashed));
        assert!(settled_without_helper(DomainState::Shutoff));
        assert!(!settled_without_helper(DomainState::Running));
        assert!(!settled_without_helper(DomainState::Paused));
        assert!(
            !settled_without_helper(DomainState::NoState),
            "a start in progress"
        );
    }
}
