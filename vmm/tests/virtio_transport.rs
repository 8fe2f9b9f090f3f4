//! The virtio-mmio transport and the queue walker, driven like a guest driver would, including
//! hostile drivers. The device behind the transport is virtio-rng (simplest real device).

use vireo_vmm::virtio::mmio::{MmioTransport, MMIO_MAGIC, VENDOR_ID};
use vireo_vmm::virtio::rng::Rng;
use vireo_vmm::virtio::testing::*;
use vireo_vmm::virtio::{
    VIRTIO_CONFIG_S_ACKNOWLEDGE as ACK, VIRTIO_CONFIG_S_DRIVER as DRV,
    VIRTIO_CONFIG_S_DRIVER_OK as DOK, VIRTIO_CONFIG_S_FEATURES_OK as FOK,
    VIRTIO_CONFIG_S_NEEDS_RESET, VIRTIO_F_VERSION_1, VIRTIO_RING_F_EVENT_IDX,
};
use virtio_bindings::virtio_mmio::*;
use vm_memory::{Bytes, GuestAddress};

const V1: u64 = 1 << VIRTIO_F_VERSION_1;
const EVENT_IDX: u64 = 1 << VIRTIO_RING_F_EVENT_IDX;

fn rng_transport() -> (MmioTransport, vireo_vmm::virtio::GuestMemory, CountingIrq) {
    let mem = guest_memory();
    let irq = CountingIrq::default();
    let t = MmioTransport::new(Box::new(Rng::new()), mem.clone(), Box::new(irq.clone()))
        .expect("transport");
    (t, mem, irq)
}

#[test]
fn identification_registers() {
    let (mut t, _, _) = rng_transport();
    assert_eq!(rd(&mut t, VIRTIO_MMIO_MAGIC_VALUE), MMIO_MAGIC);
    assert_eq!(rd(&mut t, VIRTIO_MMIO_VERSION), 2);
    assert_eq!(rd(&mut t, VIRTIO_MMIO_DEVICE_ID), 4);
    assert_eq!(rd(&mut t, VIRTIO_MMIO_VENDOR_ID), VENDOR_ID);
    wr(&mut t, VIRTIO_MMIO_QUEUE_SEL, 0);
    assert_eq!(rd(&mut t, VIRTIO_MMIO_QUEUE_NUM_MAX), 64);
    wr(&mut t, VIRTIO_MMIO_QUEUE_SEL, 1);
    assert_eq!(rd(&mut t, VIRTIO_MMIO_QUEUE_NUM_MAX), 0, "no second queue");
    // No shared memory regions.
    assert_eq!(rd(&mut t, VIRTIO_MMIO_SHM_LEN_LOW), u32::MAX);
    // Registers are 32-bit only: a byte read returns zero, not a slice of the magic.
    let mut b = [0xffu8; 1];
    t.read(0, &mut b);
    assert_eq!(b, [0]);
}

#[test]
fn legacy_driver_without_version_1_is_refused() {
    let (mut t, _, _) = rng_transport();
    let err = init_device(&mut t, 0, &[64]).expect_err("FEATURES_OK must be refused");
    assert_eq!(err & FOK, 0);
    assert_eq!(t.status() & FOK, 0);
}

