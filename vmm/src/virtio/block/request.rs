//! Parsing of virtio-blk requests out of a validated descriptor chain.
//!
//! Layout (virtio 1.x, 5.2.6): a 16-byte device-readable header `{type: le32, reserved: le32,
//! sector: le64}`, then the data (device-readable for writes, device-writable for reads), then a
//! one-byte device-writable status. Buffers may be split or merged any way the driver likes, so
//! everything is located by byte offset within the readable and writable parts.

use virtio_bindings::virtio_blk::*;
use vm_memory::GuestAddress;

use crate::virtio::queue::{Chain, Desc};
use crate::virtio::GuestMemory;

/// Sector size of the virtio-blk protocol.
pub const SECTOR_SIZE: u64 = 512;
/// Largest single data buffer we accept (advertised as size_max).
pub const SIZE_MAX: u32 = 1 << 20;
/// Most discard / write-zeroes segments in one request (advertised).
pub const MAX_DISCARD_SEG: u32 = 32;
/// Largest discard / write-zeroes range in sectors (advertised; 4 GiB).
pub const MAX_DISCARD_SECTORS: u32 = (1 << 23) - 1;
/// Length of the serial returned by GET_ID.
pub const ID_LEN: usize = 20;

const HEADER_LEN: u64 = 16;
const DISCARD_SEG_LEN: u64 = 16;

/// What the driver asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RequestKind {
    /// Read `data` from the disk at `sector`.
    In,
    /// Write `data` to the disk at `sector`.
    Out,
    /// Make previous writes durable.
    Flush,
    /// Return the serial number into `data`.
    GetId,
    /// Free the ranges.
    Discard(Vec<Range>),
    /// Zero the ranges.
    WriteZeroes(Vec<Range>),
}

/// One discard / write-zeroes range, in bytes, already checked against the capacity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Range {
    /// Byte offset.
    pub offset: u64,
    /// Byte length.
    pub len: u64,
}

/// A parsed request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// The operation.
    pub kind: RequestKind,
    /// Byte offset on the disk (sector * 512) for In/Out.
    pub offset: u64,
    /// Data buffers (readable for Out, writable for In/GetId), without header and status.
    pub data: Vec<Desc>,
    /// Total length of `data`.
    pub data_len: u64,
    /// Where the status byte goes.
    pub status: GuestAddress,
}

/// Why a request cannot be carried out. Every variant except [`ParseError::NoStatus`] is
/// answered with a status byte ([`ParseError::status`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// No device-writable byte for the status: the request cannot even be answered.
    #[error("no device-writable status byte")]
    NoStatus,
    /// The header is shorter than 16 bytes or unreadable.
    #[error("request header shorter than 16 bytes")]
    ShortHeader {
        /// Status location.
        status: GuestAddress,
    },
    /// Unknown or unsupported request type.
    #[error("unsupported request type {kind}")]
    Unsupported {
        /// The type field.
        kind: u32,
        /// Status location.
        status: GuestAddress,
    },
    /// Length not a multiple of the sector size, a buffer over size_max, a range past the end of
    /// the disk, too many discard segments, a write to a read-only disk.
    #[error("invalid request: {reason}")]
    Invalid {
        /// Why.
        reason: &'static str,
        /// Status location.
        status: GuestAddress,
    },
}

impl ParseError {
    /// The status byte to answer with, and where, if the request can be answered at all.
    pub fn status(&self) -> Option<(GuestAddress, u8)> {
        match *self {
            ParseError::NoStatus => None,
            ParseError::ShortHeader { status } | ParseError::Invalid { status, .. } => {
                Some((status, VIRTIO_BLK_S_IOERR as u8))
            }
            ParseError::Unsupported { status, .. } => Some((status, VIRTIO_BLK_S_UNSUPP as u8)),
        }
    }
}

