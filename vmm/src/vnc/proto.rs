//! The client-to-server half of RFB, as a total parser: any byte string yields a message, a
//! request for more bytes, or a typed error, never a panic. Every length is validated before
//! anything is allocated for it.

use super::pixel::PixelFormat;

/// Longest ClientCutText we accept; the clipboard is not worth megabytes of a VMM's memory.
pub const MAX_CUT_TEXT: usize = 1 << 20;
/// SetEncodings lists longer than this are consumed but truncated.
pub const MAX_ENCODINGS: usize = 256;

/// Encoding numbers we know (RFC 6143 §7.7 and the community rfbproto document).
pub mod encoding {
    pub const RAW: i32 = 0;
    pub const COPY_RECT: i32 = 1;
    pub const TIGHT: i32 = 7;
    pub const ZRLE: i32 = 16;
    pub const DESKTOP_SIZE: i32 = -223;
    pub const LAST_RECT: i32 = -224;
    pub const CURSOR: i32 = -239;
    pub const QEMU_EXTENDED_KEY_EVENT: i32 = -258;
    pub const QEMU_LED_STATE: i32 = -261;
    pub const EXTENDED_DESKTOP_SIZE: i32 = -308;
    /// Tight compression levels -256 (0) ..= -247 (9).
    pub const COMPRESS_LEVEL_0: i32 = -256;
    pub const COMPRESS_LEVEL_9: i32 = -247;
}

/// A rectangle in framebuffer coordinates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Rect {
    pub x: u16,
    pub y: u16,
    pub w: u16,
    pub h: u16,
}

/// One message from a client after initialisation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientMessage {
    SetPixelFormat(PixelFormat),
    /// Encodings in the client's order of preference (truncated to [`MAX_ENCODINGS`]).
    SetEncodings(Vec<i32>),
    FramebufferUpdateRequest {
        incremental: bool,
        rect: Rect,
    },
    KeyEvent {
        down: bool,
        keysym: u32,
    },
    PointerEvent {
        buttons: u8,
        x: u16,
        y: u16,
    },
    ClientCutText(Vec<u8>),
    EnableContinuousUpdates {
        enable: bool,
        rect: Rect,
    },
    Fence {
        flags: u32,
        payload: Vec<u8>,
    },
    SetDesktopSize {
        width: u16,
        height: u16,
    },
    /// QEMU client message 255, subtype 0: a key with its XT scancode (0xE0 folded into bit 7).
    QemuExtendedKey {
        down: bool,
        keysym: u32,
        keycode: u32,
    },
    /// QEMU audio messages (subtype 1): parsed to stay in sync, then ignored.
    QemuAudio,
}

/// A malformed client stream. Once seen, the stream cannot be resynchronised.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParseError {
    #[error("unknown client message type {0}")]
    UnknownType(u8),
    #[error("unknown QEMU client message subtype {0}")]
    UnknownQemuSubtype(u8),
    #[error("unknown QEMU audio operation {0}")]
    UnknownAudioOp(u16),
    #[error("ClientCutText of {0} bytes exceeds the {MAX_CUT_TEXT}-byte limit")]
    CutTextTooLong(u32),
    #[error("Fence payload of {0} bytes exceeds 64")]
    FencePayload(u8),
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn rect_at(b: &[u8], at: usize) -> Rect {
    Rect {
        x: be16(b, at),
        y: be16(b, at + 2),
        w: be16(b, at + 4),
        h: be16(b, at + 6),
    }
}

