use super::*;
use crate::pci::config::{CAPABILITIES, COMMAND};
use crate::pci::msix::MsiMessage;
use crate::virtio::rng::Rng;
use crate::virtio::testing::{guest_memory, ring_addrs, CountingIrq};
use crate::virtio::transport::{ACK, DOK, FOK};
use crate::virtio::VIRTIO_F_VERSION_1;

/// The vectors sent, in order.
#[derive(Default, Clone)]
struct Sent(Arc<Mutex<Vec<u16>>>);

impl MsiSink for Sent {
    fn route(&self, _vector: u16, _message: Option<MsiMessage>) {}
    fn send(&self, vector: u16) -> io::Result<()> {
        self.0.lock().unwrap().push(vector);
        Ok(())
    }
}

impl Sent {
    fn sends(&self) -> Vec<u16> {
        self.0.lock().unwrap().clone()
    }
}

fn rng() -> (VirtioPci, CountingIrq, Sent) {
    let intx = CountingIrq::default();
    let sent = Sent::default();
    let dev = VirtioPci::new(
        Box::new(Rng::new()),
        guest_memory(),
        Box::new(intx.clone()),
        Box::new(sent.clone()),
    )
    .unwrap();
    (dev, intx, sent)
}

fn rd(d: &mut VirtioPci, offset: u64, len: usize) -> u64 {
    let mut b = [0u8; 8];
    d.bar_read(REGS_BAR, offset, &mut b[..len]);
    u64::from_le_bytes(b)
}

fn wr(d: &mut VirtioPci, offset: u64, len: usize, v: u64) {
    d.bar_write(REGS_BAR, offset, &v.to_le_bytes()[..len]);
}

/// The vendor capabilities: (cfg_type, bar, offset, length), in list order.
fn virtio_caps(d: &VirtioPci) -> Vec<(u8, u8, u32, u32)> {
    let c = d.config();
    let mut at = usize::from(c.get8(CAPABILITIES));
    let mut out = Vec::new();
    while at != 0 {
        if c.get8(at) == CAP_VENDOR {
            out.push((
                c.get8(at + 3),
                c.get8(at + 4),
                c.get32(at + 8),
                c.get32(at + 12),
            ));
        }
        at = usize::from(c.get8(at + 1));
    }
    out
}

#[test]
fn the_function_shows_a_modern_virtio_device_and_its_capabilities() {
    let (d, _, _) = rng();
    let c = d.config();
    assert_eq!(c.get16(0), VENDOR_ID);
    assert_eq!(c.get16(2), 0x1044, "0x1040 + the entropy device's type 4");
    assert_eq!(c.get8(8), 1, "revision 1: modern only");
    assert_eq!(
        virtio_caps(&d),
        [
            (CFG_COMMON, 4, 0, 0x38),
            (CFG_ISR, 4, 0x1000, 1),
            (CFG_DEVICE, 4, 0x2000, 0x1000),
            (CFG_NOTIFY, 4, 0x3000, 0x1000),
            (CFG_PCI, 4, 0, 0),
        ]
    );
    assert_eq!(c.get8(d.msix_cap), MSIX_CAP_ID);
    assert_eq!(
        c.get16(d.msix_cap + 2),
        1,
        "two vectors: the queue's and the config's"
    );
}

