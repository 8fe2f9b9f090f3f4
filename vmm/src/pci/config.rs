//! A type-0 PCI configuration space: the 256-byte header and capability area of one function,
//! with the bits the guest may write, the status bits it clears by writing ones, and BARs that
//! answer the firmware's size probe (all-ones written, the size mask read back).
//!
//! Every access the guest makes is bounded here: an offset past the space or a width other than
//! 1, 2 or 4 bytes within one dword reads as all-ones and writes nothing.

pub const CONFIG_SIZE: usize = 256;

pub const VENDOR_ID: usize = 0x00;
pub const DEVICE_ID: usize = 0x02;
pub const COMMAND: usize = 0x04;
pub const STATUS: usize = 0x06;
pub const REVISION: usize = 0x08;
pub const CLASS_PROG: usize = 0x09;
pub const CACHE_LINE: usize = 0x0c;
pub const LATENCY: usize = 0x0d;
pub const HEADER_TYPE: usize = 0x0e;
pub const BAR0: usize = 0x10;
pub const SUBSYSTEM_VENDOR: usize = 0x2c;
pub const SUBSYSTEM_ID: usize = 0x2e;
pub const CAPABILITIES: usize = 0x34;
pub const INTERRUPT_LINE: usize = 0x3c;
pub const INTERRUPT_PIN: usize = 0x3d;

pub const COMMAND_IO: u16 = 1 << 0;
pub const COMMAND_MEMORY: u16 = 1 << 1;
pub const COMMAND_BUS_MASTER: u16 = 1 << 2;
pub const COMMAND_INTX_DISABLE: u16 = 1 << 10;
pub const STATUS_INTERRUPT: u16 = 1 << 3;
pub const STATUS_CAPABILITIES: u16 = 1 << 4;

/// Where the capability list may start: right after the header.
const FIRST_CAPABILITY: usize = 0x40;
/// Status bits the guest clears by writing ones (parity and abort reports).
const STATUS_W1C: u16 = 0xf900;

/// What a BAR decodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BarKind {
    Io,
    Memory32 {
        prefetchable: bool,
    },
    /// Takes this BAR and the next one (the high dword).
    Memory64 {
        prefetchable: bool,
    },
}

/// The address space a BAR's window lives in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Space {
    Io,
    Memory,
}

/// A window the function decodes now: BAR `index` at `base`, `size` bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BarWindow {
    pub index: usize,
    pub space: Space,
    pub base: u64,
    pub size: u64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("BAR {index}: size {size:#x} is not a power of two of at least {min:#x} bytes")]
    BarSize { index: usize, size: u64, min: u64 },
    #[error("BAR {index} does not exist or is already in use")]
    BarIndex { index: usize },
    #[error("an I/O BAR cannot be larger than 256 bytes (BAR {index}: {size:#x})")]
    IoBarTooLarge { index: usize, size: u64 },
    #[error("no room for a {len}-byte capability in the configuration space")]
    CapabilitySpace { len: usize },
}

/// The identity a function shows in its header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Identity {
    pub vendor: u16,
    pub device: u16,
    pub revision: u8,
    /// Base class, subclass, programming interface.
    pub class: [u8; 3],
    pub subsystem_vendor: u16,
    pub subsystem: u16,
    /// 0 = none, 1..=4 = INTA#..INTD#.
    pub interrupt_pin: u8,
    /// Header type bit 7: the device has functions other than 0.
    pub multifunction: bool,
}

#[derive(Clone, Copy, Debug)]
struct Bar {
    kind: BarKind,
    size: u64,
}

/// One function's configuration space.
#[derive(Clone)]
pub struct ConfigSpace {
    bytes: [u8; CONFIG_SIZE],
    writable: [u8; CONFIG_SIZE],
    bars: [Option<Bar>; 6],
    /// The offset of the last capability added (its next pointer is patched by the next one).
    last_capability: Option<usize>,
    next_free: usize,
}

