//! SCSI sense data: the sense keys and additional sense codes the units report, and their
//! fixed and descriptor formats (SPC-4 4.5).

use super::Sense;

pub(super) const NO_SENSE: u8 = 0x00;
pub(super) const NOT_READY: u8 = 0x02;
pub(super) const MEDIUM_ERROR: u8 = 0x03;
pub(super) const ILLEGAL_REQUEST: u8 = 0x05;
pub(super) const UNIT_ATTENTION: u8 = 0x06;
pub(super) const DATA_PROTECT: u8 = 0x07;

const fn sense(key: u8, asc: u8, ascq: u8) -> Sense {
    Sense { key, asc, ascq }
}

impl Sense {
    /// Nothing to report.
    pub const NONE: Sense = sense(NO_SENSE, 0, 0);
    /// The drive is empty, tray closed.
    pub const NO_MEDIUM_TRAY_CLOSED: Sense = sense(NOT_READY, 0x3a, 0x01);
    /// The drive is empty, tray open.
    pub const NO_MEDIUM_TRAY_OPEN: Sense = sense(NOT_READY, 0x3a, 0x02);
    /// A medium too small to hold one block.
    pub const NOT_READY: Sense = sense(NOT_READY, 0x04, 0x00);
    pub const READ_ERROR: Sense = sense(MEDIUM_ERROR, 0x11, 0x00);
    pub const WRITE_ERROR: Sense = sense(MEDIUM_ERROR, 0x0c, 0x00);
    pub const INVALID_OPCODE: Sense = sense(ILLEGAL_REQUEST, 0x20, 0x00);
    pub const LBA_OUT_OF_RANGE: Sense = sense(ILLEGAL_REQUEST, 0x21, 0x00);
    pub const INVALID_FIELD: Sense = sense(ILLEGAL_REQUEST, 0x24, 0x00);
    pub const PARAM_LIST_LENGTH: Sense = sense(ILLEGAL_REQUEST, 0x1a, 0x00);
    pub const INVALID_PARAM: Sense = sense(ILLEGAL_REQUEST, 0x26, 0x00);
    pub const INCOMPATIBLE_FORMAT: Sense = sense(ILLEGAL_REQUEST, 0x30, 0x02);
    pub const SAVING_NOT_SUPPORTED: Sense = sense(ILLEGAL_REQUEST, 0x39, 0x00);
    pub const REMOVAL_PREVENTED: Sense = sense(ILLEGAL_REQUEST, 0x53, 0x02);
    pub const WRITE_PROTECTED: Sense = sense(DATA_PROTECT, 0x27, 0x00);
    /// Unit attention after power-on or reset.
    pub const POWER_ON: Sense = sense(UNIT_ATTENTION, 0x29, 0x00);
    /// Unit attention: not ready to ready change, medium may have changed.
    pub const MEDIUM_CHANGED: Sense = sense(UNIT_ATTENTION, 0x28, 0x00);
    /// Unit attention: the medium was taken out.
    pub const MEDIUM_REMOVED: Sense = sense(UNIT_ATTENTION, 0x3a, 0x00);

    /// Fixed-format sense data (response code 0x70), 18 bytes.
    pub fn fixed(&self) -> [u8; 18] {
        let mut b = [0u8; 18];
        b[0] = 0x70;
        b[2] = self.key & 0x0f;
        // Additional sense length: the bytes after byte 7.
        b[7] = 10;
        b[12] = self.asc;
        b[13] = self.ascq;
        b
    }

    /// Descriptor-format sense data (response code 0x72) without descriptors, 8 bytes.
    pub fn descriptor(&self) -> [u8; 8] {
        [0x72, self.key & 0x0f, self.asc, self.ascq, 0, 0, 0, 0]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_format_places_key_and_codes() {
        let b = Sense::REMOVAL_PREVENTED.fixed();
        assert_eq!(b[0], 0x70);
        assert_eq!(b[2], ILLEGAL_REQUEST);
        assert_eq!(b[7], 10);
        assert_eq!((b[12], b[13]), (0x53, 0x02));
    }

    #[test]
    fn descriptor_format() {
        assert_eq!(
            Sense::MEDIUM_CHANGED.descriptor(),
            [0x72, UNIT_ATTENTION, 0x28, 0, 0, 0, 0, 0]
        );
    }
}
