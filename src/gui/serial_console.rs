//! A machine's serial console as a simple terminal: the driver's console socket is read on a
//! thread and its bytes appended to a text view; keys typed into the view go to the guest.
//! (Escape sequences are dropped, not interpreted: enough for a shell and boot messages.)

use adw::subclass::prelude::*;
use gettextrs::gettext;
use gtk::prelude::*;
use gtk::{gdk, glib, CompositeTemplate};
use std::cell::RefCell;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;

use super::backend::Backend;
use super::i18n::gettext_f;

/// Text view contents are capped so a chatty guest cannot grow memory without bound.
const MAX_CHARS: i32 = 200_000;

mod imp {
    use super::*;

    #[derive(Debug, Default, CompositeTemplate)]
    #[template(resource = "/org/vireo/Vireo/ui/serial-console.ui")]
    pub struct VireoSerialConsole {
        #[template_child]
        pub window_title: TemplateChild<adw::WindowTitle>,
        #[template_child]
        pub scroller: TemplateChild<gtk::ScrolledWindow>,
        #[template_child]
        pub text_view: TemplateChild<gtk::TextView>,
        #[template_child]
        pub status_label: TemplateChild<gtk::Label>,
        pub stream: RefCell<Option<UnixStream>>,
        /// Bytes of an incomplete UTF-8 sequence or escape sequence from the last read.
        pub pending: RefCell<Vec<u8>>,
    }

    #[glib::object_subclass]
    impl ObjectSubclass for VireoSerialConsole {
        const NAME: &'static str = "VireoSerialConsole";
        type Type = super::VireoSerialConsole;
        type ParentType = adw::Window;

        fn class_init(klass: &mut Self::Class) {
            klass.bind_template();
        }

        fn instance_init(obj: &glib::subclass::InitializingObject<Self>) {
            obj.init_template();
        }
    }

    impl ObjectImpl for VireoSerialConsole {}
    impl WidgetImpl for VireoSerialConsole {}

    impl WindowImpl for VireoSerialConsole {
        fn close_request(&self) -> glib::Propagation {
            if let Some(stream) = self.stream.take() {
                let _ = stream.shutdown(std::net::Shutdown::Both);
            }
            self.parent_close_request()
        }
    }

    impl AdwWindowImpl for VireoSerialConsole {}
}

glib::wrapper! {
    pub struct VireoSerialConsole(ObjectSubclass<imp::VireoSerialConsole>)
        @extends adw::Window, gtk::Window, gtk::Widget,
        @implements gtk::Buildable, gtk::ConstraintTarget, gtk::Native, gtk::Root,
                    gtk::ShortcutManager;
}

/// Printable text from terminal output: CSI/OSC escape sequences and most control bytes are
/// dropped; CR before LF is dropped. Returns the text and the bytes to keep for next time.
pub fn printable(bytes: &[u8]) -> (String, Vec<u8>) {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            0x1b => {
                // ESC [ ... final byte 0x40..0x7e; ESC ] ... BEL; other ESC x: two bytes.
                match bytes.get(i + 1) {
                    None => return (finish(out), bytes[i..].to_vec()),
                    Some(b'[') => match bytes[i + 2..]
                        .iter()
                        .position(|b| (0x40..=0x7e).contains(b))
                    {
                        Some(end) => i += end + 3,
                        None => return (finish(out), bytes[i..].to_vec()),
                    },
                    Some(b']') => match bytes[i + 2..].iter().position(|&b| b == 0x07) {
                        Some(end) => i += end + 3,
                        None => return (finish(out), bytes[i..].to_vec()),
                    },
                    Some(_) => i += 2,
                }
            }
            b'\n' | b'\t' => {
                out.push(bytes[i]);
                i += 1;
            }
            b if b < 0x20 || b == 0x7f => i += 1,
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    // Keep an incomplete UTF-8 sequence at the end for the next read.
    let valid = match std::str::from_utf8(&out) {
        Ok(_) => out.len(),
        Err(e) if e.error_len().is_none() => e.valid_up_to(),
        Err(_) => out.len(),
    };
    let rest = out.split_off(valid);
    (finish(out), rest)
}

