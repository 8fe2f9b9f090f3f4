//! Descriptor chain validation and the queue-draining loop shared by all devices.
//!
//! virtio-queue's `DescriptorChain` iterator bounds a chain by the queue size (its "ttl"), rejects
//! nested indirect tables and misaligned indirect tables, and stops at 2^32 bytes in total; but
//! when anything is wrong it simply *ends the iteration*, so a looping or broken chain looks like a
//! shorter valid one. [`validate_chain`] walks the chain once, notices that truncation (the last
//! descriptor it got still says NEXT), and adds what the crate does not check: every buffer lies in
//! guest memory, device-readable buffers come before device-writable ones, and the chain (direct or
//! indirect) has no more descriptors than the queue has entries.

use std::sync::atomic::Ordering;

use virtio_queue::{DescriptorChain, Queue, QueueOwnedT, QueueT};
use vm_memory::{Bytes, GuestAddress};

use super::GuestMemory;

/// One validated buffer of a chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Desc {
    /// Guest-physical address; `addr .. addr + len` is inside guest memory.
    pub addr: GuestAddress,
    /// Length in bytes.
    pub len: u32,
    /// Device-writable (VIRTQ_DESC_F_WRITE).
    pub writable: bool,
}

/// A descriptor chain that passed [`validate_chain`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chain {
    /// Head index, to return in the used ring.
    pub head_index: u16,
    /// The buffers, readable ones first.
    pub descs: Vec<Desc>,
}

/// Why a chain was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    /// No descriptor could be read at all.
    #[error("descriptor chain {head} is empty or its first descriptor is unreadable")]
    Empty {
        /// Head index.
        head: u16,
    },
    /// The chain ended while a descriptor still had NEXT set: a loop, a next index outside the
    /// table, an unreadable or invalid indirect table, or more than 4 GiB in total.
    #[error("descriptor chain {head} is broken after {count} descriptors (loop, bad next index, bad indirect table or over 4 GiB)")]
    Truncated {
        /// Head index.
        head: u16,
        /// Descriptors read before the break.
        count: usize,
    },
    /// More descriptors than queue entries.
    #[error("descriptor chain {head} has more than {max} descriptors")]
    TooLong {
        /// Head index.
        head: u16,
        /// The queue size.
        max: u16,
    },
    /// A buffer is not inside guest memory.
    #[error("descriptor chain {head}: buffer {addr:#x}+{len:#x} is outside guest memory")]
    OutOfMemory {
        /// Head index.
        head: u16,
        /// Buffer address.
        addr: u64,
        /// Buffer length.
        len: u32,
    },
    /// A device-readable buffer follows a device-writable one.
    #[error("descriptor chain {head}: a device-readable buffer follows a device-writable one")]
    ReadableAfterWritable {
        /// Head index.
        head: u16,
    },
}

/// Walks and checks one chain (see the module documentation).
pub fn validate_chain(
    chain: DescriptorChain<&GuestMemory>,
    queue_size: u16,
) -> Result<Chain, ChainError> {
    let mem = chain.memory();
    let head = chain.head_index();
    let mut descs = Vec::new();
    let mut last_has_next = false;
    let mut seen_writable = false;
    for d in chain.clone() {
        if descs.len() >= usize::from(queue_size) {
            return Err(ChainError::TooLong {
                head,
                max: queue_size,
            });
        }
        let addr = GuestAddress(d.addr().0);
        let len = d.len();
        // A zero-length buffer carries nothing but must still name memory we own.
        let check_len = usize::try_from(len.max(1)).unwrap_or(usize::MAX);
        if !vm_memory::GuestMemoryBackend::check_range(mem, addr, check_len) {
            return Err(ChainError::OutOfMemory {
                head,
                addr: addr.0,
                len,
            });
        }
        let writable = d.is_write_only();
        if writable {
            seen_writable = true;
        } else if seen_writable {
            return Err(ChainError::ReadableAfterWritable { head });
        }
        last_has_next = d.has_next();
        descs.push(Desc {
            addr,
            len,
            writable,
        });
    }
    if descs.is_empty() {
        return Err(ChainError::Empty { head });
    }
    if last_has_next {
        return Err(ChainError::Truncated {
            head,
            count: descs.len(),
        });
    }
    Ok(Chain {
        head_index: head,
        descs,
    })
}

/// A guest memory access error while copying through a chain.
#[derive(Debug, thiserror::Error)]
#[error("guest memory access at {addr:#x} failed: {source}")]
pub struct MemError {
    /// Guest-physical address of the failed access.
    pub addr: u64,
    /// Underlying error.
    #[source]
    pub source: vm_memory::GuestMemoryError,
}

impl Chain {
    /// Total length of the device-readable buffers.
    pub fn readable_len(&self) -> u64 {
        self.descs
            .iter()
            .filter(|d| !d.writable)
            .map(|d| u64::from(d.len))
            .sum()
    }

