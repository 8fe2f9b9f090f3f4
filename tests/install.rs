//! data/install.sh into a temporary prefix: every file lands where GNOME expects it, the merged
//! desktop entry and metainfo validate, the installed vireo finds its schema, translations and
//! help under that prefix, and --uninstall removes it all again.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::Desktop;

const APP_ID: &str = "org.vireo.Vireo";

fn target_dir() -> PathBuf {
    // CARGO_BIN_EXE_vireo is <target>/<profile>/vireo.
    Path::new(env!("CARGO_BIN_EXE_vireo"))
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .to_path_buf()
}

fn install_script(prefix: &Path, extra: &[&str]) -> std::process::Output {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/install.sh");
    let out = Command::new(&script)
        .arg("--prefix")
        .arg(prefix)
        .args(extra)
        .env("CARGO_TARGET_DIR", target_dir())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "install.sh {extra:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// vireo-vmm belongs to another package, which `cargo test -p vireo` does not build.
fn require_vmm_binary() {
    let vmm = target_dir().join("debug/vireo-vmm");
    assert!(
        vmm.is_file(),
        "{} is missing: run `cargo build --workspace --bins` (or `cargo build -p vireo-vmm`) before the tests",
        vmm.display()
    );
}

fn expected_files(prefix: &Path) -> Vec<PathBuf> {
    let share = prefix.join("share");
    vec![
        prefix.join("bin/vireo"),
        prefix.join("bin/vireoctl"),
        prefix.join("bin/vireo-vmm"),
        share.join(format!("applications/{APP_ID}.desktop")),
        share.join(format!("metainfo/{APP_ID}.metainfo.xml")),
        share.join(format!("icons/hicolor/scalable/apps/{APP_ID}.svg")),
        share.join(format!("icons/hicolor/symbolic/apps/{APP_ID}-symbolic.svg")),
        share.join(format!("glib-2.0/schemas/{APP_ID}.gschema.xml")),
        share.join("glib-2.0/schemas/gschemas.compiled"),
        share.join("locale/de/LC_MESSAGES/vireo.mo"),
        share.join("help/C/vireo/index.page"),
        share.join("help/C/vireo/system-requirements.page"),
        share.join("help/C/vireo/legal.xml"),
        share.join("help/C/vireo/figures/org.vireo.Vireo.svg"),
    ]
}

fn run_ok(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{program} {args:?} failed:\n{text}");
    text
}

#[test]
fn install_into_a_prefix_and_uninstall() {
    let desktop = Desktop::start("install");
    let prefix = desktop.dir.join("prefix");

    require_vmm_binary();
    // The binaries of this very test build; cargo must not run inside cargo test.
    install_script(&prefix, &["--debug", "--no-build"]);
    for file in expected_files(&prefix) {
        assert!(file.is_file(), "{} was not installed", file.display());
    }

    let desktop_file = prefix.join(format!("share/applications/{APP_ID}.desktop"));
    run_ok("desktop-file-validate", &[desktop_file.to_str().unwrap()]);
    let entry = fs::read_to_string(&desktop_file).unwrap();
    assert!(
        entry.contains(&format!("Exec={}/bin/vireo", prefix.display())),
        "{entry}"
    );
    assert!(
        entry.contains("GenericName[de]=Verwaltung virtueller Maschinen"),
        "{entry}"
    );

    let metainfo = prefix.join(format!("share/metainfo/{APP_ID}.metainfo.xml"));
    run_ok(
        "appstreamcli",
        &["validate", "--no-net", metainfo.to_str().unwrap()],
    );
    let xml = fs::read_to_string(&metainfo).unwrap();
    assert!(
        xml.contains(r#"xml:lang="de""#),
        "no German in the metainfo"
    );

    let vireo = prefix.join("bin/vireo");
    let version = run_ok(vireo.to_str().unwrap(), &["--version"]);
    assert_eq!(
        version.trim(),
        format!("vireo {}", env!("CARGO_PKG_VERSION"))
    );

    // The installed binary, outside XDG_DATA_DIRS: its schema and help come from the prefix.
    let bin = desktop.dir.join("fake-bin");
    fs::create_dir_all(&bin).unwrap();
    let record = desktop.dir.join("yelp-call");
    let yelp = bin.join("yelp");
    fs::write(
        &yelp,
        format!(
            "#!/bin/sh\n{{ printf '%s\\n' \"$@\"; printf 'XDG_DATA_DIRS=%s\\n' \"$XDG_DATA_DIRS\"; }} > '{}'\n",
            record.display()
        ),
    )
    .unwrap();
    fs::set_permissions(&yelp, fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:/usr/bin:/bin", bin.display());
    let app = desktop.launch_binary(
        &vireo,
        &[
            ("PATH", &path),
            ("LANGUAGE", "de"),
            ("XDG_DATA_DIRS", "/usr/share"),
        ],
    );
    desktop.wait_for_window("Vireo");
    app.activate_app("preferences");
    // German from PREFIX/share/locale, settings from PREFIX/share/glib-2.0/schemas.
    desktop.wait_for_window("Einstellungen");
    app.activate_app("help");
    let start = std::time::Instant::now();
    while !record.exists() && start.elapsed().as_secs() < 10 {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let call = fs::read_to_string(&record).expect("yelp was not started");
    let mut lines = call.lines();
    // F1 opens the page of the window it is pressed in; the Preferences window is the active one.
    assert_eq!(lines.next(), Some("help:vireo/preferences"));
    assert!(
        prefix.join("share/help/C/vireo/preferences.page").is_file(),
        "help:vireo/preferences has no page in the prefix"
    );
    let data_dirs = lines.next().unwrap_or_default();
    assert!(
        data_dirs.starts_with(&format!("XDG_DATA_DIRS={}/share:", prefix.display())),
        "yelp cannot resolve help:vireo with {data_dirs}"
    );
    assert!(app.quit().success());

    // And the real yelp resolves help:vireo in the prefix.
    let app = desktop.launch_binary(
        &vireo,
        &[
            ("XDG_DATA_DIRS", "/usr/share"),
            ("WEBKIT_DISABLE_SANDBOX_THIS_IS_DANGEROUS", "1"),
            ("WEBKIT_DISABLE_COMPOSITING_MODE", "1"),
        ],
    );
    desktop.wait_for_window("Vireo");
    app.activate_app("help");
    // yelp names its X window “Help”; the page title is in its header bar.
    desktop.wait_for_window("Help");
    std::thread::sleep(std::time::Duration::from_secs(2));
    desktop.screenshot("help-installed");
    assert!(app.quit().success());

    install_script(&prefix, &["--uninstall"]);
    for file in expected_files(&prefix) {
        assert!(!file.exists(), "{} survived --uninstall", file.display());
    }
}

#[test]
fn destdir_stages_without_touching_the_prefix() {
    let dir = common::scratch_dir("install-destdir");
    let stage = dir.join("stage");
    require_vmm_binary();
    install_script(
        Path::new("/usr"),
        &[
            "--debug",
            "--no-build",
            "--destdir",
            stage.to_str().unwrap(),
        ],
    );
    let desktop_file = stage.join(format!("usr/share/applications/{APP_ID}.desktop"));
    let entry = fs::read_to_string(&desktop_file).unwrap();
    assert!(entry.contains("Exec=/usr/bin/vireo"), "{entry}");
    assert!(stage.join("usr/bin/vireo").is_file());
    // Caches are the package manager's job with --destdir.
    assert!(!stage
        .join("usr/share/glib-2.0/schemas/gschemas.compiled")
        .exists());
}
