//! Fuzzes the qcow2 parser as the VMM uses it: the input becomes a file that is opened through
//! `DiskImage::open` with the qcow2 format and no backing chain declared (a downloaded image on a
//! disk whose definition declares none; read-write for inputs of odd length, which loads the
//! refcount table too), then a few sectors are read. Checks that nothing panics and that an image
//! whose header names a backing file or asks for an external data file never opens.
//!
//! The VMM contains a panic of imago's header parser (the image is refused), so libFuzzer's
//! abort-on-any-panic hook is replaced by one that only prints where: such a contained panic is
//! not a crash, while a panic that escapes `DiskImage::open` or the reads still aborts (in
//! libfuzzer-sys's wrapper).
//!
//! Guest writes are left out: imago 0.2.6's allocator trusts the image's refcounts, so an image
//! whose refcount table does not account for its own metadata (a zeroed table, or one placed past
//! the end of the file) has its header overwritten and then recurses without bound on the first
//! allocating write (Allocator::ensure_rb -> allocate_clusters -> allocate_cluster_at ->
//! ensure_rb), a stack overflow this target would find within a minute.
//!
//! An input that starts with the qcow2 magic is the file itself. Any other input is XORed over
//! `seeds/qcow2_open.qcow2` (and extends it when longer), so that the fuzzer starts from a valid
//! image instead of having to find the header's every field: that seed is a 1 MiB image with
//! 512-byte clusters made by `qemu-img create -f qcow2 -o cluster_size=512` and
//! `qemu-io -c 'write -P 0xab 0 1k' -c 'write -c -P 0xcd 4k 512' -c 'write -z 8k 1k'
//! -c 'write -P 0x11 512k 512'` (plain, compressed, zero and far clusters).
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use vireo_vmm::virtio::block::image::{DiskFormat, DiskImage, ImageOptions};

const SCRATCH: &str = "vireo-fuzz-qcow2-";

/// One file per fuzzing process, rewritten for every input. libFuzzer ends with exit(), so the
/// directories of earlier runs whose process is gone are removed here instead.
fn image_path() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let tmp = std::env::temp_dir();
        for e in std::fs::read_dir(&tmp).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(pid) = name.strip_prefix(SCRATCH) {
                if !PathBuf::from(format!("/proc/{pid}")).exists() {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        let dir = tmp.join(format!("{SCRATCH}{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("fuzz scratch directory");
        dir.join("image.qcow2")
    })
}

const SEED: &[u8] = include_bytes!("../seeds/qcow2_open.qcow2");

/// The file an input stands for (see the module documentation).
fn image_bytes(data: &[u8]) -> Vec<u8> {
    if data.starts_with(b"QFI\xfb") {
        return data.to_vec();
    }
    let mut out = SEED.to_vec();
    for (i, b) in data.iter().enumerate() {
        match out.get_mut(i) {
            Some(o) => *o ^= b,
            None => out.push(*b),
        }
    }
    out
}

fn be64(data: &[u8], at: usize) -> u64 {
    data.get(at..at + 8)
        .map_or(0, |b| u64::from_be_bytes(b.try_into().unwrap_or([0; 8])))
}

fuzz_target!(|data: &[u8]| {
    static HOOK: OnceLock<()> = OnceLock::new();
    HOOK.get_or_init(|| std::panic::set_hook(Box::new(|info| eprintln!("{info}"))));
    let path = image_path();
    let file = image_bytes(data);
    if std::fs::write(path, &file).is_err() {
        return;
    }
    let writable = data.len() % 2 == 1;
    let opts = ImageOptions {
        path: path.clone(),
        format: DiskFormat::Qcow2,
        read_only: !writable,
        shareable: false,
        backing: Vec::new(),
    };
    let Ok(mut image) = DiskImage::open(&opts) else {
        return;
    };
    // Header fields (big-endian): backing_file_offset at 8, and in v3 incompatible_features at 72,
    // whose bit 2 is "external data file".
    assert_eq!(
        be64(&file, 8),
        0,
        "opened an image that names a backing file"
    );
    if u32::from_be_bytes([file[4], file[5], file[6], file[7]]) >= 3 {
        assert_eq!(
            be64(&file, 72) & 4,
            0,
            "opened an image that needs an external data file"
        );
    }
    let d = &mut image.backend;
    let size = d.size();
    let mut buf = [0u8; 4096];
    for at in [0, size / 2, size.saturating_sub(4096)] {
        let at = at & !511;
        let len = (size - at).min(buf.len() as u64) as usize;
        let _ = d.read_at(&mut buf[..len], at);
    }
});