fn finish(bytes: Vec<u8>) -> String {
    String::from_utf8_lossy(&bytes).into_owned()
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
    pub fn new(parent: &impl IsA<gtk::Window>, backend: Backend, machine: &str) -> Self {
        let window: Self = glib::Object::builder().build();
        if let Some(app) = parent.as_ref().application() {
            window.set_application(Some(&app));
        }
        window.set_title(Some(&gettext_f(
            "{name} – Serial Console",
            &[("name", machine)],
        )));
        window.imp().window_title.set_title(machine);
        window.setup_keys();
        window.attach(backend, machine.to_owned());
        window
    }

    fn set_status(&self, text: &str) {
        let label = &self.imp().status_label;
        label.set_label(text);
        label.set_visible(!text.is_empty());
    }

    fn attach(&self, backend: Backend, machine: String) {
        glib::spawn_future_local(glib::clone!(
            #[weak(rename_to = window)]
            self,
            async move {
                let stream = backend
                    .call(move |c| {
                        let path = c.console_socket(&machine)?;
                        UnixStream::connect(&path)
                            .map_err(|source| vireo_driver::DriverError::Io { path, source })
                    })
                    .await;
                match stream {
                    Ok(stream) => window.read_from(stream),
                    Err(message) => window.set_status(&message),
                }
            }
        ));
    }

    fn read_from(&self, stream: UnixStream) {
        let reader = match stream.try_clone() {
            Ok(r) => r,
            Err(e) => return self.set_status(&e.to_string()),
        };
        self.imp().stream.replace(Some(stream));
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
            return self.set_status(&e.to_string());
        }
        self.imp().text_view.grab_focus();
        glib::spawn_future_local(glib::clone!(
            #[weak(rename_to = window)]
            self,
            async move {
                while let Ok(bytes) = rx.recv().await {
                    window.append(&bytes);
                }
                window.set_status(&gettext("The console was closed"));
            }
        ));
    }

    fn append(&self, bytes: &[u8]) {
        let imp = self.imp();
        let mut data = imp.pending.take();
        data.extend_from_slice(bytes);
        let (text, rest) = printable(&data);
        imp.pending.replace(rest);
        let buffer = imp.text_view.buffer();
        buffer.insert(&mut buffer.end_iter(), &text);
        let excess = buffer.char_count() - MAX_CHARS;
        if excess > 0 {
            let mut start = buffer.start_iter();
            let mut cut = buffer.iter_at_offset(excess);
            buffer.delete(&mut start, &mut cut);
        }
        let end = buffer.create_mark(None, &buffer.end_iter(), false);
        imp.text_view.scroll_mark_onscreen(&end);
        buffer.delete_mark(&end);
    }

    fn setup_keys(&self) {
        let keys = gtk::EventControllerKey::new();
        keys.connect_key_pressed(glib::clone!(
            #[weak(rename_to = window)]
            self,
            #[upgrade_or]
            glib::Propagation::Proceed,
            move |_, key, _, state| {
                let Some(bytes) = key_bytes(key, state) else {
                    return glib::Propagation::Proceed;
                };
                if let Some(stream) = window.imp().stream.borrow_mut().as_mut() {
                    if let Err(e) = stream.write_all(&bytes) {
                        window.set_status(&e.to_string());
                    }
                }
                glib::Propagation::Stop
            }
        ));
        self.imp().text_view.add_controller(keys);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_sequences_and_carriage_returns_are_dropped() {
        let (text, rest) = printable(b"\x1b[1;32mok\x1b[0m\r\nnext\x1b[");
        assert_eq!(text, "ok\nnext");
        assert_eq!(rest, b"\x1b[");
        let (text, rest) = printable(&[b'a', 0xc3]);
        assert_eq!((text.as_str(), rest), ("a", vec![0xc3]));
    }

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
