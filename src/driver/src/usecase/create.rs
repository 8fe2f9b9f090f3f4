//! Creating a machine: [`plan`] turns a [`NewMachine`] into the exact document and the list of
//! files to make, without side effects (`--print-xml`, the wizard's review); [`create`] makes
//! the files, checks, defines, and undoes what it made if the machine was not made.

use super::machine::{FirmwareBoot, Image, KernelBoot, Media, NewImageAt, NewMachine, Source};
use super::place::Place;
use super::shape;
use super::storage::{self, Made};
use super::DiskFormat;
use crate::connection::{Connection, DriverError, MachineInfo};
use crate::definition::Definition;
use crate::quick;
use crate::store::StoreError;
use std::path::PathBuf;

/// What [`create`] will do: the document it defines and the files it makes first.
#[derive(Debug, Clone)]
pub struct Plan {
    pub name: String,
    /// The document, exactly as it is defined (a UUID and MACs are already in it).
    pub xml: String,
    /// Disk images made before the machine is defined, in document order.
    pub images: Vec<PlannedImage>,
    /// The quick machine's initramfs, built before the machine is defined.
    pub quick: Option<QuickPlan>,
    pub autostart: bool,
    pub start: bool,
    pub transient: bool,
}

/// A disk image [`create`] makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedImage {
    pub path: PathBuf,
    pub size_bytes: u64,
    pub format: DiskFormat,
    /// The disk's place in the document.
    pub place: Place,
}

/// The quick machine's inputs and where its initramfs goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuickPlan {
    pub source: super::HostKernel,
    pub initrd: PathBuf,
}

/// The outcome of [`create`]: the machine exists. What failed after it was defined is
/// reported here, and the machine stays as it is.
#[derive(Debug)]
pub struct Created {
    pub info: MachineInfo,
    /// Why it could not be marked for autostart.
    pub autostart_error: Option<DriverError>,
    /// Why it did not start (the helper failed; the backend's checks passed before).
    pub start_error: Option<DriverError>,
}

/// The document and files for `m`, without side effects: nothing is written, nothing is
/// started. Refusals: an invalid or taken name, invalid values (all of them, each with its
/// place), a new image whose file exists, a source Vireo cannot use yet, and, for a machine
/// to start now, the backend's refusal (a kernel that is not there, ...).
pub fn plan(conn: &Connection, m: &NewMachine) -> Result<Plan, DriverError> {
    let mut quick_plan = None;
    let (boot, first_disk) = match &m.source {
        Source::Xml(text) => return plan_xml(conn, m, text),
        Source::Firmware(fw) => return plan_firmware(conn, m, fw),
        Source::Kernel(k) => (k.clone(), None),
        Source::DiskImage { path, format, boot } => (
            boot.clone(),
            Some((
                Image::Existing {
                    path: path.clone(),
                    format: *format,
                },
                Media::Disk,
                false,
            )),
        ),
        Source::HostKernel(h) => {
            // Only finds what would be used; the initramfs is built by `create`.
            let kernel = quick::find_kernel(h.kernel.as_deref(), h.modules.as_deref())?;
            quick::find_busybox(h.busybox.as_deref())?;
            let initrd = quick::initrd_path(&conn.paths().images(), &m.name);
            quick_plan = Some(QuickPlan {
                source: h.clone(),
                initrd: initrd.clone(),
            });
            let boot = KernelBoot {
                kernel: kernel.image,
                initrd: Some(initrd),
                cmdline: Some(quick::QUICK_CMDLINE.into()),
            };
            (boot, None)
        }
    };
    if boot.kernel.as_os_str().is_empty() {
        return Err(missing_file("domain/os/kernel", None, "kernel"));
    }
    let dom = shape::document(m, shape::Start::Kernel(&boot), &[])?;
    let disks = first_disk.into_iter().chain(
        m.disks
            .iter()
            .map(|d| (d.image.clone(), d.media, d.readonly)),
    );
    plan_disks(conn, m, dom, disks.collect(), quick_plan, false)
}

