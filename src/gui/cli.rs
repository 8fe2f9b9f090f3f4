//! The few command-line options `vireo` answers itself. Everything else goes to GApplication.

use gettextrs::gettext;

#[derive(Debug, PartialEq, Eq)]
pub enum Request {
    Version,
    Help,
    Run,
}

/// Looks only for the options that must work without a display. The first one wins, like
/// GApplication would do; options after `--` belong to the application and are left alone.
pub fn parse(args: &[String]) -> Request {
    for arg in args {
        match arg.as_str() {
            "--" => break,
            "--version" | "-V" => return Request::Version,
            "--help" | "-h" | "-?" => return Request::Help,
            _ => {}
        }
    }
    Request::Run
}

pub fn help_text() -> String {
    let mut text = String::new();
    text.push_str(&gettext("Usage: vireo [OPTION…]"));
    text.push_str("\n\n");
    text.push_str(&gettext(
        "Vireo manages virtual machines on this computer and shows their consoles.",
    ));
    text.push_str("\n\n");
    text.push_str(&gettext("Options:"));
    text.push('\n');
    text.push_str(&format!(
        "  -h, --help       {}\n",
        gettext("Show this help and exit")
    ));
    text.push_str(&format!(
        "  -V, --version    {}\n",
        gettext("Show the version and exit")
    ));
    text.push('\n');
    text.push_str(&gettext(
        "The command-line tool vireoctl controls the same machines without a window.",
    ));
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn version_and_help_are_found_anywhere_before_double_dash() {
        assert_eq!(parse(&args(&["--version"])), Request::Version);
        assert_eq!(parse(&args(&["-V"])), Request::Version);
        assert_eq!(parse(&args(&["--foo", "--help"])), Request::Help);
        assert_eq!(parse(&args(&["--", "--version"])), Request::Run);
        assert_eq!(parse(&args(&[])), Request::Run);
    }

    #[test]
    fn help_names_both_options() {
        let text = help_text();
        assert!(text.contains("--help"));
        assert!(text.contains("--version"));
    }
}
