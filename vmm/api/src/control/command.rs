//! Requests: the commands a client sends, and how the server reads a request line (with the
//! error each malformed one gets).

use super::reply::{ErrorClass, Reply};
use crate::config::DiskFormat;
use serde::Serialize;
use serde_json::Value;
use std::path::PathBuf;

/// A command and its arguments: `{"execute": NAME, "arguments": {...}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "execute", content = "arguments", rename_all = "kebab-case")]
pub enum Command {
    Status,
    Pause,
    Resume,
    PowerDown,
    Reset,
    Quit,
    SendScancodes {
        codes: Vec<u8>,
    },
    SendText {
        text: String,
    },
    QueryCommands,
    /// Answered only by a helper with a VNC server.
    Screendump {
        filename: PathBuf,
    },
    /// Answered only by a helper with a VNC server.
    VncInfo,
    /// The CD-ROM drives and SCSI disks, with their media and trays.
    QueryBlock,
    /// Puts `filename` into CD-ROM drive `id`, replacing what is there. A tray the guest
    /// locked refuses unless `force`.
    ChangeMedium {
        id: String,
        filename: PathBuf,
        format: DiskFormat,
        force: bool,
    },
    /// Takes the medium out of CD-ROM drive `id`. A tray the guest locked refuses unless
    /// `force`.
    Eject {
        id: String,
        force: bool,
    },
}

impl Command {
    /// The commands every helper's control loop answers itself; others come from extensions
    /// (the VNC server adds `screendump` and `vnc-info`).
    pub const CORE: &'static [&'static str] = &[
        "status",
        "pause",
        "resume",
        "power-down",
        "reset",
        "quit",
        "send-scancodes",
        "send-text",
        "query-commands",
        "query-block",
        "change-medium",
        "eject",
    ];

    /// The command's name on the wire.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Status => "status",
            Command::Pause => "pause",
            Command::Resume => "resume",
            Command::PowerDown => "power-down",
            Command::Reset => "reset",
            Command::Quit => "quit",
            Command::SendScancodes { .. } => "send-scancodes",
            Command::SendText { .. } => "send-text",
            Command::QueryCommands => "query-commands",
            Command::Screendump { .. } => "screendump",
            Command::VncInfo => "vnc-info",
            Command::QueryBlock => "query-block",
            Command::ChangeMedium { .. } => "change-medium",
            Command::Eject { .. } => "eject",
        }
    }

    /// The command called `name`, its arguments read from `arguments` (which commands without
    /// arguments ignore, as do the others for keys they do not know).
    pub fn from_parts(name: &str, arguments: &Value) -> Result<Command, RequestError> {
        let arg = |key: &str| arguments.get(key);
        Ok(match name {
            "status" => Command::Status,
            "pause" => Command::Pause,
            "resume" => Command::Resume,
            "power-down" => Command::PowerDown,
            "reset" => Command::Reset,
            "quit" => Command::Quit,
            "query-commands" => Command::QueryCommands,
            "vnc-info" => Command::VncInfo,
            "send-scancodes" => {
                let codes = arg("codes").and_then(Value::as_array).ok_or_else(|| {
                    RequestError::Arguments("arguments.codes: expected an array of bytes".into())
                })?;
                let codes = codes
                    .iter()
                    .enumerate()
                    .map(|(i, c)| {
                        c.as_u64()
                            .and_then(|v| u8::try_from(v).ok())
                            .ok_or_else(|| {
                                RequestError::Arguments(format!("arguments.codes[{i}]: not a byte"))
                            })
                    })
                    .collect::<Result<_, _>>()?;
                Command::SendScancodes { codes }
            }
            "send-text" => {
                let text = arg("text").and_then(Value::as_str).ok_or_else(|| {
                    RequestError::Arguments("arguments.text: expected a string".into())
                })?;
                Command::SendText { text: text.into() }
            }
            "screendump" => {
                let filename = arg("filename").and_then(Value::as_str).ok_or_else(|| {
                    RequestError::Arguments(
                        "screendump: missing string argument \"filename\"".into(),
                    )
                })?;
                Command::Screendump {
                    filename: filename.into(),
                }
            }
            "query-block" => Command::QueryBlock,
            "change-medium" => Command::ChangeMedium {
                id: drive_id(arguments)?,
                filename: arg("filename")
                    .and_then(Value::as_str)
                    .filter(|f| !f.is_empty())
                    .ok_or_else(|| {
                        RequestError::Arguments(
                            "arguments.filename: expected a non-empty string".into(),
                        )
                    })?
                    .into(),
                format: match arg("format") {
                    None => DiskFormat::Raw,
                    Some(v) => serde_json::from_value(v.clone()).map_err(|_| {
                        RequestError::Arguments(
                            "arguments.format: expected \"raw\" or \"qcow2\"".into(),
                        )
                    })?,
                },
                force: flag(arguments, "force")?,
            },
            "eject" => Command::Eject {
                id: drive_id(arguments)?,
                force: flag(arguments, "force")?,
            },
            other => return Err(RequestError::Unknown(other.into())),
        })
    }
}

