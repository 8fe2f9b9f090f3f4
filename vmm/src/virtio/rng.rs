//! virtio-rng: entropy from the host's getrandom(2).

use std::sync::Arc;

use virtio_bindings::virtio_ids::VIRTIO_ID_RNG;
use virtio_queue::Queue;

use super::queue::{complete, drain_queue};
use super::worker::{Worker, WorkerHandler};
use super::{ActivateError, ActiveQueue, GuestMemory, Interrupt, VirtioDevice};

const QUEUE_SIZE: u16 = 64;
/// Upper bound per request, so a guest asking for 4 GiB gets a bounded answer (the driver copes
/// with short fills).
const MAX_PER_REQUEST: usize = 64 * 1024;

/// The entropy device.
#[derive(Default)]
pub struct Rng {
    worker: Option<Worker>,
}

impl Rng {
    /// A new, inactive device.
    pub fn new() -> Self {
        Rng::default()
    }
}

struct RngWorker {
    mem: GuestMemory,
    queue: Queue,
    interrupt: Arc<Interrupt>,
    broken: bool,
}

impl RngWorker {
    fn process(&mut self) {
        if self.broken {
            return;
        }
        let mem = &self.mem;
        let res = drain_queue(&mut self.queue, mem, |chain| {
            let chain = match chain {
                Ok(c) => c,
                Err(e) => {
                    crate::vmm_log!("virtio-rng: {e}");
                    return 0;
                }
            };
            let want = usize::try_from(chain.writable_len())
                .unwrap_or(usize::MAX)
                .min(MAX_PER_REQUEST);
            let mut buf = vec![0u8; want];
            if let Err(e) = crate::random::fill(&mut buf) {
                crate::vmm_log!("virtio-rng: getrandom failed: {e}");
                return 0;
            }
            match chain.write_at(mem, 0, &buf) {
                Ok(n) => n as u32,
                Err(e) => {
                    crate::vmm_log!("virtio-rng: {e}");
                    0
                }
            }
        });
        self.broken = !complete(res, &self.interrupt, 0, "virtio-rng");
    }
}

impl WorkerHandler for RngWorker {
    fn queue_notified(&mut self, _index: usize) {
        self.process();
    }
}

impl VirtioDevice for Rng {
    fn device_type(&self) -> u32 {
        VIRTIO_ID_RNG
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &[QUEUE_SIZE]
    }

    fn device_features(&self) -> u64 {
        0
    }

    fn read_config(&self, _offset: u64, data: &mut [u8]) {
        data.fill(0);
    }

    fn activate(
        &mut self,
        mem: GuestMemory,
        interrupt: Arc<Interrupt>,
        _features: u64,
        queues: Vec<ActiveQueue>,
    ) -> Result<(), ActivateError> {
        let Some(q) = queues.into_iter().find(|q| q.index == 0) else {
            return Err(ActivateError::QueueNotReady(0));
        };
        let mut handler = RngWorker {
            mem,
            queue: q.queue,
            interrupt,
            broken: false,
        };
        // Requests queued before DRIVER_OK would otherwise wait for the next notification.
        handler.process();
        let worker = Worker::spawn("virtio-rng", handler, vec![(0, q.notify)])
            .map_err(ActivateError::Worker)?;
        self.worker = Some(worker);
        Ok(())
    }

    fn reset(&mut self) {
        if let Some(mut w) = self.worker.take() {
            w.stop();
        }
    }
}
