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

mod identity;
mod naming;

use super::copy::{self, CopyError};
use super::undefine::in_images;
use crate::connection::DriverError;
use crate::definition::{check_name, Definition};
use crate::state::DomainState;
use crate::{Connection, MachineInfo};
use identity::{set_devices, set_identity};
use naming::free_path;
pub use naming::{clone_name, derived_path};
use std::fmt;
use std::fs::{File, OpenOptions};
use std::ops::ControlFlow;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use vireo_domain::{DiskDevice, DiskType, Domain, ImageFormat, Uuid};

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
