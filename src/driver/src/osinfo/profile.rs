//! What a new machine for an operating system gets: the database's recommended memory,
//! processors and disk, capped by what this computer has, and the firmware the system wants.
//! A system the database does not know (or media it does not recognise) gets the generic
//! profile: never a refusal, since any PC installer may still boot.

use super::{Db, Os};

/// Memory of a machine for an unknown system: enough for today's installers with a desktop.
pub const GENERIC_MEMORY_MIB: u64 = 2048;
/// Processors of a machine for an unknown system.
pub const GENERIC_VCPUS: u32 = 2;
/// Disk of a machine for an unknown system: what most desktop installers ask for at least.
pub const GENERIC_DISK_BYTES: u64 = 20 << 30;

/// What this computer can give one machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostLimits {
    /// The host's memory; a machine is offered at most half of it.
    pub memory_mib: Option<u64>,
    pub cpus: u32,
    /// Whether UEFI firmware (OVMF) is installed.
    pub uefi: bool,
}

impl HostLimits {
    /// This computer's.
    pub fn here() -> HostLimits {
        HostLimits {
            memory_mib: crate::host::total_memory_mib(),
            cpus: std::thread::available_parallelism()
                .map_or(1, |n| u32::try_from(n.get()).unwrap_or(u32::MAX)),
            uefi: crate::translate::uefi::default_pair(&crate::translate::uefi::search_dirs())
                .is_some(),
        }
    }
}

/// The new machine's form, filled in for a system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    /// The system's libosinfo id, for the domain's `<metadata>`; `None` for the generic profile.
    pub os_id: Option<String>,
    /// What the user is shown: "Debian 11", or `None` for an unknown system.
    pub os_name: Option<String>,
    /// Its short id (`debian11`), a good name for a new machine.
    pub short_id: Option<String>,
    pub memory_mib: u64,
    pub vcpus: u32,
    pub disk_bytes: u64,
    /// UEFI rather than the BIOS: when the system cannot boot without it, or supports it and
    /// OVMF is installed (the firmware every current installer is made for first).
    pub uefi: bool,
}

impl Profile {
    /// The generic profile.
    pub fn generic(host: &HostLimits) -> Profile {
        Profile {
            os_id: None,
            os_name: None,
            short_id: None,
            memory_mib: cap_memory(GENERIC_MEMORY_MIB, host),
            vcpus: GENERIC_VCPUS.clamp(1, host.cpus.max(1)),
            disk_bytes: GENERIC_DISK_BYTES,
            uefi: false,
        }
    }

    /// The profile of `os`: its recommended resources (each the generic one where the database
    /// has none), capped by `host`.
    pub fn for_os(db: &Db, os: &Os, host: &HostLimits) -> Profile {
        let r = db.recommended(os);
        let memory = r.ram.map_or(GENERIC_MEMORY_MIB, |b| (b >> 20).max(64));
        Profile {
            os_id: Some(os.id.clone()),
            os_name: Some(os.name.clone()),
            short_id: os.short_ids.first().cloned(),
            memory_mib: cap_memory(memory, host),
            vcpus: r.n_cpus.unwrap_or(GENERIC_VCPUS).clamp(1, host.cpus.max(1)),
            disk_bytes: r.storage.unwrap_or(GENERIC_DISK_BYTES).max(1 << 30),
            uefi: os.bios_unsupported || (os.uefi_supported && host.uefi),
        }
    }
}

/// How the user named the system (virt-install's `--osinfo`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OsChoice {
    /// Detect it from the install medium; `require`: refuse media that are not recognised
    /// (virt-install's `require=on`) instead of taking the generic profile.
    Detect { require: bool },
    /// The system with this short id (`debian12`) or id (`http://debian.org/debian/12`).
    Named(String),
    /// No particular system.
    Generic,
}

/// The system a new machine is for, and what it gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub profile: Profile,
    /// Why the generic profile was taken (for the user to read, never a refusal).
    pub note: Option<String>,
    /// The medium is a live system (it can be tried without installing).
    pub live: bool,
}

/// Why no system could be named.
#[derive(Debug, thiserror::Error)]
pub enum ChoiceError {
    #[error(
        "the osinfo database has no system named '{0}' (`vireoctl osinfo-query os` lists them)"
    )]
    Unknown(String),
    #[error("the system could not be detected: {0}")]
    NotDetected(String),
}

/// Finds the system `choice` names, detecting it from `iso` (an installer or live ISO) when
/// asked. A disk image to import is never looked into: pass `None`, it gets the generic
/// profile or the named system.
pub fn resolve(
    db: &Db,
    choice: &OsChoice,
    iso: Option<&std::path::Path>,
    host: &HostLimits,
) -> Result<Resolved, ChoiceError> {
    let generic = |note: String| Resolved {
        profile: Profile::generic(host),
        note: Some(note),
        live: false,
    };
    match choice {
        OsChoice::Generic => Ok(Resolved {
            profile: Profile::generic(host),
            note: None,
            live: false,
        }),
        OsChoice::Named(name) => db
            .get(name.trim())
            .map(|os| Resolved {
                profile: Profile::for_os(db, os, host),
                note: None,
                live: false,
            })
            .ok_or_else(|| ChoiceError::Unknown(name.clone())),
        OsChoice::Detect { require } => {
            let found = match iso {
                None => Err("there is no ISO to detect it from".to_string()),
                Some(path) => match super::IsoLabels::read(path) {
                    Err(e) => Err(e.to_string()),
                    Ok(labels) => db.detect(&labels).ok_or_else(|| {
                        format!(
                            "the osinfo database knows no medium labelled '{}'",
                            labels.volume_id
                        )
                    }),
                },
            };
            match found {
                Ok(d) => Ok(Resolved {
                    profile: Profile::for_os(db, d.os, host),
                    note: None,
                    live: d.live,
                }),
                Err(why) if *require => Err(ChoiceError::NotDetected(why)),
                Err(why) => Ok(generic(format!("{why}; a generic machine is made"))),
            }
        }
    }
}

