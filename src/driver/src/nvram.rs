//! UEFI variable stores on the host: made from their template on a machine's first start (as
//! libvirt does), and Vireo's own removed with the machine's definition.
//!
//! A store holds what the guest's firmware wrote (its boot entries, above all): it is never
//! overwritten, and a store a document names outside Vireo's nvram directory is the user's,
//! never removed.

use crate::paths::{ensure_private_dir, nvram_store};
use crate::translate::NvramCopy;
use std::path::{Path, PathBuf};
use vireo_domain::{Domain, Firmware};

/// Why a store could not be made.
#[derive(Debug, thiserror::Error)]
#[error("cannot make the UEFI variable store {store} from {template}: {source}")]
pub struct NvramError {
    pub store: PathBuf,
    pub template: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// Makes `copy.store` from `copy.template` unless a store is there already. The copy appears
/// whole or not at all: written and synced under a temporary name in the same directory, then
/// linked to its name, which fails instead of replacing a store made meanwhile. The store is
/// the user's alone (0600), in a directory made 0700 when it is missing. Returns whether a
/// store was made.
pub fn make_store(copy: &NvramCopy) -> Result<bool, NvramError> {
    let err = |source| NvramError {
        store: copy.store.clone(),
        template: copy.template.clone(),
        source,
    };
    if copy.store.exists() {
        return Ok(false);
    }
    let dir = match copy.store.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => return Err(err(std::io::Error::other("not an absolute path"))),
    };
    ensure_private_dir(dir).map_err(err)?;
    let made = std::fs::read(&copy.template)
        .and_then(|data| crate::store::write_new_atomic(&copy.store, &data, 0o600));
    match made {
        Ok(()) => Ok(true),
        // Another start made it first: that store is the machine's now.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(err(e)),
    }
}

/// The store of `dom` that Vireo made for it: a UEFI machine's `NAME_VARS.fd` in `nvram_dir`,
/// whether the document names it or leaves it to Vireo. `None` for any other store (the
/// user's), and for a machine without UEFI.
pub fn own_store(dom: &Domain, nvram_dir: &Path) -> Option<PathBuf> {
    let os = dom.os()?;
    let uefi =
        os.firmware() == Some(Firmware::Efi) || os.loader_type().as_deref() == Some("pflash");
    if !uefi {
        return None;
    }
    let name = dom.name()?;
    let own = nvram_store(nvram_dir, name.trim());
    let named = os.nvram().filter(|n| !n.is_empty());
    match named {
        None => Some(own),
        Some(n) => {
            let n: PathBuf = Path::new(&n).components().collect();
            (n == own).then_some(own)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn scratch(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "vireo-nvram-{tag}-{}",
            vireo_domain::Uuid::new_v4().unwrap()
        ));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn the_first_start_copies_the_template_and_never_overwrites() {
        let d = scratch("copy");
        let template = d.join("OVMF_VARS_4M.fd");
        std::fs::write(&template, b"template").unwrap();
        let store = d.join("c/vireo/nvram/m_VARS.fd");
        let copy = NvramCopy {
            template: template.clone(),
            store: store.clone(),
        };
        assert!(make_store(&copy).unwrap());
        assert_eq!(std::fs::read(&store).unwrap(), b"template");
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&store), 0o600);
        assert_eq!(mode(store.parent().unwrap()), 0o700);
        // What the guest wrote stays.
        std::fs::write(&store, b"guest's variables").unwrap();
        std::fs::write(&template, b"a newer template").unwrap();
        assert!(!make_store(&copy).unwrap());
        assert_eq!(std::fs::read(&store).unwrap(), b"guest's variables");
        let left: Vec<_> = std::fs::read_dir(store.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, ["m_VARS.fd"], "no temporary file stays");
        let _ = std::fs::remove_dir_all(d);
    }

    #[test]
    fn a_failed_copy_names_the_store_and_leaves_nothing() {
        let d = scratch("fail");
        let store = d.join("m_VARS.fd");
        let copy = NvramCopy {
            template: d.join("missing.fd"),
            store: store.clone(),
        };
        let e = make_store(&copy).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!(
                "cannot make the UEFI variable store {} from {}: ",
                store.display(),
                d.join("missing.fd").display()
            )),
            "{e}"
        );
        assert_eq!(std::fs::read_dir(&d).unwrap().count(), 0);
        let _ = std::fs::remove_dir_all(d);
    }

    #[test]
    fn only_the_store_vireo_made_for_the_machine_is_its_own() {
        let dir = Path::new("/c/vireo/nvram");
        let own = |os: &str| {
            let xml = format!("<domain type='kvm'><name>m</name>{os}</domain>");
            own_store(&Domain::parse(&xml).unwrap(), dir)
        };
        let mine = Some(PathBuf::from("/c/vireo/nvram/m_VARS.fd"));
        assert_eq!(own("<os firmware='efi'><type>hvm</type></os>"), mine);
        assert_eq!(
            own("<os><type>hvm</type><loader type='pflash'>/x/OVMF_CODE.fd</loader></os>"),
            mine
        );
        assert_eq!(
            own("<os firmware='efi'><nvram>/c/vireo/nvram/./m_VARS.fd</nvram></os>"),
            mine
        );
        for other in [
            "<os firmware='efi'><nvram>/srv/m_VARS.fd</nvram></os>",
            "<os firmware='efi'><nvram>/c/vireo/nvram/other_VARS.fd</nvram></os>",
            "<os><type>hvm</type></os>",
            "<os firmware='bios'/>",
        ] {
            assert_eq!(own(other), None, "{other}");
        }
    }
}
