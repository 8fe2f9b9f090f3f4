//! Server behaviour seen from a hand-written client on a raw socket: the handshake in each
//! protocol version, colour-map clients, QEMU extended key events, idle silence, resizes (a
//! ramfb mode set by the guest among them), a
//! stalled client that must not hold up anyone else, and listener rules.

mod vnc_common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use vireo_vmm::vnc::{self, MemFramebuffer, VncConfig, VncEvent, XtKey};
use vnc_common::{start, Recorder};

struct Raw {
    s: UnixStream,
}

impl Raw {
    fn connect(path: &std::path::Path) -> Raw {
        let s = UnixStream::connect(path).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        Raw { s }
    }
    fn read(&mut self, n: usize) -> Vec<u8> {
        let mut b = vec![0; n];
        self.s.read_exact(&mut b).unwrap();
        b
    }
    fn u8(&mut self) -> u8 {
        self.read(1)[0]
    }
    fn u16(&mut self) -> u16 {
        let b = self.read(2);
        u16::from_be_bytes([b[0], b[1]])
    }
    fn u32(&mut self) -> u32 {
        let b = self.read(4);
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }
    fn send(&mut self, b: &[u8]) {
        self.s.write_all(b).unwrap();
    }
    /// Handshake without password; returns (width, height).
    fn init(&mut self, version: &[u8; 12]) -> (u16, u16) {
        assert_eq!(&self.read(12), b"RFB 003.008\n");
        self.send(version);
        if version == b"RFB 003.003\n" {
            assert_eq!(self.u32(), 1, "3.3: server picks security None");
        } else {
            assert_eq!(self.read(2), [1, 1]);
            self.send(&[1]);
            if version == b"RFB 003.008\n" {
                assert_eq!(self.u32(), 0, "3.8 SecurityResult");
            }
        }
        self.send(&[1]);
        let w = self.u16();
        let h = self.u16();
        let pf = self.read(16);
        assert_eq!(pf[0], 32);
        let n = self.u32() as usize;
        self.read(n);
        (w, h)
    }
    fn set_encodings(&mut self, list: &[i32]) {
        let mut m = vec![2, 0];
        m.extend((list.len() as u16).to_be_bytes());
        for e in list {
            m.extend(e.to_be_bytes());
        }
        self.send(&m);
    }
    fn request(&mut self, incremental: bool, w: u16, h: u16) {
        let mut m = vec![3, incremental as u8, 0, 0, 0, 0];
        m.extend(w.to_be_bytes());
        m.extend(h.to_be_bytes());
        self.send(&m);
    }
}

/// One rectangle of an update: (x, y, w, h, encoding, raw pixel data if Raw).
type RectData = (u16, u16, u16, u16, i32, Vec<u8>);

/// Reads server messages until a FramebufferUpdate; Raw data needs `bpp` bytes per pixel.
fn read_update(c: &mut Raw, bpp: usize) -> (Vec<RectData>, Option<Vec<u8>>) {
    let mut colour_map = None;
    loop {
        match c.u8() {
            0 => {
                c.u8();
                let n = c.u16();
                let mut rects = Vec::new();
                for _ in 0..n {
                    let (x, y, w, h) = (c.u16(), c.u16(), c.u16(), c.u16());
                    let enc = c.u32() as i32;
                    let data = match enc {
                        0 => c.read(w as usize * h as usize * bpp),
                        -261 => c.read(1),
                        -308 => {
                            let k = c.u8() as usize;
                            c.read(3 + 16 * k)
                        }
                        _ => Vec::new(),
                    };
                    rects.push((x, y, w, h, enc, data));
                }
                return (rects, colour_map);
            }
            1 => {
                c.u8();
                let first = c.u16();
                let n = c.u16() as usize;
                assert_eq!(first, 0);
                colour_map = Some(c.read(n * 6));
            }
            other => panic!("unexpected server message {other}"),
        }
    }
}

