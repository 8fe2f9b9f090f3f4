//! The test guest for L2: Debian's stock kernel plus an initramfs with busybox, the virtio
//! modules and an init that runs a scenario script and reports on the serial console:
//!
//! ```text
//! VIREO-L2-INIT uptime=1.23            init started (L2 boot finished)
//! VIREO-RESULT name=NAME status=pass|fail detail=free text
//! VIREO-DONE rc=N uptime=4.56          the scenario script's exit status
//! ```
//!
//! Scenario scripts are POSIX sh run by busybox, with helper functions from `l2_lib.sh`:
//! `vireo_result NAME pass|fail DETAIL`, `vireo_check NAME CMD...`, `vireo_wait_for PATH SECS`.

use crate::error::{Result, RigError};
use crate::initramfs::Initramfs;
use crate::modules::ModuleIndex;
use crate::rig::{CmdOutput, Line};
use crate::{debian, timing};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Modules the guest loads (dependencies added automatically), in this order.
pub const L2_MODULES: &[&str] = &[
    "virtio",
    "virtio_ring",
    "virtio_mmio",
    "virtio_pci",
    "virtio_blk",
    "failover",
    "net_failover",
    "virtio_net",
    "virtio_input",
    "evdev",
    "virtio_rng",
    "virtio_console",
];

const L2_INIT: &str = include_str!("l2_init.sh");
const L2_LIB: &str = include_str!("l2_lib.sh");

/// Default L2 kernel command line. `reboot=k` + `panic=-1`: a panic or `poweroff` ends the VM.
pub const DEFAULT_CMDLINE: &str = "console=ttyS0 reboot=k panic=-1 mitigations=off";

/// A bootable test guest: kernel + base initramfs (both on the host, cached).
#[derive(Debug, Clone)]
pub struct GuestImage {
    /// The bzImage.
    pub kernel: PathBuf,
    /// The same kernel as an uncompressed ELF vmlinux with a PVH note (skips the
    /// decompressor, which is slow in L2).
    pub vmlinux: PathBuf,
    pub base_initrd: PathBuf,
    pub release: String,
}

/// Which form of the kernel a scenario boots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelForm {
    /// The bzImage as Debian ships it (64-bit boot protocol).
    BzImage,
    /// The ELF vmlinux extracted from it (PVH entry).
    ElfVmlinux,
}

