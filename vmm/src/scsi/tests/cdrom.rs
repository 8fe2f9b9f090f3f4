//! CD-ROM command sequences: the Linux sr and SeaBIOS probes, the MMC commands, and error paths.

use std::path::PathBuf;

use super::*;

#[test]
fn linux_sr_probe_of_a_cd() {
    let mut cd = cd_with(iso(64));
    // INQUIRY comes first and is not held up by the power-on attention.
    let inq = ok(&mut cd, &[INQUIRY, 0, 0, 0, 36, 0], ROOM);
    assert_eq!(inq.len(), 36);
    assert_eq!((inq[0], inq[1] & 0x80), (0x05, 0x80));
    assert_eq!(&inq[8..16], b"VIREO   ");
    assert_eq!(&inq[16..28], b"VIREO CD-ROM");
    // TEST UNIT READY until the attention is gone.
    assert_eq!(fails(&mut cd, &tur(), &[], 0), Sense::POWER_ON);
    ok(&mut cd, &tur(), 0);
    // Capabilities page, MODE SENSE(10) as sr asks for it.
    let ms = ok(&mut cd, &cdb10(MODE_SENSE_10, 0, 0x2a00_0000, 0, 128), ROOM);
    assert_eq!(be16(&ms, 6), 0, "no block descriptors on an MMC drive");
    assert_eq!(usize::from(be16(&ms, 0)) + 2, ms.len());
    assert_eq!((ms[8], ms[9]), (0x2a, 20));
    assert_eq!(ms[8 + 6] & 0x09, 0x09, "lock and eject");
    assert_eq!(be16(&ms, 8 + 8), 50 * 176);
    // READ CAPACITY: 2048-byte blocks.
    let cap = ok(&mut cd, &cdb10(READ_CAPACITY_10, 0, 0, 0, 0), ROOM);
    assert_eq!((be32(&cap, 0), be32(&cap, 4)), (63, 2048));
    // GET CONFIGURATION for the current profile (header only).
    let conf = ok(&mut cd, &cdb10(GET_CONFIGURATION, 0, 0, 0, 8), ROOM);
    assert_eq!(conf.len(), 8);
    assert_eq!(be16(&conf, 6), 0x0008);
    // READ TOC header and the first track.
    let toc = ok(&mut cd, &cdb10(READ_TOC, 0, 0, 0, 12), ROOM);
    assert_eq!(toc.len(), 12);
    assert_eq!((toc[2], toc[3]), (1, 1));
    assert_eq!((toc[5], toc[6], be32(&toc, 8)), (0x14, 1, 0));
    // Media polling.
    let ev = ok(
        &mut cd,
        &cdb10(GET_EVENT_STATUS_NOTIFICATION, 1, 0x1000, 0, 8),
        ROOM,
    );
    assert_eq!(ev, [0, 6, 4, 0x10, 0, 0x02, 0, 0]);
    let di = ok(&mut cd, &cdb10(READ_DISC_INFORMATION, 0, 0, 0, 34), ROOM);
    assert_eq!((be16(&di, 0), di[2], di[3]), (32, 0x0e, 1));
    // The ISO 9660 volume descriptor and the El Torito boot record.
    let blocks = ok(&mut cd, &cdb10(READ_10, 0, 16, 0, 2), ROOM);
    assert_eq!(&blocks[1..6], b"CD001");
    assert_eq!(&blocks[2048 + 7..2048 + 30], b"EL TORITO SPECIFICATION");
}

#[test]
fn seabios_probe_and_boot_record() {
    let mut cd = cd_with(iso(64));
    let inq = ok(&mut cd, &[INQUIRY, 0, 0, 0, 36, 0], 36);
    assert_eq!(inq[0] & 0x1f, 5);
    // SeaBIOS asks REQUEST SENSE after a failed TEST UNIT READY.
    assert_eq!(fails(&mut cd, &tur(), &[], 0), Sense::POWER_ON);
    let s = ok(&mut cd, &[REQUEST_SENSE, 0, 0, 0, 18, 0], 18);
    assert_eq!((s[0], s[2], s[12]), (0x70, 0x06, 0x29));
    ok(&mut cd, &tur(), 0);
    let cap = ok(&mut cd, &cdb10(READ_CAPACITY_10, 0, 0, 0, 0), 8);
    assert_eq!(be32(&cap, 4), 2048);
    let br = ok(&mut cd, &cdb10(READ_10, 0, 17, 0, 1), 2048);
    assert_eq!(&br[7..30], b"EL TORITO SPECIFICATION");
    assert_eq!(
        u32::from_le_bytes([br[0x47], br[0x48], br[0x49], br[0x4a]]),
        19
    );
    // After a success there is nothing left to report.
    let s = ok(&mut cd, &[REQUEST_SENSE, 0, 0, 0, 18, 0], 18);
    assert_eq!((s[2], s[12]), (0, 0));
}

