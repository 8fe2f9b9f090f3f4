//! The operating system a domain runs, as libosinfo's users keep it: virt-manager,
//! virt-install and GNOME Boxes all write
//! `<metadata><libosinfo:libosinfo xmlns:libosinfo='…/domain/1.0'><libosinfo:os id='URI'/>`,
//! so a machine made by any of them shows its system in the others, and ours in theirs.

use crate::domain::Domain;
use crate::order;
use crate::tree::{resolve_prefix, Element};

/// libosinfo's namespace for domain metadata.
pub const LIBOSINFO_NS: &str = "http://libosinfo.org/xmlns/libvirt/domain/1.0";
const PREFIX: &str = "libosinfo";

impl Domain {
    /// The libosinfo id of the domain's operating system (`http://debian.org/debian/12`).
    pub fn libosinfo_os(&self) -> Option<String> {
        let root = self.root();
        let md = root.child("metadata")?;
        let info = self.metadata(LIBOSINFO_NS)?;
        info.elements()
            .find(|e| {
                let chain = [root, md, info, *e];
                e.local_name() == "os"
                    && resolve_prefix(&chain, e.prefix().unwrap_or("")).as_deref()
                        == Some(LIBOSINFO_NS)
            })
            .and_then(|e| e.attr("id").map(|v| v.into_owned()))
            .filter(|id| !id.trim().is_empty())
    }

    /// Records (or with `None` forgets) the operating system; anything else libosinfo's
    /// element holds is dropped with it, as virt-install rewrites the element whole.
    pub fn set_libosinfo_os(&mut self, id: Option<&str>) {
        let style = self.document().style();
        let has_metadata = self.root().child("metadata").is_some();
        if id.is_none() && !has_metadata {
            return;
        }
        // Which children of <metadata> are libosinfo's: decided on the read-only tree, where
        // the prefixes resolve.
        let theirs: Vec<usize> = match self.root().child("metadata") {
            Some(md) => md
                .elements()
                .enumerate()
                .filter(|(_, e)| {
                    let chain = [self.root(), md, *e];
                    resolve_prefix(&chain, e.prefix().unwrap_or("")).as_deref()
                        == Some(LIBOSINFO_NS)
                })
                .map(|(i, _)| i)
                .collect(),
            None => Vec::new(),
        };
        let root = self.document_mut().root_mut();
        let md = root.ensure_child("metadata", order::DOMAIN, &style);
        for i in theirs.into_iter().rev() {
            remove_element(md, i);
        }
        if let Some(id) = id {
            let e = Element::new(format!("{PREFIX}:libosinfo"))
                .with_attr(&format!("xmlns:{PREFIX}"), LIBOSINFO_NS)
                .with_child(Element::new(format!("{PREFIX}:os")).with_attr("id", id));
            md.insert_ordered(e, &[], &style);
        }
        let empty = md.elements().next().is_none();
        if empty {
            root.remove_children_named("metadata");
        }
    }
}

/// Removes the `index`-th child element of `parent` (counting elements only).
fn remove_element(parent: &mut Element, index: usize) {
    let pos = parent
        .nodes()
        .iter()
        .enumerate()
        .filter(|(_, n)| n.as_element().is_some())
        .nth(index)
        .map(|(i, _)| i);
    if let Some(i) = pos {
        parent.nodes_mut().remove(i);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_os_is_read_by_namespace_and_written_as_virt_install_writes_it() {
        let theirs = "<domain type='kvm'><name>a</name><metadata>\
            <lo:libosinfo xmlns:lo='http://libosinfo.org/xmlns/libvirt/domain/1.0'>\
            <lo:os id='http://debian.org/debian/11'/></lo:libosinfo>\
            <other:x xmlns:other='urn:other'/></metadata></domain>";
        let mut d = Domain::parse(theirs).expect("parse");
        assert_eq!(
            d.libosinfo_os().as_deref(),
            Some("http://debian.org/debian/11")
        );
        d.set_libosinfo_os(Some("http://debian.org/debian/12"));
        assert_eq!(
            d.libosinfo_os().as_deref(),
            Some("http://debian.org/debian/12")
        );
        let xml = d.to_xml();
        assert!(!xml.contains("debian/11"), "{xml}");
        assert!(xml.contains("<other:x xmlns:other='urn:other'/>"), "{xml}");
        assert!(xml.contains("<libosinfo:libosinfo xmlns:libosinfo='http://libosinfo.org/xmlns/libvirt/domain/1.0'>"), "{xml}");
        assert!(
            xml.contains("<libosinfo:os id='http://debian.org/debian/12'/>"),
            "{xml}"
        );
        d.set_libosinfo_os(None);
        assert_eq!(d.libosinfo_os(), None);
        assert!(d.to_xml().contains("<other:x"));
    }

    #[test]
    fn another_prefix_bound_elsewhere_is_not_libosinfo() {
        let xml = "<domain type='kvm'><name>a</name><metadata>\
            <libosinfo:libosinfo xmlns:libosinfo='urn:not-it'><libosinfo:os id='x'/>\
            </libosinfo:libosinfo></metadata></domain>";
        let mut d = Domain::parse(xml).expect("parse");
        assert_eq!(d.libosinfo_os(), None);
        d.set_libosinfo_os(None);
        assert!(d.to_xml().contains("urn:not-it"));
        let mut e = Domain::parse("<domain type='kvm'><name>a</name></domain>").expect("parse");
        e.set_libosinfo_os(None);
        assert!(!e.to_xml().contains("metadata"));
        e.set_libosinfo_os(Some("http://x/y"));
        assert_eq!(e.libosinfo_os().as_deref(), Some("http://x/y"));
        e.set_libosinfo_os(None);
        assert!(!e.to_xml().contains("metadata"), "{}", e.to_xml());
    }
}
