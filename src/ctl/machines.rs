//! The machine commands of `vireoctl`, with virsh's words and virsh-like output.

use crate::ctl_exit::{fail, CtlResult, EXIT_ERROR, EXIT_INVALID, EXIT_OK, EXIT_STATE};
use clap::{Args, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use vireo_driver::usecase::undefine::{self, KeptReason, StorageRemoval, UndefineError};
use vireo_driver::{Connection, DomainState, MachineInfo};

/// `--json` for scripts.
#[derive(Debug, Args, Clone, Copy)]
pub struct JsonOpt {
    /// Print machine-readable JSON instead of a table
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum MachineCommand {
    /// List machines (running ones; --all adds the stopped ones)
    List {
        /// Include machines that are shut off
        #[arg(long)]
        all: bool,
        /// Print only the names, one a line
        #[arg(long)]
        name: bool,
        #[command(flatten)]
        out: JsonOpt,
    },
    /// Define (create or replace) a machine from a domain XML file ('-' reads stdin)
    Define {
        file: PathBuf,
        /// Also check that the machine could start (kernel present, every device supported)
        #[arg(long)]
        validate: bool,
    },
    /// Remove a machine's definition (a running machine keeps running, as a transient one)
    Undefine {
        domain: String,
        /// Also remove the disk images and boot files Vireo made for it (in its images
        /// directory), except those another machine uses; files elsewhere are never touched
        #[arg(long, conflicts_with = "remove_all_storage")]
        remove_vireo_storage: bool,
        /// Also remove every disk image file of the machine, wherever it is and whichever other
        /// machine uses it (virsh's meaning; CD-ROM and read-only images too), and the boot files
        /// Vireo made for it
        #[arg(long)]
        remove_all_storage: bool,
    },
    /// Start a defined machine
    Start {
        domain: String,
        /// Attach to the serial console once started
        #[arg(long)]
        console: bool,
    },
    /// Ask the guest to power off (ACPI power button) and wait for it
    Shutdown {
        domain: String,
        /// Seconds to wait for the guest to stop (0: only send the request)
        #[arg(long, default_value_t = 60)]
        timeout: u64,
    },
    /// Stop a machine at once
    Destroy { domain: String },
    /// Restart a machine (a fresh helper; the guest sees a cold reboot)
    Reboot { domain: String },
    /// Reset a machine (hard reset; same as reboot with this backend)
    Reset { domain: String },
    /// Pause a running machine
    Suspend { domain: String },
    /// Resume a paused machine
    Resume { domain: String },
    /// Print a machine's state
    Domstate {
        domain: String,
        /// Also print why it is in that state
        #[arg(long)]
        reason: bool,
        #[command(flatten)]
        out: JsonOpt,
    },
    /// Print basic information about a machine
    Dominfo {
        domain: String,
        #[command(flatten)]
        out: JsonOpt,
    },
    /// Print a machine's domain XML (the live one while it runs)
    Dumpxml {
        domain: String,
        /// The persistent definition even while running
        #[arg(long)]
        inactive: bool,
    },
    /// Edit a machine's definition with $VISUAL/$EDITOR; the result is checked before it is saved
    Edit { domain: String },
    /// Start the machine when Vireo starts (--disable turns it off)
    Autostart {
        domain: String,
        #[arg(long)]
        disable: bool,
    },
    /// Attach to a running machine's serial console (Ctrl+] leaves)
    Console { domain: String },
    /// Save the guest's screen to a file
    Screenshot { domain: String, file: PathBuf },
    /// Print the VNC display of a running machine (127.0.0.1:N)
    Vncdisplay { domain: String },
    /// Print the VNC unix socket of a running machine
    Vncsocket { domain: String },
    /// Print the host capabilities XML
    Capabilities,
    /// Print the domain capabilities XML (what the Vireo backend supports)
    Domcapabilities {
        /// For this machine type (default: the default machine, vireo); UEFI shows on pc
        #[arg(long)]
        machine: Option<String>,
    },
    /// Print lifecycle and disk-change events
    Event {
        /// Only events of this machine
        #[arg(long)]
        domain: Option<String>,
        /// Keep printing until interrupted (else stop after the first event)
        #[arg(long = "loop")]
        keep: bool,
        /// Stop after this many seconds
        #[arg(long)]
        timeout: Option<u64>,
        /// Print the events the log already holds first
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        out: JsonOpt,
    },
}

fn state_word(i: &MachineInfo) -> &'static str {
    i.state.as_str()
}

pub(crate) fn print_table(rows: &[Vec<String>], header: &[&str]) {
    let mut w: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let s: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<width$}", width = w[i]))
            .collect();
        format!(" {}", s.join("   ")).trim_end().to_owned()
    };
    println!("{}", line(header.iter().map(|s| s.to_string()).collect()));
    println!("{}", "-".repeat(w.iter().sum::<usize>() + 3 * w.len()));
    for r in rows {
        println!("{}", line(r.clone()));
    }
}

