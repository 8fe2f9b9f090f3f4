//! One machine in the machines view: a picture of its screen (or an icon), its name, its state
//! and a menu with the actions that make sense in that state. The view recycles cards: a card
//! shows whichever machine item it is bound to.

use adw::subclass::prelude::*;
use gettextrs::gettext;
use gtk::prelude::*;
use gtk::{gio, glib, CompositeTemplate};
use std::cell::{Cell, RefCell};
use vireo_driver::DomainState;

use super::machine_item::VireoMachine;

mod imp {
    use super::*;

    #[derive(Debug, Default, CompositeTemplate)]
    #[template(resource = "/org/vireo/Vireo/ui/machine-card.ui")]
    pub struct VireoMachineCard {
        #[template_child]
        pub thumbnail_stack: TemplateChild<gtk::Stack>,
        #[template_child]
        pub state_icon: TemplateChild<gtk::Image>,
        #[template_child]
        pub thumbnail: TemplateChild<gtk::Picture>,
        #[template_child]
        pub name_label: TemplateChild<gtk::Label>,
        #[template_child]
        pub state_label: TemplateChild<gtk::Label>,
        #[template_child]
        pub menu_button: TemplateChild<gtk::MenuButton>,
        /// The machine shown, and its `changed` handler.
        pub machine: RefCell<Option<(VireoMachine, glib::SignalHandlerId)>>,
        pub list_mode: Cell<bool>,
    }

    #[glib::object_subclass]
    impl ObjectSubclass for VireoMachineCard {
        const NAME: &'static str = "VireoMachineCard";
        type Type = super::VireoMachineCard;
        type ParentType = gtk::Box;

        fn class_init(klass: &mut Self::Class) {
            klass.bind_template();
        }

        fn instance_init(obj: &glib::subclass::InitializingObject<Self>) {
            obj.init_template();
        }
    }

    impl ObjectImpl for VireoMachineCard {}
    impl WidgetImpl for VireoMachineCard {}
    impl BoxImpl for VireoMachineCard {}
}

glib::wrapper! {
    pub struct VireoMachineCard(ObjectSubclass<imp::VireoMachineCard>)
        @extends gtk::Box, gtk::Widget,
        @implements gtk::Buildable, gtk::ConstraintTarget, gtk::Orientable;
}

/// The state as a person reads it.
pub fn state_text(state: DomainState) -> String {
    match state {
        DomainState::Running | DomainState::Blocked => gettext("Running"),
        DomainState::Paused => gettext("Paused"),
        DomainState::Shutdown => gettext("Shutting down"),
        DomainState::Shutoff | DomainState::NoState => gettext("Off"),
        DomainState::Crashed => gettext("Crashed"),
        DomainState::PmSuspended => gettext("Suspended"),
    }
}

impl VireoMachineCard {
    /// An unbound card; `list` lays it out as a row.
    pub fn new(list: bool) -> Self {
        let card: Self = glib::Object::new();
        card.setup_menu();
        card.setup_tooltip();
        card.set_list_mode(list);
        card
    }

    /// The machine shown.
    pub fn machine(&self) -> Option<VireoMachine> {
        self.imp().machine.borrow().as_ref().map(|(m, _)| m.clone())
    }

    /// Shows `machine` from now on, following its changes until [`Self::unbind`].
    pub fn bind(&self, machine: &VireoMachine) {
        self.unbind();
        let handler = machine.connect_changed(glib::clone!(
            #[weak(rename_to = card)]
            self,
            move |machine| card.show(machine)
        ));
        self.imp().machine.replace(Some((machine.clone(), handler)));
        self.show(machine);
    }

    pub fn unbind(&self) {
        if let Some((machine, handler)) = self.imp().machine.take() {
            machine.disconnect(handler);
        }
    }

