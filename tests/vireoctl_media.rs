//! `vireoctl change-media` and `domblklist` on a machine that is off (no KVM needed): the
//! definition changes as virsh's would, bad input is one line and changes nothing, and the
//! drive list prints in virsh's layout (tests/golden/media, with @ROOT@ for the test's
//! directory and @RULE@ for the rule under the header; `VIREO_GOLDEN_WRITE=1` rewrites them).
//!
//! Changes to a running machine (--live, --current while it runs, the guest's own eject, a
//! locked tray and --force) need a helper with the CD-ROM drive: the rig covers them.

mod vireoctl_support;

use std::path::Path;
use vireoctl_support::Home;

/// `m`: an empty drive sda, drive sdb with a.iso, and a disk vda.
fn machine(h: &Home) {
    for f in ["a.iso", "b.iso", "k", "disk.img"] {
        h.file(f, b"x");
    }
    let devices = format!(
        "    <disk type='file' device='cdrom'><driver name='qemu' type='raw'/><target dev='sda' bus='scsi'/><readonly/></disk>\n    \
         <disk type='file' device='cdrom'><driver name='qemu' type='raw'/><source file='{0}/a.iso'/><target dev='sdb' bus='scsi'/><readonly/></disk>\n    \
         <disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='{0}/disk.img'/><target dev='vda' bus='virtio'/></disk>\n",
        h.root.display()
    );
    let xml = vireoctl_support::domain_xml(
        "m",
        &h.root.join("k"),
        &devices,
        ("destroy", "restart", "destroy"),
    );
    let file = h.file("m.xml", xml.as_bytes());
    h.ok(&["define", file.to_str().unwrap()]);
}

