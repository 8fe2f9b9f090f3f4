//! The driver: owns machine definitions and their running helpers (Vireo's libvirt), and holds
//! every rule about what users do to machines, so that the GUI and `vireoctl` only map their
//! fields and flags to it.
//!
//! There is no daemon. Definitions live in files ([`store`]); a running machine is a small
//! supervisor process ([`supervisor`], run as the hidden `vireoctl __supervise`) plus one
//! `vireo-vmm` helper, found again through its runtime directory ([`rundir`]). Clients (the GUI,
//! `vireoctl`) use [`Connection`] and [`usecase`]; every call is blocking, reads the state fresh
//! from disk (so two clients always agree, and a restarted client simply sees what kept
//! running), and returns a typed [`DriverError`].
//!
//! The supervisor is this crate's code ([`supervisor::supervise`]); `vireoctl` only lends it an
//! executable. It must be a process of its own, started by [`Connection::start`] for either
//! front end, so that a machine outlives the window or shell that started it; and of the two
//! binaries Vireo installs, `vireoctl` is the one without GTK: a supervisor exec'd from `vireo`
//! would map the whole toolkit into every running machine's supervisor for nothing. So the GUI
//! does not go through the command line's code, only through its executable (found next to
//! `vireo`, in `PATH`, or by `VIREO_SUPERVISOR`).
//!
//! # Where each rule lives
//! | rule | place |
//! |---|---|
//! | what a new machine is: its devices and every default | [`usecase::shape`] |
//! | the description a front end fills in ([`usecase::NewMachine`]) | [`usecase::machine`] |
//! | planning (`--print-xml`, the wizard's review) and creating a machine, undoing a failed one | [`usecase::create`](mod@usecase::create) |
//! | what an edit may do (`vireoctl edit`, the details window) | [`usecase::edit`](mod@usecase::edit) |
//! | making disk images (`qemu-img`), refusing existing files; the image format pre-filled from a file name, never from content | [`usecase::storage`] |
//! | disk target names (`vda`, `sda`, ...) | [`usecase::targets`] |
//! | where an error points ([`usecase::Place`], one path format) and which part of a machine that is ([`usecase::Part`]) | [`usecase::place`] |
//! | names, UUIDs, parsing and validating a definition | [`definition`] (with `vireo-domain`) |
//! | what the backend can run (the start check) | [`translate`] |
//! | UEFI variable stores: made on a first start, Vireo's own removed on undefine | [`nvram`] (with [`translate::uefi`], [`usecase::undefine`](mod@usecase::undefine)) |
//! | the quick machine's kernel and initramfs | [`quick`] |
//!
//! # For the GUI
//! ```no_run
//! use std::time::Duration;
//! use vireo_driver::usecase::{self, KernelBoot, NewMachine, Source};
//! use vireo_driver::{Connection, DomainState};
//!
//! let conn = Connection::open(); // $XDG_CONFIG_HOME/vireo, $XDG_RUNTIME_DIR/vireo, ...
//! for m in conn.list()? {        // Vec<MachineInfo>: name, uuid, title, state, reason, ...
//!     println!("{} {}", m.name, m.state);
//! }
//! let boot = KernelBoot { kernel: "/boot/vmlinuz".into(), ..KernelBoot::default() };
//! let mut machine = NewMachine::new("demo", Source::Kernel(boot)); // the shipped defaults
//! machine.start = true;
//! let plan = usecase::plan(&conn, &machine)?;  // plan.xml: the exact document, nothing written
//! let made = usecase::create(&conn, &plan)?;   // disks, start check, define, start
//! // A refusal names the parts of the machine it concerns: e.parts() -> [Part::Kernel], ...
//! let info = made.info;
//! let vnc = conn.vnc_socket(&info.name)?;      // unix socket for the VNC widget
//! let serial = conn.console_socket(&info.name)?;
//! conn.shutdown(&info.name, Duration::from_secs(60))?; // ACPI button, waits up to 60 s
//! let events = conn.subscribe();               // std::sync::mpsc::Receiver<Event> inside
//! while let Ok(ev) = events.receiver.recv() {  // run on a thread; forward to the main loop
//!     if ev.kind == vireo_driver::EventKind::Stopped { break }
//! }
//! # let _ = (vnc, serial, DomainState::Running);
//! # Ok::<(), vireo_driver::DriverError>(())
//! ```
//! Also: `define_xml` / `define_new_xml`, `undefine`, `start`, `destroy`, `reboot`, `reset`,
//! `suspend`, `resume`, `state`, `info`, `xml(name, inactive)`, `autostart` / `set_autostart` /
//! `start_autostart`, `create_transient`, `check_startable` (the start check without
//! starting), `screenshot(name, file)`, `vnc_display`, `serial_log`.
//! The quick machine comes from [`quick::prepare`], whose initramfs is made by [`initramfs`] (on
//! [`cpio`], with kernel modules from [`modules`]); the test rig builds its guests' images with
//! the same code.
//!
//! # Files
//! See [`paths`] (XDG layout), [`rundir`] (per-machine runtime files), [`events`] (the ordered
//! event log), [`state`] (libvirt's states and reasons, and the lifecycle state machine),
//! [`translate`] (domain XML -> `vireo_vmm_api::config::VmConfig`, with every refusal naming its
//! element).
//!
//! # The helper
//! The driver links `vireo-vmm-api`, not the VMM: the config it writes for a run, the limits
//! [`translate`] and [`caps`] check against, the exit statuses [`state::VmmExit`] reads and the
//! control protocol [`control`] speaks are defined there once, for both sides.
//!
//! # Domain XML
//! There is one XML model in the project: `vireo-domain`, re-exported as [`domain`]. A
//! definition ([`Definition`]) is a document it parsed and validated (its errors, with line,
//! column and element path, are [`DriverError::Invalid`]); [`translate`] reads its typed views;
//! whatever no view models is kept verbatim in the stored file. New documents are written by
//! [`usecase::shape`] with [`domain::DomainBuilder`], which writes only what it is told.

pub mod caps;
pub mod connection;
pub mod control;
pub mod cpio;
pub mod definition;
pub mod events;
pub mod host;
pub mod initramfs;
pub mod install;
pub mod live;
pub mod modules;
pub mod nvram;
pub mod osinfo;
pub mod paths;
pub mod process;
pub mod quick;
pub mod rundir;
pub mod state;
pub mod stats;
pub mod store;
pub mod supervisor;
pub mod translate;
pub mod unpack;
pub mod usecase;

/// Kept for clients written against the driver's first XML adapter: the name check is now
/// [`definition::check_name`].
pub mod model {
    pub use crate::definition::check_name;
}

pub use connection::{Connection, DriverError, MachineInfo};
pub use definition::Definition;
pub use events::{DiskChange, DiskChangeReason, Event, Subscription};
pub use paths::Paths;
pub use state::{DomainState, EventKind, Reason};
/// The domain XML library (parse, typed views, validation, `DomainBuilder`): the one XML model
/// of the project, re-exported for clients that talk only to the driver (the GUI, `vireoctl`).
pub use vireo_domain as domain;
