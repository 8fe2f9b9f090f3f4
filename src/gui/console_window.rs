//! The console: a machine's (or any server's) screen over VNC in a window of its own, with
//! scaling (fit, keeping the aspect ratio or not, or actual size; the default is a setting),
//! fullscreen (F11), keyboard capture with a visible hint and Ctrl+Alt to release, a send-keys
//! menu, screenshots to a file, clipboard text typed as keys, and a reconnect when the machine
//! restarts. A machine's console has a second page: its serial console.
//!
//! With `VIREO_TRACE_CONSOLE=1` in the environment, the window prints the number of frames it
//! presented (and the time) once a second on stderr, for the frame-rate benchmark.

use adw::prelude::*;
use adw::subclass::prelude::*;
use gettextrs::gettext;
use glib::translate::IntoGlib;
use gtk::{gdk, gio, glib, CompositeTemplate};
use std::cell::{Cell, OnceCell, RefCell};
use std::time::{Duration, Instant};

use super::backend::Backend;
use super::console_media;
use super::console_screen::ConsoleScreen;
use super::i18n::gettext_f;
use super::serial_console::VireoSerialConsole;
use super::vnc_session::{self, Address, Command, Session, Status};

const CONTROL_L: u32 = 0xffe3;
const ALT_L: u32 = 0xffe9;
const RETURN: u32 = 0xff0d;

mod imp {
    use super::*;

    #[derive(Default, CompositeTemplate)]
    #[template(resource = "/org/vireo/Vireo/ui/console-window.ui")]
    pub struct VireoConsoleWindow {
        #[template_child]
        pub toast_overlay: TemplateChild<adw::ToastOverlay>,
        #[template_child]
        pub header_bar: TemplateChild<adw::HeaderBar>,
        #[template_child]
        pub window_title: TemplateChild<adw::ViewSwitcherTitle>,
        #[template_child]
        pub view_stack: TemplateChild<adw::ViewStack>,
        #[template_child]
        pub serial_page: TemplateChild<adw::ViewStackPage>,
        #[template_child]
        pub serial: TemplateChild<VireoSerialConsole>,
        #[template_child]
        pub scroller: TemplateChild<gtk::ScrolledWindow>,
        #[template_child]
        pub switcher_bar: TemplateChild<adw::ViewSwitcherBar>,
        #[template_child]
        pub keys_button: TemplateChild<gtk::MenuButton>,
        #[template_child]
        pub scaling_button: TemplateChild<gtk::MenuButton>,
        #[template_child]
        pub cdrom_button: TemplateChild<gtk::MenuButton>,
        #[template_child]
        pub screenshot_button: TemplateChild<gtk::Button>,
        #[template_child]
        pub paste_button: TemplateChild<gtk::Button>,
        #[template_child]
        pub grab_hint: TemplateChild<gtk::Label>,
        #[template_child]
        pub stack: TemplateChild<gtk::Stack>,
        #[template_child]
        pub status_page: TemplateChild<adw::StatusPage>,
        #[template_child]
        pub reconnect_button: TemplateChild<gtk::Button>,
        #[template_child]
        pub screen: TemplateChild<gtk::Picture>,
        pub session: RefCell<Option<Session>>,
        /// The guest's screen, shown by `screen`.
        pub picture: ConsoleScreen,
        pub shown_serial: Cell<u64>,
        /// The machine behind the console (None: a server opened by address).
        pub machine: RefCell<Option<String>>,
        pub address: RefCell<Option<Address>>,
        pub password: RefCell<String>,
        pub backend: RefCell<Option<Backend>>,
        pub buttons: Cell<u8>,
        pub grabbed: Cell<bool>,
        /// The application's accelerators, taken away while the keyboard is grabbed.
        pub saved_accels: RefCell<Vec<(String, Vec<String>)>>,
        pub held: RefCell<Vec<u32>>,
        pub settings: OnceCell<gio::Settings>,
        /// The screen is stretched to the window (fit without keeping the aspect ratio).
        pub stretched: Cell<bool>,
        /// Frames presented, and when the trace last printed (VIREO_TRACE_CONSOLE).
        pub frames: Cell<u64>,
        pub trace_since: Cell<Option<Instant>>,
    }

