//! COM1: a 16550 (vm-superio) whose output goes to a size-capped, rotating log file, to a
//! bounded in-memory backlog, and to every console client attached to the serial unix socket;
//! client keystrokes go to the guest's receive FIFO.
//!
//! No byte is lost while nobody is attached: the backlog (the last [`BACKLOG_BYTES`]) is replayed
//! to each client when it attaches. A client that cannot keep up is dropped rather than
//! blocking the vCPU that writes the transmit register.

use crate::devices::bus::BusDevice;
use crate::devices::irq::IrqLine;
use crate::logcap::CappedLog;
use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use vm_superio::{Serial, Trigger};

/// Bytes of guest output kept for replay to clients that attach later.
pub const BACKLOG_BYTES: usize = 1 << 20;

/// Wraps the irqfd for vm-superio.
pub struct SerialIrq(pub IrqLine);

impl Trigger for SerialIrq {
    type E = io::Error;
    fn trigger(&self) -> io::Result<()> {
        self.0.trigger()
    }
}

/// Where guest output goes.
pub struct SerialSink {
    log: Option<CappedLog>,
    backlog: VecDeque<u8>,
    clients: Vec<UnixStream>,
    /// Also copy output to our stderr (tests, debugging).
    pub echo_stderr: bool,
}

impl SerialSink {
    pub fn new(log: Option<CappedLog>) -> SerialSink {
        SerialSink {
            log,
            backlog: VecDeque::new(),
            clients: Vec::new(),
            echo_stderr: false,
        }
    }

    fn attach(&mut self, mut client: UnixStream) {
        let (a, b) = self.backlog.as_slices();
        // The replay is written blocking with a timeout so a slow client gets all of it.
        let _ = client.set_write_timeout(Some(Duration::from_secs(2)));
        if client
            .write_all(a)
            .and_then(|_| client.write_all(b))
            .is_ok()
        {
            self.clients.push(client);
        }
    }

    /// The current backlog (for tests and the `serial-backlog` debug path).
    pub fn backlog(&self) -> Vec<u8> {
        self.backlog.iter().copied().collect()
    }
}

impl Write for SerialSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Some(f) = &mut self.log {
            // A full disk (or a failed rotation) must not stop the guest: log once and stop
            // logging.
            if let Err(e) = f.write_all(buf) {
                crate::vmm_log!("vireo-vmm: serial log write failed, log disabled: {e}");
                self.log = None;
            }
        }
        if self.echo_stderr {
            let _ = io::stderr().write_all(buf);
        }
        let overflow = (self.backlog.len() + buf.len()).saturating_sub(BACKLOG_BYTES);
        self.backlog.drain(..overflow.min(self.backlog.len()));
        self.backlog
            .extend(buf.iter().rev().take(BACKLOG_BYTES).rev());
        self.clients
            .retain(|c| send_without_waiting(c, buf) == Some(buf.len()));
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Sends without blocking, whatever the socket's mode. The socket stays blocking for the
/// thread that reads the client's keystrokes from a clone of it: O_NONBLOCK belongs to the
/// open file, which the clone shares, so switching it for the writer would switch the reader.
fn send_without_waiting(client: &UnixStream, buf: &[u8]) -> Option<usize> {
    use std::os::fd::AsRawFd;
    // SAFETY: a valid socket and a buffer of the given length.
    let n = unsafe {
        libc::send(
            client.as_raw_fd(),
            buf.as_ptr().cast(),
            buf.len(),
            libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
        )
    };
    usize::try_from(n).ok()
}

/// The bus device at 0x3f8..0x400.
pub struct SerialDevice {
    pub uart: Serial<SerialIrq, vm_superio::serial::NoEvents, SerialSink>,
}

impl SerialDevice {
    pub fn new(irq: IrqLine, sink: SerialSink) -> SerialDevice {
        SerialDevice {
            uart: Serial::new(SerialIrq(irq), sink),
        }
    }
}

impl BusDevice for SerialDevice {
    fn read(&mut self, _base: u64, offset: u64, data: &mut [u8]) {
        data.fill(0);
        if let (Some(d), Ok(off)) = (data.first_mut(), u8::try_from(offset)) {
            *d = self.uart.read(off);
        }
    }