/// Extracts the ELF vmlinux from a bzImage: its payload is one xz stream.
pub fn extract_vmlinux(bzimage: &Path, out: &Path) -> Result<()> {
    let data = std::fs::read(bzimage).map_err(|e| RigError::io("reading bzImage", bzimage, e))?;
    let magic = [0xfd, b'7', b'z', b'X', b'Z', 0];
    let at = data
        .windows(magic.len())
        .position(|w| w == magic)
        .ok_or_else(|| RigError::Config(format!("{}: no xz payload found", bzimage.display())))?;
    let tmp = crate::scratch_name(out);
    let file =
        std::fs::File::create(&tmp).map_err(|e| RigError::io("creating vmlinux", &tmp, e))?;
    let mut child = std::process::Command::new("xz")
        .args(["-dc", "--single-stream"])
        .stdin(std::process::Stdio::piped())
        .stdout(file)
        .spawn()
        .map_err(|source| RigError::MissingTool {
            program: "xz".into(),
            package: "xz-utils",
            why: "extracting the ELF vmlinux",
            source,
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        use std::io::Write;
        // xz stops at the end of the stream; the bytes after it are the bzImage's trailer.
        let _ = stdin.write_all(&data[at..]);
    }
    let status = child
        .wait()
        .map_err(|e| RigError::io("waiting for xz", &tmp, e))?;
    let elf_ok = std::fs::read(&tmp)
        .map(|b| b.get(..4) == Some(&[0x7f, b'E', b'L', b'F'][..]))
        .unwrap_or(false);
    if !status.success() || !elf_ok {
        let _ = std::fs::remove_file(&tmp);
        return Err(RigError::ToolFailed {
            command: format!("xz -dc --single-stream (payload of {})", bzimage.display()),
            status: status.to_string(),
            stderr: if elf_ok {
                String::new()
            } else {
                "output is not an ELF file".into()
            },
        });
    }
    std::fs::rename(&tmp, out).map_err(|e| RigError::io("storing vmlinux", out, e))
}

impl GuestImage {
    /// The stock Debian kernel with the rig's busybox initramfs (built once, cached).
    pub fn stock() -> Result<GuestImage> {
        let kernel = debian::kernel()?;
        let busybox = debian::busybox()?;
        let cache = debian::cache_dir()?;
        let key = {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            (
                L2_INIT,
                L2_LIB,
                L2_MODULES,
                &busybox,
                vireo_driver::initramfs::FORMAT,
            )
                .hash(&mut h);
            h.finish()
        };
        let base = cache
            .join("l2")
            .join(&kernel.release)
            .join(format!("base-{key:016x}.cpio"));
        if !base.is_file() {
            let index = ModuleIndex::new(
                &kernel.modules_dir,
                &cache.join("modules").join(&kernel.release),
            )?;
            let mods = index.resolve(L2_MODULES)?;
            let mut img = Initramfs::new();
            img.skeleton();
            img.busybox(&busybox)?;
            img.modules(&mods);
            img.file("lib/vireo/lib.sh", 0o644, L2_LIB);
            img.init(L2_INIT);
            img.write(&base)?;
        }
        let vmlinux = cache.join("l2").join(&kernel.release).join("vmlinux");
        if !vmlinux.is_file() {
            extract_vmlinux(&kernel.vmlinuz, &vmlinux)?;
        }
        Ok(GuestImage {
            vmlinux,
            kernel: kernel.vmlinuz,
            base_initrd: base,
            release: kernel.release,
        })
    }
}

/// What L2 should do, and how long it may take.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// Short name (used in reports and file names).
    pub name: String,
    /// POSIX sh run by L2's init (busybox), with the `vireo_*` helpers defined.
    pub script: String,
    /// Results that must be reported as passing (besides "no result failed" and rc=0).
    pub expect: Vec<String>,
    pub memory_mib: u32,
    pub vcpus: u32,
    /// Appended to [`DEFAULT_CMDLINE`].
    pub cmdline_extra: String,
    /// Watchdog for one L2 run (boot + scenario). A hung run is retried once.
    pub timeout: Duration,
    /// Runs tried when one hangs (no `VIREO-DONE`).
    pub attempts: u32,
    /// bzImage or ELF vmlinux.
    pub kernel_form: KernelForm,
}

impl Scenario {
    pub fn new(name: &str, script: &str) -> Self {
        Scenario {
            name: name.to_owned(),
            script: script.to_owned(),
            expect: Vec::new(),
            memory_mib: 512,
            vcpus: 1,
            cmdline_extra: String::new(),
            // Measured up to 112 s for one L2 run at load average 20 on 2 cores.
            timeout: Duration::from_secs(240),
            attempts: 2,
            // Measured in L1 under QEMU: 21-22 s per L2 run with the ELF vmlinux, 25-39 s with
            // the bzImage (its decompressor runs slowly in L2).
            kernel_form: KernelForm::ElfVmlinux,
        }
    }
    pub fn kernel_form(mut self, f: KernelForm) -> Self {
        self.kernel_form = f;
        self
    }
    /// Requires a `VIREO-RESULT name=NAME status=pass`.
    pub fn expect_pass(mut self, name: &str) -> Self {
        self.expect.push(name.to_owned());
        self
    }
    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = t;
        self
    }
    pub fn memory_mib(mut self, m: u32) -> Self {
        self.memory_mib = m;
        self
    }
    pub fn vcpus(mut self, n: u32) -> Self {
        self.vcpus = n;
        self
    }
    pub fn cmdline(mut self, extra: &str) -> Self {
        self.cmdline_extra = extra.to_owned();
        self
    }
    fn full_cmdline(&self) -> String {
        format!("{DEFAULT_CMDLINE} {}", self.cmdline_extra)
            .trim()
            .to_owned()
    }
}

/// Which VMM runs L2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Launcher {
    /// `qemu-system-x86_64 -M pc -enable-kvm -cpu host` (the host's QEMU, via the L1 share).
    Qemu,
    /// Vireo's own VMM: `BINARY --config FILE` with a JSON `VmConfig`.
    VireoVmm { binary: PathBuf },
}