    #[glib::object_subclass]
    impl ObjectSubclass for VireoConsoleWindow {
        const NAME: &'static str = "VireoConsoleWindow";
        type Type = super::VireoConsoleWindow;
        type ParentType = adw::Window;

        fn class_init(klass: &mut Self::Class) {
            VireoSerialConsole::ensure_type();
            klass.bind_template();
        }

        fn instance_init(obj: &glib::subclass::InitializingObject<Self>) {
            obj.init_template();
        }
    }

    impl ObjectImpl for VireoConsoleWindow {
        fn constructed(&self) {
            self.parent_constructed();
            let obj = self.obj();
            obj.setup_actions();
            obj.setup_scaling();
            obj.setup_input();
            obj.setup_frames();
            obj.setup_pages();
        }
    }

    impl WidgetImpl for VireoConsoleWindow {}

    impl WindowImpl for VireoConsoleWindow {
        fn close_request(&self) -> glib::Propagation {
            // Dropping the session tells its task to close the connection.
            self.session.replace(None);
            self.machine.replace(None);
            self.serial.detach();
            // Gives the application's accelerators back if it closes while grabbed.
            self.obj().set_grab(false);
            self.parent_close_request()
        }
    }

    impl AdwWindowImpl for VireoConsoleWindow {}
}

glib::wrapper! {
    pub struct VireoConsoleWindow(ObjectSubclass<imp::VireoConsoleWindow>)
        @extends adw::Window, gtk::Window, gtk::Widget,
        @implements gtk::Buildable, gtk::ConstraintTarget, gtk::Native, gtk::Root,
                    gtk::ShortcutManager;
}

/// Keysyms for a combination such as `ctrl+alt+Delete` (GDK key names after the modifiers).
pub fn combination_keysyms(combo: &str) -> Option<Vec<u32>> {
    combo
        .split('+')
        .map(|part| match part {
            "ctrl" => Some(CONTROL_L),
            "alt" => Some(ALT_L),
            name => gdk::Key::from_name(name).map(|k| k.into_glib()),
        })
        .collect()
}

/// The keysym that types `c` (X keysyms: Latin-1 as is, others 0x01000000 + code point).
pub fn char_keysym(c: char) -> u32 {
    match c {
        '\n' | '\r' => RETURN,
        '\t' => 0xff09,
        c if (' '..='~').contains(&c) || ('\u{a0}'..='\u{ff}').contains(&c) => c as u32,
        c => 0x0100_0000 + c as u32,
    }
}

impl VireoConsoleWindow {
    /// A console for `machine` (its VNC socket is looked up now and at every reconnect).
    pub fn for_machine(parent: &impl IsA<gtk::Window>, backend: Backend, machine: &str) -> Self {
        let window = Self::create(parent, machine, &gettext("Console"));
        let imp = window.imp();
        imp.serial.set_machine(backend.clone(), machine);
        imp.window_title.set_view_switcher_enabled(true);
        imp.backend.replace(Some(backend));
        imp.machine.replace(Some(machine.to_owned()));
        window.reconnect();
        window
    }

    /// Shows a page: "screen" or "serial" (a machine's serial console).
    pub fn show_page(&self, name: &str) {
        self.imp().view_stack.set_visible_child_name(name);
    }

    /// A console for any VNC server.
    pub fn for_address(
        parent: &impl IsA<gtk::Window>,
        address: Address,
        label: &str,
        password: &str,
    ) -> Self {
        let window = Self::create(parent, label, &gettext("Remote Console"));
        let imp = window.imp();
        imp.address.replace(Some(address));
        imp.password.replace(password.to_owned());
        // A server by address has no serial console of ours: one page, no switcher.
        imp.serial_page.set_visible(false);
        window.reconnect();
        window
    }

