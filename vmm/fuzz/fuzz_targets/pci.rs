//! Fuzzes PCI as a guest drives it: configuration mechanism #1 (address and data ports, any
//! width) into bus 0 with the i440FX host bridge and a virtio-pci entropy device, whose BAR
//! windows then move on and off real port and MMIO buses; accesses of any width at any address
//! on those buses (the MSI-X table and PBA, the virtio registers, the configuration window).
//! Nothing may panic; the host bridge keeps its identity; an address no window covers reads
//! as all-ones.
#![no_main]

use std::io;
use std::sync::{Arc, Mutex};

use libfuzzer_sys::fuzz_target;
use vireo_vmm::devices::bus::{Bus, BusDevice};
use vireo_vmm::pci::config_io::{ConfigIo, BASE};
use vireo_vmm::pci::i440fx::HostBridge;
use vireo_vmm::pci::msix::{MsiMessage, MsiSink};
use vireo_vmm::pci::root::{DevFn, PciRoot};
use vireo_vmm::virtio::pci::VirtioPci;
use vireo_vmm::virtio::rng::Rng;
use vireo_vmm::virtio::testing::{guest_memory, CountingIrq};

struct Drop0;

impl MsiSink for Drop0 {
    fn route(&self, _vector: u16, _message: Option<MsiMessage>) {}
    fn send(&self, _vector: u16) -> io::Result<()> {
        Ok(())
    }
}

fuzz_target!(|data: &[u8]| {
    let pio = Arc::new(Bus::new());
    let mmio = Arc::new(Bus::new());
    let mut root = PciRoot::new(pio.clone(), mmio.clone());
    let Some(host) = DevFn::new(0, 0) else { return };
    let Some(slot) = DevFn::new(3, 0) else { return };
    if root.add(host, Arc::new(Mutex::new(HostBridge::new()))).is_err() {
        return;
    }
    let Ok(dev) = VirtioPci::new(
        Box::new(Rng::new()),
        guest_memory(),
        Box::new(CountingIrq::default()),
        Box::new(Drop0),
    ) else {
        return;
    };
    if root.add(slot, Arc::new(Mutex::new(dev))).is_err() {
        return;
    }
    let mut io = ConfigIo::new(Arc::new(Mutex::new(root)));
    let mut ops = data.chunks_exact(10);
    for op in &mut ops {
        let width = [1usize, 2, 4, 8][usize::from(op[1] & 3)];
        let value = &op[2..2 + width];
        let addr = u64::from(u32::from_le_bytes([op[6], op[7], op[8], op[9]]));
        match op[0] % 6 {
            0 => io.write(BASE, u64::from(op[2] & 7), &value[..width.min(4)]),
            1 => {
                let mut b = [0u8; 4];
                io.read(BASE, u64::from(op[2] & 7), &mut b[..width.min(4)]);
            }
            2 => {
                pio.write(addr & 0xffff, value);
            }
            3 => {
                let mut b = [0u8; 8];
                if !pio.read(addr & 0xffff, &mut b[..width]) {
                    assert!(b[..width].iter().all(|&x| x == 0xff));
                }
            }
            4 => {
                mmio.write(addr | u64::from(op[1] >> 4) << 32, value);
            }
            _ => {
                let mut b = [0u8; 8];
                mmio.read(addr | u64::from(op[1] >> 4) << 32, &mut b[..width]);
            }
        }
    }
    // The host bridge is still the i440FX at 00:00.0.
    io.write(BASE, 0, &0x8000_0000u32.to_le_bytes());
    let mut id = [0u8; 4];
    io.read(BASE, 4, &mut id);
    assert_eq!(u32::from_le_bytes(id), 0x1237_8086);
});
