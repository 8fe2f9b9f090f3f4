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
    let dir = std::env::temp_dir();
    let file = dir.join(format!(
        "vireoctl-edit-{}-{}.xml",
        std::process::id(),
        domain.replace('/', "_")
    ));
    std::fs::write(&file, &original)
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
    let _ = std::fs::remove_file(&file);
    result
}
