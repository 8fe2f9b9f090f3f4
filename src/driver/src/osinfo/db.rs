//! Loading the database: every `os/**/*.xml` under its root, in path order (so a detection
//! that two entries would both claim is decided the same way every time).

use super::{Detected, IsoLabels, Media, Os, Pattern, Resources};
use std::path::{Path, PathBuf};
use vireo_domain::Element;

/// Why part of the database could not be used.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("{}: cannot read the osinfo database: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {source}", path.display())]
    Xml {
        path: PathBuf,
        #[source]
        source: vireo_domain::Error,
    },
    #[error("{}:{line}: {field}: {why}", path.display())]
    Field {
        path: PathBuf,
        line: u32,
        field: String,
        why: String,
    },
}

/// The operating systems of one database directory.
#[derive(Debug, Default)]
pub struct Db {
    pub oses: Vec<Os>,
    /// Files that could not be read, with why; the rest of the database is still used, as
    /// libosinfo does.
    pub skipped: Vec<DbError>,
}

impl Db {
    /// Loads the database under `root` (`/usr/share/osinfo`). A missing or unreadable root
    /// is an error; a broken file is skipped and listed.
    pub fn load(root: &Path) -> Result<Db, DbError> {
        let os_dir = root.join("os");
        let mut files = Vec::new();
        collect_xml(&os_dir, &mut files)?;
        files.sort();
        let mut db = Db::default();
        for file in files {
            match std::fs::read(&file)
                .map_err(|source| DbError::Io {
                    path: file.clone(),
                    source,
                })
                .and_then(|bytes| parse_file(&file, &bytes))
            {
                Ok(oses) => db.oses.extend(oses),
                Err(e) => db.skipped.push(e),
            }
        }
        Ok(db)
    }

    /// The OS with this id or short id.
    pub fn get(&self, name: &str) -> Option<&Os> {
        self.oses
            .iter()
            .find(|o| o.id == name || o.short_ids.iter().any(|s| s == name))
    }

    /// The first OS (in path order) with an x86 medium whose labels `labels` carries.
    pub fn detect(&self, labels: &IsoLabels) -> Option<Detected<'_>> {
        self.oses.iter().find_map(|os| {
            os.media
                .iter()
                .filter(|m| matches!(m.arch.as_str(), "x86_64" | "i686" | "all"))
                .find(|m| m.matches(labels))
                .map(|m| Detected { os, live: m.live })
        })
    }

    /// `os`'s recommended resources, each filled in from its minimum, then from the OSes it
    /// derives from, where it names none.
    pub fn recommended(&self, os: &Os) -> Resources {
        let mut r = Resources::default();
        let mut at = Some(os);
        let mut hops = 0;
        while let Some(o) = at {
            for from in [&o.recommended, &o.minimum] {
                r.n_cpus = r.n_cpus.or(from.n_cpus);
                r.ram = r.ram.or(from.ram);
                r.storage = r.storage.or(from.storage);
            }
            hops += 1;
            // A loop in derives-from is the database's mistake; a short walk ends it.
            at = o
                .derives_from
                .as_deref()
                .filter(|_| hops < 16)
                .and_then(|id| self.get(id));
        }
        r
    }
}

fn collect_xml(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), DbError> {
    let io = |source| DbError::Io {
        path: dir.to_owned(),
        source,
    };
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        if path.is_dir() {
            collect_xml(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "xml") {
            out.push(path);
        }
    }
    Ok(())
}

/// The `<os>` entries of one database file (`path` is for error messages).
pub fn parse_file(path: &Path, bytes: &[u8]) -> Result<Vec<Os>, DbError> {
    let doc = vireo_domain::Document::parse_bytes(bytes).map_err(|source| DbError::Xml {
        path: path.to_owned(),
        source,
    })?;
    doc.root()
        .children_named("os")
        .map(|e| parse_os(path, e))
        .collect()
}

/// Text of an element without `xml:lang`, i.e. the untranslated one.
fn plain<'e>(e: &'e Element, name: &'e str) -> impl Iterator<Item = &'e Element> + 'e {
    e.children_named(name)
        .filter(|c| c.attr("xml:lang").is_none())
}

