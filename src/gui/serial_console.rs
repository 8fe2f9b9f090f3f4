//! A machine's serial console as a page of its console window: the driver's console socket is
//! read on a thread into a small terminal model (`terminal`: CR/LF, backspace, erase, cursor
//! moves, ANSI colours) that is rendered into a text view with the cursor shown where the guest
//! put it; keys typed into the view go to the guest as terminal bytes. The socket is opened
//! when the page is first shown, and opened again after the machine restarts.

mod terminal;

use adw::subclass::prelude::*;
use gettextrs::gettext;
use gtk::prelude::*;
use gtk::{gdk, glib, CompositeTemplate};
use std::cell::{Cell, RefCell};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use super::backend::Backend;
pub use terminal::Terminal;

/// Lines kept for scrolling back; older ones are dropped so a chatty guest cannot grow memory
/// without bound.
const MAX_LINES: usize = 5_000;
/// Cursor addressing assumes a screen this high (the guest's `stty rows` default).
const SCREEN_ROWS: usize = 24;

/// Text tag names of the 16 ANSI colours (Tango palette, readable on light and dark).
const PALETTE: [&str; 16] = [
    "#2e3436", "#cc0000", "#4e9a06", "#c4a000", "#3465a4", "#75507b", "#06989a", "#d3d7cf",
    "#555753", "#ef2929", "#8ae234", "#fce94f", "#729fcf", "#ad7fa8", "#34e2e2", "#eeeeec",
];

mod imp {
    use super::*;

    #[derive(Debug, CompositeTemplate)]
    #[template(resource = "/org/vireo/Vireo/ui/serial-console.ui")]
    pub struct VireoSerialConsole {
        #[template_child]
        pub scroller: TemplateChild<gtk::ScrolledWindow>,
        #[template_child]
        pub text_view: TemplateChild<gtk::TextView>,
        #[template_child]
        pub status_label: TemplateChild<gtk::Label>,
        pub stream: RefCell<Option<UnixStream>>,
        pub terminal: RefCell<Terminal>,
        pub backend: RefCell<Option<Backend>>,
        pub machine: RefCell<Option<String>>,
        /// Bumped on each attach, so a reader of an old socket cannot act on the new one.
        pub generation: Cell<u64>,
        pub attached: Cell<bool>,
    }

    impl Default for VireoSerialConsole {
        fn default() -> Self {
            Self {
                scroller: Default::default(),
                text_view: Default::default(),
                status_label: Default::default(),
                stream: Default::default(),
                terminal: RefCell::new(Terminal::new(SCREEN_ROWS, MAX_LINES)),
                backend: Default::default(),
                machine: Default::default(),
                generation: Default::default(),
                attached: Default::default(),
            }
        }
    }

    #[glib::object_subclass]
    impl ObjectSubclass for VireoSerialConsole {
        const NAME: &'static str = "VireoSerialConsole";
        type Type = super::VireoSerialConsole;
        type ParentType = adw::Bin;

        fn class_init(klass: &mut Self::Class) {
            klass.bind_template();
        }

        fn instance_init(obj: &glib::subclass::InitializingObject<Self>) {
            obj.init_template();
        }
    }

    impl ObjectImpl for VireoSerialConsole {
        fn constructed(&self) {
            self.parent_constructed();
            let obj = self.obj();
            obj.setup_tags();
            obj.setup_keys();
        }

        fn dispose(&self) {
            self.obj().detach();
        }
    }

    impl WidgetImpl for VireoSerialConsole {}
    impl BinImpl for VireoSerialConsole {}
}

glib::wrapper! {
    pub struct VireoSerialConsole(ObjectSubclass<imp::VireoSerialConsole>)
        @extends adw::Bin, gtk::Widget,
        @implements gtk::Buildable, gtk::ConstraintTarget;
}

/// Bytes a key press sends to a serial terminal.
pub fn key_bytes(key: gdk::Key, state: gdk::ModifierType) -> Option<Vec<u8>> {
    let named: Option<&[u8]> = match key {
        gdk::Key::Return | gdk::Key::KP_Enter => Some(b"\r"),
        gdk::Key::BackSpace => Some(b"\x7f"),
        gdk::Key::Tab => Some(b"\t"),
        gdk::Key::Escape => Some(b"\x1b"),
        gdk::Key::Up => Some(b"\x1b[A"),
        gdk::Key::Down => Some(b"\x1b[B"),
        gdk::Key::Right => Some(b"\x1b[C"),
        gdk::Key::Left => Some(b"\x1b[D"),
        _ => None,
    };
    if let Some(bytes) = named {
        return Some(bytes.to_vec());
    }
    let c = key.to_unicode()?;
    if state.contains(gdk::ModifierType::CONTROL_MASK) && c.is_ascii_alphabetic() {
        return Some(vec![c.to_ascii_lowercase() as u8 - b'a' + 1]);
    }
    let mut buf = [0u8; 4];
    Some(c.encode_utf8(&mut buf).as_bytes().to_vec())
}

