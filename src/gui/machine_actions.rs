//! The main window's machine actions (`win.machine-*`, target: a machine's name), the list kept
//! current from the driver's events, live thumbnails, cloning, and deletion with an Undo toast.

use adw::prelude::*;
use adw::subclass::prelude::*;
use gettextrs::gettext;
use gtk::{gdk, gio, glib};
use std::path::{Path, PathBuf};
use std::time::Duration;
use vireo_driver::usecase::undefine::{self, StorageRemoval};
use vireo_driver::{Connection, DomainState, DriverError};

use super::clone_dialog::VireoCloneDialog;
use super::console_window::VireoConsoleWindow;
use super::details_window::VireoDetailsWindow;
use super::i18n::gettext_f;
use super::new_machine::{Source, VireoNewMachineWindow};
use super::vnc_session::Address;
use super::window::VireoWindow;

/// How long Shut Down waits for the guest before offering Force Off.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(60);
/// Thumbnails of running machines are this old at most.
const THUMBNAIL_PERIOD: Duration = Duration::from_secs(5);

/// A window action taking one string: a machine's name, a file or an address.
fn string_action(
    name: &str,
    activate: impl Fn(&VireoWindow, String) + 'static,
) -> gio::ActionEntry<VireoWindow> {
    gio::ActionEntry::builder(name)
        .parameter_type(Some(glib::VariantTy::STRING))
        .activate(move |window: &VireoWindow, _, param| {
            if let Some(text) = param.and_then(|p| p.get::<String>()) {
                activate(window, text);
            }
        })
        .build()
}

/// A driver call on a machine, run on a worker thread.
type MachineCall = fn(&Connection, &str) -> Result<(), DriverError>;

impl VireoWindow {
    pub(super) fn setup_machines(&self) {
        let settings = self.settings().clone();
        self.add_action(&settings.create_action("view-mode"));
        let apply_mode = glib::clone!(
            #[weak(rename_to = window)]
            self,
            move |settings: &gio::Settings| {
                let list = settings.string("view-mode") == "list";
                window.imp().machines_view.set_list_mode(list);
            }
        );
        apply_mode(&settings);
        settings.connect_changed(Some("view-mode"), move |s, _| apply_mode(s));

        let simple: [(&str, MachineCall); 6] = [
            ("machine-start", |c, n| c.start(n)),
            ("machine-force-off", |c, n| c.destroy(n)),
            ("machine-pause", |c, n| c.suspend(n)),
            ("machine-resume", |c, n| c.resume(n)),
            ("machine-restart", |c, n| c.reboot(n)),
            ("machine-shutdown", |c, n| c.shutdown(n, SHUTDOWN_WAIT)),
        ];
        for (action, call) in simple {
            let entry = string_action(action, move |window, name| {
                window.run_machine_call(name, call);
            });
            self.add_action_entries([entry]);
        }
        let delete = string_action("machine-delete", |window, name| {
            window.confirm_delete(name);
        });
        let clone = string_action("machine-clone", |window, name| {
            let taken = window.imp().machines_view.names();
            VireoCloneDialog::new(window, window.imp().backend.clone(), &name, &taken).present();
        });
        // The Undo toast's button; also how tests undo without hunting for the button.
        let undelete = string_action("machine-undelete", |window, name| {
            window.imp().machines_view.set_hidden(&name, false);
            window.refresh_content();
        });
        // What the view shows, as {name: state}: for assistive tools and the GUI tests.
        let states = gio::SimpleAction::new_stateful(
            "machine-states",
            None,
            &std::collections::HashMap::<String, String>::new().to_variant(),
        );
        states.set_enabled(false);
        self.add_action(&states);
        // Opens the wizard on its import page with a file's XML, as its file chooser would.
        let import = string_action("import-machine", |window, path| {
            window.open_new_machine(Some(PathBuf::from(path)));
        });
        let console = string_action("machine-console", |window, name| {
            VireoConsoleWindow::for_machine(window, window.imp().backend.clone(), &name).present();
        });
        let properties = string_action("machine-properties", |window, name| {
            window.show_properties(name);
        });
        // Any VNC server: with an address parameter it connects at once, without one it asks.
        let open_vnc = string_action("open-vnc", |window, text| {
            window.open_vnc(&text, "");
        });
        let connect_vnc = gio::ActionEntry::builder("connect-vnc")
            .activate(|window: &Self, _, _| window.ask_vnc_address())
            .build();
        // Opens the wizard on its kernel page with that kernel chosen.
        let from_kernel = string_action("new-machine-from-kernel", |window, path| {
            let taken = window.imp().machines_view.names();
            let wizard = VireoNewMachineWindow::new(window, window.imp().backend.clone(), &taken);
            wizard.choose_source(Source::Kernel);
            wizard.set_kernel(Path::new(&path));
            wizard.present();
        });
        // Opens the wizard on an operating system image, as choosing, dropping or opening
        // the file does.
        let from_image = string_action("new-machine-from-image", |window, path| {
            window.open_os_image(Path::new(&path));
        });
        let serial = string_action("machine-serial", |window, name| {
            let console =
                VireoConsoleWindow::for_machine(window, window.imp().backend.clone(), &name);
            console.show_page("serial");
            console.present();
        });
        self.add_action_entries([
            serial,
            from_image,
            from_kernel,
            clone,
            delete,
            undelete,
            import,
            console,
            properties,
            open_vnc,
            connect_vnc,
        ]);

        self.reload_machines();
        let events = self.imp().backend.events();
        glib::spawn_future_local(glib::clone!(
            #[weak(rename_to = window)]
            self,
            async move {
                while let Ok(event) = events.recv().await {
                    window.refresh_machine(event.domain);
                }
            }
        ));
        glib::timeout_add_local(
            THUMBNAIL_PERIOD,
            glib::clone!(
                #[weak(rename_to = window)]
                self,
                #[upgrade_or]
                glib::ControlFlow::Break,
                move || {
                    window.refresh_thumbnails();
                    glib::ControlFlow::Continue
                }
            ),
        );
    }

