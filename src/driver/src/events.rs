//! Events: one append-only log per connection (`$XDG_RUNTIME_DIR/vireo/events.log`), one JSON
//! object a line. Writers (the supervisors, clients that define/suspend/...) append a whole line
//! in one `write` under an exclusive `flock`, so the file order is the order things happened and
//! every reader sees the same order. Readers follow the file from where they started (new events
//! only), which gives every client an ordered stream without a daemon.
//!
//! The log is capped ([`vireo_vmm_api::logcap::EVENTS_LOG`]; a guest that reboots in a loop makes
//! events): the writer that finds the file full renames it to `events.log.1` (older backups
//! move up) while it holds the file's lock, and appends to a fresh `events.log`. A writer that
//! opened the old file before the rename notices, once it has the lock, that the name now
//! belongs to another file and starts over, so nothing is written to a file after its
//! rotation. Readers keep the file they follow open: when the name moves on to a new file they
//! read the rest of the old one (complete, by the rule above), then any whole generation that
//! went by between two reads (`events.log.1`, when it is neither), then the new file from its
//! start; no event is lost or read twice unless more than two rotations fall between two
//! reads.

use crate::state::{now_ms, EventKind};
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::Arc;
use std::time::Duration;

/// One event: a lifecycle change, or a drive's new medium.
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
    /// Which drive and how, for [`EventKind::DiskChange`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk: Option<DiskChange>,
}

/// A CD-ROM drive's medium changed: libvirt's disk-change event (which also stands for its
/// tray-change here: an opened tray is an empty drive).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskChange {
    /// `target dev` (`sda`).
    pub target: String,
    /// The image before; `None` for an empty drive.
    pub old_source: Option<String>,
    /// The image after; `None` for an empty drive.
    pub new_source: Option<String>,
    pub reason: DiskChangeReason,
}

/// Who changed the medium, and where.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DiskChangeReason {
    /// A client changed the running machine's drive (`change-media --live`).
    Changed,
    /// The guest ejected its own disc.
    GuestEject,
    /// Only the definition changed, for the next start (`change-media --config`).
    Config,
    /// The installer rebooted: its ISO was ejected ([`crate::install`]).
    Installed,
}

impl DiskChangeReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DiskChangeReason::Changed => "changed",
            DiskChangeReason::GuestEject => "guest-eject",
            DiskChangeReason::Config => "config",
            DiskChangeReason::Installed => "installed",
        }
    }
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
            disk: None,
        }
    }

    /// A drive's medium changed; the detail is the reason's word.
    pub fn disk_change(domain: &str, uuid: Option<&str>, change: DiskChange) -> Event {
        let mut ev = Event::new(domain, uuid, EventKind::DiskChange, change.reason.as_str());
        ev.disk = Some(change);
        ev
    }

    /// The line `virsh event --loop` prints for it.
    pub fn virsh_line(&self) -> String {
        match (self.kind, &self.disk) {
            (EventKind::Rebooted, _) => format!("event 'reboot' for domain '{}'", self.domain),
            (EventKind::DiskChange, Some(d)) => {
                let source = |s: &Option<String>| s.clone().unwrap_or_else(|| "<null>".into());
                format!(
                    "event 'disk-change' for domain '{}' disk {}: {} -> {}: {}",
                    self.domain,
                    d.target,
                    source(&d.old_source),
                    source(&d.new_source),
                    d.reason.as_str()
                )
            }
            _ => format!(
                "event 'lifecycle' for domain '{}': {} {}",
                self.domain,
                self.kind.as_str(),
                self.detail
            ),
        }
    }
}

/// Which file a name or a descriptor is (device and inode).
type FileId = (u64, u64);

fn id_of(m: &std::fs::Metadata) -> FileId {
    (m.dev(), m.ino())
}

fn path_id(p: &Path) -> Option<FileId> {
    std::fs::metadata(p).ok().map(|m| id_of(&m))
}

/// Appends one event. Errors are returned; callers that cannot do anything about them (the
/// supervisor) log them.
pub fn append(log: &Path, ev: &Event) -> std::io::Result<()> {
    let limits = vireo_vmm_api::logcap::limits(vireo_vmm_api::logcap::EVENTS_LOG);
    append_capped(log, ev, limits)
}

/// A writer can lose the race for a freshly rotated file this many times before giving up.
const APPEND_ATTEMPTS: u32 = 8;

fn append_capped(
    log: &Path,
    ev: &Event,
    limits: vireo_vmm_api::logcap::Limits,
) -> std::io::Result<()> {
    if let Some(dir) = log.parent() {
        crate::paths::ensure_private_dir(dir)?;
    }
    let mut line = serde_json::to_string(ev).map_err(std::io::Error::other)?;
    line.push('\n');
    for _ in 0..APPEND_ATTEMPTS {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(log)?;
        // SAFETY: flock on our own descriptor; released when `f` is closed.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let held = f.metadata()?;
        if path_id(log) != Some(id_of(&held)) {
            // Rotated while we waited for the lock: this file is closed for writing.
            continue;
        }
        if held.len() > 0 && held.len() + line.len() as u64 > limits.max_size {
            rotate(log, limits.backups)?;
            continue;
        }
        return f.write_all(line.as_bytes());
    }
    Err(std::io::Error::other(
        "the event log was rotated under every attempt to append",
    ))
}

