//! Pseudo-encodings: rectangles that carry state rather than pixels.

use super::put_header;
use crate::vnc::pixel::PixelWriter;
use crate::vnc::proto::{encoding, Rect};

/// DesktopSize (-223): the framebuffer is now `w` x `h`.
pub fn desktop_size(out: &mut Vec<u8>, w: u16, h: u16) {
    put_header(out, Rect { x: 0, y: 0, w, h }, encoding::DESKTOP_SIZE);
}

/// Why an ExtendedDesktopSize rectangle is sent (its x field).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResizeReason {
    Server = 0,
    ThisClient = 1,
    OtherClient = 2,
}

/// Result of a SetDesktopSize request (the y field).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResizeStatus {
    Ok = 0,
    Prohibited = 1,
}

/// ExtendedDesktopSize (-308) with one screen covering the whole framebuffer.
pub fn extended_desktop_size(
    out: &mut Vec<u8>,
    reason: ResizeReason,
    status: ResizeStatus,
    w: u16,
    h: u16,
) {
    put_header(
        out,
        Rect {
            x: reason as u16,
            y: status as u16,
            w,
            h,
        },
        encoding::EXTENDED_DESKTOP_SIZE,
    );
    out.extend_from_slice(&[1, 0, 0, 0]);
    out.extend_from_slice(&0u32.to_be_bytes()); // screen id
    out.extend_from_slice(&0u16.to_be_bytes());
    out.extend_from_slice(&0u16.to_be_bytes());
    out.extend_from_slice(&w.to_be_bytes());
    out.extend_from_slice(&h.to_be_bytes());
    out.extend_from_slice(&0u32.to_be_bytes()); // flags
}

/// LastRect (-224): ends an update whose rectangle count was sent as 0xFFFF.
pub fn last_rect(out: &mut Vec<u8>) {
    put_header(out, Rect::default(), encoding::LAST_RECT);
}

/// QEMU Extended Key Event (-258): tells the client it may send raw scancodes.
pub fn qemu_extended_key_ack(out: &mut Vec<u8>) {
    put_header(out, Rect::default(), encoding::QEMU_EXTENDED_KEY_EVENT);
}

/// QEMU LED state (-261): bit 0 Scroll Lock, bit 1 Num Lock, bit 2 Caps Lock.
pub fn qemu_led_state(out: &mut Vec<u8>, leds: u8) {
    put_header(out, Rect::default(), encoding::QEMU_LED_STATE);
    out.push(leds & 7);
}

/// A cursor shape: ARGB pixels (alpha 0 means transparent), hotspot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CursorImage {
    pub width: u16,
    pub height: u16,
    pub hot_x: u16,
    pub hot_y: u16,
    pub argb: Vec<u32>,
}

impl CursorImage {
    /// A small black-outlined white arrow, for guests without a cursor of their own
    /// (the text console).
    pub fn arrow() -> CursorImage {
        const ART: [&str; 16] = [
            "X          ",
            "XX         ",
            "X.X        ",
            "X..X       ",
            "X...X      ",
            "X....X     ",
            "X.....X    ",
            "X......X   ",
            "X.......X  ",
            "X........X ",
            "X.....XXXXX",
            "X..X..X    ",
            "X.X X..X   ",
            "XX  X..X   ",
            "X    X..X  ",
            "     XXXX  ",
        ];
        let (w, h) = (11u16, ART.len() as u16);
        let argb = ART
            .iter()
            .flat_map(|row| {
                row.bytes().map(|c| match c {
                    b'X' => 0xff00_0000,
                    b'.' => 0xffff_ffff,
                    _ => 0,
                })
            })
            .collect();
        CursorImage {
            width: w,
            height: h,
            hot_x: 0,
            hot_y: 0,
            argb,
        }
    }
}

/// Cursor (-239): pixels in the client's format, then a 1-bit mask.
pub fn cursor(out: &mut Vec<u8>, pw: &PixelWriter, c: &CursorImage) {
    put_header(
        out,
        Rect {
            x: c.hot_x,
            y: c.hot_y,
            w: c.width,
            h: c.height,
        },
        encoding::CURSOR,
    );
    let (w, h) = (usize::from(c.width), usize::from(c.height));
    for &p in c.argb.iter().take(w * h) {
        pw.put(out, p & 0x00ff_ffff);
    }
    let stride = w.div_ceil(8);
    for y in 0..h {
        let mut row = vec![0u8; stride];
        for x in 0..w {
            if c.argb.get(y * w + x).is_some_and(|p| p >> 24 >= 0x80) {
                row[x / 8] |= 0x80 >> (x % 8);
            }
        }
        out.extend_from_slice(&row);
    }
}
