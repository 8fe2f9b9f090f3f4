//! The Clone… dialog: asks for the new machine's name (virt-clone's `NAME-clone` to start
//! with), shows what the driver's plan for that name copies and shares, then copies on a worker
//! thread with a progress bar and Cancel. Every rule is the driver's
//! (`vireo_driver::usecase::clone`); this file maps the form to it and its answers back.

use adw::prelude::*;
use adw::subclass::prelude::*;
use gettextrs::gettext;
use gtk::{glib, CompositeTemplate};
use std::cell::{Cell, RefCell};
use std::ops::ControlFlow;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use vireo_driver::usecase::clone::{
    self, CloneError, ClonePlan, CloneRequest, Progress, ShareReason,
};

use super::backend::Backend;
use super::i18n::gettext_f;
use super::window::VireoWindow;

mod imp {
    use super::*;

    #[derive(Debug, Default, CompositeTemplate)]
    #[template(resource = "/org/vireo/Vireo/ui/clone-dialog.ui")]
    pub struct VireoCloneDialog {
        #[template_child]
        pub cancel_button: TemplateChild<gtk::Button>,
        #[template_child]
        pub clone_button: TemplateChild<gtk::Button>,
        #[template_child]
        pub stack: TemplateChild<gtk::Stack>,
        #[template_child]
        pub name_entry: TemplateChild<adw::EntryRow>,
        #[template_child]
        pub error_label: TemplateChild<gtk::Label>,
        #[template_child]
        pub files_group: TemplateChild<adw::PreferencesGroup>,
        #[template_child]
        pub progress_label: TemplateChild<gtk::Label>,
        #[template_child]
        pub progress_bar: TemplateChild<gtk::ProgressBar>,
        pub backend: RefCell<Option<Backend>>,
        pub original: RefCell<String>,
        pub rows: RefCell<Vec<adw::ActionRow>>,
        /// Counts name changes, so that only the plan for the latest name is shown.
        pub generation: Cell<u64>,
        /// Set while the copy runs; closing then cancels it.
        pub cancel: RefCell<Option<Arc<AtomicBool>>>,
    }

    #[glib::object_subclass]
    impl ObjectSubclass for VireoCloneDialog {
        const NAME: &'static str = "VireoCloneDialog";
        type Type = super::VireoCloneDialog;
        type ParentType = adw::Window;

        fn class_init(klass: &mut Self::Class) {
            klass.bind_template();
        }

        fn instance_init(obj: &glib::subclass::InitializingObject<Self>) {
            obj.init_template();
        }
    }

    impl ObjectImpl for VireoCloneDialog {}
    impl WidgetImpl for VireoCloneDialog {}
    impl WindowImpl for VireoCloneDialog {
        fn close_request(&self) -> glib::Propagation {
            // A running copy is cancelled first; the dialog closes once it has cleaned up.
            if self.cancel.borrow().is_some() {
                self.obj().cancel_copy();
                return glib::Propagation::Stop;
            }
            glib::Propagation::Proceed
        }
    }
    impl AdwWindowImpl for VireoCloneDialog {}
}

glib::wrapper! {
    pub struct VireoCloneDialog(ObjectSubclass<imp::VireoCloneDialog>)
        @extends adw::Window, gtk::Window, gtk::Widget,
        @implements gtk::Buildable, gtk::ConstraintTarget, gtk::Native, gtk::Root,
                    gtk::ShortcutManager;
}

/// What a shared image is, for its row.
fn share_text(reason: &ShareReason) -> String {
    match reason {
        ShareReason::ReadOnly => gettext("Shared: read-only"),
        ShareReason::Shareable => gettext("Shared: marked shareable"),
        ShareReason::Cdrom => gettext("Shared: CD-ROM"),
        ShareReason::Skipped | ShareReason::Preserved => gettext("Shared"),
        ShareReason::NotVireoMade => gettext("Shared: not made by Vireo"),
    }
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_else(|| p.display().to_string())
}

/// A step of the copy, carried from the worker to the main loop.
struct Step {
    file: String,
    done: u64,
    total: u64,
}

impl VireoCloneDialog {
    /// A dialog cloning `original`; `taken`: names in use, for the suggested name.
    pub fn new(parent: &VireoWindow, backend: Backend, original: &str, taken: &[String]) -> Self {
        let dialog: Self = glib::Object::builder()
            .property("transient-for", parent)
            .property("destroy-with-parent", true)
            .build();
        let imp = dialog.imp();
        imp.backend.replace(Some(backend));
        imp.original.replace(original.to_owned());
        dialog.set_title(Some(&gettext_f("Clone “{name}”", &[("name", original)])));
        imp.name_entry.set_text(&clone::clone_name(original, |n| {
            taken.iter().any(|t| t == n)
        }));
        dialog.set_default_widget(Some(&*imp.clone_button));
        dialog.connect_signals();
        dialog.replan();
        imp.name_entry.grab_focus();
        dialog
    }

