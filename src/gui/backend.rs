//! The GUI's side of the driver: every call that may block (files, the helper's control
//! socket, waiting for a shutdown) runs on a worker thread, and the driver's events are carried
//! onto the GTK main loop through an async channel.

use gtk::gio;
use std::cell::RefCell;
use vireo_driver::{Connection, DriverError, Event, MachineInfo, Subscription};

/// What [`prefetch`] started, each part taken once: the events from before the list was read,
/// and the list.
#[derive(Default)]
struct Prefetched {
    events: Option<Subscription>,
    list: Option<async_channel::Receiver<Result<Vec<MachineInfo>, String>>>,
}

thread_local! {
    /// Taken by the main window's first list and its event stream.
    static PREFETCHED: RefCell<Prefetched> = RefCell::default();
}

/// Starts reading the machine list on a thread of its own at start-up, so that it overlaps
/// GTK's own start instead of following the window's construction. The events are subscribed
/// to first, so nothing that happens after the read is missed.
pub fn prefetch() {
    // The paths are read here, on the main thread, before anything else touches the
    // environment.
    let conn = Connection::open();
    let events = conn.subscribe();
    let (tx, list) = async_channel::bounded(1);
    let spawned = std::thread::Builder::new()
        .name("vireo-list".into())
        .spawn(move || {
            let _ = tx.send_blocking(conn.list().map_err(|e| e.to_string()));
        });
    if spawned.is_ok() {
        PREFETCHED.with(|p| {
            p.replace(Prefetched {
                events: Some(events),
                list: Some(list),
            })
        });
    }
}

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

    /// The machine list: the one read at start-up the first time (see [`prefetch`]), else a
    /// new read.
    pub async fn list(&self) -> Result<Vec<MachineInfo>, String> {
        let prefetched = PREFETCHED.with(|p| p.borrow_mut().list.take());
        if let Some(list) = prefetched {
            if let Ok(result) = list.recv().await {
                return result;
            }
        }
        self.call(|c| c.list()).await
    }

    /// Lifecycle events from now on (from before the start-up list, the first time), for a
    /// future on the main loop.
    pub fn events(&self) -> async_channel::Receiver<Event> {
        let (tx, rx) = async_channel::unbounded();
        let prefetched = PREFETCHED.with(|p| p.borrow_mut().events.take());
        let subscription = prefetched.unwrap_or_else(|| self.conn.subscribe());
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
