//! A VNC client session for the console: vnc-rs on a tokio runtime of its own thread, with ONE
//! task that selects between the GUI's commands and `recv_event` (vnc-rs holds a lock while it
//! waits for an event, so input from another task would stall). Rectangles land in one shared
//! framebuffer; the widget presents whole frames on its frame clock. vnc-rs marks no update's
//! end, so the guard's count of updates and pixels stands in: the next incremental update is
//! requested as soon as one arrives, while the decoder is at most one update behind (the
//! server encodes the next frame while this one is decoded, and a slow decoder slows the
//! server instead of queueing frames). Every byte between vnc-rs and the server passes the
//! [`guard`] first.

mod guard;

use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::mpsc;
use vnc::{PixelFormat, VncConnector, VncEncoding, VncEvent, X11Event};

pub use guard::GuardError;
use guard::Updates;

/// Where a VNC server listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    Unix(PathBuf),
    Tcp(String, u16),
}

impl Address {
    /// `/path/to/socket`, `unix:/path`, `host:N` (display N, port 5900+N), `host::PORT`.
    pub fn parse(text: &str) -> Option<Address> {
        let text = text.trim();
        if let Some(path) = text.strip_prefix("unix:") {
            return Some(Address::Unix(PathBuf::from(path)));
        }
        if text.starts_with('/') {
            return Some(Address::Unix(PathBuf::from(text)));
        }
        if let Some((host, port)) = text.split_once("::") {
            let port = port.parse().ok()?;
            return Some(Address::Tcp(host_or_local(host), port));
        }
        let (host, display) = text.rsplit_once(':')?;
        let display: u16 = display.parse().ok()?;
        Some(Address::Tcp(
            host_or_local(host),
            5900u16.checked_add(display)?,
        ))
    }
}

fn host_or_local(host: &str) -> String {
    if host.is_empty() {
        "127.0.0.1".to_owned()
    } else {
        host.trim_matches(['[', ']']).to_owned()
    }
}

/// What the widget sends.
#[derive(Debug, Clone)]
pub enum Command {
    Key { keysym: u32, down: bool },
    Pointer { x: u16, y: u16, buttons: u8 },
    Close,
}

/// What the session reports to the GUI.
#[derive(Debug, Clone)]
pub enum Status {
    Connected,
    Ended(String),
    /// The server sent something the guard does not let through; reconnecting would only
    /// meet it again.
    Refused(GuardError),
}

/// The guest's screen, B8G8R8A8 with the alpha byte forced to 0xFF (GTK 4.8 has no X8
/// formats). `serial` grows on each change so the widget uploads only new frames.
#[derive(Debug, Default)]
pub struct Framebuffer {
    pub width: usize,
    pub height: usize,
    pub pixels: Vec<u8>,
    pub serial: u64,
}

impl Framebuffer {
    fn resize(&mut self, width: usize, height: usize) {
        self.width = width;
        self.height = height;
        self.pixels = vec![0; width * height * 4];
        for px in self.pixels.chunks_exact_mut(4) {
            px[3] = 0xFF;
        }
        self.serial += 1;
    }

    /// Copies a rectangle of server pixels in; rectangles outside the screen are clipped.
    pub fn put(&mut self, x: usize, y: usize, w: usize, h: usize, data: &[u8]) {
        if data.len() < w * h * 4 || x >= self.width {
            return;
        }
        let cols = w.min(self.width - x);
        for row in 0..h.min(self.height.saturating_sub(y)) {
            let src = &data[row * w * 4..row * w * 4 + cols * 4];
            let at = ((y + row) * self.width + x) * 4;
            let dst = &mut self.pixels[at..at + cols * 4];
            dst.copy_from_slice(src);
            for px in dst.chunks_exact_mut(4) {
                px[3] = 0xFF;
            }
        }
        self.serial += 1;
    }

