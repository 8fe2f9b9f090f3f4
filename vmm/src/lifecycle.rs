//! How a VM ends, and the handle devices and vCPUs use to ask for that.
//!
//! The first request wins: a guest that writes the S5 register and then triple-faults while
//! going down is reported as powered off.

use std::sync::{Arc, Mutex};
use vireo_vmm_api::control::StopReason;
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

/// Why the VM stopped running.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExitReason {
    /// The guest powered off (ACPI S5) — also after a power-down request.
    Poweroff,
    /// The guest asked for a reset (i8042 0xFE, FADT reset register) or a client sent `reset`.
    Reboot,
    /// The guest died: triple fault, KVM internal error, emulation failure... with the why.
    Crash(String),
    /// A control client sent `quit`.
    Quit,
    /// The VMM itself failed (host error).
    Error(String),
}

impl ExitReason {
    /// Process exit status for this reason. Documented in `vireo-vmm --help`:
    /// 0 poweroff or quit, 1 VMM error, 2 reboot requested, 3 guest crash.
    pub fn exit_code(&self) -> i32 {
        match self {
            ExitReason::Poweroff | ExitReason::Quit => EXIT_POWEROFF,
            ExitReason::Error(_) => EXIT_ERROR,
            ExitReason::Reboot => EXIT_REBOOT,
            ExitReason::Crash(_) => EXIT_CRASH,
        }
    }

    /// The reason without its detail, as the `shutdown` event gives it.
    pub fn kind(&self) -> StopReason {
        match self {
            ExitReason::Poweroff => StopReason::Poweroff,
            ExitReason::Reboot => StopReason::Reboot,
            ExitReason::Crash(_) => StopReason::Crash,
            ExitReason::Quit => StopReason::Quit,
            ExitReason::Error(_) => StopReason::Error,
        }
    }
}

/// The exit statuses the driver reads, defined with it in `vireo-vmm-api`.
pub use vireo_vmm_api::exit::{EXIT_CRASH, EXIT_ERROR, EXIT_POWEROFF, EXIT_REBOOT};

struct Inner {
    reason: Mutex<Option<ExitReason>>,
    evt: EventFd,
}

/// Cloneable handle: `request` records the reason (first wins) and wakes the main loop.
#[derive(Clone)]
pub struct ExitHandle {
    inner: Arc<Inner>,
}

impl ExitHandle {
    pub fn new() -> std::io::Result<ExitHandle> {
        Ok(ExitHandle {
            inner: Arc::new(Inner {
                reason: Mutex::new(None),
                evt: EventFd::new(EFD_NONBLOCK)?,
            }),
        })
    }

    pub fn request(&self, reason: ExitReason) {
        let mut r = self.inner.reason.lock().unwrap_or_else(|e| e.into_inner());
        if r.is_none() {
            *r = Some(reason);
        }
        let _ = self.inner.evt.write(1);
    }

    /// The recorded reason, if any.
    pub fn reason(&self) -> Option<ExitReason> {
        self.inner
            .reason
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Readable when an exit was requested (for poll loops).
    pub fn eventfd(&self) -> &EventFd {
        &self.inner.evt
    }
}