impl ConfigSpace {
    pub fn new(id: Identity) -> ConfigSpace {
        let mut c = ConfigSpace {
            bytes: [0; CONFIG_SIZE],
            writable: [0; CONFIG_SIZE],
            bars: [None; 6],
            last_capability: None,
            next_free: FIRST_CAPABILITY,
        };
        c.set16(VENDOR_ID, id.vendor);
        c.set16(DEVICE_ID, id.device);
        c.bytes[REVISION] = id.revision;
        c.bytes[CLASS_PROG..CLASS_PROG + 3].copy_from_slice(&[
            id.class[2],
            id.class[1],
            id.class[0],
        ]);
        c.bytes[HEADER_TYPE] = if id.multifunction { 0x80 } else { 0 };
        c.set16(SUBSYSTEM_VENDOR, id.subsystem_vendor);
        c.set16(SUBSYSTEM_ID, id.subsystem);
        c.bytes[INTERRUPT_PIN] = id.interrupt_pin;
        let command = COMMAND_IO | COMMAND_MEMORY | COMMAND_BUS_MASTER | COMMAND_INTX_DISABLE;
        c.writable[COMMAND..COMMAND + 2].copy_from_slice(&command.to_le_bytes());
        c.writable[CACHE_LINE] = 0xff;
        c.writable[LATENCY] = 0xff;
        c.writable[INTERRUPT_LINE] = 0xff;
        c
    }

    /// Declares BAR `index` (a 64-bit BAR also takes `index + 1`). Sizes are powers of two:
    /// at least 4 bytes for I/O (at most 256), 16 for memory.
    pub fn add_bar(&mut self, index: usize, kind: BarKind, size: u64) -> Result<(), ConfigError> {
        let wide = matches!(kind, BarKind::Memory64 { .. });
        let last = index + usize::from(wide);
        if last >= self.bars.len()
            || self.bars[index].is_some()
            || (wide && self.bars[last].is_some())
            || self.is_high_half(index)
        {
            return Err(ConfigError::BarIndex { index });
        }
        let min = if kind == BarKind::Io { 4 } else { 16 };
        if !size.is_power_of_two() || size < min || (!wide && size > 1 << 31) {
            return Err(ConfigError::BarSize { index, size, min });
        }
        if kind == BarKind::Io && size > 256 {
            return Err(ConfigError::IoBarTooLarge { index, size });
        }
        let mask = !(size - 1);
        let (low_flags, low_mask) = match kind {
            BarKind::Io => (0b01u32, (mask as u32) & !0b11),
            BarKind::Memory32 { prefetchable } => {
                (u32::from(prefetchable) << 3, (mask as u32) & !0xf)
            }
            BarKind::Memory64 { prefetchable } => {
                ((u32::from(prefetchable) << 3) | 0b100, (mask as u32) & !0xf)
            }
        };
        let at = BAR0 + 4 * index;
        self.set32(at, low_flags);
        self.writable[at..at + 4].copy_from_slice(&low_mask.to_le_bytes());
        if wide {
            let high_mask = (mask >> 32) as u32;
            self.writable[at + 4..at + 8].copy_from_slice(&high_mask.to_le_bytes());
        }
        self.bars[index] = Some(Bar { kind, size });
        Ok(())
    }

    fn is_high_half(&self, index: usize) -> bool {
        index > 0
            && matches!(
                self.bars[index - 1],
                Some(Bar {
                    kind: BarKind::Memory64 { .. },
                    ..
                })
            )
    }

