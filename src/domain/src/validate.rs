//! Semantic validation: the checks the driver and the GUI need before a document is used,
//! each reported with position, element path and attribute, all problems at once.

use std::collections::HashMap;

use crate::devices::indexed_path;
use crate::domain::Domain;
use crate::error::{Error, ErrorKind, Errors};
use crate::ids::{Mac, Uuid};
use crate::tree::Element;
use crate::units::parse_size;
use crate::values::{
    ChardevType, ClockOffset, DiskBus, DiskDevice, DiskType, GraphicsType, ImageFormat, InputBus,
    InputType, InterfaceType, LifecycleAction, LifecycleEvent, MemballoonModel, OsType, PortProto,
    RngBackend, VideoModel, VirtType,
};
use crate::view::parse_uint;

struct Ctx {
    errors: Vec<Error>,
}

impl Ctx {
    fn push(&mut self, e: &Element, path: &str, attr: Option<&str>, kind: ErrorKind) {
        let pos = attr.and_then(|a| e.attribute(a)).map_or(e.pos, |a| a.pos);
        let mut err = Error::new(kind, path, Some(pos));
        if let Some(a) = attr {
            err = err.with_attribute(a);
        }
        self.errors.push(err);
    }

    fn invalid(&mut self, e: &Element, path: &str, attr: Option<&str>, value: &str, reason: &str) {
        let field = attr.map_or_else(|| e.name().to_string(), |a| format!("{}@{a}", e.name()));
        self.push(
            e,
            path,
            attr,
            ErrorKind::InvalidValue {
                field,
                value: value.into(),
                reason: reason.into(),
            },
        );
    }

    /// Checks an enumerated attribute against libvirt's values.
    fn enum_attr<T>(&mut self, e: &Element, path: &str, attr: &str, required: bool)
    where
        T: for<'a> From<&'a str> + EnumInfo,
    {
        match e.attr(attr) {
            Some(v) if !T::from(v.as_ref()).known() => {
                let reason = format!("expected one of {}", T::known_list().join(", "));
                self.invalid(e, path, Some(attr), &v, &reason);
            }
            Some(_) => {}
            None if required => self.push(e, path, None, ErrorKind::MissingAttribute(attr.into())),
            None => {}
        }
    }

    fn required_attr<'e>(
        &mut self,
        e: &'e Element,
        path: &str,
        attr: &str,
    ) -> Option<std::borrow::Cow<'e, str>> {
        let v = e.attr(attr);
        if v.is_none() {
            self.push(e, path, None, ErrorKind::MissingAttribute(attr.into()));
        }
        v
    }
}

/// Uniform access to the value enums for messages.
trait EnumInfo {
    fn known(&self) -> bool;
    fn known_list() -> &'static [&'static str];
}

macro_rules! enum_info {
    ($($t:ty),*) => {$(
        impl EnumInfo for $t {
            fn known(&self) -> bool { self.is_known() }
            fn known_list() -> &'static [&'static str] { <$t>::KNOWN }
        }
    )*};
}

enum_info!(
    VirtType,
    DiskType,
    DiskDevice,
    DiskBus,
    ImageFormat,
    InterfaceType,
    GraphicsType,
    ChardevType,
    InputType,
    InputBus,
    VideoModel,
    MemballoonModel,
    RngBackend,
    ClockOffset,
    PortProto
);

/// Whether libvirt accepts `name` as a domain name. The schema allows anything but newlines;
/// Vireo also refuses `/` (the name becomes a file name, and libvirt's QEMU driver refuses it
/// too) and leading/trailing blanks that would make two names look alike.
pub fn check_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("must not be empty");
    }
    if name.contains('\n') {
        return Err("must not contain a newline");
    }
    if name.contains('/') {
        return Err("must not contain '/'");
    }
    if name.chars().any(|c| c.is_control()) {
        return Err("must not contain control characters");
    }
    Ok(())
}

