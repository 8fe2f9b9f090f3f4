//! Benchmark (issue #8): frames per second the console window presents, and the CPU the
//! `vireo` process spends, while the remote screen is 1280x800 and changes all the time.
//!
//! Two servers:
//! - our own: a vireo-vmm machine on the local /dev/kvm whose tiny guest redraws a moving
//!   gradient over its whole 1280x800 framebuffer as fast as it can (the VMM's VNC server
//!   then has a new frame at each of its refreshes);
//! - the reference: Xtigervnc at 1280x800 running ImageMagick's `animate` over 16 frames of a
//!   plasma picture, each rolled by 80 pixels, one every 30 ms.
//!
//! The console runs with VIREO_TRACE_CONSOLE=1 and prints its presented-frame count once a
//! second; CPU is user+system time from /proc over the same interval. The window is resized
//! to 1280x800 (the Xvfb screen); each server is measured with the console scaling set to
//! "fit" (the 1280x753 picture area shows the guest at 0.94) and to "actual" (1:1, scrolled).
//! A presented frame is a changed framebuffer shown on a frame-clock tick: with a server that
//! sends a frame in several updates, some presented frames are partly new.
//!
//! The peer viewer, gvncviewer (GTK-VNC 1.3's sample viewer, GTK 3), connects to the same
//! servers over TCP (to our VMM's unix socket through a small relay in this bench) and shows
//! them 1:1. It prints nothing per frame, so its frames are counted from outside: X DAMAGE on
//! its window (see `damage.rs`). The console's window is counted the same way beside its own
//! trace, which checks the method. Figures are printed side by side; nothing is asserted.
//!
//! Run: `cargo build --release -p vireo-vmm && cargo bench -p vireo --bench console_fps`
//! (VIREO_BENCH_SECONDS=N measures N seconds per server, default 10).

#[path = "../../tests/common/mod.rs"]
mod common;
mod damage;
mod support;
#[path = "../../tests/vireoctl_support/mod.rs"]
mod vireoctl_support;

