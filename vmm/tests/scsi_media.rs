//! virtio-scsi on a running machine (the real `vireo-vmm` binary, seccomp on, the local
//! /dev/kvm): a tiny guest that drives the controller itself (reads a CD-ROM block, ejects the
//! medium), and the control socket's media commands beside a guest that only ticks: drives
//! listed, media changed and ejected under the control thread's seccomp filter, the
//! `medium-changed` events, and each refusal as one line.

mod tiny;

use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;
use tiny::{asm, Vmm};

const T: Duration = Duration::from_secs(20);

/// Spins, printing a '.' every 2^16 iterations.
fn ticker() -> Vec<u8> {
    [
        asm::mov_dx(0x3f8),
        asm::mov_al(b'.'),
        vec![
            0x41, 0x66, 0xf7, 0xc1, 0xff, 0xff, 0x75, 0xf8, 0xee, 0xeb, 0xf5,
        ],
    ]
    .concat()
}

/// The controller's virtio-mmio window: slot 0 (no virtio-blk disks before it).
const BASE: u32 = 0xd800_0000;
/// Guest RAM for the request queue and the requests, clear of the code at 2 MiB.
const DESC: u32 = 0x30_0000;
const AVAIL: u32 = 0x30_1000;
const USED: u32 = 0x30_2000;
const HDR: u32 = 0x30_3000;
const RESP: u32 = 0x30_3100;
const DATA: u32 = 0x30_4000;
/// What every byte of the test's disc image holds.
const FILL: u8 = b'V';

/// One 16-byte virtq descriptor.
fn desc(i: u32, addr: u32, len: u32, flags: u16, next: u16) -> Vec<u8> {
    let at = DESC + 16 * i;
    [
        asm::store(at, addr),
        asm::store(at + 4, 0),
        asm::store(at + 8, len),
        asm::store(at + 12, u32::from(flags) | (u32::from(next) << 16)),
    ]
    .concat()
}

/// Writes `cdb` (at most 13 bytes) into the request header at HDR: task attribute, priority
/// and CRN (0) then the CDB fill bytes 16..32 of it.
fn set_cdb(cdb: &[u8]) -> Vec<u8> {
    let mut b = [0u8; 16];
    b[3..3 + cdb.len()].copy_from_slice(cdb);
    b.chunks(4)
        .enumerate()
        .flat_map(|(i, w)| {
            asm::store(
                HDR + 16 + 4 * i as u32,
                u32::from_le_bytes([w[0], w[1], w[2], w[3]]),
            )
        })
        .collect()
}

/// Makes request `n` (1-based) available, notifies queue 2, waits for the used ring to reach
/// `n`, then prints `s` and the SCSI status digit.
fn run_request(n: u32) -> Vec<u8> {
    let mut wait_used = vec![0x0f, 0xb7, 0x05]; // movzx eax, word [USED + 2]
    wait_used.extend((USED + 2).to_le_bytes());
    wait_used.extend([0x83, 0xf8, n as u8, 0x75, 0xf4]); // cmp eax, n; jne back to the movzx
    let mut status = asm::print("s");
    status.push(0xa0); // mov al, [RESP + 10]: the status byte
    status.extend((RESP + 10).to_le_bytes());
    status.extend([0x04, b'0']); // add al, '0'
    status.extend(asm::OUT_DX_AL);
    [
        asm::store(AVAIL, n << 16), // flags 0, idx n (every ring entry is descriptor 0)
        asm::store(BASE + 0x50, 2), // QueueNotify 2: the ioeventfd wakes the worker
        wait_used,
        status,
    ]
    .concat()
}

