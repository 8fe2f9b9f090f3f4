//! One machine in the machines view: a picture of its screen (or an icon), its name, its state
//! and a menu with the actions that make sense in that state.

use adw::subclass::prelude::*;
use gettextrs::gettext;
use gtk::prelude::*;
use gtk::{gdk, gio, glib, CompositeTemplate};
use std::cell::{Cell, RefCell};
use vireo_driver::{DomainState, MachineInfo};

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
        pub name: RefCell<String>,
        pub state: Cell<Option<DomainState>>,
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
    pub fn new(info: &MachineInfo) -> Self {
        let card: Self = glib::Object::new();
        card.imp().name.replace(info.name.clone());
        card.setup_menu();
        card.update(info);
        card
    }

    pub fn name(&self) -> String {
        self.imp().name.borrow().clone()
    }

    pub fn state(&self) -> Option<DomainState> {
        self.imp().state.get()
    }

    /// Shows a new state (from the driver's list or an event).
    pub fn update(&self, info: &MachineInfo) {
        self.set_state(info.state);
        let imp = self.imp();
        let label = info.title.as_deref().unwrap_or(&info.name);
        imp.name_label.set_label(label);
        self.set_tooltip_text(Some(&info.name));
    }

    pub fn set_state(&self, state: DomainState) {
        let imp = self.imp();
        imp.state.set(Some(state));
        imp.state_label.set_label(&state_text(state));
        imp.state_icon.set_icon_name(Some(match state {
            DomainState::Paused => "media-playback-pause-symbolic",
            DomainState::Crashed => "dialog-warning-symbolic",
            _ => "computer-symbolic",
        }));
        if !state.is_active() || state == DomainState::Crashed {
            imp.thumbnail_stack.set_visible_child_name("icon");
        }
        // The menu is built when it is opened: a menu model on every card makes each card's
        // popover watch its actions on the window, and with a thousand cards registering those
        // watchers took GTK over 20 s (quadratic in the number of cards) before the first
        // frame. A state change drops an open-once menu so the next opening rebuilds it.
        if imp.menu_button.menu_model().is_some() {
            imp.menu_button.set_menu_model(None::<&gio::MenuModel>);
        }
    }

    fn setup_menu(&self) {
        self.imp().menu_button.set_create_popup_func(glib::clone!(
            #[weak(rename_to = card)]
            self,
            move |button| {
                if let Some(state) = card.state() {
                    button.set_menu_model(Some(&machine_menu(&card.name(), state)));
                }
            }
        ));
    }

    /// A new picture of the machine's screen; `None` goes back to the icon.
    pub fn set_thumbnail(&self, texture: Option<&gdk::Texture>) {
        let imp = self.imp();
        imp.thumbnail.set_paintable(texture);
        imp.thumbnail_stack
            .set_visible_child_name(if texture.is_some() { "picture" } else { "icon" });
    }

    /// The box a thumbnail is scaled into: a picture's natural size would widen the card.
    pub fn thumbnail_size(&self) -> (i32, i32) {
        if self.imp().list_mode.get() {
            (64, 48)
        } else {
            (180, 134)
        }
    }

    /// Grid cards stand upright; list rows lie down with a small picture.
    pub fn set_list_mode(&self, list: bool) {
        let imp = self.imp();
        imp.list_mode.set(list);
        if imp.thumbnail.paintable().is_some() {
            // The old picture has the other mode's size; the next refresh brings a new one.
            self.set_thumbnail(None);
        }
        if list {
            self.set_orientation(gtk::Orientation::Horizontal);
            imp.thumbnail_stack.set_size_request(64, 48);
            imp.state_icon.set_pixel_size(24);
        } else {
            self.set_orientation(gtk::Orientation::Vertical);
            imp.thumbnail_stack.set_size_request(180, 134);
            imp.state_icon.set_pixel_size(48);
        }
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
