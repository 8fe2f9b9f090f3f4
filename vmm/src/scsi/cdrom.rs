//! The MMC commands of the CD-ROM drive: the table of contents, disc and track information,
//! features and profiles, media events, and the DVD structures, for a single-track data disc.

use super::cdb::{self, Cdb};
use super::spc::{CACHING_PAGE, CAPABILITIES_PAGE, RW_ERROR_RECOVERY_PAGE};
use super::{LogicalUnit, MediaEvent, Sense, CD_BLOCK_SIZE};

pub(super) const MODE_PAGES: &[u8] = &[RW_ERROR_RECOVERY_PAGE, CACHING_PAGE, CAPABILITIES_PAGE];

/// The blocks of an 80-minute CD; a larger medium is a DVD.
const CD_MAX_BLOCKS: u64 = 80 * 60 * 75;

const PROFILE_NONE: u16 = 0x0000;
const PROFILE_CD_ROM: u16 = 0x0008;
const PROFILE_DVD_ROM: u16 = 0x0010;

/// ADR 1 (position data), control 4 (a data track, recorded uninterrupted).
const ADR_CONTROL_DATA: u8 = 0x14;
const LEAD_OUT: u8 = 0xaa;
/// 50x: 50 times 176 kB/s.
const READ_SPEED_KBS: u16 = 50 * 176;

pub(super) fn execute(unit: &mut LogicalUnit, cdb: &Cdb) -> Result<Vec<u8>, Sense> {
    use cdb::*;
    match cdb.opcode() {
        READ_TOC => read_toc(unit, cdb),
        GET_CONFIGURATION => get_configuration(unit, cdb),
        GET_EVENT_STATUS_NOTIFICATION => event_status(unit, cdb),
        READ_DISC_INFORMATION => disc_information(unit, cdb),
        READ_TRACK_INFORMATION => track_information(unit, cdb),
        MECHANISM_STATUS => Ok(mechanism_status(unit)),
        READ_DISC_STRUCTURE => disc_structure(unit, cdb),
        SET_CD_SPEED => Ok(Vec::new()),
        WRITE_6 | WRITE_10 | WRITE_12 | WRITE_16 => {
            unit.medium_mut()?;
            Err(Sense::WRITE_PROTECTED)
        }
        _ => Err(Sense::INVALID_OPCODE),
    }
}

/// The medium's 2048-byte blocks; a medium without one whole block is not ready.
fn blocks(unit: &mut LogicalUnit) -> Result<u64, Sense> {
    match unit.medium_mut()?.blocks(CD_BLOCK_SIZE) {
        0 => Err(Sense::NOT_READY),
        n => Ok(n),
    }
}

fn current_profile(unit: &LogicalUnit) -> u16 {
    match &unit.medium {
        None => PROFILE_NONE,
        Some(m) if m.blocks(CD_BLOCK_SIZE) > CD_MAX_BLOCKS => PROFILE_DVD_ROM,
        Some(_) => PROFILE_CD_ROM,
    }
}

/// Minutes, seconds and frames of an LBA (which starts 2 seconds into the disc); a minute
/// past 255 (only on a DVD, where MSF means nothing) saturates.
fn msf(lba: u64) -> [u8; 3] {
    let frames = lba.saturating_add(150);
    let minutes = (frames / (60 * 75)).min(255);
    [minutes as u8, (frames / 75 % 60) as u8, (frames % 75) as u8]
}

fn address(lba: u64, as_msf: bool) -> [u8; 4] {
    if as_msf {
        let [m, s, f] = msf(lba);
        [0, m, s, f]
    } else {
        u32::try_from(lba).unwrap_or(u32::MAX).to_be_bytes()
    }
}

/// A two-byte length field at the start of `d` counting the bytes after it.
fn put_length16(d: &mut [u8]) {
    let len = u16::try_from(d.len().saturating_sub(2)).unwrap_or(u16::MAX);
    d[..2].copy_from_slice(&len.to_be_bytes());
}

fn read_toc(unit: &mut LogicalUnit, cdb: &Cdb) -> Result<Vec<u8>, Sense> {
    let as_msf = cdb.byte(1) & 0x02 != 0;
    let format = cdb.byte(2) & 0x0f;
    let track = cdb.byte(6);
    let blocks = blocks(unit)?;
    let mut d = vec![0u8, 0, 1, 1];
    match format {
        0 => {
            if track > 1 && track != LEAD_OUT {
                return Err(Sense::INVALID_FIELD);
            }
            if track <= 1 {
                d.extend_from_slice(&[0, ADR_CONTROL_DATA, 1, 0]);
                d.extend_from_slice(&address(0, as_msf));
            }
            d.extend_from_slice(&[0, ADR_CONTROL_DATA, LEAD_OUT, 0]);
            d.extend_from_slice(&address(blocks, as_msf));
        }
        1 => {
            // One complete session; its first track starts at block 0.
            d.extend_from_slice(&[0, ADR_CONTROL_DATA, 1, 0]);
            d.extend_from_slice(&address(0, as_msf));
        }
        2 => {
            // Raw TOC, always in MSF: the A0/A1/A2 points (first track, last track, lead-out)
            // and track 1, of session 1.
            let points: [(u8, [u8; 3]); 4] = [
                (0xa0, [1, 0x00, 0]),
                (0xa1, [1, 0, 0]),
                (0xa2, msf(blocks)),
                (1, msf(0)),
            ];
            for (point, p) in points {
                d.extend_from_slice(&[1, ADR_CONTROL_DATA, 0, point, 0, 0, 0, 0]);
                d.extend_from_slice(&p);
            }
        }
        _ => return Err(Sense::INVALID_FIELD),
    }
    put_length16(&mut d);
    Ok(d)
}