    /// The creation wizard; with `import`, on its XML page with that file's text.
    pub(super) fn open_new_machine(&self, import: Option<PathBuf>) {
        let taken = self.imp().machines_view.names();
        let wizard = VireoNewMachineWindow::new(self, self.imp().backend.clone(), &taken);
        if let Some(path) = import {
            match std::fs::read_to_string(&path) {
                Ok(text) => {
                    wizard.set_import_text(&text);
                    wizard.choose_source(Source::Xml);
                }
                Err(e) => {
                    self.show_toast(&format!("{}: {e}", path.display()));
                    return;
                }
            }
        }
        wizard.present();
    }

    /// The creation wizard on the operating system image at `path`.
    pub fn open_os_image(&self, path: &Path) {
        let taken = self.imp().machines_view.names();
        let wizard = VireoNewMachineWindow::new(self, self.imp().backend.clone(), &taken);
        wizard.set_os_image(path);
        wizard.present();
    }

    fn open_vnc(&self, text: &str, password: &str) {
        match Address::parse(text) {
            Some(address) => {
                VireoConsoleWindow::for_address(self, address, text.trim(), password).present()
            }
            None => self.show_toast(&gettext_f(
                "“{address}” is not a VNC address (host:display, host::port or a socket path)",
                &[("address", text)],
            )),
        }
    }

    /// Asks for a server address and an optional password.
    fn ask_vnc_address(&self) {
        let dialog = adw::MessageDialog::new(
            Some(self),
            Some(&gettext("Connect to a VNC Server")),
            Some(&gettext(
                "For example localhost:1, 192.168.1.5::5901 or /run/user/1000/vm.sock",
            )),
        );
        dialog.set_title(Some(&gettext("Connect to a VNC Server")));
        let address = gtk::Entry::builder()
            .placeholder_text(gettext("Address"))
            .activates_default(true)
            .build();
        let password = gtk::PasswordEntry::builder()
            .placeholder_text(gettext("Password (if the server asks)"))
            .activates_default(true)
            .build();
        let fields = gtk::Box::new(gtk::Orientation::Vertical, 6);
        fields.append(&address);
        fields.append(&password);
        dialog.set_extra_child(Some(&fields));
        dialog.add_response("cancel", &gettext("_Cancel"));
        dialog.add_response("connect", &gettext("C_onnect"));
        dialog.set_response_appearance("connect", adw::ResponseAppearance::Suggested);
        dialog.set_default_response(Some("connect"));
        dialog.set_close_response("cancel");
        dialog.connect_response(
            None,
            glib::clone!(
                #[weak(rename_to = window)]
                self,
                move |_, response| {
                    if response == "connect" {
                        window.open_vnc(&address.text(), &password.text());
                    }
                }
            ),
        );
        dialog.present();
    }