/// Parses one message from the front of `buf`.
///
/// Returns `Ok(None)` when `buf` holds only part of a message, `Ok(Some((msg, used)))` when a
/// whole message of `used` bytes was read.
pub fn parse_client_message(buf: &[u8]) -> Result<Option<(ClientMessage, usize)>, ParseError> {
    let Some(&kind) = buf.first() else {
        return Ok(None);
    };
    // Fixed-size messages first: check the length once, then index freely below it.
    let fixed = match kind {
        0 => 20,
        2 => 4,
        3 => 10,
        4 => 8,
        5 => 6,
        6 => 8,
        150 => 10,
        248 => 9,
        251 => 8,
        255 => 2,
        other => return Err(ParseError::UnknownType(other)),
    };
    if buf.len() < fixed {
        return Ok(None);
    }
    let msg = match kind {
        0 => {
            let mut pf = [0u8; 16];
            pf.copy_from_slice(&buf[4..20]);
            (
                ClientMessage::SetPixelFormat(PixelFormat::from_bytes(&pf)),
                20,
            )
        }
        2 => {
            let count = usize::from(be16(buf, 2));
            let total = 4 + count * 4;
            if buf.len() < total {
                return Ok(None);
            }
            let list = buf[4..total]
                .chunks_exact(4)
                .take(MAX_ENCODINGS)
                .map(|c| i32::from_be_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            (ClientMessage::SetEncodings(list), total)
        }
        3 => (
            ClientMessage::FramebufferUpdateRequest {
                incremental: buf[1] != 0,
                rect: rect_at(buf, 2),
            },
            10,
        ),
        4 => (
            ClientMessage::KeyEvent {
                down: buf[1] != 0,
                keysym: be32(buf, 4),
            },
            8,
        ),
        5 => (
            ClientMessage::PointerEvent {
                buttons: buf[1],
                x: be16(buf, 2),
                y: be16(buf, 4),
            },
            6,
        ),
        6 => {
            let len = be32(buf, 4);
            // A negative length (the Extended Clipboard form) is only valid when the server
            // advertised that extension, which we do not.
            if len as usize > MAX_CUT_TEXT {
                return Err(ParseError::CutTextTooLong(len));
            }
            let total = 8 + len as usize;
            if buf.len() < total {
                return Ok(None);
            }
            (ClientMessage::ClientCutText(buf[8..total].to_vec()), total)
        }
        150 => (
            ClientMessage::EnableContinuousUpdates {
                enable: buf[1] != 0,
                rect: rect_at(buf, 2),
            },
            10,
        ),
        248 => {
            let len = buf[8];
            if len > 64 {
                return Err(ParseError::FencePayload(len));
            }
            let total = 9 + usize::from(len);
            if buf.len() < total {
                return Ok(None);
            }
            (
                ClientMessage::Fence {
                    flags: be32(buf, 4),
                    payload: buf[9..total].to_vec(),
                },
                total,
            )
        }
        251 => {
            let screens = usize::from(buf[6]);
            let total = 8 + screens * 16;
            if buf.len() < total {
                return Ok(None);
            }
            (
                ClientMessage::SetDesktopSize {
                    width: be16(buf, 2),
                    height: be16(buf, 4),
                },
                total,
            )
        }
        255 => match buf[1] {
            0 => {
                if buf.len() < 12 {
                    return Ok(None);
                }
                (
                    ClientMessage::QemuExtendedKey {
                        down: be16(buf, 2) != 0,
                        keysym: be32(buf, 4),
                        keycode: be32(buf, 8),
                    },
                    12,
                )
            }
            1 => {
                if buf.len() < 4 {
                    return Ok(None);
                }
                match be16(buf, 2) {
                    0 | 1 => (ClientMessage::QemuAudio, 4),
                    2 => {
                        if buf.len() < 10 {
                            return Ok(None);
                        }
                        (ClientMessage::QemuAudio, 10)
                    }
                    op => return Err(ParseError::UnknownAudioOp(op)),
                }
            }
            sub => return Err(ParseError::UnknownQemuSubtype(sub)),
        },
        // `fixed` above returned for every other type.
        other => return Err(ParseError::UnknownType(other)),
    };
    Ok(Some(msg))
}

/// Protocol versions we speak.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Version {
    V3_3,
    V3_7,
    V3_8,
}

