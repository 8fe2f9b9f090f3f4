//! The wizard's operating system image source: the chooser, the detection of the system on
//! the image (off the main thread) and the one page it fills.

use adw::prelude::*;
use adw::subclass::prelude::*;
use gettextrs::gettext;
use gtk::glib;
use std::path::Path;

use super::{free_name, Source, VireoNewMachineWindow};
use crate::gui::wizard_xml::{detect_image, ImageProfile};

impl VireoNewMachineWindow {
    /// Asks for an operating system image (ISO or disk image) and goes on with it.
    pub(super) fn choose_os_image(&self) {
        let filter = gtk::FileFilter::new();
        filter.set_name(Some(&gettext("ISO and Disk Images")));
        for mime in crate::gui::media::OS_IMAGE_TYPES {
            filter.add_mime_type(mime);
        }
        for pattern in ["*.iso", "*.ISO", "*.qcow2", "*.img", "*.raw"] {
            filter.add_pattern(pattern);
        }
        let weak = self.downgrade();
        self.choose_file(
            &gettext("Choose an Operating System Image"),
            &[filter],
            move |path| {
                if let Some(window) = weak.upgrade() {
                    window.set_os_image(&path);
                }
            },
        );
    }

    /// The operating system image source with `image`: its page, pre-filled once the system on
    /// it is detected (also how a dropped or opened file reaches the wizard).
    pub fn set_os_image(&self, image: &Path) {
        let imp = self.imp();
        imp.image.replace(Some(image.to_owned()));
        imp.detected.replace(None);
        let generation = imp.detections.get() + 1;
        imp.detections.set(generation);
        self.choose_source(Source::OsImage);
        imp.os_row.set_title(&gettext("Detecting…"));
        imp.os_row
            .set_subtitle(&glib::markup_escape_text(&image.to_string_lossy()));
        let path = image.to_owned();
        let backend = self.backend();
        self.set_busy(true);
        glib::spawn_future_local(glib::clone!(
            #[weak(rename_to = window)]
            self,
            async move {
                let found = backend.call(move |_| Ok(detect_image(&path))).await;
                if window.imp().detections.get() != generation {
                    return;
                }
                window.set_busy(false);
                match found {
                    Ok(p) => window.show_detected(p),
                    Err(message) => window.show_field_error("", &message),
                }
            }
        ));
    }

    /// Fills the form from the system detected on the image.
    fn show_detected(&self, found: ImageProfile) {
        let imp = self.imp();
        let p = &found.profile;
        let file = imp
            .image
            .borrow()
            .as_deref()
            .and_then(Path::file_name)
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let (title, what) = match (&p.os_name, found.iso) {
            (Some(name), _) => (
                name.clone(),
                if found.live {
                    gettext("A live system: it runs from the disc, or installs onto the new disk")
                } else {
                    gettext("An installer: it installs the system onto the new disk")
                },
            ),
            (None, true) => (
                gettext("Unknown System"),
                gettext("Vireo does not know this disc: the machine gets a size that suits most systems. Change it if this one needs more."),
            ),
            (None, false) => (
                gettext("Disk Image"),
                gettext("It boots from its own boot loader, as it is"),
            ),
        };
        if let Some(note) = &found.note {
            eprintln!("vireo: {file}: {note}");
        }
        // For tests and for timing detection: when the form is filled.
        if std::env::var_os("VIREO_TRACE_WIZARD").is_some() {
            eprintln!(
                "vireo-trace: detected {file} os={}",
                p.os_id.as_deref().unwrap_or("generic")
            );
        }
        imp.os_row.set_title(&glib::markup_escape_text(&title));
        imp.os_row
            .set_subtitle(&glib::markup_escape_text(&format!("{file}\n{what}")));
        imp.os_icon.set_icon_name(Some(if found.iso {
            "media-optical-symbolic"
        } else {
            "drive-harddisk-symbolic"
        }));
        let base = p.short_id.as_deref().unwrap_or("machine");
        imp.name_entry
            .set_text(&free_name(base, &imp.taken.borrow()));
        imp.memory_spin.set_value(p.memory_mib as f64);
        imp.vcpus_spin.set_value(f64::from(p.vcpus));
        imp.disk_spin
            .set_value(p.disk_bytes.div_ceil(1 << 30) as f64);
        imp.firmware_row.set_selected(u32::from(p.uefi));
        imp.detected.replace(Some(found));
    }

    /// Whether the wizard shows an operating system image's page (its help is another).
    pub fn installs_an_image(&self) -> bool {
        let imp = self.imp();
        imp.source.get() == Source::OsImage
            && imp.stack.visible_child_name().as_deref() == Some("details")
    }

    /// Makes the operating system image's machine, once its form is filled.
    pub(super) fn create_os_image(&self) {
        let imp = self.imp();
        if imp.detected.borrow().is_none() {
            return;
        }
        imp.plan.replace(None);
        self.create();
    }
}