/// At most half the host's memory, in whole 256 MiB steps above 1 GiB so the form shows round
/// figures.
fn cap_memory(mib: u64, host: &HostLimits) -> u64 {
    let Some(total) = host.memory_mib else {
        return mib;
    };
    let half = (total / 2).max(256);
    if mib <= half {
        return mib;
    }
    if half > 1024 {
        half / 256 * 256
    } else {
        half
    }
}

#[cfg(test)]
mod tests {
    use super::super::parse_file;
    use super::*;
    use std::path::Path;

    const HOST: HostLimits = HostLimits {
        memory_mib: Some(16384),
        cpus: 8,
        uefi: true,
    };

    fn db(xml: &str) -> Db {
        let oses = parse_file(Path::new("t.xml"), xml.as_bytes()).unwrap();
        Db {
            oses,
            skipped: Vec::new(),
        }
    }

    const DEBIAN: &str = r#"<libosinfo version="0.0.1">
      <os id="http://debian.org/debian/11">
        <short-id>debian11</short-id><name>Debian 11</name>
        <firmware arch="x86_64" type="efi"/>
        <resources arch="all">
          <minimum><n-cpus>1</n-cpus><ram>1073741824</ram></minimum>
          <recommended><ram>2147483648</ram><storage>21474836480</storage></recommended>
        </resources>
      </os>
      <os id="http://x/old"><short-id>old</short-id><name>Old</name>
        <resources arch="all"><recommended><ram>134217728</ram></recommended></resources>
      </os>
    </libosinfo>"#;

    #[test]
    fn a_known_system_gets_its_recommendation_and_uefi_where_supported() {
        let db = db(DEBIAN);
        let os = db.get("debian11").unwrap();
        let p = Profile::for_os(&db, os, &HOST);
        assert_eq!(p.os_id.as_deref(), Some("http://debian.org/debian/11"));
        assert_eq!(p.os_name.as_deref(), Some("Debian 11"));
        assert_eq!((p.memory_mib, p.vcpus, p.disk_bytes), (2048, 1, 20 << 30));
        assert!(p.uefi);
        let no_ovmf = HostLimits {
            uefi: false,
            ..HOST
        };
        assert!(!Profile::for_os(&db, os, &no_ovmf).uefi);
        let old = Profile::for_os(&db, db.get("old").unwrap(), &HOST);
        assert_eq!((old.memory_mib, old.vcpus, old.uefi), (128, 2, false));
        assert_eq!(old.disk_bytes, GENERIC_DISK_BYTES);
    }

    #[test]
    fn a_choice_resolves_to_a_named_detected_or_generic_system() {
        let db = db(DEBIAN);
        let named = resolve(
            &db,
            &OsChoice::Named("http://debian.org/debian/11".into()),
            None,
            &HOST,
        );
        assert_eq!(named.unwrap().profile.os_name.as_deref(), Some("Debian 11"));
        let e = resolve(&db, &OsChoice::Named("beos5".into()), None, &HOST).unwrap_err();
        assert_eq!(
            e.to_string(),
            "the osinfo database has no system named 'beos5' (`vireoctl osinfo-query os` lists them)"
        );
        let nothing = resolve(&db, &OsChoice::Detect { require: false }, None, &HOST).unwrap();
        assert_eq!(nothing.profile, Profile::generic(&HOST));
        assert_eq!(
            nothing.note.as_deref(),
            Some("there is no ISO to detect it from; a generic machine is made")
        );
        let not_iso = std::env::temp_dir().join(format!("vireo-notiso-{}", std::process::id()));
        std::fs::write(&not_iso, vec![0u8; 40000]).unwrap();
        let r = resolve(
            &db,
            &OsChoice::Detect { require: true },
            Some(&not_iso),
            &HOST,
        );
        let msg = r.unwrap_err().to_string();
        assert!(
            msg.starts_with("the system could not be detected: "),
            "{msg}"
        );
        assert!(msg.contains("not an ISO 9660 image"), "{msg}");
        let _ = std::fs::remove_file(not_iso);
    }

    #[test]
    fn the_host_caps_memory_and_processors() {
        let small = HostLimits {
            memory_mib: Some(3000),
            cpus: 1,
            uefi: false,
        };
        let g = Profile::generic(&small);
        assert_eq!((g.memory_mib, g.vcpus), (1280, 1));
        assert_eq!(g.os_id, None);
        let tiny = HostLimits {
            memory_mib: Some(1000),
            ..small
        };
        assert_eq!(Profile::generic(&tiny).memory_mib, 500);
        let unknown = HostLimits {
            memory_mib: None,
            ..small
        };
        assert_eq!(Profile::generic(&unknown).memory_mib, GENERIC_MEMORY_MIB);
    }
}
