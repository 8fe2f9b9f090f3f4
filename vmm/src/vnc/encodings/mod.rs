//! Rectangle encodings and pseudo-encodings of FramebufferUpdate.

pub mod copyrect;
mod deflater;
pub mod palette;
pub mod pseudo;
pub mod raw;
pub mod tight;
pub mod zrle;

use super::proto::Rect;

/// Appends a rectangle header.
pub fn put_header(out: &mut Vec<u8>, r: Rect, encoding: i32) {
    out.extend_from_slice(&r.x.to_be_bytes());
    out.extend_from_slice(&r.y.to_be_bytes());
    out.extend_from_slice(&r.w.to_be_bytes());
    out.extend_from_slice(&r.h.to_be_bytes());
    out.extend_from_slice(&encoding.to_be_bytes());
}
