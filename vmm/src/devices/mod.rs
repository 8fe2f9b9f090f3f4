//! Platform devices, one per file.

pub mod acpi_pm;
pub mod bus;
pub mod cmos;
pub mod debugcon;
pub mod fbmem;
pub mod framebuffer;
pub mod fw_cfg;
pub mod i8042;
pub mod intx;
pub mod irq;
pub mod legacy;
pub mod msi;
pub mod pflash;
pub mod pm_timer;
pub mod ps2;
pub mod ramfb;
pub mod rtc;
pub mod scancodes;
pub mod serial;
pub mod vga;
