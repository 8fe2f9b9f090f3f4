//! Client side of the VMM's control socket (line-delimited JSON, QMP-like; see
//! `vmm/src/control/mod.rs`). Only what the driver needs: one request per connection, with
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
    /// No reply in time (a busy or wedged helper).
    #[error("control socket {path}: no reply to {cmd} within {secs} s")]
    Timeout {
        path: String,
        cmd: String,
        secs: u64,
    },
}

/// Sends `{"execute": CMD, "arguments": ARGS, "id": 1}` (protocol version 1, see the module
/// docs of `vireo_vmm::control`) and returns the `return` value. The greeting and any pushed
/// events before the reply are skipped.
pub fn request(
    socket: &Path,
    cmd: &str,
    args: Value,
    timeout: Duration,
) -> Result<Value, ControlError> {
    let path = socket.display().to_string();
    // A read or write timeout shows up as WouldBlock (EAGAIN) or TimedOut: say what it means.
    let io = |source: std::io::Error| match source.kind() {
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => ControlError::Timeout {
            path: path.clone(),
            cmd: cmd.to_owned(),
            secs: timeout.as_secs(),
        },
        _ => ControlError::Io {
            path: path.clone(),
            source,
        },
    };
    let mut stream = UnixStream::connect(socket).map_err(io)?;
    stream.set_read_timeout(Some(timeout)).map_err(io)?;
    stream.set_write_timeout(Some(timeout)).map_err(io)?;
    let mut req = serde_json::json!({ "execute": cmd, "id": 1 });
    if !args.is_null() && args.as_object().is_none_or(|o| !o.is_empty()) {
        req["arguments"] = args;
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
                reply: "connection closed before the reply".into(),
            });
        }
        let v: Value = serde_json::from_str(reply.trim()).map_err(|_| ControlError::BadReply {
            path: path.clone(),
            reply: reply.trim().to_owned(),
        })?;
        if let Some(r) = v.get("return") {
            return Ok(r.clone());
        }
        if let Some(e) = v.get("error") {
            let class = e.get("class").and_then(Value::as_str).unwrap_or("");
            let desc = e
                .get("desc")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .unwrap_or_else(|| e.to_string());
            if class == "CommandNotFound" {
                return Err(ControlError::Unknown(cmd.to_owned()));
            }
            return Err(ControlError::Refused(desc));
        }
        // The greeting (`{"vireo":...}`) and events (`{"event":...}`): not our reply.
    }
}

/// Whether something accepts connections on the socket.
pub fn alive(socket: &Path) -> bool {
    UnixStream::connect(socket).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_helper_that_does_not_answer_is_a_timeout_naming_the_command() {
        let dir = std::env::temp_dir().join(format!("vireo-control-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let sock = dir.join("ctl");
        // Accepts and reads, never answers.
        let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        let t = std::thread::spawn(move || {
            let (s, _) = listener.accept().unwrap();
            std::thread::sleep(Duration::from_millis(500));
            drop(s);
        });
        let e = request(&sock, "screendump", Value::Null, Duration::from_millis(100)).unwrap_err();
        assert!(matches!(e, ControlError::Timeout { .. }), "{e:?}");
        assert!(
            e.to_string().ends_with("no reply to screendump within 0 s"),
            "{e}"
        );
        t.join().unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }
}
