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
//! Figures are printed side by side; nothing is asserted.
//!
//! Run: `cargo build --release -p vireo-vmm && cargo bench -p vireo --bench console_fps`
//! (VIREO_BENCH_SECONDS=N measures N seconds per server, default 10).

#[path = "../../tests/common/mod.rs"]
mod common;
mod support;
#[path = "../../tests/vireoctl_support/mod.rs"]
mod vireoctl_support;

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
    let (f0, _) = parse(&line0);
    let until = t0 + Duration::from_secs(seconds);
    let (mut t1, mut f1, mut size) = (t0, f0, String::new());
    while t1 < until {
        let (at, line) = app.wait_line("vireo-trace: console-frames", Duration::from_secs(10));
        let (frames, s) = parse(&line);
        (t1, f1, size) = (at, frames, s);
    }
    let cpu1 = cpu_time(app.child.id());
    let wall = (t1 - t0).as_secs_f64();
    let figures = Figures {
        fps: (f1 - f0) as f64 / wall,
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
        rows.push(("vireo-vmm, tiny guest redrawing", scaling, figures));
    }
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
    let tiger = Owned(
        Command::new("Xtigervnc")
            .args([
                &display,
                "-geometry",
                "1280x800",
                "-depth",
                "24",
                "-rfbport",
                "0",
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
        rows.push(("Xtigervnc 1.12, animate", scaling, figures));
    }

    println!("console at 1280x800, {seconds} s each (cairo renderer on Xvfb, release build)");
    println!(
        "{:<34} {:>8} {:>8} {:>14} {:>14} {:>10}",
        "server", "scaling", "fps", "vireo CPU %", "server CPU %", "size"
    );
    for (name, scaling, f) in rows {
        println!(
            "{name:<34} {scaling:>8} {:>8.1} {:>14.0} {:>14} {:>10}",
            f.fps,
            f.client_cpu,
            f.server_cpu.map_or("?".to_owned(), |c| format!("{c:.0}")),
            f.size
        );
    }
    println!(
        "fit: the 1280x753 picture area shows the screen at 0.94; actual: 1:1 in a scroller. \
         The vireo-vmm figure includes the guest's vCPU drawing without pause."
    );
}