    fn create(parent: &impl IsA<gtk::Window>, title: &str, subtitle: &str) -> Self {
        let window: Self = glib::Object::builder()
            .property("transient-for", parent)
            .build();
        // Not modal, not destroyed with the main window's dialogs: a console lives on its own.
        window.set_transient_for(None::<&gtk::Window>);
        if let Some(app) = parent.as_ref().application() {
            window.set_application(Some(&app));
        }
        window.set_title(Some(&gettext_f("{name} – Console", &[("name", title)])));
        window.imp().window_title.set_title(title);
        window.imp().window_title.set_subtitle(subtitle);
        window
    }

    fn settings(&self) -> &gio::Settings {
        self.imp()
            .settings
            .get_or_init(|| gio::Settings::new(super::config::APP_ID))
    }

    /// The scaling menu edits the settings themselves: the choice made in one console is the
    /// default of the next, and every open console follows it.
    fn setup_scaling(&self) {
        let settings = self.settings().clone();
        for key in ["console-scaling", "console-keep-aspect"] {
            settings.connect_changed(
                Some(key),
                glib::clone!(
                    #[weak(rename_to = window)]
                    self,
                    move |_, _| window.apply_scaling()
                ),
            );
        }
        self.apply_scaling();
    }

    /// Fit: the picture fills the scroller (keeping the aspect ratio or stretched); actual
    /// size: the picture asks for the guest's size, centred, and the scroller scrolls.
    fn apply_scaling(&self) {
        let imp = self.imp();
        let settings = self.settings();
        let fit = settings.string("console-scaling") != "actual";
        let keep = settings.boolean("console-keep-aspect");
        let screen = &imp.screen;
        screen.set_can_shrink(fit);
        let align = if fit {
            gtk::Align::Fill
        } else {
            gtk::Align::Center
        };
        screen.set_halign(align);
        screen.set_valign(align);
        screen.set_content_fit(if fit && !keep {
            gtk::ContentFit::Fill
        } else {
            gtk::ContentFit::Contain
        });
        imp.stretched.set(fit && !keep);
    }

    fn setup_pages(&self) {
        let imp = self.imp();
        // A narrow window shows the title instead of the switcher: the bar below takes over
        // (only for a machine's console: a server by address has one page).
        imp.window_title.connect_title_visible_notify(glib::clone!(
            #[weak(rename_to = window)]
            self,
            move |title| {
                let imp = window.imp();
                let pages = imp.machine.borrow().is_some();
                imp.switcher_bar
                    .set_reveal(pages && title.is_title_visible());
            }
        ));
        imp.view_stack
            .connect_visible_child_name_notify(glib::clone!(
                #[weak(rename_to = window)]
                self,
                move |stack| {
                    let imp = window.imp();
                    let screen = stack.visible_child_name().as_deref() != Some("serial");
                    imp.keys_button.set_visible(screen);
                    imp.scaling_button.set_visible(screen);
                    imp.screenshot_button.set_visible(screen);
                    imp.paste_button.set_visible(screen);
                    // The console socket is opened when its page is first looked at, so a
                    // screen-only console leaves it free for `vireoctl console`.
                    if stack.visible_child_name().as_deref() == Some("serial") {
                        window.imp().serial.attach();
                    }
                }
            ));
    }

    fn show_status(&self, title: &str, description: &str, reconnect: bool) {
        let imp = self.imp();
        imp.status_page.set_title(title);
        imp.status_page.set_description(Some(description));
        imp.reconnect_button.set_visible(reconnect);
        imp.stack.set_visible_child_name("status");
    }

    pub(super) fn toast(&self, message: &str) {
        self.imp()
            .toast_overlay
            .add_toast(adw::Toast::new(&glib::markup_escape_text(message)));
    }

