//! The helper's exit statuses: how `vireo-vmm` tells the driver's supervisor why the machine
//! stopped (`vireo_vmm::lifecycle::ExitReason::exit_code` produces them, the driver's
//! `VmmExit::from_status` reads them).

/// The guest powered off, or a control client sent `quit`.
pub const EXIT_POWEROFF: i32 = 0;
/// The VMM itself failed or the config was refused.
pub const EXIT_ERROR: i32 = 1;
/// The guest asked for a reboot (or a client sent `reset`): the driver starts a fresh process.
pub const EXIT_REBOOT: i32 = 2;
/// The guest crashed.
pub const EXIT_CRASH: i32 = 3;
