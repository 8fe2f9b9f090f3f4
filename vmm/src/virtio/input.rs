//! virtio-input: a keyboard and an absolute tablet, fed by [`InputHandle`] (the VNC server).
//!
//! Events are Linux evdev triples `{type: le16, code: le16, value: le32}` written into the
//! buffers the driver posts on the event queue; each burst ends with a SYN_REPORT. Events wait in
//! a bounded buffer while the guest has no buffers posted; a burst that does not fit is dropped as
//! a whole so the guest never sees half a report.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use virtio_bindings::virtio_ids::VIRTIO_ID_INPUT;
use virtio_queue::Queue;
use vmm_sys_util::epoll::EventSet;
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use super::queue::{complete, drain_queue, pop_chain, validate_chain};
use super::worker::{EpollCtl, Worker, WorkerHandler, TOKEN_BACKEND_BASE};
use super::{ActivateError, ActiveQueue, GuestMemory, Interrupt, VirtioDevice};

const QUEUE_SIZE: u16 = 64;
/// Events kept while the guest is not reading (a few seconds of fast pointer motion).
const MAX_PENDING: usize = 4096;
const EVENT_QUEUE: usize = 0;
const STATUS_QUEUE: usize = 1;

const CFG_ID_NAME: u8 = 0x01;
const CFG_ID_SERIAL: u8 = 0x02;
const CFG_ID_DEVIDS: u8 = 0x03;
const CFG_PROP_BITS: u8 = 0x10;
const CFG_EV_BITS: u8 = 0x11;
const CFG_ABS_INFO: u8 = 0x12;

/// evdev event types and codes used here (linux/input-event-codes.h).
pub mod ev {
    /// Synchronization.
    pub const EV_SYN: u16 = 0x00;
    /// Keys and buttons.
    pub const EV_KEY: u16 = 0x01;
    /// Relative axes.
    pub const EV_REL: u16 = 0x02;
    /// Absolute axes.
    pub const EV_ABS: u16 = 0x03;
    /// LEDs.
    pub const EV_LED: u16 = 0x11;
    /// Autorepeat.
    pub const EV_REP: u16 = 0x14;
    /// End of a report.
    pub const SYN_REPORT: u16 = 0;
    /// Absolute X.
    pub const ABS_X: u16 = 0x00;
    /// Absolute Y.
    pub const ABS_Y: u16 = 0x01;
    /// Horizontal wheel.
    pub const REL_HWHEEL: u16 = 0x06;
    /// Vertical wheel.
    pub const REL_WHEEL: u16 = 0x08;
    /// Left button.
    pub const BTN_LEFT: u16 = 0x110;
    /// Right button.
    pub const BTN_RIGHT: u16 = 0x111;
    /// Middle button.
    pub const BTN_MIDDLE: u16 = 0x112;
    /// Largest key code the keyboard announces.
    pub const KEY_MAX_ANNOUNCED: u16 = 0x2ff;
}

/// Largest absolute coordinate the tablet reports (both axes).
pub const ABS_MAX: u32 = 32767;

/// One evdev event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InputEvent {
    /// Event type.
    pub kind: u16,
    /// Event code.
    pub code: u16,
    /// Value.
    pub value: u32,
}

impl InputEvent {
    fn bytes(&self) -> [u8; 8] {
        let mut b = [0u8; 8];
        b[0..2].copy_from_slice(&self.kind.to_le_bytes());
        b[2..4].copy_from_slice(&self.code.to_le_bytes());
        b[4..8].copy_from_slice(&self.value.to_le_bytes());
        b
    }
}

fn syn() -> InputEvent {
    InputEvent {
        kind: ev::EV_SYN,
        code: ev::SYN_REPORT,
        value: 0,
    }
}

/// The bounded event buffer between the handle and the device worker.
struct Sink {
    pending: Mutex<VecDeque<InputEvent>>,
    wake: EventFd,
}

impl Sink {
    fn push_burst(&self, events: &[InputEvent]) {
        let mut q = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        if q.len() + events.len() > MAX_PENDING {
            return;
        }
        q.extend(events.iter().copied());
        drop(q);
        // Only fails when the counter is saturated, i.e. the worker is already due to wake.
        let _ = self.wake.write(1);
    }
}

