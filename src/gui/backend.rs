//! The GUI's side of the driver: every call that may block (files, the helper's control
//! socket, waiting for a shutdown) runs on a worker thread, and the driver's events are carried
//! onto the GTK main loop through an async channel.

use gtk::gio;
use vireo_driver::{Connection, DriverError, Event};

/// A cheap handle; clones share nothing mutable (the driver keeps its state on disk).
#[derive(Debug, Clone)]
pub struct Backend {
    conn: Connection,
}

impl Default for Backend {
    fn default() -> Self {
        Self::new()
    }
}

impl Backend {
    /// The user's machines, from the XDG directories of the environment.
    pub fn new() -> Backend {
        Backend {
            conn: Connection::open(),
        }
    }

    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// Runs `f` on a worker thread; the error comes back as the driver's message.
    pub async fn call<T, F>(&self, f: F) -> Result<T, String>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, DriverError> + Send + 'static,
    {
        let conn = self.conn.clone();
        match gio::spawn_blocking(move || f(&conn)).await {
            Ok(result) => result.map_err(|e| e.to_string()),
            // The closure panicked: report it instead of taking the window down.
            Err(_) => Err("internal error in a driver call".to_owned()),
        }
    }

    /// Lifecycle events from now on, for a future on the main loop.
    pub fn events(&self) -> async_channel::Receiver<Event> {
        let (tx, rx) = async_channel::unbounded();
        let subscription = self.conn.subscribe();
        std::thread::Builder::new()
            .name("vireo-events".into())
            .spawn(move || {
                // The subscription lives here; it ends when the window drops the receiver.
                while let Ok(event) = subscription.receiver.recv() {
                    if tx.send_blocking(event).is_err() {
                        break;
                    }
                }
            })
            .ok();
        rx
    }
}
