//! The console's CD and DVD menu: for a running machine with CD-ROM drives, "Change CD…" and
//! "Eject CD" for each drive (a section per drive, named by its target, when there are
//! several). The menu is read again whenever it opens, so it shows what the guest did too.

use adw::prelude::*;
use adw::subclass::prelude::*;
use gettextrs::gettext;
use gtk::{gio, glib};

use super::backend::Backend;
use super::console_window::VireoConsoleWindow;
use super::i18n::gettext_f;
use super::media::{self, disc_label, DriveEntry, MediaHost};

impl MediaHost for VireoConsoleWindow {
    fn media_backend(&self) -> Backend {
        self.imp().backend.borrow().clone().unwrap_or_default()
    }

    fn media_machine(&self) -> Option<String> {
        self.imp().machine.borrow().clone()
    }

    fn media_failed(&self, message: &str) {
        self.toast(message);
        refresh(self);
    }

    fn media_changed(&self) {
        refresh(self);
    }
}

/// Adds the media actions to the console's action group and gives the button its menu.
pub fn setup(window: &VireoConsoleWindow, group: &gio::SimpleActionGroup) {
    media::add_actions(window, group);
    let button = &window.imp().cdrom_button;
    button.set_menu_model(Some(&gio::Menu::new()));
    if let Some(popover) = button.popover() {
        popover.connect_show(glib::clone!(
            #[weak]
            window,
            move |_| refresh(&window)
        ));
    }
}

/// Reads the machine's drives and shows the button (with a menu for them) only if it runs
/// and has one.
pub fn refresh(window: &VireoConsoleWindow) {
    let Some(name) = window.media_machine() else {
        window.imp().cdrom_button.set_visible(false);
        return;
    };
    let backend = window.media_backend();
    glib::spawn_future_local(glib::clone!(
        #[weak]
        window,
        async move {
            // Off, or between a reboot's two helpers: no drives to offer.
            let drives = backend
                .call(move |c| Ok(media::cdroms(c, &name, true).unwrap_or_default()))
                .await
                .unwrap_or_default();
            fill(&window, &drives);
        }
    ));
}

fn fill(window: &VireoConsoleWindow, drives: &[DriveEntry]) {
    let button = &window.imp().cdrom_button;
    button.set_visible(!drives.is_empty());
    let Some(menu) = button.menu_model().and_downcast::<gio::Menu>() else {
        return;
    };
    menu.remove_all();
    for drive in drives {
        let section = gio::Menu::new();
        let target = drive.target.to_variant();
        let change = gio::MenuItem::new(Some(&gettext("_Change CD…")), None);
        change.set_action_and_target_value(Some("console.cdrom-choose"), Some(&target));
        section.append_item(&change);
        if drive.source.is_some() {
            let eject = gio::MenuItem::new(Some(&gettext("_Eject CD")), None);
            eject.set_action_and_target_value(Some("console.cdrom-eject"), Some(&target));
            section.append_item(&eject);
        }
        // The disc in the drive heads its section; with several drives, the drive's name too.
        let label = if drives.len() > 1 {
            gettext_f(
                "{target}: {disc}",
                &[("target", &drive.target), ("disc", &disc_label(drive))],
            )
        } else {
            disc_label(drive)
        };
        menu.append_section(Some(&label), &section);
    }
}
