//! Shell completions and the man page, generated from the same clap definitions as the parser.

use crate::ctl_exit::{CtlResult, EXIT_ERROR, EXIT_OK};
use std::path::Path;

pub fn completions(shell: clap_complete::Shell, mut cmd: clap::Command) -> CtlResult {
    clap_complete::generate(shell, &mut cmd, "vireoctl", &mut std::io::stdout());
    Ok(EXIT_OK)
}

/// Writes vireoctl.1 and one page per subcommand (vireoctl-start.1, ...) into `dir`.
pub fn man(dir: &Path, cmd: clap::Command) -> CtlResult {
    let err = |e: std::io::Error| (EXIT_ERROR, format!("{}: {e}", dir.display()));
    std::fs::create_dir_all(dir).map_err(err)?;
    let mut buf = Vec::new();
    clap_mangen::Man::new(cmd.clone())
        .render(&mut buf)
        .map_err(err)?;
    std::fs::write(dir.join("vireoctl.1"), &buf).map_err(err)?;
    let mut n = 1;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = format!("vireoctl-{}", sub.get_name());
        // clap wants a 'static name; this runs once per page in a short-lived process.
        let static_name: &'static str = Box::leak(name.clone().into_boxed_str());
        let sub = sub.clone().name(static_name);
        let mut buf = Vec::new();
        clap_mangen::Man::new(sub).render(&mut buf).map_err(err)?;
        std::fs::write(dir.join(format!("{name}.1")), &buf).map_err(err)?;
        n += 1;
    }
    println!("{n} man pages written to {}", dir.display());
    Ok(EXIT_OK)
}
