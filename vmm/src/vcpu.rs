//! vCPU threads: the KVM_RUN loop, exit dispatch to the buses, pausing.
//!
//! Pausing: the controller sets `paused` and kicks every vCPU thread with a signal (which makes
//! KVM_RUN return EINTR) until all have parked; a kick that lands outside KVM_RUN is simply
//! repeated. Each parking vCPU calls KVM_KVMCLOCK_CTRL so the guest does not take the pause
//! for a soft lockup.

use crate::devices::bus::Bus;
use crate::lifecycle::{ExitHandle, ExitReason};
use kvm_bindings::{KVM_SYSTEM_EVENT_CRASH, KVM_SYSTEM_EVENT_RESET, KVM_SYSTEM_EVENT_SHUTDOWN};
use kvm_ioctls::{VcpuExit, VcpuFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use vmm_sys_util::signal::{register_signal_handler, Killable, SIGRTMIN};

/// Signal used to kick a vCPU out of KVM_RUN.
pub fn kick_signal() -> i32 {
    SIGRTMIN()
}

extern "C" fn on_kick(_: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {}

/// Installs the (empty) handler for the kick signal, once per process.
pub fn install_kick_handler() -> std::io::Result<()> {
    static ONCE: std::sync::Once = std::sync::Once::new();
    let mut res = Ok(());
    ONCE.call_once(|| {
        res = register_signal_handler(kick_signal(), on_kick).map_err(std::io::Error::from)
    });
    res
}

#[derive(Default)]
struct RunState {
    paused: bool,
    parked: usize,
    stopped: bool,
}

/// Shared run/pause state of all vCPUs.
pub struct RunControl {
    state: Mutex<RunState>,
    cv: Condvar,
    vcpus: usize,
    /// Exits handled in userspace, for `status`.
    pub exits: AtomicU64,
    /// Accesses no device claimed, for `status`.
    pub unclaimed: AtomicU64,
}

impl RunControl {
    pub fn new(vcpus: usize) -> RunControl {
        RunControl {
            state: Mutex::new(RunState::default()),
            cv: Condvar::new(),
            vcpus,
            exits: AtomicU64::new(0),
            unclaimed: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, RunState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn is_paused(&self) -> bool {
        self.lock().paused
    }

    /// Asks all vCPUs to park and waits (kicking) until they have, up to `timeout`.
    pub fn pause(&self, threads: &[VcpuThread], timeout: Duration) -> Result<(), String> {
        self.lock().paused = true;
        let deadline = Instant::now() + timeout;
        loop {
            {
                let st = self.lock();
                if st.parked >= self.vcpus - self.exited(threads) || st.stopped {
                    return Ok(());
                }
            }
            for t in threads {
                if !t.handle.is_finished() {
                    let _ = t.handle.kill(kick_signal());
                }
            }
            if Instant::now() > deadline {
                return Err("vCPUs did not stop in time".into());
            }
            let st = self.lock();
            let _ = self.cv.wait_timeout(st, Duration::from_millis(2));
        }
    }

    fn exited(&self, threads: &[VcpuThread]) -> usize {
        threads.iter().filter(|t| t.handle.is_finished()).count()
    }

    pub fn resume(&self) {
        self.lock().paused = false;
        self.cv.notify_all();
    }

    /// Called by a vCPU thread between KVM_RUNs; blocks while paused. Returns false when
    /// the thread should end.
    fn checkpoint(&self, vcpu: &VcpuFd) -> bool {
        let mut st = self.lock();
        if st.paused {
            // Tell the guest's kvmclock the stop is ours (no soft-lockup report).
            let _ = vcpu.kvmclock_ctrl();
            st.parked += 1;
            self.cv.notify_all();
            while st.paused && !st.stopped {
                st = self.cv.wait(st).unwrap_or_else(|e| e.into_inner());
            }
            st.parked -= 1;
        }
        !st.stopped
    }

    /// Ends all vCPU loops at their next checkpoint.
    pub fn stop(&self, threads: &[VcpuThread]) {
        self.lock().stopped = true;
        self.cv.notify_all();
        for t in threads {
            if !t.handle.is_finished() {
                let _ = t.handle.kill(kick_signal());
            }
        }
    }
}

pub struct VcpuThread {
    pub id: u8,
    pub handle: JoinHandle<()>,
}

/// Starts vCPU `id`.
pub fn spawn(
    id: u8,
    fd: VcpuFd,
    pio: Arc<Bus>,
    mmio: Arc<Bus>,
    exit: ExitHandle,
    run: Arc<RunControl>,
    seccomp: bool,
) -> std::io::Result<VcpuThread> {
    let handle = std::thread::Builder::new()
        .name(format!("vcpu{id}"))
        .spawn(move || {
            if seccomp {
                crate::seccomp::apply_current(crate::seccomp::ThreadKind::Vcpu);
            }
            run_loop(id, fd, &pio, &mmio, &exit, &run)
        })?;
    Ok(VcpuThread { id, handle })
}

/// Wild MMIO / port accesses are logged this many times per vCPU, then only counted.
const LOG_UNCLAIMED: u32 = 16;

fn run_loop(id: u8, mut fd: VcpuFd, pio: &Bus, mmio: &Bus, exit: &ExitHandle, run: &RunControl) {
    let mut logged = 0u32;
    let mut wrote_a_port = false;
    let mut note_unclaimed = |what: &str, addr: u64, len: usize| {
        run.unclaimed.fetch_add(1, Ordering::Relaxed);
        if logged < LOG_UNCLAIMED {
            logged += 1;
            crate::vmm_log!(
                "vireo-vmm: vCPU {id}: {what} {addr:#x} ({len} bytes) hits no device; {}",
                if what.ends_with("read") {
                    "reads as all-ones"
                } else {
                    "dropped"
                }
            );
        }
    };
    loop {
        if !run.checkpoint(&fd) {
            return;
        }
        let result = fd.run();
        run.exits.fetch_add(1, Ordering::Relaxed);
        let reason = match result {
            Ok(VcpuExit::IoIn(..)) => {
                let (port, size, data) = port_io_data(&mut fd);
                for element in data.chunks_mut(size) {
                    if !pio.read(u64::from(port), element) && port != 0x80 {
                        note_unclaimed("port read", port.into(), size);
                    }
                }
                continue;
            }
            Ok(VcpuExit::IoOut(..)) => {
                if !wrote_a_port {
                    wrote_a_port = true;
                    crate::lifecycle::test_panic_point();
                }
                let (port, size, data) = port_io_data(&mut fd);
                for element in data.chunks(size) {
                    // 0x80 is the POST/delay port: written constantly, never interesting.
                    if !pio.write(u64::from(port), element) && port != 0x80 {
                        note_unclaimed("port write", port.into(), size);
                    }
                }
                continue;
            }
            Ok(VcpuExit::MmioRead(addr, data)) => {
                if !mmio.read(addr, data) {
                    note_unclaimed("MMIO read", addr, data.len());
                }
                continue;
            }
            Ok(VcpuExit::MmioWrite(addr, data)) => {
                if !mmio.write(addr, data) {
                    note_unclaimed("MMIO write", addr, data.len());
                }
                continue;
            }
            Ok(VcpuExit::Hlt) => {
                // Only without an in-kernel LAPIC; we always have one, so treat as a stop.
                ExitReason::Crash(format!("vCPU {id} halted with no way to wake (HLT exit)"))
            }
            Ok(VcpuExit::Shutdown) => ExitReason::Crash(format!(
                "vCPU {id}: triple fault (KVM_EXIT_SHUTDOWN){}",
                rip_of(&fd)
            )),
            Ok(VcpuExit::SystemEvent(kind, data)) => match kind {
                KVM_SYSTEM_EVENT_SHUTDOWN => ExitReason::Poweroff,
                KVM_SYSTEM_EVENT_RESET => ExitReason::Reboot,
                KVM_SYSTEM_EVENT_CRASH => ExitReason::Crash(format!("vCPU {id}: guest crash event {data:?}")),
                other => ExitReason::Crash(format!("vCPU {id}: unknown system event {other}")),
            },
            Ok(VcpuExit::FailEntry(reason, cpu)) => ExitReason::Crash(format!(
                "vCPU {id}: KVM_EXIT_FAIL_ENTRY, hardware entry failure reason {reason:#x} on host CPU {cpu}"
            )),
            Ok(VcpuExit::InternalError) => ExitReason::Crash(internal_error(id, &mut fd)),
            Ok(VcpuExit::Intr) => continue,
            Ok(other) => ExitReason::Crash(format!("vCPU {id}: unhandled exit {other:?}")),
            Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => continue,
            Err(e) => ExitReason::Error(format!("vCPU {id}: KVM_RUN failed: {e}")),
        };
        exit.request(reason);
        // Stay parked until the process ends; do not spin on a dead vCPU.
        run.lock().paused = true;
        let _ = run.checkpoint(&fd);
        return;
    }
}

/// The port, access size and data of the port I/O exit `fd` just took. kvm-ioctls hands out
/// `size * count` bytes as one slice; a string instruction (`rep insb`, `rep outsw`: SeaBIOS
/// reads fw_cfg and ATA data that way) is `count` accesses of `size` bytes each, and a device
/// must see them one by one, not as one wide access that no 1-byte register claims.
fn port_io_data(fd: &mut VcpuFd) -> (u16, usize, &mut [u8]) {
    let run = fd.get_kvm_run();
    // SAFETY: the last exit was KVM_EXIT_IO (the caller matched IoIn/IoOut), so `io` is the
    // active member of the union; it is plain integers.
    let io = unsafe { run.__bindgen_anon_1.io };
    let size = usize::from(io.size).max(1);
    let len = size * io.count as usize;
    let base = std::ptr::from_mut(run).cast::<u8>();
    // SAFETY: for KVM_EXIT_IO the kernel places the data at `data_offset` inside the vCPU's
    // kvm_run mapping (the PIO page, after the struct), `size * count` bytes long; this is the
    // region kvm-ioctls itself hands out for this exit, and nothing else refers to it while
    // the returned slice (tied to `fd`) lives.
    let data = unsafe { std::slice::from_raw_parts_mut(base.add(io.data_offset as usize), len) };
    (io.port, size, data)
}

fn rip_of(fd: &VcpuFd) -> String {
    match fd.get_regs() {
        Ok(r) => format!(" at rip {:#x}", r.rip),
        Err(_) => String::new(),
    }
}

/// Reads kvm_run.internal (suberror, data[]) for a useful crash reason.
fn internal_error(id: u8, fd: &mut VcpuFd) -> String {
    let rip = rip_of(fd);
    let run = fd.get_kvm_run();
    // SAFETY: the exit reason is KVM_EXIT_INTERNAL_ERROR, so `internal` is the active member
    // of the union; it is plain integers.
    let internal = unsafe { run.__bindgen_anon_1.internal };
    let suberror = match internal.suberror {
        1 => "emulation failure",
        2 => "simultaneous exception",
        3 => "delivery event failure",
        4 => "unexpected exit reason",
        _ => "unknown",
    };
    let n = (internal.ndata as usize).min(internal.data.len());
    let data: Vec<String> = internal.data[..n]
        .iter()
        .map(|d| format!("{d:#x}"))
        .collect();
    format!(
        "vCPU {id}: KVM internal error {} ({suberror}){rip}, data [{}]",
        internal.suberror,
        data.join(", ")
    )
}