/// One feature descriptor: code, version with persistent and current bits, and its data.
fn feature(code: u16, version: u8, persistent: bool, current: bool, data: &[u8]) -> Vec<u8> {
    let mut f = code.to_be_bytes().to_vec();
    f.push(version << 2 | u8::from(persistent) << 1 | u8::from(current));
    f.push(data.len() as u8);
    f.extend_from_slice(data);
    f
}

fn get_configuration(unit: &mut LogicalUnit, cdb: &Cdb) -> Result<Vec<u8>, Sense> {
    let rt = cdb.byte(1) & 0x03;
    let start = cdb.be(2, 2) as u16;
    if rt == 3 {
        return Err(Sense::INVALID_FIELD);
    }
    let profile = current_profile(unit);
    let (dvd, cd) = (profile == PROFILE_DVD_ROM, profile == PROFILE_CD_ROM);
    let has_medium = profile != PROFILE_NONE;
    let mut profiles = Vec::new();
    profiles.extend_from_slice(&PROFILE_DVD_ROM.to_be_bytes());
    profiles.extend_from_slice(&[u8::from(dvd), 0]);
    profiles.extend_from_slice(&PROFILE_CD_ROM.to_be_bytes());
    profiles.extend_from_slice(&[u8::from(cd), 0]);
    let blocking: u16 = if dvd { 16 } else { 1 };
    let mut random = (CD_BLOCK_SIZE as u32).to_be_bytes().to_vec();
    random.extend_from_slice(&blocking.to_be_bytes());
    random.extend_from_slice(&[0, 0]);
    // (code, current, descriptor)
    let features: [(u16, bool, Vec<u8>); 7] = [
        (0x0000, true, feature(0x0000, 0, true, true, &profiles)),
        // Core: SCSI physical interface, DBE.
        (
            0x0001,
            true,
            feature(0x0001, 2, true, true, &[0, 0, 0, 1, 1, 0, 0, 0]),
        ),
        // Morphing: events are polled, not asynchronous.
        (0x0002, true, feature(0x0002, 1, true, true, &[0, 0, 0, 0])),
        // Removable medium: a tray that locks, ejects and loads.
        (
            0x0003,
            true,
            feature(0x0003, 2, true, true, &[0x29 | 0x10, 0, 0, 0]),
        ),
        (
            0x0010,
            has_medium,
            feature(0x0010, 0, false, has_medium, &random),
        ),
        (0x001e, cd, feature(0x001e, 2, false, cd, &[0, 0, 0, 0])),
        (0x001f, dvd, feature(0x001f, 0, false, dvd, &[])),
    ];
    let mut d = vec![0u8; 8];
    d[6..8].copy_from_slice(&profile.to_be_bytes());
    for (code, current, descriptor) in features {
        let wanted = match rt {
            0 => code >= start,
            1 => code >= start && current,
            _ => code == start,
        };
        if wanted {
            d.extend(descriptor);
        }
    }
    let len = (d.len() - 4) as u32;
    d[..4].copy_from_slice(&len.to_be_bytes());
    Ok(d)
}

fn event_status(unit: &mut LogicalUnit, cdb: &Cdb) -> Result<Vec<u8>, Sense> {
    const MEDIA_CLASS: u8 = 4;
    // Asynchronous notification is not offered.
    if cdb.byte(1) & 0x01 == 0 {
        return Err(Sense::INVALID_FIELD);
    }
    let supported = 1u8 << MEDIA_CLASS;
    if cdb.byte(4) & supported == 0 {
        // No event available (NEA) in any class asked for.
        return Ok(vec![0, 2, 0x80, supported]);
    }
    let event = std::mem::replace(&mut unit.event, MediaEvent::None);
    let status = u8::from(unit.tray_open) | u8::from(unit.medium.is_some()) << 1;
    Ok(vec![
        0,
        6,
        MEDIA_CLASS,
        supported,
        event as u8,
        status,
        0,
        0,
    ])
}

