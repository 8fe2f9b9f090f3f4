//! Replies: what each command returns, and the error a refused one gets.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::net::SocketAddr;
use std::path::PathBuf;

/// The one line that answers a request, with the request's id when it had one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Reply<R = Return> {
    Return {
        #[serde(rename = "return")]
        value: R,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<Value>,
    },
    Error {
        error: ErrorBody,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<Value>,
    },
}

impl<R> Reply<R> {
    pub fn error(class: ErrorClass, desc: impl Into<String>, id: Option<Value>) -> Reply<R> {
        Reply::Error {
            error: ErrorBody {
                class,
                desc: desc.into(),
            },
            id,
        }
    }
}

/// Why a command was refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub class: ErrorClass,
    pub desc: String,
}

/// QMP's error classes, the ones this protocol uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorClass {
    /// The line is not JSON, or has no `execute` string.
    ParseError,
    /// Not a command this helper answers.
    CommandNotFound,
    /// Not now (`pause` while paused, `resume` while running, `power-down` while paused).
    InvalidState,
    /// Bad arguments, or the command failed.
    GenericError,
    /// The guest holds the device (a CD-ROM tray it locked): the same command with `force`
    /// would go through.
    DeviceLocked,
    /// A class a newer helper sends.
    #[serde(other, skip_serializing)]
    Other,
}

/// What a command returns, as the server writes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Return {
    Status(Status),
    Commands(Vec<CommandInfo>),
    VncInfo(VncInfo),
    Block(BlockInfo),
    /// `{}`: every other command.
    Done(Done),
}

/// `{}`, the return of a command that only acts. Reading it ignores any keys a newer helper
/// adds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Done {}

/// `status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub state: VmState,
    /// Since the helper started.
    pub uptime_ms: u64,
    pub vcpus: u8,
    pub name: String,
    pub memory_mib: u64,
    /// Writes to the boot-time marker so far (the first 64).
    pub boot_marks: Vec<BootMark>,
    /// vCPU exits to user space, all vCPUs together.
    pub exits: u64,
    /// Guest accesses to ports and addresses no device claims.
    pub unclaimed_accesses: u64,
    pub process: ProcessUsage,
}

/// Whether the guest runs, as `status` and the `state-changed` event say it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum VmState {
    Running,
    Paused,
    /// The power button was pressed; the guest is going down.
    ShuttingDown,
}

/// A write to the boot-time marker: the value, and when (ms since the helper started).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BootMark {
    pub value: u64,
    pub ms: f64,
}

/// The helper's CPU time (user + system; -1 when unknown) and resident memory.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ProcessUsage {
    pub cpu_ms: f64,
    pub rss_kib: u64,
}

/// One entry of `query-commands`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandInfo {
    pub name: String,
}

/// `vnc-info`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VncInfo {
    pub unix_path: Option<PathBuf>,
    /// Always on 127.0.0.1.
    pub tcp: Option<SocketAddr>,
    pub auth: VncAuth,
    pub width: u32,
    pub height: u32,
    /// Connected clients' peer addresses.
    pub clients: Vec<String>,
}

/// `query-block`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockInfo {
    pub drives: Vec<DriveInfo>,
}

/// One CD-ROM drive or SCSI disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DriveInfo {
    /// The config's id (libvirt's target dev).
    pub id: String,
    pub cdrom: bool,
    /// The image in it; `None` for an empty drive.
    pub medium: Option<PathBuf>,
    /// The guest prevented medium removal.
    pub locked: bool,
    /// The tray is open (the guest or a client ejected; no medium).
    pub tray_open: bool,
}

/// How a VNC client authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VncAuth {
    None,
    /// The DES challenge with the machine's VNC password.
    Vnc,
}

#[cfg(test)]
mod tests {
    use super::super::to_json;
    use super::*;
    use serde_json::json;

    fn round_trip(r: Reply, want: &str) {
        assert_eq!(to_json(&r).unwrap(), want);
        assert_eq!(serde_json::from_str::<Reply>(want).unwrap(), r);
    }

