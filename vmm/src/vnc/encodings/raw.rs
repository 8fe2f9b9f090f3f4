//! Raw encoding (0): pixels in the client's format, row by row.

use super::put_header;
use crate::vnc::dirty::Frame;
use crate::vnc::pixel::PixelWriter;
use crate::vnc::proto::{encoding, Rect};

/// Appends one Raw rectangle (header included).
pub fn encode(pw: &PixelWriter, fb: &Frame, r: Rect, out: &mut Vec<u8>) {
    put_header(out, r, encoding::RAW);
    out.reserve(usize::from(r.w) * usize::from(r.h) * pw.bytes_per_pixel());
    for y in usize::from(r.y)..usize::from(r.y) + usize::from(r.h) {
        pw.put_row(out, fb.row(usize::from(r.x), y, usize::from(r.w)));
    }
}
