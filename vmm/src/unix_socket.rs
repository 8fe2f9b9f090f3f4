//! Listening unix sockets at paths the configuration names (control, VNC, serial console): made
//! owner-only before anyone can connect, and never at the cost of a file that is not ours. A
//! path that holds anything but a socket is refused; a socket that still answers belongs to a
//! live listener and is refused too; only a stale socket is replaced. On the way out the path
//! is removed only while it is still the very socket this process bound.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;

/// Which file a bound socket is (device and inode), to remove it later only if it still is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SocketId {
    dev: u64,
    ino: u64,
}

/// Binds a listening socket at `path` with mode 0600 (see the module documentation).
/// Errors: `AlreadyExists` when the path is not a socket, `AddrInUse` when a listener answers
/// there, `InvalidInput` for a path a unix socket cannot have.
pub fn bind_private(path: &Path) -> io::Result<(UnixListener, SocketId)> {
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "exists and is not a socket (not removed)",
            ));
        }
        if UnixStream::connect(path).is_ok() {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                "another process is listening there",
            ));
        }
        std::fs::remove_file(path)?;
    }
    use std::os::unix::ffi::OsStrExt;
    let bytes = path.as_os_str().as_bytes();
    // SAFETY: sockaddr_un is plain data; zeroed is a valid value.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    if bytes.len() >= addr.sun_path.len() || bytes.contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "path too long for a unix socket (max 107 bytes) or contains NUL",
        ));
    }
    for (d, s) in addr.sun_path.iter_mut().zip(bytes) {
        *d = *s as libc::c_char;
    }
    // SAFETY: plain socket(2); the fd is owned by `fd` right after.
    let raw = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `raw` is a fresh descriptor nobody else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    // bind(2) creates the file with the process umask: with 0177 it is born 0600, so there is
    // no moment in which another user could connect. fchmod on the socket does not reach the
    // file, hence the umask.
    // SAFETY: umask has no preconditions; the old mask is restored right after bind.
    let old = unsafe { libc::umask(0o177) };
    let len = std::mem::size_of::<libc::sa_family_t>() + bytes.len() + 1;
    // SAFETY: addr is a valid sockaddr_un and `len` lies within it.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            &addr as *const libc::sockaddr_un as *const libc::sockaddr,
            len as libc::socklen_t,
        )
    };
    let bind_err = io::Error::last_os_error();
    // SAFETY: as above.
    unsafe { libc::umask(old) };
    if rc < 0 {
        return Err(bind_err);
    }
    // SAFETY: listen(2) on our bound socket.
    if unsafe { libc::listen(fd.as_raw_fd(), 16) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // Belt and braces against a filesystem that ignores the umask.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    let meta = std::fs::symlink_metadata(path)?;
    let id = SocketId {
        dev: meta.dev(),
        ino: meta.ino(),
    };
    Ok((UnixListener::from(fd), id))
}

/// Removes `path` if it is still the socket `id` names (not a file someone put there since).
pub fn remove_if_ours(path: &Path, id: SocketId) {
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if meta.file_type().is_socket() && meta.dev() == id.dev && meta.ino() == id.ino {
            let _ = std::fs::remove_file(path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(tag: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("vireo-usock-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn a_socket_is_owner_only_and_removed_only_while_it_is_ours() {
        let d = dir("own");
        let p = d.join("s");
        let (l, id) = bind_private(&p).unwrap();
        let mode = std::fs::symlink_metadata(&p).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        // A live listener is not replaced.
        assert_eq!(
            bind_private(&p).unwrap_err().kind(),
            io::ErrorKind::AddrInUse
        );
        drop(l);
        // A stale socket is. Other tests in this process fork (the seccomp tests' children
        // run without exec), and a child forked while `l` was open keeps the listener alive
        // until it exits; wait for that instead of calling the socket stale too early.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while UnixStream::connect(&p).is_ok() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let (l2, id2) = bind_private(&p).unwrap();
        drop(l2);
        remove_if_ours(&p, id2);
        assert!(!p.exists());
        // A file put where our socket was is not ours, whatever inode it got.
        std::fs::write(&p, b"someone else's").unwrap();
        remove_if_ours(&p, id);
        remove_if_ours(&p, id2);
        assert_eq!(std::fs::read(&p).unwrap(), b"someone else's");
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn a_path_that_is_not_a_socket_is_left_alone() {
        let d = dir("file");
        let p = d.join("precious");
        std::fs::write(&p, b"the user's file").unwrap();
        let e = bind_private(&p).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&p).unwrap(), b"the user's file");
        let link = d.join("link");
        std::os::unix::fs::symlink(&p, &link).unwrap();
        assert!(bind_private(&link).is_err());
        assert_eq!(std::fs::read(&p).unwrap(), b"the user's file");
        std::fs::remove_dir_all(d).unwrap();
    }
}
