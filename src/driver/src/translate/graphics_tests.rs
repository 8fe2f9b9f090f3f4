//! `<video>` per machine: the pc machine's standard VGA and ramfb, its refusals, and Vireo's
//! own machine, where every model is the linear framebuffer.

use super::tests::Fixture;
use vireo_vmm_api::config::{DisplayConfig, DisplayModel};

/// A directly booted machine on `machine` (None: the default) with `devices`.
fn doc(f: &Fixture, machine: Option<&str>, devices: &str) -> String {
    let xml = f.xml("kvm", "", "", devices);
    match machine {
        Some(m) => xml.replace(
            "<type arch='x86_64'>",
            &format!("<type arch='x86_64' machine='{m}'>"),
        ),
        None => xml,
    }
}

impl Fixture {
    /// The display of an accepted document, which the VMM accepts too.
    fn display(&self, xml: &str) -> DisplayConfig {
        self.accepted(xml).display.expect("a display")
    }
}

const SCREEN: &str = "<graphics type='vnc'><listen type='none'/></graphics>";

fn video(model: &str) -> String {
    format!("{SCREEN}<video><model type='{model}'/></video>")
}

#[test]
fn the_pc_machine_shows_vga_for_vga_and_by_default() {
    let f = Fixture::new();
    for m in ["pc", "pc-i440fx-7.2"] {
        let d = f.display(&doc(&f, Some(m), &video("vga")));
        assert_eq!(d.model, DisplayModel::Vga, "{m}");
        assert_eq!((d.width, d.height), (1280, 800));
    }
    // libvirt's default video on pc: a video without a model, graphics without a video.
    for devices in [
        format!("{SCREEN}<video/>"),
        SCREEN.to_owned(),
        "<video/>".into(),
    ] {
        let d = f.display(&doc(&f, Some("pc"), &devices));
        assert_eq!(d.model, DisplayModel::Vga, "{devices}");
    }
    let sized = f.display(&doc(
        &f,
        Some("pc"),
        "<video><model type='vga'><resolution x='1920' y='1080'/></model></video>",
    ));
    assert_eq!(
        (sized.model, sized.width, sized.height),
        (DisplayModel::Vga, 1920, 1080)
    );
}

#[test]
fn ramfb_on_the_pc_machine_is_the_linear_framebuffer() {
    let f = Fixture::new();
    let d = f.display(&doc(&f, Some("pc"), &video("ramfb")));
    assert_eq!(d.model, DisplayModel::Linear);
    // Beyond the VGA's memory, within the framebuffer window.
    let big = f.display(&doc(
        &f,
        Some("pc"),
        "<video><model type='ramfb'><resolution x='2560' y='1700'/></model></video>",
    ));
    assert_eq!(
        (big.model, big.width, big.height),
        (DisplayModel::Linear, 2560, 1700)
    );
}

#[test]
fn the_pc_machine_refuses_the_models_it_does_not_have() {
    let f = Fixture::new();
    for model in ["virtio", "bochs", "cirrus", "qxl", "vmvga"] {
        assert_eq!(
            f.refused(&doc(&f, Some("pc"), &video(model))),
            format!(
                "devices/video[1]/model@type='{model}': not supported on the pc machine, which \
                 offers 'vga' and 'ramfb' (use type='vga')"
            )
        );
    }
    // `none` is no display, as on any machine.
    let t = f.run(&doc(&f, Some("pc"), "<video><model type='none'/></video>"));
    assert_eq!(t.map(|t| t.config.display), Ok(None));
}

#[test]
fn vireos_machine_keeps_the_linear_framebuffer_for_every_model() {
    let f = Fixture::new();
    for machine in [None, Some("vireo"), Some("microvm")] {
        for model in ["vga", "virtio", "bochs", "cirrus", "qxl", "ramfb"] {
            let d = f.display(&doc(&f, machine, &video(model)));
            assert_eq!(d.model, DisplayModel::Linear, "{machine:?} {model}");
        }
        for devices in [format!("{SCREEN}<video/>"), SCREEN.to_owned()] {
            let d = f.display(&doc(&f, machine, &devices));
            assert_eq!(d.model, DisplayModel::Linear, "{machine:?} {devices}");
        }
    }
    // The VGA's memory is no limit there.
    let d = f.display(&doc(
        &f,
        None,
        "<video><model type='vga'><resolution x='2560' y='1700'/></model></video>",
    ));
    assert_eq!((d.width, d.height), (2560, 1700));
    assert_eq!(
        f.refused(&doc(&f, None, &video("vmvga"))),
        "devices/video[1]/model@type='vmvga': not supported (the guest gets a linear framebuffer)"
    );
}

#[test]
fn the_vga_resolution_is_one_of_its_modes() {
    let f = Fixture::new();
    let sized = |x: u32, y: u32| {
        doc(
            &f,
            Some("pc"),
            &format!("<video><model type='vga'><resolution x='{x}' y='{y}'/></model></video>"),
        )
    };
    // The largest mode, 2560x1600 at 4 bytes a pixel, fits the 16 MiB of video memory.
    let d = f.display(&sized(2560, 1600));
    assert_eq!(
        (d.model, d.width, d.height),
        (DisplayModel::Vga, 2560, 1600)
    );
    assert_eq!(
        f.refused(&sized(2048, 2048)),
        "devices/video[1]/model/resolution: 2048x2048 is larger than the VGA's largest mode, \
         2560x1600"
    );
    assert_eq!(
        f.refused(&sized(2561, 1600)),
        "devices/video[1]/model/resolution: 2561x1600 is larger than the VGA's largest mode, \
         2560x1600"
    );
}

#[test]
fn the_display_has_one_head() {
    let f = Fixture::new();
    let heads = |h: &str| {
        doc(
            &f,
            Some("pc"),
            &format!("<video><model type='vga' vram='16384' heads='{h}'/></video>"),
        )
    };
    assert_eq!(f.display(&heads("1")).model, DisplayModel::Vga);
    assert_eq!(
        f.refused(&heads("2")),
        "devices/video[1]/model@heads: the display has one head (heads='1')"
    );
    assert_eq!(
        f.refused(&heads("x")),
        "devices/video[1]/model@heads: the display has one head (heads='1')"
    );
}
