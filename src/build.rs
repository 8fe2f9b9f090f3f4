//! Compiles what the GUI needs at run time into OUT_DIR, so that `cargo run` works without an
//! installation: the GResource bundle (ui/, icons), the GSettings schema (gschemas.compiled)
//! and the translations (po/*.po -> locale/<lang>/LC_MESSAGES/vireo.mo).

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest = PathBuf::from(env_var("CARGO_MANIFEST_DIR"));
    let out = PathBuf::from(env_var("OUT_DIR"));

    for watched in ["ui", "data", "po"] {
        println!(
            "cargo:rerun-if-changed={}",
            manifest.join(watched).display()
        );
    }

    glib_build_tools::compile_resources(
        &[manifest.clone(), manifest.join("data")],
        manifest
            .join("data/resources.gresource.xml")
            .to_str()
            .expect("the source path is not UTF-8"),
        "vireo.gresource",
    );

    compile_schemas(&manifest.join("data"), &out.join("schemas"));
    compile_translations(&manifest.join("po"), &out.join("locale"));
}

fn env_var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("cargo did not set {name}"))
}

fn compile_schemas(source: &Path, target: &Path) {
    std::fs::create_dir_all(target)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", target.display()));
    run(Command::new("glib-compile-schemas")
        .arg("--strict")
        .arg("--targetdir")
        .arg(target)
        .arg(source));
}

fn compile_translations(po_dir: &Path, locale_dir: &Path) {
    let linguas = po_dir.join("LINGUAS");
    let list = std::fs::read_to_string(&linguas)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", linguas.display()));
    for lang in languages(&list) {
        let po = po_dir.join(format!("{lang}.po"));
        let dir = locale_dir.join(lang).join("LC_MESSAGES");
        std::fs::create_dir_all(&dir)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        run(Command::new("msgfmt")
            .arg("--check")
            .arg("-o")
            .arg(dir.join("vireo.mo"))
            .arg(&po));
    }
}

/// The language codes of a LINGUAS file: whitespace separated, `#` starts a comment.
fn languages(linguas: &str) -> Vec<&str> {
    linguas
        .lines()
        .map(|line| line.split('#').next().unwrap_or(""))
        .flat_map(str::split_whitespace)
        .collect()
}

fn run(command: &mut Command) {
    let program = command.get_program().to_string_lossy().into_owned();
    let output = command.output().unwrap_or_else(|e| {
        panic!("cannot run {program} (install glib2.0 and gettext tools): {e}")
    });
    if !output.status.success() {
        panic!(
            "{program} failed ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}
