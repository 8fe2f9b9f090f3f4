//! `vireoctl osinfo-query os`: what libosinfo's database knows, as virt-install's
//! osinfo-query prints it (a table of short id, name, version and id), with its KEY=VALUE
//! filters.

use crate::ctl_exit::{CtlResult, EXIT_ERROR, EXIT_INVALID, EXIT_OK};
use std::path::Path;
use vireo_driver::osinfo::{self, Db, HostLimits, Os, OsChoice, Resolved};

/// `--osinfo SPEC` as virt-install spells it: `detect=on[,require=on|off]`, `NAME`,
/// `name=|short-id=|id=NAME`, `generic` (also `none`).
pub fn choice(spec: &str) -> Result<OsChoice, String> {
    let mut detect = None;
    let mut require = false;
    let mut named = None;
    for (i, part) in spec.split(',').map(str::trim).enumerate() {
        let bad = |what: &str| format!("--osinfo {spec}: {what}");
        let on_off = |v: &str| match v {
            "on" | "yes" | "true" => Ok(true),
            "off" | "no" | "false" => Ok(false),
            _ => Err(bad(&format!("'{v}' is not on or off"))),
        };
        match part.split_once('=') {
            Some(("detect", v)) => detect = Some(on_off(v)?),
            Some(("require", v)) => require = on_off(v)?,
            Some(("name" | "short-id" | "id", v)) if !v.is_empty() => named = Some(v.to_owned()),
            None if i == 0 && !part.is_empty() => named = Some(part.to_owned()),
            _ => {
                return Err(bad(&format!(
                    "'{part}' is not understood (NAME, detect=on, require=on|off, generic)"
                )))
            }
        }
    }
    match (named, detect) {
        (Some(_), Some(true)) => Err(format!(
            "--osinfo {spec}: name a system or detect it, not both"
        )),
        (Some(n), _) if n == "generic" || n == "none" => Ok(OsChoice::Generic),
        (Some(n), _) => Ok(OsChoice::Named(n)),
        (None, Some(true)) => Ok(OsChoice::Detect { require }),
        (None, _) => Ok(OsChoice::Generic),
    }
}

/// The system `choice` names, from the installed database.
pub fn resolve(choice: &OsChoice, iso: Option<&Path>) -> Result<Resolved, (u8, String)> {
    if *choice == OsChoice::Generic {
        return osinfo::resolve(&Db::default(), choice, iso, &HostLimits::here())
            .map_err(|e| (EXIT_INVALID, e.to_string()));
    }
    let db = Db::load(&osinfo::system_db())
        .map_err(|e| (EXIT_ERROR, format!("{e} (install osinfo-db)")))?;
    osinfo::resolve(&db, choice, iso, &HostLimits::here())
        .map_err(|e| (EXIT_INVALID, e.to_string()))
}

/// The filter keys and the field each one compares.
const KEYS: [&str; 6] = ["short-id", "name", "version", "vendor", "family", "id"];

fn field<'o>(os: &'o Os, key: &str) -> Vec<&'o str> {
    match key {
        "short-id" => os.short_ids.iter().map(String::as_str).collect(),
        "name" => vec![os.name.as_str()],
        "version" => os.version.as_deref().into_iter().collect(),
        "vendor" => os.vendor.as_deref().into_iter().collect(),
        "family" => os.family.as_deref().into_iter().collect(),
        _ => vec![os.id.as_str()],
    }
}

pub fn query(kind: &str, filters: &[String]) -> CtlResult {
    if kind != "os" {
        return Err((
            EXIT_INVALID,
            format!("osinfo-query {kind}: only 'os' can be listed"),
        ));
    }
    let mut wanted = Vec::new();
    for f in filters {
        let Some((key, value)) = f.split_once('=').filter(|(k, _)| KEYS.contains(k)) else {
            return Err((
                EXIT_INVALID,
                format!(
                    "filter {f:?}: expected KEY=VALUE with KEY one of {}",
                    KEYS.join(", ")
                ),
            ));
        };
        wanted.push((key, value));
    }
    let root = osinfo::system_db();
    let db = Db::load(&root).map_err(|e| (EXIT_ERROR, format!("{e} (install osinfo-db)")))?;
    for skipped in &db.skipped {
        eprintln!("vireoctl: skipped: {skipped}");
    }
    let mut rows: Vec<[&str; 4]> = db
        .oses
        .iter()
        .filter(|os| wanted.iter().all(|(k, v)| field(os, k).contains(v)))
        .map(|os| {
            [
                os.short_ids.first().map_or("", String::as_str),
                os.name.as_str(),
                os.version.as_deref().unwrap_or(""),
                os.id.as_str(),
            ]
        })
        .collect();
    rows.sort();
    let header = ["Short ID", "Name", "Version", "ID"];
    let mut width = header.map(str::len);
    for r in &rows {
        for (w, c) in width.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: [&str; 4]| {
        let mut s = String::new();
        for (i, (c, w)) in cells.iter().zip(width).enumerate() {
            if i > 0 {
                s.push_str(" | ");
            }
            s.push_str(c);
            if i < 3 {
                s.push_str(&" ".repeat(w - c.chars().count()));
            }
        }
        format!(" {}", s.trim_end())
    };
    println!("{}", line(header));
    // As wide as the rows: a leading space and three separators of three.
    println!("{}", "-".repeat(width.iter().sum::<usize>() + 1 + 3 * 3));
    for r in rows {
        println!("{}", line(r));
    }
    Ok(EXIT_OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn osinfo_specs_map_as_virt_install_reads_them() {
        assert_eq!(choice("debian12"), Ok(OsChoice::Named("debian12".into())));
        assert_eq!(
            choice("short-id=debian12"),
            Ok(OsChoice::Named("debian12".into()))
        );
        assert_eq!(choice("detect=on"), Ok(OsChoice::Detect { require: false }));
        assert_eq!(
            choice("detect=on,require=on"),
            Ok(OsChoice::Detect { require: true })
        );
        assert_eq!(choice("generic"), Ok(OsChoice::Generic));
        assert_eq!(
            choice("detect=maybe"),
            Err("--osinfo detect=maybe: 'maybe' is not on or off".into())
        );
        assert_eq!(
            choice("debian12,detect=on"),
            Err("--osinfo debian12,detect=on: name a system or detect it, not both".into())
        );
        assert_eq!(
            choice("colour=blue"),
            Err("--osinfo colour=blue: 'colour=blue' is not understood (NAME, detect=on, require=on|off, generic)".into())
        );
    }
}