use std::net::{TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use common::{scratch_dir, Desktop};
use support::{activate_win, cpu_time, Traced};
use vireoctl_support::{domain_xml, guest, Home};

/// Redraws the framebuffer forever: each pixel one more than the last (a blue-green ramp),
/// each frame starting one step further (so the ramp moves).
fn animator() -> Vec<u8> {
    let mut g = vec![0x31, 0xdb]; // xor ebx, ebx
                                  // frame: mov edi, 0xd0000000; mov ecx, 1280*800; mov eax, ebx
    g.extend([0xbf, 0x00, 0x00, 0x00, 0xd0]);
    g.push(0xb9);
    g.extend((1280u32 * 800).to_le_bytes());
    g.extend([0x89, 0xd8]);
    // pixel: stosd; add eax, 1; loop pixel
    g.extend([0xab, 0x83, 0xc0, 0x01, 0xe2, 0xfa]);
    // add ebx, 0x00000811; jmp frame (back 26 bytes: 5+5+2+1+3+2+6+2)
    g.extend([0x81, 0xc3, 0x11, 0x08, 0x00, 0x00]);
    g.extend([0xeb, 0xe6]);
    g
}

struct Owned(Child);

impl Drop for Owned {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Figures {
    fps: f64,
    /// Frames counted by X DAMAGE on the viewer's window.
    damage_fps: f64,
    client_cpu: f64,
    server_cpu: Option<f64>,
    size: String,
}

/// Opens the console with `open`, waits for frames, then measures for `seconds`.
#[allow(clippy::too_many_arguments)]
fn measure(
    label: &str,
    scaling: &str,
    desktop: &Desktop,
    root: &std::path::Path,
    env: &[(&str, &str)],
    title: &str,
    open: impl Fn(),
    server_pid: Option<u32>,
    seconds: u64,
) -> Figures {
    // The console's scaling default, as the Preferences would store it.
    let settings = root.join("c/glib-2.0/settings");
    std::fs::create_dir_all(&settings).unwrap();
    std::fs::write(
        settings.join("keyfile"),
        format!("[org/vireo/Vireo]\nconsole-scaling='{scaling}'\n"),
    )
    .unwrap();
    let mut all_env = vec![("VIREO_TRACE_CONSOLE", "1")];
    all_env.extend_from_slice(env);
    let app = Traced::launch(desktop, root, &all_env);
    open();
    let window = desktop.wait_for_window(title);
    let damage = damage::DamageCounter::start(&desktop.display, &window);
    let resized = Command::new("xdotool")
        .args([
            "windowmove",
            &window,
            "0",
            "0",
            "windowsize",
            &window,
            "1280",
            "800",
        ])
        .env("DISPLAY", &desktop.display)
        .status()
        .expect("xdotool runs");
    assert!(resized.success(), "xdotool could not resize the console");
    // Settle: connected, resized, a few seconds of frames.
    app.wait_line("vireo-trace: console-frames", Duration::from_secs(60));
    sleep(Duration::from_secs(2));
    let parse = |line: &str| -> (u64, String) {
        let mut words = line.split_whitespace().skip(2);
        let frames = words.next().and_then(|v| v.parse().ok()).unwrap_or(0);
        (frames, words.next().unwrap_or("?").to_owned())
    };
    let (t0, line0) = app.wait_line("vireo-trace: console-frames", Duration::from_secs(10));
    let cpu0 = cpu_time(app.child.id());
    let server0 = server_pid.map(cpu_time);
    let d0 = damage.as_ref().map_or(0, |d| d.count());
    let (f0, _) = parse(&line0);
    let until = t0 + Duration::from_secs(seconds);
    let (mut t1, mut f1, mut size) = (t0, f0, String::new());
    while t1 < until {
        let (at, line) = app.wait_line("vireo-trace: console-frames", Duration::from_secs(10));
        let (frames, s) = parse(&line);
        (t1, f1, size) = (at, frames, s);
    }
    let cpu1 = cpu_time(app.child.id());
    let d1 = damage.as_ref().map_or(0, |d| d.count());
    let wall = (t1 - t0).as_secs_f64();
    let figures = Figures {
        fps: (f1 - f0) as f64 / wall,
        damage_fps: (d1 - d0) as f64 / wall,
        client_cpu: (cpu1 - cpu0).as_secs_f64() / wall * 100.0,
        server_cpu: server_pid
            .zip(server0)
            .map(|(pid, c0)| (cpu_time(pid) - c0).as_secs_f64() / wall * 100.0),
        size,
    };
    let _ = Command::new("import")
        .args(["-window", "root"])
        .arg(common::output_dir().join(format!("bench-console-{label}-{scaling}.png")))
        .env("DISPLAY", &desktop.display)
        .status();
    app.stop();
    sleep(Duration::from_millis(300));
    figures
}

/// Runs gvncviewer on `address` (host:display) at 1:1 and counts its frames for `seconds`.
fn measure_gvnc(
    label: &str,
    desktop: &Desktop,
    address: &str,
    server_pid: Option<u32>,
    seconds: u64,
) -> Figures {
    let viewer = Owned(
        Command::new("gvncviewer")
            .arg(address)
            .env("DISPLAY", &desktop.display)
            .env("GDK_BACKEND", "x11")
            .env("NO_AT_BRIDGE", "1")
            .stdout(Stdio::null())
            .stderr(
                std::fs::File::create(common::output_dir().join(format!("bench-gvnc-{label}.log")))
                    .map_or(Stdio::null(), Stdio::from),
            )
            .spawn()
            .expect("gvncviewer (package gvncviewer) is installed"),
    );
    let mut viewer = viewer;
    let pid = viewer.0.id();
    let start = Instant::now();
    let search = |how: &[&str]| {
        let out = Command::new("xdotool")
            .arg("search")
            .args(how)
            .env("DISPLAY", &desktop.display)
            .output()
            .expect("xdotool runs");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .map(str::to_owned)
    };
    let window = loop {
        // By its pid, or by its class when the window has no _NET_WM_PID yet.
        let pid_text = pid.to_string();
        if let Some(w) = search(&["--onlyvisible", "--pid", &pid_text])
            .or_else(|| search(&["--onlyvisible", "--class", "gvncviewer"]))
        {
            break w;
        }
        if let Ok(Some(status)) = viewer.0.try_wait() {
            panic!("gvncviewer {address} ended: {status} (see bench-gvnc-{label}.log)");
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "gvncviewer showed no window (see bench-gvnc-{label}.log)"
        );
        sleep(Duration::from_millis(200));
    };
    let _ = Command::new("xdotool")
        .args(["windowmove", &window, "0", "0"])
        .env("DISPLAY", &desktop.display)
        .status();
    let damage = damage::DamageCounter::start(&desktop.display, &window)
        .expect("the X server (Xvfb) has the DAMAGE extension");
    sleep(Duration::from_secs(4));
    let (d0, c0, s0, t0) = (
        damage.count(),
        cpu_time(pid),
        server_pid.map(cpu_time),
        Instant::now(),
    );
    sleep(Duration::from_secs(seconds));
    let (d1, c1, wall) = (damage.count(), cpu_time(pid), t0.elapsed().as_secs_f64());
    let figures = Figures {
        fps: f64::NAN,
        damage_fps: (d1 - d0) as f64 / wall,
        client_cpu: (c1 - c0).as_secs_f64() / wall * 100.0,
        server_cpu: server_pid
            .zip(s0)
            .map(|(p, c)| (cpu_time(p) - c).as_secs_f64() / wall * 100.0),
        size: "1:1".to_owned(),
    };
    let _ = Command::new("import")
        .args(["-window", "root"])
        .arg(common::output_dir().join(format!("bench-console-{label}-gvncviewer.png")))
        .env("DISPLAY", &desktop.display)
        .status();
    drop(damage);
    drop(viewer);
    sleep(Duration::from_millis(300));
    figures
}

/// A free loopback port of VNC display N (5900 + N), as gvncviewer takes host:N.
fn display_port() -> (TcpListener, u16) {
    let base = 100 + (std::process::id() % 700) as u16;
    (base..base + 200)
        .find_map(|n| {
            TcpListener::bind(("127.0.0.1", 5900 + n))
                .ok()
                .map(|l| (l, n))
        })
        .expect("a free loopback port above 5999")
}

/// Relays TCP connections on a loopback display port to a unix socket (gvncviewer speaks TCP
/// only); returns the display number.
fn relay(socket: std::path::PathBuf) -> u16 {
    let (listener, display) = display_port();
    std::thread::spawn(move || {
        for tcp in listener.incoming().flatten() {
            let Ok(unix) = UnixStream::connect(&socket) else {
                continue;
            };
            let _ = tcp.set_nodelay(true);
            let (Ok(mut t2), Ok(mut u2)) = (tcp.try_clone(), unix.try_clone()) else {
                continue;
            };
            let (mut t1, mut u1): (TcpStream, UnixStream) = (tcp, unix);
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut t1, &mut u1);
                let _ = u1.shutdown(std::net::Shutdown::Write);
            });
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut u2, &mut t2);
                let _ = t2.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    display
}

/// The VNC socket of a running machine, found in its run directory.
fn vnc_socket(h: &Home, name: &str) -> std::path::PathBuf {
    let dir = h.root.join(format!("r/vireo/{name}"));
    let found = std::fs::read_dir(&dir).ok().and_then(|entries| {
        entries.flatten().map(|e| e.path()).find(|p| {
            use std::os::unix::fs::FileTypeExt;
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().contains("vnc"))
                && std::fs::metadata(p).is_ok_and(|m| m.file_type().is_socket())
        })
    });
    found.unwrap_or_else(|| panic!("no VNC socket in {}", dir.display()))
}