    /// Appends a capability: `id`, then `body` (the bytes after the id and next pointer), of
    /// which the bits set in `writable` (same length as `body`) are the guest's. Returns the
    /// capability's offset.
    pub fn add_capability(
        &mut self,
        id: u8,
        body: &[u8],
        writable: &[u8],
    ) -> Result<usize, ConfigError> {
        let len = 2 + body.len();
        // Capabilities are dword aligned.
        let at = self.next_free;
        let end = at + len;
        if end > CONFIG_SIZE || writable.len() != body.len() {
            return Err(ConfigError::CapabilitySpace { len });
        }
        self.bytes[at] = id;
        self.bytes[at + 1] = 0;
        self.bytes[at + 2..end].copy_from_slice(body);
        self.writable[at + 2..end].copy_from_slice(writable);
        match self.last_capability {
            Some(prev) => self.bytes[prev + 1] = at as u8,
            None => {
                self.bytes[CAPABILITIES] = at as u8;
                let status = self.get16(STATUS) | STATUS_CAPABILITIES;
                self.set16(STATUS, status);
            }
        }
        self.last_capability = Some(at);
        self.next_free = (end + 3) & !3;
        Ok(at)
    }

    /// Makes `len` bytes at `offset` writable by the guest (device-specific registers).
    pub fn allow_writes(&mut self, offset: usize, len: usize) {
        if let Some(w) = self.writable.get_mut(offset..offset.saturating_add(len)) {
            w.fill(0xff);
        }
    }

    /// A guest read of `data.len()` bytes at `offset`.
    pub fn read(&self, offset: usize, data: &mut [u8]) {
        match self.range(offset, data.len()) {
            Some(r) => data.copy_from_slice(&self.bytes[r]),
            None => data.fill(0xff),
        }
    }

    /// A guest write: only the writable bits change; status bits written as ones are cleared.
    pub fn write(&mut self, offset: usize, data: &[u8]) {
        let Some(r) = self.range(offset, data.len()) else {
            return;
        };
        for (i, &v) in r.zip(data) {
            let w = self.writable[i];
            self.bytes[i] = (self.bytes[i] & !w) | (v & w);
            if i == STATUS || i == STATUS + 1 {
                let w1c = STATUS_W1C.to_le_bytes()[i - STATUS];
                self.bytes[i] &= !(v & w1c);
            }
        }
    }

    /// Accesses of 1, 2 or 4 bytes that stay within one naturally aligned dword.
    fn range(&self, offset: usize, len: usize) -> Option<std::ops::Range<usize>> {
        let end = offset.checked_add(len)?;
        let aligned = matches!(len, 1 | 2 | 4) && offset % len == 0;
        (aligned && end <= CONFIG_SIZE).then_some(offset..end)
    }

    pub fn command(&self) -> u16 {
        self.get16(COMMAND)
    }

    /// Sets or clears the interrupt status bit, which the device reflects for its INTx line.
    pub fn set_interrupt_status(&mut self, pending: bool) {
        let s = self.get16(STATUS) & !STATUS_INTERRUPT;
        self.set16(STATUS, if pending { s | STATUS_INTERRUPT } else { s });
    }

    /// The windows the function decodes now: BARs with an address, whose space the command
    /// register enables. A BAR left at its size probe (all ones) or at 0 decodes nothing.
    pub fn windows(&self) -> Vec<BarWindow> {
        let command = self.command();
        let mut out = Vec::new();
        for (index, bar) in self.bars.iter().enumerate() {
            let Some(bar) = bar else { continue };
            let at = BAR0 + 4 * index;
            let low = u64::from(self.get32(at));
            let (space, base, enabled) = match bar.kind {
                BarKind::Io => (Space::Io, low & !0b11, command & COMMAND_IO != 0),
                BarKind::Memory32 { .. } => {
                    (Space::Memory, low & !0xf, command & COMMAND_MEMORY != 0)
                }
                BarKind::Memory64 { .. } => {
                    let high = u64::from(self.get32(at + 4));
                    (
                        Space::Memory,
                        (high << 32) | (low & !0xf),
                        command & COMMAND_MEMORY != 0,
                    )
                }
            };
            let probe = !(bar.size - 1) & self.address_mask(bar.kind);
            if !enabled || base == 0 || base == probe {
                continue;
            }
            let Some(end) = base.checked_add(bar.size) else {
                continue;
            };
            if space == Space::Io && end > 0x1_0000 {
                continue;
            }
            out.push(BarWindow {
                index,
                space,
                base,
                size: bar.size,
            });
        }
        out
    }

