//! Starts child processes that die with this process.
//!
//! The shared L1 lives in a `static` that is never dropped, so nothing would stop its QEMU when
//! a test binary exits. `PR_SET_PDEATHSIG` fixes that, but it fires when the *thread* that forked
//! exits, and test threads come and go; so every child is forked by one thread that lives as
//! long as the process.

use std::io;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};

type Request = (Command, mpsc::Sender<io::Result<Child>>);

static SPAWNER: OnceLock<Mutex<mpsc::Sender<Request>>> = OnceLock::new();

fn spawner() -> &'static Mutex<mpsc::Sender<Request>> {
    SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Request>();
        let spawned = std::thread::Builder::new()
            .name("vireo-rig-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
            });
        if let Err(e) = spawned {
            // Without the thread every request below fails with a clear error.
            eprintln!("vireo-rig: cannot start the spawner thread: {e}");
        }
        Mutex::new(tx)
    })
}

/// Spawns `cmd` so that it is killed (SIGKILL) when this process exits.
pub fn spawn_tied(mut cmd: Command) -> io::Result<Child> {
    let parent = std::process::id();
    // SAFETY: the closure runs between fork and exec and only calls async-signal-safe functions
    // (prctl, getppid, _exit).
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                return Err(io::Error::last_os_error());
            }
            // The parent may have died before prctl took effect.
            if libc::getppid() as u32 != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
    let (tx, rx) = mpsc::channel();
    let sent = spawner()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .send((cmd, tx));
    if sent.is_err() {
        return Err(io::Error::other("vireo-rig spawner thread is gone"));
    }
    rx.recv()
        .unwrap_or_else(|_| Err(io::Error::other("vireo-rig spawner thread is gone")))
}
