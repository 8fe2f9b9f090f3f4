//! `change-media` and `domblklist`: CD-ROM media and the list of a machine's drives, with
//! virsh's words and output.

use crate::ctl_exit::{fail, CtlResult, EXIT_INVALID, EXIT_NOT_FOUND, EXIT_OK, EXIT_STATE};
use clap::{ArgGroup, Subcommand};
use std::path::PathBuf;
use vireo_driver::usecase::{change_media, drives, MediaAction, MediaError, MediaScope};
use vireo_driver::Connection;

#[derive(Debug, Subcommand)]
pub enum MediaCommand {
    /// Insert, eject or replace the medium of a CD-ROM drive
    #[command(
        long_about = "Insert, eject or replace the medium of a CD-ROM drive, as virsh \
                      change-media does. TARGET is the drive's target name (sda; see \
                      domblklist). --insert puts PATH into an empty drive, --eject takes the \
                      medium out, --update (the default) replaces it with PATH, or ejects when \
                      no PATH is given. The change applies to the running machine (--live), to \
                      its definition (--config), or both; by default (--current) to the running \
                      machine if it runs, else to the definition. A tray the guest locked \
                      refuses a change unless --force.",
        group(ArgGroup::new("action").args(["insert", "eject", "update"])),
        group(ArgGroup::new("scope").args(["live", "config"]).multiple(true).conflicts_with("current"))
    )]
    ChangeMedia {
        domain: String,
        /// The drive's target name (sda)
        target: String,
        /// The ISO image to put into the drive
        path: Option<PathBuf>,
        /// Put PATH into an empty drive
        #[arg(long, requires = "path")]
        insert: bool,
        /// Take the medium out of the drive
        #[arg(long, conflicts_with = "path")]
        eject: bool,
        /// Replace the medium with PATH, or eject it when no PATH is given (the default)
        #[arg(long)]
        update: bool,
        /// Also when the guest locked the tray
        #[arg(long)]
        force: bool,
        /// Change the running machine
        #[arg(long)]
        live: bool,
        /// Change the machine's definition (also while it runs, for its next start)
        #[arg(long)]
        config: bool,
        /// The running machine if it runs, else the definition (the default)
        #[arg(long)]
        current: bool,
    },
    /// List a machine's disks and CD-ROM drives with their images
    Domblklist {
        domain: String,
        /// The definition's drives even while the machine runs
        #[arg(long)]
        inactive: bool,
        /// Also print each drive's type and device
        #[arg(long)]
        details: bool,
    },
}

/// The exit code of a refused media change.
fn media_fail(e: MediaError) -> (u8, String) {
    let code = match &e {
        MediaError::Driver(_) | MediaError::NotCdrom { .. } | MediaError::Transient(_) => {
            EXIT_INVALID
        }
        MediaError::Image { .. } => EXIT_INVALID,
        MediaError::NoSuchTarget { .. } => EXIT_NOT_FOUND,
        MediaError::NotRunning(_) | MediaError::Full { .. } | MediaError::Empty { .. } => {
            EXIT_STATE
        }
    };
    match e {
        MediaError::Driver(d) => fail(d),
        e => (code, e.to_string()),
    }
}

pub fn run(cmd: MediaCommand, conn: &Connection) -> CtlResult {
    match cmd {
        MediaCommand::ChangeMedia {
            domain,
            target,
            path,
            insert,
            eject,
            update: _,
            force,
            live,
            config,
            current: _,
        } => {
            let path = match path {
                Some(p) => Some(
                    std::path::absolute(&p)
                        .map_err(|e| (EXIT_INVALID, format!("{}: {e}", p.display())))?,
                ),
                None => None,
            };
            let (action, done) = match (insert, eject, path) {
                (true, _, Some(p)) => (MediaAction::Insert(p), "inserted"),
                (_, true, _) => (MediaAction::Eject, "ejected"),
                (_, _, None) => (MediaAction::Update(None), "ejected"),
                (_, _, p) => (MediaAction::Update(p), "updated"),
            };
            let scope = MediaScope { live, config };
            change_media(conn, &domain, &target, action, force, scope).map_err(media_fail)?;
            println!("Successfully {done} media.");
            Ok(EXIT_OK)
        }
        MediaCommand::Domblklist {
            domain,
            inactive,
            details,
        } => {
            let list = drives(conn, &domain, inactive).map_err(media_fail)?;
            let source = |s: &Option<PathBuf>| {
                s.as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|| "-".into())
            };
            if details {
                let rows: Vec<Vec<String>> = list
                    .iter()
                    .map(|d| {
                        vec![
                            d.kind.clone(),
                            d.device.clone(),
                            d.target.clone(),
                            source(&d.source),
                        ]
                    })
                    .collect();
                crate::machines::print_table(&rows, &["Type", "Device", "Target", "Source"]);
            } else {
                let rows: Vec<Vec<String>> = list
                    .iter()
                    .map(|d| vec![d.target.clone(), source(&d.source)])
                    .collect();
                crate::machines::print_table(&rows, &["Target", "Source"]);
            }
            Ok(EXIT_OK)
        }
    }
}
