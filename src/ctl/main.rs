//! `vireoctl`: Vireo's command-line tool.
//!
//! The machine commands (list, define, start, stop, …) arrive with the driver; for now the tool
//! answers `--help` and `--version`. New commands are variants of [`Command`] plus an arm in
//! [`run`].

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

mod clone;
mod console;
mod create;
mod ctl_exit;
mod docs;
mod edit;
mod machines;
mod media;
mod osinfo;
mod tools;

#[derive(Debug, Parser)]
#[command(
    name = "vireoctl",
    version,
    about = "Control Vireo virtual machines from the command line",
    long_about = "Control Vireo virtual machines from the command line, with virsh's and \
                  virt-install's words. Machines live under $XDG_CONFIG_HOME/vireo, running \
                  ones under $XDG_RUNTIME_DIR/vireo.",
    after_help = ctl_exit::EXIT_CODES_HELP
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the version of vireoctl (the same as --version)
    Version,
    #[command(flatten)]
    Machine(machines::MachineCommand),
    #[command(flatten)]
    Media(media::MediaCommand),
    /// Clone a machine (virt-clone's options): new name, UUID and MACs, copies of its disks
    #[command(
        long_about = "Clone a machine, as virt-clone does: a new definition with a new \
                            name, UUID and MAC addresses, and copies of the disk images the \
                            machine writes to (it must be shut off). Read-only and shareable \
                            disks and CD-ROMs are shared, not copied; so are boot files outside \
                            Vireo's images directory. Existing files are never overwritten; a \
                            failed or interrupted clone removes its copies and defines nothing."
    )]
    Clone(Box<clone::CloneArgs>),
    #[command(flatten)]
    Tool(tools::ToolCommand),
}

fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Some(Command::Version) => {
            println!("vireoctl {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Some(Command::Machine(c)) => machines::run(c, &vireo_driver::Connection::open()),
        Some(Command::Media(c)) => {
            machines::report(media::run(c, &vireo_driver::Connection::open()))
        }
        Some(Command::Clone(a)) => {
            machines::report(clone::clone(*a, &vireo_driver::Connection::open()))
        }
        Some(Command::Tool(c)) => tools::run(c, &vireo_driver::Connection::open(), Cli::command),
        None => {
            eprintln!("vireoctl: no command given (see vireoctl --help)");
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
