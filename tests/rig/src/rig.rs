//! L1: Debian's kernel under QEMU TCG with AMD SVM + nested paging, a busybox userland that
//! loads kvm_amd, the host's read-only directories shared in with 9p, and a command channel on
//! the second serial port.
//!
//! Inside L1, commands run as root in a tmpfs root (switched to, not a chroot: user namespaces
//! work, so passt and `unshare -U` do) whose `/usr` and `/etc` are the host's (so `qemu`, its
//! libraries and firmware, `sh`, coreutils are all there without copying) and whose shared
//! directories (workspace, cargo target dir, rig cache, anything in [`RigConfig::shares`]) sit
//! at the same absolute paths as on the host. A binary built on the host therefore runs in L1
//! by its host path. `/tmp`, `/run`, `/root` are writable and private to L1.

use crate::error::{Result, RigError};
use crate::initramfs::Initramfs;
use crate::modules::ModuleIndex;
use crate::{agent, debian, spawn, timing};
use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Modules L1 loads, dependencies are added automatically. KVM (kvm_amd needs ccp), then 9p
/// over virtio-pci for the shares.
pub const L1_MODULES: &[&str] = &[
    "irqbypass",
    "kvm",
    "ccp",
    "kvm_amd",
    "virtio_pci",
    "9pnet_virtio",
    "9p",
    // dummy0 gives user-mode network daemons (passt) the routable interface they insist on.
    "dummy",
];

const L1_INIT: &str = include_str!("l1_init.sh");
pub(crate) const L1_AGENT: &str = include_str!("l1_agent.sh");
/// Where the agent and its busybox live in L1 (they move with it into the command root).
const AGENT_DIR: &str = ".vireo";

/// How L1 is built and booted. [`RigConfig::from_env`] gives the defaults.
#[derive(Debug, Clone)]
pub struct RigConfig {
    /// The QEMU binary for L1; `None` is the rig's own build ([`crate::fixtures::l1_qemu`]:
    /// Debian's source with a fix that UEFI guests need).
    pub qemu: Option<PathBuf>,
    /// CPU model; must have SVM and NPT under TCG (EPYC, EPYC-Rome, max).
    pub cpu: String,
    pub memory_mib: u32,
    pub smp: u32,
    /// Host directories visible read-only at the same path inside L1 (besides /usr and /etc).
    pub shares: Vec<PathBuf>,
    /// From QEMU start to the agent's ready line.
    pub boot_timeout: Duration,
    /// Boots tried before giving up (a TCG boot hangs about once in 65).
    pub boot_attempts: u32,
    /// Print command output lines to stderr, timestamped, as they arrive.
    pub echo: bool,
    /// Print L1's console (kernel log) too; on failures its tail is in the error anyway.
    pub echo_console: bool,
    /// Extra `-accel tcg` options for L1 (`thread=single`: one host thread for both vCPUs,
    /// to tell MTTCG's races from the rest of the emulation's faults).
    pub tcg_options: Option<String>,
    /// Extra kernel command line for L1.
    pub cmdline_extra: String,
}

impl RigConfig {
    /// Defaults, adjusted by the environment:
    /// `VIREO_RIG_QEMU`, `VIREO_RIG_CPU`, `VIREO_RIG_SHARE` (colon-separated extra shares),
    /// `VIREO_RIG_BOOT_TIMEOUT` (seconds), `VIREO_RIG_TCG` (e.g. `thread=single`),
    /// `VIREO_RIG_QUIET=1` (no echo of command output),
    /// `VIREO_RIG_VERBOSE=1` (echo L1's console too).
    ///
    /// Default shares: the cargo target dir this binary lives in (or `CARGO_TARGET_DIR`), the
    /// workspace this crate was built from, and the rig cache.
    pub fn from_env() -> Result<Self> {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let mut shares = vec![debian::cache_dir()?];
        if let Some(t) = env("CARGO_TARGET_DIR") {
            shares.push(PathBuf::from(t));
        }
        if let Some(t) = current_target_dir() {
            shares.push(t);
        }
        let ws = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        if ws.join("Cargo.toml").is_file() {
            shares.push(ws);
        }
        if let Some(extra) = env("VIREO_RIG_SHARE") {
            shares.extend(
                extra
                    .split(':')
                    .filter(|s| !s.is_empty())
                    .map(PathBuf::from),
            );
        }
        let boot_timeout = match env("VIREO_RIG_BOOT_TIMEOUT") {
            Some(s) => Duration::from_secs(s.parse().map_err(|_| {
                RigError::Config(format!(
                    "VIREO_RIG_BOOT_TIMEOUT={s:?} is not a number of seconds"
                ))
            })?),
            None => Duration::from_secs(150),
        };
        Ok(RigConfig {
            qemu: env("VIREO_RIG_QEMU").map(PathBuf::from),
            cpu: env("VIREO_RIG_CPU").unwrap_or_else(|| "EPYC".into()),
            memory_mib: 2048,
            smp: 2,
            shares,
            boot_timeout,
            boot_attempts: 2,
            echo: env("VIREO_RIG_QUIET").is_none(),
            echo_console: env("VIREO_RIG_VERBOSE").is_some(),
            tcg_options: env("VIREO_RIG_TCG"),
            cmdline_extra: String::new(),
        })
    }
}

