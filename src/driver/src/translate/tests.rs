//! One test per refusal message, plus the accepted forms.

use super::*;
use vireo_domain::Domain;
use vireo_vmm_api::config::{CpuFeature, Machine, ScsiDeviceKind};

/// The way out a CD-ROM off virtio-scsi is refused with (the machine is `t`).
pub(super) const SATA_CD: &str = "a CD-ROM drive on the sata bus is not supported; Vireo's \
    CD-ROM drives are on bus='scsi' (virtio-scsi): change the target to <target dev='sda' \
    bus='scsi'/> and remove its <address> with 'vireoctl edit t'";

pub(super) struct Fixture {
    pub(super) dir: PathBuf,
}

impl Fixture {
    pub(super) fn new() -> Fixture {
        let dir = std::env::temp_dir().join(format!(
            "vireo-translate-{}",
            vireo_domain::Uuid::new_v4().unwrap()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        for f in ["vmlinuz", "initrd", "disk.img", "disk.qcow2", "cd.iso"] {
            std::fs::write(dir.join(f), b"x").unwrap();
        }
        // The firmware a machine without a kernel boots: never the host's.
        std::fs::create_dir_all(dir.join("fw")).unwrap();
        std::fs::write(dir.join("fw/bios-256k.bin"), vec![0u8; 256 << 10]).unwrap();
        std::fs::write(dir.join("fw/vgabios-ramfb.bin"), vec![0u8; 40 << 10]).unwrap();
        std::fs::write(dir.join("fw/vgabios-stdvga.bin"), vec![0u8; 38 << 10]).unwrap();
        Fixture { dir }
    }
    pub(super) fn p(&self, f: &str) -> String {
        self.dir.join(f).display().to_string()
    }
    /// A complete, valid document with `devices` and `extra` spliced in.
    pub(super) fn xml(&self, dom_type: &str, os_extra: &str, extra: &str, devices: &str) -> String {
        format!(
            "<domain type='{dom_type}'><name>t</name><uuid>6695eb01-f6a4-4304-aaa9-f2b1b2a1c2d3</uuid>\
             <memory unit='MiB'>256</memory><vcpu>2</vcpu>\
             <os><type arch='x86_64'>hvm</type><kernel>{}</kernel>{os_extra}</os>{extra}\
             <devices>{devices}</devices></domain>",
            self.p("vmlinuz")
        )
    }
    /// The firmware and stores of the fixture: never the host's (OVMF is in `ovmf/` once a
    /// test puts it there).
    pub(super) fn sources(&self) -> Sources {
        Sources {
            firmware_dirs: vec![self.dir.join("fw")],
            ovmf_dirs: vec![self.dir.join("ovmf")],
            nvram_dir: self.dir.join("nvram"),
        }
    }
    pub(super) fn run(&self, xml: &str) -> Result<Translated, TranslateError> {
        let d = Domain::parse(xml).unwrap();
        translate_in(
            &d,
            &RunDir::new(self.dir.join("run")),
            &mut || Some(5907),
            &self.sources(),
        )
    }
    /// The VMM config of a document translate accepts, checked by the VMM's own validation.
    pub(super) fn accepted(&self, xml: &str) -> VmConfig {
        let t = self
            .run(xml)
            .unwrap_or_else(|e| panic!("refused: {e}\n{xml}"));
        t.config
            .validate()
            .unwrap_or_else(|e| panic!("the VMM would refuse: {e}\n{xml}"));
        t.config
    }
    pub(super) fn refused(&self, xml: &str) -> String {
        match self.run(xml) {
            Ok(t) => panic!("accepted: {xml}\n{t:?}"),
            Err(e) => e.to_string(),
        }
    }
    pub(super) fn dev(&self, devices: &str) -> String {
        self.refused(&self.xml("kvm", "", "", devices))
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn full_machine_translates() {
    let f = Fixture::new();
    let devices = format!(
        "<emulator>/usr/bin/vireo-vmm</emulator>\
         <disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='{}'/><target dev='vda' bus='virtio'/><serial>abc</serial></disk>\
         <disk type='file' device='disk'><source file='{}'/><target dev='vdb' bus='virtio'/><readonly/><shareable/></disk>\
         <disk type='file' device='cdrom'><source file='{}'/><target dev='sda' bus='scsi'/></disk>\
         <interface type='user'><mac address='52:54:00:aa:bb:cc'/><model type='virtio'/>\
           <portForward proto='tcp'><range start='2222' to='22'/></portForward>\
           <portForward proto='udp' address='127.0.0.2'><range start='5000' end='5001'/></portForward></interface>\
         <serial type='pty'><target port='0'/></serial><console type='pty'><target type='serial' port='0'/></console>\
         <input type='keyboard' bus='ps2'/><input type='keyboard' bus='virtio'/><input type='tablet' bus='usb'/>\
         <graphics type='vnc' port='-1' autoport='yes' passwd='secret'><listen type='address' address='127.0.0.1'/></graphics>\
         <video><model type='virtio'><resolution x='1024' y='768'/></model></video>\
         <rng model='virtio'><backend model='random'>/dev/urandom</backend></rng>\
         <memballoon model='none'/>",
        f.p("disk.qcow2"),
        f.p("disk.img"),
        f.p("cd.iso")
    );
    let xml = f.xml(
        "kvm",
        &format!("<initrd>{}</initrd><cmdline>console=ttyS0</cmdline><boot dev='hd'/>", f.p("initrd")),
        "<features><acpi/><apic/></features><clock offset='utc'/><on_reboot>restart</on_reboot><cpu mode='host-passthrough'><topology sockets='1' cores='2' threads='1'/></cpu>",
        &devices,
    );
    let t = f.run(&xml).unwrap();
    let c = &t.config;
    assert_eq!((c.memory_mib, c.vcpus), (256, 2));
    assert_eq!(c.cmdline, "console=ttyS0");
    assert_eq!(c.initrd.as_deref(), Some(f.dir.join("initrd").as_path()));
    assert_eq!(c.disks.len(), 2);
    assert_eq!(c.disks[0].format, DiskFormat::Qcow2);
    assert_eq!(c.disks[0].serial.as_deref(), Some("abc"));
    assert!(c.disks[1].readonly && c.disks[1].shareable);
    let ScsiDeviceKind::Cdrom { medium: Some(cd) } = &c.scsi[0].devices[0].kind else {
        panic!("no CD-ROM: {:?}", c.scsi);
    };
    assert!(cd.cdrom && cd.readonly);
    let NetBackend::UserNet { port_forwards } = &c.nets[0].backend;
    assert_eq!(c.nets[0].mac.to_string(), "52:54:00:aa:bb:cc");
    assert_eq!(port_forwards.len(), 3);
    assert_eq!(
        (port_forwards[0].host_port, port_forwards[0].guest_port),
        (2222, 22)
    );
    assert_eq!(
        (port_forwards[2].host_port, port_forwards[2].guest_port),
        (5001, 5001)
    );
    assert_eq!(
        c.serial.socket.as_deref(),
        Some(f.dir.join("run/serial").as_path())
    );
    assert_eq!(
        c.serial.log.as_deref(),
        Some(f.dir.join("run/serial.log").as_path())
    );
    let d = c.display.as_ref().unwrap();
    assert_eq!((d.width, d.height), (1024, 768));
    assert_eq!(d.vnc.tcp_port, Some(5907));
    assert_eq!(d.vnc.password.as_deref(), Some("secret"));
    assert_eq!(
        d.vnc.unix_socket.as_deref(),
        Some(f.dir.join("run/vnc").as_path())
    );
    assert!(c.input.keyboard && c.input.tablet && c.rng);
    assert_eq!(t.vnc_port, Some(5907));
    // The result is a config the VMM itself accepts.
    c.validate().unwrap();
}

#[test]
fn vnc_socket_and_defaults() {
    let f = Fixture::new();
    let t = f
        .run(&f.xml(
            "kvm",
            "",
            "",
            "<graphics type='vnc' socket='/tmp/x.sock'/><video/>",
        ))
        .unwrap();
    let d = t.config.display.unwrap();
    assert_eq!(d.vnc.unix_socket.as_deref(), Some(Path::new("/tmp/x.sock")));
    assert_eq!(d.vnc.tcp_port, None);
    assert_eq!((d.width, d.height), (1280, 800));
    let n = f
        .run(&f.xml(
            "kvm",
            "",
            "",
            "<graphics type='vnc'><listen type='none'/></graphics>",
        ))
        .unwrap();
    let nd = n.config.display.unwrap();
    assert_eq!(
        (nd.vnc.tcp_port, nd.vnc.unix_socket.as_deref()),
        (None, Some(f.dir.join("run/vnc").as_path()))
    );
    let t = f
        .run(&f.xml(
            "kvm",
            "",
            "",
            "<graphics type='vnc' port='5911' autoport='no' passwd='x'/>",
        ))
        .unwrap();
    assert_eq!(t.config.display.unwrap().vnc.tcp_port, Some(5911));
    let t = f
        .run(&f.xml(
            "kvm",
            "",
            "",
            "<serial type='file'><source path='/tmp/s.log'/></serial>",
        ))
        .unwrap();
    assert_eq!(
        t.config.serial.log.as_deref(),
        Some(Path::new("/tmp/s.log"))
    );
    assert_eq!(t.config.serial.socket, None);
    assert!(t.config.display.is_none());
    // No MAC: a stable one derived from the UUID.
    let a = f
        .run(&f.xml("kvm", "", "", "<interface type='user'/>"))
        .unwrap();
    let b = f
        .run(&f.xml("kvm", "", "", "<interface type='user'/>"))
        .unwrap();
    assert_eq!(a.config.nets[0].mac, b.config.nets[0].mac);
}

#[test]
fn refusals_name_the_element() {
    let f = Fixture::new();
    let k = f.p("vmlinuz");
    let cases: Vec<(String, String)> = vec![
        (f.xml("xen", "", "", ""), "domain@type='xen': only kvm domains are supported".into()),
        (f.xml("kvm", "", "", "<interface type='bridge'><source bridge='br0'/></interface>"),
            "devices/interface[1]@type='bridge': not supported by the Vireo backend (use type='user')".into()),
        (f.xml("kvm", "", "", "<interface type='user'/><interface type='network'/>"),
            "devices/interface[2]@type='network': not supported by the Vireo backend (use type='user')".into()),
        (f.xml("kvm", "", "", "<interface type='user'><model type='e1000'/></interface>"),
            "devices/interface[1]/model@type='e1000': not supported (use virtio)".into()),
        (f.xml("kvm", "", "", "<interface type='user'><mac address='01:00:00:00:00:01'/></interface>"),
            "devices/interface[1]/mac@address: 01:00:00:00:00:01 is a multicast address".into()),
        (f.xml("kvm", "", "", "<interface type='user'><portForward proto='sctp'><range start='1'/></portForward></interface>"),
            "devices/interface[1]/portForward[1]@proto='sctp': use tcp or udp".into()),
        (f.xml("kvm", "", "", "<interface type='user'><portForward proto='tcp'><range start='80' exclude='yes'/></portForward></interface>"),
            "devices/interface[1]/portForward[1]/range[1]@exclude: not supported by the Vireo backend".into()),
        (f.xml("kvm", "", "", "<interface type='user'><filterref filter='x'/></interface>"),
            "devices/interface[1]/filterref: not supported by the Vireo backend".into()),
        ("<domain type='kvm'><name>t</name><memory>1024</memory><os><type>hvm</type><kernel>/x/vmlinuz</kernel></os></domain>".to_string(),
            "os/kernel: /x/vmlinuz: No such file or directory".into()),
        ("<domain type='kvm'><name>t</name><memory>1024</memory></domain>".into(),
            "os: missing element os".into()),
        (f.xml("kvm", "<initrd>/x/initrd.img</initrd>", "", ""), "os/initrd: /x/initrd.img: No such file or directory".into()),
        (f.xml("kvm", "<initrd>relative.img</initrd>", "", ""), "os/initrd: relative.img: must be an absolute path".into()),
        (format!("<domain type='kvm'><name>t</name><memory>1024</memory><os firmware='efi'><type>hvm</type><kernel>{k}</kernel></os></domain>"),
            "os@firmware='efi': a kernel in os/kernel is booted directly, without firmware (leave out the UEFI firmware or os/kernel)".into()),
        (f.xml("kvm", "<loader>/usr/share/OVMF/OVMF_CODE.fd</loader>", "", ""),
            "os/loader: a kernel in os/kernel is booted directly, without firmware (leave out os/loader or os/kernel)".into()),
        (f.xml("kvm", "<bootmenu enable='yes'/>", "", ""), "os/bootmenu: not supported by the Vireo backend".into()),
        (format!("<domain type='kvm'><name>t</name><memory>1024</memory><os><type arch='aarch64'>hvm</type><kernel>{k}</kernel></os></domain>"),
            "os/type@arch='aarch64': only x86_64 guests are supported".into()),
        (format!("<domain type='kvm'><name>t</name><memory>1024</memory><os><type>linux</type><kernel>{k}</kernel></os></domain>"),
            "os/type='linux': only hvm guests are supported".into()),
        (f.xml("kvm", "", "<currentMemory unit='MiB'>128</currentMemory>", ""),
            "currentMemory: memory ballooning is not supported (make it equal to memory)".into()),
        (f.xml("kvm", "", "<memoryBacking><hugepages/></memoryBacking>", ""), "memoryBacking: not supported by the Vireo backend".into()),
        (f.xml("kvm", "", "<cpu mode='custom'><model>EPYC</model></cpu>", ""),
            "cpu@mode='custom': only host-passthrough, host-model or maximum is supported".into()),
        (f.xml("kvm", "", "<cpu><topology sockets='1' cores='4' threads='1'/></cpu>", ""), "cpu/topology: 4 CPUs in the topology, 2 in vcpu".into()),
        (f.xml("kvm", "", "<features><hyperv/></features>", ""), "features/hyperv: not supported by the Vireo backend".into()),
        (f.xml("kvm", "", "<clock offset='localtime'/>", ""), "clock@offset='localtime': the guest clock is always UTC (use offset='utc')".into()),
        (f.xml("kvm", "", "<pm><suspend-to-mem enabled='yes'/></pm>", ""), "pm/suspend-to-mem: guest suspend is not supported (use enabled='no')".into()),
        (f.xml("kvm", "", "", "<disk type='block'><source dev='/dev/sda'/><target dev='vda'/></disk>"),
            "devices/disk[1]@type='block': not supported by the Vireo backend (use type='file')".into()),
        (f.xml("kvm", "", "", "<disk type='file' device='floppy'><source file='/f'/></disk>"),
            "devices/disk[1]@device='floppy': not supported by the Vireo backend (use disk or cdrom)".into()),
        (f.xml("kvm", "", "", &format!("<disk type='file'><driver name='qemu' type='vmdk'/><source file='{}'/></disk>", f.p("disk.img"))),
            "devices/disk[1]/driver@type='vmdk': not supported (use raw or qcow2)".into()),
        (f.xml("kvm", "", "", &format!("<disk type='file'><source file='{}'/><target dev='sda' bus='sata'/></disk>", f.p("disk.img"))),
            "devices/disk[1]/target@bus='sata': not supported by the Vireo backend (use bus='virtio' or bus='scsi')".into()),
        (f.xml("kvm", "", "", "<disk type='file'><source file='/no/such.img'/></disk>"),
            "devices/disk[1]/source@file: /no/such.img: No such file or directory".into()),
        (f.xml("kvm", "", "", "<disk type='file' device='cdrom'><target dev='sda' bus='sata'/></disk>"),
            format!("devices/disk[1]/target@bus='sata': {SATA_CD}")),
        (f.xml("kvm", "", "", &format!("<disk type='file'><source file='{0}'/></disk><disk type='file'><source file='{0}'/></disk>", f.p("disk.img"))),
            format!("devices/disk[2]/source: {} is used twice", f.p("disk.img"))),
        (f.xml("kvm", "", "", &format!("<disk type='file'><source file='{}'/><iotune/></disk>", f.p("disk.img"))),
            "devices/disk[1]/iotune: not supported by the Vireo backend".into()),
        (f.xml("kvm", "", "", "<graphics type='spice'/>"), "devices/graphics[1]@type='spice': not supported by the Vireo backend (use type='vnc')".into()),
        (f.xml("kvm", "", "", "<graphics type='vnc' listen='0.0.0.0'/>"), "devices/graphics[1]@listen='0.0.0.0': VNC listens on loopback only (use 127.0.0.1)".into()),
        (f.xml("kvm", "", "", "<graphics type='vnc' socket='/s'/><graphics type='vnc' socket='/s'/>"), "devices/graphics[2]: only one graphics device is supported".into()),
        (f.xml("kvm", "", "", "<graphics type='vnc'/>"),
            "devices/graphics[1]: a VNC TCP listener needs a password (add passwd='...', or use <listen type='none'/> for local clients only)".into()),
        (f.xml("kvm", "", "", "<graphics type='vnc' port='5900' autoport='no' passwd='x'/><video><model type='none'/></video>"),
            "devices/video[1]/model@type='none': a graphics device needs a video device".into()),
        (f.xml("kvm", "", "", "<video><model type='vga'><resolution x='9000' y='10'/></model></video>"),
            "devices/video[1]/model/resolution: x and y must be 1..4096".into()),
        (f.xml("kvm", "", "", "<serial type='tcp'><source mode='bind' host='0' service='4555'/></serial>"),
            "devices/serial[1]@type='tcp': not supported by the Vireo backend (use pty, file or unix)".into()),
        (f.xml("kvm", "", "", "<serial type='pty'><target port='1'/></serial>"),
            "devices/serial[1]/target@port='1': only one serial port (COM1, port 0) is supported".into()),
        (f.xml("kvm", "", "", "<console type='pty'><target type='virtio'/></console>"),
            "devices/console[1]/target@type='virtio': not supported (only the serial console)".into()),
        (f.xml("kvm", "", "", "<input type='mouse' bus='ps2'/>"),
            "devices/input[1]@type='mouse': not supported by the Vireo backend (use keyboard or tablet)".into()),
        (f.xml("kvm", "", "", "<input type='tablet' bus='usb'/>"), "devices/input[1]: a tablet needs a graphics device".into()),
        (f.xml("kvm", "", "", "<input type='keyboard' bus='usb'/>"), "devices/input[1]@bus='usb': not supported for a keyboard (use bus='virtio')".into()),
        (f.xml("kvm", "", "", "<rng model='virtio'><backend model='egd' type='tcp'/></rng>"),
            "devices/rng[1]/backend@model='egd': not supported (use model='random')".into()),
        (f.xml("kvm", "", "", "<memballoon model='virtio'/>"), "devices/memballoon[1]@model='virtio': memory ballooning is not supported (use model='none')".into()),
        (f.xml("kvm", "", "", "<controller type='virtio-serial'/>"),
            "devices/controller[1]@type='virtio-serial': not supported by the Vireo backend (only pci-root, scsi model='virtio-scsi', sata, ide and usb model='none')".into()),
        (f.xml("kvm", "", "", "<sound model='ich9'/>"), "devices/sound[1]: not supported by the Vireo backend".into()),
        (f.xml("kvm", "", "", "<hostdev mode='subsystem' type='pci'/>"), "devices/hostdev[1]: not supported by the Vireo backend".into()),
        (f.xml("kvm", "", "", "<watchdog model='i6300esb'/>"), "devices/watchdog[1]: not supported by the Vireo backend".into()),
    ];
    for (xml, want) in cases {
        assert_eq!(f.refused(&xml), want, "for {xml}");
    }
}

#[test]
fn backing_store_chains() {
    let f = Fixture::new();
    let disk = |inner: &str| {
        f.xml(
            "kvm",
            "",
            "",
            &format!(
                "<disk type='file'><driver name='qemu' type='qcow2'/><source file='{}'/>{inner}\
                 <target dev='vda' bus='virtio'/></disk>",
                f.p("disk.qcow2")
            ),
        )
    };
    let chain = |inner: &str| f.run(&disk(inner)).unwrap().config.disks[0].backing.clone();
    // A chain of two, nearest layer first, ended by an empty element.
    let two = chain(&format!(
        "<backingStore type='file' index='1'><format type='qcow2'/><source file='{}'/>\
           <backingStore type='file' index='2'><format type='raw'/><source file='{}'/>\
             <backingStore/></backingStore></backingStore>",
        f.p("disk.qcow2"),
        f.p("disk.img")
    ));
    assert_eq!(
        two,
        vec![
            BackingConfig {
                path: f.dir.join("disk.qcow2"),
                format: DiskFormat::Qcow2
            },
            BackingConfig {
                path: f.dir.join("disk.img"),
                format: DiskFormat::Raw
            },
        ]
    );
    // No element and an empty one both mean "no backing file" to the VMM.
    assert_eq!(chain(""), vec![]);
    assert_eq!(chain("<backingStore/>"), vec![]);
    let raw_with_chain = format!(
        "<disk type='file'><driver name='qemu' type='raw'/><source file='{}'/>\
         <backingStore type='file'><format type='raw'/><source file='{}'/></backingStore></disk>",
        f.p("disk.img"),
        f.p("cd.iso")
    );
    let cases: Vec<(String, String)> = vec![
        (disk(&format!("<backingStore type='file'><source file='{}'/></backingStore>", f.p("disk.img"))),
            "devices/disk[1]/backingStore/format: missing: a backing file's format is never guessed from its content; add <format type='qcow2'/> or <format type='raw'/>".into()),
        (disk(&format!(
            "<backingStore type='file'><format type='qcow2'/><source file='{}'/>\
               <backingStore type='file'><source file='{}'/></backingStore></backingStore>",
            f.p("disk.qcow2"), f.p("disk.img"))),
            "devices/disk[1]/backingStore/backingStore/format: missing: a backing file's format is never guessed from its content; add <format type='qcow2'/> or <format type='raw'/>".into()),
        (disk(&format!("<backingStore type='file'><format type='vmdk'/><source file='{}'/></backingStore>", f.p("disk.img"))),
            "devices/disk[1]/backingStore/format@type='vmdk': not supported (use raw or qcow2)".into()),
        (disk("<backingStore type='block'><format type='raw'/><source dev='/dev/sda'/></backingStore>"),
            "devices/disk[1]/backingStore@type='block': not supported by the Vireo backend (use type='file')".into()),
        (disk(&format!("<backingStore><format type='raw'/><source file='{}'/></backingStore>", f.p("disk.img"))),
            "devices/disk[1]/backingStore: missing attribute type (only an empty <backingStore/> may leave it out)".into()),
        (disk("<backingStore type='file'><format type='raw'/></backingStore>"),
            "devices/disk[1]/backingStore/source: missing attribute file".into()),
        (disk("<backingStore type='file'><format type='raw'/><source file='/no/such.img'/></backingStore>"),
            "devices/disk[1]/backingStore/source@file: /no/such.img: No such file or directory".into()),
        (disk("<backingStore type='file'><format type='raw'/><source file='base.img'/></backingStore>"),
            "devices/disk[1]/backingStore/source@file: base.img: must be an absolute path".into()),
        (disk(&format!(
            "<backingStore type='file'><format type='raw'/><source file='{}'/>\
               <backingStore type='file'><format type='raw'/><source file='{}'/></backingStore></backingStore>",
            f.p("disk.img"), f.p("cd.iso"))),
            "devices/disk[1]/backingStore/backingStore: a raw image has no backing file".into()),
        (f.xml("kvm", "", "", &raw_with_chain), "devices/disk[1]/backingStore: a raw image has no backing file".into()),
        (f.xml("kvm", "", "", &format!(
            "<disk type='file'><driver name='qemu' type='qcow2'/><source file='{}'>\
               <dataStore type='file'><format type='raw'/><source file='{}'/></dataStore></source></disk>",
            f.p("disk.qcow2"), f.p("disk.img"))),
            "devices/disk[1]/source/dataStore: external data files are not supported (make a self-contained copy with qemu-img convert -O qcow2)".into()),
        (disk(&format!("<backingStore type='file'><format type='raw'/><source file='{}'/><encryption/></backingStore>", f.p("disk.img"))),
            "devices/disk[1]/backingStore/encryption: not supported by the Vireo backend".into()),
    ];
    for (xml, want) in cases {
        assert_eq!(f.refused(&xml), want, "for {xml}");
    }
}

#[test]
fn too_many_vcpus_and_virtio_devices() {
    let f = Fixture::new();
    let x = f
        .xml("kvm", "", "", "")
        .replace("<vcpu>2</vcpu>", "<vcpu>300</vcpu>");
    assert_eq!(f.refused(&x), "vcpu: 300 vCPUs is more than 255");
    let many = format!(
        "<disk type='file'><source file='{}'/><readonly/></disk>",
        f.p("disk.img")
    )
    .repeat(40);
    let e = f.dev(&many);
    assert!(e.starts_with("devices: 40 virtio devices, at most"), "{e}");
}

#[test]
fn x2apic_can_be_taken_away_and_nothing_else() {
    let f = Fixture::new();
    let with_cpu = |cpu: &str| {
        f.xml(
            "kvm",
            "",
            &format!("<cpu mode='host-passthrough'>{cpu}</cpu>"),
            "",
        )
    };
    let cfg = f
        .run(&with_cpu("<feature policy='disable' name='x2apic'/>"))
        .unwrap()
        .config;
    assert_eq!(cfg.cpu_features_off, [CpuFeature::X2apic]);
    assert!(f
        .run(&f.xml("kvm", "", "", ""))
        .unwrap()
        .config
        .cpu_features_off
        .is_empty());
    assert_eq!(
        f.refused(&with_cpu("<feature policy='disable' name='avx'/>")),
        "cpu/feature[1]@name='avx': the backend can take away x2apic only"
    );
    assert!(f
        .refused(&with_cpu("<feature policy='require' name='x2apic'/>"))
        .starts_with("cpu/feature[1]@policy='require': "));
}

/// The document with `os/type@machine='{m}'`.
fn on_machine(xml: &str, m: &str) -> String {
    xml.replace(
        "<type arch='x86_64'>",
        &format!("<type arch='x86_64' machine='{m}'>"),
    )
}

#[test]
fn machine_type_picks_the_platform() {
    let f = Fixture::new();
    let xml = f.xml("kvm", "", "", "");
    assert_eq!(f.run(&xml).unwrap().config.machine, Machine::Microvm);
    for (m, want) in [
        ("vireo", Machine::Microvm),
        ("microvm", Machine::Microvm),
        ("pc", Machine::Pc),
        ("pc-i440fx-7.2", Machine::Pc),
    ] {
        let t = f.run(&on_machine(&xml, m)).unwrap();
        assert_eq!(t.config.machine, want, "for {m}");
        t.config.validate().unwrap();
    }
    assert_eq!(
        f.refused(&on_machine(&xml, "q35")),
        "os/type@machine='q35': Vireo's PC platform is i440FX, it has no Q35 machine (use \
         machine='pc')"
    );
    assert_eq!(
        f.refused(&on_machine(&xml, "virt")),
        "os/type@machine='virt': not supported by the Vireo backend (use pc, pc-i440fx-*, \
         vireo or microvm)"
    );
    // The machine's own refusal comes before the devices'.
    let many = f.xml("kvm", "", "", &"<interface type='user'/>".repeat(40));
    assert!(f
        .refused(&on_machine(&many, "q35"))
        .starts_with("os/type@machine='q35': "));
}

#[test]
fn virtio_devices_fit_the_machine_type() {
    let f = Fixture::new();
    let disks = |n: usize| {
        f.xml(
            "kvm",
            "",
            "",
            &format!(
                "<disk type='file'><source file='{}'/><readonly/></disk>",
                f.p("disk.img")
            )
            .repeat(n),
        )
    };
    let xml = disks(Machine::Microvm.virtio_max() + 3);
    assert_eq!(
        f.refused(&xml),
        "devices: 20 virtio devices, at most 17 on the vireo machine type (machine='pc' has \
         room for 29)"
    );
    let t = f.run(&on_machine(&xml, "pc")).unwrap();
    assert_eq!(t.config.disks.len(), 20);
    t.config.validate().unwrap();
    // Exactly full is fine on either.
    f.run(&disks(17)).unwrap().config.validate().unwrap();
    let full = on_machine(&disks(29), "pc-i440fx-7.2");
    f.run(&full).unwrap().config.validate().unwrap();
    assert_eq!(
        f.refused(&on_machine(&disks(30), "pc")),
        "devices: 30 virtio devices, at most 29 on the pc machine type"
    );
}
