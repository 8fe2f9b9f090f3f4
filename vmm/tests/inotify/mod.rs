//! An inotify watch on a few files, for tests that prove a file was never opened, read or
//! written (shared by vmm/tests/qcow2_references.rs and tests/vireoctl_qcow2.rs).

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Watches files for IN_OPEN, IN_ACCESS and IN_MODIFY; `events()` says what happened since.
pub struct Watch {
    fd: i32,
    names: Vec<(i32, PathBuf)>,
}

impl Watch {
    pub fn new(files: &[&Path]) -> Watch {
        // SAFETY: plain syscall, no pointers.
        let fd = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        assert!(
            fd >= 0,
            "inotify_init1: {}",
            std::io::Error::last_os_error()
        );
        let mut names = Vec::new();
        for f in files {
            let c = CString::new(f.as_os_str().as_bytes()).unwrap();
            let mask = libc::IN_OPEN | libc::IN_ACCESS | libc::IN_MODIFY;
            // SAFETY: a valid inotify fd and a NUL-terminated path that outlives the call.
            let wd = unsafe { libc::inotify_add_watch(fd, c.as_ptr(), mask) };
            assert!(
                wd >= 0,
                "watch {}: {}",
                f.display(),
                std::io::Error::last_os_error()
            );
            names.push((wd, f.to_path_buf()));
        }
        Watch { fd, names }
    }

    /// "path: open|read|write" for every event so far.
    pub fn events(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            // SAFETY: the buffer is writable for its whole length.
            let n = unsafe { libc::read(self.fd, buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 {
                break;
            }
            let mut off = 0usize;
            while off + 16 <= n as usize {
                let wd = i32::from_ne_bytes(buf[off..off + 4].try_into().unwrap());
                let mask = u32::from_ne_bytes(buf[off + 4..off + 8].try_into().unwrap());
                let len = u32::from_ne_bytes(buf[off + 12..off + 16].try_into().unwrap());
                let name = self
                    .names
                    .iter()
                    .find(|(w, _)| *w == wd)
                    .map_or("?".into(), |(_, p)| p.display().to_string());
                for (bit, what) in [
                    (libc::IN_OPEN, "open"),
                    (libc::IN_ACCESS, "read"),
                    (libc::IN_MODIFY, "write"),
                ] {
                    if mask & bit != 0 {
                        out.push(format!("{name}: {what}"));
                    }
                }
                off += 16 + len as usize;
            }
        }
        out
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        // SAFETY: our own fd, closed once.
        unsafe { libc::close(self.fd) };
    }
}
