//! Disk command sequences: the Linux sd probe, writes, WRITE SAME, UNMAP, read-only disks and
//! back-end errors.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use super::*;

#[test]
fn linux_sd_probe_of_a_disk() {
    let mut d = disk(2048, false);
    let inq = ok(&mut d, &[INQUIRY, 0, 0, 0, 96, 0], ROOM);
    assert_eq!((inq[0], inq[1]), (0, 0));
    assert_eq!(inq[4] as usize + 5, inq.len());
    assert_eq!(fails(&mut d, &tur(), &[], 0), Sense::POWER_ON);
    ok(&mut d, &tur(), 0);
    let cap = ok(&mut d, &cdb10(READ_CAPACITY_10, 0, 0, 0, 0), 8);
    assert_eq!((be32(&cap, 0), be32(&cap, 4)), (2047, 512));
    let cap16 = ok(&mut d, &cdb16(SERVICE_ACTION_IN_16, 0x10, 0, 32), ROOM);
    assert_eq!(cap16.len(), 32);
    assert_eq!(u64::from_be_bytes(cap16[..8].try_into().unwrap()), 2047);
    assert_eq!(cap16[14] & 0xc0, 0xc0, "LBPME and LBPRZ");
    let pages = ok(&mut d, &[INQUIRY, 1, 0, 0, 255, 0], ROOM);
    assert_eq!(&pages[4..], &[0x00, 0x80, 0x83, 0xb0, 0xb1, 0xb2]);
    let limits = ok(&mut d, &[INQUIRY, 1, 0xb0, 0, 255, 0], ROOM);
    assert_eq!(be16(&limits, 2), 0x3c);
    assert_eq!(be32(&limits, 8) as usize, MAX_TRANSFER_BYTES / 512);
    let lbp = ok(&mut d, &[INQUIRY, 1, 0xb2, 0, 255, 0], ROOM);
    assert_eq!(lbp[5] & 0xe0, 0xe0);
    let bdc = ok(&mut d, &[INQUIRY, 1, 0xb1, 0, 255, 0], ROOM);
    assert_eq!(be16(&bdc, 4), 1);
    // Caching page with its block descriptor, then without (DBD).
    let ms = ok(&mut d, &[MODE_SENSE_6, 0, 0x08, 0, 255, 0], ROOM);
    assert_eq!((ms[2] & 0x80, ms[3]), (0, 8));
    assert_eq!(be32(&ms, 4), 2048);
    assert_eq!((ms[12], ms[13], ms[14] & 0x04), (0x08, 0x12, 0x04));
    let ms = ok(&mut d, &[MODE_SENSE_6, 0x08, 0x08, 0, 255, 0], ROOM);
    assert_eq!((ms[3], ms[4]), (0, 0x08));
    assert_eq!(usize::from(ms[0]) + 1, ms.len());
}

#[test]
fn mode_select_takes_the_caching_page_only() {
    let mut d = ready(disk(16, false));
    let mut list = vec![0u8, 0, 0, 8, 0, 0, 0, 16, 0, 0, 2, 0];
    let mut caching = vec![0u8; 20];
    caching[0] = 0x08;
    caching[1] = 0x12;
    list.extend_from_slice(&caching);
    let cmd = [MODE_SELECT_6, 0x10, 0, 0, list.len() as u8, 0];
    assert_eq!(d.execute(&cmd, &list, 0).status, GOOD);
    // Too little data for the parameter list.
    assert_eq!(fails(&mut d, &cmd, &list[..10], 0), Sense::INVALID_FIELD);
    // A block descriptor for another block size.
    let mut other = list.clone();
    other[10] = 8;
    assert_eq!(fails(&mut d, &cmd, &other, 0), Sense::INVALID_PARAM);
    // The control page cannot be selected; nor saved pages.
    let mut control = vec![0u8, 0, 0, 0, 0x0a, 0x0a];
    control.extend_from_slice(&[0; 10]);
    let cmd = [MODE_SELECT_6, 0x10, 0, 0, control.len() as u8, 0];
    assert_eq!(fails(&mut d, &cmd, &control, 0), Sense::INVALID_PARAM);
    assert_eq!(
        fails(&mut d, &[MODE_SELECT_6, 0x11, 0, 0, 0, 0], &[], 0),
        Sense::SAVING_NOT_SUPPORTED
    );
    // A page running past the list.
    let short = [0u8, 0, 0, 0, 0x08, 0x12, 0];
    let cmd = [MODE_SELECT_6, 0x10, 0, 0, short.len() as u8, 0];
    assert_eq!(fails(&mut d, &cmd, &short, 0), Sense::PARAM_LIST_LENGTH);
    let mut ten = vec![0u8; 8];
    ten.extend_from_slice(&caching);
    let cmd = cdb10(MODE_SELECT_10, 0x10, 0, 0, ten.len() as u16);
    assert_eq!(d.execute(&cmd, &ten, 0).status, GOOD);
}

