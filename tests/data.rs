//! Runs tests/validate-data.sh: desktop entry, metainfo, schema, help, translations.

use std::path::Path;
use std::process::Command;

#[test]
fn data_files_pass_every_validator() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/validate-data.sh");
    let out = Command::new("sh")
        .arg(&script)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    assert!(
        out.status.success(),
        "{} failed:\n{}\n{}",
        script.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
