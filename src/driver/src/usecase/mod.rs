//! What users do to machines, one rule each, for every front end: `vireoctl` and the GUI only
//! map their flags and fields to these calls (as virt-install and virt-manager share virtinst).
//!
//! - [`machine`]: the typed description of a new machine ([`NewMachine`], [`Source`], ...);
//! - [`shape`]: the shipped shape of a new machine, every default in one place;
//! - [`create`](mod@create): [`plan`] (the exact document, no side effects) and [`create()`];
//! - [`edit`](mod@edit): [`edit()`] and [`edit_xml`], one policy for what an edit may do;
//! - [`storage`]: making disk images (`qemu-img`), the one format rule, clean-up;
//! - [`targets`]: disk target names;
//! - [`media`]: CD-ROM media (insert, eject, replace; live and in the definition) and the list
//!   of a machine's drives;
//! - [`clone`](mod@clone): a copy of a machine with its own name, UUID, MACs and disk images
//!   (virt-clone's rules), with progress and clean-up;
//! - [`undefine`](mod@undefine): removing a machine with the storage Vireo made for it, or with
//!   all its storage (virsh's `--remove-all-storage`), found through the typed views;
//! - [`place`]: where an error points ([`Place`], one path format) and the [`Part`] of a
//!   machine it concerns, which a form maps to its field.

pub mod clone;
mod copy;
pub mod create;
pub mod edit;
pub mod machine;
pub mod media;
pub mod place;
pub mod shape;
pub mod storage;
pub mod targets;
pub mod undefine;

pub use create::{create, plan, Created, Plan, PlannedImage, QuickPlan};
pub use edit::{edit, edit_xml, Edited};
pub use machine::{
    DiskFormat, DiskRequest, FirmwareBoot, Graphics, HostKernel, Image, KernelBoot, Lifecycle,
    Media, NewImageAt, NewMachine, Nic, Source,
};
pub use media::{change_media, drives, DriveEntry, MediaAction, MediaError, MediaScope};
pub use place::{Part, Place};
pub use shape::{attach_disk, DEFAULT_IMAGE_FORMAT, DEFAULT_MEMORY_MIB, DEFAULT_VCPUS};
pub use storage::{format_for_name, is_iso_name};
pub use targets::{free_target, Bus};

#[cfg(test)]
mod tests;
