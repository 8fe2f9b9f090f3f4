//! The control socket's protocol: line-delimited JSON over a unix socket, QMP-like. The VMM's
//! control loop (`vireo_vmm::control::server`) speaks it as the server, the driver's
//! `control` module as a client; both build and read the types here, never free JSON.
//!
//! # Protocol, version 1
//!
//! On connect the server sends a [`Greeting`]:
//! `{"vireo":{"name":"<vm name>","protocol":1,"vmm":"<crate version>"}}`.
//!
//! Each [`Request`] is one line: `{"arguments":{...},"execute":"<command>","id":<any>}`
//! (`arguments` and `id` optional). Each gets exactly one [`Reply`] line, in order:
//! `{"id":<id>,"return":<value>}` or `{"error":{"class":"<Class>","desc":"<text>"},"id":<id>}`
//! (no `id` when the request had none). Error classes: [`ErrorClass`].
//!
//! [`Event`]s may arrive between replies, to every connected client:
//! `{"data":{...},"event":"<name>","timestamp":{"microseconds":US,"seconds":S}}`.
//!
//! Commands ([`Command`]) and what they return ([`Return`]):
//! - `status` → [`Status`].
//! - `pause` / `resume` → `{}`; guest time (kvmclock) stops while paused.
//! - `power-down` → `{}`: presses the ACPI power button; the guest shuts down on its own.
//! - `reset` → `{}`: ends the helper with the reboot exit status; the driver starts it again.
//! - `quit` → `{}`: stops the VM at once; exit status 0.
//! - `send-scancodes` `{"codes":[u8...]}` → `{}`: types set-1 scancodes into the i8042.
//! - `send-text` `{"text":S}` → `{}`: types ASCII text (US layout; `\n` is Enter).
//! - `query-commands` → `[{"name":S}...]`, the commands this helper answers.
//! - `screendump` `{"filename":"/abs/path.png"}` → `{}`, and `vnc-info` → [`VncInfo`]: only
//!   on a machine with a VNC server; elsewhere they are unknown commands.
//! - `query-block` → [`BlockInfo`]: the CD-ROM drives and SCSI disks.
//! - `change-medium` `{"id":S,"filename":"/abs/x.iso","format":"raw"|"qcow2","force":B}` → `{}`:
//!   inserts or replaces a CD-ROM drive's medium (format defaults to raw, force to false).
//! - `eject` `{"id":S,"force":B}` → `{}`: empties a CD-ROM drive. Both refuse a tray the guest
//!   locked unless `force` (class `DeviceLocked`), and send a `medium-changed` event when
//!   they take effect.
//!
//! Keys are written in sorted order ([`to_json`]), as the VMM has always written them, so a
//! line is the same bytes whichever side and version produced it.

mod command;
mod event;
mod reply;

pub use command::{Command, Rejected, Request, RequestError};
pub use event::{Event, EventMessage, StopReason, Timestamp};
pub use reply::{
    BlockInfo, BootMark, CommandInfo, Done, DriveInfo, ErrorBody, ErrorClass, ProcessUsage, Reply,
    Return, Status, VmState, VncAuth, VncInfo,
};

use serde::{Deserialize, Serialize};

/// Protocol version announced in the greeting.
pub const PROTOCOL_VERSION: u32 = 1;

/// The first line a client reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Greeting {
    pub vireo: Hello,
}

/// What the greeting says about the helper.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// [`PROTOCOL_VERSION`] of the helper.
    pub protocol: u32,
    /// The helper's crate version.
    pub vmm: String,
    /// The machine's name.
    pub name: String,
}

/// Any line a client reads: its reply, or the greeting or an event it may skip.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum ServerMessage<R = Return> {
    Reply(Reply<R>),
    Greeting(Greeting),
    Event(EventMessage),
    /// An event this build does not know (a newer helper's), or whose data it cannot read.
    OtherEvent {
        event: String,
    },
}

/// One message as a line of JSON (without the newline), keys in sorted order. Fails only for a
/// path that is not UTF-8.
pub fn to_json<T: Serialize>(message: &T) -> Result<String, serde_json::Error> {
    // A `Value`'s objects keep their keys sorted, whatever order the fields were declared in.
    Ok(serde_json::to_value(message)?.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_greeting_is_the_line_helpers_have_always_sent() {
        let g = Greeting {
            vireo: Hello {
                protocol: PROTOCOL_VERSION,
                vmm: "0.1.0".into(),
                name: "demo".into(),
            },
        };
        let line = r#"{"vireo":{"name":"demo","protocol":1,"vmm":"0.1.0"}}"#;
        assert_eq!(to_json(&g).unwrap(), line);
        assert_eq!(serde_json::from_str::<Greeting>(line).unwrap(), g);
        assert_eq!(
            serde_json::from_str::<ServerMessage>(line).unwrap(),
            ServerMessage::Greeting(g)
        );
    }

    #[test]
    fn a_client_tells_its_reply_from_the_greeting_and_events() {
        let m = |l: &str| serde_json::from_str::<ServerMessage<Done>>(l).unwrap();
        assert!(matches!(
            m(r#"{"id":1,"return":{}}"#),
            ServerMessage::Reply(Reply::Return { id: Some(_), .. })
        ));
        assert!(matches!(
            m(r#"{"error":{"class":"CommandNotFound","desc":"unknown command `x`"},"id":1}"#),
            ServerMessage::Reply(Reply::Error { .. })
        ));
        assert!(matches!(
            m(
                r#"{"data":{"state":"paused"},"event":"state-changed","timestamp":{"microseconds":1,"seconds":2}}"#
            ),
            ServerMessage::Event(_)
        ));
        // An event a newer helper added is still an event, not a broken line.
        assert!(matches!(
            m(r#"{"data":{"x":1},"event":"something-new","timestamp":{"microseconds":1,"seconds":2}}"#),
            ServerMessage::OtherEvent { event } if event == "something-new"
        ));
        assert!(serde_json::from_str::<ServerMessage<Done>>(r#"{"what":1}"#).is_err());
    }
}
