//! `vireo-vmm --config FILE.json --control SOCKET`: runs one VM until it ends.
//!
//! Exit status: 0 guest powered off (or `quit`), 1 error (bad config, host failure),
//! 2 guest asked for a reboot (or `reset`), 3 guest crashed, 4 a VMM thread panicked.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;
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

exit status: 0 powered off or quit, 1 error, 2 reboot requested, 3 guest crashed,
  4 internal error (a VMM thread panicked; the line before it says where)
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
    };
    vireo_vmm::seccomp::try_apply_current(vireo_vmm::seccomp::ThreadKind::Main)
        .map_err(|e| e.to_string())?;
    let reason = server.run(&mut ctx);
    match &reason {
        ExitReason::Crash(r) => vireo_vmm::vmm_log!("vireo-vmm: guest crashed: {r}"),
        ExitReason::Error(r) => vireo_vmm::vmm_log!("vireo-vmm: error: {r}"),
        other => vireo_vmm::vmm_log!("vireo-vmm: VM ended: {}", other.kind()),
    }
    server.finish(&ctx, &reason);
    Ok(reason)
}
