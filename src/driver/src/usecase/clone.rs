//! Cloning a machine, with virt-clone's meanings: a new definition with a new name, UUID and MAC
//! addresses, and copies of the images the machine writes to. `vireoctl clone` and the GUI's
//! Clone… both call [`plan`] and [`execute`] (or [`clone_machine`], both at once).
//!
//! What is copied and what is shared:
//! - a writable, non-shareable file disk is copied, whatever its declared format: a raw image
//!   as a sparse copy, a qcow2 image as a copy of its top file (a backing file its header names
//!   stays shared, and read-only as qcow2 makes it). The clone declares the original's format;
//!   nothing is probed. A qcow2 image whose header names its backing file relative to its own
//!   directory is copied only into that directory ([`CloneError::RelativeBacking`]);
//! - read-only and shareable disks, CD-ROMs and disks named in `skip_copy` are shared as they are;
//! - the kernel and initrd are copied when they are in Vireo's images directory (Vireo made them
//!   for the original, as the quick machine's initramfs), so that deleting either machine with
//!   its images leaves the other one bootable; boot files elsewhere (`/boot/vmlinuz`) are shared.
//!   They are named like the disks, in the same directory, even without `auto_clone` (as
//!   virt-clone does with an NVRAM file);
//! - with `preserve_data` nothing is copied: the given files are used as they are.
//!
//! What changes besides: the title goes (as in virt-clone, so that two cards do not read
//! alike), a `<sysinfo>` system UUID follows the new UUID, interfaces lose their host-side
//! target name, a fixed VNC port becomes autoport, and a VNC socket or a file or unix serial
//! port gets a path of its own (under the clone's runtime directory when it was under the
//! original's, else named like a copied image), so both machines can run at once.
//!
//! A copied disk is copied only while the original is shut off ([`CloneError::OriginalActive`]),
//! and under a shared lock on its image, so an original that starts meanwhile cannot write to it.
//! Destinations are never overwritten: a given one that exists is refused, and generated ones
//! are numbered until free. A failed or cancelled clone removes every file it made and defines
//! nothing.

use super::copy::{self, CopyError};
use super::undefine::in_images;
use crate::connection::DriverError;
use crate::definition::{check_name, Definition};
use crate::state::DomainState;
use crate::{Connection, MachineInfo};
use std::fmt;
use std::fs::{File, OpenOptions};
use std::ops::ControlFlow;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use vireo_domain::{ChardevType, DiskDevice, DiskType, Domain, ImageFormat, Mac, Uuid};

/// What to clone and how (virt-clone's options).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CloneRequest {
    /// The machine to clone (name or UUID).
    pub original: String,
    /// The new name; `None` with `auto_clone` picks [`clone_name`].
    pub name: Option<String>,
    /// Destinations of the copied disks, in their document order (`--file`).
    pub files: Vec<PathBuf>,
    /// Generates the name and the destinations not given (`--auto-clone`).
    pub auto_clone: bool,
    /// Copies nothing: `files` are used as they are (`--preserve-data`).
    pub preserve_data: bool,
    /// Disk targets to share instead of copying (`--skip-copy`).
    pub skip_copy: Vec<String>,
    /// MAC addresses for the interfaces in order; `RANDOM` or missing ones are generated.
    pub macs: Vec<String>,
}

impl CloneRequest {
    /// virt-clone's `--original A --auto-clone`.
    pub fn auto(original: &str, name: Option<&str>) -> CloneRequest {
        CloneRequest {
            original: original.to_owned(),
            name: name.map(str::to_owned),
            auto_clone: true,
            ..CloneRequest::default()
        }
    }
}

/// Which image of the machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageRole {
    /// A disk, by its target (`vda`), or `disk[N]` when it has none.
    Disk(String),
    Kernel,
    Initrd,
}

impl fmt::Display for ImageRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImageRole::Disk(t) => write!(f, "disk {t}"),
            ImageRole::Kernel => f.write_str("kernel"),
            ImageRole::Initrd => f.write_str("initrd"),
        }
    }
}

