//! Media changes on a machine's definition with real files, and on a running machine whose
//! helper is a stand-in socket (no KVM): each refusal leaves every document as it was.

use super::*;
use crate::rundir::RunDir;
use crate::state::{DomainState, Reason, StateRecord};
use crate::store::FileLock;
use std::io::{BufRead, BufReader, Write};

struct Home {
    dir: PathBuf,
    conn: Connection,
}

impl Home {
    fn new(tag: &str) -> Home {
        let dir = std::env::temp_dir().join(format!("vireo-media-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let h = Home {
            conn: Connection::with_paths(crate::Paths::all_under(&dir)),
            dir,
        };
        for f in ["a.iso", "b.iso", "disk.img"] {
            std::fs::write(h.dir.join(f), b"iso").unwrap();
        }
        h.conn.define_xml(&h.machine()).unwrap();
        h
    }

    fn p(&self, f: &str) -> PathBuf {
        self.dir.join(f)
    }

    /// `m`: an empty drive sda, drive sdb holding a.iso, a virtio disk vda.
    fn machine(&self) -> String {
        format!(
            "<domain type='kvm'><name>m</name><memory unit='MiB'>64</memory>\
             <os><type arch='x86_64'>hvm</type></os><devices>\
             <disk type='file' device='cdrom'><driver name='qemu' type='raw'/><target dev='sda' bus='scsi'/><readonly/></disk>\
             <disk type='file' device='cdrom'><driver name='qemu' type='raw'/><source file='{}'/><target dev='sdb' bus='scsi'/><readonly/></disk>\
             <disk type='file' device='disk'><source file='{}'/><target dev='vda' bus='virtio'/></disk>\
             </devices></domain>",
            self.p("a.iso").display(),
            self.p("disk.img").display()
        )
    }

    fn definition(&self) -> String {
        self.conn.xml("m", true).unwrap()
    }

    fn source(&self, inactive: bool, target: &str) -> Option<PathBuf> {
        drives(&self.conn, "m", inactive)
            .unwrap()
            .into_iter()
            .find(|d| d.target == target)
            .and_then(|d| d.source)
    }

    fn change(&self, target: &str, action: MediaAction, scope: MediaScope) -> Result<(), String> {
        change_media(&self.conn, "m", target, action, false, scope).map_err(|e| e.to_string())
    }
}

impl Drop for Home {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

const CURRENT: MediaScope = MediaScope {
    live: false,
    config: false,
};
const LIVE: MediaScope = MediaScope {
    live: true,
    config: false,
};
const BOTH: MediaScope = MediaScope {
    live: true,
    config: true,
};

#[test]
fn drives_list_every_disk_with_its_medium() {
    let h = Home::new("list");
    let d = drives(&h.conn, "m", false).unwrap();
    let rows: Vec<_> = d
        .iter()
        .map(|d| {
            (
                d.target.as_str(),
                d.device.as_str(),
                d.bus.as_str(),
                d.kind.as_str(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("sda", "cdrom", "scsi", "file"),
            ("sdb", "cdrom", "scsi", "file"),
            ("vda", "disk", "virtio", "file")
        ]
    );
    assert_eq!(d[0].source, None);
    assert_eq!(d[1].source, Some(h.p("a.iso")));
    assert!(matches!(
        drives(&h.conn, "nope", false),
        Err(MediaError::Driver(DriverError::NotFound(_)))
    ));
}

#[test]
fn a_stopped_machine_changes_its_definition() {
    let h = Home::new("config");
    h.change("sda", MediaAction::Insert(h.p("b.iso")), CURRENT)
        .unwrap();
    assert_eq!(h.source(true, "sda"), Some(h.p("b.iso")));
    h.change("sdb", MediaAction::Eject, CURRENT).unwrap();
    assert_eq!(h.source(true, "sdb"), None);
    assert!(
        !h.definition().contains(&h.p("a.iso").display().to_string()),
        "{}",
        h.definition()
    );
    h.change(
        "sda",
        MediaAction::Update(Some(h.p("a.iso"))),
        MediaScope {
            live: false,
            config: true,
        },
    )
    .unwrap();
    assert_eq!(h.source(true, "sda"), Some(h.p("a.iso")));
    h.change("sda", MediaAction::Update(None), CURRENT).unwrap();
    assert_eq!(h.source(true, "sda"), None);
    // An update of an empty drive to empty is no change and no error.
    h.change("sda", MediaAction::Update(None), CURRENT).unwrap();
    // The document stays one the machine starts from.
    h.conn
        .start_check(&Definition::parse(&h.definition()).unwrap())
        .unwrap();
}

#[test]
fn bad_input_is_one_line_and_changes_nothing() {
    let h = Home::new("bad");
    let before = h.definition();
    let dir = h.dir.display().to_string();
    let cases = [
        (
            "sda",
            MediaAction::Insert(h.p("none.iso")),
            CURRENT,
            format!("{}: No such file or directory", h.p("none.iso").display()),
        ),
        (
            "sda",
            MediaAction::Insert(h.dir.clone()),
            CURRENT,
            format!("{dir}: is a directory, not a CD-ROM image"),
        ),
        (
            "sda",
            MediaAction::Insert("rel.iso".into()),
            CURRENT,
            "rel.iso: must be an absolute path".into(),
        ),
        (
            "sdz",
            MediaAction::Insert(h.p("b.iso")),
            CURRENT,
            "domain 'm' has no disk with target 'sdz'".into(),
        ),
        (
            "vda",
            MediaAction::Eject,
            CURRENT,
            "disk 'vda' of domain 'm' is not a CD-ROM drive: only a CD-ROM's medium can be changed"
                .into(),
        ),
        (
            "sdb",
            MediaAction::Insert(h.p("b.iso")),
            CURRENT,
            format!(
                "drive 'sdb' already holds {}: eject it first, or use --update",
                h.p("a.iso").display()
            ),
        ),
        (
            "sda",
            MediaAction::Eject,
            CURRENT,
            "drive 'sda' is empty: there is nothing to eject".into(),
        ),
        (
            "sdb",
            MediaAction::Eject,
            LIVE,
            "domain 'm' is not running; use --config to change its definition".into(),
        ),
        (
            "sdb",
            MediaAction::Eject,
            BOTH,
            "domain 'm' is not running; use --config to change its definition".into(),
        ),
    ];
    for (target, action, scope, want) in cases {
        let got = h.change(target, action.clone(), scope).unwrap_err();
        assert_eq!(got, want, "{target} {action:?} {scope:?}");
        assert!(!got.contains('\n'));
        assert_eq!(h.definition(), before, "changed by {target} {action:?}");
    }
}

/// Makes `m` look running: its supervisor lock held, its live files written, and a helper
/// that answers one request with `reply`; returns the lock and the helper, which gives the
/// request line it read.
fn fake_running(h: &Home, reply: &'static str) -> (FileLock, std::thread::JoinHandle<String>) {
    let run = RunDir::new(h.conn.paths().machine_runtime("m"));
    crate::paths::ensure_private_dir(&run.dir).unwrap();
    let lock = FileLock::exclusive(&run.supervisor_lock()).unwrap();
    let d = h.conn.store().lookup("m").unwrap();
    std::fs::write(run.xml(), d.to_xml()).unwrap();
    let tr = crate::translate::translate(&d.dom, &run, &h.conn.paths().nvram_dir(), &mut || None)
        .unwrap();
    std::fs::write(run.config(), serde_json::to_vec(&tr.config).unwrap()).unwrap();
    run.update_state(|r| *r = StateRecord::new(DomainState::Running, Reason::Booted))
        .unwrap();
    let _ = std::fs::remove_file(run.control());
    let listener = std::os::unix::net::UnixListener::bind(run.control()).unwrap();
    let helper = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.write_all(b"{\"vireo\":{\"name\":\"m\",\"protocol\":1,\"vmm\":\"0.1.0\"}}\n")
            .unwrap();
        let mut req = String::new();
        BufReader::new(s.try_clone().unwrap())
            .read_line(&mut req)
            .unwrap();
        s.write_all(reply.as_bytes()).unwrap();
        req
    });
    (lock, helper)
}

#[test]
fn a_running_machine_changes_through_its_helper_and_its_live_xml() {
    let h = Home::new("live");
    let before = h.definition();
    let (_lock, helper) = fake_running(&h, "{\"id\":1,\"return\":{}}\n");
    // Current is live for a running machine.
    h.change("sdb", MediaAction::Update(Some(h.p("b.iso"))), CURRENT)
        .unwrap();
    let req = helper.join().unwrap();
    assert!(req.contains("\"execute\":\"change-medium\""), "{req}");
    assert!(
        req.contains("\"id\":\"sdb\"") && req.contains("\"format\":\"raw\""),
        "{req}"
    );
    assert!(req.contains("\"force\":false"), "{req}");
    assert_eq!(h.source(false, "sdb"), Some(h.p("b.iso")));
    assert_eq!(h.definition(), before, "the definition is not live");
    let run = RunDir::new(h.conn.paths().machine_runtime("m"));
    let cfg = std::fs::read_to_string(run.config()).unwrap();
    assert!(cfg.contains(&h.p("b.iso").display().to_string()), "{cfg}");
    drop(_lock);
}

#[test]
fn live_and_config_change_both_and_a_locked_tray_changes_neither() {
    let h = Home::new("both");
    let before = h.definition();
    let mut events = crate::events::EventReader::from_end(&h.conn.paths().events_log());
    let (lock, helper) = fake_running(
        &h,
        "{\"error\":{\"class\":\"DeviceLocked\",\"desc\":\"the guest has locked the tray of `sdb`; use force to take the medium out anyway\"},\"id\":1}\n",
    );
    let e = change_media(&h.conn, "m", "sdb", MediaAction::Eject, false, BOTH).unwrap_err();
    assert!(
        matches!(&e, MediaError::Locked { name, target } if name == "m" && target == "sdb"),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        "the guest has locked the tray of drive 'sdb' of domain 'm'"
    );
    assert!(helper.join().unwrap().contains("\"execute\":\"eject\""));
    assert_eq!(h.source(false, "sdb"), Some(h.p("a.iso")));
    assert_eq!(h.definition(), before);
    drop(lock);

    // Any other refusal of the helper is no lock: it stays the driver's error.
    let (lock, helper) = fake_running(
        &h,
        "{\"error\":{\"class\":\"GenericError\",\"desc\":\"sdb: not readable\"},\"id\":1}\n",
    );
    let e = change_media(&h.conn, "m", "sdb", MediaAction::Eject, false, BOTH).unwrap_err();
    assert!(
        matches!(
            &e,
            MediaError::Driver(DriverError::Control {
                source: crate::control::ControlError::Refused(_),
                ..
            })
        ),
        "{e:?}"
    );
    helper.join().unwrap();
    drop(lock);
    assert!(events.poll().is_empty(), "a refused change is no event");

    let (lock, helper) = fake_running(&h, "{\"id\":1,\"return\":{}}\n");
    change_media(&h.conn, "m", "sdb", MediaAction::Eject, true, BOTH).unwrap();
    assert!(helper.join().unwrap().contains("\"force\":true"));
    assert_eq!(h.source(false, "sdb"), None);
    assert_eq!(h.source(true, "sdb"), None);
    drop(lock);
    // One disk-change for the change of both documents: the running machine's (the new
    // definition has its lifecycle event, as any other).
    let lines: Vec<String> = events
        .poll()
        .iter()
        .filter(|e| e.kind == crate::state::EventKind::DiskChange)
        .map(|e| e.virsh_line())
        .collect();
    assert_eq!(
        lines,
        [format!(
            "event 'disk-change' for domain 'm' disk sdb: {} -> <null>: changed",
            h.p("a.iso").display()
        )]
    );
}

#[test]
fn a_change_of_the_definition_alone_is_announced_as_such() {
    let h = Home::new("cfgevent");
    let mut events = crate::events::EventReader::from_end(&h.conn.paths().events_log());
    h.change("sda", MediaAction::Insert(h.p("b.iso")), CURRENT)
        .unwrap();
    // Updating an empty drive to empty changes nothing, and says nothing.
    h.change("sda", MediaAction::Eject, CURRENT).unwrap();
    h.change("sda", MediaAction::Update(None), CURRENT).unwrap();
    let got: Vec<(String, String)> = events
        .poll()
        .into_iter()
        .filter(|e| e.kind == crate::state::EventKind::DiskChange)
        .map(|e| (e.detail.clone(), e.virsh_line()))
        .collect();
    let b = h.p("b.iso").display().to_string();
    assert_eq!(
        got,
        [
            (
                "config".to_owned(),
                format!("event 'disk-change' for domain 'm' disk sda: <null> -> {b}: config")
            ),
            (
                "config".to_owned(),
                format!("event 'disk-change' for domain 'm' disk sda: {b} -> <null>: config")
            ),
        ]
    );
}
