//! The details (properties) window of one machine: overview with live usage graphs, boot,
//! disks, network, display and the stored XML, one page each. Edits are made on the stored
//! definition through `vireo-domain`'s typed views and saved by the driver's edit
//! ([`vireo_driver::usecase::edit`], the policy `vireoctl edit` follows too); a refusal is
//! shown beside the field of the part of the machine it names.
//! Everything but title, description and autostart waits for the next start of a running
//! machine, and the window says so.

use adw::prelude::*;
use adw::subclass::prelude::*;
use gettextrs::gettext;
use gtk::{gio, glib, CompositeTemplate};
use std::cell::{Cell, OnceCell, RefCell};
use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};
use vireo_driver::domain::{Domain, InterfaceType, PortForward, PortProto};
use vireo_driver::stats::{self, ProcessStats};
use vireo_driver::usecase::{self, Media, Part};
use vireo_driver::{Connection, DomainState, DriverError, MachineInfo, Reason};

use super::backend::Backend;
use super::cdrom_row::VireoCdromRow;
use super::i18n::gettext_f;
use super::machine_card::state_text;
use super::media::{self, DriveEntry, MediaHost};
use super::usage_graph::VireoUsageGraph;

/// How often the helper's CPU and memory use are sampled while it runs.
const SAMPLE_PERIOD: Duration = Duration::from_secs(1);

/// What an edit changes; errors are shown beside the field they name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    Title,
    Description,
    Autostart,
    Memory,
    Vcpus,
    Kernel,
    Initrd,
    Cmdline,
    Disks,
    Network,
    /// The disc in a CD-ROM drive (changed through the driver's media use case).
    Media,
}

impl Field {
    /// Name used in the window's `field-errors` state (for assistive tools and tests).
    pub fn key(self) -> &'static str {
        match self {
            Field::Title => "title",
            Field::Description => "description",
            Field::Autostart => "autostart",
            Field::Memory => "memory",
            Field::Vcpus => "vcpus",
            Field::Kernel => "kernel",
            Field::Initrd => "initrd",
            Field::Cmdline => "cmdline",
            Field::Disks => "disks",
            Field::Network => "network",
            Field::Media => "media",
        }
    }

    /// Whether a running machine sees the change only after its next start.
    pub fn needs_restart(self) -> bool {
        !matches!(
            self,
            Field::Title | Field::Description | Field::Autostart | Field::Media
        )
    }

    /// The field that shows a part of the machine.
    pub fn for_part(part: Part) -> Option<Field> {
        Some(match part {
            Part::Title => Field::Title,
            Part::Description => Field::Description,
            Part::Memory => Field::Memory,
            Part::Vcpus => Field::Vcpus,
            Part::Kernel => Field::Kernel,
            Part::Initrd => Field::Initrd,
            Part::Cmdline => Field::Cmdline,
            Part::Disk(_) => Field::Disks,
            Part::Interface(_) => Field::Network,
            _ => return None,
        })
    }
}

/// Why an edit was not saved: the driver's refusal (with the parts of the machine it names),
/// or the window's own (a disk or port forward that is gone, a port out of range).
#[derive(Debug)]
pub enum EditError {
    Driver(DriverError),
    Window(String),
}

impl From<DriverError> for EditError {
    fn from(e: DriverError) -> EditError {
        EditError::Driver(e)
    }
}

impl From<String> for EditError {
    fn from(message: String) -> EditError {
        EditError::Window(message)
    }
}

impl EditError {
    /// The fields of the parts the refusal names, in order.
    fn fields(&self) -> Vec<Field> {
        match self {
            EditError::Driver(e) => e.parts().into_iter().filter_map(Field::for_part).collect(),
            EditError::Window(_) => Vec::new(),
        }
    }
}

impl std::fmt::Display for EditError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EditError::Driver(e) => write!(f, "{e}"),
            EditError::Window(m) => f.write_str(m),
        }
    }
}

/// An edit of the definition, run on a worker thread.
type Edit = Box<dyn FnOnce(&mut Domain) -> Result<(), EditError> + Send>;

/// Applies `edit` to the stored definition of `name` through the driver's edit policy.
pub fn apply_edit(c: &Connection, name: &str, edit: Edit) -> Result<MachineInfo, EditError> {
    usecase::edit(c, name, edit).map(|e| e.info)
}

/// The restart-relevant content of a document: without title, description and metadata.
fn restart_relevant(xml: &str) -> Option<String> {
    let mut dom = Domain::parse(xml).ok()?;
    dom.set_title(None);
    dom.set_description(None);
    dom.document_mut()
        .root_mut()
        .remove_children_named("metadata");
    Some(dom.to_xml())
}

/// The reason for a state, as a person reads it.
fn reason_text(reason: Reason) -> Option<String> {
    Some(match reason {
        Reason::Unknown => return None,
        Reason::Booted => gettext("started"),
        Reason::Unpaused => gettext("resumed"),
        Reason::User => gettext("paused by the user"),
        Reason::Shutdown => gettext("shut down"),
        Reason::Destroyed => gettext("forced off"),
        Reason::Crashed => gettext("its helper process ended unexpectedly"),
        Reason::Failed => gettext("failed to start"),
        Reason::Panicked => gettext("the guest panicked"),
    })
}

/// "1 h 05 min", "3 min 20 s", "12 s".
fn duration_text(d: Duration) -> String {
    let s = d.as_secs();
    let (h, m, sec) = (s / 3600, (s / 60) % 60, s % 60);
    let (h, m, sec) = (h.to_string(), format!("{m:02}"), format!("{sec:02}"));
    if s >= 3600 {
        gettext_f("{h} h {m} min", &[("h", &h), ("m", &m)])
    } else if s >= 60 {
        gettext_f(
            "{m} min {s} s",
            &[("m", m.trim_start_matches('0')), ("s", &sec)],
        )
    } else {
        gettext_f("{s} s", &[("s", &s.to_string())])
    }
}

/// What the window shows, read on a worker thread.
struct Snapshot {
    info: MachineInfo,
    /// The operating system's name from osinfo-db (its libosinfo id if the database has none).
    os_name: Option<String>,
    stored: String,
    live: Option<String>,
    /// The CD-ROM drives as the machine has them now.
    cdroms: Vec<DriveEntry>,
}

mod imp {
    use super::*;