impl Launcher {
    /// Parses `qemu` or `vmm` (the latter takes the `vireo-vmm` next to the running executable
    /// or in `VIREO_VMM`).
    pub fn parse(s: &str) -> Result<Launcher> {
        match s {
            "qemu" => Ok(Launcher::Qemu),
            "vmm" | "vireo-vmm" => Ok(Launcher::VireoVmm {
                binary: find_vmm()?,
            }),
            other => Err(RigError::Config(format!(
                "unknown L2 launcher {other:?} (expected qemu or vmm)"
            ))),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Launcher::Qemu => "qemu",
            Launcher::VireoVmm { .. } => "vireo-vmm",
        }
    }

    /// Shell text that boots `image` with `initrd` and prints L2's serial console on stdout,
    /// killed after `secs` seconds.
    fn command(
        &self,
        sc: &Scenario,
        kernel: &Path,
        initrd: &Path,
        work: &Path,
        secs: u64,
    ) -> Result<String> {
        let q = shell_quote;
        match self {
            Launcher::Qemu => Ok(format!(
                "exec timeout -s KILL {secs} qemu-system-x86_64 -M pc -enable-kvm -cpu host \
                 -m {mem} -smp {cpus} -nodefaults -display none -no-reboot -serial stdio \
                 -kernel {k} -initrd {i} -append {c}\n",
                mem = sc.memory_mib,
                cpus = sc.vcpus,
                k = q(&kernel.display().to_string()),
                i = q(&initrd.display().to_string()),
                c = q(&sc.full_cmdline()),
            )),
            Launcher::VireoVmm { binary } => {
                // The serial log must be writable where the VMM runs (L1's /tmp is), the config
                // only readable (it sits in the shared cache).
                let log = format!(
                    "/tmp/vireo-l2-{}.serial",
                    work.file_name().and_then(|f| f.to_str()).unwrap_or("run")
                );
                let config = serde_json::json!({
                    "name": format!("rig-{}", sc.name),
                    "memory_mib": sc.memory_mib,
                    "vcpus": sc.vcpus,
                    "kernel": kernel,
                    "initrd": initrd,
                    "cmdline": sc.full_cmdline(),
                    "serial": { "log": log },
                });
                let cfg_path = work.join("vmm.json");
                let text = serde_json::to_string_pretty(&config)
                    .map_err(|e| RigError::Config(format!("vireo-vmm config: {e}")))?;
                crate::initramfs::write_atomic(&cfg_path, text.as_bytes())?;
                Ok(format!(
                    "rm -f {log}; : > {log}\n\
                     timeout -s KILL {secs} {b} --config {c} & vmm=$!\n\
                     tail -n +1 -f --pid=$vmm {log}\n\
                     wait $vmm\n",
                    log = q(&log),
                    b = q(&binary.display().to_string()),
                    c = q(&cfg_path.display().to_string()),
                ))
            }
        }
    }
}

fn find_vmm() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("VIREO_VMM").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe()
        .map_err(|e| RigError::io("locating the running executable", "/proc/self/exe", e))?;
    for dir in exe.ancestors().skip(1).take(3) {
        let cand = dir.join("vireo-vmm");
        if cand.is_file() {
            return Ok(cand);
        }
    }
    Err(RigError::Config(format!(
        "no vireo-vmm binary near {} (build it with `cargo build -p vireo-vmm` into the same target dir, or set VIREO_VMM)",
        exe.display()
    )))
}

/// POSIX sh single-quoting.
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// One `VIREO-RESULT` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultLine {
    pub name: String,
    pub passed: bool,
    pub detail: String,
}

/// A line the rig understands, from L2's console.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Marker {
    Init { uptime: String },
    Result(ResultLine),
    Done { rc: i32 },
}

/// Parses a console line; the marker may follow other text on the same line (kernel messages
/// interleave with init's output).
pub fn parse_line(line: &str) -> Option<Marker> {
    if let Some(pos) = line.find("VIREO-RESULT ") {
        let rest = &line[pos + "VIREO-RESULT ".len()..];
        let name = rest.strip_prefix("name=")?.split(' ').next()?.to_owned();
        let after = &rest["name=".len() + name.len()..];
        let status = after.trim_start().strip_prefix("status=")?;
        let (status, detail) = match status.split_once(' ') {
            Some((s, d)) => (s, d.strip_prefix("detail=").unwrap_or(d)),
            None => (status, ""),
        };
        let passed = match status {
            "pass" => true,
            "fail" => false,
            _ => return None,
        };
        return Some(Marker::Result(ResultLine {
            name,
            passed,
            detail: detail.to_owned(),
        }));
    }
    if let Some(pos) = line.find("VIREO-DONE rc=") {
        let rc = line[pos + "VIREO-DONE rc=".len()..]
            .split(' ')
            .next()?
            .parse()
            .ok()?;
        return Some(Marker::Done { rc });
    }
    if let Some(pos) = line.find("VIREO-L2-INIT uptime=") {
        let up = line[pos + "VIREO-L2-INIT uptime=".len()..]
            .split(' ')
            .next()?;
        return Some(Marker::Init {
            uptime: up.to_owned(),
        });
    }
    None
}

