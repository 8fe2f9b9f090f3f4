//! `vireoctl`: Vireo's command-line tool.
//!
//! The machine commands (list, define, start, stop, …) arrive with the driver; for now the tool
//! answers `--help` and `--version`. New commands are variants of [`Command`] plus an arm in
//! [`run`].

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "vireoctl",
    version,
    about = "Control Vireo virtual machines from the command line",
    long_about = "Control Vireo virtual machines from the command line.\n\n\
                  This version only answers --help and --version: the commands that list, \
                  define, start and stop machines arrive with Vireo's driver."
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the version of vireoctl (the same as --version)
    Version,
}

fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Some(Command::Version) => {
            println!("vireoctl {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        None => {
            eprintln!(
                "vireoctl: no command given; machine commands are not available yet (see vireoctl --help)"
            );
            ExitCode::from(2)
        }
    }
}

fn main() -> ExitCode {
    run(Cli::parse())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn version_subcommand_parses() {
        let cli = Cli::try_parse_from(["vireoctl", "version"]).unwrap();
        assert!(matches!(cli.command, Some(Command::Version)));
        assert!(Cli::try_parse_from(["vireoctl", "frobnicate"]).is_err());
    }
}
