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
use std::sync::atomic::{AtomicU64, Ordering};
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
        // Unique per spawn: fd numbers are reused as soon as one start-up finishes.
        static SPAWNS: AtomicU64 = AtomicU64::new(0);
        let pidfile = std::env::temp_dir().join(format!(
            "vireo-passt-{}-{}.pid",
            std::process::id(),
            SPAWNS.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_file(&pidfile);
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
                        eprintln!("passt: {line}");
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
                let _ = std::fs::remove_file(&pidfile);
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

impl Drop for Passt {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