    /// Every return value, byte for byte as the VMM has always written it, and back.
    #[test]
    fn every_return_is_the_line_it_has_always_been() {
        round_trip(
            Reply::Return {
                value: Return::Block(BlockInfo {
                    drives: vec![DriveInfo {
                        id: "sda".into(),
                        cdrom: true,
                        medium: Some("/i/a.iso".into()),
                        locked: true,
                        tray_open: false,
                    }],
                }),
                id: None,
            },
            concat!(
                r#"{"return":{"drives":[{"cdrom":true,"id":"sda","locked":true,"#,
                r#""medium":"/i/a.iso","tray_open":false}]}}"#
            ),
        );
        round_trip(
            Reply::Return {
                value: Return::Done(Done {}),
                id: Some(json!(1)),
            },
            r#"{"id":1,"return":{}}"#,
        );
        round_trip(
            Reply::Return {
                value: Return::Done(Done {}),
                id: None,
            },
            r#"{"return":{}}"#,
        );
        round_trip(
            Reply::Return {
                value: Return::Status(Status {
                    state: VmState::ShuttingDown,
                    uptime_ms: 1234,
                    vcpus: 2,
                    name: "demo".into(),
                    memory_mib: 256,
                    boot_marks: vec![BootMark { value: 1, ms: 12.5 }],
                    exits: 99,
                    unclaimed_accesses: 3,
                    process: ProcessUsage {
                        cpu_ms: 40.25,
                        rss_kib: 8192,
                    },
                }),
                id: Some(json!("s")),
            },
            concat!(
                r#"{"id":"s","return":{"boot_marks":[{"ms":12.5,"value":1}],"exits":99,"#,
                r#""memory_mib":256,"name":"demo","process":{"cpu_ms":40.25,"rss_kib":8192},"#,
                r#""state":"shutting-down","unclaimed_accesses":3,"uptime_ms":1234,"vcpus":2}}"#
            ),
        );
        round_trip(
            Reply::Return {
                value: Return::Commands(vec![
                    CommandInfo {
                        name: "status".into(),
                    },
                    CommandInfo {
                        name: "vnc-info".into(),
                    },
                ]),
                id: None,
            },
            r#"{"return":[{"name":"status"},{"name":"vnc-info"}]}"#,
        );
        round_trip(
            Reply::Return {
                value: Return::VncInfo(VncInfo {
                    unix_path: Some("/run/v.sock".into()),
                    tcp: Some("127.0.0.1:5901".parse().unwrap()),
                    auth: VncAuth::Vnc,
                    width: 1280,
                    height: 800,
                    clients: vec!["unix".into()],
                }),
                id: None,
            },
            concat!(
                r#"{"return":{"auth":"vnc","clients":["unix"],"height":800,"#,
                r#""tcp":"127.0.0.1:5901","unix_path":"/run/v.sock","width":1280}}"#
            ),
        );
        round_trip(
            Reply::Return {
                value: Return::VncInfo(VncInfo {
                    unix_path: None,
                    tcp: None,
                    auth: VncAuth::None,
                    width: 640,
                    height: 480,
                    clients: vec![],
                }),
                id: None,
            },
            concat!(
                r#"{"return":{"auth":"none","clients":[],"height":480,"#,
                r#""tcp":null,"unix_path":null,"width":640}}"#
            ),
        );
    }

    #[test]
    fn every_error_class_is_the_line_it_has_always_been() {
        for (class, name) in [
            (ErrorClass::ParseError, "ParseError"),
            (ErrorClass::CommandNotFound, "CommandNotFound"),
            (ErrorClass::InvalidState, "InvalidState"),
            (ErrorClass::GenericError, "GenericError"),
            (ErrorClass::DeviceLocked, "DeviceLocked"),
        ] {
            round_trip(
                Reply::error(class, "already paused", Some(json!(1))),
                &format!(r#"{{"error":{{"class":"{name}","desc":"already paused"}},"id":1}}"#),
            );
        }
        // The refusal a helper with 16 clients sends a 17th before closing.
        round_trip(
            Reply::error(ErrorClass::GenericError, "too many clients", None),
            r#"{"error":{"class":"GenericError","desc":"too many clients"}}"#,
        );
        let newer: Reply =
            serde_json::from_str(r#"{"error":{"class":"DeviceNotActive","desc":"x"},"id":1}"#)
                .unwrap();
        assert!(matches!(
            newer,
            Reply::Error {
                error: ErrorBody {
                    class: ErrorClass::Other,
                    ..
                },
                ..
            }
        ));
    }

    #[test]
    fn done_reads_any_object_a_newer_helper_returns() {
        let r: Reply<Done> = serde_json::from_str(r#"{"id":1,"return":{"new":true}}"#).unwrap();
        assert_eq!(
            r,
            Reply::Return {
                value: Done {},
                id: Some(json!(1))
            }
        );
    }
}
