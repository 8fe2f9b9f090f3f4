//! A check of every byte a VNC server sends the console, before vnc-rs decodes it.
//!
//! vnc-rs bounds much on its own, but what keeps a hostile server from making the console
//! allocate or index without bound should not rest on a decoder's internals. The guard reads
//! both directions of the stream (the client's side tells it the version, security type,
//! pixel format and encodings vnc-rs chose) and refuses the first server byte that breaks a
//! limit, before vnc-rs sees it: the screen size, every rectangle against the current screen,
//! and the lengths of names, reasons, clipboard text, colour maps and compressed data.
//! Pixel data is never copied, only counted as it passes.
//!
//! It knows exactly the encodings the console can ask for (Raw, CopyRect, Tight, ZRLE and the
//! DesktopSize, ExtendedDesktopSize, LastRect and Cursor pseudo-encodings); anything else, or
//! anything not asked for, is refused. No GTK, no async, no I/O: the console's stream wrapper
//! feeds it, and so does a fuzz target.

/// Widest and tallest screen accepted.
pub const MAX_DIMENSION: u32 = 16384;
/// Largest screen accepted, in bytes of the console's 4-byte pixels (8K UHD fits).
pub const MAX_SCREEN_BYTES: u64 = 128 << 20;
/// Longest desktop name and failure reason.
pub const MAX_NAME: u32 = 4096;
/// Longest clipboard text.
pub const MAX_TEXT: u32 = 1 << 20;
/// Widest and tallest cursor image.
pub const MAX_CURSOR: u32 = 1024;

/// Why the console stopped listening to a server.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum GuardError {
    #[error("a screen of {width}x{height} (the limit is {MAX_DIMENSION}x{MAX_DIMENSION} and {} MiB)", MAX_SCREEN_BYTES >> 20)]
    ScreenTooBig { width: u32, height: u32 },
    #[error("a rectangle of {w}x{h} at {x},{y} outside the {screen_w}x{screen_h} screen")]
    RectOutside {
        x: u32,
        y: u32,
        w: u32,
        h: u32,
        screen_w: u32,
        screen_h: u32,
    },
    #[error("a cursor of {0}x{1} (the limit is {MAX_CURSOR}x{MAX_CURSOR})")]
    CursorTooBig(u32, u32),
    #[error("{what} of {len} bytes (the limit is {max})")]
    TooLong {
        what: &'static str,
        len: u64,
        max: u64,
    },
    #[error("encoding {0}, which the console did not ask for")]
    NotRequested(i32),
    #[error("encoding {0}, which the console does not accept")]
    Unsupported(i32),
    #[error("message type {0}, which the console does not know")]
    UnknownMessage(u8),
    #[error("a pixel format of {0} bits per pixel")]
    BadPixelFormat(u8),
    #[error("a colour map of {count} entries from {first}, for a {bpp}-bit true-colour={true_colour} format")]
    BadColourMap {
        first: u16,
        count: u16,
        bpp: u8,
        true_colour: bool,
    },
    #[error("a malformed {0}")]
    Malformed(&'static str),
    #[error("data before the console had answered")]
    OutOfTurn,
    #[error("data after it had ended the connection")]
    AfterEnd,
    #[error("the console's own client sent message type {0}, which its guard does not know")]
    ClientMessage(u8),
}

/// RFB versions as the client chose them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Version {
    V3_3,
    V3_7,
    V3_8,
}

const SEC_VNC_AUTH: u8 = 2;

const RAW: i32 = 0;
const COPY_RECT: i32 = 1;
const TIGHT: i32 = 7;
const ZRLE: i32 = 16;
const CURSOR: i32 = -239;
const DESKTOP_SIZE: i32 = -223;
const LAST_RECT: i32 = -224;
const EXTENDED_DESKTOP_SIZE: i32 = -308;

/// What the pixels on the wire look like, as far as lengths go.
#[derive(Clone, Copy, Debug)]
struct Format {
    bytes: u8,
    true_colour: bool,
    /// Tight's TPIXEL: 3 bytes for 32-bit depth-24 true colour, else the pixel size.
    tpixel: u8,
}

impl Format {
    fn parse(pf: &[u8]) -> Result<Format, GuardError> {
        let bpp = pf[0];
        if !matches!(bpp, 8 | 16 | 32) {
            return Err(GuardError::BadPixelFormat(bpp));
        }
        let true_colour = pf[3] != 0;
        let maxes_255 = pf[4..10] == [0, 255, 0, 255, 0, 255];
        let tpixel = if bpp == 32 && pf[1] == 24 && true_colour && maxes_255 {
            3
        } else {
            bpp / 8
        };
        Ok(Format {
            bytes: bpp / 8,
            true_colour,
            tpixel,
        })
    }
}

#[derive(Clone, Copy, Debug, Default)]
struct Rect {
    x: u32,
    y: u32,
    w: u32,
    h: u32,
    encoding: i32,
}

impl Rect {
    fn area(&self) -> u64 {
        u64::from(self.w) * u64::from(self.h)
    }
}

