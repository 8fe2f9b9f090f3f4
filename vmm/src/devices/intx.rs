//! PCI INTx lines: level-triggered and shared, as PCI defines them, through irqfds with KVM's
//! resample flag.
//!
//! A plain irqfd pulses its GSI (raise, then lower at once). On a level-triggered IOAPIC pin
//! that loses interrupts: a device that signals again while the guest still handles the first
//! one (remote IRR set, before the EOI) raises nothing the IOAPIC keeps. With
//! KVM_IRQFD_FLAG_RESAMPLE a write raises the line and leaves it up; the guest's EOI lowers it
//! and signals the resample eventfd, and the [`Resampler`] thread raises it again if the
//! device still has something pending (its ISR). Functions that share a GSI share KVM's
//! resampler for it: every one of them is asked.

use std::io;
use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex};

use kvm_ioctls::VmFd;
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use crate::virtio::IrqTrigger;

/// Whether the function behind a line still asserts it (for virtio-pci: its ISR is not zero).
pub type Pending = Box<dyn Fn() -> bool + Send>;

/// One function's INTx: writing the eventfd raises the GSI until the guest's EOI.
#[derive(Debug)]
pub struct IntxLine {
    gsi: u32,
    irq: EventFd,
}

impl IntxLine {
    pub fn gsi(&self) -> u32 {
        self.gsi
    }

    pub fn try_clone(&self) -> io::Result<IntxLine> {
        Ok(IntxLine {
            gsi: self.gsi,
            irq: self.irq.try_clone()?,
        })
    }
}

impl IrqTrigger for IntxLine {
    fn trigger(&self) -> io::Result<()> {
        self.irq.write(1)
    }
}

struct Watched {
    resample: EventFd,
    irq: EventFd,
    pending: Pending,
}

/// The lines of one machine and the thread that raises them again after an EOI.
pub struct Resampler {
    vm: Arc<VmFd>,
    lines: Arc<Mutex<Vec<Watched>>>,
    /// Wakes the thread to pick up lines added after it started.
    wake: Arc<EventFd>,
    started: bool,
}

impl Resampler {
    pub fn new(vm: Arc<VmFd>) -> io::Result<Resampler> {
        Ok(Resampler {
            vm,
            lines: Arc::new(Mutex::new(Vec::new())),
            wake: Arc::new(EventFd::new(EFD_NONBLOCK)?),
            started: false,
        })
    }

    /// A line on `gsi`; `pending` says whether the function still asserts it.
    pub fn line(&mut self, gsi: u32, pending: Pending) -> io::Result<IntxLine> {
        let irq = EventFd::new(EFD_NONBLOCK)?;
        let resample = EventFd::new(EFD_NONBLOCK)?;
        self.vm
            .register_irqfd_with_resample(&irq, &resample, gsi)
            .map_err(io::Error::from)?;
        let line = IntxLine {
            gsi,
            irq: irq.try_clone()?,
        };
        self.lines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Watched {
                resample,
                irq,
                pending,
            });
        if self.started {
            self.wake.write(1)?;
        }
        Ok(line)
    }

    /// Starts the thread (`intx-resample`, under the timer threads' seccomp filter); it runs
    /// as long as the process. Nothing to do when no line exists.
    pub fn start(&mut self) -> io::Result<()> {
        if self.started
            || self
                .lines
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .is_empty()
        {
            return Ok(());
        }
        let lines = self.lines.clone();
        let wake = self.wake.clone();
        std::thread::Builder::new()
            .name("intx-resample".into())
            .spawn(move || {
                crate::seccomp::apply_current(crate::seccomp::ThreadKind::Timer);
                resample_loop(&lines, &wake)
            })?;
        self.started = true;
        Ok(())
    }
}

fn resample_loop(lines: &Mutex<Vec<Watched>>, wake: &EventFd) {
    loop {
        let mut fds: Vec<libc::pollfd> = vec![libc::pollfd {
            fd: wake.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        fds.extend(
            lines
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .map(|w| libc::pollfd {
                    fd: w.resample.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                }),
        );
        // SAFETY: `fds` is a valid array of `fds.len()` pollfd structures we own.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) };
        if n < 0 {
            if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            crate::vmm_log!(
                "vireo-vmm: INTx resampler stopped: {}",
                io::Error::last_os_error()
            );
            return;
        }
        if fds[0].revents != 0 {
            let _ = wake.read();
        }
        let lines = lines.lock().unwrap_or_else(|e| e.into_inner());
        for (w, p) in lines.iter().zip(&fds[1..]) {
            if p.revents == 0 {
                continue;
            }
            let _ = w.resample.read();
            // KVM lowered the line at the EOI; a function that still asserts it raises it
            // again, as the wire would have stayed up. A failed write leaves the interrupt to
            // the device's next signal.
            if (w.pending)() {
                let _ = w.irq.write(1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kvm_ioctls::Kvm;
    use std::sync::atomic::{AtomicBool, Ordering};

    #[test]
    fn lines_register_with_resample_on_shared_gsis() {
        let Ok(kvm) = Kvm::new() else {
            eprintln!("no /dev/kvm: skipped");
            return;
        };
        let vm = Arc::new(kvm.create_vm().unwrap());
        vm.create_irq_chip().unwrap();
        let mut r = Resampler::new(vm).unwrap();
        let pending = Arc::new(AtomicBool::new(true));
        let p = pending.clone();
        let a = r
            .line(16, Box::new(move || p.load(Ordering::SeqCst)))
            .unwrap();
        let b = r.line(16, Box::new(|| false)).unwrap();
        assert_eq!((a.gsi(), b.gsi()), (16, 16));
        r.start().unwrap();
        a.trigger().unwrap();
        b.try_clone().unwrap().trigger().unwrap();
        // Added after the start: the thread picks it up.
        let c = r.line(17, Box::new(|| false)).unwrap();
        c.trigger().unwrap();
        assert_eq!(r.lines.lock().unwrap().len(), 3);
    }
}
