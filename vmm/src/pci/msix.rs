//! MSI-X: the capability in configuration space, the vector table and the pending-bit array
//! that sit in a memory BAR, and delivery through a [`MsiSink`] (KVM's GSI routing and irqfds
//! in the VMM). A vector signalled while masked (by its own mask bit or the function mask) is
//! remembered in the PBA and sent when unmasked, as the specification requires.

use std::io;

/// Capability ID.
pub const CAP_ID: u8 = 0x11;
/// Bytes per table entry: address (lo, hi), data, vector control.
pub const ENTRY_SIZE: u64 = 16;
/// Message control: MSI-X enable, function mask.
const ENABLE: u16 = 1 << 15;
const FUNCTION_MASK: u16 = 1 << 14;
/// Vector control: masked.
const VECTOR_MASKED: u32 = 1;
/// The most vectors a function may have.
pub const MAX_VECTORS: u16 = 2048;

/// An MSI message: where to write what.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MsiMessage {
    pub address: u64,
    pub data: u32,
}

/// Delivers vectors. `route` is told every change of a vector's message (None: masked or
/// disabled), before any `send` of it.
pub trait MsiSink: Send + Sync {
    fn route(&self, vector: u16, message: Option<MsiMessage>);
    fn send(&self, vector: u16) -> io::Result<()>;
}

#[derive(Clone, Copy, Default)]
struct Entry {
    address_lo: u32,
    address_hi: u32,
    data: u32,
    control: u32,
}

impl Entry {
    fn masked() -> Entry {
        Entry {
            control: VECTOR_MASKED,
            ..Entry::default()
        }
    }
}

pub struct Msix {
    entries: Vec<Entry>,
    pending: Vec<u64>,
    control: u16,
    sink: Box<dyn MsiSink>,
}

impl Msix {
    /// `vectors` entries (1..=2048), all masked, MSI-X disabled.
    pub fn new(vectors: u16, sink: Box<dyn MsiSink>) -> Msix {
        let n = usize::from(vectors.clamp(1, MAX_VECTORS));
        Msix {
            entries: vec![Entry::masked(); n],
            pending: vec![0; n.div_ceil(64)],
            control: 0,
            sink,
        }
    }

    pub fn vectors(&self) -> u16 {
        self.entries.len() as u16
    }

    /// The capability's body after its ID and next pointer: message control, table offset/BIR,
    /// PBA offset/BIR; and which of its bits the guest may write (enable and function mask).
    pub fn capability(&self, bar: u8, table_offset: u32, pba_offset: u32) -> ([u8; 10], [u8; 10]) {
        let mut body = [0u8; 10];
        body[0..2].copy_from_slice(&(self.vectors() - 1).to_le_bytes());
        body[2..6].copy_from_slice(&(table_offset | u32::from(bar & 7)).to_le_bytes());
        body[6..10].copy_from_slice(&(pba_offset | u32::from(bar & 7)).to_le_bytes());
        let mut writable = [0u8; 10];
        writable[1] = ((ENABLE | FUNCTION_MASK) >> 8) as u8;
        (body, writable)
    }

    /// The guest wrote message control (its writable high byte): enable and function mask.
    pub fn set_control(&mut self, control: u16) {
        let old = self.control;
        self.control = control & (ENABLE | FUNCTION_MASK);
        if old != self.control {
            for v in 0..self.vectors() {
                self.reroute(v);
            }
        }
    }

    pub fn enabled(&self) -> bool {
        self.control & ENABLE != 0
    }

    fn masked(&self, vector: u16) -> bool {
        self.control & FUNCTION_MASK != 0
            || self
                .entries
                .get(usize::from(vector))
                .is_none_or(|e| e.control & VECTOR_MASKED != 0)
    }

    fn message(&self, vector: u16) -> Option<MsiMessage> {
        let e = self.entries.get(usize::from(vector))?;
        (self.enabled() && !self.masked(vector)).then_some(MsiMessage {
            address: u64::from(e.address_hi) << 32 | u64::from(e.address_lo),
            data: e.data,
        })
    }

