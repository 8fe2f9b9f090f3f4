//! The three binaries answer --version alike, and vireo's --help needs no display.

use std::path::Path;
use std::process::Command;

fn output(binary: &Path, arg: &str) -> (bool, String) {
    let out = Command::new(binary)
        .arg(arg)
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .env_remove("DBUS_SESSION_BUS_ADDRESS")
        .env("LANG", "C.UTF-8")
        .env_remove("LANGUAGE")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", binary.display()));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

const VERSION: &str = env!("CARGO_PKG_VERSION");

#[test]
fn vireo_version_and_help_work_without_a_display() {
    let vireo = Path::new(env!("CARGO_BIN_EXE_vireo"));
    assert_eq!(
        output(vireo, "--version"),
        (true, format!("vireo {VERSION}\n"))
    );
    let (ok, help) = output(vireo, "--help");
    assert!(ok, "{help}");
    assert!(help.starts_with("Usage: vireo"), "{help}");
    assert!(help.contains("--version"), "{help}");
}

#[test]
fn vireoctl_version_and_help() {
    let ctl = Path::new(env!("CARGO_BIN_EXE_vireoctl"));
    assert_eq!(
        output(ctl, "--version"),
        (true, format!("vireoctl {VERSION}\n"))
    );
    let (ok, help) = output(ctl, "--help");
    assert!(ok && help.contains("Usage: vireoctl"), "{help}");
}

/// vireo-vmm is another package's binary; `cargo build --workspace --bins` builds it.
#[test]
fn vireo_vmm_prints_the_same_version() {
    let vmm = Path::new(env!("CARGO_BIN_EXE_vireo")).with_file_name("vireo-vmm");
    assert!(
        vmm.is_file(),
        "{} is missing: run `cargo build --workspace --bins` before the tests",
        vmm.display()
    );
    assert_eq!(
        output(&vmm, "--version"),
        (true, format!("vireo-vmm {VERSION}\n"))
    );
}
