//! `vireoctl osinfo-query os`: what libosinfo's database knows, as virt-install's
//! osinfo-query prints it (a table of short id, name, version and id), with its KEY=VALUE
//! filters.

use crate::ctl_exit::{CtlResult, EXIT_ERROR, EXIT_INVALID, EXIT_OK};
use vireo_driver::osinfo::{self, Db, Os};

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
