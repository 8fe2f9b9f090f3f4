//! Virtio 1.x devices on the modern virtio-mmio transport (and the shared transport core the PCI
//! transport builds on).
//!
//! Each device is a [`VirtioDevice`] behind an [`mmio::MmioTransport`]. The transport runs on the
//! vCPU thread that traps the MMIO access; once the driver sets DRIVER_OK the device moves its
//! queues into a worker thread of its own ([`worker`]) that waits on the queue notification
//! eventfds (KVM ioeventfds) and its backend's fds, so a slow disk or socket never stalls a vCPU.
//! Interrupts go out through an eventfd that the VMM binds to a GSI with KVM_IRQFD.

pub mod attach;
pub mod block;
pub mod input;
pub mod mmio;
pub mod net;
pub mod passt;
pub mod pci;
pub mod queue;
pub mod rng;
pub mod scsi;
pub mod testing;
pub mod transport;
pub mod worker;

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;

use virtio_queue::Queue;
use vm_memory::GuestMemoryMmap;
use vmm_sys_util::eventfd::EventFd;

pub use virtio_bindings::virtio_config::{
    VIRTIO_CONFIG_S_ACKNOWLEDGE, VIRTIO_CONFIG_S_DRIVER, VIRTIO_CONFIG_S_DRIVER_OK,
    VIRTIO_CONFIG_S_FAILED, VIRTIO_CONFIG_S_FEATURES_OK, VIRTIO_CONFIG_S_NEEDS_RESET,
    VIRTIO_F_VERSION_1,
};
pub use virtio_bindings::virtio_ring::VIRTIO_RING_F_EVENT_IDX;

/// Guest memory type the devices work on (the same one the VMM core builds).
pub type GuestMemory = GuestMemoryMmap<()>;

/// Size of one device's virtio-mmio register window (registers + config space).
pub const MMIO_WINDOW_SIZE: u64 = 0x200;

/// Bit in InterruptStatus: a used buffer was added to a queue.
pub const INT_VRING: u32 = 0x1;
/// Bit in InterruptStatus: the device configuration changed.
pub const INT_CONFIG: u32 = 0x2;

/// Something that raises the device's interrupt (an irqfd-bound eventfd in the VMM).
pub trait IrqTrigger: Send + Sync {
    /// Raise the interrupt once (edge).
    fn trigger(&self) -> io::Result<()>;
    /// A used-buffer notification for queue `queue`. Transports with a vector per queue
    /// (virtio-pci with MSI-X) send it there; one line serves all queues otherwise.
    fn trigger_queue(&self, _queue: usize) -> io::Result<()> {
        self.trigger()
    }
    /// A configuration change (or a device that needs a reset).
    fn trigger_config(&self) -> io::Result<()> {
        self.trigger()
    }
}

impl IrqTrigger for EventFd {
    fn trigger(&self) -> io::Result<()> {
        self.write(1)
    }
}

/// The InterruptStatus register shared by the transport (which reads and acknowledges it on the
/// vCPU thread) and the worker (which sets bits and raises the line).
pub struct Interrupt {
    status: AtomicU32,
    config_generation: AtomicU32,
    needs_reset: AtomicBool,
    line: Box<dyn IrqTrigger>,
}

impl Interrupt {
    /// Wraps an interrupt line.
    pub fn new(line: Box<dyn IrqTrigger>) -> Self {
        Interrupt {
            status: AtomicU32::new(0),
            config_generation: AtomicU32::new(0),
            needs_reset: AtomicBool::new(false),
            line,
        }
    }

    /// Marks "used buffer" pending and raises the interrupt of queue `queue`.
    pub fn signal_used_queue(&self, queue: usize) -> io::Result<()> {
        self.status.fetch_or(INT_VRING, Ordering::SeqCst);
        self.line.trigger_queue(queue)
    }

    fn signal_config(&self) -> io::Result<()> {
        self.status.fetch_or(INT_CONFIG, Ordering::SeqCst);
        self.line.trigger_config()
    }

    /// Reads and clears the status (virtio-pci's ISR register is read-to-clear).
    pub fn take_status(&self) -> u32 {
        self.status.swap(0, Ordering::SeqCst)
    }

    /// Current InterruptStatus value.
    pub fn status(&self) -> u32 {
        self.status.load(Ordering::SeqCst)
    }

    /// InterruptACK: clears the acknowledged bits.
    pub fn ack(&self, bits: u32) {
        self.status.fetch_and(!bits, Ordering::SeqCst);
    }

    /// Clears everything (device reset). The config generation keeps counting.
    pub fn clear(&self) {
        self.status.store(0, Ordering::SeqCst);
        self.needs_reset.store(false, Ordering::SeqCst);
    }

    /// ConfigGeneration register value.
    pub fn config_generation(&self) -> u32 {
        self.config_generation.load(Ordering::SeqCst)
    }

