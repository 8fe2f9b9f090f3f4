//! Benchmark: the footprint of many running machines. Starts N tiny guests (default 100) with
//! `vireoctl start`, each a hand-written PVH program that prints a line on COM1 and halts, and
//! prints:
//! - the start rate (start of the first `vireoctl start` until every guest's line is in its
//!   serial log) and the stop rate (`vireoctl destroy` of all);
//! - PSS per machine of vireo-vmm plus its supervisor (`vireoctl __supervise`), from
//!   /proc/PID/smaps_rollup, and what the host's MemAvailable lost per machine;
//! - the same for QEMU (`-M microvm -accel kvm`, the same guest and memory, serial to a file,
//!   one process per machine, started and killed directly) in the same run, with the ratios.
//!
//! No assertions on figures; a machine that does not come up fails the bench.
//! Run: `cargo bench -p vireo --bench footprint` (VIREO_BENCH_MACHINES=N). Needs /dev/kvm,
//! vireo-vmm built beside vireoctl (`cargo build --workspace --bins --release`), and
//! qemu-system-x86 for the peer.

#[path = "../../tests/vireoctl_support/mod.rs"]
mod vireoctl_support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use vireoctl_support::{domain_xml, guest, Home};

const LINE: &[u8] = b"VIREO-FOOTPRINT-UP\n";
const UP_TIMEOUT: Duration = Duration::from_secs(120);

/// Sum of `Pss:` in /proc/PID/smaps_rollup over `pids`, in KiB.
fn pss_kib(pids: &[u32]) -> u64 {
    pids.iter()
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok())
        .filter_map(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("Pss:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .sum()
}

fn mem_available_kib() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("MemAvailable:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// Processes whose command line mentions `needle` (the bench's own scratch directory).
fn pids_mentioning(needle: &str) -> Vec<u32> {
    let mut out = Vec::new();
    let me = std::process::id();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
        let has = |b: &[u8]| b.windows(needle.len()).any(|w| w == needle.as_bytes());
        if has(&cmdline) || has(&environ) {
            out.push(pid);
        }
    }
    out
}

/// Waits until every file holds `LINE`.
fn wait_lines(files: &[PathBuf], what: &str) {
    let deadline = Instant::now() + UP_TIMEOUT;
    for f in files {
        while !std::fs::read(f).is_ok_and(|b| b.windows(LINE.len()).any(|w| w == LINE)) {
            assert!(
                Instant::now() < deadline,
                "{what}: no guest line in {} after {UP_TIMEOUT:?}",
                f.display()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

struct Figures {
    start: Duration,
    stop: Duration,
    pss_kib: u64,
    processes: usize,
    host_kib: u64,
}

fn vireo(n: usize, kernel: &Path) -> Figures {
    let home = Home::new("fp");
    let root = home.root.display().to_string();
    for i in 0..n {
        let name = format!("fp{i:03}");
        let xml = home.file(
            &format!("{name}.xml"),
            domain_xml(&name, kernel, "", ("destroy", "restart", "destroy")).as_bytes(),
        );
        home.ok(&["define", &xml.display().to_string()]);
    }
    let before = mem_available_kib();
    let t = Instant::now();
    for i in 0..n {
        home.ok(&["start", &format!("fp{i:03}")]);
    }
    let logs: Vec<PathBuf> = (0..n)
        .map(|i| home.runtime(&format!("fp{i:03}")).join("serial.log"))
        .collect();
    wait_lines(&logs, "vireo");
    let start = t.elapsed();
    // Let the helpers settle (threads parked, lazy pages faulted) before measuring.
    std::thread::sleep(Duration::from_secs(2));
    let pids = pids_mentioning(&root);
    let pss = pss_kib(&pids);
    let host = before.saturating_sub(mem_available_kib());
    let t = Instant::now();
    for i in 0..n {
        home.ok(&["destroy", &format!("fp{i:03}")]);
    }
    let stop = t.elapsed();
    Figures {
        start,
        stop,
        pss_kib: pss,
        processes: pids.len(),
        host_kib: host,
    }
}

fn qemu(n: usize, kernel: &Path) -> Option<Figures> {
    let dir = PathBuf::from(format!("/tmp/fp-qemu-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).ok()?;
    let logs: Vec<PathBuf> = (0..n).map(|i| dir.join(format!("q{i:03}.log"))).collect();
    let before = mem_available_kib();
    let t = Instant::now();
    let mut children: Vec<Child> = Vec::new();
    for log in &logs {
        let child = Command::new("qemu-system-x86_64")
            .args(["-M", "microvm", "-accel", "kvm", "-cpu", "host", "-m", "16"])
            .args(["-nodefaults", "-no-user-config", "-display", "none"])
            .arg("-kernel")
            .arg(kernel)
            .arg("-serial")
            .arg(format!("file:{}", log.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        match child {
            Ok(c) => children.push(c),
            Err(e) => {
                println!("  QEMU: cannot start qemu-system-x86_64 ({e}), no peer figure");
                return None;
            }
        }
    }
    wait_lines(&logs, "QEMU");
    let start = t.elapsed();
    std::thread::sleep(Duration::from_secs(2));
    let pids: Vec<u32> = children.iter().map(Child::id).collect();
    let pss = pss_kib(&pids);
    let host = before.saturating_sub(mem_available_kib());
    let t = Instant::now();
    for c in &children {
        // SIGTERM, as a manager stops QEMU; kill() would be SIGKILL.
        unsafe { libc::kill(c.id() as libc::pid_t, libc::SIGTERM) };
    }
    for c in &mut children {
        let _ = c.wait();
    }
    let stop = t.elapsed();
    let _ = std::fs::remove_dir_all(&dir);
    Some(Figures {
        start,
        stop,
        pss_kib: pss,
        processes: pids.len(),
        host_kib: host,
    })
}

fn row(who: &str, n: usize, f: &Figures) {
    let per = |kib: u64| kib as f64 / 1024.0 / n as f64;
    println!(
        "  {who:<7} start {:>6.1} machines/s  stop {:>6.1} machines/s  PSS {:>5.2} MiB/machine ({} processes)  host {:>5.2} MiB/machine",
        n as f64 / f.start.as_secs_f64(),
        n as f64 / f.stop.as_secs_f64(),
        per(f.pss_kib),
        f.processes,
        per(f.host_kib),
    );
}

fn main() {
    let n: usize = std::env::var("VIREO_BENCH_MACHINES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100)
        .max(1);
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("bench-footprint");
    std::fs::create_dir_all(&dir).expect("scratch directory");
    let kernel = dir.join("tiny.elf");
    let code = [
        guest::print(std::str::from_utf8(LINE).unwrap_or("up\n")),
        guest::spin(),
    ]
    .concat();
    std::fs::write(&kernel, guest::pvh_elf(&code)).expect("writing the tiny guest");

    println!("{n} tiny guests at once (16 MiB each, 1 vCPU, serial to a file, no display)");
    let v = vireo(n, &kernel);
    row("vireo", n, &v);
    let Some(q) = qemu(n, &kernel) else { return };
    row("QEMU", n, &q);
    let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { f64::NAN };
    println!(
        "  ratio vireo/QEMU: start time {:.2}x, stop time {:.2}x, PSS {:.2}x, host memory {:.2}x",
        ratio(v.start.as_secs_f64(), q.start.as_secs_f64()),
        ratio(v.stop.as_secs_f64(), q.stop.as_secs_f64()),
        ratio(v.pss_kib as f64, q.pss_kib as f64),
        ratio(v.host_kib as f64, q.host_kib as f64),
    );
}
