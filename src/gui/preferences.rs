//! The Preferences window: defaults for new machines and for the console.

use adw::prelude::*;
use adw::subclass::prelude::*;
use gtk::{gio, glib, CompositeTemplate};
use std::cell::OnceCell;

use super::config;

/// Values of the `console-scaling` key in the order of the combo row's items.
const SCALING_MODES: [&str; 2] = ["fit", "actual"];

mod imp {
    use super::*;

    #[derive(Debug, Default, CompositeTemplate)]
    #[template(resource = "/org/vireo/Vireo/ui/preferences.ui")]
    pub struct VireoPreferencesWindow {
        #[template_child]
        pub memory_adjustment: TemplateChild<gtk::Adjustment>,
        #[template_child]
        pub vcpus_adjustment: TemplateChild<gtk::Adjustment>,
        #[template_child]
        pub disk_adjustment: TemplateChild<gtk::Adjustment>,
        #[template_child]
        pub scaling_row: TemplateChild<adw::ComboRow>,
        #[template_child]
        pub aspect_switch: TemplateChild<gtk::Switch>,
        #[template_child]
        pub aspect_row: TemplateChild<adw::ActionRow>,
        #[template_child]
        pub thumbnails_switch: TemplateChild<gtk::Switch>,
        pub settings: OnceCell<gio::Settings>,
    }

    #[glib::object_subclass]
    impl ObjectSubclass for VireoPreferencesWindow {
        const NAME: &'static str = "VireoPreferencesWindow";
        type Type = super::VireoPreferencesWindow;
        type ParentType = adw::PreferencesWindow;

        fn class_init(klass: &mut Self::Class) {
            klass.bind_template();
        }

        fn instance_init(obj: &glib::subclass::InitializingObject<Self>) {
            obj.init_template();
        }
    }

    impl ObjectImpl for VireoPreferencesWindow {
        fn constructed(&self) {
            self.parent_constructed();
            self.obj().bind_settings();
        }
    }

    impl WidgetImpl for VireoPreferencesWindow {}
    impl WindowImpl for VireoPreferencesWindow {}
    impl AdwWindowImpl for VireoPreferencesWindow {}
    impl PreferencesWindowImpl for VireoPreferencesWindow {}
}

glib::wrapper! {
    pub struct VireoPreferencesWindow(ObjectSubclass<imp::VireoPreferencesWindow>)
        @extends adw::PreferencesWindow, adw::Window, gtk::Window, gtk::Widget,
        @implements gtk::Buildable, gtk::ConstraintTarget, gtk::Native,
                    gtk::Root, gtk::ShortcutManager;
}

impl VireoPreferencesWindow {
    pub fn new(parent: &impl IsA<gtk::Window>) -> Self {
        // The application too, so that its shortcuts (F1 for this window's help) work here.
        glib::Object::builder()
            .property("transient-for", parent)
            .property("application", parent.as_ref().application())
            .property("destroy-with-parent", true)
            .build()
    }

    fn bind_settings(&self) {
        let imp = self.imp();
        let settings = imp
            .settings
            .get_or_init(|| gio::Settings::new(config::APP_ID));
        settings
            .bind("default-memory-mib", &*imp.memory_adjustment, "value")
            .build();
        settings
            .bind("default-vcpus", &*imp.vcpus_adjustment, "value")
            .build();
        settings
            .bind("default-disk-gib", &*imp.disk_adjustment, "value")
            .build();
        settings
            .bind("show-thumbnails", &*imp.thumbnails_switch, "active")
            .build();
        settings
            .bind("console-keep-aspect", &*imp.aspect_switch, "active")
            .build();
        // The aspect ratio only matters when the screen is scaled to the window.
        imp.aspect_row
            .set_sensitive(settings.string("console-scaling") == "fit");
        settings.connect_changed(
            Some("console-scaling"),
            glib::clone!(
                #[weak(rename_to = window)]
                self,
                move |settings, _| {
                    let fit = settings.string("console-scaling") == "fit";
                    window.imp().aspect_row.set_sensitive(fit);
                    let index = SCALING_MODES
                        .iter()
                        .position(|m| *m == settings.string("console-scaling").as_str())
                        .unwrap_or(0) as u32;
                    if window.imp().scaling_row.selected() != index {
                        window.imp().scaling_row.set_selected(index);
                    }
                }
            ),
        );

        let current = settings.string("console-scaling");
        let index = SCALING_MODES
            .iter()
            .position(|m| *m == current.as_str())
            .unwrap_or(0);
        imp.scaling_row.set_selected(index as u32);
        imp.scaling_row.connect_selected_notify(glib::clone!(
            #[strong]
            settings,
            move |row| {
                if let Some(mode) = SCALING_MODES.get(row.selected() as usize) {
                    if let Err(err) = settings.set_string("console-scaling", mode) {
                        eprintln!("vireo: could not save the console scaling: {err}");
                    }
                }
            }
        ));
    }
}