/// Parses `chain` for a disk of `capacity` bytes.
pub fn parse(
    chain: &Chain,
    mem: &GuestMemory,
    capacity: u64,
    read_only: bool,
) -> Result<Request, ParseError> {
    let writable_len = chain.writable_len();
    if writable_len == 0 {
        return Err(ParseError::NoStatus);
    }
    let status = chain
        .segments(true, writable_len - 1, 1)
        .first()
        .map(|d| d.addr)
        .ok_or(ParseError::NoStatus)?;
    let invalid = |reason| ParseError::Invalid { reason, status };

    let mut header = [0u8; HEADER_LEN as usize];
    match chain.read_at(mem, 0, &mut header) {
        Ok(n) if n == header.len() => {}
        _ => return Err(ParseError::ShortHeader { status }),
    }
    let kind = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
    let mut sector_bytes = [0u8; 8];
    sector_bytes.copy_from_slice(&header[8..16]);
    let sector = u64::from_le_bytes(sector_bytes);

    let readable_data = chain.readable_len().saturating_sub(HEADER_LEN);
    let writable_data = writable_len - 1;

    let (kind, data, data_len) = match kind {
        VIRTIO_BLK_T_IN => (
            RequestKind::In,
            chain.segments(true, 0, writable_data),
            writable_data,
        ),
        VIRTIO_BLK_T_OUT => {
            if read_only {
                return Err(invalid("write to a read-only disk"));
            }
            (
                RequestKind::Out,
                chain.segments(false, HEADER_LEN, readable_data),
                readable_data,
            )
        }
        VIRTIO_BLK_T_FLUSH => (RequestKind::Flush, Vec::new(), 0),
        VIRTIO_BLK_T_GET_ID => {
            let n = writable_data.min(ID_LEN as u64);
            (RequestKind::GetId, chain.segments(true, 0, n), n)
        }
        VIRTIO_BLK_T_DISCARD | VIRTIO_BLK_T_WRITE_ZEROES => {
            if read_only {
                return Err(invalid("discard or write-zeroes on a read-only disk"));
            }
            let ranges = parse_ranges(chain, mem, readable_data, capacity).map_err(invalid)?;
            let k = if kind == VIRTIO_BLK_T_DISCARD {
                RequestKind::Discard(ranges)
            } else {
                RequestKind::WriteZeroes(ranges)
            };
            (k, Vec::new(), 0)
        }
        other => {
            return Err(ParseError::Unsupported {
                kind: other,
                status,
            })
        }
    };

    let mut offset = 0;
    if matches!(kind, RequestKind::In | RequestKind::Out) {
        if data_len % SECTOR_SIZE != 0 {
            return Err(invalid("data length is not a multiple of 512"));
        }
        if data.iter().any(|d| d.len > SIZE_MAX) {
            return Err(invalid("a data buffer is larger than size_max"));
        }
        offset = sector
            .checked_mul(SECTOR_SIZE)
            .ok_or(invalid("sector number overflows"))?;
        let end = offset
            .checked_add(data_len)
            .ok_or(invalid("request end overflows"))?;
        if end > capacity {
            return Err(invalid("request reaches past the end of the disk"));
        }
    }
    Ok(Request {
        kind,
        offset,
        data,
        data_len,
        status,
    })
}

fn parse_ranges(
    chain: &Chain,
    mem: &GuestMemory,
    len: u64,
    capacity: u64,
) -> Result<Vec<Range>, &'static str> {
    if len == 0 || len % DISCARD_SEG_LEN != 0 {
        return Err("discard segment list has a bad length");
    }
    let count = len / DISCARD_SEG_LEN;
    if count > u64::from(MAX_DISCARD_SEG) {
        return Err("too many discard segments");
    }
    let mut out = Vec::new();
    for i in 0..count {
        let mut seg = [0u8; DISCARD_SEG_LEN as usize];
        match chain.read_at(mem, HEADER_LEN + i * DISCARD_SEG_LEN, &mut seg) {
            Ok(n) if n == seg.len() => {}
            _ => return Err("discard segment unreadable"),
        }
        let mut s = [0u8; 8];
        s.copy_from_slice(&seg[0..8]);
        let sector = u64::from_le_bytes(s);
        let num = u32::from_le_bytes([seg[8], seg[9], seg[10], seg[11]]);
        let flags = u32::from_le_bytes([seg[12], seg[13], seg[14], seg[15]]);
        // Only bit 0 (unmap, for write-zeroes) is defined.
        if flags & !1 != 0 {
            return Err("discard segment has reserved flags set");
        }
        if num > MAX_DISCARD_SECTORS {
            return Err("discard segment larger than max_discard_sectors");
        }
        let offset = sector
            .checked_mul(SECTOR_SIZE)
            .ok_or("discard sector overflows")?;
        let len = u64::from(num) * SECTOR_SIZE;
        let end = offset.checked_add(len).ok_or("discard end overflows")?;
        if end > capacity {
            return Err("discard reaches past the end of the disk");
        }
        out.push(Range { offset, len });
    }
    Ok(out)
}