/// Which device a [`VirtioInput`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputKind {
    /// A keyboard with LEDs and autorepeat.
    Keyboard,
    /// An absolute pointer with three buttons and wheels.
    Tablet,
}

/// The cloneable input API for the VNC server (or anything else that injects input).
#[derive(Clone, Default)]
pub struct InputHandle {
    keyboard: Option<Arc<Sink>>,
    tablet: Option<Arc<Sink>>,
    buttons: Arc<Mutex<u8>>,
}

impl InputHandle {
    /// Whether a tablet is attached (else pointer events go nowhere).
    pub fn has_tablet(&self) -> bool {
        self.tablet.is_some()
    }

    /// Whether a virtio keyboard is attached.
    pub fn has_keyboard(&self) -> bool {
        self.keyboard.is_some()
    }

    /// A pointer position in a `width` x `height` screen, with the RFB button mask (bit 0 left,
    /// 1 middle, 2 right, 3/4 wheel up/down, 5/6 wheel left/right).
    pub fn pointer_abs(&self, x: u32, y: u32, width: u32, height: u32, buttons: u8) {
        let Some(sink) = &self.tablet else {
            return;
        };
        let scale = |v: u32, size: u32| -> u32 {
            let span = u64::from(size.max(2) - 1);
            let v = u64::from(v).min(span);
            (v * u64::from(ABS_MAX) / span) as u32
        };
        let mut events = vec![
            InputEvent {
                kind: ev::EV_ABS,
                code: ev::ABS_X,
                value: scale(x, width),
            },
            InputEvent {
                kind: ev::EV_ABS,
                code: ev::ABS_Y,
                value: scale(y, height),
            },
        ];
        let mut prev = self.buttons.lock().unwrap_or_else(|e| e.into_inner());
        let changed = *prev ^ buttons;
        for (bit, code) in [(0u8, ev::BTN_LEFT), (1, ev::BTN_MIDDLE), (2, ev::BTN_RIGHT)] {
            if changed & (1 << bit) != 0 {
                events.push(InputEvent {
                    kind: ev::EV_KEY,
                    code,
                    value: u32::from(buttons & (1 << bit) != 0),
                });
            }
        }
        // Wheel "buttons" count on press only.
        let pressed = changed & buttons;
        for (bit, code, value) in [
            (3u8, ev::REL_WHEEL, 1i32),
            (4, ev::REL_WHEEL, -1),
            (5, ev::REL_HWHEEL, -1),
            (6, ev::REL_HWHEEL, 1),
        ] {
            if pressed & (1 << bit) != 0 {
                events.push(InputEvent {
                    kind: ev::EV_REL,
                    code,
                    value: value as u32,
                });
            }
        }
        *prev = buttons;
        drop(prev);
        events.push(syn());
        sink.push_burst(&events);
    }

    /// A key press or release, as a Linux key code (KEY_A = 30, ...).
    pub fn key(&self, linux_keycode: u16, down: bool) {
        let Some(sink) = &self.keyboard else {
            return;
        };
        sink.push_burst(&[
            InputEvent {
                kind: ev::EV_KEY,
                code: linux_keycode,
                value: u32::from(down),
            },
            syn(),
        ]);
    }

    /// Joins two handles (e.g. one from the keyboard, one from the tablet).
    pub fn merge(self, other: InputHandle) -> InputHandle {
        InputHandle {
            keyboard: self.keyboard.or(other.keyboard),
            tablet: self.tablet.or(other.tablet),
            buttons: self.buttons,
        }
    }
}

/// A virtio-input device.
pub struct VirtioInput {
    kind: InputKind,
    sink: Arc<Sink>,
    select: u8,
    subsel: u8,
    worker: Option<Worker>,
}

impl VirtioInput {
    /// A new device of `kind`.
    pub fn new(kind: InputKind) -> std::io::Result<VirtioInput> {
        Ok(VirtioInput {
            kind,
            sink: Arc::new(Sink {
                pending: Mutex::new(VecDeque::new()),
                wake: EventFd::new(EFD_NONBLOCK)?,
            }),
            select: 0,
            subsel: 0,
            worker: None,
        })
    }

