//! The machines view: every defined or running machine as a card in a grid, or as a row in a
//! list. It only shows; the window owns the driver and the actions.
//!
//! The machines are items of a list model (sorted by name, filtered by the search and by
//! pending deletions); a GtkGridView makes cards only for the items on screen and rebinds them
//! while scrolling, so a thousand machines cost a screenful of widgets.

use adw::subclass::prelude::*;
use gtk::prelude::*;
use gtk::{gdk, gio, glib, CompositeTemplate};
use std::cell::{Cell, RefCell};
use std::collections::{BTreeSet, HashMap};
use vireo_driver::MachineInfo;

use super::machine_card::{self, VireoMachineCard};
use super::machine_item::VireoMachine;

/// At most this many cards side by side in the grid.
const GRID_COLUMNS: u32 = 12;
/// The width a grid card takes at least: its picture (180), the grid cell's padding (2 × 3)
/// and the space between cards (2 × 9, style.css).
const GRID_CELL_WIDTH: i32 = 180 + 6 + 18;
/// The grid's own padding on both sides (style.css).
const GRID_PADDING: i32 = 18;

mod imp {
    use super::*;

    #[derive(Debug, Default, CompositeTemplate)]
    #[template(resource = "/org/vireo/Vireo/ui/machines-view.ui")]
    pub struct VireoMachinesView {
        #[template_child]
        pub grid_view: TemplateChild<gtk::GridView>,
        /// Every machine, sorted by its lowercased name.
        pub store: RefCell<Option<gio::ListStore>>,
        pub filter: RefCell<Option<gtk::CustomFilter>>,
        pub filtered: RefCell<Option<gtk::FilterListModel>>,
        pub by_name: RefCell<HashMap<String, VireoMachine>>,
        /// Machines waiting for their Undo toast to expire: not shown, not yet removed.
        pub hidden: RefCell<BTreeSet<String>>,
        /// The search, lowercased and trimmed.
        pub query: RefCell<String>,
        pub list_mode: Cell<bool>,
        /// Cards made by the factory: one per visible slot, reused while scrolling.
        pub cards: RefCell<Vec<glib::WeakRef<VireoMachineCard>>>,
    }

    #[glib::object_subclass]
    impl ObjectSubclass for VireoMachinesView {
        const NAME: &'static str = "VireoMachinesView";
        type Type = super::VireoMachinesView;
        type ParentType = gtk::Box;

        fn class_init(klass: &mut Self::Class) {
            klass.bind_template();
        }

        fn instance_init(obj: &glib::subclass::InitializingObject<Self>) {
            obj.init_template();
        }
    }

    impl ObjectImpl for VireoMachinesView {
        fn constructed(&self) {
            self.parent_constructed();
            self.obj().setup_model();
        }
    }

    impl WidgetImpl for VireoMachinesView {
        fn size_allocate(&self, width: i32, height: i32, baseline: i32) {
            self.obj().fit_columns(width);
            self.parent_size_allocate(width, height, baseline);
        }
    }
    impl BoxImpl for VireoMachinesView {}
}

glib::wrapper! {
    pub struct VireoMachinesView(ObjectSubclass<imp::VireoMachinesView>)
        @extends gtk::Box, gtk::Widget,
        @implements gtk::Buildable, gtk::ConstraintTarget, gtk::Orientable;
}

impl Default for VireoMachinesView {
    fn default() -> Self {
        glib::Object::new()
    }
}

impl VireoMachinesView {
    fn setup_model(&self) {
        let imp = self.imp();
        let store = gio::ListStore::new::<VireoMachine>();
        let filter = gtk::CustomFilter::new(glib::clone!(
            #[weak(rename_to = view)]
            self,
            #[upgrade_or]
            false,
            move |item| {
                item.downcast_ref::<VireoMachine>()
                    .is_some_and(|m| view.matches(m))
            }
        ));
        let filtered = gtk::FilterListModel::new(Some(store.clone()), Some(filter.clone()));
        let grid = &imp.grid_view;
        grid.set_model(Some(&gtk::NoSelection::new(Some(filtered.clone()))));
        // The grid sits on the window's background, as the cards always did, not on a view's.
        grid.remove_css_class("view");
        grid.connect_activate(|grid, position| {
            let machine = grid
                .model()
                .and_then(|m| m.item(position))
                .and_downcast::<VireoMachine>();
            if let Some(machine) = machine {
                // Opening a machine means its console when it runs, else its properties.
                let action = if machine.state().is_some_and(|s| s.is_active()) {
                    "win.machine-console"
                } else {
                    "win.machine-properties"
                };
                let _ = grid.activate_action(action, Some(&machine.name().to_variant()));
            }
        });
        imp.store.replace(Some(store));
        imp.filter.replace(Some(filter));
        imp.filtered.replace(Some(filtered));
        self.set_factory();
    }

