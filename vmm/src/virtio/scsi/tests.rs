//! Whole requests through the virtio-mmio transport and the device's worker, driven the way a
//! guest driver does (crate::virtio::testing), on in-memory media.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use virtio_bindings::virtio_scsi::*;
use vm_memory::{Bytes, GuestAddress};

use super::bus::{BusUnit, GuestChange, ScsiBus};
use super::control::VIRTIO_SCSI_S_FUNCTION_COMPLETE;
use super::{Scsi, QUEUE_SIZES};
use crate::scsi::{LogicalUnit, Medium, CHECK_CONDITION, GOOD};
use crate::virtio::block::image::DiskBackend;
use crate::virtio::mmio::MmioTransport;
use crate::virtio::testing::{
    guest_memory, init_device, notify, wait_for, CountingIrq, DriverQueue, DATA_START, F_NEXT,
    F_WRITE,
};
use crate::virtio::GuestMemory;

/// A disk in memory that counts its flushes.
pub(super) struct MemDisk {
    data: Vec<u8>,
    pub flushes: Arc<AtomicU32>,
}

impl MemDisk {
    /// `size` bytes, each 2048-byte block filled with its block number (mod 256).
    pub fn new(size: usize) -> MemDisk {
        let data = (0..size).map(|i| (i / 2048) as u8).collect();
        MemDisk {
            data,
            flushes: Arc::default(),
        }
    }
}

