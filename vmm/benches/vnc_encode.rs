//! The VNC encoders alone, without sockets or a client: milliseconds and bytes per full
//! 1280x800 frame for Raw, ZRLE and Tight at each zlib level, on a text-like screen, noise and
//! a photo-like gradient. This is where zlib levels and tile loops are chosen; the `vnc` bench
//! measures the whole path against the peers.
//!
//! Run: `cargo bench -p vireo-vmm --bench vnc_encode [LEVELS]` (LEVELS like `1,3,6`; default
//! 0 to 6). Prints figures; asserts nothing.

use std::time::Instant;

use vireo_vmm::vnc::dirty::Frame;
use vireo_vmm::vnc::encodings::{raw, tight::TightEncoder, zrle::ZrleEncoder};
use vireo_vmm::vnc::pixel::{PixelFormat, PixelWriter};
use vireo_vmm::vnc::proto::Rect;
use vireo_vmm::vnc::synthetic;

const W: usize = 1280;
const H: usize = 800;
const FRAMES: usize = 10;

/// A smooth gradient with a little noise, like a photo: compressible, but not by much.
fn photo(px: &mut [u32]) {
    let mut rng = synthetic::Rng::new(7);
    for (i, p) in px.iter_mut().enumerate() {
        let (x, y) = ((i % W) as u32, (i / W) as u32);
        let n = (rng.next_u64() & 7) as u32;
        let r = (x * 255 / W as u32 + n).min(255);
        let g = (y * 255 / H as u32 + n).min(255);
        let b = ((x + y) * 255 / (W + H) as u32 + n).min(255);
        *p = (r << 16) | (g << 8) | b;
    }
}

/// Encodes FRAMES full frames after one warm-up; returns (ms per frame, bytes per frame).
fn time(mut encode: impl FnMut(&mut Vec<u8>)) -> (f64, f64) {
    let mut out = Vec::new();
    encode(&mut out);
    let mut bytes = 0usize;
    let t0 = Instant::now();
    for _ in 0..FRAMES {
        out.clear();
        encode(&mut out);
        bytes += out.len();
    }
    (
        t0.elapsed().as_secs_f64() * 1000.0 / FRAMES as f64,
        bytes as f64 / FRAMES as f64,
    )
}

fn main() {
    let levels: Vec<u32> = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .map(|a| a.split(',').filter_map(|l| l.parse().ok()).collect())
        .unwrap_or_else(|| (0..=6).collect());
    let pw = PixelWriter::new(PixelFormat::NATIVE);
    let r = Rect {
        x: 0,
        y: 0,
        w: W as u16,
        h: H as u16,
    };
    println!("VNC encoders: {FRAMES} full {W}x{H} frames each, one core");
    println!(
        "{:<6} {:<6} {:>5} {:>10} {:>12}",
        "content", "enc", "level", "ms/frame", "bytes/frame"
    );
    for content in ["text", "noise", "photo"] {
        let mut px = vec![0u32; W * H];
        match content {
            "text" => synthetic::text_like(&mut px, W, H, 3),
            "noise" => synthetic::noise(&mut px, 3),
            _ => photo(&mut px),
        }
        let fb = Frame {
            pixels: &px,
            width: W,
            height: H,
        };
        let (ms, b) = time(|out| raw::encode(&pw, &fb, r, out));
        println!("{content:<6} {:<6} {:>5} {ms:>10.2} {b:>12.0}", "Raw", "-");
        for &level in &levels {
            let mut z = ZrleEncoder::new(level);
            let (ms, b) = time(|out| z.encode(&pw, &fb, r, out));
            println!("{content:<6} {:<6} {level:>5} {ms:>10.2} {b:>12.0}", "ZRLE");
        }
        for &level in &levels {
            let mut t = TightEncoder::new(level);
            let (ms, b) = time(|out| {
                t.encode(&pw, &fb, r, out);
            });
            println!(
                "{content:<6} {:<6} {level:>5} {ms:>10.2} {b:>12.0}",
                "Tight"
            );
        }
    }
}
