//! Events: one append-only log per connection (`$XDG_RUNTIME_DIR/vireo/events.log`), one JSON
//! object a line. Writers (the supervisors, clients that define/suspend/...) append a whole line
//! in one `write` under an exclusive `flock`, so the file order is the order things happened and
//! every reader sees the same order. Readers follow the file from where they started (new events
//! only), which gives every client an ordered stream without a daemon.

use crate::state::{now_ms, EventKind};
use serde::{Deserialize, Serialize};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::Arc;
use std::time::Duration;

/// One lifecycle event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Unix time in milliseconds.
    pub time_ms: u64,
    pub domain: String,
    #[serde(default)]
    pub uuid: Option<String>,
    pub kind: EventKind,
    /// libvirt's detail word (`Booted`, `Destroyed`, `Shutdown`, `Panicked`, ...).
    pub detail: String,
    /// Extra words (e.g. why a helper failed).
    #[serde(default)]
    pub message: Option<String>,
}

impl Event {
    pub fn new(domain: &str, uuid: Option<&str>, kind: EventKind, detail: &str) -> Event {
        Event {
            time_ms: now_ms(),
            domain: domain.to_owned(),
            uuid: uuid.map(str::to_owned),
            kind,
            detail: detail.to_owned(),
            message: None,
        }
    }

    /// The line `virsh event --loop` prints for it.
    pub fn virsh_line(&self) -> String {
        let what = if self.kind == crate::state::EventKind::Rebooted {
            "reboot"
        } else {
            "lifecycle"
        };
        if what == "reboot" {
            format!("event 'reboot' for domain '{}'", self.domain)
        } else {
            format!(
                "event 'lifecycle' for domain '{}': {} {}",
                self.domain,
                self.kind.as_str(),
                self.detail
            )
        }
    }
}

/// Appends one event. Errors are returned; callers that cannot do anything about them (the
/// supervisor) log them.
pub fn append(log: &Path, ev: &Event) -> std::io::Result<()> {
    if let Some(dir) = log.parent() {
        crate::paths::ensure_private_dir(dir)?;
    }
    let mut line = serde_json::to_string(ev).map_err(std::io::Error::other)?;
    line.push('\n');
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)?;
    // SAFETY: flock on our own descriptor; released when `f` is closed.
    unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) };
    f.write_all(line.as_bytes())
}

/// Follows an event log from a position.
pub struct EventReader {
    path: PathBuf,
    pos: u64,
    partial: Vec<u8>,
}

impl EventReader {
    /// Starts at the current end: only events appended from now on are read.
    pub fn from_end(path: &Path) -> EventReader {
        let pos = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        EventReader {
            path: path.to_owned(),
            pos,
            partial: Vec::new(),
        }
    }

    /// Starts at the beginning (all events the log still holds).
    pub fn from_start(path: &Path) -> EventReader {
        EventReader {
            path: path.to_owned(),
            pos: 0,
            partial: Vec::new(),
        }
    }

    /// Reads complete new lines; lines that are not events are skipped.
    pub fn poll(&mut self) -> Vec<Event> {
        let Ok(mut f) = std::fs::File::open(&self.path) else {
            return Vec::new();
        };
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        if len < self.pos {
            // The log was removed and recreated (runtime dir cleared): start over.
            self.pos = 0;
            self.partial.clear();
        }
        if f.seek(SeekFrom::Start(self.pos)).is_err() {
            return Vec::new();
        }
        let mut buf = Vec::new();
        if f.read_to_end(&mut buf).is_err() {
            return Vec::new();
        }
        self.pos += buf.len() as u64;
        self.partial.extend_from_slice(&buf);
        let mut out = Vec::new();
        while let Some(nl) = self.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=nl).collect();
            if let Ok(ev) = serde_json::from_slice::<Event>(&line) {
                out.push(ev);
            }
        }
        out
    }
}

/// A live subscription: events arrive on `receiver` in log order until it is dropped.
pub struct Subscription {
    pub receiver: Receiver<Event>,
    stop: Arc<AtomicBool>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Polls the log every 100 ms on a thread and forwards new events.
pub fn subscribe(path: &Path) -> Subscription {
    let (tx, rx): (Sender<Event>, Receiver<Event>) = std::sync::mpsc::channel();
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let mut reader = EventReader::from_end(path);
    std::thread::spawn(move || {
        while !stop2.load(Ordering::Relaxed) {
            for ev in reader.poll() {
                if tx.send(ev).is_err() {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    Subscription { receiver: rx, stop }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appended_events_are_read_in_order() {
        let dir = std::env::temp_dir().join(format!(
            "vireo-events-{}",
            vireo_domain::Uuid::new_v4().unwrap()
        ));
        let log = dir.join("events.log");
        append(&log, &Event::new("old", None, EventKind::Defined, "Added")).unwrap();
        let mut r = EventReader::from_end(&log);
        assert!(r.poll().is_empty());
        let writers: Vec<_> = (0..4)
            .map(|w| {
                let log = log.clone();
                std::thread::spawn(move || {
                    for i in 0..50 {
                        append(
                            &log,
                            &Event::new(&format!("w{w}"), None, EventKind::Started, &i.to_string()),
                        )
                        .unwrap();
                    }
                })
            })
            .collect();
        for w in writers {
            w.join().unwrap();
        }
        let evs = r.poll();
        assert_eq!(evs.len(), 200);
        for w in 0..4 {
            let mine: Vec<String> = evs
                .iter()
                .filter(|e| e.domain == format!("w{w}"))
                .map(|e| e.detail.clone())
                .collect();
            assert_eq!(mine, (0..50).map(|i| i.to_string()).collect::<Vec<_>>());
        }
        let sub = subscribe(&log);
        append(
            &log,
            &Event::new("x", None, EventKind::Stopped, "Destroyed"),
        )
        .unwrap();
        let ev = sub.receiver.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(
            ev.virsh_line(),
            "event 'lifecycle' for domain 'x': Stopped Destroyed"
        );
        let _ = std::fs::remove_dir_all(dir);
    }
}
