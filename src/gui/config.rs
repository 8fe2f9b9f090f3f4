//! Where Vireo finds its data: in an installed prefix or in the build tree.
//!
//! An installed `vireo` lives in `PREFIX/bin` next to `PREFIX/share/glib-2.0/schemas` holding our
//! schema; everything is then looked up under that prefix, so any prefix works without rebuilding.
//! Otherwise the binary runs from the build tree and uses what src/build.rs compiled into `OUT_DIR`
//! (schemas, translations) and the source tree's help pages.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

pub const APP_ID: &str = "org.vireo.Vireo";
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
pub const GETTEXT_PACKAGE: &str = "vireo";
pub const RESOURCE_BASE: &str = "/org/vireo/Vireo";
pub const WEBSITE: &str = "https://gitlab.gnome.org/World/vireo";
pub const ISSUE_URL: &str = "https://gitlab.gnome.org/World/vireo/-/issues";

const BUILD_SCHEMA_DIR: &str = concat!(env!("OUT_DIR"), "/schemas");
const BUILD_LOCALE_DIR: &str = concat!(env!("OUT_DIR"), "/locale");
const SOURCE_DIR: &str = env!("CARGO_MANIFEST_DIR");

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    Installed { prefix: PathBuf },
    BuildTree,
}

#[derive(Debug, Clone)]
pub struct Paths {
    pub layout: Layout,
    pub locale_dir: PathBuf,
    /// A schema directory GLib would not search by itself, to be put into GSETTINGS_SCHEMA_DIR.
    pub extra_schema_dir: Option<PathBuf>,
    /// What to hand to yelp.
    pub help_target: String,
    /// A data directory yelp must search to resolve `help:vireo`, if it would not by default.
    pub extra_help_data_dir: Option<PathBuf>,
}

static PATHS: OnceLock<Paths> = OnceLock::new();

/// The paths of this run, worked out once.
pub fn paths() -> &'static Paths {
    PATHS.get_or_init(|| {
        let exe = std::env::current_exe().ok();
        let data_dirs = glib_data_dirs(
            std::env::var_os("XDG_DATA_HOME"),
            std::env::var_os("XDG_DATA_DIRS"),
            std::env::var_os("HOME"),
        );
        Paths::detect(exe.as_deref(), &data_dirs)
    })
}

impl Paths {
    pub fn detect(exe: Option<&Path>, data_dirs: &[PathBuf]) -> Paths {
        match exe.and_then(installed_prefix) {
            Some(prefix) => {
                let share = prefix.join("share");
                let searched = data_dirs.iter().any(|d| same_dir(d, &share));
                Paths {
                    locale_dir: share.join("locale"),
                    extra_schema_dir: (!searched).then(|| share.join("glib-2.0").join("schemas")),
                    help_target: format!("help:{GETTEXT_PACKAGE}"),
                    extra_help_data_dir: (!searched).then(|| share.clone()),
                    layout: Layout::Installed { prefix },
                }
            }
            None => Paths {
                layout: Layout::BuildTree,
                locale_dir: PathBuf::from(BUILD_LOCALE_DIR),
                extra_schema_dir: Some(PathBuf::from(BUILD_SCHEMA_DIR)),
                help_target: Path::new(SOURCE_DIR)
                    .join("help")
                    .join("C")
                    .join("index.page")
                    .to_string_lossy()
                    .into_owned(),
                extra_help_data_dir: None,
            },
        }
    }

    /// Makes GSettings see our schema. Must run before GIO reads its schema sources, i.e. before
    /// the first `gio::Settings` or `SettingsSchemaSource::default()`, while no other thread runs.
    pub fn export_environment(&self) {
        if let Some(dir) = &self.extra_schema_dir {
            let value = prepend_search_path(dir, std::env::var_os("GSETTINGS_SCHEMA_DIR"));
            std::env::set_var("GSETTINGS_SCHEMA_DIR", value);
        }
    }
}

/// `PREFIX` if `exe` is `PREFIX/bin/<name>` and our schema is installed under `PREFIX`.
fn installed_prefix(exe: &Path) -> Option<PathBuf> {
    let exe = std::fs::canonicalize(exe).unwrap_or_else(|_| exe.to_path_buf());
    let bin = exe.parent()?;
    if bin.file_name()? != "bin" {
        return None;
    }
    let prefix = bin.parent()?;
    let schema = prefix
        .join("share/glib-2.0/schemas")
        .join(format!("{APP_ID}.gschema.xml"));
    schema.is_file().then(|| prefix.to_path_buf())
}

