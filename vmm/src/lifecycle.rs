//! How a VM ends, and the handle devices and vCPUs use to ask for that.
//!
//! The first request wins: a guest that writes the S5 register and then triple-faults while
//! going down is reported as powered off.

use std::sync::{Arc, Mutex};
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
            ExitReason::Poweroff | ExitReason::Quit => 0,
            ExitReason::Error(_) => 1,
            ExitReason::Reboot => 2,
            ExitReason::Crash(_) => 3,
        }
    }

    /// Short word used in events and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            ExitReason::Poweroff => "poweroff",
            ExitReason::Reboot => "reboot",
            ExitReason::Crash(_) => "crash",
            ExitReason::Quit => "quit",
            ExitReason::Error(_) => "error",
        }
    }
}

/// Exit code of a powered-off or quit VM.
pub const EXIT_POWEROFF: i32 = 0;
/// Exit code when the VMM itself failed or the config was refused.
pub const EXIT_ERROR: i32 = 1;
/// Exit code when the guest asked for a reboot: the driver starts a fresh process.
pub const EXIT_REBOOT: i32 = 2;
/// Exit code when the guest crashed.
pub const EXIT_CRASH: i32 = 3;

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
