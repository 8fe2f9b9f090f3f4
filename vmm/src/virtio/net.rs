//! virtio-net with a stream backend (passt, see [`super::passt`]).
//!
//! No offloads are offered: the guest computes checksums and segments itself, and it posts
//! MTU-sized receive buffers (no mergeable buffers), which is why passt announces an MTU of 1500.
//! A frame larger than the buffer the guest posted is dropped and counted.

use std::io::{ErrorKind, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;

use virtio_bindings::virtio_ids::VIRTIO_ID_NET;
use virtio_bindings::virtio_net::{
    VIRTIO_NET_F_MAC, VIRTIO_NET_F_MTU, VIRTIO_NET_F_STATUS, VIRTIO_NET_S_LINK_UP,
};
use virtio_queue::{Queue, QueueT};
use vmm_sys_util::epoll::EventSet;

use super::passt::{Passt, PasstError, PasstOptions};
use super::queue::{complete, drain_queue, pop_chain, validate_chain};
use super::worker::{EpollCtl, Worker, WorkerHandler, TOKEN_BACKEND_BASE};
use super::{ActivateError, ActiveQueue, GuestMemory, Interrupt, VirtioDevice};
use crate::logcap::LineLimiter;

const QUEUE_SIZE: u16 = 256;
/// virtio_net_hdr_v1: flags, gso_type, hdr_len, gso_size, csum_start, csum_offset, num_buffers.
pub const NET_HDR_LEN: usize = 12;
/// Largest frame accepted in either direction (64 KiB payload plus headers).
pub const MAX_FRAME: usize = 65536 + 64;
/// Stop taking guest frames while this much is waiting for the socket.
const TX_BACKLOG: usize = 1 << 20;
const TOKEN_SOCKET: u64 = TOKEN_BACKEND_BASE;
const RX: usize = 0;
const TX: usize = 1;

/// A guest can break chains as fast as it posts them: their lines are rate limited.
static RX_ERRORS: LineLimiter = LineLimiter::standard("virtio-net receive chain errors");
static TX_ERRORS: LineLimiter = LineLimiter::standard("virtio-net transmit chain errors");

/// Counters, readable while the device runs.
#[derive(Default, Debug)]
pub struct NetStats {
    /// Frames handed to the guest.
    pub rx_frames: AtomicU64,
    /// Frames from the guest sent to the backend.
    pub tx_frames: AtomicU64,
    /// Frames dropped (too large for the guest's buffer, malformed guest frames).
    pub dropped: AtomicU64,
}

/// The frame stream and its parse state, kept across device resets so the stream never loses
/// its framing.
struct Stream {
    sock: UnixStream,
    /// Bytes read from the socket not yet parsed into frames.
    rx_buf: Vec<u8>,
    /// Length-prefixed frames waiting to be written to the socket.
    tx_out: Vec<u8>,
}

/// A virtio-net device.
pub struct Net {
    mac: [u8; 6],
    mtu: u16,
    stream: Option<Stream>,
    returned: Option<mpsc::Receiver<Stream>>,
    passt: Option<Passt>,
    link: Arc<AtomicU16>,
    stats: Arc<NetStats>,
    worker: Option<Worker>,
}

impl Net {
    /// A device whose frames go through `sock` (one end of a stream socket).
    pub fn with_socket(mac: [u8; 6], mtu: u16, sock: UnixStream) -> std::io::Result<Net> {
        sock.set_nonblocking(true)?;
        Ok(Net {
            mac,
            mtu,
            stream: Some(Stream {
                sock,
                rx_buf: Vec::new(),
                tx_out: Vec::new(),
            }),
            returned: None,
            passt: None,
            link: Arc::new(AtomicU16::new(VIRTIO_NET_S_LINK_UP as u16)),
            stats: Arc::new(NetStats::default()),
            worker: None,
        })
    }

    /// A device with user-mode networking: starts passt now (so forwards are bound and errors
    /// show before the guest boots); passt ends with the device.
    pub fn with_passt(mac: [u8; 6], opts: &PasstOptions) -> Result<Net, PasstError> {
        let mut passt = Passt::spawn(opts)?;
        let sock = passt.take_socket().ok_or_else(|| {
            PasstError::Socket(std::io::Error::other("passt socket already taken"))
        })?;
        let mut net = Net::with_socket(mac, opts.mtu, sock).map_err(PasstError::Socket)?;
        net.passt = Some(passt);
        Ok(net)
    }

    /// Traffic counters.
    pub fn stats(&self) -> Arc<NetStats> {
        Arc::clone(&self.stats)
    }

    /// passt's PID, if this device runs one.
    pub fn passt_pid(&self) -> Option<u32> {
        self.passt.as_ref().map(Passt::pid)
    }

    fn take_stream_back(&mut self) {
        if let Some(rx) = self.returned.take() {
            if let Ok(s) = rx.recv() {
                self.stream = Some(s);
            }
        }
    }

    fn config(&self) -> [u8; 12] {
        let mut c = [0u8; 12];
        c[0..6].copy_from_slice(&self.mac);
        c[6..8].copy_from_slice(&self.link.load(Ordering::SeqCst).to_le_bytes());
        c[8..10].copy_from_slice(&1u16.to_le_bytes());
        c[10..12].copy_from_slice(&self.mtu.to_le_bytes());
        c
    }
}

struct NetWorker {
    mem: GuestMemory,
    rxq: Option<Queue>,
    txq: Option<Queue>,
    interrupt: Arc<Interrupt>,
    stream: Option<Stream>,
    give_back: mpsc::Sender<Stream>,
    /// A frame parsed from the socket that found no guest buffer yet.
    rx_pending: Option<Vec<u8>>,
    registered: EventSet,
    unwatched: bool,
    closed: bool,
    broken: bool,
    link: Arc<AtomicU16>,
    stats: Arc<NetStats>,
}

impl Drop for NetWorker {
    fn drop(&mut self) {
        if let Some(mut s) = self.stream.take() {
            // A frame parsed but not delivered goes back in front of the unparsed bytes.
            if let Some(f) = self.rx_pending.take() {
                let mut buf = (f.len() as u32).to_be_bytes().to_vec();
                buf.extend_from_slice(&f);
                buf.extend_from_slice(&s.rx_buf);
                s.rx_buf = buf;
            }
            let _ = self.give_back.send(s);
        }
    }
}

/// Takes one complete frame off the front of `buf`. `Err` means the stream is corrupt.
fn next_frame(buf: &mut Vec<u8>) -> Result<Option<Vec<u8>>, usize> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    if len > MAX_FRAME {
        return Err(len);
    }
    if buf.len() < 4 + len {
        return Ok(None);
    }
    let frame = buf[4..4 + len].to_vec();
    buf.drain(..4 + len);
    Ok(Some(frame))
}