/// What comes after a run of skipped bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum After {
    Security,
    Challenge,
    Rect,
    TightIndices,
    Message,
    End,
}

/// Where the server's side of the stream is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Srv {
    Version,
    SecurityCount,
    SecurityType33,
    /// Decided by what the client chose; resolved at the server's next byte.
    AfterSecurity,
    SecurityResult,
    ReasonLength,
    ServerInit,
    Message,
    UpdateHeader,
    RectHeader,
    CopySource,
    ZrleLength,
    TightControl,
    TightFilter,
    TightPaletteSize,
    /// Tight's compact length (1 to 3 bytes): `value` so far, `index` of the next byte.
    TightLength {
        value: u32,
        index: u8,
        max: u64,
    },
    ExtendedDesktopHeader,
    ColourMapHeader,
    CutTextHeader,
    Skip(u64, After),
    Ended,
}

/// Where the client's side of the stream is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cli {
    Version,
    SecurityChoice,
    /// Waits for the server's 3.3 security type.
    AfterVersion33,
    ClientInit,
    Message,
    /// The fixed part of a message of this type after its type byte.
    Body(u8),
    Encodings(u16),
    Skip(u64, Cli2),
}

/// Where the client goes after skipping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cli2 {
    ClientInit,
    Message,
}

/// The most encodings remembered from a SetEncodings (vnc-rs sends a handful).
const MAX_ENCODINGS: usize = 64;

/// A fixed-size field gathered across chunks.
#[derive(Default)]
struct Field {
    buf: [u8; 24],
    have: usize,
}

impl Field {
    /// Takes bytes of a `want`-byte field from `input`; the field once it is complete.
    fn fill(&mut self, want: usize, input: &mut &[u8]) -> Option<[u8; 24]> {
        let take = (want - self.have).min(input.len());
        self.buf[self.have..self.have + take].copy_from_slice(&input[..take]);
        self.have += take;
        *input = &input[take..];
        if self.have < want {
            return None;
        }
        self.have = 0;
        Some(self.buf)
    }
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Skips up to `left` bytes of `input`; how many are still to skip.
fn skip(left: u64, input: &mut &[u8]) -> u64 {
    let take = left.min(input.len() as u64);
    *input = &input[take as usize..];
    left - take
}

/// One connection's check: feed it every byte of each direction, in order.
pub struct Guard {
    srv: Srv,
    srv_field: Field,
    cli: Cli,
    cli_field: Field,
    version: Option<Version>,
    security: Option<u8>,
    format: Option<Format>,
    encodings: Vec<i32>,
    screen: (u32, u32),
    /// An ExtendedDesktopSize in this update: the size from the update's end on.
    next_screen: Option<(u32, u32)>,
    rects_left: u16,
    rect: Rect,
    tight_palette: u16,
    error: Option<GuardError>,
    updates: Updates,
}

/// How far the server's framebuffer updates have come, in pixels: the console requests the
/// next update from these (vnc-rs marks no update's end) and compares them with the pixels
/// it has drawn to know how far decoding lags behind the socket.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Updates {
    /// Updates whose last byte has passed.
    pub ended: u64,
    /// Pixels of every picture rectangle (Raw, CopyRect, Tight, ZRLE) that has begun.
    pub area: u64,
    /// `area` when the last update ended, and when the one before it ended.
    pub at_last_end: u64,
    pub at_end_before: u64,
}

impl Default for Guard {
    fn default() -> Self {
        Guard::new()
    }
}

impl Guard {
    pub fn new() -> Guard {
        Guard {
            srv: Srv::Version,
            srv_field: Field::default(),
            cli: Cli::Version,
            cli_field: Field::default(),
            version: None,
            security: None,
            format: None,
            encodings: Vec::new(),
            screen: (0, 0),
            next_screen: None,
            rects_left: 0,
            rect: Rect::default(),
            tight_palette: 0,
            error: None,
            updates: Updates::default(),
        }
    }

    /// The updates so far (see [`Updates`]).
    pub fn updates(&self) -> Updates {
        self.updates
    }

    /// The screen size as the server's messages so far set it (0x0 before ServerInit).
    #[cfg_attr(not(test), allow(dead_code))] // for the tests and the fuzz target
    pub fn screen(&self) -> (u32, u32) {
        self.screen
    }

