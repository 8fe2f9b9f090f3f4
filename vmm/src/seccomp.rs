//! Per-thread seccomp filters (seccompiler): an allowlist per kind of thread; anything else
//! kills the process (SIGSYS), so a guest that takes over a vCPU thread cannot create
//! sockets, execute programs or fork. Opening a file fails with EACCES on every thread but
//! the main one (a refusal the C library copes with, where a kill would end the VM).
//!
//! Kinds: vCPU threads, I/O workers (virtio, serial console), VNC server threads (refresh,
//! acceptors and, inheriting from those, each client's reader and writer), device timers (the
//! RTC's), the main thread.
//!
//! Filters stack: a thread started by a filtered thread inherits its filter, and virtio
//! workers are started from vCPU threads (device activation is an MMIO write), so the vCPU
//! list includes what those workers need (I/O on already-open descriptors, epoll, eventfds,
//! threads). New threads are allowed only as threads (`clone` with CLONE_THREAD); `clone3`
//! gets ENOSYS so the C library falls back to `clone`, whose flags a filter can check.
//!
//! `ioctl` is allowed per kind by request number, and `mmap`/`mprotect` never with PROT_EXEC:
//! the filters go on after start-up, when the process has mapped all the code it will ever run,
//! so a guest that takes over a thread can neither reach a KVM or device ioctl its thread does
//! not use nor make memory executable.
//!
//! A filter that cannot be installed ends the VM ([`apply_current`]): a VM never runs with a
//! thread less confined than this module says. Set `"seccomp": false` in the VM config to debug
//! a suspected filter kill (no environment variable turns the filters off).

use seccompiler::{
    apply_filter, BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition,
    SeccompFilter, SeccompRule, TargetArch,
};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};

/// The kinds of threads the VMM runs, each with its own filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThreadKind {
    /// vCPU threads (also run device emulation, and start virtio workers).
    Vcpu,
    /// Device workers and the serial console: I/O on open descriptors, accept.
    Io,
    /// The control loop: also file creation (screendump) and socket removal.
    Main,
    /// VNC server threads (listener, refresh timer, per-client reader and writer): I/O on
    /// sockets they were handed or accepted, the framebuffer's KVM dirty log, threads. No
    /// files, no new sockets except by accept, ioctl limited to the dirty log and FIONBIO.
    Vnc,
    /// Device timers (the RTC's periodic, alarm and update interrupts): sleep on a condition
    /// variable, read the clock, write an irqfd. No ioctl, no files, no sockets.
    Timer,
}

/// System calls every thread may make.
const COMMON: &[libc::c_long] = &[
    libc::SYS_read,
    libc::SYS_write,
    libc::SYS_readv,
    libc::SYS_writev,
    libc::SYS_pread64,
    libc::SYS_pwrite64,
    libc::SYS_preadv,
    libc::SYS_pwritev,
    libc::SYS_preadv2,
    libc::SYS_pwritev2,
    libc::SYS_lseek,
    libc::SYS_fsync,
    libc::SYS_fdatasync,
    libc::SYS_fallocate,
    // qcow2 (imago): growing the image file, and the filesystem block size for discard.
    libc::SYS_ftruncate,
    libc::SYS_fstatfs,
    libc::SYS_sendto,
    libc::SYS_sendmsg,
    libc::SYS_recvfrom,
    libc::SYS_recvmsg,
    libc::SYS_shutdown,
    libc::SYS_close,
    libc::SYS_fcntl,
    libc::SYS_fstat,
    libc::SYS_newfstatat,
    libc::SYS_statx,
    // ioctl, mmap and mprotect: with argument checks, see `allowlist`.
    libc::SYS_poll,
    libc::SYS_ppoll,
    libc::SYS_epoll_create1,
    libc::SYS_epoll_ctl,
    libc::SYS_epoll_wait,
    libc::SYS_epoll_pwait,
    libc::SYS_eventfd2,
    libc::SYS_munmap,
    libc::SYS_madvise,
    libc::SYS_mremap,
    libc::SYS_brk,
    libc::SYS_futex,
    libc::SYS_sched_yield,
    libc::SYS_sched_getaffinity,
    libc::SYS_nanosleep,
    libc::SYS_clock_nanosleep,
    libc::SYS_clock_gettime,
    libc::SYS_gettimeofday,
    libc::SYS_getrandom,
    libc::SYS_rt_sigreturn,
    libc::SYS_rt_sigprocmask,
    libc::SYS_rt_sigaction,
    libc::SYS_sigaltstack,
    libc::SYS_tgkill,
    libc::SYS_gettid,
    libc::SYS_getpid,
    libc::SYS_set_robust_list,
    libc::SYS_rseq,
    libc::SYS_prctl,
    libc::SYS_exit,
    libc::SYS_exit_group,
    libc::SYS_restart_syscall,
    // Threads add their own (narrower) filter on top of the inherited one; filters can only
    // ever be tightened, so allowing this gives nothing away.
    libc::SYS_seccomp,
    // Filtered separately: ENOSYS, see the module docs.
    libc::SYS_clone3,
];

