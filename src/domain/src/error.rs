//! The one error type of the crate: what is wrong, where (line/column), and in which element.
//!
//! A GUI maps an [`Error`] to a form field through [`ErrorData::path`] plus [`ErrorData::attribute`]
//! (the `field()` pair); the [`ErrorKind`] says what to tell the user.

use std::fmt;

/// A place in the source text. `line` and `column` are 1-based; columns count characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Position {
    pub line: u32,
    pub column: u32,
    /// Byte offset into the parsed text (after a byte-order mark, if any).
    pub offset: usize,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}, column {}", self.line, self.column)
    }
}

/// What went wrong. Variants carry the names needed to build a message; they never carry
/// positions (those live in [`Error`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ErrorKind {
    #[error("not well-formed XML: {0}")]
    Syntax(String),
    #[error("document is not UTF-8: {0}")]
    Encoding(String),
    #[error("expected root element <{expected}>, found <{found}>")]
    WrongRoot { expected: String, found: String },
    #[error("missing element {0}")]
    MissingElement(String),
    #[error("missing attribute {0}")]
    MissingAttribute(String),
    #[error("invalid value '{value}' for {field}: {reason}")]
    InvalidValue {
        field: String,
        value: String,
        reason: String,
    },
    #[error("duplicate {field} '{value}' (first used at {first})")]
    Duplicate {
        field: String,
        value: String,
        first: String,
    },
    #[error("{0}")]
    Constraint(String),
    #[error("cannot read: {0}")]
    Io(String),
}

/// What an [`Error`] holds (reach the fields through `Deref`: `err.kind`, `err.path`, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorData {
    pub kind: ErrorKind,
    /// Element path, e.g. `domain/devices/disk[2]/target` (`[n]` counts same-named siblings
    /// from 1 and appears only when the name repeats).
    pub path: String,
    /// The attribute at fault, if any.
    pub attribute: Option<String>,
    /// Where in the source (None for nodes created in memory).
    pub pos: Option<Position>,
    /// The file the document came from, when read through [`crate::Domain::load`].
    pub file: Option<String>,
}

/// An error with its location: source position (when the node came from parsed text), the
/// element path (`domain/devices/disk[2]/target`) and the attribute, if one is at fault.
/// Boxed so that `Result<_, Error>` stays small.
#[derive(Clone, PartialEq, Eq)]
pub struct Error(Box<ErrorData>);

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Error({self}; {:?})", self.kind)
    }
}

impl std::ops::Deref for Error {
    type Target = ErrorData;
    fn deref(&self) -> &ErrorData {
        &self.0
    }
}

impl Error {
    pub fn new(kind: ErrorKind, path: impl Into<String>, pos: Option<Position>) -> Self {
        Error(Box::new(ErrorData {
            kind,
            path: path.into(),
            attribute: None,
            pos,
            file: None,
        }))
    }

    /// The same error, naming the file it was found in.
    pub fn in_file(mut self, file: impl Into<String>) -> Self {
        self.0.file = Some(file.into());
        self
    }

    pub fn with_attribute(mut self, attr: impl Into<String>) -> Self {
        self.0.attribute = Some(attr.into());
        self
    }

    pub(crate) fn syntax(msg: impl Into<String>, path: impl Into<String>, pos: Position) -> Self {
        Error::new(ErrorKind::Syntax(msg.into()), path, Some(pos))
    }

    /// The field this error belongs to, for a GUI: element path and optional attribute name.
    pub fn field(&self) -> (&str, Option<&str>) {
        (&self.path, self.attribute.as_deref())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(file) = &self.file {
            write!(f, "{file}: ")?;
        }
        if let Some(pos) = self.pos {
            write!(f, "{pos}: ")?;
        }
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        write!(f, "{}", self.kind)
    }
}

impl std::error::Error for Error {}

/// All problems found by a validation pass, in document order.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Errors(pub Vec<Error>);

impl fmt::Debug for Errors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.0.iter()).finish()
    }
}

impl fmt::Display for Errors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Errors {}

impl Errors {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn iter(&self) -> std::slice::Iter<'_, Error> {
        self.0.iter()
    }
}
