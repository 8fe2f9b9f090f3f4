//! The UEFI variable store: a CFI flash chip with Intel's command set (QEMU's `pflash_cfi01`),
//! the subset OVMF drives, backed by the machine's own variables file (libvirt's `<nvram>`),
//! so boot entries and settings survive a power cycle.
//!
//! OVMF decides at boot whether its variable store is flash: it writes CLEAR STATUS to a byte
//! and reads it back (RAM would echo the command), then READ STATUS (flash answers with a
//! status of 0). Without a flash that passes it keeps variables in RAM and loses them at every
//! power-off. Then it programs bytes (WRITE BYTE + data), erases blocks (BLOCK ERASE +
//! CONFIRM) and returns to READ ARRAY.
//!
//! While the chip reads as an array its contents can be a read-only KVM memory slot (QEMU's
//! "ROMD" mode, [`Pflash::with_array_slot`]): the guest reads the store without leaving the
//! guest, and every write still comes here as MMIO. A command takes the slot away, so status
//! reads come here too, and READ ARRAY puts it back. OVMF reads its store far more than it
//! writes it; with every read an exit, a boot took minutes longer in the nested test rig.
//! Writes go straight to the file; [`Pflash::flush`] syncs it when the VM ends.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use crate::devices::bus::BusDevice;

const WRITE_BYTE: u8 = 0x10;
const WRITE_BYTE_ALT: u8 = 0x40;
const BLOCK_ERASE: u8 = 0x20;
const CLEAR_STATUS: u8 = 0x50;
const READ_STATUS: u8 = 0x70;
const READ_ID: u8 = 0x90;
const ERASE_CONFIRM: u8 = 0xd0;
const READ_ARRAY: u8 = 0xff;

/// Status register: ready, and the error bits a failed program or erase sets.
const STATUS_READY: u8 = 0x80;
const STATUS_ERASE_ERROR: u8 = 0x20;
const STATUS_PROGRAM_ERROR: u8 = 0x10;

/// Intel's manufacturer code and a 28F128-class device code, for READ IDENTIFIER.
const MANUFACTURER: u8 = 0x89;
const DEVICE: u8 = 0x18;

/// The erase block OVMF's variable store uses (PcdOvmfFirmwareBlockSize).
pub const BLOCK_SIZE: u64 = 4096;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    ReadArray,
    ReadStatus,
    ReadId,
    /// WRITE BYTE seen: the next write is the data.
    Program,
    /// BLOCK ERASE seen: the next write must be CONFIRM at the block.
    EraseSetup,
}

/// Puts the chip's contents into the guest's address space as a read-only slot (`true`) or
/// takes them out (`false`).
pub type ArraySlot = Box<dyn FnMut(bool) -> io::Result<()> + Send>;

/// Page-aligned host memory for the chip's contents, as KVM needs for a memory slot.
struct ChipMemory {
    ptr: *mut u8,
    len: usize,
}

// SAFETY: plain anonymous memory owned by this value; the device's lock serialises access.
unsafe impl Send for ChipMemory {}

impl ChipMemory {
    fn new(len: usize) -> io::Result<ChipMemory> {
        // SAFETY: a fresh anonymous private mapping; the result is checked.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(ChipMemory {
            ptr: ptr.cast(),
            len,
        })
    }

    fn bytes(&self) -> &[u8] {
        // SAFETY: `ptr` maps `len` readable bytes for as long as self lives.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as above, writable, and `&mut self` makes this the only host reference.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }
}

impl Drop for ChipMemory {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly what `new` mapped.
        unsafe {
            libc::munmap(self.ptr.cast(), self.len);
        }
    }
}

/// One flash chip over a file of whole erase blocks.
pub struct Pflash {
    file: File,
    /// The chip's contents, kept in step with the file.
    data: ChipMemory,
    /// Maps the contents for direct reads while the chip reads as an array.
    array_slot: Option<ArraySlot>,
    mode: Mode,
    status: u8,
    /// The first failed file write, reported by [`Pflash::flush`] (the guest sees a status
    /// error at once).
    failed: Option<io::Error>,
}

