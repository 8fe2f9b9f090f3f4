//! UEFI firmware boot, as libvirt's QEMU driver does it: OVMF's flash image comes in two
//! halves, the code (read-only, shared by every machine) and the variable store (one per
//! machine, written by the guest), and the machine boots with both.
//!
//! - `<os firmware='efi'>` selects UEFI and lets Vireo pick the code: OVMF_CODE_4M.fd, else
//!   OVMF_CODE.fd, from Debian's `ovmf` package; `<loader type='pflash'>PATH</loader>` names
//!   the code itself. `firmware='bios'`, `type='rom'` or neither keep the BIOS.
//! - The store is `<nvram>PATH</nvram>`, or Vireo's own `NAME_VARS.fd` in its nvram directory
//!   (libvirt's per-machine file). A store that is not there yet is made on the first start
//!   from its template: `<nvram template='T'>`, else the VARS file of the code's build beside
//!   it. Translation only says so ([`super::NvramCopy`]): it never writes a file, because it
//!   also serves checks and plans.
//! - UEFI runs on the pc machine only: OVMF finds its devices on PCI. Secure Boot is refused:
//!   OVMF's Secure Boot builds need SMM, which the Vireo backend does not have.

use super::{check_file, io_message, refuse, TranslateError};
use std::path::{Path, PathBuf};
use vireo_domain::{Element, Firmware, Os};
use vireo_vmm_api::config::Machine;
use vireo_vmm_api::flash::{self, FlashError};

/// Where Debian's `ovmf` package puts its images.
pub const OVMF_DIR: &str = "/usr/share/OVMF";
/// The code images firmware autoselection takes, in this order: the 4 MiB build first, the one
/// whose store has room for today's variables (and the one Debian's libvirt prefers).
pub const CODE_NAMES: &[&str] = &["OVMF_CODE_4M.fd", "OVMF_CODE.fd"];

/// The refusal of every Secure Boot request, one line.
const NO_SECURE_BOOT: &str = "Secure Boot needs SMM (System Management Mode), which the Vireo \
                              backend does not have";

/// The directories searched for OVMF: `$VIREO_OVMF_DIR` when set (tests, or OVMF built
/// elsewhere), else Debian's.
pub fn search_dirs() -> Vec<PathBuf> {
    match std::env::var_os("VIREO_OVMF_DIR").filter(|d| !d.is_empty()) {
        Some(d) => vec![PathBuf::from(d)],
        None => vec![PathBuf::from(OVMF_DIR)],
    }
}

/// The code images found in `dirs`, in autoselection order.
fn codes(dirs: &[PathBuf]) -> impl Iterator<Item = PathBuf> + '_ {
    CODE_NAMES
        .iter()
        .flat_map(move |n| dirs.iter().map(move |d| d.join(n)))
        .filter(|p| p.is_file())
}

/// The code firmware autoselection boots, with the template of its store: the first of
/// [`CODE_NAMES`] in `dirs` whose VARS file is beside it.
pub fn default_pair(dirs: &[PathBuf]) -> Option<(PathBuf, PathBuf)> {
    codes(dirs).find_map(|code| {
        let vars = vars_for(&code).filter(|v| v.is_file())?;
        Some((code, vars))
    })
}

/// The VARS file of `code`'s build, beside it (OVMF_CODE_4M.fd -> OVMF_VARS_4M.fd), if its
/// name tells.
fn vars_for(code: &Path) -> Option<PathBuf> {
    let name = code.file_name()?.to_str()?;
    let (before, after) = name.split_once("CODE")?;
    Some(code.with_file_name(format!("{before}VARS{after}")))
}

/// A file name of one of OVMF's Secure Boot builds (`secboot`, or `.ms.` with Microsoft's
/// keys enrolled, which goes with them).
fn secure_boot_build(file: &Path) -> bool {
    file.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.contains("secboot") || n.contains(".ms."))
}

/// How a document chooses its firmware.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Kind {
    Bios,
    /// UEFI, asked for at `at` (`os@firmware='efi'` or `os/loader@type='pflash'`), the place
    /// its refusals name.
    Uefi {
        at: String,
    },
}