/// One image the clone gets a copy of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageCopy {
    pub role: ImageRole,
    pub source: PathBuf,
    pub destination: PathBuf,
    /// The declared format (`driver@type`), which the clone declares too.
    pub format: Option<ImageFormat>,
    /// The source's size when planned.
    pub bytes: u64,
}

/// Why an image is shared rather than copied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShareReason {
    ReadOnly,
    Shareable,
    Cdrom,
    /// Named in `skip_copy`.
    Skipped,
    /// `preserve_data`: the given file, used as it is.
    Preserved,
    /// A boot file outside Vireo's images directory (not made for this machine).
    NotVireoMade,
}

/// One image the clone uses as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedImage {
    pub role: ImageRole,
    pub path: PathBuf,
    pub reason: ShareReason,
}

/// The checked clone, before anything is copied or defined.
#[derive(Debug, Clone)]
pub struct ClonePlan {
    /// The original's name.
    pub original: String,
    pub name: String,
    pub uuid: String,
    /// The clone's definition (validated).
    pub definition: Definition,
    pub copies: Vec<ImageCopy>,
    pub shared: Vec<SharedImage>,
    /// Other changes a user may want to know about (a VNC port made automatic, ...).
    pub notes: Vec<String>,
}

/// How far [`execute`] has got.
#[derive(Debug, Clone, Copy)]
pub struct Progress<'a> {
    /// The image being copied.
    pub copy: &'a ImageCopy,
    /// Its place among `count` copies (0-based).
    pub index: usize,
    pub count: usize,
    /// Bytes of this image done.
    pub copied: u64,
    /// Bytes of all images done, of `total`.
    pub done: u64,
    pub total: u64,
}

/// A finished clone.
#[derive(Debug, Clone)]
pub struct Cloned {
    pub info: MachineInfo,
    pub copies: Vec<ImageCopy>,
    pub shared: Vec<SharedImage>,
}

