//! The SCSI bus behind one virtio-scsi controller: its logical units by (target, LUN), and
//! what the controller answers itself rather than a unit: REPORT LUNS for any LUN of a target
//! that exists, and the "no logical unit here" answers for a LUN that does not (SPC-4 4.6.20,
//! peripheral qualifier 3), which is how Linux and SeaBIOS find the LUNs of a target.

use std::path::PathBuf;

use vireo_vmm_api::control::DriveInfo;

use crate::scsi::{LogicalUnit, Outcome, Sense, CHECK_CONDITION, GOOD};

const INQUIRY: u8 = 0x12;
const REQUEST_SENSE: u8 = 0x03;
const REPORT_LUNS: u8 = 0xa0;

const ILLEGAL_REQUEST: u8 = 0x05;
const INVALID_FIELD_IN_CDB: (u8, u8) = (0x24, 0x00);
const LUN_NOT_SUPPORTED: (u8, u8) = (0x25, 0x00);
const INVALID_OPCODE: (u8, u8) = (0x20, 0x00);

/// One logical unit and the name the control socket gives it.
pub struct BusUnit {
    /// The config's id (`sda`).
    pub id: String,
    pub target: u8,
    pub lun: u16,
    pub unit: LogicalUnit,
}

/// The units of one controller.
#[derive(Default)]
pub struct ScsiBus {
    units: Vec<BusUnit>,
}

/// A media change the guest made itself, to announce as `medium-changed`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuestChange {
    pub id: String,
    pub medium: Option<PathBuf>,
}

impl ScsiBus {
    pub fn new(units: Vec<BusUnit>) -> ScsiBus {
        ScsiBus { units }
    }

    pub fn has_target(&self, target: u8) -> bool {
        self.units.iter().any(|u| u.target == target)
    }

    pub fn unit_by_id(&mut self, id: &str) -> Option<&mut LogicalUnit> {
        self.units
            .iter_mut()
            .find(|u| u.id == id)
            .map(|u| &mut u.unit)
    }

    /// Every unit, with its id and whether it is a disk (for the exit-time flush).
    pub fn units_mut(&mut self) -> impl Iterator<Item = &mut BusUnit> {
        self.units.iter_mut()
    }

    /// Drops every unit (closing their images): the VM is ending.
    pub fn clear(&mut self) {
        self.units.clear();
    }

    /// What `query-block` shows of each unit.
    pub fn info(&self) -> Vec<DriveInfo> {
        self.units
            .iter()
            .map(|u| {
                let i = u.unit.info();
                DriveInfo {
                    id: u.id.clone(),
                    cdrom: i.cdrom,
                    medium: i.medium,
                    locked: i.locked,
                    tray_open: i.tray_open,
                }
            })
            .collect()
    }

    /// Runs a command addressed to (`target`, `lun`). `None` when the target does not exist
    /// (the transport answers BAD_TARGET).
    pub fn execute(
        &mut self,
        target: u8,
        lun: u16,
        cdb: &[u8],
        data_out: &[u8],
        max_in: usize,
    ) -> Option<Outcome> {
        if !self.has_target(target) {
            return None;
        }
        if cdb.first() == Some(&REPORT_LUNS) {
            return Some(self.report_luns(target, cdb, max_in));
        }
        match self
            .units
            .iter_mut()
            .find(|u| u.target == target && u.lun == lun)
        {
            Some(u) => Some(u.unit.execute(cdb, data_out, max_in)),
            None => Some(missing_lun(cdb, max_in)),
        }
    }

    /// Guest-made media changes since the last call.
    pub fn take_guest_changes(&mut self) -> Vec<GuestChange> {
        self.units
            .iter_mut()
            .filter_map(|u| {
                u.unit.take_guest_change().map(|medium| GuestChange {
                    id: u.id.clone(),
                    medium,
                })
            })
            .collect()
    }

    /// REPORT LUNS (SPC-4 6.33): the target's LUNs in ascending order.
    fn report_luns(&self, target: u8, cdb: &[u8], max_in: usize) -> Outcome {
        if cdb.len() < 12 {
            return check(INVALID_OPCODE);
        }
        let alloc = u32::from_be_bytes([cdb[6], cdb[7], cdb[8], cdb[9]]) as usize;
        // SPC-4: an allocation length below 16 is an error, not a cut list.
        if alloc < 16 {
            return check(INVALID_FIELD_IN_CDB);
        }
        let mut luns: Vec<u16> = match cdb[2] {
            // All LUNs (0x00), or all including well-known ones (0x02), of which there are none.
            0x00 | 0x02 => self
                .units
                .iter()
                .filter(|u| u.target == target)
                .map(|u| u.lun)
                .collect(),
            // Well-known LUNs only.
            0x01 => Vec::new(),
            _ => return check(INVALID_FIELD_IN_CDB),
        };
        luns.sort_unstable();
        let mut data = Vec::with_capacity(8 + 8 * luns.len());
        data.extend(((luns.len() * 8) as u32).to_be_bytes());
        data.extend([0; 4]);
        for lun in luns {
            data.extend(encode_lun(lun));
        }
        data.truncate(alloc.min(max_in));
        good(data)
    }
}