const IO_EXTRA: &[libc::c_long] = &[
    libc::SYS_accept4,
    libc::SYS_accept,
    libc::SYS_getsockopt,
    libc::SYS_setsockopt,
    libc::SYS_getsockname,
    libc::SYS_getpeername,
];

const MAIN_EXTRA: &[libc::c_long] = &[
    libc::SYS_openat,
    libc::SYS_unlink,
    libc::SYS_unlinkat,
    libc::SYS_rename,
    libc::SYS_renameat,
    libc::SYS_renameat2,
    libc::SYS_wait4,
    libc::SYS_kill,
    libc::SYS_getrusage,
];

/// The VNC threads' own list, not [`COMMON`]: they never touch disks, eventfds or files, so
/// none of that is allowed. `ioctl`, `mmap` and `mprotect` are added with argument checks in
/// [`allowlist`].
const VNC: &[libc::c_long] = &[
    libc::SYS_read,
    libc::SYS_write,
    libc::SYS_readv,
    libc::SYS_writev,
    libc::SYS_sendto,
    libc::SYS_sendmsg,
    libc::SYS_recvfrom,
    libc::SYS_recvmsg,
    libc::SYS_shutdown,
    libc::SYS_close,
    // try_clone (F_DUPFD_CLOEXEC) of the accepted stream for the reader and writer threads.
    libc::SYS_fcntl,
    libc::SYS_accept4,
    libc::SYS_accept,
    // Read timeout during the handshake, TCP_NODELAY.
    libc::SYS_setsockopt,
    libc::SYS_getsockopt,
    libc::SYS_getsockname,
    libc::SYS_getpeername,
    libc::SYS_poll,
    libc::SYS_ppoll,
    // Encoder buffers (zlib streams, tiles), thread stacks; mmap and mprotect in `allowlist`.
    libc::SYS_munmap,
    libc::SYS_madvise,
    libc::SYS_mremap,
    libc::SYS_brk,
    libc::SYS_futex,
    libc::SYS_sched_yield,
    // glibc's malloc sizes its arenas by the CPU count when a new thread first allocates.
    libc::SYS_sched_getaffinity,
    libc::SYS_nanosleep,
    libc::SYS_clock_nanosleep,
    libc::SYS_clock_gettime,
    libc::SYS_gettimeofday,
    // The VNC authentication challenge.
    libc::SYS_getrandom,
    libc::SYS_rt_sigreturn,
    libc::SYS_rt_sigprocmask,
    libc::SYS_sigaltstack,
    libc::SYS_gettid,
    libc::SYS_getpid,
    libc::SYS_tgkill,
    libc::SYS_set_robust_list,
    libc::SYS_rseq,
    // Thread names.
    libc::SYS_prctl,
    libc::SYS_exit,
    libc::SYS_exit_group,
    libc::SYS_restart_syscall,
    // Filtered separately: ENOSYS, see the module docs.
    libc::SYS_clone3,
    // Filtered separately: EACCES, see OPEN_REFUSED.
    libc::SYS_open,
    libc::SYS_openat,
];

