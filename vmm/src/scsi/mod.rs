//! SCSI logical units as a virtio-scsi controller serves them: an MMC CD-ROM drive with
//! removable media and an SBC hard disk, on the block back ends virtio-blk uses.
//!
//! A unit answers one command at a time, synchronously, from the CDB, the guest's data-out
//! bytes and the room in its data-in buffers; it never panics and never waits on the guest.
//! Host-side media changes ([`LogicalUnit::change_medium`], [`LogicalUnit::eject`]) leave a
//! UNIT ATTENTION and a media event for the guest, and the guest's own eject is reported back
//! through [`LogicalUnit::take_guest_change`].

mod cdb;
mod cdrom;
mod disk;
mod medium;
mod sense;
mod spc;
#[cfg(test)]
mod tests;

use std::path::PathBuf;

use cdb::Cdb;
pub use medium::{Medium, MemoryBackend};

/// SCSI status byte values the units return.
pub const GOOD: u8 = 0x00;
pub const CHECK_CONDITION: u8 = 0x02;

/// The longest transfer a unit accepts in one command, in bytes; the controller tells the
/// guest (virtio-scsi `max_sectors`, in 512-byte units) so that it never asks for more.
pub const MAX_TRANSFER_BYTES: usize = 1 << 20;

/// A CD-ROM's logical block.
pub const CD_BLOCK_SIZE: u64 = 2048;
/// A disk's logical block.
pub const DISK_BLOCK_SIZE: u64 = 512;

/// Sense data: key, additional sense code and qualifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sense {
    pub key: u8,
    pub asc: u8,
    pub ascq: u8,
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Cdrom,
    Disk,
}

/// A media event waiting for GET EVENT STATUS NOTIFICATION, with its MMC event code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MediaEvent {
    None = 0,
    EjectRequest = 1,
    NewMedia = 2,
    MediaRemoval = 3,
}

/// One logical unit.
pub struct LogicalUnit {
    kind: Kind,
    medium: Option<Medium>,
    serial: String,
    /// Reported (and cleared) by the next command that UNIT ATTENTION applies to.
    unit_attention: Option<Sense>,
    /// The sense of the last command that failed, for a REQUEST SENSE right after it.
    last_sense: Option<Sense>,
    /// The guest's PREVENT MEDIUM REMOVAL.
    locked: bool,
    tray_open: bool,
    event: MediaEvent,
    guest_change: Option<Option<PathBuf>>,
}

impl LogicalUnit {
    fn new(kind: Kind, medium: Option<Medium>) -> LogicalUnit {
        LogicalUnit {
            kind,
            medium,
            serial: String::new(),
            // As after a power-on: the guest's first command learns of the reset.
            unit_attention: Some(Sense::POWER_ON),
            last_sense: None,
            locked: false,
            tray_open: false,
            event: MediaEvent::None,
            guest_change: None,
        }
    }

    /// An MMC CD-ROM drive (2048-byte blocks), empty or with a medium.
    pub fn cdrom(medium: Option<Medium>) -> LogicalUnit {
        LogicalUnit::new(Kind::Cdrom, medium)
    }

    /// An SBC hard disk (512-byte blocks); read-only when the medium is.
    pub fn disk(medium: Medium) -> LogicalUnit {
        LogicalUnit::new(Kind::Disk, Some(medium))
    }

    /// Sets the unit serial number the guest reads (INQUIRY pages 0x80 and 0x83; Linux names
    /// /dev/disk/by-id after it): printable ASCII, at most 64 bytes; anything else is dropped.
    pub fn set_serial(&mut self, serial: &str) {
        self.serial = serial
            .chars()
            .filter(|c| c.is_ascii_graphic())
            .take(64)
            .collect();
    }