#[test]
fn vpd_serial_and_identification() {
    let mut cd = cd_with(iso(20));
    cd.set_serial("hdc \u{e9}x");
    let p = ok(&mut cd, &[INQUIRY, 1, 0, 0, 255, 0], ROOM);
    assert_eq!(&p[..], &[5, 0, 0, 3, 0x00, 0x80, 0x83]);
    let s = ok(&mut cd, &[INQUIRY, 1, 0x80, 0, 255, 0], ROOM);
    assert_eq!(&s[4..], b"hdcx");
    let id = ok(&mut cd, &[INQUIRY, 1, 0x83, 0, 255, 0], ROOM);
    assert_eq!((id[4], id[5], id[7]), (2, 1, 12));
    assert_eq!(&id[8..], b"VIREO   hdcx");
    assert_eq!(
        fails(&mut cd, &[INQUIRY, 1, 0xb0, 0, 255, 0], &[], ROOM),
        Sense::INVALID_FIELD
    );
    assert_eq!(
        fails(&mut cd, &[INQUIRY, 0, 0x80, 0, 255, 0], &[], ROOM),
        Sense::INVALID_FIELD
    );
    // Cut to the allocation length, then to the room the guest has.
    assert_eq!(ok(&mut cd, &[INQUIRY, 0, 0, 0, 5, 0], ROOM).len(), 5);
    assert_eq!(ok(&mut cd, &[INQUIRY, 0, 0, 0, 36, 0], 7).len(), 7);
}

#[test]
fn cd_mode_pages() {
    let mut cd = ready(cd_with(iso(20)));
    let all = ok(
        &mut cd,
        &cdb10(MODE_SENSE_10, 0, 0x3f00_0000, 0, 1024),
        ROOM,
    );
    let mut at = 8;
    let mut codes = Vec::new();
    while at < all.len() {
        codes.push(all[at]);
        at += 2 + usize::from(all[at + 1]);
    }
    assert_eq!(at, all.len());
    assert_eq!(codes, [0x01, 0x08, 0x2a]);
    // Changeable values: nothing.
    let ch = ok(
        &mut cd,
        &cdb10(MODE_SENSE_10, 0, 0x6a00_0000, 0, 1024),
        ROOM,
    );
    assert!(ch[10..].iter().all(|&b| b == 0));
    assert_eq!(
        fails(
            &mut cd,
            &cdb10(MODE_SENSE_10, 0, 0xea00_0000, 0, 64),
            &[],
            ROOM
        ),
        Sense::SAVING_NOT_SUPPORTED
    );
    assert_eq!(
        fails(&mut cd, &[MODE_SENSE_6, 0, 0x0a, 0, 64, 0], &[], ROOM),
        Sense::INVALID_FIELD
    );
    assert_eq!(
        fails(&mut cd, &[MODE_SENSE_6, 0, 0x2a, 3, 64, 0], &[], ROOM),
        Sense::INVALID_FIELD
    );
    // The lock shows in the capabilities page.
    ok(&mut cd, &[PREVENT_ALLOW_MEDIUM_REMOVAL, 0, 0, 0, 1, 0], 0);
    let ms = ok(&mut cd, &[MODE_SENSE_6, 0, 0x2a, 0, 64, 0], ROOM);
    assert_eq!(ms[4 + 6] & 0x02, 0x02);
}