/// The timer threads' own list, not [`COMMON`]: a lock, a clock, an eventfd write; the INTx
/// resampler also polls and reads its resample eventfds.
const TIMER: &[libc::c_long] = &[
    libc::SYS_read,
    libc::SYS_poll,
    libc::SYS_ppoll,
    // The irqfd; and stderr, should the thread panic.
    libc::SYS_write,
    // The irqfd, when the thread ends holding the device's last reference (std checks the
    // descriptor with F_GETFD before closing it in debug builds).
    libc::SYS_close,
    libc::SYS_fcntl,
    libc::SYS_futex,
    libc::SYS_clock_gettime,
    libc::SYS_gettimeofday,
    libc::SYS_clock_nanosleep,
    libc::SYS_nanosleep,
    libc::SYS_sched_yield,
    libc::SYS_sched_getaffinity,
    libc::SYS_munmap,
    libc::SYS_madvise,
    libc::SYS_mremap,
    libc::SYS_brk,
    libc::SYS_rt_sigreturn,
    libc::SYS_rt_sigprocmask,
    libc::SYS_sigaltstack,
    libc::SYS_gettid,
    libc::SYS_getpid,
    libc::SYS_tgkill,
    libc::SYS_set_robust_list,
    libc::SYS_rseq,
    libc::SYS_prctl,
    libc::SYS_exit,
    libc::SYS_exit_group,
    libc::SYS_restart_syscall,
    // Filtered separately: ENOSYS and EACCES, see the module docs and OPEN_REFUSED.
    libc::SYS_clone3,
    libc::SYS_open,
    libc::SYS_openat,
];

/// Let through the allowlist of every kind but Main, then answered EACCES by [`open_eacces`]:
/// such threads open nothing, but the C library may try on its own (once per process, a new
/// thread's start opened /sys/devices/system/cpu/online in a test with many threads; glibc
/// copes with a refusal), and a kill there would end the VM for nothing.
const OPEN_REFUSED: &[libc::c_long] = &[libc::SYS_open, libc::SYS_openat];

/// ioctl request numbers, from the kernel's structure sizes as kvm-ioctls computes them.
mod request {
    use kvm_bindings::kvm_userspace_memory_region;
    use kvm_bindings::{kvm_clock_data, kvm_dirty_log, kvm_irq_level, kvm_regs};
    use kvm_bindings::{kvm_ioeventfd, kvm_irq_routing};

    const KVMIO: u32 = 0xAE;
    vmm_sys_util::ioctl_io_nr!(KVM_RUN, KVMIO, 0x80);
    vmm_sys_util::ioctl_io_nr!(KVM_KVMCLOCK_CTRL, KVMIO, 0xad);
    vmm_sys_util::ioctl_ior_nr!(KVM_GET_REGS, KVMIO, 0x81, kvm_regs);
    vmm_sys_util::ioctl_iow_nr!(KVM_IRQ_LINE, KVMIO, 0x61, kvm_irq_level);
    vmm_sys_util::ioctl_iow_nr!(KVM_GET_DIRTY_LOG, KVMIO, 0x42, kvm_dirty_log);
    vmm_sys_util::ioctl_ior_nr!(KVM_GET_CLOCK, KVMIO, 0x7c, kvm_clock_data);
    vmm_sys_util::ioctl_iow_nr!(KVM_SET_CLOCK, KVMIO, 0x7b, kvm_clock_data);
    vmm_sys_util::ioctl_iow_nr!(KVM_IOEVENTFD, KVMIO, 0x79, kvm_ioeventfd);
    vmm_sys_util::ioctl_iow_nr!(KVM_SET_GSI_ROUTING, KVMIO, 0x6a, kvm_irq_routing);
    vmm_sys_util::ioctl_iow_nr!(
        KVM_SET_USER_MEMORY_REGION,
        KVMIO,
        0x46,
        kvm_userspace_memory_region
    );
    /// std's `set_nonblocking` on sockets.
    pub const FIONBIO: u64 = libc::FIONBIO;
}

