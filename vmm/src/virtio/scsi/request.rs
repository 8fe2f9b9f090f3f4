//! The virtio-scsi request queue's wire format: where the request header, the CDB, the
//! data-out and data-in bytes and the response lie in a validated descriptor chain, and how the
//! response is written back.
//!
//! Layout (virtio 1.x, 5.6.6.1): device-readable `{lun[8], id: le64, task_attr, prio, crn,
//! cdb[cdb_size]}` then the data-out bytes; device-writable `{sense_len: le32, residual: le32,
//! status_qualifier: le16, status, response, sense[sense_size]}` then the data-in bytes. The
//! driver may split or merge buffers anyhow, so everything is located by byte offset within
//! the readable and the writable part, and every length is checked against the chain.

use virtio_bindings::virtio_scsi::{VIRTIO_SCSI_S_BAD_TARGET, VIRTIO_SCSI_S_FAILURE};

use crate::scsi::MAX_TRANSFER_BYTES;
use crate::virtio::queue::{Chain, MemError};
use crate::virtio::GuestMemory;

/// Bytes of the request header before the CDB: lun, id, task_attr, prio, crn.
pub const REQ_FIXED_LEN: u64 = 19;
/// Bytes of the response header before the sense data.
pub const RESP_FIXED_LEN: u64 = 12;

/// The longest CDB and sense buffer a driver may ask for by writing the config space. Nothing
/// needs more than 32 and 96 (the defaults); the bounds keep a hostile value from making every
/// request header huge.
pub const MAX_CDB_SIZE: u32 = 256;
pub const MAX_SENSE_SIZE: u32 = 256;

/// The CDB and sense sizes the driver and device agreed on (config space, 5.6.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sizes {
    pub cdb: u32,
    pub sense: u32,
}

impl Default for Sizes {
    fn default() -> Sizes {
        Sizes {
            cdb: virtio_bindings::virtio_scsi::VIRTIO_SCSI_CDB_DEFAULT_SIZE,
            sense: virtio_bindings::virtio_scsi::VIRTIO_SCSI_SENSE_DEFAULT_SIZE,
        }
    }
}

impl Sizes {
    fn req_len(&self) -> u64 {
        REQ_FIXED_LEN + u64::from(self.cdb)
    }

    fn resp_len(&self) -> u64 {
        RESP_FIXED_LEN + u64::from(self.sense)
    }
}

/// Reads the 8-byte virtio-scsi LUN field: byte 0 is 1, byte 1 the target, bytes 2-3 the LUN
/// in flat (single-level) addressing `0x40 | hi, lo` or 0 for LUN 0, bytes 4-7 zero (no
/// hierarchy). `None` for anything else, which the device answers with BAD_TARGET.
pub fn parse_lun(lun: &[u8; 8]) -> Option<(u8, u16)> {
    if lun[0] != 1 || lun[4..] != [0, 0, 0, 0] {
        return None;
    }
    let target = lun[1];
    match (lun[2], lun[3]) {
        (0, 0) => Some((target, 0)),
        (hi, lo) if hi & 0xc0 == 0x40 => {
            Some((target, (u16::from(hi & 0x3f) << 8) | u16::from(lo)))
        }
        _ => None,
    }
}

/// One command request, located in its chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CmdRequest {
    /// `(target, lun)`, or `None` for a LUN field [`parse_lun`] refuses.
    pub address: Option<(u8, u16)>,
    /// The driver's tag (only logged).
    pub tag: u64,
    /// The whole CDB field, `cdb_size` bytes.
    pub cdb: Vec<u8>,
    /// Device-readable bytes after the header.
    pub data_out_len: u64,
    /// Device-writable bytes after the response header (0 if the writable part is shorter).
    pub data_in_len: u64,
}

