//! The primary commands both units share (SPC-4): INQUIRY with its vital product data pages,
//! REQUEST SENSE, and MODE SENSE / MODE SELECT over each unit's mode pages.

use super::cdb::{self, Cdb};
use super::{cdrom, disk, Kind, LogicalUnit, Sense};

const VENDOR: &[u8; 8] = b"VIREO   ";
const REVISION: &[u8; 4] = b"1.0 ";
/// SPC-3, as the version the standard data claims.
const SPC_VERSION: u8 = 0x05;

pub(super) fn request_sense(unit: &mut LogicalUnit, cdb: &Cdb) -> Result<Vec<u8>, Sense> {
    let sense = match (unit.unit_attention.take(), unit.last_sense.take()) {
        (Some(ua), _) => ua,
        (None, Some(last)) => last,
        (None, None) => match unit.medium_mut() {
            Ok(_) => Sense::NONE,
            Err(not_ready) => not_ready,
        },
    };
    Ok(if cdb.byte(1) & 1 != 0 {
        sense.descriptor().to_vec()
    } else {
        sense.fixed().to_vec()
    })
}

pub(super) fn inquiry(unit: &LogicalUnit, cdb: &Cdb) -> Result<Vec<u8>, Sense> {
    let (evpd, cmddt, page) = (cdb.byte(1) & 1 != 0, cdb.byte(1) & 2 != 0, cdb.byte(2));
    if cmddt || (!evpd && page != 0) {
        return Err(Sense::INVALID_FIELD);
    }
    if evpd {
        return vpd_page(unit, page);
    }
    let mut d = vec![0u8; 36];
    match unit.kind {
        Kind::Cdrom => {
            d[0] = 0x05;
            d[1] = 0x80; // removable
        }
        Kind::Disk => d[0] = 0x00,
    }
    d[2] = SPC_VERSION;
    d[3] = 0x10 | 0x02; // HiSup, response data format 2
    d[4] = (d.len() - 5) as u8;
    d[7] = 0x02; // CmdQue: virtio-scsi queues commands
    d[8..16].copy_from_slice(VENDOR);
    let product: &[u8; 16] = match unit.kind {
        Kind::Cdrom => b"VIREO CD-ROM    ",
        Kind::Disk => b"VIREO HARDDISK  ",
    };
    d[16..32].copy_from_slice(product);
    d[32..36].copy_from_slice(REVISION);
    Ok(d)
}

/// The vital product data pages this unit has, in ascending order.
fn vpd_pages(unit: &LogicalUnit) -> Vec<u8> {
    let mut pages = vec![0x00, 0x80, 0x83];
    if unit.kind == Kind::Disk {
        pages.extend_from_slice(&[0xb0, 0xb1]);
        if disk::discard_supported(unit) {
            pages.push(0xb2);
        }
    }
    pages
}

fn vpd_page(unit: &LogicalUnit, page: u8) -> Result<Vec<u8>, Sense> {
    if !vpd_pages(unit).contains(&page) {
        return Err(Sense::INVALID_FIELD);
    }
    let body = match page {
        0x00 => vpd_pages(unit),
        0x80 => unit.serial.as_bytes().to_vec(),
        0x83 => {
            // One T10 vendor ID based designator for the logical unit, in ASCII.
            let mut id = VENDOR.to_vec();
            id.extend_from_slice(unit.serial.as_bytes());
            let mut b = vec![0x02, 0x01, 0x00, id.len() as u8];
            b.extend_from_slice(&id);
            b
        }
        0xb0 => disk::block_limits(unit),
        0xb1 => disk::block_characteristics(),
        0xb2 => disk::provisioning(),
        _ => return Err(Sense::INVALID_FIELD),
    };
    let peripheral = match unit.kind {
        Kind::Cdrom => 0x05,
        Kind::Disk => 0x00,
    };
    let len = u16::try_from(body.len()).map_err(|_| Sense::INVALID_FIELD)?;
    let mut d = vec![peripheral, page];
    d.extend_from_slice(&len.to_be_bytes());
    d.extend_from_slice(&body);
    Ok(d)
}

/// Mode pages each unit has, ascending (MODE SENSE's page 0x3F lists them in this order).
fn mode_pages(unit: &LogicalUnit) -> &'static [u8] {
    match unit.kind {
        Kind::Cdrom => cdrom::MODE_PAGES,
        Kind::Disk => disk::MODE_PAGES,
    }
}

pub(super) const RW_ERROR_RECOVERY_PAGE: u8 = 0x01;
pub(super) const CACHING_PAGE: u8 = 0x08;
pub(super) const CONTROL_PAGE: u8 = 0x0a;
pub(super) const CAPABILITIES_PAGE: u8 = 0x2a;

