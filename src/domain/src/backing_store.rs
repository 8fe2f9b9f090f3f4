//! Typed view of a disk's declared backing chain: `<backingStore>`, nested once per layer.
//!
//! libvirt's shape: `<backingStore type='file'><format type='qcow2'/><source file='…'/>
//! <backingStore …/></backingStore>`, nearest layer first; an empty `<backingStore/>` (no `type`)
//! ends the chain and says "no backing file"; no `<backingStore>` at all leaves the chain
//! undeclared. A layer's format is its `<format type>`, never something read from the file.

use crate::tree::{Element, Style};
use crate::values::{DiskType, ImageFormat};
use crate::view::{sub_attr, view};

view!(
    /// `<backingStore>`, under a `<disk>` or under another `<backingStore>`.
    BackingStore
);

impl<E: AsRef<Element>> BackingStore<E> {
    /// An empty `<backingStore/>`: the chain ends here, the layer above has no backing file.
    /// (libvirt reads any `<backingStore>` without `type` so; one with content is not empty.)
    pub fn is_end(&self) -> bool {
        self.e().attr("type").is_none() && self.e().elements().next().is_none()
    }
    /// `backingStore@type` (file, block, ...).
    pub fn store_type(&self) -> Option<DiskType> {
        self.e().attr("type").map(|v| DiskType::from(v.as_ref()))
    }
    /// `format@type`: the layer's declared format.
    pub fn format(&self) -> Option<ImageFormat> {
        sub_attr(self.e(), "format", "type").map(|v| ImageFormat::from(v.as_str()))
    }
    /// `source@file`, or `@dev` for a block layer.
    pub fn source(&self) -> Option<String> {
        let attr = match self.store_type() {
            Some(DiskType::Block) => "dev",
            _ => "file",
        };
        sub_attr(self.e(), "source", attr)
    }
}

impl<'a> BackingStore<&'a Element> {
    /// The first `<backingStore>` under `e` (a disk or a layer) whose path is `path`.
    pub(crate) fn first_under(
        e: &'a Element,
        style: &Style,
        path: &str,
    ) -> Option<BackingStore<&'a Element>> {
        e.child("backingStore")
            .map(|b| BackingStore::wrap(b, style.clone(), format!("{path}/backingStore")))
    }

    /// The next layer down, if declared.
    pub fn backing_store(&self) -> Option<BackingStore<&'a Element>> {
        Self::first_under(self.el, &self.style, &self.path)
    }
}

#[cfg(test)]
mod tests {
    use crate::values::{DiskType, ImageFormat};
    use crate::Domain;

    fn disk_xml(inner: &str) -> String {
        format!(
            "<domain type='kvm'><name>t</name><memory>1024</memory><devices>\
             <disk type='file' device='disk'><driver name='qemu' type='qcow2'/>\
             <source file='/top.qcow2'/>{inner}<target dev='vda' bus='virtio'/></disk>\
             </devices></domain>"
        )
    }

    #[test]
    fn a_chain_of_two_ends_with_an_empty_element() {
        let d = Domain::parse(&disk_xml(
            "<backingStore type='file' index='1'><format type='qcow2'/><source file='/mid.qcow2'/>\
               <backingStore type='file' index='2'><format type='raw'/><source file='/base.img'/>\
                 <backingStore/></backingStore></backingStore>",
        ))
        .unwrap();
        let devs = d.devices().unwrap();
        let disk = &devs.disks()[0];
        let mid = disk.backing_store().expect("first layer");
        assert_eq!(mid.path(), "domain/devices/disk/backingStore");
        assert!(!mid.is_end());
        assert_eq!(mid.store_type(), Some(DiskType::File));
        assert_eq!(mid.format(), Some(ImageFormat::Qcow2));
        assert_eq!(mid.source().as_deref(), Some("/mid.qcow2"));
        let base = mid.backing_store().expect("second layer");
        assert_eq!(base.path(), "domain/devices/disk/backingStore/backingStore");
        assert_eq!(base.format(), Some(ImageFormat::Raw));
        assert_eq!(base.source().as_deref(), Some("/base.img"));
        let end = base.backing_store().expect("terminator");
        assert!(end.is_end());
        assert_eq!(end.backing_store().map(|b| b.path().to_owned()), None);
    }

    #[test]
    fn absent_empty_and_unformatted_layers() {
        let d = Domain::parse(&disk_xml("")).unwrap();
        assert!(d.devices().unwrap().disks()[0].backing_store().is_none());
        let d = Domain::parse(&disk_xml("<backingStore/>")).unwrap();
        let devs = d.devices().unwrap();
        assert!(devs.disks()[0].backing_store().expect("declared").is_end());
        // No format: the view says so, it does not guess.
        let d = Domain::parse(&disk_xml(
            "<backingStore type='file'><source file='/b.img'/></backingStore>",
        ))
        .unwrap();
        let devs = d.devices().unwrap();
        let b = devs.disks()[0].backing_store().expect("declared");
        assert!(!b.is_end());
        assert_eq!(b.format(), None);
        // Content without a type is not an end: the translation refuses it instead.
        let d = Domain::parse(&disk_xml(
            "<backingStore><format type='raw'/><source file='/b.img'/></backingStore>",
        ))
        .unwrap();
        let devs = d.devices().unwrap();
        let b = devs.disks()[0].backing_store().expect("declared");
        assert!(!b.is_end());
        assert_eq!(b.store_type(), None);
    }
}