impl VireoSerialConsole {
    /// Sets the machine whose console this shows; nothing is opened until `attach`.
    pub fn set_machine(&self, backend: Backend, machine: &str) {
        let imp = self.imp();
        imp.backend.replace(Some(backend));
        imp.machine.replace(Some(machine.to_owned()));
    }

    /// Opens the console socket unless it is open already.
    pub fn attach(&self) {
        let imp = self.imp();
        if imp.attached.get() {
            return;
        }
        let (Some(backend), Some(machine)) =
            (imp.backend.borrow().clone(), imp.machine.borrow().clone())
        else {
            return;
        };
        imp.attached.set(true);
        imp.generation.set(imp.generation.get() + 1);
        let generation = imp.generation.get();
        glib::spawn_future_local(glib::clone!(
            #[weak(rename_to = view)]
            self,
            async move {
                let stream = backend
                    .call(move |c| {
                        let path = c.console_socket(&machine)?;
                        UnixStream::connect(&path)
                            .map_err(|source| vireo_driver::DriverError::Io { path, source })
                    })
                    .await;
                if view.imp().generation.get() != generation {
                    return;
                }
                match stream {
                    Ok(stream) => view.read_from(stream, generation),
                    Err(message) => view.retry_later(&message),
                }
            }
        ));
    }