#[derive(Debug, thiserror::Error)]
pub enum CloneError {
    /// The original is not found, its definition does not parse, or defining the clone failed.
    #[error(transparent)]
    Driver(#[from] DriverError),
    #[error("{0}")]
    InvalidName(vireo_domain::Errors),
    #[error("domain '{0}' already exists")]
    NameTaken(String),
    #[error("a name is required for the clone (--name NAME, or --auto-clone)")]
    NeedsName,
    #[error("domain '{name}' is {state}: shut it off first; its disk images would be copied while it writes to them")]
    OriginalActive { name: String, state: DomainState },
    #[error("{}: in use by a running machine", .0.display())]
    ImageInUse(PathBuf),
    #[error("{role}: no destination for its copy (give --file PATH, or --auto-clone)")]
    NeedsFile { role: ImageRole },
    #[error("more destinations ({given}) than disk images to copy ({wanted})")]
    TooManyFiles { given: usize, wanted: usize },
    #[error("{}: already exists; a clone never overwrites a file", .0.display())]
    DestinationExists(PathBuf),
    #[error("{}: the destination must be an absolute path", .0.display())]
    RelativeDestination(PathBuf),
    #[error("{}: given as the destination of two images", .0.display())]
    DuplicateDestination(PathBuf),
    #[error("{role}: {} is both the source and the destination", .path.display())]
    DestinationIsSource { role: ImageRole, path: PathBuf },
    #[error("{role}: with --preserve-data, {} is used as it is, but it does not exist", .path.display())]
    PreservedMissing { role: ImageRole, path: PathBuf },
    #[error("{role}: {why}; share it instead (--skip-copy)")]
    NotCopyable { role: ImageRole, why: String },
    #[error("{role}: {}'s qcow2 header names its backing file '{backing}' relative to its directory, so its copy must stay in that directory (not {})", .image.display(), .destination.display())]
    RelativeBacking {
        role: ImageRole,
        image: PathBuf,
        destination: PathBuf,
        backing: String,
    },
    #[error("--mac {0}: not a unicast MAC address")]
    BadMac(String),
    #[error("{}: {source}", .path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the clone was cancelled; its copies were removed")]
    Cancelled,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CloneError + '_ {
    move |source| CloneError::Io {
        path: path.to_owned(),
        source,
    }
}

/// virt-clone's name for a clone of `original`: `NAME-clone`, then `NAME-clone1`, `NAME-clone2`,
/// ... as `taken` says; a clone of `NAME-cloneN` is `NAME-clone(N+1)` or later, not
/// `NAME-cloneN-clone`.
pub fn clone_name(original: &str, taken: impl Fn(&str) -> bool) -> String {
    let numbered = original.rfind("-clone").and_then(|i| {
        let digits = &original[i + "-clone".len()..];
        if !digits.chars().all(|c| c.is_ascii_digit()) {
            return None;
        }
        Some((i, digits.parse::<u64>().unwrap_or(0)))
    });
    let (base, start) = match numbered {
        Some((i, n)) => (format!("{}-clone", &original[..i]), n.saturating_add(1)),
        None => {
            let base = format!("{original}-clone");
            if !taken(&base) {
                return base;
            }
            (base, 1)
        }
    };
    (start..)
        .map(|n| format!("{base}{n}"))
        .find(|c| !taken(c))
        .unwrap_or(base)
}

/// A file name's stem and extension (with its dot); virt-clone takes up to seven characters
/// after the last dot as an extension.
fn split_ext(file: &str) -> (&str, &str) {
    match file.rfind('.') {
        Some(i) if i > 0 && file.len() - i - 1 <= 7 => (&file[..i], &file[i..]),
        _ => (file, ""),
    }
}

/// The name of a copy of `path`, in the same directory: the stem becomes the new machine's name
/// when it is the original's name (`a.qcow2` -> `b.qcow2`) or starts with it and a dash
/// (`a-initrd.img` -> `b-initrd.img`), else `STEM-clone` (`disk.raw` -> `disk-clone.raw`).
pub fn derived_path(path: &Path, original: &str, new: &str) -> PathBuf {
    let dir = path.parent().unwrap_or(Path::new(""));
    let Some(file) = path.file_name() else {
        return path.to_owned();
    };
    let Some(file) = file.to_str() else {
        let mut s = file.to_owned();
        s.push("-clone");
        return dir.join(s);
    };
    let (stem, ext) = split_ext(file);
    let stem = if stem == original {
        new.to_owned()
    } else if let Some(rest) = stem.strip_prefix(original).filter(|r| r.starts_with('-')) {
        format!("{new}{rest}")
    } else {
        format!("{stem}-clone")
    };
    dir.join(format!("{stem}{ext}"))
}

/// `path`, or the first of `STEM-1.EXT`, `STEM-2.EXT`, ... that `taken` says is free.
fn free_path(path: PathBuf, taken: impl Fn(&Path) -> bool) -> PathBuf {
    if !taken(&path) {
        return path;
    }
    let dir = path.parent().unwrap_or(Path::new("")).to_owned();
    let file = path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    let (stem, ext) = split_ext(&file);
    (1u64..)
        .map(|n| dir.join(format!("{stem}-{n}{ext}")))
        .find(|p| !taken(p))
        .unwrap_or(path)
}

/// A path of the clone's own for a socket or log file of the original: the same name under the
/// clone's runtime directory when it was under the original's, else [`derived_path`].
fn own_path(conn: &Connection, path: &str, original: &str, new: &str) -> String {
    let p = Path::new(path);
    let run = conn.paths().machine_runtime(original);
    match p.strip_prefix(&run) {
        Ok(rest) if !rest.as_os_str().is_empty() => conn.paths().machine_runtime(new).join(rest),
        _ => derived_path(p, original, new),
    }
    .display()
    .to_string()
}

fn exists(p: &Path) -> bool {
    std::fs::symlink_metadata(p).is_ok()
}

/// What the plan decided for one image: copy it to a destination, or share it.
enum Decision {
    Copy(ImageCopy),
    Share(SharedImage),
}

/// The planning state: destinations handed out so far and `--file`s not yet used.
struct Destinations<'r> {
    req: &'r CloneRequest,
    next_file: usize,
    planned: Vec<PathBuf>,
}