/// The cargo target dir holding the running executable (cargo tags it with CACHEDIR.TAG).
pub(crate) fn current_target_dir() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    exe.ancestors()
        .find(|d| d.join("CACHEDIR.TAG").is_file())
        .map(Path::to_owned)
}

/// One line of output, stamped with the time since the command (or boot) started.
#[derive(Debug, Clone)]
pub struct Line {
    pub at: Duration,
    pub text: String,
}

/// What a command run in L1 (or directly on the host) produced.
#[derive(Debug, Clone)]
pub struct CmdOutput {
    /// Exit status (128+N when killed by signal N).
    pub status: i32,
    /// stdout and stderr, interleaved as they arrived.
    pub lines: Vec<Line>,
    pub took: Duration,
}

impl CmdOutput {
    pub fn success(&self) -> bool {
        self.status == 0
    }
    /// All output as one string, a line per line.
    pub fn text(&self) -> String {
        self.lines.iter().map(|l| format!("{}\n", l.text)).collect()
    }
    /// The last `n` lines, for error messages.
    pub fn tail(&self, n: usize) -> String {
        tail_of(self.lines.iter().map(|l| l.text.as_str()), n)
    }
}

pub(crate) fn tail_of<'a>(lines: impl DoubleEndedIterator<Item = &'a str>, n: usize) -> String {
    let mut v: Vec<&str> = lines.rev().take(n).collect();
    v.reverse();
    v.iter().map(|l| format!("    {l}\n")).collect()
}

enum Ev {
    Console(Instant, String),
    ConsoleEof,
    Ctl(Instant, String),
    CtlEof,
}

/// A running L1.
pub struct Rig {
    child: Child,
    ctl: UnixStream,
    events: Receiver<Ev>,
    console: VecDeque<String>,
    stderr: std::sync::Arc<Mutex<String>>,
    dead: Option<String>,
    echo: bool,
    echo_console: bool,
    _run_dir: RunDir,
    /// How long L1 took from QEMU start to the ready line.
    pub boot_time: Duration,
    /// Boot attempts it took (2 means the first one hung or panicked).
    pub boot_attempts: u32,
    recoveries: u32,
    /// When L1's console heartbeat was last seen (none before the first).
    last_beat: Option<Instant>,
    heartbeat_lost: Duration,
}

/// Removes a directory when dropped.
pub(crate) struct RunDirGuard(pub(crate) PathBuf);
impl Drop for RunDirGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct RunDir(PathBuf);
impl Drop for RunDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

static SEQ: AtomicU64 = AtomicU64::new(0);

fn seq() -> u64 {
    SEQ.fetch_add(1, Ordering::Relaxed)
}

const CONSOLE_KEEP: usize = 300;

/// A transmission fault [`Rig::run_with_fault`] injects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    None,
    /// The first copy of the command arrives with a changed byte (the agent answers NAK).
    DamagedCopy,
    /// The first copy loses its END line (the agent waits for more until the resend).
    CutCopy,
    /// The agent's START line is lost (the host resends; the agent answers DUP after the run).
    LostStart,
    /// The agent's EXIT line is lost (the host asks for it after the timeout).
    LostExit,
}

/// How long a command may stay unacknowledged, resends included, before L1 counts as wedged
/// (generous: TCG on a busy machine).
const ACK_TIMEOUT: Duration = Duration::from_secs(60);
/// Copies of one command sent at most (the agent answered the others "damaged").
const MAX_SENDS: u32 = 5;
/// While a command runs, the host sends a keep-alive this often (and, once the command should
/// have ended, a query for its exit report).
const POKE_EVERY: Duration = Duration::from_secs(10);
/// L1 prints a heartbeat every 10 s; this long without one means L1 stopped (a frozen L1 was
/// seen after many L2 boots in one L1), not that a command is slow. 90 s was once too short on
/// a loaded CI host: two L1s in a row went silent that long during the ext4 disk test, which
/// then failed; a frozen L1 now costs a minute more to detect.
const HEARTBEAT_LOST: Duration = Duration::from_secs(150);
/// The agent kills a command at its timeout; its exit report is asked for this much later...
const EXIT_SLACK: Duration = Duration::from_secs(5);
/// ...and L1 is given up on this much later.
const EXIT_GRACE: Duration = Duration::from_secs(60);