    /// (Re)connects: a machine's socket is looked up again, as it changes with each start.
    pub fn reconnect(&self) {
        let imp = self.imp();
        imp.session.replace(None);
        self.show_status(&gettext("Connecting…"), "", false);
        let machine = imp.machine.borrow().clone();
        match machine {
            Some(name) => {
                let backend = imp.backend.borrow().clone().unwrap_or_default();
                glib::spawn_future_local(glib::clone!(
                    #[weak(rename_to = window)]
                    self,
                    async move {
                        let target = name.clone();
                        match backend.call(move |c| c.vnc_endpoint(&target)).await {
                            Ok((socket, password)) => {
                                // A machine with a VNC password asks it on its socket too.
                                window.imp().password.replace(password.unwrap_or_default());
                                window.start_session(Address::Unix(socket))
                            }
                            Err(message) => window.wait_for_machine(&message),
                        }
                    }
                ));
            }
            None => {
                if let Some(address) = imp.address.borrow().clone() {
                    self.start_session(address);
                }
            }
        }
    }

    /// The machine is not (yet) running: try again shortly while the window is open.
    fn wait_for_machine(&self, message: &str) {
        self.show_status(&gettext("Waiting for the Machine"), message, true);
        glib::timeout_add_local_once(
            Duration::from_secs(2),
            glib::clone!(
                #[weak(rename_to = window)]
                self,
                move || {
                    let waiting = window.imp().session.borrow().is_none()
                        && window.imp().machine.borrow().is_some()
                        && window.is_visible();
                    if waiting {
                        window.reconnect();
                    }
                }
            ),
        );
    }

    fn start_session(&self, address: Address) {
        let password = self.imp().password.borrow().clone();
        let (session, status) = vnc_session::connect(address, password);
        self.imp().session.replace(Some(session));
        glib::spawn_future_local(glib::clone!(
            #[weak(rename_to = window)]
            self,
            async move {
                while let Ok(update) = status.recv().await {
                    match update {
                        Status::Connected => {
                            window.imp().stack.set_visible_child_name("screen");
                            window.imp().screen.grab_focus();
                            console_media::refresh(&window);
                        }
                        Status::Ended(message) => {
                            window.imp().session.replace(None);
                            console_media::refresh(&window);
                            if window.imp().machine.borrow().is_some() {
                                // A restart ends the helper and its server: follow it.
                                window.wait_for_machine(&message);
                            } else {
                                window.show_status(&gettext("Disconnected"), &message, true);
                            }
                            break;
                        }
                        Status::Refused(reason) => {
                            // Not retried on its own: the same server would send the same.
                            window.imp().session.replace(None);
                            window.show_status(
                                &gettext("Disconnected"),
                                &gettext_f(
                                    "The console stopped the connection because the server sent {reason}.",
                                    &[("reason", &reason.to_string())],
                                ),
                                true,
                            );
                            break;
                        }
                    }
                }
            }
        ));
    }

    /// Presents whole frames at the display's pace: one picture per changed frame.
    fn setup_frames(&self) {
        let imp = self.imp();
        imp.screen.set_paintable(Some(&imp.picture));
        // The renderer is known once the window is realized.
        imp.screen.connect_realize(|screen| {
            let cairo = screen
                .native()
                .and_then(|n| n.renderer())
                .is_some_and(|r| r.is::<gtk::gsk::CairoRenderer>());
            if let Some(window) = screen.root().and_downcast::<VireoConsoleWindow>() {
                window.imp().picture.set_cairo(cairo);
            }
        });
        imp.screen.add_tick_callback(glib::clone!(
            #[weak(rename_to = window)]
            self,
            #[upgrade_or]
            glib::ControlFlow::Break,
            move |_, _| {
                window.present_frame();
                glib::ControlFlow::Continue
            }
        ));
    }

    fn present_frame(&self) {
        let imp = self.imp();
        let session = imp.session.borrow();
        let Some(session) = session.as_ref() else {
            return;
        };
        let Ok(fb) = session.framebuffer.lock() else {
            return;
        };
        if fb.serial == imp.shown_serial.get() || fb.width == 0 || fb.height == 0 {
            return;
        }
        imp.shown_serial.set(fb.serial);
        imp.picture.set_frame(&fb.pixels, fb.width, fb.height);
        drop(fb);
        imp.frames.set(imp.frames.get() + 1);
        self.trace_frames();
    }

