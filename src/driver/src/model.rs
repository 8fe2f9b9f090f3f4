//! ADAPTER (see `xml.rs`) — the few facts about a domain document the store and `vireoctl`
//! need: name, UUID, memory, vCPUs and the lifecycle actions, with the checks `define` makes.
//! To be replaced by `vireo-domain`'s typed views.

use crate::xml::{Document, Element, XmlError};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Why a document is not a domain the store can keep.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    #[error("{0}")]
    Xml(#[from] XmlError),
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
}

fn invalid(path: &str, message: impl Into<String>) -> DomainError {
    DomainError::Invalid {
        path: path.to_owned(),
        message: message.into(),
    }
}

/// What libvirt does when the guest powers off, reboots or crashes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LifecycleAction {
    Destroy,
    Restart,
    Preserve,
    RenameRestart,
    CoredumpDestroy,
    CoredumpRestart,
}

impl LifecycleAction {
    pub fn parse(s: &str) -> Option<LifecycleAction> {
        Some(match s {
            "destroy" => LifecycleAction::Destroy,
            "restart" => LifecycleAction::Restart,
            "preserve" => LifecycleAction::Preserve,
            "rename-restart" => LifecycleAction::RenameRestart,
            "coredump-destroy" => LifecycleAction::CoredumpDestroy,
            "coredump-restart" => LifecycleAction::CoredumpRestart,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            LifecycleAction::Destroy => "destroy",
            LifecycleAction::Restart => "restart",
            LifecycleAction::Preserve => "preserve",
            LifecycleAction::RenameRestart => "rename-restart",
            LifecycleAction::CoredumpDestroy => "coredump-destroy",
            LifecycleAction::CoredumpRestart => "coredump-restart",
        }
    }
}

impl fmt::Display for LifecycleAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A parsed domain document plus the facts read from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Domain {
    pub doc: Document,
    pub name: String,
    /// Lower-case canonical form, or `None` when the document has none yet.
    pub uuid: Option<String>,
    pub title: Option<String>,
    pub memory_kib: u64,
    pub vcpus: u32,
    pub on_poweroff: LifecycleAction,
    pub on_reboot: LifecycleAction,
    pub on_crash: LifecycleAction,
}

/// Checks a machine name: what libvirt accepts minus what would break our file layout.
pub fn check_name(name: &str) -> Result<(), DomainError> {
    if name.is_empty() {
        return Err(invalid("domain/name", "must not be empty"));
    }
    if name.len() > 200 {
        return Err(invalid("domain/name", "longer than 200 bytes"));
    }
    if name.starts_with('.') || name.contains('/') || name.chars().any(|c| c.is_control()) {
        return Err(invalid(
            "domain/name",
            format!("'{name}' must not start with '.' or contain '/' or control characters"),
        ));
    }
    Ok(())
}

/// Canonicalizes a UUID (with or without dashes) to the 8-4-4-4-12 lower-case form.
pub fn canonical_uuid(s: &str) -> Option<String> {
    let hex: String = s.trim().chars().filter(|&c| c != '-').collect();
    if hex.len() != 32 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let h = hex.to_ascii_lowercase();
    Some(format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    ))
}

/// A random version 4 UUID.
pub fn random_uuid() -> String {
    let mut b = random_bytes::<16>();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    canonical_uuid(&h).unwrap_or(h)
}

/// Random bytes from the kernel (getrandom never fails for small buffers once seeded; on the
/// off chance it does, time and pid still make the value unique enough for a MAC or UUID).
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    // SAFETY: the buffer is valid for N bytes.
    let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), N, 0) };
    if n != N as isize {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
            ^ u128::from(std::process::id()) << 64;
        for (i, x) in b.iter_mut().enumerate() {
            *x = (t >> ((i % 16) * 8)) as u8;
        }
    }
    b
}

/// Parses a libvirt scaled integer (`unit` attribute; default KiB) into KiB, rounding up.
pub fn to_kib(value: &str, unit: Option<&str>, path: &str) -> Result<u64, DomainError> {
    let v: u64 = value.trim().parse().map_err(|_| {
        invalid(
            path,
            format!("'{}' is not a non-negative integer", value.trim()),
        )
    })?;
    let bytes_per: u128 = match unit.unwrap_or("KiB") {
        "b" | "bytes" => 1,
        "KB" => 1000,
        "k" | "K" | "KiB" => 1 << 10,
        "MB" => 1_000_000,
        "m" | "M" | "MiB" => 1 << 20,
        "GB" => 1_000_000_000,
        "g" | "G" | "GiB" => 1 << 30,
        "TB" => 1_000_000_000_000,
        "t" | "T" | "TiB" => 1 << 40,
        other => {
            return Err(invalid(
                &format!("{path}@unit"),
                format!("unknown unit '{other}'"),
            ))
        }
    };
    let bytes = u128::from(v) * bytes_per;
    u64::try_from(bytes.div_ceil(1024)).map_err(|_| invalid(path, "value too large"))
}

fn action(
    root: &Element,
    el: &str,
    default: LifecycleAction,
) -> Result<LifecycleAction, DomainError> {
    match root.child_text(el) {
        None => Ok(default),
        Some(t) => match LifecycleAction::parse(&t) {
            Some(a @ (LifecycleAction::CoredumpDestroy | LifecycleAction::CoredumpRestart))
                if el != "on_crash" =>
            {
                Err(invalid(
                    &format!("domain/{el}"),
                    format!("'{}' is only valid in on_crash", a),
                ))
            }
            Some(a) => Ok(a),
            None => Err(invalid(
                &format!("domain/{el}"),
                format!("unknown action '{t}'"),
            )),
        },
    }
}

