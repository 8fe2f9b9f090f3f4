//! The GTK/libadwaita user interface.

pub mod about;
pub mod application;
pub mod backend;
pub mod cdrom_row;
pub mod cli;
pub mod clone_dialog;
pub mod config;
pub mod console_media;
pub mod console_screen;
pub mod console_window;
pub mod details_window;
pub mod help;
pub mod i18n;
pub mod machine_actions;
pub mod machine_card;
pub mod machine_item;
pub mod machines_view;
pub mod media;
pub mod new_machine;
pub mod preferences;
pub mod serial_console;
pub mod usage_graph;
pub mod vnc_session;
pub mod window;
pub mod wizard_xml;

use std::process::ExitCode;

use gtk::prelude::*;
use gtk::{gio, glib};

use application::VireoApplication;

/// Sets up paths, translations and resources, then runs the application until it quits.
pub fn run() -> ExitCode {
    let paths = config::paths();
    paths.export_environment();
    i18n::init();
    glib::set_application_name("Vireo");
    // The machine list is read while GTK starts; the window takes it when it is built.
    backend::prefetch();

    if let Err(err) = gio::resources_register_include!("vireo.gresource") {
        eprintln!("vireo: the built-in resources are damaged: {err}");
        return ExitCode::FAILURE;
    }

    // GSettings aborts the process on a missing schema; say what is wrong instead.
    let schema_found = gio::SettingsSchemaSource::default()
        .and_then(|source| source.lookup(config::APP_ID, true))
        .is_some();
    if !schema_found {
        eprintln!(
            "vireo: {}",
            i18n::gettext_f(
                "the settings schema {id} is not installed; run data/install.sh or start vireo from its build tree",
                &[("id", config::APP_ID)],
            )
        );
        return ExitCode::FAILURE;
    }

    let app = VireoApplication::new();
    // GApplication parses the remaining options itself (e.g. --gapplication-service).
    ExitCode::from(app.run())
}
