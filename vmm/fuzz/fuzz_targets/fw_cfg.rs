//! Fuzzes the fw_cfg device as a guest drives it: selector writes of any width, data-port and
//! DMA-register reads, FWCfgDmaAccess blocks with any control, length and address (in, across
//! and beyond a small guest memory) started through either half or one 64-bit write, and raw
//! guest-memory writes between them. Nothing may panic; the signature and the writable file's
//! size never change.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vireo_vmm::devices::bus::BusDevice;
use vireo_vmm::devices::fw_cfg::{FwCfg, FwCfgBuilder, FwCfgWriteHook, DMA_PORT, SELECTOR_PORT};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

const MEM: usize = 0x4000;
const PORTS: u64 = SELECTOR_PORT as u64;
const DMA: u64 = DMA_PORT as u64;

struct Check;
impl FwCfgWriteHook for Check {
    fn written(&mut self, content: &[u8]) {
        assert_eq!(content.len(), 28);
    }
}

/// The device over `mem`, which the fuzzer keeps a handle to (the regions are shared).
fn device(mem: GuestMemoryMmap) -> Option<FwCfg> {
    let mut b = FwCfgBuilder::new();
    b.legacy(0x05, vec![1, 0]).ok()?;
    b.file("bootorder", b"/virtio-mmio@00000000d8000000/virtio-blk@0\0".to_vec())
        .ok()?;
    b.file("etc/big", vec![0x5a; 5000]).ok()?;
    b.file("etc/empty", Vec::new()).ok()?;
    b.writable_file("etc/ramfb", vec![0; 28], Box::new(Check)).ok()?;
    Some(FwCfg::new(b, mem))
}

fn take<const N: usize>(d: &mut &[u8]) -> Option<[u8; N]> {
    let (head, rest) = d.split_first_chunk::<N>()?;
    *d = rest;
    Some(*head)
}

fuzz_target!(|data: &[u8]| {
    let Ok(mem) = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), MEM)]) else {
        return;
    };
    let Some(mut dev) = device(mem.clone()) else {
        return;
    };
    let mut d = data;
    while let Some([op]) = take::<1>(&mut d) {
        match op % 7 {
            0 => {
                let Some(k) = take::<2>(&mut d) else { break };
                let width = 1 + usize::from(op >> 3) % 4;
                dev.write(PORTS, 0, &[k[0], k[1], 0, 0][..width]);
            }
            1 => {
                let Some([n]) = take::<1>(&mut d) else { break };
                let mut buf = vec![0u8; 1 + usize::from(n % 4)];
                dev.read(PORTS, 1, &mut buf);
                dev.read(PORTS, 0, &mut buf);
            }
            2 | 3 => {
                // An access block at a fuzzed place, started through the two halves.
                let Some(at) = take::<2>(&mut d) else { break };
                let Some(block) = take::<16>(&mut d) else { break };
                let at = u64::from(u16::from_le_bytes(at)) % (MEM as u64 + 64);
                let _ = mem.write_slice(&block, GuestAddress(at));
                let hi = if op & 0x80 != 0 { 1u32 } else { 0 };
                dev.write(DMA, 0, &hi.to_be_bytes());
                dev.write(DMA, 4, &(at as u32).to_be_bytes());
            }
            4 => {
                let Some(v) = take::<8>(&mut d) else { break };
                dev.write(DMA, 0, &v);
            }
            5 => {
                let Some([n, a]) = take::<2>(&mut d) else { break };
                let mut buf = vec![0u8; 1 + usize::from(n % 8)];
                dev.read(DMA, u64::from(a % 10), &mut buf);
            }
            _ => {
                let Some(at) = take::<2>(&mut d) else { break };
                let Some(bytes) = take::<8>(&mut d) else { break };
                let _ = mem.write_slice(&bytes, GuestAddress(u64::from(u16::from_le_bytes(at))));
            }
        }
    }
    assert_eq!(dev.file("etc/ramfb").map(<[u8]>::len), Some(28));
    dev.write(PORTS, 0, &0u16.to_le_bytes());
    let mut sig = [0u8; 4];
    dev.read(PORTS, 1, &mut sig);
    assert_eq!(&sig, b"QEMU");
});
