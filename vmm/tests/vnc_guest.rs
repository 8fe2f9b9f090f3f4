//! The whole path on the local /dev/kvm with the real `vireo-vmm` binary: a tiny guest paints
//! into the framebuffer (found through KVM's dirty log, since the server starts before the
//! guest runs), vncdotool and the control socket's `screendump` see exactly those pixels,
//! and a key typed with vncdotool reaches the guest's i8042 as set-1 scancodes.

mod tiny;
mod vnc_common;

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;
use tiny::{asm, Vmm};

const T: Duration = Duration::from_secs(30);
const W: usize = 320;
const H: usize = 200;
const ROWS: usize = 40;
const COLOUR: u32 = 0x00ff_8000;

fn guest() -> Vec<u8> {
    let mut g = Vec::new();
    g.extend([0xbf, 0x00, 0x00, 0x00, 0xd0]); // mov edi, 0xd0000000 (framebuffer)
    g.push(0xb9);
    g.extend(((W * ROWS) as u32).to_le_bytes()); // mov ecx, W*ROWS
    g.push(0xb8);
    g.extend(COLOUR.to_le_bytes()); // mov eax, COLOUR
    g.extend([0xf3, 0xab]); // rep stosd
    g.extend(asm::print("F"));
    // wait: in al, 0x64; test al, 1; jz wait; in al, 0x60; out 0x3f8, al; jmp wait
    g.extend([0xe4, 0x64, 0xa8, 0x01, 0x74, 0xfa, 0xe4, 0x60]);
    g.extend([0x66, 0xba, 0xf8, 0x03, 0xee, 0xeb, 0xf1]);
    g
}

fn check(px: &[u32], what: &str) {
    assert_eq!(px.len(), W * H, "{what}: wrong size");
    for (i, &p) in px.iter().enumerate() {
        let want = if i / W < ROWS { COLOUR } else { 0 };
        assert_eq!(p & 0xffffff, want, "{what}: pixel ({}, {})", i % W, i / W);
    }
}

#[test]
fn guest_pixels_reach_vncdotool_and_screendump_and_keys_reach_the_guest() {
    vnc_common::require("vncdo", "vncdotool (pip install vncdotool)");
    let dir = tiny::tempdir("vnc");
    let sock = dir.join("vnc.sock");
    let s2 = sock.clone();
    let mut vm = Vmm::start("vnc", &guest(), move |cfg| {
        cfg["display"] = json!({"width": W, "height": H, "vnc": {"unix_socket": s2}});
    });
    assert!(
        vm.wait_serial(b"F", T),
        "guest did not paint: {:?}",
        vm.serial()
    );
    let mode = std::fs::metadata(&sock)
        .expect("VNC socket")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "VNC socket mode {mode:o}");

    // The refresh timer may be backing off: give it a moment, then capture.
    std::thread::sleep(Duration::from_millis(300));
    let png = dir.join("cap.png");
    let out = Command::new("vncdo")
        .arg("-s")
        .arg(&sock)
        .arg("capture")
        .arg(&png)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "vncdo: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    check(&vnc_common::read_png(&png).2, "vncdotool capture");

    let mut c = vm.connect();
    let sd = dir.join("sd.png");
    let r = c.execute("screendump", json!({"filename": sd}));
    assert_eq!(r["return"], json!({}), "{r}");
    check(&vnc_common::read_png(&sd).2, "screendump");
    let info = c.execute("vnc-info", json!({}));
    assert_eq!(info["return"]["unix_path"], json!(sock), "{info}");
    assert_eq!(info["return"]["width"], W, "{info}");

    let out = Command::new("vncdo")
        .arg("-s")
        .arg(&sock)
        .args(["type", "a"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "vncdo: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        vm.wait_serial(&[b'F', 0x1e, 0x9e], T),
        "scancodes for 'a' did not reach the guest: {:x?}",
        vm.serial()
    );
    c.execute("quit", json!({}));
    let (st, err) = vm.wait(T);
    assert_eq!(st.code(), Some(0), "{err}");
    assert!(!sock.exists(), "VNC socket left behind");
}

/// (thread name, Seccomp field) of every thread of process `pid`.
fn thread_filters(pid: u32) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for t in std::fs::read_dir(format!("/proc/{pid}/task")).expect("task dir") {
        let Ok(t) = t else { continue };
        let Ok(status) = std::fs::read_to_string(t.path().join("status")) else {
            continue;
        };
        let field = |k: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(k))
                .map(|v| v.trim().to_string())
                .unwrap_or_default()
        };
        out.push((field("Name:"), field("Seccomp:")));
    }
    out.sort();
    out
}

#[test]
fn every_thread_of_a_vmm_serving_vnc_runs_under_a_seccomp_filter() {
    let dir = tiny::tempdir("vnc-seccomp");
    let sock = dir.join("vnc.sock");
    let s2 = sock.clone();
    let mut vm = Vmm::start("vnc-seccomp", &guest(), move |cfg| {
        cfg["display"] = json!({"width": W, "height": H, "vnc": {"unix_socket": s2}});
    });
    assert!(
        vm.wait_serial(b"F", T),
        "guest did not start: {:?}",
        vm.serial()
    );
    // A client that stays connected, so its reader and writer threads exist: read the
    // server's ProtocolVersion and hold the connection there.
    let mut client = UnixStream::connect(&sock).expect("connect to the VNC socket");
    client.set_read_timeout(Some(T)).unwrap();
    let mut version = [0u8; 12];
    client.read_exact(&mut version).expect("ProtocolVersion");
    assert_eq!(&version[..4], b"RFB ");
    let mut c = vm.connect();
    let pid = vm.child.id();
    // The main thread installs its filter just after starting the vCPUs: allow a moment.
    let end = Instant::now() + T;
    let threads = loop {
        let threads = thread_filters(pid);
        let all = threads.iter().all(|(_, f)| f == "2");
        let names = |p: &str| threads.iter().filter(|(n, _)| n.starts_with(p)).count();
        let vnc_ready = names("vnc-refresh") == 1
            && names("vnc-accept") == 1
            && names("vnc-read-") == 1
            && names("vnc-write-") == 1;
        if (all && vnc_ready) || Instant::now() > end {
            break threads;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    for (name, filter) in &threads {
        assert_eq!(
            filter, "2",
            "thread {name:?} of vireo-vmm runs without a seccomp filter (Seccomp: {filter}); all: {threads:?}"
        );
    }
    for want in ["vnc-refresh", "vnc-accept", "vnc-read-", "vnc-write-"] {
        assert!(
            threads.iter().any(|(n, _)| n.starts_with(want)),
            "no {want} thread: {threads:?}"
        );
    }
    drop(client);
    c.execute("quit", json!({}));
    let (st, err) = vm.wait(T);
    assert_eq!(st.code(), Some(0), "{err}");
}
