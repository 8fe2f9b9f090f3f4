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
use super::{
    read_config_bytes, ActivateError, ActiveQueue, CloseError, GuestMemory, Interrupt, VirtioDevice,
};
use crate::logcap::LineLimiter;

const QUEUE_SIZE: u16 = 256;

/// How long [`VirtioDevice::close`] waits for a stopped worker to hand the image back. A worker
/// that was joined has already sent it; this only bounds the wait for one that could not be
/// told to stop.
const GIVE_BACK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

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

/// A guest can fail requests as fast as it makes them: their lines are rate limited.
static BAD_REQUESTS: LineLimiter = LineLimiter::standard("virtio-blk request errors");
static IO_ERRORS: LineLimiter = LineLimiter::standard("virtio-blk I/O errors");

impl BlockWorker {
    /// Handles one chain; returns the used length.
    fn handle_chain(&mut self, chain: &Chain) -> u32 {
        let req = match parse(chain, &self.mem, self.capacity, self.read_only) {
            Ok(r) => r,
            Err(e) => {
                BAD_REQUESTS.eprintln(format_args!("virtio-blk {}: {e}", self.name));
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
                IO_ERRORS.eprintln(format_args!("virtio-blk {}: I/O error: {e}", self.name));
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
                BAD_REQUESTS.eprintln(format_args!("virtio-blk {}: {e}", self.name));
                0
            }
        });
        self.queue = queue;
        self.broken = !complete(res, &self.interrupt, 0, "virtio-blk");
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

    /// Flushes and closes the image. The guest need not have sent a FLUSH for its completed
    /// writes to be kept: a qcow2 image holds new cluster mappings in memory until a flush, and
    /// a Linux guest's `sync` of raw block-device writes sends none.
    fn close(&mut self) -> Result<(), CloseError> {
        if let Some(mut w) = self.worker.take() {
            w.stop();
        }
        if let Some(rx) = self.returned.take() {
            match rx.recv_timeout(GIVE_BACK_TIMEOUT) {
                Ok(d) => self.disk = Some(d),
                Err(_) => {
                    return Err(CloseError::Held {
                        device: self.name.clone(),
                    })
                }
            }
        }
        // No image here and none coming back: closed already (or never opened).
        let Some(mut disk) = self.disk.take() else {
            return Ok(());
        };
        let flushed = if self.read_only { Ok(()) } else { disk.flush() };
        // Closing also drops the image lock.
        drop(disk);
        flushed.map_err(|source| CloseError::Flush {
            device: self.name.clone(),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::virtio::mmio::MmioTransport;
    use crate::virtio::testing::{guest_memory, init_device, CountingIrq};
    use std::sync::Mutex;

    #[derive(Default)]
    struct Calls {
        flushes: u32,
        closed: bool,
    }

    /// An in-memory disk that counts flushes and notes being dropped (closed).
    struct Probe {
        calls: Arc<Mutex<Calls>>,
        fail_flush: bool,
    }

    impl DiskBackend for Probe {
        fn size(&self) -> u64 {
            1 << 20
        }
        fn read_at(&mut self, buf: &mut [u8], _: u64) -> std::io::Result<()> {
            buf.fill(0);
            Ok(())
        }
        fn write_at(&mut self, _: &[u8], _: u64) -> std::io::Result<()> {
            Ok(())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            self.calls.lock().unwrap().flushes += 1;
            if self.fail_flush {
                Err(std::io::Error::from_raw_os_error(libc::EIO))
            } else {
                Ok(())
            }
        }
        fn discard(&mut self, _: u64, _: u64) -> std::io::Result<()> {
            Ok(())
        }
        fn write_zeroes(&mut self, _: u64, _: u64) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Drop for Probe {
        fn drop(&mut self) {
            self.calls.lock().unwrap().closed = true;
        }
    }

    fn probe(fail_flush: bool) -> (Box<dyn DiskBackend>, Arc<Mutex<Calls>>) {
        let calls = Arc::new(Mutex::new(Calls::default()));
        let disk = Probe {
            calls: calls.clone(),
            fail_flush,
        };
        (Box::new(disk), calls)
    }

    /// A transport over `disk` with the driver up, so the image is on the worker thread.
    fn running(disk: Box<dyn DiskBackend>, read_only: bool) -> MmioTransport {
        let block = Block::with_backend(disk, read_only, "s", "disk0.qcow2");
        let mut t = MmioTransport::new(
            Box::new(block),
            guest_memory(),
            Box::new(CountingIrq::default()),
        )
        .unwrap();
        init_device(&mut t, !0, &[QUEUE_SIZE]).unwrap();
        t
    }

    #[test]
    fn close_takes_the_image_from_the_worker_then_flushes_and_closes_it() {
        let (disk, calls) = probe(false);
        let mut t = running(disk, false);
        assert_eq!(calls.lock().unwrap().flushes, 0);
        t.close().unwrap();
        let c = calls.lock().unwrap();
        assert_eq!((c.flushes, c.closed), (1, true));
        drop(c);
        // Once only: a second close (or the drop) has nothing left to do.
        t.close().unwrap();
        drop(t);
        assert_eq!(calls.lock().unwrap().flushes, 1);
    }

    #[test]
    fn close_flushes_a_device_the_driver_never_started() {
        let (disk, calls) = probe(false);
        let mut b = Block::with_backend(disk, false, "s", "disk0.qcow2");
        b.close().unwrap();
        let c = calls.lock().unwrap();
        assert_eq!((c.flushes, c.closed), (1, true));
    }

    #[test]
    fn a_failed_flush_on_close_is_reported_and_the_image_still_closed() {
        let (disk, calls) = probe(true);
        let mut t = running(disk, false);
        let err = t.close().unwrap_err();
        assert!(
            matches!(&err, CloseError::Flush { device, source }
                if device == "disk0.qcow2" && source.raw_os_error() == Some(libc::EIO)),
            "{err:?}"
        );
        assert!(err.to_string().contains("disk0.qcow2"), "{err}");
        assert!(calls.lock().unwrap().closed);
    }

    #[test]
    fn a_read_only_disk_is_closed_without_a_flush() {
        let (disk, calls) = probe(true);
        let mut t = running(disk, true);
        t.close().unwrap();
        let c = calls.lock().unwrap();
        assert_eq!((c.flushes, c.closed), (0, true));
    }
}
