//! Listeners, the refresh thread and client threads.
//!
//! Threads: one acceptor per listener, one refresh thread, and per client a reader (parses
//! messages, forwards input) and a writer (drains that client's output queue). Only the
//! refresh thread touches the shadow copy and encodes; it never blocks on a socket. A client
//! whose queue exceeds its soft limit gets no new updates until it drains (its changes keep
//! accumulating as tiles, so it catches up with one update); if it makes no progress for
//! `stall_timeout`, or its queue passes the hard limit, it is dropped with a logged reason.

use std::io::Read;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::admission::{Gate, PendingSlot};
use super::client::{server_init, Client, Stream};
use super::dirty::{Shadow, TileMap};
use super::encodings::copyrect::{find_vertical_scroll, Scroll};
use super::encodings::pseudo::CursorImage;
use super::keymap::XtKey;
use super::proto::ClientMessage;
use super::session::{Session, SessionError, SessionEvent};
use super::{FramebufferSource, InputSink, PointerEvent, VncEvent};

/// What a client asking for exclusive access gets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SharePolicy {
    /// Every client shares the screen, whatever its ClientInit says (the GUI and a
    /// screenshot tool must coexist).
    #[default]
    ForceShared,
    /// A client asking for exclusive access disconnects the others.
    AllowExclusive,
}

/// How to run the server.
#[derive(Clone, Debug)]
pub struct VncConfig {
    /// Unix socket to listen on (created with mode 0600; a stale socket file is replaced).
    pub unix_path: Option<PathBuf>,
    /// Loopback TCP address (127.0.0.1 or ::1 only; port 0 picks one). Requires `password`.
    pub tcp: Option<SocketAddr>,
    /// VNC password (only the first 8 bytes count, as in every VNC implementation).
    pub password: Option<String>,
    /// Desktop name sent in ServerInit.
    pub name: String,
    pub share: SharePolicy,
    /// Authenticated clients, all listeners together.
    pub max_clients: usize,
    /// Connections still in the handshake, per listener: a flood on the TCP port cannot take
    /// the unix socket's slots, so the owner's console can always connect.
    pub max_pending: usize,
    /// The whole handshake (ProtocolVersion to ClientInit) must be done this long after
    /// connecting; time the server makes a client wait after a password does not count.
    pub handshake_timeout: Duration,
    /// The result of a wrong password goes out this long after the answer; each further
    /// consecutive failure on the same listener doubles it (up to 16 times), and answers
    /// take turns. A right answer resets it.
    pub auth_fail_delay: Duration,
    /// Shortest and longest time between scans of the framebuffer.
    pub refresh_min: Duration,
    pub refresh_max: Duration,
    /// Added to the interval after each scan that found nothing.
    pub refresh_step: Duration,
    /// A client whose queue stays above its soft limit this long without progress is dropped.
    pub stall_timeout: Duration,
    /// Install the [`crate::seccomp::ThreadKind::Vnc`] filter on the server's threads (the
    /// refresh thread and each acceptor; client threads start from an acceptor and inherit
    /// its filter). Off only to debug a suspected filter kill.
    pub seccomp: bool,
}

impl Default for VncConfig {
    fn default() -> Self {
        VncConfig {
            unix_path: None,
            tcp: None,
            password: None,
            name: "vireo".into(),
            share: SharePolicy::ForceShared,
            max_clients: 16,
            max_pending: 4,
            handshake_timeout: HANDSHAKE_TIMEOUT,
            auth_fail_delay: Duration::from_secs(1),
            refresh_min: Duration::from_millis(15),
            refresh_max: Duration::from_millis(1000),
            refresh_step: Duration::from_millis(25),
            stall_timeout: Duration::from_secs(10),
            seccomp: true,
        }
    }
}

