//! The control loop on the main thread: accepts clients, answers commands, and waits for the
//! VM to end.

use crate::control::events::EventBus;
use crate::control::{ControlHandler, PROTOCOL_VERSION};
use crate::devices::acpi_pm::AcpiPm;
use crate::devices::i8042::KeyboardInput;
use crate::devices::legacy::BootMark;
use crate::lifecycle::{ExitHandle, ExitReason};
use crate::vcpu::{RunControl, VcpuThread};
use kvm_ioctls::VmFd;
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use vireo_vmm_api::control::{
    self as api, to_json, Command, CommandInfo, Done, ErrorClass, Event, Greeting, Hello, Reply,
    Request, Return, Status, VmState,
};

/// Longest request line accepted; a client sending more is disconnected.
const MAX_LINE: usize = 64 * 1024;
const MAX_CLIENTS: usize = 16;

/// Everything the control loop acts on.
pub struct ControlContext {
    pub name: String,
    pub vcpus: u8,
    pub memory_mib: u64,
    pub start: Instant,
    pub vm_fd: Arc<VmFd>,
    pub run: Arc<RunControl>,
    pub threads: Vec<VcpuThread>,
    pub pm: Arc<Mutex<AcpiPm>>,
    pub exit: ExitHandle,
    pub events: EventBus,
    pub boot_marks: Arc<Mutex<Vec<BootMark>>>,
    pub keyboard: KeyboardInput,
    pub handlers: Vec<Box<dyn ControlHandler>>,
    /// The SCSI units, for `query-block`, `change-medium` and `eject` (no drives on a machine
    /// without SCSI controllers).
    pub drives: crate::virtio::scsi::media::Drives,
}

struct Client {
    id: u64,
    stream: UnixStream,
    buf: Vec<u8>,
}

pub struct ControlServer {
    listener: Option<UnixListener>,
    path: Option<(PathBuf, crate::unix_socket::SocketId)>,
    clients: Vec<Client>,
    next_id: u64,
    state: VmState,
    saved_clock: Option<kvm_bindings::kvm_clock_data>,
}

impl ControlServer {
    /// Binds the socket (mode 0600: only our user may drive the VM).
    pub fn bind(path: &Path) -> io::Result<ControlServer> {
        let (listener, id) = crate::unix_socket::bind_private(path)?;
        listener.set_nonblocking(true)?;
        Ok(ControlServer {
            listener: Some(listener),
            path: Some((path.to_owned(), id)),
            clients: Vec::new(),
            next_id: 1,
            state: VmState::Running,
            saved_clock: None,
        })
    }

    /// A control loop with no socket: it only waits for the VM to end.
    pub fn unbound() -> io::Result<ControlServer> {
        Ok(ControlServer {
            listener: None,
            path: None,
            clients: Vec::new(),
            next_id: 1,
            state: VmState::Running,
            saved_clock: None,
        })
    }

    fn set_state(&mut self, ctx: &ControlContext, s: VmState) {
        if self.state != s {
            self.state = s;
            ctx.events.emit(Event::StateChanged { state: s });
        }
    }