/// A LUN as REPORT LUNS lists it (SAM-5 4.7): peripheral device addressing below 256, as
/// QEMU lists them, flat space addressing above. A flat LUN 0 (0x4000) would read back as
/// LUN 16384 in Linux and SeaBIOS, which turn the 16-bit field into a number as it stands;
/// both then address it again in flat form, which this controller accepts ([`super::request::parse_lun`]).
pub fn encode_lun(lun: u16) -> [u8; 8] {
    let mut b = [0u8; 8];
    if lun < 256 {
        b[1] = lun as u8;
    } else {
        b[0] = 0x40 | (lun >> 8) as u8;
        b[1] = (lun & 0xff) as u8;
    }
    b
}

/// The answers for a LUN no unit sits at, on a target that exists.
fn missing_lun(cdb: &[u8], max_in: usize) -> Outcome {
    match cdb.first() {
        Some(&INQUIRY) if cdb.len() >= 6 => {
            let alloc = usize::from(u16::from_be_bytes([cdb[3], cdb[4]]));
            let evpd = cdb[1] & 1 != 0;
            let mut data = if evpd {
                // Only the list of supported pages, which is the list itself.
                if cdb[2] != 0 {
                    return check(INVALID_FIELD_IN_CDB);
                }
                vec![0x7f, 0x00, 0x00, 0x01, 0x00]
            } else {
                standard_inquiry_not_present()
            };
            data.truncate(alloc.min(max_in));
            good(data)
        }
        Some(&REQUEST_SENSE) if cdb.len() >= 6 => {
            let alloc = usize::from(cdb[4]);
            let mut data = sense(LUN_NOT_SUPPORTED).fixed().to_vec();
            data.truncate(alloc.min(max_in));
            good(data)
        }
        _ => check(LUN_NOT_SUPPORTED),
    }
}

/// Standard INQUIRY data with peripheral qualifier 3, device type 0x1f: "no logical unit
/// here, and none can be". Version SPC-3 and response format 2, so that Linux asks REPORT
/// LUNS of the target.
fn standard_inquiry_not_present() -> Vec<u8> {
    let mut d = vec![0u8; 36];
    d[0] = 0x7f;
    d[2] = 0x05;
    d[3] = 0x02;
    d[4] = 36 - 5;
    d[8..16].copy_from_slice(b"VIREO   ");
    d[16..32].copy_from_slice(b"VIREO TARGET    ");
    d[32..36].copy_from_slice(b"1.0 ");
    d
}

fn sense((asc, ascq): (u8, u8)) -> Sense {
    Sense {
        key: ILLEGAL_REQUEST,
        asc,
        ascq,
    }
}

fn check(code: (u8, u8)) -> Outcome {
    Outcome {
        status: CHECK_CONDITION,
        sense: Some(sense(code)),
        data_in: Vec::new(),
    }
}