/// The ioctl requests each kind of thread makes after its filter is on; any other request
/// kills the process. Found by reading every ioctl the VMM and its libraries issue (block
/// images size themselves when opened, before any filter) and checked with strace on the
/// tiny-guest tests.
fn ioctl_requests(kind: ThreadKind) -> Vec<u64> {
    use request::*;
    match kind {
        // KVM_RUN and the pause (kvmclock) of the vCPU loop, the registers for a crash report,
        // the ACPI SCI level (the guest writes the PM registers); on `pc`, a virtio-pci
        // function's doorbells follow its BAR (ioeventfds) and its MSI-X table writes become
        // routes; UEFI's variable store leaves and rejoins guest memory as commands put the
        // flash chip out of and back into array mode. Device workers start from vCPU threads
        // and inherit this list; they make no ioctl of their own.
        ThreadKind::Vcpu => vec![
            KVM_RUN(),
            KVM_KVMCLOCK_CTRL(),
            KVM_GET_REGS(),
            KVM_IRQ_LINE(),
            KVM_IOEVENTFD(),
            KVM_SET_GSI_ROUTING(),
            KVM_SET_USER_MEMORY_REGION(),
        ],
        // std's set_nonblocking on the sockets handed to device threads.
        ThreadKind::Io => vec![FIONBIO],
        // Control clients' sockets; guest time across pause and resume; the power button's
        // SCI; the framebuffer's slot, removed when the VM ends.
        ThreadKind::Main => vec![
            FIONBIO,
            KVM_GET_CLOCK(),
            KVM_SET_CLOCK(),
            KVM_IRQ_LINE(),
            KVM_SET_USER_MEMORY_REGION(),
        ],
        // The refresh thread scans the framebuffer by its dirty log; client sockets.
        ThreadKind::Vnc => vec![KVM_GET_DIRTY_LOG(), FIONBIO],
        // The timer raises its interrupt with an eventfd write.
        ThreadKind::Timer => vec![],
    }
}

const CLONE_THREAD: u64 = libc::CLONE_THREAD as u64;
const PROT_EXEC: u64 = libc::PROT_EXEC as u64;

/// `arg` (32 bits wide) equals `value`.
fn arg_is(arg: u8, value: u64) -> Result<SeccompRule, seccompiler::BackendError> {
    SeccompRule::new(vec![SeccompCondition::new(
        arg,
        SeccompCmpArgLen::Dword,
        SeccompCmpOp::Eq,
        value,
    )?])
}

/// `prot` (argument 2 of mmap and mprotect) without PROT_EXEC.
fn not_executable() -> Result<SeccompRule, seccompiler::BackendError> {
    SeccompRule::new(vec![SeccompCondition::new(
        2,
        SeccompCmpArgLen::Dword,
        SeccompCmpOp::MaskedEq(PROT_EXEC),
        0,
    )?])
}

fn allowlist(kind: ThreadKind) -> Result<SeccompFilter, seccompiler::BackendError> {
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    let mut add = |list: &[libc::c_long]| {
        for s in list {
            rules.insert(*s, vec![]);
        }
    };
    match kind {
        ThreadKind::Vcpu => {
            add(COMMON);
            add(OPEN_REFUSED);
        }
        ThreadKind::Io => {
            add(COMMON);
            add(IO_EXTRA);
            add(OPEN_REFUSED);
        }
        ThreadKind::Main => {
            add(COMMON);
            add(IO_EXTRA);
            add(MAIN_EXTRA);
        }
        ThreadKind::Vnc => add(VNC),
        ThreadKind::Timer => add(TIMER),
    }
    let requests = ioctl_requests(kind)
        .into_iter()
        .map(|r| arg_is(1, r))
        .collect::<Result<Vec<_>, _>>()?;
    // An empty rule list would allow every request: a kind without ioctls gets no entry.
    if !requests.is_empty() {
        rules.insert(libc::SYS_ioctl, requests);
    }
    rules.insert(libc::SYS_mmap, vec![not_executable()?]);
    rules.insert(libc::SYS_mprotect, vec![not_executable()?]);
    let thread_only = SeccompRule::new(vec![SeccompCondition::new(
        0,
        SeccompCmpArgLen::Qword,
        SeccompCmpOp::MaskedEq(CLONE_THREAD),
        CLONE_THREAD,
    )?])?;
    rules.insert(libc::SYS_clone, vec![thread_only]);
    SeccompFilter::new(
        rules,
        SeccompAction::KillProcess,
        SeccompAction::Allow,
        TargetArch::x86_64,
    )
}

fn clone3_enosys() -> Result<SeccompFilter, seccompiler::BackendError> {
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    rules.insert(libc::SYS_clone3, vec![]);
    SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::ENOSYS as u32),
        TargetArch::x86_64,
    )
}

/// Opening any file fails with EACCES (for threads that must open nothing, but whose C
/// library may try and cope with a refusal).
fn open_eacces() -> Result<SeccompFilter, seccompiler::BackendError> {
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    rules.insert(libc::SYS_open, vec![]);
    rules.insert(libc::SYS_openat, vec![]);
    SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EACCES as u32),
        TargetArch::x86_64,
    )
}

/// Why a thread's filter is not on.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("seccomp filter for {0:?} threads cannot be built: {1}")]
    Build(ThreadKind, String),
    #[error("seccomp filter for a {0:?} thread not installed: {1}")]
    Install(ThreadKind, seccompiler::Error),
}