/// How long to wait for the agent's START before sending a command again: the agent reads a
/// byte at a time (a 40 KB message took 0.6-3.9 s in L1 during a 20-run soak).
fn resend_window(msg_len: usize) -> Duration {
    Duration::from_secs(8) + Duration::from_millis(msg_len as u64 / 5)
}

impl Rig {
    /// Boots L1, retrying once when a boot hangs or panics. Errors name the failing step.
    pub fn boot(cfg: &RigConfig) -> Result<Rig> {
        let qemu = match &cfg.qemu {
            Some(q) => q.clone(),
            None => crate::fixtures::l1_qemu()?.binary,
        };
        check_qemu(&qemu)?;
        let kernel = debian::kernel()?;
        let busybox = debian::busybox()?;
        let cache = debian::cache_dir()?;
        let l1_dir = cache.join("l1").join(&kernel.release);
        // Keyed by the init script, the module list and the builder's format, so an edited rig
        // never boots a stale image.
        let key = {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            (
                L1_INIT,
                L1_AGENT,
                L1_MODULES,
                &busybox,
                vireo_driver::initramfs::FORMAT,
            )
                .hash(&mut h);
            h.finish()
        };
        let base = l1_dir.join(format!("base-{key:016x}.cpio"));
        if !base.is_file() {
            let index = ModuleIndex::new(
                &kernel.modules_dir,
                &cache.join("modules").join(&kernel.release),
            )?;
            let mods = index.resolve(L1_MODULES)?;
            let mut img = Initramfs::new();
            img.skeleton();
            img.busybox(&busybox)?;
            img.modules(&mods);
            img.init(L1_INIT);
            img.busybox_in(&busybox, AGENT_DIR)?;
            img.file(&format!("{AGENT_DIR}/agent.sh"), 0o755, L1_AGENT);
            img.write(&base)?;
        }
        let mut last_err = None;
        for attempt in 1..=cfg.boot_attempts.max(1) {
            match Self::boot_once(cfg, &qemu, &kernel.vmlinuz, &base) {
                Ok(mut rig) => {
                    rig.boot_attempts = attempt;
                    timing::record(format!("L1 boot (attempt {attempt})"), rig.boot_time);
                    return Ok(rig);
                }
                Err(e @ (RigError::L1BootTimeout { .. } | RigError::L1Panic { .. })) => {
                    eprintln!("vireo-rig: L1 boot attempt {attempt} failed: {e}");
                    last_err = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(last_err.unwrap_or_else(|| RigError::Broken("no boot attempted".into())))
    }

    fn boot_once(cfg: &RigConfig, qemu: &Path, vmlinuz: &Path, base: &Path) -> Result<Rig> {
        let run_dir =
            std::env::temp_dir().join(format!("vireo-rig-{}-{}", std::process::id(), seq()));
        let _ = std::fs::remove_dir_all(&run_dir);
        std::fs::create_dir_all(&run_dir)
            .map_err(|e| RigError::io("creating run dir", &run_dir, e))?;
        let run_dir = RunDir(run_dir);
        let shares = effective_shares(&cfg.shares)?;
        let rig_cache = debian::cache_dir()?
            .canonicalize()
            .map_err(|e| RigError::io("resolving the rig cache", "vireo-rig cache", e))?;

        // The per-boot archive: which 9p tag goes where, and the merged-/usr links.
        let mut extra = Initramfs::new();
        let mut share_list = String::new();
        let mut cmd = Command::new(qemu);
        for (i, dir) in shares.iter().enumerate() {
            let tag = format!("vr{i}");
            // The system dirs do not change under a run, and the rig cache only gains new
            // files (content-keyed names, fresh run dirs): let L1 cache them (QEMU, its
            // libraries, kernels load once). Build output does change: always ask the host.
            let cache = if dir == Path::new("/usr") || dir == Path::new("/etc") || dir == &rig_cache
            {
                "loose"
            } else {
                "none"
            };
            share_list.push_str(&format!("{tag} {cache} {}\n", dir.display()));
            cmd.arg("-virtfs").arg(format!(
                "local,path={},mount_tag={tag},security_model=none,readonly=on,multidevs=remap",
                dir.display()
            ));
        }
        let mut links = String::new();
        for top in ["bin", "sbin", "lib", "lib32", "lib64", "libx32"] {
            if let Ok(target) = std::fs::read_link(Path::new("/").join(top)) {
                links.push_str(&format!("{top} {}\n", target.display()));
            }
        }
        extra.file("etc/vireo/shares", 0o644, share_list);
        extra.file("etc/vireo/links", 0o644, links);
        let per_boot = run_dir.0.join("boot.cpio");
        extra.write(&per_boot)?;
        let initrd = run_dir.0.join("initrd.cpio");
        crate::initramfs::concat(&[base, &per_boot], &initrd)?;

        let sock = run_dir.0.join("ctl.sock");
        let accel = match &cfg.tcg_options {
            Some(o) => format!("tcg,{o}"),
            None => "tcg".to_owned(),
        };
        cmd.args(["-accel", &accel, "-cpu", &cfg.cpu])
            .args([
                "-m",
                &cfg.memory_mib.to_string(),
                "-smp",
                &cfg.smp.to_string(),
            ])
            .args(["-nodefaults", "-display", "none", "-no-reboot"])
            .arg("-kernel")
            .arg(vmlinuz)
            .arg("-initrd")
            .arg(&initrd)
            .arg("-append")
            .arg(format!(
                "console=ttyS0 panic=-1 mitigations=off {}",
                cfg.cmdline_extra
            ))
            .args([
                "-chardev",
                "stdio,id=con,signal=off",
                "-serial",
                "chardev:con",
            ])
            .arg("-chardev")
            .arg(format!(
                "socket,id=ctl,path={},server=on,wait=on",
                sock.display()
            ))
            .args(["-serial", "chardev:ctl"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let start = Instant::now();
        let mut child = spawn::spawn_tied(cmd).map_err(|source| RigError::MissingTool {
            program: qemu.display().to_string(),
            package: "qemu-system-x86",
            why: "booting L1",
            source,
        })?;
        let (tx, events) = mpsc::channel();
        let stderr = std::sync::Arc::new(Mutex::new(String::new()));
        if let Some(out) = child.stdout.take() {
            reader(out, tx.clone(), Ev::Console, Ev::ConsoleEof);
        }
        if let Some(mut err) = child.stderr.take() {
            let keep = stderr.clone();
            std::thread::spawn(move || {
                let mut s = String::new();
                let _ = err.read_to_string(&mut s);
                keep.lock().unwrap_or_else(|p| p.into_inner()).push_str(&s);
            });
        }
        // QEMU waits for us on the control socket before it starts the guest.
        let ctl = loop {
            match UnixStream::connect(&sock) {
                Ok(s) => break s,
                Err(e) => {
                    if let Ok(Some(status)) = child.try_wait() {
                        std::thread::sleep(Duration::from_millis(100));
                        return Err(RigError::L1Exited {
                            status: status.to_string(),
                            stderr: stderr
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .trim()
                                .to_owned(),
                            tail: String::new(),
                        });
                    }
                    if start.elapsed() > Duration::from_secs(30) {
                        let _ = child.kill();
                        return Err(RigError::io(
                            "connecting to QEMU's control socket",
                            &sock,
                            e,
                        ));
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        };
        let read_half = ctl
            .try_clone()
            .map_err(|e| RigError::io("cloning control socket", &sock, e))?;
        reader(read_half, tx, Ev::Ctl, Ev::CtlEof);

        let mut rig = Rig {
            child,
            ctl,
            events,
            console: VecDeque::new(),
            stderr,
            dead: None,
            echo: cfg.echo,
            echo_console: cfg.echo_console,
            _run_dir: run_dir,
            boot_time: Duration::ZERO,
            boot_attempts: 1,
            recoveries: 0,
            last_beat: None,
            heartbeat_lost: HEARTBEAT_LOST,
        };
        let deadline = start + cfg.boot_timeout;
        let mut stage = String::from("QEMU started, no console output yet");
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rig.events.recv_timeout(left) {
                Ok(Ev::Console(t, line)) => {
                    rig.note_console(start, t, &line);
                    if let Some(rest) = line
                        .strip_prefix("VIREO-L1 ")
                        .filter(|r| !r.starts_with("heartbeat "))
                    {
                        stage = rest.to_owned();
                        if let Some(d) = rest
                            .strip_prefix("fatal=no-kvm detail=")
                            .or_else(|| rest.strip_prefix("fatal=no-npt detail="))
                        {
                            let tail = rig.console_tail(40);
                            rig.kill("kvm_amd did not give /dev/kvm with nested paging");
                            return Err(RigError::L1NoKvm {
                                detail: d.to_owned(),
                                tail,
                            });
                        }
                        if rest.starts_with("fatal=") {
                            let tail = rig.console_tail(40);
                            rig.kill("L1 init failed");
                            return Err(RigError::Broken(format!("L1 init: {rest}\n{tail}")));
                        }
                    } else if !line.trim().is_empty() {
                        stage = format!("console: {}", line.trim());
                    }
                    if line.contains("Kernel panic") {
                        rig.drain_console(Duration::from_millis(500), start);
                        let tail = rig.console_tail(40);
                        rig.kill("L1 kernel panic");
                        return Err(RigError::L1Panic { line, tail });
                    }
                }
                Ok(Ev::Ctl(t, line)) => {
                    if rig.echo_console {
                        eprintln!(
                            "[{:8.3}] L1 ctl | {line}",
                            t.duration_since(start).as_secs_f64()
                        );
                    }
                    if line.contains("VIREO-L1-READY") {
                        rig.boot_time = t.duration_since(start);
                        return Ok(rig);
                    }
                }
                Ok(Ev::ConsoleEof) | Ok(Ev::CtlEof) => {
                    std::thread::sleep(Duration::from_millis(200));
                    let status = match rig.child.try_wait() {
                        Ok(Some(s)) => s.to_string(),
                        _ => "still running, output closed".into(),
                    };
                    let tail = rig.console_tail(40);
                    let stderr = rig.stderr_text();
                    rig.kill("QEMU closed its output");
                    return Err(RigError::L1Exited {
                        status,
                        stderr,
                        tail,
                    });
                }
                Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => {
                    let tail = rig.console_tail(40);
                    rig.kill("boot timeout");
                    return Err(RigError::L1BootTimeout {
                        timeout: cfg.boot_timeout,
                        stage,
                        tail,
                    });
                }
            }
        }
    }

    fn note_console(&mut self, start: Instant, t: Instant, line: &str) {
        if let Some(beat) = line.find("VIREO-L1 heartbeat ") {
            self.last_beat = Some(t);
            // Kept out of the console tail unless something is stuck in D state.
            if line[beat..].ends_with("dstate=0") && !self.echo_console {
                return;
            }
        }
        if self.echo_console {
            eprintln!(
                "[{:8.3}] L1 con | {line}",
                t.duration_since(start).as_secs_f64()
            );
        }
        self.console.push_back(line.to_owned());
        while self.console.len() > CONSOLE_KEEP {
            self.console.pop_front();
        }
    }

    fn drain_console(&mut self, wait: Duration, start: Instant) {
        let until = Instant::now() + wait;
        while let Ok(ev) = self
            .events
            .recv_timeout(until.saturating_duration_since(Instant::now()))
        {
            if let Ev::Console(t, l) = ev {
                self.note_console(start, t, &l);
            }
        }
    }

    /// The last `n` lines L1 printed on its console.
    pub fn console_tail(&self, n: usize) -> String {
        tail_of(self.console.iter().map(String::as_str), n)
    }

    fn stderr_text(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .trim()
            .to_owned()
    }

    fn kill(&mut self, why: &str) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.dead = Some(why.to_owned());
    }

    /// How often the agent protocol had to recover in this L1 (resends, exit queries).
    pub fn recoveries(&self) -> u32 {
        self.recoveries
    }

    /// Whether this L1 can still run commands (false after a panic, an unresponsive agent...).
    pub fn is_alive(&self) -> bool {
        self.dead.is_none()
    }

    /// The process id of L1's QEMU.
    pub fn qemu_pid(&self) -> u32 {
        self.child.id()
    }

    /// How long L1's console may stay without a heartbeat during a command before L1 counts as
    /// stopped (default 150 s; the heartbeat comes every 10 s).
    pub fn set_heartbeat_limit(&mut self, limit: Duration) {
        self.heartbeat_lost = limit;
    }

    /// Runs `script` (POSIX sh text) inside L1 and waits for it, at most `timeout` (then it is
    /// killed with everything it started, and `CommandTimeout` is returned).
    pub fn run(&mut self, script: &str, timeout: Duration) -> Result<CmdOutput> {
        self.run_with_fault(script, timeout, Fault::None)
    }

    /// [`Rig::run`] with one transmission fault injected, to prove the recovery paths against
    /// the real agent (the rig's own tests use it).
    pub fn run_with_fault(
        &mut self,
        script: &str,
        timeout: Duration,
        fault: Fault,
    ) -> Result<CmdOutput> {
        if let Some(why) = &self.dead {
            return Err(RigError::Broken(format!("L1 is down ({why})")));
        }
        let secs = timeout.as_secs().max(1);
        let id = format!("{}x{}", std::process::id(), seq());
        let msg = agent::frame(&id, secs, script);
        let start = Instant::now();
        let first = match fault {
            Fault::DamagedCopy => msg.replacen("\n|", "\n|#", 1),
            Fault::CutCopy => msg[..msg.rfind("VIREO-RIG-END").unwrap_or(msg.len())].to_owned(),
            _ => msg.clone(),
        };
        self.send(first.as_bytes())?;
        let mut lose_start = fault == Fault::LostStart;
        let mut lose_exit = fault == Fault::LostExit;
        let mut sends = 1u32;
        let mut last_send = start;
        let resend_after = resend_window(msg.len());
        // Set once the agent said START: from then on the command runs.
        let mut acked_at: Option<Instant> = None;
        let mut last_poke = start;
        let mut lines = Vec::new();
        loop {
            let now = Instant::now();
            // What to do when nothing arrives: resend an unacknowledged command; poke a running
            // one (any input also gets a stalled UART transmitter going again); ask how it
            // ended once it should have; give up on L1 after the grace period.
            let wake = match acked_at {
                None => {
                    if now >= start + ACK_TIMEOUT {
                        let tail = self.console_tail(20);
                        self.kill("agent did not acknowledge a command");
                        return Err(RigError::L1Unresponsive {
                            waited: ACK_TIMEOUT,
                            tail,
                        });
                    }
                    if now >= last_send + resend_after {
                        sends += 1;
                        eprintln!(
                            "vireo-rig: agent recovery: command {id} not acknowledged after {:.1} s; sending it again (copy {sends})",
                            now.duration_since(last_send).as_secs_f64()
                        );
                        self.recoveries += 1;
                        timing::record(
                            "agent recovery: resend (no acknowledgement)",
                            now.duration_since(last_send),
                        );
                        self.send(msg.as_bytes())?;
                        last_send = now;
                    }
                    (last_send + resend_after).min(start + ACK_TIMEOUT)
                }
                Some(acked) => {
                    if let Some(beat) = self.last_beat {
                        let silent = now.saturating_duration_since(beat);
                        if silent >= self.heartbeat_lost {
                            let tail = self.console_tail(30);
                            self.kill("L1 heartbeat lost");
                            return Err(RigError::L1Silent { silent, tail });
                        }
                    }
                    let due = acked + timeout + EXIT_SLACK;
                    let give_up = acked + timeout + EXIT_GRACE;
                    if now >= give_up {
                        let tail = tail_of(lines.iter().map(|l: &Line| l.text.as_str()), 30);
                        self.kill("L1 agent unresponsive");
                        return Err(RigError::CommandTimeout {
                            place: format!(
                                "L1 agent (no exit report {EXIT_GRACE:?} after the command's own timeout; L1 killed; console:\n{})",
                                self.console_tail(20)
                            ),
                            timeout,
                            tail,
                        });
                    }
                    if now >= last_poke + POKE_EVERY {
                        let poke: &[u8] = if now >= due {
                            eprintln!(
                                "vireo-rig: agent recovery: no exit report for {id} {:.0} s after its timeout; asking",
                                now.duration_since(acked + timeout).as_secs_f64()
                            );
                            self.recoveries += 1;
                            timing::record("agent recovery: exit query", Duration::ZERO);
                            &agent::query(&id).into_bytes()
                        } else {
                            b"\n"
                        };
                        self.send(poke)?;
                        last_poke = now;
                    }
                    (last_poke + POKE_EVERY).min(give_up)
                }
            };
            let left = wake.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(Ev::Ctl(t, line)) => {
                    let at = t.duration_since(start);
                    let Some(found) = agent::parse(&line) else {
                        if agent::is_control(&line) {
                            self.note_ctl(start, t, &line);
                        } else {
                            self.push_line(&mut lines, at, &line);
                        }
                        continue;
                    };
                    if !found.before.is_empty() {
                        self.push_line(&mut lines, at, &found.before);
                    }
                    if found.id != id {
                        // About an earlier command (a late answer to a resend): not ours.
                        self.note_ctl(start, t, &line);
                        continue;
                    }
                    match found.reply {
                        agent::Reply::Start if lose_start => lose_start = false,
                        agent::Reply::Exit {
                            repeated: false, ..
                        } if lose_exit => lose_exit = false,
                        agent::Reply::Start => {
                            if acked_at.is_none() {
                                acked_at = Some(t);
                                last_poke = t;
                            }
                        }
                        // Cut short by our own resend: that copy is on its way already.
                        agent::Reply::Nak(why) if why.starts_with("interrupted") && sends > 1 => {
                            self.note_ctl(start, t, &line)
                        }
                        agent::Reply::Nak(why) if acked_at.is_none() => {
                            if sends >= MAX_SENDS {
                                let tail = format!(
                                    "(command {id} arrived damaged {sends} times, last: {why})\n{}",
                                    self.console_tail(20)
                                );
                                self.kill("agent kept receiving damaged commands");
                                return Err(RigError::L1Unresponsive {
                                    waited: start.elapsed(),
                                    tail,
                                });
                            }
                            sends += 1;
                            eprintln!(
                                "vireo-rig: agent recovery: command {id} arrived damaged ({why}); sending it again (copy {sends})"
                            );
                            self.recoveries += 1;
                            timing::record(
                                "agent recovery: resend (damaged)",
                                t.duration_since(last_send),
                            );
                            self.send(msg.as_bytes())?;
                            last_send = Instant::now();
                        }
                        agent::Reply::Nak(_) | agent::Reply::Unknown => {
                            self.note_ctl(start, t, &line)
                        }
                        agent::Reply::Exit {
                            rc,
                            timed_out,
                            repeated,
                        } => {
                            if repeated {
                                eprintln!(
                                    "vireo-rig: agent recovery: exit report for {id} recovered (rc {rc})"
                                );
                                timing::record(
                                    "agent recovery: exit report recovered",
                                    Duration::ZERO,
                                );
                            }
                            let took = start.elapsed();
                            timing::record("L1 command", took);
                            let out = CmdOutput {
                                status: rc,
                                lines,
                                took,
                            };
                            if timed_out {
                                return Err(RigError::CommandTimeout {
                                    place: "L1 (command killed, L1 still usable)".into(),
                                    timeout,
                                    tail: out.tail(30),
                                });
                            }
                            return Ok(out);
                        }
                    }
                }
                Ok(Ev::Console(t, line)) => {
                    self.note_console(start, t, &line);
                    if line.contains("Kernel panic") {
                        self.drain_console(Duration::from_millis(500), start);
                        let tail = self.console_tail(40);
                        self.kill("L1 kernel panic");
                        return Err(RigError::L1Panic { line, tail });
                    }
                }
                Ok(Ev::ConsoleEof) | Ok(Ev::CtlEof) => {
                    std::thread::sleep(Duration::from_millis(200));
                    let status = match self.child.try_wait() {
                        Ok(Some(s)) => s.to_string(),
                        _ => "output closed".into(),
                    };
                    let tail = self.console_tail(40);
                    let stderr = self.stderr_text();
                    self.kill("QEMU exited during a command");
                    return Err(RigError::L1Exited {
                        status,
                        stderr,
                        tail,
                    });
                }
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => {
                    self.kill("L1 output readers gone");
                    return Err(RigError::Broken("L1's output readers stopped".into()));
                }
            }
        }
    }

    fn send(&mut self, bytes: &[u8]) -> Result<()> {
        if let Err(e) = self.ctl.write_all(bytes).and_then(|_| self.ctl.flush()) {
            self.kill("control socket write failed");
            return Err(RigError::Broken(format!(
                "writing to L1's control channel: {e}"
            )));
        }
        Ok(())
    }

    /// Protocol chatter: shown only with `VIREO_RIG_VERBOSE`, kept in the console tail.
    fn note_ctl(&mut self, start: Instant, t: Instant, line: &str) {
        self.note_console(start, t, &format!("(ctl) {line}"));
    }

    fn push_line(&self, lines: &mut Vec<Line>, at: Duration, text: &str) {
        if self.echo {
            eprintln!("[{:8.3}] L1 out | {text}", at.as_secs_f64());
        }
        lines.push(Line {
            at,
            text: text.to_owned(),
        });
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn reader<R: Read + Send + 'static>(
    src: R,
    tx: Sender<Ev>,
    line_ev: fn(Instant, String) -> Ev,
    eof: Ev,
) {
    std::thread::spawn(move || {
        let mut r = BufReader::new(src);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match r.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let text = String::from_utf8_lossy(&buf);
                    let text = text.trim_end_matches(['\n', '\r']).replace('\r', "");
                    if tx.send(line_ev(Instant::now(), text)).is_err() {
                        return;
                    }
                }
            }
        }
        let _ = tx.send(eof);
    });
}

fn check_qemu(qemu: &Path) -> Result<()> {
    debian::run_tool(
        Command::new(qemu).arg("--version"),
        "qemu-system-x86",
        "booting L1 (the emulated machine that has KVM)",
    )
    .map(|_| ())
}

/// Canonical, existing, de-duplicated shares; /usr and /etc always come first, and a share
/// inside another one is dropped (it is visible already).
fn effective_shares(extra: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut all: Vec<PathBuf> = vec!["/usr".into(), "/etc".into()];
    for p in extra {
        let c = p
            .canonicalize()
            .map_err(|e| RigError::io("resolving a directory to share into L1", p, e))?;
        if c == Path::new("/") {
            return Err(RigError::Config("refusing to share / into L1".into()));
        }
        all.push(c);
    }
    for top in ["bin", "sbin", "lib", "lib64"] {
        let p = Path::new("/").join(top);
        if p.is_dir() && std::fs::read_link(&p).is_err() {
            all.push(p);
        }
    }
    all.sort();
    all.dedup();
    let mut out: Vec<PathBuf> = Vec::new();
    for p in all {
        if !out.iter().any(|o| p.starts_with(o)) {
            out.push(p);
        }
    }
    Ok(out)
}

static SHARED: OnceLock<Mutex<SharedState>> = OnceLock::new();

#[derive(Default)]
struct SharedState {
    rig: Option<Rig>,
    boots: u32,
    failed: Option<String>,
}

/// Runs `f` with the process-wide L1, booting it first if needed (once per process; again only
/// if a previous L1 died). Calls are serialised: one command at a time in L1.
pub fn with_shared<T>(f: impl FnOnce(&mut Rig) -> Result<T>) -> Result<T> {
    with_l1(false, f)
}

/// [`with_shared`] on a fresh L1: the one in use, healthy or not, is shut down first.
fn with_l1<T>(fresh: bool, f: impl FnOnce(&mut Rig) -> Result<T>) -> Result<T> {
    let mut st = SHARED
        .get_or_init(|| Mutex::new(SharedState::default()))
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if let Some(why) = &st.failed {
        return Err(RigError::Broken(format!(
            "L1 failed to boot earlier in this process: {why}"
        )));
    }
    if fresh && st.rig.take().is_some() {
        // A retired healthy L1 is no death: the next one gets the whole budget again.
        st.boots = 0;
    }
    if st.rig.as_ref().is_none_or(|r| !r.is_alive()) {
        if st.boots >= 3 {
            return Err(RigError::Broken(
                "L1 died three times in this process; giving up".into(),
            ));
        }
        st.boots += 1;
        timing::print_summary_at_exit();
        let cfg = RigConfig::from_env()?;
        match Rig::boot(&cfg) {
            Ok(r) => st.rig = Some(r),
            Err(e) => {
                st.failed = Some(e.to_string());
                return Err(e);
            }
        }
    }
    match st.rig.as_mut() {
        Some(rig) => f(rig),
        None => Err(RigError::Broken("no L1".into())),
    }
}

/// Runs `script` in the shared L1 ([`with_shared`]). When L1 itself fails during the command
/// (agent silent, no heartbeat, kernel panic, QEMU gone), boots a fresh L1 and tries once more;
/// the error of the second try is returned if that fails too. Command timeouts are not retried.
pub fn run_shared(script: &str, timeout: Duration) -> Result<CmdOutput> {
    run_retrying(false, script, timeout)
}

/// [`run_shared`] on a fresh L1 (the one in use is shut down first; the fresh one then stays
/// shared). For long scripts that start many L2 machines: a nested L1 that has run many of them
/// was seen to panic (a corrupted kernel stack) or freeze, so such scripts each get their own.
pub fn run_fresh(script: &str, timeout: Duration) -> Result<CmdOutput> {
    run_retrying(true, script, timeout)
}

fn run_retrying(fresh: bool, script: &str, timeout: Duration) -> Result<CmdOutput> {
    match with_l1(fresh, |r| r.run(script, timeout)) {
        Err(
            e @ (RigError::L1Unresponsive { .. }
            | RigError::L1Silent { .. }
            | RigError::L1Panic { .. }
            | RigError::L1Exited { .. }),
        ) => {
            crate::reruns::note_l1("the command, on a fresh L1", &format!("L1 failed: {e}"));
            timing::record("L1 failure, command retried", Duration::ZERO);
            with_l1(fresh, |r| r.run(script, timeout))
        }
        // A command that outlived its timeout in a healthy L1 has failed. One whose agent never
        // reported back, so that L1 had to be killed, says nothing about the command: L1 itself
        // stalled (seen under heavy host load as a kernel lockup in L1). Retry that once.
        Err(e @ RigError::CommandTimeout { .. }) if !shared_l1_alive() => {
            crate::reruns::note_l1("the command, on a fresh L1", &format!("L1 stalled: {e}"));
            timing::record("L1 stall, command retried", Duration::ZERO);
            with_l1(fresh, |r| r.run(script, timeout))
        }
        other => other,
    }
}

/// Whether the process-wide L1 is still running.
fn shared_l1_alive() -> bool {
    SHARED.get().is_some_and(|m| {
        let st = m.lock().unwrap_or_else(|p| p.into_inner());
        st.rig.as_ref().is_some_and(|r| r.is_alive())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_are_deduplicated_and_nested_ones_dropped() {
        let tmp = std::env::temp_dir();
        let sub = tmp.join(format!("vireo-rig-share-test-{}", std::process::id()));
        std::fs::create_dir_all(&sub).unwrap();
        let s = effective_shares(&[sub.clone(), tmp.clone(), "/usr/share".into()]).unwrap();
        let tmp_c = tmp.canonicalize().unwrap();
        assert!(s.contains(&tmp_c));
        assert!(!s.iter().any(|p| p.starts_with(&tmp_c) && p != &tmp_c));
        assert!(!s.contains(&PathBuf::from("/usr/share")));
        assert!(effective_shares(&["/".into()]).is_err());
        std::fs::remove_dir_all(&sub).unwrap();
    }

    #[test]
    fn tail_keeps_last_lines_in_order() {
        let t = tail_of(["a", "b", "c"].into_iter(), 2);
        assert_eq!(t, "    b\n    c\n");
    }
}