    /// A factory for the current mode; replacing it remakes the few cards on screen.
    fn set_factory(&self) {
        let factory = gtk::SignalListItemFactory::new();
        let list = self.imp().list_mode.get();
        factory.connect_setup(glib::clone!(
            #[weak(rename_to = view)]
            self,
            move |_, item| {
                let Some(item) = item.downcast_ref::<gtk::ListItem>() else {
                    return;
                };
                let card = VireoMachineCard::new(list);
                view.imp().cards.borrow_mut().push(card.downgrade());
                item.set_child(Some(&card));
            }
        ));
        factory.connect_bind(|_, item| {
            let Some(item) = item.downcast_ref::<gtk::ListItem>() else {
                return;
            };
            let card = item.child().and_downcast::<VireoMachineCard>();
            let machine = item.item().and_downcast::<VireoMachine>();
            if let (Some(card), Some(machine)) = (card, machine) {
                card.bind(&machine);
            }
        });
        factory.connect_unbind(|_, item| {
            let Some(item) = item.downcast_ref::<gtk::ListItem>() else {
                return;
            };
            if let Some(card) = item.child().and_downcast::<VireoMachineCard>() {
                card.unbind();
            }
        });
        let imp = self.imp();
        imp.cards.borrow_mut().clear();
        imp.grid_view.set_factory(Some(&factory));
    }

    fn matches(&self, machine: &VireoMachine) -> bool {
        let imp = self.imp();
        if !imp.hidden.borrow().is_empty() && imp.hidden.borrow().contains(&machine.name()) {
            return false;
        }
        let query = imp.query.borrow();
        query.is_empty() || machine.key().contains(query.as_str())
    }

    fn store(&self) -> gio::ListStore {
        self.imp()
            .store
            .borrow()
            .clone()
            .unwrap_or_else(gio::ListStore::new::<VireoMachine>)
    }

    fn refilter(&self) {
        if let Some(filter) = self.imp().filter.borrow().as_ref() {
            filter.changed(gtk::FilterChange::Different);
        }
    }

    /// Allows the grid only the columns that fit `width`. The grid fits its columns itself,
    /// but keeps cards ready for its maximum: twelve columns of cards made at start where four
    /// are seen.
    fn fit_columns(&self, width: i32) {
        let imp = self.imp();
        let columns = if imp.list_mode.get() {
            1
        } else {
            ((width - GRID_PADDING) / GRID_CELL_WIDTH).clamp(1, GRID_COLUMNS as i32) as u32
        };
        if imp.grid_view.max_columns() != columns {
            imp.grid_view.set_max_columns(columns);
        }
    }

    /// The width laid out, or before the first layout (the window is shown once the list is
    /// in) the window's: what the first frame has room for.
    fn known_width(&self) -> i32 {
        let width = self.width();
        if width > 0 {
            return width;
        }
        self.root()
            .and_downcast::<gtk::Window>()
            .map_or(0, |w| w.default_size().0)
    }

    /// Replaces everything shown with `machines`, in one change of the model.
    pub fn set_machines(&self, machines: &[MachineInfo]) {
        let imp = self.imp();
        self.fit_columns(self.known_width());
        let mut old = imp.by_name.take();
        let mut items: Vec<VireoMachine> = machines
            .iter()
            .map(|info| match old.remove(&info.name) {
                Some(machine) => {
                    machine.set_info(info);
                    machine
                }
                None => VireoMachine::new(info),
            })
            .collect();
        items.sort_by(|a, b| a.key().cmp(&b.key()));
        let mut hidden = imp.hidden.borrow_mut();
        for name in old.keys() {
            hidden.remove(name);
        }
        drop(hidden);
        imp.by_name.replace(
            items
                .iter()
                .map(|m| (m.name(), m.clone()))
                .collect::<HashMap<_, _>>(),
        );
        let store = self.store();
        store.splice(0, store.n_items(), &items);
    }