#[test]
fn disks_are_not_removable() {
    let mut d = ready(disk(16, false));
    assert!(matches!(d.eject(true), Err(MediaError::NotRemovable)));
    assert!(matches!(
        d.change_medium(medium("z", vec![0; 512], false), true),
        Err(MediaError::NotRemovable)
    ));
    ok(&mut d, &[PREVENT_ALLOW_MEDIUM_REMOVAL, 0, 0, 0, 1, 0], 0);
    ok(&mut d, &[START_STOP_UNIT, 0, 0, 0, 0x02, 0], 0);
    let info = d.info();
    assert_eq!(
        (info.cdrom, info.locked, info.medium.is_some()),
        (false, false, true)
    );
    for op in [READ_TOC, GET_CONFIGURATION, READ_DISC_INFORMATION] {
        assert_eq!(
            fails(&mut d, &cdb10(op, 0, 0, 0, 8), &[], ROOM),
            Sense::INVALID_OPCODE
        );
    }
}

#[test]
fn back_end_errors_are_medium_errors() {
    let flushes = Arc::new(AtomicUsize::new(0));
    let m = Medium::from_backend(
        PathBuf::from("bad"),
        Box::new(Broken(flushes.clone())),
        false,
    );
    let mut d = ready(LogicalUnit::disk(m));
    assert_eq!(
        fails(&mut d, &cdb10(READ_10, 0, 0, 0, 1), &[], ROOM),
        Sense::READ_ERROR
    );
    assert_eq!(
        fails(&mut d, &cdb10(WRITE_10, 0, 0, 0, 1), &[1; 512], 0),
        Sense::WRITE_ERROR
    );
    assert_eq!(
        fails(&mut d, &cdb16(SYNCHRONIZE_CACHE_16, 0, 0, 0), &[], 0),
        Sense::WRITE_ERROR
    );
    assert_eq!(flushes.load(Ordering::SeqCst), 1);
    assert_eq!(
        fails(&mut d, &cdb10(WRITE_SAME_10, 0x08, 0, 0, 1), &[0; 512], 0),
        Sense::WRITE_ERROR
    );
}

#[test]
fn disk_writes_round_trip() {
    let mut d = ready(disk(64, false));
    let data: Vec<u8> = (0..1024).map(|i| i as u8).collect();
    ok_out(&mut d, &cdb10(WRITE_10, 0, 10, 0, 2), &data);
    assert_eq!(ok(&mut d, &cdb10(READ_10, 0, 10, 0, 2), ROOM), data);
    ok_out(&mut d, &[WRITE_6, 0, 0, 20, 1, 0], &data[..512]);
    assert_eq!(ok(&mut d, &[READ_6, 0, 0, 20, 1, 0], ROOM), &data[..512]);
    ok_out(&mut d, &cdb16(WRITE_16, 0x08, 30, 1), &data[512..]);
    assert_eq!(ok(&mut d, &cdb16(READ_16, 0, 30, 1), ROOM), &data[512..]);
    let mut w12 = [0u8; 12];
    w12[0] = WRITE_12;
    w12[5] = 40;
    w12[9] = 1;
    ok_out(&mut d, &w12, &data[..512]);
    // Too little data-out, past the end, more than one command may move.
    assert_eq!(
        fails(&mut d, &cdb10(WRITE_10, 0, 0, 0, 2), &data[..1000], 0),
        Sense::INVALID_FIELD
    );
    assert_eq!(
        fails(&mut d, &cdb10(WRITE_10, 0, 63, 0, 2), &data, 0),
        Sense::LBA_OUT_OF_RANGE
    );
    let mut huge = disk(4096, false);
    huge = ready(huge);
    assert_eq!(
        fails(&mut huge, &cdb10(WRITE_10, 0, 0, 0, 2049), &[], 0),
        Sense::INVALID_FIELD
    );
    ok(&mut d, &cdb10(SYNCHRONIZE_CACHE_10, 0, 0, 0, 0), 0);
}

#[test]
fn read_only_disk() {
    let mut d = ready(disk(16, true));
    let data = vec![0u8; 512];
    assert_eq!(
        fails(&mut d, &cdb10(WRITE_10, 0, 0, 0, 1), &data, 0),
        Sense::WRITE_PROTECTED
    );
    assert_eq!(
        fails(&mut d, &cdb10(WRITE_SAME_10, 0x08, 0, 0, 1), &data, 0),
        Sense::WRITE_PROTECTED
    );
    assert_eq!(
        fails(&mut d, &cdb10(UNMAP, 0, 0, 0, 24), &[0; 24], 0),
        Sense::WRITE_PROTECTED
    );
    let ms = ok(&mut d, &[MODE_SENSE_6, 0x08, 0x3f, 0, 255, 0], ROOM);
    assert_eq!(ms[2] & 0x80, 0x80, "WP");
    let pages = ok(&mut d, &[INQUIRY, 1, 0, 0, 255, 0], ROOM);
    assert!(!pages[4..].contains(&0xb2));
    let cap16 = ok(&mut d, &cdb16(SERVICE_ACTION_IN_16, 0x10, 0, 32), ROOM);
    assert_eq!(cap16[14], 0);
    assert_eq!(
        fails(&mut d, &cdb16(SERVICE_ACTION_IN_16, 0x11, 0, 32), &[], ROOM),
        Sense::INVALID_FIELD
    );
}

