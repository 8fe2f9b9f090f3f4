//! The details (properties) window of the real `vireo` under Xvfb, with the real driver
//! (vireoctl as supervisor, vireo-vmm) in an isolated XDG home: every page in English and
//! German, edits typed into fields and checked in the stored definition, a refused edit that
//! keeps what was stored, disks and port forwards added and removed, and for a running tiny
//! guest on the local /dev/kvm (a PVH program that spins) the usage graphs and the
//! "needs restart" note. Screenshots: target/test-output/details-*.png.

mod common;
mod vireoctl_support;

use std::process::Command;
use std::thread::sleep;
use std::time::{Duration, Instant};

use common::{output_dir, Desktop, Image};
use vireoctl_support::{guest, vireoctl, Home};

const PAGES: [&str; 6] = ["overview", "boot", "disks", "network", "display", "xml"];

fn launch(desktop: &Desktop, h: &Home, extra: &[(&str, &str)]) -> common::App {
    desktop.launch_with_driver(&h.root, &vireoctl(), &vireoctl_support::vmm(), extra)
}

/// Defines `name`: a tiny guest with a raw disk, user networking with one port forward, a
/// local-only VNC display, a serial port, a description and a command line.
fn define(h: &Home, name: &str, code: &[u8]) -> std::path::PathBuf {
    vireoctl_support::vmm();
    let kernel = h.file(&format!("{name}.elf"), &guest::pvh_elf(code));
    let disk = h.file(&format!("{name}-data.img"), &vec![0u8; 1 << 20]);
    let xml = format!(
        "<domain type='kvm'>
  <name>{name}</name>
  <description>first words</description>
  <memory unit='MiB'>64</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64'>hvm</type>
    <kernel>{kernel}</kernel>
    <cmdline>console=ttyS0</cmdline>
  </os>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='raw'/>
      <source file='{disk}'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <interface type='user'>
      <portForward proto='tcp'>
        <range start='2222' to='22'/>
      </portForward>
      <model type='virtio'/>
      <backend type='passt'/>
    </interface>
    <serial type='pty'>
      <target port='0'/>
    </serial>
    <graphics type='vnc'>
      <listen type='none'/>
    </graphics>
    <video>
      <model type='vga'>
        <resolution x='320' y='200'/>
      </model>
    </video>
  </devices>
</domain>
",
        kernel = kernel.display(),
        disk = disk.display(),
    );
    let file = h.file(&format!("{name}.xml"), xml.as_bytes());
    h.ok(&["define", file.to_str().unwrap()]);
    disk
}

fn stored(h: &Home, name: &str) -> String {
    h.ok(&["dumpxml", "--inactive", name])
}

/// The details window's own actions, reached over D-Bus like the main window's.
struct Details<'a> {
    desktop: &'a Desktop,
    path: String,
    x11: String,
}

