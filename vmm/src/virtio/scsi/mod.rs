//! virtio-scsi (device id 8): a SCSI controller whose logical units are CD-ROM drives and hard
//! disks ([`crate::scsi`]), transport independent like the other devices.
//!
//! Queues: 0 control, 1 event, 2 requests (one request queue). Requests run one at a time on
//! the device's worker thread, to completion, in the order the driver made them available. The
//! units sit behind a mutex that the control socket's media commands ([`media`]) reach too; a
//! media change from the host therefore lands between two commands, never inside one.
//!
//! Event-queue buffers are held, unused: the device offers neither hotplug nor parameter-change
//! events (a medium change reaches the guest as UNIT ATTENTION on its next command).

pub mod bus;
pub mod control;
pub mod media;
pub mod request;

use std::sync::{Arc, Mutex};

use virtio_bindings::virtio_ids::VIRTIO_ID_SCSI;
use virtio_bindings::virtio_scsi::VIRTIO_SCSI_S_OK;
use virtio_queue::Queue;

use self::bus::{GuestChange, ScsiBus};
use self::control::{answer_ctrl, parse_ctrl};
use self::request::{parse_cmd, write_response, Response, Sizes, MAX_CDB_SIZE, MAX_SENSE_SIZE};
use super::queue::{complete, drain_queue, Chain};
use super::worker::{Worker, WorkerHandler};
use super::{
    read_config_bytes, ActivateError, ActiveQueue, CloseError, GuestMemory, Interrupt, VirtioDevice,
};
use crate::logcap::LineLimiter;
use crate::scsi::{GOOD, MAX_TRANSFER_BYTES};

const CONTROL_QUEUE: usize = 0;
const EVENT_QUEUE: usize = 1;
const REQUEST_QUEUE: usize = 2;
const QUEUE_SIZES: [u16; 3] = [64, 64, 256];

/// `struct virtio_scsi_event`: `{event: le32, lun[8], reason: le32}`.
const EVENT_INFO_SIZE: u32 = 16;
/// Commands a driver may queue per LUN; they run one after another anyway.
const CMD_PER_LUN: u32 = 128;

/// Config-space offsets the driver may write (5.6.4).
const CONFIG_SENSE_SIZE: u64 = 20;
const CONFIG_CDB_SIZE: u64 = 24;

/// Called with each media change the guest makes itself (START STOP UNIT with LoEj).
pub type GuestChangeHook = Arc<dyn Fn(GuestChange) + Send + Sync>;

/// The units of one controller, shared by the device's worker and the control socket.
pub type SharedBus = Arc<Mutex<ScsiBus>>;

/// A virtio-scsi controller.
pub struct Scsi {
    bus: SharedBus,
    sizes: Sizes,
    worker: Option<Worker>,
    on_guest_change: Option<GuestChangeHook>,
    name: String,
}

impl Scsi {
    /// A controller over `bus`; `name` is for log lines (`scsi[0]`).
    pub fn new(bus: ScsiBus, name: &str, on_guest_change: Option<GuestChangeHook>) -> Scsi {
        Scsi {
            bus: Arc::new(Mutex::new(bus)),
            sizes: Sizes::default(),
            worker: None,
            on_guest_change,
            name: name.to_string(),
        }
    }

    /// The units, for the control socket.
    pub fn bus(&self) -> SharedBus {
        self.bus.clone()
    }

    fn config(&self) -> [u8; 36] {
        let mut c = [0u8; 36];
        let mut put = |at: usize, v: u32| c[at..at + 4].copy_from_slice(&v.to_le_bytes());
        put(0, 1); // num_queues
        put(4, u32::from(QUEUE_SIZES[REQUEST_QUEUE]) - 2); // seg_max
        put(8, (MAX_TRANSFER_BYTES / 512) as u32); // max_sectors
        put(12, CMD_PER_LUN);
        put(16, EVENT_INFO_SIZE);
        put(20, self.sizes.sense);
        put(24, self.sizes.cdb);
        // max_channel 0 at 28 (le16).
        c[30..32].copy_from_slice(&vireo_vmm_api::scsi::SCSI_MAX_TARGET.to_le_bytes());
        c[32..36].copy_from_slice(&u32::from(vireo_vmm_api::scsi::SCSI_MAX_LUN).to_le_bytes());
        c
    }
}

fn lock(bus: &SharedBus) -> std::sync::MutexGuard<'_, ScsiBus> {
    // A panic while holding the lock ends the VMM (its panic hook); nothing half-done survives.
    bus.lock().unwrap_or_else(|e| e.into_inner())
}

