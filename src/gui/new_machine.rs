//! The creation wizard: a source (an operating system image, this computer's kernel, a kernel
//! file, a disk image or a domain XML), then name, memory, processors, boot files and disk,
//! then a review of the XML it will define. An operating system image (an installer or live
//! ISO, or a disk image with its own boot loader) takes one page: the system detected from it,
//! the form pre-filled from what the system recommends, and Create. With
//! `VIREO_TRACE_WIZARD=1` in the environment, the wizard prints `vireo-trace: detected FILE
//! os=ID` once the form is filled. The pages' fields become the driver's description of a new machine
//! ([`super::wizard_xml`]); the driver plans it (the review), makes it, and says which field a
//! refusal belongs to. Driver calls run on worker threads.

use adw::prelude::*;
use adw::subclass::prelude::*;
use gettextrs::gettext;
use gtk::{gio, glib, CompositeTemplate};
use std::cell::{Cell, RefCell};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use vireo_driver::usecase::{self, NewMachine, Plan};

mod os_image;

use super::backend::Backend;
use super::wizard_xml::{describe, describe_quick, field_for, Form, ImageProfile};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Source {
    #[default]
    Kernel,
    DiskImage,
    Xml,
    /// An installer or live ISO, or a disk image its firmware boots.
    OsImage,
}

mod imp {
    use super::*;

    #[derive(Debug, Default, CompositeTemplate)]
    #[template(resource = "/org/vireo/Vireo/ui/new-machine.ui")]
    pub struct VireoNewMachineWindow {
        #[template_child]
        pub toast_overlay: TemplateChild<adw::ToastOverlay>,
        #[template_child]
        pub back_button: TemplateChild<gtk::Button>,
        #[template_child]
        pub next_button: TemplateChild<gtk::Button>,
        #[template_child]
        pub spinner: TemplateChild<gtk::Spinner>,
        #[template_child]
        pub stack: TemplateChild<gtk::Stack>,
        #[template_child]
        pub os_image_row: TemplateChild<adw::ActionRow>,
        #[template_child]
        pub system_group: TemplateChild<adw::PreferencesGroup>,
        #[template_child]
        pub os_row: TemplateChild<adw::ActionRow>,
        #[template_child]
        pub os_icon: TemplateChild<gtk::Image>,
        #[template_child]
        pub firmware_row: TemplateChild<adw::ComboRow>,
        #[template_child]
        pub boot_group: TemplateChild<adw::PreferencesGroup>,
        #[template_child]
        pub disk_group: TemplateChild<adw::PreferencesGroup>,
        #[template_child]
        pub quick_row: TemplateChild<adw::ActionRow>,
        #[template_child]
        pub kernel_row: TemplateChild<adw::ActionRow>,
        #[template_child]
        pub disk_row: TemplateChild<adw::ActionRow>,
        #[template_child]
        pub xml_row: TemplateChild<adw::ActionRow>,
        #[template_child]
        pub name_entry: TemplateChild<adw::EntryRow>,
        #[template_child]
        pub memory_spin: TemplateChild<gtk::SpinButton>,
        #[template_child]
        pub vcpus_spin: TemplateChild<gtk::SpinButton>,
        #[template_child]
        pub kernel_entry: TemplateChild<adw::EntryRow>,
        #[template_child]
        pub kernel_button: TemplateChild<gtk::Button>,
        #[template_child]
        pub initrd_entry: TemplateChild<adw::EntryRow>,
        #[template_child]
        pub initrd_button: TemplateChild<gtk::Button>,
        #[template_child]
        pub cmdline_entry: TemplateChild<adw::EntryRow>,
        #[template_child]
        pub disk_entry: TemplateChild<adw::EntryRow>,
        #[template_child]
        pub disk_button: TemplateChild<gtk::Button>,
        #[template_child]
        pub new_disk_row: TemplateChild<adw::ActionRow>,
        #[template_child]
        pub disk_spin: TemplateChild<gtk::SpinButton>,
        #[template_child]
        pub details_error: TemplateChild<gtk::Label>,
        #[template_child]
        pub xml_open_button: TemplateChild<gtk::Button>,
        #[template_child]
        pub xml_view: TemplateChild<gtk::TextView>,
        #[template_child]
        pub review_view: TemplateChild<gtk::TextView>,
        #[template_child]
        pub copy_button: TemplateChild<gtk::Button>,
        #[template_child]
        pub review_error: TemplateChild<gtk::Label>,
        #[template_child]
        pub progress: TemplateChild<gtk::ProgressBar>,
        pub source: Cell<Source>,
        /// The operating system image, and what was detected on it (`None` while detecting).
        pub image: RefCell<Option<PathBuf>>,
        pub detected: RefCell<Option<ImageProfile>>,
        /// Counts images chosen, so that a late detection of an earlier one is dropped.
        pub detections: Cell<u64>,
        pub taken: RefCell<Vec<String>>,
        pub backend: RefCell<Option<Backend>>,
        /// What the review page shows and Create makes (a machine from the details page).
        pub plan: RefCell<Option<Plan>>,
        pub busy: Cell<bool>,
    }

