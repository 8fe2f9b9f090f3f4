//! The supervisor: a small detached process per running machine (run as `vireoctl __supervise`)
//! that starts `vireo-vmm`, waits for it to end, records why, and applies on_poweroff /
//! on_reboot / on_crash. This is how lifecycle actions work without a daemon: the GUI or the CLI
//! may quit at any time, the supervisor stays with its helper.
//!
//! It holds an exclusive flock on `supervisor.lock` in the runtime directory for its whole life;
//! clients test that lock to know whether a machine is supervised.
//!
//! The helper's stdout and stderr are a pipe that the supervisor copies into `vmm.log` through
//! a size-capped, rotating writer (with its own lines), so a guest that makes the helper log
//! per request cannot fill the runtime directory whatever the line comes from, panics and
//! lines added later included; and no line is lost at the end, because the copy runs until the
//! pipe's end of file. (The helper's own writer could not see another process's lines, nor be
//! sure to write its last ones before the process ends.) The cost: a helper whose supervisor
//! was killed gets an error on its next log line.

use crate::definition::Definition;
use crate::events::{append, DiskChange, DiskChangeReason, Event};
use crate::rundir::RunDir;
use crate::state::{decide, Actions, DomainState, EventKind, Intent, Reason, StateRecord, VmmExit};
use crate::store::FileLock;
use std::io::Write;
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use vireo_vmm_api::logcap::{self, CappedLog};