/// The compiled programs for `kind`, in the order they are installed.
pub fn programs(kind: ThreadKind) -> Result<Vec<BpfProgram>, SeccompError> {
    let compile = |f: Result<SeccompFilter, seccompiler::BackendError>| {
        f.and_then(BpfProgram::try_from)
            .map_err(|e| SeccompError::Build(kind, e.to_string()))
    };
    let mut progs = vec![compile(clone3_enosys())?];
    if kind != ThreadKind::Main {
        progs.push(compile(open_eacces())?);
    }
    // The allowlist goes last: it does not allow seccomp(2) itself. The kernel applies the
    // strictest answer of all filters, so an errno filter wins over the allowlist's allow.
    progs.push(compile(allowlist(kind))?);
    Ok(progs)
}

/// Installs compiled programs for `kind` on the calling thread.
pub fn install(kind: ThreadKind, progs: &[BpfProgram]) -> Result<(), SeccompError> {
    for p in progs {
        apply_filter(p).map_err(|e| SeccompError::Install(kind, e))?;
    }
    Ok(())
}

/// Off only when the VM config says `"seccomp": false` ([`disable_for_process`]).
static ENABLED: AtomicBool = AtomicBool::new(true);

/// The VM config's `"seccomp": false`, for debugging a suspected filter kill: no thread of this
/// process installs a filter from now on.
pub fn disable_for_process() {
    ENABLED.store(false, Ordering::Relaxed);
}

/// Installs the filter for `kind` on the calling thread, or says why it could not.
pub fn try_apply_current(kind: ThreadKind) -> Result<(), SeccompError> {
    if !ENABLED.load(Ordering::Relaxed) {
        return Ok(());
    }
    programs(kind).and_then(|p| install(kind, &p))
}