    /// A handle that feeds this device.
    pub fn handle(&self) -> InputHandle {
        let mut h = InputHandle::default();
        match self.kind {
            InputKind::Keyboard => h.keyboard = Some(Arc::clone(&self.sink)),
            InputKind::Tablet => h.tablet = Some(Arc::clone(&self.sink)),
        }
        h
    }

    /// The payload for the current select/subsel, empty when there is none.
    fn config_payload(&self) -> Vec<u8> {
        let bitmap = |codes: &[u16]| -> Vec<u8> {
            let mut b = vec![0u8; 128];
            for &c in codes {
                let (byte, bit) = (usize::from(c / 8), c % 8);
                if byte < b.len() {
                    b[byte] |= 1 << bit;
                }
            }
            while b.last() == Some(&0) {
                b.pop();
            }
            b
        };
        match (self.select, self.kind) {
            (CFG_ID_NAME, InputKind::Keyboard) => b"Vireo virtio keyboard".to_vec(),
            (CFG_ID_NAME, InputKind::Tablet) => b"Vireo virtio tablet".to_vec(),
            (CFG_ID_SERIAL, _) => b"vireo-input".to_vec(),
            (CFG_ID_DEVIDS, kind) => {
                // BUS_VIRTUAL, vendor, product, version.
                let product: u16 = if kind == InputKind::Keyboard { 1 } else { 2 };
                let mut v = Vec::new();
                for x in [0x06u16, 0x5649, product, 1] {
                    v.extend_from_slice(&x.to_le_bytes());
                }
                v
            }
            (CFG_PROP_BITS, _) => Vec::new(),
            (CFG_EV_BITS, InputKind::Keyboard) => match u16::from(self.subsel) {
                ev::EV_KEY => bitmap(&(1..=ev::KEY_MAX_ANNOUNCED).collect::<Vec<_>>()),
                ev::EV_REP => bitmap(&[0]),
                // LED_NUML, LED_CAPSL, LED_SCROLLL.
                ev::EV_LED => bitmap(&[0, 1, 2]),
                _ => Vec::new(),
            },
            (CFG_EV_BITS, InputKind::Tablet) => match u16::from(self.subsel) {
                ev::EV_KEY => bitmap(&[ev::BTN_LEFT, ev::BTN_RIGHT, ev::BTN_MIDDLE]),
                ev::EV_REL => bitmap(&[ev::REL_HWHEEL, ev::REL_WHEEL]),
                ev::EV_ABS => bitmap(&[ev::ABS_X, ev::ABS_Y]),
                _ => Vec::new(),
            },
            (CFG_ABS_INFO, InputKind::Tablet)
                if matches!(u16::from(self.subsel), ev::ABS_X | ev::ABS_Y) =>
            {
                let mut v = Vec::new();
                for x in [0u32, ABS_MAX, 0, 0, 0] {
                    v.extend_from_slice(&x.to_le_bytes());
                }
                v
            }
            _ => Vec::new(),
        }
    }

    fn config_bytes(&self) -> Vec<u8> {
        let payload = self.config_payload();
        let mut c = vec![0u8; 8 + 128];
        c[0] = self.select;
        c[1] = self.subsel;
        c[2] = payload.len().min(128) as u8;
        let n = payload.len().min(128);
        c[8..8 + n].copy_from_slice(&payload[..n]);
        c
    }
}

struct InputWorker {
    mem: GuestMemory,
    eventq: Option<Queue>,
    statusq: Option<Queue>,
    interrupt: Arc<Interrupt>,
    sink: Arc<Sink>,
    broken: bool,
}

