//! Fuzzes the SCSI logical units (a CD-ROM drive and a disk over in-memory back ends) with
//! programs of guest commands (arbitrary CDBs of any length, data-out bytes and data-in room)
//! interleaved with host media operations (insert, replace, eject, forced or not) and checks
//! the units' promises: nothing panics; a command either succeeds with at most the room it
//! was given or fails with sense data and no data; a CD never changes and what a READ(10)
//! returns is the medium's bytes; a disk refuses media operations and an empty drive refuses
//! an eject; a refused operation changes nothing.
#![no_main]

use std::io;
use std::path::PathBuf;

use libfuzzer_sys::fuzz_target;
use vireo_vmm::scsi::{
    LogicalUnit, MediaError, Medium, MemoryBackend, CHECK_CONDITION, GOOD, MAX_TRANSFER_BYTES,
};
use vireo_vmm::virtio::block::image::DiskBackend;

/// A large medium of zeroes without the memory: DVD-sized media and LBAs near the top.
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

/// The byte at `offset` of every small in-memory CD.
fn pattern(offset: usize) -> u8 {
    (offset / 2048 * 7 + offset % 251) as u8
}

/// A medium chosen by one byte: small in memory (a whole number of blocks or not), or huge.
fn medium(sel: u8, read_only: bool) -> (Medium, bool) {
    if sel & 0x80 != 0 {
        let size = (u64::from(sel & 0x7f) + 1) << 27;
        let m = Medium::from_backend(PathBuf::from("big"), Box::new(Zeroes(size)), read_only);
        return (m, false);
    }
    let len = usize::from(sel & 0x3f) * 2048 + usize::from(sel >> 6) * 300;
    let data = (0..len).map(pattern).collect();
    let m = Medium::from_backend(
        PathBuf::from(format!("m{sel}")),
        Box::new(MemoryBackend::new(data)),
        read_only,
    );
    (m, true)
}

struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }
    fn bytes(&mut self, n: usize) -> &[u8] {
        let n = n.min(self.0.len());
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        head
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let Some(setup) = input.byte() else {
        return;
    };
    let Some(sel) = input.byte() else {
        return;
    };
    let cdrom = setup & 1 == 0;
    let (first, first_patterned) = medium(sel, cdrom || setup & 2 != 0);
    let mut patterned = cdrom && setup & 4 == 0 && first_patterned;
    let mut unit = if cdrom {
        LogicalUnit::cdrom((setup & 4 == 0).then_some(first))
    } else {
        LogicalUnit::disk(first)
    };
    for _ in 0..64 {
        let Some(op) = input.byte() else {
            break;
        };
        match op % 8 {
            0..=4 => {
                let cdb_len = usize::from(op >> 3) % 33;
                let cdb = input.bytes(cdb_len).to_vec();
                let out_len = usize::from(input.byte().unwrap_or(0)) * 16;
                let data_out = input.bytes(out_len).to_vec();
                let room = match input.byte().unwrap_or(0) {
                    0xff => usize::MAX,
                    0xfe => MAX_TRANSFER_BYTES,
                    r => usize::from(r) * 64,
                };
                let o = unit.execute(&cdb, &data_out, room);
                match o.status {
                    GOOD => {
                        assert!(o.sense.is_none());
                        assert!(o.data_in.len() <= room);
                        assert!(o.data_in.len() <= MAX_TRANSFER_BYTES);
                    }
                    CHECK_CONDITION => {
                        assert!(o.sense.is_some());
                        assert!(o.data_in.is_empty());
                    }
                    s => panic!("status {s:#x}"),
                }
                // READ(10) of a CD returns the medium's own bytes.
                if cdrom && patterned && o.status == GOOD && cdb.first() == Some(&0x28) {
                    let lba = u32::from_be_bytes([cdb[2], cdb[3], cdb[4], cdb[5]]) as usize;
                    for (i, &b) in o.data_in.iter().enumerate() {
                        assert_eq!(b, pattern(lba * 2048 + i));
                    }
                }
            }
            5 => {
                let Some(sel) = input.byte() else {
                    break;
                };
                let force = op & 0x80 != 0;
                let before = unit.info();
                let (m, is_patterned) = medium(sel, true);
                match unit.change_medium(m, force) {
                    Ok(()) => {
                        assert!(cdrom);
                        assert!(!before.locked || force);
                        let after = unit.info();
                        assert!(after.medium.is_some() && !after.locked && !after.tray_open);
                        patterned = is_patterned;
                    }
                    Err(MediaError::NotRemovable) => assert!(!cdrom),
                    Err(MediaError::Locked) => {
                        assert!(cdrom && before.locked && !force);
                        assert_eq!(unit.info(), before);
                    }
                    Err(MediaError::AlreadyEmpty) => panic!("insert refused as empty"),
                }
            }
            6 => {
                let force = op & 0x80 != 0;
                let before = unit.info();
                match unit.eject(force) {
                    Ok(()) => {
                        assert!(cdrom && before.medium.is_some());
                        let after = unit.info();
                        assert!(after.medium.is_none() && after.tray_open && !after.locked);
                    }
                    Err(MediaError::NotRemovable) => assert!(!cdrom),
                    Err(MediaError::AlreadyEmpty) => assert!(cdrom && before.medium.is_none()),
                    Err(MediaError::Locked) => {
                        assert!(before.locked && !force);
                        assert_eq!(unit.info(), before);
                    }
                }
            }
            _ => {
                let info = unit.info();
                assert_eq!(info.cdrom, cdrom);
                if !cdrom {
                    assert!(info.medium.is_some() && !info.locked && !info.tray_open);
                }
                if let Some(change) = unit.take_guest_change() {
                    assert!(cdrom && change.is_none() && info.medium.is_none());
                    assert!(unit.take_guest_change().is_none());
                }
            }
        }
    }
});