    #[glib::object_subclass]
    impl ObjectSubclass for VireoNewMachineWindow {
        const NAME: &'static str = "VireoNewMachineWindow";
        type Type = super::VireoNewMachineWindow;
        type ParentType = adw::Window;

        fn class_init(klass: &mut Self::Class) {
            klass.bind_template();
        }

        fn instance_init(obj: &glib::subclass::InitializingObject<Self>) {
            obj.init_template();
        }
    }

    impl ObjectImpl for VireoNewMachineWindow {}
    impl WidgetImpl for VireoNewMachineWindow {}
    impl WindowImpl for VireoNewMachineWindow {}
    impl AdwWindowImpl for VireoNewMachineWindow {}
}

glib::wrapper! {
    pub struct VireoNewMachineWindow(ObjectSubclass<imp::VireoNewMachineWindow>)
        @extends adw::Window, gtk::Window, gtk::Widget,
        @implements gtk::Buildable, gtk::ConstraintTarget, gtk::Native, gtk::Root,
                    gtk::ShortcutManager;
}

/// The first free name of the form `base`, `base-2`, `base-3`, ...
pub fn free_name(base: &str, taken: &[String]) -> String {
    if !taken.iter().any(|t| t == base) {
        return base.to_owned();
    }
    (2..)
        .map(|n| format!("{base}-{n}"))
        .find(|c| !taken.iter().any(|t| t == c))
        .unwrap_or_else(|| base.to_owned())
}

impl VireoNewMachineWindow {
    /// `taken`: names in use, for a free default name.
    pub fn new(parent: &impl IsA<gtk::Window>, backend: Backend, taken: &[String]) -> Self {
        // The application too, so that its shortcuts (F1 for this window's help) work here;
        // it goes with the main window, as a dialog of it.
        let window: Self = glib::Object::builder()
            .property("transient-for", parent)
            .property("application", parent.as_ref().application())
            .property("destroy-with-parent", true)
            .build();
        let imp = window.imp();
        imp.backend.replace(Some(backend));
        let settings = gio::Settings::new(super::config::APP_ID);
        // The preferences' defaults, but never more than half the host's memory or its cores.
        let (host_mib, host_cpus) = host_resources();
        let memory = i64::from(settings.int("default-memory-mib")).min(host_mib / 2);
        let vcpus = i64::from(settings.int("default-vcpus")).min(host_cpus);
        imp.memory_spin.set_value(memory.max(128) as f64);
        imp.vcpus_spin.set_value(vcpus.max(1) as f64);
        imp.disk_spin
            .set_value(f64::from(settings.int("default-disk-gib")));
        imp.name_entry.set_text(&free_name("machine", taken));
        imp.taken.replace(taken.to_vec());
        window.connect_signals();
        let keys = gtk::EventControllerKey::new();
        keys.connect_key_pressed(glib::clone!(
            #[weak]
            window,
            #[upgrade_or]
            glib::Propagation::Proceed,
            move |_, key, _, _| {
                if key == gtk::gdk::Key::Escape && !window.imp().busy.get() {
                    window.close();
                    glib::Propagation::Stop
                } else {
                    glib::Propagation::Proceed
                }
            }
        ));
        window.add_controller(keys);
        window.show_page("source");
        window
    }

