//! libvirt-compatible domain XML: the document model every other part of Vireo edits.