    /// The machine's details window (one per machine; an open one comes to the front).
    fn show_properties(&self, name: String) {
        VireoDetailsWindow::for_machine(self, self.imp().backend.clone(), &name).present();
    }

    /// Reads the whole list from the driver (at start-up).
    pub(super) fn reload_machines(&self) {
        let backend = self.imp().backend.clone();
        glib::spawn_future_local(glib::clone!(
            #[weak(rename_to = window)]
            self,
            async move {
                match backend.list().await {
                    Ok(list) => {
                        window.imp().machines_view.set_machines(&list);
                        window.machines_loaded(Some(list.len()));
                        window.refresh_thumbnails();
                    }
                    Err(message) => {
                        window.machines_loaded(None);
                        window.show_toast(&message);
                    }
                }
            }
        ));
    }

    /// Shows what the driver now says about one machine (after one of its events).
    fn refresh_machine(&self, name: String) {
        let backend = self.imp().backend.clone();
        glib::spawn_future_local(glib::clone!(
            #[weak(rename_to = window)]
            self,
            async move {
                let lookup = name.clone();
                let info = backend
                    .call(move |c| match c.info(&lookup) {
                        Ok(info) => Ok(Some(info)),
                        Err(DriverError::NotFound(_)) => Ok(None),
                        Err(e) => Err(e),
                    })
                    .await;
                let view = &window.imp().machines_view;
                match info {
                    Ok(Some(info)) => view.upsert(&info),
                    Ok(None) => view.remove(&name),
                    Err(message) => window.show_toast(&message),
                }
                window.refresh_content();
            }
        ));
    }

    fn run_machine_call(&self, name: String, call: MachineCall) {
        let backend = self.imp().backend.clone();
        glib::spawn_future_local(glib::clone!(
            #[weak(rename_to = window)]
            self,
            async move {
                let target = name.clone();
                let result = backend.call(move |c| call(c, &target)).await;
                if let Err(message) = result {
                    window.show_toast(&message);
                }
                // Events update the card too; this covers calls that change nothing visible
                // to the event log (e.g. a refused start).
                window.refresh_machine(name);
            }
        ));
    }

    /// Asks before deleting, offering to remove the disk images made for the machine.
    fn confirm_delete(&self, name: String) {
        let backend = self.imp().backend.clone();
        glib::spawn_future_local(glib::clone!(
            #[weak(rename_to = window)]
            self,
            async move {
                let lookup = name.clone();
                // What the driver would remove: the files it made that no other machine uses.
                let files = backend
                    .call(move |c| {
                        let d = c.store().lookup(&lookup)?;
                        undefine::storage_plan(c, &d, StorageRemoval::VireoMade)
                    })
                    .await
                    .map(|(remove, _kept)| remove)
                    .unwrap_or_default();
                window.present_delete_dialog(name, files);
            }
        ));
    }

