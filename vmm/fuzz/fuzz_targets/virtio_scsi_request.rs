//! Fuzzes the virtio-scsi request path on arbitrary chains (direct descriptors built from the
//! input), guest memory contents, LUN fields, CDB and sense sizes: the command parser, the
//! data-out read, the bus (REPORT LUNS, absent LUNs, an empty CD-ROM drive and a small disk
//! answering any CDB), the response writer, and the control queue's parser and answer. Checks
//! that nothing panics, every length stays inside the chain, and no more data-in is written
//! than the guest gave room for.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vireo_vmm::scsi::{LogicalUnit, Medium, MAX_TRANSFER_BYTES};
use vireo_vmm::virtio::block::image::DiskBackend;
use vireo_vmm::virtio::queue::{Chain, Desc};
use vireo_vmm::virtio::scsi::bus::{BusUnit, ScsiBus};
use vireo_vmm::virtio::scsi::control::{answer_ctrl, parse_ctrl};
use vireo_vmm::virtio::scsi::request::{
    parse_cmd, parse_lun, write_response, Response, Sizes, MAX_CDB_SIZE, MAX_SENSE_SIZE,
    REQ_FIXED_LEN, RESP_FIXED_LEN,
};
use vireo_vmm::virtio::GuestMemory;
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend};

const MEM: usize = 0x1_0000;

/// 64 KiB of zeros.
struct Zeros;

impl DiskBackend for Zeros {
    fn size(&self) -> u64 {
        64 << 10
    }
    fn read_at(&mut self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        assert!(offset + buf.len() as u64 <= self.size(), "read past the end");
        buf.fill(0);
        Ok(())
    }
    fn write_at(&mut self, buf: &[u8], offset: u64) -> std::io::Result<()> {
        assert!(offset + buf.len() as u64 <= self.size(), "write past the end");
        Ok(())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
    fn discard(&mut self, offset: u64, len: u64) -> std::io::Result<()> {
        assert!(offset + len <= self.size(), "discard past the end");
        Ok(())
    }
    fn write_zeroes(&mut self, offset: u64, len: u64) -> std::io::Result<()> {
        assert!(offset + len <= self.size(), "write-zeroes past the end");
        Ok(())
    }
}

fn bus() -> ScsiBus {
    let disk = Medium::from_backend("/fuzz/disk.img".into(), Box::new(Zeros), false);
    ScsiBus::new(vec![
        BusUnit {
            id: "sda".into(),
            target: 0,
            lun: 0,
            unit: LogicalUnit::cdrom(None),
        },
        BusUnit {
            id: "sdb".into(),
            target: 1,
            lun: 3,
            unit: LogicalUnit::disk(disk),
        },
    ])
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 8 {
        return;
    }
    let sizes = Sizes {
        cdb: u32::from(data[0]) % (MAX_CDB_SIZE + 1),
        sense: u32::from(data[1]) % (MAX_SENSE_SIZE + 1),
    };
    let control = data[2] & 1 != 0;
    let ndesc = usize::from(data[3] % 8);
    let mut rest = &data[4..];
    let Ok(mem) = GuestMemory::from_ranges(&[(GuestAddress(0), MEM)]) else {
        return;
    };
    let mut descs = Vec::new();
    for _ in 0..ndesc {
        if rest.len() < 6 {
            break;
        }
        let addr = u64::from(u16::from_le_bytes([rest[0], rest[1]]));
        let len = u32::from_le_bytes([rest[2], rest[3], rest[4], 0]);
        let writable = rest[5] & 1 != 0;
        rest = &rest[6..];
        // Only chains that passed validation reach the parser: in memory, readable first.
        if !mem.check_range(GuestAddress(addr), (len as usize).max(1)) {
            return;
        }
        descs.push(Desc {
            addr: GuestAddress(addr),
            len,
            writable,
        });
    }
    descs.sort_by_key(|d| d.writable);
    let n = rest.len().min(MEM);
    let _ = mem.write_slice(&rest[..n], GuestAddress(0));
    let chain = Chain {
        head_index: 0,
        descs,
    };
    let mut b = bus();
    if control {
        if let Ok(req) = parse_ctrl(&chain, &mem) {
            if let Ok(used) = answer_ctrl(&chain, &mem, req, |t| b.has_target(t)) {
                assert!(u64::from(used) <= chain.writable_len());
            }
        }
        return;
    }
    let Ok(req) = parse_cmd(&chain, &mem, sizes) else {
        return;
    };
    assert_eq!(req.cdb.len() as u32, sizes.cdb);
    assert_eq!(
        req.data_out_len + REQ_FIXED_LEN + u64::from(sizes.cdb),
        chain.readable_len()
    );
    assert!(req.data_in_len <= chain.writable_len().saturating_sub(RESP_FIXED_LEN));
    assert!(req.data_out_len == 0 || req.data_in_len == 0);
    assert!(req.max_in() <= MAX_TRANSFER_BYTES);
    let mut out = Vec::new();
    if req.read_data_out(&chain, &mem, sizes, &mut out).is_err() {
        return;
    }
    assert!(out.len() as u64 <= req.data_out_len);
    // The LUN field as it was read agrees with parse_lun on the same bytes.
    let mut lun = [0u8; 8];
    if mem.read_slice(&mut lun, chain.descs[0].addr).is_ok() && chain.descs[0].len >= 8 {
        assert_eq!(parse_lun(&lun), req.address);
    }
    let Some((target, l)) = req.address else {
        return;
    };
    let Some(outcome) = b.execute(target, l, &req.cdb, &out, req.max_in()) else {
        assert!(!b.has_target(target));
        return;
    };
    assert!(outcome.data_in.len() <= req.max_in(), "more data-in than room");
    let sense = outcome.sense.map(|s| s.fixed());
    let resp = Response {
        response: 0,
        status: outcome.status,
        sense: sense.as_ref().map_or(&[][..], |s| &s[..]),
        data_in: &outcome.data_in,
        residual: 0,
    };
    if let Ok(used) = write_response(&chain, &mem, sizes, &resp) {
        assert!(u64::from(used) <= chain.writable_len());
        assert!(u64::from(used) <= RESP_FIXED_LEN + u64::from(sizes.sense) + outcome.data_in.len() as u64);
    }
});