    fn backend(&self) -> Backend {
        self.imp().backend.borrow().clone().unwrap_or_default()
    }

    fn connect_signals(&self) {
        let imp = self.imp();
        imp.quick_row.connect_activated(glib::clone!(
            #[weak(rename_to = window)]
            self,
            move |_| {
                let name = free_name("quick", &window.imp().taken.borrow());
                window.create_quick(name)
            }
        ));
        imp.os_image_row.connect_activated(glib::clone!(
            #[weak(rename_to = window)]
            self,
            move |_| window.choose_os_image()
        ));
        for (row, source) in [
            (&*imp.kernel_row, Source::Kernel),
            (&*imp.disk_row, Source::DiskImage),
            (&*imp.xml_row, Source::Xml),
        ] {
            row.connect_activated(glib::clone!(
                #[weak(rename_to = window)]
                self,
                move |_| window.choose_source(source)
            ));
        }
        imp.back_button.connect_clicked(glib::clone!(
            #[weak(rename_to = window)]
            self,
            move |_| window.go_back()
        ));
        imp.next_button.connect_clicked(glib::clone!(
            #[weak(rename_to = window)]
            self,
            move |_| window.go_next()
        ));
        imp.copy_button.connect_clicked(glib::clone!(
            #[weak(rename_to = window)]
            self,
            move |_| {
                let buffer = window.imp().review_view.buffer();
                let text = buffer.text(&buffer.start_iter(), &buffer.end_iter(), false);
                window.clipboard().set_text(&text);
                window
                    .imp()
                    .toast_overlay
                    .add_toast(adw::Toast::new(&gettext("Copied to the clipboard")));
            }
        ));
        for (button, entry, title) in [
            (
                &*imp.kernel_button,
                &*imp.kernel_entry,
                gettext("Choose a Kernel"),
            ),
            (
                &*imp.initrd_button,
                &*imp.initrd_entry,
                gettext("Choose an Initrd"),
            ),
            (
                &*imp.disk_button,
                &*imp.disk_entry,
                gettext("Choose a Disk Image"),
            ),
        ] {
            button.connect_clicked(glib::clone!(
                #[weak(rename_to = window)]
                self,
                #[weak]
                entry,
                move |_| window.choose_file(&title, &[], move |path| {
                    entry.set_text(&path.to_string_lossy());
                })
            ));
        }
        imp.xml_open_button.connect_clicked(glib::clone!(
            #[weak(rename_to = window)]
            self,
            move |_| {
                let view = window.imp().xml_view.clone();
                let toasts = window.imp().toast_overlay.clone();
                window.choose_file(&gettext("Open Domain XML"), &[], move |path| {
                    match std::fs::read_to_string(&path) {
                        Ok(text) => view.buffer().set_text(&text),
                        Err(e) => toasts.add_toast(adw::Toast::new(&glib::markup_escape_text(
                            &format!("{}: {e}", path.display()),
                        ))),
                    }
                });
            }
        ));
    }

    /// Asks for a file to open; `filters` are offered first (the first one chosen), then all
    /// files.
    pub(super) fn choose_file(
        &self,
        title: &str,
        filters: &[gtk::FileFilter],
        done: impl Fn(PathBuf) + 'static,
    ) {
        let chooser = gtk::FileChooserNative::new(
            Some(title),
            Some(self),
            gtk::FileChooserAction::Open,
            Some(&gettext("_Open")),
            Some(&gettext("_Cancel")),
        );
        if !filters.is_empty() {
            for f in filters {
                chooser.add_filter(f);
            }
            let all = gtk::FileFilter::new();
            all.set_name(Some(&gettext("All Files")));
            all.add_pattern("*");
            chooser.add_filter(&all);
        }
        // GTK does not keep a native dialog alive: the handler holds it until it answers.
        let keep: Rc<RefCell<Option<gtk::FileChooserNative>>> = Rc::new(RefCell::new(None));
        chooser.connect_response(glib::clone!(
            #[strong]
            keep,
            move |chooser, response| {
                if response == gtk::ResponseType::Accept {
                    if let Some(path) = chooser.file().and_then(|f| f.path()) {
                        done(path);
                    }
                }
                keep.replace(None);
            }
        ));
        chooser.show();
        keep.replace(Some(chooser));
    }