/// A machine its firmware boots: the description's disks, then the install ISO; the boot
/// order is checked as the backend checks it, so that a device listed to boot is there.
fn plan_firmware(
    conn: &Connection,
    m: &NewMachine,
    fw: &FirmwareBoot,
) -> Result<Plan, DriverError> {
    let mut disks: Vec<(Image, Media, bool)> = m
        .disks
        .iter()
        .map(|d| (d.image.clone(), d.media, d.readonly))
        .collect();
    if let Some(iso) = &fw.cdrom {
        disks.push((
            Image::Existing {
                path: iso.clone(),
                format: DiskFormat::Raw,
            },
            Media::Cdrom,
            true,
        ));
    }
    if disks.is_empty() {
        return Err(DriverError::Invalid(vireo_domain::Errors(vec![
            vireo_domain::Error::new(
                vireo_domain::ErrorKind::Constraint(
                    "nothing to boot: the firmware needs a disk or a CD-ROM (an ISO) to boot from"
                        .into(),
                ),
                "domain/devices",
                None,
            ),
        ])));
    }
    let media: Vec<Media> = m.disks.iter().map(|d| d.media).collect();
    let dom = shape::document(m, shape::Start::Firmware(fw), &media)?;
    // An ISO that boots first onto a disk made empty for it is an installer (a live ISO
    // without one is tried, not installed; an order the user gave is theirs to keep).
    let installs = fw.cdrom.is_some()
        && fw.order.is_empty()
        && m.disks
            .iter()
            .any(|d| d.media == Media::Disk && matches!(d.image, Image::New { .. }));
    plan_disks(conn, m, dom, disks, None, installs)
}

/// The rest of a plan: the disks attached in order, the consoles, the checks;
/// `installs_from_last`: the last disk is the CD-ROM of an install phase.
fn plan_disks(
    conn: &Connection,
    m: &NewMachine,
    mut dom: vireo_domain::Domain,
    disks: Vec<(Image, Media, bool)>,
    quick_plan: Option<QuickPlan>,
    installs_from_last: bool,
) -> Result<Plan, DriverError> {
    if crate::definition::check_name(&m.name).is_ok() {
        check_name_free(conn, &m.name)?;
    }
    let mut images = Vec::new();
    let mut in_images_dir = 0;
    let mut install_target = None;
    let mut attached = Vec::new();
    for (image, media, readonly) in disks {
        let (path, format, new) = match image {
            Image::Existing { path, format } => (path, format, None),
            Image::New {
                at,
                size_bytes,
                format,
            } => {
                let path = match at {
                    NewImageAt::Path(p) => p,
                    NewImageAt::ImagesDir => {
                        let ext = storage::extension(format);
                        let file = match in_images_dir {
                            0 => format!("{}.{ext}", m.name),
                            n => format!("{}-{n}.{ext}", m.name),
                        };
                        in_images_dir += 1;
                        conn.paths().images().join(file)
                    }
                };
                (path, format, Some(size_bytes))
            }
        };
        let index = shape::attach_disk(&mut dom, &path, format, media, readonly)?;
        install_target = dom
            .devices()
            .and_then(|d| d.disk(index))
            .and_then(|d| d.target_dev());
        attached.push((index, path, format, new));
    }
    // Places once every disk is in: a disk's path gains its index when a second one comes.
    for (index, path, format, new) in attached {
        let disk = dom.devices().and_then(|d| d.disk(index));
        let source = format!("{}/source", disk.as_ref().map_or("", |d| d.path()));
        if path.as_os_str().is_empty() {
            return Err(missing_file(&source, Some("file"), "disk image"));
        }
        if let Some(size_bytes) = new {
            let place = Place::new(source, Some("file"));
            if path.exists() {
                return Err(DriverError::ImageExists { path, place });
            }
            images.push(PlannedImage {
                path,
                size_bytes,
                format,
                place,
            });
        }
    }
    if let (true, Some(target)) = (installs_from_last, &install_target) {
        crate::install::mark(&mut dom, target);
    }
    shape::add_consoles(&mut dom, &m.graphics);
    crate::translate::firmware::check_boot_order(&dom)
        .map_err(|e| DriverError::unsupported(&dom, e))?;
    let d = Definition::from_domain(dom)?;
    if m.start || m.transient {
        // The files `create` makes are not there yet: a refusal for one of them is no refusal.
        let pending: Vec<Place> = images
            .iter()
            .map(|i| i.place.clone())
            .chain(
                quick_plan
                    .as_ref()
                    .map(|_| Place::new("domain/os/initrd", None)),
            )
            .collect();
        if let Err(e) = conn.start_check(&d) {
            if !e.places().iter().all(|p| pending.contains(p)) {
                return Err(e);
            }
        }
    }
    Ok(Plan {
        name: d.name.clone(),
        xml: d.to_xml(),
        images,
        quick: quick_plan,
        autostart: m.autostart && !m.transient,
        start: m.start || m.transient,
        transient: m.transient,
    })
}