    /// CopyRect: from (sx, sy) to (dx, dy), overlapping allowed.
    pub fn copy(&mut self, dx: usize, dy: usize, sx: usize, sy: usize, w: usize, h: usize) {
        if dx + w > self.width
            || sx + w > self.width
            || dy + h > self.height
            || sy + h > self.height
        {
            return;
        }
        let rows: Vec<usize> = if dy > sy {
            (0..h).rev().collect()
        } else {
            (0..h).collect()
        };
        for row in rows {
            let src = ((sy + row) * self.width + sx) * 4;
            let dst = ((dy + row) * self.width + dx) * 4;
            self.pixels.copy_within(src..src + w * 4, dst);
        }
        self.serial += 1;
    }
}

pub struct Session {
    commands: mpsc::UnboundedSender<Command>,
    pub framebuffer: Arc<Mutex<Framebuffer>>,
}

impl Session {
    pub fn send(&self, command: Command) {
        let _ = self.commands.send(command);
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = self.commands.send(Command::Close);
    }
}

/// Keeps large freed blocks in the heap for the next frame. A console allocates and frees
/// several frame-sized buffers per frame (the decoder's rectangles, the renderer's surfaces);
/// above glibc's adaptive threshold each was a fresh mapping whose pages the kernel faulted
/// in and zeroed again, which was half the console's CPU at 1280x800. Frame-sized blocks now
/// come from the heap, and up to 64 MiB of freed heap stays mapped.
fn keep_frame_buffers_mapped() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: mallopt only sets allocator parameters; both values are within glibc's
        // bounds (the mmap threshold's maximum on 64-bit is 32 MiB).
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
            libc::mallopt(libc::M_TRIM_THRESHOLD, 64 << 20);
        }
    });
}

/// Connects on a thread of its own; status changes arrive on the returned channel.
pub fn connect(address: Address, password: String) -> (Session, async_channel::Receiver<Status>) {
    keep_frame_buffers_mapped();
    let (tx, rx) = mpsc::unbounded_channel();
    let (status_tx, status_rx) = async_channel::unbounded();
    let framebuffer = Arc::new(Mutex::new(Framebuffer::default()));
    let fb = framebuffer.clone();
    let refusal = Refusal::default();
    let spawned = std::thread::Builder::new()
        .name("vireo-vnc".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(r) => r,
                Err(e) => {
                    let _ = status_tx.send_blocking(Status::Ended(e.to_string()));
                    return;
                }
            };
            let result = runtime.block_on(run(
                address,
                password,
                rx,
                fb,
                status_tx.clone(),
                refusal.clone(),
            ));
            // vnc-rs reports a refused read as a lost connection at best: the guard's
            // reason is the one to show.
            let status = match (refusal.take(), result) {
                (Some(e), _) => Status::Refused(e),
                (None, Ok(())) => Status::Ended(String::new()),
                (None, Err(e)) => Status::Ended(e),
            };
            let _ = status_tx.send_blocking(status);
        });
    if let Err(e) = spawned {
        let _ = status_rx.close();
        eprintln!("vireo: cannot start the VNC thread: {e}");
    }
    (
        Session {
            commands: tx,
            framebuffer,
        },
        status_rx,
    )
}

async fn run(
    address: Address,
    password: String,
    commands: mpsc::UnboundedReceiver<Command>,
    fb: Arc<Mutex<Framebuffer>>,
    status: async_channel::Sender<Status>,
    refusal: Refusal,
) -> Result<(), String> {
    let flow = Flow::default();
    match &address {
        Address::Unix(path) => {
            let stream = tokio::net::UnixStream::connect(path)
                .await
                .map_err(|e| format!("{}: {e}", path.display()))?;
            session(
                Guarded::new(stream, refusal, flow.clone()),
                flow,
                password,
                commands,
                fb,
                status,
            )
            .await
        }
        Address::Tcp(host, port) => {
            let stream = tokio::net::TcpStream::connect((host.as_str(), *port))
                .await
                .map_err(|e| format!("{host}:{port}: {e}"))?;
            session(
                Guarded::new(stream, refusal, flow.clone()),
                flow,
                password,
                commands,
                fb,
                status,
            )
            .await
        }
    }
}

/// Where the guard leaves its reason for ending a connection.
#[derive(Clone, Default)]
struct Refusal(Arc<Mutex<Option<GuardError>>>);

