//! The console of a machine whose VNC display has a password (`<graphics passwd=…>`): the VMM
//! asks for it on the owner's socket too, so the app must answer with the domain's password,
//! not an empty one, and show the guest's screen.

mod common;
mod painter_guest;
mod vireoctl_support;

use common::Desktop;
use painter_guest::wait_orange;
use vireoctl_support::{vireoctl, Home};

#[test]
fn a_password_protected_display_opens_in_the_console() {
    let h = Home::new("guipw");
    vireoctl_support::vmm();
    painter_guest::define_with_graphics(&h, "<graphics type='vnc' passwd='s3cret'>");
    let desktop = Desktop::start("console-password");
    desktop.start_window_manager();
    let app = desktop.launch_with_driver(&h.root, &vireoctl(), &vireoctl_support::vmm(), &[]);
    desktop.wait_for_window("Vireo");
    app.activate_win_with("machine-start", "'painter'");
    app.wait_view("painter running", |s| s.contains("'painter': 'running'"));
    app.activate_win_with("machine-console", "'painter'");
    let console = desktop.wait_for_window("painter – Console");
    wait_orange(&desktop, &console, "console-password");
    app.activate_win_with("machine-force-off", "'painter'");
    app.wait_view("painter off", |s| s.contains("'painter': 'shut off'"));
    assert!(app.quit().success());
}
