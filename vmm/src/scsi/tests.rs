//! Command sequences against whole units: what Linux's sr and sd drivers and SeaBIOS send when
//! they probe a drive, media changes, the tray lock, and every error path.

use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use super::cdb::*;
use super::*;
use crate::virtio::block::image::DiskBackend;

const ROOM: usize = MAX_TRANSFER_BYTES;

/// A small ISO 9660 image: a primary volume descriptor at block 16, an El Torito boot record
/// at 17 (pointing at a catalog in block 19) and the set terminator at 18.
fn iso(blocks: usize) -> Vec<u8> {
    let mut d = vec![0u8; blocks * 2048];
    let pvd = 16 * 2048;
    d[pvd..pvd + 7].copy_from_slice(b"\x01CD001\x01");
    let br = 17 * 2048;
    d[br..br + 7].copy_from_slice(b"\x00CD001\x01");
    d[br + 7..br + 30].copy_from_slice(b"EL TORITO SPECIFICATION");
    d[br + 0x47..br + 0x4b].copy_from_slice(&19u32.to_le_bytes());
    let end = 18 * 2048;
    d[end..end + 7].copy_from_slice(b"\xffCD001\x01");
    d
}

fn medium(name: &str, data: Vec<u8>, read_only: bool) -> Medium {
    Medium::from_backend(
        PathBuf::from(name),
        Box::new(MemoryBackend::new(data)),
        read_only,
    )
}

fn cd_with(data: Vec<u8>) -> LogicalUnit {
    LogicalUnit::cdrom(Some(medium("a.iso", data, true)))
}

fn disk(blocks: usize, read_only: bool) -> LogicalUnit {
    LogicalUnit::disk(medium("d.img", vec![0xa5; blocks * 512], read_only))
}

/// The unit after the guest consumed its power-on attention.
fn ready(mut unit: LogicalUnit) -> LogicalUnit {
    let o = unit.execute(&[TEST_UNIT_READY, 0, 0, 0, 0, 0], &[], 0);
    assert_eq!(o.sense, Some(Sense::POWER_ON));
    unit
}

fn ok(unit: &mut LogicalUnit, cdb: &[u8], max_in: usize) -> Vec<u8> {
    let o = unit.execute(cdb, &[], max_in);
    assert_eq!((o.status, o.sense), (GOOD, None), "cdb {cdb:02x?}");
    assert!(o.data_in.len() <= max_in);
    o.data_in
}

fn fails(unit: &mut LogicalUnit, cdb: &[u8], data_out: &[u8], max_in: usize) -> Sense {
    let o = unit.execute(cdb, data_out, max_in);
    assert_eq!(o.status, CHECK_CONDITION, "cdb {cdb:02x?}");
    assert!(o.data_in.is_empty());
    o.sense.unwrap_or(Sense::NONE)
}

fn cdb10(op: u8, b1: u8, lba: u32, b6: u8, len: u16) -> [u8; 10] {
    let mut c = [0u8; 10];
    c[0] = op;
    c[1] = b1;
    c[2..6].copy_from_slice(&lba.to_be_bytes());
    c[6] = b6;
    c[7..9].copy_from_slice(&len.to_be_bytes());
    c
}

fn cdb16(op: u8, b1: u8, lba: u64, len: u32) -> [u8; 16] {
    let mut c = [0u8; 16];
    c[0] = op;
    c[1] = b1;
    c[2..10].copy_from_slice(&lba.to_be_bytes());
    c[10..14].copy_from_slice(&len.to_be_bytes());
    c
}

fn tur() -> [u8; 6] {
    [TEST_UNIT_READY, 0, 0, 0, 0, 0]
}

fn be16(d: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([d[at], d[at + 1]])
}

fn be32(d: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([d[at], d[at + 1], d[at + 2], d[at + 3]])
}

/// A back end of zeroes of any size (a DVD-sized medium without the memory).
struct Zeroes(u64);