    /// Checks bytes from the server, all of which may be passed on if this is Ok. After an
    /// error every later call fails the same way.
    pub fn server_sent(&mut self, mut data: &[u8]) -> Result<(), GuardError> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        while !data.is_empty() {
            if let Err(e) = self.server_step(&mut data) {
                self.error = Some(e.clone());
                return Err(e);
            }
        }
        Ok(())
    }

    /// Notes bytes the console's client sent.
    pub fn client_sent(&mut self, mut data: &[u8]) -> Result<(), GuardError> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        while !data.is_empty() {
            if let Err(e) = self.client_step(&mut data) {
                self.error = Some(e.clone());
                return Err(e);
            }
        }
        Ok(())
    }

    fn server_step(&mut self, input: &mut &[u8]) -> Result<(), GuardError> {
        macro_rules! field {
            ($n:expr) => {
                match self.srv_field.fill($n, input) {
                    Some(b) => b,
                    None => return Ok(()),
                }
            };
        }
        self.srv = match self.srv {
            Srv::Version => {
                let b = field!(12);
                if &b[..4] != b"RFB " || b[11] != b'\n' {
                    return Err(GuardError::Malformed("protocol version"));
                }
                Srv::SecurityCount
            }
            // What follows depends on the version the client answered with.
            Srv::SecurityCount => match self.version.ok_or(GuardError::OutOfTurn)? {
                Version::V3_3 => Srv::SecurityType33,
                Version::V3_7 | Version::V3_8 => match field!(1)[0] {
                    0 => Srv::ReasonLength,
                    n => Srv::Skip(n.into(), After::Security),
                },
            },
            Srv::SecurityType33 => match u32_at(&field!(4), 0) {
                0 => Srv::ReasonLength,
                t @ (1 | 2) => {
                    self.security = Some(t as u8);
                    self.after_security()?
                }
                _ => return Err(GuardError::Malformed("security type")),
            },
            Srv::AfterSecurity => self.after_security()?,
            Srv::SecurityResult => match u32_at(&field!(4), 0) {
                0 => Srv::ServerInit,
                _ if self.version == Some(Version::V3_8) => Srv::ReasonLength,
                _ => Srv::Ended,
            },
            Srv::ReasonLength => {
                let n = u32_at(&field!(4), 0);
                check_len("a failure reason", n.into(), MAX_NAME.into())?;
                Srv::Skip(n.into(), After::End)
            }
            Srv::ServerInit => {
                let b = field!(24);
                let (w, h) = (u16_at(&b, 0).into(), u16_at(&b, 2).into());
                check_screen(w, h)?;
                self.screen = (w, h);
                // The server's format holds until the client asks for its own.
                let server_format = Format::parse(&b[4..20])?;
                self.format.get_or_insert(server_format);
                let name = u32_at(&b, 20);
                check_len("a desktop name", name.into(), MAX_NAME.into())?;
                Srv::Skip(name.into(), After::Message)
            }
            Srv::Message => match field!(1)[0] {
                0 => Srv::UpdateHeader,
                1 => Srv::ColourMapHeader,
                2 => Srv::Message,
                3 => Srv::CutTextHeader,
                t => return Err(GuardError::UnknownMessage(t)),
            },
            Srv::UpdateHeader => {
                self.rects_left = u16_at(&field!(3), 1);
                self.next_screen = None;
                self.after_rect()
            }
            Srv::RectHeader => {
                let b = field!(12);
                self.rects_left = self.rects_left.saturating_sub(1);
                self.rect = Rect {
                    x: u16_at(&b, 0).into(),
                    y: u16_at(&b, 2).into(),
                    w: u16_at(&b, 4).into(),
                    h: u16_at(&b, 6).into(),
                    encoding: u32_at(&b, 8) as i32,
                };
                self.rect_start()?
            }
            Srv::CopySource => {
                let b = field!(4);
                self.check_inside(&Rect {
                    x: u16_at(&b, 0).into(),
                    y: u16_at(&b, 2).into(),
                    ..self.rect
                })?;
                self.after_rect()
            }
            Srv::ZrleLength => {
                let n = u32_at(&field!(4), 0);
                // One zlib chunk per rectangle: at most every tile raw (a subencoding byte and
                // up to 4 bytes a pixel) plus zlib's framing.
                let max = self.rect.area() * 5 + 4096;
                check_len("ZRLE data", n.into(), max)?;
                Srv::Skip(n.into(), After::Rect)
            }
            Srv::TightControl => {
                let control = field!(1)[0] >> 4;
                let tpixel = u64::from(self.format()?.tpixel);
                match control {
                    8 => Srv::Skip(tpixel, After::Rect),
                    // JPEG: its headers can outweigh a small rectangle's pixels.
                    9 => Srv::TightLength {
                        value: 0,
                        index: 0,
                        max: self.rect.area() * 4 + 4096,
                    },
                    c if c & 8 == 0 && c & 4 != 0 => Srv::TightFilter,
                    c if c & 8 == 0 => tight_data(self.rect.area() * tpixel),
                    _ => return Err(GuardError::Malformed("Tight compression control")),
                }
            }
            Srv::TightFilter => match field!(1)[0] {
                0 | 2 => tight_data(self.rect.area() * u64::from(self.format()?.tpixel)),
                1 => Srv::TightPaletteSize,
                _ => return Err(GuardError::Malformed("Tight filter")),
            },
            Srv::TightPaletteSize => {
                let n = u16::from(field!(1)[0]) + 1;
                self.tight_palette = n;
                let tpixel = u64::from(self.format()?.tpixel);
                Srv::Skip(u64::from(n) * tpixel, After::TightIndices)
            }
            Srv::TightLength { value, index, max } => {
                let b = field!(1)[0];
                let bits = if index < 2 { b & 0x7f } else { b };
                let value = value | u32::from(bits) << (7 * index);
                if index < 2 && b & 0x80 != 0 {
                    Srv::TightLength {
                        value,
                        index: index + 1,
                        max,
                    }
                } else {
                    check_len("Tight data", value.into(), max)?;
                    Srv::Skip(value.into(), After::Rect)
                }
            }
            Srv::ExtendedDesktopHeader => {
                let screens = field!(4)[0];
                // Reason "this client" with a non-zero status is a refusal: no new size.
                if self.rect.x != 1 || self.rect.y == 0 {
                    check_screen(self.rect.w, self.rect.h)?;
                    self.next_screen = Some((self.rect.w, self.rect.h));
                }
                Srv::Skip(u64::from(screens) * 16, After::Rect)
            }
            Srv::ColourMapHeader => {
                let b = field!(5);
                let (first, count) = (u16_at(&b, 1), u16_at(&b, 3));
                let f = self.format()?;
                let entries = 1u32 << (u32::from(f.bytes) * 8).min(16);
                if f.true_colour || u32::from(first) + u32::from(count) > entries {
                    return Err(GuardError::BadColourMap {
                        first,
                        count,
                        bpp: f.bytes * 8,
                        true_colour: f.true_colour,
                    });
                }
                Srv::Skip(u64::from(count) * 6, After::Message)
            }
            Srv::CutTextHeader => {
                let n = u32_at(&field!(7), 3);
                // A negative length is the extended clipboard, which the console never asks
                // for: as a u32 it is far over the limit.
                check_len("clipboard text", n.into(), MAX_TEXT.into())?;
                Srv::Skip(n.into(), After::Message)
            }
            Srv::Skip(left, after) => match skip(left, input) {
                0 => match after {
                    After::Security => Srv::AfterSecurity,
                    After::Challenge => Srv::SecurityResult,
                    After::Rect => self.after_rect(),
                    After::TightIndices => {
                        let r = &self.rect;
                        let row = if self.tight_palette <= 2 {
                            u64::from(r.w).div_ceil(8)
                        } else {
                            u64::from(r.w)
                        };
                        tight_data(row * u64::from(r.h))
                    }
                    After::Message => Srv::Message,
                    After::End => Srv::Ended,
                },
                left => Srv::Skip(left, after),
            },
            Srv::Ended => return Err(GuardError::AfterEnd),
        };
        Ok(())
    }

    /// The server's next step once a security type is settled.
    fn after_security(&self) -> Result<Srv, GuardError> {
        let version = self.version.ok_or(GuardError::OutOfTurn)?;
        Ok(match self.security.ok_or(GuardError::OutOfTurn)? {
            SEC_VNC_AUTH => Srv::Skip(16, After::Challenge),
            _ if version == Version::V3_8 => Srv::SecurityResult,
            _ => Srv::ServerInit,
        })
    }

    /// The next rectangle, or the next message once the update is complete.
    fn after_rect(&mut self) -> Srv {
        if self.rects_left > 0 {
            return Srv::RectHeader;
        }
        if let Some(size) = self.next_screen.take() {
            self.screen = size;
        }
        let u = &mut self.updates;
        u.ended += 1;
        u.at_end_before = u.at_last_end;
        u.at_last_end = u.area;
        Srv::Message
    }

    fn rect_start(&mut self) -> Result<Srv, GuardError> {
        let r = self.rect;
        if r.encoding != RAW && !self.encodings.contains(&r.encoding) {
            return Err(GuardError::NotRequested(r.encoding));
        }
        if matches!(r.encoding, RAW | COPY_RECT | TIGHT | ZRLE) {
            self.updates.area += r.area();
        }
        Ok(match r.encoding {
            RAW => {
                self.check_inside(&r)?;
                Srv::Skip(r.area() * u64::from(self.format()?.bytes), After::Rect)
            }
            COPY_RECT => {
                self.check_inside(&r)?;
                Srv::CopySource
            }
            TIGHT => {
                self.check_inside(&r)?;
                Srv::TightControl
            }
            ZRLE => {
                self.check_inside(&r)?;
                Srv::ZrleLength
            }
            CURSOR => {
                if r.w > MAX_CURSOR || r.h > MAX_CURSOR {
                    return Err(GuardError::CursorTooBig(r.w, r.h));
                }
                let mask = u64::from(r.w).div_ceil(8) * u64::from(r.h);
                Srv::Skip(
                    r.area() * u64::from(self.format()?.bytes) + mask,
                    After::Rect,
                )
            }
            DESKTOP_SIZE => {
                check_screen(r.w, r.h)?;
                self.screen = (r.w, r.h);
                self.after_rect()
            }
            LAST_RECT => {
                self.rects_left = 0;
                self.after_rect()
            }
            EXTENDED_DESKTOP_SIZE => Srv::ExtendedDesktopHeader,
            e => return Err(GuardError::Unsupported(e)),
        })
    }

    fn check_inside(&self, r: &Rect) -> Result<(), GuardError> {
        let (sw, sh) = self.screen;
        if r.x + r.w > sw || r.y + r.h > sh {
            return Err(GuardError::RectOutside {
                x: r.x,
                y: r.y,
                w: r.w,
                h: r.h,
                screen_w: sw,
                screen_h: sh,
            });
        }
        Ok(())
    }

    fn format(&self) -> Result<Format, GuardError> {
        self.format.ok_or(GuardError::OutOfTurn)
    }

    fn client_step(&mut self, input: &mut &[u8]) -> Result<(), GuardError> {
        macro_rules! field {
            ($n:expr) => {
                match self.cli_field.fill($n, input) {
                    Some(b) => b,
                    None => return Ok(()),
                }
            };
        }
        self.cli = match self.cli {
            Cli::Version => {
                let b = field!(12);
                let version = match &b[..12] {
                    b"RFB 003.003\n" => Version::V3_3,
                    b"RFB 003.007\n" => Version::V3_7,
                    b"RFB 003.008\n" => Version::V3_8,
                    _ => return Err(GuardError::Malformed("client protocol version")),
                };
                self.version = Some(version);
                if version == Version::V3_3 {
                    Cli::AfterVersion33
                } else {
                    Cli::SecurityChoice
                }
            }
            Cli::SecurityChoice => {
                let choice = field!(1)[0];
                self.security = Some(choice);
                self.after_client_security(choice)
            }
            Cli::AfterVersion33 => {
                let decided = self.security.ok_or(GuardError::OutOfTurn)?;
                self.after_client_security(decided)
            }
            Cli::ClientInit => {
                field!(1);
                Cli::Message
            }
            Cli::Message => match field!(1)[0] {
                t @ (0 | 2 | 6 | 251) => Cli::Body(t),
                3 => Cli::Skip(9, Cli2::Message),
                4 => Cli::Skip(7, Cli2::Message),
                5 => Cli::Skip(5, Cli2::Message),
                t => return Err(GuardError::ClientMessage(t)),
            },
            Cli::Body(0) => {
                let b = field!(19);
                self.format = Some(Format::parse(&b[3..19])?);
                Cli::Message
            }
            Cli::Body(2) => {
                self.encodings.clear();
                match u16_at(&field!(3), 1) {
                    0 => Cli::Message,
                    n => Cli::Encodings(n),
                }
            }
            Cli::Body(6) => Cli::Skip(u32_at(&field!(7), 3).into(), Cli2::Message),
            Cli::Body(_) => {
                // SetDesktopSize: padding, width, height, screens, padding; 16 bytes a screen.
                let screens = field!(7)[5];
                Cli::Skip(u64::from(screens) * 16, Cli2::Message)
            }
            Cli::Encodings(left) => {
                let e = u32_at(&field!(4), 0) as i32;
                if self.encodings.len() < MAX_ENCODINGS {
                    self.encodings.push(e);
                }
                match left - 1 {
                    0 => Cli::Message,
                    n => Cli::Encodings(n),
                }
            }
            Cli::Skip(left, then) => match skip(left, input) {
                0 => match then {
                    Cli2::ClientInit => Cli::ClientInit,
                    Cli2::Message => Cli::Message,
                },
                left => Cli::Skip(left, then),
            },
        };
        Ok(())
    }

    /// The client's next step once the security type is settled: the 16-byte answer to
    /// VNC authentication's challenge, then ClientInit.
    fn after_client_security(&self, security: u8) -> Cli {
        if security == SEC_VNC_AUTH {
            Cli::Skip(16, Cli2::ClientInit)
        } else {
            Cli::ClientInit
        }
    }
}