    /// Prints the presented-frame count once a second when VIREO_TRACE_CONSOLE is set.
    fn trace_frames(&self) {
        if std::env::var_os("VIREO_TRACE_CONSOLE").is_none() {
            return;
        }
        let imp = self.imp();
        let now = Instant::now();
        match imp.trace_since.get() {
            None => imp.trace_since.set(Some(now)),
            Some(since) if now.duration_since(since) >= Duration::from_secs(1) => {
                eprintln!(
                    "vireo-trace: console-frames {} {}x{}",
                    imp.frames.get(),
                    imp.picture.size().map_or(0, |s| s.0),
                    imp.picture.size().map_or(0, |s| s.1),
                );
                imp.trace_since.set(Some(now));
            }
            Some(_) => {}
        }
    }

    fn send(&self, command: Command) {
        if let Some(session) = self.imp().session.borrow().as_ref() {
            session.send(command);
        }
    }

    fn send_keysyms(&self, keysyms: &[u32]) {
        for &keysym in keysyms {
            self.send(Command::Key { keysym, down: true });
        }
        for &keysym in keysyms.iter().rev() {
            self.send(Command::Key {
                keysym,
                down: false,
            });
        }
    }

    /// Widget coordinates to guest pixels, through the picture's aspect-keeping scale.
    fn guest_point(&self, x: f64, y: f64) -> Option<(u16, u16)> {
        let imp = self.imp();
        let (fw, fh) = imp.picture.size()?;
        let (fw, fh) = (f64::from(fw), f64::from(fh));
        let (w, h) = (
            f64::from(imp.screen.width()),
            f64::from(imp.screen.height()),
        );
        let (sx, sy) = if imp.stretched.get() {
            (w / fw, h / fh)
        } else {
            let scale = (w / fw).min(h / fh);
            (scale, scale)
        };
        if sx <= 0.0 || sy <= 0.0 {
            return None;
        }
        let (ox, oy) = ((w - fw * sx) / 2.0, (h - fh * sy) / 2.0);
        let gx = ((x - ox) / sx).clamp(0.0, fw - 1.0);
        let gy = ((y - oy) / sy).clamp(0.0, fh - 1.0);
        Some((gx as u16, gy as u16))
    }

    fn set_grab(&self, grab: bool) {
        let imp = self.imp();
        if imp.grabbed.get() == grab {
            return;
        }
        imp.grabbed.set(grab);
        imp.grab_hint.set_visible(grab);
        self.set_app_shortcuts(!grab);
        if let Some(toplevel) = self.surface().and_downcast::<gdk::Toplevel>() {
            if grab {
                toplevel.inhibit_system_shortcuts(None::<&gdk::Event>);
            } else {
                toplevel.restore_system_shortcuts();
            }
        }
    }

    /// The application's accelerators (F1, Ctrl+Q, ...) act before any widget sees a key:
    /// while the keyboard is grabbed they are taken away, so that those keys reach the guest.
    /// The grab ends when the window loses the focus, so other windows never miss them long.
    fn set_app_shortcuts(&self, on: bool) {
        let Some(app) = self.application() else {
            return;
        };
        let mut saved = self.imp().saved_accels.borrow_mut();
        if on {
            for (action, accels) in saved.drain(..) {
                let accels: Vec<&str> = accels.iter().map(String::as_str).collect();
                app.set_accels_for_action(&action, &accels);
            }
        } else {
            for action in app.list_action_descriptions() {
                let accels = app.accels_for_action(&action);
                if !accels.is_empty() {
                    saved.push((
                        action.to_string(),
                        accels.iter().map(|a| a.to_string()).collect(),
                    ));
                    app.set_accels_for_action(&action, &[]);
                }
            }
        }
    }