impl DiskBackend for Zeroes {
    fn size(&self) -> u64 {
        self.0
    }
    fn read_at(&mut self, buf: &mut [u8], _: u64) -> io::Result<()> {
        buf.fill(0);
        Ok(())
    }
    fn write_at(&mut self, _: &[u8], _: u64) -> io::Result<()> {
        Ok(())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
    fn discard(&mut self, _: u64, _: u64) -> io::Result<()> {
        Ok(())
    }
    fn write_zeroes(&mut self, _: u64, _: u64) -> io::Result<()> {
        Ok(())
    }
}

/// A back end whose every operation fails, counting flushes.
struct Broken(Arc<AtomicUsize>);

impl DiskBackend for Broken {
    fn size(&self) -> u64 {
        1 << 20
    }
    fn read_at(&mut self, _: &mut [u8], _: u64) -> io::Result<()> {
        Err(io::ErrorKind::Other.into())
    }
    fn write_at(&mut self, _: &[u8], _: u64) -> io::Result<()> {
        Err(io::ErrorKind::Other.into())
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Err(io::ErrorKind::Other.into())
    }
    fn discard(&mut self, _: u64, _: u64) -> io::Result<()> {
        Err(io::ErrorKind::Other.into())
    }
    fn write_zeroes(&mut self, _: u64, _: u64) -> io::Result<()> {
        Err(io::ErrorKind::Other.into())
    }
}

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
fn empty_drive_then_host_insert() {
    let mut cd = ready(LogicalUnit::cdrom(None));
    assert_eq!(fails(&mut cd, &tur(), &[], 0), Sense::NO_MEDIUM_TRAY_CLOSED);
    let s = ok(&mut cd, &[REQUEST_SENSE, 0, 0, 0, 18, 0], ROOM);
    assert_eq!((s[2], s[12], s[13]), (0x02, 0x3a, 0x01));
    assert_eq!(
        fails(&mut cd, &cdb10(READ_10, 0, 0, 0, 1), &[], ROOM),
        Sense::NO_MEDIUM_TRAY_CLOSED
    );
    assert_eq!(
        fails(&mut cd, &cdb10(READ_CAPACITY_10, 0, 0, 0, 0), &[], ROOM),
        Sense::NO_MEDIUM_TRAY_CLOSED
    );
    assert!(matches!(cd.eject(false), Err(MediaError::AlreadyEmpty)));
    cd.change_medium(medium("b.iso", iso(20), true), false)
        .unwrap();
    assert_eq!(cd.info().medium, Some(PathBuf::from("b.iso")));
    // The attention passes INQUIRY and waits for the next other command.
    ok(&mut cd, &[INQUIRY, 0, 0, 0, 36, 0], ROOM);
    assert_eq!(fails(&mut cd, &tur(), &[], 0), Sense::MEDIUM_CHANGED);
    ok(&mut cd, &tur(), 0);
    let gesn = cdb10(GET_EVENT_STATUS_NOTIFICATION, 1, 0x1000, 0, 8);
    assert_eq!(ok(&mut cd, &gesn, ROOM)[4..6], [2, 0x02], "new media, once");
    assert_eq!(ok(&mut cd, &gesn, ROOM)[4..6], [0, 0x02]);
    // A host change never reaches take_guest_change.
    assert_eq!(cd.take_guest_change(), None);
}

#[test]
fn host_eject_and_replace() {
    let mut cd = ready(cd_with(iso(20)));
    cd.eject(false).unwrap();
    let info = cd.info();
    assert_eq!(
        (info.medium, info.tray_open, info.locked),
        (None, true, false)
    );
    // REQUEST SENSE returns (and clears) the attention.
    let s = ok(&mut cd, &[REQUEST_SENSE, 0, 0, 0, 18, 0], ROOM);
    assert_eq!((s[2], s[12]), (0x06, 0x3a));
    assert_eq!(fails(&mut cd, &tur(), &[], 0), Sense::NO_MEDIUM_TRAY_OPEN);
    let gesn = cdb10(GET_EVENT_STATUS_NOTIFICATION, 1, 0x1000, 0, 8);
    assert_eq!(
        ok(&mut cd, &gesn, ROOM)[4..6],
        [3, 0x01],
        "removal, tray open"
    );
    cd.change_medium(medium("c.iso", iso(30), true), false)
        .unwrap();
    cd.change_medium(medium("d.iso", iso(40), true), false)
        .unwrap();
    assert_eq!(fails(&mut cd, &tur(), &[], 0), Sense::MEDIUM_CHANGED);
    let cap = ok(&mut cd, &cdb10(READ_CAPACITY_10, 0, 0, 0, 0), ROOM);
    assert_eq!(be32(&cap, 0), 39);
    assert!(!cd.info().tray_open);
}

#[test]
fn locked_tray_refuses_until_forced() {
    let mut cd = ready(cd_with(iso(20)));
    ok(&mut cd, &[PREVENT_ALLOW_MEDIUM_REMOVAL, 0, 0, 0, 1, 0], 0);
    assert!(cd.info().locked);
    assert!(matches!(cd.eject(false), Err(MediaError::Locked)));
    assert!(matches!(
        cd.change_medium(medium("x.iso", iso(20), true), false),
        Err(MediaError::Locked)
    ));
    assert_eq!(cd.info().medium, Some(PathBuf::from("a.iso")));
    // The refused eject asks the guest to let go.
    let gesn = cdb10(GET_EVENT_STATUS_NOTIFICATION, 1, 0x1000, 0, 8);
    assert_eq!(ok(&mut cd, &gesn, ROOM)[4], 1, "eject request");
    assert_eq!(ok(&mut cd, &gesn, ROOM)[4], 0);
    // Nor may the guest eject while it holds the lock.
    let eject = [START_STOP_UNIT, 0, 0, 0, 0x02, 0];
    assert_eq!(fails(&mut cd, &eject, &[], 0), Sense::REMOVAL_PREVENTED);
    // Nothing changed, so no attention.
    ok(&mut cd, &tur(), 0);
    cd.eject(true).unwrap();
    let info = cd.info();
    assert_eq!((info.medium, info.locked), (None, false));
}

#[test]
fn forced_change_unlocks() {
    let mut cd = ready(cd_with(iso(20)));
    ok(&mut cd, &[PREVENT_ALLOW_MEDIUM_REMOVAL, 0, 0, 0, 3, 0], 0);
    cd.change_medium(medium("y.iso", iso(20), true), true)
        .unwrap();
    assert!(!cd.info().locked);
    assert_eq!(cd.info().medium, Some(PathBuf::from("y.iso")));
}

#[test]
fn guest_eject_and_close() {
    let mut cd = ready(cd_with(iso(20)));
    ok(&mut cd, &[PREVENT_ALLOW_MEDIUM_REMOVAL, 0, 0, 0, 1, 0], 0);
    ok(&mut cd, &[PREVENT_ALLOW_MEDIUM_REMOVAL, 0, 0, 0, 0, 0], 0);
    ok(&mut cd, &[START_STOP_UNIT, 1, 0, 0, 0x02, 0], 0);
    assert_eq!(cd.take_guest_change(), Some(None));
    assert_eq!(cd.take_guest_change(), None);
    assert_eq!(cd.info().medium, None);
    // The guest knows what it did: no attention, just an empty drive with the tray out.
    assert_eq!(fails(&mut cd, &tur(), &[], 0), Sense::NO_MEDIUM_TRAY_OPEN);
    ok(&mut cd, &[START_STOP_UNIT, 0, 0, 0, 0x03, 0], 0);
    assert_eq!(fails(&mut cd, &tur(), &[], 0), Sense::NO_MEDIUM_TRAY_CLOSED);
    // Ejecting an empty drive is no change; spinning up without LoEj is a no-op.
    ok(&mut cd, &[START_STOP_UNIT, 0, 0, 0, 0x02, 0], 0);
    assert_eq!(cd.take_guest_change(), None);
    ok(&mut cd, &[START_STOP_UNIT, 0, 0, 0, 0x01, 0], 0);
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

fn ok_out(unit: &mut LogicalUnit, cdb: &[u8], data_out: &[u8]) {
    let o = unit.execute(cdb, data_out, 0);
    assert_eq!((o.status, o.sense), (GOOD, None), "cdb {cdb:02x?}");
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

#[test]
fn unit_attention_reaches_every_other_command_once() {
    let mut cd = cd_with(iso(20));
    // Polling commands pass; the first other command gets the attention.
    ok(&mut cd, &cdb10(GET_CONFIGURATION, 0, 0, 0, 8), ROOM);
    ok(
        &mut cd,
        &cdb10(GET_EVENT_STATUS_NOTIFICATION, 1, 0x1000, 0, 8),
        ROOM,
    );
    assert_eq!(
        fails(&mut cd, &cdb10(READ_10, 0, 0, 0, 1), &[], ROOM),
        Sense::POWER_ON
    );
    ok(&mut cd, &cdb10(READ_10, 0, 0, 0, 1), ROOM);
    // An unknown command is no exception.
    cd.eject(false).unwrap();
    assert_eq!(
        fails(&mut cd, &[0x07, 0, 0, 0, 0, 0], &[], 0),
        Sense::MEDIUM_REMOVED
    );
    assert_eq!(
        fails(&mut cd, &[0x07, 0, 0, 0, 0, 0], &[], 0),
        Sense::INVALID_OPCODE
    );
}
