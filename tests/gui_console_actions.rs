//! The console window's own actions in the real `vireo` under Xvfb (with openbox as window
//! manager, for fullscreen), on a machine of the real driver in an isolated XDG home: the
//! send-keys menu, keyboard grab with its hint and release combination, F11 fullscreen, the
//! screenshot to a file and the clipboard typed as keys. The guest is a tiny hand-written PVH
//! program on the local /dev/kvm that paints the top half of its 320x200 screen orange and
//! copies every i8042 scancode it receives to COM1, so the serial log shows which keys arrived.
//! Screenshots: target/test-output/console-actions-*.png.

mod common;
mod painter_guest;
mod vireoctl_support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread::sleep;
use std::time::{Duration, Instant};

use common::{output_dir, Desktop, Image};
use painter_guest::{is_orange, wait_orange};
use vireoctl_support::{vireoctl, Home};

fn launch(desktop: &Desktop, h: &Home) -> common::App {
    desktop.launch_with_driver(&h.root, &vireoctl(), &vireoctl_support::vmm(), &[])
}

fn serial(h: &Home) -> Vec<u8> {
    std::fs::read(h.root.join("r/vireo/painter/serial.log")).unwrap_or_default()
}

/// Waits until the serial log, from byte `from` on, holds `seq` in a row.
fn wait_scancodes(h: &Home, from: usize, seq: &[u8], what: &str) {
    let start = Instant::now();
    loop {
        let log = serial(h);
        let tail = log.get(from..).unwrap_or_default();
        if tail.windows(seq.len()).any(|w| w == seq) {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "{what}: scancodes {seq:02x?} never reached the guest; it got {tail:02x?}"
        );
        sleep(Duration::from_millis(200));
    }
}