impl Pflash {
    /// `file` open for reading and writing; its length must be a whole number of blocks.
    pub fn new(file: File) -> io::Result<Pflash> {
        let len = file.metadata()?.len();
        if len == 0 || len % BLOCK_SIZE != 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{len} bytes is not a whole number of {BLOCK_SIZE}-byte flash blocks"),
            ));
        }
        let len = usize::try_from(len)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "flash image too large"))?;
        let mut data = ChipMemory::new(len)?;
        file.read_exact_at(data.bytes_mut(), 0)?;
        Ok(Pflash {
            file,
            data,
            array_slot: None,
            mode: Mode::ReadArray,
            status: 0,
            failed: None,
        })
    }

    pub fn len(&self) -> u64 {
        self.data.len as u64
    }

    pub fn is_empty(&self) -> bool {
        self.data.len == 0
    }

    /// The host address of the contents, for the memory slot `slot` maps (page-aligned, valid
    /// as long as the chip).
    pub fn host_address(&self) -> u64 {
        self.data.ptr as u64
    }

    /// Serves array reads from a memory slot: `slot(true)` maps [`Pflash::host_address`]
    /// read-only at the chip's guest address, `slot(false)` removes it. Mapped now.
    pub fn with_array_slot(mut self, mut slot: ArraySlot) -> io::Result<Pflash> {
        slot(true)?;
        self.array_slot = Some(slot);
        Ok(self)
    }

    fn set_mode(&mut self, mode: Mode) {
        let was_array = self.mode == Mode::ReadArray;
        self.mode = mode;
        let is_array = mode == Mode::ReadArray;
        if was_array != is_array {
            if let Some(slot) = &mut self.array_slot {
                // Without the slot every read comes here and is served from the same memory,
                // so a refused change costs speed, never correctness: but a slot left mapped
                // in a command mode would show the array where status is due.
                if let Err(e) = slot(is_array) {
                    crate::vmm_log!("vireo-vmm: flash: memory slot: {e}");
                    if !is_array {
                        self.array_slot = None;
                    }
                }
            }
        }
    }

    /// Syncs the file; reports a write that failed since the VM started.
    pub fn flush(&mut self) -> io::Result<()> {
        if let Some(e) = self.failed.take() {
            return Err(e);
        }
        self.file.sync_data()
    }

    fn store(&mut self, offset: usize, bytes: &[u8]) -> bool {
        let Some(end) = offset.checked_add(bytes.len()) else {
            return false;
        };
        let Some(dst) = self.data.bytes_mut().get_mut(offset..end) else {
            return false;
        };
        dst.copy_from_slice(bytes);
        match self.file.write_all_at(bytes, offset as u64) {
            Ok(()) => true,
            Err(e) => {
                self.failed.get_or_insert(e);
                false
            }
        }
    }

    fn command(&mut self, offset: u64, value: u8) {
        match (self.mode, value) {
            (Mode::Program, v) => {
                // A program can only clear bits on a real chip; OVMF erases first, and QEMU
                // stores the byte as given, which is what is kept here too.
                let ok = usize::try_from(offset).is_ok_and(|o| self.store(o, &[v]));
                self.status |= STATUS_READY | if ok { 0 } else { STATUS_PROGRAM_ERROR };
                self.set_mode(Mode::ReadStatus);
            }
            (Mode::EraseSetup, ERASE_CONFIRM) => {
                let start = offset - offset % BLOCK_SIZE;
                let block = vec![0xff; BLOCK_SIZE as usize];
                let ok = usize::try_from(start).is_ok_and(|s| self.store(s, &block));
                self.status |= STATUS_READY | if ok { 0 } else { STATUS_ERASE_ERROR };
                self.set_mode(Mode::ReadStatus);
            }
            (Mode::EraseSetup, _) => {
                // An erase not confirmed is a command sequence error.
                self.status |= STATUS_READY | STATUS_ERASE_ERROR | STATUS_PROGRAM_ERROR;
                self.set_mode(Mode::ReadStatus);
            }
            (_, WRITE_BYTE | WRITE_BYTE_ALT) => self.set_mode(Mode::Program),
            (_, BLOCK_ERASE) => self.set_mode(Mode::EraseSetup),
            (_, CLEAR_STATUS) => {
                self.status = 0;
                self.set_mode(Mode::ReadArray);
            }
            (_, READ_STATUS) => self.set_mode(Mode::ReadStatus),
            (_, READ_ID) => self.set_mode(Mode::ReadId),
            (_, READ_ARRAY) => self.set_mode(Mode::ReadArray),
            // Commands this chip does not have (CFI query, lock bits, buffered writes) leave it
            // reading its array, as QEMU's does.
            _ => self.set_mode(Mode::ReadArray),
        }
    }
}

impl BusDevice for Pflash {
    fn read(&mut self, _base: u64, offset: u64, data: &mut [u8]) {
        match self.mode {
            Mode::ReadArray => {
                let at = usize::try_from(offset).ok();
                let range = at.and_then(|a| Some(a..a.checked_add(data.len())?));
                match range.and_then(|r| self.data.bytes().get(r)) {
                    Some(src) => data.copy_from_slice(src),
                    None => data.fill(0xff),
                }
            }
            Mode::ReadId => {
                data.fill(0);
                data[0] = match offset % 2 {
                    0 => MANUFACTURER,
                    _ => DEVICE,
                };
            }
            // Status shows in every byte lane; mid-sequence reads see it too.
            Mode::ReadStatus | Mode::Program | Mode::EraseSetup => data.fill(self.status),
        }
    }