/// Tight's pixel data: sent as is under 12 bytes, else as a compact length and zlib data
/// (which for incompressible input is a little larger than its input).
fn tight_data(raw: u64) -> Srv {
    if raw < 12 {
        Srv::Skip(raw, After::Rect)
    } else {
        Srv::TightLength {
            value: 0,
            index: 0,
            max: raw + raw / 16 + 1024,
        }
    }
}

fn check_len(what: &'static str, len: u64, max: u64) -> Result<(), GuardError> {
    if len > max {
        return Err(GuardError::TooLong { what, len, max });
    }
    Ok(())
}

fn check_screen(w: u32, h: u32) -> Result<(), GuardError> {
    if w > MAX_DIMENSION || h > MAX_DIMENSION || u64::from(w) * u64::from(h) * 4 > MAX_SCREEN_BYTES
    {
        return Err(GuardError::ScreenTooBig {
            width: w,
            height: h,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The console's pixel format (vnc-rs's bgra): 32 bits, depth 24, true colour.
    const BGRA: [u8; 16] = [32, 24, 0, 1, 0, 255, 0, 255, 0, 255, 16, 8, 0, 0, 0, 0];

    fn server_init(w: u16, h: u16, name: &[u8]) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend(w.to_be_bytes());
        m.extend(h.to_be_bytes());
        m.extend(BGRA);
        m.extend((name.len() as u32).to_be_bytes());
        m.extend(name);
        m
    }

    fn set_encodings(list: &[i32]) -> Vec<u8> {
        let mut m = vec![2, 0];
        m.extend((list.len() as u16).to_be_bytes());
        for e in list {
            m.extend(e.to_be_bytes());
        }
        m
    }

    fn rect(x: u16, y: u16, w: u16, h: u16, encoding: i32) -> Vec<u8> {
        let mut m = Vec::new();
        for v in [x, y, w, h] {
            m.extend(v.to_be_bytes());
        }
        m.extend(encoding.to_be_bytes());
        m
    }

    fn update(rects: u16) -> Vec<u8> {
        let mut m = vec![0, 0];
        m.extend(rects.to_be_bytes());
        m
    }

    /// A guard past a 3.8 handshake without password, as the console sets up vnc-rs.
    fn connected(w: u16, h: u16) -> Guard {
        let mut g = Guard::new();
        g.server_sent(b"RFB 003.008\n").unwrap();
        g.client_sent(b"RFB 003.008\n").unwrap();
        g.server_sent(&[1, 1]).unwrap();
        g.client_sent(&[1]).unwrap();
        g.server_sent(&[0, 0, 0, 0]).unwrap();
        g.client_sent(&[1]).unwrap();
        g.server_sent(&server_init(w, h, b"guest")).unwrap();
        let mut pf = vec![0, 0, 0, 0];
        pf.extend(BGRA);
        g.client_sent(&pf).unwrap();
        g.client_sent(&set_encodings(&[TIGHT, ZRLE, COPY_RECT, RAW, DESKTOP_SIZE]))
            .unwrap();
        g.client_sent(&[3, 0, 0, 0, 0, 0, 0, 64, 0, 48]).unwrap();
        g
    }

    #[test]
    fn handshakes_with_and_without_a_password_in_each_version() {
        // 3.8, VNC password, refused with a reason: nothing may follow.
        let mut g = Guard::new();
        g.server_sent(b"RFB 003.008\n").unwrap();
        g.client_sent(b"RFB 003.008\n").unwrap();
        g.server_sent(&[2, 2, 1]).unwrap();
        g.client_sent(&[2]).unwrap();
        g.server_sent(&[9; 16]).unwrap();
        g.client_sent(&[7; 16]).unwrap();
        g.server_sent(&[0, 0, 0, 1, 0, 0, 0, 4]).unwrap();
        g.server_sent(b"nope").unwrap();
        assert_eq!(g.server_sent(&[0]), Err(GuardError::AfterEnd));

        // 3.3: the server picks VNC auth; success, then ServerInit.
        let mut g = Guard::new();
        g.server_sent(b"RFB 003.003\n").unwrap();
        g.client_sent(b"RFB 003.003\n").unwrap();
        g.server_sent(&[0, 0, 0, 2]).unwrap();
        g.server_sent(&[1; 16]).unwrap();
        g.client_sent(&[2; 16]).unwrap();
        g.server_sent(&[0, 0, 0, 0]).unwrap();
        g.client_sent(&[1]).unwrap();
        g.server_sent(&server_init(640, 480, b"x")).unwrap();
        assert_eq!(g.screen(), (640, 480));

        // 3.7 without password has no SecurityResult.
        let mut g = Guard::new();
        g.server_sent(b"RFB 003.007\n").unwrap();
        g.client_sent(b"RFB 003.007\n").unwrap();
        g.server_sent(&[1, 1]).unwrap();
        g.client_sent(&[1, 1]).unwrap();
        g.server_sent(&server_init(8, 8, b"")).unwrap();
        assert_eq!(g.screen(), (8, 8));
    }

    #[test]
    fn a_server_may_not_answer_before_the_client_chose() {
        let mut g = Guard::new();
        g.server_sent(b"RFB 003.008\n").unwrap();
        assert_eq!(g.server_sent(&[1, 1]), Err(GuardError::OutOfTurn));
    }

    #[test]
    fn long_reasons_and_names_are_refused() {
        let mut g = Guard::new();
        g.server_sent(b"RFB 003.008\n").unwrap();
        g.client_sent(b"RFB 003.008\n").unwrap();
        let r = g.server_sent(&[0, 0xff, 0xff, 0xff, 0xff]);
        assert!(matches!(r, Err(GuardError::TooLong { .. })), "{r:?}");

        let mut g = Guard::new();
        g.server_sent(b"RFB 003.003\n").unwrap();
        g.client_sent(b"RFB 003.003\n").unwrap();
        g.server_sent(&[0, 0, 0, 1]).unwrap();
        let mut init = server_init(8, 8, b"");
        init[20..24].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(
            g.server_sent(&init),
            Err(GuardError::TooLong { .. })
        ));
    }

    #[test]
    fn huge_screens_are_refused_at_init_and_on_resize() {
        let mut g = Guard::new();
        g.server_sent(b"RFB 003.003\n").unwrap();
        g.client_sent(b"RFB 003.003\n").unwrap();
        g.server_sent(&[0, 0, 0, 1]).unwrap();
        assert_eq!(
            g.server_sent(&server_init(65535, 65535, b"")),
            Err(GuardError::ScreenTooBig {
                width: 65535,
                height: 65535
            })
        );
        // Within the side limit but past the byte budget: 16384x16384 is 1 GiB.
        let mut g = Guard::new();
        g.server_sent(b"RFB 003.003\n").unwrap();
        g.client_sent(b"RFB 003.003\n").unwrap();
        g.server_sent(&[0, 0, 0, 1]).unwrap();
        assert!(g.server_sent(&server_init(16384, 16384, b"")).is_err());

        let mut g = connected(64, 48);
        let mut m = update(1);
        m.extend(rect(0, 0, 20000, 100, DESKTOP_SIZE));
        assert!(matches!(
            g.server_sent(&m),
            Err(GuardError::ScreenTooBig { .. })
        ));
    }

    #[test]
    fn rectangles_must_lie_inside_the_screen() {
        for (x, y, w, h) in [
            (60, 0, 5, 1),
            (0, 47, 1, 2),
            (65535, 0, 2, 1),
            (0, 0, 65535, 65535),
        ] {
            let mut g = connected(64, 48);
            let mut m = update(1);
            m.extend(rect(x, y, w, h, RAW));
            assert!(
                matches!(g.server_sent(&m), Err(GuardError::RectOutside { .. })),
                "{x},{y} {w}x{h}"
            );
        }
        // Exactly filling the screen is fine, and its pixels pass uncopied.
        let mut g = connected(64, 48);
        let mut m = update(1);
        m.extend(rect(0, 0, 64, 48, RAW));
        m.extend(vec![7; 64 * 48 * 4]);
        m.push(2); // a Bell after the update
        g.server_sent(&m).unwrap();
    }

    #[test]
    fn copyrect_sources_must_lie_inside_the_screen() {
        let mut g = connected(64, 48);
        let mut m = update(1);
        m.extend(rect(0, 0, 10, 10, COPY_RECT));
        m.extend([0, 60, 0, 0]);
        assert!(matches!(
            g.server_sent(&m),
            Err(GuardError::RectOutside { .. })
        ));
    }

    #[test]
    fn a_desktop_size_change_moves_the_bounds() {
        let mut g = connected(64, 48);
        let mut m = update(2);
        m.extend(rect(0, 0, 128, 96, DESKTOP_SIZE));
        m.extend(rect(100, 90, 28, 6, RAW));
        m.extend(vec![0; 28 * 6 * 4]);
        g.server_sent(&m).unwrap();
        assert_eq!(g.screen(), (128, 96));
        let mut m = update(1);
        m.extend(rect(0, 0, 129, 1, RAW));
        assert!(g.server_sent(&m).is_err());
    }

    #[test]
    fn an_extended_desktop_size_counts_from_the_end_of_its_update() {
        let mut g = connected(64, 48);
        g.client_sent(&set_encodings(&[RAW, EXTENDED_DESKTOP_SIZE]))
            .unwrap();
        let mut m = update(1);
        m.extend(rect(0, 0, 200, 100, EXTENDED_DESKTOP_SIZE));
        m.extend([1, 0, 0, 0]);
        m.extend([0; 16]);
        g.server_sent(&m).unwrap();
        assert_eq!(g.screen(), (200, 100));
        // A refused resize ("this client", status 3) carries no size to trust.
        let mut m = update(1);
        m.extend(rect(1, 3, 65535, 65535, EXTENDED_DESKTOP_SIZE));
        m.extend([0, 0, 0, 0]);
        g.server_sent(&m).unwrap();
        assert_eq!(g.screen(), (200, 100));
    }

    #[test]
    fn encodings_not_asked_for_or_not_known_are_refused() {
        let mut g = connected(64, 48);
        let mut m = update(1);
        m.extend(rect(0, 0, 8, 8, CURSOR));
        assert_eq!(g.server_sent(&m), Err(GuardError::NotRequested(CURSOR)));

        let mut g = connected(64, 48);
        g.client_sent(&set_encodings(&[15, RAW])).unwrap();
        let mut m = update(1);
        m.extend(rect(0, 0, 8, 8, 15));
        assert_eq!(g.server_sent(&m), Err(GuardError::Unsupported(15)));
    }

    #[test]
    fn cursors_are_bounded_and_skipped_exactly() {
        let mut g = connected(64, 48);
        g.client_sent(&set_encodings(&[RAW, CURSOR])).unwrap();
        let mut m = update(1);
        m.extend(rect(3, 3, 9, 2, CURSOR));
        m.extend(vec![0; 9 * 2 * 4 + 2 * 2]);
        m.push(2);
        g.server_sent(&m).unwrap();
        let mut m = update(1);
        m.extend(rect(0, 0, 4096, 1, CURSOR));
        assert_eq!(g.server_sent(&m), Err(GuardError::CursorTooBig(4096, 1)));
    }

    #[test]
    fn clipboard_and_colour_maps_are_bounded() {
        let mut g = connected(64, 48);
        let mut m = vec![3, 0, 0, 0];
        m.extend(5u32.to_be_bytes());
        m.extend(b"hello");
        g.server_sent(&m).unwrap();
        let mut m = vec![3, 0, 0, 0];
        m.extend((-100i32).to_be_bytes());
        assert!(matches!(g.server_sent(&m), Err(GuardError::TooLong { .. })));

        // A colour map for a true-colour client.
        let mut g = connected(64, 48);
        assert!(matches!(
            g.server_sent(&[1, 0, 0, 0, 0, 1]),
            Err(GuardError::BadColourMap { .. })
        ));
        // An 8-bit client: 256 entries at most.
        let mut g = connected(64, 48);
        let mut pf = vec![0, 0, 0, 0, 8, 8, 0, 0];
        pf.extend([0; 12]);
        g.client_sent(&pf).unwrap();
        let mut m = vec![1, 0, 0, 0, 1, 0];
        m.extend([0; 256 * 6]);
        g.server_sent(&m).unwrap();
        assert!(matches!(
            g.server_sent(&[1, 0, 0, 200, 0, 57]),
            Err(GuardError::BadColourMap { .. })
        ));
    }

    #[test]
    fn tight_rectangles_are_followed_to_their_end() {
        let mut g = connected(64, 48);
        let mut m = update(5);
        // Fill: one 3-byte TPIXEL.
        m.extend(rect(0, 0, 64, 48, TIGHT));
        m.extend([0x80, 1, 2, 3]);
        // Mono palette on a 10x2 rectangle: 2 bytes a row, 4 bytes < 12, sent as is.
        m.extend(rect(0, 0, 10, 2, TIGHT));
        m.extend([0x40, 1, 1, 0, 0, 0, 9, 9, 9]);
        m.extend([0xaa; 4]);
        // Basic copy filter, zlib data with a two-byte compact length (200).
        m.extend(rect(0, 0, 64, 10, TIGHT));
        m.extend([0x00, 0xc8, 0x01]);
        m.extend([5; 200]);
        // JPEG with a one-byte length.
        m.extend(rect(0, 0, 8, 8, TIGHT));
        m.extend([0x90, 3, 1, 2, 3]);
        // Gradient filter on a 2x1 rectangle: 6 bytes, as is.
        m.extend(rect(0, 0, 2, 1, TIGHT));
        m.extend([0x40, 2, 1, 2, 3, 4, 5, 6]);
        m.push(2);
        // Byte by byte must give the same as all at once.
        for chunk in [m.len(), 1, 7] {
            let mut g2 = connected(64, 48);
            for part in m.chunks(chunk) {
                g2.server_sent(part).unwrap();
            }
        }
        g.server_sent(&m).unwrap();
        // A compact length far beyond what the rectangle could need.
        let mut m = update(1);
        m.extend(rect(0, 0, 4, 4, TIGHT));
        m.extend([0x00, 0xff, 0xff, 0xff]);
        assert!(matches!(g.server_sent(&m), Err(GuardError::TooLong { .. })));
    }

    #[test]
    fn zrle_lengths_are_bounded_by_the_rectangle() {
        let mut g = connected(64, 48);
        let mut m = update(1);
        m.extend(rect(0, 0, 64, 48, ZRLE));
        m.extend(10u32.to_be_bytes());
        m.extend([0; 10]);
        g.server_sent(&m).unwrap();
        let mut m = update(1);
        m.extend(rect(0, 0, 1, 1, ZRLE));
        m.extend(u32::MAX.to_be_bytes());
        assert!(matches!(g.server_sent(&m), Err(GuardError::TooLong { .. })));
    }

    #[test]
    fn update_ends_and_picture_areas_are_counted() {
        let mut g = connected(64, 48);
        g.client_sent(&set_encodings(&[RAW, COPY_RECT, LAST_RECT]))
            .unwrap();
        let mut m = update(2);
        m.extend(rect(0, 0, 2, 3, RAW));
        m.extend([0; 24]);
        m.extend(rect(10, 10, 4, 4, COPY_RECT));
        // Split inside the copy's source: the update has not ended yet.
        m.extend([0, 0]);
        g.server_sent(&m).unwrap();
        assert_eq!(g.updates().ended, 0);
        assert_eq!(g.updates().area, 22);
        g.server_sent(&[0, 0]).unwrap();
        let mut m = update(0xffff);
        m.extend(rect(0, 0, 1, 1, RAW));
        m.extend([0; 4]);
        m.extend(rect(0, 0, 0, 0, LAST_RECT));
        m.extend(update(0));
        g.server_sent(&m).unwrap();
        let u = g.updates();
        assert_eq!(
            (u.ended, u.area, u.at_end_before, u.at_last_end),
            (3, 23, 23, 23)
        );
    }

    #[test]
    fn last_rect_ends_an_update_and_unknown_messages_are_refused() {
        let mut g = connected(64, 48);
        g.client_sent(&set_encodings(&[RAW, LAST_RECT])).unwrap();
        let mut m = update(0xffff);
        m.extend(rect(0, 0, 1, 1, RAW));
        m.extend([0; 4]);
        m.extend(rect(0, 0, 0, 0, LAST_RECT));
        m.push(2);
        g.server_sent(&m).unwrap();
        assert_eq!(g.server_sent(&[77]), Err(GuardError::UnknownMessage(77)));
        // The refusal sticks.
        assert_eq!(g.server_sent(&[2]), Err(GuardError::UnknownMessage(77)));
    }
}