impl Destinations<'_> {
    fn taken(&self, p: &Path) -> bool {
        exists(p) || self.planned.iter().any(|q| q == p)
    }

    /// The next `--file`, checked, or `None` when all are used.
    fn given(&mut self) -> Result<Option<PathBuf>, CloneError> {
        let Some(p) = self.req.files.get(self.next_file) else {
            return Ok(None);
        };
        self.next_file += 1;
        if !p.is_absolute() {
            return Err(CloneError::RelativeDestination(p.clone()));
        }
        if self.planned.contains(p) {
            return Err(CloneError::DuplicateDestination(p.clone()));
        }
        if !self.req.preserve_data && exists(p) {
            return Err(CloneError::DestinationExists(p.clone()));
        }
        self.planned.push(p.clone());
        Ok(Some(p.clone()))
    }

    /// A generated destination beside `source`.
    fn generated(&mut self, source: &Path, original: &str, new: &str) -> PathBuf {
        let p = free_path(derived_path(source, original, new), |p| self.taken(p));
        self.planned.push(p.clone());
        p
    }
}

/// Checks that `source` can be copied and reads its size.
fn source_size(role: &ImageRole, source: &Path) -> Result<u64, CloneError> {
    let m = std::fs::metadata(source).map_err(io(source))?;
    if !m.is_file() {
        return Err(CloneError::NotCopyable {
            role: role.clone(),
            why: format!("{} is not a regular file", source.display()),
        });
    }
    Ok(m.len())
}

/// Decides one writable disk: its copy (or preserved file), per the request.
fn plan_disk(
    dests: &mut Destinations<'_>,
    role: ImageRole,
    source: &Path,
    format: Option<ImageFormat>,
    names: (&str, &str),
) -> Result<Decision, CloneError> {
    if dests.req.preserve_data {
        let Some(path) = dests.given()? else {
            return Err(CloneError::NeedsFile { role });
        };
        if !path.exists() {
            return Err(CloneError::PreservedMissing { role, path });
        }
        return Ok(Decision::Share(SharedImage {
            role,
            path,
            reason: ShareReason::Preserved,
        }));
    }
    let bytes = source_size(&role, source)?;
    let destination = match dests.given()? {
        Some(p) => p,
        None if dests.req.auto_clone => dests.generated(source, names.0, names.1),
        None => return Err(CloneError::NeedsFile { role }),
    };
    if destination == source {
        return Err(CloneError::DestinationIsSource {
            role,
            path: destination,
        });
    }
    if format == Some(ImageFormat::Qcow2) {
        if let Some(backing) = copy::qcow2_backing_name(source).map_err(io(source))? {
            let dir = |p: &Path| {
                p.parent()
                    .map(|d| std::fs::canonicalize(d).unwrap_or_else(|_| d.to_owned()))
            };
            if !backing.starts_with('/') && dir(source) != dir(&destination) {
                return Err(CloneError::RelativeBacking {
                    role,
                    image: source.to_owned(),
                    destination,
                    backing,
                });
            }
        }
    }
    Ok(Decision::Copy(ImageCopy {
        role,
        source: source.to_owned(),
        destination,
        format,
        bytes,
    }))
}

/// The name of the clone: the request's, checked, or a generated one.
fn new_name(conn: &Connection, req: &CloneRequest, original: &str) -> Result<String, CloneError> {
    let taken = |n: &str| conn.info(n).is_ok() || conn.store().file(n).exists();
    let name = match &req.name {
        Some(n) => n.clone(),
        None if req.auto_clone => clone_name(original, taken),
        None => return Err(CloneError::NeedsName),
    };
    check_name(&name).map_err(CloneError::InvalidName)?;
    if taken(&name) {
        return Err(CloneError::NameTaken(name));
    }
    Ok(name)
}

/// The clone's MACs: the request's in order (`RANDOM` for a new one), new ones for the rest.
fn next_mac(req: &CloneRequest, i: usize) -> Result<String, CloneError> {
    match req.macs.get(i).map(|m| m.trim()) {
        Some(m) if !m.eq_ignore_ascii_case("random") => match Mac::parse(m) {
            Some(mac) if !mac.is_multicast() => Ok(mac.to_string()),
            _ => Err(CloneError::BadMac(m.to_owned())),
        },
        _ => Ok(Mac::new_qemu()
            .map_err(io(Path::new("/dev/urandom")))?
            .to_string()),
    }
}