    fn show_page(&self, page: &str) {
        let imp = self.imp();
        imp.stack.set_visible_child_name(page);
        imp.back_button.set_visible(page != "source");
        imp.next_button.set_visible(page != "source");
        let creates =
            page == "review" || (page == "details" && imp.source.get() == Source::OsImage);
        imp.next_button.set_label(&if creates {
            gettext("_Create")
        } else {
            gettext("_Next")
        });
        imp.next_button.set_use_underline(true);
        if page != "source" {
            // Focus on Next: Return goes on (the XML view would take Return for itself).
            self.set_default_widget(Some(&*imp.next_button));
            imp.next_button.grab_focus();
        }
    }

    /// Opens the page for a source (also reachable from tests by the window action).
    pub fn choose_source(&self, source: Source) {
        let imp = self.imp();
        imp.source.set(source);
        let os_image = source == Source::OsImage;
        let iso = imp
            .image
            .borrow()
            .as_deref()
            .is_some_and(usecase::is_iso_name);
        imp.system_group.set_visible(os_image);
        imp.firmware_row.set_visible(os_image);
        imp.boot_group.set_visible(!os_image);
        // A disk image is the machine's disk; an ISO installs onto a new one.
        imp.disk_group.set_visible(!os_image || iso);
        imp.disk_entry.set_visible(source == Source::DiskImage);
        imp.new_disk_row
            .set_visible(source == Source::Kernel || iso);
        self.show_page(if source == Source::Xml {
            "xml"
        } else {
            "details"
        });
    }

    /// Fills the kernel field (the wizard's own file chooser does the same).
    pub fn set_kernel(&self, path: &Path) {
        self.imp().kernel_entry.set_text(&path.to_string_lossy());
    }

    /// Puts XML text in the import page (the wizard's own file chooser does the same).
    pub fn set_import_text(&self, text: &str) {
        self.imp().xml_view.buffer().set_text(text);
    }

    fn go_back(&self) {
        let imp = self.imp();
        let page = imp.stack.visible_child_name().unwrap_or_default();
        if page == "review" {
            self.choose_source(imp.source.get());
        } else {
            self.show_page("source");
        }
    }

    fn go_next(&self) {
        let imp = self.imp();
        if imp.busy.get() {
            return;
        }
        let page = imp.stack.visible_child_name().unwrap_or_default();
        match page.as_str() {
            // An operating system image is made at once: its page is the whole form.
            "details" if imp.source.get() == Source::OsImage => self.create_os_image(),
            "details" => self.plan_details(),
            "xml" => {
                // The document is reviewed as it is; the driver checks it on Create.
                imp.plan.replace(None);
                let buffer = imp.xml_view.buffer();
                let text = buffer.text(&buffer.start_iter(), &buffer.end_iter(), false);
                self.review(&text);
            }
            "review" => self.create(),
            _ => {}
        }
    }

