//! virtio-blk over raw and qcow2 images.

mod chain;
pub mod image;
pub mod request;

use std::sync::Arc;

use virtio_bindings::virtio_blk::*;
use virtio_bindings::virtio_ids::VIRTIO_ID_BLOCK;
use virtio_queue::Queue;
use vm_memory::Bytes;

use self::image::{DiskBackend, DiskImage, ImageError, ImageOptions};
use self::request::{
    parse, Request, RequestKind, ID_LEN, MAX_DISCARD_SECTORS, MAX_DISCARD_SEG, SECTOR_SIZE,
    SIZE_MAX,
};
use super::queue::{complete, drain_queue, Chain};
use super::worker::{Worker, WorkerHandler};
use super::{read_config_bytes, ActivateError, ActiveQueue, GuestMemory, Interrupt, VirtioDevice};

const QUEUE_SIZE: u16 = 256;

/// A virtio block device.
pub struct Block {
    /// The image, while no worker owns it.
    disk: Option<Box<dyn DiskBackend>>,
    /// Gets the image back from the worker on reset.
    returned: Option<std::sync::mpsc::Receiver<Box<dyn DiskBackend>>>,
    capacity: u64,
    read_only: bool,
    serial: [u8; ID_LEN],
    config: Vec<u8>,
    worker: Option<Worker>,
    name: String,
}

impl Block {
    /// Opens (and locks) the image. `serial` is cut to 20 bytes.
    pub fn new(opts: &ImageOptions, serial: &str) -> Result<Block, ImageError> {
        let image = DiskImage::open(opts)?;
        Ok(Block::with_backend(
            Box::new(LockedDisk(image)),
            opts.read_only,
            serial,
            &opts.path.display().to_string(),
        ))
    }

    /// A device over any backend (tests use in-memory ones).
    pub fn with_backend(
        disk: Box<dyn DiskBackend>,
        read_only: bool,
        serial: &str,
        name: &str,
    ) -> Block {
        let capacity = disk.size();
        let mut id = [0u8; ID_LEN];
        let s = serial.as_bytes();
        let n = s.len().min(ID_LEN);
        id[..n].copy_from_slice(&s[..n]);
        Block {
            disk: Some(disk),
            returned: None,
            capacity,
            read_only,
            serial: id,
            config: build_config(capacity, read_only),
            worker: None,
            name: name.to_string(),
        }
    }

    fn take_disk_back(&mut self) {
        if let Some(rx) = self.returned.take() {
            if let Ok(d) = rx.recv() {
                self.disk = Some(d);
            }
        }
    }
}

impl Drop for Block {
    fn drop(&mut self) {
        // Stop the worker and take the image back first, so the image is flushed and closed
        // here rather than on the worker thread under its narrower seccomp filter.
        VirtioDevice::reset(self);
    }
}

/// Keeps the lock alive together with the backend.
struct LockedDisk(DiskImage);

impl DiskBackend for LockedDisk {
    fn size(&self) -> u64 {
        self.0.backend.size()
    }
    fn read_at(&mut self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        self.0.backend.read_at(buf, offset)
    }
    fn write_at(&mut self, buf: &[u8], offset: u64) -> std::io::Result<()> {
        self.0.backend.write_at(buf, offset)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.backend.flush()
    }
    fn discard(&mut self, offset: u64, len: u64) -> std::io::Result<()> {
        self.0.backend.discard(offset, len)
    }
    fn write_zeroes(&mut self, offset: u64, len: u64) -> std::io::Result<()> {
        self.0.backend.write_zeroes(offset, len)
    }
}

/// virtio_blk_config, little endian (virtio 1.x 5.2.4).
fn build_config(capacity: u64, read_only: bool) -> Vec<u8> {
    let mut c = vec![0u8; 60];
    c[0..8].copy_from_slice(&(capacity / SECTOR_SIZE).to_le_bytes());
    c[8..12].copy_from_slice(&SIZE_MAX.to_le_bytes());
    c[12..16].copy_from_slice(&u32::from(QUEUE_SIZE - 2).to_le_bytes());
    c[20..24].copy_from_slice(&(SECTOR_SIZE as u32).to_le_bytes());
    c[34..36].copy_from_slice(&1u16.to_le_bytes());
    if !read_only {
        c[36..40].copy_from_slice(&MAX_DISCARD_SECTORS.to_le_bytes());
        c[40..44].copy_from_slice(&MAX_DISCARD_SEG.to_le_bytes());
        c[44..48].copy_from_slice(&8u32.to_le_bytes());
        c[48..52].copy_from_slice(&MAX_DISCARD_SECTORS.to_le_bytes());
        c[52..56].copy_from_slice(&MAX_DISCARD_SEG.to_le_bytes());
        c[56] = 1;
    }
    c
}

