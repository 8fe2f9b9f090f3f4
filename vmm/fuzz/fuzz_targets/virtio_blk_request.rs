//! Fuzzes the virtio-blk request parser on arbitrary chains (direct descriptors built from the
//! input) and guest memory contents. Checks the parser's promises: reads and writes stay inside
//! the disk, are whole sectors and use only buffers of at most size_max; nothing panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vireo_vmm::virtio::block::request::{parse, RequestKind, SECTOR_SIZE, SIZE_MAX};
use vireo_vmm::virtio::queue::{Chain, Desc};
use vireo_vmm::virtio::GuestMemory;
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend};

const MEM: usize = 0x1_0000;

fuzz_target!(|data: &[u8]| {
    if data.len() < 10 {
        return;
    }
    let capacity = u64::from(u32::from_le_bytes([data[0], data[1], data[2], data[3]])) * 512;
    let read_only = data[4] & 1 != 0;
    let ndesc = usize::from(data[5] % 8);
    let mut rest = &data[6..];
    let Ok(mem) = GuestMemory::from_ranges(&[(GuestAddress(0), MEM)]) else {
        return;
    };
    let mut descs = Vec::new();
    for _ in 0..ndesc {
        if rest.len() < 7 {
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
    if let Ok(req) = parse(&chain, &mem, capacity, read_only) {
        match req.kind {
            RequestKind::In | RequestKind::Out => {
                assert_eq!(req.data_len % SECTOR_SIZE, 0);
                assert!(req.offset + req.data_len <= capacity);
                assert!(req.data.iter().all(|d| d.len <= SIZE_MAX));
                let total: u64 = req.data.iter().map(|d| u64::from(d.len)).sum();
                assert_eq!(total, req.data_len);
                if req.kind == RequestKind::Out {
                    assert!(!read_only);
                }
            }
            RequestKind::Discard(ref r) | RequestKind::WriteZeroes(ref r) => {
                assert!(!read_only);
                assert!(r.iter().all(|x| x.offset + x.len <= capacity));
            }
            RequestKind::GetId => assert!(req.data_len <= 20),
            RequestKind::Flush => {}
        }
        assert!(mem.check_range(req.status, 1));
    }
});