    /// Runs until the VM ends; returns why.
    pub fn run(&mut self, ctx: &mut ControlContext) -> ExitReason {
        loop {
            if let Some(reason) = ctx.exit.reason() {
                return reason;
            }
            let mut fds = vec![
                libc::pollfd {
                    fd: self.listener.as_ref().map_or(-1, |l| l.as_raw_fd()),
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd: ctx.exit.eventfd().as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                },
            ];
            for c in &self.clients {
                fds.push(libc::pollfd {
                    fd: c.stream.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                });
            }
            // SAFETY: `fds` is a valid array of pollfd for its whole length.
            let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 1000) };
            if n < 0 {
                continue;
            }
            if fds[1].revents != 0 {
                let _ = ctx.exit.eventfd().read();
            }
            if fds[0].revents != 0 {
                self.accept(ctx);
            }
            let ready: Vec<u64> = fds[2..]
                .iter()
                .zip(&self.clients)
                .filter(|(p, _)| p.revents != 0)
                .map(|(_, c)| c.id)
                .collect();
            for id in ready {
                self.service(ctx, id);
            }
        }
    }

    fn accept(&mut self, ctx: &ControlContext) {
        let Some(listener) = &self.listener else {
            return;
        };
        while let Ok((stream, _)) = listener.accept() {
            if self.clients.len() >= MAX_CLIENTS {
                let mut s = stream;
                let _ = s.write_all(
                    encode(&Reply::error(
                        ErrorClass::GenericError,
                        "too many clients",
                        None,
                    ))
                    .as_bytes(),
                );
                continue;
            }
            let id = self.next_id;
            self.next_id += 1;
            let mut s = stream;
            let greeting = Greeting {
                vireo: Hello {
                    protocol: PROTOCOL_VERSION,
                    vmm: env!("CARGO_PKG_VERSION").into(),
                    name: ctx.name.clone(),
                },
            };
            let Ok(greeting) = to_json(&greeting) else {
                continue;
            };
            if writeln!(s, "{greeting}").is_err() || s.set_nonblocking(true).is_err() {
                continue;
            }
            if let Ok(ev) = s.try_clone() {
                ctx.events.subscribe(id, ev);
            }
            self.clients.push(Client {
                id,
                stream: s,
                buf: Vec::new(),
            });
        }
    }

    fn drop_client(&mut self, ctx: &ControlContext, id: u64) {
        ctx.events.unsubscribe(id);
        self.clients.retain(|c| c.id != id);
    }

    fn service(&mut self, ctx: &mut ControlContext, id: u64) {
        let Some(pos) = self.clients.iter().position(|c| c.id == id) else {
            return;
        };
        let mut tmp = [0u8; 4096];
        let closed = match self.clients[pos].stream.read(&mut tmp) {
            Ok(0) => true,
            Ok(n) => {
                self.clients[pos].buf.extend_from_slice(&tmp[..n]);
                false
            }
            Err(e) => {
                e.kind() != io::ErrorKind::WouldBlock && e.kind() != io::ErrorKind::Interrupted
            }
        };
        loop {
            let Some(pos) = self.clients.iter().position(|c| c.id == id) else {
                return;
            };
            let Some(nl) = self.clients[pos].buf.iter().position(|b| *b == b'\n') else {
                if self.clients[pos].buf.len() > MAX_LINE {
                    self.drop_client(ctx, id);
                    return;
                }
                break;
            };
            let line: Vec<u8> = self.clients[pos].buf.drain(..=nl).collect();
            let out = encode(&self.handle_line(ctx, &line));
            let Some(pos) = self.clients.iter().position(|c| c.id == id) else {
                return;
            };
            if write_all_retry(&mut self.clients[pos].stream, out.as_bytes()).is_err() {
                self.drop_client(ctx, id);
                return;
            }
        }
        if closed {
            self.drop_client(ctx, id);
        }
    }

    fn handle_line(&mut self, ctx: &mut ControlContext, line: &[u8]) -> Reply {
        let answers = |name: &str| {
            Command::CORE.contains(&name)
                || ctx.handlers.iter().any(|h| h.commands().contains(&name))
        };
        let req = match Request::parse(line, answers) {
            Ok(req) => req,
            Err(rejected) => return rejected.reply(),
        };
        match self.execute(ctx, &req.command) {
            Ok(value) => Reply::Return { value, id: req.id },
            Err((class, desc)) => Reply::error(class, desc, req.id),
        }
    }

    fn execute(
        &mut self,
        ctx: &mut ControlContext,
        cmd: &Command,
    ) -> Result<Return, (ErrorClass, String)> {
        let done = Ok(Return::Done(Done {}));
        match cmd {
            Command::Status => {
                let boot_marks = ctx
                    .boot_marks
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .iter()
                    .map(|m| api::BootMark {
                        value: m.value,
                        ms: m.since_start.as_secs_f64() * 1000.0,
                    })
                    .collect();
                Ok(Return::Status(Status {
                    state: self.state,
                    uptime_ms: ctx.start.elapsed().as_millis() as u64,
                    vcpus: ctx.vcpus,
                    name: ctx.name.clone(),
                    memory_mib: ctx.memory_mib,
                    boot_marks,
                    exits: ctx.run.exits.load(Ordering::Relaxed),
                    unclaimed_accesses: ctx.run.unclaimed.load(Ordering::Relaxed),
                    process: process_usage(),
                }))
            }
            Command::Pause => {
                if self.state == VmState::Paused {
                    return Err((ErrorClass::InvalidState, "already paused".into()));
                }
                ctx.run
                    .pause(&ctx.threads, Duration::from_secs(5))
                    .map_err(|e| (ErrorClass::GenericError, e))?;
                // With all vCPUs stopped, freeze guest time.
                self.saved_clock = ctx.vm_fd.get_clock().ok();
                self.set_state(ctx, VmState::Paused);
                done
            }
            Command::Resume => {
                if self.state != VmState::Paused {
                    return Err((ErrorClass::InvalidState, "not paused".into()));
                }
                if let Some(mut clock) = self.saved_clock.take() {
                    // Only the clock value is restored; the flags describe the host side.
                    clock.flags = 0;
                    if let Err(e) = ctx.vm_fd.set_clock(&clock) {
                        crate::vmm_log!("vireo-vmm: KVM_SET_CLOCK on resume failed: {e}");
                    }
                }
                ctx.run.resume();
                self.set_state(ctx, VmState::Running);
                done
            }
            Command::PowerDown => {
                if self.state == VmState::Paused {
                    return Err((ErrorClass::InvalidState, "paused: resume first".into()));
                }
                ctx.pm
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .press_power_button();
                self.set_state(ctx, VmState::ShuttingDown);
                done
            }
            Command::Reset => {
                ctx.exit.request(ExitReason::Reboot);
                done
            }
            Command::Quit => {
                ctx.exit.request(ExitReason::Quit);
                done
            }
            Command::SendScancodes { codes } => {
                ctx.keyboard.push_scancodes(codes);
                done
            }
            Command::SendText { text } => {
                let codes = crate::devices::scancodes::text_to_set1(text).map_err(|c| {
                    (
                        ErrorClass::GenericError,
                        format!("arguments.text: no US-layout key for {c:?}"),
                    )
                })?;
                ctx.keyboard.push_scancodes(&codes);
                done
            }
            // Answered on every machine (they are core commands): one without SCSI
            // controllers lists no drives and knows no drive id.
            Command::QueryBlock => Ok(Return::Block(ctx.drives.query())),
            Command::ChangeMedium {
                id,
                filename,
                format,
                force,
            } => {
                let medium = ctx
                    .drives
                    .change_medium(id, filename, *format, *force)
                    .map_err(|e| (ErrorClass::GenericError, e.to_string()))?;
                ctx.events.emit(Event::MediumChanged {
                    id: id.clone(),
                    medium: Some(medium),
                });
                done
            }
            Command::Eject { id, force } => {
                ctx.drives
                    .eject(id, *force)
                    .map_err(|e| (ErrorClass::GenericError, e.to_string()))?;
                ctx.events.emit(Event::MediumChanged {
                    id: id.clone(),
                    medium: None,
                });
                done
            }
            Command::QueryCommands => {
                let mut names = Command::CORE.to_vec();
                for h in &ctx.handlers {
                    names.extend(h.commands());
                }
                Ok(Return::Commands(
                    names
                        .into_iter()
                        .map(|n| CommandInfo { name: n.into() })
                        .collect(),
                ))
            }
            other => {
                for h in ctx.handlers.iter_mut() {
                    if let Some(r) = h.handle(other) {
                        return r.map_err(|e| (ErrorClass::GenericError, e));
                    }
                }
                Err((
                    ErrorClass::CommandNotFound,
                    format!("unknown command `{}`", other.name()),
                ))
            }
        }
    }

    /// Sends the final events and removes the socket.
    pub fn finish(&mut self, ctx: &ControlContext, reason: &ExitReason) {
        match reason {
            ExitReason::Poweroff => ctx.events.emit(Event::Poweroff {}),
            ExitReason::Reboot => ctx.events.emit(Event::Reboot {}),
            ExitReason::Crash(r) => ctx.events.emit(Event::Crash { reason: r.clone() }),
            _ => {}
        }
        let detail = match reason {
            ExitReason::Crash(r) | ExitReason::Error(r) => r.clone(),
            other => other.kind().as_str().to_string(),
        };
        ctx.events.emit(Event::Shutdown {
            reason: reason.kind(),
            detail,
            exit_code: reason.exit_code(),
        });
        if let Some((p, id)) = &self.path {
            crate::unix_socket::remove_if_ours(p, *id);
        }
    }
}

