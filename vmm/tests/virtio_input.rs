//! virtio-input keyboard and tablet: what the guest's driver reads from the config space, and
//! the events an [`InputHandle`] produces.

use vireo_vmm::virtio::input::{ev, InputKind, VirtioInput, ABS_MAX};
use vireo_vmm::virtio::mmio::MmioTransport;
use vireo_vmm::virtio::testing::*;
use vireo_vmm::virtio::{GuestMemory, VIRTIO_F_VERSION_1};
use vm_memory::{Bytes, GuestAddress};

const V1: u64 = 1 << VIRTIO_F_VERSION_1;

fn select(t: &mut MmioTransport, sel: u8, subsel: u8) -> Vec<u8> {
    t.write(0x100, &[sel]);
    t.write(0x101, &[subsel]);
    let mut size = [0u8; 1];
    t.read(0x102, &mut size);
    let mut data = vec![0u8; usize::from(size[0])];
    for (i, b) in data.iter_mut().enumerate() {
        let mut x = [0u8; 1];
        t.read(0x108 + i as u64, &mut x);
        *b = x[0];
    }
    data
}

fn has_bit(bitmap: &[u8], bit: u16) -> bool {
    bitmap
        .get(usize::from(bit / 8))
        .is_some_and(|b| b & (1 << (bit % 8)) != 0)
}

#[test]
fn tablet_config_space() {
    let mem = guest_memory();
    let dev = VirtioInput::new(InputKind::Tablet).unwrap();
    let mut t = MmioTransport::new(Box::new(dev), mem, Box::new(CountingIrq::default())).unwrap();
    assert_eq!(rd(&mut t, 0x8), 18, "virtio-input device id");
    wr(&mut t, 0x70, 1);
    wr(&mut t, 0x70, 3);
    assert_eq!(select(&mut t, 1, 0), b"Vireo virtio tablet");
    let abs = select(&mut t, 0x11, ev::EV_ABS as u8);
    assert!(has_bit(&abs, ev::ABS_X) && has_bit(&abs, ev::ABS_Y));
    let keys = select(&mut t, 0x11, ev::EV_KEY as u8);
    for b in [ev::BTN_LEFT, ev::BTN_RIGHT, ev::BTN_MIDDLE] {
        assert!(has_bit(&keys, b), "button {b:#x} missing");
    }
    let rel = select(&mut t, 0x11, ev::EV_REL as u8);
    assert!(has_bit(&rel, ev::REL_WHEEL));
    let info = select(&mut t, 0x12, ev::ABS_X as u8);
    assert_eq!(info.len(), 20);
    assert_eq!(u32::from_le_bytes(info[0..4].try_into().unwrap()), 0);
    assert_eq!(u32::from_le_bytes(info[4..8].try_into().unwrap()), ABS_MAX);
    assert!(
        select(&mut t, 0x11, ev::EV_LED as u8).is_empty(),
        "tablet has no LEDs"
    );
}

#[test]
fn keyboard_config_space() {
    let mem = guest_memory();
    let dev = VirtioInput::new(InputKind::Keyboard).unwrap();
    let mut t = MmioTransport::new(Box::new(dev), mem, Box::new(CountingIrq::default())).unwrap();
    wr(&mut t, 0x70, 1);
    wr(&mut t, 0x70, 3);
    let keys = select(&mut t, 0x11, ev::EV_KEY as u8);
    assert!(has_bit(&keys, 30) && has_bit(&keys, 1), "KEY_A and KEY_ESC");
    assert!(!select(&mut t, 0x11, ev::EV_REP as u8).is_empty());
    assert!(select(&mut t, 0x11, ev::EV_ABS as u8).is_empty());
}

fn post_buffers(mem: &GuestMemory, q: &mut DriverQueue, n: u16) {
    for i in 0..n {
        q.set_desc(mem, i, DATA_START + 8 * u64::from(i), 8, F_WRITE, 0);
        q.publish(mem, i);
    }
}

fn events(mem: &GuestMemory, q: &mut DriverQueue) -> Vec<(u16, u16, u32)> {
    let mut out = Vec::new();
    while let Some((id, len)) = q.pop_used(mem) {
        assert_eq!(len, 8);
        let mut b = [0u8; 8];
        mem.read_slice(&mut b, GuestAddress(DATA_START + 8 * u64::from(id)))
            .unwrap();
        out.push((
            u16::from_le_bytes([b[0], b[1]]),
            u16::from_le_bytes([b[2], b[3]]),
            u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
        ));
    }
    out
}

#[test]
fn tablet_events_from_the_handle() {
    let mem = guest_memory();
    let dev = VirtioInput::new(InputKind::Tablet).unwrap();
    let handle = dev.handle();
    assert!(handle.has_tablet() && !handle.has_keyboard());
    let irq = CountingIrq::default();
    let mut t = MmioTransport::new(Box::new(dev), mem.clone(), Box::new(irq.clone())).unwrap();
    let (_, mut qs) = init_device(&mut t, V1, &[64, 64]).unwrap();
    post_buffers(&mem, &mut qs[0], 32);
    notify(&mut t, 0);
    // Bottom-right corner of a 1280x800 screen, left button down.
    handle.clone().pointer_abs(1279, 799, 1280, 800, 1);
    assert!(wait_for(2000, || qs[0].used_idx(&mem) == 4));
    assert_eq!(
        events(&mem, &mut qs[0]),
        vec![
            (ev::EV_ABS, ev::ABS_X, ABS_MAX),
            (ev::EV_ABS, ev::ABS_Y, ABS_MAX),
            (ev::EV_KEY, ev::BTN_LEFT, 1),
            (ev::EV_SYN, ev::SYN_REPORT, 0),
        ]
    );
    assert!(irq.count() >= 1);
    // Centre, left released, wheel up pressed.
    handle.pointer_abs(640, 400, 1281, 801, 1 << 3);
    assert!(wait_for(2000, || qs[0].used_idx(&mem) == 9));
    assert_eq!(
        events(&mem, &mut qs[0]),
        vec![
            (ev::EV_ABS, ev::ABS_X, ABS_MAX / 2),
            (ev::EV_ABS, ev::ABS_Y, ABS_MAX / 2),
            (ev::EV_KEY, ev::BTN_LEFT, 0),
            (ev::EV_REL, ev::REL_WHEEL, 1),
            (ev::EV_SYN, ev::SYN_REPORT, 0),
        ]
    );
}

#[test]
fn keyboard_events_wait_for_buffers() {
    let mem = guest_memory();
    let dev = VirtioInput::new(InputKind::Keyboard).unwrap();
    let handle = dev.handle();
    let mut t =
        MmioTransport::new(Box::new(dev), mem.clone(), Box::new(CountingIrq::default())).unwrap();
    let (_, mut qs) = init_device(&mut t, V1, &[64, 64]).unwrap();
    // No buffers yet: the key waits.
    handle.key(30, true);
    handle.key(30, false);
    std::thread::sleep(std::time::Duration::from_millis(50));
    assert_eq!(qs[0].used_idx(&mem), 0);
    post_buffers(&mem, &mut qs[0], 8);
    notify(&mut t, 0);
    assert!(wait_for(2000, || qs[0].used_idx(&mem) == 4));
    assert_eq!(
        events(&mem, &mut qs[0]),
        vec![
            (ev::EV_KEY, 30, 1),
            (ev::EV_SYN, 0, 0),
            (ev::EV_KEY, 30, 0),
            (ev::EV_SYN, 0, 0),
        ]
    );
}