    fn present_delete_dialog(&self, name: String, files: Vec<PathBuf>) {
        let dialog = adw::MessageDialog::new(
            Some(self),
            Some(&gettext_f("Delete “{name}”?", &[("name", &name)])),
            Some(&gettext(
                "The machine’s definition is removed. You can undo this for a few seconds.",
            )),
        );
        // A window title too, so that window lists (and the tests) can find the dialog.
        dialog.set_title(Some(&gettext_f("Delete “{name}”?", &[("name", &name)])));
        dialog.add_response("cancel", &gettext("_Cancel"));
        dialog.add_response("delete", &gettext("_Delete"));
        dialog.set_response_appearance("delete", adw::ResponseAppearance::Destructive);
        dialog.set_default_response(Some("cancel"));
        dialog.set_close_response("cancel");
        let check = gtk::CheckButton::with_mnemonic(&gettext("Also delete its disk _images"));
        if !files.is_empty() {
            let list: Vec<String> = files
                .iter()
                .filter_map(|f| f.file_name())
                .map(|f| f.to_string_lossy().into_owned())
                .collect();
            check.set_tooltip_text(Some(&list.join("\n")));
            dialog.set_extra_child(Some(&check));
        }
        dialog.connect_response(
            None,
            glib::clone!(
                #[weak(rename_to = window)]
                self,
                move |_, response| {
                    if response == "delete" {
                        let files = if check.is_active() {
                            files.clone()
                        } else {
                            Vec::new()
                        };
                        window.delete_with_undo(name.clone(), files);
                    }
                }
            ),
        );
        dialog.present();
    }

    /// Hides the machine and removes it only once the Undo toast is gone.
    pub(super) fn delete_with_undo(&self, name: String, files: Vec<PathBuf>) {
        let view = self.imp().machines_view.clone();
        view.set_hidden(&name, true);
        self.refresh_content();
        let toast = adw::Toast::new(&glib::markup_escape_text(&gettext_f(
            "“{name}” deleted",
            &[("name", &name)],
        )));
        toast.set_button_label(Some(&gettext("_Undo")));
        toast.set_timeout(8);
        toast.set_action_name(Some("win.machine-undelete"));
        toast.set_action_target_value(Some(&name.to_variant()));
        toast.connect_dismissed(glib::clone!(
            #[weak(rename_to = window)]
            self,
            move |_| {
                // Undo (win.machine-undelete) showed it again: then nothing is removed.
                if window.imp().machines_view.is_hidden(&name) {
                    window.remove_machine(name.clone(), files.clone());
                }
            }
        ));
        self.imp().toast_overlay.add_toast(toast);
    }

    fn remove_machine(&self, name: String, files: Vec<PathBuf>) {
        let backend = self.imp().backend.clone();
        glib::spawn_future_local(glib::clone!(
            #[weak(rename_to = window)]
            self,
            async move {
                let target = name.clone();
                let storage = if files.is_empty() {
                    StorageRemoval::Keep
                } else {
                    StorageRemoval::VireoMade
                };
                let result = backend
                    .call(move |c| {
                        if c.state(&target)?.0.is_active() {
                            c.destroy(&target)?;
                        }
                        Ok(undefine::undefine(c, &target, storage).map_err(|e| e.to_string()))
                    })
                    .await
                    .and_then(|r| r.map(|_| ()));
                if let Err(message) = result {
                    window.show_toast(&message);
                    window.imp().machines_view.set_hidden(&name, false);
                }
                window.refresh_machine(name);
            }
        ));
    }

    /// New pictures of the running machines' screens, if the user wants them.
    fn refresh_thumbnails(&self) {
        if !self.settings().boolean("show-thumbnails") || !self.is_visible() {
            return;
        }
        let view = self.imp().machines_view.clone();
        let running: Vec<String> = view
            .names()
            .into_iter()
            .filter(|n| {
                view.machine(n)
                    .and_then(|m| m.state())
                    .is_some_and(|s| matches!(s, DomainState::Running | DomainState::Paused))
            })
            .collect();
        for name in running {
            let backend = self.imp().backend.clone();
            glib::spawn_future_local(glib::clone!(
                #[weak]
                view,
                async move {
                    let target = name.clone();
                    let shot = backend
                        .call(move |c| {
                            let file = c.paths().machine_runtime(&target).join("thumbnail.png");
                            c.screenshot(&target, &file)?;
                            Ok(file)
                        })
                        .await;
                    if view.machine(&name).is_some() {
                        let (w, h) = view.thumbnail_size();
                        let texture = shot.ok().and_then(|f| {
                            gtk::gdk_pixbuf::Pixbuf::from_file_at_scale(f, w, h, true).ok()
                        });
                        let texture = texture.map(|p| gdk::Texture::for_pixbuf(&p));
                        // Machines without a display keep their icon.
                        view.set_thumbnail(&name, texture.as_ref());
                    }
                }
            ));
        }
    }
}
