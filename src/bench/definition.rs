//! The machine definition the list and define benches store by the thousand: small but
//! complete, like the wizard's (kernel boot, disk-less, VNC, serial).

use std::path::Path;

pub fn definition(name: &str, kernel: &Path) -> String {
    format!(
        "<domain type='kvm'>\n  <name>{name}</name>\n  <title>Machine {name}</title>\n  \
         <memory unit='MiB'>512</memory>\n  <vcpu>1</vcpu>\n  <os>\n    \
         <type arch='x86_64'>hvm</type>\n    <kernel>{}</kernel>\n    \
         <cmdline>console=ttyS0</cmdline>\n  </os>\n  <devices>\n    \
         <serial type='pty'><target port='0'/></serial>\n    \
         <graphics type='vnc'><listen type='none'/></graphics>\n    \
         <video><model type='vga'/></video>\n  </devices>\n</domain>\n",
        kernel.display()
    )
}
