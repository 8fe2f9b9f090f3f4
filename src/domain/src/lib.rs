//! libvirt-compatible domain XML: the document model every other part of Vireo edits.
//!
//! * [`Document`] is a lossless XML tree (quick-xml underneath): writing an unedited document
//!   returns the input byte for byte; every node knows its line and column.
//! * [`Domain`] is the typed, editable view of a `<domain>` document. Edits touch only the
//!   nodes they own; new elements go where libvirt's formatter puts them.
//! * [`Domain::validate`] returns every semantic problem as an [`Error`] with position and
//!   element path.
//! * [`DomainBuilder`] writes new documents, only what it is told (the shape of a new Vireo
//!   machine is the driver's `usecase::shape`); [`caps`] writes `capabilities` and
//!   `domainCapabilities` documents.

pub mod error;
pub mod tree;

pub use error::{Error, ErrorKind, Errors, Position};
pub use tree::{Attribute, Document, Element, Markup, Node, Style, Text};
pub mod backing_store;
pub mod devices;
pub mod domain;
pub mod order;
mod osinfo_meta;
pub mod peek;
pub mod units;
pub mod values;
mod view;

pub use backing_store::BackingStore;
pub use devices::{
    disk_name_index, Chardev, ChardevSpec, Controller, Devices, Disk, DiskSpec, DriveAddress,
    Graphics, GraphicsSpec, Input, Interface, InterfaceSpec, Memballoon, PciAddress, PortForward,
    PortRange, Rng, Video,
};
pub use domain::{Domain, Os, VIREO_NS, VIREO_PREFIX};
pub use osinfo_meta::LIBOSINFO_NS;
pub use units::{parse_size, Bytes, Unit, UnitError};
pub use values::*;
pub mod ids;
mod validate;

pub use ids::{Mac, Uuid};
pub use validate::check_name;
pub mod builder;
pub mod caps;

pub use builder::DomainBuilder;
pub use caps::{capabilities, domain_capabilities, BackendFacts, HostCpu};
