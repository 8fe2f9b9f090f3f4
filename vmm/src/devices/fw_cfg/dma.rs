//! fw_cfg's DMA interface: one `FWCfgDmaAccess` {BE32 control, BE32 length, BE64 address} in
//! guest memory per transfer, done at once; its control word is then rewritten to 0, or to
//! [`CTL_ERROR`] when any part failed.

use super::FwCfg;
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend};

pub const CTL_ERROR: u32 = 0x01;
pub const CTL_READ: u32 = 0x02;
pub const CTL_SKIP: u32 = 0x04;
pub const CTL_SELECT: u32 = 0x08;
pub const CTL_WRITE: u32 = 0x10;
/// Size of a `FWCfgDmaAccess`.
pub const ACCESS_SIZE: usize = 16;

/// Zero-filling is done in pieces this large, so a guest's 4 GiB length costs no host memory.
const ZERO_CHUNK: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Read,
    Write,
    Skip,
}

impl FwCfg {
    /// Runs the transfer described at guest address `access`. An access block outside guest
    /// RAM is ignored (there is nowhere to report the error).
    pub fn dma_transfer(&mut self, access: u64) {
        let mut raw = [0u8; ACCESS_SIZE];
        if self.mem.read_slice(&mut raw, GuestAddress(access)).is_err() {
            return;
        }
        let control = u32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]]);
        let length = u32::from_be_bytes([raw[4], raw[5], raw[6], raw[7]]);
        let mut addr = [0u8; 8];
        addr.copy_from_slice(&raw[8..16]);
        let addr = u64::from_be_bytes(addr);
        if control & CTL_SELECT != 0 {
            self.select((control >> 16) as u16);
        }
        let op = if control & CTL_READ != 0 {
            Some(Op::Read)
        } else if control & CTL_WRITE != 0 {
            Some(Op::Write)
        } else if control & CTL_SKIP != 0 {
            Some(Op::Skip)
        } else {
            None
        };
        let ok = match op {
            Some(op) => self.dma_run(op, addr, length as usize),
            None => true,
        };
        let status: u32 = if ok { 0 } else { CTL_ERROR };
        // Failing here leaves the guest's block as it was; nothing else can be done.
        let _ = self
            .mem
            .write_slice(&status.to_be_bytes(), GuestAddress(access));
    }

    /// Moves `length` bytes between the selected item and guest memory at `addr`; false on
    /// the first failure (later bytes are not moved).
    fn dma_run(&mut self, op: Op, addr: u64, length: usize) -> bool {
        let avail = self.remaining();
        let n = length.min(avail);
        if n > 0 {
            let end = self.offset + n;
            let done = match op {
                Op::Read => match self.current().and_then(|d| d.get(self.offset..end)) {
                    Some(src) => self.mem.write_slice(src, GuestAddress(addr)).is_ok(),
                    None => false,
                },
                Op::Write => self.dma_write_file(addr, end),
                Op::Skip => true,
            };
            if !done {
                return false;
            }
            self.offset = end;
        }
        let rest = length - n;
        if rest == 0 {
            return true;
        }
        // Past the item's end (or no item): reads give zeros, writes fail, skips do nothing.
        let Some(at) = addr.checked_add(n as u64) else {
            return false;
        };
        match op {
            Op::Read => self.zero_fill(at, rest),
            Op::Write => false,
            Op::Skip => true,
        }
    }

    /// Copies guest bytes at `addr` into the selected file from the read position up to
    /// `end`, then tells the file's device. Only files with a hook are writable.
    fn dma_write_file(&mut self, addr: u64, end: usize) -> bool {
        let key = self.key;
        let Some(index) = key
            .checked_sub(super::files::KEY_FILE_FIRST)
            .filter(|_| key < super::files::KEY_ARCH_LOCAL)
        else {
            return false;
        };
        let Some(file) = self.files.get_mut(usize::from(index)) else {
            return false;
        };
        let Some(hook) = file.hook.as_mut() else {
            return false;
        };
        let Some(dst) = file.data.get_mut(self.offset..end) else {
            return false;
        };
        let mut buf = vec![0u8; dst.len()];
        if self.mem.read_slice(&mut buf, GuestAddress(addr)).is_err() {
            return false;
        }
        dst.copy_from_slice(&buf);
        hook.written(&file.data);
        true
    }

    fn zero_fill(&self, addr: u64, len: usize) -> bool {
        if !self.mem.check_range(GuestAddress(addr), len) {
            return false;
        }
        let zeros = [0u8; ZERO_CHUNK];
        let mut done = 0usize;
        while done < len {
            let n = (len - done).min(ZERO_CHUNK);
            let at = GuestAddress(addr + done as u64);
            if self.mem.write_slice(&zeros[..n], at).is_err() {
                return false;
            }
            done += n;
        }
        true
    }
}
