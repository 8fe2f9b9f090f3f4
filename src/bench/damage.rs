//! Frames a window presents, counted from outside the program that draws it: X DAMAGE on the
//! window, reported each time its damage goes from empty to non-empty and cleared at once.
//! A frame that a toolkit paints in one flush (GTK 3 and GTK 4 both paint a whole frame into
//! an offscreen buffer and copy it to the window) counts once; paints closer together than
//! this counter is woken and clears the damage count once together (a busy machine makes
//! that more likely: the count is a floor).

use std::ffi::{c_char, c_int, c_long, c_ulong, c_void, CString};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

#[link(name = "X11")]
extern "C" {
    fn XOpenDisplay(name: *const c_char) -> *mut c_void;
    fn XCloseDisplay(display: *mut c_void) -> c_int;
    fn XPending(display: *mut c_void) -> c_int;
    fn XNextEvent(display: *mut c_void, event: *mut XEvent) -> c_int;
    fn XSync(display: *mut c_void, discard: c_int) -> c_int;
    fn XFlush(display: *mut c_void) -> c_int;
    fn XConnectionNumber(display: *mut c_void) -> c_int;
}

#[link(name = "Xdamage")]
extern "C" {
    fn XDamageQueryExtension(display: *mut c_void, event: *mut c_int, error: *mut c_int) -> c_int;
    fn XDamageCreate(display: *mut c_void, drawable: c_ulong, level: c_int) -> c_ulong;
    fn XDamageSubtract(display: *mut c_void, damage: c_ulong, repair: c_ulong, parts: c_ulong);
}

/// Xlib's XEvent: a union 24 longs long whose first int is the type.
#[repr(C)]
struct XEvent {
    kind: c_int,
    pad: [c_long; 24],
}

const REPORT_NON_EMPTY: c_int = 3;

/// Counts the damage reports of one window on a thread of its own.
pub struct DamageCounter {
    count: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl DamageCounter {
    /// Starts counting for `window` (an X id in decimal, as xdotool prints it) on `display`.
    pub fn start(display: &str, window: &str) -> Option<DamageCounter> {
        let window: c_ulong = window.trim().parse().ok()?;
        let name = CString::new(display).ok()?;
        let count = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (c, s) = (count.clone(), stop.clone());
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            // SAFETY: one display connection, used only by this thread and closed at its end;
            // the event buffer is as large as Xlib's XEvent.
            unsafe {
                let dpy = XOpenDisplay(name.as_ptr());
                if dpy.is_null() {
                    let _ = ready_tx.send(false);
                    return;
                }
                let (mut base, mut err) = (0, 0);
                if XDamageQueryExtension(dpy, &mut base, &mut err) == 0 {
                    XCloseDisplay(dpy);
                    let _ = ready_tx.send(false);
                    return;
                }
                let damage = XDamageCreate(dpy, window, REPORT_NON_EMPTY);
                XSync(dpy, 0);
                let _ = ready_tx.send(true);
                let mut event = XEvent {
                    kind: 0,
                    pad: [0; 24],
                };
                let mut fd = libc::pollfd {
                    fd: XConnectionNumber(dpy),
                    events: libc::POLLIN,
                    revents: 0,
                };
                while !s.load(Ordering::Relaxed) {
                    if XPending(dpy) == 0 {
                        libc::poll(&mut fd, 1, 50);
                    }
                    let mut seen = false;
                    while XPending(dpy) > 0 {
                        XNextEvent(dpy, &mut event);
                        if event.kind == base {
                            seen = true;
                        }
                    }
                    if seen {
                        c.fetch_add(1, Ordering::Relaxed);
                        XDamageSubtract(dpy, damage, 0, 0);
                        XFlush(dpy);
                    }
                }
                XCloseDisplay(dpy);
            }
        });
        if ready_rx.recv().ok()? {
            Some(DamageCounter {
                count,
                stop,
                thread: Some(thread),
            })
        } else {
            None
        }
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }
}

impl Drop for DamageCounter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
