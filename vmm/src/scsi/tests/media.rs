//! Media sequences: host insert, replace and eject, the tray lock, the guest's eject, and unit
//! attentions.

use std::path::PathBuf;

use super::*;

#[test]
fn empty_drive_then_host_insert() {
    let mut cd = ready(LogicalUnit::cdrom(None));
    assert_eq!(fails(&mut cd, &tur(), &[], 0), Sense::NO_MEDIUM_TRAY_CLOSED);
    let s = ok(&mut cd, &[REQUEST_SENSE, 0, 0, 0, 18, 0], ROOM);
    assert_eq!((s[2], s[12], s[13]), (0x02, 0x3a, 0x01));
    assert_eq!(
        fails(&mut cd, &cdb10(READ_10, 0, 0, 0, 1), &[], ROOM),
        Sense::NO_MEDIUM_TRAY_CLOSED
    );
    assert_eq!(
        fails(&mut cd, &cdb10(READ_CAPACITY_10, 0, 0, 0, 0), &[], ROOM),
        Sense::NO_MEDIUM_TRAY_CLOSED
    );
    assert!(matches!(cd.eject(false), Err(MediaError::AlreadyEmpty)));
    cd.change_medium(medium("b.iso", iso(20), true), false)
        .unwrap();
    assert_eq!(cd.info().medium, Some(PathBuf::from("b.iso")));
    // The attention passes INQUIRY and waits for the next other command.
    ok(&mut cd, &[INQUIRY, 0, 0, 0, 36, 0], ROOM);
    assert_eq!(fails(&mut cd, &tur(), &[], 0), Sense::MEDIUM_CHANGED);
    ok(&mut cd, &tur(), 0);
    let gesn = cdb10(GET_EVENT_STATUS_NOTIFICATION, 1, 0x1000, 0, 8);
    assert_eq!(ok(&mut cd, &gesn, ROOM)[4..6], [2, 0x02], "new media, once");
    assert_eq!(ok(&mut cd, &gesn, ROOM)[4..6], [0, 0x02]);
    // A host change never reaches take_guest_change.
    assert_eq!(cd.take_guest_change(), None);
}

#[test]
fn host_eject_and_replace() {
    let mut cd = ready(cd_with(iso(20)));
    cd.eject(false).unwrap();
    let info = cd.info();
    assert_eq!(
        (info.medium, info.tray_open, info.locked),
        (None, true, false)
    );
    // REQUEST SENSE returns (and clears) the attention.
    let s = ok(&mut cd, &[REQUEST_SENSE, 0, 0, 0, 18, 0], ROOM);
    assert_eq!((s[2], s[12]), (0x06, 0x3a));
    assert_eq!(fails(&mut cd, &tur(), &[], 0), Sense::NO_MEDIUM_TRAY_OPEN);
    let gesn = cdb10(GET_EVENT_STATUS_NOTIFICATION, 1, 0x1000, 0, 8);
    assert_eq!(
        ok(&mut cd, &gesn, ROOM)[4..6],
        [3, 0x01],
        "removal, tray open"
    );
    cd.change_medium(medium("c.iso", iso(30), true), false)
        .unwrap();
    cd.change_medium(medium("d.iso", iso(40), true), false)
        .unwrap();
    assert_eq!(fails(&mut cd, &tur(), &[], 0), Sense::MEDIUM_CHANGED);
    let cap = ok(&mut cd, &cdb10(READ_CAPACITY_10, 0, 0, 0, 0), ROOM);
    assert_eq!(be32(&cap, 0), 39);
    assert!(!cd.info().tray_open);
}

