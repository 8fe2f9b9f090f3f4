//! The virtio-pci transport, modern (virtio 1.x) only, as a PCI function over
//! [`TransportCore`].
//!
//! Layout, as QEMU's modern devices have it (SeaBIOS and OVMF read the capabilities, not fixed
//! offsets): BAR 1 holds the MSI-X table (at 0) and pending bits (at 0x800); BAR 4, 64-bit
//! prefetchable memory of 16 KiB, holds the common configuration (0x0000), the ISR byte
//! (0x1000), the device configuration (0x2000) and one notification address per queue
//! (0x3000 + 4 × queue). A VIRTIO_PCI_CAP_PCI_CFG capability reaches BAR 4 through
//! configuration space, for firmware that cannot map a 64-bit BAR (SeaBIOS in 16-bit code).
//!
//! Interrupts: with MSI-X enabled each queue and the configuration use the vector the driver
//! assigned (none if it assigned NO_VECTOR); without it, the INTx line. The ISR register is
//! read-to-clear.

use std::io;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};

use virtio_queue::QueueT;

use super::transport::{TransportCore, DRV};
use super::{CloseError, GuestMemory, IrqTrigger, VirtioDevice};
use crate::pci::config::{BarKind, ConfigSpace, Identity};
use crate::pci::msix::{MsiSink, Msix, CAP_ID as MSIX_CAP_ID};
use crate::pci::root::PciFunction;

pub const VENDOR_ID: u16 = 0x1af4;
/// Modern device IDs are 0x1040 + the virtio device type.
pub const DEVICE_ID_BASE: u16 = 0x1040;
/// "No vector" in the MSI-X vector fields.
pub const NO_VECTOR: u16 = 0xffff;

const CAP_VENDOR: u8 = 0x09;
const CFG_COMMON: u8 = 1;
const CFG_NOTIFY: u8 = 2;
const CFG_ISR: u8 = 3;
const CFG_DEVICE: u8 = 4;
const CFG_PCI: u8 = 5;

pub const MSIX_BAR: usize = 1;
const MSIX_BAR_SIZE: u64 = 0x1000;
const PBA_OFFSET: u64 = 0x800;
pub const REGS_BAR: usize = 4;
const REGS_SIZE: u64 = 0x4000;
const COMMON_OFFSET: u64 = 0x0000;
const COMMON_LEN: u64 = 0x38;
const ISR_OFFSET: u64 = 0x1000;
const DEVICE_OFFSET: u64 = 0x2000;
const DEVICE_LEN: u64 = 0x1000;
pub const NOTIFY_OFFSET: u64 = 0x3000;
pub const NOTIFY_MULTIPLIER: u64 = 4;
const NOTIFY_LEN: u64 = 0x1000;
/// The table fits the BAR below the PBA; one vector per queue plus the configuration's.
const MAX_VECTORS: u16 = (PBA_OFFSET / crate::pci::msix::ENTRY_SIZE) as u16;

/// The PCI class a device of virtio type `device_type` shows (base, sub, interface).
fn class_of(device_type: u32) -> [u8; 3] {
    match device_type {
        1 => [0x02, 0x00, 0x00],  // network controller
        2 => [0x01, 0x80, 0x00],  // other mass storage
        8 => [0x01, 0x00, 0x00],  // SCSI
        16 => [0x03, 0x80, 0x00], // other display
        18 => [0x09, 0x80, 0x00], // other input
        _ => [0xff, 0x00, 0x00],
    }
}

/// The MSI-X vector of the configuration and of each queue, as the driver assigned them.
struct Vectors {
    config: AtomicU16,
    queues: Vec<AtomicU16>,
}

impl Vectors {
    fn clear(&self) {
        self.config.store(NO_VECTOR, Ordering::SeqCst);
        for q in &self.queues {
            q.store(NO_VECTOR, Ordering::SeqCst);
        }
    }
}

/// The device's interrupts: MSI-X vectors when enabled, the INTx line otherwise.
struct PciInterrupt {
    msix: Arc<Mutex<Msix>>,
    vectors: Arc<Vectors>,
    intx: Box<dyn IrqTrigger>,
}