impl DiskBackend for MemDisk {
    fn size(&self) -> u64 {
        self.data.len() as u64
    }
    fn read_at(&mut self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        let at = offset as usize;
        let src = self
            .data
            .get(at..at + buf.len())
            .ok_or(std::io::ErrorKind::UnexpectedEof)?;
        buf.copy_from_slice(src);
        Ok(())
    }
    fn write_at(&mut self, buf: &[u8], offset: u64) -> std::io::Result<()> {
        let at = offset as usize;
        let dst = self
            .data
            .get_mut(at..at + buf.len())
            .ok_or(std::io::ErrorKind::UnexpectedEof)?;
        dst.copy_from_slice(buf);
        Ok(())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.flushes.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
    fn discard(&mut self, _: u64, _: u64) -> std::io::Result<()> {
        Ok(())
    }
    fn write_zeroes(&mut self, _: u64, _: u64) -> std::io::Result<()> {
        Ok(())
    }
}

/// A directory of its own under the system's temporary directory, removed on drop.
pub(super) struct Scratch(PathBuf);

impl Scratch {
    pub fn new(tag: &str) -> Scratch {
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::SeqCst);
        let p = std::env::temp_dir().join(format!("vireo-scsi-{tag}-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&p).unwrap();
        Scratch(p)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl std::ops::Deref for Scratch {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const HDR: u64 = DATA_START;
const RESP: u64 = DATA_START + 0x1000;
const DATA: u64 = DATA_START + 0x2000;
const RESP_LEN: u32 = 108;

/// A controller with a CD-ROM (64 blocks) at target 0 LUN 0 and a disk at target 0 LUN 1,
/// running behind the transport; guest changes are collected.
struct Rig {
    t: MmioTransport,
    mem: GuestMemory,
    queues: Vec<DriverQueue>,
    changes: Arc<Mutex<Vec<GuestChange>>>,
    flushes: Arc<AtomicU32>,
}

fn rig() -> Rig {
    let iso = Medium::from_backend("/i/a.iso".into(), Box::new(MemDisk::new(64 * 2048)), true);
    let disk = MemDisk::new(1 << 20);
    let flushes = disk.flushes.clone();
    let disk = Medium::from_backend("/d/disk.img".into(), Box::new(disk), false);
    let bus = ScsiBus::new(vec![
        BusUnit {
            id: "sda".into(),
            target: 0,
            lun: 0,
            unit: LogicalUnit::cdrom(Some(iso)),
        },
        BusUnit {
            id: "sdb".into(),
            target: 0,
            lun: 1,
            unit: LogicalUnit::disk(disk),
        },
    ]);
    let changes = Arc::new(Mutex::new(Vec::new()));
    let sink = changes.clone();
    let hook: super::GuestChangeHook = Arc::new(move |c| sink.lock().unwrap().push(c));
    let scsi = Scsi::new(bus, "scsi[0]", Some(hook));
    let mem = guest_memory();
    let mut t = MmioTransport::new(
        Box::new(scsi),
        mem.clone(),
        Box::new(CountingIrq::default()),
    )
    .unwrap();
    let (_, queues) = init_device(&mut t, !0, &QUEUE_SIZES).unwrap();
    Rig {
        t,
        mem,
        queues,
        changes,
        flushes,
    }
}

fn lun(target: u8, lun: u16) -> [u8; 8] {
    [1, target, 0x40 | (lun >> 8) as u8, lun as u8, 0, 0, 0, 0]
}

/// What came back for one request.
#[derive(Debug)]
struct Reply {
    used: u32,
    sense_len: u32,
    residual: u32,
    status: u8,
    response: u8,
    sense: Vec<u8>,
    data: Vec<u8>,
}

impl Rig {
    /// Sends a chain of `readable` then `writable` buffers (address, length) on queue `q`
    /// and waits for it to come back; returns the used length.
    fn submit(&mut self, q: usize, readable: &[(u64, u32)], writable: &[(u64, u32)]) -> u32 {
        let dq = &mut self.queues[q];
        let all: Vec<(u64, u32, u16)> = readable
            .iter()
            .map(|&(a, l)| (a, l, 0))
            .chain(writable.iter().map(|&(a, l)| (a, l, F_WRITE)))
            .collect();
        for (i, &(addr, len, flags)) in all.iter().enumerate() {
            let next = if i + 1 < all.len() { F_NEXT } else { 0 };
            dq.set_desc(&self.mem, i as u16, addr, len, flags | next, i as u16 + 1);
        }
        dq.publish(&self.mem, 0);
        notify(&mut self.t, q as u16);
        let mut got = None;
        let mem = self.mem.clone();
        assert!(
            wait_for(5000, || {
                got = dq.pop_used(&mem);
                got.is_some()
            }),
            "no answer on queue {q}"
        );
        got.map(|(_, len)| len).unwrap_or_default()
    }

    /// A command to (`target`, `lun`) with `data_out` and `data_in` bytes of room.
    fn command(&mut self, lun: [u8; 8], cdb: &[u8], data_out: &[u8], data_in: u32) -> Reply {
        let mut h = lun.to_vec();
        h.extend(7u64.to_le_bytes());
        h.extend([0, 0, 0]);
        let mut c = cdb.to_vec();
        c.resize(32, 0);
        h.extend(c);
        self.mem.write_slice(&h, GuestAddress(HDR)).unwrap();
        self.mem
            .write_slice(&[0xcc; 0x3000], GuestAddress(RESP))
            .unwrap();
        let mut readable = vec![(HDR, h.len() as u32)];
        if !data_out.is_empty() {
            self.mem.write_slice(data_out, GuestAddress(DATA)).unwrap();
            readable.push((DATA, data_out.len() as u32));
        }
        let mut writable = vec![(RESP, RESP_LEN)];
        if data_in > 0 {
            writable.push((DATA, data_in));
        }
        let used = self.submit(2, &readable, &writable);
        let mut r = [0u8; RESP_LEN as usize];
        self.mem.read_slice(&mut r, GuestAddress(RESP)).unwrap();
        let mut data = vec![0u8; data_in as usize + 16];
        self.mem.read_slice(&mut data, GuestAddress(DATA)).unwrap();
        let sense_len = u32::from_le_bytes(r[0..4].try_into().unwrap());
        Reply {
            used,
            sense_len,
            residual: u32::from_le_bytes(r[4..8].try_into().unwrap()),
            status: r[10],
            response: r[11],
            sense: r[12..12 + (sense_len as usize).min(96)].to_vec(),
            data,
        }
    }

    /// Sends commands until one is GOOD (the unit attention a fresh unit reports first).
    fn settle(&mut self, lun: [u8; 8]) {
        for _ in 0..4 {
            if self.command(lun, &[0x00; 6], &[], 0).status == GOOD {
                return;
            }
        }
        panic!("unit never became ready");
    }
}

fn read10(lba: u32, blocks: u16) -> Vec<u8> {
    let l = lba.to_be_bytes();
    let b = blocks.to_be_bytes();
    vec![0x28, 0, l[0], l[1], l[2], l[3], 0, b[0], b[1], 0]
}

#[test]
fn the_config_space_describes_one_request_queue_and_the_limits() {
    let r = rig();
    let mut t = r.t;
    let mut c = [0u8; 36];
    for (i, b) in c.iter_mut().enumerate() {
        let mut one = [0u8; 1];
        t.read(0x100 + i as u64, &mut one);
        *b = one[0];
    }
    let le = |at: usize| u32::from_le_bytes(c[at..at + 4].try_into().unwrap());
    assert_eq!(le(0), 1);
    assert_eq!(le(4), 254);
    assert_eq!(le(8), (crate::scsi::MAX_TRANSFER_BYTES / 512) as u32);
    assert_eq!(le(12), 128);
    assert_eq!(le(16), 16);
    assert_eq!(le(20), 96);
    assert_eq!(le(24), 32);
    assert_eq!(u16::from_le_bytes([c[28], c[29]]), 0);
    assert_eq!(u16::from_le_bytes([c[30], c[31]]), 255);
    assert_eq!(le(32), 16383);
}

#[test]
fn the_driver_may_set_cdb_and_sense_sizes_within_bounds() {
    let mut s = Scsi::new(ScsiBus::default(), "scsi[0]", None);
    use crate::virtio::VirtioDevice;
    s.write_config(24, &16u32.to_le_bytes());
    s.write_config(20, &32u32.to_le_bytes());
    s.write_config(24, &100_000u32.to_le_bytes());
    s.write_config(20, &[1, 2]);
    assert_eq!(s.sizes, super::Sizes { cdb: 16, sense: 32 });
    s.reset();
    assert_eq!(s.sizes, super::Sizes::default());
}

#[test]
fn inquiry_and_read10_round_trip() {
    let mut r = rig();
    let i = r.command(lun(0, 0), &[0x12, 0, 0, 0, 96, 0], &[], 96);
    assert_eq!((i.response, i.status), (VIRTIO_SCSI_S_OK as u8, GOOD));
    // A CD-ROM drive, removable.
    assert_eq!(i.data[0] & 0x1f, 5);
    assert_eq!(i.data[1] & 0x80, 0x80);
    assert_eq!(i.used, RESP_LEN + 96 - i.residual);
    let d = r.command(lun(0, 1), &[0x12, 0, 0, 0, 96, 0], &[], 96);
    assert_eq!(d.data[0] & 0x1f, 0);

    r.settle(lun(0, 0));
    let rd = r.command(lun(0, 0), &read10(3, 2), &[], 4096);
    assert_eq!((rd.response, rd.status, rd.residual), (0, GOOD, 0));
    assert_eq!(rd.used, RESP_LEN + 4096);
    assert!(rd.data[..2048].iter().all(|b| *b == 3));
    assert!(rd.data[2048..4096].iter().all(|b| *b == 4));
    // Nothing past the buffer was touched.
    assert!(rd.data[4096..].iter().all(|b| *b == 0xcc));
}

#[test]
fn a_read_past_the_end_of_the_medium_is_a_check_condition_with_sense() {
    let mut r = rig();
    r.settle(lun(0, 0));
    let rd = r.command(lun(0, 0), &read10(63, 2), &[], 4096);
    assert_eq!((rd.response, rd.status), (0, CHECK_CONDITION));
    assert_eq!(rd.sense_len, 18);
    assert_eq!(rd.sense[0] & 0x7f, 0x70);
    assert_eq!(rd.sense[2] & 0xf, 0x05, "ILLEGAL REQUEST");
    assert_eq!(rd.residual, 4096);
}

#[test]
fn a_target_that_does_not_exist_or_a_bad_lun_field_is_bad_target() {
    let mut r = rig();
    for l in [
        lun(9, 0),
        [1, 0, 0x80, 0, 0, 0, 0, 0],
        [2, 0, 0x40, 0, 0, 0, 0, 0],
    ] {
        let b = r.command(l, &[0x12, 0, 0, 0, 96, 0], &[], 96);
        assert_eq!(b.response, VIRTIO_SCSI_S_BAD_TARGET as u8, "{l:?}");
        assert_eq!(b.used, RESP_LEN);
        // No data-in was written.
        assert!(b.data.iter().all(|x| *x == 0xcc));
    }
    // A missing LUN of a target that exists: qualifier 3.
    let m = r.command(lun(0, 5), &[0x12, 0, 0, 0, 96, 0], &[], 96);
    assert_eq!((m.response, m.status, m.data[0]), (0, GOOD, 0x7f));
    // REPORT LUNS through the queue, to that missing LUN.
    let rl = r.command(
        lun(0, 5),
        &[0xa0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0],
        &[],
        256,
    );
    assert_eq!(rl.status, GOOD);
    assert_eq!(
        &rl.data[..24],
        &[0, 0, 0, 16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0]
    );
    assert_eq!(rl.residual, 256 - 24);
}

#[test]
fn a_short_data_in_buffer_is_never_overrun() {
    let mut r = rig();
    r.settle(lun(0, 0));
    // Two blocks asked for, room for 1000 bytes.
    let rd = r.command(lun(0, 0), &read10(1, 2), &[], 1000);
    // The unit refuses a transfer that does not fit (INVALID FIELD IN CDB): nothing of it
    // reaches the guest, and the residual says so.
    assert_eq!(
        (rd.response, rd.status, rd.residual),
        (VIRTIO_SCSI_S_OK as u8, CHECK_CONDITION, 1000)
    );
    assert_eq!((rd.sense[2] & 0xf, rd.sense[12]), (0x05, 0x24));
    assert_eq!(rd.used, RESP_LEN);
    assert!(rd.data.iter().all(|b| *b == 0xcc));
    // A response buffer too short for the fixed header: no answer written at all.
    let mut h = lun(0, 0).to_vec();
    h.resize(51, 0);
    r.mem.write_slice(&h, GuestAddress(HDR)).unwrap();
    r.mem.write_slice(&[0xcc; 16], GuestAddress(RESP)).unwrap();
    let used = r.submit(2, &[(HDR, 51)], &[(RESP, 11)]);
    assert_eq!(used, 0);
    let mut back = [0u8; 16];
    r.mem.read_slice(&mut back, GuestAddress(RESP)).unwrap();
    assert_eq!(back, [0xcc; 16]);
    // A header cut short: FAILURE.
    let used = r.submit(2, &[(HDR, 40)], &[(RESP, RESP_LEN)]);
    assert_eq!(used, RESP_LEN);
    let mut resp = [0u8; 12];
    r.mem.read_slice(&mut resp, GuestAddress(RESP)).unwrap();
    assert_eq!(resp[11], VIRTIO_SCSI_S_FAILURE as u8);
}

#[test]
fn a_write_reaches_the_disk_and_close_synchronizes_it() {
    let mut r = rig();
    r.settle(lun(0, 1));
    let block = vec![0x5au8; 512];
    let w = r.command(lun(0, 1), &[0x2a, 0, 0, 0, 0, 8, 0, 0, 1, 0], &block, 0);
    assert_eq!((w.response, w.status), (0, GOOD));
    let rd = r.command(lun(0, 1), &read10(8, 1), &[], 512);
    assert_eq!(&rd.data[..512], &block[..]);
    let before = r.flushes.load(Ordering::SeqCst);
    r.t.close().unwrap();
    assert!(r.flushes.load(Ordering::SeqCst) > before);
}

#[test]
fn close_flushes_a_disk_the_guest_never_touched() {
    // Its power-on unit attention is still pending when the machine ends.
    let r = rig();
    let mut t = r.t;
    t.close().unwrap();
    assert_eq!(r.flushes.load(Ordering::SeqCst), 1);
}

#[test]
fn the_control_queue_answers_task_management_at_once() {
    let mut r = rig();
    let mut req = VIRTIO_SCSI_T_TMF.to_le_bytes().to_vec();
    req.extend(VIRTIO_SCSI_T_TMF_LOGICAL_UNIT_RESET.to_le_bytes());
    req.extend(lun(0, 0));
    req.extend(1u64.to_le_bytes());
    r.mem.write_slice(&req, GuestAddress(HDR)).unwrap();
    r.mem.write_slice(&[0xcc], GuestAddress(RESP)).unwrap();
    let used = r.submit(0, &[(HDR, 24)], &[(RESP, 1)]);
    let mut resp = [0u8; 1];
    r.mem.read_slice(&mut resp, GuestAddress(RESP)).unwrap();
    assert_eq!((used, resp[0]), (1, VIRTIO_SCSI_S_FUNCTION_COMPLETE as u8));
}

#[test]
fn the_guests_own_eject_is_reported_once() {
    let mut r = rig();
    r.settle(lun(0, 0));
    // START STOP UNIT, LoEj with Start clear: eject.
    let e = r.command(lun(0, 0), &[0x1b, 0, 0, 0, 0x02, 0], &[], 0);
    assert_eq!((e.response, e.status), (0, GOOD));
    assert_eq!(
        *r.changes.lock().unwrap(),
        vec![GuestChange {
            id: "sda".into(),
            medium: None
        }]
    );
    r.command(lun(0, 0), &[0x00; 6], &[], 0);
    assert_eq!(r.changes.lock().unwrap().len(), 1);
}
