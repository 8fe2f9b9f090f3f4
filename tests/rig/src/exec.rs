//! Running shell text where a real KVM is: on this host when it has hardware KVM, inside the
//! shared L1 otherwise.

use crate::error::{Result, RigError};
use crate::kvm::{self, Mode};
use crate::l2::{GuestImage, Launcher, Scenario, ScenarioReport};
use crate::rig::{self, CmdOutput, Line};
use crate::timing;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Runs `script` (POSIX sh) with a real KVM: directly on hardware KVM, in the shared L1
/// otherwise ([`kvm::mode`]). Output is streamed to stderr with timestamps unless
/// `VIREO_RIG_QUIET=1`.
pub fn run_command(script: &str, timeout: Duration) -> Result<CmdOutput> {
    match kvm::mode() {
        Mode::Direct => run_direct(script, timeout),
        Mode::Nested => rig::run_shared(script, timeout),
    }
}

/// [`run_command`], in a fresh L1 when nested ([`rig::run_fresh`]): for scripts that start many
/// L2 machines.
pub fn run_command_fresh(script: &str, timeout: Duration) -> Result<CmdOutput> {
    match kvm::mode() {
        Mode::Direct => run_direct(script, timeout),
        Mode::Nested => rig::run_fresh(script, timeout),
    }
}

/// [`run_command_fresh`], and once more on another fresh L1 when `lost` finds, in the output,
/// an L2 boot that the nested rig lost: a triple fault or hang the script did not cause (QEMU's
/// TCG emulation of SVM loses about one L2 boot in 65; see the README, "L2 triple faults").
/// `lost` returns the lines that show it; they are printed with the first run's telling lines.
/// What the second run gives stands.
pub fn run_command_fresh_again_if_lost(
    script: &str,
    timeout: Duration,
    lost: impl Fn(&CmdOutput) -> Vec<String>,
) -> Result<CmdOutput> {
    let out = run_command_fresh(script, timeout)?;
    let seen = lost(&out);
    if seen.is_empty() {
        return Ok(out);
    }
    eprintln!(
        "vireo-rig: the first run's telling lines:\n{}",
        crate::report::digest_for_test(&out.text())
    );
    crate::reruns::note(
        "the script, on a fresh L1",
        &format!("the nested rig lost an L2 boot: {}", seen.join("; ")),
    );
    timing::record("L2 boot lost, script rerun", Duration::ZERO);
    run_command_fresh(script, timeout)
}

/// Runs `script` on this host with `sh`, in its own process group, killed at `timeout`.
pub fn run_direct(script: &str, timeout: Duration) -> Result<CmdOutput> {
    let echo = std::env::var_os("VIREO_RIG_QUIET").is_none();
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(format!("exec 2>&1\n{script}"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .process_group(0);
    let start = Instant::now();
    let mut child = cmd.spawn().map_err(|source| RigError::MissingTool {
        program: "sh".into(),
        package: "dash",
        why: "running a test command",
        source,
    })?;
    let (tx, rx) = mpsc::channel();
    if let Some(out) = child.stdout.take() {
        std::thread::spawn(move || {
            let mut r = BufReader::new(out);
            let mut buf = Vec::new();
            while matches!(r.read_until(b'\n', &mut buf), Ok(n) if n > 0) {
                let t = String::from_utf8_lossy(&buf)
                    .trim_end_matches(['\n', '\r'])
                    .to_owned();
                buf.clear();
                if tx.send((Instant::now(), t)).is_err() {
                    break;
                }
            }
        });
    }
    let mut lines = Vec::new();
    let deadline = start + timeout;
    loop {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok((t, text)) => {
                let at = t.duration_since(start);
                if echo {
                    eprintln!("[{:8.3}] host | {text}", at.as_secs_f64());
                }
                lines.push(Line { at, text });
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                // SAFETY: kill(2) on the process group we created; no memory is touched.
                unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
                let _ = child.wait();
                return Err(RigError::CommandTimeout {
                    place: "host (direct mode)".into(),
                    timeout,
                    tail: rig::tail_of(lines.iter().map(|l: &Line| l.text.as_str()), 30),
                });
            }
        }
    }
    let status = child
        .wait()
        .map_err(|e| RigError::io("waiting for command", "sh", e))?;
    let status = status.code().unwrap_or_else(|| {
        128 + std::os::unix::process::ExitStatusExt::signal(&status).unwrap_or(0)
    });
    let took = start.elapsed();
    timing::record("host command", took);
    Ok(CmdOutput {
        status,
        lines,
        took,
    })
}

/// Boots the stock Debian kernel with `scenario` under `launcher`, wherever KVM is (see
/// [`run_command`]). Returns the report whether the scenario passed or not; call
/// [`ScenarioReport::check`] to turn a failure into an error. Errors are infrastructure
/// failures (no QEMU, L1 did not boot, ...), never silently skipped.
pub fn run_scenario(scenario: &Scenario, launcher: &Launcher) -> Result<ScenarioReport> {
    let image = GuestImage::stock()?;
    let report =
        crate::l2::run_scenario_with(&image, scenario, launcher, &mut |s, t| run_command(s, t))?;
    eprintln!("vireo-rig: {}", report.timing_line());
    Ok(report)
}