impl InputWorker {
    /// Moves pending events into posted buffers, one event per buffer.
    fn deliver(&mut self) {
        if self.broken {
            return;
        }
        let Some(queue) = self.eventq.as_mut() else {
            return;
        };
        let mem = &self.mem;
        let mut pending = self.sink.pending.lock().unwrap_or_else(|e| e.into_inner());
        let mut used_any = false;
        let mut result: Result<(), virtio_queue::Error> = Ok(());
        'outer: loop {
            while let Some(event) = pending.front().copied() {
                let chain = match pop_chain(queue, mem) {
                    Ok(Some(c)) => c,
                    Ok(None) => break,
                    Err(e) => {
                        result = Err(e);
                        break 'outer;
                    }
                };
                let head = chain.head_index();
                let written = match validate_chain(chain, queue.size()) {
                    Ok(c) => c.write_at(mem, 0, &event.bytes()).unwrap_or(0),
                    Err(e) => {
                        crate::vmm_log!("virtio-input: {e}");
                        0
                    }
                };
                if written == 8 {
                    pending.pop_front();
                }
                if let Err(e) = queue.add_used(mem, head, written as u32) {
                    result = Err(e);
                    break 'outer;
                }
                used_any = true;
            }
            if pending.is_empty() {
                break;
            }
            // Out of buffers: re-arm the notification (avail-event with EVENT_IDX) and look once
            // more, so buffers posted meanwhile are not missed.
            match queue.enable_notification(mem) {
                Ok(true) => continue,
                Ok(false) => break,
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        drop(pending);
        let res = result.and_then(|()| {
            if used_any {
                queue.needs_notification(mem)
            } else {
                Ok(false)
            }
        });
        self.broken = !complete(res, &self.interrupt, EVENT_QUEUE, "virtio-input");
    }

    /// The status queue carries LED changes; the host has no LEDs to set, so just return them.
    fn drain_status(&mut self) {
        if self.broken {
            return;
        }
        let Some(queue) = self.statusq.as_mut() else {
            return;
        };
        let res = drain_queue(queue, &self.mem, |_| 0);
        self.broken = !complete(res, &self.interrupt, STATUS_QUEUE, "virtio-input status");
    }
}

use virtio_queue::QueueT;

impl WorkerHandler for InputWorker {
    fn start(&mut self, ctl: &EpollCtl<'_>) -> std::io::Result<()> {
        use std::os::fd::AsRawFd;
        ctl.add(self.sink.wake.as_raw_fd(), TOKEN_BACKEND_BASE, EventSet::IN)
    }

    fn queue_notified(&mut self, index: usize) {
        match index {
            0 => self.deliver(),
            _ => self.drain_status(),
        }
    }

    fn backend_event(&mut self, _ctl: &EpollCtl<'_>, _token: u64, _events: EventSet) {
        let _ = self.sink.wake.read();
        self.deliver();
    }
}

impl VirtioDevice for VirtioInput {
    fn device_type(&self) -> u32 {
        VIRTIO_ID_INPUT
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &[QUEUE_SIZE, QUEUE_SIZE]
    }

    fn device_features(&self) -> u64 {
        0
    }

    fn read_config(&self, offset: u64, data: &mut [u8]) {
        super::read_config_bytes(&self.config_bytes(), offset, data);
    }

    fn write_config(&mut self, offset: u64, data: &[u8]) {
        // Only select (0) and subsel (1) are writable.
        for (i, b) in data.iter().enumerate() {
            match offset + i as u64 {
                0 => self.select = *b,
                1 => self.subsel = *b,
                _ => {}
            }
        }
    }

    fn activate(
        &mut self,
        mem: GuestMemory,
        interrupt: Arc<Interrupt>,
        _features: u64,
        queues: Vec<ActiveQueue>,
    ) -> Result<(), ActivateError> {
        let mut eventq = None;
        let mut statusq = None;
        let mut notifiers = Vec::new();
        for q in queues {
            match q.index {
                EVENT_QUEUE => eventq = Some(q.queue),
                _ => statusq = Some(q.queue),
            }
            notifiers.push((q.index, q.notify));
        }
        if eventq.is_none() {
            return Err(ActivateError::QueueNotReady(EVENT_QUEUE));
        }
        // Input from before the driver was ready is stale.
        self.sink
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        let handler = InputWorker {
            mem,
            eventq,
            statusq,
            interrupt,
            sink: Arc::clone(&self.sink),
            broken: false,
        };
        let name = match self.kind {
            InputKind::Keyboard => "virtio-kbd",
            InputKind::Tablet => "virtio-tablet",
        };
        self.worker = Some(Worker::spawn(name, handler, notifiers).map_err(ActivateError::Worker)?);
        Ok(())
    }

    fn reset(&mut self) {
        if let Some(mut w) = self.worker.take() {
            w.stop();
        }
        self.select = 0;
        self.subsel = 0;
    }
}
