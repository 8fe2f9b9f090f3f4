//! One client's protocol state, without I/O: bytes in, bytes out, events for the server.
//! Total on arbitrary input (the fuzz target drives it directly).

use super::proto::{parse_client_message, parse_version, ClientMessage, ParseError, Version};

/// How a session ended early.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SessionError {
    #[error("not an RFB client: bad ProtocolVersion {0:?}")]
    BadVersion(String),
    #[error("client chose security type {0}, which was not offered")]
    BadSecurityType(u8),
    #[error("VNC authentication failed")]
    AuthFailed,
    #[error(transparent)]
    Parse(#[from] ParseError),
    #[error("session already ended")]
    Closed,
}

/// What the server must act on.
#[derive(Debug, PartialEq, Eq)]
pub enum SessionEvent {
    /// The VNC password was right; its SecurityResult is queued (the server decides when it
    /// goes out, as it does for a wrong one's).
    Authenticated,
    /// Handshake done; the server sends ServerInit next.
    Ready {
        shared: bool,
    },
    Message(ClientMessage),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    Version,
    SecurityChoice,
    Auth,
    ClientInit,
    Normal,
    Closed,
}

const SEC_NONE: u8 = 1;
const SEC_VNC_AUTH: u8 = 2;

pub struct Session {
    stage: Stage,
    version: Version,
    password: Option<Vec<u8>>,
    challenge: [u8; 16],
    buf: Vec<u8>,
    out: Vec<u8>,
}

impl Session {
    /// Starts a session; the ProtocolVersion greeting is queued in the output.
    pub fn new(password: Option<&[u8]>, challenge: [u8; 16]) -> Session {
        Session {
            stage: Stage::Version,
            version: Version::V3_8,
            password: password.map(|p| p.to_vec()),
            challenge,
            buf: Vec::new(),
            out: b"RFB 003.008\n".to_vec(),
        }
    }

    pub fn version(&self) -> Version {
        self.version
    }