/// Errors starting the server.
#[derive(Debug, thiserror::Error)]
pub enum VncError {
    #[error("VNC: no listener configured (give a unix socket path or a TCP address)")]
    NoListener,
    #[error("VNC: TCP address {0} is not loopback; only 127.0.0.1 and ::1 are allowed")]
    NotLoopback(SocketAddr),
    #[error("VNC: TCP listening requires a password")]
    TcpWithoutPassword,
    #[error("VNC: framebuffer size {0}x{1} is outside 1..=8192")]
    BadSize(u32, u32),
    #[error("VNC: unix socket {path}: {source}")]
    Unix {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("VNC: unix socket {0} is in use by another server")]
    InUse(PathBuf),
    #[error("VNC: TCP {addr}: {source}")]
    Tcp {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("VNC: cannot start a thread: {0}")]
    Thread(std::io::Error),
    #[error("VNC: reading the challenge source: {0}")]
    Random(std::io::Error),
}

use vireo_vmm_api::control::VncAuth;
/// What `vnc-info` reports (a message of the control protocol).
pub use vireo_vmm_api::control::VncInfo;

type EventFn = dyn Fn(VncEvent) + Send + Sync;

struct Kick {
    pending: bool,
    input: bool,
    /// Scan the framebuffer before serving (a full refresh wants what is there now).
    scan: bool,
    stop: bool,
}

pub(crate) struct Inner {
    config: VncConfig,
    source: Arc<dyn FramebufferSource>,
    input: Arc<dyn InputSink>,
    events: Option<Box<EventFn>>,
    clients: Mutex<Vec<Arc<Client>>>,
    next_id: AtomicU64,
    kick: Mutex<Kick>,
    kick_cv: Condvar,
    stop: AtomicBool,
    leds: AtomicU8,
    cursor: Mutex<Option<CursorImage>>,
    tcp_addr: Mutex<Option<SocketAddr>>,
}

impl Inner {
    fn clients(&self) -> MutexGuard<'_, Vec<Arc<Client>>> {
        self.clients.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wake(&self, input: bool) {
        let mut k = self.kick.lock().unwrap_or_else(|e| e.into_inner());
        k.pending = true;
        k.input |= input;
        self.kick_cv.notify_one();
    }

    fn wake_and_scan(&self) {
        let mut k = self.kick.lock().unwrap_or_else(|e| e.into_inner());
        k.pending = true;
        k.scan = true;
        self.kick_cv.notify_one();
    }

    fn emit(&self, e: VncEvent) {
        if let Some(f) = &self.events {
            f(e);
        }
    }
}

/// A running server. Dropping it stops the threads and removes the unix socket.
pub struct VncServer {
    inner: Arc<Inner>,
    threads: Vec<JoinHandle<()>>,
    listener_fds: Vec<OwnedFd>,
    unix_path: Option<(PathBuf, crate::unix_socket::SocketId)>,
}

