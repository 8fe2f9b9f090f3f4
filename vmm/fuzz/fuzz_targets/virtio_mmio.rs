//! Fuzzes the virtio-mmio register state machine with a real device model behind it (blk over
//! an in-memory disk, read-write or read-only; rng; input keyboard or tablet; net over a
//! socketpair). The input is a device choice and a program of guest actions: register reads
//! and writes of any width at any offset (configuration space included), writes to guest
//! memory (rings and buffers), the Linux-style initialisation, and queue notifications after
//! which the device's worker gets a moment to run. Nothing may panic, in this thread or a
//! worker; the identification registers keep their values; dropping the transport (a reset)
//! always returns.
#![no_main]

use std::io;
use std::os::unix::net::UnixStream;

use libfuzzer_sys::fuzz_target;
use vireo_vmm::virtio::block::image::DiskBackend;
use vireo_vmm::virtio::block::Block;
use vireo_vmm::virtio::input::{InputKind, VirtioInput};
use vireo_vmm::virtio::mmio::{MmioTransport, MMIO_MAGIC};
use vireo_vmm::virtio::net::Net;
use vireo_vmm::virtio::rng::Rng;
use vireo_vmm::virtio::testing::{guest_memory, init_device, rd, wait_for, CountingIrq, MEM_SIZE};
use vireo_vmm::virtio::VirtioDevice;
use vm_memory::{Bytes, GuestAddress};

/// A disk in memory: the fuzzer must not touch files, and the device's own checks are what is
/// under test, not a filesystem.
struct MemDisk(Vec<u8>);

impl DiskBackend for MemDisk {
    fn size(&self) -> u64 {
        self.0.len() as u64
    }
    fn read_at(&mut self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let start = usize::try_from(offset).map_err(|_| io::ErrorKind::InvalidInput)?;
        let src = self
            .0
            .get(start..start + buf.len())
            .ok_or(io::ErrorKind::UnexpectedEof)?;
        buf.copy_from_slice(src);
        Ok(())
    }
    fn write_at(&mut self, buf: &[u8], offset: u64) -> io::Result<()> {
        let start = usize::try_from(offset).map_err(|_| io::ErrorKind::InvalidInput)?;
        let dst = self
            .0
            .get_mut(start..start + buf.len())
            .ok_or(io::ErrorKind::UnexpectedEof)?;
        dst.copy_from_slice(buf);
        Ok(())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
    fn discard(&mut self, offset: u64, len: u64) -> io::Result<()> {
        self.write_zeroes(offset, len)
    }
    fn write_zeroes(&mut self, offset: u64, len: u64) -> io::Result<()> {
        let start = usize::try_from(offset).map_err(|_| io::ErrorKind::InvalidInput)?;
        let len = usize::try_from(len).map_err(|_| io::ErrorKind::InvalidInput)?;
        self.0
            .get_mut(start..start + len)
            .ok_or(io::ErrorKind::UnexpectedEof)?
            .fill(0);
        Ok(())
    }
}

fn device(choice: u8, peer: &mut Option<UnixStream>) -> Option<Box<dyn VirtioDevice>> {
    Some(match choice % 6 {
        0 | 1 => Box::new(Block::with_backend(
            Box::new(MemDisk(vec![0; 64 * 512])),
            choice % 6 == 1,
            "fuzz",
            "fuzz-disk",
        )),
        2 => Box::new(Rng::new()),
        3 => Box::new(VirtioInput::new(InputKind::Keyboard).ok()?),
        4 => Box::new(VirtioInput::new(InputKind::Tablet).ok()?),
        _ => {
            let (ours, theirs) = UnixStream::pair().ok()?;
            theirs.set_nonblocking(true).ok()?;
            *peer = Some(theirs);
            Box::new(Net::with_socket([0x52, 0x54, 0, 0x12, 0x34, 0x56], 1500, ours).ok()?)
        }
    })
}

fn take<const N: usize>(rest: &mut &[u8]) -> Option<[u8; N]> {
    let (head, tail) = rest.split_first_chunk::<N>()?;
    *rest = tail;
    Some(*head)
}

fuzz_target!(|data: &[u8]| {
    let Some((&choice, mut rest)) = data.split_first() else {
        return;
    };
    let mut peer = None;
    let Some(dev) = device(choice, &mut peer) else {
        return;
    };
    let mem = guest_memory();
    let irq = CountingIrq::default();
    let Ok(mut t) = MmioTransport::new(dev, mem.clone(), Box::new(irq.clone())) else {
        return;
    };
    let mut steps = 0;
    while let Some([op]) = take::<1>(&mut rest) {
        steps += 1;
        if steps > 256 {
            break;
        }
        let width = [1usize, 2, 4, 8][usize::from(op >> 6)];
        match op & 0x7 {
            0 => {
                let Some(off) = take::<2>(&mut rest) else {
                    break;
                };
                let mut buf = [0u8; 8];
                t.read(
                    u64::from(u16::from_le_bytes(off) & 0x1ff),
                    &mut buf[..width],
                );
            }
            1 | 2 => {
                let (Some(off), Some(v)) = (take::<2>(&mut rest), take::<8>(&mut rest)) else {
                    break;
                };
                t.write(u64::from(u16::from_le_bytes(off) & 0x1ff), &v[..width]);
            }
            3 | 4 => {
                let (Some(addr), Some([len])) = (take::<3>(&mut rest), take::<1>(&mut rest)) else {
                    break;
                };
                let addr = u32::from_le_bytes([addr[0], addr[1], addr[2], 0]) as usize % MEM_SIZE;
                let n = usize::from(len % 64).min(rest.len());
                let _ = mem.write_slice(&rest[..n], GuestAddress(addr as u64));
                rest = &rest[n..];
            }
            5 => {
                let Some(f) = take::<8>(&mut rest) else { break };
                let sizes = [[8u16, 8], [64, 64], [256, 256], [16, 2]][usize::from(op >> 6)];
                let _ = init_device(&mut t, u64::from_le_bytes(f), &sizes);
            }
            6 => {
                let Some([q]) = take::<1>(&mut rest) else {
                    break;
                };
                let before = irq.count();
                t.write(0x50, &u32::from(q % 4).to_le_bytes());
                // The worker runs on its own thread: give it a moment to take the chain.
                wait_for(2, || irq.count() != before);
            }
            _ => {
                if let Some(p) = &peer {
                    let n = rest.len().min(64);
                    let mut frame = (n as u32).to_be_bytes().to_vec();
                    frame.extend_from_slice(&rest[..n]);
                    let _ = std::io::Write::write(&mut &*p, &frame);
                    rest = &rest[n..];
                }
            }
        }
    }
    assert_eq!(rd(&mut t, 0), MMIO_MAGIC, "the magic value changed");
    drop(t);
});