impl<'a> Details<'a> {
    /// Opens the properties of `name` and finds the window's exported action group.
    fn open(desktop: &'a Desktop, app: &common::App, name: &str, title: &str) -> Details<'a> {
        app.activate_win_with("machine-properties", &format!("'{name}'"));
        let x11 = desktop.wait_for_window(title);
        let start = Instant::now();
        loop {
            for n in 2..40 {
                let path = format!("{}/window/{n}", common::APP_PATH);
                let found = Details::gdbus(desktop, &path, "org.gtk.Actions.List", &[])
                    .is_ok_and(|out| out.contains("'field-errors'"));
                if found {
                    sleep(Duration::from_millis(800));
                    return Details { desktop, path, x11 };
                }
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "no details window on the bus\n{}",
                app.log_text()
            );
            sleep(Duration::from_millis(200));
        }
    }

    fn gdbus(desktop: &Desktop, path: &str, method: &str, args: &[&str]) -> Result<String, String> {
        let out = Command::new("gdbus")
            .args([
                "call",
                "--session",
                "--timeout",
                "10",
                "--dest",
                common::APP_ID,
            ])
            .args(["--object-path", path, "--method", method])
            .args(args)
            .env("DBUS_SESSION_BUS_ADDRESS", &desktop.bus_address)
            .output()
            .expect("gdbus (libglib2.0-bin) runs");
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// Activates `win.<name>` of the details window with a GVariant text parameter.
    fn activate(&self, name: &str, param: Option<&str>) {
        let param = param.map_or("[]".to_owned(), |p| format!("[<{p}>]"));
        Details::gdbus(
            self.desktop,
            &self.path,
            "org.gtk.Actions.Activate",
            &[name, &param, "{}"],
        )
        .unwrap_or_else(|e| panic!("win.{name}{param} of the details window: {e}"));
        sleep(Duration::from_millis(400));
    }

    fn state(&self, name: &str) -> String {
        let out = Details::gdbus(
            self.desktop,
            &self.path,
            "org.gtk.Actions.Describe",
            &[name],
        )
        .unwrap_or_else(|e| panic!("describing win.{name}: {e}"));
        match (out.find("[<"), out.rfind(">]")) {
            (Some(s), Some(e)) if s + 2 <= e => out[s + 2..e].to_owned(),
            _ => panic!("win.{name} has no state: {out}"),
        }
    }

    fn wait_state(&self, name: &str, what: &str, ok: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            let state = self.state(name);
            if ok(&state) {
                return state;
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "win.{name} never showed {what}: {state}"
            );
            sleep(Duration::from_millis(200));
        }
    }

    fn page(&self, page: &str) {
        self.activate("page", Some(&format!("'{page}'")));
    }

    fn shot(&self, name: &str) -> std::path::PathBuf {
        let path = output_dir().join(format!("{name}.png"));
        Image::save_window(&self.desktop.display, &self.x11, &path);
        path
    }

    /// Focuses a field by its mnemonic, replaces its text and presses Enter (apply).
    fn type_into(&self, mnemonic: &str, text: &str) {
        self.desktop.press(&self.x11, &format!("alt+{mnemonic}"));
        self.desktop.press(&self.x11, "ctrl+a");
        let typed = Command::new("xdotool")
            .args(["type", "--delay", "15", text])
            .env("DISPLAY", &self.desktop.display)
            .status()
            .unwrap();
        assert!(typed.success());
        self.desktop.press(&self.x11, "Return");
    }
}

/// How many pixels of a PNG are (nearly) `colour`.
fn pixels_like(png: &std::path::Path, colour: &str) -> u64 {
    let out = Command::new("convert")
        .arg(png)
        .args([
            "-alpha", "off", "-fuzz", "6%", "-fill", "black", "+opaque", colour,
        ])
        .args([
            "-fill",
            "white",
            "-opaque",
            colour,
            "-format",
            "%[fx:mean*w*h]",
            "info:",
        ])
        .output()
        .expect("ImageMagick convert runs");
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim()
        .parse::<f64>()
        .unwrap_or_else(|_| panic!("convert said: {text}"))
        .round() as u64
}

fn wait_stored(h: &Home, name: &str, what: &str, ok: impl Fn(&str) -> bool) -> String {
    let start = Instant::now();
    loop {
        let xml = stored(h, name);
        if ok(&xml) {
            return xml;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the stored definition never got {what}:\n{xml}"
        );
        sleep(Duration::from_millis(200));
    }
}

fn wait_machine(app: &common::App, needle: &str) {
    let start = Instant::now();
    while !app.win_action_state("machine-states").contains(needle) {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the view never showed {needle}\n{}",
            app.log_text()
        );
        sleep(Duration::from_millis(100));
    }
}