    fn address_mask(&self, kind: BarKind) -> u64 {
        match kind {
            BarKind::Io => 0xffff_fffc,
            BarKind::Memory32 { .. } => 0xffff_fff0,
            BarKind::Memory64 { .. } => !0xf,
        }
    }

    /// The device's own view: write any byte regardless of the guest's mask.
    pub fn set8(&mut self, offset: usize, v: u8) {
        if let Some(b) = self.bytes.get_mut(offset) {
            *b = v;
        }
    }

    pub fn get8(&self, offset: usize) -> u8 {
        self.bytes.get(offset).copied().unwrap_or(0xff)
    }

    pub fn set16(&mut self, offset: usize, v: u16) {
        if let Some(b) = self.bytes.get_mut(offset..offset + 2) {
            b.copy_from_slice(&v.to_le_bytes());
        }
    }

    pub fn get16(&self, offset: usize) -> u16 {
        let mut b = [0xff; 2];
        self.read_raw(offset, &mut b);
        u16::from_le_bytes(b)
    }

    pub fn set32(&mut self, offset: usize, v: u32) {
        if let Some(b) = self.bytes.get_mut(offset..offset + 4) {
            b.copy_from_slice(&v.to_le_bytes());
        }
    }

    pub fn get32(&self, offset: usize) -> u32 {
        let mut b = [0xff; 4];
        self.read_raw(offset, &mut b);
        u32::from_le_bytes(b)
    }

