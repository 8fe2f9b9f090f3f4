//! Vireo's built-in VNC (RFB 3.3/3.7/3.8) server.
//!
//! The server knows nothing of KVM. It reads pixels from a [`FramebufferSource`] (the guest's
//! dirty-logged framebuffer in the VMM, a plain buffer in tests and benches) and hands keys and
//! pointer events to an [`InputSink`] (the i8042 keyboard and, once it exists, the virtio
//! tablet). See [`server::start`] for the threads it runs and how a slow client is handled.
//!
//! # Connecting (for users and the help pages)
//!
//! Each running machine with a display serves its screen on a unix socket readable only by
//! its owner (mode 0600), and optionally on a loopback TCP port (127.0.0.1) protected by a
//! VNC password. Any VNC viewer works:
//!
//! ```text
//! xtigervncviewer /run/user/1000/vireo/NAME/vnc.sock     # TigerVNC, unix socket
//! vncdo -s /run/.../vnc.sock capture screen.png          # vncdotool
//! gvncviewer 127.0.0.1:N                                  # TCP port 5900+N, password asked
//! ```
//!
//! With a password, a wrong one is answered only after a delay (1 s, doubling with each
//! further failure up to 16 s, reset by a right one), and a connection has one try. A
//! connection must finish its handshake within 30 s; at most four may be at it at once on
//! each of the socket and the port, so nobody flooding the port keeps the socket's owner out.
//!
//! The machine's control socket answers `screendump` (`{"filename": "/abs/path.png"}`) and
//! `vnc-info` (socket path, port, auth, size, connected clients) and emits
//! `resolution-changed`, `vnc-connected` and `vnc-disconnected` events.
//!
//! Keys are sent to the guest as a US PC keyboard would type them; viewers that send raw key
//! codes (QEMU's extension, e.g. gtk-vnc) bypass the layout. The pointer reaches the guest
//! only when the machine has a virtio tablet; without one, pointer events are dropped.
//! Everything is lossless: Raw, CopyRect (scrolling), ZRLE and Tight without JPEG.

mod admission;
pub mod auth;
mod client;
pub mod dirty;
pub mod encodings;
pub mod guest;
pub mod keymap;
pub mod pixel;
pub mod proto;
pub mod screendump;
pub mod server;
pub mod session;
pub mod synthetic;

use std::sync::RwLock;

pub use keymap::XtKey;
pub use server::{start, SharePolicy, VncConfig, VncInfo, VncServer};

/// Where the server gets the guest's pixels.
///
/// Pixels are 32-bit xRGB8888: red in bits 16..24, green 8..16, blue 0..8, the top byte
/// ignored (exactly what screen_info announces to the guest).
pub trait FramebufferSource: Send + Sync {
    /// Current size in pixels. A change is reported to clients as a desktop resize.
    fn size(&self) -> (u32, u32);

    /// Sets `rows[y] = true` for each row that may have changed since the previous call.
    /// A superset is fine (the server compares against its shadow copy); missing a row is not.
    /// `rows.len()` is the height last returned by [`size`](Self::size).
    fn take_dirty_rows(&self, rows: &mut [bool]);

    /// Copies `out.len()` pixels of row `y` starting at column `x`. Pixels outside the
    /// framebuffer read as 0.
    fn read_pixels(&self, x: u32, y: u32, out: &mut [u32]);
}

/// An absolute pointer event, with the framebuffer size it refers to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PointerEvent {
    pub x: u16,
    pub y: u16,
    /// RFB button mask: bit 0 left, 1 middle, 2 right, 3/4 wheel up/down, 5/6 wheel left/right.
    pub buttons: u8,
    pub width: u16,
    pub height: u16,
}

/// Where input from clients goes.
pub trait InputSink: Send + Sync {
    /// One key press or release as a set-1 scancode (see [`XtKey::bytes`]).
    fn key(&self, key: XtKey, down: bool);
    /// An absolute pointer position and button state.
    fn pointer(&self, event: PointerEvent);
    /// The guest keyboard's LEDs (bit 0 Scroll, 1 Num, 2 Caps Lock), if known; polled on
    /// each refresh tick.
    fn leds(&self) -> Option<u8> {
        None
    }
}

