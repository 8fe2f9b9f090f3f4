//! vireo-vmm-api: the boundary between Vireo's driver and its KVM helper, `vireo-vmm`.
//!
//! Both sides link this crate; the driver links nothing else of the VMM, so it builds without
//! KVM, VNC or image-format code. Each rule of the boundary lives here once:
//!
//! - [`config`]: the JSON the driver writes for one machine ([`config::VmConfig`]) and the checks
//!   the VMM makes on it before it touches KVM ([`config::VmConfig::validate`]).
//! - [`scsi`]: virtio-scsi controllers and their CD-ROM drives and disks.
//! - [`flash`]: UEFI firmware as a pair of flash images (code and variable store), checked.
//! - [`pci`]: where the `pc` machine's virtio devices sit on PCI bus 0.
//! - [`limits`]: the numbers both sides check (vCPUs, memory, command line, display,
//!   virtio-mmio slots); the VMM's guest address map is built from the same constants.
//! - [`exit`]: the helper's exit statuses, which tell the supervisor how a machine stopped.
//! - [`logcap`]: the caps on every file a guest can make the host write (serial log, VMM log,
//!   events log), the capped rotating writer and the line rate limiter both sides use.
//! - [`control`]: the control socket's protocol (greeting, requests, replies, events) as types,
//!   with the exact JSON each one is on the wire.
//!
//! What the driver decides from a domain definition (what it refuses, with which element path)
//! lives in vireo-driver's `translate`; what the VMM does with a config lives in vireo-vmm.

pub mod config;
pub mod control;
pub mod exit;
pub mod flash;
pub mod limits;
pub mod logcap;
pub mod pci;
pub mod scsi;
