//! A harness that runs the real `vireo` binary on its own X server (Xvfb) and session bus, with
//! private XDG directories and the keyfile GSettings backend, and drives it the way a user or a
//! desktop would: through its exported GActions (org.gtk.Actions over D-Bus) and real key
//! presses (xdotool, XTEST). Screenshots go to `target/test-output/`.
//!
//! Needs: Xvfb, dbus-daemon, gdbus, xdotool, ImageMagick (import, convert, compare).

#![allow(dead_code)] // each test binary uses a different part of the harness

use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

pub const APP_ID: &str = "org.vireo.Vireo";
pub const APP_PATH: &str = "/org/vireo/Vireo";
pub const WINDOW_PATH: &str = "/org/vireo/Vireo/window/1";

/// Where screenshots are kept after the tests: `target/test-output/`.
pub fn output_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .map(|p| p.join("test-output"))
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("test-output"));
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// A scratch directory for one test, emptied first.
pub fn scratch_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("gui-{name}"));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs a tool and returns its output; panics with the tool's stderr when it cannot run.
pub fn tool(program: &str, args: &[&str], display: Option<&str>) -> Output {
    let mut cmd = Command::new(program);
    cmd.args(args);
    if let Some(display) = display {
        cmd.env("DISPLAY", display);
    }
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {program} (is it installed?): {e}"))
}

fn wait_until_or_none<T>(timeout: Duration, mut probe: impl FnMut() -> Option<T>) -> Option<T> {
    let start = Instant::now();
    loop {
        if let Some(v) = probe() {
            return Some(v);
        }
        if start.elapsed() > timeout {
            return None;
        }
        sleep(Duration::from_millis(100));
    }
}

fn wait_until<T>(what: &str, timeout: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = probe() {
            return v;
        }
        if start.elapsed() > timeout {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        sleep(Duration::from_millis(100));
    }
}

/// An X server and a session bus that live as long as this value.
pub struct Desktop {
    pub dir: PathBuf,
    pub display: String,
    pub bus_address: String,
    xvfb: Child,
    dbus: Child,
    helpers: std::cell::RefCell<Vec<Child>>,
}

impl Desktop {
    pub fn start(name: &str) -> Desktop {
        let dir = scratch_dir(name);
        let (xvfb, display) = start_xvfb(&dir);
        let dbus = start_dbus(&dir);
        let (dbus, bus_address) = dbus;
        Desktop {
            dir,
            display,
            bus_address,
            xvfb,
            dbus,
            helpers: std::cell::RefCell::new(Vec::new()),
        }
    }

    /// Runs a window manager (openbox) on this display, for tests of maximizing; it ends with
    /// the X server.
    pub fn start_window_manager(&self) {
        let log = self.dir.join("openbox.log");
        let spawn = || {
            Command::new("openbox")
                .args(["--sm-disable"])
                .env("DISPLAY", &self.display)
                .env("HOME", self.dir.join("home"))
                .env("XDG_CONFIG_HOME", self.dir.join("wm-config"))
                .stdout(Stdio::null())
                .stderr(fs::File::create(&log).unwrap())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start openbox (install openbox): {e}"))
        };
        let said = || fs::read_to_string(&log).unwrap_or_default();
        let mut child = spawn();
        let mut started = 1;
        // The manager announces itself by owning the WM_S0 selection. A bound, not a timing
        // check: 10 s was once too short with two suites and their fuzzers on the 2 cores, and
        // 30 s with a suite beside two nested-KVM rig runs. In a CI-like run openbox once never
        // announced itself in 90 s on an idle machine: one that exits is started once more,
        // and a failure says whether it was running and what it printed.
        let managed = wait_until_or_none(Duration::from_secs(90), || {
            let out = tool(
                "xprop",
                &["-root", "_NET_SUPPORTING_WM_CHECK"],
                Some(&self.display),
            );
            if String::from_utf8_lossy(&out.stdout).contains("window id") {
                return Some(());
            }
            if let Ok(Some(status)) = child.try_wait() {
                assert!(
                    started < 2,
                    "openbox exited again before managing the screen ({status}): {}",
                    said()
                );
                eprintln!(
                    "openbox exited before managing the screen ({status}); started once more: {}",
                    said()
                );
                child = spawn();
                started += 1;
            }
            None
        });
        if managed.is_none() {
            let running = matches!(child.try_wait(), Ok(None));
            panic!(
                "timed out after 90 s waiting for openbox to manage the screen (openbox {}): {}",
                if running { "still running" } else { "exited" },
                said()
            );
        }
        self.helpers.borrow_mut().push(child);
    }

