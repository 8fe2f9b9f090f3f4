//! Fuzzes the UEFI variable store's flash chip as a guest drives it: any sequence of reads and
//! writes of 1-8 bytes at any offset (inside the chip and past its end), mostly the commands
//! the chip knows. The chip never panics, and afterwards, back in array mode, what the guest
//! reads is exactly what its file holds (every program and erase reached both).
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::io::Write;
use vireo_vmm::devices::bus::BusDevice;
use vireo_vmm::devices::pflash::{Pflash, BLOCK_SIZE};

const BLOCKS: u64 = 4;

fuzz_target!(|data: &[u8]| {
    let Ok(mut f) = tempfile() else {
        return;
    };
    let size = (BLOCKS * BLOCK_SIZE) as usize;
    let initial: Vec<u8> = (0..size).map(|i| (i % 253) as u8).collect();
    if f.write_all(&initial).is_err() {
        return;
    }
    let Ok(file) = f.try_clone() else {
        return;
    };
    let Ok(mut chip) = Pflash::new(file) else {
        return;
    };
    for op in data.chunks(4) {
        let [kind, a, b, v] = match *op {
            [k, a, b, v] => [k, a, b, v],
            _ => break,
        };
        // Offsets mostly inside the chip, sometimes just past it.
        let offset = (u64::from(a) << 8 | u64::from(b)) * 5 % (BLOCKS * BLOCK_SIZE + 64);
        let len = [1usize, 2, 4, 8][usize::from(kind >> 6)];
        if kind & 1 == 0 {
            let mut buf = vec![0u8; len];
            chip.read(0, offset, &mut buf);
        } else {
            // Mostly the commands the chip knows, sometimes anything.
            let value = match kind >> 1 & 7 {
                0 => 0x10,
                1 => 0x20,
                2 => 0x50,
                3 => 0x70,
                4 => 0xd0,
                5 => 0xff,
                _ => v,
            };
            let mut buf = vec![value; len];
            buf[0] = value;
            chip.write(0, offset, &buf);
        }
    }
    // Back to array mode: a pending program takes the first 0xFF as its data and an erase
    // waiting for its confirmation takes it as a sequence error; the second is READ ARRAY
    // in every state. The chip's view must then be the file's.
    chip.write(0, 0, &[0xff]);
    chip.write(0, 0, &[0xff]);
    let mut seen = vec![0u8; size];
    for (i, chunk) in seen.chunks_mut(8).enumerate() {
        chip.read(0, i as u64 * 8, chunk);
    }
    let mut on_disk = vec![0u8; size];
    use std::os::unix::fs::FileExt;
    if f.read_exact_at(&mut on_disk, 0).is_ok() {
        assert_eq!(seen, on_disk, "the chip and its file differ");
    }
});

fn tempfile() -> std::io::Result<std::fs::File> {
    let dir = std::env::temp_dir();
    let path = dir.join(format!("vireo-fuzz-pflash-{}", std::process::id()));
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)?;
    // Unlinked at once: the descriptor keeps it, nothing is left behind.
    let _ = std::fs::remove_file(&path);
    Ok(f)
}