static BAD_REQUESTS: LineLimiter = LineLimiter::standard("virtio-scsi request errors");

/// The request and control loop, owned by the worker thread.
struct ScsiWorker {
    mem: GuestMemory,
    control: Option<Queue>,
    requests: Queue,
    /// Held, never used (see the module documentation).
    _events: Option<Queue>,
    interrupt: Arc<Interrupt>,
    bus: SharedBus,
    sizes: Sizes,
    data_out: Vec<u8>,
    on_guest_change: Option<GuestChangeHook>,
    broken: bool,
    name: String,
}

impl ScsiWorker {
    /// Runs one command request; returns the used length.
    fn handle_cmd(&mut self, chain: &Chain) -> (u32, Vec<GuestChange>) {
        let sizes = self.sizes;
        let req = match parse_cmd(chain, &self.mem, sizes) {
            Ok(r) => r,
            Err(e) => {
                BAD_REQUESTS.eprintln(format_args!("virtio-scsi {}: {e}", self.name));
                let used = e.response().map_or(0, |code| {
                    write_response(chain, &self.mem, sizes, &Response::bare(u32::from(code), 0))
                        .unwrap_or(0)
                });
                return (used, Vec::new());
            }
        };
        let Some((target, lun)) = req.address else {
            return (self.answer(chain, &Response::bad_target(&req)), Vec::new());
        };
        if let Err(e) = req.read_data_out(chain, &self.mem, sizes, &mut self.data_out) {
            BAD_REQUESTS.eprintln(format_args!("virtio-scsi {}: {e}", self.name));
            return (0, Vec::new());
        }
        let (outcome, changes) = {
            let mut bus = lock(&self.bus);
            let outcome = bus.execute(target, lun, &req.cdb, &self.data_out, req.max_in());
            (outcome, bus.take_guest_changes())
        };
        let Some(mut outcome) = outcome else {
            return (self.answer(chain, &Response::bad_target(&req)), changes);
        };
        // A unit never returns more than it was given room for; the cut keeps that true.
        outcome.data_in.truncate(req.max_in());
        let sense = outcome.sense.map(|s| s.fixed());
        // data_in is at most max_in, itself at most data_in_len.
        let residual = req.data_in_len - outcome.data_in.len() as u64;
        let resp = Response {
            response: VIRTIO_SCSI_S_OK as u8,
            status: outcome.status,
            sense: sense.as_ref().map_or(&[][..], |s| &s[..]),
            data_in: &outcome.data_in,
            residual: u32::try_from(residual).unwrap_or(u32::MAX),
        };
        (self.answer(chain, &resp), changes)
    }

    fn answer(&self, chain: &Chain, resp: &Response<'_>) -> u32 {
        match write_response(chain, &self.mem, self.sizes, resp) {
            Ok(n) => n,
            Err(e) => {
                BAD_REQUESTS.eprintln(format_args!("virtio-scsi {}: {e}", self.name));
                0
            }
        }
    }

    fn process_requests(&mut self) {
        if self.broken {
            return;
        }
        let mem = self.mem.clone();
        let mut queue = std::mem::take(&mut self.requests);
        let mut changes = Vec::new();
        let res = drain_queue(&mut queue, &mem, |chain| match chain {
            Ok(c) => {
                let (used, mut ch) = self.handle_cmd(&c);
                changes.append(&mut ch);
                used
            }
            Err(e) => {
                BAD_REQUESTS.eprintln(format_args!("virtio-scsi {}: {e}", self.name));
                0
            }
        });
        self.requests = queue;
        self.broken = !complete(res, &self.interrupt, REQUEST_QUEUE, "virtio-scsi");
        if let Some(hook) = &self.on_guest_change {
            for c in changes {
                hook(c);
            }
        }
    }

    fn process_control(&mut self) {
        if self.broken {
            return;
        }
        let Some(mut queue) = self.control.take() else {
            return;
        };
        let mem = self.mem.clone();
        let res = drain_queue(&mut queue, &mem, |chain| {
            let answered = chain.map_err(|e| e.to_string()).and_then(|c| {
                let req = parse_ctrl(&c, &mem).map_err(|e| e.to_string())?;
                let bus = lock(&self.bus);
                answer_ctrl(&c, &mem, req, |t| bus.has_target(t)).map_err(|e| e.to_string())
            });
            answered.unwrap_or_else(|e| {
                BAD_REQUESTS.eprintln(format_args!("virtio-scsi {} control: {e}", self.name));
                0
            })
        });
        self.control = Some(queue);
        self.broken = !complete(res, &self.interrupt, CONTROL_QUEUE, "virtio-scsi");
    }
}

