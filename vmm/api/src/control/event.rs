//! Events: what the helper pushes to every connected client, between replies.

use super::reply::VmState;
use serde::{Deserialize, Serialize};
use std::time::{SystemTime, UNIX_EPOCH};

/// One event line: `{"data":{...},"event":NAME,"timestamp":{...}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventMessage {
    #[serde(flatten)]
    pub event: Event,
    pub timestamp: Timestamp,
}

impl EventMessage {
    /// `event`, stamped now.
    pub fn now(event: Event) -> EventMessage {
        EventMessage {
            event,
            timestamp: Timestamp::now(),
        }
    }
}

/// An event's name and data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", content = "data", rename_all = "kebab-case")]
pub enum Event {
    /// After `pause`, `resume` and `power-down`.
    StateChanged {
        state: VmState,
    },
    /// The guest wrote `value` to the boot-time marker, `ms` after the helper started.
    BootMarker {
        value: u64,
        ms: f64,
    },
    /// The guest powered off; `shutdown` follows.
    Poweroff {},
    /// The guest asked for a reset; `shutdown` follows.
    Reboot {},
    /// The guest died (triple fault, KVM internal error, ...); `shutdown` follows.
    Crash {
        reason: String,
    },
    /// The last event before the helper exits with `exit_code` ([`crate::exit`]).
    Shutdown {
        reason: StopReason,
        /// The crash or error in words; else the reason again.
        detail: String,
        exit_code: i32,
    },
    /// The guest switched video modes.
    ResolutionChanged {
        width: u32,
        height: u32,
    },
    VncConnected {
        id: u64,
        peer: String,
    },
    VncDisconnected {
        id: u64,
        reason: String,
    },
    /// A CD-ROM drive's medium changed: the guest ejected it (`medium` is `None`), or a client's
    /// `change-medium` or `eject` took effect.
    MediumChanged {
        id: String,
        medium: Option<std::path::PathBuf>,
    },
}

/// Why the helper stopped, as the `shutdown` event says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StopReason {
    /// ACPI S5, also after `power-down`.
    Poweroff,
    /// The guest or a client (`reset`) asked for a reset.
    Reboot,
    Crash,
    /// A client sent `quit`.
    Quit,
    /// The helper failed.
    Error,
}

impl StopReason {
    /// The word on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            StopReason::Poweroff => "poweroff",
            StopReason::Reboot => "reboot",
            StopReason::Crash => "crash",
            StopReason::Quit => "quit",
            StopReason::Error => "error",
        }
    }
}

impl std::fmt::Display for StopReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Wall-clock time of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timestamp {
    pub seconds: u64,
    pub microseconds: u32,
}

impl Timestamp {
    pub fn now() -> Timestamp {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Timestamp {
            seconds: now.as_secs(),
            microseconds: now.subsec_micros(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::to_json;
    use super::*;

    /// Every event, byte for byte as the VMM has always written it, and back.
    #[test]
    fn every_event_is_the_line_it_has_always_been() {
        let t = r#""timestamp":{"microseconds":250,"seconds":1700000000}"#;
        let cases = [
            (
                Event::StateChanged {
                    state: VmState::Paused,
                },
                r#"{"state":"paused"},"event":"state-changed""#,
            ),
            (
                Event::StateChanged {
                    state: VmState::Running,
                },
                r#"{"state":"running"},"event":"state-changed""#,
            ),
            (
                Event::BootMarker { value: 2, ms: 3.5 },
                r#"{"ms":3.5,"value":2},"event":"boot-marker""#,
            ),
            (Event::Poweroff {}, r#"{},"event":"poweroff""#),
            (Event::Reboot {}, r#"{},"event":"reboot""#),
            (
                Event::Crash {
                    reason: "triple fault".into(),
                },
                r#"{"reason":"triple fault"},"event":"crash""#,
            ),
            (
                Event::Shutdown {
                    reason: StopReason::Crash,
                    detail: "triple fault".into(),
                    exit_code: 3,
                },
                r#"{"detail":"triple fault","exit_code":3,"reason":"crash"},"event":"shutdown""#,
            ),
            (
                Event::Shutdown {
                    reason: StopReason::Quit,
                    detail: "quit".into(),
                    exit_code: 0,
                },
                r#"{"detail":"quit","exit_code":0,"reason":"quit"},"event":"shutdown""#,
            ),
            (
                Event::ResolutionChanged {
                    width: 1024,
                    height: 768,
                },
                r#"{"height":768,"width":1024},"event":"resolution-changed""#,
            ),
            (
                Event::VncConnected {
                    id: 1,
                    peer: "unix".into(),
                },
                r#"{"id":1,"peer":"unix"},"event":"vnc-connected""#,
            ),
            (
                Event::VncDisconnected {
                    id: 1,
                    reason: "closed".into(),
                },
                r#"{"id":1,"reason":"closed"},"event":"vnc-disconnected""#,
            ),
            (
                Event::MediumChanged {
                    id: "sda".into(),
                    medium: None,
                },
                r#"{"id":"sda","medium":null},"event":"medium-changed""#,
            ),
            (
                Event::MediumChanged {
                    id: "sda".into(),
                    medium: Some("/i/b.iso".into()),
                },
                r#"{"id":"sda","medium":"/i/b.iso"},"event":"medium-changed""#,
            ),
        ];
        for (event, body) in cases {
            let msg = EventMessage {
                event,
                timestamp: Timestamp {
                    seconds: 1_700_000_000,
                    microseconds: 250,
                },
            };
            let want = format!(r#"{{"data":{body},{t}}}"#);
            assert_eq!(to_json(&msg).unwrap(), want);
            assert_eq!(serde_json::from_str::<EventMessage>(&want).unwrap(), msg);
        }
        for (reason, word) in [
            (StopReason::Poweroff, "poweroff"),
            (StopReason::Reboot, "reboot"),
            (StopReason::Crash, "crash"),
            (StopReason::Quit, "quit"),
            (StopReason::Error, "error"),
        ] {
            assert_eq!(to_json(&reason).unwrap(), format!("\"{word}\""));
            assert_eq!(reason.as_str(), word);
        }
    }
}