    /// Total length of the device-writable buffers.
    pub fn writable_len(&self) -> u64 {
        self.descs
            .iter()
            .filter(|d| d.writable)
            .map(|d| u64::from(d.len))
            .sum()
    }

    /// The part `skip .. skip + len` of the readable (or writable) bytes, as guest buffers.
    /// Returns fewer bytes than asked if the chain is shorter.
    pub fn segments(&self, writable: bool, skip: u64, len: u64) -> Vec<Desc> {
        let mut out = Vec::new();
        let mut skip = skip;
        let mut left = len;
        for d in self.descs.iter().filter(|d| d.writable == writable) {
            if left == 0 {
                break;
            }
            let dlen = u64::from(d.len);
            if skip >= dlen {
                skip -= dlen;
                continue;
            }
            let take = (dlen - skip).min(left);
            // take <= d.len, so it fits u32; skip < d.len and the range was checked.
            out.push(Desc {
                addr: GuestAddress(d.addr.0 + skip),
                len: take as u32,
                writable,
            });
            left -= take;
            skip = 0;
        }
        out
    }

    /// Reads up to `buf.len()` readable bytes starting at `skip`; returns how many were read.
    pub fn read_at(&self, mem: &GuestMemory, skip: u64, buf: &mut [u8]) -> Result<usize, MemError> {
        let mut done = 0usize;
        for seg in self.segments(false, skip, buf.len() as u64) {
            let n = seg.len as usize;
            mem.read_slice(&mut buf[done..done + n], seg.addr)
                .map_err(|source| MemError {
                    addr: seg.addr.0,
                    source,
                })?;
            done += n;
        }
        Ok(done)
    }

    /// Writes `data` into the writable bytes starting at `skip`; returns how many were written.
    pub fn write_at(&self, mem: &GuestMemory, skip: u64, data: &[u8]) -> Result<usize, MemError> {
        let mut done = 0usize;
        for seg in self.segments(true, skip, data.len() as u64) {
            let n = seg.len as usize;
            mem.write_slice(&data[done..done + n], seg.addr)
                .map_err(|source| MemError {
                    addr: seg.addr.0,
                    source,
                })?;
            done += n;
        }
        Ok(done)
    }
}

/// Takes the next available chain, if any.
///
/// Unlike `Queue::pop_descriptor_chain`, a corrupt available index (more entries than the queue
/// holds) is an error here, not "nothing to do", so callers can flag the device as broken instead
/// of spinning on a ring that never drains.
pub fn pop_chain<'m>(
    queue: &mut Queue,
    mem: &'m GuestMemory,
) -> Result<Option<DescriptorChain<&'m GuestMemory>>, virtio_queue::Error> {
    Ok(queue.iter(mem)?.next())
}

/// Drains a queue: hands every available chain (validated, or the reason it was refused) to
/// `handle`, which returns the number of bytes it wrote into the chain; puts each in the used ring.
/// With EVENT_IDX the avail-event is re-armed and the queue re-checked so no notification is
/// lost. Returns whether the driver wants an interrupt.
pub fn drain_queue<F>(
    queue: &mut Queue,
    mem: &GuestMemory,
    mut handle: F,
) -> Result<bool, virtio_queue::Error>
where
    F: FnMut(Result<Chain, ChainError>) -> u32,
{
    let size = queue.size();
    let mut used_any = false;
    loop {
        queue.disable_notification(mem)?;
        while let Some(chain) = pop_chain(queue, mem)? {
            let head = chain.head_index();
            let used_len = handle(validate_chain(chain, size));
            queue.add_used(mem, head, used_len)?;
            used_any = true;
        }
        if !queue.enable_notification(mem)? {
            break;
        }
    }
    if used_any {
        queue.needs_notification(mem)
    } else {
        Ok(false)
    }
}

/// Number of chains the driver has made available and we have not taken yet.
pub fn pending(queue: &Queue, mem: &GuestMemory) -> Result<u16, virtio_queue::Error> {
    let avail = queue.avail_idx(mem, Ordering::Acquire)?;
    Ok(avail.0.wrapping_sub(queue.next_avail()))
}

/// Acts on the outcome of [`drain_queue`]: raises the interrupt when the driver wants one, or on
/// a ring error flags the device as needing a reset. Returns false if the queue is now unusable.
pub fn complete(
    result: Result<bool, virtio_queue::Error>,
    interrupt: &super::Interrupt,
    queue: usize,
    what: &str,
) -> bool {
    match result {
        Ok(true) => {
            if let Err(e) = interrupt.signal_used_queue(queue) {
                crate::vmm_log!("{what}: cannot raise interrupt: {e}");
            }
            true
        }
        Ok(false) => true,
        Err(e) => {
            crate::vmm_log!("{what}: guest broke the ring ({e}); device needs reset");
            interrupt.set_needs_reset();
            false
        }
    }
}