    #[derive(Debug, Default, CompositeTemplate)]
    #[template(resource = "/org/vireo/Vireo/ui/details-window.ui")]
    pub struct VireoDetailsWindow {
        #[template_child]
        pub toast_overlay: TemplateChild<adw::ToastOverlay>,
        #[template_child]
        pub os_row: TemplateChild<adw::ActionRow>,
        #[template_child]
        pub switcher_title: TemplateChild<adw::ViewSwitcherTitle>,
        #[template_child]
        pub view_stack: TemplateChild<adw::ViewStack>,
        #[template_child]
        pub restart_revealer: TemplateChild<gtk::Revealer>,
        #[template_child]
        pub name_row: TemplateChild<adw::ActionRow>,
        #[template_child]
        pub title_row: TemplateChild<adw::EntryRow>,
        #[template_child]
        pub description_row: TemplateChild<adw::EntryRow>,
        #[template_child]
        pub autostart_switch: TemplateChild<gtk::Switch>,
        #[template_child]
        pub state_row: TemplateChild<adw::ActionRow>,
        #[template_child]
        pub uptime_row: TemplateChild<adw::ActionRow>,
        #[template_child]
        pub usage_group: TemplateChild<adw::PreferencesGroup>,
        #[template_child]
        pub cpu_label: TemplateChild<gtk::Label>,
        #[template_child]
        pub cpu_graph: TemplateChild<VireoUsageGraph>,
        #[template_child]
        pub memory_label: TemplateChild<gtk::Label>,
        #[template_child]
        pub memory_graph: TemplateChild<VireoUsageGraph>,
        #[template_child]
        pub memory_spin: TemplateChild<gtk::SpinButton>,
        #[template_child]
        pub vcpus_spin: TemplateChild<gtk::SpinButton>,
        #[template_child]
        pub kernel_row: TemplateChild<adw::EntryRow>,
        #[template_child]
        pub kernel_button: TemplateChild<gtk::Button>,
        #[template_child]
        pub initrd_row: TemplateChild<adw::EntryRow>,
        #[template_child]
        pub initrd_button: TemplateChild<gtk::Button>,
        #[template_child]
        pub cmdline_row: TemplateChild<adw::EntryRow>,
        #[template_child]
        pub disks_group: TemplateChild<adw::PreferencesGroup>,
        #[template_child]
        pub cdrom_group: TemplateChild<adw::PreferencesGroup>,
        #[template_child]
        pub network_page: TemplateChild<adw::PreferencesPage>,
        #[template_child]
        pub display_page: TemplateChild<adw::PreferencesPage>,
        #[template_child]
        pub xml_view: TemplateChild<gtk::TextView>,
        pub backend: OnceCell<Backend>,
        pub name: RefCell<String>,
        pub info: RefCell<Option<MachineInfo>>,
        /// Set while fields are filled from the driver, so their change signals edit nothing.
        pub filling: Cell<bool>,
        /// Rows and groups made for the current document (replaced on every reload).
        pub disk_rows: RefCell<Vec<gtk::Widget>>,
        pub cdrom_rows: RefCell<Vec<VireoCdromRow>>,
        pub page_groups: RefCell<Vec<(adw::PreferencesPage, adw::PreferencesGroup)>>,
        /// The error icon beside each field that has one.
        pub error_icons: RefCell<HashMap<Field, gtk::Image>>,
        pub errors: RefCell<HashMap<Field, String>>,
        pub last_sample: RefCell<Option<(ProcessStats, Instant)>>,
        pub sampling: Cell<bool>,
        pub chooser: RefCell<Option<gtk::FileChooserNative>>,
    }

    #[glib::object_subclass]
    impl ObjectSubclass for VireoDetailsWindow {
        const NAME: &'static str = "VireoDetailsWindow";
        type Type = super::VireoDetailsWindow;
        type ParentType = adw::ApplicationWindow;

        fn class_init(klass: &mut Self::Class) {
            VireoUsageGraph::ensure_type();
            klass.bind_template();
        }

        fn instance_init(obj: &glib::subclass::InitializingObject<Self>) {
            obj.init_template();
        }
    }

    impl ObjectImpl for VireoDetailsWindow {}
    impl WidgetImpl for VireoDetailsWindow {}
    impl WindowImpl for VireoDetailsWindow {}
    impl ApplicationWindowImpl for VireoDetailsWindow {}
    impl AdwApplicationWindowImpl for VireoDetailsWindow {}
}

glib::wrapper! {
    pub struct VireoDetailsWindow(ObjectSubclass<imp::VireoDetailsWindow>)
        @extends adw::ApplicationWindow, gtk::ApplicationWindow, gtk::Window, gtk::Widget,
        @implements gio::ActionGroup, gio::ActionMap, gtk::Buildable,
                    gtk::ConstraintTarget, gtk::Native, gtk::Root, gtk::ShortcutManager;
}

impl VireoDetailsWindow {
    /// The details of `name`; an open one for the same machine is reused.
    pub fn for_machine(parent: &impl IsA<gtk::Window>, backend: Backend, name: &str) -> Self {
        let app = parent.application();
        if let Some(open) = app.as_ref().and_then(|app| {
            app.windows()
                .into_iter()
                .filter_map(|w| w.downcast::<VireoDetailsWindow>().ok())
                .find(|w| *w.imp().name.borrow() == name)
        }) {
            return open;
        }
        let window: Self = glib::Object::builder()
            .property("application", app)
            .property("transient-for", parent)
            .build();
        let imp = window.imp();
        let _ = imp.backend.set(backend);
        imp.name.replace(name.to_owned());
        imp.name_row.set_subtitle(name);
        window.set_title(Some(&gettext_f(
            "Properties of “{name}”",
            &[("name", name)],
        )));
        imp.switcher_title.set_title(name);
        imp.cpu_graph.set_rgb(0x35, 0x84, 0xe4);
        imp.memory_graph.set_rgb(0x26, 0xa2, 0x69);
        window.setup_actions();
        window.setup_fields();
        window.reload();
        window.follow_events();
        window.start_sampling();
        window
    }

    fn backend(&self) -> Backend {
        self.imp().backend.get().cloned().unwrap_or_default()
    }

    pub fn machine_name(&self) -> String {
        self.imp().name.borrow().clone()
    }

