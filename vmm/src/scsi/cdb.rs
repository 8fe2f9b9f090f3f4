//! Decoding CDBs: the length each opcode implies, and its LBA, transfer length and allocation
//! length, read only after the CDB was checked to be that long.

use super::Sense;

pub(super) const TEST_UNIT_READY: u8 = 0x00;
pub(super) const REQUEST_SENSE: u8 = 0x03;
pub(super) const READ_6: u8 = 0x08;
pub(super) const WRITE_6: u8 = 0x0a;
pub(super) const INQUIRY: u8 = 0x12;
pub(super) const MODE_SELECT_6: u8 = 0x15;
pub(super) const MODE_SENSE_6: u8 = 0x1a;
pub(super) const START_STOP_UNIT: u8 = 0x1b;
pub(super) const PREVENT_ALLOW_MEDIUM_REMOVAL: u8 = 0x1e;
pub(super) const READ_CAPACITY_10: u8 = 0x25;
pub(super) const READ_10: u8 = 0x28;
pub(super) const WRITE_10: u8 = 0x2a;
pub(super) const VERIFY_10: u8 = 0x2f;
pub(super) const SYNCHRONIZE_CACHE_10: u8 = 0x35;
pub(super) const WRITE_SAME_10: u8 = 0x41;
pub(super) const UNMAP: u8 = 0x42;
pub(super) const READ_TOC: u8 = 0x43;
pub(super) const GET_CONFIGURATION: u8 = 0x46;
pub(super) const GET_EVENT_STATUS_NOTIFICATION: u8 = 0x4a;
pub(super) const READ_DISC_INFORMATION: u8 = 0x51;
pub(super) const READ_TRACK_INFORMATION: u8 = 0x52;
pub(super) const MODE_SELECT_10: u8 = 0x55;
pub(super) const MODE_SENSE_10: u8 = 0x5a;
pub(super) const READ_16: u8 = 0x88;
pub(super) const WRITE_16: u8 = 0x8a;
pub(super) const VERIFY_16: u8 = 0x8f;
pub(super) const SYNCHRONIZE_CACHE_16: u8 = 0x91;
pub(super) const WRITE_SAME_16: u8 = 0x93;
pub(super) const SERVICE_ACTION_IN_16: u8 = 0x9e;
pub(super) const REPORT_LUNS: u8 = 0xa0;
pub(super) const READ_12: u8 = 0xa8;
pub(super) const WRITE_12: u8 = 0xaa;
pub(super) const READ_DISC_STRUCTURE: u8 = 0xad;
pub(super) const VERIFY_12: u8 = 0xaf;
pub(super) const SET_CD_SPEED: u8 = 0xbb;
pub(super) const MECHANISM_STATUS: u8 = 0xbd;

/// SERVICE ACTION IN(16)'s READ CAPACITY(16).
pub(super) const SAI_READ_CAPACITY_16: u8 = 0x10;

/// The CDB length an opcode's group implies (SPC-4 4.2.5.1); `None` for the reserved and
/// vendor-specific groups.
pub(super) fn length_of(opcode: u8) -> Option<usize> {
    match opcode >> 5 {
        0 => Some(6),
        1 | 2 => Some(10),
        4 => Some(16),
        5 => Some(12),
        _ => None,
    }
}

/// A CDB whose length was checked against its opcode: every field read below lies inside it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Cdb {
    bytes: [u8; 16],
    len: usize,
}

impl Cdb {
    /// Checks that `raw` holds at least the CDB its opcode implies. An empty CDB or one of an
    /// unknown group is an unknown command; a short one is an invalid field.
    pub(super) fn decode(raw: &[u8]) -> Result<Cdb, Sense> {
        let opcode = *raw.first().ok_or(Sense::INVALID_OPCODE)?;
        let len = length_of(opcode).ok_or(Sense::INVALID_OPCODE)?;
        let body = raw.get(..len).ok_or(Sense::INVALID_FIELD)?;
        let mut bytes = [0u8; 16];
        bytes[..len].copy_from_slice(body);
        Ok(Cdb { bytes, len })
    }

    pub(super) fn opcode(&self) -> u8 {
        self.bytes[0]
    }

    /// Byte `i` of the CDB; 0 past its end (never read for a field the opcode has).
    pub(super) fn byte(&self, i: usize) -> u8 {
        if i < self.len {
            self.bytes[i]
        } else {
            0
        }
    }

    /// A big-endian field of `n` bytes (at most 8) at `at`.
    pub(super) fn be(&self, at: usize, n: usize) -> u64 {
        (at..at + n.min(8)).fold(0u64, |v, i| (v << 8) | u64::from(self.byte(i)))
    }