    /// Runs one command. `cdb` is the CDB as the guest sent it (the transport passes its
    /// whole CDB field; the unit reads the length the opcode implies and checks it fits);
    /// `data_out` is what the guest wrote for the command; `max_in` is the room in the guest's
    /// data-in buffers. Never panics and never blocks on the guest.
    pub fn execute(&mut self, cdb: &[u8], data_out: &[u8], max_in: usize) -> Outcome {
        let request_sense = cdb.first() == Some(&cdb::REQUEST_SENSE);
        if !request_sense {
            // Sense data lives until the next command (autosense already delivered it).
            self.last_sense = None;
        }
        match self.run(cdb, data_out, max_in) {
            Ok(mut data_in) => {
                data_in.truncate(max_in);
                Outcome {
                    status: GOOD,
                    sense: None,
                    data_in,
                }
            }
            Err(sense) => {
                if !request_sense {
                    self.last_sense = Some(sense);
                }
                Outcome {
                    status: CHECK_CONDITION,
                    sense: Some(sense),
                    data_in: Vec::new(),
                }
            }
        }
    }

    fn run(&mut self, raw: &[u8], data_out: &[u8], max_in: usize) -> Result<Vec<u8>, Sense> {
        // SPC exempts INQUIRY, REQUEST SENSE and REPORT LUNS from a unit attention; MMC also
        // lets the two polling commands (GET CONFIGURATION, GET EVENT STATUS NOTIFICATION)
        // through, so that a poller does not eat the attention meant for the driver.
        let exempt = matches!(
            raw.first().copied(),
            Some(
                cdb::INQUIRY
                    | cdb::REQUEST_SENSE
                    | cdb::REPORT_LUNS
                    | cdb::GET_CONFIGURATION
                    | cdb::GET_EVENT_STATUS_NOTIFICATION
            )
        );
        if !exempt {
            if let Some(ua) = self.unit_attention.take() {
                return Err(ua);
            }
        }
        let cdb = Cdb::decode(raw)?;
        let mut data = self.dispatch(&cdb, data_out, max_in)?;
        if let Some(alloc) = cdb.allocation_length() {
            data.truncate(alloc);
        }
        Ok(data)
    }

    fn dispatch(&mut self, cdb: &Cdb, data_out: &[u8], max_in: usize) -> Result<Vec<u8>, Sense> {
        use cdb::*;
        match cdb.opcode() {
            TEST_UNIT_READY => {
                self.medium_mut()?;
                Ok(Vec::new())
            }
            REQUEST_SENSE => spc::request_sense(self, cdb),
            INQUIRY => spc::inquiry(self, cdb),
            MODE_SENSE_6 | MODE_SENSE_10 => spc::mode_sense(self, cdb),
            MODE_SELECT_6 | MODE_SELECT_10 => spc::mode_select(self, cdb, data_out),
            START_STOP_UNIT => self.start_stop(cdb),
            PREVENT_ALLOW_MEDIUM_REMOVAL => {
                if self.kind == Kind::Cdrom {
                    self.locked = cdb.byte(4) & 1 != 0;
                }
                Ok(Vec::new())
            }
            READ_6 | READ_10 | READ_12 | READ_16 => {
                let block = self.block_size();
                self.medium_mut()?
                    .read_blocks(cdb.lba(), cdb.transfer_blocks(), block, max_in)
            }
            VERIFY_10 | VERIFY_12 | VERIFY_16 => {
                // Comparing with data-out (BYTCHK) is not offered.
                if cdb.byte(1) & 0x06 != 0 {
                    return Err(Sense::INVALID_FIELD);
                }
                let block = self.block_size();
                self.medium_mut()?
                    .check_range(cdb.lba(), cdb.transfer_blocks(), block)?;
                Ok(Vec::new())
            }
            SYNCHRONIZE_CACHE_10 | SYNCHRONIZE_CACHE_16 => {
                if let Some(m) = self.medium.as_mut() {
                    if !m.read_only() {
                        m.flush().map_err(|_| Sense::WRITE_ERROR)?;
                    }
                }
                Ok(Vec::new())
            }
            READ_CAPACITY_10 => {
                let block = self.block_size();
                let blocks = self.medium_mut()?.blocks(block);
                if blocks == 0 {
                    return Err(Sense::NOT_READY);
                }
                let last = u32::try_from(blocks - 1).unwrap_or(u32::MAX);
                let mut d = Vec::with_capacity(8);
                d.extend_from_slice(&last.to_be_bytes());
                d.extend_from_slice(&(block as u32).to_be_bytes());
                Ok(d)
            }
            _ => match self.kind {
                Kind::Cdrom => cdrom::execute(self, cdb),
                Kind::Disk => disk::execute(self, cdb, data_out),
            },
        }
    }