fn field_error(path: &Path, e: &Element, field: &str, why: String) -> DbError {
    DbError::Field {
        path: path.to_owned(),
        line: e.pos.line,
        field: field.to_owned(),
        why,
    }
}

fn parse_os(path: &Path, e: &Element) -> Result<Os, DbError> {
    let id = e
        .attr("id")
        .map(|s| s.into_owned())
        .ok_or_else(|| field_error(path, e, "os/@id", "missing".into()))?;
    let text = |name: &str| plain(e, name).next().map(|c| c.text().trim().to_owned());
    let mut os = Os {
        short_ids: plain(e, "short-id")
            .map(|c| c.text().trim().to_owned())
            .collect(),
        name: text("name").unwrap_or_else(|| id.clone()),
        version: text("version"),
        vendor: text("vendor"),
        family: text("family"),
        derives_from: e
            .child("derives-from")
            .and_then(|d| d.attr("id"))
            .map(|s| s.into_owned()),
        id,
        ..Os::default()
    };
    for r in e.children_named("resources") {
        if !matches!(r.attr("arch").as_deref(), Some("all" | "x86_64")) {
            continue;
        }
        if let Some(m) = r.child("minimum") {
            os.minimum = resources(path, m)?;
        }
        if let Some(m) = r.child("recommended") {
            os.recommended = resources(path, m)?;
        }
    }
    for f in e.children_named("firmware") {
        if f.attr("arch").as_deref() != Some("x86_64") {
            continue;
        }
        let supported = f.attr("supported").as_deref() != Some("false");
        match f.attr("type").as_deref() {
            Some("efi") => os.uefi_supported |= supported,
            Some("bios") => os.bios_unsupported |= !supported,
            _ => {}
        }
    }
    for m in e.children_named("media") {
        os.media.push(media(path, m)?);
    }
    Ok(os)
}

/// The number in `e`'s child `name`, if it has one.
fn number(path: &Path, e: &Element, name: &str) -> Result<Option<u64>, DbError> {
    e.child(name)
        .map(|c| {
            c.text()
                .trim()
                .parse::<u64>()
                .map_err(|_| field_error(path, c, name, format!("{:?} is not a number", c.text())))
        })
        .transpose()
}

fn resources(path: &Path, e: &Element) -> Result<Resources, DbError> {
    Ok(Resources {
        n_cpus: number(path, e, "n-cpus")?.map(|n| u32::try_from(n).unwrap_or(u32::MAX)),
        ram: number(path, e, "ram")?,
        storage: number(path, e, "storage")?,
    })
}

