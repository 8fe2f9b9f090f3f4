//! Opening the user help in yelp, with a toast instead of a crash when that is impossible.

use gtk::prelude::*;
use gtk::{gio, glib};

use super::config::{self, Paths};
use super::i18n::gettext_f;
use super::window::VireoWindow;

/// The help viewer. Looked up in PATH like any GNOME app does.
const VIEWER: &str = "yelp";

/// What yelp is given for one page of the help (`None`: its index): `help:vireo/<page>` when
/// installed, the page file beside index.page in the build tree.
pub fn page_target(paths: &Paths, page: Option<&str>) -> String {
    match page {
        None => paths.help_target.clone(),
        Some(page) => match paths.help_target.strip_suffix("index.page") {
            Some(dir) => format!("{dir}{page}.page"),
            None => format!("{}/{page}", paths.help_target),
        },
    }
}

/// Starts yelp on a page of our help (`None`: its index). Problems are shown in `window` and
/// logged on stderr.
pub fn open(paths: &Paths, page: Option<&str>, window: Option<&VireoWindow>) {
    let launcher = gio::SubprocessLauncher::new(gio::SubprocessFlags::NONE);
    if let Some(dir) = &paths.extra_help_data_dir {
        // yelp resolves help:vireo through XDG_DATA_DIRS; a prefix outside of it must be added.
        let current = std::env::var_os("XDG_DATA_DIRS")
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| "/usr/local/share:/usr/share".into());
        let value = config::prepend_search_path(dir, Some(current));
        launcher.setenv("XDG_DATA_DIRS", value, true);
    }
    if glib::find_program_in_path(VIEWER).is_none() {
        let message = gettext_f(
            "Could not show the help: the help viewer “{viewer}” is not installed",
            &[("viewer", VIEWER)],
        );
        report(window, &message);
        return;
    }
    let target = page_target(paths, page);
    let argv = [std::ffi::OsStr::new(VIEWER), std::ffi::OsStr::new(&target)];
    match launcher.spawn(&argv) {
        Ok(child) => {
            let window = window.map(|w| w.downgrade());
            child.wait_check_async(gio::Cancellable::NONE, move |result| {
                if let Err(err) = result {
                    let message = gettext_f(
                        "Could not show the help: the help viewer “{viewer}” failed ({error})",
                        &[("viewer", VIEWER), ("error", err.message())],
                    );
                    report(window.and_then(|w| w.upgrade()).as_ref(), &message);
                }
            });
        }
        Err(err) => {
            let message = gettext_f(
                "Could not show the help: the help viewer “{viewer}” did not start ({error})",
                &[("viewer", VIEWER), ("error", err.message())],
            );
            report(window, &message);
        }
    }
}

fn report(window: Option<&VireoWindow>, message: &str) {
    eprintln!("vireo: {message}");
    if let Some(window) = window {
        window.show_toast(message);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_are_found_beside_the_index_or_under_the_help_uri() {
        let tree = Paths::detect(None, &[]);
        let page = page_target(&tree, Some("preferences"));
        assert!(page.ends_with("help/C/preferences.page"), "{page}");
        assert!(std::path::Path::new(&page).is_file(), "{page}");
        assert_eq!(page_target(&tree, None), tree.help_target);
        let installed = Paths {
            help_target: "help:vireo".into(),
            ..tree
        };
        assert_eq!(
            page_target(&installed, Some("console")),
            "help:vireo/console"
        );
    }
}
