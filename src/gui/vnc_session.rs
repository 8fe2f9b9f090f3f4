//! A VNC client session for the console: vnc-rs on a tokio runtime of its own thread, with ONE
//! task that selects between the GUI's commands and `recv_event` (vnc-rs holds a lock while it
//! waits for an event, so input from another task would stall). Rectangles land in one shared
//! framebuffer; the widget presents whole frames on its frame clock. Incremental updates are
//! requested here on a timer, since vnc-rs has no end-of-update marker.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use vnc::{PixelFormat, VncConnector, VncEncoding, VncEvent, X11Event};

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
        if data.len() < w * h * 4 {
            return;
        }
        for row in 0..h {
            let ty = y + row;
            if ty >= self.height {
                break;
            }
            let cols = w.min(self.width.saturating_sub(x));
            let src = &data[row * w * 4..row * w * 4 + cols * 4];
            let at = (ty * self.width + x) * 4;
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

/// Connects on a thread of its own; status changes arrive on the returned channel.
pub fn connect(address: Address, password: String) -> (Session, async_channel::Receiver<Status>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let (status_tx, status_rx) = async_channel::unbounded();
    let framebuffer = Arc::new(Mutex::new(Framebuffer::default()));
    let fb = framebuffer.clone();
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
            let result = runtime.block_on(run(address, password, rx, fb, status_tx.clone()));
            let message = match result {
                Ok(()) => String::new(),
                Err(e) => e,
            };
            let _ = status_tx.send_blocking(Status::Ended(message));
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
) -> Result<(), String> {
    match &address {
        Address::Unix(path) => {
            let stream = tokio::net::UnixStream::connect(path)
                .await
                .map_err(|e| format!("{}: {e}", path.display()))?;
            session(stream, password, commands, fb, status).await
        }
        Address::Tcp(host, port) => {
            let stream = tokio::net::TcpStream::connect((host.as_str(), *port))
                .await
                .map_err(|e| format!("{host}:{port}: {e}"))?;
            session(stream, password, commands, fb, status).await
        }
    }
}

async fn session<S>(
    stream: S,
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
    let mut tick = tokio::time::interval(Duration::from_millis(33));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
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
                match event {
                    VncEvent::SetResolution(s) => fb.resize(s.width.into(), s.height.into()),
                    VncEvent::RawImage(r, data) => fb.put(
                        r.x.into(), r.y.into(), r.width.into(), r.height.into(), &data,
                    ),
                    VncEvent::Copy(d, s) => fb.copy(
                        d.x.into(), d.y.into(), s.x.into(), s.y.into(),
                        d.width.into(), d.height.into(),
                    ),
                    VncEvent::Error(e) => return Err(e),
                    _ => {}
                }
            }
            _ = tick.tick() => {
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
    }
}