impl WorkerHandler for ScsiWorker {
    fn queue_notified(&mut self, index: usize) {
        match index {
            CONTROL_QUEUE => self.process_control(),
            REQUEST_QUEUE => self.process_requests(),
            _ => {}
        }
    }
}

impl VirtioDevice for Scsi {
    fn device_type(&self) -> u32 {
        VIRTIO_ID_SCSI
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &QUEUE_SIZES
    }

    fn device_features(&self) -> u64 {
        0
    }

    fn read_config(&self, offset: u64, data: &mut [u8]) {
        read_config_bytes(&self.config(), offset, data);
    }

    /// sense_size and cdb_size are the driver's to set (Linux writes the defaults back);
    /// values past the bounds are ignored.
    fn write_config(&mut self, offset: u64, data: &[u8]) {
        let Ok(v) = <[u8; 4]>::try_from(data).map(u32::from_le_bytes) else {
            return;
        };
        match offset {
            CONFIG_SENSE_SIZE if v <= MAX_SENSE_SIZE => self.sizes.sense = v,
            CONFIG_CDB_SIZE if v <= MAX_CDB_SIZE => self.sizes.cdb = v,
            _ => {}
        }
    }

    fn activate(
        &mut self,
        mem: GuestMemory,
        interrupt: Arc<Interrupt>,
        _features: u64,
        queues: Vec<ActiveQueue>,
    ) -> Result<(), ActivateError> {
        let mut control = None;
        let mut events = None;
        let mut requests = None;
        let mut notifiers = Vec::new();
        // SeaBIOS sets up the request queue only.
        for q in queues {
            match q.index {
                CONTROL_QUEUE => {
                    control = Some(q.queue);
                    notifiers.push((q.index, q.notify));
                }
                EVENT_QUEUE => events = Some(q.queue),
                REQUEST_QUEUE => {
                    requests = Some(q.queue);
                    notifiers.push((q.index, q.notify));
                }
                _ => {}
            }
        }
        let Some(requests) = requests else {
            return Err(ActivateError::QueueNotReady(REQUEST_QUEUE));
        };
        let mut handler = ScsiWorker {
            mem,
            control,
            requests,
            _events: events,
            interrupt,
            bus: self.bus.clone(),
            sizes: self.sizes,
            data_out: Vec::new(),
            on_guest_change: self.on_guest_change.clone(),
            broken: false,
            name: self.name.clone(),
        };
        // Requests made available before DRIVER_OK would otherwise wait for a notification.
        handler.process_control();
        handler.process_requests();
        let worker =
            Worker::spawn("virtio-scsi", handler, notifiers).map_err(ActivateError::Worker)?;
        self.worker = Some(worker);
        Ok(())
    }

    fn reset(&mut self) {
        if let Some(mut w) = self.worker.take() {
            w.stop();
        }
        self.sizes = Sizes::default();
    }

    /// Makes each disk's writes durable (SYNCHRONIZE CACHE, as a guest would) and closes every
    /// image here, on the main thread, as virtio-blk does on exit.
    fn close(&mut self) -> Result<(), CloseError> {
        if let Some(mut w) = self.worker.take() {
            w.stop();
        }
        let mut bus = lock(&self.bus);
        let mut failed = None;
        for u in bus.units_mut() {
            if u.unit.info().cdrom {
                continue;
            }
            let o = synchronize_cache(&mut u.unit);
            if o.status != GOOD && failed.is_none() {
                let why = o.sense.map_or_else(
                    || format!("status {:#04x}", o.status),
                    |s| format!("sense {:x}/{:02x}/{:02x}", s.key, s.asc, s.ascq),
                );
                failed = Some(CloseError::Flush {
                    device: format!("{} {}", self.name, u.id),
                    source: std::io::Error::other(format!("SYNCHRONIZE CACHE failed: {why}")),
                });
            }
        }
        bus.clear();
        failed.map_or(Ok(()), Err)
    }
}

/// SYNCHRONIZE CACHE (10) on a disk unit. A pending UNIT ATTENTION (the power-on one, on a
/// disk the guest never used) fails the first try without flushing and is cleared by it, so
/// that one is tried again.
fn synchronize_cache(unit: &mut crate::scsi::LogicalUnit) -> crate::scsi::Outcome {
    const UNIT_ATTENTION: u8 = 0x06;
    let sync = [0x35u8, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    let mut o = unit.execute(&sync, &[], 0);
    for _ in 0..3 {
        if o.sense.map(|s| s.key) != Some(UNIT_ATTENTION) {
            break;
        }
        o = unit.execute(&sync, &[], 0);
    }
    o
}

#[cfg(test)]
mod tests;