/// Brings up the controller (request queue 2 of 8 entries) and sends target 0 LUN 0 three
/// commands: TEST UNIT READY (answered with the power-on unit attention: `s2`), READ(10) of
/// block 0 into DATA (`s0` and the block's first byte), START STOP UNIT with LoEj (`s0`). The
/// eject waits for a byte on the serial console: the test sends it once its control client is
/// connected, or the eject's event could come before anyone listens.
fn read_then_eject() -> Vec<u8> {
    let reg = |off: u32, v: u32| asm::store(BASE + off, v);
    let mut first_byte = vec![0xa0]; // mov al, [DATA]
    first_byte.extend(DATA.to_le_bytes());
    first_byte.extend(asm::OUT_DX_AL);
    [
        reg(0x70, 1),                 // Status: ACKNOWLEDGE
        reg(0x70, 1 | 2),             // + DRIVER
        reg(0x24, 1),                 // DriverFeaturesSel: bits 32..63
        reg(0x20, 1),                 // VIRTIO_F_VERSION_1 (bit 32); nothing else
        reg(0x70, 1 | 2 | 8),         // + FEATURES_OK
        reg(0x30, 2),    // QueueSel 2: the request queue (SeaBIOS sets up only this one)
        reg(0x38, 8),    // QueueNum
        reg(0x80, DESC), // QueueDescLow
        reg(0x90, AVAIL), // QueueDriverLow
        reg(0xa0, USED), // QueueDeviceLow
        reg(0x44, 1),    // QueueReady
        reg(0x70, 1 | 2 | 8 | 4), // + DRIVER_OK: the worker starts
        asm::store(HDR, 0x0040_0001), // LUN: 1, target 0, flat LUN 0
        desc(0, HDR, 51, 1, 1), // request header, NEXT
        desc(1, RESP, 108, 2, 0), // response, WRITE
        set_cdb(&[0x00, 0, 0, 0, 0, 0]),
        run_request(1),
        desc(1, RESP, 108, 2 | 1, 2), // response, WRITE, NEXT
        desc(2, DATA, 2048, 2, 0),    // data-in, WRITE
        set_cdb(&[0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0]),
        run_request(2),
        first_byte,
        asm::wait_serial_byte(),
        desc(1, RESP, 108, 2, 0),
        set_cdb(&[0x1b, 0, 0, 0, 0x02, 0]),
        run_request(3),
        asm::print("\n"),
        asm::hang(),
    ]
    .concat()
}

#[test]
fn a_guest_reads_its_cd_and_ejects_it() {
    let media = tiny::tempdir("scsi-guest-files");
    let iso = media.join("a.iso");
    std::fs::write(&iso, vec![FILL; 16 * 2048]).unwrap();
    let medium = iso.clone();
    let mut vm = Vmm::start("scsi-guest", &read_then_eject(), move |cfg| {
        cfg["scsi"] = json!([{"devices": [
            drive("sda", 0, json!({"cdrom": {"medium": disk(&medium)}})),
        ]}]);
    });
    let mut c = vm.connect();
    std::io::Write::write_all(
        &mut std::os::unix::net::UnixStream::connect(vm.dir.join("console.sock")).unwrap(),
        b"e",
    )
    .unwrap();
    // The eject is announced from the device's worker thread.
    let ev = c.wait_event("medium-changed").expect("medium-changed");
    assert_eq!(ev["data"], json!({"id": "sda", "medium": null}));
    let want = format!("s2s0{}s0\n", FILL as char);
    assert!(
        vm.wait_serial(want.as_bytes(), T),
        "guest said {:?}",
        String::from_utf8_lossy(&vm.serial())
    );
    let q = c.execute("query-block", json!({}));
    let d = &q["return"]["drives"][0];
    assert_eq!(
        (&d["medium"], &d["tray_open"]),
        (&Value::Null, &json!(true)),
        "{q}"
    );
    // The same image goes back in from the host.
    let r = c.execute("change-medium", json!({"id": "sda", "filename": iso}));
    assert_eq!(r["return"], json!({}), "{r}");
    assert_eq!(c.execute("quit", json!({}))["return"], json!({}));
    let (st, err) = vm.wait(T);
    assert_eq!(st.code(), Some(0), "{err}");
    let _ = std::fs::remove_dir_all(&media);
}

fn image(dir: &Path, name: &str, len: usize) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, vec![0u8; len]).unwrap();
    p
}

fn drive(id: &str, lun: u16, kind: Value) -> Value {
    json!({"id": id, "target": 0, "lun": lun, "kind": kind})
}

fn disk(path: &Path) -> Value {
    json!({"path": path, "format": "raw"})
}