impl PciInterrupt {
    fn deliver(&self, vector: Option<u16>) -> io::Result<()> {
        let mut msix = self.msix.lock().unwrap_or_else(|e| e.into_inner());
        if !msix.enabled() {
            drop(msix);
            return self.intx.trigger();
        }
        match vector {
            Some(v) if v != NO_VECTOR => msix.signal(v),
            _ => Ok(()),
        }
    }
}

impl IrqTrigger for PciInterrupt {
    fn trigger(&self) -> io::Result<()> {
        self.trigger_config()
    }

    fn trigger_queue(&self, queue: usize) -> io::Result<()> {
        let v = self
            .vectors
            .queues
            .get(queue)
            .map(|v| v.load(Ordering::SeqCst));
        self.deliver(v)
    }

    fn trigger_config(&self) -> io::Result<()> {
        self.deliver(Some(self.vectors.config.load(Ordering::SeqCst)))
    }
}

/// The offset into the device configuration of an access of `len` bytes at `offset` in BAR 4,
/// if it falls wholly inside that region.
fn device_config_offset(offset: u64, len: u64) -> Option<u64> {
    let at = offset.checked_sub(DEVICE_OFFSET)?;
    (at.checked_add(len)? <= DEVICE_LEN).then_some(at)
}

/// Hands a queue's doorbell address to KVM (`true`) or takes it back (`false`), so that the
/// guest's notification write signals the queue's eventfd without leaving the kernel.
pub type DoorbellHook =
    Box<dyn Fn(&vmm_sys_util::eventfd::EventFd, u64, bool) -> io::Result<()> + Send>;

/// One virtio device as a PCI function.
pub struct VirtioPci {
    core: TransportCore,
    config: ConfigSpace,
    msix: Arc<Mutex<Msix>>,
    vectors: Arc<Vectors>,
    msix_cap: usize,
    pci_cfg_cap: usize,
    doorbells: Option<DoorbellHook>,
}