    fn setup_actions(&self) {
        let imp = self.imp();
        // The visible page, also for keyboard users and tests (overview, boot, disks, ...).
        let page = gio::PropertyAction::new("page", &*imp.view_stack, "visible-child-name");
        self.add_action(&page);
        let copy = gio::ActionEntry::builder("copy-xml")
            .activate(|window: &Self, _, _| {
                let buffer = window.imp().xml_view.buffer();
                let (start, end) = buffer.bounds();
                window
                    .clipboard()
                    .set_text(&buffer.text(&start, &end, false));
                window.toast(&gettext("XML copied"));
            })
            .build();
        let add_disk = gio::ActionEntry::builder("add-disk")
            .activate(|window: &Self, _, _| window.choose_file(FileTarget::Disk))
            .build();
        // What the file choosers do with the chosen file; also reachable without a chooser.
        let path_action = |name: &str, target: FileTarget| {
            gio::ActionEntry::builder(name)
                .parameter_type(Some(glib::VariantTy::STRING))
                .activate(move |window: &Self, _, param| {
                    if let Some(path) = param.and_then(|p| p.get::<String>()) {
                        window.use_file(target, path);
                    }
                })
                .build()
        };
        let remove_disk = gio::ActionEntry::builder("remove-disk")
            .parameter_type(Some(glib::VariantTy::INT32))
            .activate(|window: &Self, _, param| {
                if let Some(index) = param.and_then(|p| p.get::<i32>()) {
                    window.remove_disk(index);
                }
            })
            .build();
        // (disk index, read-only)
        let disk_readonly = gio::ActionEntry::builder("disk-readonly")
            .parameter_type(Some(
                glib::VariantTy::new("(ib)").expect("valid type string"),
            ))
            .activate(|window: &Self, _, param| {
                if let Some((index, on)) = param.and_then(|p| p.get::<(i32, bool)>()) {
                    window.set_disk_readonly(index, on);
                }
            })
            .build();
        // (interface index, protocol, host port, guest port)
        let add_forward = gio::ActionEntry::builder("add-forward")
            .parameter_type(Some(
                glib::VariantTy::new("(isii)").expect("valid type string"),
            ))
            .activate(|window: &Self, _, param| {
                if let Some((iface, proto, host, guest)) =
                    param.and_then(|p| p.get::<(i32, String, i32, i32)>())
                {
                    window.add_forward(iface, proto, host, guest);
                }
            })
            .build();
        // (interface index, forward index)
        let remove_forward = gio::ActionEntry::builder("remove-forward")
            .parameter_type(Some(
                glib::VariantTy::new("(ii)").expect("valid type string"),
            ))
            .activate(|window: &Self, _, param| {
                if let Some((iface, index)) = param.and_then(|p| p.get::<(i32, i32)>()) {
                    window.remove_forward(iface, index);
                }
            })
            .build();
        let close = gio::ActionEntry::builder("close")
            .activate(|window: &Self, _, _| window.close())
            .build();
        self.add_action_entries([
            copy,
            add_disk,
            path_action("add-disk-file", FileTarget::Disk),
            path_action("set-kernel", FileTarget::Kernel),
            path_action("set-initrd", FileTarget::Initrd),
            remove_disk,
            disk_readonly,
            add_forward,
            remove_forward,
            close,
        ]);
        media::add_actions(self, self);
        // What the window shows, for assistive tools and the GUI tests: errors beside fields,
        // whether saved changes wait for a restart, and the usage samples taken.
        let errors = gio::SimpleAction::new_stateful(
            "field-errors",
            None,
            &HashMap::<String, String>::new().to_variant(),
        );
        errors.set_enabled(false);
        let restart = gio::SimpleAction::new_stateful("restart-pending", None, &false.to_variant());
        restart.set_enabled(false);
        let usage =
            gio::SimpleAction::new_stateful("usage", None, &(0u32, 0.0f64, 0u64).to_variant());
        usage.set_enabled(false);
        // Each CD-ROM drive's target and disc ("" for none), as the rows show them.
        let cdroms = gio::SimpleAction::new_stateful(
            "cdrom-drives",
            None,
            &HashMap::<String, String>::new().to_variant(),
        );
        cdroms.set_enabled(false);
        self.add_action(&cdroms);
        self.add_action(&errors);
        self.add_action(&restart);
        self.add_action(&usage);
    }

    fn set_state_of(&self, action: &str, value: glib::Variant) {
        if let Some(a) = self
            .lookup_action(action)
            .and_downcast::<gio::SimpleAction>()
        {
            a.set_state(&value);
        }
    }

    fn setup_fields(&self) {
        let imp = self.imp();
        let entry_fields: [(&adw::EntryRow, Field); 5] = [
            (&imp.title_row, Field::Title),
            (&imp.description_row, Field::Description),
            (&imp.kernel_row, Field::Kernel),
            (&imp.initrd_row, Field::Initrd),
            (&imp.cmdline_row, Field::Cmdline),
        ];
        for (row, field) in entry_fields {
            let icon = error_icon();
            row.add_suffix(&icon);
            imp.error_icons.borrow_mut().insert(field, icon);
            row.connect_apply(glib::clone!(
                #[weak(rename_to = window)]
                self,
                move |row| window.apply_text(field, row.text().to_string())
            ));
        }
        for (spin, field) in [
            (&*imp.memory_spin, Field::Memory),
            (&*imp.vcpus_spin, Field::Vcpus),
        ] {
            let icon = error_icon();
            if let Some(row) = spin
                .ancestor(adw::ActionRow::static_type())
                .and_downcast::<adw::ActionRow>()
            {
                row.add_suffix(&icon);
            }
            imp.error_icons.borrow_mut().insert(field, icon);
            spin.connect_value_changed(glib::clone!(
                #[weak(rename_to = window)]
                self,
                move |spin| {
                    if !window.imp().filling.get() {
                        window.apply_number(field, spin.value() as u64);
                    }
                }
            ));
        }
        imp.autostart_switch.connect_active_notify(glib::clone!(
            #[weak(rename_to = window)]
            self,
            move |switch| {
                if !window.imp().filling.get() {
                    window.apply_autostart(switch.is_active());
                }
            }
        ));
        imp.kernel_button.connect_clicked(glib::clone!(
            #[weak(rename_to = window)]
            self,
            move |_| window.choose_file(FileTarget::Kernel)
        ));
        imp.initrd_button.connect_clicked(glib::clone!(
            #[weak(rename_to = window)]
            self,
            move |_| window.choose_file(FileTarget::Initrd)
        ));
    }

    fn toast(&self, message: &str) {
        let toast = adw::Toast::new(&glib::markup_escape_text(message));
        toast.set_timeout(8);
        self.imp().toast_overlay.add_toast(toast);
    }

    /// Reads the machine again and shows it.
    pub fn reload(&self) {
        let backend = self.backend();
        let name = self.machine_name();
        glib::spawn_future_local(glib::clone!(
            #[weak(rename_to = window)]
            self,
            async move {
                let found = backend
                    .call(move |c| {
                        let info = c.info(&name)?;
                        let stored = c.xml(&name, true)?;
                        let live = if info.state.is_active() {
                            c.xml(&name, false).ok()
                        } else {
                            None
                        };
                        let cdroms = media::cdroms(c, &name, info.state.is_active())
                            .unwrap_or_else(|e| {
                                eprintln!("vireo: the drives of {name}: {e}");
                                Vec::new()
                            });
                        let os_name = info.os.as_deref().map(|id| {
                            vireo_driver::osinfo::shared_db()
                                .ok()
                                .and_then(|db| db.get(id))
                                .map_or_else(|| id.to_owned(), |os| os.name.clone())
                        });
                        Ok(Snapshot {
                            info,
                            os_name,
                            stored,
                            live,
                            cdroms,
                        })
                    })
                    .await;
                match found {
                    Ok(snapshot) => window.fill(snapshot),
                    Err(message) => window.toast(&message),
                }
            }
        ));
    }

