//! `vireoctl clone`: virt-clone's options, mapped onto the driver's clone use case
//! (`vireo_driver::usecase::clone`), which holds every rule; this file only reads flags and
//! prints progress.

use crate::ctl_exit::{fail, CtlResult, EXIT_ERROR, EXIT_INVALID, EXIT_OK, EXIT_STATE, EXIT_USAGE};
use clap::Args;
use std::io::{IsTerminal, Write};
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use vireo_driver::usecase::clone::{self, CloneError, CloneRequest, Progress};
use vireo_driver::Connection;

#[derive(Debug, Args)]
pub struct CloneArgs {
    /// The machine to clone (it must be shut off when disk images are copied)
    #[arg(short = 'o', long)]
    pub original: String,
    /// Name of the new machine (with --auto-clone, default: ORIGINAL-clone)
    #[arg(short = 'n', long)]
    pub name: Option<String>,
    /// Generate the new name and the paths of the copies (beside the originals, e.g.
    /// NAME-clone.qcow2; numbered if taken)
    #[arg(long)]
    pub auto_clone: bool,
    /// A new image for each copied disk, in the order of the disks (repeatable)
    #[arg(short = 'f', long = "file", value_name = "PATH")]
    pub files: Vec<PathBuf>,
    /// Copy no storage: the images given with --file are used as they are
    #[arg(long)]
    pub preserve_data: bool,
    /// Share the disk with this target (e.g. vdb) instead of copying it (repeatable)
    #[arg(long, value_name = "TARGET")]
    pub skip_copy: Vec<String>,
    /// MAC address for each network interface in order (RANDOM: a new one; default: all new)
    #[arg(short = 'm', long = "mac", value_name = "MAC")]
    pub macs: Vec<String>,
    /// Print the clone's domain XML and copy or define nothing
    #[arg(long)]
    pub print_xml: bool,
    /// Print no progress
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

/// Set by SIGINT/SIGTERM: the copy stops at its next block and removes what it made.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn interrupted(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

fn catch_interrupts() {
    let handler = interrupted as extern "C" fn(libc::c_int) as libc::sighandler_t;
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, handler);
        libc::signal(libc::SIGTERM, handler);
    }
}

fn exit_code(e: CloneError) -> (u8, String) {
    let e = match e {
        CloneError::Driver(d) => return fail(d),
        e => e,
    };
    let code = match &e {
        CloneError::InvalidName(_) | CloneError::NameTaken(_) => EXIT_INVALID,
        CloneError::OriginalActive { .. } | CloneError::ImageInUse(_) => EXIT_STATE,
        CloneError::NeedsName
        | CloneError::NeedsFile { .. }
        | CloneError::TooManyFiles { .. }
        | CloneError::RelativeDestination(_)
        | CloneError::DuplicateDestination(_)
        | CloneError::DestinationIsSource { .. }
        | CloneError::BadMac(_) => EXIT_USAGE,
        _ => EXIT_ERROR,
    };
    (code, e.to_string())
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / f64::from(1 << 20))
}

/// Progress on stderr: a line per image, updated in place on a terminal.
fn reporter(quiet: bool) -> impl FnMut(&Progress<'_>) -> ControlFlow<()> {
    let tty = std::io::stderr().is_terminal();
    let mut last: Option<(usize, u64)> = None;
    move |p| {
        if INTERRUPTED.load(Ordering::SeqCst) {
            return ControlFlow::Break(());
        }
        if quiet {
            return ControlFlow::Continue(());
        }
        let bytes = p.copy.bytes.max(1);
        let percent = p.copied.min(bytes) * 100 / bytes;
        let mut err = std::io::stderr().lock();
        if last.map(|(i, _)| i) != Some(p.index) {
            if tty && last.is_some() {
                let _ = writeln!(err);
            }
            let _ = write!(
                err,
                "Allocating '{}' ({})",
                p.copy.destination.display(),
                mib(p.copy.bytes)
            );
            if !tty {
                let _ = writeln!(err);
            }
            last = Some((p.index, u64::MAX));
        }
        if tty && last != Some((p.index, percent)) {
            let _ = write!(
                err,
                "\rAllocating '{}' {percent:3}% of {}",
                p.copy.destination.display(),
                mib(p.copy.bytes)
            );
            last = Some((p.index, percent));
            if p.index + 1 == p.count && p.done == p.total {
                let _ = writeln!(err);
            }
        }
        let _ = err.flush();
        ControlFlow::Continue(())
    }
}

pub fn clone(a: CloneArgs, conn: &Connection) -> CtlResult {
    let cwd = std::env::current_dir().unwrap_or_default();
    let req = CloneRequest {
        original: a.original,
        name: a.name,
        // The driver takes absolute paths only; a relative one means the current directory.
        files: a.files.into_iter().map(|f| cwd.join(f)).collect(),
        auto_clone: a.auto_clone,
        preserve_data: a.preserve_data,
        skip_copy: a.skip_copy,
        macs: a.macs,
    };
    let plan = clone::plan(conn, &req).map_err(exit_code)?;
    if a.print_xml {
        print!("{}", plan.definition.to_xml());
        return Ok(EXIT_OK);
    }
    for note in &plan.notes {
        eprintln!("note: {note}");
    }
    catch_interrupts();
    let done = clone::execute(conn, &plan, &mut reporter(a.quiet)).map_err(exit_code)?;
    println!("Clone '{}' created successfully.", done.info.name);
    Ok(EXIT_OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_errors_exit_with_2_and_state_errors_with_5() {
        assert_eq!(exit_code(CloneError::NeedsName).0, EXIT_USAGE);
        assert_eq!(
            exit_code(CloneError::OriginalActive {
                name: "a".into(),
                state: vireo_driver::DomainState::Running
            })
            .0,
            EXIT_STATE
        );
        assert_eq!(
            exit_code(CloneError::Driver(vireo_driver::DriverError::NotFound(
                "a".into()
            )))
            .0,
            crate::ctl_exit::EXIT_NOT_FOUND
        );
        assert_eq!(exit_code(CloneError::NameTaken("a".into())).0, EXIT_INVALID);
    }
}
