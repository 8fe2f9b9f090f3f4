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

/// `vireoctl osinfo-query os` over a database of one file: the table virt-install's
/// osinfo-query prints, its filters, and a clear refusal of a malformed one.
#[test]
fn vireoctl_osinfo_query_lists_the_database() {
    let ctl = Path::new(env!("CARGO_BIN_EXE_vireoctl"));
    let db = std::env::temp_dir().join(format!("vireo-osinfo-{}", std::process::id()));
    std::fs::create_dir_all(db.join("os/example.org")).unwrap();
    std::fs::write(
        db.join("os/example.org/thing.xml"),
        r#"<libosinfo version="0.0.1">
  <os id="http://example.org/thing/2"><short-id>thing2</short-id><name>Thing 2</name>
    <version>2</version><vendor>Example</vendor></os>
  <os id="http://example.org/other/1"><short-id>other1</short-id><name>Other</name>
    <version>1</version><vendor>Someone</vendor></os>
</libosinfo>"#,
    )
    .unwrap();
    let run = |args: &[&str]| {
        let out = Command::new(ctl)
            .args(args)
            .env("OSINFO_SYSTEM_DIR", &db)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, out, _) = run(&["osinfo-query", "os"]);
    assert_eq!(code, Some(0));
    let expected = [
        " Short ID | Name    | Version | ID",
        &"-".repeat(58),
        " other1   | Other   | 1       | http://example.org/other/1",
        " thing2   | Thing 2 | 2       | http://example.org/thing/2",
    ];
    assert_eq!(out.lines().collect::<Vec<_>>(), expected);
    let (_, out, _) = run(&["osinfo-query", "os", "vendor=Example"]);
    assert_eq!(out.lines().count(), 3, "{out}");
    assert!(out.contains("thing2") && !out.contains("other1"), "{out}");
    let (code, _, err) = run(&["osinfo-query", "os", "colour=blue"]);
    assert_eq!(code, Some(4));
    assert!(err.contains("\"colour=blue\": expected KEY=VALUE"), "{err}");
    std::fs::remove_dir_all(&db).unwrap();
}