    /// Adds a machine or shows its new state.
    pub fn upsert(&self, info: &MachineInfo) {
        let imp = self.imp();
        if let Some(machine) = imp.by_name.borrow().get(&info.name) {
            machine.set_info(info);
            return;
        }
        let machine = VireoMachine::new(info);
        self.store()
            .insert_sorted(&machine, |a, b| key_of(a).cmp(&key_of(b)));
        imp.by_name.borrow_mut().insert(info.name.clone(), machine);
    }

    pub fn machine(&self, name: &str) -> Option<VireoMachine> {
        self.imp().by_name.borrow().get(name).cloned()
    }

    pub fn remove(&self, name: &str) {
        let imp = self.imp();
        if let Some(machine) = imp.by_name.borrow_mut().remove(name) {
            let store = self.store();
            if let Some(position) = store.find(&machine) {
                store.remove(position);
            }
        }
        imp.hidden.borrow_mut().remove(name);
    }

    /// Hides a machine (while its deletion can still be undone) or shows it again.
    pub fn set_hidden(&self, name: &str, hidden: bool) {
        let imp = self.imp();
        if hidden {
            imp.hidden.borrow_mut().insert(name.to_owned());
        } else {
            imp.hidden.borrow_mut().remove(name);
        }
        self.refilter();
    }

    pub fn is_hidden(&self, name: &str) -> bool {
        self.imp().hidden.borrow().contains(name)
    }

    /// `{name: state}` of the machines shown (hidden ones left out).
    pub fn states(&self) -> HashMap<String, String> {
        let imp = self.imp();
        let hidden = imp.hidden.borrow();
        imp.by_name
            .borrow()
            .iter()
            .filter(|(n, _)| !hidden.contains(*n))
            .map(|(n, m)| {
                let state = m.state().map(|s| s.as_str()).unwrap_or("no state");
                (n.clone(), state.to_owned())
            })
            .collect()
    }

    pub fn set_query(&self, query: &str) {
        let query = query.trim().to_lowercase();
        if *self.imp().query.borrow() == query {
            return;
        }
        self.imp().query.replace(query);
        self.refilter();
    }

    /// Machines that exist and are not waiting for deletion.
    pub fn machine_count(&self) -> usize {
        let imp = self.imp();
        let hidden = imp.hidden.borrow();
        imp.by_name
            .borrow()
            .keys()
            .filter(|n| !hidden.contains(*n))
            .count()
    }

    /// Machines the current search shows.
    pub fn visible_count(&self) -> usize {
        self.imp()
            .filtered
            .borrow()
            .as_ref()
            .map_or(0, |f| f.n_items() as usize)
    }

    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.imp().by_name.borrow().keys().cloned().collect();
        names.sort();
        names
    }

    /// Whether a card showing a machine is on screen (mapped): what the start-up trace waits
    /// for before it calls the list shown.
    pub fn shows_a_card(&self) -> bool {
        self.imp()
            .cards
            .borrow()
            .iter()
            .filter_map(|c| c.upgrade())
            .any(|c| c.is_mapped() && c.machine().is_some())
    }

    /// The box a thumbnail is scaled into in the current mode.
    pub fn thumbnail_size(&self) -> (i32, i32) {
        machine_card::thumbnail_size(self.imp().list_mode.get())
    }

    /// Shows a new picture of `name`'s screen (`None`: its icon).
    pub fn set_thumbnail(&self, name: &str, texture: Option<&gdk::Texture>) {
        if let Some(machine) = self.machine(name) {
            machine.set_thumbnail(texture);
        }
    }

    pub fn set_list_mode(&self, list: bool) {
        let imp = self.imp();
        if imp.list_mode.replace(list) == list && imp.grid_view.factory().is_some() {
            return;
        }
        self.fit_columns(self.known_width());
        // The old pictures have the other mode's size; the next refresh brings new ones.
        for machine in imp.by_name.borrow().values() {
            if machine.thumbnail().is_some() {
                machine.set_thumbnail(None);
            }
        }
        self.set_factory();
    }
}

fn key_of(item: &glib::Object) -> String {
    item.downcast_ref::<VireoMachine>()
        .map(|m| m.key().clone())
        .unwrap_or_default()
}
