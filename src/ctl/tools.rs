//! vireoctl's non-machine commands: create, completions, man page, and the hidden supervisor.

use crate::ctl_exit::CtlResult;
use clap::Subcommand;
use std::path::PathBuf;
use std::process::ExitCode;
use vireo_driver::Connection;

#[derive(Debug, Subcommand)]
pub enum ToolCommand {
    /// Create a machine (virt-install's options), or the quick machine with --quick
    #[command(
        long_about = "Create a machine with virt-install's options. It boots its firmware \
                      (SeaBIOS, from Debian's seabios package): --cdrom ISO puts an installer \
                      or live ISO in a CD-ROM drive and boots it first; --import boots the \
                      first --disk with the boot loader on it; --boot hd,cdrom,menu=on sets \
                      the boot order and shows the firmware's boot menu; --boot uefi boots \
                      UEFI instead (OVMF, from Debian's ovmf package, on the pc machine; \
                      without Secure Boot). Or it boots a kernel directly: --boot \
                      kernel=PATH (with --import the first --disk is its disk). --quick makes \
                      a small Linux from this computer's kernel. The machine is defined, not \
                      started: add --start. Network boot is not supported yet.",
        after_help = "Examples:\n  \
                      vireoctl create --name debian --cdrom debian-12.iso --disk size=20 --start\n  \
                      vireoctl create --name old --import --disk path=old.qcow2\n  \
                      vireoctl create --name efi --boot uefi --cdrom debian-12.iso --disk size=20\n  \
                      vireoctl create --name tiny --boot kernel=/boot/vmlinuz,kernel_args=console=ttyS0"
    )]
    Create(Box<crate::create::CreateArgs>),
    /// List the operating systems libosinfo's database knows (virt-install's osinfo-query)
    #[command(
        name = "osinfo-query",
        after_help = "Filters compare whole values: short-id, name, version, vendor, family, id.\n\
                      Example:\n  vireoctl osinfo-query os vendor='Debian Project'"
    )]
    OsinfoQuery {
        /// What to list: os
        kind: String,
        /// KEY=VALUE filters, all of which must hold
        filters: Vec<String>,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell)
    Completions { shell: clap_complete::Shell },
    /// Write the man pages (default: target/man)
    #[command(hide = true)]
    Man {
        #[arg(long, default_value = "target/man")]
        dir: PathBuf,
    },
    /// Internal: supervise one machine's helper (started by the driver, not by hand)
    #[command(name = "__supervise", hide = true)]
    Supervise {
        #[arg(long)]
        rundir: PathBuf,
        #[arg(long)]
        events: PathBuf,
        #[arg(long)]
        vmm: PathBuf,
        #[arg(long)]
        unpack_kernel: Option<PathBuf>,
        #[arg(long)]
        kernel_cache: Option<PathBuf>,
        #[arg(long)]
        config_dir: Option<PathBuf>,
    },
}

pub fn run(cmd: ToolCommand, conn: &Connection, cli: impl Fn() -> clap::Command) -> ExitCode {
    let r: CtlResult = match cmd {
        ToolCommand::Create(a) => crate::create::create(*a, conn),
        ToolCommand::OsinfoQuery { kind, filters } => crate::osinfo::query(&kind, &filters),
        ToolCommand::Completions { shell } => crate::docs::completions(shell, cli()),
        ToolCommand::Man { dir } => crate::docs::man(&dir, cli()),
        ToolCommand::Supervise {
            rundir,
            events,
            vmm,
            unpack_kernel,
            kernel_cache,
            config_dir,
        } => {
            let code =
                vireo_driver::supervisor::supervise(&vireo_driver::supervisor::SuperviseArgs {
                    rundir,
                    events,
                    vmm,
                    unpack_kernel,
                    kernel_cache,
                    config_dir,
                });
            Ok(u8::try_from(code).unwrap_or(1))
        }
    };
    match r {
        Ok(c) => ExitCode::from(c),
        Err((c, msg)) => {
            eprintln!("error: {msg}");
            ExitCode::from(c)
        }
    }
}
