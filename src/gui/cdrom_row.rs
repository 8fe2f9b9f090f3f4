//! One CD-ROM drive in the details window: its disc's file name (or "No disc"), how the
//! machine sees the drive, "Choose Image…", "Eject" (only with a disc in) and the removal of
//! the drive from the definition. The buttons activate the window's media actions
//! ([`super::media`]) for this drive.

use adw::prelude::*;
use adw::subclass::prelude::*;
use gtk::{glib, CompositeTemplate};

use super::media::{disc_label, DriveEntry};

mod imp {
    use super::*;

    #[derive(Debug, Default, CompositeTemplate)]
    #[template(resource = "/org/vireo/Vireo/ui/cdrom-row.ui")]
    pub struct VireoCdromRow {
        #[template_child]
        pub choose_button: TemplateChild<gtk::Button>,
        #[template_child]
        pub eject_button: TemplateChild<gtk::Button>,
        #[template_child]
        pub remove_button: TemplateChild<gtk::Button>,
    }

    #[glib::object_subclass]
    impl ObjectSubclass for VireoCdromRow {
        const NAME: &'static str = "VireoCdromRow";
        type Type = super::VireoCdromRow;
        type ParentType = adw::ActionRow;

        fn class_init(klass: &mut Self::Class) {
            klass.bind_template();
        }

        fn instance_init(obj: &glib::subclass::InitializingObject<Self>) {
            obj.init_template();
        }
    }

    impl ObjectImpl for VireoCdromRow {}
    impl WidgetImpl for VireoCdromRow {}
    impl ListBoxRowImpl for VireoCdromRow {}
    impl PreferencesRowImpl for VireoCdromRow {}
    impl ActionRowImpl for VireoCdromRow {}
}

glib::wrapper! {
    pub struct VireoCdromRow(ObjectSubclass<imp::VireoCdromRow>)
        @extends adw::ActionRow, adw::PreferencesRow, gtk::ListBoxRow, gtk::Widget,
        @implements gtk::Actionable, gtk::Buildable, gtk::ConstraintTarget;
}

impl VireoCdromRow {
    /// The row of `drive`; `stored` is its place among the disks of the stored definition
    /// (what `win.remove-disk` takes), if it is there.
    pub fn new(drive: &DriveEntry, stored: Option<usize>) -> Self {
        let row: Self = glib::Object::new();
        let imp = row.imp();
        row.set_title(&glib::markup_escape_text(&disc_label(drive)));
        // The drive first: a long path wraps after it.
        let mut facts = vec![format!("{} {}", drive.bus, drive.target).trim().to_owned()];
        if let Some(path) = &drive.source {
            facts.push(path.display().to_string());
        }
        row.set_subtitle(&glib::markup_escape_text(&facts.join(" · ")));
        let target = drive.target.to_variant();
        imp.choose_button.set_action_target_value(Some(&target));
        // An empty drive has nothing to eject; the button gets the action only with a disc in
        // (an action would make it sensitive again).
        if drive.source.is_some() {
            imp.eject_button.set_action_name(Some("win.cdrom-eject"));
            imp.eject_button.set_action_target_value(Some(&target));
        } else {
            imp.eject_button.set_sensitive(false);
        }
        if let Some(index) = stored.and_then(|i| i32::try_from(i).ok()) {
            imp.remove_button.set_action_name(Some("win.remove-disk"));
            imp.remove_button
                .set_action_target_value(Some(&index.to_variant()));
            imp.remove_button.set_visible(true);
        }
        row
    }
}
