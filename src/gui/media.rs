//! The disc in a machine's CD-ROM drives, for the details and the console windows: the
//! actions `cdrom-choose(target)`, `cdrom-insert((target, path))` (which replaces a disc that
//! is in) and `cdrom-eject(target)`, the image chooser, and the question when the guest has
//! locked the tray. Every rule (which drive, which file, what a running machine allows) is the
//! driver's media use case; this module only picks the scope: a running machine changes now
//! and in its definition, one that is off in its definition.

use adw::prelude::*;
use gettextrs::gettext;
use gtk::{gio, glib};
use std::cell::RefCell;
use std::path::PathBuf;
use std::rc::Rc;
use vireo_driver::usecase::media as api;
use vireo_driver::Connection;

use super::backend::Backend;
use super::i18n::gettext_f;
pub use api::DriveEntry;

/// The MIME types of operating system images (shared-mime-info's names for ISO, qcow2 and raw
/// disk images): what the wizard's chooser shows and what the desktop file says Vireo opens.
pub const OS_IMAGE_TYPES: [&str; 4] = [
    "application/x-cd-image",
    "application/x-iso9660-image",
    "application/x-qemu-disk",
    "application/x-raw-disk-image",
];

/// A window that offers the media actions.
pub trait MediaHost: IsA<gtk::Window> {
    fn media_backend(&self) -> Backend;
    /// The machine whose drives the actions change (`None`: a console of a server by address).
    fn media_machine(&self) -> Option<String>;
    /// A change was refused: the driver's text (the drives may have changed all the same,
    /// for example by the guest).
    fn media_failed(&self, message: &str);
    /// A change was made: show the drives again.
    fn media_changed(&self);
}

/// The CD-ROM drives of `name`: as it runs now when `active`, else as defined.
pub fn cdroms(
    c: &Connection,
    name: &str,
    active: bool,
) -> Result<Vec<DriveEntry>, api::MediaError> {
    let all = api::drives(c, name, !active)?;
    Ok(all.into_iter().filter(|d| d.device == "cdrom").collect())
}

/// The file name of a drive's disc, or "No disc".
pub fn disc_label(drive: &DriveEntry) -> String {
    drive
        .source
        .as_ref()
        .and_then(|p| p.file_name())
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_else(|| gettext("No disc"))
}

/// Adds the media actions of `window` to `map` (its own action map or a group of its own).
pub fn add_actions<W: MediaHost>(window: &W, map: &impl IsA<gio::ActionMap>) {
    let weak = window.downgrade();
    let choose = gio::SimpleAction::new("cdrom-choose", Some(glib::VariantTy::STRING));
    choose.connect_activate(glib::clone!(
        #[strong]
        weak,
        move |_, param| {
            if let (Some(window), Some(target)) =
                (weak.upgrade(), param.and_then(|p| p.get::<String>()))
            {
                choose_image(&window, target);
            }
        }
    ));
    // What the chooser does with the chosen file; also reachable without a chooser.
    let insert = gio::SimpleAction::new(
        "cdrom-insert",
        Some(glib::VariantTy::new("(ss)").expect("valid type string")),
    );
    insert.connect_activate(glib::clone!(
        #[strong]
        weak,
        move |_, param| {
            if let (Some(window), Some((target, path))) = (
                weak.upgrade(),
                param.and_then(|p| p.get::<(String, String)>()),
            ) {
                change(
                    &window,
                    target,
                    api::MediaAction::Update(Some(PathBuf::from(path))),
                    false,
                );
            }
        }
    ));
    let eject = gio::SimpleAction::new("cdrom-eject", Some(glib::VariantTy::STRING));
    eject.connect_activate(move |_, param| {
        if let (Some(window), Some(target)) =
            (weak.upgrade(), param.and_then(|p| p.get::<String>()))
        {
            change(&window, target, api::MediaAction::Eject, false);
        }
    });
    let map = map.as_ref();
    map.add_action(&choose);
    map.add_action(&insert);
    map.add_action(&eject);
}

