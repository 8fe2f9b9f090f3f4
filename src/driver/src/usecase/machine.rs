//! The typed description of a new machine, as both front ends fill it in: what the user chose.
//! How Vireo writes it, and what a field left alone means, is [`super::shape`].

use std::path::PathBuf;
use vireo_domain::{BootDev, ImageFormat, LifecycleAction, Mac, PortForward, Uuid};

/// A new machine. Start from [`NewMachine::new`], which holds the shipped defaults, and
/// change what the user chose.
#[derive(Debug, Clone, PartialEq)]
pub struct NewMachine {
    /// Checked once, by [`super::plan`]: a valid name no other machine has.
    pub name: String,
    pub title: Option<String>,
    /// `None`: a random one (given, the document is reproducible, as with virt-install --uuid).
    pub uuid: Option<Uuid>,
    pub memory_mib: u64,
    pub vcpus: u32,
    /// The machine type (`os/type@machine`, virt-install's `--machine`). `None`: chosen by
    /// how the machine boots, `pc` for a firmware boot and Vireo's own virtio-mmio machine for
    /// a direct kernel boot; see [`super::shape`].
    pub machine: Option<String>,
    pub source: Source,
    /// The operating system, as libosinfo names it (`http://debian.org/debian/12`), kept in
    /// the document's `<metadata>` as virt-install and GNOME Boxes keep it.
    pub os: Option<String>,
    /// Further disks, after the source's own (a disk image source is the first disk).
    pub disks: Vec<DiskRequest>,
    /// User-mode network cards (the backend's only kind); empty for none.
    pub networks: Vec<Nic>,
    pub graphics: Graphics,
    pub lifecycle: Lifecycle,
    /// Start the machine whenever Vireo starts its autostart machines.
    pub autostart: bool,
    /// Start it once it is defined. A machine to start now is checked by the backend before
    /// anything is written, so nothing is left of one that could not start.
    pub start: bool,
    /// Start it without a definition (libvirt's `create`); `autostart` does not apply.
    pub transient: bool,
}

/// Where a new machine's system comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// This computer's kernel with a generated initramfs: the quick machine ([`crate::quick`]).
    HostKernel(HostKernel),
    /// A kernel file, booted directly.
    Kernel(KernelBoot),
    /// A disk image to import (as it is: never copied, never probed), booted with a kernel.
    DiskImage {
        path: PathBuf,
        format: DiskFormat,
        boot: KernelBoot,
    },
    /// The machine's firmware (a PC BIOS, or UEFI) boots what is on its disks and CD-ROMs: an
    /// installer or live ISO, or a disk image with its own boot loader.
    Firmware(FirmwareBoot),
    /// A whole domain document; the rest of the description is not used except `autostart`,
    /// `start` and `transient`.
    Xml(String),
}

/// A firmware boot, as virt-install's `--cdrom`, `--import` and `--boot hd,cdrom,menu=on,uefi`
/// say it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FirmwareBoot {
    /// An installer or live ISO in a CD-ROM drive after the machine's disks, booted first
    /// unless `order` says otherwise.
    pub cdrom: Option<PathBuf>,
    /// The boot order (`os/boot@dev`). Empty: the ISO first when there is one, then the first
    /// hard disk, then the first CD-ROM (a disk image with a boot loader boots as it is).
    pub order: Vec<BootDev>,
    /// The firmware's boot menu (`os/bootmenu`): `None` leaves it to the firmware (off).
    pub menu: Option<bool>,
    /// How long the menu waits for a key, in milliseconds.
    pub menu_timeout_ms: Option<u32>,
    /// A BIOS image instead of the default SeaBIOS (`os/loader`); with `uefi`, UEFI code
    /// instead of the OVMF Vireo picks.
    pub loader: Option<PathBuf>,
    /// UEFI firmware (OVMF) instead of the BIOS.
    pub uefi: bool,
}

/// The quick machine's inputs; `None` finds them on this computer (see [`crate::quick`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostKernel {
    pub kernel: Option<PathBuf>,
    pub modules: Option<PathBuf>,
    pub busybox: Option<PathBuf>,
}

/// Direct kernel boot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KernelBoot {
    pub kernel: PathBuf,
    pub initrd: Option<PathBuf>,
    pub cmdline: Option<String>,
}

/// The image formats the backend reads. A format is given, or read from a definition, or
/// raw; it is never guessed from an image's content (see [`super::storage`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum DiskFormat {
    #[default]
    Raw,
    Qcow2,
}

impl DiskFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            DiskFormat::Raw => "raw",
            DiskFormat::Qcow2 => "qcow2",
        }
    }

    /// `raw` or `qcow2`; anything else is `None`.
    pub fn parse(s: &str) -> Option<DiskFormat> {
        match s {
            "raw" => Some(DiskFormat::Raw),
            "qcow2" => Some(DiskFormat::Qcow2),
            _ => None,
        }
    }
}

impl From<DiskFormat> for ImageFormat {
    fn from(f: DiskFormat) -> ImageFormat {
        match f {
            DiskFormat::Raw => ImageFormat::Raw,
            DiskFormat::Qcow2 => ImageFormat::Qcow2,
        }
    }
}

/// A disk of a new machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskRequest {
    pub image: Image,
    pub media: Media,
    /// A CD-ROM is always read-only.
    pub readonly: bool,
}

impl DiskRequest {
    /// A read-write disk.
    pub fn disk(image: Image) -> DiskRequest {
        DiskRequest {
            image,
            media: Media::Disk,
            readonly: false,
        }
    }
}

/// The image behind a disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Image {
    /// A file that exists, attached as it is.
    Existing { path: PathBuf, format: DiskFormat },
    /// A file [`super::create()`] makes with `qemu-img`; refused if the file exists.
    New {
        at: NewImageAt,
        size_bytes: u64,
        format: DiskFormat,
    },
}

/// Where a new image goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NewImageAt {
    Path(PathBuf),
    /// Vireo's images directory, named after the machine (`NAME.qcow2`, `NAME-1.img`, ...).
    ImagesDir,
}

/// What the guest sees a disk as.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Media {
    #[default]
    Disk,
    Cdrom,
}

/// A user-mode network card.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Nic {
    /// `None`: a random one in QEMU's range.
    pub mac: Option<Mac>,
    /// Host ports forwarded to the guest.
    pub port_forwards: Vec<PortForward>,
}

/// The machine's screen.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Graphics {
    /// No display (the serial console only).
    None,
    /// VNC for Vireo's own clients only, through a private socket in the runtime directory.
    #[default]
    Local,
    /// VNC on a unix socket of the user's choosing.
    Socket {
        path: PathBuf,
        password: Option<String>,
    },
    /// VNC on a TCP listener (loopback), which needs a password; `port` `None` picks one.
    Tcp {
        port: Option<u16>,
        listen: String,
        password: String,
    },
}

/// What happens when the guest powers off, reboots or crashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lifecycle {
    pub on_poweroff: LifecycleAction,
    pub on_reboot: LifecycleAction,
    pub on_crash: LifecycleAction,
}
