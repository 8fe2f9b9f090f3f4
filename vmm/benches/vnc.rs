//! VNC server benchmark, side by side with QEMU's and Xtigervnc's servers, all measured with
//! the same client (vnc-rs, the GUI's client) over unix sockets.
//!
//! For each server, content (text-like desktop, noise) and encoding: full-frame updates per
//! second at 1280x800 (FullRefresh, wait until the whole area arrived, repeat), bytes per
//! frame, server CPU per frame (from /proc/PID/stat), and idle bytes per second (an
//! incremental request on a static screen, counted for 2 s). Prints figures; asserts nothing.
//!
//! Run: `cargo bench -p vireo-vmm --bench vnc` (about 2 minutes). QEMU and Xtigervnc rows
//! appear when `qemu-system-x86_64`, `Xtigervnc` and ImageMagick's `display` are installed.

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::UnixStream;
use vireo_vmm::vnc as vv;
use vnc::{PixelFormat, VncConnector, VncEncoding, VncEvent, X11Event};
use vv::{synthetic, MemFramebuffer, NullInput, VncConfig};

const W: u32 = 1280;
const H: u32 = 800;
const FRAMES: usize = 20;

/// A stream that counts the bytes read from it.
struct Counting<S> {
    inner: S,
    read: Arc<AtomicU64>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Counting<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counting<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// utime + stime of a process, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return f64::NAN;
    };
    // Fields after the ")" of the command name: state is field 3; utime 14, stime 15.
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return f64::NAN;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f
        .get(11)
        .and_then(|u| u.parse::<f64>().ok())
        .zip(f.get(12).and_then(|s| s.parse::<f64>().ok()))
        .map(|(u, s)| u + s)
        .unwrap_or(f64::NAN);
    // SAFETY: sysconf has no memory-safety preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    ticks / hz
}

struct Row {
    fps: f64,
    bytes: f64,
    cpu_ms: f64,
    idle: f64,
    size: (u32, u32),
}

fn area(ev: &VncEvent) -> u64 {
    match ev {
        VncEvent::RawImage(r, _) | VncEvent::JpegImage(r, _) | VncEvent::Copy(r, _) => {
            u64::from(r.width) * u64::from(r.height)
        }
        _ => 0,
    }
}

async fn measure(sock: &Path, enc: VncEncoding, pid: u32) -> Result<Row, String> {
    let s = UnixStream::connect(sock)
        .await
        .map_err(|e| format!("connect {}: {e}", sock.display()))?;
    let read = Arc::new(AtomicU64::new(0));
    let client = VncConnector::new(Counting {
        inner: s,
        read: read.clone(),
    })
    .set_auth_method(async { Ok(String::new()) })
    .allow_shared(true)
    .set_pixel_format(PixelFormat::bgra())
    .add_encoding(enc)
    .add_encoding(VncEncoding::DesktopSizePseudo)
    .build()
    .map_err(|e| e.to_string())?
    .try_start()
    .await
    .map_err(|e| e.to_string())?
    .finish()
    .map_err(|e| e.to_string())?;
    let mut size = (0u32, 0u32);
    // First the resolution, then one warm-up frame.
    let deadline = Instant::now() + Duration::from_secs(10);
    while size == (0, 0) {
        match tokio::time::timeout(Duration::from_secs(10), client.recv_event()).await {
            Ok(Ok(VncEvent::SetResolution(s))) => size = (u32::from(s.width), u32::from(s.height)),
            Ok(Ok(_)) => {}
            _ => return Err("no resolution".into()),
        }
        if Instant::now() > deadline {
            return Err("no resolution".into());
        }
    }
    let full = u64::from(size.0) * u64::from(size.1);
    let frame = |client: &vnc::VncClient| {
        let client = client.clone();
        async move {
            client
                .input(X11Event::FullRefresh)
                .await
                .map_err(|e| e.to_string())?;
            let mut got = 0;
            while got < full {
                let ev = tokio::time::timeout(Duration::from_secs(20), client.recv_event())
                    .await
                    .map_err(|_| "frame timeout".to_string())?
                    .map_err(|e| e.to_string())?;
                if let VncEvent::Error(e) = &ev {
                    return Err(e.clone());
                }
                got += area(&ev);
            }
            Ok::<(), String>(())
        }
    };
    frame(&client).await?;
    let b0 = read.load(Ordering::Relaxed);
    let c0 = cpu_seconds(pid);
    let t0 = Instant::now();
    for _ in 0..FRAMES {
        frame(&client).await?;
    }
    let dt = t0.elapsed().as_secs_f64();
    let cpu = cpu_seconds(pid) - c0;
    let bytes = (read.load(Ordering::Relaxed) - b0) as f64 / FRAMES as f64;
    // Idle: one incremental request on a static screen, then count for 2 s.
    client
        .input(X11Event::Refresh)
        .await
        .map_err(|e| e.to_string())?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let i0 = read.load(Ordering::Relaxed);
    let end = tokio::time::Instant::now() + Duration::from_secs(2);
    while let Ok(Ok(_)) = tokio::time::timeout_at(end, client.recv_event()).await {
        let _ = client.input(X11Event::Refresh).await;
    }
    let idle = (read.load(Ordering::Relaxed) - i0) as f64 / 2.0;
    let _ = client.close().await;
    Ok(Row {
        fps: FRAMES as f64 / dt,
        bytes,
        cpu_ms: cpu * 1000.0 / FRAMES as f64,
        idle,
        size,
    })
}

