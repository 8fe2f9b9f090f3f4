//! The server against hostile local clients: wrong passwords are answered late and ever later,
//! parallel guesses take turns, the handshake has one deadline however slowly bytes trickle
//! in, and a flood of unauthenticated TCP connections cannot lock the owner's unix socket out.

mod vnc_common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use vireo_vmm::vnc::{self, auth, MemFramebuffer, VncConfig, VncServer};
use vnc_common::Recorder;

const PASSWORD: &str = "secret";

struct Server {
    server: VncServer,
    socket: PathBuf,
    dir: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A password-protected server on a unix socket and loopback TCP, with `tweak` applied.
fn serve(tag: &str, tweak: impl FnOnce(&mut VncConfig)) -> Server {
    let dir = vnc_common::tmpdir(tag);
    let socket = dir.join("vnc.sock");
    let mut config = VncConfig {
        unix_path: Some(socket.clone()),
        tcp: Some("127.0.0.1:0".parse().unwrap()),
        password: Some(PASSWORD.into()),
        ..VncConfig::default()
    };
    tweak(&mut config);
    let server = vnc::start(
        config,
        Arc::new(MemFramebuffer::new(64, 48)),
        Arc::new(Recorder::default()),
        None,
    )
    .unwrap();
    Server {
        server,
        socket,
        dir,
    }
}

/// Either kind of socket, read with a timeout so that a test fails instead of hanging.
trait Conn: Read + Write {}
impl Conn for UnixStream {}
impl Conn for TcpStream {}

fn unix(s: &Server) -> Box<dyn Conn> {
    let c = UnixStream::connect(&s.socket).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    Box::new(c)
}

fn tcp(s: &Server) -> Box<dyn Conn> {
    let c = TcpStream::connect(s.server.info().tcp.unwrap()).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    Box::new(c)
}

fn read_n(c: &mut dyn Conn, n: usize) -> Vec<u8> {
    let mut b = vec![0; n];
    c.read_exact(&mut b).unwrap();
    b
}

/// RFB 3.8 up to the VNC-auth challenge.
fn to_challenge(c: &mut dyn Conn) -> [u8; 16] {
    assert_eq!(read_n(c, 12), b"RFB 003.008\n");
    c.write_all(b"RFB 003.008\n").unwrap();
    assert_eq!(read_n(c, 2), [1, 2], "one security type: VNC auth");
    c.write_all(&[2]).unwrap();
    read_n(c, 16).try_into().unwrap()
}

/// Answers the challenge with `password`; returns the SecurityResult and how long it took.
fn answer(c: &mut dyn Conn, challenge: &[u8; 16], password: &str) -> (u32, Duration) {
    let response = auth::response(password.as_bytes(), challenge);
    let t0 = Instant::now();
    c.write_all(&response).unwrap();
    let r = read_n(c, 4);
    (u32::from_be_bytes(r.try_into().unwrap()), t0.elapsed())
}

/// One whole attempt on a fresh unix connection.
fn attempt(s: &Server, password: &str) -> (u32, Duration) {
    let mut c = unix(s);
    let ch = to_challenge(&mut *c);
    let result = answer(&mut *c, &ch, password);
    if result.0 != 0 {
        // 3.8 says why, and the one attempt this connection had is spent.
        let n = u32::from_be_bytes(read_n(&mut *c, 4).try_into().unwrap()) as usize;
        assert_eq!(read_n(&mut *c, n), b"authentication failed");
        let _ = c.write_all(&auth::response(PASSWORD.as_bytes(), &ch));
        let mut rest = Vec::new();
        let _ = c.read_to_end(&mut rest);
        assert!(rest.is_empty(), "a second answer got {rest:?}");
    }
    result
}

#[test]
fn a_wrong_password_is_answered_late_and_ever_later_a_right_one_at_once() {
    assert!(VncConfig::default().auth_fail_delay >= Duration::from_secs(1));
    let d = Duration::from_millis(400);
    let s = serve("authdelay", |c| c.auth_fail_delay = d);
    let (ok, t) = attempt(&s, PASSWORD);
    assert_eq!(ok, 0);
    assert!(t < d, "a right password took {t:?}");
    let (r1, t1) = attempt(&s, "wrong");
    assert_eq!(r1, 1);
    assert!(
        t1 >= d,
        "first failure answered after {t1:?}, want >= {d:?}"
    );
    let (r2, t2) = attempt(&s, "wrong");
    assert_eq!(r2, 1);
    assert!(
        t2 >= 2 * d,
        "second failure answered after {t2:?}, want >= {:?}",
        2 * d
    );
    let (ok, t) = attempt(&s, PASSWORD);
    assert_eq!(ok, 0);
    assert!(t < d, "a right password after failures took {t:?}");
    // The success reset the back-off.
    let (r3, t3) = attempt(&s, "wrong");
    assert_eq!(r3, 1);
    assert!(
        t3 >= d && t3 < 2 * d,
        "failure after a success answered after {t3:?}, want {d:?}..{:?}",
        2 * d
    );
}

#[test]
fn parallel_guesses_take_turns() {
    let d = Duration::from_millis(300);
    let s = serve("authturns", |c| c.auth_fail_delay = d);
    let mut a = tcp(&s);
    let mut b = tcp(&s);
    let cha = to_challenge(&mut *a);
    let chb = to_challenge(&mut *b);
    let t0 = Instant::now();
    let wrong_a = auth::response(b"wrong", &cha);
    let wrong_b = auth::response(b"wrong", &chb);
    a.write_all(&wrong_a).unwrap();
    b.write_all(&wrong_b).unwrap();
    let ra = read_n(&mut *a, 4);
    let ta = t0.elapsed();
    let rb = read_n(&mut *b, 4);
    let tb = t0.elapsed();
    assert_eq!((ra[3], rb[3]), (1, 1));
    // One after the other: d for the first, then 2d more for the second.
    assert!(ta >= d, "{ta:?}");
    assert!(
        tb >= 3 * d,
        "the second parallel guess came back after {tb:?}"
    );
}

/// True once the server has closed `c` (EOF or reset), checked without blocking long.
fn closed(c: &UnixStream) -> bool {
    c.set_nonblocking(true).unwrap();
    let mut b = [0u8; 64];
    let r = (&*c).read(&mut b);
    c.set_nonblocking(false).unwrap();
    match r {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => false,
        Err(_) => true,
    }
}

#[test]
fn the_handshake_has_one_deadline_however_slow_the_trickle() {
    let deadline = Duration::from_millis(1500);
    let s = serve("deadline", |c| {
        c.handshake_timeout = deadline;
        c.password = None;
        c.tcp = None;
    });
    let c = UnixStream::connect(&s.socket).unwrap();
    let t0 = Instant::now();
    let mut greeting = [0u8; 12];
    (&c).read_exact(&mut greeting).unwrap();
    // One byte of the version every 250 ms: no single read ever waits long.
    let mut dropped_at = None;
    for &byte in b"RFB 003.008\n" {
        if closed(&c) {
            dropped_at = Some(t0.elapsed());
            break;
        }
        if (&c).write_all(&[byte]).is_err() {
            dropped_at = Some(t0.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    // If the version got through, wait (silently) a little past the deadline.
    while dropped_at.is_none() && t0.elapsed() < deadline + Duration::from_secs(2) {
        if closed(&c) {
            dropped_at = Some(t0.elapsed());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let at = dropped_at.expect("the trickling client was never dropped");
    assert!(
        at >= deadline && at < deadline + Duration::from_millis(1000),
        "dropped after {at:?}, want just past {deadline:?}"
    );
    // A prompt client still gets in.
    let mut ok = UnixStream::connect(&s.socket).unwrap();
    ok.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut b = [0u8; 12];
    ok.read_exact(&mut b).unwrap();
    ok.write_all(b"RFB 003.008\n").unwrap();
    let mut b = [0u8; 2];
    ok.read_exact(&mut b).unwrap();
    ok.write_all(&[1]).unwrap();
    let mut b = [0u8; 4];
    ok.read_exact(&mut b).unwrap();
    assert_eq!(b, [0, 0, 0, 0]);
    ok.write_all(&[1]).unwrap();
    let mut b = [0u8; 4];
    ok.read_exact(&mut b).unwrap();
    assert_eq!(b, [0, 64, 0, 48], "ServerInit size");
}

/// Waits for the greeting or the end of the connection: true if greeted.
fn greeted(c: &mut TcpStream) -> bool {
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut b = [0u8; 12];
    match c.read_exact(&mut b) {
        Ok(()) => {
            assert_eq!(&b, b"RFB 003.008\n");
            true
        }
        Err(_) => false,
    }
}

#[test]
fn a_flood_of_unauthenticated_tcp_connections_does_not_lock_the_owner_out() {
    let s = serve("flood", |_| {});
    let cap = VncConfig::default().max_pending;
    let mut flood = Vec::new();
    for _ in 0..40 {
        flood.push(TcpStream::connect(s.server.info().tcp.unwrap()).unwrap());
    }
    let held = flood.iter_mut().map(greeted).filter(|&g| g).count();
    assert!(
        held <= cap,
        "{held} unauthenticated TCP connections were let in (cap {cap})"
    );
    // The owner's console on the unix socket gets in and is served.
    let mut c = unix(&s);
    let ch = to_challenge(&mut *c);
    assert_eq!(answer(&mut *c, &ch, PASSWORD).0, 0);
    c.write_all(&[1]).unwrap();
    assert_eq!(read_n(&mut *c, 4), [0, 64, 0, 48], "ServerInit size");
    // Pending connections are not clients; the authenticated one is.
    assert!(s.server.client_count() >= 1);
    drop(flood);
}

#[test]
fn only_authenticated_clients_count_against_max_clients() {
    let s = serve("maxclients", |c| c.max_clients = 2);
    let mut owners = Vec::new();
    // Two pending connections on the unix socket do not use up the two client places.
    let idle: Vec<_> = (0..2).map(|_| unix(&s)).collect();
    for _ in 0..2 {
        let mut c = unix(&s);
        let ch = to_challenge(&mut *c);
        assert_eq!(answer(&mut *c, &ch, PASSWORD).0, 0);
        c.write_all(&[1]).unwrap();
        assert_eq!(read_n(&mut *c, 4), [0, 64, 0, 48]);
        owners.push(c);
    }
    // A third authenticated client is one too many: it is closed instead of served.
    let mut c = unix(&s);
    let ch = to_challenge(&mut *c);
    assert_eq!(answer(&mut *c, &ch, PASSWORD).0, 0);
    c.write_all(&[1]).unwrap();
    let mut rest = Vec::new();
    let _ = c.read_to_end(&mut rest);
    assert!(rest.is_empty(), "a third client was served: {rest:?}");
    drop(idle);
}