/// CPU time and resident memory of this process, for benchmarks and diagnostics.
fn process_usage() -> api::ProcessUsage {
    // SAFETY: getrusage fills the struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointer to a rusage.
    let cpu_ms = if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } == 0 {
        let tv = |t: libc::timeval| t.tv_sec as f64 * 1000.0 + t.tv_usec as f64 / 1000.0;
        tv(ru.ru_utime) + tv(ru.ru_stime)
    } else {
        -1.0
    };
    let rss_kib = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|v| v.parse::<u64>().ok())
        })
        .map(|pages| pages * 4)
        .unwrap_or(0);
    api::ProcessUsage { cpu_ms, rss_kib }
}

/// A reply as one line. A return that cannot be written (a path that is not UTF-8 in
/// `vnc-info`) is answered with the error instead, under the same id.
fn encode(reply: &Reply) -> String {
    let mut line = to_json(reply).unwrap_or_else(|e| {
        let id = match reply {
            Reply::Return { id, .. } | Reply::Error { id, .. } => id.clone(),
        };
        let err: Reply = Reply::error(ErrorClass::GenericError, e.to_string(), id);
        // Ids and strings always make JSON.
        to_json(&err).unwrap_or_default()
    });
    line.push('\n');
    line
}

/// Writes to a non-blocking socket, waiting briefly when its buffer is full (replies are
/// small; a client that stops reading for 2 s is dropped).
fn write_all_retry(s: &mut UnixStream, mut buf: &[u8]) -> io::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(2);
    while !buf.is_empty() {
        match s.write(buf) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => buf = &buf[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(1))
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
