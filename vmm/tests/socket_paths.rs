//! The sockets the VMM listens on sit at paths its configuration names (for the serial console,
//! a domain's `<serial type='unix'>` path is the user's choice). A path that holds anything but
//! a stale socket is never deleted: the VMM refuses to start, says which path and why, and the
//! file is untouched. The sockets it makes are 0600.

mod tiny;

use serde_json::json;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;
use tiny::{asm, Vmm};

const T: Duration = Duration::from_secs(20);

#[test]
fn a_serial_socket_path_that_holds_a_file_is_refused_and_the_file_kept() {
    let guest = [asm::print("up\n"), asm::spin()].concat();
    let dir = tiny::tempdir("sock-file");
    let precious = dir.join("notes.txt");
    std::fs::write(&precious, b"the user's notes\n").unwrap();
    let target = precious.clone();
    let mut vm = Vmm::start("sock-file", &guest, move |cfg| {
        cfg["serial"]["socket"] = json!(target);
    });
    let (st, err) = vm.wait(T);
    assert_eq!(st.code(), Some(1), "stderr: {err}");
    assert!(
        err.contains(&precious.display().to_string()) && err.contains("not a socket"),
        "stderr: {err}"
    );
    assert_eq!(std::fs::read(&precious).unwrap(), b"the user's notes\n");
}

#[test]
fn the_vmms_sockets_are_owner_only_and_a_live_one_is_not_taken_over() {
    let guest = [asm::print("up\n"), asm::spin()].concat();
    let mut vm = Vmm::start("sock-mode", &guest, |_| {});
    assert!(vm.wait_serial(b"up\n", T), "guest never printed");
    let console = vm.dir.join("console.sock");
    for p in [&vm.control, &console] {
        let mode = std::fs::symlink_metadata(p).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{}", p.display());
    }
    // A second VMM told to use the same console socket refuses; the first keeps it.
    let taken = console.clone();
    let mut second = Vmm::start("sock-mode-2", &guest, move |cfg| {
        cfg["serial"]["socket"] = json!(taken);
    });
    let (st, err) = second.wait(T);
    assert_eq!(st.code(), Some(1), "stderr: {err}");
    assert!(err.contains("listening"), "stderr: {err}");
    assert!(std::os::unix::net::UnixStream::connect(&console).is_ok());
    let mut c = vm.connect();
    c.execute("quit", json!({}));
    let (st, _) = vm.wait(T);
    assert_eq!(st.code(), Some(0));
    // Its own sockets are gone with it.
    assert!(!vm.control.exists());
}
