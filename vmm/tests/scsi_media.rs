//! The control socket's media commands on a running machine with a virtio-scsi controller
//! (the real `vireo-vmm` binary on the local /dev/kvm, a tiny guest that only ticks): drives
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
