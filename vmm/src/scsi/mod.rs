//! SCSI logical units as a virtio-scsi controller serves them: an MMC CD-ROM drive with
//! removable media and an SBC hard disk, on the block back ends virtio-blk uses.
//!
//! INTERFACE SKELETON: the bodies below are placeholders on the `scsi-base` branch only; the
//! `scsi-lu` branch replaces them. The virtio-scsi transport codes against these signatures.

use std::path::{Path, PathBuf};

use crate::virtio::block::image::{DiskBackend, ImageError, ImageOptions};

/// SCSI status byte values the units return.
pub const GOOD: u8 = 0x00;
pub const CHECK_CONDITION: u8 = 0x02;

/// The longest transfer a unit accepts in one command, in bytes; the controller tells the
/// guest (virtio-scsi `max_sectors`, in 512-byte units) so that it never asks for more.
pub const MAX_TRANSFER_BYTES: usize = 1 << 20;

/// Sense data: key, additional sense code and qualifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sense {
    pub key: u8,
    pub asc: u8,
    pub ascq: u8,
}

impl Sense {
    /// Fixed-format sense data (response code 0x70), 18 bytes.
    pub fn fixed(&self) -> [u8; 18] {
        unimplemented!()
    }
}

/// What one command did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// [`GOOD`] or [`CHECK_CONDITION`].
    pub status: u8,
    /// Set with CHECK CONDITION.
    pub sense: Option<Sense>,
    /// Data for the guest, at most the `max_in` the command was given.
    pub data_in: Vec<u8>,
}

/// An image in a drive, or a disk's image: opened (and locked) by [`Medium::open`].
pub struct Medium {
    _private: (),
}

impl Medium {
    /// Opens and locks `opts.path` as declared (CD-ROM media are opened read-only whatever
    /// `opts` says).
    pub fn open(_opts: &ImageOptions) -> Result<Medium, ImageError> {
        unimplemented!()
    }

    /// A medium over any back end (tests, fuzzing).
    pub fn from_backend(_path: PathBuf, _backend: Box<dyn DiskBackend>, _read_only: bool) -> Medium {
        unimplemented!()
    }

    pub fn path(&self) -> &Path {
        unimplemented!()
    }
}

/// Why a host-side media change was refused.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    #[error("the guest has locked the tray of this drive; use force to eject anyway")]
    Locked,
    #[error("this device is a disk, not a CD-ROM drive")]
    NotRemovable,
    #[error("the drive is already empty")]
    AlreadyEmpty,
}

/// What `query-block` shows of a unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitInfo {
    pub cdrom: bool,
    pub medium: Option<PathBuf>,
    pub locked: bool,
    pub tray_open: bool,
}

/// One logical unit.
pub struct LogicalUnit {
    _private: (),
}

impl LogicalUnit {
    /// An MMC CD-ROM drive (2048-byte blocks), empty or with a medium.
    pub fn cdrom(_medium: Option<Medium>) -> LogicalUnit {
        unimplemented!()
    }

    /// An SBC hard disk (512-byte blocks); read-only when the medium is.
    pub fn disk(_medium: Medium) -> LogicalUnit {
        unimplemented!()
    }

    /// Runs one command. `cdb` is the CDB as the guest sent it (the transport passes its
    /// whole CDB field; the unit reads the length the opcode implies and checks it fits);
    /// `data_out` is what the guest wrote for the command; `max_in` is the room in the guest's
    /// data-in buffers. Never panics and never blocks on the guest.
    pub fn execute(&mut self, _cdb: &[u8], _data_out: &[u8], _max_in: usize) -> Outcome {
        unimplemented!()
    }

    /// Inserts or replaces a CD-ROM's medium (the guest sees UNIT ATTENTION, MEDIUM MAY HAVE
    /// CHANGED). A locked tray refuses unless `force`.
    pub fn change_medium(&mut self, _medium: Medium, _force: bool) -> Result<(), MediaError> {
        unimplemented!()
    }

    /// Takes a CD-ROM's medium out. A locked tray refuses unless `force` (which also unlocks).
    pub fn eject(&mut self, _force: bool) -> Result<(), MediaError> {
        unimplemented!()
    }

    pub fn info(&self) -> UnitInfo {
        unimplemented!()
    }

    /// `Some(new medium)` once after the guest itself changed the medium (START STOP UNIT
    /// with LoEj: the medium is ejected, so `Some(None)`); the transport turns it into a
    /// `medium-changed` event.
    pub fn take_guest_change(&mut self) -> Option<Option<PathBuf>> {
        unimplemented!()
    }
}