/// Gives the document its new identity: name, UUID (also in `<sysinfo>`), no title.
fn set_identity(dom: &mut Domain, name: &str, uuid: &str) {
    dom.set_name(name);
    dom.set_uuid(uuid);
    dom.set_title(None);
    for sysinfo in dom.document_mut().root_mut().children_named_mut("sysinfo") {
        for system in sysinfo.children_named_mut("system") {
            for entry in system.children_named_mut("entry") {
                if entry.attr("name").as_deref() == Some("uuid") {
                    entry.set_text(uuid);
                }
            }
        }
    }
}

/// New MACs, no host-side interface names, automatic VNC ports and paths of its own for
/// sockets and serial files.
fn set_devices(
    conn: &Connection,
    req: &CloneRequest,
    dom: &mut Domain,
    names: (&str, &str),
    notes: &mut Vec<String>,
) -> Result<(), CloneError> {
    let Some(devices) = dom.devices() else {
        return Ok(());
    };
    let counts = (
        devices.count("interface"),
        devices.count("graphics"),
        devices.count("serial"),
        devices.count("console"),
    );
    let mut devices = dom.devices_mut();
    for i in 0..counts.0 {
        let mac = next_mac(req, i)?;
        if let Some(mut iface) = devices.interface_mut(i) {
            iface.set_mac(Some(&mac));
            iface.element_mut().remove_children_named("target");
        }
    }
    for i in 0..counts.1 {
        let Some(mut g) = devices.graphics_mut(i) else {
            continue;
        };
        if let Some(port) = g.port().filter(|&p| p > 0) {
            if g.autoport() != Some(true) {
                g.set_port(Some(-1), Some(true));
                notes.push(format!("VNC port {port} made automatic (autoport)"));
            }
        }
        if let Some(socket) = g.socket() {
            let own = own_path(conn, &socket, names.0, names.1);
            let had_attr = g.element().attr("socket").is_some();
            g.set_socket(&own);
            if had_attr {
                g.element_mut().set_attr("socket", &own);
            }
        }
    }
    for serial in [true, false] {
        let n = if serial { counts.2 } else { counts.3 };
        for i in 0..n {
            let c = if serial {
                devices.serial_mut(i)
            } else {
                devices.console_mut(i)
            };
            let Some(mut c) = c else { continue };
            if !matches!(
                c.chardev_type(),
                Some(ChardevType::File | ChardevType::Unix)
            ) {
                continue;
            }
            if let Some(p) = c.source_path() {
                c.set_source_path(Some(&own_path(conn, &p, names.0, names.1)));
            }
        }
    }
    Ok(())
}

/// What the plan reads of one `<disk>`.
struct DiskFacts {
    index: usize,
    target: String,
    kind: Option<DiskType>,
    device: DiskDevice,
    source: Option<String>,
    format: Option<ImageFormat>,
    readonly: bool,
    shareable: bool,
}