#[test]
fn features_not_offered_are_refused() {
    let (mut t, _, _) = rng_transport();
    wr(&mut t, VIRTIO_MMIO_STATUS, ACK);
    wr(&mut t, VIRTIO_MMIO_STATUS, ACK | DRV);
    wr(&mut t, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
    wr(&mut t, VIRTIO_MMIO_DRIVER_FEATURES, 1 | (1 << 20)); // VERSION_1 + bogus bit 52
    wr(&mut t, VIRTIO_MMIO_STATUS, ACK | DRV | FOK);
    assert_eq!(rd(&mut t, VIRTIO_MMIO_STATUS) & FOK, 0);
}

#[test]
fn status_bits_must_come_in_order() {
    let (mut t, _, _) = rng_transport();
    wr(&mut t, VIRTIO_MMIO_STATUS, ACK | DRV | FOK | DOK);
    assert_eq!(
        rd(&mut t, VIRTIO_MMIO_STATUS),
        ACK | DRV,
        "all at once stops where no features were negotiated"
    );
    wr(&mut t, VIRTIO_MMIO_STATUS, 0);
    wr(&mut t, VIRTIO_MMIO_STATUS, DRV);
    assert_eq!(
        rd(&mut t, VIRTIO_MMIO_STATUS),
        0,
        "DRIVER before ACKNOWLEDGE"
    );
    wr(&mut t, VIRTIO_MMIO_STATUS, ACK);
    wr(&mut t, VIRTIO_MMIO_STATUS, ACK | DOK);
    assert_eq!(
        rd(&mut t, VIRTIO_MMIO_STATUS),
        ACK,
        "DRIVER_OK before DRIVER is ignored"
    );
    // Queue registers are locked before FEATURES_OK.
    wr(&mut t, VIRTIO_MMIO_QUEUE_SEL, 0);
    wr(&mut t, VIRTIO_MMIO_QUEUE_READY, 1);
    assert_eq!(rd(&mut t, VIRTIO_MMIO_QUEUE_READY), 0);
}

/// SeaBIOS's virtio drivers write ACKNOWLEDGE | DRIVER in one go, then the features, then add
/// FEATURES_OK and later DRIVER_OK.
#[test]
fn acknowledge_and_driver_in_one_write_like_seabios() {
    let (mut t, mem, irq) = rng_transport();
    wr(&mut t, VIRTIO_MMIO_STATUS, 0);
    wr(&mut t, VIRTIO_MMIO_STATUS, ACK | DRV);
    assert_eq!(rd(&mut t, VIRTIO_MMIO_STATUS), ACK | DRV);
    wr(&mut t, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
    wr(&mut t, VIRTIO_MMIO_DRIVER_FEATURES, 0);
    wr(&mut t, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
    wr(&mut t, VIRTIO_MMIO_DRIVER_FEATURES, (V1 >> 32) as u32);
    wr(&mut t, VIRTIO_MMIO_STATUS, ACK | DRV | FOK);
    assert_eq!(rd(&mut t, VIRTIO_MMIO_STATUS), ACK | DRV | FOK);
    let (desc, avail, used) = ring_addrs(0);
    wr(&mut t, VIRTIO_MMIO_QUEUE_SEL, 0);
    wr(&mut t, VIRTIO_MMIO_QUEUE_NUM, 64);
    wr(&mut t, VIRTIO_MMIO_QUEUE_DESC_LOW, desc as u32);
    wr(&mut t, VIRTIO_MMIO_QUEUE_AVAIL_LOW, avail as u32);
    wr(&mut t, VIRTIO_MMIO_QUEUE_USED_LOW, used as u32);
    wr(&mut t, VIRTIO_MMIO_QUEUE_READY, 1);
    wr(&mut t, VIRTIO_MMIO_STATUS, ACK | DRV | FOK | DOK);
    assert_eq!(t.status(), ACK | DRV | FOK | DOK);
    let mut q = DriverQueue {
        index: 0,
        size: 64,
        desc,
        avail,
        used,
        avail_idx: 0,
        last_used: 0,
    };
    rng_request(&mem, &mut q, 0, DATA_START, 16);
    notify(&mut t, 0);
    assert!(wait_for(2000, || q.used_idx(&mem) == 1), "no used entry");
    assert_eq!(q.pop_used(&mem), Some((0, 16)));
    assert!(wait_for(1000, || irq.count() >= 1));
}

/// SeaBIOS's virtio-scsi-mmio driver writes FEATURES_OK on its own, then ACKNOWLEDGE | DRIVER |
/// DRIVER_OK without FEATURES_OK: each write adds its bits, none is lost, the device starts.
#[test]
fn status_writes_that_leave_bits_out_add_the_rest_like_seabios_scsi() {
    let (mut t, _, _) = rng_transport();
    wr(&mut t, VIRTIO_MMIO_STATUS, 0);
    wr(&mut t, VIRTIO_MMIO_STATUS, ACK | DRV);
    wr(&mut t, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
    wr(&mut t, VIRTIO_MMIO_DRIVER_FEATURES, (V1 >> 32) as u32);
    wr(&mut t, VIRTIO_MMIO_STATUS, FOK);
    assert_eq!(rd(&mut t, VIRTIO_MMIO_STATUS), ACK | DRV | FOK);
    let (desc, avail, used) = ring_addrs(0);
    wr(&mut t, VIRTIO_MMIO_QUEUE_SEL, 0);
    wr(&mut t, VIRTIO_MMIO_QUEUE_NUM, 64);
    wr(&mut t, VIRTIO_MMIO_QUEUE_DESC_LOW, desc as u32);
    wr(&mut t, VIRTIO_MMIO_QUEUE_AVAIL_LOW, avail as u32);
    wr(&mut t, VIRTIO_MMIO_QUEUE_USED_LOW, used as u32);
    wr(&mut t, VIRTIO_MMIO_QUEUE_READY, 1);
    wr(&mut t, VIRTIO_MMIO_STATUS, ACK | DRV | DOK);
    assert_eq!(t.status(), ACK | DRV | FOK | DOK);
    // The order still holds: DRIVER_OK before FEATURES_OK is refused.
    let (mut t, _, _) = rng_transport();
    wr(&mut t, VIRTIO_MMIO_STATUS, ACK | DRV);
    wr(&mut t, VIRTIO_MMIO_STATUS, DOK);
    assert_eq!(t.status(), ACK | DRV);
}

fn rng_request(
    mem: &vireo_vmm::virtio::GuestMemory,
    q: &mut DriverQueue,
    head: u16,
    addr: u64,
    len: u32,
) {
    q.set_desc(mem, head, addr, len, F_WRITE, 0);
    q.publish(mem, head);
}

#[test]
fn rng_fills_buffers_and_interrupts() {
    let (mut t, mem, irq) = rng_transport();
    let (f, mut qs) = init_device(&mut t, V1, &[64]).expect("init");
    assert_eq!(f, V1);
    assert_eq!(t.status(), ACK | DRV | FOK | DOK);
    let q = &mut qs[0];
    rng_request(&mem, q, 0, DATA_START, 256);
    notify(&mut t, 0);
    assert!(wait_for(2000, || q.used_idx(&mem) == 1), "no used entry");
    assert_eq!(q.pop_used(&mem), Some((0, 256)));
    let mut buf = [0u8; 256];
    mem.read_slice(&mut buf, GuestAddress(DATA_START)).unwrap();
    assert!(buf.iter().any(|&b| b != 0), "entropy buffer left zero");
    assert!(wait_for(1000, || irq.count() >= 1));
    assert_eq!(rd(&mut t, VIRTIO_MMIO_INTERRUPT_STATUS) & 1, 1);
    wr(&mut t, VIRTIO_MMIO_INTERRUPT_ACK, 1);
    assert_eq!(rd(&mut t, VIRTIO_MMIO_INTERRUPT_STATUS), 0);
}

#[test]
fn reset_clears_everything_and_device_works_again() {
    let (mut t, mem, _) = rng_transport();
    let (_, mut qs) = init_device(&mut t, V1, &[64]).expect("init");
    rng_request(&mem, &mut qs[0], 0, DATA_START, 16);
    notify(&mut t, 0);
    assert!(wait_for(2000, || qs[0].used_idx(&mem) == 1));
    wr(&mut t, VIRTIO_MMIO_STATUS, 0);
    assert_eq!(rd(&mut t, VIRTIO_MMIO_STATUS), 0);
    assert_eq!(rd(&mut t, VIRTIO_MMIO_INTERRUPT_STATUS), 0);
    wr(&mut t, VIRTIO_MMIO_QUEUE_SEL, 0);
    assert_eq!(rd(&mut t, VIRTIO_MMIO_QUEUE_READY), 0);
    // Fresh rings after reset: zero them as a driver's new allocation would be.
    let (d, a, u) = ring_addrs(0);
    for base in [d, a, u] {
        mem.write_slice(&[0u8; 4096], GuestAddress(base)).unwrap();
    }
    let (_, mut qs) = init_device(&mut t, V1, &[64]).expect("re-init");
    rng_request(&mem, &mut qs[0], 0, DATA_START, 16);
    notify(&mut t, 0);
    assert!(
        wait_for(2000, || qs[0].used_idx(&mem) == 1),
        "device dead after reset"
    );
}

/// Publishes a hostile chain and then a good one; the bad one must come back with length 0 and
/// the good one must still be served.
fn hostile(setup: impl FnOnce(&vireo_vmm::virtio::GuestMemory, &mut DriverQueue)) {
    let (mut t, mem, _) = rng_transport();
    let (_, mut qs) = init_device(&mut t, V1, &[64]).expect("init");
    let q = &mut qs[0];
    setup(&mem, q);
    rng_request(&mem, q, 40, DATA_START + 0x1000, 32);
    notify(&mut t, 0);
    assert!(wait_for(2000, || q.used_idx(&mem) == 2), "device stalled");
    let (id, len) = q.pop_used(&mem).unwrap();
    assert_eq!(len, 0, "hostile chain {id} was used for data");
    assert_eq!(q.pop_used(&mem), Some((40, 32)));
    assert_eq!(t.status() & VIRTIO_CONFIG_S_NEEDS_RESET, 0);
}

#[test]
fn descriptor_loop_is_refused() {
    hostile(|mem, q| {
        q.set_desc(mem, 0, DATA_START, 8, F_WRITE | F_NEXT, 1);
        q.set_desc(mem, 1, DATA_START + 8, 8, F_WRITE | F_NEXT, 0);
        q.publish(mem, 0);
    });
}

#[test]
fn next_index_outside_the_table_is_refused() {
    hostile(|mem, q| {
        q.set_desc(mem, 0, DATA_START, 8, F_WRITE | F_NEXT, 500);
        q.publish(mem, 0);
    });
}

#[test]
fn buffer_outside_guest_memory_is_refused() {
    hostile(|mem, q| {
        q.set_desc(mem, 0, (MEM_SIZE as u64) - 4, 8, F_WRITE, 0);
        q.publish(mem, 0);
    });
}

#[test]
fn huge_length_is_refused() {
    hostile(|mem, q| {
        q.set_desc(mem, 0, DATA_START, u32::MAX, F_WRITE, 0);
        q.publish(mem, 0);
    });
}

#[test]
fn address_wrapping_around_is_refused() {
    hostile(|mem, q| {
        q.set_desc(mem, 0, u64::MAX - 2, 16, F_WRITE, 0);
        q.publish(mem, 0);
    });
}

#[test]
fn wrong_direction_gets_nothing_written() {
    // rng needs device-writable buffers; a readable-only chain is valid but gets 0 bytes.
    hostile(|mem, q| {
        q.set_desc(mem, 0, DATA_START, 64, 0, 0);
        q.publish(mem, 0);
    });
}

#[test]
fn readable_after_writable_is_refused() {
    hostile(|mem, q| {
        q.set_desc(mem, 0, DATA_START, 8, F_WRITE | F_NEXT, 1);
        q.set_desc(mem, 1, DATA_START + 8, 8, F_NEXT, 2);
        q.set_desc(mem, 2, DATA_START + 16, 8, F_WRITE, 0);
        q.publish(mem, 0);
    });
}

#[test]
fn indirect_chain_longer_than_the_queue_is_refused() {
    hostile(|mem, q| {
        // 100 descriptors in an indirect table, queue size 64.
        let table = DATA_START + 0x10_0000;
        for i in 0..100u64 {
            let flags = F_WRITE | if i < 99 { F_NEXT } else { 0 };
            let mut d = [0u8; 16];
            d[0..8].copy_from_slice(&(DATA_START + i).to_le_bytes());
            d[8..12].copy_from_slice(&1u32.to_le_bytes());
            d[12..14].copy_from_slice(&flags.to_le_bytes());
            d[14..16].copy_from_slice(&((i + 1) as u16).to_le_bytes());
            mem.write_slice(&d, GuestAddress(table + 16 * i)).unwrap();
        }
        q.set_desc(mem, 0, table, 1600, F_INDIRECT, 0);
        q.publish(mem, 0);
    });
}

#[test]
fn indirect_chain_within_limits_is_served() {
    let (mut t, mem, _) = rng_transport();
    let (_, mut qs) = init_device(&mut t, V1 | (1 << 28), &[64]).expect("init");
    let q = &mut qs[0];
    let table = DATA_START + 0x10_0000;
    for i in 0..4u64 {
        let flags = F_WRITE | if i < 3 { F_NEXT } else { 0 };
        let mut d = [0u8; 16];
        d[0..8].copy_from_slice(&(DATA_START + 16 * i).to_le_bytes());
        d[8..12].copy_from_slice(&16u32.to_le_bytes());
        d[12..14].copy_from_slice(&flags.to_le_bytes());
        d[14..16].copy_from_slice(&((i + 1) as u16).to_le_bytes());
        mem.write_slice(&d, GuestAddress(table + 16 * i)).unwrap();
    }
    q.set_desc(&mem, 0, table, 64, F_INDIRECT, 0);
    q.publish(&mem, 0);
    notify(&mut t, 0);
    assert!(wait_for(2000, || q.used_idx(&mem) == 1));
    assert_eq!(q.pop_used(&mem), Some((0, 64)));
}

#[test]
fn corrupt_avail_index_sets_needs_reset() {
    let (mut t, mem, _) = rng_transport();
    let (_, mut qs) = init_device(&mut t, V1, &[64]).expect("init");
    qs[0].set_avail_idx(&mem, 1000); // 1000 entries pending in a 64-entry ring
    notify(&mut t, 0);
    assert!(
        wait_for(2000, || rd(&mut t, VIRTIO_MMIO_STATUS)
            & VIRTIO_CONFIG_S_NEEDS_RESET
            != 0),
        "DEVICE_NEEDS_RESET not set"
    );
    assert_eq!(qs[0].used_idx(&mem), 0);
}

#[test]
fn invalid_ring_address_fails_activation() {
    let (mut t, _, _) = rng_transport();
    wr(&mut t, VIRTIO_MMIO_STATUS, ACK);
    wr(&mut t, VIRTIO_MMIO_STATUS, ACK | DRV);
    wr(&mut t, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
    wr(&mut t, VIRTIO_MMIO_DRIVER_FEATURES, 1);
    wr(&mut t, VIRTIO_MMIO_STATUS, ACK | DRV | FOK);
    wr(&mut t, VIRTIO_MMIO_QUEUE_SEL, 0);
    wr(&mut t, VIRTIO_MMIO_QUEUE_NUM, 64);
    wr(&mut t, VIRTIO_MMIO_QUEUE_DESC_LOW, 0xffff_0000);
    wr(&mut t, VIRTIO_MMIO_QUEUE_DESC_HIGH, 0x10);
    wr(&mut t, VIRTIO_MMIO_QUEUE_READY, 1);
    wr(&mut t, VIRTIO_MMIO_STATUS, ACK | DRV | FOK | DOK);
    assert_ne!(
        rd(&mut t, VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_NEEDS_RESET,
        0
    );
}

#[test]
fn event_idx_suppresses_interrupts_until_used_event() {
    let (mut t, mem, irq) = rng_transport();
    let (f, mut qs) = init_device(&mut t, V1 | EVENT_IDX, &[64]).expect("init");
    assert_ne!(f & EVENT_IDX, 0);
    let q = &mut qs[0];
    // Interrupt only once used index moves past 2 (i.e. after the third buffer).
    q.set_used_event(&mem, 2);
    for i in 0..2u16 {
        rng_request(&mem, q, i, DATA_START + 64 * u64::from(i), 8);
        notify(&mut t, 0);
        assert!(wait_for(2000, || q.used_idx(&mem) == i + 1));
    }
    std::thread::sleep(std::time::Duration::from_millis(20));
    assert_eq!(irq.count(), 0, "interrupt before used_event was reached");
    rng_request(&mem, q, 2, DATA_START + 128, 8);
    notify(&mut t, 0);
    assert!(
        wait_for(2000, || irq.count() == 1),
        "no interrupt at used_event"
    );
    // The device asked to be notified at the next avail index.
    assert_eq!(q.avail_event(&mem), 3);
}

#[test]
fn ring_index_wraps_around() {
    // Drive 70000 requests through a 64-entry queue so both 16-bit indices wrap.
    let (mut t, mem, _) = rng_transport();
    let (_, mut qs) = init_device(&mut t, V1 | EVENT_IDX, &[64]).expect("init");
    let q = &mut qs[0];
    let total: u32 = 70_000;
    let mut done: u32 = 0;
    while done < total {
        let batch = (total - done).min(64) as u16;
        for i in 0..batch {
            rng_request(&mem, q, i, DATA_START + 8 * u64::from(i), 1);
        }
        notify(&mut t, 0);
        let want = q.last_used.wrapping_add(batch);
        assert!(
            wait_for(5000, || q.used_idx(&mem) == want),
            "stalled at {done}"
        );
        for _ in 0..batch {
            let (_, len) = q.pop_used(&mem).unwrap();
            assert_eq!(len, 1);
        }
        done += u32::from(batch);
    }
    assert_eq!(q.used_idx(&mem), (total % 65536) as u16);
}