#[test]
fn write_same_and_unmap() {
    let mut d = ready(disk(64, false));
    // WRITE SAME with UNMAP and a zero block frees; the blocks read zeroes.
    ok_out(&mut d, &cdb10(WRITE_SAME_10, 0x08, 4, 0, 4), &[0; 512]);
    assert!(ok(&mut d, &cdb10(READ_10, 0, 4, 0, 4), ROOM)
        .iter()
        .all(|&b| b == 0));
    // A pattern.
    let pattern: Vec<u8> = (0..512).map(|i| (i % 251) as u8).collect();
    ok_out(&mut d, &cdb16(WRITE_SAME_16, 0, 8, 3), &pattern);
    let back = ok(&mut d, &cdb10(READ_10, 0, 8, 0, 3), ROOM);
    assert!(back.chunks(512).all(|c| c == pattern));
    // NDOB: zeroes without a data-out buffer.
    ok_out(&mut d, &cdb16(WRITE_SAME_16, 0x01, 8, 1), &[]);
    assert!(ok(&mut d, &cdb10(READ_10, 0, 8, 0, 1), ROOM)
        .iter()
        .all(|&b| b == 0));
    assert_eq!(
        fails(&mut d, &cdb10(WRITE_SAME_10, 0, 0, 0, 0), &pattern, 0),
        Sense::INVALID_FIELD
    );
    assert_eq!(
        fails(
            &mut d,
            &cdb10(WRITE_SAME_10, 0, 0, 0, 1),
            &pattern[..100],
            0
        ),
        Sense::INVALID_FIELD
    );
    assert_eq!(
        fails(&mut d, &cdb10(WRITE_SAME_10, 0, 60, 0, 5), &pattern, 0),
        Sense::LBA_OUT_OF_RANGE
    );

    // UNMAP: two descriptors.
    let unmap_list = |descs: &[(u64, u32)]| {
        let mut l = vec![0u8; 8];
        l[0..2].copy_from_slice(&((6 + 16 * descs.len()) as u16).to_be_bytes());
        l[2..4].copy_from_slice(&((16 * descs.len()) as u16).to_be_bytes());
        for (lba, n) in descs {
            l.extend_from_slice(&lba.to_be_bytes());
            l.extend_from_slice(&n.to_be_bytes());
            l.extend_from_slice(&[0; 4]);
        }
        l
    };
    ok_out(&mut d, &cdb10(WRITE_SAME_10, 0, 20, 0, 10), &pattern);
    let list = unmap_list(&[(20, 2), (25, 1)]);
    ok_out(&mut d, &cdb10(UNMAP, 0, 0, 0, list.len() as u16), &list);
    let back = ok(&mut d, &cdb10(READ_10, 0, 20, 0, 6), ROOM);
    let zero: Vec<bool> = back
        .chunks(512)
        .map(|c| c.iter().all(|&b| b == 0))
        .collect();
    assert_eq!(zero, [true, true, false, false, false, true]);
    // One range out of bounds: nothing is freed.
    let list = unmap_list(&[(22, 1), (63, 2)]);
    assert_eq!(
        fails(&mut d, &cdb10(UNMAP, 0, 0, 0, list.len() as u16), &list, 0),
        Sense::LBA_OUT_OF_RANGE
    );
    assert!(ok(&mut d, &cdb10(READ_10, 0, 22, 0, 1), ROOM)
        .iter()
        .any(|&b| b != 0));
    // Lengths: short list, descriptors past the list, not whole descriptors, short data-out.
    assert_eq!(
        fails(&mut d, &cdb10(UNMAP, 0, 0, 0, 4), &list, 0),
        Sense::PARAM_LIST_LENGTH
    );
    let mut bad = unmap_list(&[(22, 1)]);
    bad[3] = 32;
    assert_eq!(
        fails(&mut d, &cdb10(UNMAP, 0, 0, 0, bad.len() as u16), &bad, 0),
        Sense::PARAM_LIST_LENGTH
    );
    bad[3] = 8;
    assert_eq!(
        fails(&mut d, &cdb10(UNMAP, 0, 0, 0, bad.len() as u16), &bad, 0),
        Sense::INVALID_PARAM
    );
    assert_eq!(
        fails(&mut d, &cdb10(UNMAP, 0, 0, 0, 200), &list, 0),
        Sense::INVALID_FIELD
    );
    ok_out(&mut d, &cdb10(UNMAP, 0, 0, 0, 0), &[]);
}