    /// Tells the sink the vector's message and sends what was pending once it is deliverable.
    fn reroute(&mut self, vector: u16) {
        let message = self.message(vector);
        self.sink.route(vector, message);
        if message.is_some() && self.take_pending(vector) {
            if let Err(e) = self.sink.send(vector) {
                crate::vmm_log!("vireo-vmm: MSI-X vector {vector}: {e}");
            }
        }
    }

    fn take_pending(&mut self, vector: u16) -> bool {
        let (word, bit) = (usize::from(vector) / 64, vector % 64);
        match self.pending.get_mut(word) {
            Some(w) if *w & (1 << bit) != 0 => {
                *w &= !(1 << bit);
                true
            }
            _ => false,
        }
    }

    /// The device raises `vector`: sent now, or pending while masked. Vectors the table does
    /// not have are dropped (the driver assigned a vector the device does not offer).
    pub fn signal(&mut self, vector: u16) -> io::Result<()> {
        if usize::from(vector) >= self.entries.len() {
            return Ok(());
        }
        if self.masked(vector) || !self.enabled() {
            let (word, bit) = (usize::from(vector) / 64, vector % 64);
            if let Some(w) = self.pending.get_mut(word) {
                *w |= 1 << bit;
            }
            return Ok(());
        }
        self.sink.send(vector)
    }

    /// A guest read in the table: dword or qword accesses, naturally aligned.
    pub fn table_read(&self, offset: u64, data: &mut [u8]) {
        data.fill(0xff);
        if !aligned(offset, data.len()) {
            return;
        }
        for (i, chunk) in data.chunks_mut(4).enumerate() {
            let at = offset + 4 * i as u64;
            if let Some(v) = self.table_dword(at) {
                chunk.copy_from_slice(&v.to_le_bytes());
            }
        }
    }

    fn table_dword(&self, at: u64) -> Option<u32> {
        let e = self.entries.get(usize::try_from(at / ENTRY_SIZE).ok()?)?;
        Some(match at % ENTRY_SIZE {
            0 => e.address_lo,
            4 => e.address_hi,
            8 => e.data,
            _ => e.control,
        })
    }

    pub fn table_write(&mut self, offset: u64, data: &[u8]) {
        if !aligned(offset, data.len()) {
            return;
        }
        let mut touched = None;
        for (i, chunk) in data.chunks(4).enumerate() {
            let at = offset + 4 * i as u64;
            let Ok(index) = usize::try_from(at / ENTRY_SIZE) else {
                return;
            };
            let Some(e) = self.entries.get_mut(index) else {
                return;
            };
            let v = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
            match at % ENTRY_SIZE {
                0 => e.address_lo = v & !0b11,
                4 => e.address_hi = v,
                8 => e.data = v,
                _ => e.control = v & VECTOR_MASKED,
            }
            touched = Some(index as u16);
        }
        if let Some(v) = touched {
            self.reroute(v);
        }
    }

    /// A guest read of the pending-bit array (read-only).
    pub fn pba_read(&self, offset: u64, data: &mut [u8]) {
        data.fill(0);
        if !aligned(offset, data.len()) {
            return;
        }
        for (i, b) in data.iter_mut().enumerate() {
            let byte = offset as usize + i;
            if let Some(w) = self.pending.get(byte / 8) {
                *b = (w >> (8 * (byte % 8))) as u8;
            }
        }
    }

    /// Function reset: every vector masked and cleared, MSI-X off.
    pub fn reset(&mut self) {
        self.entries.fill(Entry::masked());
        self.pending.fill(0);
        self.set_control(0);
    }

    /// Bytes the table and the PBA take in their BAR.
    pub fn table_size(&self) -> u64 {
        self.entries.len() as u64 * ENTRY_SIZE
    }

    pub fn pba_size(&self) -> u64 {
        self.pending.len() as u64 * 8
    }
}