    fn read_raw(&self, offset: usize, out: &mut [u8]) {
        if let Some(b) = self.bytes.get(offset..offset + out.len()) {
            out.copy_from_slice(b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> Identity {
        Identity {
            vendor: 0x1af4,
            device: 0x1042,
            revision: 1,
            class: [0x01, 0x00, 0x00],
            subsystem_vendor: 0x1af4,
            subsystem: 0x1100,
            interrupt_pin: 1,
            multifunction: false,
        }
    }

    fn read32(c: &ConfigSpace, at: usize) -> u32 {
        let mut b = [0; 4];
        c.read(at, &mut b);
        u32::from_le_bytes(b)
    }

    #[test]
    fn the_header_shows_the_identity_and_keeps_read_only_fields() {
        let mut c = ConfigSpace::new(id());
        assert_eq!(read32(&c, 0), 0x1042_1af4);
        assert_eq!(read32(&c, 8), 0x0100_0001, "class 01/00/00, revision 1");
        assert_eq!(read32(&c, 0x2c), 0x1100_1af4);
        c.write(0, &[0; 4]);
        c.write(INTERRUPT_PIN, &[3]);
        assert_eq!(read32(&c, 0), 0x1042_1af4);
        assert_eq!(c.get8(INTERRUPT_PIN), 1);
        c.write(INTERRUPT_LINE, &[11]);
        assert_eq!(c.get8(INTERRUPT_LINE), 11);
        c.write(COMMAND, &0xffffu16.to_le_bytes());
        assert_eq!(c.command(), 0x0407);
    }

    #[test]
    fn status_error_bits_clear_when_written_with_ones() {
        let mut c = ConfigSpace::new(id());
        c.set16(STATUS, 0x8010);
        c.write(STATUS, &0x0010u16.to_le_bytes());
        assert_eq!(c.get16(STATUS), 0x8010, "capabilities bit is read-only");
        c.write(STATUS, &0x8000u16.to_le_bytes());
        assert_eq!(c.get16(STATUS), 0x0010);
    }

    #[test]
    fn bars_answer_the_size_probe_and_decode_when_enabled() {
        let mut c = ConfigSpace::new(id());
        c.add_bar(0, BarKind::Io, 0x40).unwrap();
        c.add_bar(
            1,
            BarKind::Memory32 {
                prefetchable: false,
            },
            0x1000,
        )
        .unwrap();
        c.add_bar(2, BarKind::Memory64 { prefetchable: true }, 0x4000)
            .unwrap();
        for at in [0x10, 0x14, 0x18, 0x1c] {
            c.write(at, &[0xff; 4]);
        }
        assert_eq!(read32(&c, 0x10), 0xffff_ffc1);
        assert_eq!(read32(&c, 0x14), 0xffff_f000);
        assert_eq!(read32(&c, 0x18), 0xffff_c00c);
        assert_eq!(read32(&c, 0x1c), 0xffff_ffff);
        assert!(c.windows().is_empty(), "probing decodes nothing");
        c.write(0x10, &0xc040u32.to_le_bytes());
        c.write(0x14, &0xfebf_1000u32.to_le_bytes());
        c.write(0x18, &0xfe00_0000u32.to_le_bytes());
        c.write(0x1c, &1u32.to_le_bytes());
        assert!(
            c.windows().is_empty(),
            "decoding is off in the command register"
        );
        c.write(COMMAND, &(COMMAND_IO | COMMAND_MEMORY).to_le_bytes());
        assert_eq!(
            c.windows(),
            [
                BarWindow {
                    index: 0,
                    space: Space::Io,
                    base: 0xc040,
                    size: 0x40
                },
                BarWindow {
                    index: 1,
                    space: Space::Memory,
                    base: 0xfebf_1000,
                    size: 0x1000
                },
                BarWindow {
                    index: 2,
                    space: Space::Memory,
                    base: 0x1_fe00_0000,
                    size: 0x4000
                },
            ]
        );
        c.write(COMMAND, &COMMAND_IO.to_le_bytes());
        assert_eq!(c.windows().len(), 1);
        // Unaligned and odd-width accesses are refused, not half done.
        c.write(0x11, &[0, 0]);
        assert_eq!(read32(&c, 0x10), 0xc041);
        let mut three = [0; 3];
        c.read(0x10, &mut three);
        assert_eq!(three, [0xff; 3]);
        let mut past = [0; 4];
        c.read(CONFIG_SIZE - 2, &mut past);
        assert_eq!(past, [0xff; 4]);
    }

    #[test]
    fn bar_declarations_are_checked() {
        let mut c = ConfigSpace::new(id());
        assert!(c.add_bar(0, BarKind::Io, 3).is_err());
        assert!(c.add_bar(0, BarKind::Io, 512).is_err());
        assert!(c
            .add_bar(
                0,
                BarKind::Memory32 {
                    prefetchable: false
                },
                8
            )
            .is_err());
        assert!(c
            .add_bar(
                5,
                BarKind::Memory64 {
                    prefetchable: false
                },
                16
            )
            .is_err());
        c.add_bar(
            4,
            BarKind::Memory64 {
                prefetchable: false,
            },
            16,
        )
        .unwrap();
        assert!(
            c.add_bar(5, BarKind::Io, 4).is_err(),
            "the high half of BAR 4"
        );
        assert!(c.add_bar(4, BarKind::Io, 4).is_err());
        assert!(c.add_bar(6, BarKind::Io, 4).is_err());
    }

    #[test]
    fn capabilities_form_a_list_after_the_header() {
        let mut c = ConfigSpace::new(id());
        let a = c
            .add_capability(
                0x11,
                &[0, 0, 1, 0, 0, 0, 2, 0, 0, 0],
                &[0xff, 0xc0, 0, 0, 0, 0, 0, 0, 0, 0],
            )
            .unwrap();
        let b = c.add_capability(0x09, &[4, 1], &[0, 0]).unwrap();
        assert_eq!((a, b), (0x40, 0x4c));
        assert_ne!(c.get16(STATUS) & STATUS_CAPABILITIES, 0);
        assert_eq!(c.get8(CAPABILITIES), 0x40);
        assert_eq!(c.get8(0x41), 0x4c);
        assert_eq!(c.get8(0x4d), 0);
        c.write(0x42, &0xffffu16.to_le_bytes());
        assert_eq!(c.get16(0x42), 0xc0ff);
        assert!(c.add_capability(0x09, &[0; 200], &[0; 200]).is_err());
    }
}
