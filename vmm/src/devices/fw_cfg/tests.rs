//! fw_cfg unit tests: port reads, the directory, DMA read/skip/select/write and its errors.

use super::dma::{CTL_ERROR, CTL_READ, CTL_SELECT, CTL_SKIP, CTL_WRITE};
use super::files::{KEY_FILE_DIR, KEY_ID, KEY_NB_CPUS};
use super::*;
use std::sync::{Arc, Mutex};
use vm_memory::{Bytes, GuestAddress};

const MEM: usize = 0x10000;
const ACCESS: u64 = 0x1000;
const BUF: u64 = 0x2000;

struct Recorder(Arc<Mutex<Vec<Vec<u8>>>>);
impl FwCfgWriteHook for Recorder {
    fn written(&mut self, content: &[u8]) {
        self.0.lock().unwrap().push(content.to_vec());
    }
}

fn device() -> (FwCfg, Arc<Mutex<Vec<Vec<u8>>>>) {
    let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), MEM)]).unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut b = FwCfgBuilder::new();
    b.legacy(KEY_NB_CPUS, 2u16.to_le_bytes().to_vec()).unwrap();
    b.file("bootorder", b"/virtio-mmio@00000000d8000000/*\n".to_vec())
        .unwrap();
    b.file("etc/numbers", (0u8..100).collect()).unwrap();
    b.writable_file("etc/ramfb", vec![0; 28], Box::new(Recorder(seen.clone())))
        .unwrap();
    (FwCfg::new(b, mem), seen)
}

fn select(d: &mut FwCfg, key: u16) {
    d.write(u64::from(SELECTOR_PORT), 0, &key.to_le_bytes());
}

fn read_port(d: &mut FwCfg, n: usize) -> Vec<u8> {
    (0..n)
        .map(|_| {
            let mut b = [0u8];
            d.read(u64::from(SELECTOR_PORT), 1, &mut b);
            b[0]
        })
        .collect()
}

/// Writes a FWCfgDmaAccess at ACCESS and starts it through the two BE32 halves.
fn dma(d: &mut FwCfg, control: u32, len: u32, addr: u64) -> u32 {
    let mut raw = Vec::new();
    raw.extend(control.to_be_bytes());
    raw.extend(len.to_be_bytes());
    raw.extend(addr.to_be_bytes());
    d.mem.write_slice(&raw, GuestAddress(ACCESS)).unwrap();
    d.write(u64::from(DMA_PORT), 0, &0u32.to_be_bytes());
    d.write(u64::from(DMA_PORT), 4, &(ACCESS as u32).to_be_bytes());
    let mut c = [0u8; 4];
    d.mem.read_slice(&mut c, GuestAddress(ACCESS)).unwrap();
    u32::from_be_bytes(c)
}

fn guest(d: &FwCfg, at: u64, n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    d.mem.read_slice(&mut v, GuestAddress(at)).unwrap();
    v
}

#[test]
fn signature_features_and_legacy_keys_through_the_ports() {
    let (mut d, _) = device();
    select(&mut d, 0);
    assert_eq!(read_port(&mut d, 6), b"QEMU\0\0");
    select(&mut d, KEY_ID);
    assert_eq!(read_port(&mut d, 4), [3, 0, 0, 0], "traditional | DMA");
    select(&mut d, KEY_NB_CPUS);
    assert_eq!(read_port(&mut d, 2), [2, 0]);
    select(&mut d, 0x1234);
    assert_eq!(read_port(&mut d, 3), [0, 0, 0], "unknown key reads zeros");
    // A byte-wide selector write is not a selection.
    select(&mut d, 0);
    d.write(u64::from(SELECTOR_PORT), 0, &[1]);
    assert_eq!(read_port(&mut d, 1), b"Q");
    let mut sig = [0u8; 4];
    d.read(u64::from(DMA_PORT), 0, &mut sig);
    assert_eq!(&sig, b"QEMU");
    d.read(u64::from(DMA_PORT), 4, &mut sig);
    assert_eq!(&sig, b" CFG");
}

#[test]
fn directory_lists_files_and_each_file_reads_back() {
    let (mut d, _) = device();
    select(&mut d, KEY_FILE_DIR);
    let count = read_port(&mut d, 4);
    assert_eq!(count, [0, 0, 0, 3]);
    let mut found = Vec::new();
    for _ in 0..3 {
        let e = read_port(&mut d, 64);
        let size = u32::from_be_bytes([e[0], e[1], e[2], e[3]]);
        let key = u16::from_be_bytes([e[4], e[5]]);
        let name: Vec<u8> = e[8..].iter().copied().take_while(|&b| b != 0).collect();
        found.push((String::from_utf8(name).unwrap(), size, key));
    }
    assert_eq!(found[1], ("etc/numbers".into(), 100, 0x21));
    assert_eq!(found[2], ("etc/ramfb".into(), 28, 0x22));
    select(&mut d, 0x21);
    assert_eq!(read_port(&mut d, 101)[95..], [95, 96, 97, 98, 99, 0]);
    // The write-channel bit is not part of the key.
    select(&mut d, 0x4021);
    assert_eq!(read_port(&mut d, 2), [0, 1]);
}