impl Domain {
    /// Checks the document; returns every problem found, in document order.
    pub fn validate(&self) -> Result<(), Errors> {
        let mut c = Ctx { errors: Vec::new() };
        let root = self.root();
        let p = "domain";
        c.enum_attr::<VirtType>(root, p, "type", true);

        match root.child("name") {
            None => c.push(root, p, None, ErrorKind::MissingElement("name".into())),
            Some(n) => {
                let v = n.text();
                if let Err(reason) = check_name(&v) {
                    c.invalid(n, "domain/name", None, &v, reason);
                }
            }
        }
        if let Some(u) = root.child("uuid") {
            let v = u.text();
            if Uuid::parse(&v).is_none() {
                c.invalid(
                    u,
                    "domain/uuid",
                    None,
                    &v,
                    "expected 32 hex digits, e.g. 6695eb01-f6a4-8304-79aa-97f2502e193f",
                );
            }
        }

        let has_numa = root
            .child("cpu")
            .and_then(|cpu| cpu.child("numa"))
            .is_some();
        let memory = size(&mut c, root, "memory");
        let current = size(&mut c, root, "currentMemory");
        match (root.child("memory"), memory) {
            (None, _) if !has_numa => {
                c.push(root, p, None, ErrorKind::MissingElement("memory".into()))
            }
            (Some(m), Some(0)) if !has_numa => c.invalid(
                m,
                "domain/memory",
                None,
                &m.text(),
                "memory must be greater than 0",
            ),
            _ => {}
        }
        if let (Some(mem), Some(cur), Some(e)) = (memory, current, root.child("currentMemory")) {
            if cur > mem {
                c.push(
                    e,
                    "domain/currentMemory",
                    None,
                    ErrorKind::Constraint(format!(
                        "currentMemory ({cur} bytes) is larger than memory ({mem} bytes)"
                    )),
                );
            }
        }

        if let Some(v) = root.child("vcpu") {
            let t = v.text();
            match parse_uint::<u32>(&t) {
                Some(0) => c.invalid(v, "domain/vcpu", None, &t, "must be greater than 0"),
                Some(n) => {
                    if let Some(cur) = v.attr("current") {
                        match parse_uint::<u32>(&cur) {
                            Some(k) if k > 0 && k <= n => {}
                            _ => c.invalid(
                                v,
                                "domain/vcpu",
                                Some("current"),
                                &cur,
                                "must be between 1 and the vcpu count",
                            ),
                        }
                    }
                }
                None => c.invalid(v, "domain/vcpu", None, &t, "not an unsigned integer"),
            }
        }

        match root.child("os") {
            None => c.push(root, p, None, ErrorKind::MissingElement("os".into())),
            Some(os) => match os.child("type") {
                None => c.push(
                    os,
                    "domain/os",
                    None,
                    ErrorKind::MissingElement("type".into()),
                ),
                Some(t) => {
                    let v = t.text();
                    if !OsType::from(v.trim()).is_known() {
                        c.invalid(
                            t,
                            "domain/os/type",
                            None,
                            &v,
                            "expected hvm, linux, xen, xenpvh or exe",
                        );
                    }
                    let count = os.children_named("boot").count();
                    for (i, b) in os.children_named("boot").enumerate() {
                        let bp = indexed_path("domain/os", "boot", i, count);
                        if let Some(d) = c.required_attr(b, &bp, "dev") {
                            if !crate::values::BootDev::from(d.as_ref()).is_known() {
                                c.invalid(
                                    b,
                                    &bp,
                                    Some("dev"),
                                    &d,
                                    "expected hd, cdrom, network or fd",
                                );
                            }
                        }
                    }
                }
            },
        }

        for ev in [
            LifecycleEvent::Poweroff,
            LifecycleEvent::Reboot,
            LifecycleEvent::Crash,
        ] {
            if let Some(e) = root.child(ev.element()) {
                let v = e.text();
                let a = LifecycleAction::from(v.trim());
                if !ev.allows(&a) {
                    let allowed = if ev == LifecycleEvent::Crash {
                        "destroy, restart, preserve, rename-restart, coredump-destroy, coredump-restart"
                    } else {
                        "destroy, restart, preserve, rename-restart"
                    };
                    c.invalid(
                        e,
                        &format!("domain/{}", ev.element()),
                        None,
                        &v,
                        &format!("expected one of {allowed}"),
                    );
                }
            }
        }
        if let Some(clock) = root.child("clock") {
            c.enum_attr::<ClockOffset>(clock, "domain/clock", "offset", false);
        }

        if let Some(devs) = root.child("devices") {
            let per_device_boot = check_devices(&mut c, devs);
            // libvirt's rule (virDomainDefBootOrderPostParse): one boot order, either listed
            // under <os> or given per device.
            let os = root.child("os");
            if let Some(first) = os.and_then(|os| os.child("boot")) {
                if per_device_boot {
                    let count = os.map_or(0, |os| os.children_named("boot").count());
                    c.push(
                        first,
                        &indexed_path("domain/os", "boot", 0, count),
                        None,
                        ErrorKind::Constraint(
                            "per-device boot elements cannot be used together with os/boot \
                             elements"
                                .into(),
                        ),
                    );
                }
            }
        }

        if c.errors.is_empty() {
            Ok(())
        } else {
            c.errors.sort_by_key(|e| e.pos);
            Err(Errors(c.errors))
        }
    }
}

