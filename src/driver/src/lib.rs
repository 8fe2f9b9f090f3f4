//! The driver: owns machine definitions and their running helpers (Vireo's libvirt).
//!
//! There is no daemon. Definitions live in files ([`store`]); a running machine is a small
//! supervisor process ([`supervisor`], run as the hidden `vireoctl __supervise`) plus one
//! `vireo-vmm` helper, found again through its runtime directory ([`rundir`]). Clients (the GUI,
//! `vireoctl`) use [`Connection`]; every call is blocking, reads the state fresh from disk (so
//! two clients always agree, and a restarted client simply sees what kept running), and
//! returns a typed [`DriverError`].
//!
//! # For the GUI
//! ```no_run
//! use std::time::Duration;
//! use vireo_driver::{Connection, DomainState};
//!
//! let conn = Connection::open(); // $XDG_CONFIG_HOME/vireo, $XDG_RUNTIME_DIR/vireo, ...
//! for m in conn.list()? {        // Vec<MachineInfo>: name, uuid, title, state, reason, ...
//!     println!("{} {}", m.name, m.state);
//! }
//! let info = conn.define_xml("<domain type='kvm'>...</domain>")?; // create or replace
//! conn.start(&info.name)?;                     // returns once the helper's socket is up
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
//! Also: `undefine`, `destroy`, `reboot`, `reset`, `suspend`, `resume`, `state`, `info`,
//! `xml(name, inactive)`, `autostart` / `set_autostart` / `start_autostart`, `create_transient`,
//! `check_startable` (translation check without starting), `screenshot(name, file)`,
//! `vnc_display`, `serial_log`. The XML Vireo writes comes from `vireo-domain`; the quick machine
//! from [`quick::prepare`], whose initramfs is made by [`initramfs`] (on [`cpio`], with kernel
//! modules from [`modules`]); the test rig builds its guests' images with the same code.
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
//! whatever no view models is kept verbatim in the stored file. New documents are built with
//! [`domain::DomainBuilder`] (as `vireoctl create` and the GUI's wizard do).

pub mod caps;
pub mod connection;
pub mod control;
pub mod cpio;
pub mod definition;
pub mod events;
pub mod host;
pub mod initramfs;
pub mod modules;
pub mod paths;
pub mod process;
pub mod quick;
pub mod rundir;
pub mod state;
pub mod stats;
pub mod store;
pub mod supervisor;
pub mod translate;
pub mod usecase;

/// Kept for clients written against the driver's first XML adapter: the name check is now
/// [`definition::check_name`].
pub mod model {
    pub use crate::definition::check_name;
}

pub use connection::{Connection, DriverError, MachineInfo};
pub use definition::Definition;
pub use events::{Event, Subscription};
pub use paths::Paths;
pub use state::{DomainState, EventKind, Reason};
/// The domain XML library (parse, typed views, validation, `DomainBuilder`): the one XML model
/// of the project, re-exported for clients that talk only to the driver (the GUI, `vireoctl`).
pub use vireo_domain as domain;