impl Refusal {
    fn set(&self, e: GuardError) {
        if let Ok(mut slot) = self.0.lock() {
            slot.get_or_insert(e);
        }
    }

    fn take(&self) -> Option<GuardError> {
        self.0.lock().ok().and_then(|mut slot| slot.take())
    }
}

/// The guard's count of updates, shared with the session task, which it wakes at each
/// update's end.
#[derive(Clone, Default)]
struct Flow(Arc<(Mutex<Updates>, tokio::sync::Notify)>);

impl Flow {
    fn get(&self) -> Updates {
        self.0 .0.lock().map(|u| *u).unwrap_or_default()
    }

    fn set(&self, updates: Updates) {
        if let Ok(mut u) = self.0 .0.lock() {
            *u = updates;
        }
        self.0 .1.notify_one();
    }

    async fn ended(&self) {
        self.0 .1.notified().await
    }
}

/// The most bytes one read hands vnc-rs. Its network task queues up to 4096 reads ahead of
/// its decoder, so this bounds that queue (64 MiB instead of 256 MiB).
const MAX_READ: usize = 16 * 1024;

/// The server's stream as vnc-rs sees it: both directions pass the guard, and server bytes
/// reach vnc-rs only once the guard has let them through.
struct Guarded<S> {
    inner: S,
    guard: guard::Guard,
    refusal: Refusal,
    flow: Flow,
}

impl<S> Guarded<S> {
    fn new(inner: S, refusal: Refusal, flow: Flow) -> Self {
        Guarded {
            inner,
            guard: guard::Guard::new(),
            refusal,
            flow,
        }
    }

