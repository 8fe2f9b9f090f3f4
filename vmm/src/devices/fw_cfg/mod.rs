//! QEMU's firmware configuration device (fw_cfg): how SeaBIOS learns the machine it runs on.
//!
//! The device itself is being built; this module holds the contract its users already share.

/// A device behind a writable fw_cfg file (ramfb's `etc/ramfb`): fw_cfg calls it after each
/// guest write to the file, with the file's whole content after that write. The content came
/// from the guest: the hook validates every field before use.
pub trait FwCfgWriteHook: Send {
    fn written(&mut self, content: &[u8]);
}