fn paint(fb: &MemFramebuffer, content: &str) {
    fb.update(|px, w, h| match content {
        "noise" => synthetic::noise(px, 3),
        _ => synthetic::text_like(px, w as usize, h as usize, 3),
    });
}

/// `--serve SOCKET CONTENT`: our server in its own process, so its CPU can be measured
/// apart from the client's.
fn serve(sock: &str, content: &str) {
    let fb = Arc::new(MemFramebuffer::new(W, H));
    paint(&fb, content);
    let cfg = VncConfig {
        unix_path: Some(PathBuf::from(sock)),
        ..VncConfig::default()
    };
    let _server = match vv::start(cfg, fb, Arc::new(NullInput), None) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("serve: {e}");
            std::process::exit(1);
        }
    };
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

struct Guard(Vec<Child>);
impl Drop for Guard {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn wait_for(path: &Path) -> bool {
    for _ in 0..200 {
        if path.exists() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

fn have(cmd: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {cmd} >/dev/null")])
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

fn print_row(server: &str, content: &str, enc: &str, r: Result<Row, String>) {
    match r {
        Ok(r) => println!(
            "{server:<10} {content:<6} {enc:<6} {:>4}x{:<4} {:>8.1} {:>12.0} {:>10.2} {:>10.0}",
            r.size.0, r.size.1, r.fps, r.bytes, r.cpu_ms, r.idle
        ),
        Err(e) => println!("{server:<10} {content:<6} {enc:<6} failed: {e}"),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--serve") {
        serve(&args[2], &args[3]);
        return;
    }
    let dir = std::env::temp_dir().join(format!("vireo-vnc-bench-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let encodings = [
        ("Raw", VncEncoding::Raw),
        ("ZRLE", VncEncoding::Zrle),
        ("Tight", VncEncoding::Tight),
    ];
    println!("VNC benchmark: {FRAMES} full-frame updates per row, vnc-rs client, unix sockets");
    println!(
        "{:<10} {:<6} {:<6} {:>9} {:>8} {:>12} {:>10} {:>10}",
        "server", "content", "enc", "size", "fps", "bytes/frame", "cpu ms/fr", "idle B/s"
    );
    let me = std::env::current_exe().expect("own path");
    for content in ["text", "noise"] {
        // Ours, in a child process.
        let sock = dir.join(format!("vireo-{content}.sock"));
        let child = Command::new(&me)
            .args(["--serve", &sock.to_string_lossy(), content])
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn our server");
        let pid = child.id();
        let _g = Guard(vec![child]);
        if !wait_for(&sock) {
            println!("vireo      {content}: server did not start");
            continue;
        }
        for (name, enc) in encodings {
            print_row(
                "vireo",
                content,
                name,
                rt.block_on(measure(&sock, enc, pid)),
            );
        }

        // Xtigervnc showing the same picture as its root window.
        if have("Xtigervnc") && have("display") {
            let png = dir.join(format!("{content}.png"));
            let fb = MemFramebuffer::new(W, H);
            paint(&fb, content);
            if let Err(e) = vv::screendump::write_png(&fb, &png) {
                println!("xtigervnc: cannot write {}: {e}", png.display());
                continue;
            }
            let xsock = dir.join(format!("xtigervnc-{content}.sock"));
            let x = Command::new("Xtigervnc")
                .args([
                    ":57",
                    "-geometry",
                    "1280x800",
                    "-depth",
                    "24",
                    "-SecurityTypes",
                    "None",
                ])
                .arg("-rfbunixpath")
                .arg(&xsock)
                .args(["-rfbport", "-1", "-AlwaysShared"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn();
            let Ok(x) = x else {
                println!("xtigervnc: cannot start");
                continue;
            };
            let xpid = x.id();
            let mut g = Guard(vec![x]);
            if !wait_for(&xsock) {
                println!("xtigervnc: socket did not appear");
                continue;
            }
            if let Ok(d) = Command::new("display")
                .args(["-display", ":57", "-window", "root"])
                .arg(&png)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
            {
                g.0.push(d);
            }
            std::thread::sleep(Duration::from_secs(2));
            for (name, enc) in encodings {
                print_row(
                    "xtigervnc",
                    content,
                    name,
                    rt.block_on(measure(&xsock, enc, xpid)),
                );
            }
        }
    }
    // QEMU: no guest, so SeaBIOS's text screen ("No bootable device"), 720x400; figures are
    // for that screen, not comparable byte for byte, but show its refresh pacing.
    if have("qemu-system-x86_64") {
        let qsock = dir.join("qemu.sock");
        let q = Command::new("qemu-system-x86_64")
            .args([
                "-display",
                "none",
                "-vga",
                "std",
                "-m",
                "64",
                "-nodefaults",
                "-vga",
                "std",
            ])
            .arg("-vnc")
            .arg(format!("unix:{}", qsock.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        if let Ok(q) = q {
            let qpid = q.id();
            let _g = Guard(vec![q]);
            if wait_for(&qsock) {
                std::thread::sleep(Duration::from_secs(3));
                for (name, enc) in encodings {
                    print_row(
                        "qemu",
                        "bios",
                        name,
                        rt.block_on(measure(&qsock, enc, qpid)),
                    );
                }
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