fn drive_id(arguments: &Value) -> Result<String, RequestError> {
    let id = arguments
        .get("id")
        .and_then(Value::as_str)
        .ok_or_else(|| RequestError::Arguments("arguments.id: expected a string".into()))?;
    crate::scsi::check_id(id).map_err(|e| RequestError::Arguments(format!("arguments.id: {e}")))?;
    Ok(id.to_owned())
}

fn flag(arguments: &Value, key: &str) -> Result<bool, RequestError> {
    match arguments.get(key) {
        None => Ok(false),
        Some(v) => v
            .as_bool()
            .ok_or_else(|| RequestError::Arguments(format!("arguments.{key}: expected a boolean"))),
    }
}

/// One request line. The `id` is the client's, any JSON at all, and comes back in the reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Request {
    #[serde(flatten)]
    pub command: Command,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<Value>,
}

/// Why a request line was not carried out before any command ran.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("invalid JSON: {0}")]
    Json(String),
    #[error("missing \"execute\" string")]
    NoCommand,
    /// Not a command of this protocol, or one this helper does not answer (`screendump`
    /// without a VNC server).
    #[error("unknown command `{0}`")]
    Unknown(String),
    #[error("{0}")]
    Arguments(String),
}

impl RequestError {
    pub fn class(&self) -> ErrorClass {
        match self {
            RequestError::Json(_) | RequestError::NoCommand => ErrorClass::ParseError,
            RequestError::Unknown(_) => ErrorClass::CommandNotFound,
            RequestError::Arguments(_) => ErrorClass::GenericError,
        }
    }
}

/// A request line the server refuses, with the id to answer it under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    pub id: Option<Value>,
    pub error: RequestError,
}

impl Rejected {
    pub fn reply<R>(self) -> Reply<R> {
        Reply::error(self.error.class(), self.error.to_string(), self.id)
    }
}

impl Request {
    /// Reads a request line. `answers(name)` says whether this helper answers a command; one it
    /// does not is unknown before its arguments are looked at.
    pub fn parse(line: &[u8], answers: impl Fn(&str) -> bool) -> Result<Request, Rejected> {
        let req: Value = serde_json::from_slice(line).map_err(|e| Rejected {
            id: None,
            error: RequestError::Json(e.to_string()),
        })?;
        let id = req.get("id").filter(|v| !v.is_null()).cloned();
        let reject = |error| Rejected {
            id: id.clone(),
            error,
        };
        let Some(name) = req.get("execute").and_then(Value::as_str) else {
            return Err(reject(RequestError::NoCommand));
        };
        if !answers(name) {
            return Err(reject(RequestError::Unknown(name.into())));
        }
        let arguments = req.get("arguments").unwrap_or(&Value::Null);
        let command = Command::from_parts(name, arguments).map_err(reject)?;
        Ok(Request { command, id })
    }
}

#[cfg(test)]
mod tests {
    use super::super::{to_json, Return};
    use super::*;
    use serde_json::json;

    fn line(command: Command, id: Option<Value>) -> String {
        to_json(&Request { command, id }).unwrap()
    }

    fn all(_: &str) -> bool {
        true
    }

