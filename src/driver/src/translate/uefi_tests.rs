//! UEFI boot: autoselection, the variable store and its template, and each refusal line.

use super::firmware_tests::doc;
use super::tests::Fixture;
use super::*;
use vireo_vmm_api::config::{BootDevice, FirmwareConfig, Machine};

/// The sizes of OVMF's 4 MiB build: the code and the variable store together fill 4 MiB.
const CODE_4M: usize = 0x37c000;
const VARS_4M: usize = 0x84000;
/// The 2 MiB build's.
const CODE_2M: usize = 0x1e0000;
const VARS_2M: usize = 0x20000;

/// A flash half of `size` bytes: a firmware volume header's signature where check_pair looks.
fn flash(path: &Path, size: usize) {
    let mut b = vec![0u8; size];
    b[0x28..0x2c].copy_from_slice(b"_FVH");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, b).unwrap();
}

const SECURE: &str = "Secure Boot needs SMM (System Management Mode), which the Vireo backend \
                      does not have";

impl Fixture {
    fn ovmf(&self) -> PathBuf {
        self.dir.join("ovmf")
    }
    /// Debian's 4 MiB OVMF in the fixture's OVMF directory.
    fn ovmf_4m(&self) {
        flash(&self.ovmf().join("OVMF_CODE_4M.fd"), CODE_4M);
        flash(&self.ovmf().join("OVMF_VARS_4M.fd"), VARS_4M);
    }
    fn store(&self) -> PathBuf {
        self.dir.join("nvram/t_VARS.fd")
    }
    /// A UEFI machine's firmware config, checked by the VMM as it will be after the start
    /// made the store (the template stands in for a store still to make), and the copy.
    fn uefi(&self, xml: &str) -> (FirmwareConfig, Option<NvramCopy>) {
        let t = self
            .run(xml)
            .unwrap_or_else(|e| panic!("refused: {e}\n{xml}"));
        let mut checked = t.config.clone();
        if let (Some(c), Some(fw)) = (&t.nvram_from_template, checked.firmware.as_mut()) {
            fw.nvram = Some(c.template.clone());
        }
        checked
            .validate()
            .unwrap_or_else(|e| panic!("the VMM would refuse: {e}\n{xml}"));
        assert_eq!(t.config.machine, Machine::Pc);
        (
            t.config.firmware.expect("a firmware boot"),
            t.nvram_from_template,
        )
    }
}

fn efi(os: &str, devices: &str) -> String {
    doc(os, devices).replace("<os>", "<os firmware='efi'>")
}

fn pflash(code: &Path, os: &str) -> String {
    doc(
        &format!(
            "<loader readonly='yes' type='pflash'>{}</loader>{os}",
            code.display()
        ),
        "",
    )
}

#[test]
fn firmware_efi_picks_ovmf_and_a_store_of_the_machines_own() {
    let f = Fixture::new();
    f.ovmf_4m();
    // The 2 MiB build is there too: the 4 MiB one comes first.
    flash(&f.ovmf().join("OVMF_CODE.fd"), CODE_2M);
    flash(&f.ovmf().join("OVMF_VARS.fd"), VARS_2M);
    let screen = "<graphics type='vnc'><listen type='none'/></graphics>";
    let devices = format!(
        "<disk type='file' device='disk'><source file='{}'/><target dev='vda' bus='virtio'/></disk>{screen}",
        f.p("disk.img")
    );
    let (fw, copy) = f.uefi(&efi("<bootmenu enable='yes' timeout='3000'/>", &devices));
    assert_eq!(fw.loader, f.ovmf().join("OVMF_CODE_4M.fd"));
    assert_eq!(fw.nvram, Some(f.store()));
    assert_eq!(fw.vga_rom, None, "OVMF drives the VGA itself");
    let ramfb = format!("{devices}<video><model type='ramfb'/></video>");
    let (ramfb_fw, _) = f.uefi(&efi("", &ramfb));
    assert_eq!(ramfb_fw.vga_rom, None, "OVMF drives ramfb itself");
    // The boot order and the menu work as with the BIOS: OVMF reads the same files.
    assert_eq!(fw.boot_order, [BootDevice::Disk { index: 0 }]);
    assert_eq!(fw.boot_menu_timeout_ms, Some(3000));
    assert_eq!(
        fw.smbios.uuid.as_deref(),
        Some("6695eb01-f6a4-4304-aaa9-f2b1b2a1c2d3")
    );
    assert_eq!(
        copy,
        Some(NvramCopy {
            template: f.ovmf().join("OVMF_VARS_4M.fd"),
            store: f.store(),
        })
    );
    assert!(
        !f.dir.join("nvram").exists(),
        "translation writes nothing, the start makes the store"
    );
    // Without the 4 MiB build, the 2 MiB one.
    std::fs::remove_file(f.ovmf().join("OVMF_VARS_4M.fd")).unwrap();
    let (fw, copy) = f.uefi(&efi("", ""));
    assert_eq!(fw.loader, f.ovmf().join("OVMF_CODE.fd"));
    assert_eq!(
        copy.map(|c| c.template),
        Some(f.ovmf().join("OVMF_VARS.fd"))
    );
}