/// A file the description must name and does not.
fn missing_file(path: &str, attribute: Option<&str>, what: &str) -> DriverError {
    let mut e = vireo_domain::Error::new(
        vireo_domain::ErrorKind::InvalidValue {
            field: what.into(),
            value: String::new(),
            reason: format!("choose a {what} file"),
        },
        path,
        None,
    );
    if let Some(a) = attribute {
        e = e.with_attribute(a);
    }
    DriverError::Invalid(vireo_domain::Errors(vec![e]))
}

/// A whole document as the source: defined as it is.
fn plan_xml(conn: &Connection, m: &NewMachine, text: &str) -> Result<Plan, DriverError> {
    let d = Definition::parse(text)?;
    check_name_free(conn, &d.name)?;
    Ok(Plan {
        name: d.name,
        xml: text.to_owned(),
        images: Vec::new(),
        quick: None,
        autostart: m.autostart && !m.transient,
        start: m.start || m.transient,
        transient: m.transient,
    })
}

/// A new machine never replaces one (a defined one, or a running transient one).
fn check_name_free(conn: &Connection, name: &str) -> Result<(), DriverError> {
    let taken = |uuid: Option<String>| {
        DriverError::Store(StoreError::NameTaken {
            name: name.to_owned(),
            uuid: uuid.unwrap_or_default(),
        })
    };
    match conn.store().load(name) {
        Ok(d) => return Err(taken(d.uuid)),
        Err(StoreError::NotFound(_)) => {}
        Err(e) => return Err(e.into()),
    }
    match conn.info(name) {
        Ok(info) => Err(taken(info.uuid)),
        Err(_) => Ok(()),
    }
}

/// Makes the machine of `plan`: its images and initramfs, then (for a machine to start now)
/// the backend's start check, then the definition (or the transient start), autostart and
/// start. If the machine is not made, every file made for it is removed again; once it is
/// defined, a failed start is reported in [`Created::start_error`] and the machine stays.
pub fn create(conn: &Connection, plan: &Plan) -> Result<Created, DriverError> {
    let mut made = Made::default();
    if let Some(q) = &plan.quick {
        let images = conn.paths().images();
        let built = quick::prepare(
            &images,
            &plan.name,
            q.source.kernel.as_deref(),
            q.source.modules.as_deref(),
            q.source.busybox.as_deref(),
        )?;
        made.push(built.initrd);
    }
    for image in &plan.images {
        storage::create_image(&image.path, image.size_bytes, image.format, &image.place)?;
        made.push(image.path.clone());
    }
    if plan.transient {
        let info = conn.create_transient(&plan.xml)?;
        made.keep();
        return Ok(Created {
            info,
            autostart_error: None,
            start_error: None,
        });
    }
    if plan.start {
        let d = Definition::parse(&plan.xml)?;
        conn.start_check(&d)?;
    }
    let info = conn.define_new_xml(&plan.xml)?;
    made.keep();
    let autostart_error = if plan.autostart {
        conn.set_autostart(&info.name, true).err()
    } else {
        None
    };
    let start_error = if plan.start {
        conn.start(&info.name).err()
    } else {
        None
    };
    let info = conn.info(&info.name).unwrap_or(info);
    Ok(Created {
        info,
        autostart_error,
        start_error,
    })
}