    fn fill(&self, snap: Snapshot) {
        let imp = self.imp();
        imp.filling.set(true);
        let info = &snap.info;
        let state = match reason_text(info.reason) {
            Some(reason) => gettext_f(
                "{state} ({reason})",
                &[("state", &state_text(info.state)), ("reason", &reason)],
            ),
            None => state_text(info.state),
        };
        let state = if info.installing {
            gettext_f(
                "{state}, installing from its CD-ROM until the installer restarts it",
                &[("state", &state)],
            )
        } else {
            state
        };
        imp.state_row.set_subtitle(&state);
        imp.os_row.set_visible(snap.os_name.is_some());
        imp.os_row.set_subtitle(&glib::markup_escape_text(
            snap.os_name.as_deref().unwrap_or(""),
        ));
        imp.state_row.set_tooltip_text(info.message.as_deref());
        let active = info.state.is_active();
        if !active {
            imp.uptime_row.set_subtitle(&gettext("Not running"));
            imp.cpu_graph.clear();
            imp.memory_graph.clear();
            imp.last_sample.replace(None);
        }
        imp.usage_group.set_visible(active);
        imp.autostart_switch.set_active(info.autostart);
        imp.autostart_switch.set_sensitive(info.persistent);
        // A transient machine has no stored definition to edit.
        let editable: [&gtk::Widget; 9] = [
            imp.title_row.upcast_ref(),
            imp.description_row.upcast_ref(),
            imp.memory_spin.upcast_ref(),
            imp.vcpus_spin.upcast_ref(),
            imp.kernel_row.upcast_ref(),
            imp.initrd_row.upcast_ref(),
            imp.cmdline_row.upcast_ref(),
            imp.disks_group.upcast_ref(),
            imp.network_page.upcast_ref(),
        ];
        for widget in editable {
            widget.set_sensitive(info.persistent);
        }
        imp.xml_view.buffer().set_text(&snap.stored);

        match Domain::parse(&snap.stored) {
            Ok(dom) => {
                self.fill_from(&dom);
                self.fill_cdroms(&snap.cdroms, &dom);
            }
            Err(e) => self.toast(&e.to_string()),
        }
        // Saved changes that the running machine does not have yet.
        let pending = active
            && snap.live.as_deref().and_then(restart_relevant) != restart_relevant(&snap.stored);
        imp.restart_revealer.set_reveal_child(pending);
        self.set_state_of("restart-pending", pending.to_variant());
        imp.info.replace(Some(snap.info));
        imp.filling.set(false);
    }

    fn fill_from(&self, dom: &Domain) {
        let imp = self.imp();
        // A field the user is typing in keeps what was typed.
        let set = |row: &adw::EntryRow, value: Option<String>| {
            if !row.state_flags().contains(gtk::StateFlags::FOCUS_WITHIN) {
                row.set_text(value.as_deref().unwrap_or(""));
            }
        };
        set(&imp.title_row, dom.title());
        set(&imp.description_row, dom.description());
        let os = dom.os();
        set(&imp.kernel_row, os.as_ref().and_then(|o| o.kernel()));
        set(&imp.initrd_row, os.as_ref().and_then(|o| o.initrd()));
        set(&imp.cmdline_row, os.as_ref().and_then(|o| o.cmdline()));
        if let Ok(Some(bytes)) = dom.memory() {
            imp.memory_spin.set_value((bytes >> 20) as f64);
        }
        if let Ok(Some(n)) = dom.vcpu() {
            imp.vcpus_spin.set_value(n as f64);
        }
        self.fill_disks(dom);
        self.fill_network(dom);
        self.fill_display(dom);
    }

    fn fill_disks(&self, dom: &Domain) {
        let imp = self.imp();
        for row in imp.disk_rows.take() {
            imp.disks_group.remove(&row);
        }
        let disks = dom.devices().map(|d| d.disks()).unwrap_or_default();
        let mut rows = Vec::new();
        // CD-ROM drives have a group of their own (fill_cdroms); the index stays the disk's
        // place in the definition, which the disk actions take.
        let is_cdrom = |device: vireo_driver::domain::DiskDevice| device.as_str() == "cdrom";
        if disks.iter().all(|d| is_cdrom(d.device())) {
            let row = adw::ActionRow::builder()
                .title(gettext("No disks"))
                .subtitle(gettext(
                    "The machine runs from its kernel and initial RAM disk",
                ))
                .build();
            rows.push(row.upcast());
        }
        for (i, disk) in disks
            .iter()
            .enumerate()
            .filter(|(_, d)| !is_cdrom(d.device()))
        {
            let source = disk.source().unwrap_or_default();
            let file = Path::new(&source)
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_else(|| source.clone());
            let mut facts = vec![source.clone()];
            facts.push(
                disk.format()
                    .map(|f| f.to_string())
                    .unwrap_or_else(|| "raw".into()),
            );
            let bus = disk.target_bus().map(|b| b.to_string()).unwrap_or_default();
            facts.push(
                format!("{bus} {}", disk.target_dev().unwrap_or_default())
                    .trim()
                    .to_owned(),
            );
            if disk.readonly() {
                facts.push(gettext("read-only"));
            }
            let row = adw::ActionRow::builder()
                .title(if file.is_empty() {
                    gettext("Empty drive")
                } else {
                    file
                })
                .subtitle(facts.join(" · "))
                .build();
            row.add_prefix(&gtk::Image::from_icon_name(
                if disk.device().as_str() == "cdrom" {
                    "media-optical-symbolic"
                } else {
                    "drive-harddisk-symbolic"
                },
            ));
            // Pressed: the guest may read the disk but not write it.
            let readonly = gtk::ToggleButton::builder()
                .icon_name("changes-prevent-symbolic")
                .valign(gtk::Align::Center)
                .tooltip_text(gettext("Read-Only"))
                .active(disk.readonly())
                .build();
            readonly.add_css_class("flat");
            readonly.connect_toggled(glib::clone!(
                #[weak(rename_to = window)]
                self,
                move |button| window.set_disk_readonly(i as i32, button.is_active())
            ));
            row.add_suffix(&readonly);
            let remove = gtk::Button::builder()
                .icon_name("user-trash-symbolic")
                .valign(gtk::Align::Center)
                .tooltip_text(gettext("Remove Disk"))
                .action_name("win.remove-disk")
                .action_target(&(i as i32).to_variant())
                .build();
            remove.add_css_class("flat");
            row.add_suffix(&remove);
            rows.push(row.upcast());
        }
        for row in &rows {
            imp.disks_group.add(row);
        }
        imp.disk_rows.replace(rows);
    }

