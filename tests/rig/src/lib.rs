//! The nested-KVM test rig.