fn vmm_pid(h: &Home, name: &str) -> Option<u32> {
    let state = std::fs::read_to_string(h.root.join(format!("r/vireo/{name}/state.json"))).ok()?;
    let value: serde_json::Value = serde_json::from_str(&state).ok()?;
    value.get("vmm_pid")?.as_u64().map(|p| p as u32)
}

fn main() {
    let seconds: u64 = std::env::var("VIREO_BENCH_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10)
        .max(2);
    let desktop = Desktop::start("bench-console");

    // Our server: a tiny animating guest on vireo-vmm.
    let h = Home::new("bfps");
    let vmm = vireoctl_support::vmm();
    let kernel = h.file("anim.elf", &guest::pvh_elf(&animator()));
    let devices = "    <graphics type='vnc'>\n      <listen type='none'/>\n    </graphics>\n    <video>\n      <model type='vga'>\n        <resolution x='1280' y='800'/>\n      </model>\n    </video>\n";
    let xml = domain_xml("anim", &kernel, devices, ("destroy", "restart", "destroy")).replace(
        "<memory unit='KiB'>16384</memory>",
        "<memory unit='MiB'>64</memory>",
    );
    let file = h.file("anim.xml", xml.as_bytes());
    h.ok(&["define", file.to_str().unwrap()]);
    h.ok(&["start", "anim"]);
    let vireoctl = vireoctl_support::vireoctl().display().to_string();
    let vmm_path = vmm.display().to_string();
    let mut rows = Vec::new();
    for scaling in ["fit", "actual"] {
        let figures = measure(
            "vireo-vmm",
            scaling,
            &desktop,
            &h.root,
            &[("VIREO_SUPERVISOR", &vireoctl), ("VIREO_VMM", &vmm_path)],
            "anim – Console",
            || activate_win(&desktop, "machine-console", Some("'anim'")),
            vmm_pid(&h, "anim"),
            seconds,
        );
        rows.push(("vireo-vmm: vireo", scaling, figures));
    }
    let port = relay(vnc_socket(&h, "anim"));
    let figures = measure_gvnc(
        "vireo-vmm",
        &desktop,
        &format!("127.0.0.1:{port}"),
        vmm_pid(&h, "anim"),
        seconds,
    );
    rows.push(("vireo-vmm: gvncviewer", "1:1", figures));
    h.ok(&["destroy", "anim"]);

    // The reference: Xtigervnc with an animation.
    let dir = scratch_dir("bench-console-tiger");
    let sock = dir.join("t.sock");
    let base = dir.join("plasma.png");
    let made = Command::new("convert")
        .args(["-size", "1280x800", "plasma:fractal"])
        .arg(&base)
        .status()
        .expect("ImageMagick convert runs");
    assert!(made.success());
    let mut frames = Vec::new();
    for i in 0..16 {
        let frame = dir.join(format!("f{i:02}.png"));
        let ok = Command::new("convert")
            .arg(&base)
            .args(["-roll", &format!("+{}+0", i * 80)])
            .arg(&frame)
            .status()
            .expect("convert runs");
        assert!(ok.success());
        frames.push(frame);
    }
    let display = format!(":{}", 600 + std::process::id() % 200);
    let tiger_display = display_port().1;
    let tiger = Owned(
        Command::new("Xtigervnc")
            .args([
                &display,
                "-geometry",
                "1280x800",
                "-depth",
                "24",
                "-rfbport",
                &(5900 + tiger_display).to_string(),
                "-localhost",
            ])
            .args(["-SecurityTypes", "None", "-rfbunixpath"])
            .arg(&sock)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("Xtigervnc (tigervnc-standalone-server) is installed"),
    );
    let start = Instant::now();
    while !sock.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "Xtigervnc made no socket"
        );
        sleep(Duration::from_millis(100));
    }
    let _animation = Owned(
        Command::new("animate")
            .args(["-display", &display, "-delay", "3", "-geometry", "+0+0"])
            .args(&frames)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("ImageMagick animate runs"),
    );
    sleep(Duration::from_secs(3));
    let reference_root = scratch_dir("bench-console-client");
    let sock_text = sock.display().to_string();
    for scaling in ["fit", "actual"] {
        let figures = measure(
            "xtigervnc",
            scaling,
            &desktop,
            &reference_root,
            &[],
            &format!("{sock_text} – Console"),
            || activate_win(&desktop, "open-vnc", Some(&format!("'{sock_text}'"))),
            Some(tiger.0.id()),
            seconds,
        );
        rows.push(("Xtigervnc: vireo", scaling, figures));
    }
    let figures = measure_gvnc(
        "xtigervnc",
        &desktop,
        &format!("127.0.0.1:{tiger_display}"),
        Some(tiger.0.id()),
        seconds,
    );
    rows.push(("Xtigervnc: gvncviewer", "1:1", figures));

    println!(
        "console at 1280x800, {seconds} s each (vireo: cairo renderer on Xvfb, release build; \
         gvncviewer: GTK 3 on the same Xvfb)"
    );
    println!(
        "{:<24} {:>7} {:>8} {:>11} {:>8} {:>11} {:>9} {:>9}",
        "server: viewer", "scaling", "fps", "damage fps", "CPU %", "CPU ms/fr", "server %", "size"
    );
    let per_frame = |f: &Figures| f.client_cpu * 10.0 / f.damage_fps.max(0.1);
    for (name, scaling, f) in &rows {
        println!(
            "{name:<24} {scaling:>7} {:>8.1} {:>11.1} {:>8.0} {:>11.1} {:>9} {:>9}",
            f.fps,
            f.damage_fps,
            f.client_cpu,
            per_frame(f),
            f.server_cpu.map_or("?".to_owned(), |c| format!("{c:.0}")),
            f.size
        );
    }
    for server in ["vireo-vmm", "Xtigervnc"] {
        let find = |viewer: &str, scaling: &str| {
            rows.iter()
                .find(|(n, s, _)| *n == format!("{server}: {viewer}") && *s == scaling)
                .map(|(_, _, f)| f)
        };
        if let (Some(v), Some(g)) = (find("vireo", "actual"), find("gvncviewer", "1:1")) {
            println!(
                "{server}, 1:1: vireo/gvncviewer fps (damage) {:.2}x, CPU per frame {:.2}x",
                v.damage_fps / g.damage_fps.max(0.1),
                per_frame(v) / per_frame(g).max(0.01)
            );
        }
    }
    println!(
        "fps: the console's own count of presented frames; damage fps: frames counted from \
         outside by X DAMAGE on the window (the only count for gvncviewer). fit: the 1280x753 \
         picture area shows the screen at 0.94; actual and 1:1: unscaled. Server CPU for \
         vireo-vmm includes the guest's vCPU drawing without pause."
    );
}