fn size(c: &mut Ctx, root: &Element, name: &str) -> Option<u64> {
    let e = root.child(name)?;
    let unit = e.attr("unit");
    match parse_size(&e.text(), unit.as_deref()) {
        Ok(v) => Some(v),
        Err(err) => {
            let attr = matches!(err, crate::units::UnitError::UnknownUnit(_)).then_some("unit");
            let value = match attr {
                Some(_) => unit.map(|u| u.into_owned()).unwrap_or_default(),
                None => e.text(),
            };
            c.invalid(e, &format!("domain/{name}"), attr, &value, &err.to_string());
            None
        }
    }
}

/// Checks `<devices>`; true when a device has its own `<boot order>`.
fn check_devices(c: &mut Ctx, devs: &Element) -> bool {
    let dp = "domain/devices";
    let mut per_device_boot = false;
    let mut targets: HashMap<String, String> = HashMap::new();
    let mut boot_orders: HashMap<u32, String> = HashMap::new();
    let mut check_boot = |c: &mut Ctx, dev: &Element, path: &str| {
        if let Some(b) = dev.child("boot") {
            per_device_boot = true;
            let bpath = format!("{path}/boot");
            if let Some(o) = c.required_attr(b, &bpath, "order") {
                match parse_uint::<u32>(&o) {
                    Some(n) if n > 0 => {
                        if let Some(first) = boot_orders.get(&n) {
                            let first = first.clone();
                            c.push(
                                b,
                                &bpath,
                                Some("order"),
                                ErrorKind::Duplicate {
                                    field: "boot order".into(),
                                    value: n.to_string(),
                                    first,
                                },
                            );
                        } else {
                            boot_orders.insert(n, bpath.clone());
                        }
                    }
                    _ => c.invalid(b, &bpath, Some("order"), &o, "must be a positive integer"),
                }
            }
        }
    };

    let count = devs.children_named("disk").count();
    for (i, d) in devs.children_named("disk").enumerate() {
        let path = indexed_path(dp, "disk", i, count);
        c.enum_attr::<DiskType>(d, &path, "type", false);
        c.enum_attr::<DiskDevice>(d, &path, "device", false);
        if let Some(drv) = d.child("driver") {
            c.enum_attr::<ImageFormat>(drv, &format!("{path}/driver"), "type", false);
        }
        let tpath = format!("{path}/target");
        match d.child("target") {
            None => c.push(d, &path, None, ErrorKind::MissingElement("target".into())),
            Some(t) => {
                c.enum_attr::<DiskBus>(t, &tpath, "bus", false);
                if let Some(dev) = c.required_attr(t, &tpath, "dev") {
                    let dev = dev.into_owned();
                    match targets.get(&dev) {
                        Some(first) => {
                            let first = first.clone();
                            c.push(
                                t,
                                &tpath,
                                Some("dev"),
                                ErrorKind::Duplicate {
                                    field: "disk target".into(),
                                    value: dev,
                                    first,
                                },
                            )
                        }
                        None => {
                            targets.insert(dev, tpath.clone());
                        }
                    }
                }
            }
        }
        // A path in the attribute of the other disk type is a classic slip (file= on a block
        // disk): libvirt silently ignores it and the guest gets no disk.
        let expect = match d.attr("type").as_deref() {
            Some("block") => Some(("dev", "file")),
            Some("file") | None => Some(("file", "dev")),
            _ => None,
        };
        if let (Some(s), Some((want, wrong))) = (d.child("source"), expect) {
            if s.attr(want).is_none() && s.attr(wrong).is_some() {
                c.push(
                    s,
                    &format!("{path}/source"),
                    None,
                    ErrorKind::MissingAttribute(want.into()),
                );
            }
        }
        check_boot(c, d, &path);
    }

    let count = devs.children_named("interface").count();
    for (i, n) in devs.children_named("interface").enumerate() {
        let path = indexed_path(dp, "interface", i, count);
        c.enum_attr::<InterfaceType>(n, &path, "type", true);
        if let Some(m) = n.child("mac") {
            let mpath = format!("{path}/mac");
            if let Some(a) = c.required_attr(m, &mpath, "address") {
                match Mac::parse(&a) {
                    None => c.invalid(
                        m,
                        &mpath,
                        Some("address"),
                        &a,
                        "expected six hex bytes like 52:54:00:12:34:56",
                    ),
                    Some(mac) if mac.is_multicast() => c.invalid(
                        m,
                        &mpath,
                        Some("address"),
                        &a,
                        "multicast addresses cannot be used by an interface",
                    ),
                    Some(_) => {}
                }
            }
        }
        let count = n.children_named("portForward").count();
        for (j, pf) in n.children_named("portForward").enumerate() {
            let ppath = indexed_path(&path, "portForward", j, count);
            c.enum_attr::<PortProto>(pf, &ppath, "proto", true);
            let count = pf.children_named("range").count();
            for (k, r) in pf.children_named("range").enumerate() {
                let rpath = indexed_path(&ppath, "range", k, count);
                for a in ["start", "end", "to"] {
                    let v = if a == "start" {
                        c.required_attr(r, &rpath, a)
                    } else {
                        r.attr(a)
                    };
                    if let Some(v) = v {
                        if !matches!(parse_uint::<u16>(&v), Some(p) if p > 0) {
                            c.invalid(r, &rpath, Some(a), &v, "expected a port number 1-65535");
                        }
                    }
                }
            }
        }
        check_boot(c, n, &path);
    }

    let count = devs.children_named("graphics").count();
    for (i, g) in devs.children_named("graphics").enumerate() {
        let path = indexed_path(dp, "graphics", i, count);
        c.enum_attr::<GraphicsType>(g, &path, "type", true);
        if let Some(port) = g.attr("port") {
            if !matches!(port.trim().parse::<i32>(), Ok(p) if (-1..=65535).contains(&p)) {
                c.invalid(
                    g,
                    &path,
                    Some("port"),
                    &port,
                    "expected -1 (automatic) or 0-65535",
                );
            }
        }
        if let Some(a) = g.attr("autoport") {
            if a != "yes" && a != "no" {
                c.invalid(g, &path, Some("autoport"), &a, "expected yes or no");
            }
        }
    }

    for kind in ["serial", "console", "channel", "parallel"] {
        let count = devs.children_named(kind).count();
        for (i, s) in devs.children_named(kind).enumerate() {
            let path = indexed_path(dp, kind, i, count);
            c.enum_attr::<ChardevType>(s, &path, "type", false);
            let t = s.attr("type").map(|t| ChardevType::from(t.as_ref()));
            let spath = format!("{path}/source");
            let src = s.child("source");
            match (t, src) {
                (
                    Some(
                        ChardevType::File
                        | ChardevType::Unix
                        | ChardevType::Pipe
                        | ChardevType::Dev,
                    ),
                    Some(src),
                ) if kind != "channel"
                    && src.attr("path").is_none()
                    && src.attr("mode").as_deref() != Some("bind") =>
                {
                    c.push(
                        src,
                        &spath,
                        None,
                        ErrorKind::MissingAttribute("path".into()),
                    );
                }
                (Some(ChardevType::Tcp), Some(src)) => {
                    if let Some(svc) = src.attr("service") {
                        if parse_uint::<u16>(&svc).is_none() && svc.parse::<i32>().is_ok() {
                            c.invalid(src, &spath, Some("service"), &svc, "expected a port number");
                        }
                    }
                }
                _ => {}
            }
        }
    }

    let count = devs.children_named("input").count();
    for (i, inp) in devs.children_named("input").enumerate() {
        let path = indexed_path(dp, "input", i, count);
        c.enum_attr::<InputType>(inp, &path, "type", true);
        c.enum_attr::<InputBus>(inp, &path, "bus", false);
    }
    let count = devs.children_named("video").count();
    for (i, v) in devs.children_named("video").enumerate() {
        let path = indexed_path(dp, "video", i, count);
        if let Some(m) = v.child("model") {
            c.enum_attr::<VideoModel>(m, &format!("{path}/model"), "type", true);
        }
    }
    let count = devs.children_named("rng").count();
    for (i, r) in devs.children_named("rng").enumerate() {
        let path = indexed_path(dp, "rng", i, count);
        c.required_attr(r, &path, "model");
        match r.child("backend") {
            Some(b) => c.enum_attr::<RngBackend>(b, &format!("{path}/backend"), "model", true),
            None => c.push(r, &path, None, ErrorKind::MissingElement("backend".into())),
        }
    }
    let count = devs.children_named("memballoon").count();
    for (i, m) in devs.children_named("memballoon").enumerate() {
        let path = indexed_path(dp, "memballoon", i, count);
        c.enum_attr::<MemballoonModel>(m, &path, "model", true);
    }
    for kind in ["hostdev", "redirdev", "filesystem"] {
        let count = devs.children_named(kind).count();
        for (i, h) in devs.children_named(kind).enumerate() {
            let path = indexed_path(dp, kind, i, count);
            check_boot(c, h, &path);
        }
    }
    per_device_boot
}
