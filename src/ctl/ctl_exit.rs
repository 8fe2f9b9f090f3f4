//! Exit codes scripts can rely on (also listed in `vireoctl --help` and the man page).

use vireo_driver::store::StoreError;
use vireo_driver::DriverError;

pub const EXIT_OK: u8 = 0;
/// Any other failure (I/O, helper failed to start, control socket error).
pub const EXIT_ERROR: u8 = 1;
/// Bad command line (clap's own code).
pub const EXIT_USAGE: u8 = 2;
/// No such machine (or input file).
pub const EXIT_NOT_FOUND: u8 = 3;
/// The XML is invalid, or asks for something the backend cannot do, or clashes with another
/// machine's name/UUID or with an existing file (a disk image to create).
pub const EXIT_INVALID: u8 = 4;
/// The machine is not in a state that allows this (already running, not running, not paused).
pub const EXIT_STATE: u8 = 5;
/// The operation did not finish within its timeout.
pub const EXIT_TIMEOUT: u8 = 6;
/// The running helper does not support this operation.
pub const EXIT_UNSUPPORTED: u8 = 7;

/// The text for `--help` and the man page.
pub const EXIT_CODES_HELP: &str = "Exit status:\n  \
    0  success\n  \
    1  error (I/O, helper failure, ...)\n  \
    2  usage error\n  \
    3  machine (or file) not found\n  \
    4  invalid or unsupported domain XML, name, UUID or image file clash\n  \
    5  machine in the wrong state (already running, not running, not paused)\n  \
    6  timeout\n  \
    7  operation not supported by the running helper";

/// A command's outcome: an exit code, or an exit code and a message for stderr.
pub type CtlResult = Result<u8, (u8, String)>;

/// Maps a driver error to its exit code and message.
pub fn fail(e: DriverError) -> (u8, String) {
    let code = match &e {
        DriverError::NotFound(_) => EXIT_NOT_FOUND,
        DriverError::Invalid(_)
        | DriverError::Unsupported { .. }
        | DriverError::ImageExists { .. }
        | DriverError::NotYetSupported(_)
        | DriverError::NoFreeTarget { .. } => EXIT_INVALID,
        DriverError::Store(
            StoreError::NameTaken { .. }
            | StoreError::UuidTaken { .. }
            | StoreError::Invalid { .. },
        ) => EXIT_INVALID,
        DriverError::AlreadyRunning(_)
        | DriverError::NotRunning(_)
        | DriverError::NotPaused { .. } => EXIT_STATE,
        DriverError::Timeout { .. } => EXIT_TIMEOUT,
        DriverError::NotSupported { .. } => EXIT_UNSUPPORTED,
        _ => EXIT_ERROR,
    };
    (code, e.to_string())
}