    /// Every command as the driver and the tests write it, byte for byte, and back.
    #[test]
    fn every_command_is_the_line_it_has_always_been() {
        let cases = [
            (Command::Status, r#"{"execute":"status","id":1}"#),
            (Command::Pause, r#"{"execute":"pause","id":1}"#),
            (Command::Resume, r#"{"execute":"resume","id":1}"#),
            (Command::PowerDown, r#"{"execute":"power-down","id":1}"#),
            (Command::Reset, r#"{"execute":"reset","id":1}"#),
            (Command::Quit, r#"{"execute":"quit","id":1}"#),
            (
                Command::SendScancodes {
                    codes: vec![0x30, 0xb0],
                },
                r#"{"arguments":{"codes":[48,176]},"execute":"send-scancodes","id":1}"#,
            ),
            (
                Command::SendText {
                    text: "echo hi\n".into(),
                },
                r#"{"arguments":{"text":"echo hi\n"},"execute":"send-text","id":1}"#,
            ),
            (
                Command::QueryCommands,
                r#"{"execute":"query-commands","id":1}"#,
            ),
            (
                Command::Screendump {
                    filename: "/tmp/s.png".into(),
                },
                r#"{"arguments":{"filename":"/tmp/s.png"},"execute":"screendump","id":1}"#,
            ),
            (Command::VncInfo, r#"{"execute":"vnc-info","id":1}"#),
            (Command::QueryBlock, r#"{"execute":"query-block","id":1}"#),
            (
                Command::ChangeMedium {
                    id: "sda".into(),
                    filename: "/isos/a.iso".into(),
                    format: DiskFormat::Raw,
                    force: true,
                },
                r#"{"arguments":{"filename":"/isos/a.iso","force":true,"format":"raw","id":"sda"},"execute":"change-medium","id":1}"#,
            ),
            (
                Command::Eject {
                    id: "sdb".into(),
                    force: false,
                },
                r#"{"arguments":{"force":false,"id":"sdb"},"execute":"eject","id":1}"#,
            ),
        ];
        for (command, want) in cases {
            assert_eq!(line(command.clone(), Some(json!(1))), want);
            let back = Request::parse(want.as_bytes(), all).unwrap();
            assert_eq!(back.command, command);
            assert_eq!(back.id, Some(json!(1)));
        }
        assert_eq!(line(Command::Quit, None), r#"{"execute":"quit"}"#);
    }

    #[test]
    fn names_and_variants_agree() {
        let args = json!({"codes": [1], "text": "a", "filename": "/s.png", "id": "sda"});
        for name in Command::CORE.iter().chain(&["screendump", "vnc-info"]) {
            assert_eq!(Command::from_parts(name, &args).unwrap().name(), *name);
        }
    }

    #[test]
    fn media_commands_check_their_arguments() {
        let e = |name: &str, args| Command::from_parts(name, &args).unwrap_err().to_string();
        assert!(e("eject", json!({})).contains("arguments.id: expected a string"));
        assert!(e("eject", json!({"id": "../etc"})).contains("arguments.id: `../etc` may hold"));
        assert!(e("eject", json!({"id": "sda", "force": 1})).contains("arguments.force"));
        assert!(e("change-medium", json!({"id": "sda"})).contains("arguments.filename"));
        assert!(e(
            "change-medium",
            json!({"id": "sda", "filename": "/a", "format": "vmdk"})
        )
        .contains("arguments.format"));
        let c = Command::from_parts("change-medium", &json!({"id": "sda", "filename": "/a"}));
        assert_eq!(
            c.unwrap(),
            Command::ChangeMedium {
                id: "sda".into(),
                filename: "/a".into(),
                format: DiskFormat::Raw,
                force: false
            }
        );
    }

    /// What the Python and Rust test clients send: empty arguments, no id, keys in any order.
    #[test]
    fn the_server_reads_what_clients_send() {
        let r = Request::parse(br#"{"execute": "status", "arguments": {}}"#, all).unwrap();
        assert_eq!((r.command, r.id), (Command::Status, None));
        let r = Request::parse(
            br#"{"id": "x", "arguments": {"text": "a", "extra": 1}, "execute": "send-text"}"#,
            all,
        )
        .unwrap();
        assert_eq!(r.command, Command::SendText { text: "a".into() });
        assert_eq!(r.id, Some(json!("x")));
        // A null id is no id: the reply has none.
        let r = Request::parse(br#"{"execute":"quit","id":null}"#, all).unwrap();
        assert_eq!(r.id, None);
    }

    /// Every refusal, with the class and text helpers have always answered it with.
    #[test]
    fn malformed_requests_get_the_errors_they_always_got() {
        let refuse = |l: &str, answers: fn(&str) -> bool| {
            let reply: Reply<Return> = Request::parse(l.as_bytes(), answers).unwrap_err().reply();
            to_json(&reply).unwrap()
        };
        let not_json = refuse("not json", all);
        assert!(
            not_json.starts_with(r#"{"error":{"class":"ParseError","desc":"invalid JSON: "#),
            "{not_json}"
        );
        assert!(!not_json.contains("\"id\""));
        assert_eq!(
            refuse(r#"{"id":7}"#, all),
            r#"{"error":{"class":"ParseError","desc":"missing \"execute\" string"},"id":7}"#
        );
        assert_eq!(
            refuse(r#"[1]"#, all),
            r#"{"error":{"class":"ParseError","desc":"missing \"execute\" string"}}"#
        );
        assert_eq!(
            refuse(r#"{"execute":"bogus","id":1}"#, all),
            r#"{"error":{"class":"CommandNotFound","desc":"unknown command `bogus`"},"id":1}"#
        );
        // A helper without VNC does not know screendump, whatever its arguments.
        assert_eq!(
            refuse(r#"{"execute":"screendump","id":1}"#, |n| n != "screendump"),
            r#"{"error":{"class":"CommandNotFound","desc":"unknown command `screendump`"},"id":1}"#
        );
        assert_eq!(
            refuse(r#"{"execute":"screendump","id":1}"#, all),
            r#"{"error":{"class":"GenericError","desc":"screendump: missing string argument \"filename\""},"id":1}"#
        );
        assert_eq!(
            refuse(
                r#"{"execute":"send-scancodes","arguments":{"codes":[1,300]}}"#,
                all
            ),
            r#"{"error":{"class":"GenericError","desc":"arguments.codes[1]: not a byte"}}"#
        );
        assert_eq!(
            refuse(
                r#"{"execute":"send-scancodes","arguments":{"codes":3}}"#,
                all
            ),
            r#"{"error":{"class":"GenericError","desc":"arguments.codes: expected an array of bytes"}}"#
        );
        assert_eq!(
            refuse(r#"{"execute":"send-text"}"#, all),
            r#"{"error":{"class":"GenericError","desc":"arguments.text: expected a string"}}"#
        );
    }
}
