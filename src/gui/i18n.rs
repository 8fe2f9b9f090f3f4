//! Gettext set-up for the `vireo` domain.

use gettextrs::{bind_textdomain_codeset, bindtextdomain, setlocale, textdomain, LocaleCategory};

use super::config;

/// Binds the `vireo` domain to this run's locale directory and follows LANG/LC_*/LANGUAGE.
pub fn init() {
    let locale = setlocale(LocaleCategory::LcAll, "");
    // glibc ignores LANGUAGE while the locale is plain "C", which is what a container or a CI
    // job without LANG gets. A user who sets LANGUAGE wants translations, so move to C.UTF-8
    // (always present in glibc ≥ 2.35), where LANGUAGE is honoured and UTF-8 output works.
    let is_plain_c = matches!(locale.as_deref(), None | Some(b"C") | Some(b"POSIX"));
    let wants_language = std::env::var_os("LANGUAGE").is_some_and(|v| !v.is_empty());
    if is_plain_c && wants_language {
        setlocale(LocaleCategory::LcAll, "C.UTF-8");
    }
    let dir = &config::paths().locale_dir;
    // Failing to bind only means untranslated strings; the app stays usable, so warn and go on.
    if let Err(err) = bindtextdomain(config::GETTEXT_PACKAGE, dir.as_path()) {
        eprintln!("vireo: cannot use translations in {}: {err}", dir.display());
    }
    if let Err(err) = bind_textdomain_codeset(config::GETTEXT_PACKAGE, "UTF-8") {
        eprintln!("vireo: cannot set the translation codeset to UTF-8: {err}");
    }
    if let Err(err) = textdomain(config::GETTEXT_PACKAGE) {
        eprintln!("vireo: cannot select the translation domain: {err}");
    }
}

/// Translates `msgid` and fills its `{name}` placeholders. Translators may reorder them.
pub fn gettext_f(msgid: &str, args: &[(&str, &str)]) -> String {
    fill(&gettextrs::gettext(msgid), args)
}

fn fill(template: &str, args: &[(&str, &str)]) -> String {
    let mut out = template.to_owned();
    for (name, value) in args {
        out = out.replace(&format!("{{{name}}}"), value);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::fill;

    #[test]
    fn placeholders_are_filled_by_name() {
        assert_eq!(fill("{b} then {a}", &[("a", "1"), ("b", "2")]), "2 then 1");
        assert_eq!(fill("no placeholders", &[("a", "1")]), "no placeholders");
    }
}