fn media(path: &Path, e: &Element) -> Result<Media, DbError> {
    let mut m = Media {
        arch: e
            .attr("arch")
            .map(|s| s.into_owned())
            .unwrap_or_else(|| "all".into()),
        live: e.attr("live").as_deref() == Some("true"),
        ..Media::default()
    };
    let Some(iso) = e.child("iso") else {
        return Ok(m);
    };
    let re = |name: &str| -> Result<Option<Pattern>, DbError> {
        iso.child(name)
            .map(|c| Pattern::parse(c.text().trim()).map_err(|why| field_error(path, c, name, why)))
            .transpose()
    };
    m.volume_id = re("volume-id")?;
    m.system_id = re("system-id")?;
    m.publisher_id = re("publisher-id")?;
    m.application_id = re("application-id")?;
    m.volume_size = number(path, iso, "volume-size")?;
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"<?xml version="1.0"?>
<libosinfo version="0.0.1">
  <os id="http://example.org/base/1">
    <short-id>base1</short-id>
    <name>Base 1</name>
    <resources arch="all">
      <minimum><n-cpus>1</n-cpus><ram>536870912</ram><storage>4294967296</storage></minimum>
    </resources>
  </os>
  <os id="http://example.org/thing/2">
    <short-id>thing2</short-id>
    <short-id>thingtwo</short-id>
    <name>Thing 2</name>
    <name xml:lang="de">Ding 2</name>
    <version>2</version>
    <vendor>Example &amp; Co</vendor>
    <derives-from id="http://example.org/base/1"/>
    <resources arch="x86_64">
      <recommended><ram>2147483648</ram></recommended>
    </resources>
    <firmware arch="x86_64" type="efi"/>
    <firmware arch="x86_64" type="bios" supported="false"/>
    <media arch="aarch64"><iso><volume-id>Thing 2 arm64</volume-id></iso></media>
    <media arch="x86_64" live="true">
      <iso><volume-id>Thing 2\.\d+ amd64</volume-id><system-id>LINUX</system-id></iso>
    </media>
  </os>
</libosinfo>
"#;

    fn db() -> Db {
        Db {
            oses: parse_file(Path::new("/db/os/example.xml"), SAMPLE.as_bytes()).unwrap(),
            skipped: Vec::new(),
        }
    }

    fn labels(volume: &str, system: &str) -> IsoLabels {
        IsoLabels {
            volume_id: volume.into(),
            system_id: system.into(),
            ..IsoLabels::default()
        }
    }

    #[test]
    fn an_entry_keeps_its_untranslated_name_and_its_inherited_resources() {
        let db = db();
        let t = db.get("thingtwo").unwrap();
        assert_eq!(t.name, "Thing 2");
        assert_eq!(t.vendor.as_deref(), Some("Example & Co"));
        assert_eq!(t.short_ids, ["thing2", "thingtwo"]);
        assert!(t.uefi_supported && t.bios_unsupported);
        let r = db.recommended(t);
        assert_eq!(r.ram, Some(2 << 30), "its own recommendation");
        assert_eq!(
            r.storage,
            Some(4 << 30),
            "the minimum of what it derives from"
        );
        assert_eq!(r.n_cpus, Some(1));
    }

    #[test]
    fn an_iso_is_matched_by_every_label_the_database_names() {
        let db = db();
        let d = db.detect(&labels("Thing 2.5 amd64", "LINUX")).unwrap();
        assert_eq!(d.os.id, "http://example.org/thing/2");
        assert!(d.live);
        assert!(db.detect(&labels("Thing 2.5 amd64", "WINDOWS")).is_none());
        assert!(
            db.detect(&labels("Thing 2 arm64", "")).is_none(),
            "not an x86 medium"
        );
        assert!(db.detect(&labels("Something else", "LINUX")).is_none());
    }

    #[test]
    fn a_bad_value_names_file_line_and_field() {
        let bad = SAMPLE.replace("<ram>2147483648</ram>", "<ram>lots</ram>");
        let e = parse_file(Path::new("/db/os/bad.xml"), bad.as_bytes()).unwrap_err();
        let msg = e.to_string();
        assert!(msg.starts_with("/db/os/bad.xml:19: ram: "), "{msg}");
        let bad = SAMPLE.replace(r"Thing 2\.\d+ amd64", "Thing (");
        let msg = parse_file(Path::new("/db/os/re.xml"), bad.as_bytes())
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("/db/os/re.xml:") && msg.contains("volume-id"),
            "{msg}"
        );
    }

    /// Debian's osinfo-db, where installed (the suite installs it): Debian 11's netinst ISO
    /// is recognised by its volume ID, and the entry has resources.
    #[test]
    fn debians_database_recognises_a_debian_netinst() {
        let root = Path::new(crate::osinfo::SYSTEM_DB);
        if !root.join("os").is_dir() {
            assert!(
                std::env::var_os("CI").is_none(),
                "osinfo-db is not installed"
            );
            eprintln!("no osinfo-db: skipped");
            return;
        }
        let db = Db::load(root).unwrap();
        assert!(db.oses.len() > 100, "{} entries", db.oses.len());
        assert!(db.skipped.is_empty(), "{:?}", db.skipped);
        let d = db
            .detect(&labels("Debian 11.5.0 amd64 n", "LINUX"))
            .unwrap();
        assert_eq!(d.os.short_ids.first().map(String::as_str), Some("debian11"));
        let r = db.recommended(d.os);
        assert!(r.ram.is_some() && r.storage.is_some(), "{r:?}");
    }
}
