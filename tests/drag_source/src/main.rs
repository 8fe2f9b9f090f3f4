//! `vireo-drag-source FILE`: a window titled "Drag Source" whose whole area drags FILE as a
//! file list, the way a file manager offers a file. The GUI tests press the pointer on it and
//! release it over Vireo's window (xdotool), so a drop goes through X11's real drag-and-drop
//! protocol between two processes.

use gtk::prelude::*;
use gtk::{gdk, gio, glib};
use std::process::ExitCode;

fn main() -> ExitCode {
    let Some(path) = std::env::args_os().nth(1) else {
        eprintln!("usage: vireo-drag-source FILE");
        return ExitCode::from(2);
    };
    let app = gtk::Application::builder()
        .application_id("org.vireo.DragSource")
        .flags(gio::ApplicationFlags::NON_UNIQUE)
        .build();
    app.connect_activate(move |app| {
        let window = gtk::ApplicationWindow::new(app);
        window.set_title(Some("Drag Source"));
        window.set_default_size(240, 240);
        let area = gtk::Label::new(Some("Drag me"));
        let source = gtk::DragSource::new();
        source.set_actions(gdk::DragAction::COPY);
        let file = gio::File::for_path(&path);
        source.connect_prepare(move |_, _, _| {
            let list = gdk::FileList::from_array(std::slice::from_ref(&file));
            Some(gdk::ContentProvider::for_value(&list.to_value()))
        });
        source.connect_drag_end(|_, _, deleted| {
            eprintln!("vireo-drag-source: drag ended (delete data: {deleted})");
        });
        area.add_controller(source);
        window.set_child(Some(&area));
        window.present();
    });
    let code = app.run_with_args(&[] as &[&str]);
    if code == glib::ExitCode::SUCCESS {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
