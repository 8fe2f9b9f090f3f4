//! Where a refusal points in a domain document, in the one path format of the project, and
//! which part of a machine (the field a front end shows) that place belongs to.
//!
//! The format is vireo-domain's ([`vireo_domain::error::ErrorData::path`]): `domain/devices/disk[2]/target`,
//! `[n]` counting same-named siblings from 1 and written only when the name repeats, with the
//! attribute at fault kept apart. Every [`DriverError`] that concerns a place in the document
//! gives it through [`DriverError::places`], so a front end matches a typed [`Part`] and never
//! reads a message.

use crate::connection::DriverError;
use crate::store::StoreError;
use vireo_domain::{Domain, Element};

/// A place in a domain document.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Place {
    /// Element path, e.g. `domain/devices/disk[2]/source`.
    pub path: String,
    /// The attribute at fault, if any.
    pub attribute: Option<String>,
}

/// The part of a machine a place concerns: what a form shows as one field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Part {
    Name,
    Uuid,
    Title,
    Description,
    Memory,
    Vcpus,
    Kernel,
    Initrd,
    Cmdline,
    /// `on_poweroff`, `on_reboot`, `on_crash`.
    Lifecycle,
    /// The n-th `<disk>` (from 0).
    Disk(usize),
    /// The n-th `<interface>` (from 0).
    Interface(usize),
    Graphics,
    /// Anything no form field shows.
    Other,
}

impl Place {
    pub fn new(path: impl Into<String>, attribute: Option<&str>) -> Place {
        Place {
            path: path.into(),
            attribute: attribute.map(str::to_owned),
        }
    }

    /// The place of one of vireo-domain's errors (the same format).
    pub fn of(e: &vireo_domain::Error) -> Place {
        Place {
            path: e.path.clone(),
            attribute: e.attribute.clone(),
        }
    }

    /// The place a start check (`translate`) refusal names, in the common format. Its paths are
    /// written relative to `<domain>`, always indexed (`devices/disk[1]`) and with the attribute
    /// and its value inline (`devices/interface[1]@type='bridge'`, `os/type='xen'`); they read
    /// as messages and stay that way, so the step to this format is taken here, once, against
    /// the document that was checked.
    pub fn of_start_check(dom: &Domain, path: &str) -> Place {
        let end = path.find(['@', '=']).unwrap_or(path.len());
        let (elements, rest) = path.split_at(end);
        let attribute = rest
            .strip_prefix('@')
            .map(|a| a.split('=').next().unwrap_or(a))
            .filter(|a| !a.is_empty());
        let mut steps = elements.split('/').filter(|s| !s.is_empty()).peekable();
        if steps.peek() == Some(&"domain") {
            steps.next();
        }
        let mut out = String::from("domain");
        let mut node: Option<&Element> = Some(dom.root());
        for step in steps {
            let (name, index) = match step.split_once('[') {
                Some((n, i)) => (n, i.trim_end_matches(']').parse::<usize>().unwrap_or(1)),
                None => (step, 1),
            };
            let count = node.map_or(0, |n| n.children_named(name).count());
            out.push('/');
            out.push_str(name);
            if count > 1 {
                out.push_str(&format!("[{index}]"));
            }
            node = node.and_then(|n| n.children_named(name).nth(index.saturating_sub(1)));
        }
        Place {
            path: out,
            attribute: attribute.map(str::to_owned),
        }
    }

    /// The part of a machine this place belongs to.
    pub fn part(&self) -> Part {
        let mut steps = self.path.split('/');
        if steps.next() != Some("domain") {
            return Part::Other;
        }
        let step = |s: Option<&str>| -> (String, usize) {
            let s = s.unwrap_or("");
            match s.split_once('[') {
                Some((n, i)) => (
                    n.to_owned(),
                    i.trim_end_matches(']')
                        .parse::<usize>()
                        .map_or(0, |i| i.saturating_sub(1)),
                ),
                None => (s.to_owned(), 0),
            }
        };
        let (first, _) = step(steps.next());
        match first.as_str() {
            "name" => Part::Name,
            "uuid" => Part::Uuid,
            "title" => Part::Title,
            "description" => Part::Description,
            "memory" | "currentMemory" => Part::Memory,
            "vcpu" => Part::Vcpus,
            "on_poweroff" | "on_reboot" | "on_crash" => Part::Lifecycle,
            "os" => match step(steps.next()).0.as_str() {
                "kernel" => Part::Kernel,
                "initrd" => Part::Initrd,
                "cmdline" => Part::Cmdline,
                _ => Part::Other,
            },
            "devices" => match step(steps.next()) {
                (d, i) if d == "disk" => Part::Disk(i),
                (n, i) if n == "interface" => Part::Interface(i),
                (g, _) if g == "graphics" => Part::Graphics,
                _ => Part::Other,
            },
            _ => Part::Other,
        }
    }
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.attribute {
            Some(a) => write!(f, "{}@{a}", self.path),
            None => f.write_str(&self.path),
        }
    }
}