    /// The form's fields, as they are.
    pub fn form(&self) -> Form {
        let imp = self.imp();
        let buffer = imp.xml_view.buffer();
        Form {
            source: imp.source.get(),
            name: imp.name_entry.text().to_string(),
            memory_mib: imp.memory_spin.value() as u32,
            vcpus: imp.vcpus_spin.value() as u32,
            kernel: imp.kernel_entry.text().to_string(),
            initrd: imp.initrd_entry.text().to_string(),
            cmdline: imp.cmdline_entry.text().to_string(),
            disk: imp.disk_entry.text().to_string(),
            new_disk_gib: imp.disk_spin.value() as u32,
            xml: buffer
                .text(&buffer.start_iter(), &buffer.end_iter(), false)
                .to_string(),
            image: imp
                .image
                .borrow()
                .as_deref()
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default(),
            os_id: imp
                .detected
                .borrow()
                .as_ref()
                .and_then(|d| d.profile.os_id.clone()),
            uefi: imp.firmware_row.selected() == 1,
        }
    }

    /// Plans the machine of the details page: the review shows its document, or the field a
    /// refusal belongs to is marked.
    fn plan_details(&self) {
        let form = self.form();
        let source = form.source;
        let machine = describe(&form);
        let backend = self.backend();
        self.set_busy(true);
        glib::spawn_future_local(glib::clone!(
            #[weak(rename_to = window)]
            self,
            async move {
                let planned = backend.call(move |c| Ok(usecase::plan(c, &machine))).await;
                window.set_busy(false);
                match planned {
                    Ok(Ok(plan)) => {
                        window.review(&plan.xml);
                        window.imp().plan.replace(Some(plan));
                    }
                    Ok(Err(e)) => {
                        window.show_field_error(field_for(source, &e).unwrap_or(""), &e.to_string())
                    }
                    Err(message) => window.show_field_error("", &message),
                }
            }
        ));
    }

    fn review(&self, xml: &str) {
        let imp = self.imp();
        imp.review_view.buffer().set_text(xml);
        imp.review_error.set_visible(false);
        self.show_page("review");
    }