fn json(v: &impl serde::Serialize) -> CtlResult {
    match serde_json::to_string_pretty(v) {
        Ok(s) => {
            println!("{s}");
            Ok(EXIT_OK)
        }
        Err(e) => Err((1, format!("cannot write JSON: {e}"))),
    }
}

pub fn run(cmd: MachineCommand, conn: &Connection) -> ExitCode {
    report(dispatch(cmd, conn))
}

/// The exit code of a command's outcome, with its error on stderr.
pub fn report(result: CtlResult) -> ExitCode {
    match result {
        Ok(code) => ExitCode::from(code),
        Err((code, msg)) => {
            eprintln!("error: {msg}");
            ExitCode::from(code)
        }
    }
}

/// `undefine`, with the storage the flags ask for (the rules are the driver's).
fn undefine_machine(conn: &Connection, domain: &str, removal: StorageRemoval) -> CtlResult {
    let done = undefine::undefine(conn, domain, removal).map_err(|e| match e {
        UndefineError::Driver(d) => fail(d),
        e @ UndefineError::Active { .. } => (EXIT_STATE, e.to_string()),
        e => (EXIT_ERROR, e.to_string()),
    })?;
    println!("Domain '{domain}' has been undefined");
    for p in &done.removed {
        println!("Image '{}' removed.", p.display());
    }
    for k in &done.kept {
        match &k.reason {
            KeptReason::UsedBy(other) => println!(
                "Image '{}' kept: domain '{other}' uses it.",
                k.path.display()
            ),
            KeptReason::NotAFile => {
                println!("Image '{}' kept: not a regular file.", k.path.display())
            }
        }
    }
    Ok(EXIT_OK)
}

fn read_input(file: &PathBuf) -> Result<String, (u8, String)> {
    if file.as_os_str() == "-" {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
            .map_err(|e| (1, format!("stdin: {e}")))?;
        return Ok(s);
    }
    std::fs::read_to_string(file).map_err(|e| {
        let code = if e.kind() == std::io::ErrorKind::NotFound {
            crate::ctl_exit::EXIT_NOT_FOUND
        } else {
            1
        };
        (code, format!("{}: {e}", file.display()))
    })
}

