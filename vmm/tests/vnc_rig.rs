//! Debian's stock kernel under `vireo-vmm` with the framebuffer and the VNC server, on real
//! (nested) KVM through the rig: vesafb + fbcon give tty1 a text console, an interactive
//! shell runs on it, and real VNC clients inside L1 use it:
//! - vncdotool types `echo hello | tee /dev/ttyS0` + Enter and captures a PNG;
//! - gvnccapture (gtk-vnc) captures through a loopback TCP relay to the unix socket;
//! - TigerVNC's viewer, connected from before the kernel starts, shows it under Xvfb
//!   (screenshot of the X screen with `import`);
//! - the control socket's `screendump` writes a PNG.
//!
//! Every picture gets the same pixel check, no OCR: fbcon draws one fixed 8x16 font, so the
//! five cells of the output line "hello" must be pixel-identical to five cells of the typed
//! command line above it, differ from blank cells, and have the letter pattern of "hello"
//! (the two l's alike, the others all different). The command also writes to the serial port,
//! so a failure says whether the keys or the picture went wrong. Then a raw RFB client counts
//! the bytes an idle screen costs, with fbcon's blinking cursor and with the blink turned off.
//!
//! One test binary, one test: all of it shares one L1. cargo builds `vireo-vmm` for it
//! (`CARGO_BIN_EXE_vireo-vmm`; `VIREO_VMM` overrides). Needs vncdotool in the venv tests/dev.sh
//! makes (`${XDG_CACHE_HOME:-~/.cache}/vireo-test/venv`, or `VIREO_VNCDO_VENV`), shared into
//! L1 with the Python it was made from. Takes 5-7 minutes on the 2-core build machine.
//! Run: `cargo test -p vireo-vmm --test vnc_rig -- --nocapture`.

mod vnc_common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use vireo_rig::initramfs::{concat, Initramfs};
use vireo_rig::l2::{shell_quote as q, GuestImage, DEFAULT_CMDLINE};

const HELPER: &str = include_str!("vnc_common/rig_helper.py");
const W: u32 = 800;
const H: u32 = 600;
const CELL_W: u32 = 8;
const CELL_H: u32 = 16;
/// L1's working directory (private to L1; the host's rig cache is read-only there).
const L1_DIR: &str = "/tmp/vnc-rig";
const TYPED: &str = "echo hello | tee /dev/ttyS0";

/// Where gvnccapture connects: it speaks TCP only, and the VMM's TCP listener needs a
/// password (so does its unix socket then), which the other clients here cannot type
/// headlessly. A relay in L1 forwards this port to the unix socket; password and TCP are
/// tested against gvnccapture on the host (tests/vnc_peers.rs).
const TCP_PORT: u16 = 5957;

/// L2's part: an interactive busybox shell on tty1 (fbcon), which says on the serial port
/// when it is up; the rig's init runs this after loading its modules.
const SCENARIO: &str = r#"
cat > /etc/vnc-shell.rc <<'EOF'
PS1='# '
echo VNC-SHELL-READY > /dev/ttyS0
EOF
printf '\033[H\033[2J' > /dev/tty1
ENV=/etc/vnc-shell.rc setsid sh -c 'exec sh -i </dev/tty1 >/dev/tty1 2>&1' &
echo "VNC-SHELL-STARTED fb=$(cat /sys/class/graphics/fb0/virtual_size 2>&1) name=$(cat /sys/class/graphics/fb0/name 2>&1)"
while :; do sleep 3600; done
"#;

fn vmm_binary() -> PathBuf {
    let p = std::env::var_os("VIREO_VMM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_vireo-vmm")));
    assert!(
        p.is_file(),
        "{} missing: `cargo build -p vireo-vmm --bins` (or set VIREO_VMM)",
        p.display()
    );
    p
}

/// vncdotool's venv and what L1 must see of it: the venv and the Python it was made from.
fn vncdo() -> (PathBuf, Vec<PathBuf>) {
    let venv = std::env::var_os("VIREO_VNCDO_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let cache = std::env::var_os("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| {
                    PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache")
                });
            cache.join("vireo-test/venv")
        });
    let bin = venv.join("bin/vncdo");
    assert!(
        bin.is_file(),
        "{} missing: tests/dev.sh installs vncdotool there (python3 -m venv {0}; {0}/bin/pip \
         install vncdotool), or set VIREO_VNCDO_VENV",
        venv.display()
    );
    let mut shares = vec![venv.clone()];
    let cfg = std::fs::read_to_string(venv.join("pyvenv.cfg")).unwrap_or_default();
    if let Some(home) = cfg
        .lines()
        .find_map(|l| l.strip_prefix("home"))
        .and_then(|l| l.trim_start().strip_prefix('='))
    {
        // home is the interpreter's bin dir; its prefix holds the standard library.
        let prefix = Path::new(home.trim())
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        if !prefix.starts_with("/usr") && prefix.is_dir() {
            shares.push(prefix);
        }
    }
    (bin, shares)
}