#[test]
fn an_existing_store_is_used_as_it_is() {
    let f = Fixture::new();
    f.ovmf_4m();
    flash(&f.store(), VARS_4M);
    let (fw, copy) = f.uefi(&efi("", ""));
    assert_eq!(fw.nvram, Some(f.store()));
    assert_eq!(copy, None, "nothing to make");
    // One of another build does not go with the code: refused before the VMM sees it.
    flash(&f.store(), VARS_2M);
    let e = f.refused(&efi("", ""));
    assert!(
        e.starts_with(&format!(
            "os@firmware='efi': {}: this variable store (128 KiB) does not go with the code in \
             {} (3568 KiB)",
            f.store().display(),
            f.ovmf().join("OVMF_CODE_4M.fd").display()
        )),
        "{e}"
    );
    assert!(!e.contains('\n'), "{e}");
}

#[test]
fn the_document_may_name_the_code_the_store_and_the_template() {
    let f = Fixture::new();
    let mine = f.dir.join("mine");
    flash(&mine.join("OVMF_CODE_4M.fd"), CODE_4M);
    flash(&mine.join("OVMF_VARS_4M.fd"), VARS_4M);
    flash(&mine.join("template.fd"), VARS_4M);
    let code = mine.join("OVMF_CODE_4M.fd");
    // The code named, its template beside it; no OVMF in the searched directory needed.
    let (fw, copy) = f.uefi(&pflash(&code, ""));
    assert_eq!(fw.loader, code);
    assert_eq!(fw.nvram, Some(f.store()));
    assert_eq!(copy.map(|c| c.template), Some(mine.join("OVMF_VARS_4M.fd")));
    // firmware='efi' beside a loader path: the path is the code.
    let (fw, _) = f.uefi(&efi(&format!("<loader>{}</loader>", code.display()), ""));
    assert_eq!(fw.loader, code);
    // The store and the template named.
    let store = f.dir.join("stores/t.fd");
    let os = format!(
        "<nvram template='{}'>{}</nvram>",
        mine.join("template.fd").display(),
        store.display()
    );
    let (fw, copy) = f.uefi(&pflash(&code, &os));
    assert_eq!(fw.nvram, Some(store.clone()));
    assert_eq!(
        copy,
        Some(NvramCopy {
            template: mine.join("template.fd"),
            store: store.clone(),
        })
    );
    // A store that is there needs no template, not even one that is missing.
    flash(&store, VARS_4M);
    let os = format!(
        "<nvram template='{}'>{}</nvram>",
        f.p("none.fd"),
        store.display()
    );
    assert_eq!(f.uefi(&pflash(&code, &os)).1, None);
}