fn good(data_in: Vec<u8>) -> Outcome {
    Outcome {
        status: GOOD,
        sense: None,
        data_in,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cdb(bytes: &[u8]) -> Vec<u8> {
        let mut c = bytes.to_vec();
        c.resize(32, 0);
        c
    }

    fn report_luns(select: u8, alloc: u32) -> Vec<u8> {
        let a = alloc.to_be_bytes();
        cdb(&[
            REPORT_LUNS,
            0,
            select,
            0,
            0,
            0,
            a[0],
            a[1],
            a[2],
            a[3],
            0,
            0,
        ])
    }

    /// A bus whose target 2 has LUNs 300 and 1 (as empty CD-ROM drives).
    fn bus() -> ScsiBus {
        let unit = |id: &str, lun| BusUnit {
            id: id.into(),
            target: 2,
            lun,
            unit: LogicalUnit::cdrom(None),
        };
        ScsiBus::new(vec![unit("sda", 300), unit("sdb", 1)])
    }

    #[test]
    fn luns_are_listed_peripheral_below_256_and_flat_above() {
        assert_eq!(encode_lun(0), [0; 8]);
        assert_eq!(encode_lun(5), [0, 5, 0, 0, 0, 0, 0, 0]);
        assert_eq!(encode_lun(300), [0x41, 0x2c, 0, 0, 0, 0, 0, 0]);
        assert_eq!(encode_lun(16383), [0x7f, 0xff, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn report_luns_answers_for_any_lun_of_a_target_and_cuts_to_the_room() {
        let mut b = bus();
        for lun in [0, 1, 77] {
            let o = b.execute(2, lun, &report_luns(0, 64), &[], 4096).unwrap();
            assert_eq!(o.status, GOOD);
            assert_eq!(
                o.data_in,
                [
                    &[0, 0, 0, 16, 0, 0, 0, 0][..],
                    &encode_lun(1),
                    &encode_lun(300)
                ]
                .concat()
            );
        }
        // SeaBIOS asks with room for one LUN first, reads the length, and asks again.
        let o = b.execute(2, 0, &report_luns(0, 16), &[], 4096).unwrap();
        assert_eq!(o.data_in.len(), 16);
        assert_eq!(&o.data_in[..4], &[0, 0, 0, 16]);
        // The data-in buffers are smaller than the allocation length.
        let o = b.execute(2, 0, &report_luns(0, 64), &[], 10).unwrap();
        assert_eq!(o.data_in.len(), 10);
        // Well-known LUNs only: none.
        let o = b.execute(2, 0, &report_luns(1, 64), &[], 4096).unwrap();
        assert_eq!(o.data_in, [0; 8]);
        // An allocation length under 16, a select report it does not know.
        for c in [report_luns(0, 15), report_luns(0x10, 64)] {
            let o = b.execute(2, 0, &c, &[], 4096).unwrap();
            assert_eq!(o.status, CHECK_CONDITION);
            assert_eq!(o.sense, Some(sense(INVALID_FIELD_IN_CDB)));
        }
        // A target with no units does not exist at all.
        assert!(b.execute(3, 0, &report_luns(0, 64), &[], 4096).is_none());
    }

    #[test]
    fn a_missing_lun_of_a_present_target_says_so() {
        let mut b = bus();
        let o = b
            .execute(2, 0, &cdb(&[INQUIRY, 0, 0, 0, 96, 0]), &[], 4096)
            .unwrap();
        assert_eq!(o.status, GOOD);
        assert_eq!(o.data_in.len(), 36);
        assert_eq!(o.data_in[0], 0x7f);
        // Cut to the allocation length, and to the room.
        let o = b
            .execute(2, 0, &cdb(&[INQUIRY, 0, 0, 0, 5, 0]), &[], 4096)
            .unwrap();
        assert_eq!(o.data_in, [0x7f, 0, 5, 2, 31]);
        let o = b
            .execute(2, 0, &cdb(&[INQUIRY, 0, 0, 0, 96, 0]), &[], 1)
            .unwrap();
        assert_eq!(o.data_in, [0x7f]);
        // Vital product data: only page 0.
        let o = b
            .execute(2, 0, &cdb(&[INQUIRY, 1, 0, 0, 96, 0]), &[], 4096)
            .unwrap();
        assert_eq!(o.data_in, [0x7f, 0, 0, 1, 0]);
        let o = b
            .execute(2, 0, &cdb(&[INQUIRY, 1, 0x80, 0, 96, 0]), &[], 4096)
            .unwrap();
        assert_eq!(o.status, CHECK_CONDITION);
        // Anything else is refused with LOGICAL UNIT NOT SUPPORTED.
        let o = b.execute(2, 0, &cdb(&[0x00]), &[], 0).unwrap();
        assert_eq!(
            (o.status, o.sense),
            (CHECK_CONDITION, Some(sense(LUN_NOT_SUPPORTED)))
        );
        let o = b.execute(2, 0, &cdb(&[0x28]), &[], 4096).unwrap();
        assert_eq!(o.status, CHECK_CONDITION);
        assert!(o.data_in.is_empty());
    }

    #[test]
    fn request_sense_of_a_missing_lun_returns_the_reason_as_data() {
        let mut b = bus();
        let o = b
            .execute(2, 9, &cdb(&[REQUEST_SENSE, 0, 0, 0, 252, 0]), &[], 4096)
            .unwrap();
        assert_eq!(o.status, GOOD);
        assert_eq!(o.data_in.len(), 18);
        assert_eq!((o.data_in[2] & 0xf, o.data_in[12]), (ILLEGAL_REQUEST, 0x25));
    }
}
