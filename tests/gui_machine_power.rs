//! Shut Down (the graceful `machine-shutdown`) of a running machine in the real `vireo` under
//! Xvfb, with the real driver in an isolated XDG home. The guest is a tiny hand-written PVH
//! program on the local /dev/kvm that behaves like an ACPI OS: it enables the power button
//! event, polls PM1a_STS (port 0x600) for PWRBTN_STS and then enters S5 through PM1a_CNT, so
//! the machine really powers itself off when the driver presses its power button. Screenshots:
//! target/test-output/power-*.png.

mod common;
mod vireoctl_support;

use std::thread::sleep;
use std::time::{Duration, Instant};

use common::{Desktop, Image};
use vireoctl_support::{domain_xml, guest, vireoctl, Home};

/// Says "ready" on COM1, enables PWRBTN_EN (PM1a_EN, port 0x602), waits for PWRBTN_STS
/// (bit 8 of PM1a_STS, port 0x600), says "bye" and powers off (S5).
fn acpi_guest() -> Vec<u8> {
    let mut g = guest::print("ready\r\n");
    g.extend([0x66, 0xba, 0x02, 0x06]); // mov dx, 0x602
    g.extend([0x66, 0xb8, 0x00, 0x01]); // mov ax, 0x0100
    g.extend([0x66, 0xef]); // out dx, ax
                            // poll: mov dx, 0x600; in ax, dx; test ah, 1; jz poll
    g.extend([
        0x66, 0xba, 0x00, 0x06, 0x66, 0xed, 0xf6, 0xc4, 0x01, 0x74, 0xf5,
    ]);
    g.extend(guest::print("bye\r\n"));
    g.extend(guest::poweroff());
    g
}

fn launch(desktop: &Desktop, h: &Home) -> common::App {
    desktop.launch_with_driver(&h.root, &vireoctl(), &vireoctl_support::vmm(), &[])
}

#[test]
fn shut_down_presses_the_power_button_and_the_guest_powers_off() {
    let h = Home::new("guip");
    vireoctl_support::vmm();
    let kernel = h.file("acpi.elf", &guest::pvh_elf(&acpi_guest()));
    let serial = "    <serial type='pty'>\n      <target port='0'/>\n    </serial>\n";
    let xml = domain_xml("acpi", &kernel, serial, ("destroy", "restart", "destroy"));
    let file = h.file("acpi.xml", xml.as_bytes());
    h.ok(&["define", file.to_str().unwrap()]);

    let desktop = Desktop::start("machine-power");
    let app = launch(&desktop, &h);
    desktop.wait_for_window("Vireo");
    app.wait_view("acpi, off", |s| s.contains("'acpi': 'shut off'"));
    app.activate_win_with("machine-start", "'acpi'");
    app.wait_view("acpi running", |s| s.contains("'acpi': 'running'"));
    let log = h.root.join("r/vireo/acpi/serial.log");
    let start = Instant::now();
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("ready")
    {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "the guest never said ready"
        );
        sleep(Duration::from_millis(100));
    }
    let running = desktop.screenshot("power-running");

    // The card's menu (real clicks, as a user opens it) offers Shut Down.
    desktop.click(218, 230, 1);
    let menu = desktop.screenshot("power-card-menu");
    assert!(
        Image::differing_pixels(&running, &menu) > 1000,
        "the card's menu did not open"
    );
    // Its first item for a running machine is Shut Down (win.machine-shutdown), below the
    // button's tooltip.
    desktop.click(215, 291, 1);
    app.wait_view("acpi shut off by itself", |s| {
        s.contains("'acpi': 'shut off'")
    });
    // The guest saw the button and left through S5: the driver records a shutdown, not a
    // destroy (which Force Off or the shutdown timeout's fallback would be).
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        text.contains("bye"),
        "the guest did not see the button: {text:?}"
    );
    assert_eq!(
        h.ok(&["domstate", "--reason", "acpi"]).trim(),
        "shut off (shutdown)"
    );
    sleep(Duration::from_millis(500));
    desktop.screenshot("power-shut-down");
    assert!(
        !app.log_text().contains("Timeout"),
        "the GUI reported a timeout: {}",
        app.log_text()
    );
    assert!(app.quit().success());
}
