//! The labels an ISO 9660 image carries in its primary volume descriptor: what libosinfo
//! matches installer media by. Read from the image file the user named, never guessed from
//! anything else; every offset below is fixed by ECMA-119, and the descriptor is checked
//! before a field is read.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// The primary volume descriptor is the first of the set at logical sector 16.
const PVD_OFFSET: u64 = 16 * 2048;
/// The length of one volume descriptor.
pub const PVD_LEN: usize = 2048;

/// The identifiers of an ISO image, trailing spaces removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IsoLabels {
    pub system_id: String,
    pub volume_id: String,
    pub publisher_id: String,
    pub application_id: String,
    /// The volume's size in bytes (space size times logical block size).
    pub volume_size: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum IsoError {
    #[error("{path}: cannot read the ISO 9660 volume descriptor at byte 32768: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not an ISO 9660 image: {why}")]
    NotIso { path: PathBuf, why: &'static str },
}

impl IsoLabels {
    /// Reads the labels of the image at `path`.
    pub fn read(path: &Path) -> Result<IsoLabels, IsoError> {
        let io = |source| IsoError::Io {
            path: path.to_owned(),
            source,
        };
        let mut f = std::fs::File::open(path).map_err(io)?;
        f.seek(SeekFrom::Start(PVD_OFFSET)).map_err(io)?;
        let mut pvd = vec![0u8; PVD_LEN];
        f.read_exact(&mut pvd).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                IsoError::NotIso {
                    path: path.to_owned(),
                    why: "the file ends before its volume descriptors",
                }
            } else {
                io(e)
            }
        })?;
        IsoLabels::parse(&pvd).map_err(|why| IsoError::NotIso {
            path: path.to_owned(),
            why,
        })
    }

    /// Parses one primary volume descriptor (`PVD_LEN` bytes).
    pub fn parse(pvd: &[u8]) -> Result<IsoLabels, &'static str> {
        if pvd.len() < PVD_LEN {
            return Err("the volume descriptor is cut short");
        }
        if &pvd[1..6] != b"CD001" {
            return Err("no CD001 signature at byte 32769");
        }
        if pvd[0] != 1 || pvd[6] != 1 {
            return Err("the first volume descriptor is not a primary one (type 1, version 1)");
        }
        let text = |range: std::ops::Range<usize>| {
            String::from_utf8_lossy(&pvd[range])
                .trim_end_matches([' ', '\0'])
                .to_owned()
        };
        let le32 = |at: usize| u32::from_le_bytes([pvd[at], pvd[at + 1], pvd[at + 2], pvd[at + 3]]);
        let block = u64::from(u16::from_le_bytes([pvd[128], pvd[129]]));
        Ok(IsoLabels {
            system_id: text(8..40),
            volume_id: text(40..72),
            publisher_id: text(318..446),
            application_id: text(574..702),
            volume_size: u64::from(le32(80)) * block,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A primary volume descriptor with these labels, as mkisofs writes one.
    pub(crate) fn pvd(system: &str, volume: &str, publisher: &str, application: &str) -> Vec<u8> {
        let mut d = vec![b' '; PVD_LEN];
        d[0] = 1;
        d[1..6].copy_from_slice(b"CD001");
        d[6] = 1;
        let put =
            |d: &mut Vec<u8>, at: usize, s: &str| d[at..at + s.len()].copy_from_slice(s.as_bytes());
        put(&mut d, 8, system);
        put(&mut d, 40, volume);
        put(&mut d, 318, publisher);
        put(&mut d, 574, application);
        d[80..84].copy_from_slice(&1000u32.to_le_bytes());
        d[128..130].copy_from_slice(&2048u16.to_le_bytes());
        d
    }

    #[test]
    fn the_labels_come_out_trimmed_with_the_volume_size() {
        let l = IsoLabels::parse(&pvd("LINUX", "Debian 11.5.0 amd64 n", "", "")).unwrap();
        assert_eq!(l.system_id, "LINUX");
        assert_eq!(l.volume_id, "Debian 11.5.0 amd64 n");
        assert_eq!(l.publisher_id, "");
        assert_eq!(l.volume_size, 2048 * 1000);
    }

    #[test]
    fn other_files_are_refused_with_the_reason() {
        assert!(IsoLabels::parse(&[0u8; 10]).is_err());
        let mut d = pvd("LINUX", "X", "", "");
        d[1] = b'X';
        assert_eq!(
            IsoLabels::parse(&d),
            Err("no CD001 signature at byte 32769")
        );
        let dir = std::env::temp_dir().join(format!("vireo-iso-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let small = dir.join("small.img");
        std::fs::write(&small, b"not an iso").unwrap();
        let e = IsoLabels::read(&small).unwrap_err().to_string();
        assert!(
            e.contains("small.img") && e.contains("not an ISO 9660 image"),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
