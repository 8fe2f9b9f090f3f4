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
    /// 0 poweroff or quit, 1 VMM error, 2 reboot requested, 3 guest crash (4, a VMM thread
    /// panicked, is the panic hook's: see [`install_panic_hook`]).
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
pub use vireo_vmm_api::exit::{
    EXIT_CRASH, EXIT_ERROR, EXIT_PANIC, EXIT_POWEROFF, EXIT_REBOOT, PANIC_LINE_PREFIX,
};

/// Makes a panic in any thread end the whole process with [`EXIT_PANIC`], after one line on
/// stderr naming the thread, the place and the message. Installed first thing in `main`.
///
/// Without it a panicking vCPU or device worker would simply vanish: the VM would go on with a
/// frozen vCPU or a dead disk, and the driver would keep showing it as running. `_exit` (no
/// unwinding, no destructors, no atexit handlers) because the other threads hold locks and
/// descriptors in unknown states; the kernel releases everything the process held.
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        if CONTAINED.with(std::cell::Cell::get) {
            // A panic [`contain_panic`] turns into an error: let it unwind to its caller.
            return;
        }
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| info.payload().downcast_ref::<String>().map(String::as_str))
            .unwrap_or("(no message)");
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let line = format!("{}\n", panic_line(std::thread::current().name(), msg, &at));
        // One write(2), so the line is not interleaved with other threads' output.
        // SAFETY: writing our own buffer to stderr, then ending the process without running
        // anything else (exit_group is allowed by every seccomp filter).
        unsafe {
            libc::write(2, line.as_ptr().cast(), line.len());
            libc::_exit(EXIT_PANIC);
        }
    }));
}

thread_local! {
    static CONTAINED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f`, turning a panic inside it into `Err(message)` instead of the end of the process:
/// only for third-party code that reads untrusted input and is known to panic on some of it
/// (qcow2 headers: imago), before the VM runs, where the caller can refuse the input cleanly.
/// Everywhere else a panic is a VMM bug and ends the VM ([`install_panic_hook`]).
pub fn contain_panic<R>(f: impl FnOnce() -> R) -> Result<R, String> {
    let was = CONTAINED.with(|c| c.replace(true));
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    CONTAINED.with(|c| c.set(was));
    r.map_err(|payload| {
        payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_default()
    })
}

fn panic_line(thread: Option<&str>, msg: &str, at: &str) -> String {
    let msg = msg.replace('\n', " ");
    format!(
        "{PANIC_LINE_PREFIX}thread '{}' panicked{at}: {msg}; the VM is stopped",
        thread.unwrap_or("unnamed")
    )
}

/// Ends the process at once with [`EXIT_ERROR`] after one line on stderr: for threads that
/// cannot go on and have no one to return an error to (a seccomp filter that did not install,
/// a device worker whose event loop broke). Same reasons as the panic hook for `_exit`.
pub fn fail_now(what: &str) -> ! {
    let line = format!(
        "vireo-vmm: {}; the VM is stopped\n",
        what.replace('\n', " ")
    );
    // SAFETY: as in the panic hook.
    unsafe {
        libc::write(2, line.as_ptr().cast(), line.len());
        libc::_exit(EXIT_ERROR)
    }
}

/// Environment variable naming a thread that panics on purpose (see [`test_panic_point`]).
pub const TEST_PANIC_ENV: &str = "VIREO_VMM_TEST_PANIC";

/// Test hook, compiled into debug builds only: panics if [`TEST_PANIC_ENV`] names the calling
/// thread (`vcpu0`, `virtio-rng`, ...). vCPU threads call it on their first port write, device
/// workers when they start, so the VM has run before the panic. A release build has no such
/// hook: nothing a guest, a client or the environment does can make a thread panic on purpose.
#[cfg(debug_assertions)]
pub fn test_panic_point() {
    let Some(want) = std::env::var_os(TEST_PANIC_ENV) else {
        return;
    };
    let me = std::thread::current();
    if me.name().is_some_and(|n| std::ffi::OsStr::new(n) == want) {
        panic!("test hook: {TEST_PANIC_ENV} names this thread");
    }
}

/// Release builds: no hook.
#[cfg(not(debug_assertions))]
#[inline(always)]
pub fn test_panic_point() {}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panic_line_names_thread_place_and_message_on_one_line() {
        let l = panic_line(Some("vcpu0"), "bad\nthing", " at src/x.rs:3");
        assert_eq!(
            l,
            "vireo-vmm: internal error: thread 'vcpu0' panicked at src/x.rs:3: bad thing; \
             the VM is stopped"
        );
        assert!(l.starts_with(PANIC_LINE_PREFIX));
    }
}