/// Why a request cannot be carried out as it stands.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// Fewer device-writable bytes than the fixed response header: nothing can be answered.
    #[error("device-writable part of {len} bytes, shorter than the {RESP_FIXED_LEN}-byte response header")]
    NoResponse { len: u64 },
    /// The request header (with its CDB) is longer than the device-readable part.
    #[error("device-readable part of {len} bytes, shorter than the {want}-byte request header")]
    ShortHeader { len: u64, want: u64 },
    /// Both data-out and data-in bytes: bidirectional commands need VIRTIO_SCSI_F_INOUT, which
    /// the device does not offer (the spec's answer is VIRTIO_SCSI_S_FAILURE).
    #[error("both data-out ({out} bytes) and data-in ({inn} bytes) without VIRTIO_SCSI_F_INOUT")]
    Bidirectional { out: u64, inn: u64 },
    /// Guest memory could not be read.
    #[error(transparent)]
    Memory(#[from] MemError),
}

impl RequestError {
    /// The response code to answer with, if the request can be answered at all.
    pub fn response(&self) -> Option<u8> {
        match self {
            RequestError::NoResponse { .. } => None,
            _ => Some(VIRTIO_SCSI_S_FAILURE as u8),
        }
    }
}

/// Locates a command request in `chain`.
pub fn parse_cmd(
    chain: &Chain,
    mem: &GuestMemory,
    sizes: Sizes,
) -> Result<CmdRequest, RequestError> {
    let writable = chain.writable_len();
    if writable < RESP_FIXED_LEN {
        return Err(RequestError::NoResponse { len: writable });
    }
    let readable = chain.readable_len();
    let want = sizes.req_len();
    if readable < want {
        return Err(RequestError::ShortHeader {
            len: readable,
            want,
        });
    }
    // `want` is at most 19 + MAX_CDB_SIZE bytes.
    let mut header = vec![0u8; want as usize];
    chain.read_at(mem, 0, &mut header)?;
    let data_out_len = readable - want;
    let data_in_len = writable.saturating_sub(sizes.resp_len());
    if data_out_len > 0 && data_in_len > 0 {
        return Err(RequestError::Bidirectional {
            out: data_out_len,
            inn: data_in_len,
        });
    }
    let mut lun = [0u8; 8];
    lun.copy_from_slice(&header[0..8]);
    let mut tag = [0u8; 8];
    tag.copy_from_slice(&header[8..16]);
    Ok(CmdRequest {
        address: parse_lun(&lun),
        tag: u64::from_le_bytes(tag),
        cdb: header[REQ_FIXED_LEN as usize..].to_vec(),
        data_out_len,
        data_in_len,
    })
}

impl CmdRequest {
    /// The room a unit may fill: the data-in bytes, at most one transfer.
    pub fn max_in(&self) -> usize {
        usize::try_from(self.data_in_len)
            .unwrap_or(usize::MAX)
            .min(MAX_TRANSFER_BYTES)
    }

    /// Reads the data-out bytes into `buf` (cleared first). At most [`MAX_TRANSFER_BYTES`] are
    /// read: the guest was told (max_sectors) that no command moves more, and a unit checks
    /// that the bytes it needs are there.
    pub fn read_data_out(
        &self,
        chain: &Chain,
        mem: &GuestMemory,
        sizes: Sizes,
        buf: &mut Vec<u8>,
    ) -> Result<(), MemError> {
        let n = usize::try_from(self.data_out_len)
            .unwrap_or(usize::MAX)
            .min(MAX_TRANSFER_BYTES);
        buf.clear();
        buf.resize(n, 0);
        let got = chain.read_at(mem, sizes.req_len(), buf)?;
        buf.truncate(got);
        Ok(())
    }
}

/// What the device answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response<'a> {
    /// VIRTIO_SCSI_S_*.
    pub response: u8,
    /// SCSI status byte (with response OK).
    pub status: u8,
    /// Sense data, cut to the agreed sense size here.
    pub sense: &'a [u8],
    /// Data-in bytes, written after the response header.
    pub data_in: &'a [u8],
    /// Bytes the command did not transfer.
    pub residual: u32,
}