/// Starts listening and serving `source`; input goes to `input`, events to `events`.
pub fn start(
    config: VncConfig,
    source: Arc<dyn FramebufferSource>,
    input: Arc<dyn InputSink>,
    events: Option<Box<dyn Fn(VncEvent) + Send + Sync>>,
) -> Result<VncServer, VncError> {
    if config.unix_path.is_none() && config.tcp.is_none() {
        return Err(VncError::NoListener);
    }
    let (w, h) = source.size();
    if !(1..=8192).contains(&w) || !(1..=8192).contains(&h) {
        return Err(VncError::BadSize(w, h));
    }
    let mut listeners = Vec::new();
    if let Some(addr) = config.tcp {
        if !addr.ip().is_loopback() {
            return Err(VncError::NotLoopback(addr));
        }
        if config.password.is_none() {
            return Err(VncError::TcpWithoutPassword);
        }
        let l = TcpListener::bind(addr).map_err(|source| VncError::Tcp { addr, source })?;
        listeners.push(Listener::Tcp(l));
    }
    let mut bound_unix = None;
    if let Some(path) = &config.unix_path {
        let (l, id) = crate::unix_socket::bind_private(path).map_err(|source| {
            if source.kind() == std::io::ErrorKind::AddrInUse {
                VncError::InUse(path.to_path_buf())
            } else {
                VncError::Unix {
                    path: path.to_path_buf(),
                    source,
                }
            }
        })?;
        listeners.push(Listener::Unix(l));
        bound_unix = Some((path.to_path_buf(), id));
    }
    let tcp_addr = listeners.iter().find_map(|l| match l {
        Listener::Tcp(t) => t.local_addr().ok(),
        Listener::Unix(_) => None,
    });
    let inner = Arc::new(Inner {
        config: config.clone(),
        source,
        input,
        events,
        clients: Mutex::new(Vec::new()),
        next_id: AtomicU64::new(1),
        kick: Mutex::new(Kick {
            pending: false,
            input: false,
            scan: false,
            stop: false,
        }),
        kick_cv: Condvar::new(),
        stop: AtomicBool::new(false),
        leds: AtomicU8::new(0),
        cursor: Mutex::new(Some(CursorImage::arrow())),
        tcp_addr: Mutex::new(tcp_addr),
    });
    let mut threads = Vec::new();
    let i2 = inner.clone();
    threads.push(
        std::thread::Builder::new()
            .name("vnc-refresh".into())
            .spawn(move || {
                filter_this_thread(&i2.config);
                refresh_loop(&i2)
            })
            .map_err(VncError::Thread)?,
    );
    let mut listener_fds = Vec::new();
    for l in listeners {
        let fd = match &l {
            Listener::Unix(u) => u.try_clone().map(OwnedFd::from),
            Listener::Tcp(t) => t.try_clone().map(OwnedFd::from),
        }
        .map_err(VncError::Thread)?;
        listener_fds.push(fd);
        let kind = match &l {
            Listener::Unix(_) => "unix",
            Listener::Tcp(_) => "tcp",
        };
        let gate = Arc::new(Gate::new(kind, config.max_pending, config.auth_fail_delay));
        let i2 = inner.clone();
        threads.push(
            std::thread::Builder::new()
                .name("vnc-accept".into())
                .spawn(move || {
                    filter_this_thread(&i2.config);
                    accept_loop(&i2, l, &gate)
                })
                .map_err(VncError::Thread)?,
        );
    }
    log::info!(
        "VNC server listening on {}{}",
        config
            .unix_path
            .as_ref()
            .map(|p| format!("unix:{}", p.display()))
            .unwrap_or_default(),
        tcp_addr.map(|a| format!(" tcp:{a}")).unwrap_or_default()
    );
    Ok(VncServer {
        inner,
        threads,
        listener_fds,
        unix_path: bound_unix,
    })
}

impl VncServer {
    /// Listener addresses, auth and connected clients.
    pub fn info(&self) -> VncInfo {
        let (width, height) = self.inner.source.size();
        VncInfo {
            unix_path: self.unix_path.as_ref().map(|(p, _)| p.clone()),
            tcp: *self
                .inner
                .tcp_addr
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
            auth: if self.inner.config.password.is_some() {
                VncAuth::Vnc
            } else {
                VncAuth::None
            },
            width,
            height,
            clients: self
                .inner
                .clients()
                .iter()
                .filter(|c| !c.is_closed())
                .map(|c| c.peer.clone())
                .collect(),
        }
    }

    /// The guest's keyboard LEDs (bit 0 Scroll, 1 Num, 2 Caps), for clients that asked for
    /// QEMU's LED state pseudo-encoding.
    pub fn set_led_state(&self, leds: u8) {
        if apply_leds(&self.inner, leds) {
            self.inner.wake(false);
        }
    }

    /// Replaces the cursor shape offered to clients (None: clients draw their own).
    pub fn set_cursor(&self, cursor: Option<CursorImage>) {
        *self.inner.cursor.lock().unwrap_or_else(|e| e.into_inner()) = cursor;
        for c in self.inner.clients().iter() {
            let mut st = c.state();
            st.cursor_pending |= st.prefs.cursor;
        }
        self.inner.wake(false);
    }

    /// Writes the current screen to a PNG file.
    pub fn screendump(&self, path: &Path) -> Result<(), super::screendump::ScreendumpError> {
        super::screendump::write_png(self.inner.source.as_ref(), path)
    }

    /// Number of connected clients.
    pub fn client_count(&self) -> usize {
        self.inner
            .clients()
            .iter()
            .filter(|c| !c.is_closed())
            .count()
    }

    /// Stops all threads, disconnects clients and removes the unix socket.
    pub fn shutdown(mut self) {
        self.stop_all();
    }

