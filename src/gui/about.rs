//! The About window.

use adw::prelude::*;
use gettextrs::gettext;

use super::config;

pub fn present(parent: &impl IsA<gtk::Window>) {
    let about = adw::AboutWindow::builder()
        .transient_for(parent)
        .modal(true)
        .title(gettext("About Vireo"))
        .application_name("Vireo")
        .application_icon(config::APP_ID)
        .developer_name(gettext("The Vireo Developers"))
        .version(config::VERSION)
        .comments(gettext(
            "Create, run and use virtual machines on this computer with its own KVM backend.",
        ))
        .website(config::WEBSITE)
        .issue_url(config::ISSUE_URL)
        .copyright(gettext("© 2026 The Vireo Developers"))
        .license_type(gtk::License::Gpl30)
        // Translators: replace with your name and e-mail address, one translator per line.
        .translator_credits(gettext("translator-credits"))
        .debug_info(debug_info())
        .debug_info_filename("vireo-debug-info.txt")
        .build();
    about.present();
}

/// What a bug report needs to know about this run: version, layout and the data paths in use.
fn debug_info() -> String {
    let paths = config::paths();
    let layout = match &paths.layout {
        config::Layout::Installed { prefix } => format!("installed in {}", prefix.display()),
        config::Layout::BuildTree => "build tree".to_owned(),
    };
    format!(
        "Vireo {}\nLayout: {layout}\nLocale directory: {}\nHelp: {}\nGTK {}.{}.{}, libadwaita {}.{}.{}\n",
        config::VERSION,
        paths.locale_dir.display(),
        paths.help_target,
        gtk::major_version(),
        gtk::minor_version(),
        gtk::micro_version(),
        adw::major_version(),
        adw::minor_version(),
        adw::micro_version(),
    )
}