#[test]
fn refusals_name_the_file_and_the_element() {
    let f = Fixture::new();
    f.ovmf_4m();
    let code = f.ovmf().join("OVMF_CODE_4M.fd");
    let c = code.display();
    let bios = f.dir.join("fw/bios-256k.bin");
    let lonely = f.dir.join("lonely/OVMF_CODE_4M.fd");
    flash(&lonely, CODE_4M);
    let cases: Vec<(String, String)> = vec![
        (
            pflash(&lonely, ""),
            format!(
                "os/loader: {}: the variable store template of its build, {}, is not there \
                 (name one in os/nvram@template)",
                lonely.display(),
                f.dir.join("lonely/OVMF_VARS_4M.fd").display()
            ),
        ),
        (
            pflash(Path::new("OVMF_CODE.fd"), ""),
            "os/loader: OVMF_CODE.fd: must be an absolute path".into(),
        ),
        (
            pflash(
                &bios,
                &format!(
                    "<nvram template='{}'/>",
                    f.ovmf().join("OVMF_VARS_4M.fd").display()
                ),
            ),
            format!(
                "os/loader: {}: not a UEFI flash image (no firmware volume header); UEFI needs \
                 OVMF's split images, e.g. /usr/share/OVMF/OVMF_CODE_4M.fd with a copy of \
                 OVMF_VARS_4M.fd",
                bios.display()
            ),
        ),
        (
            pflash(&bios, ""),
            format!(
                "os/loader: {}: cannot tell which variable store template goes with it (name \
                 one in os/nvram@template)",
                bios.display()
            ),
        ),
        (
            efi("<nvram>t_VARS.fd</nvram>", ""),
            "os/nvram: t_VARS.fd: must be an absolute path".into(),
        ),
        (
            efi(&format!("<nvram>{}</nvram>", f.p("fw")), ""),
            format!("os/nvram: {}: not a regular file", f.p("fw")),
        ),
        (
            efi(&format!("<nvram template='{}'/>", f.p("none.fd")), ""),
            format!(
                "os/nvram@template: {}: No such file or directory",
                f.p("none.fd")
            ),
        ),
        (
            efi(&format!("<nvram template='{}'/>", bios.display()), ""),
            format!(
                "os/nvram@template: {}: not a UEFI flash image (no firmware volume header); UEFI \
                 needs OVMF's split images, e.g. /usr/share/OVMF/OVMF_CODE_4M.fd with a copy of \
                 OVMF_VARS_4M.fd",
                bios.display()
            ),
        ),
        (
            efi(&format!("<loader readonly='no'>{c}</loader>"), ""),
            "os/loader@readonly='no': the UEFI code is always mapped read-only; what the \
             firmware writes goes in its variable store, os/nvram (use readonly='yes' or leave \
             it out)"
                .into(),
        ),
        (
            efi(&format!("<loader secure='yes'>{c}</loader>"), ""),
            format!("os/loader@secure='yes': {SECURE} (use secure='no' or leave it out)"),
        ),
        (
            efi(
                "<firmware><feature enabled='yes' name='secure-boot'/></firmware>",
                "",
            ),
            format!("os/firmware/feature[1]: {SECURE}"),
        ),
        (
            pflash(&f.ovmf().join("OVMF_CODE_4M.secboot.fd"), ""),
            format!(
                "os/loader: {}: a Secure Boot build of OVMF; {SECURE} (use \
                 /usr/share/OVMF/OVMF_CODE_4M.fd)",
                f.ovmf().join("OVMF_CODE_4M.secboot.fd").display()
            ),
        ),
        (
            pflash(&f.ovmf().join("OVMF_CODE_4M.ms.fd"), ""),
            format!(
                "os/loader: {}: a Secure Boot build of OVMF; {SECURE} (use \
                 /usr/share/OVMF/OVMF_CODE_4M.fd)",
                f.ovmf().join("OVMF_CODE_4M.ms.fd").display()
            ),
        ),
        (
            doc("<loader type='pflash'>/x.fd</loader>", "").replace("<os>", "<os firmware='bios'>"),
            "os/loader@type='pflash': a pflash loader is UEFI firmware, and os@firmware='bios' \
             asks for a BIOS (use firmware='efi', or a BIOS image with type='rom')"
                .into(),
        ),
        (
            efi(
                &format!("<loader type='rom'>{}</loader>", bios.display()),
                "",
            ),
            "os/loader@type='rom': a ROM loader is a BIOS image, and os@firmware='efi' asks for \
             UEFI (use type='pflash', or leave out os/loader to let Vireo pick OVMF)"
                .into(),
        ),
        (
            efi("<nvram format='qcow2'/>", ""),
            "os/nvram@format='qcow2': not supported (OVMF's raw images only)".into(),
        ),
    ];
    for (xml, want) in cases {
        assert_eq!(f.refused(&xml), want, "{xml}");
    }
    // The host's OVMF is never looked at: without the fixture's, autoselection finds none.
    let g = Fixture::new();
    assert_eq!(
        g.refused(&efi("", "")),
        format!(
            "os@firmware='efi': no UEFI firmware: OVMF_CODE_4M.fd or OVMF_CODE.fd with its \
             OVMF_VARS file is not in {} (install the ovmf package, or name a code image in \
             os/loader)",
            g.ovmf().display()
        )
    );
}

#[test]
fn uefi_needs_the_pc_machine() {
    let f = Fixture::new();
    f.ovmf_4m();
    let want = "UEFI firmware needs the pc machine: OVMF finds its disks and screen on its PCI \
                bus (use <type machine='pc'>)";
    for machine in ["", " machine='vireo'", " machine='microvm'"] {
        let xml = efi("", "").replace(" machine='pc'", machine);
        assert_eq!(
            f.refused(&xml),
            format!("os@firmware='efi': {want}"),
            "{xml}"
        );
        let xml = pflash(&f.ovmf().join("OVMF_CODE_4M.fd"), "").replace(" machine='pc'", machine);
        assert_eq!(
            f.refused(&xml),
            format!("os/loader@type='pflash': {want}"),
            "{xml}"
        );
    }
    // Plans check it too, without a file.
    let d = vireo_domain::Domain::parse(&efi("", "").replace(" machine='pc'", "")).unwrap();
    assert_eq!(
        firmware::check_boot_order(&d).unwrap_err().to_string(),
        format!("os@firmware='efi': {want}")
    );
    let d = vireo_domain::Domain::parse(&efi("", "")).unwrap();
    assert_eq!(firmware::check_boot_order(&d), Ok(()));
}

#[test]
fn a_direct_kernel_boot_has_no_uefi() {
    let f = Fixture::new();
    f.ovmf_4m();
    let xml = f
        .xml("kvm", "", "", "")
        .replace("<os>", "<os firmware='efi'>")
        .replace("<type arch='x86_64'>", "<type arch='x86_64' machine='pc'>");
    assert_eq!(
        f.refused(&xml),
        "os@firmware='efi': a kernel in os/kernel is booted directly, without firmware (leave \
         out the UEFI firmware or os/kernel)"
    );
}