    fn setup_input(&self) {
        let imp = self.imp();
        let keys = gtk::EventControllerKey::new();
        keys.connect_key_pressed(glib::clone!(
            #[weak(rename_to = window)]
            self,
            #[upgrade_or]
            glib::Propagation::Proceed,
            move |_, key, _, state| {
                let imp = window.imp();
                if key == gdk::Key::F11 && !imp.grabbed.get() {
                    window.toggle_fullscreen();
                    return glib::Propagation::Stop;
                }
                let keysym = key.into_glib();
                let release = state.contains(gdk::ModifierType::CONTROL_MASK)
                    && matches!(key, gdk::Key::Alt_L | gdk::Key::Alt_R)
                    || state.contains(gdk::ModifierType::ALT_MASK)
                        && matches!(key, gdk::Key::Control_L | gdk::Key::Control_R);
                if release && imp.grabbed.get() {
                    // Ctrl+Alt gives the keyboard back; lift what the guest saw pressed.
                    let held: Vec<u32> = imp.held.borrow_mut().drain(..).collect();
                    for k in held {
                        window.send(Command::Key {
                            keysym: k,
                            down: false,
                        });
                    }
                    window.set_grab(false);
                    window.imp().header_bar.grab_focus();
                    return glib::Propagation::Stop;
                }
                window.set_grab(true);
                imp.held.borrow_mut().push(keysym);
                window.send(Command::Key { keysym, down: true });
                glib::Propagation::Stop
            }
        ));
        keys.connect_key_released(glib::clone!(
            #[weak(rename_to = window)]
            self,
            move |_, key, _, _| {
                let keysym = key.into_glib();
                window.imp().held.borrow_mut().retain(|k| *k != keysym);
                window.send(Command::Key {
                    keysym,
                    down: false,
                });
            }
        ));
        imp.screen.add_controller(keys);

        let focus = gtk::EventControllerFocus::new();
        focus.connect_leave(glib::clone!(
            #[weak(rename_to = window)]
            self,
            move |_| window.set_grab(false)
        ));
        imp.screen.add_controller(focus);

        let motion = gtk::EventControllerMotion::new();
        motion.connect_motion(glib::clone!(
            #[weak(rename_to = window)]
            self,
            move |_, x, y| {
                if let Some((x, y)) = window.guest_point(x, y) {
                    let buttons = window.imp().buttons.get();
                    window.send(Command::Pointer { x, y, buttons });
                }
            }
        ));
        imp.screen.add_controller(motion);

        let click = gtk::GestureClick::new();
        click.set_button(0);
        let mask = |button: u32| -> u8 {
            match button {
                1 => 1,
                2 => 2,
                3 => 4,
                _ => 0,
            }
        };
        click.connect_pressed(glib::clone!(
            #[weak(rename_to = window)]
            self,
            move |gesture, _, x, y| {
                let imp = window.imp();
                imp.screen.grab_focus();
                imp.buttons
                    .set(imp.buttons.get() | mask(gesture.current_button()));
                if let Some((x, y)) = window.guest_point(x, y) {
                    window.send(Command::Pointer {
                        x,
                        y,
                        buttons: imp.buttons.get(),
                    });
                }
            }
        ));
        click.connect_released(glib::clone!(
            #[weak(rename_to = window)]
            self,
            move |gesture, _, x, y| {
                let imp = window.imp();
                imp.buttons
                    .set(imp.buttons.get() & !mask(gesture.current_button()));
                if let Some((x, y)) = window.guest_point(x, y) {
                    window.send(Command::Pointer {
                        x,
                        y,
                        buttons: imp.buttons.get(),
                    });
                }
            }
        ));
        imp.screen.add_controller(click);
    }

    fn toggle_fullscreen(&self) {
        if self.is_fullscreen() {
            self.unfullscreen();
        } else {
            self.fullscreen();
        }
    }