fn wm_state(desktop: &Desktop, window: &str) -> String {
    let out = Command::new("xprop")
        .args(["-id", window, "_NET_WM_STATE"])
        .env("DISPLAY", &desktop.display)
        .output()
        .expect("xprop runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn console_actions_reach_the_guest_and_the_desktop() {
    let h = Home::new("guia");
    vireoctl_support::vmm();
    painter_guest::define(&h);
    let desktop = Desktop::start("console-actions");
    desktop.start_window_manager();
    let app = launch(&desktop, &h);
    desktop.wait_for_window("Vireo");
    app.activate_win_with("machine-start", "'painter'");
    app.wait_view("painter running", |s| s.contains("'painter': 'running'"));
    app.activate_win_with("machine-console", "'painter'");
    let console = desktop.wait_for_window("painter – Console");
    wait_orange(&desktop, &console, "console-actions-start");
    // Without decorations of its own (GTK draws them) openbox puts the console at 0,0; the
    // points below are the window's own coordinates, looked at in these screenshots.
    desktop.screenshot("console-actions-screen");

    // Send keys: the keyboard button at the start of the header, then Ctrl+Alt+Del. The guest
    // gets set-1 scancodes: Ctrl 1d, Alt 38, Delete e0 53.
    let mark = serial(&h).len();
    desktop.click_in(&console, 23, 23);
    desktop.screenshot("console-actions-send-keys-menu");
    desktop.click_in(&console, 60, 79);
    wait_scancodes(&h, mark, &[0x1d, 0x38, 0xe0, 0x53], "Ctrl+Alt+Del");

    // Screenshot to a file: the guest's own 320x200 picture (not the window) lands in the
    // Pictures folder, which without xdg-user-dirs is the home directory.
    let home = desktop.dir.join("home");
    desktop.click_in(&console, 578, 27);
    let png = wait_png(&home);
    let size = Command::new("identify")
        .args(["-format", "%wx%h"])
        .arg(&png)
        .output()
        .expect("ImageMagick identify runs");
    assert_eq!(
        String::from_utf8_lossy(&size.stdout),
        "320x200",
        "{}",
        png.display()
    );
    assert!(
        is_orange(Image::region_mean(&png, "300x90+10+5")),
        "the top of {} is not the guest's orange",
        png.display()
    );
    let (r, g, b) = Image::region_mean(&png, "300x90+10+105");
    assert!(
        r + g + b < 0.05,
        "the bottom of {} is not black",
        png.display()
    );
    std::fs::copy(
        &png,
        output_dir().join("console-actions-saved-screenshot.png"),
    )
    .unwrap();
    desktop.screenshot("console-actions-screenshot-toast");

    // The clipboard typed as keys: "qz" put on the CLIPBOARD by xclip, then the header's
    // Type Clipboard Text button. q is 10 (up 90), z is 2c (up ac).
    desktop.set_clipboard("qz");
    let mark = serial(&h).len();
    desktop.click_in(&console, 538, 27);
    wait_scancodes(&h, mark, &[0x10, 0x90, 0x2c, 0xac], "the clipboard's qz");

    // Keyboard grab: a key typed on the screen captures the keyboard and shows the hint; F11
    // then goes to the guest (57) instead of making the window fullscreen.
    desktop.click_in(&console, 400, 200);
    let before = output_dir().join("console-actions-before-grab.png");
    Image::save_window(&desktop.display, &console, &before);
    let mark = serial(&h).len();
    desktop.press(&console, "a");
    wait_scancodes(&h, mark, &[0x1e], "a");
    let grabbed = output_dir().join("console-actions-grab-hint.png");
    Image::save_window(&desktop.display, &console, &grabbed);
    // The hint is a line of text under the header bar, where the letterbox's bar is plain.
    assert!(
        hint_shown(&grabbed) && !hint_shown(&before),
        "no grab hint in {}",
        grabbed.display()
    );
    let mark = serial(&h).len();
    desktop.press(&console, "F11");
    wait_scancodes(&h, mark, &[0x57], "F11 while grabbed");
    // The application's shortcuts too: F1 (help) and Ctrl+Q (quit) belong to the guest now.
    let mark = serial(&h).len();
    desktop.press(&console, "F1");
    wait_scancodes(&h, mark, &[0x3b], "F1 while grabbed");
    let mark = serial(&h).len();
    desktop.press(&console, "ctrl+q");
    wait_scancodes(&h, mark, &[0x1d, 0x10], "Ctrl+Q while grabbed");
    assert_eq!(
        desktop.windows_named("Vireo").len(),
        1,
        "Ctrl+Q quit the app"
    );
    sleep(Duration::from_millis(500));
    assert!(
        !wm_state(&desktop, &console).contains("FULLSCREEN"),
        "F11 made the window fullscreen while the keyboard was grabbed"
    );
    // Ctrl+Alt releases it: the hint goes away and the window's layout is as before.
    desktop.press(&console, "ctrl+alt");
    let released = output_dir().join("console-actions-grab-released.png");
    Image::save_window(&desktop.display, &console, &released);
    assert!(
        !hint_shown(&released),
        "the hint stayed after Ctrl+Alt: {}",
        released.display()
    );

    // Fullscreen: F11 on the (ungrabbed) screen, and back; then the header's button.
    desktop.click_in(&console, 400, 200);
    let mark = serial(&h).len();
    desktop.press(&console, "F11");
    wait_fullscreen(&desktop, &console, true);
    assert!(
        !serial(&h)[mark..].contains(&0x57),
        "F11 reached the guest although the keyboard was released"
    );
    assert_eq!(desktop.window_geometry(&console).2, 1280);
    desktop.screenshot("console-actions-fullscreen");
    desktop.press(&console, "F11");
    wait_fullscreen(&desktop, &console, false);
    // The header's button; F11 then leaves again although the focus is on the button.
    desktop.click_in(&console, 618, 27);
    wait_fullscreen(&desktop, &console, true);
    desktop.press(&console, "F11");
    wait_fullscreen(&desktop, &console, false);

    app.activate_win_with("machine-force-off", "'painter'");
    app.wait_view("painter off", |s| s.contains("'painter': 'shut off'"));
    // The application's accelerators are back once the grab ended: Ctrl+Q quits.
    desktop.press(&console, "ctrl+q");
    let start = Instant::now();
    while !desktop.windows_named("Vireo").is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "Ctrl+Q did not quit after the grab ended"
        );
        sleep(Duration::from_millis(200));
    }
    assert!(app.quit().success());
}

/// Whether the grab hint's text is drawn in a capture of the 800x600 console: the band
/// under the header bar is not one flat colour.
fn hint_shown(png: &Path) -> bool {
    let out = Command::new("convert")
        .arg(png)
        .args(["-crop", "400x12+200+52", "+repage", "-colorspace", "Gray"])
        .args(["-format", "%[fx:standard_deviation]", "info:"])
        .output()
        .expect("ImageMagick convert runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let deviation: f64 = text
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("convert said: {text}"));
    deviation > 0.02
}

/// The first PNG that appears in `dir`.
fn wait_png(dir: &Path) -> PathBuf {
    let start = Instant::now();
    loop {
        let found = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|e| e == "png"));
        if let Some(p) = found {
            // Written in one go by the texture saver; give it a moment to be complete.
            sleep(Duration::from_millis(300));
            return p;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no screenshot saved in {}",
            dir.display()
        );
        sleep(Duration::from_millis(200));
    }
}

fn wait_fullscreen(desktop: &Desktop, window: &str, on: bool) {
    let start = Instant::now();
    loop {
        let state = wm_state(desktop, window);
        if state.contains("_NET_WM_STATE_FULLSCREEN") == on {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the console is not {} fullscreen: {state}",
            if on { "" } else { "out of" }
        );
        sleep(Duration::from_millis(200));
    }
}
