//! Client side of the VMM's control socket (line-delimited JSON, QMP-like). The protocol's
//! messages are `vireo_vmm_api::control`'s types, shared with the VMM's server. Only what the
//! driver needs: one request per connection, with a timeout so a wedged helper cannot hang the
//! GUI.

use serde::de::DeserializeOwned;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;
use vireo_vmm_api::control::{to_json, Command, ErrorClass, Reply, Request, ServerMessage};

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
    /// The command cannot be written as JSON (a file name that is not UTF-8).
    #[error("{cmd}: {reason}")]
    Encode { cmd: String, reason: String },
}

/// Sends `command` with id 1 and returns what it returns, read as `R` (a reply that is no `R`
/// is a bad reply). The greeting and any pushed events before the reply are skipped.
pub fn request<R: DeserializeOwned>(
    socket: &Path,
    command: Command,
    timeout: Duration,
) -> Result<R, ControlError> {
    let path = socket.display().to_string();
    let cmd = command.name();
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
    let req = Request {
        command,
        id: Some(1.into()),
    };
    let mut line = to_json(&req).map_err(|e| ControlError::Encode {
        cmd: cmd.to_owned(),
        reason: e.to_string(),
    })?;
    line.push('\n');
    let mut stream = UnixStream::connect(socket).map_err(io)?;
    stream.set_read_timeout(Some(timeout)).map_err(io)?;
    stream.set_write_timeout(Some(timeout)).map_err(io)?;
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
        let message: ServerMessage<R> =
            serde_json::from_str(reply.trim()).map_err(|_| ControlError::BadReply {
                path: path.clone(),
                reply: reply.trim().to_owned(),
            })?;
        match message {
            ServerMessage::Reply(Reply::Return { value, .. }) => return Ok(value),
            ServerMessage::Reply(Reply::Error { error, .. }) => {
                if error.class == ErrorClass::CommandNotFound {
                    return Err(ControlError::Unknown(cmd.to_owned()));
                }
                return Err(ControlError::Refused(error.desc));
            }
            // Not our reply.
            ServerMessage::Greeting(_)
            | ServerMessage::Event(_)
            | ServerMessage::OtherEvent { .. } => {}
        }
    }
}

/// Follows the helper's pushed events until it closes the connection (it ended), calling `each`
/// with every event this build knows. Lines that are no event are skipped.
pub fn follow_events(
    socket: &Path,
    mut each: impl FnMut(vireo_vmm_api::control::Event),
) -> Result<(), ControlError> {
    let stream = UnixStream::connect(socket).map_err(|source| ControlError::Io {
        path: socket.display().to_string(),
        source,
    })?;
    for line in BufReader::new(stream).lines() {
        let Ok(line) = line else {
            break;
        };
        if let Ok(ServerMessage::<serde_json::Value>::Event(e)) = serde_json::from_str(&line) {
            each(e.event);
        }
    }
    Ok(())
}

/// Whether something accepts connections on the socket.
pub fn alive(socket: &Path) -> bool {
    UnixStream::connect(socket).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use vireo_vmm_api::control::Done;

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
        let screendump = Command::Screendump {
            filename: dir.join("s.png"),
        };
        let e = request::<Done>(&sock, screendump, Duration::from_millis(100)).unwrap_err();
        assert!(matches!(e, ControlError::Timeout { .. }), "{e:?}");
        assert!(
            e.to_string().ends_with("no reply to screendump within 0 s"),
            "{e}"
        );
        t.join().unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A helper that says `lines` after the greeting and an event, having read one request;
    /// returns the request line it read.
    fn helper(sock: &Path, lines: &'static str) -> std::thread::JoinHandle<String> {
        let listener = std::os::unix::net::UnixListener::bind(sock).unwrap();
        std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            // The bytes a helper of the untyped protocol wrote.
            s.write_all(b"{\"vireo\":{\"name\":\"m\",\"protocol\":1,\"vmm\":\"0.1.0\"}}\n")
                .unwrap();
            s.write_all(b"{\"data\":{\"state\":\"paused\"},\"event\":\"state-changed\",\"timestamp\":{\"microseconds\":1,\"seconds\":2}}\n").unwrap();
            s.write_all(b"{\"data\":{},\"event\":\"from-a-newer-helper\",\"timestamp\":{\"microseconds\":1,\"seconds\":2}}\n").unwrap();
            let mut req = String::new();
            BufReader::new(s.try_clone().unwrap())
                .read_line(&mut req)
                .unwrap();
            s.write_all(lines.as_bytes()).unwrap();
            req
        })
    }

    #[test]
    fn requests_and_replies_are_the_lines_helpers_have_always_exchanged() {
        let dir = std::env::temp_dir().join(format!("vireo-control-ok-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let sock = dir.join("ctl");
        let t = helper(&sock, "{\"id\":1,\"return\":{}}\n");
        let shot = Command::Screendump {
            filename: "/tmp/s.png".into(),
        };
        request::<Done>(&sock, shot, Duration::from_secs(10)).unwrap();
        assert_eq!(
            t.join().unwrap(),
            "{\"arguments\":{\"filename\":\"/tmp/s.png\"},\"execute\":\"screendump\",\"id\":1}\n"
        );

        std::fs::remove_file(&sock).unwrap();
        let t = helper(
            &sock,
            "{\"error\":{\"class\":\"CommandNotFound\",\"desc\":\"unknown command `screendump`\"},\"id\":1}\n",
        );
        let shot = Command::Screendump {
            filename: "/tmp/s.png".into(),
        };
        let e = request::<Done>(&sock, shot, Duration::from_secs(10)).unwrap_err();
        assert!(
            matches!(&e, ControlError::Unknown(c) if c == "screendump"),
            "{e:?}"
        );
        t.join().unwrap();

        std::fs::remove_file(&sock).unwrap();
        let t = helper(
            &sock,
            "{\"error\":{\"class\":\"InvalidState\",\"desc\":\"already paused\"},\"id\":1}\n",
        );
        let e = request::<Done>(&sock, Command::Pause, Duration::from_secs(10)).unwrap_err();
        assert!(
            matches!(&e, ControlError::Refused(d) if d == "already paused"),
            "{e:?}"
        );
        assert_eq!(t.join().unwrap(), "{\"execute\":\"pause\",\"id\":1}\n");

        std::fs::remove_file(&sock).unwrap();
        let t = helper(&sock, "not json\n");
        let e = request::<Done>(&sock, Command::Resume, Duration::from_secs(10)).unwrap_err();
        assert!(
            matches!(&e, ControlError::BadReply { reply, .. } if reply == "not json"),
            "{e:?}"
        );
        t.join().unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }
}
