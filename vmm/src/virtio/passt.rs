//! User-mode networking through passt (no root, no tap): one passt child per interface, talking
//! QEMU's "stream" protocol (a 4-byte big-endian length, then the Ethernet frame) over one end of
//! a socketpair that passt inherits (`--fd`). passt answers DHCP, DNS and NDP itself, NATs the
//! guest's TCP/UDP/ICMP through ordinary host sockets, and binds the host ports of the forwards.
//! It quits when our end of the socket closes, and is killed when this value drops.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::net::IpAddr;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// Transport protocol of a forward.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ForwardProtocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

/// A host-to-guest port forward.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Forward {
    /// Protocol.
    pub protocol: ForwardProtocol,
    /// Host address passt binds.
    pub host_address: IpAddr,
    /// Host port.
    pub host_port: u16,
    /// Port in the guest.
    pub guest_port: u16,
}

/// How to start passt.
#[derive(Clone, Debug)]
pub struct PasstOptions {
    /// The passt binary (default: `passt` from PATH).
    pub binary: PathBuf,
    /// Port forwards.
    pub forwards: Vec<Forward>,
    /// MTU announced by DHCP/NDP; matches the receive buffers the guest posts without
    /// mergeable buffers.
    pub mtu: u16,
    /// Record the traffic in a pcap file (debugging).
    pub pcap: Option<PathBuf>,
}

impl Default for PasstOptions {
    fn default() -> Self {
        PasstOptions {
            binary: PathBuf::from("passt"),
            forwards: Vec::new(),
            mtu: 1500,
            pcap: None,
        }
    }
}

