//! The per-device worker thread: one epoll over the queue notification eventfds, the backend's
//! fds and a stop eventfd.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::thread::JoinHandle;

use vmm_sys_util::epoll::{ControlOperation, Epoll, EpollEvent, EventSet};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

const TOKEN_STOP: u64 = 0;
const TOKEN_QUEUE_BASE: u64 = 1;
/// Tokens at or above this value belong to the backend.
pub const TOKEN_BACKEND_BASE: u64 = 1 << 32;

/// What a device does when its worker wakes up.
pub trait WorkerHandler: Send + 'static {
    /// Queue `index` was notified (the eventfd has been read already).
    fn queue_notified(&mut self, index: usize);
    /// Same as [`WorkerHandler::queue_notified`], for handlers that adjust their fds afterwards.
    fn queue_notified_ctl(&mut self, _ctl: &EpollCtl<'_>, index: usize) {
        self.queue_notified(index);
    }
    /// A backend fd registered with `token` is ready.
    fn backend_event(&mut self, _ctl: &EpollCtl<'_>, _token: u64, _events: EventSet) {}
    /// Called once before the loop starts, to register backend fds.
    fn start(&mut self, _ctl: &EpollCtl<'_>) -> io::Result<()> {
        Ok(())
    }
}

/// Lets a handler (re-)register its backend fds.
pub struct EpollCtl<'a> {
    epoll: &'a Epoll,
}

impl EpollCtl<'_> {
    /// Watches `fd` for `events`; it is reported with `token` (>= [`TOKEN_BACKEND_BASE`]).
    pub fn add(&self, fd: RawFd, token: u64, events: EventSet) -> io::Result<()> {
        self.epoll
            .ctl(ControlOperation::Add, fd, EpollEvent::new(events, token))
    }

    /// Stops watching `fd`.
    pub fn delete(&self, fd: RawFd) -> io::Result<()> {
        self.epoll
            .ctl(ControlOperation::Delete, fd, EpollEvent::default())
    }

    /// Changes the events watched on `fd`.
    pub fn modify(&self, fd: RawFd, token: u64, events: EventSet) -> io::Result<()> {
        self.epoll
            .ctl(ControlOperation::Modify, fd, EpollEvent::new(events, token))
    }
}

/// A running worker; stopping (or dropping) it ends the thread and waits for it.
pub struct Worker {
    stop: EventFd,
    thread: Option<JoinHandle<()>>,
}

impl Worker {
    /// Starts a thread named `name` running `handler`.
    pub fn spawn<H: WorkerHandler>(
        name: &str,
        mut handler: H,
        queue_notifiers: Vec<(usize, EventFd)>,
    ) -> io::Result<Worker> {
        let stop = EventFd::new(EFD_NONBLOCK)?;
        let stop_thread = stop.try_clone()?;
        let epoll = Epoll::new()?;
        epoll.ctl(
            ControlOperation::Add,
            stop_thread.as_raw_fd(),
            EpollEvent::new(EventSet::IN, TOKEN_STOP),
        )?;
        for (index, fd) in &queue_notifiers {
            epoll.ctl(
                ControlOperation::Add,
                fd.as_raw_fd(),
                EpollEvent::new(EventSet::IN, TOKEN_QUEUE_BASE + *index as u64),
            )?;
        }
        handler.start(&EpollCtl { epoll: &epoll })?;
        let thread = std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || {
                crate::seccomp::apply_current(crate::seccomp::ThreadKind::Io);
                crate::lifecycle::test_panic_point();
                run(epoll, handler, queue_notifiers, stop_thread)
            })?;
        Ok(Worker {
            stop,
            thread: Some(thread),
        })
    }

    /// Stops the thread and waits for it.
    pub fn stop(&mut self) {
        if let Some(thread) = self.thread.take() {
            // If the write fails the thread cannot be told to stop; joining would hang forever,
            // so leave it detached (it exits with the process).
            if self.stop.write(1).is_ok() {
                let _ = thread.join();
            }
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.stop();
    }
}

fn run<H: WorkerHandler>(
    epoll: Epoll,
    mut handler: H,
    queue_notifiers: Vec<(usize, EventFd)>,
    _stop: EventFd,
) {
    let mut events = vec![EpollEvent::default(); 32];
    loop {
        let n = match epoll.wait(-1, &mut events) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            // A device that silently stops answering would leave the guest hanging on it.
            Err(e) => crate::lifecycle::fail_now(&format!("virtio worker: epoll_wait failed: {e}")),
        };
        for ev in &events[..n] {
            let token = ev.data();
            if token == TOKEN_STOP {
                return;
            }
            if token >= TOKEN_BACKEND_BASE {
                handler.backend_event(&EpollCtl { epoll: &epoll }, token, ev.event_set());
                continue;
            }
            let index = (token - TOKEN_QUEUE_BASE) as usize;
            if let Some((_, fd)) = queue_notifiers.iter().find(|(i, _)| *i == index) {
                // Drains the counter; a failure only means nothing was pending.
                let _ = fd.read();
                handler.queue_notified_ctl(&EpollCtl { epoll: &epoll }, index);
            }
        }
    }
}
