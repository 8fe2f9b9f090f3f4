//! Rectangle encodings and pseudo-encodings of FramebufferUpdate.

pub mod copyrect;
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

/// Compresses `input` into `out` with a sync flush, so the client can decode everything sent
/// so far while the stream (and its dictionary) lives on for the next rectangle.
pub(crate) fn deflate_sync(z: &mut flate2::Compress, input: &[u8], out: &mut Vec<u8>) {
    let mut consumed = 0usize;
    loop {
        let remaining = input.len() - consumed;
        out.reserve(4096.max(remaining + remaining / 8 + 64));
        let before_in = z.total_in();
        // zlib accepts any bytes; an error would mean a broken stream state, and then the
        // client sees a corrupt rectangle rather than us looping.
        if z.compress_vec(&input[consumed..], out, flate2::FlushCompress::Sync)
            .is_err()
        {
            break;
        }
        consumed += (z.total_in() - before_in) as usize;
        // The flush is complete once all input is in and zlib left output space unused.
        if consumed >= input.len() && out.len() < out.capacity() {
            break;
        }
    }
}