    fn stop_all(&mut self) {
        if self.inner.stop.swap(true, Ordering::AcqRel) {
            return;
        }
        {
            let mut k = self.inner.kick.lock().unwrap_or_else(|e| e.into_inner());
            k.stop = true;
            self.inner.kick_cv.notify_all();
        }
        // Wake the blocking accept() calls: shutdown() on a listening socket makes Linux
        // fail them with EINVAL (no dependence on the socket file still existing).
        for fd in self.listener_fds.drain(..) {
            // SAFETY: shutdown(2) on a descriptor we own.
            unsafe { libc::shutdown(fd.as_raw_fd(), libc::SHUT_RDWR) };
        }
        for c in self.inner.clients().drain(..) {
            c.close("server shutting down");
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        if let Some((p, id)) = &self.unix_path {
            crate::unix_socket::remove_if_ours(p, *id);
        }
    }
}

impl Drop for VncServer {
    fn drop(&mut self) {
        self.stop_all();
    }
}

/// Records the guest's LEDs; true if they changed. Clients that asked get the LED state in
/// their next update, and every client's Caps Lock tracking follows the guest's.
fn apply_leds(inner: &Inner, leds: u8) -> bool {
    let leds = leds & 7;
    if inner.leds.swap(leds, Ordering::AcqRel) == leds {
        return false;
    }
    for c in inner.clients().iter() {
        let mut st = c.state();
        st.led_pending |= st.prefs.led;
        st.keys.set_caps_lock(leds & 4 != 0);
    }
    true
}

enum Listener {
    Unix(UnixListener),
    Tcp(TcpListener),
}

/// The server's threads are started by whoever calls [`start`] (in the VMM, the main thread
/// before its own filter is on), so each top-level thread installs the VNC filter itself.
fn filter_this_thread(config: &VncConfig) {
    if config.seccomp {
        crate::seccomp::apply_current(crate::seccomp::ThreadKind::Vnc);
    }
}

fn accept_loop(inner: &Arc<Inner>, listener: Listener, gate: &Arc<Gate>) {
    loop {
        let accepted = match &listener {
            Listener::Unix(l) => l
                .accept()
                .map(|(s, _)| (Stream::Unix(s), "unix".to_string())),
            Listener::Tcp(l) => l.accept().map(|(s, a)| {
                let _ = s.set_nodelay(true);
                (Stream::Tcp(s), format!("tcp:{a}"))
            }),
        };
        if inner.stop.load(Ordering::Acquire) {
            return;
        }
        match accepted {
            Ok((stream, peer)) => {
                let Some(slot) = gate.admit() else {
                    stream.shutdown();
                    continue;
                };
                if let Err(e) = spawn_client(inner, stream, peer, gate.clone(), slot) {
                    log::warn!("VNC: cannot serve a new client: {e}");
                }
            }
            Err(e) => {
                if inner.stop.load(Ordering::Acquire) {
                    return;
                }
                log::warn!("VNC: accept failed: {e}");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

/// Serves a connection that holds a handshake slot on its listener's `gate`; the slot is
/// given back when the handshake is done or the connection ends.
fn spawn_client(
    inner: &Arc<Inner>,
    stream: Stream,
    peer: String,
    gate: Arc<Gate>,
    slot: PendingSlot,
) -> std::io::Result<()> {
    let id = inner.next_id.fetch_add(1, Ordering::Relaxed);
    let peer = format!("{peer}#{id}");
    let (w, h) = inner.source.size();
    let reader = stream.try_clone()?;
    let writer = stream.try_clone()?;
    let client = Arc::new(Client::new(
        id,
        peer.clone(),
        stream,
        w as usize,
        h as usize,
    ));
    inner.clients().push(client.clone());
    let c2 = client.clone();
    std::thread::Builder::new()
        .name(format!("vnc-write-{id}"))
        .spawn(move || {
            if let Err(e) = c2.out.run_writer(writer) {
                c2.close(&format!("write failed: {e}"));
            }
        })?;
    let i2 = inner.clone();
    std::thread::Builder::new()
        .name(format!("vnc-read-{id}"))
        .spawn(move || {
            let reason = match read_loop(&i2, &client, reader, &gate, slot) {
                Ok(()) => "client closed the connection".to_string(),
                Err(e) => e,
            };
            client.close(&reason);
            let reason = client.reason();
            i2.emit(VncEvent::ClientDisconnected { id, reason });
            i2.wake(false);
        })?;
    log::info!("VNC: {peer} connected");
    inner.emit(VncEvent::ClientConnected { id, peer });
    Ok(())
}

/// Reads and acts on one client's messages until it leaves or misbehaves. Until its
/// handshake is done the client holds `slot` on its listener and must finish by one deadline.
fn read_loop(
    inner: &Arc<Inner>,
    client: &Arc<Client>,
    mut stream: Stream,
    gate: &Gate,
    slot: PendingSlot,
) -> Result<(), String> {
    let challenge = super::auth::challenge().map_err(|e| format!("no random challenge: {e}"))?;
    let mut session = Session::new(
        inner.config.password.as_deref().map(str::as_bytes),
        challenge,
    );
    client.out.push(session.take_output());
    let mut buf = vec![0u8; 64 * 1024];
    let limit = inner.config.handshake_timeout;
    // One deadline for the whole handshake, not one per read: a client trickling a byte at a
    // time must not hold its slot forever.
    let mut handshake = Some((Instant::now() + limit, slot));
    loop {
        if let Some((deadline, _)) = &handshake {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(format!(
                    "no complete handshake within {:.1} s",
                    limit.as_secs_f64()
                ));
            }
            stream
                .set_read_timeout(Some(left))
                .map_err(|e| format!("cannot set a read timeout: {e}"))?;
        }
        let n = match stream.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::Interrupted
                        | std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            Err(e) => return Err(format!("read failed: {e}")),
        };
        let result = session.feed(&buf[..n]);
        let answered = match &result {
            Err(SessionError::AuthFailed) => Some(false),
            Ok(events) if events.contains(&SessionEvent::Authenticated) => Some(true),
            _ => None,
        };
        if let Some(ok) = answered {
            // The SecurityResult goes out when the listener's throttle allows; the wait is
            // the server's, so it does not count against the client's deadline.
            let now = Instant::now();
            let wait = gate
                .throttle
                .attempt(ok, now)
                .saturating_duration_since(now);
            if !ok {
                log::warn!(
                    "VNC: {} gave a wrong password; answering in {:.1} s",
                    client.peer,
                    wait.as_secs_f64()
                );
            }
            std::thread::sleep(wait);
            if let Some((deadline, _)) = &mut handshake {
                *deadline += wait;
            }
        }
        client.out.push(session.take_output());
        let events = match result {
            Ok(ev) => ev,
            Err(e) => {
                client.close_after_flush(&e.to_string());
                return Err(e.to_string());
            }
        };
        for ev in events {
            if let SessionEvent::Ready { .. } = ev {
                // Done: the slot goes back to the listener and reads may wait forever.
                handshake = None;
                stream
                    .set_read_timeout(None)
                    .map_err(|e| format!("cannot clear the read timeout: {e}"))?;
            }
            handle_event(inner, client, ev)?;
        }
    }
}

fn handle_event(inner: &Arc<Inner>, client: &Arc<Client>, ev: SessionEvent) -> Result<(), String> {
    match ev {
        SessionEvent::Authenticated => {}
        SessionEvent::Ready { shared } => {
            admit_ready(inner, client)?;
            if !shared && inner.config.share == SharePolicy::AllowExclusive {
                for other in inner.clients().iter() {
                    if other.id != client.id {
                        other.close(&format!("{} asked for exclusive access", client.peer));
                    }
                }
            }
            let (w, h) = inner.source.size();
            let mut st = client.state();
            // The shadow may not have this size yet; the first update resizes if needed.
            st.size = (w as usize, h as usize);
            st.dirty = TileMap::new(w as usize, h as usize);
            client
                .out
                .push(server_init(w as usize, h as usize, &inner.config.name));
        }
        SessionEvent::Message(m) => handle_message(inner, client, m)?,
    }
    Ok(())
}

/// Marks `client` ready unless `max_clients` authenticated clients are already served.
fn admit_ready(inner: &Inner, client: &Client) -> Result<(), String> {
    // Counted and marked under the list's lock, so two handshakes finishing together
    // cannot both take the last place.
    let clients = inner.clients();
    let ready = clients
        .iter()
        .filter(|c| c.id != client.id && !c.is_closed() && c.state().ready)
        .count();
    if ready >= inner.config.max_clients {
        log::warn!(
            "VNC: refusing {}: already {ready} clients (limit {})",
            client.peer,
            inner.config.max_clients
        );
        return Err(format!(
            "too many clients (limit {})",
            inner.config.max_clients
        ));
    }
    client.state().ready = true;
    Ok(())
}

fn handle_message(
    inner: &Arc<Inner>,
    client: &Arc<Client>,
    m: ClientMessage,
) -> Result<(), String> {
    match m {
        ClientMessage::SetPixelFormat(pf) => {
            pf.validate()
                .map_err(|e| format!("SetPixelFormat refused: {e}"))?;
            client.state().set_pixel_format(pf);
        }
        ClientMessage::SetEncodings(list) => {
            client.state().set_encodings(&list);
        }
        ClientMessage::FramebufferUpdateRequest { incremental, rect } => {
            {
                let mut st = client.state();
                st.want_update = true;
                if !incremental {
                    st.dirty.mark_rect(rect);
                }
            }
            if incremental {
                inner.wake(false);
            } else {
                inner.wake_and_scan();
            }
        }
        ClientMessage::KeyEvent { down, keysym } => {
            let keys = client.state().keys.keysym(keysym, down);
            if keys.is_empty() {
                log::debug!("VNC: keysym {keysym:#x} has no key on the US layout");
            }
            for (k, d) in keys {
                inner.input.key(k, d);
            }
            inner.wake(true);
        }
        ClientMessage::QemuExtendedKey {
            down,
            keysym,
            keycode,
        } => {
            match XtKey::from_qemu(keycode) {
                Some(k) => inner.input.key(k, down),
                None => {
                    let keys = client.state().keys.keysym(keysym, down);
                    for (k, d) in keys {
                        inner.input.key(k, d);
                    }
                }
            }
            inner.wake(true);
        }
        ClientMessage::PointerEvent { buttons, x, y } => {
            let (w, h) = client.state().size;
            inner.input.pointer(PointerEvent {
                x: x.min(w.saturating_sub(1) as u16),
                y: y.min(h.saturating_sub(1) as u16),
                buttons,
                width: w as u16,
                height: h as u16,
            });
            inner.wake(true);
        }
        ClientMessage::ClientCutText(text) => {
            log::debug!(
                "VNC: {} sent {} bytes of clipboard (ignored)",
                client.peer,
                text.len()
            );
        }
        ClientMessage::SetDesktopSize { .. } => {
            client.state().resize_reply = true;
            inner.wake(false);
        }
        ClientMessage::EnableContinuousUpdates { .. }
        | ClientMessage::Fence { .. }
        | ClientMessage::QemuAudio => {}
    }
    Ok(())
}

/// Time a new client has to get through ProtocolVersion, security and ClientInit.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// Shortest scroll worth a CopyRect, in rows with content.
const SCROLL_MIN_ROWS: usize = 16;

fn refresh_loop(inner: &Arc<Inner>) {
    let cfg = &inner.config;
    let (w, h) = inner.source.size();
    let mut shadow = Shadow::new(w as usize, h as usize);
    let mut prev = Shadow::new(w as usize, h as usize);
    let mut changed = TileMap::new(w as usize, h as usize);
    shadow.load_all(inner.source.as_ref());
    let mut prev_valid = false;
    let mut interval = cfg.refresh_min;
    let mut next_scan = Instant::now();
    loop {
        {
            let mut k = inner.kick.lock().unwrap_or_else(|e| e.into_inner());
            loop {
                if k.stop {
                    return;
                }
                if k.input {
                    k.input = false;
                    interval = cfg.refresh_min;
                    next_scan = next_scan.min(Instant::now() + interval);
                }
                if k.scan {
                    k.scan = false;
                    next_scan = Instant::now();
                }
                if k.pending {
                    k.pending = false;
                    break;
                }
                let now = Instant::now();
                if now >= next_scan {
                    break;
                }
                let (g, _) = inner
                    .kick_cv
                    .wait_timeout(k, next_scan - now)
                    .unwrap_or_else(|e| e.into_inner());
                k = g;
            }
        }
        if let Some(leds) = inner.input.leds() {
            apply_leds(inner, leds);
        }
        let now = Instant::now();
        let mut scroll: Option<Scroll> = None;
        if now >= next_scan {
            let (nw, nh) = inner.source.size();
            if (nw as usize, nh as usize) != (shadow.width, shadow.height)
                && (1..=8192).contains(&nw)
                && (1..=8192).contains(&nh)
            {
                shadow = Shadow::new(nw as usize, nh as usize);
                prev = Shadow::new(nw as usize, nh as usize);
                prev_valid = false;
                shadow.load_all(inner.source.as_ref());
                changed = TileMap::new(nw as usize, nh as usize);
                log::info!("VNC: screen resized to {nw}x{nh}");
                inner.emit(VncEvent::Resized {
                    width: nw,
                    height: nh,
                });
            } else {
                let want_scroll = inner.clients().iter().any(|c| c.state().prefs.copy_rect);
                if want_scroll && !prev_valid {
                    prev.pixels.copy_from_slice(&shadow.pixels);
                }
                prev_valid = want_scroll;
                shadow.scan(inner.source.as_ref(), &mut changed);
                // Look for a scroll only when much of the screen changed.
                if want_scroll && changed.count() * 8 >= changed.tiles_x * changed.tiles_y {
                    scroll = find_vertical_scroll(
                        &prev.pixels,
                        &shadow.pixels,
                        shadow.width,
                        shadow.height,
                        shadow.height / 2,
                        SCROLL_MIN_ROWS,
                    );
                }
                if want_scroll {
                    shadow.copy_tiles_to(&mut prev.pixels, &changed);
                }
            }
            interval = if changed.any() {
                cfg.refresh_min
            } else {
                (interval + cfg.refresh_step).min(cfg.refresh_max)
            };
            next_scan = now + interval;
        }
        serve_clients(inner, &shadow, &changed, scroll);
        changed.clear();
    }
}

fn serve_clients(inner: &Arc<Inner>, shadow: &Shadow, changed: &TileMap, scroll: Option<Scroll>) {
    let cfg = &inner.config;
    let soft = (shadow.width * shadow.height * 4).max(1 << 20);
    let hard = soft * 4;
    let cursor = inner
        .cursor
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let leds = inner.leds.load(Ordering::Acquire);
    let clients: Vec<Arc<Client>> = {
        let mut list = inner.clients();
        list.retain(|c| !c.is_closed());
        list.clone()
    };
    for c in clients {
        let (backlog, last_progress) = c.out.backlog();
        if backlog > hard {
            let reason = format!("output backlog {backlog} bytes exceeds {hard}");
            log::warn!("VNC: dropping {}: {reason}", c.peer);
            c.close(&reason);
            continue;
        }
        if backlog > soft && last_progress.elapsed() > cfg.stall_timeout {
            let reason = format!(
                "stalled: {backlog} bytes unsent for {:.1} s",
                last_progress.elapsed().as_secs_f64()
            );
            log::warn!("VNC: dropping {}: {reason}", c.peer);
            c.close(&reason);
            continue;
        }
        let mut st = c.state();
        if !st.ready {
            continue;
        }
        if st.size == (shadow.width, shadow.height) {
            st.absorb(changed, scroll);
        }
        let resize = st.size != (shadow.width, shadow.height);
        if !st.want_update || !(st.has_work() || resize) || backlog > soft {
            continue;
        }
        if let Err(e) = st.build_update(shadow, cursor.as_ref(), leds, &c.out) {
            drop(st);
            log::warn!("VNC: dropping {}: {e}", c.peer);
            c.close(&e.to_string());
        }
    }
}
