//! `vireoctl edit`: the definition in $VISUAL/$EDITOR, saved through the driver's edit policy
//! ([`vireo_driver::usecase::edit`], the same as the GUI's details window): an edit that is
//! invalid, or that would keep a machine that starts from starting, is refused and nothing is
//! saved. On a refusal the user is asked whether to edit again (as virsh does), on the text as
//! edited; one who gives up keeps that text in a file this command names.

use crate::ctl_exit::{fail, CtlResult, EXIT_ERROR, EXIT_OK};
use std::io::{BufRead, Write};
use vireo_driver::usecase;
use vireo_driver::Connection;

fn editor() -> String {
    std::env::var("VISUAL")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .or_else(|| {
            std::env::var("EDITOR")
                .ok()
                .filter(|s| !s.trim().is_empty())
        })
        .unwrap_or_else(|| "vi".into())
}

fn ask_again() -> bool {
    eprint!("Failed. Try again? [y,n]: ");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    match std::io::stdin().lock().read_line(&mut line) {
        Ok(0) | Err(_) => false,
        Ok(_) => matches!(line.trim(), "y" | "Y" | "yes"),
    }
}

pub fn edit(conn: &Connection, domain: &str) -> CtlResult {
    let original = conn.xml(domain, true).map_err(fail)?;
    // The copy holds the whole definition, VNC password included: it goes into a fresh 0700
    // directory with an unpredictable name, as a 0600 file, never under a guessable name in the
    // shared temporary directory.
    let dir = private_temp_dir().map_err(|e| {
        (
            EXIT_ERROR,
            format!("cannot make a private temporary directory: {e}"),
        )
    })?;
    let file = dir.join(format!("{}.xml", domain.replace('/', "_")));
    write_private(&file, original.as_bytes())
        .map_err(|e| (EXIT_ERROR, format!("{}: {e}", file.display())))?;
    let result = loop {
        // The editor string may carry arguments ("code --wait"): run it through the shell.
        let status = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(format!("{} \"$1\"", editor()))
            .arg("vireoctl-edit")
            .arg(&file)
            .status();
        match status {
            Ok(s) if s.success() => {}
            Ok(s) => break Err((EXIT_ERROR, format!("editor {} failed: {s}", editor()))),
            Err(e) => break Err((EXIT_ERROR, format!("cannot run editor {}: {e}", editor()))),
        }
        let edited = match std::fs::read_to_string(&file) {
            Ok(t) => t,
            Err(e) => break Err((EXIT_ERROR, format!("{}: {e}", file.display()))),
        };
        if edited == original {
            println!("Domain '{domain}' XML configuration not changed.");
            break Ok(EXIT_OK);
        }
        match usecase::edit_xml(conn, domain, &edited) {
            Ok(done) => {
                println!("Domain '{}' XML configuration edited.", done.info.name);
                break Ok(EXIT_OK);
            }
            Err(e) => {
                eprintln!("error: {e}");
                if !ask_again() {
                    // Nothing typed is lost: the edited text stays where the editor left it.
                    eprintln!("Your edited XML is kept in {}", file.display());
                    return Err((
                        fail(e).0,
                        format!("Domain '{domain}' XML configuration not changed."),
                    ));
                }
            }
        }
    };
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// A directory made by mkdtemp(3) under the temporary directory: mode 0700, a name nobody can
/// guess or make first.
fn private_temp_dir() -> std::io::Result<std::path::PathBuf> {
    use std::os::unix::ffi::{OsStrExt, OsStringExt};
    let mut template = std::env::temp_dir()
        .join("vireoctl-edit-XXXXXX")
        .into_os_string()
        .into_vec();
    template.push(0);
    // SAFETY: a writable, NUL-terminated template that mkdtemp fills in place.
    if unsafe { libc::mkdtemp(template.as_mut_ptr().cast()) }.is_null() {
        return Err(std::io::Error::last_os_error());
    }
    template.pop();
    Ok(std::ffi::OsStr::from_bytes(&template).into())
}

/// Creates `path` (which must not exist) with mode 0600 and writes `data`.
fn write_private(path: &std::path::Path, data: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?
        .write_all(data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn the_copy_is_private_in_a_fresh_directory() {
        let a = private_temp_dir().unwrap();
        let b = private_temp_dir().unwrap();
        assert_ne!(a, b);
        let dir_mode = std::fs::metadata(&a).unwrap().permissions().mode();
        assert_eq!(dir_mode & 0o777, 0o700);
        let f = a.join("m.xml");
        write_private(&f, b"<domain/>").unwrap();
        assert_eq!(
            std::fs::metadata(&f).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(
            write_private(&f, b"again").is_err(),
            "an existing file is never reused"
        );
        std::fs::remove_dir_all(a).unwrap();
        std::fs::remove_dir_all(b).unwrap();
    }
}
