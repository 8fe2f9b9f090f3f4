//! fw_cfg's items: the fixed keys, the named files and the file directory (key 0x19) that lists
//! them, assembled once by [`FwCfgBuilder`] before the guest runs.

use super::FwCfgWriteHook;
use std::collections::BTreeMap;

/// Key 0: the signature a guest checks before anything else.
pub const KEY_SIGNATURE: u16 = 0x00;
/// Key 1: feature bits ([`FEATURE_TRADITIONAL`] | [`FEATURE_DMA`]).
pub const KEY_ID: u16 = 0x01;
/// Key 3: RAM size in bytes (LE64), as QEMU gives it.
pub const KEY_RAM_SIZE: u16 = 0x03;
/// Key 4: no graphical console (LE16); SeaBIOS then enables its serial console.
pub const KEY_NOGRAPHIC: u16 = 0x04;
/// Key 5: vCPUs present at boot (LE16).
pub const KEY_NB_CPUS: u16 = 0x05;
/// Key 0x0e: show the boot menu (LE16), SeaBIOS's `etc/show-boot-menu`.
pub const KEY_BOOT_MENU: u16 = 0x0e;
/// Key 0x0f: most vCPUs the machine can have (LE16), SeaBIOS's `etc/max-cpus`.
pub const KEY_MAX_CPUS: u16 = 0x0f;
/// Key 0x19: the file directory.
pub const KEY_FILE_DIR: u16 = 0x19;
/// The first file's key; file `i` is at `KEY_FILE_FIRST + i`.
pub const KEY_FILE_FIRST: u16 = 0x20;
/// Keys from here on are the architecture's own (x86: 0x8000..).
pub const KEY_ARCH_LOCAL: u16 = 0x8000;
/// x86 key 0x8002: the timer is wired to IOAPIC pin 2 (u8), SeaBIOS's `etc/irq0-override`.
pub const KEY_IRQ0_OVERRIDE: u16 = KEY_ARCH_LOCAL + 2;

/// Key 1's bit for the port interface.
pub const FEATURE_TRADITIONAL: u32 = 1;
/// Key 1's bit for the DMA interface.
pub const FEATURE_DMA: u32 = 2;

/// A directory entry's name field, NUL-terminated: names are at most 55 bytes.
pub const FILE_NAME_SIZE: usize = 56;
/// Bytes per directory entry: BE32 size, BE16 select, u16 reserved, name.
pub const DIR_ENTRY_SIZE: usize = 8 + FILE_NAME_SIZE;
/// Keys available for files below the architecture's range (and below the write-channel bit).
pub const MAX_FILES: usize = (0x4000 - KEY_FILE_FIRST) as usize;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FwCfgError {
    #[error("fw_cfg file name `{0}` is empty, longer than 55 bytes or holds a NUL")]
    BadName(String),
    #[error("fw_cfg file `{0}` is added twice")]
    Duplicate(String),
    #[error("fw_cfg holds at most {MAX_FILES} files")]
    TooManyFiles,
    #[error("fw_cfg item `{0}` is larger than 4 GiB")]
    TooLarge(String),
    #[error("fw_cfg key {0:#x} is the device's own or a file's")]
    ReservedKey(u16),
}

/// One named file: its bytes and, for a writable file, the device behind it.
pub struct FwCfgFile {
    pub name: String,
    pub data: Vec<u8>,
    pub hook: Option<Box<dyn FwCfgWriteHook>>,
}

impl std::fmt::Debug for FwCfgFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FwCfgFile")
            .field("name", &self.name)
            .field("len", &self.data.len())
            .field("writable", &self.hook.is_some())
            .finish()
    }
}

/// Collects items before the device exists; every size and name is checked here once, so the
/// device's directory and key arithmetic cannot overflow.
#[derive(Debug, Default)]
pub struct FwCfgBuilder {
    pub(super) legacy: BTreeMap<u16, Vec<u8>>,
    pub(super) files: Vec<FwCfgFile>,
}

impl FwCfgBuilder {
    pub fn new() -> FwCfgBuilder {
        FwCfgBuilder::default()
    }

    /// A numbered item (the keys below 0x20 that predate files, or an x86 key from 0x8000).
    pub fn legacy(&mut self, key: u16, data: Vec<u8>) -> Result<&mut Self, FwCfgError> {
        let own = matches!(key, KEY_SIGNATURE | KEY_ID | KEY_FILE_DIR);
        let file_range = (KEY_FILE_FIRST..KEY_ARCH_LOCAL).contains(&key);
        if own || file_range || key & super::WRITE_CHANNEL != 0 {
            return Err(FwCfgError::ReservedKey(key));
        }
        if u32::try_from(data.len()).is_err() {
            return Err(FwCfgError::TooLarge(format!("{key:#x}")));
        }
        self.legacy.insert(key, data);
        Ok(self)
    }