#[test]
fn read_toc_formats() {
    let mut cd = ready(cd_with(iso(1000)));
    let toc = ok(&mut cd, &cdb10(READ_TOC, 0x02, 0, 0, 100), ROOM);
    assert_eq!(be16(&toc, 0) as usize, toc.len() - 2);
    assert_eq!(&toc[8..12], &[0, 0, 2, 0], "track 1 at 00:02:00");
    assert_eq!(toc[14], 0xaa);
    // 1000 + 150 frames = 0:15:25.
    assert_eq!(&toc[16..20], &[0, 0, 15, 25]);
    let lead_out = ok(&mut cd, &cdb10(READ_TOC, 0, 0, 0xaa, 100), ROOM);
    assert_eq!((lead_out.len(), be32(&lead_out, 8)), (12, 1000));
    assert_eq!(
        fails(&mut cd, &cdb10(READ_TOC, 0, 0, 2, 100), &[], ROOM),
        Sense::INVALID_FIELD
    );
    let session = ok(&mut cd, &cdb10(READ_TOC, 0, 0x0100_0000, 0, 100), ROOM);
    assert_eq!(
        (be16(&session, 0), session[6], be32(&session, 8)),
        (10, 1, 0)
    );
    let raw = ok(&mut cd, &cdb10(READ_TOC, 0, 0x0200_0000, 0, 100), ROOM);
    assert_eq!(raw.len(), 4 + 4 * 11);
    let points: Vec<u8> = raw[4..].chunks(11).map(|c| c[3]).collect();
    assert_eq!(points, [0xa0, 0xa1, 0xa2, 1]);
    assert_eq!(&raw[4 + 2 * 11 + 8..4 + 2 * 11 + 11], &[0, 15, 25]);
    assert_eq!(
        fails(&mut cd, &cdb10(READ_TOC, 0, 0x0300_0000, 0, 100), &[], ROOM),
        Sense::INVALID_FIELD
    );
}

#[test]
fn configuration_features_and_profiles() {
    let mut cd = ready(cd_with(iso(20)));
    let all = ok(&mut cd, &cdb10(GET_CONFIGURATION, 0, 0, 0, 1024), ROOM);
    assert_eq!(be32(&all, 0) as usize, all.len() - 4);
    let mut at = 8;
    let mut codes = Vec::new();
    while at < all.len() {
        codes.push(be16(&all, at));
        at += 4 + usize::from(all[at + 3]);
    }
    assert_eq!(
        codes,
        [0x0000, 0x0001, 0x0002, 0x0003, 0x0010, 0x001e, 0x001f]
    );
    // The profile list marks CD-ROM current.
    assert_eq!(
        (be16(&all, 12), all[14], be16(&all, 16), all[18]),
        (0x10, 0, 0x08, 1)
    );
    // RT=1: current features only (no DVD read); RT=2: the one asked for.
    let current = ok(&mut cd, &cdb10(GET_CONFIGURATION, 1, 0, 0, 1024), ROOM);
    assert!(current.len() < all.len());
    let one = ok(
        &mut cd,
        &cdb10(GET_CONFIGURATION, 2, 0x0003_0000, 0, 1024),
        ROOM,
    );
    assert_eq!((one.len(), be16(&one, 8)), (16, 3));
    let none = ok(
        &mut cd,
        &cdb10(GET_CONFIGURATION, 2, 0x0028_0000, 0, 1024),
        ROOM,
    );
    assert_eq!(none.len(), 8);
    assert_eq!(
        fails(&mut cd, &cdb10(GET_CONFIGURATION, 3, 0, 0, 8), &[], ROOM),
        Sense::INVALID_FIELD
    );
    // A DVD-sized medium is a DVD; an empty drive has no profile.
    let dvd = Medium::from_backend(PathBuf::from("dvd.iso"), Box::new(Zeroes(4 << 30)), true);
    let mut big = LogicalUnit::cdrom(Some(dvd));
    let c = ok(&mut big, &cdb10(GET_CONFIGURATION, 0, 0, 0, 8), ROOM);
    assert_eq!(be16(&c, 6), 0x0010);
    let mut empty = LogicalUnit::cdrom(None);
    let c = ok(&mut empty, &cdb10(GET_CONFIGURATION, 1, 0, 0, 1024), ROOM);
    assert_eq!(be16(&c, 6), 0);
    let mut at = 8;
    while at < c.len() {
        assert_ne!(be16(&c, at), 0x0010, "random readable without a medium");
        at += 4 + usize::from(c[at + 3]);
    }
}