fn disc_information(unit: &mut LogicalUnit, cdb: &Cdb) -> Result<Vec<u8>, Sense> {
    // Only standard disc information: the other types are for other media.
    if cdb.byte(1) & 0x07 != 0 {
        return Err(Sense::INVALID_FIELD);
    }
    blocks(unit)?;
    let mut d = vec![0u8; 34];
    d[2] = 0x0e; // last session complete, disc finalized
    d[3] = 1; // first track on the disc
    d[4] = 1; // sessions
    d[5] = 1; // first track of the last session
    d[6] = 1; // last track of the last session
    d[7] = 0x20; // unrestricted use
                 // No lead-in or last possible lead-out start: a pressed disc.
    d[16..24].fill(0xff);
    put_length16(&mut d);
    Ok(d)
}

fn track_information(unit: &mut LogicalUnit, cdb: &Cdb) -> Result<Vec<u8>, Sense> {
    let blocks = blocks(unit)?;
    let value = cdb.be(2, 4);
    let track_one = match cdb.byte(1) & 0x03 {
        0 => value < blocks, // an LBA in the track
        1 => value == 1,     // the track number
        2 => value == 1,     // the session number
        _ => false,
    };
    if !track_one {
        return Err(Sense::INVALID_FIELD);
    }
    let size = u32::try_from(blocks).unwrap_or(u32::MAX);
    let mut d = vec![0u8; 36];
    d[2] = 1; // track
    d[3] = 1; // session
    d[5] = 0x04; // data track, uninterrupted
    d[6] = 0x01; // mode 1
    d[24..28].copy_from_slice(&size.to_be_bytes());
    d[28..32].copy_from_slice(&(size - 1).to_be_bytes());
    put_length16(&mut d);
    Ok(d)
}

fn mechanism_status(unit: &LogicalUnit) -> Vec<u8> {
    let mut d = vec![0u8; 8];
    d[1] = u8::from(unit.tray_open) << 4; // door open; mechanism idle
    d
}

fn disc_structure(unit: &mut LogicalUnit, cdb: &Cdb) -> Result<Vec<u8>, Sense> {
    const PHYSICAL: u8 = 0x00;
    const COPYRIGHT: u8 = 0x01;
    const MANUFACTURING: u8 = 0x04;
    const CAPABILITIES: u8 = 0xff;
    const FORMATS: [(u8, u16); 3] = [(PHYSICAL, 2052), (COPYRIGHT, 8), (MANUFACTURING, 2052)];
    // Media type 0 (DVD and HD DVD): there are no Blu-ray structures.
    if cdb.byte(1) & 0x0f != 0 {
        return Err(Sense::INVALID_FIELD);
    }
    let (layer, format) = (cdb.byte(6), cdb.byte(7));
    if format == CAPABILITIES {
        let mut d = vec![0u8; 4];
        for (f, len) in FORMATS {
            d.extend_from_slice(&[f, 0x40]); // readable, not writable
            d.extend_from_slice(&len.to_be_bytes());
        }
        put_length16(&mut d);
        return Ok(d);
    }
    let blocks = blocks(unit)?;
    if current_profile(unit) != PROFILE_DVD_ROM {
        return Err(Sense::INCOMPATIBLE_FORMAT);
    }
    let len = FORMATS
        .iter()
        .find(|(f, _)| *f == format)
        .map(|(_, len)| usize::from(*len))
        .ok_or(Sense::INVALID_FIELD)?;
    let mut d = vec![0u8; len];
    if format == PHYSICAL {
        if layer != 0 {
            return Err(Sense::INVALID_FIELD);
        }
        // DVD-ROM book, 120 mm, one embossed layer; the data area starts where DVD's
        // physical sector numbering puts it.
        const DATA_START: u32 = 0x3_0000;
        let end = DATA_START.saturating_add(u32::try_from(blocks - 1).unwrap_or(u32::MAX));
        d[4] = 0x01;
        d[5] = 0x0f;
        d[6] = 0x01;
        d[8..12].copy_from_slice(&DATA_START.to_be_bytes());
        d[12..16].copy_from_slice(&end.to_be_bytes());
    }
    put_length16(&mut d);
    Ok(d)
}

/// Mode page 0x2A, CD/DVD capabilities and mechanical status (MMC-3 layout).
pub(super) fn capabilities_page(unit: &LogicalUnit) -> Vec<u8> {
    let mut p = vec![0u8; 22];
    p[2] = 0x0b; // reads CD-R, CD-RW, DVD-ROM
    p[3] = 0x00; // writes nothing
    p[4] = 0x70; // mode 2 form 1 and 2, multi-session
    p[5] = 0x00;
    // Tray loading, eject, prevent jumper absent, lock supported, and the lock's state.
    p[6] = 0x20 | 0x08 | 0x01 | u8::from(unit.locked) << 1;
    p[8..10].copy_from_slice(&READ_SPEED_KBS.to_be_bytes());
    p[12..14].copy_from_slice(&2048u16.to_be_bytes()); // buffer, KiB
    p[14..16].copy_from_slice(&READ_SPEED_KBS.to_be_bytes());
    p
}
