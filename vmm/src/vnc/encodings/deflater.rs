//! A persistent zlib stream for ZRLE and Tight that stops compressing data zlib cannot shrink.
//!
//! Noise, video and already-compressed pictures come out of deflate no smaller than they went
//! in, yet cost it 30 ms per megabyte at level 3, and the client as much again to inflate.
//! Data the caller marks as possibly incompressible is therefore deflated in pieces, each
//! piece's ratio measured; once a piece saves less than 1/[`MIN_SAVING`], the stream switches
//! to stored blocks (a copy on both ends) and deflates a sample piece again every
//! [`PROBE_EVERY`] stored bytes, so content that becomes compressible again is noticed.
//!
//! Stored blocks are written here rather than by zlib at level 0: zlib-rs cannot change a
//! stream's level once it has run. The stream is raw deflate behind a zlib header written
//! here; after stored data the compressor is given that data's last 32 KiB as its dictionary,
//! so its window matches the client's again. The client sees one ordinary zlib stream.

use flate2::{Compress, Compression, FlushCompress};

/// Input deflated between measurements of possibly incompressible data.
const PIECE: usize = 64 * 1024;
/// Stored bytes after which a piece is deflated at the stream's level again, to look.
const PROBE_EVERY: usize = 2 << 20;
/// A piece must shrink by at least 1/32 (3 %) for deflate to be worth its CPU.
const MIN_SAVING: usize = 32;
/// Deflate's window: how far back a match may reach.
const WINDOW: usize = 32 * 1024;
/// CMF/FLG of a zlib stream with a 32 KiB window (FCHECK makes it a multiple of 31).
const ZLIB_HEADER: [u8; 2] = [0x78, 0x9c];

pub(crate) struct Deflater {
    z: Compress,
    header_sent: bool,
    /// Pieces are going out as stored blocks.
    storing: bool,
    /// The compressor could not take the stored data as its dictionary: store from now on
    /// (always decodable, just larger).
    store_only: bool,
    /// Bytes stored since the last sample at the stream's level.
    since_probe: usize,
    /// The last [`WINDOW`] bytes stored, the compressor's dictionary when it resumes.
    tail: Vec<u8>,
}

impl Deflater {
    pub fn new(level: u32) -> Deflater {
        Deflater {
            z: Compress::new(Compression::new(level.min(9)), false),
            header_sent: false,
            storing: false,
            store_only: false,
            since_probe: 0,
            tail: Vec::new(),
        }
    }

    /// Appends `input` to the stream and sync-flushes it into `out`, so the client can decode
    /// everything sent so far while the stream (and its dictionary) lives on.
    /// `may_be_incompressible` lets the stream store pieces that deflate does not shrink;
    /// anything else is deflated at the stream's level.
    pub fn compress(&mut self, input: &[u8], out: &mut Vec<u8>, may_be_incompressible: bool) {
        if !self.header_sent {
            out.extend_from_slice(&ZLIB_HEADER);
            self.header_sent = true;
        }
        if !may_be_incompressible {
            if self.resume() {
                deflate_sync(&mut self.z, input, out);
            } else {
                self.store(input, out);
            }
            return;
        }
        for piece in input.chunks(PIECE) {
            if self.store_only || (self.storing && self.since_probe < PROBE_EVERY) {
                self.store(piece, out);
                self.since_probe += piece.len();
                continue;
            }
            if !self.resume() {
                self.store(piece, out);
                continue;
            }
            let before = out.len();
            deflate_sync(&mut self.z, piece, out);
            let saved = piece.len().saturating_sub(out.len() - before);
            if saved * MIN_SAVING < piece.len() {
                self.storing = true;
                self.since_probe = 0;
                self.tail.clear();
            }
        }
    }

    /// Pieces are going out stored: what the stream last saw was beyond zlib.
    pub fn storing(&self) -> bool {
        self.storing || self.store_only
    }

