//! Golden files of `vireoctl create`, in the manner of virt-manager's tests/data/cli/compare:
//! tests/golden/create/CASE.args holds a command line (one argument per line, without the
//! program), CASE.xml the exact document `--print-xml` prints for it, compared byte for byte.
//! The wizard's unit test (src/gui/wizard_xml.rs) plans the same machines from its form and
//! compares them with the same files, so both front ends are held to one document.
//!
//! The UUID and MACs come from `--uuid` and `mac=`; the paths are fixed and need not exist
//! (a plan reads no image and writes nothing); Vireo's images directory is under
//! XDG_DATA_HOME=/golden/data; `--osinfo` reads the one-system database in tests/golden/osinfo.
//! `VIREO_GOLDEN_WRITE=1` rewrites the XML files from the current
//! output (review the diff before committing it).

mod vireoctl_support;

use std::path::{Path, PathBuf};
use std::process::Command;
use vireoctl_support::Home;

fn cases() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/create");
    let mut args: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "args"))
        .collect();
    args.sort();
    args
}

#[test]
fn create_prints_the_golden_documents() {
    let h = Home::new("golden");
    let write = std::env::var_os("VIREO_GOLDEN_WRITE").is_some_and(|v| v == "1");
    let cases = cases();
    assert!(cases.len() >= 7, "golden cases missing: {cases:?}");
    let mut failed = Vec::new();
    for args_file in cases {
        let text = std::fs::read_to_string(&args_file).unwrap();
        let args: Vec<&str> = text.lines().collect();
        let out = h
            .cmd()
            .env("XDG_DATA_HOME", "/golden/data")
            .env(
                "OSINFO_SYSTEM_DIR",
                Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/osinfo"),
            )
            .args(&args)
            .output()
            .unwrap();
        let xml_file = args_file.with_extension("xml");
        assert!(
            out.status.success(),
            "{}: {}",
            args_file.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let got = String::from_utf8(out.stdout).unwrap();
        if write {
            std::fs::write(&xml_file, &got).unwrap();
            continue;
        }
        let want = std::fs::read_to_string(&xml_file)
            .unwrap_or_else(|e| panic!("{}: {e}", xml_file.display()));
        if got != want {
            failed.push(format!(
                "{}:\n--- expected\n{want}--- printed\n{got}",
                xml_file.display()
            ));
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

#[test]
fn every_golden_document_is_valid_libvirt_xml() {
    for args_file in cases() {
        let xml_file = args_file.with_extension("xml");
        let out = Command::new("virt-xml-validate")
            .arg(&xml_file)
            .arg("domain")
            .output()
            .expect("virt-xml-validate (libvirt-clients) must be installed");
        assert!(
            out.status.success(),
            "{}: {}{}",
            xml_file.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