enum Deliver {
    Done,
    NoBuffer(Vec<u8>),
}

impl NetWorker {
    fn signal(&mut self, which: usize, used: bool) {
        let q = if which == RX {
            self.rxq.as_mut()
        } else {
            self.txq.as_mut()
        };
        let Some(q) = q else { return };
        let res = if used {
            q.needs_notification(&self.mem)
        } else {
            Ok(false)
        };
        if !complete(res, &self.interrupt, which, "virtio-net") {
            self.broken = true;
        }
    }

    /// Puts one frame into the next receive buffer.
    fn deliver(&mut self, frame: Vec<u8>) -> Result<Deliver, virtio_queue::Error> {
        let Some(q) = self.rxq.as_mut() else {
            return Ok(Deliver::NoBuffer(frame));
        };
        let mem = &self.mem;
        let chain = match pop_chain(q, mem)? {
            Some(c) => c,
            None => {
                // Re-arm (EVENT_IDX: avail-event) and look once more before giving up.
                if !q.enable_notification(mem)? {
                    return Ok(Deliver::NoBuffer(frame));
                }
                match pop_chain(q, mem)? {
                    Some(c) => c,
                    None => return Ok(Deliver::NoBuffer(frame)),
                }
            }
        };
        let head = chain.head_index();
        let mut used = 0u32;
        match validate_chain(chain, q.size()) {
            Ok(c) if c.writable_len() >= (NET_HDR_LEN + frame.len()) as u64 => {
                let mut hdr = [0u8; NET_HDR_LEN];
                hdr[10] = 1; // num_buffers
                let ok = c.write_at(mem, 0, &hdr).is_ok()
                    && c.write_at(mem, NET_HDR_LEN as u64, &frame).is_ok();
                if ok {
                    used = (NET_HDR_LEN + frame.len()) as u32;
                    self.stats.rx_frames.fetch_add(1, Ordering::Relaxed);
                } else {
                    self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
            Ok(_) => {
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                RX_ERRORS.eprintln(format_args!("virtio-net: {e}"));
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
        q.add_used(mem, head, used)?;
        Ok(Deliver::Done)
    }

    /// Moves frames from the socket to the guest until either side runs dry.
    fn rx_pump(&mut self) {
        if self.broken || self.closed {
            return;
        }
        let mut used_any = false;
        let mut chunk = vec![0u8; 65536];
        loop {
            let frame = match self.rx_pending.take() {
                Some(f) => Some(f),
                None => {
                    let Some(s) = self.stream.as_mut() else {
                        return;
                    };
                    match next_frame(&mut s.rx_buf) {
                        Ok(f) => f,
                        Err(len) => {
                            crate::vmm_log!(
                                "virtio-net: backend sent a {len}-byte frame; closing the link"
                            );
                            self.close();
                            break;
                        }
                    }
                }
            };
            if let Some(frame) = frame {
                match self.deliver(frame) {
                    Ok(Deliver::Done) => {
                        used_any = true;
                        continue;
                    }
                    Ok(Deliver::NoBuffer(f)) => {
                        self.rx_pending = Some(f);
                        break;
                    }
                    Err(e) => {
                        crate::vmm_log!("virtio-net: guest broke the receive ring ({e})");
                        self.interrupt.set_needs_reset();
                        self.broken = true;
                        return;
                    }
                }
            }
            let Some(s) = self.stream.as_mut() else {
                return;
            };
            match s.sock.read(&mut chunk) {
                Ok(0) => {
                    crate::vmm_log!("virtio-net: the network backend closed the connection");
                    self.close();
                    break;
                }
                Ok(n) => s.rx_buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    crate::vmm_log!("virtio-net: reading from the backend: {e}");
                    self.close();
                    break;
                }
            }
        }
        if used_any {
            self.signal(RX, true);
        }
    }

    /// Writes queued bytes to the socket; returns false when it would block.
    fn flush_tx(&mut self) -> bool {
        let Some(s) = self.stream.as_mut() else {
            return true;
        };
        while !s.tx_out.is_empty() {
            match s.sock.write(&s.tx_out) {
                Ok(0) => return false,
                Ok(n) => {
                    s.tx_out.drain(..n);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return false,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    crate::vmm_log!("virtio-net: writing to the backend: {e}");
                    self.close();
                    return true;
                }
            }
        }
        true
    }

    /// Takes the guest's frames, unless the socket is backed up.
    fn tx_pump(&mut self) {
        if self.broken {
            return;
        }
        let flushed = self.flush_tx();
        let backlog = self.stream.as_ref().map_or(0, |s| s.tx_out.len());
        if !flushed && backlog >= TX_BACKLOG {
            return;
        }
        let Some(mut q) = self.txq.take() else { return };
        let mem = self.mem.clone();
        let closed = self.closed;
        let stats = Arc::clone(&self.stats);
        let mut out = Vec::new();
        let res = drain_queue(&mut q, &mem, |chain| {
            let c = match chain {
                Ok(c) => c,
                Err(e) => {
                    TX_ERRORS.eprintln(format_args!("virtio-net: {e}"));
                    stats.dropped.fetch_add(1, Ordering::Relaxed);
                    return 0;
                }
            };
            let total = c.readable_len() as usize;
            if total < NET_HDR_LEN || total - NET_HDR_LEN > MAX_FRAME || closed {
                stats.dropped.fetch_add(1, Ordering::Relaxed);
                return 0;
            }
            let len = total - NET_HDR_LEN;
            let start = out.len();
            out.extend_from_slice(&(len as u32).to_be_bytes());
            out.resize(start + 4 + len, 0);
            match c.read_at(&mem, NET_HDR_LEN as u64, &mut out[start + 4..]) {
                Ok(n) if n == len => {
                    stats.tx_frames.fetch_add(1, Ordering::Relaxed);
                }
                _ => {
                    out.truncate(start);
                    stats.dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
            0
        });
        self.txq = Some(q);
        if let Some(s) = self.stream.as_mut() {
            s.tx_out.extend_from_slice(&out);
        }
        self.flush_tx();
        if !complete(res, &self.interrupt, TX, "virtio-net tx") {
            self.broken = true;
        }
    }

    fn close(&mut self) {
        self.closed = true;
        self.rx_pending = None;
        if self.link.swap(0, Ordering::SeqCst) != 0 {
            let _ = self.interrupt.signal_config_change();
        }
    }

    fn wanted_events(&self) -> EventSet {
        let mut ev = EventSet::empty();
        if self.closed {
            return ev;
        }
        if self.rx_pending.is_none() {
            ev |= EventSet::IN;
        }
        if self.stream.as_ref().is_some_and(|s| !s.tx_out.is_empty()) {
            ev |= EventSet::OUT;
        }
        ev
    }

    fn update_registration(&mut self, ctl: &EpollCtl<'_>) {
        let Some(fd) = self.stream.as_ref().map(|s| s.sock.as_raw_fd()) else {
            return;
        };
        if self.closed {
            // A hung-up socket keeps reporting HUP whatever we ask for: stop watching it.
            if !self.unwatched {
                let _ = ctl.delete(fd);
                self.unwatched = true;
            }
            return;
        }
        let want = self.wanted_events();
        if want != self.registered && ctl.modify(fd, TOKEN_SOCKET, want).is_ok() {
            self.registered = want;
        }
    }
}

impl WorkerHandler for NetWorker {
    fn start(&mut self, ctl: &EpollCtl<'_>) -> std::io::Result<()> {
        if let Some(s) = &self.stream {
            ctl.add(s.sock.as_raw_fd(), TOKEN_SOCKET, EventSet::IN)?;
            self.registered = EventSet::IN;
        }
        Ok(())
    }

    fn queue_notified(&mut self, index: usize) {
        match index {
            RX => self.rx_pump(),
            _ => self.tx_pump(),
        }
    }

    fn queue_notified_ctl(&mut self, ctl: &EpollCtl<'_>, index: usize) {
        self.queue_notified(index);
        self.update_registration(ctl);
    }

    fn backend_event(&mut self, ctl: &EpollCtl<'_>, _token: u64, events: EventSet) {
        if events.contains(EventSet::OUT) {
            self.tx_pump();
        }
        if events.intersects(EventSet::IN | EventSet::HANG_UP | EventSet::ERROR) {
            self.rx_pump();
        }
        if events.intersects(EventSet::HANG_UP | EventSet::ERROR) && !self.closed {
            // Drain what is left first (done above), then give up on the backend.
            if self.stream.as_ref().is_none_or(|s| s.rx_buf.len() < 4) {
                crate::vmm_log!("virtio-net: the network backend hung up");
                self.close();
            }
        }
        self.update_registration(ctl);
    }
}

impl VirtioDevice for Net {
    fn device_type(&self) -> u32 {
        VIRTIO_ID_NET
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &[QUEUE_SIZE, QUEUE_SIZE]
    }

    fn device_features(&self) -> u64 {
        (1 << VIRTIO_NET_F_MAC) | (1 << VIRTIO_NET_F_STATUS) | (1 << VIRTIO_NET_F_MTU)
    }

    fn read_config(&self, offset: u64, data: &mut [u8]) {
        super::read_config_bytes(&self.config(), offset, data);
    }

    fn activate(
        &mut self,
        mem: GuestMemory,
        interrupt: Arc<Interrupt>,
        _features: u64,
        queues: Vec<ActiveQueue>,
    ) -> Result<(), ActivateError> {
        self.take_stream_back();
        let mut rxq = None;
        let mut txq = None;
        let mut notifiers = Vec::new();
        for q in queues {
            match q.index {
                RX => rxq = Some(q.queue),
                TX => txq = Some(q.queue),
                _ => continue,
            }
            notifiers.push((q.index, q.notify));
        }
        if rxq.is_none() {
            return Err(ActivateError::QueueNotReady(RX));
        }
        if txq.is_none() {
            return Err(ActivateError::QueueNotReady(TX));
        }
        // No check of the passt process here: activation runs on a vCPU thread, whose seccomp
        // filter has no wait4. A dead passt shows as a hung-up socket in the worker instead.
        let (tx, rx) = mpsc::channel();
        self.returned = Some(rx);
        let handler = NetWorker {
            mem,
            rxq,
            txq,
            interrupt,
            stream: self.stream.take(),
            give_back: tx,
            rx_pending: None,
            registered: EventSet::empty(),
            unwatched: false,
            closed: false,
            broken: false,
            link: Arc::clone(&self.link),
            stats: Arc::clone(&self.stats),
        };
        self.worker =
            Some(Worker::spawn("virtio-net", handler, notifiers).map_err(ActivateError::Worker)?);
        Ok(())
    }

    fn reset(&mut self) {
        if let Some(mut w) = self.worker.take() {
            w.stop();
        }
        self.take_stream_back();
    }
}