/// Reads `os@firmware` and `os/loader@type`: BIOS or UEFI. Refuses values that are neither,
/// the two contradicting each other, and what belongs to UEFI in a document that is not.
pub(super) fn kind(os: &Os<&Element>) -> Result<Kind, TranslateError> {
    let loader = os.element().child("loader");
    if loader.is_some_and(|l| l.attr("secure").as_deref() == Some("yes")) {
        return refuse(
            "os/loader@secure='yes'",
            format!("{NO_SECURE_BOOT} (use secure='no' or leave it out)"),
        );
    }
    let loader_type = loader.and_then(|l| l.attr("type").map(|t| t.into_owned()));
    let firmware = os.firmware();
    match (&firmware, loader_type.as_deref()) {
        (Some(Firmware::Other(v)), _) => refuse(
            format!("os@firmware='{v}'"),
            "not supported (use bios, or efi for UEFI)",
        ),
        (_, Some(t)) if t != "rom" && t != "pflash" => refuse(
            format!("os/loader@type='{t}'"),
            "not supported (use rom for a BIOS image, pflash for UEFI)",
        ),
        (Some(Firmware::Bios), Some("pflash")) => refuse(
            "os/loader@type='pflash'",
            "a pflash loader is UEFI firmware, and os@firmware='bios' asks for a BIOS (use \
             firmware='efi', or a BIOS image with type='rom')",
        ),
        (Some(Firmware::Efi), Some("rom")) => refuse(
            "os/loader@type='rom'",
            "a ROM loader is a BIOS image, and os@firmware='efi' asks for UEFI (use \
             type='pflash', or leave out os/loader to let Vireo pick OVMF)",
        ),
        (Some(Firmware::Efi), _) => Ok(Kind::Uefi {
            at: "os@firmware='efi'".into(),
        }),
        (_, Some("pflash")) => Ok(Kind::Uefi {
            at: "os/loader@type='pflash'".into(),
        }),
        _ => {
            if os.element().child("nvram").is_some() {
                return refuse(
                    "os/nvram",
                    "a variable store belongs to UEFI firmware (os firmware='efi', or a \
                     loader with type='pflash')",
                );
            }
            Ok(Kind::Bios)
        }
    }
}

/// The checks of a UEFI document that need no file: the machine, Secure Boot, a writable or
/// stateless loader, formats and firmware features. Plans run them; [`os`] runs them first.
pub(super) fn check_document(
    os: &Os<&Element>,
    at: &str,
    machine: Machine,
) -> Result<(), TranslateError> {
    if machine != Machine::Pc {
        return refuse(
            at,
            "UEFI firmware needs the pc machine: OVMF finds its disks and screen on its PCI \
             bus (use <type machine='pc'>)",
        );
    }
    if let Some(loader) = os.element().child("loader") {
        if loader.attr("readonly").as_deref() == Some("no") {
            return refuse(
                "os/loader@readonly='no'",
                "the UEFI code is always mapped read-only; what the firmware writes goes in \
                 its variable store, os/nvram (use readonly='yes' or leave it out)",
            );
        }
        if loader.attr("stateless").as_deref() == Some("yes") {
            return refuse(
                "os/loader@stateless='yes'",
                "UEFI firmware without a variable store is not supported (leave out stateless)",
            );
        }
        if let Some(f) = loader.attr("format").filter(|f| f != "raw") {
            return refuse(
                format!("os/loader@format='{f}'"),
                "not supported (OVMF's raw images only)",
            );
        }
        let code = loader.text();
        let code = Path::new(code.trim());
        if secure_boot_build(code) {
            return refuse(
                "os/loader",
                format!(
                    "{}: a Secure Boot build of OVMF; {NO_SECURE_BOOT} (use {}/{})",
                    code.display(),
                    OVMF_DIR,
                    CODE_NAMES[0]
                ),
            );
        }
    }
    if let Some(nvram) = os.element().child("nvram") {
        if let Some(f) = nvram.attr("format").filter(|f| f != "raw") {
            return refuse(
                format!("os/nvram@format='{f}'"),
                "not supported (OVMF's raw images only)",
            );
        }
        if let Some(t) = nvram.attr("type") {
            return refuse(
                format!("os/nvram@type='{t}'"),
                "not supported (write the store's path as the element's text)",
            );
        }
    }
    if let Some(fw) = os.element().child("firmware") {
        for (i, f) in fw.children_named("feature").enumerate() {
            let name = f.attr("name").map(|n| n.into_owned()).unwrap_or_default();
            let path = format!("os/firmware/feature[{}]", i + 1);
            match (name.as_str(), f.attr("enabled").as_deref()) {
                ("secure-boot" | "enrolled-keys", Some("no")) => {}
                ("secure-boot", _) => return refuse(path, NO_SECURE_BOOT),
                ("enrolled-keys", _) => {
                    return refuse(
                        path,
                        format!(
                            "enrolled keys are Secure Boot's; {NO_SECURE_BOOT} (use \
                             enabled='no')"
                        ),
                    )
                }
                _ => return refuse(format!("{path}@name='{name}'"), "not supported"),
            }
        }
    }
    Ok(())
}

/// The UEFI half of a firmware boot: the code, and the machine's variable store.
#[derive(Debug)]
pub(super) struct Uefi {
    pub code: PathBuf,
    pub store: PathBuf,
    /// The store is not there yet: the start makes it from this template.
    pub template: Option<PathBuf>,
}

