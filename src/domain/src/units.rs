//! Memory sizes with libvirt's unit suffixes.
//!
//! libvirt (virScaleInteger) reads the suffix case-insensitively: `b`, `byte`, `bytes` are
//! bytes; a single letter or `<letter>iB` is a power of 1024; `<letter>B` a power of 1000;
//! letters k, m, g, t, p, e. Memory elements default to KiB.

use std::fmt;

/// A unit suffix libvirt accepts, normalized to its scale in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unit {
    pub scale: u64,
}

/// Why a size could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnitError {
    #[error("unknown unit '{0}'")]
    UnknownUnit(String),
    #[error("'{0}' is not a non-negative integer")]
    NotANumber(String),
    #[error("{value} {unit} does not fit in 64 bits of bytes")]
    Overflow { value: String, unit: String },
}

impl Unit {
    pub const BYTES: Unit = Unit { scale: 1 };
    pub const KIB: Unit = Unit { scale: 1 << 10 };
    pub const MIB: Unit = Unit { scale: 1 << 20 };
    pub const GIB: Unit = Unit { scale: 1 << 30 };

    /// Parses a unit suffix as libvirt does; `None` (no `unit` attribute) means `default`.
    pub fn parse(suffix: Option<&str>, default: Unit) -> Result<Unit, UnitError> {
        let Some(s) = suffix else { return Ok(default) };
        if s.is_empty() {
            return Ok(default);
        }
        let lower = s.to_ascii_lowercase();
        if matches!(lower.as_str(), "b" | "byte" | "bytes") {
            return Ok(Unit::BYTES);
        }
        let mut chars = lower.chars();
        let letter = chars
            .next()
            .ok_or_else(|| UnitError::UnknownUnit(s.into()))?;
        let rest = chars.as_str();
        let base: u64 = match rest {
            "" | "ib" => 1024,
            "b" => 1000,
            _ => return Err(UnitError::UnknownUnit(s.into())),
        };
        let power = match letter {
            'k' => 1,
            'm' => 2,
            'g' => 3,
            't' => 4,
            'p' => 5,
            'e' => 6,
            _ => return Err(UnitError::UnknownUnit(s.into())),
        };
        Ok(Unit {
            scale: base.pow(power),
        })
    }
}

/// Parses `value` (decimal digits, surrounding whitespace allowed) in `unit` (default KiB)
/// into bytes.
pub fn parse_size(value: &str, unit: Option<&str>) -> Result<u64, UnitError> {
    parse_size_default(value, unit, Unit::KIB)
}

/// Like [`parse_size`] with another default unit.
pub fn parse_size_default(
    value: &str,
    unit: Option<&str>,
    default: Unit,
) -> Result<u64, UnitError> {
    let u = Unit::parse(unit, default)?;
    let v = value.trim();
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(UnitError::NotANumber(value.into()));
    }
    let n: u64 = v.parse().map_err(|_| UnitError::Overflow {
        value: value.into(),
        unit: unit.unwrap_or("KiB").into(),
    })?;
    n.checked_mul(u.scale).ok_or_else(|| UnitError::Overflow {
        value: value.into(),
        unit: unit.unwrap_or("KiB").into(),
    })
}

/// A size in bytes, printed the way a user reads it (`2 GiB`, `1536 MiB`, `100 B`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Bytes(pub u64);

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (scale, name) in [
            (1u64 << 40, "TiB"),
            (1 << 30, "GiB"),
            (1 << 20, "MiB"),
            (1 << 10, "KiB"),
        ] {
            if self.0 >= scale && self.0 % scale == 0 {
                return write!(f, "{} {name}", self.0 / scale);
            }
        }
        write!(f, "{} B", self.0)
    }
}

/// How a byte count is written back: in KiB when it is a whole number of KiB (libvirt's own
/// unit), else in bytes.
pub fn format_size(bytes: u64) -> (String, &'static str) {
    if bytes % 1024 == 0 {
        ((bytes / 1024).to_string(), "KiB")
    } else {
        (bytes.to_string(), "b")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_libvirt_suffix() {
        let cases: &[(&str, u64)] = &[
            ("b", 1),
            ("bytes", 1),
            ("byte", 1),
            ("KB", 1000),
            ("k", 1024),
            ("KiB", 1024),
            ("MB", 1_000_000),
            ("M", 1 << 20),
            ("MiB", 1 << 20),
            ("GB", 1_000_000_000),
            ("G", 1 << 30),
            ("GiB", 1 << 30),
            ("TB", 1_000_000_000_000),
            ("T", 1 << 40),
            ("TiB", 1 << 40),
            ("PB", 1_000_000_000_000_000),
            ("PiB", 1 << 50),
            ("EB", 1_000_000_000_000_000_000),
            ("EiB", 1 << 60),
            ("mib", 1 << 20),
            ("gB", 1_000_000_000),
        ];
        for (suffix, scale) in cases {
            assert_eq!(
                Unit::parse(Some(suffix), Unit::KIB),
                Ok(Unit { scale: *scale }),
                "{suffix}"
            );
        }
    }

    #[test]
    fn default_is_kib() {
        assert_eq!(parse_size("4", None), Ok(4096));
        assert_eq!(parse_size(" 4\n", Some("")), Ok(4096));
    }

    #[test]
    fn conversions() {
        assert_eq!(parse_size("1", Some("GiB")), Ok(1 << 30));
        assert_eq!(parse_size("2", Some("GB")), Ok(2_000_000_000));
        assert_eq!(parse_size("524288", Some("KiB")), Ok(512 << 20));
    }

    #[test]
    fn rejects() {
        assert!(matches!(
            Unit::parse(Some("KiBB"), Unit::KIB),
            Err(UnitError::UnknownUnit(_))
        ));
        assert!(matches!(
            Unit::parse(Some("x"), Unit::KIB),
            Err(UnitError::UnknownUnit(_))
        ));
        assert!(matches!(
            Unit::parse(Some("Ki"), Unit::KIB),
            Err(UnitError::UnknownUnit(_))
        ));
        assert!(matches!(
            parse_size("-1", None),
            Err(UnitError::NotANumber(_))
        ));
        assert!(matches!(
            parse_size("1.5", None),
            Err(UnitError::NotANumber(_))
        ));
        assert!(matches!(
            parse_size("", None),
            Err(UnitError::NotANumber(_))
        ));
        assert!(matches!(
            parse_size("20", Some("EiB")),
            Err(UnitError::Overflow { .. })
        ));
        assert!(matches!(
            parse_size("99999999999999999999999", None),
            Err(UnitError::Overflow { .. })
        ));
    }

    #[test]
    fn formatting() {
        assert_eq!(format_size(2 << 30), ("2097152".into(), "KiB"));
        assert_eq!(format_size(1000), ("1000".into(), "b"));
        assert_eq!(Bytes(2 << 30).to_string(), "2 GiB");
        assert_eq!(Bytes(1536 << 20).to_string(), "1536 MiB");
        assert_eq!(Bytes(7).to_string(), "7 B");
    }
}