/// The data directories GLib searches, in its order (XDG base directory spec defaults).
pub fn glib_data_dirs(
    data_home: Option<OsString>,
    data_dirs: Option<OsString>,
    home: Option<OsString>,
) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    match data_home.filter(|v| !v.is_empty()) {
        Some(v) => dirs.push(PathBuf::from(v)),
        None => {
            if let Some(home) = home {
                dirs.push(PathBuf::from(home).join(".local/share"));
            }
        }
    }
    let system = data_dirs
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| OsString::from("/usr/local/share:/usr/share"));
    dirs.extend(std::env::split_paths(&system).filter(|p| !p.as_os_str().is_empty()));
    dirs
}

fn same_dir(a: &Path, b: &Path) -> bool {
    let norm = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    norm(a) == norm(b)
}

pub fn prepend_search_path(dir: &Path, existing: Option<OsString>) -> OsString {
    let mut parts = vec![dir.to_path_buf()];
    if let Some(existing) = existing {
        parts.extend(std::env::split_paths(&existing).filter(|p| p.as_path() != dir));
    }
    std::env::join_paths(parts).unwrap_or_else(|_| dir.as_os_str().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_tree_uses_out_dir_and_source_help() {
        let paths = Paths::detect(Some(Path::new("/nonexistent/target/debug/vireo")), &[]);
        assert_eq!(paths.layout, Layout::BuildTree);
        assert!(paths.locale_dir.starts_with(env!("OUT_DIR")));
        assert!(paths.help_target.ends_with("help/C/index.page"));
        assert!(Path::new(&paths.help_target).is_absolute());
    }

    #[test]
    fn installed_prefix_needs_bin_and_schema() {
        let tmp = std::env::temp_dir().join(format!("vireo-config-test-{}", std::process::id()));
        let schemas = tmp.join("share/glib-2.0/schemas");
        std::fs::create_dir_all(&schemas).unwrap();
        std::fs::create_dir_all(tmp.join("bin")).unwrap();
        let exe = tmp.join("bin/vireo");
        assert_eq!(installed_prefix(&exe), None);
        std::fs::write(schemas.join(format!("{APP_ID}.gschema.xml")), "").unwrap();
        let prefix = installed_prefix(&exe).unwrap();

        let outside = Paths::detect(Some(&exe), &[PathBuf::from("/usr/share")]);
        assert_eq!(
            outside.layout,
            Layout::Installed {
                prefix: prefix.clone()
            }
        );
        assert_eq!(outside.help_target, "help:vireo");
        assert_eq!(
            outside.extra_schema_dir,
            Some(prefix.join("share/glib-2.0/schemas"))
        );
        assert_eq!(outside.extra_help_data_dir, Some(prefix.join("share")));

        let searched = Paths::detect(Some(&exe), &[tmp.join("share")]);
        assert_eq!(searched.extra_schema_dir, None);
        assert_eq!(searched.locale_dir, prefix.join("share/locale"));
        std::fs::remove_dir_all(&tmp).unwrap();
    }

    #[test]
    fn data_dirs_follow_xdg_defaults() {
        let dirs = glib_data_dirs(None, None, Some("/home/u".into()));
        assert_eq!(
            dirs,
            vec![
                PathBuf::from("/home/u/.local/share"),
                PathBuf::from("/usr/local/share"),
                PathBuf::from("/usr/share")
            ]
        );
        let dirs = glib_data_dirs(Some("/d".into()), Some("/a:/b".into()), None);
        assert_eq!(
            dirs,
            vec![
                PathBuf::from("/d"),
                PathBuf::from("/a"),
                PathBuf::from("/b")
            ]
        );
    }

    #[test]
    fn prepending_keeps_order_and_drops_duplicates() {
        let v = prepend_search_path(Path::new("/x"), Some("/y:/x:/z".into()));
        assert_eq!(v, OsString::from("/x:/y:/z"));
        assert_eq!(
            prepend_search_path(Path::new("/x"), None),
            OsString::from("/x")
        );
    }
}