impl VirtioPci {
    /// Wraps `device`: `intx` raises its INTx line, `msi` delivers its MSI-X vectors.
    pub fn new(
        device: Box<dyn VirtioDevice>,
        mem: GuestMemory,
        intx: Box<dyn IrqTrigger>,
        msi: Box<dyn MsiSink>,
    ) -> io::Result<VirtioPci> {
        let device_type = device.device_type();
        let queue_count = device.queue_max_sizes().len();
        let vector_count = u16::try_from(queue_count + 1)
            .ok()
            .filter(|&n| n <= MAX_VECTORS)
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("{queue_count} queues do not fit the MSI-X table"),
                )
            })?;
        if NOTIFY_MULTIPLIER * queue_count as u64 > NOTIFY_LEN {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{queue_count} queues do not fit the notification area"),
            ));
        }
        let msix = Arc::new(Mutex::new(Msix::new(vector_count, msi)));
        let vectors = Arc::new(Vectors {
            config: AtomicU16::new(NO_VECTOR),
            queues: (0..queue_count)
                .map(|_| AtomicU16::new(NO_VECTOR))
                .collect(),
        });
        let interrupt = PciInterrupt {
            msix: msix.clone(),
            vectors: vectors.clone(),
            intx,
        };
        let core = TransportCore::new(device, mem, Box::new(interrupt), "virtio-pci")?;
        let device_id = u16::try_from(device_type)
            .ok()
            .and_then(|t| DEVICE_ID_BASE.checked_add(t))
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("virtio device type {device_type} has no PCI device ID"),
                )
            })?;
        let mut config = ConfigSpace::new(Identity {
            vendor: VENDOR_ID,
            device: device_id,
            // Modern-only devices have revision 1 or higher.
            revision: 1,
            class: class_of(device_type),
            subsystem_vendor: VENDOR_ID,
            subsystem: 0x1100,
            interrupt_pin: 1,
            multifunction: false,
        });
        let fail = |e: crate::pci::config::ConfigError| io::Error::other(e.to_string());
        config
            .add_bar(
                MSIX_BAR,
                BarKind::Memory32 {
                    prefetchable: false,
                },
                MSIX_BAR_SIZE,
            )
            .map_err(fail)?;
        config
            .add_bar(
                REGS_BAR,
                BarKind::Memory64 { prefetchable: true },
                REGS_SIZE,
            )
            .map_err(fail)?;
        let cap = |cfg_type: u8, offset: u64, len: u64, extra: &[u8]| {
            let mut body = vec![(16 + extra.len()) as u8, cfg_type, REGS_BAR as u8, 0, 0, 0];
            body.extend_from_slice(&(offset as u32).to_le_bytes());
            body.extend_from_slice(&(len as u32).to_le_bytes());
            body.extend_from_slice(extra);
            body
        };
        for (cfg_type, offset, len, extra) in [
            (CFG_COMMON, COMMON_OFFSET, COMMON_LEN, Vec::new()),
            (CFG_ISR, ISR_OFFSET, 1, Vec::new()),
            (CFG_DEVICE, DEVICE_OFFSET, DEVICE_LEN, Vec::new()),
            (
                CFG_NOTIFY,
                NOTIFY_OFFSET,
                NOTIFY_LEN,
                (NOTIFY_MULTIPLIER as u32).to_le_bytes().to_vec(),
            ),
        ] {
            let body = cap(cfg_type, offset, len, &extra);
            let none = vec![0; body.len()];
            config
                .add_capability(CAP_VENDOR, &body, &none)
                .map_err(fail)?;
        }
        // The PCI configuration access window: bar, offset, length and data are the driver's.
        let body = cap(CFG_PCI, 0, 0, &[0; 4]);
        let mut writable = vec![0u8; body.len()];
        writable[2] = 0xff;
        writable[6..].fill(0xff);
        let pci_cfg_cap = config
            .add_capability(CAP_VENDOR, &body, &writable)
            .map_err(fail)?;
        let (body, writable) = msix.lock().unwrap_or_else(|e| e.into_inner()).capability(
            MSIX_BAR as u8,
            0,
            PBA_OFFSET as u32,
        );
        let msix_cap = config
            .add_capability(MSIX_CAP_ID, &body, &writable)
            .map_err(fail)?;
        Ok(VirtioPci {
            core,
            config,
            msix,
            vectors,
            msix_cap,
            pci_cfg_cap,
            doorbells: None,
        })
    }

    /// Registers each queue's doorbell with `hook` whenever BAR 4 is placed, and unregisters
    /// it when the BAR moves or decoding stops. Without a hook doorbells are plain MMIO writes.
    pub fn with_doorbells(mut self, hook: DoorbellHook) -> VirtioPci {
        self.doorbells = Some(hook);
        self
    }

    /// The interrupt state the INTx resampler asks: the ISR is not zero.
    pub fn interrupt(&self) -> Arc<super::Interrupt> {
        self.core.interrupt().clone()
    }

    /// The queue notification eventfds with the offset in BAR 4 that notifies each (for KVM
    /// ioeventfds, 2 bytes wide, once the firmware placed the BAR).
    pub fn queue_notifiers(&self) -> impl Iterator<Item = (u64, &vmm_sys_util::eventfd::EventFd)> {
        self.core
            .queue_notifiers()
            .map(|(q, fd)| (NOTIFY_OFFSET + NOTIFY_MULTIPLIER * u64::from(q), fd))
    }

    pub fn device_type(&self) -> u32 {
        self.core.device_type()
    }

    /// The VM is ending: see [`VirtioDevice::close`].
    pub fn close(&mut self) -> Result<(), CloseError> {
        self.core.close()
    }

    /// Function reset (the machine's reset): the device, its vectors and MSI-X.
    pub fn reset(&mut self) {
        self.core.reset();
        self.vectors.clear();
        self.msix.lock().unwrap_or_else(|e| e.into_inner()).reset();
    }

    fn vector_or_none(&self, v: u16) -> u16 {
        let n = self
            .msix
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .vectors();
        if v < n {
            v
        } else {
            NO_VECTOR
        }
    }

    /// The common configuration structure as the driver would read it now.
    fn common(&self) -> [u8; COMMON_LEN as usize] {
        let c = &self.core;
        let q = c.selected_queue();
        let queue_vector = self
            .vectors
            .queues
            .get(c.queue_sel as usize)
            .map_or(NO_VECTOR, |v| v.load(Ordering::SeqCst));
        let mut b = [0u8; COMMON_LEN as usize];
        b[0x00..0x04].copy_from_slice(&c.device_features_sel.to_le_bytes());
        b[0x04..0x08].copy_from_slice(&c.device_features_window().to_le_bytes());
        b[0x08..0x0c].copy_from_slice(&c.driver_features_sel.to_le_bytes());
        b[0x0c..0x10].copy_from_slice(&c.driver_features_window().to_le_bytes());
        b[0x10..0x12].copy_from_slice(&self.vectors.config.load(Ordering::SeqCst).to_le_bytes());
        b[0x12..0x14].copy_from_slice(&(c.queue_count() as u16).to_le_bytes());
        b[0x14] = c.status() as u8;
        b[0x15] = c.interrupt().config_generation() as u8;
        b[0x16..0x18].copy_from_slice(&(c.queue_sel as u16).to_le_bytes());
        b[0x18..0x1a].copy_from_slice(&q.map_or(0, |q| q.size()).to_le_bytes());
        b[0x1a..0x1c].copy_from_slice(&queue_vector.to_le_bytes());
        b[0x1c..0x1e].copy_from_slice(&u16::from(q.is_some_and(|q| q.ready())).to_le_bytes());
        let notify_off = if q.is_some() { c.queue_sel as u16 } else { 0 };
        b[0x1e..0x20].copy_from_slice(&notify_off.to_le_bytes());
        b[0x20..0x28].copy_from_slice(&q.map_or(0, |q| q.desc_table()).to_le_bytes());
        b[0x28..0x30].copy_from_slice(&q.map_or(0, |q| q.avail_ring()).to_le_bytes());
        b[0x30..0x38].copy_from_slice(&q.map_or(0, |q| q.used_ring()).to_le_bytes());
        b
    }

    fn common_write(&mut self, offset: u64, data: &[u8]) {
        let mut v = [0u8; 8];
        let Some(dst) = v.get_mut(..data.len()) else {
            return;
        };
        dst.copy_from_slice(data);
        let v64 = u64::from_le_bytes(v);
        let v32 = v64 as u32;
        let v16 = v64 as u16;
        match (offset, data.len()) {
            (0x00, 4) => self.core.device_features_sel = v32,
            (0x08, 4) => self.core.driver_features_sel = v32,
            (0x0c, 4) => self.core.set_driver_features(v32),
            (0x10, 2) => {
                let v = self.vector_or_none(v16);
                self.vectors.config.store(v, Ordering::SeqCst);
            }
            (0x14, 1) => {
                self.core.set_status(u32::from(v16 as u8));
                if v16 as u8 == 0 {
                    self.vectors.clear();
                }
            }
            (0x16, 2) => self.core.queue_sel = u32::from(v16),
            (0x18, 2) => self.core.with_unready_queue(|q| q.set_size(v16)),
            (0x1a, 2) => {
                let v = self.vector_or_none(v16);
                if let Some(slot) = self.vectors.queues.get(self.core.queue_sel as usize) {
                    slot.store(v, Ordering::SeqCst);
                }
            }
            (0x1c, 2) => self.core.set_queue_ready(u32::from(v16)),
            (0x20, 4) => self
                .core
                .with_unready_queue(|q| q.set_desc_table_address(Some(v32), None)),
            (0x24, 4) => self
                .core
                .with_unready_queue(|q| q.set_desc_table_address(None, Some(v32))),
            (0x20, 8) => self.core.with_unready_queue(|q| {
                q.set_desc_table_address(Some(v32), Some((v64 >> 32) as u32))
            }),
            (0x28, 4) => self
                .core
                .with_unready_queue(|q| q.set_avail_ring_address(Some(v32), None)),
            (0x2c, 4) => self
                .core
                .with_unready_queue(|q| q.set_avail_ring_address(None, Some(v32))),
            (0x28, 8) => self.core.with_unready_queue(|q| {
                q.set_avail_ring_address(Some(v32), Some((v64 >> 32) as u32))
            }),
            (0x30, 4) => self
                .core
                .with_unready_queue(|q| q.set_used_ring_address(Some(v32), None)),
            (0x34, 4) => self
                .core
                .with_unready_queue(|q| q.set_used_ring_address(None, Some(v32))),
            (0x30, 8) => self.core.with_unready_queue(|q| {
                q.set_used_ring_address(Some(v32), Some((v64 >> 32) as u32))
            }),
            _ => {}
        }
    }

    fn regs_read(&mut self, offset: u64, data: &mut [u8]) {
        let len = data.len() as u64;
        data.fill(0);
        if offset.saturating_add(len) <= COMMON_LEN {
            let c = self.common();
            data.copy_from_slice(&c[offset as usize..(offset + len) as usize]);
        } else if offset == ISR_OFFSET && len == 1 {
            data[0] = self.core.interrupt().take_status() as u8;
        } else if let Some(at) = device_config_offset(offset, len) {
            self.core.device.read_config(at, data);
        }
    }

    fn regs_write(&mut self, offset: u64, data: &[u8]) {
        let len = data.len() as u64;
        if offset.saturating_add(len) <= COMMON_LEN {
            self.common_write(offset, data);
        } else if (DEVICE_OFFSET..DEVICE_OFFSET + DEVICE_LEN).contains(&offset)
            && offset + len <= DEVICE_OFFSET + DEVICE_LEN
        {
            if self.core.raw_status() & DRV != 0 {
                self.core.device.write_config(offset - DEVICE_OFFSET, data);
            }
        } else if (NOTIFY_OFFSET..NOTIFY_OFFSET + NOTIFY_LEN).contains(&offset)
            && (offset - NOTIFY_OFFSET) % NOTIFY_MULTIPLIER == 0
        {
            let queue = (offset - NOTIFY_OFFSET) / NOTIFY_MULTIPLIER;
            if let Ok(q) = u32::try_from(queue) {
                self.core.notify(q);
            }
        }
    }

    /// The PCI configuration access window: the BAR, offset and length the driver set, if they
    /// name a width this window supports in BAR 4.
    fn window(&self) -> Option<(u64, usize)> {
        let at = self.pci_cfg_cap;
        let bar = self.config.get8(at + 4);
        let offset = u64::from(self.config.get32(at + 8));
        let len = self.config.get32(at + 12) as usize;
        (usize::from(bar) == REGS_BAR && matches!(len, 1 | 2 | 4)).then_some((offset, len))
    }
}

