//! One machine as an item of the machines view's list model: what a card shows (name, title,
//! state, screen picture), kept apart from the card widgets, which the view recycles.

use gtk::prelude::*;
use gtk::subclass::prelude::*;
use gtk::{gdk, glib};
use std::cell::{Cell, RefCell};
use std::sync::OnceLock;
use vireo_driver::{DomainState, MachineInfo};

mod imp {
    use super::*;
    use glib::subclass::Signal;

    #[derive(Debug, Default)]
    pub struct VireoMachine {
        pub name: RefCell<String>,
        /// The name lowercased once, for sorting and searching.
        pub key: RefCell<String>,
        pub title: RefCell<Option<String>>,
        pub state: Cell<Option<DomainState>>,
        /// Installing from a CD-ROM until the installer's first reboot.
        pub installing: Cell<bool>,
        pub thumbnail: RefCell<Option<gdk::Texture>>,
    }

    #[glib::object_subclass]
    impl ObjectSubclass for VireoMachine {
        const NAME: &'static str = "VireoMachine";
        type Type = super::VireoMachine;
    }

    impl ObjectImpl for VireoMachine {
        fn signals() -> &'static [Signal] {
            static SIGNALS: OnceLock<Vec<Signal>> = OnceLock::new();
            // One signal for any change: a bound card re-reads everything it shows.
            SIGNALS.get_or_init(|| vec![Signal::builder("changed").build()])
        }
    }
}

glib::wrapper! {
    pub struct VireoMachine(ObjectSubclass<imp::VireoMachine>);
}

impl VireoMachine {
    pub fn new(info: &MachineInfo) -> Self {
        let machine: Self = glib::Object::new();
        let imp = machine.imp();
        imp.name.replace(info.name.clone());
        imp.key.replace(info.name.to_lowercase());
        machine.set_info(info);
        machine
    }

    pub fn name(&self) -> String {
        self.imp().name.borrow().clone()
    }

    /// The lowercased name: the view's sort and search key.
    pub fn key(&self) -> std::cell::Ref<'_, String> {
        self.imp().key.borrow()
    }

    /// What the card's heading shows: the title, else the name.
    pub fn label(&self) -> String {
        let imp = self.imp();
        imp.title
            .borrow()
            .clone()
            .unwrap_or_else(|| imp.name.borrow().clone())
    }

    pub fn state(&self) -> Option<DomainState> {
        self.imp().state.get()
    }

    pub fn installing(&self) -> bool {
        self.imp().installing.get()
    }

    pub fn thumbnail(&self) -> Option<gdk::Texture> {
        self.imp().thumbnail.borrow().clone()
    }

    /// Takes the driver's newer view of the machine; a stopped machine loses its picture.
    pub fn set_info(&self, info: &MachineInfo) {
        let imp = self.imp();
        let unchanged = imp.title.borrow().as_deref() == info.title.as_deref()
            && imp.state.get() == Some(info.state)
            && imp.installing.get() == info.installing;
        if unchanged {
            return;
        }
        imp.title.replace(info.title.clone());
        imp.state.set(Some(info.state));
        imp.installing.set(info.installing);
        if !info.state.is_active() || info.state == DomainState::Crashed {
            imp.thumbnail.replace(None);
        }
        self.emit_by_name::<()>("changed", &[]);
    }

    /// A new picture of the machine's screen; `None` goes back to the icon.
    pub fn set_thumbnail(&self, texture: Option<&gdk::Texture>) {
        self.imp().thumbnail.replace(texture.cloned());
        self.emit_by_name::<()>("changed", &[]);
    }

    pub fn connect_changed<F: Fn(&Self) + 'static>(&self, f: F) -> glib::SignalHandlerId {
        self.connect_local("changed", false, move |values| {
            if let Some(machine) = values.first().and_then(|v| v.get::<Self>().ok()) {
                f(&machine);
            }
            None
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vireo_driver::Reason;

    fn info(name: &str, title: Option<&str>, state: DomainState) -> MachineInfo {
        MachineInfo {
            name: name.to_owned(),
            uuid: None,
            title: title.map(str::to_owned),
            state,
            reason: Reason::Unknown,
            persistent: true,
            autostart: false,
            memory_kib: 0,
            vcpus: 1,
            pid: None,
            vnc_port: None,
            restarts: 0,
            message: None,
            os: None,
            installing: false,
        }
    }

    #[test]
    fn changes_are_signalled_once_and_only_when_something_changed() {
        let m = VireoMachine::new(&info("Alpha", None, DomainState::Shutoff));
        assert_eq!(&*m.key(), "alpha");
        assert_eq!(m.label(), "Alpha");
        let count = std::rc::Rc::new(Cell::new(0));
        let seen = count.clone();
        m.connect_changed(move |_| seen.set(seen.get() + 1));
        m.set_info(&info("Alpha", None, DomainState::Shutoff));
        assert_eq!(count.get(), 0, "an unchanged state was signalled");
        m.set_info(&info("Alpha", Some("The first"), DomainState::Running));
        assert_eq!(count.get(), 1);
        assert_eq!(m.label(), "The first");
        assert_eq!(m.state(), Some(DomainState::Running));
    }
}