/// Opens the chooser for a CD or DVD image; the chosen file goes into `target`.
pub fn choose_image<W: MediaHost>(window: &W, target: String) {
    let chooser = gtk::FileChooserNative::new(
        Some(&gettext("Choose a CD or DVD Image")),
        Some(window),
        gtk::FileChooserAction::Open,
        Some(&gettext("_Choose")),
        Some(&gettext("_Cancel")),
    );
    chooser.set_modal(true);
    let images = gtk::FileFilter::new();
    images.set_name(Some(&gettext("CD and DVD Images")));
    images.add_mime_type("application/x-cd-image");
    images.add_suffix("iso");
    chooser.add_filter(&images);
    let all = gtk::FileFilter::new();
    all.set_name(Some(&gettext("All Files")));
    all.add_pattern("*");
    chooser.add_filter(&all);
    chooser.set_filter(&images);
    // GTK does not keep a native dialog alive: the handler holds it until it answers.
    let keep: Rc<RefCell<Option<gtk::FileChooserNative>>> = Rc::new(RefCell::new(None));
    let weak = window.downgrade();
    chooser.connect_response(glib::clone!(
        #[strong]
        keep,
        move |chooser, response| {
            if response == gtk::ResponseType::Accept {
                let path = chooser.file().and_then(|f| f.path());
                if let (Some(window), Some(path)) = (weak.upgrade(), path) {
                    change(
                        &window,
                        target.clone(),
                        api::MediaAction::Update(Some(path)),
                        false,
                    );
                }
            }
            keep.replace(None);
        }
    ));
    chooser.show();
    keep.replace(Some(chooser));
}

/// Asks the driver for the change; only the guest's lock on the tray asks the user whether to
/// force it, every other refusal is shown as it is.
fn change<W: MediaHost>(window: &W, target: String, action: api::MediaAction, force: bool) {
    let Some(name) = window.media_machine() else {
        return;
    };
    let backend = window.media_backend();
    let weak = window.downgrade();
    glib::spawn_future_local(async move {
        let (t, a) = (target.clone(), action.clone());
        let result = backend
            .call(move |c| {
                let info = c.info(&name)?;
                let scope = api::MediaScope {
                    live: info.state.is_active(),
                    config: info.persistent,
                };
                Ok(api::change_media(c, &name, &t, a, force, scope))
            })
            .await;
        let Some(window) = weak.upgrade() else {
            return;
        };
        match result {
            Ok(Ok(())) => window.media_changed(),
            Ok(Err(api::MediaError::Locked { .. })) if !force => ask_force(&window, target, action),
            Ok(Err(e)) => window.media_failed(&e.to_string()),
            Err(message) => window.media_failed(&message),
        }
    });
}

/// The guest keeps the tray shut (it reads the disc, or an installer holds it): tell what
/// forcing it risks and let the user decide.
fn ask_force<W: MediaHost>(window: &W, target: String, action: api::MediaAction) {
    let ejecting = matches!(action, api::MediaAction::Eject);
    let dialog = adw::MessageDialog::new(
        Some(window),
        Some(&gettext("The Tray Is Locked")),
        Some(&gettext_f(
            "The guest locked the tray of drive {target}, usually because it is reading the disc. Taking the disc away now may make programs in the guest fail.",
            &[("target", &target)],
        )),
    );
    dialog.add_response("cancel", &gettext("_Cancel"));
    let force = if ejecting {
        gettext("_Eject Anyway")
    } else {
        gettext("_Change Anyway")
    };
    dialog.add_response("force", &force);
    dialog.set_response_appearance("force", adw::ResponseAppearance::Destructive);
    dialog.set_default_response(Some("cancel"));
    dialog.set_close_response("cancel");
    let weak = window.downgrade();
    dialog.connect_response(None, move |_, response| match weak.upgrade() {
        Some(window) if response == "force" => {
            change(&window, target.clone(), action.clone(), true)
        }
        _ => {}
    });
    dialog.present();
}