    /// Clicks at a point of the screen with the first mouse button, `count` times.
    pub fn click(&self, x: u32, y: u32, count: u32) {
        let (x, y, count) = (x.to_string(), y.to_string(), count.to_string());
        let out = tool(
            "xdotool",
            &["mousemove", "--sync", &x, &y],
            Some(&self.display),
        );
        assert!(out.status.success(), "xdotool mousemove failed");
        let out = tool(
            "xdotool",
            &["click", "--repeat", &count, "--delay", "80", "1"],
            Some(&self.display),
        );
        assert!(out.status.success(), "xdotool click failed");
        sleep(Duration::from_millis(500));
    }

    /// A private configuration home, so runs never touch the user's settings.
    pub fn config_home(&self) -> PathBuf {
        self.dir.join("config")
    }

    /// The file the keyfile GSettings backend writes.
    pub fn settings_keyfile(&self) -> PathBuf {
        self.config_home().join("glib-2.0/settings/keyfile")
    }

    /// Starts `vireo` with the given extra environment (e.g. LANGUAGE, PATH).
    pub fn launch(&self, env: &[(&str, &str)]) -> App {
        self.launch_binary(Path::new(env!("CARGO_BIN_EXE_vireo")), env)
    }

    /// Starts `vireo` on the real driver with its own XDG directories under `root` (`c`onfig,
    /// `r`untime, `d`ata, ca`k`he: the layout the driver tests' homes use, so vireoctl run on
    /// the same root sees the same machines), `supervisor` and `vmm` as the driver's helpers,
    /// then `extra` (which may override any of these).
    pub fn launch_with_driver(
        &self,
        root: &Path,
        supervisor: &Path,
        vmm: &Path,
        extra: &[(&str, &str)],
    ) -> App {
        let root = root.display().to_string();
        let supervisor = supervisor.display().to_string();
        let vmm = vmm.display().to_string();
        let (config, runtime, data, cache) = (
            format!("{root}/c"),
            format!("{root}/r"),
            format!("{root}/d"),
            format!("{root}/k"),
        );
        let mut env = vec![
            ("XDG_CONFIG_HOME", config.as_str()),
            ("XDG_RUNTIME_DIR", runtime.as_str()),
            ("XDG_DATA_HOME", data.as_str()),
            ("XDG_CACHE_HOME", cache.as_str()),
            ("VIREO_SUPERVISOR", supervisor.as_str()),
            ("VIREO_VMM", vmm.as_str()),
        ];
        env.extend_from_slice(extra);
        self.launch(&env)
    }

    /// A stand-in for yelp: a script in a directory of its own that writes its arguments, one
    /// a line, to a record file and exits with `$FAKE_YELP_STATUS` (0 when unset). Returns
    /// the record file and a PATH that finds the script first.
    pub fn fake_yelp(&self) -> (PathBuf, String) {
        let bin = self.dir.join("fake-bin");
        fs::create_dir_all(&bin).unwrap();
        let record = self.dir.join("yelp-args");
        let yelp = bin.join("yelp");
        fs::write(
            &yelp,
            format!(
                "#!/bin/sh\nprintf '%s\\n' \"$@\" > '{}'\nexit \"${{FAKE_YELP_STATUS:-0}}\"\n",
                record.display()
            ),
        )
        .unwrap();
        fs::set_permissions(&yelp, fs::Permissions::from_mode(0o755)).unwrap();
        let path = format!("{}:/usr/bin:/bin", bin.display());
        (record, path)
    }