/// Resolves the code, the store and (for a store still to make) its template, and checks
/// them as the VMM will. `name`: the machine's (its default store is named after it);
/// `ovmf_dirs`: where autoselection looks; `nvram_dir`: Vireo's directory of stores.
pub(super) fn os(
    os: &Os<&Element>,
    at: &str,
    machine: Machine,
    name: &str,
    ovmf_dirs: &[PathBuf],
    nvram_dir: &Path,
) -> Result<Uefi, TranslateError> {
    check_document(os, at, machine)?;
    let nvram = os.element().child("nvram");
    let store_text = nvram
        .map(|n| n.text().trim().to_owned())
        .filter(|s| !s.is_empty());
    let template_text = nvram
        .and_then(|n| n.attr("template").map(|t| t.trim().to_owned()))
        .filter(|t| !t.is_empty());
    let store = match &store_text {
        Some(s) if !Path::new(s).is_absolute() => {
            return refuse("os/nvram", format!("{s}: must be an absolute path"))
        }
        Some(s) => PathBuf::from(s),
        None => crate::paths::nvram_store(nvram_dir, name),
    };
    let store_exists = match std::fs::metadata(&store) {
        Ok(m) if m.is_file() => true,
        Ok(_) => {
            return refuse(
                "os/nvram",
                format!("{}: not a regular file", store.display()),
            )
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => {
            return refuse(
                "os/nvram",
                format!("{}: {}", store.display(), io_message(&e)),
            )
        }
    };
    let needs_template = !store_exists && template_text.is_none();
    let (code, beside) = match os.loader().filter(|l| !l.is_empty()) {
        Some(l) => (check_file("os/loader", &l)?, None),
        None => match default_pair(ovmf_dirs) {
            Some((code, vars)) => (code, Some(vars)),
            // A store or a template of the document's own is enough with any code found.
            None => match codes(ovmf_dirs).next().filter(|_| !needs_template) {
                Some(code) => (code, None),
                None => {
                    return refuse(
                        at,
                        format!(
                            "no UEFI firmware: {} with its OVMF_VARS file is not in {} \
                             (install the ovmf package, or name a code image in os/loader)",
                            CODE_NAMES.join(" or "),
                            super::firmware::list(ovmf_dirs)
                        ),
                    )
                }
            },
        },
    };
    let template = match (store_exists, &template_text) {
        (true, _) => None,
        (false, Some(t)) => Some(check_file("os/nvram@template", t)?),
        (false, None) => Some(match beside.or_else(|| vars_for(&code)) {
            Some(v) if v.is_file() => v,
            Some(v) => {
                return refuse(
                    "os/loader",
                    format!(
                        "{}: the variable store template of its build, {}, is not there \
                         (name one in os/nvram@template)",
                        code.display(),
                        v.display()
                    ),
                )
            }
            None => {
                return refuse(
                    "os/loader",
                    format!(
                        "{}: cannot tell which variable store template goes with it (name \
                         one in os/nvram@template)",
                        code.display()
                    ),
                )
            }
        }),
    };
    // The places a bad half is reported at: the element that named it, else where UEFI was
    // asked for (Vireo chose the file).
    let loader_at = if os.loader().is_some_and(|l| !l.is_empty()) {
        "os/loader"
    } else {
        at
    };
    let vars_at = match (&template, &template_text, &store_text) {
        (Some(_), Some(_), _) => "os/nvram@template",
        (None, _, Some(_)) => "os/nvram",
        _ => at,
    };
    let vars = template.as_deref().unwrap_or(&store);
    flash::check_pair(&code, vars).map_err(|e| flash_error(e, loader_at, vars_at))?;
    Ok(Uefi {
        code,
        store,
        template,
    })
}

/// A flash check's one line, at the element it concerns, without the check's own "loader" or
/// "nvram" in front (the path says it).
fn flash_error(e: FlashError, loader_at: &str, vars_at: &str) -> TranslateError {
    let what = match &e {
        FlashError::File { what, .. }
        | FlashError::NotFlash { what, .. }
        | FlashError::Blocks { what, .. } => *what,
        FlashError::Pair { .. } => "nvram",
    };
    let path = if what == "loader" { loader_at } else { vars_at };
    let text = e.to_string();
    let message = text
        .strip_prefix(what)
        .map(str::trim_start)
        .unwrap_or(&text)
        .to_owned();
    TranslateError {
        path: path.into(),
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_code_has_the_vars_of_its_build() {
        let vars = |c: &str| vars_for(Path::new(c)).map(|p| p.display().to_string());
        assert_eq!(
            vars("/usr/share/OVMF/OVMF_CODE_4M.fd").as_deref(),
            Some("/usr/share/OVMF/OVMF_VARS_4M.fd")
        );
        assert_eq!(
            vars("/usr/share/OVMF/OVMF_CODE.fd").as_deref(),
            Some("/usr/share/OVMF/OVMF_VARS.fd")
        );
        assert_eq!(vars("/opt/fw/mine.fd"), None);
        for sb in [
            "OVMF_CODE_4M.secboot.fd",
            "OVMF_CODE_4M.ms.fd",
            "OVMF_CODE.secboot.fd",
        ] {
            assert!(secure_boot_build(Path::new(sb)), "{sb}");
        }
        assert!(!secure_boot_build(Path::new(
            "/usr/share/OVMF/OVMF_CODE_4M.fd"
        )));
    }
}