/// Installs the filter for `kind` on the calling thread; if that fails the VM ends at once
/// (exit status 1, one line on stderr), for threads that have no one to return an error to.
pub fn apply_current(kind: ThreadKind) {
    if let Err(e) = try_apply_current(kind) {
        crate::lifecycle::fail_now(&e.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `f` in a forked child with `kind`'s filter and returns how the child ended.
    fn in_filtered_child(kind: ThreadKind, f: fn() -> i32) -> (bool, i32) {
        let progs = programs(kind).unwrap();
        // SAFETY: the child only installs the prepared filter (prctl/seccomp) and calls `f`,
        // then _exit; no allocation or lock is needed after fork.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            // The child must not keep other tests' descriptors open while it lives: a copy of
            // a listening socket made another test's stale-socket check see it as live.
            // SAFETY: closing descriptors 3 and up in this child only.
            unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) };
            let code = match install(kind, &progs) {
                Ok(()) => f(),
                Err(_) => 99,
            };
            // SAFETY: leaving the forked child without running the parent's destructors.
            unsafe { libc::_exit(code) };
        }
        let mut status = 0;
        // SAFETY: waiting for our own child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        if libc::WIFSIGNALED(status) {
            (true, libc::WTERMSIG(status))
        } else {
            (false, libc::WEXITSTATUS(status))
        }
    }

    /// Opens a stream socket of `domain`; 0 if the filter lets the call return.
    fn make_socket(domain: libc::c_int) -> i32 {
        // SAFETY: plain syscall; the filters are expected to kill us here.
        unsafe { libc::socket(domain, libc::SOCK_STREAM, 0) };
        0
    }

    /// Opens `path` for reading: 4 if refused with EACCES (the filters' answer to opens), 5
    /// otherwise.
    fn open_file(path: &std::ffi::CStr) -> i32 {
        // SAFETY: plain syscall with a NUL-terminated C string.
        let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY) };
        let e = std::io::Error::last_os_error().raw_os_error();
        if fd == -1 && e == Some(libc::EACCES) {
            4
        } else {
            5
        }
    }

    #[test]
    fn vcpu_filter_kills_on_socket_and_allows_io() {
        assert_eq!(
            in_filtered_child(ThreadKind::Vcpu, || make_socket(libc::AF_INET)),
            (true, libc::SIGSYS)
        );
        let open_hostname = || open_file(c"/etc/hostname");
        assert_eq!(
            in_filtered_child(ThreadKind::Vcpu, open_hostname),
            (false, 4)
        );
        assert_eq!(in_filtered_child(ThreadKind::Io, open_hostname), (false, 4));
        fn exec() -> i32 {
            let argv = [c"/bin/true".as_ptr(), std::ptr::null()];
            // SAFETY: execve with valid NUL-terminated arrays; expected to be killed first.
            unsafe { libc::execv(c"/bin/true".as_ptr(), argv.as_ptr()) };
            0
        }
        assert_eq!(
            in_filtered_child(ThreadKind::Vcpu, exec),
            (true, libc::SIGSYS)
        );
        fn allowed() -> i32 {
            let mut t = libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            // SAFETY: plain syscalls on valid pointers / our own stdout.
            unsafe {
                libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut t);
                libc::write(1, c"".as_ptr().cast(), 0);
            }
            7
        }
        assert_eq!(in_filtered_child(ThreadKind::Vcpu, allowed), (false, 7));
        fn fork_again() -> i32 {
            // SAFETY: fork is expected to be refused (killed) here.
            unsafe { libc::syscall(libc::SYS_fork) };
            0
        }
        assert_eq!(
            in_filtered_child(ThreadKind::Io, fork_again),
            (true, libc::SIGSYS)
        );
    }

    #[test]
    fn vnc_filter_allows_socket_io_and_nothing_else() {
        assert_eq!(
            in_filtered_child(ThreadKind::Vnc, || make_socket(libc::AF_UNIX)),
            (true, libc::SIGSYS)
        );
        assert_eq!(
            in_filtered_child(ThreadKind::Vnc, || open_file(c"/dev/urandom")),
            (false, 4)
        );
        // A vCPU or disk ioctl from a VNC thread: only the dirty log and FIONBIO pass.
        fn other_ioctl() -> i32 {
            let mut n: libc::c_int = 0;
            // SAFETY: FIONREAD on stdin writes one int into `n`; expected to be killed first.
            unsafe { libc::ioctl(0, libc::FIONREAD, &mut n) };
            0
        }
        assert_eq!(
            in_filtered_child(ThreadKind::Vnc, other_ioctl),
            (true, libc::SIGSYS)
        );
        fn pread_disk() -> i32 {
            let mut b = [0u8; 1];
            // SAFETY: pread into a 1-byte buffer; expected to be killed first.
            unsafe { libc::pread(0, b.as_mut_ptr().cast(), 1, 0) };
            0
        }
        assert_eq!(
            in_filtered_child(ThreadKind::Vnc, pread_disk),
            (true, libc::SIGSYS)
        );
        fn allowed() -> i32 {
            let mut t = libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            let mut r = [0u8; 16];
            let mut on: libc::c_int = 1;
            // SAFETY: plain syscalls on valid pointers; -1 file descriptors only give EBADF.
            unsafe {
                libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut t);
                if libc::getrandom(r.as_mut_ptr().cast(), r.len(), 0) != 16 {
                    return 1;
                }
                if libc::accept4(-1, std::ptr::null_mut(), std::ptr::null_mut(), 0) != -1 {
                    return 2;
                }
                // FIONBIO on a bad descriptor: allowed by the filter, EBADF from the kernel.
                if libc::ioctl(-1, libc::FIONBIO, &mut on) != -1 {
                    return 3;
                }
                let dup = libc::fcntl(1, libc::F_DUPFD_CLOEXEC, 3);
                libc::close(dup);
                libc::write(1, c"".as_ptr().cast(), 0);
            }
            7
        }
        assert_eq!(in_filtered_child(ThreadKind::Vnc, allowed), (false, 7));
    }

    #[test]
    fn ioctl_request_numbers_match_the_kernel() {
        // The filter's numbers against the kernel's (include/uapi/linux/kvm.h on x86-64).
        assert_eq!(request::KVM_GET_DIRTY_LOG(), 0x4010_ae42);
        assert_eq!(request::KVM_RUN(), 0xae80);
        assert_eq!(request::KVM_KVMCLOCK_CTRL(), 0xaead);
        assert_eq!(request::KVM_GET_REGS(), 0x8090_ae81);
        assert_eq!(request::KVM_IRQ_LINE(), 0x4008_ae61);
        assert_eq!(request::KVM_GET_CLOCK(), 0x8030_ae7c);
        assert_eq!(request::KVM_SET_CLOCK(), 0x4030_ae7b);
        assert_eq!(request::KVM_SET_USER_MEMORY_REGION(), 0x4020_ae46);
        assert_eq!(request::KVM_IOEVENTFD(), 0x4040_ae79);
        assert_eq!(request::KVM_SET_GSI_ROUTING(), 0x4008_ae6a);
    }

    /// An ioctl request no thread kind uses (FIONREAD on stdin); 0 if the filter lets it return.
    fn unlisted_ioctl() -> i32 {
        let mut n: libc::c_int = 0;
        // SAFETY: FIONREAD writes one int into `n`; expected to be killed first.
        unsafe { libc::ioctl(0, libc::FIONREAD, &mut n) };
        0
    }

    /// A KVM request of another thread kind's (KVM_SET_CLOCK, Main only) on a bad descriptor:
    /// EBADF if the filter lets it through.
    fn clock_ioctl() -> i32 {
        // SAFETY: the kernel rejects fd -1 before reading the (null) argument.
        unsafe { libc::ioctl(-1, request::KVM_SET_CLOCK() as _, std::ptr::null::<u8>()) };
        0
    }

    /// Each kind's own requests on a bad descriptor: all pass the filter (EBADF), 7.
    fn own_ioctls(kind: ThreadKind) -> i32 {
        for r in ioctl_requests(kind) {
            // SAFETY: fd -1: the kernel answers EBADF without touching the argument.
            let rc = unsafe { libc::ioctl(-1, r as _, std::ptr::null::<u8>()) };
            if rc != -1 || std::io::Error::last_os_error().raw_os_error() != Some(libc::EBADF) {
                return 1;
            }
        }
        7
    }

    /// An anonymous mapping with `prot`; 7 if it was made.
    fn map(prot: libc::c_int) -> i32 {
        // SAFETY: a fresh anonymous mapping, unmapped again.
        unsafe {
            let p = libc::mmap(
                std::ptr::null_mut(),
                4096,
                prot,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            );
            if p == libc::MAP_FAILED {
                return 1;
            }
            libc::munmap(p, 4096);
        }
        7
    }

    /// Makes a fresh read-write page executable; 7 if allowed.
    fn mprotect_exec() -> i32 {
        // SAFETY: our own fresh mapping.
        unsafe {
            let p = libc::mmap(
                std::ptr::null_mut(),
                4096,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            );
            if p == libc::MAP_FAILED {
                return 1;
            }
            libc::mprotect(p, 4096, libc::PROT_READ | libc::PROT_EXEC);
        }
        7
    }

    const KINDS: [ThreadKind; 5] = [
        ThreadKind::Vcpu,
        ThreadKind::Io,
        ThreadKind::Main,
        ThreadKind::Vnc,
        ThreadKind::Timer,
    ];

    #[test]
    fn an_unlisted_ioctl_kills_every_kind_of_thread() {
        for kind in KINDS {
            assert_eq!(
                in_filtered_child(kind, unlisted_ioctl),
                (true, libc::SIGSYS),
                "{kind:?}"
            );
            let own = match kind {
                ThreadKind::Vcpu => || own_ioctls(ThreadKind::Vcpu),
                ThreadKind::Io => || own_ioctls(ThreadKind::Io),
                ThreadKind::Main => || own_ioctls(ThreadKind::Main),
                ThreadKind::Vnc => || own_ioctls(ThreadKind::Vnc),
                ThreadKind::Timer => || own_ioctls(ThreadKind::Timer),
            };
            assert_eq!(in_filtered_child(kind, own), (false, 7), "{kind:?}");
        }
        // A request of the main thread's is still refused on a vCPU or device thread.
        for kind in [
            ThreadKind::Vcpu,
            ThreadKind::Io,
            ThreadKind::Vnc,
            ThreadKind::Timer,
        ] {
            assert_eq!(
                in_filtered_child(kind, clock_ioctl),
                (true, libc::SIGSYS),
                "{kind:?}"
            );
        }
    }

    #[test]
    fn no_thread_may_map_or_make_memory_executable() {
        fn map_exec() -> i32 {
            map(libc::PROT_READ | libc::PROT_EXEC)
        }
        fn map_rw() -> i32 {
            map(libc::PROT_READ | libc::PROT_WRITE)
        }
        for kind in KINDS {
            assert_eq!(
                in_filtered_child(kind, map_exec),
                (true, libc::SIGSYS),
                "{kind:?}"
            );
            assert_eq!(
                in_filtered_child(kind, mprotect_exec),
                (true, libc::SIGSYS),
                "{kind:?}"
            );
            assert_eq!(in_filtered_child(kind, map_rw), (false, 7), "{kind:?}");
        }
    }

    /// What flushing and closing a disk image takes (raw: fdatasync; qcow2 through imago:
    /// pwritev of its tables, fsync; then close), each on a bad descriptor: EBADF from the
    /// kernel if the filter lets it through, 7 if all did.
    fn flush_and_close() -> i32 {
        let b = [0u8; 1];
        let iov = libc::iovec {
            iov_base: b.as_ptr() as *mut libc::c_void,
            iov_len: 1,
        };
        // SAFETY: plain syscalls on fd -1 with valid pointers; the kernel answers EBADF.
        let rcs = unsafe {
            [
                libc::pwrite(-1, b.as_ptr().cast(), 1, 0) as i64,
                libc::pwritev(-1, &iov, 1, 0) as i64,
                libc::fdatasync(-1).into(),
                libc::fsync(-1).into(),
                libc::ftruncate(-1, 0).into(),
                libc::fallocate(-1, 0, 0, 1).into(),
                libc::close(-1).into(),
            ]
        };
        for rc in rcs {
            if rc != -1 {
                return 1;
            }
        }
        if std::io::Error::last_os_error().raw_os_error() != Some(libc::EBADF) {
            return 2;
        }
        7
    }

    #[test]
    fn the_main_thread_may_flush_and_close_disk_images() {
        // The main thread closes the disks when the VM ends; a kill there would turn a
        // poweroff into a crash and lose the writes the flush was for.
        assert_eq!(
            in_filtered_child(ThreadKind::Main, flush_and_close),
            (false, 7)
        );
        // So may device workers (a guest's FLUSH request).
        assert_eq!(
            in_filtered_child(ThreadKind::Io, flush_and_close),
            (false, 7)
        );
    }

    #[test]
    fn clone3_gets_enosys_so_threads_still_start() {
        fn spawn_thread() -> i32 {
            // SAFETY: raw clone3 with a null args pointer must fail with ENOSYS from the
            // filter before the kernel looks at the pointer.
            let r = unsafe { libc::syscall(libc::SYS_clone3, std::ptr::null::<u8>(), 0usize) };
            if r == -1 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ENOSYS) {
                5
            } else {
                6
            }
        }
        assert_eq!(
            in_filtered_child(ThreadKind::Vcpu, spawn_thread),
            (false, 5)
        );
    }

    #[test]
    fn timer_filter_allows_a_timed_wait_and_an_eventfd_write_only() {
        fn timed_wait_and_raise() -> i32 {
            let evt = match vmm_sys_util::eventfd::EventFd::new(0) {
                Ok(e) => e,
                Err(_) => return 1,
            };
            // The eventfd exists before the filter (as the irqfd does); make it now, then
            // filter, then use it.
            if install(
                ThreadKind::Timer,
                &programs(ThreadKind::Timer).unwrap_or_default(),
            )
            .is_err()
            {
                return 2;
            }
            let m = std::sync::Mutex::new(0u8);
            let cv = std::sync::Condvar::new();
            let g = m.lock().unwrap_or_else(|e| e.into_inner());
            let _g = cv.wait_timeout(g, std::time::Duration::from_millis(2));
            let _ = std::time::SystemTime::now();
            if evt.write(1).is_err() {
                return 3;
            }
            7
        }
        // Filtered inside `f` (after the eventfd exists), so the outer filter is the Vcpu
        // kind's as for a thread started from a vCPU.
        assert_eq!(
            in_filtered_child(ThreadKind::Vcpu, timed_wait_and_raise),
            (false, 7)
        );
        assert_eq!(
            in_filtered_child(ThreadKind::Timer, || make_socket(libc::AF_UNIX)),
            (true, libc::SIGSYS)
        );
        assert_eq!(
            in_filtered_child(ThreadKind::Timer, || open_file(c"/etc/hostname")),
            (false, 4)
        );
        fn make_eventfd() -> i32 {
            // SAFETY: plain syscall; expected to be killed first.
            unsafe { libc::eventfd(0, 0) };
            0
        }
        assert_eq!(
            in_filtered_child(ThreadKind::Timer, make_eventfd),
            (true, libc::SIGSYS)
        );
    }
}
