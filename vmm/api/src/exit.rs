//! The helper's exit statuses: how `vireo-vmm` tells the driver's supervisor why the machine
//! stopped (`vireo_vmm::lifecycle::ExitReason::exit_code` produces them, the driver's
//! `VmmExit::from_status` reads them).

/// The guest powered off, or a control client sent `quit`.
pub const EXIT_POWEROFF: i32 = 0;
/// The VMM itself failed or the config was refused. Also how a poweroff, quit, reboot or crash
/// ends when a disk could not be flushed on the way out: writes the guest saw complete may be
/// missing from the image, so the end must not pass for a clean one (nor a fresh process be
/// started on that image).
pub const EXIT_ERROR: i32 = 1;
/// The guest asked for a reboot (or a client sent `reset`): the driver starts a fresh process.
pub const EXIT_REBOOT: i32 = 2;
/// The guest crashed.
pub const EXIT_CRASH: i32 = 3;
/// A VMM thread panicked: the VMM itself is broken, so the whole process ends at once rather
/// than leave a VM running without one of its threads.
pub const EXIT_PANIC: i32 = 4;

/// Starts the line the VMM's panic hook writes to stderr (the VMM log) before the process ends;
/// the driver looks for it to say why the machine stopped.
pub const PANIC_LINE_PREFIX: &str = "vireo-vmm: internal error: ";