fn aligned(offset: u64, len: usize) -> bool {
    matches!(len, 4 | 8) && offset % len as u64 == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Default, Clone)]
    struct Log(Arc<Mutex<Vec<String>>>);

    impl MsiSink for Log {
        fn route(&self, vector: u16, m: Option<MsiMessage>) {
            let s = match m {
                Some(m) => format!("route {vector} {:#x}/{:#x}", m.address, m.data),
                None => format!("route {vector} off"),
            };
            self.0.lock().unwrap().push(s);
        }
        fn send(&self, vector: u16) -> io::Result<()> {
            self.0.lock().unwrap().push(format!("send {vector}"));
            Ok(())
        }
    }

    impl Log {
        fn take(&self) -> Vec<String> {
            std::mem::take(&mut *self.0.lock().unwrap())
        }
    }

    fn w32(m: &mut Msix, at: u64, v: u32) {
        m.table_write(at, &v.to_le_bytes());
    }

    #[test]
    fn vectors_are_routed_when_unmasked_and_sent_when_signalled() {
        let log = Log::default();
        let mut m = Msix::new(3, Box::new(log.clone()));
        let (body, writable) = m.capability(1, 0, 0x800);
        assert_eq!(u16::from_le_bytes([body[0], body[1]]), 2, "table size - 1");
        assert_eq!(u32::from_le_bytes([body[2], body[3], body[4], body[5]]), 1);
        assert_eq!(
            u32::from_le_bytes([body[6], body[7], body[8], body[9]]),
            0x801
        );
        assert_eq!(writable[1], 0xc0);
        m.set_control(ENABLE);
        log.take();
        w32(&mut m, 16, 0xfee0_0000);
        w32(&mut m, 24, 0x4041);
        w32(&mut m, 28, 0);
        assert_eq!(log.take().last().unwrap(), "route 1 0xfee00000/0x4041");
        m.signal(1).unwrap();
        assert_eq!(log.take(), ["send 1"]);
        let mut d = [0u8; 8];
        m.table_read(16, &mut d);
        assert_eq!(u64::from_le_bytes(d), 0xfee0_0000);
    }

    #[test]
    fn a_masked_vector_is_pending_and_sent_on_unmask() {
        let log = Log::default();
        let mut m = Msix::new(70, Box::new(log.clone()));
        m.set_control(ENABLE | FUNCTION_MASK);
        w32(&mut m, 65 * 16, 0xfee0_1000);
        w32(&mut m, 65 * 16 + 12, 0);
        log.take();
        m.signal(65).unwrap();
        assert!(log.take().is_empty(), "function mask holds it");
        let mut pba = [0u8; 8];
        m.pba_read(8, &mut pba);
        assert_eq!(u64::from_le_bytes(pba), 1 << 1);
        m.set_control(ENABLE);
        let seen = log.take();
        assert!(seen.contains(&"send 65".to_string()), "{seen:?}");
        m.pba_read(8, &mut pba);
        assert_eq!(pba, [0; 8]);
        // Vectors the table does not have are dropped, not indexed.
        m.signal(70).unwrap();
        m.signal(u16::MAX).unwrap();
        assert!(log.take().is_empty());
    }

    #[test]
    fn odd_accesses_and_reset() {
        let log = Log::default();
        let mut m = Msix::new(2, Box::new(log.clone()));
        let mut two = [0u8; 2];
        m.table_read(0, &mut two);
        assert_eq!(two, [0xff; 2]);
        m.table_write(2, &[1, 2, 3, 4]);
        m.table_write(64, &[1, 2, 3, 4]);
        let mut d = [0u8; 4];
        m.table_read(12, &mut d);
        assert_eq!(u32::from_le_bytes(d), 1, "still masked");
        m.table_read(32, &mut d);
        assert_eq!(d, [0xff; 4], "past the table");
        w32(&mut m, 12, 0);
        m.reset();
        m.table_read(12, &mut d);
        assert_eq!(u32::from_le_bytes(d), 1);
        assert!(!m.enabled());
    }
}