#[test]
fn dma_select_read_skip_and_zero_fill() {
    let (mut d, _) = device();
    let st = dma(&mut d, (0x21 << 16) | CTL_SELECT | CTL_READ, 10, BUF);
    assert_eq!(st, 0);
    assert_eq!(guest(&d, BUF, 10), (0u8..10).collect::<Vec<_>>());
    // The read position is shared with the data port.
    assert_eq!(read_port(&mut d, 1), [10]);
    assert_eq!(dma(&mut d, CTL_SKIP, 20, 0), 0);
    assert_eq!(dma(&mut d, CTL_READ, 4, BUF), 0);
    assert_eq!(guest(&d, BUF, 4), [31, 32, 33, 34]);
    // Past the end: the rest of the buffer is zeroed, as QEMU does.
    d.mem.write_slice(&[0xaa; 100], GuestAddress(BUF)).unwrap();
    assert_eq!(dma(&mut d, CTL_READ, 80, BUF), 0);
    let got = guest(&d, BUF, 100);
    assert_eq!(got[..65], (35u8..100).collect::<Vec<_>>()[..]);
    assert!(got[65..80].iter().all(|&b| b == 0));
    assert!(
        got[80..].iter().all(|&b| b == 0xaa),
        "nothing beyond the length"
    );
    // No operation bit: nothing moves, no error.
    assert_eq!(dma(&mut d, CTL_SELECT, 8, BUF), 0);
    assert_eq!(read_port(&mut d, 1), b"Q");
    // One 64-bit BE write of the register starts a transfer too.
    let mut raw = Vec::new();
    raw.extend(((KEY_ID as u32) << 16 | CTL_SELECT | CTL_READ).to_be_bytes());
    raw.extend(4u32.to_be_bytes());
    raw.extend(BUF.to_be_bytes());
    d.mem.write_slice(&raw, GuestAddress(ACCESS)).unwrap();
    d.write(u64::from(DMA_PORT), 0, &ACCESS.to_be_bytes());
    assert_eq!(guest(&d, BUF, 4), [3, 0, 0, 0]);
}

#[test]
fn dma_outside_guest_memory_sets_the_error_bit() {
    let (mut d, _) = device();
    let sel = (0x21 << 16) | CTL_SELECT;
    assert_eq!(dma(&mut d, sel | CTL_READ, 10, MEM as u64 - 4), CTL_ERROR);
    assert_eq!(dma(&mut d, sel | CTL_READ, 10, u64::MAX - 3), CTL_ERROR);
    // Zero-filling past the item: the range is checked before anything is written.
    assert_eq!(dma(&mut d, sel | CTL_READ, u32::MAX, BUF), CTL_ERROR);
    assert_eq!(
        dma(&mut d, (0x999 << 16) | CTL_SELECT | CTL_READ, 8, 1 << 40),
        CTL_ERROR
    );
    // An access block outside RAM is ignored without harm.
    d.write(u64::from(DMA_PORT), 0, &u32::MAX.to_be_bytes());
    d.write(u64::from(DMA_PORT), 4, &0xffff_fff8u32.to_be_bytes());
    // Writes to read-only items fail.
    assert_eq!(dma(&mut d, sel | CTL_WRITE, 4, BUF), CTL_ERROR);
    assert_eq!(
        dma(
            &mut d,
            (KEY_ID as u32) << 16 | CTL_SELECT | CTL_WRITE,
            4,
            BUF
        ),
        CTL_ERROR
    );
    select(&mut d, 0x21);
    assert_eq!(read_port(&mut d, 2), [0, 1], "file unchanged");
}

#[test]
fn writable_file_calls_its_hook_with_the_whole_content() {
    let (mut d, seen) = device();
    let content: Vec<u8> = (1u8..=28).collect();
    d.mem.write_slice(&content, GuestAddress(BUF)).unwrap();
    let st = dma(&mut d, (0x22 << 16) | CTL_SELECT | CTL_WRITE, 8, BUF);
    assert_eq!(st, 0);
    let mut want = vec![0u8; 28];
    want[..8].copy_from_slice(&content[..8]);
    assert_eq!(seen.lock().unwrap().last().unwrap(), &want);
    assert_eq!(dma(&mut d, CTL_WRITE, 20, BUF + 8), 0);
    assert_eq!(seen.lock().unwrap().last().unwrap(), &content);
    assert_eq!(d.file("etc/ramfb").unwrap(), &content[..]);
    // Past the file's fixed size: an error, and the hook is not called again.
    assert_eq!(dma(&mut d, CTL_WRITE, 1, BUF), CTL_ERROR);
    assert_eq!(seen.lock().unwrap().len(), 2);
    // Source outside RAM: error, content kept.
    assert_eq!(
        dma(
            &mut d,
            (0x22 << 16) | CTL_SELECT | CTL_WRITE,
            28,
            MEM as u64 - 1
        ),
        CTL_ERROR
    );
    assert_eq!(d.file("etc/ramfb").unwrap(), &content[..]);
    assert_eq!(seen.lock().unwrap().len(), 2);
}
