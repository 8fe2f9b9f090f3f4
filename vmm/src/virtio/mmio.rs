//! The virtio-mmio transport, version 2 ("modern") registers only.
//!
//! Legacy drivers are refused twice: the Version register says 2 (a legacy-only driver gives up),
//! and FEATURES_OK is not accepted unless the driver acknowledged VIRTIO_F_VERSION_1. The device
//! status follows the order the specification prescribes (ACKNOWLEDGE, DRIVER, FEATURES_OK,
//! DRIVER_OK; one write may add several in that order); writes out of order are ignored, and
//! writing 0 resets everything.

use std::io;
use std::sync::Arc;

use virtio_bindings::virtio_mmio::*;
use virtio_bindings::virtio_ring::VIRTIO_RING_F_INDIRECT_DESC;
use virtio_queue::{Queue, QueueT};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use super::{
    ActiveQueue, CloseError, GuestMemory, Interrupt, IrqTrigger, VirtioDevice,
    VIRTIO_CONFIG_S_ACKNOWLEDGE, VIRTIO_CONFIG_S_DRIVER, VIRTIO_CONFIG_S_DRIVER_OK,
    VIRTIO_CONFIG_S_FAILED, VIRTIO_CONFIG_S_FEATURES_OK, VIRTIO_CONFIG_S_NEEDS_RESET,
    VIRTIO_F_VERSION_1, VIRTIO_RING_F_EVENT_IDX,
};

/// "virt" in little endian.
pub const MMIO_MAGIC: u32 = 0x7472_6976;
/// Modern virtio-mmio.
pub const MMIO_VERSION: u32 = 2;
/// Vendor ID we report ("VIRE").
pub const VENDOR_ID: u32 = 0x4552_4956;

const ACK: u32 = VIRTIO_CONFIG_S_ACKNOWLEDGE;
const DRV: u32 = VIRTIO_CONFIG_S_DRIVER;
const FOK: u32 = VIRTIO_CONFIG_S_FEATURES_OK;
const DOK: u32 = VIRTIO_CONFIG_S_DRIVER_OK;

/// Features every device offers on this transport.
pub const TRANSPORT_FEATURES: u64 =
    (1 << VIRTIO_F_VERSION_1) | (1 << VIRTIO_RING_F_EVENT_IDX) | (1 << VIRTIO_RING_F_INDIRECT_DESC);

/// One virtio device's register window.
pub struct MmioTransport {
    device: Box<dyn VirtioDevice>,
    mem: GuestMemory,
    interrupt: Arc<Interrupt>,
    status: u32,
    device_features_sel: u32,
    driver_features_sel: u32,
    driver_features: u64,
    queue_sel: u32,
    queues: Vec<Queue>,
    notifiers: Vec<EventFd>,
    shm_sel: u32,
    activated: bool,
}

