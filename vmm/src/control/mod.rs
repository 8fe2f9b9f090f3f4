//! The control socket's server side: line-delimited JSON over a unix socket, QMP-like.
//!
//! The protocol (greeting, commands, replies, error classes, events) is defined once, as types
//! with their exact JSON, in `vireo_vmm_api::control`, which the driver's client uses too. This
//! module answers it: [`server`] runs the loop on the main thread and carries out the core
//! commands, [`events::EventBus`] pushes events, and a [`ControlHandler`] adds commands (the VNC
//! server's `screendump` and `vnc-info`).
//!
//! What the commands do here:
//! - `pause` / `resume`: guest time (kvmclock) stops while paused: the clock is saved with
//!   KVM_GET_CLOCK on pause and restored with KVM_SET_CLOCK on resume.
//! - `power-down`: presses the ACPI power button; the guest shuts down on its own.
//! - `reset`: ends this process with the reboot exit status (2); the driver starts the machine
//!   again.
//! - `quit`: stops the VM at once; exit status 0.
//! - `shutdown` is the last event before the process exits.

pub mod events;
pub mod server;

pub use vireo_vmm_api::control::PROTOCOL_VERSION;
use vireo_vmm_api::control::{Command, Return};

/// An extension that answers extra commands (e.g. `screendump`, `vnc-info` from the VNC
/// server). Return `None` for commands it does not answer.
pub trait ControlHandler: Send {
    /// Names of the [`Command`]s it answers, for `query-commands`; only those reach
    /// [`Self::handle`], and a helper without the handler does not know them.
    fn commands(&self) -> Vec<&'static str>;
    fn handle(&mut self, command: &Command) -> Option<Result<Return, String>>;
}
