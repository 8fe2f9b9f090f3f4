//! F1 opens the help page about the window it is pressed in, in the real `vireo` under Xvfb:
//! the Preferences, the New Machine assistant (its operating system image page has its own)
//! and the main window (the index). yelp is replaced
//! by a script on PATH that records what it was asked to show; every page it is given exists
//! in the build tree. Screenshots: target/test-output/help-pages-*.png.

mod common;

use std::fs;
use std::path::Path;
use std::thread::sleep;
use std::time::{Duration, Instant};

use common::Desktop;

fn wait_record(record: &Path, what: &str) -> String {
    let start = Instant::now();
    loop {
        if let Ok(text) = fs::read_to_string(record) {
            if !text.is_empty() {
                let _ = fs::remove_file(record);
                return text.trim().to_owned();
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "yelp was not started for {what}"
        );
        sleep(Duration::from_millis(100));
    }
}

fn page(name: &str) -> String {
    let page = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("help/C/{name}.page"));
    assert!(page.is_file(), "{} does not exist", page.display());
    page.display().to_string()
}

#[test]
fn f1_opens_the_page_of_the_window_it_is_pressed_in() {
    let desktop = Desktop::start("help-pages");
    let (record, path) = desktop.fake_yelp();
    let app = desktop.launch(&[("PATH", &path)]);
    let main = desktop.wait_for_window("Vireo");

    app.activate_app("preferences");
    let prefs = desktop.wait_for_window("Preferences");
    sleep(Duration::from_millis(500));
    desktop.screenshot("help-pages-preferences");
    desktop.press(&prefs, "F1");
    assert_eq!(wait_record(&record, "Preferences"), page("preferences"));
    desktop.press(&prefs, "Escape");
    desktop.wait_for_no_window("Preferences");

    app.activate_win("new-machine");
    let wizard = desktop.wait_for_window("New Machine");
    desktop.press(&wizard, "F1");
    assert_eq!(wait_record(&record, "New Machine"), page("create-machine"));
    desktop.press(&wizard, "Escape");
    desktop.wait_for_no_window("New Machine");

    // The operating system image's page has a page of its own.
    app.activate_win_with("new-machine-from-image", "'/nonexistent/system.iso'");
    let wizard = desktop.wait_for_window("New Machine");
    sleep(Duration::from_millis(500));
    desktop.press(&wizard, "F1");
    assert_eq!(
        wait_record(&record, "New Machine on an image"),
        page("install-os")
    );
    desktop.press(&wizard, "Escape");
    desktop.wait_for_no_window("New Machine");

    desktop.press(&main, "F1");
    assert_eq!(wait_record(&record, "the main window"), page("index"));
    assert!(app.quit().success());
}