impl Response<'_> {
    /// A response without SCSI status, sense or data (BAD_TARGET, FAILURE, ...).
    pub fn bare(response: u32, residual: u32) -> Response<'static> {
        Response {
            response: response as u8,
            status: 0,
            sense: &[],
            data_in: &[],
            residual,
        }
    }

    /// BAD_TARGET for a request whose LUN field names no target of this controller.
    pub fn bad_target(req: &CmdRequest) -> Response<'static> {
        Response::bare(
            VIRTIO_SCSI_S_BAD_TARGET,
            u32::try_from(req.data_in_len.max(req.data_out_len)).unwrap_or(u32::MAX),
        )
    }
}

/// Writes `resp` into the chain's writable part: the fixed header, the sense area (the sense
/// bytes, cut to `sizes.sense`, then zeros; cut again where the writable part ends) and the
/// data-in bytes (cut to the room there is). Returns the number of bytes written, the used
/// length.
pub fn write_response(
    chain: &Chain,
    mem: &GuestMemory,
    sizes: Sizes,
    resp: &Response<'_>,
) -> Result<u32, MemError> {
    let sense_area = sizes.sense as usize;
    let sense = &resp.sense[..resp.sense.len().min(sense_area)];
    let mut head = Vec::with_capacity(RESP_FIXED_LEN as usize + sense_area);
    head.extend((sense.len() as u32).to_le_bytes());
    head.extend(resp.residual.to_le_bytes());
    head.extend(0u16.to_le_bytes());
    head.push(resp.status);
    head.push(resp.response);
    head.extend(sense);
    head.resize(RESP_FIXED_LEN as usize + sense_area, 0);
    let mut written = chain.write_at(mem, 0, &head)?;
    if !resp.data_in.is_empty() && written == head.len() {
        written += chain.write_at(mem, sizes.resp_len(), resp.data_in)?;
    }
    // At most resp_len + MAX_TRANSFER_BYTES, far below 4 GiB.
    Ok(written as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::virtio::queue::Desc;
    use crate::virtio::testing::{guest_memory, DATA_START};
    use vm_memory::{Bytes, GuestAddress};

    #[test]
    fn lun_fields_name_a_target_and_a_flat_lun_or_nothing() {
        assert_eq!(parse_lun(&[1, 0, 0x40, 0, 0, 0, 0, 0]), Some((0, 0)));
        assert_eq!(parse_lun(&[1, 3, 0, 0, 0, 0, 0, 0]), Some((3, 0)));
        assert_eq!(parse_lun(&[1, 255, 0x40, 7, 0, 0, 0, 0]), Some((255, 7)));
        assert_eq!(parse_lun(&[1, 2, 0x7f, 0xff, 0, 0, 0, 0]), Some((2, 16383)));
        // Not 1 in byte 0 (the well-known REPORT LUNS address 0xc1 among them).
        assert_eq!(parse_lun(&[0, 0, 0x40, 0, 0, 0, 0, 0]), None);
        assert_eq!(parse_lun(&[0xc1, 0x01, 0, 0, 0, 0, 0, 0]), None);
        // Peripheral addressing of a LUN other than 0, extended and logical-unit addressing.
        assert_eq!(parse_lun(&[1, 0, 0, 1, 0, 0, 0, 0]), None);
        assert_eq!(parse_lun(&[1, 0, 0x80, 1, 0, 0, 0, 0]), None);
        assert_eq!(parse_lun(&[1, 0, 0xc0, 1, 0, 0, 0, 0]), None);
        // A second level.
        assert_eq!(parse_lun(&[1, 0, 0x40, 0, 0x40, 1, 0, 0]), None);
        assert_eq!(parse_lun(&[1, 0, 0x40, 0, 0, 0, 0, 1]), None);
    }

    fn desc(addr: u64, len: u32, writable: bool) -> Desc {
        Desc {
            addr: GuestAddress(addr),
            len,
            writable,
        }
    }

    fn chain(descs: Vec<Desc>) -> Chain {
        Chain {
            head_index: 0,
            descs,
        }
    }

    fn header(lun: [u8; 8], tag: u64, cdb: &[u8]) -> Vec<u8> {
        let mut h = lun.to_vec();
        h.extend(tag.to_le_bytes());
        h.extend([0, 0, 0]);
        let mut c = cdb.to_vec();
        c.resize(32, 0);
        h.extend(c);
        h
    }

    const LUN0: [u8; 8] = [1, 0, 0x40, 0, 0, 0, 0, 0];

    #[test]
    fn a_header_split_over_buffers_is_read_whole() {
        let mem = guest_memory();
        let h = header([1, 4, 0x40, 2, 0, 0, 0, 0], 77, &[0x12, 0, 0, 0, 36, 0]);
        // 51 bytes in three pieces, then a 512-byte data-out buffer.
        mem.write_slice(&h[..5], GuestAddress(DATA_START)).unwrap();
        mem.write_slice(&h[5..30], GuestAddress(DATA_START + 0x100))
            .unwrap();
        mem.write_slice(&h[30..], GuestAddress(DATA_START + 0x200))
            .unwrap();
        mem.write_slice(&[0xab; 512], GuestAddress(DATA_START + 0x300))
            .unwrap();
        let c = chain(vec![
            desc(DATA_START, 5, false),
            desc(DATA_START + 0x100, 25, false),
            desc(DATA_START + 0x200, 21, false),
            desc(DATA_START + 0x300, 512, false),
            desc(DATA_START + 0x1000, 108, true),
        ]);
        let r = parse_cmd(&c, &mem, Sizes::default()).unwrap();
        assert_eq!(r.address, Some((4, 2)));
        assert_eq!(r.tag, 77);
        assert_eq!(r.cdb.len(), 32);
        assert_eq!(&r.cdb[..6], &[0x12, 0, 0, 0, 36, 0]);
        assert_eq!((r.data_out_len, r.data_in_len), (512, 0));
        let mut out = Vec::new();
        r.read_data_out(&c, &mem, Sizes::default(), &mut out)
            .unwrap();
        assert_eq!(out, vec![0xab; 512]);
    }

    #[test]
    fn every_length_is_checked() {
        let mem = guest_memory();
        mem.write_slice(&header(LUN0, 0, &[0]), GuestAddress(DATA_START))
            .unwrap();
        let s = Sizes::default();
        // The response header does not fit: nothing can be answered.
        let c = chain(vec![
            desc(DATA_START, 51, false),
            desc(DATA_START + 0x100, 11, true),
        ]);
        assert!(matches!(
            parse_cmd(&c, &mem, s),
            Err(RequestError::NoResponse { len: 11 })
        ));
        // A header cut short inside the CDB.
        let c = chain(vec![
            desc(DATA_START, 50, false),
            desc(DATA_START + 0x100, 108, true),
        ]);
        let e = parse_cmd(&c, &mem, s).unwrap_err();
        assert!(matches!(e, RequestError::ShortHeader { len: 50, want: 51 }));
        assert_eq!(e.response(), Some(VIRTIO_SCSI_S_FAILURE as u8));
        // No readable part at all.
        let c = chain(vec![desc(DATA_START + 0x100, 108, true)]);
        assert!(matches!(
            parse_cmd(&c, &mem, s),
            Err(RequestError::ShortHeader { len: 0, .. })
        ));
        // Data both ways.
        let c = chain(vec![
            desc(DATA_START, 51, false),
            desc(DATA_START + 0x200, 1, false),
            desc(DATA_START + 0x100, 109, true),
        ]);
        assert!(matches!(
            parse_cmd(&c, &mem, s),
            Err(RequestError::Bidirectional { out: 1, inn: 1 })
        ));
        // A writable part shorter than the sense area: answerable, but no room for data-in.
        let c = chain(vec![
            desc(DATA_START, 51, false),
            desc(DATA_START + 0x100, 40, true),
        ]);
        let r = parse_cmd(&c, &mem, s).unwrap();
        assert_eq!((r.data_out_len, r.data_in_len, r.max_in()), (0, 0, 0));
        // A smaller CDB size agreed through the config space moves the data-out start.
        let small = Sizes { cdb: 16, sense: 96 };
        let c = chain(vec![
            desc(DATA_START, 51, false),
            desc(DATA_START + 0x100, 108, true),
        ]);
        assert_eq!(parse_cmd(&c, &mem, small).unwrap().data_out_len, 16);
        assert_eq!(parse_cmd(&c, &mem, small).unwrap().cdb.len(), 16);
    }

    #[test]
    fn data_in_room_is_capped_at_one_transfer() {
        let mem = guest_memory();
        mem.write_slice(&header(LUN0, 0, &[0x28]), GuestAddress(DATA_START))
            .unwrap();
        let c = chain(vec![
            desc(DATA_START, 51, false),
            desc(DATA_START + 0x100, 108, true),
            desc(0x10_0000, 0x30_0000, true),
        ]);
        let r = parse_cmd(&c, &mem, Sizes::default()).unwrap();
        assert_eq!(r.data_in_len, 0x30_0000);
        assert_eq!(r.max_in(), MAX_TRANSFER_BYTES);
    }

    #[test]
    fn the_response_fills_header_sense_and_data_in_where_the_chain_has_room() {
        let mem = guest_memory();
        let s = Sizes::default();
        // Response header split over two buffers, data-in of 8 bytes with room for 6.
        let c = chain(vec![
            desc(DATA_START, 51, false),
            desc(DATA_START + 0x100, 20, true),
            desc(DATA_START + 0x200, 94, true),
        ]);
        mem.write_slice(&[0xee; 200], GuestAddress(DATA_START + 0x100))
            .unwrap();
        let sense = [0x70u8; 18];
        let n = write_response(
            &c,
            &mem,
            s,
            &Response {
                response: 0,
                status: 2,
                sense: &sense,
                data_in: &[1, 2, 3, 4, 5, 6, 7, 8],
                residual: 5,
            },
        )
        .unwrap();
        assert_eq!(n, 114);
        let mut got = [0u8; 114];
        c.read_writable_for_test(&mem, &mut got);
        assert_eq!(&got[0..4], &18u32.to_le_bytes());
        assert_eq!(&got[4..8], &5u32.to_le_bytes());
        assert_eq!(&got[8..12], &[0, 0, 2, 0]);
        assert_eq!(&got[12..30], &sense);
        assert!(got[30..108].iter().all(|b| *b == 0));
        assert_eq!(&got[108..], &[1, 2, 3, 4, 5, 6]);
        // Sense longer than the agreed size is cut, and says so in sense_len.
        let tiny = Sizes { cdb: 32, sense: 4 };
        let n = write_response(
            &c,
            &mem,
            tiny,
            &Response {
                response: 0,
                status: 2,
                sense: &sense,
                data_in: &[],
                residual: 0,
            },
        )
        .unwrap();
        assert_eq!(n, 16);
        c.read_writable_for_test(&mem, &mut got);
        assert_eq!(&got[0..4], &4u32.to_le_bytes());
        // Only the fixed header fits: that much is written and no more.
        let short = chain(vec![
            desc(DATA_START, 51, false),
            desc(DATA_START + 0x100, 12, true),
        ]);
        let bare = Response::bare(VIRTIO_SCSI_S_BAD_TARGET, 0);
        assert_eq!(write_response(&short, &mem, s, &bare).unwrap(), 12);
    }

    impl Chain {
        fn read_writable_for_test(&self, mem: &GuestMemory, out: &mut [u8]) {
            let mut done = 0;
            for seg in self.segments(true, 0, out.len() as u64) {
                let n = seg.len as usize;
                mem.read_slice(&mut out[done..done + n], seg.addr).unwrap();
                done += n;
            }
        }
    }
}