/// Reads a ProtocolVersion message ("RFB xxx.yyy\n"), mapping any 3.x to the nearest version
/// we speak (3.5 is 3.3 by the RFC; Apple's 3.889 is 3.8).
pub fn parse_version(b: &[u8; 12]) -> Option<Version> {
    if &b[..4] != b"RFB " || b[7] != b'.' || b[11] != b'\n' {
        return None;
    }
    let num = |s: &[u8]| -> Option<u32> {
        s.iter().try_fold(0u32, |acc, &c| {
            c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
        })
    };
    let major = num(&b[4..7])?;
    let minor = num(&b[8..11])?;
    match (major, minor) {
        (3, m) if m >= 8 => Some(Version::V3_8),
        (3, 7) => Some(Version::V3_7),
        (3, _) => Some(Version::V3_3),
        (m, _) if m > 3 => Some(Version::V3_8),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_message_and_waits_for_partial_ones() {
        let msgs: Vec<Vec<u8>> = vec![
            {
                let mut m = vec![0, 0, 0, 0];
                m.extend_from_slice(&PixelFormat::NATIVE.to_bytes());
                m
            },
            vec![2, 0, 0, 2, 0, 0, 0, 16, 0xff, 0xff, 0xff, 0x21],
            vec![3, 1, 0, 1, 0, 2, 0, 3, 0, 4],
            vec![4, 1, 0, 0, 0, 0, 0xff, 0x0d],
            vec![5, 1, 0, 10, 0, 20],
            vec![6, 0, 0, 0, 0, 0, 0, 2, b'h', b'i'],
            vec![150, 1, 0, 0, 0, 0, 0, 1, 0, 1],
            vec![248, 0, 0, 0, 0, 0, 0, 1, 2, 7, 8],
            {
                let mut m = vec![251, 0, 0, 10, 0, 20, 1, 0];
                m.extend_from_slice(&[0; 16]);
                m
            },
            vec![255, 0, 0, 1, 0, 0, 0, 0x61, 0, 0, 0, 0x1e],
            vec![255, 1, 0, 2, 1, 2, 0, 0, 0xac, 0x44],
        ];
        for m in &msgs {
            for cut in 0..m.len() {
                assert_eq!(
                    parse_client_message(&m[..cut]),
                    Ok(None),
                    "{m:?} cut at {cut}"
                );
            }
            let (_, used) = parse_client_message(m).unwrap().unwrap();
            assert_eq!(used, m.len(), "{m:?}");
        }
        assert_eq!(
            parse_client_message(&msgs[3]).unwrap().unwrap().0,
            ClientMessage::KeyEvent {
                down: true,
                keysym: 0xff0d
            }
        );
        assert_eq!(
            parse_client_message(&msgs[9]).unwrap().unwrap().0,
            ClientMessage::QemuExtendedKey {
                down: true,
                keysym: 0x61,
                keycode: 0x1e
            }
        );
    }

    #[test]
    fn rejects_garbage() {
        assert_eq!(parse_client_message(&[7]), Err(ParseError::UnknownType(7)));
        assert_eq!(
            parse_client_message(&[6, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]),
            Err(ParseError::CutTextTooLong(u32::MAX))
        );
        assert_eq!(
            parse_client_message(&[255, 9]),
            Err(ParseError::UnknownQemuSubtype(9))
        );
    }

    #[test]
    fn versions() {
        assert_eq!(parse_version(b"RFB 003.008\n"), Some(Version::V3_8));
        assert_eq!(parse_version(b"RFB 003.007\n"), Some(Version::V3_7));
        assert_eq!(parse_version(b"RFB 003.003\n"), Some(Version::V3_3));
        assert_eq!(parse_version(b"RFB 003.005\n"), Some(Version::V3_3));
        assert_eq!(parse_version(b"RFB 003.889\n"), Some(Version::V3_8));
        assert_eq!(parse_version(b"RFB 00a.008\n"), None);
        assert_eq!(parse_version(b"HTTP/1.1 200"), None);
    }
}
