//! The SBC commands of the hard disk: capacity, writes, WRITE SAME and UNMAP, and its block
//! limits and provisioning pages.

use super::cdb::{self, Cdb};
use super::medium::transfer_bytes;
use super::spc::{CACHING_PAGE, CONTROL_PAGE, RW_ERROR_RECOVERY_PAGE};
use super::{LogicalUnit, Sense, DISK_BLOCK_SIZE, MAX_TRANSFER_BYTES};

pub(super) const MODE_PAGES: &[u8] = &[RW_ERROR_RECOVERY_PAGE, CACHING_PAGE, CONTROL_PAGE];

/// The most blocks one WRITE SAME or one UNMAP descriptor covers: 2 GiB, so that a pattern
/// written block by block stays a bounded piece of work.
const MAX_WRITE_SAME_BLOCKS: u64 = 1 << 22;
/// The most descriptors in one UNMAP parameter list.
const MAX_UNMAP_DESCRIPTORS: usize = 256;

/// Discard (UNMAP, WRITE SAME with UNMAP) is offered on a writable disk, as virtio-blk does.
pub(super) fn discard_supported(unit: &LogicalUnit) -> bool {
    unit.medium.as_ref().is_some_and(|m| !m.read_only())
}

pub(super) fn execute(
    unit: &mut LogicalUnit,
    cdb: &Cdb,
    data_out: &[u8],
) -> Result<Vec<u8>, Sense> {
    use cdb::*;
    match cdb.opcode() {
        SERVICE_ACTION_IN_16 if cdb.byte(1) & 0x1f == SAI_READ_CAPACITY_16 => {
            read_capacity_16(unit)
        }
        SERVICE_ACTION_IN_16 => Err(Sense::INVALID_FIELD),
        WRITE_6 | WRITE_10 | WRITE_12 | WRITE_16 => write(unit, cdb, data_out),
        WRITE_SAME_10 | WRITE_SAME_16 => write_same(unit, cdb, data_out),
        UNMAP => unmap(unit, cdb, data_out),
        _ => Err(Sense::INVALID_OPCODE),
    }
}

fn read_capacity_16(unit: &mut LogicalUnit) -> Result<Vec<u8>, Sense> {
    let discard = discard_supported(unit);
    let blocks = unit.medium_mut()?.blocks(DISK_BLOCK_SIZE);
    if blocks == 0 {
        return Err(Sense::NOT_READY);
    }
    let mut d = vec![0u8; 32];
    d[..8].copy_from_slice(&(blocks - 1).to_be_bytes());
    d[8..12].copy_from_slice(&(DISK_BLOCK_SIZE as u32).to_be_bytes());
    if discard {
        d[14] = 0x80 | 0x40; // LBPME, LBPRZ: unmapped blocks read as zeroes
    }
    Ok(d)
}

/// The medium, refusing any write to a read-only one.
fn writable(unit: &mut LogicalUnit) -> Result<&mut super::Medium, Sense> {
    let medium = unit.medium_mut()?;
    if medium.read_only() {
        return Err(Sense::WRITE_PROTECTED);
    }
    Ok(medium)
}

fn write(unit: &mut LogicalUnit, cdb: &Cdb, data_out: &[u8]) -> Result<Vec<u8>, Sense> {
    let (lba, count) = (cdb.lba(), cdb.transfer_blocks());
    // Force unit access: not advertised, but honoured by a flush when a guest sets it.
    let fua = cdb.opcode() != cdb::WRITE_6 && cdb.byte(1) & 0x08 != 0;
    let medium = writable(unit)?;
    medium.check_range(lba, count, DISK_BLOCK_SIZE)?;
    let len = transfer_bytes(count, DISK_BLOCK_SIZE, MAX_TRANSFER_BYTES)?;
    let data = data_out.get(..len).ok_or(Sense::INVALID_FIELD)?;
    medium
        .write_at(data, lba * DISK_BLOCK_SIZE)
        .map_err(|_| Sense::WRITE_ERROR)?;
    if fua {
        medium.flush().map_err(|_| Sense::WRITE_ERROR)?;
    }
    Ok(Vec::new())
}

