//! `screendump`: the framebuffer as a PNG file.

use std::path::{Path, PathBuf};

use super::FramebufferSource;

#[derive(Debug, thiserror::Error)]
pub enum ScreendumpError {
    #[error("screendump {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("screendump {path}: PNG encoding failed: {source}")]
    Png {
        path: PathBuf,
        source: png::EncodingError,
    },
}

/// RGB bytes of the whole framebuffer, row-major.
pub fn rgb(source: &dyn FramebufferSource) -> (u32, u32, Vec<u8>) {
    let (w, h) = source.size();
    let mut row = vec![0u32; w as usize];
    let mut out = Vec::with_capacity(w as usize * h as usize * 3);
    for y in 0..h {
        source.read_pixels(0, y, &mut row);
        for &p in &row {
            out.extend_from_slice(&[(p >> 16) as u8, (p >> 8) as u8, p as u8]);
        }
    }
    (w, h, out)
}

/// Writes the current screen to `path` as an 8-bit RGB PNG (via a temporary file, so a
/// reader never sees half a picture).
pub fn write_png(source: &dyn FramebufferSource, path: &Path) -> Result<(), ScreendumpError> {
    let (w, h, data) = rgb(source);
    let io = |source| ScreendumpError::Io {
        path: path.to_path_buf(),
        source,
    };
    let pngerr = |source| ScreendumpError::Png {
        path: path.to_path_buf(),
        source,
    };
    let tmp = path.with_extension("png.tmp");
    let file = std::fs::File::create(&tmp).map_err(io)?;
    let mut enc = png::Encoder::new(std::io::BufWriter::new(file), w, h);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    enc.set_compression(png::Compression::Fast);
    let mut writer = enc.write_header().map_err(pngerr)?;
    writer.write_image_data(&data).map_err(pngerr)?;
    writer.finish().map_err(pngerr)?;
    std::fs::rename(&tmp, path).map_err(io)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vnc::MemFramebuffer;

    #[test]
    fn png_round_trip() {
        let fb = MemFramebuffer::new(20, 10);
        fb.fill_rect(3, 4, 2, 1, 0x00ff_8001);
        let dir = std::env::temp_dir().join(format!("vireo-sd-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s.png");
        write_png(&fb, &path).unwrap();
        let dec = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&path).unwrap()));
        let mut r = dec.read_info().unwrap();
        let mut buf = vec![0; r.output_buffer_size()];
        let info = r.next_frame(&mut buf).unwrap();
        assert_eq!((info.width, info.height), (20, 10));
        let at = (4 * 20 + 3) * 3;
        assert_eq!(&buf[at..at + 3], &[0xff, 0x80, 0x01]);
        assert_eq!(&buf[0..3], &[0, 0, 0]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