    /// One row per CD-ROM drive, below the disks; the group is hidden when there is none.
    fn fill_cdroms(&self, drives: &[DriveEntry], stored: &Domain) {
        let imp = self.imp();
        for row in imp.cdrom_rows.take() {
            imp.cdrom_group.remove(&row);
        }
        let disks = stored.devices().map(|d| d.disks()).unwrap_or_default();
        let mut rows = Vec::new();
        let mut state = HashMap::new();
        for drive in drives {
            let index = disks
                .iter()
                .position(|d| d.target_dev().as_deref() == Some(drive.target.as_str()));
            let row = VireoCdromRow::new(drive, index);
            imp.cdrom_group.add(&row);
            rows.push(row);
            let disc = drive.source.as_ref().map(|p| p.display().to_string());
            state.insert(drive.target.clone(), disc.unwrap_or_default());
        }
        imp.cdrom_group.set_visible(!rows.is_empty());
        imp.cdrom_rows.replace(rows);
        self.set_state_of("cdrom-drives", state.to_variant());
    }

    /// Replaces the groups this window added to a page.
    fn replace_groups(&self, page: &adw::PreferencesPage, groups: Vec<adw::PreferencesGroup>) {
        let imp = self.imp();
        let mut all = imp.page_groups.borrow_mut();
        all.retain(|(p, g)| {
            if p == page {
                p.remove(g);
                false
            } else {
                true
            }
        });
        for g in groups {
            page.add(&g);
            all.push((page.clone(), g));
        }
    }

    fn fill_network(&self, dom: &Domain) {
        let ifaces = dom.devices().map(|d| d.interfaces()).unwrap_or_default();
        let mut groups = Vec::new();
        if ifaces.is_empty() {
            let group = adw::PreferencesGroup::builder()
                .title(gettext("No network"))
                .description(gettext("The machine has no network interface"))
                .build();
            groups.push(group);
        }
        for (i, iface) in ifaces.iter().enumerate() {
            let kind = iface
                .iface_type()
                .map(|t| t.to_string())
                .unwrap_or_default();
            let mut facts = Vec::new();
            if kind == "user" {
                facts.push(gettext("User networking (NAT)"));
            } else {
                facts.push(kind.clone());
            }
            if let Some(model) = iface.model() {
                facts.push(model);
            }
            if let Some(mac) = iface.mac() {
                facts.push(mac);
            }
            let group = adw::PreferencesGroup::builder()
                .title(gettext_f("Interface {n}", &[("n", &(i + 1).to_string())]))
                .description(facts.join(" · "))
                .build();
            let forwards = iface.port_forwards();
            for (j, pf) in forwards.iter().enumerate() {
                for range in &pf.ranges {
                    let host = match range.end {
                        Some(end) => format!("{}-{end}", range.start),
                        None => range.start.to_string(),
                    };
                    let guest = range
                        .to
                        .map(|t| t.to_string())
                        .unwrap_or_else(|| host.clone());
                    let row = adw::ActionRow::builder()
                        .title(gettext_f(
                            "Host port {host} → guest port {guest}",
                            &[("host", &host), ("guest", &guest)],
                        ))
                        .subtitle(pf.proto.as_str().to_uppercase())
                        .build();
                    let remove = gtk::Button::builder()
                        .icon_name("user-trash-symbolic")
                        .valign(gtk::Align::Center)
                        .tooltip_text(gettext("Remove Port Forward"))
                        .action_name("win.remove-forward")
                        .action_target(&(i as i32, j as i32).to_variant())
                        .build();
                    remove.add_css_class("flat");
                    row.add_suffix(&remove);
                    group.add(&row);
                }
            }
            if iface.iface_type() == Some(InterfaceType::User) {
                group.add(&self.forward_editor(i as i32));
            }
            groups.push(group);
        }
        let page = self.imp().network_page.clone();
        self.replace_groups(&page, groups);
    }

    /// The "add a port forward" row of one interface: protocol, host port, guest port.
    fn forward_editor(&self, iface: i32) -> adw::ActionRow {
        let row = adw::ActionRow::builder()
            .title(gettext("Add Port Forward"))
            .build();
        let proto = gtk::DropDown::from_strings(&["TCP", "UDP"]);
        proto.set_valign(gtk::Align::Center);
        let port = |value: f64, tip: String| {
            let spin = gtk::SpinButton::with_range(1.0, 65535.0, 1.0);
            spin.set_value(value);
            spin.set_valign(gtk::Align::Center);
            spin.set_tooltip_text(Some(&tip));
            spin
        };
        let host = port(2222.0, gettext("Host port"));
        let guest = port(22.0, gettext("Guest port"));
        let add = gtk::Button::builder()
            .icon_name("list-add-symbolic")
            .valign(gtk::Align::Center)
            .tooltip_text(gettext("Add Port Forward"))
            .build();
        add.add_css_class("flat");
        add.connect_clicked(glib::clone!(
            #[weak(rename_to = window)]
            self,
            #[weak]
            proto,
            #[weak]
            host,
            #[weak]
            guest,
            move |_| {
                let p = if proto.selected() == 1 { "udp" } else { "tcp" };
                window.add_forward(
                    iface,
                    p.to_owned(),
                    host.value() as i32,
                    guest.value() as i32,
                );
            }
        ));
        row.add_suffix(&proto);
        row.add_suffix(&host);
        row.add_suffix(&gtk::Label::new(Some("→")));
        row.add_suffix(&guest);
        row.add_suffix(&add);
        row
    }