/// Compares `got` (with the test's directory as @ROOT@) with tests/golden/media/`name`. The
/// rule line's length follows the directory's, so it is checked here (virsh's: two more than
/// the widest row) and kept as @RULE@ in the file.
fn golden(h: &Home, name: &str, got: &str) {
    let widest = got
        .lines()
        .filter(|l| !l.starts_with('-'))
        .map(str::len)
        .max();
    let rule = got
        .lines()
        .find(|l| l.starts_with('-'))
        .expect("a rule line");
    assert!(rule.bytes().all(|b| b == b'-'), "{got}");
    assert_eq!(Some(rule.len()), widest.map(|w| w + 2), "{got}");
    let got = got
        .replace(rule, "@RULE@")
        .replace(&h.root.display().to_string(), "@ROOT@");
    let file = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden/media")
        .join(name);
    if std::env::var_os("VIREO_GOLDEN_WRITE").is_some_and(|v| v == "1") {
        std::fs::write(&file, &got).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    assert_eq!(got, want, "{} differs", file.display());
}

#[test]
fn domblklist_prints_virshs_table() {
    let h = Home::new("blk");
    machine(&h);
    golden(&h, "domblklist.txt", &h.ok(&["domblklist", "m"]));
    golden(
        &h,
        "domblklist-details.txt",
        &h.ok(&["domblklist", "m", "--details"]),
    );
    assert_eq!(
        h.ok(&["domblklist", "m", "--inactive"]),
        h.ok(&["domblklist", "m"])
    );
    let (code, _, err) = h.run(&["domblklist", "nope"]);
    assert_eq!(
        (code, err.as_str()),
        (3, "error: domain 'nope' not found\n")
    );
}

#[test]
fn change_media_changes_the_definition_of_a_machine_that_is_off() {
    let h = Home::new("chm");
    machine(&h);
    let root = h.root.display().to_string();
    let b = format!("{root}/b.iso");
    assert_eq!(
        h.ok(&["change-media", "m", "sda", &b, "--insert"]),
        "Successfully inserted media.\n"
    );
    assert_eq!(
        h.ok(&["change-media", "m", "sdb", "--eject", "--config"]),
        "Successfully ejected media.\n"
    );
    golden(&h, "after-change.txt", &h.ok(&["domblklist", "m"]));
    let xml = h.ok(&["dumpxml", "m"]);
    assert!(xml.contains(&format!("<source file='{b}'/>")), "{xml}");
    assert!(!xml.contains("a.iso"), "{xml}");
    // --update (the default) replaces; without a path it ejects. A relative path is taken
    // from the working directory.
    let out = h
        .cmd()
        .current_dir(&h.root)
        .args(["change-media", "m", "sda", "a.iso"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "Successfully updated media.\n"
    );
    assert!(h
        .ok(&["dumpxml", "m"])
        .contains(&format!("<source file='{root}/a.iso'/>")));
    assert_eq!(
        h.ok(&["change-media", "m", "sda", "--update", "--current"]),
        "Successfully ejected media.\n"
    );
    assert!(!h.ok(&["dumpxml", "m"]).contains("a.iso"));
}

#[test]
fn bad_input_is_one_line_and_the_definition_stays() {
    let h = Home::new("chmbad");
    machine(&h);
    let root = h.root.display().to_string();
    let before = h.ok(&["dumpxml", "m"]);
    let none = format!("{root}/none.iso");
    let b = format!("{root}/b.iso");
    let cases: Vec<(Vec<&str>, i32, String)> = vec![
        (
            vec!["sda", &none, "--insert"],
            4,
            format!("{none}: No such file or directory"),
        ),
        (
            vec!["sda", &root, "--insert"],
            4,
            format!("{root}: is a directory, not a CD-ROM image"),
        ),
        (
            vec!["sdz", &b, "--insert"],
            3,
            "domain 'm' has no disk with target 'sdz'".into(),
        ),
        (
            vec!["vda", "--eject"],
            4,
            "disk 'vda' of domain 'm' is not a CD-ROM drive: only a CD-ROM's medium can be changed"
                .into(),
        ),
        (
            vec!["sdb", &b, "--insert"],
            5,
            format!("drive 'sdb' already holds {root}/a.iso: eject it first, or use --update"),
        ),
        (
            vec!["sda", "--eject"],
            5,
            "drive 'sda' is empty: there is nothing to eject".into(),
        ),
        (
            vec!["sdb", "--eject", "--live"],
            5,
            "domain 'm' is not running; use --config to change its definition".into(),
        ),
        (
            vec!["sdb", "--eject", "--live", "--config"],
            5,
            "domain 'm' is not running; use --config to change its definition".into(),
        ),
    ];
    for (args, code, msg) in cases {
        let mut all = vec!["change-media", "m"];
        all.extend(&args);
        let (got_code, out, err) = h.run(&all);
        assert_eq!(
            (got_code, out.as_str(), err.as_str()),
            (code, "", format!("error: {msg}\n").as_str()),
            "{args:?}"
        );
        assert_eq!(
            h.ok(&["dumpxml", "m"]),
            before,
            "{args:?} changed the definition"
        );
    }
    // Usage errors are clap's: an insert without a path, an eject with one, --current with --live.
    for args in [
        vec!["change-media", "m", "sda", "--insert"],
        vec!["change-media", "m", "sda", &b, "--eject"],
        vec!["change-media", "m", "sda", "--eject", "--insert", &b],
        vec!["change-media", "m", "sdb", "--eject", "--live", "--current"],
    ] {
        assert_eq!(h.run(&args).0, 2, "{args:?}");
    }
    assert_eq!(h.ok(&["dumpxml", "m"]), before);
}

#[test]
fn a_sata_cdrom_is_refused_at_start_with_the_way_out() {
    let h = Home::new("chmsata");
    let iso = h.file("a.iso", b"x");
    let k = h.file("k", b"x");
    let devices = format!(
        "    <disk type='file' device='cdrom'><source file='{}'/><target dev='sdc' bus='sata'/><readonly/></disk>\n",
        iso.display()
    );
    let xml = vireoctl_support::domain_xml("old", &k, &devices, ("destroy", "restart", "destroy"));
    let file = h.file("old.xml", xml.as_bytes());
    h.ok(&["define", file.to_str().unwrap()]);
    let (code, _, err) = h.run(&["start", "old"]);
    assert_eq!(
        (code, err.as_str()),
        (
            4,
            "error: devices/disk[1]/target@bus='sata': a CD-ROM drive on the sata bus is not \
             supported; Vireo's CD-ROM drives are on bus='scsi' (virtio-scsi): change the target \
             to <target dev='sda' bus='scsi'/> and remove its <address> with 'vireoctl edit old'\n"
        )
    );
}
