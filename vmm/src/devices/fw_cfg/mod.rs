//! QEMU's firmware configuration device (fw_cfg): how SeaBIOS learns the machine it runs on.
//!
//! The guest selects an item by writing its key to the selector port (LE16) and then reads
//! the item byte by byte from the data port, or hands the device a `FWCfgDmaAccess` in guest
//! memory through the DMA address register ([`dma`]). Items are the fixed keys, the named files
//! and their directory ([`files`]). Everything the guest gives (keys, lengths, offsets,
//! addresses) is checked against the item and guest RAM before use; a bad DMA request sets
//! the error bit and touches nothing outside guest RAM.

pub mod dma;
pub mod files;

pub use files::{FwCfgBuilder, FwCfgError, FwCfgFile};

use crate::devices::bus::BusDevice;
use files::{FEATURE_DMA, FEATURE_TRADITIONAL, KEY_FILE_DIR, KEY_FILE_FIRST, KEY_ID};
use std::collections::BTreeMap;
use vm_memory::GuestMemoryMmap;

/// A device behind a writable fw_cfg file (ramfb's `etc/ramfb`): fw_cfg calls it after each
/// guest write to the file, with the file's whole content after that write. The content came
/// from the guest: the hook validates every field before use.
pub trait FwCfgWriteHook: Send {
    fn written(&mut self, content: &[u8]);
}

/// Selector port (LE16 key) and, one above it, the data port (one byte per read).
pub const SELECTOR_PORT: u16 = 0x510;
pub const DATA_PORT: u16 = 0x511;
/// The bus range starting at [`SELECTOR_PORT`].
pub const PORTS_LEN: u64 = 2;
/// DMA address register: BE64 at 0x514, as two BE32 halves (high, then low, which starts the
/// transfer) or one 64-bit write.
pub const DMA_PORT: u16 = 0x514;
/// The bus range starting at [`DMA_PORT`].
pub const DMA_LEN: u64 = 8;

/// A selector bit that once meant "write channel"; the key is the rest.
pub(crate) const WRITE_CHANNEL: u16 = 0x4000;
const SIGNATURE: [u8; 4] = *b"QEMU";
/// What a read of the DMA register returns, so a guest can tell DMA is there: "QEMU CFG".
const DMA_SIGNATURE: [u8; 8] = *b"QEMU CFG";

/// The device. Built once by [`FwCfg::new`] from a [`FwCfgBuilder`].
pub struct FwCfg {
    mem: GuestMemoryMmap,
    legacy: BTreeMap<u16, Vec<u8>>,
    files: Vec<FwCfgFile>,
    dir: Vec<u8>,
    id: [u8; 4],
    key: u16,
    /// Read position in the selected item; never beyond its length.
    offset: usize,
    dma_high: u32,
}

impl FwCfg {
    /// The device over `mem` (where DMA requests and their buffers live).
    pub fn new(builder: FwCfgBuilder, mem: GuestMemoryMmap) -> FwCfg {
        let dir = files::directory(&builder.files);
        FwCfg {
            mem,
            legacy: builder.legacy,
            files: builder.files,
            dir,
            id: (FEATURE_TRADITIONAL | FEATURE_DMA).to_le_bytes(),
            key: 0,
            offset: 0,
            dma_high: 0,
        }
    }

    /// Selects the item with `key` and rewinds to its start; an unknown key selects nothing
    /// (reads give zeros, DMA reads zero-fill).
    pub fn select(&mut self, key: u16) {
        self.key = key & !WRITE_CHANNEL;
        self.offset = 0;
    }

    /// The selected item's bytes, if the key names one.
    fn current(&self) -> Option<&[u8]> {
        match self.key {
            files::KEY_SIGNATURE => Some(&SIGNATURE),
            KEY_ID => Some(&self.id),
            KEY_FILE_DIR => Some(&self.dir),
            k if (KEY_FILE_FIRST..files::KEY_ARCH_LOCAL).contains(&k) => self
                .files
                .get(usize::from(k - KEY_FILE_FIRST))
                .map(|f| f.data.as_slice()),
            k => self.legacy.get(&k).map(Vec::as_slice),
        }
    }

    /// Bytes left in the selected item from the read position (0 when nothing is selected).
    fn remaining(&self) -> usize {
        self.current()
            .map_or(0, |d| d.len().saturating_sub(self.offset))
    }

    /// The next data-port byte: the item's, or 0 past its end.
    pub fn read_byte(&mut self) -> u8 {
        let b = self.current().and_then(|d| d.get(self.offset).copied());
        if b.is_some() {
            self.offset += 1;
        }
        b.unwrap_or(0)
    }

    /// A file's current content (writable files change as the guest writes them).
    pub fn file(&self, name: &str) -> Option<&[u8]> {
        self.files
            .iter()
            .find(|f| f.name == name)
            .map(|f| f.data.as_slice())
    }

    fn dma_register_write(&mut self, offset: u64, data: &[u8]) {
        match (offset, data.len()) {
            (0, 4) => self.dma_high = u32::from_be_bytes([data[0], data[1], data[2], data[3]]),
            (4, 4) => {
                let low = u32::from_be_bytes([data[0], data[1], data[2], data[3]]);
                let addr = (u64::from(self.dma_high) << 32) | u64::from(low);
                self.dma_high = 0;
                self.dma_transfer(addr);
            }
            (0, 8) => {
                let mut b = [0u8; 8];
                b.copy_from_slice(data);
                self.dma_high = 0;
                self.dma_transfer(u64::from_be_bytes(b));
            }
            _ => {}
        }
    }
}

impl BusDevice for FwCfg {
    fn read(&mut self, base: u64, offset: u64, data: &mut [u8]) {
        if base == u64::from(DMA_PORT) {
            for (i, b) in data.iter_mut().enumerate() {
                let at = usize::try_from(offset)
                    .unwrap_or(usize::MAX)
                    .saturating_add(i);
                *b = DMA_SIGNATURE.get(at).copied().unwrap_or(0);
            }
        } else if offset == 1 {
            for b in data.iter_mut() {
                *b = self.read_byte();
            }
        } else {
            data.fill(0);
        }
    }

    fn write(&mut self, base: u64, offset: u64, data: &[u8]) {
        if base == u64::from(DMA_PORT) {
            self.dma_register_write(offset, data);
        } else if offset == 0 && data.len() == 2 {
            self.select(u16::from_le_bytes([data[0], data[1]]));
        }
        // Data-port writes have been ignored since QEMU 2.4: files are written by DMA only.
    }
}

#[cfg(test)]
mod tests;
