//! Command sequences against whole units: what Linux's sr and sd drivers and SeaBIOS send when
//! they probe a drive, media changes, the tray lock, and every error path; the helpers they share.

mod cdrom;
mod disk;
mod media;

use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

pub(super) use super::cdb::*;
pub(super) use super::*;
use crate::virtio::block::image::DiskBackend;

pub(super) const ROOM: usize = MAX_TRANSFER_BYTES;

/// A small ISO 9660 image: a primary volume descriptor at block 16, an El Torito boot record
/// at 17 (pointing at a catalog in block 19) and the set terminator at 18.
pub(super) fn iso(blocks: usize) -> Vec<u8> {
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

pub(super) fn medium(name: &str, data: Vec<u8>, read_only: bool) -> Medium {
    Medium::from_backend(
        PathBuf::from(name),
        Box::new(MemoryBackend::new(data)),
        read_only,
    )
}

pub(super) fn cd_with(data: Vec<u8>) -> LogicalUnit {
    LogicalUnit::cdrom(Some(medium("a.iso", data, true)))
}

pub(super) fn disk(blocks: usize, read_only: bool) -> LogicalUnit {
    LogicalUnit::disk(medium("d.img", vec![0xa5; blocks * 512], read_only))
}

/// The unit after the guest consumed its power-on attention.
pub(super) fn ready(mut unit: LogicalUnit) -> LogicalUnit {
    let o = unit.execute(&[TEST_UNIT_READY, 0, 0, 0, 0, 0], &[], 0);
    assert_eq!(o.sense, Some(Sense::POWER_ON));
    unit
}

pub(super) fn ok(unit: &mut LogicalUnit, cdb: &[u8], max_in: usize) -> Vec<u8> {
    let o = unit.execute(cdb, &[], max_in);
    assert_eq!((o.status, o.sense), (GOOD, None), "cdb {cdb:02x?}");
    assert!(o.data_in.len() <= max_in);
    o.data_in
}

pub(super) fn fails(unit: &mut LogicalUnit, cdb: &[u8], data_out: &[u8], max_in: usize) -> Sense {
    let o = unit.execute(cdb, data_out, max_in);
    assert_eq!(o.status, CHECK_CONDITION, "cdb {cdb:02x?}");
    assert!(o.data_in.is_empty());
    o.sense.unwrap_or(Sense::NONE)
}

pub(super) fn cdb10(op: u8, b1: u8, lba: u32, b6: u8, len: u16) -> [u8; 10] {
    let mut c = [0u8; 10];
    c[0] = op;
    c[1] = b1;
    c[2..6].copy_from_slice(&lba.to_be_bytes());
    c[6] = b6;
    c[7..9].copy_from_slice(&len.to_be_bytes());
    c
}

pub(super) fn cdb16(op: u8, b1: u8, lba: u64, len: u32) -> [u8; 16] {
    let mut c = [0u8; 16];
    c[0] = op;
    c[1] = b1;
    c[2..10].copy_from_slice(&lba.to_be_bytes());
    c[10..14].copy_from_slice(&len.to_be_bytes());
    c
}

pub(super) fn tur() -> [u8; 6] {
    [TEST_UNIT_READY, 0, 0, 0, 0, 0]
}

pub(super) fn be16(d: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([d[at], d[at + 1]])
}

pub(super) fn be32(d: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([d[at], d[at + 1], d[at + 2], d[at + 3]])
}

/// A back end of zeroes of any size (a DVD-sized medium without the memory).
pub(super) struct Zeroes(pub(super) u64);

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
pub(super) struct Broken(pub(super) Arc<AtomicUsize>);

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

pub(super) fn ok_out(unit: &mut LogicalUnit, cdb: &[u8], data_out: &[u8]) {
    let o = unit.execute(cdb, data_out, 0);
    assert_eq!((o.status, o.sense), (GOOD, None), "cdb {cdb:02x?}");
}
