//! The virtio-mmio transport, version 2 ("modern") registers only, over [`TransportCore`].
//!
//! Legacy drivers are refused twice: the Version register says 2 (a legacy-only driver gives up),
//! and FEATURES_OK is not accepted unless the driver acknowledged VIRTIO_F_VERSION_1.

use std::io;
use std::sync::Arc;

use virtio_bindings::virtio_mmio::*;
use virtio_queue::QueueT;
use vmm_sys_util::eventfd::EventFd;

use super::transport::{TransportCore, DRV};
use super::{CloseError, GuestMemory, Interrupt, IrqTrigger, VirtioDevice};

pub use super::transport::TRANSPORT_FEATURES;

/// "virt" in little endian.
pub const MMIO_MAGIC: u32 = 0x7472_6976;
/// Modern virtio-mmio.
pub const MMIO_VERSION: u32 = 2;
/// Vendor ID we report ("VIRE").
pub const VENDOR_ID: u32 = 0x4552_4956;

/// One virtio device's register window.
pub struct MmioTransport {
    core: TransportCore,
    shm_sel: u32,
}

impl MmioTransport {
    /// Wraps `device`; `irq` raises its interrupt line.
    pub fn new(
        device: Box<dyn VirtioDevice>,
        mem: GuestMemory,
        irq: Box<dyn IrqTrigger>,
    ) -> io::Result<Self> {
        Ok(MmioTransport {
            core: TransportCore::new(device, mem, irq, "virtio-mmio")?,
            shm_sel: 0,
        })
    }

    /// The queue notification eventfds: register each as a KVM ioeventfd on
    /// `base + VIRTIO_MMIO_QUEUE_NOTIFY` with datamatch = its index (32-bit).
    pub fn queue_notifiers(&self) -> impl Iterator<Item = (u32, &EventFd)> {
        self.core.queue_notifiers()
    }

    /// The interrupt state shared with the device worker.
    pub fn interrupt(&self) -> Arc<Interrupt> {
        Arc::clone(self.core.interrupt())
    }

    /// Current device status register.
    pub fn status(&self) -> u32 {
        self.core.raw_status()
    }

    /// The wrapped device's type.
    pub fn device_type(&self) -> u32 {
        self.core.device_type()
    }

    /// Handles a guest read of `data.len()` bytes at `offset` into the window.
    pub fn read(&mut self, offset: u64, data: &mut [u8]) {
        if offset >= u64::from(VIRTIO_MMIO_CONFIG) {
            self.core
                .device
                .read_config(offset - u64::from(VIRTIO_MMIO_CONFIG), data);
            return;
        }
        data.fill(0);
        if data.len() != 4 || offset % 4 != 0 {
            return;
        }
        let core = &self.core;
        let v = match offset as u32 {
            VIRTIO_MMIO_MAGIC_VALUE => MMIO_MAGIC,
            VIRTIO_MMIO_VERSION => MMIO_VERSION,
            VIRTIO_MMIO_DEVICE_ID => core.device_type(),
            VIRTIO_MMIO_VENDOR_ID => VENDOR_ID,
            VIRTIO_MMIO_DEVICE_FEATURES => core.device_features_window(),
            VIRTIO_MMIO_QUEUE_NUM_MAX => {
                core.selected_queue().map_or(0, |q| u32::from(q.max_size()))
            }
            VIRTIO_MMIO_QUEUE_READY => core.selected_queue().map_or(0, |q| u32::from(q.ready())),
            VIRTIO_MMIO_INTERRUPT_STATUS => core.interrupt().status(),
            VIRTIO_MMIO_STATUS => core.status(),
            // No shared memory regions: a length of all ones says "none".
            VIRTIO_MMIO_SHM_LEN_LOW | VIRTIO_MMIO_SHM_LEN_HIGH => u32::MAX,
            VIRTIO_MMIO_SHM_BASE_LOW | VIRTIO_MMIO_SHM_BASE_HIGH => u32::MAX,
            VIRTIO_MMIO_CONFIG_GENERATION => core.interrupt().config_generation(),
            _ => 0,
        };
        data.copy_from_slice(&v.to_le_bytes());
    }

    /// Handles a guest write of `data` at `offset` into the window.
    pub fn write(&mut self, offset: u64, data: &[u8]) {
        if offset >= u64::from(VIRTIO_MMIO_CONFIG) {
            if self.core.raw_status() & DRV != 0 {
                self.core
                    .device
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
        let core = &mut self.core;
        match offset as u32 {
            VIRTIO_MMIO_DEVICE_FEATURES_SEL => core.device_features_sel = v,
            VIRTIO_MMIO_DRIVER_FEATURES_SEL => core.driver_features_sel = v,
            VIRTIO_MMIO_DRIVER_FEATURES => core.set_driver_features(v),
            VIRTIO_MMIO_QUEUE_SEL => core.queue_sel = v,
            VIRTIO_MMIO_QUEUE_NUM => core.with_unready_queue(|q| q.set_size(v as u16)),
            VIRTIO_MMIO_QUEUE_READY => core.set_queue_ready(v),
            VIRTIO_MMIO_QUEUE_DESC_LOW => {
                core.with_unready_queue(|q| q.set_desc_table_address(Some(v), None))
            }
            VIRTIO_MMIO_QUEUE_DESC_HIGH => {
                core.with_unready_queue(|q| q.set_desc_table_address(None, Some(v)))
            }
            VIRTIO_MMIO_QUEUE_AVAIL_LOW => {
                core.with_unready_queue(|q| q.set_avail_ring_address(Some(v), None))
            }
            VIRTIO_MMIO_QUEUE_AVAIL_HIGH => {
                core.with_unready_queue(|q| q.set_avail_ring_address(None, Some(v)))
            }
            VIRTIO_MMIO_QUEUE_USED_LOW => {
                core.with_unready_queue(|q| q.set_used_ring_address(Some(v), None))
            }
            VIRTIO_MMIO_QUEUE_USED_HIGH => {
                core.with_unready_queue(|q| q.set_used_ring_address(None, Some(v)))
            }
            VIRTIO_MMIO_QUEUE_NOTIFY => core.notify(v),
            VIRTIO_MMIO_INTERRUPT_ACK => core.interrupt().ack(v),
            VIRTIO_MMIO_STATUS => core.set_status(v),
            VIRTIO_MMIO_SHM_SEL => self.shm_sel = v,
            _ => {}
        }
    }

    /// The VM is ending: see [`VirtioDevice::close`].
    pub fn close(&mut self) -> Result<(), CloseError> {
        self.core.close()
    }

    /// Device reset: stops the worker and forgets everything the driver set up.
    pub fn reset(&mut self) {
        self.core.reset();
        self.shm_sel = 0;
    }
}