    fn fill_display(&self, dom: &Domain) {
        let devices = dom.devices();
        let graphics = devices.as_ref().map(|d| d.graphics()).unwrap_or_default();
        let videos = devices.as_ref().map(|d| d.videos()).unwrap_or_default();
        let mut groups = Vec::new();
        if graphics.is_empty() {
            groups.push(
                adw::PreferencesGroup::builder()
                    .title(gettext("No display"))
                    .description(gettext(
                        "The machine has no graphics device; use its serial console",
                    ))
                    .build(),
            );
        }
        let fact = |title: String, value: String| {
            adw::ActionRow::builder()
                .title(title)
                .subtitle(value)
                .css_classes(["property"])
                .build()
        };
        for g in &graphics {
            let kind = g.graphics_type().map(|t| t.to_string().to_uppercase());
            let group = adw::PreferencesGroup::builder()
                .title(kind.unwrap_or_else(|| gettext("Graphics")))
                .build();
            let listen_type = g
                .element()
                .child("listen")
                .and_then(|l| l.attr("type").map(|t| t.into_owned()));
            let listen = if let Some(socket) = g.socket() {
                socket
            } else if listen_type.as_deref() == Some("none") {
                gettext("Only Vireo (a private socket)")
            } else {
                let address = g.listen().unwrap_or_else(|| "127.0.0.1".into());
                match (g.port(), g.autoport()) {
                    (Some(p), _) if p > 0 => format!("{address}:{p}"),
                    _ => gettext_f("{address}, port chosen at start", &[("address", &address)]),
                }
            };
            group.add(&fact(gettext("Listens On"), listen));
            group.add(&fact(
                gettext("Password"),
                if g.passwd().is_some() {
                    gettext("Set")
                } else {
                    gettext("None")
                },
            ));
            groups.push(group);
        }
        if !videos.is_empty() {
            let group = adw::PreferencesGroup::builder()
                .title(gettext("Video"))
                .build();
            for v in &videos {
                let model = v.model().map(|m| m.to_string()).unwrap_or_default();
                let resolution = v
                    .element()
                    .child("model")
                    .and_then(|m| m.child("resolution"))
                    .and_then(|r| Some(format!("{}×{}", r.attr("x")?, r.attr("y")?)));
                let value = match resolution {
                    Some(r) => format!("{model} · {r}"),
                    None => model,
                };
                group.add(&fact(gettext("Adapter"), value));
            }
            groups.push(group);
        }
        let page = self.imp().display_page.clone();
        self.replace_groups(&page, groups);
    }

    /// Shows (or clears, with `None`) the error of a field: an icon beside it and a toast.
    fn set_field_error(&self, field: Field, message: Option<&str>) {
        let imp = self.imp();
        if let Some(icon) = imp.error_icons.borrow().get(&field) {
            icon.set_visible(message.is_some());
            icon.set_tooltip_text(message);
            if let Some(row) = icon.ancestor(adw::PreferencesRow::static_type()) {
                if message.is_some() {
                    row.add_css_class("error");
                } else {
                    row.remove_css_class("error");
                }
            }
        }
        {
            let mut errors = imp.errors.borrow_mut();
            match message {
                Some(m) => errors.insert(field, m.to_owned()),
                None => errors.remove(&field),
            };
        }
        let state: HashMap<String, String> = imp
            .errors
            .borrow()
            .iter()
            .map(|(f, m)| (f.key().to_owned(), m.clone()))
            .collect();
        self.set_state_of("field-errors", state.to_variant());
        if let Some(m) = message {
            self.toast(m);
        }
    }

    /// Runs an edit; on refusal the field the message names (or `field`) shows the error.
    fn apply(&self, field: Field, edit: Edit) {
        let backend = self.backend();
        let name = self.machine_name();
        glib::spawn_future_local(glib::clone!(
            #[weak(rename_to = window)]
            self,
            async move {
                let result = backend.call(move |c| Ok(apply_edit(c, &name, edit))).await;
                match result.map_err(EditError::Window).and_then(|r| r) {
                    Ok(info) => {
                        window.set_field_error(field, None);
                        if field.needs_restart() && info.state.is_active() {
                            window
                                .toast(&gettext("Saved. Takes effect after the machine restarts"));
                        }
                        window.reload();
                    }
                    Err(e) => {
                        let target = e
                            .fields()
                            .into_iter()
                            .find(|f| window.imp().error_icons.borrow().contains_key(f))
                            .unwrap_or(field);
                        window.set_field_error(target, Some(&e.to_string()));
                    }
                }
            }
        ));
    }

    fn apply_text(&self, field: Field, text: String) {
        let value = text.trim().to_owned();
        let value = (!value.is_empty()).then_some(value);
        let edit: Edit = match field {
            Field::Title => Box::new(move |d| {
                d.set_title(value.as_deref());
                Ok(())
            }),
            Field::Description => Box::new(move |d| {
                d.set_description(value.as_deref());
                Ok(())
            }),
            Field::Kernel => Box::new(move |d| {
                d.os_mut().set_kernel(value.as_deref());
                Ok(())
            }),
            Field::Initrd => Box::new(move |d| {
                d.os_mut().set_initrd(value.as_deref());
                Ok(())
            }),
            Field::Cmdline => Box::new(move |d| {
                d.os_mut().set_cmdline(value.as_deref());
                Ok(())
            }),
            _ => return,
        };
        self.apply(field, edit);
    }

    fn apply_number(&self, field: Field, n: u64) {
        let edit: Edit = match field {
            Field::Memory => Box::new(move |d| {
                let bytes = n << 20;
                d.set_memory(bytes);
                if let Ok(Some(_)) = d.current_memory() {
                    d.set_current_memory(Some(bytes));
                }
                Ok(())
            }),
            Field::Vcpus => Box::new(move |d| {
                d.set_vcpu(u32::try_from(n).map_err(|e| e.to_string())?);
                Ok(())
            }),
            _ => return,
        };
        self.apply(field, edit);
    }

    fn apply_autostart(&self, on: bool) {
        let backend = self.backend();
        let name = self.machine_name();
        glib::spawn_future_local(glib::clone!(
            #[weak(rename_to = window)]
            self,
            async move {
                match backend.call(move |c| c.set_autostart(&name, on)).await {
                    Ok(()) => window.set_field_error(Field::Autostart, None),
                    Err(message) => {
                        window.set_field_error(Field::Autostart, Some(&message));
                        window.reload();
                    }
                }
            }
        ));
    }

    fn set_disk_readonly(&self, index: i32, on: bool) {
        let edit: Edit = Box::new(move |d| {
            let i = usize::try_from(index).map_err(|e| e.to_string())?;
            let mut devices = d.devices_mut();
            let mut disk = devices
                .disk_mut(i)
                .ok_or_else(|| gettext_f("There is no disk {n}", &[("n", &(i + 1).to_string())]))?;
            disk.set_readonly(on);
            Ok(())
        });
        self.apply(Field::Disks, edit);
    }

    fn remove_disk(&self, index: i32) {
        let edit: Edit = Box::new(move |d| {
            let i = usize::try_from(index).map_err(|e| e.to_string())?;
            d.devices_mut().remove_disk(i).map(|_| ()).ok_or_else(|| {
                gettext_f("There is no disk {n}", &[("n", &(i + 1).to_string())]).into()
            })
        });
        self.apply(Field::Disks, edit);
    }

    fn add_forward(&self, iface: i32, proto: String, host: i32, guest: i32) {
        let edit: Edit = Box::new(move |d| {
            let bad = || gettext("Ports are numbers from 1 to 65535");
            let host = u16::try_from(host)
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(bad)?;
            let guest = u16::try_from(guest)
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(bad)?;
            let i = usize::try_from(iface).map_err(|e| e.to_string())?;
            let mut devices = d.devices_mut();
            let mut interface = devices.interface_mut(i).ok_or_else(|| {
                gettext_f("There is no interface {n}", &[("n", &(i + 1).to_string())])
            })?;
            let mut forward = PortForward::tcp(host, guest);
            forward.proto = PortProto::from(proto.as_str());
            interface.add_port_forward(&forward);
            Ok(())
        });
        self.apply(Field::Network, edit);
    }

