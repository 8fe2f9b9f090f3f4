//! Fuzzes the queue walker: arbitrary descriptor tables and rings in guest memory, drained with
//! the same code the devices use. Checks that every accepted chain only names guest memory, has
//! readable buffers first and no more descriptors than the queue, and that nothing panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vireo_vmm::virtio::queue::{drain_queue, Chain};
use vireo_vmm::virtio::GuestMemory;
use virtio_queue::{Queue, QueueT};
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend};

const MEM: usize = 0x2_0000;

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let size = 1u16 << (data[0] % 9); // 1..=256
    let event_idx = data[1] & 1 != 0;
    let next_avail = u16::from_le_bytes([data[2], data[3]]);
    let Ok(mem) = GuestMemory::from_ranges(&[(GuestAddress(0), MEM)]) else {
        return;
    };
    let body = &data[4..];
    let n = body.len().min(MEM);
    if mem.write_slice(&body[..n], GuestAddress(0)).is_err() {
        return;
    }
    let Ok(mut q) = Queue::new(256) else { return };
    q.set_size(size);
    q.set_desc_table_address(Some(0), Some(0));
    q.set_avail_ring_address(Some(0x1_0000), Some(0));
    q.set_used_ring_address(Some(0x1_8000), Some(0));
    q.set_event_idx(event_idx);
    q.set_next_avail(next_avail);
    q.set_ready(true);
    if !q.is_valid(&mem) {
        return;
    }
    let check = |c: &Chain| {
        assert!(!c.descs.is_empty());
        assert!(c.descs.len() <= usize::from(size));
        let mut seen_w = false;
        for d in &c.descs {
            assert!(mem.check_range(d.addr, (d.len as usize).max(1)));
            if d.writable {
                seen_w = true;
            } else {
                assert!(!seen_w, "readable after writable accepted");
            }
        }
    };
    let _ = drain_queue(&mut q, &mem, |chain| match chain {
        Ok(c) => {
            check(&c);
            let mut buf = vec![0u8; 512];
            let _ = c.read_at(&mem, 0, &mut buf);
            c.write_at(&mem, 0, &buf).unwrap_or(0) as u32
        }
        Err(_) => 0,
    });
});