/// Host-side directory for this run's initramfs and the pictures that come back.
fn work_dir() -> PathBuf {
    let d = vireo_rig::debian::cache_dir()
        .expect("rig cache")
        .join("vnc-rig")
        .join(std::process::id().to_string());
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("create work dir");
    d
}

fn initrd(image: &GuestImage, dir: &Path) -> PathBuf {
    let extra = dir.join("scenario.cpio");
    let mut img = Initramfs::new();
    img.file("scenario.sh", 0o755, SCENARIO);
    img.write(&extra).expect("write scenario archive");
    let out = dir.join("initrd.cpio");
    concat(&[&image.base_initrd, &extra], &out).expect("concatenate initramfs");
    out
}

/// The whole L1 side as one shell script. It never stops early: every stage prints what it
/// saw, and the pictures and logs come back base64-encoded between markers.
fn script(image: &GuestImage, initrd: &Path, vncdo: &Path) -> String {
    let cfg = serde_json::json!({
        "version": 1,
        "name": "vnc-rig",
        "memory_mib": 512,
        "vcpus": 1,
        "kernel": image.kernel,
        "initrd": initrd,
        "cmdline": DEFAULT_CMDLINE,
        "serial": { "log": format!("{L1_DIR}/serial.log") },
        "display": {
            "width": W,
            "height": H,
            "vnc": { "unix_socket": format!("{L1_DIR}/vnc.sock") },
        },
    });
    format!(
        r#"set -u
W={dir}
rm -rf $W; mkdir -p $W
ip link set lo up 2>/dev/null || busybox ip link set lo up
stage() {{ echo "STAGE $1 at $(cut -d' ' -f1 /proc/uptime)"; }}
printf '%s' {cfg} > $W/vm.json
printf '%s' {helper} > $W/h.py
H="python3 $W/h.py"
VNCDO={vncdo}
stage start
timeout -s KILL 1200 {vmm} --config $W/vm.json --control $W/ctl.sock > $W/vmm.out 2>&1 &
vpid=$!
# TigerVNC's viewer connects as soon as the socket exists and stays through the boot (blank
# screen, then vesafb/fbcon taking over), as the GUI's viewer would.
Xvfb :57 -screen 0 1024x768x24 -br -nolisten tcp > $W/xvfb.log 2>&1 &
xp=$!
i=0; while [ ! -S $W/vnc.sock ] && [ $i -lt 300 ]; do sleep 0.2; i=$((i+1)); done
sleep 2
DISPLAY=:57 xtigervncviewer -FullColor=1 -PreferredEncoding=ZRLE -NoJPEG=1 -Shared=1 $W/vnc.sock > $W/tiger.log 2>&1 &
tp=$!
if $H wait-serial $W/serial.log VNC-SHELL-READY 600 text; then
  stage shell-ready
  # The prompt is drawn right after the shell's ENV file ran.
  sleep 3
  stage type
  # One vncdotool run (Python + Twisted take a minute to start under TCG): type, wait for
  # fbcon, capture.
  timeout 400 $VNCDO -s $W/vnc.sock type {typed} key enter pause 8 capture $W/vncdo.png; echo "VNCDO-EXIT $?"
  if $H wait-serial $W/serial.log hello 30 line; then echo SERIAL-HELLO-OK; else echo SERIAL-HELLO-MISSING; fi
  stage screendump
  $H ctl $W/ctl.sock screendump '{{"filename": "'$W'/screendump.png"}}'
  stage gvnccapture
  $H relay {port} $W/vnc.sock > $W/relay.log 2>&1 &
  rp=$!
  sleep 2
  timeout 150 gvnccapture 127.0.0.1:{display} $W/gvnc.png > $W/gvnc.log 2>&1; echo "GVNC-EXIT $?"
  kill $rp
  stage tigervnc
  DISPLAY=:57 timeout 60 import -window root PNG24:$W/tiger1.png; echo "IMPORT-EXIT $?"
  sleep 10; DISPLAY=:57 timeout 60 import -window root PNG24:$W/tiger2.png; echo "IMPORT-EXIT $?"
  # Every thread of the VMM (vCPU, VNC refresh/accept, the viewer's reader and writer, main)
  # must run under a seccomp filter.
  vm=$(pgrep -P $vpid | head -n 1)
  for t in /proc/$vm/task/*; do echo "THREAD $(cat $t/comm) $(grep Seccomp: $t/status)"; done
  stage idle-blink
  echo IDLE-PHASE blink
  $H idle $W/vnc.sock 4 5
  $H ctl $W/ctl.sock send-text '{{"text": "echo 0 >/sys/class/graphics/fbcon/cursor_blink\n"}}'
  sleep 2
  stage idle-noblink
  echo IDLE-PHASE noblink
  $H idle $W/vnc.sock 4 5
else
  stage shell-never-ready
fi
stage quit
kill $tp $xp; wait $tp $xp 2>/dev/null
$H ctl $W/ctl.sock quit
i=0; while kill -0 $vpid 2>/dev/null && [ $i -lt 60 ]; do sleep 0.5; i=$((i+1)); done
kill -9 $vpid 2>/dev/null; wait $vpid; echo "VMM-EXIT $?"
for f in vncdo screendump gvnc tiger1 tiger2; do
  if [ -f $W/$f.png ]; then echo "PNG-BEGIN $f"; base64 $W/$f.png; echo "PNG-END $f"; fi
done
sed 's/^/SERIAL: /' $W/serial.log
sed 's/^/VMM: /' $W/vmm.out
sed 's/^/GVNC: /' $W/gvnc.log 2>/dev/null
sed 's/^/TIGER: /' $W/tiger.log 2>/dev/null
sed 's/^/XVFB: /' $W/xvfb.log 2>/dev/null
"#,
        dir = L1_DIR,
        cfg = q(&cfg.to_string()),
        helper = q(HELPER),
        vncdo = q(&vncdo.display().to_string()),
        vmm = q(&vmm_binary().display().to_string()),
        typed = q(TYPED),
        port = TCP_PORT,
        display = TCP_PORT - 5900,
    )
}

fn b64_decode(text: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            // Padding ends a group: what is left in the accumulator is not data.
            b'=' => {
                (acc, bits) = (0, 0);
                continue;
            }
            b'\n' | b'\r' | b' ' => continue,
            _ => return Err(format!("byte {c:#x} is not base64")),
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Ok(out)
}

/// name -> PNG bytes, from the PNG-BEGIN/PNG-END blocks.
fn pictures(text: &str) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut cur: Option<(String, String)> = None;
    for l in text.lines() {
        if let Some(n) = l.strip_prefix("PNG-BEGIN ") {
            cur = Some((n.trim().to_string(), String::new()));
        } else if l.starts_with("PNG-END ") {
            if let Some((n, b)) = cur.take() {
                match b64_decode(&b) {
                    Ok(bytes) => out.push((n, bytes)),
                    Err(e) => eprintln!("vnc_rig: picture {n} did not decode: {e}"),
                }
            }
        } else if let Some((_, b)) = cur.as_mut() {
            b.push_str(l.trim());
        }
    }
    out
}

/// A PNG of any 8-bit colour type as 0xRRGGBB pixels.
fn decode_png(bytes: &[u8]) -> Result<(u32, u32, Vec<u32>), String> {
    let mut dec = png::Decoder::new(std::io::Cursor::new(bytes));
    dec.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut r = dec.read_info().map_err(|e| e.to_string())?;
    let mut buf = vec![0; r.output_buffer_size()];
    let info = r.next_frame(&mut buf).map_err(|e| e.to_string())?;
    let n = info.color_type.samples();
    let px = buf[..info.buffer_size()]
        .chunks_exact(n)
        .map(|c| match n {
            1 | 2 => u32::from(c[0]) * 0x01_01_01,
            _ => u32::from(c[0]) << 16 | u32::from(c[1]) << 8 | u32::from(c[2]),
        })
        .collect();
    Ok((info.width, info.height, px))
}

/// The guest's screen inside a picture that may be larger (the X screen around TigerVNC's
/// window): its top-left corner, found by aligning the first non-black pixel of the picture
/// with that of the reference (the screendump), or (0, 0) for same-size pictures.
fn origin(w: u32, h: u32, px: &[u32], reference: Option<&[u32]>) -> Option<(u32, u32)> {
    if (w, h) == (W, H) {
        return Some((0, 0));
    }
    let first = |p: &[u32], width: u32| {
        p.iter()
            .position(|v| v & 0xff_ffff != 0)
            .map(|i| (i as u32 % width, i as u32 / width))
    };
    let (rx, ry) = first(reference?, W)?;
    let (sx, sy) = first(px, w)?;
    let (ox, oy) = (sx.checked_sub(rx)?, sy.checked_sub(ry)?);
    (ox + W <= w && oy + H <= h).then_some((ox, oy))
}

/// Crops the guest's W x H screen out of a picture.
fn crop(w: u32, px: &[u32], (ox, oy): (u32, u32)) -> Vec<u32> {
    (0..H)
        .flat_map(|y| {
            let s = ((oy + y) * w + ox) as usize;
            px[s..s + W as usize].iter().map(|v| v & 0xff_ffff)
        })
        .collect()
}

fn cell(px: &[u32], row: u32, col: u32) -> Vec<u32> {
    (0..CELL_H)
        .flat_map(|y| {
            let s = ((row * CELL_H + y) * W + col * CELL_W) as usize;
            px[s..s + CELL_W as usize].to_vec()
        })
        .collect()
}

/// The pixel check on a W x H screen: Ok(where "hello" was found) or Err(what was seen).
fn hello_check(px: &[u32]) -> Result<String, String> {
    let bg = px[px.len() - 1];
    let lit = px.iter().filter(|&&p| p != bg).count();
    if lit == 0 {
        return Err(format!("the screen is blank (all {bg:06x})"));
    }
    let blank = vec![bg; (CELL_W * CELL_H) as usize];
    let (rows, cols) = (H / CELL_H, W / CELL_W);
    let mut seen = Vec::new();
    for r in 0..rows {
        let cells: Vec<Vec<u32>> = (0..cols).map(|c| cell(px, r, c)).collect();
        let used = cells.iter().filter(|c| **c != blank).count();
        if used > 0 {
            seen.push(format!("row {r}: {used} non-blank cells"));
        }
        if r == 0 || (0..5).any(|c| cells[c] == blank) || cells[5] != blank {
            continue;
        }
        let word = &cells[..5];
        // h e l l o: the l's alike, h, e, l, o all different.
        let shape = word[2] == word[3]
            && [0usize, 1, 2, 4].iter().enumerate().all(|(i, a)| {
                [0usize, 1, 2, 4][i + 1..]
                    .iter()
                    .all(|b| word[*a] != word[*b])
            });
        if !shape {
            continue;
        }
        let above: Vec<Vec<u32>> = (0..cols).map(|c| cell(px, r - 1, c)).collect();
        if let Some(p) = (0..cols as usize - 5).find(|&p| above[p..p + 5] == *word) {
            return Ok(format!(
                "output \"hello\" on text row {r} matches the typed command on row {} at column {p}",
                r - 1
            ));
        }
    }
    Err(format!(
        "no output line shaped like \"hello\" below a command line with the same five cells; \
         {lit} non-background pixels; {}",
        if seen.is_empty() {
            "no text rows".to_string()
        } else {
            seen.join(", ")
        }
    ))
}

/// Pixels that differ, and whether all of them lie in one text cell (the blinking cursor).
fn difference(a: &[u32], b: &[u32]) -> (usize, bool) {
    let cells: std::collections::BTreeSet<(usize, usize)> = a
        .iter()
        .zip(b)
        .enumerate()
        .filter(|(_, (x, y))| x != y)
        .map(|(i, _)| {
            (
                i / W as usize / CELL_H as usize,
                i % W as usize / CELL_W as usize,
            )
        })
        .collect();
    let n = a.iter().zip(b).filter(|(x, y)| x != y).count();
    (n, cells.len() <= 1)
}

fn idle_line(text: &str, phase: &str) -> Option<String> {
    let mut lines = text.lines();
    lines.find(|l| l.trim() == format!("IDLE-PHASE {phase}"))?;
    lines
        .find(|l| l.starts_with("IDLE "))
        .map(|l| l.trim().to_string())
}

fn stages(text: &str) -> String {
    text.lines()
        .filter(|l| {
            l.starts_with("STAGE ")
                || l.contains("-EXIT")
                || l.starts_with("CTL ")
                || l.starts_with("THREAD ")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn tail(text: &str, prefix: &str, n: usize) -> String {
    let v: Vec<&str> = text.lines().filter(|l| l.starts_with(prefix)).collect();
    v[v.len().saturating_sub(n)..].join("\n")
}

#[test]
fn stock_kernel_console_through_vncdotool_gvnccapture_tigervnc_and_screendump() {
    let started = Instant::now();
    for (cmd, package) in [
        ("gvnccapture", "gvncviewer"),
        ("Xvfb", "xvfb"),
        ("xtigervncviewer", "tigervnc-viewer"),
        ("import", "imagemagick"),
        ("python3", "python3"),
        ("base64", "coreutils"),
    ] {
        vnc_common::require(cmd, package);
    }
    let (vncdo, shares) = vncdo();
    // L1 sees the host's /usr and /etc; vncdotool's venv (and a Python outside /usr) must be
    // shared too. The rig reads this when it boots L1, which this test does first.
    let mut share = std::env::var("VIREO_RIG_SHARE").unwrap_or_default();
    for s in &shares {
        share.push(':');
        share.push_str(&s.display().to_string());
    }
    std::env::set_var("VIREO_RIG_SHARE", share.trim_start_matches(':'));

    let image = GuestImage::stock().unwrap_or_else(|e| panic!("rig guest image: {e}"));
    let dir = work_dir();
    let initrd = initrd(&image, &dir);
    let script = script(&image, &initrd, &vncdo);
    let mut attempt = 0;
    let text = loop {
        attempt += 1;
        let out = vireo_rig::run_command(&script, Duration::from_secs(25 * 60))
            .unwrap_or_else(|e| panic!("rig: {e}"));
        let text = out.text();
        // A TCG boot of L2 hangs now and then (see the rig's README): one retry.
        if text.contains("STAGE shell-ready") || attempt == 2 {
            break text;
        }
        vireo_rig::reruns::note("the script", "L2's shell never came up");
    };
    std::fs::write(dir.join("output.txt"), &text).expect("save the output");
    let serial = tail(&text, "SERIAL: ", 30);
    let context = format!(
        "--- stages\n{}\n--- serial (tail)\n{serial}\n--- vmm\n{}\n--- gvnccapture\n{}\n--- tigervnc\n{}\n\
         --- whole output: {}",
        stages(&text),
        tail(&text, "VMM: ", 20),
        tail(&text, "GVNC: ", 10),
        tail(&text, "TIGER: ", 10),
        dir.join("output.txt").display()
    );
    assert!(
        text.contains("STAGE shell-ready"),
        "the guest's shell on tty1 never reported ready (twice):\n{context}"
    );

    let mut failures = Vec::new();
    // The keys' half: the typed command ran (its output reached the serial port).
    let keys_ok = text.contains("SERIAL-HELLO-OK");
    if !keys_ok {
        failures.push(format!(
            "input: the command typed with vncdotool never wrote \"hello\" to ttyS0 (keys did not \
             reach the shell); vncdo: {:?}",
            text.lines().find(|l| l.starts_with("VNCDO-EXIT"))
        ));
    }

    // Seccomp on every thread of the running VMM, VNC clients connected.
    let threads: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("THREAD "))
        .collect();
    let unfiltered: Vec<&&str> = threads
        .iter()
        .filter(|t| t.split_whitespace().last() != Some("2"))
        .collect();
    if threads.len() < 4
        || !unfiltered.is_empty()
        || !threads.iter().any(|t| t.starts_with("vnc-read-"))
    {
        failures.push(format!(
            "seccomp: every VMM thread must show Seccomp: 2 with a VNC client connected; \
             threads: {threads:?}"
        ));
    }

    // The picture's half.
    let pics = pictures(&text);
    let mut decoded = Vec::new();
    for (name, bytes) in &pics {
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, bytes).expect("save picture");
        eprintln!("vnc_rig: {name}: {}", path.display());
        match decode_png(bytes) {
            Ok(p) => decoded.push((name.clone(), path, p)),
            Err(e) => failures.push(format!("{name}: {} is not a PNG: {e}", path.display())),
        }
    }
    let reference = decoded
        .iter()
        .find(|(n, _, (w, h, _))| n == "screendump" && (*w, *h) == (W, H))
        .map(|(_, _, (_, _, px))| px.clone());
    let mut passed = Vec::new();
    for want in ["vncdo", "screendump", "gvnc", "tiger"] {
        let mut tried = Vec::new();
        let mut ok = false;
        for (name, path, (w, h, px)) in decoded.iter().filter(|(n, _, _)| n.starts_with(want)) {
            let Some(o) = origin(*w, *h, px, reference.as_deref()) else {
                tried.push(format!(
                    "{}: {w}x{h}, the guest screen not found in it",
                    path.display()
                ));
                continue;
            };
            let screen = crop(*w, px, o);
            match hello_check(&screen) {
                Ok(found) => {
                    let vs = match &reference {
                        Some(r) if want != "screendump" => {
                            let (n, one_cell) = difference(&screen, r);
                            if !one_cell {
                                tried.push(format!(
                                    "{}: {n} pixels differ from the screendump beyond one cell",
                                    path.display()
                                ));
                                continue;
                            }
                            format!(", {n} pixels differ from the screendump (cursor cell)")
                        }
                        _ => String::new(),
                    };
                    passed.push(format!("{name} at {o:?}: {found}{vs}"));
                    ok = true;
                    break;
                }
                Err(e) => tried.push(format!("{}: {e}", path.display())),
            }
        }
        if !ok {
            failures.push(format!(
                "{want}: {}",
                if tried.is_empty() {
                    "no picture came back".to_string()
                } else {
                    tried.join("; ")
                }
            ));
        }
    }
    for p in &passed {
        eprintln!("vnc_rig: pass: {p}");
    }
    for phase in ["blink", "noblink"] {
        eprintln!(
            "vnc_rig: idle ({phase}): {}",
            idle_line(&text, phase).unwrap_or_else(|| "no measurement".into())
        );
    }
    eprintln!("vnc_rig: stages\n{}", stages(&text));
    eprintln!(
        "vnc_rig: {attempt} attempt(s), {:.0} s",
        started.elapsed().as_secs_f64()
    );
    if !keys_ok && failures.len() > 1 {
        failures.push("(the pictures cannot show the output of a command that never ran)".into());
    }
    assert!(
        failures.is_empty(),
        "{} problem(s):\n- {}\n{context}",
        failures.len(),
        failures.join("\n- ")
    );
    // An idle screen without a blinking cursor sends nothing.
    let quiet = idle_line(&text, "noblink").unwrap_or_default();
    assert!(
        quiet.contains("IDLE bytes=0 "),
        "an idle console (cursor blink off) still sends bytes: {quiet:?}\n{context}"
    );
}

#[cfg(test)]
mod checks {
    use super::*;

    /// A made-up glyph: a pseudo-random pattern per seed, never blank.
    fn glyph(seed: u32) -> Vec<u32> {
        (0..CELL_W * CELL_H)
            .map(|i| {
                let v = (i + 1 + seed * 1000).wrapping_mul(2_654_435_761);
                if (v >> 13) % 3 == 0 {
                    0xaaaaaa
                } else {
                    0
                }
            })
            .collect()
    }

    fn put(px: &mut [u32], row: u32, col: u32, g: &[u32]) {
        for y in 0..CELL_H {
            for x in 0..CELL_W {
                px[((row * CELL_H + y) * W + col * CELL_W + x) as usize] =
                    g[(y * CELL_W + x) as usize];
            }
        }
    }

    /// The checker finds "hello" below a command line and refuses look-alikes, so the rig
    /// test can fail.
    #[test]
    fn hello_check_finds_the_word_and_refuses_others() {
        let (h, e, l, o) = (glyph(1), glyph(2), glyph(3), glyph(4));
        let mut px = vec![0u32; (W * H) as usize];
        assert!(hello_check(&px).unwrap_err().contains("blank"));
        for (i, g) in [&h, &e, &l, &l, &o].iter().enumerate() {
            put(&mut px, 3, 7 + i as u32, g);
        }
        assert!(hello_check(&px).is_err(), "no output line yet");
        for (i, g) in [&h, &e, &l, &l, &o].iter().enumerate() {
            put(&mut px, 4, i as u32, g);
        }
        assert!(hello_check(&px).unwrap().contains("row 4"));
        // A different fifth letter on the output line: no match.
        let mut other = px.clone();
        put(&mut other, 4, 4, &glyph(5));
        assert!(hello_check(&other).is_err());
        // "hella": wrong shape even if the line above says the same.
        let mut shape = px.clone();
        put(&mut shape, 4, 4, &h);
        put(&mut shape, 3, 11, &h);
        assert!(hello_check(&shape).is_err());
    }

    #[test]
    fn base64_round_trip() {
        assert_eq!(b64_decode("aGVsbG8=\nd29ybGQ=").unwrap(), b"helloworld");
        assert!(b64_decode("a*b").is_err());
    }
}