    /// The device changed its configuration space: new generation, config interrupt.
    pub fn signal_config_change(&self) -> io::Result<()> {
        self.config_generation.fetch_add(1, Ordering::SeqCst);
        self.signal_config()
    }

    /// The device hit an error it cannot recover from (e.g. a corrupt ring): DEVICE_NEEDS_RESET
    /// shows in the status register and the driver gets a config interrupt.
    pub fn set_needs_reset(&self) {
        self.needs_reset.store(true, Ordering::SeqCst);
        // The flag is what matters; a failed wake-up only delays the driver noticing.
        let _ = self.signal_config();
    }

    /// Whether DEVICE_NEEDS_RESET is set.
    pub fn needs_reset(&self) -> bool {
        self.needs_reset.load(Ordering::SeqCst)
    }
}

/// One queue handed to a device on activation, with the eventfd that signals its notifications.
pub struct ActiveQueue {
    /// Index of the queue within the device.
    pub index: usize,
    /// The queue, configured and validated by the transport.
    pub queue: Queue,
    /// Written by KVM (ioeventfd on QueueNotify with datamatch = index) or by the transport.
    pub notify: EventFd,
}

/// Errors a device reports when the driver activates it.
#[derive(Debug, thiserror::Error)]
pub enum ActivateError {
    /// The driver did not set up a queue the device needs.
    #[error("queue {0} was not made ready by the driver")]
    QueueNotReady(usize),
    /// Starting the worker thread or its epoll failed.
    #[error("cannot start the device worker: {0}")]
    Worker(#[source] io::Error),
    /// The backend (file, socket, child process) failed.
    #[error("device backend: {0}")]
    Backend(String),
}

/// A virtio device model, transport independent.
pub trait VirtioDevice: Send {
    /// Virtio device ID (VIRTIO_ID_*).
    fn device_type(&self) -> u32;
    /// Maximum size of each queue; the length gives the number of queues.
    fn queue_max_sizes(&self) -> &[u16];
    /// Feature bits the device offers (the transport adds VIRTIO_F_VERSION_1 and EVENT_IDX).
    fn device_features(&self) -> u64;
    /// Reads the device-specific configuration space.
    fn read_config(&self, offset: u64, data: &mut [u8]);
    /// Writes the device-specific configuration space (most fields are read-only).
    fn write_config(&mut self, _offset: u64, _data: &[u8]) {}
    /// Starts the device: `features` are the negotiated ones, `queues` those the driver enabled.
    fn activate(
        &mut self,
        mem: GuestMemory,
        interrupt: Arc<Interrupt>,
        features: u64,
        queues: Vec<ActiveQueue>,
    ) -> Result<(), ActivateError>;
    /// Stops the worker (if any) and forgets all driver state, ready for a new activation.
    fn reset(&mut self);
    /// The VM is ending, its vCPUs stopped: stop the worker and put what the guest wrote safely
    /// away (a disk flushes and closes its image). Called once, on the main thread; the device
    /// is never activated again. Devices with nothing to keep do nothing.
    fn close(&mut self) -> Result<(), CloseError> {
        Ok(())
    }
}

/// Why a device could not put the guest's data safely away when the VM ended: writes the guest
/// saw complete may be missing from the backend.
#[derive(Debug, thiserror::Error)]
pub enum CloseError {
    /// Flushing the backend failed.
    #[error("{device}: flush on exit failed, recent writes may be lost: {source}")]
    Flush {
        /// The device (a disk's image path).
        device: String,
        /// Cause.
        #[source]
        source: io::Error,
    },
    /// The worker did not hand the backend back, so it could not be flushed.
    #[error("{device}: the device worker did not stop and give the image back; not flushed")]
    Held {
        /// The device (a disk's image path).
        device: String,
    },
}

/// Copies `src[offset..]` into `data`, leaving bytes beyond the end of `src` zeroed.
/// Config space and register-block reads use it so a read past the end returns zeros instead
/// of failing.
pub(crate) fn read_config_bytes(src: &[u8], offset: u64, data: &mut [u8]) {
    data.fill(0);
    let Ok(offset) = usize::try_from(offset) else {
        return;
    };
    if offset >= src.len() {
        return;
    }
    let n = data.len().min(src.len() - offset);
    data[..n].copy_from_slice(&src[offset..offset + n]);
}

/// Makes every thread allocate from glibc's main arena.
///
/// A thread that frees memory in a secondary arena may make glibc shrink that heap, and the
/// first shrink reads `/proc/sys/vm/overcommit_memory` with openat, which the seccomp filter of
/// device workers does not allow (seen as SIGSYS when a qcow2 image was closed on its worker).
/// The main arena shrinks with brk instead. Must run before the process has a second arena,
/// i.e. before a second thread allocates: the `vireo-vmm` binary calls it first thing in `main`;
/// a program that runs devices in-process (a bench, a test with seccomp) must do the same.
pub fn malloc_single_arena() {
    // SAFETY: mallopt only sets an allocator parameter.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}
