//! UEFI firmware as QEMU's pc machine takes it: a flash image cut in two, the code (read-only,
//! shared by every machine) and the variable store (one per machine), mapped back to back so
//! that together they end at 4 GiB where the image was built to sit. Both halves are checked
//! before a VM is built: each is a UEFI firmware volume, and together they make an image of
//! the size the firmware was built for.

use std::io::Read;
use std::path::{Path, PathBuf};

/// Flash is erased and written in blocks of this size; both halves are whole blocks.
pub const FLASH_BLOCK: u64 = 4096;
/// The largest image taken: 8 MiB below 4 GiB is free of other devices on the pc machine
/// (QEMU's limit is the same).
pub const FLASH_MAX: u64 = 8 << 20;

/// Where a firmware volume header keeps its signature, and the signature.
const FVH_SIGNATURE_AT: usize = 0x28;
const FVH_SIGNATURE: &[u8; 4] = b"_FVH";

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum FlashError {
    #[error("{what} {path}: {reason}")]
    File {
        what: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error(
        "{what} {path}: not a UEFI flash image (no firmware volume header); UEFI needs OVMF's \
         split images, e.g. /usr/share/OVMF/OVMF_CODE_4M.fd with a copy of OVMF_VARS_4M.fd"
    )]
    NotFlash { what: &'static str, path: PathBuf },
    #[error(
        "{what} {path}: {size} bytes is not a whole number of {FLASH_BLOCK}-byte flash blocks"
    )]
    Blocks {
        what: &'static str,
        path: PathBuf,
        size: u64,
    },
    #[error(
        "nvram {vars}: this variable store ({vars_kib} KiB) does not go with the code in \
         {code} ({code_kib} KiB): together they must make the 1, 2, 4 or 8 MiB image they \
         were cut from; use the OVMF_VARS file of the same build (OVMF_VARS_4M.fd with \
         OVMF_CODE_4M.fd)"
    )]
    Pair {
        code: PathBuf,
        vars: PathBuf,
        code_kib: u64,
        vars_kib: u64,
    },
}

/// The size of `path`, checked to be a whole number of flash blocks starting with a firmware
/// volume header.
fn check_half(what: &'static str, path: &Path) -> Result<u64, FlashError> {
    let file_err = |reason: String| FlashError::File {
        what,
        path: path.to_owned(),
        reason,
    };
    let f = std::fs::File::open(path).map_err(|e| file_err(e.to_string()))?;
    let meta = f.metadata().map_err(|e| file_err(e.to_string()))?;
    if !meta.is_file() {
        return Err(file_err("not a regular file".into()));
    }
    let size = meta.len();
    if size == 0 || size % FLASH_BLOCK != 0 {
        return Err(FlashError::Blocks {
            what,
            path: path.to_owned(),
            size,
        });
    }
    let mut head = [0u8; FVH_SIGNATURE_AT + 4];
    let got = f
        .take(head.len() as u64)
        .read(&mut head)
        .map_err(|e| file_err(e.to_string()))?;
    if got < head.len() || &head[FVH_SIGNATURE_AT..] != FVH_SIGNATURE {
        return Err(FlashError::NotFlash {
            what,
            path: path.to_owned(),
        });
    }
    Ok(size)
}

/// Checks a code image and a variable store as a pair; returns their sizes.
pub fn check_pair(code: &Path, vars: &Path) -> Result<(u64, u64), FlashError> {
    let code_size = check_half("loader", code)?;
    let vars_size = check_half("nvram", vars)?;
    let total = code_size + vars_size;
    if !total.is_power_of_two() || !((1 << 20)..=FLASH_MAX).contains(&total) {
        return Err(FlashError::Pair {
            code: code.to_owned(),
            vars: vars.to_owned(),
            code_kib: code_size >> 10,
            vars_kib: vars_size >> 10,
        });
    }
    Ok((code_size, vars_size))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(dir: &Path, name: &str, size: usize, fv: bool) -> PathBuf {
        let mut b = vec![0u8; size];
        if fv && size >= FVH_SIGNATURE_AT + 4 {
            b[FVH_SIGNATURE_AT..FVH_SIGNATURE_AT + 4].copy_from_slice(FVH_SIGNATURE);
        }
        let p = dir.join(name);
        std::fs::write(&p, b).unwrap();
        p
    }

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("vireo-flash-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn a_matching_pair_passes() {
        let d = dir("ok");
        let code = image(&d, "code.fd", 0x37c000, true);
        let vars = image(&d, "vars.fd", 0x84000, true);
        assert_eq!(check_pair(&code, &vars), Ok((0x37c000, 0x84000)));
    }

    #[test]
    fn a_bios_image_a_mismatched_store_and_partial_blocks_get_one_line_each() {
        let d = dir("bad");
        let bios = image(&d, "bios-256k.bin", 256 << 10, false);
        let code = image(&d, "code.fd", 0x37c000, true);
        let vars2m = image(&d, "vars2m.fd", 0x20000, true);
        let odd = image(&d, "odd.fd", 0x84001, true);
        let e = check_pair(&bios, &vars2m).unwrap_err().to_string();
        assert!(
            e.starts_with("loader ") && e.contains("not a UEFI flash image"),
            "{e}"
        );
        let e = check_pair(&code, &vars2m).unwrap_err().to_string();
        assert!(e.contains("does not go with the code"), "{e}");
        assert!(e.contains("128 KiB") && e.contains("3568 KiB"), "{e}");
        let e = check_pair(&code, &odd).unwrap_err().to_string();
        assert!(e.starts_with("nvram ") && e.contains("flash blocks"), "{e}");
        let e = check_pair(&code, &d.join("missing.fd"))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("nvram ") && e.contains("No such file"), "{e}");
        assert!(!e.contains('\n'));
    }
}