fn dispatch(cmd: MachineCommand, conn: &Connection) -> CtlResult {
    match cmd {
        MachineCommand::List { all, name, out } => {
            let mut list = conn.list().map_err(fail)?;
            if !all {
                list.retain(|i| i.state.is_active());
            }
            if out.json {
                return json(&list);
            }
            if name {
                for i in &list {
                    println!("{}", i.name);
                }
                return Ok(EXIT_OK);
            }
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|i| {
                    vec![
                        i.pid.map(|p| p.to_string()).unwrap_or_else(|| "-".into()),
                        i.name.clone(),
                        state_word(i).to_owned(),
                        if i.autostart { "yes" } else { "no" }.to_owned(),
                        if i.persistent { "yes" } else { "no" }.to_owned(),
                    ]
                })
                .collect();
            print_table(&rows, &["Id", "Name", "State", "Autostart", "Persistent"]);
            Ok(EXIT_OK)
        }
        MachineCommand::Define { file, validate } => {
            let xml = read_input(&file)?;
            if validate {
                for note in conn.check_startable(&xml).map_err(fail)? {
                    eprintln!("note: {note}");
                }
            }
            let info = conn.define_xml(&xml).map_err(fail)?;
            println!("Domain '{}' defined from {}", info.name, file.display());
            Ok(EXIT_OK)
        }
        MachineCommand::Undefine {
            domain,
            remove_vireo_storage,
            remove_all_storage,
        } => {
            let removal = if remove_all_storage {
                StorageRemoval::All
            } else if remove_vireo_storage {
                StorageRemoval::VireoMade
            } else {
                StorageRemoval::Keep
            };
            undefine_machine(conn, &domain, removal)
        }
        MachineCommand::Start { domain, console } => {
            conn.start(&domain).map_err(fail)?;
            println!("Domain '{domain}' started");
            if console {
                return crate::console::attach(conn, &domain);
            }
            Ok(EXIT_OK)
        }
        MachineCommand::Shutdown { domain, timeout } => {
            conn.shutdown(&domain, Duration::from_secs(timeout))
                .map_err(fail)?;
            if timeout == 0 {
                println!("Domain '{domain}' is being shutdown");
            } else {
                println!("Domain '{domain}' is shut down");
            }
            Ok(EXIT_OK)
        }
        MachineCommand::Destroy { domain } => {
            conn.destroy(&domain).map_err(fail)?;
            println!("Domain '{domain}' destroyed");
            Ok(EXIT_OK)
        }
        MachineCommand::Reboot { domain } => {
            conn.reboot(&domain).map_err(fail)?;
            println!("Domain '{domain}' is being rebooted");
            Ok(EXIT_OK)
        }
        MachineCommand::Reset { domain } => {
            conn.reset(&domain).map_err(fail)?;
            println!("Domain '{domain}' was reset");
            Ok(EXIT_OK)
        }
        MachineCommand::Suspend { domain } => {
            conn.suspend(&domain).map_err(fail)?;
            println!("Domain '{domain}' suspended");
            Ok(EXIT_OK)
        }
        MachineCommand::Resume { domain } => {
            conn.resume(&domain).map_err(fail)?;
            println!("Domain '{domain}' resumed");
            Ok(EXIT_OK)
        }
        MachineCommand::Domstate {
            domain,
            reason,
            out,
        } => {
            let (s, r) = conn.state(&domain).map_err(fail)?;
            if out.json {
                return json(&serde_json::json!({ "state": s.as_str(), "reason": r.as_str() }));
            }
            if reason {
                println!("{} ({})", s.as_str(), r.as_str());
            } else {
                println!("{}", s.as_str());
            }
            Ok(EXIT_OK)
        }
        MachineCommand::Dominfo { domain, out } => {
            let i = conn.info(&domain).map_err(fail)?;
            if out.json {
                return json(&i);
            }
            let rows = [
                (
                    "Id",
                    i.pid.map(|p| p.to_string()).unwrap_or_else(|| "-".into()),
                ),
                ("Name", i.name.clone()),
                ("UUID", i.uuid.clone().unwrap_or_default()),
                ("OS Type", "hvm".into()),
                ("State", i.state.as_str().into()),
                ("Reason", i.reason.as_str().into()),
                ("CPU(s)", i.vcpus.to_string()),
                ("Max memory", format!("{} KiB", i.memory_kib)),
                (
                    "Used memory",
                    format!(
                        "{} KiB",
                        if i.state == DomainState::Shutoff {
                            0
                        } else {
                            i.memory_kib
                        }
                    ),
                ),
                ("Persistent", if i.persistent { "yes" } else { "no" }.into()),
                (
                    "Autostart",
                    if i.autostart { "enable" } else { "disable" }.into(),
                ),
                ("Restarts", i.restarts.to_string()),
            ];
            for (k, v) in rows {
                println!("{:<16}{v}", format!("{k}:"));
            }
            if let Some(m) = i.message {
                println!(
                    "{:<16}{}",
                    "Last message:",
                    m.replace('\n', "\n                ")
                );
            }
            Ok(EXIT_OK)
        }
        MachineCommand::Dumpxml { domain, inactive } => {
            print!("{}", conn.xml(&domain, inactive).map_err(fail)?);
            Ok(EXIT_OK)
        }
        MachineCommand::Edit { domain } => crate::edit::edit(conn, &domain),
        MachineCommand::Autostart { domain, disable } => {
            conn.set_autostart(&domain, !disable).map_err(fail)?;
            if disable {
                println!("Domain '{domain}' unmarked as autostarted");
            } else {
                println!("Domain '{domain}' marked as autostarted");
            }
            Ok(EXIT_OK)
        }
        MachineCommand::Console { domain } => crate::console::attach(conn, &domain),
        MachineCommand::Screenshot { domain, file } => {
            conn.screenshot(&domain, &file).map_err(fail)?;
            println!("Screenshot saved to {}", file.display());
            Ok(EXIT_OK)
        }
        MachineCommand::Vncdisplay { domain } => {
            match conn.vnc_display(&domain).map_err(fail)? {
                Some(d) => println!("{d}"),
                None => {
                    let s = conn.vnc_socket(&domain).map_err(fail)?;
                    println!("unix:{}", s.display());
                }
            }
            Ok(EXIT_OK)
        }
        MachineCommand::Vncsocket { domain } => {
            println!("{}", conn.vnc_socket(&domain).map_err(fail)?.display());
            Ok(EXIT_OK)
        }
        MachineCommand::Capabilities => {
            print!("{}", vireo_driver::caps::capabilities());
            Ok(EXIT_OK)
        }
        MachineCommand::Domcapabilities { machine } => {
            let xml = vireo_driver::caps::domain_capabilities(machine.as_deref()).map_err(|e| {
                let m = machine.as_deref().unwrap_or_default();
                (EXIT_INVALID, format!("--machine {m}: {}", e.message))
            })?;
            print!("{xml}");
            Ok(EXIT_OK)
        }
        MachineCommand::Event {
            domain,
            keep,
            timeout,
            all,
            out,
        } => events(conn, domain.as_deref(), keep, timeout, all, out.json),
    }
}