/// Decides every disk: copied (to a destination), preserved or shared.
fn plan_disks(
    dests: &mut Destinations<'_>,
    dom: &mut Domain,
    names: (&str, &str),
    out: &mut Vec<Decision>,
) -> Result<(), CloneError> {
    let Some(devices) = dom.devices() else {
        return Ok(());
    };
    let disks: Vec<DiskFacts> = devices
        .disks()
        .iter()
        .enumerate()
        .map(|(i, d)| DiskFacts {
            index: i,
            target: d.target_dev().unwrap_or_else(|| format!("disk[{}]", i + 1)),
            kind: d.disk_type(),
            device: d.device(),
            source: d.source(),
            format: d.format(),
            readonly: d.readonly(),
            shareable: d.shareable(),
        })
        .collect();
    for d in disks {
        let Some(source) = d.source.filter(|s| !s.trim().is_empty()) else {
            continue; // an empty drive: nothing to copy or share
        };
        let path = PathBuf::from(source.trim());
        let role = ImageRole::Disk(d.target.clone());
        let share = if d.device == DiskDevice::Cdrom {
            Some(ShareReason::Cdrom)
        } else if d.readonly {
            Some(ShareReason::ReadOnly)
        } else if d.shareable {
            Some(ShareReason::Shareable)
        } else if dests.req.skip_copy.contains(&d.target) {
            Some(ShareReason::Skipped)
        } else {
            None
        };
        if let Some(reason) = share {
            out.push(Decision::Share(SharedImage { role, path, reason }));
            continue;
        }
        if !matches!(d.kind, None | Some(DiskType::File)) {
            let kind = d.kind.map(|k| k.to_string()).unwrap_or_default();
            return Err(CloneError::NotCopyable {
                role,
                why: format!("a type='{kind}' disk is not an image file"),
            });
        }
        let decision = plan_disk(dests, role, &path, d.format, names)?;
        let new_source = match &decision {
            Decision::Copy(c) => &c.destination,
            Decision::Share(s) => &s.path,
        };
        let new_source = new_source.display().to_string();
        if let Some(mut disk) = dom.devices_mut().disk_mut(d.index) {
            disk.set_source(Some(&new_source));
        }
        out.push(decision);
    }
    Ok(())
}

/// Decides the kernel and initrd: copied when Vireo made them (in its images directory).
fn plan_boot_files(
    conn: &Connection,
    dests: &mut Destinations<'_>,
    dom: &mut Domain,
    names: (&str, &str),
    out: &mut Vec<Decision>,
) -> Result<(), CloneError> {
    let images = conn.paths().images();
    let (kernel, initrd) = dom
        .os()
        .map(|os| (os.kernel(), os.initrd()))
        .unwrap_or_default();
    for (role, file) in [(ImageRole::Kernel, kernel), (ImageRole::Initrd, initrd)] {
        let Some(file) = file.filter(|f| !f.trim().is_empty()) else {
            continue;
        };
        let path = PathBuf::from(file.trim());
        let vireo_made = in_images(&file, &images).filter(|p| p.is_file());
        let (Some(source), false) = (vireo_made, dests.req.preserve_data) else {
            let reason = if dests.req.preserve_data {
                ShareReason::Preserved
            } else {
                ShareReason::NotVireoMade
            };
            out.push(Decision::Share(SharedImage { role, path, reason }));
            continue;
        };
        let bytes = source_size(&role, &source)?;
        let destination = dests.generated(&source, names.0, names.1);
        let text = destination.display().to_string();
        let mut os = dom.os_mut();
        match role {
            ImageRole::Kernel => os.set_kernel(Some(&text)),
            _ => os.set_initrd(Some(&text)),
        }
        out.push(Decision::Copy(ImageCopy {
            role,
            source,
            destination,
            format: None,
            bytes,
        }));
    }
    Ok(())
}

/// Checks a clone and works out its definition, copies and shared images; copies and defines
/// nothing.
pub fn plan(conn: &Connection, req: &CloneRequest) -> Result<ClonePlan, CloneError> {
    let original = conn
        .store()
        .lookup(&req.original)
        .map_err(DriverError::from)?;
    let name = new_name(conn, req, &original.name)?;
    let uuid = Uuid::new_v4()
        .map_err(io(Path::new("/dev/urandom")))?
        .to_string();
    let names = (original.name.as_str(), name.as_str());
    let mut dom = original.dom.clone();
    set_identity(&mut dom, &name, &uuid);
    let mut notes = Vec::new();
    set_devices(conn, req, &mut dom, names, &mut notes)?;
    let mut dests = Destinations {
        req,
        next_file: 0,
        planned: Vec::new(),
    };
    let mut decisions = Vec::new();
    plan_disks(&mut dests, &mut dom, names, &mut decisions)?;
    if dests.next_file < req.files.len() {
        return Err(CloneError::TooManyFiles {
            given: req.files.len(),
            wanted: dests.next_file,
        });
    }
    plan_boot_files(conn, &mut dests, &mut dom, names, &mut decisions)?;
    let (mut copies, mut shared) = (Vec::new(), Vec::new());
    for d in decisions {
        match d {
            Decision::Copy(c) => copies.push(c),
            Decision::Share(s) => shared.push(s),
        }
    }
    if copies.iter().any(|c| matches!(c.role, ImageRole::Disk(_))) {
        original_shut_off(conn, &original.name)?;
    }
    let definition = Definition::from_domain(dom).map_err(DriverError::Invalid)?;
    Ok(ClonePlan {
        original: original.name,
        name,
        uuid,
        definition,
        copies,
        shared,
        notes,
    })
}