    fn remove_forward(&self, iface: i32, index: i32) {
        let edit: Edit = Box::new(move |d| {
            let i = usize::try_from(iface).map_err(|e| e.to_string())?;
            let j = usize::try_from(index).map_err(|e| e.to_string())?;
            let mut devices = d.devices_mut();
            let mut interface = devices.interface_mut(i).ok_or_else(|| {
                gettext_f("There is no interface {n}", &[("n", &(i + 1).to_string())])
            })?;
            let mut forwards = interface.port_forwards();
            if j >= forwards.len() {
                return Err(gettext("That port forward is gone").into());
            }
            forwards.remove(j);
            interface.clear_port_forwards();
            for f in &forwards {
                interface.add_port_forward(f);
            }
            Ok(())
        });
        self.apply(Field::Network, edit);
    }

    fn choose_file(&self, target: FileTarget) {
        let title = match target {
            FileTarget::Disk => gettext("Add a Disk Image"),
            FileTarget::Kernel => gettext("Choose a Kernel File"),
            FileTarget::Initrd => gettext("Choose an Initial RAM Disk"),
        };
        let chooser = gtk::FileChooserNative::new(
            Some(&title),
            Some(self),
            gtk::FileChooserAction::Open,
            Some(&gettext("_Choose")),
            Some(&gettext("_Cancel")),
        );
        chooser.set_modal(true);
        chooser.connect_response(glib::clone!(
            #[weak(rename_to = window)]
            self,
            move |chooser, response| {
                if response == gtk::ResponseType::Accept {
                    if let Some(path) = chooser.file().and_then(|f| f.path()) {
                        window.use_file(target, path.to_string_lossy().into_owned());
                    }
                }
                window.imp().chooser.replace(None);
            }
        ));
        chooser.show();
        self.imp().chooser.replace(Some(chooser));
    }

    /// What a chosen file does: becomes a new disk, the kernel or the initial RAM disk.
    fn use_file(&self, target: FileTarget, path: String) {
        let imp = self.imp();
        match target {
            FileTarget::Kernel => {
                imp.kernel_row.set_text(&path);
                self.apply_text(Field::Kernel, path);
            }
            FileTarget::Initrd => {
                imp.initrd_row.set_text(&path);
                self.apply_text(Field::Initrd, path);
            }
            FileTarget::Disk => {
                let edit: Edit = Box::new(move |d| {
                    let file = Path::new(&path);
                    if !file.is_file() {
                        return Err(gettext_f(
                            "{file} is not a disk image file",
                            &[("file", &path)],
                        )
                        .into());
                    }
                    // The format the file name suggests: the content is never read.
                    let format = usecase::format_for_name(file);
                    usecase::attach_disk(d, file, format, Media::Disk, false)?;
                    Ok(())
                });
                self.apply(Field::Disks, edit);
            }
        }
    }

    /// Shows the driver's events of this machine as they come: lifecycle changes, and each
    /// disc that goes in or out (the guest's own eject included).
    fn follow_events(&self) {
        let events = self.backend().events();
        glib::spawn_future_local(glib::clone!(
            #[weak(rename_to = window)]
            self,
            async move {
                while let Ok(event) = events.recv().await {
                    if event.domain == window.machine_name() {
                        window.reload();
                    }
                }
            }
        ));
    }

    fn start_sampling(&self) {
        glib::timeout_add_local(
            SAMPLE_PERIOD,
            glib::clone!(
                #[weak(rename_to = window)]
                self,
                #[upgrade_or]
                glib::ControlFlow::Break,
                move || {
                    window.sample();
                    glib::ControlFlow::Continue
                }
            ),
        );
    }

    /// One sample of the helper's CPU and memory use, if the machine runs.
    fn sample(&self) {
        let imp = self.imp();
        let active = imp
            .info
            .borrow()
            .as_ref()
            .is_some_and(|i| i.state.is_active());
        if !active || imp.sampling.get() {
            return;
        }
        imp.sampling.set(true);
        let backend = self.backend();
        let name = self.machine_name();
        glib::spawn_future_local(glib::clone!(
            #[weak(rename_to = window)]
            self,
            async move {
                let result = backend
                    .call(move |c| match stats::machine_stats(c, &name) {
                        Ok(s) => Ok(Some(s)),
                        // Between a reboot's two helpers, or just stopped: no sample.
                        Err(DriverError::NotRunning(_)) => Ok(None),
                        Err(e) => Err(e),
                    })
                    .await;
                window.imp().sampling.set(false);
                match result {
                    Ok(Some(s)) => window.show_sample(s, Instant::now()),
                    // The helper is gone but the state read last said it runs: an event may
                    // have come before the driver's record was final, so look again.
                    Ok(None) if window.state() != Some(DomainState::Crashed) => window.reload(),
                    Ok(None) => {}
                    Err(message) => {
                        eprintln!("vireo: usage of {}: {message}", window.machine_name())
                    }
                }
            }
        ));
    }

    fn show_sample(&self, s: ProcessStats, at: Instant) {
        let imp = self.imp();
        imp.uptime_row.set_subtitle(&duration_text(s.uptime));
        let previous = imp.last_sample.replace(Some((s, at)));
        // A share of the machine's own processors: a guest keeping all of them busy reads
        // 100 %, whatever else this computer runs.
        let vcpus = imp.info.borrow().as_ref().map_or(1, |i| i.vcpus.max(1)) as f64;
        if let Some((before, then)) = previous {
            if let Some(cores) = s.cpu_cores_since(&before, at.duration_since(then)) {
                let fraction = cores / vcpus;
                imp.cpu_graph.push(fraction);
                imp.cpu_label.set_label(&gettext_f(
                    "Processor {percent} %",
                    &[("percent", &format!("{:.0}", fraction * 100.0))],
                ));
            }
        } else {
            imp.cpu_label.set_label(&gettext("Processor"));
        }
        let memory = imp
            .info
            .borrow()
            .as_ref()
            .map_or(0, |i| i.memory_kib.saturating_mul(1024));
        if memory > 0 {
            imp.memory_graph.push(s.rss_bytes as f64 / memory as f64);
        }
        imp.memory_label.set_label(&gettext_f(
            "Memory {mib} MiB",
            &[("mib", &(s.rss_bytes >> 20).to_string())],
        ));
        self.set_state_of(
            "usage",
            (
                imp.cpu_graph.len() as u32,
                s.cpu_time.as_secs_f64(),
                s.rss_bytes,
            )
                .to_variant(),
        );
    }