impl MmioTransport {
    /// Wraps `device`; `irq` raises its interrupt line.
    pub fn new(
        device: Box<dyn VirtioDevice>,
        mem: GuestMemory,
        irq: Box<dyn IrqTrigger>,
    ) -> io::Result<Self> {
        let mut queues = Vec::new();
        let mut notifiers = Vec::new();
        for &max in device.queue_max_sizes() {
            let q = Queue::new(max).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("queue size {max}: {e}"),
                )
            })?;
            queues.push(q);
            notifiers.push(EventFd::new(EFD_NONBLOCK)?);
        }
        Ok(MmioTransport {
            device,
            mem,
            interrupt: Arc::new(Interrupt::new(irq)),
            status: 0,
            device_features_sel: 0,
            driver_features_sel: 0,
            driver_features: 0,
            queue_sel: 0,
            queues,
            notifiers,
            shm_sel: 0,
            activated: false,
        })
    }

    /// The queue notification eventfds: register each as a KVM ioeventfd on
    /// `base + VIRTIO_MMIO_QUEUE_NOTIFY` with datamatch = its index (32-bit).
    pub fn queue_notifiers(&self) -> impl Iterator<Item = (u32, &EventFd)> {
        self.notifiers
            .iter()
            .enumerate()
            .map(|(i, fd)| (i as u32, fd))
    }

    /// The interrupt state shared with the device worker.
    pub fn interrupt(&self) -> Arc<Interrupt> {
        Arc::clone(&self.interrupt)
    }

    /// Current device status register.
    pub fn status(&self) -> u32 {
        self.status
    }

    /// The wrapped device's type.
    pub fn device_type(&self) -> u32 {
        self.device.device_type()
    }

    fn offered_features(&self) -> u64 {
        self.device.device_features() | TRANSPORT_FEATURES
    }

    fn selected_queue(&mut self) -> Option<&mut Queue> {
        self.queues.get_mut(self.queue_sel as usize)
    }

    /// Queue registers may change only between FEATURES_OK and DRIVER_OK, and only while the
    /// selected queue is not ready.
    fn queue_config_writable(&self) -> bool {
        self.status & (FOK | DOK | VIRTIO_CONFIG_S_FAILED) == FOK
    }

    /// Handles a guest read of `data.len()` bytes at `offset` into the window.
    pub fn read(&mut self, offset: u64, data: &mut [u8]) {
        if offset >= u64::from(VIRTIO_MMIO_CONFIG) {
            self.device
                .read_config(offset - u64::from(VIRTIO_MMIO_CONFIG), data);
            return;
        }
        data.fill(0);
        if data.len() != 4 || offset % 4 != 0 {
            return;
        }
        let v = match offset as u32 {
            VIRTIO_MMIO_MAGIC_VALUE => MMIO_MAGIC,
            VIRTIO_MMIO_VERSION => MMIO_VERSION,
            VIRTIO_MMIO_DEVICE_ID => self.device.device_type(),
            VIRTIO_MMIO_VENDOR_ID => VENDOR_ID,
            VIRTIO_MMIO_DEVICE_FEATURES => match self.device_features_sel {
                0 => self.offered_features() as u32,
                1 => (self.offered_features() >> 32) as u32,
                _ => 0,
            },
            VIRTIO_MMIO_QUEUE_NUM_MAX => self
                .queues
                .get(self.queue_sel as usize)
                .map_or(0, |q| u32::from(q.max_size())),
            VIRTIO_MMIO_QUEUE_READY => self
                .queues
                .get(self.queue_sel as usize)
                .map_or(0, |q| u32::from(q.ready())),
            VIRTIO_MMIO_INTERRUPT_STATUS => self.interrupt.status(),
            VIRTIO_MMIO_STATUS => {
                let mut s = self.status;
                if self.interrupt.needs_reset() {
                    s |= VIRTIO_CONFIG_S_NEEDS_RESET;
                }
                s
            }
            // No shared memory regions: a length of all ones says "none".
            VIRTIO_MMIO_SHM_LEN_LOW | VIRTIO_MMIO_SHM_LEN_HIGH => u32::MAX,
            VIRTIO_MMIO_SHM_BASE_LOW | VIRTIO_MMIO_SHM_BASE_HIGH => u32::MAX,
            VIRTIO_MMIO_CONFIG_GENERATION => self.interrupt.config_generation(),
            _ => 0,
        };
        data.copy_from_slice(&v.to_le_bytes());
    }

    /// Handles a guest write of `data` at `offset` into the window.
    pub fn write(&mut self, offset: u64, data: &[u8]) {
        if offset >= u64::from(VIRTIO_MMIO_CONFIG) {
            if self.status & DRV != 0 {
                self.device
                    .write_config(offset - u64::from(VIRTIO_MMIO_CONFIG), data);
            }
            return;
        }
        let Ok(bytes) = <[u8; 4]>::try_from(data) else {
            return;
        };
        if offset % 4 != 0 {
            return;
        }
        let v = u32::from_le_bytes(bytes);
        match offset as u32 {
            VIRTIO_MMIO_DEVICE_FEATURES_SEL => self.device_features_sel = v,
            VIRTIO_MMIO_DRIVER_FEATURES_SEL => self.driver_features_sel = v,
            VIRTIO_MMIO_DRIVER_FEATURES => self.set_driver_features(v),
            VIRTIO_MMIO_QUEUE_SEL => self.queue_sel = v,
            VIRTIO_MMIO_QUEUE_NUM => self.with_unready_queue(|q| q.set_size(v as u16)),
            VIRTIO_MMIO_QUEUE_READY => self.set_queue_ready(v),
            VIRTIO_MMIO_QUEUE_DESC_LOW => {
                self.with_unready_queue(|q| q.set_desc_table_address(Some(v), None))
            }
            VIRTIO_MMIO_QUEUE_DESC_HIGH => {
                self.with_unready_queue(|q| q.set_desc_table_address(None, Some(v)))
            }
            VIRTIO_MMIO_QUEUE_AVAIL_LOW => {
                self.with_unready_queue(|q| q.set_avail_ring_address(Some(v), None))
            }
            VIRTIO_MMIO_QUEUE_AVAIL_HIGH => {
                self.with_unready_queue(|q| q.set_avail_ring_address(None, Some(v)))
            }
            VIRTIO_MMIO_QUEUE_USED_LOW => {
                self.with_unready_queue(|q| q.set_used_ring_address(Some(v), None))
            }
            VIRTIO_MMIO_QUEUE_USED_HIGH => {
                self.with_unready_queue(|q| q.set_used_ring_address(None, Some(v)))
            }
            VIRTIO_MMIO_QUEUE_NOTIFY => self.notify(v),
            VIRTIO_MMIO_INTERRUPT_ACK => self.interrupt.ack(v),
            VIRTIO_MMIO_STATUS => self.set_status(v),
            VIRTIO_MMIO_SHM_SEL => self.shm_sel = v,
            _ => {}
        }
    }

    fn set_driver_features(&mut self, v: u32) {
        if self.status & (DRV | FOK) != DRV {
            return;
        }
        match self.driver_features_sel {
            0 => self.driver_features = (self.driver_features & !0xffff_ffff) | u64::from(v),
            1 => self.driver_features = (self.driver_features & 0xffff_ffff) | (u64::from(v) << 32),
            _ => {}
        }
    }

    fn set_queue_ready(&mut self, v: u32) {
        if !self.queue_config_writable() {
            return;
        }
        if let Some(q) = self.selected_queue() {
            q.set_ready(v == 1);
        }
    }

    fn notify(&mut self, v: u32) {
        if !self.activated {
            return;
        }
        if let Some(fd) = self.notifiers.get(v as usize) {
            // Only fails if the counter would overflow, i.e. a notification is already pending.
            let _ = fd.write(1);
        }
    }

    fn with_unready_queue(&mut self, f: impl FnOnce(&mut Queue)) {
        if !self.queue_config_writable() {
            return;
        }
        if let Some(q) = self.selected_queue() {
            if !q.ready() {
                f(q);
            }
        }
    }

    fn set_status(&mut self, v: u32) {
        if v == 0 {
            self.reset();
            return;
        }
        let old = self.status;
        if v & VIRTIO_CONFIG_S_FAILED != 0 {
            self.status |= VIRTIO_CONFIG_S_FAILED;
            return;
        }
        if v & !(ACK | DRV | FOK | DOK) != 0 {
            return;
        }
        // A driver only ever adds bits, and bits are never cleared here short of a reset. A
        // write that leaves set bits out adds the ones it has: SeaBIOS's virtio-scsi-mmio
        // driver writes FEATURES_OK alone, and later ACKNOWLEDGE | DRIVER | DRIVER_OK without
        // FEATURES_OK (QEMU stores each value as written).
        let v = v | old;
        // One write may add several steps at once (SeaBIOS writes ACKNOWLEDGE | DRIVER in
        // one go); each must still follow the ones before it, and a step refused stops there.
        let mut before = 0;
        for step in [ACK, DRV, FOK, DOK] {
            let required = before;
            before |= step;
            if v & step == 0 || self.status & step != 0 {
                continue;
            }
            if self.status != required || (step == FOK && !self.features_acceptable()) {
                return;
            }
            self.status |= step;
            if step == DOK {
                self.activate();
            }
        }
    }

    /// FEATURES_OK is granted only for a subset of what we offered that includes VERSION_1.
    fn features_acceptable(&self) -> bool {
        self.driver_features & !self.offered_features() == 0
            && self.driver_features & (1 << VIRTIO_F_VERSION_1) != 0
    }

    fn activate(&mut self) {
        let event_idx = self.driver_features & (1 << VIRTIO_RING_F_EVENT_IDX) != 0;
        let mut active = Vec::new();
        for (index, q) in self.queues.iter().enumerate() {
            if !q.ready() {
                continue;
            }
            if !q.is_valid(&self.mem) {
                crate::vmm_log!(
                    "virtio-mmio (device type {}): queue {index} has invalid size or addresses",
                    self.device.device_type()
                );
                self.interrupt.set_needs_reset();
                return;
            }
            let notify = match self.notifiers[index].try_clone() {
                Ok(fd) => fd,
                Err(e) => {
                    crate::vmm_log!("virtio-mmio: cannot clone queue {index} eventfd: {e}");
                    self.interrupt.set_needs_reset();
                    return;
                }
            };
            let mut queue = match Queue::try_from(q.state()) {
                Ok(q) => q,
                Err(e) => {
                    crate::vmm_log!("virtio-mmio: queue {index}: {e}");
                    self.interrupt.set_needs_reset();
                    return;
                }
            };
            queue.set_event_idx(event_idx);
            active.push(ActiveQueue {
                index,
                queue,
                notify,
            });
        }
        match self.device.activate(
            self.mem.clone(),
            Arc::clone(&self.interrupt),
            self.driver_features,
            active,
        ) {
            Ok(()) => self.activated = true,
            Err(e) => {
                crate::vmm_log!(
                    "virtio-mmio (device type {}): activation failed: {e}",
                    self.device.device_type()
                );
                self.interrupt.set_needs_reset();
            }
        }
    }

    /// The VM is ending: see [`VirtioDevice::close`].
    pub fn close(&mut self) -> Result<(), CloseError> {
        self.device.close()
    }

    /// Device reset: stops the worker and forgets everything the driver set up.
    pub fn reset(&mut self) {
        self.device.reset();
        self.activated = false;
        self.status = 0;
        self.device_features_sel = 0;
        self.driver_features_sel = 0;
        self.driver_features = 0;
        self.queue_sel = 0;
        self.shm_sel = 0;
        for q in &mut self.queues {
            q.reset();
        }
        for fd in &self.notifiers {
            // Drop a notification left over from before the reset.
            let _ = fd.read();
        }
        self.interrupt.clear();
    }
}
