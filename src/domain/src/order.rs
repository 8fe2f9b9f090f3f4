//! libvirt's canonical element orders (from virDomainDefFormatInternal and the per-device
//! formatters of libvirt 9.0). New elements are inserted by these lists so that what Vireo
//! writes reads like what libvirt itself writes.

/// Children of `<domain>`.
pub const DOMAIN: &[&str] = &[
    "name",
    "uuid",
    "genid",
    "title",
    "description",
    "metadata",
    "maxMemory",
    "memory",
    "currentMemory",
    "blkiotune",
    "memtune",
    "memoryBacking",
    "vcpu",
    "vcpus",
    "iothreads",
    "iothreadids",
    "cputune",
    "numatune",
    "resource",
    "sysinfo",
    "bootloader",
    "bootloader_args",
    "os",
    "idmap",
    "features",
    "cpu",
    "clock",
    "on_poweroff",
    "on_reboot",
    "on_crash",
    "on_lockfailure",
    "pm",
    "perf",
    "devices",
    "seclabel",
    "keywrap",
    "launchSecurity",
];

/// Children of `<devices>`.
pub const DEVICES: &[&str] = &[
    "emulator",
    "disk",
    "controller",
    "lease",
    "filesystem",
    "interface",
    "smartcard",
    "serial",
    "parallel",
    "console",
    "channel",
    "input",
    "tpm",
    "graphics",
    "sound",
    "audio",
    "video",
    "hostdev",
    "redirdev",
    "redirfilter",
    "hub",
    "watchdog",
    "memballoon",
    "rng",
    "nvram",
    "panic",
    "shmem",
    "memory",
    "iommu",
    "vsock",
    "crypto",
];

/// Children of `<os>`.
pub const OS: &[&str] = &[
    "type",
    "firmware",
    "init",
    "initarg",
    "initenv",
    "initdir",
    "inituser",
    "initgroup",
    "loader",
    "nvram",
    "kernel",
    "initrd",
    "cmdline",
    "dtb",
    "root",
    "acpi",
    "boot",
    "bootmenu",
    "bios",
    "smbios",
];

/// Children of `<features>` (the ones Vireo edits, in libvirt's order).
pub const FEATURES: &[&str] = &[
    "acpi",
    "apic",
    "pae",
    "hap",
    "viridian",
    "privnet",
    "hyperv",
    "kvm",
    "xen",
    "pvspinlock",
    "capabilities",
    "pmu",
    "vmport",
    "gic",
    "smm",
    "ioapic",
    "hpt",
    "htm",
    "nested-hv",
    "msrs",
    "ccf-assist",
    "cfpc",
    "sbbc",
    "ibs",
    "tcg",
    "async-teardown",
];

/// Children of `<disk>`.
pub const DISK: &[&str] = &[
    "driver",
    "auth",
    "source",
    "backingStore",
    "backenddomain",
    "geometry",
    "blockio",
    "mirror",
    "target",
    "iotune",
    "readonly",
    "shareable",
    "transient",
    "serial",
    "wwn",
    "vendor",
    "product",
    "encryption",
    "boot",
    "alias",
    "address",
];

/// Children of `<interface>`.
pub const INTERFACE: &[&str] = &[
    "mac",
    "source",
    "vlan",
    "virtualport",
    "bandwidth",
    "port",
    "ip",
    "route",
    "portForward",
    "script",
    "downscript",
    "backenddomain",
    "target",
    "guest",
    "model",
    "driver",
    "backend",
    "tune",
    "teaming",
    "link",
    "mtu",
    "coalesce",
    "boot",
    "rom",
    "alias",
    "address",
];

/// Children of `<graphics>`.
pub const GRAPHICS: &[&str] = &[
    "listen",
    "channel",
    "image",
    "jpeg",
    "zlib",
    "playback",
    "streaming",
    "mouse",
    "filetransfer",
    "clipboard",
    "gl",
    "audio",
];

/// Children of `<serial>`, `<console>`, `<channel>`.
pub const CHARDEV: &[&str] = &["source", "protocol", "log", "target", "alias", "address"];

/// Children of `<rng>`.
pub const RNG: &[&str] = &["rate", "backend", "driver", "alias", "address"];

/// Children of `<input>`, `<video>`, `<memballoon>`.
pub const SIMPLE_DEVICE: &[&str] = &["source", "model", "driver", "stats", "alias", "address"];

/// Children of `<controller>`.
pub const CONTROLLER: &[&str] = &["model", "target", "driver", "alias", "address", "pcihole64"];

/// The child order of a device element named `tag`, for the devices that can carry an
/// `<address>`; `None` for one Vireo has no table for.
pub fn device_children(tag: &str) -> Option<&'static [&'static str]> {
    match tag {
        "disk" => Some(DISK),
        "interface" => Some(INTERFACE),
        "controller" => Some(CONTROLLER),
        "rng" => Some(RNG),
        "serial" | "console" | "channel" => Some(CHARDEV),
        "input" | "video" | "memballoon" => Some(SIMPLE_DEVICE),
        _ => None,
    }
}

/// Children of `<cpu>`.
pub const CPU: &[&str] = &[
    "model",
    "vendor",
    "topology",
    "cache",
    "maxphysaddr",
    "feature",
    "numa",
];