    fn backend(&self) -> Backend {
        self.imp().backend.borrow().clone().unwrap_or_default()
    }

    fn request(&self) -> CloneRequest {
        let imp = self.imp();
        let name = imp.name_entry.text().trim().to_owned();
        CloneRequest::auto(&imp.original.borrow(), Some(&name))
    }

    fn connect_signals(&self) {
        let imp = self.imp();
        imp.name_entry.connect_changed(glib::clone!(
            #[weak(rename_to = dialog)]
            self,
            move |_| dialog.replan()
        ));
        imp.clone_button.connect_clicked(glib::clone!(
            #[weak(rename_to = dialog)]
            self,
            move |_| dialog.start()
        ));
        imp.cancel_button.connect_clicked(glib::clone!(
            #[weak(rename_to = dialog)]
            self,
            move |_| dialog.close()
        ));
        let keys = gtk::EventControllerKey::new();
        keys.connect_key_pressed(glib::clone!(
            #[weak(rename_to = dialog)]
            self,
            #[upgrade_or]
            glib::Propagation::Proceed,
            move |_, key, _, _| {
                if key == gtk::gdk::Key::Escape {
                    dialog.close();
                    glib::Propagation::Stop
                } else {
                    glib::Propagation::Proceed
                }
            }
        ));
        self.add_controller(keys);
    }

    /// Asks the driver what a clone with the name in the entry would copy and share.
    fn replan(&self) {
        let imp = self.imp();
        let generation = imp.generation.get() + 1;
        imp.generation.set(generation);
        let req = self.request();
        let backend = self.backend();
        glib::spawn_future_local(glib::clone!(
            #[weak(rename_to = dialog)]
            self,
            async move {
                let planned = backend.call(move |c| Ok(clone::plan(c, &req))).await;
                let imp = dialog.imp();
                if imp.generation.get() != generation || imp.cancel.borrow().is_some() {
                    return;
                }
                match planned {
                    Ok(Ok(plan)) => {
                        dialog.show_error(None, "");
                        dialog.show_plan(Some(&plan));
                    }
                    Ok(Err(e)) => {
                        dialog.show_plan(None);
                        dialog.show_clone_error(&e);
                    }
                    Err(message) => dialog.show_error(None, &message),
                }
                imp.clone_button
                    .set_sensitive(!imp.error_label.is_visible());
            }
        ));
    }

    /// Lists the copies and the shared images of `plan` (none without one).
    fn show_plan(&self, plan: Option<&ClonePlan>) {
        let imp = self.imp();
        for row in imp.rows.take() {
            imp.files_group.remove(&row);
        }
        let Some(plan) = plan else {
            imp.files_group.set_visible(false);
            return;
        };
        let mut rows = Vec::new();
        for c in &plan.copies {
            let row = adw::ActionRow::new();
            row.set_use_markup(false);
            row.set_title(&file_name(&c.destination));
            row.set_subtitle(&gettext_f(
                "Copy of {file} ({size})",
                &[
                    ("file", &file_name(&c.source)),
                    ("size", &glib::format_size(c.bytes)),
                ],
            ));
            row.add_prefix(&gtk::Image::from_icon_name("edit-copy-symbolic"));
            rows.push(row);
        }
        for s in &plan.shared {
            let row = adw::ActionRow::new();
            row.set_use_markup(false);
            row.set_title(&file_name(&s.path));
            row.set_subtitle(&share_text(&s.reason));
            row.add_prefix(&gtk::Image::from_icon_name("emblem-shared-symbolic"));
            rows.push(row);
        }
        imp.files_group.set_visible(!rows.is_empty());
        for row in &rows {
            imp.files_group.add(row);
        }
        imp.rows.replace(rows);
    }

    /// Shows `message` under the name, marking the name entry when it is about the name.
    fn show_error(&self, on_name: Option<bool>, message: &str) {
        let imp = self.imp();
        if on_name == Some(true) {
            imp.name_entry.add_css_class("error");
        } else {
            imp.name_entry.remove_css_class("error");
        }
        imp.error_label.set_label(message);
        imp.error_label.set_visible(!message.is_empty());
    }

