//! The main window: header bar, search bar and the machine area (the machines or an empty
//! state). It is first shown once the driver's list has arrived and the page is chosen, so its
//! first frame never shows "no machines" on the way to the machines.
//!
//! With `VIREO_TRACE_STARTUP=1` in the environment, the window prints `vireo-trace:
//! first-frame PAGE N` on stderr once its first frame is painted (PAGE: the machine area's
//! page; N: the machines it holds if their cards are on screen, else 0), and `vireo-trace:
//! machines-frame N` once a painted frame shows the page for the N machines of the driver's
//! list with its cards on screen (the start-up benchmark reads these lines).

use adw::prelude::*;
use adw::subclass::prelude::*;
use gtk::{gdk, gio, glib, CompositeTemplate};
use std::cell::{Cell, OnceCell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use super::backend::Backend;
use super::config;
use super::machines_view::VireoMachinesView;

/// Shown when no machine exists yet.
const PAGE_EMPTY: &str = "empty";
/// Shown when a search matches nothing.
const PAGE_NO_RESULTS: &str = "no-results";
/// The machines themselves.
const PAGE_MACHINES: &str = "machines";
/// How long a start waits for the driver's list before it shows the window anyway.
const LIST_WAIT: Duration = Duration::from_secs(2);

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
        /// The driver's first list arrived and chose the page.
        pub loaded: Cell<bool>,
        /// Asked to be shown before the list arrived.
        pub present_pending: Cell<bool>,
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
            // The first page is set without a fade: there was no page before it.
            self.content_stack
                .set_transition_type(gtk::StackTransitionType::None);
            // Until the list arrives: a blank grid rather than "no machines" if it is late.
            self.content_stack.set_visible_child_name(PAGE_MACHINES);
            obj.restore_state();
            obj.setup_actions();
            obj.setup_search();
            obj.setup_machines();
            obj.setup_drop();
            // With what it shows: the first frame must not show "no machines" or a blank grid
            // on the way to the machines.
            let window = obj.downgrade();
            trace_paint_when(&*obj, move || {
                let window = window.upgrade()?;
                let imp = window.imp();
                let page = imp.content_stack.visible_child_name().unwrap_or_default();
                let view = &imp.machines_view;
                let cards = if view.shows_a_card() {
                    view.machine_count()
                } else {
                    0
                };
                Some(format!("first-frame {page} {cards}"))
            });
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

/// With VIREO_TRACE_STARTUP set: prints `vireo-trace: <label>` once a frame that includes
/// `widget` has been painted (after the frame clock's paint phase) and `label` has something
/// to say (`None`: not yet, look again after the next frame).
fn trace_paint_when(widget: &impl IsA<gtk::Widget>, label: impl Fn() -> Option<String> + 'static) {
    if std::env::var_os("VIREO_TRACE_STARTUP").is_none() {
        return;
    }
    let label = Rc::new(label);
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
            #[weak]
            widget,
            move |clock| {
                let Some(label) = label() else {
                    // Not there yet (cards still to be laid out, a fade running): look again
                    // after the next frame.
                    widget.queue_draw();
                    return;
                };
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

    /// A file dropped on the window is an operating system image for a new machine (the
    /// first of several; the wizard makes one machine).
    fn setup_drop(&self) {
        let target = gtk::DropTarget::new(gdk::FileList::static_type(), gdk::DragAction::COPY);
        target.connect_drop(glib::clone!(
            #[weak(rename_to = window)]
            self,
            #[upgrade_or]
            false,
            move |_, value, _, _| {
                let path = value
                    .get::<gdk::FileList>()
                    .ok()
                    .and_then(|list| list.files().into_iter().find_map(|f| f.path()));
                match path {
                    Some(path) => {
                        window.open_os_image(&path);
                        true
                    }
                    None => false,
                }
            }
        ));
        self.add_controller(target);
    }

    pub(super) fn settings(&self) -> &gio::Settings {
        self.imp()
            .settings
            .get_or_init(|| gio::Settings::new(config::APP_ID))
    }

    /// Shows the window once the driver's list has chosen its page (at most [`LIST_WAIT`]
    /// later, so that a stuck driver still gets a window).
    pub fn present_when_loaded(&self) {
        let imp = self.imp();
        if imp.loaded.get() {
            self.present();
            return;
        }
        if imp.present_pending.replace(true) {
            return;
        }
        glib::timeout_add_local_once(
            LIST_WAIT,
            glib::clone!(
                #[weak(rename_to = window)]
                self,
                move || {
                    if window.imp().present_pending.replace(false) {
                        window.present();
                    }
                }
            ),
        );
    }

    /// The driver's first list is shown (or failed): the window may appear, and page changes
    /// from now on fade.
    pub(super) fn machines_loaded(&self, listed: Option<usize>) {
        let imp = self.imp();
        if imp.loaded.replace(true) {
            return;
        }
        self.refresh_content();
        if let Some(n) = listed {
            let window = self.downgrade();
            let page = if n == 0 { PAGE_EMPTY } else { PAGE_MACHINES };
            trace_paint_when(self, move || {
                let window = window.upgrade()?;
                let imp = window.imp();
                let stack = &imp.content_stack;
                let shown = stack.visible_child_name().as_deref() == Some(page)
                    && !stack.is_transition_running()
                    && (n == 0 || imp.machines_view.shows_a_card());
                shown.then(|| format!("machines-frame {n}"))
            });
        }
        if imp.present_pending.replace(false) {
            self.present();
        }
        imp.content_stack
            .set_transition_type(gtk::StackTransitionType::Crossfade);
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

    /// Picks the page for the machine area from what exists and what the search matches;
    /// nothing before the driver's first list (the window is not shown yet).
    pub(super) fn update_content(&self, query: &str) {
        let view = &self.imp().machines_view;
        view.set_query(query);
        if !self.imp().loaded.get() && view.machine_count() == 0 {
            return;
        }
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