#[test]
fn disc_and_track_information_and_mechanism() {
    let mut cd = ready(cd_with(iso(300)));
    assert_eq!(
        fails(
            &mut cd,
            &cdb10(READ_DISC_INFORMATION, 1, 0, 0, 34),
            &[],
            ROOM
        ),
        Sense::INVALID_FIELD
    );
    let t = ok(&mut cd, &cdb10(READ_TRACK_INFORMATION, 1, 1, 0, 36), ROOM);
    assert_eq!(
        (be16(&t, 0), t[2], be32(&t, 24), be32(&t, 28)),
        (34, 1, 300, 299)
    );
    ok(&mut cd, &cdb10(READ_TRACK_INFORMATION, 0, 299, 0, 36), ROOM);
    assert_eq!(
        fails(
            &mut cd,
            &cdb10(READ_TRACK_INFORMATION, 1, 2, 0, 36),
            &[],
            ROOM
        ),
        Sense::INVALID_FIELD
    );
    assert_eq!(
        fails(
            &mut cd,
            &cdb10(READ_TRACK_INFORMATION, 0, 300, 0, 36),
            &[],
            ROOM
        ),
        Sense::INVALID_FIELD
    );
    let mech = [MECHANISM_STATUS, 0, 0, 0, 0, 0, 0, 0, 0, 8, 0, 0];
    assert_eq!(ok(&mut cd, &mech, ROOM), [0; 8]);
    ok(
        &mut cd,
        &[SET_CD_SPEED, 0, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0],
        0,
    );
    cd.eject(false).unwrap();
    assert_eq!(fails(&mut cd, &mech, &[], ROOM), Sense::MEDIUM_REMOVED);
    assert_eq!(ok(&mut cd, &mech, ROOM)[1], 0x10, "door open");
}

#[test]
fn disc_structure_is_for_dvds() {
    let rds = |format: u8, layer: u8| {
        let mut c = [0u8; 12];
        c[0] = READ_DISC_STRUCTURE;
        c[6] = layer;
        c[7] = format;
        c[8..10].copy_from_slice(&4096u16.to_be_bytes());
        c
    };
    let mut cd = ready(cd_with(iso(20)));
    assert_eq!(
        fails(&mut cd, &rds(0, 0), &[], ROOM),
        Sense::INCOMPATIBLE_FORMAT
    );
    let caps = ok(&mut cd, &rds(0xff, 0), ROOM);
    assert_eq!(caps.len(), 4 + 3 * 4);
    let dvd = Medium::from_backend(PathBuf::from("dvd.iso"), Box::new(Zeroes(4 << 30)), true);
    let mut dvd = ready(LogicalUnit::cdrom(Some(dvd)));
    let phys = ok(&mut dvd, &rds(0, 0), ROOM);
    assert_eq!((phys.len(), be16(&phys, 0), phys[4]), (2052, 2050, 1));
    assert_eq!(
        u64::from(be32(&phys, 12) - be32(&phys, 8) + 1),
        (4u64 << 30) / 2048
    );
    assert_eq!(fails(&mut dvd, &rds(0, 1), &[], ROOM), Sense::INVALID_FIELD);
    assert_eq!(
        fails(&mut dvd, &rds(0x30, 0), &[], ROOM),
        Sense::INVALID_FIELD
    );
    ok(&mut dvd, &rds(1, 0), ROOM);
    let mut blu_ray = rds(0, 0);
    blu_ray[1] = 1;
    assert_eq!(fails(&mut dvd, &blu_ray, &[], ROOM), Sense::INVALID_FIELD);
}

