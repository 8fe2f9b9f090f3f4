//! The `adw::Application`: application-wide actions, accelerators and the main window.

use adw::prelude::*;
use adw::subclass::prelude::*;
use gtk::{gio, glib};

use super::config;
use super::window::VireoWindow;
use super::{about, help, preferences::VireoPreferencesWindow};

mod imp {
    use super::*;

    #[derive(Debug, Default)]
    pub struct VireoApplication;

    #[glib::object_subclass]
    impl ObjectSubclass for VireoApplication {
        const NAME: &'static str = "VireoApplication";
        type Type = super::VireoApplication;
        type ParentType = adw::Application;
    }

    impl ObjectImpl for VireoApplication {}

    impl ApplicationImpl for VireoApplication {
        fn startup(&self) {
            self.parent_startup();
            let app = self.obj();
            app.setup_actions();
            app.setup_accels();
        }

        fn activate(&self) {
            self.parent_activate();
            self.obj().main_window().present_when_loaded();
        }

        /// Files opened with Vireo (from the file manager, or `vireo FILE`): each an
        /// operating system image for a new machine.
        fn open(&self, files: &[gio::File], _hint: &str) {
            let window = self.obj().main_window();
            window.present_when_loaded();
            for path in files.iter().filter_map(|f| f.path()) {
                window.open_os_image(&path);
            }
        }
    }

    impl GtkApplicationImpl for VireoApplication {}
    impl AdwApplicationImpl for VireoApplication {}
}

glib::wrapper! {
    pub struct VireoApplication(ObjectSubclass<imp::VireoApplication>)
        @extends adw::Application, gtk::Application, gio::Application,
        @implements gio::ActionGroup, gio::ActionMap;
}

impl Default for VireoApplication {
    fn default() -> Self {
        Self::new()
    }
}

impl VireoApplication {
    pub fn new() -> Self {
        glib::Object::builder()
            .property("application-id", config::APP_ID)
            .property("resource-base-path", config::RESOURCE_BASE)
            .property("flags", gio::ApplicationFlags::HANDLES_OPEN)
            .build()
    }

    /// The main window, created on first use.
    pub fn main_window(&self) -> VireoWindow {
        self.windows()
            .into_iter()
            .find_map(|w| w.downcast::<VireoWindow>().ok())
            .unwrap_or_else(|| VireoWindow::new(self))
    }

    fn setup_actions(&self) {
        let quit = gio::ActionEntry::builder("quit")
            .activate(|app: &Self, _, _| {
                // close() lets each window save its state, which quit() alone would skip.
                for window in app.windows() {
                    window.close();
                }
                app.quit();
            })
            .build();
        let preferences = gio::ActionEntry::builder("preferences")
            .activate(|app: &Self, _, _| {
                let parent = app.main_window();
                VireoPreferencesWindow::new(&parent).present();
            })
            .build();
        let about = gio::ActionEntry::builder("about")
            .activate(|app: &Self, _, _| about::present(&app.main_window()))
            .build();
        let help = gio::ActionEntry::builder("help")
            .activate(|app: &Self, _, _| {
                help::open(
                    config::paths(),
                    help_page(app.active_window().as_ref()),
                    Some(&app.main_window()),
                )
            })
            .build();
        self.add_action_entries([quit, preferences, about, help]);
    }

    fn setup_accels(&self) {
        self.set_accels_for_action("app.quit", &["<Control>q"]);
        self.set_accels_for_action("app.preferences", &["<Control>comma"]);
        self.set_accels_for_action("app.help", &["F1"]);
        self.set_accels_for_action("win.new-machine", &["<Control>n"]);
        self.set_accels_for_action("win.toggle-search", &["<Control>f"]);
        self.set_accels_for_action("win.close", &["<Control>w"]);
        // GtkApplication binds Ctrl+? to win.show-help-overlay once it finds gtk/help-overlay.ui.
        self.set_accels_for_action("win.show-help-overlay", &["<Control>question"]);
    }
}

/// The help page about the window F1 was pressed in (`None`: the help's index).
fn help_page(window: Option<&gtk::Window>) -> Option<&'static str> {
    let window = window?;
    if window.is::<VireoPreferencesWindow>() {
        Some("preferences")
    } else if window.is::<super::console_window::VireoConsoleWindow>() {
        Some("console")
    } else if window.is::<super::details_window::VireoDetailsWindow>() {
        Some("details")
    } else if let Some(wizard) = window.downcast_ref::<super::new_machine::VireoNewMachineWindow>()
    {
        Some(if wizard.installs_an_image() {
            "install-os"
        } else {
            "create-machine"
        })
    } else {
        None
    }
}
