//! What the GUI benchmarks share: launching the real `vireo` with its stderr read line by line
//! (the `vireo-trace:` lines it prints behind VIREO_TRACE_*), and process CPU time from /proc.

#![allow(dead_code)] // each benchmark uses a different part

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::common::Desktop;

/// A running `vireo` whose stderr lines arrive with the instant they were read.
pub struct Traced {
    pub child: Child,
    pub started: Instant,
    pub lines: mpsc::Receiver<(Instant, String)>,
}

impl Traced {
    /// Starts the release `vireo` on `desktop` with the driver's XDG directories under `root`.
    pub fn launch(desktop: &Desktop, root: &Path, env: &[(&str, &str)]) -> Traced {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_vireo"));
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", root.join("home"))
            .env("DISPLAY", &desktop.display)
            .env("DBUS_SESSION_BUS_ADDRESS", &desktop.bus_address)
            .env("XDG_CONFIG_HOME", root.join("c"))
            .env("XDG_RUNTIME_DIR", root.join("r"))
            .env("XDG_DATA_HOME", root.join("d"))
            .env("XDG_CACHE_HOME", root.join("k"))
            .env("GSETTINGS_BACKEND", "keyfile")
            .env("GDK_BACKEND", "x11")
            .env("GSK_RENDERER", "cairo")
            .env("GTK_A11Y", "none")
            .env("LANG", "C.UTF-8");
        for (k, v) in env {
            cmd.env(k, v);
        }
        for dir in ["home", "c", "d", "k", "r"] {
            std::fs::create_dir_all(root.join(dir)).unwrap();
        }
        let _ = std::fs::set_permissions(
            root.join("r"),
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        );
        let started = Instant::now();
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the release vireo starts (cargo bench builds it)");
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send((Instant::now(), line)).is_err() {
                    break;
                }
            }
        });
        Traced {
            child,
            started,
            lines,
        }
    }

    /// Waits for a stderr line starting with `prefix`; returns its instant and text.
    pub fn wait_line(&self, prefix: &str, timeout: Duration) -> (Instant, String) {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok((at, line)) if line.starts_with(prefix) => return (at, line),
                Ok(_) => {}
                Err(_) => panic!("vireo printed no “{prefix}” line within {timeout:?}"),
            }
        }
    }

    pub fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Traced {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// User + system CPU time of a process so far (from /proc/PID/stat).
pub fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    let ticks: u64 = fields
        .get(11..13)
        .map(|f| f.iter().filter_map(|v| v.parse::<u64>().ok()).sum())
        .unwrap_or(0);
    // SAFETY: sysconf only reads a system constant.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_millis(ticks * 1000 / hz)
}

/// Resident and proportional set size of a process in KiB (from /proc/PID/smaps_rollup).
pub fn memory_kib(pid: u32) -> (u64, u64) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("Rss:"), field("Pss:"))
}

/// Activates an action of the main window over D-Bus, as the tests do.
pub fn activate_win(desktop: &Desktop, name: &str, param: Option<&str>) {
    let params = param.map_or("[]".to_owned(), |p| format!("[<{p}>]"));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = Command::new("gdbus")
            .args(["call", "--session", "--timeout", "10", "--dest"])
            .args([
                crate::common::APP_ID,
                "--object-path",
                crate::common::WINDOW_PATH,
            ])
            .args(["--method", "org.gtk.Actions.Activate", name, &params, "{}"])
            .env("DBUS_SESSION_BUS_ADDRESS", &desktop.bus_address)
            .output()
            .expect("gdbus runs");
        if out.status.success() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "win.{name} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
