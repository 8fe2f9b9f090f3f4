//! What every virtio transport shares: the device, its queues and their notification eventfds,
//! feature negotiation, the device status sequence and activation. The MMIO and PCI transports
//! only map their registers onto it.
//!
//! The device status follows the order the specification prescribes (ACKNOWLEDGE, DRIVER,
//! FEATURES_OK, DRIVER_OK; one write may add several in that order); writes out of order are
//! ignored, and writing 0 resets everything. FEATURES_OK is not accepted unless the driver
//! acknowledged VIRTIO_F_VERSION_1, so legacy drivers are refused.

use std::io;
use std::sync::Arc;

use virtio_bindings::virtio_ring::VIRTIO_RING_F_INDIRECT_DESC;
use virtio_queue::{Queue, QueueT};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use super::{
    ActiveQueue, CloseError, GuestMemory, Interrupt, IrqTrigger, VirtioDevice,
    VIRTIO_CONFIG_S_ACKNOWLEDGE, VIRTIO_CONFIG_S_DRIVER, VIRTIO_CONFIG_S_DRIVER_OK,
    VIRTIO_CONFIG_S_FAILED, VIRTIO_CONFIG_S_FEATURES_OK, VIRTIO_CONFIG_S_NEEDS_RESET,
    VIRTIO_F_VERSION_1, VIRTIO_RING_F_EVENT_IDX,
};

pub(crate) const ACK: u32 = VIRTIO_CONFIG_S_ACKNOWLEDGE;
pub(crate) const DRV: u32 = VIRTIO_CONFIG_S_DRIVER;
pub(crate) const FOK: u32 = VIRTIO_CONFIG_S_FEATURES_OK;
pub(crate) const DOK: u32 = VIRTIO_CONFIG_S_DRIVER_OK;

/// Features every device offers on every transport.
pub const TRANSPORT_FEATURES: u64 =
    (1 << VIRTIO_F_VERSION_1) | (1 << VIRTIO_RING_F_EVENT_IDX) | (1 << VIRTIO_RING_F_INDIRECT_DESC);

/// The transport-independent state of one device.
pub struct TransportCore {
    pub(crate) device: Box<dyn VirtioDevice>,
    mem: GuestMemory,
    interrupt: Arc<Interrupt>,
    status: u32,
    pub(crate) device_features_sel: u32,
    pub(crate) driver_features_sel: u32,
    driver_features: u64,
    pub(crate) queue_sel: u32,
    queues: Vec<Queue>,
    notifiers: Vec<EventFd>,
    activated: bool,
    /// Named in log lines ("virtio-mmio", "virtio-pci").
    transport: &'static str,
}

impl TransportCore {
    /// Wraps `device`; `irq` raises its interrupts.
    pub fn new(
        device: Box<dyn VirtioDevice>,
        mem: GuestMemory,
        irq: Box<dyn IrqTrigger>,
        transport: &'static str,
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
        Ok(TransportCore {
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
            activated: false,
            transport,
        })
    }

    /// The queue notification eventfds with their queue index.
    pub fn queue_notifiers(&self) -> impl Iterator<Item = (u32, &EventFd)> {
        self.notifiers
            .iter()
            .enumerate()
            .map(|(i, fd)| (i as u32, fd))
    }

    pub fn interrupt(&self) -> &Arc<Interrupt> {
        &self.interrupt
    }

    /// The status register as the driver reads it (NEEDS_RESET added when set).
    pub fn status(&self) -> u32 {
        let mut s = self.status;
        if self.interrupt.needs_reset() {
            s |= VIRTIO_CONFIG_S_NEEDS_RESET;
        }
        s
    }

    pub fn raw_status(&self) -> u32 {
        self.status
    }

    pub fn device_type(&self) -> u32 {
        self.device.device_type()
    }

    pub fn queue_count(&self) -> usize {
        self.queues.len()
    }

    pub fn offered_features(&self) -> u64 {
        self.device.device_features() | TRANSPORT_FEATURES
    }

    /// The 32 feature bits DeviceFeaturesSel selects.
    pub fn device_features_window(&self) -> u32 {
        match self.device_features_sel {
            0 => self.offered_features() as u32,
            1 => (self.offered_features() >> 32) as u32,
            _ => 0,
        }
    }

    /// The 32 driver feature bits DriverFeaturesSel selects, as written so far.
    pub fn driver_features_window(&self) -> u32 {
        match self.driver_features_sel {
            0 => self.driver_features as u32,
            1 => (self.driver_features >> 32) as u32,
            _ => 0,
        }
    }

    pub fn selected_queue(&self) -> Option<&Queue> {
        self.queues.get(self.queue_sel as usize)
    }

    fn selected_queue_mut(&mut self) -> Option<&mut Queue> {
        self.queues.get_mut(self.queue_sel as usize)
    }

    /// Queue registers may change only between FEATURES_OK and DRIVER_OK, and only while the
    /// selected queue is not ready.
    fn queue_config_writable(&self) -> bool {
        self.status & (FOK | DOK | VIRTIO_CONFIG_S_FAILED) == FOK
    }

    pub fn set_driver_features(&mut self, v: u32) {
        if self.status & (DRV | FOK) != DRV {
            return;
        }
        match self.driver_features_sel {
            0 => self.driver_features = (self.driver_features & !0xffff_ffff) | u64::from(v),
            1 => self.driver_features = (self.driver_features & 0xffff_ffff) | (u64::from(v) << 32),
            _ => {}
        }
    }

    pub fn set_queue_ready(&mut self, v: u32) {
        if !self.queue_config_writable() {
            return;
        }
        if let Some(q) = self.selected_queue_mut() {
            q.set_ready(v == 1);
        }
    }

    /// The driver notified queue `v`.
    pub fn notify(&mut self, v: u32) {
        if !self.activated {
            return;
        }
        if let Some(fd) = self.notifiers.get(v as usize) {
            // Only fails if the counter would overflow, i.e. a notification is already pending.
            let _ = fd.write(1);
        }
    }

    /// Applies `f` to the selected queue while its configuration may change.
    pub fn with_unready_queue(&mut self, f: impl FnOnce(&mut Queue)) {
        if !self.queue_config_writable() {
            return;
        }
        if let Some(q) = self.selected_queue_mut() {
            if !q.ready() {
                f(q);
            }
        }
    }

    pub fn set_status(&mut self, v: u32) {
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
        let what = self.transport;
        let mut active = Vec::new();
        for (index, q) in self.queues.iter().enumerate() {
            if !q.ready() {
                continue;
            }
            if !q.is_valid(&self.mem) {
                crate::vmm_log!(
                    "{what} (device type {}): queue {index} has invalid size or addresses",
                    self.device.device_type()
                );
                self.interrupt.set_needs_reset();
                return;
            }
            let notify = match self.notifiers[index].try_clone() {
                Ok(fd) => fd,
                Err(e) => {
                    crate::vmm_log!("{what}: cannot clone queue {index} eventfd: {e}");
                    self.interrupt.set_needs_reset();
                    return;
                }
            };
            let mut queue = match Queue::try_from(q.state()) {
                Ok(q) => q,
                Err(e) => {
                    crate::vmm_log!("{what}: queue {index}: {e}");
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
                    "{what} (device type {}): activation failed: {e}",
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