#[test]
fn details_show_every_page_and_edits_reach_the_definition() {
    let h = Home::new("guid");
    let mut code = guest::print("hello\n");
    code.extend(guest::echo_loop());
    define(&h, "tiny", &code);
    let extra_disk = h.file("extra.qcow2", b"QFI\xfb\0\0\0\x03");

    for lang in ["de", "en"] {
        let desktop = Desktop::start(&format!("details-{lang}"));
        let env: &[(&str, &str)] = if lang == "de" {
            &[("LANGUAGE", "de")]
        } else {
            &[]
        };
        let app = launch(&desktop, &h, env);
        desktop.wait_for_window("Vireo");
        wait_machine(&app, "'tiny': 'shut off'");
        let title = if lang == "de" {
            "Eigenschaften von „tiny“"
        } else {
            "Properties of “tiny”"
        };
        let details = Details::open(&desktop, &app, "tiny", title);
        for page in PAGES {
            details.page(page);
            let shot = details.shot(&format!("details-{page}-{lang}"));
            assert!(
                Image::deviation(&shot) > 0.02,
                "{} is blank",
                shot.display()
            );
        }
        if lang == "de" {
            assert!(app.quit().success());
            continue;
        }

        // Typed edits: the description applies at once, the command line too (it is off).
        details.page("overview");
        details.type_into("e", "second words");
        wait_stored(&h, "tiny", "the new description", |x| {
            x.contains("<description>second words</description>")
        });
        details.page("boot");
        details.type_into("c", "console=ttyS0 quiet");
        let xml = wait_stored(&h, "tiny", "the new command line", |x| {
            x.contains("<cmdline>console=ttyS0 quiet</cmdline>")
        });
        assert!(
            xml.contains("<description>second words</description>"),
            "{xml}"
        );
        details.shot("details-boot-edited-en");
        // The memory spin button, reached by its mnemonic like the text fields.
        details.page("overview");
        details.type_into("m", "128");
        wait_stored(&h, "tiny", "128 MiB of memory", |x| {
            x.contains("<memory unit='KiB'>131072</memory>")
                || x.contains("<memory unit='MiB'>128</memory>")
                || x.contains("<memory unit='b'>134217728</memory>")
        });
        details.page("boot");
        let xml = stored(&h, "tiny");

        // A kernel that does not exist: refused beside its field, nothing stored changes, the
        // typed text stays for correcting.
        details.type_into("k", "/nonexistent/vmlinuz");
        let errors =
            details.wait_state("field-errors", "a kernel error", |s| s.contains("'kernel'"));
        assert!(errors.contains("os/kernel"), "{errors}");
        details.shot("details-error-en");
        assert_eq!(
            stored(&h, "tiny"),
            xml,
            "a refused edit changed the definition"
        );

        // Disks: the button opens a file chooser; a qcow2 file added (as the chooser would)
        // gets the next target; removed again.
        details.page("disks");
        details.activate("add-disk", None);
        let chooser = desktop.wait_for_window("Add a Disk Image");
        sleep(Duration::from_millis(500));
        desktop.screenshot("details-disk-chooser-en");
        desktop.press(&chooser, "Escape");
        desktop.wait_for_no_window("Add a Disk Image");
        details.activate(
            "add-disk-file",
            Some(&format!("'{}'", extra_disk.display())),
        );
        let with_disk = wait_stored(&h, "tiny", "a second disk", |x| x.contains("extra.qcow2"));
        assert!(
            with_disk.contains("dev='vdb'") && with_disk.contains("type='qcow2'"),
            "{with_disk}"
        );
        details.activate("disk-readonly", Some("(1, true)"));
        let ro = wait_stored(&h, "tiny", "the new disk read-only", |x| {
            x.contains("<readonly/>")
        });
        assert_eq!(ro.matches("<readonly/>").count(), 1, "{ro}");
        details.shot("details-disks-added-en");
        details.activate("remove-disk", Some("1"));
        wait_stored(&h, "tiny", "the disk removed", |x| {
            !x.contains("extra.qcow2")
        });

        // Port forwards on the user-mode interface.
        details.page("network");
        details.activate("add-forward", Some("(0, 'udp', 5353, 53)"));
        wait_stored(&h, "tiny", "the new forward", |x| {
            x.contains("proto='udp'") && x.contains("start='5353'") && x.contains("to='53'")
        });
        details.shot("details-network-added-en");
        details.activate("remove-forward", Some("(0, 0)"));
        let xml = wait_stored(&h, "tiny", "the first forward removed", |x| {
            !x.contains("start='2222'")
        });
        assert!(xml.contains("start='5353'"), "{xml}");

        // The XML page shows the definition as stored now.
        details.page("xml");
        details.activate("copy-xml", None);
        details.shot("details-xml-after-edits-en");
        assert_eq!(details.state("restart-pending"), "false");
        assert!(app.quit().success());
    }
    eprintln!("screenshots in {}", output_dir().display());
}

#[test]
fn a_running_machine_shows_usage_graphs_and_the_restart_note() {
    let h = Home::new("guiu");
    let mut code = guest::print("spinning\n");
    // jmp $: a vCPU that never halts, so the helper's CPU time grows.
    code.extend([0xeb, 0xfe]);
    define(&h, "busy", &code);
    let desktop = Desktop::start("details-running");
    let app = launch(&desktop, &h, &[]);
    desktop.wait_for_window("Vireo");
    app.activate_win_with("machine-start", "'busy'");
    wait_machine(&app, "'busy': 'running'");
    let details = Details::open(&desktop, &app, "busy", "Properties of “busy”");
    assert_eq!(
        details.state("restart-pending"),
        "false",
        "a machine started from its definition has nothing waiting"
    );

    // One sample a second: after a few, both graphs have data and the guest's spinning shows
    // as CPU time of its helper.
    let usage = details.wait_state("usage", "eight samples", |s| {
        s.split(',')
            .next()
            .and_then(|n| {
                n.trim()
                    .trim_start_matches('(')
                    .trim_start_matches("uint32 ")
                    .parse::<u32>()
                    .ok()
            })
            .is_some_and(|n| n >= 8)
    });
    let fields: Vec<&str> = usage
        .trim_matches(|c| c == '(' || c == ')')
        .split(',')
        .collect();
    let cpu: f64 = fields[1].trim().parse().unwrap();
    let rss: u64 = fields[2]
        .trim()
        .trim_start_matches("uint64 ")
        .parse()
        .unwrap();
    assert!(
        cpu > 1.0,
        "a spinning guest used only {cpu} s of CPU: {usage}"
    );
    assert!(rss > 1 << 20, "helper RSS {rss}: {usage}");
    let shot = details.shot("details-running-usage-en");
    // The graphs' lines are drawn: pixels of the CPU graph's blue and the memory graph's green.
    for colour in ["#3584e4", "#26a269"] {
        let n = pixels_like(&shot, colour);
        assert!(n > 20, "{}: only {n} pixels of {colour}", shot.display());
    }

    // A boot change to a running machine is saved and waits for the next start.
    details.page("boot");
    details.type_into("c", "console=ttyS0 later=1");
    wait_stored(&h, "busy", "the new command line", |x| {
        x.contains("later=1")
    });
    details.wait_state("restart-pending", "the restart note", |s| s == "true");
    details.shot("details-restart-note-en");
    // The description is not a restart matter.
    details.page("overview");
    details.type_into("e", "still running");
    wait_stored(&h, "busy", "the new description", |x| {
        x.contains("still running")
    });

    app.activate_win_with("machine-force-off", "'busy'");
    wait_machine(&app, "'busy': 'shut off'");
    details.wait_state("restart-pending", "no note once off", |s| s == "false");
    details.shot("details-stopped-en");
    assert!(app.quit().success());
}

