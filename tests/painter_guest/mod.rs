//! The "painter", a tiny hand-written PVH guest for the GUI console tests on the local
//! /dev/kvm: it paints the top half of its 320x200 screen orange, says "F" on COM1, then copies
//! every i8042 scancode it receives to COM1, so the serial log shows which keys arrived.
//! Included by the GUI tests that also include `common` and `vireoctl_support`.

#![allow(dead_code)] // each test binary uses a different part

use std::thread::sleep;
use std::time::{Duration, Instant};

use crate::common::{output_dir, Desktop, Image};
use crate::vireoctl_support::{domain_xml, guest, Home};

/// The painter's code.
pub fn code() -> Vec<u8> {
    let mut g = vec![0xbf, 0x00, 0x00, 0x00, 0xd0]; // mov edi, 0xd0000000 (framebuffer)
    g.push(0xb9);
    g.extend((320u32 * 100).to_le_bytes()); // mov ecx, 320*100
    g.push(0xb8);
    g.extend(0x00ff_8000u32.to_le_bytes()); // mov eax, orange
    g.extend([0xf3, 0xab]); // rep stosd
    g.extend(guest::print("F"));
    // wait: in al, 0x64; test al, 1; jz wait; in al, 0x60; mov dx, 0x3f8; out dx, al; jmp wait
    g.extend([0xe4, 0x64, 0xa8, 0x01, 0x74, 0xfa, 0xe4, 0x60]);
    g.extend([0x66, 0xba, 0xf8, 0x03, 0xee, 0xeb, 0xf1]);
    g
}

/// Defines the machine "painter" in `h`: the painter as its kernel, a serial port, a
/// local-only VNC display and a 320x200 VGA screen.
pub fn define(h: &Home) {
    define_with_graphics(h, "<graphics type='vnc'>");
}

/// [`define`] with another opening tag for the `<graphics>` element (a `passwd`, say).
pub fn define_with_graphics(h: &Home, graphics: &str) {
    let kernel = h.file("painter.elf", &guest::pvh_elf(&code()));
    let devices = format!("    <serial type='pty'>\n      <target port='0'/>\n    </serial>\n    {graphics}\n      <listen type='none'/>\n    </graphics>\n    <video>\n      <model type='vga'>\n        <resolution x='320' y='200'/>\n      </model>\n    </video>\n");
    let xml = domain_xml(
        "painter",
        &kernel,
        &devices,
        ("destroy", "restart", "destroy"),
    );
    let file = h.file("painter.xml", xml.as_bytes());
    h.ok(&["define", file.to_str().unwrap()]);
}

/// Whether a mean colour (0..1 per channel) is the painter's orange.
pub fn is_orange((r, g, b): (f64, f64, f64)) -> bool {
    r > 0.9 && (g - 0.5).abs() < 0.08 && b < 0.1
}

/// Waits (up to 30 s) for the orange top half in an 800x600 console window: the 320x200
/// guest is scaled by 2.5. Captures go to `target/test-output/<name>.png`.
pub fn wait_orange(desktop: &Desktop, window: &str, name: &str) {
    wait_orange_at(desktop, window, name, "600x150+100+90")
}

/// [`wait_orange`] in another region (`WxH+X+Y`) of the window.
pub fn wait_orange_at(desktop: &Desktop, window: &str, name: &str, geometry: &str) {
    let shot = output_dir().join(format!("{name}.png"));
    let start = Instant::now();
    loop {
        Image::save_window(&desktop.display, window, &shot);
        let (r, g, b) = Image::region_mean(&shot, geometry);
        if is_orange((r, g, b)) {
            return;
        }
        if start.elapsed() > Duration::from_secs(30) {
            panic!(
                "{} shows no orange guest paint ({r}, {g}, {b})",
                shot.display()
            );
        }
        sleep(Duration::from_millis(500));
    }
}
