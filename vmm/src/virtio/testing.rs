//! A model of a guest virtio driver, for tests and fuzz targets: it lays out split rings in guest
//! memory and programs a [`MmioTransport`] the way Linux's virtio_mmio driver does. Being public
//! lets integration tests and the fuzz crate use it; the VMM itself never does.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use virtio_bindings::virtio_mmio::*;
use vm_memory::{Bytes, GuestAddress};

use super::mmio::MmioTransport;
use super::{
    GuestMemory, IrqTrigger, VIRTIO_CONFIG_S_ACKNOWLEDGE, VIRTIO_CONFIG_S_DRIVER,
    VIRTIO_CONFIG_S_DRIVER_OK, VIRTIO_CONFIG_S_FEATURES_OK,
};

/// Descriptor flag: another descriptor follows.
pub const F_NEXT: u16 = 1;
/// Descriptor flag: device-writable.
pub const F_WRITE: u16 = 2;
/// Descriptor flag: points to an indirect table.
pub const F_INDIRECT: u16 = 4;

/// Guest memory size the helpers create.
pub const MEM_SIZE: usize = 16 << 20;
/// Where test data buffers may start (below are the rings).
pub const DATA_START: u64 = 0x40_0000;

/// Counts interrupts instead of raising them.
#[derive(Default, Clone)]
pub struct CountingIrq(pub Arc<AtomicU64>);

