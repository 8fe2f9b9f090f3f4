//! The main window: header bar, search bar and the machine area (for now its empty states).
//!
//! With `VIREO_TRACE_STARTUP=1` in the environment, the window prints `vireo-trace:
//! first-frame` on stderr once its first frame is painted, and `vireo-trace: machines-frame N`
//! once the first frame showing the N machines of the driver's list is painted (the start-up
//! benchmark reads these lines).

use adw::prelude::*;
use adw::subclass::prelude::*;
use gtk::{gio, glib, CompositeTemplate};
use std::cell::{OnceCell, RefCell};
use std::rc::Rc;

use super::backend::Backend;
use super::config;
use super::machines_view::VireoMachinesView;

/// Shown when no machine exists yet.
const PAGE_EMPTY: &str = "empty";
/// Shown when a search matches nothing.
const PAGE_NO_RESULTS: &str = "no-results";
/// The machines themselves.
const PAGE_MACHINES: &str = "machines";

mod imp {
    use super::*;

    #[derive(Debug, Default, CompositeTemplate)]
    #[template(resource = "/org/vireo/Vireo/ui/window.ui")]
    pub struct VireoWindow {
        #[template_child]
        pub toast_overlay: TemplateChild<adw::ToastOverlay>,
        #[template_child]
        pub search_bar: TemplateChild<gtk::SearchBar>,
        #[template_child]
        pub search_entry: TemplateChild<gtk::SearchEntry>,
        #[template_child]
        pub content_stack: TemplateChild<gtk::Stack>,
        #[template_child]
        pub machines_view: TemplateChild<VireoMachinesView>,
        pub settings: OnceCell<gio::Settings>,
        pub backend: Backend,
    }

    #[glib::object_subclass]
    impl ObjectSubclass for VireoWindow {
        const NAME: &'static str = "VireoWindow";
        type Type = super::VireoWindow;
        type ParentType = adw::ApplicationWindow;

        fn class_init(klass: &mut Self::Class) {
            VireoMachinesView::ensure_type();
            klass.bind_template();
        }

        fn instance_init(obj: &glib::subclass::InitializingObject<Self>) {
            obj.init_template();
        }
    }

    impl ObjectImpl for VireoWindow {
        fn constructed(&self) {
            self.parent_constructed();
            let obj = self.obj();
            obj.restore_state();
            obj.setup_actions();
            obj.setup_search();
            obj.setup_machines();
            trace_next_paint(&*obj, "first-frame");
        }
    }

    impl WidgetImpl for VireoWindow {}

    impl WindowImpl for VireoWindow {
        fn close_request(&self) -> glib::Propagation {
            if let Err(err) = self.obj().save_state() {
                eprintln!("vireo: could not save the window size: {err}");
            }
            self.parent_close_request()
        }
    }

    impl ApplicationWindowImpl for VireoWindow {}
    impl AdwApplicationWindowImpl for VireoWindow {}
}

glib::wrapper! {
    pub struct VireoWindow(ObjectSubclass<imp::VireoWindow>)
        @extends adw::ApplicationWindow, gtk::ApplicationWindow, gtk::Window, gtk::Widget,
        @implements gio::ActionGroup, gio::ActionMap, gtk::Buildable,
                    gtk::ConstraintTarget, gtk::Native, gtk::Root, gtk::ShortcutManager;
}

/// With VIREO_TRACE_STARTUP set: prints `vireo-trace: <label>` once the next frame that
/// includes `widget` has been painted (after the frame clock's paint phase).
pub(super) fn trace_next_paint(widget: &impl IsA<gtk::Widget>, label: &str) {
    if std::env::var_os("VIREO_TRACE_STARTUP").is_none() {
        return;
    }
    let label = label.to_owned();
    // The toplevel's clock: a widget on a hidden page (the empty list) has none of its own.
    let widget = widget
        .as_ref()
        .root()
        .map(|root| root.upcast::<gtk::Widget>())
        .unwrap_or_else(|| widget.as_ref().clone());
    let arm = move |widget: &gtk::Widget| {
        let Some(clock) = widget.frame_clock() else {
            return false;
        };
        let handler: Rc<RefCell<Option<glib::SignalHandlerId>>> = Rc::default();
        let label = label.clone();
        let id = clock.connect_after_paint(glib::clone!(
            #[strong]
            handler,
            move |clock| {
                eprintln!("vireo-trace: {label}");
                if let Some(id) = handler.borrow_mut().take() {
                    clock.disconnect(id);
                }
            }
        ));
        handler.replace(Some(id));
        widget.queue_draw();
        true
    };
    // Not realized yet (the window at construction): arm when it gets its frame clock.
    if !arm(&widget) {
        let pending: Rc<RefCell<Option<glib::SignalHandlerId>>> = Rc::default();
        let id = widget.connect_realize(glib::clone!(
            #[strong]
            pending,
            move |widget| {
                arm(widget);
                if let Some(id) = pending.borrow_mut().take() {
                    widget.disconnect(id);
                }
            }
        ));
        pending.replace(Some(id));
    }
}