    fn write(&mut self, _base: u64, offset: u64, data: &[u8]) {
        if let (Some(&v), Ok(off)) = (data.first(), u8::try_from(offset)) {
            if let Err(e) = self.uart.write(off, v) {
                crate::vmm_log!("vireo-vmm: serial: {e:?}");
            }
        }
    }
}

/// Listens on the console socket: replays the backlog to each new client, then forwards what
/// it types into the UART's receive FIFO (waiting while the FIFO is full, so no keystroke is
/// dropped).
pub fn spawn_console_listener(
    path: &Path,
    dev: Arc<Mutex<SerialDevice>>,
) -> io::Result<std::thread::JoinHandle<()>> {
    let (listener, _) = crate::unix_socket::bind_private(path)?;
    std::thread::Builder::new()
        .name("serial-console".into())
        .spawn(move || {
            crate::seccomp::apply_current(crate::seccomp::ThreadKind::Io);
            for client in listener.incoming().flatten() {
                let Ok(reader) = client.try_clone() else {
                    continue;
                };
                dev.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .uart
                    .writer_mut()
                    .attach(client);
                let dev = dev.clone();
                let _ = std::thread::Builder::new()
                    .name("serial-input".into())
                    .spawn(move || forward_input(reader, dev));
            }
        })
}

fn forward_input(mut reader: UnixStream, dev: Arc<Mutex<SerialDevice>>) {
    crate::seccomp::apply_current(crate::seccomp::ThreadKind::Io);
    let mut buf = [0u8; 64];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return,
        };
        let mut rest = &buf[..n];
        while !rest.is_empty() {
            let taken = {
                let mut d = dev.lock().unwrap_or_else(|e| e.into_inner());
                d.uart.enqueue_raw_bytes(rest).unwrap_or(0)
            };
            rest = &rest[taken..];
            if !rest.is_empty() {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_that_does_not_read_is_dropped_without_blocking_the_writer() {
        let mut s = SerialSink::new(None);
        let (ours, theirs) = UnixStream::pair().unwrap();
        s.attach(ours);
        let reader = s.clients[0].try_clone().unwrap();
        let chunk = vec![b'x'; 64 * 1024];
        let start = std::time::Instant::now();
        // Far more than a socket buffer holds; the client never reads.
        for _ in 0..64 {
            s.write_all(&chunk).unwrap();
        }
        assert!(s.clients.is_empty(), "the stalled client is still attached");
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "the writer waited"
        );
        // The clone that reads keystrokes still blocks: the writer did not switch the mode.
        reader
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let mut b = [0u8; 1];
        let waited = std::time::Instant::now();
        let e = (&reader).read(&mut b).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock, "{e}");
        assert!(
            waited.elapsed() >= Duration::from_millis(40),
            "the reader did not wait"
        );
        drop(theirs);
    }

    #[test]
    fn backlog_is_bounded_and_keeps_the_tail() {
        let mut s = SerialSink::new(None);
        let big = vec![b'a'; BACKLOG_BYTES];
        s.write_all(&big).unwrap();
        s.write_all(b"tail").unwrap();
        let b = s.backlog();
        assert_eq!(b.len(), BACKLOG_BYTES);
        assert!(b.ends_with(b"aatail"));
    }

    #[test]
    fn the_log_is_capped_while_the_backlog_keeps_everything() {
        let dir = std::env::temp_dir().join(format!("vireo-serial-cap-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("serial.log");
        let limits = crate::logcap::Limits {
            max_size: 16,
            backups: 1,
        };
        let mut s = SerialSink::new(Some(CappedLog::open(&path, limits).unwrap()));
        for i in 0..100u8 {
            s.write_all(&[b'0' + i % 10]).unwrap();
        }
        assert_eq!(s.backlog().len(), 100);
        let log = std::fs::read(&path).unwrap();
        assert_eq!(log, b"6789");
        let older = std::fs::read(crate::logcap::backup_path(&path, 1)).unwrap();
        assert_eq!(older, b"0123456789012345");
        let _ = std::fs::remove_dir_all(dir);
    }
}
