//! The checks translate leaves to validation: each input is refused by `Definition::parse`,
//! the only way a document reaches translate in the driver.

use crate::definition::Definition;

fn doc(root_attrs: &str, top: &str, devices: &str) -> String {
    format!(
        "<domain{root_attrs}><name>t</name>{top}<os><type>hvm</type></os>\
         <devices>{devices}</devices></domain>"
    )
}

/// The refusal of `Definition::parse`, which must name `want`.
fn refused(xml: &str, want: &str) {
    match Definition::parse(xml) {
        Ok(_) => panic!("accepted: {xml}"),
        Err(e) => assert!(e.to_string().contains(want), "{e}\nfor {xml}"),
    }
}

const MEM: &str = "<memory unit='MiB'>64</memory>";

#[test]
fn the_base_document_is_accepted() {
    let xml = doc(
        " type='kvm'",
        &format!("{MEM}<vcpu>1</vcpu>"),
        "<interface type='user'><portForward proto='tcp'><range start='2222' to='22'/></portForward></interface>\
         <graphics type='vnc' port='5900'/><input type='tablet'/>",
    );
    Definition::parse(&xml).unwrap();
}

#[test]
fn domain_type_is_required() {
    refused(&doc("", MEM, ""), "domain: missing attribute type");
}

#[test]
fn memory_is_required() {
    refused(
        &doc(" type='kvm'", "", ""),
        "domain: missing element memory",
    );
    // NUMA cells may stand in for the size in validation, not in a definition.
    refused(
        &doc(" type='kvm'", "<cpu><numa/></cpu>", ""),
        "domain: missing element memory",
    );
}

#[test]
fn vcpu_must_not_be_zero() {
    refused(
        &doc(" type='kvm'", &format!("{MEM}<vcpu>0</vcpu>"), ""),
        "domain/vcpu: invalid value '0'",
    );
}

#[test]
fn interface_type_is_required() {
    refused(
        &doc(" type='kvm'", MEM, "<interface/>"),
        "domain/devices/interface: missing attribute type",
    );
}

#[test]
fn port_forward_proto_is_required() {
    refused(
        &doc(
            " type='kvm'",
            MEM,
            "<interface type='user'><portForward><range start='80'/></portForward></interface>",
        ),
        "domain/devices/interface/portForward: missing attribute proto",
    );
}

#[test]
fn port_forward_start_is_a_port() {
    let pf = |range: &str| {
        doc(
            " type='kvm'",
            MEM,
            &format!(
                "<interface type='user'><portForward proto='tcp'>{range}</portForward></interface>"
            ),
        )
    };
    let path = "domain/devices/interface/portForward/range";
    refused(
        &pf("<range to='22'/>"),
        &format!("{path}: missing attribute start"),
    );
    refused(
        &pf("<range start='0'/>"),
        &format!("{path}: invalid value '0'"),
    );
    refused(
        &pf("<range start='x'/>"),
        &format!("{path}: invalid value 'x'"),
    );
}

#[test]
fn graphics_type_is_required() {
    refused(
        &doc(" type='kvm'", MEM, "<graphics port='5900'/>"),
        "domain/devices/graphics: missing attribute type",
    );
}

#[test]
fn graphics_port_is_a_number() {
    refused(
        &doc(" type='kvm'", MEM, "<graphics type='vnc' port='abc'/>"),
        "domain/devices/graphics: invalid value 'abc'",
    );
}

#[test]
fn input_type_is_required() {
    refused(
        &doc(" type='kvm'", MEM, "<input bus='virtio'/>"),
        "domain/devices/input: missing attribute type",
    );
}
