//! Detection of an installer ISO: a volume descriptor (what a user's ISO file holds) checked
//! against an osinfo database file (XML whose label patterns become regular expressions).
//! The first 2048 bytes are the descriptor, the rest the database file. Anything may be
//! refused; nothing may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;
use vireo_driver::osinfo::{parse_file, Db, IsoLabels, PVD_LEN};

fuzz_target!(|data: &[u8]| {
    let (pvd, xml) = data.split_at(data.len().min(PVD_LEN));
    let labels = IsoLabels::parse(pvd).unwrap_or_default();
    let Ok(oses) = parse_file(Path::new("/fuzz/os/input.xml"), xml) else {
        return;
    };
    let db = Db {
        oses,
        skipped: Vec::new(),
    };
    if let Some(d) = db.detect(&labels) {
        let _ = db.recommended(d.os);
    }
    for os in &db.oses {
        let _ = db.recommended(os);
    }
});