impl DriverError {
    /// The places in the document this error concerns, in document order (empty for errors
    /// that concern no element: a missing machine, a helper that failed, ...).
    pub fn places(&self) -> Vec<Place> {
        match self {
            DriverError::Invalid(errors)
            | DriverError::Store(StoreError::Invalid { source: errors, .. })
            | DriverError::Store(StoreError::Domain(errors)) => {
                errors.iter().map(Place::of).collect()
            }
            DriverError::Store(StoreError::NameTaken { .. }) => {
                vec![Place::new("domain/name", None)]
            }
            DriverError::Store(StoreError::UuidTaken { .. }) => {
                vec![Place::new("domain/uuid", None)]
            }
            DriverError::NotEnoughMemory(_) => vec![Place::new("domain/memory", None)],
            DriverError::Nvram(_) => vec![Place::new("domain/os/nvram", None)],
            DriverError::Unsupported { place, .. }
            | DriverError::ImageExists { place, .. }
            | DriverError::ImageCreate { place, .. } => vec![place.clone()],
            _ => Vec::new(),
        }
    }

    /// The parts of a machine this error concerns (see [`Place::part`]), without repeats.
    pub fn parts(&self) -> Vec<Part> {
        let mut parts = Vec::new();
        for p in self.places() {
            let part = p.part();
            if !parts.contains(&part) {
                parts.push(part);
            }
        }
        parts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dom() -> Domain {
        Domain::parse(
            "<domain type='kvm'><name>a</name><memory>1</memory><os><type>hvm</type></os>\
             <devices><disk type='file'><source file='/a'/><target dev='vda'/></disk>\
             <interface type='bridge'><mac address='52:54:00:00:00:01'/></interface>\
             <interface type='user'/></devices></domain>",
        )
        .expect("parse")
    }

    #[test]
    fn start_check_paths_take_the_common_format() {
        let d = dom();
        let cases = [
            ("memory", "domain/memory", None),
            ("vcpu@current", "domain/vcpu", Some("current")),
            ("domain@type='xen'", "domain", Some("type")),
            ("os/type='xen'", "domain/os/type", None),
            ("os/kernel", "domain/os/kernel", None),
            (
                "devices/disk[1]/source@file",
                "domain/devices/disk/source",
                Some("file"),
            ),
            (
                "devices/interface[1]@type='bridge'",
                "domain/devices/interface[1]",
                Some("type"),
            ),
            (
                "devices/interface[2]/portForward[1]/range[1]@exclude",
                "domain/devices/interface[2]/portForward/range",
                Some("exclude"),
            ),
            ("devices/sound[1]", "domain/devices/sound", None),
        ];
        for (from, path, attr) in cases {
            assert_eq!(
                Place::of_start_check(&d, from),
                Place::new(path, attr),
                "{from}"
            );
        }
    }

    #[test]
    fn places_name_their_part() {
        let cases = [
            ("domain/name", Part::Name),
            ("domain/memory", Part::Memory),
            ("domain/currentMemory", Part::Memory),
            ("domain/vcpu", Part::Vcpus),
            ("domain/vcpupin", Part::Other),
            ("domain/os/kernel", Part::Kernel),
            ("domain/os/initrd", Part::Initrd),
            ("domain/os/cmdline", Part::Cmdline),
            ("domain/os", Part::Other),
            ("domain/on_crash", Part::Lifecycle),
            ("domain/devices/disk", Part::Disk(0)),
            ("domain/devices/disk[2]/target", Part::Disk(1)),
            (
                "domain/devices/interface/portForward/range",
                Part::Interface(0),
            ),
            ("domain/devices/graphics", Part::Graphics),
            ("domain/devices", Part::Other),
            ("", Part::Other),
        ];
        for (path, part) in cases {
            assert_eq!(Place::new(path, None).part(), part, "{path}");
        }
    }

    #[test]
    fn errors_give_their_places() {
        let e = crate::Definition::parse(
            "<domain type='kvm'><name>a/b</name><memory>0</memory><os><type>hvm</type></os></domain>",
        )
        .expect_err("invalid");
        let parts = DriverError::Invalid(e).parts();
        assert!(
            parts.contains(&Part::Name) && parts.contains(&Part::Memory),
            "{parts:?}"
        );
        let taken = DriverError::Store(StoreError::NameTaken {
            name: "a".into(),
            uuid: "u".into(),
        });
        assert_eq!(taken.parts(), vec![Part::Name]);
        assert!(DriverError::NotFound("a".into()).places().is_empty());
    }
}