/// How long a helper may take to open its control socket.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// A helper that ends this soon after start counts toward the crash loop limit.
const FAST_EXIT: Duration = Duration::from_secs(2);
const FAST_EXIT_LIMIT: u32 = 5;
/// How long the helper's last output may take to reach the log after it ended (a grandchild
/// could hold the pipe open; it is not waited for longer).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// What the supervisor could not do; it reaches the user as a `Stopped Failed` event with this
/// text, and as a line in `vmm.log`.
#[derive(Debug, thiserror::Error)]
pub enum SuperviseError {
    #[error("cannot record the machine's state in {path}: {source}")]
    State {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Arguments of `vireoctl __supervise`.
#[derive(Debug, Clone)]
pub struct SuperviseArgs {
    pub rundir: PathBuf,
    pub events: PathBuf,
    pub vmm: PathBuf,
    /// A bzImage to unpack into `kernel_cache` in the background, for the next start
    /// ([`crate::unpack`]).
    pub unpack_kernel: Option<PathBuf>,
    pub kernel_cache: Option<PathBuf>,
    /// The connection's configuration directory, for a defined machine: where the end of an
    /// install phase is written into its definition ([`crate::install`]).
    pub config_dir: Option<PathBuf>,
}

/// Reads and removes the intent a client left.
fn take_intent(run: &RunDir) -> Option<Intent> {
    let text = std::fs::read_to_string(run.intent()).ok()?;
    let _ = std::fs::remove_file(run.intent());
    serde_json::from_str(&text).ok()
}

/// `vmm.log`, shared by the supervisor's lines and the copy of the helper's output.
static VMM_LOG: Mutex<Option<(PathBuf, CappedLog)>> = Mutex::new(None);

fn write_log(run: &RunDir, bytes: &[u8]) -> std::io::Result<()> {
    let path = run.log();
    let mut g = VMM_LOG.lock().unwrap_or_else(|e| e.into_inner());
    if g.as_ref().is_none_or(|(p, _)| *p != path) {
        let log = CappedLog::open(&path, logcap::limits(logcap::VMM_LOG))?;
        *g = Some((path, log));
    }
    match g.as_mut() {
        Some((_, log)) => log.write_all(bytes),
        None => Ok(()),
    }
}

fn log(run: &RunDir, msg: &str) {
    let line = format!("[vireo-supervisor {}] {msg}\n", crate::state::now_ms());
    if let Err(e) = write_log(run, line.as_bytes()) {
        // Our stderr is the log file too (opened by the client that started us): the last resort.
        eprintln!(
            "vireo-supervisor: cannot write {}: {e}; {msg}",
            run.log().display()
        );
    }
}

/// [`update_state`]; a failure is logged and returned typed, for the caller to announce.
fn record(run: &RunDir, f: impl FnOnce(&mut StateRecord)) -> Result<StateRecord, SuperviseError> {
    run.update_state(f).map_err(|source| {
        let e = SuperviseError::State {
            path: run.state(),
            source,
        };
        log(run, &e.to_string());
        e
    })
}

fn emit(
    args: &SuperviseArgs,
    dom: &Definition,
    kind: EventKind,
    detail: &str,
    message: Option<String>,
) {
    let mut ev = Event::new(&dom.name, dom.uuid.as_deref(), kind, detail);
    ev.message = message;
    if let Err(e) = append(&args.events, &ev) {
        log(
            &RunDir::new(&args.rundir),
            &format!("cannot append event: {e}"),
        );
    }
}

enum Ready {
    Yes,
    Exited(std::process::ExitStatus),
    TimedOut,
}

fn wait_ready(child: &mut Child, ctl: &Path) -> Ready {
    let start = Instant::now();
    loop {
        if let Ok(Some(st)) = child.try_wait() {
            return Ready::Exited(st);
        }
        if crate::control::alive(ctl) {
            return Ready::Yes;
        }
        if start.elapsed() > READY_TIMEOUT {
            return Ready::TimedOut;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A running helper and the thread that copies its output into `vmm.log`.
struct Helper {
    child: Child,
    pump: Option<JoinHandle<()>>,
}

impl Helper {
    /// Waits (a bounded time) until the helper's last output is in the log; call once it ended.
    fn drain(&mut self) {
        let Some(pump) = self.pump.take() else {
            return;
        };
        let start = Instant::now();
        while !pump.is_finished() && start.elapsed() < DRAIN_TIMEOUT {
            std::thread::sleep(Duration::from_millis(5));
        }
        if pump.is_finished() {
            let _ = pump.join();
        }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.drain();
    }
}

fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two descriptors into the array we own, which we take ownership of.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: both descriptors were just created and are owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

fn spawn_vmm(args: &SuperviseArgs, run: &RunDir) -> std::io::Result<Helper> {
    for s in [run.control(), run.vnc(), run.serial()] {
        let _ = std::fs::remove_file(s);
    }
    let (read, write) = pipe()?;
    let write2 = write.try_clone()?;
    // The command (holding our copies of the write end) is dropped after the spawn, so the
    // pipe ends when the helper (and anything it started) closes it.
    let child = Command::new(&args.vmm)
        .arg("--config")
        .arg(run.config())
        .arg("--control")
        .arg(run.control())
        .stdin(Stdio::null())
        .stdout(Stdio::from(write))
        .stderr(Stdio::from(write2))
        .spawn()?;
    let run2 = run.clone();
    let pump = std::thread::Builder::new()
        .name("vmm-log".into())
        .spawn(move || {
            if let Err(e) = logcap::pump(std::fs::File::from(read), |line| write_log(&run2, line)) {
                log(&run2, &format!("copying the helper's output stopped: {e}"));
            }
        });
    let pump = match pump {
        Ok(p) => Some(p),
        Err(e) => {
            let mut h = Helper { child, pump: None };
            h.kill();
            return Err(e);
        }
    };
    Ok(Helper { child, pump })
}

/// The guest rebooted: if the machine was installing, the installer is done. Its ISO is
/// ejected and the disk boots first from now on, in the restarting machine and in its
/// definition. What fails is logged; the machine restarts either way.
fn end_install(args: &SuperviseArgs, run: &RunDir, dom: &Definition) {
    let finished = match crate::install::finish_live(run) {
        Ok(Some(f)) => f,
        Ok(None) => return,
        Err(e) => {
            log(run, &format!("cannot end the install phase: {e}"));
            return;
        }
    };
    log(
        run,
        &format!(
            "the installer rebooted: {} ejected, the disk boots first",
            finished.ejected.as_deref().unwrap_or("nothing")
        ),
    );
    let ev = Event::disk_change(
        &dom.name,
        dom.uuid.as_deref(),
        DiskChange {
            target: finished.target.clone(),
            old_source: finished.ejected.clone(),
            new_source: None,
            reason: DiskChangeReason::Installed,
        },
    );
    if let Err(e) = append(&args.events, &ev) {
        log(run, &format!("cannot append event: {e}"));
    }
    if let Some(config) = &args.config_dir {
        let store = crate::store::Store::in_config(config);
        match crate::install::finish_definition(&store, &dom.name, dom.uuid.as_deref()) {
            // Its front ends hear of the new definition as of any other.
            Ok(Some(_)) => emit(args, dom, EventKind::Defined, "Updated", None),
            Ok(None) => {}
            Err(e) => log(
                run,
                &format!("cannot end the install phase in the definition: {e}"),
            ),
        }
    }
}

/// Runs until the machine is stopped for good; returns the process exit code.
pub fn supervise(args: &SuperviseArgs) -> i32 {
    let run = RunDir::new(&args.rundir);
    // Clients probe this lock (taking it for an instant when it is free), so a busy lock is
    // retried for a moment before concluding that another supervisor owns the machine.
    let start = Instant::now();
    let _lock = loop {
        match FileLock::try_exclusive(&run.supervisor_lock()) {
            Ok(Some(l)) => break l,
            Ok(None) if start.elapsed() < Duration::from_secs(2) => {
                std::thread::sleep(Duration::from_millis(5))
            }
            Ok(None) => {
                eprintln!("{}: already supervised", run.dir.display());
                return 1;
            }
            Err(e) => {
                eprintln!("{}: {e}", run.supervisor_lock().display());
                return 1;
            }
        }
    };
    // Ignore SIGHUP/SIGINT: the terminal we may have been started from is none of our business.
    // SAFETY: setting a signal disposition to SIG_IGN is always sound.
    unsafe {
        libc::signal(libc::SIGHUP, libc::SIG_IGN);
        libc::signal(libc::SIGINT, libc::SIG_IGN);
    }
    let dom = match std::fs::read_to_string(run.xml())
        .map_err(|e| e.to_string())
        .and_then(|t| Definition::parse(&t).map_err(|e| e.to_string()))
    {
        Ok(d) => d,
        Err(e) => {
            log(&run, &format!("cannot read the live XML: {e}"));
            let recorded = record(&run, |r| {
                r.state = DomainState::Shutoff;
                r.reason = Reason::Failed;
                r.message = Some(e.clone());
            });
            // Without the XML there is no UUID; the directory is named after the machine.
            let name = run
                .dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned());
            let mut ev = Event::new(
                name.as_deref().unwrap_or_default(),
                None,
                EventKind::Stopped,
                "Failed",
            );
            ev.message = Some(match recorded {
                Ok(_) => e,
                Err(w) => format!("{e}; {w}"),
            });
            if let Err(e) = append(&args.events, &ev) {
                log(&run, &format!("cannot append event: {e}"));
            }
            return 1;
        }
    };
    let actions = Actions {
        on_poweroff: dom.on_poweroff.clone(),
        on_reboot: dom.on_reboot.clone(),
        on_crash: dom.on_crash.clone(),
    };
    if let (Some(kernel), Some(cache)) = (args.unpack_kernel.clone(), args.kernel_cache.clone()) {
        let run = RunDir::new(&args.rundir);
        std::thread::spawn(move || match crate::unpack::unpack(&kernel, &cache) {
            Ok(Some(p)) => log(
                &run,
                &format!("kernel unpacked for the next start: {}", p.display()),
            ),
            Ok(None) => {}
            Err(e) => log(
                &run,
                &format!("the kernel stays packed (the guest unpacks it): {e}"),
            ),
        });
    }
    let me = std::process::id() as i32;
    let mut fast_exits = 0;
    let mut restarts = 0u32;
    loop {
        let mut helper = match spawn_vmm(args, &run) {
            Ok(h) => h,
            Err(e) => {
                let msg = format!("cannot run {}: {e}", args.vmm.display());
                log(&run, &msg);
                finish(
                    args,
                    &run,
                    &dom,
                    DomainState::Shutoff,
                    Reason::Failed,
                    Some(msg),
                    false,
                );
                return 1;
            }
        };
        let pid = helper.child.id() as i32;
        let token = crate::process::start_token(pid);
        let started = Instant::now();
        // A helper that clients cannot find (or see running) must not run: fail closed.
        if let Err(e) = record(&run, |r| {
            r.supervisor_pid = Some(me);
            r.vmm_pid = Some(pid);
            r.vmm_start = token;
        }) {
            helper.kill();
            fail(args, &run, &dom, e.to_string());
            return 1;
        }
        let status = match wait_ready(&mut helper.child, &run.control()) {
            Ready::Yes => {
                if let Err(e) = record(&run, |r| {
                    r.state = DomainState::Running;
                    r.reason = Reason::Booted;
                    r.restarts = restarts;
                    r.message = None;
                }) {
                    helper.kill();
                    fail(args, &run, &dom, e.to_string());
                    return 1;
                }
                emit(args, &dom, EventKind::Started, "Booted", None);
                // The guest's own eject reaches the live XML and the event log through the
                // helper's events; the thread ends with the helper's connection.
                let run2 = run.clone();
                let (events, name, uuid) =
                    (args.events.clone(), dom.name.clone(), dom.uuid.clone());
                let run3 = run.clone();
                let announce = move |change| {
                    let ev = Event::disk_change(&name, uuid.as_deref(), change);
                    if let Err(e) = append(&events, &ev) {
                        log(&run3, &format!("cannot append event: {e}"));
                    }
                };
                if let Err(e) = crate::live::watch_media(&run, announce, move |m| log(&run2, m)) {
                    log(&run, &format!("cannot follow the helper's events: {e}"));
                }
                let waited = helper.child.wait();
                helper.drain();
                match waited {
                    Ok(st) => st,
                    Err(e) => {
                        log(&run, &format!("wait: {e}"));
                        finish(
                            args,
                            &run,
                            &dom,
                            DomainState::Shutoff,
                            Reason::Failed,
                            Some(e.to_string()),
                            false,
                        );
                        return 1;
                    }
                }
            }
            // The guest ran and ended (poweroff, reboot, crash) before we saw the socket: a
            // normal, very short run. A helper that panicked broke while running the machine,
            // which is a crash to report, not a start that never got going.
            Ready::Exited(st)
                if matches!(
                    VmmExit::from_status(st),
                    VmmExit::Poweroff | VmmExit::Reboot | VmmExit::Crash | VmmExit::Panic
                ) =>
            {
                helper.drain();
                if let Err(e) = record(&run, |r| {
                    r.state = DomainState::Running;
                    r.reason = Reason::Booted;
                    r.restarts = restarts;
                }) {
                    fail(args, &run, &dom, e.to_string());
                    return 1;
                }
                emit(args, &dom, EventKind::Started, "Booted", None);
                st
            }
            Ready::Exited(st) => {
                helper.drain();
                let msg = crate::process::tail(&run.log(), 3);
                let msg = if msg.is_empty() {
                    format!("vireo-vmm exited with {st}")
                } else {
                    msg
                };
                // An intent (destroy during start) still wins.
                if take_intent(&run) == Some(Intent::Destroy) {
                    emit(args, &dom, EventKind::Stopped, "Destroyed", None);
                    finish(
                        args,
                        &run,
                        &dom,
                        DomainState::Shutoff,
                        Reason::Destroyed,
                        None,
                        false,
                    );
                } else {
                    fail(args, &run, &dom, msg);
                }
                return 1;
            }
            Ready::TimedOut => {
                helper.kill();
                let msg = format!(
                    "vireo-vmm did not open its control socket within {}s",
                    READY_TIMEOUT.as_secs()
                );
                fail(args, &run, &dom, msg);
                return 1;
            }
        };
        let exit = VmmExit::from_status(status);
        let intent = take_intent(&run);
        let mut d = decide(exit, intent, &actions);
        if intent.is_none() {
            if let Some(why) = helper_fault(exit, &run.log()) {
                d.note = Some(why);
            }
        }
        log(
            &run,
            &format!("vireo-vmm ended: {status} ({exit:?}), intent {intent:?}, decision {d:?}"),
        );
        if d.restart && intent.is_none() {
            if started.elapsed() < FAST_EXIT {
                fast_exits += 1;
            } else {
                fast_exits = 0;
            }
            if fast_exits >= FAST_EXIT_LIMIT {
                d.restart = false;
                d.state = DomainState::Shutoff;
                d.reason = Reason::Failed;
                d.note = Some(format!("stopped restarting: the helper ended {FAST_EXIT_LIMIT} times within {}s of starting", FAST_EXIT.as_secs()));
                d.events.retain(|(k, _)| *k != EventKind::Started);
                d.events.push((EventKind::Stopped, "Failed"));
            }
        }
        if d.restart && exit == VmmExit::Reboot && intent.is_none() {
            end_install(args, &run, &dom);
        }
        for (kind, detail) in &d.events {
            // `Started` is announced when the new helper is ready.
            if *kind != EventKind::Started {
                emit(args, &dom, *kind, detail, d.note.clone());
            }
        }
        if let Some(n) = &d.note {
            log(&run, n);
        }
        if d.restart {
            restarts += 1;
            continue;
        }
        let message = d.note.clone().or_else(|| match exit {
            VmmExit::Error | VmmExit::Crash => Some(crate::process::tail(&run.log(), 3)),
            _ => None,
        });
        finish(args, &run, &dom, d.state, d.reason, message, d.preserve);
        return 0;
    }
}

/// Why the helper itself broke, for the Stopped event and the state's message: the panic
/// hook's line from the VMM log, or the signal that killed it.
fn helper_fault(exit: VmmExit, log: &Path) -> Option<String> {
    match exit {
        VmmExit::Panic => Some(last_panic_line(log).unwrap_or_else(|| {
            "vireo-vmm stopped on an internal error (a thread panicked); its log has no details"
                .into()
        })),
        VmmExit::Killed(sig) if sig == libc::SIGSYS => Some(format!(
            "vireo-vmm was killed by signal {sig} (SIGSYS: a system call its seccomp filter \
             does not allow)"
        )),
        VmmExit::Killed(sig) => Some(format!("vireo-vmm was killed by signal {sig}")),
        _ => None,
    }
}

/// How far back from the end of the VMM log the panic line is looked for: the hook's line is
/// the helper's last; the supervisor adds a line or two after it.
const PANIC_LINE_WINDOW: u64 = 64 * 1024;

/// The last line of the VMM log written by its panic hook, from the hook's prefix on.
fn last_panic_line(log: &Path) -> Option<String> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(log).ok()?;
    let len = f.metadata().ok()?.len();
    f.seek(SeekFrom::Start(len.saturating_sub(PANIC_LINE_WINDOW)))
        .ok()?;
    let mut buf = Vec::new();
    f.take(PANIC_LINE_WINDOW).read_to_end(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf);
    let prefix = vireo_vmm_api::exit::PANIC_LINE_PREFIX;
    text.lines()
        .rev()
        .find_map(|l| l.find(prefix).map(|at| l[at..].trim_end().to_owned()))
}

/// A start that never got going: clients waiting for the start hear why it failed.
fn fail(args: &SuperviseArgs, run: &RunDir, dom: &Definition, msg: String) {
    emit(args, dom, EventKind::Stopped, "Failed", Some(msg.clone()));
    finish(
        args,
        run,
        dom,
        DomainState::Shutoff,
        Reason::Failed,
        Some(msg),
        false,
    );
}

fn finish(
    args: &SuperviseArgs,
    run: &RunDir,
    dom: &Definition,
    state: DomainState,
    reason: Reason,
    message: Option<String>,
    preserve: bool,
) {
    let transient = run.read_state().map(|r| r.transient).unwrap_or(false);
    if let Err(e) = record(run, |r| {
        r.state = state;
        r.reason = reason;
        r.message = message;
        r.supervisor_pid = None;
        if !preserve {
            r.vmm_pid = None;
            r.vmm_start = None;
        }
    }) {
        // Clients will find the record stale and report the machine ended; this says why.
        emit(args, dom, EventKind::Stopped, "Failed", Some(e.to_string()));
    }
    if !preserve {
        run.cleanup(transient);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn temp_run(tag: &str) -> RunDir {
        let dir = std::env::temp_dir().join(format!(
            "vireo-sup-{tag}-{}",
            vireo_domain::Uuid::new_v4().unwrap()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        RunDir::new(dir)
    }

    #[test]
    fn a_flooding_helper_leaves_vmm_log_capped_and_its_last_line_in_it() {
        let run = temp_run("flood");
        // A "helper" that prints more distinct lines than one log file holds, then ends.
        let fake = run.dir.join("fake-vmm");
        let lines = 2 * logcap::VMM_LOG.max_size / 7;
        std::fs::write(&fake, format!("#!/bin/sh\nseq 1 {lines} >&2\necho done\n")).unwrap();
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
        let args = SuperviseArgs {
            rundir: run.dir.clone(),
            events: run.dir.join("events.log"),
            vmm: fake,
            unpack_kernel: None,
            kernel_cache: None,
            config_dir: None,
        };
        let mut h = spawn_vmm(&args, &run).unwrap();
        assert!(h.child.wait().unwrap().success());
        h.drain();
        log(&run, "after the helper");
        let mut total = 0;
        for i in 0..=logcap::VMM_LOG.backups {
            let p = match i {
                0 => run.log(),
                i => logcap::backup_path(&run.log(), i),
            };
            let len = std::fs::metadata(&p).unwrap().len();
            assert!(len <= logcap::VMM_LOG.max_size, "{}: {len}", p.display());
            total += len;
        }
        assert!(total <= logcap::VMM_LOG.total());
        assert!(
            std::fs::metadata(logcap::backup_path(&run.log(), 1))
                .unwrap()
                .len()
                > 0
        );
        let tail = crate::process::tail(&run.log(), 3);
        assert!(
            tail.starts_with(&lines.to_string()) && tail.contains("\ndone\n[vireo-supervisor"),
            "{tail}"
        );
        let _ = std::fs::remove_dir_all(&run.dir);
    }

    #[test]
    fn a_failed_state_write_is_a_typed_error_with_a_log_line() {
        let run = temp_run("state");
        // state.json is a directory: the atomic rename onto it fails.
        std::fs::create_dir_all(run.state().join("x")).unwrap();
        let err = record(&run, |r| r.state = DomainState::Running).unwrap_err();
        let SuperviseError::State { path, .. } = &err;
        assert_eq!(path, &run.state());
        assert!(err
            .to_string()
            .starts_with("cannot record the machine's state in"));
        let logged = std::fs::read_to_string(run.log()).unwrap();
        assert!(logged.contains(&err.to_string()), "{logged}");
        let _ = std::fs::remove_dir_all(&run.dir);
    }

    #[test]
    fn the_panic_line_is_found_behind_later_lines_and_a_long_log() {
        let dir = std::env::temp_dir().join(format!("vireo-sup-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("vmm.log");
        let mut text = "vireo-vmm: vCPU 0: port write 0x99 hits no device\n".repeat(4000);
        text.push_str(
            "vireo-vmm: internal error: thread 'vcpu0' panicked at a.rs:1: old; the VM is stopped\n",
        );
        text.push_str(
            "vireo-vmm: internal error: thread 'virtio-blk' panicked at b.rs:2: boom; the VM is \
             stopped\n[vireo-supervisor 1] vireo-vmm ended: exit status: 4\n",
        );
        std::fs::write(&log, text).unwrap();
        assert_eq!(
            helper_fault(VmmExit::Panic, &log).as_deref(),
            Some(
                "vireo-vmm: internal error: thread 'virtio-blk' panicked at b.rs:2: boom; the VM \
                 is stopped"
            )
        );
        std::fs::write(&log, "nothing useful\n").unwrap();
        assert!(helper_fault(VmmExit::Panic, &log)
            .unwrap()
            .contains("internal error"));
        assert!(helper_fault(VmmExit::Killed(libc::SIGSYS), &log)
            .unwrap()
            .contains("seccomp"));
        assert_eq!(helper_fault(VmmExit::Crash, &log), None);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