fn events(
    conn: &Connection,
    domain: Option<&str>,
    keep: bool,
    timeout: Option<u64>,
    all: bool,
    as_json: bool,
) -> CtlResult {
    use std::io::Write;
    let want = |e: &vireo_driver::Event| {
        domain.is_none_or(|d| e.domain == d || e.uuid.as_deref() == Some(d))
    };
    let print = |e: &vireo_driver::Event| {
        if as_json {
            println!("{}", serde_json::to_string(e).unwrap_or_default());
        } else {
            println!("{}", e.virsh_line());
        }
        let _ = std::io::stdout().flush();
    };
    let start = std::time::Instant::now();
    let deadline = timeout.map(Duration::from_secs);
    let mut count = 0u64;
    if all {
        let mut r = vireo_driver::events::EventReader::from_start(&conn.paths().events_log());
        for e in r.poll().iter().filter(|e| want(e)) {
            print(e);
            count += 1;
        }
    }
    let sub = conn.subscribe();
    loop {
        let wait = match deadline {
            Some(d) => match d.checked_sub(start.elapsed()) {
                Some(left) => left,
                None => break,
            },
            None => Duration::from_secs(3600),
        };
        match sub.receiver.recv_timeout(wait) {
            Ok(e) if want(&e) => {
                print(&e);
                count += 1;
                if !keep {
                    break;
                }
            }
            Ok(_) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                if deadline.is_some() {
                    break;
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    if !as_json {
        println!("events received: {count}");
    }
    Ok(EXIT_OK)
}