    /// A refusal, in the user's language where the GUI can say it better than the driver.
    fn show_clone_error(&self, e: &CloneError) {
        let on_name = matches!(
            e,
            CloneError::InvalidName(_) | CloneError::NameTaken(_) | CloneError::NeedsName
        );
        let message = match e {
            CloneError::NameTaken(name) => gettext_f(
                "There is already a machine named “{name}”.",
                &[("name", name)],
            ),
            CloneError::NeedsName => gettext("The clone needs a name."),
            CloneError::OriginalActive { .. } | CloneError::ImageInUse(_) => gettext(
                "The machine is running. Shut it down first: its disk images are copied while it is off.",
            ),
            e => e.to_string(),
        };
        self.show_error(Some(on_name), &message);
    }

    /// Stops a running copy at its next block; the driver then removes what it made.
    fn cancel_copy(&self) {
        let imp = self.imp();
        if let Some(flag) = imp.cancel.borrow().as_ref() {
            flag.store(true, Ordering::SeqCst);
            imp.progress_label.set_label(&gettext("Cancelling…"));
            imp.cancel_button.set_sensitive(false);
        }
    }

    /// Clones with the name in the entry, showing the copy's progress.
    fn start(&self) {
        let imp = self.imp();
        if imp.cancel.borrow().is_some() || !imp.clone_button.is_sensitive() {
            return;
        }
        let cancel = Arc::new(AtomicBool::new(false));
        imp.cancel.replace(Some(cancel.clone()));
        imp.clone_button.set_sensitive(false);
        imp.progress_bar.set_fraction(0.0);
        imp.progress_bar.set_text(None);
        imp.progress_label
            .set_label(&gettext("Preparing the clone…"));
        imp.stack.set_visible_child_name("progress");
        let (tx, rx) = async_channel::unbounded::<Step>();
        glib::spawn_future_local(glib::clone!(
            #[weak(rename_to = dialog)]
            self,
            async move {
                while let Ok(step) = rx.recv().await {
                    dialog.show_step(&step);
                }
            }
        ));
        let req = self.request();
        let backend = self.backend();
        glib::spawn_future_local(glib::clone!(
            #[weak(rename_to = dialog)]
            self,
            async move {
                let result = backend
                    .call(move |c| {
                        let mut last = (usize::MAX, u64::MAX);
                        let mut progress = |p: &Progress<'_>| {
                            if cancel.load(Ordering::SeqCst) {
                                return ControlFlow::Break(());
                            }
                            // A step per thousandth is plenty for a bar.
                            let permille = p.done.saturating_mul(1000) / p.total.max(1);
                            if (p.index, permille) != last {
                                last = (p.index, permille);
                                let _ = tx.send_blocking(Step {
                                    file: file_name(&p.copy.destination),
                                    done: p.done,
                                    total: p.total,
                                });
                            }
                            ControlFlow::Continue(())
                        };
                        Ok(clone::clone_machine(c, &req, &mut progress))
                    })
                    .await;
                dialog.finish(result);
            }
        ));
    }

    fn show_step(&self, step: &Step) {
        let imp = self.imp();
        if imp
            .cancel
            .borrow()
            .as_ref()
            .is_some_and(|c| c.load(Ordering::SeqCst))
        {
            return;
        }
        imp.progress_label
            .set_label(&gettext_f("Copying {file}…", &[("file", &step.file)]));
        imp.progress_bar
            .set_fraction(step.done as f64 / step.total.max(1) as f64);
        imp.progress_bar.set_text(Some(&gettext_f(
            "{done} of {total}",
            &[
                ("done", &glib::format_size(step.done)),
                ("total", &glib::format_size(step.total)),
            ],
        )));
    }

    fn finish(&self, result: Result<Result<clone::Cloned, CloneError>, String>) {
        let imp = self.imp();
        imp.cancel.replace(None);
        imp.cancel_button.set_sensitive(true);
        match result {
            Ok(Ok(done)) => {
                if let Some(window) = self
                    .transient_for()
                    .and_then(|w| w.downcast::<VireoWindow>().ok())
                {
                    window.show_toast(&gettext_f(
                        "“{name}” cloned as “{clone}”",
                        &[("name", &imp.original.borrow()), ("clone", &done.info.name)],
                    ));
                }
                self.close();
            }
            // The copies are gone and nothing was defined: as if the dialog had been cancelled.
            Ok(Err(CloneError::Cancelled)) => self.close(),
            Ok(Err(e)) => {
                imp.stack.set_visible_child_name("form");
                self.show_clone_error(&e);
                imp.clone_button.set_sensitive(true);
            }
            Err(message) => {
                imp.stack.set_visible_child_name("form");
                self.show_error(None, &message);
                imp.clone_button.set_sensitive(true);
            }
        }
    }
}