#[test]
fn rfb_33_and_37_handshakes_and_a_colour_map_client() {
    let t = start("v33", 64, 32, None);
    t.fb.fill_rect(0, 0, 64, 32, 0x00ff_0000);
    for v in [b"RFB 003.003\n", b"RFB 003.007\n"] {
        let mut c = Raw::connect(&t.socket);
        assert_eq!(c.init(v), (64, 32));
        // SetPixelFormat with true-colour off: the server answers with its BGR233 map.
        let mut m = vec![0, 0, 0, 0, 8, 8, 0, 0];
        m.extend([0; 12]);
        c.send(&m);
        c.request(false, 64, 32);
        let (rects, map) = read_update(&mut c, 1);
        let map = map.expect("SetColourMapEntries before the update");
        assert_eq!(map.len(), 256 * 6);
        let pixel = rects[0].5[0] as usize;
        // The index must name pure red in the map the server sent.
        assert_eq!(&map[pixel * 6..pixel * 6 + 6], &[0xff, 0xff, 0, 0, 0, 0]);
    }
}

#[test]
fn qemu_extended_key_events_and_led_state() {
    let t = start("qkey", 64, 32, None);
    let mut c = Raw::connect(&t.socket);
    c.init(b"RFB 003.008\n");
    c.set_encodings(&[0, -258, -261]);
    c.request(false, 64, 32);
    let (rects, _) = read_update(&mut c, 4);
    assert!(
        rects.iter().any(|r| r.4 == -258),
        "no extended-key ack: {rects:?}"
    );
    assert!(rects.iter().any(|r| r.4 == -261), "no LED state: {rects:?}");
    // KP Enter (0xE0 0x1C folded into 0x9C), pressed and released.
    for down in [1u16, 0] {
        let mut m = vec![255, 0];
        m.extend(down.to_be_bytes());
        m.extend(0xff8du32.to_be_bytes());
        m.extend(0x9cu32.to_be_bytes());
        c.send(&m);
    }
    let keys = t.input.wait_keys(2, Duration::from_secs(5));
    assert_eq!(keys, [(XtKey(0xe01c), true), (XtKey(0xe01c), false)]);
    // The guest turns Caps Lock on: the client hears about it.
    t.server.set_led_state(4);
    c.request(true, 64, 32);
    let (rects, _) = read_update(&mut c, 4);
    let led = rects.iter().find(|r| r.4 == -261).expect("LED update");
    assert_eq!(led.5, [4]);
}

#[test]
fn idle_screen_sends_nothing_and_changes_arrive() {
    let t = start("idle", 320, 200, None);
    let mut c = Raw::connect(&t.socket);
    c.init(b"RFB 003.008\n");
    c.set_encodings(&[0]);
    c.request(false, 320, 200);
    read_update(&mut c, 4);
    c.request(true, 320, 200);
    c.s.set_read_timeout(Some(Duration::from_millis(1500)))
        .unwrap();
    let mut b = [0u8; 1];
    match c.s.read(&mut b) {
        Err(e)
            if e.kind() == std::io::ErrorKind::WouldBlock
                || e.kind() == std::io::ErrorKind::TimedOut => {}
        other => panic!("an idle screen produced output: {other:?}"),
    }
    c.s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let t0 = Instant::now();
    t.fb.fill_rect(100, 50, 3, 3, 0xffffff);
    let (rects, _) = read_update(&mut c, 4);
    let latency = t0.elapsed();
    assert_eq!(rects.len(), 1);
    let (x, y, w, h, _, _) = rects[0];
    assert!(
        x <= 100 && y <= 50 && x + w >= 103 && y + h >= 53 && w <= 32 && h <= 32,
        "{rects:?}"
    );
    // The timer had backed off to its maximum (1 s) while idle.
    assert!(latency < Duration::from_millis(1500), "{latency:?}");
}

