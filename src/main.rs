//! `vireo`: the GNOME virtual machine manager.
//!
//! `--version` and `--help` are answered here, before GTK is touched, so that they work without a
//! display and print the same version line as `vireoctl` and `vireo-vmm`.

mod gui;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    match gui::cli::parse(&args[1..]) {
        gui::cli::Request::Version => {
            println!("vireo {}", gui::config::VERSION);
            ExitCode::SUCCESS
        }
        gui::cli::Request::Help => {
            gui::i18n::init();
            print!("{}", gui::cli::help_text());
            ExitCode::SUCCESS
        }
        gui::cli::Request::Run => gui::run(),
    }
}