/// Things the server reports to the VMM (for the control socket's event stream).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VncEvent {
    /// The framebuffer changed size (the guest switched modes).
    Resized {
        width: u32,
        height: u32,
    },
    ClientConnected {
        id: u64,
        peer: String,
    },
    ClientDisconnected {
        id: u64,
        reason: String,
    },
}

/// A framebuffer in plain memory, for tests, benches and the demo server.
pub struct MemFramebuffer {
    inner: RwLock<MemInner>,
}

struct MemInner {
    width: u32,
    height: u32,
    pixels: Vec<u32>,
    dirty: Vec<bool>,
}

impl MemFramebuffer {
    pub fn new(width: u32, height: u32) -> MemFramebuffer {
        let n = width as usize * height as usize;
        MemFramebuffer {
            inner: RwLock::new(MemInner {
                width,
                height,
                pixels: vec![0; n],
                dirty: vec![true; height as usize],
            }),
        }
    }

    /// Runs `f` on the pixels (row-major, `width` per row) and marks every row dirty.
    pub fn update<R>(&self, f: impl FnOnce(&mut [u32], u32, u32) -> R) -> R {
        let mut g = self.inner.write().unwrap_or_else(|e| e.into_inner());
        let (w, h) = (g.width, g.height);
        let r = f(&mut g.pixels, w, h);
        g.dirty.iter_mut().for_each(|d| *d = true);
        r
    }

    /// Fills a rectangle (clipped) and marks its rows dirty.
    pub fn fill_rect(&self, x: u32, y: u32, w: u32, h: u32, colour: u32) {
        let mut g = self.inner.write().unwrap_or_else(|e| e.into_inner());
        let (fw, fh) = (g.width, g.height);
        let x1 = x.saturating_add(w).min(fw);
        let y1 = y.saturating_add(h).min(fh);
        for yy in y.min(fh)..y1 {
            let row = yy as usize * fw as usize;
            g.pixels[row + x.min(fw) as usize..row + x1 as usize].fill(colour);
            g.dirty[yy as usize] = true;
        }
    }

    /// Changes the size; contents become black.
    pub fn resize(&self, width: u32, height: u32) {
        let mut g = self.inner.write().unwrap_or_else(|e| e.into_inner());
        *g = MemInner {
            width,
            height,
            pixels: vec![0; width as usize * height as usize],
            dirty: vec![true; height as usize],
        };
    }

    /// A copy of all pixels.
    pub fn snapshot(&self) -> (u32, u32, Vec<u32>) {
        let g = self.inner.read().unwrap_or_else(|e| e.into_inner());
        (g.width, g.height, g.pixels.clone())
    }
}

impl FramebufferSource for MemFramebuffer {
    fn size(&self) -> (u32, u32) {
        let g = self.inner.read().unwrap_or_else(|e| e.into_inner());
        (g.width, g.height)
    }

    fn take_dirty_rows(&self, rows: &mut [bool]) {
        let mut g = self.inner.write().unwrap_or_else(|e| e.into_inner());
        for (out, d) in rows.iter_mut().zip(g.dirty.iter_mut()) {
            *out |= *d;
            *d = false;
        }
    }

    fn read_pixels(&self, x: u32, y: u32, out: &mut [u32]) {
        let g = self.inner.read().unwrap_or_else(|e| e.into_inner());
        out.fill(0);
        if y >= g.height || x >= g.width {
            return;
        }
        let start = y as usize * g.width as usize + x as usize;
        let n = out.len().min((g.width - x) as usize);
        out[..n].copy_from_slice(&g.pixels[start..start + n]);
    }
}

/// An [`InputSink`] that drops everything (a server with no guest behind it).
pub struct NullInput;

impl InputSink for NullInput {
    fn key(&self, _key: XtKey, _down: bool) {}
    fn pointer(&self, _event: PointerEvent) {}
}
