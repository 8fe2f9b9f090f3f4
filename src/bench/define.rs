//! Benchmark: defining 1,000 machines with `vireoctl define`, one process per machine as a
//! script would, against `virsh -c test:///default define` (libvirt's in-memory test driver,
//! no daemon) doing the same in the same run, with the ratio. virsh is also timed defining all
//! of them in one session (one process), which shows what process start-up costs it.
//!
//! Each tool gets the same definitions (the `gui_start` bench's kind: kernel boot, VNC,
//! serial); vireoctl writes into an isolated XDG home. No assertions on times.
//!
//! Run: `cargo bench -p vireo --bench define` (VIREO_BENCH_MACHINES=N, default 1000).

mod definition;

use definition::definition;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("bench-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs `cmd`, panicking with its stderr when it fails: a failed define is no figure.
fn run(cmd: &mut Command, what: &str) {
    let out = cmd
        .stdout(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn vireoctl(root: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_vireoctl"));
    c.env("XDG_CONFIG_HOME", root.join("c"))
        .env("XDG_RUNTIME_DIR", root.join("r"))
        .env("XDG_DATA_HOME", root.join("d"))
        .env("XDG_CACHE_HOME", root.join("k"));
    c
}

fn per_machine(d: Duration, n: usize) -> f64 {
    d.as_secs_f64() * 1000.0 / n as f64
}

fn main() {
    let n: usize = std::env::var("VIREO_BENCH_MACHINES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000)
        .max(1);
    let root = scratch("define");
    let kernel = root.join("vmlinuz");
    std::fs::write(&kernel, b"not booted by the benchmark").unwrap();
    let files: Vec<PathBuf> = (0..n)
        .map(|i| {
            let name = format!("m{i:04}");
            let file = root.join(format!("{name}.xml"));
            std::fs::write(&file, definition(&name, &kernel)).unwrap();
            file
        })
        .collect();
    for dir in ["c", "d", "k", "r"] {
        std::fs::create_dir_all(root.join(dir)).unwrap();
    }
    let _ = std::fs::set_permissions(
        root.join("r"),
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    );

    let started = Instant::now();
    for file in &files {
        run(vireoctl(&root).arg("define").arg(file), "vireoctl define");
    }
    let vireo = started.elapsed();
    let listed = vireoctl(&root)
        .args(["list", "--all", "--name"])
        .output()
        .expect("vireoctl list runs");
    let count = String::from_utf8_lossy(&listed.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .count();
    assert_eq!(count, n, "vireoctl lists {count} machines, not {n}");

    let virsh_found = Command::new("virsh")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    println!("defining {n} machines, one process per machine (release build)");
    println!(
        "  vireoctl define:                         {:>7.2} s  ({:.1} ms each)",
        vireo.as_secs_f64(),
        per_machine(vireo, n)
    );
    if !virsh_found {
        println!("  virsh: not installed (libvirt-clients), no peer figure");
        return;
    }
    // The test driver keeps its machines in the process: each run starts empty, which is what
    // a define into a fresh driver costs.
    let started = Instant::now();
    for file in &files {
        run(
            Command::new("virsh")
                .args(["-q", "-c", "test:///default", "define"])
                .arg(file),
            "virsh define",
        );
    }
    let virsh = started.elapsed();
    let script: Vec<String> = files
        .iter()
        .map(|f| format!("define {}", f.display()))
        .collect();
    let started = Instant::now();
    run(
        Command::new("virsh")
            .args(["-q", "-c", "test:///default"])
            .arg(script.join("; ")),
        "virsh define (one session)",
    );
    let session = started.elapsed();
    println!(
        "  virsh -c test:///default define:         {:>7.2} s  ({:.1} ms each)",
        virsh.as_secs_f64(),
        per_machine(virsh, n)
    );
    println!(
        "  ratio vireoctl / virsh:                  {:>7.2}",
        vireo.as_secs_f64() / virsh.as_secs_f64()
    );
    println!(
        "  virsh, all {n} in one session (reference): {:>5.2} s  ({:.2} ms each)",
        session.as_secs_f64(),
        per_machine(session, n)
    );
}