    fn refuse(&self, e: GuardError) -> io::Error {
        self.refusal.set(e.clone());
        io::Error::new(io::ErrorKind::InvalidData, e)
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Guarded<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let want = buf.remaining().min(MAX_READ);
        let got = {
            let mut part = ReadBuf::new(buf.initialize_unfilled_to(want));
            ready!(Pin::new(&mut this.inner).poll_read(cx, &mut part))?;
            let ended = this.guard.updates().ended;
            if let Err(e) = this.guard.server_sent(part.filled()) {
                return Poll::Ready(Err(this.refuse(e)));
            }
            if this.guard.updates().ended != ended {
                this.flow.set(this.guard.updates());
            }
            part.filled().len()
        };
        buf.advance(got);
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Guarded<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let n = ready!(Pin::new(&mut this.inner).poll_write(cx, data))?;
        if let Err(e) = this.guard.client_sent(&data[..n]) {
            return Poll::Ready(Err(this.refuse(e)));
        }
        Poll::Ready(Ok(n))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// When to ask for the next incremental update.
#[derive(Default)]
struct Pacer {
    /// Pixels drawn into the framebuffer so far (comparable with [`Updates::area`]).
    drawn: u64,
    /// Updates ended when the last request went out.
    asked_at: u64,
}

impl Pacer {
    /// Whether to request now: an update arrived since the last request (servers answer
    /// several pending requests with one update), and every update before that one is drawn.
    fn due(&self, u: &Updates) -> bool {
        u.ended > self.asked_at && self.drawn >= u.at_end_before
    }
}

/// Without news from the guard for this long, a request goes out anyway (an update that
/// arrived but whose pixels were never all drawn must not stop the screen for good).
const REQUEST_FALLBACK: Duration = Duration::from_millis(250);

async fn session<S>(
    stream: S,
    flow: Flow,
    password: String,
    mut commands: mpsc::UnboundedReceiver<Command>,
    fb: Arc<Mutex<Framebuffer>>,
    status: async_channel::Sender<Status>,
) -> Result<(), String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + Sync + 'static,
{
    let client = VncConnector::new(stream)
        .set_auth_method(async move { Ok(password) })
        .allow_shared(true)
        .set_pixel_format(PixelFormat::bgra())
        .add_encoding(VncEncoding::Tight)
        .add_encoding(VncEncoding::Zrle)
        .add_encoding(VncEncoding::CopyRect)
        .add_encoding(VncEncoding::Raw)
        .add_encoding(VncEncoding::DesktopSizePseudo)
        .build()
        .map_err(|e| e.to_string())?
        .try_start()
        .await
        .map_err(|e| e.to_string())?
        .finish()
        .map_err(|e| e.to_string())?;
    let _ = status.send(Status::Connected).await;
    client
        .input(X11Event::FullRefresh)
        .await
        .map_err(|e| e.to_string())?;
    let mut pacer = Pacer::default();
    let mut tick = tokio::time::interval(REQUEST_FALLBACK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        let updates = flow.get();
        if pacer.due(&updates) {
            pacer.asked_at = updates.ended;
            tick.reset();
            client
                .input(X11Event::Refresh)
                .await
                .map_err(|e| e.to_string())?;
        }
        tokio::select! {
            command = commands.recv() => {
                let event = match command {
                    None | Some(Command::Close) => {
                        let _ = client.close().await;
                        return Ok(());
                    }
                    Some(Command::Key { keysym, down }) => X11Event::KeyEvent((keysym, down).into()),
                    Some(Command::Pointer { x, y, buttons }) => {
                        X11Event::PointerEvent((x, y, buttons).into())
                    }
                };
                client.input(event).await.map_err(|e| e.to_string())?;
            }
            event = client.recv_event() => {
                let event = event.map_err(|e| e.to_string())?;
                let mut fb = fb.lock().map_err(|_| "framebuffer lock poisoned".to_owned())?;
                let area = |w: u16, h: u16| u64::from(w) * u64::from(h);
                match event {
                    VncEvent::SetResolution(s) => fb.resize(s.width.into(), s.height.into()),
                    VncEvent::RawImage(r, data) => {
                        pacer.drawn += area(r.width, r.height);
                        fb.put(r.x.into(), r.y.into(), r.width.into(), r.height.into(), &data);
                    }
                    VncEvent::Copy(d, s) => {
                        pacer.drawn += area(d.width, d.height);
                        fb.copy(
                            d.x.into(), d.y.into(), s.x.into(), s.y.into(),
                            d.width.into(), d.height.into(),
                        );
                    }
                    VncEvent::JpegImage(r, _) => pacer.drawn += area(r.width, r.height),
                    VncEvent::Error(e) => return Err(e),
                    _ => {}
                }
            }
            () = flow.ended() => {}
            _ = tick.tick() => {
                // Nothing from the guard for a while: ask again, whatever the count says.
                pacer.asked_at = flow.get().ended;
                client.input(X11Event::Refresh).await.map_err(|e| e.to_string())?;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse_like_vnc_viewers() {
        assert_eq!(
            Address::parse("/run/x.sock"),
            Some(Address::Unix("/run/x.sock".into()))
        );
        assert_eq!(Address::parse("unix:/a"), Some(Address::Unix("/a".into())));
        assert_eq!(
            Address::parse("localhost:1"),
            Some(Address::Tcp("localhost".into(), 5901))
        );
        assert_eq!(
            Address::parse("::5957"),
            Some(Address::Tcp("127.0.0.1".into(), 5957))
        );
        assert_eq!(Address::parse("nonsense"), None);
    }

    #[test]
    fn rectangles_are_clipped_and_opaque() {
        let mut fb = Framebuffer::default();
        fb.resize(4, 2);
        fb.put(3, 1, 2, 2, &[7u8; 16]);
        assert_eq!(&fb.pixels[(4 + 3) * 4..], &[7, 7, 7, 0xFF]);
        fb.copy(0, 0, 3, 1, 1, 1);
        assert_eq!(&fb.pixels[..4], &[7, 7, 7, 0xFF]);
        // Far outside: nothing happens, nothing panics.
        fb.put(65535, 0, 2, 1, &[1u8; 8]);
        fb.put(0, 65535, 1, 1, &[1u8; 4]);
    }

    /// Runs the console's session against a scripted server: the 3.8 handshake without
    /// password, a 64x48 ServerInit, then `then`; the server hangs up half a second later if
    /// `hang_up`.
    /// Returns how the session ended, the guard's reason if it refused, and the screen.
    fn against(
        then: Vec<u8>,
        hang_up: bool,
    ) -> (Result<(), String>, Option<GuardError>, Framebuffer) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let (ours, mut server) = tokio::io::duplex(1 << 20);
            tokio::spawn(async move {
                let mut b = [0u8; 12];
                server.write_all(b"RFB 003.008\n").await?;
                server.read_exact(&mut b).await?;
                server.write_all(&[1, 1]).await?;
                server.read_exact(&mut b[..1]).await?;
                server.write_all(&[0, 0, 0, 0]).await?;
                server.read_exact(&mut b[..1]).await?;
                let mut init = vec![0, 64, 0, 48];
                init.extend([32, 24, 0, 1, 0, 255, 0, 255, 0, 255, 16, 8, 0, 0, 0, 0]);
                init.extend([0, 0, 0, 0]);
                server.write_all(&init).await?;
                server.write_all(&then).await?;
                // Reads what the client sends (all of it, or for half a second).
                let drain = async {
                    let mut sink = vec![0u8; 4096];
                    while server.read(&mut sink).await? > 0 {}
                    Ok::<_, io::Error>(())
                };
                if hang_up {
                    let _ = tokio::time::timeout(Duration::from_millis(500), drain).await;
                    Ok(())
                } else {
                    drain.await
                }
            });
            let refusal = Refusal::default();
            let (_commands, rx) = mpsc::unbounded_channel();
            let (status, _status_rx) = async_channel::unbounded();
            let fb = Arc::new(Mutex::new(Framebuffer::default()));
            let flow = Flow::default();
            let stream = Guarded::new(ours, refusal.clone(), flow.clone());
            let ended = tokio::time::timeout(
                Duration::from_secs(20),
                session(stream, flow, String::new(), rx, fb.clone(), status),
            )
            .await
            .expect("the session did not end");
            let screen = std::mem::take(&mut *fb.lock().unwrap());
            (ended, refusal.take(), screen)
        })
    }

    fn raw_update(x: u16, y: u16, w: u16, h: u16, pixel: [u8; 4]) -> Vec<u8> {
        let mut m = vec![0, 0, 0, 1];
        for v in [x, y, w, h] {
            m.extend(v.to_be_bytes());
        }
        m.extend(0i32.to_be_bytes());
        for _ in 0..usize::from(w) * usize::from(h) {
            m.extend(pixel);
        }
        m
    }

    #[test]
    fn a_well_behaved_server_gets_through_the_guard() {
        let (ended, refused, screen) = against(raw_update(60, 40, 4, 8, [1, 2, 3, 0]), true);
        assert!(ended.is_err(), "the server hung up");
        assert_eq!(refused, None);
        assert_eq!((screen.width, screen.height), (64, 48));
        let at = (47 * 64 + 63) * 4;
        assert_eq!(&screen.pixels[at..at + 4], &[1, 2, 3, 0xff]);
    }

    #[test]
    fn a_rectangle_off_the_screen_ends_the_session_with_the_guards_reason() {
        let (ended, refused, screen) = against(raw_update(60, 40, 8, 8, [9; 4]), false);
        assert!(ended.is_err());
        assert!(
            matches!(refused, Some(GuardError::RectOutside { x: 60, w: 8, .. })),
            "{refused:?}"
        );
        assert!(
            screen.pixels.iter().all(|&b| b != 9),
            "bad pixels got drawn"
        );
    }

    #[test]
    fn an_oversized_zrle_length_is_refused_before_vnc_rs_allocates_it() {
        let mut m = vec![0, 0, 0, 1, 0, 0, 0, 0, 0, 1, 0, 1];
        m.extend(16i32.to_be_bytes());
        m.extend((60u32 << 20).to_be_bytes());
        let (ended, refused, _) = against(m, false);
        assert!(ended.is_err());
        assert!(
            matches!(
                refused,
                Some(GuardError::TooLong {
                    what: "ZRLE data",
                    ..
                })
            ),
            "{refused:?}"
        );
    }
}