    fn show(&self, machine: &VireoMachine) {
        let imp = self.imp();
        imp.name_label.set_label(&machine.label());
        let state = machine.state().unwrap_or(DomainState::NoState);
        imp.state_label
            .set_label(&match (machine.installing(), state.is_active()) {
                (true, true) => gettext("Installing"),
                (true, false) => gettext("Off · Installing"),
                _ => state_text(state),
            });
        imp.state_icon.set_icon_name(Some(match state {
            DomainState::Paused => "media-playback-pause-symbolic",
            DomainState::Crashed => "dialog-warning-symbolic",
            _ => "computer-symbolic",
        }));
        let texture = machine.thumbnail();
        imp.thumbnail.set_paintable(texture.as_ref());
        imp.thumbnail_stack
            .set_visible_child_name(if texture.is_some() { "picture" } else { "icon" });
        // The menu is built when it is opened: a menu model on every card makes each card's
        // popover watch its actions on the window, which cost GTK seconds with many cards. A
        // new machine or state drops an open-once menu so the next opening rebuilds it.
        if imp.menu_button.menu_model().is_some() {
            imp.menu_button.set_menu_model(None::<&gio::MenuModel>);
        }
    }

    /// The machine's name as the card's tooltip, looked up when shown: setting a tooltip on
    /// every bind was a tenth of the cost of making the cards at start.
    fn setup_tooltip(&self) {
        self.connect_query_tooltip(|card, _, _, _, tooltip| {
            let Some(machine) = card.machine() else {
                return false;
            };
            tooltip.set_text(Some(&machine.name()));
            true
        });
    }

    fn setup_menu(&self) {
        self.imp().menu_button.set_create_popup_func(glib::clone!(
            #[weak(rename_to = card)]
            self,
            move |button| {
                if let Some(machine) = card.machine() {
                    if let Some(state) = machine.state() {
                        button.set_menu_model(Some(&machine_menu(&machine.name(), state)));
                    }
                }
            }
        ));
    }

    /// Grid cards stand upright; list rows lie down with a small picture.
    fn set_list_mode(&self, list: bool) {
        let imp = self.imp();
        imp.list_mode.set(list);
        let (w, h) = thumbnail_size(list);
        imp.thumbnail_stack.set_size_request(w, h);
        if list {
            self.set_orientation(gtk::Orientation::Horizontal);
            imp.state_icon.set_pixel_size(24);
        } else {
            self.set_orientation(gtk::Orientation::Vertical);
            imp.state_icon.set_pixel_size(48);
        }
    }
}

/// The box a thumbnail is scaled into: a picture's natural size would widen the card.
pub fn thumbnail_size(list: bool) -> (i32, i32) {
    if list {
        (64, 48)
    } else {
        (180, 134)
    }
}

/// The window actions (`win.machine-*`, target: the machine's name) that fit `state`.
pub fn machine_menu(name: &str, state: DomainState) -> gio::Menu {
    let item = |label: String, action: &str| {
        let item = gio::MenuItem::new(Some(&label), None);
        item.set_action_and_target_value(Some(action), Some(&name.to_variant()));
        item
    };
    let power = gio::Menu::new();
    match state {
        DomainState::Shutoff | DomainState::NoState | DomainState::Crashed => {
            power.append_item(&item(gettext("_Start"), "win.machine-start"));
        }
        DomainState::Paused => {
            power.append_item(&item(gettext("_Resume"), "win.machine-resume"));
            power.append_item(&item(gettext("_Force Off"), "win.machine-force-off"));
        }
        _ => {
            power.append_item(&item(gettext("Shut _Down"), "win.machine-shutdown"));
            power.append_item(&item(gettext("_Pause"), "win.machine-pause"));
            power.append_item(&item(gettext("Res_tart"), "win.machine-restart"));
            power.append_item(&item(gettext("_Force Off"), "win.machine-force-off"));
        }
    }
    if state == DomainState::Crashed {
        power.append_item(&item(gettext("_Force Off"), "win.machine-force-off"));
    }
    let other = gio::Menu::new();
    if state.is_active() {
        other.append_item(&item(gettext("Open _Console"), "win.machine-console"));
        other.append_item(&item(gettext("_Serial Console"), "win.machine-serial"));
    }
    other.append_item(&item(gettext("P_roperties"), "win.machine-properties"));
    // Its disks are copied only while it is off (the driver refuses otherwise).
    if !state.is_active() {
        other.append_item(&item(gettext("_Clone…"), "win.machine-clone"));
    }
    other.append_item(&item(gettext("_Delete…"), "win.machine-delete"));
    let menu = gio::Menu::new();
    menu.append_section(None, &power);
    menu.append_section(None, &other);
    menu
}
