//! The virtio-scsi control queue: task management functions and asynchronous-notification
//! requests (virtio 1.x, 5.6.6.2).
//!
//! Every command runs to completion before the worker takes the next request, so no task is
//! ever in flight when a TMF arrives: aborts and resets find nothing to do and complete at once
//! (FUNCTION COMPLETE; the QUERY functions answer "no such task" the same way). Asynchronous
//! notification is not offered: a query or subscription gets an empty event mask.

use virtio_bindings::virtio_scsi::{
    VIRTIO_SCSI_S_BAD_TARGET, VIRTIO_SCSI_S_FAILURE, VIRTIO_SCSI_S_OK, VIRTIO_SCSI_T_AN_QUERY,
    VIRTIO_SCSI_T_AN_SUBSCRIBE, VIRTIO_SCSI_T_TMF,
};

use super::request::parse_lun;
use crate::virtio::queue::{Chain, MemError};
use crate::virtio::GuestMemory;

/// The TMF answer "done" (virtio 1.x 5.6.6.2: the same value as VIRTIO_SCSI_S_OK, which the
/// bindings only know by that name).
pub const VIRTIO_SCSI_S_FUNCTION_COMPLETE: u32 = 0;

/// `{type: le32, subtype: le32, lun[8], id: le64}`, answered by `{response: u8}`.
const TMF_REQ_LEN: usize = 24;
/// `{type: le32, lun[8], event_requested: le32}`, answered by `{event_actual: le32, response}`.
const AN_REQ_LEN: usize = 16;

/// One control request as the device understood it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CtrlRequest {
    /// A task management function at `address` (`None`: a LUN field naming nothing).
    Tmf {
        subtype: u32,
        address: Option<(u8, u16)>,
    },
    /// AN query or subscribe.
    An { address: Option<(u8, u16)> },
    /// Too short, or of an unknown type.
    Bad,
}

/// Reads a control request from the chain's readable part.
pub fn parse_ctrl(chain: &Chain, mem: &GuestMemory) -> Result<CtrlRequest, MemError> {
    let mut buf = [0u8; TMF_REQ_LEN];
    let got = chain.read_at(mem, 0, &mut buf)?;
    if got < 4 {
        return Ok(CtrlRequest::Bad);
    }
    let kind = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]);
    let lun_at = |at: usize| {
        let mut lun = [0u8; 8];
        lun.copy_from_slice(&buf[at..at + 8]);
        parse_lun(&lun)
    };
    Ok(match kind {
        VIRTIO_SCSI_T_TMF if got >= TMF_REQ_LEN => CtrlRequest::Tmf {
            subtype: u32::from_le_bytes([buf[4], buf[5], buf[6], buf[7]]),
            address: lun_at(8),
        },
        VIRTIO_SCSI_T_AN_QUERY | VIRTIO_SCSI_T_AN_SUBSCRIBE if got >= AN_REQ_LEN => {
            CtrlRequest::An { address: lun_at(4) }
        }
        _ => CtrlRequest::Bad,
    })
}