    /// The machine's state as the window last read it.
    pub fn state(&self) -> Option<DomainState> {
        self.imp().info.borrow().as_ref().map(|i| i.state)
    }
}

impl MediaHost for VireoDetailsWindow {
    fn media_backend(&self) -> Backend {
        self.backend()
    }

    fn media_machine(&self) -> Option<String> {
        Some(self.machine_name())
    }

    fn media_failed(&self, message: &str) {
        self.set_field_error(Field::Media, Some(message));
        self.reload();
    }

    fn media_changed(&self) {
        self.set_field_error(Field::Media, None);
        self.reload();
    }
}

/// Where a chosen file goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FileTarget {
    Disk,
    Kernel,
    Initrd,
}

fn error_icon() -> gtk::Image {
    let icon = gtk::Image::from_icon_name("dialog-error-symbolic");
    icon.add_css_class("error");
    icon.set_visible(false);
    icon
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_places_name_their_field() {
        use vireo_driver::usecase::Place;
        let cases = [
            (Place::new("domain/os/cmdline", None), Some(Field::Cmdline)),
            (Place::new("domain/os/kernel", None), Some(Field::Kernel)),
            (
                Place::new("domain/devices/disk[2]/target", None),
                Some(Field::Disks),
            ),
            (
                Place::new("domain/devices/interface/portForward/range", Some("start")),
                Some(Field::Network),
            ),
            (Place::new("domain/vcpu", None), Some(Field::Vcpus)),
            (
                Place::new("domain/memory", Some("unit")),
                Some(Field::Memory),
            ),
            (Place::new("domain/vcpupin", None), None),
        ];
        for (place, field) in cases {
            assert_eq!(Field::for_part(place.part()), field, "{place}");
        }
        let gone = EditError::from(DriverError::NotFound("x".into()));
        assert!(gone.fields().is_empty());
    }

    fn connection(tag: &str) -> (Connection, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("vireo-edit-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let paths = vireo_driver::Paths::under(
            &dir.join("c"),
            &dir.join("r"),
            &dir.join("d"),
            &dir.join("k"),
        );
        (Connection::with_paths(paths), dir)
    }

    fn domain_with_kernel(kernel: &Path) -> String {
        format!(
            "<domain type='kvm'><name>m</name><memory unit='MiB'>64</memory><vcpu>1</vcpu>\
             <os><type>hvm</type><kernel>{}</kernel><cmdline>console=ttyS0</cmdline></os>\
             </domain>",
            kernel.display()
        )
    }

    fn edit(f: impl FnOnce(&mut Domain) + Send + 'static) -> Edit {
        Box::new(move |d| {
            f(d);
            Ok(())
        })
    }

    #[test]
    fn edits_are_checked_and_refusals_change_nothing() {
        let (c, dir) = connection("check");
        std::fs::create_dir_all(&dir).unwrap();
        let kernel = dir.join("vmlinuz");
        std::fs::write(&kernel, b"not really a kernel").unwrap();
        c.define_xml(&domain_with_kernel(&kernel)).unwrap();

        apply_edit(&c, "m", edit(|d| d.set_description(Some("notes")))).unwrap();
        let stored = c.xml("m", true).unwrap();
        assert!(
            stored.contains("<description>notes</description>"),
            "{stored}"
        );

        // A kernel that is not there: the driver's start check names os/kernel.
        let e = apply_edit(
            &c,
            "m",
            edit(|d| d.os_mut().set_kernel(Some("/nonexistent/k"))),
        )
        .unwrap_err();
        assert_eq!(e.fields().first().copied(), Some(Field::Kernel), "{e}");
        // Not ASCII: refused for os/cmdline.
        let e = apply_edit(&c, "m", edit(|d| d.os_mut().set_cmdline(Some("grüße")))).unwrap_err();
        assert_eq!(e.fields().first().copied(), Some(Field::Cmdline), "{e}");
        // Zero processors: refused by validation, naming domain/vcpu.
        let e = apply_edit(&c, "m", edit(|d| d.set_vcpu(0))).unwrap_err();
        assert_eq!(e.fields().first().copied(), Some(Field::Vcpus), "{e}");
        assert_eq!(
            c.xml("m", true).unwrap(),
            stored,
            "a refused edit was stored"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_definition_that_could_not_start_stays_editable() {
        let (c, dir) = connection("broken");
        // Its kernel was never there (imported from elsewhere): describing it must still work.
        c.define_xml(&domain_with_kernel(Path::new("/nonexistent/k")))
            .unwrap();
        apply_edit(&c, "m", edit(|d| d.set_title(Some("Imported")))).unwrap();
        assert!(c
            .xml("m", true)
            .unwrap()
            .contains("<title>Imported</title>"));
        // The start check stops at its first refusal, so a bad command line stored now is
        // named as soon as the kernel is fixed, and that fix is refused until it is right.
        apply_edit(&c, "m", edit(|d| d.os_mut().set_cmdline(Some("ü")))).unwrap();
        std::fs::create_dir_all(&dir).unwrap();
        let kernel = dir.join("vmlinuz");
        std::fs::write(&kernel, b"kernel").unwrap();
        let k = kernel.display().to_string();
        let e = apply_edit(&c, "m", edit(move |d| d.os_mut().set_kernel(Some(&k)))).unwrap_err();
        assert_eq!(e.fields().first().copied(), Some(Field::Cmdline), "{e}");
        let k = kernel.display().to_string();
        apply_edit(
            &c,
            "m",
            edit(move |d| {
                d.os_mut().set_kernel(Some(&k));
                d.os_mut().set_cmdline(Some("console=ttyS0"));
            }),
        )
        .unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn only_title_description_and_autostart_apply_at_once() {
        assert!(!Field::Description.needs_restart());
        assert!(!Field::Autostart.needs_restart());
        assert!(Field::Cmdline.needs_restart());
        assert!(Field::Network.needs_restart());
    }

    #[test]
    fn restart_relevance_ignores_title_and_description() {
        let a = "<domain type='kvm'><name>a</name><title>x</title><memory>1</memory></domain>";
        let b = "<domain type='kvm'><name>a</name><description>y</description><memory>1</memory></domain>";
        let c = "<domain type='kvm'><name>a</name><memory>2</memory></domain>";
        assert_eq!(restart_relevant(a), restart_relevant(b));
        assert_ne!(restart_relevant(a), restart_relevant(c));
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration_text(Duration::from_secs(12)), "12 s");
        assert_eq!(duration_text(Duration::from_secs(200)), "3 min 20 s");
        assert_eq!(duration_text(Duration::from_secs(3900)), "1 h 05 min");
    }
}
