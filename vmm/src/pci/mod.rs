//! PCI for the PC platform: configuration spaces, bus 0 behind configuration mechanism #1,
//! BAR windows placed on the port and MMIO buses as the guest programs them, and the i440FX
//! host bridge.
//!
//! The platform is QEMU's `pc` (i440FX + PIIX) rather than `q35` (MCH + ICH9): both SeaBIOS
//! and Debian's OVMF boot on it, every guest from the last twenty-five years knows it, and it
//! needs far less chipset (no ECAM window, no PCIe root ports, no ICH9 LPC with its RCBA) for
//! the same devices. What q35 adds that users see is Secure Boot with SMM, which this VMM does
//! not offer.

pub mod config;
pub mod config_io;
pub mod i440fx;
pub mod msix;
pub mod pc;
pub mod piix;
pub mod root;