    fn entry_rows(&self) -> [(&'static str, gtk::Widget); 9] {
        let imp = self.imp();
        [
            ("image", imp.os_row.get().upcast()),
            ("name", imp.name_entry.get().upcast()),
            ("memory", imp.memory_spin.get().upcast()),
            ("vcpus", imp.vcpus_spin.get().upcast()),
            ("kernel", imp.kernel_entry.get().upcast()),
            ("initrd", imp.initrd_entry.get().upcast()),
            ("cmdline", imp.cmdline_entry.get().upcast()),
            ("disk", imp.disk_entry.get().upcast()),
            ("new-disk", imp.disk_spin.get().upcast()),
        ]
    }

    /// Marks the field a problem concerns and says what is wrong beside the fields.
    fn show_field_error(&self, field: &str, message: &str) {
        let imp = self.imp();
        for (name, widget) in self.entry_rows() {
            if name == field {
                widget.add_css_class("error");
                widget.grab_focus();
            } else {
                widget.remove_css_class("error");
            }
        }
        imp.details_error.set_label(message);
        imp.details_error.set_visible(true);
    }

    fn set_busy(&self, busy: bool) {
        let imp = self.imp();
        imp.busy.set(busy);
        imp.spinner.set_spinning(busy);
        imp.next_button.set_sensitive(!busy);
        imp.back_button.set_sensitive(!busy);
        imp.quick_row.set_sensitive(!busy);
        imp.os_image_row.set_sensitive(!busy);
    }

    /// Makes the reviewed machine (its disk first, if any), then closes; a machine that was
    /// to start opens its console.
    fn create(&self) {
        let imp = self.imp();
        let source = imp.source.get();
        // The reviewed plan; an imported document is planned as it was reviewed.
        let planned = imp.plan.borrow().clone();
        let machine: NewMachine = describe(&self.form());
        let makes_disks = planned.as_ref().is_some_and(|p| !p.images.is_empty());
        let backend = self.backend();
        self.set_busy(true);
        glib::spawn_future_local(glib::clone!(
            #[weak(rename_to = window)]
            self,
            async move {
                let imp = window.imp();
                let pulse = makes_disks.then(|| {
                    imp.progress.set_visible(true);
                    imp.progress
                        .set_text(Some(&gettext("Creating the disk image…")));
                    glib::timeout_add_local(
                        std::time::Duration::from_millis(100),
                        glib::clone!(
                            #[weak(rename_to = bar)]
                            imp.progress,
                            #[upgrade_or]
                            glib::ControlFlow::Break,
                            move || {
                                bar.pulse();
                                glib::ControlFlow::Continue
                            }
                        ),
                    )
                });
                let made = backend
                    .call(move |c| {
                        Ok(match planned {
                            Some(plan) => usecase::create(c, &plan),
                            None => usecase::plan(c, &machine)
                                .and_then(|plan| usecase::create(c, &plan)),
                        })
                    })
                    .await;
                if let Some(pulse) = pulse {
                    pulse.remove();
                    imp.progress.set_visible(false);
                }
                window.set_busy(false);
                let created = match made {
                    Ok(Ok(created)) => created,
                    Ok(Err(e)) => {
                        return window.show_define_error(field_for(source, &e), &e.to_string())
                    }
                    Err(message) => return window.show_define_error(None, &message),
                };
                window.close();
                let Some(parent) = window.transient_for() else {
                    return;
                };
                let name = created.info.name.clone();
                match created.start_error.or(created.autostart_error) {
                    Some(e) => {
                        if let Ok(main) = parent.downcast::<super::window::VireoWindow>() {
                            main.show_toast(&e.to_string());
                        }
                    }
                    None if source != Source::Xml => {
                        let _ =
                            parent.activate_action("win.machine-console", Some(&name.to_variant()));
                    }
                    None => {}
                }
            }
        ));
    }

    /// A refusal goes beside its field when the form made the XML.
    fn show_define_error(&self, field: Option<&str>, message: &str) {
        let imp = self.imp();
        if let (true, Some(field)) = (imp.source.get() != Source::Xml, field) {
            self.choose_source(imp.source.get());
            self.show_field_error(field, message);
        } else {
            imp.review_error.set_label(message);
            imp.review_error.set_visible(true);
        }
    }

    /// The quick machine: this computer's kernel with a generated initramfs, defined and
    /// started in one go.
    fn create_quick(&self, name: String) {
        let backend = self.backend();
        let settings = gio::Settings::new(super::config::APP_ID);
        // The quick machine is a shell in RAM: a modest size is plenty.
        let memory_mib = settings.int("default-memory-mib").clamp(256, 1024) as u32;
        self.set_busy(true);
        glib::spawn_future_local(glib::clone!(
            #[weak(rename_to = window)]
            self,
            async move {
                let machine = describe_quick(&name, memory_mib);
                let result = backend
                    .call(move |c| {
                        let created = usecase::create(c, &usecase::plan(c, &machine)?)?;
                        match created.start_error {
                            Some(e) => Err(e),
                            None => Ok(created.info.name),
                        }
                    })
                    .await;
                window.set_busy(false);
                match result {
                    Ok(name) => {
                        window.close();
                        if let Some(parent) = window.transient_for() {
                            let _ = parent
                                .activate_action("win.machine-console", Some(&name.to_variant()));
                        }
                    }
                    Err(message) => window
                        .imp()
                        .toast_overlay
                        .add_toast(adw::Toast::new(&glib::markup_escape_text(&message))),
                }
            }
        ));
    }
}

/// The host's memory in MiB and its processor count.
fn host_resources() -> (i64, i64) {
    // SAFETY: sysconf only reads system configuration values.
    let (pages, page_size) = unsafe {
        (
            libc::sysconf(libc::_SC_PHYS_PAGES),
            libc::sysconf(libc::_SC_PAGESIZE),
        )
    };
    let mib = if pages > 0 && page_size > 0 {
        pages.saturating_mul(page_size) / (1024 * 1024)
    } else {
        i64::from(i32::MAX)
    };
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get() as i64)
        .unwrap_or(1);
    (mib, cpus)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_names_count_up() {
        let taken = vec!["quick".to_owned(), "quick-2".to_owned()];
        assert_eq!(free_name("quick", &taken), "quick-3");
        assert_eq!(free_name("machine", &taken), "machine");
    }
}
