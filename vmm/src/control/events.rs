//! Events pushed to every connected control client.

use serde_json::{json, Value};
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

/// Cloneable fan-out of events to the connected control clients. Any part of the VMM (devices,
/// the VNC server) may emit; a client whose socket buffer is full is dropped rather than
/// blocking the emitter.
#[derive(Clone, Default)]
pub struct EventBus {
    clients: Arc<Mutex<Vec<(u64, UnixStream)>>>,
}

impl EventBus {
    pub fn new() -> EventBus {
        EventBus::default()
    }

    pub(crate) fn subscribe(&self, id: u64, stream: UnixStream) {
        self.clients
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((id, stream));
    }

    pub(crate) fn unsubscribe(&self, id: u64) {
        self.clients
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|(i, _)| *i != id);
    }

    /// Sends `{"event": name, "data": data, "timestamp": {...}}` to every client.
    pub fn emit(&self, name: &str, data: Value) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let msg = json!({
            "event": name,
            "data": data,
            "timestamp": {"seconds": now.as_secs(), "microseconds": now.subsec_micros()},
        });
        let mut line = msg.to_string();
        line.push('\n');
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        clients.retain_mut(|(_, s)| matches!(s.write(line.as_bytes()), Ok(n) if n == line.len()));
    }
}