/// One mode page, header included; with `changeable`, the mask of what MODE SELECT may change:
/// nothing.
fn mode_page(unit: &LogicalUnit, page: u8, changeable: bool) -> Option<Vec<u8>> {
    if !mode_pages(unit).contains(&page) {
        return None;
    }
    let mut p = match page {
        RW_ERROR_RECOVERY_PAGE => {
            let mut p = vec![0u8; 12];
            match unit.kind {
                Kind::Disk => p[2] = 0x80,  // AWRE
                Kind::Cdrom => p[3] = 0x20, // read retry count
            }
            p
        }
        CACHING_PAGE => {
            let mut p = vec![0u8; 20];
            p[2] = 0x04; // WCE: writes reach the image when the guest flushes
            p
        }
        CONTROL_PAGE => {
            let mut p = vec![0u8; 12];
            p[3] = 0x10; // unrestricted reordering of queued commands
            p
        }
        CAPABILITIES_PAGE => cdrom::capabilities_page(unit),
        _ => return None,
    };
    p[0] = page;
    p[1] = (p.len() - 2) as u8;
    if changeable {
        p[2..].fill(0);
    }
    Some(p)
}

pub(super) fn mode_sense(unit: &mut LogicalUnit, cdb: &Cdb) -> Result<Vec<u8>, Sense> {
    let ten = cdb.opcode() == cdb::MODE_SENSE_10;
    let dbd = cdb.byte(1) & 0x08 != 0;
    let (control, page, subpage) = (cdb.byte(2) >> 6, cdb.byte(2) & 0x3f, cdb.byte(3));
    if control == 3 {
        return Err(Sense::SAVING_NOT_SUPPORTED);
    }
    let changeable = control == 1;
    let mut pages = Vec::new();
    match (page, subpage) {
        (0x3f, 0x00 | 0xff) => {
            for &p in mode_pages(unit) {
                pages.extend(mode_page(unit, p, changeable).unwrap_or_default());
            }
        }
        (p, 0) => pages.extend(mode_page(unit, p, changeable).ok_or(Sense::INVALID_FIELD)?),
        _ => return Err(Sense::INVALID_FIELD),
    }
    // MMC devices have no block descriptors; a disk's describes its blocks unless DBD.
    let mut descriptor = Vec::new();
    let mut specific = 0u8;
    if unit.kind == Kind::Disk {
        let medium = unit.medium_mut()?;
        if medium.read_only() {
            specific |= 0x80; // WP
        }
        if !dbd {
            let blocks = medium.blocks(super::DISK_BLOCK_SIZE).min(0xff_ffff) as u32;
            descriptor.extend_from_slice(&blocks.to_be_bytes());
            descriptor.extend_from_slice(&(super::DISK_BLOCK_SIZE as u32).to_be_bytes());
        }
    }
    let mut d = Vec::new();
    if ten {
        let len = 6 + descriptor.len() + pages.len();
        d.extend_from_slice(&(len as u16).to_be_bytes());
        d.extend_from_slice(&[0, specific, 0, 0]);
        d.extend_from_slice(&(descriptor.len() as u16).to_be_bytes());
    } else {
        let len = 3 + descriptor.len() + pages.len();
        d.extend_from_slice(&[len.min(255) as u8, 0, specific, descriptor.len() as u8]);
    }
    d.extend(descriptor);
    d.extend(pages);
    Ok(d)
}

/// Accepts a parameter list whose pages this unit has and whose block descriptor (if any)
/// names its block size; nothing changes (the caching page's WCE stays as it is: writes are
/// flushed when the guest asks either way).
pub(super) fn mode_select(
    unit: &mut LogicalUnit,
    cdb: &Cdb,
    data_out: &[u8],
) -> Result<Vec<u8>, Sense> {
    let ten = cdb.opcode() == cdb::MODE_SELECT_10;
    if cdb.byte(1) & 0x01 != 0 {
        return Err(Sense::SAVING_NOT_SUPPORTED);
    }
    let len = cdb.parameter_list_length();
    if len == 0 {
        return Ok(Vec::new());
    }
    let list = data_out.get(..len).ok_or(Sense::INVALID_FIELD)?;
    let header = if ten { 8 } else { 4 };
    if list.len() < header {
        return Err(Sense::PARAM_LIST_LENGTH);
    }
    let descriptors = if ten {
        usize::from(u16::from_be_bytes([list[6], list[7]]))
    } else {
        usize::from(list[3])
    };
    let pages_at = header
        .checked_add(descriptors)
        .filter(|&at| at <= list.len())
        .ok_or(Sense::PARAM_LIST_LENGTH)?;
    for d in list[header..pages_at].chunks(8) {
        let block = d
            .get(5..8)
            .map(|b| u32::from_be_bytes([0, b[0], b[1], b[2]]))
            .ok_or(Sense::PARAM_LIST_LENGTH)?;
        if u64::from(block) != unit.block_size() {
            return Err(Sense::INVALID_PARAM);
        }
    }
    let mut rest = &list[pages_at..];
    while !rest.is_empty() {
        let (code, len) = match rest {
            [code, len, ..] => (*code, usize::from(*len)),
            _ => return Err(Sense::PARAM_LIST_LENGTH),
        };
        // Subpage format (SPF) pages are not among ours.
        if code & 0x40 != 0 {
            return Err(Sense::INVALID_PARAM);
        }
        let page = code & 0x3f;
        let ours = mode_page(unit, page, false).ok_or(Sense::INVALID_PARAM)?;
        if len + 2 != ours.len() || page != CACHING_PAGE {
            return Err(Sense::INVALID_PARAM);
        }
        rest = rest.get(2 + len..).ok_or(Sense::PARAM_LIST_LENGTH)?;
    }
    Ok(Vec::new())
}
