//! The control socket: line-delimited JSON over a unix socket, QMP-like.
//!
//! # Protocol, version 1
//!
//! On connect the server sends a greeting line:
//! `{"vireo":{"protocol":1,"vmm":"<crate version>","name":"<vm name>"}}`.
//!
//! Each request is one line: `{"execute":"<command>","arguments":{...},"id":<any>}`
//! (`arguments` and `id` optional). Each gets exactly one reply line, in order:
//! `{"return":<value>,"id":<id>}` or `{"error":{"class":"<Class>","desc":"<text>"},"id":<id>}`.
//! Error classes: `ParseError`, `CommandNotFound`, `InvalidState`, `GenericError`.
//!
//! Events may arrive between replies, to every connected client:
//! `{"event":"<name>","data":{...},"timestamp":{"seconds":S,"microseconds":US}}`.
//!
//! Commands:
//! - `status` → `{"state":"running"|"paused"|"shutting-down","uptime_ms":N,"vcpus":N,
//!   "name":S,"memory_mib":N,"boot_marks":[{"value":N,"ms":F}],"exits":N,"unclaimed_accesses":N,
//!   "process":{"cpu_ms":F,"rss_kib":N}}`
//! - `pause` / `resume` → `{}`; guest time (kvmclock) stops while paused: the clock is saved
//!   with KVM_GET_CLOCK on pause and restored with KVM_SET_CLOCK on resume.
//! - `power-down` → `{}`: presses the ACPI power button; the guest shuts down on its own.
//! - `reset` → `{}`: ends this process with the reboot exit status (2); the driver starts the
//!   machine again.
//! - `quit` → `{}`: stops the VM at once; exit status 0.
//! - `send-scancodes` `{"codes":[u8...]}` → `{}`: types set-1 scancodes into the i8042.
//! - `send-text` `{"text":S}` → `{}`: types ASCII text (US layout; `\n` is Enter).
//! - `query-commands` → list of command names (including those added by extensions).
//!
//! Events: `state-changed` `{"state":...}`, `boot-marker` `{"value","ms"}`, `poweroff`,
//! `reboot`, `crash` `{"reason"}`, `shutdown` `{"reason","exit_code"}` (last event before the
//! process exits). Extensions (VNC) add e.g. `resolution-changed`.

pub mod events;
pub mod server;

use serde_json::Value;

/// Protocol version announced in the greeting.
pub const PROTOCOL_VERSION: u32 = 1;

/// An extension that answers extra commands (e.g. `screendump`, `vnc-info` from the VNC
/// server). Return `None` for commands it does not know.
pub trait ControlHandler: Send {
    /// Command names it adds, for `query-commands`.
    fn commands(&self) -> Vec<&'static str>;
    fn handle(&mut self, command: &str, arguments: &Value) -> Option<Result<Value, String>>;
}