impl Domain {
    /// Parses and checks a domain document.
    pub fn parse(text: &str) -> Result<Domain, DomainError> {
        let doc = Document::parse(text)?;
        Domain::from_document(doc)
    }

    pub fn from_document(doc: Document) -> Result<Domain, DomainError> {
        let root = &doc.root;
        if root.name != "domain" {
            return Err(invalid(&root.name, "the root element must be <domain>"));
        }
        if root.attr("type").is_none() {
            return Err(invalid("domain", "missing attribute type"));
        }
        let name = root
            .child_text("name")
            .ok_or_else(|| invalid("domain", "missing element name"))?;
        check_name(&name)?;
        let uuid = match root.child_text("uuid") {
            None => None,
            Some(u) => Some(
                canonical_uuid(&u)
                    .ok_or_else(|| invalid("domain/uuid", format!("'{u}' is not a UUID")))?,
            ),
        };
        let title = root.child_text("title");
        let mem = root
            .child("memory")
            .ok_or_else(|| invalid("domain", "missing element memory"))?;
        let memory_kib = to_kib(&mem.text(), mem.attr("unit"), "domain/memory")?;
        if memory_kib == 0 {
            return Err(invalid("domain/memory", "must be greater than 0"));
        }
        let vcpus = match root.child_text("vcpu") {
            None => 1,
            Some(t) => t.parse::<u32>().ok().filter(|&n| n > 0).ok_or_else(|| {
                invalid("domain/vcpu", format!("'{t}' is not a positive integer"))
            })?,
        };
        let on_poweroff = action(root, "on_poweroff", LifecycleAction::Destroy)?;
        let on_reboot = action(root, "on_reboot", LifecycleAction::Restart)?;
        let on_crash = action(root, "on_crash", LifecycleAction::Destroy)?;
        Ok(Domain {
            name,
            uuid,
            title,
            memory_kib,
            vcpus,
            on_poweroff,
            on_reboot,
            on_crash,
            doc,
        })
    }

    /// Gives the document a UUID if it has none (as libvirt does on define).
    pub fn ensure_uuid(&mut self, uuid: Option<&str>) {
        if self.uuid.is_some() {
            return;
        }
        let u = uuid.map(str::to_owned).unwrap_or_else(random_uuid);
        let mut el = Element::new("uuid");
        el.set_text(&u);
        self.doc.root.insert_after("name", el);
        self.uuid = Some(u);
    }

    /// Gives every `<interface>` without a MAC a stable random one in QEMU's 52:54:00 range (as
    /// libvirt does on define), so the guest sees the same NIC on every boot.
    pub fn ensure_macs(&mut self) {
        let Some(devices) = self.doc.root.child_mut("devices") else {
            return;
        };
        for node in devices.children.iter_mut() {
            if let crate::xml::Node::Element(e) = node {
                if e.name == "interface" && e.child("mac").is_none() {
                    let b = random_bytes::<3>();
                    let mut mac = Element::new("mac");
                    mac.set_attr(
                        "address",
                        &format!("52:54:00:{:02x}:{:02x}:{:02x}", b[0], b[1], b[2]),
                    );
                    e.children.insert(0, crate::xml::Node::Element(mac));
                }
            }
        }
    }

    pub fn to_xml(&self) -> String {
        self.doc.to_xml()
    }

    pub fn domain_type(&self) -> &str {
        self.doc.root.attr("type").unwrap_or("")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(to_kib("1", Some("GiB"), "m").unwrap(), 1 << 20);
        assert_eq!(to_kib("512", None, "m").unwrap(), 512);
        assert_eq!(to_kib("1000", Some("b"), "m").unwrap(), 1);
        assert_eq!(to_kib("256", Some("MiB"), "m").unwrap(), 262144);
        assert!(to_kib("x", None, "m").is_err());
        assert!(to_kib("1", Some("parsecs"), "m")
            .unwrap_err()
            .to_string()
            .contains("m@unit"));
    }

    #[test]
    fn parse_and_defaults() {
        let d = Domain::parse(
            "<domain type='kvm'><name>a</name><memory unit='MiB'>64</memory><on_crash>coredump-restart</on_crash></domain>",
        )
        .unwrap();
        assert_eq!(d.memory_kib, 65536);
        assert_eq!(d.vcpus, 1);
        assert_eq!(d.on_reboot, LifecycleAction::Restart);
        assert_eq!(d.on_crash, LifecycleAction::CoredumpRestart);
        let e = Domain::parse("<domain type='kvm'><name>a/b</name><memory>1</memory></domain>")
            .unwrap_err();
        assert!(e.to_string().starts_with("domain/name:"), "{e}");
        let e = Domain::parse(
            "<domain type='kvm'><name>a</name><memory>1</memory><uuid>zz</uuid></domain>",
        )
        .unwrap_err();
        assert_eq!(e.to_string(), "domain/uuid: 'zz' is not a UUID");
        let e = Domain::parse(
            "<domain type='kvm'><name>a</name><memory>1</memory><on_reboot>coredump-destroy</on_reboot></domain>",
        )
        .unwrap_err();
        assert!(e.to_string().starts_with("domain/on_reboot"), "{e}");
    }

    #[test]
    fn uuid_forms() {
        assert_eq!(
            canonical_uuid("6695EB01F6A44304AAA9F2B1B2A1C2D3").as_deref(),
            Some("6695eb01-f6a4-4304-aaa9-f2b1b2a1c2d3")
        );
        let u = random_uuid();
        assert_eq!(canonical_uuid(&u).as_deref(), Some(u.as_str()));
        assert_eq!(&u[14..15], "4");
    }
}