impl VireoWindow {
    pub fn new(app: &impl IsA<gtk::Application>) -> Self {
        glib::Object::builder().property("application", app).build()
    }

    pub(super) fn settings(&self) -> &gio::Settings {
        self.imp()
            .settings
            .get_or_init(|| gio::Settings::new(config::APP_ID))
    }

    /// Shows a short message at the bottom of the window.
    pub fn show_toast(&self, message: &str) {
        // Toast titles are Pango markup; driver messages quote XML ("<listen ...>").
        let toast = adw::Toast::new(&glib::markup_escape_text(message));
        toast.set_timeout(8);
        self.imp().toast_overlay.add_toast(toast);
    }

    fn restore_state(&self) {
        let settings = self.settings();
        self.set_default_size(settings.int("window-width"), settings.int("window-height"));
        if settings.boolean("window-maximized") {
            self.maximize();
        }
    }

    fn save_state(&self) -> Result<(), glib::BoolError> {
        let settings = self.settings();
        // The default size follows the user's resizing but keeps the unmaximized size.
        let (width, height) = self.default_size();
        settings.set_int("window-width", width)?;
        settings.set_int("window-height", height)?;
        settings.set_boolean("window-maximized", self.is_maximized())?;
        gio::Settings::sync();
        Ok(())
    }

    fn setup_actions(&self) {
        let new_machine = gio::ActionEntry::builder("new-machine")
            .activate(|window: &Self, _, _| window.open_new_machine(None))
            .build();
        let close = gio::ActionEntry::builder("close")
            .activate(|window: &Self, _, _| window.close())
            .build();
        self.add_action_entries([new_machine, close]);
        // The console defaults, as actions too (the consoles' scaling menus use the same keys),
        // so a desktop or a script can switch every open console.
        let settings = self.settings();
        self.add_action(&settings.create_action("console-scaling"));
        self.add_action(&settings.create_action("console-keep-aspect"));

        let toggle_search = gio::PropertyAction::new(
            "toggle-search",
            &*self.imp().search_bar,
            "search-mode-enabled",
        );
        self.add_action(&toggle_search);
    }

    fn setup_search(&self) {
        let imp = self.imp();
        // The entry sits inside a clamp, so the bar does not find it by itself; without this,
        // typing into the window and Escape in the entry would not reach the search.
        imp.search_bar.connect_entry(&*imp.search_entry);
        imp.search_bar.set_key_capture_widget(Some(self));
        imp.search_entry.connect_search_changed(glib::clone!(
            #[weak(rename_to = window)]
            self,
            move |entry| window.update_content(&entry.text())
        ));
        imp.search_bar
            .connect_search_mode_enabled_notify(glib::clone!(
                #[weak(rename_to = window)]
                self,
                move |bar| {
                    if !bar.is_search_mode() {
                        window.imp().search_entry.set_text("");
                    }
                }
            ));
        self.update_content("");
    }

    /// Picks the page for the machine area from what exists and what the search matches.
    pub(super) fn update_content(&self, query: &str) {
        let view = &self.imp().machines_view;
        view.set_query(query);
        let page = if view.machine_count() == 0 {
            if query.trim().is_empty() {
                PAGE_EMPTY
            } else {
                PAGE_NO_RESULTS
            }
        } else if view.visible_count() == 0 {
            PAGE_NO_RESULTS
        } else {
            PAGE_MACHINES
        };
        self.imp().content_stack.set_visible_child_name(page);
    }

    /// Re-evaluates the page after machines came or went.
    pub(super) fn refresh_content(&self) {
        let query = self.imp().search_entry.text();
        self.update_content(&query);
        let states = self.imp().machines_view.states();
        if let Some(action) = self
            .lookup_action("machine-states")
            .and_downcast::<gio::SimpleAction>()
        {
            action.set_state(&states.to_variant());
        }
    }
}