#[test]
fn locked_tray_refuses_until_forced() {
    let mut cd = ready(cd_with(iso(20)));
    ok(&mut cd, &[PREVENT_ALLOW_MEDIUM_REMOVAL, 0, 0, 0, 1, 0], 0);
    assert!(cd.info().locked);
    assert!(matches!(cd.eject(false), Err(MediaError::Locked)));
    assert!(matches!(
        cd.change_medium(medium("x.iso", iso(20), true), false),
        Err(MediaError::Locked)
    ));
    assert_eq!(cd.info().medium, Some(PathBuf::from("a.iso")));
    // The refused eject asks the guest to let go.
    let gesn = cdb10(GET_EVENT_STATUS_NOTIFICATION, 1, 0x1000, 0, 8);
    assert_eq!(ok(&mut cd, &gesn, ROOM)[4], 1, "eject request");
    assert_eq!(ok(&mut cd, &gesn, ROOM)[4], 0);
    // Nor may the guest eject while it holds the lock.
    let eject = [START_STOP_UNIT, 0, 0, 0, 0x02, 0];
    assert_eq!(fails(&mut cd, &eject, &[], 0), Sense::REMOVAL_PREVENTED);
    // Nothing changed, so no attention.
    ok(&mut cd, &tur(), 0);
    cd.eject(true).unwrap();
    let info = cd.info();
    assert_eq!((info.medium, info.locked), (None, false));
}

#[test]
fn forced_change_unlocks() {
    let mut cd = ready(cd_with(iso(20)));
    ok(&mut cd, &[PREVENT_ALLOW_MEDIUM_REMOVAL, 0, 0, 0, 3, 0], 0);
    cd.change_medium(medium("y.iso", iso(20), true), true)
        .unwrap();
    assert!(!cd.info().locked);
    assert_eq!(cd.info().medium, Some(PathBuf::from("y.iso")));
}

#[test]
fn guest_eject_and_close() {
    let mut cd = ready(cd_with(iso(20)));
    ok(&mut cd, &[PREVENT_ALLOW_MEDIUM_REMOVAL, 0, 0, 0, 1, 0], 0);
    ok(&mut cd, &[PREVENT_ALLOW_MEDIUM_REMOVAL, 0, 0, 0, 0, 0], 0);
    ok(&mut cd, &[START_STOP_UNIT, 1, 0, 0, 0x02, 0], 0);
    assert_eq!(cd.take_guest_change(), Some(None));
    assert_eq!(cd.take_guest_change(), None);
    assert_eq!(cd.info().medium, None);
    // The guest knows what it did: no attention, just an empty drive with the tray out.
    assert_eq!(fails(&mut cd, &tur(), &[], 0), Sense::NO_MEDIUM_TRAY_OPEN);
    ok(&mut cd, &[START_STOP_UNIT, 0, 0, 0, 0x03, 0], 0);
    assert_eq!(fails(&mut cd, &tur(), &[], 0), Sense::NO_MEDIUM_TRAY_CLOSED);
    // Ejecting an empty drive is no change; spinning up without LoEj is a no-op.
    ok(&mut cd, &[START_STOP_UNIT, 0, 0, 0, 0x02, 0], 0);
    assert_eq!(cd.take_guest_change(), None);
    ok(&mut cd, &[START_STOP_UNIT, 0, 0, 0, 0x01, 0], 0);
}

#[test]
fn unit_attention_reaches_every_other_command_once() {
    let mut cd = cd_with(iso(20));
    // Polling commands pass; the first other command gets the attention.
    ok(&mut cd, &cdb10(GET_CONFIGURATION, 0, 0, 0, 8), ROOM);
    ok(
        &mut cd,
        &cdb10(GET_EVENT_STATUS_NOTIFICATION, 1, 0x1000, 0, 8),
        ROOM,
    );
    assert_eq!(
        fails(&mut cd, &cdb10(READ_10, 0, 0, 0, 1), &[], ROOM),
        Sense::POWER_ON
    );
    ok(&mut cd, &cdb10(READ_10, 0, 0, 0, 1), ROOM);
    // An unknown command is no exception.
    cd.eject(false).unwrap();
    assert_eq!(
        fails(&mut cd, &[0x07, 0, 0, 0, 0, 0], &[], 0),
        Sense::MEDIUM_REMOVED
    );
    assert_eq!(
        fails(&mut cd, &[0x07, 0, 0, 0, 0, 0], &[], 0),
        Sense::INVALID_OPCODE
    );
}
