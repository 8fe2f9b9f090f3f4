//! Typed views, the validator and edits never panic, and edited documents stay well-formed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vireo_domain::{DiskSpec, Domain, ImageFormat, LifecycleAction, LifecycleEvent, PortForward};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(mut d) = Domain::parse(text) else {
        return;
    };
    let _ = d.validate();
    let _ = (
        d.name(),
        d.uuid(),
        d.memory(),
        d.current_memory(),
        d.vcpu(),
        d.cpu_mode(),
    );
    let _ = (
        d.clock_offset(),
        d.lifecycle(LifecycleEvent::Crash),
        d.vireo_value("k"),
    );
    if let Some(os) = d.os() {
        let _ = (
            os.os_type(),
            os.arch(),
            os.kernel(),
            os.boot_devs(),
            os.loader(),
        );
    }
    if let Some(devs) = d.devices() {
        for disk in devs.disks() {
            let _ = (
                disk.source(),
                disk.target_dev(),
                disk.boot_order(),
                disk.format(),
            );
        }
        for i in devs.interfaces() {
            let _ = (i.mac(), i.source(), i.port_forwards());
        }
        for g in devs.graphics() {
            let _ = (g.port(), g.socket(), g.listen());
        }
    }
    d.set_name("fuzzed");
    d.set_memory(1 << 30);
    d.set_current_memory(Some(1 << 29));
    d.set_vcpu(2);
    d.set_title(Some("t <&> '\""));
    d.set_lifecycle(LifecycleEvent::Reboot, Some(&LifecycleAction::Destroy));
    d.set_feature("acpi", true);
    d.set_feature("pae", false);
    d.set_vireo_value("key", Some("value"));
    d.os_mut().set_kernel(Some("/k"));
    {
        let mut devs = d.devices_mut();
        devs.add(DiskSpec::file("/x.qcow2", ImageFormat::Qcow2, "vdz").to_element());
        if let Some(mut i) = devs.interface_mut(0) {
            i.add_port_forward(&PortForward::tcp(1, 2));
            i.set_mac(Some("52:54:00:00:00:01"));
        }
        if let Some(mut disk) = devs.disk_mut(0) {
            disk.set_readonly(true);
            disk.set_boot_order(Some(3));
        }
        let _ = devs.remove_disk(1);
    }
    let out = d.to_xml();
    let back = Domain::parse(&out).expect("edited output must parse");
    assert_eq!(back.name().as_deref(), Some("fuzzed"));
    assert_eq!(back.memory().ok().flatten(), Some(1 << 30));
    let _ = back.validate();
});