/// Errors starting passt.
#[derive(Debug, thiserror::Error)]
pub enum PasstError {
    /// socketpair or another local call failed.
    #[error("cannot set up the passt socket: {0}")]
    Socket(#[source] std::io::Error),
    /// The private directory for passt's PID file could not be made.
    #[error("cannot make a private directory for passt's PID file: {0}")]
    PidDir(#[source] std::io::Error),
    /// The binary could not be started.
    #[error("cannot start {binary} (is the 'passt' package installed?): {source}")]
    Spawn {
        /// Binary path.
        binary: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// passt exited during start-up (bad forward, port in use, ...).
    #[error("passt exited during start-up ({status}): {messages}")]
    Exited {
        /// Exit status.
        status: String,
        /// Its last messages.
        messages: String,
    },
    /// passt did not finish starting in time.
    #[error("passt did not become ready within {0:?}: {1}")]
    Timeout(Duration, String),
}

/// A running passt.
pub struct Passt {
    child: Child,
    socket: Option<UnixStream>,
    messages: Arc<Mutex<VecDeque<String>>>,
}

const KEEP_MESSAGES: usize = 20;
const START_TIMEOUT: Duration = Duration::from_secs(10);

impl Passt {
    /// Starts passt and waits until it has bound its ports (it writes its PID file then).
    pub fn spawn(opts: &PasstOptions) -> Result<Passt, PasstError> {
        let (ours, theirs) = UnixStream::pair().map_err(PasstError::Socket)?;
        // passt writes its PID file through the path it is given: in a shared /tmp a guessable
        // name could be a symlink planted by another user. A fresh 0700 directory of our own
        // cannot.
        let private = PrivateDir::new().map_err(PasstError::PidDir)?;
        let pidfile = private.path.join("passt.pid");
        let mut cmd = Command::new(&opts.binary);
        cmd.args(["--foreground", "--stderr", "--quiet", "--fd", "3", "--mtu"])
            .arg(opts.mtu.to_string())
            .arg("--pid")
            .arg(&pidfile);
        for f in &opts.forwards {
            let flag = match f.protocol {
                ForwardProtocol::Tcp => "--tcp-ports",
                ForwardProtocol::Udp => "--udp-ports",
            };
            cmd.arg(flag).arg(format!(
                "{}/{}:{}",
                f.host_address, f.host_port, f.guest_port
            ));
        }
        if let Some(p) = &opts.pcap {
            cmd.arg("--pcap").arg(p);
        }
        let child_fd = theirs.as_raw_fd();
        // SAFETY: between fork and exec we only call dup2/fcntl, which are async-signal-safe.
        unsafe {
            cmd.pre_exec(move || {
                if child_fd == 3 {
                    let flags = libc::fcntl(3, libc::F_GETFD);
                    if flags < 0 || libc::fcntl(3, libc::F_SETFD, flags & !libc::FD_CLOEXEC) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                } else if libc::dup2(child_fd, 3) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // Die with the VMM even if it is killed without running destructors.
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|source| PasstError::Spawn {
            binary: opts.binary.clone(),
            source,
        })?;
        drop(theirs);

        let messages = Arc::new(Mutex::new(VecDeque::new()));
        // The log thread holds the sender until passt's stderr closes, so a receiver that
        // disconnects means every line passt wrote has been collected.
        let (log_done, log_finished) = mpsc::channel::<()>();
        if let Some(stderr) = child.stderr.take() {
            let messages = Arc::clone(&messages);
            // passt also tries syslog; its complaints about that are noise here.
            let _ = std::thread::Builder::new()
                .name("passt-log".into())
                .spawn(move || {
                    let _log_done = log_done;
                    crate::seccomp::apply_current(crate::seccomp::ThreadKind::Io);
                    for line in BufReader::new(stderr).lines() {
                        let Ok(line) = line else { break };
                        if line.starts_with("Failed to send") && line.ends_with("to syslog") {
                            continue;
                        }
                        crate::vmm_log!("passt: {line}");
                        let mut m = messages.lock().unwrap_or_else(|e| e.into_inner());
                        if m.len() == KEEP_MESSAGES {
                            m.pop_front();
                        }
                        m.push_back(line);
                    }
                });
        }
        let mut passt = Passt {
            child,
            socket: Some(ours),
            messages,
        };
        let start = Instant::now();
        loop {
            if pidfile.exists() {
                return Ok(passt);
            }
            if let Ok(Some(status)) = passt.child.try_wait() {
                // The reason is in passt's last lines: wait (bounded, a grandchild could keep
                // stderr open) until the log thread has read them all. A fixed short sleep lost
                // them on a loaded machine.
                let _ = log_finished.recv_timeout(Duration::from_secs(2));
                return Err(PasstError::Exited {
                    status: status.to_string(),
                    messages: passt.messages(),
                });
            }
            if start.elapsed() > START_TIMEOUT {
                return Err(PasstError::Timeout(START_TIMEOUT, passt.messages()));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Takes our end of the frame socket (once).
    pub fn take_socket(&mut self) -> Option<UnixStream> {
        self.socket.take()
    }

    /// passt's last messages, joined.
    pub fn messages(&self) -> String {
        let m = self.messages.lock().unwrap_or_else(|e| e.into_inner());
        m.iter().cloned().collect::<Vec<_>>().join("; ")
    }

    /// Whether passt is still running; `Err` carries its exit status and messages.
    pub fn check(&mut self) -> Result<(), String> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(format!("passt exited ({status}): {}", self.messages())),
            Err(e) => Err(format!("cannot query passt: {e}")),
        }
    }

    /// passt's process ID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// A directory made by mkdtemp(3) (mode 0700, an unpredictable name), removed with what is in
/// it when dropped.
struct PrivateDir {
    path: PathBuf,
}

impl PrivateDir {
    fn new() -> std::io::Result<PrivateDir> {
        use std::os::unix::ffi::{OsStrExt, OsStringExt};
        let template = std::env::temp_dir().join("vireo-passt-XXXXXX");
        let mut bytes = template.into_os_string().into_vec();
        bytes.push(0);
        // SAFETY: `bytes` is a writable, NUL-terminated template that mkdtemp fills in place.
        let r = unsafe { libc::mkdtemp(bytes.as_mut_ptr().cast()) };
        if r.is_null() {
            return Err(std::io::Error::last_os_error());
        }
        bytes.pop();
        let dir = PrivateDir {
            path: PathBuf::from(std::ffi::OsStr::from_bytes(&bytes)),
        };
        // Started as root, passt becomes `nobody` before it writes the file: the directory is
        // handed to that user, who can then write nothing through it that it could not anyway.
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            if let Some((uid, gid)) = nobody() {
                std::os::unix::fs::chown(&dir.path, Some(uid), Some(gid))?;
            }
        }
        Ok(dir)
    }
}

/// The uid and gid of `nobody`, the user passt changes to when started as root.
fn nobody() -> Option<(u32, u32)> {
    // SAFETY: getpwnam with a NUL-terminated name; the record is read before any other call.
    let pw = unsafe { libc::getpwnam(c"nobody".as_ptr()) };
    if pw.is_null() {
        return None;
    }
    // SAFETY: non-null pointer to libc's static passwd record.
    let pw = unsafe { &*pw };
    Some((pw.pw_uid, pw.pw_gid))
}

impl Drop for PrivateDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

impl Drop for Passt {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::PrivateDir;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn private_dirs_are_fresh_owner_only_and_removed() {
        let a = PrivateDir::new().unwrap();
        let b = PrivateDir::new().unwrap();
        assert_ne!(a.path, b.path);
        let mode = std::fs::metadata(&a.path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        std::fs::write(a.path.join("passt.pid"), b"1\n").unwrap();
        let gone = a.path.clone();
        drop(a);
        assert!(!gone.exists());
    }
}