    fn write(&mut self, _base: u64, offset: u64, data: &[u8]) {
        // The chip is 8 bits wide: the low byte of a wider write is the command or data.
        if let Some(&v) = data.first() {
            if offset < self.len() {
                self.command(offset, v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chip(name: &str, blocks: usize) -> (Pflash, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("vireo-pflash-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("vars.fd");
        let mut content = vec![0u8; blocks * BLOCK_SIZE as usize];
        for (i, b) in content.iter_mut().enumerate() {
            *b = (i % 251) as u8 + 1;
        }
        std::fs::write(&path, &content).unwrap();
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        (Pflash::new(file).unwrap(), path)
    }

    fn rd(p: &mut Pflash, at: u64) -> u8 {
        let mut b = [0u8];
        p.read(0, at, &mut b);
        b[0]
    }

    fn wr(p: &mut Pflash, at: u64, v: u8) {
        p.write(0, at, &[v]);
    }

    /// OVMF's QemuFlashDetected, step by step: it must conclude "flash".
    #[test]
    fn ovmf_detects_a_flash_chip() {
        let (mut p, _) = chip("detect", 2);
        let original = rd(&mut p, 0);
        assert!(![CLEAR_STATUS, READ_STATUS, 0].contains(&original));
        wr(&mut p, 0, CLEAR_STATUS);
        let probe = rd(&mut p, 0);
        assert!(
            !(original != CLEAR_STATUS && probe == CLEAR_STATUS),
            "behaves as RAM"
        );
        wr(&mut p, 0, READ_STATUS);
        assert_eq!(rd(&mut p, 0), 0, "a cleared status reads 0: FLASH");
        wr(&mut p, 0, READ_ARRAY);
        assert_eq!(rd(&mut p, 0), original);
    }

    #[test]
    fn programs_and_erases_reach_the_file_and_survive_a_reopen() {
        let (mut p, path) = chip("persist", 3);
        // OVMF's QemuFlashWrite: WRITE BYTE + data per byte, READ ARRAY after the last.
        for (i, &b) in b"BootOrder".iter().enumerate() {
            wr(&mut p, 0x1000 + i as u64, WRITE_BYTE);
            wr(&mut p, 0x1000 + i as u64, b);
        }
        assert_eq!(rd(&mut p, 0x1000), STATUS_READY, "status until READ ARRAY");
        wr(&mut p, 0x1008, READ_ARRAY);
        assert_eq!(rd(&mut p, 0x1000), b'B');
        // QemuFlashEraseBlock: BLOCK ERASE + CONFIRM at the block's start.
        wr(&mut p, 0x2000, BLOCK_ERASE);
        wr(&mut p, 0x2000, ERASE_CONFIRM);
        assert_eq!(rd(&mut p, 0x2abc), STATUS_READY);
        wr(&mut p, 0, READ_ARRAY);
        assert_eq!(rd(&mut p, 0x2abc), 0xff);
        assert_ne!(rd(&mut p, 0x1fff), 0xff, "the block before is untouched");
        p.flush().unwrap();
        let f = std::fs::read(&path).unwrap();
        assert_eq!(&f[0x1000..0x1009], b"BootOrder");
        assert!(f[0x2000..0x3000].iter().all(|&b| b == 0xff));
        let reopened = Pflash::new(
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(&path)
                .unwrap(),
        )
        .unwrap();
        assert_eq!(&reopened.data.bytes()[0x1000..0x1009], b"BootOrder");
    }

    #[test]
    fn bad_sequences_and_accesses_outside_the_chip_are_contained() {
        let (mut p, _) = chip("bad", 1);
        wr(&mut p, 0x10, BLOCK_ERASE);
        wr(&mut p, 0x10, 0x00);
        assert_ne!(rd(&mut p, 0) & STATUS_ERASE_ERROR, 0);
        wr(&mut p, 0, CLEAR_STATUS);
        assert_eq!(rd(&mut p, 0x10), 0x11, "array intact, status cleared");
        // Past the end: writes are ignored, reads are open bus.
        wr(&mut p, BLOCK_SIZE + 5, WRITE_BYTE);
        assert_eq!(rd(&mut p, 0), 1, "still reading the array");
        let mut wide = [0u8; 8];
        p.read(0, BLOCK_SIZE - 4, &mut wide);
        assert_eq!(wide, [0xff; 8]);
        wr(&mut p, 0, READ_ID);
        assert_eq!((rd(&mut p, 0), rd(&mut p, 1)), (MANUFACTURER, DEVICE));
    }

    #[test]
    fn the_array_slot_is_mapped_only_while_the_chip_reads_as_an_array() {
        let (p, _) = chip("romd", 1);
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let l = log.clone();
        let mut p = p
            .with_array_slot(Box::new(move |on| {
                l.lock().unwrap().push(on);
                Ok(())
            }))
            .unwrap();
        assert_eq!(p.host_address() % 4096, 0, "page-aligned for KVM");
        wr(&mut p, 0, WRITE_BYTE);
        wr(&mut p, 0, 0x42);
        wr(&mut p, 0, READ_STATUS);
        wr(&mut p, 0, READ_ARRAY);
        wr(&mut p, 0, READ_ARRAY);
        assert_eq!(*log.lock().unwrap(), [true, false, true]);
        assert_eq!(rd(&mut p, 0), 0x42);
    }

    #[test]
    fn a_file_of_partial_blocks_is_refused() {
        let path = std::env::temp_dir().join(format!("vireo-pflash-odd-{}", std::process::id()));
        std::fs::write(&path, [0u8; 100]).unwrap();
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        let e = Pflash::new(f).err().unwrap();
        assert!(e.to_string().contains("4096-byte flash blocks"), "{e}");
    }
}
