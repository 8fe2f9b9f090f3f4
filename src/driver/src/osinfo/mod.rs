//! What libosinfo's database (Debian's `osinfo-db`) knows about operating systems, read
//! directly from its XML: names, versions, recommended resources, firmware, and the labels of
//! their installer and live media, so that an ISO is recognised as libosinfo would (each label
//! the database gives is a regular expression that must match the ISO's label; the database's
//! patterns are PCRE, look-arounds included, hence fancy-regex).
//!
//! Read by our own parser rather than through libosinfo: the driver stays free of GObject,
//! and the part we use (OS entries, their resources and media labels) is a small, stable
//! subset of the format.

mod db;
mod iso;
mod profile;

pub use db::{parse_file, Db, DbError};
pub use iso::{IsoError, IsoLabels, PVD_LEN};
pub use profile::{
    resolve, ChoiceError, HostLimits, OsChoice, Profile, Resolved, GENERIC_DISK_BYTES,
    GENERIC_MEMORY_MIB, GENERIC_VCPUS,
};

/// Where Debian's osinfo-db installs the database.
pub const SYSTEM_DB: &str = "/usr/share/osinfo";

/// The database to read: `OSINFO_SYSTEM_DIR` where set (libosinfo's own override), else
/// [`SYSTEM_DB`].
pub fn system_db() -> std::path::PathBuf {
    std::env::var_os("OSINFO_SYSTEM_DIR")
        .filter(|v| !v.is_empty())
        .map_or_else(|| SYSTEM_DB.into(), Into::into)
}

/// The namespace virt-manager, GNOME Boxes and virt-install keep the detected OS under in a
/// domain's `<metadata>`.
pub use vireo_domain::LIBOSINFO_NS;

/// One operating system of the database.
#[derive(Debug, Clone, Default)]
pub struct Os {
    /// The URI that names it (`http://debian.org/debian/11`).
    pub id: String,
    /// The short ids, first the preferred one (`debian11`).
    pub short_ids: Vec<String>,
    pub name: String,
    pub version: Option<String>,
    pub vendor: Option<String>,
    pub family: Option<String>,
    pub derives_from: Option<String>,
    pub minimum: Resources,
    pub recommended: Resources,
    pub media: Vec<Media>,
    /// `<firmware type='efi'>` for x86_64 and not `supported='false'`.
    pub uefi_supported: bool,
    /// `<firmware type='bios' supported='false'>` for x86_64: UEFI only.
    pub bios_unsupported: bool,
}

/// Resources for x86_64 (or for all architectures), any of them unknown.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Resources {
    pub n_cpus: Option<u32>,
    pub ram: Option<u64>,
    pub storage: Option<u64>,
}

/// The system database, read once per process (a few hundred milliseconds) and kept: front
/// ends that detect media more than once (the wizard) pay for it once.
pub fn shared_db() -> Result<&'static Db, std::sync::Arc<DbError>> {
    static DB: std::sync::OnceLock<Result<Db, std::sync::Arc<DbError>>> =
        std::sync::OnceLock::new();
    DB.get_or_init(|| Db::load(&system_db()).map_err(std::sync::Arc::new))
        .as_ref()
        .map_err(std::sync::Arc::clone)
}

/// One of the database's label patterns. Its syntax is checked when the database is read;
/// it is compiled the first time an ISO is held against it, since compiling all four thousand
/// of them costs far more than reading the database (a detection stops at the first medium
/// that matches, and looks at the other labels only of a medium whose volume ID did).
#[derive(Debug, Clone)]
pub struct Pattern {
    source: String,
    compiled: std::sync::OnceLock<Option<fancy_regex::Regex>>,
}

impl Pattern {
    /// A pattern whose syntax fancy-regex accepts; the error says what is wrong.
    pub fn parse(source: &str) -> Result<Pattern, String> {
        fancy_regex::Expr::parse_tree(source).map_err(|e| e.to_string())?;
        Ok(Pattern {
            source: source.to_owned(),
            compiled: std::sync::OnceLock::new(),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether the pattern matches somewhere in `value`. One that does not compile, or that
    /// gives up (fancy-regex's backtracking limit), matches nothing.
    pub fn is_match(&self, value: &str) -> bool {
        self.compiled
            .get_or_init(|| fancy_regex::Regex::new(&self.source).ok())
            .as_ref()
            .is_some_and(|r| r.is_match(value).unwrap_or(false))
    }
}

/// One installer or live medium: the labels an ISO must carry to be it.
#[derive(Debug, Clone, Default)]
pub struct Media {
    pub arch: String,
    pub live: bool,
    pub volume_id: Option<Pattern>,
    pub system_id: Option<Pattern>,
    pub publisher_id: Option<Pattern>,
    pub application_id: Option<Pattern>,
    pub volume_size: Option<u64>,
}

impl Media {
    /// Whether an ISO with `labels` is this medium: every label the database names matches
    /// (unanchored, as GLib's `g_regex_match_simple` in libosinfo), the size if it names one.
    /// A medium without a volume ID (a network tree, an `<iso>` naming only the system) says
    /// too little to be told from other ISOs, and matches none.
    pub fn matches(&self, labels: &IsoLabels) -> bool {
        let ok = |re: &Option<Pattern>, value: &str| re.as_ref().is_none_or(|r| r.is_match(value));
        self.volume_id.is_some()
            && ok(&self.volume_id, &labels.volume_id)
            && ok(&self.system_id, &labels.system_id)
            && ok(&self.publisher_id, &labels.publisher_id)
            && ok(&self.application_id, &labels.application_id)
            && self.volume_size.is_none_or(|s| s == labels.volume_size)
    }
}

/// What an ISO was found to be.
#[derive(Debug, Clone)]
pub struct Detected<'a> {
    pub os: &'a Os,
    /// The medium is a live system (try it) rather than only an installer.
    pub live: bool,
}
