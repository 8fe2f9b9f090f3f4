//! The driver: owns machine definitions and their running helpers.
//!
//! There is no daemon. Definitions live in files ([`store`]); a running machine is a supervisor
//! process ([`supervisor`]) plus one `vireo-vmm` helper, found again through its runtime
//! directory ([`rundir`]). Clients (the GUI, `vireoctl`) use [`Connection`]; events reach them
//! through [`Connection::subscribe`].

pub mod caps;
pub mod connection;
pub mod control;
pub mod cpio;
pub mod events;
pub mod model;
pub mod paths;
pub mod process;
pub mod quick;
pub mod rundir;
pub mod state;
pub mod store;
pub mod supervisor;
pub mod translate;
pub mod xml;

pub use connection::{Connection, DriverError, MachineInfo};
pub use events::{Event, Subscription};
pub use paths::Paths;
pub use state::{DomainState, EventKind, Reason};