/// What one scenario run showed.
#[derive(Debug, Clone)]
pub struct ScenarioReport {
    pub name: String,
    pub launcher: &'static str,
    pub results: Vec<ResultLine>,
    /// The scenario's exit status from `VIREO-DONE`; `None` if L2 never finished.
    pub done_rc: Option<i32>,
    /// From launching the VMM to L2's init starting.
    pub l2_boot: Option<Duration>,
    /// From L2's init starting to `VIREO-DONE`.
    pub scenario_time: Option<Duration>,
    /// The whole run including VMM start and shutdown.
    pub total: Duration,
    /// The L2's own idea of its uptime when init started (seconds, from /proc/uptime).
    pub l2_uptime_at_init: Option<String>,
    pub attempts: u32,
    /// Expected results that never arrived.
    pub missing: Vec<String>,
    pub launcher_status: i32,
    /// Everything the L2 console printed (last attempt).
    pub output: Vec<Line>,
}

impl ScenarioReport {
    fn from_output(sc: &Scenario, launcher: &Launcher, out: &CmdOutput, attempts: u32) -> Self {
        let mut r = ScenarioReport {
            name: sc.name.clone(),
            launcher: launcher.name(),
            results: Vec::new(),
            done_rc: None,
            l2_boot: None,
            scenario_time: None,
            total: out.took,
            l2_uptime_at_init: None,
            attempts,
            missing: Vec::new(),
            launcher_status: out.status,
            output: out.lines.clone(),
        };
        for line in &out.lines {
            match parse_line(&line.text) {
                Some(Marker::Init { uptime }) if r.l2_boot.is_none() => {
                    r.l2_boot = Some(line.at);
                    r.l2_uptime_at_init = Some(uptime);
                }
                Some(Marker::Result(res)) => r.results.push(res),
                Some(Marker::Done { rc }) if r.done_rc.is_none() => {
                    r.done_rc = Some(rc);
                    r.scenario_time = r.l2_boot.map(|b| line.at.saturating_sub(b));
                }
                _ => {}
            }
        }
        r.missing = sc
            .expect
            .iter()
            .filter(|e| !r.results.iter().any(|x| &x.name == *e && x.passed))
            .cloned()
            .collect();
        r
    }

    /// Passed: L2 finished with rc 0, no result failed, every expected result passed.
    pub fn passed(&self) -> bool {
        self.done_rc == Some(0) && self.results.iter().all(|r| r.passed) && self.missing.is_empty()
    }

    /// Where L2 got to: the last marker or console line seen.
    pub fn stalled_after(&self) -> String {
        self.output
            .iter()
            .rev()
            .find(|l| !l.text.trim().is_empty())
            .map(|l| format!("{:.1} s: {}", l.at.as_secs_f64(), l.text.trim()))
            .unwrap_or_else(|| "no output at all from L2".into())
    }

    /// Ok when [`passed`](Self::passed); otherwise an error that says what failed and shows the
    /// end of L2's console.
    pub fn check(&self) -> Result<()> {
        if self.passed() {
            return Ok(());
        }
        let mut why = Vec::new();
        match self.done_rc {
            None => why.push(format!(
                "L2 never reported VIREO-DONE (launcher exit {}, {} attempt(s)); stalled after {}",
                self.launcher_status,
                self.attempts,
                self.stalled_after()
            )),
            Some(0) => {}
            Some(rc) => why.push(format!("scenario exited with rc={rc}")),
        }
        for r in self.results.iter().filter(|r| !r.passed) {
            why.push(format!("result {} failed: {}", r.name, r.detail));
        }
        for m in &self.missing {
            why.push(format!("expected result {m} never passed"));
        }
        Err(RigError::Scenario {
            name: self.name.clone(),
            why: why.join("; "),
            tail: crate::rig::tail_of(self.output.iter().map(|l| l.text.as_str()), 25),
        })
    }

