//! Client side of the VMM's control socket (line-delimited JSON, one request and one reply per
//! line; see `vmm/src/control/`). Only what the driver needs: one request per connection, with
//! a timeout so a wedged helper cannot hang the GUI.

use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("control socket {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("control socket {path}: bad reply: {reply}")]
    BadReply { path: String, reply: String },
    /// The helper answered with an error.
    #[error("{0}")]
    Refused(String),
    /// The helper does not know the command (an older helper).
    #[error("not supported by this helper version: {0}")]
    Unknown(String),
}

/// Sends `{"cmd": CMD, ...args}` and returns the reply object.
pub fn request(
    socket: &Path,
    cmd: &str,
    args: Value,
    timeout: Duration,
) -> Result<Value, ControlError> {
    let path = socket.display().to_string();
    let io = |source| ControlError::Io {
        path: path.clone(),
        source,
    };
    let mut stream = UnixStream::connect(socket).map_err(io)?;
    stream.set_read_timeout(Some(timeout)).map_err(io)?;
    stream.set_write_timeout(Some(timeout)).map_err(io)?;
    let mut req = serde_json::json!({ "cmd": cmd });
    if let (Some(obj), Value::Object(extra)) = (req.as_object_mut(), args) {
        obj.extend(extra);
    }
    let mut line = req.to_string();
    line.push('\n');
    stream.write_all(line.as_bytes()).map_err(io)?;
    let mut reader = BufReader::new(stream);
    loop {
        let mut reply = String::new();
        if reader.read_line(&mut reply).map_err(io)? == 0 {
            return Err(ControlError::BadReply {
                path,
                reply: "connection closed".into(),
            });
        }
        let v: Value = serde_json::from_str(reply.trim()).map_err(|_| ControlError::BadReply {
            path: path.clone(),
            reply: reply.trim().to_owned(),
        })?;
        // Pushed events may arrive before the reply: skip them.
        if v.get("event").is_some() && v.get("ok").is_none() && v.get("error").is_none() {
            continue;
        }
        if v.get("ok").and_then(Value::as_bool) == Some(false) || v.get("error").is_some() {
            let msg = v
                .get("error")
                .map(|e| {
                    e.as_str()
                        .map(str::to_owned)
                        .unwrap_or_else(|| e.to_string())
                })
                .unwrap_or_else(|| v.to_string());
            let lower = msg.to_ascii_lowercase();
            if lower.contains("unknown command")
                || lower.contains("unknown cmd")
                || lower.contains("unknown variant")
            {
                return Err(ControlError::Unknown(cmd.to_owned()));
            }
            return Err(ControlError::Refused(msg));
        }
        return Ok(v);
    }
}

/// Whether something accepts connections on the socket.
pub fn alive(socket: &Path) -> bool {
    UnixStream::connect(socket).is_ok()
}