fn original_shut_off(conn: &Connection, name: &str) -> Result<(), CloneError> {
    let (state, _) = conn.state(name)?;
    if state.is_active() {
        return Err(CloneError::OriginalActive {
            name: name.to_owned(),
            state,
        });
    }
    Ok(())
}

/// Files made by a clone, removed when it fails (dropped without [`Made::keep`]).
struct Made(Vec<PathBuf>);

impl Made {
    fn keep(mut self) {
        self.0.clear();
    }
}

impl Drop for Made {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Copies the images of `plan` and defines the clone. `progress` hears after every block of
/// every copy (from the calling thread) and may cancel. On any failure, and on cancel, the
/// copies made so far are removed and nothing is defined.
pub fn execute(
    conn: &Connection,
    plan: &ClonePlan,
    progress: &mut dyn FnMut(&Progress<'_>) -> ControlFlow<()>,
) -> Result<Cloned, CloneError> {
    if plan
        .copies
        .iter()
        .any(|c| matches!(c.role, ImageRole::Disk(_)))
    {
        original_shut_off(conn, &plan.original)?;
    }
    if conn.info(&plan.name).is_ok() {
        return Err(CloneError::NameTaken(plan.name.clone()));
    }
    let mut sources = Vec::new();
    for c in &plan.copies {
        let f = File::open(&c.source).map_err(io(&c.source))?;
        // Only disks are written by a running machine (and locked by its helper).
        if matches!(c.role, ImageRole::Disk(_)) && !copy::lock_shared(&f).map_err(io(&c.source))? {
            return Err(CloneError::ImageInUse(c.source.clone()));
        }
        let m = f.metadata().map_err(io(&c.source))?;
        sources.push((f, m));
    }
    let total: u64 = sources.iter().map(|(_, m)| m.len()).sum();
    let count = plan.copies.len();
    let mut made = Made(Vec::new());
    let mut before = 0u64;
    for (index, (c, (src, meta))) in plan.copies.iter().zip(&sources).enumerate() {
        let mode = meta.permissions().mode() & 0o777 | 0o600;
        let dst = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&c.destination)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::AlreadyExists => {
                    CloneError::DestinationExists(c.destination.clone())
                }
                _ => io(&c.destination)(e),
            })?;
        made.0.push(c.destination.clone());
        let len = meta.len();
        let mut report = |copied: u64| {
            progress(&Progress {
                copy: c,
                index,
                count,
                copied,
                done: before + copied,
                total,
            })
        };
        if report(0).is_break() {
            return Err(CloneError::Cancelled);
        }
        copy::sparse_copy(src, &dst, len, &mut report).map_err(|e| match e {
            CopyError::Cancelled => CloneError::Cancelled,
            CopyError::Read(e) => io(&c.source)(e),
            CopyError::Write(e) => io(&c.destination)(e),
        })?;
        before += len;
    }
    let info = conn.define_xml(&plan.definition.to_xml())?;
    made.keep();
    Ok(Cloned {
        info,
        copies: plan.copies.clone(),
        shared: plan.shared.clone(),
    })
}

/// [`plan`] and [`execute`] in one call.
pub fn clone_machine(
    conn: &Connection,
    req: &CloneRequest,
    progress: &mut dyn FnMut(&Progress<'_>) -> ControlFlow<()>,
) -> Result<Cloned, CloneError> {
    let plan = plan(conn, req)?;
    execute(conn, &plan, progress)
}

#[cfg(test)]
mod tests;