#[test]
fn unknown_short_and_out_of_range_commands() {
    let mut cd = ready(cd_with(iso(20)));
    assert_eq!(
        fails(&mut cd, &[0x07, 0, 0, 0, 0, 0], &[], ROOM),
        Sense::INVALID_OPCODE
    );
    assert_eq!(
        fails(&mut cd, &[0xc5; 16], &[], ROOM),
        Sense::INVALID_OPCODE
    );
    assert_eq!(fails(&mut cd, &[], &[], ROOM), Sense::INVALID_OPCODE);
    assert_eq!(
        fails(&mut cd, &[READ_10, 0, 0, 0], &[], ROOM),
        Sense::INVALID_FIELD
    );
    assert_eq!(
        fails(&mut cd, &cdb10(READ_10, 0, 19, 0, 2), &[], ROOM),
        Sense::LBA_OUT_OF_RANGE
    );
    assert_eq!(
        fails(&mut cd, &cdb16(READ_16, 0, u64::MAX, 2), &[], ROOM),
        Sense::LBA_OUT_OF_RANGE
    );
    // More than the guest has room for, and more than one command may move.
    assert_eq!(
        fails(&mut cd, &cdb10(READ_10, 0, 0, 0, 2), &[], 4095),
        Sense::INVALID_FIELD
    );
    let mut big = ready(LogicalUnit::cdrom(Some(Medium::from_backend(
        PathBuf::from("dvd.iso"),
        Box::new(Zeroes(4 << 30)),
        true,
    ))));
    let blocks = (MAX_TRANSFER_BYTES / 2048 + 1) as u16;
    assert_eq!(
        fails(&mut big, &cdb10(READ_10, 0, 0, 0, blocks), &[], usize::MAX),
        Sense::INVALID_FIELD
    );
    // A zero-length read at the end is in range.
    assert!(ok(&mut cd, &cdb10(READ_10, 0, 20, 0, 0), ROOM).is_empty());
    assert_eq!(
        ok(&mut cd, &[READ_12, 0, 0, 0, 0, 16, 0, 0, 0, 1, 0, 0], ROOM).len(),
        2048
    );
    // VERIFY checks the range only.
    ok(&mut cd, &cdb10(VERIFY_10, 0, 0, 0, 20), 0);
    ok(&mut cd, &cdb16(VERIFY_16, 0, 19, 1), 0);
    assert_eq!(
        fails(&mut cd, &cdb10(VERIFY_10, 0, 20, 0, 1), &[], 0),
        Sense::LBA_OUT_OF_RANGE
    );
    assert_eq!(
        fails(&mut cd, &cdb10(VERIFY_10, 0x02, 0, 0, 1), &[], 0),
        Sense::INVALID_FIELD
    );
    // The failure is what REQUEST SENSE returns next, once.
    let _ = fails(&mut cd, &cdb10(READ_10, 0, 19, 0, 2), &[], ROOM);
    let s = ok(&mut cd, &[REQUEST_SENSE, 1, 0, 0, 252, 0], ROOM);
    assert_eq!(s, [0x72, 0x05, 0x21, 0, 0, 0, 0, 0]);
    let s = ok(&mut cd, &[REQUEST_SENSE, 0, 0, 0, 252, 0], ROOM);
    assert_eq!(s[2], 0);
    // Asynchronous event notification is not offered.
    assert_eq!(
        fails(
            &mut cd,
            &cdb10(GET_EVENT_STATUS_NOTIFICATION, 0, 0x1000, 0, 8),
            &[],
            ROOM
        ),
        Sense::INVALID_FIELD
    );
    let nea = ok(
        &mut cd,
        &cdb10(GET_EVENT_STATUS_NOTIFICATION, 1, 0x0200, 0, 8),
        ROOM,
    );
    assert_eq!(nea, [0, 2, 0x80, 0x10]);
}

#[test]
fn cd_writes_are_refused() {
    let mut cd = ready(cd_with(iso(20)));
    let data = vec![0u8; 2048];
    assert_eq!(
        fails(&mut cd, &cdb10(WRITE_10, 0, 0, 0, 1), &data, 0),
        Sense::WRITE_PROTECTED
    );
    assert_eq!(
        fails(&mut cd, &cdb10(UNMAP, 0, 0, 0, 24), &data, 0),
        Sense::INVALID_OPCODE
    );
    ok(&mut cd, &cdb10(SYNCHRONIZE_CACHE_10, 0, 0, 0, 0), 0);
    let blocks = ok(&mut cd, &cdb10(READ_10, 0, 16, 0, 1), ROOM);
    assert_eq!(&blocks[1..6], b"CD001");
}
