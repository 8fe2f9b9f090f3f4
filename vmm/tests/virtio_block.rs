//! virtio-blk end to end through the transport: raw and qcow2 images (made and checked by
//! qemu-img / qemu-io from qemu-utils), read-only disks, flush, discard, GET_ID, bad requests,
//! and image locking (including against a running qemu-io).

use std::path::{Path, PathBuf};
use std::process::Command;

use vireo_vmm::virtio::block::image::{BackingLayer, DiskFormat, ImageError, ImageOptions};
use vireo_vmm::virtio::block::Block;
use vireo_vmm::virtio::mmio::MmioTransport;
use vireo_vmm::virtio::testing::*;
use vireo_vmm::virtio::GuestMemory;
use vm_memory::{Bytes, GuestAddress};

const T_IN: u32 = 0;
const T_OUT: u32 = 1;
const T_FLUSH: u32 = 4;
const T_GET_ID: u32 = 8;
const T_DISCARD: u32 = 11;
const S_OK: u8 = 0;
const S_IOERR: u8 = 1;
const S_UNSUPP: u8 = 2;

const HDR: u64 = DATA_START;
const STATUS: u64 = DATA_START + 0x100;
const DATA: u64 = DATA_START + 0x1000;

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir()
        .join("vireo-virtio-tests")
        .join(format!("{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("create test dir");
    d
}

fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn raw_image(dir: &Path, size: u64) -> PathBuf {
    let p = dir.join("disk.raw");
    let f = std::fs::File::create(&p).expect("create raw image");
    f.set_len(size).expect("size raw image");
    p
}

fn opts(path: &Path, read_only: bool, shareable: bool) -> ImageOptions {
    ImageOptions {
        path: path.to_path_buf(),
        format: DiskFormat::Raw,
        read_only,
        shareable,
        backing: Vec::new(),
    }
}

fn qcow2_opts(path: &Path) -> ImageOptions {
    ImageOptions {
        format: DiskFormat::Qcow2,
        ..opts(path, false, false)
    }
}

struct Disk {
    t: MmioTransport,
    mem: GuestMemory,
    q: DriverQueue,
}

impl Disk {
    fn new(block: Block) -> Disk {
        let mem = guest_memory();
        let mut t = MmioTransport::new(
            Box::new(block),
            mem.clone(),
            Box::new(CountingIrq::default()),
        )
        .expect("transport");
        let (_, mut qs) = init_device(&mut t, !0, &[256]).expect("init");
        Disk {
            t,
            mem,
            q: qs.remove(0),
        }
    }

    fn config_u64(&mut self, off: u64) -> u64 {
        let mut b = [0u8; 8];
        self.t.read(0x100 + off, &mut b);
        u64::from_le_bytes(b)
    }

    /// Sends one request; returns (status, used length).
    fn request(
        &mut self,
        kind: u32,
        sector: u64,
        data_len: u32,
        device_writes_data: bool,
    ) -> (u8, u32) {
        let mut hdr = [0u8; 16];
        hdr[0..4].copy_from_slice(&kind.to_le_bytes());
        hdr[8..16].copy_from_slice(&sector.to_le_bytes());
        self.mem.write_slice(&hdr, GuestAddress(HDR)).unwrap();
        self.mem.write_obj(0xffu8, GuestAddress(STATUS)).unwrap();
        let mem = &self.mem;
        if data_len > 0 {
            self.q.set_desc(mem, 0, HDR, 16, F_NEXT, 1);
            let f = if device_writes_data { F_WRITE } else { 0 };
            self.q.set_desc(mem, 1, DATA, data_len, f | F_NEXT, 2);
            self.q.set_desc(mem, 2, STATUS, 1, F_WRITE, 0);
        } else {
            self.q.set_desc(mem, 0, HDR, 16, F_NEXT, 2);
            self.q.set_desc(mem, 2, STATUS, 1, F_WRITE, 0);
        }
        self.q.publish(mem, 0);
        notify(&mut self.t, 0);
        let want = self.q.last_used.wrapping_add(1);
        assert!(
            wait_for(10_000, || self.q.used_idx(mem) == want),
            "request not completed"
        );
        let (_, len) = self.q.pop_used(mem).unwrap();
        (mem.read_obj(GuestAddress(STATUS)).unwrap(), len)
    }

    fn write(&mut self, sector: u64, data: &[u8]) -> u8 {
        self.mem.write_slice(data, GuestAddress(DATA)).unwrap();
        self.request(T_OUT, sector, data.len() as u32, false).0
    }

    fn read(&mut self, sector: u64, len: usize) -> (u8, Vec<u8>) {
        self.mem
            .write_slice(&vec![0x5a; len], GuestAddress(DATA))
            .unwrap();
        let (s, used) = self.request(T_IN, sector, len as u32, true);
        if s == S_OK {
            assert_eq!(used as usize, len + 1);
        }
        let mut buf = vec![0u8; len];
        self.mem.read_slice(&mut buf, GuestAddress(DATA)).unwrap();
        (s, buf)
    }
}

fn pattern(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

#[test]
fn raw_write_read_flush_and_capacity() {
    let dir = tmpdir("raw");
    let img = raw_image(&dir, 8 << 20);
    let mut d = Disk::new(Block::new(&opts(&img, false, false), "vireo-disk-0").unwrap());
    assert_eq!(d.config_u64(0), (8 << 20) / 512);
    let data = pattern(7, 8192);
    assert_eq!(d.write(100, &data), S_OK);
    assert_eq!(d.request(T_FLUSH, 0, 0, false).0, S_OK);
    assert_eq!(d.read(100, 8192), (S_OK, data.clone()));
    // The bytes are really in the file, at sector 100.
    let file = std::fs::read(&img).unwrap();
    assert_eq!(&file[100 * 512..100 * 512 + 8192], &data[..]);
    // Last sector is fine, one past is an error.
    assert_eq!(d.read((8 << 20) / 512 - 1, 512).0, S_OK);
    assert_eq!(d.read((8 << 20) / 512, 512).0, S_IOERR);
    assert_eq!(d.read(u64::MAX / 256, 512).0, S_IOERR, "sector overflow");
}

#[test]
fn get_id_returns_the_serial() {
    let dir = tmpdir("getid");
    let img = raw_image(&dir, 1 << 20);
    let mut d = Disk::new(Block::new(&opts(&img, false, false), "SERIAL-1234").unwrap());
    let (s, used) = d.request(T_GET_ID, 0, 20, true);
    assert_eq!(s, S_OK);
    assert_eq!(used, 21);
    let mut id = [0u8; 20];
    d.mem.read_slice(&mut id, GuestAddress(DATA)).unwrap();
    assert_eq!(&id[..11], b"SERIAL-1234");
    assert!(id[11..].iter().all(|&b| b == 0));
}

#[test]
fn bad_requests_get_error_status() {
    let dir = tmpdir("bad");
    let img = raw_image(&dir, 1 << 20);
    let mut d = Disk::new(Block::new(&opts(&img, false, false), "x").unwrap());
    assert_eq!(d.request(99, 0, 512, true).0, S_UNSUPP, "unknown type");
    assert_eq!(
        d.request(T_IN, 0, 100, true).0,
        S_IOERR,
        "not a sector multiple"
    );
    // A data buffer over size_max (1 MiB).
    assert_eq!(d.request(T_IN, 0, 2 << 20, true).0, S_IOERR);
    // No status byte: nothing can be written, used length 0, and the device keeps going.
    let mem = d.mem.clone();
    d.q.set_desc(&mem, 0, HDR, 16, 0, 0);
    d.q.publish(&mem, 0);
    notify(&mut d.t, 0);
    let want = d.q.last_used.wrapping_add(1);
    assert!(wait_for(5000, || d.q.used_idx(&mem) == want));
    assert_eq!(d.q.pop_used(&mem).unwrap().1, 0);
    assert_eq!(d.read(0, 512).0, S_OK);
}

#[test]
fn read_only_disk_refuses_writes() {
    let dir = tmpdir("ro");
    let img = raw_image(&dir, 1 << 20);
    std::fs::write(&img, vec![0x11u8; 1 << 20]).unwrap();
    let mut d = Disk::new(Block::new(&opts(&img, true, false), "ro").unwrap());
    // VIRTIO_BLK_F_RO offered.
    wr(
        &mut d.t,
        virtio_bindings::virtio_mmio::VIRTIO_MMIO_DEVICE_FEATURES_SEL,
        0,
    );
    assert_ne!(
        rd(
            &mut d.t,
            virtio_bindings::virtio_mmio::VIRTIO_MMIO_DEVICE_FEATURES
        ) & (1 << 5),
        0
    );
    assert_eq!(d.write(0, &[0u8; 512]), S_IOERR);
    assert_eq!(d.read(0, 512), (S_OK, vec![0x11u8; 512]));
    assert!(std::fs::read(&img).unwrap().iter().all(|&b| b == 0x11));
}

#[test]
fn discard_punches_a_hole_in_raw() {
    use std::os::unix::fs::MetadataExt;
    let dir = tmpdir("discard");
    let img = raw_image(&dir, 4 << 20);
    let mut d = Disk::new(Block::new(&opts(&img, false, false), "d").unwrap());
    let data = vec![0xabu8; 1 << 20];
    assert_eq!(d.write(0, &data), S_OK);
    assert_eq!(d.request(T_FLUSH, 0, 0, false).0, S_OK);
    let before = std::fs::metadata(&img).unwrap().blocks();
    // One discard segment: sector 0, 2048 sectors (1 MiB).
    let mut seg = [0u8; 16];
    seg[8..12].copy_from_slice(&2048u32.to_le_bytes());
    d.mem.write_slice(&seg, GuestAddress(DATA)).unwrap();
    assert_eq!(d.request(T_DISCARD, 0, 16, false).0, S_OK);
    let after = std::fs::metadata(&img).unwrap().blocks();
    assert!(
        after + 1024 <= before,
        "blocks before {before}, after {after}"
    );
    assert_eq!(d.read(0, 4096), (S_OK, vec![0u8; 4096]));
    // A discard past the end is refused.
    seg[0..8].copy_from_slice(&8192u64.to_le_bytes());
    d.mem.write_slice(&seg, GuestAddress(DATA)).unwrap();
    assert_eq!(d.request(T_DISCARD, 0, 16, false).0, S_IOERR);
}

#[test]
fn io_errors_reach_the_guest() {
    // A raw "image" that is a directory cannot be read: open fails up front...
    let dir = tmpdir("ioerr");
    assert!(Block::new(&opts(&dir, false, false), "x").is_err());
    // ...and a file truncated behind our back makes reads fail with IOERR, not zeros.
    let img = raw_image(&dir, 1 << 20);
    let mut d = Disk::new(Block::new(&opts(&img, false, false), "x").unwrap());
    std::fs::OpenOptions::new()
        .write(true)
        .open(&img)
        .unwrap()
        .set_len(0)
        .unwrap();
    assert_eq!(d.read(16, 512).0, S_IOERR);
}

#[test]
fn qcow2_reads_qemu_data_and_qemu_checks_our_writes() {
    let dir = tmpdir("qcow2");
    let img = dir.join("disk.qcow2");
    run(Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2"])
        .arg(&img)
        .arg("64M"));
    run(Command::new("qemu-io")
        .args(["-c", "write -P 0xab 0 64k"])
        .arg(&img));
    {
        let mut d = Disk::new(Block::new(&qcow2_opts(&img), "q").unwrap());
        assert_eq!(d.config_u64(0), (64 << 20) / 512);
        assert_eq!(d.read(0, 4096), (S_OK, vec![0xab; 4096]));
        assert_eq!(
            d.read(1024, 512),
            (S_OK, vec![0; 512]),
            "unallocated reads zero"
        );
        // Our writes: a pattern at 1 MiB, crossing a cluster boundary, and one in a new L2 range.
        assert_eq!(d.write(2048, &vec![0xcd; 65536 + 4096]), S_OK);
        assert_eq!(d.write((40 << 20) / 512, &vec![0xef; 8192]), S_OK);
        assert_eq!(d.request(T_FLUSH, 0, 0, false).0, S_OK);
        assert_eq!(d.read(2048, 4096), (S_OK, vec![0xcd; 4096]));
    } // Device, worker and image closed here.
    run(Command::new("qemu-img").arg("check").arg(&img));
    run(Command::new("qemu-io")
        .args([
            "-c",
            "read -P 0xab 0 64k",
            "-c",
            "read -P 0xcd 1M 68k",
            "-c",
            "read -P 0xef 40M 8k",
            "-c",
            "read -P 0 60M 64k",
        ])
        .arg(&img));
    // Same content as a raw image written the same way.
    let raw = raw_image(&dir, 64 << 20);
    run(Command::new("qemu-io")
        .args([
            "-f",
            "raw",
            "-c",
            "write -P 0xab 0 64k",
            "-c",
            "write -P 0xcd 1M 68k",
            "-c",
            "write -P 0xef 40M 8k",
        ])
        .arg(&raw));
    run(Command::new("qemu-img")
        .args(["compare", "-f", "qcow2", "-F", "raw"])
        .arg(&img)
        .arg(&raw));
}

#[test]
fn qcow2_with_declared_backing_file_reads_through() {
    let dir = tmpdir("backing");
    let base = dir.join("base.qcow2");
    let top = dir.join("top.qcow2");
    run(Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2"])
        .arg(&base)
        .arg("16M"));
    run(Command::new("qemu-io")
        .args(["-c", "write -P 0x42 0 1M"])
        .arg(&base));
    run(Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b"])
        .arg(&base)
        .arg(&top));
    {
        let mut o = qcow2_opts(&top);
        o.backing = vec![BackingLayer {
            path: base.clone(),
            format: DiskFormat::Qcow2,
        }];
        let mut d = Disk::new(Block::new(&o, "b").unwrap());
        assert_eq!(d.read(0, 512), (S_OK, vec![0x42; 512]));
        assert_eq!(d.write(0, &[0x77; 512]), S_OK);
        assert_eq!(
            d.read(0, 1024).1[..],
            [vec![0x77; 512], vec![0x42; 512]].concat()[..]
        );
    }
    run(Command::new("qemu-img").arg("check").arg(&top));
    // The backing file was not touched.
    run(Command::new("qemu-io")
        .args(["-r", "-c", "read -P 0x42 0 1M"])
        .arg(&base));
}

#[test]
fn explicit_format_is_respected() {
    // A qcow2 file opened as raw shows its header bytes: the declared format is the format.
    let dir = tmpdir("fmt");
    let img = dir.join("disk.qcow2");
    run(Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2"])
        .arg(&img)
        .arg("1M"));
    let mut o = opts(&img, true, false);
    o.format = DiskFormat::Raw;
    let mut d = Disk::new(Block::new(&o, "f").unwrap());
    assert_eq!(&d.read(0, 512).1[..4], b"QFI\xfb");
}

#[test]
fn image_locks() {
    let dir = tmpdir("locks");
    let img = raw_image(&dir, 1 << 20);
    let locked = |r: Result<Block, ImageError>| matches!(r, Err(ImageError::Locked { .. }));
    {
        let _a = Block::new(&opts(&img, false, false), "a").unwrap();
        assert!(
            locked(Block::new(&opts(&img, false, false), "b")),
            "two writers"
        );
        assert!(
            locked(Block::new(&opts(&img, false, true), "b")),
            "shareable vs exclusive"
        );
        assert!(
            locked(Block::new(&opts(&img, true, false), "b")),
            "reader vs exclusive writer"
        );
    }
    {
        let _a = Block::new(&opts(&img, false, true), "a").unwrap();
        let _b = Block::new(&opts(&img, false, true), "b").expect("both shareable");
        assert!(
            locked(Block::new(&opts(&img, false, false), "c")),
            "exclusive vs shareable"
        );
    }
    {
        let _a = Block::new(&opts(&img, true, false), "a").unwrap();
        let _b = Block::new(&opts(&img, true, false), "b").expect("two readers (ISO)");
    }
    // The lock goes away with the device.
    let _c = Block::new(&opts(&img, false, false), "c").expect("lock released on drop");
}

#[test]
fn image_lock_conflicts_with_another_process() {
    let dir = tmpdir("lockproc");
    let img = raw_image(&dir, 1 << 20);
    // qemu-io keeps the image open (with QEMU's own OFD locks) while it sleeps.
    let mut child = Command::new("qemu-io")
        .args(["-f", "raw", "-c", "sleep 3000"])
        .arg(&img)
        .spawn()
        .expect("run qemu-io");
    std::thread::sleep(std::time::Duration::from_millis(500));
    let r = Block::new(&opts(&img, false, false), "a");
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        matches!(r, Err(ImageError::Locked { .. })),
        "opened an image qemu-io holds"
    );
    Block::new(&opts(&img, false, false), "a").expect("free again after qemu-io exits");
}