/// Moves `log` to `log.1` (and older backups one up, the oldest dropped). Called with `log`'s
/// lock held.
fn rotate(log: &Path, backups: u32) -> std::io::Result<()> {
    use vireo_vmm_api::logcap::backup_path;
    if backups == 0 {
        return std::fs::remove_file(log);
    }
    for i in (1..backups).rev() {
        match std::fs::rename(backup_path(log, i), backup_path(log, i + 1)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    std::fs::rename(log, backup_path(log, 1))
}

/// Follows an event log from a position, across rotations.
pub struct EventReader {
    path: PathBuf,
    /// The file followed (kept open: it may be renamed), once it exists.
    file: Option<(File, FileId)>,
    pos: u64,
    partial: Vec<u8>,
}

fn open_id(p: &Path) -> Option<(File, FileId)> {
    let f = File::open(p).ok()?;
    let id = id_of(&f.metadata().ok()?);
    Some((f, id))
}

/// Everything from `pos` to the end of `f`; `pos` moves past it.
fn read_from(f: &mut File, pos: &mut u64, into: &mut Vec<u8>) {
    let mut buf = Vec::new();
    if f.seek(SeekFrom::Start(*pos)).is_ok() && f.read_to_end(&mut buf).is_ok() {
        *pos += buf.len() as u64;
        into.extend_from_slice(&buf);
    }
}

impl EventReader {
    /// Starts at the current end: only events appended from now on are read.
    pub fn from_end(path: &Path) -> EventReader {
        let file = open_id(path);
        let pos = file
            .as_ref()
            .and_then(|(f, _)| f.metadata().ok())
            .map_or(0, |m| m.len());
        EventReader {
            path: path.to_owned(),
            file,
            pos,
            partial: Vec::new(),
        }
    }

    /// Starts at the beginning (all events the log and its backups still hold).
    pub fn from_start(path: &Path) -> EventReader {
        // The current file first, so a rotation meanwhile cannot make us read it twice.
        let file = open_id(path);
        let current = file.as_ref().map(|(_, id)| *id);
        let mut partial = Vec::new();
        let backups = vireo_vmm_api::logcap::EVENTS_LOG.backups;
        for i in (1..=backups).rev() {
            let Some((mut f, id)) = open_id(&vireo_vmm_api::logcap::backup_path(path, i)) else {
                continue;
            };
            if Some(id) != current {
                read_from(&mut f, &mut 0, &mut partial);
            }
        }
        EventReader {
            path: path.to_owned(),
            file,
            pos: 0,
            partial,
        }
    }

    fn read_held(&mut self) {
        if let Some((f, _)) = &mut self.file {
            read_from(f, &mut self.pos, &mut self.partial);
        }
    }

    /// Reads complete new lines; lines that are not events are skipped.
    pub fn poll(&mut self) -> Vec<Event> {
        if self.file.is_none() {
            self.file = open_id(&self.path);
            self.pos = 0;
        }
        self.read_held();
        let held = self.file.as_ref().map(|(_, id)| *id);
        let named = path_id(&self.path);
        if let (Some(held), Some(named)) = (held, named) {
            if held != named {
                // Rotated (or removed and recreated): nothing more goes to the held file once
                // its name is gone, so what is read now is its complete rest.
                self.read_held();
                let backup = vireo_vmm_api::logcap::backup_path(&self.path, 1);
                if let Some((mut f, id)) = open_id(&backup) {
                    // Both compared files are open, so their identities cannot be reused.
                    if id != held && id != named {
                        // A whole generation went by between two polls.
                        read_from(&mut f, &mut 0, &mut self.partial);
                    }
                }
                self.file = open_id(&self.path);
                self.pos = 0;
                self.read_held();
            } else if self
                .file
                .as_ref()
                .and_then(|(f, _)| f.metadata().ok())
                .is_some_and(|m| m.len() < self.pos)
            {
                // Truncated in place (not by us): start over.
                self.pos = 0;
                self.partial.clear();
                self.read_held();
            }
        }
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

    #[test]
    fn a_disk_change_is_a_line_of_its_own_and_virshs_words() {
        let (dir, log) = temp_log("disk");
        let change = |old: Option<&str>, new: Option<&str>, reason| DiskChange {
            target: "sda".into(),
            old_source: old.map(str::to_owned),
            new_source: new.map(str::to_owned),
            reason,
        };
        let mut r = EventReader::from_end(&log);
        let host = Event::disk_change(
            "x",
            Some("u"),
            change(
                Some("/i/a.iso"),
                Some("/i/b.iso"),
                DiskChangeReason::Changed,
            ),
        );
        append(&log, &host).unwrap();
        let guest = Event::disk_change(
            "x",
            None,
            change(Some("/i/b.iso"), None, DiskChangeReason::GuestEject),
        );
        append(&log, &guest).unwrap();
        let config = Event::disk_change(
            "x",
            None,
            change(None, Some("/i/c.iso"), DiskChangeReason::Config),
        );
        append(&log, &config).unwrap();
        let text = std::fs::read_to_string(&log).unwrap();
        let first = text.lines().next().unwrap();
        assert!(
            first.contains(r#""kind":"disk-change","detail":"changed""#),
            "{first}"
        );
        assert!(
            first.contains(r#""disk":{"target":"sda","old_source":"/i/a.iso","new_source":"/i/b.iso","reason":"changed"}"#),
            "{first}"
        );
        let lines: Vec<String> = r.poll().iter().map(Event::virsh_line).collect();
        assert_eq!(
            lines,
            [
                "event 'disk-change' for domain 'x' disk sda: /i/a.iso -> /i/b.iso: changed",
                "event 'disk-change' for domain 'x' disk sda: /i/b.iso -> <null>: guest-eject",
                "event 'disk-change' for domain 'x' disk sda: <null> -> /i/c.iso: config",
            ]
        );
        // A lifecycle line has no disk, as before.
        let plain =
            serde_json::to_string(&Event::new("x", None, EventKind::Started, "Booted")).unwrap();
        assert!(!plain.contains("disk"), "{plain}");
        let _ = std::fs::remove_dir_all(dir);
    }

    fn temp_log(tag: &str) -> (PathBuf, PathBuf) {
        let dir = std::env::temp_dir().join(format!(
            "vireo-events-{tag}-{}",
            vireo_domain::Uuid::new_v4().unwrap()
        ));
        let log = dir.join("events.log");
        (dir, log)
    }

    fn ev(n: u32) -> Event {
        Event::new("m", None, EventKind::Started, &n.to_string())
    }

    fn details(evs: &[Event]) -> Vec<u32> {
        evs.iter().map(|e| e.detail.parse().unwrap()).collect()
    }

    #[test]
    fn a_full_log_rotates_and_a_reader_follows_it() {
        let (dir, log) = temp_log("rot");
        let line = serde_json::to_string(&ev(10)).unwrap().len() as u64 + 1;
        // Three events a file.
        let limits = vireo_vmm_api::logcap::Limits {
            max_size: 3 * line,
            backups: 1,
        };
        let put = |range: std::ops::Range<u32>| {
            for n in range {
                append_capped(&log, &ev(n), limits).unwrap();
            }
        };
        put(10..12);
        let mut r = EventReader::from_end(&log);
        put(12..14); // 12 fills the file, 13 starts a new one
        assert_eq!(details(&r.poll()), [12, 13]);
        put(14..20); // two rotations between polls
        assert_eq!(details(&r.poll()), (14..20).collect::<Vec<_>>());
        assert!(r.poll().is_empty());
        put(20..21);
        assert_eq!(details(&r.poll()), [20]);
        // Never more than the limits allow.
        for f in std::fs::read_dir(&dir).unwrap() {
            assert!(f.unwrap().metadata().unwrap().len() <= limits.max_size);
        }
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 2);
        // --all: what the backup and the current file hold, in order.
        assert_eq!(
            details(&EventReader::from_start(&log).poll()),
            [16, 17, 18, 19, 20]
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_subscriber_reads_every_event_across_rotations() {
        let (dir, log) = temp_log("sub");
        let line = serde_json::to_string(&ev(100)).unwrap().len() as u64 + 1;
        let limits = vireo_vmm_api::logcap::Limits {
            max_size: 10 * line,
            backups: 1,
        };
        append_capped(&log, &ev(99), limits).unwrap();
        let sub = subscribe(&log);
        let writers: Vec<_> = (0..2u32)
            .map(|w| {
                let log = log.clone();
                std::thread::spawn(move || {
                    for i in 0..20u32 {
                        append_capped(&log, &ev(100 + w * 100 + i), limits).unwrap();
                        std::thread::sleep(Duration::from_millis(10));
                    }
                })
            })
            .collect();
        for w in writers {
            w.join().unwrap();
        }
        let mut got = Vec::new();
        while got.len() < 40 {
            match sub.receiver.recv_timeout(Duration::from_secs(5)) {
                Ok(e) => got.push(e),
                Err(_) => break,
            }
        }
        let got = details(&got);
        for w in 0..2u32 {
            let mine: Vec<u32> = got
                .iter()
                .copied()
                .filter(|n| (n - 100) / 100 == w)
                .collect();
            assert_eq!(mine, (0..20).map(|i| 100 + w * 100 + i).collect::<Vec<_>>());
        }
        assert!(
            log.with_extension("log.1").exists(),
            "the log never rotated"
        );
        let _ = std::fs::remove_dir_all(dir);
    }
}