    /// Closes the socket (the window closes, or the machine went away).
    pub fn detach(&self) {
        let imp = self.imp();
        imp.generation.set(imp.generation.get() + 1);
        imp.attached.set(false);
        if let Some(stream) = imp.stream.take() {
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
    }

    fn set_status(&self, text: &str) {
        let label = &self.imp().status_label;
        label.set_label(text);
        label.set_visible(!text.is_empty());
    }

    /// The machine is not running (or restarting): try again while the view is on screen.
    fn retry_later(&self, message: &str) {
        self.imp().attached.set(false);
        self.set_status(message);
        glib::timeout_add_local_once(
            Duration::from_secs(2),
            glib::clone!(
                #[weak(rename_to = view)]
                self,
                move || {
                    if !view.imp().attached.get() && view.is_mapped() {
                        view.attach();
                    }
                }
            ),
        );
    }

    fn read_from(&self, stream: UnixStream, generation: u64) {
        let reader = match stream.try_clone() {
            Ok(r) => r,
            Err(e) => return self.retry_later(&e.to_string()),
        };
        self.imp().stream.replace(Some(stream));
        self.set_status("");
        // A new run (after a restart) starts on a line of its own.
        if self.imp().terminal.borrow().cursor().1 > 0 {
            self.feed(b"\r\n");
        }
        let (tx, rx) = async_channel::unbounded::<Vec<u8>>();
        let spawned = std::thread::Builder::new()
            .name("vireo-serial".into())
            .spawn(move || {
                let mut reader = reader;
                let mut buf = [0u8; 4096];
                loop {
                    match reader.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if tx.send_blocking(buf[..n].to_vec()).is_err() {
                                break;
                            }
                        }
                    }
                }
            });
        if let Err(e) = spawned {
            return self.retry_later(&e.to_string());
        }
        self.imp().text_view.grab_focus();
        glib::spawn_future_local(glib::clone!(
            #[weak(rename_to = view)]
            self,
            async move {
                while let Ok(bytes) = rx.recv().await {
                    // Everything already queued goes in before one redraw.
                    let mut chunk = bytes;
                    while let Ok(more) = rx.try_recv() {
                        chunk.extend_from_slice(&more);
                    }
                    view.feed(&chunk);
                }
                if view.imp().generation.get() == generation {
                    view.imp().stream.replace(None);
                    view.retry_later(&gettext("The console was closed; waiting for the machine"));
                }
            }
        ));
    }

    /// Feeds guest output through the terminal model and redraws the lines it changed.
    pub fn feed(&self, bytes: &[u8]) {
        let imp = self.imp();
        let mut term = imp.terminal.borrow_mut();
        term.feed(bytes);
        let (dropped, dirty) = term.take_changes();
        let buffer = imp.text_view.buffer();
        if dropped > 0 {
            let mut start = buffer.start_iter();
            let mut cut = buffer
                .iter_at_line(dropped as i32)
                .unwrap_or_else(|| buffer.end_iter());
            buffer.delete(&mut start, &mut cut);
        }
        if let Some(first) = dirty {
            // Lines above `first` are unchanged: replace from its start to the end. Deleting
            // from the start of an existing line leaves the newline that ends the one above.
            let before = buffer.line_count().max(0) as usize;
            let mut from = match buffer.iter_at_line(first as i32) {
                Some(iter) if first < before => iter,
                _ => buffer.end_iter(),
            };
            let mut end = buffer.end_iter();
            buffer.delete(&mut from, &mut end);
            for i in first..term.line_count() {
                if i > 0 && (i > first || first >= before) {
                    buffer.insert(&mut buffer.end_iter(), "\n");
                }
                insert_line(&buffer, term.line(i));
            }
        }
        let (row, col) = term.cursor();
        if let Some(mut cursor) = buffer.iter_at_line(row as i32) {
            let len = term.line(row).len();
            cursor.forward_chars(col.min(len) as i32);
            buffer.place_cursor(&cursor);
        }
        drop(term);
        let end = buffer.create_mark(None, &buffer.end_iter(), false);
        imp.text_view.scroll_mark_onscreen(&end);
        buffer.delete_mark(&end);
    }

    /// The text shown, for tests and the screenshot's accessible description.
    pub fn text(&self) -> String {
        let buffer = self.imp().text_view.buffer();
        buffer
            .text(&buffer.start_iter(), &buffer.end_iter(), false)
            .to_string()
    }

    fn setup_tags(&self) {
        let buffer = self.imp().text_view.buffer();
        let table = buffer.tag_table();
        for (i, colour) in PALETTE.iter().enumerate() {
            let tag = gtk::TextTag::new(Some(&format!("fg{i}")));
            tag.set_foreground(Some(colour));
            table.add(&tag);
        }
        let bold = gtk::TextTag::new(Some("bold"));
        bold.set_weight(700);
        table.add(&bold);
    }

    fn setup_keys(&self) {
        let keys = gtk::EventControllerKey::new();
        keys.connect_key_pressed(glib::clone!(
            #[weak(rename_to = view)]
            self,
            #[upgrade_or]
            glib::Propagation::Proceed,
            move |_, key, _, state| {
                let Some(bytes) = key_bytes(key, state) else {
                    return glib::Propagation::Proceed;
                };
                if let Some(stream) = view.imp().stream.borrow_mut().as_mut() {
                    if let Err(e) = stream.write_all(&bytes) {
                        view.set_status(&e.to_string());
                    }
                }
                glib::Propagation::Stop
            }
        ));
        self.imp().text_view.add_controller(keys);
    }
}

/// Appends one line's cells at the end of `buffer`, runs of one style at a time.
fn insert_line(buffer: &gtk::TextBuffer, cells: &[terminal::Cell]) {
    let mut i = 0;
    while i < cells.len() {
        let style = (cells[i].fg, cells[i].bold);
        let run = cells[i..]
            .iter()
            .take_while(|c| (c.fg, c.bold) == style)
            .count();
        let text: String = cells[i..i + run].iter().map(|c| c.ch).collect();
        let mut at = buffer.end_iter();
        let mut tags = Vec::new();
        if let Some(fg) = style.0 {
            tags.push(format!("fg{}", fg.min(15)));
        }
        if style.1 {
            tags.push("bold".to_owned());
        }
        let names: Vec<&str> = tags.iter().map(String::as_str).collect();
        buffer.insert_with_tags_by_name(&mut at, &text, &names);
        i += run;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_become_terminal_bytes() {
        let none = gdk::ModifierType::empty();
        assert_eq!(key_bytes(gdk::Key::Return, none), Some(b"\r".to_vec()));
        assert_eq!(key_bytes(gdk::Key::a, none), Some(b"a".to_vec()));
        assert_eq!(
            key_bytes(gdk::Key::c, gdk::ModifierType::CONTROL_MASK),
            Some(vec![3])
        );
    }
}
