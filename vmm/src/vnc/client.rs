//! One connected client: its socket halves, output queue, negotiated state and encoders, and
//! the code that turns its pending tiles into a FramebufferUpdate.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Instant;

use super::dirty::{Shadow, TileMap, TILE};
use super::encodings::copyrect::{self, Scroll};
use super::encodings::pseudo::{self, CursorImage, ResizeReason, ResizeStatus};
use super::encodings::raw;
use super::encodings::tight::TightEncoder;
use super::encodings::zrle::ZrleEncoder;
use super::keymap::KeyTranslator;
use super::pixel::{PixelFormat, PixelWriter};
use super::proto::{encoding, Rect};

/// A client's socket, unix or loopback TCP.
pub(crate) enum Stream {
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl Stream {
    pub fn try_clone(&self) -> std::io::Result<Stream> {
        Ok(match self {
            Stream::Unix(s) => Stream::Unix(s.try_clone()?),
            Stream::Tcp(s) => Stream::Tcp(s.try_clone()?),
        })
    }

    pub fn set_read_timeout(&self, t: Option<std::time::Duration>) -> std::io::Result<()> {
        match self {
            Stream::Unix(s) => s.set_read_timeout(t),
            Stream::Tcp(s) => s.set_read_timeout(t),
        }
    }

    pub fn shutdown(&self) {
        // Already-closed sockets fail here; either way the threads see EOF/EPIPE next.
        let _ = match self {
            Stream::Unix(s) => s.shutdown(Shutdown::Both),
            Stream::Tcp(s) => s.shutdown(Shutdown::Both),
        };
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Unix(s) => s.read(buf),
            Stream::Tcp(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Stream::Unix(s) => s.write(buf),
            Stream::Tcp(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Stream::Unix(s) => s.flush(),
            Stream::Tcp(s) => s.flush(),
        }
    }
}

struct OutQueue {
    bufs: VecDeque<Vec<u8>>,
    /// Written buffers kept for the next update, so a large update does not fault in fresh
    /// pages (4 MB of Raw is a thousand page faults) every time.
    spare: Vec<Vec<u8>>,
    bytes: usize,
    closed: bool,
    last_progress: Instant,
}

/// Bytes waiting for the client's writer thread. Pushing never blocks.
pub(crate) struct Outbox {
    q: Mutex<OutQueue>,
    cv: Condvar,
}

impl Outbox {
    fn new() -> Outbox {
        Outbox {
            q: Mutex::new(OutQueue {
                bufs: VecDeque::new(),
                spare: Vec::new(),
                bytes: 0,
                closed: false,
                last_progress: Instant::now(),
            }),
            cv: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, OutQueue> {
        self.q.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn push(&self, buf: Vec<u8>) {
        if buf.is_empty() {
            return;
        }
        let mut q = self.lock();
        if q.closed {
            return;
        }
        if q.bufs.is_empty() {
            q.last_progress = Instant::now();
        }
        q.bytes += buf.len();
        q.bufs.push_back(buf);
        self.cv.notify_one();
    }

    /// An empty buffer to build output in, with the capacity of one already written if any.
    pub fn buffer(&self) -> Vec<u8> {
        self.lock().spare.pop().unwrap_or_default()
    }

    /// Bytes queued and when the writer last got anything out.
    pub fn backlog(&self) -> (usize, Instant) {
        let q = self.lock();
        (q.bytes, q.last_progress)
    }

    pub fn close(&self) {
        let mut q = self.lock();
        q.closed = true;
        q.bufs.clear();
        q.bytes = 0;
        self.cv.notify_all();
    }

    /// Writer thread body: drains the queue into `stream` until closed or a write fails.
    pub fn run_writer(&self, mut stream: Stream) -> std::io::Result<()> {
        loop {
            let mut buf = {
                let mut q = self.lock();
                loop {
                    if q.closed {
                        return Ok(());
                    }
                    if let Some(b) = q.bufs.pop_front() {
                        break b;
                    }
                    q = self.cv.wait(q).unwrap_or_else(|e| e.into_inner());
                }
            };
            // Write in slices so progress is visible to the stall check while a big
            // update trickles out.
            for part in buf.chunks(256 * 1024) {
                stream.write_all(part)?;
                let mut q = self.lock();
                q.bytes = q.bytes.saturating_sub(part.len());
                q.last_progress = Instant::now();
            }
            buf.clear();
            let mut q = self.lock();
            if q.spare.len() < SPARE_BUFFERS && buf.capacity() <= SPARE_CAPACITY {
                q.spare.push(buf);
            }
        }
    }
}

/// Written buffers kept per client, and the largest kept: enough for an update streamed in
/// [`STREAM_AT`]-sized parts, while a client idle after one huge update holds little.
const SPARE_BUFFERS: usize = 4;
const SPARE_CAPACITY: usize = 2 << 20;
/// An update whose rectangle count is known up front goes to the writer in parts of about
/// this size, so the socket is busy while the rest is encoded.
const STREAM_AT: usize = 256 * 1024;
/// Raw rectangles go out in bands of about this many bytes, the unit of that streaming.
const RAW_BAND: usize = 256 * 1024;

/// Which encodings the client accepts, from its SetEncodings.
#[derive(Clone, Debug, Default)]
pub(crate) struct Prefs {
    pub pixel_encoding: i32,
    pub copy_rect: bool,
    pub desktop_size: bool,
    pub ext_desktop_size: bool,
    pub cursor: bool,
    pub last_rect: bool,
    pub ext_key: bool,
    pub led: bool,
    pub compress_level: Option<u32>,
}

impl Prefs {
    pub fn from_list(list: &[i32]) -> Prefs {
        let mut p = Prefs {
            pixel_encoding: encoding::RAW,
            ..Prefs::default()
        };
        let mut chosen = false;
        for &e in list {
            match e {
                encoding::RAW | encoding::ZRLE | encoding::TIGHT if !chosen => {
                    p.pixel_encoding = e;
                    chosen = true;
                }
                encoding::COPY_RECT => p.copy_rect = true,
                encoding::DESKTOP_SIZE => p.desktop_size = true,
                encoding::EXTENDED_DESKTOP_SIZE => p.ext_desktop_size = true,
                encoding::CURSOR => p.cursor = true,
                encoding::LAST_RECT => p.last_rect = true,
                encoding::QEMU_EXTENDED_KEY_EVENT => p.ext_key = true,
                encoding::QEMU_LED_STATE => p.led = true,
                l @ encoding::COMPRESS_LEVEL_0..=encoding::COMPRESS_LEVEL_9
                    if p.compress_level.is_none() =>
                {
                    p.compress_level = Some((l - encoding::COMPRESS_LEVEL_0) as u32);
                }
                _ => {}
            }
        }
        p
    }
}

/// Why an update could not be built; the client is dropped.
#[derive(Debug, thiserror::Error)]
pub(crate) enum UpdateError {
    #[error("the screen changed to {0}x{1} and the client supports no DesktopSize encoding")]
    CannotResize(usize, usize),
}

/// Negotiated state, guarded by the client's mutex.
pub(crate) struct ClientState {
    pub ready: bool,
    pub pw: PixelWriter,
    pub send_colour_map: bool,
    pub prefs: Prefs,
    pub want_update: bool,
    pub dirty: TileMap,
    /// Framebuffer size as this client knows it.
    pub size: (usize, usize),
    pub ext_key_ack: bool,
    pub cursor_pending: bool,
    pub led_pending: bool,
    pub announce_screen: bool,
    pub resize_reply: bool,
    pub copies: Vec<Scroll>,
    pub keys: KeyTranslator,
    zrle: Option<ZrleEncoder>,
    tight: Option<TightEncoder>,
}

/// Default zlib levels when the client names none, from the vnc_encode bench on a 1280x800
/// text screen (zlib-rs). Tight: level 3 gives 49 KB in about 7 ms, 6 gives 33 KB for up to
/// twice the CPU. ZRLE: 3 gives 34.9 KB, 6 gives 33.7 KB for the same CPU (ZRLE's runs
/// leave zlib little to search). Data zlib cannot shrink is stored whatever the level.
pub(crate) const TIGHT_ZLIB_LEVEL: u32 = 3;
pub(crate) const ZRLE_ZLIB_LEVEL: u32 = 6;

impl ClientState {
    pub fn new(width: usize, height: usize) -> ClientState {
        ClientState {
            ready: false,
            pw: PixelWriter::new(PixelFormat::NATIVE),
            send_colour_map: false,
            prefs: Prefs::from_list(&[]),
            want_update: false,
            dirty: TileMap::new(width, height),
            size: (width, height),
            ext_key_ack: false,
            cursor_pending: false,
            led_pending: false,
            announce_screen: false,
            resize_reply: false,
            copies: Vec::new(),
            keys: KeyTranslator::default(),
            zrle: None,
            tight: None,
        }
    }

    pub fn set_pixel_format(&mut self, pf: PixelFormat) {
        if pf.true_colour {
            self.pw = PixelWriter::new(pf);
        } else {
            // Colour-map clients get our fixed BGR233 map, as QEMU does.
            self.pw = PixelWriter::new(PixelFormat::BGR233);
            self.send_colour_map = true;
        }
        self.dirty.mark_all();
    }

    pub fn set_encodings(&mut self, list: &[i32]) {
        let old = std::mem::replace(&mut self.prefs, Prefs::from_list(list));
        self.ext_key_ack |= self.prefs.ext_key && !old.ext_key;
        self.cursor_pending |= self.prefs.cursor && !old.cursor;
        self.led_pending |= self.prefs.led && !old.led;
        self.announce_screen |= self.prefs.ext_desktop_size && !old.ext_desktop_size;
    }

    /// Is there anything an update would carry?
    pub fn has_work(&self) -> bool {
        self.dirty.any()
            || self.ext_key_ack
            || self.cursor_pending
            || self.led_pending
            || self.announce_screen
            || self.resize_reply
            || !self.copies.is_empty()
            || self.send_colour_map
    }

    /// Adds the tiles changed by the last scan. If the change was a scroll this client can
    /// replay with CopyRect (its copy of the source rows is current), the tiles fully inside
    /// the moved rows are left out and the copy is queued instead.
    pub fn absorb(&mut self, changed: &TileMap, scroll: Option<Scroll>) {
        let Some(s) = scroll.filter(|_| self.prefs.copy_rect && self.ready) else {
            self.dirty.merge(changed);
            return;
        };
        let src_t0 = s.src_y / TILE;
        let src_t1 = (s.src_y + s.h).div_ceil(TILE);
        let src_clean = (src_t0..src_t1.min(self.dirty.tiles_y))
            .all(|ty| (0..self.dirty.tiles_x).all(|tx| !self.dirty.get(tx, ty)));
        if !src_clean {
            self.dirty.merge(changed);
            return;
        }
        // Tile rows entirely within the destination rows arrive by the copy.
        let full_t0 = s.dst_y.div_ceil(TILE);
        let full_t1 = (s.dst_y + s.h) / TILE;
        for ty in 0..changed.tiles_y {
            if ty >= full_t0 && ty < full_t1 {
                continue;
            }
            for tx in 0..changed.tiles_x {
                if changed.get(tx, ty) {
                    self.dirty.set(tx, ty);
                }
            }
        }
        self.copies.push(s);
    }

    /// Builds the FramebufferUpdate(s) answering the pending request from the shadow and
    /// queues them on `outbox`, consuming the pending tiles and pseudo-rectangles.
    ///
    /// Desktop-size rectangles go in a message of their own, before the pixels: clients
    /// (vnc-rs among them) reject ExtendedDesktopSize mixed with pixel rectangles.
    /// Raw and ZRLE updates, whose rectangle count is known before encoding, are queued in
    /// parts as they are encoded (only this thread queues anything once a client is ready,
    /// so the parts stay together).
    pub fn build_update(
        &mut self,
        shadow: &Shadow,
        cursor: Option<&CursorImage>,
        leds: u8,
        outbox: &Outbox,
    ) -> Result<(), UpdateError> {
        let mut out = outbox.buffer();
        if self.send_colour_map {
            self.send_colour_map = false;
            out.extend_from_slice(&[1, 0, 0, 0, 1, 0]);
            for [r, g, b] in PixelWriter::bgr233_colour_map() {
                out.extend_from_slice(&r.to_be_bytes());
                out.extend_from_slice(&g.to_be_bytes());
                out.extend_from_slice(&b.to_be_bytes());
            }
        }
        let (w, h) = (shadow.width, shadow.height);

        // Message 1: the desktop's size, when it changed or the client must learn it.
        let mut size_rects = Vec::new();
        if self.size != (w, h) {
            if self.prefs.ext_desktop_size {
                pseudo::extended_desktop_size(
                    &mut size_rects,
                    ResizeReason::Server,
                    ResizeStatus::Ok,
                    w as u16,
                    h as u16,
                );
            } else if self.prefs.desktop_size {
                pseudo::desktop_size(&mut size_rects, w as u16, h as u16);
            } else {
                return Err(UpdateError::CannotResize(w, h));
            }
            self.size = (w, h);
            self.dirty = TileMap::new(w, h);
            self.dirty.mark_all();
            self.copies.clear();
            self.announce_screen = false;
            self.resize_reply = false;
        } else if self.announce_screen || self.resize_reply {
            let (reason, status) = if self.resize_reply {
                (ResizeReason::ThisClient, ResizeStatus::Prohibited)
            } else {
                (ResizeReason::Server, ResizeStatus::Ok)
            };
            pseudo::extended_desktop_size(&mut size_rects, reason, status, w as u16, h as u16);
            self.announce_screen = false;
            self.resize_reply = false;
        }
        if !size_rects.is_empty() {
            out.extend_from_slice(&[0, 0, 0, 1]);
            out.extend_from_slice(&size_rects);
        }

        // Message 2: everything else.
        let frame = shadow.frame();
        let encoding = self.prefs.pixel_encoding;
        let mut rects = self.dirty.take_rects(w, h);
        if encoding == encoding::RAW {
            rects = raw_bands(&rects, self.pw.bytes_per_pixel());
        }
        let ext_key = std::mem::take(&mut self.ext_key_ack);
        let copies = std::mem::take(&mut self.copies);
        let cursor_pending = std::mem::take(&mut self.cursor_pending);
        let cursor = cursor.filter(|_| cursor_pending);
        let led = std::mem::take(&mut self.led_pending);
        let others = usize::from(ext_key) + copies.len() + usize::from(cursor.is_some());
        let others = others + usize::from(led);
        // Tight splits rectangles as it goes; the others send one per rectangle.
        let known = (encoding != encoding::TIGHT).then_some(others + rects.len());
        let header_at = out.len();
        out.extend_from_slice(&[0, 0, 0, 0]);
        if let Some(n) = known {
            self.put_count(&mut out[header_at..], n);
        }
        let mut count = 0usize;
        if ext_key {
            pseudo::qemu_extended_key_ack(&mut out);
            count += 1;
        }
        for s in copies {
            let dst = Rect {
                x: 0,
                y: s.dst_y as u16,
                w: w as u16,
                h: s.h as u16,
            };
            copyrect::encode(dst, 0, s.src_y as u16, &mut out);
            count += 1;
        }
        let level = self.prefs.compress_level;
        for r in rects {
            match encoding {
                encoding::ZRLE => {
                    self.zrle
                        .get_or_insert_with(|| ZrleEncoder::new(level.unwrap_or(ZRLE_ZLIB_LEVEL)))
                        .encode(&self.pw, &frame, r, &mut out);
                    count += 1;
                }
                encoding::TIGHT => {
                    count += self
                        .tight
                        .get_or_insert_with(|| TightEncoder::new(level.unwrap_or(TIGHT_ZLIB_LEVEL)))
                        .encode(&self.pw, &frame, r, &mut out);
                }
                _ => {
                    raw::encode(&self.pw, &frame, r, &mut out);
                    count += 1;
                }
            }
            if known.is_some() && out.len() >= STREAM_AT {
                outbox.push(std::mem::replace(&mut out, outbox.buffer()));
            }
        }
        if let Some(c) = cursor {
            pseudo::cursor(&mut out, &self.pw, c);
            count += 1;
        }
        if led {
            pseudo::qemu_led_state(&mut out, leds);
            count += 1;
        }
        debug_assert!(known.is_none_or(|n| n == count));
        if count == 0 {
            out.truncate(header_at);
        } else {
            if known.is_none() {
                self.put_count(&mut out[header_at..], count);
            }
            if count >= usize::from(u16::MAX) && self.prefs.last_rect {
                pseudo::last_rect(&mut out);
            }
        }
        self.want_update = false;
        outbox.push(out);
        Ok(())
    }

    /// Writes the rectangle count into a FramebufferUpdate header (`at` starts with it).
    fn put_count(&self, at: &mut [u8], rects: usize) {
        let count = if rects >= usize::from(u16::MAX) && self.prefs.last_rect {
            // LastRect ends the list instead.
            u16::MAX
        } else {
            // Past 65534 rectangles without LastRect the count would lie; with 16-pixel
            // tiles and 64-pixel chunks this needs a screen far beyond 8192x8192.
            rects.min(usize::from(u16::MAX) - 1) as u16
        };
        at[2..4].copy_from_slice(&count.to_be_bytes());
    }
}

/// Splits rectangles into bands of about [`RAW_BAND`] bytes of Raw pixels.
fn raw_bands(rects: &[Rect], bytes_per_pixel: usize) -> Vec<Rect> {
    let mut out = Vec::with_capacity(rects.len());
    for r in rects {
        let row = (usize::from(r.w) * bytes_per_pixel).max(1);
        let band = (RAW_BAND / row).clamp(1, usize::from(u16::MAX)) as u16;
        let mut y = 0;
        while y < r.h {
            let h = band.min(r.h - y);
            out.push(Rect {
                y: r.y + y,
                h,
                ..*r
            });
            y += h;
        }
    }
    out
}

/// A connected client as the server keeps it.
pub(crate) struct Client {
    pub id: u64,
    pub peer: String,
    pub out: Outbox,
    pub state: Mutex<ClientState>,
    closed: AtomicBool,
    reason: Mutex<Option<String>>,
    stream: Stream,
}

impl Client {
    pub fn new(id: u64, peer: String, stream: Stream, width: usize, height: usize) -> Client {
        Client {
            id,
            peer,
            out: Outbox::new(),
            state: Mutex::new(ClientState::new(width, height)),
            closed: AtomicBool::new(false),
            reason: Mutex::new(None),
            stream,
        }
    }

    pub fn state(&self) -> MutexGuard<'_, ClientState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Ends the connection (once); the first reason given is the one reported.
    pub fn close(&self, reason: &str) {
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        *self.reason.lock().unwrap_or_else(|e| e.into_inner()) = Some(reason.to_string());
        self.out.close();
        self.stream.shutdown();
    }

    /// Like [`close`](Self::close) but lets queued bytes (a failure reason) go out first.
    pub fn close_after_flush(&self, reason: &str) {
        let deadline = Instant::now() + std::time::Duration::from_millis(500);
        while self.out.backlog().0 > 0 && Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        self.close(reason);
    }

    pub fn reason(&self) -> String {
        self.reason
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .unwrap_or_else(|| "closed".into())
    }
}

/// ServerInit: size, our pixel format, the desktop name.
pub(crate) fn server_init(width: usize, height: usize, name: &str) -> Vec<u8> {
    let mut m = Vec::with_capacity(24 + name.len());
    m.extend_from_slice(&(width as u16).to_be_bytes());
    m.extend_from_slice(&(height as u16).to_be_bytes());
    m.extend_from_slice(&PixelFormat::NATIVE.to_bytes());
    m.extend_from_slice(&(name.len() as u32).to_be_bytes());
    m.extend_from_slice(name.as_bytes());
    m
}