fn write_same(unit: &mut LogicalUnit, cdb: &Cdb, data_out: &[u8]) -> Result<Vec<u8>, Sense> {
    let (lba, count) = (cdb.lba(), cdb.transfer_blocks());
    let flags = cdb.byte(1);
    let unmap = flags & 0x08 != 0;
    // WRITE SAME(16)'s NDOB: no data-out buffer, the block is zeroes.
    let no_data = cdb.opcode() == cdb::WRITE_SAME_16 && flags & 0x01 != 0;
    // LBDATA and PBDATA (obsolete) ask for per-block contents not offered; ANCHOR likewise.
    if flags & 0x16 != 0 {
        return Err(Sense::INVALID_FIELD);
    }
    // 0 blocks would mean "to the end" (the block limits page says WSNZ: refused).
    if count == 0 || count > MAX_WRITE_SAME_BLOCKS {
        return Err(Sense::INVALID_FIELD);
    }
    let medium = writable(unit)?;
    medium.check_range(lba, count, DISK_BLOCK_SIZE)?;
    let block_len = DISK_BLOCK_SIZE as usize;
    let block: &[u8] = if no_data {
        &[]
    } else {
        data_out.get(..block_len).ok_or(Sense::INVALID_FIELD)?
    };
    let (offset, len) = (lba * DISK_BLOCK_SIZE, count * DISK_BLOCK_SIZE);
    if block.iter().all(|&b| b == 0) {
        let done = if unmap {
            medium.discard(offset, len)
        } else {
            medium.write_zeroes(offset, len)
        };
        return done.map(|()| Vec::new()).map_err(|_| Sense::WRITE_ERROR);
    }
    // A pattern: written a chunk of copies at a time.
    let per_chunk = (MAX_TRANSFER_BYTES / block_len) as u64;
    let chunk = block.repeat(count.min(per_chunk) as usize);
    let mut done = 0u64;
    while done < count {
        let n = (count - done).min(per_chunk);
        let bytes = &chunk[..n as usize * block_len];
        medium
            .write_at(bytes, offset + done * DISK_BLOCK_SIZE)
            .map_err(|_| Sense::WRITE_ERROR)?;
        done += n;
    }
    Ok(Vec::new())
}

fn unmap(unit: &mut LogicalUnit, cdb: &Cdb, data_out: &[u8]) -> Result<Vec<u8>, Sense> {
    // Discard is offered exactly where writes are.
    let medium = writable(unit)?;
    let len = cdb.parameter_list_length();
    if len == 0 {
        return Ok(Vec::new());
    }
    let list = data_out.get(..len).ok_or(Sense::INVALID_FIELD)?;
    if list.len() < 8 {
        return Err(Sense::PARAM_LIST_LENGTH);
    }
    let descriptors_len = usize::from(u16::from_be_bytes([list[2], list[3]]));
    let descriptors = list[8..]
        .get(..descriptors_len)
        .ok_or(Sense::PARAM_LIST_LENGTH)?;
    if descriptors_len % 16 != 0 || descriptors_len / 16 > MAX_UNMAP_DESCRIPTORS {
        return Err(Sense::INVALID_PARAM);
    }
    let mut ranges = Vec::with_capacity(descriptors_len / 16);
    // Every range is checked before any is freed.
    for d in descriptors.chunks_exact(16) {
        let mut lba = [0u8; 8];
        lba.copy_from_slice(&d[..8]);
        let lba = u64::from_be_bytes(lba);
        let count = u64::from(u32::from_be_bytes([d[8], d[9], d[10], d[11]]));
        if count > MAX_WRITE_SAME_BLOCKS {
            return Err(Sense::INVALID_PARAM);
        }
        medium.check_range(lba, count, DISK_BLOCK_SIZE)?;
        if count > 0 {
            ranges.push((lba * DISK_BLOCK_SIZE, count * DISK_BLOCK_SIZE));
        }
    }
    for (offset, len) in ranges {
        medium
            .discard(offset, len)
            .map_err(|_| Sense::WRITE_ERROR)?;
    }
    Ok(Vec::new())
}

/// VPD page 0xB0, block limits (its body after the 4-byte header).
pub(super) fn block_limits(unit: &LogicalUnit) -> Vec<u8> {
    let mut b = vec![0u8; 0x3c];
    let max_transfer = (MAX_TRANSFER_BYTES as u64 / DISK_BLOCK_SIZE) as u32;
    // Offsets below are the page's minus the header.
    b[0] = 0x01; // WSNZ: WRITE SAME of 0 blocks is refused
    b[2..4].copy_from_slice(&1u16.to_be_bytes()); // optimal transfer granularity
    b[4..8].copy_from_slice(&max_transfer.to_be_bytes());
    b[8..12].copy_from_slice(&max_transfer.to_be_bytes()); // optimal transfer length
    if discard_supported(unit) {
        b[16..20].copy_from_slice(&(MAX_WRITE_SAME_BLOCKS as u32).to_be_bytes());
        b[20..24].copy_from_slice(&(MAX_UNMAP_DESCRIPTORS as u32).to_be_bytes());
        b[24..28].copy_from_slice(&1u32.to_be_bytes()); // optimal unmap granularity
    }
    b[32..40].copy_from_slice(&MAX_WRITE_SAME_BLOCKS.to_be_bytes());
    b
}

/// VPD page 0xB1, block device characteristics: not a spinning disk.
pub(super) fn block_characteristics() -> Vec<u8> {
    let mut b = vec![0u8; 0x3c];
    b[1] = 0x01; // medium rotation rate: non-rotating
    b
}

/// VPD page 0xB2, logical block provisioning: thin, with UNMAP and WRITE SAME(10/16) with
/// UNMAP, and zeroes where blocks were unmapped.
pub(super) fn provisioning() -> Vec<u8> {
    vec![0x00, 0x80 | 0x40 | 0x20 | 0x04, 0x02, 0x00]
}
