//! Editing a machine's definition: one policy for `vireoctl edit` and the details window.
//!
//! An edit is saved only if it breaks nothing, and a refused edit loses nothing:
//! - the edited document must parse and validate (each error with its place);
//! - if the backend would refuse to start it, it is saved only when the stored definition is
//!   refused for the very same reason: an edit never makes a machine that starts into one that
//!   does not, and a definition imported from elsewhere that never could start here can still
//!   be edited (and repaired step by step);
//! - on a refusal nothing is stored, and the front end keeps what the user wrote, to edit again
//!   (`vireoctl edit` reopens the editor on the edited text, as `virsh edit` does, and keeps the
//!   file when the user gives up; the details window keeps the field's text).
//!
//! A running machine keeps running as it was started; the change applies at its next start.

use crate::connection::{Connection, DriverError, MachineInfo};
use crate::definition::Definition;
use vireo_domain::{Domain, Errors};

/// The outcome of a saved (or empty) edit.
#[derive(Debug, Clone)]
pub struct Edited {
    pub info: MachineInfo,
    /// False when the edit changed nothing (and nothing was written).
    pub changed: bool,
}

/// Edits the stored definition of `name` through the typed views: `change` works on the
/// stored document; its own refusals (`E`) come back as they are.
pub fn edit<E, F>(conn: &Connection, name: &str, change: F) -> Result<Edited, E>
where
    E: From<DriverError>,
    F: FnOnce(&mut Domain) -> Result<(), E>,
{
    let stored = conn.store().lookup(name).map_err(DriverError::from)?;
    let mut dom = stored.dom.clone();
    change(&mut dom)?;
    Ok(save(conn, &stored, dom)?)
}

/// Replaces the stored definition of `name` with `xml` (what the user's editor wrote).
pub fn edit_xml(conn: &Connection, name: &str, xml: &str) -> Result<Edited, DriverError> {
    let stored = conn.store().lookup(name)?;
    if xml == stored.to_xml() {
        return unchanged(conn, &stored);
    }
    let dom = Domain::parse(xml).map_err(|e| Errors(vec![e]))?;
    save(conn, &stored, dom)
}

fn unchanged(conn: &Connection, stored: &Definition) -> Result<Edited, DriverError> {
    Ok(Edited {
        info: conn.info(&stored.name)?,
        changed: false,
    })
}

/// The policy (see the module documentation), then the define.
fn save(conn: &Connection, stored: &Definition, edited: Domain) -> Result<Edited, DriverError> {
    let xml = edited.to_xml();
    if xml == stored.to_xml() {
        return unchanged(conn, stored);
    }
    let new = Definition::from_domain(edited)?;
    if let Err(after) = conn.start_check(&new) {
        // Refused for the very reason the stored definition already was: same message.
        let before = conn.start_check(stored).err().map(|e| e.to_string());
        if before.as_deref() != Some(after.to_string().as_str()) {
            return Err(after);
        }
    }
    Ok(Edited {
        info: conn.define_xml(&xml)?,
        changed: true,
    })
}
