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
use serde_json::{json, Value};
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Longest request line accepted; a client sending more is disconnected.
const MAX_LINE: usize = 64 * 1024;
const MAX_CLIENTS: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VmState {
    Running,
    Paused,
    ShuttingDown,
}

impl VmState {
    pub fn as_str(self) -> &'static str {
        match self {
            VmState::Running => "running",
            VmState::Paused => "paused",
            VmState::ShuttingDown => "shutting-down",
        }
    }
}

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
}

struct Client {
    id: u64,
    stream: UnixStream,
    buf: Vec<u8>,
}

pub struct ControlServer {
    listener: Option<UnixListener>,
    path: Option<PathBuf>,
    clients: Vec<Client>,
    next_id: u64,
    state: VmState,
    saved_clock: Option<kvm_bindings::kvm_clock_data>,
}

impl ControlServer {
    /// Binds the socket (mode 0600: only our user may drive the VM).
    pub fn bind(path: &Path) -> io::Result<ControlServer> {
        let _ = std::fs::remove_file(path);
        let listener = UnixListener::bind(path)?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        listener.set_nonblocking(true)?;
        Ok(ControlServer {
            listener: Some(listener),
            path: Some(path.to_owned()),
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
            ctx.events
                .emit("state-changed", json!({"state": s.as_str()}));
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
                    b"{\"error\":{\"class\":\"GenericError\",\"desc\":\"too many clients\"}}\n",
                );
                continue;
            }
            let id = self.next_id;
            self.next_id += 1;
            let mut s = stream;
            let greeting = json!({"vireo": {"protocol": PROTOCOL_VERSION, "vmm": env!("CARGO_PKG_VERSION"), "name": ctx.name}});
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
            let reply = self.handle_line(ctx, &line);
            let mut out = reply.to_string();
            out.push('\n');
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

    fn handle_line(&mut self, ctx: &mut ControlContext, line: &[u8]) -> Value {
        let req: Value = match serde_json::from_slice(line) {
            Ok(v) => v,
            Err(e) => return error(Value::Null, "ParseError", &format!("invalid JSON: {e}")),
        };
        let id = req.get("id").cloned().unwrap_or(Value::Null);
        let Some(cmd) = req.get("execute").and_then(Value::as_str) else {
            return error(id, "ParseError", "missing \"execute\" string");
        };
        let args = req.get("arguments").cloned().unwrap_or(json!({}));
        match self.execute(ctx, cmd, &args) {
            Ok(v) => {
                let mut r = json!({"return": v});
                if !id.is_null() {
                    r["id"] = id;
                }
                r
            }
            Err((class, desc)) => error(id, class, &desc),
        }
    }

    fn execute(
        &mut self,
        ctx: &mut ControlContext,
        cmd: &str,
        args: &Value,
    ) -> Result<Value, (&'static str, String)> {
        match cmd {
            "status" => {
                let marks: Vec<Value> = ctx
                    .boot_marks
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .iter()
                    .map(|m| json!({"value": m.value, "ms": m.since_start.as_secs_f64() * 1000.0}))
                    .collect();
                Ok(json!({
                    "state": self.state.as_str(),
                    "uptime_ms": ctx.start.elapsed().as_millis() as u64,
                    "vcpus": ctx.vcpus,
                    "name": ctx.name,
                    "memory_mib": ctx.memory_mib,
                    "boot_marks": marks,
                    "exits": ctx.run.exits.load(Ordering::Relaxed),
                    "unclaimed_accesses": ctx.run.unclaimed.load(Ordering::Relaxed),
                    "process": process_usage(),
                }))
            }
            "pause" => {
                if self.state == VmState::Paused {
                    return Err(("InvalidState", "already paused".into()));
                }
                ctx.run
                    .pause(&ctx.threads, Duration::from_secs(5))
                    .map_err(|e| ("GenericError", e))?;
                // With all vCPUs stopped, freeze guest time.
                self.saved_clock = ctx.vm_fd.get_clock().ok();
                self.set_state(ctx, VmState::Paused);
                Ok(json!({}))
            }
            "resume" => {
                if self.state != VmState::Paused {
                    return Err(("InvalidState", "not paused".into()));
                }
                if let Some(mut clock) = self.saved_clock.take() {
                    // Only the clock value is restored; the flags describe the host side.
                    clock.flags = 0;
                    if let Err(e) = ctx.vm_fd.set_clock(&clock) {
                        eprintln!("vireo-vmm: KVM_SET_CLOCK on resume failed: {e}");
                    }
                }
                ctx.run.resume();
                self.set_state(ctx, VmState::Running);
                Ok(json!({}))
            }
            "power-down" => {
                if self.state == VmState::Paused {
                    return Err(("InvalidState", "paused: resume first".into()));
                }
                ctx.pm
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .press_power_button();
                self.set_state(ctx, VmState::ShuttingDown);
                Ok(json!({}))
            }
            "reset" => {
                ctx.exit.request(ExitReason::Reboot);
                Ok(json!({}))
            }
            "quit" => {
                ctx.exit.request(ExitReason::Quit);
                Ok(json!({}))
            }
            "send-scancodes" => {
                let codes = args.get("codes").and_then(Value::as_array).ok_or((
                    "GenericError",
                    "arguments.codes: expected an array of bytes".to_string(),
                ))?;
                let mut bytes = Vec::with_capacity(codes.len());
                for (i, c) in codes.iter().enumerate() {
                    match c.as_u64().and_then(|v| u8::try_from(v).ok()) {
                        Some(b) => bytes.push(b),
                        None => {
                            return Err((
                                "GenericError",
                                format!("arguments.codes[{i}]: not a byte"),
                            ))
                        }
                    }
                }
                ctx.keyboard.push_scancodes(&bytes);
                Ok(json!({}))
            }
            "send-text" => {
                let text = args.get("text").and_then(Value::as_str).ok_or((
                    "GenericError",
                    "arguments.text: expected a string".to_string(),
                ))?;
                let codes = crate::devices::scancodes::text_to_set1(text).map_err(|c| {
                    (
                        "GenericError",
                        format!("arguments.text: no US-layout key for {c:?}"),
                    )
                })?;
                ctx.keyboard.push_scancodes(&codes);
                Ok(json!({}))
            }
            "query-commands" => {
                let mut names = vec![
                    "status",
                    "pause",
                    "resume",
                    "power-down",
                    "reset",
                    "quit",
                    "send-scancodes",
                    "send-text",
                    "query-commands",
                ];
                for h in &ctx.handlers {
                    names.extend(h.commands());
                }
                Ok(json!(names
                    .iter()
                    .map(|n| json!({"name": n}))
                    .collect::<Vec<_>>()))
            }
            other => {
                for h in ctx.handlers.iter_mut() {
                    if let Some(r) = h.handle(other, args) {
                        return r.map_err(|e| ("GenericError", e));
                    }
                }
                Err(("CommandNotFound", format!("unknown command `{other}`")))
            }
        }
    }

    /// Sends the final events and removes the socket.
    pub fn finish(&mut self, ctx: &ControlContext, reason: &ExitReason) {
        match reason {
            ExitReason::Poweroff => ctx.events.emit("poweroff", json!({})),
            ExitReason::Reboot => ctx.events.emit("reboot", json!({})),
            ExitReason::Crash(r) => ctx.events.emit("crash", json!({"reason": r})),
            _ => {}
        }
        let why = match reason {
            ExitReason::Crash(r) | ExitReason::Error(r) => r.clone(),
            other => other.kind().to_string(),
        };
        ctx.events.emit(
            "shutdown",
            json!({"reason": reason.kind(), "detail": why, "exit_code": reason.exit_code()}),
        );
        if let Some(p) = &self.path {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// CPU time and resident memory of this process, for benchmarks and diagnostics.
fn process_usage() -> Value {
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
    json!({"cpu_ms": cpu_ms, "rss_kib": rss_kib})
}

fn error(id: Value, class: &str, desc: &str) -> Value {
    let mut r = json!({"error": {"class": class, "desc": desc}});
    if !id.is_null() {
        r["id"] = id;
    }
    r
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