#[test]
fn a_driver_negotiates_sets_up_a_queue_and_gets_msix_interrupts() {
    let (mut d, intx, sent) = rng();
    wr(&mut d, 0x14, 1, u64::from(ACK | DRV));
    wr(&mut d, 0x00, 4, 1);
    assert_ne!(
        rd(&mut d, 0x04, 4) & 1,
        0,
        "VERSION_1 is in the high feature word"
    );
    wr(&mut d, 0x08, 4, 1);
    wr(&mut d, 0x0c, 4, 1 << (VIRTIO_F_VERSION_1 - 32));
    wr(&mut d, 0x14, 1, u64::from(ACK | DRV | FOK));
    assert_eq!(rd(&mut d, 0x14, 1), u64::from(ACK | DRV | FOK));
    assert_eq!(rd(&mut d, 0x12, 2), 1, "one queue");
    wr(&mut d, 0x16, 2, 0);
    let max = rd(&mut d, 0x18, 2);
    assert!(max > 0);
    let (desc, avail, used) = ring_addrs(0);
    wr(&mut d, 0x20, 8, desc);
    wr(&mut d, 0x28, 4, avail);
    wr(&mut d, 0x2c, 4, 0);
    wr(&mut d, 0x30, 8, used);
    assert_eq!(rd(&mut d, 0x20, 8), desc);
    assert_eq!(rd(&mut d, 0x28, 8), avail);
    // MSI-X on, vector 0 for the queue, 1 for the configuration; 7 does not exist.
    let cap = d.msix_cap;
    let control = d.config().get16(cap + 2);
    d.config_mut()
        .write(cap + 2, &(control | 0x8000).to_le_bytes());
    d.config_written(cap + 2, 2);
    for v in 0..2u64 {
        d.bar_write(MSIX_BAR, v * 16, &0xfee0_0000u32.to_le_bytes());
        d.bar_write(MSIX_BAR, v * 16 + 8, &(0x40 + v as u32).to_le_bytes());
        d.bar_write(MSIX_BAR, v * 16 + 12, &0u32.to_le_bytes());
    }
    wr(&mut d, 0x1a, 2, 7);
    assert_eq!(rd(&mut d, 0x1a, 2), u64::from(NO_VECTOR));
    wr(&mut d, 0x1a, 2, 0);
    wr(&mut d, 0x10, 2, 1);
    assert_eq!(rd(&mut d, 0x1a, 2), 0);
    assert_eq!(rd(&mut d, 0x10, 2), 1);
    wr(&mut d, 0x1c, 2, 1);
    wr(&mut d, 0x14, 1, u64::from(ACK | DRV | FOK | DOK));
    assert_eq!(rd(&mut d, 0x14, 1), u64::from(ACK | DRV | FOK | DOK));
    // Queue addresses no longer change once the device runs.
    wr(&mut d, 0x20, 8, 0x1234_0000);
    assert_eq!(rd(&mut d, 0x20, 8), desc);

    let interrupt = d.core.interrupt().clone();
    interrupt.signal_used_queue(0).unwrap();
    interrupt.signal_config_change().unwrap();
    assert_eq!(sent.sends(), [0, 1]);
    assert_eq!(intx.count(), 0);
    assert_eq!(rd(&mut d, ISR_OFFSET, 1), 3, "both causes, read once");
    assert_eq!(rd(&mut d, ISR_OFFSET, 1), 0, "read-to-clear");

    // The notification address of queue 0 wakes the worker's eventfd; the worker drains it.
    wr(&mut d, NOTIFY_OFFSET, 2, 0);
    let (at, _) = d.queue_notifiers().next().unwrap();
    assert_eq!(at, NOTIFY_OFFSET);

    // MSI-X off: the INTx line.
    d.config_mut().write(cap + 2, &control.to_le_bytes());
    d.config_written(cap + 2, 2);
    interrupt.signal_used_queue(0).unwrap();
    assert_eq!(intx.count(), 1);

    // Status 0 resets the device and its vector assignments.
    wr(&mut d, 0x14, 1, 0);
    assert_eq!(rd(&mut d, 0x14, 1), 0);
    assert_eq!(rd(&mut d, 0x10, 2), u64::from(NO_VECTOR));
    d.reset();
}

#[test]
fn the_pci_configuration_window_reaches_the_registers() {
    let (mut d, _, _) = rng();
    let at = d.pci_cfg_cap;
    d.config_mut().write(at + 4, &[REGS_BAR as u8]);
    d.config_mut().write(at + 8, &0x14u32.to_le_bytes());
    d.config_mut().write(at + 12, &1u32.to_le_bytes());
    d.config_mut().write(at + 16, &[ACK as u8]);
    d.config_written(at + 16, 1);
    assert_eq!(rd(&mut d, 0x14, 1), u64::from(ACK));
    let mut b = [0u8; 1];
    d.config_read(at + 16, &mut b);
    assert_eq!(u32::from(b[0]), ACK);
    // A width other than the one set reads the plain bytes; another BAR is not reached.
    let mut w = [0u8; 2];
    d.config_read(at + 16, &mut w);
    d.config_mut().write(at + 4, &[0]);
    d.config_mut().write(at + 16, &[0]);
    d.config_written(at + 16, 1);
    assert_eq!(
        rd(&mut d, 0x14, 1),
        u64::from(ACK),
        "BAR 0 is not the registers"
    );
}

#[test]
fn accesses_outside_the_registers_do_nothing() {
    let (mut d, _, _) = rng();
    wr(&mut d, 0x16, 2, 5);
    assert_eq!(rd(&mut d, 0x18, 2), 0, "no queue 5");
    assert_eq!(rd(&mut d, 0x20, 8), 0);
    wr(&mut d, 0x1a, 2, 0);
    wr(&mut d, 0x13, 1, 0xff);
    wr(&mut d, 0x36, 4, 1);
    assert_eq!(
        rd(&mut d, 0x36, 4),
        0,
        "straddles the end of the common structure"
    );
    wr(&mut d, NOTIFY_OFFSET + 2, 2, 0);
    wr(&mut d, 0x3ffc, 4, 0);
    let mut b = [0u8; 4];
    d.bar_read(0, 0, &mut b);
    assert_eq!(b, [0xff; 4]);
    d.bar_read(MSIX_BAR, PBA_OFFSET, &mut b);
    assert_eq!(b, [0; 4]);
    d.config_mut().write(COMMAND, &0u16.to_le_bytes());
}