/// The request loop, owned by the worker thread.
pub struct BlockWorker {
    mem: GuestMemory,
    queue: Queue,
    interrupt: Arc<Interrupt>,
    disk: Box<dyn DiskBackend>,
    capacity: u64,
    read_only: bool,
    serial: [u8; ID_LEN],
    bounce: Vec<u8>,
    broken: bool,
    name: String,
    give_back: std::sync::mpsc::Sender<Box<dyn DiskBackend>>,
}

impl Drop for BlockWorker {
    fn drop(&mut self) {
        let disk = std::mem::replace(&mut self.disk, Box::new(NoDisk));
        // The device may be gone already (VM shutdown); then the image just closes here.
        let _ = self.give_back.send(disk);
    }
}

struct NoDisk;
impl DiskBackend for NoDisk {
    fn size(&self) -> u64 {
        0
    }
    fn read_at(&mut self, _: &mut [u8], _: u64) -> std::io::Result<()> {
        Err(std::io::ErrorKind::NotConnected.into())
    }
    fn write_at(&mut self, _: &[u8], _: u64) -> std::io::Result<()> {
        Err(std::io::ErrorKind::NotConnected.into())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Err(std::io::ErrorKind::NotConnected.into())
    }
    fn discard(&mut self, _: u64, _: u64) -> std::io::Result<()> {
        Err(std::io::ErrorKind::NotConnected.into())
    }
    fn write_zeroes(&mut self, _: u64, _: u64) -> std::io::Result<()> {
        Err(std::io::ErrorKind::NotConnected.into())
    }
}

/// Outcome of one request: the status byte and how many bytes went into the chain.
fn execute(
    disk: &mut dyn DiskBackend,
    mem: &GuestMemory,
    req: &Request,
    serial: &[u8; ID_LEN],
    bounce: &mut Vec<u8>,
) -> Result<u32, String> {
    match &req.kind {
        RequestKind::In => {
            let mut off = req.offset;
            for seg in &req.data {
                let n = seg.len as usize;
                bounce.resize(n, 0);
                disk.read_at(&mut bounce[..n], off)
                    .map_err(|e| format!("read at {off}: {e}"))?;
                mem.write_slice(&bounce[..n], seg.addr)
                    .map_err(|e| format!("guest memory {:#x}: {e}", seg.addr.0))?;
                off += u64::from(seg.len);
            }
            Ok(req.data_len as u32)
        }
        RequestKind::Out => {
            let mut off = req.offset;
            for seg in &req.data {
                let n = seg.len as usize;
                bounce.resize(n, 0);
                mem.read_slice(&mut bounce[..n], seg.addr)
                    .map_err(|e| format!("guest memory {:#x}: {e}", seg.addr.0))?;
                disk.write_at(&bounce[..n], off)
                    .map_err(|e| format!("write at {off}: {e}"))?;
                off += u64::from(seg.len);
            }
            Ok(0)
        }
        RequestKind::Flush => {
            disk.flush().map_err(|e| format!("flush: {e}"))?;
            Ok(0)
        }
        RequestKind::GetId => {
            let mut done = 0usize;
            for seg in &req.data {
                let n = seg.len as usize;
                mem.write_slice(&serial[done..done + n], seg.addr)
                    .map_err(|e| format!("guest memory {:#x}: {e}", seg.addr.0))?;
                done += n;
            }
            Ok(done as u32)
        }
        RequestKind::Discard(ranges) => {
            for r in ranges {
                disk.discard(r.offset, r.len)
                    .map_err(|e| format!("discard {}+{}: {e}", r.offset, r.len))?;
            }
            Ok(0)
        }
        RequestKind::WriteZeroes(ranges) => {
            for r in ranges {
                disk.write_zeroes(r.offset, r.len)
                    .map_err(|e| format!("write-zeroes {}+{}: {e}", r.offset, r.len))?;
            }
            Ok(0)
        }
    }
}