    /// Appends `data` as stored blocks; the stream is byte-aligned after every sync flush
    /// and after every stored block.
    fn store(&mut self, data: &[u8], out: &mut Vec<u8>) {
        out.reserve(data.len() + data.len() / 65535 * 5 + 5);
        for block in data.chunks(usize::from(u16::MAX)) {
            let len = block.len() as u16;
            // BFINAL 0, BTYPE 00, then padding to the byte boundary: one zero byte.
            out.push(0);
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(&(!len).to_le_bytes());
            out.extend_from_slice(block);
        }
        let keep = data.len().min(WINDOW);
        self.tail.extend_from_slice(&data[data.len() - keep..]);
        if self.tail.len() > WINDOW {
            self.tail.drain(..self.tail.len() - WINDOW);
        }
        self.storing = true;
    }

    /// Makes the compressor ready to deflate after stored data; false if it cannot be.
    fn resume(&mut self) -> bool {
        if self.store_only {
            return false;
        }
        if self.storing {
            self.storing = false;
            // The compressor is flushed (lookahead empty), which raw deflate needs here.
            if !self.tail.is_empty() && self.z.set_dictionary(&self.tail).is_err() {
                self.store_only = true;
                return false;
            }
            self.tail.clear();
        }
        true
    }
}

/// Compresses `input` into `out` with a sync flush.
fn deflate_sync(z: &mut Compress, input: &[u8], out: &mut Vec<u8>) {
    let mut consumed = 0usize;
    loop {
        let remaining = input.len() - consumed;
        out.reserve(4096.max(remaining + remaining / 8 + 64));
        let before_in = z.total_in();
        // zlib accepts any bytes; an error would mean a broken stream state, and then the
        // client sees a corrupt rectangle rather than us looping.
        if z.compress_vec(&input[consumed..], out, FlushCompress::Sync)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vnc::synthetic::Rng;

    fn inflate_all(z: &mut flate2::Decompress, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(data.len() * 8 + 1024);
        let mut at = 0;
        while at < data.len() {
            out.reserve(64 * 1024);
            let before = z.total_in();
            z.decompress_vec(&data[at..], &mut out, flate2::FlushDecompress::Sync)
                .unwrap();
            at += (z.total_in() - before) as usize;
        }
        out
    }

    /// Noise, then text-like bytes, then noise again, through one stream: every call
    /// decodes to its input, noise goes out stored (barely larger than itself), and text is
    /// compressed again once a probe sees it.
    #[test]
    fn stores_noise_compresses_the_rest_and_stays_one_stream() {
        let mut rng = Rng::new(1);
        let noise: Vec<u8> = (0..300_000).map(|_| rng.next_u64() as u8).collect();
        let text: Vec<u8> = (0..300_000u32)
            .map(|i| b"hello, world "[(i % 13) as usize])
            .collect();
        let mut d = Deflater::new(3);
        let mut inf = flate2::Decompress::new(true);
        let mut sizes = Vec::new();
        let calls: Vec<(&[u8], bool)> = vec![
            (&noise, true),
            (&noise, true),
            (&text, false),
            (&noise, true),
        ];
        for (input, hint) in calls {
            let mut out = Vec::new();
            d.compress(input, &mut out, hint);
            assert_eq!(inflate_all(&mut inf, &out), input);
            sizes.push(out.len());
        }
        assert!(sizes[1] < noise.len() + noise.len() / 500, "{sizes:?}");
        assert!(sizes[2] < text.len() / 50, "{sizes:?}");
        assert!(d.storing, "noise after text goes back to stored");

        // Text marked as possibly incompressible while storing: stored until the next
        // probe, then compressed.
        let mut out = Vec::new();
        let long_text: Vec<u8> = text.iter().cycle().take(PROBE_EVERY * 2).copied().collect();
        d.compress(&long_text, &mut out, true);
        assert_eq!(inflate_all(&mut inf, &out), long_text);
        assert!(!d.storing);
        assert!(out.len() < PROBE_EVERY + PROBE_EVERY / 10, "{}", out.len());
    }
}