impl PciFunction for VirtioPci {
    fn config(&self) -> &ConfigSpace {
        &self.config
    }

    fn config_mut(&mut self) -> &mut ConfigSpace {
        &mut self.config
    }

    fn config_read(&mut self, offset: usize, data: &mut [u8]) {
        let data_at = self.pci_cfg_cap + 16;
        if offset == data_at {
            if let Some((window, len)) = self.window().filter(|&(_, len)| len == data.len()) {
                let mut v = [0u8; 4];
                self.regs_read(window, &mut v[..len]);
                data.copy_from_slice(&v[..len]);
                return;
            }
        }
        self.config.read(offset, data);
    }

    fn config_written(&mut self, offset: usize, len: usize) {
        let touches = |at: usize, n: usize| offset < at + n && at < offset + len;
        if touches(self.msix_cap + 2, 2) {
            let control = self.config.get16(self.msix_cap + 2);
            self.msix
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .set_control(control);
        }
        let data_at = self.pci_cfg_cap + 16;
        if offset == data_at {
            if let Some((window, n)) = self.window().filter(|&(_, n)| n == len) {
                let v = self.config.get32(data_at).to_le_bytes();
                self.regs_write(window, &v[..n]);
            }
        }
    }

    fn bar_read(&mut self, index: usize, offset: u64, data: &mut [u8]) {
        match index {
            MSIX_BAR => {
                let msix = self.msix.lock().unwrap_or_else(|e| e.into_inner());
                if offset < PBA_OFFSET {
                    msix.table_read(offset, data);
                } else {
                    msix.pba_read(offset - PBA_OFFSET, data);
                }
            }
            REGS_BAR => self.regs_read(offset, data),
            _ => data.fill(0xff),
        }
    }

    fn bar_write(&mut self, index: usize, offset: u64, data: &[u8]) {
        match index {
            MSIX_BAR if offset < PBA_OFFSET => self
                .msix
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .table_write(offset, data),
            REGS_BAR => self.regs_write(offset, data),
            _ => {}
        }
    }

    fn window_moved(&mut self, window: &crate::pci::config::BarWindow, mapped: bool) {
        let Some(hook) = &self.doorbells else {
            return;
        };
        if window.index != REGS_BAR {
            return;
        }
        for (offset, evt) in self.queue_notifiers() {
            // A refused registration leaves that doorbell to the MMIO path, which works.
            if let Err(e) = hook(evt, window.base + offset, mapped) {
                crate::vmm_log!(
                    "vireo-vmm: virtio-pci doorbell at {:#x}: {e}",
                    window.base + offset
                );
            }
        }
    }
}

#[cfg(test)]
mod tests;
