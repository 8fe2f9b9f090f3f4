//! Reading one fact from a stored definition without parsing the whole document: the store
//! checks a new machine's UUID against every other definition, and a full parse and validation
//! of each made defining the thousandth machine cost as much as all the others together.

use quick_xml::events::Event;
use quick_xml::Reader;

use crate::ids::Uuid;

/// The UUID in `domain/uuid`, or `None` when the document has none, is not a domain, or is
/// not well-formed up to that element. Stops reading at the element.
pub fn peek_uuid(text: &str) -> Option<Uuid> {
    let mut reader = Reader::from_str(text);
    let mut depth = 0usize;
    let mut in_uuid = false;
    let mut value = String::new();
    loop {
        match reader.read_event().ok()? {
            Event::Start(e) => {
                if depth == 0 && e.local_name().as_ref() != b"domain" {
                    return None;
                }
                in_uuid = depth == 1 && e.name().as_ref() == b"uuid";
                depth += 1;
            }
            Event::Empty(_) if depth == 0 => return None,
            Event::Text(t) if in_uuid => value.push_str(&t.decode().ok()?),
            Event::End(_) => {
                if in_uuid {
                    return Uuid::parse(&value);
                }
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return None;
                }
            }
            Event::Eof => return None,
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_domains_own_uuid_only() {
        let u = "c7a5fdbd-cdaf-9455-926a-d65c16db1809";
        let doc = format!(
            "<?xml version='1.0'?>\n<!-- c -->\n<domain type='kvm'>\n  <name>a</name>\n  <uuid>\n {u} </uuid>\n</domain>"
        );
        assert_eq!(peek_uuid(&doc).map(|x| x.to_string()), Some(u.to_owned()));
        // A uuid deeper down (a device's, metadata's) is not the domain's.
        let nested =
            format!("<domain><metadata><uuid>{u}</uuid></metadata><name>a</name></domain>");
        assert_eq!(peek_uuid(&nested), None);
        assert_eq!(
            peek_uuid(&format!("<network><uuid>{u}</uuid></network>")),
            None
        );
        assert_eq!(peek_uuid("<domain><uuid>not-a-uuid</uuid></domain>"), None);
        assert_eq!(peek_uuid("<domain><uuid>"), None);
        assert_eq!(peek_uuid("<domain/>"), None);
        assert_eq!(peek_uuid(""), None);
    }
}