impl IrqTrigger for CountingIrq {
    fn trigger(&self) -> io::Result<()> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

impl CountingIrq {
    /// Interrupts raised so far.
    pub fn count(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// Fresh guest memory of [`MEM_SIZE`] at address 0.
pub fn guest_memory() -> GuestMemory {
    // A fixed, small mapping; failing here means the host is out of memory.
    GuestMemory::from_ranges(&[(GuestAddress(0), MEM_SIZE)])
        .unwrap_or_else(|e| panic!("cannot map {MEM_SIZE} bytes of test guest memory: {e}"))
}

/// Ring addresses of queue `q`.
pub fn ring_addrs(q: u16) -> (u64, u64, u64) {
    let base = 0x1_0000 + u64::from(q) * 0x2_0000;
    (base, base + 0x1_0000, base + 0x1_8000)
}

/// Reads a 32-bit register.
pub fn rd(t: &mut MmioTransport, off: u32) -> u32 {
    let mut b = [0u8; 4];
    t.read(u64::from(off), &mut b);
    u32::from_le_bytes(b)
}

/// Writes a 32-bit register.
pub fn wr(t: &mut MmioTransport, off: u32, v: u32) {
    t.write(u64::from(off), &v.to_le_bytes());
}

/// The driver side of one queue.
#[derive(Debug)]
pub struct DriverQueue {
    /// Queue index.
    pub index: u16,
    /// Queue size.
    pub size: u16,
    /// Descriptor table address.
    pub desc: u64,
    /// Available ring address.
    pub avail: u64,
    /// Used ring address.
    pub used: u64,
    /// Next avail index we will publish.
    pub avail_idx: u16,
    /// Used entries consumed so far.
    pub last_used: u16,
}

impl DriverQueue {
    /// Writes descriptor `i`.
    pub fn set_desc(&self, mem: &GuestMemory, i: u16, addr: u64, len: u32, flags: u16, next: u16) {
        let at = GuestAddress(self.desc + 16 * u64::from(i));
        let mut d = [0u8; 16];
        d[0..8].copy_from_slice(&addr.to_le_bytes());
        d[8..12].copy_from_slice(&len.to_le_bytes());
        d[12..14].copy_from_slice(&flags.to_le_bytes());
        d[14..16].copy_from_slice(&next.to_le_bytes());
        must(mem.write_slice(&d, at));
    }

    /// Puts `head` in the available ring and bumps the index.
    pub fn publish(&mut self, mem: &GuestMemory, head: u16) {
        let slot = self.avail_idx % self.size;
        must(mem.write_obj(head, GuestAddress(self.avail + 4 + 2 * u64::from(slot))));
        self.avail_idx = self.avail_idx.wrapping_add(1);
        must(mem.write_obj(self.avail_idx, GuestAddress(self.avail + 2)));
    }

    /// Sets the avail index to any value (hostile tests).
    pub fn set_avail_idx(&mut self, mem: &GuestMemory, idx: u16) {
        self.avail_idx = idx;
        must(mem.write_obj(idx, GuestAddress(self.avail + 2)));
    }

    /// The device's used index.
    pub fn used_idx(&self, mem: &GuestMemory) -> u16 {
        must(mem.read_obj(GuestAddress(self.used + 2)))
    }

    /// Used element `i` (modulo size): (id, len).
    pub fn used_elem(&self, mem: &GuestMemory, i: u16) -> (u32, u32) {
        let at = self.used + 4 + 8 * u64::from(i % self.size);
        (
            must(mem.read_obj(GuestAddress(at))),
            must(mem.read_obj(GuestAddress(at + 4))),
        )
    }

    /// Pops the next used element, if the device produced one.
    pub fn pop_used(&mut self, mem: &GuestMemory) -> Option<(u32, u32)> {
        if self.used_idx(mem) == self.last_used {
            return None;
        }
        let e = self.used_elem(mem, self.last_used);
        self.last_used = self.last_used.wrapping_add(1);
        Some(e)
    }

    /// EVENT_IDX: writes used_event (the used index after which the driver wants an interrupt).
    pub fn set_used_event(&self, mem: &GuestMemory, v: u16) {
        let at = self.avail + 4 + 2 * u64::from(self.size);
        must(mem.write_obj(v, GuestAddress(at)));
    }

    /// EVENT_IDX: reads avail_event (where the device wants the next notification).
    pub fn avail_event(&self, mem: &GuestMemory) -> u16 {
        let at = self.used + 4 + 8 * u64::from(self.size);
        must(mem.read_obj(GuestAddress(at)))
    }
}

fn must<T, E: std::fmt::Display>(r: Result<T, E>) -> T {
    r.unwrap_or_else(|e| panic!("test guest memory access failed: {e}"))
}

/// Runs the Linux-style initialisation: reset, ACKNOWLEDGE, DRIVER, features (offered & `want`),
/// FEATURES_OK, queues of `sizes`, DRIVER_OK. Returns the negotiated features and the queues,
/// or `Err(status)` if the device refused FEATURES_OK.
pub fn init_device(
    t: &mut MmioTransport,
    want: u64,
    sizes: &[u16],
) -> Result<(u64, Vec<DriverQueue>), u32> {
    wr(t, VIRTIO_MMIO_STATUS, 0);
    wr(t, VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE);
    wr(
        t,
        VIRTIO_MMIO_STATUS,
        VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER,
    );
    wr(t, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
    let lo = rd(t, VIRTIO_MMIO_DEVICE_FEATURES);
    wr(t, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
    let hi = rd(t, VIRTIO_MMIO_DEVICE_FEATURES);
    let features = ((u64::from(hi) << 32) | u64::from(lo)) & want;
    wr(t, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
    wr(t, VIRTIO_MMIO_DRIVER_FEATURES, features as u32);
    wr(t, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
    wr(t, VIRTIO_MMIO_DRIVER_FEATURES, (features >> 32) as u32);
    let s = VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK;
    wr(t, VIRTIO_MMIO_STATUS, s);
    let got = rd(t, VIRTIO_MMIO_STATUS);
    if got & VIRTIO_CONFIG_S_FEATURES_OK == 0 {
        return Err(got);
    }
    let mut queues = Vec::new();
    for (i, &size) in sizes.iter().enumerate() {
        let i = i as u16;
        let (desc, avail, used) = ring_addrs(i);
        wr(t, VIRTIO_MMIO_QUEUE_SEL, u32::from(i));
        wr(t, VIRTIO_MMIO_QUEUE_NUM, u32::from(size));
        wr(t, VIRTIO_MMIO_QUEUE_DESC_LOW, desc as u32);
        wr(t, VIRTIO_MMIO_QUEUE_DESC_HIGH, (desc >> 32) as u32);
        wr(t, VIRTIO_MMIO_QUEUE_AVAIL_LOW, avail as u32);
        wr(t, VIRTIO_MMIO_QUEUE_AVAIL_HIGH, (avail >> 32) as u32);
        wr(t, VIRTIO_MMIO_QUEUE_USED_LOW, used as u32);
        wr(t, VIRTIO_MMIO_QUEUE_USED_HIGH, (used >> 32) as u32);
        wr(t, VIRTIO_MMIO_QUEUE_READY, 1);
        queues.push(DriverQueue {
            index: i,
            size,
            desc,
            avail,
            used,
            avail_idx: 0,
            last_used: 0,
        });
    }
    wr(t, VIRTIO_MMIO_STATUS, s | VIRTIO_CONFIG_S_DRIVER_OK);
    Ok((features, queues))
}

/// Writes QueueNotify for `q`.
pub fn notify(t: &mut MmioTransport, q: u16) {
    wr(t, VIRTIO_MMIO_QUEUE_NOTIFY, u32::from(q));
}

/// Polls until `cond` holds or `timeout_ms` pass; returns whether it held.
pub fn wait_for(timeout_ms: u64, mut cond: impl FnMut() -> bool) -> bool {
    let end = std::time::Instant::now() + std::time::Duration::from_millis(timeout_ms);
    loop {
        if cond() {
            return true;
        }
        if std::time::Instant::now() > end {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}