    /// One line for the timing breakdown.
    pub fn timing_line(&self) -> String {
        let s = |d: Option<Duration>| {
            d.map(|d| format!("{:.2} s", d.as_secs_f64()))
                .unwrap_or("-".into())
        };
        format!(
            "scenario {} via {}: L2 boot {}, scenario {}, total {:.2} s, attempts {}",
            self.name,
            self.launcher,
            s(self.l2_boot),
            s(self.scenario_time),
            self.total.as_secs_f64(),
            self.attempts
        )
    }
}

static RUNS: AtomicU64 = AtomicU64::new(0);

/// Run dirs are named `<pid>-<n>-<scenario>`; those of processes that died without cleaning
/// up (a killed test binary) would pile up.
fn remove_dead_runs(runs: &Path) {
    let Ok(entries) = std::fs::read_dir(runs) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.split('-').next()) else {
            continue;
        };
        if pid.parse::<u32>().is_ok() && !Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// Boots `image` + `scenario` with `launcher` through `run` (a function that executes shell text
/// where KVM is, see [`crate::run_command`]); retries once when L2 hangs.
pub fn run_scenario_with(
    image: &GuestImage,
    sc: &Scenario,
    launcher: &Launcher,
    run: &mut dyn FnMut(&str, Duration) -> Result<CmdOutput>,
) -> Result<ScenarioReport> {
    if sc.name.is_empty()
        || !sc
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        return Err(RigError::Config(format!(
            "scenario name {:?}: use [A-Za-z0-9._-]",
            sc.name
        )));
    }
    let cache = debian::cache_dir()?;
    remove_dead_runs(&cache.join("runs"));
    let work = cache.join("runs").join(format!(
        "{}-{}-{}",
        std::process::id(),
        RUNS.fetch_add(1, Ordering::Relaxed),
        sc.name
    ));
    std::fs::create_dir_all(&work).map_err(|e| RigError::io("creating scenario dir", &work, e))?;
    let _cleanup = crate::rig::RunDirGuard(work.clone());
    let mut extra = Initramfs::new();
    extra.file("scenario.sh", 0o644, sc.script.as_str());
    let extra_path = work.join("scenario.cpio");
    extra.write(&extra_path)?;
    let initrd = work.join("initrd.cpio");
    crate::initramfs::concat(&[&image.base_initrd, &extra_path], &initrd)?;
    let secs = sc.timeout.as_secs().max(5);
    let kernel = match sc.kernel_form {
        KernelForm::BzImage => &image.kernel,
        KernelForm::ElfVmlinux => &image.vmlinux,
    };
    let script = launcher.command(sc, kernel, &initrd, &work, secs)?;
    let attempts = sc.attempts.max(1);
    let mut report = None;
    for attempt in 1..=attempts {
        // The outer timeout leaves room for the launcher's own kill to be reported.
        let out = run(&script, Duration::from_secs(secs + 30))?;
        let r = ScenarioReport::from_output(sc, launcher, &out, attempt);
        let hung = r.done_rc.is_none();
        if hung && attempt < attempts {
            crate::reruns::note(
                &format!("scenario {}", sc.name),
                &format!(
                    "attempt {attempt} did not finish (stalled after {})",
                    r.stalled_after()
                ),
            );
            report = Some(r);
            continue;
        }
        report = Some(r);
        break;
    }
    let report = report.ok_or_else(|| RigError::Broken("scenario never ran".into()))?;
    if let Some(b) = report.l2_boot {
        timing::record(format!("L2 boot ({} via {})", sc.name, report.launcher), b);
    }
    if let Some(s) = report.scenario_time {
        timing::record(format!("L2 scenario ({})", sc.name), s);
    }
    timing::record(
        format!("L2 run total ({}, {} attempt(s))", sc.name, report.attempts),
        report.total,
    );
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tests of one binary fill a cold cache from several threads at once; each extraction must
    /// still end in the whole vmlinux (they once truncated each other's scratch file).
    #[test]
    fn concurrent_extractions_of_one_vmlinux_all_succeed() {
        let dir = std::env::temp_dir().join(format!("vireo-rig-vmlinux-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut elf = b"\x7fELF".to_vec();
        let mut x = 7u32;
        for _ in 0..(4 << 20) {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            elf.push((x >> 24) as u8);
        }
        let out = std::process::Command::new("xz")
            .args(["-c", "-0"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                use std::io::Write;
                let mut stdin = c.stdin.take().unwrap();
                let data = elf.clone();
                let writer = std::thread::spawn(move || stdin.write_all(&data));
                let out = c.wait_with_output()?;
                writer.join().unwrap()?;
                Ok(out)
            })
            .expect("xz (xz-utils) must be installed");
        let mut bz = vec![0u8; 4096];
        bz.extend_from_slice(&out.stdout);
        bz.extend_from_slice(b"trailer");
        let bzimage = dir.join("bzImage");
        std::fs::write(&bzimage, &bz).unwrap();
        let vmlinux = dir.join("vmlinux");
        let workers: Vec<_> = (0..6)
            .map(|_| {
                let (b, v) = (bzimage.clone(), vmlinux.clone());
                std::thread::spawn(move || extract_vmlinux(&b, &v))
            })
            .collect();
        for w in workers {
            w.join().unwrap().unwrap();
        }
        assert!(std::fs::read(&vmlinux).unwrap() == elf, "vmlinux differs");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn parses_markers() {
        assert_eq!(
            parse_line("VIREO-RESULT name=blk status=pass detail=vda is 64 MiB"),
            Some(Marker::Result(ResultLine {
                name: "blk".into(),
                passed: true,
                detail: "vda is 64 MiB".into()
            }))
        );
        assert_eq!(
            parse_line("[    3.1] random: VIREO-RESULT name=x status=fail detail="),
            Some(Marker::Result(ResultLine {
                name: "x".into(),
                passed: false,
                detail: "".into()
            }))
        );
        assert_eq!(
            parse_line("VIREO-RESULT name=x status=maybe detail=y"),
            None
        );
        assert_eq!(
            parse_line("VIREO-DONE rc=3 uptime=4.5"),
            Some(Marker::Done { rc: 3 })
        );
        assert_eq!(parse_line("VIREO-DONE rc=x"), None);
        assert_eq!(
            parse_line("VIREO-L2-INIT uptime=1.25"),
            Some(Marker::Init {
                uptime: "1.25".into()
            })
        );
        assert_eq!(parse_line("hello"), None);
    }

    #[test]
    fn report_judges_results() {
        let sc = Scenario::new("t", "").expect_pass("a");
        let mk = |texts: &[&str]| CmdOutput {
            status: 0,
            took: Duration::from_secs(1),
            lines: texts
                .iter()
                .enumerate()
                .map(|(i, t)| Line {
                    at: Duration::from_secs(i as u64),
                    text: t.to_string(),
                })
                .collect(),
        };
        let ok = mk(&[
            "VIREO-L2-INIT uptime=1",
            "VIREO-RESULT name=a status=pass detail=",
            "VIREO-DONE rc=0",
        ]);
        let r = ScenarioReport::from_output(&sc, &Launcher::Qemu, &ok, 1);
        assert!(r.passed(), "{:?}", r.check());
        assert_eq!(r.l2_boot, Some(Duration::from_secs(0)));
        assert_eq!(r.scenario_time, Some(Duration::from_secs(2)));
        let missing = mk(&["VIREO-DONE rc=0"]);
        assert!(!ScenarioReport::from_output(&sc, &Launcher::Qemu, &missing, 1).passed());
        let failed = mk(&[
            "VIREO-RESULT name=a status=pass detail=",
            "VIREO-RESULT name=b status=fail detail=no",
            "VIREO-DONE rc=0",
        ]);
        assert!(!ScenarioReport::from_output(&sc, &Launcher::Qemu, &failed, 1).passed());
        let hung = mk(&["VIREO-L2-INIT uptime=1"]);
        let r = ScenarioReport::from_output(&sc, &Launcher::Qemu, &hung, 2);
        assert!(r
            .check()
            .unwrap_err()
            .to_string()
            .contains("never reported VIREO-DONE"));
    }

    #[test]
    fn quotes_for_sh() {
        assert_eq!(shell_quote("a'b"), r"'a'\''b'");
    }
}
