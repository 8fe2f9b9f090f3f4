//! Enumerated attribute values with libvirt's spellings. Every enum keeps values it does not
//! know in `Other`, so reading never fails and writing never loses them; the validator
//! reports `Other` where libvirt would reject the value.

macro_rules! value_enum {
    ($(#[$m:meta])* $name:ident { $($var:ident = $s:literal),* $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum $name {
            $($var,)*
            /// A value libvirt 9.0 does not define (kept verbatim).
            Other(String),
        }

        impl $name {
            /// libvirt's spellings, in libvirt's order.
            pub const KNOWN: &'static [&'static str] = &[$($s),*];

            pub fn as_str(&self) -> &str {
                match self {
                    $(Self::$var => $s,)*
                    Self::Other(s) => s,
                }
            }

            pub fn is_known(&self) -> bool {
                !matches!(self, Self::Other(_))
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                match s {
                    $($s => Self::$var,)*
                    other => Self::Other(other.to_string()),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

value_enum!(
    /// `domain@type`.
    VirtType {
        None = "none", Qemu = "qemu", Kqemu = "kqemu", Kvm = "kvm", Xen = "xen", Lxc = "lxc",
        Uml = "uml", Openvz = "openvz", Test = "test", Vmware = "vmware", Hyperv = "hyperv",
        Vbox = "vbox", Phyp = "phyp", Parallels = "parallels", Bhyve = "bhyve", Vz = "vz",
        Hvf = "hvf",
    }
);

value_enum!(
    /// `on_poweroff`, `on_reboot`, `on_crash` (the coredump ones only for on_crash).
    LifecycleAction {
        Destroy = "destroy", Restart = "restart", Preserve = "preserve",
        RenameRestart = "rename-restart", CoredumpDestroy = "coredump-destroy",
        CoredumpRestart = "coredump-restart",
    }
);

/// Which lifecycle element.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LifecycleEvent {
    Poweroff,
    Reboot,
    Crash,
}

impl LifecycleEvent {
    pub fn element(self) -> &'static str {
        match self {
            LifecycleEvent::Poweroff => "on_poweroff",
            LifecycleEvent::Reboot => "on_reboot",
            LifecycleEvent::Crash => "on_crash",
        }
    }

    /// Whether libvirt accepts `action` for this event.
    pub fn allows(self, action: &LifecycleAction) -> bool {
        match action {
            LifecycleAction::Other(_) => false,
            LifecycleAction::CoredumpDestroy | LifecycleAction::CoredumpRestart => {
                self == LifecycleEvent::Crash
            }
            _ => true,
        }
    }
}

value_enum!(
    /// `cpu@mode`.
    CpuMode { Custom = "custom", HostModel = "host-model", HostPassthrough = "host-passthrough", Maximum = "maximum" }
);

value_enum!(
    /// `os/type` text.
    OsType { Hvm = "hvm", Xen = "xen", Linux = "linux", Exe = "exe", Xenpvh = "xenpvh" }
);

value_enum!(
    /// `os@firmware`.
    Firmware { Bios = "bios", Efi = "efi" }
);

value_enum!(
    /// `os/boot@dev`.
    BootDev { Fd = "fd", Cdrom = "cdrom", Hd = "hd", Network = "network" }
);

value_enum!(
    /// `clock@offset`.
    ClockOffset { Utc = "utc", Localtime = "localtime", Variable = "variable", Timezone = "timezone", Absolute = "absolute" }
);

value_enum!(
    /// `disk@type`.
    DiskType {
        File = "file", Block = "block", Dir = "dir", Network = "network", Volume = "volume",
        Nvme = "nvme", Vhostuser = "vhostuser", Vhostvdpa = "vhostvdpa",
    }
);

value_enum!(
    /// `disk@device`.
    DiskDevice { Disk = "disk", Cdrom = "cdrom", Floppy = "floppy", Lun = "lun" }
);

value_enum!(
    /// `disk/target@bus`.
    DiskBus {
        Ide = "ide", Fdc = "fdc", Scsi = "scsi", Virtio = "virtio", Xen = "xen", Usb = "usb",
        Uml = "uml", Sata = "sata", Sd = "sd",
    }
);

value_enum!(
    /// `disk/driver@type` (image format).
    ImageFormat {
        Raw = "raw", Qcow2 = "qcow2", Dir = "dir", Bochs = "bochs", Cloop = "cloop",
        Dmg = "dmg", Iso = "iso", Vpc = "vpc", Vdi = "vdi", Fat = "fat", Vhd = "vhd",
        Ploop = "ploop", Cow = "cow", Qcow = "qcow", Qed = "qed", Vmdk = "vmdk", Luks = "luks",
        None = "none", Auto = "auto",
    }
);

value_enum!(
    /// `interface@type`.
    InterfaceType {
        User = "user", Ethernet = "ethernet", Vhostuser = "vhostuser", Server = "server",
        Client = "client", Mcast = "mcast", Network = "network", Bridge = "bridge",
        Internal = "internal", Direct = "direct", Hostdev = "hostdev", Udp = "udp",
        Vdpa = "vdpa", Null = "null", Vds = "vds",
    }
);

value_enum!(
    /// `graphics@type`.
    GraphicsType {
        Sdl = "sdl", Vnc = "vnc", Rdp = "rdp", Desktop = "desktop", Spice = "spice",
        EglHeadless = "egl-headless", Dbus = "dbus",
    }
);

value_enum!(
    /// Type of a character device (`serial@type`, `console@type`, ...).
    ChardevType {
        Null = "null", Vc = "vc", Pty = "pty", Dev = "dev", File = "file", Pipe = "pipe",
        Stdio = "stdio", Udp = "udp", Tcp = "tcp", Unix = "unix", Spicevmc = "spicevmc",
        Spiceport = "spiceport", Nmdm = "nmdm", QemuVdagent = "qemu-vdagent", Dbus = "dbus",
    }
);

value_enum!(
    /// `input@type`.
    InputType { Mouse = "mouse", Tablet = "tablet", Keyboard = "keyboard", Passthrough = "passthrough", Evdev = "evdev" }
);

value_enum!(
    /// `input@bus`.
    InputBus { Ps2 = "ps2", Usb = "usb", Xen = "xen", Parallels = "parallels", Virtio = "virtio", None = "none" }
);

value_enum!(
    /// `video/model@type`.
    VideoModel {
        Vga = "vga", Cirrus = "cirrus", Vmvga = "vmvga", Xen = "xen", Vbox = "vbox", Qxl = "qxl",
        Parallels = "parallels", Virtio = "virtio", Gop = "gop", None = "none", Bochs = "bochs",
        Ramfb = "ramfb",
    }
);

value_enum!(
    /// `memballoon@model`.
    MemballoonModel {
        Virtio = "virtio", Xen = "xen", None = "none", VirtioTransitional = "virtio-transitional",
        VirtioNonTransitional = "virtio-non-transitional",
    }
);

value_enum!(
    /// `rng/backend@model`.
    RngBackend { Random = "random", Egd = "egd", Builtin = "builtin" }
);

value_enum!(
    /// `portForward@proto`.
    PortProto { Tcp = "tcp", Udp = "udp" }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_spellings() {
        for s in LifecycleAction::KNOWN {
            assert_eq!(LifecycleAction::from(*s).as_str(), *s);
        }
        assert_eq!(
            LifecycleAction::from("rename-restart"),
            LifecycleAction::RenameRestart
        );
        assert_eq!(DiskType::from("weird"), DiskType::Other("weird".into()));
        assert!(!DiskType::from("weird").is_known());
    }

    #[test]
    fn coredump_only_on_crash() {
        assert!(LifecycleEvent::Crash.allows(&LifecycleAction::CoredumpRestart));
        assert!(!LifecycleEvent::Reboot.allows(&LifecycleAction::CoredumpRestart));
        assert!(LifecycleEvent::Poweroff.allows(&LifecycleAction::Preserve));
    }
}