#[test]
fn media_change_and_eject_on_a_running_machine() {
    let media = tiny::tempdir("scsi-media-files");
    let a = image(&media, "a.iso", 32 * 2048);
    let b = image(&media, "b.iso", 32 * 2048);
    let hd = image(&media, "hd.img", 1 << 20);
    let mut vm = Vmm::start("scsi-media", &ticker(), |cfg| {
        cfg["scsi"] = json!([{"devices": [
            drive("sda", 0, json!({"cdrom": {"medium": disk(&a)}})),
            drive("sdb", 1, json!({"disk": {"disk": disk(&hd)}})),
            drive("sdc", 2, json!({"cdrom": {"medium": null}})),
        ]}]);
    });
    let mut c = vm.connect();
    let mut watcher = vm.connect();
    let names = c.execute("query-commands", json!({}));
    for n in ["query-block", "change-medium", "eject"] {
        assert!(
            names["return"]
                .as_array()
                .unwrap()
                .contains(&json!({"name": n})),
            "{names}"
        );
    }

    let q = c.execute("query-block", json!({}));
    let drives = q["return"]["drives"].as_array().unwrap().clone();
    let ids: Vec<&str> = drives.iter().map(|d| d["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["sda", "sdb", "sdc"], "{q}");
    assert_eq!(drives[0]["medium"], json!(a), "{q}");
    assert_eq!(drives[0]["cdrom"], true);
    assert_eq!(drives[1]["cdrom"], false);
    assert_eq!(drives[2]["medium"], Value::Null);

    let r = c.execute(
        "change-medium",
        json!({"id": "sdc", "filename": b, "format": "raw"}),
    );
    assert_eq!(r["return"], json!({}), "{r}");
    let ev = watcher
        .wait_event("medium-changed")
        .expect("medium-changed");
    assert_eq!(ev["data"], json!({"id": "sdc", "medium": b}));

    let r = c.execute("eject", json!({"id": "sda"}));
    assert_eq!(r["return"], json!({}), "{r}");
    let ev = watcher
        .wait_event("medium-changed")
        .expect("medium-changed");
    assert_eq!(ev["data"], json!({"id": "sda", "medium": null}));

    let q = c.execute("query-block", json!({}));
    assert_eq!(q["return"]["drives"][0]["medium"], Value::Null, "{q}");
    assert_eq!(q["return"]["drives"][2]["medium"], json!(b), "{q}");

    let refused = |c: &mut tiny::Client, cmd: &str, args: Value| {
        let r = c.execute(cmd, args);
        assert_eq!(r["error"]["class"], "GenericError", "{r}");
        r["error"]["desc"].as_str().unwrap().to_owned()
    };
    assert_eq!(
        refused(&mut c, "eject", json!({"id": "sdz"})),
        "no drive `sdz` on this machine"
    );
    assert_eq!(
        refused(&mut c, "change-medium", json!({"id": "sdb", "filename": a})),
        "`sdb` is a disk, not a CD-ROM drive"
    );
    let missing = media.join("missing.iso");
    assert_eq!(
        refused(
            &mut c,
            "change-medium",
            json!({"id": "sda", "filename": missing})
        ),
        format!("{}: no such file", missing.display())
    );
    assert_eq!(
        refused(
            &mut c,
            "change-medium",
            json!({"id": "sda", "filename": media})
        ),
        format!("{}: is a directory, not an image", media.display())
    );
    // Still running, nothing changed by the refusals.
    assert!(vm.wait_serial(b"...", T), "guest makes no progress");
    let q = c.execute("query-block", json!({}));
    assert_eq!(q["return"]["drives"][0]["medium"], Value::Null, "{q}");

    assert_eq!(c.execute("quit", json!({}))["return"], json!({}));
    let (st, err) = vm.wait(T);
    assert_eq!(st.code(), Some(0), "{err}");
    let _ = std::fs::remove_dir_all(&media);
}

#[test]
fn a_machine_without_scsi_lists_no_drives() {
    let mut vm = Vmm::start("scsi-none", &ticker(), |_| {});
    let mut c = vm.connect();
    let q = c.execute("query-block", json!({}));
    assert_eq!(q["return"], json!({"drives": []}), "{q}");
    let r = c.execute("eject", json!({"id": "sda", "force": true}));
    assert_eq!(r["error"]["desc"], "no drive `sda` on this machine", "{r}");
    assert_eq!(c.execute("quit", json!({}))["return"], json!({}));
    let (st, err) = vm.wait(T);
    assert_eq!(st.code(), Some(0), "{err}");
}