impl BlockWorker {
    /// Handles one chain; returns the used length.
    fn handle_chain(&mut self, chain: &Chain) -> u32 {
        let req = match parse(chain, &self.mem, self.capacity, self.read_only) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("virtio-blk {}: {e}", self.name);
                if let Some((addr, status)) = e.status() {
                    if self.mem.write_obj(status, addr).is_ok() {
                        return 1;
                    }
                }
                return 0;
            }
        };
        let (status, written) = match execute(
            self.disk.as_mut(),
            &self.mem,
            &req,
            &self.serial,
            &mut self.bounce,
        ) {
            Ok(n) => (VIRTIO_BLK_S_OK as u8, n),
            Err(e) => {
                // The guest sees an I/O error; the host log says which and why.
                eprintln!("virtio-blk {}: I/O error: {e}", self.name);
                (VIRTIO_BLK_S_IOERR as u8, 0)
            }
        };
        match self.mem.write_obj(status, req.status) {
            Ok(()) => written.saturating_add(1),
            Err(_) => written,
        }
    }

    /// Drains the request queue.
    pub fn process(&mut self) {
        if self.broken {
            return;
        }
        let mem = self.mem.clone();
        let mut queue = std::mem::take(&mut self.queue);
        let res = drain_queue(&mut queue, &mem, |chain| match chain {
            Ok(c) => self.handle_chain(&c),
            Err(e) => {
                eprintln!("virtio-blk {}: {e}", self.name);
                0
            }
        });
        self.queue = queue;
        self.broken = !complete(res, &self.interrupt, "virtio-blk");
    }
}

impl WorkerHandler for BlockWorker {
    fn queue_notified(&mut self, _index: usize) {
        self.process();
    }
}

impl VirtioDevice for Block {
    fn device_type(&self) -> u32 {
        VIRTIO_ID_BLOCK
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &[QUEUE_SIZE]
    }

    fn device_features(&self) -> u64 {
        let mut f = (1u64 << VIRTIO_BLK_F_SIZE_MAX)
            | (1 << VIRTIO_BLK_F_SEG_MAX)
            | (1 << VIRTIO_BLK_F_BLK_SIZE)
            | (1 << VIRTIO_BLK_F_FLUSH);
        if self.read_only {
            f |= 1 << VIRTIO_BLK_F_RO;
        } else {
            f |= (1 << VIRTIO_BLK_F_DISCARD) | (1 << VIRTIO_BLK_F_WRITE_ZEROES);
        }
        f
    }

    fn read_config(&self, offset: u64, data: &mut [u8]) {
        read_config_bytes(&self.config, offset, data);
    }

    fn activate(
        &mut self,
        mem: GuestMemory,
        interrupt: Arc<Interrupt>,
        _features: u64,
        queues: Vec<ActiveQueue>,
    ) -> Result<(), ActivateError> {
        self.take_disk_back();
        let Some(q) = queues.into_iter().find(|q| q.index == 0) else {
            return Err(ActivateError::QueueNotReady(0));
        };
        let Some(disk) = self.disk.take() else {
            return Err(ActivateError::Backend(format!(
                "{}: image not available",
                self.name
            )));
        };
        let (tx, rx) = std::sync::mpsc::channel();
        self.returned = Some(rx);
        let mut handler = BlockWorker {
            mem,
            queue: q.queue,
            interrupt,
            disk,
            capacity: self.capacity,
            read_only: self.read_only,
            serial: self.serial,
            bounce: Vec::new(),
            broken: false,
            name: self.name.clone(),
            give_back: tx,
        };
        handler.process();
        let worker = Worker::spawn("virtio-blk", handler, vec![(0, q.notify)])
            .map_err(ActivateError::Worker)?;
        self.worker = Some(worker);
        Ok(())
    }

    fn reset(&mut self) {
        if let Some(mut w) = self.worker.take() {
            w.stop();
        }
        self.take_disk_back();
    }
}