    /// A read-only file.
    pub fn file(&mut self, name: &str, data: Vec<u8>) -> Result<&mut Self, FwCfgError> {
        self.add(name, data, None)
    }

    /// A file the guest may write (by DMA); `hook` sees its whole content after each write.
    /// Its size is fixed: `data` is its initial content.
    pub fn writable_file(
        &mut self,
        name: &str,
        data: Vec<u8>,
        hook: Box<dyn FwCfgWriteHook>,
    ) -> Result<&mut Self, FwCfgError> {
        self.add(name, data, Some(hook))
    }

    fn add(
        &mut self,
        name: &str,
        data: Vec<u8>,
        hook: Option<Box<dyn FwCfgWriteHook>>,
    ) -> Result<&mut Self, FwCfgError> {
        if name.is_empty() || name.len() >= FILE_NAME_SIZE || name.contains('\0') {
            return Err(FwCfgError::BadName(name.into()));
        }
        if self.files.iter().any(|f| f.name == name) {
            return Err(FwCfgError::Duplicate(name.into()));
        }
        if self.files.len() >= MAX_FILES {
            return Err(FwCfgError::TooManyFiles);
        }
        if u32::try_from(data.len()).is_err() {
            return Err(FwCfgError::TooLarge(name.into()));
        }
        self.files.push(FwCfgFile {
            name: name.into(),
            data,
            hook,
        });
        Ok(self)
    }

    /// The names added so far, in directory order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.files.iter().map(|f| f.name.as_str())
    }
}

/// The key 0x19 content: BE32 count, then one entry per file in `files`' order.
pub(super) fn directory(files: &[FwCfgFile]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + files.len() * DIR_ENTRY_SIZE);
    // Sizes and count were bounded when the files were added.
    out.extend_from_slice(&(files.len() as u32).to_be_bytes());
    for (i, f) in files.iter().enumerate() {
        out.extend_from_slice(&(f.data.len() as u32).to_be_bytes());
        out.extend_from_slice(&(KEY_FILE_FIRST + i as u16).to_be_bytes());
        out.extend_from_slice(&[0, 0]);
        let mut name = [0u8; FILE_NAME_SIZE];
        name[..f.name.len()].copy_from_slice(f.name.as_bytes());
        out.extend_from_slice(&name);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_keys_and_sizes_are_checked_when_added() {
        let mut b = FwCfgBuilder::new();
        b.file("etc/e820", vec![1; 20]).unwrap();
        assert_eq!(
            b.file("etc/e820", vec![]).unwrap_err(),
            FwCfgError::Duplicate("etc/e820".into())
        );
        assert!(matches!(b.file("", vec![]), Err(FwCfgError::BadName(_))));
        assert!(matches!(
            b.file(&"x".repeat(56), vec![]),
            Err(FwCfgError::BadName(_))
        ));
        b.file(&"y".repeat(55), vec![]).unwrap();
        assert!(matches!(
            b.file("a\0b", vec![]),
            Err(FwCfgError::BadName(_))
        ));
        for key in [KEY_SIGNATURE, KEY_ID, KEY_FILE_DIR, 0x20, 0x7fff, 0x4005] {
            assert_eq!(
                b.legacy(key, vec![]).unwrap_err(),
                FwCfgError::ReservedKey(key)
            );
        }
        b.legacy(KEY_NB_CPUS, vec![2, 0]).unwrap();
        b.legacy(KEY_IRQ0_OVERRIDE, vec![1]).unwrap();
    }

    #[test]
    fn directory_entries_are_big_endian_with_padded_names() {
        let mut b = FwCfgBuilder::new();
        b.file("bootorder", b"/a\n".to_vec()).unwrap();
        b.file("etc/e820", vec![0; 40]).unwrap();
        let d = directory(&b.files);
        assert_eq!(d.len(), 4 + 2 * DIR_ENTRY_SIZE);
        assert_eq!(&d[..4], &[0, 0, 0, 2]);
        let e1 = &d[4 + DIR_ENTRY_SIZE..];
        assert_eq!(&e1[..4], &[0, 0, 0, 40]);
        assert_eq!(&e1[4..6], &[0, 0x21]);
        assert_eq!(&e1[8..16], b"etc/e820");
        assert!(e1[16..DIR_ENTRY_SIZE].iter().all(|&b| b == 0));
    }
}