#[test]
fn resize_reaches_clients_and_the_event_hook() {
    let dir = vnc_common::tmpdir("resize");
    let sock = dir.join("s.sock");
    let fb = Arc::new(MemFramebuffer::new(200, 100));
    let events = Arc::new(Mutex::new(Vec::new()));
    let ev2 = events.clone();
    let server = vnc::start(
        VncConfig {
            unix_path: Some(sock.clone()),
            ..Default::default()
        },
        fb.clone(),
        Arc::new(Recorder::default()),
        Some(Box::new(move |e| ev2.lock().unwrap().push(e))),
    )
    .unwrap();
    let mut c = Raw::connect(&sock);
    c.init(b"RFB 003.008\n");
    c.set_encodings(&[0, -223]);
    c.request(false, 200, 100);
    read_update(&mut c, 4);
    fb.resize(300, 150);
    c.request(true, 200, 100);
    let (rects, _) = read_update(&mut c, 4);
    assert_eq!(rects[0].4, -223);
    assert_eq!((rects[0].2, rects[0].3), (300, 150));
    // Then the whole new screen.
    let (rects, _) = read_update(&mut c, 4);
    let area: u32 = rects.iter().map(|r| u32::from(r.2) * u32::from(r.3)).sum();
    assert_eq!(area, 300 * 150);
    assert!(events.lock().unwrap().contains(&VncEvent::Resized {
        width: 300,
        height: 150
    }));
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The firmware's display: a client connected to the blank screen of an unconfigured ramfb
/// gets a DesktopSize rectangle when the guest writes its `etc/ramfb` configuration, then the
/// pixels the guest put in its RAM; a second mode does the same.
#[test]
fn ramfb_mode_set_reaches_clients_as_desktop_size() {
    use vireo_vmm::devices::fw_cfg::FwCfgWriteHook;
    use vireo_vmm::devices::ramfb::{PixelFormat, Ramfb, RawConfig, BLANK_SIZE};
    use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

    let dir = vnc_common::tmpdir("ramfb");
    let sock = dir.join("s.sock");
    let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 8 << 20)]).unwrap();
    let mut ramfb = Ramfb::new(mem.clone());
    let events = Arc::new(Mutex::new(Vec::new()));
    let ev2 = events.clone();
    let server = vnc::start(
        VncConfig {
            unix_path: Some(sock.clone()),
            ..Default::default()
        },
        Arc::new(ramfb.clone()),
        Arc::new(Recorder::default()),
        Some(Box::new(move |e| ev2.lock().unwrap().push(e))),
    )
    .unwrap();
    let mut c = Raw::connect(&sock);
    let (w, h) = c.init(b"RFB 003.008\n");
    assert_eq!((u32::from(w), u32::from(h)), BLANK_SIZE);
    c.set_encodings(&[0, -223]);
    c.request(false, w, h);
    let (rects, _) = read_update(&mut c, 4);
    assert!(
        rects.iter().all(|r| r.5.iter().all(|&b| b == 0)),
        "blank is black"
    );

    // The guest draws, then sets a 320x200 XRGB8888 mode with padded rows.
    for (base, fw, fh, stride, colour) in [
        (0x10_0000u64, 320u16, 200u16, 1344u32, 0x00ab_cdefu32),
        (0x30_0000, 160, 100, 0, 0x0012_3456),
    ] {
        let stride_bytes = if stride == 0 {
            u64::from(fw) * 4
        } else {
            u64::from(stride)
        };
        let (x, y) = (u64::from(fw) - 1, u64::from(fh) / 2);
        let at = GuestAddress(base + y * stride_bytes + x * 4);
        mem.write_slice(&colour.to_le_bytes(), at).unwrap();
        ramfb.written(
            &RawConfig {
                addr: base,
                fourcc: PixelFormat::Xrgb8888.fourcc(),
                flags: 0,
                width: u32::from(fw),
                height: u32::from(fh),
                stride,
            }
            .to_bytes(),
        );
        c.request(true, w, h);
        let (rects, _) = read_update(&mut c, 4);
        assert_eq!(rects[0].4, -223, "{rects:?}");
        assert_eq!((rects[0].2, rects[0].3), (fw, fh));
        // Then the whole new screen, with the guest's pixel where it put it.
        let (rects, _) = read_update(&mut c, 4);
        let area: u32 = rects.iter().map(|r| u32::from(r.2) * u32::from(r.3)).sum();
        assert_eq!(area, u32::from(fw) * u32::from(fh));
        let mut found = Vec::new();
        for (rx, ry, rw, _, enc, data) in &rects {
            assert_eq!(*enc, 0);
            for (i, p) in data.chunks_exact(4).enumerate() {
                let v = u32::from_le_bytes([p[0], p[1], p[2], p[3]]);
                if v != 0 {
                    let px = u64::from(*rx) + (i % usize::from(*rw)) as u64;
                    let py = u64::from(*ry) + (i / usize::from(*rw)) as u64;
                    found.push((px, py, v));
                }
            }
        }
        assert_eq!(found, [(x, y, colour)]);
        assert!(events.lock().unwrap().contains(&VncEvent::Resized {
            width: u32::from(fw),
            height: u32::from(fh),
        }));
        assert_eq!(server.info().width, u32::from(fw));
    }
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_stalled_client_is_dropped_and_blocks_nobody() {
    let dir = vnc_common::tmpdir("stall");
    let sock = dir.join("s.sock");
    let fb = Arc::new(MemFramebuffer::new(1280, 800));
    let server = vnc::start(
        VncConfig {
            unix_path: Some(sock.clone()),
            stall_timeout: Duration::from_secs(2),
            ..Default::default()
        },
        fb.clone(),
        Arc::new(Recorder::default()),
        None,
    )
    .unwrap();
    // The stalled client asks for full frames of noise and never reads.
    let mut stalled = Raw::connect(&sock);
    stalled.init(b"RFB 003.008\n");
    stalled.set_encodings(&[0]);
    let mut healthy = Raw::connect(&sock);
    healthy.init(b"RFB 003.008\n");
    healthy.set_encodings(&[0]);
    // Six changed frames: each must reach the healthy client (10 s read timeout) while the
    // stalled one's queue is full.
    let mut worst_update = Duration::ZERO;
    for frame in 0..6 {
        let mut next = vec![0u32; 1280 * 800];
        vireo_vmm::vnc::synthetic::noise(&mut next, frame);
        let u0 = Instant::now();
        fb.update(|px, _, _| px.copy_from_slice(&next));
        worst_update = worst_update.max(u0.elapsed());
        let _ = stalled.s.write_all(&[3, 0, 0, 0, 0, 0, 5, 0, 3, 32]);
        healthy.request(true, 1280, 800);
        let (rects, _) = read_update(&mut healthy, 4);
        assert!(!rects.is_empty());
    }
    assert!(
        worst_update < Duration::from_millis(1000),
        "the framebuffer writer was held up for {worst_update:?}"
    );
    let end = Instant::now() + Duration::from_secs(15);
    while server.client_count() > 1 && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        server.client_count(),
        1,
        "the stalled client was not dropped"
    );
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn listener_rules() {
    let fb = Arc::new(MemFramebuffer::new(8, 8));
    let input = Arc::new(Recorder::default());
    let err = |cfg: VncConfig| {
        vnc::start(cfg, fb.clone(), input.clone(), None)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    };
    assert!(err(VncConfig::default()).contains("no listener"));
    assert!(err(VncConfig {
        tcp: Some("0.0.0.0:0".parse().unwrap()),
        password: Some("x".into()),
        ..Default::default()
    })
    .contains("not loopback"));
    assert!(err(VncConfig {
        tcp: Some("127.0.0.1:0".parse().unwrap()),
        ..Default::default()
    })
    .contains("requires a password"));
    // A live socket is not stolen; a stale one is replaced.
    let t = start("rules", 8, 8, None);
    assert!(err(VncConfig {
        unix_path: Some(t.socket.clone()),
        ..Default::default()
    })
    .contains("in use"));
}
