//! The CD-ROM tests' media are what the tests take them for, checked on the host with xorriso
//! before any boot relies on them: the El Torito ISO boots only as a CD (a no-emulation BIOS
//! boot image, and a system area of zeros: no MBR boot signature, no partition table, no GPT,
//! so no firmware can start it as a hard disk), and each data ISO holds its volume id and files,
//! whose content read back through the ISO 9660 tree has the sum the tests wait for.
//! (That SeaBIOS boots the El Torito ISO from a SCSI CD-ROM drive is `firmware_qemu`'s.)

use std::path::Path;
use std::process::Command;
use vireo_rig::fixtures::{self, CdMedia};

fn media() -> CdMedia {
    fixtures::cd_media().unwrap_or_else(|e| panic!("building the CD media: {e}"))
}

/// xorriso's report on `iso` (its results go to stdout; its notes, to stderr, are dropped).
fn xorriso(iso: &Path, args: &[&str]) -> String {
    let out = Command::new("xorriso")
        .arg("-indev")
        .arg(iso)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("xorriso: {e}"));
    assert!(
        out.status.success(),
        "xorriso -indev {} {args:?}: {}",
        iso.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The bytes of file `path` on `iso`, read through its ISO 9660 tree.
fn extract(iso: &Path, path: &str) -> Vec<u8> {
    let dir = vireo_rig::report::log_dir().join("cd-media");
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join(path.rsplit('/').next().unwrap_or("file"));
    let _ = std::fs::remove_file(&out);
    xorriso(
        iso,
        &[
            "-osirrox",
            "on",
            "-extract",
            path,
            &out.display().to_string(),
        ],
    );
    let data = std::fs::read(&out).unwrap_or_else(|e| panic!("{path} from {}: {e}", iso.display()));
    let _ = std::fs::remove_file(&out);
    data
}

/// The fields of the report line that starts with `label` ("El Torito boot img :").
fn report_fields<'a>(report: &'a str, label: &str) -> Vec<Vec<&'a str>> {
    report
        .lines()
        .filter_map(|l| l.strip_prefix(label))
        .map(|rest| rest.split_whitespace().collect())
        .collect()
}

/// What makes an ISO bootable as a hard disk, found in its system area (the first 16 sectors
/// of 2048 bytes, where a hybrid ISO has its MBR, partition table and GPT).
fn hard_disk_boot_parts(iso: &Path) -> Vec<&'static str> {
    let data = std::fs::read(iso).unwrap();
    let area = &data[..16 * 2048];
    let mut found = Vec::new();
    if area[510..512] == [0x55, 0xaa] {
        found.push("an MBR boot signature");
    }
    if area[446..510].iter().any(|&b| b != 0) {
        found.push("MBR partition entries");
    }
    if &area[512..520] == b"EFI PART" {
        found.push("a GPT header");
    }
    if area.iter().any(|&b| b != 0) {
        found.push("data in the system area");
    }
    found
}

#[test]
fn the_el_torito_iso_has_a_cd_boot_image_and_no_mbr_or_partition_table() {
    let m = media();
    assert_eq!(hard_disk_boot_parts(&m.eltorito.path), [] as [&str; 0]);
    // The check finds them where they are: the grub-mkrescue ISO is hybrid.
    let hybrid = fixtures::boot_iso(fixtures::MenuTimeout::WaitForKey)
        .unwrap_or_else(|e| panic!("building the boot ISO: {e}"));
    let found = hard_disk_boot_parts(&hybrid.path);
    assert!(
        found.contains(&"an MBR boot signature") && found.contains(&"MBR partition entries"),
        "{found:?}"
    );
    let report = xorriso(&m.eltorito.path, &["-report_el_torito", "plain"]);
    // N, platform, bootable, emulation, load segment, ...
    let images = report_fields(&report, "El Torito boot img :");
    assert_eq!(images.len(), 1, "one boot image:\n{report}");
    assert_eq!(images[0][..4], ["1", "BIOS", "y", "none"], "{report}");
    assert_eq!(
        report_fields(&report, "El Torito img path :"),
        [["1", "/boot/eltorito.img"]],
        "{report}"
    );
    assert!(report.contains("boot-info-table"), "{report}");
    let marker = extract(&m.eltorito.path, "/vireo/eltorito.txt");
    assert_eq!(
        String::from_utf8_lossy(&marker).trim_end(),
        m.eltorito.marker
    );
}

#[test]
fn each_data_iso_has_its_volume_id_and_a_file_with_the_known_sum() {
    let m = media();
    assert_ne!(m.data[0].volume_id, m.data[1].volume_id);
    assert_ne!(m.data[0].sha256, m.data[1].sha256);
    assert_ne!(m.data[0].size, m.data[1].size);
    let scratch = vireo_rig::report::log_dir().join("cd-media");
    std::fs::create_dir_all(&scratch).unwrap();
    for d in &m.data {
        let info = xorriso(&d.path, &["-pvd_info", "-report_el_torito", "plain"]);
        assert!(
            info.lines()
                .any(|l| l.split_once(':').map(|(k, v)| (k.trim(), v.trim()))
                    == Some(("Volume Id", d.volume_id))),
            "{info}"
        );
        assert!(
            !info.contains("El Torito"),
            "a data ISO is not bootable:\n{info}"
        );
        let files = xorriso(&d.path, &["-find", "/", "-type", "f"]);
        let mut files: Vec<&str> = files.lines().map(|l| l.trim_matches('\'')).collect();
        files.sort_unstable();
        let want = format!("/{}", d.file);
        assert_eq!(files, ["/README.txt", want.as_str()]);
        // Hashed by the same tool as the fixture's sums, from a copy read off the ISO.
        let data = extract(&d.path, &want);
        assert_eq!(data.len(), d.size, "{}", d.file);
        let copy = scratch.join(d.file);
        std::fs::write(&copy, &data).unwrap();
        assert_eq!(fixtures::sha256_of(&copy).unwrap(), d.sha256, "{}", d.file);
        let _ = std::fs::remove_file(&copy);
    }
}
