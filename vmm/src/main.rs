//! `vireo-vmm --config FILE.json --control SOCKET`: runs one VM until it ends.
//!
//! Exit status: 0 guest powered off (or `quit`), 1 error (bad config, host failure, or a disk
//! that could not be flushed as the VM ended), 2 guest asked for a reboot (or `reset`), 3 guest
//! crashed, 4 a VMM thread panicked.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};
use vireo_vmm::config::VmConfig;
use vireo_vmm::control::server::{ControlContext, ControlServer};
use vireo_vmm::lifecycle::{ExitReason, EXIT_ERROR};
use vireo_vmm::vm::Vm;

const HELP: &str = "\
usage: vireo-vmm --config FILE.json [--control SOCKET]

Runs one virtual machine described by FILE.json (see vireo_vmm::config::VmConfig) and serves
the control protocol (line-delimited JSON, see vireo_vmm::control) on SOCKET.

options:
  --config FILE     VM configuration (JSON)
  --control SOCKET  control socket path (created, mode 0600); without it the VM runs
                    until the guest powers off, reboots or crashes
  --version         print the version
  --help            print this help

exit status: 0 powered off or quit, 1 error (also: a disk could not be flushed at the
  end, whatever the guest did), 2 reboot requested, 3 guest crashed, 4 internal error (a VMM
  thread panicked; the line before it says where)
";

fn fail(msg: impl std::fmt::Display) -> ExitCode {
    vireo_vmm::vmm_log!("vireo-vmm: {msg}");
    ExitCode::from(EXIT_ERROR as u8)
}

fn main() -> ExitCode {
    let start = Instant::now();
    // A panic in any thread ends the whole process (never a VM missing a thread).
    vireo_vmm::lifecycle::install_panic_hook();
    // First thing, while this is the only thread: glibc must never create a second arena (see
    // the function's docs for the SIGSYS that caused in a device worker).
    vireo_vmm::virtio::malloc_single_arena();
    let mut config = None;
    let mut control = None;
    let mut args = std::env::args_os().skip(1);
    while let Some(a) = args.next() {
        match a.to_str() {
            Some("--help") | Some("-h") => {
                print!("{HELP}");
                return ExitCode::SUCCESS;
            }
            Some("--version") | Some("-V") => {
                println!("vireo-vmm {}", env!("CARGO_PKG_VERSION"));
                return ExitCode::SUCCESS;
            }
            Some("--config") => config = args.next().map(PathBuf::from),
            Some("--control") => control = args.next().map(PathBuf::from),
            _ => return fail(format!("unknown argument {a:?} (see --help)")),
        }
    }
    let Some(config) = config else {
        return fail("--config FILE is required (see --help)");
    };
    let cfg = match VmConfig::from_file(&config) {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    let code = match run(cfg, control.as_deref(), start) {
        Ok(reason) => reason.exit_code(),
        Err(e) => {
            vireo_vmm::vmm_log!("vireo-vmm: {e}");
            EXIT_ERROR
        }
    };
    ExitCode::from(code as u8)
}

fn run(
    cfg: VmConfig,
    control: Option<&std::path::Path>,
    start: Instant,
) -> Result<ExitReason, String> {
    let seccomp = cfg.seccomp;
    if !seccomp {
        vireo_vmm::seccomp::disable_for_process();
    }
    let mut vm = Vm::new(cfg, start).map_err(|e| e.to_string())?;
    vm.attach_optional_devices().map_err(|e| e.to_string())?;
    vm.load().map_err(|e| e.to_string())?;
    if let Some(sock) = vm.config.serial.socket.clone() {
        vireo_vmm::devices::serial::spawn_console_listener(&sock, vm.serial.clone())
            .map_err(|e| format!("serial.socket {}: {e}", sock.display()))?;
    }
    let mut server = match control {
        Some(path) => ControlServer::bind(path)
            .map_err(|e| format!("control socket {}: {e}", path.display()))?,
        None => ControlServer::unbound().map_err(|e| format!("control loop: {e}"))?,
    };
    let threads = vm.start().map_err(|e| e.to_string())?;
    let mut ctx = ControlContext {
        name: vm.config.name.clone(),
        vcpus: vm.config.vcpus,
        memory_mib: vm.config.memory_mib,
        start,
        vm_fd: vm.vm_fd.clone(),
        run: vm.run.clone(),
        threads,
        pm: vm.pm.clone(),
        exit: vm.exit.clone(),
        events: vm.events.clone(),
        boot_marks: vm.boot_marks.clone(),
        keyboard: vm.keyboard.clone(),
        handlers: std::mem::take(&mut vm.control_handlers),
        drives: vm
            .virtio
            .as_ref()
            .map(|v| v.drives.clone())
            .unwrap_or_default(),
    };
    let main_filter = vireo_vmm::seccomp::try_apply_current(vireo_vmm::seccomp::ThreadKind::Main);
    let reason = match main_filter {
        Ok(()) => server.run(&mut ctx),
        // The guest runs already: end like any other error, with its disks flushed.
        Err(e) => ExitReason::Error(e.to_string()),
    };
    match &reason {
        ExitReason::Crash(r) => vireo_vmm::vmm_log!("vireo-vmm: guest crashed: {r}"),
        ExitReason::Error(r) => vireo_vmm::vmm_log!("vireo-vmm: error: {r}"),
        other => vireo_vmm::vmm_log!("vireo-vmm: VM ended: {}", other.kind()),
    }
    let reason = close_devices(&vm, &ctx, reason);
    server.finish(&ctx, &reason);
    Ok(reason)
}

/// How long the vCPUs get to stop before the disks are closed regardless.
const VCPU_STOP_TIMEOUT: Duration = Duration::from_secs(2);

/// QEMU's order at exit: stop the guest, then flush and close every disk, so that writes the
/// guest saw complete are on the images when the process ends (the driver may start a fresh
/// process on them at once, for a reboot). Returns the reason the process ends with: an error
/// if a disk could not be flushed (see `vireo_vmm::vm::exit_after_close`).
fn close_devices(vm: &Vm, ctx: &ControlContext, reason: ExitReason) -> ExitReason {
    if let Err(e) = ctx.run.pause(&ctx.threads, VCPU_STOP_TIMEOUT) {
        vireo_vmm::vmm_log!("vireo-vmm: {e}; closing the disks anyway");
    }
    let failed = vm.close_devices();
    for e in &failed {
        vireo_vmm::vmm_log!("vireo-vmm: {e}");
    }
    let after = vireo_vmm::vm::exit_after_close(reason.clone(), &failed);
    if after != reason {
        vireo_vmm::vmm_log!(
            "vireo-vmm: exit status {} (error) instead of {}: guest data may be lost",
            after.exit_code(),
            reason.exit_code()
        );
    }
    after
}