    /// The LBA of a READ, WRITE, VERIFY or WRITE SAME of any size.
    pub(super) fn lba(&self) -> u64 {
        match self.len {
            6 => self.be(1, 3) & 0x1f_ffff,
            16 => self.be(2, 8),
            _ => self.be(2, 4),
        }
    }

    /// The number of blocks of a READ, WRITE, VERIFY or WRITE SAME; a 6-byte READ or WRITE
    /// of 0 blocks means 256.
    pub(super) fn transfer_blocks(&self) -> u64 {
        match self.len {
            6 => match self.byte(4) {
                0 => 256,
                n => u64::from(n),
            },
            10 => self.be(7, 2),
            12 => self.be(6, 4),
            _ => self.be(10, 4),
        }
    }

    /// The allocation length of a command that has one: the data for the guest is cut to it.
    pub(super) fn allocation_length(&self) -> Option<usize> {
        let v = match self.opcode() {
            INQUIRY => self.be(3, 2),
            REQUEST_SENSE | MODE_SENSE_6 => self.be(4, 1),
            MODE_SENSE_10
            | READ_TOC
            | GET_CONFIGURATION
            | GET_EVENT_STATUS_NOTIFICATION
            | READ_DISC_INFORMATION
            | READ_TRACK_INFORMATION => self.be(7, 2),
            MECHANISM_STATUS | READ_DISC_STRUCTURE => self.be(8, 2),
            SERVICE_ACTION_IN_16 => self.be(10, 4),
            _ => return None,
        };
        Some(usize::try_from(v).unwrap_or(usize::MAX))
    }

    /// The parameter list length of MODE SELECT and UNMAP.
    pub(super) fn parameter_list_length(&self) -> usize {
        let v = match self.opcode() {
            MODE_SELECT_6 => self.be(4, 1),
            MODE_SELECT_10 | UNMAP => self.be(7, 2),
            _ => 0,
        };
        usize::try_from(v).unwrap_or(usize::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_lengths() {
        assert_eq!(length_of(TEST_UNIT_READY), Some(6));
        assert_eq!(length_of(READ_10), Some(10));
        assert_eq!(length_of(MODE_SENSE_10), Some(10));
        assert_eq!(length_of(READ_16), Some(16));
        assert_eq!(length_of(READ_12), Some(12));
        assert_eq!(length_of(0x7f), None);
        assert_eq!(length_of(0xc0), None);
    }

    #[test]
    fn short_and_empty_cdbs_are_refused() {
        assert_eq!(Cdb::decode(&[]).unwrap_err(), Sense::INVALID_OPCODE);
        assert_eq!(
            Cdb::decode(&[READ_10, 0, 0, 0, 0]).unwrap_err(),
            Sense::INVALID_FIELD
        );
        assert_eq!(Cdb::decode(&[0xe0; 16]).unwrap_err(), Sense::INVALID_OPCODE);
        // A longer field (the transport's whole CDB area) is fine.
        assert!(Cdb::decode(&[TEST_UNIT_READY; 32]).is_ok());
    }

    #[test]
    fn lba_and_length_of_each_size() {
        let c = Cdb::decode(&[READ_6, 0xff, 0x12, 0x34, 0, 0]).unwrap();
        assert_eq!((c.lba(), c.transfer_blocks()), (0x1f_1234, 256));
        let c = Cdb::decode(&[READ_10, 0, 1, 2, 3, 4, 0, 0x56, 0x78, 0]).unwrap();
        assert_eq!((c.lba(), c.transfer_blocks()), (0x0102_0304, 0x5678));
        let c = Cdb::decode(&[READ_12, 0, 0, 0, 0, 9, 0, 1, 0, 0, 0, 0]).unwrap();
        assert_eq!((c.lba(), c.transfer_blocks()), (9, 0x1_0000));
        let mut raw = [0u8; 16];
        raw[0] = READ_16;
        raw[2] = 0x80;
        raw[9] = 1;
        raw[13] = 7;
        let c = Cdb::decode(&raw).unwrap();
        assert_eq!((c.lba(), c.transfer_blocks()), (0x8000_0000_0000_0001, 7));
    }

    #[test]
    fn allocation_lengths() {
        let c = Cdb::decode(&[INQUIRY, 0, 0, 0x01, 0x02, 0]).unwrap();
        assert_eq!(c.allocation_length(), Some(0x102));
        let c = Cdb::decode(&[MECHANISM_STATUS, 0, 0, 0, 0, 0, 0, 0, 0, 8, 0, 0]).unwrap();
        assert_eq!(c.allocation_length(), Some(8));
        let mut raw = [0u8; 16];
        raw[0] = SERVICE_ACTION_IN_16;
        raw[13] = 32;
        assert_eq!(Cdb::decode(&raw).unwrap().allocation_length(), Some(32));
        let c = Cdb::decode(&[READ_10; 10]).unwrap();
        assert_eq!(c.allocation_length(), None);
    }
}