    fn setup_actions(&self) {
        let group = gio::SimpleActionGroup::new();
        let send_keys = gio::SimpleAction::new("send-keys", Some(glib::VariantTy::STRING));
        send_keys.connect_activate(glib::clone!(
            #[weak(rename_to = window)]
            self,
            move |_, param| {
                let combo = param.and_then(|p| p.get::<String>()).unwrap_or_default();
                match combination_keysyms(&combo) {
                    Some(keysyms) => window.send_keysyms(&keysyms),
                    None => window.toast(&gettext_f("Unknown key “{key}”", &[("key", &combo)])),
                }
            }
        ));
        group.add_action(&send_keys);
        let fullscreen = gio::SimpleAction::new("fullscreen", None);
        fullscreen.connect_activate(glib::clone!(
            #[weak(rename_to = window)]
            self,
            move |_, _| window.toggle_fullscreen()
        ));
        group.add_action(&fullscreen);
        let reconnect = gio::SimpleAction::new("reconnect", None);
        reconnect.connect_activate(glib::clone!(
            #[weak(rename_to = window)]
            self,
            move |_, _| window.reconnect()
        ));
        group.add_action(&reconnect);
        let screenshot = gio::SimpleAction::new("screenshot", None);
        screenshot.connect_activate(glib::clone!(
            #[weak(rename_to = window)]
            self,
            move |_, _| window.save_screenshot()
        ));
        group.add_action(&screenshot);
        let paste = gio::SimpleAction::new("paste", None);
        paste.connect_activate(glib::clone!(
            #[weak(rename_to = window)]
            self,
            move |_, _| window.type_clipboard()
        ));
        group.add_action(&paste);
        console_media::setup(self, &group);
        // Scaling: see setup_scaling.
        group.add_action(&self.settings().create_action("console-scaling"));
        group.add_action(&self.settings().create_action("console-keep-aspect"));
        self.insert_action_group("console", Some(&group));
        // F11 also when the focus is not on the screen (after a click on a header button); the
        // screen's own key handler sees it first and keeps it for the guest while grabbed.
        let shortcuts = gtk::ShortcutController::new();
        shortcuts.add_shortcut(gtk::Shortcut::new(
            gtk::ShortcutTrigger::parse_string("F11"),
            Some(gtk::NamedAction::new("console.fullscreen")),
        ));
        self.add_controller(shortcuts);
    }

    /// Saves the guest's screen (not the window) as PNG in the Pictures folder.
    fn save_screenshot(&self) {
        let Some(texture) = self.imp().picture.texture() else {
            self.toast(&gettext("There is no picture yet"));
            return;
        };
        let dir =
            glib::user_special_dir(glib::UserDirectory::Pictures).unwrap_or_else(glib::home_dir);
        let stamp = glib::DateTime::now_local()
            .and_then(|t| t.format("%Y-%m-%d %H-%M-%S"))
            .map(|s| s.to_string())
            .unwrap_or_default();
        let name = self.imp().window_title.title();
        let path = dir.join(format!("{name} {stamp}.png"));
        match texture.save_to_png(&path) {
            Ok(()) => self.toast(&gettext_f(
                "Screenshot saved to {path}",
                &[("path", &path.to_string_lossy())],
            )),
            Err(e) => self.toast(&format!("{}: {e}", path.display())),
        }
    }

    /// Types the clipboard's text into the guest, key by key.
    fn type_clipboard(&self) {
        let clipboard = self.clipboard();
        glib::spawn_future_local(glib::clone!(
            #[weak(rename_to = window)]
            self,
            async move {
                match clipboard.read_text_future().await {
                    Ok(Some(text)) => {
                        for c in text.chars() {
                            window.send_keysyms(&[char_keysym(c)]);
                        }
                    }
                    Ok(None) => window.toast(&gettext("The clipboard holds no text")),
                    Err(e) => window.toast(&e.to_string()),
                }
            }
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn combinations_become_keysyms() {
        assert_eq!(
            combination_keysyms("ctrl+alt+Delete"),
            Some(vec![CONTROL_L, ALT_L, 0xffff])
        );
        assert_eq!(
            combination_keysyms("ctrl+alt+F12"),
            Some(vec![CONTROL_L, ALT_L, 0xffc9])
        );
        assert_eq!(combination_keysyms("Print"), Some(vec![0xff61]));
        assert_eq!(combination_keysyms("ctrl+NoSuchKey"), None);
    }

    #[test]
    fn characters_become_keysyms() {
        assert_eq!(char_keysym('a'), 0x61);
        assert_eq!(char_keysym('\n'), RETURN);
        assert_eq!(char_keysym('€'), 0x0100_20ac);
    }
}