    /// Bytes to send to the client.
    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }

    fn security_type(&self) -> u8 {
        if self.password.is_some() {
            SEC_VNC_AUTH
        } else {
            SEC_NONE
        }
    }

    fn fail(&mut self, reason: &str) {
        self.out.extend_from_slice(&1u32.to_be_bytes());
        if self.version == Version::V3_8 {
            self.out
                .extend_from_slice(&(reason.len() as u32).to_be_bytes());
            self.out.extend_from_slice(reason.as_bytes());
        }
        self.stage = Stage::Closed;
    }

    /// Consumes bytes from the client. On error the session is over; any output queued
    /// (a failure reason) should still be sent before closing.
    pub fn feed(&mut self, data: &[u8]) -> Result<Vec<SessionEvent>, SessionError> {
        if self.stage == Stage::Closed {
            return Err(SessionError::Closed);
        }
        self.buf.extend_from_slice(data);
        let mut events = Vec::new();
        let mut at = 0;
        let result = loop {
            let rest = &self.buf[at..];
            match self.stage {
                Stage::Version => {
                    let Some(v) = rest.get(..12) else {
                        break Ok(());
                    };
                    let mut b = [0u8; 12];
                    b.copy_from_slice(v);
                    at += 12;
                    let Some(version) = parse_version(&b) else {
                        self.stage = Stage::Closed;
                        break Err(SessionError::BadVersion(
                            String::from_utf8_lossy(&b).into_owned(),
                        ));
                    };
                    self.version = version;
                    let sec = self.security_type();
                    if version == Version::V3_3 {
                        self.out.extend_from_slice(&u32::from(sec).to_be_bytes());
                        self.after_security_choice(sec);
                    } else {
                        self.out.extend_from_slice(&[1, sec]);
                        self.stage = Stage::SecurityChoice;
                    }
                }
                Stage::SecurityChoice => {
                    let Some(&choice) = rest.first() else {
                        break Ok(());
                    };
                    at += 1;
                    if choice != self.security_type() {
                        if self.version == Version::V3_8 {
                            self.fail("security type not offered");
                        }
                        self.stage = Stage::Closed;
                        break Err(SessionError::BadSecurityType(choice));
                    }
                    if choice == SEC_NONE && self.version == Version::V3_8 {
                        self.out.extend_from_slice(&0u32.to_be_bytes());
                    }
                    self.after_security_choice(choice);
                }
                Stage::Auth => {
                    let Some(r) = rest.get(..16) else {
                        break Ok(());
                    };
                    let mut answer = [0u8; 16];
                    answer.copy_from_slice(r);
                    at += 16;
                    let ok = self
                        .password
                        .as_deref()
                        .is_some_and(|p| super::auth::verify(p, &self.challenge, &answer));
                    if !ok {
                        self.fail("authentication failed");
                        break Err(SessionError::AuthFailed);
                    }
                    self.out.extend_from_slice(&0u32.to_be_bytes());
                    events.push(SessionEvent::Authenticated);
                    self.stage = Stage::ClientInit;
                }
                Stage::ClientInit => {
                    let Some(&shared) = rest.first() else {
                        break Ok(());
                    };
                    at += 1;
                    self.stage = Stage::Normal;
                    events.push(SessionEvent::Ready {
                        shared: shared != 0,
                    });
                }
                Stage::Normal => match parse_client_message(rest) {
                    Ok(Some((msg, used))) => {
                        at += used;
                        events.push(SessionEvent::Message(msg));
                    }
                    Ok(None) => break Ok(()),
                    Err(e) => {
                        self.stage = Stage::Closed;
                        break Err(e.into());
                    }
                },
                Stage::Closed => break Ok(()),
            }
        };
        self.buf.drain(..at.min(self.buf.len()));
        result.map(|()| events)
    }

    fn after_security_choice(&mut self, sec: u8) {
        if sec == SEC_VNC_AUTH {
            self.out.extend_from_slice(&self.challenge);
            self.stage = Stage::Auth;
        } else {
            self.stage = Stage::ClientInit;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v38_with_password() {
        let ch = [7u8; 16];
        let mut s = Session::new(Some(b"secret"), ch);
        assert_eq!(s.take_output(), b"RFB 003.008\n");
        assert!(s.feed(b"RFB 003.008\n").unwrap().is_empty());
        assert_eq!(s.take_output(), [1, 2]);
        assert!(s.feed(&[2]).unwrap().is_empty());
        assert_eq!(s.take_output(), ch);
        let answer = crate::vnc::auth::response(b"secret", &ch);
        // Byte by byte: partial input must wait.
        for b in &answer[..15] {
            assert!(s.feed(&[*b]).unwrap().is_empty());
        }
        assert_eq!(
            s.feed(&answer[15..]).unwrap(),
            [SessionEvent::Authenticated]
        );
        assert_eq!(s.take_output(), [0, 0, 0, 0]);
        let ev = s.feed(&[1, 4, 1, 0, 0, 0, 0, 0, 0x61]).unwrap();
        assert_eq!(
            ev,
            [
                SessionEvent::Ready { shared: true },
                SessionEvent::Message(ClientMessage::KeyEvent {
                    down: true,
                    keysym: 0x61
                })
            ]
        );
    }

    #[test]
    fn v38_wrong_password_says_why() {
        let mut s = Session::new(Some(b"secret"), [1; 16]);
        s.take_output();
        s.feed(b"RFB 003.008\n").unwrap();
        s.feed(&[2]).unwrap();
        s.take_output();
        assert_eq!(s.feed(&[0; 16]), Err(SessionError::AuthFailed));
        let out = s.take_output();
        assert_eq!(&out[..4], &[0, 0, 0, 1]);
        assert_eq!(&out[8..], b"authentication failed");
        assert_eq!(s.feed(&[0]), Err(SessionError::Closed));
    }

    #[test]
    fn v33_and_v37_without_password() {
        let mut s = Session::new(None, [0; 16]);
        s.take_output();
        s.feed(b"RFB 003.003\n").unwrap();
        assert_eq!(s.take_output(), [0, 0, 0, 1]);
        assert_eq!(
            s.feed(&[0]).unwrap(),
            [SessionEvent::Ready { shared: false }]
        );

        let mut s = Session::new(None, [0; 16]);
        s.take_output();
        s.feed(b"RFB 003.007\n").unwrap();
        assert_eq!(s.take_output(), [1, 1]);
        s.feed(&[1]).unwrap();
        assert!(
            s.take_output().is_empty(),
            "3.7 has no SecurityResult for None"
        );
        assert_eq!(
            s.feed(&[1]).unwrap(),
            [SessionEvent::Ready { shared: true }]
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let mut s = Session::new(None, [0; 16]);
        assert!(matches!(
            s.feed(b"GET / HTTP/1.1\r\n"),
            Err(SessionError::BadVersion(_))
        ));
    }
}
