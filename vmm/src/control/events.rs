//! Events pushed to every connected control client.

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex};
use vireo_vmm_api::control::{to_json, Event, EventMessage};

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

    /// Sends `event`, stamped now, to every client.
    pub fn emit(&self, event: Event) {
        // Only a path can fail to be written as JSON, and the paths events hold (media) come
        // from the config or a command, both JSON, so they are UTF-8.
        let Ok(mut line) = to_json(&EventMessage::now(event)) else {
            return;
        };
        line.push('\n');
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        clients.retain_mut(|(_, s)| matches!(s.write(line.as_bytes()), Ok(n) if n == line.len()));
    }
}
