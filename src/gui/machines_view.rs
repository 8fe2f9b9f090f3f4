//! The machines view: every defined or running machine as a card in a grid, or as a row in a
//! list. It only shows; the window owns the driver and the actions.

use adw::subclass::prelude::*;
use gtk::prelude::*;
use gtk::{glib, CompositeTemplate};
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use vireo_driver::MachineInfo;

use super::machine_card::VireoMachineCard;

mod imp {
    use super::*;

    #[derive(Debug, Default, CompositeTemplate)]
    #[template(resource = "/org/vireo/Vireo/ui/machines-view.ui")]
    pub struct VireoMachinesView {
        #[template_child]
        pub flow_box: TemplateChild<gtk::FlowBox>,
        pub cards: RefCell<BTreeMap<String, VireoMachineCard>>,
        /// Machines waiting for their Undo toast to expire: not shown, not yet removed.
        pub hidden: RefCell<BTreeSet<String>>,
        pub query: RefCell<String>,
        pub list_mode: Cell<bool>,
        /// The first list was traced (VIREO_TRACE_STARTUP).
        pub traced: Cell<bool>,
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
            let obj = self.obj();
            self.flow_box.set_sort_func(|a, b| {
                let name = |c: &gtk::FlowBoxChild| {
                    c.child()
                        .and_downcast::<VireoMachineCard>()
                        .map(|card| card.name().to_lowercase())
                        .unwrap_or_default()
                };
                name(a).cmp(&name(b)).into()
            });
            self.flow_box.set_filter_func(glib::clone!(
                #[weak]
                obj,
                #[upgrade_or]
                false,
                move |child| {
                    child
                        .child()
                        .and_downcast::<VireoMachineCard>()
                        .is_some_and(|card| obj.matches(&card.name()))
                }
            ));
            self.flow_box.connect_child_activated(|_, child| {
                if let Some(card) = child.child().and_downcast::<VireoMachineCard>() {
                    // Opening a machine means its console when it runs, else its properties.
                    let action = if card.state().is_some_and(|s| s.is_active()) {
                        "win.machine-console"
                    } else {
                        "win.machine-properties"
                    };
                    let _ = card.activate_action(action, Some(&card.name().to_variant()));
                }
            });
        }
    }

    impl WidgetImpl for VireoMachinesView {}
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
    fn matches(&self, name: &str) -> bool {
        let imp = self.imp();
        if imp.hidden.borrow().contains(name) {
            return false;
        }
        let query = imp.query.borrow();
        let query = query.trim().to_lowercase();
        query.is_empty() || name.to_lowercase().contains(&query)
    }

    /// Replaces everything shown with `machines`.
    pub fn set_machines(&self, machines: &[MachineInfo]) {
        let names: BTreeSet<&str> = machines.iter().map(|m| m.name.as_str()).collect();
        let gone: Vec<String> = self
            .imp()
            .cards
            .borrow()
            .keys()
            .filter(|n| !names.contains(n.as_str()))
            .cloned()
            .collect();
        for name in gone {
            self.remove(&name);
        }
        for info in machines {
            self.upsert(info);
        }
        if !self.imp().traced.replace(true) {
            super::window::trace_next_paint(self, &format!("machines-frame {}", machines.len()));
        }
    }

    /// Adds a machine or shows its new state.
    pub fn upsert(&self, info: &MachineInfo) {
        let imp = self.imp();
        if let Some(card) = imp.cards.borrow().get(&info.name) {
            card.update(info);
            return;
        }
        let card = VireoMachineCard::new(info);
        card.set_list_mode(imp.list_mode.get());
        imp.flow_box.insert(&card, -1);
        imp.cards.borrow_mut().insert(info.name.clone(), card);
    }

    pub fn card(&self, name: &str) -> Option<VireoMachineCard> {
        self.imp().cards.borrow().get(name).cloned()
    }

    pub fn remove(&self, name: &str) {
        let imp = self.imp();
        if let Some(card) = imp.cards.borrow_mut().remove(name) {
            if let Some(child) = card.parent() {
                imp.flow_box.remove(&child);
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
        imp.flow_box.invalidate_filter();
    }

    pub fn is_hidden(&self, name: &str) -> bool {
        self.imp().hidden.borrow().contains(name)
    }

    /// `{name: state}` of the machines shown (hidden ones left out).
    pub fn states(&self) -> std::collections::HashMap<String, String> {
        let imp = self.imp();
        let hidden = imp.hidden.borrow();
        imp.cards
            .borrow()
            .iter()
            .filter(|(n, _)| !hidden.contains(*n))
            .map(|(n, c)| {
                let state = c.state().map(|s| s.as_str()).unwrap_or("no state");
                (n.clone(), state.to_owned())
            })
            .collect()
    }

    pub fn set_query(&self, query: &str) {
        self.imp().query.replace(query.to_owned());
        self.imp().flow_box.invalidate_filter();
    }

    /// Machines that exist and are not waiting for deletion.
    pub fn machine_count(&self) -> usize {
        let imp = self.imp();
        let hidden = imp.hidden.borrow();
        imp.cards
            .borrow()
            .keys()
            .filter(|n| !hidden.contains(*n))
            .count()
    }

    /// Machines the current search shows.
    pub fn visible_count(&self) -> usize {
        self.imp()
            .cards
            .borrow()
            .keys()
            .filter(|n| self.matches(n))
            .count()
    }

    pub fn names(&self) -> Vec<String> {
        self.imp().cards.borrow().keys().cloned().collect()
    }

    pub fn set_list_mode(&self, list: bool) {
        let imp = self.imp();
        imp.list_mode.set(list);
        imp.flow_box
            .set_max_children_per_line(if list { 1 } else { 12 });
        for card in imp.cards.borrow().values() {
            card.set_list_mode(list);
        }
    }
}