    pub fn launch_binary(&self, binary: &Path, env: &[(&str, &str)]) -> App {
        let log = self.dir.join(format!(
            "vireo-{}.log",
            Instant::now().elapsed().as_nanos() ^ u128::from(std::process::id())
        ));
        let log = unique(log);
        let mut cmd = Command::new(binary);
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.dir.join("home"))
            .env("DISPLAY", &self.display)
            .env("DBUS_SESSION_BUS_ADDRESS", &self.bus_address)
            .env("XDG_CONFIG_HOME", self.config_home())
            .env("XDG_DATA_HOME", self.dir.join("data"))
            .env("XDG_CACHE_HOME", self.dir.join("cache"))
            .env("XDG_RUNTIME_DIR", self.dir.join("runtime"))
            .env("GSETTINGS_BACKEND", "keyfile")
            .env("GDK_BACKEND", "x11")
            // No GPU here; the cairo renderer draws the same widgets without GL.
            .env("GSK_RENDERER", "cairo")
            .env("GTK_A11Y", "none")
            .env("LANG", "C.UTF-8");
        for (k, v) in env {
            cmd.env(k, v);
        }
        for dir in ["home", "data", "cache", "runtime", "config"] {
            fs::create_dir_all(self.dir.join(dir)).unwrap();
        }
        let _ = fs::set_permissions(
            self.dir.join("runtime"),
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        );
        let stderr = fs::File::create(&log).unwrap();
        let child = cmd
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let app = App {
            child,
            log,
            display: self.display.clone(),
            bus_address: self.bus_address.clone(),
        };
        app.wait_ready();
        app
    }

    /// Saves the whole screen as `target/test-output/<name>.png` and returns the path.
    pub fn screenshot(&self, name: &str) -> PathBuf {
        let path = output_dir().join(format!("{name}.png"));
        let out = tool(
            "import",
            &["-window", "root", path.to_str().unwrap()],
            Some(&self.display),
        );
        assert!(
            out.status.success(),
            "import failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        path
    }

    /// Visible top-level windows named exactly `title`.
    pub fn windows_named(&self, title: &str) -> Vec<String> {
        let pattern = format!("^{}$", regex_escape(title));
        let out = tool(
            "xdotool",
            &["search", "--onlyvisible", "--name", &pattern],
            Some(&self.display),
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// Titles of all visible windows, for assertions and failure messages.
    pub fn visible_window_names(&self) -> Vec<String> {
        let out = tool(
            "xdotool",
            &["search", "--onlyvisible", "--name", ""],
            Some(&self.display),
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|id| {
                let name = tool("xdotool", &["getwindowname", id], Some(&self.display));
                name.status
                    .success()
                    .then(|| String::from_utf8_lossy(&name.stdout).trim().to_owned())
            })
            .collect()
    }

    pub fn wait_for_window(&self, title: &str) -> String {
        let found = wait_until_or_none(Duration::from_secs(20), || {
            self.windows_named(title).into_iter().next()
        });
        found.unwrap_or_else(|| {
            let shot = self.screenshot(&format!("failed-waiting-for-{}", title.replace(' ', "-")));
            panic!(
                "no window named “{title}” appeared; visible windows: {:?}; screen: {}",
                self.visible_window_names(),
                shot.display()
            )
        })
    }

    pub fn wait_for_no_window(&self, title: &str) {
        wait_until(
            &format!("no window named “{title}”"),
            Duration::from_secs(20),
            || self.windows_named(title).is_empty().then_some(()),
        )
    }

    /// Sizes of a window as X sees them.
    pub fn window_size(&self, id: &str) -> (u32, u32) {
        let (_, _, width, height) = self.window_geometry(id);
        (width, height)
    }

    /// Where X put a window: (x, y, width, height).
    pub fn window_geometry(&self, id: &str) -> (u32, u32, u32, u32) {
        let out = tool(
            "xdotool",
            &["getwindowgeometry", "--shell", id],
            Some(&self.display),
        );
        let text = String::from_utf8_lossy(&out.stdout);
        let field = |name: &str| -> u32 {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("{name}=")))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or_else(|| panic!("no {name} in xdotool output: {text}"))
        };
        (field("X"), field("Y"), field("WIDTH"), field("HEIGHT"))
    }

    /// Clicks once at a point given in the window's own coordinates.
    pub fn click_in(&self, window: &str, dx: u32, dy: u32) {
        let (x, y, _, _) = self.window_geometry(window);
        self.click(x + dx, y + dy, 1);
    }

    /// Puts `text` on the CLIPBOARD selection with xclip, which forks a server that keeps
    /// owning the selection until the X server ends.
    pub fn set_clipboard(&self, text: &str) {
        use std::io::Write;
        let mut xclip = Command::new("xclip")
            .args(["-selection", "clipboard", "-i"])
            .env("DISPLAY", &self.display)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("xclip must be installed");
        xclip
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        assert!(xclip.wait().unwrap().success());
    }

    /// Focuses the window and types a key combination with XTEST, like a keyboard would.
    pub fn press(&self, window: &str, keys: &str) {
        let out = tool(
            "xdotool",
            &["windowfocus", "--sync", window],
            Some(&self.display),
        );
        assert!(
            out.status.success(),
            "xdotool windowfocus: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        sleep(Duration::from_millis(200));
        let out = tool(
            "xdotool",
            &["key", "--clearmodifiers", keys],
            Some(&self.display),
        );
        assert!(
            out.status.success(),
            "xdotool key {keys}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        sleep(Duration::from_millis(300));
    }
}

impl Drop for Desktop {
    fn drop(&mut self) {
        for helper in self.helpers.borrow_mut().iter_mut() {
            let _ = helper.kill();
            let _ = helper.wait();
        }
        let _ = self.dbus.kill();
        let _ = self.dbus.wait();
        let _ = self.xvfb.kill();
        let _ = self.xvfb.wait();
    }
}

fn unique(path: PathBuf) -> PathBuf {
    let mut n = 0;
    let stem = path.with_extension("");
    let mut candidate = path;
    while candidate.exists() {
        n += 1;
        candidate = PathBuf::from(format!("{}-{n}.log", stem.display()));
    }
    candidate
}

fn regex_escape(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if "\\.^$|?*+()[]{}".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Starts Xvfb on the first free display from a per-process starting point.
fn start_xvfb(dir: &Path) -> (Child, String) {
    let base = 100 + (std::process::id() % 400) * 4;
    let log = dir.join("xvfb.log");
    for n in base..base + 200 {
        if Path::new(&format!("/tmp/.X{n}-lock")).exists() {
            continue;
        }
        let display = format!(":{n}");
        let mut child = Command::new("Xvfb")
            .args([
                display.as_str(),
                "-screen",
                "0",
                "1280x800x24",
                "-nolisten",
                "tcp",
            ])
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start Xvfb (install xvfb): {e}"));
        let socket = PathBuf::from(format!("/tmp/.X11-unix/X{n}"));
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(_)) = child.try_wait() {
                break; // display taken by someone else: try the next one
            }
            // Another server may own this display: only ours writes our pid into the lock.
            let ours = fs::read_to_string(format!("/tmp/.X{n}-lock"))
                .ok()
                .and_then(|pid| pid.trim().parse::<u32>().ok())
                == Some(child.id());
            if ours
                && socket.exists()
                && tool("xdotool", &["getmouselocation"], Some(&display))
                    .status
                    .success()
            {
                return (child, display);
            }
            sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    panic!("no free X display for Xvfb; see {}", log.display());
}

/// A session bus of our own. It has no service directories, so nothing of the host (portals,
/// the accessibility bus) is activated into the test.
fn start_dbus(dir: &Path) -> (Child, String) {
    let config = dir.join("session.conf");
    let socket = dir.join("bus");
    fs::write(
        &config,
        format!(
            r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path={}</listen>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"#,
            socket.display()
        ),
    )
    .unwrap();
    let mut child = Command::new("dbus-daemon")
        .arg(format!("--config-file={}", config.display()))
        .args(["--nofork", "--print-address=1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start dbus-daemon (install dbus): {e}"));
    let stdout = child.stdout.take().unwrap();
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let address = line.trim().to_owned();
    assert!(!address.is_empty(), "dbus-daemon printed no address");
    (child, address)
}

/// A running `vireo`.
pub struct App {
    child: Child,
    pub log: PathBuf,
    display: String,
    bus_address: String,
}

impl App {
    fn gdbus(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new("gdbus");
        cmd.args(args)
            .env("DBUS_SESSION_BUS_ADDRESS", &self.bus_address)
            .env("DISPLAY", &self.display);
        cmd.output()
            .unwrap_or_else(|e| panic!("cannot run gdbus (install libglib2.0-bin): {e}"))
    }

    fn call(&self, path: &str, method: &str, args: &[&str]) -> Result<String, String> {
        let mut all = vec![
            "call",
            "--session",
            "--timeout",
            "10",
            "--dest",
            APP_ID,
            "--object-path",
            path,
            "--method",
            method,
        ];
        all.extend_from_slice(args);
        let out = self.gdbus(&all);
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    fn wait_ready(&self) {
        wait_until(
            "vireo's window on the session bus",
            Duration::from_secs(30),
            || self.call(WINDOW_PATH, "org.gtk.Actions.List", &[]).ok(),
        );
        // Give GTK a moment to map and draw the first frame.
        sleep(Duration::from_millis(800));
    }

    /// Activates `app.<name>` the way a desktop shell does.
    pub fn activate_app(&self, name: &str) {
        self.call(APP_PATH, "org.gtk.Actions.Activate", &[name, "[]", "{}"])
            .unwrap_or_else(|e| panic!("app.{name} failed: {e}\n{}", self.log_text()));
        sleep(Duration::from_millis(500));
    }

    /// Activates `win.<name>` on the main window.
    pub fn activate_win(&self, name: &str) {
        self.call(WINDOW_PATH, "org.gtk.Actions.Activate", &[name, "[]", "{}"])
            .unwrap_or_else(|e| panic!("win.{name} failed: {e}\n{}", self.log_text()));
        sleep(Duration::from_millis(500));
    }

    /// Activates `win.<name>(<param>)`; `param` is GVariant text such as `'t1'`.
    pub fn activate_win_with(&self, name: &str, param: &str) {
        let param = format!("[<{param}>]");
        self.call(
            WINDOW_PATH,
            "org.gtk.Actions.Activate",
            &[name, &param, "{}"],
        )
        .unwrap_or_else(|e| panic!("win.{name}({param}) failed: {e}\n{}", self.log_text()));
    }

    /// Opens the New Machine wizard on a kernel file ("Boot a Kernel", as the file chooser of
    /// the "+" menu would).
    pub fn new_machine_from_kernel(&self, kernel: &Path) {
        self.activate_win_with(
            "new-machine-from-kernel",
            &format!("'{}'", kernel.display()),
        );
    }

    /// The state of a stateful `win.<name>` action, as GVariant text (e.g. "true").
    pub fn win_action_state(&self, name: &str) -> String {
        let out = self
            .call(WINDOW_PATH, "org.gtk.Actions.Describe", &[name])
            .unwrap_or_else(|e| panic!("describing win.{name} failed: {e}"));
        // ((true, signature '', [<true>]),)
        let start = out.find("[<").map(|i| i + 2);
        let end = out.rfind(">]");
        match (start, end) {
            (Some(s), Some(e)) if s <= e => out[s..e].to_owned(),
            _ => panic!("win.{name} has no state: {out}"),
        }
    }

    /// Waits (up to 10 s, the app may be slow on a busy machine) for `win.<name>` to reach
    /// `expected`; panics with `why` and the last state otherwise.
    pub fn expect_win_state(&self, name: &str, expected: &str, why: &str) {
        let start = Instant::now();
        loop {
            let state = self.win_action_state(name);
            if state == expected {
                return;
            }
            if start.elapsed() > Duration::from_secs(10) {
                panic!("win.{name} is {state}, expected {expected}: {why}");
            }
            sleep(Duration::from_millis(100));
        }
    }

    /// Waits (up to 30 s) until the window's `{name: state}` map of machines satisfies `ok`;
    /// returns that map, or panics naming `what` with the last map and the app's log.
    pub fn wait_view(&self, what: &str, ok: impl Fn(&str) -> bool) -> String {
        self.wait_view_within(Duration::from_secs(30), what, ok)
    }

    /// [`App::wait_view`] with another time limit.
    pub fn wait_view_within(
        &self,
        timeout: Duration,
        what: &str,
        ok: impl Fn(&str) -> bool,
    ) -> String {
        let start = Instant::now();
        loop {
            let states = self.win_action_state("machine-states");
            if ok(&states) {
                return states;
            }
            if start.elapsed() > timeout {
                panic!(
                    "the view never showed {what}; it shows {states}\n{}",
                    self.log_text()
                );
            }
            sleep(Duration::from_millis(100));
        }
    }

    /// The names of the application's actions.
    pub fn app_actions(&self) -> String {
        self.call(APP_PATH, "org.gtk.Actions.List", &[])
            .unwrap_or_else(|e| panic!("listing actions failed: {e}"))
    }

    /// True while the process runs and answers on the bus.
    pub fn is_alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
            && self.call(APP_PATH, "org.gtk.Actions.List", &[]).is_ok()
    }

    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn wait_for_log(&self, needle: &str) -> String {
        wait_until(
            &format!("“{needle}” in {}", self.log.display()),
            Duration::from_secs(20),
            || {
                let text = self.log_text();
                text.contains(needle).then_some(text)
            },
        )
    }

    /// Quits through app.quit and waits for the process to end; returns its exit status.
    pub fn quit(mut self) -> std::process::ExitStatus {
        let _ = self.call(APP_PATH, "org.gtk.Actions.Activate", &["quit", "[]", "{}"]);
        let child = &mut self.child;
        wait_until("vireo to exit", Duration::from_secs(20), || {
            child.try_wait().ok().flatten()
        })
    }
}

impl Drop for App {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Facts about a PNG measured with ImageMagick.
pub struct Image;

impl Image {
    /// Standard deviation of the pixel values, 0 (one flat colour) to about 0.5.
    pub fn deviation(path: &Path) -> f64 {
        let out = tool(
            "convert",
            &[
                path.to_str().unwrap(),
                "-colorspace",
                "Gray",
                "-format",
                "%[fx:standard_deviation]",
                "info:",
            ],
            None,
        );
        let text = String::from_utf8_lossy(&out.stdout);
        text.trim()
            .parse()
            .unwrap_or_else(|_| panic!("convert gave no deviation for {}: {text}", path.display()))
    }

    /// Mean of each channel (0..1) in a region (`WxH+X+Y`) of a PNG.
    pub fn region_mean(png: &Path, geometry: &str) -> (f64, f64, f64) {
        let out = Command::new("convert")
            .arg(png)
            .args(["-crop", geometry, "+repage", "-format"])
            .arg("%[fx:mean.r] %[fx:mean.g] %[fx:mean.b]")
            .arg("info:")
            .output()
            .expect("ImageMagick convert runs");
        let text = String::from_utf8_lossy(&out.stdout);
        let v: Vec<f64> = text
            .split_whitespace()
            .filter_map(|s| s.parse().ok())
            .collect();
        assert_eq!(
            v.len(),
            3,
            "convert said: {text} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        (v[0], v[1], v[2])
    }

    /// How many pixels differ between two images of the same size.
    pub fn differing_pixels(a: &Path, b: &Path) -> u64 {
        let out = tool(
            "compare",
            &[
                "-metric",
                "AE",
                a.to_str().unwrap(),
                b.to_str().unwrap(),
                "null:",
            ],
            None,
        );
        // compare prints the metric on stderr and exits 1 when the images differ.
        let text = String::from_utf8_lossy(&out.stderr);
        let first = text.split_whitespace().next().unwrap_or("");
        first
            .parse::<f64>()
            .map(|v| v as u64)
            .unwrap_or_else(|_| panic!("compare gave no metric: {text}"))
    }

    /// Crops `src` to the given window and writes an optimised PNG to `dst`.
    pub fn save_window(display: &str, window: &str, dst: &Path) {
        let out = tool(
            "import",
            &[
                "-window",
                window,
                "-strip",
                "-define",
                "png:compression-level=9",
                dst.to_str().unwrap(),
            ],
            Some(display),
        );
        assert!(
            out.status.success(),
            "import failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