/// Defines `name`: a tiny guest with a virtio-scsi controller and an empty CD-ROM drive on it.
fn define_with_cdrom(h: &Home, name: &str) {
    vireoctl_support::vmm();
    let kernel = h.file(&format!("{name}.elf"), &guest::pvh_elf(&guest::echo_loop()));
    let xml = format!(
        "<domain type='kvm'>
  <name>{name}</name>
  <memory unit='MiB'>64</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64'>hvm</type>
    <kernel>{kernel}</kernel>
    <cmdline>console=ttyS0</cmdline>
  </os>
  <devices>
    <controller type='scsi' index='0' model='virtio-scsi'/>
    <disk type='file' device='cdrom'>
      <driver name='qemu' type='raw'/>
      <target dev='sda' bus='scsi'/>
      <readonly/>
    </disk>
  </devices>
</domain>
",
        kernel = kernel.display(),
    );
    let file = h.file(&format!("{name}.xml"), xml.as_bytes());
    h.ok(&["define", file.to_str().unwrap()]);
}

#[test]
fn a_cdrom_drive_takes_an_image_and_gives_it_back() {
    let h = Home::new("guicd");
    define_with_cdrom(&h, "disc");
    // The drive reads whole 2 KiB sectors: an image is a multiple of them.
    let iso = h.file("installer.iso", &vec![0u8; 32 * 2048]);
    let desktop = Desktop::start("details-cdrom");
    let app = launch(&desktop, &h, &[]);
    desktop.wait_for_window("Vireo");
    wait_machine(&app, "'disc': 'shut off'");
    let details = Details::open(&desktop, &app, "disc", "Properties of “disc”");
    details.page("disks");
    details.wait_state("cdrom-drives", "the empty drive", |s| s == "{'sda': ''}");
    details.shot("details-cdrom-empty-en");

    // "Choose Image…" opens a file chooser; the image is then given as the chooser would.
    details.activate("cdrom-choose", Some("'sda'"));
    let chooser = desktop.wait_for_window("Choose a CD or DVD Image");
    sleep(Duration::from_millis(500));
    desktop.screenshot("details-cdrom-chooser-en");
    desktop.press(&chooser, "Escape");
    desktop.wait_for_no_window("Choose a CD or DVD Image");
    details.activate(
        "cdrom-insert",
        Some(&format!("('sda', '{}')", iso.display())),
    );
    let xml = wait_stored(&h, "disc", "the image in the drive", |x| {
        x.contains("installer.iso")
    });
    assert!(xml.contains("device='cdrom'"), "{xml}");
    details.wait_state("cdrom-drives", "the image in the row", |s| {
        s.contains("installer.iso")
    });
    details.shot("details-cdrom-inserted-en");

    // A file that is not there: the driver's refusal is shown, the disc stays.
    details.activate("cdrom-insert", Some("('sda', '/nonexistent/other.iso')"));
    let errors = details.wait_state("field-errors", "the refusal", |s| s.contains("'media'"));
    assert!(errors.contains("other.iso"), "{errors}");
    assert_eq!(
        stored(&h, "disc"),
        xml,
        "a refused change reached the definition"
    );

    // Eject empties the drive; the drive itself stays.
    details.activate("cdrom-eject", Some("'sda'"));
    let xml = wait_stored(&h, "disc", "the drive empty", |x| {
        !x.contains("installer.iso")
    });
    assert!(
        xml.contains("device='cdrom'") && xml.contains("dev='sda'"),
        "{xml}"
    );
    details.wait_state("cdrom-drives", "the empty drive again", |s| {
        s == "{'sda': ''}"
    });
    let errors = details.state("field-errors");
    assert!(!errors.contains("'media'"), "{errors}");
    details.shot("details-cdrom-ejected-en");
    assert!(app.quit().success());
}