/// Answers one control request; `has_target` says whether a target exists. Returns the used
/// length (0 when the writable part cannot hold the answer).
pub fn answer_ctrl(
    chain: &Chain,
    mem: &GuestMemory,
    req: CtrlRequest,
    has_target: impl Fn(u8) -> bool,
) -> Result<u32, MemError> {
    let reachable = |a: Option<(u8, u16)>| a.is_some_and(|(t, _)| has_target(t));
    let out: Vec<u8> = match req {
        CtrlRequest::Tmf { address, .. } => {
            let response = if reachable(address) {
                VIRTIO_SCSI_S_FUNCTION_COMPLETE
            } else {
                VIRTIO_SCSI_S_BAD_TARGET
            };
            vec![response as u8]
        }
        CtrlRequest::An { address } => {
            let response = if reachable(address) {
                VIRTIO_SCSI_S_OK
            } else {
                VIRTIO_SCSI_S_BAD_TARGET
            };
            let mut r = 0u32.to_le_bytes().to_vec();
            r.push(response as u8);
            r
        }
        CtrlRequest::Bad => vec![VIRTIO_SCSI_S_FAILURE as u8],
    };
    // The driver gave no room for the answer: nothing is written, the used length says so.
    if chain.writable_len() < out.len() as u64 {
        return Ok(0);
    }
    Ok(chain.write_at(mem, 0, &out)? as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::virtio::queue::Desc;
    use crate::virtio::testing::{guest_memory, DATA_START};
    use virtio_bindings::virtio_scsi::VIRTIO_SCSI_T_TMF_LOGICAL_UNIT_RESET;
    use vm_memory::{Bytes, GuestAddress};

    fn chain(req: &[u8], resp_len: u32, mem: &GuestMemory) -> Chain {
        mem.write_slice(req, GuestAddress(DATA_START)).unwrap();
        mem.write_slice(&[0xee; 8], GuestAddress(DATA_START + 0x100))
            .unwrap();
        Chain {
            head_index: 0,
            descs: vec![
                Desc {
                    addr: GuestAddress(DATA_START),
                    len: req.len() as u32,
                    writable: false,
                },
                Desc {
                    addr: GuestAddress(DATA_START + 0x100),
                    len: resp_len,
                    writable: true,
                },
            ],
        }
    }

    fn tmf(target: u8) -> Vec<u8> {
        let mut r = VIRTIO_SCSI_T_TMF.to_le_bytes().to_vec();
        r.extend(VIRTIO_SCSI_T_TMF_LOGICAL_UNIT_RESET.to_le_bytes());
        r.extend([1, target, 0x40, 0, 0, 0, 0, 0]);
        r.extend(9u64.to_le_bytes());
        r
    }

    fn run(req: &[u8], resp_len: u32) -> (u32, [u8; 8]) {
        let mem = guest_memory();
        let c = chain(req, resp_len, &mem);
        let r = parse_ctrl(&c, &mem).unwrap();
        let n = answer_ctrl(&c, &mem, r, |t| t == 0).unwrap();
        let mut out = [0u8; 8];
        mem.read_slice(&mut out, GuestAddress(DATA_START + 0x100))
            .unwrap();
        (n, out)
    }

    #[test]
    fn a_lun_reset_completes_at_once_and_a_missing_target_is_bad() {
        let (n, out) = run(&tmf(0), 1);
        assert_eq!((n, out[0]), (1, VIRTIO_SCSI_S_FUNCTION_COMPLETE as u8));
        let (n, out) = run(&tmf(5), 1);
        assert_eq!((n, out[0]), (1, VIRTIO_SCSI_S_BAD_TARGET as u8));
    }

    #[test]
    fn asynchronous_notification_reports_no_events() {
        let mut q = VIRTIO_SCSI_T_AN_SUBSCRIBE.to_le_bytes().to_vec();
        q.extend([1, 0, 0x40, 0, 0, 0, 0, 0]);
        q.extend(0xffu32.to_le_bytes());
        let (n, out) = run(&q, 5);
        assert_eq!(n, 5);
        assert_eq!(&out[..5], &[0, 0, 0, 0, VIRTIO_SCSI_S_OK as u8]);
    }

    #[test]
    fn short_and_unknown_requests_fail_without_overrunning_the_answer() {
        let (n, out) = run(&tmf(0)[..20], 1);
        assert_eq!((n, out[0]), (1, VIRTIO_SCSI_S_FAILURE as u8));
        let (n, out) = run(&7u32.to_le_bytes(), 1);
        assert_eq!((n, out[0]), (1, VIRTIO_SCSI_S_FAILURE as u8));
        let (n, out) = run(&[1, 0], 1);
        assert_eq!((n, out[0]), (1, VIRTIO_SCSI_S_FAILURE as u8));
        // No room for an answer: nothing is written.
        let (n, out) = run(&tmf(0), 0);
        assert_eq!((n, out[0]), (0, 0xee));
    }
}
