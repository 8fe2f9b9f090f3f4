//! Parse + write must be lossless for every input the parser accepts, and never panic; the
//! store's UUID peek reads the same files and must never panic either.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vireo_domain::Document;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = vireo_domain::peek::peek_uuid(text);
    }
    let Ok(doc) = Document::parse_bytes(data) else {
        return;
    };
    let out = doc.to_xml();
    assert_eq!(out.as_bytes(), data, "writer is not lossless");
    let again = Document::parse(&out).expect("own output must parse");
    assert_eq!(again, doc);
});
