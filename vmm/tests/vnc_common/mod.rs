//! Shared by the vnc_* integration tests: a server over a synthetic framebuffer, an input
//! sink that records what reaches the "guest", and small helpers.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use vireo_vmm::vnc::{self, synthetic, MemFramebuffer, PointerEvent, VncConfig, VncServer, XtKey};

/// Everything the server sent to the guest side.
#[derive(Default)]
pub struct Recorder {
    pub keys: Mutex<Vec<(XtKey, bool)>>,
    pub pointer: Mutex<Vec<PointerEvent>>,
}

impl vnc::InputSink for Recorder {
    fn key(&self, key: XtKey, down: bool) {
        self.keys.lock().unwrap().push((key, down));
    }
    fn pointer(&self, event: PointerEvent) {
        self.pointer.lock().unwrap().push(event);
    }
}

impl Recorder {
    /// The set-1 byte stream the guest's keyboard would have produced.
    pub fn scancode_bytes(&self) -> Vec<u8> {
        self.keys
            .lock()
            .unwrap()
            .iter()
            .flat_map(|(k, d)| k.bytes(*d))
            .collect()
    }

    pub fn wait_keys(&self, n: usize, timeout: Duration) -> Vec<(XtKey, bool)> {
        let end = Instant::now() + timeout;
        loop {
            let k = self.keys.lock().unwrap().clone();
            if k.len() >= n || Instant::now() > end {
                return k;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Test content: a text-like desktop with a noise block and a gradient strip, so every
/// subencoding (fill, mono, palette, RLE, full colour) gets used.
pub fn paint(px: &mut [u32], w: u32, h: u32, seed: u64) {
    let (w, h) = (w as usize, h as usize);
    synthetic::text_like(px, w, h, seed);
    let mut noise = vec![0u32; 200 * 90];
    synthetic::noise(&mut noise, seed ^ 0x55);
    let (nw, nh) = (200.min(w), 90.min(h));
    for y in 0..nh {
        for x in 0..nw {
            px[(h - nh + y) * w + w - nw + x] = noise[y * 200 + x];
        }
    }
    for y in 0..8.min(h) {
        for x in 0..w {
            px[y * w + x] = ((x * 255 / w) as u32) << 8 | (y as u32 * 30);
        }
    }
}

pub struct TestServer {
    pub server: VncServer,
    pub fb: Arc<MemFramebuffer>,
    pub input: Arc<Recorder>,
    pub dir: PathBuf,
    pub socket: PathBuf,
}

pub fn tmpdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "vireo-vnc-{tag}-{}-{}",
        std::process::id(),
        Instant::now().elapsed().as_nanos()
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Starts a server on a fresh unix socket (and loopback TCP if `password` is given).
pub fn start(tag: &str, w: u32, h: u32, password: Option<&str>) -> TestServer {
    let dir = tmpdir(tag);
    let socket = dir.join("vnc.sock");
    let fb = Arc::new(MemFramebuffer::new(w, h));
    fb.update(|px, w, h| paint(px, w, h, 1));
    let input = Arc::new(Recorder::default());
    let config = VncConfig {
        unix_path: Some(socket.clone()),
        tcp: password.map(|_| "127.0.0.1:0".parse().unwrap()),
        password: password.map(str::to_string),
        name: format!("test-{tag}"),
        ..VncConfig::default()
    };
    let server = vnc::start(config, fb.clone(), input.clone(), None).unwrap();
    TestServer {
        server,
        fb,
        input,
        dir,
        socket,
    }
}

impl TestServer {
    pub fn tcp_port(&self) -> u16 {
        self.server.info().tcp.unwrap().port()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Reads an RGB(A) PNG into xRGB pixels.
pub fn read_png(path: &std::path::Path) -> (u32, u32, Vec<u32>) {
    let dec = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
    let mut r = dec.read_info().unwrap();
    let mut buf = vec![0; r.output_buffer_size()];
    let info = r.next_frame(&mut buf).unwrap();
    let bpp = match info.color_type {
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        other => panic!("unexpected PNG colour type {other:?}"),
    };
    assert_eq!(info.bit_depth, png::BitDepth::Eight);
    let px = buf[..info.buffer_size()]
        .chunks_exact(bpp)
        .map(|c| u32::from(c[0]) << 16 | u32::from(c[1]) << 8 | u32::from(c[2]))
        .collect();
    (info.width, info.height, px)
}

/// Number of pixels that differ.
pub fn diff(a: &[u32], b: &[u32]) -> usize {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .filter(|(x, y)| (**x & 0xffffff) != (**y & 0xffffff))
        .count()
}

/// Is `cmd` on PATH?
pub fn have(cmd: &str) -> bool {
    std::process::Command::new("sh")
        .args(["-c", &format!("command -v {cmd}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Fails (never skips) when a required peer is missing, naming the package to install.
pub fn require(cmd: &str, package: &str) {
    assert!(
        have(cmd),
        "{cmd} is not installed; install {package} (tests with real peers must not be skipped)"
    );
}