    fn block_size(&self) -> u64 {
        match self.kind {
            Kind::Cdrom => CD_BLOCK_SIZE,
            Kind::Disk => DISK_BLOCK_SIZE,
        }
    }

    /// The medium, or NOT READY with where the tray is.
    fn medium_mut(&mut self) -> Result<&mut Medium, Sense> {
        let tray_open = self.tray_open;
        self.medium.as_mut().ok_or(if tray_open {
            Sense::NO_MEDIUM_TRAY_OPEN
        } else {
            Sense::NO_MEDIUM_TRAY_CLOSED
        })
    }

    fn start_stop(&mut self, cdb: &Cdb) -> Result<Vec<u8>, Sense> {
        let b4 = cdb.byte(4);
        let (start, load_eject, power_condition) = (b4 & 1 != 0, b4 & 2 != 0, b4 >> 4);
        // A power condition overrides START and LOEJ; spinning up or down is a no-op here.
        if self.kind == Kind::Disk || power_condition != 0 || !load_eject {
            return Ok(Vec::new());
        }
        if start {
            self.tray_open = false;
        } else {
            if self.locked {
                return Err(Sense::REMOVAL_PREVENTED);
            }
            if self.medium.take().is_some() {
                self.guest_change = Some(None);
            }
            self.tray_open = true;
        }
        Ok(Vec::new())
    }

    /// Inserts or replaces a CD-ROM's medium (the guest sees UNIT ATTENTION, MEDIUM MAY HAVE
    /// CHANGED). A locked tray refuses unless `force`.
    pub fn change_medium(&mut self, medium: Medium, force: bool) -> Result<(), MediaError> {
        self.open_tray(force)?;
        self.medium = Some(medium);
        self.tray_open = false;
        self.unit_attention = Some(Sense::MEDIUM_CHANGED);
        self.event = MediaEvent::NewMedia;
        Ok(())
    }

    /// Takes a CD-ROM's medium out. A locked tray refuses unless `force` (which also unlocks).
    pub fn eject(&mut self, force: bool) -> Result<(), MediaError> {
        if self.kind == Kind::Cdrom && self.medium.is_none() {
            return Err(MediaError::AlreadyEmpty);
        }
        self.open_tray(force)?;
        self.medium = None;
        self.tray_open = true;
        self.unit_attention = Some(Sense::MEDIUM_REMOVED);
        self.event = MediaEvent::MediaRemoval;
        Ok(())
    }

    /// The checks before the host opens the tray. A refused request still asks the guest (by
    /// an eject-request event) to let go of the medium, as a drive's button would.
    fn open_tray(&mut self, force: bool) -> Result<(), MediaError> {
        if self.kind == Kind::Disk {
            return Err(MediaError::NotRemovable);
        }
        if self.locked {
            if !force {
                self.event = MediaEvent::EjectRequest;
                return Err(MediaError::Locked);
            }
            self.locked = false;
        }
        Ok(())
    }

    pub fn info(&self) -> UnitInfo {
        UnitInfo {
            cdrom: self.kind == Kind::Cdrom,
            medium: self.medium.as_ref().map(|m| m.path().to_path_buf()),
            locked: self.locked,
            tray_open: self.tray_open,
        }
    }

    /// `Some(new medium)` once after the guest itself changed the medium (START STOP UNIT
    /// with LoEj: the medium is ejected, so `Some(None)`); the transport turns it into a
    /// `medium-changed` event.
    pub fn take_guest_change(&mut self) -> Option<Option<PathBuf>> {
        self.guest_change.take()
    }
}
